//! A full disk under SQLite: every ingest answers 503 with `Retry-After` and readiness fails
//! while no write can be stored, nothing acknowledged is lost, and ingest resumes within seconds
//! of space returning, without a restart. Runs on a small tmpfs (root only); skipped where it
//! cannot be mounted unless `SKAN_TEST_REQUIRE_TMPFS=1` (CI).

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use skan_receiver::store::PostbackQuery;

use crate::helpers::{Spec, TestApp, TestDb, repo_path};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            Some(Self(dir))
        } else {
            assert!(
                std::env::var_os("SKAN_TEST_REQUIRE_TMPFS").is_none(),
                "SKAN_TEST_REQUIRE_TMPFS is set but a tmpfs cannot be mounted"
            );
            eprintln!("skipped: full-disk test (cannot mount a tmpfs; it needs root)");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_loses_nothing_and_recovers_without_a_restart() {
    let Some(tmpfs) = Tmpfs::mount("3m") else { return };
    let mut db = TestDb::new(crate::helpers::Backend::Sqlite).await;
    db.url = format!("sqlite://{}", tmpfs.0.path().join("receiver.db").display());
    let app = TestApp::spawn_with(&db, |s| s.keys = Some(repo_path("testdata/keys"))).await;
    let mut acknowledged = Vec::new();
    let post = |n: usize| {
        let app = &app;
        async move {
            let tx = format!("disk-{n}");
            let response = app.post_apple(Spec::new(9, &tx).fine(1).bytes()).await;
            (tx, response)
        }
    };
    for n in 0..5 {
        let (tx, response) = post(n).await;
        assert_eq!(response.status(), 200);
        acknowledged.push(tx);
    }

    // Fill the disk.
    let filler = tmpfs.0.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).and_then(|()| file.sync_all()).is_ok() {}
    drop(file);

    let (mut unavailable, mut other) = (0, Vec::new());
    for n in 100..120 {
        let (tx, response) = post(n).await;
        match response.status().as_u16() {
            200 => acknowledged.push(tx),
            503 | 507 => {
                assert!(response.headers().contains_key("retry-after"), "503 without Retry-After");
                unavailable += 1;
            }
            status => other.push((status, response.text().await.unwrap_or_default())),
        }
    }
    assert!(other.is_empty(), "answers other than 200 or 503 while the disk was full: {other:?}");
    assert!(unavailable >= 15, "only {unavailable} of 20 ingests answered 503");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while nothing can be written");

    // Space returns: ingest and readiness come back by themselves within 5 s.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut n = 200;
    loop {
        let (tx, response) = post(n).await;
        n += 1;
        if response.status() == 200 {
            acknowledged.push(tx);
            break;
        }
        assert!(freed.elapsed() < Duration::from_secs(5), "ingest did not resume within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = freed.elapsed();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    eprintln!(
        "full disk: {unavailable} of 20 ingests answered 503; resumed {resumed:?} after space returned"
    );

    // Every acknowledged postback is stored, once.
    for tx in &acknowledged {
        let stored = app
            .store
            .list_postbacks(&PostbackQuery {
                transaction_id: Some(tx.clone()),
                limit: 10,
                ..PostbackQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "{tx} was acknowledged but is not stored");
    }
    let body: Value =
        app.client.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

//! Backfill with original arrival times: envelopes through `import` and through an admin's
//! `/v1/postbacks`, reports by arrival and install day, and the earliest arrival winning.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use skan_receiver::clock::ManualClock;
use skan_receiver::store::Role;

use crate::helpers::{Spec, TestApp, each_backend, repo_path};

const APP: u64 = 780;

fn day_of(at: DateTime<Utc>) -> String {
    at.date_naive().to_string()
}

/// The estimated install day of a window-0 postback arriving at `at`: the midpoint of
/// [arrival - 96 h, arrival - 24 h] (README, "Estimated install time").
fn install_day(at: DateTime<Utc>) -> String {
    day_of(at - Duration::hours(60))
}

async fn days(app: &TestApp, key: &str, date_type: &str) -> BTreeMap<String, i64> {
    let (status, report) = app
        .get_json(
            key,
            &format!(
                "/v1/reports?app_id={APP}&from=2026-09-01&to=2026-11-27&date_type={date_type}&group_by=day"
            ),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"]["day"].as_str().unwrap().to_owned(), r["postbacks"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn thirty_days_of_envelopes_import_onto_their_own_arrival_and_install_days() {
    for db in each_backend().await {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("archive.ndjson");
        let mut lines = String::new();
        let mut by_arrival: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_install: BTreeMap<String, i64> = BTreeMap::new();
        for day in 1..=30 {
            let at: DateTime<Utc> = format!("2026-10-{day:02}T12:00:00Z").parse().unwrap();
            for n in 0..(day % 3 + 1) {
                let postback: Value = serde_json::from_slice(
                    &Spec::new(APP, &format!("bf-{day}-{n}")).fine(1).bytes(),
                )
                .unwrap();
                let envelope = json!({"received_at": at.to_rfc3339(), "channel": "apple", "source": "old-mmp", "postback": postback});
                lines.push_str(&format!("{envelope}\n"));
                *by_arrival.entry(day_of(at)).or_default() += 1;
                *by_install.entry(install_day(at)).or_default() += 1;
            }
        }
        // Two bare postbacks, stamped by --received-at.
        let bare_at: DateTime<Utc> = "2026-10-15T08:00:00Z".parse().unwrap();
        for n in 0..2 {
            lines.push_str(&format!(
                "{}\n",
                String::from_utf8(Spec::new(APP, &format!("bare-{n}")).bytes()).unwrap()
            ));
            *by_arrival.entry(day_of(bare_at)).or_default() += 1;
            *by_install.entry(install_day(bare_at)).or_default() += 1;
        }
        // Arrival times that cannot be: each refused on its own, naming the field.
        let inner: Value = serde_json::from_slice(&Spec::new(APP, "bf-bad").bytes()).unwrap();
        for when in ["2099-01-01T00:00:00Z", "2017-06-01T00:00:00Z"] {
            lines.push_str(&format!("{}\n", json!({"received_at": when, "postback": inner})));
        }
        std::fs::write(&file, lines).unwrap();

        let out = std::process::Command::new(env!("CARGO_BIN_EXE_skan-receiver"))
            .args(["import", "--database-url", &db.url, "--keys"])
            .arg(repo_path("testdata/keys"))
            .args(["--received-at", &bare_at.to_rfc3339()])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        let total: i64 = by_arrival.values().sum();
        assert_eq!(summary["accepted"].as_i64(), Some(total), "{summary}");
        assert_eq!(summary["rejected"], 2, "{summary}");
        assert_eq!(summary["arrival_days"], json!({"first": "2026-10-01", "last": "2026-10-30"}));
        assert!(stderr.contains("arrival days covered: 2026-10-01 to 2026-10-30"), "{stderr}");

        let app = TestApp::spawn(&db).await;
        let viewer = app.key(Role::Viewer).await;
        assert_eq!(days(&app, &viewer, "arrival").await, by_arrival);
        assert_eq!(days(&app, &viewer, "install").await, by_install);

        app.stop().await;
    }
}

#[tokio::test]
async fn only_admins_backdate_and_a_postback_keeps_its_earliest_arrival() {
    for db in each_backend().await {
        let clock = Arc::new(ManualClock::new("2026-11-20T12:00:00Z".parse().unwrap()));
        let app = TestApp::spawn_with_clock(&db, Arc::clone(&clock)).await;
        let ingest = app.key(Role::Ingest).await;
        let admin = app.key(Role::Admin).await;
        let viewer = app.key(Role::Viewer).await;
        let envelope = |tx: &str, when: &str| {
            let postback: Value =
                serde_json::from_slice(&Spec::new(APP, tx).fine(2).bytes()).unwrap();
            serde_json::to_vec(&json!({"received_at": when, "channel": "network", "source": "archive", "postback": postback})).unwrap()
        };

        // A forwarder cannot move postbacks in time: 403, and nothing is stored.
        let refused = app
            .post_network(&ingest, "application/json", envelope("e-1", "2026-10-05T12:00:00Z"))
            .await;
        assert_eq!(refused.status(), 403);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "envelope_not_allowed", "{body}");
        assert_eq!(body["error"]["field"], "[0].received_at", "{body}");
        let (status, _) = app
            .get_json(&viewer, &format!("/v1/reports?app_id={APP}&from=2026-09-01&to=2026-11-27"))
            .await;
        assert_eq!(status, 400, "nothing of app {APP} is stored");

        // An admin can; a live copy arriving later keeps the envelope's earlier arrival.
        let taken = app
            .post_network(&admin, "application/json", envelope("e-1", "2026-10-05T12:00:00Z"))
            .await;
        assert_eq!(taken.status(), 200);
        let live = app.post_apple(Spec::new(APP, "e-1").fine(2).bytes()).await;
        let live: Value = live.json().await.unwrap();
        assert_eq!(live["result"], "duplicate", "{live}");
        assert_eq!(
            days(&app, &viewer, "arrival").await,
            BTreeMap::from([("2026-10-05".to_owned(), 1)])
        );

        // A live postback first, then an archived copy that arrived earlier: the postback and
        // its counts move to the earlier arrival and its install estimate.
        let first: Value =
            app.post_apple(Spec::new(APP, "e-2").fine(2).bytes()).await.json().await.unwrap();
        assert_eq!(first["result"], "accepted");
        assert_eq!(days(&app, &viewer, "arrival").await.get("2026-11-20"), Some(&1));
        let batch = format!(
            "{}\n{}\n",
            String::from_utf8(envelope("e-2", "2026-10-07T12:00:00Z")).unwrap(),
            String::from_utf8(envelope("e-3", "2026-10-07T12:00:00Z")).unwrap()
        );
        let moved: Value =
            app.post_network(&admin, "application/x-ndjson", batch).await.json().await.unwrap();
        assert_eq!(moved["results"][0]["result"], "duplicate", "{moved}");
        assert_eq!(moved["results"][1]["result"], "accepted", "{moved}");
        let arrival = days(&app, &viewer, "arrival").await;
        assert_eq!(
            arrival,
            BTreeMap::from([("2026-10-05".to_owned(), 1), ("2026-10-07".to_owned(), 2)])
        );
        let install = days(&app, &viewer, "install").await;
        assert_eq!(
            install,
            BTreeMap::from([("2026-10-03".to_owned(), 1), ("2026-10-05".to_owned(), 2)])
        );
        let id = first["postback_id"].as_i64().unwrap();
        let (_, detail) = app.get_json(&viewer, &format!("/v1/postbacks/{id}")).await;
        assert_eq!(detail["first_received_at"], "2026-10-07T12:00:00+00:00", "{detail}");
        assert_eq!(detail["install_estimate"]["day"], "2026-10-05");
        assert_eq!(detail["receipts"].as_array().unwrap().len(), 2);
        app.stop().await;
    }
}

//! The service commands run as processes: `keys`, `import`, `migrate`, and `serve` with a
//! settings file and a SIGTERM.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{APPLE_VECTORS, Backend, TestApp, TestDb};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skan-receiver"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn keys_create_prints_only_the_key_which_then_authenticates() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (code, stdout, _) = run(&[
        "keys",
        "create",
        "--role",
        "ingest",
        "--name",
        "network-a",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 1);
    let key = stdout.trim();
    assert!(key.starts_with("skr_"));

    let (code, _, stderr) = run(&[
        "keys",
        "create",
        "--role",
        "ingest",
        "--name",
        "network-a",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 1);
    let err: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "duplicate_name");
    let (code, _, stderr) =
        run(&["keys", "create", "--role", "superuser", "--name", "x", "--database-url", &db.url]);
    assert_eq!(code, 2);
    assert!(stderr.contains("\"code\":\"usage\""), "{stderr}");

    let app = TestApp::spawn(&db).await;
    let response = app
        .post_network(
            key,
            "application/json",
            serde_json::to_vec(&APPLE_VECTORS[0].postback).unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let stored = app
        .store
        .list_postbacks(&skan_receiver::store::PostbackQuery { limit: 1, ..Default::default() })
        .await
        .unwrap();
    let receipts = app.store.receipts(stored[0].id).await.unwrap();
    assert_eq!(receipts[0].source_name.as_deref(), Some("network-a"));
    app.stop().await;

    let (code, stdout, _) = run(&["keys", "list", "--database-url", &db.url]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (listed["name"].as_str(), listed["role"].as_str()),
        (Some("network-a"), Some("ingest"))
    );
    assert!(!stdout.contains(key), "secrets are never listed");
    let (code, _, _) = run(&["keys", "revoke", "--name", "network-a", "--database-url", &db.url]);
    assert_eq!(code, 0);
    let app = TestApp::spawn(&db).await;
    let response = app.post_network(key, "application/json", "{}").await;
    assert_eq!(response.status(), 401, "a revoked key is refused");
    app.stop().await;
}

#[test]
fn import_reads_ndjson_and_gzip_arrays_and_a_second_run_counts_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("import.db").display());
    let ndjson = dir.path().join("a.ndjson");
    let lines: String = APPLE_VECTORS.iter().map(|v| format!("{}\n", v.postback)).collect();
    std::fs::write(&ndjson, format!("{lines}not json\n")).unwrap();
    let gz = dir.path().join("b.json.gz");
    let array =
        serde_json::to_vec(&APPLE_VECTORS.iter().map(|v| v.postback.clone()).collect::<Vec<_>>())
            .unwrap();
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(&array).unwrap();
    encoder.finish().unwrap();

    let args = ["import", "--database-url", &url, ndjson.to_str().unwrap(), gz.to_str().unwrap()];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let first: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(first["files"], 2);
    assert_eq!(first["postbacks"], 17);
    // 8 vectors with 6 distinct dedup keys, twice, plus one line that is not JSON.
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicate"].as_u64(), first["rejected"].as_u64()),
        (Some(6), Some(10), Some(1))
    );
    assert!(stderr.contains("imported 17 postbacks"), "{stderr}");
    let (code, stdout, _) = run(&args);
    assert_eq!(code, 0);
    let second: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((second["accepted"].as_u64(), second["duplicate"].as_u64()), (Some(0), Some(16)));

    let (code, _, stderr) = run(&["import", "--database-url", &url, "/nonexistent.ndjson"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unreadable_input"));
}

#[test]
fn migrate_reports_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let (code, stdout, _) = run(&["migrate", "--database-url", &url]);
    assert_eq!(code, 0);
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["pending"], 0);
    let (code, _, stderr) = run(&["migrate", "--database-url", "mysql://nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
}

#[test]
fn serve_runs_from_a_settings_file_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = dir.path().join("skan.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\n[limits]\nmax_postback_bytes = 4096\n",
            dir.path().join("svc.db").display()
        ),
    )
    .unwrap();
    let mut child = bin()
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking_client();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "the service came up on the configured port");
    let response = client
        .post(format!("{base}/.well-known/skadnetwork/report-attribution/"))
        .body(vec![b' '; 5000])
        .send()
        .unwrap();
    assert_eq!(response.status(), 413, "the file's limit applies");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    std::fs::write(&config, "colour = \"red\"\n").unwrap();
    let (code, _, stderr) = run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown field") && stderr.contains("colour"), "{stderr}");
}

mod reqwest {
    //! A tiny blocking HTTP client for process tests, on top of the async one.
    pub(super) fn blocking_client() -> Client {
        Client(
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            skan_receiver::dispatch::sender::client_builder().build().unwrap(),
        )
    }
    pub(super) struct Client(tokio::runtime::Runtime, ::reqwest::Client);
    pub(super) struct Request<'a>(&'a tokio::runtime::Runtime, ::reqwest::RequestBuilder);
    impl Client {
        pub(super) fn get(&self, url: String) -> Request<'_> {
            Request(&self.0, self.1.get(url))
        }
        pub(super) fn post(&self, url: String) -> Request<'_> {
            Request(&self.0, self.1.post(url))
        }
    }
    impl Request<'_> {
        pub(super) fn body(self, body: Vec<u8>) -> Self {
            Self(self.0, self.1.body(body))
        }
        pub(super) fn send(self) -> Result<::reqwest::Response, ::reqwest::Error> {
            self.0.block_on(self.1.send())
        }
    }
}

#[test]
fn schema_commands_validate_apply_show_diff_generate_and_decode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let (code, stdout, _) = run(&[
        "schema",
        "generate",
        "bit-packed",
        "--currency",
        "USD",
        "--revenue-bits",
        "3",
        "--edges",
        "0,0.01,1,3,5,10,20,50",
        "--flag",
        "3=registration",
        "--flag",
        "4=tutorial",
        "--flag",
        "5=purchase",
    ]);
    assert_eq!(code, 0);
    let packed = dir.path().join("packed.json");
    std::fs::write(&packed, &stdout).unwrap();
    let (code, stdout, _) = run(&["schema", "validate", packed.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["valid"], true);

    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"currency": "USD", "windows": [{"window": 0, "fine": [{"value": 70}]}]}"#,
    )
    .unwrap();
    let (code, stdout, _) = run(&["schema", "validate", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["errors"][0]["field"], "windows[0].fine[0].value");
    std::fs::write(&broken, r#"{"windows": [{"window": 0, "fine": [{"value": true}]}]}"#).unwrap();
    let (code, stdout, _) = run(&["schema", "validate", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["errors"][0]["code"],
        "malformed_schema"
    );

    let (code, stdout, _) = run(&[
        "schema",
        "apply",
        "--app",
        "42",
        packed.to_str().unwrap(),
        "--note",
        "bits",
        "--database-url",
        &url,
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["version"]["version"], 1);
    let buckets = dir.path().join("buckets.json");
    let (_, stdout, _) =
        run(&["schema", "generate", "revenue-buckets", "--currency", "USD", "--edges", "0,1,5"]);
    std::fs::write(&buckets, stdout).unwrap();
    assert_eq!(
        run(&["schema", "apply", "--app", "42", buckets.to_str().unwrap(), "--database-url", &url])
            .0,
        0
    );
    let (code, stdout, _) =
        run(&["schema", "apply", "--app", "42", broken.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(code, 1, "an invalid schema is refused: {stdout}");

    let (code, stdout, _) = run(&["schema", "show", "--app", "42", "--database-url", &url]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["version"], 2);
    let (_, stdout, _) =
        run(&["schema", "show", "--app", "42", "--number", "1", "--database-url", &url]);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["note"], "bits");
    let (code, _, stderr) = run(&["schema", "show", "--app", "43", "--database-url", &url]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not_found"));
    let (_, stdout, _) = run(&["schema", "history", "--app", "42", "--database-url", &url]);
    assert_eq!(stdout.lines().count(), 2);
    let (code, stdout, _) =
        run(&["schema", "diff", "--app", "42", "1", "2", "--database-url", &url]);
    assert_eq!(code, 0);
    assert!(
        !serde_json::from_str::<Value>(&stdout).unwrap()["changes"].as_array().unwrap().is_empty()
    );

    let postbacks = dir.path().join("p.ndjson");
    let lines: String = APPLE_VECTORS.iter().take(3).map(|v| format!("{}\n", v.postback)).collect();
    std::fs::write(&postbacks, format!("{lines}{{}}\n")).unwrap();
    let (code, stdout, _) =
        run(&["decode", "--schema", packed.to_str().unwrap(), postbacks.to_str().unwrap()]);
    assert_eq!(code, 1, "the last line is not a postback");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    // 63 = 0b111_111: every flag, bucket 7 ($50+). 20 = 0b010_100: tutorial, bucket 4 ($5-10).
    assert_eq!(lines[0]["decoded"]["label"], "USD 50+ + registration, tutorial, purchase");
    assert_eq!(lines[2]["decoded"]["label"], "USD 5-10 + tutorial");
    // Coarse "high" covers buckets 5-7 of the eight: $10 and above.
    assert_eq!(lines[1]["decoded"]["revenue"], json!({"min": 10.0}));
    assert_eq!(lines[3]["error"]["code"], "missing_field");
}

#[tokio::test]
async fn schemas_in_the_settings_file_are_applied_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.json"),
        r#"{"currency": "EUR", "windows": [{"window": 0, "fine": [{"value": 1, "revenue": {"min": 1}}]}]}"#,
    )
    .unwrap();
    let config = dir.path().join("skan.toml");
    std::fs::write(
        &config,
        "[[schemas]]\napp_id = 9\nfile = \"app.json\"\nnote = \"from settings\"\n",
    )
    .unwrap();
    for _ in 0..2 {
        let loaded = skan_receiver::config::load_file(Some(&config)).unwrap();
        let app = TestApp::spawn_with(&db, |s| s.file = loaded).await;
        app.stop().await;
    }
    let versions = db.store().await.schema_versions(9).await.unwrap();
    assert_eq!(versions.len(), 1, "an unchanged schema is not applied again on restart");
    assert_eq!(
        (versions[0].author.as_str(), versions[0].note.as_deref()),
        ("config", Some("from settings"))
    );
}

#[test]
fn destinations_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let doc = dir.path().join("dest.json");
    std::fs::write(
        &doc,
        json!({"name": "network-a", "url": "https://postbacks.example/skan?cv={fine_value}", "signing": {"secrets": []}})
            .to_string(),
    )
    .unwrap();
    let (code, stdout, stderr) =
        run(&["destinations", "add", "--file", doc.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(code, 0, "{stderr}");
    let created: Value = serde_json::from_str(stdout.trim()).unwrap();
    let secret = created["generated_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    let (code, _, stderr) =
        run(&["destinations", "add", "--file", doc.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(code, 1);
    let err: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(
        (err["error"]["code"].as_str(), err["error"]["field"].as_str()),
        (Some("conflict"), Some("name"))
    );

    std::fs::write(&doc, json!({"name": "local", "url": "http://127.0.0.1:9/x"}).to_string())
        .unwrap();
    let (code, _, stderr) =
        run(&["destinations", "add", "--file", doc.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(code, 1);
    let err: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(err["error"]["field"], "url", "{err}");
    let (code, _, stderr) = run(&[
        "destinations",
        "add",
        "--allow-private-destinations",
        "--file",
        doc.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(&doc, json!({"name": "bad", "url": "https://p.example/?x={nope}"}).to_string())
        .unwrap();
    let (code, _, stderr) =
        run(&["destinations", "add", "--file", doc.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown macro {nope}"), "{stderr}");

    let (code, stdout, _) = run(&["destinations", "list", "--database-url", &url]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2);
    assert!(!stdout.contains(secret), "secrets are masked in lists");
    let (code, stdout, _) = run(&["destinations", "disable", "network-a", "--database-url", &url]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["config"]["enabled"], false);
    let (_, stdout, _) = run(&["destinations", "show", "network-a", "--database-url", &url]);
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["config"]["enabled"], false);
    let (code, _, stderr) = run(&["destinations", "show", "nobody", "--database-url", &url]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not_found"), "{stderr}");
}

#[tokio::test]
async fn a_revoked_key_stops_working_within_a_second_on_every_receiver() {
    for db in crate::helpers::each_backend().await {
        // Two receivers on one database, both caching keys for the default 30 s.
        let a = TestApp::spawn_with(&db, |s| s.auth_cache = Duration::from_secs(30)).await;
        let b = TestApp::spawn_with(&db, |s| s.auth_cache = Duration::from_secs(30)).await;
        let key = a.key(skan_receiver::store::Role::Viewer).await;
        for app in [&a, &b] {
            assert_eq!(app.get_json(&key, "/v1/postbacks").await.0, 200, "cached now");
        }
        let names: Vec<String> =
            a.store.list_api_keys().await.unwrap().into_iter().map(|k| k.name).collect();
        assert!(a.store.revoke_api_key(names.last().unwrap(), 1).await.unwrap());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for app in [&a, &b] {
            assert_eq!(app.get_json(&key, "/v1/postbacks").await.0, 401, "revoked everywhere");
        }
        a.stop().await;
        b.stop().await;
    }
}

#[tokio::test]
async fn a_key_limited_to_networks_works_only_from_them() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (code, stdout, _) = run(&[
        "keys",
        "create",
        "--role",
        "viewer",
        "--name",
        "far",
        "--allow-cidr",
        "203.0.113.0/24",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0);
    let far = stdout.trim().to_owned();
    let (code, stdout, _) = run(&[
        "keys",
        "create",
        "--role",
        "viewer",
        "--name",
        "near",
        "--allow-cidr",
        "127.0.0.0/8",
        "--allow-cidr",
        "::1",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0);
    let near = stdout.trim().to_owned();
    let (code, _, stderr) = run(&[
        "keys",
        "create",
        "--role",
        "viewer",
        "--name",
        "bad",
        "--allow-cidr",
        "10.0.0.0/33",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("CIDR"), "{stderr}");

    let app = TestApp::spawn(&db).await;
    let (status, body) = app.get_json(&far, "/v1/postbacks").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("address_not_allowed")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("127.0.0.1"), "{body}");
    assert_eq!(app.get_json(&near, "/v1/postbacks").await.0, 200);
    let (_, listed, _) = run(&["keys", "list", "--database-url", &db.url]);
    assert!(listed.contains("203.0.113.0/24"), "{listed}");
    app.stop().await;
}

//! End to end over a real socket, on every backend: Apple's paths, forwarded batches, errors,
//! durability across restarts, and the database going away.

use serde_json::{Value, json};
use skan_receiver::store::Role;

use crate::helpers::{APPLE_VECTORS, TestApp, TestDb, backends, each_backend};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test]
async fn each_published_vector_is_accepted_on_apples_path_and_stored() {
    for backend in backends() {
        for (i, vector) in APPLE_VECTORS.iter().enumerate() {
            // A fresh database per vector: Apple's 2.0, 2.1 and 2.2 examples share one
            // (ad-network-id, transaction-id) and would otherwise be duplicates of each other.
            let db = TestDb::new(backend).await;
            let app = TestApp::spawn(&db).await;
            let path = if i % 2 == 0 {
                "/.well-known/skadnetwork/report-attribution/"
            } else {
                "/.well-known/appattribution/report-attribution"
            };
            let response =
                app.client.post(app.url(path)).body(body(&vector.postback)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{backend:?} {}", vector.label());
            let result: Value = response.json().await.unwrap();
            assert_eq!(result["result"], "accepted", "{backend:?} {}: {result}", vector.label());
            let id = result["postback_id"].as_i64().unwrap();
            let stored = app.store.postback(id).await.unwrap().unwrap();
            assert_eq!(stored.outcome, "valid");
            assert_eq!(stored.development, vector.key.starts_with("apple-development"));
            let receipts = app.store.receipts(id).await.unwrap();
            assert_eq!(receipts[0].channel, "apple");
            assert_eq!(receipts[0].raw, body(&vector.postback));
            app.stop().await;
        }
    }
}

#[tokio::test]
async fn a_replay_is_a_duplicate_of_the_same_postback() {
    for db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        let first: Value =
            app.post_apple(body(&APPLE_VECTORS[0].postback)).await.json().await.unwrap();
        let second = app.post_apple(body(&APPLE_VECTORS[0].postback)).await;
        assert_eq!(second.status(), 200);
        let second: Value = second.json().await.unwrap();
        assert_eq!(second["result"], "duplicate");
        assert_eq!(second["postback_id"], first["postback_id"]);
        assert_ne!(second["receipt_id"], first["receipt_id"]);
        let key = app.key(Role::Viewer).await;
        let (status, detail) =
            app.get_json(&key, &format!("/v1/postbacks/{}", first["postback_id"])).await;
        assert_eq!(status, 200);
        assert_eq!(detail["receipt_count"], 2);
        assert_eq!(detail["receipts"].as_array().unwrap().len(), 2);
        assert_eq!(detail["signed_fields"][0], "version");
        assert_eq!(detail["unsigned_fields"], json!(["conversion-value"]));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_tampered_postback_is_quarantined_answered_200_and_never_counted_valid() {
    for db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        let mut forged = APPLE_VECTORS[2].postback.clone();
        forged["did-win"] = json!(false);
        let response = app.post_apple(body(&forged)).await;
        assert_eq!(response.status(), 200, "a retry cannot fix a bad signature");
        let result: Value = response.json().await.unwrap();
        assert_eq!(result["result"], "invalid");
        assert_eq!(result["error"]["code"], "signature_mismatch");
        assert_eq!(result["error"]["field"], "attribution-signature");
        let key = app.key(Role::Viewer).await;
        let (_, valid) = app.get_json(&key, "/v1/postbacks?outcome=valid").await;
        assert_eq!(valid["items"], json!([]));
        let (_, invalid) = app.get_json(&key, "/v1/postbacks?outcome=invalid").await;
        assert_eq!(invalid["items"][0]["reason_code"], "signature_mismatch");
        assert_eq!(invalid["items"][0]["did_win"], false);
        // The genuine postback still gets in.
        let genuine: Value =
            app.post_apple(body(&APPLE_VECTORS[2].postback)).await.json().await.unwrap();
        assert_eq!(genuine["result"], "accepted");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_forwarded_copy_with_a_changed_conversion_value_is_flagged_and_apple_wins() {
    for db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        let ingest = app.key(Role::Ingest).await;
        let viewer = app.key(Role::Viewer).await;
        let genuine = &APPLE_VECTORS[2].postback; // conversion-value 20
        let mut forwarded = genuine.clone();
        forwarded["conversion-value"] = json!(63);
        forwarded["network-click-id"] = json!("c-123");

        // The forwarder's copy first, then Apple's.
        let sent: Value = app
            .post_network(&ingest, "application/json", body(&forwarded))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(sent["results"][0]["result"], "accepted");
        let id = sent["results"][0]["postback_id"].as_i64().unwrap();
        let from_apple: Value = app.post_apple(body(genuine)).await.json().await.unwrap();
        assert_eq!(from_apple["result"], "duplicate");
        assert_eq!(from_apple["unsigned_mismatch"], true);
        let (_, detail) = app.get_json(&viewer, &format!("/v1/postbacks/{id}")).await;
        assert_eq!(detail["unsigned_mismatch"], true);
        assert_eq!(detail["fine_value"], 20, "the copy straight from Apple is trusted");
        assert_eq!(detail["values_channel"], "apple");
        let channels: Vec<&str> = detail["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["network", "apple"]);
        assert!(detail["receipts"][0]["source_name"].as_str().unwrap().starts_with("ingest-"));

        // Apple's copy first, then an altered forwarded one.
        let genuine = &APPLE_VECTORS[0].postback; // 63
        let mut forwarded = genuine.clone();
        forwarded["conversion-value"] = json!(0);
        let first: Value = app.post_apple(body(genuine)).await.json().await.unwrap();
        let second: Value = app
            .post_network(&ingest, "application/json", body(&forwarded))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(second["results"][0]["result"], "duplicate");
        assert_eq!(second["results"][0]["unsigned_mismatch"], true);
        let (_, detail) =
            app.get_json(&viewer, &format!("/v1/postbacks/{}", first["postback_id"])).await;
        assert_eq!(
            (detail["fine_value"].clone(), detail["unsigned_mismatch"].clone()),
            (json!(63), json!(true))
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_batch_with_mixed_items_answers_one_result_per_item() {
    for db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        let key = app.key(Role::Ingest).await;
        let mut forged = APPLE_VECTORS[3].postback.clone();
        forged["app-id"] = json!(1);
        let mut future = APPLE_VECTORS[0].postback.clone();
        future["version"] = json!("5.0");
        let items = json!([
            APPLE_VECTORS[0].postback,
            APPLE_VECTORS[0].postback,
            {"version": "4.0", "ad-network-id": "x"},
            forged,
            future,
            APPLE_VECTORS[7].postback,
        ]);
        let response = app.post_network(&key, "application/json", body(&items)).await;
        assert_eq!(response.status(), 200);
        let out: Value = response.json().await.unwrap();
        let results: Vec<&str> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["result"].as_str().unwrap())
            .collect();
        assert_eq!(
            results,
            ["accepted", "duplicate", "rejected", "invalid", "unverifiable", "accepted"]
        );
        assert_eq!(out["results"][2]["error"]["field"], "source-identifier");
        assert_eq!(out["results"][4]["error"]["code"], "unknown_version");
        assert_eq!(out["results"][5]["development"], true);
        assert_eq!(
            out["summary"],
            json!({"accepted": 2, "duplicate": 1, "rejected": 1, "invalid": 1, "unverifiable": 1})
        );

        // The same as NDJSON, where everything is now a repeat.
        let ndjson: String = items.as_array().unwrap().iter().map(|v| format!("{v}\n")).collect();
        let out: Value =
            app.post_network(&key, "application/x-ndjson", ndjson).await.json().await.unwrap();
        let results: Vec<&str> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["result"].as_str().unwrap())
            .collect();
        assert_eq!(
            results,
            ["duplicate", "duplicate", "rejected", "invalid", "unverifiable", "duplicate"]
        );
        app.stop().await;
    }
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test]
async fn bad_requests_get_specific_error_bodies() {
    for db in each_backend().await {
        let app = TestApp::spawn_with(&db, |s| {
            s.max_postback_bytes = 2048;
            s.max_batch_bytes = 8192;
            s.max_batch_items = 3;
        })
        .await;
        let ingest = app.key(Role::Ingest).await;
        let viewer = app.key(Role::Viewer).await;

        let (status, error) = error_of(app.post_apple("{\"version\": ").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (400, "malformed_json"));
        let (status, error) =
            error_of(app.post_apple(body(&json!({"version": "3.0", "campaign-id": "42"}))).await)
                .await;
        assert_eq!((status, error["field"].as_str().unwrap()), (400, "ad-network-id"));

        let (status, error) = error_of(app.post_apple(vec![b' '; 4096]).await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (413, "payload_too_large"));
        assert!(error["message"].as_str().unwrap().contains("2048"));

        let no_key = app.client.post(app.url("/v1/postbacks")).body("{}").send().await.unwrap();
        assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
        let (status, error) = error_of(no_key).await;
        assert_eq!(
            (status, error["code"].as_str().unwrap(), error["field"].as_str().unwrap()),
            (401, "missing_api_key", "Authorization")
        );
        let (status, error) =
            error_of(app.post_network("skr_nope", "application/json", "{}").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (401, "invalid_api_key"));
        let (status, error) =
            error_of(app.post_network(&viewer, "application/json", "{}").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (403, "forbidden"));
        let (status, _) = app.get_json(&ingest, "/v1/postbacks").await;
        assert_eq!(status, 403, "an ingest key reads nothing");

        let (status, error) = error_of(app.post_network(&ingest, "text/csv", "a,b").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (415, "unsupported_media_type"));
        let (status, error) =
            error_of(app.post_network(&ingest, "application/json", "[{},").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (400, "malformed_json"));
        let (status, error) =
            error_of(app.post_network(&ingest, "application/json", "[]").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (400, "empty_batch"));
        let (status, error) =
            error_of(app.post_network(&ingest, "application/json", "[{},{},{},{}]").await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (413, "too_many_items"));
        let (status, error) =
            error_of(app.post_network(&ingest, "application/json", vec![b' '; 9000]).await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (413, "payload_too_large"));
        // One postback under the batch limit but over the postback limit is too large too.
        let mut big = b"{\"version\": \"4.0\", \"pad\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 4000));
        big.extend(b"\"}");
        let (status, error) =
            error_of(app.post_network(&ingest, "application/json", big).await).await;
        assert_eq!((status, error["code"].as_str().unwrap()), (413, "payload_too_large"));
        let (status, error) =
            error_of(app.post_network(&ingest, "application/json", "{\"version\": 4}").await).await;
        assert_eq!(
            (status, error["code"].as_str().unwrap(), error["field"].as_str().unwrap()),
            (400, "wrong_type", "version")
        );

        let (status, body) = app.get_json(&viewer, "/v1/postbacks?limit=0").await;
        assert_eq!((status, body["error"]["field"].as_str().unwrap()), (400, "limit"));
        let (status, body) = app.get_json(&viewer, "/v1/postbacks?limit=ten").await;
        assert_eq!((status, body["error"]["field"].as_str().unwrap()), (400, "limit"));
        let (status, body) = app.get_json(&viewer, "/v1/postbacks?since=yesterday").await;
        assert_eq!((status, body["error"]["field"].as_str().unwrap()), (400, "since"));
        let (status, body) = app.get_json(&viewer, "/v1/postbacks/abc").await;
        assert_eq!((status, body["error"]["field"].as_str().unwrap()), (400, "id"));
        let (status, body) = app.get_json(&viewer, "/v1/postbacks/99999").await;
        assert_eq!((status, body["error"]["code"].as_str().unwrap()), (404, "not_found"));
        app.stop().await;
    }
}

#[tokio::test]
async fn an_acknowledged_postback_survives_a_crash_and_a_restart() {
    for db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        let mut acked = Vec::new();
        for vector in APPLE_VECTORS.iter().take(5) {
            let result: Value = app.post_apple(body(&vector.postback)).await.json().await.unwrap();
            acked.push(result["postback_id"].as_i64().unwrap());
        }
        app.kill();
        let app = TestApp::spawn(&db).await;
        let viewer = app.key(Role::Viewer).await;
        for id in acked {
            let (status, detail) = app.get_json(&viewer, &format!("/v1/postbacks/{id}")).await;
            assert_eq!(status, 200, "postback {id} acknowledged before the crash");
            assert_eq!(detail["outcome"], "valid");
        }
        let again: Value =
            app.post_apple(body(&APPLE_VECTORS[0].postback)).await.json().await.unwrap();
        assert_eq!(again["result"], "duplicate");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_database_that_is_down_gets_503_with_retry_after() {
    for mut db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        match db.backend {
            // A Citus test owns a schema, not a database to drop: close its pool instead.
            crate::helpers::Backend::Sqlite | crate::helpers::Backend::Citus => {
                app.store.close().await;
            }
            crate::helpers::Backend::Postgres => db.destroy().await,
        }
        let response = app.post_apple(body(&APPLE_VECTORS[0].postback)).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unavailable");
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
}

#[tokio::test]
async fn readiness_and_metrics_report_the_service() {
    for db in each_backend().await {
        let app = TestApp::spawn(&db).await;
        let ready: Value =
            app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready");
        app.post_apple(body(&APPLE_VECTORS[1].postback)).await;
        // A retry of the same postback: its signature answer is remembered.
        app.post_apple(body(&APPLE_VECTORS[1].postback)).await;
        let metrics =
            app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("skan_signature_cache_total{result=\"hit\"}"), "{metrics}");
        assert!(
            metrics.contains("skan_postbacks_total{protocol=\"skadnetwork\",version=\"4.0\""),
            "{metrics}"
        );
        assert!(metrics.contains("skan_ingest_duration_seconds_bucket"), "{metrics}");
        assert!(metrics.contains("skan_commit_group_items_bucket"), "{metrics}");
        for phase in ["begin", "postbacks", "counts", "outbox", "commit"] {
            assert!(
                metrics.contains(&format!("skan_record_phase_seconds_count{{phase=\"{phase}\"}}")),
                "{phase}: {metrics}"
            );
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn pages_of_postbacks_chain_through_the_cursor() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let ingest = app.key(Role::Ingest).await;
    let viewer = app.key(Role::Viewer).await;
    let batch = json!(APPLE_VECTORS.iter().map(|v| v.postback.clone()).collect::<Vec<_>>());
    app.post_network(&ingest, "application/json", body(&batch)).await;
    let mut seen = Vec::new();
    let mut path = "/v1/postbacks?limit=4".to_owned();
    loop {
        let (status, page) = app.get_json(&viewer, &path).await;
        assert_eq!(status, 200);
        seen.extend(page["items"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/postbacks?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no repeats");
    assert_eq!(seen.len(), 6);
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_loses_nothing_acknowledged() {
    for db in each_backend().await {
        let app =
            TestApp::spawn_with(&db, |s| s.keys = Some(crate::helpers::repo_path("testdata/keys")))
                .await;
        let mut factory = skan_receiver::loadgen::PostbackFactory::from_key_dir(
            &crate::helpers::repo_path("testdata/keys"),
            42,
            skan_receiver::loadgen::FactoryConfig::default(),
        )
        .unwrap();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..400 {
            let (client, url, postback) = (
                app.client.clone(),
                app.url("/.well-known/skadnetwork/report-attribution/"),
                factory.next_postback(),
            );
            let answered = std::sync::Arc::clone(&answered);
            requests.spawn(async move {
                let response = client.post(url).body(postback).send().await.ok()?;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if response.status() != 200 {
                    return None;
                }
                let result: Value = response.json().await.ok()?;
                result["postback_id"].as_i64()
            });
        }
        // Stop while requests are still in flight.
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        app.stop().await;
        let mut acknowledged = Vec::new();
        while let Some(done) = requests.join_next().await {
            acknowledged.extend(done.unwrap());
        }
        assert!(!acknowledged.is_empty());
        let store = db.store().await;
        for id in &acknowledged {
            assert!(
                store.postback(*id).await.unwrap().is_some(),
                "acknowledged postback {id} is stored"
            );
        }
        eprintln!("{:?}: {} of 400 acknowledged around shutdown", db.backend, acknowledged.len());
    }
}

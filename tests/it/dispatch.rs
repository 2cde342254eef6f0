//! The dispatcher end to end, against partner endpoints on loopback: templates, signatures,
//! retries, disabling, crash recovery, several receivers on one database, rate limits and
//! address checks.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use skan_receiver::clock::{Clock as _, ManualClock, SystemClock};
use skan_receiver::config::Settings;
use skan_receiver::store::Role;

use crate::helpers::{Backend, Spec, TestApp, TestDb, backends, each_backend, repo_path};
use crate::partner::{Partner, eventually};

const NOW: &str = "2026-11-20T12:00:00Z";

fn for_tests(settings: &mut Settings) {
    settings.keys = Some(repo_path("testdata/keys"));
    settings.allow_private_destinations = true;
    settings.dispatch_poll = Duration::from_millis(20);
}

async fn service(db: &TestDb, clock: Arc<ManualClock>) -> TestApp {
    TestApp::spawn_full(db, clock, for_tests).await
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(NOW.parse().unwrap()))
}

async fn send(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method.parse().unwrap(), app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, key: &str, doc: Value) -> Value {
    let (status, body) = send(app, key, "POST", "/v1/destinations", Some(doc)).await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn deliveries_of(app: &TestApp, key: &str, destination: i64) -> Vec<Value> {
    let (status, body) =
        send(app, key, "GET", &format!("/v1/deliveries?destination={destination}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn post_postback(app: &TestApp, bytes: Vec<u8>) -> i64 {
    let result: Value = app.post_apple(bytes).await.json().await.unwrap();
    assert_eq!(result["result"], "accepted", "{result}");
    result["postback_id"].as_i64().unwrap()
}

/// Percent-encoding of base64 text: its only reserved characters are `+`, `/` and `=`.
fn encoded_base64(text: &str) -> String {
    text.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

#[tokio::test]
async fn get_urls_render_every_value_escaped_for_where_it_stands() {
    for db in each_backend().await {
        let clock = manual_clock();
        let app = service(&db, Arc::clone(&clock)).await;
        let admin = app.key(Role::Admin).await;
        let partner = Partner::start().await;
        let destination = create(
            &app,
            &admin,
            json!({
                "name": "network-a",
                "url": format!("{}/pb/{{app_id}}/{{source_identifier}}?net={{ad_network_id}}&cv={{fine_value}}&won={{did_win}}&cc={{coarse_value}}&tx={{transaction_id}}&at={{received_at}}&raw={{raw_postback_base64}}&fixed=yes", partner.url),
                "formats": {"booleans": "one_zero", "timestamps": "unix_seconds"},
                "missing": "drop",
            }),
        )
        .await;
        let body = Spec::new(525_463_029, "a b/ä+&=#?").fine(42).bytes();
        let postback_id = post_postback(&app, body.clone()).await;
        let seen = partner.wait_for(10, "the delivery", |s| !s.is_empty()).await;
        let request = &seen[0];
        assert_eq!(request.method, "GET");
        let raw = base64::engine::general_purpose::STANDARD.encode(&body);
        assert_eq!(
            request.target,
            format!(
                "/pb/525463029/1234?net=fixture.skadnetwork&cv=42&won=1&tx=a%20b%2F%C3%A4%2B%26%3D%23%3F&at={}&raw={}&fixed=yes",
                clock.now().timestamp(),
                encoded_base64(&raw)
            ),
            "the coarse value is absent and its parameter dropped"
        );
        let decoded: Vec<(String, String)> = request.query();
        assert!(decoded.contains(&("tx".to_owned(), "a b/ä+&=#?".to_owned())));
        assert!(request.body.is_empty());

        let id = destination["destination"]["id"].as_i64().unwrap();
        let deliveries = deliveries_of(&app, &admin, id).await;
        assert_eq!(deliveries.len(), 1);
        let delivery_id = deliveries[0]["id"].as_i64().unwrap();
        assert_eq!(deliveries[0]["postback_id"], postback_id);
        assert_eq!(request.key(), format!("dlv_{delivery_id}"), "the stable idempotency key");
        eventually(10, "the delivery to be recorded", || async {
            let (_, d) =
                send(&app, &admin, "GET", &format!("/v1/deliveries/{delivery_id}"), None).await;
            d["state"] == "delivered"
        })
        .await;
        let (_, detail) =
            send(&app, &admin, "GET", &format!("/v1/deliveries/{delivery_id}"), None).await;
        let attempt = &detail["attempts_log"][0];
        assert_eq!(detail["attempts_log"].as_array().unwrap().len(), 1);
        assert_eq!(attempt["status"], 200);
        assert_eq!(attempt["trigger"], "first");
        assert_eq!(attempt["url"], format!("{}{}", partner.url, request.target));
        assert_eq!(attempt["response_excerpt"], "partner says hello");
        assert_eq!(detail["idempotency_key"], format!("dlv_{delivery_id}"));

        // The preview of the same postback is exactly what was sent.
        let (status, preview) = send(
            &app,
            &admin,
            "POST",
            &format!("/v1/destinations/{id}/preview"),
            Some(json!({"postback_id": postback_id})),
        )
        .await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(preview["request"]["url"], format!("{}{}", partner.url, request.target));
        assert_eq!(preview["delivery_id"], format!("dlv_{delivery_id}"));
        app.stop().await;
    }
}

#[tokio::test]
async fn json_and_form_bodies_keep_types_decode_values_and_apply_the_missing_value_policy() {
    for db in each_backend().await {
        let clock = manual_clock();
        let app = service(&db, Arc::clone(&clock)).await;
        let admin = app.key(Role::Admin).await;
        let (status, body) = send(
            &app,
            &admin,
            "PUT",
            "/v1/apps/777/schema",
            Some(json!({"schema": crate::fixture::schema_v1(), "effective_from": "2026-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let partner = Partner::start().await;
        create(
            &app,
            &admin,
            json!({
                "name": "bi",
                "method": "POST",
                "url": format!("{}/bi", partner.url),
                "headers": {"X-App": "{app_id}", "X-Coarse": "{coarse_value}"},
                "formats": {"timestamps": "rfc3339"},
                "body": {"format": "json", "template": {
                    "app": "{app_id}", "won": "{did_win}", "value": "{fine_value}", "coarse": "{coarse_value}",
                    "events": "{event_names}", "revenue": {"min": "{revenue_min}", "max": "{revenue_max}", "currency": "{revenue_currency}"},
                    "text": "cv={fine_value}/{label}", "received": "{received_at}", "version": "{version}",
                    "schema": "{schema_version}", "list": ["{window}", 7, true, null]
                }},
            }),
        )
        .await;
        create(
            &app,
            &admin,
            json!({
                "name": "form",
                "method": "POST",
                "url": format!("{}/form", partner.url),
                "missing": "drop",
                "body": {"format": "form", "template": "app={app_id}&cv={conversion_value}&raw={raw_postback}&camp={campaign_id}"},
            }),
        )
        .await;
        let skipper = create(
            &app,
            &admin,
            json!({"name": "skipper", "url": format!("{}/skip?camp={{campaign_id}}", partner.url), "missing": "skip"}),
        )
        .await;
        let tutorial_only = create(
            &app,
            &admin,
            json!({"name": "tutorials", "url": format!("{}/tutorial", partner.url), "filters": {"events": ["tutorial"]}}),
        )
        .await;
        create(
            &app,
            &admin,
            json!({"name": "purchases", "url": format!("{}/purchase?e={{event_names}}", partner.url), "filters": {"events": ["purchase"]}}),
        )
        .await;
        let body = Spec::new(777, "json-1").fine(5).bytes();
        post_postback(&app, body.clone()).await;
        let seen = partner.wait_for(10, "three deliveries", |s| s.len() >= 3).await;

        let bi = seen.iter().find(|s| s.target == "/bi").unwrap();
        assert_eq!(bi.method, "POST");
        assert_eq!(bi.headers["content-type"], "application/json");
        assert_eq!(bi.headers["x-app"], "777");
        assert_eq!(bi.headers["x-coarse"], "", "a missing value renders empty by default");
        assert_eq!(
            bi.json(),
            json!({
                "app": 777, "won": true, "value": 5, "coarse": null, "events": "purchase",
                "revenue": {"min": 5.0, "max": 10.0, "currency": "USD"},
                "text": "cv=5/buyer", "received": "2026-11-20T12:00:00.000Z", "version": "4.0",
                "schema": 1, "list": [0, 7, true, null]
            })
        );

        let form = seen.iter().find(|s| s.target == "/form").unwrap();
        assert_eq!(form.headers["content-type"], "application/x-www-form-urlencoded");
        let text = String::from_utf8(form.body.clone()).unwrap();
        assert!(text.starts_with("app=777&cv=5&raw=%7B%22"), "{text}");
        assert!(!text.contains("camp"), "the parameter without a value is dropped: {text}");
        let fields: Vec<(String, String)> =
            form_urlencoded::parse(&form.body).into_owned().collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(
            fields[2],
            ("raw".to_owned(), String::from_utf8(body).unwrap()),
            "the raw postback survives the round trip"
        );

        let purchase = seen.iter().find(|s| s.target.starts_with("/purchase")).unwrap();
        assert_eq!(purchase.target, "/purchase?e=purchase");

        for (doc, reason) in [(&skipper, "{campaign_id}"), (&tutorial_only, "events filter")] {
            let id = doc["destination"]["id"].as_i64().unwrap();
            eventually(10, "the skipped delivery", || async {
                deliveries_of(&app, &admin, id)
                    .await
                    .first()
                    .is_some_and(|d| d["state"] == "skipped")
            })
            .await;
            let deliveries = deliveries_of(&app, &admin, id).await;
            let error = deliveries[0]["last_error"].as_str().unwrap();
            assert!(error.contains(reason), "{error}");
            let (_, detail) =
                send(&app, &admin, "GET", &format!("/v1/deliveries/{}", deliveries[0]["id"]), None)
                    .await;
            assert!(detail["attempts_log"].as_array().unwrap().is_empty(), "no request was made");
        }
        assert!(
            partner
                .seen()
                .iter()
                .all(|s| s.target != "/tutorial" && !s.target.starts_with("/skip"))
        );
        app.stop().await;
    }
}

fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn signatures_verify_with_the_standard_webhooks_algorithm_for_every_secret() {
    let db = TestDb::new(Backend::Sqlite).await;
    let clock = manual_clock();
    let app = service(&db, Arc::clone(&clock)).await;
    let admin = app.key(Role::Admin).await;
    let partner = Partner::start().await;
    let old_secret =
        format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    let new_secret =
        format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([9u8; 24]));
    let signed = create(
        &app,
        &admin,
        json!({
            "name": "signed", "method": "POST", "url": format!("{}/hook", partner.url),
            "body": {"format": "json", "template": {"tx": "{transaction_id}", "cv": "{fine_value}"}},
            "signing": {"secrets": [old_secret, new_secret]},
        }),
    )
    .await;
    let generated = create(
        &app,
        &admin,
        json!({"name": "generated", "method": "POST", "url": format!("{}/generated", partner.url),
               "body": {"format": "json", "template": {"tx": "{transaction_id}"}}, "signing": {"secrets": []}}),
    )
    .await;
    let generated_secret = generated["generated_secret"].as_str().unwrap().to_owned();
    assert!(generated_secret.starts_with("whsec_"));
    let masked = &generated["destination"]["config"]["signing"]["secrets"][0];
    assert_ne!(masked.as_str().unwrap(), generated_secret, "shown masked after creation");

    post_postback(&app, Spec::new(1, "sig-1").fine(3).bytes()).await;
    let seen = partner.wait_for(10, "two deliveries", |s| s.len() == 2).await;
    for request in &seen {
        let id = &request.headers["webhook-id"];
        let timestamp = &request.headers["webhook-timestamp"];
        assert_eq!(*id, request.key(), "webhook-id is the idempotency key");
        assert_eq!(timestamp.parse::<i64>().unwrap(), clock.now().timestamp());
        let signatures: Vec<&str> = request.headers["webhook-signature"].split(' ').collect();
        let secrets: Vec<&str> = if request.target == "/hook" {
            vec![&old_secret, &new_secret]
        } else {
            vec![&generated_secret]
        };
        assert_eq!(signatures.len(), secrets.len());
        for secret in secrets {
            let expected = expected_signature(secret, id, timestamp, &request.body);
            assert!(signatures.contains(&expected.as_str()), "{expected} in {signatures:?}");
        }
    }

    // A document sent back with masked secrets keeps them.
    let id = signed["destination"]["id"].as_i64().unwrap();
    let (_, mut shown) = send(&app, &admin, "GET", &format!("/v1/destinations/{id}"), None).await;
    assert!(shown["config"]["signing"]["secrets"][0].as_str().unwrap().starts_with("whsec_****"));
    shown["config"]["name"] = json!("signed-renamed");
    let (status, body) =
        send(&app, &admin, "PUT", &format!("/v1/destinations/{id}"), Some(shown["config"].clone()))
            .await;
    assert_eq!(status, 200, "{body}");
    clock.advance(chrono::Duration::seconds(30));
    post_postback(&app, Spec::new(1, "sig-2").fine(3).bytes()).await;
    let seen = partner.wait_for(10, "the next deliveries", |s| s.len() == 4).await;
    let request = seen.iter().rfind(|s| s.target == "/hook").unwrap();
    let expected = expected_signature(
        &old_secret,
        &request.headers["webhook-id"],
        &request.headers["webhook-timestamp"],
        &request.body,
    );
    assert!(request.headers["webhook-signature"].split(' ').any(|s| s == expected));
    app.stop().await;
}

#[tokio::test]
async fn a_partner_failing_then_recovering_gets_every_delivery_exactly_once() {
    for db in each_backend().await {
        let clock = manual_clock();
        let app = service(&db, Arc::clone(&clock)).await;
        let admin = app.key(Role::Admin).await;
        let partner = Partner::start().await;
        partner.answer_with(503);
        let destination = create(
            &app,
            &admin,
            json!({"name": "flaky", "url": format!("{}/pb?tx={{transaction_id}}", partner.url)}),
        )
        .await;
        let id = destination["destination"]["id"].as_i64().unwrap();
        // One at a time, each failure recorded (the breaker counts it before the result is
        // written) before the next postback arrives.
        for i in 0..5 {
            post_postback(&app, Spec::new(1, &format!("flaky-{i}")).fine(1).bytes()).await;
            eventually(10, "the failure to be recorded", || async {
                deliveries_of(&app, &admin, id)
                    .await
                    .iter()
                    .filter(|d| d["attempts"] == 1 && d["last_status"] == 503)
                    .count()
                    == i + 1
            })
            .await;
        }
        post_postback(&app, Spec::new(1, "flaky-5").fine(1).bytes()).await;
        assert_eq!(partner.seen().len(), 5, "five failed first attempts");
        let now_ms = clock.now().timestamp_millis();
        let deliveries = deliveries_of(&app, &admin, id).await;
        for delivery in deliveries.iter().filter(|d| d["attempts"] == 1) {
            assert_eq!(delivery["state"], "pending");
            let next = delivery["next_attempt_at_ms"].as_i64().unwrap() - now_ms;
            assert!((4_000..=6_000).contains(&next), "first retry after 5 s ± 20 %: {next}");
        }
        // Five failures in a row opened the circuit breaker: the sixth waits, and nothing is due
        // until the clock moves, whatever the wall clock does.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(partner.seen().len(), 5);
        assert_eq!(deliveries.iter().filter(|d| d["attempts"] == 0).count(), 1);

        partner.answer_with(200);
        // The breaker pauses 30 s; the retries are due after ~5 s.
        clock.advance(chrono::Duration::seconds(31));
        partner
            .wait_for(15, "six successes", |s| s.iter().filter(|s| s.status == 200).count() == 6)
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let successes = partner.successes_by_key();
        assert_eq!(successes.len(), 6);
        assert!(successes.values().all(|n| *n == 1), "{successes:?}");
        assert_eq!(partner.seen().len(), 11, "five failures, then one success per delivery");
        eventually(10, "every delivery delivered", || async {
            deliveries_of(&app, &admin, id).await.iter().all(|d| d["state"] == "delivered")
        })
        .await;
        let first = deliveries_of(&app, &admin, id)
            .await
            .iter()
            .find(|d| d["attempts"] == 2)
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let (_, detail) = send(&app, &admin, "GET", &format!("/v1/deliveries/{first}"), None).await;
        let log: Vec<(Value, Value)> = detail["attempts_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["status"].clone(), a["trigger"].clone()))
            .collect();
        assert_eq!(log, vec![(json!(503), json!("first")), (json!(200), json!("retry"))]);
        app.stop().await;
    }
}

#[tokio::test]
async fn gone_disables_the_destination_and_so_does_failing_for_too_long() {
    let db = TestDb::new(Backend::Sqlite).await;
    let clock = manual_clock();
    let app = service(&db, Arc::clone(&clock)).await;
    let admin = app.key(Role::Admin).await;
    let gone = Partner::start().await;
    gone.answer_with(410);
    let failing = Partner::start().await;
    failing.answer_with(500);
    let a = create(&app, &admin, json!({"name": "gone", "url": format!("{}/x", gone.url)})).await["destination"]["id"]
        .as_i64()
        .unwrap();
    let b = create(
        &app,
        &admin,
        json!({"name": "failing", "url": format!("{}/y", failing.url), "disable_after_secs": 60, "retry_schedule_secs": [20, 20, 20, 20, 20, 20]}),
    )
    .await["destination"]["id"]
        .as_i64()
        .unwrap();
    post_postback(&app, Spec::new(1, "gone-1").fine(1).bytes()).await;
    gone.wait_for(10, "the 410", |s| s.len() == 1).await;
    eventually(10, "the destination to be disabled", || async {
        send(&app, &admin, "GET", &format!("/v1/destinations/{a}"), None).await.1["config"]["enabled"] == false
    })
    .await;
    let (_, view) = send(&app, &admin, "GET", &format!("/v1/destinations/{a}"), None).await;
    assert!(view["disabled_reason"].as_str().unwrap().contains("410"), "{view}");
    assert_eq!(deliveries_of(&app, &admin, a).await[0]["state"], "dead");

    // Keep failing: attempts at 0, 25, 50 and 75 s; the one at 75 s passes the 60 s limit.
    for attempts in 2..=4 {
        eventually(10, "the last failure to be recorded", || async {
            deliveries_of(&app, &admin, b).await[0]["attempts"] == attempts - 1
                && deliveries_of(&app, &admin, b).await[0]["lease_expires_at_ms"].is_null()
        })
        .await;
        clock.advance(chrono::Duration::seconds(25));
        failing.wait_for(10, "the next retry", |s| s.len() >= attempts as usize).await;
    }
    eventually(10, "the failing destination to be disabled", || async {
        send(&app, &admin, "GET", &format!("/v1/destinations/{b}"), None).await.1["config"]["enabled"] == false
    })
    .await;
    let (_, view) = send(&app, &admin, "GET", &format!("/v1/destinations/{b}"), None).await;
    assert!(view["disabled_reason"].as_str().unwrap().contains("failed for"), "{view}");
    let pending = deliveries_of(&app, &admin, b).await;
    assert_eq!(
        pending[0]["state"], "pending",
        "its delivery waits for the destination to come back"
    );

    // Disabled destinations get no new deliveries; enabling one clears the reason and resumes.
    post_postback(&app, Spec::new(1, "gone-2").fine(1).bytes()).await;
    assert_eq!(deliveries_of(&app, &admin, a).await.len(), 1);
    failing.answer_with(200);
    let (_, mut view) = send(&app, &admin, "GET", &format!("/v1/destinations/{b}"), None).await;
    view["config"]["enabled"] = json!(true);
    let (status, updated) =
        send(&app, &admin, "PUT", &format!("/v1/destinations/{b}"), Some(view["config"].clone()))
            .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["disabled_reason"], Value::Null);
    clock.advance(chrono::Duration::seconds(25));
    failing
        .wait_for(10, "the delivery after re-enabling", |s| s.iter().any(|s| s.status == 200))
        .await;
    app.stop().await;
}

#[tokio::test]
async fn two_receivers_on_one_database_never_send_a_delivery_twice() {
    for backend in backends().into_iter().filter(|b| *b != Backend::Sqlite) {
        two_receivers_never_send_a_delivery_twice(backend).await;
    }
}

async fn two_receivers_never_send_a_delivery_twice(backend: Backend) {
    let db = TestDb::new(backend).await;
    let partner = Partner::start().await;
    partner.delay(Duration::from_millis(50));
    let first = TestApp::spawn_full(&db, Arc::new(SystemClock), for_tests).await;
    let second = TestApp::spawn_full(&db, Arc::new(SystemClock), for_tests).await;
    let admin = first.key(Role::Admin).await;
    create(
        &first,
        &admin,
        json!({"name": "shared", "url": format!("{}/pb", partner.url), "max_concurrency": 16}),
    )
    .await;
    let total = 60;
    for i in 0..total {
        let app = if i % 2 == 0 { &first } else { &second };
        post_postback(app, Spec::new(1, &format!("pg-{i}")).fine(1).bytes()).await;
    }
    partner.wait_for(30, "every delivery", |s| s.len() >= total).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let successes = partner.successes_by_key();
    assert_eq!(successes.len(), total);
    assert!(successes.values().all(|n| *n == 1), "a delivery was sent twice: {successes:?}");
    assert_eq!(partner.max_in_flight_per_key(), 1);
    assert!(
        partner.max_in_flight() <= 16,
        "the concurrency cap is shared: {}",
        partner.max_in_flight()
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn the_rate_limit_and_the_concurrency_cap_hold() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn_full(&db, Arc::new(SystemClock), for_tests).await;
    let admin = app.key(Role::Admin).await;
    let limited = Partner::start().await;
    let single = Partner::start().await;
    single.delay(Duration::from_millis(30));
    create(&app, &admin, json!({"name": "limited", "url": format!("{}/l", limited.url), "rate_limit": {"per_second": 20.0, "burst": 2.0}})).await;
    create(
        &app,
        &admin,
        json!({"name": "single", "url": format!("{}/s", single.url), "max_concurrency": 1}),
    )
    .await;
    let total = 30;
    let specs: Vec<Vec<u8>> =
        (0..total).map(|i| Spec::new(1, &format!("rate-{i}")).fine(1).bytes()).collect();
    let network = app.key(Role::Ingest).await;
    let body =
        specs.iter().map(|b| String::from_utf8(b.clone()).unwrap()).collect::<Vec<_>>().join("\n");
    let response = app.post_network(&network, "application/x-ndjson", body).await;
    assert_eq!(response.status(), 200);
    let seen = limited.wait_for(20, "every limited delivery", |s| s.len() == total).await;
    let times: Vec<_> = seen.iter().map(|s| s.at).collect();
    let span = times[total - 1] - times[0];
    // Two at once, then one every 50 ms: 28 more take at least 1.4 s.
    assert!(
        span >= Duration::from_millis(1_300),
        "30 requests at 20/s with a burst of 2 took {span:?}"
    );
    for (i, start) in times.iter().enumerate() {
        let in_window =
            times[i..].iter().take_while(|t| **t - *start < Duration::from_millis(500)).count();
        assert!(in_window <= 2 + 10 + 1, "{in_window} requests within half a second");
    }
    single.wait_for(20, "every single-file delivery", |s| s.len() == total).await;
    assert_eq!(single.max_in_flight(), 1);
    app.stop().await;
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.key(Role::Admin).await;
    let partner = Partner::start().await;
    for url in [
        partner.url.clone(),
        "http://localhost:9/x".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.1.2.3/x".to_owned(),
        "http://[::1]:9/x".to_owned(),
        "http://[::ffff:127.0.0.1]/x".to_owned(),
    ] {
        let (status, body) =
            send(&app, &admin, "POST", "/v1/destinations", Some(json!({"name": "x", "url": url})))
                .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url");
        assert!(body["error"]["message"].as_str().unwrap().contains("public internet"), "{body}");
    }
    let (status, body) = send(
        &app,
        &admin,
        "POST",
        "/v1/destinations",
        Some(json!({"name": "public", "url": "https://93.184.216.34/pb"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;

    // The sender checks again at send time: literal addresses, and names through the resolver.
    use skan_receiver::dispatch::policy::AttemptResult;
    use skan_receiver::dispatch::{HttpSender, OutgoingRequest, Sender as _};
    let request = |url: String| OutgoingRequest {
        method: "GET".to_owned(),
        url,
        headers: Vec::new(),
        body: None,
        timeout: Duration::from_secs(2),
    };
    let strict = HttpSender::new(false).unwrap();
    let port = partner.url.rsplit(':').next().unwrap().to_owned();
    for url in [format!("{}/a", partner.url), format!("http://localhost:{port}/b")] {
        let outcome = strict.send(request(url.clone())).await;
        assert!(
            matches!(&outcome.result, AttemptResult::Refused(m) if m.contains("public internet")),
            "{url}: {:?}",
            outcome.result
        );
    }
    assert!(partner.seen().is_empty(), "nothing reached the private address");
    let allowed =
        HttpSender::new(true).unwrap().send(request(format!("http://localhost:{port}/c"))).await;
    assert!(
        matches!(allowed.result, AttemptResult::Http { status: 200, .. }),
        "{:?}",
        allowed.result
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_answers_are_read_up_to_a_cap() {
    use skan_receiver::dispatch::policy::AttemptResult;
    use skan_receiver::dispatch::sender::RESPONSE_EXCERPT_BYTES;
    use skan_receiver::dispatch::{HttpSender, OutgoingRequest, Sender as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let target = Partner::start().await;
    let redirect_to = format!("{}/landed", target.url);
    let router = axum::Router::new()
        .route(
            "/moved",
            axum::routing::get(
                move || async move { axum::response::Redirect::temporary(&redirect_to) },
            ),
        )
        .route("/big", axum::routing::get(|| async { "x".repeat(1 << 20) }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let sender = HttpSender::new(true).unwrap();
    let request = |path: &str| OutgoingRequest {
        method: "GET".to_owned(),
        url: format!("{base}{path}"),
        headers: Vec::new(),
        body: None,
        timeout: Duration::from_secs(5),
    };
    let moved = sender.send(request("/moved")).await;
    assert!(matches!(moved.result, AttemptResult::Http { status: 307, .. }), "{:?}", moved.result);
    assert!(target.seen().is_empty(), "the redirect was not followed");
    let big = sender.send(request("/big")).await;
    assert!(matches!(big.result, AttemptResult::Http { status: 200, .. }));
    assert_eq!(big.excerpt.unwrap().len(), RESPONSE_EXCERPT_BYTES);
}

#[tokio::test]
async fn destinations_are_managed_by_admins_with_field_specific_errors() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = service(&db, manual_clock()).await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    let (status, body) = send(&app, &viewer, "GET", "/v1/destinations", None).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(&app, &viewer, "GET", "/v1/deliveries", None).await;
    assert_eq!(status, 403);

    for (doc, field, words) in [
        (
            json!({"name": "a", "url": "https://p.example/x?v={nope}"}),
            "url",
            "unknown macro {nope}",
        ),
        (json!({"name": "a", "url": "https://{app_id}.example/x"}), "url", "scheme and host"),
        (json!({"name": "a", "url": "ftp://p.example/x"}), "url", "not http or https"),
        (
            json!({"name": "a", "url": "https://p.example/x", "body": {"format": "form", "template": "a=1"}}),
            "body",
            "GET",
        ),
        (
            json!({"name": "a", "url": "https://p.example/x", "signing": {"secrets": ["whsec_AAAA"]}}),
            "signing.secrets[0]",
            "24 to 64",
        ),
        (
            json!({"name": "a", "url": "https://p.example/x", "headers": {"Host": "x"}}),
            "headers.Host",
            "set by skan-receiver",
        ),
        (
            json!({"name": "a", "url": "https://p.example/x", "timeout_ms": 5}),
            "timeout_ms",
            "100-30000",
        ),
        (
            json!({"name": "a", "url": "https://p.example/x", "filters": {"windows": [3]}}),
            "filters.windows",
            "0, 1 and 2",
        ),
        (json!({"name": "", "url": "https://p.example/x"}), "name", "1-200"),
    ] {
        let (status, body) =
            send(&app, &admin, "POST", "/v1/destinations", Some(doc.clone())).await;
        assert_eq!(status, 422, "{doc}: {body}");
        assert_eq!(body["error"]["code"], "invalid_destination");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(words), "{body}");
    }
    let (status, body) = send(
        &app,
        &admin,
        "POST",
        "/v1/destinations",
        Some(json!({"name": "a", "url": "https://p.example/", "colour": 1})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("colour"), "{body}");

    let created =
        create(&app, &admin, json!({"name": "a", "url": "https://p.example/x?cv={fine_value}"}))
            .await;
    let id = created["destination"]["id"].as_i64().unwrap();
    assert_eq!(
        created["destination"]["config"]["retry_schedule_secs"],
        json!([5, 300, 1800, 7200, 18000, 36000, 36000])
    );
    let (status, body) = send(
        &app,
        &admin,
        "POST",
        "/v1/destinations",
        Some(json!({"name": "a", "url": "https://p.example/"})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")));
    let (_, list) = send(&app, &admin, "GET", "/v1/destinations", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _) = send(&app, &admin, "DELETE", &format!("/v1/destinations/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = send(&app, &admin, "GET", &format!("/v1/destinations/{id}"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = send(&app, &admin, "GET", "/v1/deliveries?state=sent", None).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("state")));
    let (status, _) = send(&app, &admin, "POST", "/v1/deliveries/12345/retry", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn replay_sends_a_time_range_again_and_retry_and_test_send_work() {
    for db in each_backend().await {
        let clock = manual_clock();
        let app = service(&db, Arc::clone(&clock)).await;
        let admin = app.key(Role::Admin).await;
        let partner = Partner::start().await;
        // Postbacks stored before the destination exists.
        let early = post_postback(&app, Spec::new(1, "replay-1").fine(1).bytes()).await;
        clock.advance(chrono::Duration::hours(2));
        post_postback(&app, Spec::new(1, "replay-2").fine(1).bytes()).await;
        let id = create(
            &app,
            &admin,
            json!({"name": "late", "url": format!("{}/late?tx={{transaction_id}}", partner.url)}),
        )
        .await["destination"]["id"]
            .as_i64()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            partner.seen().is_empty(),
            "a new destination does not get old postbacks by itself"
        );
        let (status, counts) = send(
            &app,
            &admin,
            "POST",
            &format!("/v1/destinations/{id}/replay"),
            Some(json!({"from": "2026-11-20T11:00:00Z", "to": "2026-11-20T13:00:00Z"})),
        )
        .await;
        assert_eq!(status, 202, "{counts}");
        assert_eq!(counts, json!({"matched": 1, "created": 1, "requeued": 0}));
        let seen = partner.wait_for(10, "the replayed delivery", |s| s.len() == 1).await;
        assert_eq!(seen[0].target, "/late?tx=replay-1");
        let (status, body) = send(
            &app,
            &admin,
            "POST",
            &format!("/v1/destinations/{id}/replay"),
            Some(json!({"from": "2026-11-21", "to": "2026-11-20"})),
        )
        .await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("to")));

        // A manual retry of a delivered delivery sends it once more, with the same key.
        let delivery = deliveries_of(&app, &admin, id).await[0].clone();
        assert_eq!(delivery["postback_id"], early);
        eventually(10, "the delivery to be recorded", || async {
            send(&app, &admin, "GET", &format!("/v1/deliveries/{}", delivery["id"]), None).await.1["state"] == "delivered"
        })
        .await;
        let (status, body) =
            send(&app, &admin, "POST", &format!("/v1/deliveries/{}/retry", delivery["id"]), None)
                .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["manual"], true);
        let seen = partner.wait_for(10, "the manual attempt", |s| s.len() == 2).await;
        assert_eq!(seen[0].key(), seen[1].key());
        eventually(10, "the manual attempt to be logged", || async {
            let (_, d) =
                send(&app, &admin, "GET", &format!("/v1/deliveries/{}", delivery["id"]), None)
                    .await;
            d["attempts_log"].as_array().is_some_and(|l| l.len() == 2)
        })
        .await;
        let (_, detail) =
            send(&app, &admin, "GET", &format!("/v1/deliveries/{}", delivery["id"]), None).await;
        assert_eq!(detail["attempts_log"][1]["trigger"], "manual");

        // A test send reaches the partner with a sample and is not stored.
        let (status, test) =
            send(&app, &admin, "POST", &format!("/v1/destinations/{id}/test"), None).await;
        assert_eq!(status, 200, "{test}");
        assert_eq!(
            (test["outcome"].as_str(), test["status"].as_u64()),
            (Some("delivered"), Some(200))
        );
        let seen = partner.wait_for(10, "the test send", |s| s.len() == 3).await;
        assert!(seen[2].key().starts_with("dlv_test_"));
        assert_eq!(deliveries_of(&app, &admin, id).await.len(), 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn destinations_in_the_settings_file_are_applied_by_name() {
    let db = TestDb::new(Backend::Sqlite).await;
    let partner = Partner::start().await;
    let toml = format!(
        r#"
[[destinations]]
name = "from-file"
method = "POST"
url = "{}/file?app={{app_id}}"
max_concurrency = 2
[destinations.body]
format = "json"
template = {{ cv = "{{fine_value}}", won = "{{did_win}}" }}
[destinations.filters]
apps = [5]
"#,
        partner.url
    );
    let file: skan_receiver::config::FileConfig = toml::from_str(&toml).unwrap();
    let destinations = file.destinations.clone();
    let clock = manual_clock();
    let app =
        TestApp::spawn_full(&db, Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>, |s| {
            for_tests(s);
            s.file.destinations = destinations.clone();
        })
        .await;
    let admin = app.key(Role::Admin).await;
    post_postback(&app, Spec::new(5, "file-1").fine(9).bytes()).await;
    post_postback(&app, Spec::new(6, "file-2").fine(9).bytes()).await;
    let seen = partner.wait_for(10, "the delivery", |s| !s.is_empty()).await;
    assert_eq!(seen[0].target, "/file?app=5");
    assert_eq!(seen[0].json(), json!({"cv": 9, "won": true}));
    let (_, list) = send(&app, &admin, "GET", "/v1/destinations", None).await;
    assert_eq!(list[0]["config"]["name"], "from-file");
    app.stop().await;

    // Starting again with the same file changes nothing; a changed document updates by name.
    let mut changed = file.destinations.clone();
    changed[0].max_concurrency = 3;
    let app = TestApp::spawn_full(&db, clock, |s| {
        for_tests(s);
        s.file.destinations = changed;
    })
    .await;
    let (_, list) = send(&app, &admin, "GET", "/v1/destinations", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["config"]["max_concurrency"], 3);
    app.stop().await;
}

/// The service process, killed without warning and started again.
struct Process {
    child: std::process::Child,
    base: String,
}

impl Process {
    async fn start(config: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_skan-receiver"))
            .args([
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--rate-limit-per-ip",
                "0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = skan_receiver::dispatch::sender::client_builder().build().unwrap();
        let url = format!("{base}/readyz");
        eventually(30, "the service to come up", || {
            let request = client.get(&url).send();
            async move { request.await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        Self { child, base }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_delivery_delivers_everything_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let partner = Partner::start().await;
    partner.delay(Duration::from_millis(250));
    let config = dir.path().join("skan.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "sqlite://{db}"
keys = "{keys}"
[dispatch]
allow_private_destinations = true
poll_interval_ms = 50
[[destinations]]
name = "slow"
url = "{partner}/slow?tx={{transaction_id}}"
max_concurrency = 2
timeout_ms = 1000
"#,
            db = dir.path().join("svc.db").display(),
            keys = repo_path("testdata/keys").display(),
            partner = partner.url,
        ),
    )
    .unwrap();
    let service = Process::start(&config).await;
    let client = skan_receiver::dispatch::sender::client_builder().build().unwrap();
    let total = 16;
    for i in 0..total {
        let response = client
            .post(format!("{}/.well-known/skadnetwork/report-attribution/", service.base))
            .body(Spec::new(1, &format!("crash-{i}")).fine(1).bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    partner.wait_for(20, "a few deliveries", |s| s.len() >= 3).await;
    service.kill();
    let before = partner.successes_by_key().len();
    assert!(before < total, "killed mid-way ({before} of {total} delivered)");

    let service = Process::start(&config).await;
    partner
        .wait_for(30, "every delivery after the restart", |_| {
            partner.successes_by_key().len() == total
        })
        .await;
    let successes = partner.successes_by_key();
    let repeats: usize = successes.values().map(|n| n - 1).sum();
    assert!(repeats <= 2, "only requests in flight at the crash may repeat: {successes:?}");
    let store = skan_receiver::store::connect(
        &format!("sqlite://{}", dir.path().join("svc.db").display()),
        &skan_receiver::store::ConnectOptions { migrate: false, ..Default::default() },
    )
    .await
    .unwrap();
    eventually(10, "every delivery recorded as delivered", || async {
        let list = store
            .list_deliveries(&skan_receiver::store::DeliveryQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        list.len() == total && list.iter().all(|d| d.state == "delivered")
    })
    .await;
    service.kill();
}

/// Deliveries per second from one SQLite receiver to a fast partner on loopback. Prints the
/// number; run with `cargo test --release --test it -- --ignored --nocapture delivery_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn delivery_throughput() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn_full(&db, Arc::new(SystemClock), for_tests).await;
    let admin = app.key(Role::Admin).await;
    let network = app.key(Role::Ingest).await;
    let partner = Partner::start().await;
    create(&app, &admin, json!({"name": "fast", "url": format!("{}/pb?tx={{transaction_id}}&cv={{fine_value}}", partner.url), "max_concurrency": 32})).await;
    let total = 5_000;
    let lines: Vec<String> = (0..total)
        .map(|i| String::from_utf8(Spec::new(1, &format!("speed-{i}")).fine(1).bytes()).unwrap())
        .collect();
    let started = std::time::Instant::now();
    for chunk in lines.chunks(500) {
        let response = app.post_network(&network, "application/x-ndjson", chunk.join("\n")).await;
        assert_eq!(response.status(), 200);
    }
    let ingested = started.elapsed();
    partner.wait_for(300, "every delivery", |s| s.len() >= total).await;
    let elapsed = started.elapsed();
    println!(
        "{total} postbacks ingested in {:.2} s, all delivered after {:.2} s: {:.0} deliveries/s",
        ingested.as_secs_f64(),
        elapsed.as_secs_f64(),
        f64::from(u32::try_from(total).unwrap()) / elapsed.as_secs_f64()
    );
    app.stop().await;
}

#[tokio::test]
async fn the_worker_steps_deterministically_through_a_failure_a_backoff_and_a_delivery() {
    use skan_receiver::dispatch::{DispatchSettings, Dispatcher, HttpSender, RunOutcome};
    use skan_receiver::schema_versions::SchemaVersions;
    for db in each_backend().await {
        let clock = manual_clock();
        // No background dispatcher: only the steps below send anything.
        let app = TestApp::spawn_full(
            &db,
            Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>,
            |s| {
                for_tests(s);
                s.dispatch_enabled = false;
            },
        )
        .await;
        let admin = app.key(Role::Admin).await;
        let partner = Partner::start().await;
        partner.answer_with(503);
        create(
            &app,
            &admin,
            json!({"name": "stepped", "url": format!("{}/hook", partner.url), "retry_schedule_secs": [60]}),
        )
        .await;
        post_postback(&app, Spec::new(1, "step-1").fine(3).bytes()).await;
        let dispatcher = Dispatcher::new(
            Arc::clone(&app.store),
            Arc::new(SchemaVersions::new(
                app.store.clone(),
                Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>,
            )),
            Arc::new(HttpSender::new(true).unwrap()),
            Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>,
            DispatchSettings { allow_private: true, ..DispatchSettings::default() },
        );
        let now = clock.now_ms();
        assert_eq!(
            dispatcher.run_once(now).await.unwrap(),
            RunOutcome { claimed: 1, retried: 1, ..RunOutcome::default() }
        );
        // Not due again before its backoff (60 s, at most +20 % jitter) has passed.
        assert_eq!(dispatcher.run_once(now + 40_000).await.unwrap(), RunOutcome::default());
        partner.answer_with(200);
        assert_eq!(
            dispatcher.run_once(now + 73_000).await.unwrap(),
            RunOutcome { claimed: 1, delivered: 1, ..RunOutcome::default() }
        );
        assert_eq!(partner.seen().len(), 2);
        assert_eq!(dispatcher.run_once(now + 200_000).await.unwrap(), RunOutcome::default());
        app.stop().await;
    }
}

#[tokio::test]
async fn a_partner_failing_at_concurrency_4_sits_out_30_s_then_gets_one_probe() {
    use skan_receiver::dispatch::{DispatchSettings, Dispatcher, HttpSender, RunOutcome};
    use skan_receiver::schema_versions::SchemaVersions;
    let db = TestDb::new(Backend::Sqlite).await;
    let clock = manual_clock();
    let dyn_clock = Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>;
    let app = TestApp::spawn_full(&db, Arc::clone(&dyn_clock), |s| {
        for_tests(s);
        s.dispatch_enabled = false;
    })
    .await;
    let admin = app.key(Role::Admin).await;
    let partner = Partner::start().await;
    partner.answer_with(503);
    let id = create(
        &app,
        &admin,
        json!({"name": "down", "url": format!("{}/hook", partner.url), "max_concurrency": 4, "retry_schedule_secs": [1, 1, 1, 1, 1, 1]}),
    )
    .await["destination"]["id"]
        .as_i64()
        .unwrap();
    for n in 0..8 {
        post_postback(&app, Spec::new(1, &format!("down-{n}")).fine(1).bytes()).await;
    }
    let dispatcher = Dispatcher::new(
        Arc::clone(&app.store),
        Arc::new(SchemaVersions::new(app.store.clone(), Arc::clone(&dyn_clock))),
        Arc::new(HttpSender::new(true).unwrap()),
        Arc::clone(&dyn_clock),
        DispatchSettings { allow_private: true, ..DispatchSettings::default() },
    );
    let t = clock.now_ms();
    // Two waves of 4 failures: the fifth opens the breaker; the three still in flight with it
    // do not reopen it.
    assert_eq!(dispatcher.run_once(t).await.unwrap().retried, 4);
    assert_eq!(dispatcher.run_once(t + 2_000).await.unwrap().retried, 4);
    let health = dispatcher.destination(id).await.unwrap().health.unwrap();
    assert_eq!((health.breaker.as_str(), health.breaker_open_until_ms), ("open", Some(t + 32_000)));
    // Paused for the documented 30 s: nothing goes, though every retry is due.
    assert_eq!(dispatcher.run_once(t + 31_000).await.unwrap(), RunOutcome::default());
    // Then exactly one probe; its failure doubles the pause once.
    let probe = dispatcher.run_once(t + 32_000).await.unwrap();
    assert_eq!((probe.claimed, probe.retried), (1, 1));
    let health = dispatcher.destination(id).await.unwrap().health.unwrap();
    assert_eq!(health.breaker_open_until_ms, Some(t + 32_000 + 60_000));
    assert_eq!(partner.seen().len(), 9);
    app.stop().await;
}

#[tokio::test]
async fn signing_secrets_are_sealed_at_rest_and_move_to_a_new_key_at_start_up() {
    use skan_receiver::dispatch::sealing::SecretKeys;
    const OLD: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const NEW: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    for db in each_backend().await {
        let clock = manual_clock();
        let with_keys = |keys: &'static str| {
            move |s: &mut Settings| {
                for_tests(s);
                s.secret_keys = SecretKeys::parse(keys).unwrap();
            }
        };
        let secret =
            format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([5u8; 32]));
        let raw = |app: &TestApp, id: i64| {
            let store = Arc::clone(&app.store);
            async move { store.destination(id).await.unwrap().unwrap().config }
        };

        // Without a key: stored as given (today's behaviour).
        let app = service(&db, Arc::clone(&clock)).await;
        let admin = app.key(Role::Admin).await;
        let partner = Partner::start().await;
        let id = create(
            &app,
            &admin,
            json!({"name": "sealed", "url": format!("{}/hook", partner.url), "signing": {"secrets": [secret]}}),
        )
        .await["destination"]["id"]
            .as_i64()
            .unwrap();
        assert!(raw(&app, id).await.contains(&secret));
        app.stop().await;

        // A key given: sealed at start-up; the secret is no longer in the database.
        let app = TestApp::spawn_full(
            &db,
            Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>,
            with_keys(OLD),
        )
        .await;
        let sealed = raw(&app, id).await;
        assert!(sealed.contains("sealed:v1:") && !sealed.contains(&secret), "{sealed}");
        app.stop().await;

        // Rotation: new key first, old key after; everything moves to the new key, which alone
        // then opens it, and deliveries still sign with the original secret.
        let app = TestApp::spawn_full(
            &db,
            Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>,
            with_keys(concat!(
                "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
                "\n",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            )),
        )
        .await;
        let rotated = raw(&app, id).await;
        assert!(rotated.contains("sealed:v1:") && rotated != sealed, "{rotated}");
        app.stop().await;
        let app = TestApp::spawn_full(
            &db,
            Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>,
            with_keys(NEW),
        )
        .await;
        let admin = app.key(Role::Admin).await;
        let (status, shown) =
            send(&app, &admin, "GET", &format!("/v1/destinations/{id}"), None).await;
        assert_eq!(status, 200, "{shown}");
        assert!(
            shown["config"]["signing"]["secrets"][0].as_str().unwrap().starts_with("whsec_****")
        );
        post_postback(&app, Spec::new(1, &format!("sealed-{}", db.url.len())).fine(3).bytes())
            .await;
        let seen = partner.wait_for(10, "the delivery", |s| !s.is_empty()).await;
        let request = &seen[0];
        let expected = expected_signature(
            &secret,
            &request.headers["webhook-id"],
            &request.headers["webhook-timestamp"],
            &request.body,
        );
        assert!(request.headers["webhook-signature"].split(' ').any(|s| s == expected));
        app.stop().await;
    }
}

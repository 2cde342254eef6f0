//! The fixture month: postbacks of app 777 arriving in November 2026 with values chosen so that
//! every metric can be computed by hand, and the schemas that decode them.

use serde_json::{Value, json};
use skan_receiver::clock::ManualClock;
use skan_receiver::skan::CoarseValue;

use crate::helpers::{Spec, TestApp};

pub(crate) const APP: u64 = 777;

/// The schema in effect for the fixture month.
pub(crate) fn schema_v1() -> Value {
    json!({
        "currency": "USD",
        "windows": [
            {"window": 0, "fine": [
                {"value": 0, "label": "install", "coarse": "low"},
                {"value": 1, "label": "tutorial", "events": [{"name": "tutorial"}], "revenue": {"min": 0, "max": 1}, "coarse": "low"},
                {"value": 5, "label": "buyer", "events": [{"name": "purchase", "min_count": 1, "max_count": 2}], "revenue": {"min": 5, "max": 10}, "coarse": "medium"}
            ]},
            {"window": 1, "coarse": [{"value": "medium", "revenue": {"min": 1, "max": 5}}]},
            {"window": 2, "coarse": [{"value": "high", "events": [{"name": "purchase", "min_count": 2}], "revenue": {"min": 10}}]}
        ]
    })
}

/// A draft that values the same postbacks differently.
pub(crate) fn draft() -> Value {
    json!({
        "currency": "USD",
        "windows": [
            {"window": 0, "fine": [
                {"value": 0, "label": "install", "coarse": "low"},
                {"value": 1, "label": "tutorial", "events": [{"name": "tutorial"}], "revenue": {"min": 1, "max": 2}, "coarse": "low"},
                {"value": 5, "label": "buyer", "events": [{"name": "purchase", "min_count": 1, "max_count": 2}], "revenue": {"min": 10, "max": 20}, "coarse": "medium"}
            ]},
            {"window": 2, "coarse": [{"value": "high", "events": [{"name": "purchase", "min_count": 2}], "revenue": {"min": 20}}]}
        ]
    })
}

/// Ingest the fixture month: ten postbacks of app 777 arriving in November 2026.
pub(crate) async fn ingest_fixture(app: &TestApp, clock: &ManualClock) -> Vec<i64> {
    let at = |day: u32| format!("2026-11-{day:02}T12:00:00Z").parse().unwrap();
    let specs: Vec<(u32, Vec<u8>)> = vec![
        (3, Spec::new(APP, "fx-01").fine(0).bytes()),
        (4, Spec::new(APP, "fx-02").fine(1).bytes()),
        (5, Spec::new(APP, "fx-03").fine(1).bytes()),
        (6, Spec::new(APP, "fx-04").fine(5).bytes()),
        (7, Spec::new(APP, "fx-05").bytes()),
        (10, Spec::new(APP, "fx-06").coarse(1, CoarseValue::Medium).bytes()),
        (20, Spec::new(APP, "fx-07").coarse(2, CoarseValue::High).bytes()),
        (21, Spec { did_win: false, ..Spec::new(APP, "fx-08") }.bytes()),
        (22, Spec { redownload: true, ..Spec::new(APP, "fx-09").fine(1) }.bytes()),
        (23, {
            let mut forged: Value =
                serde_json::from_slice(&Spec::new(APP, "fx-10").fine(5).bytes()).unwrap();
            forged["did-win"] = json!(false);
            serde_json::to_vec(&forged).unwrap()
        }),
    ];
    let mut ids = Vec::new();
    for (day, body) in specs {
        clock.set(at(day));
        let result: Value = app.post_apple(body).await.json().await.unwrap();
        assert!(matches!(result["result"].as_str(), Some("accepted" | "invalid")), "{result}");
        ids.push(result["postback_id"].as_i64().unwrap());
    }
    // A retry and a forwarded copy: neither may be counted twice.
    app.post_apple(Spec::new(APP, "fx-02").fine(1).bytes()).await;
    ids
}

/// Two more postbacks: one from another network (fine 1, Nov 15) and one AdAttributionKit
/// postback signed with the development key (fine 5, Nov 16), which reports leave out unless
/// asked.
pub(crate) async fn ingest_extra(app: &TestApp, clock: &ManualClock) {
    clock.set("2026-11-15T12:00:00Z".parse().unwrap());
    let other = Spec { network: "other.skadnetwork", ..Spec::new(APP, "fx-11").fine(1) };
    let result: Value = app.post_apple(other.bytes()).await.json().await.unwrap();
    assert_eq!(result["result"], "accepted");
    clock.set("2026-11-16T12:00:00Z".parse().unwrap());
    let read = |name: &str| {
        std::fs::read_to_string(crate::helpers::repo_path(&format!("testdata/keys/{name}")))
            .unwrap()
    };
    let signer = skan_receiver::skan::PostbackSigner::from_pkcs8_pem(
        Some(&read("test-development-p256.key.pem")),
        None,
    )
    .unwrap();
    let payload = json!({
        "ad-network-identifier": "fixture.skadnetwork", "advertised-item-identifier": APP,
        "conversion-type": "download", "did-win": true, "impression-type": "app-impression",
        "postback-identifier": "FX-12", "postback-sequence-index": 0, "source-identifier": "1234"
    });
    let jws =
        signer.sign_jws("test-development/0", &serde_json::to_vec(&payload).unwrap()).unwrap();
    let body = json!({"jws-string": jws, "conversion-value": 5, "ad-interaction-type": "click"});
    let result: Value =
        app.post_apple(serde_json::to_vec(&body).unwrap()).await.json().await.unwrap();
    assert_eq!(
        (result["result"].as_str(), result["development"].as_bool()),
        (Some("accepted"), Some(true))
    );
}

/// App 779: three window-1 postbacks from Apple with no value, `low` and `medium`, and a
/// forwarded copy of the `low` one that says `high`: that postback is flagged `unsigned_mismatch`
/// and keeps Apple's `low`.
pub(crate) const MISMATCH_APP: u64 = 779;

pub(crate) async fn ingest_mismatch(app: &TestApp, clock: &ManualClock) {
    clock.set("2026-11-12T12:00:00Z".parse().unwrap());
    let window_1 = |tx: &str| Spec { window: 1, source: "34", ..Spec::new(MISMATCH_APP, tx) };
    let low = window_1("mm-low").coarse(1, CoarseValue::Low).bytes();
    for body in [
        window_1("mm-null").bytes(),
        low.clone(),
        window_1("mm-medium").coarse(1, CoarseValue::Medium).bytes(),
    ] {
        let result: Value = app.post_apple(body).await.json().await.unwrap();
        assert_eq!(result["result"], "accepted", "{result}");
    }
    let mut forwarded: Value = serde_json::from_slice(&low).unwrap();
    forwarded["coarse-conversion-value"] = json!("high");
    let key = app.key(skan_receiver::store::Role::Ingest).await;
    let answer: Value = app
        .post_network(&key, "application/json", serde_json::to_vec(&forwarded).unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["results"][0]["result"], "duplicate", "{answer}");
    assert_eq!(answer["results"][0]["unsigned_mismatch"], true, "{answer}");
}

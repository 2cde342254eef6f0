//! Data quality end to end: five weeks of history imported with their original arrival times,
//! then a day with three planted anomalies; the quality report, detection by two receivers at
//! once, the alerts they send, acknowledgement and mutes.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use skan_receiver::clock::{Clock as _, ManualClock};
use skan_receiver::store::Role;

use crate::helpers::{Spec, TestApp, each_backend, repo_path};
use crate::partner::Partner;

const APP: u64 = 781;
const NETWORKS: [&str; 3] = ["a.skadnetwork", "b.skadnetwork", "c.skadnetwork"];

/// The day the anomalies are planted on (a Tuesday) and the one after it.
fn planted() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 10).unwrap()
}

/// One network's postbacks of one day: weekday volume, six in ten at weekends, a little noise;
/// values spread over 0-15; one in 40 forged. On the planted day: network b drops 80 %,
/// network c's values move to 60-63, network a's forged share jumps to one in three.
fn day_of_traffic(day: NaiveDate, network: usize) -> Vec<(DateTime<Utc>, Value)> {
    use chrono::Datelike as _;
    let weekday = day.weekday().num_days_from_monday();
    let base = [40u32, 40, 60][network];
    let noise = (day.ordinal() * 7 + network as u32 * 3) % 5;
    let mut n = if weekday >= 5 { base * 6 / 10 } else { base } + noise;
    let is_planted = day == planted();
    if is_planted && network == 1 {
        n /= 5;
    }
    let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    (0..n)
        .map(|i| {
            let at = start + Duration::minutes(i64::from(i * 1440 / n) + 7);
            let mut value = (i * 7 + day.ordinal()) % 16;
            if is_planted && network == 2 {
                value = 60 + value % 4;
            }
            let tx = format!("q-{day}-{network}-{i}");
            let spec = Spec {
                network: NETWORKS[network],
                ..Spec::new(APP, &tx).fine(u8::try_from(value).unwrap())
            };
            let mut postback: Value = serde_json::from_slice(&spec.bytes()).unwrap();
            let forged_every = if is_planted && network == 0 { 3 } else { 40 };
            if i % forged_every == 1 {
                postback["did-win"] = json!(false);
            }
            (at, postback)
        })
        .collect()
}

/// Import, with their arrival times, the postbacks that arrived from `from` to before `to`.
async fn import(app: &TestApp, admin: &str, from: DateTime<Utc>, to: DateTime<Utc>) {
    let mut lines = Vec::new();
    let mut day = from.date_naive();
    while day <= to.date_naive() {
        for network in 0..3 {
            for (at, postback) in day_of_traffic(day, network) {
                if at < from || at >= to {
                    continue;
                }
                let envelope = json!({"received_at": at.to_rfc3339(), "channel": "network",
                    "source": "history", "postback": postback});
                lines.push(envelope.to_string());
            }
        }
        day += Duration::days(1);
    }
    for chunk in lines.chunks(2000) {
        let response = app.post_network(admin, "application/x-ndjson", chunk.join("\n")).await;
        assert_eq!(response.status(), 200);
    }
}

fn found(anomalies: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = anomalies
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["ad_network_id"].as_str().unwrap().to_owned(),
                a["metric"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn planted_anomalies_are_found_once_and_normal_days_raise_nothing() {
    for db in each_backend().await {
        // Six in the morning of the day before the planted one.
        let clock = Arc::new(ManualClock::new("2026-11-09T06:00:00Z".parse().unwrap()));
        // Two receivers, each with its dispatcher running, reaching the partner on loopback.
        let receiver = || {
            TestApp::spawn_full(&db, clock.clone(), |s| {
                s.keys = Some(repo_path("testdata/keys"));
                s.allow_private_destinations = true;
                s.dispatch_poll = std::time::Duration::from_millis(50);
                s.public_url = "https://skan.example".to_owned();
            })
        };
        let first = receiver().await;
        let second = receiver().await;
        let admin = first.key(Role::Admin).await;
        let viewer = first.key(Role::Viewer).await;
        let editor = first.key(Role::Editor).await;
        let partner = Partner::start().await;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let destination = json!({
            "name": "quality alerts",
            "method": "POST",
            "url": format!("{}/alerts?app={{app_id}}", partner.url),
            "body": {"format": "json", "template": {
                "text": "{summary}", "metric": "{metric}", "network": "{ad_network_id}",
                "day": "{day}", "observed": "{observed}", "expected_low": "{expected_low}",
                "expected_high": "{expected_high}", "score": "{score}", "link": "{link}",
                "anomaly": "{anomaly_id}"
            }},
            "signing": {"secrets": [secret]},
            "filters": {"alerts": true, "apps": [APP]}
        });
        let created = first
            .client
            .post(first.url("/v1/destinations"))
            .bearer_auth(&admin)
            .json(&destination)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let alerts_id =
            created.json::<Value>().await.unwrap()["destination"]["id"].as_i64().unwrap();
        let start = (planted() - Duration::days(36)).and_hms_opt(0, 0, 0).unwrap().and_utc();
        import(&first, &admin, start, clock.now()).await;
        // An alert destination gets no postbacks.
        let (status, owed) =
            first.get_json(&admin, &format!("/v1/deliveries?destination={alerts_id}")).await;
        assert_eq!(status, 200, "{owed}");
        assert_eq!(owed["items"], json!([]), "{:?}", db.backend);

        // (d) The last complete day is normal, and the day in progress (six hours in) is judged
        // on the same six hours of its baseline: nothing is raised.
        let detect = |app: &TestApp| {
            let store = app.store.clone();
            let clock = Arc::clone(&clock);
            async move {
                let schemas = skan_receiver::schema_versions::SchemaVersions::new(
                    store.clone(),
                    clock.clone(),
                );
                skan_receiver::quality::detect_app(
                    store.as_ref(),
                    &schemas,
                    APP as i64,
                    clock.now_ms(),
                    &skan_receiver::domain::quality::DetectionRules::default(),
                )
                .await
                .unwrap()
            }
        };
        assert_eq!(detect(&first).await, Vec::new(), "{:?}", db.backend);

        // The planted day completes; the next morning both receivers look at once.
        let before = clock.now();
        clock.set("2026-11-11T06:00:00Z".parse().unwrap());
        import(&first, &admin, before, clock.now()).await;
        let (one, two) = tokio::join!(detect(&first), detect(&second));
        let mut stored: Vec<(String, String)> = one
            .iter()
            .chain(&two)
            .map(|a| (a.ad_network_id.clone(), a.metric.as_str().to_owned()))
            .collect();
        stored.sort();
        let planted_anomalies = vec![
            ("a.skadnetwork".to_owned(), "invalid_rate".to_owned()),
            ("b.skadnetwork".to_owned(), "postbacks".to_owned()),
            ("c.skadnetwork".to_owned(), "fine_value_shift".to_owned()),
        ];
        assert_eq!(
            stored, planted_anomalies,
            "{:?}: each planted anomaly once, with its metric and network, and nothing else",
            db.backend
        );

        // Each anomaly reaches the alert destination once, signed, though both receivers'
        // dispatchers are running.
        let seen = partner.wait_for(30, "three alerts", |seen| seen.len() >= 3).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let seen_after = partner.seen();
        assert_eq!(seen_after.len(), 3, "{:?}: {seen_after:#?}", db.backend);
        let mut alerted: Vec<(String, String)> = seen
            .iter()
            .map(|s| {
                let body = s.json();
                (
                    body["network"].as_str().unwrap().to_owned(),
                    body["metric"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        alerted.sort();
        assert_eq!(alerted, planted_anomalies);
        let drop_alert = seen.iter().find(|s| s.json()["metric"] == "postbacks").unwrap();
        let body = drop_alert.json();
        assert_eq!(drop_alert.target, format!("/alerts?app={APP}"));
        assert_eq!(body["day"], "2026-11-10");
        assert!(body["observed"].as_f64().unwrap() < body["expected_low"].as_f64().unwrap());
        assert_eq!(
            body["link"],
            format!("https://skan.example/ui/#/quality?app_id={APP}&from=2026-10-14&to=2026-11-10")
        );
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("App {APP}, b.skadnetwork: postbacks received was ")),
            "{text}"
        );
        assert!(text.contains("on 2026-11-10; usually "), "{text}");
        let key = drop_alert.headers["webhook-id"].clone();
        assert!(key.starts_with("dlv_"), "{key}");
        let expected_signature = skan_receiver::dispatch::signing::sign(
            &[skan_receiver::dispatch::signing::decode_secret(secret).unwrap()],
            &key,
            drop_alert.headers["webhook-timestamp"].parse().unwrap(),
            &drop_alert.body,
        );
        assert_eq!(drop_alert.headers["webhook-signature"], expected_signature);
        let (_, sent) =
            first.get_json(&admin, &format!("/v1/deliveries?destination={alerts_id}")).await;
        let sent = sent["items"].as_array().unwrap();
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|d| d["postback_id"].is_null() && d["anomaly_id"].is_i64()));

        let (status, anomalies) = first
            .get_json(&viewer, &format!("/v1/apps/{APP}/anomalies?from=2026-11-01&to=2026-11-11"))
            .await;
        assert_eq!(status, 200, "{anomalies}");
        assert_eq!(found(&anomalies).len(), 3);
        let drop = anomalies
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["metric"] == "postbacks")
            .unwrap()
            .clone();
        assert_eq!(drop["day"], "2026-11-10");
        assert_eq!(drop["baseline_from"], "2026-10-13");
        assert_eq!(drop["baseline_to"], "2026-11-09");
        assert!(drop["observed"].as_f64().unwrap() < drop["expected_low"].as_f64().unwrap());
        assert_eq!(drop["partial_day"], false);
        assert_eq!(drop["metric_label"], "postbacks received");
        // The console opens at the same page the alert links to.
        assert_eq!(
            drop["link"],
            format!("/ui/#/quality?app_id={APP}&from=2026-10-14&to=2026-11-10")
        );

        // The quality report shows the planted day as it was.
        let (status, report) = first
            .get_json(&viewer, &format!("/v1/apps/{APP}/quality?from=2026-11-10&to=2026-11-10"))
            .await;
        assert_eq!(status, 200, "{report}");
        let row = |network: &str| {
            report["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["ad_network_id"] == network)
                .unwrap()
                .clone()
        };
        assert!(row("a.skadnetwork")["invalid_rate"].as_f64().unwrap() > 0.3);
        assert!(row("b.skadnetwork")["postbacks"].as_i64().unwrap() < 10);
        assert_eq!(
            row("c.skadnetwork")["coverage"],
            json!({"both": 0, "apple_only": 0, "network_only": row("c.skadnetwork")["postbacks"]})
        );

        // Acknowledge; mute; a mistyped metric is named.
        let id = drop["id"].as_i64().unwrap();
        let acked: Value = first
            .client
            .post(first.url(&format!("/v1/apps/{APP}/anomalies/{id}/acknowledge")))
            .bearer_auth(&editor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(acked["acknowledged_by"].as_str().unwrap().starts_with("editor"), "{acked}");
        let muted = first
            .client
            .put(first.url(&format!("/v1/apps/{APP}/mutes")))
            .bearer_auth(&editor)
            .json(&json!({"metric": "fine_value_shift"}))
            .send()
            .await
            .unwrap();
        assert_eq!(muted.status(), 200);
        let (_, anomalies) = first
            .get_json(&viewer, &format!("/v1/apps/{APP}/anomalies?from=2026-11-01&to=2026-11-11"))
            .await;
        let shift = anomalies
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["metric"] == "fine_value_shift")
            .unwrap();
        assert_eq!(shift["muted"], true);
        let typo = first
            .client
            .put(first.url(&format!("/v1/apps/{APP}/mutes")))
            .bearer_auth(&editor)
            .json(&json!({"metric": "invalid_rat"}))
            .send()
            .await
            .unwrap();
        assert_eq!(typo.status(), 400);
        let body: Value = typo.json().await.unwrap();
        assert_eq!(body["error"]["field"], "metric", "{body}");
        let (status, body) =
            first.get_json(&viewer, &format!("/v1/apps/{APP}/quality?from=2026-11-31")).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["field"], "from", "{body}");

        // Looking again finds nothing new.
        assert_eq!(detect(&second).await, Vec::new());
        first.stop().await;
        second.stop().await;
    }
}

//! Schemas over the API, on every backend: versions, validation, diffs, roles, decoding of stored
//! postbacks, and the simulator on a fixture month with hand-computed answers.

use std::sync::Arc;

use serde_json::{Value, json};
use skan_receiver::clock::ManualClock;
use skan_receiver::store::Role;

use crate::helpers::{TestApp, each_backend};

use crate::fixture::{draft, ingest_fixture, schema_v1};

#[tokio::test]
async fn schemas_are_versioned_validated_diffed_and_guarded_by_role() {
    for db in each_backend().await {
        let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
        let app = TestApp::spawn_with_clock(&db, Arc::clone(&clock)).await;
        let editor = app.key(Role::Editor).await;
        let viewer = app.key(Role::Viewer).await;
        let url = app.url("/v1/apps/777/schema");

        let (status, body) = app.get_json(&viewer, "/v1/apps/777/schema").await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));

        let put = |key: &str, body: Value| app.client.put(&url).bearer_auth(key).json(&body).send();
        let created = put(&editor, json!({"schema": schema_v1(), "note": "launch"})).await.unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["version"]["version"], 1);
        assert!(created["version"]["author"].as_str().unwrap().starts_with("editor-"));
        assert_eq!(created["version"]["effective_from"], "2026-11-22T10:00:00Z");
        assert_eq!(created["report"]["valid"], true);

        let mut broken = schema_v1();
        broken["windows"][0]["fine"][2]["revenue"] = json!({"min": 0.5, "max": 10});
        let refused = put(&editor, json!({"schema": broken})).await.unwrap();
        assert_eq!(refused.status(), 422);
        let refused: Value = refused.json().await.unwrap();
        assert_eq!(refused["error"]["code"], "invalid_schema");
        assert_eq!(refused["error"]["field"], "windows[0].fine[2].revenue");
        assert_eq!(refused["report"]["errors"][0]["code"], "overlapping_revenue");

        let not_json =
            put(&editor, json!({"schema": {"windows": [{"window": "zero"}]}})).await.unwrap();
        assert_eq!(not_json.status(), 400);
        let not_json: Value = not_json.json().await.unwrap();
        assert_eq!(not_json["error"]["field"], "schema.windows[0].window");

        let forbidden = put(&viewer, json!({"schema": schema_v1()})).await.unwrap();
        assert_eq!(forbidden.status(), 403);

        let later =
            put(&editor, json!({"schema": draft(), "effective_from": "2026-12-01T00:00:00Z"}))
                .await
                .unwrap();
        assert_eq!(later.status(), 201);
        let (_, current) = app.get_json(&viewer, "/v1/apps/777/schema").await;
        assert_eq!(current["version"], 1, "version 2 is not in effect yet");
        clock.set("2026-12-01T00:00:00Z".parse().unwrap());
        let (_, current) = app.get_json(&viewer, "/v1/apps/777/schema").await;
        assert_eq!(current["version"], 2);

        let (_, versions) = app.get_json(&viewer, "/v1/apps/777/schema/versions").await;
        assert_eq!(versions.as_array().unwrap().len(), 2);
        assert_eq!(versions[0]["note"], "launch");
        let (_, one) = app.get_json(&viewer, "/v1/apps/777/schema/versions/1").await;
        let parse = |v: Value| serde_json::from_value::<skan_receiver::schema::Schema>(v).unwrap();
        assert_eq!(parse(one["schema"].clone()), parse(schema_v1()));
        let (status, _) = app.get_json(&viewer, "/v1/apps/777/schema/versions/9").await;
        assert_eq!(status, 404);

        let (_, diff) = app.get_json(&viewer, "/v1/apps/777/schema/versions/1/diff/2").await;
        let changes: Vec<(i64, &str, &str)> = diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["window"].as_i64().unwrap(),
                    c["value"].as_str().unwrap(),
                    c["change"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            changes,
            [
                (0, "1", "changed"),
                (0, "5", "changed"),
                (1, "medium", "removed"),
                (2, "high", "changed")
            ]
        );

        let validate: Value = app
            .client
            .post(app.url("/v1/apps/777/schema/validate"))
            .bearer_auth(&viewer)
            .json(&json!({"schema": {"windows": [{"window": 1, "fine": [{"value": 3}]}]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(validate["valid"], false);
        assert_eq!(validate["errors"][0]["code"], "fine_outside_window_0");

        let generated: Value = app
            .client
            .post(app.url("/v1/schemas/generate"))
            .bearer_auth(&viewer)
            .json(&json!({"kind": "revenue_buckets", "currency": "USD", "edges": [0, 1, 5, 10]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(generated["report"]["valid"], true);
        assert_eq!(generated["schema"]["windows"][0]["fine"].as_array().unwrap().len(), 4);
        app.stop().await;
    }
}

fn metric<'a>(m: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(m, |v, k| &v[*k])
}

#[tokio::test]
async fn the_simulator_decodes_a_fixture_month_as_computed_by_hand_and_a_schema_change_re_decodes_history()
 {
    for db in each_backend().await {
        let clock = Arc::new(ManualClock::new("2026-11-01T00:00:00Z".parse().unwrap()));
        let app = TestApp::spawn_with_clock(&db, Arc::clone(&clock)).await;
        let editor = app.key(Role::Editor).await;
        let viewer = app.key(Role::Viewer).await;
        let ids = ingest_fixture(&app, &clock).await;
        clock.set("2026-11-30T00:00:00Z".parse().unwrap());
        let put = app
            .client
            .put(app.url("/v1/apps/777/schema"))
            .bearer_auth(&editor)
            .json(&json!({"schema": schema_v1(), "effective_from": "2026-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);

        let simulate = || async {
            let response = app
                .client
                .post(app.url("/v1/apps/777/schema/simulate"))
                .bearer_auth(&viewer)
                .json(&json!({"schema": draft(), "from": "2026-11-01", "to": "2026-11-30", "date_type": "arrival"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        };
        let sim = simulate().await;
        let current = &sim["current"]["totals"];
        let draft_totals = &sim["draft"]["totals"];
        // Counts (the same under both schemas): 10 postbacks, one forged; of the 9 valid, 7 in
        // window 0 (5 installs, 1 redownload, 1 nonwinning), 1 each in windows 1 and 2; 8
        // winning, of which 1 without a value.
        for m in [current, draft_totals] {
            assert_eq!(m["postbacks"], 10);
            assert_eq!(m["valid"], 9);
            assert_eq!(m["invalid"], 1);
            assert_eq!(
                (m["window_0"].clone(), m["window_1"].clone(), m["window_2"].clone()),
                (json!(7), json!(1), json!(1))
            );
            assert_eq!(
                (m["installs"].clone(), m["redownloads"].clone(), m["nonwinning"].clone()),
                (json!(5), json!(1), json!(1))
            );
            assert_eq!(m["null_values"], 1);
            assert_eq!(m["null_rate"], 0.125);
        }
        // Current: fine 1 ×3 at [0,1), fine 5 at [5,10), medium at [1,5), high at [10,∞):
        // min 0+5+1+10 = 16, max unbounded, mid 1.5+7.5+3+10 = 22, modeled 22 / (7/8) = 25.14.
        assert_eq!(metric(current, &["revenue", "0", "currency"]), &json!(null));
        let revenue = &current["revenue"][0];
        assert_eq!(
            (revenue["currency"].clone(), revenue["min"].clone(), revenue["max"].clone()),
            (json!("USD"), json!(16.0), json!(null))
        );
        assert_eq!(
            (revenue["mid"].clone(), revenue["modeled"].clone()),
            (json!(22.0), json!(25.14))
        );
        assert_eq!(
            current["decoded"],
            json!({"mapped": 7, "unmapped": 0, "no_value": 2, "no_schema": 0})
        );
        assert_eq!(
            current["events"],
            json!([
                {"name": "purchase", "postbacks": 2, "min_count": 3, "max_count": null},
                {"name": "tutorial", "postbacks": 3, "min_count": 3, "max_count": null}
            ])
        );
        // Draft: fine 1 ×3 at [1,2), fine 5 at [10,20), medium unmapped, high at [20,∞):
        // min 3+10+20 = 33, mid 4.5+15+20 = 39.5, modeled 39.5 / (7/8) = 45.14.
        let revenue = &draft_totals["revenue"][0];
        assert_eq!(
            (revenue["min"].clone(), revenue["mid"].clone(), revenue["modeled"].clone()),
            (json!(33.0), json!(39.5), json!(45.14))
        );
        assert_eq!(
            draft_totals["decoded"],
            json!({"mapped": 6, "unmapped": 1, "no_value": 2, "no_schema": 0})
        );

        // A stored postback decodes under version 1.
        let (_, detail) = app.get_json(&viewer, &format!("/v1/postbacks/{}", ids[3])).await;
        assert_eq!(detail["decoded"]["schema_version"], 1);
        assert_eq!(detail["decoded"]["revenue"], json!({"min": 5.0, "max": 10.0}));
        assert_eq!(
            detail["install_estimate"]["day"], "2026-11-04",
            "arrival Nov 6 12:00 minus 60 hours"
        );
        let (_, forged) = app.get_json(&viewer, &format!("/v1/postbacks/{}", ids[9])).await;
        assert_eq!(forged["decoded"], Value::Null, "quarantined postbacks are not decoded");

        // Apply the draft for the same period: history re-decodes, nothing is re-ingested.
        app.client
            .put(app.url("/v1/apps/777/schema"))
            .bearer_auth(&editor)
            .json(&json!({"schema": draft(), "effective_from": "2026-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap();
        let again = simulate().await;
        assert_eq!(
            again["current"]["totals"], sim["draft"]["totals"],
            "the stored history now decodes like the draft did"
        );
        let (_, detail) = app.get_json(&viewer, &format!("/v1/postbacks/{}", ids[3])).await;
        assert_eq!(detail["decoded"]["schema_version"], 2);
        assert_eq!(detail["decoded"]["revenue"], json!({"min": 10.0, "max": 20.0}));

        let bad = app
            .client
            .post(app.url("/v1/apps/777/schema/simulate"))
            .bearer_auth(&viewer)
            .json(&json!({"schema": draft(), "from": "2026-11-30", "to": "2026-11-01"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        app.stop().await;
    }
}

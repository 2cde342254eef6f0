//! Reports over the API and the CLI, on every backend, checked against hand-computed answers from
//! the fixture month.

use std::sync::Arc;

use serde_json::{Value, json};
use skan_receiver::clock::ManualClock;
use skan_receiver::store::Role;

use crate::fixture::{draft, ingest_extra, ingest_fixture, schema_v1};
use crate::helpers::{TestApp, each_backend};

const RANGE: &str = "app_id=777&from=2026-11-01&to=2026-11-30&date_type=arrival";

struct Fixture {
    app: TestApp,
    viewer: String,
    editor: String,
}

async fn fixture(db: &crate::helpers::TestDb) -> Fixture {
    let clock = Arc::new(ManualClock::new("2026-11-01T00:00:00Z".parse().unwrap()));
    let app = TestApp::spawn_with_clock(db, Arc::clone(&clock)).await;
    ingest_fixture(&app, &clock).await;
    ingest_extra(&app, &clock).await;
    clock.set("2026-11-30T00:00:00Z".parse().unwrap());
    let editor = app.key(Role::Editor).await;
    let viewer = app.key(Role::Viewer).await;
    let put = app
        .client
        .put(app.url("/v1/apps/777/schema"))
        .bearer_auth(&editor)
        .json(&json!({"schema": schema_v1(), "effective_from": "2026-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    Fixture { app, viewer, editor }
}

async fn report(f: &Fixture, extra: &str) -> Value {
    let (status, body) = f.app.get_json(&f.viewer, &format!("/v1/reports?{RANGE}{extra}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn rows_by(report: &Value, key: &str) -> Vec<(Value, Value)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"][key].clone(), r.clone()))
        .collect()
}

#[tokio::test]
async fn totals_match_the_hand_computed_fixture() {
    for db in each_backend().await {
        let f = fixture(&db).await;
        let t = &report(&f, "").await["totals"];
        // 11 production postbacks (the development one is left out): 10 valid, 1 forged; window 0
        // holds 8 valid (6 installs, 1 redownload, 1 nonwinning); 9 winning, 1 without a value.
        assert_eq!(
            (
                t["postbacks"].clone(),
                t["valid"].clone(),
                t["invalid"].clone(),
                t["unverifiable"].clone()
            ),
            (json!(11), json!(10), json!(1), json!(0))
        );
        assert_eq!(
            (t["installs"].clone(), t["redownloads"].clone(), t["nonwinning"].clone()),
            (json!(6), json!(1), json!(1))
        );
        assert_eq!(
            (t["window_0"].clone(), t["window_1"].clone(), t["window_2"].clone()),
            (json!(8), json!(1), json!(1))
        );
        assert_eq!(t["null_values"], 1);
        assert_eq!(t["null_rate"], 1.0 / 9.0);
        assert_eq!(t["unsigned_mismatch"], 0);
        // Revenue: fine 1 ×4 [0,1), fine 5 [5,10), medium [1,5), high [10,∞):
        // min 0+5+1+10 = 16, mid 2+7.5+3+10 = 22.5, modeled 22.5 / (8/9) = 25.31.
        assert_eq!(
            t["revenue"],
            json!([{"currency": "USD", "min": 16.0, "max": null, "mid": 22.5, "modeled": 25.31}])
        );
        assert_eq!(
            t["events"],
            json!([
                {"name": "purchase", "postbacks": 2, "min_count": 3, "max_count": null},
                {"name": "tutorial", "postbacks": 4, "min_count": 4, "max_count": null}
            ])
        );
        assert_eq!(
            t["tiers"],
            json!({"tier_0": 0, "tier_1": 0, "tier_2": 8, "tier_3": 0, "unknown": 2})
        );
        assert_eq!(
            t["decoded"],
            json!({"mapped": 8, "unmapped": 0, "no_value": 2, "no_schema": 0})
        );

        // With development postbacks: one more valid install worth [5,10).
        let t = &report(&f, "&development=true,false").await["totals"];
        assert_eq!((t["valid"].clone(), t["installs"].clone()), (json!(11), json!(7)));
        assert_eq!(t["revenue"][0]["mid"], 30.0);
        let t = &report(&f, "&development=true").await["totals"];
        assert_eq!(t["valid"], 1);
        f.app.stop().await;
    }
}

#[tokio::test]
async fn grouping_splits_the_totals_exactly() {
    for db in each_backend().await {
        let f = fixture(&db).await;
        let by_network = rows_by(&report(&f, "&group_by=ad_network_id").await, "ad_network_id");
        assert_eq!(by_network.len(), 2);
        assert_eq!(
            (
                by_network[0].0.clone(),
                by_network[0].1["postbacks"].clone(),
                by_network[0].1["valid"].clone()
            ),
            (json!("fixture.skadnetwork"), json!(10), json!(9))
        );
        assert_eq!(
            (by_network[1].0.clone(), by_network[1].1["postbacks"].clone()),
            (json!("other.skadnetwork"), json!(1))
        );

        let by_window = rows_by(&report(&f, "&group_by=window").await, "window");
        let counts: Vec<(Value, Value, Value)> = by_window
            .iter()
            .map(|(w, r)| (w.clone(), r["postbacks"].clone(), r["valid"].clone()))
            .collect();
        assert_eq!(
            counts,
            [
                (json!(0), json!(9), json!(8)),
                (json!(1), json!(1), json!(1)),
                (json!(2), json!(1), json!(1))
            ]
        );
        assert_eq!(
            by_window[1].1["revenue"][0]["mid"], 3.0,
            "window 1: one medium postback, [1,5)"
        );

        let by_event = rows_by(&report(&f, "&group_by=event").await, "event");
        let counts: Vec<(Value, Value)> =
            by_event.iter().map(|(e, r)| (e.clone(), r["postbacks"].clone())).collect();
        assert_eq!(
            counts,
            [(Value::Null, json!(5)), (json!("purchase"), json!(2)), (json!("tutorial"), json!(4))]
        );

        let by_day = rows_by(&report(&f, "&group_by=day").await, "day");
        assert_eq!(by_day.len(), 11, "eleven distinct arrival days");
        assert_eq!(by_day[0].0, "2026-11-03");
        let by_week = rows_by(&report(&f, "&group_by=week,ad_network_id").await, "week");
        assert_eq!(by_week[0].0, "2026-11-02", "weeks start on Monday");
        let total: i64 = by_week.iter().map(|(_, r)| r["postbacks"].as_i64().unwrap()).sum();
        assert_eq!(total, 11);
        let by_month = rows_by(&report(&f, "&group_by=month").await, "month");
        assert_eq!((by_month.len(), by_month[0].0.clone()), (1, json!("2026-11")));

        let by_source =
            rows_by(&report(&f, "&group_by=source_identifier").await, "source_identifier");
        let sources: Vec<Value> = by_source.iter().map(|(s, _)| s.clone()).collect();
        assert_eq!(sources, [json!("1234"), json!("34")]);
        let rolled =
            rows_by(&report(&f, "&group_by=source_identifier&digits=2").await, "source_identifier");
        assert_eq!(
            (rolled.len(), rolled[0].0.clone(), rolled[0].1["postbacks"].clone()),
            (1, json!("34"), json!(11))
        );

        let by_fine =
            rows_by(&report(&f, "&group_by=fine_value&window=0&did_win=true").await, "fine_value");
        let counts: Vec<(Value, Value)> =
            by_fine.iter().map(|(v, r)| (v.clone(), r["valid"].clone())).collect();
        assert_eq!(
            counts,
            [
                (Value::Null, json!(1)),
                (json!(0), json!(1)),
                (json!(1), json!(4)),
                (json!(5), json!(1))
            ]
        );
        assert!(by_fine[2].1.get("fine_histogram").is_none(), "histograms only when asked for");
        let with_histograms = rows_by(
            &report(&f, "&group_by=fine_value&window=0&did_win=true&include=histograms").await,
            "fine_value",
        );
        assert_eq!(with_histograms[2].1["fine_histogram"][1], 4);
        assert_eq!(with_histograms[2].1["coarse_histogram"]["low"], 0);

        let by_tier = rows_by(&report(&f, "&group_by=tier,version,fidelity").await, "tier");
        assert_eq!(by_tier.len(), 2);
        assert_eq!(
            by_tier[0].1["group"],
            json!({"tier": null, "version": "4.0", "fidelity": "click"})
        );

        // Filters.
        let t = &report(&f, "&ad_network_id=other.skadnetwork").await["totals"];
        assert_eq!(t["postbacks"], 1);
        let t = &report(&f, "&window=1,2").await["totals"];
        assert_eq!(t["postbacks"], 2);
        let t = &report(&f, "&redownload=true").await["totals"];
        assert_eq!(t["postbacks"], 1);
        let t = &report(&f, "&did_win=false").await["totals"];
        assert_eq!((t["postbacks"].clone(), t["invalid"].clone()), (json!(2), json!(1)));
        let t = &report(&f, "&version=adattributionkit&development=true,false").await["totals"];
        assert_eq!(t["postbacks"], 1);
        let t = &report(&f, "&fidelity=view").await["totals"];
        assert_eq!(t["postbacks"], 0);
        f.app.stop().await;
    }
}

#[tokio::test]
async fn csv_and_json_agree_cell_for_cell() {
    for db in each_backend().await {
        let f = fixture(&db).await;
        let json = report(&f, "&group_by=window,coarse_value&include=histograms").await;
        let response = f
            .app
            .client
            .get(f.app.url(&format!(
                "/v1/reports?{RANGE}&group_by=window,coarse_value&include=histograms&format=csv"
            )))
            .bearer_auth(&f.viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = response.text().await.unwrap();
        assert!(text.contains("\r\n"), "RFC 4180 line ends");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(records.len(), rows.len());
        for (record, row) in records.iter().zip(rows) {
            let cell = |name: &str| {
                record.get(header.iter().position(|h| h == name).unwrap()).unwrap().to_owned()
            };
            let text_of = |v: &Value| match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(cell("window"), text_of(&row["group"]["window"]));
            assert_eq!(cell("coarse_value"), text_of(&row["group"]["coarse_value"]));
            for metric in [
                "postbacks",
                "valid",
                "invalid",
                "installs",
                "nonwinning",
                "null_values",
                "unsigned_mismatch",
            ] {
                assert_eq!(cell(metric), text_of(&row[metric]), "{metric}");
            }
            assert_eq!(cell("null_rate").parse::<f64>().ok(), row["null_rate"].as_f64());
            assert_eq!(cell("tier_2"), text_of(&row["tiers"]["tier_2"]));
            assert_eq!(cell("fine_1"), text_of(&row["fine_histogram"][1]));
            assert_eq!(cell("coarse_medium"), text_of(&row["coarse_histogram"]["medium"]));
            let revenue_mid = row["revenue"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["currency"] == "USD")
                .map_or("0".to_owned(), |r| text_of(&r["mid"]));
            assert_eq!(
                cell("revenue_mid_USD").parse::<f64>().unwrap(),
                revenue_mid.parse::<f64>().unwrap()
            );
        }
        f.app.stop().await;
    }
}

#[tokio::test]
async fn a_schema_change_alters_decoded_metrics_but_not_raw_counts() {
    for db in each_backend().await {
        let f = fixture(&db).await;
        let before = report(&f, "&group_by=window").await;
        f.app
            .client
            .put(f.app.url("/v1/apps/777/schema"))
            .bearer_auth(&f.editor)
            .json(&json!({"schema": draft(), "effective_from": "2026-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap();
        let after = report(&f, "&group_by=window").await;
        for (b, a) in
            before["rows"].as_array().unwrap().iter().zip(after["rows"].as_array().unwrap())
        {
            for raw in
                ["postbacks", "valid", "invalid", "installs", "null_values", "window_0", "tiers"]
            {
                assert_eq!(b[raw], a[raw], "{raw} does not depend on the schema");
            }
        }
        assert_eq!(before["totals"]["revenue"][0]["mid"], 22.5);
        // Draft: fine 1 ×4 [1,2), fine 5 [10,20), medium unmapped, high [20,∞): 6 + 15 + 20.
        assert_eq!(after["totals"]["revenue"][0]["mid"], 41.0);
        assert_eq!(after["totals"]["decoded"]["unmapped"], 1);
        f.app.stop().await;
    }
}

#[tokio::test]
async fn bad_parameters_and_keys_are_refused_with_the_parameter_named() {
    for db in each_backend().await {
        let f = fixture(&db).await;
        let cases = [
            ("app_id=777&from=2026-11-01&to=2026-11-30&group_by=country", "group_by"),
            ("app_id=777&from=2026-11-30&to=2026-11-01", "from"),
            ("app_id=777&from=2025-01-01&to=2026-11-30", "to"),
            ("app_id=12345&from=2026-11-01&to=2026-11-30", "app_id"),
            ("from=2026-11-01&to=2026-11-30", "app_id"),
            ("app_id=777&from=2026-11-01&to=2026-11-30&format=xml", "format"),
            ("app_id=777&from=2026-11-01&to=2026-11-30&ad_network=x", "ad_network"),
        ];
        for (query, parameter) in cases {
            let (status, body) = f.app.get_json(&f.viewer, &format!("/v1/reports?{query}")).await;
            assert_eq!(
                (status, body["error"]["field"].as_str()),
                (400, Some(parameter)),
                "{query}: {body}"
            );
        }
        let (status, body) = f
            .app
            .get_json(&f.viewer, "/v1/reports?app_id=12345&from=2026-11-01&to=2026-11-30")
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unknown_app")));
        let no_key =
            f.app.client.get(f.app.url(&format!("/v1/reports?{RANGE}"))).send().await.unwrap();
        assert_eq!(no_key.status(), 401);
        let ingest = f.app.key(Role::Ingest).await;
        let (status, _) = f.app.get_json(&ingest, &format!("/v1/reports?{RANGE}")).await;
        assert_eq!(status, 403);
        f.app.stop().await;
    }
}

#[tokio::test]
async fn the_cli_prints_the_same_report_as_the_api() {
    let db = crate::helpers::TestDb::new(crate::helpers::Backend::Sqlite).await;
    let f = fixture(&db).await;
    let api = report(&f, "&group_by=ad_network_id").await;
    let run = |format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_skan-receiver"))
            .args([
                "report",
                "--app",
                "777",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-30",
                "--date-type",
                "arrival",
            ])
            .args(["--group-by", "ad_network_id", "--format", format, "--database-url", &db.url])
            .output()
            .unwrap()
    };
    let out = run("json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, api);
    let table = String::from_utf8(run("table").stdout).unwrap();
    assert!(table.lines().next().unwrap().starts_with("ad_network_id"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("total") && l.contains("22.50 USD")), "{table}");
    let csv = String::from_utf8(run("csv").stdout).unwrap();
    assert_eq!(csv.lines().count(), 3);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_skan-receiver"))
        .args([
            "report",
            "--app",
            "777",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--group-by",
            "colour",
            "--database-url",
            &db.url,
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"field\":\"--group-by\""));
    f.app.stop().await;
}

#[tokio::test]
async fn every_report_source_gives_identical_reports() {
    use skan_receiver::report::{ReportQuery, assemble, selection};
    use skan_receiver::schema_versions::SchemaVersions;
    use skan_receiver::store::ReportSource;
    for db in each_backend().await {
        let f = fixture(&db).await;
        let schemas =
            SchemaVersions::new(f.app.store.clone(), Arc::new(skan_receiver::clock::SystemClock));
        let shapes = [
            "",
            "&group_by=day",
            "&group_by=week,ad_network_id",
            "&group_by=month",
            "&group_by=window,coarse_value",
            "&group_by=fine_value&include=histograms",
            "&group_by=event",
            "&group_by=tier,window",
            "&date_type=install&group_by=day",
            "&development=true,false&group_by=ad_network_id",
            "&window=0&did_win=true&redownload=false&group_by=day",
            "&ad_network_id=other.skadnetwork",
            "&group_by=ad_network_id,source_identifier",
            "&group_by=source_identifier&digits=2",
            "&group_by=source_identifier,fine_value",
            "&group_by=day,source_identifier,tier",
            "&group_by=event,source_identifier&did_win=true",
            "&group_by=week,source_identifier&redownload=true,false&window=0,1",
            "&group_by=week,fine_value&include=histograms",
            "&group_by=month,source_identifier,coarse_value",
            "&group_by=version",
            "&group_by=fidelity,window,fine_value",
            "&version=4.0,adattributionkit&group_by=ad_network_id",
            "&fidelity=click&group_by=day",
            "&group_by=source_identifier,version",
            "&group_by=ad_network_id,source_identifier,fidelity,fine_value",
            "&version=4.0&group_by=week,source_identifier&digits=2",
            "&source_identifier=1234&fidelity=click&group_by=version,fine_value",
            "&source_identifier=1234&group_by=day",
            "&source_identifier=1234,34&ad_network_id=fixture.skadnetwork,other.skadnetwork&group_by=week,ad_network_id",
        ];
        let mut compared = 0;
        let day = |text: &str| {
            skan_receiver::skan::day_number(
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap(),
            )
        };
        // Round 0 reads rows as written; round 1 after the blocks ending before November 10 are
        // sealed (the rest still open); round 2 after a schema version splits periods on top of
        // sealed values; round 3 after everything is sealed, split included.
        for round in 0..4 {
            if round == 1 || round == 3 {
                let before = if round == 1 { day("2026-11-10") } else { day("2027-06-01") };
                let sealed = f.app.store.seal_rollup(before).await.unwrap();
                assert!(sealed.blocks > 0 && sealed.rows > 0, "round {round}: {sealed:?}");
                let again = f.app.store.seal_rollup(before).await.unwrap();
                assert_eq!(again.blocks, 0, "round {round}: nothing left to seal");
            }
            if round == 2 {
                // A version taking effect mid-month splits the decoding period the rollup keys by.
                let put = f
                .app
                .client
                .put(f.app.url("/v1/apps/777/schema"))
                .bearer_auth(&f.editor)
                .json(&json!({"schema": crate::fixture::draft(), "effective_from": "2026-11-05T00:00:00Z"}))
                .send()
                .await
                .unwrap();
                assert_eq!(put.status(), 201);
            }
            let history = schemas.history(777).await.unwrap();
            // The rollup reads a range as blocks added and subtracted: the second range takes
            // the 56-day block to Sunday, November 22 and subtracts November 21 and 22. Weeks
            // and months read their own blocks, and the version taking effect on Thursday,
            // November 5 splits a week.
            let ranges = ["from=2026-10-20&to=2026-11-30", "from=2026-09-01&to=2026-11-20"];
            let shapes = &shapes;
            for (range, date_type, shape) in ranges.iter().flat_map(|r| {
                ["arrival", "install"]
                    .iter()
                    .flat_map(move |d| shapes.iter().map(move |s| (r, d, s)))
            }) {
                let text = format!("app_id=777&{range}&date_type={date_type}{shape}");
                let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                // A shape that sets date_type itself overrides the loop's (the last one wins in neither: skip dupes).
                if pairs.iter().filter(|(k, _)| k == "date_type").count() > 1 {
                    continue;
                }
                let query = ReportQuery::parse(&pairs).unwrap();
                let mut reports = Vec::new();
                for source in [
                    ReportSource::Aggregates,
                    ReportSource::ValueCube,
                    ReportSource::Rollup,
                    ReportSource::Auto,
                ] {
                    let mut chosen = selection(&query, &history);
                    chosen.source = source;
                    reports.push(assemble(
                        &query,
                        &history,
                        &f.app.store.report_rows(&chosen).await.unwrap(),
                    ));
                }
                assert_eq!(reports[0], reports[1], "aggregates and value cube: {text}");
                assert_eq!(reports[0], reports[2], "aggregates and rollup: {text}");
                assert_eq!(reports[0], reports[3], "aggregates and the automatic choice: {text}");
                assert!(reports[0].totals.postbacks > 0, "{text}");
                compared += 1;
            }
        }
        assert!(compared >= 464, "{compared}");
        f.app.stop().await;
    }
}

#[tokio::test]
async fn a_mismatched_copy_is_counted_in_the_row_of_the_value_in_effect() {
    use skan_receiver::report::{ReportQuery, assemble, selection};
    use skan_receiver::schema_versions::SchemaVersions;
    use skan_receiver::store::ReportSource;
    for db in each_backend().await {
        let clock = Arc::new(ManualClock::new("2026-11-01T00:00:00Z".parse().unwrap()));
        let app = TestApp::spawn_with_clock(&db, Arc::clone(&clock)).await;
        crate::fixture::ingest_mismatch(&app, &clock).await;
        let viewer = app.key(Role::Viewer).await;
        let range = "app_id=779&from=2026-11-01&to=2026-11-30&date_type=arrival";
        for shape in ["group_by=coarse_value", "group_by=window,coarse_value"] {
            let (status, report) =
                app.get_json(&viewer, &format!("/v1/reports?{range}&{shape}")).await;
            assert_eq!(status, 200, "{report}");
            let by_value: Vec<(Value, i64, i64)> = report["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["group"]["coarse_value"].clone(),
                        r["postbacks"].as_i64().unwrap(),
                        r["unsigned_mismatch"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                by_value,
                vec![(Value::Null, 1, 0), (json!("low"), 1, 1), (json!("medium"), 1, 0)],
                "{shape}"
            );
            assert_eq!(report["totals"]["unsigned_mismatch"], 1);
        }
        // Every table gives the same rows for the value shapes.
        let schemas =
            SchemaVersions::new(app.store.clone(), Arc::new(skan_receiver::clock::SystemClock));
        let history = schemas.history(779).await.unwrap();
        for shape in
            ["&group_by=coarse_value", "&group_by=window,coarse_value", "&group_by=event", ""]
        {
            let text = format!("{range}{shape}");
            let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let query = ReportQuery::parse(&pairs).unwrap();
            let mut reports = Vec::new();
            for source in [ReportSource::Aggregates, ReportSource::ValueCube, ReportSource::Rollup]
            {
                let mut chosen = selection(&query, &history);
                chosen.source = source;
                reports.push(assemble(
                    &query,
                    &history,
                    &app.store.report_rows(&chosen).await.unwrap(),
                ));
            }
            assert_eq!(reports[0], reports[1], "{text}");
            assert_eq!(reports[0], reports[2], "{text}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_service_seals_ended_blocks_on_its_schedule_and_reports_stay_the_same() {
    for db in each_backend().await {
        let clock = Arc::new(ManualClock::new("2026-11-01T00:00:00Z".parse().unwrap()));
        let app = TestApp::spawn_full(&db, clock.clone(), |s| {
            s.keys = Some(crate::helpers::repo_path("testdata/keys"));
            s.rollup_seal_interval = Some(std::time::Duration::from_millis(200));
        })
        .await;
        ingest_fixture(&app, &clock).await;
        let viewer = app.key(Role::Viewer).await;
        let path = format!("/v1/reports?{RANGE}&group_by=day,source_identifier");
        let (status, open) = app.get_json(&viewer, &path).await;
        assert_eq!(status, 200, "{open}");
        clock.set("2026-12-01T00:00:00Z".parse().unwrap());
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM report_rollup_sealed";
        let mut sealed = 0i64;
        for _ in 0..100 {
            let counted: Vec<(i64,)> = crate::helpers::rows_of(&db, count).await;
            sealed = counted.first().map_or(0, |(n,)| *n);
            if sealed > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(sealed > 0, "{:?}: nothing sealed on the schedule", db.backend);
        let (status, after) = app.get_json(&viewer, &path).await;
        assert_eq!(status, 200, "{after}");
        assert_eq!(open, after, "{:?}", db.backend);
        assert!(open["totals"]["postbacks"].as_i64().unwrap_or(0) > 0, "{open}");
        app.stop().await;
    }
}

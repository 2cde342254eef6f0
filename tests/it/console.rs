//! The web console: how it is served (embedded files, CSP, the root redirect, vendored files
//! pinned, size budget) and, in a real browser, what its users do with it.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use skan_receiver::clock::ManualClock;
use skan_receiver::http::ConsoleFiles;
use skan_receiver::store::Role;
use thirtyfour::prelude::*;

use crate::browser::Browser;
use crate::fixture::{APP, ingest_fixture, schema_v1};
use crate::helpers::{Backend, Spec, TestApp, TestDb, repo_path};
use crate::partner::{Partner, eventually};

/// The fixture month with schema version 1 in effect; the service clock is then set back to
/// October so that a version saved "now" decodes all of November's installs.
async fn fixture_app(db: &TestDb) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new("2026-11-01T00:00:00Z".parse().unwrap()));
    let app =
        TestApp::spawn_full(db, Arc::clone(&clock) as Arc<dyn skan_receiver::clock::Clock>, |s| {
            s.keys = Some(repo_path("testdata/keys"));
            s.allow_private_destinations = true;
            s.dispatch_poll = Duration::from_millis(20);
        })
        .await;
    ingest_fixture(&app, &clock).await;
    let editor = app.key(Role::Editor).await;
    let put = app
        .client
        .put(app.url(&format!("/v1/apps/{APP}/schema")))
        .bearer_auth(&editor)
        .json(&json!({"schema": schema_v1(), "effective_from": "2026-01-01T00:00:00Z", "note": "launch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    clock.set("2026-10-01T00:00:00Z".parse().unwrap());
    (app, clock)
}

const NOVEMBER: &str = "app_id=777&from=2026-11-01&to=2026-11-30&date_type=arrival";

// ---------------------------------------------------------------------------------------------
// Serving: no browser needed.

#[tokio::test]
async fn the_console_is_served_embedded_with_a_strict_policy_and_the_root_sends_browsers_to_it() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let page = app.client.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let etag = page.headers()["etag"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains("/ui/js/app.js"), "{html}");
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");

    let again =
        app.client.get(app.url("/ui/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let script = app.client.get(app.url("/ui/js/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));

    let missing = app.client.get(app.url("/ui/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");

    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let browser =
        no_redirects.get(app.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(browser.status(), 303);
    assert_eq!(browser.headers()["location"], "/ui/");
    let api = app.client.get(app.url("/")).header("accept", "application/json").send().await;
    let api = api.unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    app.stop().await;
}

#[test]
fn vendored_files_match_their_pinned_versions_and_hashes() {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("ui/vendor/manifest.json")).unwrap(),
    )
    .unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(!files.is_empty());
    let mut listed = std::collections::BTreeSet::new();
    for entry in files {
        let path = entry["path"].as_str().unwrap();
        for field in ["package", "version", "license", "source"] {
            assert!(entry[field].as_str().is_some_and(|v| !v.is_empty()), "{path}: no {field}");
        }
        let bytes = std::fs::read(repo_path(&format!("ui/vendor/{path}"))).unwrap();
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(entry["sha256"].as_str().unwrap(), digest, "{path} differs from the pin");
        listed.insert(path.to_owned());
    }
    for file in std::fs::read_dir(repo_path("ui/vendor")).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        if name != "manifest.json" && !name.ends_with(".LICENSE") {
            assert!(listed.contains(&name), "ui/vendor/{name} is not pinned in manifest.json");
        }
    }
}

#[test]
fn the_console_without_vendored_libraries_stays_under_150_kb_gzipped() {
    let mut total = 0;
    let mut embedded = 0;
    for path in ConsoleFiles::iter() {
        embedded += 1;
        if path.starts_with("vendor/") {
            continue;
        }
        let file = ConsoleFiles::get(&path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&file.data).unwrap();
        total += gz.finish().unwrap().len();
    }
    assert!(embedded >= 8, "the console's files are embedded ({embedded})");
    assert!(total < 150 * 1024, "console is {total} bytes gzipped");
    assert!(total > 10 * 1024, "console suspiciously small: {total} bytes");
}

// ---------------------------------------------------------------------------------------------
// In a browser.

#[tokio::test]
async fn an_editor_edits_a_range_by_keyboard_reviews_simulates_and_saves_and_the_report_changes() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (app, _clock) = fixture_app(&db).await;
    let Some(b) = Browser::start("schema editor", &app.base).await else { return };
    let editor = app.key(Role::Editor).await;
    let revenue_before = report_revenue(&app, &editor).await;

    b.open("/ui/#/schema?app_id=777").await;
    b.sign_in(&editor).await;
    b.wait_text(".status-line", "version 1").await;
    b.wait_text(".validation-summary", "No errors").await;
    b.check_screen("schema-editor").await;

    // Keyboard only: reach the grid, select values 1-3, open the editor, fill it, apply.
    b.tab_to(".schema-grid [role=gridcell]").await;
    b.press(&[Key::Right]).await;
    b.press_shifted(&[Key::Right, Key::Right]).await;
    let selected = b.js("return [...document.querySelectorAll('.schema-grid [aria-selected=true]')].map(c => +c.dataset.value);").await;
    assert_eq!(selected, json!([1, 2, 3]));
    b.press(&[Key::Enter]).await;
    b.wait_text("#edit-title", "Fine values 1–3").await;
    b.type_text("engaged").await;
    b.press(&[Key::Tab]).await;
    b.type_text("tutorial").await;
    b.press(&[Key::Tab, Key::Tab]).await; // past the hint's link-free text to revenue min
    b.tab_to("[name=revenue-min]").await;
    b.type_text("2").await;
    b.press(&[Key::Tab]).await;
    b.type_text("4").await;
    b.press(&[Key::Enter]).await;
    for value in 1..=3 {
        b.wait_text(&format!(".schema-grid [data-value='{value}'] .label"), "engaged").await;
    }

    // A validation error from the server appears on the cell at fault, then clears.
    focus_cell(&b, 9).await;
    b.press(&[Key::Enter]).await;
    b.wait("#edit-label").await;
    b.tab_to("[name=revenue-min]").await;
    b.type_text("5").await;
    b.press(&[Key::Tab]).await;
    b.type_text("1").await;
    b.press(&[Key::Enter]).await;
    b.wait(".schema-grid [data-value='9'][aria-invalid=true]").await;
    b.wait_text(".validation-summary", "1 error").await;
    b.wait_text(".findings .finding.error", "9").await;
    b.check_screen("schema-validation").await;
    focus_cell(&b, 9).await;
    b.press(&[Key::Enter]).await;
    b.wait_text(".edit-panel button", "Unmap").await.click().await.unwrap();
    b.wait_text(".validation-summary", "No errors").await;
    assert!(!b.exists(".schema-grid [aria-invalid=true]").await);

    // The diff against the version in effect, shown in the list and on the cells.
    b.wait_text(".publish button", "Review changes").await.click().await.unwrap();
    b.wait_text(".review", "Against version 1").await;
    b.wait_text(".changes li", "window 0 fine 1").await;
    b.wait_text(".changes li", "window 0 fine 3").await;
    assert!(b.exists(".schema-grid [data-value='2'].changed").await);

    // Simulate on November: the same report twice, stored versions against the draft.
    set_input(&b, "[name=sim-from]", "2026-11-01").await;
    set_input(&b, "[name=sim-to]", "2026-11-30").await;
    b.wait_text(".simulate button", "Simulate").await.click().await.unwrap();
    b.wait_text(".simulation caption", "As stored versions decode it").await;
    b.wait_text(".simulation caption", "Under the draft").await;
    b.wait_text(".simulation .deltas", "revenue (mid) +").await;
    b.js("document.querySelector('.simulate').scrollIntoView(); return 0;").await;
    b.check_screen("schema-simulate").await;

    b.wait_text(".save-form button", "Save as a new version").await.click().await.unwrap();
    b.wait_text(".status-line", "Saved version 2").await;
    b.wait_text(".status-line", "In effect: version 2").await;
    assert_ne!(report_revenue(&app, &editor).await, revenue_before, "the report follows the save");

    // The report screen shows the new decoding too.
    b.open(&format!("/ui/#/reports?{NOVEMBER}")).await;
    b.wait("table.report tfoot").await;
    let shown = b.wait("table.report tfoot").await.text().await.unwrap();
    let mid = report_revenue(&app, &editor).await;
    assert!(shown.contains(&format_money(mid)), "{shown} shows {mid}");
    b.check_screen("reports").await;
    b.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn reports_download_the_api_csv_byte_for_byte_and_a_copied_link_reopens_the_view() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (app, _clock) = fixture_app(&db).await;
    let Some(b) = Browser::start("reports", &app.base).await else { return };
    let viewer = app.key(Role::Viewer).await;
    let view = format!("/ui/#/reports?{NOVEMBER}&group_by=day,ad_network_id");
    b.open(&view).await;
    b.sign_in(&viewer).await;
    b.wait("table.report tbody tr").await;
    b.wait(".heat").await;
    b.wait(".coarse-windows").await;
    b.wait(".chart canvas").await;
    let shown_after = b
        .js("const shown = performance.getEntriesByName('skan:report-shown').pop(); \
             const answered = Math.max(...performance.getEntriesByType('resource') \
               .filter(e => e.name.includes('/v1/')).map(e => e.responseEnd)); \
             return shown ? shown.startTime - answered : null;")
        .await;
    eprintln!("report screen shown {shown_after} ms after the API's last answer");
    assert!(shown_after.as_f64().is_some(), "the report was shown");
    let rows = b.js("return document.querySelectorAll('table.report tbody tr').length;").await;
    let (_, api) =
        app.get_json(&viewer, &format!("/v1/reports?{NOVEMBER}&group_by=day,ad_network_id")).await;
    assert_eq!(rows.as_u64().unwrap() as usize, api["rows"].as_array().unwrap().len());

    // Sorting by a metric reorders the rows and says so.
    b.wait_text("table.report thead button", "Postbacks").await.click().await.unwrap();
    b.wait("table.report thead th[aria-sort=descending]").await;

    b.wait_text(".toolbar button", "Download CSV").await.click().await.unwrap();
    let downloaded = b.downloaded("report-777-2026-11-01-2026-11-30.csv").await;
    let csv = app
        .client
        .get(app.url(&format!("/v1/reports?{NOVEMBER}&group_by=day%2Cad_network_id&format=csv")))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded, csv.to_vec(), "the download is the API's CSV");
    assert!(b.wait(".commands").await.text().await.is_ok());
    let curl = b.js("return document.querySelector('.commands pre code').textContent;").await;
    assert!(curl.as_str().unwrap().contains("$SKAN_API_KEY"), "{curl}");
    assert!(!curl.as_str().unwrap().contains(&viewer), "the key never leaves the tab");
    b.check_screen("reports-by-day-and-network").await;

    // The link, opened in another browser, asks for a key and then shows the same view.
    let link = b.js("return location.href;").await.as_str().unwrap().to_owned();
    assert!(!link.contains("skr_"), "the key is never in the URL");
    b.quit().await;
    let other = Browser::start("reports link", &app.base).await.unwrap();
    other.driver.goto(&link).await.unwrap();
    other.sign_in(&viewer).await;
    other.wait("table.report tbody tr").await;
    let (from, group_day) = (
        other.js("return document.querySelector('input[name=from]').value;").await,
        other.js("return document.querySelector('input[name=group-day]').checked;").await,
    );
    assert_eq!((from, group_day), (json!("2026-11-01"), json!(true)));
    let rows_again =
        other.js("return document.querySelectorAll('table.report tbody tr').length;").await;
    assert_eq!(rows_again, rows);
    other.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_no_edit_controls() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (app, _clock) = fixture_app(&db).await;
    let Some(b) = Browser::start("viewer", &app.base).await else { return };
    let viewer = app.key(Role::Viewer).await;
    b.open("/ui/#/schema?app_id=777").await;
    b.sign_in(&viewer).await;
    b.wait_text(".status-line", "version 1").await;
    b.tab_to(".schema-grid [role=gridcell]").await;
    b.press(&[Key::Enter]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for control in [".edit-panel", ".publish", ".generators", ".simulate", ".coarse-panel button"] {
        assert!(!b.exists(control).await, "a viewer is offered {control}");
    }
    let nav = b.wait("header nav").await.text().await.unwrap();
    assert!(!nav.contains("Destinations"), "{nav}");
    assert!(nav.contains("Reports") && nav.contains("Postbacks"), "{nav}");
    b.check_screen("schema-viewer").await;
    b.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_inspects_a_postback_and_retries_its_dead_delivery() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (app, clock) = fixture_app(&db).await;
    let Some(b) = Browser::start("inspector", &app.base).await else { return };
    let admin = app.key(Role::Admin).await;
    let partner = Partner::start().await;
    partner.answer_with(503);
    let created = app
        .client
        .post(app.url("/v1/destinations"))
        .bearer_auth(&admin)
        .json(&json!({"name": "partner", "url": format!("{}/hook", partner.url), "retry_schedule_secs": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    clock.set("2026-11-26T12:00:00Z".parse().unwrap());
    let accepted: Value =
        app.post_apple(Spec::new(APP, "fx-dead").fine(5).bytes()).await.json().await.unwrap();
    let postback_id = accepted["postback_id"].as_i64().unwrap();
    partner.wait_for(10, "the failing attempt", |s| s.len() == 1).await;
    eventually(10, "the delivery to die", || async {
        let (_, page) = app.get_json(&admin, "/v1/deliveries?state=dead").await;
        page["items"].as_array().is_some_and(|items| items.len() == 1)
    })
    .await;

    // The inspector: search by transaction id, see the receipts, the signature, the decoding.
    b.open("/ui/#/postbacks").await;
    b.sign_in(&admin).await;
    let search = b.wait("input[name=transaction_id]").await;
    search.send_keys("fx-02").await.unwrap();
    search.send_keys(Key::Enter).await.unwrap();
    b.wait_text("#postback-title", "fx-02").await;
    b.wait_text(".outcome", "valid").await;
    b.wait_text(".postback", "Receipts (2)").await;
    b.wait_text(".postback", "tutorial").await;
    b.wait_text(".coverage", "transaction-id").await;
    b.check_screen("postback-inspector").await;

    // Its deliveries are listed on the postback, and the desk retries the dead one.
    b.open(&format!("/ui/#/postbacks?id={postback_id}")).await;
    b.wait_text(".postback", "Deliveries (1)").await;
    b.wait_text(".postback .state", "dead").await;
    b.open("/ui/#/destinations").await;
    b.wait_text("table.destinations", "partner").await;
    b.wait_text("table.destinations td", "1").await;
    b.wait_text("table.destinations a", "partner").await.click().await.unwrap();
    b.wait_text("table.deliveries", "dead").await;
    b.wait("table.deliveries tbody th a").await.click().await.unwrap();
    b.wait_text("#delivery-title", &postback_id.to_string()).await;
    b.wait_text(".delivery table", "503").await;
    b.check_screen("delivery-desk").await;
    partner.answer_with(200);
    b.wait_text(".delivery button", "Retry now").await.click().await.unwrap();
    b.wait_text(".delivery .state", "delivered").await;
    partner.wait_for(10, "the retried delivery", |s| s.iter().any(|x| x.status == 200)).await;

    // Data quality: an anomaly explained, then acknowledged from the console.
    let anomaly = skan_receiver::store::StoredAnomaly {
        id: 0,
        app_id: APP as i64,
        ad_network_id: "fixture.skadnetwork".to_owned(),
        metric: "postbacks".to_owned(),
        day: 20_771,
        expected: 120.0,
        expected_low: 80.0,
        expected_high: 160.0,
        observed: 21.0,
        score: -8.2,
        baseline_from: 20_743,
        baseline_to: 20_770,
        baseline_days: 28,
        partial_day: false,
        detected_at: 1_794_657_600_000,
        acknowledged_at: None,
        acknowledged_by: None,
    };
    app.store.insert_anomaly(&anomaly).await.unwrap().unwrap();
    b.open(&format!("/ui/#/quality?app_id={APP}&from=2026-11-01&to=2026-11-30")).await;
    b.wait_text(".anomaly h3", "postbacks received").await;
    b.wait_text(".anomaly", "usual range 80 to 160").await;
    b.wait_text("table", "fixture.skadnetwork").await;
    b.wait_text("[aria-label='Delivery per day and destination'] td", "partner").await;
    b.check_screen("quality").await;
    b.wait_text(".anomaly button", "Acknowledge").await.click().await.unwrap();
    b.wait_text(".anomaly .meta", "acknowledged by").await;
    b.quit().await;
    app.stop().await;
}

async fn focus_cell(b: &Browser, value: u8) {
    b.wait(&format!(".schema-grid [data-value='{value}']")).await.click().await.unwrap();
}

/// Set a date input's value the way a user's picker does.
async fn set_input(b: &Browser, css: &str, value: &str) {
    b.js(&format!(
        "const i = document.querySelector({css:?}); \
         const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set; \
         set.call(i, {value:?}); i.dispatchEvent(new Event('input', {{bubbles: true}})); return 0;"
    ))
    .await;
}

async fn report_revenue(app: &TestApp, key: &str) -> f64 {
    let (status, body) = app.get_json(key, &format!("/v1/reports?{NOVEMBER}")).await;
    assert_eq!(status, 200, "{body}");
    body["totals"]["revenue"][0]["mid"].as_f64().unwrap()
}

/// Money as the console prints it: en-US grouping, at most two decimals.
fn format_money(x: f64) -> String {
    let text = format!("{x:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    frac.map_or(grouped.clone(), |f| format!("{grouped}.{f}"))
}

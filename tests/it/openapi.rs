//! The OpenAPI document is generated from the routes; every documented operation must be
//! served, and undocumented paths must not be.

use serde_json::Value;
use skan_receiver::store::Role;

use crate::helpers::{Backend, TestApp, TestDb};

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.key(Role::Admin).await;
    let spec: Value =
        app.client.get(app.url("/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"), "{}", spec["openapi"]);
    let paths = spec["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "1")
                .replace("{n}", "1")
                .replace("{m}", "1")
                .replace("{app_id}", "1");
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{}");
            let status = request.send().await.unwrap().status().as_u16();
            assert!(
                status != 404 || concrete.contains("/1"),
                "{method} {path} is documented but not routed ({status})"
            );
            assert_ne!(status, 405, "{method} {path} is documented but not routed for this method");
            operations += 1;
        }
    }
    assert!(operations >= 11, "{operations}");
    for (method, path) in [
        ("GET", "/v1/nothing"),
        ("DELETE", "/v1/postbacks"),
        ("GET", "/.well-known/skadnetwork/report-attribution/"),
    ] {
        let status = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(matches!(status, 404 | 405), "{method} {path} answered {status}");
        let documented = paths.get(path).and_then(|p| p.get(method.to_lowercase())).is_some();
        assert!(!documented);
    }
    app.stop().await;
}

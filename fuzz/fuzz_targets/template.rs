//! Any text as a destination's templates (a header, a JSON body field, a form body), rendered
//! with any value: validation and rendering never panic, a header never carries a line break,
//! and a JSON body is always valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skan_receiver::dispatch::DestinationConfig;
use skan_receiver::dispatch::request::{Render, render};
use skan_receiver::dispatch::template::{MacroValue, Values};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (template, value) = text.split_once('\u{0}').unwrap_or((&text, "v"));
    let mut values = Values::new();
    values.insert("transaction_id", MacroValue::Str(value.to_owned()));
    values.insert("app_id", MacroValue::Int(value.len() as i64));
    values.insert("did_win", MacroValue::Bool(value.len() % 2 == 0));
    values.insert("revenue_min", MacroValue::Float(value.len() as f64 / 3.0));
    for body in [
        serde_json::json!({"format": "json", "template": {"v": template, "n": "{app_id}"}}),
        serde_json::json!({"format": "form", "template": template}),
    ] {
        let doc = serde_json::json!({
            "name": "fuzz", "url": "https://partner.example/hook", "method": "POST",
            "headers": {"x-fuzz": template}, "body": body,
        });
        let Ok(config) = serde_json::from_value::<DestinationConfig>(doc) else { continue };
        let Ok(destination) = config.validate() else { continue };
        if let Render::Request(request) = render(&destination, &values) {
            assert!(request.headers.iter().all(|(_, v)| !v.contains(['\r', '\n'])));
            if request.content_type.as_deref() == Some("application/json") {
                let body = request.body.unwrap_or_default();
                assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok(), "{body}");
            }
        }
    }
});

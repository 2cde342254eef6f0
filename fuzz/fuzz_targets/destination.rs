//! Any destination document: validation never panics, and every document it accepts renders
//! for any postback values without panicking, with a URL that keeps the configured origin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skan_receiver::dispatch::DestinationConfig;
use skan_receiver::dispatch::request::{Render, render};
use skan_receiver::dispatch::template::{MacroValue, Values};

fuzz_target!(|data: &[u8]| {
    let Some((doc, value)) = data.iter().position(|b| *b == 0).map(|i| data.split_at(i)) else { return };
    let Ok(config) = serde_json::from_slice::<DestinationConfig>(doc) else { return };
    let Ok(destination) = config.validate() else { return };
    let text = String::from_utf8_lossy(&value[1..]).into_owned();
    let mut values = Values::new();
    values.insert("transaction_id", MacroValue::Str(text.clone()));
    values.insert("raw_postback", MacroValue::Str(text));
    values.insert("app_id", MacroValue::Int(i64::from(value.len() as u32)));
    values.insert("did_win", MacroValue::Bool(value.len() % 2 == 0));
    if let Render::Request(request) = render(&destination, &values) {
        assert!(request.url.starts_with(&destination.url.origin));
        assert!(request.headers.iter().all(|(_, v)| !v.contains(['\r', '\n'])));
    }
});

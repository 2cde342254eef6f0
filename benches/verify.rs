//! Signature verification speed per protocol version, reported as postbacks per second on one
//! core. Each case parses and verifies one postback (the work ingest does per postback).
//!
//! Run: `cargo bench --bench verify`. Versions Apple published a vector for use Apple's vector and
//! keys; 1.0 uses our own P-192 vector and the test keys.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use serde_json::Value;
use skan_receiver::skan::{KeySet, Postback, verify};

fn vectors(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("vector JSON")
}

fn cases() -> Vec<(String, Vec<u8>, KeySet)> {
    let apple = skan_receiver::apple_keys::load(None).expect("embedded keys");
    let test_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys");
    let test = skan_receiver::apple_keys::load(Some(&test_dir)).expect("test keys");
    let mut out = Vec::new();
    let mut pick = |file: &str, keys: &KeySet, wanted: &[(&str, &str)]| {
        let all = vectors(file);
        for (label, name_or_version) in wanted {
            let v = all
                .iter()
                .find(|v| {
                    v["name"] == *name_or_version
                        || v["postback"]["version"] == *name_or_version
                        || (*name_or_version == "aak" && v["postback"].get("jws-string").is_some())
                })
                .expect("vector present");
            out.push((
                (*label).to_owned(),
                serde_json::to_vec(&v["postback"]).expect("serializable"),
                keys.clone(),
            ));
        }
    };
    pick("testdata/vectors/own.json", &test, &[("skan-1.0 (P-192)", "own-skan10-no-version-key")]);
    pick(
        "testdata/apple-published.json",
        &apple,
        &[
            ("skan-2.0 (P-192)", "2.0"),
            ("skan-2.1", "2.1"),
            ("skan-2.2", "2.2"),
            ("skan-3.0", "3.0"),
            ("skan-4.0", "4.0"),
            ("adattributionkit", "aak"),
        ],
    );
    out
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let cases = cases();
    let mut group = criterion.benchmark_group("parse_and_verify");
    group.throughput(Throughput::Elements(1));
    for (label, bytes, keys) in &cases {
        assert!(
            verify(&Postback::parse(bytes.clone()).expect("parses"), keys).is_valid(),
            "{label}"
        );
        group.bench_function(label.as_str(), |b| {
            b.iter(|| {
                let postback = Postback::parse(bytes.clone()).expect("parses");
                verify(&postback, keys)
            });
        });
    }
    group.finish();
    criterion.final_summary();
    print_rates(&cases);
}

/// Print postbacks/s per case from criterion's saved mean estimates.
fn print_rates(cases: &[(String, Vec<u8>, KeySet)]) {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), Into::into)
        .join("criterion/parse_and_verify");
    println!("\nverification rate, one core:");
    for (label, _, _) in cases {
        let file = root.join(label).join("new/estimates.json");
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Ok(estimates) = serde_json::from_str::<Value>(&text) else { continue };
        if let Some(ns) = estimates["mean"]["point_estimate"].as_f64() {
            println!("  {label:<20} {:>10.0} postbacks/s  ({:.1} µs each)", 1e9 / ns, ns / 1e3);
        }
    }
}

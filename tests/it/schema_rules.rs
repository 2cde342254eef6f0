//! Schema validation (one case per rule), generators, diffs and version selection.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use skan_receiver::schema::{
    CompiledSchema, DecodeStatus, Generator, Schema, SchemaHistory, SchemaVersionEntry, diff,
    validate,
};
use skan_receiver::skan::{CoarseValue, ConversionValue};

fn schema(value: Value) -> Schema {
    serde_json::from_value(value).unwrap()
}

fn base() -> Value {
    json!({
        "currency": "USD",
        "windows": [
            {"window": 0,
             "fine": [
                {"value": 0, "label": "install", "coarse": "low"},
                {"value": 1, "events": [{"name": "purchase", "min_count": 1, "max_count": 3}], "revenue": {"min": 1, "max": 5}, "coarse": "medium"},
                {"value": 2, "revenue": {"min": 5}, "coarse": "high"}
             ],
             "coarse": [{"value": "low"}, {"value": "medium", "revenue": {"min": 1, "max": 5}}, {"value": "high", "revenue": {"min": 5}}]},
            {"window": 1, "coarse": [{"value": "low"}, {"value": "medium"}, {"value": "high"}]},
            {"window": 2, "coarse": [{"value": "low"}, {"value": "medium"}, {"value": "high"}]}
        ]
    })
}

/// The single error a broken schema gets: (code, window, value, field).
fn only_error(value: Value) -> (String, Option<i64>, Option<String>, Option<String>, String) {
    let report = validate(&schema(value));
    assert!(!report.valid);
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    let e = &report.errors[0];
    (e.code.clone(), e.window, e.value.clone(), e.field.clone(), e.message.clone())
}

#[test]
fn the_base_schema_is_valid_with_only_the_unmapped_warning() {
    let report = validate(&schema(base()));
    assert!(report.valid, "{report:#?}");
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].code, "unmapped_values");
    assert!(
        report.warnings[0].message.contains("fine values 3-63 are unmapped"),
        "{}",
        report.warnings[0].message
    );
}

#[test]
fn a_fine_value_out_of_range_names_window_value_and_field() {
    let mut v = base();
    v["windows"][0]["fine"][2]["value"] = json!(64);
    let (code, window, value, field, message) = only_error(v);
    assert_eq!(
        (code.as_str(), window, value.as_deref()),
        ("value_out_of_range", Some(0), Some("64"))
    );
    assert_eq!(field.as_deref(), Some("windows[0].fine[2].value"));
    assert_eq!(message, "window 0: fine value 64 is outside 0-63");
}

#[test]
fn a_fine_value_outside_window_0_is_refused() {
    let mut v = base();
    v["windows"][1]["fine"] = json!([{"value": 3}]);
    let (code, window, _, field, _) = only_error(v);
    assert_eq!(
        (code.as_str(), window, field.as_deref()),
        ("fine_outside_window_0", Some(1), Some("windows[1].fine"))
    );
}

#[test]
fn duplicates_are_refused() {
    let mut v = base();
    v["windows"][0]["fine"][2]["value"] = json!(1);
    let (code, _, value, field, message) = only_error(v);
    assert_eq!((code.as_str(), value.as_deref()), ("duplicate_value", Some("1")));
    assert_eq!(field.as_deref(), Some("windows[0].fine[2].value"));
    assert!(message.contains("already mapped at windows[0].fine[1]"), "{message}");

    let mut v = base();
    v["windows"][2]["window"] = json!(1);
    let (code, window, ..) = only_error(v);
    assert_eq!((code.as_str(), window), ("duplicate_window", Some(1)));
}

#[test]
fn a_window_that_does_not_exist_is_refused() {
    let mut v = base();
    v["windows"][2]["window"] = json!(3);
    let report = validate(&schema(v));
    assert_eq!(report.errors[0].code, "window_out_of_range");
}

#[test]
fn min_above_max_is_refused_for_counts_and_revenue() {
    let mut v = base();
    v["windows"][0]["fine"][1]["events"][0]["min_count"] = json!(4);
    let (code, _, value, field, _) = only_error(v);
    assert_eq!((code.as_str(), value.as_deref()), ("min_above_max", Some("1")));
    assert_eq!(field.as_deref(), Some("windows[0].fine[1].events[0].min_count"));

    let mut v = base();
    v["windows"][0]["fine"][1]["revenue"] = json!({"min": 6, "max": 5});
    let report = validate(&schema(v));
    assert!(report.errors.iter().any(|e| e.code == "min_above_max"
        && e.field.as_deref() == Some("windows[0].fine[1].revenue.min")));
}

#[test]
fn negative_revenue_is_refused() {
    let mut v = base();
    v["windows"][0]["fine"][2]["revenue"] = json!({"min": -1});
    let report = validate(&schema(v));
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.code == "negative_revenue" && e.value.as_deref() == Some("2")),
        "{report:#?}"
    );
}

#[test]
fn an_unknown_currency_is_refused() {
    let mut v = base();
    v["currency"] = json!("USDX");
    let (code, _, _, field, message) = only_error(v);
    assert_eq!((code.as_str(), field.as_deref()), ("unknown_currency", Some("currency")));
    assert!(message.contains("ISO 4217"));
    let mut v = base();
    v.as_object_mut().unwrap().remove("currency");
    let report = validate(&schema(v));
    assert!(report.errors.iter().all(|e| e.code == "missing_currency"));
    let mut v = base();
    v["windows"][0]["fine"][2]["revenue"]["currency"] = json!("EUR");
    let (code, ..) = only_error(v);
    assert_eq!(code, "mixed_currency");
}

#[test]
fn partially_overlapping_revenue_ranges_are_refused_but_identical_ones_are_fine() {
    let mut v = base();
    v["windows"][0]["fine"][2]["revenue"] = json!({"min": 4});
    let (code, window, value, _, message) = only_error(v);
    assert_eq!(
        (code.as_str(), window, value.as_deref()),
        ("overlapping_revenue", Some(0), Some("2"))
    );
    assert!(message.contains("overlaps that of fine value 1"), "{message}");
    let mut v = base();
    v["windows"][0]["fine"][2]["revenue"] = json!({"min": 1, "max": 5});
    assert!(validate(&schema(v)).valid, "the same bucket for two values is allowed");
    let mut v = base();
    v["windows"][0]["fine"][2]["revenue"] = json!({"min": 5, "max": 9});
    assert!(validate(&schema(v)).valid, "[1,5) and [5,9) touch but do not overlap");
}

#[test]
fn values_in_the_wrong_list_and_misplaced_coarse_are_refused() {
    let mut v = base();
    v["windows"][0]["fine"][2]["value"] = json!("high");
    assert_eq!(only_error(v).0, "wrong_value_kind");
    let mut v = base();
    v["windows"][1]["coarse"][0]["coarse"] = json!("low");
    assert_eq!(only_error(v).0, "coarse_on_coarse");
    let mut v = base();
    v["windows"][0]["fine"][1]["events"][0]["name"] = json!(" ");
    assert_eq!(only_error(v).0, "empty_event_name");
}

#[test]
fn a_coarse_mapping_that_falls_as_fine_rises_is_a_warning_not_an_error() {
    let mut v = base();
    v["windows"][0]["fine"][2]["coarse"] = json!("low");
    let report = validate(&schema(v));
    assert!(report.valid);
    let warning =
        report.warnings.iter().find(|w| w.code == "coarse_not_monotonic").expect("warned");
    assert!(warning.message.contains("2 (low) after 1 (medium)"), "{}", warning.message);
}

#[test]
fn wrong_json_types_are_refused_by_the_document_reader() {
    let mut v = base();
    v["windows"][0]["fine"][0]["value"] = json!("LOW");
    assert!(
        serde_json::from_value::<Schema>(v).unwrap_err().to_string().contains("not a coarse value")
    );
    let mut v = base();
    v["windows"][0]["fine"][0]["colour"] = json!("red");
    assert!(serde_json::from_value::<Schema>(v).is_err(), "unknown keys are refused");
}

#[test]
fn the_bit_packed_example_decodes_value_42_as_purchase_and_registration_in_bucket_2() {
    let generator: Generator = serde_json::from_value(json!({
        "kind": "bit_packed", "currency": "USD", "revenue_bits": 3,
        "edges": [0, 0.01, 1, 3, 5, 10, 20, 50],
        "flags": [{"bit": 3, "event": "registration"}, {"bit": 4, "event": "tutorial"}, {"bit": 5, "event": "purchase"}]
    }))
    .unwrap();
    let compiled = CompiledSchema::compile(generator.build().unwrap()).unwrap();
    let decoded = compiled.decode(0, ConversionValue::Fine(42), None);
    let names: Vec<&str> = decoded.events.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["registration", "purchase"]);
    let revenue = decoded.revenue.unwrap();
    assert_eq!((revenue.min, revenue.max), (1.0, Some(3.0)));
    assert_eq!(decoded.currency.as_deref(), Some("USD"));
    assert_eq!(compiled.decode(0, ConversionValue::Fine(7), None).revenue.unwrap().min, 50.0);
    assert_eq!(
        compiled.decode(1, ConversionValue::Coarse(CoarseValue::High), None).revenue.unwrap().min,
        10.0
    );
}

#[test]
fn revenue_buckets_cover_the_edges_and_reject_bad_ones() {
    let generator = Generator::RevenueBuckets {
        currency: "EUR".into(),
        edges: vec![0.0, 1.0, 5.0],
        revenue_event: Some("purchase".into()),
    };
    let compiled = CompiledSchema::compile(generator.build().unwrap()).unwrap();
    assert_eq!(compiled.decode(0, ConversionValue::Fine(1), None).revenue.unwrap().max, Some(5.0));
    assert_eq!(compiled.decode(0, ConversionValue::Fine(2), None).revenue.unwrap().max, None);
    assert_eq!(compiled.decode(0, ConversionValue::Fine(3), None).status, DecodeStatus::Unmapped);
    assert!(compiled.decode(0, ConversionValue::Fine(0), None).events.is_empty());
    assert_eq!(
        compiled.decode(0, ConversionValue::Fine(2), None).events[0].name,
        "purchase".into()
    );
    for (edges, field) in [(vec![], "edges"), (vec![5.0, 1.0], "edges"), (vec![-1.0, 1.0], "edges")]
    {
        let err = Generator::RevenueBuckets { currency: "EUR".into(), edges, revenue_event: None }
            .build()
            .unwrap_err();
        assert_eq!(err.field, field);
    }
    let err = Generator::BitPacked {
        currency: "USD".into(),
        revenue_bits: 3,
        edges: vec![0.0, 1.0],
        flags: vec![skan_receiver::schema::generate::Flag { bit: 2, event: "x".into() }],
    }
    .build()
    .unwrap_err();
    assert_eq!(err.field, "flags");
}

#[test]
fn a_diff_lists_changed_added_and_removed_values() {
    let a = CompiledSchema::compile(schema(base())).unwrap();
    let mut v = base();
    v["windows"][0]["fine"][1]["revenue"] = json!({"min": 1, "max": 4});
    v["windows"][0]["fine"].as_array_mut().unwrap().push(json!({"value": 9, "label": "new"}));
    v["windows"][1]["coarse"].as_array_mut().unwrap().remove(0);
    v["currency"] = json!("EUR");
    let b = CompiledSchema::compile(schema(v)).unwrap();
    let d = diff(&a, &b);
    let summary: Vec<(u8, &str, &str, String)> = d
        .changes
        .iter()
        .map(|c| (c.window, c.kind.as_str(), c.value.as_str(), format!("{:?}", c.change)))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "fine", "1", "Changed".into()),
            (0, "fine", "9", "Added".into()),
            (1, "coarse", "low", "Removed".into())
        ]
    );
    assert_eq!(
        (d.currency_before.as_deref(), d.currency_after.as_deref()),
        (Some("USD"), Some("EUR"))
    );
    assert!(diff(&a, &a).changes.is_empty());
}

fn entry(version: i64, effective_from: &str, label: &str) -> SchemaVersionEntry {
    let mut v = base();
    v["windows"][0]["fine"][0]["label"] = json!(label);
    SchemaVersionEntry {
        version,
        effective_from: effective_from.parse::<DateTime<Utc>>().unwrap(),
        schema: std::sync::Arc::new(CompiledSchema::compile(schema(v)).unwrap()),
    }
}

#[test]
fn the_version_in_effect_at_the_end_of_the_install_day_decodes() {
    let history = SchemaHistory::new(vec![
        entry(2, "2026-11-10T15:00:00Z", "v2"),
        entry(1, "2026-01-01T00:00:00Z", "v1"),
        entry(3, "2026-11-20T00:00:00Z", "v3"),
        entry(4, "2026-11-20T00:00:00Z", "v4"),
    ]);
    let label = |y, m, d| {
        history
            .decode(NaiveDate::from_ymd_opt(y, m, d).unwrap(), 0, ConversionValue::Fine(0))
            .label
            .unwrap_or_default()
    };
    assert_eq!(label(2026, 11, 9), "v1");
    assert_eq!(label(2026, 11, 10), "v2", "a version applied during a day covers that day");
    assert_eq!(label(2026, 11, 19), "v2");
    assert_eq!(label(2026, 11, 20), "v4", "same effective time: the higher version wins");
    let before =
        history.decode(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), 0, ConversionValue::Fine(0));
    assert_eq!(before.status, DecodeStatus::NoSchema);
    let none =
        history.decode(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), 0, ConversionValue::None);
    assert_eq!(none.status, DecodeStatus::NoValue);
    assert_eq!(
        history
            .decode(NaiveDate::from_ymd_opt(2026, 11, 12).unwrap(), 0, ConversionValue::Fine(0))
            .schema_version,
        Some(2)
    );
}

#[test]
fn every_example_schema_in_testdata_is_valid() {
    let dir = crate::helpers::repo_path("testdata/schemas");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let report = validate(&serde_json::from_str(&text).unwrap());
        assert!(report.valid, "{}: {:#?}", path.display(), report.errors);
        checked += 1;
    }
    assert!(checked >= 3);
}

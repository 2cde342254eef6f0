//! Strict validation: each rule, with the field and the message a forwarder needs to fix its input.

use serde_json::{Value, json};
use skan_receiver::skan::{ConversionValue, Postback, PostbackBody};

use crate::helpers::APPLE_VECTORS;

fn skan4() -> Value {
    APPLE_VECTORS[0].postback.clone()
}

fn skan3() -> Value {
    APPLE_VECTORS[2].postback.clone()
}

fn aak() -> Value {
    APPLE_VECTORS[7].postback.clone()
}

fn parse_err(value: &Value) -> (String, Option<String>, String) {
    let err = Postback::parse(serde_json::to_vec(value).unwrap()).expect_err("must be rejected");
    (err.code().to_owned(), err.field.clone(), err.message())
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

#[test]
fn a_string_campaign_id_is_the_wrong_type_with_the_rule_in_the_message() {
    let (code, field, message) = parse_err(&with(skan3(), "campaign-id", json!("42")));
    assert_eq!(code, "wrong_type");
    assert_eq!(field.as_deref(), Some("campaign-id"));
    assert_eq!(message, "expected an integer 0-100, got a string");
}

#[test]
fn numbers_must_be_integers_and_booleans_must_be_booleans() {
    let cases = [
        (
            "app-id",
            json!(525463029.0),
            "expected an unsigned integer (an App Store ID), got a non-integer number",
        ),
        (
            "app-id",
            json!("525463029"),
            "expected an unsigned integer (an App Store ID), got a string",
        ),
        ("redownload", json!(1), "expected a boolean, got an integer"),
        ("did-win", json!("true"), "expected a boolean, got a string"),
        ("fidelity-type", json!(true), "expected 0 or 1, got a boolean"),
        ("conversion-value", json!(null), "expected an integer 0-63, got null"),
        ("source-identifier", json!(5239), "expected a string of 2-4 digits, got an integer"),
        (
            "transaction-id",
            json!(["x"]),
            "expected a non-empty transaction ID string, got an array",
        ),
    ];
    for (key, value, expected) in cases {
        let (code, field, message) = parse_err(&with(skan4(), key, value));
        assert_eq!(
            (code.as_str(), field.as_deref(), message.as_str()),
            ("wrong_type", Some(key), expected)
        );
    }
}

#[test]
fn values_outside_their_ranges_are_out_of_range() {
    let cases = [
        ("conversion-value", json!(64), "expected an integer 0-63, got 64"),
        ("conversion-value", json!(-1), "expected an integer 0-63, got -1"),
        ("postback-sequence-index", json!(3), "expected an integer 0-2, got 3"),
        ("fidelity-type", json!(2), "expected 0 or 1, got 2"),
        ("source-identifier", json!("5"), "expected a string of 2-4 digits, got \"5\""),
        ("source-identifier", json!("12345"), "expected a string of 2-4 digits, got \"12345\""),
        ("source-identifier", json!("52a9"), "expected a string of 2-4 digits, got \"52a9\""),
        ("country-code", json!("USA"), "expected a two-letter ISO 3166 country code, got \"USA\""),
        ("transaction-id", json!(""), "expected a non-empty transaction ID string, got \"\""),
        ("app-id", json!(-5), "expected an unsigned integer (an App Store ID), got -5"),
    ];
    for (key, value, expected) in cases {
        let (code, field, message) = parse_err(&with(skan4(), key, value));
        assert_eq!(
            (code.as_str(), field.as_deref(), message.as_str()),
            ("out_of_range", Some(key), expected)
        );
    }
    let (code, field, message) = parse_err(&with(
        without(skan4(), "conversion-value"),
        "coarse-conversion-value",
        json!("LOW"),
    ));
    assert_eq!(code, "out_of_range");
    assert_eq!(field.as_deref(), Some("coarse-conversion-value"));
    assert_eq!(message, "expected \"low\", \"medium\" or \"high\", got \"LOW\"");
    let (code, _, message) = parse_err(&with(skan3(), "campaign-id", json!(101)));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("out_of_range", "expected an integer 0-100, got 101")
    );
}

#[test]
fn keys_from_another_version_are_not_allowed() {
    let cases = [
        (
            with(skan4(), "campaign-id", json!(42)),
            "campaign-id",
            "SKAdNetwork 4.0 postbacks carry source-identifier instead of campaign-id",
        ),
        (
            with(skan3(), "source-identifier", json!("42")),
            "source-identifier",
            "source-identifier exists from SKAdNetwork 4.0; 3.0 postbacks carry campaign-id",
        ),
        (
            with(without(skan3(), "conversion-value"), "coarse-conversion-value", json!("low")),
            "coarse-conversion-value",
            "coarse conversion values exist from SKAdNetwork 4.0, this is a 3.0 postback",
        ),
        (
            with(skan3(), "postback-sequence-index", json!(0)),
            "postback-sequence-index",
            "postback-sequence-index exists from SKAdNetwork 4.0, this is a 3.0 postback",
        ),
        (
            with(APPLE_VECTORS[5].postback.clone(), "did-win", json!(true)),
            "did-win",
            "did-win exists from SKAdNetwork 3.0, this is a 2.1 postback",
        ),
        (
            with(APPLE_VECTORS[5].postback.clone(), "fidelity-type", json!(1)),
            "fidelity-type",
            "fidelity-type exists from SKAdNetwork 2.2, this is a 2.1 postback",
        ),
    ];
    for (value, key, expected) in cases {
        let (code, field, message) = parse_err(&value);
        assert_eq!(
            (code.as_str(), field.as_deref(), message.as_str()),
            ("not_allowed", Some(key), expected)
        );
    }
}

#[test]
fn a_fine_value_outside_the_first_window_is_not_allowed() {
    let (code, field, message) = parse_err(&with(skan4(), "postback-sequence-index", json!(1)));
    assert_eq!(code, "not_allowed");
    assert_eq!(field.as_deref(), Some("conversion-value"));
    assert!(message.contains("only sent in the first window"), "{message}");
}

#[test]
fn mutually_exclusive_keys_conflict() {
    let (code, field, message) = parse_err(&with(skan4(), "coarse-conversion-value", json!("low")));
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("conflicting_fields", Some("coarse-conversion-value"))
    );
    assert_eq!(
        message,
        "cannot appear together with `conversion-value`; a postback carries one or the other"
    );
    let (code, field, _) = parse_err(&with(skan4(), "source-app-id", json!(1)));
    assert_eq!((code.as_str(), field.as_deref()), ("conflicting_fields", Some("source-domain")));
}

#[test]
fn required_keys_are_named_when_missing() {
    let (code, field, message) = parse_err(&without(skan3(), "did-win"));
    assert_eq!((code.as_str(), field.as_deref()), ("missing_field", Some("did-win")));
    assert_eq!(message, "missing, required in SKAdNetwork 3.0 postbacks");
    let (code, field, _) = parse_err(&without(skan4(), "postback-sequence-index"));
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("missing_field", Some("postback-sequence-index"))
    );
    let (code, field, _) = parse_err(&without(skan4(), "source-identifier"));
    assert_eq!((code.as_str(), field.as_deref()), ("missing_field", Some("source-identifier")));
}

#[test]
fn documents_that_are_not_one_postback_object_are_rejected() {
    for (bytes, code) in [
        (&b"{\"version\": \"4.0\""[..], "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b"\"postback\"", "not_an_object"),
        (b"\xff\xfe{}", "malformed_json"),
        (b"", "malformed_json"),
    ] {
        let err = Postback::parse(bytes.to_vec()).unwrap_err();
        assert_eq!(err.code(), code, "{bytes:?}");
        assert_eq!(err.field, None);
    }
}

#[test]
fn a_duplicate_key_is_rejected_rather_than_guessing_which_copy_counts() {
    let text = APPLE_VECTORS[0].bytes();
    let mut text = String::from_utf8(text).unwrap();
    text.insert_str(1, "\"conversion-value\":1,");
    let err = Postback::parse(text.into_bytes()).unwrap_err();
    assert_eq!(err.code(), "duplicate_key");
    assert_eq!(err.field.as_deref(), Some("conversion-value"));
}

#[test]
fn an_unknown_version_parses_leniently_and_keeps_its_string() {
    let postback =
        Postback::parse(serde_json::to_vec(&with(skan4(), "version", json!("4.1"))).unwrap())
            .unwrap();
    assert_eq!(postback.version(), Some("4.1"));
    assert_eq!(postback.skan_version(), None);
}

#[test]
fn forwarder_keys_are_kept_in_order_and_leading_zeros_survive() {
    let mut value = with(skan4(), "source-identifier", json!("0039"));
    value["zeta"] = json!(1);
    value["alpha"] = json!({"nested": true});
    let text = serde_json::to_string(&value).unwrap();
    let postback = Postback::parse(text.clone().into_bytes()).unwrap();
    assert_eq!(postback.raw().as_ref(), text.as_bytes(), "raw bytes are kept verbatim");
    assert_eq!(postback.source_identifier().unwrap().as_str(), "0039");
    assert_eq!(postback.source_identifier().unwrap().digits(), 4);
    let PostbackBody::Skan(skan) = postback.body() else { panic!() };
    let extra: Vec<&str> = skan.extra.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(extra.len(), 2);
    assert!(extra.contains(&"zeta") && extra.contains(&"alpha"));
}

#[test]
fn a_missing_conversion_value_is_none_never_zero() {
    let postback =
        Postback::parse(serde_json::to_vec(&without(skan4(), "conversion-value")).unwrap())
            .unwrap();
    assert_eq!(postback.conversion_value(), ConversionValue::None);
    assert_eq!(postback.conversion_value().kind(), "none");
    assert_eq!(postback.conversion_value().fine(), None);
}

#[test]
fn adattributionkit_errors_name_the_nested_field() {
    let mut broken = aak();
    broken["jws-string"] = json!("only.two");
    let (code, field, message) = parse_err(&broken);
    assert_eq!((code.as_str(), field.as_deref()), ("malformed_jws", Some("jws-string")));
    assert!(message.contains("three base64url segments"), "{message}");

    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.encode(r#"{"ad-network-identifier":"x","advertised-item-identifier":"1"}"#);
    let header = b64.encode(r#"{"kid":"k","alg":"ES256"}"#);
    broken["jws-string"] = json!(format!("{header}.{payload}.AAAA"));
    let (code, field, _) = parse_err(&broken);
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("wrong_type", Some("jws-string.payload.advertised-item-identifier"))
    );

    let (code, field, _) = parse_err(&with(aak(), "ad-interaction-type", json!("tap")));
    assert_eq!((code.as_str(), field.as_deref()), ("out_of_range", Some("ad-interaction-type")));
    let (code, field, _) = parse_err(&with(aak(), "coarse-conversion-value", json!("low")));
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("conflicting_fields", Some("coarse-conversion-value"))
    );
}

#[test]
fn item_ids_beyond_64_bits_are_out_of_range_not_the_wrong_type() {
    for (id, shown) in [
        ("18446744073709551616", "got 18446744073709551616"),
        ("100000000000000000000000", "got 9999"),
    ] {
        let text = serde_json::to_string(&with(skan4(), "app-id", json!(7)))
            .unwrap()
            .replace("\"app-id\":7", &format!("\"app-id\":{id}"));
        let err = Postback::parse(text.into_bytes()).expect_err("must be rejected");
        assert_eq!((err.code(), err.field.as_deref()), ("out_of_range", Some("app-id")), "{id}");
        assert!(err.message().contains(shown), "{}", err.message());
    }
    // A fraction is still the wrong type.
    let (code, _, _) = parse_err(&with(skan4(), "app-id", json!(1.5)));
    assert_eq!(code, "wrong_type");
}

//! Tampering: every signed field of every version, changed, breaks verification; every unsigned
//! field, changed, does not, and is reported as unsigned.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use skan_receiver::skan::{
    InvalidReason, KeySet, Outcome, OutcomeClass, Postback, Protocol, SkanVersion, verify,
};

use crate::helpers::{APPLE_KEYS, Vector, all_vectors};

/// A different value of the same JSON type that stays within the field's range.
fn altered(key: &str, value: &Value) -> Value {
    match value {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => {
            let v = n.as_u64().unwrap();
            let max = match key {
                "fidelity-type" => 1,
                "postback-sequence-index" => 2,
                "campaign-id" => 100,
                "conversion-value" => 63,
                _ => u64::MAX,
            };
            json!(if v == max { v - 1 } else { v + 1 })
        }
        Value::String(s) => {
            let mut chars: Vec<char> = s.chars().collect();
            let last = chars.last_mut().unwrap();
            *last = if last.is_ascii_digit() {
                if *last == '9' { '0' } else { char::from(*last as u8 + 1) }
            } else if *last == 'x' {
                'y'
            } else {
                'x'
            };
            Value::String(chars.into_iter().collect())
        }
        other => panic!("unexpected value {other}"),
    }
}

fn check(
    postback: &Value,
    keys: &KeySet,
) -> Result<(Postback, skan_receiver::skan::Verification), String> {
    let parsed =
        Postback::parse(serde_json::to_vec(postback).unwrap()).map_err(|e| e.to_string())?;
    let result = verify(&parsed, keys);
    Ok((parsed, result))
}

fn skan_vectors() -> Vec<(Vector, &'static KeySet)> {
    all_vectors().into_iter().filter(|(v, _)| v.postback.get("jws-string").is_none()).collect()
}

fn aak_vectors() -> Vec<(Vector, &'static KeySet)> {
    all_vectors().into_iter().filter(|(v, _)| v.postback.get("jws-string").is_some()).collect()
}

#[test]
fn changing_any_signed_skan_field_breaks_the_signature() {
    let mut versions_seen = std::collections::BTreeSet::new();
    let mut mismatches = 0;
    for (vector, keys) in skan_vectors() {
        let (original, _) = check(&vector.postback, keys).unwrap();
        versions_seen.insert(original.version().unwrap().to_owned());
        for key in original.signed_keys() {
            let mut tampered = vector.postback.clone();
            if key == "version" {
                for other in SkanVersion::ALL.iter().map(|v| v.as_str()).chain(["9.9"]) {
                    if vector.postback["version"] == other {
                        continue;
                    }
                    tampered["version"] = json!(other);
                    if let Ok((_, result)) = check(&tampered, keys) {
                        assert!(
                            !result.is_valid(),
                            "{}: version -> {other} still verifies",
                            vector.label()
                        );
                    }
                }
                continue;
            }
            tampered[&key] = altered(key, &vector.postback[&key]);
            match check(&tampered, keys) {
                Ok((_, result)) => {
                    assert_eq!(
                        result.outcome,
                        Outcome::Invalid(InvalidReason::SignatureMismatch),
                        "{}: changing {key} must break the signature",
                        vector.label()
                    );
                    mismatches += 1;
                }
                // Only the window can break a parse rule (a fine value outside window 0).
                Err(err) => assert_eq!(key, "postback-sequence-index", "{}: {err}", vector.label()),
            }
        }
    }
    let all: Vec<_> = SkanVersion::ALL.iter().map(|v| v.as_str().to_owned()).collect();
    assert_eq!(versions_seen.into_iter().collect::<Vec<_>>(), all, "every version is exercised");
    assert!(mismatches > 100, "{mismatches}");
}

#[test]
fn changing_unsigned_skan_fields_keeps_the_signature_and_reports_them_unsigned() {
    for (vector, keys) in skan_vectors() {
        let mut tampered = vector.postback.clone();
        let obj = tampered.as_object_mut().unwrap();
        let mut changed = vec!["forwarder-note".to_owned(), "country-code".to_owned()];
        obj.insert("forwarder-note".into(), json!({"campaign": "summer", "cost": 1.5}));
        obj.insert("country-code".into(), json!("GB"));
        if let Some(cv) = obj.get("conversion-value").cloned() {
            obj.insert("conversion-value".into(), altered("conversion-value", &cv));
            changed.push("conversion-value".into());
        }
        if obj.contains_key("coarse-conversion-value") {
            let coarse = if obj["coarse-conversion-value"] == "low" { "high" } else { "low" };
            obj.insert("coarse-conversion-value".into(), json!(coarse));
            changed.push("coarse-conversion-value".into());
        }
        let (parsed, result) = check(&tampered, keys).unwrap();
        assert!(result.is_valid(), "{}: {:?}", vector.label(), result.outcome);
        let unsigned = parsed.unsigned_keys();
        for key in &changed {
            assert!(
                unsigned.contains(&key.as_str()),
                "{}: {key} not reported unsigned in {unsigned:?}",
                vector.label()
            );
        }
        assert!(parsed.extra_keys().contains(&"forwarder-note"));
    }
}

fn with_payload(postback: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let jws = postback["jws-string"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    let mut out = postback.clone();
    out["jws-string"] = json!(format!("{}.{}.{}", parts[0], encoded, parts[2]));
    out
}

#[test]
fn changing_any_signed_adattributionkit_claim_breaks_the_signature() {
    let mut checked = 0;
    for (vector, keys) in aak_vectors() {
        let (original, _) = check(&vector.postback, keys).unwrap();
        assert_eq!(original.protocol(), Protocol::AdAttributionKit);
        for key in original.signed_keys() {
            let key = key.to_owned();
            let tampered = with_payload(&vector.postback, |p| {
                let new = match key.as_str() {
                    "conversion-type" => {
                        json!(if p[&key] == "download" { "redownload" } else { "download" })
                    }
                    _ => altered(&key, &p[&key]),
                };
                p[&key] = new;
            });
            match check(&tampered, keys) {
                Ok((_, result)) => {
                    assert_eq!(
                        result.outcome,
                        Outcome::Invalid(InvalidReason::SignatureMismatch),
                        "{}: changing {key}",
                        vector.label()
                    );
                    checked += 1;
                }
                Err(err) => assert_eq!(key, "postback-sequence-index", "{}: {err}", vector.label()),
            }
        }
        // A claim added to the payload is covered too: the signing input is the received text.
        let extended = with_payload(&vector.postback, |p| {
            p.as_object_mut().unwrap().insert("zz-extra".into(), json!(1));
        });
        assert!(!check(&extended, keys).unwrap().1.is_valid());
    }
    assert!(checked >= 30, "{checked}");
}

#[test]
fn changing_unsigned_adattributionkit_keys_keeps_the_signature() {
    for (vector, keys) in aak_vectors() {
        let mut tampered = vector.postback.clone();
        let obj = tampered.as_object_mut().unwrap();
        obj.insert(
            "ad-interaction-type".into(),
            json!(if obj.get("ad-interaction-type") == Some(&json!("click")) {
                "view"
            } else {
                "click"
            }),
        );
        obj.insert("country-code".into(), json!("JP"));
        obj.insert("network-click-id".into(), json!("abc"));
        let (parsed, result) = check(&tampered, keys).unwrap();
        assert!(result.is_valid(), "{}", vector.label());
        let unsigned = parsed.unsigned_keys();
        for key in ["ad-interaction-type", "country-code", "network-click-id"] {
            assert!(unsigned.contains(&key), "{}: {key}", vector.label());
        }
    }
}

#[test]
fn a_jws_claiming_another_algorithm_is_invalid_even_with_a_good_signature() {
    let (vector, keys) = aak_vectors().into_iter().next().unwrap();
    let jws = vector.postback["jws-string"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    for alg in ["none", "HS256", "ES384", "es256"] {
        let header = URL_SAFE_NO_PAD
            .encode(format!(r#"{{"kid":"apple-development-identifier/1","alg":"{alg}"}}"#));
        let mut tampered = vector.postback.clone();
        tampered["jws-string"] = json!(format!("{header}.{}.{}", parts[1], parts[2]));
        let (_, result) = check(&tampered, keys).unwrap();
        assert_eq!(
            result.outcome,
            Outcome::Invalid(InvalidReason::UnexpectedAlgorithm(alg.into()))
        );
    }
}

#[test]
fn an_unknown_kid_or_version_is_unverifiable_not_invalid() {
    let (vector, keys) = aak_vectors().into_iter().next().unwrap();
    let jws = vector.postback["jws-string"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let header = URL_SAFE_NO_PAD.encode(r#"{"kid":"apple-cas-identifier/9","alg":"ES256"}"#);
    let mut tampered = vector.postback.clone();
    tampered["jws-string"] = json!(format!("{header}.{}.{}", parts[1], parts[2]));
    let (_, result) = check(&tampered, keys).unwrap();
    assert_eq!(result.outcome.class(), OutcomeClass::Unverifiable);
    assert_eq!(result.outcome.reason_code(), Some("unknown_kid"));

    let skan = &crate::helpers::APPLE_VECTORS[0].postback;
    let mut future = skan.clone();
    future["version"] = json!("5.0");
    let (parsed, result) = check(&future, &APPLE_KEYS).unwrap();
    assert_eq!(result.outcome.reason_code(), Some("unknown_version"));
    assert!(parsed.signed_keys().is_empty(), "nothing is known to be signed in an unknown version");
}

#[test]
fn a_key_set_without_the_versions_key_makes_it_unverifiable() {
    let p256_only = KeySet::from_manifest(
        "[[key]]\nfile='k.pem'\ncurve='P-256'\nskadnetwork_versions=['4.0']",
        |_| {
            Ok(std::fs::read_to_string(crate::helpers::repo_path(
                "apple_keys/skadnetwork-p256.pem",
            ))
            .unwrap())
        },
    )
    .unwrap();
    let two_zero =
        crate::helpers::APPLE_VECTORS.iter().find(|v| v.postback["version"] == "2.0").unwrap();
    let (_, result) = check(&two_zero.postback, &p256_only).unwrap();
    assert_eq!(result.outcome.reason_code(), Some("no_key_for_version"));
}

#[test]
fn broken_signature_encodings_are_invalid_with_a_specific_reason() {
    let base = &crate::helpers::APPLE_VECTORS[0].postback;
    let other_sig = crate::helpers::APPLE_VECTORS[1].postback["attribution-signature"].clone();
    let cases = [
        (json!("not base64 at all!"), "malformed_signature"),
        (json!("AAAA"), "malformed_signature"),
        (other_sig, "signature_mismatch"),
    ];
    for (signature, code) in cases {
        let mut tampered = base.clone();
        tampered["attribution-signature"] = signature.clone();
        let (_, result) = check(&tampered, &APPLE_KEYS).unwrap();
        assert_eq!(result.outcome.reason_code(), Some(code), "{signature}");
    }
    let mut unpadded = base.clone();
    let sig = base["attribution-signature"].as_str().unwrap().trim_end_matches('=').to_owned();
    unpadded["attribution-signature"] = json!(sig);
    assert!(check(&unpadded, &APPLE_KEYS).unwrap().1.is_valid(), "padding is optional");

    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("attribution-signature");
    let (_, result) = check(&missing, &APPLE_KEYS).unwrap();
    assert_eq!(result.outcome, Outcome::Invalid(InvalidReason::MissingSignature));
}

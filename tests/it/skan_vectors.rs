//! Every published Apple vector and every vector of our own verifies, with the derived facts the
//! vector file states by hand.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use skan_receiver::skan::{Curve, OutcomeClass, Postback, verify, verify_many};

use crate::helpers::{APPLE_KEYS, APPLE_VECTORS, OWN_VECTORS, TEST_KEYS, all_vectors};

#[test]
fn every_apple_published_vector_verifies_with_the_embedded_keys() {
    assert_eq!(APPLE_VECTORS.len(), 8);
    for vector in APPLE_VECTORS.iter() {
        assert!(vector.verifies);
        let postback =
            Postback::parse(vector.bytes()).unwrap_or_else(|e| panic!("{}: {e}", vector.label()));
        let result = verify(&postback, &APPLE_KEYS);
        assert!(result.is_valid(), "{}: {:?}", vector.label(), result.outcome);
    }
}

#[test]
fn the_apple_adattributionkit_example_is_development_and_the_skan_ones_are_not() {
    for vector in APPLE_VECTORS.iter() {
        let postback = Postback::parse(vector.bytes()).unwrap();
        let result = verify(&postback, &APPLE_KEYS);
        let expect_dev = vector.key.starts_with("apple-development");
        assert_eq!(result.development, expect_dev, "{}", vector.label());
        assert_eq!(result.is_production_valid(), !expect_dev, "{}", vector.label());
    }
}

#[test]
fn the_p192_version_two_vector_fails_under_the_p256_key() {
    let vector = APPLE_VECTORS.iter().find(|v| v.postback["version"] == "2.0").unwrap();
    let mut postback = vector.postback.clone();
    postback["version"] = json!("2.1");
    let parsed = Postback::parse(serde_json::to_vec(&postback).unwrap()).unwrap();
    assert_eq!(verify(&parsed, &APPLE_KEYS).outcome.class(), OutcomeClass::Invalid);
}

#[test]
fn every_own_vector_verifies_under_the_test_keys_and_not_under_apples() {
    assert!(OWN_VECTORS.len() >= 15);
    for vector in OWN_VECTORS.iter() {
        let postback =
            Postback::parse(vector.bytes()).unwrap_or_else(|e| panic!("{}: {e}", vector.label()));
        let ours = verify(&postback, &TEST_KEYS);
        assert!(ours.is_valid(), "{}: {:?}", vector.label(), ours.outcome);
        assert_eq!(ours.key.as_deref(), Some(vector.key.as_str()), "{}", vector.label());
        let apples = verify(&postback, &APPLE_KEYS);
        assert!(!apples.is_valid(), "{} must not verify under Apple's keys", vector.label());
    }
}

#[test]
fn own_vectors_derive_the_facts_written_in_the_vector_file() {
    for vector in OWN_VECTORS.iter() {
        let expect = vector.expect.as_ref().expect("own vectors carry expectations");
        let postback = Postback::parse(vector.bytes()).unwrap();
        let label = vector.label();
        assert_eq!(postback.dedup_key().as_str(), expect["dedup_key"], "{label}");
        assert_eq!(Value::from(postback.window()), expect["window"], "{label}");
        assert_eq!(
            postback.tier_hint().map_or(Value::Null, Value::from),
            expect["tier_hint"],
            "{label}"
        );
        assert_eq!(
            serde_json::to_value(postback.conversion_value()).unwrap(),
            expect["conversion_value"],
            "{label}"
        );
        if let Some(dev) = expect.get("development") {
            assert_eq!(Value::from(verify(&postback, &TEST_KEYS).development), *dev, "{label}");
        }
        if let Some(unsigned) = expect.get("unsigned_fields") {
            assert_eq!(
                serde_json::to_value(postback.unsigned_keys()).unwrap(),
                *unsigned,
                "{label}"
            );
        }
    }
}

#[test]
fn signed_messages_match_the_independently_built_strings_in_the_vector_file() {
    let text =
        std::fs::read_to_string(crate::helpers::repo_path("testdata/vectors/own.json")).unwrap();
    let raw: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for entry in raw {
        let Some(expected) = entry.get("signed_string").and_then(Value::as_str) else { continue };
        let postback = Postback::parse(serde_json::to_vec(&entry["postback"]).unwrap()).unwrap();
        let skan_receiver::skan::PostbackBody::Skan(skan) = postback.body() else {
            panic!("SKAN vector")
        };
        assert_eq!(skan.signed_message().as_deref(), Some(expected), "{}", entry["name"]);
        checked += 1;
    }
    assert!(checked >= 13);
}

#[test]
fn spec_worked_examples_produce_the_documented_bytes_and_digests() {
    // SPEC.md §1: Apple's 4.0 fine web-ad example and a real 1.0 postback.
    let cases = [
        (
            APPLE_VECTORS[0].bytes(),
            112,
            "e5efd5b424697d4eac347fb678f79ea33d0d03488ac7a44901130991697b6a32",
        ),
        (
            serde_json::to_vec(&json!({
                "ad-network-id": "su67r6k2v3.skadnetwork", "campaign-id": 51, "app-id": 1176027022,
                "transaction-id": "583e867c-0bc5-4980-8766-6d8cf992f24a", "version": "1.0", "redownload": false,
                "attribution-signature": "MDUCGQ"
            }))
            .unwrap(),
            79,
            "19f1dd97b5bd869d5b8598c88ee46c31fbf53a979f3d723435b4a0e0fd0b342f",
        ),
    ];
    for (bytes, len, digest) in cases {
        let postback = Postback::parse(bytes).unwrap();
        let skan_receiver::skan::PostbackBody::Skan(skan) = postback.body() else { panic!() };
        let message = skan.signed_message().unwrap();
        assert_eq!(message.len(), len);
        assert_eq!(hex(&Sha256::digest(message.as_bytes())), digest);
    }
}

#[test]
fn every_vector_reports_which_fields_the_signature_covers() {
    for (vector, _) in all_vectors() {
        let postback = Postback::parse(vector.bytes()).unwrap();
        let signed = postback.signed_keys();
        let unsigned = postback.unsigned_keys();
        let obj = vector.postback.as_object().unwrap();
        for key in ["conversion-value", "coarse-conversion-value", "country-code"] {
            assert!(!signed.contains(&key), "{}: {key} is never signed", vector.label());
            if obj.contains_key(key) {
                assert!(unsigned.contains(&key), "{}: {key} listed unsigned", vector.label());
            }
        }
        assert!(!signed.is_empty());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_fast_and_generic_verifiers_and_the_cache_agree_on_every_vector_and_its_tampered_copy() {
    let mut checked = 0;
    for (vector, keys) in all_vectors() {
        let fast = keys.clone().with_fixed_key_tables();
        let cached = keys.clone().with_fixed_key_tables().with_signature_cache(1000);
        assert!(fast.table_bytes() > 0 || keys.keys().iter().all(|k| k.key.curve() != Curve::P256));
        let mut inputs = vec![vector.postback.clone()];
        for field in ["transaction-id", "source-identifier", "campaign-id", "ad-network-id"] {
            if let Some(Value::String(text)) = vector.postback.get(field) {
                let mut tampered = vector.postback.clone();
                tampered[field] = json!(format!("{text}0"));
                inputs.push(tampered);
            }
        }
        for input in inputs {
            let Ok(postback) = Postback::parse(serde_json::to_vec(&input).unwrap()) else {
                continue;
            };
            let generic = verify(&postback, keys);
            for (label, set) in [("fast", &fast), ("cached", &cached), ("cached again", &cached)] {
                let other = verify(&postback, set);
                assert_eq!(
                    (&other.outcome, &other.key, other.development),
                    (&generic.outcome, &generic.key, generic.development),
                    "{label} on {}",
                    vector.label()
                );
            }
            checked += 1;
        }
        let cache = cached.signature_cache().unwrap();
        let (hits, misses) = cache.hits_and_misses();
        assert_eq!(hits, misses, "each signature checked once, then remembered");
    }
    assert!(checked > 40, "{checked}");
}

#[test]
fn verifying_many_at_once_gives_each_postback_the_answer_it_gets_alone() {
    for (name, keys, vectors) in
        [("apple", &*APPLE_KEYS, &*APPLE_VECTORS), ("own", &*TEST_KEYS, &*OWN_VECTORS)]
    {
        // Every vector, a tampered copy of each, and a repeat: valid and invalid answers mixed
        // in one batch, with cache hits inside it.
        let mut postbacks = Vec::new();
        for vector in vectors {
            let mut tampered = vector.postback.clone();
            tampered["transaction-id"] = json!("tampered-0000");
            for input in [vector.postback.clone(), tampered, vector.postback.clone()] {
                if let Ok(postback) = Postback::parse(serde_json::to_vec(&input).unwrap()) {
                    postbacks.push(postback);
                }
            }
        }
        let alone: Vec<_> = postbacks.iter().map(|p| verify(p, keys)).collect();
        assert!(alone.iter().any(|v| v.is_valid()) && alone.iter().any(|v| !v.is_valid()));
        let refs: Vec<&Postback> = postbacks.iter().collect();
        for (label, set) in [
            ("generic", keys.clone()),
            ("fast", keys.clone().with_fixed_key_tables()),
            ("cached", keys.clone().with_fixed_key_tables().with_signature_cache(1000)),
        ] {
            assert_eq!(verify_many(&refs, &set), alone, "{name}, {label}");
        }
    }
}

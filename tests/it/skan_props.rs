//! Property tests: malformed input never panics, no mutation of signed data ever verifies, and
//! anything our signer produces parses back to itself and verifies.

use proptest::prelude::*;
use serde_json::{Value, json};
use skan_receiver::skan::{
    CoarseValue, ConversionValue, FidelityType, Postback, PostbackBody, SkanPostback, SkanVersion,
    SourceApp, SourceIdentifier, Version, verify,
};

use crate::helpers::{TEST_KEYS, all_vectors, test_signer};

/// What a verifier would have to be fooled about: the exact signed bytes.
fn signed_data(postback: &Postback) -> Vec<u8> {
    match postback.body() {
        PostbackBody::Skan(s) => s.signed_message().unwrap_or_default().into_bytes(),
        PostbackBody::Aak(a) => a.jws.signing_input().to_vec(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(postback) = Postback::parse(bytes) {
            let keys = &*TEST_KEYS;
            let _ = verify(&postback, keys);
            let _ = (postback.dedup_key(), postback.tier_hint(), postback.unsigned_keys());
        }
    }

    #[test]
    fn byte_mutations_of_vectors_never_panic_and_never_verify_other_signed_data(
        index in 0usize..25,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let vectors = all_vectors();
        let (vector, keys) = &vectors[index % vectors.len()];
        let original = Postback::parse(vector.bytes()).unwrap();
        let mut bytes = vector.bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if !bytes.is_empty() => bytes[i] = byte,
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if !bytes.is_empty() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Ok(mutated) = Postback::parse(bytes) {
            let result = verify(&mutated, keys);
            if result.is_valid() {
                prop_assert_eq!(signed_data(&mutated), signed_data(&original));
            }
        }
    }

    #[test]
    fn replacing_any_value_never_verifies_changed_signed_data(
        index in 0usize..25,
        key_pick in any::<prop::sample::Index>(),
        replacement in json_value(),
    ) {
        let vectors = all_vectors();
        let (vector, keys) = &vectors[index % vectors.len()];
        let original = Postback::parse(vector.bytes()).unwrap();
        let mut value = vector.postback.clone();
        let keys_in = value.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let key = &keys_in[key_pick.index(keys_in.len())];
        value[key] = replacement;
        if let Ok(mutated) = Postback::parse(serde_json::to_vec(&value).unwrap())
            && verify(&mutated, keys).is_valid()
        {
            prop_assert_eq!(signed_data(&mutated), signed_data(&original));
        }
    }

    #[test]
    fn signed_postbacks_round_trip_and_verify(skan in skan_postback()) {
        let signer = test_signer();
        let mut skan = skan;
        signer.sign_skan(&mut skan).unwrap();
        let built = Postback::from_skan(skan.clone());
        let reparsed = Postback::parse(built.raw().clone()).unwrap();
        prop_assert_eq!(reparsed.body(), &PostbackBody::Skan(skan.clone()));
        let result = verify(&reparsed, &TEST_KEYS);
        prop_assert!(result.is_valid(), "{:?}", result.outcome);

        let mut tampered = skan;
        tampered.app_id = tampered.app_id.wrapping_add(1);
        prop_assert!(!verify(&Postback::from_skan(tampered), &TEST_KEYS).is_valid());
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..70).prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z0-9.\\-]{0,12}".prop_map(Value::from),
        Just(json!(["a", 1])),
        Just(json!({"k": "v"})),
    ]
}

fn skan_postback() -> impl Strategy<Value = SkanPostback> {
    let identity = (
        0usize..6,
        any::<bool>(),
        "[a-z0-9]{1,12}\\.skadnetwork",
        0u8..=100,
        "[0-9]{2,4}",
        any::<u64>(),
        "[a-zA-Z0-9é漢\\-]{1,30}",
    );
    let facts = (
        any::<bool>(),
        0u8..3,
        any::<u64>(),
        "[a-z]{1,10}\\.(com|org)",
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        0u8..64,
        0usize..3,
        0u8..3,
        proptest::option::of("[A-Z]{2}"),
        proptest::collection::btree_map("x-[a-z]{1,8}", "[a-z0-9 ]{0,10}", 0..3),
    );
    (identity, facts).prop_map(
        |(
            (v, has_version_key, ad_network_id, campaign, source_id, app_id, transaction_id),
            (
                redownload,
                source_kind,
                source_app_id,
                domain,
                fidelity,
                did_win,
                cv_kind,
                fine,
                coarse,
                psi,
                country,
                extra,
            ),
        )| {
            let version = SkanVersion::ALL[v];
            let v4 = version == SkanVersion::V4_0;
            let source_app = match (version, source_kind) {
                (SkanVersion::V1_0, _) | (_, 0) => None,
                (SkanVersion::V4_0, 2) => Some(SourceApp::Domain(domain)),
                _ => Some(SourceApp::AppId(source_app_id)),
            };
            let psi = if v4 { Some(psi) } else { None };
            let conversion_value = match cv_kind {
                _ if version == SkanVersion::V1_0 => ConversionValue::None,
                1 if psi.unwrap_or(0) == 0 => ConversionValue::Fine(fine),
                1 | 2 if v4 => ConversionValue::Coarse(CoarseValue::ALL[coarse]),
                _ => ConversionValue::None,
            };
            SkanPostback {
                version: Version::Known(version),
                has_version_key: version != SkanVersion::V1_0 || has_version_key,
                ad_network_id,
                campaign_id: (!v4).then_some(campaign),
                source_identifier: v4.then(|| SourceIdentifier::new(&source_id).unwrap()),
                app_id,
                transaction_id,
                redownload: (version != SkanVersion::V1_0 || has_version_key).then_some(redownload),
                source_app,
                fidelity_type: version.at_least(SkanVersion::V2_2).then_some(if fidelity {
                    FidelityType::StoreKitRendered
                } else {
                    FidelityType::ViewThrough
                }),
                did_win: version.at_least(SkanVersion::V3_0).then_some(did_win),
                conversion_value,
                postback_sequence_index: psi,
                country_code: country,
                attribution_signature: None,
                extra: extra.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            }
        },
    )
}

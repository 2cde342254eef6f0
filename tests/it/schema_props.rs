//! Property tests of decoding: every value in every window decodes to exactly what the schema
//! says, unmapped values to "unmapped", no value to "no value".

use std::collections::BTreeMap;

use proptest::prelude::*;
use skan_receiver::schema::{
    CompiledSchema, DecodeStatus, EventCondition, Generator, Mapping, RevenueRange, Schema,
    ValueKey, WindowMapping,
};
use skan_receiver::skan::{CoarseValue, ConversionValue};

fn mapping(value: ValueKey, seed: u32, bucket: Option<u32>) -> Mapping {
    Mapping {
        value,
        label: Some(format!("m{seed}")),
        events: (0..seed % 3)
            .map(|i| EventCondition {
                name: format!("e{i}").into(),
                min_count: Some(i),
                max_count: None,
            })
            .collect(),
        revenue: bucket.map(|b| RevenueRange {
            min: f64::from(b),
            max: Some(f64::from(b) + 1.0),
            currency: None,
        }),
        lock: seed.is_multiple_of(5),
        coarse: None,
    }
}

fn arbitrary_schema() -> impl Strategy<Value = Schema> {
    (
        proptest::collection::btree_map(
            0i64..64,
            (any::<u32>(), proptest::option::of(0u32..20)),
            0..64,
        ),
        proptest::collection::vec(
            proptest::collection::btree_map(
                0usize..3,
                (any::<u32>(), proptest::option::of(0u32..20)),
                0..3,
            ),
            3,
        ),
    )
        .prop_map(|(fine, coarse)| Schema {
            currency: Some("USD".into()),
            windows: coarse
                .into_iter()
                .enumerate()
                .map(|(w, coarse)| WindowMapping {
                    window: w as i64,
                    fine: if w == 0 {
                        fine.iter().map(|(v, (s, b))| mapping(ValueKey::Fine(*v), *s, *b)).collect()
                    } else {
                        vec![]
                    },
                    coarse: coarse
                        .iter()
                        .map(|(c, (s, b))| mapping(ValueKey::Coarse(CoarseValue::ALL[*c]), *s, *b))
                        .collect(),
                })
                .collect(),
        })
}

fn expected(schema: &Schema, window: u8, value: ConversionValue) -> Option<&Mapping> {
    let w = schema.windows.iter().find(|m| m.window == i64::from(window))?;
    match value {
        ConversionValue::Fine(v) => w.fine.iter().find(|m| m.value == ValueKey::Fine(i64::from(v))),
        ConversionValue::Coarse(c) => w.coarse.iter().find(|m| m.value == ValueKey::Coarse(c)),
        ConversionValue::None => None,
    }
}

proptest! {
    #[test]
    fn every_value_in_every_window_decodes_to_what_the_schema_says(schema in arbitrary_schema()) {
        let compiled = CompiledSchema::compile(schema.clone()).unwrap();
        let mut values: Vec<ConversionValue> = (0..64).map(ConversionValue::Fine).collect();
        values.extend(CoarseValue::ALL.map(ConversionValue::Coarse));
        for window in 0..3u8 {
            for value in &values {
                let decoded = compiled.decode(window, *value, Some(7));
                prop_assert_eq!(decoded.schema_version, Some(7));
                match expected(&schema, window, *value) {
                    Some(m) => {
                        prop_assert_eq!(decoded.status, DecodeStatus::Mapped);
                        prop_assert_eq!(&decoded.label, &m.label);
                        prop_assert_eq!(&decoded.events, &m.events);
                        prop_assert_eq!(&decoded.revenue, &m.revenue);
                        prop_assert_eq!(decoded.lock, m.lock);
                        prop_assert_eq!(decoded.currency.is_some(), m.revenue.is_some());
                    }
                    None => {
                        prop_assert_eq!(decoded.status, DecodeStatus::Unmapped);
                        prop_assert!(decoded.events.is_empty() && decoded.revenue.is_none());
                    }
                }
            }
            prop_assert_eq!(compiled.decode(window, ConversionValue::None, None).status, DecodeStatus::NoValue);
        }
    }

    #[test]
    fn generated_schemas_are_always_valid_and_map_every_bucket(
        edges in proptest::collection::btree_set(0u32..100_000, 1..9),
        bits in 3u8..4,
        flag_names in proptest::collection::btree_map(3u8..6, "[a-z]{1,8}", 0..3),
    ) {
        let edges: Vec<f64> = edges.into_iter().map(|e| f64::from(e) / 100.0).collect();
        let flags = flag_names.into_iter().map(|(bit, event)| skan_receiver::schema::generate::Flag { bit, event }).collect::<Vec<_>>();
        let packed = Generator::BitPacked { currency: "USD".into(), revenue_bits: bits, edges: edges.clone(), flags: flags.clone() };
        let compiled = CompiledSchema::compile(packed.build().unwrap()).unwrap();
        let mut by_bucket: BTreeMap<usize, f64> = BTreeMap::new();
        for value in 0u8..64 {
            let bucket = usize::from(value & ((1 << bits) - 1));
            let high_bits_are_flags = (bits..6).all(|b| value & (1 << b) == 0 || flags.iter().any(|f| f.bit == b));
            let decoded = compiled.decode(0, ConversionValue::Fine(value), None);
            if bucket < edges.len() && high_bits_are_flags {
                prop_assert_eq!(decoded.status, DecodeStatus::Mapped);
                let revenue = decoded.revenue.unwrap();
                prop_assert_eq!(revenue.min, edges[bucket]);
                by_bucket.insert(bucket, revenue.min);
                prop_assert_eq!(decoded.events.len(), flags.iter().filter(|f| value & (1 << f.bit) != 0).count());
            } else {
                prop_assert_eq!(decoded.status, DecodeStatus::Unmapped);
            }
        }
        prop_assert_eq!(by_bucket.len(), edges.len().min(1 << bits));
        let buckets = Generator::RevenueBuckets { currency: "USD".into(), edges, revenue_event: None };
        prop_assert!(CompiledSchema::compile(buckets.build().unwrap()).is_ok());
    }
}

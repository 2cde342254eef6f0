//! Any bytes as a conversion-value schema document: parsing, validating, compiling and decoding
//! every value never panic, and a document that validates compiles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skan_receiver::schema::{CompiledSchema, Schema, validate};
use skan_receiver::skan::{CoarseValue, ConversionValue};

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = serde_json::from_slice::<Schema>(data) else { return };
    let report = validate(&schema);
    match CompiledSchema::compile(schema) {
        Ok(compiled) => {
            assert!(report.valid);
            for window in 0..3u8 {
                for v in 0..64u8 {
                    let _ = compiled.mapping(window, ConversionValue::Fine(v));
                }
                for c in CoarseValue::ALL {
                    let _ = compiled.mapping(window, ConversionValue::Coarse(c));
                }
            }
        }
        Err(_) => assert!(!report.valid),
    }
});

//! Any bytes as NDJSON of postbacks and backfill envelopes: splitting and opening envelopes never
//! panic, an opened envelope's time is within the accepted range, and a refused one names a field.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use skan_receiver::ingest::envelope::{EARLIEST_ARRIVAL_MS, open};
use skan_receiver::input::{Framing, Item, for_each_item};

const NOW_MS: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = for_each_item(data, Framing::Ndjson, |item| {
        if let Item::Raw(bytes) = item {
            let arrival = open(Bytes::from(bytes), None, NOW_MS);
            match (&arrival.error, arrival.received_at_ms) {
                (Some(error), _) => assert!(error.field.is_some() && arrival.enveloped),
                (None, Some(at)) => assert!((EARLIEST_ARRIVAL_MS..=NOW_MS).contains(&at)),
                (None, None) => assert!(!arrival.enveloped),
            }
        }
        Ok(())
    });
});

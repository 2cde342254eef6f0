//! Any bytes: parsing never panics, and whatever parses can be verified and described.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use skan_receiver::skan::{KeySet, Postback, verify};

static KEYS: LazyLock<KeySet> = LazyLock::new(|| KeySet::embedded().expect("embedded keys"));

fuzz_target!(|data: &[u8]| {
    if let Ok(postback) = Postback::parse(data.to_vec()) {
        let result = verify(&postback, &KEYS);
        let _ = result.outcome.reason_message();
        let _ = (postback.dedup_key(), postback.tier_hint(), postback.signed_keys(), postback.unsigned_keys());
    }
});

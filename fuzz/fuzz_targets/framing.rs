//! Any bytes: splitting input into postbacks never panics and never loses bytes it was given
//! as complete lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skan_receiver::input::{Framing, Item, for_each_item};

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::Auto, Framing::Ndjson] {
        let _ = for_each_item(data, framing, |item| {
            if let Item::Raw(bytes) = item {
                let _ = skan_receiver::skan::Postback::parse(bytes);
            }
            Ok(())
        });
    }
});

//! Any query string as a report query: parsing never panics, and a query it accepts stays within
//! the documented limits (a range of at most 400 days, known dimensions only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skan_receiver::report::ReportQuery;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(data).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if let Ok(query) = ReportQuery::parse(&pairs) {
        assert!(query.from <= query.to);
        assert!((query.to - query.from).num_days() < 400);
    }
});

//! skan-receiver receives Apple's privacy-preserving install postbacks (SKAdNetwork and
//! AdAttributionKit), verifies Apple's signatures, decodes conversion values with a
//! marketer-edited schema, stores everything durably, reports aggregates and forwards results to
//! partners.
//!
//! The library holds the whole application so that tests build the real thing; `main.rs` only
//! parses arguments and calls [`cli::run`].

pub mod app;
pub mod apple_keys;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod error_body;
pub mod group_commit;
pub mod http;
pub mod ingest;
pub mod input;
pub mod loadgen;
pub mod report;
pub mod schema;
pub mod schemas;
pub mod skan;
pub mod store;
pub mod telemetry;

//! skan-receiver receives Apple's privacy-preserving install postbacks (SKAdNetwork and
//! AdAttributionKit), verifies Apple's signatures, decodes conversion values with a
//! marketer-edited schema, stores everything durably, reports aggregates and forwards results to
//! partners.
//!
//! The library holds the whole application so that tests build the real thing; `main.rs` only
//! parses arguments and calls [`cli::run`].
//!
//! # Code map
//!
//! Dependencies point one way: down this table. A module may import only modules of a lower
//! rank (`tests/it/layering.rs` fails the build otherwise), and the pure cores (rank 0-2, plus
//! the dispatcher's policy, breaker and templates) touch no database, network, runtime or clock.
//!
//! | rank | module | role | job |
//! |---|---|---|---|
//! | 0 | [`skan`] | pure core | Apple's protocols: parse, validate, verify SKAdNetwork 1.0-4.0 and AdAttributionKit postbacks |
//! | 0 | [`clock`] | infrastructure | the only place that reads the wall clock (tests pass a manual one) |
//! | 1 | [`error_body`] | pure | the one error shape: `{"error": {"code", "message", "field"}}` |
//! | 1 | [`schema`] | pure core | conversion-value schemas: model, validation, generators, decoding, diffs |
//! | 1 | [`input`] | pure | splitting bodies and files into postbacks (JSON, arrays, NDJSON) |
//! | 1 | [`apple_keys`] | infrastructure | the trusted key set: embedded Apple keys or a `--keys` directory |
//! | 2 | [`domain`] | pure | postbacks on their way in, aggregates, report filters, tallies, roles, routing rules, quality rules |
//! | 3 | [`store`] | adapter | SQLite and PostgreSQL behind one `Store` trait; SQL written once |
//! | 4 | [`auth`] | service | API keys: generation, hashing, cached look-up |
//! | 4 | [`group_commit`] | infrastructure | many concurrent writers, one transaction |
//! | 4 | [`leased`] | infrastructure | work one receiver at a time does on a schedule, by a lease in the database |
//! | 4 | [`schema_versions`] | service | schema versions: apply, list, diff, decode postbacks with the version in effect |
//! | 5 | [`report`] | service | reports: queries, metrics, CSV, simulation of a draft schema |
//! | 5 | [`quality`] | service | data quality: the quality report, anomaly detection on a schedule, anomalies and mutes |
//! | 6 | [`dispatch`] | service | forwarding to partners: destinations, templates, signing, retries, the delivery worker |
//! | 7 | [`ingest`] | service | bytes in, durable outcome out: parse, verify, flatten, commit; backfill envelopes; a verification stage batching concurrent small requests |
//! | 7 | [`config`] | wiring | settings from flags, environment and a TOML file |
//! | 7 | [`loadgen`] | tool | the load generator and its postback factory |
//! | 8 | [`telemetry`] | wiring | logs and Prometheus metrics |
//! | 9 | [`http`] | adapter | axum routes: handlers translate, `http/error.rs` maps every error; the web console |
//! | 10 | [`app`] | wiring | settings in, a running service out |
//! | 11 | [`cli`] | adapter | the `skan-receiver` commands |

/// Every binary built from this crate (the service, its tests and benchmarks) allocates with
/// mimalloc, so that what the benchmarks measure is what the service runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
pub mod leased;
pub mod loadgen;
pub mod quality;
pub mod report;
pub mod schema;
pub mod schema_versions;
pub mod skan;
pub mod store;
pub mod telemetry;

//! Integration tests: one binary, so the crate links once.

mod abuse;
mod api_ingest;
mod api_reports;
mod api_schemas;
mod backfill;
mod browser;
mod cli_service;
mod cli_verify;
mod console;
mod dispatch;
mod fixture;
mod full_disk;
mod helpers;
mod layering;
mod openapi;
mod partner;
mod quality;
mod scale_out;
mod schema_props;
mod schema_rules;
mod skan_parse;
mod skan_props;
mod skan_tamper;
mod skan_vectors;
mod store_contract;
mod store_outbox;

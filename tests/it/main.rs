//! Integration tests: one binary, so the crate links once.

mod api_ingest;
mod cli_service;
mod cli_verify;
mod helpers;
mod openapi;
mod skan_parse;
mod skan_props;
mod skan_tamper;
mod skan_vectors;
mod store_contract;

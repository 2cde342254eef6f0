//! Integration tests: one binary, so the crate links once.

mod cli_verify;
mod helpers;
mod skan_parse;
mod skan_props;
mod skan_tamper;
mod skan_vectors;

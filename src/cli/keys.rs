//! `skan-receiver keys`: create, list and revoke API keys.

use std::process::ExitCode;

use super::{EXIT_USAGE, fail, open_store, runtime};
use crate::auth::generate_key;
use crate::clock::{Clock as _, SystemClock};
use crate::config::DatabaseArgs;
use crate::error_body::ErrorBody;
use crate::store::{NewApiKey, Role, StoreError};

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it, alone, on standard output (it is shown only this once).
    Create {
        /// What the key may do: ingest, viewer, editor or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A unique name, recorded with every postback the key submits.
        #[arg(long)]
        name: String,
        /// Accept the key only from this network (CIDR, e.g. 203.0.113.0/24; repeat for more).
        /// Without it the key works from anywhere.
        #[arg(long = "allow-cidr", value_name = "CIDR", value_parser = parse_network)]
        allow_cidr: Vec<ipnet::IpNet>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List keys (never their secrets), one JSON object per line.
    List {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke a key by name.
    Revoke {
        /// The key's name.
        #[arg(long)]
        name: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|e| format!("{text:?} is not a network in CIDR notation (203.0.113.0/24): {e}"))
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::from_name(text)
        .ok_or_else(|| format!("unknown role {text:?}: use ingest, viewer, editor or admin"))
}

pub(super) fn run(command: KeysCommand) -> ExitCode {
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async {
        match command {
            KeysCommand::Create { role, name, allow_cidr, db } => {
                if name.trim().is_empty() {
                    return fail(
                        &ErrorBody::new("invalid_name", "a key name cannot be empty")
                            .with_field("--name"),
                        EXIT_USAGE,
                    );
                }
                let store = match open_store(&db).await {
                    Ok(store) => store,
                    Err(code) => return code,
                };
                let key = match generate_key() {
                    Ok(key) => key,
                    Err(err) => return fail(&ErrorBody::new("random_failed", err.to_string()), 1),
                };
                let new = NewApiKey {
                    name: name.clone(),
                    role,
                    key_hash: key.hash,
                    key_prefix: key.prefix,
                    created_at_ms: SystemClock.now_ms(),
                    allowed_networks: allow_cidr,
                };
                match store.create_api_key(&new).await {
                    Ok(_) => {
                        super::emit(&key.secret);
                        ExitCode::SUCCESS
                    }
                    Err(StoreError::Duplicate(_)) => fail(
                        &ErrorBody::new(
                            "duplicate_name",
                            format!("a key named {name:?} already exists"),
                        )
                        .with_field("--name"),
                        1,
                    ),
                    Err(err) => fail(&ErrorBody::new("database_error", err.to_string()), 1),
                }
            }
            KeysCommand::List { db } => {
                let store = match open_store(&db).await {
                    Ok(store) => store,
                    Err(code) => return code,
                };
                match store.list_api_keys().await {
                    Ok(keys) => {
                        for key in keys {
                            super::emit(&serde_json::to_string(&key).unwrap_or_default());
                        }
                        ExitCode::SUCCESS
                    }
                    Err(err) => fail(&ErrorBody::new("database_error", err.to_string()), 1),
                }
            }
            KeysCommand::Revoke { name, db } => {
                let store = match open_store(&db).await {
                    Ok(store) => store,
                    Err(code) => return code,
                };
                match store.revoke_api_key(&name, SystemClock.now_ms()).await {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => fail(
                        &ErrorBody::new("not_found", format!("no active key named {name:?}"))
                            .with_field("--name"),
                        1,
                    ),
                    Err(err) => fail(&ErrorBody::new("database_error", err.to_string()), 1),
                }
            }
        }
    })
}

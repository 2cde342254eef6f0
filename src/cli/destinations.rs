//! `skan-receiver destinations`: list, add, show, enable and disable forwarding destinations
//! directly in the database (a running service picks changes up within its poll interval).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{EXIT_USAGE, fail, open_store, runtime};
use crate::clock::SystemClock;
use crate::config::DatabaseArgs;
use crate::dispatch::{DestinationConfig, DispatchError, DispatchSettings, Dispatcher, HttpSender};
use crate::error_body::ErrorBody;
use crate::schema_versions::SchemaVersions;
use crate::store::StoreError;

/// `destinations` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DestinationsCommand {
    /// List destinations (secrets masked), one JSON object per line.
    List {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Create a destination from a JSON document (the same document as `POST /v1/destinations`)
    /// and print it; a generated signing secret is printed this once.
    Add {
        /// The destination document (JSON).
        #[arg(long)]
        file: PathBuf,
        /// Accept an address on loopback or a private network.
        #[arg(long)]
        allow_private_destinations: bool,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print one destination (secrets masked).
    Show {
        /// Its name.
        name: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Stop sending to a destination; its pending deliveries wait.
    Disable {
        /// Its name.
        name: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Send to a destination again (clears an automatic disabling).
    Enable {
        /// Its name.
        name: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn report(err: DispatchError) -> ExitCode {
    let body = match err {
        DispatchError::NotFound(message) => ErrorBody::new("not_found", message),
        DispatchError::Invalid(e) => {
            ErrorBody::new("invalid_destination", e.message).with_field(e.field)
        }
        DispatchError::Busy(message) => ErrorBody::new("in_flight", message),
        DispatchError::Corrupt(message) => ErrorBody::new("corrupt", message),
        DispatchError::Store(StoreError::Duplicate(_)) => {
            ErrorBody::new("conflict", "a destination with this name exists").with_field("name")
        }
        DispatchError::Store(e) => ErrorBody::new("database_error", e.to_string()),
    };
    fail(&body, 1)
}

fn print(value: &impl serde::Serialize) -> ExitCode {
    super::emit(&serde_json::to_string(value).unwrap_or_default());
    ExitCode::SUCCESS
}

pub(super) fn run(command: DestinationsCommand) -> ExitCode {
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async {
        let (db, allow_private) = match &command {
            DestinationsCommand::List { db }
            | DestinationsCommand::Show { db, .. }
            | DestinationsCommand::Disable { db, .. }
            | DestinationsCommand::Enable { db, .. } => (db, false),
            DestinationsCommand::Add { db, allow_private_destinations, .. } => {
                (db, *allow_private_destinations)
            }
        };
        let store = match open_store(db).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        let sender = match HttpSender::new(allow_private) {
            Ok(sender) => sender,
            Err(err) => return fail(&ErrorBody::new("http_client", err.to_string()), 1),
        };
        let clock = Arc::new(SystemClock);
        let schemas = Arc::new(SchemaVersions::new(store.clone(), clock.clone()));
        let dispatcher = Dispatcher::new(
            store,
            schemas,
            Arc::new(sender),
            clock,
            DispatchSettings { allow_private, ..DispatchSettings::default() },
        );
        match command {
            DestinationsCommand::List { .. } => match dispatcher.destinations().await {
                Ok(list) => {
                    for destination in &list {
                        super::emit(&serde_json::to_string(destination).unwrap_or_default());
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => report(err),
            },
            DestinationsCommand::Add { file, .. } => {
                let text = match std::fs::read_to_string(&file) {
                    Ok(text) => text,
                    Err(err) => {
                        return fail(
                            &ErrorBody::new(
                                "unreadable_input",
                                format!("{}: {err}", file.display()),
                            )
                            .with_field("--file"),
                            EXIT_USAGE,
                        );
                    }
                };
                let mut de = serde_json::Deserializer::from_str(&text);
                let config: DestinationConfig = match serde_path_to_error::deserialize(&mut de) {
                    Ok(config) => config,
                    Err(err) => {
                        let field = err.path().to_string();
                        return fail(
                            &ErrorBody::new("invalid_destination", err.inner().to_string())
                                .with_field(field),
                            1,
                        );
                    }
                };
                match dispatcher.create_destination(config).await {
                    Ok(created) => print(&created),
                    Err(err) => report(err),
                }
            }
            DestinationsCommand::Show { name, .. } => {
                match dispatcher.destination_named(&name).await {
                    Ok(view) => print(&view),
                    Err(err) => report(err),
                }
            }
            DestinationsCommand::Disable { name, .. } => switch(&dispatcher, &name, false).await,
            DestinationsCommand::Enable { name, .. } => switch(&dispatcher, &name, true).await,
        }
    })
}

async fn switch(dispatcher: &Dispatcher, name: &str, enabled: bool) -> ExitCode {
    let view = match dispatcher.destination_named(name).await {
        Ok(view) => view,
        Err(err) => return report(err),
    };
    match dispatcher.set_enabled(view.id, enabled).await {
        Ok(view) => print(&view),
        Err(err) => report(err),
    }
}

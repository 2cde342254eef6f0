//! `skan-receiver migrate`: apply the embedded migrations and report.

use std::process::ExitCode;

use super::{EXIT_USAGE, fail, open_store, runtime};
use crate::config::DatabaseArgs;
use crate::error_body::ErrorBody;

pub(super) fn run(db: &DatabaseArgs) -> ExitCode {
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async {
        let store = match open_store(db).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        match store.pending_migrations().await {
            Ok(pending) => {
                super::emit(
                    &serde_json::json!({ "status": "migrated", "pending": pending }).to_string(),
                );
                ExitCode::SUCCESS
            }
            Err(err) => fail(&ErrorBody::new("database_error", err.to_string()), 1),
        }
    })
}

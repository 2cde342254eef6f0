//! `skan-receiver serve`: run the service.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::{fail, runtime};
use crate::app::{App, shutdown_signal};
use crate::clock::SystemClock;
use crate::config::{ServeArgs, Settings};
use crate::error_body::ErrorBody;
use crate::telemetry;

pub(super) fn run(args: &ServeArgs) -> ExitCode {
    let settings = match Settings::resolve(args) {
        Ok(settings) => settings,
        Err(err) => {
            return fail(&ErrorBody::new("invalid_settings", err.to_string()), super::EXIT_USAGE);
        }
    };
    telemetry::init_tracing(settings.log_format);
    let Ok(rt) = runtime() else { return ExitCode::from(super::EXIT_USAGE) };
    let result: anyhow::Result<()> = rt.block_on(async {
        let listen = settings.listen;
        let app = App::build(settings, Arc::new(SystemClock)).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        app.run(listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&ErrorBody::new("startup_failed", format!("{err:#}")), 1),
    }
}

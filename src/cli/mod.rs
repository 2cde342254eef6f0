//! The command line: `skan-receiver <command>`.
//!
//! Every command reports failures on standard error in the shared error shape
//! (`{"error": {"code", "message", "field"}}`) and exits 2 for usage errors and unreadable input.

mod destinations;
mod import;
mod keys;
mod loadgen;
mod migrate;
mod quality;
mod report;
mod schema;
mod serve;
mod verify;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{DatabaseArgs, ServeArgs};
use crate::error_body::ErrorBody;
use crate::store::{self, ConnectOptions, Store};

/// Receive, verify, decode, store and forward Apple SKAdNetwork and AdAttributionKit postbacks.
#[derive(Debug, Parser)]
#[command(name = "skan-receiver", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (SQLite file `skan-receiver.db` and 127.0.0.1:8080 unless told otherwise).
    Serve(Box<ServeArgs>),
    /// Verify postbacks from files or standard input and print one JSON line per postback.
    Verify(verify::VerifyArgs),
    /// Import archived postbacks through the ingest pipeline, with progress and a summary.
    Import(import::ImportArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Send realistic signed postbacks to a receiver and report throughput and latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Manage conversion-value schemas.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Print what each postback's conversion value means under a schema file.
    Decode(schema::DecodeArgs),
    /// Print an aggregated conversion report (same parameters as GET /v1/reports).
    Report(Box<report::ReportArgs>),
    /// Manage the destinations postbacks are forwarded to.
    #[command(subcommand)]
    Destinations(destinations::DestinationsCommand),
    /// Print an app's data-quality report, or look for anomalies now (--detect).
    Quality(quality::QualityArgs),
}

/// Exit status for a usage error or unreadable input.
pub const EXIT_USAGE: u8 = 2;

/// Parse the process arguments and run the command.
#[must_use]
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let rendered = err.render().to_string();
            let message = rendered
                .lines()
                .next()
                .unwrap_or("invalid usage")
                .trim_start_matches("error: ")
                .to_owned();
            print_error(&ErrorBody::new("usage", format!("{message} (see --help)")));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Keys(command) => keys::run(command),
        Command::Migrate(db) => migrate::run(&db),
        Command::Loadgen(args) => loadgen::run(&args),
        Command::Schema(command) => schema::run(command),
        Command::Decode(args) => schema::decode(&args),
        Command::Report(args) => report::run(&args),
        Command::Destinations(command) => destinations::run(command),
        Command::Quality(args) => quality::run(&args),
    }
}

/// Write one line to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn emit(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Print an error and return its exit status.
pub(crate) fn fail(body: &ErrorBody, code: u8) -> ExitCode {
    print_error(body);
    ExitCode::from(code)
}

/// A multi-threaded runtime for the async commands.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().inspect_err(|err| {
        print_error(&ErrorBody::new("runtime_failed", err.to_string()));
    })
}

/// Open (and migrate) the database named by the flags, or print why not.
pub(crate) async fn open_store(db: &DatabaseArgs) -> Result<std::sync::Arc<dyn Store>, ExitCode> {
    let url = db
        .resolve_url()
        .map_err(|err| fail(&ErrorBody::new("invalid_settings", err.to_string()), EXIT_USAGE))?;
    store::connect(&url, &ConnectOptions::default()).await.map_err(|err| {
        fail(
            &ErrorBody::new("database_unavailable", err.to_string()).with_field("--database-url"),
            EXIT_USAGE,
        )
    })
}

/// Print an error in the shared shape on standard error.
pub(crate) fn print_error(body: &ErrorBody) {
    let line = serde_json::to_string(&body.clone().envelope()).unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_command_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

//! The command line: `skan-receiver <command>`.
//!
//! Every command reports failures on standard error in the shared error shape
//! (`{"error": {"code", "message", "field"}}`) and exits 2 for usage errors and unreadable input.

mod verify;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error_body::ErrorBody;

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
    /// Verify postbacks from files or standard input and print one JSON line per postback.
    Verify(verify::VerifyArgs),
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
        Command::Verify(args) => verify::run(&args),
    }
}

/// Print an error in the shared shape on standard error.
pub(crate) fn print_error(body: &ErrorBody) {
    let line = serde_json::to_string(&body.clone().envelope()).unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{line}");
}

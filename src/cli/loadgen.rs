//! `skan-receiver loadgen`: sign realistic postbacks with a test key and send them to a receiver,
//! or write them to a file (input for `verify` and `import` at scale).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{EXIT_USAGE, fail, runtime};
use crate::error_body::ErrorBody;
use crate::loadgen::{self, FactoryConfig, LoadConfig, PostbackFactory, Target};

/// Arguments of `loadgen`.
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Base URL of the receiver.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Key directory whose manifest the receiver trusts (`serve --keys`), with `NAME.key.pem`
    /// private keys beside the public ones.
    #[arg(long, default_value = "testdata/keys", value_name = "DIR")]
    pub keys: PathBuf,
    /// Postbacks to send.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Target postbacks per second (default: as fast as the receiver answers).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Send batches to /v1/postbacks with this ingest key instead of single postbacks to
    /// Apple's path.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Postbacks per batch with `--api-key`.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Share of postbacks that repeat an earlier one (device retries), 0-1.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Write the postbacks as NDJSON to this file (`-`: standard output) instead of sending
    /// them; one at a time, so a million take no more memory than one.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Random seed (the same seed generates the same postbacks).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

pub(super) fn run(args: &LoadgenArgs) -> ExitCode {
    let config = FactoryConfig { duplicate_ratio: args.duplicates, ..FactoryConfig::default() };
    let mut factory = match PostbackFactory::from_key_dir(&args.keys, args.seed, config) {
        Ok(factory) => factory,
        Err(err) => {
            return fail(
                &ErrorBody::new("bad_keys", err.to_string()).with_field("--keys"),
                EXIT_USAGE,
            );
        }
    };
    if let Some(path) = &args.write {
        return write_postbacks(&mut factory, args.count, path);
    }
    let signing = Instant::now();
    let postbacks: Vec<Vec<u8>> = (0..args.count).map(|_| factory.next_postback()).collect();
    eprintln!("signed {} postbacks in {:.1}s", postbacks.len(), signing.elapsed().as_secs_f64());
    let target = match &args.api_key {
        Some(key) => Target::Network { api_key: key.clone(), batch: args.batch },
        None => Target::Apple,
    };
    let load = LoadConfig {
        url: args.url.trim_end_matches('/').to_owned(),
        target,
        concurrency: args.concurrency,
        rate: args.rate,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    match rt.block_on(loadgen::run(postbacks, &load)) {
        Ok(report) => {
            eprintln!(
                "{} postbacks in {:.2}s: {:.0} postbacks/s acknowledged; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} failed requests",
                report.postbacks,
                report.seconds,
                report.postbacks_per_second,
                report.latency_ms.p50,
                report.latency_ms.p90,
                report.latency_ms.p99,
                report.latency_ms.max,
                report.failures.values().sum::<usize>(),
            );
            super::emit(&serde_json::to_string(&report).unwrap_or_default());
            if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(err) => fail(&ErrorBody::new("client_failed", err.to_string()), 1),
    }
}

fn write_postbacks(factory: &mut PostbackFactory, count: usize, path: &PathBuf) -> ExitCode {
    let started = Instant::now();
    let written = (|| -> std::io::Result<()> {
        let sink: Box<dyn std::io::Write> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(std::fs::File::create(path)?)
        };
        let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);
        for _ in 0..count {
            out.write_all(&factory.next_postback())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    })();
    match written {
        Ok(()) => {
            eprintln!("wrote {count} postbacks in {:.1}s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(err) => fail(
            &ErrorBody::new("unwritable_output", format!("{}: {err}", path.display()))
                .with_field("--write"),
            EXIT_USAGE,
        ),
    }
}

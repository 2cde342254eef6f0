//! `skan-receiver import`: backfill archives through the same pipeline as `/v1/postbacks`.
//!
//! Files hold NDJSON or a JSON array (optionally gzip-compressed, detected by content) of bare
//! postbacks or backfill envelopes, which keep each postback's original arrival time. They are
//! streamed in chunks: a reader thread splits postbacks while the ingest pipeline verifies and
//! commits the previous chunk. Running it twice is safe: the second run counts duplicates.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{EXIT_USAGE, fail, runtime};
use crate::clock::SystemClock;
use crate::config::{DatabaseArgs, Settings};
use crate::error_body::ErrorBody;
use crate::ingest::Summary;
use crate::ingest::{Arrival, CommitConfig, Ingestor, commit, envelope};
use crate::input::{Framing, Item, for_each_item};
use crate::store::{self, Backend, Channel, ConnectOptions, ReceiptResult};

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Database and settings file.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Directory with a `keys.toml` manifest to trust instead of Apple's embedded keys.
    #[arg(long, env = "SKAN_KEYS", value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Record the postbacks as received from `network` (default) or straight from `apple`
    /// devices (for archives of developer copies).
    #[arg(long, default_value = "network", value_parser = ["network", "apple"])]
    pub channel: String,
    /// Name recorded as the source of the receipts.
    #[arg(long, default_value = "import")]
    pub source: String,
    /// Arrival time of bare postbacks (those not in a backfill envelope): `NOW` (default) or an
    /// RFC 3339 time. Envelopes carry their own.
    #[arg(long, value_name = "NOW|RFC3339")]
    pub received_at: Option<String>,
    /// Postbacks per ingest call.
    #[arg(long, default_value_t = 2000)]
    pub chunk: usize,
    /// Files to import (NDJSON or JSON array, optionally gzip).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ImportSummary {
    files: usize,
    postbacks: usize,
    #[serde(flatten)]
    by_result: Summary,
    /// The arrival days (UTC) the stored postbacks cover.
    arrival_days: Option<DayRange>,
    seconds: f64,
    per_second: f64,
}

#[derive(Debug, Serialize)]
struct DayRange {
    first: chrono::NaiveDate,
    last: chrono::NaiveDate,
}

/// `--received-at`: `None` for now, or a time that has passed and is not before 2018.
fn parse_received_at(text: Option<&str>, now_ms: i64) -> Result<Option<i64>, ErrorBody> {
    let Some(text) = text else { return Ok(None) };
    if text.eq_ignore_ascii_case("now") {
        return Ok(None);
    }
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| {
            ErrorBody::new(
                "invalid_value",
                format!("expected NOW or an RFC 3339 time, got {text:?}: {e}"),
            )
            .with_field("--received-at")
        })?
        .timestamp_millis();
    if at > now_ms || at < crate::ingest::envelope::EARLIEST_ARRIVAL_MS {
        return Err(ErrorBody::new(
            "out_of_range",
            format!("{text} is in the future or before 2018-01-01"),
        )
        .with_field("--received-at"));
    }
    Ok(Some(at))
}

enum Chunk {
    Items(Vec<Bytes>),
    Broken { file: String, message: String },
}

pub(super) fn run(args: &ImportArgs) -> ExitCode {
    let database_url = match args.db.resolve_url() {
        Ok(url) => url,
        Err(err) => return fail(&ErrorBody::new("invalid_settings", err.to_string()), EXIT_USAGE),
    };
    let keys = match crate::apple_keys::load(args.keys.as_deref()) {
        Ok(keys) => Arc::new(keys),
        Err(err) => {
            return fail(
                &ErrorBody::new("bad_keys", err.to_string()).with_field("--keys"),
                EXIT_USAGE,
            );
        }
    };
    let received_at = match parse_received_at(
        args.received_at.as_deref(),
        crate::clock::Clock::now_ms(&SystemClock),
    ) {
        Ok(at) => at,
        Err(error) => return fail(&error, EXIT_USAGE),
    };
    for file in &args.files {
        if let Err(err) = File::open(file) {
            return fail(
                &ErrorBody::new("unreadable_input", format!("{}: {err}", file.display()))
                    .with_field(file.display().to_string()),
                EXIT_USAGE,
            );
        }
    }
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async move {
        let defaults = Settings::with_database(&database_url);
        let store = match store::connect(&database_url, &ConnectOptions::default()).await {
            Ok(store) => store,
            Err(err) => {
                return fail(&ErrorBody::new("database_unavailable", err.to_string()), EXIT_USAGE);
            }
        };
        let max_concurrent = if store.backend() == Backend::Sqlite { 1 } else { 4 };
        let (committer, commit_task) = commit::spawn(
            Arc::clone(&store),
            CommitConfig {
                max_items: defaults.commit_max_items,
                max_wait: defaults.commit_max_wait,
                max_concurrent,
            },
        );
        let ingestor =
            Ingestor::new(keys, committer, Arc::new(SystemClock), defaults.max_postback_bytes);
        let channel = if args.channel == "apple" { Channel::Apple } else { Channel::Network };
        let code = import_files(args, &ingestor, channel, received_at).await;
        drop(ingestor);
        let _ = commit_task.await;
        store.close().await;
        code
    })
}

async fn import_files(
    args: &ImportArgs,
    ingestor: &Ingestor,
    channel: Channel,
    received_at: Option<i64>,
) -> ExitCode {
    let total_bytes: u64 =
        args.files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    let read_bytes = Arc::new(AtomicU64::new(0));
    let progress = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(2);
    let files = args.files.clone();
    let chunk_size = args.chunk.max(1);
    let counter = Arc::clone(&read_bytes);
    let reader =
        tokio::task::spawn_blocking(move || read_files(&files, chunk_size, &counter, &sender));

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut postbacks = 0usize;
    let mut failed = None;
    let (mut first_ms, mut last_ms) = (i64::MAX, i64::MIN);
    while let Some(chunk) = receiver.recv().await {
        match chunk {
            Chunk::Items(items) => {
                postbacks += items.len();
                let now_ms = crate::clock::Clock::now_ms(&SystemClock);
                let arrivals: Vec<Arrival> =
                    items.into_iter().map(|raw| envelope::open(raw, received_at, now_ms)).collect();
                let times: Vec<i64> =
                    arrivals.iter().map(|a| a.received_at_ms.unwrap_or(now_ms)).collect();
                match ingestor.ingest_arrivals(arrivals, channel, Some(args.source.clone())).await {
                    Ok(results) => {
                        for (result, at) in results.iter().zip(times) {
                            summary.add(result.result);
                            if result.result != ReceiptResult::Rejected {
                                first_ms = first_ms.min(at);
                                last_ms = last_ms.max(at);
                            }
                        }
                    }
                    Err(err) => {
                        failed = Some(ErrorBody::new("database_error", err.to_string()));
                        break;
                    }
                }
            }
            Chunk::Broken { file, message } => {
                progress.suspend(|| {
                    super::print_error(&ErrorBody::new("malformed_json", message).with_field(file));
                });
                summary.rejected += 1;
            }
        }
        let rate = postbacks as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress.set_position(read_bytes.load(Ordering::Relaxed));
        progress.set_message(format!("{postbacks} postbacks, {rate:.0}/s"));
    }
    drop(receiver);
    progress.finish_and_clear();
    let read_result = reader.await.unwrap_or_else(|e| Err(io::Error::other(e)));
    if let Some(error) = failed {
        return fail(&error, 1);
    }
    if let Err(err) = read_result {
        return fail(&ErrorBody::new("unreadable_input", err.to_string()), EXIT_USAGE);
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = ImportSummary {
        files: args.files.len(),
        postbacks,
        by_result: summary,
        arrival_days: (first_ms <= last_ms)
            .then(|| DayRange { first: day_of(first_ms), last: day_of(last_ms) }),
        seconds,
        per_second: postbacks as f64 / seconds.max(1e-9),
    };
    eprintln!(
        "imported {} postbacks from {} file(s) in {:.1}s ({:.0}/s): {} accepted, {} duplicate, {} invalid, {} unverifiable, {} rejected",
        report.postbacks,
        report.files,
        report.seconds,
        report.per_second,
        report.by_result.accepted,
        report.by_result.duplicate,
        report.by_result.invalid,
        report.by_result.unverifiable,
        report.by_result.rejected,
    );
    if let Some(days) = &report.arrival_days {
        eprintln!("arrival days covered: {} to {}", days.first, days.last);
    }
    super::emit(&serde_json::to_string(&report).unwrap_or_default());
    ExitCode::SUCCESS
}

fn day_of(ms: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(chrono::NaiveDate::default, |t| t.date_naive())
}

/// Counts bytes read from the underlying (possibly compressed) file, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn read_files(
    files: &[PathBuf],
    chunk_size: usize,
    read: &Arc<AtomicU64>,
    sender: &tokio::sync::mpsc::Sender<Chunk>,
) -> io::Result<()> {
    let closed = || io::Error::other("the importer stopped");
    for path in files {
        let counting = Counting { inner: File::open(path)?, read: Arc::clone(read) };
        let mut buffered = BufReader::with_capacity(1 << 16, counting);
        let reader: Box<dyn BufRead> = if buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(buffered)))
        } else {
            Box::new(buffered)
        };
        let mut chunk = Vec::with_capacity(chunk_size);
        for_each_item(reader, Framing::Auto, |item| {
            match item {
                Item::Raw(bytes) => {
                    chunk.push(Bytes::from(bytes));
                    if chunk.len() == chunk_size {
                        sender
                            .blocking_send(Chunk::Items(std::mem::take(&mut chunk)))
                            .map_err(|_| closed())?;
                    }
                }
                Item::Broken(err) => {
                    if !chunk.is_empty() {
                        sender
                            .blocking_send(Chunk::Items(std::mem::take(&mut chunk)))
                            .map_err(|_| closed())?;
                    }
                    sender
                        .blocking_send(Chunk::Broken {
                            file: path.display().to_string(),
                            message: err.message(),
                        })
                        .map_err(|_| closed())?;
                }
            }
            Ok(())
        })?;
        if !chunk.is_empty() {
            sender.blocking_send(Chunk::Items(chunk)).map_err(|_| closed())?;
        }
    }
    Ok(())
}

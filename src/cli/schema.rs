//! `skan-receiver schema ...` and `skan-receiver decode`.

use std::io::{self, BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{EXIT_USAGE, fail, open_store, runtime};
use crate::clock::SystemClock;
use crate::config::DatabaseArgs;
use crate::error_body::ErrorBody;
use crate::input::{Framing, Item, for_each_item};
use crate::schema::generate::Flag;
use crate::schema::{CompiledSchema, Finding, Generator, Schema, ValidationReport, validate};
use crate::schema_versions::{SchemaError, SchemaVersions};
use crate::skan::Postback;

/// `schema` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SchemaCommand {
    /// Check a schema file; prints the report, exits 0 when it has no errors, 1 otherwise.
    Validate {
        /// The schema (JSON).
        file: PathBuf,
    },
    /// Store a schema file as the app's next version.
    Apply {
        /// App Store ID of the app.
        #[arg(long = "app")]
        app_id: i64,
        /// The schema (JSON).
        file: PathBuf,
        /// When it takes effect (RFC 3339); default now.
        #[arg(long)]
        effective_from: Option<DateTime<Utc>>,
        /// Why it changed.
        #[arg(long)]
        note: Option<String>,
        /// Who is changing it.
        #[arg(long, default_value = "cli")]
        author: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print the version in effect now (or version `--number N`).
    Show {
        /// App Store ID of the app.
        #[arg(long = "app")]
        app_id: i64,
        /// A specific version number.
        #[arg(long)]
        number: Option<i64>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List the app's versions, one JSON line each.
    History {
        /// App Store ID of the app.
        #[arg(long = "app")]
        app_id: i64,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Show what changed between two versions.
    Diff {
        /// App Store ID of the app.
        #[arg(long = "app")]
        app_id: i64,
        /// Older version.
        from: i64,
        /// Newer version.
        to: i64,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print a generated schema (revenue buckets or a bit-packed layout).
    #[command(subcommand)]
    Generate(GenerateCommand),
}

/// Schema generators.
#[derive(Debug, clap::Subcommand)]
pub enum GenerateCommand {
    /// Fine value i = revenue in [edge i, edge i+1).
    RevenueBuckets {
        /// ISO 4217 currency.
        #[arg(long)]
        currency: String,
        /// Ascending bucket edges, comma-separated (e.g. 0,0.99,4.99,9.99).
        #[arg(long, value_delimiter = ',', required = true)]
        edges: Vec<f64>,
        /// Event implied by revenue above the first bucket (e.g. purchase).
        #[arg(long)]
        revenue_event: Option<String>,
    },
    /// Revenue bucket in the low bits, event flags in the high bits.
    BitPacked {
        /// ISO 4217 currency.
        #[arg(long)]
        currency: String,
        /// Low bits holding the revenue bucket (1-5).
        #[arg(long)]
        revenue_bits: u8,
        /// Ascending bucket edges, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        edges: Vec<f64>,
        /// Event flags as BIT=EVENT, e.g. --flag 3=registration --flag 5=purchase.
        #[arg(long = "flag", value_parser = parse_flag)]
        flags: Vec<Flag>,
    },
}

fn parse_flag(text: &str) -> Result<Flag, String> {
    let (bit, event) = text.split_once('=').ok_or("expected BIT=EVENT, e.g. 3=registration")?;
    let bit = bit.trim().parse::<u8>().map_err(|_| format!("{bit:?} is not a bit number"))?;
    Ok(Flag { bit, event: event.trim().to_owned() })
}

/// Arguments of `decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// The schema to decode with (JSON).
    #[arg(long)]
    pub schema: PathBuf,
    /// Postbacks (one JSON postback, a JSON array, or NDJSON); `-` is standard input.
    #[arg(default_value = "-")]
    pub input: String,
}

fn print_json(value: &impl serde::Serialize) {
    super::emit(&serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Read a schema file; a document that does not deserialize becomes a one-error report.
fn read_schema(path: &Path) -> Result<Schema, Result<ValidationReport, ExitCode>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Err(fail(
            &ErrorBody::new("unreadable_input", format!("{}: {e}", path.display()))
                .with_field(path.display().to_string()),
            EXIT_USAGE,
        ))
    })?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize::<_, Schema>(&mut de).map_err(|err| {
        let field = err.path().to_string();
        Ok(ValidationReport {
            valid: false,
            errors: vec![Finding {
                code: "malformed_schema".to_owned(),
                window: None,
                value: None,
                field: (field != ".").then_some(field),
                message: err.into_inner().to_string(),
            }],
            warnings: Vec::new(),
        })
    })
}

fn schema_error(err: SchemaError) -> ExitCode {
    match err {
        SchemaError::Invalid(report) => {
            print_json(&report);
            ExitCode::from(1)
        }
        SchemaError::NotFound(message) => fail(&ErrorBody::new("not_found", message), 1),
        other => fail(&ErrorBody::new("database_error", other.to_string()), 1),
    }
}

pub(super) fn run(command: SchemaCommand) -> ExitCode {
    match command {
        SchemaCommand::Validate { file } => match read_schema(&file) {
            Ok(schema) => {
                let report = validate(&schema);
                print_json(&report);
                if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Err(Ok(report)) => {
                print_json(&report);
                ExitCode::from(1)
            }
            Err(Err(code)) => code,
        },
        SchemaCommand::Generate(generate) => {
            let generator = match generate {
                GenerateCommand::RevenueBuckets { currency, edges, revenue_event } => {
                    Generator::RevenueBuckets { currency, edges, revenue_event }
                }
                GenerateCommand::BitPacked { currency, revenue_bits, edges, flags } => {
                    Generator::BitPacked { currency, revenue_bits, edges, flags }
                }
            };
            match generator.build() {
                Ok(schema) => {
                    print_json(&schema);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(
                    &ErrorBody::new("invalid_parameter", e.message)
                        .with_field(format!("--{}", e.field.replace('_', "-"))),
                    EXIT_USAGE,
                ),
            }
        }
        SchemaCommand::Apply { app_id, file, effective_from, note, author, db } => {
            let schema = match read_schema(&file) {
                Ok(schema) => schema,
                Err(Ok(report)) => {
                    print_json(&report);
                    return ExitCode::from(1);
                }
                Err(Err(code)) => return code,
            };
            with_service(&db, |service| async move {
                match service.apply(app_id, schema, effective_from, &author, note).await {
                    Ok(applied) => {
                        print_json(&applied);
                        ExitCode::SUCCESS
                    }
                    Err(err) => schema_error(err),
                }
            })
        }
        SchemaCommand::Show { app_id, number, db } => with_service(&db, |service| async move {
            let found = match number {
                Some(n) => service.version(app_id, n).await,
                None => service.current(app_id).await,
            };
            match found {
                Ok(view) => {
                    print_json(&view);
                    ExitCode::SUCCESS
                }
                Err(err) => schema_error(err),
            }
        }),
        SchemaCommand::History { app_id, db } => with_service(&db, |service| async move {
            match service.versions(app_id).await {
                Ok(versions) => {
                    for v in versions {
                        super::emit(
                            &json!({"version": v.version, "effective_from": v.effective_from, "author": v.author, "note": v.note, "created_at": v.created_at})
                                .to_string(),
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => schema_error(err),
            }
        }),
        SchemaCommand::Diff { app_id, from, to, db } => with_service(&db, |service| async move {
            match service.diff(app_id, from, to).await {
                Ok(diff) => {
                    print_json(&diff);
                    ExitCode::SUCCESS
                }
                Err(err) => schema_error(err),
            }
        }),
    }
}

fn with_service<F, Fut>(db: &DatabaseArgs, body: F) -> ExitCode
where
    F: FnOnce(SchemaVersions) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async {
        let store = match open_store(db).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        let code = body(SchemaVersions::new(store.clone(), Arc::new(SystemClock))).await;
        store.close().await;
        code
    })
}

/// `decode`: what each postback means under a schema file, one JSON line per postback.
pub(super) fn decode(args: &DecodeArgs) -> ExitCode {
    let schema = match read_schema(&args.schema) {
        Ok(schema) => schema,
        Err(Ok(report)) => {
            print_json(&report);
            return ExitCode::from(EXIT_USAGE);
        }
        Err(Err(code)) => return code,
    };
    let compiled = match CompiledSchema::compile(schema) {
        Ok(compiled) => compiled,
        Err(report) => {
            print_json(&report);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let reader: Box<dyn BufRead> = if args.input == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        match std::fs::File::open(&args.input) {
            Ok(file) => Box::new(BufReader::new(file)),
            Err(e) => {
                return fail(
                    &ErrorBody::new("unreadable_input", format!("{}: {e}", args.input))
                        .with_field(args.input.clone()),
                    EXIT_USAGE,
                );
            }
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut index = 0u64;
    let mut all_ok = true;
    let result = for_each_item(reader, Framing::Auto, |item| {
        let parsed = match item {
            Item::Raw(bytes) => Postback::parse(bytes),
            Item::Broken(err) => Err(err),
        };
        let line = match parsed {
            Ok(postback) => {
                let value = postback.conversion_value();
                json!({
                    "index": index,
                    "dedup_key": postback.dedup_key().as_str(),
                    "app_id": postback.app_id(),
                    "window": postback.window(),
                    "conversion_value": value,
                    "decoded": compiled.decode(postback.window(), value, None),
                    "error": null,
                })
            }
            Err(err) => {
                all_ok = false;
                json!({"index": index, "error": ErrorBody::from(&err)})
            }
        };
        index += 1;
        writeln!(out, "{line}")
    });
    if let Err(err) = result.and_then(|()| out.flush()) {
        return fail(&ErrorBody::new("unreadable_input", err.to_string()), EXIT_USAGE);
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

//! `skan-receiver quality`: the quality report of `GET /v1/apps/{app_id}/quality`, or with
//! `--detect` an anomaly detection run now (what the service does on its schedule).

use std::process::ExitCode;
use std::sync::Arc;

use super::{EXIT_USAGE, emit, fail, open_store, runtime};
use crate::clock::{Clock as _, SystemClock};
use crate::config::DatabaseArgs;
use crate::domain::quality::DetectionRules;
use crate::error_body::ErrorBody;
use crate::quality;
use crate::schema_versions::SchemaVersions;

/// Arguments of `quality`.
#[derive(Debug, clap::Args)]
pub struct QualityArgs {
    /// App Store ID.
    #[arg(long = "app")]
    pub app_id: i64,
    /// First arrival day YYYY-MM-DD (default: 27 days before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// Last arrival day YYYY-MM-DD (default: today).
    #[arg(long)]
    pub to: Option<String>,
    /// Judge yesterday and today now, store new anomalies and print them (one JSON line each).
    #[arg(long)]
    pub detect: bool,
    /// Database.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub(super) fn run(args: &QualityArgs) -> ExitCode {
    let clock = Arc::new(SystemClock);
    let today = clock.now().date_naive();
    let (from, to) = match quality::day_range(args.from.as_deref(), args.to.as_deref(), today) {
        Ok(range) => range,
        Err(err) => return usage(&err),
    };
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async {
        let store = match open_store(&args.db).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        let schemas = SchemaVersions::new(store.clone(), clock.clone());
        let result = if args.detect {
            let rules = DetectionRules::default();
            quality::detect_app(store.as_ref(), &schemas, args.app_id, clock.now_ms(), &rules)
                .await
                .map(|found| {
                    for anomaly in found {
                        emit(&serde_json::to_string(&anomaly).unwrap_or_default());
                    }
                })
        } else {
            quality::report(store.as_ref(), &schemas, args.app_id, from, to)
                .await
                .map(|report| emit(&serde_json::to_string(&report).unwrap_or_default()))
        };
        store.close().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err @ (quality::QualityError::Range(_) | quality::QualityError::Day(..))) => {
                usage(&err)
            }
            Err(err) => fail(&ErrorBody::new("quality_failed", err.to_string()), 1),
        }
    })
}

/// A bad `--from` / `--to`, named as the flag.
fn usage(err: &quality::QualityError) -> ExitCode {
    let flag = match err {
        quality::QualityError::Day(field, _) => format!("--{field}"),
        _ => "--from".to_owned(),
    };
    fail(&ErrorBody::new("invalid_parameter", err.to_string()).with_field(flag), EXIT_USAGE)
}

//! `skan-receiver report`: the same report as `GET /v1/reports`, from the command line.

use std::process::ExitCode;
use std::sync::Arc;

use super::{EXIT_USAGE, emit, fail, open_store, runtime};
use crate::clock::SystemClock;
use crate::config::DatabaseArgs;
use crate::error_body::ErrorBody;
use crate::report::csv::CsvRenderer;
use crate::report::{self, Report, ReportError, ReportQuery};
use crate::schema_versions::SchemaVersions;

/// Arguments of `report`; each flag is the query parameter of the same name.
#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
pub struct ReportArgs {
    /// App Store ID.
    #[arg(long = "app")]
    pub app_id: i64,
    /// First day YYYY-MM-DD, inclusive.
    #[arg(long)]
    pub from: String,
    /// Last day YYYY-MM-DD, inclusive.
    #[arg(long)]
    pub to: String,
    /// `install` (default) or `arrival`.
    #[arg(long)]
    pub date_type: Option<String>,
    /// Dimensions, comma-separated (day, week, month, ad_network_id, source_identifier, window,
    /// fidelity, version, event, fine_value, coarse_value, tier).
    #[arg(long)]
    pub group_by: Vec<String>,
    /// Roll source identifiers up to their last 2, 3 or 4 digits.
    #[arg(long)]
    pub digits: Option<String>,
    /// Filter (repeat or comma-separate).
    #[arg(long)]
    pub ad_network_id: Vec<String>,
    /// Filter.
    #[arg(long)]
    pub source_identifier: Vec<String>,
    /// Filter: 0, 1, 2.
    #[arg(long)]
    pub window: Vec<String>,
    /// Filter: 0/view, 1/click.
    #[arg(long)]
    pub fidelity: Vec<String>,
    /// Filter: SKAdNetwork versions, or adattributionkit.
    #[arg(long)]
    pub version: Vec<String>,
    /// Filter: true, false.
    #[arg(long)]
    pub did_win: Vec<String>,
    /// Filter: true, false.
    #[arg(long)]
    pub redownload: Vec<String>,
    /// Filter: true, false (default false).
    #[arg(long)]
    pub development: Vec<String>,
    /// `histograms` to add fine and coarse value counts.
    #[arg(long)]
    pub include: Option<String>,
    /// Output: table (default), csv or json.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
    /// Database.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

impl ReportArgs {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("app_id".to_owned(), self.app_id.to_string()),
            ("from".to_owned(), self.from.clone()),
            ("to".to_owned(), self.to.clone()),
        ];
        let mut push = |name: &str, values: &[String]| {
            pairs.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
        };
        push("date_type", self.date_type.as_slice());
        push("group_by", &self.group_by);
        push("digits", self.digits.as_slice());
        push("ad_network_id", &self.ad_network_id);
        push("source_identifier", &self.source_identifier);
        push("window", &self.window);
        push("fidelity", &self.fidelity);
        push("version", &self.version);
        push("did_win", &self.did_win);
        push("redownload", &self.redownload);
        push("development", &self.development);
        push("include", self.include.as_slice());
        pairs
    }
}

pub(super) fn run(args: &ReportArgs) -> ExitCode {
    let query = match ReportQuery::parse(&args.pairs()) {
        Ok(query) => query,
        Err(err) => {
            let flag = format!("--{}", err.parameter.replace('_', "-").replace("app-id", "app"));
            return fail(
                &ErrorBody::new("invalid_parameter", err.message).with_field(flag),
                EXIT_USAGE,
            );
        }
    };
    let Ok(rt) = runtime() else { return ExitCode::from(EXIT_USAGE) };
    rt.block_on(async {
        let store = match open_store(&args.db).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        let schemas = SchemaVersions::new(store.clone(), Arc::new(SystemClock));
        let result = report::run(store.as_ref(), &schemas, &query).await;
        store.close().await;
        match result {
            Ok(report) => {
                match args.format.as_str() {
                    "json" => emit(&serde_json::to_string_pretty(&report).unwrap_or_default()),
                    "csv" => {
                        let renderer = CsvRenderer::new(&report);
                        let mut text = String::from_utf8_lossy(&renderer.header()).into_owned();
                        for row in &report.rows {
                            text.push_str(&String::from_utf8_lossy(&renderer.row(row)));
                        }
                        emit(text.trim_end());
                    }
                    _ => emit(&table(&report)),
                }
                ExitCode::SUCCESS
            }
            Err(ReportError::UnknownApp(app)) => fail(
                &ErrorBody::new(
                    "unknown_app",
                    format!("no postbacks or schema are known for app {app}"),
                )
                .with_field("--app"),
                1,
            ),
            Err(err) => fail(&ErrorBody::new("report_failed", err.to_string()), 1),
        }
    })
}

/// A fixed-width table of the main metrics.
fn table(report: &Report) -> String {
    let groups: Vec<&'static str> =
        report.group_by.iter().flat_map(|d| report::column_names(*d)).collect();
    let mut header: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    header.extend(
        [
            "postbacks",
            "valid",
            "invalid",
            "installs",
            "redownloads",
            "nonwinning",
            "null_rate",
            "revenue",
            "modeled",
        ]
        .map(str::to_owned),
    );
    let metrics_cells = |m: &report::Metrics| -> Vec<String> {
        let revenue = m.revenue.first();
        vec![
            m.postbacks.to_string(),
            m.valid.to_string(),
            m.invalid.to_string(),
            m.installs.to_string(),
            m.redownloads.to_string(),
            m.nonwinning.to_string(),
            m.null_rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_default(),
            revenue.map(|r| format!("{:.2} {}", r.mid, r.currency)).unwrap_or_default(),
            revenue.and_then(|r| r.modeled).map(|v| format!("{v:.2}")).unwrap_or_default(),
        ]
    };
    let mut rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = groups
                .iter()
                .map(|g| match row.group.get(g) {
                    Some(serde_json::Value::String(s)) => s,
                    Some(serde_json::Value::Null) | None => "-".to_owned(),
                    Some(other) => other.to_string(),
                })
                .collect();
            cells.extend(metrics_cells(&row.metrics));
            cells
        })
        .collect();
    let mut total: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "total".to_owned() } else { String::new() })
        .collect();
    total.extend(metrics_cells(&report.totals));
    rows.push(total);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let render = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < groups.len() {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = vec![render(&header)];
    out.extend(rows.iter().map(|r| render(r)));
    out.join("\n")
}

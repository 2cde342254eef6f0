//! Reports as CSV (RFC 4180, header row), for spreadsheets and BI tools.
//!
//! Columns: the group dimensions in `group_by` order, the fixed metrics, then one set of columns
//! per revenue currency and per decoded event that occurs anywhere in the report, then histograms
//! when asked for. Rows are rendered one by one so the body can be streamed.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Metrics, Report, ReportRow, column_names};

const FIXED: [&str; 21] = [
    "postbacks",
    "valid",
    "invalid",
    "unverifiable",
    "installs",
    "redownloads",
    "nonwinning",
    "window_0",
    "window_1",
    "window_2",
    "null_values",
    "null_rate",
    "unsigned_mismatch",
    "tier_0",
    "tier_1",
    "tier_2",
    "tier_3",
    "tier_unknown",
    "decoded_mapped",
    "decoded_unmapped",
    "decoded_no_value",
];

/// Renders the rows of one report.
#[derive(Debug)]
pub struct CsvRenderer {
    groups: Vec<&'static str>,
    currencies: Vec<String>,
    events: Vec<Arc<str>>,
    histograms: bool,
}

fn opt(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

impl CsvRenderer {
    /// A renderer for `report`'s columns.
    #[must_use]
    pub fn new(report: &Report) -> Self {
        let mut currencies = BTreeSet::new();
        let mut events = BTreeSet::new();
        let mut histograms = false;
        for row in &report.rows {
            currencies.extend(row.metrics.revenue.iter().map(|r| r.currency.to_string()));
            events.extend(row.metrics.events.iter().map(|e| Arc::clone(&e.name)));
            histograms |= row.metrics.fine_histogram.is_some();
        }
        Self {
            groups: report.group_by.iter().flat_map(|d| column_names(*d)).collect(),
            currencies: currencies.into_iter().collect(),
            events: events.into_iter().collect(),
            histograms,
        }
    }

    /// The header line.
    #[must_use]
    pub fn header(&self) -> Vec<u8> {
        let mut columns: Vec<String> = self.groups.iter().map(|g| (*g).to_owned()).collect();
        columns.extend(FIXED.iter().map(|c| (*c).to_owned()));
        columns.push("decoded_no_schema".to_owned());
        for currency in &self.currencies {
            for part in ["min", "max", "mid", "modeled"] {
                columns.push(format!("revenue_{part}_{currency}"));
            }
        }
        for event in &self.events {
            for part in ["postbacks", "min_count", "max_count"] {
                columns.push(format!("event_{part}:{event}"));
            }
        }
        if self.histograms {
            columns.extend((0..64).map(|v| format!("fine_{v}")));
            columns.extend(["coarse_low", "coarse_medium", "coarse_high"].map(str::to_owned));
        }
        line(&columns)
    }

    /// One row's line.
    #[must_use]
    pub fn row(&self, row: &ReportRow) -> Vec<u8> {
        let mut cells: Vec<String> = self
            .groups
            .iter()
            .map(|g| match row.group.get(g) {
                Some(serde_json::Value::String(s)) => s,
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
            .collect();
        cells.extend(self.metric_cells(&row.metrics));
        line(&cells)
    }

    fn metric_cells(&self, m: &Metrics) -> Vec<String> {
        let mut cells: Vec<String> = [
            m.postbacks,
            m.valid,
            m.invalid,
            m.unverifiable,
            m.installs,
            m.redownloads,
            m.nonwinning,
            m.window_0,
            m.window_1,
            m.window_2,
            m.null_values,
        ]
        .iter()
        .map(i64::to_string)
        .collect();
        cells.push(opt(m.null_rate));
        cells.extend(
            [
                m.unsigned_mismatch,
                m.tiers.tier_0,
                m.tiers.tier_1,
                m.tiers.tier_2,
                m.tiers.tier_3,
                m.tiers.unknown,
                m.decoded.mapped,
                m.decoded.unmapped,
                m.decoded.no_value,
                m.decoded.no_schema,
            ]
            .iter()
            .map(i64::to_string),
        );
        for currency in &self.currencies {
            match m.revenue.iter().find(|r| *r.currency == **currency) {
                Some(r) => {
                    cells.extend([r.min.to_string(), opt(r.max), r.mid.to_string(), opt(r.modeled)])
                }
                None => {
                    cells.extend(["0".to_owned(), "0".to_owned(), "0".to_owned(), String::new()])
                }
            }
        }
        for event in &self.events {
            match m.events.iter().find(|e| e.name == *event) {
                Some(e) => cells.extend([
                    e.postbacks.to_string(),
                    e.min_count.to_string(),
                    e.max_count.map(|v| v.to_string()).unwrap_or_default(),
                ]),
                None => cells.extend(["0".to_owned(), "0".to_owned(), "0".to_owned()]),
            }
        }
        if self.histograms {
            let fine = m.fine_histogram.clone().unwrap_or_else(|| vec![0; 64]);
            cells.extend(fine.iter().map(i64::to_string));
            let coarse = m.coarse_histogram.clone().unwrap_or_default();
            cells.extend([coarse.low, coarse.medium, coarse.high].iter().map(i64::to_string));
        }
        cells
    }
}

/// One RFC 4180 record with CRLF, quoted only where needed.
fn line(cells: &[String]) -> Vec<u8> {
    let mut writer =
        ::csv::WriterBuilder::new().terminator(::csv::Terminator::CRLF).from_writer(Vec::new());
    let _ = writer.write_record(cells);
    writer.into_inner().unwrap_or_default()
}

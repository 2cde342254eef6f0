//! The metrics of one report row, accumulated from aggregates and their decoding.
//!
//! Pure: rows and decodings in, numbers out. Every metric is defined here and in the README.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::{DecodeStatus, Decoded};
use crate::store::AggregateRow;

/// Postbacks by crowd-anonymity tier hint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TierMix {
    /// Tier 0 (two digits, no value).
    pub tier_0: i64,
    /// Tier 1 (coarse value).
    pub tier_1: i64,
    /// Tier 2 (fine value or 3-4 digits).
    pub tier_2: i64,
    /// Tier 3 (source app or domain disclosed).
    pub tier_3: i64,
    /// Not determinable (windows 1-2, nonwinning, versions before 4.0).
    pub unknown: i64,
}

/// How valid postbacks decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DecodeCounts {
    /// The schema maps the value.
    pub mapped: i64,
    /// A value the schema does not map.
    pub unmapped: i64,
    /// No value.
    pub no_value: i64,
    /// A value, but no schema version in effect for the install day.
    pub no_schema: i64,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventMetric {
    /// Event name.
    pub name: String,
    /// Postbacks whose value means the event happened.
    pub postbacks: i64,
    /// Fewest occurrences these postbacks imply (1 per postback unless the schema says more).
    pub min_count: i64,
    /// Most occurrences they imply; absent when any mapping gives no upper bound.
    pub max_count: Option<i64>,
}

/// Revenue sums in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevenueMetric {
    /// ISO 4217 currency.
    pub currency: String,
    /// Sum of range minimums.
    pub min: f64,
    /// Sum of range maximums; absent when any range is unbounded.
    pub max: Option<f64>,
    /// Sum of range midpoints (an unbounded range counts its minimum).
    pub mid: f64,
    /// `mid` scaled up by the share of winning postbacks that carried a value, to estimate the
    /// revenue of the postbacks Apple withheld values from; absent when none carried a value.
    pub modeled: Option<f64>,
}

/// Coarse value counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CoarseHistogram {
    /// `low`.
    pub low: i64,
    /// `medium`.
    pub medium: i64,
    /// `high`.
    pub high: i64,
}

/// The metrics of one report row. Counts are of postbacks (each once, however many copies
/// arrived); everything but `postbacks`, `invalid` and `unverifiable` counts valid postbacks only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metrics {
    /// Postbacks received: valid + invalid + unverifiable.
    pub postbacks: i64,
    /// Signature valid.
    pub valid: i64,
    /// Signature checked and failed (quarantined).
    pub invalid: i64,
    /// Signature could not be checked (quarantined).
    pub unverifiable: i64,
    /// Unique installs: window 0, winning, conversion type download (not redownload or
    /// re-engagement; versions before 2.0, which do not say, count as installs).
    pub installs: i64,
    /// Window 0, winning, redownload.
    pub redownloads: i64,
    /// Nonwinning postbacks (did-win false).
    pub nonwinning: i64,
    /// Postbacks of window 0.
    pub window_0: i64,
    /// Postbacks of window 1.
    pub window_1: i64,
    /// Postbacks of window 2.
    pub window_2: i64,
    /// Winning postbacks without a conversion value.
    pub null_values: i64,
    /// `null_values` / winning postbacks; absent when there are none.
    pub null_rate: Option<f64>,
    /// Postbacks whose copies disagreed on unsigned values.
    pub unsigned_mismatch: i64,
    /// Postbacks by tier hint.
    pub tiers: TierMix,
    /// How postbacks decoded.
    pub decoded: DecodeCounts,
    /// Decoded events, by name.
    pub events: Vec<EventMetric>,
    /// Decoded revenue, per currency.
    pub revenue: Vec<RevenueMetric>,
    /// Fine value counts 0-63 (when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_histogram: Option<Vec<i64>>,
    /// Coarse value counts (when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coarse_histogram: Option<CoarseHistogram>,
}

/// Accumulates [`Metrics`].
#[derive(Debug, Default)]
pub struct MetricsBuilder {
    metrics: Metrics,
    winning: i64,
    winning_with_value: i64,
    events: BTreeMap<String, (i64, i64, Option<i64>)>,
    revenue: BTreeMap<String, (f64, Option<f64>, f64)>,
    histograms: bool,
    fine: Vec<i64>,
    coarse: CoarseHistogram,
}

impl MetricsBuilder {
    /// A builder; with `histograms` the fine and coarse value counts are included.
    #[must_use]
    pub fn new(histograms: bool) -> Self {
        Self { histograms, fine: vec![0; 64], ..Self::default() }
    }

    /// Count one aggregate row, decoded.
    pub fn add(&mut self, row: &AggregateRow, decoded: &Decoded) {
        let n = row.postbacks;
        let k = &row.key;
        let m = &mut self.metrics;
        m.postbacks += n;
        match k.outcome.as_str() {
            "valid" => m.valid += n,
            "invalid" => {
                m.invalid += n;
                return;
            }
            _ => {
                m.unverifiable += n;
                return;
            }
        }
        m.unsigned_mismatch += row.unsigned_mismatch;
        match k.window {
            0 => m.window_0 += n,
            1 => m.window_1 += n,
            _ => m.window_2 += n,
        }
        if k.did_win {
            self.winning += n;
            if k.window == 0 {
                match k.conversion_type.as_str() {
                    "redownload" => m.redownloads += n,
                    "re-engagement" => {}
                    _ => m.installs += n,
                }
            }
            if k.fine_value < 0 && k.coarse_value.is_empty() {
                m.null_values += n;
            } else {
                self.winning_with_value += n;
            }
        } else {
            m.nonwinning += n;
        }
        match k.tier_hint {
            0 => m.tiers.tier_0 += n,
            1 => m.tiers.tier_1 += n,
            2 => m.tiers.tier_2 += n,
            3 => m.tiers.tier_3 += n,
            _ => m.tiers.unknown += n,
        }
        if let Ok(v) = usize::try_from(k.fine_value)
            && let Some(slot) = self.fine.get_mut(v)
        {
            *slot += n;
        }
        match k.coarse_value.as_str() {
            "low" => self.coarse.low += n,
            "medium" => self.coarse.medium += n,
            "high" => self.coarse.high += n,
            _ => {}
        }
        match decoded.status {
            DecodeStatus::Mapped => m.decoded.mapped += n,
            DecodeStatus::Unmapped => m.decoded.unmapped += n,
            DecodeStatus::NoValue => m.decoded.no_value += n,
            DecodeStatus::NoSchema => m.decoded.no_schema += n,
        }
        for event in &decoded.events {
            let entry = self.events.entry(event.name.clone()).or_insert((0, 0, Some(0)));
            entry.0 += n;
            entry.1 += n * i64::from(event.min_count.unwrap_or(1));
            entry.2 = match (entry.2, event.max_count) {
                (Some(sum), Some(max)) => Some(sum + n * i64::from(max)),
                _ => None,
            };
        }
        if let (Some(range), Some(currency)) = (&decoded.revenue, &decoded.currency) {
            let entry = self.revenue.entry(currency.clone()).or_insert((0.0, Some(0.0), 0.0));
            let count = n as f64;
            entry.0 += count * range.min;
            entry.1 = match (entry.1, range.max) {
                (Some(sum), Some(max)) => Some(sum + count * max),
                _ => None,
            };
            entry.2 += count * range.midpoint();
        }
    }

    /// The finished metrics.
    #[must_use]
    pub fn finish(self) -> Metrics {
        let mut m = self.metrics;
        m.null_rate = (self.winning > 0).then(|| m.null_values as f64 / self.winning as f64);
        let value_share = (self.winning > 0 && self.winning_with_value > 0)
            .then(|| self.winning_with_value as f64 / self.winning as f64);
        m.events = self
            .events
            .into_iter()
            .map(|(name, (postbacks, min_count, max_count))| EventMetric {
                name,
                postbacks,
                min_count,
                max_count,
            })
            .collect();
        m.revenue = self
            .revenue
            .into_iter()
            .map(|(currency, (min, max, mid))| RevenueMetric {
                currency,
                min: round_cents(min),
                max: max.map(round_cents),
                mid: round_cents(mid),
                modeled: value_share.map(|share| round_cents(mid / share)),
            })
            .collect();
        if self.histograms {
            m.fine_histogram = Some(self.fine);
            m.coarse_histogram = Some(self.coarse);
        }
        m
    }
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

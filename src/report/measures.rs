//! The metrics of one report row, accumulated from aggregates and their decoding.
//!
//! Pure: rows and decodings in, numbers out. Every metric is defined here and in the README.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::aggregate::{AggregateRow, Tally, row_value};
use crate::schema::{DecodeStatus, Decoded};
use crate::skan::{CoarseValue, ConversionValue};

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
    #[schema(value_type = String)]
    pub name: Arc<str>,
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
    #[schema(value_type = String)]
    pub currency: Arc<str>,
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

/// An event's postbacks, minimum and maximum occurrences (`None`: unbounded).
type EventSums = (i64, i64, Option<i64>);

/// A currency's revenue minimum, maximum (`None`: unbounded) and midpoint sums.
type RevenueSums = (f64, Option<f64>, f64);

/// Accumulates [`Metrics`] from tallies and decoded values.
#[derive(Debug, Default)]
pub struct MetricsBuilder {
    tally: Tally,
    decoded: DecodeCounts,
    /// By name, in the order first seen (sorted when finished): a report row sees a handful,
    /// and hundreds of thousands of rows each with an ordered map's node cost far more.
    events: Vec<(Arc<str>, EventSums)>,
    /// By currency, as `events`.
    revenue: Vec<(Arc<str>, RevenueSums)>,
    histograms: bool,
    fine: Vec<i64>,
    coarse: CoarseHistogram,
}

impl MetricsBuilder {
    /// A builder; with `histograms` the fine and coarse value counts are included.
    #[must_use]
    pub fn new(histograms: bool) -> Self {
        // Only allocated when it is reported: reports grouped by campaign and value have
        // hundreds of thousands of rows.
        let fine = if histograms { vec![0; 64] } else { Vec::new() };
        Self { histograms, fine, ..Self::default() }
    }

    /// Count one aggregate row, decoded (quarantined rows are counted, never decoded).
    pub fn add(&mut self, row: &AggregateRow, decoded: &Decoded) {
        self.add_tally(&Tally::of(row));
        let k = &row.key;
        if k.outcome == "valid" {
            let value = row_value(row);
            if value != ConversionValue::None {
                self.add_value(value, row.postbacks, decoded);
            }
        }
    }

    /// Count postbacks that need no decoding.
    pub fn add_tally(&mut self, tally: &Tally) {
        self.tally.add(tally);
    }

    /// Count `n` valid postbacks carrying `value`, which decodes to `decoded` (their tally is
    /// added separately).
    pub fn add_value(&mut self, value: ConversionValue, n: i64, decoded: &Decoded) {
        match value {
            ConversionValue::Fine(v) => {
                if let Some(slot) = self.fine.get_mut(usize::from(v)) {
                    *slot += n;
                }
            }
            ConversionValue::Coarse(c) => match c {
                CoarseValue::Low => self.coarse.low += n,
                CoarseValue::Medium => self.coarse.medium += n,
                CoarseValue::High => self.coarse.high += n,
            },
            ConversionValue::None => return,
        }
        match decoded.status {
            DecodeStatus::Mapped => self.decoded.mapped += n,
            DecodeStatus::Unmapped => self.decoded.unmapped += n,
            DecodeStatus::NoSchema => self.decoded.no_schema += n,
            DecodeStatus::NoValue => {}
        }
        for event in &decoded.events {
            let add = |entry: &mut EventSums| {
                entry.0 += n;
                entry.1 += n * i64::from(event.min_count.unwrap_or(1));
                entry.2 = match (entry.2, event.max_count) {
                    (Some(sum), Some(max)) => Some(sum + n * i64::from(max)),
                    _ => None,
                };
            };
            // A name is copied only the first time a group sees it.
            match self.events.iter_mut().find(|(name, _)| same_name(name, &event.name)) {
                Some((_, entry)) => add(entry),
                None => {
                    let mut entry = (0, 0, Some(0));
                    add(&mut entry);
                    self.events.push((Arc::clone(&event.name), entry));
                }
            }
        }
        if let (Some(range), Some(currency)) = (&decoded.revenue, &decoded.currency) {
            let count = n as f64;
            let add = |entry: &mut RevenueSums| {
                entry.0 += count * range.min;
                entry.1 = match (entry.1, range.max) {
                    (Some(sum), Some(max)) => Some(sum + count * max),
                    _ => None,
                };
                entry.2 += count * range.midpoint();
            };
            match self.revenue.iter_mut().find(|(name, _)| same_name(name, currency)) {
                Some((_, entry)) => add(entry),
                None => {
                    let mut entry = (0.0, Some(0.0), 0.0);
                    add(&mut entry);
                    self.revenue.push((Arc::clone(currency), entry));
                }
            }
        }
    }

    /// Postbacks counted so far, as [`Metrics::postbacks`] will give them.
    #[must_use]
    pub fn postbacks(&self) -> i64 {
        self.tally.valid + self.tally.invalid + self.tally.unverifiable
    }

    /// The finished metrics.
    #[must_use]
    pub fn finish(mut self) -> Metrics {
        let postbacks = self.postbacks();
        self.events.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.revenue.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let t = self.tally;
        let winning = t.valid - t.nonwinning;
        let with_value = winning - t.null_values;
        let mut decoded = self.decoded;
        decoded.no_value = t.valid - decoded.mapped - decoded.unmapped - decoded.no_schema;
        let value_share =
            (winning > 0 && with_value > 0).then(|| with_value as f64 / winning as f64);
        Metrics {
            postbacks,
            valid: t.valid,
            invalid: t.invalid,
            unverifiable: t.unverifiable,
            installs: t.installs,
            redownloads: t.redownloads,
            nonwinning: t.nonwinning,
            window_0: t.windows[0],
            window_1: t.windows[1],
            window_2: t.windows[2],
            null_values: t.null_values,
            null_rate: (winning > 0).then(|| t.null_values as f64 / winning as f64),
            unsigned_mismatch: t.unsigned_mismatch,
            tiers: TierMix {
                tier_0: t.tiers[0],
                tier_1: t.tiers[1],
                tier_2: t.tiers[2],
                tier_3: t.tiers[3],
                unknown: t.tiers[4],
            },
            decoded,
            events: self
                .events
                .into_iter()
                .map(|(name, (postbacks, min_count, max_count))| EventMetric {
                    name,
                    postbacks,
                    min_count,
                    max_count,
                })
                .collect(),
            revenue: self
                .revenue
                .into_iter()
                .map(|(currency, (min, max, mid))| RevenueMetric {
                    currency,
                    min: round_cents(min),
                    max: max.map(round_cents),
                    mid: round_cents(mid),
                    modeled: value_share.map(|share| round_cents(mid / share)),
                })
                .collect(),
            fine_histogram: self.histograms.then_some(self.fine),
            coarse_histogram: self.histograms.then_some(self.coarse),
        }
    }
}

/// Names and currencies from one schema share their text, so a pointer comparison settles most
/// lookups.
fn same_name(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

//! Data quality: what one day of one network's postbacks looked like (rates of invalid, null,
//! unmapped and mismatched values, copies, which channels sent them, arrival delays, delivery),
//! and the anomalies against that network's own history: a robust, weekday-aware baseline per
//! metric, and a Jensen-Shannon distance for the fine-value distribution.
//!
//! Pure: facts in, rows and anomalies out. Time is passed in as day numbers and milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What quality needs of one stored postback.
#[derive(Debug, Clone, PartialEq)]
pub struct PostbackFact {
    /// Day of the first arrival (days since 1970-01-01).
    pub arrival_day: i64,
    /// Milliseconds into that day when it first arrived.
    pub arrival_ms_of_day: i64,
    /// Ad network.
    pub ad_network_id: String,
    /// Conversion window, 0-2.
    pub window: i64,
    /// `valid`, `invalid` or `unverifiable`.
    pub outcome: String,
    /// Whether it won the attribution.
    pub did_win: bool,
    /// Fine value in effect.
    pub fine_value: Option<i64>,
    /// Whether it carries a coarse value.
    pub has_coarse: bool,
    /// Whether the schema in effect maps its value (`None`: no value, or no schema).
    pub mapped: Option<bool>,
    /// Copies of it disagreed on unsigned values.
    pub unsigned_mismatch: bool,
    /// Receipts (arrivals, the first included).
    pub receipts: i64,
    /// Whether Apple sent a copy (the well-known path).
    pub from_apple: bool,
    /// Whether an ad network forwarded a copy.
    pub from_network: bool,
    /// First arrival minus the midpoint of the estimated install interval, in hours.
    pub arrival_delay_hours: f64,
}

/// What delivery quality needs of one owed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFact {
    /// Destination.
    pub destination_id: i64,
    /// Arrival day of its postback.
    pub arrival_day: i64,
    /// Milliseconds from the postback's first arrival to its delivery, when delivered.
    pub delivered_after_ms: Option<i64>,
}

/// Which copies of its postbacks a network's day saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Coverage {
    /// Postbacks that came from Apple and from the network.
    pub both: i64,
    /// Only from Apple.
    pub apple_only: i64,
    /// Only from the network.
    pub network_only: i64,
}

/// One day of one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QualityRow {
    /// Arrival day.
    pub day: chrono::NaiveDate,
    /// Ad network.
    pub ad_network_id: String,
    /// Postbacks first received that day.
    pub postbacks: i64,
    /// Receipts of those postbacks (every copy).
    pub receipts: i64,
    /// Receipts per postback: 1 when no copy was repeated.
    pub copies_per_postback: f64,
    /// Share of postbacks whose signature verified.
    pub valid_rate: f64,
    /// Share whose signature failed.
    pub invalid_rate: f64,
    /// Share that could not be checked (no key for the version).
    pub unverifiable_rate: f64,
    /// Of valid winning postbacks, the share without a conversion value.
    pub null_value_rate: f64,
    /// Of valid postbacks with a value, the share the schema in effect does not map.
    pub unmapped_rate: f64,
    /// Of valid postbacks, the share whose copies disagreed on unsigned values.
    pub unsigned_mismatch_rate: f64,
    /// Apple's copy and the network's copy.
    pub coverage: Coverage,
    /// Median hours from the estimated install midpoint to the first arrival, per window (absent
    /// for a window without postbacks).
    pub arrival_delay_hours: [Option<f64>; 3],
}

/// One day of one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryQualityRow {
    /// Arrival day of the postbacks.
    pub day: chrono::NaiveDate,
    /// Destination.
    pub destination_id: i64,
    /// Its name (none when it has been deleted since).
    pub destination_name: Option<String>,
    /// Deliveries owed (one per postback the destination's filters admitted).
    pub owed: i64,
    /// Of those, delivered.
    pub delivered: i64,
    /// `delivered / owed`.
    pub coverage: f64,
    /// Median milliseconds from first arrival to delivery.
    pub p50_ms: Option<i64>,
    /// 95th percentile of the same.
    pub p95_ms: Option<i64>,
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

/// The day-by-network counts behind a [`QualityRow`], kept as counts so that a day can be cut
/// at a time of day and metrics computed afterwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayCounts {
    /// Postbacks.
    pub postbacks: i64,
    /// Their receipts.
    pub receipts: i64,
    /// Valid ones.
    pub valid: i64,
    /// Invalid ones.
    pub invalid: i64,
    /// Unverifiable ones.
    pub unverifiable: i64,
    /// Valid and winning.
    pub valid_winning: i64,
    /// Valid, winning, without a value.
    pub null_values: i64,
    /// Valid with a value.
    pub with_value: i64,
    /// Valid with a value the schema in effect does not map.
    pub unmapped: i64,
    /// Valid with disagreeing copies.
    pub mismatched: i64,
    /// Which channels sent them.
    pub coverage: Coverage,
    /// Valid window-0 postbacks per fine value.
    pub fine: BTreeMap<i64, i64>,
    delays: [Vec<f64>; 3],
}

impl DayCounts {
    fn add(&mut self, f: &PostbackFact) {
        self.postbacks += 1;
        self.receipts += f.receipts;
        match (f.from_apple, f.from_network) {
            (true, true) => self.coverage.both += 1,
            (true, false) => self.coverage.apple_only += 1,
            (false, _) => self.coverage.network_only += 1,
        }
        if let Some(delays) = usize::try_from(f.window).ok().and_then(|w| self.delays.get_mut(w)) {
            delays.push(f.arrival_delay_hours);
        }
        match f.outcome.as_str() {
            "valid" => self.valid += 1,
            "invalid" => {
                self.invalid += 1;
                return;
            }
            _ => {
                self.unverifiable += 1;
                return;
            }
        }
        if f.unsigned_mismatch {
            self.mismatched += 1;
        }
        let has_value = f.fine_value.is_some() || f.has_coarse;
        if f.did_win {
            self.valid_winning += 1;
            if !has_value {
                self.null_values += 1;
            }
        }
        if has_value {
            self.with_value += 1;
            if f.mapped == Some(false) {
                self.unmapped += 1;
            }
        }
        if let (0, Some(v)) = (f.window, f.fine_value) {
            *self.fine.entry(v).or_insert(0) += 1;
        }
    }

    /// The value of one metric (`None` when its denominator is empty).
    #[must_use]
    pub fn metric(&self, metric: Metric) -> Option<(f64, i64)> {
        let (part, whole) = match metric {
            Metric::Postbacks => return Some((self.postbacks as f64, self.postbacks)),
            Metric::CopiesPerPostback => {
                return (self.postbacks > 0)
                    .then(|| (ratio(self.receipts, self.postbacks), self.postbacks));
            }
            Metric::InvalidRate => (self.invalid, self.postbacks),
            Metric::UnverifiableRate => (self.unverifiable, self.postbacks),
            Metric::NullValueRate => (self.null_values, self.valid_winning),
            Metric::UnmappedRate => (self.unmapped, self.with_value),
            Metric::UnsignedMismatchRate => (self.mismatched, self.valid),
            Metric::FineValueShift => return None,
        };
        (whole > 0).then(|| (ratio(part, whole), whole))
    }
}

/// Counts per (arrival day, network) of the facts that arrived before `cutoff_ms_of_day` into
/// their day (all of them when `None`).
#[must_use]
pub fn day_counts(
    facts: &[PostbackFact],
    cutoff_ms_of_day: Option<i64>,
) -> BTreeMap<(i64, String), DayCounts> {
    let mut out: BTreeMap<(i64, String), DayCounts> = BTreeMap::new();
    for f in facts.iter().filter(|f| cutoff_ms_of_day.is_none_or(|c| f.arrival_ms_of_day < c)) {
        out.entry((f.arrival_day, f.ad_network_id.clone())).or_default().add(f);
    }
    out
}

/// The quality rows of every (day, network) with postbacks.
#[must_use]
pub fn quality_rows(facts: &[PostbackFact]) -> Vec<QualityRow> {
    day_counts(facts, None)
        .into_iter()
        .map(|((day, ad_network_id), mut c)| QualityRow {
            day: crate::skan::day_from_number(day),
            ad_network_id,
            postbacks: c.postbacks,
            receipts: c.receipts,
            copies_per_postback: ratio(c.receipts, c.postbacks),
            valid_rate: ratio(c.valid, c.postbacks),
            invalid_rate: ratio(c.invalid, c.postbacks),
            unverifiable_rate: ratio(c.unverifiable, c.postbacks),
            null_value_rate: ratio(c.null_values, c.valid_winning),
            unmapped_rate: ratio(c.unmapped, c.with_value),
            unsigned_mismatch_rate: ratio(c.mismatched, c.valid),
            coverage: c.coverage.clone(),
            arrival_delay_hours: [0, 1, 2].map(|w| median(&mut c.delays[w])),
        })
        .collect()
}

/// Delivery quality per (day, destination).
#[must_use]
pub fn delivery_rows(facts: &[DeliveryFact]) -> Vec<DeliveryQualityRow> {
    let mut groups: BTreeMap<(i64, i64), (i64, Vec<i64>)> = BTreeMap::new();
    for f in facts {
        let group = groups.entry((f.arrival_day, f.destination_id)).or_default();
        group.0 += 1;
        if let Some(after) = f.delivered_after_ms {
            group.1.push(after);
        }
    }
    groups
        .into_iter()
        .map(|((day, destination_id), (owed, mut delivered))| {
            delivered.sort_unstable();
            let at = |q: f64| {
                (!delivered.is_empty()).then(|| {
                    let rank = ((delivered.len() as f64) * q).ceil() as usize;
                    delivered[rank.clamp(1, delivered.len()) - 1]
                })
            };
            DeliveryQualityRow {
                day: crate::skan::day_from_number(day),
                destination_id,
                destination_name: None,
                owed,
                delivered: delivered.len() as i64,
                coverage: ratio(delivered.len() as i64, owed),
                p50_ms: at(0.5),
                p95_ms: at(0.95),
            }
        })
        .collect()
}

/// A watched metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Postbacks received.
    Postbacks,
    /// Receipts per postback.
    CopiesPerPostback,
    /// Share of invalid signatures.
    InvalidRate,
    /// Share of postbacks that could not be checked.
    UnverifiableRate,
    /// Share of winning postbacks without a value.
    NullValueRate,
    /// Share of values the schema does not map.
    UnmappedRate,
    /// Share of postbacks whose copies disagreed.
    UnsignedMismatchRate,
    /// Jensen-Shannon distance of the fine-value distribution from the baseline's.
    FineValueShift,
}

impl Metric {
    /// Every metric, in a fixed order.
    pub const ALL: [Self; 8] = [
        Self::Postbacks,
        Self::CopiesPerPostback,
        Self::InvalidRate,
        Self::UnverifiableRate,
        Self::NullValueRate,
        Self::UnmappedRate,
        Self::UnsignedMismatchRate,
        Self::FineValueShift,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postbacks => "postbacks",
            Self::CopiesPerPostback => "copies_per_postback",
            Self::InvalidRate => "invalid_rate",
            Self::UnverifiableRate => "unverifiable_rate",
            Self::NullValueRate => "null_value_rate",
            Self::UnmappedRate => "unmapped_rate",
            Self::UnsignedMismatchRate => "unsigned_mismatch_rate",
            Self::FineValueShift => "fine_value_shift",
        }
    }

    /// The metric of a wire name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The metric in words, as the console and alerts say it.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Postbacks => "postbacks received",
            Self::CopiesPerPostback => "copies per postback",
            Self::InvalidRate => "invalid signatures",
            Self::UnverifiableRate => "unverifiable postbacks",
            Self::NullValueRate => "winning postbacks without a value",
            Self::UnmappedRate => "values the schema does not map",
            Self::UnsignedMismatchRate => "copies disagreeing on values",
            Self::FineValueShift => "fine-value distribution (Jensen-Shannon distance)",
        }
    }

    /// A value of this metric for people: a count, a percentage or a distance.
    #[must_use]
    pub fn show(self, value: f64) -> String {
        match self {
            Self::Postbacks => format!("{value:.0}"),
            Self::CopiesPerPostback | Self::FineValueShift => format!("{value:.2}"),
            _ => format!("{:.1} %", value * 100.0),
        }
    }
}

/// Where the console shows an anomaly of `app_id` judged on `day`: its Data quality screen over
/// the four weeks ending that day (the API's anomaly links and alerts' `{link}` both point here).
#[must_use]
pub fn console_path(app_id: i64, day: chrono::NaiveDate) -> String {
    let from = day - chrono::Duration::days(27);
    format!("/ui/#/quality?app_id={app_id}&from={from}&to={day}")
}

/// A day that left its network's usual range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// Ad network.
    pub ad_network_id: String,
    /// Metric.
    pub metric: Metric,
    /// The day judged.
    pub day: chrono::NaiveDate,
    /// What the baseline expects for that weekday.
    pub expected: f64,
    /// Lowest value still usual.
    pub expected_low: f64,
    /// Highest value still usual.
    pub expected_high: f64,
    /// What was observed.
    pub observed: f64,
    /// How far out, in robust standard deviations (for the fine-value shift: the distance over
    /// its threshold).
    pub score: f64,
    /// The first and last day of the baseline, and how many of its days had data.
    pub baseline_from: chrono::NaiveDate,
    /// See `baseline_from`.
    pub baseline_to: chrono::NaiveDate,
    /// Days of the baseline with data.
    pub baseline_days: i64,
    /// Whether the judged day was still in progress (judged on what had arrived by the same time
    /// of day, on it and on every baseline day).
    pub partial_day: bool,
}

/// How detection judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionRules {
    /// Days of history the baseline uses.
    pub baseline_days: i64,
    /// Fewest baseline days with data before a metric is judged.
    pub min_baseline_days: i64,
    /// Robust z-score beyond which a day is anomalous.
    pub threshold: f64,
    /// Smallest relative change of the volume that counts (a 10 % dip is never an incident).
    pub min_volume_change: f64,
    /// Smallest absolute change of a rate that counts.
    pub min_rate_change: f64,
    /// Fewest postbacks (or denominator) on the day for a rate to be judged.
    pub min_denominator: i64,
    /// Jensen-Shannon distance (base 2, 0-1) above which the fine-value distribution shifted,
    /// beyond what the day's sample size explains.
    pub shift_threshold: f64,
    /// Fewest fine values on the day for the distribution to be judged.
    pub min_fine_values: i64,
}

impl Default for DetectionRules {
    fn default() -> Self {
        Self {
            baseline_days: 28,
            min_baseline_days: 14,
            threshold: 4.0,
            min_volume_change: 0.3,
            min_rate_change: 0.05,
            min_denominator: 30,
            shift_threshold: 0.1,
            min_fine_values: 50,
        }
    }
}

/// Weekday (0 Monday) of a day number (1970-01-01 was a Thursday).
fn weekday(day: i64) -> usize {
    usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0)
}

/// Robust expectation for `day` from `history` (day, value): each value divided by its weekday's
/// factor (the weekday's median over the overall median), then the median and the MAD of what is
/// left, scaled back by the judged day's factor.
fn baseline(history: &[(i64, f64)], day: i64) -> Option<(f64, f64)> {
    let mut all: Vec<f64> = history.iter().map(|(_, v)| *v).collect();
    let overall = median(&mut all)?;
    let mut factors = [1.0; 7];
    if overall > 0.0 {
        for (w, factor) in factors.iter_mut().enumerate() {
            let mut values: Vec<f64> =
                history.iter().filter(|(d, _)| weekday(*d) == w).map(|(_, v)| *v).collect();
            if let Some(m) = median(&mut values).filter(|m| *m > 0.0) {
                *factor = m / overall;
            }
        }
    }
    let mut adjusted: Vec<f64> = history.iter().map(|(d, v)| v / factors[weekday(*d)]).collect();
    let center = median(&mut adjusted)?;
    let mut deviations: Vec<f64> = adjusted.iter().map(|v| (v - center).abs()).collect();
    let mad = median(&mut deviations).unwrap_or(0.0);
    let factor = factors[weekday(day)];
    Some((center * factor, 1.4826 * mad * factor))
}

/// Jensen-Shannon distance (base 2) between two count distributions.
#[must_use]
pub fn jensen_shannon(a: &BTreeMap<i64, i64>, b: &BTreeMap<i64, i64>) -> f64 {
    let (na, nb) = (a.values().sum::<i64>() as f64, b.values().sum::<i64>() as f64);
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let mut keys: Vec<i64> = a.keys().chain(b.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut divergence = 0.0;
    for k in keys {
        let p = *a.get(&k).unwrap_or(&0) as f64 / na;
        let q = *b.get(&k).unwrap_or(&0) as f64 / nb;
        let m = (p + q) / 2.0;
        if p > 0.0 {
            divergence += 0.5 * p * (p / m).log2();
        }
        if q > 0.0 {
            divergence += 0.5 * q * (q / m).log2();
        }
    }
    divergence.max(0.0).sqrt()
}

/// The anomalies of `day` against the `rules.baseline_days` before it. `counts` holds every day
/// of the range by network (cut at the same time of day when `partial_day`).
#[must_use]
pub fn detect(
    counts: &BTreeMap<(i64, String), DayCounts>,
    day: i64,
    partial_day: bool,
    rules: &DetectionRules,
) -> Vec<Finding> {
    let networks: std::collections::BTreeSet<&String> = counts.keys().map(|(_, n)| n).collect();
    let first = day - rules.baseline_days;
    let date = crate::skan::day_from_number;
    let mut findings = Vec::new();
    for network in networks {
        let history: Vec<(i64, &DayCounts)> = (first..day)
            .filter_map(|d| counts.get(&(d, network.clone())).map(|c| (d, c)))
            .collect();
        if (history.len() as i64) < rules.min_baseline_days {
            continue;
        }
        let empty = DayCounts::default();
        let today = counts.get(&(day, network.clone())).unwrap_or(&empty);
        let finding =
            |metric, expected: f64, low: f64, high: f64, observed: f64, score: f64| Finding {
                ad_network_id: network.clone(),
                metric,
                day: date(day),
                expected,
                expected_low: low,
                expected_high: high,
                observed,
                score,
                baseline_from: date(first),
                baseline_to: date(day - 1),
                baseline_days: history.len() as i64,
                partial_day,
            };
        for metric in Metric::ALL {
            if metric == Metric::FineValueShift {
                let mut pooled: BTreeMap<i64, i64> = BTreeMap::new();
                for (_, c) in &history {
                    for (v, n) in &c.fine {
                        *pooled.entry(*v).or_insert(0) += n;
                    }
                }
                let n: i64 = today.fine.values().sum();
                if n < rules.min_fine_values || pooled.is_empty() {
                    continue;
                }
                // A small day drifts from any baseline by chance: the distance two samples of
                // this size from one distribution would show is added to the threshold.
                let categories = pooled.len().max(2) as f64;
                let chance =
                    ((categories - 1.0) / (2.0 * n as f64 * std::f64::consts::LN_2)).sqrt();
                let limit = rules.shift_threshold + chance;
                let distance = jensen_shannon(&today.fine, &pooled);
                if distance > limit {
                    findings.push(finding(metric, 0.0, 0.0, limit, distance, distance / limit));
                }
                continue;
            }
            let series: Vec<(i64, f64)> = history
                .iter()
                .filter_map(|(d, c)| {
                    c.metric(metric)
                        .filter(|(_, n)| *n >= rules.min_denominator.min(5))
                        .map(|(v, _)| (*d, v))
                })
                .collect();
            if (series.len() as i64) < rules.min_baseline_days {
                continue;
            }
            let Some((expected, spread)) = baseline(&series, day) else { continue };
            let (observed, denominator) = match today.metric(metric) {
                Some(value) => value,
                // No postback at all is the deepest drop; the rates have nothing to judge.
                None if metric == Metric::Postbacks => (0.0, 0),
                None => continue,
            };
            let (noise, min_change) = if metric == Metric::Postbacks {
                (expected.max(1.0).sqrt(), rules.min_volume_change * expected)
            } else {
                if denominator < rules.min_denominator {
                    continue;
                }
                // Sampling noise of the day's value: binomial for a rate; for copies per
                // postback, Poisson for the extra copies.
                let n = denominator as f64;
                if metric == Metric::CopiesPerPostback {
                    let extra = (expected - 1.0).max(0.01);
                    ((extra / n).sqrt().max(0.005), rules.min_rate_change * expected.max(1.0))
                } else {
                    let p = expected.clamp(0.0, 1.0);
                    ((p * (1.0 - p) / n).sqrt().max(0.005), rules.min_rate_change)
                }
            };
            let scale = spread.max(noise);
            let low = (expected - rules.threshold * scale).min(expected - min_change);
            let high = (expected + rules.threshold * scale).max(expected + min_change);
            if observed < low || observed > high {
                let score = (observed - expected) / scale;
                findings.push(finding(metric, expected, low.max(0.0), high, observed, score));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady network: `per_day` postbacks (fewer at weekends), 2 % invalid, fine values
    /// spread evenly over 0-15, with a little noise from `seed`.
    fn steady(day: i64, network: &str, per_day: i64, seed: u64) -> Vec<PostbackFact> {
        let weekend = weekday(day) >= 5;
        let wobble = ((day as u64 * 2_654_435_761 + seed) % 11) as i64 - 5;
        let n = if weekend { per_day * 6 / 10 } else { per_day } + wobble;
        (0..n)
            .map(|i| PostbackFact {
                arrival_day: day,
                arrival_ms_of_day: i * 86_400_000 / n.max(1),
                ad_network_id: network.to_owned(),
                window: 0,
                outcome: if i % 50 == 7 { "invalid" } else { "valid" }.to_owned(),
                did_win: true,
                fine_value: (i % 10 != 3).then_some(i % 16),
                has_coarse: false,
                mapped: (i % 10 != 3).then_some(true),
                unsigned_mismatch: false,
                receipts: 1 + i64::from(i % 5 == 0),
                from_apple: true,
                from_network: i % 5 == 0,
                arrival_delay_hours: 30.0,
            })
            .collect()
    }

    fn history(days: std::ops::Range<i64>) -> Vec<PostbackFact> {
        days.flat_map(|d| [steady(d, "a", 200, 1), steady(d, "b", 150, 2)].concat()).collect()
    }

    const DAY: i64 = 20_400;

    #[test]
    fn a_normal_day_raises_nothing() {
        let facts = history(DAY - 35..DAY + 1);
        let found = detect(&day_counts(&facts, None), DAY, false, &DetectionRules::default());
        assert!(found.is_empty(), "{found:#?}");
        // Weekends are lower, and still usual.
        for day in DAY - 6..=DAY {
            let found = detect(&day_counts(&facts, None), day, false, &DetectionRules::default());
            assert!(found.is_empty(), "day {day}: {found:#?}");
        }
    }

    #[test]
    fn a_drop_of_a_networks_volume_is_found_for_that_network_only() {
        let mut facts = history(DAY - 35..DAY);
        facts.extend(steady(DAY, "a", 200, 1));
        facts.extend(steady(DAY, "b", 150, 2).into_iter().step_by(5)); // 80 % fewer
        let found = detect(&day_counts(&facts, None), DAY, false, &DetectionRules::default());
        let volume: Vec<_> = found.iter().filter(|f| f.metric == Metric::Postbacks).collect();
        assert_eq!(volume.len(), 1, "{found:#?}");
        assert_eq!(volume[0].ad_network_id, "b");
        assert!(volume[0].observed < volume[0].expected_low && volume[0].score < -4.0);
        assert_eq!(volume[0].baseline_days, 28);
    }

    #[test]
    fn an_invalid_rate_spike_and_a_value_shift_are_found() {
        let mut facts = history(DAY - 35..DAY);
        let mut spiked = steady(DAY, "a", 200, 1);
        for f in spiked.iter_mut().step_by(4) {
            f.outcome = "invalid".to_owned();
        }
        let mut shifted = steady(DAY, "b", 150, 2);
        for f in &mut shifted {
            if let Some(v) = f.fine_value.as_mut() {
                *v = 40 + *v % 4; // a forwarder rewriting values into a band of its own
            }
        }
        facts.extend(spiked);
        facts.extend(shifted);
        let found = detect(&day_counts(&facts, None), DAY, false, &DetectionRules::default());
        let names: Vec<(&str, Metric)> =
            found.iter().map(|f| (f.ad_network_id.as_str(), f.metric)).collect();
        assert!(names.contains(&("a", Metric::InvalidRate)), "{names:?}");
        assert!(names.contains(&("b", Metric::FineValueShift)), "{names:?}");
        assert!(!names.contains(&("a", Metric::FineValueShift)), "{names:?}");
        assert!(!names.contains(&("b", Metric::InvalidRate)), "{names:?}");
    }

    #[test]
    fn a_day_in_progress_is_judged_on_the_same_hours_of_its_baseline() {
        let facts = history(DAY - 35..DAY + 1);
        // Six hours into the day: only a quarter has arrived, on the day and on every day of the
        // baseline, so nothing looks like a drop.
        let cut: Vec<PostbackFact> = facts
            .iter()
            .filter(|f| f.arrival_day < DAY || f.arrival_ms_of_day < 21_600_000)
            .cloned()
            .collect();
        let uncut = detect(&day_counts(&cut, None), DAY, false, &DetectionRules::default());
        assert!(
            uncut.iter().any(|f| f.metric == Metric::Postbacks),
            "whole days would call it a drop"
        );
        let found =
            detect(&day_counts(&cut, Some(21_600_000)), DAY, true, &DetectionRules::default());
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn rows_give_each_rate_over_its_own_denominator() {
        let facts = steady(DAY, "a", 100, 0);
        let rows = quality_rows(&facts);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.postbacks, facts.len() as i64);
        let invalid = facts.iter().filter(|f| f.outcome == "invalid").count() as f64;
        assert!((r.invalid_rate - invalid / facts.len() as f64).abs() < 1e-12);
        assert_eq!(r.coverage.both + r.coverage.apple_only + r.coverage.network_only, r.postbacks);
        assert!(r.copies_per_postback > 1.0 && r.copies_per_postback < 1.3);
        assert_eq!(r.arrival_delay_hours, [Some(30.0), None, None]);
        assert!(jensen_shannon(&BTreeMap::from([(1, 5)]), &BTreeMap::from([(2, 5)])) > 0.99);
    }
}

//! Precision and recall of anomaly detection over generated histories: 100 cases, each five
//! weeks of steady traffic for four networks (weekly seasonality, random volume and noise) and a
//! judged day on which one network carries one planted anomaly (a volume drop or spike, an
//! invalid-rate spike, a null-value spike, a fine-value shift, a copies spike), of a random size
//! above the documented thresholds. Everything found on a network or metric that was not planted
//! counts as a false alarm.
//!
//! Run: `cargo bench --bench anomalies` (a second; pure code, no database).

use std::collections::BTreeMap;

use rand::{RngExt as _, SeedableRng as _};
use skan_receiver::domain::quality::{DetectionRules, Metric, PostbackFact, day_counts, detect};

const NETWORKS: usize = 4;
const DAY: i64 = 20_500;

#[derive(Clone, Copy, Debug)]
enum Plant {
    Drop(f64),
    Spike(f64),
    Invalid(f64),
    Nulls(f64),
    Shift,
    Copies(i64),
}

impl Plant {
    fn metric(self) -> Metric {
        match self {
            Self::Drop(_) | Self::Spike(_) => Metric::Postbacks,
            Self::Invalid(_) => Metric::InvalidRate,
            Self::Nulls(_) => Metric::NullValueRate,
            Self::Shift => Metric::FineValueShift,
            Self::Copies(_) => Metric::CopiesPerPostback,
        }
    }
}

fn day_of(
    rng: &mut rand::rngs::StdRng,
    day: i64,
    network: usize,
    size: i64,
    plant: Option<Plant>,
) -> Vec<PostbackFact> {
    let weekend = (day + 3).rem_euclid(7) >= 5;
    let mut n = if weekend { size * 6 / 10 } else { size };
    n += rng.random_range(-(n / 10)..=(n / 10));
    match plant {
        Some(Plant::Drop(f)) => n = (n as f64 * (1.0 - f)) as i64,
        Some(Plant::Spike(f)) => n = (n as f64 * (1.0 + f)) as i64,
        _ => {}
    }
    let invalid = match plant {
        Some(Plant::Invalid(rate)) => rate,
        _ => 0.02,
    };
    let nulls = match plant {
        Some(Plant::Nulls(rate)) => rate,
        _ => 0.1,
    };
    (0..n)
        .map(|i| {
            let valid = !rng.random_bool(invalid);
            let has_value = !rng.random_bool(nulls);
            let value = if matches!(plant, Some(Plant::Shift)) {
                48 + rng.random_range(0..8)
            } else {
                rng.random_range(0..24)
            };
            PostbackFact {
                arrival_day: day,
                arrival_ms_of_day: i * 86_400_000 / n.max(1),
                ad_network_id: format!("network-{network}"),
                window: 0,
                outcome: if valid { "valid" } else { "invalid" }.to_owned(),
                did_win: true,
                fine_value: has_value.then_some(value),
                has_coarse: false,
                mapped: has_value.then_some(true),
                unsigned_mismatch: false,
                receipts: match plant {
                    Some(Plant::Copies(k)) => k,
                    _ => 1 + i64::from(rng.random_bool(0.1)),
                },
                from_apple: true,
                from_network: true,
                arrival_delay_hours: 30.0,
            }
        })
        .collect()
}

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let rules = DetectionRules::default();
    let (mut found, mut missed, mut false_alarms, mut normal_days, mut noisy_days) =
        (0, 0, 0, 0, 0);
    let mut by_kind: BTreeMap<&str, (i32, i32)> = BTreeMap::new();
    let mut alarm_metrics: BTreeMap<&str, usize> = BTreeMap::new();
    for case in 0..100 {
        let sizes: Vec<i64> = (0..NETWORKS).map(|_| rng.random_range(80..600)).collect();
        let target = rng.random_range(0..NETWORKS);
        let plant = match case % 6 {
            0 => Plant::Drop(rng.random_range(0.5..0.95)),
            1 => Plant::Spike(rng.random_range(1.0..3.0)),
            2 => Plant::Invalid(rng.random_range(0.15..0.5)),
            3 => Plant::Nulls(rng.random_range(0.35..0.8)),
            4 => Plant::Shift,
            _ => Plant::Copies(rng.random_range(3..6)),
        };
        let mut facts = Vec::new();
        for day in DAY - 35..=DAY {
            for (network, size) in sizes.iter().enumerate() {
                let planted = (day == DAY && network == target).then_some(plant);
                facts.extend(day_of(&mut rng, day, network, *size, planted));
            }
        }
        let counts = day_counts(&facts, None);
        let findings = detect(&counts, DAY, false, &rules);
        let target_name = format!("network-{target}");
        let hit =
            findings.iter().any(|f| f.ad_network_id == target_name && f.metric == plant.metric());
        let entry = by_kind
            .entry(format!("{plant:?}").split('(').next().map_or("?", |k| match k {
                "Drop" => "volume drop",
                "Spike" => "volume spike",
                "Invalid" => "invalid rate",
                "Nulls" => "null rate",
                "Shift" => "value shift",
                _ => "copies",
            }))
            .or_default();
        if hit {
            found += 1;
            entry.0 += 1;
        } else {
            missed += 1;
            entry.1 += 1;
        }
        false_alarms += findings
            .iter()
            .filter(|f| !(f.ad_network_id == target_name && f.metric == plant.metric()))
            .count();
        // The day before is normal for every network: anything found there is a false alarm.
        let before = detect(&counts, DAY - 1, false, &rules);
        for f in findings.iter().chain(&before).filter(|f| {
            !(f.day == skan_receiver::skan::day_from_number(DAY)
                && f.ad_network_id == target_name
                && f.metric == plant.metric())
        }) {
            *alarm_metrics.entry(f.metric.as_str()).or_insert(0) += 1;
        }
        normal_days += 1;
        if !before.is_empty() {
            noisy_days += 1;
            false_alarms += before.len();
        }
    }
    let precision = f64::from(found) / (f64::from(found) + false_alarms as f64);
    let recall = f64::from(found) / f64::from(found + missed);
    println!("anomaly detection over 100 generated cases ({NETWORKS} networks, 35 days each):");
    println!("  planted found {found}, missed {missed}, false alarms {false_alarms}");
    println!("  precision {precision:.2}, recall {recall:.2}");
    println!("  normal days with any alarm: {noisy_days} of {normal_days}");
    println!("  false alarms by metric: {alarm_metrics:?}");
    for (kind, (hit, miss)) in by_kind {
        println!("  {kind:<13} found {hit}, missed {miss}");
    }
}

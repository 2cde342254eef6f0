//! The report totals' shape: per (day, install day, network, window, development) every count a
//! report needs and the histogram of carried values; SQL text generated from the column list.

use std::sync::LazyLock;

use super::{AggregateKey, AggregateRow};
use crate::domain::aggregate::Tally;

/// Count columns: 13 tallies, then `fine_0`..`fine_63`, `coarse_low`..`coarse_high`.
pub(crate) const COUNTS: usize = 80;
/// Index of `fine_0`.
const FINE_0: usize = 13;
/// Index of `coarse_low`.
const COARSE_LOW: usize = 77;

const KEY_COLUMNS: [&str; 7] = [
    "app_id",
    "date_kind",
    "day",
    "install_day",
    "ad_network_id",
    "conversion_window",
    "development",
];

const TALLY_COLUMNS: [&str; 13] = [
    "valid",
    "invalid",
    "unverifiable",
    "installs",
    "redownloads",
    "nonwinning",
    "null_values",
    "unsigned_mismatch",
    "tier_0",
    "tier_1",
    "tier_2",
    "tier_3",
    "tier_unknown",
];

fn count_columns() -> Vec<String> {
    let mut columns: Vec<String> = TALLY_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    columns.extend((0..64).map(|v| format!("fine_{v}")));
    columns.extend(["coarse_low", "coarse_medium", "coarse_high"].map(str::to_owned));
    columns
}

/// `INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count` for every count.
pub(crate) static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let counts = count_columns();
    let all: Vec<String> =
        KEY_COLUMNS.iter().map(|c| (*c).to_owned()).chain(counts.iter().cloned()).collect();
    let placeholders: Vec<String> = (1..=all.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> =
        counts.iter().map(|c| format!("{c} = report_totals.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO report_totals ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        all.join(", "),
        placeholders.join(", "),
        KEY_COLUMNS.join(", "),
        updates.join(", ")
    )
});

/// `CAST(SUM(c) AS BIGINT)` for every count, for grouped reads.
pub(crate) static SUMS: LazyLock<String> = LazyLock::new(|| {
    count_columns()
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// A totals row's dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TotalsKey {
    pub(crate) app_id: i64,
    pub(crate) date_kind: &'static str,
    pub(crate) day: i64,
    pub(crate) install_day: i64,
    pub(crate) ad_network_id: String,
    pub(crate) window: i64,
    pub(crate) development: bool,
}

/// The counts of one totals row.
pub(crate) type Counts = [i64; COUNTS];

/// The counts an aggregate adds to its totals row.
pub(crate) fn counts_of(key: &AggregateKey, postbacks: i64, mismatch: i64) -> Counts {
    let row = AggregateRow { key: key.clone(), postbacks, unsigned_mismatch: mismatch };
    let t = Tally::of(&row);
    let mut counts = [0; COUNTS];
    let tallies = [
        t.valid,
        t.invalid,
        t.unverifiable,
        t.installs,
        t.redownloads,
        t.nonwinning,
        t.null_values,
        t.unsigned_mismatch,
        t.tiers[0],
        t.tiers[1],
        t.tiers[2],
        t.tiers[3],
        t.tiers[4],
    ];
    counts[..FINE_0].copy_from_slice(&tallies);
    if key.outcome == "valid" {
        let cell = match (usize::try_from(key.fine_value), key.coarse_value.as_str()) {
            (Ok(v), _) if v < 64 => Some(FINE_0 + v),
            (_, "low") => Some(COARSE_LOW),
            (_, "medium") => Some(COARSE_LOW + 1),
            (_, "high") => Some(COARSE_LOW + 2),
            _ => None,
        };
        if let Some(cell) = cell {
            counts[cell] = postbacks;
        }
    }
    counts
}

/// Where an aggregate's counts go: one totals row per date kind.
pub(crate) fn cells(key: &AggregateKey, postbacks: i64, mismatch: i64) -> [(TotalsKey, Counts); 2] {
    let counts = counts_of(key, postbacks, mismatch);
    let totals_key = |date_kind: &'static str, day: i64| TotalsKey {
        app_id: key.app_id,
        date_kind,
        day,
        install_day: key.install_day,
        ad_network_id: key.ad_network_id.clone(),
        window: key.window,
        development: key.development,
    };
    [
        (totals_key("arrival", key.arrival_day), counts),
        (totals_key("install", key.install_day), counts),
    ]
}

/// A grouped totals row as reports read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalsRow {
    /// The group.
    pub group: super::ReportGroup,
    /// Window.
    pub window: i64,
    /// Counts that need no decoding.
    pub tally: Tally,
    /// Valid postbacks per fine value 0-63.
    pub fine: [i64; 64],
    /// Valid postbacks per coarse value low, medium, high.
    pub coarse: [i64; 3],
}

impl TotalsRow {
    pub(crate) fn from_counts(group: super::ReportGroup, window: i64, c: &Counts) -> Self {
        let mut fine = [0; 64];
        fine.copy_from_slice(&c[FINE_0..COARSE_LOW]);
        Self {
            group,
            window,
            tally: Tally {
                valid: c[0],
                invalid: c[1],
                unverifiable: c[2],
                installs: c[3],
                redownloads: c[4],
                nonwinning: c[5],
                null_values: c[6],
                unsigned_mismatch: c[7],
                tiers: [c[8], c[9], c[10], c[11], c[12]],
                windows: {
                    let mut w = [0; 3];
                    w[usize::try_from(window).unwrap_or(0).min(2)] = c[0];
                    w
                },
            },
            fine,
            coarse: [c[COARSE_LOW], c[COARSE_LOW + 1], c[COARSE_LOW + 2]],
        }
    }
}

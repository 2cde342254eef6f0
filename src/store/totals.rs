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

/// Grouped totals as reports read them: each row's group, window and counts side by side in
/// one vector. A report by day and campaign has a quarter of a million rows; rows that each
/// held their own tally and value arrays, built from sums kept per group for every window,
/// cost more in allocating and copying memory than the counting did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotalsTable {
    groups: Vec<super::ReportGroup>,
    rows: Vec<TotalsEntry>,
}

/// One row of a [`TotalsTable`].
#[derive(Debug, Clone, Copy)]
pub struct TotalsRow<'a> {
    /// The group.
    pub group: &'a super::ReportGroup,
    /// Window.
    pub window: i64,
    counts: &'a Counts,
}

impl TotalsRow<'_> {
    /// Counts that need no decoding.
    #[must_use]
    pub fn tally(&self) -> Tally {
        let c = self.counts;
        let mut windows = [0; 3];
        windows[usize::try_from(self.window).unwrap_or(0).min(2)] = c[0];
        Tally {
            valid: c[0],
            invalid: c[1],
            unverifiable: c[2],
            installs: c[3],
            redownloads: c[4],
            nonwinning: c[5],
            null_values: c[6],
            unsigned_mismatch: c[7],
            tiers: [c[8], c[9], c[10], c[11], c[12]],
            windows,
        }
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> &Counts {
        self.counts
    }

    /// Valid postbacks per fine value 0-63, then per coarse value low, medium, high.
    #[must_use]
    pub fn values(&self) -> &[i64] {
        &self.counts[FINE_0..]
    }
}

/// One row of counts of a [`TotalsTable`]: its group's number, its window, its counts.
pub(crate) type TotalsEntry = (u32, u8, Counts);

impl TotalsTable {
    /// A table of `rows`, each naming its group by its index in `groups`.
    pub(crate) fn new(groups: Vec<super::ReportGroup>, rows: Vec<TotalsEntry>) -> Self {
        Self { groups, rows }
    }

    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, in the order they were added.
    pub fn rows(&self) -> impl Iterator<Item = TotalsRow<'_>> {
        self.rows.iter().filter_map(|(group, window, counts)| {
            Some(TotalsRow {
                group: self.groups.get(*group as usize)?,
                window: i64::from(*window),
                counts,
            })
        })
    }
}

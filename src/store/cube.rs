//! The report cube's shape: which cell a postback's value counts in, and the SQL text (generated
//! once from the column list, so the 70 count columns are never typed by hand).

use std::sync::LazyLock;

use super::AggregateKey;

/// Count columns: `postbacks`, `unsigned_mismatch`, `no_value`, `fine_0`..`fine_63`,
/// `coarse_low`, `coarse_medium`, `coarse_high`.
pub(crate) const COUNTS: usize = 70;
/// Index of `no_value` among the counts.
const NO_VALUE: usize = 2;
/// Index of `fine_0`.
const FINE_0: usize = 3;
/// Index of `coarse_low`.
const COARSE_LOW: usize = 67;

const KEY_COLUMNS: [&str; 12] = [
    "app_id",
    "date_kind",
    "day",
    "install_day",
    "ad_network_id",
    "conversion_window",
    "did_win",
    "conversion_type",
    "development",
    "tier_hint",
    "outcome",
    "mismatched",
];

fn count_columns() -> Vec<String> {
    let mut columns =
        vec!["postbacks".to_owned(), "unsigned_mismatch".to_owned(), "no_value".to_owned()];
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
        counts.iter().map(|c| format!("{c} = report_cube.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO report_cube ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
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

/// A cube row's dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct CubeKey {
    pub(crate) app_id: i64,
    pub(crate) date_kind: &'static str,
    pub(crate) day: i64,
    pub(crate) install_day: i64,
    pub(crate) ad_network_id: String,
    pub(crate) window: i64,
    pub(crate) did_win: bool,
    pub(crate) conversion_type: String,
    pub(crate) development: bool,
    pub(crate) tier_hint: i64,
    pub(crate) outcome: String,
    /// Rows of postbacks flagged `unsigned_mismatch`, kept apart so that every value's own
    /// mismatch count survives the value dimension being turned into columns.
    pub(crate) mismatched: bool,
}

/// The cube's count columns for one row.
pub(crate) type Counts = [i64; COUNTS];

/// Where an aggregate's counts go in the cube: per date kind, the unflagged postbacks in one row
/// and the mismatched ones in another, each in its value's cell. Cells with nothing to add are
/// left out.
pub(crate) fn cells(key: &AggregateKey, postbacks: i64, mismatch: i64) -> Vec<(CubeKey, Counts)> {
    let cell = match (usize::try_from(key.fine_value), key.coarse_value.as_str()) {
        (Ok(v), _) if v < 64 => FINE_0 + v,
        (_, "low") => COARSE_LOW,
        (_, "medium") => COARSE_LOW + 1,
        (_, "high") => COARSE_LOW + 2,
        _ => NO_VALUE,
    };
    let counts_of = |n: i64, flagged: bool| {
        let mut counts = [0; COUNTS];
        counts[0] = n;
        counts[1] = if flagged { n } else { 0 };
        counts[cell] = n;
        counts
    };
    let row = |date_kind: &'static str, day: i64, mismatched: bool| CubeKey {
        app_id: key.app_id,
        date_kind,
        day,
        install_day: key.install_day,
        ad_network_id: key.ad_network_id.clone(),
        window: key.window,
        did_win: key.did_win,
        conversion_type: key.conversion_type.clone(),
        development: key.development,
        tier_hint: key.tier_hint,
        outcome: key.outcome.clone(),
        mismatched,
    };
    let mut out = Vec::with_capacity(4);
    for (date_kind, day) in [("arrival", key.arrival_day), ("install", key.install_day)] {
        for (n, flagged) in [(postbacks - mismatch, false), (mismatch, true)] {
            if n != 0 {
                out.push((row(date_kind, day, flagged), counts_of(n, flagged)));
            }
        }
    }
    out
}

/// Turn a grouped cube row back into aggregate rows, one per value with a count, so reports
/// measure both sources with the same code. In a `mismatched` row every postback is flagged.
pub(crate) fn expand(
    template: &AggregateKey,
    counts: &Counts,
    mismatched: bool,
) -> Vec<super::AggregateRow> {
    let mut rows = Vec::new();
    let mut push = |fine_value: i64, coarse_value: &str, postbacks: i64| {
        if postbacks == 0 {
            return;
        }
        let mut key = template.clone();
        key.fine_value = fine_value;
        key.coarse_value = coarse_value.to_owned();
        rows.push(super::AggregateRow {
            key,
            postbacks,
            unsigned_mismatch: if mismatched { postbacks } else { 0 },
        });
    };
    push(-1, "", counts[NO_VALUE]);
    for v in 0..64 {
        push(v as i64, "", counts[FINE_0 + v]);
    }
    for (i, coarse) in ["low", "medium", "high"].into_iter().enumerate() {
        push(-1, coarse, counts[COARSE_LOW + i]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_upsert_names_every_column_once() {
        assert_eq!(UPSERT.matches("excluded.").count(), COUNTS);
        assert!(UPSERT.contains("$82)"), "12 key and 70 count placeholders");
    }
}

//! Report reads in SQL: the detailed aggregates, the value cube and the totals, each grouped in
//! the database by exactly the dimensions a report needs.

use futures_util::StreamExt as _;
use sqlx::{FromRow, QueryBuilder, Row as _};

use super::{
    AggregateKey, AggregateQuery, AggregateRow, DateType, ReportData, ReportSelection,
    ReportSource, StoreError, TotalsTable, cube, rollup, totals,
};

pub(super) const AGGREGATE_COLUMNS: &str = "app_id, arrival_day, install_day, ad_network_id, \
     source_identifier, campaign_id, protocol, version, conversion_window, interaction, \
     conversion_type, did_win, development, fine_value, coarse_value, tier_hint, outcome, \
     postbacks, unsigned_mismatch";

/// An aggregate as the database returns it (columns named as in the `aggregates` table).
#[derive(FromRow)]
pub(super) struct AggregateRecord {
    app_id: i64,
    arrival_day: i64,
    install_day: i64,
    ad_network_id: String,
    source_identifier: String,
    campaign_id: i64,
    protocol: String,
    version: String,
    conversion_window: i64,
    interaction: String,
    conversion_type: String,
    did_win: bool,
    development: bool,
    fine_value: i64,
    coarse_value: String,
    tier_hint: i64,
    outcome: String,
    postbacks: i64,
    unsigned_mismatch: i64,
}

/// ` GROUP BY` the selected columns (1-based positions) that are columns, not constants standing
/// in for a dimension the report does not group by: constants only lengthen the key SQLite sorts
/// to group.
fn group_by(columns: &[bool]) -> String {
    let positions: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|(_, column)| **column)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    format!(" GROUP BY {}", positions.join(", "))
}

impl From<AggregateRecord> for AggregateRow {
    fn from(r: AggregateRecord) -> Self {
        Self {
            key: AggregateKey {
                app_id: r.app_id,
                arrival_day: r.arrival_day,
                install_day: r.install_day,
                ad_network_id: r.ad_network_id,
                source_identifier: r.source_identifier,
                campaign_id: r.campaign_id,
                protocol: r.protocol,
                version: r.version,
                window: r.conversion_window,
                interaction: r.interaction,
                conversion_type: r.conversion_type,
                did_win: r.did_win,
                development: r.development,
                fine_value: r.fine_value,
                coarse_value: r.coarse_value,
                tier_hint: r.tier_hint,
                outcome: r.outcome,
            },
            postbacks: r.postbacks,
            unsigned_mismatch: r.unsigned_mismatch,
        }
    }
}

super::sql::sql_impl! {
    pub(crate) async fn aggregates(
        &self,
        q: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StoreError> {
        let day = match q.date_type {
            DateType::Arrival => "arrival_day",
            DateType::Install => "install_day",
        };
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {AGGREGATE_COLUMNS} FROM aggregates WHERE app_id = "
        ));
        query.push_bind(q.app_id);
        query.push(format!(" AND {day} >= ")).push_bind(q.from_day);
        query.push(format!(" AND {day} <= ")).push_bind(q.to_day);
        let rows = query.build_query_as::<AggregateRecord>().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(AggregateRow::from).collect())
    }


    pub(crate) async fn report_rows(&self, s: &ReportSelection) -> Result<ReportData, StoreError> {
        let day = match s.date_type {
            DateType::Arrival => "arrival_day",
            DateType::Install => "install_day",
        };
        let keep = |kept: bool, column: &str, absent: &str| {
            if kept { column.to_owned() } else { format!("{absent} AS {column}") }
        };
        let f = &s.filters;
        let cube_can = !s.by_source
            && !s.by_version
            && !s.by_interaction
            && f.source_identifier.is_empty()
            && f.version.is_empty()
            && f.interaction.is_empty();
        let totals_can = cube_can && !s.by_value && f.did_win.is_empty() && f.redownload.is_empty();
        let wants_source = s.by_source || !f.source_identifier.is_empty();
        let wants_version = s.by_version
            || s.by_interaction
            || !f.version.is_empty()
            || !f.interaction.is_empty();
        match s.source {
            ReportSource::Auto if totals_can => {
                return self.totals_rows(s).await.map(ReportData::Totals);
            }
            ReportSource::Auto | ReportSource::ValueCube if cube_can => {
                return self.cube_rows(s).await.map(ReportData::Rows);
            }
            ReportSource::Auto | ReportSource::Rollup => {
                return self.rollup_rows(s, wants_source, wants_version).await;
            }
            _ => {}
        }
        let mut q = QueryBuilder::<DB>::new("SELECT app_id, ");
        q.push(keep(
            s.by_day() && s.date_type == DateType::Arrival,
            "arrival_day",
            "CAST(0 AS BIGINT)",
        ));
        q.push(", ");
        Self::push_install_day(&mut q, s, "install_day");
        q.push(", ");
        q.push(keep(s.by_ad_network, "ad_network_id", "''"));
        q.push(", ");
        q.push(keep(s.by_source, "source_identifier", "''"));
        q.push(", ");
        q.push(keep(s.by_source, "campaign_id", "CAST(-1 AS BIGINT)"));
        q.push(", ");
        q.push(keep(s.by_version, "protocol", "''"));
        q.push(", ");
        q.push(keep(s.by_version, "version", "''"));
        q.push(", conversion_window, ");
        q.push(keep(s.by_interaction, "interaction", "''"));
        q.push(
            ", conversion_type, did_win, FALSE AS development, fine_value, coarse_value, \
             tier_hint, outcome, CAST(SUM(postbacks) AS BIGINT) AS postbacks, \
             CAST(SUM(unsigned_mismatch) AS BIGINT) AS unsigned_mismatch \
             FROM aggregates WHERE app_id = ",
        );
        q.push_bind(s.app_id);
        q.push(format!(" AND {day} >= ")).push_bind(s.from_day);
        q.push(format!(" AND {day} <= ")).push_bind(s.to_day);
        Self::push_in(&mut q, "ad_network_id", &f.ad_network_id);
        Self::push_in(&mut q, "source_identifier", &f.source_identifier);
        Self::push_in(&mut q, "interaction", &f.interaction);
        Self::push_windows(&mut q, &f.window);
        Self::push_versions(&mut q, &f.version);
        Self::push_bool(&mut q, "did_win", &f.did_win);
        Self::push_bool(&mut q, "development", &f.development);
        Self::push_redownload(&mut q, &f.redownload);
        let arrival_kept = s.by_day() && s.date_type == DateType::Arrival;
        q.push(group_by(&[
            true,
            arrival_kept,
            true,
            s.by_ad_network,
            s.by_source,
            s.by_source,
            s.by_version,
            s.by_version,
            true,
            s.by_interaction,
            true,
            true,
            false,
            true,
            true,
            true,
            true,
        ]));
        let rows = match DB::AGGREGATE_REPORT_SETTINGS {
            Some(settings) => {
                // A read-only transaction, so the settings end with it.
                let mut tx = self.pool.begin().await?;
                sqlx::query(settings).execute(&mut *tx).await?;
                let rows = q.build_query_as::<AggregateRecord>().fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
            None => q.build_query_as::<AggregateRecord>().fetch_all(&self.pool).await?,
        };
        Ok(ReportData::Rows(rows.into_iter().map(AggregateRow::from).collect()))
    }


    /// `AND column IN ($1, $2, ...)` when there are values.
    pub(super) fn push_in(q: &mut QueryBuilder<DB>, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        q.push(format!(" AND {column} IN ("));
        let mut list = q.separated(", ");
        for v in values {
            list.push_bind(v.as_str());
        }
        q.push(")");
    }


    /// `AND (protocol, version)` among the asked versions (`adattributionkit` is a protocol).
    pub(super) fn push_versions(q: &mut QueryBuilder<DB>, asked: &[String]) {
        if asked.is_empty() {
            return;
        }
        let aak = asked.iter().any(|v| v == "adattributionkit");
        let versions: Vec<&str> =
            asked.iter().map(String::as_str).filter(|v| *v != "adattributionkit").collect();
        q.push(" AND (");
        if versions.is_empty() {
            q.push("1 = 0");
        } else {
            q.push("(protocol = 'skadnetwork' AND version IN (");
            let mut list = q.separated(", ");
            for v in versions {
                list.push_bind(v);
            }
            q.push("))");
        }
        if aak {
            q.push(" OR protocol = 'adattributionkit'");
        }
        q.push(")");
    }


    /// `AND column = $1` when exactly one of true and false is asked for.
    pub(super) fn push_bool(q: &mut QueryBuilder<DB>, column: &str, values: &[bool]) {
        match (values.contains(&true), values.contains(&false)) {
            (true, false) => {
                q.push(format!(" AND {column} = ")).push_bind(true);
            }
            (false, true) => {
                q.push(format!(" AND {column} = ")).push_bind(false);
            }
            _ => {}
        }
    }


    /// The install day a grouped row comes back with: the day itself when install days are
    /// grouped by, otherwise a day of its schema period (the day before the first period for
    /// earlier days), which decodes the same and keeps the groups few.
    pub(super) fn push_install_day(q: &mut QueryBuilder<DB>, s: &ReportSelection, column: &str) {
        if s.by_day() && s.date_type == DateType::Install {
            q.push(format!("{column} AS install_day"));
        } else if s.schema_period_starts.is_empty() {
            q.push("CAST(0 AS BIGINT) AS install_day");
        } else {
            q.push("CASE");
            for start in &s.schema_period_starts {
                q.push(format!(" WHEN {column} < ")).push_bind(*start).push(" THEN ");
                q.push_bind(*start - 1);
            }
            let last = s.schema_period_starts.last().copied().unwrap_or(0);
            q.push(" ELSE ").push_bind(last).push(" END AS install_day");
        }
    }


    /// `FROM table WHERE ...` for a summary table (cube or totals): the app, the date kind, the
    /// day range and the filters both tables can answer.
    pub(super) fn push_summary_selection(q: &mut QueryBuilder<DB>, table: &str, s: &ReportSelection) {
        let kind = match s.date_type {
            DateType::Arrival => "arrival",
            DateType::Install => "install",
        };
        q.push(format!(" FROM {table} WHERE app_id = ")).push_bind(s.app_id);
        q.push(" AND date_kind = ").push_bind(kind);
        q.push(" AND day >= ").push_bind(s.from_day);
        q.push(" AND day <= ").push_bind(s.to_day);
        let f = &s.filters;
        Self::push_in(q, "ad_network_id", &f.ad_network_id);
        Self::push_windows(q, &f.window);
        Self::push_bool(q, "development", &f.development);
    }


    /// Report rows from the cube: one row per group with every value's count, expanded back into
    /// one aggregate row per value.
    pub(super) async fn cube_rows(&self, s: &ReportSelection) -> Result<Vec<AggregateRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT app_id, ");
        q.push(if s.by_day() { "day" } else { "CAST(0 AS BIGINT) AS day" });
        q.push(", ");
        Self::push_install_day(&mut q, s, "install_day");
        q.push(if s.by_ad_network { ", ad_network_id" } else { ", '' AS ad_network_id" });
        q.push(", conversion_window, did_win, conversion_type, tier_hint, outcome, mismatched, ");
        q.push(cube::SUMS.as_str());
        Self::push_summary_selection(&mut q, "report_cube", s);
        let f = &s.filters;
        Self::push_bool(&mut q, "did_win", &f.did_win);
        Self::push_redownload(&mut q, &f.redownload);
        q.push(group_by(&[
            true,
            s.by_day(),
            true,
            s.by_ad_network,
            true,
            true,
            true,
            true,
            true,
            true,
        ]));
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for row in rows {
            let day: i64 = row.try_get(1)?;
            let template = AggregateKey {
                app_id: row.try_get(0)?,
                arrival_day: if s.date_type == DateType::Arrival { day } else { 0 },
                install_day: row.try_get(2)?,
                ad_network_id: row.try_get(3)?,
                source_identifier: String::new(),
                campaign_id: -1,
                protocol: String::new(),
                version: String::new(),
                window: row.try_get(4)?,
                interaction: String::new(),
                conversion_type: row.try_get(6)?,
                did_win: row.try_get(5)?,
                development: false,
                fine_value: -1,
                coarse_value: String::new(),
                tier_hint: row.try_get(7)?,
                outcome: row.try_get(8)?,
            };
            let mismatched: bool = row.try_get(9)?;
            let mut counts = [0i64; cube::COUNTS];
            for (i, count) in counts.iter_mut().enumerate() {
                *count = row.try_get(10 + i)?;
            }
            out.extend(cube::expand(&template, &counts, mismatched));
        }
        Ok(out)
    }


    /// Report rows from the report rollup: the blocks that tile the range (or each week or
    /// month of it, or every day when grouped by day), their cells summed per group in Rust.
    /// Version rows when the report groups or filters by version or fidelity and not by campaign,
    /// source rows otherwise (split by their cells' version and interaction when it does both).
    pub(super) async fn rollup_rows(
        &self,
        s: &ReportSelection,
        wants_source: bool,
        wants_version: bool,
    ) -> Result<ReportData, StoreError> {
        let (kind, arrival) = match s.date_type {
            DateType::Arrival => ("arrival", true),
            DateType::Install => ("install", false),
        };
        // Each run of blocks with the day its rows are reported under (none: the block's own).
        let runs: Vec<(Option<i64>, rollup::Run)> = match s.by_date {
            None => {
                rollup::blocks(s.from_day, s.to_day).into_iter().map(|run| (None, run)).collect()
            }
            Some(super::DayBucket::Day) => vec![(None, (1, s.from_day, s.to_day, 1))],
            Some(bucket) => bucket
                .split(s.from_day, s.to_day)
                .into_iter()
                .flat_map(|(first, last)| {
                    rollup::blocks(first, last).into_iter().map(move |run| (Some(first), run))
                })
                .collect(),
        };
        let f = &s.filters;
        // Source rows keep the protocol, version and interaction in their cells; version rows,
        // a fraction as many, in their key.
        let family = if wants_version && !wants_source {
            rollup::Family::Version
        } else {
            rollup::Family::Source
        };
        let summing = std::sync::Arc::new(PackedSums {
            selection: s.clone(),
            family,
            slotted: wants_source && wants_version,
            arrival,
        });
        // Each run of blocks comes back packed in one value and is grouped here: grouping in the
        // database sorts every row, and the driver then costs microseconds per returned row.
        // Each run is cut into one piece per core, read on several connections at once (on
        // SQLite each connection has its own thread, so packing runs on every core), and each
        // piece is summed on a blocking thread of its own as it arrives, while the others are
        // still being read or summed; the pieces' sums are then added together.
        // A report of a few campaigns names every network, so each read seeks their rows.
        let networks = match (f.source_identifier.is_empty(), f.ad_network_id.is_empty()) {
            (false, true) => self.rollup_networks(s.app_id, kind, s.from_day, s.to_day).await?,
            (false, false) => f.ad_network_id.clone(),
            (true, _) => Vec::new(),
        };
        let networks = &networks;
        let parallel = parallel_reads();
        let pieces = runs.into_iter().flat_map(|(reported_day, run)| {
            rollup::pieces(&[run], parallel as i64).into_iter().map(move |piece| (reported_day, piece))
        });
        let reads = pieces.map(|(reported_day, (span, first, last, sign))| {
            let mut q = QueryBuilder::<DB>::new(format!(
                "SELECT {}, NULL FROM report_rollup WHERE app_id = ",
                match family {
                    rollup::Family::Source => DB::PACKED_SOURCE_ROWS,
                    rollup::Family::Version => DB::PACKED_VERSION_ROWS,
                }
            ));
            q.push_bind(s.app_id);
            q.push(" AND date_kind = ").push_bind(kind);
            q.push(" AND span = ").push_bind(span);
            if networks.is_empty() {
                q.push(" AND day >= ").push_bind(first);
                q.push(" AND day <= ").push_bind(last);
            } else {
                // Each block and network named, so the key is sought down to the source
                // identifier instead of scanning every campaign's row of every block.
                q.push(" AND day IN (");
                let mut list = q.separated(", ");
                for day in (first..=last).step_by(usize::try_from(span).unwrap_or(1)) {
                    list.push_bind(day);
                }
                q.push(")");
            }
            let named = if networks.is_empty() { &f.ad_network_id } else { networks };
            Self::push_in(&mut q, "ad_network_id", named);
            q.push(" AND family = ").push_bind(family.as_str());
            Self::push_in(&mut q, "source_identifier", &f.source_identifier);
            if family == rollup::Family::Version {
                Self::push_in(&mut q, "interaction", &f.interaction);
                Self::push_versions(&mut q, &f.version);
            }
            Self::push_bool(&mut q, "development", &f.development);
            // The same blocks' sealed values, in the same statement: a seal moves rows from one
            // table to the other in one transaction, so one snapshot counts each row once.
            q.push(" UNION ALL SELECT packed, source_index FROM report_rollup_sealed WHERE app_id = ");
            q.push_bind(s.app_id);
            q.push(" AND date_kind = ").push_bind(kind);
            q.push(" AND span = ").push_bind(span);
            q.push(" AND day >= ").push_bind(first);
            q.push(" AND day <= ").push_bind(last);
            Self::push_in(&mut q, "ad_network_id", named);
            q.push(" AND family = ").push_bind(family.as_str());
            Self::push_bool(&mut q, "development", &f.development);
            if !f.source_identifier.is_empty() {
                // Only the chunks that hold the campaigns named.
                q.push(" AND chunk IN (");
                let mut list = q.separated(", ");
                let chunks: std::collections::BTreeSet<i64> =
                    f.source_identifier.iter().map(|source| rollup::source_chunk(source)).collect();
                for chunk in chunks {
                    list.push_bind(chunk);
                }
                q.push(")");
            }
            let summing = std::sync::Arc::clone(&summing);
            async move {
                let values = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get::<Option<Vec<u8>>, _>(0)?,
                            row.try_get::<Option<Vec<u8>>, _>(1)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let summed = tokio::task::spawn_blocking(move || {
                    let values = values.iter().filter_map(|(packed, index)| {
                        packed.as_deref().map(|packed| (packed, index.as_deref()))
                    });
                    summing.sum(values, reported_day, sign)
                })
                .await
                .map_err(|err| match err.try_into_panic() {
                    // A panic while summing is a bug: it goes on as if it happened here.
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(err) => StoreError::Corrupt(format!("summing rollup rows stopped: {err}")),
                })?;
                summed.ok_or_else(|| {
                    StoreError::Corrupt(
                        "report_rollup returned a malformed packed row or counts blob".to_owned(),
                    )
                })
            }
        });
        let mut reads = futures_util::stream::iter(reads).buffer_unordered(parallel);
        let mut totals = rollup::TotalsSums::default();
        let mut cells = rollup::CellSums::default();
        while let Some(read) = reads.next().await {
            let (piece_totals, piece_cells) = read?;
            totals.merge(piece_totals);
            cells.merge(piece_cells);
        }
        Ok(if s.by_value {
            ReportData::Cells(cells.finish())
        } else {
            ReportData::Totals(totals.finish())
        })
    }

    /// The networks with postbacks of the app between `from` and `to` (days of `kind`): the
    /// version rows and sealed values of the longest blocks over the range name them all (every
    /// postback is counted in both families and every span), in a few hundred rows.
    async fn rollup_networks(
        &self,
        app_id: i64,
        kind: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<String>, StoreError> {
        let span = rollup::SPANS[rollup::SPANS.len() - 1];
        let mut q = QueryBuilder::<DB>::new("SELECT ad_network_id FROM report_rollup WHERE app_id = ");
        for table in ["report_rollup", "report_rollup_sealed"] {
            if table != "report_rollup" {
                q.push(format!(" UNION SELECT ad_network_id FROM {table} WHERE app_id = "));
            }
            q.push_bind(app_id);
            q.push(" AND date_kind = ").push_bind(kind.to_owned());
            q.push(" AND span = ").push_bind(span);
            q.push(" AND day >= ").push_bind(rollup::block_start(from, span));
            q.push(" AND day <= ").push_bind(to);
            q.push(" AND family = ").push_bind(rollup::Family::Version.as_str());
        }
        Ok(q.build_query_scalar().fetch_all(&self.pool).await?)
    }

    /// Report rows from the totals table.
    pub(super) async fn totals_rows(&self, s: &ReportSelection) -> Result<TotalsTable, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT ");
        q.push(if s.by_day() { "day" } else { "CAST(0 AS BIGINT) AS day" });
        q.push(", ");
        Self::push_install_day(&mut q, s, "install_day");
        q.push(if s.by_ad_network { ", ad_network_id" } else { ", '' AS ad_network_id" });
        q.push(", conversion_window, ");
        q.push(totals::SUMS.as_str());
        Self::push_summary_selection(&mut q, "report_totals", s);
        q.push(" GROUP BY 1, 2, 3, 4");
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut groups = Vec::with_capacity(rows.len());
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let mut counts = [0i64; totals::COUNTS];
            for (i, count) in counts.iter_mut().enumerate() {
                *count = row.try_get(4 + i)?;
            }
            let window: i64 = row.try_get(3)?;
            entries.push((
                u32::try_from(groups.len()).unwrap_or(u32::MAX),
                u8::try_from(window.clamp(0, 2)).unwrap_or(0),
                counts,
            ));
            groups.push(super::ReportGroup {
                day: row.try_get(0)?,
                install_day: row.try_get(1)?,
                ad_network_id: row.try_get(2)?,
                campaign_id: -1,
                ..super::ReportGroup::default()
            });
        }
        Ok(TotalsTable::new(groups, entries))
    }


    pub(super) fn push_windows(q: &mut QueryBuilder<DB>, windows: &[i64]) {
        if !windows.is_empty() {
            q.push(" AND conversion_window IN (");
            let mut list = q.separated(", ");
            for w in windows {
                list.push_bind(*w);
            }
            q.push(")");
        }
    }


    pub(super) fn push_redownload(q: &mut QueryBuilder<DB>, values: &[bool]) {
        match (values.contains(&true), values.contains(&false)) {
            (true, false) => {
                q.push(" AND conversion_type = 'redownload'");
            }
            (false, true) => {
                q.push(" AND conversion_type <> 'redownload'");
            }
            _ => {}
        }
    }


    pub(crate) async fn list_apps(&self) -> Result<Vec<super::AppSummary>, StoreError> {
        let days: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT app_id, MIN(day), MAX(day) FROM report_totals WHERE date_kind = 'arrival' \
             GROUP BY app_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let versions: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT app_id, CAST(COUNT(*) AS BIGINT) FROM schema_versions GROUP BY app_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut apps: std::collections::BTreeMap<i64, super::AppSummary> =
            std::collections::BTreeMap::new();
        let blank = |app_id| super::AppSummary {
            app_id,
            first_arrival_day: None,
            last_arrival_day: None,
            schema_versions: 0,
        };
        for (app_id, first, last) in days {
            let app = apps.entry(app_id).or_insert_with(|| blank(app_id));
            app.first_arrival_day = Some(crate::skan::day_from_number(first));
            app.last_arrival_day = Some(crate::skan::day_from_number(last));
        }
        for (app_id, count) in versions {
            apps.entry(app_id).or_insert_with(|| blank(app_id)).schema_versions = count;
        }
        Ok(apps.into_values().collect())
    }


    pub(crate) async fn app_exists(&self, app_id: i64) -> Result<bool, StoreError> {
        // EXISTS plans for the first row: a `LIMIT 1` over a `UNION ALL` let PostgreSQL choose a
        // bitmap of every aggregate of the app (340 ms at 10 million postbacks).
        let (found,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM aggregates WHERE app_id = $1) \
             OR EXISTS (SELECT 1 FROM schema_versions WHERE app_id = $1)",
        )
        .bind(app_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }

}

/// How a report's rollup read sums packed rows (see `rollup_rows`): the selection's groupings,
/// and its filters again for sealed values, which hold every row of their block and network.
struct PackedSums {
    selection: ReportSelection,
    family: rollup::Family,
    /// Source rows split by the slots of their cells (grouped or filtered by campaign and by
    /// version or fidelity).
    slotted: bool,
    /// Dates are arrival days.
    arrival: bool,
}

impl PackedSums {
    /// The rows of packed values summed per group; `None` when one is malformed.
    fn sum<'v>(
        &self,
        values: impl Iterator<Item = (&'v [u8], Option<&'v [u8]>)>,
        reported_day: Option<i64>,
        sign: i64,
    ) -> Option<(rollup::TotalsSums, rollup::CellSums)> {
        let s = &self.selection;
        let f = &s.filters;
        // The version and fidelity filters of `push_versions` and `push_in`, for the cells of
        // source rows and the rows of sealed values, whose keys the database did not filter.
        let aak_asked = f.version.iter().any(|v| v == "adattributionkit");
        let wanted = |protocol: &str, version: &str, interaction: &str| {
            (f.version.is_empty()
                || match protocol {
                    "adattributionkit" => aak_asked,
                    _ => f.version.iter().any(|v| v == version),
                })
                && (f.interaction.is_empty() || f.interaction.iter().any(|i| i == interaction))
        };
        let source_named = |source: &str| {
            f.source_identifier.is_empty() || f.source_identifier.iter().any(|s| s == source)
        };
        let did_win = match (f.did_win.contains(&true), f.did_win.contains(&false)) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        let redownload = match (f.redownload.contains(&true), f.redownload.contains(&false)) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        let windows = &f.window;
        let filtered = did_win.is_some() || redownload.is_some() || !windows.is_empty();
        let keep = |cell: u32| {
            if !filtered {
                return true;
            }
            let window = rollup::Cell::window_of(cell) as i64;
            let cell = rollup::Cell::from_index(cell);
            did_win.is_none_or(|w| cell.did_win == w)
                && redownload.is_none_or(|r| cell.is_redownload() == r)
                && (windows.is_empty() || windows.contains(&window))
        };
        let mut totals = rollup::TotalsSums::default();
        let mut cells = rollup::CellSums::default();
        let corrupt = std::cell::Cell::new(false);
        let mut slot_cells: Vec<Vec<(u32, i64)>> = Vec::new();
        let mut on_row = |row: rollup::PackedRow<'_>| {
            // Campaigns are filtered before: in the database for rows, by the index for sealed
            // values (below).
            if self.family == rollup::Family::Version
                && !wanted(&row.protocol, &row.version, &row.interaction)
            {
                return;
            }
            let text = |on: bool, text| if on { text } else { "" };
            let mut group = rollup::GroupView {
                day: if s.by_day() { reported_day.unwrap_or(row.day) } else { 0 },
                ad_network_id: text(s.by_ad_network, &row.ad_network_id),
                source_identifier: text(s.by_source, &row.source_identifier),
                campaign_id: if s.by_source { row.campaign_id } else { -1 },
                protocol: "",
                version: "",
                interaction: "",
                // A block's own day is its install day only for single days (a week's
                // blocks can hold installs of two schema periods; the period decodes alike).
                install_day: if s.by_day() && !self.arrival && reported_day.is_none() {
                    row.day
                } else {
                    row.period_day
                },
            };
            let key = (&*row.protocol, &*row.version, &*row.interaction);
            let intact = if self.slotted {
                // Each slot of the row's cells is a group of its own. A row of several
                // appended runs meets each slot once per run, so its cells are filed by slot
                // first: one group to find per slot (adding to the group at each run took
                // twice as long), without sorting the cells.
                for cells in &mut slot_cells {
                    cells.clear();
                }
                let intact = rollup::decode_each(row.counts, |cell, n| {
                    let number = rollup::Slots::number_of_cell(cell);
                    if number >= slot_cells.len() {
                        slot_cells.resize_with(number + 1, Vec::new);
                    }
                    slot_cells[number].push((cell, n));
                });
                for (number, same) in slot_cells.iter().enumerate() {
                    if same.is_empty() {
                        continue;
                    }
                    let slots = rollup::Slots::of_number(number);
                    let (protocol, version, interaction) = slots.resolve(key);
                    if !wanted(protocol, version, interaction) {
                        continue;
                    }
                    let group = rollup::GroupView {
                        protocol: text(s.by_version, protocol),
                        version: text(s.by_version, version),
                        interaction: text(s.by_interaction, interaction),
                        ..group
                    };
                    let mut sums = GroupSums::of(&mut cells, &mut totals, s.by_value, group);
                    for (cell, n) in same {
                        if keep(*cell) {
                            sums.add(*cell, sign * n);
                        }
                    }
                }
                intact
            } else {
                let (protocol, version, interaction) = key;
                group.protocol = text(s.by_version, protocol);
                group.version = text(s.by_version, version);
                group.interaction = text(s.by_interaction, interaction);
                let mut sums = GroupSums::of(&mut cells, &mut totals, s.by_value, group);
                rollup::decode_each(row.counts, |cell, n| {
                    if keep(cell) {
                        sums.add(cell, sign * n);
                    }
                })
            };
            corrupt.set(corrupt.get() || !intact);
        };
        for (packed, index) in values {
            // A sealed value's index names the rows of each source identifier, so a report of a
            // few campaigns reads only theirs.
            let intact = match index.filter(|_| !f.source_identifier.is_empty()) {
                Some(index) => {
                    let mut ranges = Vec::new();
                    let indexed = rollup::each_source_range(index, |source, start, end| {
                        if source_named(&source) {
                            ranges.push((start, end));
                        }
                    });
                    indexed
                        && ranges.into_iter().all(|(start, end)| {
                            packed
                                .get(start..end)
                                .is_some_and(|rows| rollup::each_packed(rows, &mut on_row))
                        })
                }
                None => rollup::each_packed(packed, &mut on_row),
            };
            if corrupt.get() || !intact {
                return None;
            }
        }
        Some((totals, cells))
    }
}

/// One group's entry in the cell sums (when the report groups by value) or in the per-window
/// totals.
enum GroupSums<'a> {
    Cells(&'a mut foldhash::HashMap<u32, i64>),
    Totals(rollup::GroupTotals<'a>),
}

impl<'a> GroupSums<'a> {
    fn of(
        cells: &'a mut rollup::CellSums,
        totals: &'a mut rollup::TotalsSums,
        by_value: bool,
        group: rollup::GroupView<'_>,
    ) -> Self {
        if by_value { Self::Cells(cells.group(group)) } else { Self::Totals(totals.group(group)) }
    }

    fn add(&mut self, cell: u32, n: i64) {
        match self {
            Self::Cells(cells) => *cells.entry(rollup::Slots::base(cell)).or_insert(0) += n,
            Self::Totals(totals) => totals.add(cell, n),
        }
    }
}

/// Rollup pieces read at once: one per core (each statement's packing is single-threaded), at
/// most four so a report leaves connections for ingest.
fn parallel_reads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

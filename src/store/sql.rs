//! The SQL both backends share, written once and generic over the sqlx driver: the [`Dialect`]
//! that carries their few differences, the store type, the bound list every SQL file uses
//! (`sql_impl!`), multi-row statement helpers, and the aggregate and report-table writes that
//! recording postbacks and bulk loading share. Each concern's statements live in their own file:
//! `postbacks.rs`, `reports.rs`, `keys.rs`, `schema_versions.rs`, `outbox.rs`.
//!
//! Statements use only the portable subset (`$N` placeholders, `ON CONFLICT`, `RETURNING`,
//! integer unix-millisecond times); anything dialect-specific comes from [`Dialect`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use sqlx::migrate::Migrator;
use sqlx::{Database, Pool, QueryBuilder, Row as _, Transaction};

use super::{AggregateKey, AggregateRow, Backend, StoreError, cube, rollup, totals};

/// What differs between SQLite and PostgreSQL.
pub(crate) trait Dialect: Database {
    /// Which backend this is.
    const BACKEND: Backend;

    /// The embedded migrations of this dialect.
    fn migrator() -> &'static Migrator;

    /// Start a write transaction. SQLite must take its write lock up front (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads and then writes fails at once when another writer won.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Rows a statement changed (the drivers' result types share no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Appended to a single-row `SELECT` to lock the row until the transaction ends (SQLite's
    /// write transactions lock the whole database already).
    const LOCK_ROW: &'static str;

    /// Appended to a queue `SELECT` so concurrent workers take different rows instead of waiting.
    const SKIP_LOCKED: &'static str;

    /// Every selected rollup row of the source family packed into one value (see
    /// `rollup::each_packed`): a run of blocks comes back as one row, so neither the database's
    /// grouping sort nor the driver's per-row cost is paid for tens of thousands of rows.
    const PACKED_SOURCE_ROWS: &'static str;
    /// [`Self::PACKED_SOURCE_ROWS`] for rows of the version family.
    const PACKED_VERSION_ROWS: &'static str;

    /// In a rollup upsert: the stored `counts` with the new ones appended after a 0x00 byte.
    const APPENDED_COUNTS: &'static str;

    /// How a rollup write finds the rows whose blobs grew long enough to compact: `Some(table)`,
    /// by one query after its upserts on this table reference (the partial index
    /// `report_rollup_long`), where each returned row is a message between threads (SQLite:
    /// returning every written row took a fifth of batch ingest); `None`, from its upserts,
    /// which return only those rows.
    const LONG_ROLLUP_ROWS_FROM: Option<&'static str>;

    /// Most bound parameters in one multi-row statement. On PostgreSQL a statement's Bind message
    /// must fit one TLS record (16 KiB): sqlx does not disable Nagle's algorithm, so the record
    /// after a full one waits for the server's delayed acknowledgement, 40 ms a statement.
    const MAX_PARAMS: usize;

    /// Run before a report's read of the detailed aggregates, in its transaction. `None` where
    /// the defaults serve.
    const AGGREGATE_REPORT_SETTINGS: Option<&'static str>;

    /// Taken by every transaction that writes counts keyed by decoding period, and
    /// [`Self::PERIODS_LOCK_EXCLUSIVE`] by one that adds a schema version: a writer never keys
    /// counts by periods that a new version is changing under it. `None` where write
    /// transactions are serial already (SQLite).
    const PERIODS_LOCK_SHARED: Option<&'static str>;

    /// See [`Self::PERIODS_LOCK_SHARED`].
    const PERIODS_LOCK_EXCLUSIVE: Option<&'static str>;
}

/// A store over sqlx pools; `SqlStore<Sqlite>` and `SqlStore<Postgres>` are the two backends.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
    /// Where every write runs. On SQLite a pool of one connection: the database takes one
    /// writer at a time anyway, and a connection that is the only writer keeps its page cache
    /// from one transaction to the next, where a write on another connection would make it
    /// read every page again. On PostgreSQL the same pool as reads.
    pub(crate) writer: Pool<DB>,
    /// Set when a write failed because the database could not store it (a full disk, a
    /// read-only or vanished file); cleared by the next write that succeeds. While set, the
    /// readiness check tries a small write itself, so a receiver taken out of rotation still
    /// notices when space returns.
    pub(crate) write_fault: std::sync::atomic::AtomicBool,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>, writer: Pool<DB>) -> Self {
        Self { pool, writer, write_fault: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Remember how a write went, for the readiness check.
    pub(crate) fn note_write<T>(&self, result: &Result<T, StoreError>) {
        use std::sync::atomic::Ordering;
        match result {
            Ok(_) => self.write_fault.store(false, Ordering::Relaxed),
            Err(e) if e.is_unavailable() => self.write_fault.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
    }
}

const UPSERT_AGGREGATE: &str = "INSERT INTO aggregates (app_id, arrival_day, install_day, \
     ad_network_id, source_identifier, campaign_id, protocol, version, conversion_window, \
     interaction, conversion_type, did_win, development, fine_value, coarse_value, tier_hint, \
     outcome, postbacks, unsigned_mismatch) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
     ON CONFLICT (app_id, arrival_day, install_day, ad_network_id, source_identifier, campaign_id, \
     protocol, version, conversion_window, interaction, conversion_type, did_win, development, \
     fine_value, coarse_value, tier_hint, outcome) DO UPDATE SET \
     postbacks = aggregates.postbacks + excluded.postbacks, \
     unsigned_mismatch = aggregates.unsigned_mismatch + excluded.unsigned_mismatch";

/// Rows per multi-row statement. Only these few shapes occur, so each is prepared once and
/// reused from the statement cache (a shape per row count would make every group's statements new
/// to the database: planned again on PostgreSQL, held in memory on both).
const ROWS_PER_STATEMENT: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// The key columns of `report_rollup`, in the order [`SqlStore::rollup_key`] reads them.
const ROLLUP_KEY_COLUMNS: &str = "app_id, date_kind, span, day, ad_network_id, family, \
     source_identifier, campaign_id, protocol, version, interaction, development, period_day";

/// When a rollup blob is compacted as it is written: once it is longer than 1,024 bytes and than
/// twice its length when last compacted (`compacted_bytes`). Appended runs cost reads a little,
/// and a row whose cells alone are long is merged once per doubling, not on every write. Word for
/// word as the partial index `report_rollup_long` states it (SQLite uses a partial index only for
/// a query that repeats its condition).
const LONG_ROLLUP_CONDITION: &str =
    "length(counts) > 1024 AND length(counts) > 2 * compacted_bytes";

/// `rows` of `columns` bound parameters each, cut into statements of the sizes in
/// [`ROWS_PER_STATEMENT`], largest first, of at most `max_params` parameters each (at least one
/// row).
pub(super) fn statement_chunks<T>(mut rows: &[T], columns: usize, max_params: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let most = (max_params / columns.max(1)).max(1);
    for size in ROWS_PER_STATEMENT.into_iter().filter(|size| *size <= most) {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            chunks.push(chunk);
            rows = rest;
        }
    }
    chunks
}

/// Transactions the database aborted for a conflict are run again, up to this many times in all.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Run a whole write transaction again when the database aborted it for a conflict with another
/// (a serialization failure or a deadlock: on Citus a deadlock across nodes is found only after
/// about two seconds, and engines with stricter isolation abort more), after a jittered, growing
/// pause. The transaction was rolled back, so running it again is safe.
pub(crate) async fn retry_conflicts<T, F, Fut>(mut run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match run().await {
            Err(err) if err.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                metrics::counter!("skan_transaction_retries_total").increment(1);
                let base = 25u64 << attempt;
                let pause = base / 2 + rand::random_range(0..=base);
                tracing::debug!(error = %err, attempt, pause_ms = pause, "transaction conflict; running it again");
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `INSERT INTO t (columns) ` of a single-row upsert, to append many rows of values to.
pub(super) fn upsert_head<D: Database>(upsert: &str) -> QueryBuilder<D> {
    let head = upsert.split_once(" VALUES (").map_or(upsert, |(head, _)| head);
    QueryBuilder::new(format!("{head} "))
}

/// The ` ON CONFLICT ...` clause of a single-row upsert.
pub(super) fn upsert_tail(upsert: &str) -> &str {
    upsert.find(" ON CONFLICT").map_or("", |at| &upsert[at..])
}

/// Aggregate and cube changes of one transaction, merged by key and applied in key order (a
/// fixed lock order, so concurrent PostgreSQL writers cannot deadlock on these rows).
#[derive(Default)]
pub(super) struct Deltas {
    aggregates: BTreeMap<AggregateKey, (i64, i64)>,
    cube: BTreeMap<cube::CubeKey, cube::Counts>,
    totals: BTreeMap<totals::TotalsKey, totals::Counts>,
}

impl Deltas {
    pub(super) fn add(&mut self, key: AggregateKey, postbacks: i64, mismatch: i64) {
        for (cube_key, counts) in cube::cells(&key, postbacks, mismatch) {
            let entry = self.cube.entry(cube_key).or_insert([0; cube::COUNTS]);
            for (total, delta) in entry.iter_mut().zip(counts) {
                *total += delta;
            }
        }
        for (totals_key, counts) in totals::cells(&key, postbacks, mismatch) {
            let entry = self.totals.entry(totals_key).or_insert([0; totals::COUNTS]);
            for (total, delta) in entry.iter_mut().zip(counts) {
                *total += delta;
            }
        }
        let entry = self.aggregates.entry(key).or_insert((0, 0));
        entry.0 += postbacks;
        entry.1 += mismatch;
    }
}

/// An `impl SqlStore<DB>` block with the sqlx bounds every SQL file needs, written once here
/// (Rust has no trait aliases for higher-ranked bounds).
macro_rules! sql_impl {
    ($($body:tt)*) => {
        impl<DB> $crate::store::sql::SqlStore<DB>
        where
        DB: $crate::store::sql::Dialect,
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        DB::Arguments: sqlx::IntoArguments<DB>,
        for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
        for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
        for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
        for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> Option<i64>: sqlx::Encode<'q, DB>,
        for<'q> Option<&'q str>: sqlx::Encode<'q, DB>,
        for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> Vec<u8>: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
        usize: sqlx::ColumnIndex<DB::Row>,
        for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
        for<'r> $crate::store::StoredPostback: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredReceipt: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::postbacks::CopyRow: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::keys::ApiKeyRow: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredSchemaVersion: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::reports::AggregateRecord: sqlx::FromRow<'r, DB::Row>,
        for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (i64, String): sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredDestination: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredDelivery: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredAttempt: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::QualityRecord: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::DeliveryRecord: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredAnomaly: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredMute: sqlx::FromRow<'r, DB::Row>,
        for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
        for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        {
            $($body)*
        }
    };
}
pub(crate) use sql_impl;

sql_impl! {
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        if self.write_fault.load(std::sync::atomic::Ordering::Relaxed) {
            let probe = async {
                let mut tx = DB::begin_write(&self.writer).await?;
                sqlx::query("UPDATE storage_probe SET at = at + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<(), StoreError>(())
            }
            .await;
            self.note_write(&probe);
            probe?;
        }
        Ok(())
    }

    pub(crate) async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied: Vec<(i64,)> =
            match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows,
                Err(sqlx::Error::Database(_)) => Vec::new(),
                Err(err) => return Err(err.into()),
            };
        Ok(DB::migrator().iter().filter(|m| !applied.iter().any(|(v,)| *v == m.version)).count())
    }

    pub(crate) async fn add_aggregates(&self, rows: &[AggregateRow]) -> Result<(), StoreError> {
        let mut deltas = Deltas::default();
        for row in rows {
            deltas.add(row.key.clone(), row.postbacks, row.unsigned_mismatch);
        }
        let mut tx = DB::begin_write(&self.writer).await?;
        Self::apply_deltas(&mut tx, deltas).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn apply_deltas(
        tx: &mut Transaction<'static, DB>,
        deltas: Deltas,
    ) -> Result<(), StoreError> {
        // Many rows per statement: each statement is a round trip to the database (on SQLite, to
        // its worker thread), and a group touches a few rows per postback.
        let aggregates: Vec<_> =
            deltas.aggregates.iter().filter(|(_, (p, m))| *p != 0 || *m != 0).collect();
        for chunk in statement_chunks(&aggregates, 19, DB::MAX_PARAMS) {
            let mut q = upsert_head(UPSERT_AGGREGATE);
            q.push_values(chunk, |mut row, (key, (postbacks, mismatch))| {
                row.push_bind(key.app_id)
                    .push_bind(key.arrival_day)
                    .push_bind(key.install_day)
                    .push_bind(key.ad_network_id.as_str())
                    .push_bind(key.source_identifier.as_str())
                    .push_bind(key.campaign_id)
                    .push_bind(key.protocol.as_str())
                    .push_bind(key.version.as_str())
                    .push_bind(key.window)
                    .push_bind(key.interaction.as_str())
                    .push_bind(key.conversion_type.as_str())
                    .push_bind(key.did_win)
                    .push_bind(key.development)
                    .push_bind(key.fine_value)
                    .push_bind(key.coarse_value.as_str())
                    .push_bind(key.tier_hint)
                    .push_bind(key.outcome.as_str())
                    .push_bind(*postbacks)
                    .push_bind(*mismatch);
            });
            q.push(upsert_tail(UPSERT_AGGREGATE));
            q.build().execute(&mut **tx).await?;
        }
        let cells: Vec<_> =
            deltas.cube.iter().filter(|(_, counts)| counts.iter().any(|c| *c != 0)).collect();
        for chunk in statement_chunks(&cells, 12 + cube::COUNTS, DB::MAX_PARAMS) {
            let mut q = upsert_head(&cube::UPSERT);
            q.push_values(chunk, |mut row, (key, counts)| {
                row.push_bind(key.app_id)
                    .push_bind(key.date_kind)
                    .push_bind(key.day)
                    .push_bind(key.install_day)
                    .push_bind(key.ad_network_id.as_str())
                    .push_bind(key.window)
                    .push_bind(key.did_win)
                    .push_bind(key.conversion_type.as_str())
                    .push_bind(key.development)
                    .push_bind(key.tier_hint)
                    .push_bind(key.outcome.as_str())
                    .push_bind(key.mismatched);
                for count in counts.iter() {
                    row.push_bind(*count);
                }
            });
            q.push(upsert_tail(&cube::UPSERT));
            q.build().execute(&mut **tx).await?;
        }
        let cells: Vec<_> =
            deltas.totals.iter().filter(|(_, counts)| counts.iter().any(|c| *c != 0)).collect();
        for chunk in statement_chunks(&cells, 7 + totals::COUNTS, DB::MAX_PARAMS) {
            let mut q = upsert_head(&totals::UPSERT);
            q.push_values(chunk, |mut row, (key, counts)| {
                row.push_bind(key.app_id)
                    .push_bind(key.date_kind)
                    .push_bind(key.day)
                    .push_bind(key.install_day)
                    .push_bind(key.ad_network_id.as_str())
                    .push_bind(key.window)
                    .push_bind(key.development);
                for count in counts.iter() {
                    row.push_bind(*count);
                }
            });
            q.push(upsert_tail(&totals::UPSERT));
            q.build().execute(&mut **tx).await?;
        }
        if let Some(lock) = DB::PERIODS_LOCK_SHARED {
            sqlx::query(lock).execute(&mut **tx).await?;
        }
        let apps: BTreeSet<i64> = aggregates.iter().map(|(key, _)| key.app_id).collect();
        let starts = Self::period_starts(tx, &apps).await?;
        let mut rows = BTreeMap::new();
        for (key, (postbacks, mismatch)) in aggregates {
            let starts = starts.get(&key.app_id).map_or(&[][..], Vec::as_slice);
            let period = rollup::period_day(starts, key.install_day);
            rollup::add(&mut rows, key, *postbacks, *mismatch, period);
        }
        Self::write_rollup(tx, rows).await
    }

    /// The days each app's schema versions take effect, ascending, as this transaction sees them.
    pub(super) async fn period_starts(
        tx: &mut Transaction<'static, DB>,
        apps: &BTreeSet<i64>,
    ) -> Result<HashMap<i64, Vec<i64>>, StoreError> {
        let mut starts: HashMap<i64, Vec<i64>> = HashMap::new();
        if apps.is_empty() {
            return Ok(starts);
        }
        let mut q = QueryBuilder::<DB>::new(
            "SELECT app_id, effective_from FROM schema_versions WHERE app_id IN (",
        );
        let mut list = q.separated(", ");
        for app in apps {
            list.push_bind(*app);
        }
        q.push(")");
        let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        for (app, effective_from_ms) in rows {
            starts.entry(app).or_default().push(effective_from_ms.div_euclid(86_400_000));
        }
        for days in starts.values_mut() {
            days.sort_unstable();
            days.dedup();
        }
        Ok(starts)
    }

    /// Add counts to rollup rows by appending them to the row's blob, one statement per chunk of
    /// rows (a read-merge-write costs two and carries every blob to the receiver and back). A blob
    /// that has grown long ([`LONG_ROLLUP_CONDITION`]) is merged back into one run of cells.
    pub(super) async fn write_rollup(
        tx: &mut Transaction<'static, DB>,
        rows: BTreeMap<rollup::RollupKey, rollup::Cells>,
    ) -> Result<(), StoreError> {
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|(_, cells)| !cells.is_empty())
            .map(|(key, cells)| (key, rollup::encode(&cells)))
            .collect();
        // Without a query of their own, the upserts return the rows due for compaction.
        let returns = DB::LONG_ROLLUP_ROWS_FROM.is_none();
        for chunk in statement_chunks(&rows, 15, DB::MAX_PARAMS) {
            let mut q = QueryBuilder::<DB>::new(format!(
                "{}INSERT INTO report_rollup ({ROLLUP_KEY_COLUMNS}, counts, compacted_bytes) ",
                if returns { "WITH written AS (" } else { "" }
            ));
            q.push_values(chunk, |mut row, (key, blob)| {
                Self::push_rollup_key(&mut row, key);
                row.push_bind(blob.as_slice());
                row.push_bind(i64::try_from(blob.len()).unwrap_or(i64::MAX));
            });
            q.push(format!(
                " ON CONFLICT ({ROLLUP_KEY_COLUMNS}) DO UPDATE SET counts = {}",
                DB::APPENDED_COUNTS
            ));
            if !returns {
                q.build().execute(&mut **tx).await?;
                continue;
            }
            q.push(format!(
                " RETURNING {ROLLUP_KEY_COLUMNS}, counts, compacted_bytes) \
                 SELECT {ROLLUP_KEY_COLUMNS} FROM written WHERE {LONG_ROLLUP_CONDITION}"
            ));
            let long = q
                .build()
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(Self::rollup_key)
                .collect::<Result<Vec<_>, _>>()?;
            if !long.is_empty() {
                Self::compact_rollup(tx, &long).await?;
            }
        }
        if let Some(table) = DB::LONG_ROLLUP_ROWS_FROM
            && !rows.is_empty()
        {
            let apps: BTreeSet<i64> = rows.iter().map(|(key, _)| key.app_id).collect();
            let long = Self::long_rollup_rows(tx, table, &apps).await?;
            if !long.is_empty() {
                Self::compact_rollup(tx, &long).await?;
            }
        }
        Ok(())
    }

    /// The rollup rows of these apps whose blobs grew long ([`LONG_ROLLUP_CONDITION`]), read
    /// from `table` (see [`Dialect::LONG_ROLLUP_ROWS_FROM`]).
    async fn long_rollup_rows(
        tx: &mut Transaction<'static, DB>,
        table: &str,
        apps: &BTreeSet<i64>,
    ) -> Result<Vec<rollup::RollupKey>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {ROLLUP_KEY_COLUMNS} FROM {table} WHERE {LONG_ROLLUP_CONDITION} AND app_id IN ("
        ));
        let mut list = q.separated(", ");
        for app in apps {
            list.push_bind(*app);
        }
        q.push(")");
        let rows = q.build().fetch_all(&mut **tx).await?;
        let mut keys = rows.iter().map(Self::rollup_key).collect::<Result<Vec<_>, _>>()?;
        keys.sort_unstable();
        Ok(keys)
    }

    fn push_rollup_key(
        row: &mut sqlx::query_builder::Separated<'_, DB, &'static str>,
        key: &rollup::RollupKey,
    ) {
        row.push_bind(key.app_id)
            .push_bind(key.date_kind)
            .push_bind(key.span)
            .push_bind(key.day)
            .push_bind(key.ad_network_id.clone())
            .push_bind(key.family)
            .push_bind(key.source_identifier.clone())
            .push_bind(key.campaign_id)
            .push_bind(key.protocol.clone())
            .push_bind(key.version.clone())
            .push_bind(key.interaction.clone())
            .push_bind(key.development)
            .push_bind(key.period_day);
    }

    /// The key of a row that starts with [`ROLLUP_KEY_COLUMNS`].
    fn rollup_key(row: &DB::Row) -> Result<rollup::RollupKey, StoreError> {
        let date_kind: String = row.try_get(1)?;
        let family: String = row.try_get(5)?;
        Ok(rollup::RollupKey {
            app_id: row.try_get(0)?,
            date_kind: if date_kind == "install" { "install" } else { "arrival" },
            span: row.try_get(2)?,
            day: row.try_get(3)?,
            ad_network_id: row.try_get(4)?,
            family: rollup::Family::parse(&family)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("report_rollup row of unknown family {family:?}"))
                })?
                .as_str(),
            source_identifier: row.try_get(6)?,
            campaign_id: row.try_get(7)?,
            protocol: row.try_get(8)?,
            version: row.try_get(9)?,
            interaction: row.try_get(10)?,
            development: row.try_get(11)?,
            period_day: row.try_get(12)?,
        })
    }

    /// Merge the appended runs of these rows' blobs into one.
    async fn compact_rollup(
        tx: &mut Transaction<'static, DB>,
        keys: &[rollup::RollupKey],
    ) -> Result<(), StoreError> {
        let empty: &[u8] = &[];
        for chunk in statement_chunks(keys, 15, DB::MAX_PARAMS) {
            // An upsert that changes nothing reads the rows by key, locked, in one statement.
            let mut q = QueryBuilder::<DB>::new(format!(
                "INSERT INTO report_rollup ({ROLLUP_KEY_COLUMNS}, counts) "
            ));
            q.push_values(chunk, |mut row, key| {
                Self::push_rollup_key(&mut row, key);
                row.push_bind(empty);
            });
            q.push(format!(
                " ON CONFLICT ({ROLLUP_KEY_COLUMNS}) DO UPDATE SET counts = report_rollup.counts \
                 RETURNING {ROLLUP_KEY_COLUMNS}, counts"
            ));
            let mut merged = Vec::with_capacity(chunk.len());
            for row in q.build().fetch_all(&mut **tx).await? {
                let key = Self::rollup_key(&row)?;
                let blob: Vec<u8> = row.try_get(13)?;
                let mut total = rollup::Cells::new();
                let intact = rollup::decode_each(&blob, |cell, n| {
                    *total.entry(cell).or_insert(0) += n;
                });
                if !intact {
                    return Err(StoreError::Corrupt(format!(
                        "report_rollup row {key:?} holds a malformed counts blob"
                    )));
                }
                total.retain(|_, n| *n != 0);
                merged.push((key, rollup::encode(&total)));
            }
            let mut q = QueryBuilder::<DB>::new(format!(
                "INSERT INTO report_rollup ({ROLLUP_KEY_COLUMNS}, counts, compacted_bytes) "
            ));
            q.push_values(&merged, |mut row, (key, blob)| {
                Self::push_rollup_key(&mut row, key);
                row.push_bind(blob.as_slice());
                row.push_bind(i64::try_from(blob.len()).unwrap_or(i64::MAX));
            });
            q.push(format!(
                " ON CONFLICT ({ROLLUP_KEY_COLUMNS}) DO UPDATE SET counts = excluded.counts, \
                 compacted_bytes = excluded.compacted_bytes"
            ));
            q.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Fill the rollup from the aggregates once (a database from before the rollup existed).
    pub(crate) async fn build_rollup_if_needed(&self) -> Result<(), StoreError> {
        let (built,): (bool,) =
            sqlx::query_as("SELECT built FROM report_rollup_state WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        if built {
            return Ok(());
        }
        let mut tx = DB::begin_write(&self.writer).await?;
        if let Some(lock) = DB::PERIODS_LOCK_EXCLUSIVE {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        let (built,): (bool,) = QueryBuilder::<DB>::new(format!(
            "SELECT built FROM report_rollup_state WHERE id = 1{}",
            DB::LOCK_ROW
        ))
        .build_query_as()
        .fetch_one(&mut *tx)
        .await?;
        if !built {
            sqlx::query("DELETE FROM report_rollup").execute(&mut *tx).await?;
            sqlx::query("DELETE FROM report_rollup_sealed").execute(&mut *tx).await?;
            let apps: Vec<(i64,)> = sqlx::query_as("SELECT DISTINCT app_id FROM aggregates")
                .fetch_all(&mut *tx)
                .await?;
            let apps: BTreeSet<i64> = apps.into_iter().map(|(a,)| a).collect();
            let starts = Self::period_starts(&mut tx, &apps).await?;
            for app in apps {
                let starts = starts.get(&app).map_or(&[][..], Vec::as_slice);
                // Day by day of arrival, so each step holds one day's aggregates.
                let days: Vec<(i64,)> = sqlx::query_as(
                    "SELECT DISTINCT arrival_day FROM aggregates WHERE app_id = $1 ORDER BY 1",
                )
                .bind(app)
                .fetch_all(&mut *tx)
                .await?;
                for (day,) in days {
                    let mut q = QueryBuilder::<DB>::new(format!(
                        "SELECT {} FROM aggregates WHERE app_id = ",
                        super::reports::AGGREGATE_COLUMNS
                    ));
                    q.push_bind(app).push(" AND arrival_day = ").push_bind(day);
                    let rows: Vec<super::reports::AggregateRecord> =
                        q.build_query_as().fetch_all(&mut *tx).await?;
                    let mut cells = BTreeMap::new();
                    for row in rows {
                        let row = AggregateRow::from(row);
                        let period = rollup::period_day(starts, row.key.install_day);
                        rollup::add(&mut cells, &row.key, row.postbacks, row.unsigned_mismatch, period);
                    }
                    Self::write_rollup(&mut tx, cells).await?;
                }
            }
            sqlx::query("UPDATE report_rollup_state SET built = TRUE WHERE id = 1")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

}

/// Implement [`super::Store`] for `SqlStore<$db>` by delegating to the generic methods above.
macro_rules! impl_store {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::QualityStore for $crate::store::sql::SqlStore<$db> {
            async fn quality_records(
                &self,
                app_id: i64,
                from_day: i64,
                to_day: i64,
            ) -> Result<Vec<$crate::store::QualityRecord>, $crate::store::StoreError> {
                Self::quality_records(self, app_id, from_day, to_day).await
            }
            async fn delivery_records(
                &self,
                app_id: i64,
                since_ms: i64,
            ) -> Result<Vec<$crate::store::DeliveryRecord>, $crate::store::StoreError> {
                Self::delivery_records(self, app_id, since_ms).await
            }
            async fn insert_anomaly(
                &self,
                anomaly: &$crate::store::StoredAnomaly,
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::insert_anomaly(self, anomaly)).await
            }
            async fn anomalies(
                &self,
                app_id: i64,
                from_day: i64,
                to_day: i64,
            ) -> Result<Vec<$crate::store::StoredAnomaly>, $crate::store::StoreError> {
                Self::anomalies(self, app_id, from_day, to_day).await
            }
            async fn anomaly(
                &self,
                app_id: i64,
                id: i64,
            ) -> Result<Option<$crate::store::StoredAnomaly>, $crate::store::StoreError> {
                Self::anomaly(self, app_id, id).await
            }
            async fn acknowledge_anomaly(
                &self,
                app_id: i64,
                id: i64,
                by: &str,
                at_ms: i64,
            ) -> Result<Option<$crate::store::StoredAnomaly>, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| {
                    Self::acknowledge_anomaly(self, app_id, id, by, at_ms)
                })
                .await
            }
            async fn set_mute(
                &self,
                mute: &$crate::store::StoredMute,
                muted: bool,
            ) -> Result<bool, $crate::store::StoreError> {
                Self::set_mute(self, mute, muted).await
            }
            async fn mutes(
                &self,
                app_id: i64,
            ) -> Result<Vec<$crate::store::StoredMute>, $crate::store::StoreError> {
                Self::mutes(self, app_id).await
            }
            async fn take_lease(
                &self,
                name: &str,
                holder: &str,
                now_ms: i64,
                ttl_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                Self::take_lease(self, name, holder, now_ms, ttl_ms).await
            }
        }
        #[async_trait::async_trait]
        impl $crate::store::StoreHealth for $crate::store::sql::SqlStore<$db> {
            fn backend(&self) -> $crate::store::Backend {
                <$db as $crate::store::sql::Dialect>::BACKEND
            }
            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                Self::ping(self).await
            }
            async fn pending_migrations(&self) -> Result<usize, $crate::store::StoreError> {
                Self::pending_migrations(self).await
            }
            async fn close(&self) {
                self.writer.close().await;
                self.pool.close().await;
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::PostbackStore for $crate::store::sql::SqlStore<$db> {
            async fn record(
                &self,
                items: &[$crate::store::IngestItem],
            ) -> Result<Vec<$crate::store::RecordOutcome>, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::record(self, items)).await
            }
            async fn postback(
                &self,
                id: i64,
            ) -> Result<Option<$crate::store::StoredPostback>, $crate::store::StoreError> {
                Self::postback(self, id).await
            }
            async fn postback_in_app(
                &self,
                app_id: i64,
                id: i64,
            ) -> Result<Option<$crate::store::StoredPostback>, $crate::store::StoreError> {
                Self::postback_in_app(self, app_id, id).await
            }
            async fn receipts_in_app(
                &self,
                app_id: i64,
                postback_id: i64,
            ) -> Result<Vec<$crate::store::StoredReceipt>, $crate::store::StoreError> {
                Self::receipts_in_app(self, app_id, postback_id).await
            }
            async fn receipts(
                &self,
                postback_id: i64,
            ) -> Result<Vec<$crate::store::StoredReceipt>, $crate::store::StoreError> {
                Self::receipts(self, postback_id).await
            }
            async fn list_postbacks(
                &self,
                query: &$crate::store::PostbackQuery,
            ) -> Result<Vec<$crate::store::StoredPostback>, $crate::store::StoreError> {
                Self::list_postbacks(self, query).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $crate::store::sql::SqlStore<$db> {
            async fn create_api_key(
                &self,
                key: &$crate::store::NewApiKey,
            ) -> Result<$crate::store::ApiKey, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::create_api_key(self, key)).await
            }
            async fn api_key_by_hash(
                &self,
                key_hash: &str,
            ) -> Result<Option<$crate::store::ApiKey>, $crate::store::StoreError> {
                Self::api_key_by_hash(self, key_hash).await
            }
            async fn revocation_mark(
                &self,
            ) -> Result<(i64, Option<i64>), $crate::store::StoreError> {
                Self::revocation_mark(self).await
            }
            async fn list_api_keys(
                &self,
            ) -> Result<Vec<$crate::store::ApiKey>, $crate::store::StoreError> {
                Self::list_api_keys(self).await
            }
            async fn revoke_api_key(
                &self,
                name: &str,
                at_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::revoke_api_key(self, name, at_ms))
                    .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SchemaStore for $crate::store::sql::SqlStore<$db> {
            async fn insert_schema_version(
                &self,
                version: &$crate::store::NewSchemaVersion,
            ) -> Result<$crate::store::StoredSchemaVersion, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::insert_schema_version(self, version))
                    .await
            }
            async fn schema_versions(
                &self,
                app_id: i64,
            ) -> Result<Vec<$crate::store::StoredSchemaVersion>, $crate::store::StoreError> {
                Self::schema_versions(self, app_id).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ReportStore for $crate::store::sql::SqlStore<$db> {
            async fn aggregates(
                &self,
                query: &$crate::store::AggregateQuery,
            ) -> Result<Vec<$crate::store::AggregateRow>, $crate::store::StoreError> {
                Self::aggregates(self, query).await
            }
            async fn report_rows(
                &self,
                selection: &$crate::store::ReportSelection,
            ) -> Result<$crate::store::ReportData, $crate::store::StoreError> {
                Self::report_rows(self, selection).await
            }
            async fn add_aggregates(
                &self,
                rows: &[$crate::store::AggregateRow],
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::add_aggregates(self, rows)).await
            }
            async fn app_exists(&self, app_id: i64) -> Result<bool, $crate::store::StoreError> {
                Self::app_exists(self, app_id).await
            }
            async fn list_apps(
                &self,
            ) -> Result<Vec<$crate::store::AppSummary>, $crate::store::StoreError> {
                Self::list_apps(self).await
            }
            async fn seal_rollup(
                &self,
                before_day: i64,
            ) -> Result<$crate::store::SealSummary, $crate::store::StoreError> {
                Self::seal_rollup(self, before_day).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::OutboxStore for $crate::store::sql::SqlStore<$db> {
            async fn create_destination(
                &self,
                new: &$crate::store::NewDestination,
            ) -> Result<$crate::store::StoredDestination, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::create_destination(self, new)).await
            }
            async fn update_destination(
                &self,
                id: i64,
                change: &$crate::store::NewDestination,
            ) -> Result<Option<$crate::store::StoredDestination>, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::update_destination(self, id, change))
                    .await
            }
            async fn delete_destination(&self, id: i64) -> Result<bool, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::delete_destination(self, id)).await
            }
            async fn destination(
                &self,
                id: i64,
            ) -> Result<Option<$crate::store::StoredDestination>, $crate::store::StoreError> {
                Self::destination(self, id).await
            }
            async fn destination_by_name(
                &self,
                name: &str,
            ) -> Result<Option<$crate::store::StoredDestination>, $crate::store::StoreError> {
                Self::destination_by_name(self, name).await
            }
            async fn list_destinations(
                &self,
            ) -> Result<Vec<$crate::store::StoredDestination>, $crate::store::StoreError> {
                Self::list_destinations(self).await
            }
            async fn claim_deliveries(
                &self,
                destination_id: i64,
                lease: &str,
                now_ms: i64,
                max: u32,
            ) -> Result<$crate::store::Claim, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| {
                    Self::claim_deliveries(self, destination_id, lease, now_ms, max)
                })
                .await
            }
            async fn complete_deliveries(
                &self,
                completions: &[$crate::store::Completion],
            ) -> Result<Vec<$crate::store::Completed>, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::complete_deliveries(self, completions))
                    .await
            }
            async fn list_deliveries(
                &self,
                query: &$crate::store::DeliveryQuery,
            ) -> Result<Vec<$crate::store::StoredDelivery>, $crate::store::StoreError> {
                Self::list_deliveries(self, query).await
            }
            async fn delivery(
                &self,
                id: i64,
            ) -> Result<Option<$crate::store::StoredDelivery>, $crate::store::StoreError> {
                Self::delivery(self, id).await
            }
            async fn delivery_for(
                &self,
                destination_id: i64,
                postback_id: i64,
            ) -> Result<Option<$crate::store::StoredDelivery>, $crate::store::StoreError> {
                Self::delivery_for(self, destination_id, postback_id).await
            }
            async fn delivery_attempts(
                &self,
                delivery_id: i64,
            ) -> Result<Vec<$crate::store::StoredAttempt>, $crate::store::StoreError> {
                Self::delivery_attempts(self, delivery_id).await
            }
            async fn retry_delivery(
                &self,
                id: i64,
                now_ms: i64,
            ) -> Result<$crate::store::RetryResult, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::retry_delivery(self, id, now_ms)).await
            }
            async fn replay(
                &self,
                request: &$crate::store::ReplayRequest,
            ) -> Result<$crate::store::ReplayCounts, $crate::store::StoreError> {
                $crate::store::sql::retry_conflicts(|| Self::replay(self, request)).await
            }
            async fn queue_stats(
                &self,
            ) -> Result<Vec<$crate::store::QueueStats>, $crate::store::StoreError> {
                Self::queue_stats(self).await
            }
        }
    };
}
pub(crate) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_into_the_few_statement_sizes_in_order() {
        for n in [0usize, 1, 7, 8, 9, 63, 64, 130, 1000] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = statement_chunks(&rows, 10, 10_000);
            assert!(chunks.iter().all(|c| ROWS_PER_STATEMENT.contains(&c.len())), "{n}");
            let joined: Vec<usize> = chunks.concat();
            assert_eq!(joined, rows, "every row once, in order");
            assert!(chunks.len() <= n / 128 + 7, "{n}: {} statements", chunks.len());
            let small = statement_chunks(&rows, 82, 1_000);
            assert!(small.iter().all(|c| c.len() <= 12), "82 columns, 1000 parameters: 12 rows");
            assert_eq!(small.concat(), rows);
        }
    }

    /// A database error with only a SQLSTATE, as a server would send it.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "sqlstate {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn failure(code: &'static str) -> StoreError {
        StoreError::from(sqlx::Error::Database(Box::new(Sqlstate(code))))
    }

    #[tokio::test]
    async fn a_transaction_aborted_for_a_conflict_runs_again_and_other_errors_do_not() {
        for (code, conflict) in
            [("40001", true), ("40P01", true), ("57P01", false), ("42P01", false)]
        {
            assert_eq!(failure(code).is_conflict(), conflict, "{code}");
            let runs = std::sync::atomic::AtomicU32::new(0);
            let result = retry_conflicts(|| {
                let run = runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move { if run < 2 { Err(failure(code)) } else { Ok(run) } }
            })
            .await;
            let runs = runs.into_inner();
            if conflict {
                assert_eq!((result.ok(), runs), (Some(2), 3), "{code}: third time lucky");
            } else {
                assert!(result.is_err() && runs == 1, "{code}: not run again");
            }
        }
        // A conflict that never clears gives up after the last attempt.
        let runs = std::sync::atomic::AtomicU32::new(0);
        let result: Result<(), _> = retry_conflicts(|| {
            runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { Err(failure("40P01")) }
        })
        .await;
        assert!(result.is_err_and(|e| e.is_conflict()));
        assert_eq!(runs.into_inner(), CONFLICT_ATTEMPTS);
    }
}

//! SQLite: the embedded default. One file, WAL mode, `synchronous = FULL` so a commit survives a
//! power cut, and `BEGIN IMMEDIATE` for every write transaction.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use super::sql::{Dialect, SqlStore, impl_store};
use super::{Backend, ConnectOptions, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    const LOCK_ROW: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    // One printf per row: a chain of `||` builds a new string at every step and cost SQLite
    // about 2 µs a row, one printf about 1 (`sqlite3`, the benchmark's 31,846-row 8-day run: 65-68
    // ms against 27-41 ms, the same bytes). Texts are quoted by `%q` rather than written as
    // netstrings: a netstring's length had to be measured by a `printf('%s')` of its own per
    // text (`%s` stops at a NUL character, and the length must be of what it writes), five
    // more formattings per row (`sqlite3`, 423,859 rows of 90 days of day x campaign: 978-996
    // ms against 1,675-1,743 ms, scanning alone 270-288 ms). A key holding a NUL (which PostgreSQL cannot store at all) is
    // still read cut at the NUL. The source identifier a version row leaves empty is written
    // without reading it.
    const PACKED_SOURCE_ROWS: &'static str = "CAST(group_concat(\
        printf('%d;%d;%d;%q'',%q'',%q'',%q'',%q'',%d:', day, campaign_id, period_day, \
        ad_network_id, source_identifier, protocol, version, interaction, length(counts)) \
        || counts, '') AS BLOB)";
    const PACKED_VERSION_ROWS: &'static str = "CAST(group_concat(\
        printf('%d;%d;%d;%q'','',%q'',%q'',%q'',%d:', day, campaign_id, period_day, \
        ad_network_id, protocol, version, interaction, length(counts)) || counts, '') AS BLOB)";
    const APPENDED_COUNTS: &'static str =
        "CAST(report_rollup.counts || X'00' || excluded.counts AS BLOB)";
    const LONG_ROLLUP_ROWS_FROM: Option<&'static str> =
        Some("report_rollup INDEXED BY report_rollup_long");
    const AGGREGATE_REPORT_SETTINGS: Option<&'static str> = None;
    const MAX_PARAMS: usize = usize::MAX;
    const PERIODS_LOCK_SHARED: Option<&'static str> = None;
    const PERIODS_LOCK_EXCLUSIVE: Option<&'static str> = None;

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
}

impl_store!(Sqlite);

/// Open (creating if needed) the SQLite database at `url` and migrate it.
pub(super) async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> Result<SqlStore<Sqlite>, StoreError> {
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(WRITE_LOCK_PATIENCE)
        // 64 MiB of page cache per connection: report scans stay in memory.
        .pragma("cache_size", "-65536")
        .foreign_keys(true);
    let pool = pool_options()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect.clone())
        .await
        .map_err(StoreError::Unavailable)?;
    // Waiting for the one writer connection is waiting for the database's write lock, so it
    // gets the lock's patience rather than the pool's. Its page cache holds what inserts touch
    // (the rollup rows of the days being written, the index pages on the way), not report
    // scans: 16 MiB. 40,000 forwarded postbacks in batches of 500 peaked at 96-97 MiB of RSS
    // with it, against 134 MiB with 64 MiB, at the same rate; with 4 MiB, batches were a tenth
    // slower.
    let writer = pool_options()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout.max(WRITE_LOCK_PATIENCE))
        .connect_with(connect.pragma("cache_size", "-16384"))
        .await
        .map_err(StoreError::Unavailable)?;
    if options.migrate {
        MIGRATOR.run(&writer).await?;
    }
    let store = SqlStore::new(pool, writer);
    if options.migrate {
        store.build_rollup_if_needed().await?;
    }
    Ok(store)
}

const WRITE_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        // A connection handed back still inside a transaction (its COMMIT failed: a full disk,
        // a lost server) would refuse every later BEGIN; close it rather than reuse it.
        .after_release(|conn, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
        })
        // A connection is a file handle in this process, with nothing to lose on the way: the
        // default ping before every acquire cost each commit group a round trip to its thread
        // (the `begin` phase of single postbacks went from 0.6 to 0.3 ms a group without it).
        .test_before_acquire(false)
}

//! PostgreSQL: the production and scale-out backend. Many stateless receivers share one database;
//! uniqueness and row locks there keep them from double-counting or double-sending.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

use super::sql::{Dialect, SqlStore, impl_store};
use super::{Backend, ConnectOptions, StoreError, redact_url};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Every selected rollup row packed into one value (see `rollup::each_packed`).
const PACKED_ROWS: &str = "string_agg(convert_to(\
        day || ';' || campaign_id || ';' || period_day || ';' \
        || replace(ad_network_id, '''', '''''') || ''',' \
        || replace(source_identifier, '''', '''''') || ''',' \
        || replace(protocol, '''', '''''') || ''',' \
        || replace(version, '''', '''''') || ''',' \
        || replace(interaction, '''', '''''') || ''',' \
        || octet_length(counts) || ':', 'UTF8') || counts, ''::bytea)";

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    const LOCK_ROW: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    // Both families pack every field: packing only a family's own fields measured within the
    // noise here (43-56 ms against 45-56 ms for 25,432 rows), as did one format() per row
    // instead of the `||` chain (median 66 against 63 ms for 25,443 rows).
    const PACKED_SOURCE_ROWS: &'static str = PACKED_ROWS;
    const PACKED_VERSION_ROWS: &'static str = PACKED_ROWS;
    const APPENDED_COUNTS: &'static str =
        "report_rollup.counts || '\\x00'::bytea || excluded.counts";
    const LONG_ROLLUP_ROWS_FROM: Option<&'static str> = None;
    // Grouping 2 million aggregates into 300,000 groups (90 days of campaign x version at 10
    // million postbacks) sorted on disk under the default 4 MB: 7.3 s. With 256 MB it is one hash
    // aggregation in memory (164 MB): 3.3 s. 64 and 128 MB chose sorts that took 11.6 and 6.6 s.
    const AGGREGATE_REPORT_SETTINGS: Option<&'static str> = Some("SET LOCAL work_mem = '256MB'");
    const MAX_PARAMS: usize = 700;
    const PERIODS_LOCK_SHARED: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock_shared(7365)");
    const PERIODS_LOCK_EXCLUSIVE: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7365)");

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }
}

impl_store!(Postgres);

/// Connect to the PostgreSQL database at `url` and migrate it (migrations take an advisory lock,
/// so receivers starting together apply them once).
pub(super) async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> Result<SqlStore<Postgres>, StoreError> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::UnsupportedUrl(redact_url(url)))?
        .application_name("skan-receiver");
    let pool = PgPoolOptions::new()
        // A connection handed back still inside a transaction (its COMMIT failed: a full disk,
        // a lost server) would refuse every later BEGIN; close it rather than reuse it.
        .after_release(|conn, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
        })
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(StoreError::Unavailable)?;
    let engine = engine(&pool).await?;
    tracing::info!(engine = %engine, "connected to the database");
    if let Engine::CockroachDb(_) = engine {
        return Err(StoreError::UnsupportedEngine(format!(
            "{engine}: it has no session advisory locks (migrations) and aborts contended \
             transactions by default; use PostgreSQL or Citus"
        )));
    }
    if options.migrate {
        MIGRATOR.run(&pool).await?;
    }
    let store = SqlStore::new(pool.clone(), pool);
    if options.migrate {
        store.build_rollup_if_needed().await?;
    }
    Ok(store)
}

/// The engine behind a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Engine {
    /// PostgreSQL itself (the version string).
    PostgreSql(String),
    /// PostgreSQL with the Citus extension (its version): tables are distributed by migration
    /// 0011, and receivers must connect to the coordinator.
    Citus(String),
    /// YugabyteDB's PostgreSQL layer: unverified.
    YugabyteDb(String),
    /// CockroachDB: refused.
    CockroachDb(String),
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PostgreSql(v) => write!(f, "PostgreSQL ({v})"),
            Self::Citus(v) => write!(f, "Citus {v}"),
            Self::YugabyteDb(v) => write!(f, "YugabyteDB, unverified ({v})"),
            Self::CockroachDb(v) => write!(f, "CockroachDB ({v})"),
        }
    }
}

/// Which engine answers: `version()` names YugabyteDB and CockroachDB; Citus is an extension.
pub(super) async fn engine(pool: &sqlx::PgPool) -> Result<Engine, StoreError> {
    let (version,): (String,) = sqlx::query_as("SELECT version()").fetch_one(pool).await?;
    if version.contains("CockroachDB") {
        return Ok(Engine::CockroachDb(version));
    }
    if version.contains("-YB-") {
        return Ok(Engine::YugabyteDb(version));
    }
    let citus: Option<(String,)> =
        sqlx::query_as("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
            .fetch_optional(pool)
            .await?;
    let short = version.split(" on ").next().unwrap_or(&version).to_owned();
    Ok(match citus {
        Some((citus,)) => Engine::Citus(format!("{citus} on {short}")),
        None => Engine::PostgreSql(short),
    })
}

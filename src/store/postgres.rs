//! PostgreSQL: the production and scale-out backend. Many stateless receivers share one database;
//! uniqueness and row locks there keep them from double-counting or double-sending.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

use super::sql::{Dialect, SqlStore, impl_store};
use super::{Backend, ConnectOptions, StoreError, redact_url};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

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
    if options.migrate {
        MIGRATOR.run(&pool).await?;
    }
    let store = SqlStore::new(pool);
    if options.migrate {
        store.build_rollup_if_needed().await?;
    }
    Ok(store)
}

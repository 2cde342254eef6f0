//! Durable storage behind one object-safe [`Store`] trait, on SQLite (embedded default) or
//! PostgreSQL (shared by many receivers), chosen by the URL scheme.
//!
//! Methods are shaped by use case, not by table, and each is atomic: `record` writes receipts,
//! postbacks and everything derived from them in one transaction, so an acknowledged postback is
//! never half-stored. The SQL lives once, in [`sql`], generic over the two sqlx drivers; the
//! dialect modules add only what differs (connection options, migrations, locking clauses).

mod cube;
mod keys;
mod outbox;
mod postbacks;
mod postgres;
mod quality;
mod reports;
mod rollup;
mod rollup_seal;
mod schema_versions;
mod sql;
mod sqlite;
mod totals;

use std::fmt;
use std::sync::Arc;

pub use crate::domain::access::Role;
pub use crate::domain::aggregate::{
    AggregateFilter, AggregateKey, AggregateRow, CellKey, DateType,
};
pub use crate::domain::postback::{
    Channel, IngestItem, NewPostback, ReceiptInput, ReceiptResult, RecordOutcome, UnsignedValues,
};
pub use crate::domain::postback::{CopyComparison, compare_copies};
pub use outbox::{
    AttemptRecord, Claim, ClaimedDelivery, Completed, Completion, DeliveryQuery, DeliveryState,
    DeliveryUpdate, NewDestination, QueueStats, ReplayCounts, ReplayRequest, RetryResult,
    StoredAttempt, StoredDelivery, StoredDestination,
};
pub use quality::{DeliveryRecord, QualityRecord, StoredAnomaly, StoredMute};
pub use totals::{TotalsRow, TotalsTable};

use crate::skan::OutcomeClass;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine cannot run the store.
    #[error("unsupported database engine: {0}")]
    UnsupportedEngine(String),
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The database cannot be reached or is overloaded; the caller should retry later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A uniqueness rule was violated (for example a key name already taken).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back as the type it should have.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether retrying later may succeed (the database was down or busy).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether the database aborted the transaction for a conflict with another one
    /// (serialization failure, deadlock): running the whole transaction again may succeed.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Unavailable(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return Self::Duplicate(db.message().to_owned());
                }
                let code = db.code();
                // SQLite reports extended codes; their low byte is the primary one: BUSY (5),
                // LOCKED (6), READONLY (8), IOERR (10), FULL (13), CANTOPEN (14).
                let is_sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
                let sqlite_primary = code
                    .as_deref()
                    .filter(|_| is_sqlite)
                    .and_then(|c| c.parse::<u32>().ok())
                    .map(|c| c & 0xff);
                if matches!(sqlite_primary, Some(5 | 6 | 8 | 10 | 13 | 14)) {
                    return Self::Unavailable(err);
                }
                match code.as_deref() {
                    // PostgreSQL: serialization failure, deadlock, lock timeout, cannot connect
                    // now, admin shutdown, crash shutdown, too many connections, database missing.
                    Some(
                        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300"
                        | "3D000",
                    ) => Self::Unavailable(err),
                    _ => Self::Other(err),
                }
            }
            _ => Self::Other(err),
        }
    }
}

/// A stored postback, as listed for support work.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct StoredPostback {
    /// Row id.
    pub id: i64,
    /// Protocol dedup key.
    pub dedup_key: String,
    /// `skadnetwork` or `adattributionkit`.
    pub protocol: String,
    /// SKAdNetwork version.
    pub version: Option<String>,
    /// Ad network.
    pub ad_network_id: String,
    /// Advertised app.
    pub app_id: i64,
    /// `transaction-id` / `postback-identifier`.
    pub transaction_id: String,
    /// `source-identifier`.
    pub source_identifier: Option<String>,
    /// `campaign-id`.
    pub campaign_id: Option<i64>,
    /// `source-app-id` / `publisher-item-identifier`.
    pub source_app_id: Option<i64>,
    /// `source-domain`.
    pub source_domain: Option<String>,
    /// Conversion window.
    #[sqlx(rename = "conversion_window")]
    pub window: i64,
    /// Winning attribution.
    pub did_win: bool,
    /// `download` / `redownload` / `re-engagement`.
    pub conversion_type: Option<String>,
    /// `fidelity-type`.
    pub fidelity_type: Option<i64>,
    /// `click` / `view`.
    pub interaction: Option<String>,
    /// Fine conversion value in effect.
    pub fine_value: Option<i64>,
    /// Coarse conversion value in effect.
    pub coarse_value: Option<String>,
    /// Crowd-anonymity tier hint.
    pub tier_hint: Option<i64>,
    /// `country-code`.
    pub country_code: Option<String>,
    /// `valid`, `invalid` or `unverifiable`.
    pub outcome: String,
    /// Why it is not valid.
    pub reason_code: Option<String>,
    /// Explanation of the reason.
    pub reason_message: Option<String>,
    /// Verified with a development key.
    pub development: bool,
    /// Key used.
    pub key_name: Option<String>,
    /// Channel whose unsigned values are in effect (Apple's copy wins).
    pub values_channel: String,
    /// Copies disagreed on unsigned values.
    pub unsigned_mismatch: bool,
    /// First arrival, unix milliseconds.
    #[sqlx(rename = "first_received_at")]
    pub first_received_at_ms: i64,
    /// Number of receipts (copies and retries).
    pub receipt_count: i64,
    /// UTC day number of the first arrival.
    pub arrival_day: i64,
    /// Earliest estimated install, unix ms.
    #[sqlx(rename = "install_from")]
    pub install_from_ms: i64,
    /// Latest estimated install, unix ms.
    #[sqlx(rename = "install_to")]
    pub install_to_ms: i64,
    /// UTC day number of the estimated install.
    pub install_day: i64,
}

/// One stored receipt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct StoredReceipt {
    /// Row id.
    pub id: i64,
    /// The postback it belongs to (none when rejected).
    pub postback_id: Option<i64>,
    /// Arrival, unix milliseconds.
    #[sqlx(rename = "received_at")]
    pub received_at_ms: i64,
    /// `apple` or `network`.
    pub channel: String,
    /// API key name or import label.
    pub source_name: Option<String>,
    /// `accepted`, `duplicate`, `rejected`, `invalid`, `unverifiable`.
    pub result: String,
    /// Error code for rejected receipts.
    pub error_code: Option<String>,
    /// Error field for rejected receipts.
    pub error_field: Option<String>,
    /// Error message for rejected receipts.
    pub error_message: Option<String>,
    /// The bytes as received.
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// Filter and page for listing postbacks; newest first.
#[derive(Debug, Clone, Default)]
pub struct PostbackQuery {
    /// Exact `transaction-id` / `postback-identifier`.
    pub transaction_id: Option<String>,
    /// Signature outcome.
    pub outcome: Option<OutcomeClass>,
    /// First received at or after (unix ms).
    pub since_ms: Option<i64>,
    /// Only ids below this (the cursor).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// Aggregates of one app over a day range.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    /// The app.
    pub app_id: i64,
    /// Arrival or install day.
    pub date_type: DateType,
    /// First day number, inclusive.
    pub from_day: i64,
    /// Last day number, inclusive.
    pub to_day: i64,
}

/// What a report reads: one app's aggregates over a day range, filtered, grouped in the database
/// by the dimensions the report needs and summed.
#[derive(Debug, Clone)]
pub struct ReportSelection {
    /// The app.
    pub app_id: i64,
    /// Which day the range and the date grouping use.
    pub date_type: DateType,
    /// First day number, inclusive.
    pub from_day: i64,
    /// Last day number, inclusive.
    pub to_day: i64,
    /// Filters (values are bound, never spliced).
    pub filters: AggregateFilter,
    /// Keep the day of `date_type`, for rows by day, week or month: a store may return any day
    /// of a week or month for the whole week or month (the first of the range in it).
    pub by_date: Option<DayBucket>,
    /// Keep the ad network.
    pub by_ad_network: bool,
    /// Keep the source identifier and campaign.
    pub by_source: bool,
    /// Keep the interaction type.
    pub by_interaction: bool,
    /// Keep protocol and version.
    pub by_version: bool,
    /// Group by a value, an event or the tier (needs each value's own counts).
    pub by_value: bool,
    /// Which table to read.
    pub source: ReportSource,
    /// Install days where the decoding schema changes, ascending. Unless install days are kept,
    /// `install_day` comes back as a representative day of its schema period, which is all
    /// decoding needs, so periods and not days multiply the rows.
    pub schema_period_starts: Vec<i64>,
}

impl ReportSelection {
    /// Whether rows keep a day (grouped by day, week or month).
    #[must_use]
    pub fn by_day(&self) -> bool {
        self.by_date.is_some()
    }
}

/// What a report groups kept days into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayBucket {
    /// Each day alone.
    Day,
    /// Weeks from Monday.
    Week,
    /// Calendar months.
    Month,
}

impl DayBucket {
    /// The first day of the bucket holding `date`.
    #[must_use]
    pub fn first_day(self, date: chrono::NaiveDate) -> chrono::NaiveDate {
        use chrono::Datelike as _;
        match self {
            Self::Day => date,
            Self::Week => {
                date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday()))
            }
            Self::Month => date.with_day(1).unwrap_or(date),
        }
    }

    /// The last day number of the bucket holding `day`.
    #[must_use]
    pub fn last_day(self, day: i64) -> i64 {
        let first = self.first_day(crate::skan::day_from_number(day));
        let next = match self {
            Self::Day => first.checked_add_days(chrono::Days::new(1)),
            Self::Week => first.checked_add_days(chrono::Days::new(7)),
            Self::Month => first.checked_add_months(chrono::Months::new(1)),
        };
        next.map_or(day, |next| crate::skan::day_number(next) - 1)
    }

    /// The buckets of the days `from..=to` as `(first, last)` day numbers, clipped to the range.
    #[must_use]
    pub fn split(self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = self.last_day(start).clamp(start, to);
            out.push((start, end));
            start = end + 1;
        }
        out
    }
}

/// The table a report reads. `Auto` picks the smallest one that has every dimension the report
/// needs; the others exist to show they all agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportSource {
    /// The smallest table that can answer.
    #[default]
    Auto,
    /// The detailed aggregates.
    Aggregates,
    /// The value cube (when it can answer).
    ValueCube,
    /// The report rollup (source rows, or version rows when a report needs no campaign).
    Rollup,
}

/// What a report reads: aggregate rows (detailed or expanded from the value cube), totals rows,
/// or groups of cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportData {
    /// One row per value.
    Rows(Vec<AggregateRow>),
    /// One row per (day, schema period, network, window) with all its counts.
    Totals(TotalsTable),
    /// One group per set of dimensions above the values, with its counts by cell: what the
    /// rollup gives a report grouped by value, without an aggregate key (and its strings) per
    /// count.
    Cells(Vec<CellGroup>),
}

/// The dimensions of one report group above its values. Dimensions the report does not group by
/// are `''` / `-1` / 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportGroup {
    /// The day reports group by (arrival or install, as asked), 0 when not grouped by day.
    pub day: i64,
    /// The install day decoding uses: the day itself, or a day of its schema period.
    pub install_day: i64,
    /// Ad network.
    pub ad_network_id: String,
    /// `source-identifier` (only the source rollup keeps it).
    pub source_identifier: String,
    /// `campaign-id` (SKAdNetwork before 4.0).
    pub campaign_id: i64,
    /// Protocol (only the version rollup keeps it).
    pub protocol: String,
    /// SKAdNetwork version.
    pub version: String,
    /// `click` / `view`.
    pub interaction: String,
}

/// The counts of one report group by cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellGroup {
    /// The group.
    pub group: ReportGroup,
    /// `(cell, postbacks, of those with copies that disagreed)`, no count zero.
    pub cells: Vec<(CellKey, i64, i64)>,
}

/// A schema version to store.
#[derive(Debug, Clone)]
pub struct NewSchemaVersion {
    /// The app.
    pub app_id: i64,
    /// When it takes effect, unix ms.
    pub effective_from_ms: i64,
    /// Who made it (API key name, `config`, or the CLI's `--author`).
    pub author: String,
    /// Why.
    pub note: Option<String>,
    /// The schema document, JSON.
    pub document: String,
    /// When it was stored, unix ms.
    pub created_at_ms: i64,
}

/// A stored schema version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct StoredSchemaVersion {
    /// The app.
    pub app_id: i64,
    /// Version number, 1 for the first.
    pub version: i64,
    /// When it takes effect, unix ms.
    #[sqlx(rename = "effective_from")]
    pub effective_from_ms: i64,
    /// Who made it.
    pub author: String,
    /// Why.
    pub note: Option<String>,
    /// The schema document, JSON.
    pub document: String,
    /// When it was stored, unix ms.
    #[sqlx(rename = "created_at")]
    pub created_at_ms: i64,
}

/// A new API key to store (the secret itself is never stored).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Unique name, shown in receipts.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// SHA-256 of the secret, hex.
    pub key_hash: String,
    /// The first characters of the secret, to recognise it in lists.
    pub key_prefix: String,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// Networks the key may be used from; empty: anywhere.
    pub allowed_networks: Vec<ipnet::IpNet>,
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// First characters of the secret.
    pub key_prefix: String,
    /// Creation time, unix ms.
    pub created_at_ms: i64,
    /// Revocation time, unix ms.
    pub revoked_at_ms: Option<i64>,
    /// Networks the key may be used from; empty: anywhere.
    pub allowed_networks: Vec<ipnet::IpNet>,
}

/// What one pass of [`ReportStore::seal_rollup`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealSummary {
    /// Blocks sealed: a block's rows of one network, family and development flag, written as
    /// up to 16 values (one per chunk of source identifiers).
    pub blocks: u64,
    /// Rollup rows folded into them.
    pub rows: u64,
    /// The longest of the blocks' transactions: on SQLite, how long a seal kept writers waiting.
    pub longest: std::time::Duration,
}

/// An app the receiver knows: the days its postbacks arrived on and its schema versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AppSummary {
    /// App Store ID.
    pub app_id: i64,
    /// First arrival day of a postback (UTC), when any arrived.
    pub first_arrival_day: Option<chrono::NaiveDate>,
    /// Last arrival day of a postback (UTC), when any arrived.
    pub last_arrival_day: Option<chrono::NaiveDate>,
    /// Schema versions stored (0: none yet).
    pub schema_versions: i64,
}

/// Which database this is, whether it answers, and shutting it down.
#[async_trait::async_trait]
pub trait StoreHealth: Send + Sync + fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Cheap round trip to prove the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Embedded migrations not yet applied to this database (0 when up to date).
    async fn pending_migrations(&self) -> Result<usize, StoreError>;

    /// Close every connection; later calls fail as unavailable.
    async fn close(&self);
}

/// Postbacks and their receipts: recording arrivals in one transaction, reading them back.
#[async_trait::async_trait]
pub trait PostbackStore: Send + Sync + fmt::Debug {
    /// Record receipts and postbacks in one transaction, returning what happened to each item in
    /// order. Nothing is written unless everything is.
    async fn record(&self, items: &[IngestItem]) -> Result<Vec<RecordOutcome>, StoreError>;

    /// One stored postback.
    async fn postback(&self, id: i64) -> Result<Option<StoredPostback>, StoreError>;

    /// One stored postback of a known app (read from one shard on a distributed database).
    async fn postback_in_app(
        &self,
        app_id: i64,
        id: i64,
    ) -> Result<Option<StoredPostback>, StoreError>;

    /// The receipts of one postback, oldest first.
    async fn receipts(&self, postback_id: i64) -> Result<Vec<StoredReceipt>, StoreError>;

    /// The receipts of one postback of a known app (one shard on a distributed database).
    async fn receipts_in_app(
        &self,
        app_id: i64,
        postback_id: i64,
    ) -> Result<Vec<StoredReceipt>, StoreError>;

    /// Postbacks matching a filter, newest first.
    async fn list_postbacks(
        &self,
        query: &PostbackQuery,
    ) -> Result<Vec<StoredPostback>, StoreError>;
}

/// API keys (only their hashes).
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Store a new API key; a taken name is [`StoreError::Duplicate`].
    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError>;

    /// The unrevoked key with this secret hash.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, revoked or not.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// How many keys are revoked and the latest revocation: a mark that changes whenever any key
    /// is revoked, cheap enough to read every second.
    async fn revocation_mark(&self) -> Result<(i64, Option<i64>), StoreError>;

    /// Revoke a key by name; false when no such unrevoked key exists.
    async fn revoke_api_key(&self, name: &str, at_ms: i64) -> Result<bool, StoreError>;
}

/// Conversion-value schema versions.
#[async_trait::async_trait]
pub trait SchemaStore: Send + Sync + fmt::Debug {
    /// Store the next version of an app's schema (numbered from 1). A concurrent writer taking the
    /// same number gives [`StoreError::Duplicate`]; retry.
    async fn insert_schema_version(
        &self,
        version: &NewSchemaVersion,
    ) -> Result<StoredSchemaVersion, StoreError>;

    /// Every version of an app's schema, oldest first.
    async fn schema_versions(&self, app_id: i64) -> Result<Vec<StoredSchemaVersion>, StoreError>;
}

/// The aggregates and the report tables kept beside them.
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync + fmt::Debug {
    /// Aggregates of one app over a day range.
    async fn aggregates(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>, StoreError>;

    /// Aggregates grouped for a report; dimensions not kept come back as `''` / `-1` / `0`.
    /// Reads the report cube when the selection needs none of the dimensions it lacks (source
    /// identifier, version, interaction), the detailed aggregates otherwise; both give the same
    /// answer.
    async fn report_rows(&self, selection: &ReportSelection) -> Result<ReportData, StoreError>;

    /// Add counts to aggregates directly, without postbacks (bulk loading of benchmark data and
    /// of aggregates kept elsewhere). One transaction.
    async fn add_aggregates(&self, rows: &[AggregateRow]) -> Result<(), StoreError>;

    /// Whether anything (postbacks or a schema) is known about this app.
    async fn app_exists(&self, app_id: i64) -> Result<bool, StoreError>;

    /// Every app with postbacks or a schema, by App Store ID.
    async fn list_apps(&self) -> Result<Vec<AppSummary>, StoreError>;

    /// Fold the rollup rows of blocks that end before `before_day` into sealed values per block,
    /// network, family, development flag and chunk of source identifiers, where they are new or
    /// a quarter as many as the block's values already hold. Reports read the same counts before and after; campaign shapes read
    /// far fewer rows after. Each value is written in a transaction of its own.
    async fn seal_rollup(&self, before_day: i64) -> Result<SealSummary, StoreError>;
}

/// Destinations and the delivery outbox: claims, completions, retries, replays.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync + fmt::Debug {
    /// Store a new destination; a taken name is [`StoreError::Duplicate`].
    async fn create_destination(
        &self,
        new: &NewDestination,
    ) -> Result<StoredDestination, StoreError>;

    /// Replace a destination's name, switch and document (`at_ms` is the change time); enabling clears
    /// an automatic disabling. `None` when there is no such destination.
    async fn update_destination(
        &self,
        id: i64,
        change: &NewDestination,
    ) -> Result<Option<StoredDestination>, StoreError>;

    /// Delete a destination with its deliveries and their attempt log; false when there was none.
    async fn delete_destination(&self, id: i64) -> Result<bool, StoreError>;

    /// One destination.
    async fn destination(&self, id: i64) -> Result<Option<StoredDestination>, StoreError>;

    /// One destination, by name.
    async fn destination_by_name(
        &self,
        name: &str,
    ) -> Result<Option<StoredDestination>, StoreError>;

    /// Every destination, oldest first.
    async fn list_destinations(&self) -> Result<Vec<StoredDestination>, StoreError>;

    /// Lease up to `max` due deliveries of one destination, within its concurrency cap and rate
    /// limit (shared by every receiver on the database).
    async fn claim_deliveries(
        &self,
        destination_id: i64,
        lease: &str,
        now_ms: i64,
        max: u32,
    ) -> Result<Claim, StoreError>;

    /// Log attempts and move their deliveries on, in one transaction; each only if its lease is
    /// still held. Tracks each destination's failures and disables it when its rules say so.
    async fn complete_deliveries(
        &self,
        completions: &[Completion],
    ) -> Result<Vec<Completed>, StoreError>;

    /// Deliveries matching a filter, newest first.
    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<StoredDelivery>, StoreError>;

    /// One delivery.
    async fn delivery(&self, id: i64) -> Result<Option<StoredDelivery>, StoreError>;

    /// The delivery of one postback to one destination.
    async fn delivery_for(
        &self,
        destination_id: i64,
        postback_id: i64,
    ) -> Result<Option<StoredDelivery>, StoreError>;

    /// A delivery's attempts, oldest first.
    async fn delivery_attempts(&self, delivery_id: i64) -> Result<Vec<StoredAttempt>, StoreError>;

    /// Make a delivery due now: a pending one keeps its schedule, a finished one gets one manual
    /// attempt.
    async fn retry_delivery(&self, id: i64, now_ms: i64) -> Result<RetryResult, StoreError>;

    /// Queue a time range of postbacks for a destination again: deliveries are created where
    /// missing and dead ones (optionally delivered and skipped ones too) are queued again.
    async fn replay(&self, request: &ReplayRequest) -> Result<ReplayCounts, StoreError>;

    /// Pending deliveries per destination, for metrics.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError>;
}

/// Every storage concern at once: what the service wires up and hands around as
/// `Arc<dyn Store>`. Services that need one concern take the narrow trait (an `Arc<dyn Store>`
/// converts to `Arc<dyn SchemaStore>` and the others).
pub trait Store:
    StoreHealth + PostbackStore + KeyStore + SchemaStore + ReportStore + OutboxStore + QualityStore
{
}

impl<T> Store for T where
    T: StoreHealth
        + PostbackStore
        + KeyStore
        + SchemaStore
        + ReportStore
        + OutboxStore
        + QualityStore
{
}

/// What data-quality monitoring reads and writes: postbacks and deliveries of a day range, the
/// anomalies found, mutes, and the leases receivers take turns with.
#[async_trait::async_trait]
pub trait QualityStore: Send + Sync + fmt::Debug {
    /// Every production postback of an app that first arrived in a day range, with how many of
    /// its copies came from Apple and from networks.
    async fn quality_records(
        &self,
        app_id: i64,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<QualityRecord>, StoreError>;

    /// Deliveries of an app's postbacks created since a time.
    async fn delivery_records(
        &self,
        app_id: i64,
        since_ms: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Store an anomaly unless its app, network, metric and day have one, with a delivery for
    /// each alert destination admitting it: its id when stored by this call (so exactly one
    /// receiver alerts).
    async fn insert_anomaly(&self, anomaly: &StoredAnomaly) -> Result<Option<i64>, StoreError>;

    /// One anomaly of an app.
    async fn anomaly(&self, app_id: i64, id: i64) -> Result<Option<StoredAnomaly>, StoreError>;

    /// An app's anomalies of a day range, newest first.
    async fn anomalies(
        &self,
        app_id: i64,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<StoredAnomaly>, StoreError>;

    /// Mark an anomaly acknowledged (the first acknowledgement stays); `None` when there is none.
    async fn acknowledge_anomaly(
        &self,
        app_id: i64,
        id: i64,
        by: &str,
        at_ms: i64,
    ) -> Result<Option<StoredAnomaly>, StoreError>;

    /// Mute (`true`) or unmute a metric of a network; whether anything changed.
    async fn set_mute(&self, mute: &StoredMute, muted: bool) -> Result<bool, StoreError>;

    /// An app's mutes.
    async fn mutes(&self, app_id: i64) -> Result<Vec<StoredMute>, StoreError>;

    /// Take or keep a named lease; true when `holder` holds it until `now_ms + ttl_ms`.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// Connect to the database the URL names, creating an SQLite file if needed, and apply the
/// embedded migrations.
///
/// # Errors
/// [`StoreError::UnsupportedUrl`] for other schemes; connection and migration errors otherwise.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(sqlite::connect(url, options).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(postgres::connect(url, options).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    };
    Ok(store)
}

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Largest pool size.
    pub max_connections: u32,
    /// Apply migrations on connect.
    pub migrate: bool,
    /// How long to wait for a connection before reporting the database unavailable.
    pub acquire_timeout: std::time::Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            migrate: true,
            acquire_timeout: std::time::Duration::from_secs(3),
        }
    }
}

/// A database URL safe to log: the password is replaced.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_they_should() {
        assert!(Role::Admin.allows(Role::Ingest));
        assert!(Role::Editor.allows(Role::Viewer));
        assert!(!Role::Editor.allows(Role::Admin));
        assert!(!Role::Viewer.allows(Role::Editor));
        assert!(!Role::Ingest.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Ingest));
    }

    #[test]
    fn passwords_never_appear_in_a_redacted_url() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}

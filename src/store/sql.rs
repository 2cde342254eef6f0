//! The SQL both backends share, written once and generic over the sqlx driver.
//!
//! Statements use only the portable subset (`$N` placeholders, `ON CONFLICT`, `RETURNING`,
//! integer unix-millisecond times); anything dialect-specific comes from [`Dialect`].

use std::collections::BTreeMap;
use std::future::Future;

use sqlx::migrate::Migrator;
use sqlx::{Database, FromRow, Pool, QueryBuilder, Row as _, Transaction};

use super::{
    AggregateKey, AggregateQuery, AggregateRow, ApiKey, Backend, DateType, IngestItem, NewApiKey,
    NewPostback, NewSchemaVersion, PostbackQuery, ReceiptInput, ReceiptResult, RecordOutcome,
    ReportData, ReportSelection, ReportSource, Role, StoreError, StoredPostback, StoredReceipt,
    StoredSchemaVersion, TotalsRow, UnsignedValues, cube, totals,
};
use crate::domain::postback::{CopyComparison, compare_copies};
use crate::error_body::ErrorBody;
use crate::skan::{CoarseValue, InteractionType, OutcomeClass};

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
}

/// A store over one sqlx pool; `SqlStore<Sqlite>` and `SqlStore<Postgres>` are the two backends.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
}

pub(crate) const POSTBACK_COLUMNS: &str = "id, dedup_key, protocol, version, ad_network_id, app_id, \
     transaction_id, source_identifier, campaign_id, source_app_id, source_domain, \
     conversion_window, did_win, conversion_type, fidelity_type, interaction, fine_value, \
     coarse_value, tier_hint, country_code, outcome, reason_code, reason_message, development, \
     key_name, values_channel, unsigned_mismatch, first_received_at, receipt_count, arrival_day, \
     install_from, install_to, install_day";

const INSERT_POSTBACK: &str = "INSERT INTO postbacks (identity_key, dedup_key, protocol, version, \
     ad_network_id, app_id, transaction_id, source_identifier, campaign_id, source_app_id, \
     source_domain, conversion_window, did_win, conversion_type, fidelity_type, interaction, \
     fine_value, coarse_value, tier_hint, country_code, outcome, reason_code, reason_message, \
     development, key_name, values_channel, first_received_at, arrival_day, install_from, \
     install_to, install_day) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31) \
     ON CONFLICT (identity_key) DO NOTHING RETURNING id";

const SELECT_FOR_COPY: &str = "SELECT id, fine_value, coarse_value, interaction, values_channel, \
     unsigned_mismatch, app_id, arrival_day, install_day, ad_network_id, source_identifier, \
     campaign_id, protocol, version, conversion_window, fidelity_type, conversion_type, did_win, \
     development, tier_hint, outcome, first_received_at FROM postbacks WHERE identity_key = $1";

const MOVE_FIRST_ARRIVAL: &str = "UPDATE postbacks SET first_received_at = $2, arrival_day = $3, \
     install_from = $4, install_to = $5, install_day = $6 WHERE id = $1";

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

const AGGREGATE_COLUMNS: &str = "app_id, arrival_day, install_day, ad_network_id, \
     source_identifier, campaign_id, protocol, version, conversion_window, interaction, \
     conversion_type, did_win, development, fine_value, coarse_value, tier_hint, outcome, \
     postbacks, unsigned_mismatch";

const SCHEMA_VERSION_COLUMNS: &str =
    "app_id, version, effective_from, author, note, document, created_at";

const UPDATE_ON_COPY: &str = "UPDATE postbacks SET receipt_count = receipt_count + 1, \
     fine_value = $2, coarse_value = $3, interaction = $4, values_channel = $5, \
     unsigned_mismatch = (unsigned_mismatch OR $6) WHERE id = $1";

const INSERT_RECEIPT: &str = "INSERT INTO receipts (postback_id, received_at, channel, \
     source_name, result, error_code, error_field, error_message, raw) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

const SELECT_RECEIPTS: &str = "SELECT id, postback_id, received_at, channel, source_name, result, \
     error_code, error_field, error_message, raw FROM receipts WHERE postback_id = $1 ORDER BY id";

const INSERT_API_KEY: &str = "INSERT INTO api_keys (name, role, key_hash, key_prefix, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";

const API_KEY_COLUMNS: &str = "id, name, role, key_prefix, created_at, revoked_at";

/// An aggregate as the database returns it (columns named as in the `aggregates` table).
#[derive(FromRow)]
pub(crate) struct AggregateRecord {
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

#[derive(FromRow, Clone)]
pub(crate) struct CopyRow {
    id: i64,
    fine_value: Option<i64>,
    coarse_value: Option<String>,
    interaction: Option<String>,
    values_channel: String,
    unsigned_mismatch: bool,
    app_id: i64,
    arrival_day: i64,
    install_day: i64,
    ad_network_id: String,
    source_identifier: Option<String>,
    campaign_id: Option<i64>,
    protocol: String,
    version: Option<String>,
    conversion_window: i64,
    fidelity_type: Option<i64>,
    conversion_type: Option<String>,
    did_win: bool,
    development: bool,
    tier_hint: Option<i64>,
    outcome: String,
    first_received_at: i64,
}

impl CopyRow {
    /// The aggregate key the stored postback is currently counted under.
    fn aggregate_key(&self, values: &UnsignedValues) -> AggregateKey {
        AggregateKey {
            app_id: self.app_id,
            arrival_day: self.arrival_day,
            install_day: self.install_day,
            ad_network_id: self.ad_network_id.clone(),
            source_identifier: self.source_identifier.clone().unwrap_or_default(),
            campaign_id: self.campaign_id.unwrap_or(-1),
            protocol: self.protocol.clone(),
            version: self.version.clone().unwrap_or_default(),
            window: self.conversion_window,
            interaction: String::new(),
            conversion_type: self.conversion_type.clone().unwrap_or_default(),
            did_win: self.did_win,
            development: self.development,
            fine_value: -1,
            coarse_value: String::new(),
            tier_hint: self.tier_hint.unwrap_or(-1),
            outcome: self.outcome.clone(),
        }
        .with_values(values, self.fidelity_type)
    }
}

/// A receipt written with the group's new postbacks: item index, receipt, postback id, result,
/// error.
type FreshReceipt<'a> =
    (usize, &'a ReceiptInput, Option<i64>, ReceiptResult, Option<&'a ErrorBody>);

/// Rows per multi-row statement. Only these few shapes occur, so each is prepared once and
/// reused from the statement cache (a shape per row count would make every group's statements new
/// to the database: planned again on PostgreSQL, held in memory on both). 128 rows of the widest
/// table (the cube, 82 columns) bind 10,496 parameters, well under SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: [usize; 4] = [128, 32, 8, 1];

/// `rows` cut into pieces of the sizes in [`ROWS_PER_STATEMENT`], largest first.
fn in_statement_sized_chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    for size in ROWS_PER_STATEMENT {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            chunks.push(chunk);
            rows = rest;
        }
    }
    chunks
}

/// `INSERT INTO t (columns) ` of a single-row upsert, to append many rows of values to.
fn upsert_head<D: Database>(upsert: &str) -> QueryBuilder<D> {
    let head = upsert.split_once(" VALUES (").map_or(upsert, |(head, _)| head);
    QueryBuilder::new(format!("{head} "))
}

/// The ` ON CONFLICT ...` clause of a single-row upsert.
fn upsert_tail(upsert: &str) -> &str {
    upsert.find(" ON CONFLICT").map_or("", |at| &upsert[at..])
}

/// Aggregate and cube changes of one transaction, merged by key and applied in key order (a
/// fixed lock order, so concurrent PostgreSQL writers cannot deadlock on these rows).
#[derive(Default)]
struct Deltas {
    aggregates: BTreeMap<AggregateKey, (i64, i64)>,
    cube: BTreeMap<cube::CubeKey, cube::Counts>,
    totals: BTreeMap<totals::TotalsKey, totals::Counts>,
}

impl Deltas {
    fn add(&mut self, key: AggregateKey, postbacks: i64, mismatch: i64) {
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

#[derive(FromRow)]
pub(crate) struct ApiKeyRow {
    id: i64,
    name: String,
    role: String,
    key_prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let role = Role::from_name(&row.role).ok_or_else(|| {
            StoreError::Corrupt(format!("api key {}: role {:?}", row.name, row.role))
        })?;
        Ok(Self {
            id: row.id,
            name: row.name,
            role,
            key_prefix: row.key_prefix,
            created_at_ms: row.created_at,
            revoked_at_ms: row.revoked_at,
        })
    }
}

fn values_from_columns(
    fine: Option<i64>,
    coarse: Option<&str>,
    interaction: Option<&str>,
) -> UnsignedValues {
    UnsignedValues {
        fine_value: fine.and_then(|v| u8::try_from(v).ok()),
        coarse_value: coarse.and_then(CoarseValue::from_wire),
        interaction: match interaction {
            Some("click") => Some(InteractionType::Click),
            Some("view") => Some(InteractionType::View),
            _ => None,
        },
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
        for<'r> $crate::store::sql::CopyRow: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::sql::ApiKeyRow: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredSchemaVersion: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::sql::AggregateRecord: sqlx::FromRow<'r, DB::Row>,
        for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (i64, String): sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredDestination: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredDelivery: sqlx::FromRow<'r, DB::Row>,
        for<'r> $crate::store::StoredAttempt: sqlx::FromRow<'r, DB::Row>,
        {
            $($body)*
        }
    };
}
pub(crate) use sql_impl;

fn receipt_result_for(outcome: OutcomeClass) -> ReceiptResult {
    match outcome {
        OutcomeClass::Valid => ReceiptResult::Accepted,
        OutcomeClass::Invalid => ReceiptResult::Invalid,
        OutcomeClass::Unverifiable => ReceiptResult::Unverifiable,
    }
}

sql_impl! {
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
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

    pub(crate) async fn record(
        &self,
        items: &[IngestItem],
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        // Rows are written in identity-key order (a stable sort keeps arrival order among copies
        // of one postback), so concurrent PostgreSQL writers take row locks in the same order.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| match &items[i] {
            IngestItem::Rejected { .. } => None,
            IngestItem::Checked { postback, .. } => Some(postback.identity_key.as_str()),
        });
        let mut tx = DB::begin_write(&self.pool).await?;
        let mut outcomes = vec![None; items.len()];
        let mut deltas = Deltas::default();
        let mut stored = Vec::new();

        // New postbacks first, many per statement: the first copy of each identity in the group.
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| match &items[i] {
                IngestItem::Checked { postback, .. } => seen.insert(postback.identity_key.as_str()),
                IngestItem::Rejected { .. } => false,
            })
            .collect();
        let mut is_first = vec![false; items.len()];
        for &i in &firsts {
            is_first[i] = true;
        }
        let inserted = Self::insert_postbacks(&mut tx, items, &firsts).await?;

        // Their receipts and those of rejected items, many per statement, before any copy's.
        let mut fresh = Vec::new();
        for &i in &order {
            match &items[i] {
                IngestItem::Rejected { receipt, error } => {
                    fresh.push((i, receipt, None, ReceiptResult::Rejected, Some(error)));
                }
                IngestItem::Checked { receipt, postback } => {
                    if let Some(&id) = inserted.get(postback.identity_key.as_str())
                        && is_first[i]
                    {
                        let result = receipt_result_for(postback.outcome);
                        fresh.push((i, receipt, Some(id), result, None));
                    }
                }
            }
        }
        let receipt_ids = Self::insert_receipts(&mut tx, &fresh).await?;
        for (&(i, receipt, postback_id, _, _), receipt_id) in fresh.iter().zip(receipt_ids) {
            outcomes[i] = Some(match (&items[i], postback_id) {
                (IngestItem::Checked { postback, .. }, Some(postback_id)) => {
                    deltas.add(AggregateKey::of(postback), 1, 0);
                    stored.push((postback_id, postback.as_ref(), receipt.received_at_ms));
                    if postback.outcome == OutcomeClass::Valid {
                        RecordOutcome::Accepted { postback_id, receipt_id }
                    } else {
                        RecordOutcome::Quarantined {
                            postback_id,
                            receipt_id,
                            outcome: postback.outcome,
                            repeat: false,
                        }
                    }
                }
                _ => RecordOutcome::Rejected { receipt_id },
            });
        }

        // Copies of stored postbacks (earlier, or earlier in this group), one at a time.
        for &i in &order {
            if outcomes[i].is_some() {
                continue;
            }
            if let IngestItem::Checked { receipt, postback } = &items[i] {
                outcomes[i] =
                    Some(Self::record_copy(&mut tx, receipt, postback, &mut deltas).await?);
            }
        }
        Self::apply_deltas(&mut tx, deltas).await?;
        // The outbox: deliveries commit with their postbacks or not at all.
        Self::enqueue_deliveries(&mut tx, &stored).await?;
        tx.commit().await?;
        Ok(outcomes.into_iter().flatten().collect())
    }

    pub(crate) async fn postback(&self, id: i64) -> Result<Option<StoredPostback>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {POSTBACK_COLUMNS} FROM postbacks WHERE id = "
        ));
        query.push_bind(id);
        Ok(query.build_query_as::<StoredPostback>().fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn receipts(
        &self,
        postback_id: i64,
    ) -> Result<Vec<StoredReceipt>, StoreError> {
        Ok(sqlx::query_as(SELECT_RECEIPTS).bind(postback_id).fetch_all(&self.pool).await?)
    }

    pub(crate) async fn list_postbacks(
        &self,
        filter: &PostbackQuery,
    ) -> Result<Vec<StoredPostback>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {POSTBACK_COLUMNS} FROM postbacks WHERE 1 = 1"
        ));
        if let Some(transaction_id) = &filter.transaction_id {
            query.push(" AND transaction_id = ").push_bind(transaction_id.as_str());
        }
        if let Some(outcome) = filter.outcome {
            query.push(" AND outcome = ").push_bind(outcome.as_str());
        }
        if let Some(since) = filter.since_ms {
            query.push(" AND first_received_at >= ").push_bind(since);
        }
        if let Some(before) = filter.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(filter.limit);
        Ok(query.build_query_as::<StoredPostback>().fetch_all(&self.pool).await?)
    }

    pub(crate) async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError> {
        let (id,): (i64,) = sqlx::query_as(INSERT_API_KEY)
            .bind(key.name.as_str())
            .bind(key.role.as_str())
            .bind(key.key_hash.as_str())
            .bind(key.key_prefix.as_str())
            .bind(key.created_at_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(ApiKey {
            id,
            name: key.name.clone(),
            role: key.role,
            key_prefix: key.key_prefix.clone(),
            created_at_ms: key.created_at_ms,
            revoked_at_ms: None,
        })
    }

    pub(crate) async fn api_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL AND key_hash = "
        ));
        query.push_bind(key_hash);
        let row = query.build_query_as::<ApiKeyRow>().fetch_optional(&self.pool).await?;
        row.map(ApiKey::try_from).transpose()
    }

    pub(crate) async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut query =
            QueryBuilder::<DB>::new(format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id"));
        let rows = query.build_query_as::<ApiKeyRow>().fetch_all(&self.pool).await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    pub(crate) async fn insert_schema_version(
        &self,
        new: &NewSchemaVersion,
    ) -> Result<StoredSchemaVersion, StoreError> {
        let mut tx = DB::begin_write(&self.pool).await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM schema_versions WHERE app_id = $1",
        )
        .bind(new.app_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO schema_versions (app_id, version, effective_from, author, note, document, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.app_id)
        .bind(next)
        .bind(new.effective_from_ms)
        .bind(new.author.as_str())
        .bind(new.note.as_deref())
        .bind(new.document.as_str())
        .bind(new.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredSchemaVersion {
            app_id: new.app_id,
            version: next,
            effective_from_ms: new.effective_from_ms,
            author: new.author.clone(),
            note: new.note.clone(),
            document: new.document.clone(),
            created_at_ms: new.created_at_ms,
        })
    }

    pub(crate) async fn schema_versions(
        &self,
        app_id: i64,
    ) -> Result<Vec<StoredSchemaVersion>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions WHERE app_id = "
        ));
        query.push_bind(app_id).push(" ORDER BY version");
        Ok(query.build_query_as::<StoredSchemaVersion>().fetch_all(&self.pool).await?)
    }

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
        match s.source {
            ReportSource::Auto if totals_can => {
                return self.totals_rows(s).await.map(ReportData::Totals);
            }
            ReportSource::Auto | ReportSource::ValueCube if cube_can => {
                return self.cube_rows(s).await.map(ReportData::Rows);
            }
            _ => {}
        }
        let mut q = QueryBuilder::<DB>::new("SELECT app_id, ");
        q.push(keep(
            s.by_day && s.date_type == DateType::Arrival,
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
        if !f.version.is_empty() {
            let aak = f.version.iter().any(|v| v == "adattributionkit");
            let versions: Vec<&str> =
                f.version.iter().map(String::as_str).filter(|v| *v != "adattributionkit").collect();
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
        Self::push_bool(&mut q, "did_win", &f.did_win);
        Self::push_bool(&mut q, "development", &f.development);
        Self::push_redownload(&mut q, &f.redownload);
        q.push(" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17");
        let rows = q.build_query_as::<AggregateRecord>().fetch_all(&self.pool).await?;
        Ok(ReportData::Rows(rows.into_iter().map(AggregateRow::from).collect()))
    }

    /// `AND column IN ($1, $2, ...)` when there are values.
    fn push_in(q: &mut QueryBuilder<DB>, column: &str, values: &[String]) {
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

    /// `AND column = $1` when exactly one of true and false is asked for.
    fn push_bool(q: &mut QueryBuilder<DB>, column: &str, values: &[bool]) {
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

    pub(crate) async fn add_aggregates(&self, rows: &[AggregateRow]) -> Result<(), StoreError> {
        let mut deltas = Deltas::default();
        for row in rows {
            deltas.add(row.key.clone(), row.postbacks, row.unsigned_mismatch);
        }
        let mut tx = DB::begin_write(&self.pool).await?;
        Self::apply_deltas(&mut tx, deltas).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_deltas(
        tx: &mut Transaction<'static, DB>,
        deltas: Deltas,
    ) -> Result<(), StoreError> {
        // Many rows per statement: each statement is a round trip to the database (on SQLite, to
        // its worker thread), and a group touches a few rows per postback.
        let aggregates: Vec<_> =
            deltas.aggregates.iter().filter(|(_, (p, m))| *p != 0 || *m != 0).collect();
        for chunk in in_statement_sized_chunks(&aggregates) {
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
        for chunk in in_statement_sized_chunks(&cells) {
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
        for chunk in in_statement_sized_chunks(&cells) {
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
        Ok(())
    }

    /// The install day a grouped row comes back with: the day itself when install days are
    /// grouped by, otherwise a day of its schema period (the day before the first period for
    /// earlier days), which decodes the same and keeps the groups few.
    fn push_install_day(q: &mut QueryBuilder<DB>, s: &ReportSelection, column: &str) {
        if s.by_day && s.date_type == DateType::Install {
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
    fn push_summary_selection(q: &mut QueryBuilder<DB>, table: &str, s: &ReportSelection) {
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
    async fn cube_rows(&self, s: &ReportSelection) -> Result<Vec<AggregateRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT app_id, ");
        q.push(if s.by_day { "day" } else { "CAST(0 AS BIGINT) AS day" });
        q.push(", ");
        Self::push_install_day(&mut q, s, "install_day");
        q.push(if s.by_ad_network { ", ad_network_id" } else { ", '' AS ad_network_id" });
        q.push(", conversion_window, did_win, conversion_type, tier_hint, outcome, mismatched, ");
        q.push(cube::SUMS.as_str());
        Self::push_summary_selection(&mut q, "report_cube", s);
        let f = &s.filters;
        Self::push_bool(&mut q, "did_win", &f.did_win);
        Self::push_redownload(&mut q, &f.redownload);
        q.push(" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10");
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

    /// Report rows from the totals table.
    async fn totals_rows(&self, s: &ReportSelection) -> Result<Vec<TotalsRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT ");
        q.push(if s.by_day { "day" } else { "CAST(0 AS BIGINT) AS day" });
        q.push(", ");
        Self::push_install_day(&mut q, s, "install_day");
        q.push(if s.by_ad_network { ", ad_network_id" } else { ", '' AS ad_network_id" });
        q.push(", conversion_window, ");
        q.push(totals::SUMS.as_str());
        Self::push_summary_selection(&mut q, "report_totals", s);
        q.push(" GROUP BY 1, 2, 3, 4");
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut counts = [0i64; totals::COUNTS];
            for (i, count) in counts.iter_mut().enumerate() {
                *count = row.try_get(4 + i)?;
            }
            out.push(TotalsRow::from_counts(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                &counts,
            ));
        }
        Ok(out)
    }

    fn push_windows(q: &mut QueryBuilder<DB>, windows: &[i64]) {
        if !windows.is_empty() {
            q.push(" AND conversion_window IN (");
            let mut list = q.separated(", ");
            for w in windows {
                list.push_bind(*w);
            }
            q.push(")");
        }
    }

    fn push_redownload(q: &mut QueryBuilder<DB>, values: &[bool]) {
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
        let found: Option<(i64,)> = sqlx::query_as(
            "SELECT app_id FROM aggregates WHERE app_id = $1 \
             UNION ALL SELECT app_id FROM schema_versions WHERE app_id = $1 LIMIT 1",
        )
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    pub(crate) async fn revoke_api_key(&self, name: &str, at_ms: i64) -> Result<bool, StoreError> {
        let revoked: Option<(i64,)> = sqlx::query_as(
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(at_ms)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(revoked.is_some())
    }

    /// Record one item inside the batch transaction.
    /// A postback whose identity is stored already: reconcile the values, count it once, keep
    /// the receipt.
    async fn record_copy(
        tx: &mut Transaction<'static, DB>,
        receipt: &ReceiptInput,
        postback: &NewPostback,
        deltas: &mut Deltas,
    ) -> Result<RecordOutcome, StoreError> {
        // Another copy is stored already (committed earlier, or earlier in this very batch).
        let stored: CopyRow = sqlx::query_as(SELECT_FOR_COPY)
            .bind(postback.identity_key.as_str())
            .fetch_one(&mut **tx)
            .await?;
        let stored_values = values_from_columns(
            stored.fine_value,
            stored.coarse_value.as_deref(),
            stored.interaction.as_deref(),
        );
        let stored_channel =
            super::Channel::from_name(&stored.values_channel).unwrap_or(super::Channel::Network);
        // A postback keeps its earliest arrival: a backfilled copy that arrived before the stored
        // one moves the postback (and its counts) to that arrival and its install estimate.
        let moved = if receipt.received_at_ms < stored.first_received_at {
            sqlx::query(MOVE_FIRST_ARRIVAL)
                .bind(stored.id)
                .bind(receipt.received_at_ms)
                .bind(postback.arrival_day)
                .bind(postback.install_from_ms)
                .bind(postback.install_to_ms)
                .bind(postback.install_day)
                .execute(&mut **tx)
                .await?;
            CopyRow {
                arrival_day: postback.arrival_day,
                install_day: postback.install_day,
                first_received_at: receipt.received_at_ms,
                ..stored.clone()
            }
        } else {
            stored.clone()
        };

        if postback.outcome != OutcomeClass::Valid {
            // The same quarantined bytes again (a device retrying a postback that fails to verify).
            let (old_key, new_key) =
                (stored.aggregate_key(&stored_values), moved.aggregate_key(&stored_values));
            if old_key != new_key {
                let flagged = i64::from(stored.unsigned_mismatch);
                deltas.add(old_key, -1, -flagged);
                deltas.add(new_key, 1, flagged);
            }
            Self::update_on_copy(tx, stored.id, &stored_values, stored_channel, false).await?;
            let receipt_id = Self::insert_receipt(
                tx,
                receipt,
                Some(stored.id),
                receipt_result_for(postback.outcome),
                None,
            )
            .await?;
            return Ok(RecordOutcome::Quarantined {
                postback_id: stored.id,
                receipt_id,
                outcome: postback.outcome,
                repeat: true,
            });
        }

        let comparison =
            compare_copies(&stored_values, stored_channel, &postback.values, receipt.channel);
        let (values, channel, mismatch) = match comparison {
            CopyComparison::Same { confirmed_by_apple: true }
            | CopyComparison::Mismatch { adopt_incoming: true } => (
                postback.values,
                receipt.channel,
                matches!(comparison, CopyComparison::Mismatch { .. }),
            ),
            CopyComparison::Same { confirmed_by_apple: false } => {
                (stored_values, stored_channel, false)
            }
            CopyComparison::Mismatch { adopt_incoming: false } => {
                (stored_values, stored_channel, true)
            }
        };
        // Count the postback once, under the values now in effect, and count a newly flagged
        // mismatch once.
        let old_key = stored.aggregate_key(&stored_values);
        let new_key = moved.aggregate_key(&values);
        let was_flagged = i64::from(stored.unsigned_mismatch);
        let is_flagged = i64::from(stored.unsigned_mismatch || mismatch);
        if old_key == new_key {
            deltas.add(old_key, 0, is_flagged - was_flagged);
        } else {
            deltas.add(old_key, -1, -was_flagged);
            deltas.add(new_key, 1, is_flagged);
        }
        Self::update_on_copy(tx, stored.id, &values, channel, mismatch).await?;
        let receipt_id =
            Self::insert_receipt(tx, receipt, Some(stored.id), ReceiptResult::Duplicate, None)
                .await?;
        Ok(RecordOutcome::Duplicate { postback_id: stored.id, receipt_id, comparison })
    }

    /// Insert the postbacks at `indexes` (distinct identities), many per statement; the ids of
    /// those that were new, by identity key.
    async fn insert_postbacks(
        tx: &mut Transaction<'static, DB>,
        items: &[IngestItem],
        indexes: &[usize],
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let rows: Vec<(&NewPostback, &ReceiptInput)> = indexes
            .iter()
            .filter_map(|&i| match &items[i] {
                IngestItem::Checked { receipt, postback } => Some((postback.as_ref(), receipt)),
                IngestItem::Rejected { .. } => None,
            })
            .collect();
        let mut inserted = std::collections::HashMap::new();
        for chunk in in_statement_sized_chunks(&rows) {
            let mut q = upsert_head(INSERT_POSTBACK);
            q.push_values(chunk, |mut row, (p, receipt)| {
                row.push_bind(p.identity_key.as_str())
                    .push_bind(p.dedup_key.as_str())
                    .push_bind(p.protocol.as_str())
                    .push_bind(p.version.as_deref())
                    .push_bind(p.ad_network_id.as_str())
                    .push_bind(p.app_id)
                    .push_bind(p.transaction_id.as_str())
                    .push_bind(p.source_identifier.as_deref())
                    .push_bind(p.campaign_id)
                    .push_bind(p.source_app_id)
                    .push_bind(p.source_domain.as_deref())
                    .push_bind(p.window)
                    .push_bind(p.did_win)
                    .push_bind(p.conversion_type.as_deref())
                    .push_bind(p.fidelity_type)
                    .push_bind(p.values.interaction.map(InteractionType::as_str))
                    .push_bind(p.values.fine_value.map(i64::from))
                    .push_bind(p.values.coarse_value.map(CoarseValue::as_str))
                    .push_bind(p.tier_hint)
                    .push_bind(p.country_code.as_deref())
                    .push_bind(p.outcome.as_str())
                    .push_bind(p.reason_code.as_deref())
                    .push_bind(p.reason_message.as_deref())
                    .push_bind(p.development)
                    .push_bind(p.key_name.as_deref())
                    .push_bind(receipt.channel.as_str())
                    .push_bind(receipt.received_at_ms)
                    .push_bind(p.arrival_day)
                    .push_bind(p.install_from_ms)
                    .push_bind(p.install_to_ms)
                    .push_bind(p.install_day);
            });
            q.push(" ON CONFLICT (identity_key) DO NOTHING RETURNING id, identity_key");
            let returned: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut **tx).await?;
            inserted.extend(returned.into_iter().map(|(id, key)| (key, id)));
        }
        Ok(inserted)
    }

    /// Insert receipts, many per statement; their ids in the order given. A statement inserts
    /// its rows in the order of its values, each taking the next id, so the ids sorted
    /// ascending line up with the rows.
    async fn insert_receipts(
        tx: &mut Transaction<'static, DB>,
        receipts: &[FreshReceipt<'_>],
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(receipts.len());
        for chunk in in_statement_sized_chunks(receipts) {
            let mut q = upsert_head(INSERT_RECEIPT);
            q.push_values(chunk, |mut row, (_, receipt, postback_id, result, error)| {
                row.push_bind(*postback_id)
                    .push_bind(receipt.received_at_ms)
                    .push_bind(receipt.channel.as_str())
                    .push_bind(receipt.source_name.as_deref())
                    .push_bind(result.as_str())
                    .push_bind(error.map(|e| e.code.as_str()))
                    .push_bind(error.and_then(|e| e.field.as_deref()))
                    .push_bind(error.map(|e| e.message.as_str()))
                    .push_bind(receipt.raw.as_ref());
            });
            q.push(" RETURNING id");
            let mut returned: Vec<(i64,)> = q.build_query_as().fetch_all(&mut **tx).await?;
            returned.sort_unstable();
            ids.extend(returned.into_iter().map(|(id,)| id));
        }
        Ok(ids)
    }

    async fn update_on_copy(
        tx: &mut Transaction<'static, DB>,
        id: i64,
        values: &UnsignedValues,
        channel: super::Channel,
        mismatch: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(UPDATE_ON_COPY)
            .bind(id)
            .bind(values.fine_value.map(i64::from))
            .bind(values.coarse_value.map(CoarseValue::as_str))
            .bind(values.interaction.map(InteractionType::as_str))
            .bind(channel.as_str())
            .bind(mismatch)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn insert_receipt(
        tx: &mut Transaction<'static, DB>,
        receipt: &ReceiptInput,
        postback_id: Option<i64>,
        result: ReceiptResult,
        error: Option<&ErrorBody>,
    ) -> Result<i64, StoreError> {
        let (id,): (i64,) = sqlx::query_as(INSERT_RECEIPT)
            .bind(postback_id)
            .bind(receipt.received_at_ms)
            .bind(receipt.channel.as_str())
            .bind(receipt.source_name.as_deref())
            .bind(result.as_str())
            .bind(error.map(|e| e.code.as_str()))
            .bind(error.and_then(|e| e.field.as_deref()))
            .bind(error.map(|e| e.message.as_str()))
            .bind(receipt.raw.as_ref())
            .fetch_one(&mut **tx)
            .await?;
        Ok(id)
    }
}

/// Implement [`super::Store`] for `SqlStore<$db>` by delegating to the generic methods above.
macro_rules! impl_store {
    ($db:ty) => {
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
                self.pool.close().await;
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::PostbackStore for $crate::store::sql::SqlStore<$db> {
            async fn record(
                &self,
                items: &[$crate::store::IngestItem],
            ) -> Result<Vec<$crate::store::RecordOutcome>, $crate::store::StoreError> {
                Self::record(self, items).await
            }
            async fn postback(
                &self,
                id: i64,
            ) -> Result<Option<$crate::store::StoredPostback>, $crate::store::StoreError> {
                Self::postback(self, id).await
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
                Self::create_api_key(self, key).await
            }
            async fn api_key_by_hash(
                &self,
                key_hash: &str,
            ) -> Result<Option<$crate::store::ApiKey>, $crate::store::StoreError> {
                Self::api_key_by_hash(self, key_hash).await
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
                Self::revoke_api_key(self, name, at_ms).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SchemaStore for $crate::store::sql::SqlStore<$db> {
            async fn insert_schema_version(
                &self,
                version: &$crate::store::NewSchemaVersion,
            ) -> Result<$crate::store::StoredSchemaVersion, $crate::store::StoreError> {
                Self::insert_schema_version(self, version).await
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
                Self::add_aggregates(self, rows).await
            }
            async fn app_exists(&self, app_id: i64) -> Result<bool, $crate::store::StoreError> {
                Self::app_exists(self, app_id).await
            }
            async fn list_apps(
                &self,
            ) -> Result<Vec<$crate::store::AppSummary>, $crate::store::StoreError> {
                Self::list_apps(self).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::OutboxStore for $crate::store::sql::SqlStore<$db> {
            async fn create_destination(
                &self,
                new: &$crate::store::NewDestination,
            ) -> Result<$crate::store::StoredDestination, $crate::store::StoreError> {
                Self::create_destination(self, new).await
            }
            async fn update_destination(
                &self,
                id: i64,
                change: &$crate::store::NewDestination,
            ) -> Result<Option<$crate::store::StoredDestination>, $crate::store::StoreError> {
                Self::update_destination(self, id, change).await
            }
            async fn delete_destination(&self, id: i64) -> Result<bool, $crate::store::StoreError> {
                Self::delete_destination(self, id).await
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
                Self::claim_deliveries(self, destination_id, lease, now_ms, max).await
            }
            async fn complete_deliveries(
                &self,
                completions: &[$crate::store::Completion],
            ) -> Result<Vec<$crate::store::Completed>, $crate::store::StoreError> {
                Self::complete_deliveries(self, completions).await
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
                Self::retry_delivery(self, id, now_ms).await
            }
            async fn replay(
                &self,
                request: &$crate::store::ReplayRequest,
            ) -> Result<$crate::store::ReplayCounts, $crate::store::StoreError> {
                Self::replay(self, request).await
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
            let chunks = in_statement_sized_chunks(&rows);
            assert!(chunks.iter().all(|c| ROWS_PER_STATEMENT.contains(&c.len())), "{n}");
            let joined: Vec<usize> = chunks.concat();
            assert_eq!(joined, rows, "every row once, in order");
            assert!(chunks.len() <= n / 128 + 3 + 3 + 7, "{n}: {} statements", chunks.len());
        }
    }
}

//! The dispatcher's tables: destinations, the delivery outbox and the attempt log.
//!
//! Deliveries are written in the postback's own transaction (see `record`), so a stored postback
//! always has its deliveries. A worker claims due rows with a lease inside a short transaction
//! that also enforces the destination's concurrency cap and token bucket (the destination row is
//! locked, so every receiver on one database shares them), sends with no transaction open, and
//! completes only if it still holds the lease. A crashed worker's lease expires and the row is
//! claimed again: delivery is at least once, and each request carries the delivery's stable id so
//! partners can drop repeats.

use sqlx::{FromRow, QueryBuilder, Row as _, Transaction};

use super::{NewPostback, StoreError, StoredAnomaly, StoredPostback};
use crate::domain::routing::{DeliveryRules, PostbackFacts};

/// Where a delivery stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being sent, while a lease is held).
    Pending,
    /// The partner answered 2xx.
    Delivered,
    /// Given up: a final answer, the last scheduled retry failed, or the destination went away.
    Dead,
    /// Not sent by rule: a macro without a value under the `skip` policy, or the events filter.
    Skipped,
}

impl DeliveryState {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Skipped => "skipped",
        }
    }

    /// Read a stored name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead, Self::Skipped]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A destination to create.
#[derive(Debug, Clone)]
pub struct NewDestination {
    /// Unique name.
    pub name: String,
    /// Whether new postbacks get deliveries and pending ones are sent.
    pub enabled: bool,
    /// The destination document, JSON (validated by the caller).
    pub config: String,
    /// Creation time, unix ms.
    pub at_ms: i64,
}

/// A stored destination.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredDestination {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Enabled.
    pub enabled: bool,
    /// The destination document, JSON.
    pub config: String,
    /// Why it was disabled automatically (410, or failing for too long).
    pub disabled_reason: Option<String>,
    /// When it was disabled, unix ms.
    #[sqlx(rename = "disabled_at")]
    pub disabled_at_ms: Option<i64>,
    /// Start of the current run of failures, unix ms.
    #[sqlx(rename = "failing_since")]
    pub failing_since_ms: Option<i64>,
    /// Creation time, unix ms.
    #[sqlx(rename = "created_at")]
    pub created_at_ms: i64,
    /// Last change, unix ms.
    #[sqlx(rename = "updated_at")]
    pub updated_at_ms: i64,
}

/// A delivery taken for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// Delivery id (the idempotency key is derived from it).
    pub id: i64,
    /// The postback to send, or
    pub postback_id: Option<i64>,
    /// the anomaly to alert about.
    pub anomaly_id: Option<i64>,
    /// Its app (so it is read from one shard on a distributed database).
    pub app_id: i64,
    /// This attempt's number in the current cycle, 1 for the first.
    pub attempt: i64,
    /// A manual retry (one attempt, not rescheduled).
    pub manual: bool,
    /// The lease token completion is fenced on.
    pub lease: String,
}

/// What a claim got.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The destination as it is now (`None` when it was deleted).
    pub destination: Option<StoredDestination>,
    /// Deliveries now leased to the caller.
    pub deliveries: Vec<ClaimedDelivery>,
    /// When the rate limit held deliveries back: milliseconds until a request may go.
    pub wait_ms: Option<i64>,
}

/// One attempt, for the log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// Attempt number in the delivery's current cycle.
    pub attempt: i64,
    /// `first`, `retry` or `manual`.
    pub trigger: &'static str,
    /// Start, unix ms.
    pub started_at_ms: i64,
    /// Duration in milliseconds.
    pub duration_ms: i64,
    /// The URL requested.
    pub url: String,
    /// HTTP status, when an answer came.
    pub status: Option<i64>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub response_excerpt: Option<String>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryUpdate {
    /// Delivered.
    Delivered,
    /// Try again at this time (unix ms).
    Retry {
        /// When.
        at_ms: i64,
    },
    /// Given up.
    Dead {
        /// Why.
        reason: String,
    },
    /// Not sent by rule.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Given up, and the destination is disabled (410 Gone).
    DeadAndDisable {
        /// Why.
        reason: String,
    },
}

/// The end of one claimed delivery's attempt.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The delivery.
    pub delivery_id: i64,
    /// Its destination.
    pub destination_id: i64,
    /// The lease from the claim.
    pub lease: String,
    /// Now, unix ms.
    pub now_ms: i64,
    /// The new state.
    pub update: DeliveryUpdate,
    /// The attempt to log (none for a delivery skipped without a request).
    pub attempt: Option<AttemptRecord>,
    /// HTTP status of the attempt, for the delivery row.
    pub status: Option<i64>,
    /// Disable the destination once it has failed continuously this long (ms).
    pub disable_after_ms: Option<i64>,
}

/// What completing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Whether the lease was still held (if not, another worker owns the delivery now and only
    /// the attempt was logged).
    pub held: bool,
    /// Set when this completion disabled the destination: why.
    pub disabled: Option<String>,
}

/// A delivery as listed.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema, FromRow,
)]
pub struct StoredDelivery {
    /// Row id; `dlv_<id>` is the idempotency key and `webhook-id`.
    pub id: i64,
    /// Destination.
    pub destination_id: i64,
    /// The postback sent (none for an alert).
    pub postback_id: Option<i64>,
    /// The anomaly alerted about (alert destinations only).
    pub anomaly_id: Option<i64>,
    /// The app of the postback or anomaly.
    pub app_id: i64,
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub state: String,
    /// Attempts in the current cycle.
    pub attempts: i64,
    /// The current cycle is a manual retry.
    pub manual: bool,
    /// Next attempt (pending only), unix ms.
    #[sqlx(rename = "next_attempt_at")]
    pub next_attempt_at_ms: i64,
    /// Set while a worker is sending: when its lease runs out, unix ms.
    #[sqlx(rename = "lease_expires_at")]
    pub lease_expires_at_ms: Option<i64>,
    /// Last HTTP status.
    pub last_status: Option<i64>,
    /// Last error or reason.
    pub last_error: Option<String>,
    /// Creation, unix ms.
    #[sqlx(rename = "created_at")]
    pub created_at_ms: i64,
    /// Last change, unix ms.
    #[sqlx(rename = "updated_at")]
    pub updated_at_ms: i64,
    /// Delivery, unix ms.
    #[sqlx(rename = "delivered_at")]
    pub delivered_at_ms: Option<i64>,
}

/// One logged attempt.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema, FromRow,
)]
pub struct StoredAttempt {
    /// Row id.
    pub id: i64,
    /// Delivery.
    pub delivery_id: i64,
    /// Attempt number in its cycle.
    pub attempt: i64,
    /// `first`, `retry` or `manual`.
    pub trigger: String,
    /// Start, unix ms.
    #[sqlx(rename = "started_at")]
    pub started_at_ms: i64,
    /// Duration in milliseconds.
    pub duration_ms: i64,
    /// URL requested.
    pub url: String,
    /// HTTP status.
    pub status: Option<i64>,
    /// Error.
    pub error: Option<String>,
    /// First bytes of the answer.
    pub response_excerpt: Option<String>,
}

/// Filter and page for listing deliveries; newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this destination.
    pub destination_id: Option<i64>,
    /// Only deliveries of this postback.
    pub postback_id: Option<i64>,
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Created at or after, unix ms.
    pub since_ms: Option<i64>,
    /// Only ids below this (the cursor).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// What asking for a retry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryResult {
    /// Queued for an attempt now.
    Requeued(StoredDelivery),
    /// A worker is sending it right now.
    InFlight,
    /// No such delivery.
    NotFound,
}

/// A replay: send a destination the postbacks of a time range again.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// The destination.
    pub destination_id: i64,
    /// First arrival at or after, unix ms.
    pub from_ms: i64,
    /// First arrival before, unix ms.
    pub to_ms: i64,
    /// Also send again what was delivered or skipped (default: only missing and dead ones).
    pub resend_delivered: bool,
    /// Now, unix ms.
    pub at_ms: i64,
}

/// What a replay did.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct ReplayCounts {
    /// Postbacks in the range that pass the destination's filters.
    pub matched: i64,
    /// Deliveries created (postbacks that had none).
    pub created: i64,
    /// Existing deliveries queued again.
    pub requeued: i64,
}

/// Queue depth of one destination, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// Destination.
    pub destination_id: i64,
    /// Pending deliveries.
    pub pending: i64,
    /// Creation time of the oldest pending delivery, unix ms.
    pub oldest_pending_ms: Option<i64>,
    /// Dead letters: deliveries that gave up, waiting for a retry or replay.
    pub dead: i64,
}

/// A destination with its failure run: `destinations` (configuration) joined to
/// `destination_state` (what claims and completions write).
const SELECT_DESTINATION: &str = "SELECT d.id, d.name, d.enabled, d.config, d.disabled_reason, \
     d.disabled_at, s.failing_since, d.created_at, d.updated_at \
     FROM destinations d LEFT JOIN destination_state s ON s.destination_id = d.id";

const DELIVERY_COLUMNS: &str = "id, destination_id, postback_id, anomaly_id, app_id, state, \
     attempts, manual, next_attempt_at, lease_expires_at, last_status, last_error, created_at, \
     updated_at, delivered_at";

/// A lease lasts twice the destination's timeout plus this: time to send and record the result.
const LEASE_MARGIN_MS: i64 = 1_000;
/// A new destination's token bucket starts full: more than any burst, capped at the burst when
/// read.
const FULL_BUCKET: i64 = 1 << 40;
/// Postbacks read per replay transaction.
const REPLAY_PAGE: i64 = 500;

/// A delivery to create: destination, postback, its app, time.
type DeliveryRow = (i64, i64, i64, i64);

fn corrupt_config(id: i64, err: &serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("destination {id}: stored configuration does not parse: {err}"))
}

super::sql::sql_impl! {
    /// Create deliveries for postbacks stored in this transaction, one per enabled destination
    /// whose filters admit the postback.
    pub(crate) async fn enqueue_deliveries(
        tx: &mut Transaction<'static, DB>,
        stored: &[(i64, &NewPostback, i64)],
    ) -> Result<(), StoreError> {
        if stored.is_empty() {
            return Ok(());
        }
        let routes = Self::enabled_routes(tx).await?;
        if routes.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<DeliveryRow> = Vec::new();
        for (destination_id, config) in &routes {
            for (postback_id, p, at_ms) in stored {
                let facts = PostbackFacts {
                    app_id: p.app_id,
                    ad_network_id: &p.ad_network_id,
                    window: p.window,
                    protocol: p.protocol.as_str(),
                    outcome: p.outcome.as_str(),
                    did_win: p.did_win,
                    development: p.development,
                };
                if config.filters.admits(&facts) {
                    rows.push((*destination_id, *postback_id, p.app_id, *at_ms));
                }
            }
        }
        for chunk in super::sql::statement_chunks(&rows, 7, DB::MAX_PARAMS.min(3_500)) {
            Self::insert_deliveries(tx, chunk).await?;
        }
        Ok(())
    }

    /// Every enabled destination with the rules the store acts on, as this transaction sees them.
    async fn enabled_routes(
        tx: &mut Transaction<'static, DB>,
    ) -> Result<Vec<(i64, DeliveryRules)>, StoreError> {
        let routes: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, config FROM destinations WHERE enabled = TRUE ORDER BY id")
                .fetch_all(&mut **tx)
                .await?;
        routes
            .into_iter()
            .map(|(id, config)| {
                serde_json::from_str(&config).map(|rules| (id, rules)).map_err(|e| corrupt_config(id, &e))
            })
            .collect()
    }

    /// Create the alert deliveries of an anomaly stored in this transaction, one per enabled
    /// alert destination whose filters admit its app and network.
    pub(crate) async fn enqueue_alerts(
        tx: &mut Transaction<'static, DB>,
        anomaly: &StoredAnomaly,
        anomaly_id: i64,
    ) -> Result<u64, StoreError> {
        let mut created = 0;
        for (destination_id, config) in &Self::enabled_routes(tx).await? {
            if !config.filters.admits_anomaly(anomaly.app_id, &anomaly.ad_network_id) {
                continue;
            }
            let at_ms = anomaly.detected_at;
            created += DB::rows_affected(
                &sqlx::query(
                    "INSERT INTO deliveries (destination_id, anomaly_id, app_id, state, \
                     next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'pending', $4, $4, $4) \
                     ON CONFLICT (destination_id, anomaly_id) DO NOTHING",
                )
                .bind(*destination_id)
                .bind(anomaly_id)
                .bind(anomaly.app_id)
                .bind(at_ms)
                .execute(&mut **tx)
                .await?,
            );
        }
        Ok(created)
    }

    /// Insert pending deliveries, ignoring ones that exist.
    async fn insert_deliveries(
        tx: &mut Transaction<'static, DB>,
        rows: &[DeliveryRow],
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO deliveries (destination_id, postback_id, app_id, state, \
             next_attempt_at, created_at, updated_at) ",
        );
        q.push_values(rows, |mut row, (destination_id, postback_id, app_id, at_ms)| {
            row.push_bind(*destination_id)
                .push_bind(*postback_id)
                .push_bind(*app_id)
                .push_bind("pending")
                .push_bind(*at_ms)
                .push_bind(*at_ms)
                .push_bind(*at_ms);
        });
        q.push(" ON CONFLICT (destination_id, postback_id) DO NOTHING");
        Ok(DB::rows_affected(&q.build().execute(&mut **tx).await?))
    }

    pub(crate) async fn create_destination(
        &self,
        new: &NewDestination,
    ) -> Result<StoredDestination, StoreError> {
        let mut tx = DB::begin_write(&self.writer).await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO destinations (name, enabled, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(new.name.as_str())
        .bind(new.enabled)
        .bind(new.config.as_str())
        .bind(new.at_ms)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO destination_state (destination_id, tokens_milli, tokens_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(FULL_BUCKET)
        .bind(new.at_ms)
        .execute(&mut *tx)
        .await?;
        let stored = Self::destination_in(&mut tx, id).await?;
        tx.commit().await?;
        stored.ok_or_else(|| StoreError::Corrupt(format!("destination {id} vanished")))
    }

    async fn destination_in(
        tx: &mut Transaction<'static, DB>,
        id: i64,
    ) -> Result<Option<StoredDestination>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!("{SELECT_DESTINATION} WHERE d.id = "));
        q.push_bind(id);
        Ok(q.build_query_as::<StoredDestination>().fetch_optional(&mut **tx).await?)
    }

    pub(crate) async fn update_destination(
        &self,
        id: i64,
        change: &NewDestination,
    ) -> Result<Option<StoredDestination>, StoreError> {
        let mut tx = DB::begin_write(&self.writer).await?;
        // Enabling clears the automatic disabling and the failure run that led to it.
        let was_enabled: Option<(bool,)> =
            sqlx::query_as("SELECT enabled FROM destinations WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if change.enabled && was_enabled == Some((false,)) {
            sqlx::query("UPDATE destination_state SET failing_since = NULL WHERE destination_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let updated = sqlx::query(
            "UPDATE destinations SET name = $2, enabled = $3, config = $4, updated_at = $5, \
             disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END, \
             disabled_at = CASE WHEN $3 THEN NULL ELSE disabled_at END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(change.name.as_str())
        .bind(change.enabled)
        .bind(change.config.as_str())
        .bind(change.at_ms)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&updated) == 0 {
            return Ok(None);
        }
        let stored = Self::destination_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(crate) async fn delete_destination(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = DB::begin_write(&self.writer).await?;
        for table in ["delivery_attempts", "deliveries", "destination_state"] {
            QueryBuilder::<DB>::new(format!("DELETE FROM {table} WHERE destination_id = "))
                .push_bind(id)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM destinations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&deleted) > 0)
    }

    pub(crate) async fn destination(
        &self,
        id: i64,
    ) -> Result<Option<StoredDestination>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!("{SELECT_DESTINATION} WHERE d.id = "));
        q.push_bind(id);
        Ok(q.build_query_as::<StoredDestination>().fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn destination_by_name(
        &self,
        name: &str,
    ) -> Result<Option<StoredDestination>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!("{SELECT_DESTINATION} WHERE d.name = "));
        q.push_bind(name);
        Ok(q.build_query_as::<StoredDestination>().fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn list_destinations(&self) -> Result<Vec<StoredDestination>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!("{SELECT_DESTINATION} ORDER BY d.id"));
        Ok(q.build_query_as::<StoredDestination>().fetch_all(&self.pool).await?)
    }

    pub(crate) async fn claim_deliveries(
        &self,
        destination_id: i64,
        lease: &str,
        now_ms: i64,
        max: u32,
    ) -> Result<Claim, StoreError> {
        let mut tx = DB::begin_write(&self.writer).await?;
        // Lock the destination's state row: claims for one destination are serialized across
        // every receiver, which is what makes the concurrency cap and the token bucket global.
        let mut q = QueryBuilder::<DB>::new(
            "SELECT tokens_milli, tokens_at FROM destination_state WHERE destination_id = ",
        );
        q.push_bind(destination_id).push(DB::LOCK_ROW);
        let state: Option<(i64, i64)> = q.build_query_as().fetch_optional(&mut *tx).await?;
        let (Some((tokens_milli, tokens_at)), Some(destination)) =
            (state, Self::destination_in(&mut tx, destination_id).await?)
        else {
            return Ok(Claim { destination: None, deliveries: Vec::new(), wait_ms: None });
        };
        let empty = |destination| Claim {
            destination: Some(destination),
            deliveries: Vec::new(),
            wait_ms: None,
        };
        if !destination.enabled || max == 0 {
            return Ok(empty(destination));
        }
        let config: DeliveryRules = serde_json::from_str(&destination.config)
            .map_err(|e| corrupt_config(destination_id, &e))?;
        let (in_flight,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM deliveries WHERE destination_id = $1 AND state = 'pending' \
             AND lease_expires_at > $2",
        )
        .bind(destination_id)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let concurrency_room =
            (i64::from(config.max_concurrency) - in_flight).clamp(0, i64::from(max));
        let grant = config
            .rate_limit
            .map(|limit| limit.take(tokens_milli, tokens_at, now_ms, concurrency_room));
        let room = grant.map_or(concurrency_room, |g| g.room);
        if room == 0 {
            // Held back by the rate limit (and not by concurrency): say when the next token comes.
            let wait_ms = grant.and_then(|g| g.wait_ms).filter(|_| concurrency_room > 0);
            tx.commit().await?;
            return Ok(Claim { destination: Some(destination), deliveries: Vec::new(), wait_ms });
        }
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, postback_id, attempts, manual, app_id, anomaly_id FROM deliveries \
             WHERE destination_id = ",
        );
        q.push_bind(destination_id);
        q.push(" AND state = 'pending' AND next_attempt_at <= ").push_bind(now_ms);
        q.push(" AND (lease_expires_at IS NULL OR lease_expires_at <= ").push_bind(now_ms);
        q.push(") ORDER BY next_attempt_at, id LIMIT ").push_bind(room);
        q.push(DB::SKIP_LOCKED);
        let due = q.build().fetch_all(&mut *tx).await?;
        let expires =
            now_ms + 2 * i64::try_from(config.timeout_ms).unwrap_or(30_000) + LEASE_MARGIN_MS;
        let mut deliveries = Vec::with_capacity(due.len());
        for row in &due {
            let attempts: i64 = row.try_get(2)?;
            deliveries.push(ClaimedDelivery {
                id: row.try_get(0)?,
                postback_id: row.try_get(1)?,
                anomaly_id: row.try_get(5)?,
                app_id: row.try_get(4)?,
                attempt: attempts + 1,
                manual: row.try_get(3)?,
                lease: lease.to_owned(),
            });
        }
        if !deliveries.is_empty() {
            let mut q = QueryBuilder::<DB>::new("UPDATE deliveries SET lease_owner = ");
            q.push_bind(lease);
            q.push(", lease_expires_at = ").push_bind(expires);
            q.push(", attempts = attempts + 1, updated_at = ").push_bind(now_ms);
            q.push(" WHERE destination_id = ").push_bind(destination_id);
            q.push(" AND id IN (");
            let mut ids = q.separated(", ");
            for d in &deliveries {
                ids.push_bind(d.id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        if let Some(grant) = grant {
            let (available, spent) =
                (grant.available_milli, i64::try_from(deliveries.len()).unwrap_or(0) * 1000);
            sqlx::query(
                "UPDATE destination_state SET tokens_milli = $2, tokens_at = $3 \
                 WHERE destination_id = $1",
            )
                .bind(destination_id)
                .bind(available - spent)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Claim { destination: Some(destination), deliveries, wait_ms: None })
    }

    pub(crate) async fn complete_deliveries(
        &self,
        completions: &[Completion],
    ) -> Result<Vec<Completed>, StoreError> {
        // Destination rows are locked in one order, so concurrent groups cannot deadlock.
        let mut order: Vec<usize> = (0..completions.len()).collect();
        order.sort_by_key(|&i| (completions[i].destination_id, completions[i].delivery_id));
        let mut tx = DB::begin_write(&self.writer).await?;
        let mut done = vec![None; completions.len()];
        for i in order {
            done[i] = Some(Self::complete_in(&mut tx, &completions[i]).await?);
        }
        tx.commit().await?;
        Ok(done.into_iter().flatten().collect())
    }

    async fn complete_in(
        tx: &mut Transaction<'static, DB>,
        c: &Completion,
    ) -> Result<Completed, StoreError> {
        let (state, next_at, error, disable) = match &c.update {
            DeliveryUpdate::Delivered => ("delivered", c.now_ms, None, None),
            DeliveryUpdate::Retry { at_ms } => {
                ("pending", *at_ms, c.attempt.as_ref().and_then(|a| a.error.clone()), None)
            }
            DeliveryUpdate::Dead { reason } => ("dead", c.now_ms, Some(reason.clone()), None),
            DeliveryUpdate::Skipped { reason } => ("skipped", c.now_ms, Some(reason.clone()), None),
            DeliveryUpdate::DeadAndDisable { reason } => {
                ("dead", c.now_ms, Some(reason.clone()), Some(reason.clone()))
            }
        };
        let delivered_at = (c.update == DeliveryUpdate::Delivered).then_some(c.now_ms);
        let result = sqlx::query(
            "UPDATE deliveries SET state = $3, next_attempt_at = $4, lease_owner = NULL, \
             lease_expires_at = NULL, last_status = $5, last_error = $6, manual = FALSE, \
             updated_at = $7, delivered_at = COALESCE($8, delivered_at) \
             WHERE destination_id = $9 AND id = $1 AND lease_owner = $2",
        )
        .bind(c.delivery_id)
        .bind(c.lease.as_str())
        .bind(state)
        .bind(next_at)
        .bind(c.status)
        .bind(error.as_deref())
        .bind(c.now_ms)
        .bind(delivered_at)
        .bind(c.destination_id)
        .execute(&mut **tx)
        .await?;
        let held = DB::rows_affected(&result) > 0;
        if let Some(a) = &c.attempt {
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, attempt, trigger, started_at, \
                 duration_ms, url, status, error, response_excerpt, destination_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(c.delivery_id)
            .bind(a.attempt)
            .bind(a.trigger)
            .bind(a.started_at_ms)
            .bind(a.duration_ms)
            .bind(a.url.as_str())
            .bind(a.status)
            .bind(a.error.as_deref())
            .bind(a.response_excerpt.as_deref())
            .bind(c.destination_id)
            .execute(&mut **tx)
            .await?;
        }
        let mut disabled = None;
        if held {
            disabled = Self::record_health(tx, c, disable).await?;
        }
        Ok(Completed { held, disabled })
    }

    /// Track the destination's run of failures; disable it on 410 or when the run is too long.
    async fn record_health(
        tx: &mut Transaction<'static, DB>,
        c: &Completion,
        disable_now: Option<String>,
    ) -> Result<Option<String>, StoreError> {
        match (&c.update, disable_now) {
            (DeliveryUpdate::Skipped { .. }, _) => Ok(None),
            (DeliveryUpdate::Delivered, _) => {
                sqlx::query(
                    "UPDATE destination_state SET failing_since = NULL \
                     WHERE destination_id = $1 AND failing_since IS NOT NULL",
                )
                .bind(c.destination_id)
                .execute(&mut **tx)
                .await?;
                Ok(None)
            }
            (_, Some(reason)) => {
                Self::disable(tx, c.destination_id, &reason, c.now_ms).await?;
                Ok(Some(reason))
            }
            (_, None) => {
                sqlx::query(
                    "UPDATE destination_state SET failing_since = COALESCE(failing_since, $2) \
                     WHERE destination_id = $1",
                )
                .bind(c.destination_id)
                .bind(c.now_ms)
                .execute(&mut **tx)
                .await?;
                let failing: Option<(i64,)> = sqlx::query_as(
                    "SELECT s.failing_since FROM destination_state s \
                     JOIN destinations d ON d.id = s.destination_id \
                     WHERE s.destination_id = $1 AND d.enabled = TRUE",
                )
                .bind(c.destination_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(reason) = failing.and_then(|(since,)| {
                    crate::domain::routing::failing_too_long(since, c.now_ms, c.disable_after_ms)
                }) else {
                    return Ok(None);
                };
                Self::disable(tx, c.destination_id, &reason, c.now_ms).await?;
                Ok(Some(reason))
            }
        }
    }

    async fn disable(
        tx: &mut Transaction<'static, DB>,
        id: i64,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE destinations SET enabled = FALSE, disabled_reason = $2, disabled_at = $3, \
             updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(reason)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(crate) async fn list_deliveries(
        &self,
        filter: &DeliveryQuery,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1"
        ));
        if let Some(id) = filter.destination_id {
            q.push(" AND destination_id = ").push_bind(id);
        }
        if let Some(id) = filter.postback_id {
            q.push(" AND postback_id = ").push_bind(id);
        }
        if let Some(state) = filter.state {
            q.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(since) = filter.since_ms {
            q.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(before) = filter.before_id {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(filter.limit);
        Ok(q.build_query_as::<StoredDelivery>().fetch_all(&self.pool).await?)
    }

    pub(crate) async fn delivery(&self, id: i64) -> Result<Option<StoredDelivery>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = "
        ));
        q.push_bind(id);
        Ok(q.build_query_as::<StoredDelivery>().fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn delivery_for(
        &self,
        destination_id: i64,
        postback_id: i64,
    ) -> Result<Option<StoredDelivery>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE destination_id = "
        ));
        q.push_bind(destination_id).push(" AND postback_id = ").push_bind(postback_id);
        Ok(q.build_query_as::<StoredDelivery>().fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn delivery_attempts(
        &self,
        delivery_id: i64,
    ) -> Result<Vec<StoredAttempt>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, delivery_id, attempt, trigger, started_at, duration_ms, url, status, \
             error, response_excerpt FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub(crate) async fn retry_delivery(
        &self,
        id: i64,
        now_ms: i64,
    ) -> Result<RetryResult, StoreError> {
        // The destination first (a read of every shard on a distributed database), so that the
        // lock and the update below name it and touch one.
        let Some((destination_id,)): Option<(i64,)> =
            sqlx::query_as("SELECT destination_id FROM deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(RetryResult::NotFound);
        };
        let mut tx = DB::begin_write(&self.writer).await?;
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE destination_id = "
        ));
        q.push_bind(destination_id).push(" AND id = ").push_bind(id).push(DB::LOCK_ROW);
        let Some(current) = q.build_query_as::<StoredDelivery>().fetch_optional(&mut *tx).await?
        else {
            return Ok(RetryResult::NotFound);
        };
        if current.state == "pending" && current.lease_expires_at_ms.is_some_and(|t| t > now_ms) {
            return Ok(RetryResult::InFlight);
        }
        // A pending delivery keeps its schedule and is simply due now; a finished one gets one
        // manual attempt.
        let manual = current.state != "pending";
        sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = $2, manual = $3, \
             attempts = CASE WHEN $3 THEN 0 ELSE attempts END, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $2 WHERE destination_id = $4 AND id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .bind(manual)
        .bind(destination_id)
        .execute(&mut *tx)
        .await?;
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE destination_id = "
        ));
        q.push_bind(destination_id).push(" AND id = ").push_bind(id);
        let updated = q.build_query_as::<StoredDelivery>().fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(RetryResult::Requeued(updated))
    }

    pub(crate) async fn replay(&self, r: &ReplayRequest) -> Result<ReplayCounts, StoreError> {
        let Some(destination) = self.destination(r.destination_id).await? else {
            return Ok(ReplayCounts::default());
        };
        let config: DeliveryRules = serde_json::from_str(&destination.config)
            .map_err(|e| corrupt_config(destination.id, &e))?;
        let mut counts = ReplayCounts::default();
        let mut after_id = 0i64;
        loop {
            let mut q = QueryBuilder::<DB>::new(format!(
                "SELECT {} FROM postbacks WHERE first_received_at >= ",
                super::postbacks::POSTBACK_COLUMNS
            ));
            q.push_bind(r.from_ms);
            q.push(" AND first_received_at < ").push_bind(r.to_ms);
            q.push(" AND id > ").push_bind(after_id);
            q.push(" ORDER BY id LIMIT ").push_bind(REPLAY_PAGE);
            let page = q.build_query_as::<StoredPostback>().fetch_all(&self.pool).await?;
            let Some(last) = page.last() else { break };
            after_id = last.id;
            let matching: Vec<(i64, i64)> = page
                .iter()
                .filter(|p| {
                    config.filters.admits(&PostbackFacts {
                        app_id: p.app_id,
                        ad_network_id: &p.ad_network_id,
                        window: p.window,
                        protocol: &p.protocol,
                        outcome: &p.outcome,
                        did_win: p.did_win,
                        development: p.development,
                    })
                })
                .map(|p| (p.id, p.app_id))
                .collect();
            if matching.is_empty() {
                continue;
            }
            counts.matched += i64::try_from(matching.len()).unwrap_or(0);
            let mut tx = DB::begin_write(&self.writer).await?;
            let rows: Vec<DeliveryRow> = matching
                .iter()
                .map(|(id, app_id)| (r.destination_id, *id, *app_id, r.at_ms))
                .collect();
            counts.created +=
                i64::try_from(Self::insert_deliveries(&mut tx, &rows).await?).unwrap_or(0);
            let mut q = QueryBuilder::<DB>::new(
                "UPDATE deliveries SET state = 'pending', attempts = 0, manual = FALSE, \
                 next_attempt_at = ",
            );
            q.push_bind(r.at_ms).push(", updated_at = ").push_bind(r.at_ms);
            q.push(" WHERE destination_id = ").push_bind(r.destination_id);
            q.push(if r.resend_delivered {
                " AND state IN ('dead', 'delivered', 'skipped')"
            } else {
                " AND state = 'dead'"
            });
            q.push(" AND postback_id IN (");
            let mut ids = q.separated(", ");
            for (id, _) in &matching {
                ids.push_bind(*id);
            }
            q.push(")");
            counts.requeued +=
                i64::try_from(DB::rows_affected(&q.build().execute(&mut *tx).await?)).unwrap_or(0);
            tx.commit().await?;
        }
        Ok(counts)
    }

    pub(crate) async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT destination_id, \
                    SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), \
                    MIN(CASE WHEN state = 'pending' THEN created_at END), \
                    SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) \
             FROM deliveries WHERE state IN ('pending', 'dead') \
             GROUP BY destination_id ORDER BY destination_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueStats {
                    destination_id: row.try_get(0)?,
                    pending: row.try_get(1)?,
                    oldest_pending_ms: row.try_get(2)?,
                    dead: row.try_get(3)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryState;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
            DeliveryState::Skipped,
        ] {
            assert_eq!(DeliveryState::from_name(state.as_str()), Some(state));
        }
        assert_eq!(DeliveryState::from_name("sent"), None);
    }
}

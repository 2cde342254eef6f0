//! Quality in SQL: what each postback of a day range looked like (with how many copies came
//! from Apple and from networks), the deliveries owed for them, the anomalies found, mutes, and
//! leases.

use sqlx::{FromRow, QueryBuilder};

use super::StoreError;

/// One postback as quality reads it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct QualityRecord {
    /// Postback id.
    pub id: i64,
    /// Day of the first arrival.
    pub arrival_day: i64,
    /// First arrival, unix ms.
    pub first_received_at: i64,
    /// Ad network.
    pub ad_network_id: String,
    /// Window.
    pub conversion_window: i64,
    /// Outcome class.
    pub outcome: String,
    /// Whether it won.
    pub did_win: bool,
    /// Fine value in effect.
    pub fine_value: Option<i64>,
    /// Coarse value in effect.
    pub coarse_value: Option<String>,
    /// Copies disagreed.
    pub unsigned_mismatch: bool,
    /// Receipts.
    pub receipt_count: i64,
    /// Estimated install interval, unix ms.
    pub install_from: i64,
    /// See `install_from`.
    pub install_to: i64,
    /// Estimated install day.
    pub install_day: i64,
    /// Receipts from Apple's path.
    pub apple_receipts: i64,
    /// Receipts forwarded by networks.
    pub network_receipts: i64,
}

/// A delivery owed for a postback of the range.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeliveryRecord {
    /// Destination.
    pub destination_id: i64,
    /// Postback.
    pub postback_id: i64,
    /// When it was delivered, unix ms.
    pub delivered_at: Option<i64>,
}

/// A stored anomaly.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct StoredAnomaly {
    /// Row id.
    pub id: i64,
    /// App.
    pub app_id: i64,
    /// Network.
    pub ad_network_id: String,
    /// Metric name.
    pub metric: String,
    /// Day judged (day number).
    pub day: i64,
    /// Baseline expectation.
    pub expected: f64,
    /// Lowest usual value.
    pub expected_low: f64,
    /// Highest usual value.
    pub expected_high: f64,
    /// Observed value.
    pub observed: f64,
    /// Robust score.
    pub score: f64,
    /// First baseline day.
    pub baseline_from: i64,
    /// Last baseline day.
    pub baseline_to: i64,
    /// Baseline days with data.
    pub baseline_days: i64,
    /// Judged while the day was in progress.
    pub partial_day: bool,
    /// When it was found, unix ms.
    pub detected_at: i64,
    /// When someone acknowledged it, unix ms.
    pub acknowledged_at: Option<i64>,
    /// Who.
    pub acknowledged_by: Option<String>,
}

/// A muted (network, metric) of an app; `''` as the network mutes it for all.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct StoredMute {
    /// App.
    pub app_id: i64,
    /// Network, `''` for every network.
    pub ad_network_id: String,
    /// Metric name.
    pub metric: String,
    /// When, unix ms.
    pub muted_at: i64,
    /// Who (API key name).
    pub muted_by: String,
}

const ANOMALY_COLUMNS: &str = "id, app_id, ad_network_id, metric, day, expected, expected_low, \
     expected_high, observed, score, baseline_from, baseline_to, baseline_days, partial_day, \
     detected_at, acknowledged_at, acknowledged_by";

super::sql::sql_impl! {
    pub(crate) async fn quality_records(
        &self,
        app_id: i64,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<QualityRecord>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT p.id, p.arrival_day, p.first_received_at, p.ad_network_id, \
             p.conversion_window, p.outcome, p.did_win, p.fine_value, p.coarse_value, \
             p.unsigned_mismatch, p.receipt_count, p.install_from, p.install_to, p.install_day, \
             CAST(COALESCE(r.apple, 0) AS BIGINT) AS apple_receipts, \
             CAST(COALESCE(r.network, 0) AS BIGINT) AS network_receipts \
             FROM postbacks p LEFT JOIN (SELECT app_id, postback_id, \
             SUM(CASE WHEN channel = 'apple' THEN 1 ELSE 0 END) AS apple, \
             SUM(CASE WHEN channel = 'apple' THEN 0 ELSE 1 END) AS network \
             FROM receipts WHERE app_id = ",
        );
        q.push_bind(app_id);
        q.push(" AND received_at >= ").push_bind(from_day * 86_400_000);
        q.push(
            " GROUP BY app_id, postback_id) r ON r.app_id = p.app_id AND r.postback_id = p.id \
             WHERE p.app_id = ",
        );
        q.push_bind(app_id);
        q.push(" AND p.arrival_day >= ").push_bind(from_day);
        q.push(" AND p.arrival_day <= ").push_bind(to_day);
        q.push(" AND p.development = ").push_bind(false);
        Ok(q.build_query_as::<QualityRecord>().fetch_all(&self.pool).await?)
    }

    pub(crate) async fn delivery_records(
        &self,
        app_id: i64,
        since_ms: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT destination_id, postback_id, delivered_at FROM deliveries \
             WHERE app_id = $1 AND created_at >= $2 AND postback_id IS NOT NULL",
        )
        .bind(app_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Store an anomaly unless one is stored for its app, network, metric and day, with its
    /// alert deliveries in the same transaction (so receivers finding it together alert once);
    /// its id when this call stored it.
    pub(crate) async fn insert_anomaly(
        &self,
        a: &StoredAnomaly,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = DB::begin_write(&self.writer).await?;
        let id: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO anomalies (app_id, ad_network_id, metric, day, expected, expected_low, \
             expected_high, observed, score, baseline_from, baseline_to, baseline_days, \
             partial_day, detected_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (app_id, ad_network_id, metric, day) DO NOTHING RETURNING id",
        )
        .bind(a.app_id)
        .bind(a.ad_network_id.as_str())
        .bind(a.metric.as_str())
        .bind(a.day)
        .bind(a.expected)
        .bind(a.expected_low)
        .bind(a.expected_high)
        .bind(a.observed)
        .bind(a.score)
        .bind(a.baseline_from)
        .bind(a.baseline_to)
        .bind(a.baseline_days)
        .bind(a.partial_day)
        .bind(a.detected_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id,)) = id else { return Ok(None) };
        Self::enqueue_alerts(&mut tx, a, id).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    pub(crate) async fn anomaly(
        &self,
        app_id: i64,
        id: i64,
    ) -> Result<Option<StoredAnomaly>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE app_id = "
        ));
        q.push_bind(app_id).push(" AND id = ").push_bind(id);
        Ok(q.build_query_as::<StoredAnomaly>().fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn anomalies(
        &self,
        app_id: i64,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<StoredAnomaly>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE app_id = "
        ));
        q.push_bind(app_id);
        q.push(" AND day >= ").push_bind(from_day);
        q.push(" AND day <= ").push_bind(to_day);
        q.push(" ORDER BY day DESC, id DESC");
        Ok(q.build_query_as::<StoredAnomaly>().fetch_all(&self.pool).await?)
    }

    pub(crate) async fn acknowledge_anomaly(
        &self,
        app_id: i64,
        id: i64,
        by: &str,
        at_ms: i64,
    ) -> Result<Option<StoredAnomaly>, StoreError> {
        let mut tx = DB::begin_write(&self.writer).await?;
        sqlx::query(
            "UPDATE anomalies SET acknowledged_at = COALESCE(acknowledged_at, $3), \
             acknowledged_by = COALESCE(acknowledged_by, $4) WHERE app_id = $1 AND id = $2",
        )
        .bind(app_id)
        .bind(id)
        .bind(at_ms)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE app_id = "
        ));
        q.push_bind(app_id).push(" AND id = ").push_bind(id);
        let stored = q.build_query_as::<StoredAnomaly>().fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(crate) async fn set_mute(&self, mute: &StoredMute, muted: bool) -> Result<bool, StoreError> {
        let result = if muted {
            sqlx::query(
                "INSERT INTO anomaly_mutes (app_id, ad_network_id, metric, muted_at, muted_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, ad_network_id, metric) DO NOTHING",
            )
            .bind(mute.app_id)
            .bind(mute.ad_network_id.as_str())
            .bind(mute.metric.as_str())
            .bind(mute.muted_at)
            .bind(mute.muted_by.as_str())
            .execute(&self.writer)
            .await?
        } else {
            sqlx::query(
                "DELETE FROM anomaly_mutes WHERE app_id = $1 AND ad_network_id = $2 AND metric = $3",
            )
            .bind(mute.app_id)
            .bind(mute.ad_network_id.as_str())
            .bind(mute.metric.as_str())
            .execute(&self.writer)
            .await?
        };
        Ok(DB::rows_affected(&result) > 0)
    }

    pub(crate) async fn mutes(&self, app_id: i64) -> Result<Vec<StoredMute>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT app_id, ad_network_id, metric, muted_at, muted_by FROM anomaly_mutes \
             WHERE app_id = $1 ORDER BY ad_network_id, metric",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Take (or keep) the lease `name` until `now_ms + ttl_ms`: true when `holder` has it.
    pub(crate) async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let won: Option<(String,)> = sqlx::query_as(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms + ttl_ms)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await?;
        Ok(won.is_some())
    }
}

//! Data-quality monitoring: the quality report of an app (per day and network, and delivery per
//! destination), anomaly detection against each network's own history, and the schedule that
//! runs it on every receiver while a lease in the database lets one of them work at a time.
//!
//! The rules live in [`crate::domain::quality`]; this module reads the store, decodes values
//! with the schema in effect (unmapped values), stores what it finds and counts it in metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::domain::quality::{
    DeliveryFact, DeliveryQualityRow, DetectionRules, Finding, Metric, PostbackFact, QualityRow,
    console_path, day_counts, delivery_rows, detect, quality_rows,
};
use crate::schema::DecodeStatus;
use crate::schema_versions::{SchemaError, SchemaVersions};
use crate::skan::{CoarseValue, ConversionValue, day_from_number, day_number};
use crate::store::{Store, StoreError, StoredAnomaly, StoredMute};

const DAY_MS: i64 = 86_400_000;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A day that is not `YYYY-MM-DD`; names the parameter (`from` or `to`).
    #[error("expected a YYYY-MM-DD date, got {1:?}")]
    Day(&'static str, String),
    /// The range is empty, reversed or too long.
    #[error("{0}")]
    Range(String),
    /// A metric name that does not exist.
    #[error("unknown metric {0:?}; expected one of {1}")]
    UnknownMetric(String, String),
    /// No such anomaly.
    #[error("app {0} has no anomaly {1}")]
    NotFound(i64, i64),
    /// A stored schema is unusable.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest range a quality report covers.
pub const MAX_DAYS: i64 = 400;

/// An app's quality over a day range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QualityReport {
    /// App Store ID.
    pub app_id: i64,
    /// First arrival day, inclusive.
    pub from: NaiveDate,
    /// Last arrival day, inclusive.
    pub to: NaiveDate,
    /// Per day and network.
    pub rows: Vec<QualityRow>,
    /// Per day and destination.
    pub deliveries: Vec<DeliveryQualityRow>,
}

/// An anomaly as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    /// Id.
    pub id: i64,
    /// App Store ID.
    pub app_id: i64,
    /// Ad network.
    pub ad_network_id: String,
    /// Metric.
    pub metric: Metric,
    /// The day judged.
    pub day: NaiveDate,
    /// What the baseline expected.
    pub expected: f64,
    /// Lowest usual value.
    pub expected_low: f64,
    /// Highest usual value.
    pub expected_high: f64,
    /// What was observed.
    pub observed: f64,
    /// How far out (robust standard deviations; for the fine-value shift, distance over
    /// threshold).
    pub score: f64,
    /// First day of the baseline.
    pub baseline_from: NaiveDate,
    /// Last day of the baseline.
    pub baseline_to: NaiveDate,
    /// Baseline days with data.
    pub baseline_days: i64,
    /// Judged while the day was in progress, on the hours that had passed.
    pub partial_day: bool,
    /// When it was found (RFC 3339).
    pub detected_at: String,
    /// When it was acknowledged.
    pub acknowledged_at: Option<String>,
    /// By whom (API key name).
    pub acknowledged_by: Option<String>,
    /// Whether a mute covers it now.
    pub muted: bool,
    /// The metric in words.
    pub metric_label: String,
    /// The console page that shows it.
    pub link: String,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339()
}

impl Anomaly {
    fn of(stored: StoredAnomaly, mutes: &[StoredMute]) -> Self {
        let muted = mutes.iter().any(|m| {
            m.metric == stored.metric
                && (m.ad_network_id.is_empty() || m.ad_network_id == stored.ad_network_id)
        });
        let metric = Metric::from_name(&stored.metric).unwrap_or(Metric::Postbacks);
        Self {
            link: console_path(stored.app_id, day_from_number(stored.day)),
            metric_label: metric.label().to_owned(),
            id: stored.id,
            app_id: stored.app_id,
            ad_network_id: stored.ad_network_id,
            metric,
            day: day_from_number(stored.day),
            expected: stored.expected,
            expected_low: stored.expected_low,
            expected_high: stored.expected_high,
            observed: stored.observed,
            score: stored.score,
            baseline_from: day_from_number(stored.baseline_from),
            baseline_to: day_from_number(stored.baseline_to),
            baseline_days: stored.baseline_days,
            partial_day: stored.partial_day,
            detected_at: rfc3339(stored.detected_at),
            acknowledged_at: stored.acknowledged_at.map(rfc3339),
            acknowledged_by: stored.acknowledged_by,
            muted,
        }
    }
}

/// The arrival days a quality question covers, from optional `YYYY-MM-DD` texts: `to` defaults
/// to `today` and `from` to four weeks ending at `to`.
///
/// # Errors
/// [`QualityError::Day`] naming the parameter that is not a date.
pub fn day_range(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), QualityError> {
    let day = |text: Option<&str>, field: &'static str, default: NaiveDate| match text {
        None => Ok(default),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| QualityError::Day(field, text.to_owned())),
    };
    let to = day(to, "to", today)?;
    let from = day(from, "from", to - chrono::Duration::days(27))?;
    Ok((from, to))
}

fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), QualityError> {
    let days = (to - from).num_days() + 1;
    if days < 1 {
        return Err(QualityError::Range(format!("from {from} is after to {to}")));
    }
    if days > MAX_DAYS {
        return Err(QualityError::Range(format!(
            "{days} days asked; a quality report covers at most {MAX_DAYS}"
        )));
    }
    Ok(())
}

/// When each postback first arrived: arrival day and unix ms, by postback id.
type Arrivals = HashMap<i64, (i64, i64)>;

/// The postback facts of an app's arrival days `from..=to`, values decoded with the schema in
/// effect, and when each postback arrived.
async fn postback_facts(
    store: &dyn Store,
    schemas: &SchemaVersions,
    app_id: i64,
    from: i64,
    to: i64,
) -> Result<(Vec<PostbackFact>, Arrivals), QualityError> {
    let records = store.quality_records(app_id, from, to).await?;
    let history = schemas.history(app_id).await?;
    let mut arrivals: Arrivals = HashMap::with_capacity(records.len());
    let facts = records
        .into_iter()
        .map(|r| {
            arrivals.insert(r.id, (r.arrival_day, r.first_received_at));
            let coarse = r.coarse_value.as_deref().and_then(CoarseValue::from_wire);
            let value = match (r.fine_value.and_then(|v| u8::try_from(v).ok()), coarse) {
                (Some(v), _) => ConversionValue::Fine(v),
                (None, Some(c)) => ConversionValue::Coarse(c),
                (None, None) => ConversionValue::None,
            };
            let window = u8::try_from(r.conversion_window).unwrap_or(0);
            let status = history.decode(day_from_number(r.install_day), window, value).status;
            PostbackFact {
                arrival_day: r.arrival_day,
                arrival_ms_of_day: r.first_received_at - r.arrival_day * DAY_MS,
                ad_network_id: r.ad_network_id,
                window: r.conversion_window,
                outcome: r.outcome,
                did_win: r.did_win,
                fine_value: r.fine_value,
                has_coarse: coarse.is_some(),
                mapped: match status {
                    DecodeStatus::Mapped => Some(true),
                    DecodeStatus::Unmapped => Some(false),
                    DecodeStatus::NoValue | DecodeStatus::NoSchema => None,
                },
                unsigned_mismatch: r.unsigned_mismatch,
                receipts: r.receipt_count,
                from_apple: r.apple_receipts > 0,
                from_network: r.network_receipts > 0,
                arrival_delay_hours: (r.first_received_at - (r.install_from + r.install_to) / 2)
                    as f64
                    / 3_600_000.0,
            }
        })
        .collect();
    Ok((facts, arrivals))
}

/// The deliveries owed for the postbacks of `arrivals` (first arrived on day `from` or later).
async fn delivery_facts(
    store: &dyn Store,
    app_id: i64,
    from: i64,
    arrivals: &Arrivals,
) -> Result<Vec<DeliveryFact>, QualityError> {
    Ok(store
        .delivery_records(app_id, from * DAY_MS)
        .await?
        .into_iter()
        .filter_map(|d| {
            let (arrival_day, first_ms) = *arrivals.get(&d.postback_id)?;
            Some(DeliveryFact {
                destination_id: d.destination_id,
                arrival_day,
                delivered_after_ms: d.delivered_at.map(|at| at - first_ms),
            })
        })
        .collect())
}

/// The quality report of an app's arrival days `from..=to`.
///
/// # Errors
/// [`QualityError::Range`] for a reversed or too long range; store and schema errors.
pub async fn report(
    store: &dyn Store,
    schemas: &SchemaVersions,
    app_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<QualityReport, QualityError> {
    check_range(from, to)?;
    let (postbacks, arrivals) =
        postback_facts(store, schemas, app_id, day_number(from), day_number(to)).await?;
    let deliveries = delivery_facts(store, app_id, day_number(from), &arrivals).await?;
    let mut deliveries = delivery_rows(&deliveries);
    if !deliveries.is_empty() {
        let names: HashMap<i64, String> =
            store.list_destinations().await?.into_iter().map(|d| (d.id, d.name)).collect();
        for row in &mut deliveries {
            row.destination_name = names.get(&row.destination_id).cloned();
        }
    }
    Ok(QualityReport { app_id, from, to, rows: quality_rows(&postbacks), deliveries })
}

/// Judge an app's last complete day and, on the hours that have passed, the day in progress;
/// store what is new and unmuted. Returns the anomalies this call stored (another receiver that
/// found the same ones first stored them instead).
///
/// # Errors
/// Store and schema errors.
pub async fn detect_app(
    store: &dyn Store,
    schemas: &SchemaVersions,
    app_id: i64,
    now_ms: i64,
    rules: &DetectionRules,
) -> Result<Vec<Anomaly>, QualityError> {
    let today = now_ms.div_euclid(DAY_MS);
    let elapsed = now_ms.rem_euclid(DAY_MS);
    let (postbacks, _) =
        postback_facts(store, schemas, app_id, today - 1 - rules.baseline_days, today).await?;
    let whole_days = day_counts(&postbacks, None);
    let mut findings: Vec<Finding> = detect(&whole_days, today - 1, false, rules);
    findings.extend(detect(&day_counts(&postbacks, Some(elapsed)), today, true, rules));
    let mutes = store.mutes(app_id).await?;
    let mut stored = Vec::new();
    for f in findings {
        let record = StoredAnomaly {
            id: 0,
            app_id,
            ad_network_id: f.ad_network_id,
            metric: f.metric.as_str().to_owned(),
            day: day_number(f.day),
            expected: f.expected,
            expected_low: f.expected_low,
            expected_high: f.expected_high,
            observed: f.observed,
            score: f.score,
            baseline_from: day_number(f.baseline_from),
            baseline_to: day_number(f.baseline_to),
            baseline_days: f.baseline_days,
            partial_day: f.partial_day,
            detected_at: now_ms,
            acknowledged_at: None,
            acknowledged_by: None,
        };
        let anomaly = Anomaly::of(record.clone(), &mutes);
        if anomaly.muted {
            continue;
        }
        if let Some(id) = store.insert_anomaly(&record).await? {
            metrics::counter!("skan_anomalies_total", "metric" => f.metric.as_str()).increment(1);
            stored.push(Anomaly { id, ..anomaly });
        }
    }
    // The last complete day's rates, for dashboards and alert rules outside the service.
    for ((day, network), counts) in &whole_days {
        if *day != today - 1 {
            continue;
        }
        for metric in Metric::ALL {
            if let Some((value, _)) = counts.metric(metric) {
                metrics::gauge!("skan_quality", "app_id" => app_id.to_string(),
                    "ad_network_id" => network.clone(), "metric" => metric.as_str())
                .set(value);
            }
        }
    }
    Ok(stored)
}

/// Every app's detection, by whichever receiver holds the lease.
///
/// # Errors
/// Store and schema errors (the first one met; the other apps are still judged).
pub async fn detect_all(
    store: &dyn Store,
    schemas: &SchemaVersions,
    now_ms: i64,
    rules: &DetectionRules,
) -> Result<Vec<Anomaly>, QualityError> {
    let mut found = Vec::new();
    let mut first_error = None;
    for app in store.list_apps().await? {
        match detect_app(store, schemas, app.app_id, now_ms, rules).await {
            Ok(stored) => found.extend(stored),
            Err(err) => {
                tracing::warn!(app_id = app.app_id, error = %err, "quality detection failed");
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) if found.is_empty() => Err(err),
        _ => Ok(found),
    }
}

/// An app's anomalies of a day range, with whether a mute covers each.
///
/// # Errors
/// [`QualityError::Range`]; store errors.
pub async fn anomalies(
    store: &dyn Store,
    app_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Anomaly>, QualityError> {
    check_range(from, to)?;
    let mutes = store.mutes(app_id).await?;
    Ok(store
        .anomalies(app_id, day_number(from), day_number(to))
        .await?
        .into_iter()
        .map(|a| Anomaly::of(a, &mutes))
        .collect())
}

/// Acknowledge an anomaly.
///
/// # Errors
/// [`QualityError::NotFound`]; store errors.
pub async fn acknowledge(
    store: &dyn Store,
    app_id: i64,
    id: i64,
    by: &str,
    now_ms: i64,
) -> Result<Anomaly, QualityError> {
    let stored = store
        .acknowledge_anomaly(app_id, id, by, now_ms)
        .await?
        .ok_or(QualityError::NotFound(app_id, id))?;
    let mutes = store.mutes(app_id).await?;
    Ok(Anomaly::of(stored, &mutes))
}

/// Mute or unmute a metric for one network (`None`: every network of the app).
///
/// # Errors
/// [`QualityError::UnknownMetric`]; store errors.
pub async fn set_mute(
    store: &dyn Store,
    app_id: i64,
    ad_network_id: Option<&str>,
    metric: &str,
    muted: bool,
    by: &str,
    now_ms: i64,
) -> Result<Vec<StoredMute>, QualityError> {
    let Some(metric) = Metric::from_name(metric) else {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        return Err(QualityError::UnknownMetric(metric.to_owned(), names.join(", ")));
    };
    let mute = StoredMute {
        app_id,
        ad_network_id: ad_network_id.unwrap_or_default().to_owned(),
        metric: metric.as_str().to_owned(),
        muted_at: now_ms,
        muted_by: by.to_owned(),
    };
    store.set_mute(&mute, muted).await?;
    Ok(store.mutes(app_id).await?)
}

/// Run detection every `every` on each receiver; the lease makes one of them do the work per
/// turn (and lets another take over when that one stops).
pub async fn run_schedule(
    store: Arc<dyn Store>,
    schemas: SchemaVersions,
    clock: Arc<dyn Clock>,
    holder: String,
    every: Duration,
    rules: DetectionRules,
) {
    let detection = Arc::new((Arc::clone(&store), schemas, rules));
    crate::leased::run_schedule(store, clock, "quality-detect", holder, every, move |now_ms| {
        let detection = Arc::clone(&detection);
        async move {
            let (store, schemas, rules) = &*detection;
            match detect_all(store.as_ref(), schemas, now_ms, rules).await {
                Ok(found) if !found.is_empty() => {
                    tracing::warn!(anomalies = found.len(), "data-quality anomalies found");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "data-quality detection failed"),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_range_defaults_to_the_four_weeks_ending_today_and_names_a_bad_day() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        assert_eq!(day_range(None, None, today).unwrap(), (day("2026-11-02"), today));
        assert_eq!(
            day_range(None, Some("2026-10-31"), today).unwrap(),
            (day("2026-10-04"), day("2026-10-31"))
        );
        assert!(matches!(
            day_range(Some("2026-11-31"), None, today),
            Err(QualityError::Day("from", text)) if text == "2026-11-31"
        ));
        assert!(matches!(
            day_range(None, Some("yesterday"), today),
            Err(QualityError::Day("to", _))
        ));
    }
}

//! Data quality: `GET /v1/apps/{app_id}/quality`, the anomalies found, acknowledging them, and
//! muting a metric of a network.

use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, EditorRole, Json, Path, Query, ViewerRole};
use crate::quality::{self, Anomaly, QualityError, QualityReport};
use crate::store::StoredMute;

/// A day range.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct DayRange {
    /// First arrival day YYYY-MM-DD, inclusive.
    from: Option<String>,
    /// Last arrival day YYYY-MM-DD, inclusive (at most 400 days).
    to: Option<String>,
}

impl DayRange {
    fn resolve(&self, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
        Ok(quality::day_range(self.from.as_deref(), self.to.as_deref(), today)?)
    }
}

impl From<QualityError> for ApiError {
    fn from(err: QualityError) -> Self {
        match err {
            QualityError::Day(field, _) => {
                Self::bad_request("invalid_parameter", err.to_string(), Some(field))
            }
            QualityError::Range(message) => {
                Self::bad_request("invalid_parameter", message, Some("from"))
            }
            QualityError::UnknownMetric(..) => {
                Self::bad_request("invalid_parameter", err.to_string(), Some("metric"))
            }
            QualityError::NotFound(..) => Self::not_found(err.to_string()),
            QualityError::Schema(e) => e.into(),
            QualityError::Store(e) => e.into(),
        }
    }
}

fn today(state: &AppState) -> NaiveDate {
    state.clock.now().date_naive()
}

/// Per arrival day and ad network: postbacks, copies per postback, valid / invalid /
/// unverifiable rates, null-value, unmapped-value and unsigned-mismatch rates, which channels
/// sent the postbacks, median arrival delay per window; per day and destination, the share of
/// owed deliveries delivered and p50/p95 time to delivery.
#[utoipa::path(
    get,
    path = "/v1/apps/{app_id}/quality",
    tag = "quality",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID"), DayRange),
    responses(
        (status = 200, description = "The quality report", body = QualityReport),
        (status = 400, description = "A malformed or too long range", body = crate::error_body::ErrorEnvelope),
        (status = 401, description = "No or unknown API key", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn get_quality(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
    Query(range): Query<DayRange>,
) -> Result<Json<QualityReport>, ApiError> {
    let (from, to) = range.resolve(today(&state))?;
    Ok(Json(quality::report(state.store.as_ref(), &state.schemas, app_id, from, to).await?))
}

/// The anomalies found for an app (by default in the last 28 days), newest first: each names
/// the metric, the network, the expected range, the observed value and the baseline days.
#[utoipa::path(
    get,
    path = "/v1/apps/{app_id}/anomalies",
    tag = "quality",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID"), DayRange),
    responses(
        (status = 200, description = "Anomalies", body = Vec<Anomaly>),
        (status = 400, description = "A malformed range", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn list_anomalies(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
    Query(range): Query<DayRange>,
) -> Result<Json<Vec<Anomaly>>, ApiError> {
    let (from, to) = range.resolve(today(&state))?;
    Ok(Json(quality::anomalies(state.store.as_ref(), app_id, from, to).await?))
}

/// Acknowledge an anomaly (someone is on it); the first acknowledgement is kept.
#[utoipa::path(
    post,
    path = "/v1/apps/{app_id}/anomalies/{id}/acknowledge",
    tag = "quality",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID"), ("id" = i64, Path, description = "Anomaly")),
    responses(
        (status = 200, description = "The anomaly, acknowledged", body = Anomaly),
        (status = 404, description = "No such anomaly", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn acknowledge_anomaly(
    State(state): State<AppState>,
    auth: Auth<EditorRole>,
    Path((app_id, id)): Path<(i64, i64)>,
) -> Result<Json<Anomaly>, ApiError> {
    let now = state.clock.now_ms();
    Ok(Json(quality::acknowledge(state.store.as_ref(), app_id, id, &auth.key.name, now).await?))
}

/// Which metric to mute, and for which network.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct MuteRequest {
    /// Metric name (`postbacks`, `invalid_rate`, `fine_value_shift`, ...).
    metric: String,
    /// Ad network; absent: every network of the app.
    ad_network_id: Option<String>,
}

/// Mute a metric of a network (or of every network): no anomaly of it is stored or alerted
/// until unmuted. Answers the app's mutes.
#[utoipa::path(
    put,
    path = "/v1/apps/{app_id}/mutes",
    tag = "quality",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID")),
    request_body = MuteRequest,
    responses(
        (status = 200, description = "The app's mutes", body = Vec<StoredMute>),
        (status = 400, description = "An unknown metric", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn put_mute(
    State(state): State<AppState>,
    auth: Auth<EditorRole>,
    Path(app_id): Path<i64>,
    Json(mute): Json<MuteRequest>,
) -> Result<Json<Vec<StoredMute>>, ApiError> {
    set_mute(&state, &auth.key.name, app_id, &mute, true).await
}

async fn set_mute(
    state: &AppState,
    by: &str,
    app_id: i64,
    mute: &MuteRequest,
    muted: bool,
) -> Result<Json<Vec<StoredMute>>, ApiError> {
    let now = state.clock.now_ms();
    let network = mute.ad_network_id.as_deref();
    let store = state.store.as_ref();
    Ok(Json(quality::set_mute(store, app_id, network, &mute.metric, muted, by, now).await?))
}

/// Unmute a metric of a network (or of every network).
#[utoipa::path(
    delete,
    path = "/v1/apps/{app_id}/mutes",
    tag = "quality",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID")),
    request_body = MuteRequest,
    responses(
        (status = 200, description = "The app's mutes", body = Vec<StoredMute>),
        (status = 400, description = "An unknown metric", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn delete_mute(
    State(state): State<AppState>,
    auth: Auth<EditorRole>,
    Path(app_id): Path<i64>,
    Json(mute): Json<MuteRequest>,
) -> Result<Json<Vec<StoredMute>>, ApiError> {
    set_mute(&state, &auth.key.name, app_id, &mute, false).await
}

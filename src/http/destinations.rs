//! Destination and delivery endpoints (role `admin`): manage where postbacks are forwarded,
//! preview and test requests, read every attempt, retry and replay.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminRole, Auth, Json, Path, Query};
use super::params::{page_size, paginate, parse_time};
use crate::dispatch::service::{CreatedDestination, DeliveryDetail};
use crate::dispatch::{DestinationConfig, DestinationView, PreviewView, TestSendView};
use crate::store::{DeliveryQuery, DeliveryState, ReplayCounts, StoredDelivery};

/// Every destination.
#[utoipa::path(
    get, path = "/v1/destinations", tag = "destinations", security(("api_key" = [])),
    responses((status = 200, body = Vec<DestinationView>))
)]
pub(crate) async fn list_destinations(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
) -> Result<Json<Vec<DestinationView>>, ApiError> {
    Ok(Json(state.dispatcher.destinations().await?))
}

/// Create a destination. `"signing": {"secrets": []}` generates a secret, returned once.
#[utoipa::path(
    post, path = "/v1/destinations", tag = "destinations", security(("api_key" = [])),
    request_body = DestinationConfig,
    responses(
        (status = 201, body = CreatedDestination),
        (status = 409, description = "The name is taken", body = crate::error_body::ErrorEnvelope),
        (status = 422, description = "Invalid document; `field` names the culprit", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn create_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Json(config): Json<DestinationConfig>,
) -> Result<(StatusCode, Json<CreatedDestination>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.dispatcher.create_destination(config).await?)))
}

/// One destination (secrets masked).
#[utoipa::path(
    get, path = "/v1/destinations/{id}", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Destination id")),
    responses((status = 200, body = DestinationView), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn get_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(state.dispatcher.destination(id).await?))
}

/// Replace a destination's document; masked secrets keep their stored value. Setting
/// `enabled` clears an automatic disabling.
#[utoipa::path(
    put, path = "/v1/destinations/{id}", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Destination id")),
    request_body = DestinationConfig,
    responses(
        (status = 200, body = DestinationView),
        (status = 404, body = crate::error_body::ErrorEnvelope),
        (status = 422, body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn put_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
    Json(config): Json<DestinationConfig>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(state.dispatcher.update_destination(id, config).await?))
}

/// Delete a destination with its deliveries and their attempt log.
#[utoipa::path(
    delete, path = "/v1/destinations/{id}", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Destination id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn delete_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.dispatcher.delete_destination(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which postback to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewRequest {
    /// A stored postback's id.
    postback_id: i64,
}

/// Render the request a stored postback would make, without sending it.
#[utoipa::path(
    post, path = "/v1/destinations/{id}/preview", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Destination id")),
    request_body = PreviewRequest,
    responses((status = 200, body = PreviewView), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn preview_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
    Json(request): Json<PreviewRequest>,
) -> Result<Json<PreviewView>, ApiError> {
    Ok(Json(state.dispatcher.preview(id, request.postback_id).await?))
}

/// Send a sample postback now and report what the partner answered (nothing is stored).
#[utoipa::path(
    post, path = "/v1/destinations/{id}/test", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Destination id")),
    responses((status = 200, body = TestSendView), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn test_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
) -> Result<Json<TestSendView>, ApiError> {
    Ok(Json(state.dispatcher.test_send(id).await?))
}

/// A time range to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// Postbacks first received at or after this (RFC 3339 or YYYY-MM-DD).
    from: String,
    /// ... and before this.
    to: String,
    /// Also send again what was delivered or skipped (default: only missing and dead).
    #[serde(default)]
    resend_delivered: bool,
}

/// Queue a time range of postbacks for this destination again: deliveries are created where
/// missing (a destination added later, or disabled at the time) and dead ones are retried.
#[utoipa::path(
    post, path = "/v1/destinations/{id}/replay", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Destination id")),
    request_body = ReplayBody,
    responses(
        (status = 202, body = ReplayCounts),
        (status = 404, body = crate::error_body::ErrorEnvelope),
        (status = 422, body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn replay_destination(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
    Json(body): Json<ReplayBody>,
) -> Result<(StatusCode, Json<ReplayCounts>), ApiError> {
    let from = parse_time(&body.from, "from")?;
    let to = parse_time(&body.to, "to")?;
    Ok((
        StatusCode::ACCEPTED,
        Json(state.dispatcher.replay(id, from, to, body.resend_delivered).await?),
    ))
}

/// Filters for listing deliveries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryParams {
    /// Destination id.
    destination: Option<i64>,
    /// Only deliveries of this postback.
    postback_id: Option<i64>,
    /// `pending`, `delivered`, `dead` or `skipped`.
    state: Option<String>,
    /// Created at or after (RFC 3339 or YYYY-MM-DD).
    since: Option<String>,
    /// Page size, 1-1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` from the previous page.
    cursor: Option<i64>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    /// The deliveries.
    pub items: Vec<StoredDelivery>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<i64>,
}

/// Deliveries by destination, state and time, newest first.
#[utoipa::path(
    get, path = "/v1/deliveries", tag = "destinations", security(("api_key" = [])),
    params(DeliveryParams),
    responses((status = 200, body = DeliveryPage), (status = 400, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = page_size(params.limit)?;
    let delivery_state = params
        .state
        .as_deref()
        .map(|s| {
            DeliveryState::from_name(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("expected pending, delivered, dead or skipped, got {s:?}"),
                    Some("state"),
                )
            })
        })
        .transpose()?;
    let query = DeliveryQuery {
        destination_id: params.destination,
        postback_id: params.postback_id,
        state: delivery_state,
        since_ms: params.since.as_deref().map(|s| parse_time(s, "since")).transpose()?,
        before_id: params.cursor,
        limit: limit + 1,
    };
    let rows = state.dispatcher.deliveries(&query).await?;
    let (items, next_cursor) = paginate(rows, limit, |d| d.id);
    Ok(Json(DeliveryPage { items, next_cursor }))
}

/// One delivery and every attempt: time, status, latency, the first bytes of the answer, error.
#[utoipa::path(
    get, path = "/v1/deliveries/{id}", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Delivery id")),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn get_delivery(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    Ok(Json(state.dispatcher.delivery(id).await?))
}

/// Attempt a delivery now: a pending one keeps its retry schedule, a dead, delivered or skipped
/// one gets one more attempt.
#[utoipa::path(
    post, path = "/v1/deliveries/{id}/retry", tag = "destinations", security(("api_key" = [])),
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 202, body = StoredDelivery),
        (status = 404, body = crate::error_body::ErrorEnvelope),
        (status = 409, description = "Being sent right now", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn retry_delivery(
    State(state): State<AppState>,
    _auth: Auth<AdminRole>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<StoredDelivery>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.dispatcher.retry(id).await?)))
}

//! Liveness, readiness, metrics and the API description.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::Json;
use crate::error_body::ErrorBody;

/// Health status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Status {
    /// `ok` or `ready`.
    pub status: String,
}

/// The process is up (it answers HTTP). Use `/readyz` to know whether it can store postbacks.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
pub(crate) async fn get_health() -> Json<Status> {
    Json(Status { status: "ok".to_owned() })
}

/// The database answers and every embedded migration is applied.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Not ready", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn get_ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state.store.ping().await?;
    let pending = state.store.pending_migrations().await?;
    if pending > 0 {
        return Err(ApiError::Unavailable(format!("{pending} migration(s) not applied")));
    }
    Ok(Json(Status { status: "ready".to_owned() }))
}

/// Prometheus metrics: postbacks by protocol, version, outcome and channel; ingest latency;
/// batch and commit-group sizes; database errors.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    match &state.metrics {
        Some(handle) => {
            handle.run_upkeep();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(ErrorBody::new("not_found", "metrics are not enabled").envelope()),
        )
            .into_response(),
    }
}

/// This API's OpenAPI 3.1 description, generated from the code.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI document", body = Object))
)]
pub(crate) async fn get_openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.as_ref().clone())
}

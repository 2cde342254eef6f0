//! What the caller's key is and which apps exist: what a client such as the web console needs
//! before it can offer anything.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{AnyRole, Auth, Json, ViewerRole};
use crate::store::{AppSummary, Role};

/// The key a request was made with, and what its role may do.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// The key's name.
    pub name: String,
    /// `ingest`, `viewer`, `editor` or `admin`.
    pub role: String,
    /// First characters of the key, to recognise it.
    pub key_prefix: String,
    /// What the role allows: `submit_postbacks`, `read`, `edit_schemas`, `manage_destinations`.
    pub permissions: Vec<String>,
}

/// Who am I: the key's name, role and permissions.
#[utoipa::path(
    get, path = "/v1/session", tag = "operations", security(("api_key" = [])),
    responses(
        (status = 200, body = SessionView),
        (status = 401, description = "No or unknown API key", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn get_session(auth: Auth<AnyRole>) -> Json<SessionView> {
    let role = auth.key.role;
    let permissions = [
        (Role::Ingest, "submit_postbacks"),
        (Role::Viewer, "read"),
        (Role::Editor, "edit_schemas"),
        (Role::Admin, "manage_destinations"),
    ]
    .into_iter()
    .filter(|(needed, _)| role.allows(*needed))
    .map(|(_, name)| name.to_owned())
    .collect();
    Json(SessionView {
        name: auth.key.name,
        role: role.as_str().to_owned(),
        key_prefix: auth.key.key_prefix,
        permissions,
    })
}

/// Every app with postbacks or a schema.
#[utoipa::path(
    get, path = "/v1/apps", tag = "reports", security(("api_key" = [])),
    responses((status = 200, body = Vec<AppSummary>))
)]
pub(crate) async fn list_apps(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
) -> Result<Json<Vec<AppSummary>>, ApiError> {
    Ok(Json(state.store.list_apps().await?))
}

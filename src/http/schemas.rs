//! Conversion-value schema endpoints: per app, versioned; editors write, viewers read.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, EditorRole, Json, Path, ViewerRole};
use crate::error_body::ErrorBody;
use crate::report::{self, ReportQuery, Simulation};
use crate::schema::{Generator, Schema, SchemaDiff, ValidationReport, validate};
use crate::schema_versions::{Applied, DraftDiff, SchemaVersionView};
use crate::store::DateType;

fn app(app_id: i64) -> Result<i64, ApiError> {
    if app_id < 0 {
        return Err(ApiError::bad_request(
            "invalid_path",
            format!("app IDs are not negative, got {app_id}"),
            Some("app_id"),
        ));
    }
    Ok(app_id)
}

/// A new schema version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSchemaRequest {
    /// The schema.
    schema: Schema,
    /// When it takes effect (RFC 3339); default now. Earlier times re-decode history.
    #[serde(default)]
    effective_from: Option<DateTime<Utc>>,
    /// Why it changed.
    #[serde(default)]
    note: Option<String>,
}

/// A schema to check without storing it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidateRequest {
    /// The draft schema.
    schema: Schema,
}

/// A draft to try on past data.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimulateRequest {
    /// The draft schema.
    schema: Schema,
    /// First day (YYYY-MM-DD), inclusive.
    from: NaiveDate,
    /// Last day (YYYY-MM-DD), inclusive.
    to: NaiveDate,
    /// `install` (estimated install day, default) or `arrival`.
    #[serde(default)]
    date_type: Option<DateType>,
    /// Report dimensions, as for `GET /v1/reports`.
    #[serde(default)]
    group_by: Vec<String>,
}

/// A generated schema and its validation report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Generated {
    /// The schema, ready to PUT.
    pub schema: Schema,
    /// Its validation report.
    pub report: ValidationReport,
}

/// The schema version in effect now.
#[utoipa::path(
    get,
    path = "/v1/apps/{app_id}/schema",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID of the app")),
    responses(
        (status = 200, body = SchemaVersionView),
        (status = 404, description = "No version in effect", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn get_schema(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
) -> Result<Json<SchemaVersionView>, ApiError> {
    Ok(Json(state.schemas.current(app(app_id)?).await?))
}

/// Store a new version of the app's schema. Refused (422, with the report) when it has errors.
#[utoipa::path(
    put,
    path = "/v1/apps/{app_id}/schema",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID of the app")),
    request_body = PutSchemaRequest,
    responses(
        (status = 201, description = "Stored as a new version", body = Applied),
        (status = 400, description = "Not a schema document", body = crate::error_body::ErrorEnvelope),
        (status = 403, description = "The key cannot edit", body = crate::error_body::ErrorEnvelope),
        (status = 422, description = "Validation errors; nothing stored", body = InvalidSchemaBody),
    )
)]
pub(crate) async fn put_schema(
    State(state): State<AppState>,
    auth: Auth<EditorRole>,
    Path(app_id): Path<i64>,
    Json(request): Json<PutSchemaRequest>,
) -> Result<(StatusCode, Json<Applied>), ApiError> {
    let applied = state
        .schemas
        .apply(app(app_id)?, request.schema, request.effective_from, &auth.key.name, request.note)
        .await?;
    Ok((StatusCode::CREATED, Json(applied)))
}

/// The 422 body: the error plus the full validation report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvalidSchemaBody {
    /// The first error.
    pub error: ErrorBody,
    /// Every error and warning.
    pub report: ValidationReport,
}

/// Every version of the app's schema, oldest first.
#[utoipa::path(
    get,
    path = "/v1/apps/{app_id}/schema/versions",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID of the app")),
    responses((status = 200, body = Vec<SchemaVersionView>))
)]
pub(crate) async fn list_schema_versions(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
) -> Result<Json<Vec<SchemaVersionView>>, ApiError> {
    Ok(Json(state.schemas.versions(app(app_id)?).await?))
}

/// One version of the app's schema.
#[utoipa::path(
    get,
    path = "/v1/apps/{app_id}/schema/versions/{n}",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID"), ("n" = i64, Path, description = "Version")),
    responses((status = 200, body = SchemaVersionView), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn get_schema_version(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path((app_id, n)): Path<(i64, i64)>,
) -> Result<Json<SchemaVersionView>, ApiError> {
    Ok(Json(state.schemas.version(app(app_id)?, n).await?))
}

/// What changed from version `n` to version `m`, value by value.
#[utoipa::path(
    get,
    path = "/v1/apps/{app_id}/schema/versions/{n}/diff/{m}",
    tag = "schemas",
    security(("api_key" = [])),
    params(
        ("app_id" = i64, Path, description = "App Store ID"),
        ("n" = i64, Path, description = "Older version"),
        ("m" = i64, Path, description = "Newer version"),
    ),
    responses((status = 200, body = SchemaDiff), (status = 404, body = crate::error_body::ErrorEnvelope))
)]
pub(crate) async fn diff_schema_versions(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path((app_id, n, m)): Path<(i64, i64, i64)>,
) -> Result<Json<SchemaDiff>, ApiError> {
    Ok(Json(state.schemas.diff(app(app_id)?, n, m).await?))
}

/// What a draft changes against the version in effect now, value by value (the review before
/// saving). Nothing is stored.
#[utoipa::path(
    post,
    path = "/v1/apps/{app_id}/schema/diff",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID")),
    request_body = ValidateRequest,
    responses(
        (status = 200, body = DraftDiff),
        (status = 422, description = "The draft has errors", body = InvalidSchemaBody),
    )
)]
pub(crate) async fn diff_draft(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
    Json(request): Json<ValidateRequest>,
) -> Result<Json<DraftDiff>, ApiError> {
    Ok(Json(state.schemas.diff_draft(app(app_id)?, request.schema).await?))
}

/// Check a draft schema without storing it.
#[utoipa::path(
    post,
    path = "/v1/apps/{app_id}/schema/validate",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID")),
    request_body = ValidateRequest,
    responses((status = 200, description = "The report, valid or not", body = ValidationReport))
)]
pub(crate) async fn validate_schema(
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
    Json(request): Json<ValidateRequest>,
) -> Result<Json<ValidationReport>, ApiError> {
    app(app_id)?;
    Ok(Json(validate(&request.schema)))
}

/// What the app's postbacks of a date range decode to under a draft schema, next to what they
/// decode to under the stored versions. Nothing is stored.
#[utoipa::path(
    post,
    path = "/v1/apps/{app_id}/schema/simulate",
    tag = "schemas",
    security(("api_key" = [])),
    params(("app_id" = i64, Path, description = "App Store ID")),
    request_body = SimulateRequest,
    responses(
        (status = 200, body = Simulation),
        (status = 422, description = "The draft has errors", body = InvalidSchemaBody),
    )
)]
pub(crate) async fn simulate_schema(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(app_id): Path<i64>,
    Json(request): Json<SimulateRequest>,
) -> Result<Json<Simulation>, ApiError> {
    let date_type = match request.date_type.unwrap_or(DateType::Install) {
        DateType::Install => "install",
        DateType::Arrival => "arrival",
    };
    let mut pairs = vec![
        ("app_id".to_owned(), app(app_id)?.to_string()),
        ("from".to_owned(), request.from.to_string()),
        ("to".to_owned(), request.to.to_string()),
        ("date_type".to_owned(), date_type.to_owned()),
    ];
    pairs.extend(request.group_by.into_iter().map(|d| ("group_by".to_owned(), d)));
    let query = ReportQuery::parse(&pairs).map_err(ApiError::from)?;
    Ok(Json(report::simulate(state.store.as_ref(), &state.schemas, &query, request.schema).await?))
}

/// Build a schema from a few parameters (revenue buckets, or a bit-packed layout) instead of
/// typing 64 entries. Nothing is stored.
#[utoipa::path(
    post,
    path = "/v1/schemas/generate",
    tag = "schemas",
    security(("api_key" = [])),
    request_body = Generator,
    responses(
        (status = 200, body = Generated),
        (status = 400, description = "Parameters do not make a schema", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn generate_schema(
    _auth: Auth<ViewerRole>,
    Json(generator): Json<Generator>,
) -> Result<Json<Generated>, ApiError> {
    let schema = generator
        .build()
        .map_err(|e| ApiError::bad_request("invalid_parameter", e.message, Some(&e.field)))?;
    let report = validate(&schema);
    Ok(Json(Generated { schema, report }))
}

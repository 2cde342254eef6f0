//! The one error type every handler returns, rendered as `{"error": {"code", "message", "field"}}`.
//!
//! The status-code mapping lives here and nowhere else. Server-side failures are logged once with
//! their cause and answered with an opaque body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
// The error renders itself; extractors (which wrap `axum::Json` to turn their rejections into
// this type) depend on it, never the other way round.
#[allow(clippy::disallowed_types)]
use axum::Json;

use crate::dispatch::DispatchError;
use crate::error_body::ErrorBody;
use crate::ingest::IngestError;
use crate::report::{QueryError, ReportError};
use crate::schema_versions::SchemaError;
use crate::store::StoreError;

/// Seconds a client should wait before retrying when the database is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed.
    BadRequest(ErrorBody),
    /// 401: no or unknown API key.
    Unauthorized(ErrorBody),
    /// 403: the key's role does not allow this.
    Forbidden(ErrorBody),
    /// 404: no such resource or route.
    NotFound(ErrorBody),
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the resource already exists.
    Conflict(ErrorBody),
    /// 413: the body is over the limit.
    PayloadTooLarge(ErrorBody),
    /// 429: too many requests from one client; `Retry-After` says when to come back.
    TooManyRequests(ErrorBody),
    /// 415: the body's content type is not accepted here.
    UnsupportedMediaType(ErrorBody),
    /// 422: well-formed but semantically invalid.
    Unprocessable(ErrorBody),
    /// 422 for a schema with validation errors, with the full report.
    InvalidSchema(crate::schema::ValidationReport),
    /// 503: the database (or the service) cannot take this now; retry after a pause.
    Unavailable(String),
    /// 500: a bug or an unexpected failure; details go to the log, not the client.
    Internal(String),
}

impl ApiError {
    /// 400 with a code, message and the field at fault.
    pub fn bad_request(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        let body = ErrorBody::new(code, message);
        Self::BadRequest(match field {
            Some(field) => body.with_field(field),
            None => body,
        })
    }

    /// The answer for a single submitted item that was rejected: 413 when it was too large,
    /// 400 otherwise.
    #[must_use]
    pub fn rejected_item(error: ErrorBody) -> Self {
        if error.code == "payload_too_large" {
            Self::PayloadTooLarge(error)
        } else {
            Self::BadRequest(error)
        }
    }

    /// 404 for a missing resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(ErrorBody::new("not_found", message))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => Self::Unavailable(e.to_string()),
            StoreError::Duplicate(message) => Self::Conflict(ErrorBody::new("conflict", message)),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::ShuttingDown => {
                Self::Unavailable("the service is shutting down".to_owned())
            }
            IngestError::Store(e) => e.into(),
            IngestError::EnvelopeNotAllowed { index } => Self::Forbidden(
                ErrorBody::new("envelope_not_allowed", err.to_string())
                    .with_field(format!("[{index}].received_at")),
            ),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        Self::bad_request("invalid_parameter", err.message, Some(&err.parameter))
    }
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::UnknownApp(app) => Self::bad_request(
                "unknown_app",
                format!("no postbacks or schema are known for app {app}"),
                Some("app_id"),
            ),
            ReportError::Schema(e) => e.into(),
            ReportError::Store(e) => e.into(),
        }
    }
}

impl From<SchemaError> for ApiError {
    fn from(err: SchemaError) -> Self {
        match err {
            SchemaError::Invalid(report) => Self::InvalidSchema(report),
            SchemaError::NotFound(message) => Self::not_found(message),
            SchemaError::Corrupt(message) => Self::Internal(message),
            SchemaError::Store(e) => e.into(),
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(err: DispatchError) -> Self {
        match err {
            DispatchError::NotFound(message) => Self::not_found(message),
            DispatchError::Invalid(e) => Self::Unprocessable(
                ErrorBody::new("invalid_destination", e.message).with_field(e.field),
            ),
            DispatchError::Busy(message) => Self::Conflict(ErrorBody::new("in_flight", message)),
            DispatchError::Corrupt(message) => Self::Internal(message),
            DispatchError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::BadRequest(body) => (StatusCode::BAD_REQUEST, body),
            Self::Unauthorized(body) => {
                let mut response =
                    (StatusCode::UNAUTHORIZED, Json(body.envelope())).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Self::Forbidden(body) => (StatusCode::FORBIDDEN, body),
            Self::NotFound(body) => (StatusCode::NOT_FOUND, body),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorBody::new("method_not_allowed", "this path does not accept this HTTP method"),
            ),
            Self::Conflict(body) => (StatusCode::CONFLICT, body),
            Self::PayloadTooLarge(body) => (StatusCode::PAYLOAD_TOO_LARGE, body),
            Self::TooManyRequests(body) => (StatusCode::TOO_MANY_REQUESTS, body),
            Self::UnsupportedMediaType(body) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, body),
            Self::Unprocessable(body) => (StatusCode::UNPROCESSABLE_ENTITY, body),
            Self::InvalidSchema(report) => {
                let first = report.errors.first();
                let mut error = ErrorBody::new(
                    "invalid_schema",
                    format!(
                        "the schema has {} error(s){}",
                        report.errors.len(),
                        first.map(|f| format!("; first: {}", f.message)).unwrap_or_default()
                    ),
                );
                error.field = first.and_then(|f| f.field.clone());
                let body = serde_json::json!({ "error": error, "report": report });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %cause, "answering 503");
                let body = ErrorBody::new(
                    "unavailable",
                    format!(
                        "the service cannot store data right now; retry in {RETRY_AFTER_SECS} seconds"
                    ),
                );
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, Json(body.envelope())).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                return response;
            }
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorBody::new("internal", "internal error"))
            }
        };
        (status, Json(body.envelope())).into_response()
    }
}

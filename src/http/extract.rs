//! Request extractors whose failures are [`ApiError`]s, so even a malformed query string or path
//! gets the shared error body naming the parameter at fault. `clippy.toml` bans axum's own
//! `Json`, `Query` and `Path` everywhere else.
#![allow(clippy::disallowed_types)]

use std::marker::PhantomData;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::access::address_allowed;
use crate::error_body::ErrorBody;
use crate::store::{ApiKey, Role};

/// A JSON response, or a JSON request body read with field-level errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(
                |ct| {
                    ct.split(';')
                        .next()
                        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
                },
            );
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(ErrorBody::new(
                "unsupported_media_type",
                "send the body as application/json",
            )));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Deserialize JSON, naming the path of the first offending value.
///
/// # Errors
/// 400 `malformed_json` for syntax errors, 400 `invalid_value` with the field path otherwise.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request("malformed_json", format!("not valid JSON: {inner}"), None)
        } else {
            let field = (path != ".").then_some(path);
            ApiError::bad_request("invalid_value", inner.to_string(), field.as_deref())
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request("malformed_json", format!("not valid JSON: {e}"), None)
    })?;
    Ok(value)
}

/// Query parameters, with the parameter at fault named on error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|err| {
            let path = err.path().to_string();
            let field = (path != "." && path != "?").then_some(path);
            ApiError::bad_request(
                "invalid_parameter",
                err.into_inner().to_string(),
                field.as_deref(),
            )
        })
    }
}

/// Path parameters, with the parameter at fault named on error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                let field = match err.kind() {
                    axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
                    | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } => {
                        Some(key.clone())
                    }
                    // A single parameter is reported without its name; the route knows it.
                    _ => axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .ok()
                        .and_then(|params| {
                            let mut names = params.iter().map(|(name, _)| name.to_owned());
                            match (names.next(), names.next()) {
                                (Some(name), None) => Some(name),
                                _ => None,
                            }
                        }),
                };
                Err(ApiError::bad_request("invalid_path", err.body_text(), field.as_deref()))
            }
            Err(other) => Err(ApiError::Internal(other.body_text())),
        }
    }
}

/// The raw request body, within the route's size limit.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        Bytes::from_request(req, state).await.map(RawBody).map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(ref e)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                let _ = e;
                ApiError::PayloadTooLarge(ErrorBody::new(
                    "payload_too_large",
                    match limit {
                        Some(limit) => {
                            format!("the body exceeds the limit of {limit} bytes for this endpoint")
                        }
                        None => "the body exceeds this endpoint's size limit".to_owned(),
                    },
                ))
            }
            other => ApiError::bad_request("unreadable_body", other.body_text(), None),
        })
    }
}

/// The body limit of the route, recorded so that a 413 can say what it is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A role a route requires.
pub trait RequiredRole: Send + Sync {
    /// The role.
    const ROLE: Role;

    /// Whether a key with `role` may pass.
    #[must_use]
    fn admits(role: Role) -> bool {
        role.allows(Self::ROLE)
    }
}

/// Any valid key, whatever its role (for a key to learn what it may do).
#[derive(Debug)]
pub struct AnyRole;
impl RequiredRole for AnyRole {
    const ROLE: Role = Role::Ingest;

    fn admits(_: Role) -> bool {
        true
    }
}

/// Requires the `ingest` role.
#[derive(Debug)]
pub struct IngestRole;
impl RequiredRole for IngestRole {
    const ROLE: Role = Role::Ingest;
}

/// Requires the `viewer` role (or editor, or admin).
#[derive(Debug)]
pub struct ViewerRole;
impl RequiredRole for ViewerRole {
    const ROLE: Role = Role::Viewer;
}

/// Requires the `editor` role (or admin).
#[derive(Debug)]
pub struct EditorRole;
impl RequiredRole for EditorRole {
    const ROLE: Role = Role::Editor;
}

/// Requires the `admin` role.
#[derive(Debug)]
pub struct AdminRole;
impl RequiredRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// The caller's API key, checked against the role `R` requires.
#[derive(Debug)]
pub struct Auth<R> {
    /// The key that authenticated the request.
    pub key: ApiKey,
    role: PhantomData<R>,
}

impl<R: RequiredRole> FromRequestParts<AppState> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) =
            header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        else {
            return Err(ApiError::Unauthorized(
                ErrorBody::new(
                    "missing_api_key",
                    "send an API key as `Authorization: Bearer <key>`",
                )
                .with_field("Authorization"),
            ));
        };
        let Some(key) = state.auth.authenticate(token.trim()).await? else {
            return Err(ApiError::Unauthorized(
                ErrorBody::new("invalid_api_key", "the API key is unknown or revoked")
                    .with_field("Authorization"),
            ));
        };
        if !key.allowed_networks.is_empty() {
            let from = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip());
            if !from.is_some_and(|ip| address_allowed(&key.allowed_networks, ip)) {
                return Err(ApiError::Forbidden(
                    ErrorBody::new(
                        "address_not_allowed",
                        format!(
                            "the key {:?} may only be used from {}; this request came from {}",
                            key.name,
                            key.allowed_networks
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            from.map_or_else(
                                || "an unknown address".to_owned(),
                                |ip| ip.to_string()
                            )
                        ),
                    )
                    .with_field("Authorization"),
                ));
            }
        }
        if !R::admits(key.role) {
            return Err(ApiError::Forbidden(ErrorBody::new(
                "forbidden",
                format!(
                    "the key {:?} has role {}; this endpoint needs {}",
                    key.name,
                    key.role,
                    R::ROLE
                ),
            )));
        }
        Ok(Self { key, role: PhantomData })
    }
}

//! Postback endpoints: Apple's well-known paths, the forwarders' batch endpoint, and lookups.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, IngestRole, Json, Path, Query, RawBody, ViewerRole};
use super::params::{page_size, paginate, parse_time};
use crate::error_body::ErrorBody;
use crate::ingest::{ItemResult, Summary};
use crate::input::split_lines;
use crate::skan::{OutcomeClass, Postback};
use crate::store::{Channel, PostbackQuery, ReceiptResult, Role, StoredPostback};

/// Results of a submission to `/v1/postbacks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    /// One result per submitted item, in order.
    pub results: Vec<ItemResult>,
    /// Counts by result.
    pub summary: Summary,
}

async fn receive_from_apple(state: &AppState, body: Bytes) -> Result<Json<ItemResult>, ApiError> {
    let started = std::time::Instant::now();
    let mut results = state.ingestor.ingest(vec![body], Channel::Apple, None).await?;
    metrics::histogram!("skan_ingest_duration_seconds", "channel" => "apple")
        .record(started.elapsed().as_secs_f64());
    let result =
        results.pop().ok_or_else(|| ApiError::Internal("no result for the postback".to_owned()))?;
    match (result.result, &result.error) {
        (ReceiptResult::Rejected, Some(error)) => Err(ApiError::BadRequest(error.clone())),
        _ => Ok(Json(result)),
    }
}

/// Receive a SKAdNetwork postback (or developer copy) straight from an Apple device.
///
/// Open: Apple sends no credentials. 200 once stored (including duplicates and postbacks whose
/// signature fails, which are quarantined: a retry cannot fix them); 400 when the body is not a
/// postback; 503 with Retry-After when it cannot be stored now, so the device retries.
#[utoipa::path(
    post,
    path = "/.well-known/skadnetwork/report-attribution/",
    tag = "apple",
    request_body(content = String, content_type = "application/json", description = "The postback exactly as the device sends it"),
    responses(
        (status = 200, description = "Stored", body = ItemResult),
        (status = 400, description = "Not a postback", body = crate::error_body::ErrorEnvelope),
        (status = 413, description = "Body over the size limit", body = crate::error_body::ErrorEnvelope),
        (status = 503, description = "Cannot store now; retry", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn receive_skadnetwork(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<ItemResult>, ApiError> {
    receive_from_apple(&state, body).await
}

/// The same as `/.well-known/skadnetwork/report-attribution/`, without the trailing slash.
#[utoipa::path(
    post,
    path = "/.well-known/skadnetwork/report-attribution",
    tag = "apple",
    request_body(content = String, content_type = "application/json"),
    responses((status = 200, description = "Stored", body = ItemResult))
)]
pub(crate) async fn receive_skadnetwork_no_slash(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<ItemResult>, ApiError> {
    receive_from_apple(&state, body).await
}

/// Receive an AdAttributionKit postback (or developer copy) straight from an Apple device.
///
/// Same semantics as the SKAdNetwork path; either protocol is accepted on either path.
#[utoipa::path(
    post,
    path = "/.well-known/appattribution/report-attribution/",
    tag = "apple",
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored", body = ItemResult),
        (status = 400, description = "Not a postback", body = crate::error_body::ErrorEnvelope),
        (status = 503, description = "Cannot store now; retry", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn receive_adattributionkit(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<ItemResult>, ApiError> {
    receive_from_apple(&state, body).await
}

/// The same as `/.well-known/appattribution/report-attribution/`, without the trailing slash.
#[utoipa::path(
    post,
    path = "/.well-known/appattribution/report-attribution",
    tag = "apple",
    request_body(content = String, content_type = "application/json"),
    responses((status = 200, description = "Stored", body = ItemResult))
)]
pub(crate) async fn receive_adattributionkit_no_slash(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<ItemResult>, ApiError> {
    receive_from_apple(&state, body).await
}

/// Split a `/v1/postbacks` body into items: NDJSON by content type, otherwise one JSON postback
/// or a JSON array of them. A body that cannot be split at all is a 400.
fn split_body(headers: &HeaderMap, body: &Bytes) -> Result<(Vec<Bytes>, bool), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("application/x-ndjson" | "application/jsonl" | "application/ndjson") => {
            Ok((split_lines(body), true))
        }
        None | Some("application/json") => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'[') {
                let raws: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request("malformed_json", format!("not a valid JSON array: {e}"), None)
                })?;
                let items = raws.iter().map(|raw| body.slice_ref(raw.get().as_bytes())).collect();
                Ok((items, true))
            } else {
                Ok((vec![body.clone()], false))
            }
        }
        Some(other) => Err(ApiError::UnsupportedMediaType(
            ErrorBody::new(
                "unsupported_media_type",
                format!("{other} is not accepted: send application/json (one postback or an array) or application/x-ndjson"),
            )
            .with_field("Content-Type"),
        )),
    }
}

/// Submit postbacks as an ad network forwards them: one JSON postback, a JSON array, or NDJSON
/// (`Content-Type: application/x-ndjson`), with the forwarder's own keys left in place.
///
/// An `admin` key may also send backfill envelopes (`{"received_at", "channel", "source",
/// "postback"}`), which keep the original arrival time; any other key gets 403.
///
/// Answers one result per item once everything is stored. A single postback that is not
/// well-formed gets 400 with the error; in a batch, such items are reported as `rejected` and the
/// rest are stored.
#[utoipa::path(
    post,
    path = "/v1/postbacks",
    tag = "postbacks",
    security(("api_key" = [])),
    request_body(content = String, description = "A postback, a JSON array of postbacks, or NDJSON"),
    responses(
        (status = 200, description = "Every item processed and stored", body = SubmitResponse),
        (status = 400, description = "Malformed body", body = crate::error_body::ErrorEnvelope),
        (status = 401, description = "No or unknown API key", body = crate::error_body::ErrorEnvelope),
        (status = 403, description = "The key lacks the ingest role, or sent a backfill envelope without the admin role", body = crate::error_body::ErrorEnvelope),
        (status = 413, description = "Body or item count over the limit", body = crate::error_body::ErrorEnvelope),
        (status = 415, description = "Unsupported content type", body = crate::error_body::ErrorEnvelope),
        (status = 503, description = "Cannot store now; retry", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn submit_postbacks(
    State(state): State<AppState>,
    auth: Auth<IngestRole>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<SubmitResponse>, ApiError> {
    let started = std::time::Instant::now();
    let (items, is_batch) = split_body(&headers, &body)?;
    if items.is_empty() {
        return Err(ApiError::bad_request("empty_batch", "the body holds no postbacks", None));
    }
    if items.len() > state.settings.max_batch_items {
        return Err(ApiError::PayloadTooLarge(ErrorBody::new(
            "too_many_items",
            format!(
                "a batch may hold at most {} postbacks, this one has {}",
                state.settings.max_batch_items,
                items.len()
            ),
        )));
    }
    metrics::histogram!("skan_ingest_batch_items").record(items.len() as f64);
    let may_backdate = auth.key.role == Role::Admin;
    let results = state.ingestor.ingest_forwarded(items, auth.key.name, may_backdate).await?;
    metrics::histogram!("skan_ingest_duration_seconds", "channel" => "network")
        .record(started.elapsed().as_secs_f64());
    if !is_batch
        && let Some(ItemResult { result: ReceiptResult::Rejected, error: Some(error), .. }) =
            results.first()
    {
        return Err(ApiError::rejected_item(error.clone()));
    }
    let summary = Summary::of(&results);
    Ok(Json(SubmitResponse { results, summary }))
}

/// Filters for listing postbacks.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Exact `transaction-id` (SKAdNetwork) or `postback-identifier` (AdAttributionKit).
    transaction_id: Option<String>,
    /// `valid`, `invalid` or `unverifiable`.
    outcome: Option<String>,
    /// Only postbacks first received at or after this time (RFC 3339, or a date `YYYY-MM-DD`).
    since: Option<String>,
    /// Page size, 1-1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
}

/// A page of postbacks, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostbackPage {
    /// The postbacks.
    pub items: Vec<StoredPostback>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// List stored postbacks for support work: by transaction, outcome and time, newest first.
#[utoipa::path(
    get,
    path = "/v1/postbacks",
    tag = "postbacks",
    security(("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of postbacks", body = PostbackPage),
        (status = 400, description = "Bad parameter", body = crate::error_body::ErrorEnvelope),
        (status = 401, description = "No or unknown API key", body = crate::error_body::ErrorEnvelope),
        (status = 403, description = "The key cannot read", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn list_postbacks(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Query(params): Query<ListParams>,
) -> Result<Json<PostbackPage>, ApiError> {
    let limit = page_size(params.limit)?;
    let outcome = params
        .outcome
        .as_deref()
        .map(|o| match o {
            "valid" => Ok(OutcomeClass::Valid),
            "invalid" => Ok(OutcomeClass::Invalid),
            "unverifiable" => Ok(OutcomeClass::Unverifiable),
            other => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("expected valid, invalid or unverifiable, got {other:?}"),
                Some("outcome"),
            )),
        })
        .transpose()?;
    let since_ms = params.since.as_deref().map(|s| parse_time(s, "since")).transpose()?;
    let before_id = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "not a cursor from a previous page",
                    Some("cursor"),
                )
            })
        })
        .transpose()?;
    let query = PostbackQuery {
        transaction_id: params.transaction_id,
        outcome,
        since_ms,
        before_id,
        limit: limit + 1,
    };
    let rows = state.store.list_postbacks(&query).await?;
    let (items, next_cursor) = paginate(rows, limit, |p| p.id.to_string());
    Ok(Json(PostbackPage { items, next_cursor }))
}

/// One receipt of a postback, with its bytes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// Receipt id.
    pub id: i64,
    /// Arrival, RFC 3339.
    pub received_at: String,
    /// `apple` or `network`.
    pub channel: String,
    /// API key name for forwarded copies.
    pub source_name: Option<String>,
    /// What happened to this arrival.
    pub result: String,
    /// The body as received: text when it is UTF-8, else base64.
    pub raw: String,
    /// `utf8` or `base64`.
    pub raw_encoding: String,
}

/// A stored postback with its receipts and signature coverage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostbackDetail {
    /// The stored postback.
    #[serde(flatten)]
    pub postback: StoredPostback,
    /// First arrival, RFC 3339.
    pub first_received_at: String,
    /// When the install happened, estimated from arrival and window (see README).
    pub install_estimate: InstallInterval,
    /// What the conversion value means under the schema in effect for the install day
    /// (absent for quarantined postbacks).
    pub decoded: Option<crate::schema::Decoded>,
    /// Keys Apple's signature covers.
    pub signed_fields: Vec<String>,
    /// Keys present that the signature does not cover.
    pub unsigned_fields: Vec<String>,
    /// Every arrival, oldest first.
    pub receipts: Vec<ReceiptView>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// An estimated install interval.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstallInterval {
    /// Earliest possible install (RFC 3339).
    pub from: String,
    /// Latest possible install (RFC 3339).
    pub to: String,
    /// UTC day of the interval's midpoint, which reports group by.
    pub day: chrono::NaiveDate,
}

/// One stored postback with every receipt (raw bytes included) and which fields are signed.
#[utoipa::path(
    get,
    path = "/v1/postbacks/{id}",
    tag = "postbacks",
    security(("api_key" = [])),
    params(("id" = i64, Path, description = "Postback id")),
    responses(
        (status = 200, description = "The postback", body = PostbackDetail),
        (status = 404, description = "No such postback", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn get_postback(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(id): Path<i64>,
) -> Result<Json<PostbackDetail>, ApiError> {
    let postback = state
        .store
        .postback(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no postback {id}")))?;
    let receipts = state.store.receipts(id).await?;
    let decoded = if postback.outcome == "valid" {
        Some(state.schemas.decode_postback(&postback).await?)
    } else {
        None
    };
    let parsed = receipts.first().and_then(|r| Postback::parse(r.raw.clone()).ok());
    let receipts = receipts
        .into_iter()
        .map(|r| {
            let (raw, raw_encoding) = match String::from_utf8(r.raw) {
                Ok(text) => (text, "utf8"),
                Err(e) => {
                    (base64::engine::general_purpose::STANDARD.encode(e.into_bytes()), "base64")
                }
            };
            ReceiptView {
                id: r.id,
                received_at: rfc3339(r.received_at_ms),
                channel: r.channel,
                source_name: r.source_name,
                result: r.result,
                raw,
                raw_encoding: raw_encoding.to_owned(),
            }
        })
        .collect();
    Ok(Json(PostbackDetail {
        first_received_at: rfc3339(postback.first_received_at_ms),
        install_estimate: InstallInterval {
            from: rfc3339(postback.install_from_ms),
            to: rfc3339(postback.install_to_ms),
            day: crate::skan::day_from_number(postback.install_day),
        },
        decoded,
        signed_fields: parsed.as_ref().map(|p| owned(&p.signed_keys())).unwrap_or_default(),
        unsigned_fields: parsed.as_ref().map(|p| owned(&p.unsigned_keys())).unwrap_or_default(),
        postback,
        receipts,
    }))
}

fn owned(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|&key| key.to_owned()).collect()
}

//! `GET /v1/reports`: aggregated conversion reports, JSON or CSV.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, Json, ViewerRole};
use crate::error_body::ErrorBody;
use crate::report::csv::CsvRenderer;
use crate::report::{self, Report, ReportQuery};

/// The query string as a list of pairs (repeated keys kept).
#[must_use]
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A conversion report for one app: postbacks decoded with the schema in effect, grouped by any
/// of day, week, month, ad network, source identifier, window, fidelity, version, event, fine or
/// coarse value and tier, filtered by any dimension. Metrics are defined in the README.
#[utoipa::path(
    get,
    path = "/v1/reports",
    tag = "reports",
    security(("api_key" = [])),
    params(
        ("app_id" = i64, Query, description = "App Store ID (required)"),
        ("from" = String, Query, description = "First day YYYY-MM-DD, inclusive (required)"),
        ("to" = String, Query, description = "Last day YYYY-MM-DD, inclusive (required; at most 400 days)"),
        ("date_type" = Option<String>, Query, description = "install (estimated install day, default) or arrival"),
        ("group_by" = Option<String>, Query, description = "Comma-separated dimensions: day, week, month, ad_network_id, source_identifier, window, fidelity, version, event, fine_value, coarse_value, tier"),
        ("digits" = Option<u8>, Query, description = "Roll source identifiers up to their last 2, 3 or 4 digits"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
        ("include" = Option<String>, Query, description = "histograms: add fine and coarse value counts to every row"),
        ("ad_network_id" = Option<String>, Query, description = "Filter (comma-separated or repeated)"),
        ("source_identifier" = Option<String>, Query, description = "Filter"),
        ("window" = Option<String>, Query, description = "Filter: 0, 1, 2"),
        ("fidelity" = Option<String>, Query, description = "Filter: 0/view, 1/click"),
        ("version" = Option<String>, Query, description = "Filter: SKAdNetwork versions, or adattributionkit"),
        ("did_win" = Option<String>, Query, description = "Filter: true, false"),
        ("redownload" = Option<String>, Query, description = "Filter: true, false"),
        ("development" = Option<String>, Query, description = "Filter: true, false (default false: production only)"),
    ),
    responses(
        (status = 200, description = "The report (JSON, or CSV with format=csv)", body = Report),
        (status = 400, description = "A parameter is missing, unknown or malformed", body = crate::error_body::ErrorEnvelope),
        (status = 401, description = "No or unknown API key", body = crate::error_body::ErrorEnvelope),
        (status = 403, description = "The key cannot read", body = crate::error_body::ErrorEnvelope),
    )
)]
pub(crate) async fn get_report(
    State(state): State<AppState>,
    _auth: Auth<ViewerRole>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut pairs = query_pairs(&uri);
    let format = match pairs.iter().position(|(k, _)| k == "format") {
        Some(i) => pairs.remove(i).1,
        None => "json".to_owned(),
    };
    if format != "json" && format != "csv" {
        return Err(ApiError::BadRequest(
            ErrorBody::new("invalid_parameter", format!("expected json or csv, got {format:?}"))
                .with_field("format"),
        ));
    }
    let query = ReportQuery::parse(&pairs)?;
    let report = report::run(state.store.as_ref(), &state.schemas, &query).await?;
    if format == "json" {
        return Ok(Json(report).into_response());
    }
    let renderer = CsvRenderer::new(&report);
    let header = Bytes::from(renderer.header());
    let rows = report
        .rows
        .into_iter()
        .map(move |row| Ok::<_, std::io::Error>(Bytes::from(renderer.row(&row))));
    let chunks = std::iter::once(Ok(header)).chain(rows);
    let mut response = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    Ok(response)
}

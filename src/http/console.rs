//! The web console: the files under `ui/`, embedded in the binary at build time and served at
//! `/ui/` with a strict Content-Security-Policy. The console is a plain client of the JSON API;
//! nothing here knows what it shows.

use super::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;
use crate::error_body::ErrorBody;

/// The console's files. Embedded in every build (the `debug-embed` feature), so tests serve
/// exactly what ships and a fresh `cargo build` needs no Node and no download.
#[derive(RustEmbed)]
#[folder = "ui/"]
#[exclude = "*.md"]
#[exclude = "screenshots/*"]
pub struct ConsoleFiles;

/// Same origin only, no inline script or style, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /ui` and `GET /ui/`: the console's page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{*path}`: one of the console's files.
pub(crate) async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// `GET /`: a browser is sent to the console; any other client gets the API's JSON 404 as
/// before, so scripts probing the root see no change.
pub(crate) async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        Redirect::to("/ui/").into_response()
    } else {
        ApiError::NotFound(ErrorBody::new("not_found", "no such endpoint; see /v1/openapi.json"))
            .into_response()
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = ConsoleFiles::get(path) else {
        return ApiError::NotFound(ErrorBody::new(
            "not_found",
            format!("the console has no file {path:?}"),
        ))
        .into_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata.sha256_hash().iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    // Revalidate every time: the files change with the binary, and a 304 costs one round trip.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

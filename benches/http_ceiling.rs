//! This machine's HTTP ceiling for ingest: a server on the service's HTTP stack (axum, hyper,
//! tokio) that reads each request's body and answers 200 without verifying or storing anything,
//! with an answer of the service's shape (one result per postback, so the load generator counts
//! them).
//! `bench/run.sh` points the load generator at it with the same postbacks and concurrency as the
//! real runs and prints end-to-end ingest as a share of it. Serves until killed.
//!
//!   cargo bench --bench http_ceiling -- 127.0.0.1:18999

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

async fn read_and_answer(uri: Uri, body: Bytes) -> Response {
    let json = |text: String| ([("content-type", "application/json")], text).into_response();
    if uri.path() == "/v1/postbacks" {
        let items = body.split(|b| *b == b'\n').filter(|line| !line.is_empty()).count();
        let results = vec![r#"{"result":"accepted"}"#; items].join(",");
        json(format!(r#"{{"results":[{results}]}}"#))
    } else {
        std::hint::black_box(body.len());
        json(r#"{"result":"accepted"}"#.to_owned())
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 18_999)));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("http ceiling server on {addr}");
    let app = axum::Router::new()
        .fallback(read_and_answer)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
    axum::serve(listener, app).await
}

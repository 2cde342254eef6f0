//! Hostile clients on the open endpoints: connections that never finish their headers, and one
//! address sending too fast.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{APPLE_VECTORS, Backend, TestApp, TestDb};

#[tokio::test]
async fn half_open_connections_are_timed_out_and_do_not_starve_normal_requests() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn_with(&db, |s| s.header_timeout = Duration::from_secs(4)).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /.well-known/skadnetwork/report-attribution/ HTTP/1.1\r\nHost: x\r\nContent-")
            .await
            .unwrap();
        slow.push(stream);
    }
    let opened = Instant::now();
    // Normal requests are served while the 500 wait.
    for _ in 0..20 {
        let response = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let body = APPLE_VECTORS[0].bytes();
    assert_eq!(app.post_apple(body).await.status(), 200);
    assert!(opened.elapsed() < Duration::from_secs(4), "served before any timeout");
    // After the header timeout every half-open connection has been closed by the server.
    tokio::time::sleep(Duration::from_millis(4600).saturating_sub(opened.elapsed())).await;
    let mut closed = 0;
    for stream in &mut slow {
        let mut buf = [0u8; 256];
        // EOF, an answer then EOF, or a reset: the server let go. Still waiting: it did not.
        if tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await.is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, 500, "every slow connection was closed");
    app.stop().await;
}

#[tokio::test]
async fn one_address_over_its_rate_gets_429_with_retry_after_then_recovers() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = TestApp::spawn_with(&db, |s| {
        s.rate_limit_per_ip = 1;
        s.rate_limit_burst = 3;
    })
    .await;
    let body = APPLE_VECTORS[0].bytes();
    for _ in 0..3 {
        assert_eq!(app.post_apple(body.clone()).await.status(), 200, "within the burst");
    }
    // One token a second: of the next few sent at once, one is refused (however slow the
    // machine, three more cannot take three seconds).
    let mut limited = None;
    for _ in 0..3 {
        let response = app.post_apple(body.clone()).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a request over the rate was refused");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let error: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
    // Other endpoints are not limited.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    // After the time Retry-After names, the address may send again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.post_apple(body).await.status(), 200, "recovered");
    app.stop().await;
}

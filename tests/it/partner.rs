//! A partner's endpoint on loopback: records every request it answers and answers as the test
//! says (status, delay, `Retry-After`), counting concurrent requests per idempotency key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// One answered request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    /// Path and query, exactly as sent.
    pub(crate) target: String,
    /// Header names in lower case.
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
    pub(crate) status: u16,
    pub(crate) at: Instant,
}

impl Seen {
    pub(crate) fn key(&self) -> String {
        self.headers.get("idempotency-key").cloned().unwrap_or_default()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The query parameters, decoded.
    pub(crate) fn query(&self) -> Vec<(String, String)> {
        let query = self.target.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }
}

#[derive(Debug)]
struct Behaviour {
    status: u16,
    delay: Duration,
    retry_after: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    in_flight: HashMap<String, usize>,
    max_in_flight_per_key: usize,
    in_flight_total: usize,
    max_in_flight_total: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Partner {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    counters: Arc<Mutex<Counters>>,
}

struct InFlight {
    key: String,
    counters: Arc<Mutex<Counters>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut c = self.counters.lock().unwrap();
        c.in_flight_total -= 1;
        if let Some(n) = c.in_flight.get_mut(&self.key) {
            *n -= 1;
        }
    }
}

impl Partner {
    pub(crate) async fn start() -> Self {
        let partner = Self {
            url: String::new(),
            seen: Arc::default(),
            behaviour: Arc::new(Mutex::new(Behaviour {
                status: 200,
                delay: Duration::ZERO,
                retry_after: None,
            })),
            counters: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = partner.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { state.answer(request).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, ..partner }
    }

    async fn answer(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body: Bytes = axum::body::to_bytes(body, 10 << 20).await.unwrap_or_default();
        let headers: BTreeMap<String, String> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let key = headers.get("idempotency-key").cloned().unwrap_or_default();
        let _guard = {
            let mut c = self.counters.lock().unwrap();
            c.in_flight_total += 1;
            c.max_in_flight_total = c.max_in_flight_total.max(c.in_flight_total);
            let n = c.in_flight.entry(key.clone()).or_default();
            *n += 1;
            let n = *n;
            c.max_in_flight_per_key = c.max_in_flight_per_key.max(n);
            InFlight { key, counters: Arc::clone(&self.counters) }
        };
        let (status, delay, retry_after) = {
            let b = self.behaviour.lock().unwrap();
            (b.status, b.delay, b.retry_after.clone())
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            target: parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
            headers,
            body: body.to_vec(),
            status,
            at: Instant::now(),
        });
        let mut response =
            (StatusCode::from_u16(status).unwrap(), "partner says hello").into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert("retry-after", value.parse().unwrap());
        }
        response
    }

    pub(crate) fn answer_with(&self, status: u16) {
        self.behaviour.lock().unwrap().status = status;
    }

    pub(crate) fn delay(&self, delay: Duration) {
        self.behaviour.lock().unwrap().delay = delay;
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// 2xx answers per idempotency key.
    pub(crate) fn successes_by_key(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.seen().iter().filter(|s| (200..300).contains(&s.status)) {
            *counts.entry(seen.key()).or_default() += 1;
        }
        counts
    }

    pub(crate) fn max_in_flight_per_key(&self) -> usize {
        self.counters.lock().unwrap().max_in_flight_per_key
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.counters.lock().unwrap().max_in_flight_total
    }

    /// Wait until `done` holds for what was seen, or fail after `secs` seconds.
    pub(crate) async fn wait_for(
        &self,
        secs: u64,
        what: &str,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; seen {} requests: {:#?}",
                seen.len(),
                seen.iter().map(|s| (&s.target, s.status)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Wait until an async condition holds, or fail after `secs` seconds.
pub(crate) async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

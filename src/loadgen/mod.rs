//! `skan-receiver loadgen`: drive a receiver with realistic signed traffic and measure it.
//!
//! Postbacks are generated and signed before the clock starts, so the generator's own signing
//! does not compete with the receiver for CPU during the run. With a target rate the load is
//! open-loop: request *i* is due at `start + i / rate` and its latency is measured from when it
//! was due, so a slow server cannot hide its queueing delay (no coordinated omission).

mod factory;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use factory::{FactoryConfig, FactoryError, PostbackFactory};

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// One postback per request on Apple's well-known path, as devices send them.
    Apple,
    /// Batches on `/v1/postbacks` as NDJSON, as networks forward them.
    Network {
        /// An API key with the `ingest` role.
        api_key: String,
        /// Postbacks per request.
        batch: usize,
    },
}

/// How to run the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the receiver, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Apple path or forwarded batches.
    pub target: Target,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Target postbacks per second; `None` sends as fast as the receiver answers.
    pub rate: Option<f64>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Postbacks sent.
    pub postbacks: usize,
    /// Requests sent.
    pub requests: usize,
    /// Requests answered 200.
    pub ok: usize,
    /// Other answers by status (or `error` for transport failures).
    pub failures: BTreeMap<String, usize>,
    /// Item results reported by the receiver (`accepted`, `duplicate`, ...).
    pub results: BTreeMap<String, usize>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Postbacks per second acknowledged.
    pub postbacks_per_second: f64,
    /// Request latency.
    pub latency_ms: Latency,
}

struct Outcome {
    latency: Duration,
    status: Option<u16>,
    results: Vec<String>,
}

/// Send `postbacks` to the receiver and measure.
///
/// # Errors
/// When the HTTP client cannot be built.
pub async fn run(postbacks: Vec<Vec<u8>>, config: &LoadConfig) -> Result<Report, reqwest::Error> {
    let client = crate::dispatch::sender::client_builder()
        .timeout(config.timeout)
        .pool_max_idle_per_host(config.concurrency)
        .build()?;
    let total = postbacks.len();
    let (path, requests): (String, Vec<Vec<u8>>) = match &config.target {
        Target::Apple => {
            (format!("{}/.well-known/skadnetwork/report-attribution/", config.url), postbacks)
        }
        Target::Network { batch, .. } => (
            format!("{}/v1/postbacks", config.url),
            postbacks
                .chunks((*batch).max(1))
                .map(|chunk| {
                    let mut body = Vec::new();
                    for postback in chunk {
                        body.extend_from_slice(postback);
                        body.push(b'\n');
                    }
                    body
                })
                .collect(),
        ),
    };
    let per_request = total as f64 / requests.len().max(1) as f64;
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency.max(1) {
        let (client, requests, next, path) =
            (client.clone(), Arc::clone(&requests), Arc::clone(&next), path.clone());
        let (target, rate) = (config.target.clone(), config.rate);
        workers.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = requests.get(i) else { break };
                let due = match rate {
                    Some(rate) if rate > 0.0 => {
                        let due = started + Duration::from_secs_f64(i as f64 * per_request / rate);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    _ => Instant::now(),
                };
                let mut request = client.post(&path).body(body.clone());
                request = match &target {
                    Target::Apple => request.header("content-type", "application/json"),
                    Target::Network { api_key, .. } => {
                        request.header("content-type", "application/x-ndjson").bearer_auth(api_key)
                    }
                };
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        let results = match body.get("results") {
                            Some(serde_json::Value::Array(items)) => items
                                .iter()
                                .map(|r| r["result"].as_str().unwrap_or("?").to_owned())
                                .collect(),
                            _ => body
                                .get("result")
                                .and_then(|r| r.as_str())
                                .map(str::to_owned)
                                .into_iter()
                                .collect(),
                        };
                        Outcome { latency: due.elapsed(), status: Some(status), results }
                    }
                    Err(_) => Outcome { latency: due.elapsed(), status: None, results: Vec::new() },
                };
                outcomes.push(outcome);
            }
            outcomes
        });
    }
    let mut outcomes = Vec::with_capacity(requests.len());
    while let Some(done) = workers.join_next().await {
        outcomes.extend(done.unwrap_or_default());
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(summarize(&outcomes, total, seconds))
}

fn summarize(outcomes: &[Outcome], postbacks: usize, seconds: f64) -> Report {
    let mut failures = BTreeMap::new();
    let mut results = BTreeMap::new();
    let mut ok = 0;
    let mut acknowledged = 0;
    for outcome in outcomes {
        match outcome.status {
            Some(200) => {
                ok += 1;
                acknowledged += outcome.results.len();
            }
            Some(status) => *failures.entry(status.to_string()).or_insert(0) += 1,
            None => *failures.entry("error".to_owned()).or_insert(0) += 1,
        }
        for result in &outcome.results {
            *results.entry(result.clone()).or_insert(0) += 1;
        }
    }
    let mut latencies: Vec<f64> =
        outcomes.iter().map(|o| o.latency.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
        }
    };
    Report {
        postbacks,
        requests: outcomes.len(),
        ok,
        failures,
        results,
        seconds,
        postbacks_per_second: acknowledged as f64 / seconds.max(1e-9),
        latency_ms: Latency { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: at(1.0) },
    }
}

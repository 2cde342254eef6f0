//! The sending side: a supervisor that keeps one worker per destination with due deliveries, and
//! the workers that claim, render, sign, send and complete.
//!
//! Each destination's worker runs on its own, bounded by the destination's concurrency cap, rate
//! limit and circuit breaker, so one slow or failing partner never delays another.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::policy::{AttemptResult, Decision, decide, parse_retry_after, troubles_partner};
use super::request::{Render, RenderedRequest};
use super::sender::OutgoingRequest;
use super::template::Values;
use super::{Destination, DispatchError, Dispatcher, signing, values};
use crate::group_commit::{self, CommitConfig, GroupHandle, GroupWrite};
use crate::store::{
    AttemptRecord, Backend, ClaimedDelivery, Completed, Completion, DeliveryUpdate, Store,
    StoreError, StoredDestination, StoredPostback,
};

/// Most deliveries one worker sends at once (a destination's own cap is usually lower).
const WORKER_MAX_IN_FLIGHT: u32 = 256;
/// How often queue metrics are refreshed.
const METRICS_EVERY: Duration = Duration::from_secs(10);

/// Records delivery results with [`crate::store::Store::complete_deliveries`], many per
/// transaction.
#[derive(Debug)]
struct CompleteWrite(Arc<dyn Store>);

impl GroupWrite for CompleteWrite {
    type Item = Completion;
    type Outcome = Completed;
    const OPERATION: &'static str = "complete_deliveries";

    async fn write(&self, items: &[Completion]) -> Result<Vec<Completed>, StoreError> {
        self.0.complete_deliveries(items).await
    }
}

type CompletionHandle = GroupHandle<CompleteWrite>;

/// What one [`Dispatcher::run_once`] step did; recorded results only (an attempt whose lease
/// was lost meanwhile is not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Deliveries claimed.
    pub claimed: usize,
    /// Delivered.
    pub delivered: usize,
    /// Failed and scheduled again.
    pub retried: usize,
    /// Gave up (dead, or the destination disabled).
    pub dead: usize,
    /// Not sent (the events filter, or the postback is gone).
    pub skipped: usize,
}

/// What a delivery is about.
#[derive(Debug, Clone, Copy)]
pub(super) enum Subject {
    /// A stored postback.
    Postback { app_id: i64, id: i64 },
    /// An anomaly, for an alert destination.
    Anomaly { app_id: i64, id: i64 },
    /// Neither (the database's check forbids it).
    Nothing,
}

/// What a delivery turns into before sending.
pub(super) enum Prepared {
    /// Send this.
    Send(Box<(RenderedRequest, OutgoingRequest)>),
    /// Do not send; why.
    Skip(String),
}

impl Dispatcher {
    /// Deliver until `shutdown` is cancelled: wake on new postbacks or every poll interval, keep a
    /// worker for each enabled destination, and on shutdown let sends in flight finish (each is
    /// bounded by its destination's timeout).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (completer, completer_task) = group_commit::spawn(
            Arc::new(CompleteWrite(Arc::clone(&self.store))),
            CommitConfig {
                max_items: 500,
                max_wait: Duration::ZERO,
                max_concurrent: match self.store.backend() {
                    Backend::Sqlite => 1,
                    Backend::Postgres => 2,
                },
            },
        );
        let mut workers: HashMap<i64, JoinHandle<()>> = HashMap::new();
        let mut metrics_due = tokio::time::Instant::now();
        loop {
            match self.store.list_destinations().await {
                Ok(destinations) => {
                    workers.retain(|_, handle| !handle.is_finished());
                    for destination in destinations.into_iter().filter(|d| d.enabled) {
                        workers.entry(destination.id).or_insert_with(|| {
                            let this = Arc::clone(&self);
                            let token = shutdown.clone();
                            let completer = completer.clone();
                            tokio::spawn(async move {
                                this.work(destination.id, completer, token).await;
                            })
                        });
                    }
                }
                Err(err) => tracing::warn!(error = %err, "dispatcher cannot list destinations"),
            }
            if tokio::time::Instant::now() >= metrics_due {
                self.publish_queue_metrics().await;
                metrics_due = tokio::time::Instant::now() + METRICS_EVERY;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
        for (_, handle) in workers {
            let _ = handle.await;
        }
        drop(completer);
        let _ = completer_task.await;
    }

    /// One destination's worker: claim what is due (within the breaker's allowance), send each in
    /// its own task, and go on until nothing is due or in flight. It claims again once half of
    /// what it may have in flight has finished, so claims stay few under load.
    async fn work(
        self: Arc<Self>,
        destination_id: i64,
        completer: CompletionHandle,
        shutdown: CancellationToken,
    ) {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut cap = WORKER_MAX_IN_FLIGHT;
        loop {
            while in_flight.try_join_next().is_some() {}
            let busy = u32::try_from(in_flight.len()).unwrap_or(WORKER_MAX_IN_FLIGHT);
            if busy > 0 && busy > cap / 2 {
                tokio::select! {
                    Some(_) = in_flight.join_next() => continue,
                    () = shutdown.cancelled() => break,
                }
            }
            let now_ms = self.clock.now_ms();
            let allowance = self.breaker(destination_id, |b| b.allowance(now_ms));
            let local_room = WORKER_MAX_IN_FLIGHT
                .saturating_sub(u32::try_from(in_flight.len()).unwrap_or(WORKER_MAX_IN_FLIGHT));
            let max = allowance.map_or(local_room, |a| a.min(local_room));
            let mut wait = None;
            let mut claimed_any = false;
            if max > 0 && !shutdown.is_cancelled() {
                let lease = format!(
                    "{}:{}",
                    self.settings.instance,
                    self.claims.fetch_add(1, Ordering::Relaxed)
                );
                match self.store.claim_deliveries(destination_id, &lease, now_ms, max).await {
                    Ok(claim) => {
                        let Some(stored) = claim.destination else { break };
                        wait = claim.wait_ms;
                        if !claim.deliveries.is_empty() {
                            claimed_any = true;
                            match self.parse(&stored) {
                                Ok(parsed) => {
                                    cap = parsed.config.max_concurrency.min(WORKER_MAX_IN_FLIGHT);
                                    if allowance == Some(1) {
                                        self.breaker(destination_id, |b| b.probe_started());
                                    }
                                    for delivery in claim.deliveries {
                                        let this = Arc::clone(&self);
                                        let (stored, parsed) =
                                            (stored.clone(), Arc::clone(&parsed));
                                        let completer = completer.clone();
                                        in_flight.spawn(async move {
                                            this.deliver(&stored, &parsed, delivery, &completer)
                                                .await;
                                        });
                                    }
                                }
                                Err(err) => {
                                    tracing::error!(destination = stored.name, error = %err, "cannot dispatch");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(destination_id, error = %err, "claiming deliveries failed");
                        wait = Some(
                            i64::try_from(self.settings.poll_interval.as_millis()).unwrap_or(1000),
                        );
                    }
                }
            }
            if in_flight.is_empty() && !claimed_any && wait.is_none() {
                break;
            }
            let pause = wait.map_or(self.settings.poll_interval, |ms| {
                Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1))
            });
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep(pause), if !claimed_any || in_flight.is_empty() => {}
                () = shutdown.cancelled() => break,
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    fn breaker<T>(
        &self,
        destination_id: i64,
        f: impl FnOnce(&mut super::breaker::Breaker) -> T,
    ) -> T {
        let mut breakers = self.breakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(breakers.entry(destination_id).or_default())
    }

    /// Send one claimed delivery and record the result.
    async fn deliver(
        &self,
        stored: &StoredDestination,
        destination: &Destination,
        claimed: ClaimedDelivery,
        completer: &CompletionHandle,
    ) {
        let key = format!("dlv_{}", claimed.id);
        let Some((completion, outcome)) =
            self.attempt(stored, destination, claimed, &|| self.clock.now_ms()).await
        else {
            return;
        };
        match completer.commit(vec![completion]).await {
            Ok(Ok(done)) => {
                if let Some(done) = done.into_iter().next() {
                    Self::count(stored, &done, outcome);
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(delivery = key, error = %err, "recording the attempt failed; it will be retried");
            }
            Err(_) => tracing::warn!(
                delivery = key,
                "stopping before the attempt was recorded; it will be retried"
            ),
        }
    }

    fn count(stored: &StoredDestination, done: &Completed, outcome: &'static str) {
        let outcome = if done.held { outcome } else { "lease_lost" };
        metrics::counter!("skan_deliveries_total", "destination" => stored.name.clone(), "outcome" => outcome)
            .increment(1);
        if let Some(reason) = &done.disabled {
            tracing::warn!(destination = stored.name, reason, "destination disabled");
        }
    }

    /// One step of delivery, for every enabled destination: claim what is due at `now_ms`
    /// (within each circuit breaker's allowance), send it, and record the results, all before
    /// returning. Time comes only from `now_ms`, so tests drive retries, backoff and the breaker
    /// with a manual clock instead of sleeping; the running service uses [`Dispatcher::run`].
    ///
    /// # Errors
    /// Database failures while listing, claiming or recording.
    pub async fn run_once(&self, now_ms: i64) -> Result<RunOutcome, DispatchError> {
        let mut outcome = RunOutcome::default();
        for stored in self.store.list_destinations().await?.into_iter().filter(|d| d.enabled) {
            let allowance = self.breaker(stored.id, |b| b.allowance(now_ms));
            let max = allowance.map_or(WORKER_MAX_IN_FLIGHT, |a| a.min(WORKER_MAX_IN_FLIGHT));
            if max == 0 {
                continue;
            }
            let lease = format!(
                "{}:{}",
                self.settings.instance,
                self.claims.fetch_add(1, Ordering::Relaxed)
            );
            let claim = self.store.claim_deliveries(stored.id, &lease, now_ms, max).await?;
            let Some(stored) = claim.destination else { continue };
            if claim.deliveries.is_empty() {
                continue;
            }
            let parsed = self.parse(&stored)?;
            if allowance == Some(1) {
                self.breaker(stored.id, |b| b.probe_started());
            }
            outcome.claimed += claim.deliveries.len();
            let at = move || now_ms;
            let attempts = claim
                .deliveries
                .into_iter()
                .map(|delivery| self.attempt(&stored, &parsed, delivery, &at));
            let (completions, labels): (Vec<Completion>, Vec<&'static str>) =
                futures_util::future::join_all(attempts).await.into_iter().flatten().unzip();
            let done = self.store.complete_deliveries(&completions).await?;
            for (done, label) in done.iter().zip(labels) {
                Self::count(&stored, done, label);
                if done.held {
                    match label {
                        "delivered" => outcome.delivered += 1,
                        "retry" => outcome.retried += 1,
                        "skipped" => outcome.skipped += 1,
                        _ => outcome.dead += 1,
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Prepare, send and decide one claimed delivery: the completion to record and its outcome
    /// label, or nothing when it cannot be prepared now (its lease runs out and it is tried
    /// again). `now` gives the time of the attempt and of the decision.
    async fn attempt(
        &self,
        stored: &StoredDestination,
        destination: &Destination,
        claimed: ClaimedDelivery,
        now: &(dyn Fn() -> i64 + Sync),
    ) -> Option<(Completion, &'static str)> {
        let key = format!("dlv_{}", claimed.id);
        let started_at_ms = now();
        let subject = match (claimed.postback_id, claimed.anomaly_id) {
            (Some(id), _) => Subject::Postback { app_id: claimed.app_id, id },
            (None, Some(id)) => Subject::Anomaly { app_id: claimed.app_id, id },
            (None, None) => Subject::Nothing,
        };
        let prepared = match self.prepare(destination, subject, &key, started_at_ms / 1000).await {
            Ok(prepared) => prepared,
            Err(err) => {
                tracing::warn!(delivery = key, error = %err, "cannot prepare delivery");
                return None;
            }
        };
        let attempt_number = u32::try_from(claimed.attempt).unwrap_or(u32::MAX);
        let (update, attempt, status) = match prepared {
            Prepared::Skip(reason) => (DeliveryUpdate::Skipped { reason }, None, None),
            Prepared::Send(request) => {
                let (_, outgoing) = *request;
                let url = outgoing.url.clone();
                let sent = self.sender.send(outgoing).await;
                let mut result = sent.result;
                if let (AttemptResult::Http { retry_after, .. }, Some(value)) =
                    (&mut result, &sent.retry_after)
                {
                    *retry_after = parse_retry_after(value, self.clock.now());
                }
                metrics::histogram!("skan_delivery_attempt_seconds", "destination" => stored.name.clone())
                    .record(sent.duration.as_secs_f64());
                let now_ms = now();
                let decision = decide(
                    &result,
                    attempt_number,
                    &destination.config.retry_schedule_secs,
                    claimed.manual,
                    rand::random::<f64>(),
                    now_ms,
                );
                let partner_trouble = troubles_partner(&result);
                match &decision {
                    Decision::Delivered => {
                        self.breaker(stored.id, super::breaker::Breaker::success)
                    }
                    _ if partner_trouble => {
                        self.breaker(stored.id, |b| b.failure(started_at_ms, now_ms));
                    }
                    _ => {}
                }
                let status = match &result {
                    AttemptResult::Http { status, .. } => Some(i64::from(*status)),
                    _ => None,
                };
                let error = match (&result, &decision) {
                    (_, Decision::Delivered) => None,
                    (AttemptResult::Http { status, .. }, _) => Some(format!("HTTP {status}")),
                    (AttemptResult::Timeout, _) => {
                        Some(format!("no answer within {} ms", destination.config.timeout_ms))
                    }
                    (AttemptResult::Connection(e) | AttemptResult::Refused(e), _) => {
                        Some(e.clone())
                    }
                };
                let attempt = AttemptRecord {
                    attempt: claimed.attempt,
                    trigger: if claimed.manual {
                        "manual"
                    } else if claimed.attempt <= 1 {
                        "first"
                    } else {
                        "retry"
                    },
                    started_at_ms,
                    duration_ms: i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX),
                    url,
                    status,
                    error,
                    response_excerpt: sent.excerpt,
                };
                let update = match decision {
                    Decision::Delivered => DeliveryUpdate::Delivered,
                    Decision::Retry { at_ms } => DeliveryUpdate::Retry { at_ms },
                    Decision::Dead { reason } => DeliveryUpdate::Dead { reason },
                    Decision::DisableDestination { reason } => {
                        DeliveryUpdate::DeadAndDisable { reason }
                    }
                };
                (update, Some(attempt), status)
            }
        };
        let outcome = match &update {
            DeliveryUpdate::Delivered => "delivered",
            DeliveryUpdate::Retry { .. } => "retry",
            DeliveryUpdate::Dead { .. } => "dead",
            DeliveryUpdate::Skipped { .. } => "skipped",
            DeliveryUpdate::DeadAndDisable { .. } => "disabled",
        };
        let completion = Completion {
            delivery_id: claimed.id,
            destination_id: stored.id,
            lease: claimed.lease,
            now_ms: now(),
            update,
            attempt,
            status,
            disable_after_ms: i64::try_from(
                destination.config.disable_after_secs.saturating_mul(1000),
            )
            .ok(),
        };
        Some((completion, outcome))
    }

    /// Everything before sending: load the postback (decode it, apply the events filter) or the
    /// anomaly, render and sign.
    pub(super) async fn prepare(
        &self,
        destination: &Destination,
        subject: Subject,
        key: &str,
        timestamp_s: i64,
    ) -> Result<Prepared, DispatchError> {
        let (app_id, postback_id) = match subject {
            Subject::Postback { app_id, id } => (app_id, id),
            Subject::Anomaly { app_id, id } => {
                let Some(anomaly) = self.store.anomaly(app_id, id).await? else {
                    return Ok(Prepared::Skip(format!("anomaly {id} is no longer stored")));
                };
                let values = values::alert_values(&anomaly, key, &self.settings.console_url);
                return Ok(build_request(destination, &values, key, timestamp_s));
            }
            Subject::Nothing => {
                return Ok(Prepared::Skip("the delivery names no postback or anomaly".to_owned()));
            }
        };
        let Some(postback) = self.store.postback_in_app(app_id, postback_id).await? else {
            return Ok(Prepared::Skip(format!("postback {postback_id} is no longer stored")));
        };
        let raw = self.raw_postback(&postback).await?;
        let decoded = self.schemas.decode_postback(&postback).await.ok();
        let events = &destination.config.filters.events;
        if !events.is_empty() {
            let decoded_events = decoded.as_ref().map(|d| d.events.as_slice()).unwrap_or_default();
            if !decoded_events.iter().any(|e| events.iter().any(|name| *name == *e.name)) {
                return Ok(Prepared::Skip(format!(
                    "no decoded event is one of the destination's events filter ({})",
                    events.join(", ")
                )));
            }
        }
        let values = values::values(&postback, decoded.as_ref(), key, &raw);
        Ok(build_request(destination, &values, key, timestamp_s))
    }

    /// The bytes of the copy whose values are in effect (Apple's, when it came).
    async fn raw_postback(&self, postback: &StoredPostback) -> Result<Vec<u8>, DispatchError> {
        let receipts = self.store.receipts_in_app(postback.app_id, postback.id).await?;
        let chosen = receipts
            .iter()
            .find(|r| r.channel == postback.values_channel)
            .or_else(|| receipts.first());
        Ok(chosen.map(|r| r.raw.clone()).unwrap_or_default())
    }

    async fn publish_queue_metrics(&self) {
        let (Ok(stats), Ok(destinations)) =
            (self.store.queue_stats().await, self.store.list_destinations().await)
        else {
            return;
        };
        let now_ms = self.clock.now_ms();
        for destination in destinations {
            let stat = stats.iter().find(|s| s.destination_id == destination.id);
            let pending = stat.map_or(0, |s| s.pending);
            let oldest = stat.and_then(|s| s.oldest_pending_ms).map_or(0, |t| (now_ms - t).max(0));
            #[allow(clippy::cast_precision_loss)]
            {
                metrics::gauge!("skan_delivery_queue_depth", "destination" => destination.name.clone())
                    .set(pending as f64);
                metrics::gauge!("skan_delivery_oldest_pending_seconds", "destination" => destination.name)
                    .set(oldest as f64 / 1000.0);
            }
        }
    }
}

/// Render, add the idempotency and signature headers, and package the request.
pub(super) fn build_request(
    destination: &Destination,
    values: &Values,
    key: &str,
    timestamp_s: i64,
) -> Prepared {
    let rendered = match super::request::render(destination, values) {
        Render::Request(r) => r,
        Render::Skip(missing) => {
            return Prepared::Skip(format!(
                "no value for {} and the destination skips deliveries with missing values",
                missing.iter().map(|m| format!("{{{m}}}")).collect::<Vec<_>>().join(", ")
            ));
        }
    };
    let body = rendered.body.clone().map(String::into_bytes);
    let mut headers = rendered.headers.clone();
    if let Some(content_type) = &rendered.content_type {
        headers.push(("Content-Type".to_owned(), content_type.clone()));
    }
    headers.push(("Idempotency-Key".to_owned(), key.to_owned()));
    if !destination.keys.is_empty() {
        let signature =
            signing::sign(&destination.keys, key, timestamp_s, body.as_deref().unwrap_or_default());
        headers.push(("webhook-id".to_owned(), key.to_owned()));
        headers.push(("webhook-timestamp".to_owned(), timestamp_s.to_string()));
        headers.push(("webhook-signature".to_owned(), signature));
    }
    let outgoing = OutgoingRequest {
        method: rendered.method.clone(),
        url: rendered.url.clone(),
        headers: headers.clone(),
        body,
        timeout: Duration::from_millis(destination.config.timeout_ms),
    };
    let shown = RenderedRequest { headers, ..rendered };
    Prepared::Send(Box::new((shown, outgoing)))
}

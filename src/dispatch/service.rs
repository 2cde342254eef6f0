//! Managing destinations and deliveries: what the API, the CLI and the settings file call.
//!
//! Secrets never leave in full after creation: views mask them, and a document sent back with
//! masked secrets keeps the stored ones, so read-modify-write works.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::policy::{AttemptResult, Decision, decide, parse_retry_after};
use super::request::RenderedRequest;
use super::sealing::{self, SecretKeys};
use super::worker::{Prepared, build_request};
use super::{
    Destination, DestinationConfig, DestinationError, DispatchError, Dispatcher, signing, ssrf,
    values,
};
use crate::store::{
    DeliveryQuery, NewDestination, ReplayCounts, ReplayRequest, RetryResult, StoredAttempt,
    StoredDelivery, StoredDestination, StoredPostback,
};

/// A destination as shown: its document with secrets masked, and its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DestinationView {
    /// Id.
    pub id: i64,
    /// The document (secrets masked).
    pub config: DestinationConfig,
    /// Why it was disabled automatically.
    pub disabled_reason: Option<String>,
    /// When it was disabled automatically, unix ms.
    pub disabled_at_ms: Option<i64>,
    /// Start of the current run of failures, unix ms.
    pub failing_since_ms: Option<i64>,
    /// Creation, unix ms.
    pub created_at_ms: i64,
    /// Last change, unix ms.
    pub updated_at_ms: i64,
    /// Queue and breaker, in lists and single reads (absent in answers to changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<DestinationHealth>,
}

/// How a destination's deliveries stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DestinationHealth {
    /// Deliveries waiting to be sent (first attempts and retries).
    pub pending: i64,
    /// Creation of the oldest pending delivery, unix ms.
    pub oldest_pending_ms: Option<i64>,
    /// Dead letters, waiting for a retry or replay.
    pub dead: i64,
    /// This receiver's circuit breaker: `closed` (sending), `open` (pausing after failures) or
    /// `probing` (one request out to see whether the partner is back). Each receiver keeps its
    /// own.
    pub breaker: String,
    /// While open: when the next probe may go, unix ms.
    pub breaker_open_until_ms: Option<i64>,
}

/// A new destination, with its generated secret shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedDestination {
    /// The destination.
    pub destination: DestinationView,
    /// The signing secret generated because `signing.secrets` was empty; store it now, it is
    /// only shown masked from here on.
    pub generated_secret: Option<String>,
}

/// What a delivery of a stored postback would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewView {
    /// The idempotency key the request carries (the real delivery's, when one exists).
    pub delivery_id: String,
    /// The request, unless the delivery would be skipped.
    pub request: Option<RenderedRequest>,
    /// Why it would be skipped.
    pub skipped: Option<String>,
}

/// What a test send did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestSendView {
    /// The request sent (a sample postback).
    pub request: RenderedRequest,
    /// `delivered`, `would_retry`, `failed` or `gone` (410: a real delivery would disable the
    /// destination).
    pub outcome: String,
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// The first bytes of the answer.
    pub response_excerpt: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// One delivery with its attempt log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: StoredDelivery,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// Every attempt, oldest first.
    pub attempts_log: Vec<StoredAttempt>,
}

fn not_found(what: &str, id: i64) -> DispatchError {
    DispatchError::NotFound(format!("no {what} with id {id}"))
}

impl Dispatcher {
    /// Every destination.
    ///
    /// # Errors
    /// Database failures; a stored document that no longer parses.
    pub async fn destinations(&self) -> Result<Vec<DestinationView>, DispatchError> {
        let stats = self.store.queue_stats().await?;
        self.store
            .list_destinations()
            .await?
            .iter()
            .map(|stored| Ok(self.with_health(view(stored, &self.settings.secret_keys)?, &stats)))
            .collect()
    }

    fn with_health(
        &self,
        mut view: DestinationView,
        stats: &[crate::store::QueueStats],
    ) -> DestinationView {
        let queue = stats.iter().find(|s| s.destination_id == view.id);
        let breaker = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&view.id)
            .copied()
            .unwrap_or_default();
        view.health = Some(DestinationHealth {
            pending: queue.map_or(0, |q| q.pending),
            oldest_pending_ms: queue.and_then(|q| q.oldest_pending_ms),
            dead: queue.map_or(0, |q| q.dead),
            breaker: breaker.state_name().to_owned(),
            breaker_open_until_ms: breaker.open_until_ms(),
        });
        view
    }

    /// One destination.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; database failures.
    pub async fn destination(&self, id: i64) -> Result<DestinationView, DispatchError> {
        let stats = self.store.queue_stats().await?;
        Ok(self.with_health(
            view(&self.stored_destination(id).await?, &self.settings.secret_keys)?,
            &stats,
        ))
    }

    /// One destination, by name.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; database failures.
    pub async fn destination_named(&self, name: &str) -> Result<DestinationView, DispatchError> {
        let stored = self
            .store
            .destination_by_name(name)
            .await?
            .ok_or_else(|| DispatchError::NotFound(format!("no destination named {name:?}")))?;
        view(&stored, &self.settings.secret_keys)
    }

    async fn stored_destination(&self, id: i64) -> Result<StoredDestination, DispatchError> {
        self.store.destination(id).await?.ok_or_else(|| not_found("destination", id))
    }

    /// Seal every stored signing secret under the first secrets key (plaintext ones, and those
    /// sealed under an older key): what rotating the key, or configuring one for the first
    /// time, needs at start-up. Returns how many destinations were rewritten.
    ///
    /// # Errors
    /// A secret sealed under a key not given; database failures.
    pub async fn seal_stored_secrets(&self) -> Result<usize, DispatchError> {
        let keys = &self.settings.secret_keys;
        let mut rewritten = 0;
        for stored in self.store.list_destinations().await? {
            let raw: DestinationConfig = serde_json::from_str(&stored.config)
                .map_err(|e| DispatchError::Corrupt(format!("destination {}: {e}", stored.id)))?;
            let stale = raw
                .signing
                .as_ref()
                .is_some_and(|s| s.secrets.iter().any(|x| keys.needs_sealing(x)));
            if !stale {
                continue;
            }
            let config = parse_document(&stored, keys)?;
            self.store
                .update_destination(
                    stored.id,
                    &NewDestination {
                        name: stored.name.clone(),
                        enabled: stored.enabled,
                        config: document(&config, keys)?,
                        at_ms: self.clock.now_ms(),
                    },
                )
                .await?;
            rewritten += 1;
        }
        Ok(rewritten)
    }

    /// Create a destination. An empty `signing.secrets` list asks for a generated secret.
    ///
    /// # Errors
    /// [`DispatchError::Invalid`] naming the field (address checks included); a taken name is a
    /// store [`StoreError::Duplicate`].
    pub async fn create_destination(
        &self,
        mut config: DestinationConfig,
    ) -> Result<CreatedDestination, DispatchError> {
        let mut generated = None;
        if let Some(signing) = config.signing.as_mut()
            && signing.secrets.is_empty()
        {
            let secret = signing::generate_secret()
                .map_err(|e| DispatchError::Corrupt(format!("cannot generate a secret: {e}")))?;
            signing.secrets.push(secret.clone());
            generated = Some(secret);
        }
        let checked = self.check(config).await?;
        let stored = self
            .store
            .create_destination(&NewDestination {
                name: checked.config.name.clone(),
                enabled: checked.config.enabled,
                config: document(&checked.config, &self.settings.secret_keys)?,
                at_ms: self.clock.now_ms(),
            })
            .await?;
        self.wake();
        Ok(CreatedDestination {
            destination: view(&stored, &self.settings.secret_keys)?,
            generated_secret: generated,
        })
    }

    /// Replace a destination's document. Masked secrets (as shown by the API) keep the stored
    /// secret they mask.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`], [`DispatchError::Invalid`]; a taken name is a store
    /// [`StoreError::Duplicate`].
    pub async fn update_destination(
        &self,
        id: i64,
        mut config: DestinationConfig,
    ) -> Result<DestinationView, DispatchError> {
        let current = self.stored_destination(id).await?;
        let current_config: DestinationConfig =
            parse_document(&current, &self.settings.secret_keys)?;
        if let (Some(new), Some(old)) = (config.signing.as_mut(), current_config.signing.as_ref()) {
            for secret in &mut new.secrets {
                if let Some(original) = old.secrets.iter().find(|s| signing::mask(s) == *secret) {
                    secret.clone_from(original);
                }
            }
        }
        let checked = self.check(config).await?;
        let stored = self
            .store
            .update_destination(
                id,
                &NewDestination {
                    name: checked.config.name.clone(),
                    enabled: checked.config.enabled,
                    config: document(&checked.config, &self.settings.secret_keys)?,
                    at_ms: self.clock.now_ms(),
                },
            )
            .await?
            .ok_or_else(|| not_found("destination", id))?;
        self.wake();
        view(&stored, &self.settings.secret_keys)
    }

    /// Switch a destination on or off, keeping its document.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; database failures.
    pub async fn set_enabled(
        &self,
        id: i64,
        enabled: bool,
    ) -> Result<DestinationView, DispatchError> {
        let current = self.stored_destination(id).await?;
        let mut config = parse_document(&current, &self.settings.secret_keys)?;
        config.enabled = enabled;
        let stored = self
            .store
            .update_destination(
                id,
                &NewDestination {
                    name: current.name.clone(),
                    enabled,
                    config: document(&config, &self.settings.secret_keys)?,
                    at_ms: self.clock.now_ms(),
                },
            )
            .await?
            .ok_or_else(|| not_found("destination", id))?;
        self.wake();
        view(&stored, &self.settings.secret_keys)
    }

    /// Delete a destination with its deliveries and their log.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; database failures.
    pub async fn delete_destination(&self, id: i64) -> Result<(), DispatchError> {
        if self.store.delete_destination(id).await? {
            Ok(())
        } else {
            Err(not_found("destination", id))
        }
    }

    /// Create or update the destinations listed in the settings file, matched by name; an
    /// unchanged one is left alone (its health and switch included).
    ///
    /// # Errors
    /// The first invalid document, naming the destination and the field.
    pub async fn apply_configured(
        &self,
        configured: &[DestinationConfig],
    ) -> Result<(), DispatchError> {
        for config in configured {
            match self.store.destination_by_name(&config.name).await? {
                None => {
                    self.create_destination(config.clone())
                        .await
                        .map_err(|e| named(&config.name, e))?;
                    tracing::info!(destination = config.name, "created destination from settings");
                }
                Some(stored) if parse_document(&stored, &self.settings.secret_keys)? != *config => {
                    self.update_destination(stored.id, config.clone())
                        .await
                        .map_err(|e| named(&config.name, e))?;
                    tracing::info!(destination = config.name, "updated destination from settings");
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Validate a document and check its address.
    async fn check(&self, config: DestinationConfig) -> Result<Destination, DispatchError> {
        let checked = config.validate()?;
        if !self.settings.allow_private {
            check_public(&checked.url.host).await?;
        }
        Ok(checked)
    }

    /// The request a delivery of a stored postback would make, without sending it.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`] for the destination or the postback.
    pub async fn preview(
        &self,
        destination_id: i64,
        postback_id: i64,
    ) -> Result<PreviewView, DispatchError> {
        let stored = self.stored_destination(destination_id).await?;
        let destination = self.parse(&stored)?;
        if destination.config.filters.alerts {
            return Err(DispatchError::Invalid(DestinationError {
                field: "postback_id".to_owned(),
                message: "an alert destination sends anomalies, not postbacks; use test-send \
                          to see an alert"
                    .to_owned(),
            }));
        }
        let Some(postback) = self.store.postback(postback_id).await? else {
            return Err(not_found("postback", postback_id));
        };
        let key = match self.store.delivery_for(destination_id, postback_id).await? {
            Some(delivery) => format!("dlv_{}", delivery.id),
            None => "dlv_preview".to_owned(),
        };
        let prepared = self
            .prepare(
                &destination,
                super::worker::Subject::Postback { app_id: postback.app_id, id: postback_id },
                &key,
                self.clock.now_ms() / 1000,
            )
            .await?;
        Ok(match prepared {
            Prepared::Send(request) => {
                PreviewView { delivery_id: key, request: Some(request.0), skipped: None }
            }
            Prepared::Skip(reason) => {
                PreviewView { delivery_id: key, request: None, skipped: Some(reason) }
            }
        })
    }

    /// Send a sample postback to a destination now (nothing is stored).
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; [`DispatchError::Invalid`] when the sample cannot be rendered
    /// because the destination skips deliveries with missing values.
    pub async fn test_send(&self, destination_id: i64) -> Result<TestSendView, DispatchError> {
        let stored = self.stored_destination(destination_id).await?;
        let destination = self.parse(&stored)?;
        let now = self.clock.now();
        let key = format!("dlv_test_{}", now.timestamp_millis());
        let values = if destination.config.filters.alerts {
            let sample = sample_anomaly(&destination, now.timestamp_millis());
            values::alert_values(&sample, &key, &self.settings.console_url)
        } else {
            let sample = sample_postback(&destination, now.timestamp_millis());
            let decoded = self.schemas.decode_postback(&sample).await.ok();
            let raw = sample_raw(&sample);
            values::values(&sample, decoded.as_ref(), &key, &raw)
        };
        let (shown, outgoing) = match build_request(&destination, &values, &key, now.timestamp()) {
            Prepared::Send(request) => *request,
            Prepared::Skip(reason) => {
                return Err(DispatchError::Invalid(DestinationError {
                    field: "missing".to_owned(),
                    message: format!("the sample postback cannot be sent: {reason}"),
                }));
            }
        };
        let sent = self.sender.send(outgoing).await;
        let mut result = sent.result;
        if let (AttemptResult::Http { retry_after, .. }, Some(value)) =
            (&mut result, &sent.retry_after)
        {
            *retry_after = parse_retry_after(value, now);
        }
        let decision = decide(
            &result,
            1,
            &destination.config.retry_schedule_secs,
            false,
            0.5,
            now.timestamp_millis(),
        );
        let (outcome, error) = match (&decision, &result) {
            (Decision::Delivered, _) => ("delivered", None),
            (Decision::Retry { .. }, AttemptResult::Timeout) => {
                ("would_retry", Some("timed out".to_owned()))
            }
            (Decision::Retry { .. }, AttemptResult::Connection(e)) => {
                ("would_retry", Some(e.clone()))
            }
            (Decision::Retry { .. }, _) => ("would_retry", None),
            (Decision::Dead { reason }, _) => ("failed", Some(reason.clone())),
            (Decision::DisableDestination { reason }, _) => ("gone", Some(reason.clone())),
        };
        Ok(TestSendView {
            request: shown,
            outcome: outcome.to_owned(),
            status: match result {
                AttemptResult::Http { status, .. } => Some(status),
                _ => None,
            },
            duration_ms: u64::try_from(sent.duration.as_millis()).unwrap_or(u64::MAX),
            response_excerpt: sent.excerpt,
            error,
        })
    }

    /// Deliveries matching a filter, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<StoredDelivery>, DispatchError> {
        Ok(self.store.list_deliveries(query).await?)
    }

    /// One delivery with every attempt.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; database failures.
    pub async fn delivery(&self, id: i64) -> Result<DeliveryDetail, DispatchError> {
        let delivery = self.store.delivery(id).await?.ok_or_else(|| not_found("delivery", id))?;
        let attempts_log = self.store.delivery_attempts(id).await?;
        Ok(DeliveryDetail {
            idempotency_key: format!("dlv_{}", delivery.id),
            delivery,
            attempts_log,
        })
    }

    /// Attempt a delivery now (see [`crate::store::Store::retry_delivery`]).
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; [`DispatchError::Busy`] while it is being sent.
    pub async fn retry(&self, id: i64) -> Result<StoredDelivery, DispatchError> {
        match self.store.retry_delivery(id, self.clock.now_ms()).await? {
            RetryResult::Requeued(delivery) => {
                self.wake();
                Ok(delivery)
            }
            RetryResult::InFlight => Err(DispatchError::Busy(format!(
                "delivery {id} is being sent right now; try again shortly"
            ))),
            RetryResult::NotFound => Err(not_found("delivery", id)),
        }
    }

    /// Send a destination the postbacks first received in `[from_ms, to_ms)` again.
    ///
    /// # Errors
    /// [`DispatchError::NotFound`]; [`DispatchError::Invalid`] for an empty range.
    pub async fn replay(
        &self,
        destination_id: i64,
        from_ms: i64,
        to_ms: i64,
        resend_delivered: bool,
    ) -> Result<ReplayCounts, DispatchError> {
        let stored = self.stored_destination(destination_id).await?;
        if self.parse(&stored)?.config.filters.alerts {
            return Err(DispatchError::Invalid(DestinationError {
                field: "destination_id".to_owned(),
                message: "an alert destination gets anomalies, not postbacks: there is nothing \
                          to replay to it"
                    .to_owned(),
            }));
        }
        if to_ms <= from_ms {
            return Err(DispatchError::Invalid(DestinationError {
                field: "to".to_owned(),
                message: "the end of the range must be after its start".to_owned(),
            }));
        }
        let counts = self
            .store
            .replay(&ReplayRequest {
                destination_id,
                from_ms,
                to_ms,
                resend_delivered,
                at_ms: self.clock.now_ms(),
            })
            .await?;
        self.wake();
        Ok(counts)
    }
}

fn named(name: &str, err: DispatchError) -> DispatchError {
    match err {
        DispatchError::Invalid(e) => DispatchError::Invalid(DestinationError {
            field: format!("destinations[{name}].{}", e.field),
            message: e.message,
        }),
        other => other,
    }
}

fn document(config: &DestinationConfig, keys: &SecretKeys) -> Result<String, DispatchError> {
    let mut sealed = config.clone();
    if let Some(signing) = sealed.signing.as_mut() {
        for secret in &mut signing.secrets {
            *secret = keys
                .seal(secret, sealing::fresh_nonce().map_err(|e| DispatchError::Corrupt(e.0))?)
                .map_err(|e| DispatchError::Corrupt(e.0))?;
        }
    }
    serde_json::to_string(&sealed).map_err(|e| DispatchError::Corrupt(e.to_string()))
}

/// A stored document with its secrets opened.
pub(super) fn parse_document(
    stored: &StoredDestination,
    keys: &SecretKeys,
) -> Result<DestinationConfig, DispatchError> {
    let mut config: DestinationConfig = serde_json::from_str(&stored.config).map_err(|e| {
        DispatchError::Corrupt(format!(
            "destination {}: stored document does not parse: {e}",
            stored.id
        ))
    })?;
    if let Some(signing) = config.signing.as_mut() {
        for secret in &mut signing.secrets {
            *secret = keys
                .open(secret)
                .map_err(|e| DispatchError::Corrupt(format!("destination {}: {e}", stored.id)))?;
        }
    }
    Ok(config)
}

fn view(stored: &StoredDestination, keys: &SecretKeys) -> Result<DestinationView, DispatchError> {
    let mut config = parse_document(stored, keys)?;
    config.enabled = stored.enabled;
    if let Some(signing) = config.signing.as_mut() {
        for secret in &mut signing.secrets {
            *secret = signing::mask(secret);
        }
    }
    Ok(DestinationView {
        id: stored.id,
        config,
        disabled_reason: stored.disabled_reason.clone(),
        disabled_at_ms: stored.disabled_at_ms,
        failing_since_ms: stored.failing_since_ms,
        created_at_ms: stored.created_at_ms,
        updated_at_ms: stored.updated_at_ms,
        health: None,
    })
}

/// Refuse a host that is, or resolves only to, a non-public address. A name that does not
/// resolve now is accepted (DNS may be down); sending checks again every time.
async fn check_public(host: &url::Host) -> Result<(), DestinationError> {
    let refuse = |ip: IpAddr| DestinationError {
        field: "url".to_owned(),
        message: format!(
            "{host} is {ip}, a loopback, private, link-local or reserved address; destinations \
             must be on the public internet (start the service with --allow-private-destinations \
             to allow)"
        ),
    };
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(v4) => vec![IpAddr::V4(*v4)],
        url::Host::Ipv6(v6) => vec![IpAddr::V6(*v6)],
        url::Host::Domain(name) => {
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((name.as_str(), 0)),
            )
            .await
            {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => Vec::new(),
            }
        }
    };
    match addresses.iter().find(|ip| ssrf::is_public(**ip)) {
        Some(_) => Ok(()),
        None => addresses.first().map_or(Ok(()), |ip| Err(refuse(*ip))),
    }
}

/// A plausible SKAdNetwork 4.0 postback for test sends, shaped by the destination's filters.
/// An example anomaly for a test send: yesterday's postbacks from the destination's first network
/// fell to a fifth of the usual.
fn sample_anomaly(destination: &Destination, now_ms: i64) -> crate::store::StoredAnomaly {
    let filters = &destination.config.filters;
    let day = now_ms.div_euclid(86_400_000) - 1;
    crate::store::StoredAnomaly {
        id: 0,
        app_id: filters.apps.first().copied().unwrap_or(525_463_029),
        ad_network_id: filters
            .ad_networks
            .first()
            .cloned()
            .unwrap_or_else(|| "example123.skadnetwork".to_owned()),
        metric: "postbacks".to_owned(),
        day,
        expected: 1_000.0,
        expected_low: 880.0,
        expected_high: 1_120.0,
        observed: 200.0,
        score: 13.3,
        baseline_from: day - 28,
        baseline_to: day - 1,
        baseline_days: 28,
        partial_day: false,
        detected_at: now_ms,
        acknowledged_at: None,
        acknowledged_by: None,
    }
}

fn sample_postback(destination: &Destination, now_ms: i64) -> StoredPostback {
    let filters = &destination.config.filters;
    let app_id = filters.apps.first().copied().unwrap_or(525_463_029);
    let day = now_ms.div_euclid(86_400_000);
    StoredPostback {
        id: 0,
        dedup_key: "skan:example123.skadnetwork:6aafb7a5-0170-41b5-bbe4-fe71dedf1e30:0".to_owned(),
        protocol: "skadnetwork".to_owned(),
        version: Some("4.0".to_owned()),
        ad_network_id: filters
            .ad_networks
            .first()
            .cloned()
            .unwrap_or_else(|| "example123.skadnetwork".to_owned()),
        app_id,
        transaction_id: "6aafb7a5-0170-41b5-bbe4-fe71dedf1e30".to_owned(),
        source_identifier: Some("5239".to_owned()),
        campaign_id: None,
        source_app_id: Some(1_234_567_891),
        source_domain: None,
        window: filters.windows.first().copied().unwrap_or(0),
        did_win: true,
        conversion_type: Some("download".to_owned()),
        fidelity_type: Some(1),
        interaction: None,
        fine_value: Some(42),
        coarse_value: None,
        tier_hint: Some(3),
        country_code: None,
        outcome: "valid".to_owned(),
        reason_code: None,
        reason_message: None,
        development: false,
        key_name: None,
        values_channel: "apple".to_owned(),
        unsigned_mismatch: false,
        first_received_at_ms: now_ms,
        receipt_count: 1,
        arrival_day: day,
        install_from_ms: now_ms - 96 * 3_600_000,
        install_to_ms: now_ms - 24 * 3_600_000,
        install_day: (now_ms - 60 * 3_600_000).div_euclid(86_400_000),
    }
}

fn sample_raw(p: &StoredPostback) -> Vec<u8> {
    serde_json::json!({
        "version": "4.0",
        "ad-network-id": p.ad_network_id,
        "source-identifier": p.source_identifier,
        "app-id": p.app_id,
        "transaction-id": p.transaction_id,
        "redownload": false,
        "source-app-id": p.source_app_id,
        "fidelity-type": 1,
        "conversion-value": 42,
        "postback-sequence-index": p.window,
        "did-win": true,
        "attribution-signature": "sample: not signed"
    })
    .to_string()
    .into_bytes()
}

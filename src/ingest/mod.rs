//! The ingest pipeline: bytes in, durable outcome out.
//!
//! parse → verify → flatten into columns → group commit → per-item result. The HTTP handlers,
//! the `import` command and tests all call [`Ingestor::ingest`], so every path into the database
//! behaves the same way.

pub mod commit;
pub mod envelope;
mod verify_stage;

use std::sync::Arc;

use bytes::Bytes;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::error_body::ErrorBody;
use crate::skan::{
    KeySet, OutcomeClass, Postback, PostbackBody, Protocol, SkanVersion, SourceApp, Verification,
    day_number, estimate_install, verify, verify_many,
};
use crate::store::{
    AggregateKey, Channel, CopyComparison, IngestItem, NewPostback, ReceiptInput, ReceiptResult,
    RecordOutcome, StoreError, UnsignedValues,
};
pub use commit::{CommitClosed, CommitConfig, CommitHandle};
pub use envelope::Arrival;

/// Batches at least this large are verified on the CPU pool rather than inline.
const PARALLEL_VERIFY_FROM: usize = 16;
/// Items whose signatures are checked together, sharing inversions (see `verify_many`).
const VERIFY_BATCH: usize = 256;

/// What happened to one submitted item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ItemResult {
    /// Position in the request (0 for a single postback).
    pub index: usize,
    /// `accepted`, `duplicate`, `rejected`, `invalid` or `unverifiable`.
    pub result: ReceiptResult,
    /// The stored postback (absent when rejected).
    pub postback_id: Option<i64>,
    /// The stored receipt of this arrival.
    pub receipt_id: i64,
    /// The protocol dedup key (absent when rejected).
    pub dedup_key: Option<String>,
    /// Verified with a development key; never counted as production.
    pub development: bool,
    /// This copy disagreed with another copy on values the signature does not cover.
    pub unsigned_mismatch: bool,
    /// Why the item is not accepted (rejected, invalid, unverifiable).
    pub error: Option<ErrorBody>,
}

/// Counts of item results.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Summary {
    /// New valid postbacks.
    pub accepted: usize,
    /// Copies of postbacks already stored.
    pub duplicate: usize,
    /// Items that are not well-formed postbacks.
    pub rejected: usize,
    /// Postbacks whose signature does not hold (quarantined).
    pub invalid: usize,
    /// Postbacks whose signature cannot be checked (quarantined).
    pub unverifiable: usize,
}

impl Summary {
    /// Count results.
    #[must_use]
    pub fn of<'a>(results: impl IntoIterator<Item = &'a ItemResult>) -> Self {
        let mut summary = Self::default();
        for r in results {
            summary.add(r.result);
        }
        summary
    }

    /// Count one result.
    pub fn add(&mut self, result: ReceiptResult) {
        match result {
            ReceiptResult::Accepted => self.accepted += 1,
            ReceiptResult::Duplicate => self.duplicate += 1,
            ReceiptResult::Rejected => self.rejected += 1,
            ReceiptResult::Invalid => self.invalid += 1,
            ReceiptResult::Unverifiable => self.unverifiable += 1,
        }
    }
}

/// Why a submission could not be processed at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The service is shutting down and takes no more work.
    #[error("shutting down")]
    ShuttingDown,
    /// The database failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A backfill envelope from a caller that may not set arrival times; nothing was stored.
    #[error(
        "item {index} is a backfill envelope; only admin keys (and the import command) may set \
         arrival times, forwarders send postbacks as they are"
    )]
    EnvelopeNotAllowed {
        /// Position of the first envelope.
        index: usize,
    },
}

/// A prepared item plus what the per-item result needs to report.
struct Prepared {
    item: IngestItem,
    dedup_key: Option<String>,
    development: bool,
    error: Option<ErrorBody>,
}

/// Turns submitted bytes into committed postbacks.
#[derive(Debug)]
pub struct Ingestor {
    keys: Arc<KeySet>,
    committer: CommitHandle,
    clock: Arc<dyn Clock>,
    max_postback_bytes: usize,
    dispatcher: Option<Arc<crate::dispatch::Dispatcher>>,
    /// Where requests with few items are prepared, batched with concurrent ones.
    stage: Option<verify_stage::VerifyStage>,
}

impl Ingestor {
    /// An ingestor verifying with `keys` and committing through `committer`.
    #[must_use]
    pub fn new(
        keys: Arc<KeySet>,
        committer: CommitHandle,
        clock: Arc<dyn Clock>,
        max_postback_bytes: usize,
    ) -> Self {
        let stage = verify_stage::VerifyStage::start(Arc::clone(&keys), max_postback_bytes);
        Self { keys, committer, clock, max_postback_bytes, dispatcher: None, stage }
    }

    /// Wake `dispatcher` whenever new postbacks are committed, so their deliveries go at once.
    #[must_use]
    pub fn waking(mut self, dispatcher: Arc<crate::dispatch::Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Verify and durably record `raws` (each one candidate postback, arriving now), returning
    /// one result per item in order. Returns only after the items are committed.
    ///
    /// # Errors
    /// [`IngestError::Store`] when the database failed (nothing acknowledged; retry),
    /// [`IngestError::ShuttingDown`] during shutdown.
    pub async fn ingest(
        &self,
        raws: Vec<Bytes>,
        channel: Channel,
        source_name: Option<String>,
    ) -> Result<Vec<ItemResult>, IngestError> {
        let arrivals = raws.into_iter().map(|raw| Arrival::bare(raw, None)).collect();
        self.ingest_arrivals(arrivals, channel, source_name).await
    }

    /// Items forwarded to `/v1/postbacks`: bare postbacks arrive now; backfill envelopes keep
    /// their arrival time, channel and source, and are taken only when `may_backdate` (admin
    /// keys), so a forwarder cannot move postbacks in time.
    ///
    /// # Errors
    /// [`IngestError::EnvelopeNotAllowed`] (nothing stored), or as [`Ingestor::ingest`].
    pub async fn ingest_forwarded(
        &self,
        raws: Vec<Bytes>,
        source_name: String,
        may_backdate: bool,
    ) -> Result<Vec<ItemResult>, IngestError> {
        let now_ms = self.clock.now_ms();
        let arrivals: Vec<Arrival> =
            raws.into_iter().map(|raw| envelope::open(raw, None, now_ms)).collect();
        if !may_backdate && let Some(index) = arrivals.iter().position(|a| a.enveloped) {
            return Err(IngestError::EnvelopeNotAllowed { index });
        }
        self.ingest_arrivals(arrivals, Channel::Network, Some(source_name)).await
    }

    /// [`Ingestor::ingest`] for items that may carry their own arrival time, channel and source
    /// (backfill envelopes, opened by [`envelope::open`]); the others arrive now, on `channel`,
    /// from `source_name`. An envelope that did not open is rejected with its error.
    ///
    /// # Errors
    /// As [`Ingestor::ingest`].
    pub async fn ingest_arrivals(
        &self,
        arrivals: Vec<Arrival>,
        channel: Channel,
        source_name: Option<String>,
    ) -> Result<Vec<ItemResult>, IngestError> {
        let now_ms = self.clock.now_ms();
        let receipt_of = move |arrival: Arrival| {
            (
                ReceiptInput {
                    received_at_ms: arrival.received_at_ms.unwrap_or(now_ms),
                    channel: arrival.channel.unwrap_or(channel),
                    source_name: arrival.source_name.or_else(|| source_name.clone()),
                    raw: arrival.raw,
                },
                arrival.error,
            )
        };
        let receipts: Vec<(ReceiptInput, Option<ErrorBody>)> =
            arrivals.into_iter().map(receipt_of).collect();
        let prepared: Vec<Prepared> = if receipts.len() >= PARALLEL_VERIFY_FROM {
            let keys = Arc::clone(&self.keys);
            let limit = self.max_postback_bytes;
            tokio::task::spawn_blocking(move || {
                receipts
                    .into_par_iter()
                    .chunks(VERIFY_BATCH)
                    .flat_map_iter(|chunk| prepare_all(&keys, limit, chunk))
                    .collect()
            })
            .await
            .map_err(|_| IngestError::ShuttingDown)?
        } else if let Some(stage) = &self.stage {
            stage.prepare(receipts).await.ok_or(IngestError::ShuttingDown)?
        } else {
            prepare_all(&self.keys, self.max_postback_bytes, receipts)
        };
        let (items, context): (Vec<IngestItem>, Vec<_>) =
            prepared.into_iter().map(|p| (p.item, (p.dedup_key, p.development, p.error))).unzip();
        let labels: Vec<(&'static str, String)> = items.iter().map(metric_labels).collect();
        let outcomes =
            self.committer.commit(items).await.map_err(|_| IngestError::ShuttingDown)??;
        let results: Vec<ItemResult> = outcomes
            .into_iter()
            .zip(context)
            .enumerate()
            .map(|(index, (outcome, (dedup_key, development, error)))| {
                item_result(index, outcome, dedup_key, development, error)
            })
            .collect();
        if let Some(dispatcher) = &self.dispatcher
            && results.iter().any(|r| {
                matches!(
                    r.result,
                    ReceiptResult::Accepted | ReceiptResult::Invalid | ReceiptResult::Unverifiable
                )
            })
        {
            dispatcher.wake();
        }
        for (result, (protocol, version)) in results.iter().zip(labels) {
            metrics::counter!(
                "skan_postbacks_total",
                "protocol" => protocol,
                "version" => version,
                "outcome" => result.result.as_str(),
                "channel" => channel.as_str(),
            )
            .increment(1);
        }
        if let Some(cache) = self.keys.signature_cache() {
            let (hits, misses) = cache.hits_and_misses();
            metrics::counter!("skan_signature_cache_total", "result" => "hit").absolute(hits);
            metrics::counter!("skan_signature_cache_total", "result" => "miss").absolute(misses);
        }
        Ok(results)
    }
}

fn metric_labels(item: &IngestItem) -> (&'static str, String) {
    match item {
        IngestItem::Rejected { .. } => ("unknown", "unknown".to_owned()),
        IngestItem::Checked { postback, .. } => (
            postback.protocol.as_str(),
            postback.version.clone().unwrap_or_else(|| "none".to_owned()),
        ),
    }
}

fn item_result(
    index: usize,
    outcome: RecordOutcome,
    dedup_key: Option<String>,
    development: bool,
    error: Option<ErrorBody>,
) -> ItemResult {
    let base = ItemResult {
        index,
        result: ReceiptResult::Rejected,
        postback_id: None,
        receipt_id: 0,
        dedup_key,
        development,
        unsigned_mismatch: false,
        error,
    };
    match outcome {
        RecordOutcome::Accepted { postback_id, receipt_id } => ItemResult {
            result: ReceiptResult::Accepted,
            postback_id: Some(postback_id),
            receipt_id,
            ..base
        },
        RecordOutcome::Duplicate { postback_id, receipt_id, comparison } => ItemResult {
            result: ReceiptResult::Duplicate,
            postback_id: Some(postback_id),
            receipt_id,
            unsigned_mismatch: matches!(comparison, CopyComparison::Mismatch { .. }),
            ..base
        },
        RecordOutcome::Quarantined { postback_id, receipt_id, outcome, .. } => ItemResult {
            result: if outcome == OutcomeClass::Unverifiable {
                ReceiptResult::Unverifiable
            } else {
                ReceiptResult::Invalid
            },
            postback_id: Some(postback_id),
            receipt_id,
            ..base
        },
        RecordOutcome::Rejected { receipt_id } => ItemResult { receipt_id, ..base },
    }
}

/// The aggregate key a postback with this verification, arriving at `received_at_ms`, is
/// counted under (for loading aggregates in bulk).
///
/// # Errors
/// The rejection error when an item ID is beyond the database's range.
pub fn aggregate_key_of(
    postback: &Postback,
    verification: &Verification,
    received_at_ms: i64,
) -> Result<AggregateKey, ErrorBody> {
    flatten(postback, verification, received_at_ms).map(|p| AggregateKey::of(&p))
}

/// Parse, verify and flatten one candidate postback into what the store records. Pure.
#[must_use]
pub fn prepare_item(
    keys: &KeySet,
    max_postback_bytes: usize,
    raw: Bytes,
    channel: Channel,
    source_name: Option<String>,
    received_at_ms: i64,
) -> IngestItem {
    let receipt = ReceiptInput { received_at_ms, channel, source_name, raw };
    prepare(keys, max_postback_bytes, receipt, None).item
}

fn prepare(
    keys: &KeySet,
    max_postback_bytes: usize,
    receipt: ReceiptInput,
    refused: Option<ErrorBody>,
) -> Prepared {
    match parse(max_postback_bytes, receipt, refused) {
        Ok((receipt, postback)) => {
            let verification = verify(&postback, keys);
            checked(receipt, &postback, &verification)
        }
        Err(rejected) => *rejected,
    }
}

/// [`prepare`] for many items, their P-256 signatures checked in one batch (`verify_many`).
fn prepare_all(
    keys: &KeySet,
    max_postback_bytes: usize,
    receipts: Vec<(ReceiptInput, Option<ErrorBody>)>,
) -> Vec<Prepared> {
    let mut out: Vec<Option<Prepared>> = Vec::with_capacity(receipts.len());
    let mut parsed = Vec::new();
    for (at, (receipt, refused)) in receipts.into_iter().enumerate() {
        match parse(max_postback_bytes, receipt, refused) {
            Ok(ok) => {
                parsed.push((at, ok));
                out.push(None);
            }
            Err(rejected) => out.push(Some(*rejected)),
        }
    }
    let postbacks: Vec<&Postback> = parsed.iter().map(|(_, (_, postback))| postback).collect();
    let verifications = verify_many(&postbacks, keys);
    for ((at, (receipt, postback)), verification) in parsed.into_iter().zip(verifications) {
        out[at] = Some(checked(receipt, &postback, &verification));
    }
    out.into_iter().flatten().collect()
}

/// The postback an item holds, or the item rejected with why.
fn parse(
    max_postback_bytes: usize,
    receipt: ReceiptInput,
    refused: Option<ErrorBody>,
) -> Result<(ReceiptInput, Postback), Box<Prepared>> {
    let rejected = |receipt: ReceiptInput, error: ErrorBody| Box::new(rejected(receipt, error));
    if let Some(error) = refused {
        return Err(rejected(receipt, error));
    }
    if receipt.raw.len() > max_postback_bytes {
        let error = ErrorBody::new(
            "payload_too_large",
            format!(
                "a postback may be at most {max_postback_bytes} bytes, this one is {}",
                receipt.raw.len()
            ),
        );
        return Err(rejected(receipt, error));
    }
    match Postback::parse(receipt.raw.clone()) {
        Ok(postback) => Ok((receipt, postback)),
        Err(err) => Err(rejected(receipt, ErrorBody::from(&err))),
    }
}

/// A parsed and verified postback, flattened into what the store records.
fn checked(receipt: ReceiptInput, postback: &Postback, verification: &Verification) -> Prepared {
    match flatten(postback, verification, receipt.received_at_ms) {
        Ok(new) => {
            let error = verification.outcome.reason_code().map(|code| ErrorBody {
                code: code.to_owned(),
                message: verification.outcome.reason_message().unwrap_or_default(),
                field: verification
                    .outcome
                    .reason_field(postback.protocol() == Protocol::AdAttributionKit)
                    .map(str::to_owned),
            });
            Prepared {
                dedup_key: Some(new.dedup_key.clone()),
                development: verification.development,
                error,
                item: IngestItem::Checked { receipt, postback: Box::new(new) },
            }
        }
        Err(error) => rejected(receipt, error),
    }
}

fn rejected(receipt: ReceiptInput, error: ErrorBody) -> Prepared {
    Prepared {
        item: IngestItem::Rejected { receipt, error: error.clone() },
        dedup_key: None,
        development: false,
        error: Some(error),
    }
}

/// The columns a postback is stored under. Fails only for item IDs beyond the database's signed
/// 64-bit integers (no App Store ID comes near).
fn flatten(
    postback: &Postback,
    verification: &Verification,
    received_at_ms: i64,
) -> Result<NewPostback, ErrorBody> {
    let storable = |field: &str, value: u64| {
        i64::try_from(value).map_err(|_| {
            ErrorBody::new(
                "out_of_range",
                format!("{value} exceeds the largest storable ID ({})", i64::MAX),
            )
            .with_field(field)
        })
    };
    let dedup_key = postback.dedup_key().to_string();
    let outcome = verification.outcome.class();
    let identity_key = if outcome == OutcomeClass::Valid {
        dedup_key.clone()
    } else {
        let digest = Sha256::digest(postback.raw());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{dedup_key}#{}#{hex}", outcome.as_str())
    };
    let value = postback.conversion_value();
    let (source_app_id, source_domain, fidelity_type, country_code, aak_interaction) =
        match postback.body() {
            PostbackBody::Skan(s) => (
                match &s.source_app {
                    Some(SourceApp::AppId(id)) => Some(storable("source-app-id", *id)?),
                    _ => None,
                },
                match &s.source_app {
                    Some(SourceApp::Domain(d)) => Some(d.clone()),
                    _ => None,
                },
                s.fidelity_type.map(|f| i64::from(f.as_u8())),
                s.country_code.clone(),
                None,
            ),
            PostbackBody::Aak(a) => (
                a.jws
                    .payload
                    .publisher_item_identifier
                    .map(|id| storable("jws-string.payload.publisher-item-identifier", id))
                    .transpose()?,
                None,
                None,
                a.country_code.clone(),
                a.ad_interaction_type,
            ),
        };
    let app_field = match postback.protocol() {
        Protocol::SkAdNetwork => "app-id",
        Protocol::AdAttributionKit => "jws-string.payload.advertised-item-identifier",
    };
    let arrival = chrono::DateTime::from_timestamp_millis(received_at_ms).unwrap_or_default();
    let multi_window = postback.protocol() == Protocol::AdAttributionKit
        || postback.skan_version().is_none_or(|v| v >= SkanVersion::V4_0);
    let install = estimate_install(arrival, postback.window(), multi_window);
    Ok(NewPostback {
        arrival_day: day_number(arrival.date_naive()),
        install_from_ms: install.from.timestamp_millis(),
        install_to_ms: install.to.timestamp_millis(),
        install_day: day_number(install.day()),
        identity_key,
        dedup_key,
        protocol: postback.protocol(),
        version: postback.version().map(str::to_owned),
        ad_network_id: postback.ad_network_id().to_owned(),
        app_id: storable(app_field, postback.app_id())?,
        transaction_id: postback.transaction_id().to_owned(),
        source_identifier: postback.source_identifier().map(|s| s.as_str().to_owned()),
        campaign_id: postback.campaign_id().map(i64::from),
        source_app_id,
        source_domain,
        window: i64::from(postback.window()),
        did_win: postback.did_win(),
        conversion_type: postback.conversion_kind().map(|c| c.as_str().to_owned()),
        fidelity_type,
        values: UnsignedValues {
            fine_value: value.fine(),
            coarse_value: value.coarse(),
            interaction: aak_interaction,
        },
        tier_hint: postback.tier_hint().map(i64::from),
        country_code,
        outcome,
        reason_code: verification.outcome.reason_code().map(str::to_owned),
        reason_message: verification.outcome.reason_message(),
        development: verification.development,
        key_name: verification.key.clone(),
    })
}

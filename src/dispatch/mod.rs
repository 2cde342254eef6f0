//! The postback dispatcher: forwards stored postbacks to partners the way an MMP does.
//!
//! Deliveries are created in the postback's own transaction (the outbox, see `store`), claimed
//! with a lease by [`Dispatcher::run`]'s per-destination workers, rendered from the destination's
//! templates, signed, sent outside any transaction and completed only while the lease holds.
//! The pure parts are separate modules: [`config`] (destination documents), [`template`] and
//! [`macros`] (rendering), [`signing`] (Standard Webhooks), [`policy`] (the retry decision),
//! [`breaker`] (the circuit breaker) and [`ssrf`] (which addresses are public). The management
//! operations the API and CLI use are in [`service`].

pub mod breaker;
pub mod destination;
pub mod policy;
pub mod request;
pub mod sealing;
pub mod sender;
pub mod service;
pub mod signing;
pub mod ssrf;
pub mod template;
pub mod values;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use destination::{Destination, DestinationConfig, DestinationError};
pub use sender::{HttpSender, OutgoingRequest, SendOutcome, Sender};
pub use service::{DestinationView, PreviewView, TestSendView};
pub use worker::RunOutcome;

use crate::clock::Clock;
use crate::schema_versions::SchemaVersions;
use crate::store::{Store, StoreError};

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// How often idle workers look for due deliveries (new postbacks wake them at once).
    pub poll_interval: Duration,
    /// Let destinations reach loopback, private and link-local addresses.
    pub allow_private: bool,
    /// Names this receiver's leases, for support work.
    pub instance: String,
    /// Keys sealing signing secrets at rest (none: plaintext).
    pub secret_keys: sealing::SecretKeys,
    /// Where people reach this service's console, for the links in alerts.
    pub console_url: String,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            allow_private: false,
            instance: instance_name(),
            secret_keys: sealing::SecretKeys::default(),
            console_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

/// A name for this process: host and process id plus randomness, unique among receivers.
#[must_use]
pub fn instance_name() -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    format!("pid{}-{:08x}", std::process::id(), u32::from_be_bytes(bytes))
}

/// Why a dispatcher operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// No such destination, delivery or postback.
    #[error("{0}")]
    NotFound(String),
    /// The destination document is invalid; names the field.
    #[error(transparent)]
    Invalid(#[from] DestinationError),
    /// The delivery is being sent right now.
    #[error("{0}")]
    Busy(String),
    /// Stored data does not read back.
    #[error("{0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Forwards postbacks; one per process, shared by the workers and the management API.
#[derive(Debug)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    schemas: Arc<SchemaVersions>,
    sender: Arc<dyn Sender>,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
    wake: tokio::sync::Notify,
    breakers: Mutex<HashMap<i64, breaker::Breaker>>,
    parsed: Mutex<HashMap<i64, (i64, Arc<Destination>)>>,
    claims: AtomicU64,
}

impl Dispatcher {
    /// A dispatcher over `store`, sending through `sender`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        schemas: Arc<SchemaVersions>,
        sender: Arc<dyn Sender>,
        clock: Arc<dyn Clock>,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            store,
            schemas,
            sender,
            clock,
            settings,
            wake: tokio::sync::Notify::new(),
            breakers: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
            claims: AtomicU64::new(0),
        }
    }

    /// Tell the workers new deliveries may be due (called after postbacks are committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The settings it runs with.
    #[must_use]
    pub fn settings(&self) -> &DispatchSettings {
        &self.settings
    }

    /// The checked form of a stored destination, parsed once per change.
    fn parse(
        &self,
        stored: &crate::store::StoredDestination,
    ) -> Result<Arc<Destination>, DispatchError> {
        let mut cache = self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((updated_at, parsed)) = cache.get(&stored.id)
            && *updated_at == stored.updated_at_ms
        {
            return Ok(Arc::clone(parsed));
        }
        let config = service::parse_document(stored, &self.settings.secret_keys)?;
        let parsed = Arc::new(config.validate().map_err(|e| {
            DispatchError::Corrupt(format!(
                "destination {}: stored document is invalid: {e}",
                stored.id
            ))
        })?);
        cache.insert(stored.id, (stored.updated_at_ms, Arc::clone(&parsed)));
        Ok(parsed)
    }
}

//! API keys: generation, hashing, and lookup with a short-lived cache.
//!
//! A key is `skr_` followed by 32 random bytes in base64url; only its SHA-256 is stored (a key
//! has 256 bits of entropy, so a fast hash is enough and a stolen database reveals no key). The
//! cache keeps ingest from costing a database round trip per request. Revocation still takes
//! effect within a second on every receiver: each reads one revocation mark (how many keys are
//! revoked, and the latest time) at most once a second and forgets its cache when it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::store::{ApiKey, KeyStore, StoreError};

/// The prefix every key starts with, so leaked keys are easy to find in logs and repositories.
pub const KEY_PREFIX: &str = "skr_";

/// A freshly generated key: the secret (shown once) and what is stored.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The secret to hand to the user.
    pub secret: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// The first characters of the secret, for recognising it.
    pub prefix: String,
}

/// Why a key could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

/// Generate a new random key.
///
/// # Errors
/// [`RandomError`] when the operating system cannot supply randomness.
pub fn generate_key() -> Result<GeneratedKey, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(GeneratedKey { hash: hash_key(&secret), prefix: secret[..12].to_owned(), secret })
}

/// The stored form of a key.
#[must_use]
pub fn hash_key(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves bearer tokens to keys.
#[derive(Debug)]
pub struct Authenticator {
    store: Arc<dyn KeyStore>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (ApiKey, Instant)>>,
    /// The revocation mark (revoked keys, latest revocation) last read: the cache is dropped as
    /// soon as it changes.
    revocations: tokio::sync::Mutex<Option<(i64, Option<i64>)>>,
    /// When the mark was last read, in ms since `started` (`u64::MAX`: never), so the common
    /// case, a check less than a second old, takes no lock.
    checked_at_ms: std::sync::atomic::AtomicU64,
    started: Instant,
}

/// How often cached keys are checked against revocations: a key revoked on any receiver stops
/// working on every receiver sharing the database within this time.
pub const REVOCATION_CHECK: Duration = Duration::from_secs(1);

/// Cached keys kept at most; beyond it the cache is cleared (it refills from the database).
const CACHE_CAPACITY: usize = 10_000;

impl Authenticator {
    /// An authenticator caching hits for `ttl` (0 disables the cache).
    #[must_use]
    pub fn new(store: Arc<dyn KeyStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
            revocations: tokio::sync::Mutex::new(None),
            checked_at_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }

    /// The unrevoked key for this secret, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be asked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash_key(secret);
        if !self.ttl.is_zero() {
            self.drop_cache_after_revocations().await?;
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((key, at)) = cache.get(&hash)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(key.clone()));
            }
        }
        let found = self.store.api_key_by_hash(&hash).await?;
        if let (Some(key), false) = (&found, self.ttl.is_zero()) {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(hash, (key.clone(), Instant::now()));
        }
        Ok(found)
    }
}

impl Authenticator {
    /// Read the revocation mark (at most once per [`REVOCATION_CHECK`], one small query for all
    /// keys) and forget every cached key when it changed.
    async fn drop_cache_after_revocations(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let fresh = || {
            let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            let last = self.checked_at_ms.load(Ordering::Relaxed);
            (
                last != u64::MAX
                    && now_ms.saturating_sub(last) < REVOCATION_CHECK.as_millis() as u64,
                now_ms,
            )
        };
        if fresh().0 {
            return Ok(());
        }
        let mut checked = self.revocations.lock().await;
        // Another request may have read the mark while this one waited for the lock.
        let (is_fresh, now_ms) = fresh();
        if is_fresh {
            return Ok(());
        }
        let mark = self.store.revocation_mark().await?;
        if *checked != Some(mark) {
            self.cache.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
        *checked = Some(mark);
        self.checked_at_ms.store(now_ms, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_prefixed_and_hash_to_what_is_stored() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX));
        assert_eq!(a.secret.len(), 4 + 43);
        assert_eq!(a.hash, hash_key(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(a.secret.starts_with(&a.prefix));
    }
}

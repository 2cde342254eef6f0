//! Remembered verification results, so a signature seen before is not checked again.
//!
//! Duplicates are normal traffic: devices retry, and the developer's copy and each ad network's
//! copy of a postback carry the same signed message and signature. The answer for a
//! (key, message, signature) triple never changes, so it can be reused. Entries are keyed by 128
//! bits of SHA-256 over the key name, the message digest and the signature bytes: reusing an
//! answer needs a second preimage of an entry someone else submitted, which is out of reach.
//! The cache is bounded (least recently used entries go first) and holds no postback data.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

/// 128 bits of SHA-256 over the length-prefixed key name, digest and signature.
fn entry_id(key_name: &str, digest: &[u8], signature: &[u8]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for part in [key_name.as_bytes(), digest, signature] {
        hasher.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        hasher.update(part);
    }
    let full = hasher.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&full[..16]);
    id
}

/// A bounded, thread-safe map from a verified triple to its answer.
#[derive(Debug)]
pub struct SignatureCache {
    entries: quick_cache::sync::Cache<[u8; 16], bool>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SignatureCache {
    /// Room for `capacity` answers (each about 40 bytes with its index).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The remembered answer, or `check()`'s, remembered.
    pub fn get_or_check(
        &self,
        key_name: &str,
        digest: &[u8],
        signature: &[u8],
        check: impl FnOnce() -> bool,
    ) -> bool {
        if let Some(answer) = self.get(key_name, digest, signature) {
            return answer;
        }
        let answer = check();
        self.insert(key_name, digest, signature, answer);
        answer
    }

    /// The remembered answer, if any (counted as a hit or a miss).
    pub fn get(&self, key_name: &str, digest: &[u8], signature: &[u8]) -> Option<bool> {
        let answer = self.entries.get(&entry_id(key_name, digest, signature));
        let counter = if answer.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }

    /// Remember an answer.
    pub fn insert(&self, key_name: &str, digest: &[u8], signature: &[u8], answer: bool) {
        self.entries.insert(entry_id(key_name, digest, signature), answer);
    }

    /// Answers held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Answers reused and answers computed so far.
    #[must_use]
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn an_answer_is_reused_only_for_the_same_key_message_and_signature() {
        let cache = SignatureCache::new(100);
        let calls = Cell::new(0);
        let check = |answer: bool| {
            calls.set(calls.get() + 1);
            answer
        };
        assert!(cache.get_or_check("k", b"digest", b"sig", || check(true)));
        assert!(cache.get_or_check("k", b"digest", b"sig", || check(false)), "remembered");
        assert_eq!(calls.get(), 1);
        assert!(!cache.get_or_check("k", b"digest", b"sig2", || check(false)));
        assert!(!cache.get_or_check("k", b"digest2", b"sig", || check(false)));
        assert!(!cache.get_or_check("other", b"digest", b"sig", || check(false)));
        // Length-prefixed parts: moving bytes between fields is a different triple.
        assert!(!cache.get_or_check("k", b"digestsi", b"g", || check(false)));
        assert_eq!(calls.get(), 5);
        assert_eq!(cache.hits_and_misses(), (1, 5));
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = SignatureCache::new(50);
        for i in 0..1_000u32 {
            cache.get_or_check("k", &i.to_be_bytes(), b"s", || true);
        }
        assert!(cache.len() <= 60, "held {}", cache.len());
    }
}

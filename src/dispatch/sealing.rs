//! Destination signing secrets at rest: sealed with AES-256-GCM under a key the operator gives
//! (`--secrets-key-file` / `SKAN_SECRETS_KEY`), so a copy of the database reveals no secret.
//!
//! A sealed secret is `sealed:v1:<key id>:<base64 of nonce and ciphertext>`; the key id (the
//! first bytes of the key's SHA-256) says which key sealed it. Several keys may be given, the
//! first sealing and all opening, so keys rotate: start with the new key first and the old one
//! after it, and every secret is sealed again under the new key at start-up. Without a key,
//! secrets stay as they are (plaintext), and the service says so when it starts.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "sealed:v1:";

/// The keys secrets are sealed and opened with; the first one seals.
#[derive(Clone, Default)]
pub struct SecretKeys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys").field("key_ids", &self.key_ids()).finish()
    }
}

/// Why secrets cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SealingError(pub String);

impl SecretKeys {
    /// Keys from text: base64 of 32 bytes each, separated by newlines or commas; `#` starts a
    /// comment line.
    ///
    /// # Errors
    /// A key that is not base64 of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SealingError> {
        let mut keys = Vec::new();
        for (n, item) in text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let bytes = STANDARD
                .decode(item)
                .map_err(|e| SealingError(format!("secrets key {}: not base64: {e}", n + 1)))?;
            if bytes.len() != 32 {
                return Err(SealingError(format!(
                    "secrets key {}: {} bytes; an AES-256 key is 32 bytes (openssl rand -base64 32)",
                    n + 1,
                    bytes.len()
                )));
            }
            let id: String =
                Sha256::digest(&bytes).iter().take(4).map(|b| format!("{b:02x}")).collect();
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| SealingError(format!("secrets key {}: not a key", n + 1)))?;
            keys.push((id, cipher));
        }
        Ok(Self { keys })
    }

    /// Whether any key is configured (otherwise secrets are stored as they are).
    #[must_use]
    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Seal a secret under the first key (unchanged when no key is configured or it is sealed
    /// under the first key already). `nonce` must be fresh random bytes.
    ///
    /// # Errors
    /// A secret sealed under a key not given, or a failed encryption.
    pub fn seal(&self, secret: &str, nonce: [u8; 12]) -> Result<String, SealingError> {
        let Some((id, cipher)) = self.keys.first() else { return Ok(secret.to_owned()) };
        if secret.strip_prefix(PREFIX).is_some_and(|rest| rest.starts_with(&format!("{id}:"))) {
            return Ok(secret.to_owned());
        }
        let plain = self.open(secret)?;
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), plain.as_bytes())
            .map_err(|_| SealingError("encryption failed".to_owned()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(format!("{PREFIX}{id}:{}", STANDARD.encode(bytes)))
    }

    /// A secret as stored, opened (a plaintext one is returned as it is).
    ///
    /// # Errors
    /// Sealed under a key not given, or tampered with.
    pub fn open(&self, stored: &str) -> Result<String, SealingError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let (id, data) = rest
            .split_once(':')
            .ok_or_else(|| SealingError("a sealed secret without a key id".to_owned()))?;
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == id).ok_or_else(|| {
            SealingError(format!(
                "a secret is sealed under key {id}, which is not among the secrets keys given ({})",
                self.key_ids().join(", ")
            ))
        })?;
        let bytes = STANDARD
            .decode(data)
            .map_err(|e| SealingError(format!("a sealed secret is not base64: {e}")))?;
        if bytes.len() < 12 {
            return Err(SealingError("a sealed secret is too short".to_owned()));
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&bytes[..12]);
        let plain = cipher.decrypt(&Nonce::from(nonce), &bytes[12..]).map_err(|_| {
            SealingError(format!(
                "a secret sealed under key {id} does not open: altered or a different key"
            ))
        })?;
        String::from_utf8(plain).map_err(|_| SealingError("a sealed secret is not text".to_owned()))
    }

    /// Whether a stored secret needs sealing again (plaintext, or under an older key).
    #[must_use]
    pub fn needs_sealing(&self, stored: &str) -> bool {
        match self.keys.first() {
            None => false,
            Some((id, _)) => !stored.starts_with(&format!("{PREFIX}{id}:")),
        }
    }
}

/// Fresh random bytes for a nonce.
///
/// # Errors
/// When the operating system's random source fails.
pub fn fresh_nonce() -> Result<[u8; 12], SealingError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| SealingError(format!("no randomness: {e}")))?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const NEW: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn secrets_seal_open_and_move_to_a_new_key() {
        let old = SecretKeys::parse(OLD).unwrap();
        let sealed = old.seal("whsec_abc", [7; 12]).unwrap();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("whsec_abc"), "{sealed}");
        assert_eq!(old.open(&sealed).unwrap(), "whsec_abc");
        assert!(!old.needs_sealing(&sealed));

        let rotated = SecretKeys::parse(&format!("# new first\n{NEW}\n{OLD}\n")).unwrap();
        assert!(rotated.needs_sealing(&sealed));
        let resealed = rotated.seal(&sealed, [9; 12]).unwrap();
        assert_ne!(resealed, sealed);
        assert_eq!(rotated.open(&resealed).unwrap(), "whsec_abc");
        let new_only = SecretKeys::parse(NEW).unwrap();
        assert_eq!(new_only.open(&resealed).unwrap(), "whsec_abc");
        assert!(new_only.open(&sealed).unwrap_err().0.contains("not among the secrets keys"));

        let mut tampered = resealed.clone();
        tampered.pop();
        tampered.push(if resealed.ends_with('A') { 'B' } else { 'A' });
        assert!(new_only.open(&tampered).is_err());
        assert_eq!(SecretKeys::default().seal("whsec_x", [0; 12]).unwrap(), "whsec_x");
        assert!(SecretKeys::parse("c2hvcnQ=").unwrap_err().0.contains("32 bytes"));
    }
}

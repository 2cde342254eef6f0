//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! Headers `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256>` per secret, space-separated, so a partner can rotate keys) over
//! `"{id}.{timestamp}.{body}"`. Secrets are `whsec_` followed by base64 of 24-64 random bytes.
//! Pure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// Decode a `whsec_` secret to its key bytes.
///
/// # Errors
/// A message when the prefix, the base64 or the length is wrong.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").ok_or("a secret starts with whsec_")?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("a secret holds 24 to 64 bytes, this one {}", key.len()));
    }
    Ok(key)
}

/// The `webhook-signature` header value for a message.
#[must_use]
pub fn sign(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .filter_map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new random secret.
///
/// # Errors
/// When the operating system's random source fails.
pub fn generate_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// Hide a secret for display: prefix and last four characters.
#[must_use]
pub fn mask(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("whsec_****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_example() {
        // The example in the Standard Webhooks specification.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_for_rotation_and_bad_secrets_are_named() {
        let a = decode_secret(&generate_secret().unwrap()).unwrap();
        let b = decode_secret(&generate_secret().unwrap()).unwrap();
        let header = sign(&[a, b], "dlv_1", 1, b"x");
        assert_eq!(header.split(' ').count(), 2);
        assert!(decode_secret("abc").is_err());
        assert!(decode_secret("whsec_!!!").is_err());
        assert!(decode_secret("whsec_AAAA").unwrap_err().contains("24 to 64"));
        assert_eq!(mask("whsec_abcdefgh"), "whsec_****efgh");
    }
}

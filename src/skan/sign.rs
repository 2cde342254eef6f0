//! Signing postbacks the way Apple does, with keys of our own.
//!
//! Apple's private keys are Apple's; this exists so that every shape Apple never published (SPEC.md
//! §7) has a vector, so the load generator can send realistic signed traffic, and so property
//! tests can sign arbitrary postbacks. A verifier configured with the matching public keys
//! (`--keys DIR`) treats the result exactly like Apple's postbacks.
//!
//! P-192 signing is not offered by the `p192` crate (NIST no longer allows new P-192 signatures);
//! test vectors still need it, so it goes through `ecdsa`'s generic RFC 6979 primitive.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ecdsa::signature::Signer as _;
use elliptic_curve::NonZeroScalar;
use p192::NistP192;
use p256::pkcs8::DecodePrivateKey as _;
use sha2::{Digest as _, Sha256};

use super::skadnetwork::SkanPostback;
use super::version::{Curve, Version};

/// Private keys that sign SKAdNetwork postbacks (P-192 for 1.0/2.0, P-256 for later versions)
/// and AdAttributionKit JWSs (P-256).
pub struct PostbackSigner {
    p192: Option<NonZeroScalar<NistP192>>,
    p256: Option<p256::ecdsa::SigningKey>,
}

/// Why signing was not possible.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A private key PEM did not parse.
    #[error("not a PKCS#8 PEM private key on {curve}: {reason}")]
    Key {
        /// The curve expected.
        curve: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The postback needs a key on a curve this signer does not hold.
    #[error("no {0} private key loaded")]
    NoKey(&'static str),
    /// The postback's version has no published composition, so there is nothing to sign.
    #[error("SKAdNetwork version {0:?} has no known signed composition")]
    UnknownVersion(String),
}

impl PostbackSigner {
    /// Load PKCS#8 PEM private keys; either may be absent.
    ///
    /// # Errors
    /// [`SignError::Key`] when a PEM does not hold a private key on its curve.
    pub fn from_pkcs8_pem(
        p256_pem: Option<&str>,
        p192_pem: Option<&str>,
    ) -> Result<Self, SignError> {
        let p256 = p256_pem
            .map(|pem| {
                p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
                    .map_err(|e| SignError::Key { curve: "P-256", reason: e.to_string() })
            })
            .transpose()?;
        let p192 = p192_pem
            .map(|pem| {
                elliptic_curve::SecretKey::<NistP192>::from_pkcs8_pem(pem)
                    .map(|sk| sk.to_nonzero_scalar())
                    .map_err(|e| SignError::Key { curve: "P-192", reason: e.to_string() })
            })
            .transpose()?;
        Ok(Self { p192, p256 })
    }

    /// Sign a SKAdNetwork postback in place, replacing its `attribution-signature`.
    ///
    /// # Errors
    /// [`SignError::UnknownVersion`] for a version without composition, [`SignError::NoKey`] when
    /// the needed curve's key is not loaded.
    pub fn sign_skan(&self, skan: &mut SkanPostback) -> Result<(), SignError> {
        let version = match &skan.version {
            Version::Known(v) => *v,
            Version::Unknown(text) => return Err(SignError::UnknownVersion(text.clone())),
        };
        let message = skan.signed_message().unwrap_or_default();
        let der = match version.curve() {
            Curve::P256 => {
                let key = self.p256.as_ref().ok_or(SignError::NoKey("P-256"))?;
                let signature: p256::ecdsa::Signature = key.sign(message.as_bytes());
                signature.to_der().as_bytes().to_vec()
            }
            Curve::P192 => {
                let key = self.p192.as_ref().ok_or(SignError::NoKey("P-192"))?;
                let digest = Sha256::digest(message.as_bytes());
                let (signature, _) =
                    ecdsa::hazmat::sign_prehashed_rfc6979::<NistP192, Sha256>(key, &digest, &[]);
                signature.to_der().as_bytes().to_vec()
            }
        };
        skan.attribution_signature = Some(STANDARD.encode(der));
        Ok(())
    }

    /// Produce a compact ES256 JWS over `payload` with header `{"kid": kid, "alg": "ES256"}`.
    ///
    /// # Errors
    /// [`SignError::NoKey`] when no P-256 key is loaded.
    pub fn sign_jws(&self, kid: &str, payload: &[u8]) -> Result<String, SignError> {
        let key = self.p256.as_ref().ok_or(SignError::NoKey("P-256"))?;
        let header = serde_json::json!({ "kid": kid, "alg": "ES256" }).to_string();
        let mut compact = URL_SAFE_NO_PAD.encode(header);
        compact.push('.');
        compact.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature: p256::ecdsa::Signature = key.sign(compact.as_bytes());
        compact.push('.');
        compact.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Ok(compact)
    }
}

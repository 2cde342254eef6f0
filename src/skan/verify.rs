//! Signature verification for both protocols, and the three outcomes a postback can have.
//!
//! "Invalid" means the signature was checked and does not hold (or cannot be decoded): the data
//! may have been forged or altered. "Unverifiable" means we could not check at all (a version with
//! no published composition, a `kid` we hold no key for): nothing is known either way. The two
//! are kept apart so operators can tell tampering from a new Apple release.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ecdsa::signature::hazmat::PrehashVerifier as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::adattributionkit::AakPostback;
use super::fixed_key::FixedKeyVerifier;
use super::keys::{AppleKey, KeySet, PublicKey};
use super::postback::{Postback, PostbackBody};
use super::skadnetwork::SkanPostback;
use super::version::{Version, key};

/// Standard base64 that accepts the signature with or without `=` padding (forwarders differ).
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What checking a postback's signature established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Valid, invalid or unverifiable, with the reason.
    pub outcome: Outcome,
    /// Name of the key that was used, when one was found.
    pub key: Option<String>,
    /// The key is a development key: the postback proves nothing about a real install and must
    /// never be counted as production, whatever the outcome.
    pub development: bool,
}

/// The result of a signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The signature holds over the signed fields.
    Valid,
    /// The signature was checked and does not hold, or is not a signature at all.
    Invalid(InvalidReason),
    /// No check was possible.
    Unverifiable(UnverifiableReason),
}

/// Why a signature is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidReason {
    /// No `attribution-signature` key.
    MissingSignature,
    /// The signature is not base64 / base64url, or not a DER / raw R‖S ECDSA signature.
    MalformedSignature(String),
    /// The JWS header names an algorithm other than ES256.
    UnexpectedAlgorithm(String),
    /// The signature does not match the signed data under the key.
    SignatureMismatch,
}

/// Why a postback could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnverifiableReason {
    /// The `version` has no published signature composition.
    UnknownVersion(String),
    /// The key set has no key for this version.
    NoKeyForVersion(String),
    /// The JWS `kid` names no key in the set.
    UnknownKid(String),
}

/// Outcome class names used in APIs, metrics and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeClass {
    /// See [`Outcome::Valid`].
    Valid,
    /// See [`Outcome::Invalid`].
    Invalid,
    /// See [`Outcome::Unverifiable`].
    Unverifiable,
}

impl OutcomeClass {
    /// `"valid"`, `"invalid"` or `"unverifiable"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unverifiable => "unverifiable",
        }
    }
}

impl Outcome {
    /// The class of the outcome.
    #[must_use]
    pub fn class(&self) -> OutcomeClass {
        match self {
            Self::Valid => OutcomeClass::Valid,
            Self::Invalid(_) => OutcomeClass::Invalid,
            Self::Unverifiable(_) => OutcomeClass::Unverifiable,
        }
    }

    /// Stable snake_case reason code (`None` when valid).
    #[must_use]
    pub fn reason_code(&self) -> Option<&'static str> {
        Some(match self {
            Self::Valid => return None,
            Self::Invalid(InvalidReason::MissingSignature) => "missing_signature",
            Self::Invalid(InvalidReason::MalformedSignature(_)) => "malformed_signature",
            Self::Invalid(InvalidReason::UnexpectedAlgorithm(_)) => "unexpected_algorithm",
            Self::Invalid(InvalidReason::SignatureMismatch) => "signature_mismatch",
            Self::Unverifiable(UnverifiableReason::UnknownVersion(_)) => "unknown_version",
            Self::Unverifiable(UnverifiableReason::NoKeyForVersion(_)) => "no_key_for_version",
            Self::Unverifiable(UnverifiableReason::UnknownKid(_)) => "unknown_kid",
        })
    }

    /// The field the reason is about, for error bodies.
    #[must_use]
    pub fn reason_field(&self, protocol_is_aak: bool) -> Option<&'static str> {
        Some(match self {
            Self::Valid => return None,
            Self::Invalid(InvalidReason::UnexpectedAlgorithm(_)) => "jws-string.header.alg",
            Self::Unverifiable(UnverifiableReason::UnknownKid(_)) => "jws-string.header.kid",
            Self::Unverifiable(_) => key::VERSION,
            Self::Invalid(_) if protocol_is_aak => "jws-string",
            Self::Invalid(_) => key::ATTRIBUTION_SIGNATURE,
        })
    }

    /// Human-readable explanation (`None` when valid).
    #[must_use]
    pub fn reason_message(&self) -> Option<String> {
        Some(match self {
            Self::Valid => return None,
            Self::Invalid(InvalidReason::MissingSignature) => {
                "the postback has no attribution-signature".to_owned()
            }
            Self::Invalid(InvalidReason::MalformedSignature(detail)) => {
                format!("the signature cannot be decoded: {detail}")
            }
            Self::Invalid(InvalidReason::UnexpectedAlgorithm(alg)) => {
                format!("the JWS header claims algorithm {alg:?}; AdAttributionKit uses ES256 only")
            }
            Self::Invalid(InvalidReason::SignatureMismatch) => {
                "the signature does not match the signed fields under Apple's key".to_owned()
            }
            Self::Unverifiable(UnverifiableReason::UnknownVersion(v)) => {
                format!("SKAdNetwork version {v:?} has no published signature composition")
            }
            Self::Unverifiable(UnverifiableReason::NoKeyForVersion(v)) => {
                format!("the configured key set has no key for SKAdNetwork {v}")
            }
            Self::Unverifiable(UnverifiableReason::UnknownKid(kid)) => {
                format!("the configured key set has no key with kid {kid:?}")
            }
        })
    }
}

impl Verification {
    /// Whether the signature holds (development or not).
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.outcome == Outcome::Valid
    }

    /// Whether the postback counts as a genuine production postback: valid under a production key.
    #[must_use]
    pub fn is_production_valid(&self) -> bool {
        self.is_valid() && !self.development
    }

    fn without_key(outcome: Outcome) -> Self {
        Self { outcome, key: None, development: false }
    }

    fn with_key(outcome: Outcome, key: &AppleKey) -> Self {
        Self { outcome, key: Some(key.name.clone()), development: key.development }
    }
}

/// Check a postback's signature against the key set.
#[must_use]
pub fn verify(postback: &Postback, keys: &KeySet) -> Verification {
    match step(postback, keys) {
        Step::Done(verification) => verification,
        Step::P256(check) => {
            let valid =
                keys.remembered(check.key, &check.digest, &check.signature.to_bytes(), || {
                    check.run_alone(keys)
                });
            check.finish(valid)
        }
    }
}

/// [`verify`] for many postbacks, with every P-256 check that has fixed-key tables done in one
/// batch sharing a single inversion. Same answers, in the same order.
#[must_use]
pub fn verify_many(postbacks: &[&Postback], keys: &KeySet) -> Vec<Verification> {
    let steps: Vec<Step<'_>> = postbacks.iter().map(|p| step(p, keys)).collect();
    let mut answers: Vec<Option<bool>> = vec![None; steps.len()];
    let mut batch = Vec::new();
    let mut batched = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let Step::P256(check) = s else { continue };
        let signature = check.signature.to_bytes();
        if let Some(answer) = keys.recalled(check.key, &check.digest, &signature) {
            answers[i] = Some(answer);
        } else if let Some(fixed) = keys.fixed_verifier(check.key) {
            batch.push((fixed, check.digest, check.signature));
            batched.push(i);
        } else {
            let answer = check.run_alone(keys);
            keys.remember(check.key, &check.digest, &signature, answer);
            answers[i] = Some(answer);
        }
    }
    for (i, answer) in batched.into_iter().zip(FixedKeyVerifier::verify_batch(&batch)) {
        if let Step::P256(check) = &steps[i] {
            keys.remember(check.key, &check.digest, &check.signature.to_bytes(), answer);
        }
        answers[i] = Some(answer);
    }
    steps
        .into_iter()
        .zip(answers)
        .map(|(s, answer)| match s {
            Step::Done(verification) => verification,
            Step::P256(check) => check.finish(answer.unwrap_or(false)),
        })
        .collect()
}

/// How far a postback's verification gets without checking a P-256 signature.
enum Step<'k> {
    /// Decided (no key, no or malformed signature, or a P-192 signature, checked at once).
    Done(Verification),
    /// A P-256 signature to check: with the others of a batch, or alone.
    P256(P256Check<'k>),
}

/// A P-256 signature over SHA-256 of a message, to check against a key.
struct P256Check<'k> {
    key: &'k AppleKey,
    verifying_key: &'k p256::ecdsa::VerifyingKey,
    digest: [u8; 32],
    signature: p256::ecdsa::Signature,
}

impl P256Check<'_> {
    /// The fixed-key tables when the key set has them, else `p256`'s verifier.
    fn run_alone(&self, keys: &KeySet) -> bool {
        match keys.fixed_verifier(self.key) {
            Some(fixed) => fixed.verify_prehash(&self.digest, &self.signature),
            None => self.verifying_key.verify_prehash(&self.digest, &self.signature).is_ok(),
        }
    }

    fn finish(&self, valid: bool) -> Verification {
        let outcome =
            if valid { Outcome::Valid } else { Outcome::Invalid(InvalidReason::SignatureMismatch) };
        Verification::with_key(outcome, self.key)
    }
}

fn p256_check<'k>(
    key: &'k AppleKey,
    verifying_key: &'k p256::ecdsa::VerifyingKey,
    message: &[u8],
    signature: p256::ecdsa::Signature,
) -> Step<'k> {
    Step::P256(P256Check { key, verifying_key, digest: Sha256::digest(message).into(), signature })
}

fn step<'k>(postback: &Postback, keys: &'k KeySet) -> Step<'k> {
    match postback.body() {
        PostbackBody::Skan(skan) => step_skan(skan, keys),
        PostbackBody::Aak(aak) => step_aak(aak, keys),
    }
}

fn step_skan<'k>(skan: &SkanPostback, keys: &'k KeySet) -> Step<'k> {
    let done = Step::Done;
    let version = match &skan.version {
        Version::Known(v) => *v,
        Version::Unknown(text) => {
            return done(Verification::without_key(Outcome::Unverifiable(
                UnverifiableReason::UnknownVersion(text.clone()),
            )));
        }
    };
    let Some(key) = keys.for_skan(version) else {
        return done(Verification::without_key(Outcome::Unverifiable(
            UnverifiableReason::NoKeyForVersion(version.as_str().to_owned()),
        )));
    };
    let invalid = |reason| done(Verification::with_key(Outcome::Invalid(reason), key));
    let Some(signature_b64) = &skan.attribution_signature else {
        return invalid(InvalidReason::MissingSignature);
    };
    let der = match BASE64_ANY_PADDING.decode(signature_b64) {
        Ok(bytes) => bytes,
        Err(err) => {
            return invalid(InvalidReason::MalformedSignature(format!("not base64: {err}")));
        }
    };
    // A known version always has a composition.
    let message = skan.signed_message().unwrap_or_default();
    let not_der = |err: ecdsa::Error| {
        InvalidReason::MalformedSignature(format!(
            "not a DER ECDSA signature for this curve: {err}"
        ))
    };
    match &key.key {
        PublicKey::P256(verifying_key) => match p256::ecdsa::Signature::from_der(&der) {
            Ok(signature) => p256_check(key, verifying_key, message.as_bytes(), signature),
            Err(err) => invalid(not_der(err)),
        },
        PublicKey::P192(verifying_key) => match p192::ecdsa::Signature::from_der(&der) {
            Ok(signature) => {
                let digest = Sha256::digest(message.as_bytes());
                let valid = keys.remembered(key, &digest, &signature.to_bytes(), || {
                    match keys.fixed_verifier_p192(key) {
                        Some(fixed) => fixed.verify_prehash(&digest.into(), &signature),
                        None => verifying_key.verify_prehash(&digest, &signature).is_ok(),
                    }
                });
                if valid {
                    done(Verification::with_key(Outcome::Valid, key))
                } else {
                    invalid(InvalidReason::SignatureMismatch)
                }
            }
            Err(err) => invalid(not_der(err)),
        },
    }
}

fn step_aak<'k>(aak: &AakPostback, keys: &'k KeySet) -> Step<'k> {
    let done = Step::Done;
    let header = &aak.jws.header;
    if header.alg != "ES256" {
        return done(Verification::without_key(Outcome::Invalid(
            InvalidReason::UnexpectedAlgorithm(header.alg.clone()),
        )));
    }
    let Some(key) = keys.for_kid(&header.kid) else {
        return done(Verification::without_key(Outcome::Unverifiable(
            UnverifiableReason::UnknownKid(header.kid.clone()),
        )));
    };
    let invalid = |reason| done(Verification::with_key(Outcome::Invalid(reason), key));
    let PublicKey::P256(verifying_key) = &key.key else {
        // The manifest loader refuses a kid on any other curve.
        return invalid(InvalidReason::SignatureMismatch);
    };
    let signature = match URL_SAFE_NO_PAD.decode(aak.jws.signature_segment()) {
        Ok(bytes) => bytes,
        Err(err) => {
            return invalid(InvalidReason::MalformedSignature(format!(
                "the JWS signature segment is not base64url: {err}"
            )));
        }
    };
    match p256::ecdsa::Signature::from_slice(&signature) {
        Ok(signature) => p256_check(key, verifying_key, aak.jws.signing_input(), signature),
        Err(_) => invalid(InvalidReason::MalformedSignature(format!(
            "an ES256 signature is 64 bytes of R and S, got {} bytes or a zero/oversized scalar",
            signature.len()
        ))),
    }
}

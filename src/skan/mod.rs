//! Apple's postback protocols: parse, validate and verify SKAdNetwork (1.0-4.0) and
//! AdAttributionKit postbacks.
//!
//! This module is pure: no I/O, no clock, no async. It turns bytes into a typed [`Postback`]
//! (strictly: JSON types as Apple sends them, ranges, keys allowed per version), builds the
//! message Apple signed, checks the signature against a [`KeySet`], and derives what later stages
//! need (dedup key, window, winner, tier hint, conversion value, which keys are signed). The
//! facts it relies on are in `SPEC.md` and are pinned by the vectors in `testdata/`.

mod adattributionkit;
mod error;
mod fixed_key;
mod json;
mod keys;
mod order_inverse;
mod postback;
mod sign;
mod signature_cache;
mod skadnetwork;
mod timing;
mod value;
mod verify;
mod version;

pub use adattributionkit::{
    AakPayload, AakPostback, ConversionType, InteractionType, Jws, JwsHeader,
};
pub use error::{JsonType, ParseError, ParseErrorKind};
pub use fixed_key::FixedKeyVerifier;
pub use fixed_key::p192_tables::FixedKeyVerifier as FixedKeyVerifierP192;
pub use keys::{AppleKey, KeyError, KeySet, PublicKey};
pub use postback::{DedupKey, Postback, PostbackBody};
pub use sign::{PostbackSigner, SignError};
pub use signature_cache::SignatureCache;
pub use skadnetwork::{FidelityType, SEPARATOR, SkanPostback, SourceApp};
pub use timing::{InstallEstimate, day_from_number, day_number, estimate_install};
pub use value::{CoarseValue, ConversionValue, Protocol, SourceIdentifier};
pub use verify::{
    InvalidReason, Outcome, OutcomeClass, UnverifiableReason, Verification, verify, verify_many,
};
pub use version::{Curve, SkanVersion, Version};

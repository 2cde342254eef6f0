//! The typed postback of either protocol, with the derived facts every later stage needs.

use std::fmt;

use bytes::Bytes;

use super::adattributionkit::{AakPostback, ConversionType, InteractionType, outer};
use super::error::ParseError;
use super::json::Entries;
use super::skadnetwork::{FidelityType, SkanPostback};
use super::value::{ConversionValue, Protocol, SourceIdentifier};
use super::version::SkanVersion;

/// A postback as received: the original bytes and their typed reading.
///
/// The bytes are kept verbatim because storage, re-verification and forwarding all need exactly
/// what arrived, not a re-serialization.
#[derive(Debug, Clone, PartialEq)]
pub struct Postback {
    raw: Bytes,
    body: PostbackBody,
}

/// The protocol-specific reading of a postback.
#[derive(Debug, Clone, PartialEq)]
pub enum PostbackBody {
    /// A SKAdNetwork postback.
    Skan(SkanPostback),
    /// An AdAttributionKit postback.
    Aak(AakPostback),
}

impl Postback {
    /// Read one postback from its JSON bytes.
    ///
    /// An object with a `jws-string` is AdAttributionKit; anything else is SKAdNetwork, versioned
    /// by its `version` key (absent means 1.0).
    ///
    /// # Errors
    /// A [`ParseError`] naming the field and the rule when the bytes are not a well-formed
    /// postback: bad JSON, duplicate keys, wrong JSON types, out-of-range values, keys that do
    /// not belong to the declared version, or conflicting keys.
    pub fn parse(raw: impl Into<Bytes>) -> Result<Self, ParseError> {
        let raw = raw.into();
        let doc = Entries::parse(&raw)?;
        let body = if doc.contains(outer::JWS_STRING) {
            PostbackBody::Aak(AakPostback::from_entries(doc)?)
        } else {
            PostbackBody::Skan(SkanPostback::from_entries(doc)?)
        };
        Ok(Self { raw, body })
    }

    /// Build a postback from a typed SKAdNetwork value, serializing it as Apple would.
    ///
    /// Used to produce test vectors and load; the result parses back to the same value.
    #[must_use]
    pub fn from_skan(skan: SkanPostback) -> Self {
        let raw = serde_json::to_vec(&skan.to_json()).unwrap_or_default();
        Self { raw: raw.into(), body: PostbackBody::Skan(skan) }
    }

    /// The bytes exactly as received.
    #[must_use]
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The typed reading.
    #[must_use]
    pub fn body(&self) -> &PostbackBody {
        &self.body
    }

    /// Which protocol the postback speaks.
    #[must_use]
    pub fn protocol(&self) -> Protocol {
        match self.body {
            PostbackBody::Skan(_) => Protocol::SkAdNetwork,
            PostbackBody::Aak(_) => Protocol::AdAttributionKit,
        }
    }

    /// The SKAdNetwork version string (`"1.0"` when the key is absent); `None` for
    /// AdAttributionKit, which has no versions.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        match &self.body {
            PostbackBody::Skan(s) => Some(s.version.as_str()),
            PostbackBody::Aak(_) => None,
        }
    }

    /// The known SKAdNetwork version, if this is a SKAdNetwork postback of a published version.
    #[must_use]
    pub fn skan_version(&self) -> Option<SkanVersion> {
        match &self.body {
            PostbackBody::Skan(s) => s.version.known(),
            PostbackBody::Aak(_) => None,
        }
    }

    /// The ad network the postback is addressed to.
    #[must_use]
    pub fn ad_network_id(&self) -> &str {
        match &self.body {
            PostbackBody::Skan(s) => &s.ad_network_id,
            PostbackBody::Aak(a) => &a.jws.payload.ad_network_identifier,
        }
    }

    /// The advertised app's App Store item ID.
    #[must_use]
    pub fn app_id(&self) -> u64 {
        match &self.body {
            PostbackBody::Skan(s) => s.app_id,
            PostbackBody::Aak(a) => a.jws.payload.advertised_item_identifier,
        }
    }

    /// `transaction-id` (SKAdNetwork) or `postback-identifier` (AdAttributionKit), as received.
    #[must_use]
    pub fn transaction_id(&self) -> &str {
        match &self.body {
            PostbackBody::Skan(s) => &s.transaction_id,
            PostbackBody::Aak(a) => &a.jws.payload.postback_identifier,
        }
    }

    /// The hierarchical source identifier (SKAdNetwork 4.0, AdAttributionKit).
    #[must_use]
    pub fn source_identifier(&self) -> Option<&SourceIdentifier> {
        match &self.body {
            PostbackBody::Skan(s) => s.source_identifier.as_ref(),
            PostbackBody::Aak(a) => Some(&a.jws.payload.source_identifier),
        }
    }

    /// The campaign ID (SKAdNetwork before 4.0).
    #[must_use]
    pub fn campaign_id(&self) -> Option<u8> {
        match &self.body {
            PostbackBody::Skan(s) => s.campaign_id,
            PostbackBody::Aak(_) => None,
        }
    }

    /// The conversion window (postback-sequence-index); 0 for versions with a single postback.
    #[must_use]
    pub fn window(&self) -> u8 {
        match &self.body {
            PostbackBody::Skan(s) => s.postback_sequence_index.unwrap_or(0),
            PostbackBody::Aak(a) => a.jws.payload.postback_sequence_index,
        }
    }

    /// Whether this network won the attribution; versions before 3.0 only sent winners.
    #[must_use]
    pub fn did_win(&self) -> bool {
        match &self.body {
            PostbackBody::Skan(s) => s.did_win.unwrap_or(true),
            PostbackBody::Aak(a) => a.jws.payload.did_win,
        }
    }

    /// The conversion value, with "none" distinct from 0.
    #[must_use]
    pub fn conversion_value(&self) -> ConversionValue {
        match &self.body {
            PostbackBody::Skan(s) => s.conversion_value,
            PostbackBody::Aak(a) => a.conversion_value,
        }
    }

    /// Whether the conversion is a redownload: SKAdNetwork `redownload` (absent before 2.0) or
    /// AdAttributionKit `conversion-type`.
    #[must_use]
    pub fn conversion_kind(&self) -> Option<ConversionType> {
        match &self.body {
            PostbackBody::Skan(s) => s
                .redownload
                .map(|r| if r { ConversionType::Redownload } else { ConversionType::Download }),
            PostbackBody::Aak(a) => Some(a.jws.payload.conversion_type),
        }
    }

    /// How the user met the ad: SKAdNetwork `fidelity-type` 1 is a click (StoreKit-rendered or
    /// web ad), 0 a view; AdAttributionKit says so directly (unsigned).
    #[must_use]
    pub fn interaction(&self) -> Option<InteractionType> {
        match &self.body {
            PostbackBody::Skan(s) => s.fidelity_type.map(|f| match f {
                FidelityType::StoreKitRendered => InteractionType::Click,
                FidelityType::ViewThrough => InteractionType::View,
            }),
            PostbackBody::Aak(a) => a.ad_interaction_type,
        }
    }

    /// The lowest crowd-anonymity tier (0-3) consistent with what Apple disclosed in this postback.
    ///
    /// Apple never states the tier; it shows through what it lets through (SPEC.md §3.2): a fine
    /// value or 3-4 source-identifier digits need tier 2, the publishing app or domain needs tier
    /// 3, a coarse value alone means tier 1, and two digits with nothing else tier 0. Only the
    /// first window of winning 4.0 / AdAttributionKit postbacks says enough; later windows look
    /// the same at tiers 1-3 and nonwinning postbacks never carry values, so those give `None`
    /// unless the digits alone prove tier 2. Versions before 4.0 have no tiers.
    #[must_use]
    pub fn tier_hint(&self) -> Option<u8> {
        let (digits, source_disclosed) = match &self.body {
            PostbackBody::Skan(s) => {
                (s.source_identifier.as_ref()?.digits(), s.source_app.is_some())
            }
            PostbackBody::Aak(a) => (
                a.jws.payload.source_identifier.digits(),
                a.jws.payload.publisher_item_identifier.is_some(),
            ),
        };
        let value = self.conversion_value();
        if !self.did_win() || self.window() > 0 {
            return (digits >= 3).then_some(2);
        }
        Some(match value {
            ConversionValue::Fine(_) => 2 + u8::from(source_disclosed),
            _ if digits >= 3 => 2 + u8::from(source_disclosed),
            ConversionValue::Coarse(_) => 1,
            ConversionValue::None if source_disclosed => 3,
            ConversionValue::None => 0,
        })
    }

    /// The key that identifies one postback across retries and channels.
    #[must_use]
    pub fn dedup_key(&self) -> DedupKey {
        match &self.body {
            PostbackBody::Skan(s) => DedupKey(format!(
                "skan:{}:{}:{}",
                escape(&s.ad_network_id),
                escape(&s.transaction_id),
                s.postback_sequence_index.unwrap_or(0)
            )),
            PostbackBody::Aak(a) => DedupKey(format!(
                "aak:{}",
                escape(&a.jws.payload.postback_identifier.to_lowercase())
            )),
        }
    }

    /// Keys the signature covers (AdAttributionKit: the JWS payload claims).
    #[must_use]
    pub fn signed_keys(&self) -> Vec<&str> {
        match &self.body {
            PostbackBody::Skan(s) => s.signed_keys(),
            PostbackBody::Aak(a) => a.signed_keys(),
        }
    }

    /// Keys present that the signature does not cover: conversion values, `country-code`, and
    /// anything a forwarder added. Later stages treat these with suspicion.
    #[must_use]
    pub fn unsigned_keys(&self) -> Vec<&str> {
        match &self.body {
            PostbackBody::Skan(s) => s.unsigned_keys(),
            PostbackBody::Aak(a) => a.unsigned_keys(),
        }
    }

    /// The forwarder-added keys (not part of Apple's protocol), in document order.
    #[must_use]
    pub fn extra_keys(&self) -> Vec<&str> {
        let extra = match &self.body {
            PostbackBody::Skan(s) => &s.extra,
            PostbackBody::Aak(a) => &a.extra,
        };
        extra.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Identity of a postback for deduplication.
///
/// SKAdNetwork: (ad-network-id, transaction-id, postback-sequence-index, 0 before 4.0), because
/// Apple does not say whether a conversion's three windows share one transaction-id.
/// AdAttributionKit: the postback-identifier, case-folded (Apple's examples use both cases).
/// Components are percent-escaped for `%` and `:` so distinct tuples never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DedupKey(String);

impl DedupKey {
    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn escape(component: &str) -> String {
    if !component.contains(['%', ':']) {
        return component.to_owned();
    }
    component.replace('%', "%25").replace(':', "%3A")
}

//! AdAttributionKit postbacks: unsigned outer keys around an ES256 compact JWS.
//!
//! Only the JWS payload is signed. The outer `conversion-value`, `coarse-conversion-value`,
//! `ad-interaction-type` and `country-code` travel beside it, unsigned (SPEC.md §4.1).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;

use super::error::{ParseError, ParseErrorKind};
use super::json::{Entries, quoted, read_bool, read_str, read_token};
use super::value::{
    ConversionValue, SourceIdentifier, combine_conversion_value, read_coarse, read_country,
    read_fine, read_item_id, read_window,
};

/// Outer (unsigned) keys of an AdAttributionKit postback.
pub(crate) mod outer {
    pub(crate) const JWS_STRING: &str = "jws-string";
    pub(crate) const CONVERSION_VALUE: &str = "conversion-value";
    pub(crate) const COARSE_CONVERSION_VALUE: &str = "coarse-conversion-value";
    pub(crate) const AD_INTERACTION_TYPE: &str = "ad-interaction-type";
    pub(crate) const COUNTRY_CODE: &str = "country-code";
}

/// Keys of the signed JWS payload.
pub(crate) mod claim {
    pub(crate) const AD_NETWORK_IDENTIFIER: &str = "ad-network-identifier";
    pub(crate) const ADVERTISED_ITEM_IDENTIFIER: &str = "advertised-item-identifier";
    pub(crate) const CONVERSION_TYPE: &str = "conversion-type";
    pub(crate) const DID_WIN: &str = "did-win";
    pub(crate) const IMPRESSION_TYPE: &str = "impression-type";
    pub(crate) const MARKETPLACE_IDENTIFIER: &str = "marketplace-identifier";
    pub(crate) const POSTBACK_IDENTIFIER: &str = "postback-identifier";
    pub(crate) const POSTBACK_SEQUENCE_INDEX: &str = "postback-sequence-index";
    pub(crate) const PUBLISHER_ITEM_IDENTIFIER: &str = "publisher-item-identifier";
    pub(crate) const SOURCE_IDENTIFIER: &str = "source-identifier";
}

/// `conversion-type`: what kind of conversion the postback reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConversionType {
    /// First download of the app on this account.
    Download,
    /// The app was installed on this account before.
    Redownload,
    /// An existing user came back through the ad.
    ReEngagement,
}

impl ConversionType {
    /// The wire spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Redownload => "redownload",
            Self::ReEngagement => "re-engagement",
        }
    }
}

/// `ad-interaction-type`: whether the user saw or tapped the ad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InteractionType {
    /// `"click"`
    Click,
    /// `"view"`
    View,
}

impl InteractionType {
    /// The wire spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::View => "view",
        }
    }
}

/// The protected header of the JWS.
#[derive(Debug, Clone, PartialEq)]
pub struct JwsHeader {
    /// Key identifier; selects Apple's key.
    pub kid: String,
    /// Algorithm the header claims; verification never trusts it and always uses ES256.
    pub alg: String,
    /// Any other header parameters, in document order.
    pub extra: Vec<(String, Value)>,
}

/// The signed claims of an AdAttributionKit postback.
#[derive(Debug, Clone, PartialEq)]
pub struct AakPayload {
    /// `ad-network-identifier`.
    pub ad_network_identifier: String,
    /// `advertised-item-identifier`: the advertised app's item ID.
    pub advertised_item_identifier: u64,
    /// `conversion-type`.
    pub conversion_type: ConversionType,
    /// `did-win`.
    pub did_win: bool,
    /// `impression-type` (`app-impression` in Apple's examples).
    pub impression_type: String,
    /// `marketplace-identifier` (omitted at tier 0).
    pub marketplace_identifier: Option<String>,
    /// `postback-identifier`: the dedup key.
    pub postback_identifier: String,
    /// `postback-sequence-index`: the conversion window.
    pub postback_sequence_index: u8,
    /// `publisher-item-identifier`: the app that showed the ad, when disclosed.
    pub publisher_item_identifier: Option<u64>,
    /// `source-identifier`.
    pub source_identifier: SourceIdentifier,
    /// Other claims, in document order (signed, but not interpreted).
    pub extra: Vec<(String, Value)>,
}

/// A compact JWS, kept as received so the signing input is exactly what Apple signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Jws {
    compact: String,
    /// Byte offset of the second `.`, the end of the signing input.
    signing_input_end: usize,
    /// The decoded header.
    pub header: JwsHeader,
    /// The decoded payload.
    pub payload: AakPayload,
}

impl Jws {
    /// The compact serialization as received.
    #[must_use]
    pub fn compact(&self) -> &str {
        &self.compact
    }

    /// ASCII `base64url(header) "." base64url(payload)` exactly as received.
    #[must_use]
    pub fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signing_input_end]
    }

    /// The base64url signature segment.
    #[must_use]
    pub fn signature_segment(&self) -> &str {
        &self.compact[self.signing_input_end + 1..]
    }

    /// Split and decode a compact JWS.
    fn parse(compact: &str) -> Result<Self, ParseError> {
        let malformed = |detail: String| {
            ParseError::field(outer::JWS_STRING, ParseErrorKind::MalformedJws { detail })
        };
        let mut parts = compact.split('.');
        let (Some(header_b64), Some(payload_b64), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(format!(
                "expected three base64url segments separated by '.', found {}",
                compact.split('.').count()
            )));
        };
        let decode = |segment: &str, name: &str| {
            URL_SAFE_NO_PAD
                .decode(segment)
                .map_err(|err| malformed(format!("the {name} segment is not base64url: {err}")))
        };
        let header_bytes = decode(header_b64, "header")?;
        let payload_bytes = decode(payload_b64, "payload")?;
        let header = parse_header(&header_bytes).map_err(|e| e.within("jws-string.header"))?;
        let payload = parse_payload(&payload_bytes).map_err(|e| e.within("jws-string.payload"))?;
        Ok(Self {
            compact: compact.to_owned(),
            signing_input_end: header_b64.len() + 1 + payload_b64.len(),
            header,
            payload,
        })
    }
}

/// An AdAttributionKit postback.
#[derive(Debug, Clone, PartialEq)]
pub struct AakPostback {
    /// The signed part.
    pub jws: Jws,
    /// Outer `conversion-value` / `coarse-conversion-value` (unsigned).
    pub conversion_value: ConversionValue,
    /// Outer `ad-interaction-type` (unsigned).
    pub ad_interaction_type: Option<InteractionType>,
    /// Outer `country-code` (unsigned).
    pub country_code: Option<String>,
    /// Outer keys this crate does not interpret (forwarders' keys), in document order.
    pub extra: Vec<(String, Value)>,
}

impl AakPostback {
    /// Interpret an object that carries a `jws-string`.
    pub(crate) fn from_entries(mut doc: Entries) -> Result<Self, ParseError> {
        let jws_value = doc.take(outer::JWS_STRING).ok_or_else(|| {
            ParseError::field(
                outer::JWS_STRING,
                ParseErrorKind::MissingField { context: "required".to_owned() },
            )
        })?;
        let compact = read_str(outer::JWS_STRING, &jws_value, "a compact JWS string")?;
        let jws = Jws::parse(compact)?;
        let fine = take(&mut doc, outer::CONVERSION_VALUE, read_fine)?;
        let coarse = take(&mut doc, outer::COARSE_CONVERSION_VALUE, read_coarse)?;
        let ad_interaction_type = take(&mut doc, outer::AD_INTERACTION_TYPE, |f, v| {
            const RULE: &str = "\"click\" or \"view\"";
            match read_str(f, v, RULE)? {
                "click" => Ok(InteractionType::Click),
                "view" => Ok(InteractionType::View),
                other => Err(ParseError::field(
                    f,
                    ParseErrorKind::OutOfRange { expected: RULE, got: quoted(other) },
                )),
            }
        })?;
        let country_code = take(&mut doc, outer::COUNTRY_CODE, read_country)?;
        let conversion_value = combine_conversion_value(
            fine,
            coarse,
            jws.payload.postback_sequence_index,
            outer::CONVERSION_VALUE,
            outer::COARSE_CONVERSION_VALUE,
        )?;
        Ok(Self {
            jws,
            conversion_value,
            ad_interaction_type,
            country_code,
            extra: doc.into_rest(),
        })
    }

    /// Signed claim names present in the payload, in a stable order.
    #[must_use]
    pub fn signed_keys(&self) -> Vec<&str> {
        let p = &self.jws.payload;
        let mut keys: Vec<&str> = [
            Some(claim::AD_NETWORK_IDENTIFIER),
            Some(claim::ADVERTISED_ITEM_IDENTIFIER),
            Some(claim::CONVERSION_TYPE),
            Some(claim::DID_WIN),
            Some(claim::IMPRESSION_TYPE),
            p.marketplace_identifier.as_ref().map(|_| claim::MARKETPLACE_IDENTIFIER),
            Some(claim::POSTBACK_IDENTIFIER),
            Some(claim::POSTBACK_SEQUENCE_INDEX),
            p.publisher_item_identifier.map(|_| claim::PUBLISHER_ITEM_IDENTIFIER),
            Some(claim::SOURCE_IDENTIFIER),
        ]
        .into_iter()
        .flatten()
        .collect();
        keys.extend(p.extra.iter().map(|(k, _)| k.as_str()));
        keys
    }

    /// Outer keys present beside the JWS; none of them is signed.
    #[must_use]
    pub fn unsigned_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = [
            self.conversion_value.fine().map(|_| outer::CONVERSION_VALUE),
            self.conversion_value.coarse().map(|_| outer::COARSE_CONVERSION_VALUE),
            self.ad_interaction_type.map(|_| outer::AD_INTERACTION_TYPE),
            self.country_code.as_ref().map(|_| outer::COUNTRY_CODE),
        ]
        .into_iter()
        .flatten()
        .collect();
        keys.extend(self.extra.iter().map(|(k, _)| k.as_str()));
        keys
    }
}

fn take<T>(
    doc: &mut Entries,
    field: &'static str,
    read: impl FnOnce(&str, &Value) -> Result<T, ParseError>,
) -> Result<Option<T>, ParseError> {
    doc.take(field).map(|value| read(field, &value)).transpose()
}

fn required<T>(
    doc: &mut Entries,
    field: &'static str,
    read: impl FnOnce(&str, &Value) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    take(doc, field, read)?.ok_or_else(|| {
        ParseError::field(field, ParseErrorKind::MissingField { context: "required".to_owned() })
    })
}

fn parse_header(bytes: &[u8]) -> Result<JwsHeader, ParseError> {
    let mut doc = Entries::parse(bytes)?;
    let kid = required(&mut doc, "kid", |f, v| read_token(f, v, "a key identifier string"))?;
    let alg = required(&mut doc, "alg", |f, v| {
        read_str(f, v, "an algorithm name string").map(str::to_owned)
    })?;
    Ok(JwsHeader { kid, alg, extra: doc.into_rest() })
}

fn parse_payload(bytes: &[u8]) -> Result<AakPayload, ParseError> {
    let mut doc = Entries::parse(bytes)?;
    let ad_network_identifier = required(&mut doc, claim::AD_NETWORK_IDENTIFIER, |f, v| {
        read_token(f, v, "a non-empty ad network ID string")
    })?;
    let advertised_item_identifier =
        required(&mut doc, claim::ADVERTISED_ITEM_IDENTIFIER, read_item_id)?;
    let conversion_type = required(&mut doc, claim::CONVERSION_TYPE, |f, v| {
        const RULE: &str = "\"download\", \"redownload\" or \"re-engagement\"";
        match read_str(f, v, RULE)? {
            "download" => Ok(ConversionType::Download),
            "redownload" => Ok(ConversionType::Redownload),
            "re-engagement" => Ok(ConversionType::ReEngagement),
            other => Err(ParseError::field(
                f,
                ParseErrorKind::OutOfRange { expected: RULE, got: quoted(other) },
            )),
        }
    })?;
    let did_win = required(&mut doc, claim::DID_WIN, read_bool)?;
    let impression_type = required(&mut doc, claim::IMPRESSION_TYPE, |f, v| {
        read_token(f, v, "an impression type string such as \"app-impression\"")
    })?;
    let marketplace_identifier = take(&mut doc, claim::MARKETPLACE_IDENTIFIER, |f, v| {
        read_token(f, v, "a marketplace bundle ID string")
    })?;
    let postback_identifier = required(&mut doc, claim::POSTBACK_IDENTIFIER, |f, v| {
        read_token(f, v, "a non-empty postback identifier string")
    })?;
    let postback_sequence_index = required(&mut doc, claim::POSTBACK_SEQUENCE_INDEX, read_window)?;
    let publisher_item_identifier = take(&mut doc, claim::PUBLISHER_ITEM_IDENTIFIER, read_item_id)?;
    let source_identifier = required(&mut doc, claim::SOURCE_IDENTIFIER, SourceIdentifier::read)?;
    Ok(AakPayload {
        ad_network_identifier,
        advertised_item_identifier,
        conversion_type,
        did_win,
        impression_type,
        marketplace_identifier,
        postback_identifier,
        postback_sequence_index,
        publisher_item_identifier,
        source_identifier,
        extra: doc.into_rest(),
    })
}

//! Small validated value types shared by SKAdNetwork and AdAttributionKit postbacks.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::error::{ParseError, ParseErrorKind};
use super::json::{quoted, read_str, read_uint};

/// Which of Apple's two postback protocols a postback belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SKAdNetwork: a flat JSON object signed as a U+2063-joined string.
    #[serde(rename = "skadnetwork")]
    SkAdNetwork,
    /// AdAttributionKit: a JWS plus unsigned outer keys.
    #[serde(rename = "adattributionkit")]
    AdAttributionKit,
}

impl Protocol {
    /// The name used in APIs, metrics and the database.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SkAdNetwork => "skadnetwork",
            Self::AdAttributionKit => "adattributionkit",
        }
    }

    /// Parse the name used in APIs.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "skadnetwork" => Some(Self::SkAdNetwork),
            "adattributionkit" => Some(Self::AdAttributionKit),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A coarse conversion value (SKAdNetwork 4.0, AdAttributionKit).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CoarseValue {
    /// `"low"`
    Low,
    /// `"medium"`
    Medium,
    /// `"high"`
    High,
}

impl CoarseValue {
    /// All coarse values, lowest first.
    pub const ALL: [Self; 3] = [Self::Low, Self::Medium, Self::High];

    /// The wire spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// Parse the wire spelling (lower case only, as Apple sends it).
    #[must_use]
    pub fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for CoarseValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The conversion value a postback carries.
///
/// "No value" is its own case and never 0: Apple withholds values below privacy thresholds, and a
/// report that counted those as 0 would invent conversions that never happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum ConversionValue {
    /// Neither `conversion-value` nor `coarse-conversion-value` was present.
    #[default]
    None,
    /// A fine value 0-63.
    Fine(u8),
    /// A coarse value.
    Coarse(CoarseValue),
}

impl ConversionValue {
    /// `"fine"`, `"coarse"` or `"none"`.
    #[must_use]
    pub fn kind(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fine(_) => "fine",
            Self::Coarse(_) => "coarse",
        }
    }

    /// The fine value, if that is what was sent.
    #[must_use]
    pub fn fine(self) -> Option<u8> {
        match self {
            Self::Fine(v) => Some(v),
            _ => None,
        }
    }

    /// The coarse value, if that is what was sent.
    #[must_use]
    pub fn coarse(self) -> Option<CoarseValue> {
        match self {
            Self::Coarse(v) => Some(v),
            _ => None,
        }
    }
}

/// A hierarchical source identifier: 2, 3 or 4 digits, leading zeros kept.
///
/// It stays a string because `"0039"` and `"39"` are different identifiers (and sign differently).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SourceIdentifier(String);

impl SourceIdentifier {
    /// The rule, as error messages state it.
    pub(crate) const RULE: &'static str = "a string of 2-4 digits";

    /// Validate a received string.
    #[must_use]
    pub fn new(text: &str) -> Option<Self> {
        let ok = (2..=4).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(text.to_owned()))
    }

    /// The digits as received.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many digits Apple let through (2, 3 or 4): a direct hint of the crowd-anonymity tier.
    #[must_use]
    pub fn digits(&self) -> u8 {
        // Validated length is 2-4, so this cannot truncate.
        self.0.len() as u8
    }

    /// Read and validate a JSON value.
    pub(crate) fn read(field: &str, value: &Value) -> Result<Self, ParseError> {
        let text = read_str(field, value, Self::RULE)?;
        Self::new(text).ok_or_else(|| {
            ParseError::field(
                field,
                ParseErrorKind::OutOfRange { expected: Self::RULE, got: quoted(text) },
            )
        })
    }
}

impl fmt::Display for SourceIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read a fine conversion value 0-63.
pub(crate) fn read_fine(field: &str, value: &Value) -> Result<u8, ParseError> {
    // read_uint bounds the value to 63, so the cast is lossless.
    read_uint(field, value, "an integer 0-63", 63).map(|v| v as u8)
}

/// Read a coarse conversion value.
pub(crate) fn read_coarse(field: &str, value: &Value) -> Result<CoarseValue, ParseError> {
    const RULE: &str = "\"low\", \"medium\" or \"high\"";
    let text = read_str(field, value, RULE)?;
    CoarseValue::from_wire(text).ok_or_else(|| {
        ParseError::field(field, ParseErrorKind::OutOfRange { expected: RULE, got: quoted(text) })
    })
}

/// Read a postback sequence index (conversion window) 0-2.
pub(crate) fn read_window(field: &str, value: &Value) -> Result<u8, ParseError> {
    read_uint(field, value, "an integer 0-2", 2).map(|v| v as u8)
}

/// Read an App Store item identifier.
pub(crate) fn read_item_id(field: &str, value: &Value) -> Result<u64, ParseError> {
    read_uint(field, value, "an unsigned integer (an App Store ID)", u64::MAX)
}

/// Read an ISO 3166 alpha-2 country code (kept as received).
pub(crate) fn read_country(field: &str, value: &Value) -> Result<String, ParseError> {
    const RULE: &str = "a two-letter ISO 3166 country code";
    let text = read_str(field, value, RULE)?;
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(text.to_owned())
    } else {
        Err(ParseError::field(
            field,
            ParseErrorKind::OutOfRange { expected: RULE, got: quoted(text) },
        ))
    }
}

/// Combine the two mutually exclusive conversion-value keys into one value, checking that a fine
/// value only appears in the first window (Apple sends coarse values only after it).
pub(crate) fn combine_conversion_value(
    fine: Option<u8>,
    coarse: Option<CoarseValue>,
    window: u8,
    fine_key: &'static str,
    coarse_key: &str,
) -> Result<ConversionValue, ParseError> {
    match (fine, coarse) {
        (Some(_), Some(_)) => {
            Err(ParseError::field(coarse_key, ParseErrorKind::Conflict { other: fine_key }))
        }
        (Some(_), None) if window > 0 => Err(ParseError::field(
            fine_key,
            ParseErrorKind::NotAllowed {
                reason: format!(
                    "a fine conversion value is only sent in the first window \
                     (postback-sequence-index 0), this postback is for window {window}"
                ),
            },
        )),
        (Some(v), None) => Ok(ConversionValue::Fine(v)),
        (None, Some(c)) => Ok(ConversionValue::Coarse(c)),
        (None, None) => Ok(ConversionValue::None),
    }
}

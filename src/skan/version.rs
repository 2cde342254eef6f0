//! SKAdNetwork versions and, per version, which keys a postback may carry and which it signs.
//!
//! This table is the heart of verification: Apple's signature covers a fixed list of values per
//! version (SPEC.md §1), and getting one position wrong rejects every genuine postback.

use std::fmt;

/// A SKAdNetwork signing version that Apple has published a composition for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkanVersion {
    /// 1.0: no `version` key (real ones may carry `"1.0"`), P-192 key.
    V1_0,
    /// 2.0: first version with `version` and `redownload`; still the P-192 key.
    V2_0,
    /// 2.1: same fields as 2.0, first version signed with the P-256 key.
    V2_1,
    /// 2.2: adds `fidelity-type`.
    V2_2,
    /// 3.0: adds `did-win` (nonwinning postbacks).
    V3_0,
    /// 4.0: `source-identifier` replaces `campaign-id`; three windows; coarse values.
    V4_0,
}

/// Elliptic curves Apple has used for postback signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// prime192v1, SKAdNetwork 1.0 and 2.0.
    P192,
    /// prime256v1, SKAdNetwork 2.1 and later, and AdAttributionKit.
    P256,
}

impl Curve {
    /// The name used in key manifests (`P-192`, `P-256`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P192 => "P-192",
            Self::P256 => "P-256",
        }
    }
}

impl SkanVersion {
    /// Every version, oldest first.
    pub const ALL: [Self; 6] =
        [Self::V1_0, Self::V2_0, Self::V2_1, Self::V2_2, Self::V3_0, Self::V4_0];

    /// The exact string Apple puts in the `version` key.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V2_0 => "2.0",
            Self::V2_1 => "2.1",
            Self::V2_2 => "2.2",
            Self::V3_0 => "3.0",
            Self::V4_0 => "4.0",
        }
    }

    /// Look a version up by its exact string; `"4"` or `"4.00"` are not versions Apple signs with.
    #[must_use]
    pub fn from_exact(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// The curve Apple signs this version's postbacks with.
    #[must_use]
    pub fn curve(self) -> Curve {
        match self {
            Self::V1_0 | Self::V2_0 => Curve::P192,
            _ => Curve::P256,
        }
    }

    /// Whether the version is at least `other`.
    #[must_use]
    pub fn at_least(self, other: Self) -> bool {
        self >= other
    }
}

impl fmt::Display for SkanVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `version` a SKAdNetwork postback declares.
///
/// An unknown version is kept rather than rejected: the postback is stored and reported as
/// unverifiable, because guessing a field order would either reject genuine postbacks of a new
/// version or accept forged ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// A version with a published signature composition.
    Known(SkanVersion),
    /// Any other string.
    Unknown(String),
}

impl Version {
    /// The version string, `"1.0"` for a postback without a `version` key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(v) => v.as_str(),
            Self::Unknown(text) => text,
        }
    }

    /// The known version, if any.
    #[must_use]
    pub fn known(&self) -> Option<SkanVersion> {
        match self {
            Self::Known(v) => Some(*v),
            Self::Unknown(_) => None,
        }
    }
}

/// How a key relates to a given version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Must be present.
    Required,
    /// May be present.
    Optional,
    /// Belongs to another version of the protocol.
    NotAllowed,
}

/// Keys of a SKAdNetwork postback that this crate interprets (anything else is a forwarder key).
pub(crate) mod key {
    pub(crate) const VERSION: &str = "version";
    pub(crate) const AD_NETWORK_ID: &str = "ad-network-id";
    pub(crate) const CAMPAIGN_ID: &str = "campaign-id";
    pub(crate) const SOURCE_IDENTIFIER: &str = "source-identifier";
    pub(crate) const APP_ID: &str = "app-id";
    pub(crate) const TRANSACTION_ID: &str = "transaction-id";
    pub(crate) const REDOWNLOAD: &str = "redownload";
    pub(crate) const SOURCE_APP_ID: &str = "source-app-id";
    pub(crate) const SOURCE_DOMAIN: &str = "source-domain";
    pub(crate) const FIDELITY_TYPE: &str = "fidelity-type";
    pub(crate) const DID_WIN: &str = "did-win";
    pub(crate) const CONVERSION_VALUE: &str = "conversion-value";
    pub(crate) const COARSE_CONVERSION_VALUE: &str = "coarse-conversion-value";
    pub(crate) const POSTBACK_SEQUENCE_INDEX: &str = "postback-sequence-index";
    pub(crate) const COUNTRY_CODE: &str = "country-code";
    pub(crate) const ATTRIBUTION_SIGNATURE: &str = "attribution-signature";
}

/// Whether `field` may, must or must not appear in a postback of `version`.
///
/// Version 1.0 tolerates `version` and `redownload` because real 1.0 postbacks carry them, though
/// its signature covers neither (SPEC.md §0.9).
pub(crate) fn presence(version: SkanVersion, field: &str) -> Presence {
    use Presence::{NotAllowed, Optional, Required};
    use SkanVersion::{V1_0, V2_0, V2_2, V3_0, V4_0};
    let from = |first: SkanVersion, required: bool| {
        if version < first {
            NotAllowed
        } else if required {
            Required
        } else {
            Optional
        }
    };
    match field {
        key::VERSION | key::REDOWNLOAD if version == V1_0 => Optional,
        key::VERSION | key::REDOWNLOAD => Required,
        key::AD_NETWORK_ID | key::APP_ID | key::TRANSACTION_ID => Required,
        key::CAMPAIGN_ID => {
            if version >= V4_0 {
                NotAllowed
            } else {
                Required
            }
        }
        key::SOURCE_IDENTIFIER | key::POSTBACK_SEQUENCE_INDEX => from(V4_0, true),
        key::SOURCE_DOMAIN | key::COARSE_CONVERSION_VALUE => from(V4_0, false),
        key::SOURCE_APP_ID | key::CONVERSION_VALUE => from(V2_0, false),
        key::FIDELITY_TYPE => from(V2_2, true),
        key::DID_WIN => from(V3_0, true),
        _ => Optional,
    }
}

/// One position in a signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Always included.
    Field(&'static str),
    /// `source-app-id` or (4.0) `source-domain`, included only when one is present.
    SourceApp,
}

/// The signed composition of a version, in order (SPEC.md §1).
pub(crate) fn composition(version: SkanVersion) -> &'static [Slot] {
    use Slot::{Field, SourceApp};
    use key::*;
    match version {
        SkanVersion::V1_0 => {
            &[Field(AD_NETWORK_ID), Field(CAMPAIGN_ID), Field(APP_ID), Field(TRANSACTION_ID)]
        }
        SkanVersion::V2_0 | SkanVersion::V2_1 => &[
            Field(VERSION),
            Field(AD_NETWORK_ID),
            Field(CAMPAIGN_ID),
            Field(APP_ID),
            Field(TRANSACTION_ID),
            Field(REDOWNLOAD),
            SourceApp,
        ],
        SkanVersion::V2_2 => &[
            Field(VERSION),
            Field(AD_NETWORK_ID),
            Field(CAMPAIGN_ID),
            Field(APP_ID),
            Field(TRANSACTION_ID),
            Field(REDOWNLOAD),
            SourceApp,
            Field(FIDELITY_TYPE),
        ],
        SkanVersion::V3_0 => &[
            Field(VERSION),
            Field(AD_NETWORK_ID),
            Field(CAMPAIGN_ID),
            Field(APP_ID),
            Field(TRANSACTION_ID),
            Field(REDOWNLOAD),
            SourceApp,
            Field(FIDELITY_TYPE),
            Field(DID_WIN),
        ],
        SkanVersion::V4_0 => &[
            Field(VERSION),
            Field(AD_NETWORK_ID),
            Field(SOURCE_IDENTIFIER),
            Field(APP_ID),
            Field(TRANSACTION_ID),
            Field(REDOWNLOAD),
            SourceApp,
            Field(FIDELITY_TYPE),
            Field(DID_WIN),
            Field(POSTBACK_SEQUENCE_INDEX),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_through_their_exact_strings() {
        for v in SkanVersion::ALL {
            assert_eq!(SkanVersion::from_exact(v.as_str()), Some(v));
        }
        assert_eq!(SkanVersion::from_exact("4"), None);
        assert_eq!(SkanVersion::from_exact("4.00"), None);
        assert_eq!(SkanVersion::from_exact(" 4.0"), None);
    }

    #[test]
    fn only_one_zero_and_two_zero_use_the_p192_key() {
        let p192: Vec<_> =
            SkanVersion::ALL.into_iter().filter(|v| v.curve() == Curve::P192).collect();
        assert_eq!(p192, [SkanVersion::V1_0, SkanVersion::V2_0]);
    }

    #[test]
    fn every_required_signed_field_is_required_by_presence_rules() {
        for v in SkanVersion::ALL {
            for slot in composition(v) {
                if let Slot::Field(name) = slot {
                    assert_eq!(presence(v, name), Presence::Required, "{name} in {v}");
                }
            }
        }
    }

    #[test]
    fn campaign_id_and_source_identifier_exclude_each_other_by_version() {
        assert_eq!(presence(SkanVersion::V3_0, key::CAMPAIGN_ID), Presence::Required);
        assert_eq!(presence(SkanVersion::V3_0, key::SOURCE_IDENTIFIER), Presence::NotAllowed);
        assert_eq!(presence(SkanVersion::V4_0, key::CAMPAIGN_ID), Presence::NotAllowed);
        assert_eq!(presence(SkanVersion::V4_0, key::SOURCE_IDENTIFIER), Presence::Required);
        assert_eq!(presence(SkanVersion::V3_0, key::COARSE_CONVERSION_VALUE), Presence::NotAllowed);
    }
}

//! A postback on its way in: how it arrived, what it carries outside Apple's signature, the
//! columns it is stored under, and what recording it did.

use bytes::Bytes;

use crate::error_body::ErrorBody;
use crate::skan::{CoarseValue, InteractionType, OutcomeClass, Protocol};

/// How a postback reached us.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Straight from an Apple device, on the well-known paths.
    Apple,
    /// Forwarded by an ad network or imported from an archive.
    Network,
}

impl Channel {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apple => "apple",
            Self::Network => "network",
        }
    }

    /// Read a stored name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "apple" => Some(Self::Apple),
            "network" => Some(Self::Network),
            _ => None,
        }
    }
}

/// What happened to one receipt (one arrival of a postback).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptResult {
    /// A new valid postback.
    Accepted,
    /// A copy of a postback already stored.
    Duplicate,
    /// Not a well-formed postback; only the raw receipt is kept.
    Rejected,
    /// The signature does not hold; kept in quarantine.
    Invalid,
    /// The signature could not be checked; kept in quarantine.
    Unverifiable,
}

impl ReceiptResult {
    /// The stored and reported name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Invalid => "invalid",
            Self::Unverifiable => "unverifiable",
        }
    }

    /// Read a stored name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Accepted, Self::Duplicate, Self::Rejected, Self::Invalid, Self::Unverifiable]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// The arrival itself: when, how, from whom, and the bytes exactly as received.
#[derive(Debug, Clone)]
pub struct ReceiptInput {
    /// Arrival time, unix milliseconds.
    pub received_at_ms: i64,
    /// Apple device or forwarder.
    pub channel: Channel,
    /// The API key name (or import label) for forwarded postbacks.
    pub source_name: Option<String>,
    /// The body (or batch item) verbatim.
    pub raw: Bytes,
}

/// The values a postback carries outside Apple's signature, which copies may disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnsignedValues {
    /// `conversion-value`.
    pub fine_value: Option<u8>,
    /// `coarse-conversion-value`.
    pub coarse_value: Option<CoarseValue>,
    /// AdAttributionKit `ad-interaction-type` (SKAdNetwork's `fidelity-type` is signed and
    /// cannot differ between copies that verify).
    pub interaction: Option<InteractionType>,
}

/// A checked postback, flattened into the columns it is stored and aggregated by.
#[derive(Debug, Clone)]
pub struct NewPostback {
    /// Uniqueness key: the dedup key for valid postbacks; for quarantined ones the dedup key plus
    /// the outcome and a digest of the bytes, so a forged copy never blocks the genuine one.
    pub identity_key: String,
    /// The protocol dedup key.
    pub dedup_key: String,
    /// SKAdNetwork or AdAttributionKit.
    pub protocol: Protocol,
    /// SKAdNetwork version string.
    pub version: Option<String>,
    /// `ad-network-id` / `ad-network-identifier`.
    pub ad_network_id: String,
    /// Advertised app.
    pub app_id: i64,
    /// `transaction-id` / `postback-identifier`.
    pub transaction_id: String,
    /// `source-identifier`.
    pub source_identifier: Option<String>,
    /// `campaign-id`.
    pub campaign_id: Option<i64>,
    /// `source-app-id` / `publisher-item-identifier`.
    pub source_app_id: Option<i64>,
    /// `source-domain`.
    pub source_domain: Option<String>,
    /// Conversion window (postback-sequence-index).
    pub window: i64,
    /// Winning attribution.
    pub did_win: bool,
    /// `download`, `redownload` or `re-engagement`.
    pub conversion_type: Option<String>,
    /// SKAdNetwork `fidelity-type`.
    pub fidelity_type: Option<i64>,
    /// Unsigned values (conversion values, AdAttributionKit interaction type).
    pub values: UnsignedValues,
    /// Crowd-anonymity tier hint.
    pub tier_hint: Option<i64>,
    /// `country-code`.
    pub country_code: Option<String>,
    /// Signature outcome.
    pub outcome: OutcomeClass,
    /// Reason code when not valid.
    pub reason_code: Option<String>,
    /// Reason message when not valid.
    pub reason_message: Option<String>,
    /// Verified with a development key.
    pub development: bool,
    /// Name of the key that verified (or failed to verify) it.
    pub key_name: Option<String>,
    /// UTC day number of the arrival.
    pub arrival_day: i64,
    /// Earliest estimated install, unix ms.
    pub install_from_ms: i64,
    /// Latest estimated install, unix ms.
    pub install_to_ms: i64,
    /// UTC day number of the estimated install (the interval's midpoint).
    pub install_day: i64,
}

/// One item to record.
#[derive(Debug, Clone)]
pub enum IngestItem {
    /// Not a postback: keep the receipt and the error.
    Rejected {
        /// The arrival.
        receipt: ReceiptInput,
        /// Why it was rejected.
        error: ErrorBody,
    },
    /// A parsed and verified postback.
    Checked {
        /// The arrival.
        receipt: ReceiptInput,
        /// The postback's columns.
        postback: Box<NewPostback>,
    },
}

/// What recording one item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// First valid copy of this postback.
    Accepted {
        /// Stored postback.
        postback_id: i64,
        /// Stored receipt.
        receipt_id: i64,
    },
    /// Another copy of a valid postback already stored.
    Duplicate {
        /// Stored postback.
        postback_id: i64,
        /// Stored receipt.
        receipt_id: i64,
        /// How this copy compared with what was stored.
        comparison: CopyComparison,
    },
    /// Stored in quarantine (invalid or unverifiable signature); never counted as valid.
    Quarantined {
        /// Stored postback.
        postback_id: i64,
        /// Stored receipt.
        receipt_id: i64,
        /// Invalid or unverifiable.
        outcome: OutcomeClass,
        /// Whether this exact copy was already quarantined.
        repeat: bool,
    },
    /// Only the raw receipt was kept.
    Rejected {
        /// Stored receipt.
        receipt_id: i64,
    },
}

// What to do when a second copy of a stored postback arrives.
//
//
// Apple signs everything except the conversion values (and AdAttributionKit's interaction type).
// A forwarder can change those without breaking the signature. When two copies of one postback
// disagree, the postback is flagged `unsigned_mismatch` and counted once; if one copy came
// straight from an Apple device, its values are the ones kept, because nobody stood between the
// device and us. Pure: the store applies the decision inside its transaction.
/// How an arriving copy compares with the stored postback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyComparison {
    /// Same unsigned values. `confirmed_by_apple` when this copy is Apple's and the stored values
    /// came from a forwarder: the values are now Apple-confirmed.
    Same {
        /// The stored values' channel becomes `apple`.
        confirmed_by_apple: bool,
    },
    /// The copies disagree. `adopt_incoming` when this copy is Apple's and replaces a forwarder's
    /// values.
    Mismatch {
        /// Replace the stored values with this copy's.
        adopt_incoming: bool,
    },
}

/// Compare an arriving copy with the stored values.
#[must_use]
pub fn compare_copies(
    stored: &UnsignedValues,
    stored_channel: Channel,
    incoming: &UnsignedValues,
    incoming_channel: Channel,
) -> CopyComparison {
    let apple_replaces_forwarder =
        incoming_channel == Channel::Apple && stored_channel != Channel::Apple;
    if stored == incoming {
        CopyComparison::Same { confirmed_by_apple: apple_replaces_forwarder }
    } else {
        CopyComparison::Mismatch { adopt_incoming: apple_replaces_forwarder }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skan::CoarseValue;

    fn fine(v: u8) -> UnsignedValues {
        UnsignedValues { fine_value: Some(v), ..UnsignedValues::default() }
    }

    #[test]
    fn apples_copy_replaces_a_forwarders_different_values() {
        let got = compare_copies(&fine(63), Channel::Network, &fine(20), Channel::Apple);
        assert_eq!(got, CopyComparison::Mismatch { adopt_incoming: true });
    }

    #[test]
    fn a_forwarders_copy_never_replaces_apples_values() {
        let got = compare_copies(&fine(20), Channel::Apple, &fine(63), Channel::Network);
        assert_eq!(got, CopyComparison::Mismatch { adopt_incoming: false });
    }

    #[test]
    fn two_forwarded_copies_that_differ_keep_the_first() {
        let got = compare_copies(&fine(1), Channel::Network, &fine(2), Channel::Network);
        assert_eq!(got, CopyComparison::Mismatch { adopt_incoming: false });
    }

    #[test]
    fn withholding_a_value_is_a_difference() {
        let got =
            compare_copies(&fine(5), Channel::Apple, &UnsignedValues::default(), Channel::Network);
        assert_eq!(got, CopyComparison::Mismatch { adopt_incoming: false });
        let coarse = UnsignedValues { coarse_value: Some(CoarseValue::Low), ..Default::default() };
        assert!(matches!(
            compare_copies(&coarse, Channel::Network, &fine(5), Channel::Network),
            CopyComparison::Mismatch { .. }
        ));
    }

    #[test]
    fn an_agreeing_apple_copy_confirms_forwarded_values() {
        let got = compare_copies(&fine(7), Channel::Network, &fine(7), Channel::Apple);
        assert_eq!(got, CopyComparison::Same { confirmed_by_apple: true });
        let got = compare_copies(&fine(7), Channel::Apple, &fine(7), Channel::Apple);
        assert_eq!(got, CopyComparison::Same { confirmed_by_apple: false });
    }
}

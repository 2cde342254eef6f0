//! What to do when a second copy of a stored postback arrives.
//!
//! Apple signs everything except the conversion values (and AdAttributionKit's interaction type).
//! A forwarder can change those without breaking the signature. When two copies of one postback
//! disagree, the postback is flagged `unsigned_mismatch` and counted once; if one copy came
//! straight from an Apple device, its values are the ones kept, because nobody stood between the
//! device and us. Pure: the store applies the decision inside its transaction.

use super::postback::{Channel, UnsignedValues};

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

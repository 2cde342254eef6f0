//! Backfill envelopes: a postback archived elsewhere, with the time it originally arrived.
//!
//! `{"received_at": "2026-10-03T12:00:00Z", "channel": "apple"|"network", "source": "name",
//! "postback": {...}}`. The arrival time decides the arrival day, the estimated install day and
//! so every report, which is why only trusted callers (the `import` command, `admin` keys) may
//! send envelopes. Pure: the current time is passed in.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error_body::ErrorBody;
use crate::store::Channel;

/// Arrival times before this (2018-01-01, before SKAdNetwork 2.0 sent any postback) are refused.
pub const EARLIEST_ARRIVAL_MS: i64 = 1_514_764_800_000;

/// One submitted item: a postback and, when it came in an envelope, where and when it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The postback's bytes (the envelope's `postback`, or the whole item when bare). For an
    /// envelope that does not open, the envelope's bytes, kept as the rejected receipt.
    pub raw: Bytes,
    /// Original arrival time; `None`: now.
    pub received_at_ms: Option<i64>,
    /// Original channel; `None`: the submission's.
    pub channel: Option<Channel>,
    /// Original source name; `None`: the submission's.
    pub source_name: Option<String>,
    /// Why the envelope cannot be used; the item is then rejected with this error.
    pub error: Option<ErrorBody>,
    /// Whether the item came in an envelope.
    pub enveloped: bool,
}

impl Arrival {
    /// A bare postback, arriving now (or at `received_at_ms`).
    #[must_use]
    pub fn bare(raw: Bytes, received_at_ms: Option<i64>) -> Self {
        Self {
            raw,
            received_at_ms,
            channel: None,
            source_name: None,
            error: None,
            enveloped: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    received_at: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(borrow)]
    postback: &'a RawValue,
}

/// Whether the item is an envelope rather than a bare postback: a JSON object with a
/// `postback` key (no postback of any version has one).
#[must_use]
pub fn is_envelope(raw: &[u8]) -> bool {
    // Cheap test first: bare postbacks only ever contain `"postback-...` keys.
    if !raw.windows(10).any(|w| w == b"\"postback\"") {
        return false;
    }
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(raw)
        .is_ok_and(|object| object.contains_key("postback"))
}

/// Open one submitted item: a bare postback stays as it is (arriving at `bare_received_at_ms`,
/// or now when `None`); an envelope gives its postback and arrival, or an error naming the field
/// at fault when it cannot be used. `now_ms` bounds arrival times from above.
#[must_use]
pub fn open(raw: Bytes, bare_received_at_ms: Option<i64>, now_ms: i64) -> Arrival {
    if !is_envelope(&raw) {
        return Arrival::bare(raw, bare_received_at_ms);
    }
    let refused = |raw: Bytes, error: ErrorBody| Arrival {
        raw,
        received_at_ms: None,
        channel: None,
        source_name: None,
        error: Some(error),
        enveloped: true,
    };
    let parsed = {
        let mut de = serde_json::Deserializer::from_slice(&raw);
        serde_path_to_error::deserialize::<_, Envelope<'_>>(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let message = e.inner().to_string();
            let code = if message.starts_with("unknown field") {
                "unknown_field"
            } else if message.starts_with("missing field") {
                "missing_field"
            } else {
                "wrong_type"
            };
            let field = if field == "." {
                message.split('`').nth(1).unwrap_or("postback").to_owned()
            } else {
                field
            };
            ErrorBody::new(code, format!("backfill envelope: {message}")).with_field(field)
        })
    };
    let envelope = match parsed {
        Ok(envelope) => envelope,
        Err(error) => return refused(raw, error),
    };
    let received_at_ms = match chrono::DateTime::parse_from_rfc3339(&envelope.received_at) {
        Ok(at) => at.timestamp_millis(),
        Err(e) => {
            let error = ErrorBody::new(
                "wrong_type",
                format!("expected an RFC 3339 time, got {:?}: {e}", envelope.received_at),
            )
            .with_field("received_at");
            return refused(raw, error);
        }
    };
    if received_at_ms > now_ms {
        let error = ErrorBody::new(
            "out_of_range",
            format!("{} is in the future; an arrival time must have passed", envelope.received_at),
        )
        .with_field("received_at");
        return refused(raw, error);
    }
    if received_at_ms < EARLIEST_ARRIVAL_MS {
        let error = ErrorBody::new(
            "out_of_range",
            format!(
                "{} is before 2018-01-01, when no postback could have arrived",
                envelope.received_at
            ),
        )
        .with_field("received_at");
        return refused(raw, error);
    }
    let channel = match envelope.channel.as_deref() {
        None => None,
        Some("apple") => Some(Channel::Apple),
        Some("network") => Some(Channel::Network),
        Some(other) => {
            let error = ErrorBody::new(
                "invalid_value",
                format!("expected apple or network, got {other:?}"),
            )
            .with_field("channel");
            return refused(raw, error);
        }
    };
    let postback = Bytes::copy_from_slice(envelope.postback.get().as_bytes());
    Arrival {
        raw: postback,
        received_at_ms: Some(received_at_ms),
        channel,
        source_name: envelope.source,
        error: None,
        enveloped: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn open_json(value: &serde_json::Value) -> Arrival {
        open(Bytes::from(serde_json::to_vec(value).unwrap()), None, NOW)
    }

    #[test]
    fn a_bare_postback_is_left_alone_even_with_postback_keys() {
        let raw = br#"{"postback-identifier":"x","postback-sequence-index":0}"#;
        assert!(!is_envelope(raw));
        let arrival = open(Bytes::from_static(raw), Some(5), NOW);
        assert!(!arrival.enveloped && arrival.error.is_none());
        assert_eq!((arrival.received_at_ms, arrival.raw.as_ref()), (Some(5), &raw[..]));
    }

    #[test]
    fn an_envelope_gives_its_postback_time_channel_and_source() {
        let arrival = open_json(&serde_json::json!({
            "received_at": "2026-10-03T12:00:00Z", "channel": "apple", "source": "old-mmp",
            "postback": {"transaction-id": "t"}
        }));
        assert!(arrival.enveloped && arrival.error.is_none(), "{:?}", arrival.error);
        assert_eq!(arrival.received_at_ms, Some(1_791_028_800_000));
        assert_eq!(arrival.channel, Some(Channel::Apple));
        assert_eq!(arrival.source_name.as_deref(), Some("old-mmp"));
        assert_eq!(arrival.raw.as_ref(), br#"{"transaction-id":"t"}"#);
    }

    #[test]
    fn bad_envelopes_are_refused_naming_the_field() {
        let cases = [
            (
                serde_json::json!({"received_at": "2099-01-01T00:00:00Z", "postback": {}}),
                "out_of_range",
                "received_at",
            ),
            (
                serde_json::json!({"received_at": "2017-12-31T23:59:59Z", "postback": {}}),
                "out_of_range",
                "received_at",
            ),
            (
                serde_json::json!({"received_at": "yesterday", "postback": {}}),
                "wrong_type",
                "received_at",
            ),
            (serde_json::json!({"received_at": 5, "postback": {}}), "wrong_type", "received_at"),
            (serde_json::json!({"postback": {}}), "missing_field", "received_at"),
            (
                serde_json::json!({"received_at": "2026-10-03T12:00:00Z", "channel": "fax", "postback": {}}),
                "invalid_value",
                "channel",
            ),
            (
                serde_json::json!({"received_at": "2026-10-03T12:00:00Z", "postback": {}, "extra": 1}),
                "unknown_field",
                "extra",
            ),
        ];
        for (value, code, field) in cases {
            let arrival = open_json(&value);
            let error = arrival.error.unwrap_or_else(|| panic!("{value} was accepted"));
            assert_eq!(
                (error.code.as_str(), error.field.as_deref()),
                (code, Some(field)),
                "{value}: {}",
                error.message
            );
            assert!(arrival.enveloped);
        }
    }
}

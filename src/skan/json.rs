//! Strict reading of the flat JSON objects Apple sends.
//!
//! serde_json's `Value` silently keeps the last of two equal keys; for a signed document that is
//! an invitation to smuggle a second `conversion-value` past one reader and not another, so this
//! reader rejects duplicates. Values keep their JSON types so that `"42"` is never mistaken for
//! `42`.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::error::{JsonType, ParseError, ParseErrorKind};

/// The keys of one JSON object in document order, each taken out as it is interpreted so that
/// what is left at the end are the keys nobody claimed.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    entries: Vec<(String, Value)>,
}

impl Entries {
    /// Parse `bytes` as exactly one JSON object with unique keys.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let top: TopLevel = serde_json::from_slice(bytes).map_err(|err| {
            ParseError::document(ParseErrorKind::MalformedJson { detail: err.to_string() })
        })?;
        match top {
            TopLevel::Object { entries, duplicate: None } => Ok(Self { entries }),
            TopLevel::Object { duplicate: Some(key), .. } => {
                Err(ParseError::field(key, ParseErrorKind::DuplicateKey))
            }
            TopLevel::Other(got) => Err(ParseError::document(ParseErrorKind::NotAnObject { got })),
        }
    }

    /// Remove and return the value of `key`, if present.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Whether `key` is present (and not yet taken).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The keys nobody claimed, in document order.
    pub(crate) fn into_rest(self) -> Vec<(String, Value)> {
        self.entries
    }
}

enum TopLevel {
    Object { entries: Vec<(String, Value)>, duplicate: Option<String> },
    Other(JsonType),
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(16);
        let mut duplicate = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if duplicate.is_none() && entries.iter().any(|(k, _)| *k == key) {
                duplicate = Some(key);
                continue;
            }
            entries.push((key, value));
        }
        Ok(TopLevel::Object { entries, duplicate })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other(JsonType::Array))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(JsonType::Boolean))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(JsonType::Integer))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(JsonType::Integer))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(JsonType::Float))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(JsonType::String))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other(JsonType::Null))
    }
}

/// Read an unsigned integer no greater than `max`; floats, strings and negatives are refused.
pub(crate) fn read_uint(
    field: &str,
    value: &Value,
    expected: &'static str,
    max: u64,
) -> Result<u64, ParseError> {
    let out_of_range =
        |got: String| ParseError::field(field, ParseErrorKind::OutOfRange { expected, got });
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                if v <= max { Ok(v) } else { Err(out_of_range(v.to_string())) }
            } else if n.is_i64() {
                Err(out_of_range(n.to_string()))
            } else if let Some(f) =
                n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() >= 18_446_744_073_709_551_616.0)
            {
                // An integer too large for 64 bits reaches us as a float: it is out of range,
                // not of the wrong type.
                Err(out_of_range(format!("{f:.0}")))
            } else {
                Err(wrong_type(field, expected, value))
            }
        }
        _ => Err(wrong_type(field, expected, value)),
    }
}

/// Read a JSON boolean (never `0`/`1`, never `"true"`).
pub(crate) fn read_bool(field: &str, value: &Value) -> Result<bool, ParseError> {
    value.as_bool().ok_or_else(|| wrong_type(field, "a boolean", value))
}

/// Read a JSON string.
pub(crate) fn read_str<'v>(
    field: &str,
    value: &'v Value,
    expected: &'static str,
) -> Result<&'v str, ParseError> {
    value.as_str().ok_or_else(|| wrong_type(field, expected, value))
}

/// Read a non-empty string without leading or trailing white space.
pub(crate) fn read_token(
    field: &str,
    value: &Value,
    expected: &'static str,
) -> Result<String, ParseError> {
    let text = read_str(field, value, expected)?;
    if text.is_empty() || text.trim() != text {
        return Err(ParseError::field(
            field,
            ParseErrorKind::OutOfRange { expected, got: quoted(text) },
        ));
    }
    Ok(text.to_owned())
}

/// The error for a value of the wrong JSON type.
pub(crate) fn wrong_type(field: &str, expected: &'static str, value: &Value) -> ParseError {
    ParseError::field(field, ParseErrorKind::WrongType { expected, got: JsonType::of(value) })
}

/// Quote a received string for an error message, shortened so a huge value cannot bloat a reply.
pub(crate) fn quoted(text: &str) -> String {
    const LIMIT: usize = 64;
    if text.chars().count() <= LIMIT {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head:?}…")
    }
}

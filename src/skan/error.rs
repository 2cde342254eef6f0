//! Errors raised while turning bytes into a typed postback.
//!
//! A parse error always names the rule that was broken (`code`), and the field when one field is
//! to blame, so a forwarder can fix its payload without reading our source. Verification outcomes
//! (bad signature, unknown key) are not errors: they live in [`super::verify`].

use std::fmt;

/// Why a postback could not be read as a postback of its declared kind.
///
/// Parse errors are about the *shape* of the input; a postback that parses but whose signature does
/// not check out is not a parse error but an [`super::Outcome::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct ParseError {
    /// The JSON key at fault, for example `campaign-id` or `jws-string.payload.did-win`.
    pub field: Option<String>,
    /// What went wrong, with the data needed to explain it.
    pub kind: ParseErrorKind,
}

/// The rule a postback broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The bytes are not JSON (or not UTF-8 JSON).
    MalformedJson {
        /// serde_json's description, with line and column.
        detail: String,
    },
    /// The JSON is valid but is not an object.
    NotAnObject {
        /// JSON type found instead.
        got: JsonType,
    },
    /// The same key appears twice; we refuse to guess which copy a verifier or a decoder would use.
    DuplicateKey,
    /// A required key is absent.
    MissingField {
        /// Why it is required (for example `required in version 3.0`).
        context: String,
    },
    /// A value has the wrong JSON type (a string where Apple sends a number, for example).
    WrongType {
        /// The rule for this field, for example `an integer 0-100`.
        expected: &'static str,
        /// The JSON type that arrived.
        got: JsonType,
    },
    /// A value has the right type but is outside the allowed range or set.
    OutOfRange {
        /// The rule for this field.
        expected: &'static str,
        /// The offending value as it appeared.
        got: String,
    },
    /// The key exists in the protocol but not in this postback's version.
    NotAllowed {
        /// Why it is not allowed here.
        reason: String,
    },
    /// Two keys that exclude each other are both present.
    Conflict {
        /// The other key.
        other: &'static str,
    },
    /// The AdAttributionKit `jws-string` is not a compact JWS we can read.
    MalformedJws {
        /// What is wrong with it.
        detail: String,
    },
}

/// JSON value types, named the way error messages speak of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    /// `null`
    Null,
    /// `true` / `false`
    Boolean,
    /// An integer that fits `u64` or `i64`.
    Integer,
    /// A number with a fraction or exponent.
    Float,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// Classify a parsed JSON value.
    #[must_use]
    pub fn of(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(_) => Self::Boolean,
            serde_json::Value::Number(n) if n.is_f64() => Self::Float,
            serde_json::Value::Number(_) => Self::Integer,
            serde_json::Value::String(_) => Self::String,
            serde_json::Value::Array(_) => Self::Array,
            serde_json::Value::Object(_) => Self::Object,
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Boolean => "a boolean",
            Self::Integer => "an integer",
            Self::Float => "a non-integer number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        })
    }
}

impl ParseError {
    /// An error about one field.
    pub(crate) fn field(field: impl Into<String>, kind: ParseErrorKind) -> Self {
        Self { field: Some(field.into()), kind }
    }

    /// An error about the document as a whole.
    pub(crate) fn document(kind: ParseErrorKind) -> Self {
        Self { field: None, kind }
    }

    /// Prefix the field path, used when an error comes from a nested document such as a JWS payload.
    pub(crate) fn within(mut self, prefix: &str) -> Self {
        self.field = Some(match self.field {
            Some(field) => format!("{prefix}.{field}"),
            None => prefix.to_owned(),
        });
        self
    }

    /// Stable snake_case identifier of the rule that was broken, for API bodies and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self.kind {
            ParseErrorKind::MalformedJson { .. } => "malformed_json",
            ParseErrorKind::NotAnObject { .. } => "not_an_object",
            ParseErrorKind::DuplicateKey => "duplicate_key",
            ParseErrorKind::MissingField { .. } => "missing_field",
            ParseErrorKind::WrongType { .. } => "wrong_type",
            ParseErrorKind::OutOfRange { .. } => "out_of_range",
            ParseErrorKind::NotAllowed { .. } => "not_allowed",
            ParseErrorKind::Conflict { .. } => "conflicting_fields",
            ParseErrorKind::MalformedJws { .. } => "malformed_jws",
        }
    }

    /// Human-readable explanation; it never repeats the field name, which travels separately.
    #[must_use]
    pub fn message(&self) -> String {
        match &self.kind {
            ParseErrorKind::MalformedJson { detail } => format!("not valid JSON: {detail}"),
            ParseErrorKind::NotAnObject { got } => {
                format!("expected a JSON object (one postback), got {got}")
            }
            ParseErrorKind::DuplicateKey => {
                "the key appears more than once; a postback must have each key once".to_owned()
            }
            ParseErrorKind::MissingField { context } => format!("missing, {context}"),
            ParseErrorKind::WrongType { expected, got } => {
                format!("expected {expected}, got {got}")
            }
            ParseErrorKind::OutOfRange { expected, got } => {
                format!("expected {expected}, got {got}")
            }
            ParseErrorKind::NotAllowed { reason } => reason.clone(),
            ParseErrorKind::Conflict { other } => {
                format!(
                    "cannot appear together with `{other}`; a postback carries one or the other"
                )
            }
            ParseErrorKind::MalformedJws { detail } => format!("not a compact JWS: {detail}"),
        }
    }
}

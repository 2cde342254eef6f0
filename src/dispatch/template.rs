//! Templates: `{macro}` placeholders (`{{` and `}}` for literal braces), the macros they may name
//! and the formats values are written in. [`super::request`] renders a destination's templates
//! into a request. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every macro and what it holds.
pub static MACROS: &[(&str, &str)] = &[
    ("postback_id", "id of the stored postback"),
    ("delivery_id", "stable id of this delivery (also the idempotency key)"),
    ("dedup_key", "the postback's dedup key"),
    ("protocol", "skadnetwork or adattributionkit"),
    ("version", "SKAdNetwork version (none for AdAttributionKit)"),
    ("ad_network_id", "ad network ID"),
    ("app_id", "App Store ID of the advertised app"),
    ("transaction_id", "transaction-id / postback-identifier"),
    ("source_identifier", "source-identifier (4.0, AdAttributionKit)"),
    ("campaign_id", "campaign-id (before 4.0)"),
    ("source_app_id", "source-app-id / publisher-item-identifier"),
    ("source_domain", "source-domain"),
    ("window", "conversion window 0-2 (postback-sequence-index)"),
    ("fine_value", "fine conversion value 0-63"),
    ("coarse_value", "coarse conversion value low/medium/high"),
    ("conversion_value", "the fine or the coarse value, whichever was sent"),
    ("fidelity_type", "fidelity-type 0/1"),
    ("interaction", "click or view"),
    ("redownload", "whether it is a redownload (boolean)"),
    ("conversion_type", "download, redownload or re-engagement"),
    ("did_win", "winning attribution (boolean)"),
    ("tier", "crowd-anonymity tier hint 0-3"),
    ("signature_outcome", "valid, invalid or unverifiable"),
    ("development", "verified with a development key (boolean)"),
    ("unsigned_mismatch", "copies disagreed on unsigned values (boolean)"),
    ("country_code", "country-code"),
    ("decode_status", "mapped, unmapped, no_value or no_schema"),
    ("label", "the schema's label for the value"),
    ("event_names", "decoded events, comma-separated"),
    ("revenue_min", "decoded revenue range minimum"),
    ("revenue_max", "decoded revenue range maximum (none when unbounded)"),
    ("revenue_currency", "ISO 4217 currency of the revenue range"),
    ("schema_version", "schema version used to decode"),
    ("received_at", "first arrival (timestamp format)"),
    ("install_from", "earliest estimated install (timestamp format)"),
    ("install_to", "latest estimated install (timestamp format)"),
    ("install_day", "estimated install day YYYY-MM-DD"),
    ("raw_postback", "the postback JSON as received"),
    ("raw_postback_base64", "the postback as received, base64"),
];

/// A set of macros: name and what it holds.
pub type Macros = &'static [(&'static str, &'static str)];

/// The macros of an alert destination (`"filters": {"alerts": true}`): one anomaly each.
pub static ALERT_MACROS: &[(&str, &str)] = &[
    ("anomaly_id", "id of the stored anomaly"),
    ("delivery_id", "stable id of this delivery (also the idempotency key)"),
    ("app_id", "App Store ID of the app"),
    ("ad_network_id", "ad network ID"),
    ("metric", "the metric that left its usual range (see Data quality)"),
    ("metric_label", "the metric in words"),
    ("day", "the day judged, YYYY-MM-DD (UTC)"),
    ("expected", "the baseline's expectation for the day"),
    ("expected_low", "lowest usual value"),
    ("expected_high", "highest usual value"),
    ("observed", "the value observed"),
    ("score", "robust score (distance from the median in MADs; the divergence for shifts)"),
    ("baseline_from", "first day of the baseline, YYYY-MM-DD"),
    ("baseline_to", "last day of the baseline, YYYY-MM-DD"),
    ("baseline_days", "baseline days with data"),
    ("partial_day", "judged while the day was still receiving postbacks (boolean)"),
    ("detected_at", "when it was found (timestamp format)"),
    ("summary", "one sentence saying all of the above, for chat webhooks"),
    ("link", "the app's Data quality screen in the console"),
];

/// A macro's value.
#[derive(Debug, Clone, PartialEq)]
pub enum MacroValue {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A boolean (written per the destination's boolean format).
    Bool(bool),
    /// A time (written per the destination's timestamp format).
    Time(DateTime<Utc>),
}

impl MacroValue {
    fn text(&self, formats: Formats) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::Int(v) => v.to_string(),
            Self::Float(v) => v.to_string(),
            Self::Bool(b) => match formats.booleans {
                BooleanFormat::TrueFalse => b.to_string(),
                BooleanFormat::OneZero => u8::from(*b).to_string(),
            },
            Self::Time(t) => match formats.timestamps {
                TimestampFormat::UnixSeconds => t.timestamp().to_string(),
                TimestampFormat::UnixMillis => t.timestamp_millis().to_string(),
                TimestampFormat::Rfc3339 => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
        }
    }

    pub(super) fn json(&self, formats: Formats) -> Value {
        match self {
            Self::Str(s) => Value::from(s.as_str()),
            Self::Int(v) => Value::from(*v),
            Self::Float(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Self::Bool(b) => match formats.booleans {
                BooleanFormat::TrueFalse => Value::Bool(*b),
                BooleanFormat::OneZero => Value::from(u8::from(*b)),
            },
            Self::Time(_) if formats.timestamps == TimestampFormat::Rfc3339 => {
                Value::from(self.text(formats))
            }
            Self::Time(t) if formats.timestamps == TimestampFormat::UnixMillis => {
                Value::from(t.timestamp_millis())
            }
            Self::Time(t) => Value::from(t.timestamp()),
        }
    }
}

/// The values available for one delivery (absent: the macro has no value).
pub type Values = BTreeMap<&'static str, MacroValue>;

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{name}` names no macro.
    #[error("unknown macro {{{0}}}; known: {1}")]
    UnknownMacro(String, String),
    /// A brace is not closed or not escaped.
    #[error("unbalanced brace at byte {0}; write {{{{ and }}}} for literal braces")]
    Unbalanced(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Macro(&'static str),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parse `text` with the postback macros.
    ///
    /// # Errors
    /// [`TemplateError`] for an unknown macro or an unbalanced brace.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::parse_in(text, MACROS)
    }

    /// Parse `text`, allowing the macros of `known`.
    ///
    /// # Errors
    /// [`TemplateError`] for an unknown macro or an unbalanced brace.
    pub fn parse_in(text: &str, known: Macros) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    literal.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    literal.push('}');
                    i += 2;
                }
                b'{' => {
                    let end = text[i + 1..].find('}').ok_or(TemplateError::Unbalanced(i))? + i + 1;
                    let name = &text[i + 1..end];
                    let macro_name =
                        known.iter().find(|(n, _)| *n == name).map(|(n, _)| *n).ok_or_else(
                            || {
                                TemplateError::UnknownMacro(
                                    name.to_owned(),
                                    known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                                )
                            },
                        )?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Macro(macro_name));
                    i = end + 1;
                }
                b'}' => return Err(TemplateError::Unbalanced(i)),
                _ => {
                    let next = text[i..].find(['{', '}']).map_or(text.len(), |n| n + i);
                    literal.push_str(&text[i..next]);
                    i = next;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    /// The macro, when the template is exactly one macro (JSON values keep their type then).
    pub(super) fn single_macro(&self) -> Option<&'static str> {
        match self.pieces.as_slice() {
            [Piece::Macro(name)] => Some(name),
            _ => None,
        }
    }

    /// Render with every macro value passed through `escape`; `None` when a macro has no value.
    pub(super) fn render(
        &self,
        values: &Values,
        formats: Formats,
        escape: impl Fn(&str) -> String,
    ) -> Rendered {
        let mut text = String::new();
        let mut missing = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => text.push_str(l),
                Piece::Macro(name) => match values.get(name) {
                    Some(value) => text.push_str(&escape(&value.text(formats))),
                    None => missing.push(*name),
                },
            }
        }
        Rendered { text, missing }
    }
}

pub(super) struct Rendered {
    pub(super) text: String,
    pub(super) missing: Vec<&'static str>,
}

/// How booleans are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum BooleanFormat {
    /// `true` / `false`.
    #[default]
    TrueFalse,
    /// `1` / `0`.
    OneZero,
}

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// Unix seconds.
    #[default]
    UnixSeconds,
    /// Unix milliseconds.
    UnixMillis,
    /// RFC 3339.
    Rfc3339,
}

/// Value formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Formats {
    /// Booleans.
    #[serde(default)]
    pub booleans: BooleanFormat,
    /// Timestamps.
    #[serde(default)]
    pub timestamps: TimestampFormat,
}

/// What to do with a macro that has no value for a postback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Render it empty (`""`, or `null` for a whole JSON value).
    #[default]
    Empty,
    /// Leave out the query or form parameter, JSON key or header that uses it (path segments
    /// render empty).
    Drop,
    /// Do not send the delivery at all (it is marked `skipped`).
    Skip,
}

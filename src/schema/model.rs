//! The conversion-value schema document: what each value an app can send means, per window.
//!
//! The JSON form is meant to be read and written by hand:
//!
//! ```json
//! {
//!   "currency": "USD",
//!   "windows": [
//!     { "window": 0,
//!       "fine": [
//!         { "value": 0, "label": "installed", "coarse": "low" },
//!         { "value": 1, "label": "tutorial done", "events": [{ "name": "tutorial_complete" }], "coarse": "low" },
//!         { "value": 2, "label": "paid $1-5", "events": [{ "name": "purchase", "min_count": 1 }],
//!           "revenue": { "min": 1, "max": 5 }, "coarse": "medium", "lock": false }
//!       ],
//!       "coarse": [ { "value": "low", "label": "engaged" }, { "value": "medium", "revenue": { "min": 1 } } ] },
//!     { "window": 1, "coarse": [ { "value": "high", "events": [{ "name": "purchase", "min_count": 2 }] } ] }
//!   ]
//! }
//! ```
//!
//! Windows are postback-sequence-index 0, 1, 2 (SKAdNetwork versions before 4.0 use window 0).
//! Fine values 0-63 exist only in window 0; coarse values in every window. An event condition
//! without counts means "happened at least once". Revenue ranges include `min` and exclude `max`
//! (`max` absent: no upper bound), in the schema's currency.

use std::fmt;

use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::skan::CoarseValue;

/// A conversion-value schema for one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// ISO 4217 code of every revenue amount (required when any revenue range is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Per-window mappings.
    pub windows: Vec<WindowMapping>,
}

/// The mappings of one conversion window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowMapping {
    /// postback-sequence-index: 0, 1 or 2.
    pub window: i64,
    /// Fine values (window 0 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fine: Vec<Mapping>,
    /// Coarse values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coarse: Vec<Mapping>,
}

/// What one conversion value means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The value: 0-63 in `fine` lists, `"low"`/`"medium"`/`"high"` in `coarse` lists.
    #[schema(value_type = Object)]
    pub value: ValueKey,
    /// Short human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Events that all happened (AND).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventCondition>,
    /// Revenue range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<RevenueRange>,
    /// The app locks the window when it sets this value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lock: bool,
    /// Fine entries: the coarse value the app sends alongside (used at lower privacy tiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coarse: Option<CoarseValue>,
}

/// An event and how many times it happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCondition {
    /// Event name, as the app and the marketer call it (shared: every report row that counts the
    /// event names it).
    #[schema(value_type = String)]
    pub name: Arc<str>,
    /// At least this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    /// At most this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
}

/// A revenue range: `min` included, `max` excluded (absent: unbounded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevenueRange {
    /// Lower bound, included.
    pub min: f64,
    /// Upper bound, excluded; absent means no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Currency; when given it must equal the schema's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl RevenueRange {
    /// The midpoint, or `min` for an unbounded range.
    #[must_use]
    pub fn midpoint(&self) -> f64 {
        self.max.map_or(self.min, |max| (self.min + max) / 2.0)
    }
}

/// The key of a mapping: a fine value as written (range-checked by validation) or a coarse value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueKey {
    /// A fine value (valid: 0-63).
    Fine(i64),
    /// A coarse value.
    Coarse(CoarseValue),
}

impl fmt::Display for ValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fine(v) => write!(f, "{v}"),
            Self::Coarse(c) => f.write_str(c.as_str()),
        }
    }
}

impl Serialize for ValueKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fine(v) => serializer.serialize_i64(*v),
            Self::Coarse(c) => serializer.serialize_str(c.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ValueKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ValueKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fine value 0-63 or \"low\", \"medium\" or \"high\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueKey, E> {
                Ok(ValueKey::Fine(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueKey, E> {
                Ok(ValueKey::Fine(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueKey, E> {
                CoarseValue::from_wire(v).map(ValueKey::Coarse).ok_or_else(|| {
                    E::custom(format!(
                        "{v:?} is not a coarse value; use \"low\", \"medium\" or \"high\""
                    ))
                })
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

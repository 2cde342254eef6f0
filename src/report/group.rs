//! A report row's group: its key parts under the report's column names.
//!
//! A row keeps the very key it was grouped and sorted by and shares the column names with every
//! other row, so making a row allocates nothing beyond its key; it is written as a JSON object
//! only when the report is serialized. Reports grouped by campaign and value have hundreds of
//! thousands of rows, and a map of owned names per row cost as much as counting them.

use std::sync::Arc;

use chrono::{Datelike as _, NaiveDate};
use serde::de::Deserializer;
use serde::ser::{SerializeMap as _, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One part of a group key; one type per position, so the derived order sorts rows naturally.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Part {
    Null,
    Int(i64),
    Text(Arc<str>),
    Date(NaiveDate),
}

impl Part {
    pub(super) fn text_or_null(text: &str) -> Self {
        if text.is_empty() { Self::Null } else { Self::Text(text.into()) }
    }

    pub(super) fn int_or_null(v: i64) -> Self {
        if v < 0 { Self::Null } else { Self::Int(v) }
    }
}

/// A column of a report's groups; a month column writes its dates as `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) month: bool,
}

/// The group values of one report row: dimension name to value, `null` when the postbacks had
/// none. Serialized as a JSON object in column order.
#[derive(Debug, Clone, PartialEq)]
pub struct RowGroup {
    columns: Arc<[Column]>,
    parts: Vec<Part>,
}

impl RowGroup {
    pub(super) fn new(columns: Arc<[Column]>, parts: Vec<Part>) -> Self {
        Self { columns, parts }
    }

    /// The value of column `name`, as the JSON answer gives it.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Value> {
        let at = self.columns.iter().position(|c| c.name == name)?;
        let (column, part) = (&self.columns[at], self.parts.get(at)?);
        Some(match part {
            Part::Null => Value::Null,
            Part::Int(v) => Value::from(*v),
            Part::Text(t) => Value::from(&**t),
            Part::Date(d) => Value::from(DateText(*d, column.month).to_string()),
        })
    }
}

/// A day as `YYYY-MM-DD`, or its month as `YYYY-MM`.
struct DateText(NaiveDate, bool);

impl std::fmt::Display for DateText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self(day, true) => write!(f, "{:04}-{:02}", day.year(), day.month()),
            Self(day, false) => day.fmt(f),
        }
    }
}

impl Serialize for DateText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for RowGroup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.parts.len()))?;
        for (column, part) in self.columns.iter().zip(&self.parts) {
            map.serialize_key(&column.name)?;
            match part {
                Part::Null => map.serialize_value(&())?,
                Part::Int(v) => map.serialize_value(v)?,
                Part::Text(t) => map.serialize_value(t)?,
                Part::Date(d) => map.serialize_value(&DateText(*d, column.month))?,
            }
        }
        map.end()
    }
}

/// Read back from the JSON object: numbers become integers, text stays text (dates included).
impl<'de> Deserialize<'de> for RowGroup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::<String, Value>::deserialize(deserializer)?;
        let mut columns = Vec::with_capacity(object.len());
        let mut parts = Vec::with_capacity(object.len());
        for (name, value) in object {
            parts.push(match value {
                Value::Null => Part::Null,
                Value::Number(n) if n.is_i64() => Part::Int(n.as_i64().unwrap_or_default()),
                Value::String(text) => Part::Text(text.into()),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "group value of {name} must be null, an integer or text, not {other}"
                    )));
                }
            });
            columns.push(Column { name, month: false });
        }
        Ok(Self { columns: columns.into(), parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Arc<[Column]> {
        [("month", true), ("day", false), ("ad_network_id", false), ("fine_value", false)]
            .map(|(name, month)| Column { name: name.to_owned(), month })
            .into()
    }

    #[test]
    fn serializes_as_the_json_object_of_its_columns() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        let group = RowGroup::new(
            columns(),
            vec![Part::Date(day), Part::Date(day), Part::Text("a.skadnetwork".into()), Part::Null],
        );
        let json = serde_json::to_value(&group).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"month": "2026-03", "day": "2026-03-09",
                "ad_network_id": "a.skadnetwork", "fine_value": null})
        );
        assert_eq!(serde_json::to_string(&group).unwrap().find("month"), Some(2), "column order");
        assert_eq!(group.get("month"), Some(Value::from("2026-03")));
        assert_eq!(group.get("fine_value"), Some(Value::Null));
        assert_eq!(group.get("window"), None);
        let back: RowGroup = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        assert!(serde_json::from_str::<RowGroup>(r#"{"window": 1.5}"#).is_err());
    }
}

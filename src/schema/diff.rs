//! What changed between two schema versions, value by value.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decode::CompiledSchema;
use super::model::Mapping;
use crate::skan::{CoarseValue, ConversionValue};

/// How one value's meaning changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Mapped only in the newer version.
    Added,
    /// Mapped only in the older version.
    Removed,
    /// Mapped in both, differently.
    Changed,
}

/// One value whose meaning differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MappingChange {
    /// Window.
    pub window: u8,
    /// `fine` or `coarse`.
    pub kind: String,
    /// The value.
    pub value: String,
    /// Added, removed or changed.
    pub change: ChangeKind,
    /// Meaning in the older version.
    pub before: Option<Mapping>,
    /// Meaning in the newer version.
    pub after: Option<Mapping>,
}

/// Every difference from `before` to `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SchemaDiff {
    /// Currency before, when it changed.
    pub currency_before: Option<String>,
    /// Currency after, when it changed.
    pub currency_after: Option<String>,
    /// Values whose meaning changed, by window then value.
    pub changes: Vec<MappingChange>,
}

/// Compare two schemas value by value.
#[must_use]
pub fn diff(before: &CompiledSchema, after: &CompiledSchema) -> SchemaDiff {
    let mut changes = Vec::new();
    let mut values: Vec<(u8, ConversionValue)> =
        (0..64).map(|v| (0, ConversionValue::Fine(v))).collect();
    for w in 0..=2 {
        values.extend(CoarseValue::ALL.iter().map(|c| (w, ConversionValue::Coarse(*c))));
    }
    for (window, value) in values {
        let (a, b) = (before.mapping(window, value), after.mapping(window, value));
        let change = match (a, b) {
            (None, None) => continue,
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => ChangeKind::Changed,
            (None, Some(_)) => ChangeKind::Added,
            (Some(_), None) => ChangeKind::Removed,
        };
        let (kind, shown) = match value {
            ConversionValue::Fine(v) => ("fine", v.to_string()),
            ConversionValue::Coarse(c) => ("coarse", c.as_str().to_owned()),
            ConversionValue::None => continue,
        };
        changes.push(MappingChange {
            window,
            kind: kind.to_owned(),
            value: shown,
            change,
            before: a.cloned(),
            after: b.cloned(),
        });
    }
    let (ca, cb) = (before.schema().currency.clone(), after.schema().currency.clone());
    let currency_changed = ca != cb;
    SchemaDiff {
        currency_before: if currency_changed { ca } else { None },
        currency_after: if currency_changed { cb } else { None },
        changes,
    }
}

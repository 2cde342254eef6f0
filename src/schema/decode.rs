//! Decoding: a window and a conversion value in, what it means out.
//!
//! A schema compiles to lookup tables (64 fine + 3 coarse per window), so decoding is an array
//! index. Which version applies is decided by [`SchemaHistory`]: the version in effect at the end
//! of the postback's estimated install day (UTC).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{EventCondition, Mapping, RevenueRange, Schema, ValueKey};
use super::validate::{ValidationReport, validate};
use crate::skan::{CoarseValue, ConversionValue};

/// Whether a value meant something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecodeStatus {
    /// The schema maps this value.
    Mapped,
    /// The postback carries a value the schema does not map.
    Unmapped,
    /// The postback carries no value (withheld by Apple or never set); never the same as 0.
    NoValue,
    /// No schema version was in effect for the postback's install day.
    NoSchema,
}

/// What a postback's conversion value means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decoded {
    /// Mapped, unmapped, no value, or no schema.
    pub status: DecodeStatus,
    /// The schema version used.
    pub schema_version: Option<i64>,
    /// The mapping's label.
    pub label: Option<String>,
    /// Events that happened.
    pub events: Vec<EventCondition>,
    /// Revenue range.
    pub revenue: Option<RevenueRange>,
    /// Currency of the revenue range (shared by every decoding of the schema: report rows
    /// compare and copy it per row).
    #[schema(value_type = Option<String>)]
    pub currency: Option<Arc<str>>,
    /// The app locked the window at this value.
    pub lock: bool,
}

impl Decoded {
    /// For a postback that is not decoded at all (quarantined): no value, no meaning.
    #[must_use]
    pub fn not_decoded() -> Self {
        Self::empty(DecodeStatus::NoValue, None)
    }

    fn empty(status: DecodeStatus, schema_version: Option<i64>) -> Self {
        Self {
            status,
            schema_version,
            label: None,
            events: Vec::new(),
            revenue: None,
            currency: None,
            lock: false,
        }
    }
}

/// A validated schema with its lookup tables.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledSchema {
    schema: Schema,
    currency: Option<Arc<str>>,
    mappings: Vec<Mapping>,
    fine: [Option<usize>; 64],
    coarse: [[Option<usize>; 3]; 3],
}

fn coarse_index(c: CoarseValue) -> usize {
    match c {
        CoarseValue::Low => 0,
        CoarseValue::Medium => 1,
        CoarseValue::High => 2,
    }
}

impl CompiledSchema {
    /// Validate and compile.
    ///
    /// # Errors
    /// The validation report when the schema has errors.
    pub fn compile(schema: Schema) -> Result<Self, ValidationReport> {
        let report = validate(&schema);
        if !report.valid {
            return Err(report);
        }
        let mut mappings = Vec::new();
        let mut fine = [None; 64];
        let mut coarse = [[None; 3]; 3];
        for window in &schema.windows {
            let w = usize::try_from(window.window).unwrap_or(0).min(2);
            for mapping in window.fine.iter().chain(&window.coarse) {
                let index = mappings.len();
                mappings.push(mapping.clone());
                match mapping.value {
                    ValueKey::Fine(v) => {
                        fine[usize::try_from(v).unwrap_or(0).min(63)] = Some(index)
                    }
                    ValueKey::Coarse(c) => coarse[w][coarse_index(c)] = Some(index),
                }
            }
        }
        let currency = schema.currency.as_deref().map(Arc::from);
        Ok(Self { schema, currency, mappings, fine, coarse })
    }

    /// The schema document.
    #[must_use]
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The mapping for a window and value, if any (fine values only exist in window 0).
    #[must_use]
    pub fn mapping(&self, window: u8, value: ConversionValue) -> Option<&Mapping> {
        let index = match value {
            ConversionValue::None => None,
            ConversionValue::Fine(v) if window == 0 => {
                self.fine.get(usize::from(v)).copied().flatten()
            }
            ConversionValue::Fine(_) => None,
            ConversionValue::Coarse(c) => {
                self.coarse.get(usize::from(window)).and_then(|w| w[coarse_index(c)])
            }
        }?;
        self.mappings.get(index)
    }

    /// Decode one value.
    #[must_use]
    pub fn decode(
        &self,
        window: u8,
        value: ConversionValue,
        schema_version: Option<i64>,
    ) -> Decoded {
        if value == ConversionValue::None {
            return Decoded::empty(DecodeStatus::NoValue, schema_version);
        }
        match self.mapping(window, value) {
            None => Decoded::empty(DecodeStatus::Unmapped, schema_version),
            Some(m) => Decoded {
                status: DecodeStatus::Mapped,
                schema_version,
                label: m.label.clone(),
                events: m.events.clone(),
                revenue: m.revenue.clone(),
                currency: m.revenue.as_ref().and(self.currency.clone()),
                lock: m.lock,
            },
        }
    }
}

/// One stored version of an app's schema, compiled.
#[derive(Debug, Clone)]
pub struct SchemaVersionEntry {
    /// Version number (1, 2, ...).
    pub version: i64,
    /// When it takes effect.
    pub effective_from: DateTime<Utc>,
    /// The compiled schema.
    pub schema: Arc<CompiledSchema>,
}

/// Every version of one app's schema, to pick the one in effect.
#[derive(Debug, Clone, Default)]
pub struct SchemaHistory {
    versions: Vec<SchemaVersionEntry>,
}

impl SchemaHistory {
    /// A history from versions in any order.
    #[must_use]
    pub fn new(mut versions: Vec<SchemaVersionEntry>) -> Self {
        versions.sort_by_key(|v| (v.effective_from, v.version));
        Self { versions }
    }

    /// The version in effect at `instant`: the latest `effective_from` not after it (the higher
    /// version number when two share a time).
    #[must_use]
    pub fn at(&self, instant: DateTime<Utc>) -> Option<&SchemaVersionEntry> {
        self.versions.iter().rev().find(|v| v.effective_from <= instant)
    }

    /// The version that decodes postbacks whose estimated install day is `day`: the one in effect
    /// at the end of that day, so a version applied during a day covers that day's installs.
    #[must_use]
    pub fn for_install_day(&self, day: NaiveDate) -> Option<&SchemaVersionEntry> {
        let end = day
            .and_time(NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or_default())
            .and_utc();
        self.at(end)
    }

    /// Decode a value of a postback installed on `day`.
    #[must_use]
    pub fn decode(&self, day: NaiveDate, window: u8, value: ConversionValue) -> Decoded {
        match self.for_install_day(day) {
            Some(entry) => entry.schema.decode(window, value, Some(entry.version)),
            None if value == ConversionValue::None => Decoded::empty(DecodeStatus::NoValue, None),
            None => Decoded::empty(DecodeStatus::NoSchema, None),
        }
    }

    /// The first install day of each version's reach, ascending: the days where the decoding
    /// version can change.
    #[must_use]
    pub fn period_starts(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> =
            self.versions.iter().map(|v| v.effective_from.date_naive()).collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Whether any version exists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

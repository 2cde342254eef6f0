//! Schemas built from a few parameters instead of 64 hand-typed entries.
//!
//! - **Revenue buckets**: ascending edges `e0 < e1 < … < ek`; fine value *i* means revenue in
//!   `[e_i, e_{i+1})`, the last one `e_k` and above.
//! - **Bit-packed**: the low `revenue_bits` bits of the fine value are a revenue bucket (as above)
//!   and each higher bit flags an event, e.g. bits 0-2 revenue, bit 3 `registration`, bit 4
//!   `tutorial`, bit 5 `purchase`: value 42 = `0b101010` = purchase + registration, bucket 2.
//!
//! Both also map coarse values in all three windows by revenue: `low` is the first bucket,
//! `medium` the lower half of the rest, `high` the upper half; each fine value carries the coarse
//! value of its bucket, so the fine-to-coarse mapping is monotonic.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{EventCondition, Mapping, RevenueRange, Schema, ValueKey, WindowMapping};
use crate::skan::CoarseValue;

/// Parameters of a generated schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Generator {
    /// One fine value per revenue bucket.
    RevenueBuckets {
        /// ISO 4217 currency of the edges.
        currency: String,
        /// Ascending bucket edges (at most 64).
        edges: Vec<f64>,
        /// Event implied by any revenue above the first bucket (e.g. `purchase`).
        #[serde(default)]
        revenue_event: Option<String>,
    },
    /// Revenue bucket in the low bits, event flags in the high bits.
    BitPacked {
        /// ISO 4217 currency of the edges.
        currency: String,
        /// Number of low bits holding the revenue bucket (1-5).
        revenue_bits: u8,
        /// Ascending bucket edges (at most 2^revenue_bits).
        edges: Vec<f64>,
        /// Event flags: bit number (at least `revenue_bits`, at most 5) and event name.
        flags: Vec<Flag>,
    },
}

/// One event flag of a bit-packed layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    /// Bit number, 0 = least significant.
    pub bit: u8,
    /// Event the bit stands for.
    pub event: String,
}

/// Why parameters do not make a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct GenerateError {
    /// The parameter at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> GenerateError {
    GenerateError { field: field.to_owned(), message: message.into() }
}

fn check_edges(edges: &[f64], max: usize) -> Result<(), GenerateError> {
    if edges.is_empty() || edges.len() > max {
        return Err(invalid("edges", format!("give 1 to {max} bucket edges, got {}", edges.len())));
    }
    if edges.iter().any(|e| !e.is_finite() || *e < 0.0) {
        return Err(invalid("edges", "edges must be finite amounts of 0 or more"));
    }
    if edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid("edges", "edges must be strictly ascending"));
    }
    Ok(())
}

fn bucket_range(edges: &[f64], bucket: usize) -> RevenueRange {
    RevenueRange { min: edges[bucket], max: edges.get(bucket + 1).copied(), currency: None }
}

fn amount(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

fn bucket_label(currency: &str, range: &RevenueRange) -> String {
    match range.max {
        Some(max) => format!("{currency} {}-{}", amount(range.min), amount(max)),
        None => format!("{currency} {}+", amount(range.min)),
    }
}

/// The coarse value of bucket `bucket` out of `count`.
fn coarse_of(bucket: usize, count: usize) -> CoarseValue {
    let paid = count.saturating_sub(1);
    if bucket == 0 {
        CoarseValue::Low
    } else if paid <= 1 || bucket <= paid.div_ceil(2) {
        CoarseValue::Medium
    } else {
        CoarseValue::High
    }
}

/// Coarse mappings for every window: each coarse value covers the revenue of its buckets.
fn coarse_windows(fine: Vec<Mapping>, edges: &[f64]) -> Vec<WindowMapping> {
    let mut coarse = Vec::new();
    for c in CoarseValue::ALL {
        let buckets: Vec<usize> =
            (0..edges.len()).filter(|&b| coarse_of(b, edges.len()) == c).collect();
        let (Some(&first), Some(&last)) = (buckets.first(), buckets.last()) else { continue };
        let range =
            RevenueRange { min: edges[first], max: edges.get(last + 1).copied(), currency: None };
        coarse.push(Mapping {
            value: ValueKey::Coarse(c),
            label: Some(format!("revenue {}", bucket_label("", &range).trim())),
            events: Vec::new(),
            revenue: Some(range),
            lock: false,
            coarse: None,
        });
    }
    let mut windows = vec![WindowMapping { window: 0, fine, coarse: coarse.clone() }];
    windows.extend((1..=2).map(|w| WindowMapping {
        window: w,
        fine: Vec::new(),
        coarse: coarse.clone(),
    }));
    windows
}

impl Generator {
    /// Build the schema.
    ///
    /// # Errors
    /// [`GenerateError`] naming the parameter at fault.
    pub fn build(&self) -> Result<Schema, GenerateError> {
        match self {
            Self::RevenueBuckets { currency, edges, revenue_event } => {
                check_edges(edges, 64)?;
                let fine = (0..edges.len())
                    .map(|b| {
                        let range = bucket_label(currency, &bucket_range(edges, b));
                        Mapping {
                            value: ValueKey::Fine(b as i64),
                            label: Some(range),
                            events: match revenue_event {
                                Some(name) if b > 0 => vec![EventCondition {
                                    name: name.as_str().into(),
                                    min_count: None,
                                    max_count: None,
                                }],
                                _ => Vec::new(),
                            },
                            revenue: Some(bucket_range(edges, b)),
                            lock: false,
                            coarse: Some(coarse_of(b, edges.len())),
                        }
                    })
                    .collect();
                Ok(Schema {
                    currency: Some(currency.clone()),
                    windows: coarse_windows(fine, edges),
                })
            }
            Self::BitPacked { currency, revenue_bits, edges, flags } => {
                if !(1..=5).contains(revenue_bits) {
                    return Err(invalid("revenue_bits", "use 1 to 5 bits for the revenue bucket"));
                }
                check_edges(edges, 1 << revenue_bits)?;
                let mut flag_bits = 0u8;
                for flag in flags {
                    if flag.bit < *revenue_bits || flag.bit > 5 {
                        return Err(invalid(
                            "flags",
                            format!(
                                "bit {} for {:?} must be between {revenue_bits} and 5 (bits below hold revenue)",
                                flag.bit, flag.event
                            ),
                        ));
                    }
                    if flag_bits & (1 << flag.bit) != 0 {
                        return Err(invalid("flags", format!("bit {} is used twice", flag.bit)));
                    }
                    if flag.event.trim().is_empty() {
                        return Err(invalid("flags", "every flag needs an event name"));
                    }
                    flag_bits |= 1 << flag.bit;
                }
                let mask = (1u8 << revenue_bits) - 1;
                let mut fine = Vec::new();
                for value in 0u8..64 {
                    let bucket = usize::from(value & mask);
                    let high = value & !mask;
                    if bucket >= edges.len() || high & !flag_bits != 0 {
                        continue; // a bucket or bit the layout never sends
                    }
                    let events: Vec<EventCondition> = flags
                        .iter()
                        .filter(|f| value & (1 << f.bit) != 0)
                        .map(|f| EventCondition {
                            name: f.event.as_str().into(),
                            min_count: None,
                            max_count: None,
                        })
                        .collect();
                    let range = bucket_range(edges, bucket);
                    let mut label = bucket_label(currency, &range);
                    if !events.is_empty() {
                        let names: Vec<&str> = events.iter().map(|e| &*e.name).collect();
                        label = format!("{label} + {}", names.join(", "));
                    }
                    fine.push(Mapping {
                        value: ValueKey::Fine(i64::from(value)),
                        label: Some(label),
                        events,
                        revenue: Some(range),
                        lock: false,
                        coarse: Some(coarse_of(bucket, edges.len())),
                    });
                }
                Ok(Schema {
                    currency: Some(currency.clone()),
                    windows: coarse_windows(fine, edges),
                })
            }
        }
    }
}

//! Schema validation: errors refuse a schema, warnings only inform.
//!
//! Every finding names the window, the value and the rule, and carries the JSON path of the
//! offending field, so a marketer can find it in a 64-entry document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{Mapping, RevenueRange, Schema, ValueKey};
use crate::skan::CoarseValue;

/// The outcome of validating a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationReport {
    /// No errors (warnings allowed).
    pub valid: bool,
    /// Problems that make the schema unusable.
    pub errors: Vec<Finding>,
    /// Things worth a look that do not block the schema.
    pub warnings: Vec<Finding>,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// Stable snake_case rule name.
    pub code: String,
    /// The window concerned.
    pub window: Option<i64>,
    /// The value concerned (`"12"`, `"low"`).
    pub value: Option<String>,
    /// JSON path of the field, e.g. `windows[0].fine[3].revenue.max`.
    pub field: Option<String>,
    /// What is wrong, for a human.
    pub message: String,
}

struct Findings {
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Findings {
    fn error(
        &mut self,
        code: &str,
        window: Option<i64>,
        value: Option<String>,
        field: String,
        message: String,
    ) {
        self.errors.push(Finding {
            code: code.to_owned(),
            window,
            value,
            field: Some(field),
            message,
        });
    }

    fn warn(&mut self, code: &str, window: Option<i64>, field: Option<String>, message: String) {
        self.warnings.push(Finding { code: code.to_owned(), window, value: None, field, message });
    }
}

/// Check a schema against every rule.
#[must_use]
pub fn validate(schema: &Schema) -> ValidationReport {
    let mut found = Findings { errors: Vec::new(), warnings: Vec::new() };
    let currency = schema.currency.as_deref();
    if let Some(code) = currency
        && iso_currency::Currency::from_code(code).is_none()
    {
        found.error(
            "unknown_currency",
            None,
            None,
            "currency".to_owned(),
            format!("{code:?} is not an ISO 4217 currency code"),
        );
    }
    let mut seen_windows: BTreeMap<i64, usize> = BTreeMap::new();
    for (wi, window) in schema.windows.iter().enumerate() {
        let w = window.window;
        let path = format!("windows[{wi}]");
        if !(0..=2).contains(&w) {
            found.error(
                "window_out_of_range",
                Some(w),
                None,
                format!("{path}.window"),
                format!(
                    "window {w} does not exist; windows are 0, 1 and 2 (postback-sequence-index)"
                ),
            );
            continue;
        }
        if let Some(first) = seen_windows.insert(w, wi) {
            found.error(
                "duplicate_window",
                Some(w),
                None,
                format!("{path}.window"),
                format!("window {w} is already described at windows[{first}]"),
            );
        }
        if w > 0 && !window.fine.is_empty() {
            found.error(
                "fine_outside_window_0",
                Some(w),
                None,
                format!("{path}.fine"),
                format!(
                    "window {w} cannot have fine values: Apple sends fine values only in window 0"
                ),
            );
        }
        check_table(&mut found, w, &path, "fine", &window.fine, currency);
        check_table(&mut found, w, &path, "coarse", &window.coarse, currency);
        if w == 0 {
            check_monotonic(&mut found, &path, &window.fine);
        }
    }
    warn_unmapped(&mut found, schema);
    ValidationReport {
        valid: found.errors.is_empty(),
        errors: found.errors,
        warnings: found.warnings,
    }
}

fn check_table(
    found: &mut Findings,
    w: i64,
    path: &str,
    kind: &str,
    table: &[Mapping],
    currency: Option<&str>,
) {
    let mut seen: BTreeMap<ValueKey, usize> = BTreeMap::new();
    let mut ranges: Vec<(usize, String, &RevenueRange)> = Vec::new();
    for (i, mapping) in table.iter().enumerate() {
        let at = format!("{path}.{kind}[{i}]");
        let value = Some(mapping.value.to_string());
        match (kind, mapping.value) {
            ("fine", ValueKey::Fine(v)) if !(0..=63).contains(&v) => found.error(
                "value_out_of_range",
                Some(w),
                value.clone(),
                format!("{at}.value"),
                format!("window {w}: fine value {v} is outside 0-63"),
            ),
            ("fine", ValueKey::Coarse(c)) => found.error(
                "wrong_value_kind",
                Some(w),
                value.clone(),
                format!("{at}.value"),
                format!(
                    "window {w}: {c:?} is a coarse value; put it in the window's \"coarse\" list"
                ),
            ),
            ("coarse", ValueKey::Fine(v)) => found.error(
                "wrong_value_kind",
                Some(w),
                value.clone(),
                format!("{at}.value"),
                format!("window {w}: {v} is a fine value; put it in window 0's \"fine\" list"),
            ),
            _ => {}
        }
        if kind == "coarse" && mapping.coarse.is_some() {
            found.error(
                "coarse_on_coarse",
                Some(w),
                value.clone(),
                format!("{at}.coarse"),
                format!(
                    "window {w}, coarse value {}: \"coarse\" belongs on fine entries only",
                    mapping.value
                ),
            );
        }
        if let Some(first) = seen.insert(mapping.value, i) {
            found.error(
                "duplicate_value",
                Some(w),
                value.clone(),
                format!("{at}.value"),
                format!(
                    "window {w}: {kind} value {} is already mapped at {path}.{kind}[{first}]",
                    mapping.value
                ),
            );
        }
        for (ei, event) in mapping.events.iter().enumerate() {
            let event_at = format!("{at}.events[{ei}]");
            if event.name.trim().is_empty() {
                found.error(
                    "empty_event_name",
                    Some(w),
                    value.clone(),
                    format!("{event_at}.name"),
                    format!("window {w}, {kind} value {}: an event needs a name", mapping.value),
                );
            }
            if let (Some(min), Some(max)) = (event.min_count, event.max_count)
                && min > max
            {
                found.error(
                    "min_above_max",
                    Some(w),
                    value.clone(),
                    format!("{event_at}.min_count"),
                    format!(
                        "window {w}, {kind} value {}: event {:?} has min_count {min} above max_count {max}",
                        mapping.value, event.name
                    ),
                );
            }
        }
        if let Some(revenue) = &mapping.revenue {
            let rev_at = format!("{at}.revenue");
            if !revenue.min.is_finite() || revenue.max.is_some_and(|m| !m.is_finite()) {
                found.error(
                    "invalid_amount",
                    Some(w),
                    value.clone(),
                    rev_at.clone(),
                    format!(
                        "window {w}, {kind} value {}: revenue amounts must be finite numbers",
                        mapping.value
                    ),
                );
                continue;
            }
            if revenue.min < 0.0 || revenue.max.is_some_and(|m| m < 0.0) {
                found.error(
                    "negative_revenue",
                    Some(w),
                    value.clone(),
                    format!("{rev_at}.min"),
                    format!(
                        "window {w}, {kind} value {}: revenue cannot be negative",
                        mapping.value
                    ),
                );
            }
            if let Some(max) = revenue.max
                && revenue.min > max
            {
                found.error(
                    "min_above_max",
                    Some(w),
                    value.clone(),
                    format!("{rev_at}.min"),
                    format!(
                        "window {w}, {kind} value {}: revenue min {} is above max {max}",
                        mapping.value, revenue.min
                    ),
                );
            }
            match (currency, revenue.currency.as_deref()) {
                (None, _) => found.error(
                    "missing_currency",
                    Some(w),
                    value.clone(),
                    rev_at.clone(),
                    format!(
                        "window {w}, {kind} value {}: revenue needs the schema's \"currency\" (ISO 4217)",
                        mapping.value
                    ),
                ),
                (Some(schema_currency), Some(own)) if own != schema_currency => found.error(
                    "mixed_currency",
                    Some(w),
                    value.clone(),
                    format!("{rev_at}.currency"),
                    format!(
                        "window {w}, {kind} value {}: {own} differs from the schema's currency {schema_currency}; one schema uses one currency",
                        mapping.value
                    ),
                ),
                _ => {}
            }
            ranges.push((i, mapping.value.to_string(), revenue));
        }
    }
    // Two revenue ranges must be the same bucket or not meet at all; a partial overlap makes an
    // amount fall into two different buckets.
    for (a, (ia, va, ra)) in ranges.iter().enumerate() {
        for (ib, vb, rb) in &ranges[a + 1..] {
            let identical = ra.min == rb.min && ra.max == rb.max;
            let disjoint =
                ra.max.is_some_and(|m| m <= rb.min) || rb.max.is_some_and(|m| m <= ra.min);
            if !identical && !disjoint {
                found.error(
                    "overlapping_revenue",
                    Some(w),
                    Some(vb.clone()),
                    format!("{path}.{kind}[{ib}].revenue"),
                    format!(
                        "window {w}: the revenue range of {kind} value {vb} ({}) overlaps that of {kind} value {va} ({}) at {path}.{kind}[{ia}]; ranges must be identical or disjoint",
                        show(rb),
                        show(ra)
                    ),
                );
            }
        }
    }
}

fn show(range: &RevenueRange) -> String {
    match range.max {
        Some(max) => format!("{}-{max}", range.min),
        None => format!("{} and above", range.min),
    }
}

fn check_monotonic(found: &mut Findings, path: &str, fine: &[Mapping]) {
    let mut pairs: Vec<(i64, CoarseValue)> = fine
        .iter()
        .filter_map(|m| match (m.value, m.coarse) {
            (ValueKey::Fine(v), Some(c)) => Some((v, c)),
            _ => None,
        })
        .collect();
    pairs.sort_unstable();
    let drops: Vec<String> = pairs
        .windows(2)
        .filter(|pair| pair[1].1 < pair[0].1)
        .map(|pair| format!("{} ({}) after {} ({})", pair[1].0, pair[1].1, pair[0].0, pair[0].1))
        .collect();
    if !drops.is_empty() {
        found.warn(
            "coarse_not_monotonic",
            Some(0),
            Some(format!("{path}.fine")),
            format!(
                "window 0: the coarse value drops as the fine value rises at {} place(s): {}; a user whose fine value goes up would go down in coarse value",
                drops.len(),
                drops.join(", ")
            ),
        );
    }
}

fn warn_unmapped(found: &mut Findings, schema: &Schema) {
    for w in 0..=2 {
        let window = schema.windows.iter().find(|m| m.window == w);
        let fine: Vec<i64> = window
            .map(|m| {
                m.fine
                    .iter()
                    .filter_map(|e| match e.value {
                        ValueKey::Fine(v) => Some(v),
                        ValueKey::Coarse(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let coarse: Vec<CoarseValue> = window
            .map(|m| {
                m.coarse
                    .iter()
                    .filter_map(|e| match e.value {
                        ValueKey::Coarse(c) => Some(c),
                        ValueKey::Fine(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if w == 0 {
            let missing: Vec<i64> = (0..=63).filter(|v| !fine.contains(v)).collect();
            if !missing.is_empty() {
                found.warn(
                    "unmapped_values",
                    Some(0),
                    None,
                    format!(
                        "window 0: fine values {} are unmapped and will decode as \"unmapped\"",
                        ranges(&missing)
                    ),
                );
            }
        }
        let missing: Vec<&str> =
            CoarseValue::ALL.iter().filter(|c| !coarse.contains(c)).map(|c| c.as_str()).collect();
        if !missing.is_empty() {
            found.warn(
                "unmapped_values",
                Some(w),
                None,
                format!(
                    "window {w}: coarse values {} are unmapped and will decode as \"unmapped\"",
                    missing.join(", ")
                ),
            );
        }
    }
}

/// `[0, 1, 2, 5, 7, 8]` → `"0-2, 5, 7-8"`.
fn ranges(values: &[i64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let start = values[i];
        let mut end = start;
        while i + 1 < values.len() && values[i + 1] == end + 1 {
            i += 1;
            end = values[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_values_are_shown_compactly() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
        assert_eq!(ranges(&[63]), "63");
    }
}

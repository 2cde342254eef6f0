//! What is counted: aggregate keys and rows (each postback once, under the values in effect),
//! the filters a report applies to them, the tallies that need no decoding, and the rule for
//! reading a conversion value back out of columns.

use crate::skan::{CoarseValue, ConversionValue, OutcomeClass};

use super::postback::{NewPostback, UnsignedValues};

/// The dimensions aggregates are counted by: what Apple sent, with absent values as `''` / `-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct AggregateKey {
    /// Advertised app.
    pub app_id: i64,
    /// UTC day number of the first arrival.
    pub arrival_day: i64,
    /// UTC day number of the estimated install.
    pub install_day: i64,
    /// Ad network.
    pub ad_network_id: String,
    /// `source-identifier`, `''` before 4.0.
    pub source_identifier: String,
    /// `campaign-id`, -1 from 4.0.
    pub campaign_id: i64,
    /// Protocol.
    pub protocol: String,
    /// SKAdNetwork version, `''` for AdAttributionKit.
    pub version: String,
    /// Conversion window.
    pub window: i64,
    /// `click` / `view` (SKAdNetwork fidelity 1 / 0, AdAttributionKit interaction), or `''`.
    pub interaction: String,
    /// `download` / `redownload` / `re-engagement`, or `''`.
    pub conversion_type: String,
    /// Winning attribution.
    pub did_win: bool,
    /// Development key.
    pub development: bool,
    /// Fine value, -1 when absent.
    pub fine_value: i64,
    /// Coarse value, `''` when absent.
    pub coarse_value: String,
    /// Tier hint, -1 when unknown.
    pub tier_hint: i64,
    /// Signature outcome.
    pub outcome: String,
}

impl AggregateKey {
    /// The key of a new postback with its unsigned values.
    #[must_use]
    pub fn of(p: &NewPostback) -> Self {
        Self {
            app_id: p.app_id,
            arrival_day: p.arrival_day,
            install_day: p.install_day,
            ad_network_id: p.ad_network_id.clone(),
            source_identifier: p.source_identifier.clone().unwrap_or_default(),
            campaign_id: p.campaign_id.unwrap_or(-1),
            protocol: p.protocol.as_str().to_owned(),
            version: p.version.clone().unwrap_or_default(),
            window: p.window,
            interaction: String::new(),
            conversion_type: p.conversion_type.clone().unwrap_or_default(),
            did_win: p.did_win,
            development: p.development,
            fine_value: -1,
            coarse_value: String::new(),
            tier_hint: p.tier_hint.unwrap_or(-1),
            outcome: p.outcome.as_str().to_owned(),
        }
        .with_values(&p.values, p.fidelity_type)
    }

    /// The same key with other unsigned values (after Apple's copy replaced a forwarder's).
    #[must_use]
    pub fn with_values(mut self, values: &UnsignedValues, fidelity_type: Option<i64>) -> Self {
        self.fine_value = values.fine_value.map_or(-1, i64::from);
        self.coarse_value = values.coarse_value.map(|c| c.as_str().to_owned()).unwrap_or_default();
        self.interaction = match (values.interaction, fidelity_type) {
            (Some(i), _) => i.as_str().to_owned(),
            (None, Some(1)) => "click".to_owned(),
            (None, Some(0)) => "view".to_owned(),
            _ => String::new(),
        };
        self
    }
}

/// One aggregate: a key and its counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AggregateRow {
    /// The dimensions.
    pub key: AggregateKey,
    /// Postbacks counted (each postback once, however many copies arrived).
    pub postbacks: i64,
    /// Of those, postbacks whose copies disagreed on unsigned values.
    pub unsigned_mismatch: i64,
}

/// Which day aggregates are selected and grouped by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DateType {
    /// The day the postback first arrived.
    Arrival,
    /// The estimated install day.
    Install,
}

/// Restrictions on which aggregates a report reads; an empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateFilter {
    /// `ad_network_id`.
    pub ad_network_id: Vec<String>,
    /// `source_identifier` (exact digits as received).
    pub source_identifier: Vec<String>,
    /// `window`.
    pub window: Vec<i64>,
    /// `fidelity`, as `click` / `view`.
    pub interaction: Vec<String>,
    /// `version` (exact SKAdNetwork version strings; `adattributionkit` selects that protocol).
    pub version: Vec<String>,
    /// `did_win`.
    pub did_win: Vec<bool>,
    /// `redownload`: true selects redownloads, false everything else.
    pub redownload: Vec<bool>,
    /// `development` (default: production only).
    pub development: Vec<bool>,
}

/// Counts of a set of postbacks that need no decoding. Both the detailed aggregates and the
/// report tables produce these, so every source yields the same metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Valid postbacks.
    pub valid: i64,
    /// Invalid postbacks.
    pub invalid: i64,
    /// Unverifiable postbacks.
    pub unverifiable: i64,
    /// Valid, window 0, winning, download.
    pub installs: i64,
    /// Valid, window 0, winning, redownload.
    pub redownloads: i64,
    /// Valid, not winning.
    pub nonwinning: i64,
    /// Valid, winning, without a value.
    pub null_values: i64,
    /// Valid postbacks whose copies disagreed on unsigned values.
    pub unsigned_mismatch: i64,
    /// Valid postbacks by tier hint 0-3, then unknown.
    pub tiers: [i64; 5],
    /// Valid postbacks by window.
    pub windows: [i64; 3],
}

impl Tally {
    /// The tally of one aggregate row.
    #[must_use]
    pub fn of(row: &AggregateRow) -> Self {
        Self::of_cell(CellKey::of(&row.key), row.postbacks, row.unsigned_mismatch)
    }

    /// The tally of `n` postbacks of one cell, `mismatch` of them with copies that disagreed.
    #[must_use]
    pub fn of_cell(cell: CellKey, n: i64, mismatch: i64) -> Self {
        let mut t = Self::default();
        match cell.outcome {
            OutcomeClass::Valid => t.valid = n,
            OutcomeClass::Invalid => {
                t.invalid = n;
                return t;
            }
            OutcomeClass::Unverifiable => {
                t.unverifiable = n;
                return t;
            }
        }
        t.unsigned_mismatch = mismatch;
        t.windows[usize::from(cell.window.min(2))] = n;
        if cell.did_win {
            if cell.window == 0 {
                match cell.conversion {
                    Conversion::Redownload => t.redownloads = n,
                    Conversion::ReEngagement => {}
                    Conversion::Download => t.installs = n,
                }
            }
            if cell.value == ConversionValue::None {
                t.null_values = n;
            }
        } else {
            t.nonwinning = n;
        }
        t.tiers[usize::try_from(cell.tier_hint).map_or(4, |t| t.min(4))] = n;
        t
    }

    /// Add another tally.
    pub fn add(&mut self, other: &Self) {
        self.valid += other.valid;
        self.invalid += other.invalid;
        self.unverifiable += other.unverifiable;
        self.installs += other.installs;
        self.redownloads += other.redownloads;
        self.nonwinning += other.nonwinning;
        self.null_values += other.null_values;
        self.unsigned_mismatch += other.unsigned_mismatch;
        for (a, b) in self.tiers.iter_mut().zip(other.tiers) {
            *a += b;
        }
        for (a, b) in self.windows.iter_mut().zip(other.windows) {
            *a += b;
        }
    }
}

/// What a tally and a report's value dimensions need of an aggregate key below the report's
/// group, held without allocating: reports grouped by value read hundreds of thousands of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellKey {
    /// Conversion window, 0-2.
    pub window: u8,
    /// Winning attribution.
    pub did_win: bool,
    /// What the conversion type counts as.
    pub conversion: Conversion,
    /// Tier hint, -1 when unknown.
    pub tier_hint: i8,
    /// Signature outcome.
    pub outcome: OutcomeClass,
    /// The value in effect.
    pub value: ConversionValue,
}

/// A conversion type as reports count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// `download`, or none (versions before 2.0 do not say): an install.
    Download,
    /// `redownload`.
    Redownload,
    /// `re-engagement`.
    ReEngagement,
}

impl Conversion {
    /// The conversion type as stored (`''` when the postback does not say).
    #[must_use]
    pub fn of(conversion_type: &str) -> Self {
        match conversion_type {
            "redownload" => Self::Redownload,
            "re-engagement" => Self::ReEngagement,
            _ => Self::Download,
        }
    }
}

impl CellKey {
    /// The cell of an aggregate key.
    #[must_use]
    pub fn of(key: &AggregateKey) -> Self {
        Self {
            window: u8::try_from(key.window.clamp(0, 2)).unwrap_or(0),
            did_win: key.did_win,
            conversion: Conversion::of(&key.conversion_type),
            tier_hint: i8::try_from(key.tier_hint.clamp(-1, 4)).unwrap_or(-1),
            outcome: match key.outcome.as_str() {
                "valid" => OutcomeClass::Valid,
                "invalid" => OutcomeClass::Invalid,
                _ => OutcomeClass::Unverifiable,
            },
            value: value_of(
                (key.fine_value >= 0).then_some(key.fine_value),
                Some(key.coarse_value.as_str()),
            ),
        }
    }
}

/// The conversion value stored in columns (`None`/`-1`/`''` mean absent).
#[must_use]
pub fn value_of(fine: Option<i64>, coarse: Option<&str>) -> ConversionValue {
    match (fine.and_then(|v| u8::try_from(v).ok()), coarse.and_then(CoarseValue::from_wire)) {
        (Some(v), _) => ConversionValue::Fine(v),
        (None, Some(c)) => ConversionValue::Coarse(c),
        (None, None) => ConversionValue::None,
    }
}

/// The conversion value of an aggregate row.
#[must_use]
pub fn row_value(row: &AggregateRow) -> ConversionValue {
    value_of(
        (row.key.fine_value >= 0).then_some(row.key.fine_value),
        Some(row.key.coarse_value.as_str()),
    )
}

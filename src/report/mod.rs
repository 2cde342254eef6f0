//! Reports: aggregates decoded with the schema in effect, grouped, turned into the metrics
//! marketers read.
//!
//! The database groups and sums by what the report needs ([`crate::store::Store::report_rows`]);
//! [`assemble`] (pure) decodes each group's values, splits by event, rolls source identifiers up,
//! and accumulates [`Metrics`] per output row. [`run`] ties the two together.

pub mod csv;
mod group;
pub mod measures;
pub mod query;
pub mod sealing;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
// Seeded per process, and several times faster than SipHash on the small keys assembly looks up
// once per stored row or cell.
use foldhash::{HashMap, HashMapExt as _};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use group::RowGroup;
pub use measures::{Metrics, MetricsBuilder};
pub use query::{Dimension, QueryError, ReportQuery};

use group::{Column, Part};

use crate::domain::aggregate::{Tally, row_value};
use crate::schema::{Decoded, SchemaHistory};
use crate::schema_versions::{SchemaError, SchemaVersions};
use crate::skan::{CoarseValue, ConversionValue, OutcomeClass};
use crate::skan::{day_from_number, day_number};
use crate::store::{
    DateType, DayBucket, ReportData, ReportGroup, ReportSelection, ReportSource, Store, StoreError,
    TotalsRow,
};

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// The app.
    pub app_id: i64,
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Arrival or estimated install day.
    pub date_type: DateType,
    /// Grouping, in order.
    pub group_by: Vec<Dimension>,
    /// One row per group, ordered by the group values.
    pub rows: Vec<ReportRow>,
    /// Every postback of the report in one row (events not split).
    pub totals: Metrics,
}

/// One report row: its group values and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportRow {
    /// Dimension name to value (`null` when the postbacks had none).
    #[schema(value_type = Object)]
    pub group: RowGroup,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No postback or schema is known for the app.
    #[error("no postbacks or schema are known for app {0}")]
    UnknownApp(i64),
    /// A stored schema is unusable.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The database selection for a query, given the app's schema history.
#[must_use]
pub fn selection(query: &ReportQuery, history: &SchemaHistory) -> ReportSelection {
    let has = |d: Dimension| query.group_by.contains(&d);
    ReportSelection {
        app_id: query.app_id,
        date_type: query.date_type,
        from_day: day_number(query.from),
        to_day: day_number(query.to),
        filters: query.filters.clone(),
        by_date: [
            (Dimension::Day, DayBucket::Day),
            (Dimension::Week, DayBucket::Week),
            (Dimension::Month, DayBucket::Month),
        ]
        .into_iter()
        .find_map(|(dimension, bucket)| has(dimension).then_some(bucket)),
        by_ad_network: has(Dimension::AdNetworkId),
        by_source: has(Dimension::SourceIdentifier),
        by_interaction: has(Dimension::Fidelity),
        by_version: has(Dimension::Version),
        by_value: has(Dimension::FineValue)
            || has(Dimension::CoarseValue)
            || has(Dimension::Event)
            || has(Dimension::Tier),
        source: ReportSource::Auto,
        schema_period_starts: history.period_starts().into_iter().map(day_number).collect(),
    }
}

/// The names of a dimension's columns in rows and CSV (`source_identifier` has two).
#[must_use]
pub fn column_names(dimension: Dimension) -> Vec<&'static str> {
    match dimension {
        Dimension::SourceIdentifier => vec!["source_identifier", "campaign_id"],
        other => vec![other.name()],
    }
}

/// The dimensions of one input row, whatever table it came from (absent: `''` / `-1`).
struct Dims<'a> {
    day: i64,
    ad_network_id: &'a str,
    source_identifier: &'a str,
    campaign_id: i64,
    window: i64,
    interaction: &'a str,
    protocol: &'a str,
    version: &'a str,
    fine_value: i64,
    coarse_value: &'a str,
    tier_hint: i64,
}

impl<'a> Dims<'a> {
    /// A report group's dimensions, with no value.
    fn of_group(group: &'a ReportGroup, window: i64) -> Self {
        Self {
            day: group.day,
            ad_network_id: &group.ad_network_id,
            source_identifier: &group.source_identifier,
            campaign_id: group.campaign_id,
            window,
            interaction: &group.interaction,
            protocol: &group.protocol,
            version: &group.version,
            fine_value: -1,
            coarse_value: "",
            tier_hint: -1,
        }
    }
}

/// One shared copy of each text a report's keys hold: a key part is then a reference count,
/// not an allocation per row (a report by day and campaign makes a quarter of a million keys
/// from a few thousand texts).
#[derive(Default)]
struct Texts(HashMap<Box<str>, Arc<str>>);

impl Texts {
    /// The text as a key part, `Null` when empty.
    fn part(&mut self, text: &str) -> Part {
        if text.is_empty() {
            return Part::Null;
        }
        if let Some(shared) = self.0.get(text) {
            return Part::Text(Arc::clone(shared));
        }
        let shared: Arc<str> = text.into();
        self.0.insert(text.into(), Arc::clone(&shared));
        Part::Text(shared)
    }
}

/// The group key of a row (with a placeholder where the event goes, and its position).
fn group_key(query: &ReportQuery, d: &Dims<'_>, texts: &mut Texts) -> (Vec<Part>, Option<usize>) {
    let mut key: Vec<Part> = Vec::with_capacity(query.group_by.len() + 1);
    let mut event_slot = None;
    for dimension in &query.group_by {
        let day = day_from_number(d.day);
        match dimension {
            Dimension::Day => key.push(Part::Date(day)),
            Dimension::Week => key.push(Part::Date(DayBucket::Week.first_day(day))),
            Dimension::Month => key.push(Part::Date(DayBucket::Month.first_day(day))),
            Dimension::AdNetworkId => key.push(texts.part(d.ad_network_id)),
            Dimension::SourceIdentifier => {
                let digits = usize::from(query.digits.unwrap_or(4));
                let source = d.source_identifier;
                key.push(texts.part(&source[source.len().saturating_sub(digits)..]));
                key.push(Part::int_or_null(d.campaign_id));
            }
            Dimension::Window => key.push(Part::Int(d.window)),
            Dimension::Fidelity => key.push(texts.part(d.interaction)),
            Dimension::Version => key.push(if d.protocol == "adattributionkit" {
                texts.part("adattributionkit")
            } else {
                texts.part(d.version)
            }),
            Dimension::Event => {
                event_slot = Some(key.len());
                key.push(Part::Null);
            }
            Dimension::FineValue => key.push(Part::int_or_null(d.fine_value)),
            Dimension::CoarseValue => key.push(texts.part(d.coarse_value)),
            Dimension::Tier => key.push(Part::int_or_null(d.tier_hint)),
        }
    }
    (key, event_slot)
}

/// Decoding slots per (install day, window): fine values 0-63, coarse low, medium, high, and no
/// value (fine values above 63, which parsing refuses, get slots past these if a row holds one).
const SLOTS: usize = 68;

/// The value of slot `i` below 67 (a totals row's histogram orders its counts the same way).
fn slot_value(i: usize) -> ConversionValue {
    match i {
        0..64 => ConversionValue::Fine(u8::try_from(i).unwrap_or(0)),
        _ => ConversionValue::Coarse(CoarseValue::ALL[(i - 64).min(2)]),
    }
}

fn slot_of(value: ConversionValue) -> usize {
    match value {
        ConversionValue::Fine(v) if v < 64 => usize::from(v),
        ConversionValue::Fine(v) => SLOTS + usize::from(v) - 64,
        ConversionValue::Coarse(c) => {
            64 + CoarseValue::ALL.iter().position(|x| *x == c).unwrap_or(0)
        }
        ConversionValue::None => SLOTS - 1,
    }
}

/// Decodes each (install day, window, value) once. The decodings of one (install day, window)
/// sit in an array by value: a totals row carries 67 counts, and one map lookup per row instead
/// of one per value is most of assembling thousands of rows.
struct Decoder<'a> {
    history: &'a SchemaHistory,
    slots: HashMap<(i64, i64), Vec<Option<Decoded>>>,
}

impl Decoder<'_> {
    fn decode(&mut self, install_day: i64, window: i64, value: ConversionValue) -> &Decoded {
        let history = self.history;
        let slots = self.slots.entry((install_day, window)).or_insert_with(|| vec![None; SLOTS]);
        let slot = slot_of(value);
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
        }
        slots[slot].get_or_insert_with(|| decode(history, install_day, window, value))
    }

    /// Call `each(slot, value, n, decoded)` for every non-zero count of a totals row's histogram.
    fn each_value(
        &mut self,
        row: &TotalsRow<'_>,
        mut each: impl FnMut(usize, ConversionValue, i64, &Decoded),
    ) {
        let history = self.history;
        let slots = self
            .slots
            .entry((row.group.install_day, row.window))
            .or_insert_with(|| vec![None; SLOTS]);
        let counts = row.values().iter().copied().enumerate();
        for ((i, n), slot) in counts.zip(slots.iter_mut()).filter(|((_, n), _)| *n != 0) {
            let value = slot_value(i);
            let decoded = slot
                .get_or_insert_with(|| decode(history, row.group.install_day, row.window, value));
            each(i, value, n, decoded);
        }
    }
}

fn decode(
    history: &SchemaHistory,
    install_day: i64,
    window: i64,
    value: ConversionValue,
) -> Decoded {
    history.decode(day_from_number(install_day), u8::try_from(window).unwrap_or(0), value)
}

/// Decode, group and measure what the database returned. Pure.
#[must_use]
pub fn assemble(query: &ReportQuery, history: &SchemaHistory, data: &ReportData) -> Report {
    // Only when asked for: a row grouped by a value would repeat its own count in them, and
    // campaign x value reports have hundreds of thousands of rows.
    let histograms = query.histograms;
    let mut decoder = Decoder { history, slots: HashMap::new() };
    let mut texts = Texts::default();
    let mut groups: BTreeMap<Vec<Part>, MetricsBuilder> = BTreeMap::new();
    let columns: Arc<[Column]> = query
        .group_by
        .iter()
        .flat_map(|d| {
            column_names(*d)
                .into_iter()
                .map(move |name| Column { name: name.to_owned(), month: *d == Dimension::Month })
        })
        .collect();
    let mut totals = MetricsBuilder::new(query.histograms);
    let not_decoded = Decoded::not_decoded();
    let rows = match data {
        ReportData::Rows(rows) => {
            for row in rows {
                let k = &row.key;
                let dims = Dims {
                    day: match query.date_type {
                        DateType::Arrival => k.arrival_day,
                        DateType::Install => k.install_day,
                    },
                    ad_network_id: &k.ad_network_id,
                    source_identifier: &k.source_identifier,
                    campaign_id: k.campaign_id,
                    window: k.window,
                    interaction: &k.interaction,
                    protocol: &k.protocol,
                    version: &k.version,
                    fine_value: k.fine_value,
                    coarse_value: &k.coarse_value,
                    tier_hint: k.tier_hint,
                };
                // Only valid postbacks mean anything; quarantined ones are counted, never decoded.
                let decoded = if k.outcome == "valid" {
                    decoder.decode(k.install_day, k.window, row_value(row))
                } else {
                    &not_decoded
                };
                totals.add(row, decoded);
                let (key, event_slot) = group_key(query, &dims, &mut texts);
                match event_slot {
                    Some(slot) if !decoded.events.is_empty() => {
                        for event in &decoded.events {
                            let mut key = key.clone();
                            key[slot] = Part::Text(Arc::clone(&event.name));
                            groups
                                .entry(key)
                                .or_insert_with(|| MetricsBuilder::new(histograms))
                                .add(row, decoded);
                        }
                    }
                    _ => groups
                        .entry(key)
                        .or_insert_with(|| MetricsBuilder::new(histograms))
                        .add(row, decoded),
                }
            }
            finish_rows(groups.into_iter(), &columns)
        }
        ReportData::Cells(cell_groups) => {
            // Already in order: cell groups are grouped and sorted without a map of full keys.
            let ordered = assemble_cells(query, histograms, &mut decoder, cell_groups, &mut totals);
            finish_rows(ordered, &columns)
        }
        ReportData::Totals(table) => {
            let mut overall: HashMap<(i64, i64), [i64; 67]> = HashMap::new();
            for row in table.rows() {
                let (key, _) = group_key(query, &Dims::of_group(row.group, row.window), &mut texts);
                let group = groups.entry(key).or_insert_with(|| MetricsBuilder::new(histograms));
                let tally = row.tally();
                group.add_tally(&tally);
                totals.add_tally(&tally);
                let histogram =
                    overall.entry((row.group.install_day, row.window)).or_insert([0; 67]);
                decoder.each_value(&row, |i, value, n, decoded| {
                    group.add_value(value, n, decoded);
                    histogram[i] += n;
                });
            }
            add_values(&mut totals, &mut decoder, overall);
            finish_rows(groups.into_iter(), &columns)
        }
    };
    Report {
        app_id: query.app_id,
        from: query.from,
        to: query.to,
        date_type: query.date_type,
        group_by: query.group_by.clone(),
        rows,
        totals: totals.finish(),
    }
}

/// Add value counts by (install day, window) and slot to the report's totals, decoding each
/// value once rather than once per row or cell that holds it.
fn add_values(
    totals: &mut MetricsBuilder,
    decoder: &mut Decoder<'_>,
    counts: HashMap<(i64, i64), [i64; 67]>,
) {
    for ((install_day, window), histogram) in counts {
        for (i, n) in histogram.into_iter().enumerate().filter(|(_, n)| *n != 0) {
            let value = slot_value(i);
            totals.add_value(value, n, decoder.decode(install_day, window, value));
        }
    }
}

/// The report rows of groups in order, each builder finished where it lies: a report of
/// hundreds of thousands of rows is built once, not copied through a vector of builders.
fn finish_rows(
    groups: impl ExactSizeIterator<Item = (Vec<Part>, MetricsBuilder)>,
    columns: &Arc<[Column]>,
) -> Vec<ReportRow> {
    let mut rows = Vec::with_capacity(groups.len());
    for (key, builder) in groups {
        // Counts that moved away (a copy's values adopted, an earlier arrival backfilled) leave
        // stored rows at zero; a group with no postback is no row.
        if builder.postbacks() != 0 {
            rows.push(ReportRow {
                group: RowGroup::new(Arc::clone(columns), key),
                metrics: builder.finish(),
            });
        }
    }
    rows
}

/// A report row's values of the dimensions below a cell group (`-1` / `''` when not grouped by
/// them, or absent), the event as its index among the report's event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CellParts {
    window: i64,
    fine_value: i64,
    coarse_value: &'static str,
    tier_hint: i64,
    event: Option<usize>,
}

/// A dimension a cell sets, below its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellDimension {
    Window,
    FineValue,
    CoarseValue,
    Tier,
    Event,
}

impl CellDimension {
    /// The cell dimension at each position of a group key, `None` where the group sets it.
    fn at_positions(query: &ReportQuery) -> Vec<Option<Self>> {
        query
            .group_by
            .iter()
            .flat_map(|dimension| {
                let cell = match dimension {
                    Dimension::Window => Some(Self::Window),
                    Dimension::FineValue => Some(Self::FineValue),
                    Dimension::CoarseValue => Some(Self::CoarseValue),
                    Dimension::Tier => Some(Self::Tier),
                    Dimension::Event => Some(Self::Event),
                    _ => None,
                };
                std::iter::repeat_n(cell, column_names(*dimension).len())
            })
            .collect()
    }

    fn part(self, parts: &CellParts, event_names: &[Arc<str>]) -> Part {
        match self {
            Self::Window => Part::Int(parts.window),
            Self::FineValue => Part::int_or_null(parts.fine_value),
            Self::CoarseValue => Part::text_or_null(parts.coarse_value),
            Self::Tier => Part::int_or_null(parts.tier_hint),
            Self::Event => {
                parts.event.map_or(Part::Null, |i| Part::Text(Arc::clone(&event_names[i])))
            }
        }
    }

    /// The rank of [`Self::part`] among the parts of this dimension, in their order (`Null`
    /// first), with events ranked by `event_rank`.
    fn rank(self, parts: &CellParts, event_rank: &[u32]) -> u32 {
        let from_null = |v: i64| u32::try_from(v + 1).unwrap_or(0);
        match self {
            Self::Window => from_null(parts.window),
            Self::FineValue => from_null(parts.fine_value),
            Self::CoarseValue => match parts.coarse_value {
                "" => 0,
                text => {
                    1 + CoarseValue::ALL.iter().map(|c| c.as_str()).filter(|c| *c < text).count()
                        as u32
                }
            },
            Self::Tier => from_null(parts.tier_hint),
            Self::Event => parts.event.map_or(0, |e| event_rank[e]),
        }
    }
}

/// Assemble cell groups: each group's key is made once, and its cells are counted under a
/// small copyable key of the values below it. Rows are ordered by ranks of their parts (what
/// the full keys' order would give) and their full keys made last: hundreds of thousands of
/// rows in an ordered map of full keys cost more than everything else together.
fn assemble_cells(
    query: &ReportQuery,
    histograms: bool,
    decoder: &mut Decoder<'_>,
    cell_groups: &[crate::store::CellGroup],
    totals: &mut MetricsBuilder,
) -> impl ExactSizeIterator<Item = (Vec<Part>, MetricsBuilder)> {
    let dimensions = CellDimension::at_positions(query);
    let grouped = |d: CellDimension| dimensions.contains(&Some(d));
    let (by_window, by_fine, by_coarse, by_tier, by_event) = (
        grouped(CellDimension::Window),
        grouped(CellDimension::FineValue),
        grouped(CellDimension::CoarseValue),
        grouped(CellDimension::Tier),
        grouped(CellDimension::Event),
    );
    let not_decoded = Decoded::not_decoded();
    let mut texts = Texts::default();
    let mut templates: HashMap<Vec<Part>, usize> = HashMap::new();
    let mut template_keys: Vec<Vec<Part>> = Vec::new();
    let mut event_names: Vec<Arc<str>> = Vec::new();
    let mut event_index: HashMap<Arc<str>, usize> = HashMap::new();
    let mut row_index: HashMap<(usize, CellParts), usize> = HashMap::new();
    let mut rows: Vec<(usize, CellParts, MetricsBuilder)> = Vec::new();
    let mut overall: HashMap<(i64, i64), [i64; 67]> = HashMap::new();
    for cell_group in cell_groups {
        let (template, _) = group_key(query, &Dims::of_group(&cell_group.group, 0), &mut texts);
        let install_day = cell_group.group.install_day;
        let next = template_keys.len();
        let template = *templates.entry(template).or_insert_with_key(|key| {
            template_keys.push(key.clone());
            next
        });
        for &(cell, n, mismatch) in &cell_group.cells {
            let tally = Tally::of_cell(cell, n, mismatch);
            totals.add_tally(&tally);
            let window = i64::from(cell.window);
            let valid = cell.outcome == OutcomeClass::Valid;
            let decoded = if valid {
                if cell.value != ConversionValue::None {
                    overall.entry((install_day, window)).or_insert([0; 67])[slot_of(cell.value)] +=
                        n;
                }
                decoder.decode(install_day, window, cell.value)
            } else {
                &not_decoded
            };
            let (fine_value, coarse_value) = match cell.value {
                ConversionValue::Fine(v) => (i64::from(v), ""),
                ConversionValue::Coarse(c) => (-1, c.as_str()),
                ConversionValue::None => (-1, ""),
            };
            let parts = CellParts {
                window: if by_window { window } else { -1 },
                fine_value: if by_fine { fine_value } else { -1 },
                coarse_value: if by_coarse { coarse_value } else { "" },
                tier_hint: if by_tier { i64::from(cell.tier_hint) } else { -1 },
                event: None,
            };
            let mut count = |parts: CellParts| {
                let next = rows.len();
                let at = *row_index.entry((template, parts)).or_insert(next);
                if at == next {
                    rows.push((template, parts, MetricsBuilder::new(histograms)));
                }
                let row = &mut rows[at].2;
                row.add_tally(&tally);
                if valid {
                    row.add_value(cell.value, n, decoded);
                }
            };
            if by_event && !decoded.events.is_empty() {
                for event in &decoded.events {
                    let index = match event_index.get(&*event.name) {
                        Some(index) => *index,
                        None => {
                            event_index.insert(Arc::clone(&event.name), event_names.len());
                            event_names.push(Arc::clone(&event.name));
                            event_names.len() - 1
                        }
                    };
                    count(CellParts { event: Some(index), ..parts });
                }
            } else {
                count(parts);
            }
        }
    }
    add_values(totals, decoder, overall);

    // Every position's parts as ranks in their order, so rows sort by small integers: a
    // template's part ranked among the templates, a cell's part by what it holds (Null first,
    // as parts order).
    let width = template_keys.first().map_or(0, Vec::len);
    let mut template_ranks = vec![0u32; template_keys.len() * width];
    for position in 0..width {
        let mut parts: Vec<(&Part, usize)> =
            template_keys.iter().enumerate().map(|(t, key)| (&key[position], t)).collect();
        parts.sort_unstable();
        let mut rank = 0u32;
        for k in 0..parts.len() {
            if k > 0 && parts[k].0 != parts[k - 1].0 {
                rank += 1;
            }
            template_ranks[parts[k].1 * width + position] = rank;
        }
    }
    let mut by_name: Vec<usize> = (0..event_names.len()).collect();
    by_name.sort_unstable_by(|a, b| event_names[*a].cmp(&event_names[*b]));
    let mut event_rank = vec![0u32; event_names.len()];
    for (rank, i) in by_name.into_iter().enumerate() {
        event_rank[i] = u32::try_from(rank + 1).unwrap_or(u32::MAX);
    }
    let mut ranks = vec![0u32; rows.len() * width];
    for (i, (template, parts, _)) in rows.iter().enumerate() {
        for (position, dimension) in dimensions.iter().enumerate() {
            ranks[i * width + position] = match dimension {
                Some(cell) => cell.rank(parts, &event_rank),
                None => template_ranks[template * width + position],
            };
        }
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_unstable_by(|a, b| {
        ranks[a * width..(a + 1) * width].cmp(&ranks[b * width..(b + 1) * width])
    });
    order.into_iter().map(move |i| {
        let (template, parts, builder) = &mut rows[i];
        let mut key = template_keys[*template].clone();
        for (part, dimension) in key.iter_mut().zip(&dimensions) {
            if let Some(cell) = dimension {
                *part = cell.part(parts, &event_names);
            }
        }
        (key, std::mem::take(builder))
    })
}

/// Run a report against the stored aggregates and schemas.
///
/// # Errors
/// [`ReportError::UnknownApp`] for an app nothing is known about; store and schema errors.
pub async fn run(
    store: &dyn Store,
    schemas: &SchemaVersions,
    query: &ReportQuery,
) -> Result<Report, ReportError> {
    if !store.app_exists(query.app_id).await? {
        return Err(ReportError::UnknownApp(query.app_id));
    }
    let history = schemas.history(query.app_id).await?;
    let rows = store.report_rows(&selection(query, &history)).await?;
    Ok(assemble(query, &history, &rows))
}

/// A draft schema tried on past data: the report as stored schemas decode it, and as the draft
/// would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Simulation {
    /// Decoded with the stored schema versions.
    pub current: Report,
    /// Decoded with the draft (as if in effect for every install day).
    pub draft: Report,
}

/// Decode the same stored aggregates with the stored schemas and with `draft`.
///
/// # Errors
/// [`SchemaError::Invalid`] (inside [`ReportError::Schema`]) when the draft has errors; as [`run`].
pub async fn simulate(
    store: &dyn Store,
    schemas: &SchemaVersions,
    query: &ReportQuery,
    draft: crate::schema::Schema,
) -> Result<Simulation, ReportError> {
    let draft = crate::schema_versions::compile(draft)?;
    if !store.app_exists(query.app_id).await? {
        return Err(ReportError::UnknownApp(query.app_id));
    }
    let history = schemas.history(query.app_id).await?;
    let rows = store.report_rows(&selection(query, &history)).await?;
    let draft_history = SchemaHistory::new(vec![crate::schema::SchemaVersionEntry {
        version: 0,
        effective_from: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        schema: std::sync::Arc::new(draft),
    }]);
    Ok(Simulation {
        current: assemble(query, &history, &rows),
        draft: assemble(query, &draft_history, &rows),
    })
}

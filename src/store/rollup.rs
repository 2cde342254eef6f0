//! The report rollup: for each time block, ad network, development flag and decoding period,
//! every count a report needs, down to the window, the value, the did-win flag, the conversion
//! type, the tier, the outcome and the mismatch flag. Two families of rows: [`Family::Source`]
//! rows also keep the source identifier and campaign, with the protocol, version and interaction
//! in their cells ([`Slots`]), and [`Family::Version`] rows keep the protocol, version and
//! interaction in their key, for reports that need those but no campaign (a fraction of the
//! rows to read).
//!
//! Why it exists: a report grouped or filtered by campaign, version or fidelity over 90 days
//! would otherwise group millions of detailed aggregates. Three things keep the rollup small
//! enough to read in a few tens of milliseconds:
//! - Time blocks of 1, 7 and 56 days, so a range is a handful of blocks, added or subtracted,
//!   instead of every day in it ([`blocks`]). The blocks start on Mondays, so a report by week
//!   reads one block per whole week, and by month a few per month.
//! - The window inside the cells, not in the key: a campaign report reads every campaign's row
//!   in every block, and a SKAdNetwork 4 campaign's three windows share one row (a fifth fewer
//!   rows in the benchmark, where older versions have only window 0).
//! - The decoding period instead of the install day: reports decode a value with the schema
//!   version in effect at the install day, and every day of one period decodes alike. A new
//!   schema version splits a period; the rows it moves are recomputed from the aggregates in the
//!   schema's own transaction ([`period_day`]).
//!
//! The counts per row are sparse cells in one blob ([`encode`]): SQLite sums 80 count columns
//! at about 100 ns each, far slower than decoding a blob and adding in Rust. The blob is written
//! whole, so writers read, merge and write it back under a row lock.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher as _;
use std::sync::LazyLock;

use super::totals::TotalsEntry;
use super::{AggregateKey, CellGroup, CellKey, ReportGroup, TotalsTable, totals};
use crate::domain::aggregate::Conversion;
use crate::skan::{CoarseValue, ConversionValue, OutcomeClass};

/// Block lengths in days. Every postback is counted once per span and date kind.
pub(crate) const SPANS: [i64; 3] = [1, 7, 56];

/// A day number on which blocks of every span start: day 4 (1970-01-05) is a Monday, as reports'
/// weeks start on Mondays.
const BLOCK_ORIGIN: i64 = 4;

/// The first day of the `span`-day block holding `day`.
pub(crate) fn block_start(day: i64, span: i64) -> i64 {
    day - (day - BLOCK_ORIGIN).rem_euclid(span)
}

/// The period day of installs before an app's first schema version (no version decodes them,
/// as none decodes day -1).
pub(crate) const NO_PERIOD: i64 = -1;

const VALUE_SLOTS: u32 = 68;
/// Conversion windows 0-2 (`postback-sequence-index`; parsing refuses any other).
const WINDOWS: u32 = 3;
/// Cells per window.
const WINDOW_CELLS: u32 = 2 * 4 * 5 * 3 * 2 * VALUE_SLOTS;
/// Cells per protocol, version and interaction: every window's.
const BASE_CELLS: u32 = WINDOWS * WINDOW_CELLS;
/// The protocol and version pairs a source row counts in its cells. A postback of any other
/// version (one Apple adds later) is counted in a row that keeps its version in the key.
const SLOTTED_VERSIONS: [(&str, &str); 8] = [
    ("skadnetwork", ""),
    ("skadnetwork", "1.0"),
    ("skadnetwork", "2.0"),
    ("skadnetwork", "2.1"),
    ("skadnetwork", "2.2"),
    ("skadnetwork", "3.0"),
    ("skadnetwork", "4.0"),
    ("adattributionkit", ""),
];
/// The interactions a source row counts in its cells (no interaction stays in the key, as `''`).
const SLOTTED_INTERACTIONS: [&str; 2] = ["click", "view"];

/// The slot of `value` in `table`: `n + 1` for `table[n]`, 0 (the row's key) when absent.
fn slot_of<T: PartialEq>(table: &[T], value: &T) -> u32 {
    table.iter().position(|t| t == value).map_or(0, |i| i as u32 + 1)
}

/// `table[slot - 1]`, or `key` for slot 0 (and for a slot past the table).
fn slotted<T: Copy>(table: &[T], slot: u32, key: T) -> T {
    slot.checked_sub(1).and_then(|i| table.get(i as usize)).copied().unwrap_or(key)
}

/// Where a cell's protocol, version and interaction are: slot 0 is the row key's (every cell of
/// a version row, and a source row's postbacks of versions outside [`SLOTTED_VERSIONS`]), slot
/// `n` the `n - 1`th of [`SLOTTED_VERSIONS`] or [`SLOTTED_INTERACTIONS`]. Keeping them in a source
/// row's cells lets campaign reports by version or fidelity read the source rows (as many as
/// without them) instead of rows per campaign and version, which would be 2.4 times as many
/// rows to write per postback and to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Slots {
    version: u32,
    interaction: u32,
}

impl Slots {
    /// The slots of a cell index as one number (see [`Self::of_number`]): a report splitting
    /// cells by slot files them under it.
    pub(crate) fn number_of_cell(index: u32) -> usize {
        (index / BASE_CELLS) as usize
    }

    /// The slots a number from [`Self::number_of_cell`] stands for.
    pub(crate) fn of_number(number: usize) -> Self {
        let slots = u32::try_from(number).unwrap_or(u32::MAX);
        Self { version: slots / 3, interaction: slots % 3 }
    }

    /// The cell's index without its slots: what every report that does not group or filter by
    /// protocol, version or interaction reads.
    pub(crate) fn base(index: u32) -> u32 {
        index % BASE_CELLS
    }

    fn offset(self) -> u32 {
        (self.version * 3 + self.interaction) * BASE_CELLS
    }

    /// The protocol, version and interaction of a cell in a row with these key fields.
    pub(crate) fn resolve<'a>(
        self,
        key: (&'a str, &'a str, &'a str),
    ) -> (&'a str, &'a str, &'a str) {
        let (protocol, version) = slotted(&SLOTTED_VERSIONS, self.version, (key.0, key.1));
        (protocol, version, slotted(&SLOTTED_INTERACTIONS, self.interaction, key.2))
    }
}
const CONVERSION_TYPES: [&str; 4] = ["", "download", "redownload", "re-engagement"];
const OUTCOMES: [&str; 3] = ["valid", "invalid", "unverifiable"];

/// Which detail a rollup row keeps besides the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Family {
    /// Source identifier and campaign.
    Source,
    /// Protocol, version and interaction.
    Version,
}

impl Family {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Version => "version",
        }
    }

    /// The family a stored `family` column names.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Source, Self::Version].into_iter().find(|f| f.as_str() == text)
    }
}

/// A rollup row's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RollupKey {
    pub(crate) app_id: i64,
    pub(crate) date_kind: &'static str,
    pub(crate) span: i64,
    /// First day of the block.
    pub(crate) day: i64,
    pub(crate) ad_network_id: String,
    pub(crate) family: &'static str,
    pub(crate) source_identifier: String,
    pub(crate) campaign_id: i64,
    pub(crate) protocol: String,
    pub(crate) version: String,
    pub(crate) interaction: String,
    pub(crate) development: bool,
    pub(crate) period_day: i64,
}

/// Sparse counts by cell.
pub(crate) type Cells = BTreeMap<u32, i64>;

/// The part of an aggregate key a cell keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    /// 0-2.
    window: u32,
    pub(crate) did_win: bool,
    conversion_type: usize,
    /// -1 to 3.
    tier_hint: i64,
    outcome: usize,
    pub(crate) mismatched: bool,
    /// 0: no value, 1-64: fine 0-63, 65-67: coarse low, medium, high.
    value: u32,
}

impl Cell {
    fn of(key: &AggregateKey, mismatched: bool) -> Self {
        let value = match (u32::try_from(key.fine_value), key.coarse_value.as_str()) {
            (Ok(v), _) if v < 64 => v + 1,
            (_, "low") => 65,
            (_, "medium") => 66,
            (_, "high") => 67,
            _ => 0,
        };
        Self {
            window: u32::try_from(key.window).unwrap_or(0).min(WINDOWS - 1),
            did_win: key.did_win,
            conversion_type: CONVERSION_TYPES
                .iter()
                .position(|t| *t == key.conversion_type)
                .unwrap_or(0),
            tier_hint: key.tier_hint.clamp(-1, 3),
            outcome: OUTCOMES.iter().position(|o| *o == key.outcome).unwrap_or(2),
            mismatched,
            value,
        }
    }

    fn index(self) -> u32 {
        let mut i = self.window * 2 + u32::from(self.did_win);
        i = i * 4 + self.conversion_type as u32;
        i = i * 5 + u32::try_from(self.tier_hint + 1).unwrap_or(0);
        i = i * 3 + self.outcome as u32;
        i = i * 2 + u32::from(self.mismatched);
        i * VALUE_SLOTS + self.value
    }

    pub(crate) fn from_index(index: u32) -> Self {
        let mut i = Slots::base(index);
        let value = i % VALUE_SLOTS;
        i /= VALUE_SLOTS;
        let mismatched = i % 2 == 1;
        i /= 2;
        let outcome = (i % 3) as usize;
        i /= 3;
        let tier_hint = i64::from(i % 5) - 1;
        i /= 5;
        let conversion_type = (i % 4) as usize;
        i /= 4;
        let did_win = i % 2 == 1;
        Self { window: i / 2, did_win, conversion_type, tier_hint, outcome, mismatched, value }
    }

    /// The window of a cell index, without decoding the rest.
    pub(crate) fn window_of(index: u32) -> usize {
        (Slots::base(index) / WINDOW_CELLS).min(WINDOWS - 1) as usize
    }

    /// What a report reads of the cell.
    pub(crate) fn report_key(self) -> CellKey {
        CellKey {
            window: u8::try_from(self.window).unwrap_or(0),
            did_win: self.did_win,
            conversion: Conversion::of(CONVERSION_TYPES[self.conversion_type]),
            tier_hint: i8::try_from(self.tier_hint).unwrap_or(-1),
            outcome: [OutcomeClass::Valid, OutcomeClass::Invalid, OutcomeClass::Unverifiable]
                [self.outcome],
            value: self.conversion_value(),
        }
    }

    /// The value the cell counts: 0 none, 1-64 fine values 0-63, then the coarse values.
    fn conversion_value(self) -> ConversionValue {
        match self.value {
            0 => ConversionValue::None,
            v @ 1..=64 => ConversionValue::Fine(u8::try_from(v - 1).unwrap_or(0)),
            v => ConversionValue::Coarse(CoarseValue::ALL[((v - 65) as usize).min(2)]),
        }
    }

    pub(crate) fn is_redownload(self) -> bool {
        CONVERSION_TYPES[self.conversion_type] == "redownload"
    }

    /// Write this cell's fields into an aggregate key (the other fields are left as they are).
    fn fill(self, key: &mut AggregateKey) {
        key.window = i64::from(self.window);
        key.did_win = self.did_win;
        key.conversion_type.clear();
        key.conversion_type.push_str(CONVERSION_TYPES[self.conversion_type]);
        key.tier_hint = self.tier_hint;
        key.outcome.clear();
        key.outcome.push_str(OUTCOMES[self.outcome]);
        key.coarse_value.clear();
        key.fine_value = -1;
        match self.conversion_value() {
            ConversionValue::Fine(v) => key.fine_value = i64::from(v),
            ConversionValue::Coarse(c) => key.coarse_value.push_str(c.as_str()),
            ConversionValue::None => {}
        }
    }
}

/// The period of an install day: the first day of the schema version in effect at its end
/// (`starts` ascending: the days versions take effect), or [`NO_PERIOD`].
pub(crate) fn period_day(starts: &[i64], install_day: i64) -> i64 {
    match starts.partition_point(|s| *s <= install_day) {
        0 => NO_PERIOD,
        n => starts[n - 1],
    }
}

/// Add an aggregate's counts (negative to take them away) to the rows they belong to.
pub(crate) fn add(
    rows: &mut BTreeMap<RollupKey, Cells>,
    key: &AggregateKey,
    postbacks: i64,
    mismatch: i64,
    period: i64,
) {
    let kinds = [("arrival", key.arrival_day), ("install", key.install_day)];
    for ((date_kind, day), family) in
        kinds.into_iter().flat_map(|k| [Family::Source, Family::Version].map(|f| (k, f)))
    {
        let source = family == Family::Source;
        // A source row keeps a slotted version and interaction in its cells, anything else in
        // its key; a version row keeps them in its key.
        let (version_slot, interaction_slot) = if source {
            (
                slot_of(&SLOTTED_VERSIONS, &(key.protocol.as_str(), key.version.as_str())),
                slot_of(&SLOTTED_INTERACTIONS, &key.interaction.as_str()),
            )
        } else {
            (0, 0)
        };
        let slots = Slots { version: version_slot, interaction: interaction_slot };
        let keyed = |slot: u32, text: &String| if slot == 0 { text.clone() } else { String::new() };
        for span in SPANS {
            let row_key = RollupKey {
                app_id: key.app_id,
                date_kind,
                span,
                day: block_start(day, span),
                ad_network_id: key.ad_network_id.clone(),
                family: family.as_str(),
                source_identifier: if source {
                    key.source_identifier.clone()
                } else {
                    String::new()
                },
                campaign_id: if source { key.campaign_id } else { -1 },
                protocol: keyed(version_slot, &key.protocol),
                version: keyed(version_slot, &key.version),
                interaction: keyed(interaction_slot, &key.interaction),
                development: key.development,
                period_day: period,
            };
            let cells = rows.entry(row_key).or_default();
            for (n, flagged) in [(postbacks - mismatch, false), (mismatch, true)] {
                if n != 0 {
                    *cells.entry(slots.offset() + Cell::of(key, flagged).index()).or_insert(0) += n;
                }
            }
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Cells as bytes: per non-zero cell in ascending order, the cell (the first one plus 1, then
/// the gap from the previous one) and the count (zigzag), both as LEB128 varints. No byte is
/// 0x00 (every varint is at least 1), so blobs joined with a 0x00 byte between them (a row's
/// appended runs) still decode: the 0x00 starts the next blob.
pub(crate) fn encode(cells: &Cells) -> Vec<u8> {
    let mut out = Vec::with_capacity(cells.len() * 3);
    let mut previous: Option<u32> = None;
    for (cell, n) in cells.iter().filter(|(_, n)| **n != 0) {
        let step = match previous {
            None => u64::from(*cell) + 1,
            Some(p) => u64::from(cell - p),
        };
        put_varint(&mut out, step);
        put_varint(&mut out, ((n << 1) ^ (n >> 63)) as u64);
        previous = Some(*cell);
    }
    out
}

/// Call `each(cell, count)` for every cell of an encoded blob, or of several joined by 0x00
/// bytes; `false` when it is malformed.
pub(crate) fn decode_each(bytes: &[u8], mut each: impl FnMut(u32, i64)) -> bool {
    let mut at = 0;
    let mut cell: Option<u32> = None;
    while at < bytes.len() {
        if bytes[at] == 0 {
            at += 1;
            cell = None;
            continue;
        }
        let (Some(step), Some(z)) = (get_varint(bytes, &mut at), get_varint(bytes, &mut at)) else {
            return false;
        };
        let Ok(step) = u32::try_from(step) else { return false };
        let next = match cell {
            None => step.checked_sub(1),
            Some(c) if step > 0 => c.checked_add(step),
            Some(_) => None,
        };
        let Some(next) = next else { return false };
        cell = Some(next);
        each(next, ((z >> 1) as i64) ^ -((z & 1) as i64));
    }
    true
}

/// One rollup row as [`each_packed`] reads it from a packed value. A text is borrowed from
/// the packed value unless it held a quote (then it is unescaped into a copy of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedRow<'a> {
    pub(crate) day: i64,
    pub(crate) campaign_id: i64,
    pub(crate) period_day: i64,
    pub(crate) ad_network_id: Cow<'a, str>,
    pub(crate) source_identifier: Cow<'a, str>,
    pub(crate) protocol: Cow<'a, str>,
    pub(crate) version: Cow<'a, str>,
    pub(crate) interaction: Cow<'a, str>,
    pub(crate) counts: &'a [u8],
}

/// A decimal ended by `end`, read from `at` on.
fn int(bytes: &[u8], at: &mut usize, end: u8) -> Option<i64> {
    let len = bytes.get(*at..)?.iter().position(|b| *b == end)?;
    let text = std::str::from_utf8(&bytes[*at..*at + len]).ok()?;
    *at += len + 1;
    text.parse().ok()
}

/// A text quoted as in a packed row (see [`each_packed`]), read from `at` on.
fn quoted<'a>(bytes: &'a [u8], at: &mut usize) -> Option<Cow<'a, str>> {
    let start = *at;
    let mut unescaped: Option<Vec<u8>> = None;
    let mut from = start;
    loop {
        let quote = from + bytes.get(from..)?.iter().position(|b| *b == b'\'')?;
        match *bytes.get(quote + 1)? {
            b'\'' => {
                unescaped.get_or_insert_with(Vec::new).extend(&bytes[from..=quote]);
                from = quote + 2;
            }
            b',' => {
                *at = quote + 2;
                return match unescaped {
                    None => std::str::from_utf8(&bytes[start..quote]).ok().map(Cow::Borrowed),
                    Some(mut text) => {
                        text.extend(&bytes[from..quote]);
                        String::from_utf8(text).ok().map(Cow::Owned)
                    }
                };
            }
            _ => return None,
        }
    }
}
/// Call `each` for every row of a packed value; `false` when it is malformed. The database
/// writes each row as its day, campaign and period as decimals ended by `;`, then the network,
/// source identifier, protocol, version and interaction each quoted as SQLite's `printf('%q')`
/// quotes (every `'` doubled) and ended by `',`, then the counts blob as a netstring
/// (`<length>:<bytes>`), rows back to back. Inside a quoted text a quote is always followed by
/// another, so the first `'` followed by `,` ends it. Quoting lets SQLite write a row with one
/// `printf` and no length to measure per text (a length costs it a `printf` of its own, as
/// `%s` stops at a NUL and the length must be of what it writes).
pub(crate) fn each_packed<'a>(bytes: &'a [u8], mut each: impl FnMut(PackedRow<'a>)) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        let row = (|| {
            Some(PackedRow {
                day: int(bytes, &mut at, b';')?,
                campaign_id: int(bytes, &mut at, b';')?,
                period_day: int(bytes, &mut at, b';')?,
                ad_network_id: quoted(bytes, &mut at)?,
                source_identifier: quoted(bytes, &mut at)?,
                protocol: quoted(bytes, &mut at)?,
                version: quoted(bytes, &mut at)?,
                interaction: quoted(bytes, &mut at)?,
                counts: {
                    let len = usize::try_from(int(bytes, &mut at, b':')?).ok()?;
                    let counts = bytes.get(at..at.checked_add(len)?)?;
                    at += len;
                    counts
                },
            })
        })();
        match row {
            Some(row) => each(row),
            None => return false,
        }
    }
    true
}

/// A packed row's key, owned, source identifier first: what sealing merges rows by, in the
/// order a sealed value keeps them (each source identifier's rows together, see
/// [`each_source_range`]). A text is cut at a NUL character, as SQLite's `printf` cuts it when
/// the database packs a row, so a row reads back alike from either table.
type PackedKey = (String, i64, i64, i64, String, String, String, String);

fn packed_key(row: &PackedRow<'_>) -> PackedKey {
    let text = |text: &str| text.split('\0').next().unwrap_or_default().to_owned();
    (
        text(&row.source_identifier),
        row.day,
        row.campaign_id,
        row.period_day,
        text(&row.ad_network_id),
        text(&row.protocol),
        text(&row.version),
        text(&row.interaction),
    )
}

/// Write a text as [`quoted`] reads it.
fn put_quoted(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.replace('\'', "''").as_bytes());
    out.extend_from_slice(b"',");
}

/// Write one row as [`each_packed`] reads it.
fn pack_row(out: &mut Vec<u8>, key: &PackedKey, counts: &[u8]) {
    use std::io::Write as _;
    let (source, day, campaign_id, period_day, network, protocol, version, interaction) = key;
    let _ = write!(out, "{day};{campaign_id};{period_day};");
    for text in [network, source, protocol, version, interaction] {
        put_quoted(out, text);
    }
    let _ = write!(out, "{}:", counts.len());
    out.extend_from_slice(counts);
}

/// A sealed value: its packed rows, the byte range of each source identifier's rows in them
/// (see [`each_source_range`]), and how many rows it holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) packed: Vec<u8>,
    pub(crate) sources: Vec<u8>,
    pub(crate) rows: usize,
}

/// How many values a block's rows of one network, family and development flag are sealed
/// into, by source identifier ([`source_chunk`]): a report of one campaign reads one of them,
/// not every campaign's rows, and a report of every campaign reads this many values per block
/// and network instead of one, still a few thousand values at most.
pub(crate) const SOURCE_CHUNKS: i64 = 16;

/// The sealed value of its block that holds a source identifier's rows: FNV-1a of its bytes
/// (stable across builds, unlike the standard hasher), modulo [`SOURCE_CHUNKS`].
pub(crate) fn source_chunk(source: &str) -> i64 {
    let hash =
        source.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i64::from(hash) % SOURCE_CHUNKS
}

/// Rows summed by key into sealed values, one per [`source_chunk`] that keeps a row, one run of
/// cells per row, without zero cells or rows left without cells: how sealing folds a block's
/// rows, and its sealed values' earlier content, into new values. `None` when a row's counts
/// are malformed.
pub(crate) fn merge_packed<'a>(
    rows: impl IntoIterator<Item = PackedRow<'a>>,
) -> Option<BTreeMap<i64, Sealed>> {
    use std::io::Write as _;
    let mut merged: BTreeMap<PackedKey, Cells> = BTreeMap::new();
    for row in rows {
        let cells = merged.entry(packed_key(&row)).or_default();
        if !decode_each(row.counts, |cell, n| *cells.entry(cell).or_insert(0) += n) {
            return None;
        }
    }
    let mut chunks: BTreeMap<i64, Sealed> = BTreeMap::new();
    // The source identifier whose rows are being written, its chunk and where its rows start.
    let mut run: Option<(String, i64, usize)> = None;
    let close = |chunks: &mut BTreeMap<i64, Sealed>, run: Option<(String, i64, usize)>| {
        if let Some((source, chunk, start)) = run
            && let Some(sealed) = chunks.get_mut(&chunk)
        {
            put_quoted(&mut sealed.sources, &source);
            let _ = write!(sealed.sources, "{start};{};", sealed.packed.len());
        }
    };
    for (key, cells) in merged {
        let counts = encode(&cells);
        if counts.is_empty() {
            continue;
        }
        if run.as_ref().is_none_or(|(source, ..)| *source != key.0) {
            close(&mut chunks, run.take());
            let chunk = source_chunk(&key.0);
            let start = chunks.entry(chunk).or_default().packed.len();
            run = Some((key.0.clone(), chunk, start));
        }
        let Some((_, chunk, _)) = &run else { continue };
        let sealed = chunks.entry(*chunk).or_default();
        pack_row(&mut sealed.packed, &key, &counts);
        sealed.rows += 1;
    }
    close(&mut chunks, run);
    Some(chunks)
}

/// Call `each(source identifier, start, end)` for each source identifier of a sealed value's
/// index: its rows are `packed[start..end]`. The index is each source identifier quoted as in a
/// packed row, then its range as two decimals each ended by `;`. `false` when it is malformed.
/// A report of a few campaigns reads only their rows of a value that holds every campaign's.
pub(crate) fn each_source_range<'a>(
    index: &'a [u8],
    mut each: impl FnMut(Cow<'a, str>, usize, usize),
) -> bool {
    let mut at = 0;
    while at < index.len() {
        let entry = (|| {
            let source = quoted(index, &mut at)?;
            let start = usize::try_from(int(index, &mut at, b';')?).ok()?;
            let end = usize::try_from(int(index, &mut at, b';')?).ok()?;
            (start <= end).then_some((source, start, end))
        })();
        match entry {
            Some((source, start, end)) => each(source, start, end),
            None => return false,
        }
    }
    true
}

/// Every row of a packed value, or `None` when it is malformed.
pub(crate) fn packed_rows(bytes: &[u8]) -> Option<Vec<PackedRow<'_>>> {
    let mut rows = Vec::new();
    each_packed(bytes, |row| rows.push(row)).then_some(rows)
}

/// Whether a block whose rows were sealed into a value of `sealed_rows` rows (none yet: 0) is
/// sealed again now that `open_rows` rows were written to it since: once they are a quarter as
/// many. A seal rewrites the whole value, so resealing a block on every late postback would
/// rewrite it over and over; this way each row is rewritten a bounded number of times on
/// average, and a report reads under a quarter more rows than a fully sealed block holds.
pub(crate) fn reseal_due(open_rows: i64, sealed_rows: i64) -> bool {
    open_rows > 0 && open_rows.saturating_mul(4) >= sealed_rows
}

/// Consecutive blocks of one span and sign: `(span, first block, last block, sign)`.
pub(crate) type Run = (i64, i64, i64, i64);

/// Aligned blocks whose signed sum is exactly the days `from..=to`, with the fewest blocks: a
/// range may take a longer block and subtract what overhangs (days 2..=95 as days 2, 3 and 95
/// plus the 56-day blocks from days 4 and 60, less three weeks from day 95), since counts are
/// exact integers. A report reads every block once per key, so fewer blocks is fewer rows to
/// group: a 90-day range takes at most 12 blocks. Returned as runs of consecutive
/// blocks of one span and sign: `(span, first block, last block, sign)`.
pub(crate) fn blocks(from: i64, to: i64) -> Vec<Run> {
    let mut signed = cover(from, to + 1, SPANS.len() - 1);
    signed.sort_unstable_by_key(|(span, day, sign)| (*span, *sign, *day));
    let mut runs: Vec<Run> = Vec::new();
    for (span, day, sign) in signed {
        match runs.last_mut() {
            Some(run) if run.0 == span && run.3 == sign && run.2 + span == day => run.2 = day,
            _ => runs.push((span, day, day, sign)),
        }
    }
    runs
}

/// Each run of blocks cut into at most `count` pieces of whole blocks, as even as they come, each
/// `(span, first block, last block, sign)` like a run.
pub(crate) fn pieces(runs: &[Run], count: i64) -> Vec<Run> {
    let mut out = Vec::new();
    let count = count.max(1);
    for &(span, first, last, sign) in runs {
        let blocks = (last - first) / span + 1;
        let per_piece = (blocks + count - 1) / count;
        let mut start = first;
        while start <= last {
            let end = (start + (per_piece - 1) * span).min(last);
            out.push((span, start, end, sign));
            start = end + span;
        }
    }
    out
}

/// The fewest signed aligned blocks of `SPANS[..=level]` summing to the days `from..until`:
/// `(span, first day, sign)`. At each level both ends may stop short (the lower levels add the
/// rest) or overhang (the lower levels take the excess away); four choices per level, three
/// levels.
fn cover(from: i64, until: i64, level: usize) -> Vec<(i64, i64, i64)> {
    if from >= until {
        return Vec::new();
    }
    let span = SPANS[level];
    if level == 0 {
        return (from..until).map(|day| (span, day, 1)).collect();
    }
    let mut best = cover(from, until, level - 1);
    let floor = |day: i64| block_start(day, span);
    let ceil = |day: i64| floor(day + span - 1);
    for start in [ceil(from), floor(from)] {
        for end in [floor(until), ceil(until)] {
            if start >= end {
                continue;
            }
            let mut blocks: Vec<(i64, i64, i64)> =
                (0..(end - start) / span).map(|i| (span, start + i * span, 1)).collect();
            let mut edge = |a: i64, b: i64, sign: i64| {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let sign = if a <= b { sign } else { -sign };
                blocks
                    .extend(cover(lo, hi, level - 1).into_iter().map(|(s, d, n)| (s, d, n * sign)));
            };
            edge(from, start, 1);
            edge(end, until, 1);
            if blocks.len() < best.len() {
                best = blocks;
            }
        }
    }
    best
}

/// For each cell, the totals count columns one postback in that cell adds 1 to (a table built
/// once, so summing a cell costs a few additions), as one array of columns with each cell's
/// start: summing a report reads it once per cell, and a vector per cell cost a pointer to
/// follow to memory of its own each time.
struct Contributions {
    /// `columns[starts[cell]..starts[cell + 1]]` are the cell's columns.
    starts: Vec<u32>,
    columns: Vec<u8>,
}

impl Contributions {
    fn of(&self, cell: u32) -> &[u8] {
        let cell = cell as usize;
        match (self.starts.get(cell), self.starts.get(cell + 1)) {
            (Some(&from), Some(&to)) => self.columns.get(from as usize..to as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

static TOTALS_CONTRIBUTIONS: LazyLock<Contributions> = LazyLock::new(|| {
    let mut key = blank_key(0);
    let mut table = Contributions { starts: vec![0], columns: Vec::new() };
    for index in 0..BASE_CELLS {
        let cell = Cell::from_index(index);
        cell.fill(&mut key);
        let counts = totals::counts_of(&key, 1, i64::from(cell.mismatched));
        for (column, _) in counts.iter().enumerate().filter(|(_, n)| **n != 0) {
            table.columns.push(u8::try_from(column).unwrap_or(u8::MAX));
        }
        table.starts.push(u32::try_from(table.columns.len()).unwrap_or(u32::MAX));
    }
    table
});

/// A report group as a rollup row names it, its text borrowed from the row: a group already
/// summed is found without copying any text, and a report by day and campaign reads a quarter
/// of a million rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GroupView<'a> {
    pub(crate) day: i64,
    pub(crate) install_day: i64,
    pub(crate) ad_network_id: &'a str,
    pub(crate) source_identifier: &'a str,
    pub(crate) campaign_id: i64,
    pub(crate) protocol: &'a str,
    pub(crate) version: &'a str,
    pub(crate) interaction: &'a str,
}

impl<'a> GroupView<'a> {
    fn of(group: &'a ReportGroup) -> Self {
        Self {
            day: group.day,
            install_day: group.install_day,
            ad_network_id: &group.ad_network_id,
            source_identifier: &group.source_identifier,
            campaign_id: group.campaign_id,
            protocol: &group.protocol,
            version: &group.version,
            interaction: &group.interaction,
        }
    }

    pub(crate) fn to_group(self) -> ReportGroup {
        ReportGroup {
            day: self.day,
            install_day: self.install_day,
            ad_network_id: self.ad_network_id.to_owned(),
            source_identifier: self.source_identifier.to_owned(),
            campaign_id: self.campaign_id,
            protocol: self.protocol.to_owned(),
            version: self.version.to_owned(),
            interaction: self.interaction.to_owned(),
        }
    }
}

/// Report groups numbered in the order they first come, each found by the hash of its
/// [`GroupView`]: a packed row of a group already seen copies none of its text.
#[derive(Default)]
struct GroupNumbers {
    groups: Vec<ReportGroup>,
    numbers: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl GroupNumbers {
    /// The group's number, and whether it was new.
    fn number(&mut self, view: GroupView<'_>) -> (usize, bool) {
        fn of(groups: &[ReportGroup], number: u32) -> Option<GroupView<'_>> {
            groups.get(number as usize).map(GroupView::of)
        }
        let (groups, hasher) = (&mut self.groups, &self.hasher);
        let entry = self.numbers.entry(
            hasher.hash_one(view),
            |number| of(groups, *number) == Some(view),
            |number| of(groups, *number).map_or(0, |g| hasher.hash_one(g)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(entry) => (*entry.get() as usize, false),
            hashbrown::hash_table::Entry::Vacant(entry) => {
                let number = groups.len();
                groups.push(view.to_group());
                entry.insert(u32::try_from(number).unwrap_or(u32::MAX));
                (number, true)
            }
        }
    }
}

/// Sums rollup cells into totals rows: each group's row of a window is made when a cell of
/// that window first comes, so a group seen in one window costs one row, not three.
#[derive(Default)]
pub(crate) struct TotalsSums {
    groups: GroupNumbers,
    /// Each group's row of each window (`u32::MAX`: none yet).
    windows: Vec<[u32; WINDOWS as usize]>,
    rows: Vec<TotalsEntry>,
}

/// A group's entry in [`TotalsSums`].
pub(crate) struct GroupTotals<'a> {
    group: u32,
    windows: &'a mut [u32; WINDOWS as usize],
    rows: &'a mut Vec<TotalsEntry>,
}

impl TotalsSums {
    pub(crate) fn group(&mut self, view: GroupView<'_>) -> GroupTotals<'_> {
        let (number, new) = self.groups.number(view);
        if new {
            self.windows.push([u32::MAX; WINDOWS as usize]);
        }
        GroupTotals {
            group: u32::try_from(number).unwrap_or(u32::MAX),
            windows: &mut self.windows[number],
            rows: &mut self.rows,
        }
    }

    /// Add another piece's sums to these (each piece of a report is summed on its own thread).
    pub(crate) fn merge(&mut self, other: Self) {
        if self.groups.groups.is_empty() {
            *self = other;
            return;
        }
        for (group, window, counts) in &other.rows {
            let Some(view) = other.groups.groups.get(*group as usize).map(GroupView::of) else {
                continue;
            };
            let mut sums = self.group(view);
            let row = sums.row_of(usize::from(*window));
            if let Some((_, _, mine)) = sums.rows.get_mut(row) {
                for (mine, theirs) in mine.iter_mut().zip(counts) {
                    *mine += theirs;
                }
            }
        }
    }

    /// The totals rows (one per group and window), without those whose counts cancelled out
    /// (counts subtracted by overhanging blocks, or later moved to another period).
    pub(crate) fn finish(mut self) -> TotalsTable {
        self.rows.retain(|(_, _, counts)| counts.iter().any(|n| *n != 0));
        TotalsTable::new(self.groups.groups, self.rows)
    }
}

impl GroupTotals<'_> {
    /// The group's row of `window`, made when first asked for.
    fn row_of(&mut self, window: usize) -> usize {
        match self.windows.get(window) {
            Some(&u32::MAX) => {
                self.rows.push((self.group, window as u8, [0; totals::COUNTS]));
                let row = self.rows.len() - 1;
                self.windows[window] = u32::try_from(row).unwrap_or(u32::MAX);
                row
            }
            Some(&row) => row as usize,
            None => usize::MAX,
        }
    }

    /// Add `n` postbacks of `cell` to the totals counts of its window.
    pub(crate) fn add(&mut self, cell: u32, n: i64) {
        let row = self.row_of(Cell::window_of(cell));
        let Some((_, _, counts)) = self.rows.get_mut(row) else { return };
        for column in TOTALS_CONTRIBUTIONS.of(Slots::base(cell)) {
            if let Some(count) = counts.get_mut(usize::from(*column)) {
                *count += n;
            }
        }
    }
}

/// Sums rollup cells by cell, per group: what reports grouped by a value read.
#[derive(Default)]
pub(crate) struct CellSums {
    groups: GroupNumbers,
    cells: Vec<foldhash::HashMap<u32, i64>>,
}

impl CellSums {
    /// The group's counts by cell (without the cell's slots).
    pub(crate) fn group(&mut self, view: GroupView<'_>) -> &mut foldhash::HashMap<u32, i64> {
        let (number, new) = self.groups.number(view);
        if new {
            self.cells.push(foldhash::HashMap::default());
        }
        &mut self.cells[number]
    }

    /// Add another piece's sums to these (each piece of a report is summed on its own thread).
    pub(crate) fn merge(&mut self, other: Self) {
        if self.groups.groups.is_empty() {
            *self = other;
            return;
        }
        for (group, cells) in other.groups.groups.iter().zip(other.cells) {
            let mine = self.group(GroupView::of(group));
            for (cell, n) in cells {
                *mine.entry(cell).or_insert(0) += n;
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<CellGroup> {
        cell_groups(self.groups.groups.into_iter().zip(self.cells))
    }
}

/// Cell groups (one per group, its cells decoded): what reports grouped by a value read.
pub(crate) fn cell_groups<C: IntoIterator<Item = (u32, i64)>>(
    groups: impl IntoIterator<Item = (ReportGroup, C)>,
) -> Vec<CellGroup> {
    groups
        .into_iter()
        .map(|(group, cells)| CellGroup {
            group,
            cells: cells
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .map(|(index, n)| {
                    let cell = Cell::from_index(index);
                    (cell.report_key(), n, if cell.mismatched { n } else { 0 })
                })
                .collect(),
        })
        .collect()
}

fn blank_key(app_id: i64) -> AggregateKey {
    AggregateKey {
        app_id,
        arrival_day: 0,
        install_day: 0,
        ad_network_id: String::new(),
        source_identifier: String::new(),
        campaign_id: -1,
        protocol: String::new(),
        version: String::new(),
        window: 0,
        interaction: String::new(),
        conversion_type: String::new(),
        did_win: false,
        development: false,
        fine_value: -1,
        coarse_value: String::new(),
        tier_hint: -1,
        outcome: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_blocks_sum_to_exactly_the_range() {
        let mut worst = 0;
        for from in -64..72 {
            for to in (from..from + 100).chain([from + 399]) {
                let runs = blocks(from, to);
                let mut net: BTreeMap<i64, i64> = BTreeMap::new();
                let mut count = 0;
                for (span, first, last, sign) in runs {
                    assert!(SPANS.contains(&span) && sign.abs() == 1);
                    let mut day = first;
                    while day <= last {
                        assert_eq!(block_start(day, span), day, "aligned");
                        for d in day..day + span {
                            *net.entry(d).or_insert(0) += sign;
                        }
                        count += 1;
                        day += span;
                    }
                }
                net.retain(|_, n| *n != 0);
                assert_eq!(
                    net.into_iter().collect::<Vec<_>>(),
                    (from..=to).map(|d| (d, 1)).collect::<Vec<_>>(),
                    "{from}..={to}"
                );
                if to - from == 89 {
                    worst = worst.max(count);
                }
            }
        }
        // Signed, a 90-day range takes at most 12 blocks.
        assert!(worst <= 12, "a 90-day range took {worst} blocks");
        // Days 2..=95: days 2, 3 and 95, the 56-day blocks from 4 and 60 less the three weeks
        // from day 95.
        assert_eq!(
            blocks(2, 95),
            vec![(1, 2, 3, 1), (1, 95, 95, 1), (7, 95, 109, -1), (56, 4, 60, 1)]
        );
    }

    #[test]
    fn a_week_is_one_block_and_a_month_a_few() {
        use crate::store::DayBucket;
        let monday =
            crate::skan::day_number(chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("a date"));
        for week in 0..60 {
            let first = monday + 7 * week;
            assert_eq!(blocks(first, first + 6), vec![(7, first, first, 1)]);
            assert_eq!(DayBucket::Week.split(first + 2, first + 20).len(), 3);
        }
        let months = DayBucket::Month.split(monday + 3, monday + 400);
        assert_eq!(months.len(), 14);
        let block_count = |runs: Vec<Run>| -> i64 {
            runs.iter().map(|(span, first, last, _)| (last - first) / span + 1).sum()
        };
        let worst = months.iter().map(|&(first, last)| block_count(blocks(first, last))).max();
        assert_eq!(worst, Some(9), "a month's blocks, against up to 31 single days");
    }

    #[test]
    fn pieces_cover_each_run_exactly_once_in_even_aligned_reads() {
        for from in -20..70 {
            for to in [from, from + 9, from + 89, from + 399] {
                let runs = blocks(from, to);
                let blocks_of = |runs: &[(i64, i64, i64, i64)]| {
                    let mut all: Vec<(i64, i64, i64)> = runs
                        .iter()
                        .flat_map(|&(span, first, last, sign)| {
                            (0..=(last - first) / span).map(move |i| (span, first + i * span, sign))
                        })
                        .collect();
                    all.sort_unstable();
                    all
                };
                for count in 1..=4 {
                    let pieces = pieces(&runs, count);
                    assert_eq!(blocks_of(&pieces), blocks_of(&runs), "{from}..={to}");
                    assert!(pieces.len() <= runs.len() * count as usize);
                    for (span, first, last, _) in pieces {
                        assert!(first <= last && (last - first) % span == 0);
                    }
                }
            }
        }
        // 90 single days in two reads of 45; four weeks in two of two.
        assert_eq!(
            pieces(&[(1, 0, 89, 1), (7, 60, 81, -1)], 2),
            vec![(1, 0, 44, 1), (1, 45, 89, 1), (7, 60, 67, -1), (7, 74, 81, -1),]
        );
    }

    #[test]
    fn cells_survive_encoding_and_name_the_key_they_came_from() {
        let mut key = blank_key(1);
        key.did_win = true;
        key.conversion_type = "redownload".into();
        key.tier_hint = 2;
        key.outcome = "valid".into();
        key.fine_value = 63;
        key.window = 1;
        let cell = Cell::of(&key, true);
        assert_eq!(Cell::from_index(cell.index()), cell);
        let mut back = blank_key(1);
        cell.fill(&mut back);
        assert_eq!(back, key);
        key.fine_value = -1;
        key.coarse_value = "medium".into();
        let mut back = blank_key(1);
        Cell::of(&key, false).fill(&mut back);
        assert_eq!(back, key);

        let cells: Cells = [(0, 5), (17, -3), (16_000, 1 << 40)].into_iter().collect();
        let mut decoded = Cells::new();
        assert!(decode_each(&encode(&cells), |c, n| {
            decoded.insert(c, n);
        }));
        assert_eq!(decoded, cells);
        assert!(!decode_each(&[0x80], |_, _| {}), "a truncated varint is malformed");
        // Blobs joined by a 0x00 byte (as a row's appended runs are stored) decode as one list.
        let other: Cells = [(0, 1), (17, 2)].into_iter().collect();
        let mut joined = encode(&cells);
        assert!(!joined.contains(&0), "no zero byte inside a blob");
        joined.push(0);
        joined.extend(encode(&other));
        let mut sums = Cells::new();
        assert!(decode_each(&joined, |c, n| *sums.entry(c).or_insert(0) += n));
        assert_eq!(sums, [(0, 6), (17, -1), (16_000, 1 << 40)].into_iter().collect());
    }

    fn valid_winning(window: i64, fine_value: i64) -> AggregateKey {
        AggregateKey { window, did_win: true, outcome: "valid".into(), fine_value, ..blank_key(1) }
    }

    #[test]
    fn a_source_row_keeps_known_versions_in_its_cells_and_others_in_its_key() {
        let mut rows = BTreeMap::new();
        let mut key = valid_winning(2, 7);
        key.protocol = "skadnetwork".into();
        key.source_identifier = "1234".into();
        for (version, interaction, n) in
            [("4.0", "view", 2), ("4.0", "click", 3), ("5.0", "view", 4)]
        {
            key.version = version.into();
            key.interaction = interaction.into();
            add(&mut rows, &key, n, 0, NO_PERIOD);
        }
        let mut seen = BTreeMap::new();
        for (row, cells) in rows.iter().filter(|(k, _)| k.family == "source" && k.span == 1) {
            assert_eq!(row.source_identifier, "1234");
            for (&cell, &n) in cells {
                let resolved = Slots::of_number(Slots::number_of_cell(cell)).resolve((
                    &row.protocol,
                    &row.version,
                    &row.interaction,
                ));
                let base = Cell::from_index(cell);
                assert_eq!((base.window, base.value), (2, 8), "the slots leave the rest alone");
                *seen.entry((row.date_kind, resolved)).or_insert(0) += n;
            }
        }
        for kind in ["arrival", "install"] {
            assert_eq!(seen[&(kind, ("skadnetwork", "4.0", "view"))], 2);
            assert_eq!(seen[&(kind, ("skadnetwork", "4.0", "click"))], 3);
            assert_eq!(seen[&(kind, ("skadnetwork", "5.0", "view"))], 4);
        }
        // The unknown version went to a row of its own, with the version in the key.
        let unknown: Vec<_> = rows
            .keys()
            .filter(|k| k.family == "source" && k.span == 1 && !k.version.is_empty())
            .map(|k| (k.date_kind, k.protocol.as_str(), k.version.as_str()))
            .collect();
        assert_eq!(unknown, [("arrival", "skadnetwork", "5.0"), ("install", "skadnetwork", "5.0")]);
        // Version rows keep everything in the key and their cells unslotted.
        for (row, cells) in rows.iter().filter(|(k, _)| k.family == "version") {
            assert!(!row.version.is_empty());
            assert!(cells.keys().all(|c| Slots::base(*c) == *c));
        }
    }

    #[test]
    fn a_cell_adds_to_the_totals_columns_its_aggregate_would_in_its_windows_row() {
        let mut key = valid_winning(0, 12);
        key.conversion_type = "download".into();
        key.tier_hint = 3;
        let (a, b) = ["a", "b"]
            .map(|network| ReportGroup { ad_network_id: network.into(), ..Default::default() })
            .into();
        let group = |network: &str| GroupView::of(if network == "a" { &a } else { &b });
        let mut sums = TotalsSums::default();
        sums.group(group("a")).add(Cell::of(&key, true).index(), 5);
        let mut late = key.clone();
        late.window = 2;
        let cell = Cell::of(&late, false).index();
        assert_eq!(Cell::window_of(cell), 2);
        sums.group(group("a")).add(cell, 1);
        // Counts that cancel out leave no row.
        sums.group(group("b")).add(cell, 3);
        sums.group(group("b")).add(cell, -3);
        let table = sums.finish();
        let rows: Vec<_> =
            table.rows().map(|r| (r.group.ad_network_id.clone(), r.window, *r.counts())).collect();
        assert_eq!(
            rows,
            [
                ("a".to_owned(), 0, totals::counts_of(&key, 5, 5)),
                ("a".to_owned(), 2, totals::counts_of(&late, 1, 0)),
            ]
        );
        assert!(rows[0].2.iter().filter(|n| **n == 5).count() >= 4, "valid, install, tier, value");
    }

    #[test]
    fn every_cell_adds_exactly_its_aggregates_totals_counts() {
        let group = ReportGroup::default();
        let mut key = blank_key(0);
        for index in 0..BASE_CELLS {
            let cell = Cell::from_index(index);
            cell.fill(&mut key);
            let mut sums = TotalsSums::default();
            // In a version and interaction slot, which the totals do not keep.
            sums.group(GroupView::of(&group)).add(index + 4 * BASE_CELLS, 3);
            let table = sums.finish();
            let rows: Vec<_> = table.rows().map(|r| (r.window, *r.counts())).collect();
            let expected = totals::counts_of(&key, 3, 3 * i64::from(cell.mismatched));
            assert_eq!(rows, [(i64::from(cell.window), expected)], "cell {index}: {cell:?}");
        }
    }

    #[test]
    fn packed_rows_read_back_field_for_field() {
        let counts = encode(&[(3, 2), (900, -1)].into_iter().collect());
        let mut packed = b"20736;-1;-1;n1.skadn',1234',skn',4.0',click',".to_vec();
        packed.extend(format!("{}:", counts.len()).as_bytes());
        packed.extend(&counts);
        // Quotes doubled inside a text, a text ending in one, a text holding the separators.
        packed.extend(b"5;17;100;a'';',it''',;:,',',',0:");
        let mut rows = Vec::new();
        assert!(each_packed(&packed, |row| rows.push(row)));
        assert_eq!(rows.len(), 2);
        let first = &rows[0];
        assert_eq!(
            (first.day, first.campaign_id, first.period_day, &*first.ad_network_id),
            (20736, -1, -1, "n1.skadn")
        );
        assert_eq!(
            (&*first.source_identifier, &*first.protocol, &*first.version, &*first.interaction),
            ("1234", "skn", "4.0", "click")
        );
        assert!(matches!(first.ad_network_id, Cow::Borrowed(_)), "no copy without a quote");
        assert_eq!(first.counts, &counts[..]);
        let second = &rows[1];
        assert_eq!((second.day, second.campaign_id, &*second.ad_network_id), (5, 17, "a';"));
        assert_eq!((&*second.source_identifier, &*second.protocol), ("it'", ";:,"));
        assert!(second.counts.is_empty() && second.version.is_empty());
        assert!(each_packed(b"", |_| panic!("no rows")));
        for bad in [
            &b"5;17;100;a',"[..],
            b"5;x;1;",
            b"5;1;1;a',b',c',d',e',9:abc",
            b"5;1;1;a',b',c',d',e',-1:",
            b"5;1;1;a'x',b',c',d',e',0:",
            b"5;1;1;a',b',c',d',e'",
        ] {
            assert!(!each_packed(bad, |_| {}), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn merging_packed_rows_sums_them_by_key_and_indexes_each_source_identifier() {
        type Written<'a> = (i64, &'a str, &'a str, &'a [(u32, i64)]);
        let written: [Written<'_>; 7] = [
            (7, "a'b", "12", &[(3, 2), (900, 1)]),
            (8, "n", "12", &[(3, 5)]),
            (7, "a'b", "12", &[(3, 1), (900, -1)]),
            // Two runs of one row, as appends leave them: they cancel, and the row goes.
            (9, "n", "3'4", &[(1, 4)]),
            (9, "n", "3'4", &[(1, -4)]),
            (10, "cut\0here", "12", &[(2, 1)]),
            (11, "n", "05", &[(2, 6)]),
        ];
        let blobs: Vec<Vec<u8>> =
            written.iter().map(|(.., cells)| encode(&cells.iter().copied().collect())).collect();
        let rows =
            written.iter().zip(&blobs).map(|((campaign, network, source, _), counts)| PackedRow {
                day: 5,
                campaign_id: *campaign,
                period_day: -1,
                ad_network_id: Cow::Borrowed(*network),
                source_identifier: Cow::Borrowed(*source),
                protocol: Cow::Borrowed(""),
                version: Cow::Borrowed(""),
                interaction: Cow::Borrowed(""),
                counts,
            });
        let chunks = merge_packed(rows).unwrap();
        type Summed = (String, i64, String, Vec<(u32, i64)>);
        let read = |packed: &[u8]| -> Vec<Summed> {
            packed_rows(packed)
                .unwrap()
                .iter()
                .map(|r| {
                    let mut cells = Vec::new();
                    assert!(decode_each(r.counts, |c, n| cells.push((c, n))));
                    (
                        r.source_identifier.to_string(),
                        r.campaign_id,
                        r.ad_network_id.to_string(),
                        cells,
                    )
                })
                .collect()
        };
        let expected: Vec<Summed> = vec![
            ("05".into(), 11, "n".into(), vec![(2, 6)]),
            ("12".into(), 7, "a'b".into(), vec![(3, 3)]),
            ("12".into(), 8, "n".into(), vec![(3, 5)]),
            ("12".into(), 10, "cut".into(), vec![(2, 1)]),
        ];
        assert_ne!(source_chunk("05"), source_chunk("12"), "the example spans two chunks");
        let mut keys = vec![source_chunk("05"), source_chunk("12")];
        keys.sort_unstable();
        assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), keys);
        let mut all = Vec::new();
        let mut ranges = Vec::new();
        for (chunk, sealed) in &chunks {
            let rows = read(&sealed.packed);
            assert!(rows.iter().all(|r| source_chunk(&r.0) == *chunk), "{rows:?}");
            assert_eq!(sealed.rows, rows.len());
            all.extend(rows);
            assert!(each_source_range(&sealed.sources, |source, start, end| {
                ranges.push((source.to_string(), read(&sealed.packed[start..end])));
            }));
        }
        all.sort();
        assert_eq!(all, expected);
        ranges.sort();
        assert_eq!(
            ranges,
            [("05".to_owned(), expected[..1].to_vec()), ("12".to_owned(), expected[1..].to_vec())]
        );
        // Sealing a sealed value again changes nothing.
        let sealed = &chunks[&source_chunk("12")];
        let again = merge_packed(packed_rows(&sealed.packed).unwrap()).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again.get(&source_chunk("12")), Some(sealed));
        assert!((0..SOURCE_CHUNKS).contains(&source_chunk("")));
        let broken =
            PackedRow { counts: &[0x80], ..packed_rows(&sealed.packed).unwrap()[0].clone() };
        assert!(merge_packed([broken]).is_none());
        assert!(!each_source_range(b"12',9;3;", |_, _, _| {}));
        assert!(!each_source_range(b"12',3;", |_, _, _| {}));
    }

    #[test]
    fn a_block_is_resealed_once_its_open_rows_are_a_quarter_of_its_sealed_ones() {
        assert!(reseal_due(1, 0));
        assert!(!reseal_due(0, 0));
        assert!(!reseal_due(24, 100));
        assert!(reseal_due(25, 100));
    }

    #[test]
    fn the_period_is_the_start_of_the_version_in_effect() {
        let starts = [100, 200];
        assert_eq!(period_day(&starts, 99), NO_PERIOD);
        assert_eq!(period_day(&starts, 100), 100);
        assert_eq!(period_day(&starts, 199), 100);
        assert_eq!(period_day(&starts, 500), 200);
        assert_eq!(period_day(&[], 500), NO_PERIOD);
    }
}

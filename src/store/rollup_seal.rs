//! Sealing the rollup's ended blocks: a block's rows of one network, family and development flag
//! folded into a few packed values in `report_rollup_sealed` (migration 0021), one per chunk of
//! source identifiers (`rollup::source_chunk`).
//!
//! Why: a campaign report over 90 days reads every campaign's row in every block it covers, tens
//! of thousands of rows, and each costs the database a microsecond or more to pack (see
//! `reports.rs`). Sealed, the same counts are a few hundred values. Writers never touch a sealed
//! value: a postback counted in a sealed block appends to `report_rollup` as before, and reports
//! add both tables, so a row is counted once whichever table holds it. A seal deletes the rows it
//! folds in the same transaction, so a report (one statement per run of blocks) sees each row in
//! exactly one table.

use sqlx::{QueryBuilder, Row as _};
use std::borrow::Cow;

use super::{SealSummary, StoreError, rollup};

/// The columns that name one sealed block (its values differ by `chunk`), in the order
/// [`block_of`] reads them.
const BLOCK_COLUMNS: &str = "app_id, date_kind, span, day, ad_network_id, family, development";

/// One sealed block's key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    app_id: i64,
    date_kind: String,
    span: i64,
    day: i64,
    ad_network_id: String,
    family: String,
    development: bool,
}

/// One rollup row as a seal deletes it.
type OpenRow = (i64, i64, i64, String, String, String, String, String, Vec<u8>);

super::sql::sql_impl! {
    pub(crate) async fn seal_rollup(&self, before_day: i64) -> Result<SealSummary, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {BLOCK_COLUMNS}, COUNT(*) FROM report_rollup WHERE day + span <= "
        ));
        q.push_bind(before_day).push(format!(" GROUP BY {BLOCK_COLUMNS}"));
        let open = q.build().fetch_all(&self.pool).await?;
        let mut summary = SealSummary::default();
        for row in &open {
            let block = Self::block_of(row)?;
            let rows: i64 = row.try_get(7)?;
            // How many rows the block's values hold already: one look-up by key per block with
            // open rows, not a scan of every sealed value on every pass.
            let mut q = QueryBuilder::<DB>::new(
                "SELECT CAST(SUM(packed_rows) AS BIGINT) FROM report_rollup_sealed WHERE app_id = ",
            );
            Self::push_block(&mut q, &block, Self::condition);
            let sealed: Option<i64> = q.build_query_scalar().fetch_one(&self.pool).await?;
            if !rollup::reseal_due(rows, sealed.unwrap_or(0)) {
                continue;
            }
            let started = std::time::Instant::now();
            let folded = Self::seal_block(&self.writer, &block).await?;
            if folded > 0 {
                summary.blocks += 1;
                summary.rows += folded;
                summary.longest = summary.longest.max(started.elapsed());
            }
        }
        Ok(summary)
    }

    fn block_of(row: &DB::Row) -> Result<Block, StoreError> {
        Ok(Block {
            app_id: row.try_get(0)?,
            date_kind: row.try_get(1)?,
            span: row.try_get(2)?,
            day: row.try_get(3)?,
            ad_network_id: row.try_get(4)?,
            family: row.try_get(5)?,
            development: row.try_get(6)?,
        })
    }

    /// The block's key in [`BLOCK_COLUMNS`] order, its app first (after a statement's
    /// `WHERE app_id = ` or `VALUES (`), each other value after `before(its column)`.
    fn push_block(q: &mut QueryBuilder<DB>, block: &Block, before: fn(&str) -> String) {
        q.push_bind(block.app_id);
        q.push(before("date_kind")).push_bind(block.date_kind.clone());
        q.push(before("span")).push_bind(block.span);
        q.push(before("day")).push_bind(block.day);
        q.push(before("ad_network_id")).push_bind(block.ad_network_id.clone());
        q.push(before("family")).push_bind(block.family.clone());
        q.push(before("development")).push_bind(block.development);
    }

    /// For [`Self::push_block`] in a `WHERE` clause.
    fn condition(column: &str) -> String {
        format!(" AND {column} = ")
    }

    /// Fold one block's rollup rows into its sealed values in one transaction; the number of rows
    /// folded (0 when another receiver sealed the block first: it is left for the next pass).
    async fn seal_block(writer: &sqlx::Pool<DB>, block: &Block) -> Result<u64, StoreError> {
        let mut tx = DB::begin_write(writer).await?;
        let mut q = QueryBuilder::<DB>::new("DELETE FROM report_rollup WHERE app_id = ");
        Self::push_block(&mut q, block, Self::condition);
        q.push(
            " RETURNING day, campaign_id, period_day, ad_network_id, source_identifier, \
             protocol, version, interaction, counts",
        );
        let open: Vec<OpenRow> = q
            .build()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                    row.try_get(7)?,
                    row.try_get(8)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        if open.is_empty() {
            return Ok(0);
        }
        let mut q =
            QueryBuilder::<DB>::new("SELECT chunk, packed FROM report_rollup_sealed WHERE app_id = ");
        Self::push_block(&mut q, block, Self::condition);
        q.push(DB::LOCK_ROW);
        let existing: Vec<(i64, Vec<u8>)> = q
            .build()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut earlier = Vec::new();
        for (_, packed) in &existing {
            earlier.extend(rollup::packed_rows(packed).ok_or_else(|| {
                StoreError::Corrupt(format!("report_rollup_sealed value {block:?} is malformed"))
            })?);
        }
        let folded = open.iter().map(
            |(day, campaign, period, network, source, protocol, version, interaction, counts)| {
                rollup::PackedRow {
                    day: *day,
                    campaign_id: *campaign,
                    period_day: *period,
                    ad_network_id: Cow::Borrowed(network),
                    source_identifier: Cow::Borrowed(source),
                    protocol: Cow::Borrowed(protocol),
                    version: Cow::Borrowed(version),
                    interaction: Cow::Borrowed(interaction),
                    counts,
                }
            },
        );
        let mut chunks = rollup::merge_packed(earlier.into_iter().chain(folded)).ok_or_else(|| {
            StoreError::Corrupt(format!("report_rollup rows of {block:?} hold a malformed blob"))
        })?;
        // A chunk whose rows all cancelled out is written empty.
        for (chunk, _) in &existing {
            chunks.entry(*chunk).or_default();
        }
        for (chunk, sealed) in &chunks {
            let rows = i64::try_from(sealed.rows).unwrap_or(i64::MAX);
            if existing.iter().any(|(c, _)| c == chunk) {
                let mut q =
                    QueryBuilder::<DB>::new("UPDATE report_rollup_sealed SET packed_rows = ");
                q.push_bind(rows).push(", packed = ").push_bind(sealed.packed.as_slice());
                q.push(", source_index = ").push_bind(sealed.sources.as_slice());
                q.push(" WHERE app_id = ");
                Self::push_block(&mut q, block, Self::condition);
                q.push(" AND chunk = ").push_bind(*chunk);
                q.build().execute(&mut *tx).await?;
                continue;
            }
            let mut q = QueryBuilder::<DB>::new(format!(
                "INSERT INTO report_rollup_sealed ({BLOCK_COLUMNS}, chunk, packed_rows, packed, \
                 source_index) VALUES ("
            ));
            Self::push_block(&mut q, block, |_| ", ".to_owned());
            q.push(", ").push_bind(*chunk);
            q.push(", ").push_bind(rows).push(", ").push_bind(sealed.packed.as_slice());
            q.push(", ").push_bind(sealed.sources.as_slice());
            q.push(format!(") ON CONFLICT ({BLOCK_COLUMNS}, chunk) DO NOTHING"));
            let written = q.build().execute(&mut *tx).await?;
            if DB::rows_affected(&written) == 0 {
                // Another receiver sealed this block since the read above; rolling back keeps
                // the rows where they were.
                tx.rollback().await?;
                return Ok(0);
            }
        }
        tx.commit().await?;
        Ok(u64::try_from(open.len()).unwrap_or(u64::MAX))
    }
}

//! Recording postbacks in SQL: new postbacks and receipts many rows per statement, copies
//! reconciled one at a time, the counts they move and the outbox written in the same transaction.

use sqlx::{FromRow, QueryBuilder, Transaction};

use super::sql::{Deltas, statement_chunks, upsert_head};
use super::{
    AggregateKey, IngestItem, NewPostback, PostbackQuery, ReceiptInput, ReceiptResult,
    RecordOutcome, StoreError, StoredPostback, StoredReceipt, UnsignedValues,
};
use crate::domain::postback::{CopyComparison, compare_copies};
use crate::error_body::ErrorBody;
use crate::skan::{CoarseValue, InteractionType, OutcomeClass};

pub(super) const POSTBACK_COLUMNS: &str = "id, dedup_key, protocol, version, ad_network_id, app_id, \
     transaction_id, source_identifier, campaign_id, source_app_id, source_domain, \
     conversion_window, did_win, conversion_type, fidelity_type, interaction, fine_value, \
     coarse_value, tier_hint, country_code, outcome, reason_code, reason_message, development, \
     key_name, values_channel, unsigned_mismatch, first_received_at, receipt_count, arrival_day, \
     install_from, install_to, install_day";

const INSERT_POSTBACK: &str = "INSERT INTO postbacks (identity_key, dedup_key, protocol, version, \
     ad_network_id, app_id, transaction_id, source_identifier, campaign_id, source_app_id, \
     source_domain, conversion_window, did_win, conversion_type, fidelity_type, interaction, \
     fine_value, coarse_value, tier_hint, country_code, outcome, reason_code, reason_message, \
     development, key_name, values_channel, first_received_at, arrival_day, install_from, \
     install_to, install_day) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31) \
     ON CONFLICT (app_id, identity_key) DO NOTHING RETURNING id";

const SELECT_FOR_COPY: &str = "SELECT id, fine_value, coarse_value, interaction, values_channel, \
     unsigned_mismatch, app_id, arrival_day, install_day, ad_network_id, source_identifier, \
     campaign_id, protocol, version, conversion_window, fidelity_type, conversion_type, did_win, \
     development, tier_hint, outcome, first_received_at FROM postbacks \
     WHERE app_id = $1 AND identity_key = $2";

const MOVE_FIRST_ARRIVAL: &str = "UPDATE postbacks SET first_received_at = $2, arrival_day = $3, \
     install_from = $4, install_to = $5, install_day = $6 WHERE app_id = $7 AND id = $1";

const UPDATE_ON_COPY: &str = "UPDATE postbacks SET receipt_count = receipt_count + 1, \
     fine_value = $2, coarse_value = $3, interaction = $4, values_channel = $5, \
     unsigned_mismatch = (unsigned_mismatch OR $6) WHERE app_id = $7 AND id = $1";

const INSERT_RECEIPT: &str = "INSERT INTO receipts (postback_id, received_at, channel, \
     source_name, result, error_code, error_field, error_message, raw, app_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

const SELECT_RECEIPTS: &str = "SELECT id, postback_id, received_at, channel, source_name, result, \
     error_code, error_field, error_message, raw FROM receipts WHERE postback_id = $1 ORDER BY id";

const SELECT_RECEIPTS_IN_APP: &str = "SELECT id, postback_id, received_at, channel, source_name, \
     result, error_code, error_field, error_message, raw FROM receipts \
     WHERE app_id = $1 AND postback_id = $2 ORDER BY id";

#[derive(FromRow, Clone)]
pub(super) struct CopyRow {
    id: i64,
    fine_value: Option<i64>,
    coarse_value: Option<String>,
    interaction: Option<String>,
    values_channel: String,
    unsigned_mismatch: bool,
    app_id: i64,
    arrival_day: i64,
    install_day: i64,
    ad_network_id: String,
    source_identifier: Option<String>,
    campaign_id: Option<i64>,
    protocol: String,
    version: Option<String>,
    conversion_window: i64,
    fidelity_type: Option<i64>,
    conversion_type: Option<String>,
    did_win: bool,
    development: bool,
    tier_hint: Option<i64>,
    outcome: String,
    first_received_at: i64,
}

impl CopyRow {
    /// The aggregate key the stored postback is currently counted under.
    fn aggregate_key(&self, values: &UnsignedValues) -> AggregateKey {
        AggregateKey {
            app_id: self.app_id,
            arrival_day: self.arrival_day,
            install_day: self.install_day,
            ad_network_id: self.ad_network_id.clone(),
            source_identifier: self.source_identifier.clone().unwrap_or_default(),
            campaign_id: self.campaign_id.unwrap_or(-1),
            protocol: self.protocol.clone(),
            version: self.version.clone().unwrap_or_default(),
            window: self.conversion_window,
            interaction: String::new(),
            conversion_type: self.conversion_type.clone().unwrap_or_default(),
            did_win: self.did_win,
            development: self.development,
            fine_value: -1,
            coarse_value: String::new(),
            tier_hint: self.tier_hint.unwrap_or(-1),
            outcome: self.outcome.clone(),
        }
        .with_values(values, self.fidelity_type)
    }
}

/// A receipt written with the group's new postbacks: item index, receipt, postback (app and id),
/// result, error.
type FreshReceipt<'a> =
    (usize, &'a ReceiptInput, Option<(i64, i64)>, ReceiptResult, Option<&'a ErrorBody>);

/// Times the phases of a postback transaction into `skan_record_phase_seconds{phase}`: the
/// single writer is what bounds ingest, and this says which part of its time goes where.
struct PhaseTimer(std::time::Instant);

impl PhaseTimer {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    /// The phase that ends now began where the last one ended.
    fn end(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("skan_record_phase_seconds", "phase" => phase)
            .record((now - self.0).as_secs_f64());
        self.0 = now;
    }
}

/// The app receipts of rejected items are kept under (they have none of their own).
const NO_APP: i64 = 0;

fn values_from_columns(
    fine: Option<i64>,
    coarse: Option<&str>,
    interaction: Option<&str>,
) -> UnsignedValues {
    UnsignedValues {
        fine_value: fine.and_then(|v| u8::try_from(v).ok()),
        coarse_value: coarse.and_then(CoarseValue::from_wire),
        interaction: match interaction {
            Some("click") => Some(InteractionType::Click),
            Some("view") => Some(InteractionType::View),
            _ => None,
        },
    }
}

fn receipt_result_for(outcome: OutcomeClass) -> ReceiptResult {
    match outcome {
        OutcomeClass::Valid => ReceiptResult::Accepted,
        OutcomeClass::Invalid => ReceiptResult::Invalid,
        OutcomeClass::Unverifiable => ReceiptResult::Unverifiable,
    }
}

super::sql::sql_impl! {
    pub(crate) async fn record(
        &self,
        items: &[IngestItem],
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        let result = self.record_in_transaction(items).await;
        self.note_write(&result);
        result
    }

    async fn record_in_transaction(
        &self,
        items: &[IngestItem],
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        // Rows are written in identity-key order (a stable sort keeps arrival order among copies
        // of one postback), so concurrent PostgreSQL writers take row locks in the same order.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| match &items[i] {
            IngestItem::Rejected { .. } => None,
            IngestItem::Checked { postback, .. } => {
                Some((postback.app_id, postback.identity_key.as_str()))
            }
        });
        let mut phases = PhaseTimer::start();
        let mut tx = DB::begin_write(&self.writer).await?;
        phases.end("begin");
        let mut outcomes = vec![None; items.len()];
        let mut deltas = Deltas::default();
        let mut stored = Vec::new();

        // New postbacks first, many per statement: the first copy of each identity in the group.
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| match &items[i] {
                IngestItem::Checked { postback, .. } => {
                    seen.insert((postback.app_id, postback.identity_key.as_str()))
                }
                IngestItem::Rejected { .. } => false,
            })
            .collect();
        let mut is_first = vec![false; items.len()];
        for &i in &firsts {
            is_first[i] = true;
        }
        let inserted = Self::insert_postbacks(&mut tx, items, &firsts).await?;

        // Their receipts and those of rejected items, many per statement, before any copy's.
        let mut fresh = Vec::new();
        for &i in &order {
            match &items[i] {
                IngestItem::Rejected { receipt, error } => {
                    fresh.push((i, receipt, None, ReceiptResult::Rejected, Some(error)));
                }
                IngestItem::Checked { receipt, postback } => {
                    if let Some(&id) =
                        inserted.get(&(postback.app_id, postback.identity_key.clone()))
                        && is_first[i]
                    {
                        let result = receipt_result_for(postback.outcome);
                        fresh.push((i, receipt, Some((postback.app_id, id)), result, None));
                    }
                }
            }
        }
        let receipt_ids = Self::insert_receipts(&mut tx, &fresh).await?;
        for (&(i, receipt, postback_id, _, _), receipt_id) in fresh.iter().zip(receipt_ids) {
            outcomes[i] = Some(match (&items[i], postback_id.map(|(_, id)| id)) {
                (IngestItem::Checked { postback, .. }, Some(postback_id)) => {
                    deltas.add(AggregateKey::of(postback), 1, 0);
                    stored.push((postback_id, postback.as_ref(), receipt.received_at_ms));
                    if postback.outcome == OutcomeClass::Valid {
                        RecordOutcome::Accepted { postback_id, receipt_id }
                    } else {
                        RecordOutcome::Quarantined {
                            postback_id,
                            receipt_id,
                            outcome: postback.outcome,
                            repeat: false,
                        }
                    }
                }
                _ => RecordOutcome::Rejected { receipt_id },
            });
        }

        // Copies of stored postbacks (earlier, or earlier in this group), one at a time.
        for &i in &order {
            if outcomes[i].is_some() {
                continue;
            }
            if let IngestItem::Checked { receipt, postback } = &items[i] {
                outcomes[i] =
                    Some(Self::record_copy(&mut tx, receipt, postback, &mut deltas).await?);
            }
        }
        phases.end("postbacks");
        Self::apply_deltas(&mut tx, deltas).await?;
        phases.end("counts");
        // The outbox: deliveries commit with their postbacks or not at all.
        Self::enqueue_deliveries(&mut tx, &stored).await?;
        phases.end("outbox");
        tx.commit().await?;
        phases.end("commit");
        Ok(outcomes.into_iter().flatten().collect())
    }


    pub(crate) async fn postback(&self, id: i64) -> Result<Option<StoredPostback>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {POSTBACK_COLUMNS} FROM postbacks WHERE id = "
        ));
        query.push_bind(id);
        Ok(query.build_query_as::<StoredPostback>().fetch_optional(&self.pool).await?)
    }


    /// A postback by app and id: one shard on a distributed database (the dispatcher's read).
    pub(crate) async fn postback_in_app(
        &self,
        app_id: i64,
        id: i64,
    ) -> Result<Option<StoredPostback>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {POSTBACK_COLUMNS} FROM postbacks WHERE app_id = "
        ));
        query.push_bind(app_id).push(" AND id = ").push_bind(id);
        Ok(query.build_query_as::<StoredPostback>().fetch_optional(&self.pool).await?)
    }


    pub(crate) async fn receipts(
        &self,
        postback_id: i64,
    ) -> Result<Vec<StoredReceipt>, StoreError> {
        Ok(sqlx::query_as(SELECT_RECEIPTS).bind(postback_id).fetch_all(&self.pool).await?)
    }


    pub(crate) async fn receipts_in_app(
        &self,
        app_id: i64,
        postback_id: i64,
    ) -> Result<Vec<StoredReceipt>, StoreError> {
        Ok(sqlx::query_as(SELECT_RECEIPTS_IN_APP)
            .bind(app_id)
            .bind(postback_id)
            .fetch_all(&self.pool)
            .await?)
    }


    pub(crate) async fn list_postbacks(
        &self,
        filter: &PostbackQuery,
    ) -> Result<Vec<StoredPostback>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {POSTBACK_COLUMNS} FROM postbacks WHERE 1 = 1"
        ));
        if let Some(transaction_id) = &filter.transaction_id {
            query.push(" AND transaction_id = ").push_bind(transaction_id.as_str());
        }
        if let Some(outcome) = filter.outcome {
            query.push(" AND outcome = ").push_bind(outcome.as_str());
        }
        if let Some(since) = filter.since_ms {
            query.push(" AND first_received_at >= ").push_bind(since);
        }
        if let Some(before) = filter.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(filter.limit);
        Ok(query.build_query_as::<StoredPostback>().fetch_all(&self.pool).await?)
    }


    /// Record one item inside the batch transaction.
    /// A postback whose identity is stored already: reconcile the values, count it once, keep
    /// the receipt.
    pub(super) async fn record_copy(
        tx: &mut Transaction<'static, DB>,
        receipt: &ReceiptInput,
        postback: &NewPostback,
        deltas: &mut Deltas,
    ) -> Result<RecordOutcome, StoreError> {
        // Another copy is stored already (committed earlier, or earlier in this very batch).
        let stored: CopyRow = sqlx::query_as(SELECT_FOR_COPY)
            .bind(postback.app_id)
            .bind(postback.identity_key.as_str())
            .fetch_one(&mut **tx)
            .await?;
        let stored_values = values_from_columns(
            stored.fine_value,
            stored.coarse_value.as_deref(),
            stored.interaction.as_deref(),
        );
        let stored_channel =
            super::Channel::from_name(&stored.values_channel).unwrap_or(super::Channel::Network);
        // A postback keeps its earliest arrival: a backfilled copy that arrived before the stored
        // one moves the postback (and its counts) to that arrival and its install estimate.
        let moved = if receipt.received_at_ms < stored.first_received_at {
            sqlx::query(MOVE_FIRST_ARRIVAL)
                .bind(stored.id)
                .bind(receipt.received_at_ms)
                .bind(postback.arrival_day)
                .bind(postback.install_from_ms)
                .bind(postback.install_to_ms)
                .bind(postback.install_day)
                .bind(stored.app_id)
                .execute(&mut **tx)
                .await?;
            CopyRow {
                arrival_day: postback.arrival_day,
                install_day: postback.install_day,
                first_received_at: receipt.received_at_ms,
                ..stored.clone()
            }
        } else {
            stored.clone()
        };

        if postback.outcome != OutcomeClass::Valid {
            // The same quarantined bytes again (a device retrying a postback that fails to verify).
            let (old_key, new_key) =
                (stored.aggregate_key(&stored_values), moved.aggregate_key(&stored_values));
            if old_key != new_key {
                let flagged = i64::from(stored.unsigned_mismatch);
                deltas.add(old_key, -1, -flagged);
                deltas.add(new_key, 1, flagged);
            }
            Self::update_on_copy(tx, stored.app_id, stored.id, &stored_values, stored_channel, false)
                .await?;
            let receipt_id = Self::insert_receipt(
                tx,
                receipt,
                Some((stored.app_id, stored.id)),
                receipt_result_for(postback.outcome),
                None,
            )
            .await?;
            return Ok(RecordOutcome::Quarantined {
                postback_id: stored.id,
                receipt_id,
                outcome: postback.outcome,
                repeat: true,
            });
        }

        let comparison =
            compare_copies(&stored_values, stored_channel, &postback.values, receipt.channel);
        let (values, channel, mismatch) = match comparison {
            CopyComparison::Same { confirmed_by_apple: true }
            | CopyComparison::Mismatch { adopt_incoming: true } => (
                postback.values,
                receipt.channel,
                matches!(comparison, CopyComparison::Mismatch { .. }),
            ),
            CopyComparison::Same { confirmed_by_apple: false } => {
                (stored_values, stored_channel, false)
            }
            CopyComparison::Mismatch { adopt_incoming: false } => {
                (stored_values, stored_channel, true)
            }
        };
        // Count the postback once, under the values now in effect, and count a newly flagged
        // mismatch once.
        let old_key = stored.aggregate_key(&stored_values);
        let new_key = moved.aggregate_key(&values);
        let was_flagged = i64::from(stored.unsigned_mismatch);
        let is_flagged = i64::from(stored.unsigned_mismatch || mismatch);
        if old_key == new_key {
            deltas.add(old_key, 0, is_flagged - was_flagged);
        } else {
            deltas.add(old_key, -1, -was_flagged);
            deltas.add(new_key, 1, is_flagged);
        }
        Self::update_on_copy(tx, stored.app_id, stored.id, &values, channel, mismatch).await?;
        let receipt_id = Self::insert_receipt(
            tx,
            receipt,
            Some((stored.app_id, stored.id)),
            ReceiptResult::Duplicate,
            None,
        )
        .await?;
        Ok(RecordOutcome::Duplicate { postback_id: stored.id, receipt_id, comparison })
    }


    /// Insert the postbacks at `indexes` (distinct identities), many per statement; the ids of
    /// those that were new, by identity key.
    pub(super) async fn insert_postbacks(
        tx: &mut Transaction<'static, DB>,
        items: &[IngestItem],
        indexes: &[usize],
    ) -> Result<std::collections::HashMap<(i64, String), i64>, StoreError> {
        let rows: Vec<(&NewPostback, &ReceiptInput)> = indexes
            .iter()
            .filter_map(|&i| match &items[i] {
                IngestItem::Checked { receipt, postback } => Some((postback.as_ref(), receipt)),
                IngestItem::Rejected { .. } => None,
            })
            .collect();
        let mut inserted = std::collections::HashMap::new();
        for chunk in statement_chunks(&rows, 31, DB::MAX_PARAMS) {
            let mut q = upsert_head(INSERT_POSTBACK);
            q.push_values(chunk, |mut row, (p, receipt)| {
                row.push_bind(p.identity_key.as_str())
                    .push_bind(p.dedup_key.as_str())
                    .push_bind(p.protocol.as_str())
                    .push_bind(p.version.as_deref())
                    .push_bind(p.ad_network_id.as_str())
                    .push_bind(p.app_id)
                    .push_bind(p.transaction_id.as_str())
                    .push_bind(p.source_identifier.as_deref())
                    .push_bind(p.campaign_id)
                    .push_bind(p.source_app_id)
                    .push_bind(p.source_domain.as_deref())
                    .push_bind(p.window)
                    .push_bind(p.did_win)
                    .push_bind(p.conversion_type.as_deref())
                    .push_bind(p.fidelity_type)
                    .push_bind(p.values.interaction.map(InteractionType::as_str))
                    .push_bind(p.values.fine_value.map(i64::from))
                    .push_bind(p.values.coarse_value.map(CoarseValue::as_str))
                    .push_bind(p.tier_hint)
                    .push_bind(p.country_code.as_deref())
                    .push_bind(p.outcome.as_str())
                    .push_bind(p.reason_code.as_deref())
                    .push_bind(p.reason_message.as_deref())
                    .push_bind(p.development)
                    .push_bind(p.key_name.as_deref())
                    .push_bind(receipt.channel.as_str())
                    .push_bind(receipt.received_at_ms)
                    .push_bind(p.arrival_day)
                    .push_bind(p.install_from_ms)
                    .push_bind(p.install_to_ms)
                    .push_bind(p.install_day);
            });
            q.push(
                " ON CONFLICT (app_id, identity_key) DO NOTHING RETURNING id, app_id, identity_key",
            );
            let returned: Vec<(i64, i64, String)> =
                q.build_query_as().fetch_all(&mut **tx).await?;
            inserted.extend(returned.into_iter().map(|(id, app, key)| ((app, key), id)));
        }
        Ok(inserted)
    }


    /// Insert receipts; their ids in the order given. Receipts of new postbacks go many per
    /// statement and are matched to their ids by postback (each new postback has one such
    /// receipt), not by the order of the ids, which no database promises; receipts of rejected
    /// items, which have no postback to match on, go one per statement.
    pub(super) async fn insert_receipts(
        tx: &mut Transaction<'static, DB>,
        receipts: &[FreshReceipt<'_>],
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = vec![0; receipts.len()];
        let (linked, rejected): (Vec<usize>, Vec<usize>) =
            (0..receipts.len()).partition(|&i| receipts[i].2.is_some());
        let mut by_postback = std::collections::HashMap::new();
        // A receipt carries the postback's raw bytes (about a kilobyte): it weighs as 100 parameters.
        for chunk in statement_chunks(&linked, 100, DB::MAX_PARAMS) {
            let mut q = upsert_head(INSERT_RECEIPT);
            q.push_values(chunk, |mut row, &i| {
                let (_, receipt, postback, result, error) = &receipts[i];
                row.push_bind(postback.map(|(_, id)| id))
                    .push_bind(receipt.received_at_ms)
                    .push_bind(receipt.channel.as_str())
                    .push_bind(receipt.source_name.as_deref())
                    .push_bind(result.as_str())
                    .push_bind(error.map(|e| e.code.as_str()))
                    .push_bind(error.and_then(|e| e.field.as_deref()))
                    .push_bind(error.map(|e| e.message.as_str()))
                    .push_bind(receipt.raw.as_ref())
                    .push_bind(postback.map_or(NO_APP, |(app, _)| app));
            });
            q.push(" RETURNING id, postback_id");
            let returned: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
            by_postback.extend(returned.into_iter().map(|(id, postback)| (postback, id)));
        }
        for i in linked {
            let postback = receipts[i].2.map_or(0, |(_, id)| id);
            ids[i] = by_postback.get(&postback).copied().ok_or_else(|| {
                StoreError::Corrupt(format!("no receipt came back for postback {postback}"))
            })?;
        }
        for i in rejected {
            let (_, receipt, _, result, error) = receipts[i];
            ids[i] = Self::insert_receipt(tx, receipt, None, result, error).await?;
        }
        Ok(ids)
    }


    pub(super) async fn update_on_copy(
        tx: &mut Transaction<'static, DB>,
        app_id: i64,
        id: i64,
        values: &UnsignedValues,
        channel: super::Channel,
        mismatch: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(UPDATE_ON_COPY)
            .bind(id)
            .bind(values.fine_value.map(i64::from))
            .bind(values.coarse_value.map(CoarseValue::as_str))
            .bind(values.interaction.map(InteractionType::as_str))
            .bind(channel.as_str())
            .bind(mismatch)
            .bind(app_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }


    pub(super) async fn insert_receipt(
        tx: &mut Transaction<'static, DB>,
        receipt: &ReceiptInput,
        postback: Option<(i64, i64)>,
        result: ReceiptResult,
        error: Option<&ErrorBody>,
    ) -> Result<i64, StoreError> {
        let (id,): (i64,) = sqlx::query_as(INSERT_RECEIPT)
            .bind(postback.map(|(_, id)| id))
            .bind(receipt.received_at_ms)
            .bind(receipt.channel.as_str())
            .bind(receipt.source_name.as_deref())
            .bind(result.as_str())
            .bind(error.map(|e| e.code.as_str()))
            .bind(error.and_then(|e| e.field.as_deref()))
            .bind(error.map(|e| e.message.as_str()))
            .bind(receipt.raw.as_ref())
            .bind(postback.map_or(NO_APP, |(app, _)| app))
            .fetch_one(&mut **tx)
            .await?;
        Ok(id)
    }

}

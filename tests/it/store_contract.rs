//! Every store behaviour, run on SQLite and on PostgreSQL: the two backends must agree exactly.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use skan_receiver::ingest::prepare_item;
use skan_receiver::skan::OutcomeClass;
use skan_receiver::store::{
    Channel, CopyComparison, IngestItem, NewApiKey, PostbackQuery, RecordOutcome, Role, Store,
    StoreError,
};

use crate::helpers::{APPLE_KEYS, APPLE_VECTORS, each_backend};

fn item(postback: &Value, channel: Channel, at_ms: i64) -> IngestItem {
    prepare_item(
        &APPLE_KEYS,
        65536,
        Bytes::from(serde_json::to_vec(postback).unwrap()),
        channel,
        (channel == Channel::Network).then(|| "network-a".to_owned()),
        at_ms,
    )
}

fn tampered(postback: &Value) -> Value {
    let mut v = postback.clone();
    v["app-id"] = json!(v["app-id"].as_u64().unwrap() + 1);
    v
}

fn with_cv(postback: &Value, cv: u64) -> Value {
    let mut v = postback.clone();
    v["conversion-value"] = json!(cv);
    v
}

async fn stores() -> Vec<(Arc<dyn Store>, crate::helpers::TestDb)> {
    let mut out = Vec::new();
    for db in each_backend().await {
        out.push((db.store().await, db));
    }
    out
}

#[tokio::test]
async fn a_new_postback_is_accepted_and_a_second_copy_is_a_duplicate() {
    for (store, _db) in stores().await {
        let pb = &APPLE_VECTORS[0].postback;
        let first = store.record(&[item(pb, Channel::Apple, 1_000)]).await.unwrap();
        let RecordOutcome::Accepted { postback_id, .. } = first[0] else { panic!("{first:?}") };
        let again = store.record(&[item(pb, Channel::Apple, 2_000)]).await.unwrap();
        assert_eq!(
            again[0],
            RecordOutcome::Duplicate {
                postback_id,
                receipt_id: match again[0] {
                    RecordOutcome::Duplicate { receipt_id, .. } => receipt_id,
                    _ => 0,
                },
                comparison: CopyComparison::Same { confirmed_by_apple: false }
            }
        );
        let stored = store.postback(postback_id).await.unwrap().unwrap();
        assert_eq!(stored.receipt_count, 2);
        assert_eq!(stored.first_received_at_ms, 1_000);
        assert_eq!(stored.fine_value, Some(63));
        assert_eq!(stored.outcome, "valid");
        let receipts = store.receipts(postback_id).await.unwrap();
        assert_eq!(
            receipts.iter().map(|r| r.result.as_str()).collect::<Vec<_>>(),
            ["accepted", "duplicate"]
        );
        assert_eq!(receipts[0].raw, serde_json::to_vec(pb).unwrap(), "raw bytes verbatim");
    }
}

#[tokio::test]
async fn invalid_postbacks_are_quarantined_and_identical_retries_collapse() {
    for (store, _db) in stores().await {
        let bad = tampered(&APPLE_VECTORS[2].postback);
        let first = store.record(&[item(&bad, Channel::Apple, 1)]).await.unwrap();
        let RecordOutcome::Quarantined {
            postback_id,
            outcome: OutcomeClass::Invalid,
            repeat: false,
            ..
        } = first[0]
        else {
            panic!("{first:?}")
        };
        let retry = store.record(&[item(&bad, Channel::Apple, 2)]).await.unwrap();
        assert!(
            matches!(retry[0], RecordOutcome::Quarantined { postback_id: id, repeat: true, .. } if id == postback_id)
        );
        let stored = store.postback(postback_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.outcome.as_str(), stored.reason_code.as_deref()),
            ("invalid", Some("signature_mismatch"))
        );
        let valid = store
            .list_postbacks(&PostbackQuery {
                outcome: Some(OutcomeClass::Valid),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(valid.is_empty(), "a quarantined postback is never listed as valid");
    }
}

#[tokio::test]
async fn a_forged_copy_arriving_first_never_blocks_the_genuine_postback() {
    for (store, _db) in stores().await {
        let genuine = &APPLE_VECTORS[2].postback;
        let mut forged = genuine.clone();
        forged["attribution-signature"] =
            APPLE_VECTORS[3].postback["attribution-signature"].clone();
        let out = store
            .record(&[item(&forged, Channel::Network, 1), item(genuine, Channel::Apple, 2)])
            .await
            .unwrap();
        assert!(matches!(out[0], RecordOutcome::Quarantined { .. }), "{out:?}");
        assert!(matches!(out[1], RecordOutcome::Accepted { .. }), "{out:?}");
    }
}

#[tokio::test]
async fn apples_copy_replaces_a_forwarders_altered_values_and_flags_the_postback() {
    for (store, _db) in stores().await {
        let genuine = &APPLE_VECTORS[2].postback; // conversion-value 20
        let altered = with_cv(genuine, 63);
        let out = store.record(&[item(&altered, Channel::Network, 1)]).await.unwrap();
        let RecordOutcome::Accepted { postback_id, .. } = out[0] else { panic!() };
        assert_eq!(store.postback(postback_id).await.unwrap().unwrap().fine_value, Some(63));
        let out = store.record(&[item(genuine, Channel::Apple, 2)]).await.unwrap();
        assert!(matches!(
            out[0],
            RecordOutcome::Duplicate {
                comparison: CopyComparison::Mismatch { adopt_incoming: true },
                ..
            }
        ));
        let stored = store.postback(postback_id).await.unwrap().unwrap();
        assert_eq!(stored.fine_value, Some(20), "Apple's value wins");
        assert_eq!(stored.values_channel, "apple");
        assert!(stored.unsigned_mismatch);
        // A later forwarded copy with yet another value changes nothing but stays flagged.
        store.record(&[item(&with_cv(genuine, 5), Channel::Network, 3)]).await.unwrap();
        let stored = store.postback(postback_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.fine_value, stored.unsigned_mismatch, stored.receipt_count),
            (Some(20), true, 3)
        );
    }
}

#[tokio::test]
async fn a_forwarders_copy_never_overrides_apples_values() {
    for (store, _db) in stores().await {
        let genuine = &APPLE_VECTORS[0].postback; // 63
        let out = store
            .record(&[
                item(genuine, Channel::Apple, 1),
                item(&with_cv(genuine, 1), Channel::Network, 2),
            ])
            .await
            .unwrap();
        let RecordOutcome::Accepted { postback_id, .. } = out[0] else { panic!() };
        assert!(matches!(
            out[1],
            RecordOutcome::Duplicate {
                comparison: CopyComparison::Mismatch { adopt_incoming: false },
                ..
            }
        ));
        let stored = store.postback(postback_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.fine_value, stored.values_channel.as_str(), stored.unsigned_mismatch),
            (Some(63), "apple", true)
        );
    }
}

#[tokio::test]
async fn rejected_items_keep_their_raw_receipt_and_the_error() {
    for (store, _db) in stores().await {
        let raw = Bytes::from_static(b"{\"version\": \"4.0\", \"ad-network-id\": 5}");
        let rejected = prepare_item(&APPLE_KEYS, 65536, raw.clone(), Channel::Apple, None, 9);
        let IngestItem::Rejected { error, .. } = &rejected else { panic!() };
        assert_eq!(
            (error.code.as_str(), error.field.as_deref()),
            ("wrong_type", Some("ad-network-id"))
        );
        let out = store.record(&[rejected]).await.unwrap();
        assert!(matches!(out[0], RecordOutcome::Rejected { receipt_id } if receipt_id > 0));
        let none =
            store.list_postbacks(&PostbackQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert!(none.is_empty());
    }
}

#[tokio::test]
async fn listing_filters_by_transaction_outcome_and_time_and_pages_newest_first() {
    for (store, _db) in stores().await {
        let items: Vec<IngestItem> = [0usize, 1, 2, 3, 4]
            .iter()
            .map(|&i| item(&APPLE_VECTORS[i].postback, Channel::Apple, 1_000 * i as i64))
            .chain([item(&tampered(&APPLE_VECTORS[3].postback), Channel::Apple, 9_000)])
            .collect();
        store.record(&items).await.unwrap();
        let all = store
            .list_postbacks(&PostbackQuery { limit: 100, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let page1 =
            store.list_postbacks(&PostbackQuery { limit: 4, ..Default::default() }).await.unwrap();
        let page2 = store
            .list_postbacks(&PostbackQuery {
                limit: 4,
                before_id: Some(page1.last().unwrap().id),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page1.len() + page2.len(), 6);
        let tx = store
            .list_postbacks(&PostbackQuery {
                transaction_id: Some("6aafb7a5-0170-41b5-bbe4-fe71dedf1e28".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            tx.len(),
            2,
            "3.0 winning and 2.2 share this transaction-id under different networks"
        );
        let invalid = store
            .list_postbacks(&PostbackQuery {
                outcome: Some(OutcomeClass::Invalid),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(invalid.len(), 1);
        let recent = store
            .list_postbacks(&PostbackQuery {
                since_ms: Some(3_000),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(recent.len(), 3);
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_until_revoked_and_names_are_unique() {
    for (store, _db) in stores().await {
        let new = NewApiKey {
            name: "net".into(),
            role: Role::Ingest,
            key_hash: "h1".into(),
            key_prefix: "skr_x".into(),
            created_at_ms: 5,
            allowed_networks: vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
        };
        let key = store.create_api_key(&new).await.unwrap();
        assert_eq!(store.api_key_by_hash("h1").await.unwrap(), Some(key.clone()));
        let dup = store.create_api_key(&NewApiKey { key_hash: "h2".into(), ..new.clone() }).await;
        assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
        assert!(store.revoke_api_key("net", 7).await.unwrap());
        assert!(!store.revoke_api_key("net", 8).await.unwrap());
        assert_eq!(store.api_key_by_hash("h1").await.unwrap(), None);
        assert_eq!(store.list_api_keys().await.unwrap()[0].revoked_at_ms, Some(7));
    }
}

#[tokio::test]
async fn migrations_are_all_applied_on_connect() {
    for (store, _db) in stores().await {
        assert_eq!(store.pending_migrations().await.unwrap(), 0);
        store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_writers_accept_each_postback_exactly_once() {
    for (store, db) in stores().await {
        // Two stores (two receivers) on one database, racing to record the same postbacks.
        let other = db.store().await;
        let batch: Vec<IngestItem> =
            APPLE_VECTORS.iter().map(|v| item(&v.postback, Channel::Apple, 1)).collect();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { Arc::clone(&store) } else { Arc::clone(&other) };
            let batch = batch.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match store.record(&batch).await {
                        Ok(out) => return out,
                        Err(err) if err.is_unavailable() => {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await
                        }
                        Err(err) => panic!("{err}"),
                    }
                }
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            accepted += task
                .await
                .unwrap()
                .iter()
                .filter(|o| matches!(o, RecordOutcome::Accepted { .. }))
                .count();
        }
        // 8 vectors, of which three share one SKAdNetwork dedup key (2.0, 2.1, 2.2 examples).
        assert_eq!(accepted, 6);
        let all = store
            .list_postbacks(&PostbackQuery { limit: 100, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all.iter().map(|p| p.receipt_count).sum::<i64>(), 64);
    }
}

async fn aggregate_counts(
    store: &Arc<dyn Store>,
    app_id: i64,
) -> Vec<(i64, String, String, i64, i64)> {
    let query = skan_receiver::store::AggregateQuery {
        app_id,
        date_type: skan_receiver::store::DateType::Arrival,
        from_day: 0,
        to_day: 100_000,
    };
    let mut rows: Vec<_> = store
        .aggregates(&query)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.postbacks != 0 || r.unsigned_mismatch != 0)
        .map(|r| {
            (r.key.fine_value, r.key.coarse_value, r.key.outcome, r.postbacks, r.unsigned_mismatch)
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn aggregates_count_each_postback_once_under_the_values_in_effect() {
    for (store, _db) in stores().await {
        let genuine = &APPLE_VECTORS[2].postback; // app 525463029, conversion-value 20
        let app_id = 525_463_029;
        store.record(&[item(&with_cv(genuine, 63), Channel::Network, 86_400_000)]).await.unwrap();
        assert_eq!(
            aggregate_counts(&store, app_id).await,
            [(63, String::new(), "valid".into(), 1, 0)]
        );
        // Apple's copy moves the count to its value and flags the mismatch.
        store.record(&[item(genuine, Channel::Apple, 2 * 86_400_000)]).await.unwrap();
        assert_eq!(
            aggregate_counts(&store, app_id).await,
            [(20, String::new(), "valid".into(), 1, 1)]
        );
        // More copies, a retry and a forged copy: the valid count stays 1; the forgery counts
        // under its own outcome.
        store
            .record(&[
                item(&with_cv(genuine, 5), Channel::Network, 3),
                item(genuine, Channel::Apple, 4),
                item(&tampered(genuine), Channel::Apple, 5),
                item(&tampered(genuine), Channel::Apple, 6),
            ])
            .await
            .unwrap();
        let counts = aggregate_counts(&store, app_id).await;
        assert_eq!(
            counts,
            [(20, String::new(), "valid".into(), 1, 1)],
            "the tampered app-id is another app"
        );
        assert_eq!(
            aggregate_counts(&store, app_id + 1).await,
            [(20, String::new(), "invalid".into(), 1, 0)]
        );
        // A forwarder-only mismatch (no Apple copy) flags without moving.
        let other = &APPLE_VECTORS[4].postback; // 2.2, conversion-value 20, same app
        store
            .record(&[
                item(other, Channel::Network, 1),
                item(&with_cv(other, 9), Channel::Network, 2),
            ])
            .await
            .unwrap();
        let counts = aggregate_counts(&store, app_id).await;
        let expected = (20, String::new(), "valid".to_owned(), 1, 1);
        assert_eq!(
            counts,
            [expected.clone(), expected],
            "two postbacks (4.0 and 2.2), each counted and flagged once"
        );
    }
}

#[tokio::test]
async fn schema_versions_are_numbered_per_app_even_under_concurrent_writers() {
    use skan_receiver::clock::SystemClock;
    use skan_receiver::schema_versions::SchemaVersions;
    for (store, _db) in stores().await {
        let service = SchemaVersions::new(store.clone(), Arc::new(SystemClock));
        let schema: skan_receiver::schema::Schema = serde_json::from_value(
            json!({"windows": [{"window": 0, "fine": [{"value": 0, "label": "x"}]}]}),
        )
        .unwrap();
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (service, schema) = (service.clone(), schema.clone());
            tasks.push(tokio::spawn(async move {
                service.apply(1, schema, None, &format!("w{i}"), None).await
            }));
        }
        let mut numbers: Vec<i64> = Vec::new();
        for task in tasks {
            numbers.push(task.await.unwrap().unwrap().version.version);
        }
        numbers.sort_unstable();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
        let other =
            service.apply(2, schema.clone(), None, "x", Some("first".into())).await.unwrap();
        assert_eq!(other.version.version, 1);
        assert_eq!(store.schema_versions(2).await.unwrap()[0].note.as_deref(), Some("first"));
        assert!(service.apply_if_changed(2, schema, None, "config", None).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_large_mixed_group_gets_each_item_its_own_receipt_and_outcome() {
    use crate::helpers::{Spec, TEST_KEYS};
    for (store, db) in stores().await {
        let prepare = |raw: Vec<u8>, at_ms: i64| {
            prepare_item(&TEST_KEYS, 65536, Bytes::from(raw), Channel::Apple, None, at_ms)
        };
        // 150 new postbacks (more than one statement's worth), copies of three of them after
        // their originals, and two rejected items, interleaved.
        let mut raws: Vec<Vec<u8>> = (0..150)
            .map(|i| Spec::new(1 + i % 3, &format!("mixed-{i}")).fine(i as u8 % 64).bytes())
            .collect();
        raws.insert(40, raws[3].clone());
        raws.insert(90, b"{\"version\": 4}".to_vec());
        raws.insert(100, raws[60].clone());
        raws.push(raws[149].clone());
        raws.insert(7, b"not json".to_vec());
        let items: Vec<IngestItem> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| prepare(raw.clone(), 1_000 + i as i64))
            .collect();
        let outcomes = store.record(&items).await.unwrap();
        assert_eq!(outcomes.len(), raws.len());

        let mut receipt_ids = std::collections::HashSet::new();
        let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
        for (raw, outcome) in raws.iter().zip(&outcomes) {
            let (postback_id, receipt_id) = match *outcome {
                RecordOutcome::Accepted { postback_id, receipt_id } => {
                    accepted += 1;
                    (postback_id, receipt_id)
                }
                RecordOutcome::Duplicate { postback_id, receipt_id, .. } => {
                    duplicates += 1;
                    (postback_id, receipt_id)
                }
                RecordOutcome::Rejected { receipt_id } => {
                    rejected += 1;
                    assert!(receipt_ids.insert(receipt_id));
                    continue;
                }
                RecordOutcome::Quarantined { .. } => panic!("{outcome:?}"),
            };
            assert!(receipt_ids.insert(receipt_id), "receipt ids are distinct");
            let receipts = store.receipts(postback_id).await.unwrap();
            let mine = receipts.iter().find(|r| r.id == receipt_id).expect("its receipt");
            assert_eq!(&mine.raw, raw, "the receipt holds this item's bytes");
            let stored = store.postback(postback_id).await.unwrap().unwrap();
            assert_eq!(receipts[0].result, "accepted", "the original's receipt comes first");
            assert_eq!(stored.receipt_count as usize, receipts.len());
        }
        assert_eq!((accepted, duplicates, rejected), (150, 3, 2));
        assert_eq!(
            receipts_naming_a_missing_postback(&db).await,
            0,
            "every receipt with a postback id names a stored postback of its app"
        );
    }
}

/// Receipts whose postback id names no stored postback of their app (PostgreSQL has no foreign
/// key to say so, SQLite has one).
async fn receipts_naming_a_missing_postback(db: &crate::helpers::TestDb) -> i64 {
    let sql = "SELECT COUNT(*) FROM receipts r WHERE r.postback_id IS NOT NULL AND NOT EXISTS \
               (SELECT 1 FROM postbacks p WHERE p.app_id = r.app_id AND p.id = r.postback_id)";
    let counts: Vec<(i64,)> = crate::helpers::rows_of(db, sql).await;
    counts[0].0
}

#[tokio::test]
async fn a_rollup_row_written_by_many_transactions_is_compacted_and_stays_exact() {
    for (store, db) in stores().await {
        // 300 postbacks of one network, campaign, window and arrival day, each in its own
        // transaction: every one appends to the same rollup rows.
        let pb = &APPLE_VECTORS[0].postback;
        let at_ms = 1_793_000_000_000;
        for i in 0..300 {
            let mut v = with_cv(pb, i % 7);
            v["transaction-id"] = json!(format!("compaction-{i}"));
            store.record(&[item(&v, Channel::Network, at_ms)]).await.unwrap();
        }
        let longest = rollup_lengths(&db).await.into_iter().map(|(length, _)| length).max();
        let longest = longest.unwrap_or(0);
        // Without compaction the busiest rows would hold 300 appended runs (over 1,200 bytes).
        assert!((1..=1_100).contains(&longest), "{:?}: longest blob {longest}", db.backend);
        for shape in ["group_by=source_identifier,fine_value", "group_by=day,ad_network_id"] {
            let text = format!(
                "app_id={}&from=2026-10-01&to=2026-11-28&date_type=arrival&{shape}",
                pb["app-id"]
            );
            let reports = aggregates_and_rollup_reports(&store, &text).await;
            assert_eq!(reports[0], reports[1], "{:?}: {shape}", db.backend);
            assert_eq!(reports[1].totals.postbacks, 300, "{:?}: {shape}", db.backend);
        }
    }
}

/// The report a query string asks for, read from the aggregates and from the source rollup.
async fn aggregates_and_rollup_reports(
    store: &Arc<dyn Store>,
    text: &str,
) -> [skan_receiver::report::Report; 2] {
    use skan_receiver::report::{ReportQuery, assemble, selection};
    use skan_receiver::schema_versions::SchemaVersions;
    use skan_receiver::store::ReportSource;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let query = ReportQuery::parse(&pairs).unwrap();
    let history = SchemaVersions::new(store.clone(), Arc::new(skan_receiver::clock::SystemClock))
        .history(query.app_id)
        .await
        .unwrap();
    let read = |source| {
        let mut chosen = selection(&query, &history);
        chosen.source = source;
        chosen
    };
    let aggregates = store.report_rows(&read(ReportSource::Aggregates)).await.unwrap();
    let rollup = store.report_rows(&read(ReportSource::Rollup)).await.unwrap();
    [assemble(&query, &history, &aggregates), assemble(&query, &history, &rollup)]
}

/// Every rollup row's counts length and its length when last compacted.
async fn rollup_lengths(db: &crate::helpers::TestDb) -> Vec<(i64, i64)> {
    let sql = "SELECT CAST(length(counts) AS BIGINT), compacted_bytes FROM report_rollup \
               ORDER BY app_id, date_kind, span, day, ad_network_id, family, source_identifier, \
               campaign_id, protocol, version, interaction, development, period_day";
    crate::helpers::rows_of(db, sql).await
}

#[tokio::test]
async fn a_long_rollup_row_is_compacted_once_it_doubles_not_on_every_write() {
    use skan_receiver::domain::aggregate::{AggregateKey, AggregateRow};
    let row = |fine_value: i64, tier_hint: i64, outcome: &str, postbacks: i64| AggregateRow {
        key: AggregateKey {
            app_id: 4242,
            arrival_day: 20_760,
            install_day: 20_760,
            ad_network_id: "compaction.example".to_owned(),
            source_identifier: "1234".to_owned(),
            campaign_id: -1,
            protocol: "skadnetwork".to_owned(),
            version: "4.0".to_owned(),
            window: 0,
            interaction: "click".to_owned(),
            conversion_type: "download".to_owned(),
            did_win: true,
            development: false,
            fine_value,
            coarse_value: String::new(),
            tier_hint,
            outcome: outcome.to_owned(),
        },
        postbacks,
        unsigned_mismatch: 0,
    };
    // 960 distinct cells: one run of them is well past the 1 KiB floor.
    let wide: Vec<AggregateRow> = (0..64)
        .flat_map(|v| {
            (-1..=3).flat_map(move |t| ["valid", "invalid", "unverifiable"].map(|o| (v, t, o)))
        })
        .map(|(v, t, o)| row(v, t, o, 1))
        .collect();
    for (store, db) in stores().await {
        store.add_aggregates(&wide).await.unwrap();
        let first = rollup_lengths(&db).await;
        assert!(!first.is_empty());
        for &(length, compacted) in &first {
            assert!(length > 1_024, "{:?}: a run of 960 cells takes {length} bytes", db.backend);
            assert_eq!(length, compacted, "{:?}: a new row is one run", db.backend);
        }
        // Small writes append runs: the row stays under twice its compacted length, so it is
        // not merged again (merging on every write past 1 KiB rewrote the whole blob each time).
        for i in 0..10 {
            store.add_aggregates(&[row(i, 0, "valid", 1)]).await.unwrap();
        }
        for ((length, compacted), (first_length, _)) in
            rollup_lengths(&db).await.into_iter().zip(&first)
        {
            assert_eq!(compacted, *first_length, "{:?}: not compacted again yet", db.backend);
            assert!(length > compacted, "{:?}: appended runs are kept ({length})", db.backend);
        }
        // A write that takes a row past twice its compacted length merges it into one run.
        store.add_aggregates(&wide).await.unwrap();
        for ((length, compacted), (first_length, _)) in
            rollup_lengths(&db).await.into_iter().zip(&first)
        {
            assert_eq!(length, compacted, "{:?}: compacted into one run", db.backend);
            assert!(length < 2 * first_length, "{:?}: {length} bytes after merging", db.backend);
        }
        // The merged counts read back exactly: the rollup's report equals the aggregates'.
        let reports = aggregates_and_rollup_reports(
            &store,
            "app_id=4242&from=2026-10-01&to=2026-11-28&date_type=arrival\
             &group_by=source_identifier,fine_value,tier",
        )
        .await;
        assert_eq!(reports[0], reports[1], "{:?}", db.backend);
        assert_eq!(reports[1].totals.postbacks, 2 * 960 + 10, "{:?}", db.backend);
    }
}

#[tokio::test]
async fn a_network_id_holding_a_nul_still_reads_back_from_the_rollup() {
    for (store, db) in stores().await {
        // PostgreSQL cannot store a NUL in text at all; SQLite can, and its packed rollup read
        // must still parse (the key is cut at the NUL there) rather than fail the report.
        if !matches!(db.backend, crate::helpers::Backend::Sqlite) {
            continue;
        }
        let pb = &APPLE_VECTORS[0].postback;
        let mut odd = pb.clone();
        odd["ad-network-id"] = json!("net\u{0}work");
        let at_ms = 1_793_000_000_000;
        store.record(&[item(&odd, Channel::Network, at_ms)]).await.unwrap();
        store.record(&[item(pb, Channel::Network, at_ms)]).await.unwrap();
        let text = format!(
            "app_id={}&from=2026-10-01&to=2026-11-28&date_type=arrival\
             &group_by=ad_network_id,source_identifier",
            pb["app-id"]
        );
        let [aggregates, rollup] = aggregates_and_rollup_reports(&store, &text).await;
        assert_eq!(rollup.totals.postbacks, 2);
        assert_eq!(rollup.totals, aggregates.totals);
        assert_eq!(rollup.rows.len(), 2, "{:?}", rollup.rows);
    }
}

#[tokio::test]
async fn a_network_id_holding_quotes_reads_back_whole_from_the_rollup() {
    // The rollup's packed read quotes texts; a network ID made of quotes and the packing's
    // separators must come back as it went in, in source rows and version rows alike.
    for (store, db) in stores().await {
        let pb = &APPLE_VECTORS[0].postback;
        let odd_network = "it's'',;:x'";
        let mut odd = pb.clone();
        odd["ad-network-id"] = json!(odd_network);
        let at_ms = 1_793_000_000_000;
        store.record(&[item(&odd, Channel::Network, at_ms)]).await.unwrap();
        store.record(&[item(pb, Channel::Network, at_ms)]).await.unwrap();
        for group_by in ["ad_network_id,source_identifier", "ad_network_id,version"] {
            let text = format!(
                "app_id={}&from=2026-10-01&to=2026-11-28&date_type=arrival&group_by={group_by}",
                pb["app-id"]
            );
            let [aggregates, rollup] = aggregates_and_rollup_reports(&store, &text).await;
            assert_eq!(rollup.rows, aggregates.rows, "{:?} {group_by}", db.backend);
            let networks: Vec<_> =
                rollup.rows.iter().map(|row| row.group.get("ad_network_id")).collect();
            assert!(
                networks.contains(&Some(json!(odd_network))),
                "{:?} {group_by}: {networks:?}",
                db.backend
            );
        }
    }
}

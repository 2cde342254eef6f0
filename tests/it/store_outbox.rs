//! The delivery outbox on both backends: deliveries commit with their postbacks, leases fence
//! completions, and the concurrency cap and token bucket hold across claims.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use skan_receiver::ingest::prepare_item;
use skan_receiver::store::{
    Channel, Completed, Completion, DeliveryQuery, DeliveryState, DeliveryUpdate, NewDestination,
    RecordOutcome, ReplayRequest, RetryResult, Store, StoreError,
};

use crate::helpers::{Spec, TEST_KEYS, each_backend};

/// One completion in its own group, as the worker's committer writes it when nothing else waits.
trait CompleteOne {
    async fn complete_delivery(&self, completion: &Completion) -> Result<Completed, StoreError>;
}

impl CompleteOne for Arc<dyn Store> {
    async fn complete_delivery(&self, completion: &Completion) -> Result<Completed, StoreError> {
        let mut done = self.complete_deliveries(std::slice::from_ref(completion)).await?;
        assert_eq!(done.len(), 1, "one outcome per completion");
        Ok(done.remove(0))
    }
}

fn document(name: &str, extra: &Value) -> String {
    let mut doc = json!({"name": name, "url": "https://partner.example/pb?cv={fine_value}"});
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc.to_string()
}

async fn destination(store: &Arc<dyn Store>, name: &str, extra: Value) -> i64 {
    store
        .create_destination(&NewDestination {
            name: name.to_owned(),
            enabled: true,
            config: document(name, &extra),
            at_ms: 0,
        })
        .await
        .unwrap()
        .id
}

async fn record(store: &Arc<dyn Store>, specs: &[Spec], at_ms: i64) -> Vec<i64> {
    let items: Vec<_> = specs
        .iter()
        .map(|s| {
            prepare_item(&TEST_KEYS, 65536, Bytes::from(s.bytes()), Channel::Apple, None, at_ms)
        })
        .collect();
    store
        .record(&items)
        .await
        .unwrap()
        .into_iter()
        .map(|o| match o {
            RecordOutcome::Accepted { postback_id, .. }
            | RecordOutcome::Quarantined { postback_id, .. }
            | RecordOutcome::Duplicate { postback_id, .. } => postback_id,
            RecordOutcome::Rejected { .. } => panic!("rejected"),
        })
        .collect()
}

async fn deliveries(
    store: &Arc<dyn Store>,
    destination_id: i64,
) -> Vec<skan_receiver::store::StoredDelivery> {
    store
        .list_deliveries(&DeliveryQuery {
            destination_id: Some(destination_id),
            limit: 1000,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn deliveries_are_written_with_their_postbacks_for_the_destinations_that_admit_them() {
    for db in each_backend().await {
        let store = db.store().await;
        let all = destination(&store, "all", json!({})).await;
        let app_one = destination(&store, "app-1", json!({"filters": {"apps": [1]}})).await;
        let winners = destination(
            &store,
            "winners-w0",
            json!({"filters": {"winning_only": true, "windows": [0]}}),
        )
        .await;
        let off = destination(&store, "off", json!({})).await;
        store
            .update_destination(
                off,
                &NewDestination {
                    name: "off".into(),
                    enabled: false,
                    config: document("off", &json!({})),
                    at_ms: 1,
                },
            )
            .await
            .unwrap();
        let ids = record(
            &store,
            &[
                Spec::new(1, "o-1").fine(3),
                Spec { did_win: false, ..Spec::new(2, "o-2").fine(3) },
                Spec::new(2, "o-3").coarse(1, skan_receiver::skan::CoarseValue::Low),
            ],
            5_000,
        )
        .await;
        let postbacks_of = |list: Vec<skan_receiver::store::StoredDelivery>| {
            let mut ids: Vec<i64> = list.iter().filter_map(|d| d.postback_id).collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(postbacks_of(deliveries(&store, all).await), ids);
        assert_eq!(postbacks_of(deliveries(&store, app_one).await), vec![ids[0]]);
        assert_eq!(postbacks_of(deliveries(&store, winners).await), vec![ids[0]]);
        assert!(
            deliveries(&store, off).await.is_empty(),
            "a disabled destination gets no new deliveries"
        );
        let first = &deliveries(&store, all).await[0];
        assert_eq!(
            (first.state.as_str(), first.attempts, first.next_attempt_at_ms),
            ("pending", 0, 5_000)
        );

        // A copy of a stored postback adds no delivery.
        record(&store, &[Spec::new(1, "o-1").fine(3)], 6_000).await;
        assert_eq!(deliveries(&store, all).await.len(), 3);
    }
}

#[tokio::test]
async fn a_lease_fences_completion_and_an_expired_lease_is_claimed_again() {
    for db in each_backend().await {
        let store = db.store().await;
        // Timeout 1 s: a lease lasts 2 × 1 s + 1 s.
        let id = destination(&store, "d", json!({"timeout_ms": 1000})).await;
        record(&store, &[Spec::new(1, "l-1").fine(1)], 1_000).await;
        let first = store.claim_deliveries(id, "A", 1_000, 10).await.unwrap();
        assert_eq!(first.deliveries.len(), 1);
        assert_eq!(first.deliveries[0].attempt, 1);
        assert!(
            store.claim_deliveries(id, "B", 2_000, 10).await.unwrap().deliveries.is_empty(),
            "leased"
        );
        let second = store.claim_deliveries(id, "B", 4_000, 10).await.unwrap();
        assert_eq!(
            second.deliveries.len(),
            1,
            "the lease ran out: a crashed worker's delivery is claimed again"
        );
        assert_eq!(second.deliveries[0].attempt, 2);
        let complete = |lease: &str| Completion {
            delivery_id: first.deliveries[0].id,
            destination_id: id,
            lease: lease.to_owned(),
            now_ms: 4_500,
            update: DeliveryUpdate::Delivered,
            attempt: None,
            status: Some(200),
            disable_after_ms: None,
        };
        assert!(
            !store.complete_delivery(&complete("A")).await.unwrap().held,
            "the old lease is fenced out"
        );
        assert_eq!(deliveries(&store, id).await[0].state, "pending");
        assert!(store.complete_delivery(&complete("B")).await.unwrap().held);
        let done = &deliveries(&store, id).await[0];
        assert_eq!(
            (done.state.as_str(), done.delivered_at_ms, done.lease_expires_at_ms),
            ("delivered", Some(4_500), None)
        );
    }
}

#[tokio::test]
async fn a_group_of_completions_answers_each_in_the_order_given() {
    for db in each_backend().await {
        let store = db.store().await;
        let first = destination(&store, "first", json!({})).await;
        let second = destination(&store, "second", json!({})).await;
        record(&store, &[Spec::new(1, "g-1").fine(1), Spec::new(1, "g-2").fine(2)], 1_000).await;
        let mut group = Vec::new();
        // Given in the reverse of the store's locking order, with one stale lease among them.
        for (dest, lease) in [(second, "S"), (first, "F")] {
            for claimed in store.claim_deliveries(dest, lease, 1_000, 10).await.unwrap().deliveries
            {
                group.push(Completion {
                    delivery_id: claimed.id,
                    destination_id: dest,
                    lease: lease.to_owned(),
                    now_ms: 1_100,
                    update: DeliveryUpdate::Delivered,
                    attempt: None,
                    status: Some(200),
                    disable_after_ms: None,
                });
            }
        }
        assert_eq!(group.len(), 4);
        group.reverse();
        group[1].lease = "stale".into();
        let held: Vec<bool> =
            store.complete_deliveries(&group).await.unwrap().iter().map(|c| c.held).collect();
        assert_eq!(held, [true, false, true, true]);
        let stale = group[1].delivery_id;
        for dest in [first, second] {
            for d in deliveries(&store, dest).await {
                let expected = if d.id == stale { "pending" } else { "delivered" };
                assert_eq!(d.state, expected, "delivery {}", d.id);
            }
        }
    }
}

#[tokio::test]
async fn claims_respect_the_concurrency_cap_and_the_token_bucket() {
    for db in each_backend().await {
        let store = db.store().await;
        let capped = destination(&store, "capped", json!({"max_concurrency": 2})).await;
        let limited = destination(
            &store,
            "limited",
            json!({"rate_limit": {"per_second": 2.0, "burst": 3.0}, "max_concurrency": 10}),
        )
        .await;
        let specs: Vec<Spec> = (0..6).map(|i| Spec::new(1, &format!("c-{i}")).fine(1)).collect();
        record(&store, &specs, 1_000).await;

        let claim = store.claim_deliveries(capped, "A", 1_000, 10).await.unwrap();
        assert_eq!(claim.deliveries.len(), 2, "two in flight at most");
        assert!(
            store.claim_deliveries(capped, "B", 1_000, 10).await.unwrap().deliveries.is_empty()
        );

        // The bucket starts full (3), then refills at 2 per second.
        assert_eq!(
            store.claim_deliveries(limited, "A", 1_000, 10).await.unwrap().deliveries.len(),
            3
        );
        let empty = store.claim_deliveries(limited, "A", 1_000, 10).await.unwrap();
        assert!(empty.deliveries.is_empty());
        assert_eq!(empty.wait_ms, Some(500), "the next token comes in half a second");
        assert_eq!(
            store.claim_deliveries(limited, "A", 1_250, 10).await.unwrap().deliveries.len(),
            0
        );
        assert_eq!(
            store.claim_deliveries(limited, "A", 1_500, 10).await.unwrap().deliveries.len(),
            1
        );
        assert_eq!(
            store.claim_deliveries(limited, "A", 2_500, 10).await.unwrap().deliveries.len(),
            2
        );
    }
}

#[tokio::test]
async fn failing_for_too_long_disables_a_destination_and_a_success_resets_the_run() {
    for db in each_backend().await {
        let store = db.store().await;
        let id = destination(&store, "flaky", json!({})).await;
        record(&store, &[Spec::new(1, "f-1").fine(1), Spec::new(1, "f-2").fine(1)], 0).await;
        let fail =
            |lease: &str, delivery_id: i64, now_ms: i64, update: DeliveryUpdate| Completion {
                delivery_id,
                destination_id: id,
                lease: lease.to_owned(),
                now_ms,
                update,
                attempt: None,
                status: Some(503),
                disable_after_ms: Some(60_000),
            };
        let c = store.claim_deliveries(id, "A", 0, 10).await.unwrap().deliveries;
        let done = store
            .complete_delivery(&fail("A", c[0].id, 0, DeliveryUpdate::Retry { at_ms: 30_000 }))
            .await
            .unwrap();
        assert_eq!(done.disabled, None);
        assert_eq!(store.destination(id).await.unwrap().unwrap().failing_since_ms, Some(0));
        store
            .complete_delivery(&fail("A", c[1].id, 10_000, DeliveryUpdate::Delivered))
            .await
            .unwrap();
        assert_eq!(
            store.destination(id).await.unwrap().unwrap().failing_since_ms,
            None,
            "a success ends the run"
        );

        let c = store.claim_deliveries(id, "B", 30_000, 10).await.unwrap().deliveries;
        store
            .complete_delivery(&fail("B", c[0].id, 30_000, DeliveryUpdate::Retry { at_ms: 40_000 }))
            .await
            .unwrap();
        let c = store.claim_deliveries(id, "C", 95_000, 10).await.unwrap().deliveries;
        let done = store
            .complete_delivery(&fail("C", c[0].id, 95_000, DeliveryUpdate::Retry { at_ms: 99_000 }))
            .await
            .unwrap();
        let reason = done.disabled.expect("failing for 65 s with a 60 s limit disables it");
        let stored = store.destination(id).await.unwrap().unwrap();
        assert!(!stored.enabled);
        assert_eq!(stored.disabled_reason.as_deref(), Some(reason.as_str()));
        assert!(
            store.claim_deliveries(id, "D", 200_000, 10).await.unwrap().deliveries.is_empty(),
            "disabled: nothing is sent"
        );

        // Enabling again clears the reason and the run; the pending delivery is sent again.
        let doc = stored.config.clone();
        store
            .update_destination(
                id,
                &NewDestination { name: "flaky".into(), enabled: true, config: doc, at_ms: 1 },
            )
            .await
            .unwrap();
        let stored = store.destination(id).await.unwrap().unwrap();
        assert_eq!(
            (stored.enabled, stored.disabled_reason, stored.failing_since_ms),
            (true, None, None)
        );
        assert_eq!(store.claim_deliveries(id, "E", 200_000, 10).await.unwrap().deliveries.len(), 1);
    }
}

#[tokio::test]
async fn retry_and_replay_queue_deliveries_again() {
    for db in each_backend().await {
        let store = db.store().await;
        let ids = record(
            &store,
            &[
                Spec::new(1, "r-1").fine(1),
                Spec::new(1, "r-2").fine(2),
                Spec::new(2, "r-3").fine(3),
            ],
            1_000,
        )
        .await;
        // Created after the postbacks: replay creates what is missing, within its filters.
        let id = destination(&store, "late", json!({"filters": {"apps": [1]}})).await;
        assert!(deliveries(&store, id).await.is_empty());
        let counts = store
            .replay(&ReplayRequest {
                destination_id: id,
                from_ms: 0,
                to_ms: 2_000,
                resend_delivered: false,
                at_ms: 3_000,
            })
            .await
            .unwrap();
        assert_eq!((counts.matched, counts.created, counts.requeued), (2, 2, 0));
        let list = deliveries(&store, id).await;
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|d| d.postback_id != Some(ids[2])));

        // Finish them: one delivered, one dead.
        let claimed = store.claim_deliveries(id, "A", 3_000, 10).await.unwrap().deliveries;
        for (c, update) in claimed
            .iter()
            .zip([DeliveryUpdate::Delivered, DeliveryUpdate::Dead { reason: "HTTP 400".into() }])
        {
            store
                .complete_delivery(&Completion {
                    delivery_id: c.id,
                    destination_id: id,
                    lease: "A".into(),
                    now_ms: 3_100,
                    update,
                    attempt: None,
                    status: None,
                    disable_after_ms: None,
                })
                .await
                .unwrap();
        }
        let counts = store
            .replay(&ReplayRequest {
                destination_id: id,
                from_ms: 0,
                to_ms: 2_000,
                resend_delivered: false,
                at_ms: 4_000,
            })
            .await
            .unwrap();
        assert_eq!((counts.created, counts.requeued), (0, 1), "only the dead one");
        let counts = store
            .replay(&ReplayRequest {
                destination_id: id,
                from_ms: 0,
                to_ms: 2_000,
                resend_delivered: true,
                at_ms: 4_000,
            })
            .await
            .unwrap();
        assert_eq!(
            (counts.created, counts.requeued),
            (0, 1),
            "the delivered one too (the dead one is pending already)"
        );
        let outside = store
            .replay(&ReplayRequest {
                destination_id: id,
                from_ms: 2_000,
                to_ms: 9_000,
                resend_delivered: true,
                at_ms: 4_000,
            })
            .await
            .unwrap();
        assert_eq!(outside.matched, 0);

        // A manual retry of a finished delivery gets one attempt; a leased one is refused.
        let claimed = store.claim_deliveries(id, "B", 4_000, 10).await.unwrap().deliveries;
        assert_eq!(claimed.len(), 2);
        assert!(claimed.iter().all(|c| c.attempt == 1 && !c.manual), "replay starts a new cycle");
        assert_eq!(
            store.retry_delivery(claimed[0].id, 4_100).await.unwrap(),
            RetryResult::InFlight
        );
        store
            .complete_delivery(&Completion {
                delivery_id: claimed[0].id,
                destination_id: id,
                lease: "B".into(),
                now_ms: 4_200,
                update: DeliveryUpdate::Dead { reason: "HTTP 404".into() },
                attempt: None,
                status: Some(404),
                disable_after_ms: None,
            })
            .await
            .unwrap();
        let RetryResult::Requeued(again) =
            store.retry_delivery(claimed[0].id, 5_000).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (again.state.as_str(), again.manual, again.next_attempt_at_ms),
            ("pending", true, 5_000)
        );
        let manual = store.claim_deliveries(id, "C", 5_000, 10).await.unwrap().deliveries;
        assert_eq!(manual.len(), 1);
        assert!(manual[0].manual);
        assert_eq!(store.retry_delivery(999_999, 5_000).await.unwrap(), RetryResult::NotFound);
        assert_eq!(DeliveryState::from_name(&again.state), Some(DeliveryState::Pending));
    }
}

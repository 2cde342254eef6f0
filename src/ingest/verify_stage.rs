//! The verification stage: requests with few items (single postbacks on Apple's path) hand them
//! to one thread, which parses, verifies and flattens everything queued together, so the P-256
//! signatures of concurrent requests share a batch's inversions (`verify_many`).
//!
//! It waits for nothing: a lone postback is checked as soon as it arrives. Items queue only while
//! the thread is checking a batch, and the next batch takes all of them (up to
//! [`MAX_BATCH_ITEMS`]), so batches grow with load and a quiet receiver adds one thread hop.

use std::sync::{Arc, mpsc};
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Prepared, prepare_all};
use crate::error_body::ErrorBody;
use crate::skan::KeySet;
use crate::store::ReceiptInput;

/// A batch takes no more requests once it holds this many items.
pub(super) const MAX_BATCH_ITEMS: usize = 256;

/// An item to prepare, with the error it was refused with before parsing, if any.
pub(super) type Item = (ReceiptInput, Option<ErrorBody>);

struct Job {
    items: Vec<Item>,
    queued: Instant,
    reply: oneshot::Sender<Vec<Prepared>>,
}

/// A handle on the stage's thread; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct VerifyStage {
    jobs: mpsc::Sender<Job>,
}

impl VerifyStage {
    /// Start the thread, or `None` when the system refuses one (the caller then prepares inline).
    pub(super) fn start(keys: Arc<KeySet>, max_postback_bytes: usize) -> Option<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("skan-verify".to_owned())
            .spawn(move || run(&queue, &keys, max_postback_bytes))
            .map_err(|err| tracing::warn!(%err, "no verification thread; verifying per request"))
            .ok()?;
        Some(Self { jobs })
    }

    /// `items` prepared, in order; `None` when the stage has stopped.
    pub(super) async fn prepare(&self, items: Vec<Item>) -> Option<Vec<Prepared>> {
        self.submit(items)?.await.ok()
    }

    fn submit(&self, items: Vec<Item>) -> Option<oneshot::Receiver<Vec<Prepared>>> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { items, queued: Instant::now(), reply }).ok()?;
        Some(answer)
    }
}

/// Take jobs until every handle is gone; returns how many batches it checked.
fn run(queue: &mpsc::Receiver<Job>, keys: &KeySet, max_postback_bytes: usize) -> usize {
    let mut batches = 0;
    while let Ok(first) = queue.recv() {
        let started = Instant::now();
        let mut items = first.items.len();
        let mut jobs = vec![first];
        while items < MAX_BATCH_ITEMS
            && let Ok(job) = queue.try_recv()
        {
            items += job.items.len();
            jobs.push(job);
        }
        for job in &jobs {
            metrics::histogram!("skan_verify_wait_seconds")
                .record(started.duration_since(job.queued).as_secs_f64());
        }
        metrics::histogram!("skan_verify_batch_items").record(items as f64);
        let mut replies = Vec::with_capacity(jobs.len());
        let mut all = Vec::with_capacity(items);
        for job in jobs {
            replies.push((job.items.len(), job.reply));
            all.extend(job.items);
        }
        let mut prepared = prepare_all(keys, max_postback_bytes, all).into_iter();
        for (count, reply) in replies {
            // A request whose client went away no longer listens; its items were still checked.
            let _ = reply.send(prepared.by_ref().take(count).collect());
        }
        batches += 1;
    }
    batches
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::loadgen::{FactoryConfig, PostbackFactory};
    use crate::store::{Channel, IngestItem};

    fn receipt(raw: Bytes) -> Item {
        (ReceiptInput { received_at_ms: 0, channel: Channel::Apple, source_name: None, raw }, None)
    }

    fn summary(prepared: &[Prepared]) -> Vec<String> {
        prepared
            .iter()
            .map(|p| match &p.item {
                IngestItem::Checked { postback, .. } => {
                    format!("{} {:?}", postback.dedup_key, postback.reason_code)
                }
                IngestItem::Rejected { error, .. } => format!("rejected {}", error.code),
            })
            .collect()
    }

    #[tokio::test]
    async fn queued_requests_are_checked_together_and_each_gets_its_own_items_back() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys");
        let keys = crate::apple_keys::load(Some(&dir)).expect("test keys");
        let config = FactoryConfig {
            app_ids: vec![1],
            ad_networks: vec!["n.skadnetwork".to_owned()],
            duplicate_ratio: 0.0,
            campaigns_per_network: 10,
            sign: true,
        };
        let mut factory = PostbackFactory::from_key_dir(&dir, 5, config).expect("factory");
        // 40 requests of 1-3 items: signed postbacks of every version, some altered after
        // signing (invalid) and some not JSON (rejected).
        let requests: Vec<Vec<Bytes>> = (0..40)
            .map(|r| {
                (0..1 + r % 3)
                    .map(|i| {
                        let raw = factory.next_postback();
                        match (r + i) % 7 {
                            // A signed field changed after signing.
                            3 => Bytes::from(String::from_utf8_lossy(&raw).replacen(
                                "n.skadnetwork",
                                "m.skadnetwork",
                                1,
                            )),
                            5 => Bytes::from_static(b"{not json"),
                            _ => Bytes::from(raw),
                        }
                    })
                    .collect()
            })
            .collect();
        let expected: Vec<Vec<String>> = requests
            .iter()
            .map(|raws| {
                summary(&prepare_all(&keys, 65_536, raws.iter().cloned().map(receipt).collect()))
            })
            .collect();
        assert!(
            expected.iter().flatten().any(|s| s.ends_with("None"))
                && expected.iter().flatten().any(|s| s.contains("Some"))
                && expected.iter().flatten().any(|s| s.starts_with("rejected")),
            "the requests mix valid, invalid and rejected items: {expected:?}"
        );

        // Every request is queued before the thread runs: one batch takes them all.
        let (jobs, queue) = mpsc::channel();
        let stage = VerifyStage { jobs };
        let answers: Vec<_> = requests
            .iter()
            .map(|raws| stage.submit(raws.iter().cloned().map(receipt).collect()).expect("queued"))
            .collect();
        drop(stage);
        let batches = std::thread::spawn(move || run(&queue, &keys, 65_536)).join().expect("run");
        for (answer, expected) in answers.into_iter().zip(&expected) {
            assert_eq!(&summary(&answer.await.expect("answer")), expected);
        }
        assert_eq!(batches, 1);

        // Started, the stage answers each request by itself as it comes.
        let keys = Arc::new(crate::apple_keys::load(Some(&dir)).expect("test keys"));
        let stage = VerifyStage::start(keys, 65_536).expect("thread");
        for (raws, expected) in requests.iter().zip(&expected).take(5) {
            let prepared = stage.prepare(raws.iter().cloned().map(receipt).collect()).await;
            assert_eq!(&summary(&prepared.expect("answer")), expected);
        }
    }
}

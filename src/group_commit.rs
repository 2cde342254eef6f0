//! Group commit: many concurrent writers, one transaction.
//!
//! Every caller hands its items to one batcher and waits for the outcome; the batcher writes
//! whatever has queued up as a single transaction as soon as a writer is free, so under load one
//! `fsync` covers hundreds of items, and at rest a lone item is written at once. A caller is
//! answered only after its transaction committed. Ingest commits postbacks this way, and the
//! dispatcher the results of its deliveries.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::store::StoreError;

/// One kind of grouped write: items in, one outcome per item out, all in one transaction.
pub trait GroupWrite: Send + Sync + 'static {
    /// What callers submit.
    type Item: Send + Sync + 'static;
    /// What each item turns into.
    type Outcome: Send + 'static;
    /// Names the write in metrics.
    const OPERATION: &'static str;

    /// Write `items` in one transaction, returning one outcome per item in order.
    fn write(
        &self,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Outcome>, StoreError>> + Send;
}

/// How commit groups are formed.
#[derive(Debug, Clone, Copy)]
pub struct CommitConfig {
    /// Most items in one transaction (a larger single request is still written whole).
    pub max_items: usize,
    /// How long to wait for a group to fill once it has its first item (0: do not wait).
    pub max_wait: Duration,
    /// Transactions written at the same time: 1 on SQLite (one writer), more on PostgreSQL.
    pub max_concurrent: usize,
}

type Reply<W> = oneshot::Sender<Result<Vec<<W as GroupWrite>::Outcome>, StoreError>>;

struct Job<W: GroupWrite> {
    items: Vec<W::Item>,
    reply: Reply<W>,
}

/// Submits items to the batcher; cheap to clone. When every handle is dropped the batcher
/// finishes what it holds and stops.
pub struct GroupHandle<W: GroupWrite> {
    sender: mpsc::Sender<Job<W>>,
}

impl<W: GroupWrite> Clone for GroupHandle<W> {
    fn clone(&self) -> Self {
        Self { sender: self.sender.clone() }
    }
}

impl<W: GroupWrite> std::fmt::Debug for GroupHandle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupHandle").field("operation", &W::OPERATION).finish()
    }
}

/// The batcher stopped (the service is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the commit queue is closed")]
pub struct CommitClosed;

impl<W: GroupWrite> GroupHandle<W> {
    /// Commit `items` (in one transaction with whatever else is queued) and return their
    /// outcomes in order, once durable.
    ///
    /// # Errors
    /// `Ok(Err(StoreError))` when the database failed; `Err(CommitClosed)` during shutdown.
    pub async fn commit(
        &self,
        items: Vec<W::Item>,
    ) -> Result<Result<Vec<W::Outcome>, StoreError>, CommitClosed> {
        if items.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let (reply, outcome) = oneshot::channel();
        self.sender.send(Job { items, reply }).await.map_err(|_| CommitClosed)?;
        outcome.await.map_err(|_| CommitClosed)
    }
}

/// Start the batcher; await the returned handle after dropping every [`GroupHandle`] to let it
/// drain.
pub fn spawn<W: GroupWrite>(
    writer: Arc<W>,
    config: CommitConfig,
) -> (GroupHandle<W>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(4096);
    let task = tokio::spawn(run(writer, receiver, config));
    (GroupHandle { sender }, task)
}

async fn run<W: GroupWrite>(
    writer: Arc<W>,
    mut receiver: mpsc::Receiver<Job<W>>,
    config: CommitConfig,
) {
    let writers = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
    let mut writing = JoinSet::new();
    loop {
        // Take a writer first: while every writer is busy, jobs keep queuing and form the next
        // group.
        let Ok(permit) = Arc::clone(&writers).acquire_owned().await else { break };
        let Some(first) = receiver.recv().await else { break };
        let mut count = first.items.len();
        let mut jobs = vec![first];
        while count < config.max_items {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.items.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if count < config.max_items && !config.max_wait.is_zero() {
            let deadline = tokio::time::Instant::now() + config.max_wait;
            while count < config.max_items {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(job)) => {
                        count += job.items.len();
                        jobs.push(job);
                    }
                    _ => break,
                }
            }
        }
        let writer = Arc::clone(&writer);
        writing.spawn(async move {
            write_group(writer.as_ref(), jobs).await;
            drop(permit);
        });
        while writing.try_join_next().is_some() {}
    }
    while writing.join_next().await.is_some() {}
}

/// Attempts for a group that fails with a transient error (deadlock, serialization, busy).
const TRANSIENT_ATTEMPTS: u32 = 3;

async fn write_group<W: GroupWrite>(writer: &W, jobs: Vec<Job<W>>) {
    let mut items = Vec::with_capacity(jobs.iter().map(|j| j.items.len()).sum());
    let mut parts: Vec<(Range<usize>, Reply<W>)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let start = items.len();
        items.extend(job.items);
        parts.push((start..items.len(), job.reply));
    }
    let started = Instant::now();
    let result = write_with_retry(writer, &items).await;
    metrics::histogram!("skan_commit_duration_seconds", "operation" => W::OPERATION)
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!("skan_commit_group_items", "operation" => W::OPERATION)
        .record(items.len() as f64);
    match result {
        Ok(mut outcomes) => {
            for (range, reply) in parts.into_iter().rev() {
                let mine = outcomes.split_off(range.start);
                let _ = reply.send(Ok(mine));
            }
        }
        Err(err) if parts.len() > 1 => {
            // One request's items may be what breaks the transaction: commit each request on
            // its own so the others still go through.
            tracing::warn!(error = %err, requests = parts.len(), "commit group failed; retrying requests one by one");
            for (range, reply) in parts {
                let _ = reply.send(write_with_retry(writer, &items[range]).await);
            }
        }
        Err(err) => {
            for (_, reply) in parts {
                let _ = reply.send(Err(clone_error(&err)));
            }
        }
    }
}

async fn write_with_retry<W: GroupWrite>(
    writer: &W,
    items: &[W::Item],
) -> Result<Vec<W::Outcome>, StoreError> {
    let mut attempt = 1;
    loop {
        match writer.write(items).await {
            Err(err) if err.is_unavailable() && attempt < TRANSIENT_ATTEMPTS => {
                metrics::counter!("skan_database_errors_total", "operation" => W::OPERATION)
                    .increment(1);
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(err) => {
                metrics::counter!("skan_database_errors_total", "operation" => W::OPERATION)
                    .increment(1);
                return Err(err);
            }
            ok => return ok,
        }
    }
}

/// `StoreError` holds a non-clonable source; requests sharing a failed group each get an error
/// of the same kind.
fn clone_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(e) => StoreError::Unavailable(sqlx::Error::Protocol(e.to_string())),
        StoreError::Duplicate(m) => StoreError::Duplicate(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        other => StoreError::Other(sqlx::Error::Protocol(other.to_string())),
    }
}

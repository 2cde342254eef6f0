//! Postbacks through group commit: concurrent requests share one transaction (see
//! [`crate::group_commit`]).

use std::sync::Arc;

use crate::group_commit::{self, GroupHandle, GroupWrite};
pub use crate::group_commit::{CommitClosed, CommitConfig};
use crate::store::{IngestItem, RecordOutcome, Store, StoreError};

/// Records postbacks with [`Store::record`].
#[derive(Debug)]
pub struct RecordWrite(pub Arc<dyn Store>);

impl GroupWrite for RecordWrite {
    type Item = IngestItem;
    type Outcome = RecordOutcome;
    const OPERATION: &'static str = "record";

    async fn write(&self, items: &[IngestItem]) -> Result<Vec<RecordOutcome>, StoreError> {
        self.0.record(items).await
    }
}

/// Submits postbacks to the batcher.
pub type CommitHandle = GroupHandle<RecordWrite>;

/// Start the postback batcher; await the returned handle after dropping every [`CommitHandle`]
/// to let it drain.
pub fn spawn(
    store: Arc<dyn Store>,
    config: CommitConfig,
) -> (CommitHandle, tokio::task::JoinHandle<()>) {
    group_commit::spawn(Arc::new(RecordWrite(store)), config)
}

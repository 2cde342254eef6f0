//! Reports: aggregates decoded with the schema in effect, turned into the metrics marketers read.

pub mod metrics;

pub use metrics::{Metrics, MetricsBuilder};

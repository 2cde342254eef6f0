//! Conversion-value schemas: the per-app dictionary from "fine value 37" or "coarse medium in
//! window 2" to events and revenue ranges.
//!
//! Pure: no I/O, no clock. [`model`] is the JSON document marketers edit, [`validate`] its rules,
//! [`decode`] the compiled lookup and version selection, [`generate`] builders for common layouts,
//! [`diff`] the value-by-value comparison of two versions.

pub mod decode;
pub mod diff;
pub mod generate;
pub mod model;
pub mod validate;

pub use decode::{CompiledSchema, DecodeStatus, Decoded, SchemaHistory, SchemaVersionEntry};
pub use diff::{SchemaDiff, diff};
pub use generate::{GenerateError, Generator};
pub use model::{EventCondition, Mapping, RevenueRange, Schema, ValueKey, WindowMapping};
pub use validate::{Finding, ValidationReport, validate};

//! Schema versions as the application sees them: apply, list, compare, decode with, simulate.
//!
//! Wraps the pure [`crate::schema`] module around the store and the clock. The HTTP handlers,
//! the CLI and start-up configuration all go through [`SchemaVersions`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::domain::aggregate::value_of;
use crate::schema::{
    CompiledSchema, Decoded, Schema, SchemaDiff, SchemaHistory, SchemaVersionEntry,
    ValidationReport, diff, validate,
};
use crate::skan::day_from_number;
use crate::store::{
    NewSchemaVersion, SchemaStore, StoreError, StoredPostback, StoredSchemaVersion,
};

/// Why a schema operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema has validation errors; nothing was stored.
    #[error("the schema has {} error(s)", .0.errors.len())]
    Invalid(ValidationReport),
    /// No such app schema or version.
    #[error("{0}")]
    NotFound(String),
    /// A stored document no longer parses (it was written by an incompatible version).
    #[error("stored schema is unreadable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A draft compared with the version in effect.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DraftDiff {
    /// The version compared against; null when the app has none in effect.
    pub against_version: Option<i64>,
    /// What the draft changes.
    #[serde(flatten)]
    pub diff: SchemaDiff,
}

/// A schema version as shown to users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchemaVersionView {
    /// The app (App Store ID).
    pub app_id: i64,
    /// Version number, 1 for the first.
    pub version: i64,
    /// When it takes effect (RFC 3339).
    pub effective_from: DateTime<Utc>,
    /// Who made it.
    pub author: String,
    /// Why.
    pub note: Option<String>,
    /// When it was stored (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// The schema.
    pub schema: Schema,
}

/// The result of applying a schema.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Applied {
    /// The new version.
    pub version: SchemaVersionView,
    /// The validation report (warnings only, since errors refuse the schema).
    pub report: ValidationReport,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn view(stored: &StoredSchemaVersion) -> Result<SchemaVersionView, SchemaError> {
    let schema: Schema = serde_json::from_str(&stored.document).map_err(|e| {
        SchemaError::Corrupt(format!("app {} version {}: {e}", stored.app_id, stored.version))
    })?;
    Ok(SchemaVersionView {
        app_id: stored.app_id,
        version: stored.version,
        effective_from: at(stored.effective_from_ms),
        author: stored.author.clone(),
        note: stored.note.clone(),
        created_at: at(stored.created_at_ms),
        schema,
    })
}

/// Schema versions over a store.
#[derive(Debug, Clone)]
pub struct SchemaVersions {
    store: Arc<dyn SchemaStore>,
    clock: Arc<dyn Clock>,
}

impl SchemaVersions {
    /// A service over `store`, reading time from `clock`.
    #[must_use]
    pub fn new(store: Arc<dyn SchemaStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Validate and store a new version; `effective_from` defaults to now.
    ///
    /// # Errors
    /// [`SchemaError::Invalid`] with the report when the schema has errors; store errors.
    pub async fn apply(
        &self,
        app_id: i64,
        schema: Schema,
        effective_from: Option<DateTime<Utc>>,
        author: &str,
        note: Option<String>,
    ) -> Result<Applied, SchemaError> {
        let report = validate(&schema);
        if !report.valid {
            return Err(SchemaError::Invalid(report));
        }
        let now = self.clock.now();
        let new = NewSchemaVersion {
            app_id,
            effective_from_ms: effective_from.unwrap_or(now).timestamp_millis(),
            author: author.to_owned(),
            note,
            document: serde_json::to_string(&schema)
                .map_err(|e| SchemaError::Corrupt(e.to_string()))?,
            created_at_ms: now.timestamp_millis(),
        };
        // Two writers may pick the same version number at once; the loser takes the next one.
        let mut attempts = 0;
        let stored = loop {
            match self.store.insert_schema_version(&new).await {
                Err(StoreError::Duplicate(_)) if attempts < 5 => attempts += 1,
                other => break other?,
            }
        };
        Ok(Applied { version: view(&stored)?, report })
    }

    /// Apply `schema` unless it equals the latest stored version (used for schemas given in the
    /// settings file, so restarts do not pile up identical versions).
    ///
    /// # Errors
    /// As [`Self::apply`].
    pub async fn apply_if_changed(
        &self,
        app_id: i64,
        schema: Schema,
        effective_from: Option<DateTime<Utc>>,
        author: &str,
        note: Option<String>,
    ) -> Result<Option<Applied>, SchemaError> {
        let versions = self.store.schema_versions(app_id).await?;
        if let Some(latest) = versions.last()
            && view(latest)?.schema == schema
        {
            return Ok(None);
        }
        self.apply(app_id, schema, effective_from, author, note).await.map(Some)
    }

    /// Every version of an app's schema, oldest first.
    ///
    /// # Errors
    /// Store errors; a stored document that no longer parses.
    pub async fn versions(&self, app_id: i64) -> Result<Vec<SchemaVersionView>, SchemaError> {
        self.store.schema_versions(app_id).await?.iter().map(view).collect()
    }

    /// One version.
    ///
    /// # Errors
    /// [`SchemaError::NotFound`] when the app has no such version.
    pub async fn version(
        &self,
        app_id: i64,
        version: i64,
    ) -> Result<SchemaVersionView, SchemaError> {
        self.versions(app_id).await?.into_iter().find(|v| v.version == version).ok_or_else(|| {
            SchemaError::NotFound(format!("app {app_id} has no schema version {version}"))
        })
    }

    /// The version in effect now.
    ///
    /// # Errors
    /// [`SchemaError::NotFound`] when none is in effect (none stored, or only future ones).
    pub async fn current(&self, app_id: i64) -> Result<SchemaVersionView, SchemaError> {
        let now = self.clock.now();
        let versions = self.versions(app_id).await?;
        let current = versions
            .iter()
            .filter(|v| v.effective_from <= now)
            .max_by_key(|v| (v.effective_from, v.version))
            .cloned();
        match (current, versions.first()) {
            (Some(current), _) => Ok(current),
            (None, None) => Err(SchemaError::NotFound(format!("app {app_id} has no schema"))),
            (None, Some(_)) => Err(SchemaError::NotFound(format!(
                "app {app_id} has no schema version in effect yet; see its versions"
            ))),
        }
    }

    /// What changed from version `from` to version `to`.
    ///
    /// # Errors
    /// [`SchemaError::NotFound`] for a missing version.
    pub async fn diff(&self, app_id: i64, from: i64, to: i64) -> Result<SchemaDiff, SchemaError> {
        let (a, b) = (self.version(app_id, from).await?, self.version(app_id, to).await?);
        Ok(diff(&compile(a.schema)?, &compile(b.schema)?))
    }

    /// What a draft would change against the version in effect now (against an empty schema
    /// when none is in effect).
    ///
    /// # Errors
    /// [`SchemaError::Invalid`] for a draft with errors; store errors.
    pub async fn diff_draft(&self, app_id: i64, draft: Schema) -> Result<DraftDiff, SchemaError> {
        let draft = compile(draft)?;
        let (against_version, before) = match self.current(app_id).await {
            Ok(current) => (Some(current.version), compile(current.schema)?),
            Err(SchemaError::NotFound(_)) => {
                (None, compile(Schema { currency: None, windows: Vec::new() })?)
            }
            Err(e) => return Err(e),
        };
        Ok(DraftDiff { against_version, diff: diff(&before, &draft) })
    }

    /// Every version of an app, compiled, for decoding.
    ///
    /// # Errors
    /// Store errors; a stored document that no longer parses or validates.
    pub async fn history(&self, app_id: i64) -> Result<SchemaHistory, SchemaError> {
        let entries = self
            .versions(app_id)
            .await?
            .into_iter()
            .map(|v| {
                Ok(SchemaVersionEntry {
                    version: v.version,
                    effective_from: v.effective_from,
                    schema: Arc::new(compile(v.schema)?),
                })
            })
            .collect::<Result<Vec<_>, SchemaError>>()?;
        Ok(SchemaHistory::new(entries))
    }

    /// What a stored postback means, under the schema in effect for its install day.
    ///
    /// # Errors
    /// Store errors.
    pub async fn decode_postback(&self, postback: &StoredPostback) -> Result<Decoded, SchemaError> {
        let history = self.history(postback.app_id).await?;
        Ok(history.decode(
            day_from_number(postback.install_day),
            u8::try_from(postback.window).unwrap_or(0),
            value_of(postback.fine_value, postback.coarse_value.as_deref()),
        ))
    }
}

/// Compile a schema, turning validation errors into [`SchemaError::Invalid`].
pub(crate) fn compile(schema: Schema) -> Result<CompiledSchema, SchemaError> {
    CompiledSchema::compile(schema).map_err(SchemaError::Invalid)
}

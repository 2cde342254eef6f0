//! Schema versions in SQL: one row per version, the document as JSON text.

use sqlx::QueryBuilder;

use super::{NewSchemaVersion, StoreError, StoredSchemaVersion};

const SCHEMA_VERSION_COLUMNS: &str =
    "app_id, version, effective_from, author, note, document, created_at";

super::sql::sql_impl! {
    pub(crate) async fn insert_schema_version(
        &self,
        new: &NewSchemaVersion,
    ) -> Result<StoredSchemaVersion, StoreError> {
        let mut tx = DB::begin_write(&self.pool).await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM schema_versions WHERE app_id = $1",
        )
        .bind(new.app_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO schema_versions (app_id, version, effective_from, author, note, document, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.app_id)
        .bind(next)
        .bind(new.effective_from_ms)
        .bind(new.author.as_str())
        .bind(new.note.as_deref())
        .bind(new.document.as_str())
        .bind(new.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredSchemaVersion {
            app_id: new.app_id,
            version: next,
            effective_from_ms: new.effective_from_ms,
            author: new.author.clone(),
            note: new.note.clone(),
            document: new.document.clone(),
            created_at_ms: new.created_at_ms,
        })
    }


    pub(crate) async fn schema_versions(
        &self,
        app_id: i64,
    ) -> Result<Vec<StoredSchemaVersion>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions WHERE app_id = "
        ));
        query.push_bind(app_id).push(" ORDER BY version");
        Ok(query.build_query_as::<StoredSchemaVersion>().fetch_all(&self.pool).await?)
    }

}

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
        let mut tx = DB::begin_write(&self.writer).await?;
        if let Some(lock) = DB::PERIODS_LOCK_EXCLUSIVE {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        Self::split_period(&mut tx, new.app_id, new.effective_from_ms.div_euclid(86_400_000))
            .await?;
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


    /// Before a version taking effect on `day` is stored: move the rollup counts of installs from
    /// that day to the next version's start out of the period they were in, into the new one,
    /// recomputed from the aggregates (which keep the install day).
    async fn split_period(
        tx: &mut sqlx::Transaction<'static, DB>,
        app_id: i64,
        day: i64,
    ) -> Result<(), StoreError> {
        let starts = Self::period_starts(tx, &std::collections::BTreeSet::from([app_id])).await?;
        let starts = starts.get(&app_id).cloned().unwrap_or_default();
        if starts.contains(&day) {
            return Ok(());
        }
        let old_period = super::rollup::period_day(&starts, day);
        let end = starts.iter().copied().find(|s| *s > day).unwrap_or(i64::MAX);
        // One install day at a time, so memory holds a day's aggregates, not the app's.
        let mut q = QueryBuilder::<DB>::new(
            "SELECT DISTINCT install_day FROM aggregates WHERE app_id = ",
        );
        q.push_bind(app_id).push(" AND install_day >= ").push_bind(day);
        q.push(" AND install_day < ").push_bind(end).push(" ORDER BY 1");
        let days: Vec<(i64,)> = q.build_query_as().fetch_all(&mut **tx).await?;
        for (install_day,) in days {
            let mut q = QueryBuilder::<DB>::new(format!(
                "SELECT {} FROM aggregates WHERE app_id = ",
                super::reports::AGGREGATE_COLUMNS
            ));
            q.push_bind(app_id).push(" AND install_day = ").push_bind(install_day);
            let rows: Vec<super::reports::AggregateRecord> =
                q.build_query_as().fetch_all(&mut **tx).await?;
            let mut cells = std::collections::BTreeMap::new();
            for row in rows {
                let row = super::AggregateRow::from(row);
                let (key, n, mismatch) = (&row.key, row.postbacks, row.unsigned_mismatch);
                super::rollup::add(&mut cells, key, -n, -mismatch, old_period);
                super::rollup::add(&mut cells, key, n, mismatch, day);
            }
            Self::write_rollup(tx, cells).await?;
        }
        Ok(())
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

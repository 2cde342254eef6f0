//! API keys in SQL: only hashes are stored; revocation is a timestamp.

use sqlx::{FromRow, QueryBuilder};

use super::{ApiKey, NewApiKey, Role, StoreError};

const INSERT_API_KEY: &str = "INSERT INTO api_keys (name, role, key_hash, key_prefix, created_at, \
     allowed_networks) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

const API_KEY_COLUMNS: &str =
    "id, name, role, key_prefix, created_at, revoked_at, allowed_networks";

#[derive(FromRow)]
pub(super) struct ApiKeyRow {
    id: i64,
    name: String,
    role: String,
    key_prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
    allowed_networks: Option<String>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let role = Role::from_name(&row.role).ok_or_else(|| {
            StoreError::Corrupt(format!("api key {}: role {:?}", row.name, row.role))
        })?;
        let allowed_networks = row
            .allowed_networks
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                n.trim().parse().map_err(|e| {
                    StoreError::Corrupt(format!("api key {}: network {n:?}: {e}", row.name))
                })
            })
            .collect::<Result<Vec<ipnet::IpNet>, StoreError>>()?;
        Ok(Self {
            id: row.id,
            name: row.name,
            role,
            key_prefix: row.key_prefix,
            created_at_ms: row.created_at,
            revoked_at_ms: row.revoked_at,
            allowed_networks,
        })
    }
}

super::sql::sql_impl! {
    pub(super) async fn revocation_mark(&self) -> Result<(i64, Option<i64>), StoreError> {
        let mark: (i64, Option<i64>) = sqlx::query_as(
            "SELECT CAST(COUNT(revoked_at) AS BIGINT), MAX(revoked_at) FROM api_keys",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(mark)
    }

    pub(crate) async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError> {
        let networks = (!key.allowed_networks.is_empty()).then(|| {
            key.allowed_networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        });
        let (id,): (i64,) = sqlx::query_as(INSERT_API_KEY)
            .bind(key.name.as_str())
            .bind(key.role.as_str())
            .bind(key.key_hash.as_str())
            .bind(key.key_prefix.as_str())
            .bind(key.created_at_ms)
            .bind(networks.as_deref())
            .fetch_one(&self.writer)
            .await?;
        Ok(ApiKey {
            id,
            name: key.name.clone(),
            role: key.role,
            key_prefix: key.key_prefix.clone(),
            created_at_ms: key.created_at_ms,
            revoked_at_ms: None,
            allowed_networks: key.allowed_networks.clone(),
        })
    }


    pub(crate) async fn api_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL AND key_hash = "
        ));
        query.push_bind(key_hash);
        let row = query.build_query_as::<ApiKeyRow>().fetch_optional(&self.pool).await?;
        row.map(ApiKey::try_from).transpose()
    }


    pub(crate) async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut query =
            QueryBuilder::<DB>::new(format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id"));
        let rows = query.build_query_as::<ApiKeyRow>().fetch_all(&self.pool).await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }


    pub(crate) async fn revoke_api_key(&self, name: &str, at_ms: i64) -> Result<bool, StoreError> {
        let revoked: Option<(i64,)> = sqlx::query_as(
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(at_ms)
        .bind(name)
        .fetch_optional(&self.writer)
        .await?;
        Ok(revoked.is_some())
    }

}

//! Storage of API clients and their bearer tokens. Only hashes of secrets and tokens
//! are stored; the security layer generates and checks them.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError};

/// A registered API client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    /// Space-separated SMART scopes.
    pub scopes: String,
    /// Space-separated campus ids, or `*` for every campus.
    pub campuses: String,
    /// Patient compartment the client is limited to, if any.
    pub patient: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
}

/// A live token with what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub client: ClientRecord,
    pub scopes: String,
    pub expires_at: i64,
}

fn client_from_row(row: &AnyRow) -> Result<ClientRecord> {
    Ok(ClientRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: row.try_get("scopes")?,
        campuses: row.try_get("campuses")?,
        patient: row.try_get("patient")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, scopes, campuses, patient, disabled, created_at";

impl Store {
    pub async fn insert_client(&self, c: &ClientRecord) -> Result<()> {
        let res = sqlx::query(
            "INSERT INTO api_clients (id, name, secret_hash, scopes, campuses, patient, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id.clone())
        .bind(c.name.clone())
        .bind(c.secret_hash.clone())
        .bind(c.scopes.clone())
        .bind(c.campuses.clone())
        .bind(c.patient.clone())
        .bind(i64::from(c.disabled))
        .bind(c.created_at)
        .execute(&self.write_pool())
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::AlreadyExists { resource_type: "client".into(), id: c.name.clone() })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY name")))
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Disables a client and revokes its tokens; false if no such client.
    pub async fn disable_client(&self, name: &str) -> Result<bool> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let row = sqlx::query("SELECT id FROM api_clients WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let id: String = row.try_get(0)?;
        sqlx::query("UPDATE api_clients SET disabled = 1 WHERE id = $1").bind(id.clone()).execute(&mut *tx).await?;
        sqlx::query("UPDATE access_tokens SET revoked = 1 WHERE client_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn insert_token(
        &self,
        token_hash: &str,
        client_id: &str,
        scopes: &str,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, client_id, scopes, issued_at, expires_at, revoked) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(token_hash.to_string())
        .bind(client_id.to_string())
        .bind(scopes.to_string())
        .bind(issued_at)
        .bind(expires_at)
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }

    /// The token with this hash if it is neither expired (at `now_ms`) nor revoked
    /// and its client is enabled.
    pub async fn live_token(&self, token_hash: &str, now_ms: i64) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT t.scopes AS token_scopes, t.expires_at, c.id, c.name, c.secret_hash, c.scopes, c.campuses, c.patient, \
             c.disabled, c.created_at FROM access_tokens t JOIN api_clients c ON c.id = t.client_id \
             WHERE t.token_hash = $1 AND t.revoked = 0 AND t.expires_at > $2 AND c.disabled = 0",
        )
        .bind(token_hash.to_string())
        .bind(now_ms)
        .fetch_optional(&self.read_pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TokenRecord {
            client: client_from_row(&row)?,
            scopes: row.try_get("token_scopes")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Removes tokens that expired before `now_ms`; returns how many.
    pub async fn purge_expired_tokens(&self, now_ms: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM access_tokens WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(&self.write_pool())
            .await?;
        Ok(r.rows_affected())
    }
}

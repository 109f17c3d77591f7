//! Named counters: the next number of a sequence, taken atomically (one row per
//! name, incremented in its own short transaction on the writer).

use sqlx::Row;

use crate::{Result, Store};

impl Store {
    /// The next value of counter `name`: `first` the first time, then one more on
    /// every call. Values are never handed out twice, also across processes.
    pub async fn next_counter(&self, name: &str, first: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO counters (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .bind(name.to_string())
        .bind(first)
        .fetch_one(&self.write_pool())
        .await?;
        Ok(row.try_get(0)?)
    }

    /// The position of an internal follower of the outbox (`cursor:<name>` in
    /// `counters`; `None` before it was first set). The outbox keeps every event after it.
    pub async fn cursor(&self, name: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT value FROM counters WHERE name = $1")
            .bind(format!("cursor:{name}"))
            .fetch_optional(&self.read_pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Moves an internal follower's cursor (forward only).
    pub async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO counters (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE counters.value < excluded.value",
        )
        .bind(format!("cursor:{name}"))
        .bind(value)
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }
}

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
        .fetch_one(&self.write)
        .await?;
        Ok(row.try_get(0)?)
    }
}

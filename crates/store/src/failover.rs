//! Failover to a promoted standby. With failover databases configured, the primary
//! is checked every second; once it has been unreachable or read-only for three
//! checks in a row, the databases after it in the list (then the ones before, in
//! order) are tried, and the first that answers and is not in recovery — a standby
//! the DBA promoted — takes the primary's place: new writes and reads go there, and
//! the old primary's pool is closed. The store never goes back by itself to a
//! database it left (the old primary must be rebuilt as a standby first), and it
//! never promotes anything: promotion is the DBA's decision (`pg_ctl promote`), which
//! keeps two primaries from ever taking writes. With synchronous replication every
//! acknowledged write is on the promoted standby.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use sqlx::AnyPool;

use crate::{Backend, Pools, Result, Store, StoreError, connect_options, postgres_pool};

/// Checks of a lost primary before the next database is tried.
const MISSES: u32 = 3;

impl Store {
    /// Fails over to the first writable database of `urls` (PostgreSQL standbys of
    /// this primary, tried in order) when the primary is lost; see the module
    /// documentation.
    pub fn with_failover(mut self, primary: &str, urls: &[String]) -> Result<Store> {
        if self.backend != Backend::Postgres
            || urls.iter().any(|u| !(u.starts_with("postgres:") || u.starts_with("postgresql:")))
        {
            return Err(StoreError::Refused(
                "failover_database_url: failover databases are PostgreSQL standbys of a PostgreSQL primary".into(),
            ));
        }
        let mut all = vec![primary.to_string()];
        all.extend(urls.iter().cloned());
        let alive = self._alive.get_or_insert_with(|| Arc::new(())).clone();
        tokio::spawn(watch(self.pools.clone(), all, Arc::downgrade(&alive)));
        Ok(self)
    }
}

/// Whether `pool` answers within 3 s as a primary (not in recovery).
async fn writable(pool: &AnyPool) -> bool {
    let check = sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(pool);
    matches!(tokio::time::timeout(Duration::from_secs(3), check).await, Ok(Ok(false)))
}

async fn watch(pools: Arc<RwLock<Pools>>, urls: Vec<String>, alive: Weak<()>) {
    let mut current = 0;
    let mut misses = 0;
    let mut told = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if alive.upgrade().is_none() {
            return;
        }
        let pool = pools.read().unwrap_or_else(std::sync::PoisonError::into_inner).write.clone();
        if writable(&pool).await {
            misses = 0;
            told = false;
            continue;
        }
        misses += 1;
        if misses < MISSES {
            continue;
        }
        if !told {
            tracing::error!(database = current, "the primary database is lost; looking for a promoted standby");
            told = true;
        }
        for step in 1..urls.len() {
            let next = (current + step) % urls.len();
            let Some(options) = urls.get(next).and_then(|u| connect_options(u).ok()) else { continue };
            let Ok(Ok(candidate)) =
                tokio::time::timeout(Duration::from_secs(3), postgres_pool().connect_with(options)).await
            else {
                continue;
            };
            if !writable(&candidate).await {
                candidate.close().await;
                continue;
            }
            let old = std::mem::replace(
                &mut *pools.write().unwrap_or_else(std::sync::PoisonError::into_inner),
                Pools { read: candidate.clone(), write: candidate },
            );
            tracing::warn!(from = current, to = next, "failed over: the promoted standby is the primary now");
            tokio::spawn(async move { old.write.close().await });
            current = next;
            misses = 0;
            told = false;
            break;
        }
    }
}

//! A PostgreSQL hot standby for reads (fed by streaming replication from the primary).
//!
//! Only reads made inside [`reading_as`] go there — the web layer wraps each GET of a
//! signed-in session or token in it — and only FHIR reads and searches: writes, the
//! reads a write makes, background work and the HL7 applier stay on the primary.
//! A session's reads go to the primary until the standby has replayed the primary's
//! WAL position noted after that session's last write ([`Store::note_write`]), so
//! nobody reads a page older than their own change. The standby is watched several
//! times a second: while it is unreachable, not in recovery, or further behind than
//! the allowed lag, every read goes to the primary and [`Store::standby_status`] says
//! why; a read that fails on the standby is made again on the primary.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::sql::Sql;
use crate::{Result, Store};

tokio::task_local! {
    static READER: String;
}

/// Runs `work` as the reads of `key` (a session or a token): its FHIR reads and
/// searches may be served by the standby.
pub async fn reading_as<F: std::future::Future>(key: String, work: F) -> F::Output {
    READER.scope(key, work).await
}

/// How the standby stands, for `/healthz`, `/metrics` and monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StandbyStatus {
    /// Whether reads go to it now.
    pub in_use: bool,
    /// How far its replay is behind the primary (none until first measured).
    pub lag_ms: Option<i64>,
    /// Why reads go to the primary instead.
    pub problem: Option<String>,
    /// Reads it served, and reads that could have gone to it but went to the primary.
    pub reads: u64,
    pub fallbacks: u64,
}

#[derive(Debug, Default)]
struct State {
    in_use: bool,
    /// The WAL position the standby has replayed.
    replayed: u64,
    lag_ms: Option<i64>,
    problem: Option<String>,
    /// Each session's WAL position after its last write.
    fences: HashMap<String, u64>,
    /// The primary's WAL position at each check, oldest first, while not replayed.
    behind: VecDeque<(Instant, u64)>,
}

/// The standby's pool and what the watch last saw.
#[derive(Debug)]
pub(crate) struct Standby {
    pool: AnyPool,
    max_lag: Duration,
    state: Mutex<State>,
    reads: AtomicU64,
    fallbacks: AtomicU64,
}

/// `X/Y` (two hexadecimal halves) as one number.
fn lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Checks between watches of the standby.
const WATCH_EVERY: Duration = Duration::from_millis(200);

impl Standby {
    pub(crate) fn new(pool: AnyPool, max_lag: Duration) -> Standby {
        let state = State { problem: Some("not checked yet".into()), ..State::default() };
        Standby { pool, max_lag, state: Mutex::new(state), reads: AtomicU64::new(0), fallbacks: AtomicU64::new(0) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this read may go to the standby.
    fn serves(&self) -> bool {
        let Ok(key) = READER.try_with(String::clone) else { return false };
        let s = self.state();
        let fresh = s.fences.get(&key).is_none_or(|fence| *fence <= s.replayed);
        if !(s.in_use && fresh) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        s.in_use && fresh
    }

    /// A read on the standby failed: it is not used until the watch finds it well.
    fn failed(&self, e: &sqlx::Error) {
        let mut s = self.state();
        if s.in_use {
            tracing::warn!(error = %e, "a read on the standby failed; reads go to the primary");
        }
        s.in_use = false;
        s.problem = Some(format!("a read failed: {e}"));
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// One look at the standby against the primary's current WAL position.
    async fn watch_once(&self, primary: &AnyPool) {
        let now = Instant::now();
        let position = async {
            let row = sqlx::query("SELECT pg_current_wal_lsn()::text").fetch_one(primary).await?;
            Ok::<_, sqlx::Error>(lsn(&row.try_get::<String, _>(0)?).unwrap_or(0))
        };
        let standby = async {
            let row = sqlx::query("SELECT pg_is_in_recovery(), COALESCE(pg_last_wal_replay_lsn()::text, '0/0')")
                .fetch_one(&self.pool)
                .await?;
            Ok::<_, sqlx::Error>((row.try_get::<bool, _>(0)?, lsn(&row.try_get::<String, _>(1)?).unwrap_or(0)))
        };
        let seen = tokio::time::timeout(Duration::from_secs(2), async { (position.await, standby.await) }).await;
        let mut s = self.state();
        let was = s.in_use;
        match seen {
            Err(_) => {
                s.in_use = false;
                s.problem = Some("the standby did not answer within 2 s".into());
            }
            Ok((Err(e), _)) => {
                // The primary's trouble is the primary's: reads go there anyway.
                s.in_use = false;
                s.problem = Some(format!("the primary's WAL position: {e}"));
            }
            Ok((_, Err(e))) => {
                s.in_use = false;
                s.problem = Some(format!("the standby is unreachable: {e}"));
            }
            Ok((Ok(_), Ok((false, _)))) => {
                s.in_use = false;
                s.problem = Some("the standby is not in recovery (promoted?)".into());
            }
            Ok((Ok(primary), Ok((true, replayed)))) => {
                s.replayed = replayed;
                if s.behind.back().is_none_or(|(_, p)| *p < primary) {
                    s.behind.push_back((now, primary));
                }
                while s.behind.front().is_some_and(|(_, p)| *p <= replayed) {
                    s.behind.pop_front();
                }
                while s.behind.len() > 10_000 {
                    s.behind.pop_front();
                }
                let lag = s.behind.front().map_or(Duration::ZERO, |(at, _)| now.duration_since(*at));
                s.lag_ms = Some(i64::try_from(lag.as_millis()).unwrap_or(i64::MAX));
                s.fences.retain(|_, fence| *fence > replayed);
                if lag > self.max_lag {
                    s.in_use = false;
                    s.problem = Some(format!(
                        "the standby is {:.1} s behind (allowed: {:.1} s)",
                        lag.as_secs_f64(),
                        self.max_lag.as_secs_f64()
                    ));
                } else {
                    s.in_use = true;
                    s.problem = None;
                }
            }
        }
        match (was, s.in_use) {
            (true, false) => {
                tracing::warn!(problem = s.problem.as_deref().unwrap_or_default(), "reads go to the primary")
            }
            (false, true) => tracing::info!("reads go to the standby again"),
            _ => {}
        }
    }

    fn status(&self) -> StandbyStatus {
        let s = self.state();
        StandbyStatus {
            in_use: s.in_use,
            lag_ms: s.lag_ms,
            problem: s.problem.clone(),
            reads: self.reads.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// Watches the standby while the store is alive.
pub(crate) async fn watch(
    standby: std::sync::Arc<Standby>,
    pools: std::sync::Arc<std::sync::RwLock<crate::Pools>>,
    alive: std::sync::Weak<()>,
) {
    loop {
        let primary = pools.read().unwrap_or_else(std::sync::PoisonError::into_inner).write.clone();
        if alive.upgrade().is_none() || primary.is_closed() {
            standby.pool.close().await;
            return;
        }
        standby.watch_once(&primary).await;
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

impl Store {
    /// The standby for this read, if it may serve it.
    fn standby_for_read(&self) -> Option<&Standby> {
        self.standby.as_deref().filter(|s| s.serves())
    }

    /// The rows of `sql`, from the standby when this read may go there (and from the
    /// primary if it fails there).
    pub(crate) async fn routed_all(&self, sql: &Sql) -> Result<Vec<AnyRow>> {
        if let Some(s) = self.standby_for_read() {
            match sql.query(self.backend).fetch_all(&s.pool).await {
                Ok(rows) => {
                    s.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(rows);
                }
                Err(e) => s.failed(&e),
            }
        }
        Ok(sql.query(self.backend).fetch_all(&self.read_pool()).await?)
    }

    /// [`Store::routed_all`] of a query answering one row.
    pub(crate) async fn routed_one(&self, sql: &Sql) -> Result<AnyRow> {
        if let Some(s) = self.standby_for_read() {
            match sql.query(self.backend).fetch_one(&s.pool).await {
                Ok(row) => {
                    s.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(row);
                }
                Err(e) => s.failed(&e),
            }
        }
        Ok(sql.query(self.backend).fetch_one(&self.read_pool()).await?)
    }

    /// Notes the primary's WAL position after a write by `key`: its reads go to the
    /// primary until the standby has replayed that far. Nothing without a standby.
    pub async fn note_write(&self, key: &str) -> Result<()> {
        let Some(s) = &self.standby else { return Ok(()) };
        let row = sqlx::query("SELECT pg_current_wal_lsn()::text").fetch_one(&self.write_pool()).await?;
        let at = lsn(&row.try_get::<String, _>(0)?).unwrap_or(u64::MAX);
        s.state().fences.insert(key.to_string(), at);
        Ok(())
    }

    /// How the read standby stands; none without one.
    pub fn standby_status(&self) -> Option<StandbyStatus> {
        self.standby.as_ref().map(|s| s.status())
    }
}

#[cfg(test)]
mod tests {
    use super::lsn;

    #[test]
    fn wal_positions_read_as_numbers_in_order() {
        assert_eq!(lsn("0/0"), Some(0));
        assert_eq!(lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert!(lsn("1/0") > lsn("0/FFFFFFFF"));
        assert_eq!(lsn("nonsense"), None);
    }
}

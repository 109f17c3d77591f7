//! Time and id sources. Services never read the system clock or generate ids
//! directly, so tests can pin both (STYLE.md habit 7).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The current time in epoch milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// Wall-clock time, never going backwards within the process (so versions written
/// in sequence get non-decreasing `lastUpdated`).
#[derive(Debug, Default)]
pub struct SystemClock {
    last: AtomicI64,
}

impl Clock for SystemClock {
    // The one reader of the wall clock (clippy.toml disallows it elsewhere).
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let prev = self.last.fetch_max(wall, Ordering::Relaxed);
        prev.max(wall)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }

    /// Moves the clock to `ms` (back or forth).
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// New resource ids.
pub trait IdSource: Send + Sync + std::fmt::Debug {
    fn new_id(&self) -> String;
}

/// Time-ordered UUIDs (version 7: a millisecond timestamp, then 74 random bits), the
/// server-assigned FHIR ids. New ids sort after older ones, so every index keyed by
/// resource id grows at its right edge instead of at random pages: the difference
/// between inserts that hit the cache and inserts that read the disk once the
/// database outgrows memory. (The creation time they reveal is already in
/// `meta.lastUpdated` of the first version.)
#[derive(Debug, Default)]
pub struct UuidIds;

impl IdSource for UuidIds {
    fn new_id(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

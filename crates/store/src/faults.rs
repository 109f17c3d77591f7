//! Telling a database that is full from one that fails otherwise.
//!
//! A write that fails because the disk under the database is full (SQLite's
//! `SQLITE_FULL`, PostgreSQL's `53100 disk_full`, an `ENOSPC` from the driver) is
//! noted here as it becomes a [`crate::StoreError`]; the next committed write clears
//! the note. The web layer asks [`storage_full`] when a request failed, to answer
//! "the disk is full" (507) instead of a bare internal error, and the MLLP listener
//! to send no ACK (the sender keeps the message and sends it again). The note is the
//! process's, not one store's: a server has one database; in a test process running
//! several stores at once a disk-full on one would name the others' failures too.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds after [`start`] of the last disk-full failure, plus one (0: none
/// since the last committed write).
static FULL_AT: AtomicU64 = AtomicU64::new(0);

/// A disk-full note older than this no longer names a failure: nothing was written
/// in that time, and the next write will say again if the disk is still full.
const REMEMBERED: Duration = Duration::from_secs(60);

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn since_start() -> u64 {
    u64::try_from(start().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether a driver error says the disk under the database is full.
pub fn is_storage_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("13" | "53100")),
        sqlx::Error::Io(io) => io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

/// Notes `e` if it says the disk is full.
pub(crate) fn note(e: &sqlx::Error) {
    if is_storage_full(e) {
        FULL_AT.store(since_start().saturating_add(1), Ordering::Relaxed);
    }
}

/// A write was committed: the disk has room again.
pub(crate) fn clear() {
    if FULL_AT.load(Ordering::Relaxed) != 0 {
        FULL_AT.store(0, Ordering::Relaxed);
    }
}

/// Whether a write failed for lack of disk space in the last minute, with no write
/// committed since.
pub fn storage_full() -> bool {
    match FULL_AT.load(Ordering::Relaxed) {
        0 => false,
        at => since_start().saturating_sub(at - 1) < REMEMBERED.as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_of_no_space_is_storage_full() {
        let e = sqlx::Error::Io(std::io::Error::from_raw_os_error(28));
        assert!(is_storage_full(&e));
        assert!(!is_storage_full(&sqlx::Error::Io(std::io::Error::from_raw_os_error(13))));
        assert!(!is_storage_full(&sqlx::Error::RowNotFound));
    }
}

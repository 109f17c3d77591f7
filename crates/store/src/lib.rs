//! The resource store: current versions, full history and search-index tables on
//! SQLite (embedded, WAL) or PostgreSQL, through one code base on sqlx's Any driver.
//!
//! The store knows FHIR only as far as storage needs: it stamps `meta.versionId` and
//! `meta.lastUpdated`, keeps every version, and answers typed search requests with
//! SQL. It knows nothing of HTTP, users or workflows; callers validate and extract
//! index rows before writing. Dialect differences live in [`Backend`].
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod announcements;
pub mod audit;
pub mod backup;
pub mod break_glass;
pub mod changes;
pub mod clients;
pub mod cmdb;
pub mod copy;
mod counters;
pub mod deposits;
pub mod desk;
pub mod equipment;
mod failover;
pub mod faults;
pub mod feedback;
pub mod figures;
pub mod imaging;
pub mod kb;
pub mod materials;
pub mod messages;
mod migrate;
pub mod monitor;
pub mod notices;
mod operations;
pub mod outbox;
pub mod payments;
pub mod performance;
pub mod pharmacy;
pub mod portal;
pub mod prices;
pub mod problems;
mod read;
pub mod rosters;
mod scope;
mod search;
mod sql;
pub mod staff;
pub mod staff_messages;
pub mod standby;
#[cfg(feature = "testing")]
pub mod testing;
pub mod users;
pub mod ward_rules;
mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use operations::Operations;
pub use read::{BodyRow, HistoryPage, HistoryQuery, StoredResource};
pub use scope::RowScope;
pub use search::SearchPage;
pub use write::{Reindexed, WriteKind, WriteOp, WriteResult};

/// Which database engine is behind the pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The statement that opens a write transaction. SQLite takes the write lock up
    /// front so a transaction never fails half-way on a lock upgrade.
    fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Bound values per multi-row INSERT: enough rows to amortize round trips, few
    /// enough that statement parsing and argument encoding stay cheap (far under
    /// SQLite's 32,766 and PostgreSQL's 65,535 limits).
    fn max_params(self) -> usize {
        match self {
            Backend::Sqlite => 4_000,
            Backend::Postgres => 4_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("version conflict on {resource_type}/{id}: expected version {expected}, current is {current}")]
    VersionConflict { resource_type: String, id: String, expected: i64, current: i64 },
    #[error("{resource_type}/{id} already exists")]
    AlreadyExists { resource_type: String, id: String },
    #[error("unsupported database URL (rule: sqlite://PATH or postgres://...)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A queued message was applied already (by another applier): nothing written.
    #[error("message {0} is no longer queued")]
    NotQueued(i64),
    /// A rule of the non-FHIR tables refused the change (stock below zero, a queue
    /// entry no longer in the expected state); `field: why`. Nothing was written.
    #[error("{0}")]
    Refused(String),
}

impl From<sqlx::Error> for StoreError {
    /// Every driver error becomes a store error here; one that says the disk is full
    /// is noted (see [`faults`]).
    fn from(e: sqlx::Error) -> Self {
        faults::note(&e);
        StoreError::Database(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Why the database cannot take requests now ([`Store::failing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failing {
    /// It does not answer within 2 s (stopped, unreachable, out of connections).
    Unreachable,
    /// A write failed for lack of disk space, and none has been committed since.
    StorageFull,
}

/// Connection-pool figures for `/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub read_size: u32,
    pub read_idle: usize,
    pub write_size: u32,
    pub write_idle: usize,
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// The primary's pools; swapped for another database's when the primary is lost
    /// and a failover database has been promoted (see [`Store::with_failover`]).
    pools: std::sync::Arc<std::sync::RwLock<Pools>>,
    backend: Backend,
    /// The group-commit queue, started on first use.
    group: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<write::Pending>>>,
    /// Held by every clone; background tasks stop once the last clone is gone.
    _alive: Option<std::sync::Arc<()>>,
    /// Woken after every commit that wrote outbox events.
    changes: std::sync::Arc<tokio::sync::Notify>,
    /// The group-commit queue of the message log, started on first use.
    log_group: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<messages::PendingLog>>>,
    /// SQLite's checkpoint connection.
    checkpointer: Option<AnyPool>,
    /// A PostgreSQL hot standby for reads, when configured.
    standby: Option<std::sync::Arc<standby::Standby>>,
}

/// A database's reader and writer pools (the same pool on PostgreSQL).
#[derive(Clone, Debug)]
struct Pools {
    read: AnyPool,
    write: AnyPool,
}

/// Copies committed WAL frames into the SQLite database file off the write path.
/// PASSIVE never blocks readers or the writer; frames still in use by a reader are
/// copied on a later round, and the writer starts the WAL file over once every frame
/// has been copied (as with SQLite's own automatic checkpoints, which are PASSIVE too).
async fn checkpoint_loop(pool: AnyPool, alive: std::sync::Weak<()>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if alive.upgrade().is_none() || pool.is_closed() {
            pool.close().await;
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_all(&pool).await {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// How every pool connects to `url`. Statement logging is off: SQL text can be huge
/// and is no use in production logs.
fn connect_options(url: &str) -> Result<AnyConnectOptions> {
    Ok(AnyConnectOptions::from_str(url)?
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(3600)))
}

/// A PostgreSQL pool of the primary (or of a standby taking its place). A request
/// waits at most 10 s for a connection: while the database does not answer, that is
/// how long before it is told so (503) rather than left hanging.
fn postgres_pool() -> AnyPoolOptions {
    writer_pool().max_connections(16).acquire_timeout(Duration::from_secs(10))
}

/// A pool whose connections write. A connection still counting itself inside a
/// transaction when it is taken from the pool is closed and replaced: when SQLite
/// rolls a transaction back by itself (a write that failed for lack of disk space)
/// the driver's own ROLLBACK fails and leaves its count at one, and every later
/// `BEGIN` on that connection would be refused, long after space returned.
fn writer_pool() -> AnyPoolOptions {
    AnyPoolOptions::new().before_acquire(|conn, _| {
        Box::pin(async move {
            let stale = sqlx::Connection::is_in_transaction(conn);
            if stale {
                tracing::warn!("a database connection left inside a failed transaction is replaced");
            }
            Ok(!stale)
        })
    })
}

impl Store {
    /// Connects to `sqlite://PATH` (the file is created if missing) or `postgres://...`.
    /// SQLite gets one writer connection (writes are serialized in-process rather than
    /// retried on lock errors) and a pool of readers that see WAL snapshots.
    pub async fn connect(url: &str) -> Result<Store> {
        install_default_drivers();
        if url.starts_with("sqlite:") {
            let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
            let opts = connect_options(&url)?;
            let write = writer_pool()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA cache_size = -65536").await?;
                        // Statement journals stay in memory rather than in temp files.
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        // Checkpoints mostly run on their own connection (below), not
                        // inside the commit of whichever write crosses the WAL threshold;
                        // the writer's own checkpoint at 32 MiB then finds little left to
                        // copy and lets the WAL file start over.
                        conn.execute("PRAGMA wal_autocheckpoint = 8192").await?;
                        Ok(())
                    })
                })
                .connect_with(opts.clone())
                .await?;
            let read = AnyPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA query_only = ON").await?;
                        Ok(())
                    })
                })
                .connect_with(opts.clone())
                .await?;
            let alive = std::sync::Arc::new(());
            let checkpointer = AnyPoolOptions::new().max_connections(1).connect_with(opts).await?;
            tokio::spawn(checkpoint_loop(checkpointer.clone(), std::sync::Arc::downgrade(&alive)));
            Ok(Store {
                pools: std::sync::Arc::new(std::sync::RwLock::new(Pools { read, write })),
                backend: Backend::Sqlite,
                group: Default::default(),
                _alive: Some(alive),
                changes: Default::default(),
                log_group: Default::default(),
                checkpointer: Some(checkpointer),
                standby: None,
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = postgres_pool().connect_with(connect_options(url)?).await?;
            Ok(Store {
                pools: std::sync::Arc::new(std::sync::RwLock::new(Pools { read: pool.clone(), write: pool })),
                backend: Backend::Postgres,
                group: Default::default(),
                _alive: None,
                changes: Default::default(),
                log_group: Default::default(),
                checkpointer: None,
                standby: None,
            })
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Sends FHIR reads and searches made inside [`standby::reading_as`] to a
    /// PostgreSQL hot standby at `url` while it is no more than `max_lag` behind (see
    /// [`standby`]). The standby may be down when this is called.
    pub fn with_standby(mut self, url: &str, max_lag: Duration) -> Result<Store> {
        if self.backend != Backend::Postgres || !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
            return Err(StoreError::Refused(
                "read_database: a read standby is a PostgreSQL standby of a PostgreSQL primary".into(),
            ));
        }
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(connect_options(url)?);
        let standby = std::sync::Arc::new(standby::Standby::new(pool, max_lag));
        let alive = self._alive.get_or_insert_with(|| std::sync::Arc::new(())).clone();
        tokio::spawn(standby::watch(standby.clone(), self.pools.clone(), std::sync::Arc::downgrade(&alive)));
        self.standby = Some(standby);
        Ok(self)
    }

    /// Notified (one stored permit) after each commit that wrote outbox events: the
    /// outbound dispatcher waits on it instead of polling.
    pub fn changes(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.changes.clone()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Refreshes the query planner's statistics after a bulk load. PostgreSQL plans
    /// from them (autovacuum refreshes them too, but only a minute or more later);
    /// on SQLite the searches name their indexes and nothing is needed.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE").execute(&self.write_pool()).await?;
        }
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check`: `Some("ok")` when every page, index and
    /// constraint is sound, else the problems it found; `None` on PostgreSQL (it has
    /// no such check built in).
    pub async fn integrity_check(&self) -> Result<Option<String>> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check").fetch_all(&self.read_pool()).await?;
        Ok(Some(rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("; ")))
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read_pool()).await?;
        Ok(())
    }

    /// Whether the database answers [`Store::ping`] within 2 s: what tells a failure
    /// of the database's from one of the request's.
    async fn answers(&self) -> bool {
        matches!(tokio::time::timeout(Duration::from_secs(2), self.ping()).await, Ok(Ok(())))
    }

    /// Why requests fail, if it is the database's fault: it does not answer, or its
    /// disk is full (see [`faults`]); `None` when it answers and writes.
    pub async fn failing(&self) -> Option<Failing> {
        if !self.answers().await {
            Some(Failing::Unreachable)
        } else if faults::storage_full() {
            Some(Failing::StorageFull)
        } else {
            None
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        let p = self.pools();
        PoolStats {
            read_size: p.read.size(),
            read_idle: p.read.num_idle(),
            write_size: p.write.size(),
            write_idle: p.write.num_idle(),
        }
    }

    fn pools(&self) -> std::sync::RwLockReadGuard<'_, Pools> {
        self.pools.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pool reads of the primary go through.
    pub(crate) fn read_pool(&self) -> AnyPool {
        self.pools().read.clone()
    }

    /// The pool writes go through.
    pub(crate) fn write_pool(&self) -> AnyPool {
        self.pools().write.clone()
    }

    /// Closes the pools, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.read_pool().close().await;
        self.write_pool().close().await;
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
    }
}

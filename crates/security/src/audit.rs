//! The audit log writer. Callers hand it entries and wait until they are durable:
//! no health data leaves the server before the record of its access is committed.
//! Concurrent callers are batched into one transaction (group commit), so the cost
//! of an fsync is shared instead of paid per read.

use std::sync::Arc;

use lianyi_store::Store;
use lianyi_store::audit::{AuditEntry, ChainHasher};
use tokio::sync::{mpsc, oneshot};

use crate::chain::ChainAlg;

const MAX_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log could not be written: {0}")]
    Write(String),
    #[error("the audit log writer has stopped")]
    Stopped,
}

type Pending = (Vec<AuditEntry>, oneshot::Sender<Result<(), String>>);

/// Handle to the audit writer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
    alg: ChainAlg,
}

impl AuditLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Store, alg: ChainAlg) -> AuditLog {
        let (tx, mut rx) = mpsc::channel::<Pending>(4096);
        tokio::spawn(async move {
            let hasher: Arc<dyn ChainHasher> = Arc::new(alg);
            let mut batch: Vec<Pending> = Vec::with_capacity(64);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                let mut n = batch[0].0.len();
                while n < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => {
                            n += p.0.len();
                            batch.push(p);
                        }
                        Err(_) => break,
                    }
                }
                let entries: Vec<AuditEntry> = batch.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
                let result = store.append_audit(&entries, hasher.as_ref()).await.map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::error!(error = %e, records = entries.len(), "audit append failed");
                }
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(result.clone());
                }
            }
        });
        AuditLog { tx, alg }
    }

    /// The chain's hash function, for writes that append in their own transaction.
    pub fn hasher(&self) -> &'static dyn ChainHasher {
        self.alg.as_static()
    }

    /// Appends entries and returns once they are durable.
    pub async fn record(&self, entries: Vec<AuditEntry>) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.tx.send((entries, ack)).await.map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?.map_err(AuditError::Write)
    }
}

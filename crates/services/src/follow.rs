//! Following the change feed: a watcher of the platform (the critical-value watcher,
//! the billing charger) reads the outbox after its named cursor, handles each event,
//! and moves the cursor after every batch, so a restart goes on where it stopped. On
//! its first start a watcher begins at the present: what happened before it existed
//! was some other system's to handle.

use lianyi_store::outbox::OutboxEvent;
use lianyi_store::{Operations, StoreError};

/// Handles the events after cursor `name` (kept in `known` between calls); returns how
/// many events `each` reported as acted on.
pub async fn scan<E, F, Fut>(ops: &Operations, name: &str, known: &mut Option<i64>, mut each: F) -> Result<usize, E>
where
    E: From<StoreError>,
    F: FnMut(OutboxEvent) -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    let mut cursor = match *known {
        Some(c) => c,
        None => match ops.cursor(name).await? {
            Some(c) => c,
            None => {
                let head = ops.outbox_head().await?;
                ops.set_cursor(name, head).await?;
                head
            }
        },
    };
    let mut acted = 0;
    loop {
        let events = ops.outbox_after(cursor, 200).await?;
        let Some(last) = events.last().map(|e| e.seq) else { break };
        for e in events {
            if each(e).await? {
                acted += 1;
            }
        }
        cursor = last;
        ops.set_cursor(name, cursor).await?;
    }
    *known = Some(cursor);
    Ok(acted)
}

/// A background loop's pause while the database fails. After each round the loop
/// asks [`Pause::after`] how long to wait: its usual interval after a round that
/// worked or failed on its own; while the database does not answer or its disk is
/// full, twice as long each round (up to 30 s), with one line in the log when the
/// loop pauses and one when it resumes, instead of an error every round.
#[derive(Debug)]
pub struct Pause {
    name: &'static str,
    backoff: Option<std::time::Duration>,
}

impl Pause {
    const LONGEST: std::time::Duration = std::time::Duration::from_secs(30);

    pub fn new(name: &'static str) -> Pause {
        Pause { name, backoff: None }
    }

    /// Whether the loop is paused (its rounds' errors are the database's: not worth
    /// logging one by one).
    pub fn paused(&self) -> bool {
        self.backoff.is_some()
    }

    /// The wait before the next round, after one that `worked` (see [`Pause`]).
    pub async fn after(&mut self, ops: &Operations, worked: bool, usual: std::time::Duration) -> std::time::Duration {
        if worked {
            if self.backoff.take().is_some() {
                tracing::info!(task = self.name, "the database answers again: resumed");
            }
            return usual;
        }
        if ops.failing().await.is_none() {
            return usual;
        }
        let next = match self.backoff {
            None => {
                tracing::warn!(task = self.name, "the database does not answer or its disk is full: paused");
                usual.max(std::time::Duration::from_secs(1))
            }
            Some(b) => (b * 2).min(Self::LONGEST),
        };
        self.backoff = Some(next);
        next
    }
}

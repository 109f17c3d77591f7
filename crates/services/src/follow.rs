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

//! Where each projection stands, for read-your-writes: before a read, the API waits (bounded)
//! until the projections it reads from have passed the writes it must show: the position a
//! client names, and (reading the Postgres stream) every write this process has acknowledged.
//!
//! Reading the Postgres stream, a projection's checkpoint is a stream position: "passed" means
//! every event up to the position is applied. Consuming Kafka, partitions advance
//! independently, so there is no such prefix: "passed" means the event at the position itself
//! (its aggregate, at its sequence) is applied, which is what a client reading its own write
//! needs.

use carshare_event_store::StreamCursor;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the projection workers take their events from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// The ordered stream in Postgres (the default, and the only source without Kafka).
    #[default]
    Postgres,
    /// Kafka topics filled by the relay.
    Kafka,
}

/// In-process progress of the projection runners of this process. Projections run by other
/// processes are followed through their checkpoint rows (or read tables) instead.
#[derive(Clone, Default)]
pub struct ProgressBoard {
    inner: Arc<RwLock<HashMap<&'static str, watch::Sender<StreamCursor>>>>,
    source: Source,
    applied: Arc<watch::Sender<u64>>,
    acknowledged: Arc<Mutex<Option<StreamCursor>>>,
    observed: Arc<RwLock<HashMap<String, StreamCursor>>>,
}

/// How often a projection run elsewhere is polled while waiting.
const POLL: Duration = Duration::from_millis(10);

impl ProgressBoard {
    /// A board for workers reading `source`.
    pub fn new(source: Source) -> ProgressBoard {
        ProgressBoard {
            source,
            ..ProgressBoard::default()
        }
    }

    /// Where the workers read.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Records that this process answered a command whose events end at `cursor`: reads it
    /// serves from now on wait for their projections to pass it (see [`Self::acknowledged`]).
    pub fn acknowledge(&self, cursor: StreamCursor) {
        if let Ok(mut furthest) = self.acknowledged.lock() {
            if furthest.is_none_or(|f| cursor > f) {
                *furthest = Some(cursor);
            }
        }
    }

    /// The furthest command position this process has acknowledged. On the Postgres stream a
    /// projection that has passed it shows every write answered here before, whichever
    /// transaction committed first, since the stream is read in commit-safe order.
    pub fn acknowledged(&self) -> Option<StreamCursor> {
        self.acknowledged.lock().ok().and_then(|f| *f)
    }

    /// Records that a Kafka worker of this process committed a batch (wakes waiters).
    pub fn applied(&self, _projection: &'static str) {
        self.applied.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records that `projection` has applied everything up to `cursor`.
    pub fn publish(&self, projection: &'static str, cursor: StreamCursor) {
        let existing = self
            .inner
            .read()
            .ok()
            .and_then(|map| map.get(projection).cloned());
        match existing {
            Some(tx) => {
                tx.send_if_modified(|c| {
                    let advanced = cursor > *c;
                    if advanced {
                        *c = cursor;
                    }
                    advanced
                });
            }
            None => {
                let (tx, _) = watch::channel(cursor);
                if let Ok(mut map) = self.inner.write() {
                    map.entry(projection).or_insert(tx);
                }
            }
        }
    }

    fn local(&self, projection: &str) -> Option<watch::Receiver<StreamCursor>> {
        self.inner
            .read()
            .ok()
            .and_then(|map| map.get(projection).map(|tx| tx.subscribe()))
    }

    /// Waits until every named projection has passed `target`, at most `timeout`. Returns
    /// whether they all did.
    pub async fn wait_for(
        &self,
        pool: &PgPool,
        projections: &[&str],
        target: StreamCursor,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        if self.source == Source::Kafka {
            return self
                .wait_for_event(pool, projections, target, deadline)
                .await;
        }
        for name in projections {
            let reached = match self.local(name) {
                Some(mut rx) => tokio::time::timeout_at(deadline, rx.wait_for(|c| *c >= target))
                    .await
                    .is_ok_and(|r| r.is_ok()),
                None => self.wait_elsewhere(pool, name, target, deadline).await,
            };
            if !reached {
                return false;
            }
        }
        true
    }
}

impl ProgressBoard {
    /// A projection run by another process: its checkpoint row is polled, unless an earlier
    /// poll already saw it at or past `target` (reads then cost no query).
    async fn wait_elsewhere(
        &self,
        pool: &PgPool,
        name: &str,
        target: StreamCursor,
        deadline: Instant,
    ) -> bool {
        let seen = self
            .observed
            .read()
            .ok()
            .and_then(|map| map.get(name).copied());
        if seen.is_some_and(|c| c >= target) {
            return true;
        }
        if !poll_checkpoint(pool, name, target, deadline).await {
            return false;
        }
        if let Ok(mut map) = self.observed.write() {
            let entry = map.entry(name.to_string()).or_insert(target);
            if target > *entry {
                *entry = target;
            }
        }
        true
    }

    /// Kafka mode: waits until the event at `target` is applied by each named projection that
    /// handles its aggregate type.
    async fn wait_for_event(
        &self,
        pool: &PgPool,
        projections: &[&str],
        target: StreamCursor,
        deadline: Instant,
    ) -> bool {
        let event: Option<(String, String, i64)> = match sqlx::query_as(
            "SELECT aggregate_type, aggregate_id, sequence FROM events WHERE global_position = $1",
        )
        .bind(target.position)
        .fetch_optional(pool)
        .await
        {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(error = %e, "looking up the awaited event failed");
                return false;
            }
        };
        let Some((aggregate_type, aggregate_id, sequence)) = event else {
            // Not an event position: nothing to wait for.
            return true;
        };
        let mut woken = self.applied.subscribe();
        for name in projections {
            let Some(projection) = crate::by_name(name) else {
                continue;
            };
            if !projection.handles(&aggregate_type) {
                continue;
            }
            loop {
                match projection
                    .applied_sequence(pool, &aggregate_type, &aggregate_id)
                    .await
                {
                    Ok(applied) if applied >= sequence => break,
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "applied-sequence poll failed"),
                }
                if Instant::now() >= deadline {
                    return false;
                }
                let _ =
                    tokio::time::timeout_at(deadline.min(Instant::now() + POLL), woken.changed())
                        .await;
            }
        }
        true
    }
}

async fn poll_checkpoint(
    pool: &PgPool,
    name: &str,
    target: StreamCursor,
    deadline: Instant,
) -> bool {
    let projection = crate::by_name(name);
    loop {
        match crate::runner::checkpoint(pool, name).await {
            Ok(Some(cursor)) if cursor >= target => return true,
            // A worker writes its checkpoint over events it does not handle only now and then
            // (`SKIP_WRITE_EVERY`): none of those between its checkpoint and the target means
            // its tables already show the target.
            Ok(Some(cursor)) => {
                if let Some(p) = &projection {
                    match nothing_to_apply(pool, p.as_ref(), cursor, target).await {
                        Ok(true) => return true,
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "checkpoint poll failed"),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "checkpoint poll failed"),
        }
        if Instant::now() + POLL > deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether no event that `projection` reads lies after `from` up to `to` (inclusive).
async fn nothing_to_apply(
    pool: &PgPool,
    projection: &dyn crate::Projection,
    from: StreamCursor,
    to: StreamCursor,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM events \
           WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
             AND (transaction_id, global_position) <= ($3::text::xid8, $4) \
             AND aggregate_type = ANY($5) \
             AND ($6::text[] IS NULL OR event_type = ANY($6)))",
    )
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(projection.aggregate_types())
    .bind(projection.event_types())
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(transaction_id: u64, position: i64) -> StreamCursor {
        StreamCursor {
            transaction_id,
            position,
        }
    }

    #[test]
    fn the_acknowledged_position_is_the_furthest_in_stream_order() {
        let board = ProgressBoard::new(Source::Postgres);
        assert_eq!(board.acknowledged(), None);
        board.acknowledge(at(20, 5));
        // Answered later, but written by an earlier transaction: the stream reaches it first.
        board.acknowledge(at(19, 9));
        assert_eq!(board.acknowledged(), Some(at(20, 5)));
        board.acknowledge(at(20, 6));
        assert_eq!(board.acknowledged(), Some(at(20, 6)));
        // Clones share it (every handler of the process holds one).
        let clone = board.clone();
        clone.acknowledge(at(21, 7));
        assert_eq!(board.acknowledged(), Some(at(21, 7)));
    }
}

//! The ordered event stream: every event of the log, in an order that never skips one.
//!
//! A `global_position` alone cannot serve as a cursor: positions are taken when a row is
//! inserted but become visible when its transaction commits, so a reader that has passed
//! position 12 can later find 11 committed by a slower transaction. The reader therefore
//! follows the pair (writing transaction id, position) and only reads events whose transaction
//! is older than every transaction still running that could write to this database
//! (`stream_horizon()`, migration 16: the statement's snapshot, leaving out transactions of
//! backends connected to other databases of the cluster). Everything below that horizon is
//! committed or rolled back for good, so the order below it never changes.

use crate::metadata::EventMetadata;
use crate::upcasters;
use chrono::{DateTime, Utc};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A point in the ordered stream: after this many events have been seen.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct StreamCursor {
    /// The writing transaction of the last event seen.
    pub transaction_id: u64,
    /// The global position of the last event seen.
    pub position: i64,
}

impl StreamCursor {
    /// The start of the stream.
    pub const START: StreamCursor = StreamCursor {
        transaction_id: 0,
        position: 0,
    };
}

impl fmt::Display for StreamCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.transaction_id, self.position)
    }
}

/// A malformed cursor token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a stream position (expected <transaction>.<position>)")]
pub struct InvalidCursor(pub String);

impl FromStr for StreamCursor {
    type Err = InvalidCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidCursor(s.to_string());
        let (tx, pos) = s.split_once('.').ok_or_else(err)?;
        Ok(StreamCursor {
            transaction_id: tx.parse().map_err(|_| err())?,
            position: pos.parse().map_err(|_| err())?,
        })
    }
}

/// One event as stored, with its place in the stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Global position.
    pub position: i64,
    /// Writing transaction.
    pub transaction_id: u64,
    /// e.g. `Vehicle`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate.
    pub sequence: i64,
    /// e.g. `VehicleRegistered`.
    pub event_type: String,
    /// Shape version of the payload.
    pub event_version: String,
    /// The event as stored JSON (cqrs-es serialises an enum variant as `{"Variant": {...}}`);
    /// kept unparsed so a reader pays for one typed parse, not a generic tree first.
    pub payload: Box<RawValue>,
    /// Metadata (see [`EventMetadata`]), unparsed.
    pub metadata: Box<RawValue>,
    /// When Postgres recorded it.
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// This event's cursor.
    pub fn cursor(&self) -> StreamCursor {
        StreamCursor {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }

    /// The payload as the aggregate's event type.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// The payload as a JSON value.
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The metadata.
    pub fn meta(&self) -> EventMetadata {
        EventMetadata::from_json(
            &serde_json::from_str(self.metadata.get()).unwrap_or(serde_json::Value::Null),
        )
    }

    fn from_row(row: &PgRow) -> Result<StoredEvent, sqlx::Error> {
        let tx: String = row.try_get("transaction_id_text")?;
        Ok(StoredEvent {
            position: row.try_get("global_position")?,
            transaction_id: tx.parse().map_err(|e| sqlx::Error::ColumnDecode {
                index: "transaction_id_text".into(),
                source: Box::new(e),
            })?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get::<Json<Box<RawValue>>, _>("payload")?.0,
            metadata: row.try_get::<Json<Box<RawValue>>, _>("metadata")?.0,
            recorded_at: row.try_get("recorded_at")?,
        })
    }

    fn upcast(self, upcasters: &[Box<dyn EventUpcaster>]) -> StoredEvent {
        if !upcasters
            .iter()
            .any(|u| u.can_upcast(&self.event_type, &self.event_version))
        {
            return self;
        }
        let StoredEvent {
            position,
            transaction_id,
            aggregate_type,
            aggregate_id,
            sequence,
            event_type,
            event_version,
            payload,
            metadata,
            recorded_at,
        } = self;
        let serialized = SerializedEvent::new(
            aggregate_id,
            usize::try_from(sequence).unwrap_or_default(),
            aggregate_type,
            event_type,
            event_version,
            serde_json::from_str(payload.get()).unwrap_or(serde_json::Value::Null),
            serde_json::from_str(metadata.get()).unwrap_or(serde_json::Value::Null),
        );
        let up = upcasters::upcast(upcasters, serialized);
        let raw = |v: &serde_json::Value| {
            serde_json::value::to_raw_value(v).unwrap_or_else(|_| raw_null())
        };
        StoredEvent {
            position,
            transaction_id,
            aggregate_type: up.aggregate_type,
            aggregate_id: up.aggregate_id,
            sequence,
            event_type: up.event_type,
            event_version: up.event_version,
            payload: raw(&up.payload),
            metadata: raw(&up.metadata),
            recorded_at,
        }
    }
}

// The transaction id leaves as text under another name: an output column named
// `transaction_id` would shadow the xid8 column in ORDER BY and sort the stream as text.
/// JSON `null`, for a value that cannot be re-serialised (never happens for upcaster output).
fn raw_null() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

const COLUMNS: &str =
    "global_position, transaction_id::text AS transaction_id_text, aggregate_type, \
     aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

/// The same without the metadata, for readers that do not use it.
const COLUMNS_WITHOUT_METADATA: &str =
    "global_position, transaction_id::text AS transaction_id_text, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
     '{}'::jsonb AS metadata, recorded_at";

/// Reads the ordered stream. Cheap to clone; shared by the relay and the projection workers.
#[derive(Clone)]
pub struct StreamReader {
    pool: PgPool,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    columns: &'static str,
    shared: Option<(Arc<SharedReads>, Duration)>,
}

/// The recent stream as the projection workers of a process have read it, shared between
/// them: the first worker to need events past its end reads them once, and the workers behind
/// it are served from memory instead of each sending the same query.
///
/// The tail holds every event after its `start`, in stream order, without a gap: each read
/// that extends it asks for the events after its last one, below the horizon of the oldest
/// running transaction, and nothing can ever appear before that horizon again. So the events
/// it holds after any cursor between its start and its end are exactly what a query from that
/// cursor would return first; a query would only add events committed since, which come with
/// the next read.
pub struct SharedReads {
    tail: tokio::sync::Mutex<Tail>,
    capacity: usize,
}

/// The shared part of the stream.
#[derive(Default)]
struct Tail {
    /// The cursor the held events follow.
    start: StreamCursor,
    /// Every event after `start`, in order, as far as read.
    events: std::collections::VecDeque<StoredEvent>,
    /// Whether anything was read yet (before that, `start` means nothing).
    begun: bool,
    /// When the last read was sent, if it reached the horizon (fewer events than it asked
    /// for): until `fresh` after that, a caller at the end is told there is nothing new. After
    /// a full read (more may be waiting) it is `None`, and the next caller at the end reads on.
    reached_horizon: Option<std::time::Instant>,
}

impl Tail {
    fn end(&self) -> StreamCursor {
        self.events.back().map_or(self.start, StoredEvent::cursor)
    }

    /// Up to `limit` held events after `after` (which lies between start and end).
    fn after(&self, after: StreamCursor, limit: usize) -> Vec<StoredEvent> {
        let from = self.events.partition_point(|e| e.cursor() <= after);
        self.events.range(from..).take(limit).cloned().collect()
    }

    /// Records a read sent at `sent` that asked for `limit` events after the end and got
    /// `events`, dropping the oldest held beyond `capacity`.
    fn extend(
        &mut self,
        events: &[StoredEvent],
        limit: usize,
        sent: std::time::Instant,
        capacity: usize,
    ) {
        self.begun = true;
        self.reached_horizon = (events.len() < limit).then_some(sent);
        self.events.extend(events.iter().cloned());
        let excess = self.events.len().saturating_sub(capacity);
        if excess > 0 {
            if let Some(last) = self.events.drain(..excess).next_back() {
                self.start = last.cursor();
            }
        }
    }
}

/// Events a shared tail keeps by default: about a second of a busy stream, so a worker that
/// lets batches gather for longer than the others (the inbox) still finds them in memory.
pub const SHARED_TAIL_CAPACITY: usize = 5_000;

impl Default for SharedReads {
    fn default() -> Self {
        SharedReads::with_capacity(SHARED_TAIL_CAPACITY)
    }
}

impl SharedReads {
    /// A tail keeping at most `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> SharedReads {
        SharedReads {
            tail: tokio::sync::Mutex::new(Tail::default()),
            capacity: capacity.max(1),
        }
    }
}

impl StreamReader {
    /// A reader with the workspace's upcasters.
    pub fn new(pool: PgPool) -> StreamReader {
        StreamReader {
            pool,
            upcasters: Arc::new(upcasters::all()),
            columns: COLUMNS,
            shared: None,
        }
    }

    /// A reader whose [`Self::read_after_shared`] goes through `reads`, shared with other
    /// readers: events already read past the caller's cursor come from memory, and a caller
    /// standing at the end gets nothing new if the last read was sent at most `fresh` ago.
    /// Shared results carry metadata whatever the reader was built with.
    pub fn sharing(mut self, reads: Arc<SharedReads>, fresh: Duration) -> StreamReader {
        self.columns = COLUMNS;
        self.shared = Some((reads, fresh));
        self
    }

    /// [`Self::read_after`], through the shared tail when the reader has one.
    pub async fn read_after_shared(
        &self,
        after: StreamCursor,
        limit: i64,
    ) -> Result<Arc<Vec<StoredEvent>>, sqlx::Error> {
        let Some((reads, fresh)) = &self.shared else {
            return self.read_after(after, limit).await.map(Arc::new);
        };
        let take = usize::try_from(limit).unwrap_or(0);
        // Held across a query: callers arriving meanwhile wait for its result.
        let mut tail = reads.tail.lock().await;
        let end = tail.end();
        if tail.begun && tail.start <= after && after <= end {
            let events = tail.after(after, take);
            let recent = tail
                .reached_horizon
                .is_some_and(|at| at.elapsed() <= *fresh);
            if !events.is_empty() || recent {
                return Ok(Arc::new(events));
            }
            // At the end, and the last read is too old to stand for now (or stopped short of
            // the horizon): read on.
            let sent = std::time::Instant::now();
            let events = self.read_after(end, limit).await?;
            tail.extend(&events, take, sent, reads.capacity);
            return Ok(Arc::new(events));
        }
        if tail.begun && after < tail.start {
            // Behind what is held (a worker far behind the others): on its own, and no further
            // than the tail's end, so that it lands inside the tail and is served from it again
            // (a prefix of the events after `after` is what a query returns first anyway).
            drop(tail);
            let mut events = self.read_after(after, limit).await?;
            let within = events.partition_point(|e| e.cursor() <= end);
            if within > 0 {
                events.truncate(within);
            }
            return Ok(Arc::new(events));
        }
        // Nothing held yet, or the caller is past it (a checkpoint moved by a rebuild or by
        // another instance's worker): the tail starts afresh at the caller.
        let sent = std::time::Instant::now();
        let events = self.read_after(after, limit).await?;
        *tail = Tail {
            start: after,
            ..Tail::default()
        };
        tail.extend(&events, take, sent, reads.capacity);
        Ok(Arc::new(events))
    }

    /// A reader whose events carry empty metadata (less to read and parse, for consumers that
    /// never look at it).
    pub fn without_metadata(mut self) -> StreamReader {
        self.columns = COLUMNS_WITHOUT_METADATA;
        self
    }

    /// The pool the reader uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Up to `limit` events after `after`, in stream order, stopping at the horizon of the
    /// oldest running transaction.
    pub async fn read_after(
        &self,
        after: StreamCursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < (SELECT stream_horizon()) \
             ORDER BY events.transaction_id, events.global_position \
             LIMIT $3",
            self.columns
        );
        let rows = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| StoredEvent::from_row(row).map(|e| e.upcast(&self.upcasters)))
            .collect()
    }

    /// Every event strictly between two cursors, in stream order. `before` must be the cursor
    /// of an event already read from the stream (so everything before it is committed); used
    /// to fill a range a Kafka consumer never received.
    pub async fn read_between(
        &self,
        after: StreamCursor,
        before: StreamCursor,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND (transaction_id, global_position) < ($3::text::xid8, $4) \
             ORDER BY events.transaction_id, events.global_position",
            self.columns
        );
        let rows = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(before.transaction_id.to_string())
            .bind(before.position)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| StoredEvent::from_row(row).map(|e| e.upcast(&self.upcasters)))
            .collect()
    }

    /// Sends every event after `after` that lies below the horizon when the call starts, in
    /// stream order, as chunks of `chunk_size` through `sink`, from one streamed query: cheaper
    /// than one query per chunk when the whole log is replayed. Returns the number of events
    /// sent and the cursor of the last one. Stops early if the receiver goes away.
    pub async fn stream_chunks(
        &self,
        after: StreamCursor,
        chunk_size: usize,
        sink: tokio::sync::mpsc::Sender<Vec<StoredEvent>>,
    ) -> Result<(u64, StreamCursor), sqlx::Error> {
        use futures::TryStreamExt;
        let sql = format!(
            "SELECT {} FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < (SELECT stream_horizon()) \
             ORDER BY events.transaction_id, events.global_position",
            self.columns
        );
        let mut rows = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .fetch(&self.pool);
        let mut chunk = Vec::with_capacity(chunk_size);
        let mut sent: u64 = 0;
        let mut last = after;
        while let Some(row) = rows.try_next().await? {
            let event = StoredEvent::from_row(&row)?.upcast(&self.upcasters);
            last = event.cursor();
            chunk.push(event);
            if chunk.len() >= chunk_size {
                sent += chunk.len() as u64;
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_size));
                if sink.send(full).await.is_err() {
                    return Ok((sent, last));
                }
            }
        }
        if !chunk.is_empty() {
            sent += chunk.len() as u64;
            let _ = sink.send(chunk).await;
        }
        Ok((sent, last))
    }

    /// The events of one aggregate with `after < sequence < before`, in order (used to repair a
    /// gap seen by a consumer that received a later event first).
    pub async fn aggregate_events_between(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
        before: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 AND sequence < $4 \
             ORDER BY sequence",
            self.columns
        );
        let rows = sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(after)
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| StoredEvent::from_row(row).map(|e| e.upcast(&self.upcasters)))
            .collect()
    }

    /// Every event of one aggregate, in order.
    pub async fn aggregate_events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        self.aggregate_events_between(aggregate_type, aggregate_id, 0, i64::MAX)
            .await
    }

    /// The stream cursor of one event, once committed.
    pub async fn cursor_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<StreamCursor>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(tx, position)| {
            tx.parse().ok().map(|transaction_id| StreamCursor {
                transaction_id,
                position,
            })
        }))
    }

    /// The state of the log: the newest event and its time, and how long the oldest writing
    /// transaction running in this database has held the read horizon back.
    pub async fn head(&self) -> Result<StreamHead, sqlx::Error> {
        let (last_position, last_recorded_at): (Option<i64>, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "SELECT global_position, recorded_at FROM events \
                 ORDER BY global_position DESC LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or((None, None));
        let horizon_age: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - min(xact_start))::float8 \
             FROM pg_stat_activity \
             WHERE backend_xid IS NOT NULL AND datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StreamHead {
            last_position: last_position.unwrap_or(0),
            last_recorded_at,
            horizon_age_seconds: horizon_age.unwrap_or(0.0).max(0.0),
        })
    }

    /// How many events lie after `cursor` (below or above the horizon).
    pub async fn count_after(&self, cursor: StreamCursor) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT count(*) FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(cursor.transaction_id.to_string())
        .bind(cursor.position)
        .fetch_one(&self.pool)
        .await
    }
}

/// A summary of the log's head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamHead {
    /// Position of the newest event (0 when empty).
    pub last_position: i64,
    /// When the newest event was recorded.
    pub last_recorded_at: Option<DateTime<Utc>>,
    /// Age of the oldest writing transaction running in this database, in seconds.
    pub horizon_age_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_order_by_transaction_then_position() {
        let a = StreamCursor {
            transaction_id: 10,
            position: 50,
        };
        let b = StreamCursor {
            transaction_id: 11,
            position: 3,
        };
        assert!(a < b);
        assert_eq!("11.3".parse::<StreamCursor>().unwrap(), b);
        assert!("11".parse::<StreamCursor>().is_err());
        assert_eq!(b.to_string(), "11.3");
    }
}

/// Tells in-process stream readers that new events were committed, so they read at once
/// instead of waiting for their next poll. Readers in other processes rely on polling.
#[derive(Clone)]
pub struct CommitSignal {
    tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for CommitSignal {
    fn default() -> Self {
        let (tx, _) = tokio::sync::watch::channel(0);
        CommitSignal { tx: Arc::new(tx) }
    }
}

impl CommitSignal {
    /// Announces a commit.
    pub fn committed(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every commit announced after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

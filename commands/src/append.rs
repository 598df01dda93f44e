//! Appending the events of several aggregates in one transaction.
//!
//! cqrs-es commits one aggregate at a time. A booking request must record the booking and the
//! vehicle's hold together or not at all, and a booking that ends must release the hold in the
//! same breath, so those commands decide on each aggregate with its own `handle` logic and then
//! append every event here: one `INSERT`, one commit. Each aggregate's events take the
//! sequences after the one it was loaded at; the primary key `(aggregate_type, aggregate_id,
//! sequence)` turns a concurrent writer into a conflict, and the caller retries from a fresh
//! load. Rows have the exact shape postgres-es writes, so cqrs-es loads them as its own.

use crate::error::InfraError;
use carshare_event_store::{EventMetadata, StreamCursor};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// New events of one aggregate.
#[derive(Debug, Clone)]
pub struct Batch {
    aggregate_type: &'static str,
    aggregate_id: String,
    after_sequence: usize,
    events: Vec<(String, String, Value)>,
    snapshot: Option<(usize, Value)>,
}

impl Batch {
    /// `events` for `aggregate` (its state after them) loaded at `after_sequence`; a snapshot of
    /// the new state is written when the batch crosses a multiple of `snapshot_every`
    /// (0 = never).
    pub fn new<A: Aggregate>(
        aggregate_id: &str,
        after_sequence: usize,
        events: &[A::Event],
        aggregate: &A,
        snapshot_every: usize,
    ) -> Result<Batch, InfraError> {
        let encoded = events
            .iter()
            .map(|e| {
                serde_json::to_value(e)
                    .map(|payload| (e.event_type(), e.event_version(), payload))
                    .map_err(|err| InfraError::Internal(Box::new(err)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let last = after_sequence + events.len();
        let crosses = snapshot_every > 0
            && !events.is_empty()
            && last / snapshot_every > after_sequence / snapshot_every;
        let snapshot = if crosses {
            Some((
                last,
                serde_json::to_value(aggregate)
                    .map_err(|err| InfraError::Internal(Box::new(err)))?,
            ))
        } else {
            None
        };
        Ok(Batch {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_string(),
            after_sequence,
            events: encoded,
            snapshot,
        })
    }

    /// Whether it holds no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Appends every batch in one transaction, with `metadata` on each event. Returns the stream
/// cursor of the last event written (`None` when there was nothing to write), or
/// `InfraError::Conflict` when another writer appended to one of the aggregates first.
pub async fn append(
    pool: &PgPool,
    batches: &[Batch],
    metadata: &EventMetadata,
) -> Result<Option<StreamCursor>, InfraError> {
    if batches.iter().all(Batch::is_empty) {
        return Ok(None);
    }
    let meta = encode_metadata(metadata)?;
    let written = write(pool, &[(batches, &meta)]).await?;
    Ok(written.into_iter().map(|(_, cursor)| cursor).max())
}

fn encode_metadata(metadata: &EventMetadata) -> Result<Value, InfraError> {
    serde_json::to_value(metadata.to_map()).map_err(|err| InfraError::Internal(Box::new(err)))
}

/// One command's batches and the metadata of their events.
type Request<'a> = (&'a [Batch], &'a Value);

/// Writes the batches of every request in one statement (one transaction when snapshots go
/// with them). Returns, per event written, the index of its request and its stream cursor.
async fn write(
    pool: &PgPool,
    requests: &[Request<'_>],
) -> Result<Vec<(usize, StreamCursor)>, InfraError> {
    let total: usize = requests
        .iter()
        .flat_map(|(batches, _)| batches.iter())
        .map(|b| b.events.len())
        .sum();
    let mut types = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut sequences = Vec::with_capacity(total);
    let mut event_types = Vec::with_capacity(total);
    let mut versions = Vec::with_capacity(total);
    let mut payloads = Vec::with_capacity(total);
    let mut metas = Vec::with_capacity(total);
    let mut owners: HashMap<(&str, &str, i64), usize> = HashMap::with_capacity(total);
    for (request, (batches, meta)) in requests.iter().enumerate() {
        for batch in batches.iter() {
            for (i, (event_type, version, payload)) in batch.events.iter().enumerate() {
                types.push(batch.aggregate_type);
                ids.push(batch.aggregate_id.as_str());
                sequences.push(i64::try_from(batch.after_sequence + i + 1).unwrap_or(i64::MAX));
                event_types.push(event_type.as_str());
                versions.push(version.as_str());
                payloads.push(payload);
                metas.push(*meta);
                owners.insert(
                    (
                        batch.aggregate_type,
                        batch.aggregate_id.as_str(),
                        sequences[sequences.len() - 1],
                    ),
                    request,
                );
            }
        }
    }
    // RETURNING sees only the inserted row: its request is found again by aggregate and
    // sequence (unique among the rows of one statement).
    let insert = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
           payload, metadata) \
         SELECT t, i, s, e, v, p, m \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], \
           $7::jsonb[]) AS u(t, i, s, e, v, p, m) \
         RETURNING aggregate_type, aggregate_id, sequence, transaction_id::text, global_position",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&metas);
    let conflict = |e: sqlx::Error| match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => InfraError::Conflict,
        e => e.into(),
    };
    let snapshots: Vec<&Batch> = requests
        .iter()
        .flat_map(|(batches, _)| batches.iter())
        .filter(|b| b.snapshot.is_some())
        .collect();
    // One statement is atomic on its own: without a snapshot to write alongside, the insert
    // commits by itself (no BEGIN and COMMIT round trips).
    let written: Vec<(String, String, i64, String, i64)> = if snapshots.is_empty() {
        insert.fetch_all(pool).await.map_err(conflict)?
    } else {
        let mut tx = pool.begin().await?;
        let written = insert.fetch_all(&mut *tx).await.map_err(conflict)?;
        for batch in snapshots {
            if let Some((sequence, payload)) = &batch.snapshot {
                write_snapshot(&mut tx, batch, *sequence, payload).await?;
            }
        }
        tx.commit().await?;
        written
    };
    Ok(written
        .into_iter()
        .filter_map(|(aggregate_type, aggregate_id, sequence, tx, position)| {
            let owner = *owners.get(&(aggregate_type.as_str(), aggregate_id.as_str(), sequence))?;
            let transaction_id = tx.parse().ok()?;
            Some((
                owner,
                StreamCursor {
                    transaction_id,
                    position,
                },
            ))
        })
        .collect())
}

/// Appends of concurrent commands, committed together: group commit.
///
/// Each append joins a queue. Up to `writers` groups are written at once; while they are in
/// flight, the appends that arrive wait, and the next free writer takes them all (up to
/// [`MAX_GROUP`]) in one statement, so under load many commands share one commit while a
/// lone command is written at once, with no added wait. A group holds at most one append per
/// aggregate (a second one waits for the next group), so one stale command cannot spoil the
/// others: when the statement still meets a conflict (a writer outside the group got there
/// first), the appends whose places in their aggregates are taken are told `Conflict` and the
/// rest are written again together (after a few such rounds, one by one). Any other failure
/// fails every append of the group, as it would have failed each alone. Every caller is
/// answered after its own events are committed, never before.
///
/// The writes run on spawned tasks: a caller that stops waiting does not stop a group that
/// carries other callers' events.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

/// The most appends written in one statement.
pub const MAX_GROUP: usize = 64;

/// Groups written at the same time by default: enough to keep Postgres busy on a small machine
/// while the next group gathers.
pub const DEFAULT_WRITERS: usize = 2;

struct Inner {
    pool: PgPool,
    writers: usize,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Pending>,
    writing: usize,
}

type Reply = oneshot::Sender<Result<Option<StreamCursor>, InfraError>>;

struct Pending {
    batches: Vec<Batch>,
    metadata: Value,
    reply: Reply,
}

impl GroupCommit {
    /// Group commit over `pool`, with up to `writers` groups in flight (at least one).
    pub fn new(pool: PgPool, writers: usize) -> GroupCommit {
        GroupCommit {
            inner: Arc::new(Inner {
                pool,
                writers: writers.max(1),
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// The same pool with up to `writers` groups in flight.
    pub fn with_writers(&self, writers: usize) -> GroupCommit {
        GroupCommit::new(self.inner.pool.clone(), writers)
    }

    /// Appends `batches` in one transaction, as [`append`] does, possibly in the same statement
    /// as other commands' batches. Same answers: the cursor of the last event written, `None`
    /// when there was nothing to write, `InfraError::Conflict` when another writer appended to
    /// one of the aggregates first.
    pub async fn append(
        &self,
        batches: Vec<Batch>,
        metadata: &EventMetadata,
    ) -> Result<Option<StreamCursor>, InfraError> {
        if batches.iter().all(Batch::is_empty) {
            return Ok(None);
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            batches,
            metadata: encode_metadata(metadata)?,
            reply,
        };
        let start_writer = {
            let mut queue = self.inner.lock();
            queue.waiting.push_back(pending);
            let free = queue.writing < self.inner.writers;
            if free {
                queue.writing += 1;
            }
            free
        };
        if start_writer {
            Inner::start_writer(&self.inner);
        }
        answer.await.unwrap_or_else(|_| {
            Err(InfraError::Internal(
                "the group commit writer stopped before answering".into(),
            ))
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a writer (its slot already counted in `writing`).
    fn start_writer(inner: &Arc<Inner>) {
        let slot = WriterSlot {
            inner: Arc::clone(inner),
            released: false,
        };
        tokio::spawn(slot.write_groups());
    }

    /// Writes a group and answers each of its appends.
    async fn write_group(&self, mut group: Vec<Pending>) {
        for _ in 0..STALE_ROUNDS {
            if group.len() <= 1 {
                break;
            }
            let requests: Vec<Request<'_>> = group
                .iter()
                .map(|p| (p.batches.as_slice(), &p.metadata))
                .collect();
            match write(&self.pool, &requests).await {
                Ok(written) => {
                    let mut cursors: Vec<Option<StreamCursor>> = vec![None; group.len()];
                    for (owner, cursor) in written {
                        if let Some(slot) = cursors.get_mut(owner) {
                            *slot = (*slot).max(Some(cursor));
                        }
                    }
                    for (p, cursor) in group.into_iter().zip(cursors) {
                        let _ = p.reply.send(Ok(cursor));
                    }
                    return;
                }
                // A writer outside the group got to some aggregate first: those appends are
                // told so, and the rest are written again together.
                Err(InfraError::Conflict) => match stale(&self.pool, &requests).await {
                    Ok(stale) if !stale.is_empty() => {
                        let mut rest = Vec::with_capacity(group.len() - stale.len());
                        for (i, p) in group.into_iter().enumerate() {
                            if stale.contains(&i) {
                                let _ = p.reply.send(Err(InfraError::Conflict));
                            } else {
                                rest.push(p);
                            }
                        }
                        group = rest;
                    }
                    _ => break,
                },
                Err(e) => {
                    let shared = Arc::new(e);
                    for p in group {
                        let _ = p.reply.send(Err(shared_failure(&shared)));
                    }
                    return;
                }
            }
        }
        // One append, or a group that keeps meeting other writers: each on its own.
        for p in group {
            p.write_alone(&self.pool).await;
        }
    }
}

/// A writer's place among the `writing`: given back when nobody is waiting, or, should the
/// writer die (a panic), by its drop, which starts another writer for those still waiting.
struct WriterSlot {
    inner: Arc<Inner>,
    released: bool,
}

impl WriterSlot {
    /// Writes groups until nobody is waiting.
    async fn write_groups(mut self) {
        loop {
            let group = {
                let mut queue = self.inner.lock();
                let group = take_group(&mut queue.waiting);
                if group.is_empty() {
                    queue.writing -= 1;
                    self.released = true;
                    return;
                }
                group
            };
            self.inner.write_group(group).await;
        }
    }
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let restart = {
            let mut queue = self.inner.lock();
            queue.writing -= 1;
            let restart = !queue.waiting.is_empty() && queue.writing < self.inner.writers;
            if restart {
                queue.writing += 1;
            }
            restart
        };
        if restart {
            Inner::start_writer(&self.inner);
        }
    }
}

/// Rounds of taking stale appends out of a group before its appends are written one by one.
const STALE_ROUNDS: usize = 3;

/// The requests (by index) with an event whose place in its aggregate is already taken.
async fn stale(pool: &PgPool, requests: &[Request<'_>]) -> Result<HashSet<usize>, InfraError> {
    let mut types = Vec::new();
    let mut ids = Vec::new();
    let mut sequences = Vec::new();
    let mut owners = Vec::new();
    for (request, (batches, _)) in requests.iter().enumerate() {
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            types.push(batch.aggregate_type);
            ids.push(batch.aggregate_id.as_str());
            sequences.push(i64::try_from(batch.after_sequence + 1).unwrap_or(i64::MAX));
            owners.push(i32::try_from(request).unwrap_or(i32::MAX));
        }
    }
    let taken: Vec<i32> = sqlx::query_scalar(
        "SELECT DISTINCT u.n FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int4[]) \
           AS u(t, i, s, n) \
         WHERE EXISTS (SELECT 1 FROM events e \
           WHERE e.aggregate_type = u.t AND e.aggregate_id = u.i AND e.sequence = u.s)",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&owners)
    .fetch_all(pool)
    .await?;
    Ok(taken
        .into_iter()
        .filter_map(|n| usize::try_from(n).ok())
        .collect())
}

impl Pending {
    async fn write_alone(self, pool: &PgPool) {
        let written = write(pool, &[(&self.batches, &self.metadata)]).await;
        let _ = self
            .reply
            .send(written.map(|w| w.into_iter().map(|(_, c)| c).max()));
    }
}

/// The next group: waiting appends in order, skipping any that touches an aggregate already
/// in the group (it stays first in line for the next one).
fn take_group(waiting: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut group = Vec::new();
    let mut touched: HashSet<(&'static str, String)> = HashSet::new();
    let mut kept = VecDeque::new();
    while let Some(p) = waiting.pop_front() {
        let keys: Vec<(&'static str, String)> = p
            .batches
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| (b.aggregate_type, b.aggregate_id.clone()))
            .collect();
        if group.len() < MAX_GROUP && keys.iter().all(|k| !touched.contains(k)) {
            touched.extend(keys);
            group.push(p);
        } else {
            kept.push_back(p);
        }
    }
    *waiting = kept;
    group
}

/// One failure told to every append of a group, keeping its kind (unavailable or internal).
fn shared_failure(err: &Arc<InfraError>) -> InfraError {
    let shared = || Box::new(SharedCause(Arc::clone(err)));
    match err.as_ref() {
        InfraError::Conflict => InfraError::Conflict,
        InfraError::Unavailable(_) => InfraError::Unavailable(shared()),
        InfraError::Internal(_) => InfraError::Internal(shared()),
    }
}

/// The cause of a group's failure, shared by its appends.
#[derive(Debug)]
struct SharedCause(Arc<InfraError>);

impl SharedCause {
    fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self.0.as_ref() {
            InfraError::Unavailable(e) | InfraError::Internal(e) => Some(e.as_ref()),
            InfraError::Conflict => None,
        }
    }
}

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cause() {
            Some(e) => std::fmt::Display::fmt(e, f),
            None => std::fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().and_then(|e| e.source())
    }
}

/// Replaces the aggregate's snapshot the way postgres-es does (one row per aggregate, its
/// version counter bumped), or creates it.
async fn write_snapshot(
    tx: &mut sqlx::PgConnection,
    batch: &Batch,
    sequence: usize,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
    let updated = sqlx::query(
        "UPDATE snapshots SET last_sequence = $3, payload = $4, \
           current_snapshot = current_snapshot + 1 \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND last_sequence < $3",
    )
    .bind(batch.aggregate_type)
    .bind(&batch.aggregate_id)
    .bind(sequence)
    .bind(payload)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
             SELECT $1, $2, $3, 1, $4 \
             WHERE NOT EXISTS (SELECT 1 FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2)",
        )
        .bind(batch.aggregate_type)
        .bind(&batch.aggregate_id)
        .bind(sequence)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carshare_domain::booking::{Booking, BookingEvent};

    fn approved(minute: u32) -> BookingEvent {
        BookingEvent::BookingApproved {
            host_response: None,
            at: format!("2026-12-01T01:{minute:02}:00Z").parse().unwrap(),
        }
    }

    #[test]
    fn events_are_encoded_as_postgres_es_stores_them() {
        let events = vec![approved(0), approved(1)];
        let batch = Batch::new::<Booking>("b-1", 3, &events, &Booking::default(), 0).unwrap();
        assert!(!batch.is_empty());
        assert_eq!(batch.aggregate_type, "Booking");
        assert_eq!(batch.aggregate_id, "b-1");
        assert_eq!(batch.after_sequence, 3);
        assert_eq!(batch.events.len(), 2);
        let (event_type, version, payload) = &batch.events[0];
        assert_eq!(event_type, "BookingApproved");
        assert_eq!(version, "1.0");
        assert_eq!(payload, &serde_json::to_value(&events[0]).unwrap());
        assert_eq!(batch.snapshot, None);
    }

    fn pending(ids: &[&str]) -> Pending {
        let batches = ids
            .iter()
            .map(|id| Batch::new::<Booking>(id, 0, &[approved(0)], &Booking::default(), 0).unwrap())
            .collect();
        Pending {
            batches,
            metadata: Value::Null,
            reply: oneshot::channel().0,
        }
    }

    fn ids(group: &[Pending]) -> Vec<Vec<String>> {
        group
            .iter()
            .map(|p| p.batches.iter().map(|b| b.aggregate_id.clone()).collect())
            .collect()
    }

    #[test]
    fn a_group_holds_one_append_per_aggregate_and_no_more_than_its_cap() {
        let mut waiting: VecDeque<Pending> = [
            pending(&["a", "v1"]),
            pending(&["b", "v2"]),
            pending(&["c", "v1"]), // same vehicle as the first: next group
            pending(&["d", "v3"]),
        ]
        .into_iter()
        .collect();
        let group = take_group(&mut waiting);
        assert_eq!(ids(&group), [["a", "v1"], ["b", "v2"], ["d", "v3"]]);
        assert_eq!(ids(waiting.make_contiguous()), [["c", "v1"]]);
        let group = take_group(&mut waiting);
        assert_eq!(ids(&group), [["c", "v1"]]);
        assert!(waiting.is_empty());
        assert!(take_group(&mut waiting).is_empty());

        let names: Vec<String> = (0..MAX_GROUP + 3).map(|i| format!("x{i}")).collect();
        let mut waiting: VecDeque<Pending> = names.iter().map(|n| pending(&[n.as_str()])).collect();
        assert_eq!(take_group(&mut waiting).len(), MAX_GROUP);
        assert_eq!(waiting.len(), 3);
    }

    #[test]
    fn a_snapshot_is_taken_when_the_batch_crosses_a_multiple() {
        let mut booking = Booking::default();
        booking.apply(approved(0)); // ignored without a request: the state stays empty
        let two = vec![approved(0), approved(1)];
        // 9 → 11 crosses 10.
        let crossing = Batch::new::<Booking>("b-1", 9, &two, &booking, 10).unwrap();
        assert_eq!(
            crossing.snapshot,
            Some((11, serde_json::to_value(&booking).unwrap()))
        );
        // 10 → 12 does not reach 20; 7 → 9 does not reach 10.
        for after in [10, 7] {
            let batch = Batch::new::<Booking>("b-1", after, &two, &booking, 10).unwrap();
            assert_eq!(batch.snapshot, None, "after {after}");
        }
        // Landing exactly on the multiple counts.
        let landing = Batch::new::<Booking>("b-1", 8, &two, &booking, 10).unwrap();
        assert_eq!(landing.snapshot.map(|(s, _)| s), Some(10));
        // No events, no snapshot (and nothing to append).
        let empty = Batch::new::<Booking>("b-1", 9, &[], &booking, 1).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.snapshot, None);
    }
}

//! The live projection worker: reads the ordered stream after the projection's checkpoint,
//! applies a batch and moves the checkpoint in one transaction.

use crate::metrics;
use crate::progress::ProgressBoard;
use crate::projection::{Poisoned, Projection, Target};
use carshare_event_store::{is_unavailable, SharedReads, StoredEvent, StreamCursor, StreamReader};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tuning of a runner.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// Most events per transaction.
    pub batch_size: i64,
    /// How often to look for new events when nothing signalled a commit.
    pub poll_interval: Duration,
    /// How long to let events gather after a wake-up or a partial batch: under a steady
    /// stream of commands this turns many one-event transactions into fewer larger ones, for
    /// a few milliseconds of latency.
    pub linger: Duration,
    /// How long the linger grows while the stream stays busy: each partial batch that found
    /// at least [`BUSY_BATCH`] events doubles it, up to this; a quieter batch or an idle look
    /// sets it back to `linger`. Under load, fewer and larger transactions; at rest, reads wait
    /// no longer for a write to show.
    pub max_linger: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            batch_size: 500,
            poll_interval: Duration::from_millis(50),
            linger: Duration::from_millis(3),
            max_linger: Duration::from_millis(20),
        }
    }
}

/// Events a partial batch must have found for the next linger to grow: events kept coming
/// while the worker lingered and applied the one before.
pub const BUSY_BATCH: usize = 16;

impl RunnerSettings {
    /// The linger after a partial batch of `events` that followed a linger of `current`.
    pub fn next_linger(&self, current: Duration, events: usize) -> Duration {
        if events >= BUSY_BATCH {
            (current * 2).min(self.max_linger).max(self.linger)
        } else {
            self.linger
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing new below the horizon.
    Idle,
    /// A batch was applied; the checkpoint moved to `cursor`.
    Applied {
        /// Events read (including those of other aggregates, skipped).
        events: usize,
        /// Events dead-lettered.
        poisoned: usize,
        /// The new checkpoint.
        cursor: StreamCursor,
    },
    /// Another worker moved the checkpoint first; nothing was written.
    Raced,
}

/// Runs one projection.
pub struct ProjectionRunner {
    pool: PgPool,
    reader: StreamReader,
    projection: Arc<dyn Projection>,
    settings: RunnerSettings,
    board: ProgressBoard,
    wake: Option<watch::Receiver<u64>>,
    /// Where the runner stands (forgotten after a race or a failure, then read afresh).
    cursor: std::sync::Mutex<Option<Position>>,
}

/// A runner's place in the stream.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// Read up to here: every event up to it is applied or skipped.
    at: StreamCursor,
    /// The checkpoint row as this runner last read or wrote it (at or before `at`; checked
    /// under the row lock before it is moved).
    stored: StreamCursor,
    /// Events skipped between `stored` and `at`, not yet counted in the row.
    skipped: usize,
    /// When `stored` was last read or written.
    checked: Instant,
}

impl Position {
    fn stored_at(cursor: StreamCursor) -> Position {
        Position {
            at: cursor,
            stored: cursor,
            skipped: 0,
            checked: Instant::now(),
        }
    }
}

/// How long a runner may leave its checkpoint row behind over events it does not handle. Until
/// it writes, the row lags by at most this (its in-process progress is published at once); a
/// restart in between only reads those events again.
pub const SKIP_WRITE_EVERY: Duration = Duration::from_secs(1);

/// How often an idle runner reads its checkpoint row afresh, to notice it moved under it (an
/// operator, a rebuild) even when no events come.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// Consecutive failures of one batch before its events are applied one by one to find the
/// event at fault.
const ISOLATE_AFTER: u32 = 3;

impl ProjectionRunner {
    /// A runner over the stream of `pool`.
    pub fn new(
        pool: PgPool,
        projection: Arc<dyn Projection>,
        settings: RunnerSettings,
        board: ProgressBoard,
    ) -> ProjectionRunner {
        let reader = StreamReader::new(pool.clone());
        ProjectionRunner {
            reader: if projection.needs_metadata() {
                reader
            } else {
                reader.without_metadata()
            },
            pool,
            projection,
            settings,
            board,
            wake: None,
            cursor: std::sync::Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Position> {
        self.cursor.lock().ok().and_then(|c| *c)
    }

    fn remember(&self, cursor: Option<Position>) {
        if let Ok(mut c) = self.cursor.lock() {
            *c = cursor;
        }
    }

    /// Reads the stream through `reads`, the tail shared with the other workers of this
    /// process that are given the same: events one of them read serve the others from memory,
    /// and a worker at the end is told there is nothing new while the last read (one that
    /// reached the horizon) was sent within the linger time.
    pub fn sharing_reads(mut self, reads: Arc<SharedReads>) -> ProjectionRunner {
        self.reader = self.reader.sharing(reads, self.settings.linger);
        self
    }

    /// Also wakes up when this process commits events.
    pub fn woken_by(mut self, wake: watch::Receiver<u64>) -> ProjectionRunner {
        self.wake = Some(wake);
        self
    }

    /// The pool the runner reads and writes.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    /// Works until `shutdown` is cancelled. Failures are logged and retried with backoff; the
    /// worker never stops on its own.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.projection.name();
        tracing::info!(projection = name, "projection worker started");
        let mut failures: u32 = 0;
        let mut linger = self.settings.linger;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.step().await {
                Ok(Step::Applied { events, .. }) => {
                    failures = 0;
                    if i64::try_from(events).unwrap_or(i64::MAX) < self.settings.batch_size {
                        linger = self.settings.next_linger(linger, events);
                        self.linger(linger, &shutdown).await;
                    }
                }
                Ok(Step::Raced) => failures = 0,
                Ok(Step::Idle) => {
                    failures = 0;
                    linger = self.settings.linger;
                    self.idle(&shutdown).await;
                    self.linger(linger, &shutdown).await;
                }
                Err(err) => {
                    failures += 1;
                    metrics::FAILURES.with_label_values(&[name]).inc();
                    if !is_unavailable(&err) && failures >= ISOLATE_AFTER {
                        tracing::error!(projection = name, error = %err, "batch keeps failing: applying its events one by one");
                        match self.isolate().await {
                            Ok(()) => failures = 0,
                            Err(e) => {
                                tracing::error!(projection = name, error = %e, "isolating the failing event failed")
                            }
                        }
                    } else {
                        tracing::warn!(projection = name, error = %err, failures, "projection batch failed; retrying");
                    }
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        tracing::info!(projection = name, "projection worker stopped");
    }

    async fn linger(&self, linger: Duration, shutdown: &CancellationToken) {
        let linger = linger.max(self.projection.min_linger());
        if !linger.is_zero() {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(linger) => {}
            }
        }
    }

    async fn idle(&mut self, shutdown: &CancellationToken) {
        let poll = tokio::time::sleep(self.settings.poll_interval);
        match self.wake.as_mut() {
            Some(wake) => {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = poll => {}
                    _ = wake.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = poll => {}
                }
            }
        }
    }

    /// Applies at most one batch.
    pub async fn step(&self) -> Result<Step, sqlx::Error> {
        let name = self.projection.name();
        let pos = match self.cached() {
            Some(pos) => pos,
            None => {
                let pos = Position::stored_at(ensure_checkpoint(&self.pool, name).await?);
                self.remember(Some(pos));
                pos
            }
        };
        let events = self
            .reader
            .read_after_shared(pos.at, self.settings.batch_size)
            .await?;
        let events = events.as_slice();
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            self.board.publish(name, pos.at);
            if pos.skipped > 0 {
                // Nothing more to read: record the skipped events now.
                if !skip_past(&self.pool, name, pos.stored, pos.at, pos.skipped).await? {
                    self.remember(None);
                    return Ok(Step::Raced);
                }
                self.remember(Some(Position::stored_at(pos.at)));
            } else if pos.checked.elapsed() >= RECHECK_EVERY {
                // Read the checkpoint afresh next time, so a checkpoint moved by someone else
                // (an operator, a rebuild) is noticed even when no new events come.
                self.remember(None);
            }
            return Ok(Step::Idle);
        };
        let started = Instant::now();
        if !events.iter().any(|e| self.projection.concerns(e)) {
            // Nothing here for this projection: move past the batch, writing the checkpoint
            // row at most every SKIP_WRITE_EVERY (one statement, unless someone else moved it
            // meanwhile).
            let skipped = pos.skipped + events.len();
            if pos.checked.elapsed() < SKIP_WRITE_EVERY {
                self.remember(Some(Position {
                    at: last,
                    skipped,
                    ..pos
                }));
            } else if skip_past(&self.pool, name, pos.stored, last, skipped).await? {
                self.remember(Some(Position::stored_at(last)));
            } else {
                self.remember(None);
                return Ok(Step::Raced);
            }
            self.after_commit(last, events.len(), &[], started);
            return Ok(Step::Applied {
                events: events.len(),
                poisoned: 0,
                cursor: last,
            });
        }
        let mut tx = self.pool.begin().await?;
        if lock_checkpoint_for_batch(&mut tx, name).await? != pos.stored {
            // Another worker or a rebuild moved it: read it afresh next time.
            self.remember(None);
            return Ok(Step::Raced);
        }
        let poisoned = self
            .projection
            .apply(&mut tx, Target::Live, &self.reader, events)
            .await?;
        record_dead_letters(&mut tx, name, events, &poisoned).await?;
        advance(&mut tx, name, last, events.len() + pos.skipped).await?;
        let committed = tx.commit().await;
        if committed.is_err() {
            self.remember(None);
        }
        committed?;
        self.remember(Some(Position::stored_at(last)));
        self.after_commit(last, events.len(), &poisoned, started);
        Ok(Step::Applied {
            events: events.len(),
            poisoned: poisoned.len(),
            cursor: last,
        })
    }

    fn after_commit(
        &self,
        last: StreamCursor,
        count: usize,
        poisoned: &[Poisoned],
        started: Instant,
    ) {
        let name = self.projection.name();
        self.board.publish(name, last);
        metrics::EVENTS
            .with_label_values(&[name])
            .inc_by(count as u64);
        metrics::POSITION
            .with_label_values(&[name])
            .set(last.position);
        metrics::BATCH_SECONDS
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        if !poisoned.is_empty() {
            metrics::DEAD_LETTERS
                .with_label_values(&[name])
                .add(poisoned.len() as i64);
            for p in poisoned {
                tracing::error!(projection = name, position = p.position, error = %p.error, "event dead-lettered");
            }
        }
    }

    /// Applies the next batch one event per transaction; an event whose own transaction fails
    /// is dead-lettered with the database's error, so one bad event cannot stop the worker.
    async fn isolate(&self) -> Result<(), sqlx::Error> {
        let name = self.projection.name();
        self.remember(None);
        let from = ensure_checkpoint(&self.pool, name).await?;
        let events = self
            .reader
            .read_after(from, self.settings.batch_size)
            .await?;
        let mut at = from;
        for event in events {
            let started = Instant::now();
            let single = if self.projection.handles(&event.aggregate_type) {
                vec![event.clone()]
            } else {
                Vec::new()
            };
            let attempt = async {
                let mut tx = self.pool.begin().await?;
                if lock_checkpoint(&mut tx, name).await? != at {
                    return Ok::<_, sqlx::Error>(None);
                }
                let poisoned = self
                    .projection
                    .apply(&mut tx, Target::Live, &self.reader, &single)
                    .await?;
                record_dead_letters(&mut tx, name, &single, &poisoned).await?;
                advance(&mut tx, name, event.cursor(), 1).await?;
                tx.commit().await?;
                Ok(Some(poisoned))
            };
            let poisoned = match attempt.await {
                Ok(Some(poisoned)) => poisoned,
                Ok(None) => return Ok(()),
                Err(err) if is_unavailable(&err) => return Err(err),
                Err(err) => {
                    let poisoned = vec![Poisoned {
                        position: event.position,
                        error: format!("database refused the change: {err}"),
                    }];
                    let mut tx = self.pool.begin().await?;
                    if lock_checkpoint(&mut tx, name).await? != at {
                        return Ok(());
                    }
                    record_dead_letters(&mut tx, name, &single, &poisoned).await?;
                    advance(&mut tx, name, event.cursor(), 1).await?;
                    tx.commit().await?;
                    poisoned
                }
            };
            at = event.cursor();
            self.after_commit(at, 1, &poisoned, started);
        }
        Ok(())
    }
}

/// A projection batch need not wait for its WAL flush: its rows and its checkpoint commit
/// together, so a crash that loses the commit loses both, and the batch is applied again from
/// the log. This roughly halves the cost of a batch.
pub(crate) async fn relaxed_commit(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(conn)
        .await
        .map(|_| ())
}

/// The settings of a live batch: [`relaxed_commit`], and its statements planned for their
/// actual arguments every time. A read table starts empty and grows, and a plan cached for a
/// connection while it was empty (a sequential scan) would otherwise stay in use until the
/// statistics change, which without autovacuum is never; planning a batch's few statements
/// costs far less than one scan of a grown table. (Rebuilds keep cached plans: with their
/// chunks of thousands of events planned each time, the replay ran at half its rate.)
const BATCH_SETTINGS: &str = "set_config('synchronous_commit', 'off', true), \
     set_config('plan_cache_mode', 'force_custom_plan', true)";

/// Applies [`BATCH_SETTINGS`] to the rest of the transaction.
pub(crate) async fn live_batch(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT {BATCH_SETTINGS}"))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The checkpoint of `projection`, if it has one.
pub async fn checkpoint(
    pool: &PgPool,
    projection: &str,
) -> Result<Option<StreamCursor>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(projection)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(to_cursor))
}

pub(crate) async fn ensure_checkpoint(
    pool: &PgPool,
    projection: &str,
) -> Result<StreamCursor, sqlx::Error> {
    if let Some(cursor) = checkpoint(pool, projection).await? {
        return Ok(cursor);
    }
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(projection)
    .execute(pool)
    .await?;
    Ok(checkpoint(pool, projection).await?.unwrap_or_default())
}

/// [`lock_checkpoint`] for a live batch, with the batch's settings (see [`live_batch`]): both
/// in one statement.
async fn lock_checkpoint_for_batch(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<StreamCursor, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(&format!(
        "SELECT transaction_id::text, global_position FROM projection_checkpoints, \
           (SELECT {BATCH_SETTINGS}) AS relaxed \
         WHERE projection = $1 FOR UPDATE OF projection_checkpoints"
    ))
    .bind(projection)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(to_cursor).unwrap_or_default())
}

/// Locks the checkpoint row for the rest of the transaction and returns it.
pub(crate) async fn lock_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<StreamCursor, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM projection_checkpoints \
         WHERE projection = $1 FOR UPDATE",
    )
    .bind(projection)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(to_cursor).unwrap_or_default())
}

/// Holds the checkpoint row shared for the rest of the transaction: Kafka consumers, which do
/// not move it, still keep a rebuild's swap (which locks it for update) from happening under
/// their batch.
pub(crate) async fn share_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = $1 FOR SHARE")
        .bind(projection)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Moves the checkpoint to `to`.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    projection: &str,
    to: StreamCursor,
    events: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, transaction_id, global_position, events_seen, updated_at) \
         VALUES ($1, $2::text::xid8, $3, $4, now()) \
         ON CONFLICT (projection) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
           global_position = EXCLUDED.global_position, \
           events_seen = projection_checkpoints.events_seen + EXCLUDED.events_seen, updated_at = now()",
    )
    .bind(projection)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(i64::try_from(events).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves the checkpoint from `from` to `to` over events the projection does not handle, in one
/// statement (asynchronous commit: losing it only means reading those events again). `false`
/// when the checkpoint was no longer at `from` (another worker, a rebuild or an operator moved
/// it).
async fn skip_past(
    pool: &PgPool,
    projection: &str,
    from: StreamCursor,
    to: StreamCursor,
    events: usize,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) \
         UPDATE projection_checkpoints SET transaction_id = $4::text::xid8, global_position = $5, \
           events_seen = events_seen + $6, updated_at = now() \
         FROM relaxed \
         WHERE projection = $1 AND transaction_id = $2::text::xid8 AND global_position = $3",
    )
    .bind(projection)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(i64::try_from(events).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Records poisoned events (once each) in the dead-letter table.
pub(crate) async fn record_dead_letters(
    conn: &mut PgConnection,
    projection: &str,
    events: &[StoredEvent],
    poisoned: &[Poisoned],
) -> Result<(), sqlx::Error> {
    for p in poisoned {
        let Some(event) = events.iter().find(|e| e.position == p.position) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO projection_dead_letters \
               (projection, global_position, transaction_id, aggregate_type, aggregate_id, sequence, event_type, error) \
             VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8) \
             ON CONFLICT (projection, global_position) DO NOTHING",
        )
        .bind(projection)
        .bind(event.position)
        .bind(event.transaction_id.to_string())
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&event.event_type)
        .bind(&p.error)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn to_cursor((tx, position): (String, i64)) -> StreamCursor {
    StreamCursor {
        transaction_id: tx.parse().unwrap_or(0),
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(linger: u64, max: u64) -> RunnerSettings {
        RunnerSettings {
            linger: Duration::from_millis(linger),
            max_linger: Duration::from_millis(max),
            ..RunnerSettings::default()
        }
    }

    #[test]
    fn the_linger_doubles_while_batches_stay_busy_up_to_its_bound() {
        let s = settings(3, 20);
        let mut linger = s.linger;
        let mut seen = Vec::new();
        for _ in 0..5 {
            linger = s.next_linger(linger, BUSY_BATCH);
            seen.push(linger.as_millis());
        }
        assert_eq!(seen, vec![6, 12, 20, 20, 20]);
    }

    #[test]
    fn a_quiet_batch_sets_the_linger_back() {
        let s = settings(3, 20);
        assert_eq!(
            s.next_linger(Duration::from_millis(20), BUSY_BATCH - 1),
            Duration::from_millis(3)
        );
        assert_eq!(
            s.next_linger(Duration::from_millis(3), 1),
            Duration::from_millis(3)
        );
    }

    #[test]
    fn a_bound_below_the_linger_or_no_linger_never_grows_it() {
        let s = settings(10, 5);
        assert_eq!(
            s.next_linger(Duration::from_millis(10), 400),
            Duration::from_millis(10)
        );
        let none = settings(0, 20);
        assert_eq!(none.next_linger(Duration::ZERO, 400), Duration::ZERO);
    }
}

//! Rebuilding a projection from the event log without downtime: the tables are built afresh
//! beside the live ones (`read.<table>__rebuild`), in committed chunks so no long transaction
//! holds back the stream horizon, then swapped in within one short transaction that also moves
//! the live checkpoint. Reads keep using the live tables until the swap.

use crate::projection::{Poisoned, Projection, Target, REBUILD_SUFFIX};
use crate::runner::{advance, lock_checkpoint, record_dead_letters};
use carshare_event_store::{StoredEvent, StreamCursor, StreamReader};
use sqlx::{PgConnection, PgPool};
use std::time::{Duration, Instant};

/// Tuning of a rebuild.
#[derive(Debug, Clone, Copy)]
pub struct RebuildSettings {
    /// Events per committed chunk.
    pub chunk_size: i64,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        RebuildSettings { chunk_size: 5_000 }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// Events replayed.
    pub events: u64,
    /// Events that could not be applied (dead-lettered again).
    pub dead_letters: u64,
    /// Time spent replaying events (excludes index builds and the swap).
    pub replay: Duration,
    /// Time spent building secondary indexes.
    pub indexing: Duration,
    /// Total time.
    pub total: Duration,
    /// Where the rebuilt projection stands.
    pub cursor: StreamCursor,
}

/// Why a rebuild failed. The live tables are untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Another rebuild of the same projection is running.
    #[error("a rebuild of `{0}` is already running")]
    AlreadyRunning(String),
    /// A database error.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A task of the rebuild failed.
    #[error("{0}")]
    Internal(String),
}

// Chunks of a rebuild need not wait for their WAL flush either: until the swap nothing reads
// the shadow tables, and a crash before it discards them. The swap itself commits durably.
use crate::runner::relaxed_commit;

/// Name under which a rebuild's dead letters are kept until the swap.
fn shadow_name(projection: &str) -> String {
    format!("{projection}{REBUILD_SUFFIX}")
}

/// Rebuilds `projection` and swaps it in. `progress(done, total)` is called after each chunk.
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    settings: RebuildSettings,
    mut progress: impl FnMut(u64, u64),
) -> Result<RebuildReport, RebuildError> {
    let name = projection.name();
    let started = Instant::now();
    let run_id = start_run(pool, name).await?;
    let result = replay_and_swap(pool, projection, settings, run_id, &mut progress, started).await;
    if let Err(err) = &result {
        tracing::error!(projection = name, error = %err, "rebuild failed; live tables untouched");
        let _ = sqlx::query(
            "UPDATE projection_rebuilds SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
        )
        .bind(run_id)
        .bind(err.to_string())
        .execute(pool)
        .await;
        for table in projection.tables() {
            let _ = sqlx::query(&format!(
                "DROP TABLE IF EXISTS {}",
                Target::Rebuild.table(table)
            ))
            .execute(pool)
            .await;
        }
    }
    result
}

async fn start_run(pool: &PgPool, name: &str) -> Result<i64, RebuildError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO projection_rebuilds (projection, status, events_total) VALUES ($1, 'running', $2) RETURNING id",
    )
    .bind(name)
    .bind(total)
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(id) => Ok(id),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            Err(RebuildError::AlreadyRunning(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Secondary indexes of a live table, to be created on the shadow after the bulk load.
struct DeferredIndex {
    live_name: String,
    definition: String,
}

async fn prepare_shadow(pool: &PgPool, table: &str) -> Result<Vec<DeferredIndex>, sqlx::Error> {
    let live = Target::Live.table(table);
    let shadow = Target::Rebuild.table(table);
    let mut conn = pool.acquire().await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {shadow} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
         INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION \
         INCLUDING COMMENTS)"
    ))
    .execute(&mut *conn)
    .await?;
    // Storage parameters (a fillfactor) are not part of LIKE.
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE oid = $1::regclass")
            .bind(&live)
            .fetch_one(&mut *conn)
            .await?;
    if let Some(options) = options.filter(|o| !o.is_empty()) {
        sqlx::query(&format!(
            "ALTER TABLE {shadow} SET ({})",
            options.join(", ")
        ))
        .execute(&mut *conn)
        .await?;
    }
    // Primary key and unique constraints now (upserts need them), named `<live>__rebuild`.
    let constraints: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = $1::regclass AND contype IN ('p', 'u')",
    )
    .bind(&live)
    .fetch_all(&mut *conn)
    .await?;
    for (name, def) in &constraints {
        sqlx::query(&format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {name}{REBUILD_SUFFIX} {def}"
        ))
        .execute(&mut *conn)
        .await?;
    }
    // Every other index later, in one pass over the loaded table.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = $1::regclass \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .bind(&live)
    .fetch_all(&mut *conn)
    .await?;
    Ok(indexes
        .into_iter()
        .map(|(live_name, definition)| DeferredIndex {
            definition: definition.replacen(
                &format!("INDEX {live_name} ON {live} "),
                &format!("INDEX {live_name}{REBUILD_SUFFIX} ON {shadow} "),
                1,
            ),
            live_name,
        })
        .collect())
}

/// Lanes a rebuild writes in parallel.
const LANES: usize = 3;

/// Splits events by aggregate into `lanes` lists, each in stream order.
fn split_into_lanes(events: Vec<StoredEvent>, lanes: usize) -> Vec<Vec<StoredEvent>> {
    use std::hash::{Hash, Hasher};
    let mut out: Vec<Vec<StoredEvent>> = (0..lanes)
        .map(|_| Vec::with_capacity(events.len() / lanes + 1))
        .collect();
    for event in events {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        event.aggregate_type.hash(&mut hasher);
        event.aggregate_id.hash(&mut hasher);
        let lane = usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0);
        if let Some(list) = out.get_mut(lane) {
            list.push(event);
        }
    }
    out
}

async fn apply_chunk(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    reader: &StreamReader,
    events: &[StoredEvent],
) -> Result<Vec<Poisoned>, sqlx::Error> {
    let poisoned = projection
        .apply(conn, Target::Rebuild, reader, events)
        .await?;
    record_dead_letters(conn, &shadow_name(projection.name()), events, &poisoned).await?;
    Ok(poisoned)
}

async fn replay_and_swap(
    pool: &PgPool,
    projection: &dyn Projection,
    settings: RebuildSettings,
    run_id: i64,
    progress: &mut impl FnMut(u64, u64),
    started: Instant,
) -> Result<RebuildReport, RebuildError> {
    let name = projection.name();
    let reader = StreamReader::new(pool.clone());
    let reader = if projection.needs_metadata() {
        reader
    } else {
        reader.without_metadata()
    };
    let total = u64::try_from(
        sqlx::query_scalar::<_, i64>("SELECT events_total FROM projection_rebuilds WHERE id = $1")
            .bind(run_id)
            .fetch_one(pool)
            .await?,
    )
    .unwrap_or(0);
    sqlx::query("DELETE FROM projection_dead_letters WHERE projection = $1")
        .bind(shadow_name(name))
        .execute(pool)
        .await?;
    let mut deferred = Vec::new();
    for table in projection.tables() {
        deferred.extend(prepare_shadow(pool, table).await?);
    }

    // Replay everything below the horizon from one streamed read, written in committed
    // chunks (no long transaction holds the horizon back) while the next chunk streams in.
    let (sink, mut chunks) = tokio::sync::mpsc::channel::<Vec<StoredEvent>>(2);
    let producer = {
        let reader = reader.clone();
        let chunk_size = usize::try_from(settings.chunk_size).unwrap_or(5_000).max(1);
        tokio::spawn(async move {
            reader
                .stream_chunks(StreamCursor::START, chunk_size, sink)
                .await
        })
    };
    let mut cursor = StreamCursor::START;
    let mut done: u64 = 0;
    let mut dead: u64 = 0;
    while let Some(events) = chunks.recv().await {
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            continue;
        };
        let count = events.len() as u64;
        // The chunk is split into lanes by aggregate, written side by side on their own
        // connections: events of one aggregate always share a lane, so lanes never touch the
        // same row, and each lane keeps stream order.
        let lanes = split_into_lanes(events, LANES);
        let written = lanes.iter().enumerate().map(|(lane, lane_events)| {
            let reader = &reader;
            let applied = done + count;
            async move {
                let mut tx = pool.begin().await?;
                relaxed_commit(&mut tx).await?;
                let poisoned = apply_chunk(&mut tx, projection, reader, lane_events).await?;
                if lane == 0 {
                    sqlx::query("UPDATE projection_rebuilds SET events_applied = $2 WHERE id = $1")
                        .bind(run_id)
                        .bind(i64::try_from(applied).unwrap_or(i64::MAX))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(poisoned.len() as u64)
            }
        });
        for lane_dead in futures::future::try_join_all(written).await? {
            dead += lane_dead;
        }
        cursor = last;
        done += count;
        progress(done, total.max(done));
    }
    producer
        .await
        .map_err(|e| RebuildError::Internal(format!("stream read task failed: {e}")))??;
    // What was committed while the replay ran is caught up chunk by chunk.
    loop {
        let events = reader.read_after(cursor, settings.chunk_size).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            break;
        };
        let mut tx = pool.begin().await?;
        relaxed_commit(&mut tx).await?;
        dead += apply_chunk(&mut tx, projection, &reader, &events)
            .await?
            .len() as u64;
        tx.commit().await?;
        cursor = last;
        done += events.len() as u64;
        progress(done, total.max(done));
    }
    let replay = started.elapsed();

    // The deferred indexes are built side by side, each on its own connection.
    let indexing_started = Instant::now();
    let builds: Vec<_> = deferred
        .into_iter()
        .map(|index| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                sqlx::query("SET maintenance_work_mem = '256MB'")
                    .execute(&mut *conn)
                    .await?;
                tracing::debug!(index = %index.live_name, "building index on the rebuilt table");
                sqlx::query(&index.definition).execute(&mut *conn).await?;
                sqlx::query("RESET maintenance_work_mem")
                    .execute(&mut *conn)
                    .await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();
    for build in builds {
        build
            .await
            .map_err(|e| RebuildError::Internal(format!("index build task failed: {e}")))??;
    }
    let indexing = indexing_started.elapsed();

    // The swap: hold the live checkpoint so the live worker pauses, catch up the last events,
    // then exchange the tables and move the checkpoint, atomically.
    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, name).await?;
    loop {
        let events = reader.read_after(cursor, settings.chunk_size).await?;
        let Some(last) = events.last().map(StoredEvent::cursor) else {
            break;
        };
        dead += apply_chunk(&mut tx, projection, &reader, &events)
            .await?
            .len() as u64;
        cursor = last;
        done += events.len() as u64;
    }
    for table in projection.tables() {
        let live = Target::Live.table(table);
        let shadow_table = format!("{table}{REBUILD_SUFFIX}");
        sqlx::query(&format!("DROP TABLE {live}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "ALTER TABLE read.{shadow_table} RENAME TO {table}"
        ))
        .execute(&mut *tx)
        .await?;
        let renamed: Vec<(String,)> = sqlx::query_as(
            "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = $1::regclass AND i.relname LIKE '%' || $2",
        )
        .bind(&live)
        .bind(REBUILD_SUFFIX)
        .fetch_all(&mut *tx)
        .await?;
        for (index,) in renamed {
            let original = index.trim_end_matches(REBUILD_SUFFIX);
            sqlx::query(&format!("ALTER INDEX read.{index} RENAME TO {original}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    advance(
        &mut tx,
        name,
        cursor,
        usize::try_from(done).unwrap_or(usize::MAX),
    )
    .await?;
    sqlx::query("DELETE FROM projection_dead_letters WHERE projection = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE projection_dead_letters SET projection = $1 WHERE projection = $2")
        .bind(name)
        .bind(shadow_name(name))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE projection_rebuilds SET status = 'finished', events_applied = $2, finished_at = now() WHERE id = $1",
    )
    .bind(run_id)
    .bind(i64::try_from(done).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    progress(done, total.max(done));
    tracing::info!(
        projection = name,
        events = done,
        dead_letters = dead,
        "rebuild swapped in"
    );
    Ok(RebuildReport {
        events: done,
        dead_letters: dead,
        replay,
        indexing,
        total: started.elapsed(),
        cursor,
    })
}

//! Health of the projections, for `/ready`, `/metrics` and operators.

use crate::metrics;
use crate::progress::Source;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// Where one projection stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProjectionStatus {
    /// Name.
    pub name: String,
    /// Where its workers read: `postgres` or `kafka`.
    pub source: &'static str,
    /// Global position of its checkpoint (Kafka: the highest applied).
    pub position: i64,
    /// Events in the log it has not processed yet (capped at 1,000,000).
    pub lag_events: i64,
    /// Age in seconds of the oldest event it has not processed (0 when caught up).
    pub lag_seconds: f64,
    /// Events it could not apply.
    pub dead_letters: i64,
    /// When its checkpoint last moved.
    pub updated_at: Option<DateTime<Utc>>,
    /// A rebuild in progress, if any.
    pub rebuild: Option<RebuildProgress>,
}

/// Progress of a running rebuild.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RebuildProgress {
    /// Events replayed so far.
    pub events_applied: i64,
    /// Events in the log when it started.
    pub events_total: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

type StatusRow = (
    Option<i64>,
    Option<DateTime<Utc>>,
    i64,
    Option<DateTime<Utc>>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<DateTime<Utc>>,
);

/// The status of the named projections (a projection that never ran shows position 0).
///
/// Reading the Postgres stream, the position is the checkpoint and the lag counts the events
/// after it. Consuming Kafka, the position is the highest global position applied and the lag
/// counts the messages between each partition's recorded offset and its end as last read (the
/// relay's own lag is reported by the relay); the lag's age is then an upper bound: the age of
/// the newest applied event of a lagging partition.
pub async fn statuses(
    pool: &PgPool,
    names: &[&str],
    source: Source,
) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let sql = match source {
            Source::Postgres => POSTGRES_STATUS,
            Source::Kafka => KAFKA_STATUS,
        };
        let row: StatusRow = sqlx::query_as(sql).bind(name).fetch_one(pool).await?;
        let (position, updated_at, lag_events, oldest, dead_letters, applied, total, started) = row;
        let lag_seconds = match source {
            Source::Kafka if lag_events == 0 => 0.0,
            _ => oldest
                .map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0)
                .unwrap_or(0.0)
                .max(0.0),
        };
        metrics::LAG_EVENTS
            .with_label_values(&[name])
            .set(lag_events);
        metrics::LAG_SECONDS
            .with_label_values(&[name])
            .set(lag_seconds);
        metrics::DEAD_LETTERS
            .with_label_values(&[name])
            .set(dead_letters);
        metrics::POSITION
            .with_label_values(&[name])
            .set(position.unwrap_or(0));
        out.push(ProjectionStatus {
            name: (*name).to_string(),
            source: match source {
                Source::Postgres => "postgres",
                Source::Kafka => "kafka",
            },
            position: position.unwrap_or(0),
            lag_events,
            lag_seconds,
            dead_letters,
            updated_at,
            rebuild: match (applied, total, started) {
                (Some(events_applied), Some(events_total), Some(started_at)) => {
                    Some(RebuildProgress {
                        events_applied,
                        events_total,
                        started_at,
                    })
                }
                _ => None,
            },
        });
    }
    Ok(out)
}

const POSTGRES_STATUS: &str = "WITH cp AS ( \
               SELECT coalesce((SELECT transaction_id FROM projection_checkpoints WHERE projection = $1), '0'::xid8) AS tx, \
                      coalesce((SELECT global_position FROM projection_checkpoints WHERE projection = $1), 0) AS pos) \
             SELECT (SELECT global_position FROM projection_checkpoints WHERE projection = $1), \
                    (SELECT updated_at FROM projection_checkpoints WHERE projection = $1), \
                    (SELECT count(*) FROM (SELECT 1 FROM events e, cp \
                       WHERE (e.transaction_id, e.global_position) > (cp.tx, cp.pos) LIMIT 1000000) behind), \
                    (SELECT min(e.recorded_at) FROM (SELECT recorded_at FROM events e, cp \
                       WHERE (e.transaction_id, e.global_position) > (cp.tx, cp.pos) \
                       ORDER BY e.transaction_id, e.global_position LIMIT 1) e), \
                    (SELECT count(*) FROM projection_dead_letters WHERE projection = $1), \
                    r.events_applied, r.events_total, r.started_at \
             FROM (SELECT 1) one \
             LEFT JOIN projection_rebuilds r ON r.projection = $1 AND r.status = 'running'";

const KAFKA_STATUS: &str = "WITH o AS (SELECT * FROM projection_offsets WHERE projection = $1) \
     SELECT (SELECT max(last_position) FROM o), (SELECT max(updated_at) FROM o), \
            (SELECT coalesce(sum(greatest(coalesce(high_watermark, next_offset) - next_offset, 0)), 0)::bigint FROM o), \
            (SELECT min(last_recorded_at) FROM o WHERE high_watermark > next_offset), \
            (SELECT count(*) FROM projection_dead_letters WHERE projection = $1), \
            r.events_applied, r.events_total, r.started_at \
     FROM (SELECT 1) one \
     LEFT JOIN projection_rebuilds r ON r.projection = $1 AND r.status = 'running'";

/// Refreshes the stream-horizon gauge; returns the horizon's age in seconds.
pub async fn refresh_horizon(pool: &PgPool) -> Result<f64, sqlx::Error> {
    let head = carshare_event_store::StreamReader::new(pool.clone())
        .head()
        .await?;
    metrics::HORIZON_AGE
        .with_label_values(&[] as &[&str])
        .set(head.horizon_age_seconds);
    Ok(head.horizon_age_seconds)
}

/// A dead-lettered event.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// Projection.
    pub projection: String,
    /// Global position of the event.
    pub global_position: i64,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence within the aggregate.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Why it failed.
    pub error: String,
    /// When.
    pub failed_at: DateTime<Utc>,
}

/// The most recent dead letters of a projection (all projections when `None`).
pub async fn dead_letters(
    pool: &PgPool,
    projection: Option<&str>,
    limit: i64,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, projection, global_position, aggregate_type, aggregate_id, sequence, event_type, error, failed_at \
         FROM projection_dead_letters WHERE ($1::text IS NULL OR projection = $1) \
         ORDER BY id DESC LIMIT $2",
    )
    .bind(projection)
    .bind(limit)
    .fetch_all(pool)
    .await
}

//! The relay: publishes the ordered stream to Kafka, at least once, in stream order.
//!
//! One relay is active per database and topic prefix: it holds a Postgres advisory lock on a
//! connection of its own and writes its checkpoint through that same connection, so a relay
//! that lost its lock (its connection died) cannot move the checkpoint any more. Others wait,
//! trying the lock every second, and take over when the holder dies.
//!
//! A batch is read after the checkpoint, handed to an idempotent producer (`acks=all`), and
//! the checkpoint moves to the batch's last event only once the broker acknowledged every
//! event of it. A batch that fails is published again from the checkpoint: a consumer may see
//! an event twice (it drops the repeat by aggregate sequence), never miss one.

use crate::kafka::{self, KafkaSettings};
use crate::metrics::{counter_vec, float_gauge_vec, gauge_vec};
use crate::stream::{StoredEvent, StreamCursor, StreamReader};
use chrono::{DateTime, Utc};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tuning of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Most events read and published per batch.
    pub batch_size: i64,
    /// How often to look for new events when nothing signalled a commit.
    pub poll_interval: Duration,
    /// How often an idle active relay proves it is alive and checks the broker.
    pub heartbeat: Duration,
    /// How often a standby relay tries to take the lock.
    pub standby_retry: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            batch_size: 5_000,
            poll_interval: Duration::from_millis(20),
            heartbeat: Duration::from_secs(2),
            standby_retry: Duration::from_secs(1),
        }
    }
}

/// What the relay of this process is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RelayState {
    /// Not started yet.
    Starting,
    /// Another relay holds the lock; this one waits to take over.
    Standby,
    /// Publishing.
    Active,
    /// Holding the lock but the broker is failing; retrying.
    Degraded {
        /// The broker's error.
        error: String,
    },
    /// Shut down.
    Stopped,
}

/// A heartbeat older than this means no relay is active.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(10);

/// The relay lag above which `/ready` reports the relay as degraded.
pub const LAG_DEGRADED_SECONDS: f64 = 30.0;

static PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_relay_events_published_total",
        "Events the broker acknowledged",
        &["topic_prefix"],
    )
});
static ACTIVE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_relay_active",
        "1 while this process holds the relay lock",
        &["topic_prefix"],
    )
});
static BROKER_UP: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_relay_broker_up",
        "1 while the active relay's broker answers",
        &["topic_prefix"],
    )
});
static POSITION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_relay_position",
        "Global position of the relay's checkpoint",
        &["topic_prefix"],
    )
});
static LAG_EVENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_relay_lag_events",
        "Events in the store not yet acknowledged by the broker (refreshed on scrape)",
        &["topic_prefix"],
    )
});
static LAG_SECONDS: LazyLock<GaugeVec> = LazyLock::new(|| {
    float_gauge_vec(
        "carshare_relay_lag_seconds",
        "Age of the oldest event not yet acknowledged by the broker (refreshed on scrape)",
        &["topic_prefix"],
    )
});
static BATCH_SECONDS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    crate::metrics::histogram_vec(
        "carshare_relay_batch_duration_seconds",
        "Time to publish one batch until every event is acknowledged",
        &["topic_prefix"],
        crate::metrics::LATENCY_BUCKETS,
    )
});

/// Publishes the ordered stream to Kafka.
pub struct Relay {
    pool: PgPool,
    reader: StreamReader,
    kafka: KafkaSettings,
    settings: RelaySettings,
    owner: String,
    wake: Option<watch::Receiver<u64>>,
    state: watch::Sender<RelayState>,
}

/// Why leading stopped.
enum Lead {
    /// Shutdown was asked for.
    Shutdown,
    /// The lock connection failed: the lock may be gone.
    LostLock(sqlx::Error),
}

impl Relay {
    /// A relay over the stream of `pool`.
    pub fn new(pool: PgPool, kafka: KafkaSettings, settings: RelaySettings) -> Relay {
        let (state, _) = watch::channel(RelayState::Starting);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Relay {
            reader: StreamReader::new(pool.clone()),
            pool,
            kafka,
            settings,
            owner: format!("{host}:{}", std::process::id()),
            wake: None,
            state,
        }
    }

    /// Also wakes up when this process commits events.
    pub fn woken_by(mut self, wake: watch::Receiver<u64>) -> Relay {
        self.wake = Some(wake);
        self
    }

    /// Names this instance in the checkpoint row (default `host:pid`).
    pub fn owned_by(mut self, owner: impl Into<String>) -> Relay {
        self.owner = owner.into();
        self
    }

    /// Follows what the relay is doing.
    pub fn state(&self) -> watch::Receiver<RelayState> {
        self.state.subscribe()
    }

    fn set_state(&self, state: RelayState) {
        let prefix = self.kafka.topic_prefix.as_str();
        ACTIVE.with_label_values(&[prefix]).set(i64::from(matches!(
            state,
            RelayState::Active | RelayState::Degraded { .. }
        )));
        if matches!(state, RelayState::Active) {
            BROKER_UP.with_label_values(&[prefix]).set(1);
        }
        if matches!(state, RelayState::Degraded { .. }) {
            BROKER_UP.with_label_values(&[prefix]).set(0);
        }
        self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// Works until `shutdown` is cancelled: waits for the lock, then publishes.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let prefix = self.kafka.topic_prefix.clone();
        tracing::info!(topic_prefix = %prefix, owner = %self.owner, "relay started");
        let mut failures: u32;
        loop {
            let Some(mut lock) = self.acquire(&shutdown).await else {
                break;
            };
            tracing::info!(topic_prefix = %prefix, owner = %self.owner, "relay holds the lock: publishing");
            failures = 0;
            match self.lead(&mut lock, &shutdown).await {
                Lead::Shutdown => {
                    let _ = lock.close().await;
                    break;
                }
                Lead::LostLock(e) => {
                    failures += 1;
                    tracing::warn!(topic_prefix = %prefix, error = %e, "relay lost its lock connection; standing by");
                    self.set_state(RelayState::Standby);
                    drop(lock);
                    if sleep_or_cancel(backoff(failures), &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.set_state(RelayState::Stopped);
        tracing::info!(topic_prefix = %prefix, "relay stopped");
    }

    /// Waits until this instance holds the lock, on a connection of its own. `None` on shutdown.
    async fn acquire(&self, shutdown: &CancellationToken) -> Option<PgConnection> {
        let mut said_standby = false;
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            match self.try_lock().await {
                Ok(Some(conn)) => return Some(conn),
                Ok(None) => {
                    if !said_standby {
                        tracing::info!(topic_prefix = %self.kafka.topic_prefix, "another relay is active; standing by");
                        said_standby = true;
                    }
                    self.set_state(RelayState::Standby);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay cannot reach Postgres to take its lock");
                    self.set_state(RelayState::Standby);
                }
            }
            if sleep_or_cancel(self.settings.standby_retry, shutdown).await {
                return None;
            }
        }
    }

    async fn try_lock(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        let options = self.pool.connect_options();
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let locked: bool = sqlx::query_scalar(LOCK_SQL)
            .bind(&self.kafka.topic_prefix)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            // Checkpoint writes need not wait for their WAL flush: a crash that loses the last
            // ones makes the next relay republish events the broker already has, which the
            // consumers drop. The event log itself is always committed synchronously.
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut conn)
                .await?;
            Ok(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Publishes while holding the lock.
    async fn lead(&mut self, lock: &mut PgConnection, shutdown: &CancellationToken) -> Lead {
        let prefix = self.kafka.topic_prefix.clone();
        let mut cursor = match self.claim(lock).await {
            Ok(cursor) => cursor,
            Err(e) => return Lead::LostLock(e),
        };
        POSITION.with_label_values(&[&prefix]).set(cursor.position);
        let mut publisher: Option<Publisher> = None;
        let mut failures: u32 = 0;
        let mut last_beat = Instant::now();
        loop {
            if shutdown.is_cancelled() {
                if let Some(p) = publisher.take() {
                    p.close().await;
                }
                return Lead::Shutdown;
            }
            let result = async {
                let publisher = match publisher.as_mut() {
                    Some(p) => p,
                    None => publisher.insert(Publisher::connect(&self.kafka).await?),
                };
                let events = self
                    .reader
                    .read_after(cursor, self.settings.batch_size)
                    .await
                    .map_err(RelayError::Store)?;
                if events.is_empty() {
                    return Ok(None);
                }
                let started = Instant::now();
                publisher.publish(&self.kafka, &events).await?;
                BATCH_SECONDS
                    .with_label_values(&[&prefix])
                    .observe(started.elapsed().as_secs_f64());
                Ok::<_, RelayError>(Some(events))
            }
            .await;
            match result {
                Ok(Some(events)) => {
                    let Some(last) = events.last().map(StoredEvent::cursor) else {
                        continue;
                    };
                    if let Err(e) = advance(lock, &prefix, &self.owner, last, events.len()).await {
                        return Lead::LostLock(e);
                    }
                    last_beat = Instant::now();
                    cursor = last;
                    failures = 0;
                    PUBLISHED
                        .with_label_values(&[&prefix])
                        .inc_by(events.len() as u64);
                    POSITION.with_label_values(&[&prefix]).set(cursor.position);
                    self.set_state(RelayState::Active);
                }
                Ok(None) => {
                    failures = 0;
                    if last_beat.elapsed() >= self.settings.heartbeat {
                        last_beat = Instant::now();
                        // An idle relay still checks that the broker answers, so an outage
                        // shows before the next event needs publishing.
                        let probe = match publisher.as_ref() {
                            Some(p) => p.probe().await,
                            None => Ok(()),
                        };
                        let beat = match &probe {
                            Ok(()) => {
                                self.set_state(RelayState::Active);
                                heartbeat(lock, &prefix, &self.owner, None).await
                            }
                            Err(e) => {
                                self.set_state(RelayState::Degraded {
                                    error: e.to_string(),
                                });
                                heartbeat(lock, &prefix, &self.owner, Some(&e.to_string())).await
                            }
                        };
                        if let Err(e) = beat {
                            return Lead::LostLock(e);
                        }
                    } else if matches!(*self.state.borrow(), RelayState::Starting) {
                        self.set_state(RelayState::Active);
                    }
                    self.idle(shutdown).await;
                }
                Err(RelayError::Store(e)) => {
                    // The stream could not be read; the lock connection tells whether the
                    // lock is still ours.
                    failures += 1;
                    tracing::warn!(error = %e, "relay cannot read the event stream; retrying");
                    if let Err(e) = sqlx::query("SELECT 1").execute(&mut *lock).await {
                        return Lead::LostLock(e);
                    }
                    sleep_or_cancel(backoff(failures), shutdown).await;
                }
                Err(RelayError::Broker(e)) => {
                    failures += 1;
                    let error = e.to_string();
                    tracing::warn!(topic_prefix = %prefix, error = %error, failures, "publishing failed; the batch will be published again");
                    self.set_state(RelayState::Degraded {
                        error: error.clone(),
                    });
                    // A producer that timed out messages may have lost its idempotence
                    // state; start afresh.
                    if let Some(p) = publisher.take() {
                        p.abandon();
                    }
                    if let Err(e) = heartbeat(lock, &prefix, &self.owner, Some(&error)).await {
                        return Lead::LostLock(e);
                    }
                    last_beat = Instant::now();
                    sleep_or_cancel(backoff(failures), shutdown).await;
                }
            }
        }
    }

    /// Takes the checkpoint row for this instance and returns where to resume.
    async fn claim(&self, lock: &mut PgConnection) -> Result<StreamCursor, sqlx::Error> {
        let (tx, position): (String, i64) = sqlx::query_as(
            "INSERT INTO relay_checkpoints (topic_prefix, owner, heartbeat_at) VALUES ($1, $2, now()) \
             ON CONFLICT (topic_prefix) DO UPDATE SET owner = EXCLUDED.owner, heartbeat_at = now() \
             RETURNING transaction_id::text, global_position",
        )
        .bind(&self.kafka.topic_prefix)
        .bind(&self.owner)
        .fetch_one(&mut *lock)
        .await?;
        Ok(StreamCursor {
            transaction_id: tx.parse().unwrap_or(0),
            position,
        })
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
}

/// Session-level lock: (a constant class, the prefix's hash).
const LOCK_SQL: &str = "SELECT pg_try_advisory_lock(1919250546, hashtext('relay:' || $1))";

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("event store: {0}")]
    Store(sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] KafkaError),
}

/// A producer and the topics known to exist.
struct Publisher {
    producer: FutureProducer,
    topics: HashSet<String>,
}

impl Publisher {
    async fn connect(kafka: &KafkaSettings) -> Result<Publisher, KafkaError> {
        let producer: FutureProducer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set(
                "message.timeout.ms",
                kafka.message_timeout.as_millis().to_string(),
            )
            .create()?;
        let topics: Vec<String> = kafka::AGGREGATE_TYPES
            .iter()
            .map(|t| kafka.topic(t))
            .collect();
        kafka.ensure_topics(&topics).await?;
        Ok(Publisher {
            producer,
            topics: topics.into_iter().collect(),
        })
    }

    /// Publishes `events` in order and returns once the broker acknowledged all of them.
    async fn publish(
        &mut self,
        kafka: &KafkaSettings,
        events: &[StoredEvent],
    ) -> Result<(), KafkaError> {
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let topic = kafka.topic(&event.aggregate_type);
            if !self.topics.contains(&topic) {
                kafka.ensure_topics(std::slice::from_ref(&topic)).await?;
                self.topics.insert(topic.clone());
            }
            let payload = kafka::encode(event)
                .map_err(|e| KafkaError::MessageProduction(invalid_message(&e)))?;
            let mut record = FutureRecord::to(&topic)
                .key(event.aggregate_id.as_str())
                .payload(payload.as_slice())
                .headers(kafka::headers(event));
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }

    /// Whether the broker answers a metadata request.
    async fn probe(&self) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(3))
                .map(|_| ())
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// Flushes what is queued, briefly, on shutdown.
    async fn close(self) {
        let producer = self.producer;
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    }

    /// Drops the producer without waiting for what it still holds.
    fn abandon(self) {
        drop(self.producer);
    }
}

fn invalid_message(e: &serde_json::Error) -> RDKafkaErrorCode {
    tracing::error!(error = %e, "event could not be encoded");
    RDKafkaErrorCode::InvalidMessage
}

async fn advance(
    lock: &mut PgConnection,
    prefix: &str,
    owner: &str,
    to: StreamCursor,
    events: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relay_checkpoints SET transaction_id = $2::text::xid8, global_position = $3, \
           events_published = events_published + $4, owner = $5, heartbeat_at = now(), \
           last_error = NULL, error_since = NULL, updated_at = now() \
         WHERE topic_prefix = $1",
    )
    .bind(prefix)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(i64::try_from(events).unwrap_or(i64::MAX))
    .bind(owner)
    .execute(lock)
    .await
    .map(|_| ())
}

async fn heartbeat(
    lock: &mut PgConnection,
    prefix: &str,
    owner: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relay_checkpoints SET heartbeat_at = now(), owner = $2, last_error = $3, \
           error_since = CASE WHEN $3::text IS NULL THEN NULL ELSE coalesce(error_since, now()) END \
         WHERE topic_prefix = $1",
    )
    .bind(prefix)
    .bind(owner)
    .bind(error)
    .execute(lock)
    .await
    .map(|_| ())
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(failures.min(5)))
}

/// Sleeps; returns whether shutdown came first.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

/// Where the relay stands, as any process sees it through Postgres.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RelayStatus {
    /// `ok`, `degraded` (the broker fails, or the relay lags), or `down` (no relay active).
    pub status: &'static str,
    /// The topic prefix it publishes under.
    pub topic_prefix: String,
    /// Global position of its checkpoint.
    pub position: i64,
    /// Events acknowledged by the broker, in all.
    pub events_published: i64,
    /// Events in the store not yet acknowledged (capped at 1,000,000).
    pub lag_events: i64,
    /// Age in seconds of the oldest event not yet acknowledged (0 when caught up).
    pub lag_seconds: f64,
    /// The active instance.
    pub owner: Option<String>,
    /// Seconds since the active instance last wrote.
    pub heartbeat_age_seconds: Option<f64>,
    /// The broker failure being retried.
    pub error: Option<String>,
    /// Since when it fails.
    pub error_since: Option<DateTime<Utc>>,
}

type StatusRow = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<f64>,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
    Option<DateTime<Utc>>,
);

/// The relay's status for `prefix`, refreshing the lag gauges.
pub async fn status(pool: &PgPool, prefix: &str) -> Result<RelayStatus, sqlx::Error> {
    let row: StatusRow = sqlx::query_as(
        "WITH cp AS ( \
           SELECT coalesce((SELECT transaction_id FROM relay_checkpoints WHERE topic_prefix = $1), '0'::xid8) AS tx, \
                  coalesce((SELECT global_position FROM relay_checkpoints WHERE topic_prefix = $1), 0) AS pos) \
         SELECT r.global_position, r.events_published, r.owner, \
                extract(epoch FROM now() - r.heartbeat_at)::float8, r.last_error, r.error_since, \
                (SELECT count(*) FROM (SELECT 1 FROM events e, cp \
                   WHERE (e.transaction_id, e.global_position) > (cp.tx, cp.pos) LIMIT 1000000) behind), \
                (SELECT min(e.recorded_at) FROM (SELECT recorded_at FROM events e, cp \
                   WHERE (e.transaction_id, e.global_position) > (cp.tx, cp.pos) \
                   ORDER BY e.transaction_id, e.global_position LIMIT 1) e) \
         FROM (SELECT 1) one LEFT JOIN relay_checkpoints r ON r.topic_prefix = $1",
    )
    .bind(prefix)
    .fetch_one(pool)
    .await?;
    let (position, published, owner, heartbeat_age, error, error_since, lag_events, oldest) = row;
    let lag_seconds = oldest
        .map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0)
        .max(0.0);
    LAG_EVENTS.with_label_values(&[prefix]).set(lag_events);
    LAG_SECONDS.with_label_values(&[prefix]).set(lag_seconds);
    let alive = heartbeat_age.is_some_and(|age| age < HEARTBEAT_STALE.as_secs_f64());
    let status = if !alive {
        "down"
    } else if error.is_some() || lag_seconds > LAG_DEGRADED_SECONDS {
        "degraded"
    } else {
        "ok"
    };
    Ok(RelayStatus {
        status,
        topic_prefix: prefix.to_string(),
        position: position.unwrap_or(0),
        events_published: published.unwrap_or(0),
        lag_events,
        lag_seconds,
        owner,
        heartbeat_age_seconds: heartbeat_age,
        error,
        error_since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(5), Duration::from_millis(6_400));
        assert_eq!(backoff(50), Duration::from_millis(6_400));
    }
}

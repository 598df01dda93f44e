//! The projection worker in Kafka mode: one consumer per projection in the consumer group
//! `<group prefix>.projection.<name>`, reading the topics of the aggregate types it handles.
//!
//! A batch of messages is applied in one transaction together with the offsets reached (table
//! `projection_offsets`); only after that transaction commits are the offsets committed to the
//! broker. A crash between the two redelivers the batch, which the projection drops by
//! aggregate sequence. A sequence gap (an event missing before the one received) is repaired
//! from the event store by the projection itself. Several processes share the partitions:
//! scaling out is starting more of them.

use crate::metrics;
use crate::progress::ProgressBoard;
use crate::projection::{Poisoned, Projection, Target};
use crate::runner::{ensure_checkpoint, live_batch, record_dead_letters, share_checkpoint};
use carshare_event_store::kafka::{self, KafkaSettings};
use carshare_event_store::{is_unavailable, StoredEvent, StreamCursor, StreamReader};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Tuning of a Kafka projection worker.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings {
    /// Most messages per transaction.
    pub batch_size: usize,
    /// How long to keep gathering a batch after its first message.
    pub linger: Duration,
    /// How long the broker may hold a fetch open waiting for data.
    pub fetch_wait: Duration,
    /// How often partition ends are read, for lag reporting.
    pub watermark_interval: Duration,
    /// Group session timeout: how soon a dead member's partitions move to the others.
    pub session_timeout: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            batch_size: 500,
            linger: Duration::from_millis(5),
            fetch_wait: Duration::from_millis(20),
            watermark_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
        }
    }
}

static GAPS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    carshare_event_store::metrics::counter_vec(
        "carshare_projection_offset_gaps_total",
        "Partition offsets a worker never received, filled in from the event store",
        &["projection"],
    )
});

static MALFORMED: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    carshare_event_store::metrics::counter_vec(
        "carshare_projection_malformed_messages_total",
        "Kafka messages that are not event envelopes (skipped)",
        &["projection"],
    )
});

static STALLS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    carshare_event_store::metrics::counter_vec(
        "carshare_projection_consumer_stalls_total",
        "Times a worker found an assigned partition with messages it stopped fetching, and \
         reconnected",
        &["projection"],
    )
});

/// Consecutive failures of one batch before its events are applied one by one.
const ISOLATE_AFTER: u32 = 3;

/// Watermark readings (one per `watermark_interval`) a partition may sit behind its end
/// without moving before the worker reconnects.
const STALL_READINGS: u32 = 6;

/// Assigned partitions that have messages the consumer does not move towards.
///
/// After a broker outage a client can keep a partition assigned yet never fetch it again
/// (seen with tansu 0.6 after the broker was frozen for a minute: one partition of one
/// worker stayed put while its others caught up). A partition counts as stalled when its end
/// lies beyond the consumer's position and the position has not moved for
/// [`STALL_READINGS`] readings in a row while the worker had nothing else to do.
#[derive(Debug, Default)]
struct StallWatch {
    partitions: std::collections::HashMap<(String, i32), (i64, u32)>,
}

impl StallWatch {
    /// Records a reading: each assigned partition's position (`None`: nothing consumed yet)
    /// and end. Returns the partitions stalled for long enough.
    fn observe(&mut self, readings: &[(String, i32, Option<i64>, i64)]) -> Vec<(String, i32)> {
        let mut stalled = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (topic, partition, position, end) in readings {
            let key = (topic.clone(), *partition);
            // Without a position (nothing consumed since the assignment) the consumer's start
            // is unknown here: such a partition is not judged.
            let Some(position) = *position else {
                continue;
            };
            let behind = *end > position;
            let count = match self.partitions.get(&key) {
                Some((before, n)) if behind && *before == position => n + 1,
                _ if behind => 1,
                _ => 0,
            };
            if count >= STALL_READINGS {
                stalled.push(key.clone());
            }
            seen.insert(key, (position, count));
        }
        self.partitions = seen;
        stalled
    }
}

/// Runs one projection as a member of its consumer group.
pub struct KafkaProjectionWorker {
    pool: PgPool,
    reader: StreamReader,
    projection: Arc<dyn Projection>,
    kafka: KafkaSettings,
    settings: ConsumerSettings,
    board: ProgressBoard,
    member: String,
}

/// Where a batch leaves one partition.
#[derive(Debug, Clone, Copy)]
struct Reached {
    /// The next offset to consume.
    next: i64,
    /// The newest event's recording time.
    recorded_at: DateTime<Utc>,
    /// The newest event's stream cursor.
    cursor: StreamCursor,
}

/// Where a batch enters one partition.
#[derive(Debug, Clone, Copy)]
struct Entered {
    /// Offset of the first message.
    offset: i64,
    /// Cursor of the first event (none if no message decoded).
    cursor: Option<StreamCursor>,
}

/// A `projection_offsets` row: topic, partition, next offset, last position and transaction.
type OffsetRow = (String, i32, i64, Option<i64>, Option<String>);

/// Messages gathered for one transaction.
#[derive(Default)]
struct Batch {
    events: Vec<StoredEvent>,
    /// Per (topic, partition): where the batch ends.
    offsets: BTreeMap<(String, i32), Reached>,
    /// Per (topic, partition): where it starts.
    entered: BTreeMap<(String, i32), Entered>,
    /// Messages that are not envelopes: their offsets still advance.
    malformed: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.events.len() + self.malformed
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&mut self, projection: &str, message: &BorrowedMessage<'_>) {
        let key = (message.topic().to_string(), message.partition());
        let next = message.offset() + 1;
        let entered = self.entered.entry(key.clone()).or_insert(Entered {
            offset: message.offset(),
            cursor: None,
        });
        match kafka::decode(message.payload().unwrap_or_default()) {
            Ok(event) => {
                if entered.cursor.is_none() {
                    entered.cursor = Some(event.cursor());
                }
                self.offsets.insert(
                    key,
                    Reached {
                        next,
                        recorded_at: event.recorded_at,
                        cursor: event.cursor(),
                    },
                );
                self.events.push(event);
            }
            Err(e) => {
                MALFORMED.with_label_values(&[projection]).inc();
                tracing::error!(projection, topic = message.topic(), partition = message.partition(),
                    offset = message.offset(), error = %e, "message is not an event envelope; skipped");
                let entry = self.offsets.entry(key).or_insert(Reached {
                    next,
                    recorded_at: DateTime::<Utc>::MIN_UTC,
                    cursor: StreamCursor::START,
                });
                entry.next = next;
                self.malformed += 1;
            }
        }
    }
}

impl KafkaProjectionWorker {
    /// A worker for `projection`.
    pub fn new(
        pool: PgPool,
        projection: Arc<dyn Projection>,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        board: ProgressBoard,
    ) -> KafkaProjectionWorker {
        let reader = StreamReader::new(pool.clone());
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        KafkaProjectionWorker {
            reader: if projection.needs_metadata() {
                reader
            } else {
                reader.without_metadata()
            },
            member: format!("{host}:{}:{}", std::process::id(), projection.name()),
            pool,
            projection,
            kafka,
            settings,
            board,
        }
    }

    /// Names this member in `projection_offsets` (default `host:pid:projection`).
    pub fn member(mut self, member: impl Into<String>) -> KafkaProjectionWorker {
        self.member = member.into();
        self
    }

    async fn connect(&self) -> Result<Arc<StreamConsumer>, KafkaError> {
        let topics: Vec<String> = self
            .projection
            .aggregate_types()
            .iter()
            .map(|t| self.kafka.topic(t))
            .collect();
        // Subscribing to a topic that does not exist yet would wait for a metadata refresh
        // after the relay creates it; creating it here (idempotent) avoids that.
        self.kafka.ensure_topics(&topics).await?;
        let consumer: StreamConsumer = self
            .kafka
            .client_config()
            .set("group.id", self.kafka.group(self.projection.name()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                self.settings.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.settings.session_timeout.as_millis() / 4).to_string(),
            )
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait.as_millis().to_string(),
            )
            .set("topic.metadata.refresh.interval.ms", "10000")
            .create()?;
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs)?;
        Ok(Arc::new(consumer))
    }

    /// Works until `shutdown` is cancelled; failures are logged and retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.projection.name();
        tracing::info!(projection = name, group = %self.kafka.group(name), "projection consumer started");
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            if let Err(e) = ensure_checkpoint(&self.pool, name).await {
                failures += 1;
                tracing::warn!(projection = name, error = %e, "cannot reach Postgres; retrying");
                if sleep_or_cancel(backoff(failures), &shutdown).await {
                    break;
                }
                continue;
            }
            match self.connect().await {
                Ok(consumer) => {
                    failures = 0;
                    // Offsets were committed after each batch; committing the consumer's
                    // position here would also cover messages fetched but not applied.
                    self.consume(&consumer, &shutdown).await;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(projection = name, error = %e, "cannot create the Kafka consumer; retrying");
                    if sleep_or_cancel(backoff(failures), &shutdown).await {
                        break;
                    }
                }
            }
        }
        tracing::info!(projection = name, "projection consumer stopped");
    }

    async fn consume(&self, consumer: &Arc<StreamConsumer>, shutdown: &CancellationToken) {
        let name = self.projection.name();
        let mut batch = Batch::default();
        let mut failures: u32 = 0;
        let mut stalls = StallWatch::default();
        let mut watermarks = tokio::time::interval(self.settings.watermark_interval);
        watermarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if batch.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = watermarks.tick() => {
                        let readings = self.record_watermarks(consumer).await;
                        let stalled = stalls.observe(&readings);
                        if !stalled.is_empty() {
                            STALLS.with_label_values(&[name]).inc();
                            tracing::warn!(projection = name, ?stalled, "partitions with messages are not being fetched; reconnecting to the group");
                            return;
                        }
                        continue;
                    }
                    received = consumer.recv() => match received {
                        Ok(message) => batch.add(name, &message),
                        Err(e) => {
                            tracing::warn!(projection = name, error = %e, "Kafka consumer error");
                            continue;
                        }
                    },
                }
                let deadline = tokio::time::Instant::now() + self.settings.linger;
                while batch.len() < self.settings.batch_size {
                    match tokio::time::timeout_at(deadline, consumer.recv()).await {
                        Ok(Ok(message)) => batch.add(name, &message),
                        Ok(Err(e)) => {
                            tracing::warn!(projection = name, error = %e, "Kafka consumer error");
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            let started = Instant::now();
            match self.apply(&batch).await {
                Ok(poisoned) => {
                    failures = 0;
                    self.after_commit(consumer, &batch, &poisoned, started);
                    batch = Batch::default();
                }
                Err(err) => {
                    failures += 1;
                    metrics::FAILURES.with_label_values(&[name]).inc();
                    if !is_unavailable(&err) && failures >= ISOLATE_AFTER {
                        tracing::error!(projection = name, error = %err, "batch keeps failing: applying its events one by one");
                        match self.isolate(&batch).await {
                            Ok(poisoned) => {
                                failures = 0;
                                self.after_commit(consumer, &batch, &poisoned, started);
                                batch = Batch::default();
                                continue;
                            }
                            Err(e) => {
                                tracing::error!(projection = name, error = %e, "isolating the failing event failed");
                            }
                        }
                    } else {
                        tracing::warn!(projection = name, error = %err, failures, "projection batch failed; retrying");
                    }
                    // The batch is kept and applied again; the consumer is not polled
                    // meanwhile, so a long outage costs this member its partitions, which
                    // then go to a member that can work.
                    if sleep_or_cancel(backoff(failures), shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Applies a batch and records its offsets, in one transaction. Messages of a partition
    /// the consumer was never given (its first offset lies past the one recorded) are filled in
    /// from the event store first.
    async fn apply(&self, batch: &Batch) -> Result<Vec<Poisoned>, sqlx::Error> {
        let name = self.projection.name();
        let mut tx = self.pool.begin().await?;
        live_batch(&mut tx).await?;
        share_checkpoint(&mut tx, name).await?;
        let filled = self.fill_gaps(&mut tx, batch).await?;
        let events: std::borrow::Cow<'_, [StoredEvent]> = if filled.is_empty() {
            std::borrow::Cow::Borrowed(&batch.events)
        } else {
            let mut all = filled;
            all.extend(batch.events.iter().cloned());
            std::borrow::Cow::Owned(all)
        };
        let poisoned = self
            .projection
            .apply(&mut tx, Target::Live, &self.reader, &events)
            .await?;
        record_dead_letters(&mut tx, name, &events, &poisoned).await?;
        self.record_offsets(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(poisoned)
    }

    /// The events of offsets this member should have received but did not: a partition whose
    /// first message in the batch lies past the offset recorded for it. Kafka offsets of the
    /// relay's topics are contiguous, so a jump means messages were never delivered (retention
    /// removed them before a slow group read them, or a broker served a later batch than the
    /// one asked for). They are read from the store: every handled event between the last one
    /// applied from that partition and the first one received. Events of other partitions in
    /// that range are applied early, harmlessly; their own delivery is then a repeat.
    async fn fill_gaps(
        &self,
        conn: &mut sqlx::PgConnection,
        batch: &Batch,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let name = self.projection.name();
        let topics: Vec<&str> = batch.entered.keys().map(|(t, _)| t.as_str()).collect();
        let recorded: Vec<OffsetRow> = sqlx::query_as(
            "SELECT topic, partition, next_offset, last_position, last_transaction_id::text \
             FROM projection_offsets WHERE projection = $1 AND topic = ANY($2)",
        )
        .bind(name)
        .bind(&topics)
        .fetch_all(&mut *conn)
        .await?;
        let recorded: BTreeMap<(String, i32), (i64, StreamCursor)> = recorded
            .into_iter()
            .map(|(topic, partition, next, position, tx)| {
                let cursor = StreamCursor {
                    transaction_id: tx.and_then(|t| t.parse().ok()).unwrap_or(0),
                    position: position.unwrap_or(0),
                };
                ((topic, partition), (next, cursor))
            })
            .collect();
        let mut filled = Vec::new();
        for (key, entered) in &batch.entered {
            let (expected, after) = recorded
                .get(key)
                .copied()
                .unwrap_or((0, StreamCursor::START));
            let Some(before) = entered.cursor else {
                continue;
            };
            if entered.offset <= expected {
                continue;
            }
            let events: Vec<StoredEvent> = self
                .reader
                .read_between(after, before)
                .await?
                .into_iter()
                .filter(|e| self.projection.handles(&e.aggregate_type))
                .collect();
            GAPS.with_label_values(&[name]).inc();
            tracing::warn!(projection = name, topic = %key.0, partition = key.1,
                expected, received = entered.offset, from_store = events.len(),
                "offsets were skipped; filling them in from the event store");
            filled.extend(events);
        }
        Ok(filled)
    }

    /// Applies a batch one event per transaction, dead-lettering an event whose own
    /// transaction the database refuses; the offsets are recorded with the last one.
    async fn isolate(&self, batch: &Batch) -> Result<Vec<Poisoned>, sqlx::Error> {
        let name = self.projection.name();
        let mut all = Vec::new();
        for event in &batch.events {
            let single = std::slice::from_ref(event);
            let attempt = async {
                let mut tx = self.pool.begin().await?;
                share_checkpoint(&mut tx, name).await?;
                let poisoned = self
                    .projection
                    .apply(&mut tx, Target::Live, &self.reader, single)
                    .await?;
                record_dead_letters(&mut tx, name, single, &poisoned).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(poisoned)
            };
            match attempt.await {
                Ok(poisoned) => all.extend(poisoned),
                Err(err) if is_unavailable(&err) => return Err(err),
                Err(err) => {
                    let poisoned = vec![Poisoned {
                        position: event.position,
                        error: format!("database refused the change: {err}"),
                    }];
                    let mut tx = self.pool.begin().await?;
                    record_dead_letters(&mut tx, name, single, &poisoned).await?;
                    tx.commit().await?;
                    all.extend(poisoned);
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        self.record_offsets(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(all)
    }

    async fn record_offsets(
        &self,
        conn: &mut sqlx::PgConnection,
        batch: &Batch,
    ) -> Result<(), sqlx::Error> {
        let mut topics = Vec::with_capacity(batch.offsets.len());
        let mut partitions = Vec::with_capacity(batch.offsets.len());
        let mut offsets = Vec::with_capacity(batch.offsets.len());
        let mut recorded = Vec::with_capacity(batch.offsets.len());
        let mut positions = Vec::with_capacity(batch.offsets.len());
        let mut transactions = Vec::with_capacity(batch.offsets.len());
        for ((topic, partition), reached) in &batch.offsets {
            topics.push(topic.as_str());
            partitions.push(*partition);
            offsets.push(reached.next);
            recorded.push(reached.recorded_at);
            positions.push(reached.cursor.position);
            transactions.push(reached.cursor.transaction_id.to_string());
        }
        sqlx::query(
            "INSERT INTO projection_offsets \
               (projection, topic, partition, next_offset, last_recorded_at, last_position, \
                last_transaction_id, member, updated_at) \
             SELECT $1, t, p, o, r, g, x::xid8, $7, now() \
             FROM UNNEST($2::text[], $3::int[], $4::bigint[], $5::timestamptz[], $6::bigint[], $8::text[]) \
               AS u(t, p, o, r, g, x) \
             ON CONFLICT (projection, topic, partition) DO UPDATE SET \
               next_offset = EXCLUDED.next_offset, \
               last_recorded_at = CASE WHEN EXCLUDED.last_position = 0 \
                 THEN projection_offsets.last_recorded_at ELSE EXCLUDED.last_recorded_at END, \
               last_position = CASE WHEN EXCLUDED.last_position = 0 \
                 THEN projection_offsets.last_position ELSE EXCLUDED.last_position END, \
               last_transaction_id = CASE WHEN EXCLUDED.last_position = 0 \
                 THEN projection_offsets.last_transaction_id ELSE EXCLUDED.last_transaction_id END, \
               member = EXCLUDED.member, updated_at = now()",
        )
        .bind(self.projection.name())
        .bind(&topics)
        .bind(&partitions)
        .bind(&offsets)
        .bind(&recorded)
        .bind(&positions)
        .bind(&self.member)
        .bind(&transactions)
        .execute(conn)
        .await?;
        Ok(())
    }

    fn after_commit(
        &self,
        consumer: &StreamConsumer,
        batch: &Batch,
        poisoned: &[Poisoned],
        started: Instant,
    ) {
        let name = self.projection.name();
        let mut offsets = TopicPartitionList::with_capacity(batch.offsets.len());
        for ((topic, partition), reached) in &batch.offsets {
            let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(reached.next));
        }
        // After the read tables committed. A failed commit (the partition moved to another
        // member meanwhile) only means the batch may be delivered again, harmlessly.
        if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
            tracing::debug!(projection = name, error = %e, "offset commit failed");
        }
        self.board.applied(name);
        metrics::EVENTS
            .with_label_values(&[name])
            .inc_by(batch.events.len() as u64);
        if let Some(max) = batch.events.iter().map(|e| e.position).max() {
            let gauge = metrics::POSITION.with_label_values(&[name]);
            if max > gauge.get() {
                gauge.set(max);
            }
        }
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

    /// Reads the end of each assigned partition and records it, for lag reporting. Returns
    /// (topic, partition, consumer position, end) of each partition read.
    async fn record_watermarks(
        &self,
        consumer: &Arc<StreamConsumer>,
    ) -> Vec<(String, i32, Option<i64>, i64)> {
        let name = self.projection.name();
        let consumer = consumer.clone();
        let ends = tokio::task::spawn_blocking(move || {
            let assigned = consumer.assignment().ok()?;
            let positions = consumer.position().ok();
            let mut ends = Vec::new();
            for element in assigned.elements() {
                if let Ok((low, high)) = consumer.fetch_watermarks(
                    element.topic(),
                    element.partition(),
                    Duration::from_secs(2),
                ) {
                    let position = positions
                        .as_ref()
                        .and_then(|p| p.find_partition(element.topic(), element.partition()))
                        .and_then(|p| match p.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                    ends.push((
                        element.topic().to_string(),
                        element.partition(),
                        low,
                        high,
                        position,
                    ));
                }
            }
            Some(ends)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        let mut readings = Vec::with_capacity(ends.len());
        for (topic, partition, low, high, position) in ends {
            readings.push((topic.clone(), partition, position, high));
            let written = sqlx::query(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset, high_watermark, member) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (projection, topic, partition) DO UPDATE SET high_watermark = EXCLUDED.high_watermark, \
                   member = EXCLUDED.member",
            )
            .bind(name)
            .bind(&topic)
            .bind(partition)
            .bind(low)
            .bind(high)
            .bind(&self.member)
            .execute(&self.pool)
            .await;
            if let Err(e) = written {
                tracing::debug!(projection = name, error = %e, "recording partition ends failed");
            }
        }
        readings
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(failures.min(6)))
}

async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(position: Option<i64>, end: i64) -> Vec<(String, i32, Option<i64>, i64)> {
        vec![("t.vehicle.events".to_string(), 3, position, end)]
    }

    #[test]
    fn a_partition_behind_its_end_that_does_not_move_is_stalled_after_six_readings() {
        let mut watch = StallWatch::default();
        for _ in 0..STALL_READINGS - 1 {
            assert!(watch.observe(&reading(Some(267), 994)).is_empty());
        }
        assert_eq!(
            watch.observe(&reading(Some(267), 994)),
            vec![("t.vehicle.events".to_string(), 3)]
        );
    }

    #[test]
    fn progress_or_being_at_the_end_or_no_position_is_not_a_stall() {
        let mut watch = StallWatch::default();
        for i in 0..20 {
            // Moving, though behind.
            assert!(watch.observe(&reading(Some(100 + i), 994)).is_empty());
        }
        for _ in 0..20 {
            // Caught up.
            assert!(watch.observe(&reading(Some(994), 994)).is_empty());
        }
        for _ in 0..20 {
            // Nothing consumed since the assignment: unknown start, not judged.
            assert!(watch.observe(&reading(None, 994)).is_empty());
        }
        // A partition no longer assigned is forgotten: its count starts again.
        for _ in 0..STALL_READINGS - 1 {
            assert!(watch.observe(&reading(Some(5), 9)).is_empty());
        }
        assert!(watch.observe(&[]).is_empty());
        assert!(watch.observe(&reading(Some(5), 9)).is_empty());
    }
}

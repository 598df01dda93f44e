//! The Kafka path against a real Kafka-protocol broker: the relay publishes every event once
//! per (aggregate, sequence) in aggregate order, survives being killed and the broker stopping,
//! hands over to a standby, and projection workers consuming as a group build the same tables
//! as a rebuild from the log.

use carshare_domain::Role;
use carshare_event_store::kafka::KafkaSettings;
use carshare_event_store::relay::{self, Relay, RelaySettings, RelayState};
use carshare_projections::rebuild::{self, RebuildSettings};
use carshare_projections::vehicles::VehicleProjection;
use carshare_projections::{ConsumerSettings, KafkaProjectionWorker, ProgressBoard, Source};
use carshare_tests::history::{assert_same_rows, insert_raw, snapshot, write_history};
use carshare_tests::kafka::{
    app_env, assert_complete_and_ordered, brokers, fresh_prefix, settings, stored_keys,
    PrivateBroker, TopicReader,
};
use carshare_tests::{eventually, json, vehicle_body, AppOptions, TestApp, TestDatabase};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn quick_relay() -> RelaySettings {
    RelaySettings {
        batch_size: 25,
        poll_interval: Duration::from_millis(10),
        heartbeat: Duration::from_millis(500),
        standby_retry: Duration::from_millis(200),
    }
}

/// A pool of its own for a component the test kills, as a process has: aborting a task in the
/// middle of a query must not hand a half-used connection back to the test's pool.
fn own_pool(db: &TestDatabase) -> PgPool {
    carshare_tests::init_logs();
    PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(&db.url)
        .unwrap()
}

fn spawn_relay(
    db: &TestDatabase,
    kafka: &KafkaSettings,
    owner: &str,
) -> (JoinHandle<()>, watch::Receiver<RelayState>) {
    let relay = Relay::new(own_pool(db), kafka.clone(), quick_relay()).owned_by(owner);
    let state = relay.state();
    (tokio::spawn(relay.run(CancellationToken::new())), state)
}

fn spawn_worker(
    db: &TestDatabase,
    kafka: &KafkaSettings,
    member: &str,
    batch_size: usize,
) -> JoinHandle<()> {
    let worker = KafkaProjectionWorker::new(
        own_pool(db),
        Arc::new(VehicleProjection),
        kafka.clone(),
        ConsumerSettings {
            batch_size,
            session_timeout: Duration::from_secs(6),
            watermark_interval: Duration::from_millis(500),
            ..ConsumerSettings::default()
        },
        ProgressBoard::new(Source::Kafka),
    )
    .member(member);
    tokio::spawn(worker.run(CancellationToken::new()))
}

/// Waits until the relay has published every event in the log.
async fn relay_caught_up(pool: &PgPool, prefix: &str, timeout: Duration) -> bool {
    eventually(timeout, || async {
        let status = relay::status(pool, prefix).await.unwrap();
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(pool)
            .await
            .unwrap();
        status.lag_events == 0 && status.position == head
    })
    .await
}

async fn relay_position(pool: &PgPool, prefix: &str) -> i64 {
    relay::status(pool, prefix).await.unwrap().position
}

/// A checksum of the whole `read.vehicles` and `read.vehicle_holds` tables.
async fn table_checksum(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT md5((SELECT coalesce(string_agg(t::text, '|' ORDER BY t.id), '') FROM read.vehicles t) \
           || '#' || (SELECT coalesce(string_agg(h::text, '|' ORDER BY h.vehicle_id, h.booking_id), '') \
           FROM read.vehicle_holds h))",
    )
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Vehicles whose row does not show their last event: (id, last sequence, row's sequence).
async fn vehicles_behind(pool: &PgPool) -> Vec<(String, i64, Option<i64>)> {
    sqlx::query_as(
        "SELECT e.aggregate_id, e.s, v.last_sequence FROM (SELECT aggregate_id, max(sequence) AS s \
           FROM events WHERE aggregate_type = 'Vehicle' GROUP BY aggregate_id) e \
         LEFT JOIN read.vehicles v ON v.id::text = e.aggregate_id \
         WHERE v.last_sequence IS DISTINCT FROM e.s",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Whether every vehicle's row shows its last event.
async fn read_table_caught_up(pool: &PgPool) -> bool {
    vehicles_behind(pool).await.is_empty()
}

/// Waits (up to a minute) for the read table to show every event.
async fn assert_caught_up(pool: &PgPool, who: &str) {
    let done = eventually(Duration::from_secs(60), || read_table_caught_up(pool)).await;
    assert!(
        done,
        "{who} never caught up; behind: {:?}",
        vehicles_behind(pool).await
    );
}

async fn read_everything(kafka: &KafkaSettings, pool: &PgPool, types: &[&str]) -> usize {
    let stored = stored_keys(pool).await;
    let topics: Vec<String> = types.iter().map(|t| kafka.topic(t)).collect();
    let reader = TopicReader::new(kafka, &topics).await;
    let received = reader
        .read_until(Duration::from_secs(60), |got| {
            let mut distinct = std::collections::HashSet::new();
            for r in got {
                distinct.insert((
                    r.event.aggregate_type.clone(),
                    r.event.aggregate_id.clone(),
                    r.event.sequence,
                ));
            }
            distinct.len() >= stored.len()
        })
        .await;
    assert_complete_and_ordered(&received, &stored)
}

#[tokio::test]
async fn every_event_reaches_kafka_once_in_aggregate_order_even_behind_a_held_transaction() {
    let prefix = fresh_prefix();
    let brokers = brokers();
    let app = TestApp::spawn_with(AppOptions {
        env: app_env(&brokers, &prefix),
        ..AppOptions::default()
    })
    .await;
    let kafka = settings(&brokers, &prefix);
    let (_, host) = app.user(Role::Host);

    let mut ids = Vec::new();
    for i in 0..5 {
        let created = app
            .register_vehicle(&host, &vehicle_body(37.50 + f64::from(i) * 0.01, 127.0))
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        let res = app
            .put(
                &format!("/v1/vehicles/{id}"),
                Some(&host),
                &json!({"hourly_rate": 15_000 + i}),
            )
            .await;
        assert_eq!(res.status(), 200);
        ids.push(id);
    }

    // A transaction writes an event first and commits last; commands commit meanwhile.
    let mut held = app.pool().begin().await.unwrap();
    let held_position = insert_raw(&mut held, "Probe", "held", 1, "Probed", json!({})).await;
    for i in 0..3 {
        app.register_vehicle(&host, &vehicle_body(35.10 + f64::from(i) * 0.01, 129.0))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        relay_position(app.pool(), &prefix).await < held_position,
        "the relay must not pass a transaction that is still open"
    );
    held.commit().await.unwrap();
    assert!(relay_caught_up(app.pool(), &prefix, Duration::from_secs(30)).await);

    // Read back: complete, in aggregate order, and (nothing having failed) no repeats.
    let stored = stored_keys(app.pool()).await;
    let topics = vec![kafka.topic("Vehicle"), kafka.topic("Probe")];
    let reader = TopicReader::new(&kafka, &topics).await;
    let received = reader
        .read_until(Duration::from_secs(30), |got| got.len() >= stored.len())
        .await;
    assert_eq!(assert_complete_and_ordered(&received, &stored), 0);
    assert!(received.iter().any(|r| r.event.aggregate_id == "held"));

    // Each message carries the stored event: key, topic, envelope and headers.
    for r in &received {
        let e = &r.event;
        let (event_type, version, payload, metadata, position, recorded_at): (
            String,
            String,
            Value,
            Value,
            i64,
            chrono::DateTime<chrono::Utc>,
        ) = sqlx::query_as(
            "SELECT event_type, event_version, payload, metadata, global_position, recorded_at \
             FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(&e.aggregate_type)
        .bind(&e.aggregate_id)
        .bind(e.sequence)
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(r.topic, kafka.topic(&e.aggregate_type));
        assert_eq!(r.key, e.aggregate_id);
        assert_eq!(e.event_type, event_type);
        assert_eq!(e.event_version, version);
        assert_eq!(e.position, position);
        assert_eq!(e.recorded_at, recorded_at);
        assert_eq!(e.payload_json(), payload);
        assert_eq!(
            serde_json::from_str::<Value>(e.metadata.get()).unwrap(),
            metadata
        );
        assert_eq!(r.headers["event_type"], event_type);
        assert_eq!(r.headers["event_version"], version);
        assert_eq!(r.headers["sequence"], e.sequence.to_string());
        assert_eq!(r.headers["position"], position.to_string());
        if let Some(correlation) = metadata["correlation_id"].as_str() {
            assert_eq!(r.headers["correlation_id"], correlation);
        }
    }
    let vehicle_messages = received
        .iter()
        .filter(|r| r.event.aggregate_type == "Vehicle")
        .count();
    assert_eq!(vehicle_messages, 5 * 2 + 3);

    // The read side is fed through Kafka: a client still reads its own writes.
    let id = &ids[0];
    let res = app
        .put(
            &format!("/v1/vehicles/{id}"),
            Some(&host),
            &json!({"hourly_rate": 31_000}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let position = res.headers()["x-stream-position"]
        .to_str()
        .unwrap()
        .to_string();
    let (status, body) = json(
        app.get(&format!("/v1/vehicles/{id}?min_position={position}"), None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hourly_rate"], 31_000);

    let (status, ready) = json(app.get("/ready", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(ready["relay"]["status"], "ok", "{ready}");
    assert_eq!(ready["projections"][0]["source"], "kafka", "{ready}");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains(&format!(
        "carshare_relay_lag_events{{topic_prefix=\"{prefix}\"}} 0"
    )));
}

#[tokio::test]
async fn a_relay_killed_in_the_middle_of_a_burst_loses_nothing() {
    let db = TestDatabase::create().await;
    let prefix = fresh_prefix();
    let kafka = settings(&brokers(), &prefix);
    let (first, _) = spawn_relay(&db, &kafka, "first");
    let writer = {
        let pool = db.pool.clone();
        tokio::spawn(async move { write_history(&pool, 150).await })
    };

    assert!(
        eventually(Duration::from_secs(30), || async {
            relay_position(&db.pool, &prefix).await > 0
        })
        .await
    );
    assert!(!writer.is_finished(), "the burst must still be running");
    first.abort();
    let _ = first.await;
    let at_kill = relay_position(&db.pool, &prefix).await;
    writer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        relay_position(&db.pool, &prefix).await,
        at_kill,
        "the killed relay must not publish any more"
    );
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(at_kill < head, "the relay was killed before the end");

    let (second, _) = spawn_relay(&db, &kafka, "second");
    assert!(relay_caught_up(&db.pool, &prefix, Duration::from_secs(60)).await);
    assert_eq!(
        relay::status(&db.pool, &prefix)
            .await
            .unwrap()
            .owner
            .as_deref(),
        Some("second")
    );
    let repeats = read_everything(&kafka, &db.pool, &["Vehicle"]).await;
    eprintln!("messages published twice across the kill: {repeats}");

    // Downstream, repeats are absorbed: the consumed table equals a rebuild from the log.
    let worker = spawn_worker(&db, &kafka, "only", 50);
    assert_caught_up(&db.pool, "the consumer").await;
    let live = snapshot(&db.pool).await;
    rebuild::rebuild(
        &db.pool,
        &VehicleProjection,
        RebuildSettings::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_same_rows(&snapshot(&db.pool).await, &live);
    worker.abort();
    second.abort();
}

#[tokio::test]
async fn commands_are_accepted_while_the_broker_is_down_and_the_relay_catches_up() {
    let broker = PrivateBroker::start().await;
    let prefix = fresh_prefix();
    let mut env = app_env(&broker.brokers, &prefix);
    env.push(("READ_YOUR_WRITES_TIMEOUT_MS", "500".into()));
    let app = TestApp::spawn_with(AppOptions {
        env,
        ..AppOptions::default()
    })
    .await;
    let (_, host) = app.user(Role::Host);
    app.register_vehicle(&host, &vehicle_body(37.55, 126.97))
        .await;
    assert!(relay_caught_up(app.pool(), &prefix, Duration::from_secs(30)).await);

    broker.pause();
    let mut created = Vec::new();
    for i in 0..3 {
        let res = app
            .post(
                "/v1/vehicles",
                Some(&host),
                &vehicle_body(37.56 + f64::from(i) * 0.01, 126.98),
            )
            .await;
        assert_eq!(
            res.status(),
            201,
            "the store, not the broker, accepts commands"
        );
        let body: Value = res.json().await.unwrap();
        created.push(body["id"].as_str().unwrap().to_string());
    }
    let last_ready = std::sync::Mutex::new(Value::Null);
    let degraded = eventually(Duration::from_secs(30), || async {
        let (status, body) = json(app.get("/ready", None).await).await;
        let seen = status == 200
            && body["status"] == "degraded"
            && body["relay"]["status"] == "degraded"
            && body["relay"]["lag_events"].as_i64() == Some(3);
        *last_ready.lock().unwrap() = body;
        seen
    })
    .await;
    assert!(
        degraded,
        "/ready never reported the relay degraded: {}",
        last_ready.lock().unwrap()
    );

    broker.resume();
    assert!(
        relay_caught_up(app.pool(), &prefix, Duration::from_secs(60)).await,
        "the relay did not catch up after the broker returned"
    );
    let recovered = eventually(Duration::from_secs(30), || async {
        let (_, body) = json(app.get("/ready", None).await).await;
        body["relay"]["status"] == "ok"
    })
    .await;
    assert!(recovered);
    let kafka = settings(&broker.brokers, &prefix);
    read_everything(&kafka, app.pool(), &["Vehicle"]).await;
    for id in created {
        let ok = eventually(Duration::from_secs(30), || async {
            app.get(&format!("/v1/vehicles/{id}"), None).await.status() == 200
        })
        .await;
        assert!(
            ok,
            "vehicle {id} never reached the read table through Kafka"
        );
    }
}

#[tokio::test]
async fn a_projection_worker_killed_mid_batch_ends_equal_to_a_rebuild() {
    let db = TestDatabase::create().await;
    let prefix = fresh_prefix();
    let kafka = settings(&brokers(), &prefix);
    write_history(&db.pool, 120).await;
    let (relay, _) = spawn_relay(&db, &kafka, "relay");
    assert!(relay_caught_up(&db.pool, &prefix, Duration::from_secs(60)).await);

    let first = spawn_worker(&db, &kafka, "first", 3);
    let started = eventually(Duration::from_secs(60), || async {
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_offsets WHERE projection = 'vehicles' AND last_position IS NOT NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        applied > 0
    })
    .await;
    assert!(started);
    first.abort();
    let _ = first.await;
    assert!(
        !read_table_caught_up(&db.pool).await,
        "the worker must be killed before it finished"
    );

    let second = spawn_worker(&db, &kafka, "second", 50);
    assert_caught_up(&db.pool, "the restarted worker").await;
    let live = snapshot(&db.pool).await;
    let live_checksum = table_checksum(&db.pool).await;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    rebuild::rebuild(
        &db.pool,
        &VehicleProjection,
        RebuildSettings::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(table_checksum(&db.pool).await, live_checksum);
    assert_same_rows(&snapshot(&db.pool).await, &live);
    second.abort();
    relay.abort();
}

#[tokio::test]
async fn a_standby_relay_takes_over_and_workers_share_the_partitions() {
    let db = TestDatabase::create().await;
    let prefix = fresh_prefix();
    let kafka = settings(&brokers(), &prefix);
    let (a, state_a) = spawn_relay(&db, &kafka, "a");
    let (b, state_b) = spawn_relay(&db, &kafka, "b");
    let one_active = eventually(Duration::from_secs(20), || {
        let (sa, sb) = (state_a.borrow().clone(), state_b.borrow().clone());
        async move {
            matches!(
                (sa, sb),
                (RelayState::Active, RelayState::Standby)
                    | (RelayState::Standby, RelayState::Active)
            )
        }
    })
    .await;
    assert!(one_active, "exactly one relay must be active");
    let a_active = *state_a.borrow() == RelayState::Active;

    // Two workers of one group, both joined before the events arrive.
    let w1 = spawn_worker(&db, &kafka, "m1", 20);
    let w2 = spawn_worker(&db, &kafka, "m2", 20);
    let both_assigned = eventually(Duration::from_secs(30), || async {
        let members: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT member) FROM projection_offsets WHERE projection = 'vehicles'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        members == 2
    })
    .await;
    assert!(both_assigned, "both workers should hold partitions");

    write_history(&db.pool, 30).await;
    assert!(relay_caught_up(&db.pool, &prefix, Duration::from_secs(30)).await);

    // The active relay dies; the standby takes over and publishes what follows.
    let (active, standby_state, standby_name) = if a_active {
        (a, state_b.clone(), "b")
    } else {
        (b, state_a.clone(), "a")
    };
    active.abort();
    let _ = active.await;
    write_history(&db.pool, 30).await;
    assert!(
        eventually(Duration::from_secs(30), || {
            let s = standby_state.borrow().clone();
            async move { s == RelayState::Active }
        })
        .await,
        "the standby never took over"
    );
    assert!(relay_caught_up(&db.pool, &prefix, Duration::from_secs(30)).await);
    assert_eq!(
        relay::status(&db.pool, &prefix)
            .await
            .unwrap()
            .owner
            .as_deref(),
        Some(standby_name)
    );
    read_everything(&kafka, &db.pool, &["Vehicle"]).await;

    assert_caught_up(&db.pool, "the workers").await;
    let applying_members: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT member) FROM projection_offsets \
         WHERE projection = 'vehicles' AND last_position IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        applying_members, 2,
        "both workers should have applied events"
    );
    w1.abort();
    w2.abort();
}

#[tokio::test]
async fn offsets_a_worker_never_received_are_filled_in_from_the_store() {
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::{Offset, TopicPartitionList};
    let db = TestDatabase::create().await;
    let prefix = fresh_prefix();
    let kafka = settings(&brokers(), &prefix);
    write_history(&db.pool, 40).await;
    let (relay, _) = spawn_relay(&db, &kafka, "relay");
    assert!(relay_caught_up(&db.pool, &prefix, Duration::from_secs(60)).await);

    // As if retention had removed all but the last two messages of every partition before
    // the group first read them: its committed offsets start near the end.
    let topic = kafka.topic("Vehicle");
    let group = kafka.group("vehicles");
    let skipper: StreamConsumer = kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut skipped = TopicPartitionList::new();
    let mut total_skipped = 0;
    for partition in 0..kafka.partitions {
        let (low, high) = skipper
            .fetch_watermarks(&topic, partition, Duration::from_secs(5))
            .unwrap();
        let start = (high - 2).max(low);
        total_skipped += start - low;
        skipped
            .add_partition_offset(&topic, partition, Offset::Offset(start))
            .unwrap();
    }
    assert!(total_skipped > 50, "the history must span many offsets");
    skipper.assign(&skipped).unwrap();
    skipper.commit(&skipped, CommitMode::Sync).unwrap();
    drop(skipper);

    let worker = spawn_worker(&db, &kafka, "late", 50);
    assert_caught_up(&db.pool, "the worker that started late").await;
    let live = snapshot(&db.pool).await;
    rebuild::rebuild(
        &db.pool,
        &VehicleProjection,
        RebuildSettings::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_same_rows(&snapshot(&db.pool).await, &live);
    worker.abort();
    relay.abort();
}

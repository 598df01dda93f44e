//! The spine: the ordered event stream, projection runners (idempotency, gaps, dead letters),
//! rebuilds, read-your-writes and the agreement of search with the domain's availability rules.

use carshare_domain::vehicle::{AvailabilityRule, AvailabilityRules, Schedule};
use carshare_domain::{MinuteOfDay, Role, TimeWindow};
use carshare_event_store::{
    connect_lazy, PoolSettings, StoredEvent, StreamCursor, StreamReader, ALIVE_BYPASS,
};
use carshare_projections::rebuild::{self, RebuildSettings};
use carshare_projections::runner::Step;
use carshare_projections::vehicles::VehicleProjection;
use carshare_projections::{ProgressBoard, Projection, ProjectionRunner, RunnerSettings, Target};
use carshare_tests::history::{assert_same_rows, head_cursor, insert_raw, snapshot, write_history};
use carshare_tests::{
    assert_error, eventually, json, vehicle_body, AppOptions, TestApp, TestDatabase,
};
use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The pool skips its liveness test for connections used within the last moments; one that
/// sat idle longer is tested, so a connection the server dropped meanwhile (a restart, an
/// operator's `pg_terminate_backend`) is replaced instead of failing the next request.
#[tokio::test]
async fn a_pooled_connection_dropped_while_idle_is_replaced_not_handed_out() {
    let db = TestDatabase::create().await;
    let pool = connect_lazy(&PoolSettings {
        url: db.url.clone(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::ZERO,
    })
    .expect("pool");
    let backend = || async {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
    };
    let first = backend().await.expect("first query");
    // Used again at once: the same connection, untested and working.
    assert_eq!(backend().await.expect("second query"), first);
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&db.pool)
        .await
        .expect("terminate");
    assert!(killed);
    tokio::time::sleep(ALIVE_BYPASS + Duration::from_millis(200)).await;
    let replaced = backend()
        .await
        .expect("the dead connection is tested, dropped and replaced");
    assert_ne!(replaced, first);
    pool.close().await;
}

#[tokio::test]
async fn an_event_committed_late_by_a_held_transaction_is_not_skipped() {
    let db = TestDatabase::create().await;
    let reader = StreamReader::new(db.pool.clone());

    // Transaction A writes first (smaller position) and stays open.
    let mut a = db.pool.begin().await.unwrap();
    let pos_a = insert_raw(&mut a, "Probe", "a", 1, "Probed", json!({})).await;
    // Transaction B writes later (larger position) and commits first.
    let mut b = db.pool.begin().await.unwrap();
    let pos_b = insert_raw(&mut b, "Probe", "b", 1, "Probed", json!({})).await;
    b.commit().await.unwrap();
    assert!(pos_a < pos_b);

    // A reader following positions alone would now see B and move its cursor past A.
    let naive: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM events ORDER BY global_position")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(naive, vec![pos_b]);

    // The ordered reader holds back: A is older and still running.
    let early = reader.read_after(StreamCursor::START, 100).await.unwrap();
    assert!(
        early.is_empty(),
        "read past a running transaction: {early:?}"
    );

    a.commit().await.unwrap();
    // Another test's transaction ending between a read's snapshot and its look at the backends
    // still counts for that read (see `stream_horizon()`), so a few reads are allowed.
    let mut seen = Vec::new();
    for _ in 0..500 {
        seen = reader.read_after(StreamCursor::START, 100).await.unwrap();
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.len(), 2, "both events arrive once A commits: {seen:?}");
    assert_eq!(seen[0].aggregate_id, "a");
    assert_eq!(seen[1].aggregate_id, "b");
    assert!(seen[0].cursor() < seen[1].cursor());

    // And the naive cursor (past B) would never have returned A.
    let after_naive: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM events WHERE global_position > $1")
            .bind(pos_b)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(after_naive.is_empty());
}

/// The horizon is this database's: a writing transaction held open in another database of the
/// same server (another test, a batch job, another application) does not stop the stream, while
/// one in this database still does.
#[tokio::test]
async fn a_transaction_held_open_in_another_database_does_not_hold_the_stream_back() {
    let db = TestDatabase::create().await;
    let other = TestDatabase::create().await;
    let reader = StreamReader::new(db.pool.clone());

    // Another database: a transaction writes (so it has a transaction id) and stays open.
    let mut elsewhere = other.pool.begin().await.unwrap();
    insert_raw(&mut elsewhere, "Probe", "elsewhere", 1, "Probed", json!({})).await;
    let elsewhere_xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *elsewhere)
        .await
        .unwrap();

    // This database: a later transaction commits an event.
    let mut here = db.pool.begin().await.unwrap();
    insert_raw(&mut here, "Probe", "here", 1, "Probed", json!({})).await;
    here.commit().await.unwrap();

    // The cluster-wide horizon is still held by the other database's transaction ...
    let cluster_xmin: String =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        cluster_xmin.parse::<u64>().unwrap() <= elsewhere_xid.parse::<u64>().unwrap(),
        "the other database's transaction is running: xmin {cluster_xmin}, it {elsewhere_xid}"
    );
    // ... yet this database's stream delivers its event while that transaction stays open. (A
    // transaction of another test that ends between a read's snapshot and its look at the
    // backends still counts for that read, so a few reads are allowed.)
    let seen = read_until(&reader, StreamCursor::START, 1).await;
    assert_eq!(
        seen.iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["here"],
        "the stream must not wait for another database's transaction"
    );

    // A transaction of this database held open still holds it back.
    let mut held = db.pool.begin().await.unwrap();
    insert_raw(&mut held, "Probe", "held", 1, "Probed", json!({})).await;
    let mut after = db.pool.begin().await.unwrap();
    insert_raw(&mut after, "Probe", "after", 1, "Probed", json!({})).await;
    after.commit().await.unwrap();
    let behind = reader.read_after(seen[0].cursor(), 100).await.unwrap();
    assert!(
        behind.is_empty(),
        "read past a running transaction of this database: {behind:?}"
    );
    held.commit().await.unwrap();
    elsewhere.rollback().await.unwrap();

    // The horizon is taken in the reading statement's snapshot: a transaction that commits while
    // the statement runs is above it (a horizon from a newer snapshot would let the statement
    // pass rows it cannot see).
    let statement = {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            sqlx::query_scalar::<_, String>(
                "SELECT (SELECT stream_horizon())::text FROM (SELECT pg_sleep(1)) AS slept",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        })
    };
    // Once the statement is running (its snapshot taken), another transaction writes and commits.
    let running = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND query LIKE '%stream_horizon())::text FROM (SELECT pg_sleep%' \
             AND pid <> pg_backend_pid())",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    })
    .await;
    assert!(running, "the reading statement never started");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut during = db.pool.begin().await.unwrap();
    insert_raw(&mut during, "Probe", "during", 1, "Probed", json!({})).await;
    let during_xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *during)
        .await
        .unwrap();
    during.commit().await.unwrap();
    let horizon = statement.await.unwrap();
    assert!(
        horizon.parse::<u64>().unwrap() <= during_xid.parse::<u64>().unwrap(),
        "the horizon {horizon} passed a transaction ({during_xid}) that committed after the \
         statement's snapshot"
    );
    let rest = read_until(&reader, seen[0].cursor(), 3).await;
    assert_eq!(
        rest.iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["held", "after", "during"]
    );
}

/// Reads after `after` until at least `count` events come back (up to 50 tries, 20 ms apart).
async fn read_until(reader: &StreamReader, after: StreamCursor, count: usize) -> Vec<StoredEvent> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = reader.read_after(after, 100).await.unwrap();
        if seen.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

#[tokio::test]
async fn transaction_ids_are_ordered_as_numbers_not_as_text() {
    // Transaction ids of different lengths (9 < 10 < 100, but "10" < "100" < "9" as text).
    let db = TestDatabase::create().await;
    for (id, tx) in [("nine", "9"), ("hundred", "100"), ("ten", "10")] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, transaction_id) \
             VALUES ('Probe', $1, 1, 'Probed', '1.0', '{}', '{}', $2::text::xid8)",
        )
        .bind(id)
        .bind(tx)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let reader = StreamReader::new(db.pool.clone());
    let all = reader.read_after(StreamCursor::START, 10).await.unwrap();
    let order: Vec<&str> = all.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(order, ["nine", "ten", "hundred"]);
    let txs: Vec<u64> = all.iter().map(|e| e.transaction_id).collect();
    assert_eq!(txs, [9, 10, 100]);
    // Reading on from each cursor, one at a time, visits the same events.
    let mut cursor = StreamCursor::START;
    let mut walked = Vec::new();
    loop {
        let batch = reader.read_after(cursor, 1).await.unwrap();
        let Some(e) = batch.first() else { break };
        walked.push(e.aggregate_id.clone());
        cursor = e.cursor();
    }
    assert_eq!(walked, ["nine", "ten", "hundred"]);
}

#[tokio::test]
async fn the_stream_reads_in_batches_in_transaction_order() {
    let db = TestDatabase::create().await;
    for i in 1..=25 {
        let mut tx = db.pool.begin().await.unwrap();
        insert_raw(&mut tx, "Probe", &format!("p{i}"), 1, "Probed", json!({})).await;
        tx.commit().await.unwrap();
    }
    let reader = StreamReader::new(db.pool.clone());
    let mut cursor = StreamCursor::START;
    let mut ids = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || async {
            reader
                .read_after(StreamCursor::START, 100)
                .await
                .unwrap()
                .len()
                == 25
        })
        .await
    );
    loop {
        let batch = reader.read_after(cursor, 10).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 10);
        for e in &batch {
            assert!(e.cursor() > cursor);
            cursor = e.cursor();
            ids.push(e.aggregate_id.clone());
        }
    }
    let expected: Vec<String> = (1..=25).map(|i| format!("p{i}")).collect();
    assert_eq!(ids, expected);
}

/// Workers sharing reads share the stream's tail: what one worker read is served from memory
/// to the workers behind it; a worker at the end gets nothing new while the last read is
/// fresh, and reads on after that; a worker behind what the tail still holds reads alone.
#[tokio::test]
async fn workers_sharing_reads_are_served_from_one_tail() {
    use carshare_event_store::SharedReads;
    let db = TestDatabase::create().await;
    let insert = |i: usize| {
        let pool = db.pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            insert_raw(&mut tx, "Probe", &format!("s{i}"), 1, "Probed", json!({})).await;
            tx.commit().await.unwrap();
        }
    };
    let plain = StreamReader::new(db.pool.clone());
    let visible = |n: usize| {
        let plain = plain.clone();
        async move {
            eventually(Duration::from_secs(10), || async {
                plain
                    .read_after(StreamCursor::START, 100)
                    .await
                    .unwrap()
                    .len()
                    == n
            })
            .await
        }
    };
    let ids = |events: &[carshare_event_store::StoredEvent]| -> Vec<String> {
        events.iter().map(|e| e.aggregate_id.clone()).collect()
    };
    for i in 0..3 {
        insert(i).await;
    }
    assert!(visible(3).await);
    let fresh = Duration::from_secs(2);
    let reads = Arc::new(SharedReads::with_capacity(4));
    let one = StreamReader::new(db.pool.clone()).sharing(reads.clone(), fresh);
    let other = StreamReader::new(db.pool.clone())
        .without_metadata()
        .sharing(reads.clone(), fresh);
    let first_sent = std::time::Instant::now();
    let first = one
        .read_after_shared(StreamCursor::START, 100)
        .await
        .unwrap();
    assert_eq!(ids(&first), ["s0", "s1", "s2"]);
    let end = first.last().unwrap().cursor();

    insert(3).await;
    assert!(visible(4).await);
    // Behind the tail's end: from memory (a query would also find s3), with metadata.
    let second = other
        .read_after_shared(StreamCursor::START, 100)
        .await
        .unwrap();
    assert_eq!(
        ids(&second),
        ["s0", "s1", "s2"],
        "the held events, not a new query"
    );
    assert_eq!(second[0].metadata.get(), first[0].metadata.get());
    let middle = other.read_after_shared(first[0].cursor(), 1).await.unwrap();
    assert_eq!(
        ids(&middle),
        ["s1"],
        "from any cursor it holds, up to the limit"
    );
    // At the end while the read (which reached the horizon) is fresh: nothing new yet. (If
    // s3 took longer than the window to become visible, the tail may have read on.)
    let at_end = other.read_after_shared(end, 100).await.unwrap();
    if first_sent.elapsed() < fresh {
        assert!(at_end.is_empty(), "the fresh read stands");
    } else {
        assert!(at_end.is_empty() || ids(&at_end) == ["s3"]);
    }

    tokio::time::sleep(fresh).await;
    // At the end after the window: the tail reads on.
    let next = other.read_after_shared(end, 100).await.unwrap();
    assert_eq!(ids(&next), ["s3"]);
    insert(4).await;
    assert!(visible(5).await);
    let caught_up = one.read_after_shared(end, 100).await.unwrap();
    assert_eq!(ids(&caught_up), ["s3"], "what the other read, from memory");

    // Past its capacity (four) the tail drops its oldest events: s0 goes when s4 comes. A
    // worker behind them reads alone (finding everything committed since: s5) and the tail
    // stays as it was.
    tokio::time::sleep(fresh).await;
    let more = one.read_after_shared(next[0].cursor(), 100).await.unwrap();
    assert_eq!(ids(&more), ["s4"]);
    insert(5).await;
    assert!(visible(6).await);
    let behind = other
        .read_after_shared(StreamCursor::START, 100)
        .await
        .unwrap();
    assert_eq!(
        ids(&behind),
        ["s0", "s1", "s2", "s3", "s4"],
        "read alone, up to the tail's end (not s5), so it rejoins the tail"
    );
    assert_eq!(
        ids(&one.read_after_shared(first[0].cursor(), 100).await.unwrap()),
        ["s1", "s2", "s3", "s4"],
        "the tail holds s1 to s4"
    );

    // A read that came back full did not reach the horizon: a worker at its end reads on at
    // once, however fresh the read.
    let reads = Arc::new(SharedReads::default());
    let one = StreamReader::new(db.pool.clone()).sharing(reads.clone(), Duration::from_secs(60));
    let other = StreamReader::new(db.pool.clone()).sharing(reads, Duration::from_secs(60));
    let full = one.read_after_shared(StreamCursor::START, 2).await.unwrap();
    assert_eq!(ids(&full), ["s0", "s1"]);
    let on = other.read_after_shared(full[1].cursor(), 2).await.unwrap();
    assert_eq!(ids(&on), ["s2", "s3"], "more was waiting");
}

/// Steps the runner until it has applied every event in the log (another test's transaction
/// ending during a read can hold that read's horizon back, so idling is not the end).
async fn run_until_idle(runner: &ProjectionRunner) -> usize {
    let head = head_cursor(runner.pool()).await;
    let mut events = 0;
    for _ in 0..10_000 {
        match runner.step().await.unwrap() {
            Step::Applied {
                events: n, cursor, ..
            } => {
                events += n;
                if cursor >= head {
                    return events;
                }
            }
            Step::Raced => {}
            Step::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("the runner never caught up");
}

fn runner(pool: &PgPool, batch_size: i64) -> ProjectionRunner {
    ProjectionRunner::new(
        pool.clone(),
        Arc::new(VehicleProjection),
        RunnerSettings {
            batch_size,
            poll_interval: Duration::from_millis(10),
            ..RunnerSettings::default()
        },
        ProgressBoard::default(),
    )
}

/// A worker over events it does not handle moves on in memory (and tells this process's
/// waiters at once) but writes its checkpoint row only now and then: at the latest when it
/// runs out of events. A waiter in another process, polling that lagging row, is not held up
/// by it, yet still waits for a projection that has events to apply.
#[tokio::test]
async fn a_worker_skips_foreign_events_without_a_write_each_time_and_waits_stay_exact() {
    use carshare_projections::reviews::ReviewProjection;
    use carshare_projections::runner::checkpoint;
    let db = TestDatabase::create().await;
    write_history(&db.pool, 4).await; // vehicle events
                                      // And a booking event, of a type the reviews projection does not read.
    let mut tx = db.pool.begin().await.unwrap();
    insert_raw(
        &mut tx,
        "Booking",
        &Uuid::new_v4().to_string(),
        1,
        "BookingRequested",
        json!({}),
    )
    .await;
    tx.commit().await.unwrap();
    let head = head_cursor(&db.pool).await;
    let board = ProgressBoard::default();
    let reviews = ProjectionRunner::new(
        db.pool.clone(),
        Arc::new(ReviewProjection),
        RunnerSettings {
            batch_size: 3,
            ..RunnerSettings::default()
        },
        board.clone(),
    );
    let Step::Applied { cursor: first, .. } = reviews.step().await.unwrap() else {
        panic!("the first batch is applied (skipped)");
    };
    assert!(first < head, "more batches follow");
    let stored = checkpoint(&db.pool, "reviews").await.unwrap().unwrap();
    assert_eq!(
        stored,
        StreamCursor::START,
        "the row is not written for one skipped batch"
    );
    assert!(
        board
            .wait_for(&db.pool, &["reviews"], first, Duration::from_millis(10))
            .await,
        "this process's waiters see the progress at once"
    );

    // Another process sees only the rows: the reviews row lags, but nothing it reads lies
    // before the head, so a wait for the head does not block; the vehicles projection (never
    // run here) has everything left to apply, so waiting for it times out.
    let elsewhere = ProgressBoard::default();
    assert!(
        elsewhere
            .wait_for(&db.pool, &["reviews"], head, Duration::from_millis(200))
            .await
    );
    assert!(
        !elsewhere
            .wait_for(&db.pool, &["vehicles"], head, Duration::from_millis(200))
            .await
    );

    // Run out of events: the row now records the whole stream and every event seen.
    let mut steps = 0;
    while reviews.step().await.unwrap() != Step::Idle {
        steps += 1;
        assert!(steps < 1_000, "the worker never ran out of events");
    }
    let stored = checkpoint(&db.pool, "reviews").await.unwrap().unwrap();
    assert_eq!(stored, head);
    let (seen, total): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT events_seen FROM projection_checkpoints WHERE projection = 'reviews'), \
                (SELECT count(*) FROM events)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(seen, total, "skipped events are all counted once");

    // Moved under it by an operator: the worker notices (within RECHECK_EVERY) and starts over.
    sqlx::query(
        "UPDATE projection_checkpoints SET transaction_id = '0', global_position = 0 \
         WHERE projection = 'reviews'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    tokio::time::sleep(carshare_projections::runner::RECHECK_EVERY).await;
    assert_eq!(
        reviews.step().await.unwrap(),
        Step::Idle,
        "rechecks the row"
    );
    assert!(
        matches!(reviews.step().await.unwrap(), Step::Applied { .. }),
        "reads again from where the row says"
    );
}

/// A projection that records the settings its batches run under.
struct SettingsProbe(std::sync::Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl Projection for SettingsProbe {
    fn name(&self) -> &'static str {
        "settings_probe"
    }
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Vehicle"]
    }
    async fn apply(
        &self,
        conn: &mut sqlx::PgConnection,
        _target: Target,
        _reader: &StreamReader,
        _events: &[carshare_event_store::StoredEvent],
    ) -> Result<Vec<carshare_projections::Poisoned>, sqlx::Error> {
        let seen: (String, String) = sqlx::query_as(
            "SELECT current_setting('synchronous_commit'), current_setting('plan_cache_mode')",
        )
        .fetch_one(conn)
        .await?;
        self.0.lock().unwrap().push(seen);
        Ok(Vec::new())
    }
    async fn applied_sequence(&self, _: &PgPool, _: &str, _: &str) -> Result<i64, sqlx::Error> {
        Ok(0)
    }
}

/// A live batch commits without waiting for its WAL flush and plans its statements for their
/// arguments (a plan cached while a read table was empty would scan it whole once it grew);
/// the pool's other work keeps the defaults.
#[tokio::test]
async fn live_batches_run_relaxed_and_plan_for_their_arguments() {
    let db = TestDatabase::create().await;
    write_history(&db.pool, 2).await;
    let probe = Arc::new(SettingsProbe(Default::default()));
    let runner = ProjectionRunner::new(
        db.pool.clone(),
        probe.clone(),
        RunnerSettings::default(),
        ProgressBoard::default(),
    );
    run_until_idle(&runner).await;
    let seen = probe.0.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for (sync, plans) in &seen {
        assert_eq!(
            (sync.as_str(), plans.as_str()),
            ("off", "force_custom_plan")
        );
    }
    let outside: (String, String) = sqlx::query_as(
        "SELECT current_setting('synchronous_commit'), current_setting('plan_cache_mode')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(outside, ("on".to_string(), "auto".to_string()));
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let db = TestDatabase::create().await;
    write_history(&db.pool, 12).await;
    let runner = runner(&db.pool, 7);
    let first = run_until_idle(&runner).await;
    assert!(first > 12);
    let before = snapshot(&db.pool).await;
    assert_ne!(before, "[]");
    // Two holds on each of the 6 odd-numbered cars, 3 of them released (cars 1, 5 and 9).
    let holds: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT vehicle_id, count(*) FROM read.vehicle_holds GROUP BY vehicle_id ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(holds.iter().map(|h| h.1).sum::<i64>(), 9, "{holds:?}");

    // Everything delivered again from the start of the stream.
    sqlx::query("UPDATE projection_checkpoints SET transaction_id = '0', global_position = 0")
        .execute(&db.pool)
        .await
        .unwrap();
    let second = run_until_idle(&runner).await;
    assert_eq!(second, first);
    assert_eq!(snapshot(&db.pool).await, before);

    // The same batch applied twice inside one transaction is a no-op the second time.
    let reader = StreamReader::new(db.pool.clone());
    let events = reader.read_after(StreamCursor::START, 1_000).await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    VehicleProjection
        .apply(&mut tx, Target::Live, &reader, &events)
        .await
        .unwrap();
    VehicleProjection
        .apply(&mut tx, Target::Live, &reader, &events)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(snapshot(&db.pool).await, before);
}

/// Two writers apply overlapping batches of one car (Kafka consumers while a partition moves
/// between them): one applies a reservation, the other starts on a batch holding the same
/// reservation and its release before that committed. The second waits for the first's row
/// lock, loads the row with the reservation applied, and applies only the release: the hold
/// the first one wrote is found and removed. (An unlocked load would have folded the
/// reservation again and, meeting it first in its batch, not looked for the stored hold.)
#[tokio::test]
async fn a_hold_written_by_an_overlapping_writer_is_released() {
    let db = TestDatabase::create().await;
    let id = write_history(&db.pool, 1).await[0];
    run_until_idle(&runner(&db.pool, 500)).await;
    let last: i64 = sqlx::query_scalar("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let (booking, guest) = (Uuid::new_v4(), Uuid::new_v4());
    let mut conn = db.pool.acquire().await.unwrap();
    insert_raw(
        &mut conn,
        "Vehicle",
        &id.to_string(),
        last + 1,
        "WindowReserved",
        json!({"WindowReserved": {"booking_id": booking, "guest_id": guest,
            "start": "2030-01-02T01:00:00Z", "end": "2030-01-02T03:00:00Z",
            "at": "2029-12-30T00:00:00Z"}}),
    )
    .await;
    insert_raw(
        &mut conn,
        "Vehicle",
        &id.to_string(),
        last + 2,
        "ReservationReleased",
        json!({"ReservationReleased": {"booking_id": booking, "reason": "BookingCancelled",
            "at": "2029-12-31T00:00:00Z"}}),
    )
    .await;
    drop(conn);
    let reader = StreamReader::new(db.pool.clone());
    let tail: Vec<StoredEvent> = reader
        .read_after(StreamCursor::START, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.sequence > last)
        .collect();
    assert_eq!(tail.len(), 2);

    // The first writer applies the reservation and keeps its transaction open.
    let mut first = db.pool.begin().await.unwrap();
    VehicleProjection
        .apply(&mut first, Target::Live, &reader, &tail[..1])
        .await
        .unwrap();
    // The second waits for the first's lock on the row before it can load it.
    let pool = db.pool.clone();
    let second = tokio::spawn(async move {
        let reader = StreamReader::new(pool.clone());
        let mut tx = pool.begin().await.unwrap();
        VehicleProjection
            .apply(&mut tx, Target::Live, &reader, &tail)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
    let pool = db.pool.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock')",
                )
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        })
        .await,
        "the second writer did not wait for the first"
    );
    first.commit().await.unwrap();
    second.await.unwrap();

    let (holds, reserved): (i64, String) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM read.vehicle_holds WHERE vehicle_id = $1), \
                reserved::text FROM read.vehicles WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((holds, reserved.as_str()), (0, "{}"));
}

#[tokio::test]
async fn a_gap_in_an_aggregate_is_repaired_from_the_log() {
    let db = TestDatabase::create().await;
    let ids = write_history(&db.pool, 3).await;
    let reader = StreamReader::new(db.pool.clone());
    let all = reader.read_after(StreamCursor::START, 1_000).await.unwrap();
    // Deliver only the last event of the second vehicle, a hold's release (as a consumer that
    // missed the others would).
    let first = ids[1].to_string();
    let last_of_first = all
        .iter()
        .rev()
        .find(|e| e.aggregate_id == first)
        .unwrap()
        .clone();
    assert!(last_of_first.sequence > 1);
    let mut tx = db.pool.begin().await.unwrap();
    let poisoned = VehicleProjection
        .apply(
            &mut tx,
            Target::Live,
            &reader,
            std::slice::from_ref(&last_of_first),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(poisoned.is_empty(), "{poisoned:?}");
    let last_sequence: i64 =
        sqlx::query_scalar("SELECT last_sequence FROM read.vehicles WHERE id = $1")
            .bind(ids[1])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(last_sequence, last_of_first.sequence);
    assert_eq!(last_of_first.event_type, "ReservationReleased");
    let holds: i64 =
        sqlx::query_scalar("SELECT count(*) FROM read.vehicle_holds WHERE vehicle_id = $1")
            .bind(ids[1])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        holds, 1,
        "two holds were repaired from the log, one of them released"
    );

    // The repaired row equals the row built from the whole stream.
    let repaired = snapshot(&db.pool).await;
    sqlx::query("TRUNCATE read.vehicles, read.vehicle_holds")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let only_first: Vec<_> = all
        .into_iter()
        .filter(|e| e.aggregate_id == first)
        .collect();
    VehicleProjection
        .apply(&mut tx, Target::Live, &reader, &only_first)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(snapshot(&db.pool).await, repaired);
}

/// A process runs only the projections `PROJECTIONS` names: the others are left to processes of
/// their own, and their checkpoints do not move here.
#[tokio::test]
async fn a_process_runs_only_the_projections_it_is_given() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![("PROJECTIONS", "vehicles, reviews".to_string())],
        ..AppOptions::default()
    })
    .await;
    let (_, host) = app.user(Role::Host);
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.56, 126.97))
        .await;
    let id = vehicle["id"].as_str().unwrap();
    let (status, _) = json(app.get(&format!("/v1/vehicles/{id}"), None).await).await;
    assert_eq!(status, 200, "the vehicles projection runs here");

    let checkpoints = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT projection, global_position FROM projection_checkpoints ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(app.pool())
        .await
        .unwrap();
    // `reviews` has nothing to apply in a vehicle's events and records that it passed them
    // within a second or so; a `bookings` or `notifications` worker running here would too.
    let pool = app.pool().clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                checkpoints(pool)
                    .await
                    .iter()
                    .any(|(p, at)| p == "reviews" && *at >= head)
            }
        })
        .await,
        "the reviews worker did not pass the vehicle's events"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let running: Vec<String> = checkpoints(app.pool().clone())
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(running, ["reviews", "vehicles"]);
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_and_the_worker_goes_on() {
    let app = TestApp::spawn().await;
    let poisoned = Uuid::new_v4().to_string();
    let mut conn = app.pool().acquire().await.unwrap();
    insert_raw(
        &mut conn,
        "Vehicle",
        &poisoned,
        1,
        "VehicleRegistered",
        json!({"VehicleRegistered": {"garbage": true}}),
    )
    .await;
    drop(conn);

    // A valid vehicle registered after the poison event is still projected.
    let (_, host) = app.user(Role::Host);
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.56, 126.97))
        .await;
    let (status, _) = json(
        app.get(
            &format!("/v1/vehicles/{}", vehicle["id"].as_str().unwrap()),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);

    // A later event of the poisoned vehicle waits behind it: dead-lettered too.
    let mut conn = app.pool().acquire().await.unwrap();
    insert_raw(
        &mut conn,
        "Vehicle",
        &poisoned,
        2,
        "VehicleStatusChanged",
        json!({"VehicleStatusChanged": {"status": "inactive", "previous": "active", "at": "2026-11-27T00:00:00Z"}}),
    )
    .await;
    drop(conn);

    let pool = app.pool().clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM projection_dead_letters WHERE projection = 'vehicles'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                n == 2
            }
        })
        .await
    );
    let errors: Vec<(i64, String)> = sqlx::query_as(
        "SELECT sequence, error FROM projection_dead_letters WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&poisoned)
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(
        errors[0].1.contains("cannot decode VehicleRegistered"),
        "{errors:?}"
    );
    assert!(errors[1].1.contains("waiting behind"), "{errors:?}");

    // /ready reports it (still in service), /metrics counts it, admins can list it.
    let (status, ready) = json(app.get("/ready", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["projections"][0]["dead_letters"], 2);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("carshare_projection_dead_letters{projection=\"vehicles\"} 2"),
        "{metrics}"
    );
    let (_, admin) = app.user(Role::Admin);
    let (status, pipeline) = json(app.get("/v1/admin/projections", Some(&admin)).await).await;
    assert_eq!(status, 200);
    assert_eq!(pipeline["dead_letters"].as_array().unwrap().len(), 2);
    let (status, body) = json(app.get("/v1/admin/projections", Some(&host)).await).await;
    assert_eq!(status, 403);
    assert_error(&body, "AUTH005");

    // The checkpoint moved past both: the worker did not stop.
    let (_, host2) = app.user(Role::Host);
    let v2 = app
        .register_vehicle(&host2, &vehicle_body(37.57, 126.98))
        .await;
    let (status, _) = json(
        app.get(
            &format!("/v1/vehicles/{}", v2["id"].as_str().unwrap()),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}

async fn indexes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE schemaname = 'read' AND tablename = 'vehicles' ORDER BY indexname")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// How each column of `read.vehicles` is stored: storage strategy and compression method
/// (`reserved` is compressed with lz4 where the server has it).
async fn column_storage(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT attname::text, attstorage::text, attcompression::text FROM pg_attribute \
         WHERE attrelid = 'read.vehicles'::regclass AND attnum > 0 AND NOT attisdropped \
         ORDER BY attnum",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rebuild_leaves_the_read_table_identical_and_reads_keep_working() {
    let app = TestApp::spawn().await;
    let pool = app.pool().clone();
    let ids = write_history(&pool, 25).await;
    assert!(app_caught_up(&pool, head_cursor(&pool).await).await);
    let before = snapshot(&pool).await;
    let indexes_before = indexes(&pool).await;
    let storage_before = column_storage(&pool).await;
    assert!(
        storage_before
            .iter()
            .any(|(name, _, method)| name == "reserved" && method == "l"),
        "reserved is not lz4-compressed: {storage_before:?}"
    );

    let report = rebuild::rebuild(
        &pool,
        &VehicleProjection,
        RebuildSettings { chunk_size: 9 },
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(report.events >= 25);
    assert_same_rows(&snapshot(&pool).await, &before);
    assert_eq!(indexes(&pool).await, indexes_before);
    assert_eq!(column_storage(&pool).await, storage_before);
    let shadow: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('read.vehicles__rebuild')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(shadow, None);

    // During a second rebuild, reads answer and writes land; after it nothing is missing.
    let live_id = ids.iter().find(|id| {
        // a vehicle not removed (every fifth one is)
        ids.iter()
            .position(|x| x == *id)
            .is_some_and(|i| i % 5 != 4)
    });
    let live_id = *live_id.unwrap();
    let reads = {
        let base = app.base.clone();
        let http = app.http.clone();
        tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..40 {
                let res = http
                    .get(format!("{base}/v1/vehicles/{live_id}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "a read failed during the rebuild");
                ok += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ok
        })
    };
    let (_, host) = app.user(Role::Host);
    let writes = {
        let base = app.base.clone();
        let http = app.http.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let mut created = Vec::new();
            for i in 0..5 {
                let res = http
                    .post(format!("{base}/v1/vehicles"))
                    .bearer_auth(&host)
                    .json(&vehicle_body(37.5 + f64::from(i) * 0.01, 127.0))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                let v: Value = res.json().await.unwrap();
                created.push(v["id"].as_str().unwrap().to_string());
            }
            created
        })
    };
    rebuild::rebuild(
        &pool,
        &VehicleProjection,
        RebuildSettings { chunk_size: 3 },
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(reads.await.unwrap(), 40);
    let created = writes.await.unwrap();
    for id in created {
        let (status, _) = json(
            app.get(&format!("/v1/vehicles/{id}?min_position=0.0"), None)
                .await,
        )
        .await;
        assert!(
            eventually(Duration::from_secs(10), || {
                let app = &app;
                let id = id.clone();
                async move { app.get(&format!("/v1/vehicles/{id}"), None).await.status() == 200 }
            })
            .await,
            "vehicle {id} written during the rebuild is missing (first status {status})"
        );
    }
    // And once more from scratch, the table still matches a full rebuild.
    assert!(app_caught_up(&pool, head_cursor(&pool).await).await);
    let live = snapshot(&pool).await;
    rebuild::rebuild(
        &pool,
        &VehicleProjection,
        RebuildSettings::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_same_rows(&snapshot(&pool).await, &live);
}

async fn app_caught_up(pool: &PgPool, head: StreamCursor) -> bool {
    eventually(Duration::from_secs(15), || {
        let pool = pool.clone();
        async move {
            carshare_projections::runner::checkpoint(&pool, "vehicles")
                .await
                .unwrap()
                .is_some_and(|c| c >= head)
        }
    })
    .await
}

#[tokio::test]
async fn a_client_reads_its_own_write_at_once() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    for i in 0..5 {
        let created = app
            .register_vehicle(&host, &vehicle_body(37.50 + f64::from(i) * 0.001, 127.02))
            .await;
        let id = created["id"].as_str().unwrap();
        let (status, got) = json(app.get(&format!("/v1/vehicles/{id}"), None).await).await;
        assert_eq!(status, 200, "read right after the write: {got}");
        assert_eq!(got, created);
        let (_, mine) = json(app.get("/v1/hosts/me/vehicles", Some(&host)).await).await;
        assert_eq!(mine.as_array().unwrap().len(), i as usize + 1);
    }
}

#[tokio::test]
async fn reads_wait_for_the_instances_writes_and_for_min_position_when_projections_run_elsewhere() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![
            ("RUN_PROJECTIONS", "false".into()),
            ("READ_YOUR_WRITES_TIMEOUT_MS", "300".into()),
        ],
        ..AppOptions::default()
    })
    .await;
    let (_, host) = app.user(Role::Host);
    // The command answers once committed: it does not wait for the (absent) workers.
    let res = app
        .post("/v1/vehicles", Some(&host), &vehicle_body(37.5, 127.0))
        .await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("x-read-model-lag").is_none());
    let position = res
        .headers()
        .get("x-stream-position")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    // A read on this instance waits for the write it answered; nobody projects it, so the
    // wait runs out (300 ms, ending up to one 10 ms poll early) before the answer.
    let asked = std::time::Instant::now();
    let res = app.get(&format!("/v1/vehicles/{id}"), None).await;
    assert_eq!(res.status(), 404);
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "the read waited"
    );
    assert_eq!(
        res.headers().get("x-read-model-lag").unwrap(),
        "true",
        "a 404 after a wait that ran out says so"
    );
    let res = app.get("/v1/hosts/me/vehicles", Some(&host)).await;
    assert_eq!(res.headers().get("x-read-model-lag").unwrap(), "true");

    // A worker in "another process" catches up while a plain read waits: no position named.
    let pool = app.pool().clone();
    let worker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = runner(&pool, 100);
        run_until_idle(&r).await;
    });
    let res = app.get(&format!("/v1/vehicles/{id}"), None).await;
    assert!(res.headers().get("x-read-model-lag").is_none());
    let (status, got) = json(res).await;
    worker.await.unwrap();
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, created);
    // The position, named explicitly (as a read on another instance would), is satisfied too.
    let (status, _) = json(
        app.get(&format!("/v1/vehicles/{id}?min_position={position}"), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = json(
        app.get(&format!("/v1/vehicles/{id}?min_position=garbage"), None)
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "REQ006");
}

/// A Monday at 00:00 in Seoul at least a week ahead.
fn next_monday_kst() -> DateTime<Utc> {
    let seoul = carshare_domain::SEOUL;
    let today = Utc::now().with_timezone(&seoul).date_naive() + Days::days(7);
    let monday = today + Days::days((7 - i64::from(today.weekday().num_days_from_monday())) % 7);
    seoul
        .from_local_datetime(&monday.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn random_rules(rng: &mut StdRng, base_date: NaiveDate) -> Vec<AvailabilityRule> {
    let n = rng.random_range(0..6);
    (0..n)
        .map(|_| {
            let start = rng.random_range(0..48u16) * 30;
            let end = (start + rng.random_range(1..=48u16) * 30).min(1_440);
            let schedule = if rng.random_bool(0.6) {
                Schedule::Weekly {
                    day_of_week: rng.random_range(0..7),
                }
            } else {
                Schedule::OnDate {
                    date: base_date + Days::days(rng.random_range(0..14)),
                }
            };
            AvailabilityRule {
                schedule,
                start: MinuteOfDay::new(start).unwrap(),
                end: MinuteOfDay::new(end).unwrap(),
                blocked: rng.random_bool(0.25),
            }
        })
        .collect()
}

fn rule_json(rule: &AvailabilityRule) -> Value {
    serde_json::to_value(rule).unwrap()
}

#[tokio::test]
async fn search_agrees_with_the_domain_availability_rules() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let mut rng = StdRng::seed_from_u64(20261127);
    let base = next_monday_kst();
    let base_date = base.with_timezone(&carshare_domain::SEOUL).date_naive();
    let mut fleet: Vec<(String, AvailabilityRules)> = Vec::new();
    for i in 0..40 {
        let v = app
            .register_vehicle(&host, &vehicle_body(36.35 + f64::from(i) * 0.0001, 127.38))
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let rules = random_rules(&mut rng, base_date);
        let body = json!({"rules": rules.iter().map(rule_json).collect::<Vec<_>>()});
        let res = app
            .post(
                &format!("/v1/vehicles/{id}/availability"),
                Some(&host),
                &body,
            )
            .await;
        assert_eq!(res.status(), 200);
        fleet.push((id, AvailabilityRules(rules)));
    }
    for _ in 0..80 {
        let start = base
            + Days::minutes(rng.random_range(0..(13 * 24 * 60)))
            + Days::seconds(if rng.random_bool(0.2) {
                rng.random_range(1..60)
            } else {
                0
            });
        let end = start + Days::minutes(rng.random_range(30..(3 * 24 * 60)));
        let window = TimeWindow::new(start, end).unwrap();
        let expected: BTreeSet<String> = fleet
            .iter()
            .filter(|(_, rules)| rules.covers(&window))
            .map(|(id, _)| id.clone())
            .collect();
        let path = format!(
            "/v1/vehicles?lat=36.352&lng=127.38&radius=2&limit=100&start_datetime={}&end_datetime={}",
            start.to_rfc3339().replace('+', "%2B"),
            end.to_rfc3339().replace('+', "%2B")
        );
        let (status, body) = json(app.get(&path, None).await).await;
        assert_eq!(status, 200, "{body}");
        let found: BTreeSet<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(found, expected, "window {start} .. {end}");
    }
}

/// The SQL block following the paragraph that starts with `title` in docs/read-models.md.
fn documented_query(title: &str) -> String {
    let doc = include_str!("../../docs/read-models.md");
    let from = doc
        .find(&format!("\n{title}"))
        .unwrap_or_else(|| panic!("docs/read-models.md has no `{title}`"));
    let rest = &doc[from..];
    let start = rest.find("```sql\n").expect("an sql block") + "```sql\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_string()
}

#[tokio::test]
async fn analysts_read_the_read_models_and_nothing_else_with_the_documented_queries() {
    let db = carshare_tests::TestDatabase::create().await;
    let pool = &db.pool;
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let (car_a, car_b, host, guest) = (
        Uuid::from_u128(0xa),
        Uuid::from_u128(0xb),
        Uuid::from_u128(0x40),
        Uuid::from_u128(0x60),
    );
    // Week of Monday 2026-11-30 (Seoul): car A 10 h + 6 h completed, one cancelled by the guest;
    // car B 24 h approved; one request in December cancelled by the platform (unpaid).
    for (n, car, start, hours, status, cancelled_by, created) in [
        (
            1,
            car_a,
            "2026-11-30T01:00:00Z",
            10,
            "completed",
            None,
            "2026-11-20T00:00:00Z",
        ),
        (
            2,
            car_a,
            "2026-12-02T01:00:00Z",
            6,
            "completed",
            None,
            "2026-11-21T00:00:00Z",
        ),
        (
            3,
            car_a,
            "2026-12-03T01:00:00Z",
            5,
            "cancelled",
            Some("guest"),
            "2026-11-22T00:00:00Z",
        ),
        (
            4,
            car_b,
            "2026-12-01T00:00:00Z",
            24,
            "approved",
            None,
            "2026-11-23T00:00:00Z",
        ),
        (
            5,
            car_b,
            "2026-12-10T00:00:00Z",
            2,
            "cancelled",
            Some("platform"),
            "2026-12-05T00:00:00Z",
        ),
    ] {
        let start = t(start);
        sqlx::query(
            "INSERT INTO read.bookings (id, vehicle_id, guest_id, host_id, start_datetime, \
             end_datetime, hourly_rate, total_amount, platform_fee, host_share, status, \
             respond_by, cancelled_by, created_at, updated_at, last_sequence, last_position) \
             VALUES ($1, $2, $3, $4, $5, $6, 10000, $7, 0, 0, $8, $5, $9, $10, $10, 1, $11)",
        )
        .bind(Uuid::from_u128(n))
        .bind(car)
        .bind(guest)
        .bind(host)
        .bind(start)
        .bind(start + Days::hours(hours))
        .bind(hours * 10_000)
        .bind(status)
        .bind(cancelled_by)
        .bind(t(created))
        .bind(i64::try_from(n).unwrap())
        .execute(pool)
        .await
        .unwrap();
    }
    // Payments of the host: December 100,000 and 60,000 (10,000 refunded); one failed.
    for (n, amount, refunded, status, approved) in [
        (1, 100_000, 0, "completed", Some("2026-12-01T03:00:00Z")),
        (2, 60_000, 10_000, "completed", Some("2026-12-02T03:00:00Z")),
        (4, 240_000, 0, "failed", None),
    ] {
        sqlx::query(
            "INSERT INTO read.payments (id, guest_id, host_id, order_id, amount, status, due_at, \
             approved_at, refunded_amount, created_at, updated_at, last_sequence, last_position) \
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8, now(), now(), 1, $9)",
        )
        .bind(Uuid::from_u128(n))
        .bind(guest)
        .bind(host)
        .bind(format!("bk-{n}"))
        .bind(amount)
        .bind(status)
        .bind(approved.map(t))
        .bind(refunded)
        .bind(i64::try_from(n).unwrap())
        .execute(pool)
        .await
        .unwrap();
    }

    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET ROLE carshare_analyst")
        .execute(&mut *conn)
        .await
        .unwrap();
    let utilisation: Vec<(Uuid, NaiveDate, i64, f64, f64)> = sqlx::query_as(&format!(
        "SELECT vehicle_id, week, trips, hours::float8, utilisation_pct::float8 FROM ({}) q",
        documented_query("Utilisation per vehicle per week")
            .trim_end()
            .trim_end_matches(';')
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let monday = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    assert_eq!(
        utilisation,
        vec![
            (car_b, monday, 1, 24.0, 14.3),
            (car_a, monday, 2, 16.0, 9.5),
        ]
    );
    let revenue: Vec<(Uuid, NaiveDate, i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT host_id, month, payments, kept::int8, platform_fee::int8, host_share::int8 FROM ({}) q",
        documented_query("Revenue per host per month").trim_end().trim_end_matches(';')
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let december = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    // Fees: 15,000 + 7,500; the host keeps the rest; the failed payment counts for nothing.
    assert_eq!(revenue, vec![(host, december, 2, 150_000, 22_500, 127_500)]);
    let cancellations: Vec<(NaiveDate, i64, i64, f64, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT month, requests, cancelled, cancelled_pct::float8, by_guest, by_host, unpaid FROM ({}) q",
        documented_query("Cancellation rates per month of request").trim_end().trim_end_matches(';')
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let november = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    assert_eq!(
        cancellations,
        vec![
            (november, 4, 1, 25.0, 1, 0, 0),
            (december, 1, 1, 100.0, 0, 0, 1)
        ]
    );
    // Nothing but the read models, and nothing written.
    for forbidden in [
        "SELECT count(*) FROM users",
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM refresh_tokens",
        "UPDATE read.bookings SET status = 'x'",
        "DELETE FROM read.payments",
        "INSERT INTO notification_reads (notification_id, user_id) VALUES (gen_random_uuid(), gen_random_uuid())",
    ] {
        let err = sqlx::query(forbidden)
            .execute(&mut *conn)
            .await
            .expect_err(forbidden);
        assert!(
            err.to_string().contains("permission denied"),
            "{forbidden}: {err}"
        );
    }
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
    drop(conn);
    // A rebuild swaps in new tables: the role still reads them.
    rebuild::rebuild(
        pool,
        carshare_projections::by_name("bookings").unwrap().as_ref(),
        RebuildSettings::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET ROLE carshare_analyst")
        .execute(&mut *conn)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM read.bookings")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(rows, 0, "rebuilt from an empty log");
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
}

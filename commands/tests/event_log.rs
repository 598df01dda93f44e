//! Appending to the event log and auditing it, against a real Postgres (a fresh database per
//! test, dropped afterwards): snapshots written beside multi-aggregate appends, conflicts between
//! writers, and the finance audit finding statements that disagree with the log.
//!
//! `TEST_DATABASE_URL` names the server (default `postgres://postgres@127.0.0.1:5432`), as for
//! the end-to-end tests; `scripts/test.sh` starts it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use carshare_commands::append::{append, Batch, GroupCommit};
use carshare_commands::audit::{audit_settlements, AuditScope};
use carshare_commands::{CommandBus, CommandError, InfraError};
use carshare_domain::booking::{Booking, BookingAction, BookingCommand, BookingEvent};
use carshare_domain::money::FeeSplit;
use carshare_domain::payment::settlement::{Settlement, SettlementEvent, SettlementLine};
use carshare_domain::payment::{Payment, PaymentEvent};
use carshare_domain::Won;
use carshare_domain::{Actor, Role};
use carshare_event_store::{CommitSignal, EventMetadata, StreamCursor, MIGRATOR};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// A fresh, migrated database; dropped by [`Db::drop_now`].
struct Db {
    name: String,
    pool: PgPool,
}

impl Db {
    async fn create() -> Db {
        let name = format!("carshare_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("Postgres must be running for the tests (see scripts/test.sh)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&format!("{}/{name}", server_url()))
            .await
            .expect("connect to the test database");
        MIGRATOR.run(&pool).await.expect("migrations apply");
        Db { name, pool }
    }

    async fn drop_now(self) {
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("a valid instant")
}

fn meta(command: &str) -> EventMetadata {
    EventMetadata::system(command, t("2026-12-01T00:00:00Z"))
}

fn booking_events(id: Uuid) -> Vec<BookingEvent> {
    let requested_at = t("2026-12-01T00:00:00Z");
    vec![
        BookingEvent::BookingRequested {
            booking_id: id,
            vehicle_id: Uuid::from_u128(200),
            guest_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            start: t("2026-12-03T01:00:00Z"),
            end: t("2026-12-03T05:00:00Z"),
            hourly_rate: Won(10_000),
            total_amount: Won(40_000),
            platform_fee: Won(6_000),
            host_share: Won(34_000),
            guest_message: None,
            respond_by: requested_at + Duration::hours(8),
            at: requested_at,
        },
        BookingEvent::BookingApproved {
            host_response: Some("좋아요".into()),
            at: t("2026-12-01T01:00:00Z"),
        },
        BookingEvent::BookingStarted {
            at: t("2026-12-03T00:50:00Z"),
        },
        BookingEvent::BookingCompleted {
            late_minutes: 0,
            at: t("2026-12-03T05:00:00Z"),
        },
    ]
}

fn replayed(events: &[BookingEvent]) -> Booking {
    let mut booking = Booking::default();
    for e in events {
        booking.apply(e.clone());
    }
    booking
}

async fn snapshot_of(pool: &PgPool, id: &str) -> Option<(i64, i64, serde_json::Value)> {
    sqlx::query_as(
        "SELECT last_sequence, current_snapshot, payload FROM snapshots \
         WHERE aggregate_type = 'Booking' AND aggregate_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .expect("read the snapshot")
}

#[tokio::test]
async fn appends_write_and_advance_snapshots_that_loads_agree_with() {
    let db = Db::create().await;
    let id = Uuid::new_v4();
    let key = id.to_string();
    let events = booking_events(id);

    // Nothing to write: nothing written, no position.
    assert_eq!(
        append(&db.pool, &[], &meta("Nothing")).await.ok(),
        Some(None)
    );

    // Two events crossing a multiple of 2: a snapshot of the state after them.
    let first =
        Batch::new::<Booking>(&key, 0, &events[..2], &replayed(&events[..2]), 2).expect("encode");
    let cursor = append(&db.pool, &[first], &meta("RequestBooking"))
        .await
        .expect("append");
    assert!(cursor.is_some());
    let (sequence, version, payload) = snapshot_of(&db.pool, &key).await.expect("a snapshot");
    assert_eq!((sequence, version), (2, 1));
    assert_eq!(
        payload,
        serde_json::to_value(replayed(&events[..2])).expect("json")
    );

    // Two more: the snapshot moves on (one row per aggregate, its version bumped).
    let second =
        Batch::new::<Booking>(&key, 2, &events[2..], &replayed(&events), 2).expect("encode");
    let later = append(&db.pool, &[second], &meta("CompleteBooking"))
        .await
        .expect("append");
    assert!(later > cursor, "{later:?} after {cursor:?}");
    let (sequence, version, _) = snapshot_of(&db.pool, &key).await.expect("a snapshot");
    assert_eq!((sequence, version), (4, 2));

    // A writer that loaded before those appends conflicts, and writes nothing.
    let stale =
        Batch::new::<Booking>(&key, 2, &events[2..3], &replayed(&events[..3]), 0).expect("encode");
    assert!(matches!(
        append(&db.pool, &[stale], &meta("StartBooking")).await,
        Err(InfraError::Conflict)
    ));

    // The command bus loads the same booking from snapshot and log.
    let bus: CommandBus<Booking> = CommandBus::new(db.pool.clone(), (), CommitSignal::default(), 2);
    let (loaded, sequence) = bus.load_versioned(&key).await.expect("load");
    assert_eq!(sequence, 4);
    assert_eq!(loaded, replayed(&events));
    db.drop_now().await;
}

#[tokio::test]
async fn concurrent_appends_share_commits_and_only_the_stale_ones_fail() {
    let db = Db::create().await;
    // One writer: while its first group is in flight, every other append waits for the next.
    let commits = GroupCommit::new(db.pool.clone(), 1);
    let fresh: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let request = |id: Uuid, after: usize| {
        let events = booking_events(id);
        Batch::new::<Booking>(
            &id.to_string(),
            after,
            &events[..1],
            &replayed(&events[..1]),
            0,
        )
        .expect("encode")
    };
    // An aggregate already written once: an append that loaded it before is stale.
    let written = Uuid::new_v4();
    append(&db.pool, &[request(written, 0)], &meta("RequestBooking"))
        .await
        .expect("append");
    // An aggregate two commands write at once from the same state: one of them wins.
    let contested = Uuid::new_v4();

    let mut tasks = Vec::new();
    for (label, id) in fresh.iter().map(|id| ("fresh", *id)).chain([
        ("stale", written),
        ("contested", contested),
        ("contested", contested),
    ]) {
        let commits = commits.clone();
        let batch = request(id, 0);
        tasks.push(tokio::spawn(async move {
            let outcome = commits.append(vec![batch], &meta("RequestBooking")).await;
            (label, id, outcome)
        }));
    }
    let mut contested_won = 0;
    let mut transactions = std::collections::HashSet::new();
    for task in tasks {
        let (label, id, outcome) = task.await.expect("the append task");
        match (label, outcome) {
            ("fresh", Ok(Some(cursor))) => {
                // Each caller gets the position of its own event.
                assert_eq!(cursor, position_of(&db.pool, &id.to_string(), 1).await);
                transactions.insert(cursor.transaction_id);
            }
            ("stale", Err(InfraError::Conflict)) => {}
            ("contested", Ok(Some(_))) => contested_won += 1,
            ("contested", Err(InfraError::Conflict)) => {}
            (label, outcome) => panic!("{label} {id}: unexpected {outcome:?}"),
        }
    }
    assert_eq!(
        contested_won, 1,
        "exactly one of two same-state appends lands"
    );
    assert!(
        transactions.len() < 10,
        "40 concurrent appends were committed in {} transactions",
        transactions.len()
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(
        stored,
        40 + 1 + 1,
        "the stale and the losing appends wrote nothing"
    );

    // Nothing to write: answered at once, with no position.
    assert_eq!(
        commits.append(Vec::new(), &meta("Nothing")).await.ok(),
        Some(None)
    );
    db.drop_now().await;
}

async fn position_of(pool: &PgPool, id: &str, sequence: i64) -> StreamCursor {
    let (tx, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events \
         WHERE aggregate_type = 'Booking' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(id)
    .bind(sequence)
    .fetch_one(pool)
    .await
    .expect("the event is in the log");
    StreamCursor {
        transaction_id: tx.parse().expect("a transaction id"),
        position,
    }
}

#[tokio::test]
async fn the_bus_appends_in_one_statement_with_the_position_snapshot_and_retry_from_a_stale_state()
{
    let db = Db::create().await;
    let id = Uuid::new_v4();
    let key = id.to_string();
    let events = booking_events(id);
    let requested =
        Batch::new::<Booking>(&key, 0, &events[..1], &replayed(&events[..1]), 0).expect("encode");
    append(&db.pool, &[requested], &meta("RequestBooking"))
        .await
        .expect("append");
    let bus: CommandBus<Booking> = CommandBus::new(db.pool.clone(), (), CommitSignal::default(), 2);
    let host = Actor::new(Uuid::from_u128(2), Role::Host);
    let guest = Actor::new(Uuid::from_u128(1), Role::Guest);

    // The host approves: event 2, its envelope, its stream position, and a snapshot of the
    // state after it (crossing a multiple of 2) equal to the events replayed.
    let approve = BookingCommand {
        actor: Some(host),
        at: t("2026-12-01T01:00:00Z"),
        action: BookingAction::Approve {
            host_response: Some("좋아요".into()),
        },
    };
    let done = bus
        .execute(&key, approve, &meta("ApproveBooking"))
        .await
        .expect("approved");
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].sequence, 2);
    assert_eq!(done.events[0].aggregate_id, key);
    assert_eq!(done.events[0].payload, events[1]);
    assert_eq!(
        done.events[0].metadata.get("command").map(String::as_str),
        Some("ApproveBooking")
    );
    assert_eq!(done.cursor, Some(position_of(&db.pool, &key, 2).await));
    assert_eq!(done.aggregate, replayed(&events[..2]));
    let (sequence, version, payload) = snapshot_of(&db.pool, &key).await.expect("a snapshot");
    assert_eq!((sequence, version), (2, 1));
    assert_eq!(
        payload,
        serde_json::to_value(replayed(&events[..2])).expect("json")
    );

    // A caller holding the state from before the approval: its first attempt conflicts, the
    // retry decides on the fresh state (cancelling an approved booking) and takes sequence 3.
    let cancel = BookingCommand {
        actor: Some(guest),
        at: t("2026-12-01T02:00:00Z"),
        action: BookingAction::Cancel {
            reason: Some("plans changed".into()),
        },
    };
    let done = bus
        .execute_loaded(
            &key,
            (replayed(&events[..1]), 1),
            cancel,
            &meta("CancelBooking"),
        )
        .await
        .expect("cancelled after a retry");
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].sequence, 3);
    assert!(matches!(
        done.events[0].payload,
        BookingEvent::BookingCancelled { .. }
    ));
    let (loaded, sequence) = bus.load_versioned(&key).await.expect("load");
    assert_eq!(sequence, 3);
    assert_eq!(loaded, done.aggregate);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(&key)
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(count, 3, "the conflicting attempt wrote nothing");

    // A refused command writes nothing.
    let again = BookingCommand {
        actor: Some(host),
        at: t("2026-12-01T03:00:00Z"),
        action: BookingAction::Approve {
            host_response: None,
        },
    };
    assert!(matches!(
        bus.execute(&key, again, &meta("ApproveBooking")).await,
        Err(CommandError::Rejected(_))
    ));
    assert_eq!(bus.load_versioned(&key).await.expect("load").1, 3);
    db.drop_now().await;
}

fn line(booking_id: Uuid, paid: i64, refunded: i64) -> SettlementLine {
    let split = FeeSplit::of(Won(paid - refunded));
    SettlementLine {
        booking_id,
        paid: Won(paid),
        refunded: Won(refunded),
        kept: split.total,
        platform_fee: split.platform_fee,
        host_share: split.host_share,
    }
}

fn issued(
    settlement_id: Uuid,
    host_id: Uuid,
    at: &str,
    lines: Vec<SettlementLine>,
) -> SettlementEvent {
    let sum = |f: fn(&SettlementLine) -> Won| Won(lines.iter().map(|l| f(l).0).sum());
    SettlementEvent::SettlementIssued {
        settlement_id,
        host_id,
        cutoff: t(at),
        gross: sum(|l| l.paid),
        refunds: sum(|l| l.refunded),
        platform_fee: sum(|l| l.platform_fee),
        host_amount: sum(|l| l.host_share),
        lines,
        at: t(at),
    }
}

fn paid(booking_id: Uuid, amount: i64) -> Vec<PaymentEvent> {
    vec![
        PaymentEvent::PaymentDue {
            booking_id,
            guest_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            order_id: format!("bk-{}", booking_id.simple()),
            amount: Won(amount),
            due_at: t("2026-12-01T03:00:00Z"),
            at: t("2026-12-01T01:00:00Z"),
        },
        PaymentEvent::PaymentConfirmed {
            payment_key: format!("pk-{booking_id}"),
            amount: Won(amount),
            method: None,
            approved_at: None,
            toss_status: "DONE".into(),
            at: t("2026-12-01T01:30:00Z"),
        },
    ]
}

fn refunded(amount: i64, at: &str) -> [PaymentEvent; 2] {
    [
        PaymentEvent::RefundRequested {
            amount: Won(amount),
            reason: "BookingCancelled".into(),
            at: t(at),
        },
        PaymentEvent::PaymentRefunded {
            amount: Won(amount),
            transaction_key: None,
            at: t(at),
        },
    ]
}

fn settled(settlement_id: Uuid, kept: i64) -> PaymentEvent {
    let split = FeeSplit::of(Won(kept));
    PaymentEvent::PaymentSettled {
        settlement_id,
        kept: split.total,
        platform_fee: split.platform_fee,
        host_share: split.host_share,
        at: t("2026-12-10T00:00:00Z"),
    }
}

async fn record<A: Aggregate>(pool: &PgPool, id: Uuid, events: &[A::Event]) {
    let batch =
        Batch::new::<A>(&id.to_string(), 0, events, &A::default(), 0).expect("encode events");
    append(pool, &[batch], &meta("Seed")).await.expect("append");
}

#[tokio::test]
async fn the_audit_finds_statements_that_disagree_with_the_log() {
    let db = Db::create().await;
    let host = Uuid::new_v4();
    let (honest, forged) = (Uuid::new_v4(), Uuid::new_v4());
    let (kept_whole, overstated) = (Uuid::new_v4(), Uuid::new_v4());

    // Paid 54,000, 4,000 refunded before the settlement and 1,000 after it (which belongs to
    // no statement yet); settled as kept 50,000.
    let mut events = paid(kept_whole, 54_000);
    events.extend(refunded(4_000, "2026-12-02T00:00:00Z"));
    events.push(settled(honest, 50_000));
    events.extend(refunded(1_000, "2026-12-11T00:00:00Z"));
    record::<Payment>(&db.pool, kept_whole, &events).await;
    record::<Settlement>(
        &db.pool,
        honest,
        &[issued(
            honest,
            host,
            "2026-12-10T00:00:00Z",
            vec![line(kept_whole, 54_000, 4_000)],
        )],
    )
    .await;
    // The honest statement's read row agrees with the log.
    sqlx::query(
        "INSERT INTO read.settlements (id, host_id, cutoff, gross, refunds, platform_fee, \
           host_amount, lines, created_at, updated_at, last_sequence, last_position) \
         VALUES ($1, $2, now(), 54000, 4000, 7500, 42500, '[]', now(), now(), 1, 1)",
    )
    .bind(honest)
    .bind(host)
    .execute(&db.pool)
    .await
    .expect("insert the read row");

    // Paid 30,000 and never settled, but a statement claims 35,000 for it, and its totals
    // were written by hand.
    record::<Payment>(&db.pool, overstated, &paid(overstated, 30_000)).await;
    let mut forged_statement = issued(
        forged,
        host,
        "2026-12-20T00:00:00Z",
        vec![line(overstated, 35_000, 0)],
    );
    let SettlementEvent::SettlementIssued { host_amount, .. } = &mut forged_statement;
    *host_amount = Won(99_999);
    record::<Settlement>(&db.pool, forged, &[forged_statement]).await;

    // An event of an aggregate whose id is not a UUID is read and passed over.
    let legacy = Batch::new::<Payment>(
        "legacy-1",
        0,
        &paid(Uuid::nil(), 1)[..1],
        &Payment::default(),
        0,
    )
    .expect("encode");
    append(&db.pool, &[legacy], &meta("Seed"))
        .await
        .expect("append");

    let mut progress = Vec::new();
    let report = audit_settlements(&db.pool, AuditScope::default(), |n| progress.push(n))
        .await
        .expect("audit");
    // 7 events of the settled payment, 2 of the overstated one, 2 statements, 1 legacy event.
    assert_eq!(report.events_read, 12);
    assert_eq!(progress.last(), Some(&12));
    assert_eq!(report.settlements_checked, 2);
    // Recomputed from the log: 42,500 + 25,500 to the host, 7,500 + 4,500 in fees.
    assert_eq!(report.host_amount, 42_500 + 25_500);
    assert_eq!(report.platform_fee, 7_500 + 4_500);
    assert_eq!(report.hosts.len(), 1);
    assert_eq!(report.hosts[0].settlements, 2);
    assert_eq!(report.hosts[0].gross, 54_000 + 30_000);
    assert_eq!(report.hosts[0].refunds, 4_000);

    let mut found: Vec<(Uuid, Option<Uuid>, &str)> = report
        .discrepancies
        .iter()
        .map(|d| (d.settlement_id, d.booking_id, d.kind))
        .collect();
    found.sort();
    let mut expected = vec![
        (forged, Some(overstated), "line"),
        (forged, Some(overstated), "payment_settled"),
        (forged, None, "totals"),
        (forged, None, "read_model"),
    ];
    expected.sort();
    assert_eq!(found, expected, "{:#?}", report.discrepancies);
    let line_issue = report
        .discrepancies
        .iter()
        .find(|d| d.kind == "line")
        .expect("a line discrepancy");
    assert_eq!(line_issue.expected["paid"], 30_000);
    assert_eq!(line_issue.found["paid"], 35_000);
    assert_eq!(
        line_issue.events.len(),
        2,
        "the statement and the confirmation"
    );
    let unsettled = report
        .discrepancies
        .iter()
        .find(|d| d.kind == "payment_settled")
        .expect("a payment_settled discrepancy");
    assert_eq!(unsettled.found, serde_json::Value::Null);
    let totals = report
        .discrepancies
        .iter()
        .find(|d| d.kind == "totals")
        .expect("a totals discrepancy");
    assert_eq!(totals.found["host_amount"], 99_999);
    assert_eq!(totals.expected["host_amount"], 25_500);

    // Scopes: another host, or a period the statements fall outside of, check nothing.
    for scope in [
        AuditScope {
            host_id: Some(Uuid::new_v4()),
            ..AuditScope::default()
        },
        AuditScope {
            to: Some(t("2026-12-10T00:00:00Z")),
            ..AuditScope::default()
        },
        AuditScope {
            from: Some(t("2026-12-21T00:00:00Z")),
            ..AuditScope::default()
        },
    ] {
        let report = audit_settlements(&db.pool, scope, |_| {})
            .await
            .expect("audit");
        assert_eq!(report.settlements_checked, 0, "{scope:?}");
        assert!(report.discrepancies.is_empty());
    }
    // Only the honest statement: everything agrees.
    let honest_only = audit_settlements(
        &db.pool,
        AuditScope {
            host_id: Some(host),
            to: Some(t("2026-12-15T00:00:00Z")),
            ..AuditScope::default()
        },
        |_| {},
    )
    .await
    .expect("audit");
    assert_eq!(honest_only.settlements_checked, 1);
    assert_eq!(honest_only.discrepancies, vec![]);
    db.drop_now().await;
}

//! Audit benchmark: the finance audit's replay rate over a log of at least a million payment
//! and settlement events.
//!
//! ```sh
//! cargo build --release -p carshare-bench
//! target/release/audit-bench --payments 335000
//! ```

use anyhow::{Context, Result};
use carshare_bench::machine;
use carshare_event_store::MIGRATOR;
use clap::Parser;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Finance audit replay rate")]
struct Args {
    /// Payments (three events each: due, confirmed, settled), settled 100 to a statement.
    #[arg(long, default_value_t = 335_000)]
    payments: i64,
    /// Postgres server URL (without a database).
    #[arg(long, default_value = "postgres://postgres:postgres@127.0.0.1:5432")]
    postgres: String,
    /// Keep the benchmark database afterwards.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let db_name = format!("carshare_bench_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", args.postgres))
        .await
        .context("connecting to Postgres")?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let db_url = format!("{}/{db_name}", args.postgres);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await?;
    MIGRATOR.run(&pool).await?;

    // The log: for payment i (booking id from i), PaymentDue, PaymentConfirmed and
    // PaymentSettled with the fee rule applied; every 100 payments one SettlementIssued whose
    // lines and totals match them. Written in one statement per kind, exactly the shapes the
    // application writes.
    eprintln!(
        "writing {} payments ({} events)…",
        args.payments,
        args.payments * 3 + args.payments / 100
    );
    let started = Instant::now();
    sqlx::query(
        "CREATE UNLOGGED TABLE p AS SELECT i, \
           (lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS booking, \
           (lpad(to_hex(i / 100), 8, '0') || '-1111-4000-8000-' || lpad(to_hex(i / 100), 12, '0'))::uuid AS settlement, \
           (lpad(to_hex(i % 97), 8, '0') || '-2222-4000-8000-000000000000')::uuid AS host, \
           10000 + (i % 50) * 1000 AS amount \
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(args.payments)
    .execute(&pool)
    .await?;
    // Settlements group 100 consecutive payments; one host per settlement keeps it simple.
    sqlx::query("UPDATE p SET host = (lpad(to_hex((i / 100) % 97), 8, '0') || '-2222-4000-8000-000000000000')::uuid")
        .execute(&pool)
        .await?;
    let meta = r#"{"correlation_id": "bench", "causation_id": "bench", "actor_role": "system", "issued_at": "2026-12-01T00:00:00Z", "command": "Bench"}"#;
    for (seq, event, payload) in [
        (1, "PaymentDue", "jsonb_build_object('PaymentDue', jsonb_build_object('booking_id', booking, 'guest_id', booking, 'host_id', host, 'order_id', 'bk-' || replace(booking::text, '-', ''), 'amount', amount, 'due_at', '2026-12-01T02:00:00Z', 'at', '2026-12-01T00:00:00Z'))"),
        (2, "PaymentConfirmed", "jsonb_build_object('PaymentConfirmed', jsonb_build_object('payment_key', 'pk_' || i, 'amount', amount, 'method', '카드', 'approved_at', '2026-12-01T00:30:00Z', 'toss_status', 'DONE', 'at', '2026-12-01T00:30:00Z'))"),
        (3, "PaymentSettled", "jsonb_build_object('PaymentSettled', jsonb_build_object('settlement_id', settlement, 'kept', amount, 'platform_fee', amount * 15 / 100, 'host_share', amount - amount * 15 / 100, 'at', '2026-12-10T00:00:00Z'))"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'Payment', booking::text, {seq}, '{event}', '1.0', {payload}, $1::jsonb FROM p ORDER BY i"
        ))
        .bind(meta)
        .execute(&pool)
        .await?;
    }
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Settlement', settlement::text, 1, 'SettlementIssued', '1.0', \
           jsonb_build_object('SettlementIssued', jsonb_build_object( \
             'settlement_id', settlement, 'host_id', min(host::text), 'cutoff', '2026-12-10T00:00:00Z', \
             'lines', jsonb_agg(jsonb_build_object('booking_id', booking, 'paid', amount, 'refunded', 0, \
                'kept', amount, 'platform_fee', amount * 15 / 100, 'host_share', amount - amount * 15 / 100) ORDER BY i), \
             'gross', sum(amount), 'refunds', 0, 'platform_fee', sum(amount * 15 / 100), \
             'host_amount', sum(amount - amount * 15 / 100), 'at', '2026-12-10T00:00:00Z')), $1::jsonb \
         FROM p GROUP BY settlement",
    )
    .bind(meta)
    .execute(&pool)
    .await?;
    // The read table the audit also compares with.
    sqlx::query(
        "INSERT INTO read.settlements (id, host_id, cutoff, gross, refunds, platform_fee, host_amount, lines, created_at, updated_at, last_sequence, last_position) \
         SELECT settlement, min(host::text)::uuid, '2026-12-10T00:00:00Z', sum(amount), 0, sum(amount * 15 / 100), \
           sum(amount - amount * 15 / 100), '[]', '2026-12-10T00:00:00Z', '2026-12-10T00:00:00Z', 1, 0 \
         FROM p GROUP BY settlement",
    )
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM (ANALYZE) events")
        .execute(&pool)
        .await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    eprintln!(
        "log written in {:.1} s; replaying…",
        started.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let report = carshare_commands::audit::audit_settlements(
            &pool,
            carshare_commands::audit::AuditScope::default(),
            |_| {},
        )
        .await?;
        runs.push(report.events_read as f64 / t.elapsed().as_secs_f64());
        last = Some(report);
    }
    let report = last.context("no run")?;
    runs.sort_by(f64::total_cmp);
    println!("### Audit benchmark");
    println!("Machine: {}. Postgres on the same machine.", machine());
    println!(
        "Command: `target/release/audit-bench --payments {}`",
        args.payments
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| replay of {} events ({} settlements checked, {} discrepancies), 3 runs | median **{:.0} events/s** (min {:.0}, max {:.0}) | ≥ 200,000 events/s |",
        report.events_read, report.settlements_checked, report.discrepancies.len(), runs[1], runs[0], runs[2]
    );
    println!("| events in the log | {events} | ≥ 1,000,000 |");
    pool.close().await;
    if !args.keep {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}

//! Spine benchmark: loads vehicles through the real command path (HTTP against a separate
//! `carshare serve` process), then measures search latency, live projection catch-up, rebuild
//! throughput and the API process's resident memory. Prints a Markdown report with the machine
//! and the command that reproduces it.
//!
//! ```sh
//! cargo build --release -p carshare-api -p carshare-bench
//! target/release/spine-bench --vehicles 100000
//! ```

use anyhow::{bail, Context, Result};
use carshare_api::auth::TokenKeys;
use carshare_bench::{
    checkpoint, location, machine, millis, plate, rss_kib, serve_command, wait_ready, Server,
    SECRET,
};
use carshare_domain::Role;
use carshare_event_store::{StreamCursor, MIGRATOR};
use carshare_projections::rebuild::{self, RebuildSettings};
use carshare_projections::vehicles::VehicleProjection;
use carshare_projections::{ProgressBoard, ProjectionRunner, RunnerSettings, Source};
use clap::Parser;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Spine benchmark: command, projection, rebuild and search figures")]
struct Args {
    /// Vehicles to register.
    #[arg(long, default_value_t = 100_000)]
    vehicles: usize,
    /// Share of vehicles that also get availability rules (0..1).
    #[arg(long, default_value_t = 0.25)]
    with_rules: f64,
    /// Concurrent HTTP clients while loading.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Searches to time.
    #[arg(long, default_value_t = 2_000)]
    searches: usize,
    /// Concurrent clients while searching.
    #[arg(long, default_value_t = 4)]
    search_concurrency: usize,
    /// Bookings holding cars during the searches: their holds (`WindowReserved`, the events
    /// search excludes cars by) are written straight into the log after the vehicles are
    /// loaded, ten days of them spread over every car, and projected by the API's live
    /// projection before the searches are timed.
    #[arg(long, default_value_t = 0)]
    bookings: i64,
    /// Days ahead over which each car's holds are spread (one hold per day at most): 10 with
    /// ten holds per car books every car every day; 90 books about one car in nine per day.
    #[arg(long, default_value_t = 10)]
    hold_days: i64,
    /// Postgres server URL (without a database).
    #[arg(long, default_value = "postgres://postgres:postgres@127.0.0.1:5432")]
    postgres: String,
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The `carshare` binary to run as the API process.
    #[arg(long, default_value = "target/release/carshare")]
    binary: String,
    /// Port of the API process.
    #[arg(long, default_value_t = 3917)]
    port: u16,
    /// Keep the benchmark database afterwards.
    #[arg(long)]
    keep: bool,
}

/// Writes `bookings` holds into the log (as many per car, on distinct days among the next
/// `days`, three hours each at a car-dependent hour) and waits until the API's live projection shows
/// them. Returns (holds written, seconds to write, seconds until projected).
async fn seed_holds(
    pool: &PgPool,
    bookings: i64,
    vehicles: i64,
    days: i64,
) -> Result<(i64, f64, f64)> {
    let per_vehicle = (bookings + vehicles - 1) / vehicles.max(1);
    if per_vehicle > days {
        bail!("{per_vehicle} holds per car do not fit in {days} days (--hold-days)");
    }
    let spacing = days / per_vehicle.max(1);
    eprintln!("writing {bookings} holds ({per_vehicle} per car)…");
    let started = Instant::now();
    let written = sqlx::query(
        "WITH v AS ( \
           SELECT aggregate_id, max(sequence) AS seq, row_number() OVER (ORDER BY aggregate_id) AS n \
             FROM events WHERE aggregate_type = 'Vehicle' GROUP BY aggregate_id), \
         h AS ( \
           SELECT v.aggregate_id, v.seq + k AS seq, \
                  md5(v.aggregate_id || ':' || k)::uuid AS booking_id, \
                  md5('guest:' || (v.n % 5000))::uuid AS guest_id, \
                  date_trunc('day', now()) + make_interval(days => (1 + (v.n % $3 + (k - 1) * $4) % $3)::int, hours => ((v.n * 7 + k * 5) % 20)::int) AS start \
             FROM v CROSS JOIN generate_series(1, $1::bigint) AS k \
            WHERE (v.n - 1) * $1 + k <= $2) \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Vehicle', h.aggregate_id, h.seq, 'WindowReserved', \
                (SELECT event_version FROM events WHERE aggregate_type = 'Vehicle' LIMIT 1), \
                jsonb_build_object('WindowReserved', jsonb_build_object( \
                  'booking_id', h.booking_id, 'guest_id', h.guest_id, \
                  'start', to_char(h.start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                  'end', to_char((h.start + interval '3 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                  'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))), \
                (SELECT metadata FROM events WHERE aggregate_type = 'Vehicle' LIMIT 1) \
           FROM h ORDER BY h.aggregate_id, h.seq",
    )
    .bind(per_vehicle)
    .bind(bookings)
    .bind(days)
    .bind(spacing)
    .execute(pool)
    .await?
    .rows_affected() as i64;
    let write_secs = started.elapsed().as_secs_f64();
    eprintln!("  written in {write_secs:.1} s; waiting for the live projection…");
    let projected = Instant::now();
    loop {
        let status =
            carshare_projections::status::statuses(pool, &["vehicles"], Source::Postgres).await?;
        if let Some(s) = status.iter().find(|s| s.dead_letters > 0) {
            bail!(
                "{} holds could not be projected (dead letters)",
                s.dead_letters
            );
        }
        if status.iter().all(|s| s.lag_events == 0) {
            break;
        }
        if projected.elapsed() > Duration::from_secs(3_600) {
            bail!("the live projection did not show the holds within an hour");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok((written, write_secs, projected.elapsed().as_secs_f64()))
}

async fn head(pool: &PgPool) -> Result<StreamCursor> {
    let (tx, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    Ok(StreamCursor {
        transaction_id: tx.parse()?,
        position,
    })
}

/// A search for one day from `start`, 5 km around (`lat`, `lng`).
fn search_url(base: &str, lat: f64, lng: f64, start: chrono::DateTime<chrono::Utc>) -> String {
    let end = start + chrono::Duration::days(1);
    format!(
        "{base}/v1/vehicles?lat={lat}&lng={lng}&radius=5&start_datetime={}&end_datetime={}",
        start.format("%Y-%m-%dT%H:%M:%SZ"),
        end.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// The API's own latency histogram of the search route: (upper bound in seconds, count).
async fn search_histogram(http: &reqwest::Client, base: &str) -> Result<Vec<(f64, u64)>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let prefix =
        "carshare_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/vehicles\",le=\"";
    let mut buckets = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(prefix) {
            if let Some((le, count)) = rest.split_once("\"} ") {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse()?
                };
                buckets.push((le, count.trim().parse()?));
            }
        }
    }
    Ok(buckets)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let run: u32 = rand::random::<u32>() % 1000;
    let db_name = format!("carshare_bench_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", args.postgres))
        .await
        .context("connecting to Postgres")?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let db_url = format!("{}/{db_name}", args.postgres);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&db_url)
        .await?;
    MIGRATOR.run(&pool).await?;
    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;

    let base = format!("http://127.0.0.1:{}", args.port);
    let server = Server::start(
        serve_command(&args.binary, &db_url, &args.redis, run, args.port).stdout(Stdio::null()),
    )?;
    let pid = server.child.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    wait_ready(&http, &base).await?;
    let rss_after_start = rss_kib(pid, "VmRSS:").unwrap_or(0);

    // Memory sampler.
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // ---- Phase 1: load vehicles through HTTP.
    let keys = TokenKeys::new(&SecretString::from(SECRET), Duration::from_secs(900));
    let hosts: Vec<String> = (0..(args.vehicles / 100).max(1))
        .map(|_| keys.issue(Uuid::new_v4(), Role::Host).map(|t| t.0))
        .collect::<std::result::Result<_, _>>()?;
    let hosts = Arc::new(hosts);
    eprintln!(
        "loading {} vehicles with {} clients…",
        args.vehicles, args.concurrency
    );
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let results: Vec<Result<(Vec<f64>, usize)>> = stream::iter(0..args.vehicles)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            let hosts = hosts.clone();
            let done = done.clone();
            let with_rules = args.with_rules;
            let total = args.vehicles;
            async move {
                let mut rng = StdRng::seed_from_u64(i as u64);
                let (lat, lng) = location(&mut rng);
                let token = &hosts[i % hosts.len()];
                let make = ["현대", "기아", "제네시스", "BMW", "Tesla"][i % 5];
                let model = ["쏘나타", "K5", "G80", "520d", "Model 3", "아이오닉 5", "EV6"][i % 7];
                let fuel = ["gasoline", "diesel", "electric", "hybrid"][i % 4];
                let body = json!({
                    "license_plate": plate(i, run),
                    "make": make,
                    "model": model,
                    "year": 2015 + (i % 11) as i32,
                    "fuel_type": fuel,
                    "transmission": "automatic",
                    "hourly_rate": 5_000 + (i % 50) as i64 * 1_000,
                    "location_address": "서울특별시",
                    "location_lat": lat,
                    "location_lng": lng,
                    "description": format!("법인 차량 {i}")
                });
                let mut latencies = Vec::with_capacity(2);
                let t = Instant::now();
                let res = http.post(format!("{base}/v1/vehicles")).bearer_auth(token).json(&body).send().await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                if res.status() != 201 {
                    bail!("register answered {}: {}", res.status(), res.text().await.unwrap_or_default());
                }
                let v: serde_json::Value = res.json().await?;
                let mut commands = 1;
                if rng.random_bool(with_rules) {
                    let id = v["id"].as_str().unwrap_or_default();
                    let rules: Vec<serde_json::Value> = (1..=5)
                        .map(|d| json!({"day_of_week": d, "start_time": "07:00", "end_time": "22:00"}))
                        .collect();
                    let t = Instant::now();
                    let res = http
                        .post(format!("{base}/v1/vehicles/{id}/availability"))
                        .bearer_auth(token)
                        .json(&json!({"rules": rules}))
                        .send()
                        .await?;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    if res.status() != 200 {
                        bail!("availability answered {}", res.status());
                    }
                    commands += 1;
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 10_000 == 0 {
                    eprintln!("  {n}/{total}");
                }
                Ok((latencies, commands))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let load_secs = started.elapsed().as_secs_f64();
    let mut command_latencies = Vec::new();
    let mut commands = 0usize;
    for r in results {
        let (l, c) = r?;
        command_latencies.extend(l);
        commands += c;
    }
    let (c50, c95, c99, cmax) = millis(command_latencies);
    let holds = if args.bookings > 0 {
        Some(seed_holds(&pool, args.bookings, args.vehicles as i64, args.hold_days).await?)
    } else {
        None
    };
    let rss_after_load = rss_kib(pid, "VmRSS:").unwrap_or(0);
    // Do now what autovacuum would do after a bulk load (every table), so it does not compete
    // with the timings on two cores.
    sqlx::query("VACUUM (ANALYZE)").execute(&pool).await?;
    // Write the vacuum's dirty pages out now rather than during the timings.
    checkpoint(&pool).await;

    // ---- Phase 2: search latency over HTTP, and the same query in-process.
    eprintln!("timing {} searches…", args.searches);
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(2);
    let search_inputs: Vec<(f64, f64, chrono::DateTime<chrono::Utc>)> = {
        let mut rng = StdRng::seed_from_u64(7);
        (0..args.searches)
            .map(|_| {
                let (lat, lng) = if rng.random_bool(0.75) {
                    (
                        rng.random_range(37.45..37.67),
                        rng.random_range(126.85..127.15),
                    )
                } else {
                    (
                        rng.random_range(35.08..35.22),
                        rng.random_range(128.98..129.17),
                    )
                };
                let start = tomorrow
                    .and_hms_opt(rng.random_range(0..24), 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    - chrono::Duration::hours(9);
                (lat, lng, start)
            })
            .collect()
    };
    // A fresh client: the load phase's pooled connections may have been closed by the server
    // (keep-alive) while the database was vacuumed.
    let http = reqwest::Client::builder().build()?;
    // Warm-up (untimed): every pooled connection of the API prepares the search statement and
    // the caches settle after the load, so the timings below are the steady state.
    let warm_up: Vec<Result<()>> = stream::iter(search_inputs.iter().take(300).cloned())
        .map(|(lat, lng, start)| {
            let http = http.clone();
            let base = base.clone();
            async move {
                http.get(search_url(&base, lat, lng, start))
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(())
            }
        })
        .buffer_unordered(args.search_concurrency)
        .collect()
        .await;
    for r in warm_up {
        r?;
    }
    let server_before = search_histogram(&http, &base).await?;
    let search_started = Instant::now();
    let http_results: Vec<Result<(f64, usize)>> = stream::iter(search_inputs.clone())
        .map(|(lat, lng, start)| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let url = search_url(&base, lat, lng, start);
                let t = Instant::now();
                let res = http.get(url).send().await?;
                let status = res.status();
                let body: serde_json::Value = res.json().await?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if status != 200 {
                    bail!("search answered {status}: {body}");
                }
                Ok((ms, body.as_array().map_or(0, Vec::len)))
            }
        })
        .buffer_unordered(args.search_concurrency)
        .collect()
        .await;
    let search_secs = search_started.elapsed().as_secs_f64();
    let server_after = search_histogram(&http, &base).await?;
    let server_side: Vec<(f64, u64)> = server_after
        .iter()
        .map(|(le, after)| {
            let before = server_before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0, |(_, n)| *n);
            (*le, after.saturating_sub(before))
        })
        .collect();
    let server_pct = |p: f64| -> String {
        let total = server_side.last().map_or(0, |(_, n)| *n);
        let wanted = (p / 100.0 * total as f64).ceil() as u64;
        server_side
            .iter()
            .find(|(_, n)| *n >= wanted)
            .map_or("?".into(), |(le, _)| format!("≤ {:.1}", le * 1000.0))
    };
    let mut search_ms = Vec::new();
    let mut hits = 0usize;
    for r in http_results {
        let (ms, n) = r?;
        search_ms.push(ms);
        hits += n;
    }
    let (s50, s95, s99, smax) = millis(search_ms);
    let mut sql_ms = Vec::new();
    for (lat, lng, start) in &search_inputs {
        let q = carshare_projections::vehicles::SearchQuery {
            lat: *lat,
            lng: *lng,
            radius_km: 5.0,
            window: carshare_domain::TimeWindow::new(*start, *start + chrono::Duration::days(1))?,
            text: None,
            fuel_type: None,
            transmission: None,
            min_price: None,
            max_price: None,
            buffer: chrono::Duration::minutes(30),
            sort: carshare_projections::vehicles::SearchSort::Distance,
            limit: 20,
            after: None,
        };
        let t = Instant::now();
        carshare_projections::vehicles::search(&pool, &q).await?;
        sql_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (q50, q95, q99, _) = millis(sql_ms);
    sampler.abort();
    let peak = peak_rss
        .load(Ordering::Relaxed)
        .max(rss_kib(pid, "VmHWM:").unwrap_or(0));
    drop(server);

    // ---- Phase 3: live projection catch-up (the runner the API uses), from an empty table.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    sqlx::query("TRUNCATE read.vehicles, read.vehicle_holds")
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE projection_checkpoints SET transaction_id = '0', global_position = 0, events_seen = 0")
        .execute(&pool)
        .await?;
    let target = head(&pool).await?;
    let board = ProgressBoard::default();
    let runner = ProjectionRunner::new(
        pool.clone(),
        Arc::new(VehicleProjection),
        RunnerSettings::default(),
        board.clone(),
    );
    let token = CancellationToken::new();
    let live_started = Instant::now();
    let task = tokio::spawn(runner.run(token.clone()));
    let caught_up = board
        .wait_for(&pool, &["vehicles"], target, Duration::from_secs(3_600))
        .await;
    let live_secs = live_started.elapsed().as_secs_f64();
    token.cancel();
    let _ = task.await;
    if !caught_up {
        bail!("the live projection did not catch up");
    }

    // ---- Phase 4: rebuild.
    sqlx::query("VACUUM (ANALYZE) read.vehicles")
        .execute(&pool)
        .await?;
    let report = rebuild::rebuild(
        &pool,
        &VehicleProjection,
        RebuildSettings::default(),
        |_, _| {},
    )
    .await?;

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM read.vehicles")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    if !args.keep {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }

    let cmd = format!(
        "cargo build --release -p carshare-api -p carshare-bench && target/release/spine-bench --vehicles {} --bookings {} --hold-days {} --with-rules {} --concurrency {} --searches {} --search-concurrency {}",
        args.vehicles, args.bookings, args.hold_days, args.with_rules, args.concurrency, args.searches, args.search_concurrency
    );
    println!(
        "## Spine benchmark — {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    println!(
        "- Machine: {}; PostgreSQL {pg_version}; API and benchmark on the same machine",
        machine()
    );
    println!("- Command: `{cmd}`");
    println!(
        "- Data: {} vehicles ({} with availability rules), {events} events, {rows} read rows",
        args.vehicles,
        commands - args.vehicles
    );
    if let Some((written, write_secs, project_secs)) = holds {
        println!(
            "- Bookings: {written} holds written into the log in {write_secs:.1} s (one statement), shown by the live projection {project_secs:.1} s later ({:.0} events/s)",
            written as f64 / project_secs.max(0.001)
        );
    }
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!(
        "| commands over HTTP (register + availability, {} clients) | {:.0} commands/s ({commands} in {load_secs:.1} s) | — |",
        args.concurrency,
        commands as f64 / load_secs
    );
    println!("| command latency p50 / p95 / p99 / max | {c50:.1} / {c95:.1} / {c99:.1} / {cmax:.1} ms (includes the read-your-writes wait) | — |");
    println!(
        "| search over HTTP p50 / p95 / p99 / max (5 km, one-day window, {} clients) | {s50:.2} / {s95:.2} / {s99:.2} / {smax:.2} ms ({:.0} searches/s, {:.1} hits/search) | p95 < 20 ms |",
        args.search_concurrency,
        args.searches as f64 / search_secs,
        hits as f64 / args.searches as f64
    );
    println!(
        "| search as measured by the API (`/metrics` histogram) p50 / p95 / p99 | {} / {} / {} ms | — |",
        server_pct(50.0),
        server_pct(95.0),
        server_pct(99.0)
    );
    println!("| search query alone (in-process, sequential) p50 / p95 / p99 | {q50:.2} / {q95:.2} / {q99:.2} ms | — |");
    println!(
        "| search p95 over HTTP ÷ query alone p95 | {:.2} | — |",
        s95 / q95
    );
    println!(
        "| live projection catch-up ({events} events, batch 500) | {:.0} events/s ({live_secs:.1} s) | ≥ 5,000 events/s |",
        events as f64 / live_secs
    );
    println!(
        "| `carshare rebuild vehicles` replay | {:.0} events/s ({} events in {:.1} s) | ≥ 50,000 events/s |",
        report.events as f64 / report.replay.as_secs_f64(),
        report.events,
        report.replay.as_secs_f64()
    );
    println!(
        "| rebuild including index builds and swap | {:.0} events/s ({:.1} s, indexes {:.1} s) | — |",
        report.events as f64 / report.total.as_secs_f64(),
        report.total.as_secs_f64(),
        report.indexing.as_secs_f64()
    );
    println!(
        "| API resident memory: after start / after load / peak under load | {:.0} / {:.0} / {:.0} MB | < 150 MB |",
        rss_after_start as f64 / 1024.0,
        rss_after_load as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(())
}

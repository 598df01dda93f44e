//! Booking benchmark: booking requests per second over HTTP (distinct cars) and their latency,
//! beside a `pgbench` baseline of single-row inserts into an events-shaped table, measured in
//! the same run on the same machine.
//!
//! ```sh
//! cargo build --release -p carshare-api -p carshare-bench
//! target/release/booking-bench
//! ```

use anyhow::{bail, Context, Result};
use carshare_api::auth::TokenKeys;
use carshare_bench::http1::KeepAlive;
use carshare_bench::{
    checkpoint, location, machine, millis, plate, serve_command, wait_ready, Server, SECRET,
};
use carshare_commands::bookings::{BookingService, RequestBooking};
use carshare_commands::SystemClock;
use carshare_domain::booking::BookingPolicy;
use carshare_domain::{Actor, Role};
use carshare_event_store::MIGRATOR;
use carshare_event_store::{CommitSignal, EventMetadata};
use chrono::{DateTime, DurationRound, Utc};
use clap::Parser;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use secrecy::SecretString;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Booking requests per second and latency, beside a pgbench insert baseline")]
struct Args {
    /// Concurrent clients (for both pgbench and the booking load).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of each timed phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Cars to book (each booked for successive days, so concurrent requests never share one).
    #[arg(long, default_value_t = 2_000)]
    vehicles: usize,
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
    #[arg(long, default_value_t = 3918)]
    port: u16,
    /// Keep the benchmark database afterwards.
    #[arg(long)]
    keep: bool,
    /// The HTTP client of the booking load: `lean` (one keep-alive connection per client,
    /// preformatted requests; see `http1.rs`) or `reqwest` (the general client, as before
    /// 2026-12-07's fifth entry; it costs the shared cores more per request).
    #[arg(long, value_enum, default_value_t = LoadClient::Lean)]
    client: LoadClient,
}

/// The HTTP client that sends the booking load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LoadClient {
    Lean,
    Reqwest,
}

/// `pgbench` with `clients` clients for `seconds`, one `INSERT` of an events-shaped row per
/// transaction; returns transactions per second.
fn pgbench(db_url: &str, clients: usize, seconds: u64) -> Result<f64> {
    let script = std::env::temp_dir().join(format!("carshare-pgbench-{}.sql", Uuid::new_v4()));
    std::fs::write(
        &script,
        "INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Booking', gen_random_uuid()::text, 1, 'BookingRequested', '1.0', \
         '{\"BookingRequested\": {\"total_amount\": 54000, \"guest_message\": \"출장\"}}', \
         '{\"correlation_id\": \"bench\", \"actor_role\": \"guest\"}');\n",
    )?;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(db_url)
        .stderr(Stdio::inherit())
        .output()
        .context("running pgbench (Debian: postgresql-contrib or postgresql-client)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| format!("no tps in pgbench output:\n{text}"))
}

/// Booking requests from `clients` clients for `seconds`, at most `rate` per second (0 = as
/// fast as they go). Returns (requests completed, elapsed seconds, latencies in ms).
struct Load {
    http: reqwest::Client,
    client: LoadClient,
    /// `host:port` of the API.
    addr: String,
    base: String,
    cars: Arc<Vec<String>>,
    guests: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    clients: usize,
    /// The day request 0 starts on (fixed for the run, so no two requests overlap).
    day0: DateTime<Utc>,
}

async fn book(load: &Load, seconds: u64, rate: f64) -> Result<(usize, f64, Vec<f64>)> {
    let Load {
        http,
        client,
        addr,
        base,
        cars,
        guests,
        next,
        clients,
        day0,
    } = load;
    let day0 = *day0;
    let clients = *clients;
    let lean = *client == LoadClient::Lean;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let issued = Arc::new(AtomicUsize::new(0));
    let results: Vec<Result<Vec<f64>>> = stream::iter(0..clients)
        .map(|c| {
            let http = http.clone();
            let base = base.clone();
            let cars = cars.clone();
            let guests = guests.clone();
            let next = next.clone();
            let issued = issued.clone();
            // A connection of its own per client and phase (opened at its first request).
            let mut conn = KeepAlive::new(addr);
            async move {
                let mut latencies = Vec::new();
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    if rate > 0.0 {
                        // Open loop: request k is due at k / rate seconds.
                        let k = issued.fetch_add(1, Ordering::Relaxed);
                        let due = started + Duration::from_secs_f64(k as f64 / rate);
                        if due >= deadline {
                            break;
                        }
                        if due > now {
                            tokio::time::sleep_until(due.into()).await;
                        }
                    }
                    let (car, start) = slot(next.fetch_add(1, Ordering::Relaxed), &cars, day0);
                    let token = &guests[c % guests.len()];
                    let t = Instant::now();
                    if lean {
                        // The body `serde_json` would write for the same fields (no value
                        // here needs escaping).
                        let body = format!(
                            "{{\"vehicle_id\":\"{car}\",\"start_datetime\":\"{}\",\
                             \"end_datetime\":\"{}\",\"guest_message\":\"벤치마크\"}}",
                            start.to_rfc3339(),
                            (start + chrono::Duration::hours(4)).to_rfc3339()
                        );
                        let answer = conn.post_json("/v1/bookings", token, &body).await?;
                        if answer.status != 201 {
                            bail!(
                                "booking answered {}: {}",
                                answer.status,
                                String::from_utf8_lossy(&answer.body)
                            );
                        }
                    } else {
                        let body = json!({
                            "vehicle_id": car,
                            "start_datetime": start.to_rfc3339(),
                            "end_datetime": (start + chrono::Duration::hours(4)).to_rfc3339(),
                            "guest_message": "벤치마크",
                        });
                        let res = http
                            .post(format!("{base}/v1/bookings"))
                            .bearer_auth(token)
                            .json(&body)
                            .send()
                            .await?;
                        let status = res.status();
                        if status != 201 {
                            bail!(
                                "booking answered {status}: {}",
                                res.text().await.unwrap_or_default()
                            );
                        }
                        let _ = res.bytes().await?;
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(latencies)
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64().min(seconds as f64 + 5.0);
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok((all.len(), elapsed, all))
}

/// One timed phase: requests completed, seconds, and latency percentiles (ms).
struct Measured {
    n: usize,
    secs: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Measured {
    fn of((n, secs, latencies): (usize, f64, Vec<f64>)) -> Measured {
        let (p50, _, p99, max) = millis(latencies);
        Measured {
            n,
            secs,
            p50,
            p99,
            max,
        }
    }

    fn rate(&self) -> f64 {
        self.n as f64 / self.secs
    }

    /// The result cell of a closed-loop phase, against the pgbench rate (in bold when it is
    /// the figure the target is about).
    fn throughput(&self, tps: f64, bold: bool) -> String {
        self.throughput_beside(tps, None, bold)
    }

    /// As [`Measured::throughput`], also against `near`: a baseline taken just before the
    /// phase (the machine's speed drifts between phases of one run).
    fn throughput_beside(&self, tps: f64, near: Option<f64>, bold: bool) -> String {
        let b = if bold { "**" } else { "" };
        let near = near.map_or(String::new(), |near| {
            format!(" ({:.2} × the pgbench just before it)", self.rate() / near)
        });
        format!(
            "{b}{:.0} bookings/s{b} ({} in {:.1} s) = {b}{:.2} × pgbench{b}{near}; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.rate(),
            self.n,
            self.secs,
            self.rate() / tps,
            self.p50,
            self.p99,
            self.max
        )
    }

    /// The table row of an open-loop phase at `asked` requests a second.
    fn at_half_rate(&self, asked: f64) -> String {
        format!(
            "| the same at half that rate ({asked:.0}/s asked, {:.0}/s done), open loop | p50 {:.1} ms, **p99 {:.1} ms**, max {:.1} ms | p99 < 50 ms |",
            self.rate(),
            self.p50,
            self.p99,
            self.max
        )
    }
}

/// Request `j`: car `j mod cars`, 01:00–05:00 on day `j div cars`, so concurrent requests never
/// share a car and no two requests overlap.
fn slot(j: usize, cars: &[String], day0: DateTime<Utc>) -> (&str, DateTime<Utc>) {
    let start = day0 + chrono::Duration::days((j / cars.len()) as i64) + chrono::Duration::hours(1);
    (&cars[j % cars.len()], start)
}

/// The same requests as [`book`], closed loop, handed straight to the booking command service
/// in this process: no HTTP, no API process, no read side. What the write path itself
/// (load or cached state, decide, one commit) costs.
async fn book_in_process(
    pool: &PgPool,
    load: &Load,
    seconds: u64,
) -> Result<(usize, f64, Vec<f64>)> {
    let service = Arc::new(BookingService::new(
        pool.clone(),
        CommitSignal::default(),
        Arc::new(SystemClock),
        BookingPolicy::default(),
    ));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let day0 = load.day0;
    let results: Vec<Result<Vec<f64>>> = stream::iter(0..load.clients)
        .map(|_| {
            let service = service.clone();
            let cars = load.cars.clone();
            let next = load.next.clone();
            let guest = Actor::new(Uuid::new_v4(), Role::Guest);
            async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let (car, start) = slot(next.fetch_add(1, Ordering::Relaxed), &cars, day0);
                    let request = RequestBooking {
                        vehicle_id: car.parse()?,
                        start,
                        end: start + chrono::Duration::hours(4),
                        guest_message: Some("벤치마크".into()),
                    };
                    let meta = EventMetadata {
                        actor_id: Some(guest.user_id),
                        actor_role: Some(Role::Guest.as_str().to_string()),
                        ..EventMetadata::system("RequestBooking", Utc::now())
                    };
                    let t = Instant::now();
                    service
                        .request(guest, request, &meta)
                        .await
                        .map_err(|e| anyhow::anyhow!("booking refused: {e}"))?;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(latencies)
            }
        })
        .buffer_unordered(load.clients)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok((all.len(), elapsed, all))
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
        .max_connections(u32::try_from(args.clients).unwrap_or(16) + 4)
        .connect(&db_url)
        .await?;
    MIGRATOR.run(&pool).await?;
    sqlx::query(
        "CREATE TABLE bench_events (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)",
    )
    .execute(&pool)
    .await?;

    // ---- Baseline: the same machine's single-row durable inserts.
    eprintln!("pgbench: {} clients, {} s", args.clients, args.seconds);
    checkpoint(&pool).await;
    let tps = pgbench(&db_url, args.clients, args.seconds)?;

    let base = format!("http://127.0.0.1:{}", args.port);
    let serve = |workers: bool| serve(&args, &db_url, run, workers);
    let server = serve(true)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    wait_ready(&http, &base).await?;

    // ---- Cars, registered over HTTP.
    let keys = TokenKeys::new(&SecretString::from(SECRET), Duration::from_secs(900));
    let host = keys.issue(Uuid::new_v4(), Role::Host)?.0;
    let guests: Vec<String> = (0..args.clients)
        .map(|_| keys.issue(Uuid::new_v4(), Role::Guest).map(|t| t.0))
        .collect::<std::result::Result<_, _>>()?;
    eprintln!("registering {} cars", args.vehicles);
    let cars: Vec<Result<String>> = stream::iter(0..args.vehicles)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            let host = host.clone();
            async move {
                let (lat, lng) = location(&mut StdRng::seed_from_u64(i as u64));
                let res = http
                    .post(format!("{base}/v1/vehicles"))
                    .bearer_auth(&host)
                    .json(&json!({
                        "license_plate": plate(i, run), "make": "현대", "model": "쏘나타",
                        "year": 2023, "hourly_rate": 12_000, "location_address": "서울특별시",
                        "location_lat": lat, "location_lng": lng,
                    }))
                    .send()
                    .await?;
                if res.status() != 201 {
                    bail!("register answered {}", res.status());
                }
                let v: serde_json::Value = res.json().await?;
                Ok(v["id"].as_str().unwrap_or_default().to_string())
            }
        })
        .buffer_unordered(args.clients)
        .collect()
        .await;
    let load = Load {
        http: http.clone(),
        client: args.client,
        addr: format!("127.0.0.1:{}", args.port),
        base: base.clone(),
        cars: Arc::new(cars.into_iter().collect::<Result<_>>()?),
        guests: Arc::new(guests),
        next: Arc::new(AtomicUsize::new(0)),
        clients: args.clients,
        day0: (Utc::now() + chrono::Duration::days(2)).duration_trunc(chrono::Duration::days(1))?,
    };

    // ---- Warm-up, then the closed-loop throughput run.
    let _ = book(&load, 3, 0.0).await?;
    checkpoint(&pool).await;
    eprintln!(
        "bookings: {} clients, {} s, as fast as they go",
        args.clients, args.seconds
    );
    let closed = Measured::of(book(&load, args.seconds, 0.0).await?);
    // ---- What the closed loop left to the background workers, and how long they take to
    // finish it: the rate counts answered commands, and the read side may still be behind.
    let (unprojected, undelivered) = backlog(&pool).await?;
    let drain = caught_up(&pool, Duration::from_secs(120)).await?;
    // ---- Half that rate, open loop, for latency.
    let half = closed.rate() / 2.0;
    eprintln!("bookings: {half:.0}/s for {} s", args.seconds);
    let open = Measured::of(book(&load, args.seconds, half).await?);
    drop(server);

    // ---- The baseline again, next to the phase below: the machine's speed drifts (pgbench
    // moved by up to a factor of two between runs of one build), so that phase is also set
    // against the baseline taken just before it.
    eprintln!(
        "pgbench again: {} clients, {} s",
        args.clients, args.seconds
    );
    checkpoint(&pool).await;
    let tps_near = pgbench(&db_url, args.clients, args.seconds)?;

    // ---- The deployment the operations guide describes: an instance taking traffic without
    // the workers, which run elsewhere. Here they run afterwards, on the same two cores, and
    // the time they take to catch up is the read side's own rate.
    let server = serve(false)?;
    wait_ready(&http, &base).await?;
    let _ = book(&load, 2, 0.0).await?;
    checkpoint(&pool).await;
    eprintln!(
        "bookings, API without its workers: {} clients, {} s, as fast as they go",
        args.clients, args.seconds
    );
    let split_closed = Measured::of(book(&load, args.seconds, 0.0).await?);
    let split_half = split_closed.rate() / 2.0;
    eprintln!(
        "bookings, API without its workers: {split_half:.0}/s for {} s",
        args.seconds
    );
    let split_open = Measured::of(book(&load, args.seconds, split_half).await?);
    drop(server);
    let (behind, behind_deliveries) = backlog(&pool).await?;
    eprintln!("read side: catching up on {behind} bookings");
    checkpoint(&pool).await;
    let workers = serve(true)?;
    let read_side = caught_up(&pool, Duration::from_secs(300)).await?;
    drop(workers);

    // ---- The command alone, in this process, with no API process.
    eprintln!(
        "bookings in process: {} tasks, {} s, as fast as they go",
        args.clients, args.seconds
    );
    checkpoint(&pool).await;
    let alone = Measured::of(book_in_process(&pool, &load, args.seconds).await?);
    let requested: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'BookingRequested'")
            .fetch_one(&pool)
            .await?;
    let reserved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'WindowReserved'")
            .fetch_one(&pool)
            .await?;

    println!("### Booking benchmark");
    println!(
        "Machine: {}. API, Postgres, Redis and the load generator on the same machine.",
        machine()
    );
    println!(
        "Command: `target/release/booking-bench --clients {} --seconds {} --vehicles {} --client {}`",
        args.clients,
        args.seconds,
        args.vehicles,
        match args.client {
            LoadClient::Lean => "lean",
            LoadClient::Reqwest => "reqwest",
        }
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| pgbench: single-row INSERT into an events-shaped table, one per transaction, {} clients | {tps:.0} tx/s | — |", args.clients);
    println!(
        "| `POST /v1/bookings` (distinct cars), {} clients, closed loop | {} | ≥ 0.4 × pgbench |",
        args.clients,
        closed.throughput(tps, true)
    );
    println!("{}", open.at_half_rate(half));
    let caught_up = match drain {
        Some(drain) => format!(
            "all done {drain:.1} s later ({:.0} bookings/s counting that time)",
            closed.n as f64 / (closed.secs + drain)
        ),
        None => "not done within 120 s".to_string(),
    };
    println!(
        "| left behind when the closed loop ended | {unprojected} bookings not yet in `read.bookings`, {undelivered} notification deliveries queued; {caught_up} | — |"
    );
    println!(
        "| pgbench again, just before the next phase (API process stopped) | {tps_near:.0} tx/s | — |"
    );
    println!(
        "| `POST /v1/bookings` to an API instance without its workers (`RUN_PROJECTIONS=false RUN_NOTIFICATIONS=false`), {} clients, closed loop | {} | ≥ 0.4 × pgbench |",
        args.clients,
        split_closed.throughput_beside(tps, Some(tps_near), true)
    );
    println!("{}", split_open.at_half_rate(split_half));
    let read_side = match read_side {
        Some(t) => format!(
            "done in {t:.1} s: **{:.0} bookings/s** (read tables, inbox, deliveries)",
            behind as f64 / t
        ),
        None => "not done within 300 s".to_string(),
    };
    println!(
        "| the workers afterwards, alone on the machine: {behind} bookings and {behind_deliveries} deliveries behind | {read_side} | keeps up with the line above |"
    );
    println!(
        "| the command alone: `BookingService::request` called by {} tasks in the load generator's process, closed loop, no API process | {} | — |",
        args.clients,
        alone.throughput(tps, false)
    );
    println!("| log check | {requested} BookingRequested, {reserved} WindowReserved | equal |");

    pool.close().await;
    if !args.keep {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}

/// `carshare serve` on the benchmark database, with its projection workers and notification
/// dispatcher or without them (an instance that only takes traffic).
fn serve(args: &Args, db_url: &str, run: u32, workers: bool) -> Result<Server> {
    let workers = if workers { "true" } else { "false" };
    // The process's log (warnings and errors), kept for a look after the run.
    let log = std::env::temp_dir().join(format!("carshare-bench-serve-{run}-{workers}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    Server::start(
        serve_command(&args.binary, db_url, &args.redis, run, args.port)
            .env("RUN_PROJECTIONS", workers)
            .env("RUN_NOTIFICATIONS", workers)
            .env(
                "STORAGE_DIR",
                std::env::temp_dir().join("carshare-bench-uploads"),
            )
            .stdout(log),
    )
}

/// The read models a booking request gives work to, each with the aggregate type whose last
/// event it must have passed.
const READ_SIDE: [(&str, &str); 3] = [
    ("bookings", "Booking"),
    ("notifications", "Booking"),
    ("vehicles", "Vehicle"),
];

/// Seconds until the read side has done everything the log asks of it when no more commands
/// come: the projections of [`READ_SIDE`] have moved their checkpoints past the last event of
/// their aggregates, and no notification delivery is left pending or being sent. `None` when
/// not within `limit`. Each look is a few index probes (and, once nothing is pending, a scan
/// for deliveries being sent): counting the backlog itself ([`backlog`]) cost about 0.17 s of
/// Postgres a look at 200,000 bookings, a large share of the machine it was measuring.
async fn caught_up(pool: &PgPool, limit: Duration) -> Result<Option<f64>> {
    let started = Instant::now();
    let (projections, types): (Vec<&str>, Vec<&str>) = READ_SIDE.into_iter().unzip();
    while started.elapsed() < limit {
        let (behind, pending): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM unnest($1::text[], $2::text[]) AS w(projection, kind) \
                     CROSS JOIN LATERAL (SELECT transaction_id, global_position FROM events \
                       WHERE aggregate_type = w.kind \
                       ORDER BY transaction_id DESC, global_position DESC LIMIT 1) last \
                     LEFT JOIN projection_checkpoints c ON c.projection = w.projection \
                     WHERE c.projection IS NULL \
                        OR (c.transaction_id, c.global_position) \
                           < (last.transaction_id, last.global_position)), \
                    EXISTS (SELECT 1 FROM notification_deliveries WHERE status = 'pending')",
        )
        .bind(&projections)
        .bind(&types)
        .fetch_one(pool)
        .await?;
        if behind == 0 && !pending {
            let sending: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM notification_deliveries WHERE status = 'sending')",
            )
            .fetch_one(pool)
            .await?;
            if !sending {
                return Ok(Some(started.elapsed().as_secs_f64()));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// Bookings requested but not yet in `read.bookings`, and notification deliveries not yet
/// finished.
async fn backlog(pool: &PgPool) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE event_type = 'BookingRequested') \
                  - (SELECT count(*) FROM read.bookings), \
                (SELECT count(*) FROM notification_deliveries WHERE status IN ('pending', 'sending'))",
    )
    .fetch_one(pool)
    .await?)
}

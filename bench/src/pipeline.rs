//! Pipeline benchmark: the relay's throughput to Kafka, and the end-to-end lag from a command's
//! commit to its read-table row, at a sustained command rate, with projections reading the
//! Postgres stream and with projections consuming Kafka. Prints a Markdown report with the
//! machine and the command that reproduces it.
//!
//! Needs Postgres and a Kafka-protocol broker (`scripts/services.sh` starts both).
//!
//! ```sh
//! cargo build --release -p carshare-bench
//! target/release/pipeline-bench --relay-events 200000 --rate 1000 --seconds 30
//! ```

use anyhow::{bail, Context, Result};
use carshare_bench::{location, machine, millis, plate};
use carshare_commands::vehicles::{LocationInput, RegisterVehicle, UpdateVehicle, VehicleService};
use carshare_commands::SystemClock;
use carshare_domain::vehicle::VehiclePatch;
use carshare_domain::{Actor, Role};
use carshare_event_store::kafka::KafkaSettings;
use carshare_event_store::relay::{self, Relay, RelaySettings};
use carshare_event_store::{connect_lazy, CommitSignal, EventMetadata, PoolSettings, MIGRATOR};
use carshare_projections::vehicles::VehicleProjection;
use carshare_projections::{
    ConsumerSettings, KafkaProjectionWorker, ProgressBoard, ProjectionRunner, RunnerSettings,
    Source,
};
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Relay throughput and command-to-read-table lag, with and without Kafka")]
struct Args {
    /// Events preloaded for the relay throughput run.
    #[arg(long, default_value_t = 200_000)]
    relay_events: i64,
    /// Commands per second during the lag runs.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Length of each lag run (measured).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds of load at the same rate before measuring starts, while the pool opens its
    /// connections and the workers settle (the per-second timeline shows why).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Vehicles the commands are spread over.
    #[arg(long, default_value_t = 3_000)]
    vehicles: usize,
    /// Commands in flight at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Postgres server URL (without a database).
    #[arg(long, default_value = "postgres://postgres:postgres@127.0.0.1:5432")]
    postgres: String,
    /// Kafka brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// How often the lag watcher looks at the read table, in milliseconds.
    #[arg(long, default_value_t = 5)]
    watch_ms: u64,
    /// Run only these parts (relay, postgres, kafka); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Keep the benchmark databases afterwards.
    #[arg(long)]
    keep: bool,
}

struct Database {
    name: String,
    server: String,
    pool: PgPool,
    keep: bool,
}

impl Database {
    async fn create(server: &str, keep: bool) -> Result<Database> {
        let name = format!(
            "carshare_bench_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .context("connecting to Postgres")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        // The pool `carshare serve` opens (its connection checks included).
        let pool = connect_lazy(&PoolSettings {
            url: format!("{server}/{name}"),
            max_connections: 24,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::ZERO,
        })?;
        MIGRATOR.run(&pool).await?;
        Ok(Database {
            name,
            server: server.to_string(),
            pool,
            keep,
        })
    }

    async fn drop_it(self) -> Result<()> {
        self.pool.close().await;
        if self.keep {
            eprintln!("kept database {}", self.name);
            return Ok(());
        }
        let mut admin = PgConnection::connect(&format!("{}/postgres", self.server)).await?;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await?;
        Ok(())
    }
}

fn kafka(args: &Args) -> KafkaSettings {
    let prefix = format!("bench{}", &Uuid::new_v4().simple().to_string()[..10]);
    let mut kafka = KafkaSettings::new(args.brokers.clone());
    kafka.topic_prefix = prefix.clone();
    kafka.group_prefix = prefix;
    kafka.partitions = args.partitions;
    kafka
}

fn meta(actor: Actor, command: &str) -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
        actor_id: Some(actor.user_id),
        actor_role: Some("host".into()),
        idempotency_key: None,
        issued_at: chrono::Utc::now(),
        command: command.into(),
    }
}

async fn register(
    service: &VehicleService,
    host: Actor,
    count: usize,
    run: u32,
) -> Result<Vec<Uuid>> {
    let mut rng = StdRng::seed_from_u64(u64::from(run));
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let (lat, lng) = location(&mut rng);
        let done = service
            .register(
                host,
                RegisterVehicle {
                    license_plate: plate(i, run),
                    make: "현대".into(),
                    model: "아이오닉 5".into(),
                    year: 2024,
                    color: Some("white".into()),
                    fuel_type: None,
                    transmission: None,
                    hourly_rate: 12_000,
                    location: LocationInput {
                        address: "서울특별시 중구 세종대로 110".into(),
                        lat: Some(lat),
                        lng: Some(lng),
                    },
                    description: Some("법인 업무용 차량".into()),
                    images: vec![],
                },
                &meta(host, "RegisterVehicle"),
            )
            .await
            .map_err(|e| anyhow::anyhow!("register: {e}"))?;
        ids.push(
            done.aggregate
                .state
                .map(|v| v.id)
                .context("registered vehicle has no state")?,
        );
    }
    Ok(ids)
}

async fn head(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(pool)
            .await?,
    )
}

/// Relay throughput: preloads `n` events (copies of one real registration, distinct
/// aggregates), then times a fresh relay publishing all of them.
async fn relay_throughput(args: &Args) -> Result<(i64, f64)> {
    let db = Database::create(&args.postgres, args.keep).await?;
    let service = VehicleService::new(
        db.pool.clone(),
        CommitSignal::default(),
        None,
        Arc::new(SystemClock),
    );
    let host = Actor::new(Uuid::new_v4(), Role::Host);
    register(&service, host, 1, 7).await?;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT e.aggregate_type, md5(g::text)::uuid::text, 1, e.event_type, e.event_version, e.payload, e.metadata \
         FROM events e, generate_series(1, $1) g",
    )
    .bind(args.relay_events - 1)
    .execute(&db.pool)
    .await?;
    sqlx::query("VACUUM ANALYZE events")
        .execute(&db.pool)
        .await?;
    let total = head(&db.pool).await?;
    let kafka = kafka(args);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let relay = tokio::spawn(
        Relay::new(db.pool.clone(), kafka.clone(), RelaySettings::default())
            .run(shutdown.child_token()),
    );
    loop {
        let status = relay::status(&db.pool, &kafka.topic_prefix).await?;
        if status.position >= total {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the relay did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = relay.await;
    db.drop_it().await?;
    Ok((total, total as f64 / elapsed))
}

/// Where the projections read during a lag run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Postgres,
    Kafka,
}

struct LagReport {
    commands: usize,
    rate: f64,
    lags_ms: Vec<f64>,
    /// The worst lag of the commands committed in each second of the run, in milliseconds.
    worst_per_second: Vec<f64>,
    unseen: usize,
    /// Machine CPU busy share during the load.
    cpu_busy: f64,
    /// Command latencies (ms).
    command_ms: Vec<f64>,
}

/// (busy, total) jiffies of the whole machine.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Commands at a steady rate; for each, the time from its commit (the command returning) to
/// a reader seeing its row at the new sequence.
async fn lag_run(args: &Args, mode: Mode) -> Result<LagReport> {
    let db = Database::create(&args.postgres, args.keep).await?;
    let signal = CommitSignal::default();
    let service = Arc::new(VehicleService::new(
        db.pool.clone(),
        signal.clone(),
        None,
        Arc::new(SystemClock),
    ));
    let host = Actor::new(Uuid::new_v4(), Role::Host);
    let run = match mode {
        Mode::Postgres => 1,
        Mode::Kafka => 2,
    };
    eprintln!("[{mode:?}] registering {} vehicles", args.vehicles);
    let ids = register(&service, host, args.vehicles, run).await?;

    // The workers, as `carshare serve` runs them.
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    match mode {
        Mode::Postgres => {
            let runner = ProjectionRunner::new(
                db.pool.clone(),
                Arc::new(VehicleProjection),
                RunnerSettings::default(),
                ProgressBoard::default(),
            )
            .woken_by(signal.subscribe());
            tasks.push(tokio::spawn(runner.run(shutdown.child_token())));
        }
        Mode::Kafka => {
            let kafka = kafka(args);
            tasks.push(tokio::spawn(
                Relay::new(db.pool.clone(), kafka.clone(), RelaySettings::default())
                    .woken_by(signal.subscribe())
                    .run(shutdown.child_token()),
            ));
            tasks.push(tokio::spawn(
                KafkaProjectionWorker::new(
                    db.pool.clone(),
                    Arc::new(VehicleProjection),
                    kafka,
                    ConsumerSettings::default(),
                    ProgressBoard::new(Source::Kafka),
                )
                .run(shutdown.child_token()),
            ));
        }
    }
    // Wait until the registrations are in the read table.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM read.vehicles")
            .fetch_one(&db.pool)
            .await?;
        if rows as usize >= ids.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("[{mode:?}] the projection did not catch up with the registrations");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Outstanding writes: (vehicle, sequence) -> commit time.
    let outstanding: Arc<Mutex<HashMap<(Uuid, i64), Instant>>> = Arc::default();
    // (commit time, lag in milliseconds)
    let lags: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let stop_watch = CancellationToken::new();
    let watch_every = Duration::from_millis(args.watch_ms);
    let watcher = {
        let pool = db.pool.clone();
        let outstanding = outstanding.clone();
        let lags = lags.clone();
        let stop = stop_watch.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let wanted: Vec<(Uuid, i64)> = outstanding
                    .lock()
                    .map(|o| o.keys().copied().collect())
                    .unwrap_or_default();
                if !wanted.is_empty() {
                    let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
                    let seen: Vec<(Uuid, i64)> = sqlx::query_as(
                        "SELECT id, last_sequence FROM read.vehicles WHERE id = ANY($1)",
                    )
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                    let now = Instant::now();
                    let seen: HashMap<Uuid, i64> = seen.into_iter().collect();
                    if let (Ok(mut o), Ok(mut l)) = (outstanding.lock(), lags.lock()) {
                        o.retain(|(id, seq), at| {
                            if seen.get(id).is_some_and(|s| s >= seq) {
                                l.push((*at, now.duration_since(*at).as_secs_f64() * 1000.0));
                                false
                            } else {
                                true
                            }
                        });
                    }
                }
                tokio::time::sleep(watch_every).await;
            }
        })
    };

    eprintln!(
        "[{mode:?}] {} commands/s for {} s after {} s of warm-up",
        args.rate, args.seconds, args.warmup
    );
    let warm = (args.rate * args.warmup) as usize;
    let total = warm + (args.rate * args.seconds) as usize;
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let command_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let started = Instant::now();
    let measured_from = started + interval.mul_f64(warm as f64);
    let mut cpu_from = cpu_jiffies();
    let mut issued = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let measured = i >= warm;
        if i == warm {
            cpu_from = cpu_jiffies();
        }
        let permit = permits.clone().acquire_owned().await?;
        let service = service.clone();
        let outstanding = outstanding.clone();
        let id = ids[i % ids.len()];
        let command_ms = command_ms.clone();
        issued.push(tokio::spawn(async move {
            let sent = Instant::now();
            let done = service
                .update(
                    host,
                    id,
                    UpdateVehicle {
                        patch: VehiclePatch {
                            hourly_rate: Some(10_000 + (i % 5_000) as i64),
                            ..VehiclePatch::default()
                        },
                        ..UpdateVehicle::default()
                    },
                    &meta(host, "UpdateVehicle"),
                )
                .await;
            let at = Instant::now();
            drop(permit);
            if !measured {
                return;
            }
            if let Ok(mut c) = command_ms.lock() {
                c.push(at.duration_since(sent).as_secs_f64() * 1000.0);
            }
            if let Ok(done) = done {
                if let Some(last) = done.events.last() {
                    if let Ok(mut o) = outstanding.lock() {
                        o.insert((id, last.sequence as i64), at);
                    }
                }
            }
        }));
    }
    for task in issued {
        let _ = task.await;
    }
    let elapsed = measured_from.elapsed().as_secs_f64();
    let (busy0, total0) = cpu_from;
    let (busy1, total1) = cpu_jiffies();
    let cpu_busy = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64;
    let drain = Instant::now();
    while outstanding.lock().map(|o| !o.is_empty()).unwrap_or(false)
        && drain.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_watch.cancel();
    let _ = watcher.await;
    shutdown.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let unseen = outstanding.lock().map(|o| o.len()).unwrap_or(0);
    let timed = lags.lock().map(|l| l.clone()).unwrap_or_default();
    let lags_ms: Vec<f64> = timed.iter().map(|(_, lag)| *lag).collect();
    let mut worst_per_second = vec![0.0_f64; args.seconds as usize + 1];
    for (at, lag) in &timed {
        let second = at.saturating_duration_since(measured_from).as_secs() as usize;
        if let Some(w) = worst_per_second.get_mut(second) {
            *w = w.max(*lag);
        }
    }
    db.drop_it().await?;
    Ok(LagReport {
        commands: total - warm,
        rate: (total - warm) as f64 / elapsed,
        lags_ms,
        worst_per_second,
        unseen,
        cpu_busy,
        command_ms: command_ms.lock().map(|c| c.clone()).unwrap_or_default(),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let wanted = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);
    let relay = if wanted("relay") {
        eprintln!("relay throughput: {} events", args.relay_events);
        Some(relay_throughput(&args).await?)
    } else {
        None
    };
    let postgres = if wanted("postgres") {
        Some(lag_run(&args, Mode::Postgres).await?)
    } else {
        None
    };
    let kafka = if wanted("kafka") {
        Some(lag_run(&args, Mode::Kafka).await?)
    } else {
        None
    };

    let mut out = String::new();
    out.push_str(&format!(
        "### Pipeline benchmark\n\nMachine: {}. Postgres and the broker on the same machine.\n\n",
        machine()
    ));
    out.push_str(&format!(
        "Command: `target/release/pipeline-bench --relay-events {} --rate {} --seconds {} --warmup {} --vehicles {} --partitions {} --watch-ms {}`\n\n",
        args.relay_events, args.rate, args.seconds, args.warmup, args.vehicles, args.partitions, args.watch_ms
    ));
    out.push_str("| measure | result | target |\n|---|---|---|\n");
    if let Some((events, relay_rate)) = relay {
        out.push_str(&format!(
            "| relay throughput ({events} events, acks=all, idempotent) | {relay_rate:.0} events/s | ≥ 20,000 |\n"
        ));
    }
    for (name, report, target) in [
        ("Postgres stream", &postgres, "p99 < 100 ms"),
        ("Kafka", &kafka, "p99 < 250 ms"),
    ] {
        let Some(report) = report else {
            continue;
        };
        let (p50, p95, p99, max) = millis(report.lags_ms.clone());
        let (c50, _, c99, _) = millis(report.command_ms.clone());
        out.push_str(&format!(
            "| commit → read table, {name}, {} commands at {:.0}/s (CPU {:.0}% busy; command p50 {c50:.1} ms, p99 {c99:.1} ms) | p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} never seen) | {target} |\n",
            report.commands, report.rate, report.cpu_busy * 100.0, report.unseen
        ));
    }
    // Where the tail comes from: spread evenly, or a few stalls.
    for (name, report) in [("Postgres stream", &postgres), ("Kafka", &kafka)] {
        if let Some(report) = report {
            let worst: Vec<String> = report
                .worst_per_second
                .iter()
                .map(|w| format!("{w:.0}"))
                .collect();
            out.push_str(&format!(
                "\nWorst lag of the commands committed in each second, {name} (ms): {}\n",
                worst.join(" ")
            ));
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!("{out}");
    }
    Ok(())
}

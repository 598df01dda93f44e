//! Faults under load. Drives a mixed load — search, book, approve, pay through a Toss stub,
//! cancel — against the system as it runs in production (two `carshare serve` processes, two
//! `carshare relay` processes, two `carshare project` workers in a Kafka consumer group), and
//! injects one fault after another while the load runs:
//!
//! - `kill -9` of an API process, of the active relay and of a projection worker (each
//!   restarted a few seconds later, as a supervisor would);
//! - the broker stopped (SIGSTOP: the test broker keeps its log in memory, so it is frozen, not
//!   restarted) for `--broker-pause` seconds;
//! - PostgreSQL restarted; Redis restarted;
//! - the Toss stub answering 5xx, then hanging.
//!
//! Afterwards it checks that no accepted command was lost (every 2xx command's event is in the
//! store), that no car is booked twice, that every event reached Kafka (in per-aggregate order),
//! that every read table equals a rebuild from the log, that no event was dead-lettered, that
//! the settlement audit is clean and that no request was answered with a 5xx other than 503. It
//! prints a table of the faults and of the checks, and exits non-zero if a check failed.
//!
//! ```sh
//! cargo build --release -p carshare-api -p carshare-tests --bin fault-runner
//! target/release/fault-runner
//! ```
//!
//! It restarts the machine's PostgreSQL and Redis: run it alone, not beside the test suite.

use anyhow::{bail, Context, Result};
use carshare_api::auth::TokenKeys;
use carshare_domain::Role;
use carshare_event_store::kafka::KafkaSettings;
use carshare_event_store::relay;
use carshare_projections::rebuild::{self, RebuildSettings};
use carshare_tests::kafka::{first_arrivals, stored_keys, PrivateBroker, TopicReader};
use carshare_tests::{redis_url, TestDatabase};
use chrono::{DateTime, DurationRound, Utc};
use clap::Parser;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "fault-runner-secret-fault-runner-secret";
const TOSS_KEY: &str = "test_sk_faults";
const FAULTS: &[&str] = &[
    "api",
    "relay",
    "worker",
    "broker",
    "postgres",
    "redis",
    "toss-5xx",
    "toss-hang",
];

#[derive(Debug, Parser)]
#[command(about = "Inject faults under a mixed load and check that nothing was lost")]
struct Args {
    /// The `carshare` binary.
    #[arg(long, default_value = "target/release/carshare")]
    binary: PathBuf,
    /// Faults to inject, in order (comma-separated): api, relay, worker, broker, postgres,
    /// redis, toss-5xx, toss-hang.
    #[arg(long, value_delimiter = ',', default_values_t = FAULTS.iter().map(|s| s.to_string()))]
    faults: Vec<String>,
    /// Seconds of load before the first fault, and after each recovery.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Seconds the broker stays stopped.
    #[arg(long, default_value_t = 60)]
    broker_pause: u64,
    /// Seconds the Toss stub fails (each of 5xx and hang).
    #[arg(long, default_value_t = 15)]
    toss_outage: u64,
    /// Concurrent clients of the load.
    #[arg(long, default_value_t = 12)]
    clients: usize,
    /// Cars to book.
    #[arg(long, default_value_t = 150)]
    vehicles: usize,
    /// The longest an answer may take, outage or not (the API's database and Redis timeouts
    /// are 3–10 s; Toss's per-attempt timeout is set to 2 s here).
    #[arg(long, default_value_t = 15)]
    max_latency: u64,
    /// Seconds before a killed process is started again, as a supervisor's restart delay. Keep
    /// it above the consumer group's session timeout (6 s here): tansu 0.6 forms a group at
    /// once when a member joins while a killed member's session is still open, hands that dead
    /// member partitions, and leaves them unconsumed (Apache Kafka's coordinator instead waits
    /// for the rebalance and expires the dead member).
    #[arg(long, default_value_t = 10)]
    restart_after: u64,
    /// Where process logs go.
    #[arg(long, default_value = "target/fault-runner")]
    logs: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// Processes

/// One process of the system, restartable.
struct Proc {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    binary: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) -> Result<()> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown hook runs.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn sh(cmd: &str) -> Result<()> {
    let status = Command::new("bash").arg("-c").arg(cmd).status()?;
    if !status.success() {
        bail!("`{cmd}` failed: {status}");
    }
    Ok(())
}

fn restart_postgres() -> Result<()> {
    sh("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -1) main restart")
}

fn restart_redis() -> Result<()> {
    // The machine's Redis keeps nothing on disk: a restart loses every key (revocations, rate
    // windows, pub/sub subscriptions), as a failed-over cache without persistence would.
    let _ = sh("redis-cli -h 127.0.0.1 -p 6379 shutdown nosave");
    std::thread::sleep(Duration::from_secs(2));
    sh("mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
        --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log")
}

// ---------------------------------------------------------------------------------------------
// The Toss stub: confirms and cancels like Toss, or fails on demand.

const TOSS_OK: u8 = 0;
const TOSS_5XX: u8 = 1;
const TOSS_HANG: u8 = 2;

struct TossStub {
    mode: Arc<AtomicU8>,
}

impl Respond for TossStub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match self.mode.load(Ordering::SeqCst) {
            TOSS_5XX => {
                return ResponseTemplate::new(500).set_body_json(json!({
                    "code": "FAILED_INTERNAL_SYSTEM_PROCESSING",
                    "message": "내부 시스템 처리 작업이 실패했습니다. 잠시 후 다시 시도해주세요."
                }))
            }
            TOSS_HANG => {
                return ResponseTemplate::new(500).set_delay(Duration::from_secs(3600));
            }
            _ => {}
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let path = request.url.path();
        if path == "/v1/payments/confirm" {
            let now = Utc::now().to_rfc3339();
            ResponseTemplate::new(200).set_body_json(json!({
                "mId": "tosspayments", "version": "2022-11-16",
                "paymentKey": body["paymentKey"], "orderId": body["orderId"],
                "orderName": "차량 예약", "status": "DONE", "method": "카드",
                "totalAmount": body["amount"], "balanceAmount": body["amount"],
                "requestedAt": now, "approvedAt": now,
            }))
        } else if let Some(key) = path
            .strip_prefix("/v1/payments/")
            .and_then(|p| p.strip_suffix("/cancel"))
        {
            ResponseTemplate::new(200).set_body_json(json!({
                "paymentKey": key, "status": "CANCELED",
                "cancels": [{"transactionKey": format!("tx_{}", Uuid::new_v4().simple()),
                             "cancelAmount": body["cancelAmount"], "cancelReason": body["cancelReason"]}],
            }))
        } else {
            ResponseTemplate::new(404).set_body_json(
                json!({"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 정보 입니다."}),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The load

/// What happened in one phase.
#[derive(Debug, Default, Clone)]
struct PhaseStats {
    requests: usize,
    ok: usize,
    conflict: usize,
    other_4xx: usize,
    unavailable: usize,
    server_error: usize,
    transport: usize,
    max_latency: Duration,
    ok_after_recovery: usize,
    codes: BTreeMap<String, usize>,
    server_errors: Vec<String>,
}

/// A command answered 2xx, and the event it must have written.
#[derive(Debug, Clone)]
struct Accepted {
    aggregate_type: &'static str,
    id: String,
    event: &'static str,
}

struct Load {
    http: reqwest::Client,
    apis: Vec<String>,
    next_api: AtomicUsize,
    cars: Vec<(String, usize)>,
    hosts: Vec<String>,
    guests: Vec<String>,
    stop: AtomicBool,
    phase: Mutex<(String, Option<Instant>)>,
    stats: Mutex<Vec<(String, PhaseStats)>>,
    accepted: Mutex<Vec<Accepted>>,
    day0: DateTime<Utc>,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Load {
    fn record(&self, f: impl FnOnce(&mut PhaseStats, Option<Instant>)) {
        let (phase, recovered) = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        if let Ok(mut stats) = self.stats.lock() {
            if stats.last().map(|(p, _)| p != &phase).unwrap_or(true) {
                stats.push((phase, PhaseStats::default()));
            }
            if let Some((_, s)) = stats.last_mut() {
                f(s, recovered);
            }
        }
    }

    /// Sends a request to one API instance (round robin); an instance that refuses the
    /// connection is skipped, as a load balancer would.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Option<Answer> {
        let started = Instant::now();
        let first = self.next_api.fetch_add(1, Ordering::Relaxed);
        let mut outcome = Err(String::new());
        for attempt in 0..self.apis.len() {
            let base = &self.apis[(first + attempt) % self.apis.len()];
            let mut req = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(token);
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body = res.json::<Value>().await.unwrap_or(Value::Null);
                    outcome = Ok(Answer { status, body });
                    break;
                }
                Err(e) if e.is_connect() => outcome = Err(e.to_string()),
                Err(e) => {
                    outcome = Err(e.to_string());
                    break;
                }
            }
        }
        let latency = started.elapsed();
        let label = format!("{method} {}", path.split('?').next().unwrap_or(path));
        self.record(|s, recovered| {
            s.requests += 1;
            s.max_latency = s.max_latency.max(latency);
            match &outcome {
                Err(_) => s.transport += 1,
                Ok(a) => {
                    match a.status {
                        200..=299 => {
                            s.ok += 1;
                            if recovered.is_some_and(|r| started >= r) {
                                s.ok_after_recovery += 1;
                            }
                        }
                        409 => s.conflict += 1,
                        503 => s.unavailable += 1,
                        500..=599 => {
                            s.server_error += 1;
                            s.server_errors
                                .push(format!("{label}: {} {}", a.status, a.body));
                        }
                        _ => s.other_4xx += 1,
                    }
                    if !(200..300).contains(&a.status) {
                        let code = a.body["error"]["code"].as_str().unwrap_or("-");
                        *s.codes.entry(format!("{} {code}", a.status)).or_default() += 1;
                    }
                }
            }
        });
        outcome.ok()
    }

    fn accept(&self, aggregate_type: &'static str, id: &str, event: &'static str) {
        if let Ok(mut a) = self.accepted.lock() {
            a.push(Accepted {
                aggregate_type,
                id: id.to_string(),
                event,
            });
        }
    }

    /// One guest's visit: a search, or a booking taken as far as the dice allow.
    async fn visit(&self, guest: &str) {
        let (car, host, start, end, roll) = {
            let mut rng = rand::rng();
            let (car, host) = self.cars[rng.random_range(0..self.cars.len())].clone();
            let start = self.day0
                + chrono::Duration::days(rng.random_range(0..20))
                + chrono::Duration::minutes(10 * rng.random_range(0..72));
            let end = start + chrono::Duration::minutes(60 + 30 * rng.random_range(0..6));
            (car, host, start, end, rng.random::<f64>())
        };
        // A trip taken now: picked up and returned at once (pickup opens 30 minutes before the
        // start), so the settlement has something to settle.
        let trip = (0.32..0.45).contains(&roll);
        let (start, end) = if trip {
            let soon = (Utc::now() + chrono::Duration::minutes(11))
                .duration_trunc(chrono::Duration::minutes(10))
                .unwrap_or(start);
            (soon, soon + chrono::Duration::hours(1))
        } else {
            (start, end)
        };
        if roll < 0.25 {
            let path = format!(
                "/v1/vehicles?lat=37.55&lng=126.98&radius_km=20&start_datetime={}&end_datetime={}",
                urlencode(&start.to_rfc3339()),
                urlencode(&end.to_rfc3339())
            );
            self.call(reqwest::Method::GET, &path, guest, None).await;
            return;
        }
        let body = json!({
            "vehicle_id": car, "start_datetime": start.to_rfc3339(),
            "end_datetime": end.to_rfc3339(), "guest_message": "부하 시험",
        });
        let Some(a) = self
            .call(reqwest::Method::POST, "/v1/bookings", guest, Some(&body))
            .await
        else {
            return;
        };
        if a.status != 201 {
            return;
        }
        let Some(id) = a.body["id"].as_str().map(str::to_string) else {
            return;
        };
        self.accept("Booking", &id, "BookingRequested");
        let host = &self.hosts[host];
        if roll < 0.32 {
            let path = format!("/v1/bookings/{id}/reject");
            let body = json!({"host_response": "일정이 맞지 않습니다"});
            if let Some(a) = self
                .call(reqwest::Method::PUT, &path, host, Some(&body))
                .await
            {
                if a.status == 200 {
                    self.accept("Booking", &id, "BookingRejected");
                }
            }
            return;
        }
        let path = format!("/v1/bookings/{id}/approve");
        let Some(a) = self
            .call(reqwest::Method::PUT, &path, host, Some(&json!({})))
            .await
        else {
            return;
        };
        if a.status != 200 {
            return;
        }
        self.accept("Booking", &id, "BookingApproved");
        let (Some(order), Some(amount)) = (
            a.body["payment"]["order_id"].as_str().map(str::to_string),
            a.body["payment"]["amount"].as_i64(),
        ) else {
            return;
        };
        let pay = json!({
            "booking_id": id, "payment_key": format!("pk_{}", Uuid::new_v4().simple()),
            "order_id": order, "amount": amount,
        });
        let Some(a) = self
            .call(
                reqwest::Method::POST,
                "/v1/payments/process",
                guest,
                Some(&pay),
            )
            .await
        else {
            return;
        };
        if a.status != 200 {
            return;
        }
        self.accept("Payment", &id, "PaymentConfirmed");
        if trip {
            for (step, event) in [
                ("start", "BookingStarted"),
                ("complete", "BookingCompleted"),
            ] {
                let path = format!("/v1/bookings/{id}/{step}");
                match self
                    .call(reqwest::Method::POST, &path, guest, Some(&json!({})))
                    .await
                {
                    Some(a) if a.status == 200 => self.accept("Booking", &id, event),
                    _ => return,
                }
            }
            return;
        }
        if roll > 0.75 {
            let path = format!("/v1/bookings/{id}/cancel");
            let body = json!({"reason": "일정 변경"});
            if let Some(a) = self
                .call(reqwest::Method::PUT, &path, guest, Some(&body))
                .await
            {
                if a.status == 200 {
                    self.accept("Booking", &id, "BookingCancelled");
                }
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Waiting and checking

async fn head(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(pool)
            .await?,
    )
}

/// Messages on the broker that a projection has not committed yet: for every projection, topic
/// and partition, the partition's end (asked from the broker) minus the projection's committed
/// offset. Unlike the projections' own lag figure, this does not trust a high watermark the
/// worker last saw.
async fn kafka_backlog(
    pool: &PgPool,
    kafka: &KafkaSettings,
    consumer: &BaseConsumer,
) -> Result<i64> {
    let committed: Vec<(String, String, i32, i64)> =
        sqlx::query_as("SELECT projection, topic, partition, next_offset FROM projection_offsets")
            .fetch_all(pool)
            .await?;
    let mut backlog = 0;
    for projection in carshare_projections::all() {
        for aggregate_type in projection.aggregate_types() {
            let topic = kafka.topic(aggregate_type);
            for partition in 0..kafka.partitions {
                let end = match consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5))
                {
                    Ok((_, high)) => high,
                    Err(e) if e.to_string().contains("Unknown topic") => 0,
                    Err(e) => return Err(e.into()),
                };
                let next = committed
                    .iter()
                    .find(|(p, t, n, _)| p == projection.name() && *t == topic && *n == partition)
                    .map_or(0, |c| c.3);
                backlog += (end - next).max(0);
            }
        }
    }
    Ok(backlog)
}

/// Waits until the relay published everything and every projection committed every message.
async fn wait_caught_up(
    pool: &PgPool,
    prefix: &str,
    kafka: &KafkaSettings,
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    let consumer: BaseConsumer = kafka.client_config().create()?;
    let mut last = String::new();
    while started.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (Ok(status), Ok(head)) = (relay::status(pool, prefix).await, head(pool).await) else {
            continue;
        };
        if status.position != head || status.lag_events != 0 {
            last = format!("relay at {} of {head}", status.position);
            continue;
        }
        match kafka_backlog(pool, kafka, &consumer).await {
            Ok(0) => return Ok(started.elapsed()),
            Ok(n) => last = format!("{n} messages not yet applied"),
            Err(e) => last = e.to_string(),
        }
    }
    bail!("the relay and the projections did not catch up within {timeout:?} ({last})")
}

struct Check {
    name: String,
    ok: bool,
    detail: String,
}

async fn check_accepted(pool: &PgPool, accepted: &[Accepted]) -> Result<Check> {
    let stored: HashSet<(String, String, String)> = sqlx::query_as::<_, (String, String, String)>(
        "SELECT aggregate_type, aggregate_id, event_type FROM events",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let missing: Vec<&Accepted> = accepted
        .iter()
        .filter(|a| {
            !stored.contains(&(
                a.aggregate_type.to_string(),
                a.id.clone(),
                a.event.to_string(),
            ))
        })
        .collect();
    Ok(Check {
        name: "no accepted command lost".into(),
        ok: missing.is_empty(),
        detail: format!(
            "{} commands answered 2xx, {} without their event{}",
            accepted.len(),
            missing.len(),
            missing
                .first()
                .map(|m| format!(" (first: {m:?})"))
                .unwrap_or_default()
        ),
    })
}

async fn check_double_bookings(pool: &PgPool) -> Result<Check> {
    let (holding, overlaps): (i64, i64) = sqlx::query_as(
        "WITH held AS (SELECT id, vehicle_id, tstzrange(start_datetime, end_datetime) AS w \
           FROM read.bookings WHERE status IN ('pending', 'approved', 'active')) \
         SELECT (SELECT count(*) FROM held), \
                (SELECT count(*) FROM held a JOIN held b \
                   ON a.vehicle_id = b.vehicle_id AND a.id < b.id AND a.w && b.w)",
    )
    .fetch_one(pool)
    .await?;
    // The write side's own record: every booking that holds its car has exactly one
    // reservation in the vehicle's log that was not released.
    let (reserved, released): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'WindowReserved'), \
                count(*) FILTER (WHERE event_type = 'ReservationReleased') \
           FROM events WHERE aggregate_type = 'Vehicle'",
    )
    .fetch_one(pool)
    .await?;
    Ok(Check {
        name: "no double booking".into(),
        ok: overlaps == 0 && reserved - released == holding,
        detail: format!(
            "{holding} bookings hold a car, {overlaps} overlapping pairs; log: {reserved} reserved − {released} released = {}",
            reserved - released
        ),
    })
}

async fn check_kafka(pool: &PgPool, kafka: &KafkaSettings) -> Result<Check> {
    let stored = stored_keys(pool).await;
    let types: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT aggregate_type FROM events ORDER BY 1")
            .fetch_all(pool)
            .await?;
    let topics: Vec<String> = types.iter().map(|t| kafka.topic(t)).collect();
    let reader = TopicReader::new(kafka, &topics).await;
    let received = reader
        .read_until(Duration::from_secs(180), |got| {
            let distinct: HashSet<(&str, &str, i64)> = got
                .iter()
                .map(|r| {
                    (
                        r.event.aggregate_type.as_str(),
                        r.event.aggregate_id.as_str(),
                        r.event.sequence,
                    )
                })
                .collect();
            distinct.len() >= stored.len()
        })
        .await;
    let (per_aggregate, repeats) = first_arrivals(&received);
    let arrived: HashSet<(String, String, i64)> = per_aggregate
        .iter()
        .flat_map(|((t, id), seqs)| seqs.iter().map(move |s| (t.clone(), id.clone(), *s)))
        .collect();
    let missing = stored.difference(&arrived).count();
    let extra = arrived.difference(&stored).count();
    let out_of_order = per_aggregate
        .values()
        .filter(|seqs| **seqs != (1..=seqs.len() as i64).collect::<Vec<_>>())
        .count();
    Ok(Check {
        name: "every event on Kafka, in order".into(),
        ok: missing == 0 && extra == 0 && out_of_order == 0,
        detail: format!(
            "{} events stored, {} messages read ({repeats} repeats absorbed); missing {missing}, unknown {extra}, aggregates out of order {out_of_order}",
            stored.len(),
            received.len()
        ),
    })
}

async fn table_rows(pool: &PgPool, table: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT t::text FROM read.{table} t ORDER BY t::text"
    ))
    .fetch_all(pool)
    .await?)
}

async fn check_rebuilds(pool: &PgPool) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for projection in carshare_projections::all() {
        let mut live = Vec::new();
        for table in projection.tables() {
            live.push(table_rows(pool, table).await?);
        }
        let report = rebuild::rebuild(pool, &*projection, RebuildSettings::default(), |_, _| {})
            .await
            .with_context(|| format!("rebuilding {}", projection.name()))?;
        let mut details = Vec::new();
        let mut ok = report.dead_letters == 0;
        for (table, live) in projection.tables().iter().zip(live) {
            let rebuilt = table_rows(pool, table).await?;
            let live_set: HashSet<&String> = live.iter().collect();
            let rebuilt_set: HashSet<&String> = rebuilt.iter().collect();
            let only_live = live_set.difference(&rebuilt_set).count();
            let only_rebuilt = rebuilt_set.difference(&live_set).count();
            if only_live + only_rebuilt > 0 {
                ok = false;
                let example = live_set
                    .difference(&rebuilt_set)
                    .next()
                    .map(|r| format!("; live only: {}", truncate(r, 300)))
                    .unwrap_or_default();
                let example2 = rebuilt_set
                    .difference(&live_set)
                    .next()
                    .map(|r| format!("; rebuilt only: {}", truncate(r, 300)))
                    .unwrap_or_default();
                details.push(format!(
                    "read.{table}: {} rows live, {} rebuilt, {only_live}/{only_rebuilt} differ{example}{example2}",
                    live.len(),
                    rebuilt.len()
                ));
            } else {
                details.push(format!("read.{table}: {} rows identical", live.len()));
            }
        }
        checks.push(Check {
            name: format!("`{}` equals a rebuild", projection.name()),
            ok,
            detail: format!("{} ({} events replayed)", details.join(", "), report.events),
        });
    }
    Ok(checks)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

// ---------------------------------------------------------------------------------------------

struct System {
    apis: Vec<Proc>,
    relays: Vec<Proc>,
    workers: Vec<Proc>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    for f in &args.faults {
        if !FAULTS.contains(&f.as_str()) {
            bail!("unknown fault `{f}` (known: {})", FAULTS.join(", "));
        }
    }
    let binary = std::fs::canonicalize(&args.binary).with_context(|| {
        format!(
            "{} (cargo build --release -p carshare-api)",
            args.binary.display()
        )
    })?;
    std::fs::create_dir_all(&args.logs)?;
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    let logs = args.logs.join(&run);
    std::fs::create_dir_all(&logs)?;

    let db = TestDatabase::create().await;
    let broker = PrivateBroker::start().await;
    let prefix = format!("faults{run}");
    let mut kafka = KafkaSettings::new(&broker.brokers);
    kafka.topic_prefix = prefix.clone();
    kafka.group_prefix = prefix.clone();
    kafka.partitions = 4;
    kafka.client_id = format!("fault-runner-{run}");

    let toss = MockServer::start().await;
    let toss_mode = Arc::new(AtomicU8::new(TOSS_OK));
    Mock::given(wiremock::matchers::any())
        .respond_with(TossStub {
            mode: toss_mode.clone(),
        })
        .mount(&toss)
        .await;

    let common: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis_url()),
        ("REDIS_KEY_PREFIX", format!("faults:{run}:")),
        ("JWT_SECRET", SECRET.into()),
        ("KAFKA_BROKERS", broker.brokers.clone()),
        ("KAFKA_TOPIC_PREFIX", prefix.clone()),
        ("KAFKA_TOPIC_PARTITIONS", "4".into()),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000".into()),
        ("TOSS_SECRET_KEY", TOSS_KEY.into()),
        ("TOSS_BASE_URL", toss.uri()),
        ("TOSS_TIMEOUT_MS", "2000".into()),
        ("RATE_LIMIT_IP_PER_MINUTE", "100000000".into()),
        ("RATE_LIMIT_USER_PER_HOUR", "100000000".into()),
        ("READ_YOUR_WRITES_TIMEOUT_MS", "1000".into()),
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", "warn".into()),
        (
            "STORAGE_DIR",
            logs.join("uploads").to_string_lossy().into_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let proc = |name: &str, args: &[&str], extra: &[(&str, String)]| Proc {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: common
            .iter()
            .cloned()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .collect(),
        binary: binary.clone(),
        log: logs.join(format!("{name}.log")),
        child: None,
    };
    let mut system = System {
        apis: Vec::new(),
        relays: Vec::new(),
        workers: Vec::new(),
    };
    let mut bases = Vec::new();
    for name in ["api-a", "api-b"] {
        let port = free_port()?;
        bases.push(format!("http://127.0.0.1:{port}"));
        system.apis.push(proc(
            name,
            &["serve"],
            &[
                ("HOST", "127.0.0.1".into()),
                ("PORT", port.to_string()),
                ("RUN_RELAY", "false".into()),
                ("RUN_PROJECTIONS", "false".into()),
            ],
        ));
    }
    for name in ["relay-1", "relay-2"] {
        system.relays.push(proc(name, &["relay"], &[]));
    }
    for name in ["worker-1", "worker-2"] {
        system.workers.push(proc(name, &["project"], &[]));
    }
    for p in system
        .apis
        .iter_mut()
        .chain(&mut system.relays)
        .chain(&mut system.workers)
    {
        p.spawn()?;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.max_latency + 20))
        .build()?;
    for base in &bases {
        wait_ready(&http, base).await?;
    }
    eprintln!("fault runner {run}: system up; logs in {}", logs.display());

    // ---- Cars and people.
    let keys = TokenKeys::new(&SecretString::from(SECRET), Duration::from_secs(6 * 3600));
    let hosts: Vec<String> = (0..10)
        .map(|_| keys.issue(Uuid::new_v4(), Role::Host).map(|t| t.0))
        .collect::<Result<_, _>>()?;
    let guests: Vec<String> = (0..args.clients * 4)
        .map(|_| keys.issue(Uuid::new_v4(), Role::Guest).map(|t| t.0))
        .collect::<Result<_, _>>()?;
    let mut cars = Vec::new();
    for i in 0..args.vehicles {
        let host = i % hosts.len();
        let (lat, lng) = (
            37.45 + (i % 30) as f64 * 0.007,
            126.85 + (i / 30) as f64 * 0.02,
        );
        let res = http
            .post(format!("{}/v1/vehicles", bases[i % 2]))
            .bearer_auth(&hosts[host])
            .json(&json!({
                "license_plate": format!("{:02}하{:04}", 10 + i / 10_000, i % 10_000),
                "make": "현대", "model": "아이오닉 5", "year": 2024, "hourly_rate": 15_000,
                "location_address": "서울특별시 중구 세종대로 110",
                "location_lat": lat, "location_lng": lng,
            }))
            .send()
            .await?;
        if res.status() != 201 {
            bail!(
                "registering a car answered {}: {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
        let v: Value = res.json().await?;
        cars.push((v["id"].as_str().unwrap_or_default().to_string(), host));
    }
    let day0 =
        (Utc::now() + chrono::Duration::days(2)).duration_trunc(chrono::Duration::days(1))?;
    let load = Arc::new(Load {
        http: http.clone(),
        apis: bases.clone(),
        next_api: AtomicUsize::new(0),
        cars,
        hosts,
        guests,
        stop: AtomicBool::new(false),
        phase: Mutex::new(("baseline".into(), Some(Instant::now()))),
        stats: Mutex::new(Vec::new()),
        accepted: Mutex::new(Vec::new()),
        day0,
    });
    let mut clients = Vec::new();
    let stride = args.clients;
    for c in 0..args.clients {
        let load = load.clone();
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while !load.stop.load(Ordering::Relaxed) {
                let guest = load.guests[i % load.guests.len()].clone();
                load.visit(&guest).await;
                i += stride;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.settle)).await;

    // ---- The faults, one after another.
    let set_phase = |name: &str, recovered: Option<Instant>| {
        if let Ok(mut p) = load.phase.lock() {
            *p = (name.to_string(), recovered);
        }
    };
    let mut injected: Vec<(String, String)> = Vec::new();
    for fault in &args.faults {
        let label = match fault.as_str() {
            "api" => format!(
                "kill -9 an API process (restarted after {} s)",
                args.restart_after
            ),
            "relay" => format!(
                "kill -9 the active relay (restarted after {} s)",
                args.restart_after
            ),
            "worker" => format!(
                "kill -9 a projection worker (restarted after {} s)",
                args.restart_after
            ),
            "broker" => format!("broker stopped (SIGSTOP) for {} s", args.broker_pause),
            "postgres" => "PostgreSQL restarted".to_string(),
            "redis" => "Redis restarted (its keys lost)".to_string(),
            "toss-5xx" => format!("Toss answers 500 for {} s", args.toss_outage),
            _ => format!("Toss hangs for {} s", args.toss_outage),
        };
        eprintln!("fault: {label}");
        set_phase(fault, None);
        let note = match fault.as_str() {
            "api" => {
                system.apis[0].kill9();
                tokio::time::sleep(Duration::from_secs(args.restart_after)).await;
                system.apis[0].spawn()?;
                wait_ready(&http, &bases[0]).await?;
                String::new()
            }
            "relay" => {
                let owner = relay::status(&db.pool, &prefix).await?.owner;
                system.relays[0].kill9();
                tokio::time::sleep(Duration::from_secs(args.restart_after)).await;
                system.relays[0].spawn()?;
                format!("owner before: {}", owner.unwrap_or_else(|| "-".into()))
            }
            "worker" => {
                system.workers[0].kill9();
                tokio::time::sleep(Duration::from_secs(args.restart_after)).await;
                system.workers[0].spawn()?;
                String::new()
            }
            "broker" => {
                broker.pause();
                tokio::time::sleep(Duration::from_secs(args.broker_pause)).await;
                let ready = http.get(format!("{}/ready", bases[1])).send().await;
                let ready = match ready {
                    Ok(r) => format!(
                        "/ready during the outage: {} {}",
                        r.status().as_u16(),
                        r.json::<Value>()
                            .await
                            .map(|v| format!(
                                "{}, relay {} ({} events behind)",
                                v["status"], v["relay"]["status"], v["relay"]["lag_events"]
                            ))
                            .unwrap_or_default()
                    ),
                    Err(e) => format!("/ready failed: {e}"),
                };
                broker.resume();
                ready
            }
            "postgres" => {
                let t = Instant::now();
                tokio::task::spawn_blocking(restart_postgres).await??;
                format!("restart took {:.1} s", t.elapsed().as_secs_f64())
            }
            "redis" => {
                let t = Instant::now();
                tokio::task::spawn_blocking(restart_redis).await??;
                format!("restart took {:.1} s", t.elapsed().as_secs_f64())
            }
            "toss-5xx" => {
                toss_mode.store(TOSS_5XX, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(args.toss_outage)).await;
                toss_mode.store(TOSS_OK, Ordering::SeqCst);
                String::new()
            }
            _ => {
                toss_mode.store(TOSS_HANG, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(args.toss_outage)).await;
                toss_mode.store(TOSS_OK, Ordering::SeqCst);
                String::new()
            }
        };
        set_phase(fault, Some(Instant::now()));
        injected.push((
            fault.clone(),
            format!(
                "{label}{}",
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" — {note}")
                }
            ),
        ));
        // The breaker of the payment client stays open for 30 s after an outage of Toss.
        let settle = if fault.starts_with("toss") {
            args.settle.max(35)
        } else {
            args.settle
        };
        tokio::time::sleep(Duration::from_secs(settle)).await;
    }

    // ---- Stop the load; let the pipeline finish.
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    for p in system
        .apis
        .iter_mut()
        .chain(&mut system.relays)
        .chain(&mut system.workers)
    {
        if !p.alive() {
            eprintln!("{} had exited; restarting it", p.name);
            p.spawn()?;
        }
    }
    let mut caught_up = wait_caught_up(&db.pool, &prefix, &kafka, Duration::from_secs(300)).await;
    // Finance settles the finished trips; the audit then has settlements to recompute.
    let admin = keys.issue(Uuid::new_v4(), Role::Admin)?.0;
    let settled = http
        .post(format!("{}/v1/payments/settle", bases[0]))
        .bearer_auth(&admin)
        .json(&json!({"cutoff": (Utc::now() + chrono::Duration::hours(2)).to_rfc3339()}))
        .send()
        .await?;
    let settle_status = settled.status().as_u16();
    let settlements: Value = settled.json().await.unwrap_or(Value::Null);
    let settled_lines: usize = settlements
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["lines"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    if caught_up.is_ok() {
        caught_up = wait_caught_up(&db.pool, &prefix, &kafka, Duration::from_secs(120)).await;
    }

    // ---- Checks.
    let accepted = load.accepted.lock().map(|a| a.clone()).unwrap_or_default();
    let stats = load.stats.lock().map(|s| s.clone()).unwrap_or_default();
    let mut checks = vec![Check {
        name: "pipeline caught up".into(),
        ok: caught_up.is_ok(),
        detail: match &caught_up {
            Ok(d) => format!(
                "relay and workers at the head {:.1} s after the load stopped",
                d.as_secs_f64()
            ),
            Err(e) => e.to_string(),
        },
    }];
    checks.push(check_accepted(&db.pool, &accepted).await?);
    checks.push(check_double_bookings(&db.pool).await?);
    checks.push(check_kafka(&db.pool, &kafka).await?);
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&db.pool)
        .await?;
    checks.push(Check {
        name: "no dead letters".into(),
        ok: dead == 0,
        detail: format!("{dead} events could not be applied"),
    });
    // Workers stop before the rebuilds so nothing moves under the comparison.
    system.workers.clear();
    checks.extend(check_rebuilds(&db.pool).await?);
    let audit = Command::new(&binary)
        .args(["audit", "settlements"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()?;
    let audit_out: Value = serde_json::from_slice(&audit.stdout).unwrap_or(Value::Null);
    checks.push(Check {
        name: "settlement audit clean".into(),
        ok: audit.status.success() && settle_status == 200,
        detail: format!(
            "settle answered {settle_status} ({} settlements, {settled_lines} trips); `carshare audit settlements` exit {}: {} settlements recomputed from {} events, {} discrepancies",
            settlements.as_array().map_or(0, Vec::len),
            audit.status.code().unwrap_or(-1),
            audit_out["settlements_checked"],
            audit_out["events_read"],
            audit_out["discrepancies"].as_array().map_or(0, |d| d.len())
        ),
    });
    let server_errors: Vec<&String> = stats.iter().flat_map(|(_, s)| &s.server_errors).collect();
    checks.push(Check {
        name: "no 5xx but 503".into(),
        ok: server_errors.is_empty(),
        detail: format!(
            "{} answers{}",
            server_errors.len(),
            server_errors
                .first()
                .map(|e| format!(" (first: {})", truncate(e, 300)))
                .unwrap_or_default()
        ),
    });
    let slow: Vec<&str> = stats
        .iter()
        .filter(|(_, s)| s.max_latency > Duration::from_secs(args.max_latency))
        .map(|(p, _)| p.as_str())
        .collect();
    checks.push(Check {
        name: format!("no answer slower than {} s", args.max_latency),
        ok: slow.is_empty(),
        detail: if slow.is_empty() {
            "every phase".into()
        } else {
            format!("slower in: {}", slow.join(", "))
        },
    });
    let unrecovered: Vec<&str> = stats
        .iter()
        .filter(|(p, s)| p != "baseline" && s.ok_after_recovery == 0)
        .map(|(p, _)| p.as_str())
        .collect();
    checks.push(Check {
        name: "recovered by itself".into(),
        ok: unrecovered.is_empty(),
        detail: if unrecovered.is_empty() {
            "2xx answers after every fault".into()
        } else {
            format!("no 2xx after: {}", unrecovered.join(", "))
        },
    });

    // ---- Report.
    println!("### Faults under load ({})", machine());
    println!();
    println!("Command: `target/release/fault-runner --faults {} --settle {} --broker-pause {} --toss-outage {} --clients {} --vehicles {}`",
        args.faults.join(","), args.settle, args.broker_pause, args.toss_outage, args.clients, args.vehicles);
    println!();
    println!("| phase | fault | requests | 2xx | 409 | 503 | other 4xx | other 5xx | no answer | slowest | 2xx after recovery | refusals |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (phase, s) in &stats {
        let label = injected
            .iter()
            .find(|(f, _)| f == phase)
            .map(|(_, l)| l.as_str())
            .unwrap_or("none (load only)");
        let codes: Vec<String> = s.codes.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
        println!(
            "| {phase} | {label} | {} | {} | {} | {} | {} | {} | {} | {:.2} s | {} | {} |",
            s.requests,
            s.ok,
            s.conflict,
            s.unavailable,
            s.other_4xx,
            s.server_error,
            s.transport,
            s.max_latency.as_secs_f64(),
            s.ok_after_recovery,
            codes.join(", ")
        );
    }
    println!();
    println!("| check | result | detail |");
    println!("|---|---|---|");
    for c in &checks {
        println!(
            "| {} | {} | {} |",
            c.name,
            if c.ok { "✔" } else { "✗" },
            c.detail
        );
    }
    drop(system);
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        bail!("{failed} checks failed; process logs in {}", logs.display());
    }
    Ok(())
}

/// The machine, for the report.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> Result<()> {
    for _ in 0..300 {
        if let Ok(res) = http.get(format!("{base}/ready")).send().await {
            if res.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{base} did not become ready")
}

//! Helpers shared by the benchmark programs.

pub mod http1;

use rand::rngs::StdRng;
use rand::Rng;

/// The `p`th percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// p50, p95, p99 and maximum of the values.
pub fn millis(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&v, 50.0),
        percentile(&v, 95.0),
        percentile(&v, 99.0),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

/// A memory figure (`VmRSS:`, `VmHWM:`) of a process, in KiB.
pub fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "{cores} cores ({cpu}), {:.0} GiB RAM",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

/// A random point: 60% greater Seoul, 20% Busan, 20% elsewhere in Korea.
pub fn location(rng: &mut StdRng) -> (f64, f64) {
    let r: f64 = rng.random();
    if r < 0.6 {
        (
            rng.random_range(37.42..37.70),
            rng.random_range(126.80..127.20),
        )
    } else if r < 0.8 {
        (
            rng.random_range(35.05..35.25),
            rng.random_range(128.95..129.20),
        )
    } else {
        (rng.random_range(34.8..37.9), rng.random_range(126.5..129.3))
    }
}

/// A licence plate unique per (`i`, `run`) up to a million vehicles.
pub fn plate(i: usize, run: u32) -> String {
    const SYLLABLES: [char; 32] = [
        '가', '나', '다', '라', '마', '거', '너', '더', '러', '머', '버', '서', '어', '저', '고',
        '노', '도', '로', '모', '보', '소', '오', '조', '구', '누', '두', '루', '무', '부', '수',
        '우', '주',
    ];
    let syllable = SYLLABLES[(i / 10_000 + run as usize) % SYLLABLES.len()];
    format!(
        "{:03}{syllable}{:04}",
        (i / 10) % 1000,
        (i % 10) * 1000 + (i / 100_000) % 1000
    )
}

/// Writes every dirty page out now (`CHECKPOINT`), so that the timing that follows pays for the
/// checkpoints of its own writes and not for those of the work before it (needs a superuser or
/// `pg_checkpoint`; skipped otherwise).
pub async fn checkpoint(pool: &sqlx::PgPool) {
    if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
        eprintln!("CHECKPOINT skipped: {e}");
    }
}

/// The JWT secret the benchmarks give the API process they start.
pub const SECRET: &str = "benchmark-secret-benchmark-secret-0123";

/// `carshare serve` (the release `binary`) on a benchmark database, with the settings every
/// benchmark shares: keys prefixed per run, warnings only, a pool of 40, and rate limits out
/// of the way (one client address sends the whole load; the limits have tests of their own).
/// Its stderr is the benchmark's; callers add what else they need and spawn it with
/// [`Server::start`].
pub fn serve_command(
    binary: &str,
    db_url: &str,
    redis: &str,
    run: u32,
    port: u16,
) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .arg("serve")
        .env("DATABASE_URL", db_url)
        .env("REDIS_URL", redis)
        .env("REDIS_KEY_PREFIX", format!("bench:{run}:"))
        .env("JWT_SECRET", SECRET)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env("DATABASE_MAX_CONNECTIONS", "40")
        .env("RATE_LIMIT_IP_PER_MINUTE", "100000000")
        .env("RATE_LIMIT_USER_PER_HOUR", "100000000")
        .stderr(std::process::Stdio::inherit());
    command
}

/// An API process started by a benchmark; stopped (SIGTERM) when dropped.
pub struct Server {
    /// The process.
    pub child: std::process::Child,
}

impl Server {
    /// Spawns `command` (from [`serve_command`]).
    pub fn start(command: &mut std::process::Command) -> anyhow::Result<Server> {
        let child = command.spawn().map_err(|e| {
            anyhow::anyhow!(
                "starting {} (build it with cargo build --release -p carshare-api): {e}",
                command.get_program().to_string_lossy()
            )
        })?;
        Ok(Server { child })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Waits until `GET {base}/ready` answers 200 (up to 20 s).
pub async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(res) = http.get(format!("{base}/ready")).send().await {
            if res.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the API did not become ready")
}

//! Typed configuration from environment variables (and a `.env` file, if present).
//!
//! Every setting is read once at start-up; a missing or malformed one stops the program with a
//! message naming the variable. Secrets are held as `SecretString` and never printed.

use carshare_event_store::kafka::{is_valid_topic_part, KafkaSettings};
use carshare_event_store::relay::RelaySettings;
use carshare_projections::{ConsumerSettings, RunnerSettings, Source as ProjectionSource};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A configuration error, naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is not set (see .env.example)")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (local development).
    Pretty,
}

/// An external API's base URL and secret key (Kakao Local, present when geocoding is enabled;
/// Toss Payments, present when payments can be confirmed).
#[derive(Clone)]
pub struct KakaoConfig {
    /// Base URL (`https://dapi.kakao.com` in production).
    pub base_url: String,
    /// REST API key.
    pub rest_api_key: SecretString,
    /// Per-attempt timeout (`KAKAO_TIMEOUT_MS`, default 10 s; `TOSS_TIMEOUT_MS`, default 30 s).
    pub timeout: Duration,
}

/// Where uploaded images (booking photos, vehicle images) are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    /// A local directory (`STORAGE_BACKEND=local`, the default; `STORAGE_DIR`, default
    /// `data/uploads`).
    Local(std::path::PathBuf),
    /// An S3 bucket (`STORAGE_BACKEND=s3`, `S3_BUCKET` required, `S3_ENDPOINT` for an
    /// S3-compatible store; credentials and region from the standard `AWS_*` variables).
    S3 {
        /// Bucket.
        bucket: String,
        /// Endpoint of an S3-compatible store.
        endpoint: Option<String>,
    },
}

impl StorageSettings {
    /// Reads `STORAGE_BACKEND`, `STORAGE_DIR`, `S3_BUCKET`, `S3_ENDPOINT`.
    pub fn from_source(src: &dyn Source) -> Result<StorageSettings, ConfigError> {
        match src.get("STORAGE_BACKEND").as_deref().map(str::trim) {
            None | Some("local") => Ok(StorageSettings::Local(
                src.get("STORAGE_DIR")
                    .unwrap_or_else(|| "data/uploads".into())
                    .into(),
            )),
            Some("s3") => {
                let bucket = src
                    .get("S3_BUCKET")
                    .filter(|b| !b.trim().is_empty())
                    .ok_or(ConfigError::Missing("S3_BUCKET"))?;
                Ok(StorageSettings::S3 {
                    bucket,
                    endpoint: src.get("S3_ENDPOINT"),
                })
            }
            Some(other) => Err(ConfigError::Invalid {
                var: "STORAGE_BACKEND",
                reason: format!("`{other}` is neither `local` nor `s3`"),
            }),
        }
    }

    /// Opens the store.
    pub fn open(
        &self,
    ) -> Result<carshare_commands::storage::ImageStore, carshare_commands::storage::StorageError>
    {
        match self {
            StorageSettings::Local(dir) => carshare_commands::storage::ImageStore::local(dir),
            StorageSettings::S3 { bucket, endpoint } => {
                carshare_commands::storage::ImageStore::s3(bucket, endpoint.as_deref())
            }
        }
    }
}

/// Booking rules and the expiry sweeper (read by `serve` and `project`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingSettings {
    /// Free time kept between two trips of one car (`BOOKING_BUFFER_MINUTES`, default 30, at
    /// most 1440).
    pub buffer_minutes: u32,
    /// How long a host has to answer a request (`BOOKING_RESPONSE_HOURS`, default 8, 1 to 72;
    /// never beyond the booked start).
    pub response_hours: u32,
    /// How often unanswered requests are looked for and expired (`BOOKING_EXPIRY_INTERVAL_MS`,
    /// default 30000, at least 100).
    pub expiry_interval: Duration,
    /// Booking appends written at the same time, each carrying every append that arrived
    /// while the others were in flight (group commit; `BOOKING_COMMIT_WRITERS`, default 2,
    /// 1 to 32).
    pub commit_writers: usize,
}

impl BookingSettings {
    /// Reads the `BOOKING_*` variables.
    pub fn from_source(src: &dyn Source) -> Result<BookingSettings, ConfigError> {
        let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
            var,
            reason: reason.to_string(),
        };
        let settings = BookingSettings {
            buffer_minutes: parsed(src, "BOOKING_BUFFER_MINUTES", 30)?,
            response_hours: parsed(src, "BOOKING_RESPONSE_HOURS", 8)?,
            expiry_interval: millis(src, "BOOKING_EXPIRY_INTERVAL_MS", 30_000)?,
            commit_writers: parsed(
                src,
                "BOOKING_COMMIT_WRITERS",
                carshare_commands::append::DEFAULT_WRITERS,
            )?,
        };
        if settings.buffer_minutes > 1_440 {
            return Err(invalid(
                "BOOKING_BUFFER_MINUTES",
                "must be between 0 and 1440",
            ));
        }
        if !(1..=72).contains(&settings.response_hours) {
            return Err(invalid(
                "BOOKING_RESPONSE_HOURS",
                "must be between 1 and 72",
            ));
        }
        if settings.expiry_interval < Duration::from_millis(100) {
            return Err(invalid(
                "BOOKING_EXPIRY_INTERVAL_MS",
                "must be at least 100",
            ));
        }
        if !(1..=32).contains(&settings.commit_writers) {
            return Err(invalid(
                "BOOKING_COMMIT_WRITERS",
                "must be between 1 and 32",
            ));
        }
        Ok(settings)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<BookingSettings, ConfigError> {
        BookingSettings::from_source(&Environment)
    }

    /// The booking rules' configurable parts.
    pub fn policy(&self) -> carshare_domain::booking::BookingPolicy {
        carshare_domain::booking::BookingPolicy {
            response_time: chrono::Duration::hours(i64::from(self.response_hours)),
            buffer: chrono::Duration::minutes(i64::from(self.buffer_minutes)),
        }
    }
}

/// All settings of the service.
#[derive(Clone)]
pub struct Settings {
    /// Interface to listen on (`HOST`, default `0.0.0.0`).
    pub host: String,
    /// Port (`PORT`, default 3000; 0 picks a free port).
    pub port: u16,
    /// HTTP worker threads (`HTTP_WORKERS`, default: available cores).
    pub http_workers: usize,
    /// Postgres connection string (`DATABASE_URL`, required).
    pub database_url: SecretString,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`, default 20).
    pub database_max_connections: u32,
    /// Wait for a pooled connection before answering 503 (`DATABASE_ACQUIRE_TIMEOUT_MS`, default 3000).
    pub database_acquire_timeout: Duration,
    /// Server-side statement timeout (`DATABASE_STATEMENT_TIMEOUT_MS`, default 10000; 0 = none).
    pub database_statement_timeout: Duration,
    /// Redis connection string (`REDIS_URL`, required).
    pub redis_url: SecretString,
    /// Prefix of every Redis key (`REDIS_KEY_PREFIX`, default `carshare:`).
    pub redis_key_prefix: String,
    /// Timeout of one Redis operation (`REDIS_TIMEOUT_MS`, default 1000).
    pub redis_timeout: Duration,
    /// HS256 key for access tokens (`JWT_SECRET`, required, at least 32 bytes).
    pub jwt_secret: SecretString,
    /// Lifetime of access tokens (`ACCESS_TOKEN_TTL_SECONDS`, default 900, at most 900).
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens (`REFRESH_TOKEN_TTL_DAYS`, default 14).
    pub refresh_token_ttl: Duration,
    /// Requests per minute per client address (`RATE_LIMIT_IP_PER_MINUTE`, default 100).
    pub rate_limit_ip_per_minute: u32,
    /// Requests per hour per signed-in user (`RATE_LIMIT_USER_PER_HOUR`, default 1000).
    pub rate_limit_user_per_hour: u32,
    /// Login and registration attempts per minute per client address
    /// (`RATE_LIMIT_AUTH_PER_MINUTE`, default 10).
    pub rate_limit_auth_per_minute: u32,
    /// Length of the per-address and login windows in seconds (`RATE_LIMIT_WINDOW_SECONDS`,
    /// default 60; the per-user window is 60 times as long).
    pub rate_limit_window_seconds: u64,
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, comma-separated IPs or
    /// CIDR blocks; default none: the socket's address is the client's).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins allowed to call the API from a browser (`CORS_ALLOWED_ORIGINS`, comma-separated;
    /// default none).
    pub cors_allowed_origins: Vec<String>,
    /// Kakao Local geocoding (`KAKAO_REST_API_KEY`; `KAKAO_BASE_URL` default `https://dapi.kakao.com`).
    pub kakao: Option<KakaoConfig>,
    /// Toss Payments (`TOSS_SECRET_KEY`; `TOSS_BASE_URL` default `https://api.tosspayments.com`);
    /// without a key, payments cannot be confirmed (503).
    pub toss: Option<KakaoConfig>,
    /// Firebase Cloud Messaging (`FCM_SERVICE_ACCOUNT_FILE`, a service-account key file;
    /// `FCM_PROJECT_ID`, default the key file's `project_id`; `FCM_BASE_URL`, default
    /// `https://fcm.googleapis.com`); without a key file, push deliveries are skipped.
    pub fcm: Option<carshare_commands::external::fcm::FcmSettings>,
    /// How often the notification dispatcher looks for deliveries when idle
    /// (`NOTIFICATION_POLL_MS`, default 500, at least 10).
    pub notification_poll_interval: Duration,
    /// Run the notification dispatcher inside `serve` (`RUN_NOTIFICATIONS`, default true; every
    /// instance may run one, they share the queue).
    pub run_notifications: bool,
    /// Run the projection workers inside `serve` (`RUN_PROJECTIONS`, default true).
    pub run_projections: bool,
    /// Kafka, the relay, and where the projection workers read.
    pub stream: StreamSettings,
    /// Events per projection batch (`PROJECTION_BATCH_SIZE`, default 500).
    pub projection_batch_size: i64,
    /// Projection poll interval (`PROJECTION_POLL_INTERVAL_MS`, default 50).
    pub projection_poll_interval: Duration,
    /// How long a projection worker lets events gather after a wake-up or a partial batch
    /// (`PROJECTION_LINGER_MS`, 0–100, default 3): fewer, larger transactions under a steady
    /// stream, for that much more wait before a write shows.
    pub projection_linger: Duration,
    /// How long that linger grows while the stream stays busy (`PROJECTION_LINGER_MAX_MS`,
    /// from `PROJECTION_LINGER_MS` to 100, default 20 or `PROJECTION_LINGER_MS` if longer):
    /// each partial batch of at least 16 events doubles it, up to this; a quieter batch sets
    /// it back.
    pub projection_linger_max: Duration,
    /// How long a read waits for the read models to show the writes it must show (a command, in
    /// Kafka mode, for its own) (`READ_YOUR_WRITES_TIMEOUT_MS`, default 3000).
    pub read_your_writes_timeout: Duration,
    /// Largest JSON body accepted (`MAX_JSON_BODY_BYTES`, default 65536).
    pub max_json_body_bytes: usize,
    /// Booking rules and the expiry sweeper.
    pub booking: BookingSettings,
    /// Where uploaded images go.
    pub storage: StorageSettings,
    /// Log format (`LOG_FORMAT`: `json` (default) or `pretty`).
    pub log_format: LogFormat,
    /// Log filter (`RUST_LOG`, default `info`).
    pub log_filter: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay redacted (SecretString's Debug prints no value).
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("http_workers", &self.http_workers)
            .field("database_max_connections", &self.database_max_connections)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("kakao_enabled", &self.kakao.is_some())
            .field("fcm_enabled", &self.fcm.is_some())
            .field("run_projections", &self.run_projections)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    /// The value of `var`, if set and not empty.
    fn get(&self, var: &str) -> Option<String>;
}

/// The process environment.
pub struct Environment;

impl Source for Environment {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, var: &str) -> Option<String> {
        HashMap::get(self, var)
            .cloned()
            .filter(|v| !v.trim().is_empty())
    }
}

fn required(src: &dyn Source, var: &'static str) -> Result<String, ConfigError> {
    src.get(var).ok_or(ConfigError::Missing(var))
}

fn parsed<T: FromStr>(src: &dyn Source, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match src.get(var) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: format!("`{raw}`: {e}"),
            }),
    }
}

fn millis(src: &dyn Source, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    parsed(src, var, default).map(Duration::from_millis)
}

/// Projection worker tuning: `PROJECTION_BATCH_SIZE` (1–10000, default 500),
/// `PROJECTION_POLL_INTERVAL_MS` (default 50), `PROJECTION_LINGER_MS` (0–100, default 3) and
/// `PROJECTION_LINGER_MAX_MS` (from `PROJECTION_LINGER_MS` to 100, default 20 or
/// `PROJECTION_LINGER_MS` if longer). Read by `serve` and by the commands that run workers.
pub fn runner_settings(src: &dyn Source) -> Result<RunnerSettings, ConfigError> {
    let defaults = RunnerSettings::default();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
        var,
        reason: reason.to_string(),
    };
    let batch_size = parsed(src, "PROJECTION_BATCH_SIZE", defaults.batch_size)?;
    if !(1..=10_000).contains(&batch_size) {
        return Err(invalid(
            "PROJECTION_BATCH_SIZE",
            "must be between 1 and 10000",
        ));
    }
    let linger = millis(src, "PROJECTION_LINGER_MS", ms(defaults.linger))?;
    if linger > Duration::from_millis(100) {
        return Err(invalid("PROJECTION_LINGER_MS", "must be between 0 and 100"));
    }
    let max_linger = millis(
        src,
        "PROJECTION_LINGER_MAX_MS",
        ms(defaults.max_linger.max(linger)),
    )?;
    if max_linger < linger || max_linger > Duration::from_millis(100) {
        return Err(invalid(
            "PROJECTION_LINGER_MAX_MS",
            "must be between PROJECTION_LINGER_MS and 100",
        ));
    }
    Ok(RunnerSettings {
        batch_size,
        poll_interval: millis(
            src,
            "PROJECTION_POLL_INTERVAL_MS",
            ms(defaults.poll_interval),
        )?,
        linger,
        max_linger,
    })
}

/// A per-attempt timeout of an external API: between 100 ms and 120 s.
fn external_timeout(
    src: &dyn Source,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    let timeout = millis(src, var, default)?;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(120) {
        return Err(ConfigError::Invalid {
            var,
            reason: "must be between 100 and 120000 (milliseconds)".into(),
        });
    }
    Ok(timeout)
}

fn flag(src: &dyn Source, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match src.get(var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            var,
            reason: format!("`{v}` is not a boolean (true/false)"),
        }),
    }
}

fn url(src: &dyn Source, var: &'static str, schemes: &[&str]) -> Result<String, ConfigError> {
    let value = required(src, var)?;
    let scheme_ok = schemes
        .iter()
        .any(|s| value.starts_with(&format!("{s}://")));
    if scheme_ok {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            var,
            reason: format!("expected a {} URL", schemes.join(" or ")),
        })
    }
}

/// Database settings alone, for commands that need nothing else (`migrate`, `rebuild`, `project`).
#[derive(Clone)]
pub struct DatabaseSettings {
    /// Connection string (`DATABASE_URL`).
    pub url: SecretString,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// Wait for a pooled connection (`DATABASE_ACQUIRE_TIMEOUT_MS`).
    pub acquire_timeout: Duration,
    /// Statement timeout (`DATABASE_STATEMENT_TIMEOUT_MS`, 0 = none).
    pub statement_timeout: Duration,
}

impl DatabaseSettings {
    /// Reads them from `src`.
    pub fn from_source(src: &dyn Source) -> Result<DatabaseSettings, ConfigError> {
        let max_connections = parsed(src, "DATABASE_MAX_CONNECTIONS", 20)?;
        if max_connections < 2 {
            return Err(ConfigError::Invalid {
                var: "DATABASE_MAX_CONNECTIONS",
                reason: "must be at least 2".into(),
            });
        }
        Ok(DatabaseSettings {
            url: SecretString::from(url(src, "DATABASE_URL", &["postgres", "postgresql"])?),
            max_connections,
            acquire_timeout: millis(src, "DATABASE_ACQUIRE_TIMEOUT_MS", 3_000)?,
            statement_timeout: millis(src, "DATABASE_STATEMENT_TIMEOUT_MS", 10_000)?,
        })
    }

    /// Reads them from the process environment.
    pub fn from_env() -> Result<DatabaseSettings, ConfigError> {
        DatabaseSettings::from_source(&Environment)
    }

    /// Opens a lazy pool.
    pub fn pool(&self) -> Result<sqlx::PgPool, sqlx::Error> {
        carshare_event_store::connect_lazy(&carshare_event_store::PoolSettings {
            url: self.url.expose_secret().to_string(),
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            statement_timeout: self.statement_timeout,
        })
    }
}

/// Kafka, the relay, and where the projection workers read; used by `serve`, `relay` and
/// `project`.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// The brokers and names (`KAFKA_BROKERS`; absent means no Kafka). `KAFKA_TOPIC_PREFIX`
    /// (default `carshare`), `KAFKA_TOPIC_PARTITIONS` (default 6), `KAFKA_TOPIC_REPLICATION`
    /// (default 1), `KAFKA_GROUP_PREFIX` (default: the topic prefix),
    /// `KAFKA_MESSAGE_TIMEOUT_MS` (default 30000).
    pub kafka: Option<KafkaSettings>,
    /// Where projection workers read (`PROJECTION_SOURCE`: `postgres` or `kafka`; default
    /// `kafka` when `KAFKA_BROKERS` is set, else `postgres`).
    pub source: ProjectionSource,
    /// Run the relay inside `serve` when Kafka is configured (`RUN_RELAY`, default true).
    pub run_relay: bool,
    /// Relay tuning (`RELAY_BATCH_SIZE`, default 5000).
    pub relay: RelaySettings,
    /// Kafka consumer tuning (`KAFKA_SESSION_TIMEOUT_MS`, default 10000;
    /// `KAFKA_FETCH_WAIT_MS`, default 20).
    pub consumer: ConsumerSettings,
    /// The projections this process runs when it runs projection workers (`PROJECTIONS`:
    /// names separated by commas, e.g. `vehicles,bookings`; default: every projection). Worker
    /// processes given disjoint lists share the read side between them; a projection run by
    /// several takes turns on its checkpoint (Postgres stream) or shares its partitions (Kafka).
    pub projections: Vec<&'static str>,
}

impl StreamSettings {
    /// Reads them from `src`.
    pub fn from_source(src: &dyn Source) -> Result<StreamSettings, ConfigError> {
        let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
            var,
            reason: reason.to_string(),
        };
        let kafka = match src.get("KAFKA_BROKERS") {
            None => None,
            Some(brokers) => {
                let mut kafka = KafkaSettings::new(brokers.trim());
                if let Some(prefix) = src.get("KAFKA_TOPIC_PREFIX") {
                    if !is_valid_topic_part(prefix.trim()) {
                        return Err(invalid(
                            "KAFKA_TOPIC_PREFIX",
                            "use letters, digits, `.`, `_` and `-` (at most 200)",
                        ));
                    }
                    kafka.topic_prefix = prefix.trim().to_string();
                }
                kafka.group_prefix = match src.get("KAFKA_GROUP_PREFIX") {
                    None => kafka.topic_prefix.clone(),
                    Some(group) => group.trim().to_string(),
                };
                kafka.partitions = parsed(src, "KAFKA_TOPIC_PARTITIONS", 6)?;
                if !(1..=1000).contains(&kafka.partitions) {
                    return Err(invalid(
                        "KAFKA_TOPIC_PARTITIONS",
                        "must be between 1 and 1000",
                    ));
                }
                kafka.replication = parsed(src, "KAFKA_TOPIC_REPLICATION", 1)?;
                if !(1..=10).contains(&kafka.replication) {
                    return Err(invalid(
                        "KAFKA_TOPIC_REPLICATION",
                        "must be between 1 and 10",
                    ));
                }
                kafka.message_timeout = millis(src, "KAFKA_MESSAGE_TIMEOUT_MS", 30_000)?;
                if kafka.message_timeout < Duration::from_secs(1) {
                    return Err(invalid("KAFKA_MESSAGE_TIMEOUT_MS", "must be at least 1000"));
                }
                Some(kafka)
            }
        };
        let source = match src.get("PROJECTION_SOURCE").as_deref().map(str::trim) {
            None if kafka.is_some() => ProjectionSource::Kafka,
            None | Some("postgres") => ProjectionSource::Postgres,
            Some("kafka") if kafka.is_some() => ProjectionSource::Kafka,
            Some("kafka") => {
                return Err(invalid(
                    "PROJECTION_SOURCE",
                    "`kafka` needs KAFKA_BROKERS to be set",
                ))
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "PROJECTION_SOURCE",
                    reason: format!("`{other}` is not postgres or kafka"),
                })
            }
        };
        let relay_batch: i64 = parsed(src, "RELAY_BATCH_SIZE", 5_000)?;
        if !(1..=50_000).contains(&relay_batch) {
            return Err(invalid("RELAY_BATCH_SIZE", "must be between 1 and 50000"));
        }
        let session_timeout = millis(src, "KAFKA_SESSION_TIMEOUT_MS", 10_000)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&session_timeout) {
            return Err(invalid(
                "KAFKA_SESSION_TIMEOUT_MS",
                "must be between 1000 and 300000",
            ));
        }
        Ok(StreamSettings {
            projections: projection_names(src.get("PROJECTIONS").as_deref())?,
            kafka,
            source,
            run_relay: flag(src, "RUN_RELAY", true)?,
            relay: RelaySettings {
                batch_size: relay_batch,
                ..RelaySettings::default()
            },
            consumer: ConsumerSettings {
                session_timeout,
                fetch_wait: millis(src, "KAFKA_FETCH_WAIT_MS", 20)?,
                ..ConsumerSettings::default()
            },
        })
    }

    /// Reads them from the process environment.
    pub fn from_env() -> Result<StreamSettings, ConfigError> {
        StreamSettings::from_source(&Environment)
    }

    /// Whether this process runs `projection`'s worker.
    pub fn runs(&self, projection: &str) -> bool {
        self.projections.contains(&projection)
    }
}

/// The projections named in `PROJECTIONS` (every one when unset), each known and named once.
fn projection_names(value: Option<&str>) -> Result<Vec<&'static str>, ConfigError> {
    let known: Vec<&'static str> = carshare_projections::all()
        .iter()
        .map(|p| p.name())
        .collect();
    let Some(value) = value else {
        return Ok(known);
    };
    let mut chosen: Vec<&'static str> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(&found) = known.iter().find(|&&k| k == name) else {
            return Err(ConfigError::Invalid {
                var: "PROJECTIONS",
                reason: format!("`{name}` is not a projection ({})", known.join(", ")),
            });
        };
        if !chosen.contains(&found) {
            chosen.push(found);
        }
    }
    if chosen.is_empty() {
        return Err(ConfigError::Invalid {
            var: "PROJECTIONS",
            reason: "names no projection (RUN_PROJECTIONS=false runs none)".to_string(),
        });
    }
    Ok(chosen)
}

impl Settings {
    /// The database part of the settings.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout,
            statement_timeout: self.database_statement_timeout,
        }
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_source(&Environment)
    }

    /// Reads the settings from `src`.
    pub fn from_source(src: &dyn Source) -> Result<Settings, ConfigError> {
        let database = DatabaseSettings::from_source(src)?;
        let redis_url = url(src, "REDIS_URL", &["redis", "rediss"])?;
        let jwt_secret = required(src, "JWT_SECRET")?;
        if jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid {
                var: "JWT_SECRET",
                reason: "must be at least 32 bytes".into(),
            });
        }
        let ttl: u64 = parsed(src, "ACCESS_TOKEN_TTL_SECONDS", 900)?;
        if ttl == 0 || ttl > 900 {
            return Err(ConfigError::Invalid {
                var: "ACCESS_TOKEN_TTL_SECONDS",
                reason: "must be between 1 and 900 (15 minutes)".into(),
            });
        }
        let refresh_days: u64 = parsed(src, "REFRESH_TOKEN_TTL_DAYS", 14)?;
        if !(1..=90).contains(&refresh_days) {
            return Err(ConfigError::Invalid {
                var: "REFRESH_TOKEN_TTL_DAYS",
                reason: "must be between 1 and 90".into(),
            });
        }
        let trusted_proxies = match src.get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| ConfigError::Invalid {
                            var: "TRUSTED_PROXIES",
                            reason: format!("`{s}` is not an IP address or CIDR block"),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let cors_allowed_origins = match src.get("CORS_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with("https://") || s.starts_with("http://") {
                        Ok(s.trim_end_matches('/').to_string())
                    } else {
                        Err(ConfigError::Invalid {
                            var: "CORS_ALLOWED_ORIGINS",
                            reason: format!("`{s}` is not an http(s) origin"),
                        })
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let kakao = match src.get("KAKAO_REST_API_KEY") {
            None => None,
            Some(key) => Some(KakaoConfig {
                base_url: match src.get("KAKAO_BASE_URL") {
                    None => "https://dapi.kakao.com".to_string(),
                    Some(_) => url(src, "KAKAO_BASE_URL", &["http", "https"])?,
                },
                rest_api_key: SecretString::from(key),
                timeout: external_timeout(src, "KAKAO_TIMEOUT_MS", 10_000)?,
            }),
        };
        let toss = match src.get("TOSS_SECRET_KEY") {
            None => None,
            Some(key) => Some(KakaoConfig {
                base_url: match src.get("TOSS_BASE_URL") {
                    None => "https://api.tosspayments.com".to_string(),
                    Some(_) => url(src, "TOSS_BASE_URL", &["http", "https"])?,
                },
                rest_api_key: SecretString::from(key),
                timeout: external_timeout(src, "TOSS_TIMEOUT_MS", 30_000)?,
            }),
        };
        let fcm = match src.get("FCM_SERVICE_ACCOUNT_FILE") {
            None => None,
            Some(path) => {
                let key = carshare_commands::external::fcm::ServiceAccountKey::from_file(
                    std::path::Path::new(path.trim()),
                )
                .map_err(|e| ConfigError::Invalid {
                    var: "FCM_SERVICE_ACCOUNT_FILE",
                    reason: e.to_string(),
                })?;
                let project_id = src
                    .get("FCM_PROJECT_ID")
                    .or_else(|| key.project_id.clone())
                    .ok_or(ConfigError::Missing("FCM_PROJECT_ID"))?;
                if !project_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(ConfigError::Invalid {
                        var: "FCM_PROJECT_ID",
                        reason: "letters, digits and dashes only".into(),
                    });
                }
                let base_url = match src.get("FCM_BASE_URL") {
                    None => "https://fcm.googleapis.com".to_string(),
                    Some(_) => url(src, "FCM_BASE_URL", &["http", "https"])?,
                };
                Some(carshare_commands::external::fcm::FcmSettings::new(
                    base_url, project_id, key,
                ))
            }
        };
        let notification_poll_interval = millis(src, "NOTIFICATION_POLL_MS", 500)?;
        if notification_poll_interval < Duration::from_millis(10) {
            return Err(ConfigError::Invalid {
                var: "NOTIFICATION_POLL_MS",
                reason: "at least 10".into(),
            });
        }
        let log_format = match src.get("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "LOG_FORMAT",
                    reason: format!("`{other}` is not json or pretty"),
                })
            }
        };
        let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runner = runner_settings(src)?;
        let settings = Settings {
            host: src.get("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port: parsed(src, "PORT", 3000)?,
            http_workers: parsed(src, "HTTP_WORKERS", default_workers)?,
            database_url: database.url,
            database_max_connections: database.max_connections,
            database_acquire_timeout: database.acquire_timeout,
            database_statement_timeout: database.statement_timeout,
            redis_url: SecretString::from(redis_url),
            redis_key_prefix: src
                .get("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| "carshare:".into()),
            redis_timeout: millis(src, "REDIS_TIMEOUT_MS", 1_000)?,
            jwt_secret: SecretString::from(jwt_secret),
            access_token_ttl: Duration::from_secs(ttl),
            refresh_token_ttl: Duration::from_secs(refresh_days * 86_400),
            rate_limit_ip_per_minute: parsed(src, "RATE_LIMIT_IP_PER_MINUTE", 100)?,
            rate_limit_user_per_hour: parsed(src, "RATE_LIMIT_USER_PER_HOUR", 1000)?,
            rate_limit_auth_per_minute: parsed(src, "RATE_LIMIT_AUTH_PER_MINUTE", 10)?,
            rate_limit_window_seconds: parsed(src, "RATE_LIMIT_WINDOW_SECONDS", 60)?,
            trusted_proxies,
            cors_allowed_origins,
            kakao,
            toss,
            fcm,
            notification_poll_interval,
            run_notifications: flag(src, "RUN_NOTIFICATIONS", true)?,
            run_projections: flag(src, "RUN_PROJECTIONS", true)?,
            stream: StreamSettings::from_source(src)?,
            projection_batch_size: runner.batch_size,
            projection_poll_interval: runner.poll_interval,
            projection_linger: runner.linger,
            projection_linger_max: runner.max_linger,
            read_your_writes_timeout: millis(src, "READ_YOUR_WRITES_TIMEOUT_MS", 3_000)?,
            max_json_body_bytes: parsed(src, "MAX_JSON_BODY_BYTES", 64 * 1024)?,
            booking: BookingSettings::from_source(src)?,
            storage: StorageSettings::from_source(src)?,
            log_format,
            log_filter: src.get("RUST_LOG").unwrap_or_else(|| "info".into()),
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
            var,
            reason: reason.to_string(),
        };
        if self.http_workers == 0 {
            return Err(invalid("HTTP_WORKERS", "must be at least 1"));
        }
        if self.rate_limit_ip_per_minute == 0
            || self.rate_limit_user_per_hour == 0
            || self.rate_limit_auth_per_minute == 0
        {
            return Err(invalid(
                "RATE_LIMIT_IP_PER_MINUTE",
                "rate limits must be at least 1",
            ));
        }
        if !(1..=3600).contains(&self.rate_limit_window_seconds) {
            return Err(invalid(
                "RATE_LIMIT_WINDOW_SECONDS",
                "must be between 1 and 3600",
            ));
        }
        if self.max_json_body_bytes < 1024 {
            return Err(invalid("MAX_JSON_BODY_BYTES", "must be at least 1024"));
        }
        Ok(())
    }

    /// The Redis URL (a secret: never log it).
    pub fn redis_url(&self) -> &str {
        self.redis_url.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/carshare",
            ),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_apply() {
        let s = Settings::from_source(&base()).unwrap();
        assert_eq!(s.port, 3000);
        assert!(s.kakao.is_none());
        assert_eq!(s.access_token_ttl, Duration::from_secs(900));
        assert_eq!(s.projection_linger, Duration::from_millis(3));
        assert_eq!(s.projection_linger_max, Duration::from_millis(20));
        let mut env = base();
        env.insert("PROJECTION_LINGER_MS".into(), "30".into());
        let s = Settings::from_source(&env).unwrap();
        assert_eq!(s.projection_linger_max, Duration::from_millis(30));
    }

    #[test]
    fn missing_settings_are_named() {
        for var in ["DATABASE_URL", "REDIS_URL", "JWT_SECRET"] {
            let mut env = base();
            env.remove(var);
            let err = Settings::from_source(&env).unwrap_err();
            assert_eq!(err, ConfigError::Missing(var));
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn malformed_settings_are_named() {
        for (var, value) in [
            ("PORT", "http"),
            ("DATABASE_URL", "mysql://x"),
            ("JWT_SECRET", "short"),
            ("RUN_PROJECTIONS", "maybe"),
            ("ACCESS_TOKEN_TTL_SECONDS", "3600"),
            ("LOG_FORMAT", "xml"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, nonsense"),
            ("CORS_ALLOWED_ORIGINS", "example.com"),
            ("REFRESH_TOKEN_TTL_DAYS", "0"),
            ("PROJECTION_SOURCE", "kafka"),
            ("PROJECTION_SOURCE", "files"),
            ("BOOKING_BUFFER_MINUTES", "-5"),
            ("BOOKING_BUFFER_MINUTES", "2000"),
            ("BOOKING_RESPONSE_HOURS", "0"),
            ("BOOKING_EXPIRY_INTERVAL_MS", "10"),
            ("BOOKING_COMMIT_WRITERS", "0"),
            ("BOOKING_COMMIT_WRITERS", "33"),
            ("STORAGE_BACKEND", "ftp"),
            ("PROJECTION_LINGER_MS", "101"),
            ("PROJECTION_LINGER_MS", "soon"),
            ("PROJECTION_LINGER_MAX_MS", "101"),
            ("PROJECTION_LINGER_MAX_MS", "2"),
            ("PROJECTIONS", "vehicles,timeline"),
            ("PROJECTIONS", " , "),
        ] {
            let mut env = base();
            env.insert(var.into(), value.into());
            match Settings::from_source(&env) {
                Err(ConfigError::Invalid { var: v, .. }) => assert_eq!(v, var),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn push_needs_a_readable_key_file_and_a_project() {
        let s = Settings::from_source(&base()).unwrap();
        assert!(s.fcm.is_none());
        let mut env = base();
        env.insert(
            "FCM_SERVICE_ACCOUNT_FILE".into(),
            "/nonexistent/key.json".into(),
        );
        assert!(matches!(
            Settings::from_source(&env),
            Err(ConfigError::Invalid {
                var: "FCM_SERVICE_ACCOUNT_FILE",
                ..
            })
        ));
        let path = std::env::temp_dir().join(format!("fcm-config-{}.json", std::process::id()));
        let key = serde_json::json!({
            "client_email": "push@p.iam.gserviceaccount.com",
            "private_key": include_str!("../../tests/fixtures/fcm-test-key.pem"),
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(&path, key.to_string()).unwrap();
        env.insert(
            "FCM_SERVICE_ACCOUNT_FILE".into(),
            path.display().to_string(),
        );
        assert_eq!(
            Settings::from_source(&env).unwrap_err(),
            ConfigError::Missing("FCM_PROJECT_ID")
        );
        env.insert("FCM_PROJECT_ID".into(), "carshare-prod".into());
        let fcm = Settings::from_source(&env).unwrap().fcm.unwrap();
        assert_eq!(fcm.project_id, "carshare-prod");
        assert_eq!(fcm.base_url, "https://fcm.googleapis.com");
        env.insert("NOTIFICATION_POLL_MS".into(), "5".into());
        assert!(matches!(
            Settings::from_source(&env),
            Err(ConfigError::Invalid {
                var: "NOTIFICATION_POLL_MS",
                ..
            })
        ));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn kafka_settings_follow_the_brokers() {
        let s = Settings::from_source(&base()).unwrap();
        assert!(s.stream.kafka.is_none());
        assert_eq!(s.stream.source, ProjectionSource::Postgres);

        let mut env = base();
        env.insert("KAFKA_BROKERS".into(), "127.0.0.1:9092".into());
        env.insert("KAFKA_TOPIC_PREFIX".into(), "staging".into());
        let s = Settings::from_source(&env).unwrap();
        let kafka = s.stream.kafka.clone().unwrap();
        assert_eq!(kafka.topic("Vehicle"), "staging.vehicle.events");
        assert_eq!(kafka.group("vehicles"), "staging.projection.vehicles");
        assert_eq!(s.stream.source, ProjectionSource::Kafka);

        env.insert("PROJECTION_SOURCE".into(), "postgres".into());
        let s = Settings::from_source(&env).unwrap();
        assert_eq!(s.stream.source, ProjectionSource::Postgres);
        assert_eq!(
            s.stream.projections.len(),
            carshare_projections::all().len()
        );
        assert!(s.stream.runs("notifications"));

        let mut some = env.clone();
        some.insert("PROJECTIONS".into(), " bookings, vehicles,bookings ".into());
        let s = Settings::from_source(&some).unwrap();
        assert_eq!(s.stream.projections, ["bookings", "vehicles"]);
        assert!(s.stream.runs("vehicles") && !s.stream.runs("notifications"));

        for (var, value) in [
            ("KAFKA_TOPIC_PREFIX", "has space"),
            ("KAFKA_TOPIC_PARTITIONS", "0"),
            ("KAFKA_MESSAGE_TIMEOUT_MS", "10"),
            ("RELAY_BATCH_SIZE", "0"),
            ("RUN_RELAY", "perhaps"),
        ] {
            let mut bad = env.clone();
            bad.insert(var.into(), value.into());
            match Settings::from_source(&bad) {
                Err(ConfigError::Invalid { var: v, .. }) => assert_eq!(v, var),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = Settings::from_source(&base()).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef"));
        assert!(!shown.contains("postgres://"));
    }
}

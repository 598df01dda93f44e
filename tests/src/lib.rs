//! Test harness: the real application on a random port over a fresh Postgres database, real
//! Redis, and local stub servers for external APIs. Set `TEST_LOG=1` to see the service's logs
//! (or `TEST_LOG=<filter>`, e.g. `carshare_projections=debug`).
//!
//! Connection settings: `TEST_DATABASE_URL` (a server URL without database, default
//! `postgres://postgres@127.0.0.1:5432`) and `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).

pub mod history;
pub mod kafka;

use actix_web::dev::ServerHandle;
use carshare_api::auth::{Claims, TokenKeys, ACCESS, ISSUER};
use carshare_api::{Application, Settings};
use carshare_domain::Role;
use carshare_event_store::MIGRATOR;
use chrono::Utc;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Once;
use std::time::Duration;
use uuid::Uuid;
use wiremock::MockServer;

/// The JWT secret of test apps.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The Postgres server of the tests.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// The Redis server of the tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

static LOGS: Once = Once::new();

/// Sends the service's logs to the test output when `TEST_LOG` is set.
pub fn init_logs() {
    LOGS.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let filter = if filter == "1" {
                "info"
            } else {
                filter.as_str()
            };
            carshare_api::telemetry::init(carshare_api::config::LogFormat::Pretty, filter);
        }
    });
}

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// A pool on it (migrated).
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates a fresh database, migrated: a copy of a template database that the migrations
    /// were applied to once (see [`migrated_template`]).
    pub async fn create() -> TestDatabase {
        let name = format!("carshare_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("Postgres must be running for the tests (see README)");
        let template = migrated_template(&mut admin).await;
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = format!("{}/{name}", server_url());
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url)
            .await
            .expect("connect to the test database");
        // Nothing to apply on a copy of the template; this checks that it is complete.
        MIGRATOR.run(&pool).await.expect("migrations apply");
        TestDatabase { name, url, pool }
    }
}

/// The name of a database holding every migration of this build and nothing else, made once per
/// server and set of migrations (its name carries their checksums) and then copied by each
/// test: a copy takes a fraction of the time the migrations do, and no test's database setup
/// runs long transactions beside the other tests. Tests in parallel processes agree through an
/// advisory lock; a template is built under another name and renamed when complete, so an
/// interrupted build never leaves a half-migrated template. `scripts/test.sh` drops old ones.
pub async fn migrated_template(admin: &mut PgConnection) -> String {
    use std::hash::{Hash, Hasher};
    // FNV-1a over the migrations' versions and checksums: stable across builds and toolchains.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    for migration in MIGRATOR.iter() {
        migration.version.hash(&mut hasher);
        migration.checksum.hash(&mut hasher);
    }
    let template = format!("carshare_template_{:016x}", hasher.finish());
    async fn exists(admin: &mut PgConnection, name: &str) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(admin)
            .await
            .expect("look for the template database")
    }
    if exists(admin, &template).await {
        return template;
    }
    // Session-level lock, released below (and by Postgres if this process dies).
    const TEMPLATE_LOCK: i64 = 0x6361_7273_6861_7265; // "carshare"
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *admin)
        .await
        .expect("take the template lock");
    if !exists(admin, &template).await {
        let building = format!("{template}_building");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&mut *admin)
            .await
            .expect("drop an interrupted template build");
        sqlx::query(&format!("CREATE DATABASE {building}"))
            .execute(&mut *admin)
            .await
            .expect("create the template database");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{}/{building}", server_url()))
            .await
            .expect("connect to the template database");
        MIGRATOR
            .run(&pool)
            .await
            .expect("migrations apply to the template");
        // A database with open connections can neither be renamed nor copied.
        pool.close().await;
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut *admin)
            .await
            .expect("name the template database");
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *admin)
        .await
        .expect("release the template lock");
    template
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = format!("{}/postgres", server_url());
        // Drop runs outside any runtime we could block on, so use a thread of our own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The Toss secret key the test apps use (`test_sk_…` as Toss's test keys are).
pub const TOSS_SECRET_KEY: &str = "test_sk_carshare";

/// How to start a test app.
#[derive(Default)]
pub struct AppOptions {
    /// Start a Kakao Local stub and point the app at it.
    pub kakao: bool,
    /// Start a Toss Payments stub and point the app at it.
    pub toss: bool,
    /// Extra or overriding environment settings.
    pub env: Vec<(&'static str, String)>,
    /// Replace the database pool (e.g. one pointing at a dead server).
    pub pool: Option<PgPool>,
}

/// A running application.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The app's database (pool on it).
    pub db: TestDatabase,
    /// Token keys matching the app's secret.
    pub keys: TokenKeys,
    /// The Kakao stub, when requested.
    pub kakao: Option<MockServer>,
    /// The Toss Payments stub, when requested.
    pub toss: Option<MockServer>,
    /// The Redis key prefix of this app.
    pub redis_prefix: String,
    handle: ServerHandle,
}

impl TestApp {
    /// The app with default options.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(AppOptions::default()).await
    }

    /// The app with options.
    pub async fn spawn_with(options: AppOptions) -> TestApp {
        init_logs();
        let db = TestDatabase::create().await;
        let kakao = if options.kakao {
            Some(MockServer::start().await)
        } else {
            None
        };
        let toss = if options.toss {
            Some(MockServer::start().await)
        } else {
            None
        };
        let redis_prefix = format!("test:{}:", Uuid::new_v4().simple());
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", redis_url()),
            ("REDIS_KEY_PREFIX", redis_prefix.clone()),
            ("JWT_SECRET", JWT_SECRET.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("PORT", "0".into()),
            ("HTTP_WORKERS", "2".into()),
            ("DATABASE_MAX_CONNECTIONS", "8".into()),
            ("PROJECTION_POLL_INTERVAL_MS", "20".into()),
            ("READ_YOUR_WRITES_TIMEOUT_MS", "5000".into()),
            // Tests send many requests from one address; the limits have tests of their own.
            ("RATE_LIMIT_IP_PER_MINUTE", "1000000".into()),
            ("RATE_LIMIT_USER_PER_HOUR", "1000000".into()),
            ("RATE_LIMIT_AUTH_PER_MINUTE", "1000000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(server) = &kakao {
            env.insert("KAKAO_BASE_URL".into(), server.uri());
            env.insert("KAKAO_REST_API_KEY".into(), "test-kakao-key".into());
        }
        if let Some(server) = &toss {
            env.insert("TOSS_BASE_URL".into(), server.uri());
            env.insert("TOSS_SECRET_KEY".into(), TOSS_SECRET_KEY.into());
        }
        for (k, v) in options.env {
            env.insert(k.to_string(), v);
        }
        let settings = Settings::from_source(&env).expect("valid test settings");
        let app = match options.pool {
            Some(pool) => Application::build_with_pool(settings, pool).await,
            None => Application::build(settings).await,
        }
        .expect("the application builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.server_handle();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            db,
            keys: TokenKeys::new(&SecretString::from(JWT_SECRET), Duration::from_secs(900)),
            kakao,
            toss,
            redis_prefix,
            handle,
        }
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// A fresh user id and an access token for it.
    pub fn user(&self, role: Role) -> (Uuid, String) {
        let id = Uuid::new_v4();
        let (token, _) = self.keys.issue(id, role).expect("token");
        (id, token)
    }

    /// An access token for an existing user id.
    pub fn token_for(&self, id: Uuid, role: Role) -> String {
        self.keys.issue(id, role).expect("token").0
    }

    /// A token that expired a minute ago.
    pub fn expired_token(&self, role: Role) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            role,
            exp: now - 60,
            iat: now - 960,
            jti: Uuid::new_v4(),
            iss: ISSUER.into(),
            typ: ACCESS.into(),
            fam: None,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("token")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// A request with a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(reqwest::Method::POST, path, token, body)
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(reqwest::Method::PUT, path, token, body)
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.http.delete(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// Registers a vehicle and returns its JSON; panics unless 201.
    pub async fn register_vehicle(&self, token: &str, body: &Value) -> Value {
        let res = self.post("/v1/vehicles", Some(token), body).await;
        let status = res.status();
        let json: Value = res.json().await.expect("json body");
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }

    /// Number of events in the log.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(self.pool())
            .await
            .expect("count events")
    }

    /// Stops the server.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Reads a response as `(status, json)`.
pub async fn json(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Asserts the one error shape with `code`, returning the error object.
pub fn assert_error(body: &Value, code: &str) -> Value {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["details"].is_array(), "{body}");
    assert!(
        error["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    error.clone()
}

/// A valid `VehicleCreate` body at the given coordinates with a unique plate.
pub fn vehicle_body(lat: f64, lng: f64) -> Value {
    serde_json::json!({
        "license_plate": unique_plate(),
        "make": "현대",
        "model": "쏘나타",
        "year": 2023,
        "color": "white",
        "fuel_type": "hybrid",
        "transmission": "automatic",
        "hourly_rate": 12000,
        "location_address": "서울특별시 중구 세종대로 110",
        "location_lat": lat,
        "location_lng": lng,
        "description": "법인 업무용 차량"
    })
}

/// A random plate such as `123가4567`.
pub fn unique_plate() -> String {
    let n: u32 = rand::random::<u32>() % 1_000_000_000;
    let syllables = [
        '가', '나', '다', '라', '마', '거', '너', '더', '러', '머', '버', '서', '어', '저', '고',
        '노',
    ];
    let s = syllables[(n % 16) as usize];
    format!("{:03}{s}{:04}", (n / 16) % 1000, (n / 16_000) % 10_000)
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

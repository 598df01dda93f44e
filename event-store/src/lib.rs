//! The Postgres event store and the ordered event stream.
//!
//! Writes go through cqrs-es 0.5 and postgres-es 0.5 (`store`). Reads of the whole log, in an
//! order that never skips an event committed late, go through [`stream::StreamReader`], which
//! also feeds the Kafka [`relay::Relay`].

pub mod kafka;
pub mod metadata;
pub mod metrics;
pub mod relay;
pub mod store;
pub mod stream;
pub mod upcasters;

pub use metadata::EventMetadata;
pub use store::{event_store, EventStore};
pub use stream::{CommitSignal, SharedReads, StoredEvent, StreamCursor, StreamReader};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// Every migration of the workspace (`migrations/`), embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How to reach Postgres.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connection string.
    pub url: String,
    /// Most connections held.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before the dependency counts as down.
    pub acquire_timeout: Duration,
    /// Per-statement timeout set on every connection (0 = none).
    pub statement_timeout: Duration,
}

/// How recently a pooled connection must have been used to skip the liveness test on acquire.
pub const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// Opens a connection pool. Connections are made lazily, so a server that is down at start-up
/// is reported by the first query, not by a hang here.
pub fn connect_lazy(settings: &PoolSettings) -> Result<PgPool, sqlx::Error> {
    let mut options = PgConnectOptions::from_str(&settings.url)?.application_name("carshare");
    let timeout_ms = settings.statement_timeout.as_millis();
    if timeout_ms > 0 {
        options = options.options([("statement_timeout", timeout_ms.to_string())]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        // sqlx pings a connection (one round trip) every time it leaves the pool; it already
        // pings every connection that goes back. A connection back for less than
        // `ALIVE_BYPASS` was just seen working, so only those idle longer are tested before
        // use (as HikariCP's alive-bypass window does): under load this saves a round trip
        // per pooled statement, and a connection left broken by a server restart has been
        // idle, or failed its release test, and is still caught.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ALIVE_BYPASS {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // A new server process loads PostGIS (and its projection library) on first
                // use, tens of milliseconds: pay that when connecting, not in a request. A
                // database without PostGIS yet (before migrations) simply skips it.
                let _ = sqlx::Executor::execute(
                    &mut *conn,
                    "DO $$ BEGIN PERFORM ST_Transform(ST_SetSRID(ST_MakePoint(127, 37.5), 4326), 5179); \
                     EXCEPTION WHEN OTHERS THEN NULL; END $$",
                )
                .await;
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

/// Whether a database error means Postgres is unreachable or overloaded (a 503), rather than a
/// fault in the statement.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| {
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
        // query_canceled (statement timeout)
        matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "57014")
    }))
}

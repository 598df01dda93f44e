//! Liveness, readiness and metrics.

use crate::error::{ApiError, ErrorResponse};
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use carshare_event_store::relay::{self, RelayStatus};
use carshare_projections::status::{self, ProjectionStatus};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health).service(ready).service(metrics);
}

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves requests.
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is up", body = Health)))]
#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// One dependency check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `up` or `down`.
    pub status: &'static str,
    /// Round trip in milliseconds.
    pub latency_ms: u64,
    /// Why it is down (no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (serving, but a projection has dead letters or lags), or `unavailable`.
    pub status: &'static str,
    /// Postgres.
    pub postgres: Check,
    /// Redis.
    pub redis: Check,
    /// Each projection's position, lag and dead letters (absent when Postgres is down).
    #[schema(value_type = Vec<Object>)]
    pub projections: Vec<ProjectionStatus>,
    /// Age in seconds of the oldest running writing transaction (it holds back every stream reader).
    pub stream_horizon_age_seconds: Option<f64>,
    /// The Kafka relay, when Kafka is configured: `ok`, `degraded` (the broker fails or the
    /// relay lags; commands are still accepted, the store being the truth) or `down` (no relay
    /// instance active).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub relay: Option<RelayStatus>,
}

async fn timed<F, T, E>(f: F) -> (Check, Option<T>)
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(2), f).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(Ok(v)) => (
            Check {
                status: "up",
                latency_ms,
                error: None,
            },
            Some(v),
        ),
        Ok(Err(e)) => (
            Check {
                status: "down",
                latency_ms,
                error: Some(e.to_string()),
            },
            None,
        ),
        Err(_) => (
            Check {
                status: "down",
                latency_ms,
                error: Some("timed out".into()),
            },
            None,
        ),
    }
}

/// A projection is degraded when it has dead letters or lags by more than this.
const LAG_DEGRADED_SECONDS: f64 = 30.0;

/// Readiness: Postgres and Redis answer. Projection and relay health are reported; dead
/// letters, a lagging projection or a relay that is not `ok` make the status `degraded` but keep
/// the instance in service (200).
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready (or degraded)", body = Readiness),
    (status = 503, description = "A dependency is down", body = Readiness)
))]
#[get("/ready")]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (postgres, _) = timed(sqlx::query("SELECT 1").execute(&state.pool)).await;
    let (redis, _) = timed(state.redis.ping()).await;
    let names: Vec<&str> = carshare_projections::all()
        .iter()
        .map(|p| p.name())
        .collect();
    let source = state.settings.stream.source;
    let (projections, horizon, relay) = if postgres.status == "up" {
        let (_, projections) = timed(status::statuses(&state.pool, &names, source)).await;
        let (_, horizon) = timed(status::refresh_horizon(&state.pool)).await;
        let relay = match &state.settings.stream.kafka {
            Some(kafka) => {
                timed(relay::status(&state.pool, &kafka.topic_prefix))
                    .await
                    .1
            }
            None => None,
        };
        (projections.unwrap_or_default(), horizon, relay)
    } else {
        (Vec::new(), None, None)
    };
    let degraded = projections
        .iter()
        .any(|p| p.dead_letters > 0 || p.lag_seconds > LAG_DEGRADED_SECONDS)
        || relay.as_ref().is_some_and(|r| r.status != "ok");
    let up = postgres.status == "up" && redis.status == "up";
    let body = Readiness {
        status: match (up, degraded) {
            (false, _) => "unavailable",
            (true, true) => "degraded",
            (true, false) => "ready",
        },
        postgres,
        redis,
        projections,
        stream_horizon_age_seconds: horizon,
        relay,
    };
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    (status = 500, description = "Metrics could not be encoded", body = ErrorResponse)
))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Lag and horizon gauges are refreshed on scrape; a database outage leaves them as they were.
    let names: Vec<&str> = carshare_projections::all()
        .iter()
        .map(|p| p.name())
        .collect();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        status::statuses(&state.pool, &names, state.settings.stream.source),
    )
    .await;
    if let Some(kafka) = &state.settings.stream.kafka {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            relay::status(&state.pool, &kafka.topic_prefix),
        )
        .await;
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(2), status::refresh_horizon(&state.pool)).await;
    let text = crate::metrics::render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

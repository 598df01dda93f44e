//! Prometheus metrics of the command side.

use carshare_event_store::metrics::{counter_vec, gauge_vec, histogram_vec, LATENCY_BUCKETS};
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use std::sync::LazyLock;

/// Commands handled, by aggregate, command and outcome (ok, rejected, conflict, unavailable, error).
pub static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_commands_total",
        "Commands handled",
        &["aggregate", "command", "outcome"],
    )
});

/// Optimistic-concurrency conflicts met (each is retried, up to a bound).
pub static CONFLICTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_command_conflicts_total",
        "Aggregate conflicts between concurrent writers",
        &["aggregate"],
    )
});

/// Time to handle a command, including retries.
pub static COMMAND_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "carshare_command_duration_seconds",
        "Command handling time, retries included",
        &["aggregate", "command"],
        LATENCY_BUCKETS,
    )
});

/// State of each circuit breaker: 0 closed, 1 open, 2 half-open.
pub static CIRCUIT_STATE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_external_circuit_state",
        "Circuit breaker state per external service (0 closed, 1 open, 2 half-open)",
        &["service"],
    )
});

/// Attempts to call external services, by service and outcome.
pub static EXTERNAL_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_external_calls_total",
        "Attempts to call external services",
        &["service", "outcome"],
    )
});

/// Notification deliveries finished, by channel (websocket, push) and outcome (sent, skipped,
/// retried, failed).
pub static NOTIFICATION_DELIVERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_notification_deliveries_total",
        "Notification deliveries by channel and outcome",
        &["channel", "outcome"],
    )
});

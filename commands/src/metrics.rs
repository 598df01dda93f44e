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

/// Appends that conflicted because a cached aggregate state was out of date (another writer
/// had appended since this process last did); each is retried from a fresh load.
pub static STALE_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_command_stale_cache_total",
        "Conflicts caused by an out-of-date cached aggregate state",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_side_metrics_are_registered_under_their_names() {
        COMMANDS
            .with_label_values(&["MetricsTest", "ApproveBooking", "ok"])
            .inc();
        CONFLICTS.with_label_values(&["MetricsTest"]).inc();
        COMMAND_SECONDS
            .with_label_values(&["MetricsTest", "ApproveBooking"])
            .observe(0.01);
        CIRCUIT_STATE.with_label_values(&["metrics-test"]).set(1);
        EXTERNAL_CALLS
            .with_label_values(&["metrics-test", "ok"])
            .inc();
        NOTIFICATION_DELIVERIES
            .with_label_values(&["metrics-test", "sent"])
            .inc();
        let names: Vec<String> = prometheus::default_registry()
            .gather()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        for name in [
            "carshare_commands_total",
            "carshare_command_conflicts_total",
            "carshare_command_duration_seconds",
            "carshare_external_circuit_state",
            "carshare_external_calls_total",
            "carshare_notification_deliveries_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not registered");
        }
        assert_eq!(CIRCUIT_STATE.with_label_values(&["metrics-test"]).get(), 1);
    }
}

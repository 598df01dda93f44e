//! Prometheus metrics of the projection workers.

use carshare_event_store::metrics::{counter_vec, float_gauge_vec, gauge_vec, histogram_vec};
use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec};
use std::sync::LazyLock;

/// Events read by each projection (applied or skipped as not concerning it).
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_projection_events_total",
        "Events processed by each projection",
        &["projection"],
    )
});

/// Global position of each projection's checkpoint.
pub static POSITION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_projection_position",
        "Global position of the projection's checkpoint",
        &["projection"],
    )
});

/// Events in the log not yet processed by each projection (refreshed on scrape).
pub static LAG_EVENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_projection_lag_events",
        "Events not yet processed by the projection",
        &["projection"],
    )
});

/// Age of the oldest event not yet processed (refreshed on scrape).
pub static LAG_SECONDS: LazyLock<GaugeVec> = LazyLock::new(|| {
    float_gauge_vec(
        "carshare_projection_lag_seconds",
        "Age of the oldest event not yet processed by the projection",
        &["projection"],
    )
});

/// Dead-lettered events per projection.
pub static DEAD_LETTERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "carshare_projection_dead_letters",
        "Events the projection could not apply",
        &["projection"],
    )
});

/// Batch apply time.
pub static BATCH_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "carshare_projection_batch_duration_seconds",
        "Time to apply one batch and commit it",
        &["projection"],
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ],
    )
});

/// Failed batches (the batch is retried).
pub static FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_projection_failures_total",
        "Batches that failed and were retried",
        &["projection"],
    )
});

/// Age of the oldest running writing transaction: it holds back every stream reader.
pub static HORIZON_AGE: LazyLock<GaugeVec> = LazyLock::new(|| {
    float_gauge_vec(
        "carshare_stream_horizon_age_seconds",
        "Age of the oldest running writing transaction (holds back the ordered stream)",
        &[],
    )
});

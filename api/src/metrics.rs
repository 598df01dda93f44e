//! HTTP metrics and the Prometheus exposition.

use carshare_event_store::metrics::{counter_vec, histogram_vec, LATENCY_BUCKETS};
use prometheus::{Encoder, HistogramVec, IntCounterVec, TextEncoder};
use std::sync::LazyLock;

/// Requests served, by method, route pattern and status.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_http_requests_total",
        "HTTP requests served",
        &["method", "route", "status"],
    )
});

/// Request latency by method and route pattern.
pub static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "carshare_http_request_duration_seconds",
        "HTTP request latency",
        &["method", "route"],
        LATENCY_BUCKETS,
    )
});

/// Every metric of the default registry in the Prometheus text format.
pub fn render() -> Result<String, prometheus::Error> {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&prometheus::default_registry().gather(), &mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

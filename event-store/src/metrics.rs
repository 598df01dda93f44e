//! Helpers to define Prometheus metrics in the default registry, shared by every crate.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    // Registering twice (a second test app in one process) is harmless: the first stays.
    let _ = prometheus::default_registry().register(Box::new(collector.clone()));
    collector
}

/// A labelled counter.
#[expect(
    clippy::expect_used,
    reason = "names and labels are constants checked by tests"
)]
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

/// A labelled gauge.
#[expect(
    clippy::expect_used,
    reason = "names and labels are constants checked by tests"
)]
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

/// A labelled float gauge.
#[expect(
    clippy::expect_used,
    reason = "names and labels are constants checked by tests"
)]
pub fn float_gauge_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
    register(
        prometheus::GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

/// A labelled histogram with the given buckets (seconds).
#[expect(
    clippy::expect_used,
    reason = "names and labels are constants checked by tests"
)]
pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric definition"),
    )
}

/// Latency buckets from 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_defined_and_registered() {
        let c = counter_vec("carshare_test_total", "test", &["a"]);
        c.with_label_values(&["x"]).inc();
        let names: Vec<String> = prometheus::default_registry()
            .gather()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        assert!(names.contains(&"carshare_test_total".to_string()));
    }
}

//! Retries with exponential backoff, and a circuit breaker, for calls to external services.

use crate::metrics;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How one attempt at an external call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Connection refused, reset, DNS failure.
    #[error("network error: {0}")]
    Network(String),
    /// A 5xx or 429 answer: the service is struggling; worth retrying.
    #[error("service answered {status}")]
    Unavailable {
        /// HTTP status.
        status: u16,
    },
    /// The service refused our credentials (401/403): retrying will not help, the service is
    /// unusable until the configuration is fixed.
    #[error("service refused our credentials ({status})")]
    Unauthorized {
        /// HTTP status.
        status: u16,
    },
    /// The service refused the request itself (other 4xx): the caller's input is at fault.
    #[error("service refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The service's error code, if any.
        code: Option<String>,
        /// The service's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("unreadable answer: {0}")]
    Decode(String),
    /// The circuit breaker is open: the call was not attempted.
    #[error("circuit open")]
    CircuitOpen,
}

impl CallError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Timeout | CallError::Network(_) | CallError::Unavailable { .. }
        )
    }

    /// Whether this failure says the service is unhealthy (counted by the breaker). A refusal of
    /// the caller's input says nothing about the service's health.
    pub fn counts_against_service(&self) -> bool {
        !matches!(self, CallError::Refused { .. } | CallError::CircuitOpen)
    }

    /// Classifies a reqwest transport error.
    pub fn from_reqwest(err: &reqwest::Error) -> CallError {
        if err.is_timeout() {
            CallError::Timeout
        } else if err.is_decode() {
            CallError::Decode(err.to_string())
        } else {
            CallError::Network(err.to_string())
        }
    }
}

/// Retry schedule: up to `max_retries` more attempts after the first, waiting
/// `base_delay × 2^n` (capped at `max_delay`, with ±25% jitter) between them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first wait.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        let jitter = 0.75 + rand::random::<f64>() * 0.5;
        exp.mul_f64(jitter)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries run out.
    pub async fn run<T, F, Fut>(&self, service: &str, mut attempt: F) -> Result<T, CallError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut retry = 0;
        loop {
            match attempt(retry).await {
                Ok(value) => {
                    metrics::EXTERNAL_CALLS
                        .with_label_values(&[service, "ok"])
                        .inc();
                    return Ok(value);
                }
                Err(err) => {
                    metrics::EXTERNAL_CALLS
                        .with_label_values(&[service, outcome(&err)])
                        .inc();
                    if !err.is_retryable() || retry >= self.max_retries {
                        return Err(err);
                    }
                    let wait = self.delay(retry);
                    tracing::warn!(service, retry = retry + 1, error = %err, wait_ms = wait.as_millis() as u64, "retrying external call");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }
}

fn outcome(err: &CallError) -> &'static str {
    match err {
        CallError::Timeout => "timeout",
        CallError::Network(_) => "network",
        CallError::Unavailable { .. } => "unavailable",
        CallError::Unauthorized { .. } => "unauthorized",
        CallError::Refused { .. } => "refused",
        CallError::Decode(_) => "decode",
        CallError::CircuitOpen => "circuit_open",
    }
}

/// Breaker settings: open after `failure_threshold` consecutive failed calls, let one trial call
/// through after `open_for`.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Consecutive failed calls that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a trial call.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_running: bool },
}

/// A circuit breaker around calls to one service. A *call* is one logical operation including
/// its retries.
#[derive(Debug)]
pub struct CircuitBreaker {
    service: &'static str,
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(service: &'static str, settings: BreakerSettings) -> CircuitBreaker {
        metrics::CIRCUIT_STATE.with_label_values(&[service]).set(0);
        CircuitBreaker {
            service,
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether calls are currently refused without trying.
    pub fn is_open(&self) -> bool {
        matches!(self.lock_state(), State::Open { until } if Instant::now() < until)
    }

    fn lock_state(&self) -> State {
        match self.state.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set(&self, state: State) {
        let gauge = match state {
            State::Closed { .. } => 0,
            State::Open { .. } => 1,
            State::HalfOpen { .. } => 2,
        };
        metrics::CIRCUIT_STATE
            .with_label_values(&[self.service])
            .set(gauge);
        match self.state.lock() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    /// Admits a call, or refuses it while the circuit is open.
    fn admit(&self) -> Result<(), CallError> {
        let mut guard = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match *guard {
            State::Closed { .. } => Ok(()),
            State::Open { until } if Instant::now() < until => Err(CallError::CircuitOpen),
            State::Open { .. }
            | State::HalfOpen {
                trial_running: false,
            } => {
                *guard = State::HalfOpen {
                    trial_running: true,
                };
                drop(guard);
                metrics::CIRCUIT_STATE
                    .with_label_values(&[self.service])
                    .set(2);
                tracing::info!(service = self.service, "circuit half-open: trying one call");
                Ok(())
            }
            State::HalfOpen {
                trial_running: true,
            } => Err(CallError::CircuitOpen),
        }
    }

    fn record(&self, result: &Result<(), &CallError>) {
        let state = self.lock_state();
        match result {
            Ok(()) => {
                if state != (State::Closed { failures: 0 }) {
                    if !matches!(state, State::Closed { .. }) {
                        tracing::info!(service = self.service, "circuit closed");
                    }
                    self.set(State::Closed { failures: 0 });
                }
            }
            Err(err) if err.counts_against_service() => {
                let failures = match state {
                    State::Closed { failures } => failures + 1,
                    _ => self.settings.failure_threshold,
                };
                if failures >= self.settings.failure_threshold {
                    tracing::warn!(service = self.service, failures, "circuit opened");
                    self.set(State::Open {
                        until: Instant::now() + self.settings.open_for,
                    });
                } else {
                    self.set(State::Closed { failures });
                }
            }
            Err(_) => {
                // The service answered sensibly: it is healthy even though the call failed.
                if matches!(state, State::HalfOpen { .. }) {
                    self.set(State::Closed { failures: 0 });
                }
            }
        }
    }

    /// Runs `call` through the breaker.
    pub async fn call<T, Fut>(&self, call: Fut) -> Result<T, CallError>
    where
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.admit()?;
        let result = call.await;
        self.record(&result.as_ref().map(|_| ()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_at_most_three_times() {
        let calls = AtomicU32::new(0);
        let result: Result<(), CallError> = fast()
            .run("test", |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::Unavailable { status: 503 })
            })
            .await;
        assert_eq!(result, Err(CallError::Unavailable { status: 503 }));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_refusals() {
        let calls = AtomicU32::new(0);
        let _ = fast()
            .run::<(), _, _>("test", |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CallError::Refused {
                    status: 400,
                    code: None,
                    message: "bad".into(),
                })
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn succeeds_after_a_transient_failure() {
        let calls = AtomicU32::new(0);
        let result = fast()
            .run("test", |n| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(CallError::Timeout)
                    } else {
                        Ok(7)
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn breaker_opens_after_five_failures_and_half_opens_later() {
        let breaker = CircuitBreaker::new(
            "test-breaker",
            BreakerSettings {
                failure_threshold: 5,
                open_for: Duration::from_millis(50),
            },
        );
        for _ in 0..5 {
            let r: Result<(), _> = breaker.call(async { Err(CallError::Timeout) }).await;
            assert_eq!(r, Err(CallError::Timeout));
        }
        assert!(breaker.is_open());
        let refused: Result<(), _> = breaker.call(async { Ok(()) }).await;
        assert_eq!(refused, Err(CallError::CircuitOpen));
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Half-open: one failing trial re-opens at once.
        let r: Result<(), _> = breaker.call(async { Err(CallError::Timeout) }).await;
        assert_eq!(r, Err(CallError::Timeout));
        assert!(breaker.is_open());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let ok: Result<u8, _> = breaker.call(async { Ok(1) }).await;
        assert_eq!(ok, Ok(1));
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn refusals_do_not_open_the_breaker() {
        let breaker = CircuitBreaker::new("test-refusals", BreakerSettings::default());
        for _ in 0..10 {
            let _: Result<(), _> = breaker
                .call(async {
                    Err(CallError::Refused {
                        status: 400,
                        code: None,
                        message: String::new(),
                    })
                })
                .await;
        }
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn while_a_trial_call_runs_other_calls_are_refused() {
        let breaker = CircuitBreaker::new(
            "test-trial",
            BreakerSettings {
                failure_threshold: 1,
                open_for: Duration::from_millis(20),
            },
        );
        let _: Result<(), _> = breaker.call(async { Err(CallError::Timeout) }).await;
        assert!(breaker.is_open());
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let trial = breaker.call(async {
            let _ = released.await;
            Err::<(), _>(CallError::Refused {
                status: 404,
                code: None,
                message: "no such payment".into(),
            })
        });
        let other = async {
            // Runs while the trial waits: refused without being attempted.
            let refused: Result<(), _> = breaker.call(async { Ok(()) }).await;
            let _ = release.send(());
            refused
        };
        let (trial, refused) = tokio::join!(trial, other);
        assert_eq!(refused, Err(CallError::CircuitOpen));
        assert!(matches!(trial, Err(CallError::Refused { status: 404, .. })));
        // A sensible refusal shows the service is healthy: the circuit closes.
        assert!(!breaker.is_open());
        assert_eq!(
            metrics::CIRCUIT_STATE
                .with_label_values(&["test-trial"])
                .get(),
            0
        );
        let ok: Result<u8, _> = breaker.call(async { Ok(3) }).await;
        assert_eq!(ok, Ok(3));
    }

    #[tokio::test]
    async fn every_attempt_is_counted_by_outcome() {
        let no_retry = RetryPolicy {
            max_retries: 0,
            ..fast()
        };
        for err in [
            CallError::Network("reset".into()),
            CallError::Decode("not json".into()),
            CallError::CircuitOpen,
            CallError::Unauthorized { status: 401 },
        ] {
            let label = outcome(&err);
            let before = metrics::EXTERNAL_CALLS
                .with_label_values(&["test-outcomes", label])
                .get();
            let failed = err.clone();
            let result: Result<(), _> = no_retry
                .run("test-outcomes", |_| {
                    let failed = failed.clone();
                    async move { Err(failed) }
                })
                .await;
            assert_eq!(result, Err(err));
            assert_eq!(
                metrics::EXTERNAL_CALLS
                    .with_label_values(&["test-outcomes", label])
                    .get(),
                before + 1,
                "{label}"
            );
        }
        assert_eq!(outcome(&CallError::Network(String::new())), "network");
        assert_eq!(outcome(&CallError::Decode(String::new())), "decode");
        assert_eq!(outcome(&CallError::CircuitOpen), "circuit_open");
    }

    #[tokio::test]
    async fn transport_errors_are_classified() {
        let client = reqwest::Client::new();
        // Nothing listens on port 1.
        let refused = client
            .get("http://127.0.0.1:1/")
            .send()
            .await
            .expect_err("nothing listens there");
        let err = CallError::from_reqwest(&refused);
        assert!(matches!(err, CallError::Network(_)), "{err:?}");
        assert!(err.is_retryable() && err.counts_against_service());

        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("not json"))
            .mount(&server)
            .await;
        let unreadable = client
            .get(server.uri())
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .expect_err("not json");
        let err = CallError::from_reqwest(&unreadable);
        assert!(matches!(err, CallError::Decode(_)), "{err:?}");
        assert!(!err.is_retryable());
    }
}

//! The source of "now" for commands, replaceable in tests.

use chrono::{DateTime, SubsecRound, Utc};

/// Gives the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Now, to the microsecond: the precision Postgres keeps, so a time in a command's answer
    /// equals the same time read back from a read table.
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that shows a set time and moves only when told: for tests of time-driven rules
/// (expiry, pickup windows) and for replaying scenarios.
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `at`, to the microsecond (as [`SystemClock`], and as Postgres keeps it).
    pub fn at(at: DateTime<Utc>) -> ManualClock {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(
            at.trunc_subsecs(6),
        )))
    }

    /// Moves the clock by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            *now = at.trunc_subsecs(6);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_else(|_| Utc::now())
    }
}

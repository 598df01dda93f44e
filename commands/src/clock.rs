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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Timelike};

    #[test]
    fn the_manual_clock_moves_only_when_told_and_keeps_microseconds() {
        let start: DateTime<Utc> = "2026-12-01T00:00:00.123456789Z".parse().unwrap();
        let clock = ManualClock::at(start);
        assert_eq!(clock.now(), start.trunc_subsecs(6));
        assert_eq!(clock.now(), clock.now());
        clock.advance(Duration::minutes(30));
        assert_eq!(
            clock.now(),
            "2026-12-01T00:30:00.123456Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
        // Clones share the time.
        let other = clock.clone();
        other.set("2026-12-02T09:00:00.000000999Z".parse().unwrap());
        assert_eq!(
            clock.now(),
            "2026-12-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn the_system_clock_keeps_what_postgres_keeps() {
        let before = Utc::now() - Duration::seconds(1);
        let now = SystemClock.now();
        assert_eq!(now.nanosecond() % 1_000, 0);
        assert!(now > before && now <= Utc::now());
    }
}

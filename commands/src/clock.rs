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

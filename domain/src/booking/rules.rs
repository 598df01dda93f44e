//! The numbers of the booking rules: statuses, window limits, price, refunds.

use crate::money::{FeeSplit, Won};
use crate::time::TimeWindow;
use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Booking windows start and end on multiples of this many minutes (Seoul and UTC agree, as
/// their offset is a whole number of hours).
pub const ALIGN_MINUTES: u32 = 10;
/// The shortest booking.
pub const MIN_MINUTES: i64 = 60;
/// The longest booking.
pub const MAX_DAYS: i64 = 30;
/// How long before the booked start the guest may pick the car up.
pub const PICKUP_EARLY_MINUTES: i64 = 30;
/// A return later than the end by more than this is recorded as late.
pub const LATE_GRACE_MINUTES: i64 = 15;

/// Where a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Requested; waiting for the host. Holds the car.
    Pending,
    /// Approved by the host. Holds the car.
    Approved,
    /// Refused by the host.
    Rejected,
    /// Picked up; the trip is under way. Holds the car.
    Active,
    /// Returned.
    Completed,
    /// Cancelled by the guest or the host.
    Cancelled,
    /// The host did not answer in time.
    Expired,
}

impl BookingStatus {
    /// The name used in the API and the read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "pending",
            BookingStatus::Approved => "approved",
            BookingStatus::Rejected => "rejected",
            BookingStatus::Active => "active",
            BookingStatus::Completed => "completed",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::Expired => "expired",
        }
    }

    /// Whether a booking in this status keeps the car for its window.
    pub fn holds_vehicle(self) -> bool {
        matches!(
            self,
            BookingStatus::Pending | BookingStatus::Approved | BookingStatus::Active
        )
    }

    /// Every status, in lifecycle order.
    pub const ALL: [BookingStatus; 7] = [
        BookingStatus::Pending,
        BookingStatus::Approved,
        BookingStatus::Rejected,
        BookingStatus::Active,
        BookingStatus::Completed,
        BookingStatus::Cancelled,
        BookingStatus::Expired,
    ];
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BookingStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BookingStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| s.to_string())
    }
}

/// The configurable parts of the rules, fixed into each request's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingPolicy {
    /// How long the host has to answer a request (never beyond the booked start).
    pub response_time: Duration,
    /// Free time kept between two trips of the same car.
    pub buffer: Duration,
}

impl Default for BookingPolicy {
    fn default() -> Self {
        BookingPolicy {
            response_time: Duration::hours(8),
            buffer: Duration::minutes(30),
        }
    }
}

/// Whether an instant falls on the booking grid (whole minutes, multiple of 10).
pub fn aligned(at: DateTime<Utc>) -> bool {
    at.second() == 0 && at.nanosecond() == 0 && at.minute() % ALIGN_MINUTES == 0
}

/// The price of `window` at `hourly_rate`, split into fee and host share.
///
/// Rule: windows are whole multiples of 10 minutes, and each 10 minutes costs a sixth of the
/// hourly rate; the total is `hourly_rate × minutes / 60` rounded **down** to the won (a
/// fraction of a won favours the guest). `None` if the amount does not fit in an `i64`.
pub fn price(hourly_rate: Won, window: &TimeWindow) -> Option<FeeSplit> {
    let minutes = window.duration().num_minutes();
    let total = hourly_rate.mul_div_floor(minutes, 60)?;
    Some(FeeSplit::of(total))
}

/// Which clause of the cancellation policy applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundRule {
    /// Cancelled by the host (or an admin): the guest always gets everything back.
    HostCancelled,
    /// Cancelled at least 24 hours before the start.
    AtLeast24HoursBefore,
    /// Cancelled within an hour of making the booking.
    WithinAnHourOfBooking,
    /// Cancelled less than 24 hours before the start: half back.
    LessThan24HoursBefore,
    /// Cancelled after the start: nothing back.
    AfterStart,
    /// Cancelled by the platform because it was never paid: nothing was paid, nothing back.
    NotPaid,
}

impl RefundRule {
    /// Percentage of the total refunded.
    pub fn percent(self) -> i64 {
        match self {
            RefundRule::HostCancelled
            | RefundRule::AtLeast24HoursBefore
            | RefundRule::WithinAnHourOfBooking => 100,
            RefundRule::LessThan24HoursBefore => 50,
            RefundRule::AfterStart | RefundRule::NotPaid => 0,
        }
    }
}

/// The refund owed when a booking of `total` for `window`, requested at `requested_at`, is
/// cancelled at `at`; `by_host` for a cancellation by the host or an admin.
///
/// Rule: the host cancelling refunds in full; a guest gets everything back up to 24 hours before
/// the start or within an hour of booking, half between then and the start (the half rounded
/// **up** to the won, in the guest's favour), nothing after the start.
pub fn refund_for(
    total: Won,
    window: &TimeWindow,
    requested_at: DateTime<Utc>,
    at: DateTime<Utc>,
    by_host: bool,
) -> (RefundRule, Won) {
    let rule = if by_host {
        RefundRule::HostCancelled
    } else if at < requested_at + Duration::hours(1) && at < window.start {
        RefundRule::WithinAnHourOfBooking
    } else if window.start - at >= Duration::hours(24) {
        RefundRule::AtLeast24HoursBefore
    } else if at < window.start {
        RefundRule::LessThan24HoursBefore
    } else {
        RefundRule::AfterStart
    };
    let amount = match rule.percent() {
        100 => total,
        0 => Won::ZERO,
        _ => Won(total.0 - total.0 / 2),
    };
    (rule, amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(start: &str, end: &str) -> TimeWindow {
        TimeWindow::new(at(start), at(end)).unwrap()
    }

    #[test]
    fn price_is_pro_rata_per_ten_minutes_rounded_down() {
        let w = window("2026-12-01T01:00:00Z", "2026-12-01T03:10:00Z");
        // 130 minutes at 10,000 won/h = 21,666.67 → 21,666.
        let split = price(Won(10_000), &w).unwrap();
        assert_eq!(split.total, Won(21_666));
        assert_eq!(split.platform_fee, Won(3_249));
        assert_eq!(split.host_share, Won(18_417));
        assert_eq!(
            price(
                Won(9_000),
                &window("2026-12-01T01:00:00Z", "2026-12-02T01:00:00Z")
            )
            .unwrap()
            .total,
            Won(216_000)
        );
    }

    #[test]
    fn refunds_follow_the_policy() {
        let w = window("2026-12-03T00:00:00Z", "2026-12-03T04:00:00Z");
        let booked = at("2026-12-01T00:00:00Z");
        let total = Won(40_001);
        let cases = [
            (
                "2026-12-01T00:30:00Z",
                false,
                RefundRule::WithinAnHourOfBooking,
                40_001,
            ),
            (
                "2026-12-02T00:00:00Z",
                false,
                RefundRule::AtLeast24HoursBefore,
                40_001,
            ),
            (
                "2026-12-02T00:00:01Z",
                false,
                RefundRule::LessThan24HoursBefore,
                20_001,
            ),
            ("2026-12-03T00:00:00Z", false, RefundRule::AfterStart, 0),
            (
                "2026-12-03T01:00:00Z",
                true,
                RefundRule::HostCancelled,
                40_001,
            ),
        ];
        for (when, by_host, rule, amount) in cases {
            assert_eq!(
                refund_for(total, &w, booked, at(when), by_host),
                (rule, Won(amount)),
                "{when}"
            );
        }
        // Booked 30 minutes before the start: the hour of grace ends at the start.
        let late_booking = at("2026-12-02T23:30:00Z");
        assert_eq!(
            refund_for(total, &w, late_booking, at("2026-12-03T00:10:00Z"), false).0,
            RefundRule::AfterStart
        );
    }

    #[test]
    fn alignment_is_to_ten_whole_minutes() {
        assert!(aligned(at("2026-12-01T01:10:00Z")));
        assert!(!aligned(at("2026-12-01T01:15:00Z")));
        assert!(!aligned(at("2026-12-01T01:10:30Z")));
    }

    #[test]
    fn statuses_round_trip_and_know_what_holds_the_car() {
        for status in BookingStatus::ALL {
            assert_eq!(status.as_str().parse::<BookingStatus>(), Ok(status));
        }
        let holding: Vec<_> = BookingStatus::ALL
            .into_iter()
            .filter(|s| s.holds_vehicle())
            .collect();
        assert_eq!(
            holding,
            [
                BookingStatus::Pending,
                BookingStatus::Approved,
                BookingStatus::Active
            ]
        );
    }
}

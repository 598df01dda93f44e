//! Time values. Instants are stored in UTC; calendar rules are read in Asia/Seoul.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The time zone every calendar rule is interpreted in.
pub const SEOUL: chrono_tz::Tz = chrono_tz::Asia::Seoul;

/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 1_440;

/// A wall-clock time as minutes after midnight, from `00:00` (0) to `24:00` (1440, the end of the
/// day), so a rule can run to midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MinuteOfDay(u16);

/// A malformed wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time of day (HH:MM, 00:00..=24:00)")]
pub struct InvalidTimeOfDay(pub String);

impl MinuteOfDay {
    /// Midnight at the start of the day.
    pub const START_OF_DAY: MinuteOfDay = MinuteOfDay(0);
    /// Midnight at the end of the day.
    pub const END_OF_DAY: MinuteOfDay = MinuteOfDay(MINUTES_PER_DAY);

    /// From minutes after midnight (0..=1440).
    pub fn new(minutes: u16) -> Option<MinuteOfDay> {
        (minutes <= MINUTES_PER_DAY).then_some(MinuteOfDay(minutes))
    }

    /// From hours and minutes.
    pub fn hm(hours: u16, minutes: u16) -> Option<MinuteOfDay> {
        if minutes >= 60 {
            return None;
        }
        MinuteOfDay::new(hours.checked_mul(60)?.checked_add(minutes)?)
    }

    /// Minutes after midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl FromStr for MinuteOfDay {
    type Err = InvalidTimeOfDay;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidTimeOfDay(s.to_string());
        // Accept HH:MM and HH:MM:SS with zero seconds, as clients often send the latter.
        let mut parts = s.split(':');
        let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
            return Err(err());
        };
        if let Some(sec) = parts.next() {
            if sec != "00" || parts.next().is_some() {
                return Err(err());
            }
        }
        if h.len() != 2 || m.len() != 2 {
            return Err(err());
        }
        let hours: u16 = h.parse().map_err(|_| err())?;
        let minutes: u16 = m.parse().map_err(|_| err())?;
        MinuteOfDay::hm(hours, minutes).ok_or_else(err)
    }
}

impl TryFrom<String> for MinuteOfDay {
    type Error = InvalidTimeOfDay;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<MinuteOfDay> for String {
    fn from(m: MinuteOfDay) -> String {
        m.to_string()
    }
}

impl fmt::Display for MinuteOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The end is not after the start.
    #[error("the window must end after it starts")]
    EndNotAfterStart,
    /// The window ends in the past.
    #[error("the window lies in the past")]
    InThePast,
    /// Longer than allowed.
    #[error("the window is longer than {max_days} days")]
    TooLong {
        /// The maximum length in days.
        max_days: i64,
    },
}

impl TimeWindow {
    /// A window that ends after it starts.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<TimeWindow, WindowError> {
        if end <= start {
            return Err(WindowError::EndNotAfterStart);
        }
        Ok(TimeWindow { start, end })
    }

    /// Checks that the window is not over and is at most `max_days` long. A start up to
    /// `grace` before `now` is tolerated (clocks and typing take time).
    pub fn ensure_upcoming(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        max_days: i64,
    ) -> Result<(), WindowError> {
        if self.end <= now || self.start < now - grace {
            return Err(WindowError::InThePast);
        }
        if self.end - self.start > Duration::days(max_days) {
            return Err(WindowError::TooLong { max_days });
        }
        Ok(())
    }

    /// The length of the window.
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Whether the two windows share any instant.
    pub fn overlaps(&self, other: &TimeWindow) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The window widened by `margin` on both sides.
    pub fn widened(&self, margin: Duration) -> TimeWindow {
        TimeWindow {
            start: self.start - margin,
            end: self.end + margin,
        }
    }

    /// The window cut into Seoul calendar days: each piece is a date and the minutes
    /// `[from, to)` of that day it covers. The start is rounded down and the end up to the minute.
    pub fn seoul_days(&self) -> Vec<(NaiveDate, u16, u16)> {
        let start = floor_minute(self.start.with_timezone(&SEOUL).naive_local());
        let end = ceil_minute(self.end.with_timezone(&SEOUL).naive_local());
        let mut pieces = Vec::new();
        let mut day = start.date();
        while day.and_time(NaiveTime::MIN) < end {
            let day_start = day.and_time(NaiveTime::MIN);
            let from = if start > day_start {
                minutes_after_midnight(start)
            } else {
                0
            };
            let next_day = day.succ_opt();
            let to = match next_day {
                Some(next) if end < next.and_time(NaiveTime::MIN) => minutes_after_midnight(end),
                _ => MINUTES_PER_DAY,
            };
            if from < to {
                pieces.push((day, from, to));
            }
            match next_day {
                Some(next) => day = next,
                None => break,
            }
        }
        pieces
    }
}

/// Minutes in a week.
pub const MINUTES_PER_WEEK: u32 = 10_080;

impl TimeWindow {
    /// The window as minute-of-week ranges in Seoul time (0 = Sunday 00:00, up to 10080): one
    /// range, or two when it wraps past Saturday midnight (the second is `(0, 0)`, empty,
    /// otherwise), or the whole week for windows of a week or more. Start rounds down and end
    /// up to the minute.
    pub fn week_pieces(&self) -> ((u32, u32), (u32, u32)) {
        let start = floor_minute(self.start.with_timezone(&SEOUL).naive_local());
        let end = ceil_minute(self.end.with_timezone(&SEOUL).naive_local());
        let len = u32::try_from((end - start).num_minutes().max(0)).unwrap_or(u32::MAX);
        let start_min = start.weekday().num_days_from_sunday() * 1_440
            + u32::from(minutes_after_midnight(start));
        if len >= MINUTES_PER_WEEK {
            ((0, MINUTES_PER_WEEK), (0, 0))
        } else if start_min + len <= MINUTES_PER_WEEK {
            ((start_min, start_min + len), (0, 0))
        } else {
            (
                (start_min, MINUTES_PER_WEEK),
                (0, start_min + len - MINUTES_PER_WEEK),
            )
        }
    }
}

fn floor_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn ceil_minute(t: NaiveDateTime) -> NaiveDateTime {
    let floored = floor_minute(t);
    if floored == t {
        t
    } else {
        floored + Duration::minutes(1)
    }
}

fn minutes_after_midnight(t: NaiveDateTime) -> u16 {
    // hour < 24 and minute < 60, so this is below 1440.
    (t.hour() * 60 + t.minute()) as u16
}

/// The UTC instant of a Seoul wall-clock time on a date (`24:00` is the next midnight).
pub fn seoul_instant(date: NaiveDate, at: MinuteOfDay) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    let local = midnight + Duration::minutes(i64::from(at.minutes()));
    // Seoul has had no daylight saving since 1988, so every local time maps to one instant;
    // fall back to the fixed +09:00 offset should the zone database ever say otherwise.
    SEOUL
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&(local - Duration::hours(9))))
}

/// Today's date in Seoul.
pub fn seoul_date(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&SEOUL).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn minute_of_day_round_trips_and_allows_end_of_day() {
        assert_eq!("09:30".parse::<MinuteOfDay>().unwrap().minutes(), 570);
        assert_eq!(
            "24:00".parse::<MinuteOfDay>().unwrap(),
            MinuteOfDay::END_OF_DAY
        );
        assert_eq!("18:00:00".parse::<MinuteOfDay>().unwrap().minutes(), 1080);
        assert_eq!(MinuteOfDay::hm(7, 5).unwrap().to_string(), "07:05");
        for bad in ["24:01", "9:30", "09:60", "abc", "", "09:30:15", "25:00"] {
            assert!(bad.parse::<MinuteOfDay>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_must_end_after_they_start() {
        let t = utc("2026-12-01T00:00:00Z");
        assert_eq!(TimeWindow::new(t, t), Err(WindowError::EndNotAfterStart));
    }

    #[test]
    fn upcoming_windows_are_checked_against_now() {
        let now = utc("2026-12-01T00:00:00Z");
        let past =
            TimeWindow::new(utc("2026-11-30T00:00:00Z"), utc("2026-11-30T05:00:00Z")).unwrap();
        assert_eq!(
            past.ensure_upcoming(now, Duration::minutes(5), 30),
            Err(WindowError::InThePast)
        );
        let long =
            TimeWindow::new(utc("2026-12-02T00:00:00Z"), utc("2027-02-02T00:00:00Z")).unwrap();
        assert_eq!(
            long.ensure_upcoming(now, Duration::minutes(5), 30),
            Err(WindowError::TooLong { max_days: 30 })
        );
    }

    #[test]
    fn a_window_splits_into_seoul_days() {
        // 2026-12-01 22:00 KST to 2026-12-02 02:30 KST.
        let w = TimeWindow::new(utc("2026-12-01T13:00:00Z"), utc("2026-12-01T17:30:00Z")).unwrap();
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert_eq!(w.seoul_days(), vec![(d1, 1320, 1440), (d2, 0, 150)]);
    }

    #[test]
    fn a_window_ending_at_midnight_has_no_empty_tail() {
        let w = TimeWindow::new(utc("2026-12-01T06:00:00Z"), utc("2026-12-01T15:00:00Z")).unwrap();
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(w.seoul_days(), vec![(d1, 900, 1440)]);
    }

    #[test]
    fn seconds_round_outwards() {
        let w = TimeWindow::new(utc("2026-12-01T00:00:30Z"), utc("2026-12-01T00:10:01Z")).unwrap();
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(w.seoul_days(), vec![(d1, 540, 551)]);
    }

    #[test]
    fn week_pieces_wrap_past_saturday_midnight() {
        // 2026-12-05 is a Saturday; 22:00 KST Saturday to 02:00 KST Sunday.
        let w = TimeWindow::new(utc("2026-12-05T13:00:00Z"), utc("2026-12-05T17:00:00Z")).unwrap();
        assert_eq!(w.week_pieces(), ((6 * 1440 + 1320, 10_080), (0, 120)));
        // Tuesday 09:00-18:00 KST.
        let w = TimeWindow::new(utc("2026-12-01T00:00:00Z"), utc("2026-12-01T09:00:00Z")).unwrap();
        assert_eq!(w.week_pieces(), ((2 * 1440 + 540, 2 * 1440 + 1080), (0, 0)));
        let w = TimeWindow::new(utc("2026-12-01T00:00:00Z"), utc("2026-12-09T00:00:00Z")).unwrap();
        assert_eq!(w.week_pieces(), ((0, 10_080), (0, 0)));
    }

    #[test]
    fn seoul_instants_are_nine_hours_ahead_of_utc() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(
            seoul_instant(d, MinuteOfDay::hm(9, 0).unwrap()),
            utc("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            seoul_instant(d, MinuteOfDay::END_OF_DAY),
            utc("2026-12-01T15:00:00Z")
        );
    }

    #[test]
    fn a_time_of_day_is_stored_as_text() {
        let nine = MinuteOfDay::hm(9, 0).unwrap();
        assert_eq!(serde_json::to_value(nine).unwrap(), "09:00");
        assert_eq!(String::from(MinuteOfDay::END_OF_DAY), "24:00");
        assert_eq!(
            serde_json::from_value::<MinuteOfDay>(serde_json::json!("09:00")).unwrap(),
            nine
        );
        assert!(serde_json::from_value::<MinuteOfDay>(serde_json::json!("9 o'clock")).is_err());
    }

    #[test]
    fn an_upcoming_window_within_the_limit_is_accepted() {
        let now = utc("2026-12-01T00:00:00Z");
        // Started two minutes ago: within a five-minute grace.
        let w = TimeWindow::new(utc("2026-11-30T23:58:00Z"), utc("2026-12-01T02:00:00Z")).unwrap();
        assert_eq!(w.ensure_upcoming(now, Duration::minutes(5), 30), Ok(()));
        assert_eq!(w.duration(), Duration::minutes(122));
    }
}

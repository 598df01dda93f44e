//! When a vehicle may be booked: weekly recurring windows and windows on specific dates, each
//! either available or blocked, read as Seoul wall-clock time.
//!
//! The rule set of a vehicle decides availability as follows:
//! - with no *available* rule at all, the vehicle is available at all times;
//! - otherwise only the union of its available windows (weekly and dated) is bookable;
//! - blocked windows (weekly or dated) are always subtracted.
//!
//! A window is covered when every minute of it is bookable.

use super::error::{Problem, VehicleError};
use crate::time::{seoul_instant, MinuteOfDay, TimeWindow};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Most rules one vehicle may carry.
pub const MAX_RULES: usize = 200;
/// How far ahead a dated rule may lie.
pub const MAX_DAYS_AHEAD: i64 = 730;
/// Minutes in a week.
pub const MINUTES_PER_WEEK: u32 = 7 * 1_440;

/// When a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Every week on this day (0 = Sunday … 6 = Saturday).
    Weekly {
        /// Day of the week, 0 = Sunday.
        day_of_week: u8,
    },
    /// Once, on this Seoul calendar date.
    OnDate {
        /// The date.
        date: NaiveDate,
    },
}

/// One availability rule, serialised in the seed's flat shape
/// (`day_of_week`, `start_time`, `end_time`, `is_recurring`, `specific_date`, `is_blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RuleWire", into = "RuleWire")]
pub struct AvailabilityRule {
    /// When it applies.
    pub schedule: Schedule,
    /// Start of the window on that day.
    pub start: MinuteOfDay,
    /// End of the window on that day (exclusive; `24:00` is midnight).
    pub end: MinuteOfDay,
    /// Whether the window is blocked rather than available.
    pub blocked: bool,
}

/// The flat wire shape of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWire {
    /// 0 = Sunday … 6 = Saturday, for recurring rules.
    pub day_of_week: Option<u8>,
    /// `HH:MM`.
    pub start_time: MinuteOfDay,
    /// `HH:MM`, up to `24:00`.
    pub end_time: MinuteOfDay,
    /// Weekly (true) or on `specific_date` (false); when absent, a rule with a date is one-off.
    #[serde(default)]
    pub is_recurring: Option<bool>,
    /// The date of a one-off rule.
    pub specific_date: Option<NaiveDate>,
    /// Blocked rather than available (default false).
    #[serde(default)]
    pub is_blocked: bool,
}

/// A rule whose parts do not fit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleShapeError {
    /// A recurring rule needs a day of the week and no date.
    #[error("a recurring rule needs day_of_week (0-6) and no specific_date")]
    Recurring,
    /// A one-off rule needs a date and no day of the week.
    #[error("a one-off rule needs specific_date and no day_of_week")]
    OneOff,
    /// The window is empty or reversed.
    #[error("end_time must be after start_time")]
    EmptyWindow,
}

impl TryFrom<RuleWire> for AvailabilityRule {
    type Error = RuleShapeError;

    fn try_from(w: RuleWire) -> Result<Self, Self::Error> {
        let recurring = w.is_recurring.unwrap_or(w.specific_date.is_none());
        let schedule = match (recurring, w.day_of_week, w.specific_date) {
            (true, Some(day), None) if day <= 6 => Schedule::Weekly { day_of_week: day },
            (true, _, _) => return Err(RuleShapeError::Recurring),
            (false, None, Some(date)) => Schedule::OnDate { date },
            (false, _, _) => return Err(RuleShapeError::OneOff),
        };
        if w.end_time <= w.start_time {
            return Err(RuleShapeError::EmptyWindow);
        }
        Ok(AvailabilityRule {
            schedule,
            start: w.start_time,
            end: w.end_time,
            blocked: w.is_blocked,
        })
    }
}

impl From<AvailabilityRule> for RuleWire {
    fn from(r: AvailabilityRule) -> RuleWire {
        let (is_recurring, day_of_week, specific_date) = match r.schedule {
            Schedule::Weekly { day_of_week } => (true, Some(day_of_week), None),
            Schedule::OnDate { date } => (false, None, Some(date)),
        };
        RuleWire {
            day_of_week,
            start_time: r.start,
            end_time: r.end,
            is_recurring: Some(is_recurring),
            specific_date,
            is_blocked: r.blocked,
        }
    }
}

impl AvailabilityRule {
    fn applies_on(&self, date: NaiveDate) -> bool {
        match self.schedule {
            Schedule::Weekly { day_of_week } => {
                date.weekday().num_days_from_sunday() == u32::from(day_of_week)
            }
            Schedule::OnDate { date: d } => d == date,
        }
    }

    fn minutes(&self) -> (u16, u16) {
        (self.start.minutes(), self.end.minutes())
    }
}

/// A vehicle's rule set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AvailabilityRules(pub Vec<AvailabilityRule>);

impl AvailabilityRules {
    /// Checks the set as a whole against the limits, given the current time.
    pub fn validate(rules: &[AvailabilityRule], now: DateTime<Utc>) -> Result<(), VehicleError> {
        if rules.len() > MAX_RULES {
            return Err(VehicleError::invalid(
                "rules",
                Problem::TooMany { max: MAX_RULES },
            ));
        }
        let latest = crate::time::seoul_date(now) + Duration::days(MAX_DAYS_AHEAD);
        for (i, rule) in rules.iter().enumerate() {
            if let Schedule::OnDate { date } = rule.schedule {
                if date > latest {
                    return Err(VehicleError::invalid(
                        format!("rules[{i}].specific_date"),
                        Problem::DateTooFar {
                            max_days: MAX_DAYS_AHEAD,
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rules.
    pub fn rules(&self) -> &[AvailabilityRule] {
        &self.0
    }

    /// Whether any rule makes time available (otherwise all time is available).
    pub fn has_available_rules(&self) -> bool {
        self.0.iter().any(|r| !r.blocked)
    }

    /// Whether every minute of the window is bookable under these rules.
    pub fn covers(&self, window: &TimeWindow) -> bool {
        let restricted = self.has_available_rules();
        window.seoul_days().into_iter().all(|(date, from, to)| {
            let todays = self.0.iter().filter(|r| r.applies_on(date));
            let mut open: Vec<(u16, u16)> = Vec::new();
            for rule in todays {
                let (s, e) = rule.minutes();
                if rule.blocked {
                    if s < to && from < e {
                        return false;
                    }
                } else {
                    open.push((s, e));
                }
            }
            !restricted || interval_covered(&mut open, from, to)
        })
    }

    /// Weekly windows as minute-of-week intervals `[from, to)` (0 = Sunday 00:00), merged and
    /// sorted: the available ones (`blocked == false`) or the blocked ones.
    pub fn weekly_minutes(&self, blocked: bool) -> Vec<(u32, u32)> {
        let mut spans: Vec<(u32, u32)> = self
            .0
            .iter()
            .filter(|r| r.blocked == blocked)
            .filter_map(|r| match r.schedule {
                Schedule::Weekly { day_of_week } => {
                    let base = u32::from(day_of_week) * 1_440;
                    let (s, e) = r.minutes();
                    Some((base + u32::from(s), base + u32::from(e)))
                }
                Schedule::OnDate { .. } => None,
            })
            .collect();
        merge(&mut spans);
        spans
    }

    /// Dated windows as UTC instants, merged and sorted: the available or the blocked ones.
    pub fn dated_instants(&self, blocked: bool) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = self
            .0
            .iter()
            .filter(|r| r.blocked == blocked)
            .filter_map(|r| match r.schedule {
                Schedule::OnDate { date } => {
                    Some((seoul_instant(date, r.start), seoul_instant(date, r.end)))
                }
                Schedule::Weekly { .. } => None,
            })
            .collect();
        merge(&mut spans);
        spans
    }
}

fn merge<T: Ord + Copy>(spans: &mut Vec<(T, T)>) {
    spans.sort();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(spans.len());
    for &(s, e) in spans.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => {
                if e > last.1 {
                    last.1 = e;
                }
            }
            _ => merged.push((s, e)),
        }
    }
    *spans = merged;
}

/// Whether the union of `spans` contains `[from, to)`.
fn interval_covered(spans: &mut Vec<(u16, u16)>, from: u16, to: u16) -> bool {
    merge(spans);
    spans.iter().any(|&(s, e)| s <= from && to <= e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(day: u8, start: &str, end: &str, blocked: bool) -> AvailabilityRule {
        AvailabilityRule {
            schedule: Schedule::Weekly { day_of_week: day },
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            blocked,
        }
    }

    fn dated(date: &str, start: &str, end: &str, blocked: bool) -> AvailabilityRule {
        AvailabilityRule {
            schedule: Schedule::OnDate {
                date: date.parse().unwrap(),
            },
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            blocked,
        }
    }

    /// A window given in Seoul local time.
    fn kst(start: &str, end: &str) -> TimeWindow {
        let p = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(&format!("{s}+09:00"))
                .unwrap()
                .with_timezone(&Utc)
        };
        TimeWindow::new(p(start), p(end)).unwrap()
    }

    // 2026-12-01 is a Tuesday (day 2).

    #[test]
    fn no_rules_means_always_available() {
        let rules = AvailabilityRules::default();
        assert!(rules.covers(&kst("2026-12-01T03:00:00", "2026-12-09T03:00:00")));
    }

    #[test]
    fn weekly_rules_cover_only_their_hours() {
        let rules = AvailabilityRules(vec![weekly(2, "09:00", "18:00", false)]);
        assert!(rules.covers(&kst("2026-12-01T09:00:00", "2026-12-01T18:00:00")));
        assert!(!rules.covers(&kst("2026-12-01T08:59:00", "2026-12-01T12:00:00")));
        assert!(!rules.covers(&kst("2026-12-02T10:00:00", "2026-12-02T11:00:00")));
    }

    #[test]
    fn adjacent_rules_join_across_midnight() {
        let rules = AvailabilityRules(vec![
            weekly(2, "20:00", "24:00", false),
            weekly(3, "00:00", "06:00", false),
        ]);
        assert!(rules.covers(&kst("2026-12-01T22:00:00", "2026-12-02T05:00:00")));
        assert!(!rules.covers(&kst("2026-12-01T22:00:00", "2026-12-02T07:00:00")));
    }

    #[test]
    fn saturday_night_wraps_to_sunday() {
        let rules = AvailabilityRules(vec![
            weekly(6, "18:00", "24:00", false),
            weekly(0, "00:00", "12:00", false),
        ]);
        // 2026-12-05 is a Saturday.
        assert!(rules.covers(&kst("2026-12-05T20:00:00", "2026-12-06T10:00:00")));
    }

    #[test]
    fn blocked_windows_always_win() {
        let rules = AvailabilityRules(vec![
            weekly(2, "00:00", "24:00", false),
            dated("2026-12-01", "12:00", "13:00", true),
        ]);
        assert!(!rules.covers(&kst("2026-12-01T11:00:00", "2026-12-01T12:30:00")));
        assert!(rules.covers(&kst("2026-12-01T13:00:00", "2026-12-01T15:00:00")));
        assert!(rules.covers(&kst("2026-12-08T11:00:00", "2026-12-08T12:30:00")));
    }

    #[test]
    fn only_blocked_rules_leave_the_rest_open() {
        let rules = AvailabilityRules(vec![weekly(0, "00:00", "24:00", true)]);
        assert!(rules.covers(&kst("2026-12-01T00:00:00", "2026-12-05T23:00:00")));
        assert!(!rules.covers(&kst("2026-12-05T23:00:00", "2026-12-06T01:00:00")));
    }

    #[test]
    fn dated_and_weekly_windows_combine() {
        let rules = AvailabilityRules(vec![
            weekly(2, "09:00", "18:00", false),
            dated("2026-12-01", "18:00", "22:00", false),
        ]);
        assert!(rules.covers(&kst("2026-12-01T10:00:00", "2026-12-01T21:00:00")));
        assert!(!rules.covers(&kst("2026-12-08T10:00:00", "2026-12-08T21:00:00")));
    }

    #[test]
    fn weekly_minutes_merge_and_dated_instants_are_utc() {
        let rules = AvailabilityRules(vec![
            weekly(1, "09:00", "12:00", false),
            weekly(1, "11:00", "18:00", false),
            weekly(0, "00:00", "01:00", true),
            dated("2026-12-01", "09:00", "10:00", false),
        ]);
        assert_eq!(
            rules.weekly_minutes(false),
            vec![(1_440 + 540, 1_440 + 1_080)]
        );
        assert_eq!(rules.weekly_minutes(true), vec![(0, 60)]);
        let dated = rules.dated_instants(false);
        assert_eq!(dated.len(), 1);
        assert_eq!(dated[0].0.to_rfc3339(), "2026-12-01T00:00:00+00:00");
    }

    #[test]
    fn the_wire_shape_is_checked() {
        let ok = serde_json::json!({"day_of_week": 1, "start_time": "09:00", "end_time": "18:00",
            "is_recurring": true, "specific_date": null, "is_blocked": false});
        assert!(serde_json::from_value::<AvailabilityRule>(ok).is_ok());
        for bad in [
            serde_json::json!({"day_of_week": 7, "start_time": "09:00", "end_time": "18:00", "is_recurring": true, "is_blocked": false}),
            serde_json::json!({"day_of_week": 1, "start_time": "09:00", "end_time": "18:00", "is_recurring": false, "specific_date": "2026-12-01", "is_blocked": false}),
            serde_json::json!({"start_time": "18:00", "end_time": "09:00", "is_recurring": false, "specific_date": "2026-12-01", "is_blocked": false}),
        ] {
            assert!(serde_json::from_value::<AvailabilityRule>(bad).is_err());
        }
    }

    #[test]
    fn too_many_rules_or_dates_too_far_are_refused() {
        let now = "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let many = vec![weekly(1, "09:00", "10:00", false); MAX_RULES + 1];
        assert!(AvailabilityRules::validate(&many, now).is_err());
        let far = vec![dated("2029-01-01", "09:00", "10:00", false)];
        assert!(AvailabilityRules::validate(&far, now).is_err());
        let fine = vec![dated("2027-06-01", "09:00", "10:00", false)];
        assert!(AvailabilityRules::validate(&fine, now).is_ok());
    }

    #[test]
    fn rules_round_trip_through_the_wire_shape() {
        for rule in [
            weekly(0, "00:00", "24:00", false),
            dated("2026-12-24", "18:00", "23:00", true),
        ] {
            let wire = RuleWire::from(rule);
            let weekly = matches!(rule.schedule, Schedule::Weekly { .. });
            assert_eq!(wire.is_recurring, Some(weekly));
            assert_eq!(AvailabilityRule::try_from(wire), Ok(rule));
        }
        let set = AvailabilityRules(vec![weekly(2, "09:00", "18:00", true)]);
        assert_eq!(set.rules().len(), 1);
        assert!(!set.has_available_rules());
    }
}

//! Holding a car for bookings: the write-side guarantee against double bookings.

use super::*;
use crate::actor::{Actor, Role};
use crate::money::Won;
use crate::plate::LicensePlate;
use crate::time::{MinuteOfDay, TimeWindow};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use uuid::Uuid;

type VehicleTest = TestFramework<Vehicle>;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    t("2026-12-01T00:00:00Z")
}

fn host() -> Actor {
    Actor::new(Uuid::from_u128(2), Role::Host)
}

fn guest() -> Actor {
    Actor::new(Uuid::from_u128(1), Role::Guest)
}

fn registered() -> VehicleEvent {
    VehicleEvent::VehicleRegistered {
        vehicle_id: Uuid::from_u128(200),
        owner_id: host().user_id,
        details: VehicleDetails {
            license_plate: LicensePlate::parse("12가3456").unwrap(),
            make: "Hyundai".into(),
            model: "Sonata".into(),
            year: 2024,
            color: None,
            fuel_type: None,
            transmission: None,
            description: None,
        },
        hourly_rate: Won(12_000),
        location: Location {
            address: "서울특별시 중구 세종대로 110".into(),
            lat: 37.5663,
            lng: 126.9779,
        },
        images: vec![],
        status: VehicleStatus::Active,
        at: t("2026-11-01T00:00:00Z"),
    }
}

fn window(start: &str, end: &str) -> TimeWindow {
    TimeWindow::new(t(start), t(end)).unwrap()
}

fn reserve(booking: u128, w: TimeWindow) -> VehicleCommand {
    VehicleCommand {
        actor: guest(),
        at: now(),
        action: VehicleAction::Reserve {
            booking_id: Uuid::from_u128(booking),
            window: w,
            buffer: Duration::minutes(30),
        },
    }
}

fn reserved(booking: u128, w: TimeWindow) -> VehicleEvent {
    VehicleEvent::WindowReserved {
        booking_id: Uuid::from_u128(booking),
        guest_id: guest().user_id,
        start: w.start,
        end: w.end,
        at: now(),
    }
}

#[test]
fn a_free_window_is_reserved() {
    let w = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    VehicleTest::with(())
        .given(vec![registered()])
        .when(reserve(100, w))
        .then_expect_events(vec![reserved(100, w)]);
}

#[test]
fn overlapping_or_too_close_windows_are_refused_and_the_buffer_is_enough() {
    let held = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    for (s, e, ok) in [
        ("2026-12-03T04:00:00Z", "2026-12-03T06:00:00Z", false),
        ("2026-12-03T00:00:00Z", "2026-12-03T08:00:00Z", false),
        ("2026-12-03T05:20:00Z", "2026-12-03T07:00:00Z", false),
        ("2026-12-02T23:00:00Z", "2026-12-03T00:40:00Z", false),
        ("2026-12-03T05:30:00Z", "2026-12-03T07:00:00Z", true),
        ("2026-12-02T23:00:00Z", "2026-12-03T00:30:00Z", true),
    ] {
        let result = VehicleTest::with(())
            .given(vec![registered(), reserved(100, held)])
            .when(reserve(101, window(s, e)));
        if ok {
            result.then_expect_events(vec![reserved(101, window(s, e))]);
        } else {
            result.then_expect_error(VehicleError::WindowTaken);
        }
    }
}

#[test]
fn a_released_window_can_be_booked_again() {
    let w = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    let released = VehicleEvent::ReservationReleased {
        booking_id: Uuid::from_u128(100),
        reason: "BookingCancelled".into(),
        at: now(),
    };
    VehicleTest::with(())
        .given(vec![registered(), reserved(100, w), released])
        .when(reserve(101, w))
        .then_expect_events(vec![reserved(101, w)]);
}

#[test]
fn releasing_is_idempotent() {
    let release = |booking: u128| VehicleCommand {
        actor: guest(),
        at: now(),
        action: VehicleAction::Release {
            booking_id: Uuid::from_u128(booking),
            reason: "BookingRejected".into(),
        },
    };
    let w = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    VehicleTest::with(())
        .given(vec![registered(), reserved(100, w)])
        .when(release(100))
        .then_expect_events(vec![VehicleEvent::ReservationReleased {
            booking_id: Uuid::from_u128(100),
            reason: "BookingRejected".into(),
            at: now(),
        }]);
    VehicleTest::with(())
        .given(vec![registered()])
        .when(release(100))
        .then_expect_events(vec![]);
}

#[test]
fn only_bookable_cars_within_their_rules_are_reserved() {
    let w = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    let inactive = VehicleEvent::VehicleStatusChanged {
        status: VehicleStatus::Maintenance,
        previous: VehicleStatus::Active,
        at: now(),
    };
    VehicleTest::with(())
        .given(vec![registered(), inactive])
        .when(reserve(100, w))
        .then_expect_error(VehicleError::NotBookable);
    VehicleTest::with(())
        .given_no_previous_events()
        .when(reserve(100, w))
        .then_expect_error(VehicleError::NotFound);
    let own = VehicleCommand {
        actor: Actor::new(host().user_id, Role::Guest),
        ..reserve(100, w)
    };
    VehicleTest::with(())
        .given(vec![registered()])
        .when(own)
        .then_expect_error(VehicleError::OwnVehicle);
    // Available only on Thursdays 09:00–18:00 Seoul; 2026-12-03 is a Thursday, and the window
    // is 10:00–14:00 Seoul: inside. 2026-12-04 is not.
    let thursdays = VehicleEvent::AvailabilitySet {
        rules: vec![AvailabilityRule {
            schedule: Schedule::Weekly { day_of_week: 4 },
            start: MinuteOfDay::hm(9, 0).unwrap(),
            end: MinuteOfDay::hm(18, 0).unwrap(),
            blocked: false,
        }],
        at: now(),
    };
    VehicleTest::with(())
        .given(vec![registered(), thursdays.clone()])
        .when(reserve(100, w))
        .then_expect_events(vec![reserved(100, w)]);
    VehicleTest::with(())
        .given(vec![registered(), thursdays])
        .when(reserve(
            100,
            window("2026-12-04T01:00:00Z", "2026-12-04T05:00:00Z"),
        ))
        .then_expect_error(VehicleError::OutsideAvailability);
}

#[test]
fn a_car_with_upcoming_bookings_cannot_be_removed() {
    let w = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    VehicleTest::with(())
        .given(vec![registered(), reserved(100, w)])
        .when(VehicleCommand {
            actor: host(),
            at: now(),
            action: VehicleAction::Remove { reason: None },
        })
        .then_expect_error(VehicleError::HasBookings);
}

#[test]
fn holds_follow_reservations_and_releases() {
    let mut vehicle = Vehicle::default();
    let a = window("2026-12-03T01:00:00Z", "2026-12-03T05:00:00Z");
    let b = window("2026-12-05T01:00:00Z", "2026-12-05T05:00:00Z");
    for event in [registered(), reserved(100, a), reserved(101, b)] {
        vehicle.apply(event);
    }
    vehicle.apply(VehicleEvent::ReservationReleased {
        booking_id: Uuid::from_u128(100),
        reason: "BookingCompleted".into(),
        at: now(),
    });
    let holds = &vehicle.state.unwrap().holds;
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].booking_id, Uuid::from_u128(101));
}

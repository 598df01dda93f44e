//! Given / when / then for every transition and refusal of a booking.

use super::*;
use crate::booking::review::CategoryRatings;
use crate::booking::rules::{BookingPolicy, RefundRule};
use crate::booking::{VehicleTerms, BOOKING_EVENT_VERSION};
use cqrs_es::test::TestFramework;

type BookingTest = TestFramework<Booking>;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Requests are made at this instant unless a test says otherwise.
fn booked_at() -> DateTime<Utc> {
    t("2026-12-01T00:00:00Z")
}

fn start() -> DateTime<Utc> {
    t("2026-12-03T01:00:00Z")
}

fn end() -> DateTime<Utc> {
    t("2026-12-03T05:30:00Z")
}

fn guest() -> Actor {
    Actor::new(Uuid::from_u128(1), Role::Guest)
}

fn host() -> Actor {
    Actor::new(Uuid::from_u128(2), Role::Host)
}

fn stranger() -> Actor {
    Actor::new(Uuid::from_u128(3), Role::Guest)
}

fn admin() -> Actor {
    Actor::new(Uuid::from_u128(4), Role::Admin)
}

fn new_booking() -> NewBooking {
    NewBooking {
        booking_id: Uuid::from_u128(100),
        vehicle: VehicleTerms {
            vehicle_id: Uuid::from_u128(200),
            host_id: host().user_id,
            hourly_rate: Won(12_000),
        },
        start: start(),
        end: end(),
        guest_message: Some("  출장용입니다  ".into()),
        policy: BookingPolicy::default(),
    }
}

fn cmd(actor: Option<Actor>, at: DateTime<Utc>, action: BookingAction) -> BookingCommand {
    BookingCommand { actor, at, action }
}

fn requested() -> BookingEvent {
    // 4 h 30 min at 12,000 won/h = 54,000; fee 8,100; host 45,900.
    BookingEvent::BookingRequested {
        booking_id: Uuid::from_u128(100),
        vehicle_id: Uuid::from_u128(200),
        guest_id: guest().user_id,
        host_id: host().user_id,
        start: start(),
        end: end(),
        hourly_rate: Won(12_000),
        total_amount: Won(54_000),
        platform_fee: Won(8_100),
        host_share: Won(45_900),
        guest_message: Some("출장용입니다".into()),
        respond_by: t("2026-12-01T08:00:00Z"),
        at: booked_at(),
    }
}

fn approved() -> BookingEvent {
    BookingEvent::BookingApproved {
        host_response: None,
        at: t("2026-12-01T01:00:00Z"),
    }
}

fn started() -> BookingEvent {
    BookingEvent::BookingStarted {
        at: t("2026-12-03T00:40:00Z"),
    }
}

#[test]
fn a_guest_requests_a_booking_priced_by_the_rules() {
    BookingTest::with(())
        .given_no_previous_events()
        .when(cmd(
            Some(guest()),
            booked_at(),
            BookingAction::Request(new_booking()),
        ))
        .then_expect_events(vec![requested()]);
}

#[test]
fn the_answer_deadline_never_passes_the_start() {
    let mut soon = new_booking();
    soon.start = t("2026-12-01T03:00:00Z");
    soon.end = t("2026-12-01T04:00:00Z");
    let events = Booking::default()
        .decide(cmd(
            Some(guest()),
            booked_at(),
            BookingAction::Request(soon),
        ))
        .unwrap();
    let BookingEvent::BookingRequested { respond_by, .. } = &events[0] else {
        panic!("expected a request, got {events:?}");
    };
    assert_eq!(*respond_by, t("2026-12-01T03:00:00Z"));
}

#[test]
fn only_guests_book_and_never_their_own_car() {
    for (actor, error) in [
        (host(), BookingError::GuestRoleRequired),
        (admin(), BookingError::GuestRoleRequired),
    ] {
        BookingTest::with(())
            .given_no_previous_events()
            .when(cmd(
                Some(actor),
                booked_at(),
                BookingAction::Request(new_booking()),
            ))
            .then_expect_error(error);
    }
    let own = Actor::new(host().user_id, Role::Guest);
    BookingTest::with(())
        .given_no_previous_events()
        .when(cmd(
            Some(own),
            booked_at(),
            BookingAction::Request(new_booking()),
        ))
        .then_expect_error(BookingError::OwnVehicle);
}

#[test]
fn windows_are_validated() {
    let cases = [
        (
            "2026-12-03T05:00:00Z",
            "2026-12-03T05:00:00Z",
            "end_datetime",
            BookingProblem::EndNotAfterStart,
        ),
        (
            "2026-12-03T05:00:00Z",
            "2026-12-03T04:00:00Z",
            "end_datetime",
            BookingProblem::EndNotAfterStart,
        ),
        (
            "2026-11-30T05:00:00Z",
            "2026-11-30T08:00:00Z",
            "start_datetime",
            BookingProblem::InThePast,
        ),
        (
            "2026-12-03T05:00:00Z",
            "2026-12-03T05:50:00Z",
            "end_datetime",
            BookingProblem::TooShort { min_minutes: 60 },
        ),
        (
            "2026-12-03T05:00:00Z",
            "2027-01-02T05:10:00Z",
            "end_datetime",
            BookingProblem::TooLong { max_days: 30 },
        ),
        (
            "2026-12-03T05:05:00Z",
            "2026-12-03T07:00:00Z",
            "start_datetime",
            BookingProblem::NotAligned { minutes: 10 },
        ),
        (
            "2026-12-03T05:00:00Z",
            "2026-12-03T07:00:30Z",
            "end_datetime",
            BookingProblem::NotAligned { minutes: 10 },
        ),
    ];
    for (s, e, field, problem) in cases {
        let mut new = new_booking();
        new.start = t(s);
        new.end = t(e);
        BookingTest::with(())
            .given_no_previous_events()
            .when(cmd(Some(guest()), booked_at(), BookingAction::Request(new)))
            .then_expect_error(BookingError::invalid(field, problem));
    }
    // Exactly 30 days and exactly one hour are fine.
    for (s, e) in [
        ("2026-12-03T05:00:00Z", "2027-01-02T05:00:00Z"),
        ("2026-12-03T05:00:00Z", "2026-12-03T06:00:00Z"),
    ] {
        let mut new = new_booking();
        new.start = t(s);
        new.end = t(e);
        assert!(Booking::default()
            .decide(cmd(Some(guest()), booked_at(), BookingAction::Request(new)))
            .is_ok());
    }
}

#[test]
fn a_message_too_long_is_refused() {
    let mut new = new_booking();
    new.guest_message = Some("가".repeat(1_001));
    BookingTest::with(())
        .given_no_previous_events()
        .when(cmd(Some(guest()), booked_at(), BookingAction::Request(new)))
        .then_expect_error(BookingError::invalid(
            "guest_message",
            BookingProblem::TextTooLong { max: 1_000 },
        ));
}

#[test]
fn a_booking_id_cannot_be_requested_twice() {
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(guest()),
            booked_at(),
            BookingAction::Request(new_booking()),
        ))
        .then_expect_error(BookingError::AlreadyExists);
}

#[test]
fn the_host_approves_or_rejects_in_time() {
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(host()),
            t("2026-12-01T01:00:00Z"),
            BookingAction::Approve {
                host_response: Some(" 좋습니다 ".into()),
            },
        ))
        .then_expect_events(vec![BookingEvent::BookingApproved {
            host_response: Some("좋습니다".into()),
            at: t("2026-12-01T01:00:00Z"),
        }]);
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(host()),
            t("2026-12-01T02:00:00Z"),
            BookingAction::Reject {
                host_response: None,
            },
        ))
        .then_expect_events(vec![BookingEvent::BookingRejected {
            host_response: None,
            at: t("2026-12-01T02:00:00Z"),
        }]);
}

#[test]
fn only_the_host_answers_and_only_while_pending_and_in_time() {
    for actor in [guest(), stranger(), admin()] {
        BookingTest::with(())
            .given(vec![requested()])
            .when(cmd(
                Some(actor),
                booked_at(),
                BookingAction::Approve {
                    host_response: None,
                },
            ))
            .then_expect_error(BookingError::NotHost);
    }
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(host()),
            booked_at(),
            BookingAction::Reject {
                host_response: None,
            },
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Approved,
            action: "reject",
        });
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(host()),
            t("2026-12-01T08:00:00Z"),
            BookingAction::Approve {
                host_response: None,
            },
        ))
        .then_expect_error(BookingError::ResponseTimeOver);
}

#[test]
fn cancellations_follow_the_refund_policy() {
    let cases = [
        (
            guest(),
            "2026-12-01T00:50:00Z",
            CancelledBy::Guest,
            RefundRule::WithinAnHourOfBooking,
            54_000,
        ),
        (
            guest(),
            "2026-12-02T01:00:00Z",
            CancelledBy::Guest,
            RefundRule::AtLeast24HoursBefore,
            54_000,
        ),
        (
            guest(),
            "2026-12-02T12:00:00Z",
            CancelledBy::Guest,
            RefundRule::LessThan24HoursBefore,
            27_000,
        ),
        (
            guest(),
            "2026-12-03T01:10:00Z",
            CancelledBy::Guest,
            RefundRule::AfterStart,
            0,
        ),
        (
            host(),
            "2026-12-03T00:50:00Z",
            CancelledBy::Host,
            RefundRule::HostCancelled,
            54_000,
        ),
        (
            admin(),
            "2026-12-02T12:00:00Z",
            CancelledBy::Admin,
            RefundRule::HostCancelled,
            54_000,
        ),
    ];
    for (actor, at, by, rule, refund) in cases {
        BookingTest::with(())
            .given(vec![requested(), approved()])
            .when(cmd(
                Some(actor),
                t(at),
                BookingAction::Cancel {
                    reason: Some("일정 변경".into()),
                },
            ))
            .then_expect_events(vec![BookingEvent::BookingCancelled {
                by,
                reason: Some("일정 변경".into()),
                refund_rule: rule,
                refund_amount: Won(refund),
                at: t(at),
            }]);
    }
}

#[test]
fn cancellation_is_for_participants_of_a_booking_not_yet_under_way() {
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(stranger()),
            booked_at(),
            BookingAction::Cancel { reason: None },
        ))
        .then_expect_error(BookingError::NotParticipant);
    BookingTest::with(())
        .given(vec![requested(), approved(), started()])
        .when(cmd(
            Some(guest()),
            t("2026-12-03T02:00:00Z"),
            BookingAction::Cancel { reason: None },
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Active,
            action: "cancel",
        });
    let cancelled = BookingEvent::BookingCancelled {
        by: CancelledBy::Guest,
        reason: None,
        refund_rule: RefundRule::WithinAnHourOfBooking,
        refund_amount: Won(54_000),
        at: booked_at(),
    };
    BookingTest::with(())
        .given(vec![requested(), cancelled])
        .when(cmd(
            Some(host()),
            booked_at(),
            BookingAction::Cancel { reason: None },
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Cancelled,
            action: "cancel",
        });
}

#[test]
fn unanswered_requests_expire_at_their_deadline() {
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(None, t("2026-12-01T08:00:00Z"), BookingAction::Expire))
        .then_expect_events(vec![BookingEvent::BookingExpired {
            reason: ExpiryReason::HostDidNotRespond,
            at: t("2026-12-01T08:00:00Z"),
        }]);
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(None, t("2026-12-01T07:59:59Z"), BookingAction::Expire))
        .then_expect_error(BookingError::NotDueToExpire);
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(None, t("2026-12-01T09:00:00Z"), BookingAction::Expire))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Approved,
            action: "expire",
        });
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(admin()),
            t("2026-12-01T09:00:00Z"),
            BookingAction::Expire,
        ))
        .then_expect_error(BookingError::SystemOnly);
}

#[test]
fn a_request_close_to_its_start_expires_for_the_start() {
    let mut soon = new_booking();
    soon.start = t("2026-12-01T03:00:00Z");
    soon.end = t("2026-12-01T04:00:00Z");
    let mut booking = Booking::default();
    for event in booking
        .decide(cmd(
            Some(guest()),
            booked_at(),
            BookingAction::Request(soon),
        ))
        .unwrap()
    {
        booking.apply(event);
    }
    assert_eq!(
        booking
            .decide(cmd(None, t("2026-12-01T03:00:00Z"), BookingAction::Expire))
            .unwrap(),
        vec![BookingEvent::BookingExpired {
            reason: ExpiryReason::StartReached,
            at: t("2026-12-01T03:00:00Z"),
        }]
    );
}

#[test]
fn the_guest_picks_up_from_thirty_minutes_before_the_start() {
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(guest()),
            t("2026-12-03T00:30:00Z"),
            BookingAction::Start { paid: true },
        ))
        .then_expect_events(vec![BookingEvent::BookingStarted {
            at: t("2026-12-03T00:30:00Z"),
        }]);
    for at in ["2026-12-03T00:29:59Z", "2026-12-03T05:30:00Z"] {
        BookingTest::with(())
            .given(vec![requested(), approved()])
            .when(cmd(
                Some(guest()),
                t(at),
                BookingAction::Start { paid: true },
            ))
            .then_expect_error(BookingError::OutsidePickupTime);
    }
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(host()),
            t("2026-12-03T01:00:00Z"),
            BookingAction::Start { paid: true },
        ))
        .then_expect_error(BookingError::NotGuest);
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(guest()),
            t("2026-12-03T01:00:00Z"),
            BookingAction::Start { paid: true },
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Pending,
            action: "start",
        });
}

#[test]
fn pickup_needs_the_payment() {
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(guest()),
            t("2026-12-03T00:40:00Z"),
            BookingAction::Start { paid: false },
        ))
        .then_expect_error(BookingError::PaymentRequired);
}

#[test]
fn returns_record_lateness_beyond_fifteen_minutes() {
    let cases = [
        ("2026-12-03T05:00:00Z", 0),
        ("2026-12-03T05:45:00Z", 0),
        ("2026-12-03T05:45:01Z", 15),
        ("2026-12-03T07:00:00Z", 90),
    ];
    for (at, late) in cases {
        BookingTest::with(())
            .given(vec![requested(), approved(), started()])
            .when(cmd(Some(host()), t(at), BookingAction::Complete))
            .then_expect_events(vec![BookingEvent::BookingCompleted {
                late_minutes: late,
                at: t(at),
            }]);
    }
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(guest()),
            t("2026-12-03T05:00:00Z"),
            BookingAction::Complete,
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Approved,
            action: "complete",
        });
    BookingTest::with(())
        .given(vec![requested(), approved(), started()])
        .when(cmd(
            Some(stranger()),
            t("2026-12-03T05:00:00Z"),
            BookingAction::Complete,
        ))
        .then_expect_error(BookingError::NotParticipant);
}

#[test]
fn photos_belong_to_their_moment() {
    let keys = vec!["bookings/100/pickup/a.jpg".to_string()];
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(guest()),
            t("2026-12-03T00:35:00Z"),
            BookingAction::AddPhotos {
                kind: PhotoKind::Pickup,
                keys: keys.clone(),
            },
        ))
        .then_expect_events(vec![BookingEvent::BookingPhotosAdded {
            kind: PhotoKind::Pickup,
            keys: keys.clone(),
            by: guest().user_id,
            at: t("2026-12-03T00:35:00Z"),
        }]);
    // Too early for pickup photos; return photos before the trip; a stranger.
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(guest()),
            t("2026-12-02T00:00:00Z"),
            BookingAction::AddPhotos {
                kind: PhotoKind::Pickup,
                keys: keys.clone(),
            },
        ))
        .then_expect_error(BookingError::PhotosNotExpected { kind: "pickup" });
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(host()),
            t("2026-12-03T00:35:00Z"),
            BookingAction::AddPhotos {
                kind: PhotoKind::Return,
                keys: keys.clone(),
            },
        ))
        .then_expect_error(BookingError::PhotosNotExpected { kind: "return" });
    BookingTest::with(())
        .given(vec![requested(), approved(), started()])
        .when(cmd(
            Some(stranger()),
            t("2026-12-03T02:00:00Z"),
            BookingAction::AddPhotos {
                kind: PhotoKind::Return,
                keys: keys.clone(),
            },
        ))
        .then_expect_error(BookingError::NotParticipant);
    // Return photos up to an hour after the return, at most ten per kind.
    let completed = BookingEvent::BookingCompleted {
        late_minutes: 0,
        at: t("2026-12-03T05:30:00Z"),
    };
    BookingTest::with(())
        .given(vec![requested(), approved(), started(), completed.clone()])
        .when(cmd(
            Some(host()),
            t("2026-12-03T06:31:00Z"),
            BookingAction::AddPhotos {
                kind: PhotoKind::Return,
                keys: keys.clone(),
            },
        ))
        .then_expect_error(BookingError::PhotosNotExpected { kind: "return" });
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    BookingTest::with(())
        .given(vec![requested(), approved(), started(), completed])
        .when(cmd(
            Some(host()),
            t("2026-12-03T06:00:00Z"),
            BookingAction::AddPhotos {
                kind: PhotoKind::Return,
                keys: eleven,
            },
        ))
        .then_expect_error(BookingError::invalid(
            "files",
            BookingProblem::Count { max: 10 },
        ));
}

#[test]
fn applying_the_lifecycle_keeps_the_state() {
    let mut booking = Booking::default();
    for event in [requested(), approved(), started()] {
        booking.apply(event);
    }
    booking.apply(BookingEvent::BookingCompleted {
        late_minutes: 20,
        at: t("2026-12-03T05:50:00Z"),
    });
    let state = booking.state.unwrap();
    assert_eq!(state.status, BookingStatus::Completed);
    assert_eq!(state.late_minutes, Some(20));
    assert_eq!(state.started_at, Some(t("2026-12-03T00:40:00Z")));
    assert_eq!(state.total_amount + Won::ZERO, Won(54_000));
    assert_eq!(state.platform_fee + state.host_share, state.total_amount);
}

#[test]
fn the_platform_cancels_an_approved_booking_left_unpaid() {
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            None,
            t("2026-12-01T03:00:00Z"),
            BookingAction::CancelUnpaid,
        ))
        .then_expect_events(vec![BookingEvent::BookingCancelled {
            by: CancelledBy::Platform,
            reason: Some("payment_overdue".into()),
            refund_rule: RefundRule::NotPaid,
            refund_amount: Won::ZERO,
            at: t("2026-12-01T03:00:00Z"),
        }]);
    BookingTest::with(())
        .given(vec![requested(), approved()])
        .when(cmd(
            Some(guest()),
            t("2026-12-01T03:00:00Z"),
            BookingAction::CancelUnpaid,
        ))
        .then_expect_error(BookingError::SystemOnly);
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            None,
            t("2026-12-01T03:00:00Z"),
            BookingAction::CancelUnpaid,
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Pending,
            action: "cancel",
        });
}

fn completed() -> BookingEvent {
    BookingEvent::BookingCompleted {
        late_minutes: 0,
        at: t("2026-12-03T05:30:00Z"),
    }
}

fn review(rating: i32) -> NewReview {
    NewReview {
        review_id: Uuid::from_u128(900),
        rating,
        category_ratings: CategoryRatings {
            cleanliness: Some(5),
            punctuality: Some(4),
            manners: None,
        },
        comment: Some("  깨끗하고 친절했어요  ".into()),
        is_recommended: true,
    }
}

fn reviewed_by_guest() -> BookingEvent {
    BookingEvent::ReviewSubmitted {
        review_id: Uuid::from_u128(900),
        reviewer_id: guest().user_id,
        reviewer_role: ReviewerRole::Guest,
        reviewee_id: host().user_id,
        vehicle_id: Uuid::from_u128(200),
        rating: 5,
        category_ratings: CategoryRatings {
            cleanliness: Some(5),
            punctuality: Some(4),
            manners: None,
        },
        comment: Some("깨끗하고 친절했어요".into()),
        is_recommended: true,
        at: t("2026-12-04T00:00:00Z"),
    }
}

#[test]
fn after_the_trip_each_side_reviews_the_other_once() {
    BookingTest::with(())
        .given(vec![requested(), approved(), started(), completed()])
        .when(cmd(
            Some(guest()),
            t("2026-12-04T00:00:00Z"),
            BookingAction::Review(review(5)),
        ))
        .then_expect_events(vec![reviewed_by_guest()]);
    // The host reviews the guest after the guest did.
    let events = {
        let mut booking = Booking::default();
        for e in [
            requested(),
            approved(),
            started(),
            completed(),
            reviewed_by_guest(),
        ] {
            booking.apply(e);
        }
        booking
            .decide(cmd(
                Some(host()),
                t("2026-12-10T00:00:00Z"),
                BookingAction::Review(review(3)),
            ))
            .unwrap()
    };
    let [BookingEvent::ReviewSubmitted {
        reviewer_role,
        reviewee_id,
        rating,
        ..
    }] = events.as_slice()
    else {
        panic!("expected one review, got {events:?}");
    };
    assert_eq!(*reviewer_role, ReviewerRole::Host);
    assert_eq!(*reviewee_id, guest().user_id);
    assert_eq!(*rating, 3);
    // Twice by the same side: refused.
    BookingTest::with(())
        .given(vec![
            requested(),
            approved(),
            started(),
            completed(),
            reviewed_by_guest(),
        ])
        .when(cmd(
            Some(guest()),
            t("2026-12-05T00:00:00Z"),
            BookingAction::Review(review(4)),
        ))
        .then_expect_error(BookingError::AlreadyReviewed);
}

#[test]
fn reviews_wait_for_the_return_and_close_after_fourteen_days() {
    for given in [
        vec![requested()],
        vec![requested(), approved()],
        vec![requested(), approved(), started()],
    ] {
        BookingTest::with(())
            .given(given)
            .when(cmd(
                Some(guest()),
                t("2026-12-03T03:00:00Z"),
                BookingAction::Review(review(5)),
            ))
            .then_expect_error(BookingError::ReviewNotOpen);
    }
    // Exactly fourteen days after the return is still in time; a minute later is not.
    let all = || vec![requested(), approved(), started(), completed()];
    let mut booking = Booking::default();
    for e in all() {
        booking.apply(e);
    }
    assert!(booking
        .decide(cmd(
            Some(host()),
            t("2026-12-17T05:30:00Z"),
            BookingAction::Review(review(4)),
        ))
        .is_ok());
    BookingTest::with(())
        .given(all())
        .when(cmd(
            Some(host()),
            t("2026-12-17T05:31:00Z"),
            BookingAction::Review(review(4)),
        ))
        .then_expect_error(BookingError::ReviewPeriodOver);
}

#[test]
fn strangers_and_out_of_range_ratings_are_refused() {
    let all = || vec![requested(), approved(), started(), completed()];
    for actor in [Some(stranger()), Some(admin()), None] {
        BookingTest::with(())
            .given(all())
            .when(cmd(
                actor,
                t("2026-12-04T00:00:00Z"),
                BookingAction::Review(review(5)),
            ))
            .then_expect_error(BookingError::NotParticipant);
    }
    for bad in [0, 6, -1] {
        BookingTest::with(())
            .given(all())
            .when(cmd(
                Some(guest()),
                t("2026-12-04T00:00:00Z"),
                BookingAction::Review(review(bad)),
            ))
            .then_expect_error(BookingError::invalid(
                "rating",
                BookingProblem::OutOfRange { min: 1, max: 5 },
            ));
    }
    let mut bad_category = review(5);
    bad_category.category_ratings.manners = Some(9);
    BookingTest::with(())
        .given(all())
        .when(cmd(
            Some(guest()),
            t("2026-12-04T00:00:00Z"),
            BookingAction::Review(bad_category),
        ))
        .then_expect_error(BookingError::invalid(
            "category_ratings.manners",
            BookingProblem::OutOfRange { min: 1, max: 5 },
        ));
    let mut long = review(5);
    long.comment = Some("가".repeat(2_001));
    BookingTest::with(())
        .given(all())
        .when(cmd(
            Some(guest()),
            t("2026-12-04T00:00:00Z"),
            BookingAction::Review(long),
        ))
        .then_expect_error(BookingError::invalid(
            "comment",
            BookingProblem::TextTooLong { max: 2_000 },
        ));
}

#[test]
fn a_review_marks_its_side_without_touching_the_booking() {
    let mut booking = Booking::default();
    for e in [requested(), approved(), started(), completed()] {
        booking.apply(e);
    }
    let before = booking.state.clone().unwrap();
    booking.apply(reviewed_by_guest());
    let after = booking.state.unwrap();
    assert!(after.guest_reviewed && !after.host_reviewed);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.status, BookingStatus::Completed);
}

#[test]
fn a_price_that_overflows_is_refused_as_too_long() {
    let mut absurd = new_booking();
    absurd.vehicle.hourly_rate = Won(i64::MAX);
    BookingTest::with(())
        .given_no_previous_events()
        .when(cmd(
            Some(guest()),
            booked_at(),
            BookingAction::Request(absurd),
        ))
        .then_expect_error(BookingError::invalid(
            "end_datetime",
            BookingProblem::TooLong { max_days: MAX_DAYS },
        ));
}

#[test]
fn blank_notes_are_dropped_and_long_answers_refused() {
    let mut blank = new_booking();
    blank.guest_message = Some("   ".into());
    let events = Booking::default()
        .decide(cmd(
            Some(guest()),
            booked_at(),
            BookingAction::Request(blank),
        ))
        .unwrap();
    let BookingEvent::BookingRequested { guest_message, .. } = &events[0] else {
        panic!("expected a request, got {events:?}");
    };
    assert_eq!(guest_message, &None);
    BookingTest::with(())
        .given(vec![requested()])
        .when(cmd(
            Some(host()),
            t("2026-12-01T01:00:00Z"),
            BookingAction::Reject {
                host_response: Some("가".repeat(1_001)),
            },
        ))
        .then_expect_error(BookingError::invalid(
            "host_response",
            BookingProblem::TextTooLong { max: 1_000 },
        ));
}

#[test]
fn commands_on_a_booking_never_requested_are_not_found() {
    for action in [
        BookingAction::Approve {
            host_response: None,
        },
        BookingAction::Cancel { reason: None },
        BookingAction::Expire,
        BookingAction::Complete,
    ] {
        BookingTest::with(())
            .given_no_previous_events()
            .when(cmd(Some(host()), booked_at(), action))
            .then_expect_error(BookingError::NotFound);
    }
    BookingTest::with(())
        .given_no_previous_events()
        .when(cmd(
            None,
            booked_at(),
            BookingAction::Request(new_booking()),
        ))
        .then_expect_error(BookingError::GuestRoleRequired);
}

#[test]
fn events_without_a_request_leave_the_booking_empty() {
    let mut booking = Booking::default();
    booking.apply(approved());
    booking.apply(started());
    assert_eq!(booking, Booking::default());
}

#[test]
fn only_an_approved_booking_is_cancelled_for_non_payment() {
    let started_trip = vec![requested(), approved(), started()];
    BookingTest::with(())
        .given(started_trip)
        .when(cmd(
            None,
            t("2026-12-03T01:00:00Z"),
            BookingAction::CancelUnpaid,
        ))
        .then_expect_error(BookingError::InvalidTransition {
            status: BookingStatus::Active,
            action: "cancel",
        });
}

#[test]
fn the_host_reviews_the_guest_and_it_is_recorded_on_the_host_side() {
    let at = t("2026-12-04T00:00:00Z");
    BookingTest::with(())
        .given(vec![requested(), approved(), started(), completed()])
        .when(cmd(Some(host()), at, BookingAction::Review(review(4))))
        .then_expect_events(vec![BookingEvent::ReviewSubmitted {
            review_id: Uuid::from_u128(900),
            reviewer_id: host().user_id,
            reviewer_role: ReviewerRole::Host,
            reviewee_id: guest().user_id,
            vehicle_id: Uuid::from_u128(200),
            rating: 4,
            category_ratings: review(4).category_ratings,
            comment: Some("깨끗하고 친절했어요".into()),
            is_recommended: true,
            at,
        }]);
    let mut booking = Booking::default();
    for e in [requested(), approved(), started(), completed()] {
        booking.apply(e);
    }
    booking.apply(BookingEvent::ReviewSubmitted {
        review_id: Uuid::from_u128(901),
        reviewer_id: host().user_id,
        reviewer_role: ReviewerRole::Host,
        reviewee_id: guest().user_id,
        vehicle_id: Uuid::from_u128(200),
        rating: 4,
        category_ratings: CategoryRatings::default(),
        comment: None,
        is_recommended: false,
        at,
    });
    let state = booking.state.clone().unwrap();
    assert!(state.host_reviewed && !state.guest_reviewed);
    assert_eq!(
        booking.decide(cmd(
            Some(host()),
            t("2026-12-04T01:00:00Z"),
            BookingAction::Review(review(5))
        )),
        Err(BookingError::AlreadyReviewed)
    );
}

#[test]
fn command_and_event_names_are_the_stored_ones() {
    let actions = [
        (BookingAction::Request(new_booking()), "RequestBooking"),
        (
            BookingAction::Approve {
                host_response: None,
            },
            "ApproveBooking",
        ),
        (
            BookingAction::Reject {
                host_response: None,
            },
            "RejectBooking",
        ),
        (BookingAction::Cancel { reason: None }, "CancelBooking"),
        (BookingAction::Expire, "ExpireBooking"),
        (BookingAction::CancelUnpaid, "CancelUnpaidBooking"),
        (BookingAction::Start { paid: true }, "StartBooking"),
        (BookingAction::Complete, "CompleteBooking"),
        (
            BookingAction::AddPhotos {
                kind: PhotoKind::Pickup,
                keys: vec![],
            },
            "AddBookingPhotos",
        ),
        (BookingAction::Review(review(5)), "SubmitReview"),
    ];
    for (action, name) in actions {
        assert_eq!(action.name(), name);
    }

    let at = t("2026-12-02T00:00:00Z");
    let events = [
        (requested(), "BookingRequested", false),
        (approved(), "BookingApproved", false),
        (
            BookingEvent::BookingRejected {
                host_response: None,
                at,
            },
            "BookingRejected",
            true,
        ),
        (
            BookingEvent::BookingCancelled {
                by: CancelledBy::Guest,
                reason: None,
                refund_rule: RefundRule::AtLeast24HoursBefore,
                refund_amount: Won(54_000),
                at,
            },
            "BookingCancelled",
            true,
        ),
        (
            BookingEvent::BookingExpired {
                reason: ExpiryReason::HostDidNotRespond,
                at,
            },
            "BookingExpired",
            true,
        ),
        (started(), "BookingStarted", false),
        (completed(), "BookingCompleted", true),
        (
            BookingEvent::BookingPhotosAdded {
                kind: PhotoKind::Return,
                keys: vec!["k".into()],
                by: guest().user_id,
                at,
            },
            "BookingPhotosAdded",
            false,
        ),
        (reviewed_by_guest(), "ReviewSubmitted", false),
    ];
    for (event, name, releases) in events {
        assert_eq!(event.name(), name);
        assert_eq!(cqrs_es::DomainEvent::event_type(&event), name);
        assert_eq!(
            cqrs_es::DomainEvent::event_version(&event),
            BOOKING_EVENT_VERSION
        );
        assert_eq!(event.releases_vehicle(), releases, "{name}");
        // The name is the serde tag: what the event log stores.
        let stored = serde_json::to_value(&event).unwrap();
        assert!(stored.get(name).is_some(), "{stored}");
    }
    assert_eq!(started().at(), t("2026-12-03T00:40:00Z"));
    assert_eq!(requested().at(), booked_at());
}

#[test]
fn wire_names_match_the_serialised_form() {
    fn serialised<T: serde::Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }
    for by in [
        CancelledBy::Guest,
        CancelledBy::Host,
        CancelledBy::Admin,
        CancelledBy::Platform,
    ] {
        assert_eq!(by.as_str(), serialised(by));
    }
    for reason in [ExpiryReason::HostDidNotRespond, ExpiryReason::StartReached] {
        assert_eq!(reason.as_str(), serialised(reason));
    }
    for role in [ReviewerRole::Guest, ReviewerRole::Host] {
        assert_eq!(role.as_str(), serialised(role));
    }
    for status in BookingStatus::ALL {
        assert_eq!(status.to_string(), status.as_str());
        assert_eq!(status.as_str(), serialised(status));
    }
    assert_eq!(PhotoKind::Pickup.as_str(), "pickup");
    assert_eq!(PhotoKind::Return.as_str(), "return");
}

//! Given / when / then for payments.

use super::*;
use crate::actor::Role;
use cqrs_es::test::TestFramework;

type PaymentTest = TestFramework<Payment>;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn booking() -> Uuid {
    Uuid::from_u128(100)
}

fn guest() -> Actor {
    Actor::new(Uuid::from_u128(1), Role::Guest)
}

fn due() -> PaymentEvent {
    PaymentEvent::PaymentDue {
        booking_id: booking(),
        guest_id: guest().user_id,
        host_id: Uuid::from_u128(2),
        order_id: order_id(booking()),
        amount: Won(54_000),
        due_at: t("2026-12-01T03:00:00Z"),
        at: t("2026-12-01T01:00:00Z"),
    }
}

fn confirm(key: &str, order: &str, amount: i64) -> PaymentAction {
    PaymentAction::Confirm {
        payment_key: key.into(),
        order_id: order.into(),
        amount: Won(amount),
        method: Some("카드".into()),
        approved_at: Some(t("2026-12-01T01:30:00Z")),
        toss_status: "DONE".into(),
    }
}

fn cmd(actor: Option<Actor>, at: &str, action: PaymentAction) -> PaymentCommand {
    PaymentCommand {
        actor,
        at: t(at),
        action,
    }
}

#[test]
fn an_approval_opens_a_payment_with_the_booking_order_id() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(cmd(
            None,
            "2026-12-01T01:00:00Z",
            PaymentAction::Open {
                booking_id: booking(),
                guest_id: guest().user_id,
                host_id: Uuid::from_u128(2),
                amount: Won(54_000),
                due_at: t("2026-12-01T03:00:00Z"),
            },
        ))
        .then_expect_events(vec![due()]);
    assert_eq!(order_id(booking()), "bk-00000000000000000000000000000064");
}

#[test]
fn the_guest_pays_the_right_order_and_amount_in_time() {
    let order = order_id(booking());
    PaymentTest::with(())
        .given(vec![due()])
        .when(cmd(
            Some(guest()),
            "2026-12-01T01:30:00Z",
            confirm("pk_1", &order, 54_000),
        ))
        .then_expect_events(vec![PaymentEvent::PaymentConfirmed {
            payment_key: "pk_1".into(),
            amount: Won(54_000),
            method: Some("카드".into()),
            approved_at: Some(t("2026-12-01T01:30:00Z")),
            toss_status: "DONE".into(),
            at: t("2026-12-01T01:30:00Z"),
        }]);
    for (actor, order, amount, at, error) in [
        (
            Some(Actor::new(Uuid::from_u128(9), Role::Guest)),
            order.as_str(),
            54_000,
            "2026-12-01T01:30:00Z",
            PaymentError::NotGuest,
        ),
        (
            Some(guest()),
            "bk-other",
            54_000,
            "2026-12-01T01:30:00Z",
            PaymentError::OrderMismatch,
        ),
        (
            Some(guest()),
            order.as_str(),
            100,
            "2026-12-01T01:30:00Z",
            PaymentError::AmountMismatch,
        ),
        (
            Some(guest()),
            order.as_str(),
            54_000,
            "2026-12-01T03:00:00Z",
            PaymentError::Overdue,
        ),
    ] {
        PaymentTest::with(())
            .given(vec![due()])
            .when(cmd(actor, at, confirm("pk_1", order, amount)))
            .then_expect_error(error);
    }
}

#[test]
fn the_same_confirmation_twice_records_once_and_another_is_refused() {
    let order = order_id(booking());
    let confirmed = confirmed();
    PaymentTest::with(())
        .given(vec![due(), confirmed.clone()])
        .when(cmd(
            Some(guest()),
            "2026-12-01T05:00:00Z",
            confirm("pk_1", &order, 54_000),
        ))
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given(vec![due(), confirmed])
        .when(cmd(
            Some(guest()),
            "2026-12-01T01:40:00Z",
            confirm("pk_2", &order, 54_000),
        ))
        .then_expect_error(PaymentError::AlreadyPaid);
}

#[test]
fn a_refused_attempt_is_recorded_and_the_guest_may_try_again() {
    let failed = PaymentEvent::PaymentFailed {
        payment_key: "pk_1".into(),
        code: "REJECT_CARD_COMPANY".into(),
        message: "카드사에서 거절했습니다.".into(),
        at: t("2026-12-01T01:20:00Z"),
    };
    PaymentTest::with(())
        .given(vec![due()])
        .when(cmd(
            Some(guest()),
            "2026-12-01T01:20:00Z",
            PaymentAction::RecordFailure {
                payment_key: "pk_1".into(),
                code: "REJECT_CARD_COMPANY".into(),
                message: "카드사에서 거절했습니다.".into(),
            },
        ))
        .then_expect_events(vec![failed.clone()]);
    let mut payment = Payment::default();
    payment.apply(due());
    payment.apply(failed);
    assert_eq!(
        payment.state.as_ref().unwrap().status,
        PaymentStatus::Failed
    );
    let order = order_id(booking());
    assert!(payment
        .decide(cmd(
            Some(guest()),
            "2026-12-01T01:25:00Z",
            confirm("pk_2", &order, 54_000)
        ))
        .is_ok());
}

#[test]
fn only_the_platform_opens_a_payment_and_only_once() {
    let open = PaymentAction::Open {
        booking_id: booking(),
        guest_id: guest().user_id,
        host_id: Uuid::from_u128(2),
        amount: Won(54_000),
        due_at: t("2026-12-01T03:00:00Z"),
    };
    PaymentTest::with(())
        .given_no_previous_events()
        .when(cmd(Some(guest()), "2026-12-01T01:00:00Z", open.clone()))
        .then_expect_error(PaymentError::SystemOnly);
    PaymentTest::with(())
        .given(vec![due()])
        .when(cmd(None, "2026-12-01T01:00:00Z", open))
        .then_expect_error(PaymentError::AlreadyExists);
}

#[test]
fn closing_voids_an_unpaid_payment_and_refunds_a_paid_one_within_what_was_paid() {
    let close = |refund: i64| PaymentAction::Close {
        refund: Won(refund),
        reason: "BookingCancelled".into(),
    };
    PaymentTest::with(())
        .given(vec![due()])
        .when(cmd(None, "2026-12-01T02:00:00Z", close(54_000)))
        .then_expect_events(vec![PaymentEvent::PaymentVoided {
            reason: "BookingCancelled".into(),
            at: t("2026-12-01T02:00:00Z"),
        }]);
    let mut voided = Payment::default();
    voided.apply(due());
    voided.apply(PaymentEvent::PaymentVoided {
        reason: "BookingCancelled".into(),
        at: t("2026-12-01T02:00:00Z"),
    });
    let order = order_id(booking());
    assert_eq!(
        voided.decide(cmd(
            Some(guest()),
            "2026-12-01T02:10:00Z",
            confirm("pk_1", &order, 54_000)
        )),
        Err(PaymentError::Voided)
    );
    let confirmed = confirmed();
    PaymentTest::with(())
        .given(vec![due(), confirmed.clone()])
        .when(cmd(None, "2026-12-02T00:00:00Z", close(27_000)))
        .then_expect_events(vec![PaymentEvent::RefundRequested {
            amount: Won(27_000),
            reason: "BookingCancelled".into(),
            at: t("2026-12-02T00:00:00Z"),
        }]);
    PaymentTest::with(())
        .given(vec![due(), confirmed.clone()])
        .when(cmd(None, "2026-12-02T00:00:00Z", close(60_000)))
        .then_expect_error(PaymentError::RefundTooLarge);
    PaymentTest::with(())
        .given(vec![due(), confirmed.clone()])
        .when(cmd(None, "2026-12-02T00:00:00Z", close(0)))
        .then_expect_events(vec![]);
    // The refund completes for exactly the pending amount; what is kept follows.
    let requested = PaymentEvent::RefundRequested {
        amount: Won(27_000),
        reason: "BookingCancelled".into(),
        at: t("2026-12-02T00:00:00Z"),
    };
    PaymentTest::with(())
        .given(vec![due(), confirmed.clone(), requested.clone()])
        .when(cmd(
            None,
            "2026-12-02T00:00:05Z",
            PaymentAction::CompleteRefund {
                amount: Won(27_000),
                transaction_key: Some("tx_1".into()),
            },
        ))
        .then_expect_events(vec![PaymentEvent::PaymentRefunded {
            amount: Won(27_000),
            transaction_key: Some("tx_1".into()),
            at: t("2026-12-02T00:00:05Z"),
        }]);
    let mut payment = Payment::default();
    for e in [due(), confirmed, requested] {
        payment.apply(e);
    }
    payment.apply(PaymentEvent::PaymentRefunded {
        amount: Won(27_000),
        transaction_key: None,
        at: t("2026-12-02T00:00:05Z"),
    });
    assert_eq!(payment.state.as_ref().unwrap().kept(), Won(27_000));
    assert_eq!(
        payment.decide(cmd(
            None,
            "2026-12-02T00:01:00Z",
            PaymentAction::CompleteRefund {
                amount: Won(1),
                transaction_key: None
            }
        )),
        Err(PaymentError::NoPendingRefund)
    );
}

#[test]
fn a_settlement_splits_what_was_kept_once() {
    let confirmed = confirmed();
    let refunded = [
        PaymentEvent::RefundRequested {
            amount: Won(20_001),
            reason: "BookingCancelled".into(),
            at: t("2026-12-02T00:00:00Z"),
        },
        PaymentEvent::PaymentRefunded {
            amount: Won(20_001),
            transaction_key: None,
            at: t("2026-12-02T00:00:01Z"),
        },
    ];
    let settle = PaymentAction::Settle {
        settlement_id: Uuid::from_u128(7),
    };
    // Kept 33,999: fee 5,099 (15% rounded down), host 28,900.
    let mut given = vec![due(), confirmed];
    given.extend(refunded);
    PaymentTest::with(())
        .given(given.clone())
        .when(cmd(None, "2026-12-05T00:00:00Z", settle.clone()))
        .then_expect_events(vec![PaymentEvent::PaymentSettled {
            settlement_id: Uuid::from_u128(7),
            kept: Won(33_999),
            platform_fee: Won(5_099),
            host_share: Won(28_900),
            at: t("2026-12-05T00:00:00Z"),
        }]);
    let mut settled = given.clone();
    settled.push(PaymentEvent::PaymentSettled {
        settlement_id: Uuid::from_u128(7),
        kept: Won(33_999),
        platform_fee: Won(5_099),
        host_share: Won(28_900),
        at: t("2026-12-05T00:00:00Z"),
    });
    PaymentTest::with(())
        .given(settled)
        .when(cmd(None, "2026-12-06T00:00:00Z", settle.clone()))
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given(vec![due()])
        .when(cmd(None, "2026-12-06T00:00:00Z", settle))
        .then_expect_events(vec![]);
}

fn confirmed() -> PaymentEvent {
    PaymentEvent::PaymentConfirmed {
        payment_key: "pk_1".into(),
        amount: Won(54_000),
        method: None,
        approved_at: None,
        toss_status: "DONE".into(),
        at: t("2026-12-01T01:30:00Z"),
    }
}

fn refund_requested(amount: i64) -> PaymentEvent {
    PaymentEvent::RefundRequested {
        amount: Won(amount),
        reason: "BookingCancelled".into(),
        at: t("2026-12-02T00:00:00Z"),
    }
}

#[test]
fn a_refused_refund_is_recorded_and_frees_the_pending_amount() {
    let fail = PaymentAction::FailRefund {
        code: "NOT_CANCELABLE_AMOUNT".into(),
        message: "취소할 수 없는 금액입니다.".into(),
    };
    let failed = PaymentEvent::RefundFailed {
        code: "NOT_CANCELABLE_AMOUNT".into(),
        message: "취소할 수 없는 금액입니다.".into(),
        at: t("2026-12-02T00:00:05Z"),
    };
    PaymentTest::with(())
        .given(vec![due(), confirmed(), refund_requested(27_000)])
        .when(cmd(None, "2026-12-02T00:00:05Z", fail.clone()))
        .then_expect_events(vec![failed.clone()]);
    let mut payment = Payment::default();
    for e in [due(), confirmed(), refund_requested(27_000), failed] {
        payment.apply(e);
    }
    let state = payment.state.as_ref().unwrap();
    assert_eq!(state.pending_refund, None);
    assert_eq!(
        state.last_failure,
        Some((
            "NOT_CANCELABLE_AMOUNT".to_string(),
            "취소할 수 없는 금액입니다.".to_string()
        ))
    );
    // Nothing was refunded: everything paid is still kept.
    assert_eq!(state.kept(), Won(54_000));
    assert_eq!(
        payment.decide(cmd(None, "2026-12-02T00:01:00Z", fail.clone())),
        Err(PaymentError::NoPendingRefund)
    );
    PaymentTest::with(())
        .given_no_previous_events()
        .when(cmd(None, "2026-12-02T00:01:00Z", fail))
        .then_expect_error(PaymentError::NotFound);
}

#[test]
fn a_refund_completes_only_for_the_amount_pending() {
    PaymentTest::with(())
        .given(vec![due(), confirmed(), refund_requested(27_000)])
        .when(cmd(
            None,
            "2026-12-02T00:00:05Z",
            PaymentAction::CompleteRefund {
                amount: Won(30_000),
                transaction_key: None,
            },
        ))
        .then_expect_error(PaymentError::RefundTooLarge);
    // A second refund may not exceed what is left once the pending one is counted.
    PaymentTest::with(())
        .given(vec![due(), confirmed(), refund_requested(27_000)])
        .when(cmd(
            None,
            "2026-12-02T00:00:10Z",
            PaymentAction::Close {
                refund: Won(27_001),
                reason: "BookingCancelled".into(),
            },
        ))
        .then_expect_error(PaymentError::RefundTooLarge);
}

#[test]
fn closing_is_the_platforms_and_changes_nothing_unpaid_twice() {
    let close = PaymentAction::Close {
        refund: Won(54_000),
        reason: "BookingRejected".into(),
    };
    PaymentTest::with(())
        .given(vec![due()])
        .when(cmd(Some(guest()), "2026-12-01T02:00:00Z", close.clone()))
        .then_expect_error(PaymentError::SystemOnly);
    // Never approved: nothing was ever due.
    PaymentTest::with(())
        .given_no_previous_events()
        .when(cmd(None, "2026-12-01T02:00:00Z", close.clone()))
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given(vec![
            due(),
            PaymentEvent::PaymentVoided {
                reason: "BookingCancelled".into(),
                at: t("2026-12-01T02:00:00Z"),
            },
        ])
        .when(cmd(None, "2026-12-01T02:10:00Z", close))
        .then_expect_events(vec![]);
}

#[test]
fn settling_is_the_platforms_and_waits_for_refunds_in_flight() {
    let settle = PaymentAction::Settle {
        settlement_id: Uuid::from_u128(7),
    };
    PaymentTest::with(())
        .given(vec![due(), confirmed()])
        .when(cmd(Some(guest()), "2026-12-05T00:00:00Z", settle.clone()))
        .then_expect_error(PaymentError::SystemOnly);
    PaymentTest::with(())
        .given(vec![due(), confirmed(), refund_requested(10_000)])
        .when(cmd(None, "2026-12-05T00:00:00Z", settle.clone()))
        .then_expect_events(vec![]);
    PaymentTest::with(())
        .given_no_previous_events()
        .when(cmd(None, "2026-12-05T00:00:00Z", settle))
        .then_expect_error(PaymentError::NotFound);
    let mut settled = Payment::default();
    for e in [
        due(),
        confirmed(),
        PaymentEvent::PaymentSettled {
            settlement_id: Uuid::from_u128(7),
            kept: Won(54_000),
            platform_fee: Won(8_100),
            host_share: Won(45_900),
            at: t("2026-12-05T00:00:00Z"),
        },
    ] {
        settled.apply(e);
    }
    assert_eq!(
        settled.state.unwrap().settlement_id,
        Some(Uuid::from_u128(7))
    );
}

#[test]
fn a_failure_after_payment_is_refused_and_an_unpaid_payment_keeps_nothing() {
    PaymentTest::with(())
        .given(vec![due(), confirmed()])
        .when(cmd(
            Some(guest()),
            "2026-12-01T01:40:00Z",
            PaymentAction::RecordFailure {
                payment_key: "pk_2".into(),
                code: "REJECT_CARD_COMPANY".into(),
                message: "카드사에서 거절했습니다.".into(),
            },
        ))
        .then_expect_error(PaymentError::AlreadyPaid);
    let mut pending = Payment::default();
    pending.apply(due());
    assert_eq!(pending.state.unwrap().kept(), Won::ZERO);
}

#[test]
fn event_and_status_names_are_the_stored_ones() {
    let at = t("2026-12-02T00:00:00Z");
    let events = [
        (due(), "PaymentDue", t("2026-12-01T01:00:00Z")),
        (confirmed(), "PaymentConfirmed", t("2026-12-01T01:30:00Z")),
        (
            PaymentEvent::PaymentFailed {
                payment_key: "pk".into(),
                code: "c".into(),
                message: "m".into(),
                at,
            },
            "PaymentFailed",
            at,
        ),
        (
            PaymentEvent::PaymentVoided {
                reason: "r".into(),
                at,
            },
            "PaymentVoided",
            at,
        ),
        (refund_requested(1), "RefundRequested", at),
        (
            PaymentEvent::PaymentRefunded {
                amount: Won(1),
                transaction_key: None,
                at,
            },
            "PaymentRefunded",
            at,
        ),
        (
            PaymentEvent::RefundFailed {
                code: "c".into(),
                message: "m".into(),
                at,
            },
            "RefundFailed",
            at,
        ),
        (
            PaymentEvent::PaymentSettled {
                settlement_id: Uuid::from_u128(7),
                kept: Won(1),
                platform_fee: Won(0),
                host_share: Won(1),
                at,
            },
            "PaymentSettled",
            at,
        ),
    ];
    for (event, name, when) in events {
        assert_eq!(event.name(), name);
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), PAYMENT_EVENT_VERSION);
        assert_eq!(event.at(), when, "{name}");
        let stored = serde_json::to_value(&event).unwrap();
        assert!(stored.get(name).is_some(), "{stored}");
    }
    for status in [
        PaymentStatus::Pending,
        PaymentStatus::Completed,
        PaymentStatus::Failed,
        PaymentStatus::Voided,
    ] {
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            serde_json::Value::from(status.as_str())
        );
    }
}

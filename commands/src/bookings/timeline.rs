//! A booking's history from the event log alone: the timeline support reads, and the booking
//! as it stood at any instant.
//!
//! Both read the log, not a read table, so they are right even while projections lag or are
//! being rebuilt.

use carshare_domain::booking::{Booking, BookingEvent};
use carshare_domain::payment::{Payment, PaymentEvent};
use carshare_domain::vehicle::{Vehicle, VehicleEvent};
use carshare_event_store::StreamReader;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// One event of a booking's story.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// Global position in the log (the order of the timeline).
    pub position: i64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// `Booking` or `Vehicle` (the car's hold).
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Sequence within the aggregate.
    pub sequence: i64,
    /// The event's type.
    pub event_type: String,
    /// Who caused it (user id), if a user did.
    pub actor_id: Option<String>,
    /// Their role, or `system`.
    pub actor_role: Option<String>,
    /// The request that caused it.
    pub correlation_id: Option<String>,
    /// What happened, in a sentence.
    pub summary: String,
    /// The event's payload as stored.
    pub payload: serde_json::Value,
}

/// Every event of the booking, of its payment and of its hold on the vehicle, in log order;
/// `None` if the booking does not exist.
pub async fn timeline(
    reader: &StreamReader,
    booking_id: Uuid,
) -> Result<Option<Vec<TimelineEntry>>, sqlx::Error> {
    let key = booking_id.to_string();
    let booking_events = reader.aggregate_events(Booking::TYPE, &key).await?;
    let Some(first) = booking_events.first() else {
        return Ok(None);
    };
    let vehicle_id = match first.decode::<BookingEvent>() {
        Ok(BookingEvent::BookingRequested { vehicle_id, .. }) => Some(vehicle_id),
        _ => None,
    };
    let mut entries: Vec<TimelineEntry> = Vec::new();
    for e in &booking_events {
        let summary = match e.decode::<BookingEvent>() {
            Ok(event) => booking_summary(&event),
            Err(err) => format!("unreadable {} v{}: {err}", e.event_type, e.event_version),
        };
        entries.push(entry(e, summary));
    }
    for e in reader.aggregate_events(Payment::TYPE, &key).await? {
        let summary = match e.decode::<PaymentEvent>() {
            Ok(event) => payment_summary(&event),
            Err(err) => format!("unreadable {} v{}: {err}", e.event_type, e.event_version),
        };
        entries.push(entry(&e, summary));
    }
    if let Some(vehicle_id) = vehicle_id {
        for e in reader
            .aggregate_events(Vehicle::TYPE, &vehicle_id.to_string())
            .await?
        {
            if !matches!(
                e.event_type.as_str(),
                "WindowReserved" | "ReservationReleased"
            ) {
                continue;
            }
            let summary = match e.decode::<VehicleEvent>() {
                Ok(VehicleEvent::WindowReserved {
                    booking_id: b,
                    start,
                    end,
                    ..
                }) if b == booking_id => {
                    format!("The car was reserved from {start} to {end}.")
                }
                Ok(VehicleEvent::ReservationReleased {
                    booking_id: b,
                    reason,
                    ..
                }) if b == booking_id => format!("The car's reservation was released ({reason})."),
                _ => continue,
            };
            entries.push(entry(&e, summary));
        }
    }
    entries.sort_by_key(|e| e.position);
    Ok(Some(entries))
}

/// The booking as it stood at `as_of`: its events recorded up to then, replayed. `None` if it
/// did not exist yet (or does not exist).
pub async fn booking_as_of(
    reader: &StreamReader,
    booking_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Option<Booking>, sqlx::Error> {
    let events = reader
        .aggregate_events(Booking::TYPE, &booking_id.to_string())
        .await?;
    let mut booking = Booking::default();
    for e in events.iter().filter(|e| e.recorded_at <= as_of) {
        match e.decode::<BookingEvent>() {
            Ok(event) => booking.apply(event),
            Err(err) => {
                return Err(sqlx::Error::Decode(
                    format!("booking event at position {}: {err}", e.position).into(),
                ))
            }
        }
    }
    Ok(booking.state.is_some().then_some(booking))
}

fn entry(e: &carshare_event_store::StoredEvent, summary: String) -> TimelineEntry {
    let metadata: HashMap<String, String> =
        serde_json::from_str(e.metadata.get()).unwrap_or_default();
    TimelineEntry {
        position: e.position,
        recorded_at: e.recorded_at,
        aggregate_type: e.aggregate_type.clone(),
        aggregate_id: e.aggregate_id.clone(),
        sequence: e.sequence,
        event_type: e.event_type.clone(),
        actor_id: metadata.get("actor_id").cloned(),
        actor_role: metadata.get("actor_role").cloned(),
        correlation_id: metadata.get("correlation_id").cloned(),
        summary,
        payload: serde_json::from_str(e.payload.get()).unwrap_or(serde_json::Value::Null),
    }
}

fn booking_summary(event: &BookingEvent) -> String {
    match event {
        BookingEvent::BookingRequested {
            guest_id,
            start,
            end,
            total_amount,
            respond_by,
            ..
        } => format!(
            "Guest {guest_id} requested the car from {start} to {end} for {total_amount}; the host must answer by {respond_by}."
        ),
        BookingEvent::BookingApproved { host_response, .. } => match host_response {
            Some(note) => format!("The host approved: \"{note}\"."),
            None => "The host approved.".into(),
        },
        BookingEvent::BookingRejected { host_response, .. } => match host_response {
            Some(note) => format!("The host rejected: \"{note}\"."),
            None => "The host rejected.".into(),
        },
        BookingEvent::BookingCancelled {
            by,
            reason,
            refund_amount,
            refund_rule,
            ..
        } => format!(
            "Cancelled by the {}{}; refund owed {refund_amount} ({}).",
            by.as_str(),
            reason
                .as_deref()
                .map(|r| format!(": \"{r}\""))
                .unwrap_or_default(),
            serde_json::to_value(refund_rule)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        BookingEvent::BookingExpired { reason, .. } => {
            format!("The request expired ({}).", reason.as_str())
        }
        BookingEvent::BookingStarted { .. } => "The guest picked the car up.".into(),
        BookingEvent::BookingCompleted { late_minutes, .. } => {
            if *late_minutes > 0 {
                format!("The car was returned {late_minutes} minutes late.")
            } else {
                "The car was returned on time.".into()
            }
        }
        BookingEvent::BookingPhotosAdded { kind, keys, by, .. } => format!(
            "{} {} photo(s) added by {by}.",
            keys.len(),
            kind.as_str()
        ),
        BookingEvent::ReviewSubmitted {
            reviewer_role,
            reviewer_id,
            reviewee_id,
            rating,
            is_recommended,
            ..
        } => format!(
            "The {} ({reviewer_id}) rated {reviewee_id} {rating}/5{}.",
            reviewer_role.as_str(),
            if *is_recommended {
                " and recommends them"
            } else {
                ""
            }
        ),
    }
}

fn payment_summary(event: &PaymentEvent) -> String {
    match event {
        PaymentEvent::PaymentDue {
            amount,
            order_id,
            due_at,
            ..
        } => format!("Payment of {amount} due by {due_at} (order {order_id})."),
        PaymentEvent::PaymentConfirmed {
            amount,
            method,
            toss_status,
            ..
        } => format!(
            "Toss confirmed {amount}{} ({toss_status}).",
            method
                .as_deref()
                .map(|m| format!(" by {m}"))
                .unwrap_or_default()
        ),
        PaymentEvent::PaymentFailed { code, message, .. } => {
            format!("Toss refused the payment: {code} ({message}).")
        }
        PaymentEvent::PaymentVoided { reason, .. } => {
            format!("The payment was voided: the booking ended unpaid ({reason}).")
        }
        PaymentEvent::RefundRequested { amount, reason, .. } => {
            format!("A refund of {amount} was decided ({reason}).")
        }
        PaymentEvent::PaymentRefunded { amount, .. } => format!("Toss refunded {amount}."),
        PaymentEvent::PaymentSettled {
            kept,
            platform_fee,
            host_share,
            settlement_id,
            ..
        } => format!(
            "Settled in {settlement_id}: kept {kept}, fee {platform_fee}, host {host_share}."
        ),
        PaymentEvent::RefundFailed { code, message, .. } => {
            format!("Toss refused the refund: {code} ({message}); an operator must act.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carshare_domain::booking::{
        CancelledBy, CategoryRatings, ExpiryReason, PhotoKind, RefundRule, ReviewerRole,
    };
    use carshare_domain::Won;
    use serde_json::value::RawValue;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn each_booking_event_reads_as_a_sentence() {
        let at = t("2026-12-01T00:00:00Z");
        let guest = Uuid::from_u128(1);
        let host = Uuid::from_u128(2);
        let cases = [
            (
                BookingEvent::BookingRequested {
                    booking_id: Uuid::from_u128(100),
                    vehicle_id: Uuid::from_u128(200),
                    guest_id: guest,
                    host_id: host,
                    start: t("2026-12-03T01:00:00Z"),
                    end: t("2026-12-03T05:30:00Z"),
                    hourly_rate: Won(12_000),
                    total_amount: Won(54_000),
                    platform_fee: Won(8_100),
                    host_share: Won(45_900),
                    guest_message: None,
                    respond_by: t("2026-12-01T08:00:00Z"),
                    at,
                },
                format!(
                    "Guest {guest} requested the car from 2026-12-03 01:00:00 UTC to \
                     2026-12-03 05:30:00 UTC for ₩54000; the host must answer by \
                     2026-12-01 08:00:00 UTC."
                ),
            ),
            (
                BookingEvent::BookingApproved {
                    host_response: Some("환영합니다".into()),
                    at,
                },
                "The host approved: \"환영합니다\".".to_string(),
            ),
            (
                BookingEvent::BookingApproved {
                    host_response: None,
                    at,
                },
                "The host approved.".to_string(),
            ),
            (
                BookingEvent::BookingRejected {
                    host_response: Some("정비 중".into()),
                    at,
                },
                "The host rejected: \"정비 중\".".to_string(),
            ),
            (
                BookingEvent::BookingRejected {
                    host_response: None,
                    at,
                },
                "The host rejected.".to_string(),
            ),
            (
                BookingEvent::BookingCancelled {
                    by: CancelledBy::Host,
                    reason: Some("고장".into()),
                    refund_rule: RefundRule::HostCancelled,
                    refund_amount: Won(54_000),
                    at,
                },
                "Cancelled by the host: \"고장\"; refund owed ₩54000 (host_cancelled).".to_string(),
            ),
            (
                BookingEvent::BookingCancelled {
                    by: CancelledBy::Platform,
                    reason: None,
                    refund_rule: RefundRule::NotPaid,
                    refund_amount: Won::ZERO,
                    at,
                },
                "Cancelled by the platform; refund owed ₩0 (not_paid).".to_string(),
            ),
            (
                BookingEvent::BookingExpired {
                    reason: ExpiryReason::HostDidNotRespond,
                    at,
                },
                "The request expired (host_did_not_respond).".to_string(),
            ),
            (
                BookingEvent::BookingStarted { at },
                "The guest picked the car up.".to_string(),
            ),
            (
                BookingEvent::BookingCompleted {
                    late_minutes: 0,
                    at,
                },
                "The car was returned on time.".to_string(),
            ),
            (
                BookingEvent::BookingCompleted {
                    late_minutes: 42,
                    at,
                },
                "The car was returned 42 minutes late.".to_string(),
            ),
            (
                BookingEvent::BookingPhotosAdded {
                    kind: PhotoKind::Return,
                    keys: vec!["a".into(), "b".into()],
                    by: guest,
                    at,
                },
                format!("2 return photo(s) added by {guest}."),
            ),
            (
                BookingEvent::ReviewSubmitted {
                    review_id: Uuid::from_u128(900),
                    reviewer_id: guest,
                    reviewer_role: ReviewerRole::Guest,
                    reviewee_id: host,
                    vehicle_id: Uuid::from_u128(200),
                    rating: 5,
                    category_ratings: CategoryRatings::default(),
                    comment: None,
                    is_recommended: true,
                    at,
                },
                format!("The guest ({guest}) rated {host} 5/5 and recommends them."),
            ),
            (
                BookingEvent::ReviewSubmitted {
                    review_id: Uuid::from_u128(901),
                    reviewer_id: host,
                    reviewer_role: ReviewerRole::Host,
                    reviewee_id: guest,
                    vehicle_id: Uuid::from_u128(200),
                    rating: 2,
                    category_ratings: CategoryRatings::default(),
                    comment: None,
                    is_recommended: false,
                    at,
                },
                format!("The host ({host}) rated {guest} 2/5."),
            ),
        ];
        for (event, sentence) in cases {
            assert_eq!(booking_summary(&event), sentence);
        }
    }

    #[test]
    fn each_payment_event_reads_as_a_sentence() {
        let at = t("2026-12-01T00:00:00Z");
        let cases = [
            (
                PaymentEvent::PaymentDue {
                    booking_id: Uuid::from_u128(100),
                    guest_id: Uuid::from_u128(1),
                    host_id: Uuid::from_u128(2),
                    order_id: "bk-1".into(),
                    amount: Won(54_000),
                    due_at: t("2026-12-01T03:00:00Z"),
                    at,
                },
                "Payment of ₩54000 due by 2026-12-01 03:00:00 UTC (order bk-1).",
            ),
            (
                PaymentEvent::PaymentConfirmed {
                    payment_key: "pk".into(),
                    amount: Won(54_000),
                    method: Some("카드".into()),
                    approved_at: None,
                    toss_status: "DONE".into(),
                    at,
                },
                "Toss confirmed ₩54000 by 카드 (DONE).",
            ),
            (
                PaymentEvent::PaymentConfirmed {
                    payment_key: "pk".into(),
                    amount: Won(54_000),
                    method: None,
                    approved_at: None,
                    toss_status: "DONE".into(),
                    at,
                },
                "Toss confirmed ₩54000 (DONE).",
            ),
            (
                PaymentEvent::PaymentFailed {
                    payment_key: "pk".into(),
                    code: "REJECT_CARD_COMPANY".into(),
                    message: "거절".into(),
                    at,
                },
                "Toss refused the payment: REJECT_CARD_COMPANY (거절).",
            ),
            (
                PaymentEvent::PaymentVoided {
                    reason: "BookingExpired".into(),
                    at,
                },
                "The payment was voided: the booking ended unpaid (BookingExpired).",
            ),
            (
                PaymentEvent::RefundRequested {
                    amount: Won(27_000),
                    reason: "BookingCancelled".into(),
                    at,
                },
                "A refund of ₩27000 was decided (BookingCancelled).",
            ),
            (
                PaymentEvent::PaymentRefunded {
                    amount: Won(27_000),
                    transaction_key: None,
                    at,
                },
                "Toss refunded ₩27000.",
            ),
            (
                PaymentEvent::PaymentSettled {
                    settlement_id: Uuid::from_u128(7),
                    kept: Won(27_000),
                    platform_fee: Won(4_050),
                    host_share: Won(22_950),
                    at,
                },
                "Settled in 00000000-0000-0000-0000-000000000007: kept ₩27000, fee ₩4050, \
                 host ₩22950.",
            ),
            (
                PaymentEvent::RefundFailed {
                    code: "NOT_CANCELABLE".into(),
                    message: "불가".into(),
                    at,
                },
                "Toss refused the refund: NOT_CANCELABLE (불가); an operator must act.",
            ),
        ];
        for (event, sentence) in cases {
            assert_eq!(payment_summary(&event), sentence);
        }
    }

    fn stored(metadata: &str) -> carshare_event_store::StoredEvent {
        carshare_event_store::StoredEvent {
            position: 17,
            transaction_id: 9,
            aggregate_type: "Booking".into(),
            aggregate_id: Uuid::from_u128(100).to_string(),
            sequence: 2,
            event_type: "BookingApproved".into(),
            event_version: "1.0".into(),
            payload: RawValue::from_string(
                r#"{"BookingApproved":{"host_response":null,"at":"2026-12-01T01:00:00Z"}}"#.into(),
            )
            .unwrap(),
            metadata: RawValue::from_string(metadata.into()).unwrap(),
            recorded_at: t("2026-12-01T01:00:01Z"),
        }
    }

    #[test]
    fn an_entry_carries_who_caused_the_event() {
        let e = stored(
            r#"{"actor_id":"00000000-0000-0000-0000-000000000002","actor_role":"host",
                "correlation_id":"req-1"}"#,
        );
        let entry = entry(&e, "The host approved.".into());
        assert_eq!(entry.position, 17);
        assert_eq!(entry.sequence, 2);
        assert_eq!(entry.aggregate_type, "Booking");
        assert_eq!(entry.event_type, "BookingApproved");
        assert_eq!(
            entry.actor_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000002")
        );
        assert_eq!(entry.actor_role.as_deref(), Some("host"));
        assert_eq!(entry.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(entry.summary, "The host approved.");
        assert_eq!(
            entry.payload["BookingApproved"]["host_response"],
            serde_json::Value::Null
        );
        // Metadata of another shape is not an error: the entry just names no actor.
        let odd = entry_of_odd_metadata();
        assert_eq!(odd.actor_id, None);
        assert_eq!(odd.correlation_id, None);
    }

    fn entry_of_odd_metadata() -> TimelineEntry {
        entry(&stored(r#"{"actor_id": 5}"#), String::new())
    }
}

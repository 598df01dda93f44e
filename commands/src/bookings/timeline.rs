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

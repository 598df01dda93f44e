//! Real-time updates: what a booking's guest and host are told when it changes.

use carshare_domain::booking::{Booking, BookingEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A booking changed. Sent to its guest and its host; the authoritative state stays
/// `GET /v1/bookings/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingUpdate {
    /// Always `booking.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The booking.
    pub booking_id: Uuid,
    /// Its vehicle.
    pub vehicle_id: Uuid,
    /// The guest.
    pub guest_id: Uuid,
    /// The car's host.
    pub host_id: Uuid,
    /// Status after the change.
    pub status: String,
    /// The event that changed it, e.g. `BookingApproved`.
    pub event: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Stream position of the change (use as `min_position` to read it).
    pub position: Option<String>,
}

impl BookingUpdate {
    /// The update for `event`, applied to `booking` (its state after the event).
    pub fn of(booking: &Booking, event: &BookingEvent, position: Option<String>) -> Option<Self> {
        let state = booking.state.as_ref()?;
        Some(BookingUpdate {
            kind: "booking.updated".into(),
            booking_id: state.id,
            vehicle_id: state.vehicle_id,
            guest_id: state.guest_id,
            host_id: state.host_id,
            status: state.status.as_str().into(),
            event: event.name().into(),
            at: event.at(),
            position,
        })
    }
}

/// Where updates go (e.g. Redis pub/sub, fanned out to every API instance's WebSockets).
/// Publishing must not block the command: implementations hand the update off and return.
pub trait UpdatePublisher: Send + Sync {
    /// Sends `update` on its way; delivery is best effort (at most once).
    fn publish(&self, update: BookingUpdate);
}

#[cfg(test)]
mod tests {
    use super::*;
    use carshare_domain::booking::BookingPolicy;
    use carshare_domain::Won;
    use cqrs_es::Aggregate;

    #[test]
    fn an_update_tells_both_sides_the_new_status() {
        let at: DateTime<Utc> = "2026-12-01T01:00:00Z".parse().unwrap();
        let approved = BookingEvent::BookingApproved {
            host_response: None,
            at,
        };
        // Nothing to tell about a booking that does not exist.
        assert_eq!(
            BookingUpdate::of(&Booking::default(), &approved, None),
            None
        );
        let mut booking = Booking::default();
        booking.apply(BookingEvent::BookingRequested {
            booking_id: Uuid::from_u128(100),
            vehicle_id: Uuid::from_u128(200),
            guest_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            start: "2026-12-03T01:00:00Z".parse().unwrap(),
            end: "2026-12-03T05:00:00Z".parse().unwrap(),
            hourly_rate: Won(10_000),
            total_amount: Won(40_000),
            platform_fee: Won(6_000),
            host_share: Won(34_000),
            guest_message: None,
            respond_by: at + BookingPolicy::default().response_time,
            at: "2026-12-01T00:00:00Z".parse().unwrap(),
        });
        booking.apply(approved.clone());
        let update = BookingUpdate::of(&booking, &approved, Some("9:17".into())).unwrap();
        assert_eq!(
            update,
            BookingUpdate {
                kind: "booking.updated".into(),
                booking_id: Uuid::from_u128(100),
                vehicle_id: Uuid::from_u128(200),
                guest_id: Uuid::from_u128(1),
                host_id: Uuid::from_u128(2),
                status: "approved".into(),
                event: "BookingApproved".into(),
                at,
                position: Some("9:17".into()),
            }
        );
        let wire = serde_json::to_value(&update).unwrap();
        assert_eq!(wire["type"], "booking.updated");
    }
}

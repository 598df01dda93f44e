//! What happened to a booking.

use super::commands::PhotoKind;
use super::review::{CategoryRatings, ReviewerRole};
use super::rules::RefundRule;
use crate::money::Won;
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema version of every booking event shape below.
pub const BOOKING_EVENT_VERSION: &str = "1.0";

/// Who cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    /// The guest.
    Guest,
    /// The car's host (counted against the host).
    Host,
    /// A platform admin (refunds like a host cancellation).
    Admin,
    /// The platform itself: the booking was not paid by its deadline.
    Platform,
}

impl CancelledBy {
    /// The name used in the API and the read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelledBy::Guest => "guest",
            CancelledBy::Host => "host",
            CancelledBy::Admin => "admin",
            CancelledBy::Platform => "platform",
        }
    }
}

/// Why a request expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryReason {
    /// The host did not answer within the response time.
    HostDidNotRespond,
    /// The booked start came before the host answered.
    StartReached,
}

impl ExpiryReason {
    /// The name used in the API and the read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryReason::HostDidNotRespond => "host_did_not_respond",
            ExpiryReason::StartReached => "start_reached",
        }
    }
}

/// An event of the Booking aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BookingEvent {
    /// A guest asked for a vehicle for a window; the price is fixed here.
    BookingRequested {
        /// The booking's id.
        booking_id: Uuid,
        /// The vehicle.
        vehicle_id: Uuid,
        /// The guest who asked.
        guest_id: Uuid,
        /// The car's host.
        host_id: Uuid,
        /// Start of the window.
        start: DateTime<Utc>,
        /// End of the window (exclusive).
        end: DateTime<Utc>,
        /// The vehicle's hourly rate at the time.
        hourly_rate: Won,
        /// What the guest pays.
        total_amount: Won,
        /// The platform's 15%.
        platform_fee: Won,
        /// What the host receives.
        host_share: Won,
        /// The guest's note to the host.
        guest_message: Option<String>,
        /// The host must answer before this instant.
        respond_by: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The host accepted.
    BookingApproved {
        /// The host's note.
        host_response: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The host refused.
    BookingRejected {
        /// The host's note.
        host_response: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The guest, the host or an admin cancelled.
    BookingCancelled {
        /// Who.
        by: CancelledBy,
        /// Why, if given.
        reason: Option<String>,
        /// The clause of the policy that applied.
        refund_rule: RefundRule,
        /// What the guest gets back of the total (executed by payments).
        refund_amount: Won,
        /// When.
        at: DateTime<Utc>,
    },
    /// The host did not answer in time; the car is free again.
    BookingExpired {
        /// Why.
        reason: ExpiryReason,
        /// When.
        at: DateTime<Utc>,
    },
    /// The guest picked the car up.
    BookingStarted {
        /// When.
        at: DateTime<Utc>,
    },
    /// The car was returned.
    BookingCompleted {
        /// Minutes after the end, when later than the grace period; 0 otherwise.
        late_minutes: i64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Photos were taken at pickup or return.
    BookingPhotosAdded {
        /// Pickup or return.
        kind: PhotoKind,
        /// Storage keys of the images.
        keys: Vec<String>,
        /// Who uploaded them.
        by: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The guest or the host reviewed the other side after the trip.
    ReviewSubmitted {
        /// The review's id.
        review_id: Uuid,
        /// Who wrote it.
        reviewer_id: Uuid,
        /// Which side wrote it.
        reviewer_role: ReviewerRole,
        /// Who is reviewed.
        reviewee_id: Uuid,
        /// The booked vehicle (a guest's review rates it too).
        vehicle_id: Uuid,
        /// Overall rating, 1–5.
        rating: i32,
        /// Per-category ratings.
        category_ratings: CategoryRatings,
        /// Free text.
        comment: Option<String>,
        /// Whether the author recommends the other side.
        is_recommended: bool,
        /// When.
        at: DateTime<Utc>,
    },
}

impl BookingEvent {
    /// When the event happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            BookingEvent::BookingRequested { at, .. }
            | BookingEvent::BookingApproved { at, .. }
            | BookingEvent::BookingRejected { at, .. }
            | BookingEvent::BookingCancelled { at, .. }
            | BookingEvent::BookingExpired { at, .. }
            | BookingEvent::BookingStarted { at }
            | BookingEvent::BookingCompleted { at, .. }
            | BookingEvent::BookingPhotosAdded { at, .. }
            | BookingEvent::ReviewSubmitted { at, .. } => *at,
        }
    }

    /// The event's type name, as stored in the event log.
    pub fn name(&self) -> &'static str {
        match self {
            BookingEvent::BookingRequested { .. } => "BookingRequested",
            BookingEvent::BookingApproved { .. } => "BookingApproved",
            BookingEvent::BookingRejected { .. } => "BookingRejected",
            BookingEvent::BookingCancelled { .. } => "BookingCancelled",
            BookingEvent::BookingExpired { .. } => "BookingExpired",
            BookingEvent::BookingStarted { .. } => "BookingStarted",
            BookingEvent::BookingCompleted { .. } => "BookingCompleted",
            BookingEvent::BookingPhotosAdded { .. } => "BookingPhotosAdded",
            BookingEvent::ReviewSubmitted { .. } => "ReviewSubmitted",
        }
    }

    /// Whether this event ends the booking's hold on the car.
    pub fn releases_vehicle(&self) -> bool {
        matches!(
            self,
            BookingEvent::BookingRejected { .. }
                | BookingEvent::BookingCancelled { .. }
                | BookingEvent::BookingExpired { .. }
                | BookingEvent::BookingCompleted { .. }
        )
    }
}

impl DomainEvent for BookingEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        BOOKING_EVENT_VERSION.to_string()
    }
}

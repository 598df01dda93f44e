//! What may be asked of a booking.

use crate::actor::Actor;
use crate::money::Won;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::review::NewReview;
use super::rules::BookingPolicy;

/// A command to the Booking aggregate: who asks (`None`: the platform itself, e.g. expiry),
/// when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingCommand {
    /// The caller; `None` for the platform's own reactions.
    pub actor: Option<Actor>,
    /// When the command was issued (the aggregate never reads a clock).
    pub at: DateTime<Utc>,
    /// What is asked.
    pub action: BookingAction,
}

/// The requested change.
#[derive(Debug, Clone, PartialEq)]
pub enum BookingAction {
    /// A guest asks for a vehicle.
    Request(NewBooking),
    /// The host accepts.
    Approve {
        /// A note to the guest.
        host_response: Option<String>,
    },
    /// The host refuses.
    Reject {
        /// A note to the guest.
        host_response: Option<String>,
    },
    /// The guest or the host calls it off.
    Cancel {
        /// Why.
        reason: Option<String>,
    },
    /// The platform expires an unanswered request.
    Expire,
    /// The platform cancels an approved booking whose payment deadline passed unpaid (the
    /// application checks the payment).
    CancelUnpaid,
    /// The guest picks the car up; `paid` says whether the booking's payment is completed.
    Start {
        /// Whether the payment is completed (the application reads the Payment aggregate).
        paid: bool,
    },
    /// The car comes back.
    Complete,
    /// Photos of the car at pickup or return.
    AddPhotos {
        /// Which moment they document.
        kind: PhotoKind,
        /// Storage keys of the stored images.
        keys: Vec<String>,
    },
    /// The guest or the host reviews the other side after the trip.
    Review(NewReview),
}

impl BookingAction {
    /// The command's name in event metadata.
    pub fn name(&self) -> &'static str {
        match self {
            BookingAction::Request(_) => "RequestBooking",
            BookingAction::Approve { .. } => "ApproveBooking",
            BookingAction::Reject { .. } => "RejectBooking",
            BookingAction::Cancel { .. } => "CancelBooking",
            BookingAction::Expire => "ExpireBooking",
            BookingAction::CancelUnpaid => "CancelUnpaidBooking",
            BookingAction::Start { .. } => "StartBooking",
            BookingAction::Complete => "CompleteBooking",
            BookingAction::AddPhotos { .. } => "AddBookingPhotos",
            BookingAction::Review(_) => "SubmitReview",
        }
    }
}

/// What a booking needs to know about the vehicle, read from the Vehicle aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VehicleTerms {
    /// The vehicle.
    pub vehicle_id: Uuid,
    /// Its host.
    pub host_id: Uuid,
    /// Its current price per hour.
    pub hourly_rate: Won,
}

/// A booking request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBooking {
    /// The id the booking will have.
    pub booking_id: Uuid,
    /// The vehicle and its terms.
    pub vehicle: VehicleTerms,
    /// Start as sent.
    pub start: DateTime<Utc>,
    /// End as sent.
    pub end: DateTime<Utc>,
    /// A note to the host.
    pub guest_message: Option<String>,
    /// Response time and buffer in force.
    pub policy: BookingPolicy,
}

/// The moment photos document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoKind {
    /// Taken when the guest picks the car up.
    Pickup,
    /// Taken when the car comes back.
    Return,
}

impl PhotoKind {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoKind::Pickup => "pickup",
            PhotoKind::Return => "return",
        }
    }
}

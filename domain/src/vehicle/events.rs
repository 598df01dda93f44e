//! What happened to a vehicle.

use super::availability::AvailabilityRule;
use super::types::{Location, VehicleDetails, VehicleStatus};
use crate::money::Won;
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema version of every vehicle event shape below. Bump it (and add an upcaster in the event
/// store) whenever a shape changes.
pub const VEHICLE_EVENT_VERSION: &str = "1.0";

/// An event of the Vehicle aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VehicleEvent {
    /// A host listed a new vehicle.
    VehicleRegistered {
        /// The vehicle's id.
        vehicle_id: Uuid,
        /// The host who owns it.
        owner_id: Uuid,
        /// Descriptive details.
        details: VehicleDetails,
        /// Price per hour.
        hourly_rate: Won,
        /// Pickup location.
        location: Location,
        /// Image references.
        images: Vec<String>,
        /// Initial status.
        status: VehicleStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// Descriptive details changed; `details` holds all of them after the change.
    VehicleDetailsUpdated {
        /// Details after the change.
        details: VehicleDetails,
        /// Names of the fields that changed.
        changed: Vec<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The price per hour changed.
    HourlyRateChanged {
        /// New rate.
        hourly_rate: Won,
        /// Rate before.
        previous: Won,
        /// When.
        at: DateTime<Utc>,
    },
    /// The pickup location moved.
    VehicleRelocated {
        /// New location.
        location: Location,
        /// When.
        at: DateTime<Utc>,
    },
    /// The status changed.
    VehicleStatusChanged {
        /// New status.
        status: VehicleStatus,
        /// Status before.
        previous: VehicleStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// The availability rule set was replaced.
    AvailabilitySet {
        /// The whole new rule set.
        rules: Vec<AvailabilityRule>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Image references were added.
    VehicleImagesAttached {
        /// The references added.
        images: Vec<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The image list was replaced.
    VehicleImagesReplaced {
        /// The whole new list.
        images: Vec<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A booking took the car for a window (with the buffer already checked around it).
    WindowReserved {
        /// The booking holding the window.
        booking_id: Uuid,
        /// The guest.
        guest_id: Uuid,
        /// Start of the window.
        start: DateTime<Utc>,
        /// End of the window (exclusive).
        end: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A booking's hold ended (rejected, cancelled, expired or returned).
    ReservationReleased {
        /// The booking.
        booking_id: Uuid,
        /// The booking event that ended it, e.g. `BookingCancelled`.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The vehicle was removed from the platform (its history stays).
    VehicleRemoved {
        /// Why, if given.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
}

impl VehicleEvent {
    /// When the event happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            VehicleEvent::VehicleRegistered { at, .. }
            | VehicleEvent::VehicleDetailsUpdated { at, .. }
            | VehicleEvent::HourlyRateChanged { at, .. }
            | VehicleEvent::VehicleRelocated { at, .. }
            | VehicleEvent::VehicleStatusChanged { at, .. }
            | VehicleEvent::AvailabilitySet { at, .. }
            | VehicleEvent::VehicleImagesAttached { at, .. }
            | VehicleEvent::VehicleImagesReplaced { at, .. }
            | VehicleEvent::WindowReserved { at, .. }
            | VehicleEvent::ReservationReleased { at, .. }
            | VehicleEvent::VehicleRemoved { at, .. } => *at,
        }
    }

    /// The event's type name, as stored in the event log.
    pub fn name(&self) -> &'static str {
        match self {
            VehicleEvent::VehicleRegistered { .. } => "VehicleRegistered",
            VehicleEvent::VehicleDetailsUpdated { .. } => "VehicleDetailsUpdated",
            VehicleEvent::HourlyRateChanged { .. } => "HourlyRateChanged",
            VehicleEvent::VehicleRelocated { .. } => "VehicleRelocated",
            VehicleEvent::VehicleStatusChanged { .. } => "VehicleStatusChanged",
            VehicleEvent::AvailabilitySet { .. } => "AvailabilitySet",
            VehicleEvent::VehicleImagesAttached { .. } => "VehicleImagesAttached",
            VehicleEvent::VehicleImagesReplaced { .. } => "VehicleImagesReplaced",
            VehicleEvent::WindowReserved { .. } => "WindowReserved",
            VehicleEvent::ReservationReleased { .. } => "ReservationReleased",
            VehicleEvent::VehicleRemoved { .. } => "VehicleRemoved",
        }
    }
}

impl DomainEvent for VehicleEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        VEHICLE_EVENT_VERSION.to_string()
    }
}

//! What may be asked of a vehicle.

use super::availability::AvailabilityRule;
use super::types::{FuelType, Location, Transmission, VehicleStatus};
use crate::actor::Actor;
use crate::time::TimeWindow;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// A command to the Vehicle aggregate: who asks, when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleCommand {
    /// The caller.
    pub actor: Actor,
    /// When the command was issued (the aggregate never reads a clock).
    pub at: DateTime<Utc>,
    /// What is asked.
    pub action: VehicleAction,
}

/// The requested change.
#[derive(Debug, Clone, PartialEq)]
pub enum VehicleAction {
    /// List a new vehicle.
    Register(NewVehicle),
    /// Change some fields.
    Update(VehiclePatch),
    /// Change the status only.
    ChangeStatus(VehicleStatus),
    /// Replace the availability rules.
    SetAvailability(Vec<AvailabilityRule>),
    /// Add image references.
    AttachImages(Vec<String>),
    /// Hold the car for a booking's window; refused if it is not bookable then, or another
    /// booking holds it within `buffer` of the window.
    Reserve {
        /// The booking.
        booking_id: Uuid,
        /// The window (already validated by the booking).
        window: TimeWindow,
        /// Free time required between two trips.
        buffer: Duration,
    },
    /// End a booking's hold (nothing happens if it holds nothing).
    Release {
        /// The booking.
        booking_id: Uuid,
        /// The booking event that ends it.
        reason: String,
    },
    /// Remove the vehicle (soft: its history stays).
    Remove {
        /// Why, if given.
        reason: Option<String>,
    },
}

/// A vehicle to list. Text arrives raw; the aggregate validates and normalises it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVehicle {
    /// The id the vehicle will have.
    pub vehicle_id: Uuid,
    /// Plate as typed.
    pub license_plate: String,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// Model year.
    pub year: i32,
    /// Colour.
    pub color: Option<String>,
    /// Fuel.
    pub fuel_type: Option<FuelType>,
    /// Gearbox.
    pub transmission: Option<Transmission>,
    /// Price per hour in won.
    pub hourly_rate: i64,
    /// Resolved pickup location.
    pub location: Location,
    /// Free text.
    pub description: Option<String>,
    /// Image references.
    pub images: Vec<String>,
}

/// A partial update: `None` leaves a field alone; for optional fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VehiclePatch {
    /// New plate.
    pub license_plate: Option<String>,
    /// New manufacturer.
    pub make: Option<String>,
    /// New model.
    pub model: Option<String>,
    /// New model year.
    pub year: Option<i32>,
    /// New colour, or cleared.
    pub color: Option<Option<String>>,
    /// New fuel, or cleared.
    pub fuel_type: Option<Option<FuelType>>,
    /// New gearbox, or cleared.
    pub transmission: Option<Option<Transmission>>,
    /// New description, or cleared.
    pub description: Option<Option<String>>,
    /// New hourly rate.
    pub hourly_rate: Option<i64>,
    /// New (resolved) location.
    pub location: Option<Location>,
    /// New status.
    pub status: Option<VehicleStatus>,
    /// New image list.
    pub images: Option<Vec<String>>,
}

impl VehiclePatch {
    /// Whether the patch names no field at all.
    pub fn is_empty(&self) -> bool {
        self == &VehiclePatch::default()
    }
}

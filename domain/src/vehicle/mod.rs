//! The Vehicle aggregate: a car a host lists, its details, location, status, images and
//! availability rules.

mod aggregate;
pub mod availability;
mod commands;
mod error;
mod events;
mod types;

pub use aggregate::{Hold, Vehicle, VehicleState};
pub use availability::{AvailabilityRule, AvailabilityRules, RuleWire, Schedule};
pub use commands::{NewVehicle, VehicleAction, VehicleCommand, VehiclePatch};
pub use error::{Problem, VehicleError};
pub use events::VehicleEvent;
pub use types::{
    FuelType, Location, Transmission, VehicleDetails, VehicleStatus, MAX_HOURLY_RATE, MAX_IMAGES,
    MIN_HOURLY_RATE, MIN_YEAR,
};

#[cfg(test)]
mod reservation_tests;

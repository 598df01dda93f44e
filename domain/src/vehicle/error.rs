//! Why a vehicle command was refused.

use std::borrow::Cow;

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Missing or blank.
    Required,
    /// Longer than allowed.
    TooLong {
        /// Maximum number of characters.
        max: usize,
    },
    /// Not a Korean licence plate.
    PlateFormat,
    /// The model year is out of range.
    YearOutOfRange {
        /// Earliest accepted year.
        min: i32,
        /// Latest accepted year.
        max: i32,
    },
    /// The hourly rate is out of range.
    RateOutOfRange {
        /// Lowest accepted rate in won.
        min: i64,
        /// Highest accepted rate in won.
        max: i64,
    },
    /// The point lies outside South Korea.
    OutsideKorea,
    /// Too many items.
    TooMany {
        /// Maximum number of items.
        max: usize,
    },
    /// A dated rule lies too far ahead.
    DateTooFar {
        /// How many days ahead are allowed.
        max_days: i64,
    },
    /// Not an http(s) URL or storage key.
    ImageReference,
    /// The update changes nothing that can be changed.
    EmptyUpdate,
}

/// A refusal by the Vehicle aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VehicleError {
    /// No vehicle with that id exists (or it was never registered).
    #[error("vehicle not found")]
    NotFound,
    /// The id is already taken by a registered vehicle.
    #[error("vehicle already registered")]
    AlreadyRegistered,
    /// The vehicle was removed; its history is kept but it cannot change.
    #[error("vehicle has been removed")]
    Removed,
    /// Only hosts can register vehicles.
    #[error("only hosts can register vehicles")]
    HostRoleRequired,
    /// Only the vehicle's host or an admin may change it.
    #[error("only the vehicle's host or an admin may change it")]
    NotOwner,
    /// Not taking bookings now (inactive or in maintenance).
    #[error("the vehicle is not taking bookings")]
    NotBookable,
    /// The window lies outside the availability rules.
    #[error("the vehicle is not available in that window")]
    OutsideAvailability,
    /// Another booking holds the car in or near the window.
    #[error("another booking holds the vehicle in that window")]
    WindowTaken,
    /// A host cannot reserve their own car.
    #[error("a host cannot book their own vehicle")]
    OwnVehicle,
    /// Bookings still hold the car.
    #[error("bookings still hold the vehicle")]
    HasBookings,
    /// A field failed validation.
    #[error("invalid {field}: {problem:?}")]
    Invalid {
        /// The field path, e.g. `license_plate` or `rules[3].specific_date`.
        field: Cow<'static, str>,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl VehicleError {
    /// A validation failure on `field`.
    pub fn invalid(field: impl Into<Cow<'static, str>>, problem: Problem) -> VehicleError {
        VehicleError::Invalid {
            field: field.into(),
            problem,
        }
    }
}

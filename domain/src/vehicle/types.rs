//! Value types of a vehicle.

use crate::geo::GeoPoint;
use crate::plate::LicensePlate;
use serde::{Deserialize, Serialize};

/// Oldest model year accepted.
pub const MIN_YEAR: i32 = 1990;
/// Lowest hourly rate in won.
pub const MIN_HOURLY_RATE: i64 = 1;
/// Highest hourly rate in won (a sanity cap, not a business tariff).
pub const MAX_HOURLY_RATE: i64 = 1_000_000;
/// Most image references per vehicle.
pub const MAX_IMAGES: usize = 20;

/// Fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FuelType {
    /// 휘발유.
    Gasoline,
    /// 경유.
    Diesel,
    /// 전기.
    Electric,
    /// 하이브리드.
    Hybrid,
}

impl FuelType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FuelType::Gasoline => "gasoline",
            FuelType::Diesel => "diesel",
            FuelType::Electric => "electric",
            FuelType::Hybrid => "hybrid",
        }
    }
}

/// Gearbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transmission {
    /// 수동.
    Manual,
    /// 자동.
    Automatic,
}

impl Transmission {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transmission::Manual => "manual",
            Transmission::Automatic => "automatic",
        }
    }
}

/// Whether the vehicle can be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VehicleStatus {
    /// Listed and bookable.
    Active,
    /// Hidden by its host.
    Inactive,
    /// Out of service for maintenance.
    Maintenance,
}

impl VehicleStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleStatus::Active => "active",
            VehicleStatus::Inactive => "inactive",
            VehicleStatus::Maintenance => "maintenance",
        }
    }
}

/// Descriptive details of a vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleDetails {
    /// Normalised plate.
    pub license_plate: LicensePlate,
    /// Manufacturer, e.g. "Genesis".
    pub make: String,
    /// Model, e.g. "G90".
    pub model: String,
    /// Model year.
    pub year: i32,
    /// Colour.
    pub color: Option<String>,
    /// Fuel.
    pub fuel_type: Option<FuelType>,
    /// Gearbox.
    pub transmission: Option<Transmission>,
    /// Free text from the host.
    pub description: Option<String>,
}

/// Where the vehicle is picked up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The pickup address as given by the host (a place, not a person's address).
    pub address: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
}

impl Location {
    /// The coordinates.
    pub fn point(&self) -> GeoPoint {
        GeoPoint {
            lat: self.lat,
            lng: self.lng,
        }
    }
}

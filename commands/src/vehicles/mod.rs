//! Vehicle use cases: register, update, set availability, attach images, remove.

mod plates;
mod service;

pub use plates::PlateRegistry;
pub use service::{
    LocationInput, RegisterVehicle, UpdateVehicle, VehicleService, VehicleServiceError,
};

//! Vehicle routes (seed: 차량 관리 모듈).

mod availability;
mod create;
mod delete;
pub mod dto;
mod get;
mod host_list;
mod images;
mod search;
mod update;

use crate::error::{ApiError, ErrorCode};
use carshare_domain::vehicle::Vehicle;
use carshare_projections::vehicles::NAME as VEHICLES;

/// Read models a vehicle command must reach before its response (read-your-writes).
pub const READ_MODELS: &[&str] = &[VEHICLES];

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(search::search)
        .service(create::create)
        .service(host_list::host_vehicles)
        .service(get::get)
        .service(update::update)
        .service(delete::delete)
        .service(availability::set_availability)
        .service(images::upload_images);
}

/// The vehicle's state after a command, or 404 if it has none (never happens after success).
fn state_of(vehicle: &Vehicle) -> Result<&carshare_domain::vehicle::VehicleState, ApiError> {
    vehicle
        .state
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::VEHICLE001))
}

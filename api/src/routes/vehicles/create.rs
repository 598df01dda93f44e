//! `POST /v1/vehicles`: a host lists a vehicle.

use super::dto::{VehicleCreate, VehicleResponse};
use super::{state_of, READ_MODELS};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use carshare_commands::vehicles::{LocationInput, RegisterVehicle};

/// Registers a vehicle for the calling host. Coordinates are taken as given (inside South
/// Korea), or the address is geocoded with Kakao Local when configured.
#[utoipa::path(
    tag = "vehicles",
    request_body = VehicleCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = VehicleResponse,
         headers(("Location" = String, description = "The vehicle's URL"),
                 ("X-Stream-Position" = String, description = "Pass as min_position to read this write"))),
        (status = 400, description = "Malformed JSON", body = ErrorResponse),
        (status = 401, description = "No or bad token", body = ErrorResponse),
        (status = 403, description = "Not a host", body = ErrorResponse),
        (status = 409, description = "Plate already registered", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 415, description = "Not JSON", body = ErrorResponse),
        (status = 422, description = "Invalid fields, or the address cannot be located", body = ErrorResponse),
        (status = 503, description = "Database or geocoder unavailable", body = ErrorResponse)
    )
)]
#[post("/vehicles")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<VehicleCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let meta = command_metadata(&req, &user, "RegisterVehicle")?;
    let request = RegisterVehicle {
        license_plate: body.license_plate,
        make: body.make,
        model: body.model,
        year: body.year,
        color: body.color,
        fuel_type: body.fuel_type.map(Into::into),
        transmission: body.transmission.map(Into::into),
        hourly_rate: body.hourly_rate,
        location: LocationInput {
            address: body.location_address,
            lat: body.location_lat,
            lng: body.location_lng,
        },
        description: body.description,
        images: body.images.unwrap_or_default(),
    };
    let done = state
        .vehicles
        .register(user.actor(), request, &meta)
        .await?;
    let vehicle = VehicleResponse::from(state_of(&done.aggregate)?);
    let mut response = HttpResponse::Created();
    response.insert_header(("Location", format!("/v1/vehicles/{}", vehicle.id)));
    settle_command(&state, READ_MODELS, done.cursor, &mut response).await;
    Ok(response.json(vehicle))
}

//! `PUT /v1/vehicles/{id}`: change some fields.

use super::dto::{VehicleResponse, VehicleUpdate};
use super::{state_of, READ_MODELS};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{put, web, HttpRequest, HttpResponse};
use carshare_commands::vehicles::UpdateVehicle;
use carshare_domain::vehicle::VehiclePatch;
use uuid::Uuid;

/// Changes the fields present in the body (the vehicle's host or an admin). A field set to
/// `null` is cleared where that is allowed. An update that changes nothing records nothing.
#[utoipa::path(
    tag = "vehicles",
    params(("id" = Uuid, Path, description = "Vehicle id")),
    request_body = VehicleUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, body = VehicleResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the vehicle's host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Plate taken, vehicle removed, or concurrent change", body = ErrorResponse),
        (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/vehicles/{id}")]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ValidJson<VehicleUpdate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let meta = command_metadata(&req, &user, "UpdateVehicle")?;
    let request = UpdateVehicle {
        patch: VehiclePatch {
            license_plate: b.license_plate,
            make: b.make,
            model: b.model,
            year: b.year,
            color: b.color,
            fuel_type: b.fuel_type.map(|f| f.map(Into::into)),
            transmission: b.transmission.map(|t| t.map(Into::into)),
            description: b.description,
            hourly_rate: b.hourly_rate,
            location: None,
            status: b.status.map(Into::into),
            images: b.images,
        },
        location_address: b.location_address,
        location_lat: b.location_lat,
        location_lng: b.location_lng,
    };
    let done = state
        .vehicles
        .update(user.actor(), id.into_inner(), request, &meta)
        .await?;
    let vehicle = VehicleResponse::from(state_of(&done.aggregate)?);
    let mut response = HttpResponse::Ok();
    settle_command(&state, READ_MODELS, done.cursor, &mut response).await;
    Ok(response.json(vehicle))
}

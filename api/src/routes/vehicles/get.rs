//! `GET /v1/vehicles/{id}`: one vehicle.

use super::dto::{ReadParams, VehicleResponse};
use super::READ_MODELS;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::ValidQuery;
use crate::routes::await_position;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use uuid::Uuid;

/// A vehicle by id (public). Removed vehicles are not found.
#[utoipa::path(
    tag = "vehicles",
    params(("id" = Uuid, Path, description = "Vehicle id"), ReadParams),
    responses(
        (status = 200, body = VehicleResponse),
        (status = 400, description = "Malformed id or parameter", body = ErrorResponse),
        (status = 404, description = "No such vehicle", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/vehicles/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: ValidQuery<ReadParams>,
) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::Ok();
    let fresh = await_position(
        &state,
        READ_MODELS,
        params.0.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let row = carshare_projections::vehicles::get(&state.pool, id.into_inner())
        .await?
        .filter(|r| r.removed_at.is_none())
        .ok_or_else(|| fresh.error(ApiError::new(ErrorCode::VEHICLE001)))?;
    Ok(response.json(VehicleResponse::from(&row)))
}

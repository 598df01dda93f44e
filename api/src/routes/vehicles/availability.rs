//! `POST /v1/vehicles/{id}/availability`: replace the availability rules.

use super::dto::{AvailabilityUpdate, VehicleResponse};
use super::{state_of, READ_MODELS};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::ValidJson;
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use uuid::Uuid;

/// Replaces the vehicle's availability rules (weekly recurring and dated windows, available
/// or blocked, in Asia/Seoul time). With no available rule the vehicle is available at all
/// times; blocked windows always win.
#[utoipa::path(
    tag = "vehicles",
    params(("id" = Uuid, Path, description = "Vehicle id")),
    request_body = AvailabilityUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, body = VehicleResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/vehicles/{id}/availability")]
pub async fn set_availability(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ValidJson<AvailabilityUpdate>,
) -> Result<HttpResponse, ApiError> {
    let mut rules = Vec::with_capacity(body.0.rules.len());
    let mut issues = Vec::new();
    for (i, rule) in body.0.rules.iter().enumerate() {
        match rule.to_domain(i) {
            Ok(r) => rules.push(r),
            Err(issue) => issues.push(issue),
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::with_details(ErrorCode::VEHICLE006, issues));
    }
    let meta = command_metadata(&req, &user, "SetAvailability")?;
    let done = state
        .vehicles
        .set_availability(user.actor(), id.into_inner(), rules, &meta)
        .await?;
    let vehicle = VehicleResponse::from(state_of(&done.aggregate)?);
    let mut response = HttpResponse::Ok();
    settle_command(&state, READ_MODELS, done.cursor, &mut response).await;
    Ok(response.json(vehicle))
}

//! `DELETE /v1/vehicles/{id}`: remove a vehicle (its history stays).

use super::dto::RemoveParams;
use super::READ_MODELS;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidQuery;
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{delete, web, HttpRequest, HttpResponse};
use uuid::Uuid;

/// Removes the vehicle from the platform (the vehicle's host or an admin). Its events stay in
/// the log; it disappears from search and lookups, and its plate becomes free.
#[utoipa::path(
    tag = "vehicles",
    params(("id" = Uuid, Path, description = "Vehicle id"), RemoveParams),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Already removed, or concurrent change", body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[delete("/vehicles/{id}")]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    params: ValidQuery<RemoveParams>,
) -> Result<HttpResponse, ApiError> {
    let meta = command_metadata(&req, &user, "RemoveVehicle")?;
    let done = state
        .vehicles
        .remove(user.actor(), id.into_inner(), params.0.reason, &meta)
        .await?;
    let mut response = HttpResponse::NoContent();
    settle_command(&state, READ_MODELS, done.cursor, &mut response).await;
    Ok(response.finish())
}

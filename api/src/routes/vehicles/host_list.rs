//! `GET /v1/hosts/me/vehicles`: the calling host's own vehicles.

use super::dto::{HostVehiclesParams, VehicleResponse};
use super::READ_MODELS;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidQuery;
use crate::routes::{await_position, page_size, NEXT_CURSOR};
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use carshare_domain::Role;
use carshare_projections::vehicles::{self, OwnerCursor, OwnerListQuery};

/// The caller's vehicles, newest first, whatever their status (removed ones on request). The
/// next page's cursor is in `X-Next-Cursor`.
#[utoipa::path(
    tag = "vehicles",
    params(HostVehiclesParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<VehicleResponse>,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not a host", body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/hosts/me/vehicles")]
pub async fn host_vehicles(
    state: web::Data<AppState>,
    user: AuthUser,
    params: ValidQuery<HostVehiclesParams>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Host])?;
    let p = params.0;
    let after = crate::routes::parse_cursor(p.cursor.as_deref(), OwnerCursor::decode)?;
    let query = OwnerListQuery {
        owner_id: user.id,
        status: p.status.map(|s| s.as_str().to_string()),
        include_removed: p.include_removed.unwrap_or(false),
        limit: page_size(p.limit)?,
        after,
    };
    let mut response = HttpResponse::Ok();
    await_position(
        &state,
        READ_MODELS,
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let (rows, next) = vehicles::list_by_owner(&state.pool, &query).await?;
    if let Some(next) = next {
        response.insert_header((NEXT_CURSOR, next.encode()));
    }
    let body: Vec<VehicleResponse> = rows.iter().map(VehicleResponse::from).collect();
    Ok(response.json(body))
}

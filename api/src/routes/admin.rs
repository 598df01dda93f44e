//! Operator views for admins.

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use carshare_domain::Role;
use carshare_projections::status::{self, DeadLetter, ProjectionStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(projections);
}

/// Pipeline state.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineStatus {
    /// Each projection.
    #[schema(value_type = Vec<Object>)]
    pub projections: Vec<ProjectionStatus>,
    /// The 100 most recent dead-lettered events.
    #[schema(value_type = Vec<Object>)]
    pub dead_letters: Vec<DeadLetter>,
}

/// Projections: position, lag, dead letters and rebuild progress (admins only).
#[utoipa::path(
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, body = PipelineStatus),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/admin/projections")]
async fn projections(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Admin])?;
    let names: Vec<&str> = carshare_projections::all()
        .iter()
        .map(|p| p.name())
        .collect();
    let projections = status::statuses(&state.pool, &names).await?;
    let dead_letters = status::dead_letters(&state.pool, None, 100).await?;
    Ok(HttpResponse::Ok().json(PipelineStatus {
        projections,
        dead_letters,
    }))
}

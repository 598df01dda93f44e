//! Operator views for admins.

use super::accounts_dto::{
    CorporateProfileResponse, ProfileListParams, ProfileStatusFilter, VerifyRequest,
};
use super::{page_size, NEXT_CURSOR};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{OptionalJson, ValidQuery};
use crate::state::AppState;
use actix_web::{get, put, web, HttpResponse};
use carshare_commands::accounts::ProfileStatus;
use carshare_domain::Role;
use carshare_event_store::relay::{self, RelayStatus};
use carshare_projections::status::{self, DeadLetter, ProjectionStatus};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(projections)
        .service(list_profiles)
        .service(verify_profile)
        .service(audit_settlements);
}

/// Parameters of the settlement audit.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Settlements issued at or after.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Settlements issued before.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this host.
    pub host_id: Option<Uuid>,
}

/// Finance audit (admins): every settlement in the period recomputed from the event log alone
/// and compared with the statement as issued, the payments' settlement events, the amounts
/// Toss confirmed and the settlement read table. `discrepancies` is empty when all agree; each
/// one names the events behind the expected figure.
#[utoipa::path(
    tag = "operations",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report", body = Object),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/admin/audit/settlements")]
pub async fn audit_settlements(
    state: web::Data<AppState>,
    user: AuthUser,
    params: ValidQuery<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Admin])?;
    let p = params.0;
    let report = carshare_commands::audit::audit_settlements(
        &state.pool,
        carshare_commands::audit::AuditScope {
            from: p.from,
            to: p.to,
            host_id: p.host_id,
        },
        |_| {},
    )
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

fn profile_cursor(token: &str) -> Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (micros, id) = raw.split_once('|')?;
    Some((
        chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        uuid::Uuid::parse_str(id).ok()?,
    ))
}

/// Corporate profiles for review, oldest first (admins only); filter by `status=pending`.
#[utoipa::path(
    tag = "operations",
    params(ProfileListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<CorporateProfileResponse>,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/admin/corporate-profiles")]
async fn list_profiles(
    state: web::Data<AppState>,
    user: AuthUser,
    params: ValidQuery<ProfileListParams>,
) -> Result<HttpResponse, ApiError> {
    use base64::Engine;
    user.require(&[Role::Admin])?;
    let p = params.0;
    let limit = page_size(p.limit)?;
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => Some(profile_cursor(c).ok_or_else(|| {
            ApiError::invalid_field(
                "cursor",
                "invalid_cursor",
                "cursor 값이 올바르지 않습니다.",
                "Unknown cursor.",
            )
        })?),
    };
    let status = p.status.map(|s| match s {
        ProfileStatusFilter::Pending => ProfileStatus::Pending,
        ProfileStatusFilter::Verified => ProfileStatus::Verified,
        ProfileStatusFilter::Rejected => ProfileStatus::Rejected,
    });
    let mut rows = state
        .accounts
        .list_profiles(status, after, limit + 1)
        .await?;
    let mut response = HttpResponse::Ok();
    if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        if let Some(last) = rows.last() {
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
                "{}|{}",
                last.created_at.timestamp_micros(),
                last.id
            ));
            response.insert_header((NEXT_CURSOR, token));
        }
    }
    let body: Vec<CorporateProfileResponse> =
        rows.iter().map(CorporateProfileResponse::from).collect();
    Ok(response.json(body))
}

/// Verifies a corporate profile, or rejects it with a reason (`{"verified": false, "reason": …}`).
#[utoipa::path(
    tag = "operations",
    params(("id" = Uuid, Path, description = "Corporate profile id")),
    request_body = VerifyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = CorporateProfileResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 422, description = "Rejection without reason", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/admin/corporate-profiles/{id}/verify")]
async fn verify_profile(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: OptionalJson<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Admin])?;
    let decision = body.0.unwrap_or_default();
    let profile = state
        .accounts
        .review_profile(
            user.id,
            id.into_inner(),
            decision.verified.unwrap_or(true),
            decision.reason,
        )
        .await?;
    Ok(HttpResponse::Ok().json(CorporateProfileResponse::from(&profile)))
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
    /// The Kafka relay (absent without Kafka).
    #[schema(value_type = Option<Object>)]
    pub relay: Option<RelayStatus>,
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
    let projections = status::statuses(&state.pool, &names, state.settings.stream.source).await?;
    let dead_letters = status::dead_letters(&state.pool, None, 100).await?;
    let relay = match &state.settings.stream.kafka {
        Some(kafka) => Some(relay::status(&state.pool, &kafka.topic_prefix).await?),
        None => None,
    };
    Ok(HttpResponse::Ok().json(PipelineStatus {
        projections,
        dead_letters,
        relay,
    }))
}

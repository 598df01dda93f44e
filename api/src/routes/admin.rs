//! Operator views for admins.

use super::accounts_dto::{
    CorporateProfileResponse, ProfileListParams, ProfileStatusFilter, VerifyRequest,
};
use super::bookings::READ_MODELS;
use super::{await_position, page_size, NEXT_CURSOR};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::{OptionalJson, ValidQuery};
use crate::state::AppState;
use actix_web::{get, post, put, web, HttpResponse};
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
        .service(rebuild_projection)
        .service(find_bookings)
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
    let after = super::parse_cursor(p.cursor.as_deref(), profile_cursor)?;
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

/// A rebuild was started.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct RebuildStarted {
    /// The projection.
    pub projection: String,
}

/// Starts rebuilding a projection's tables from the event log beside the live ones (reads keep
/// working; the new tables are swapped in at the end). Progress is in
/// `GET /v1/admin/projections` (`rebuild`), as for `carshare rebuild`.
#[utoipa::path(
    tag = "operations",
    params(("name" = String, Path, description = "Projection name, e.g. `bookings`")),
    security(("bearer" = [])),
    responses(
        (status = 202, body = RebuildStarted),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "No such projection", body = ErrorResponse),
        (status = 409, description = "A rebuild of it is already running", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/admin/projections/{name}/rebuild")]
async fn rebuild_projection(
    state: web::Data<AppState>,
    user: AuthUser,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Admin])?;
    let projection =
        carshare_projections::by_name(&name).ok_or_else(|| ApiError::new(ErrorCode::ADMIN001))?;
    let running: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projection_rebuilds WHERE projection = $1 AND status = 'running')",
    )
    .bind(projection.name())
    .fetch_one(&state.pool)
    .await?;
    if running {
        return Err(ApiError::new(ErrorCode::ADMIN002));
    }
    let pool = state.pool.clone();
    let name = projection.name().to_string();
    tracing::info!(projection = %name, by = %user.id, "rebuild requested");
    tokio::spawn(async move {
        match carshare_projections::rebuild::rebuild(
            &pool,
            projection.as_ref(),
            carshare_projections::rebuild::RebuildSettings::default(),
            |_, _| {},
        )
        .await
        {
            Ok(report) => {
                tracing::info!(projection = projection.name(), ?report, "rebuild finished")
            }
            Err(e) => tracing::error!(projection = projection.name(), error = %e, "rebuild failed"),
        }
    });
    Ok(HttpResponse::Accepted().json(RebuildStarted { projection: name }))
}

/// Parameters of `GET /v1/admin/bookings`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindBookingsParams {
    /// A booking id, a guest's or host's e-mail address, or a licence plate.
    pub q: String,
    /// Most results (default 20, at most 100).
    pub limit: Option<i64>,
    /// Wait (bounded) until the read models show this stream position (an
    /// `X-Stream-Position` header value), e.g. a write answered by another instance.
    pub min_position: Option<String>,
}

/// A booking found by an operator, with who and what it concerns.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct FoundBooking {
    /// The booking.
    pub id: Uuid,
    /// Its status.
    pub status: String,
    /// Start (UTC).
    pub start_datetime: chrono::DateTime<chrono::Utc>,
    /// End (UTC).
    pub end_datetime: chrono::DateTime<chrono::Utc>,
    /// What the guest pays (won).
    pub total_amount: i64,
    /// The guest.
    pub guest_id: Uuid,
    /// The guest's e-mail address.
    pub guest_email: Option<String>,
    /// The host.
    pub host_id: Uuid,
    /// The host's e-mail address.
    pub host_email: Option<String>,
    /// The vehicle.
    pub vehicle_id: Uuid,
    /// Its plate.
    pub license_plate: Option<String>,
    /// When it was requested.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Finds bookings for support (admins only): by booking id, by the guest's or host's e-mail
/// address (their bookings as either), or by the vehicle's licence plate; newest first.
#[utoipa::path(
    tag = "operations",
    params(FindBookingsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<FoundBooking>),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 422, description = "Empty or overlong query", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/admin/bookings")]
async fn find_bookings(
    state: web::Data<AppState>,
    user: AuthUser,
    params: ValidQuery<FindBookingsParams>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Admin])?;
    let p = params.0;
    let q = p.q.trim();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "q",
            "length",
            "검색어는 1자 이상 200자 이하여야 합니다.",
            "The query must be 1 to 200 characters.",
        ));
    }
    let limit = page_size(p.limit)?;
    // The bookings and vehicles read tables, once they show what this instance has written.
    let mut response = HttpResponse::Ok();
    await_position(
        &state,
        READ_MODELS,
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let select = "SELECT b.id, b.status, b.start_datetime, b.end_datetime, b.total_amount, \
            b.guest_id, g.email AS guest_email, b.host_id, h.email AS host_email, b.vehicle_id, \
            v.license_plate, b.created_at \
        FROM read.bookings b \
        LEFT JOIN users g ON g.id = b.guest_id \
        LEFT JOIN users h ON h.id = b.host_id \
        LEFT JOIN read.vehicles v ON v.id = b.vehicle_id";
    let found: Vec<FoundBooking> = if let Ok(id) = Uuid::parse_str(q) {
        sqlx::query_as(&format!("{select} WHERE b.id = $1"))
            .bind(id)
            .fetch_all(&state.pool)
            .await?
    } else if q.contains('@') {
        sqlx::query_as(&format!(
            "{select} WHERE b.guest_id IN (SELECT id FROM users WHERE lower(email) = lower($1)) \
                OR b.host_id IN (SELECT id FROM users WHERE lower(email) = lower($1)) \
             ORDER BY b.created_at DESC, b.id DESC LIMIT $2"
        ))
        .bind(q)
        .bind(limit)
        .fetch_all(&state.pool)
        .await?
    } else {
        let plate: String = q.chars().filter(|c| !c.is_whitespace()).collect();
        sqlx::query_as(&format!(
            "{select} WHERE b.vehicle_id IN (SELECT id FROM read.vehicles \
                 WHERE replace(license_plate, ' ', '') = $1) \
             ORDER BY b.created_at DESC, b.id DESC LIMIT $2"
        ))
        .bind(plate)
        .bind(limit)
        .fetch_all(&state.pool)
        .await?
    };
    Ok(response.json(found))
}

//! `/v1/users/me`: the caller's profile, erasure, and corporate host profile.

use super::accounts_dto::{
    CorporateProfileCreate, CorporateProfileResponse, UserResponse, UserUpdate,
};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::state::AppState;
use actix_web::{delete, get, post, put, web, HttpResponse};
use carshare_commands::accounts::{NewCorporateProfile, UserPatch};

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_me)
        .service(update_me)
        .service(erase_me)
        .service(create_profile)
        .service(get_profile);
}

/// The caller's account.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/users/me")]
async fn get_me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let account = state.accounts.user(user.id).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(&account)))
}

/// Changes name, phone or picture (fields present change; `profile_image_url: null` removes
/// it). The e-mail address cannot change.
#[utoipa::path(
    tag = "users",
    request_body = UserUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/users/me")]
async fn update_me(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<UserUpdate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let account = state
        .accounts
        .update(
            user.id,
            UserPatch {
                name: b.name,
                phone: b.phone,
                profile_image_url: b.profile_image_url,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(&account)))
}

/// Erases the caller's account: name, e-mail, phone and picture are anonymised, every session
/// is revoked, and the account can no longer sign in. Bookings and vehicles in the event log
/// keep naming the account by id only. A host must remove their vehicles first.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Vehicles still listed", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[delete("/users/me")]
async fn erase_me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    // The live-vehicle check reads the vehicles table: it must show this instance's writes
    // (a vehicle registered just before).
    crate::routes::await_own_writes(&state, &[carshare_projections::vehicles::NAME]).await?;
    let families = state.accounts.erase(user.id).await?;
    state
        .revocations
        .revoke_user(user.id)
        .await
        .map_err(ApiError::unavailable)?;
    for family in families {
        state
            .revocations
            .revoke_family(family)
            .await
            .map_err(ApiError::unavailable)?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Submits the calling host's corporate profile (one per host) for an admin to verify. The
/// 사업자등록번호 is checked with its check digit and must be unique.
#[utoipa::path(
    tag = "users",
    request_body = CorporateProfileCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CorporateProfileResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not a host", body = ErrorResponse),
        (status = 409, description = "Profile exists, or number taken", body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/users/me/corporate-profile")]
async fn create_profile(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<CorporateProfileCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let profile = state
        .accounts
        .create_profile(
            user.id,
            NewCorporateProfile {
                company_name: b.company_name,
                business_registration_number: b.business_registration_number,
                tax_id: b.tax_id,
                verification_documents: b.verification_documents.unwrap_or_default(),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(CorporateProfileResponse::from(&profile)))
}

/// The calling host's corporate profile and its review state.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = CorporateProfileResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not a host: only hosts have corporate profiles", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/users/me/corporate-profile")]
async fn get_profile(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    if user.role != carshare_domain::Role::Host {
        return Err(ApiError::new(crate::error::ErrorCode::CORP005));
    }
    let profile = state.accounts.profile_of(user.id).await?;
    Ok(HttpResponse::Ok().json(CorporateProfileResponse::from(&profile)))
}

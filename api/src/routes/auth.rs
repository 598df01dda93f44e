//! `/v1/auth`: registration, login, token refresh, logout, the current user (seed: 인증 모듈).

use super::accounts_dto::{
    AuthResponse, LoginRequest, RefreshRequest, RegisterRequest, UserResponse,
};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::ValidJson;
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use carshare_commands::accounts::{AccountError, AccountProblem, NewAccount, Session};
use carshare_domain::Role;

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(me);
}

/// Tokens for a session.
pub(crate) fn auth_response(state: &AppState, session: &Session) -> Result<AuthResponse, ApiError> {
    let (access_token, _) = state
        .tokens
        .issue_in(
            session.user.id,
            session.user.role(),
            Some(session.family_id),
        )
        .map_err(ApiError::internal)?;
    Ok(AuthResponse {
        access_token,
        refresh_token: session.refresh_token.clone(),
        token_type: "Bearer".into(),
        expires_in: state.tokens.ttl().as_secs(),
        user: UserResponse::from(&session.user),
    })
}

/// Creates a guest or host account and signs it in. E-mail addresses are unique whatever
/// their case; the phone number is normalised; admins cannot register themselves.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = AuthResponse),
        (status = 400, body = ErrorResponse),
        (status = 409, description = "E-mail address taken", body = ErrorResponse),
        (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse),
        (status = 422, description = "Invalid fields (weak password, bad phone, admin role…)", body = ErrorResponse),
        (status = 429, description = "Too many attempts from this address", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/auth/register")]
async fn register(
    state: web::Data<AppState>,
    body: ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let role = match b.role.as_str() {
        "guest" => Role::Guest,
        "host" => Role::Host,
        "admin" => Role::Admin,
        _ => return Err(AccountError::invalid("role", AccountProblem::Role).into()),
    };
    let session = state
        .accounts
        .register(NewAccount {
            email: b.email,
            password: b.password,
            name: b.name,
            phone: b.phone,
            role,
        })
        .await?;
    Ok(HttpResponse::Created().json(auth_response(&state, &session)?))
}

/// Signs in with e-mail address and password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, description = "Wrong e-mail address or password", body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 429, description = "Too many attempts from this address", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/auth/login")]
async fn login(
    state: web::Data<AppState>,
    body: ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let session = state.accounts.login(&b.email, b.password).await?;
    Ok(HttpResponse::Ok().json(auth_response(&state, &session)?))
}

/// Exchanges a refresh token for new tokens. The old refresh token stops working; presenting
/// it again revokes the whole session (all its refresh and access tokens).
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = AuthResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/auth/refresh")]
async fn refresh(
    state: web::Data<AppState>,
    body: ValidJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    match state.accounts.refresh(&body.0.refresh_token).await {
        Ok(session) => Ok(HttpResponse::Ok().json(auth_response(&state, &session)?)),
        Err(AccountError::RefreshReused { family_id }) => {
            // The session is revoked in the database; its access tokens die here too.
            state
                .revocations
                .revoke_family(family_id)
                .await
                .map_err(ApiError::unavailable)?;
            Err(AccountError::RefreshReused { family_id }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Signs out: the access token and its whole session (refresh tokens included) are revoked.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/auth/logout")]
async fn logout(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    if let Some(family) = user.claims.fam {
        state.accounts.logout(family).await?;
        state
            .revocations
            .revoke_family(family)
            .await
            .map_err(ApiError::unavailable)?;
    }
    state
        .revocations
        .revoke(&user.claims)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in user.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, description = "Account erased", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/auth/me")]
async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let account = state.accounts.user(user.id).await.map_err(|e| match e {
        AccountError::NotFound => ApiError::new(ErrorCode::ACCOUNT003),
        other => other.into(),
    })?;
    Ok(HttpResponse::Ok().json(UserResponse::from(&account)))
}

//! Bearer-token authentication and role checks.
//!
//! Access tokens are HS256 JWTs signed with `JWT_SECRET`, living at most 15 minutes. Each carries
//! the user id (`sub`), role, expiry and a token id (`jti`). A revoked token (logout) is refused
//! through [`RevocationCheck`], backed by a Redis denylist.

use crate::error::{ApiError, ErrorCode};
use crate::redis_client::{RedisDown, RedisHandle};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use async_trait::async_trait;
use carshare_domain::{Actor, Role};
use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Issuer of every token.
pub const ISSUER: &str = "carshare";
/// Token type of access tokens.
pub const ACCESS: &str = "access";

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Role.
    pub role: Role,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id, for revocation.
    pub jti: Uuid,
    /// Issuer (`carshare`).
    pub iss: String,
    /// Token type (`access`).
    pub typ: String,
    /// The session (refresh-token family) the token was issued in; revoking the session
    /// revokes its access tokens too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<Uuid>,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Malformed, wrongly signed, or not an access token.
    #[error("token invalid")]
    Invalid,
}

impl TokenKeys {
    /// Keys from the shared secret.
    pub fn new(secret: &SecretString, ttl: Duration) -> TokenKeys {
        let bytes = secret.expose_secret().as_bytes();
        TokenKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            ttl,
        }
    }

    /// Issues an access token for `user` outside any session (tests, tools).
    pub fn issue(
        &self,
        user: Uuid,
        role: Role,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.issue_in(user, role, None)
    }

    /// The lifetime of access tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues an access token for `user` in session `family`.
    pub fn issue_in(
        &self,
        user: Uuid,
        role: Role,
        family: Option<Uuid>,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            role,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(900),
            jti: Uuid::new_v4(),
            iss: ISSUER.into(),
            typ: ACCESS.into(),
            fam: family,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies signature, expiry, issuer and type.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation) {
            Ok(data) if data.claims.typ == ACCESS => Ok(data.claims),
            Ok(_) => Err(TokenError::Invalid),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// Decides whether a valid token was revoked.
#[async_trait]
pub trait RevocationCheck: Send + Sync {
    /// Whether the token is revoked. An unreachable store is an error (a 503), never a pass.
    async fn is_revoked(&self, claims: &Claims) -> Result<bool, RedisDown>;

    /// The same check as one Redis command on `handle` answering a count (the token is revoked
    /// when it is above zero), for a caller that sends it in a round trip it makes anyway;
    /// `None` when the check is not that (the caller then leaves it to [`authenticate`]).
    fn as_redis_command(&self, _claims: &Claims) -> Option<(Arc<RedisHandle>, redis::Cmd)> {
        None
    }
}

/// The Redis denylist. A token is refused while any of these keys exists: `revoked:jti:<jti>`
/// (that token: logout), `revoked:family:<fam>` (its session: logout, or a reused refresh
/// token), `revoked:user:<sub>` (every session: the account was erased). Each key lives as long
/// as an access token can, after which the tokens it covers have expired anyway.
pub struct RedisRevocations {
    redis: Arc<RedisHandle>,
    access_ttl: Duration,
}

impl RedisRevocations {
    /// Over the shared handle; keys live `access_ttl`.
    pub fn new(redis: Arc<RedisHandle>, access_ttl: Duration) -> RedisRevocations {
        RedisRevocations { redis, access_ttl }
    }

    async fn set(&self, key: String, ttl_seconds: i64) -> Result<(), RedisDown> {
        let _: () = self
            .redis
            .run(
                redis::cmd("SET")
                    .arg(self.redis.key(&key))
                    .arg(1)
                    .arg("EX")
                    .arg(ttl_seconds.max(1)),
            )
            .await?;
        Ok(())
    }

    /// `EXISTS` over the keys that revoke the token.
    fn exists(&self, claims: &Claims) -> redis::Cmd {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.redis.key(&format!("revoked:jti:{}", claims.jti)))
            .arg(self.redis.key(&format!("revoked:user:{}", claims.sub)));
        if let Some(family) = claims.fam {
            cmd.arg(self.redis.key(&format!("revoked:family:{family}")));
        }
        cmd
    }

    fn ttl_seconds(&self) -> i64 {
        i64::try_from(self.access_ttl.as_secs()).unwrap_or(900) + 60
    }

    /// Revokes one token until its expiry.
    pub async fn revoke(&self, claims: &Claims) -> Result<(), RedisDown> {
        let remaining = claims.exp - Utc::now().timestamp() + 60;
        self.set(format!("revoked:jti:{}", claims.jti), remaining)
            .await
    }

    /// Revokes every access token of a session.
    pub async fn revoke_family(&self, family: Uuid) -> Result<(), RedisDown> {
        self.set(format!("revoked:family:{family}"), self.ttl_seconds())
            .await
    }

    /// Revokes every access token of a user issued so far.
    pub async fn revoke_user(&self, user: Uuid) -> Result<(), RedisDown> {
        self.set(format!("revoked:user:{user}"), self.ttl_seconds())
            .await
    }
}

#[async_trait]
impl RevocationCheck for RedisRevocations {
    async fn is_revoked(&self, claims: &Claims) -> Result<bool, RedisDown> {
        let exists: i64 = self.redis.run(&self.exists(claims)).await?;
        Ok(exists > 0)
    }

    fn as_redis_command(&self, claims: &Claims) -> Option<(Arc<RedisHandle>, redis::Cmd)> {
        Some((self.redis.clone(), self.exists(claims)))
    }
}

/// What the auth extractor needs, in app data.
#[derive(Clone)]
pub struct Authenticator {
    /// Token keys.
    pub keys: TokenKeys,
    /// The revocation hook.
    pub revocations: Arc<dyn RevocationCheck>,
}

impl Authenticator {
    /// Verifies an access token (signature, expiry, issuer, type) and checks it was not
    /// revoked: 401 `AUTH002`/`AUTH003`/`AUTH004`, or 503 when the denylist is unreachable.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.keys.verify(token).map_err(|e| match e {
            TokenError::Expired => ApiError::new(ErrorCode::AUTH003),
            TokenError::Invalid => ApiError::new(ErrorCode::AUTH002),
        })?;
        if self
            .revocations
            .is_revoked(&claims)
            .await
            .map_err(ApiError::unavailable)?
        {
            return Err(ApiError::new(ErrorCode::AUTH004));
        }
        Ok(claims)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: Uuid,
    /// Role.
    pub role: Role,
    /// The verified claims.
    pub claims: Claims,
}

impl AuthUser {
    /// The caller as a command actor.
    pub fn actor(&self) -> Actor {
        Actor::new(self.id, self.role)
    }

    /// Refuses (403 AUTH005) unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::AUTH005))
        }
    }
}

/// The verified claims of a request's bearer token, if it carries a valid one (signature and
/// expiry only: revocation is checked by [`AuthUser`]). Middleware uses it to tell callers apart.
pub fn bearer_claims(req: &actix_web::dev::ServiceRequest) -> Option<Claims> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    req.app_data::<web::Data<Authenticator>>()?
        .keys
        .verify(token.trim())
        .ok()
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get("authorization")
        .ok_or_else(|| ApiError::new(ErrorCode::AUTH001))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::new(ErrorCode::AUTH002))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::new(ErrorCode::AUTH002))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::AUTH002));
    }
    Ok(token.trim().to_string())
}

/// Records the revocation check of a token [`bearer_claims`] verified, made by a caller that
/// asked Redis in a round trip of its own (the rate limiter); [`authenticate`] then takes it
/// as the request's outcome instead of asking again.
pub fn settle_checked(req: &actix_web::dev::ServiceRequest, claims: Claims, revoked: bool) {
    let outcome = if revoked {
        Err((ErrorCode::AUTH004, None))
    } else {
        Ok(claims)
    };
    actix_web::HttpMessage::extensions_mut(req).insert(Checked(outcome));
}

/// The outcome of checking a request's bearer token, settled by [`authenticate`] before the
/// handler's arguments are extracted.
#[derive(Clone)]
struct Checked(Result<Claims, (ErrorCode, Option<String>)>);

/// Middleware: checks the bearer token (signature, expiry and revocation) of every request that
/// carries one, before the handler's arguments are extracted. Without it, a handler's
/// `AuthUser` (waiting on Redis for the revocation check) would race its query or body
/// extractors, and a revoked token with a malformed body could be answered 400 instead of 401.
/// The outcome is only used by handlers that take an [`AuthUser`]; public routes ignore it.
pub async fn authenticate(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let settled = actix_web::HttpMessage::extensions(&req)
        .get::<Checked>()
        .is_some();
    if req.headers().contains_key("authorization") && !settled {
        if let Some(auth) = req.app_data::<web::Data<Authenticator>>().cloned() {
            let outcome = match bearer(req.request()) {
                Ok(token) => auth.authenticate(&token).await,
                Err(e) => Err(e),
            };
            let outcome = outcome.map_err(|e| (e.code, e.cause.map(|c| c.to_string())));
            actix_web::HttpMessage::extensions_mut(&req).insert(Checked(outcome));
        }
    }
    next.call(req).await
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AuthUser, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(Checked(outcome)) = actix_web::HttpMessage::extensions(req).get::<Checked>() {
            let result = match outcome {
                Ok(claims) => Ok(AuthUser {
                    id: claims.sub,
                    role: claims.role,
                    claims: claims.clone(),
                }),
                Err((ErrorCode::SYS002, cause)) => Err(ApiError::unavailable(anyhow::anyhow!(
                    "{}",
                    cause.clone().unwrap_or_default()
                ))),
                Err((code, _)) => Err(ApiError::new(*code)),
            };
            return Box::pin(std::future::ready(result));
        }
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let auth = auth.ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("authenticator not configured"))
            })?;
            let claims = auth.authenticate(&token?).await?;
            Ok(AuthUser {
                id: claims.sub,
                role: claims.role,
                claims,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &SecretString::from("0123456789abcdef0123456789abcdef"),
            Duration::from_secs(900),
        )
    }

    #[test]
    fn issued_tokens_verify() {
        let user = Uuid::new_v4();
        let (token, claims) = keys().issue(user, Role::Host).unwrap();
        assert_eq!(keys().verify(&token).unwrap(), claims);
    }

    #[test]
    fn tokens_signed_with_another_key_are_invalid() {
        let other = TokenKeys::new(
            &SecretString::from("another-secret-another-secret-0000"),
            Duration::from_secs(900),
        );
        let (token, _) = other.issue(Uuid::new_v4(), Role::Guest).unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Invalid));
        assert_eq!(keys().verify("not.a.jwt"), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tokens_are_expired() {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            role: Role::Guest,
            exp: now - 60,
            iat: now - 960,
            jti: Uuid::new_v4(),
            iss: ISSUER.into(),
            typ: ACCESS.into(),
            fam: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys().encoding)
            .unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Expired));
    }
}

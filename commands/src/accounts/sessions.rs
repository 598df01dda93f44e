//! Refresh tokens: opaque random strings, stored only as SHA-256 hashes, rotated on every use.
//! A login starts a family; every refresh replaces the family's current token with a new one.
//! Presenting a token that was already replaced means it leaked (or two clients share it): the
//! whole family is revoked.

use super::error::AccountError;
use super::service::User;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// A signed-in session: the user, a fresh refresh token (shown once) and its family.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: User,
    /// The new refresh token (plaintext; only its hash is stored).
    pub refresh_token: String,
    /// The refresh-token family (one per login).
    pub family_id: Uuid,
}

/// A new random token (256 bits) and its hash.
pub(crate) fn new_token() -> (String, Vec<u8>) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub(crate) fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Stores a new token of `family` for `user`.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    user: Uuid,
    family: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(user)
    .bind(family)
    .bind(token_hash)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a presented token turned out to be.
pub(crate) enum Presented {
    /// Current and unexpired: it has now been marked rotated.
    Rotated { user: Uuid, family: Uuid },
    /// Already rotated before: a reuse.
    Reused { family: Uuid },
    /// Unknown, revoked or expired.
    Invalid,
}

/// Marks the token rotated if it is current; tells what it was otherwise. Concurrent
/// presentations of one token: exactly one rotates it, the others see a reuse.
pub(crate) async fn rotate(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Presented, sqlx::Error> {
    let token_hash = hash(token);
    let rotated: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens SET rotated_at = $2 \
         WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
         RETURNING user_id, family_id",
    )
    .bind(&token_hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((user, family)) = rotated {
        return Ok(Presented::Rotated { user, family });
    }
    let known: Option<(Uuid, bool, bool)> = sqlx::query_as(
        "SELECT family_id, rotated_at IS NOT NULL, revoked_at IS NOT NULL FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(&token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match known {
        Some((family, true, false)) => Presented::Reused { family },
        _ => Presented::Invalid,
    })
}

/// Revokes every token of a family.
pub(crate) async fn revoke_family(
    conn: &mut PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every token of a user; returns the families revoked.
pub(crate) async fn revoke_user(
    conn: &mut PgConnection,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING family_id",
    )
    .bind(user)
    .bind(now)
    .fetch_all(conn)
    .await
}

impl From<Presented> for Result<(Uuid, Uuid), AccountError> {
    fn from(p: Presented) -> Self {
        match p {
            Presented::Rotated { user, family } => Ok((user, family)),
            Presented::Reused { family } => Err(AccountError::RefreshReused { family_id: family }),
            Presented::Invalid => Err(AccountError::RefreshInvalid),
        }
    }
}

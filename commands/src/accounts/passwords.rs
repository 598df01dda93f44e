//! Password hashing with Argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1, as OWASP
//! recommends). Hashing runs on the blocking pool: it is deliberately slow.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::InfraError;

/// Hashes and verifies passwords.
#[derive(Clone, Default)]
pub struct PasswordHasher {
    _private: (),
}

/// A hash that verifies nothing, checked against when an account does not exist so that a
/// wrong e-mail address takes as long as a wrong password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3lzYWx0ZGVjb3k$x3SeHFXq0rNwzrxj4pX+LV9Us1QD+70QGw/xg5xoVLQ";

impl PasswordHasher {
    /// The PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, InfraError> {
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| InfraError::Internal(e.to_string().into()))
        })
        .await
        .map_err(|e| InfraError::Internal(Box::new(e)))?
    }

    /// Whether `password` matches `hash` (a malformed stored hash never matches).
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, InfraError> {
        tokio::task::spawn_blocking(move || {
            let stored = hash.unwrap_or_else(|| DECOY_HASH.to_string());
            match PasswordHash::new(&stored) {
                Ok(parsed) => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => {
                    // Still spend the time of a verification.
                    let _ = PasswordHash::new(DECOY_HASH).map(|decoy| {
                        Argon2::default().verify_password(password.as_bytes(), &decoy)
                    });
                    false
                }
            }
        })
        .await
        .map_err(|e| InfraError::Internal(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let hasher = PasswordHasher::default();
        let a = hasher.hash("correct horse".into()).await.unwrap();
        let b = hasher.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(hasher
            .verify("correct horse".into(), Some(a.clone()))
            .await
            .unwrap());
        assert!(!hasher.verify("wrong horse!".into(), Some(a)).await.unwrap());
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
        assert!(!hasher
            .verify("anything".into(), Some("!".into()))
            .await
            .unwrap());
    }
}

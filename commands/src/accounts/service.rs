//! The account use cases.

use super::error::{text, url, AccountError, AccountProblem, Problems};
use super::passwords::PasswordHasher;
use super::sessions::{self, Presented, Session};
use crate::clock::Clock;
use carshare_domain::account::{Email, MobilePhone, PasswordPolicy};
use carshare_domain::Role;
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

const MAX_NAME_CHARS: usize = 100;

/// An account as the API shows it (never with password material).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Lower-cased e-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Normalised mobile number.
    pub phone: String,
    /// Role (`guest`, `host`, `admin`).
    pub role: String,
    /// Profile picture.
    pub profile_image_url: Option<String>,
    /// Whether the e-mail address was verified.
    pub is_verified: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// The role as a domain value (`guest` for anything unknown, which the schema forbids).
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Guest)
    }
}

const USER_COLUMNS: &str =
    "id, email, name, phone, role, profile_image_url, is_verified, created_at, updated_at";

/// A registration.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// E-mail address.
    pub email: String,
    /// Password in clear (hashed here, never stored or logged).
    pub password: String,
    /// Display name.
    pub name: String,
    /// Mobile number.
    pub phone: String,
    /// Requested role.
    pub role: Role,
}

/// A profile update; `None` leaves a field alone, `Some(None)` clears the picture.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New name.
    pub name: Option<String>,
    /// New mobile number.
    pub phone: Option<String>,
    /// New picture, or cleared.
    pub profile_image_url: Option<Option<String>>,
}

/// Account use cases.
pub struct AccountService {
    pool: PgPool,
    hasher: PasswordHasher,
    clock: Arc<dyn Clock>,
    refresh_ttl: Duration,
}

fn unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint))
}

impl AccountService {
    /// The service; refresh tokens live `refresh_ttl`.
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>, refresh_ttl: Duration) -> AccountService {
        AccountService {
            pool,
            hasher: PasswordHasher::default(),
            clock,
            refresh_ttl,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn validate_new(
        account: &NewAccount,
        allow_admin: bool,
    ) -> Result<(Email, MobilePhone, String), AccountError> {
        let mut problems = Problems::default();
        let email = problems.check("email", Email::parse(&account.email), |_| {
            AccountProblem::Email
        });
        problems.check(
            "password",
            PasswordPolicy::check(&account.password),
            AccountProblem::Password,
        );
        let name = problems.check("name", text(&account.name, MAX_NAME_CHARS), |p| p);
        let phone = problems.check("phone", MobilePhone::parse(&account.phone), |_| {
            AccountProblem::Phone
        });
        if account.role == Role::Admin && !allow_admin {
            problems.push("role", AccountProblem::Role);
        }
        problems.into_result()?;
        match (email, phone, name) {
            (Some(e), Some(p), Some(n)) => Ok((e, p, n)),
            _ => Err(AccountError::Invalid(Vec::new())),
        }
    }

    /// Registers a guest or host and signs them in.
    #[tracing::instrument(name = "accounts.register", skip_all)]
    pub async fn register(&self, account: NewAccount) -> Result<Session, AccountError> {
        let user = self.create(account, false).await?;
        self.start_session(user).await
    }

    /// Creates an admin (from the command line only).
    pub async fn create_admin(&self, account: NewAccount) -> Result<User, AccountError> {
        self.create(
            NewAccount {
                role: Role::Admin,
                ..account
            },
            true,
        )
        .await
    }

    async fn create(&self, account: NewAccount, allow_admin: bool) -> Result<User, AccountError> {
        let (email, phone, name) = Self::validate_new(&account, allow_admin)?;
        let hash = self.hasher.hash(account.password).await?;
        let now = self.clock.now();
        let inserted = sqlx::query_as::<_, User>(&format!(
            "INSERT INTO users (id, email, password_hash, name, phone, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(email.as_str())
        .bind(hash)
        .bind(name)
        .bind(phone.as_str())
        .bind(account.role.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(user) => {
                tracing::info!(user_id = %user.id, email = %email.masked(), phone = %phone.masked(), role = %user.role, "account created");
                Ok(user)
            }
            Err(e) if unique_violation(&e, "users_email_key") => Err(AccountError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn start_session(&self, user: User) -> Result<Session, AccountError> {
        let family_id = Uuid::new_v4();
        let (token, token_hash) = sessions::new_token();
        let mut conn = self.pool.acquire().await?;
        sessions::insert(
            &mut conn,
            user.id,
            family_id,
            &token_hash,
            self.clock.now() + self.refresh_ttl,
        )
        .await?;
        Ok(Session {
            user,
            refresh_token: token,
            family_id,
        })
    }

    /// Signs in with e-mail and password.
    #[tracing::instrument(name = "accounts.login", skip_all)]
    pub async fn login(&self, email: &str, password: String) -> Result<Session, AccountError> {
        let row: Option<(Uuid, String)> = match Email::parse(email) {
            Ok(email) => sqlx::query_as(
                "SELECT id, password_hash FROM users WHERE lower(email) = $1 AND erased_at IS NULL",
            )
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?,
            Err(_) => None,
        };
        // Verify even for unknown accounts, so timing does not reveal which addresses exist.
        let ok = self
            .hasher
            .verify(password, row.as_ref().map(|(_, h)| h.clone()))
            .await?;
        match row {
            Some((id, _)) if ok => {
                let user = self.user(id).await?;
                self.start_session(user).await
            }
            _ => Err(AccountError::WrongCredentials),
        }
    }

    /// Exchanges a refresh token for a new one (same family). A token presented twice revokes
    /// its family.
    #[tracing::instrument(name = "accounts.refresh", skip_all)]
    pub async fn refresh(&self, token: &str) -> Result<Session, AccountError> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let presented = sessions::rotate(&mut tx, token, now).await?;
        if let Presented::Reused { family } = &presented {
            sessions::revoke_family(&mut tx, *family, now).await?;
            tx.commit().await?;
            tracing::warn!(family_id = %family, "refresh token reused: session revoked");
            return Err(AccountError::RefreshReused { family_id: *family });
        }
        let (user_id, family_id) = Result::<(Uuid, Uuid), AccountError>::from(presented)?;
        let user: Option<User> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND erased_at IS NULL"
        ))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let user = user.ok_or(AccountError::RefreshInvalid)?;
        let (new_token, new_hash) = sessions::new_token();
        sessions::insert(
            &mut tx,
            user.id,
            family_id,
            &new_hash,
            now + self.refresh_ttl,
        )
        .await?;
        tx.commit().await?;
        Ok(Session {
            user,
            refresh_token: new_token,
            family_id,
        })
    }

    /// Ends a session: revokes its refresh-token family.
    pub async fn logout(&self, family_id: Uuid) -> Result<(), AccountError> {
        let mut conn = self.pool.acquire().await?;
        sessions::revoke_family(&mut conn, family_id, self.clock.now()).await?;
        Ok(())
    }

    /// A live account.
    pub async fn user(&self, id: Uuid) -> Result<User, AccountError> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND erased_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(AccountError::NotFound)
    }

    /// Changes name, phone or picture.
    pub async fn update(&self, id: Uuid, patch: UserPatch) -> Result<User, AccountError> {
        if patch.name.is_none() && patch.phone.is_none() && patch.profile_image_url.is_none() {
            return Err(AccountError::invalid("body", AccountProblem::EmptyUpdate));
        }
        let mut problems = Problems::default();
        let name = match &patch.name {
            Some(n) => problems.check("name", text(n, MAX_NAME_CHARS), |p| p),
            None => None,
        };
        let phone = match &patch.phone {
            Some(p) => problems
                .check("phone", MobilePhone::parse(p), |_| AccountProblem::Phone)
                .map(|p| p.as_str().to_string()),
            None => None,
        };
        let picture = match &patch.profile_image_url {
            Some(Some(u)) => problems.check("profile_image_url", url(u), |p| p).map(Some),
            Some(None) => Some(None),
            None => None,
        };
        problems.into_result()?;
        sqlx::query_as(&format!(
            "UPDATE users SET name = coalesce($2, name), phone = coalesce($3, phone), \
               profile_image_url = CASE WHEN $4 THEN $5 ELSE profile_image_url END, updated_at = $6 \
             WHERE id = $1 AND erased_at IS NULL RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .bind(name)
        .bind(phone)
        .bind(picture.is_some())
        .bind(picture.flatten())
        .bind(self.clock.now())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(AccountError::NotFound)
    }

    /// Erases an account: personal data is anonymised in place, every session revoked. The
    /// event log names the user by id only and stays valid. Returns the revoked families.
    /// A host must remove their vehicles first.
    #[tracing::instrument(name = "accounts.erase", skip_all, fields(user_id = %id))]
    pub async fn erase(&self, id: Uuid) -> Result<Vec<Uuid>, AccountError> {
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM read.vehicles WHERE owner_id = $1 AND removed_at IS NULL",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        if live > 0 {
            return Err(AccountError::HasLiveVehicles(live));
        }
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let erased = sqlx::query(
            "UPDATE users SET email = 'erased+' || id || '@erased.invalid', password_hash = '!', \
               name = '탈퇴한 사용자', phone = '', profile_image_url = NULL, is_verified = false, \
               erased_at = $2, updated_at = $2 \
             WHERE id = $1 AND erased_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if erased == 0 {
            return Err(AccountError::NotFound);
        }
        sqlx::query(
            "UPDATE corporate_profiles SET company_name = '(erased)', tax_id = NULL, \
               verification_documents = '[]', updated_at = $2 WHERE user_id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let families = sessions::revoke_user(&mut tx, id, now).await?;
        tx.commit().await?;
        tracing::info!("account erased");
        Ok(families)
    }
}

//! Corporate host profiles (법인 프로필): company name and 사업자등록번호, verified by admins.

use super::error::{text, url, AccountError, AccountProblem, Problems};
use super::service::AccountService;
use carshare_domain::account::BusinessRegistrationNumber;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

const MAX_DOCUMENTS: usize = 10;

/// Review state of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileStatus {
    /// Waiting for an admin.
    Pending,
    /// Verified by an admin.
    Verified,
    /// Rejected by an admin, with a reason.
    Rejected,
}

impl ProfileStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileStatus::Pending => "pending",
            ProfileStatus::Verified => "verified",
            ProfileStatus::Rejected => "rejected",
        }
    }
}

/// A corporate profile.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CorporateProfile {
    /// Id.
    pub id: Uuid,
    /// The host.
    pub user_id: Uuid,
    /// Registered company name.
    pub company_name: String,
    /// `123-45-67890`.
    pub business_registration_number: String,
    /// Tax identifier, if given.
    pub tax_id: Option<String>,
    /// `pending`, `verified` or `rejected`.
    pub status: String,
    /// Document references (URLs).
    pub verification_documents: Json<Vec<String>>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// The admin who reviewed it.
    pub reviewed_by: Option<Uuid>,
    /// When it was reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const PROFILE_COLUMNS: &str =
    "id, user_id, company_name, business_registration_number, tax_id, status, \
    verification_documents, rejection_reason, reviewed_by, reviewed_at, created_at, updated_at";

/// A profile submission.
#[derive(Debug, Clone)]
pub struct NewCorporateProfile {
    /// Company name.
    pub company_name: String,
    /// 사업자등록번호, with or without hyphens.
    pub business_registration_number: String,
    /// Tax identifier.
    pub tax_id: Option<String>,
    /// Document URLs.
    pub verification_documents: Vec<String>,
}

impl AccountService {
    /// Submits the calling host's corporate profile (one per host), pending review.
    pub async fn create_profile(
        &self,
        user_id: Uuid,
        new: NewCorporateProfile,
    ) -> Result<CorporateProfile, AccountError> {
        let user = self.user(user_id).await?;
        if user.role != "host" {
            return Err(AccountError::NotHost);
        }
        let mut problems = Problems::default();
        let company = problems.check("company_name", text(&new.company_name, 200), |p| p);
        let brn = problems.check(
            "business_registration_number",
            BusinessRegistrationNumber::parse(&new.business_registration_number),
            AccountProblem::Brn,
        );
        let tax_id = match new
            .tax_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            Some(t) => problems.check("tax_id", text(t, 50), |p| p),
            None => None,
        };
        if new.verification_documents.len() > MAX_DOCUMENTS {
            problems.push(
                "verification_documents",
                AccountProblem::TooMany { max: MAX_DOCUMENTS },
            );
        }
        let mut documents = Vec::new();
        for (i, d) in new.verification_documents.iter().enumerate() {
            if let Some(u) = problems.check(&format!("verification_documents[{i}]"), url(d), |p| p)
            {
                documents.push(u);
            }
        }
        problems.into_result()?;
        let (Some(company), Some(brn)) = (company, brn) else {
            return Err(AccountError::Invalid(Vec::new()));
        };
        let inserted = sqlx::query_as::<_, CorporateProfile>(&format!(
            "INSERT INTO corporate_profiles (id, user_id, company_name, business_registration_number, tax_id, verification_documents) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {PROFILE_COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(user_id)
        .bind(company)
        .bind(brn.as_str())
        .bind(tax_id)
        .bind(Json(documents))
        .fetch_one(self.pool())
        .await;
        match inserted {
            Ok(profile) => Ok(profile),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                if db.constraint() == Some("corporate_profiles_user_id_key") {
                    Err(AccountError::ProfileExists)
                } else {
                    Err(AccountError::BrnTaken)
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user's corporate profile.
    pub async fn profile_of(&self, user_id: Uuid) -> Result<CorporateProfile, AccountError> {
        sqlx::query_as(&format!(
            "SELECT {PROFILE_COLUMNS} FROM corporate_profiles WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(AccountError::ProfileNotFound)
    }

    /// Profiles for admins, oldest first, optionally of one status, after `after` (created_at, id).
    pub async fn list_profiles(
        &self,
        status: Option<ProfileStatus>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<CorporateProfile>, AccountError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PROFILE_COLUMNS} FROM corporate_profiles \
             WHERE ($1::text IS NULL OR status = $1) \
               AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(status.map(ProfileStatus::as_str))
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Verifies (or rejects, with a reason) a profile.
    pub async fn review_profile(
        &self,
        admin: Uuid,
        profile_id: Uuid,
        verified: bool,
        reason: Option<String>,
    ) -> Result<CorporateProfile, AccountError> {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if !verified && reason.is_none() {
            return Err(AccountError::invalid(
                "reason",
                AccountProblem::ReasonRequired,
            ));
        }
        if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
            return Err(AccountError::invalid(
                "reason",
                AccountProblem::Text { max: 500 },
            ));
        }
        let status = if verified {
            ProfileStatus::Verified
        } else {
            ProfileStatus::Rejected
        };
        sqlx::query_as(&format!(
            "UPDATE corporate_profiles SET status = $2, rejection_reason = $3, reviewed_by = $4, \
               reviewed_at = now(), updated_at = now() WHERE id = $1 RETURNING {PROFILE_COLUMNS}"
        ))
        .bind(profile_id)
        .bind(status.as_str())
        .bind(if verified { None } else { reason })
        .bind(admin)
        .fetch_optional(self.pool())
        .await?
        .ok_or(AccountError::ProfileNotFound)
    }
}

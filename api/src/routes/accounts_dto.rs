//! Bodies of the account routes (the seed's `AuthResponse` and `User` shapes).

use carshare_commands::accounts::{CorporateProfile, User};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A user (seed: `User`). Never carries password material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    /// Id.
    pub id: Uuid,
    /// E-mail address (lower-cased).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Mobile number, normalised (`010-1234-5678`).
    pub phone: String,
    /// `guest`, `host` or `admin`.
    #[schema(example = "guest")]
    pub role: String,
    /// Profile picture URL.
    pub profile_image_url: Option<String>,
    /// Whether the e-mail address was verified.
    pub is_verified: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        UserResponse {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            phone: u.phone.clone(),
            role: u.role.clone(),
            profile_image_url: u.profile_image_url.clone(),
            is_verified: u.is_verified,
            created_at: u.created_at,
        }
    }
}

/// Tokens and the signed-in user (seed: `AuthResponse`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthResponse {
    /// Bearer token for `Authorization`, valid `expires_in` seconds (at most 15 minutes).
    pub access_token: String,
    /// Opaque token for `POST /v1/auth/refresh`; single use, rotated on every refresh.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The user.
    pub user: UserResponse,
}

/// Roles open to self-registration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SelfServiceRole {
    /// Books cars.
    Guest,
    /// Lists cars.
    Host,
}

/// A registration (seed: `/auth/register`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail address (unique whatever its case).
    #[schema(example = "kim.minsu@example.co.kr")]
    pub email: String,
    /// At least 8 characters.
    #[schema(min_length = 8, example = "correct horse battery")]
    pub password: String,
    /// Display name.
    #[schema(example = "김민수")]
    pub name: String,
    /// Korean mobile number in any usual form.
    #[schema(example = "010-1234-5678")]
    pub phone: String,
    /// `guest` or `host` (admins are created by operators).
    #[schema(value_type = SelfServiceRole)]
    pub role: String,
}

/// A login (seed: `/auth/login`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A refresh.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last `AuthResponse`.
    pub refresh_token: String,
}

/// A profile update: only the fields present change; `profile_image_url: null` removes it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New mobile number.
    pub phone: Option<String>,
    /// New picture URL, or `null` to remove it.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub profile_image_url: Option<Option<String>>,
}

/// A corporate profile submission.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorporateProfileCreate {
    /// Registered company name.
    #[schema(example = "주식회사 카셰어")]
    pub company_name: String,
    /// 사업자등록번호, with or without hyphens (checked with its check digit).
    #[schema(example = "124-81-00998")]
    pub business_registration_number: String,
    /// Tax identifier.
    pub tax_id: Option<String>,
    /// URLs of supporting documents (at most 10).
    pub verification_documents: Option<Vec<String>>,
}

/// A corporate profile (seed: `CorporateProfile`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CorporateProfileResponse {
    /// Id.
    pub id: Uuid,
    /// The host.
    pub user_id: Uuid,
    /// Company name.
    pub company_name: String,
    /// `123-45-67890`.
    pub business_registration_number: String,
    /// Tax identifier.
    pub tax_id: Option<String>,
    /// Whether an admin verified it.
    pub is_verified: bool,
    /// `pending`, `verified` or `rejected`.
    pub status: String,
    /// Supporting documents.
    pub verification_documents: Vec<String>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// When it was reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
}

impl From<&CorporateProfile> for CorporateProfileResponse {
    fn from(p: &CorporateProfile) -> Self {
        CorporateProfileResponse {
            id: p.id,
            user_id: p.user_id,
            company_name: p.company_name.clone(),
            business_registration_number: p.business_registration_number.clone(),
            tax_id: p.tax_id.clone(),
            is_verified: p.status == "verified",
            status: p.status.clone(),
            verification_documents: p.verification_documents.0.clone(),
            rejection_reason: p.rejection_reason.clone(),
            reviewed_at: p.reviewed_at,
            created_at: p.created_at,
        }
    }
}

/// An admin's decision on a corporate profile.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// `true` (the default) verifies; `false` rejects and needs a `reason`.
    pub verified: Option<bool>,
    /// Why it was rejected (shown to the host).
    pub reason: Option<String>,
}

/// Review queue filter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileStatusFilter {
    /// Waiting for review.
    Pending,
    /// Verified.
    Verified,
    /// Rejected.
    Rejected,
}

/// Parameters of the admin list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileListParams {
    /// Only this status (e.g. `pending`).
    pub status: Option<ProfileStatusFilter>,
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

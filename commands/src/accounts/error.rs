//! Why an account operation was refused.

use crate::error::InfraError;
use carshare_domain::account::{InvalidBrn, WeakPassword};
use uuid::Uuid;

/// A field problem of an account request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountProblem {
    /// Not an e-mail address.
    Email,
    /// The password is weak.
    Password(WeakPassword),
    /// Blank or too long (max characters).
    Text {
        /// Maximum characters.
        max: usize,
    },
    /// Not a Korean mobile number.
    Phone,
    /// Only guest or host may be chosen at registration.
    Role,
    /// Not an http(s) URL.
    Url,
    /// The business registration number is malformed or fails its checksum.
    Brn(InvalidBrn),
    /// Too many items.
    TooMany {
        /// Maximum items.
        max: usize,
    },
    /// A rejection needs a reason.
    ReasonRequired,
    /// The patch names no field.
    EmptyUpdate,
}

/// A refused account operation.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Fields are invalid.
    #[error("invalid fields: {0:?}")]
    Invalid(Vec<(String, AccountProblem)>),
    /// Another account has this e-mail address.
    #[error("e-mail address already registered")]
    EmailTaken,
    /// Unknown e-mail address or wrong password (never said which).
    #[error("wrong e-mail address or password")]
    WrongCredentials,
    /// The refresh token is unknown, revoked, or expired.
    #[error("refresh token not valid")]
    RefreshInvalid,
    /// A refresh token was used twice: its family (the session) was revoked.
    #[error("refresh token reused; session {family_id} revoked")]
    RefreshReused {
        /// The revoked family.
        family_id: Uuid,
    },
    /// The account does not exist or was erased.
    #[error("account not found")]
    NotFound,
    /// A host cannot be erased while vehicles are listed.
    #[error("the account still lists {0} vehicles")]
    HasLiveVehicles(i64),
    /// Only hosts have corporate profiles.
    #[error("only hosts have corporate profiles")]
    NotHost,
    /// The user already has a corporate profile.
    #[error("corporate profile already exists")]
    ProfileExists,
    /// Another profile has this business registration number.
    #[error("business registration number already registered")]
    BrnTaken,
    /// No such corporate profile.
    #[error("corporate profile not found")]
    ProfileNotFound,
    /// Infrastructure.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<sqlx::Error> for AccountError {
    fn from(err: sqlx::Error) -> Self {
        AccountError::Infra(err.into())
    }
}

impl AccountError {
    /// One invalid field.
    pub fn invalid(field: &str, problem: AccountProblem) -> AccountError {
        AccountError::Invalid(vec![(field.to_string(), problem)])
    }
}

/// Collects field problems.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<(String, AccountProblem)>);

impl Problems {
    pub(crate) fn check<T, E>(
        &mut self,
        field: &str,
        result: Result<T, E>,
        problem: impl FnOnce(E) -> AccountProblem,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push((field.to_string(), problem(e)));
                None
            }
        }
    }

    pub(crate) fn push(&mut self, field: &str, problem: AccountProblem) {
        self.0.push((field.to_string(), problem));
    }

    pub(crate) fn into_result(self) -> Result<(), AccountError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AccountError::Invalid(self.0))
        }
    }
}

/// A trimmed, non-blank text of at most `max` characters.
pub(crate) fn text(raw: &str, max: usize) -> Result<String, AccountProblem> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max {
        Err(AccountProblem::Text { max })
    } else {
        Ok(t.to_string())
    }
}

/// An http(s) URL without whitespace, at most 1000 characters.
pub(crate) fn url(raw: &str) -> Result<String, AccountProblem> {
    let t = raw.trim();
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or(AccountProblem::Url)?;
    if rest.is_empty() || t.len() > 1_000 || t.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AccountProblem::Url);
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_collected_field_by_field() {
        let mut problems = Problems::default();
        assert_eq!(
            problems.check("name", text("  김민수 ", 50), |p| p),
            Some("김민수".to_string())
        );
        assert_eq!(problems.check("homepage", url("ftp://x"), |p| p), None);
        problems.push("reason", AccountProblem::ReasonRequired);
        match problems.into_result() {
            Err(AccountError::Invalid(fields)) => assert_eq!(
                fields,
                vec![
                    ("homepage".to_string(), AccountProblem::Url),
                    ("reason".to_string(), AccountProblem::ReasonRequired),
                ]
            ),
            other => panic!("expected invalid fields, got {other:?}"),
        }
        assert!(Problems::default().into_result().is_ok());
        assert!(matches!(
            AccountError::invalid("phone", AccountProblem::Phone),
            AccountError::Invalid(f) if f == vec![("phone".to_string(), AccountProblem::Phone)]
        ));
    }

    #[test]
    fn texts_are_trimmed_non_blank_and_bounded() {
        assert_eq!(text("  ", 10), Err(AccountProblem::Text { max: 10 }));
        assert_eq!(
            text(&"가".repeat(11), 10),
            Err(AccountProblem::Text { max: 10 })
        );
        assert_eq!(text(&"가".repeat(10), 10), Ok("가".repeat(10)));
    }

    #[test]
    fn urls_are_http_or_https_without_spaces() {
        assert_eq!(
            url(" https://example.co.kr/about "),
            Ok("https://example.co.kr/about".to_string())
        );
        assert_eq!(url("http://a"), Ok("http://a".to_string()));
        for bad in [
            "example.com",
            "https://",
            "https://exa mple.com",
            "javascript:alert(1)",
        ] {
            assert_eq!(url(bad), Err(AccountProblem::Url), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(1_000));
        assert_eq!(url(&long), Err(AccountProblem::Url));
    }

    #[test]
    fn a_database_failure_is_an_infrastructure_error() {
        assert!(matches!(
            AccountError::from(sqlx::Error::PoolClosed),
            AccountError::Infra(InfraError::Unavailable(_))
        ));
    }
}

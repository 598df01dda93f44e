//! Failures that are not the caller's fault.

/// A boxed error with its cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Infrastructure failures, kept apart from domain refusals.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Concurrent writers kept changing the aggregate; retries were exhausted.
    #[error("the aggregate kept changing under concurrent writers")]
    Conflict,
    /// A dependency (Postgres, Redis, an external API) is unreachable or overloaded.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else: a bug or a corrupt record.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl From<sqlx::Error> for InfraError {
    fn from(err: sqlx::Error) -> Self {
        if carshare_event_store::is_unavailable(&err) {
            InfraError::Unavailable(Box::new(err))
        } else {
            InfraError::Internal(Box::new(err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_databases_are_unavailable_and_other_failures_internal() {
        assert!(matches!(
            InfraError::from(sqlx::Error::PoolTimedOut),
            InfraError::Unavailable(_)
        ));
        assert!(matches!(
            InfraError::from(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            ))),
            InfraError::Unavailable(_)
        ));
        let internal = InfraError::from(sqlx::Error::RowNotFound);
        assert!(matches!(internal, InfraError::Internal(_)));
        assert!(internal.to_string().starts_with("internal error: "));
    }
}

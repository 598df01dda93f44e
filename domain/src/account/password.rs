//! What a password must be.

/// A refused password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Shorter than the minimum.
    #[error("at least {0} characters")]
    TooShort(usize),
    /// Longer than the maximum (hashing cost).
    #[error("at most {0} characters")]
    TooLong(usize),
    /// Only one repeated character, or only spaces.
    #[error("too simple")]
    TooSimple,
}

/// Password rules: 8 to 128 characters, not one repeated character.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy;

impl PasswordPolicy {
    /// Fewest characters.
    pub const MIN: usize = 8;
    /// Most characters.
    pub const MAX: usize = 128;

    /// Checks a password.
    pub fn check(password: &str) -> Result<(), WeakPassword> {
        let count = password.chars().count();
        if count < Self::MIN {
            return Err(WeakPassword::TooShort(Self::MIN));
        }
        if count > Self::MAX {
            return Err(WeakPassword::TooLong(Self::MAX));
        }
        let mut chars = password.chars();
        let first = chars.next();
        if password.trim().is_empty() || chars.all(|c| Some(c) == first) {
            return Err(WeakPassword::TooSimple);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_eight_varied_characters() {
        assert!(PasswordPolicy::check("correct horse").is_ok());
        assert!(PasswordPolicy::check("비밀번호는안전해요").is_ok());
        assert_eq!(
            PasswordPolicy::check("short"),
            Err(WeakPassword::TooShort(8))
        );
        assert_eq!(
            PasswordPolicy::check("aaaaaaaaaa"),
            Err(WeakPassword::TooSimple)
        );
        assert_eq!(
            PasswordPolicy::check("          "),
            Err(WeakPassword::TooSimple)
        );
        assert_eq!(
            PasswordPolicy::check(&"ab".repeat(65)),
            Err(WeakPassword::TooLong(128))
        );
    }
}

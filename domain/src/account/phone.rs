//! Korean mobile phone numbers.

use std::fmt;

/// A Korean mobile number in its usual written form: `010-1234-5678` (or `011-123-4567` for the
/// old 01X prefixes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MobilePhone(String);

/// A refused phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Korean mobile number (e.g. 010-1234-5678)")]
pub struct InvalidPhone(pub String);

impl MobilePhone {
    /// Accepts `01012345678`, `010-1234-5678`, `010 1234 5678`, `+82 10-1234-5678`, `+821012345678`.
    pub fn parse(input: &str) -> Result<MobilePhone, InvalidPhone> {
        let err = || InvalidPhone(input.to_string());
        let trimmed = input.trim();
        let (international, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '.' | '(' | ')'))
        {
            return Err(err());
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        let national = if international {
            let local = digits.strip_prefix("82").ok_or_else(err)?;
            format!("0{}", local.strip_prefix('0').unwrap_or(local))
        } else {
            digits
        };
        let prefix = national.get(..3).ok_or_else(err)?;
        let subscriber = national.get(3..).ok_or_else(err)?;
        let valid = match prefix {
            "010" => subscriber.len() == 8,
            "011" | "016" | "017" | "018" | "019" => matches!(subscriber.len(), 7 | 8),
            _ => false,
        };
        if !valid {
            return Err(err());
        }
        let split = subscriber.len() - 4;
        Ok(MobilePhone(format!(
            "{prefix}-{}-{}",
            &subscriber[..split],
            &subscriber[split..]
        )))
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with its middle hidden, for logs: `010-****-5678`.
    pub fn masked(&self) -> String {
        let parts: Vec<&str> = self.0.split('-').collect();
        match parts.as_slice() {
            [a, _, c] => format!("{a}-****-{c}"),
            _ => "***".to_string(),
        }
    }
}

impl fmt::Display for MobilePhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        for input in [
            "01012345678",
            "010-1234-5678",
            "010 1234 5678",
            "+82 10-1234-5678",
            "+821012345678",
            "+82 010 1234 5678",
        ] {
            assert_eq!(
                MobilePhone::parse(input).unwrap().as_str(),
                "010-1234-5678",
                "{input}"
            );
        }
        assert_eq!(
            MobilePhone::parse("011-123-4567").unwrap().as_str(),
            "011-123-4567"
        );
    }

    #[test]
    fn other_numbers_are_refused() {
        for bad in [
            "",
            "02-123-4567",
            "010-123-456",
            "0101234567890",
            "+1 415 555 1234",
            "010-abcd-5678",
            "010_1234_5678",
        ] {
            assert!(MobilePhone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_hides_the_middle() {
        assert_eq!(
            MobilePhone::parse("01012345678").unwrap().masked(),
            "010-****-5678"
        );
    }

    #[test]
    fn a_number_displays_normalised() {
        let phone = MobilePhone::parse("01012345678").unwrap();
        assert_eq!(phone.to_string(), "010-1234-5678");
        assert_eq!(phone.masked(), "010-****-5678");
    }
}

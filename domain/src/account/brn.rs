//! 사업자등록번호: Korean business registration numbers, with their check digit.

use std::fmt;

/// A valid business registration number, written `123-45-67890`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BusinessRegistrationNumber(String);

/// A refused number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBrn {
    /// Not ten digits (hyphens allowed).
    #[error("a business registration number has ten digits (123-45-67890)")]
    Format,
    /// The check digit does not match.
    #[error("the check digit does not match")]
    Checksum,
}

const WEIGHTS: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];

impl BusinessRegistrationNumber {
    /// Parses `1234567890` or `123-45-67890` and verifies the check digit: the first nine digits
    /// weighted 1,3,7,1,3,7,1,3,5, plus ⌊9th digit × 5 / 10⌋; check digit = (10 − sum mod 10) mod 10.
    pub fn parse(input: &str) -> Result<BusinessRegistrationNumber, InvalidBrn> {
        let trimmed = input.trim();
        if !trimmed.chars().all(|c| c.is_ascii_digit() || c == '-') {
            return Err(InvalidBrn::Format);
        }
        let digits: Vec<u32> = trimmed.chars().filter_map(|c| c.to_digit(10)).collect();
        if digits.len() != 10 {
            return Err(InvalidBrn::Format);
        }
        let mut sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        sum += (digits[8] * 5) / 10;
        let check = (10 - sum % 10) % 10;
        if check != digits[9] {
            return Err(InvalidBrn::Checksum);
        }
        let s: String = digits
            .iter()
            .filter_map(|d| char::from_digit(*d, 10))
            .collect();
        Ok(BusinessRegistrationNumber(format!(
            "{}-{}-{}",
            &s[..3],
            &s[3..5],
            &s[5..]
        )))
    }

    /// The number as `123-45-67890`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BusinessRegistrationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_pass_and_are_formatted() {
        // 124-81-00998 is a well-known valid number; 220-81-62517 too.
        assert_eq!(
            BusinessRegistrationNumber::parse("1248100998")
                .unwrap()
                .as_str(),
            "124-81-00998"
        );
        assert!(BusinessRegistrationNumber::parse("220-81-62517").is_ok());
    }

    #[test]
    fn a_wrong_check_digit_is_refused() {
        assert_eq!(
            BusinessRegistrationNumber::parse("124-81-00999"),
            Err(InvalidBrn::Checksum)
        );
        assert_eq!(
            BusinessRegistrationNumber::parse("124-81-0099"),
            Err(InvalidBrn::Format)
        );
        assert_eq!(
            BusinessRegistrationNumber::parse("124-81-0099X"),
            Err(InvalidBrn::Format)
        );
    }

    #[test]
    fn the_checksum_matches_its_definition_for_every_check_digit() {
        // Every nine-digit prefix has exactly one valid tenth digit.
        for prefix in ["123456789", "000000000", "999999999", "105870123"] {
            let valid: Vec<u32> = (0..10)
                .filter(|d| BusinessRegistrationNumber::parse(&format!("{prefix}{d}")).is_ok())
                .collect();
            assert_eq!(valid.len(), 1, "{prefix}");
        }
    }

    #[test]
    fn a_number_displays_with_dashes() {
        let brn = BusinessRegistrationNumber::parse("2208162517").unwrap();
        assert_eq!(brn.to_string(), "220-81-62517");
    }
}

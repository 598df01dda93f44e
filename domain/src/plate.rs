//! Korean vehicle registration plates (자동차 등록번호판).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Regional prefixes of the older plate format (e.g. `서울12가3456`).
const REGIONS: [&str; 17] = [
    "서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기", "강원", "충북", "충남",
    "전북", "전남", "경북", "경남", "제주",
];

/// The syllables used for the use-class character of private, rental and commercial cars.
const USE_CLASS: &str =
    "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주아바사자배하허호";

/// A validated, normalised plate: spaces and hyphens removed, e.g. `12가3456`, `123가4567`,
/// `서울12가3456`.
///
/// Only [`LicensePlate::parse`] validates; deserialising (from recorded events) does not, so a
/// stricter parser in future never makes history unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicensePlate(String);

/// Why a plate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Korean licence plate (e.g. 12가3456, 123가4567, 서울12가3456)")]
pub struct InvalidPlate(pub String);

impl LicensePlate {
    /// Parses and normalises a plate.
    pub fn parse(input: &str) -> Result<LicensePlate, InvalidPlate> {
        let normalised: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let rest = REGIONS
            .iter()
            .find_map(|region| normalised.strip_prefix(region).map(|r| (true, r)))
            .unwrap_or((false, normalised.as_str()));
        let (regional, body) = rest;
        let chars: Vec<char> = body.chars().collect();
        let prefix_digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
        let prefix_ok = if regional {
            prefix_digits == 2
        } else {
            prefix_digits == 2 || prefix_digits == 3
        };
        let valid = prefix_ok
            && chars.len() == prefix_digits + 5
            && chars
                .get(prefix_digits)
                .is_some_and(|c| USE_CLASS.contains(*c))
            && chars[prefix_digits + 1..]
                .iter()
                .all(|c| c.is_ascii_digit());
        if valid {
            Ok(LicensePlate(normalised))
        } else {
            Err(InvalidPlate(input.to_string()))
        }
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LicensePlate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_current_and_regional_formats() {
        for plate in [
            "12가3456",
            "123가4567",
            "서울12가3456",
            "부산 34 나 5678",
            "99허1234",
            "12-가-3456",
        ] {
            assert!(LicensePlate::parse(plate).is_ok(), "{plate}");
        }
        assert_eq!(
            LicensePlate::parse("부산 34 나 5678").unwrap().as_str(),
            "부산34나5678"
        );
    }

    #[test]
    fn refuses_malformed_plates() {
        for plate in [
            "",
            "1가3456",
            "1234가5678",
            "12가345",
            "12가34567",
            "12A3456",
            "12가3456a",
            "서울123가4567",
            "뉴욕12가3456",
            "12힣3456",
            "12가 34 56 7",
        ] {
            assert!(LicensePlate::parse(plate).is_err(), "{plate}");
        }
    }

    #[test]
    fn a_plate_displays_normalised() {
        let plate = LicensePlate::parse("12가 3456").unwrap();
        assert_eq!(plate.to_string(), "12가3456");
        assert_eq!(plate.to_string(), plate.as_str());
    }
}

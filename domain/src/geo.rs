//! Points on the map, limited to where the service operates.

use serde::{Deserialize, Serialize};

/// Southern-most latitude served (Marado, south of Jeju).
pub const KOREA_MIN_LAT: f64 = 33.0;
/// Northern-most latitude served (the northern border of Gangwon and Gyeonggi).
pub const KOREA_MAX_LAT: f64 = 38.7;
/// Western-most longitude served (Baengnyeong island).
pub const KOREA_MIN_LNG: f64 = 124.5;
/// Eastern-most longitude served (Dokdo).
pub const KOREA_MAX_LNG: f64 = 132.0;

const EARTH_RADIUS_KM: f64 = 6_371.0;

/// A WGS84 point inside South Korea.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lng: f64,
}

/// A coordinate outside the served area.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// Latitude outside the bounds.
    #[error("latitude {0} is outside South Korea ({KOREA_MIN_LAT}..={KOREA_MAX_LAT})")]
    Latitude(f64),
    /// Longitude outside the bounds.
    #[error("longitude {0} is outside South Korea ({KOREA_MIN_LNG}..={KOREA_MAX_LNG})")]
    Longitude(f64),
}

impl GeoPoint {
    /// A point, if it lies inside South Korea's bounding box.
    pub fn in_korea(lat: f64, lng: f64) -> Result<GeoPoint, GeoError> {
        if !lat.is_finite() || !(KOREA_MIN_LAT..=KOREA_MAX_LAT).contains(&lat) {
            return Err(GeoError::Latitude(lat));
        }
        if !lng.is_finite() || !(KOREA_MIN_LNG..=KOREA_MAX_LNG).contains(&lng) {
            return Err(GeoError::Longitude(lng));
        }
        Ok(GeoPoint { lat, lng })
    }

    /// Great-circle distance in kilometres (haversine).
    pub fn distance_km(&self, other: &GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlng = (other.lng - self.lng).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seoul_and_busan_are_inside_and_tokyo_is_not() {
        assert!(GeoPoint::in_korea(37.5665, 126.9780).is_ok());
        assert!(GeoPoint::in_korea(35.1796, 129.0756).is_ok());
        assert!(GeoPoint::in_korea(33.2, 126.5).is_ok());
        assert_eq!(
            GeoPoint::in_korea(35.6762, 139.6503),
            Err(GeoError::Longitude(139.6503))
        );
        assert!(GeoPoint::in_korea(f64::NAN, 127.0).is_err());
    }

    #[test]
    fn seoul_to_busan_is_about_325_km() {
        let seoul = GeoPoint {
            lat: 37.5665,
            lng: 126.9780,
        };
        let busan = GeoPoint {
            lat: 35.1796,
            lng: 129.0756,
        };
        let d = seoul.distance_km(&busan);
        assert!((320.0..330.0).contains(&d), "{d}");
    }
}

//! The geocoding port: an address in, coordinates out.

use async_trait::async_trait;
use carshare_domain::GeoPoint;

/// Why an address could not be geocoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeocodeError {
    /// The service is down, slow, refusing our key, or its circuit is open.
    #[error("geocoding service unavailable: {0}")]
    Unavailable(String),
}

/// Turns an address into coordinates.
#[async_trait]
pub trait Geocoder: Send + Sync {
    /// The best match for `address`, or `None` when nothing matches.
    async fn geocode(&self, address: &str) -> Result<Option<GeoPoint>, GeocodeError>;
}

//! Request and response bodies of the vehicle routes (the seed's `Vehicle` and `VehicleCreate`
//! shapes, plus what the platform adds).

use crate::error::FieldIssue;
use carshare_domain::vehicle::{self as domain, RuleWire, VehicleState};
use carshare_domain::MinuteOfDay;
use carshare_projections::vehicles::VehicleRow;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FuelType {
    /// 휘발유.
    Gasoline,
    /// 경유.
    Diesel,
    /// 전기.
    Electric,
    /// 하이브리드.
    Hybrid,
}

impl From<FuelType> for domain::FuelType {
    fn from(f: FuelType) -> Self {
        match f {
            FuelType::Gasoline => domain::FuelType::Gasoline,
            FuelType::Diesel => domain::FuelType::Diesel,
            FuelType::Electric => domain::FuelType::Electric,
            FuelType::Hybrid => domain::FuelType::Hybrid,
        }
    }
}

impl FuelType {
    fn from_wire(s: &str) -> Option<FuelType> {
        match s {
            "gasoline" => Some(FuelType::Gasoline),
            "diesel" => Some(FuelType::Diesel),
            "electric" => Some(FuelType::Electric),
            "hybrid" => Some(FuelType::Hybrid),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        domain::FuelType::from(self).as_str()
    }
}

/// Gearbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transmission {
    /// 수동.
    Manual,
    /// 자동.
    Automatic,
}

impl From<Transmission> for domain::Transmission {
    fn from(t: Transmission) -> Self {
        match t {
            Transmission::Manual => domain::Transmission::Manual,
            Transmission::Automatic => domain::Transmission::Automatic,
        }
    }
}

impl Transmission {
    fn from_wire(s: &str) -> Option<Transmission> {
        match s {
            "manual" => Some(Transmission::Manual),
            "automatic" => Some(Transmission::Automatic),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        domain::Transmission::from(self).as_str()
    }
}

/// Whether the vehicle can be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VehicleStatus {
    /// Listed and bookable.
    Active,
    /// Hidden by its host.
    Inactive,
    /// Out of service.
    Maintenance,
}

impl From<VehicleStatus> for domain::VehicleStatus {
    fn from(s: VehicleStatus) -> Self {
        match s {
            VehicleStatus::Active => domain::VehicleStatus::Active,
            VehicleStatus::Inactive => domain::VehicleStatus::Inactive,
            VehicleStatus::Maintenance => domain::VehicleStatus::Maintenance,
        }
    }
}

impl VehicleStatus {
    fn from_wire(s: &str) -> VehicleStatus {
        match s {
            "inactive" => VehicleStatus::Inactive,
            "maintenance" => VehicleStatus::Maintenance,
            _ => VehicleStatus::Active,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        domain::VehicleStatus::from(self).as_str()
    }
}

/// One availability rule (seed: VehicleAvailability), read in Asia/Seoul time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityRule {
    /// 0 = Sunday … 6 = Saturday (recurring rules only).
    #[schema(minimum = 0, maximum = 6)]
    pub day_of_week: Option<u8>,
    /// `HH:MM`.
    #[schema(example = "09:00")]
    pub start_time: String,
    /// `HH:MM`, up to `24:00`; after `start_time`.
    #[schema(example = "18:00")]
    pub end_time: String,
    /// Weekly (true) or only on `specific_date` (false). Defaults to false when a date is given.
    pub is_recurring: Option<bool>,
    /// The date of a one-off rule (`YYYY-MM-DD`).
    pub specific_date: Option<NaiveDate>,
    /// A blocked window rather than an available one (default false).
    pub is_blocked: Option<bool>,
}

impl AvailabilityRule {
    /// The domain rule, or the field issues of rule number `index`.
    pub fn to_domain(&self, index: usize) -> Result<domain::AvailabilityRule, FieldIssue> {
        let time = |field: &str, raw: &str| {
            raw.parse::<MinuteOfDay>().map_err(|_| {
                FieldIssue::new(
                    format!("rules[{index}].{field}"),
                    "invalid_time",
                    "시간은 HH:MM 형식(00:00~24:00)이어야 합니다.",
                    "Times are HH:MM, from 00:00 to 24:00.",
                )
            })
        };
        let wire = RuleWire {
            day_of_week: self.day_of_week,
            start_time: time("start_time", &self.start_time)?,
            end_time: time("end_time", &self.end_time)?,
            is_recurring: self.is_recurring,
            specific_date: self.specific_date,
            is_blocked: self.is_blocked.unwrap_or(false),
        };
        domain::AvailabilityRule::try_from(wire).map_err(|e| {
            use domain::availability::RuleShapeError as E;
            let (ko, en) = match e {
                E::Recurring => (
                    "반복 일정에는 day_of_week(0~6)가 필요하고 specific_date는 없어야 합니다.",
                    "A recurring rule needs day_of_week (0-6) and no specific_date.",
                ),
                E::OneOff => (
                    "특정일 일정에는 specific_date가 필요하고 day_of_week는 없어야 합니다.",
                    "A one-off rule needs specific_date and no day_of_week.",
                ),
                E::EmptyWindow => (
                    "end_time은 start_time보다 늦어야 합니다.",
                    "end_time must be after start_time.",
                ),
            };
            FieldIssue::new(format!("rules[{index}]"), "invalid_rule", ko, en)
        })
    }

    fn from_domain(rule: &domain::AvailabilityRule) -> AvailabilityRule {
        let wire = RuleWire::from(*rule);
        AvailabilityRule {
            day_of_week: wire.day_of_week,
            start_time: wire.start_time.to_string(),
            end_time: wire.end_time.to_string(),
            is_recurring: wire.is_recurring,
            specific_date: wire.specific_date,
            is_blocked: Some(wire.is_blocked),
        }
    }
}

/// A vehicle (seed: `Vehicle`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VehicleResponse {
    /// Id.
    pub id: Uuid,
    /// The host who lists it.
    pub owner_id: Uuid,
    /// Normalised plate, e.g. `12가3456`.
    pub license_plate: String,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// Model year.
    pub year: i32,
    /// Colour.
    pub color: Option<String>,
    /// Fuel.
    pub fuel_type: Option<FuelType>,
    /// Gearbox.
    pub transmission: Option<Transmission>,
    /// Price per hour in won (KRW, whole number).
    pub hourly_rate: i64,
    /// Pickup address.
    pub location_address: String,
    /// Latitude.
    pub location_lat: f64,
    /// Longitude.
    pub location_lng: f64,
    /// Status.
    pub status: VehicleStatus,
    /// Image URLs or storage keys.
    pub images: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// Availability rules (none: available at all times).
    pub availability: Vec<AvailabilityRule>,
    /// Registration time (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
    /// Distance from the search centre in km (search results only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The car's reviews by guests (search results only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<RatingSummary>,
    /// The host's reviews by guests (search results only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_rating: Option<RatingSummary>,
}

/// Review count and mean rating.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingSummary {
    /// Mean of the ratings (1–5), two decimals; null without reviews.
    pub average: Option<f64>,
    /// Number of reviews.
    pub count: i64,
}

impl From<carshare_projections::vehicles::Rating> for RatingSummary {
    fn from(r: carshare_projections::vehicles::Rating) -> Self {
        RatingSummary {
            average: r.average,
            count: r.count,
        }
    }
}

/// Order of search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchSortWire {
    /// Nearest first (default).
    Distance,
    /// Best rated first, unrated last; nearest first among equal ratings.
    Rating,
}

impl From<&VehicleState> for VehicleResponse {
    fn from(s: &VehicleState) -> Self {
        VehicleResponse {
            id: s.id,
            owner_id: s.owner_id,
            license_plate: s.details.license_plate.as_str().to_string(),
            make: s.details.make.clone(),
            model: s.details.model.clone(),
            year: s.details.year,
            color: s.details.color.clone(),
            fuel_type: s
                .details
                .fuel_type
                .and_then(|f| FuelType::from_wire(f.as_str())),
            transmission: s
                .details
                .transmission
                .and_then(|t| Transmission::from_wire(t.as_str())),
            hourly_rate: s.hourly_rate.amount(),
            location_address: s.location.address.clone(),
            location_lat: s.location.lat,
            location_lng: s.location.lng,
            status: VehicleStatus::from_wire(s.status.as_str()),
            images: s.images.clone(),
            description: s.details.description.clone(),
            availability: s
                .availability
                .rules()
                .iter()
                .map(AvailabilityRule::from_domain)
                .collect(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            distance_km: None,
            rating: None,
            host_rating: None,
        }
    }
}

impl From<&VehicleRow> for VehicleResponse {
    fn from(r: &VehicleRow) -> Self {
        VehicleResponse {
            id: r.id,
            owner_id: r.owner_id,
            license_plate: r.license_plate.clone(),
            make: r.make.clone(),
            model: r.model.clone(),
            year: r.year,
            color: r.color.clone(),
            fuel_type: r.fuel_type.as_deref().and_then(FuelType::from_wire),
            transmission: r.transmission.as_deref().and_then(Transmission::from_wire),
            hourly_rate: r.hourly_rate,
            location_address: r.location_address.clone(),
            location_lat: r.location_lat,
            location_lng: r.location_lng,
            status: VehicleStatus::from_wire(&r.status),
            images: r.images.0.clone(),
            description: r.description.clone(),
            availability: r
                .availability
                .0
                .iter()
                .map(AvailabilityRule::from_domain)
                .collect(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            distance_km: None,
            rating: None,
            host_rating: None,
        }
    }
}

/// A new vehicle (seed: `VehicleCreate`). Give `location_lat` and `location_lng`, or only
/// `location_address` to have it geocoded (when Kakao geocoding is configured).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VehicleCreate {
    /// e.g. `12가3456`, `123가4567`, `서울12가3456` (spaces allowed).
    #[schema(example = "12가3456")]
    pub license_plate: String,
    /// Manufacturer.
    #[schema(example = "Genesis")]
    pub make: String,
    /// Model.
    #[schema(example = "G90")]
    pub model: String,
    /// Model year, 1990 to next year.
    #[schema(example = 2024)]
    pub year: i32,
    /// Colour.
    pub color: Option<String>,
    /// Fuel.
    pub fuel_type: Option<FuelType>,
    /// Gearbox.
    pub transmission: Option<Transmission>,
    /// Won per hour: a whole number from 1 to 1,000,000.
    #[schema(example = 25000)]
    pub hourly_rate: i64,
    /// Pickup address.
    #[schema(example = "서울특별시 중구 한강대로 405")]
    pub location_address: String,
    /// Latitude (with `location_lng`).
    pub location_lat: Option<f64>,
    /// Longitude (with `location_lat`).
    pub location_lng: Option<f64>,
    /// Description.
    pub description: Option<String>,
    /// Image URLs or storage keys (at most 20).
    pub images: Option<Vec<String>>,
}

/// A partial update: only the fields present change; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VehicleUpdate {
    /// New plate.
    pub license_plate: Option<String>,
    /// New manufacturer.
    pub make: Option<String>,
    /// New model.
    pub model: Option<String>,
    /// New model year.
    pub year: Option<i32>,
    /// New colour (`null` clears it).
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub color: Option<Option<String>>,
    /// New fuel (`null` clears it).
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<FuelType>, nullable)]
    pub fuel_type: Option<Option<FuelType>>,
    /// New gearbox (`null` clears it).
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<Transmission>, nullable)]
    pub transmission: Option<Option<Transmission>>,
    /// New description (`null` clears it).
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    /// New hourly rate in won.
    pub hourly_rate: Option<i64>,
    /// New pickup address (geocoded unless coordinates are given too).
    pub location_address: Option<String>,
    /// New latitude (with `location_lng`).
    pub location_lat: Option<f64>,
    /// New longitude (with `location_lat`).
    pub location_lng: Option<f64>,
    /// New status.
    pub status: Option<VehicleStatus>,
    /// New image list (replaces the old one).
    pub images: Option<Vec<String>>,
}

/// The whole availability rule set of a vehicle (replaces the previous one).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityUpdate {
    /// At most 200 rules; an empty list makes the vehicle available at all times.
    pub rules: Vec<AvailabilityRule>,
}

/// Optional body of `DELETE /v1/vehicles/{id}`: none, or a reason.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveParams {
    /// Why the vehicle is removed (kept in its history).
    pub reason: Option<String>,
}

/// Accepts RFC 3339 timestamps; a `+` decoded to a space by form encoding is restored.
fn lenient_datetime<'de, D>(de: D) -> Result<DateTime<Utc>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = String::deserialize(de)?;
    let fixed = raw.trim().replace(' ', "+");
    DateTime::parse_from_rfc3339(&fixed)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("`{raw}` is not an RFC 3339 date-time: {e}")))
}

/// Parameters of the availability search.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Latitude of the centre.
    pub lat: f64,
    /// Longitude of the centre.
    pub lng: f64,
    /// Start of the window (RFC 3339).
    #[serde(deserialize_with = "lenient_datetime")]
    #[param(value_type = String, format = DateTime)]
    pub start_datetime: DateTime<Utc>,
    /// End of the window (RFC 3339), after the start, at most 30 days later.
    #[serde(deserialize_with = "lenient_datetime")]
    #[param(value_type = String, format = DateTime)]
    pub end_datetime: DateTime<Utc>,
    /// Radius in km (default 5, at most 50).
    pub radius: Option<f64>,
    /// Text to find in make, model or description (Korean or Latin).
    pub q: Option<String>,
    /// Fuel.
    pub fuel_type: Option<FuelType>,
    /// Gearbox.
    pub transmission: Option<Transmission>,
    /// Lowest hourly rate (won).
    pub min_price: Option<i64>,
    /// Highest hourly rate (won).
    pub max_price: Option<i64>,
    /// `distance` (nearest first, the default) or `rating` (best rated first).
    pub sort: Option<SearchSortWire>,
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

/// Parameters of the host's list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostVehiclesParams {
    /// Only this status.
    pub status: Option<VehicleStatus>,
    /// Include removed vehicles (default false).
    pub include_removed: Option<bool>,
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

/// Read-your-writes parameter of single reads.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

//! The vehicle command service: what the API calls.

use super::plates::{PlateRegistry, Reservation};
use crate::bus::{CommandBus, CommandError, Committed};
use crate::clock::Clock;
use crate::error::InfraError;
use crate::geocoding::{GeocodeError, Geocoder};
use carshare_domain::vehicle::{
    AvailabilityRule, FuelType, Location, NewVehicle, Transmission, Vehicle, VehicleAction,
    VehicleCommand, VehicleError, VehiclePatch, VehicleStatus,
};
use carshare_domain::{Actor, LicensePlate};
use carshare_event_store::{CommitSignal, EventMetadata};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// Snapshot a vehicle every this many events (bookings will add reservations to its history).
const SNAPSHOT_EVERY: usize = 50;

/// Where the vehicle is: an address, with coordinates if the client has them. Without them the
/// address is geocoded.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationInput {
    /// The pickup address.
    pub address: String,
    /// Latitude, if known.
    pub lat: Option<f64>,
    /// Longitude, if known.
    pub lng: Option<f64>,
}

/// A registration request.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterVehicle {
    /// Plate as typed.
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
    /// Price per hour in won.
    pub hourly_rate: i64,
    /// Pickup location.
    pub location: LocationInput,
    /// Free text.
    pub description: Option<String>,
    /// Image references.
    pub images: Vec<String>,
}

/// An update request: the domain patch, with the location still to resolve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateVehicle {
    /// Everything but the location.
    pub patch: VehiclePatch,
    /// New address, if any.
    pub location_address: Option<String>,
    /// New latitude, if any.
    pub location_lat: Option<f64>,
    /// New longitude, if any.
    pub location_lng: Option<f64>,
}

/// Why a vehicle command failed.
#[derive(Debug, thiserror::Error)]
pub enum VehicleServiceError {
    /// The aggregate refused.
    #[error(transparent)]
    Domain(#[from] VehicleError),
    /// Another live vehicle has this plate.
    #[error("licence plate already registered")]
    PlateTaken,
    /// Only one of latitude and longitude was given.
    #[error("give both location_lat and location_lng, or neither")]
    PartialCoordinates,
    /// No coordinates, and geocoding is not configured.
    #[error("coordinates are required: address geocoding is not configured")]
    GeocodingNotConfigured,
    /// The address matched nothing.
    #[error("the address could not be found")]
    AddressNotFound,
    /// The geocoder is down.
    #[error("geocoding unavailable: {0}")]
    GeocodingUnavailable(String),
    /// Infrastructure.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<CommandError<VehicleError>> for VehicleServiceError {
    fn from(err: CommandError<VehicleError>) -> Self {
        match err {
            CommandError::Rejected(e) => VehicleServiceError::Domain(e),
            CommandError::Infra(e) => VehicleServiceError::Infra(e),
        }
    }
}

impl From<sqlx::Error> for VehicleServiceError {
    fn from(err: sqlx::Error) -> Self {
        VehicleServiceError::Infra(err.into())
    }
}

/// Vehicle use cases.
pub struct VehicleService {
    bus: CommandBus<Vehicle>,
    plates: PlateRegistry,
    geocoder: Option<Arc<dyn Geocoder>>,
    clock: Arc<dyn Clock>,
}

impl VehicleService {
    /// The service over `pool`.
    pub fn new(
        pool: PgPool,
        signal: CommitSignal,
        geocoder: Option<Arc<dyn Geocoder>>,
        clock: Arc<dyn Clock>,
    ) -> VehicleService {
        VehicleService {
            bus: CommandBus::new(pool.clone(), (), signal, SNAPSHOT_EVERY),
            plates: PlateRegistry::new(pool),
            geocoder,
            clock,
        }
    }

    /// Lists a new vehicle for the acting host.
    #[tracing::instrument(name = "vehicles.register", skip_all)]
    pub async fn register(
        &self,
        actor: Actor,
        request: RegisterVehicle,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        // Refuse what the aggregate would refuse before any I/O (plates, geocoding).
        if actor.role != carshare_domain::Role::Host {
            return Err(VehicleError::HostRoleRequired.into());
        }
        let plate = parse_plate(&request.license_plate)?;
        let location = self.resolve(request.location).await?;
        let vehicle_id = Uuid::new_v4();
        let command = VehicleCommand {
            actor,
            at: self.clock.now(),
            action: VehicleAction::Register(NewVehicle {
                vehicle_id,
                license_plate: request.license_plate,
                make: request.make,
                model: request.model,
                year: request.year,
                color: request.color,
                fuel_type: request.fuel_type,
                transmission: request.transmission,
                hourly_rate: request.hourly_rate,
                location,
                description: request.description,
                images: request.images,
            }),
        };
        // Check the whole command before reserving the plate, so a refusal leaves nothing behind.
        carshare_domain::vehicle::Vehicle::default().decide(command.clone())?;
        self.reserve_plate(&plate, vehicle_id).await?;
        // A new id: the vehicle has no events yet, so there is nothing to load.
        match self
            .bus
            .execute_loaded(
                &vehicle_id.to_string(),
                (Vehicle::default(), 0),
                command,
                meta,
            )
            .await
        {
            Ok(done) => Ok(done),
            Err(err) => {
                if surely_not_written(&err) {
                    self.release_quietly(plate.as_str(), vehicle_id).await;
                }
                Err(err.into())
            }
        }
    }

    /// Changes some fields of a vehicle.
    #[tracing::instrument(name = "vehicles.update", skip_all, fields(vehicle_id = %vehicle_id))]
    pub async fn update(
        &self,
        actor: Actor,
        vehicle_id: Uuid,
        request: UpdateVehicle,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        let (current, sequence) = self.bus.load_versioned(&vehicle_id.to_string()).await?;
        let state = current.state.as_ref().ok_or(VehicleError::NotFound)?;
        let mut patch = request.patch;
        let wants_location = request.location_address.is_some()
            || request.location_lat.is_some()
            || request.location_lng.is_some();
        if wants_location {
            let address = request
                .location_address
                .unwrap_or_else(|| state.location.address.clone());
            patch.location = Some(
                self.resolve(LocationInput {
                    address,
                    lat: request.location_lat,
                    lng: request.location_lng,
                })
                .await?,
            );
        }
        let old_plate = state.details.license_plate.clone();
        let new_plate = match &patch.license_plate {
            Some(raw) => Some(parse_plate(raw)?).filter(|p| *p != old_plate),
            None => None,
        };
        let command = VehicleCommand {
            actor,
            at: self.clock.now(),
            action: VehicleAction::Update(patch),
        };
        // Refusals (ownership, validation) come before the plate is reserved.
        current.decide(command.clone())?;
        if let Some(plate) = &new_plate {
            self.reserve_plate(plate, vehicle_id).await?;
        }
        match self
            .bus
            .execute_loaded(&vehicle_id.to_string(), (current, sequence), command, meta)
            .await
        {
            Ok(done) => {
                if new_plate.is_some() {
                    self.release_quietly(old_plate.as_str(), vehicle_id).await;
                }
                Ok(done)
            }
            Err(err) => {
                if let Some(plate) = new_plate.as_ref().filter(|_| surely_not_written(&err)) {
                    self.release_quietly(plate.as_str(), vehicle_id).await;
                }
                Err(err.into())
            }
        }
    }

    /// Changes the status only.
    pub async fn change_status(
        &self,
        actor: Actor,
        vehicle_id: Uuid,
        status: VehicleStatus,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        self.execute(actor, vehicle_id, VehicleAction::ChangeStatus(status), meta)
            .await
    }

    /// Replaces the availability rules.
    #[tracing::instrument(name = "vehicles.set_availability", skip_all, fields(vehicle_id = %vehicle_id))]
    pub async fn set_availability(
        &self,
        actor: Actor,
        vehicle_id: Uuid,
        rules: Vec<AvailabilityRule>,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        self.execute(
            actor,
            vehicle_id,
            VehicleAction::SetAvailability(rules),
            meta,
        )
        .await
    }

    /// Adds image references.
    pub async fn attach_images(
        &self,
        actor: Actor,
        vehicle_id: Uuid,
        images: Vec<String>,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        self.execute(actor, vehicle_id, VehicleAction::AttachImages(images), meta)
            .await
    }

    /// Removes a vehicle (its history stays) and frees its plate.
    #[tracing::instrument(name = "vehicles.remove", skip_all, fields(vehicle_id = %vehicle_id))]
    pub async fn remove(
        &self,
        actor: Actor,
        vehicle_id: Uuid,
        reason: Option<String>,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        let done = self
            .execute(actor, vehicle_id, VehicleAction::Remove { reason }, meta)
            .await?;
        if let Some(state) = &done.aggregate.state {
            self.release_quietly(state.details.license_plate.as_str(), vehicle_id)
                .await;
        }
        Ok(done)
    }

    /// The current state of a vehicle from its event log.
    pub async fn load(&self, vehicle_id: Uuid) -> Result<Vehicle, VehicleServiceError> {
        Ok(self.bus.load(&vehicle_id.to_string()).await?)
    }

    async fn execute(
        &self,
        actor: Actor,
        vehicle_id: Uuid,
        action: VehicleAction,
        meta: &EventMetadata,
    ) -> Result<Committed<Vehicle>, VehicleServiceError> {
        let command = VehicleCommand {
            actor,
            at: self.clock.now(),
            action,
        };
        Ok(self
            .bus
            .execute(&vehicle_id.to_string(), command, meta)
            .await?)
    }

    async fn resolve(&self, input: LocationInput) -> Result<Location, VehicleServiceError> {
        match (input.lat, input.lng) {
            (Some(lat), Some(lng)) => Ok(Location {
                address: input.address,
                lat,
                lng,
            }),
            (Some(_), None) | (None, Some(_)) => Err(VehicleServiceError::PartialCoordinates),
            (None, None) => {
                let geocoder = self
                    .geocoder
                    .as_ref()
                    .ok_or(VehicleServiceError::GeocodingNotConfigured)?;
                if input.address.trim().is_empty() {
                    return Err(VehicleError::invalid(
                        "location_address",
                        carshare_domain::vehicle::Problem::Required,
                    )
                    .into());
                }
                match geocoder.geocode(input.address.trim()).await {
                    Ok(Some(point)) => Ok(Location {
                        address: input.address,
                        lat: point.lat,
                        lng: point.lng,
                    }),
                    Ok(None) => Err(VehicleServiceError::AddressNotFound),
                    Err(GeocodeError::Unavailable(why)) => {
                        Err(VehicleServiceError::GeocodingUnavailable(why))
                    }
                }
            }
        }
    }

    async fn reserve_plate(
        &self,
        plate: &LicensePlate,
        vehicle_id: Uuid,
    ) -> Result<(), VehicleServiceError> {
        match self.plates.reserve(plate.as_str(), vehicle_id).await? {
            Reservation::Held => Ok(()),
            Reservation::TakenBy {
                vehicle_id: holder,
                stale_candidate,
            } => {
                if !stale_candidate {
                    return Err(VehicleServiceError::PlateTaken);
                }
                // The holder may have crashed between reserving and writing its event, or
                // its removal may not have released the plate: its log decides.
                let holder_state = self.bus.load(&holder.to_string()).await?;
                let still_holds = holder_state
                    .state
                    .is_some_and(|s| !s.removed && s.details.license_plate == *plate);
                if still_holds {
                    return Err(VehicleServiceError::PlateTaken);
                }
                if self
                    .plates
                    .reclaim(plate.as_str(), holder, vehicle_id)
                    .await?
                {
                    tracing::info!(plate = %plate, from = %holder, to = %vehicle_id, "reclaimed a stale plate reservation");
                    Ok(())
                } else {
                    Err(VehicleServiceError::PlateTaken)
                }
            }
        }
    }

    async fn release_quietly(&self, plate: &str, vehicle_id: Uuid) {
        // A plate left reserved is reclaimed by its next registration, so failing here only
        // delays that; it must not fail the request.
        if let Err(e) = self.plates.release(plate, vehicle_id).await {
            tracing::warn!(error = %e, "could not release a plate reservation");
        }
    }
}

/// Whether a failed command certainly wrote nothing. After an outage the write may have
/// committed unseen, so the plate stays reserved; a stale reservation is reclaimed later by
/// checking the holder's log.
fn surely_not_written(err: &CommandError<VehicleError>) -> bool {
    matches!(
        err,
        CommandError::Rejected(_) | CommandError::Infra(InfraError::Conflict)
    )
}

fn parse_plate(raw: &str) -> Result<LicensePlate, VehicleServiceError> {
    LicensePlate::parse(raw).map_err(|_| {
        VehicleError::invalid(
            "license_plate",
            carshare_domain::vehicle::Problem::PlateFormat,
        )
        .into()
    })
}

//! Decisions of the Vehicle aggregate (`handle`) and its state changes (`apply`).

use super::availability::{AvailabilityRule, AvailabilityRules};
use super::commands::{NewVehicle, VehicleAction, VehicleCommand, VehiclePatch};
use super::error::{Problem, VehicleError};
use super::events::VehicleEvent;
use super::types::{
    Location, VehicleDetails, VehicleStatus, MAX_HOURLY_RATE, MAX_IMAGES, MIN_HOURLY_RATE, MIN_YEAR,
};
use crate::actor::{Actor, Role};
use crate::geo::GeoPoint;
use crate::money::Won;
use crate::plate::LicensePlate;
use crate::time::{seoul_date, TimeWindow};
use chrono::{DateTime, Datelike, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const MAX_NAME_CHARS: usize = 50;
const MAX_COLOR_CHARS: usize = 30;
const MAX_ADDRESS_CHARS: usize = 300;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_REASON_CHARS: usize = 500;
const MAX_IMAGE_REF_CHARS: usize = 1_000;

/// The Vehicle aggregate. `state` is `None` until the vehicle is registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vehicle {
    /// The vehicle as it stands after every applied event.
    pub state: Option<VehicleState>,
}

/// A booking's hold on the car.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The booking.
    pub booking_id: Uuid,
    /// The window it holds.
    pub window: TimeWindow,
}

/// Everything the aggregate knows about a registered vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleState {
    /// Id.
    pub id: Uuid,
    /// The owning host.
    pub owner_id: Uuid,
    /// Descriptive details.
    pub details: VehicleDetails,
    /// Price per hour.
    pub hourly_rate: Won,
    /// Pickup location.
    pub location: Location,
    /// Status.
    pub status: VehicleStatus,
    /// Image references.
    pub images: Vec<String>,
    /// Availability rules.
    pub availability: AvailabilityRules,
    /// Whether it was removed.
    pub removed: bool,
    /// Windows held by bookings (pending, approved or under way).
    #[serde(default)]
    pub holds: Vec<Hold>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Aggregate for Vehicle {
    const TYPE: &'static str = "Vehicle";
    type Command = VehicleCommand;
    type Event = VehicleEvent;
    type Error = VehicleError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            VehicleEvent::VehicleRegistered {
                vehicle_id,
                owner_id,
                details,
                hourly_rate,
                location,
                images,
                status,
                at,
            } => {
                self.state = Some(VehicleState {
                    id: vehicle_id,
                    owner_id,
                    details,
                    hourly_rate,
                    location,
                    status,
                    images,
                    availability: AvailabilityRules::default(),
                    removed: false,
                    holds: Vec::new(),
                    created_at: at,
                    updated_at: at,
                });
            }
            other => {
                let Some(state) = self.state.as_mut() else {
                    // Events before registration cannot be produced by `handle`; ignore them
                    // rather than fail a replay.
                    return;
                };
                state.updated_at = other.at();
                match other {
                    VehicleEvent::VehicleRegistered { .. } => {}
                    VehicleEvent::VehicleDetailsUpdated { details, .. } => state.details = details,
                    VehicleEvent::HourlyRateChanged { hourly_rate, .. } => {
                        state.hourly_rate = hourly_rate
                    }
                    VehicleEvent::VehicleRelocated { location, .. } => state.location = location,
                    VehicleEvent::VehicleStatusChanged { status, .. } => state.status = status,
                    VehicleEvent::AvailabilitySet { rules, .. } => {
                        state.availability = AvailabilityRules(rules)
                    }
                    VehicleEvent::VehicleImagesAttached { images, .. } => {
                        for image in images {
                            if !state.images.contains(&image) {
                                state.images.push(image);
                            }
                        }
                    }
                    VehicleEvent::VehicleImagesReplaced { images, .. } => state.images = images,
                    VehicleEvent::WindowReserved {
                        booking_id,
                        start,
                        end,
                        ..
                    } => state.holds.push(Hold {
                        booking_id,
                        window: TimeWindow { start, end },
                    }),
                    VehicleEvent::ReservationReleased { booking_id, .. } => {
                        state.holds.retain(|h| h.booking_id != booking_id)
                    }
                    VehicleEvent::VehicleRemoved { .. } => state.removed = true,
                }
            }
        }
    }
}

impl Vehicle {
    /// The events a command produces, or why it is refused. Pure: no I/O, no clock.
    pub fn decide(&self, command: VehicleCommand) -> Result<Vec<VehicleEvent>, VehicleError> {
        let VehicleCommand { actor, at, action } = command;
        match action {
            VehicleAction::Register(new) => return self.register(actor, at, new),
            VehicleAction::Reserve {
                booking_id,
                window,
                buffer,
            } => return self.reserve(actor, at, booking_id, window, buffer),
            VehicleAction::Release { booking_id, reason } => {
                return Ok(self.release(booking_id, reason, at))
            }
            _ => {}
        }
        let state = self.changeable_by(&actor)?;
        match action {
            VehicleAction::Register(_) => Err(VehicleError::AlreadyRegistered),
            VehicleAction::Reserve { .. } | VehicleAction::Release { .. } => Ok(Vec::new()),
            VehicleAction::Update(patch) => state.update(patch, at),
            VehicleAction::ChangeStatus(status) => Ok(state.status_change(status, at)),
            VehicleAction::SetAvailability(rules) => state.set_availability(rules, at),
            VehicleAction::AttachImages(images) => state.attach_images(images, at),
            VehicleAction::Remove { reason } => {
                if state.holds.iter().any(|h| h.window.end > at) {
                    return Err(VehicleError::HasBookings);
                }
                Ok(vec![VehicleEvent::VehicleRemoved {
                    reason: optional_text("reason", reason, MAX_REASON_CHARS)?,
                    at,
                }])
            }
        }
    }

    fn register(
        &self,
        actor: Actor,
        at: DateTime<Utc>,
        new: NewVehicle,
    ) -> Result<Vec<VehicleEvent>, VehicleError> {
        if self.state.is_some() {
            return Err(VehicleError::AlreadyRegistered);
        }
        if actor.role != Role::Host {
            return Err(VehicleError::HostRoleRequired);
        }
        let details = VehicleDetails {
            license_plate: plate(&new.license_plate)?,
            make: required_text("make", &new.make, MAX_NAME_CHARS)?,
            model: required_text("model", &new.model, MAX_NAME_CHARS)?,
            year: model_year(new.year, at)?,
            color: optional_text("color", new.color, MAX_COLOR_CHARS)?,
            fuel_type: new.fuel_type,
            transmission: new.transmission,
            description: optional_text("description", new.description, MAX_DESCRIPTION_CHARS)?,
        };
        Ok(vec![VehicleEvent::VehicleRegistered {
            vehicle_id: new.vehicle_id,
            owner_id: actor.user_id,
            details,
            hourly_rate: hourly_rate(new.hourly_rate)?,
            location: location(new.location)?,
            images: image_refs(new.images)?,
            status: VehicleStatus::Active,
            at,
        }])
    }

    /// Holds the car for a booking: it must be registered, not removed, active, not the
    /// guest's own, available by its rules for the whole window, and free of other holds within
    /// `buffer` of it.
    fn reserve(
        &self,
        actor: Actor,
        at: DateTime<Utc>,
        booking_id: Uuid,
        window: TimeWindow,
        buffer: chrono::Duration,
    ) -> Result<Vec<VehicleEvent>, VehicleError> {
        let state = self.state.as_ref().ok_or(VehicleError::NotFound)?;
        if state.removed {
            return Err(VehicleError::NotFound);
        }
        if state.owner_id == actor.user_id {
            return Err(VehicleError::OwnVehicle);
        }
        if state.status != VehicleStatus::Active {
            return Err(VehicleError::NotBookable);
        }
        if !state.availability.covers(&window) {
            return Err(VehicleError::OutsideAvailability);
        }
        let guarded = window.widened(buffer);
        if state
            .holds
            .iter()
            .any(|h| h.booking_id == booking_id || h.window.overlaps(&guarded))
        {
            return Err(VehicleError::WindowTaken);
        }
        Ok(vec![VehicleEvent::WindowReserved {
            booking_id,
            guest_id: actor.user_id,
            start: window.start,
            end: window.end,
            at,
        }])
    }

    fn release(&self, booking_id: Uuid, reason: String, at: DateTime<Utc>) -> Vec<VehicleEvent> {
        let held = self
            .state
            .as_ref()
            .is_some_and(|s| s.holds.iter().any(|h| h.booking_id == booking_id));
        if !held {
            return Vec::new();
        }
        vec![VehicleEvent::ReservationReleased {
            booking_id,
            reason,
            at,
        }]
    }

    /// The state, if `actor` may change this vehicle.
    fn changeable_by(&self, actor: &Actor) -> Result<&VehicleState, VehicleError> {
        let state = self.state.as_ref().ok_or(VehicleError::NotFound)?;
        if state.owner_id != actor.user_id && !actor.is_admin() {
            return Err(VehicleError::NotOwner);
        }
        if state.removed {
            return Err(VehicleError::Removed);
        }
        Ok(state)
    }
}

impl VehicleState {
    fn update(
        &self,
        patch: VehiclePatch,
        at: DateTime<Utc>,
    ) -> Result<Vec<VehicleEvent>, VehicleError> {
        if patch.is_empty() {
            return Err(VehicleError::invalid("body", Problem::EmptyUpdate));
        }
        let old = &self.details;
        let mut details = old.clone();
        if let Some(p) = patch.license_plate {
            details.license_plate = plate(&p)?;
        }
        if let Some(make) = patch.make {
            details.make = required_text("make", &make, MAX_NAME_CHARS)?;
        }
        if let Some(model) = patch.model {
            details.model = required_text("model", &model, MAX_NAME_CHARS)?;
        }
        if let Some(year) = patch.year {
            details.year = model_year(year, at)?;
        }
        if let Some(color) = patch.color {
            details.color = optional_text("color", color, MAX_COLOR_CHARS)?;
        }
        if let Some(fuel) = patch.fuel_type {
            details.fuel_type = fuel;
        }
        if let Some(transmission) = patch.transmission {
            details.transmission = transmission;
        }
        if let Some(description) = patch.description {
            details.description = optional_text("description", description, MAX_DESCRIPTION_CHARS)?;
        }
        let rate = patch.hourly_rate.map(hourly_rate).transpose()?;
        let location = patch.location.map(location).transpose()?;
        let images = patch.images.map(image_refs).transpose()?;

        let mut events = Vec::new();
        let changed = changed_fields(old, &details);
        if !changed.is_empty() {
            events.push(VehicleEvent::VehicleDetailsUpdated {
                details,
                changed,
                at,
            });
        }
        if let Some(rate) = rate.filter(|r| *r != self.hourly_rate) {
            events.push(VehicleEvent::HourlyRateChanged {
                hourly_rate: rate,
                previous: self.hourly_rate,
                at,
            });
        }
        if let Some(location) = location.filter(|l| *l != self.location) {
            events.push(VehicleEvent::VehicleRelocated { location, at });
        }
        if let Some(images) = images.filter(|i| *i != self.images) {
            events.push(VehicleEvent::VehicleImagesReplaced { images, at });
        }
        if let Some(status) = patch.status {
            events.extend(self.status_change(status, at));
        }
        Ok(events)
    }

    fn status_change(&self, status: VehicleStatus, at: DateTime<Utc>) -> Vec<VehicleEvent> {
        if status == self.status {
            return Vec::new();
        }
        vec![VehicleEvent::VehicleStatusChanged {
            status,
            previous: self.status,
            at,
        }]
    }

    fn set_availability(
        &self,
        rules: Vec<AvailabilityRule>,
        at: DateTime<Utc>,
    ) -> Result<Vec<VehicleEvent>, VehicleError> {
        AvailabilityRules::validate(&rules, at)?;
        if rules == self.availability.0 {
            return Ok(Vec::new());
        }
        Ok(vec![VehicleEvent::AvailabilitySet { rules, at }])
    }

    fn attach_images(
        &self,
        images: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<Vec<VehicleEvent>, VehicleError> {
        let images = image_refs(images)?;
        let new: Vec<String> = images
            .into_iter()
            .filter(|i| !self.images.contains(i))
            .collect();
        if self.images.len() + new.len() > MAX_IMAGES {
            return Err(VehicleError::invalid(
                "images",
                Problem::TooMany { max: MAX_IMAGES },
            ));
        }
        if new.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![VehicleEvent::VehicleImagesAttached {
            images: new,
            at,
        }])
    }
}

fn changed_fields(old: &VehicleDetails, new: &VehicleDetails) -> Vec<String> {
    let mut changed = Vec::new();
    let mut note = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_string());
        }
    };
    note("license_plate", old.license_plate != new.license_plate);
    note("make", old.make != new.make);
    note("model", old.model != new.model);
    note("year", old.year != new.year);
    note("color", old.color != new.color);
    note("fuel_type", old.fuel_type != new.fuel_type);
    note("transmission", old.transmission != new.transmission);
    note("description", old.description != new.description);
    changed
}

fn plate(raw: &str) -> Result<LicensePlate, VehicleError> {
    LicensePlate::parse(raw)
        .map_err(|_| VehicleError::invalid("license_plate", Problem::PlateFormat))
}

fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, VehicleError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(VehicleError::invalid(field, Problem::Required));
    }
    if text.chars().count() > max {
        return Err(VehicleError::invalid(field, Problem::TooLong { max }));
    }
    Ok(text.to_string())
}

fn optional_text(
    field: &'static str,
    raw: Option<String>,
    max: usize,
) -> Result<Option<String>, VehicleError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() > max => {
            Err(VehicleError::invalid(field, Problem::TooLong { max }))
        }
        Some(text) => Ok(Some(text.to_string())),
    }
}

fn model_year(year: i32, at: DateTime<Utc>) -> Result<i32, VehicleError> {
    let max = seoul_date(at).year() + 1;
    if (MIN_YEAR..=max).contains(&year) {
        Ok(year)
    } else {
        Err(VehicleError::invalid(
            "year",
            Problem::YearOutOfRange { min: MIN_YEAR, max },
        ))
    }
}

fn hourly_rate(rate: i64) -> Result<Won, VehicleError> {
    if (MIN_HOURLY_RATE..=MAX_HOURLY_RATE).contains(&rate) {
        Ok(Won(rate))
    } else {
        Err(VehicleError::invalid(
            "hourly_rate",
            Problem::RateOutOfRange {
                min: MIN_HOURLY_RATE,
                max: MAX_HOURLY_RATE,
            },
        ))
    }
}

fn location(location: Location) -> Result<Location, VehicleError> {
    let address = required_text("location_address", &location.address, MAX_ADDRESS_CHARS)?;
    GeoPoint::in_korea(location.lat, location.lng)
        .map_err(|_| VehicleError::invalid("location", Problem::OutsideKorea))?;
    Ok(Location {
        address,
        lat: location.lat,
        lng: location.lng,
    })
}

fn image_refs(images: Vec<String>) -> Result<Vec<String>, VehicleError> {
    if images.len() > MAX_IMAGES {
        return Err(VehicleError::invalid(
            "images",
            Problem::TooMany { max: MAX_IMAGES },
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(images.len());
    for (i, image) in images.into_iter().enumerate() {
        let image = image.trim().to_string();
        if !is_image_ref(&image) {
            return Err(VehicleError::invalid(
                format!("images[{i}]"),
                Problem::ImageReference,
            ));
        }
        if !out.contains(&image) {
            out.push(image);
        }
    }
    Ok(out)
}

/// An `http(s)://` URL without whitespace, or an object-storage key made of safe characters.
fn is_image_ref(s: &str) -> bool {
    if s.is_empty() || s.chars().count() > MAX_IMAGE_REF_CHARS {
        return false;
    }
    if let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    {
        return !rest.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control());
    }
    !s.starts_with('/')
        && !s
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vehicle::availability::Schedule;
    use cqrs_es::test::TestFramework;

    type VehicleTest = TestFramework<Vehicle>;

    fn now() -> DateTime<Utc> {
        "2026-11-27T03:00:00Z".parse().unwrap()
    }

    fn host() -> Actor {
        Actor::new(Uuid::from_u128(1), Role::Host)
    }

    fn vehicle_id() -> Uuid {
        Uuid::from_u128(42)
    }

    fn seoul_station() -> Location {
        Location {
            address: "서울특별시 중구 한강대로 405".into(),
            lat: 37.5547,
            lng: 126.9707,
        }
    }

    fn new_vehicle() -> NewVehicle {
        NewVehicle {
            vehicle_id: vehicle_id(),
            license_plate: "12가 3456".into(),
            make: "Genesis".into(),
            model: "G90".into(),
            year: 2024,
            color: Some("black".into()),
            fuel_type: Some(super::super::FuelType::Gasoline),
            transmission: Some(super::super::Transmission::Automatic),
            hourly_rate: 25_000,
            location: seoul_station(),
            description: Some("  법인 차량  ".into()),
            images: vec!["https://img.example/a.jpg".into()],
        }
    }

    fn cmd(actor: Actor, action: VehicleAction) -> VehicleCommand {
        VehicleCommand {
            actor,
            at: now(),
            action,
        }
    }

    fn registered() -> VehicleEvent {
        VehicleEvent::VehicleRegistered {
            vehicle_id: vehicle_id(),
            owner_id: host().user_id,
            details: VehicleDetails {
                license_plate: LicensePlate::parse("12가3456").unwrap(),
                make: "Genesis".into(),
                model: "G90".into(),
                year: 2024,
                color: Some("black".into()),
                fuel_type: Some(super::super::FuelType::Gasoline),
                transmission: Some(super::super::Transmission::Automatic),
                description: Some("법인 차량".into()),
            },
            hourly_rate: Won(25_000),
            location: seoul_station(),
            images: vec!["https://img.example/a.jpg".into()],
            status: VehicleStatus::Active,
            at: now(),
        }
    }

    #[test]
    fn a_host_registers_a_vehicle_with_normalised_fields() {
        VehicleTest::with(())
            .given_no_previous_events()
            .when(cmd(host(), VehicleAction::Register(new_vehicle())))
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn guests_and_admins_cannot_register() {
        for role in [Role::Guest, Role::Admin] {
            VehicleTest::with(())
                .given_no_previous_events()
                .when(cmd(
                    Actor::new(Uuid::from_u128(9), role),
                    VehicleAction::Register(new_vehicle()),
                ))
                .then_expect_error(VehicleError::HostRoleRequired);
        }
    }

    #[test]
    fn registering_twice_is_refused() {
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Register(new_vehicle())))
            .then_expect_error(VehicleError::AlreadyRegistered);
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases: Vec<(NewVehicle, &str)> = vec![
            (
                NewVehicle {
                    license_plate: "ABC123".into(),
                    ..new_vehicle()
                },
                "license_plate",
            ),
            (
                NewVehicle {
                    make: "   ".into(),
                    ..new_vehicle()
                },
                "make",
            ),
            (
                NewVehicle {
                    year: 1989,
                    ..new_vehicle()
                },
                "year",
            ),
            (
                NewVehicle {
                    year: 2028,
                    ..new_vehicle()
                },
                "year",
            ),
            (
                NewVehicle {
                    hourly_rate: 0,
                    ..new_vehicle()
                },
                "hourly_rate",
            ),
            (
                NewVehicle {
                    hourly_rate: 1_000_001,
                    ..new_vehicle()
                },
                "hourly_rate",
            ),
            (
                NewVehicle {
                    location: Location {
                        lat: 35.68,
                        lng: 139.69,
                        ..seoul_station()
                    },
                    ..new_vehicle()
                },
                "location",
            ),
            (
                NewVehicle {
                    images: vec!["../etc/passwd".into()],
                    ..new_vehicle()
                },
                "images[0]",
            ),
            (
                NewVehicle {
                    description: Some("가".repeat(2_001)),
                    ..new_vehicle()
                },
                "description",
            ),
        ];
        for (new, field) in cases {
            let result = VehicleTest::with(())
                .given_no_previous_events()
                .when(cmd(host(), VehicleAction::Register(new)))
                .inspect_result();
            match result {
                Err(VehicleError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn next_years_model_is_accepted() {
        let result = VehicleTest::with(())
            .given_no_previous_events()
            .when(cmd(
                host(),
                VehicleAction::Register(NewVehicle {
                    year: 2027,
                    ..new_vehicle()
                }),
            ))
            .inspect_result();
        assert!(result.is_ok());
    }

    #[test]
    fn only_the_owner_or_an_admin_may_change_it() {
        let stranger = Actor::new(Uuid::from_u128(7), Role::Host);
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(
                stranger,
                VehicleAction::ChangeStatus(VehicleStatus::Inactive),
            ))
            .then_expect_error(VehicleError::NotOwner);
        let admin = Actor::new(Uuid::from_u128(8), Role::Admin);
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(
                admin,
                VehicleAction::ChangeStatus(VehicleStatus::Maintenance),
            ))
            .then_expect_events(vec![VehicleEvent::VehicleStatusChanged {
                status: VehicleStatus::Maintenance,
                previous: VehicleStatus::Active,
                at: now(),
            }]);
    }

    #[test]
    fn commands_on_unknown_vehicles_are_not_found() {
        VehicleTest::with(())
            .given_no_previous_events()
            .when(cmd(host(), VehicleAction::Remove { reason: None }))
            .then_expect_error(VehicleError::NotFound);
    }

    #[test]
    fn an_update_emits_one_event_per_aspect_that_changed() {
        let patch = VehiclePatch {
            model: Some("G80".into()),
            color: Some(None),
            hourly_rate: Some(30_000),
            status: Some(VehicleStatus::Active),
            ..VehiclePatch::default()
        };
        let events = VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Update(patch)))
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 2);
        match &events[0] {
            VehicleEvent::VehicleDetailsUpdated {
                details, changed, ..
            } => {
                assert_eq!(details.model, "G80");
                assert_eq!(details.color, None);
                assert_eq!(changed, &vec!["model".to_string(), "color".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            events[1],
            VehicleEvent::HourlyRateChanged {
                hourly_rate: Won(30_000),
                previous: Won(25_000),
                at: now()
            }
        );
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        let patch = VehiclePatch {
            make: Some("Genesis".into()),
            hourly_rate: Some(25_000),
            ..VehiclePatch::default()
        };
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Update(patch)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_empty_update_is_refused() {
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Update(VehiclePatch::default())))
            .then_expect_error(VehicleError::invalid("body", Problem::EmptyUpdate));
    }

    #[test]
    fn availability_is_replaced_as_a_whole() {
        let rules = vec![AvailabilityRule {
            schedule: Schedule::Weekly { day_of_week: 1 },
            start: "09:00".parse().unwrap(),
            end: "18:00".parse().unwrap(),
            blocked: false,
        }];
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::SetAvailability(rules.clone())))
            .then_expect_events(vec![VehicleEvent::AvailabilitySet {
                rules: rules.clone(),
                at: now(),
            }]);
        VehicleTest::with(())
            .given(vec![
                registered(),
                VehicleEvent::AvailabilitySet {
                    rules: rules.clone(),
                    at: now(),
                },
            ])
            .when(cmd(host(), VehicleAction::SetAvailability(rules)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn attached_images_are_deduplicated_and_capped() {
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(
                host(),
                VehicleAction::AttachImages(vec![
                    "https://img.example/a.jpg".into(),
                    "vehicles/42/b.jpg".into(),
                ]),
            ))
            .then_expect_events(vec![VehicleEvent::VehicleImagesAttached {
                images: vec!["vehicles/42/b.jpg".into()],
                at: now(),
            }]);
        let many: Vec<String> = (0..20).map(|i| format!("vehicles/42/{i}.jpg")).collect();
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::AttachImages(many)))
            .then_expect_error(VehicleError::invalid(
                "images",
                Problem::TooMany { max: MAX_IMAGES },
            ));
    }

    #[test]
    fn a_removed_vehicle_cannot_change() {
        let removed = VehicleEvent::VehicleRemoved {
            reason: None,
            at: now(),
        };
        VehicleTest::with(())
            .given(vec![registered(), removed])
            .when(cmd(
                host(),
                VehicleAction::ChangeStatus(VehicleStatus::Inactive),
            ))
            .then_expect_error(VehicleError::Removed);
    }

    #[test]
    fn apply_tracks_state() {
        let mut vehicle = Vehicle::default();
        vehicle.apply(registered());
        vehicle.apply(VehicleEvent::VehicleStatusChanged {
            status: VehicleStatus::Inactive,
            previous: VehicleStatus::Active,
            at: now(),
        });
        vehicle.apply(VehicleEvent::VehicleRemoved {
            reason: Some("sold".into()),
            at: now(),
        });
        let state = vehicle.state.unwrap();
        assert_eq!(state.status, VehicleStatus::Inactive);
        assert!(state.removed);
    }

    fn hold(booking: u128, start: &str, end: &str) -> VehicleEvent {
        VehicleEvent::WindowReserved {
            booking_id: Uuid::from_u128(booking),
            guest_id: Uuid::from_u128(5),
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            at: now(),
        }
    }

    #[test]
    fn every_detail_of_an_update_is_applied_and_named() {
        let patch = VehiclePatch {
            license_plate: Some("34나 5678".into()),
            year: Some(2025),
            fuel_type: Some(Some(super::super::FuelType::Hybrid)),
            transmission: Some(None),
            description: Some(Some("  새 설명  ".into())),
            ..VehiclePatch::default()
        };
        let events = VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Update(patch)))
            .inspect_result()
            .unwrap();
        let [VehicleEvent::VehicleDetailsUpdated {
            details, changed, ..
        }] = events.as_slice()
        else {
            panic!("expected one details update, got {events:?}");
        };
        assert_eq!(details.license_plate.as_str(), "34나5678");
        assert_eq!(details.year, 2025);
        assert_eq!(details.fuel_type, Some(super::super::FuelType::Hybrid));
        assert_eq!(details.transmission, None);
        assert_eq!(details.description.as_deref(), Some("새 설명"));
        assert_eq!(
            changed,
            &[
                "license_plate",
                "year",
                "fuel_type",
                "transmission",
                "description"
            ]
        );
    }

    #[test]
    fn a_new_location_and_image_list_replace_the_old_ones() {
        let busan = Location {
            address: "  부산광역시 동구 중앙대로 206 ".into(),
            lat: 35.1151,
            lng: 129.0415,
        };
        let patch = VehiclePatch {
            location: Some(busan.clone()),
            images: Some(vec!["vehicles/42/new.jpg".into()]),
            ..VehiclePatch::default()
        };
        let relocated = VehicleEvent::VehicleRelocated {
            location: Location {
                address: "부산광역시 동구 중앙대로 206".into(),
                ..busan
            },
            at: now(),
        };
        let replaced = VehicleEvent::VehicleImagesReplaced {
            images: vec!["vehicles/42/new.jpg".into()],
            at: now(),
        };
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Update(patch)))
            .then_expect_events(vec![relocated.clone(), replaced.clone()]);
        let mut vehicle = Vehicle::default();
        for e in [registered(), relocated, replaced] {
            vehicle.apply(e);
        }
        let state = vehicle.state.unwrap();
        assert_eq!(state.location.address, "부산광역시 동구 중앙대로 206");
        assert_eq!(state.location.point().lat, 35.1151);
        assert_eq!(state.images, vec!["vehicles/42/new.jpg".to_string()]);
    }

    #[test]
    fn overlong_text_and_image_lists_are_refused() {
        let long_make = VehiclePatch {
            make: Some("G".repeat(MAX_NAME_CHARS + 1)),
            ..VehiclePatch::default()
        };
        match VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(host(), VehicleAction::Update(long_make)))
            .inspect_result()
        {
            Err(VehicleError::Invalid { field, problem }) => {
                assert_eq!(field, "make");
                assert!(matches!(problem, Problem::TooLong { .. }), "{problem:?}");
            }
            other => panic!("expected an invalid make, got {other:?}"),
        }
        let too_many: Vec<String> = (0..=MAX_IMAGES).map(|i| format!("v/{i}.jpg")).collect();
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(
                host(),
                VehicleAction::Update(VehiclePatch {
                    images: Some(too_many),
                    ..VehiclePatch::default()
                }),
            ))
            .then_expect_error(VehicleError::invalid(
                "images",
                Problem::TooMany { max: MAX_IMAGES },
            ));
        for bad in [
            String::new(),
            format!("vehicles/{}", "a".repeat(MAX_IMAGE_REF_CHARS)),
            "https://".into(),
            "/absolute/key.jpg".into(),
            "vehicles//a.jpg".into(),
            "vehicles/a b.jpg".into(),
        ] {
            assert!(!is_image_ref(&bad), "{bad:?} accepted");
        }
        assert!(is_image_ref("http://img.example/a.jpg"));
        assert!(is_image_ref("vehicles/42/a-b_c.jpg"));
    }

    #[test]
    fn attaching_only_known_images_records_nothing() {
        VehicleTest::with(())
            .given(vec![registered()])
            .when(cmd(
                host(),
                VehicleAction::AttachImages(vec![" https://img.example/a.jpg ".into()]),
            ))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_vehicle_with_a_trip_ahead_cannot_be_removed() {
        let ahead = hold(300, "2026-11-28T01:00:00Z", "2026-11-28T03:00:00Z");
        VehicleTest::with(())
            .given(vec![registered(), ahead.clone()])
            .when(cmd(host(), VehicleAction::Remove { reason: None }))
            .then_expect_error(VehicleError::HasBookings);
        // A trip already over does not keep it.
        let past = hold(301, "2026-11-20T01:00:00Z", "2026-11-20T03:00:00Z");
        VehicleTest::with(())
            .given(vec![registered(), past])
            .when(cmd(
                host(),
                VehicleAction::Remove {
                    reason: Some("  팔았습니다 ".into()),
                },
            ))
            .then_expect_events(vec![VehicleEvent::VehicleRemoved {
                reason: Some("팔았습니다".into()),
                at: now(),
            }]);
    }

    #[test]
    fn a_removed_vehicle_takes_no_bookings() {
        VehicleTest::with(())
            .given(vec![
                registered(),
                VehicleEvent::VehicleRemoved {
                    reason: None,
                    at: now(),
                },
            ])
            .when(cmd(
                Actor::new(Uuid::from_u128(5), Role::Guest),
                VehicleAction::Reserve {
                    booking_id: Uuid::from_u128(300),
                    window: TimeWindow {
                        start: "2026-11-28T01:00:00Z".parse().unwrap(),
                        end: "2026-11-28T03:00:00Z".parse().unwrap(),
                    },
                    buffer: chrono::Duration::zero(),
                },
            ))
            .then_expect_error(VehicleError::NotFound);
    }

    #[test]
    fn events_before_registration_are_ignored_on_replay() {
        let mut vehicle = Vehicle::default();
        vehicle.apply(VehicleEvent::VehicleStatusChanged {
            status: VehicleStatus::Inactive,
            previous: VehicleStatus::Active,
            at: now(),
        });
        assert_eq!(vehicle, Vehicle::default());
    }

    #[test]
    fn event_names_are_the_stored_ones() {
        let at = now();
        let events = [
            (registered(), "VehicleRegistered"),
            (
                VehicleEvent::VehicleDetailsUpdated {
                    details: match registered() {
                        VehicleEvent::VehicleRegistered { details, .. } => details,
                        _ => unreachable!(),
                    },
                    changed: vec![],
                    at,
                },
                "VehicleDetailsUpdated",
            ),
            (
                VehicleEvent::HourlyRateChanged {
                    hourly_rate: Won(1),
                    previous: Won(2),
                    at,
                },
                "HourlyRateChanged",
            ),
            (
                VehicleEvent::VehicleRelocated {
                    location: seoul_station(),
                    at,
                },
                "VehicleRelocated",
            ),
            (
                VehicleEvent::VehicleStatusChanged {
                    status: VehicleStatus::Inactive,
                    previous: VehicleStatus::Active,
                    at,
                },
                "VehicleStatusChanged",
            ),
            (
                VehicleEvent::AvailabilitySet { rules: vec![], at },
                "AvailabilitySet",
            ),
            (
                VehicleEvent::VehicleImagesAttached { images: vec![], at },
                "VehicleImagesAttached",
            ),
            (
                VehicleEvent::VehicleImagesReplaced { images: vec![], at },
                "VehicleImagesReplaced",
            ),
            (
                hold(300, "2026-11-28T01:00:00Z", "2026-11-28T03:00:00Z"),
                "WindowReserved",
            ),
            (
                VehicleEvent::ReservationReleased {
                    booking_id: Uuid::from_u128(300),
                    reason: "BookingCancelled".into(),
                    at,
                },
                "ReservationReleased",
            ),
            (
                VehicleEvent::VehicleRemoved { reason: None, at },
                "VehicleRemoved",
            ),
        ];
        for (event, name) in events {
            assert_eq!(event.name(), name);
            assert_eq!(cqrs_es::DomainEvent::event_type(&event), name);
            assert_eq!(
                cqrs_es::DomainEvent::event_version(&event),
                crate::vehicle::events::VEHICLE_EVENT_VERSION
            );
            assert_eq!(event.at(), at, "{name}");
            let stored = serde_json::to_value(&event).unwrap();
            assert!(stored.get(name).is_some(), "{stored}");
        }
    }

    #[test]
    fn wire_names_match_the_serialised_form() {
        use super::super::{FuelType, Transmission};
        fn serialised<T: serde::Serialize>(value: T) -> serde_json::Value {
            serde_json::to_value(value).unwrap()
        }
        for fuel in [
            FuelType::Gasoline,
            FuelType::Diesel,
            FuelType::Electric,
            FuelType::Hybrid,
        ] {
            assert_eq!(serialised(fuel), fuel.as_str());
        }
        for gearbox in [Transmission::Manual, Transmission::Automatic] {
            assert_eq!(serialised(gearbox), gearbox.as_str());
        }
        for status in [
            VehicleStatus::Active,
            VehicleStatus::Inactive,
            VehicleStatus::Maintenance,
        ] {
            assert_eq!(serialised(status), status.as_str());
        }
    }
}

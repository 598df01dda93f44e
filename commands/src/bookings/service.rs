//! The booking command service: what the API calls.

use super::updates::{BookingUpdate, UpdatePublisher};
use crate::append::{Batch, GroupCommit, DEFAULT_WRITERS};
use crate::bus::{CommandBus, CommandError, DEFAULT_MAX_ATTEMPTS};
use crate::cache::StateCache;
use crate::clock::Clock;
use crate::error::InfraError;
use crate::metrics;
use carshare_domain::booking::{
    Booking, BookingAction, BookingCommand, BookingError, BookingEvent, BookingPolicy, NewBooking,
    VehicleTerms,
};
use carshare_domain::payment::{
    Payment, PaymentAction, PaymentCommand, PaymentStatus, DEFAULT_PAYMENT_WINDOW,
};
use carshare_domain::vehicle::{Vehicle, VehicleAction, VehicleCommand, VehicleError};
use carshare_domain::{Actor, Role};
use carshare_event_store::{CommitSignal, EventMetadata, StreamCursor};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Snapshot a booking every this many events (they stay short; photos add a few).
const BOOKING_SNAPSHOT_EVERY: usize = 0;
/// Snapshot a vehicle every this many events: each booking adds a hold and a release.
const VEHICLE_SNAPSHOT_EVERY: usize = 50;
/// Vehicles whose state this process keeps after writing to them (see [`StateCache`]).
pub const VEHICLE_CACHE_CAPACITY: usize = 10_000;

/// What a booking request decided, before it is written.
struct DecidedRequest {
    booking: Booking,
    booking_events: Vec<BookingEvent>,
    vehicle_seq: usize,
    vehicle_events: Vec<carshare_domain::vehicle::VehicleEvent>,
    vehicle_after: Vehicle,
}

/// A booking request as the API receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBooking {
    /// The vehicle.
    pub vehicle_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// A note to the host.
    pub guest_message: Option<String>,
}

/// Why a booking command failed.
#[derive(Debug, thiserror::Error)]
pub enum BookingServiceError {
    /// The booking refused.
    #[error(transparent)]
    Booking(#[from] BookingError),
    /// The vehicle does not exist (or was removed).
    #[error("vehicle not found")]
    VehicleNotFound,
    /// Infrastructure.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<CommandError<BookingError>> for BookingServiceError {
    fn from(err: CommandError<BookingError>) -> Self {
        match err {
            CommandError::Rejected(e) => BookingServiceError::Booking(e),
            CommandError::Infra(e) => BookingServiceError::Infra(e),
        }
    }
}

impl From<CommandError<VehicleError>> for BookingServiceError {
    fn from(err: CommandError<VehicleError>) -> Self {
        match err {
            CommandError::Rejected(e) => vehicle_refusal(e),
            CommandError::Infra(e) => BookingServiceError::Infra(e),
        }
    }
}

/// A vehicle's refusal to hold a window, in the booking's terms.
fn vehicle_refusal(err: VehicleError) -> BookingServiceError {
    match err {
        VehicleError::NotFound | VehicleError::Removed => BookingServiceError::VehicleNotFound,
        VehicleError::OwnVehicle => BookingError::OwnVehicle.into(),
        VehicleError::WindowTaken => BookingError::WindowTaken.into(),
        VehicleError::OutsideAvailability => BookingError::OutsideAvailability.into(),
        _ => BookingError::VehicleNotBookable.into(),
    }
}

/// The outcome of an accepted booking command.
#[derive(Debug)]
pub struct BookingOutcome {
    /// The booking after the command.
    pub booking: Booking,
    /// The booking events written (empty when nothing changed).
    pub events: Vec<BookingEvent>,
    /// Stream position of the last event written.
    pub cursor: Option<StreamCursor>,
}

/// Booking use cases.
pub struct BookingService {
    commits: GroupCommit,
    bookings: CommandBus<Booking>,
    vehicles: CommandBus<Vehicle>,
    vehicle_states: StateCache<Vehicle>,
    payments: CommandBus<Payment>,
    signal: CommitSignal,
    clock: Arc<dyn Clock>,
    policy: BookingPolicy,
    updates: Option<Arc<dyn UpdatePublisher>>,
}

/// The platform itself, as the actor of vehicle commands it issues (releases on expiry).
fn platform() -> Actor {
    Actor::new(Uuid::nil(), Role::Admin)
}

impl BookingService {
    /// The service over `pool`.
    pub fn new(
        pool: PgPool,
        signal: CommitSignal,
        clock: Arc<dyn Clock>,
        policy: BookingPolicy,
    ) -> BookingService {
        BookingService {
            bookings: CommandBus::new(pool.clone(), (), signal.clone(), BOOKING_SNAPSHOT_EVERY),
            vehicles: CommandBus::new(pool.clone(), (), signal.clone(), VEHICLE_SNAPSHOT_EVERY),
            vehicle_states: StateCache::new(VEHICLE_CACHE_CAPACITY),
            payments: CommandBus::new(pool.clone(), (), signal.clone(), 0),
            commits: GroupCommit::new(pool, DEFAULT_WRITERS),
            signal,
            clock,
            policy,
            updates: None,
        }
    }

    /// Writes with up to `writers` group commits in flight (see [`GroupCommit`]).
    pub fn with_commit_writers(mut self, writers: usize) -> BookingService {
        self.commits = self.commits.with_writers(writers);
        self
    }

    /// Tells `publisher` about every change (real-time updates to the guest and the host).
    pub fn with_updates(mut self, publisher: Arc<dyn UpdatePublisher>) -> BookingService {
        self.updates = Some(publisher);
        self
    }

    fn announce(&self, outcome: &BookingOutcome) {
        let Some(publisher) = &self.updates else {
            return;
        };
        let position = outcome.cursor.map(|c| c.to_string());
        for event in &outcome.events {
            if let Some(update) = BookingUpdate::of(&outcome.booking, event, position.clone()) {
                publisher.publish(update);
            }
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> BookingPolicy {
        self.policy
    }

    /// The current time of the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The booking as it stands in the event log.
    pub async fn load(&self, booking_id: Uuid) -> Result<Booking, BookingServiceError> {
        Ok(self.bookings.load(&booking_id.to_string()).await?)
    }

    /// A guest asks for a vehicle: the booking is requested and the vehicle holds the window,
    /// together, or neither happens.
    #[tracing::instrument(name = "bookings.request", skip_all, fields(vehicle_id = %request.vehicle_id))]
    pub async fn request(
        &self,
        actor: Actor,
        request: RequestBooking,
        meta: &EventMetadata,
    ) -> Result<BookingOutcome, BookingServiceError> {
        let booking_id = Uuid::new_v4();
        let vehicle_key = request.vehicle_id.to_string();
        let booking_key = booking_id.to_string();
        self.with_retries("RequestBooking", || async {
            let at = self.clock.now();
            // Decide on the state this process last wrote when it has one; a refusal is only
            // given on a freshly loaded state (a cached one may be out of date).
            let cached = self.vehicle_states.get(&vehicle_key);
            let from_cache = cached.is_some();
            let decided = match cached {
                Some(loaded) => {
                    match self.decide_request(actor, at, booking_id, &request, loaded) {
                        Err(e @ BookingServiceError::Infra(_)) => Err(e),
                        Err(_) => {
                            self.vehicle_states.forget(&vehicle_key);
                            let loaded = self.vehicles.load_versioned(&vehicle_key).await?;
                            self.decide_request(actor, at, booking_id, &request, loaded)
                        }
                        ok => ok,
                    }
                }
                None => {
                    let loaded = self.vehicles.load_versioned(&vehicle_key).await?;
                    self.decide_request(actor, at, booking_id, &request, loaded)
                }
            };
            let decided = decided?;
            let batches = [
                Batch::new::<Booking>(
                    &booking_key,
                    0,
                    &decided.booking_events,
                    &decided.booking,
                    BOOKING_SNAPSHOT_EVERY,
                )?,
                Batch::new::<Vehicle>(
                    &vehicle_key,
                    decided.vehicle_seq,
                    &decided.vehicle_events,
                    &decided.vehicle_after,
                    VEHICLE_SNAPSHOT_EVERY,
                )?,
            ];
            let cursor = match self.commits.append(batches.into(), meta).await {
                Ok(cursor) => cursor,
                Err(e) => {
                    // A conflict means the state was out of date; any other failure leaves the
                    // outcome unknown. Either way the next attempt loads afresh.
                    self.vehicle_states.forget(&vehicle_key);
                    if from_cache && matches!(e, InfraError::Conflict) {
                        metrics::STALE_CACHE
                            .with_label_values(&[Vehicle::TYPE])
                            .inc();
                    }
                    return Err(e.into());
                }
            };
            self.vehicle_states.put(
                &vehicle_key,
                decided.vehicle_after,
                decided.vehicle_seq + decided.vehicle_events.len(),
            );
            self.signal.committed();
            Ok(BookingOutcome {
                booking: decided.booking,
                events: decided.booking_events,
                cursor,
            })
        })
        .await
    }

    /// The events of a booking request on `vehicle` (as loaded at its sequence): the booking's
    /// and the vehicle's hold of the window.
    fn decide_request(
        &self,
        actor: Actor,
        at: DateTime<Utc>,
        booking_id: Uuid,
        request: &RequestBooking,
        (vehicle, vehicle_seq): (Vehicle, usize),
    ) -> Result<DecidedRequest, BookingServiceError> {
        let state = vehicle
            .state
            .as_ref()
            .filter(|s| !s.removed)
            .ok_or(BookingServiceError::VehicleNotFound)?;
        let command = BookingCommand {
            actor: Some(actor),
            at,
            action: BookingAction::Request(NewBooking {
                booking_id,
                vehicle: VehicleTerms {
                    vehicle_id: request.vehicle_id,
                    host_id: state.owner_id,
                    hourly_rate: state.hourly_rate,
                },
                start: request.start,
                end: request.end,
                guest_message: request.guest_message.clone(),
                policy: self.policy,
            }),
        };
        let mut booking = Booking::default();
        let booking_events = booking.decide(command)?;
        let window = requested_window(&booking_events)?;
        let vehicle_events = vehicle
            .decide(VehicleCommand {
                actor,
                at,
                action: VehicleAction::Reserve {
                    booking_id,
                    window,
                    buffer: self.policy.buffer,
                },
            })
            .map_err(vehicle_refusal)?;
        let vehicle_after = applied(vehicle, &vehicle_events);
        for e in &booking_events {
            booking.apply(e.clone());
        }
        Ok(DecidedRequest {
            booking,
            booking_events,
            vehicle_seq,
            vehicle_events,
            vehicle_after,
        })
    }

    /// Any other command on an existing booking; when its event frees the car, the vehicle's
    /// release is written with it.
    #[tracing::instrument(name = "bookings.command", skip_all, fields(booking_id = %booking_id, command = action.name()))]
    pub async fn execute(
        &self,
        actor: Option<Actor>,
        booking_id: Uuid,
        action: BookingAction,
        meta: &EventMetadata,
    ) -> Result<BookingOutcome, BookingServiceError> {
        let booking_key = booking_id.to_string();
        let name = action.name();
        self.with_retries(name, || async {
            let at = self.clock.now();
            let (mut booking, booking_seq) = self.bookings.load_versioned(&booking_key).await?;
            let action = match &action {
                // Pickup needs the payment completed: the Payment aggregate says whether it is.
                BookingAction::Start { .. } => {
                    let payment = self
                        .payments
                        .load(&booking_key)
                        .await
                        .map_err(|e| match e {
                            CommandError::Rejected(e) => InfraError::Internal(Box::new(e)),
                            CommandError::Infra(e) => e,
                        })?;
                    BookingAction::Start {
                        paid: payment
                            .state
                            .is_some_and(|p| p.status == PaymentStatus::Completed),
                    }
                }
                // Only a payment past its deadline, not paid, lets the platform cancel.
                BookingAction::CancelUnpaid => {
                    let payment = self
                        .payments
                        .load(&booking_key)
                        .await
                        .map_err(|e| match e {
                            CommandError::Rejected(e) => InfraError::Internal(Box::new(e)),
                            CommandError::Infra(e) => e,
                        })?;
                    let overdue = payment.state.as_ref().is_some_and(|p| {
                        matches!(p.status, PaymentStatus::Pending | PaymentStatus::Failed)
                            && at >= p.due_at
                    });
                    if !overdue {
                        return Err(BookingError::NotDueToExpire.into());
                    }
                    BookingAction::CancelUnpaid
                }
                other => other.clone(),
            };
            let events = booking.decide(BookingCommand { actor, at, action })?;
            for e in &events {
                booking.apply(e.clone());
            }
            let mut released: Option<(String, Vehicle, usize)> = None;
            let mut batches = vec![Batch::new::<Booking>(
                &booking_key,
                booking_seq,
                &events,
                &booking,
                BOOKING_SNAPSHOT_EVERY,
            )?];
            if let (Some(release), Some(state)) = (
                events.iter().find(|e| e.releases_vehicle()),
                booking.state.as_ref(),
            ) {
                let vehicle_key = state.vehicle_id.to_string();
                let (vehicle, vehicle_seq) = self.vehicles.load_versioned(&vehicle_key).await?;
                let vehicle_events = vehicle
                    .decide(VehicleCommand {
                        actor: actor.unwrap_or_else(platform),
                        at,
                        action: VehicleAction::Release {
                            booking_id,
                            reason: release.name().to_string(),
                        },
                    })
                    .map_err(vehicle_refusal)?;
                let vehicle_after = applied(vehicle, &vehicle_events);
                batches.push(Batch::new::<Vehicle>(
                    &vehicle_key,
                    vehicle_seq,
                    &vehicle_events,
                    &vehicle_after,
                    VEHICLE_SNAPSHOT_EVERY,
                )?);
                released = Some((
                    vehicle_key,
                    vehicle_after,
                    vehicle_seq + vehicle_events.len(),
                ));
            }
            // A cancellation closes the payment in the same transaction: an unpaid one is voided
            // (nothing can be charged for a cancelled booking), a paid one gets its refund
            // decided, which Toss then carries out.
            if let Some(BookingEvent::BookingCancelled { refund_amount, .. }) = events
                .iter()
                .find(|e| matches!(e, BookingEvent::BookingCancelled { .. }))
            {
                let (payment, payment_seq) = self
                    .payments
                    .load_versioned(&booking_key)
                    .await
                    .map_err(|e| match e {
                        CommandError::Rejected(e) => InfraError::Internal(Box::new(e)),
                        CommandError::Infra(e) => e,
                    })?;
                let payment_events = payment
                    .decide(PaymentCommand {
                        actor: None,
                        at,
                        action: PaymentAction::Close {
                            refund: *refund_amount,
                            reason: "BookingCancelled".into(),
                        },
                    })
                    .map_err(|e| InfraError::Internal(Box::new(e)))?;
                let payment_after = applied(payment, &payment_events);
                batches.push(Batch::new::<Payment>(
                    &booking_key,
                    payment_seq,
                    &payment_events,
                    &payment_after,
                    0,
                )?);
            }
            // An approval makes the total due: the payment opens in the same transaction.
            if let (Some(approved), Some(state)) = (
                events
                    .iter()
                    .find(|e| matches!(e, BookingEvent::BookingApproved { .. })),
                booking.state.as_ref(),
            ) {
                let mut payment = Payment::default();
                let payment_events = payment
                    .decide(PaymentCommand {
                        actor: None,
                        at,
                        action: PaymentAction::Open {
                            booking_id,
                            guest_id: state.guest_id,
                            host_id: state.host_id,
                            amount: state.total_amount,
                            due_at: (approved.at() + DEFAULT_PAYMENT_WINDOW)
                                .min(state.window.start),
                        },
                    })
                    .map_err(|e| InfraError::Internal(Box::new(e)))?;
                for e in &payment_events {
                    payment.apply(e.clone());
                }
                batches.push(Batch::new::<Payment>(
                    &booking_key,
                    0,
                    &payment_events,
                    &payment,
                    0,
                )?);
            }
            let written = self.commits.append(batches, meta).await;
            if let Some((vehicle_key, vehicle_after, sequence)) = released {
                match &written {
                    Ok(_) => self
                        .vehicle_states
                        .put(&vehicle_key, vehicle_after, sequence),
                    Err(_) => self.vehicle_states.forget(&vehicle_key),
                }
            }
            let cursor = written?;
            if cursor.is_some() {
                self.signal.committed();
            }
            Ok(BookingOutcome {
                booking,
                events,
                cursor,
            })
        })
        .await
    }

    /// Runs `attempt` until it does not conflict, at most the bus's bound of attempts, and
    /// records the outcome in the command metrics.
    async fn with_retries<F, Fut>(
        &self,
        name: &'static str,
        mut attempt: F,
    ) -> Result<BookingOutcome, BookingServiceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<BookingOutcome, BookingServiceError>>,
    {
        let started = Instant::now();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match attempt().await {
                Err(BookingServiceError::Infra(InfraError::Conflict))
                    if tries < DEFAULT_MAX_ATTEMPTS =>
                {
                    metrics::CONFLICTS.with_label_values(&[Booking::TYPE]).inc();
                    let jitter = rand::random::<u64>() % 5;
                    tokio::time::sleep(Duration::from_millis(u64::from(tries) * 2 + jitter)).await;
                }
                other => break other,
            }
        };
        if let Ok(done) = &result {
            self.announce(done);
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(BookingServiceError::Booking(_)) | Err(BookingServiceError::VehicleNotFound) => {
                "rejected"
            }
            Err(BookingServiceError::Infra(InfraError::Conflict)) => "conflict",
            Err(BookingServiceError::Infra(InfraError::Unavailable(_))) => "unavailable",
            Err(BookingServiceError::Infra(InfraError::Internal(_))) => "error",
        };
        metrics::COMMANDS
            .with_label_values(&[Booking::TYPE, name, outcome])
            .inc();
        metrics::COMMAND_SECONDS
            .with_label_values(&[Booking::TYPE, name])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

fn applied<A: Aggregate>(mut aggregate: A, events: &[A::Event]) -> A
where
    A::Event: Clone,
{
    for e in events {
        aggregate.apply(e.clone());
    }
    aggregate
}

/// The window of a freshly decided request.
fn requested_window(
    events: &[BookingEvent],
) -> Result<carshare_domain::TimeWindow, BookingServiceError> {
    events
        .iter()
        .find_map(|e| match e {
            BookingEvent::BookingRequested { start, end, .. } => {
                Some(carshare_domain::TimeWindow {
                    start: *start,
                    end: *end,
                })
            }
            _ => None,
        })
        .ok_or_else(|| {
            InfraError::Internal("a request decided no BookingRequested event".into()).into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vehicle_refusal_reads_in_the_bookings_terms() {
        let mapped = |e: VehicleError| BookingServiceError::from(CommandError::Rejected(e));
        for gone in [VehicleError::NotFound, VehicleError::Removed] {
            assert!(matches!(mapped(gone), BookingServiceError::VehicleNotFound));
        }
        let cases = [
            (VehicleError::OwnVehicle, BookingError::OwnVehicle),
            (VehicleError::WindowTaken, BookingError::WindowTaken),
            (
                VehicleError::OutsideAvailability,
                BookingError::OutsideAvailability,
            ),
            (VehicleError::NotBookable, BookingError::VehicleNotBookable),
            (VehicleError::HasBookings, BookingError::VehicleNotBookable),
        ];
        for (vehicle, booking) in cases {
            match mapped(vehicle) {
                BookingServiceError::Booking(e) => assert_eq!(e, booking),
                other => panic!("expected {booking:?}, got {other:?}"),
            }
        }
        assert!(matches!(
            BookingServiceError::from(CommandError::<VehicleError>::Infra(InfraError::Conflict)),
            BookingServiceError::Infra(InfraError::Conflict)
        ));
    }

    #[test]
    fn a_booking_refusal_stays_a_booking_refusal() {
        assert!(matches!(
            BookingServiceError::from(CommandError::Rejected(BookingError::NotHost)),
            BookingServiceError::Booking(BookingError::NotHost)
        ));
        let infra =
            BookingServiceError::from(CommandError::<BookingError>::Infra(InfraError::Conflict));
        assert!(matches!(
            infra,
            BookingServiceError::Infra(InfraError::Conflict)
        ));
        assert_eq!(
            BookingServiceError::VehicleNotFound.to_string(),
            "vehicle not found"
        );
    }
}

//! Read models built from the ordered event stream.
//!
//! A [`Projection`] turns stream events into rows of its read tables (schema `read`). A
//! [`runner::ProjectionRunner`] applies batches and advances the projection's checkpoint in the
//! same transaction; [`rebuild::rebuild`] builds the tables afresh beside the live ones and
//! swaps them in. Queries over the read tables live beside the projection that builds them.

pub mod bookings;
pub mod consumer;
mod fold;
pub mod metrics;
pub mod notifications;
mod paging;
pub mod payments;
pub mod progress;
pub mod projection;
pub mod rebuild;
pub mod reviews;
pub mod runner;
pub mod status;
pub mod vehicles;

pub use consumer::{ConsumerSettings, KafkaProjectionWorker};
pub use progress::{ProgressBoard, Source};
pub use projection::{Poisoned, Projection, Target};
pub use runner::{ProjectionRunner, RunnerSettings};

use std::sync::Arc;

/// Every projection of the system.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(vehicles::VehicleProjection),
        Arc::new(bookings::BookingProjection),
        Arc::new(payments::PaymentProjection),
        Arc::new(payments::SettlementProjection),
        Arc::new(reviews::ReviewProjection),
        Arc::new(notifications::NotificationProjection),
    ]
}

/// A projection by name.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}

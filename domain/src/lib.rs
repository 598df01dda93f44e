//! The car-sharing domain, free of any I/O.
//!
//! Aggregates decide in `handle` and change state only in `apply` (cqrs-es 0.5). Everything here is
//! deterministic: the current time arrives inside commands, never from a clock.

pub mod account;
pub mod actor;
pub mod announcement;
pub mod booking;
pub mod geo;
pub mod money;
pub mod payment;
pub mod plate;
pub mod time;
pub mod vehicle;

pub use actor::{Actor, Role};
pub use geo::GeoPoint;
pub use money::{FeeSplit, Won};
pub use plate::LicensePlate;
pub use time::{MinuteOfDay, TimeWindow, SEOUL};

//! Booking use cases: request, answer, cancel, pickup, return, photos, and the expiry of
//! unanswered requests. Every command that takes or frees the car writes the booking's event and
//! the vehicle's hold event in one transaction ([`crate::append`]).

mod expiry;
mod service;
mod timeline;
mod updates;

pub use expiry::{ExpirySweeper, SweepReport};
pub use service::{BookingOutcome, BookingService, BookingServiceError, RequestBooking};
pub use timeline::{booking_as_of, timeline, TimelineEntry};
pub use updates::{BookingUpdate, UpdatePublisher};

//! The Booking aggregate: a guest's request to use a vehicle for a window, from request through
//! the host's answer, pickup and return, or its cancellation or expiry.
//!
//! A booking never decides alone whether the car is free: the Vehicle aggregate holds the car's
//! reserved windows, and a request commits a `BookingRequested` event together with the
//! vehicle's `WindowReserved` in one transaction (see `commands::bookings`). Every way out of a
//! holding state (reject, cancel, expiry, return) releases the window the same way.

mod aggregate;
mod commands;
mod error;
mod events;
mod review;
mod rules;

pub use aggregate::{Booking, BookingState};
pub use commands::{BookingAction, BookingCommand, NewBooking, PhotoKind, VehicleTerms};
pub use error::{BookingError, BookingProblem};
pub use events::{BookingEvent, CancelledBy, ExpiryReason, BOOKING_EVENT_VERSION};
pub use review::{
    CategoryRatings, NewReview, ReviewerRole, MAX_COMMENT_CHARS, MAX_RATING, MIN_RATING,
    REVIEW_WINDOW_DAYS,
};
pub use rules::{
    price, refund_for, BookingPolicy, BookingStatus, RefundRule, ALIGN_MINUTES, LATE_GRACE_MINUTES,
    MAX_DAYS, MIN_MINUTES, PICKUP_EARLY_MINUTES,
};

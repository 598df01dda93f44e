//! Why a booking command was refused.

use super::rules::BookingStatus;
use std::borrow::Cow;

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingProblem {
    /// The end is not after the start.
    EndNotAfterStart,
    /// The window starts in the past.
    InThePast,
    /// Shorter than the minimum.
    TooShort {
        /// Minimum minutes.
        min_minutes: i64,
    },
    /// Longer than the maximum.
    TooLong {
        /// Maximum days.
        max_days: i64,
    },
    /// Not on the 10-minute grid.
    NotAligned {
        /// The grid in minutes.
        minutes: u32,
    },
    /// Longer text than allowed.
    TextTooLong {
        /// Maximum characters.
        max: usize,
    },
    /// A number outside its range.
    OutOfRange {
        /// Lowest allowed.
        min: i64,
        /// Highest allowed.
        max: i64,
    },
    /// Too many items, or none.
    Count {
        /// Maximum number of items.
        max: usize,
    },
}

/// A refusal by the Booking aggregate (or, for a request, by the vehicle it asks for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// No booking with that id.
    #[error("booking not found")]
    NotFound,
    /// The id is already taken.
    #[error("booking already exists")]
    AlreadyExists,
    /// A field failed validation.
    #[error("invalid {field}: {problem:?}")]
    Invalid {
        /// The field.
        field: Cow<'static, str>,
        /// What is wrong.
        problem: BookingProblem,
    },
    /// Only guests book.
    #[error("only guests can book")]
    GuestRoleRequired,
    /// A host cannot book their own car.
    #[error("a host cannot book their own vehicle")]
    OwnVehicle,
    /// Only the car's host may do this.
    #[error("only the vehicle's host may do this")]
    NotHost,
    /// Only the booking's guest may do this.
    #[error("only the booking's guest may do this")]
    NotGuest,
    /// Only the booking's guest or host (or an admin) may do this.
    #[error("only the booking's guest or host may do this")]
    NotParticipant,
    /// Only the platform itself does this.
    #[error("only the platform may do this")]
    SystemOnly,
    /// The transition is not allowed from the current status.
    #[error("cannot {action} a booking that is {status}")]
    InvalidTransition {
        /// The status the booking is in.
        status: BookingStatus,
        /// What was asked, e.g. `approve`.
        action: &'static str,
    },
    /// The host's time to answer is over.
    #[error("the time to answer this request is over")]
    ResponseTimeOver,
    /// The request is not due to expire yet.
    #[error("the request is not due to expire yet")]
    NotDueToExpire,
    /// Pickup is not open yet (or is over).
    #[error("pickup is possible from 30 minutes before the start until the end")]
    OutsidePickupTime,
    /// The booking is not paid yet.
    #[error("the booking must be paid before pickup")]
    PaymentRequired,
    /// The vehicle is not taking bookings (inactive, in maintenance, removed).
    #[error("the vehicle is not available for booking")]
    VehicleNotBookable,
    /// The window lies outside the vehicle's availability rules.
    #[error("the vehicle is not available in that window")]
    OutsideAvailability,
    /// Another booking holds the car in (or too close to) that window.
    #[error("the vehicle is already booked in that window")]
    WindowTaken,
    /// Reviews open when the trip is completed.
    #[error("a booking can be reviewed once it is completed")]
    ReviewNotOpen,
    /// The review period is over.
    #[error("reviews are accepted for 14 days after the return")]
    ReviewPeriodOver,
    /// This side already reviewed the booking.
    #[error("this booking was already reviewed by you")]
    AlreadyReviewed,
    /// The photo step does not match the booking's status.
    #[error("{kind} photos are taken around the matching transition")]
    PhotosNotExpected {
        /// `pickup` or `return`.
        kind: &'static str,
    },
}

impl BookingError {
    /// A validation failure on `field`.
    pub fn invalid(field: impl Into<Cow<'static, str>>, problem: BookingProblem) -> BookingError {
        BookingError::Invalid {
            field: field.into(),
            problem,
        }
    }
}

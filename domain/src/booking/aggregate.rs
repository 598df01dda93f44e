//! Decisions of the Booking aggregate (`handle`) and its state changes (`apply`).

use super::commands::{BookingAction, BookingCommand, NewBooking, PhotoKind};
use super::error::{BookingError, BookingProblem};
use super::events::{BookingEvent, CancelledBy, ExpiryReason};
use super::review::{
    NewReview, ReviewerRole, MAX_COMMENT_CHARS, MAX_RATING, MIN_RATING, REVIEW_WINDOW_DAYS,
};
use super::rules::{
    aligned, price, refund_for, BookingStatus, ALIGN_MINUTES, LATE_GRACE_MINUTES, MAX_DAYS,
    MIN_MINUTES, PICKUP_EARLY_MINUTES,
};
use crate::actor::{Actor, Role};
use crate::money::Won;
use crate::time::TimeWindow;
use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const MAX_MESSAGE_CHARS: usize = 1_000;
/// Photos per kind and booking.
pub const MAX_PHOTOS: usize = 10;
/// Return photos are still accepted this long after the return.
const RETURN_PHOTO_GRACE: Duration = Duration::hours(1);

/// The Booking aggregate. `state` is `None` until the booking is requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    /// The booking as it stands after every applied event.
    pub state: Option<BookingState>,
}

/// Everything the aggregate knows about a booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingState {
    /// Id.
    pub id: Uuid,
    /// The vehicle.
    pub vehicle_id: Uuid,
    /// The guest.
    pub guest_id: Uuid,
    /// The car's host.
    pub host_id: Uuid,
    /// The booked window.
    pub window: TimeWindow,
    /// Rate at request time.
    pub hourly_rate: Won,
    /// What the guest pays.
    pub total_amount: Won,
    /// The platform's fee.
    pub platform_fee: Won,
    /// The host's share.
    pub host_share: Won,
    /// Status.
    pub status: BookingStatus,
    /// The guest's note.
    pub guest_message: Option<String>,
    /// The host's note.
    pub host_response: Option<String>,
    /// The host's deadline to answer.
    pub respond_by: DateTime<Utc>,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Pickup time.
    pub started_at: Option<DateTime<Utc>>,
    /// Return time.
    pub completed_at: Option<DateTime<Utc>>,
    /// Minutes late at return (0 when on time).
    pub late_minutes: Option<i64>,
    /// Who cancelled, and the refund owed.
    pub cancellation: Option<Cancellation>,
    /// Why it expired.
    pub expiry: Option<ExpiryReason>,
    /// Storage keys of the pickup photos.
    pub pickup_photos: Vec<String>,
    /// Storage keys of the return photos.
    pub return_photos: Vec<String>,
    /// Whether the guest reviewed the host.
    #[serde(default)]
    pub guest_reviewed: bool,
    /// Whether the host reviewed the guest.
    #[serde(default)]
    pub host_reviewed: bool,
}

/// A cancellation as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancellation {
    /// Who cancelled.
    pub by: CancelledBy,
    /// Why.
    pub reason: Option<String>,
    /// Refund owed to the guest.
    pub refund_amount: Won,
    /// The policy clause.
    pub refund_rule: super::rules::RefundRule,
}

impl Aggregate for Booking {
    const TYPE: &'static str = "Booking";
    type Command = BookingCommand;
    type Event = BookingEvent;
    type Error = BookingError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let BookingEvent::BookingRequested {
            booking_id,
            vehicle_id,
            guest_id,
            host_id,
            start,
            end,
            hourly_rate,
            total_amount,
            platform_fee,
            host_share,
            guest_message,
            respond_by,
            at,
        } = event
        {
            self.state = Some(BookingState {
                id: booking_id,
                vehicle_id,
                guest_id,
                host_id,
                window: TimeWindow { start, end },
                hourly_rate,
                total_amount,
                platform_fee,
                host_share,
                status: BookingStatus::Pending,
                guest_message,
                host_response: None,
                respond_by,
                requested_at: at,
                updated_at: at,
                started_at: None,
                completed_at: None,
                late_minutes: None,
                cancellation: None,
                expiry: None,
                pickup_photos: Vec::new(),
                return_photos: Vec::new(),
                guest_reviewed: false,
                host_reviewed: false,
            });
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        if let BookingEvent::ReviewSubmitted { reviewer_role, .. } = event {
            // A review is about the trip, not a change of the booking itself.
            match reviewer_role {
                ReviewerRole::Guest => state.guest_reviewed = true,
                ReviewerRole::Host => state.host_reviewed = true,
            }
            return;
        }
        state.updated_at = event.at();
        match event {
            BookingEvent::BookingRequested { .. } | BookingEvent::ReviewSubmitted { .. } => {}
            BookingEvent::BookingApproved { host_response, .. } => {
                state.status = BookingStatus::Approved;
                state.host_response = host_response;
            }
            BookingEvent::BookingRejected { host_response, .. } => {
                state.status = BookingStatus::Rejected;
                state.host_response = host_response;
            }
            BookingEvent::BookingCancelled {
                by,
                reason,
                refund_rule,
                refund_amount,
                ..
            } => {
                state.status = BookingStatus::Cancelled;
                state.cancellation = Some(Cancellation {
                    by,
                    reason,
                    refund_amount,
                    refund_rule,
                });
            }
            BookingEvent::BookingExpired { reason, .. } => {
                state.status = BookingStatus::Expired;
                state.expiry = Some(reason);
            }
            BookingEvent::BookingStarted { at } => {
                state.status = BookingStatus::Active;
                state.started_at = Some(at);
            }
            BookingEvent::BookingCompleted { late_minutes, at } => {
                state.status = BookingStatus::Completed;
                state.completed_at = Some(at);
                state.late_minutes = Some(late_minutes);
            }
            BookingEvent::BookingPhotosAdded { kind, keys, .. } => {
                let list = match kind {
                    PhotoKind::Pickup => &mut state.pickup_photos,
                    PhotoKind::Return => &mut state.return_photos,
                };
                for key in keys {
                    if !list.contains(&key) {
                        list.push(key);
                    }
                }
            }
        }
    }
}

impl Booking {
    /// The events a command produces, or why it is refused. Pure: no I/O, no clock.
    pub fn decide(&self, command: BookingCommand) -> Result<Vec<BookingEvent>, BookingError> {
        let BookingCommand { actor, at, action } = command;
        if let BookingAction::Request(new) = action {
            if self.state.is_some() {
                return Err(BookingError::AlreadyExists);
            }
            let actor = actor.ok_or(BookingError::GuestRoleRequired)?;
            return request(actor, at, new);
        }
        let state = self.state.as_ref().ok_or(BookingError::NotFound)?;
        match action {
            BookingAction::Request(_) => Err(BookingError::AlreadyExists),
            BookingAction::Approve { host_response } => {
                state.answer(actor, at, host_response, true)
            }
            BookingAction::Reject { host_response } => {
                state.answer(actor, at, host_response, false)
            }
            BookingAction::Cancel { reason } => state.cancel(actor, at, reason),
            BookingAction::Expire => state.expire(actor, at),
            BookingAction::CancelUnpaid => state.cancel_unpaid(actor, at),
            BookingAction::Start { paid } => state.start(actor, at, paid),
            BookingAction::Complete => state.complete(actor, at),
            BookingAction::AddPhotos { kind, keys } => state.add_photos(actor, at, kind, keys),
            BookingAction::Review(review) => state.review(actor, at, review),
        }
    }
}

fn request(
    actor: Actor,
    at: DateTime<Utc>,
    new: NewBooking,
) -> Result<Vec<BookingEvent>, BookingError> {
    if actor.role != Role::Guest {
        return Err(BookingError::GuestRoleRequired);
    }
    if actor.user_id == new.vehicle.host_id {
        return Err(BookingError::OwnVehicle);
    }
    let window = booking_window(new.start, new.end, at)?;
    let split = price(new.vehicle.hourly_rate, &window).ok_or_else(|| {
        BookingError::invalid(
            "end_datetime",
            BookingProblem::TooLong { max_days: MAX_DAYS },
        )
    })?;
    let guest_message = text("guest_message", new.guest_message)?;
    let respond_by = (at + new.policy.response_time).min(window.start);
    Ok(vec![BookingEvent::BookingRequested {
        booking_id: new.booking_id,
        vehicle_id: new.vehicle.vehicle_id,
        guest_id: actor.user_id,
        host_id: new.vehicle.host_id,
        start: window.start,
        end: window.end,
        hourly_rate: new.vehicle.hourly_rate,
        total_amount: split.total,
        platform_fee: split.platform_fee,
        host_share: split.host_share,
        guest_message,
        respond_by,
        at,
    }])
}

/// Checks a requested window: in the future, start before end, 1 hour to 30 days, on the
/// 10-minute grid.
pub fn booking_window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<TimeWindow, BookingError> {
    if end <= start {
        return Err(BookingError::invalid(
            "end_datetime",
            BookingProblem::EndNotAfterStart,
        ));
    }
    for (field, instant) in [("start_datetime", start), ("end_datetime", end)] {
        if !aligned(instant) {
            return Err(BookingError::invalid(
                field,
                BookingProblem::NotAligned {
                    minutes: ALIGN_MINUTES,
                },
            ));
        }
    }
    if start <= now {
        return Err(BookingError::invalid(
            "start_datetime",
            BookingProblem::InThePast,
        ));
    }
    let minutes = (end - start).num_minutes();
    if minutes < MIN_MINUTES {
        return Err(BookingError::invalid(
            "end_datetime",
            BookingProblem::TooShort {
                min_minutes: MIN_MINUTES,
            },
        ));
    }
    if end - start > Duration::days(MAX_DAYS) {
        return Err(BookingError::invalid(
            "end_datetime",
            BookingProblem::TooLong { max_days: MAX_DAYS },
        ));
    }
    Ok(TimeWindow { start, end })
}

fn text(field: &'static str, value: Option<String>) -> Result<Option<String>, BookingError> {
    text_up_to(field, value, MAX_MESSAGE_CHARS)
}

fn text_up_to(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, BookingError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > max {
        return Err(BookingError::invalid(
            field,
            BookingProblem::TextTooLong { max },
        ));
    }
    Ok(Some(trimmed.to_string()))
}

fn rating(field: &'static str, value: i32) -> Result<i32, BookingError> {
    if (MIN_RATING..=MAX_RATING).contains(&value) {
        Ok(value)
    } else {
        Err(BookingError::invalid(
            field,
            BookingProblem::OutOfRange {
                min: MIN_RATING.into(),
                max: MAX_RATING.into(),
            },
        ))
    }
}

impl BookingState {
    fn refuse(&self, action: &'static str) -> BookingError {
        BookingError::InvalidTransition {
            status: self.status,
            action,
        }
    }

    fn answer(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
        host_response: Option<String>,
        approve: bool,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        let actor = actor.ok_or(BookingError::NotHost)?;
        if actor.user_id != self.host_id {
            return Err(BookingError::NotHost);
        }
        if self.status != BookingStatus::Pending {
            return Err(self.refuse(if approve { "approve" } else { "reject" }));
        }
        if at >= self.respond_by {
            return Err(BookingError::ResponseTimeOver);
        }
        let host_response = text("host_response", host_response)?;
        Ok(vec![if approve {
            BookingEvent::BookingApproved { host_response, at }
        } else {
            BookingEvent::BookingRejected { host_response, at }
        }])
    }

    fn cancel(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        let actor = actor.ok_or(BookingError::NotParticipant)?;
        let by = if actor.user_id == self.guest_id {
            CancelledBy::Guest
        } else if actor.user_id == self.host_id {
            CancelledBy::Host
        } else if actor.is_admin() {
            CancelledBy::Admin
        } else {
            return Err(BookingError::NotParticipant);
        };
        if !matches!(
            self.status,
            BookingStatus::Pending | BookingStatus::Approved
        ) {
            return Err(self.refuse("cancel"));
        }
        let reason = text("reason", reason)?;
        let (refund_rule, refund_amount) = refund_for(
            self.total_amount,
            &self.window,
            self.requested_at,
            at,
            by != CancelledBy::Guest,
        );
        Ok(vec![BookingEvent::BookingCancelled {
            by,
            reason,
            refund_rule,
            refund_amount,
            at,
        }])
    }

    fn cancel_unpaid(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        if actor.is_some() {
            return Err(BookingError::SystemOnly);
        }
        if self.status != BookingStatus::Approved {
            return Err(self.refuse("cancel"));
        }
        Ok(vec![BookingEvent::BookingCancelled {
            by: CancelledBy::Platform,
            reason: Some("payment_overdue".into()),
            refund_rule: super::rules::RefundRule::NotPaid,
            refund_amount: Won::ZERO,
            at,
        }])
    }

    fn expire(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        if actor.is_some() {
            return Err(BookingError::SystemOnly);
        }
        if self.status != BookingStatus::Pending {
            return Err(self.refuse("expire"));
        }
        if at < self.respond_by {
            return Err(BookingError::NotDueToExpire);
        }
        let reason = if self.respond_by >= self.window.start {
            ExpiryReason::StartReached
        } else {
            ExpiryReason::HostDidNotRespond
        };
        Ok(vec![BookingEvent::BookingExpired { reason, at }])
    }

    fn start(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
        paid: bool,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        let actor = actor.ok_or(BookingError::NotGuest)?;
        if actor.user_id != self.guest_id {
            return Err(BookingError::NotGuest);
        }
        if self.status != BookingStatus::Approved {
            return Err(self.refuse("start"));
        }
        if at < self.window.start - Duration::minutes(PICKUP_EARLY_MINUTES) || at >= self.window.end
        {
            return Err(BookingError::OutsidePickupTime);
        }
        if !paid {
            return Err(BookingError::PaymentRequired);
        }
        Ok(vec![BookingEvent::BookingStarted { at }])
    }

    fn complete(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        let actor = actor.ok_or(BookingError::NotParticipant)?;
        if actor.user_id != self.guest_id && actor.user_id != self.host_id {
            return Err(BookingError::NotParticipant);
        }
        if self.status != BookingStatus::Active {
            return Err(self.refuse("complete"));
        }
        let late = at - self.window.end;
        let late_minutes = if late > Duration::minutes(LATE_GRACE_MINUTES) {
            late.num_minutes()
        } else {
            0
        };
        Ok(vec![BookingEvent::BookingCompleted { late_minutes, at }])
    }

    fn add_photos(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
        kind: PhotoKind,
        keys: Vec<String>,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        let actor = actor.ok_or(BookingError::NotParticipant)?;
        if actor.user_id != self.guest_id && actor.user_id != self.host_id {
            return Err(BookingError::NotParticipant);
        }
        let expected = match kind {
            PhotoKind::Pickup => match self.status {
                BookingStatus::Approved => {
                    at >= self.window.start - Duration::minutes(PICKUP_EARLY_MINUTES)
                }
                BookingStatus::Active => true,
                _ => false,
            },
            PhotoKind::Return => match self.status {
                BookingStatus::Active => true,
                BookingStatus::Completed => self
                    .completed_at
                    .is_some_and(|done| at <= done + RETURN_PHOTO_GRACE),
                _ => false,
            },
        };
        if !expected {
            return Err(BookingError::PhotosNotExpected {
                kind: kind.as_str(),
            });
        }
        let existing = match kind {
            PhotoKind::Pickup => &self.pickup_photos,
            PhotoKind::Return => &self.return_photos,
        };
        let fresh: Vec<String> = keys.into_iter().filter(|k| !existing.contains(k)).collect();
        if fresh.is_empty() || existing.len() + fresh.len() > MAX_PHOTOS {
            return Err(BookingError::invalid(
                "files",
                BookingProblem::Count { max: MAX_PHOTOS },
            ));
        }
        Ok(vec![BookingEvent::BookingPhotosAdded {
            kind,
            keys: fresh,
            by: actor.user_id,
            at,
        }])
    }
}

impl BookingState {
    fn review(
        &self,
        actor: Option<Actor>,
        at: DateTime<Utc>,
        review: NewReview,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        let actor = actor.ok_or(BookingError::NotParticipant)?;
        let (reviewer_role, reviewee_id, done) = if actor.user_id == self.guest_id {
            (ReviewerRole::Guest, self.host_id, self.guest_reviewed)
        } else if actor.user_id == self.host_id {
            (ReviewerRole::Host, self.guest_id, self.host_reviewed)
        } else {
            return Err(BookingError::NotParticipant);
        };
        let overall = rating("rating", review.rating)?;
        for (field, value) in review.category_ratings.fields() {
            if let Some(value) = value {
                rating(field, value)?;
            }
        }
        let comment = text_up_to("comment", review.comment, MAX_COMMENT_CHARS)?;
        let completed_at = match (self.status, self.completed_at) {
            (BookingStatus::Completed, Some(at)) => at,
            _ => return Err(BookingError::ReviewNotOpen),
        };
        if done {
            return Err(BookingError::AlreadyReviewed);
        }
        if at > completed_at + Duration::days(REVIEW_WINDOW_DAYS) {
            return Err(BookingError::ReviewPeriodOver);
        }
        Ok(vec![BookingEvent::ReviewSubmitted {
            review_id: review.review_id,
            reviewer_id: actor.user_id,
            reviewer_role,
            reviewee_id,
            vehicle_id: self.vehicle_id,
            rating: overall,
            category_ratings: review.category_ratings,
            comment,
            is_recommended: review.is_recommended,
            at,
        }])
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

//! A row of `read.bookings` and how events change it.

use crate::fold::{decode, AggregateRow, JsonRow};
use carshare_domain::booking::{BookingEvent, BookingStatus, PhotoKind, ReviewerRole};
use carshare_event_store::StoredEvent;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

/// A booking as the read side knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct BookingRow {
    /// Id.
    pub id: Uuid,
    /// The vehicle.
    pub vehicle_id: Uuid,
    /// The guest.
    pub guest_id: Uuid,
    /// The car's host.
    pub host_id: Uuid,
    /// Start.
    pub start_datetime: DateTime<Utc>,
    /// End (exclusive).
    pub end_datetime: DateTime<Utc>,
    /// Rate at request time.
    pub hourly_rate: i64,
    /// What the guest pays.
    pub total_amount: i64,
    /// Platform fee.
    pub platform_fee: i64,
    /// Host share.
    pub host_share: i64,
    /// Status (wire name).
    pub status: String,
    /// The guest's note.
    pub guest_message: Option<String>,
    /// The host's note.
    pub host_response: Option<String>,
    /// The host's deadline.
    pub respond_by: DateTime<Utc>,
    /// Pickup photo keys.
    pub pickup_photos: Json<Vec<String>>,
    /// Return photo keys.
    pub return_photos: Json<Vec<String>>,
    /// `guest`, `host` or `admin`.
    pub cancelled_by: Option<String>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// The refund policy clause.
    pub refund_rule: Option<String>,
    /// Refund owed.
    pub refund_amount: Option<i64>,
    /// Why it expired.
    pub expiry_reason: Option<String>,
    /// Pickup time.
    pub started_at: Option<DateTime<Utc>>,
    /// Return time.
    pub completed_at: Option<DateTime<Utc>>,
    /// Minutes late at return.
    pub late_minutes: Option<i64>,
    /// When the guest reviewed the host.
    pub guest_reviewed_at: Option<DateTime<Utc>>,
    /// When the host reviewed the guest.
    pub host_reviewed_at: Option<DateTime<Utc>>,
    /// Request time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last event applied.
    pub last_sequence: i64,
    /// Position of that event.
    pub last_position: i64,
}

/// Columns read back by the projection and the queries.
pub(crate) const COLUMNS: &str = "id, vehicle_id, guest_id, host_id, start_datetime, \
    end_datetime, hourly_rate, total_amount, platform_fee, host_share, status, guest_message, \
    host_response, respond_by, pickup_photos, return_photos, cancelled_by, cancel_reason, \
    refund_rule, refund_amount, expiry_reason, started_at, completed_at, late_minutes, \
    guest_reviewed_at, host_reviewed_at, created_at, updated_at, last_sequence, last_position";

fn snake<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

impl JsonRow for BookingRow {
    fn id(&self) -> Uuid {
        self.id
    }
}

impl AggregateRow for BookingRow {
    fn last_sequence(&self) -> i64 {
        self.last_sequence
    }

    fn create(id: Uuid, stored: &StoredEvent) -> Result<Self, String> {
        match decode::<BookingEvent>(stored)? {
            BookingEvent::BookingRequested {
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
                ..
            } => Ok(BookingRow {
                id,
                vehicle_id,
                guest_id,
                host_id,
                start_datetime: start,
                end_datetime: end,
                hourly_rate: hourly_rate.amount(),
                total_amount: total_amount.amount(),
                platform_fee: platform_fee.amount(),
                host_share: host_share.amount(),
                status: BookingStatus::Pending.as_str().into(),
                guest_message,
                host_response: None,
                respond_by,
                pickup_photos: Json(Vec::new()),
                return_photos: Json(Vec::new()),
                cancelled_by: None,
                cancel_reason: None,
                refund_rule: None,
                refund_amount: None,
                expiry_reason: None,
                started_at: None,
                completed_at: None,
                late_minutes: None,
                guest_reviewed_at: None,
                host_reviewed_at: None,
                created_at: at,
                updated_at: at,
                last_sequence: stored.sequence,
                last_position: stored.position,
            }),
            other => Err(format!(
                "{} before BookingRequested (sequence {})",
                other.name(),
                stored.sequence
            )),
        }
    }

    fn apply(&mut self, stored: &StoredEvent) -> Result<(), String> {
        let event: BookingEvent = decode(stored)?;
        if !matches!(event, BookingEvent::ReviewSubmitted { .. }) {
            self.updated_at = event.at();
        }
        match event {
            BookingEvent::BookingRequested { .. } => {
                return Err("BookingRequested for a booking already requested".into())
            }
            BookingEvent::BookingApproved { host_response, .. } => {
                self.status = BookingStatus::Approved.as_str().into();
                self.host_response = host_response;
            }
            BookingEvent::BookingRejected { host_response, .. } => {
                self.status = BookingStatus::Rejected.as_str().into();
                self.host_response = host_response;
            }
            BookingEvent::BookingCancelled {
                by,
                reason,
                refund_rule,
                refund_amount,
                ..
            } => {
                self.status = BookingStatus::Cancelled.as_str().into();
                self.cancelled_by = Some(by.as_str().into());
                self.cancel_reason = reason;
                self.refund_rule = snake(&refund_rule);
                self.refund_amount = Some(refund_amount.amount());
            }
            BookingEvent::BookingExpired { reason, .. } => {
                self.status = BookingStatus::Expired.as_str().into();
                self.expiry_reason = Some(reason.as_str().into());
            }
            BookingEvent::BookingStarted { at } => {
                self.status = BookingStatus::Active.as_str().into();
                self.started_at = Some(at);
            }
            BookingEvent::BookingCompleted { late_minutes, at } => {
                self.status = BookingStatus::Completed.as_str().into();
                self.completed_at = Some(at);
                self.late_minutes = Some(late_minutes);
            }
            BookingEvent::BookingPhotosAdded { kind, keys, .. } => {
                let list = match kind {
                    PhotoKind::Pickup => &mut self.pickup_photos.0,
                    PhotoKind::Return => &mut self.return_photos.0,
                };
                for key in keys {
                    if !list.contains(&key) {
                        list.push(key);
                    }
                }
            }
            BookingEvent::ReviewSubmitted {
                reviewer_role, at, ..
            } => match reviewer_role {
                ReviewerRole::Guest => self.guest_reviewed_at = Some(at),
                ReviewerRole::Host => self.host_reviewed_at = Some(at),
            },
        }
        self.last_sequence = stored.sequence;
        self.last_position = stored.position;
        Ok(())
    }
}

//! Request and response bodies of the booking routes (the seed's `Booking` and `BookingCreate`
//! shapes, plus what the platform adds).

use carshare_domain::booking::{BookingState, BookingStatus};
use carshare_projections::bookings::BookingRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A booking request (seed: `BookingCreate`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingCreate {
    /// The vehicle.
    pub vehicle_id: Uuid,
    /// Start (RFC 3339, any offset; on the 10-minute grid, in the future).
    pub start_datetime: DateTime<Utc>,
    /// End (exclusive; 1 hour to 30 days after the start, on the 10-minute grid).
    pub end_datetime: DateTime<Utc>,
    /// A note to the host (at most 1,000 characters).
    pub guest_message: Option<String>,
}

/// The host's answer.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostAnswer {
    /// A note to the guest (at most 1,000 characters).
    pub host_response: Option<String>,
}

/// A cancellation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why (at most 1,000 characters).
    pub reason: Option<String>,
}

/// Status, as in the seed plus `expired` (a request the host did not answer in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatusWire {
    /// Waiting for the host.
    Pending,
    /// Accepted by the host.
    Approved,
    /// Refused by the host.
    Rejected,
    /// Under way.
    Active,
    /// Returned.
    Completed,
    /// Cancelled.
    Cancelled,
    /// Not answered in time.
    Expired,
}

impl From<BookingStatusWire> for BookingStatus {
    fn from(s: BookingStatusWire) -> Self {
        match s {
            BookingStatusWire::Pending => BookingStatus::Pending,
            BookingStatusWire::Approved => BookingStatus::Approved,
            BookingStatusWire::Rejected => BookingStatus::Rejected,
            BookingStatusWire::Active => BookingStatus::Active,
            BookingStatusWire::Completed => BookingStatus::Completed,
            BookingStatusWire::Cancelled => BookingStatus::Cancelled,
            BookingStatusWire::Expired => BookingStatus::Expired,
        }
    }
}

/// Whose bookings to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListRoleWire {
    /// Bookings you made.
    Guest,
    /// Bookings of your cars.
    Host,
}

/// Parameters of `GET /v1/bookings`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookingListParams {
    /// Only this status.
    pub status: Option<BookingStatusWire>,
    /// `guest` (bookings you made) or `host` (bookings of your cars); default: your role.
    pub role: Option<ListRoleWire>,
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

/// Parameters of `GET /v1/bookings/{id}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookingReadParams {
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
    /// The booking as it was at this instant (RFC 3339), replayed from the event log.
    pub as_of: Option<DateTime<Utc>>,
}

/// How a cancelled booking was cancelled.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancellationResponse {
    /// `guest`, `host` or `admin`.
    pub by: String,
    /// Why.
    pub reason: Option<String>,
    /// The policy clause: `at_least_24_hours_before`, `within_an_hour_of_booking`,
    /// `less_than_24_hours_before`, `after_start` or `host_cancelled`.
    pub refund_rule: String,
    /// Won refunded of the total (paid back by payments).
    pub refund_amount: i64,
}

/// A booking (seed: `Booking`; the vehicle and guest are given by id).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingResponse {
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
    /// The vehicle's hourly rate when requested (won).
    pub hourly_rate: i64,
    /// What the guest pays (won).
    pub total_amount: i64,
    /// The platform's 15% (won, rounded down).
    pub platform_fee: i64,
    /// What the host receives (won): total − fee.
    pub host_amount: i64,
    /// Status.
    pub status: String,
    /// The guest's note.
    pub guest_message: Option<String>,
    /// The host's note.
    pub host_response: Option<String>,
    /// The host must answer before this instant, or the request expires.
    pub respond_by: DateTime<Utc>,
    /// Storage keys of the pickup photos.
    pub pickup_photos: Vec<String>,
    /// Storage keys of the return photos.
    pub return_photos: Vec<String>,
    /// Set when cancelled.
    pub cancellation: Option<CancellationResponse>,
    /// Set when expired: `host_did_not_respond` or `start_reached`.
    pub expiry_reason: Option<String>,
    /// Pickup time.
    pub started_at: Option<DateTime<Utc>>,
    /// Return time.
    pub completed_at: Option<DateTime<Utc>>,
    /// Minutes late at return (0 when within the 15-minute grace).
    pub late_minutes: Option<i64>,
    /// Whether the guest has reviewed the host (reviews open for 14 days after the return).
    pub guest_reviewed: bool,
    /// Whether the host has reviewed the guest.
    pub host_reviewed: bool,
    /// Request time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The payment due once approved (`null` before approval; in lists it comes from the
    /// payments read model, so it may trail a just-made change by a moment).
    pub payment: Option<crate::routes::payments::PaymentResponse>,
}

fn snake<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl From<&BookingState> for BookingResponse {
    fn from(s: &BookingState) -> Self {
        BookingResponse {
            id: s.id,
            vehicle_id: s.vehicle_id,
            guest_id: s.guest_id,
            host_id: s.host_id,
            start_datetime: s.window.start,
            end_datetime: s.window.end,
            hourly_rate: s.hourly_rate.amount(),
            total_amount: s.total_amount.amount(),
            platform_fee: s.platform_fee.amount(),
            host_amount: s.host_share.amount(),
            status: s.status.as_str().to_string(),
            guest_message: s.guest_message.clone(),
            host_response: s.host_response.clone(),
            respond_by: s.respond_by,
            pickup_photos: s.pickup_photos.clone(),
            return_photos: s.return_photos.clone(),
            cancellation: s.cancellation.as_ref().map(|c| CancellationResponse {
                by: c.by.as_str().to_string(),
                reason: c.reason.clone(),
                refund_rule: snake(&c.refund_rule),
                refund_amount: c.refund_amount.amount(),
            }),
            expiry_reason: s.expiry.map(|e| e.as_str().to_string()),
            started_at: s.started_at,
            completed_at: s.completed_at,
            late_minutes: s.late_minutes,
            guest_reviewed: s.guest_reviewed,
            host_reviewed: s.host_reviewed,
            created_at: s.requested_at,
            updated_at: s.updated_at,
            payment: None,
        }
    }
}

impl From<&BookingRow> for BookingResponse {
    fn from(r: &BookingRow) -> Self {
        let cancellation = match (&r.cancelled_by, &r.refund_rule, r.refund_amount) {
            (Some(by), Some(rule), Some(amount)) => Some(CancellationResponse {
                by: by.clone(),
                reason: r.cancel_reason.clone(),
                refund_rule: rule.clone(),
                refund_amount: amount,
            }),
            _ => None,
        };
        BookingResponse {
            id: r.id,
            vehicle_id: r.vehicle_id,
            guest_id: r.guest_id,
            host_id: r.host_id,
            start_datetime: r.start_datetime,
            end_datetime: r.end_datetime,
            hourly_rate: r.hourly_rate,
            total_amount: r.total_amount,
            platform_fee: r.platform_fee,
            host_amount: r.host_share,
            status: r.status.clone(),
            guest_message: r.guest_message.clone(),
            host_response: r.host_response.clone(),
            respond_by: r.respond_by,
            pickup_photos: r.pickup_photos.0.clone(),
            return_photos: r.return_photos.0.clone(),
            cancellation,
            expiry_reason: r.expiry_reason.clone(),
            started_at: r.started_at,
            completed_at: r.completed_at,
            late_minutes: r.late_minutes,
            guest_reviewed: r.guest_reviewed_at.is_some(),
            host_reviewed: r.host_reviewed_at.is_some(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            payment: None,
        }
    }
}

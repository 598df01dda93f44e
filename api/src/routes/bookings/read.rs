//! Booking reads: one booking, and the caller's list.

use super::dto::{BookingListParams, BookingReadParams, BookingResponse, ListRoleWire};
use super::READ_MODELS;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::ValidQuery;
use crate::routes::{await_position, page_size, NEXT_CURSOR};
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use carshare_commands::bookings::{booking_as_of, timeline as log_timeline, TimelineEntry};
use carshare_domain::Role;
use carshare_event_store::StreamReader;
use carshare_projections::bookings::{self, BookingCursor, BookingListQuery, ListRole};
use uuid::Uuid;

/// The caller's bookings, newest first: as guest (bookings made) or as host (bookings of their
/// cars; the default for hosts). The next page's cursor is in `X-Next-Cursor`.
#[utoipa::path(
    tag = "bookings",
    params(BookingListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<BookingResponse>,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/bookings")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    params: ValidQuery<BookingListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.0;
    let role = match p.role {
        Some(ListRoleWire::Guest) => ListRole::Guest,
        Some(ListRoleWire::Host) => ListRole::Host,
        None if user.role == Role::Host => ListRole::Host,
        None => ListRole::Guest,
    };
    let after = crate::routes::parse_cursor(p.cursor.as_deref(), BookingCursor::decode)?;
    let query = BookingListQuery {
        user_id: user.id,
        role,
        status: p.status.map(Into::into),
        after,
        limit: page_size(p.limit)?,
    };
    let mut response = HttpResponse::Ok();
    await_position(
        &state,
        READ_MODELS,
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let (rows, next) = bookings::list(&state.pool, &query).await?;
    if let Some(next) = next {
        response.insert_header((NEXT_CURSOR, next.encode()));
    }
    // Each booking's payment from the payments read model (one query for the page).
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let payments: std::collections::HashMap<Uuid, crate::routes::payments::PaymentResponse> =
        carshare_projections::payments::by_ids(&state.pool, &ids)
            .await?
            .iter()
            .map(|p| (p.id, crate::routes::payments::PaymentResponse::from(p)))
            .collect();
    let body: Vec<BookingResponse> = rows
        .iter()
        .map(|r| {
            let mut booking = BookingResponse::from(r);
            booking.payment = payments.get(&r.id).cloned();
            booking
        })
        .collect();
    Ok(response.json(body))
}

/// One booking, for its guest, its host and admins (anyone else gets 404, so booking ids
/// reveal nothing). With `as_of`, the booking as it stood at that instant, replayed from the
/// event log (404 if it did not exist yet).
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id"), BookingReadParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/bookings/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    params: ValidQuery<BookingReadParams>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let params = params.0;
    let may_see =
        |guest: Uuid, host: Uuid| guest == user.id || host == user.id || user.role == Role::Admin;
    if let Some(as_of) = params.as_of {
        let reader = StreamReader::new(state.pool.clone());
        let booking = booking_as_of(&reader, id, as_of).await?;
        let body = booking
            .as_ref()
            .and_then(|b| b.state.as_ref())
            .filter(|s| may_see(s.guest_id, s.host_id))
            .map(BookingResponse::from)
            .ok_or_else(|| ApiError::new(ErrorCode::BOOKING001))?;
        return Ok(HttpResponse::Ok().json(body));
    }
    let mut response = HttpResponse::Ok();
    let fresh = await_position(
        &state,
        READ_MODELS,
        params.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let row = bookings::get(&state.pool, id)
        .await?
        .filter(|r| may_see(r.guest_id, r.host_id))
        .ok_or_else(|| fresh.error(ApiError::new(ErrorCode::BOOKING001)))?;
    let body = super::with_payment(&state, BookingResponse::from(&row)).await?;
    Ok(response.json(body))
}

/// Everything that happened to a booking, from the event log: its own events and its car's
/// reservation and release, in order, each with time, actor, correlation id and a readable
/// summary. For the booking's guest and host and for admins (support).
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Object>),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/bookings/{id}/timeline")]
pub async fn timeline(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let reader = StreamReader::new(state.pool.clone());
    let entries: Vec<TimelineEntry> = log_timeline(&reader, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::BOOKING001))?;
    let allowed = user.role == Role::Admin
        || entries.iter().any(|e| {
            e.event_type == "BookingRequested"
                && [
                    &e.payload["BookingRequested"]["guest_id"],
                    &e.payload["BookingRequested"]["host_id"],
                ]
                .iter()
                .any(|v| v.as_str() == Some(user.id.to_string().as_str()))
        });
    if !allowed {
        return Err(ApiError::new(ErrorCode::BOOKING001));
    }
    Ok(HttpResponse::Ok().json(entries))
}

//! Booking commands: request, answer, cancel, pickup, return.

use super::dto::{BookingCreate, BookingResponse, CancelRequest, HostAnswer};
use super::READ_MODELS;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::{OptionalJson, ValidJson};
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{post, put, web, HttpRequest, HttpResponse};
use carshare_commands::bookings::{BookingOutcome, RequestBooking};
use carshare_domain::booking::{BookingAction, BookingCommand, PhotoKind};
use uuid::Uuid;

/// Answers a command with the booking after it.
async fn respond(
    state: &AppState,
    done: BookingOutcome,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let booking = done
        .booking
        .state
        .as_ref()
        .map(BookingResponse::from)
        .ok_or_else(|| ApiError::new(ErrorCode::BOOKING001))?;
    let booking = super::with_payment(state, booking).await?;
    let mut response = HttpResponse::build(status);
    if status == StatusCode::CREATED {
        response.insert_header(("Location", format!("/v1/bookings/{}", booking.id)));
    }
    settle_command(state, READ_MODELS, done.cursor, &mut response).await;
    Ok(response.json(booking))
}

async fn transition(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    action: BookingAction,
) -> Result<HttpResponse, ApiError> {
    let meta = command_metadata(req, user, action.name())?;
    let done = state
        .bookings
        .execute(Some(user.actor()), id, action, &meta)
        .await?;
    respond(state, done, StatusCode::OK).await
}

/// A guest asks for a vehicle for a window. The window must lie in the future, on the
/// 10-minute grid, 1 hour to 30 days long, inside the vehicle's availability (Asia/Seoul) and
/// at least the buffer away from every booking holding the car. The price is fixed now:
/// `hourly_rate × minutes / 60`, rounded down; the fee is 15% of it, rounded down.
#[utoipa::path(
    tag = "bookings",
    request_body = BookingCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Requested (pending)", body = BookingResponse,
         headers(("Location" = String, description = "The booking's URL"),
                 ("X-Stream-Position" = String, description = "Pass as min_position to read this write"))),
        (status = 400, description = "Malformed JSON", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not a guest, or the guest's own car", body = ErrorResponse),
        (status = 404, description = "No such vehicle", body = ErrorResponse),
        (status = 409, description = "Already booked, not bookable, or outside availability", body = ErrorResponse),
        (status = 422, description = "Invalid window or message", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/bookings")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<BookingCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let meta = command_metadata(&req, &user, "RequestBooking")?;
    let done = state
        .bookings
        .request(
            user.actor(),
            RequestBooking {
                vehicle_id: body.vehicle_id,
                start: body.start_datetime,
                end: body.end_datetime,
                guest_message: body.guest_message,
            },
            &meta,
        )
        .await?;
    respond(&state, done, StatusCode::CREATED).await
}

/// The car's host accepts a pending request (before its `respond_by`).
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    request_body(content = Option<HostAnswer>, description = "Optional note to the guest"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the car's host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Not pending, or the answer time is over", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/bookings/{id}/approve")]
pub async fn approve(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: OptionalJson<HostAnswer>,
) -> Result<HttpResponse, ApiError> {
    let host_response = body.0.unwrap_or_default().host_response;
    transition(
        &req,
        &state,
        &user,
        id.into_inner(),
        BookingAction::Approve { host_response },
    )
    .await
}

/// The car's host refuses a pending request; the car is free again.
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    request_body(content = Option<HostAnswer>, description = "Optional note to the guest"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the car's host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Not pending, or the answer time is over", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/bookings/{id}/reject")]
pub async fn reject(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: OptionalJson<HostAnswer>,
) -> Result<HttpResponse, ApiError> {
    let host_response = body.0.unwrap_or_default().host_response;
    transition(
        &req,
        &state,
        &user,
        id.into_inner(),
        BookingAction::Reject { host_response },
    )
    .await
}

/// The guest, the host or an admin cancels a pending or approved booking; the car is free
/// again. The refund owed is recorded by the policy: in full up to 24 h before the start or
/// within an hour of booking, half after that, nothing after the start; always in full when the
/// host (or an admin) cancels.
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    request_body(content = Option<CancelRequest>, description = "Optional reason"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the booking's guest or host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Already under way or over", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/bookings/{id}/cancel")]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: OptionalJson<CancelRequest>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.0.unwrap_or_default().reason;
    let id = id.into_inner();
    let response = transition(&req, &state, &user, id, BookingAction::Cancel { reason }).await?;
    // A paid booking's refund was decided with the cancellation: carry it out with Toss now
    // (the refund sweeper retries it if Toss is down).
    let payments = state.payments.clone();
    tokio::spawn(async move {
        if let Err(e) = payments.execute_refund(id).await {
            tracing::warn!(booking_id = %id, error = %e, "refund left pending");
        }
    });
    Ok(response)
}

/// Pickup: the guest starts an approved booking, from 30 minutes before its start until its end.
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the booking's guest", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Not approved, or outside the pickup time", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/bookings/{id}/start")]
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // The service reads whether the booking is paid.
    transition(
        &req,
        &state,
        &user,
        id.into_inner(),
        BookingAction::Start { paid: false },
    )
    .await
}

/// Return: the guest or the host completes an active booking; a return more than 15 minutes
/// after the end is recorded with its minutes late. The car is free again.
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the booking's guest or host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Not under way", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/bookings/{id}/complete")]
pub async fn complete(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    transition(
        &req,
        &state,
        &user,
        id.into_inner(),
        BookingAction::Complete,
    )
    .await
}

/// Photos of the car at pickup or return (`multipart/form-data`: `kind` = `pickup` or
/// `return`, and 1 to 10 `files`, each at most 10 MB, JPEG/PNG/HEIC/WebP by content). By the
/// booking's guest or host, around the matching step: pickup photos from 30 minutes before the
/// start while approved, or during the trip; return photos during the trip or up to an hour
/// after the return. At most 10 of each kind per booking. The images are stored first, then the
/// event records their keys; a refused command removes them again.
#[utoipa::path(
    tag = "bookings",
    params(("id" = Uuid, Path, description = "Booking id")),
    request_body(content_type = "multipart/form-data", description = "`kind` and `files`"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BookingResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not the booking's guest or host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Not the moment for this kind of photo", body = ErrorResponse),
        (status = 413, description = "A file over 10 MB", body = ErrorResponse),
        (status = 415, description = "Not an image", body = ErrorResponse),
        (status = 422, description = "Invalid form", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/bookings/{id}/photos")]
pub async fn photos(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    form: actix_multipart::Multipart,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let upload = crate::upload::read_images(form, &["kind"]).await?;
    let kind = match upload.fields.get("kind").map(String::as_str) {
        Some("pickup") => PhotoKind::Pickup,
        Some("return") => PhotoKind::Return,
        _ => {
            return Err(ApiError::with_details(
                ErrorCode::UPLOAD003,
                vec![crate::error::FieldIssue::new(
                    "kind",
                    "invalid_value",
                    "kind는 pickup 또는 return 이어야 합니다.",
                    "kind must be `pickup` or `return`.",
                )],
            ))
        }
    };
    // Refuse before storing anything: the same decision the command will make.
    let booking = state.bookings.load(id).await?;
    let placeholders: Vec<String> = (0..upload.files.len())
        .map(|i| format!("pending-{i}"))
        .collect();
    booking.decide(BookingCommand {
        actor: Some(user.actor()),
        at: state.bookings.now(),
        action: BookingAction::AddPhotos {
            kind,
            keys: placeholders,
        },
    })?;
    let keys = crate::upload::store_all(
        &state.images,
        &format!("bookings/{id}/{}", kind.as_str()),
        upload.files,
    )
    .await?;
    let meta = command_metadata(&req, &user, "AddBookingPhotos")?;
    match state
        .bookings
        .execute(
            Some(user.actor()),
            id,
            BookingAction::AddPhotos {
                kind,
                keys: keys.clone(),
            },
            &meta,
        )
        .await
    {
        Ok(done) => respond(&state, done, StatusCode::OK).await,
        Err(e) => {
            crate::upload::remove_all(&state.images, &keys).await;
            Err(e.into())
        }
    }
}

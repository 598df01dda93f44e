//! Booking routes (seed: 예약 관리 모듈).

mod commands;
pub mod dto;
mod read;

use carshare_projections::bookings::NAME as BOOKINGS;
use carshare_projections::vehicles::NAME as VEHICLES;

/// Read models a booking command must reach before its response (read-your-writes): the
/// booking itself, and the vehicle whose holds (and so search results) it changes.
pub const READ_MODELS: &[&str] = &[BOOKINGS, VEHICLES];

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(commands::create)
        .service(read::list)
        .service(read::get)
        .service(read::timeline)
        .service(commands::approve)
        .service(commands::reject)
        .service(commands::cancel)
        .service(commands::start)
        .service(commands::complete)
        .service(commands::photos)
        .service(crate::realtime::ws);
}

/// Adds the booking's payment (from the log) to its response.
async fn with_payment(
    state: &crate::state::AppState,
    mut booking: dto::BookingResponse,
) -> Result<dto::BookingResponse, crate::error::ApiError> {
    // Only an approval opens a payment: a booking never approved has none to load (this keeps
    // a query off the booking-request path).
    if matches!(booking.status.as_str(), "pending" | "rejected" | "expired") {
        return Ok(booking);
    }
    let payment = state.payments.load(booking.id).await?;
    booking.payment = payment
        .state
        .as_ref()
        .map(crate::routes::payments::PaymentResponse::from);
    Ok(booking)
}

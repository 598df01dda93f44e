//! Payment routes (seed: 결제 처리 모듈).

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use carshare_commands::payments::ProcessPayment;
use carshare_domain::payment::PaymentState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(process);
}

/// What the app sends after the Toss payment widget succeeded.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentProcess {
    /// The booking paid for.
    pub booking_id: Uuid,
    /// Toss's `paymentKey` from the widget's success redirect.
    pub payment_key: String,
    /// The `orderId` the widget paid (the booking's `payment.order_id`).
    pub order_id: String,
    /// The amount the widget paid, in won (the booking's `payment.amount`).
    pub amount: i64,
}

/// A booking's payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentResponse {
    /// The booking (one payment per booking).
    pub booking_id: Uuid,
    /// The Toss order id to pay.
    pub order_id: String,
    /// Amount due, in won.
    pub amount: i64,
    /// `pending`, `completed`, `failed` (the last attempt was refused; try again) or `voided`
    /// (the booking ended unpaid).
    pub status: String,
    /// Pay before this instant (2 hours after approval, never after the start).
    pub due_at: DateTime<Utc>,
    /// Toss's key of the confirmed payment.
    pub payment_key: Option<String>,
    /// Payment method, as Toss reports it.
    pub method: Option<String>,
    /// When Toss approved it.
    pub approved_at: Option<DateTime<Utc>>,
    /// Won refunded by Toss so far.
    pub refunded_amount: i64,
    /// A refund decided (by a cancellation) and not yet carried out by Toss.
    pub pending_refund: Option<i64>,
}

impl From<&PaymentState> for PaymentResponse {
    fn from(p: &PaymentState) -> Self {
        PaymentResponse {
            booking_id: p.booking_id,
            order_id: p.order_id.clone(),
            amount: p.amount.amount(),
            status: p.status.as_str().to_string(),
            due_at: p.due_at,
            payment_key: p.payment_key.clone(),
            method: p.method.clone(),
            approved_at: p.approved_at,
            refunded_amount: p.refunded.amount(),
            pending_refund: p.pending_refund.map(|w| w.amount()),
        }
    }
}

/// Confirms the guest's payment for an approved booking: the order id and amount must be the
/// booking's, before its deadline; the server then confirms with Toss Payments (idempotently)
/// and records what Toss confirmed. The same call again answers the recorded payment and
/// charges nothing more. A refusal by Toss is `402 PAYMENT004` with Toss's code and message; the
/// guest may try again until the deadline.
#[utoipa::path(
    tag = "payments",
    request_body = PaymentProcess,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Paid", body = PaymentResponse),
        (status = 401, body = ErrorResponse),
        (status = 402, description = "Toss refused the payment", body = ErrorResponse),
        (status = 403, description = "Not the booking's guest", body = ErrorResponse),
        (status = 404, description = "No payment due for this booking", body = ErrorResponse),
        (status = 409, description = "Already paid, or past the deadline", body = ErrorResponse),
        (status = 422, description = "Order id or amount mismatch, or invalid fields", body = ErrorResponse),
        (status = 503, description = "Toss or the database unavailable", body = ErrorResponse)
    )
)]
#[post("/payments/process")]
pub async fn process(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<PaymentProcess>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let meta = command_metadata(&req, &user, "ConfirmPayment")?;
    let done = state
        .payments
        .process(
            user.actor(),
            ProcessPayment {
                booking_id: body.booking_id,
                payment_key: body.payment_key,
                order_id: body.order_id,
                amount: body.amount,
            },
            &meta,
        )
        .await?;
    let payment = done
        .aggregate
        .state
        .as_ref()
        .map(PaymentResponse::from)
        .ok_or_else(|| ApiError::new(crate::error::ErrorCode::PAYMENT001))?;
    let mut response = HttpResponse::Ok();
    settle_command(&state, &[], done.cursor, &mut response).await;
    Ok(response.json(payment))
}

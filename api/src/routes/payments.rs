//! Payment routes (seed: 결제 처리 모듈).

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use carshare_commands::payments::ProcessPayment;
use carshare_domain::payment::PaymentState;
use carshare_projections::payments::PaymentRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(process)
        .service(history)
        .service(webhook)
        .service(settle)
        .service(settlements);
}

/// Parameters of `GET /v1/payments/history`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// `guest` (payments you made) or `host` (payments for your cars); default: your role.
    pub role: Option<crate::routes::bookings::dto::ListRoleWire>,
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

impl From<&PaymentRow> for PaymentResponse {
    fn from(p: &PaymentRow) -> Self {
        PaymentResponse {
            booking_id: p.id,
            order_id: p.order_id.clone(),
            amount: p.amount,
            status: p.status.clone(),
            due_at: p.due_at,
            payment_key: p.payment_key.clone(),
            method: p.method.clone(),
            approved_at: p.approved_at,
            refunded_amount: p.refunded_amount,
            pending_refund: p.pending_refund,
        }
    }
}

/// The caller's payments, newest first: as guest (what you paid) or as host (what guests paid
/// for your cars; the default for hosts). The next page's cursor is in `X-Next-Cursor`.
#[utoipa::path(
    tag = "payments",
    params(HistoryParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PaymentResponse>,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/payments/history")]
pub async fn history(
    state: web::Data<AppState>,
    user: AuthUser,
    params: crate::extract::ValidQuery<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    use crate::routes::bookings::dto::ListRoleWire;
    let p = params.0;
    let as_host = match p.role {
        Some(ListRoleWire::Host) => true,
        Some(ListRoleWire::Guest) => false,
        None => user.role == carshare_domain::Role::Host,
    };
    let after = crate::routes::parse_cursor(
        p.cursor.as_deref(),
        carshare_projections::vehicles::OwnerCursor::decode,
    )?;
    let limit = crate::routes::page_size(p.limit)?;
    let mut response = HttpResponse::Ok();
    crate::routes::await_position(
        &state,
        &[carshare_projections::payments::NAME],
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let (rows, next) =
        carshare_projections::payments::history(&state.pool, user.id, as_host, after, limit)
            .await?;
    if let Some(next) = next {
        response.insert_header((crate::routes::NEXT_CURSOR, next.encode()));
    }
    let body: Vec<PaymentResponse> = rows.iter().map(PaymentResponse::from).collect();
    Ok(response.json(body))
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
    settle_command(
        &state,
        &[carshare_projections::payments::NAME],
        done.cursor,
        &mut response,
    )
    .await;
    Ok(response.json(payment))
}

/// Toss Payments webhook (`PAYMENT_STATUS_CHANGED`). The bodies are not signed, so the server
/// asks Toss for the payment (`GET /v1/payments/{paymentKey}`) and reconciles the log with it:
/// a payment Toss completed that the log lacks is recorded; repeats and out-of-order deliveries
/// change nothing; unknown payments and other event types are recorded and answered 200 so Toss
/// stops retrying. When Toss cannot be asked, the answer is 503 and Toss delivers again.
#[utoipa::path(
    tag = "payments",
    request_body = Object,
    responses(
        (status = 200, description = "Handled (or ignored)"),
        (status = 400, body = ErrorResponse),
        (status = 503, description = "Toss could not be asked; deliver again", body = ErrorResponse)
    )
)]
#[post("/payments/webhook")]
pub async fn webhook(
    state: web::Data<AppState>,
    body: ValidJson<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let event_type = body["eventType"].as_str().unwrap_or_default().to_string();
    let payment_key = body["data"]["paymentKey"].as_str().map(str::to_string);
    let order_id = body["data"]["orderId"].as_str().map(str::to_string);
    let outcome = match (event_type.as_str(), payment_key.as_deref()) {
        ("PAYMENT_STATUS_CHANGED", Some(key)) => match state.payments.reconcile(key).await {
            Ok(result) => result.as_str(),
            Err(e) => {
                record_delivery(&state, &event_type, &payment_key, &order_id, "retry", &body).await;
                return Err(e.into());
            }
        },
        ("PAYMENT_STATUS_CHANGED", None) => "unknown",
        _ => "ignored",
    };
    record_delivery(&state, &event_type, &payment_key, &order_id, outcome, &body).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({"result": outcome})))
}

async fn record_delivery(
    state: &AppState,
    event_type: &str,
    payment_key: &Option<String>,
    order_id: &Option<String>,
    outcome: &str,
    body: &serde_json::Value,
) {
    let recorded = sqlx::query(
        "INSERT INTO payment_webhook_deliveries (event_type, payment_key, order_id, outcome, body) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_type)
    .bind(payment_key)
    .bind(order_id)
    .bind(outcome)
    .bind(sqlx::types::Json(body))
    .execute(&state.pool)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, outcome, "webhook delivery not recorded");
    }
}

/// A settlement statement: what one host is paid for the payments it lists.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettlementResponse {
    /// Id.
    pub id: Uuid,
    /// The host.
    pub host_id: Uuid,
    /// Trips that ended before this instant are included.
    pub cutoff: DateTime<Utc>,
    /// Sum paid by guests (won).
    pub gross: i64,
    /// Sum refunded (won).
    pub refunds: i64,
    /// The platform's fees: 15% of each payment's kept amount, rounded down (won).
    pub platform_fee: i64,
    /// What the host receives (won): gross − refunds − fees.
    pub host_amount: i64,
    /// One line per payment: `booking_id, paid, refunded, kept, platform_fee, host_share`.
    #[schema(value_type = Vec<Object>)]
    pub lines: serde_json::Value,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

impl From<&carshare_projections::payments::SettlementRow> for SettlementResponse {
    fn from(r: &carshare_projections::payments::SettlementRow) -> Self {
        SettlementResponse {
            id: r.id,
            host_id: r.host_id,
            cutoff: r.cutoff,
            gross: r.gross,
            refunds: r.refunds,
            platform_fee: r.platform_fee,
            host_amount: r.host_amount,
            lines: r.lines.0.clone(),
            created_at: r.created_at,
        }
    }
}

impl From<&carshare_commands::payments::Issued> for SettlementResponse {
    fn from(i: &carshare_commands::payments::Issued) -> Self {
        let carshare_domain::payment::settlement::SettlementEvent::SettlementIssued {
            settlement_id,
            host_id,
            cutoff,
            lines,
            gross,
            refunds,
            platform_fee,
            host_amount,
            at,
        } = &i.event;
        SettlementResponse {
            id: *settlement_id,
            host_id: *host_id,
            cutoff: *cutoff,
            gross: gross.amount(),
            refunds: refunds.amount(),
            platform_fee: platform_fee.amount(),
            host_amount: host_amount.amount(),
            lines: serde_json::to_value(lines).unwrap_or_default(),
            created_at: *at,
        }
    }
}

/// What to settle.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// Settle trips that ended before this instant (default: now).
    pub cutoff: Option<DateTime<Utc>>,
}

/// Settles (admin) every completed booking whose trip ended before the cut-off and whose
/// payment is not settled yet: one statement per host, the host's share 85% of what was kept
/// (paid − refunded; the 15% fee rounded down). Running it again settles nothing twice.
#[utoipa::path(
    tag = "payments",
    request_body(content = Option<SettleRequest>, description = "Optional cut-off"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The statements issued (empty when nothing was due)", body = Vec<SettlementResponse>),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not an admin", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/payments/settle")]
pub async fn settle(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: crate::extract::OptionalJson<SettleRequest>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[carshare_domain::Role::Admin])?;
    let cutoff = body.0.unwrap_or_default().cutoff.unwrap_or_else(Utc::now);
    let meta = command_metadata(&req, &user, "SettlePayments")?;
    // What is due is read from the payments and bookings tables: they must show the payments
    // and returns this instance has answered.
    crate::routes::await_own_writes(
        &state,
        &[
            carshare_projections::payments::NAME,
            carshare_projections::bookings::NAME,
        ],
    )
    .await?;
    let issued = state.payments.settle(cutoff, &meta).await?;
    let body: Vec<SettlementResponse> = issued.iter().map(SettlementResponse::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// Parameters of `GET /v1/payments/settlements`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SettlementParams {
    /// Only this host (admins; hosts always see their own).
    pub host_id: Option<Uuid>,
    /// Issued at or after.
    pub from: Option<DateTime<Utc>>,
    /// Issued before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many (default 20, at most 100).
    pub limit: Option<i64>,
    /// Wait until the read model has reached this stream position.
    pub min_position: Option<String>,
}

/// Settlement statements, newest first: admins see all (filter by host and period), hosts their
/// own.
#[utoipa::path(
    tag = "payments",
    params(SettlementParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SettlementResponse>),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Guests have no settlements", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/payments/settlements")]
pub async fn settlements(
    state: web::Data<AppState>,
    user: AuthUser,
    params: crate::extract::ValidQuery<SettlementParams>,
) -> Result<HttpResponse, ApiError> {
    use carshare_domain::Role;
    user.require(&[Role::Admin, Role::Host])?;
    let p = params.0;
    let host = if user.role == Role::Admin {
        p.host_id
    } else {
        Some(user.id)
    };
    let mut response = HttpResponse::Ok();
    crate::routes::await_position(
        &state,
        &[carshare_projections::payments::SETTLEMENTS],
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let rows = carshare_projections::payments::settlements(
        &state.pool,
        host,
        p.from,
        p.to,
        crate::routes::page_size(p.limit)?,
    )
    .await?;
    let body: Vec<SettlementResponse> = rows.iter().map(SettlementResponse::from).collect();
    Ok(response.json(body))
}

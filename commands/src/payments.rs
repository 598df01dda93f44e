//! Payment use cases: confirming the guest's Toss payment for an approved booking.
//!
//! The payment is opened by the booking's approval (written with it, see
//! [`crate::bookings::BookingService`]). Processing checks the order id and amount against the
//! log before anyone calls Toss, confirms with Toss under an idempotency key, and records
//! exactly what Toss confirmed.

use crate::append::{append, Batch};
use crate::bus::{CommandBus, CommandError, Committed};
use crate::clock::Clock;
use crate::error::InfraError;
use crate::external::toss::{GatewayError, PaymentGateway};
use carshare_domain::payment::{
    Payment, PaymentAction, PaymentCommand, PaymentError, PaymentStatus,
};
use carshare_domain::{Actor, Won};
use carshare_event_store::{CommitSignal, EventMetadata};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// What the guest's app sends after the Toss widget succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPayment {
    /// The booking.
    pub booking_id: Uuid,
    /// Toss's payment key.
    pub payment_key: String,
    /// The order id the widget paid.
    pub order_id: String,
    /// The amount the widget paid.
    pub amount: i64,
}

/// Why processing failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentServiceError {
    /// The payment refused (wrong order, amount, payer, deadline, already paid).
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// Toss refused the payment.
    #[error("Toss refused ({code}): {message}")]
    Refused {
        /// Toss's code.
        code: String,
        /// Toss's message.
        message: String,
    },
    /// Toss is unreachable or not configured.
    #[error("payment provider unavailable: {0}")]
    GatewayUnavailable(String),
    /// Infrastructure.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<CommandError<PaymentError>> for PaymentServiceError {
    fn from(err: CommandError<PaymentError>) -> Self {
        match err {
            CommandError::Rejected(e) => PaymentServiceError::Payment(e),
            CommandError::Infra(e) => PaymentServiceError::Infra(e),
        }
    }
}

/// Payment use cases.
pub struct PaymentService {
    pool: PgPool,
    bus: CommandBus<Payment>,
    gateway: Option<Arc<dyn PaymentGateway>>,
    clock: Arc<dyn Clock>,
}

impl PaymentService {
    /// The service over `pool`; without a gateway, processing answers "unavailable".
    pub fn new(
        pool: PgPool,
        signal: CommitSignal,
        gateway: Option<Arc<dyn PaymentGateway>>,
        clock: Arc<dyn Clock>,
    ) -> PaymentService {
        PaymentService {
            bus: CommandBus::new(pool.clone(), (), signal, 0),
            pool,
            gateway,
            clock,
        }
    }

    /// The payment of a booking, from the log (`state` is `None` while none is due).
    pub async fn load(&self, booking_id: Uuid) -> Result<Payment, PaymentServiceError> {
        Ok(self.bus.load(&booking_id.to_string()).await?)
    }

    /// Confirms the guest's payment with Toss and records it. The same call again (same
    /// payment key) answers the recorded payment without calling Toss a second time.
    #[tracing::instrument(name = "payments.process", skip_all, fields(booking_id = %request.booking_id))]
    pub async fn process(
        &self,
        actor: Actor,
        request: ProcessPayment,
        meta: &EventMetadata,
    ) -> Result<Committed<Payment>, PaymentServiceError> {
        let key = request.booking_id.to_string();
        let payment = self.bus.load(&key).await?;
        let amount = Won(request.amount);
        let state = payment.payable_by(Some(actor), &request.order_id, amount, self.clock.now())?;
        if state.status == PaymentStatus::Completed {
            if state.payment_key.as_deref() == Some(request.payment_key.as_str()) {
                return Ok(Committed {
                    aggregate: payment,
                    events: Vec::new(),
                    cursor: None,
                });
            }
            return Err(PaymentError::AlreadyPaid.into());
        }
        let gateway = self.gateway.as_ref().ok_or_else(|| {
            PaymentServiceError::GatewayUnavailable("TOSS_SECRET_KEY is not configured".into())
        })?;
        // One key per (order, payment key): a retried or repeated confirmation is the same
        // request to Toss.
        let idempotency_key = format!("{}-{}", request.order_id, request.payment_key);
        match gateway
            .confirm(
                &request.payment_key,
                &request.order_id,
                request.amount,
                &idempotency_key,
            )
            .await
        {
            Ok(toss) => {
                if toss.total_amount != request.amount || toss.order_id != request.order_id {
                    tracing::error!(
                        toss_amount = toss.total_amount,
                        toss_order = %toss.order_id,
                        "Toss confirmed another order or amount than asked"
                    );
                    return Err(PaymentServiceError::GatewayUnavailable(
                        "the provider confirmed another order or amount".into(),
                    ));
                }
                let command = PaymentCommand {
                    actor: Some(actor),
                    at: self.clock.now(),
                    action: PaymentAction::Confirm {
                        payment_key: toss.payment_key,
                        order_id: toss.order_id,
                        amount: Won(toss.total_amount),
                        method: toss.method,
                        approved_at: toss.approved_at,
                        toss_status: toss.status,
                    },
                };
                Ok(self.bus.execute(&key, command, meta).await?)
            }
            Err(GatewayError::Refused { code, message }) => {
                let command = PaymentCommand {
                    actor: Some(actor),
                    at: self.clock.now(),
                    action: PaymentAction::RecordFailure {
                        payment_key: request.payment_key,
                        code: code.clone(),
                        message: message.clone(),
                    },
                };
                self.bus.execute(&key, command, meta).await?;
                Err(PaymentServiceError::Refused { code, message })
            }
            Err(GatewayError::Unavailable(reason)) => {
                Err(PaymentServiceError::GatewayUnavailable(reason))
            }
        }
    }
}

impl PaymentService {
    /// Carries out the payment's pending refund with Toss, if it has one. Returns the won
    /// refunded; a Toss refusal is recorded (`RefundFailed`) for an operator; an outage leaves
    /// the refund pending for the next attempt (the [`RefundSweeper`]).
    #[tracing::instrument(name = "payments.refund", skip(self))]
    pub async fn execute_refund(
        &self,
        booking_id: Uuid,
    ) -> Result<Option<Won>, PaymentServiceError> {
        let key = booking_id.to_string();
        let payment = self.bus.load(&key).await?;
        let Some(state) = payment.state.as_ref() else {
            return Ok(None);
        };
        let (Some(amount), Some(payment_key)) = (state.pending_refund, state.payment_key.clone())
        else {
            return Ok(None);
        };
        let gateway = self.gateway.as_ref().ok_or_else(|| {
            PaymentServiceError::GatewayUnavailable("TOSS_SECRET_KEY is not configured".into())
        })?;
        // Stable across retries of this refund, distinct from earlier refunds of the payment.
        let idempotency_key = format!(
            "refund-{}-{}-{}",
            state.order_id, state.refunded.0, amount.0
        );
        let meta = EventMetadata::system("RefundPayment", self.clock.now());
        let action = match gateway
            .refund(&payment_key, amount.0, "예약 취소", &idempotency_key)
            .await
        {
            Ok(refund) => PaymentAction::CompleteRefund {
                amount,
                transaction_key: refund.transaction_key,
            },
            Err(GatewayError::Refused { code, message }) => {
                tracing::error!(%booking_id, %code, %message, "Toss refused a refund");
                PaymentAction::FailRefund { code, message }
            }
            Err(GatewayError::Unavailable(reason)) => {
                return Err(PaymentServiceError::GatewayUnavailable(reason))
            }
        };
        let refunded = matches!(action, PaymentAction::CompleteRefund { .. });
        let command = PaymentCommand {
            actor: None,
            at: self.clock.now(),
            action,
        };
        self.bus.execute(&key, command, &meta).await?;
        Ok(refunded.then_some(amount))
    }
}

/// Payments whose refund was decided and not yet carried out or refused.
pub async fn pending_refunds(pool: &PgPool, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT r.aggregate_id FROM events r \
         WHERE r.aggregate_type = 'Payment' AND r.event_type = 'RefundRequested' \
           AND NOT EXISTS (SELECT 1 FROM events d WHERE d.aggregate_type = 'Payment' \
             AND d.aggregate_id = r.aggregate_id AND d.sequence > r.sequence \
             AND d.event_type IN ('PaymentRefunded', 'RefundFailed')) \
         ORDER BY r.global_position LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids
        .iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect())
}

/// Retries pending refunds (after a Toss outage) every interval.
pub struct RefundSweeper {
    pool: PgPool,
    service: Arc<PaymentService>,
    interval: std::time::Duration,
}

impl RefundSweeper {
    /// A sweeper over `service`.
    pub fn new(pool: PgPool, service: Arc<PaymentService>, interval: std::time::Duration) -> Self {
        RefundSweeper {
            pool,
            service,
            interval,
        }
    }

    /// One pass: returns how many refunds were carried out.
    pub async fn sweep(&self) -> Result<usize, sqlx::Error> {
        let mut done = 0;
        for booking_id in pending_refunds(&self.pool, 100).await? {
            match self.service.execute_refund(booking_id).await {
                Ok(Some(_)) => done += 1,
                Ok(None) => {}
                Err(e) => tracing::warn!(%booking_id, error = %e, "refund still pending"),
            }
        }
        Ok(done)
    }

    /// Sweeps until `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "refund sweep failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

/// What a webhook delivery led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Toss reported a payment the log did not have yet; it is recorded now.
    Recorded,
    /// The log already agreed with Toss.
    Unchanged,
    /// Not a payment of this platform (unknown order or key).
    Unknown,
}

impl Reconciled {
    /// The name recorded with the delivery.
    pub fn as_str(self) -> &'static str {
        match self {
            Reconciled::Recorded => "recorded",
            Reconciled::Unchanged => "unchanged",
            Reconciled::Unknown => "unknown",
        }
    }
}

impl PaymentService {
    /// Reconciles the payment `payment_key` with what Toss says now (webhook bodies are not
    /// signed, so they are only a hint to ask Toss). A payment Toss completed that the log does
    /// not have (a confirmation whose answer was lost) is recorded; repeats change nothing.
    #[tracing::instrument(name = "payments.reconcile", skip(self))]
    pub async fn reconcile(&self, payment_key: &str) -> Result<Reconciled, PaymentServiceError> {
        let gateway = self.gateway.as_ref().ok_or_else(|| {
            PaymentServiceError::GatewayUnavailable("TOSS_SECRET_KEY is not configured".into())
        })?;
        let toss = match gateway.payment(payment_key).await {
            Ok(toss) => toss,
            Err(GatewayError::Refused { .. }) => return Ok(Reconciled::Unknown),
            Err(GatewayError::Unavailable(reason)) => {
                return Err(PaymentServiceError::GatewayUnavailable(reason))
            }
        };
        let Some(booking_id) = toss
            .order_id
            .strip_prefix("bk-")
            .and_then(|hex| Uuid::parse_str(hex).ok())
        else {
            return Ok(Reconciled::Unknown);
        };
        let key = booking_id.to_string();
        let payment = self.bus.load(&key).await?;
        let Some(state) = payment.state.as_ref() else {
            return Ok(Reconciled::Unknown);
        };
        if toss.status != "DONE" || state.status == PaymentStatus::Completed {
            return Ok(Reconciled::Unchanged);
        }
        let meta = EventMetadata::system("ReconcilePayment", self.clock.now());
        let command = PaymentCommand {
            actor: None,
            at: self.clock.now(),
            action: PaymentAction::Confirm {
                payment_key: toss.payment_key,
                order_id: toss.order_id,
                amount: Won(toss.total_amount),
                method: toss.method,
                approved_at: toss.approved_at,
                toss_status: toss.status,
            },
        };
        match self.bus.execute(&key, command, &meta).await {
            Ok(done) if done.events.is_empty() => Ok(Reconciled::Unchanged),
            Ok(_) => Ok(Reconciled::Recorded),
            Err(CommandError::Rejected(e)) => {
                // Toss holds money the log cannot accept (voided, overdue, another amount):
                // an operator must refund it by hand.
                tracing::error!(%booking_id, error = %e, "Toss reports a payment the platform refuses; refund it manually");
                Ok(Reconciled::Unchanged)
            }
            Err(CommandError::Infra(e)) => Err(e.into()),
        }
    }
}

/// A settlement issued by [`PaymentService::settle`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// The settlement's id.
    pub settlement_id: Uuid,
    /// The host.
    pub host_id: Uuid,
    /// Its statement.
    pub event: carshare_domain::payment::settlement::SettlementEvent,
}

impl PaymentService {
    /// Settles every completed payment of a completed trip that ended before `cutoff` and is
    /// not settled yet: one settlement per host, its payments marked settled in the same
    /// transaction, so running it twice settles nothing twice. Candidates come from the read
    /// models; each payment decides from the log whether it can still be settled.
    #[tracing::instrument(name = "payments.settle", skip(self, meta))]
    pub async fn settle(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        meta: &EventMetadata,
    ) -> Result<Vec<Issued>, PaymentServiceError> {
        use carshare_domain::payment::settlement::{IssueSettlement, Settlement, SettlementLine};
        let candidates: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT p.id, p.host_id FROM read.payments p JOIN read.bookings b ON b.id = p.id \
             WHERE p.status = 'completed' AND p.settlement_id IS NULL AND p.pending_refund IS NULL \
               AND b.status = 'completed' AND b.end_datetime < $1 \
             ORDER BY p.host_id, p.id",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(InfraError::from)?;
        let mut by_host: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
        for (booking, host) in candidates {
            by_host.entry(host).or_default().push(booking);
        }
        let at = self.clock.now();
        let mut issued = Vec::new();
        for (host_id, bookings) in by_host {
            let settlement_id = Uuid::new_v4();
            let mut batches = Vec::new();
            let mut lines = Vec::new();
            for booking in bookings {
                let key = booking.to_string();
                let (payment, seq) = self.bus.load_versioned(&key).await?;
                let events = payment.decide(PaymentCommand {
                    actor: None,
                    at,
                    action: PaymentAction::Settle { settlement_id },
                })?;
                let Some(carshare_domain::payment::PaymentEvent::PaymentSettled {
                    kept,
                    platform_fee,
                    host_share,
                    ..
                }) = events.first().cloned()
                else {
                    continue;
                };
                let Some(state) = payment.state.as_ref() else {
                    continue;
                };
                lines.push(SettlementLine {
                    booking_id: booking,
                    paid: state.amount,
                    refunded: state.refunded,
                    kept,
                    platform_fee,
                    host_share,
                });
                let mut after = payment.clone();
                for e in &events {
                    cqrs_es::Aggregate::apply(&mut after, e.clone());
                }
                batches.push(Batch::new::<Payment>(&key, seq, &events, &after, 0)?);
            }
            if lines.is_empty() {
                continue;
            }
            let statement = Settlement::default()
                .decide(IssueSettlement {
                    settlement_id,
                    host_id,
                    cutoff,
                    lines,
                    at,
                })
                .map_err(|e| InfraError::Internal(Box::new(e)))?;
            let mut settlement = Settlement::default();
            for e in &statement {
                cqrs_es::Aggregate::apply(&mut settlement, e.clone());
            }
            batches.push(Batch::new::<Settlement>(
                &settlement_id.to_string(),
                0,
                &statement,
                &settlement,
                0,
            )?);
            // A concurrent settle run that took one of these payments first makes this host's
            // append conflict: nothing is written for the host, and the next run retries.
            match append(&self.pool, &batches, meta).await {
                Ok(_) => {
                    if let Some(event) = statement.into_iter().next() {
                        issued.push(Issued {
                            settlement_id,
                            host_id,
                            event,
                        });
                    }
                }
                Err(InfraError::Conflict) => {
                    tracing::warn!(%host_id, "settlement raced with another run; skipped")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use sqlx::postgres::PgPoolOptions;

    #[test]
    fn a_payment_refusal_stays_a_payment_refusal() {
        assert!(matches!(
            PaymentServiceError::from(CommandError::Rejected(PaymentError::Overdue)),
            PaymentServiceError::Payment(PaymentError::Overdue)
        ));
        assert!(matches!(
            PaymentServiceError::from(CommandError::<PaymentError>::Infra(InfraError::Conflict)),
            PaymentServiceError::Infra(InfraError::Conflict)
        ));
        assert_eq!(
            PaymentServiceError::Refused {
                code: "REJECT_CARD_COMPANY".into(),
                message: "거절".into()
            }
            .to_string(),
            "Toss refused (REJECT_CARD_COMPANY): 거절"
        );
    }

    #[test]
    fn reconciliation_outcomes_have_stored_names() {
        assert_eq!(Reconciled::Recorded.as_str(), "recorded");
        assert_eq!(Reconciled::Unchanged.as_str(), "unchanged");
        assert_eq!(Reconciled::Unknown.as_str(), "unknown");
    }

    #[tokio::test]
    async fn without_toss_a_webhook_cannot_be_reconciled() {
        // Never connects: reconciliation asks Toss before it reads the log.
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let service =
            PaymentService::new(pool, CommitSignal::default(), None, Arc::new(SystemClock));
        match service.reconcile("pk_1").await {
            Err(PaymentServiceError::GatewayUnavailable(why)) => {
                assert_eq!(why, "TOSS_SECRET_KEY is not configured")
            }
            other => panic!("expected the gateway to be unavailable, got {other:?}"),
        }
    }
}

//! The Payment aggregate: what a guest owes for an approved booking, and what Toss Payments
//! confirmed. One payment per booking; its id is the booking's id.
//!
//! The aggregate never talks to Toss: the application confirms with Toss and records the
//! outcome here, so the log holds exactly what Toss confirmed (finance audits replay it).

use crate::actor::Actor;
use crate::money::Won;
use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema version of every payment event shape.
pub const PAYMENT_EVENT_VERSION: &str = "1.0";
/// How long after approval a payment is due by default (never later than the booked start).
pub const DEFAULT_PAYMENT_WINDOW: Duration = Duration::hours(2);

/// The Toss order id of a booking's payment: `bk-` and the booking id's 32 hex digits (Toss
/// accepts 6–64 characters of letters, digits, `-` and `_`).
pub fn order_id(booking_id: Uuid) -> String {
    format!("bk-{}", booking_id.simple())
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Due; not paid yet.
    Pending,
    /// Toss confirmed it.
    Completed,
    /// The last attempt was refused by Toss; the guest may try again until the deadline.
    Failed,
    /// The booking ended before it was paid: nothing is owed any more.
    Voided,
}

impl PaymentStatus {
    /// The name used in the API and the read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Voided => "voided",
        }
    }
}

/// A payment command: who, when, what.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentCommand {
    /// The caller; `None` for the platform's own reactions.
    pub actor: Option<Actor>,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub action: PaymentAction,
}

/// What may be asked of a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentAction {
    /// A booking was approved: its total is now due (issued by the platform).
    Open {
        /// The booking (and payment) id.
        booking_id: Uuid,
        /// Who pays.
        guest_id: Uuid,
        /// Whose car it is.
        host_id: Uuid,
        /// The booking's total.
        amount: Won,
        /// The deadline.
        due_at: DateTime<Utc>,
    },
    /// Toss confirmed the guest's payment.
    Confirm {
        /// Toss's payment key.
        payment_key: String,
        /// The order id the guest paid.
        order_id: String,
        /// The amount the guest paid.
        amount: Won,
        /// Toss's payment method, e.g. `카드`.
        method: Option<String>,
        /// When Toss approved it.
        approved_at: Option<DateTime<Utc>>,
        /// Toss's status, e.g. `DONE`.
        toss_status: String,
    },
    /// The booking ended (cancelled, rejected, expired): void an unpaid payment, or ask for
    /// `refund` of a completed one (issued by the platform).
    Close {
        /// Won to give back (the booking's policy decided it); ignored when unpaid.
        refund: Won,
        /// Why, e.g. `BookingCancelled`.
        reason: String,
    },
    /// Toss carried out the pending refund.
    CompleteRefund {
        /// Won refunded.
        amount: Won,
        /// Toss's transaction key of the cancellation.
        transaction_key: Option<String>,
    },
    /// Toss refused the pending refund (needs an operator).
    FailRefund {
        /// Toss's code.
        code: String,
        /// Toss's message.
        message: String,
    },
    /// Include the payment in a host's settlement (issued by the platform).
    Settle {
        /// The settlement.
        settlement_id: Uuid,
    },
    /// Toss refused an attempt.
    RecordFailure {
        /// Toss's payment key of the attempt.
        payment_key: String,
        /// Toss's error code.
        code: String,
        /// Toss's message.
        message: String,
    },
}

/// An event of the Payment aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentEvent {
    /// The booking's total became due.
    PaymentDue {
        /// The booking.
        booking_id: Uuid,
        /// Who pays.
        guest_id: Uuid,
        /// Whose car.
        host_id: Uuid,
        /// The Toss order id.
        order_id: String,
        /// Amount due.
        amount: Won,
        /// Deadline.
        due_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Toss confirmed the payment.
    PaymentConfirmed {
        /// Toss's payment key.
        payment_key: String,
        /// Amount Toss confirmed.
        amount: Won,
        /// Method.
        method: Option<String>,
        /// Toss's approval time.
        approved_at: Option<DateTime<Utc>>,
        /// Toss's status.
        toss_status: String,
        /// When recorded.
        at: DateTime<Utc>,
    },
    /// The booking ended unpaid: nothing is owed.
    PaymentVoided {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A refund of a completed payment was decided (the booking's cancellation policy).
    RefundRequested {
        /// Won to give back.
        amount: Won,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Toss carried the refund out.
    PaymentRefunded {
        /// Won refunded.
        amount: Won,
        /// Toss's transaction key.
        transaction_key: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Toss refused the refund.
    RefundFailed {
        /// Toss's code.
        code: String,
        /// Toss's message.
        message: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The payment was settled to the host: what was kept (paid − refunded), split 15 / 85.
    PaymentSettled {
        /// The settlement it belongs to.
        settlement_id: Uuid,
        /// Paid minus refunded.
        kept: Won,
        /// The platform's fee: 15% of `kept`, rounded down.
        platform_fee: Won,
        /// The host's share: `kept − platform_fee`.
        host_share: Won,
        /// When.
        at: DateTime<Utc>,
    },
    /// Toss refused an attempt.
    PaymentFailed {
        /// The attempt's payment key.
        payment_key: String,
        /// Toss's error code.
        code: String,
        /// Toss's message.
        message: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl PaymentEvent {
    /// The event's type name.
    pub fn name(&self) -> &'static str {
        match self {
            PaymentEvent::PaymentDue { .. } => "PaymentDue",
            PaymentEvent::PaymentConfirmed { .. } => "PaymentConfirmed",
            PaymentEvent::PaymentFailed { .. } => "PaymentFailed",
            PaymentEvent::PaymentVoided { .. } => "PaymentVoided",
            PaymentEvent::RefundRequested { .. } => "RefundRequested",
            PaymentEvent::PaymentRefunded { .. } => "PaymentRefunded",
            PaymentEvent::RefundFailed { .. } => "RefundFailed",
            PaymentEvent::PaymentSettled { .. } => "PaymentSettled",
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            PaymentEvent::PaymentDue { at, .. }
            | PaymentEvent::PaymentConfirmed { at, .. }
            | PaymentEvent::PaymentFailed { at, .. }
            | PaymentEvent::PaymentVoided { at, .. }
            | PaymentEvent::RefundRequested { at, .. }
            | PaymentEvent::PaymentRefunded { at, .. }
            | PaymentEvent::RefundFailed { at, .. }
            | PaymentEvent::PaymentSettled { at, .. } => *at,
        }
    }
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        PAYMENT_EVENT_VERSION.to_string()
    }
}

/// A refusal by the Payment aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// No payment is due for this booking.
    #[error("no payment for this booking")]
    NotFound,
    /// A payment is already open for this booking.
    #[error("a payment already exists for this booking")]
    AlreadyExists,
    /// Only the booking's guest pays.
    #[error("only the booking's guest pays")]
    NotGuest,
    /// Only the platform opens payments.
    #[error("only the platform opens payments")]
    SystemOnly,
    /// The order id is not this booking's.
    #[error("the order id does not match the booking")]
    OrderMismatch,
    /// The amount is not what is due.
    #[error("the amount does not match what is due")]
    AmountMismatch,
    /// Already paid (with another payment key).
    #[error("the booking is already paid")]
    AlreadyPaid,
    /// The deadline passed.
    #[error("the payment deadline has passed")]
    Overdue,
    /// The booking ended before it was paid.
    #[error("the booking ended; nothing is owed")]
    Voided,
    /// A refund larger than what is left of the payment.
    #[error("a refund cannot exceed what was paid")]
    RefundTooLarge,
    /// No refund is pending.
    #[error("no refund is pending")]
    NoPendingRefund,
}

/// The Payment aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// `None` until due.
    pub state: Option<PaymentState>,
}

/// What the aggregate knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentState {
    /// The booking (and payment) id.
    pub booking_id: Uuid,
    /// Who pays.
    pub guest_id: Uuid,
    /// Whose car.
    pub host_id: Uuid,
    /// Toss order id.
    pub order_id: String,
    /// Amount due.
    pub amount: Won,
    /// Deadline.
    pub due_at: DateTime<Utc>,
    /// Status.
    pub status: PaymentStatus,
    /// Toss's key of the confirmed payment.
    pub payment_key: Option<String>,
    /// Method.
    pub method: Option<String>,
    /// Toss's approval time.
    pub approved_at: Option<DateTime<Utc>>,
    /// The last refusal (code, message).
    pub last_failure: Option<(String, String)>,
    /// Won refunded by Toss so far.
    #[serde(default)]
    pub refunded: Won,
    /// A refund decided and not yet carried out by Toss.
    #[serde(default)]
    pub pending_refund: Option<Won>,
    /// The settlement that paid the host, once settled.
    #[serde(default)]
    pub settlement_id: Option<Uuid>,
}

impl PaymentState {
    /// What the platform keeps: paid minus refunded (0 unless completed).
    pub fn kept(&self) -> Won {
        if self.status == PaymentStatus::Completed {
            Won(self.amount.0 - self.refunded.0)
        } else {
            Won::ZERO
        }
    }
}

impl Aggregate for Payment {
    const TYPE: &'static str = "Payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
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
        match event {
            PaymentEvent::PaymentDue {
                booking_id,
                guest_id,
                host_id,
                order_id,
                amount,
                due_at,
                ..
            } => {
                self.state = Some(PaymentState {
                    booking_id,
                    guest_id,
                    host_id,
                    order_id,
                    amount,
                    due_at,
                    status: PaymentStatus::Pending,
                    payment_key: None,
                    method: None,
                    approved_at: None,
                    last_failure: None,
                    refunded: Won::ZERO,
                    pending_refund: None,
                    settlement_id: None,
                })
            }
            PaymentEvent::PaymentConfirmed {
                payment_key,
                method,
                approved_at,
                ..
            } => {
                if let Some(s) = self.state.as_mut() {
                    s.status = PaymentStatus::Completed;
                    s.payment_key = Some(payment_key);
                    s.method = method;
                    s.approved_at = approved_at;
                }
            }
            PaymentEvent::PaymentFailed { code, message, .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.status = PaymentStatus::Failed;
                    s.last_failure = Some((code, message));
                }
            }
            PaymentEvent::PaymentVoided { .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.status = PaymentStatus::Voided;
                }
            }
            PaymentEvent::RefundRequested { amount, .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.pending_refund = Some(amount);
                }
            }
            PaymentEvent::PaymentRefunded { amount, .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.refunded = Won(s.refunded.0 + amount.0);
                    s.pending_refund = None;
                }
            }
            PaymentEvent::RefundFailed { code, message, .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.pending_refund = None;
                    s.last_failure = Some((code, message));
                }
            }
            PaymentEvent::PaymentSettled { settlement_id, .. } => {
                if let Some(s) = self.state.as_mut() {
                    s.settlement_id = Some(settlement_id);
                }
            }
        }
    }
}

impl Payment {
    /// The events a command produces, or why it is refused. Pure.
    pub fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let PaymentCommand { actor, at, action } = command;
        match action {
            PaymentAction::Open {
                booking_id,
                guest_id,
                host_id,
                amount,
                due_at,
            } => {
                if actor.is_some() {
                    return Err(PaymentError::SystemOnly);
                }
                if self.state.is_some() {
                    return Err(PaymentError::AlreadyExists);
                }
                Ok(vec![PaymentEvent::PaymentDue {
                    booking_id,
                    guest_id,
                    host_id,
                    order_id: order_id(booking_id),
                    amount,
                    due_at,
                    at,
                }])
            }
            PaymentAction::Confirm {
                payment_key,
                order_id,
                amount,
                method,
                approved_at,
                toss_status,
            } => {
                let state = self.payable_by(actor, &order_id, amount, at)?;
                if state.status == PaymentStatus::Completed {
                    // The same confirmation again changes nothing.
                    return if state.payment_key.as_deref() == Some(payment_key.as_str()) {
                        Ok(Vec::new())
                    } else {
                        Err(PaymentError::AlreadyPaid)
                    };
                }
                Ok(vec![PaymentEvent::PaymentConfirmed {
                    payment_key,
                    amount,
                    method,
                    approved_at,
                    toss_status,
                    at,
                }])
            }
            PaymentAction::Close { refund, reason } => {
                if actor.is_some() {
                    return Err(PaymentError::SystemOnly);
                }
                let Some(state) = self.state.as_ref() else {
                    return Ok(Vec::new()); // never approved: nothing was due
                };
                match state.status {
                    PaymentStatus::Pending | PaymentStatus::Failed => {
                        Ok(vec![PaymentEvent::PaymentVoided { reason, at }])
                    }
                    PaymentStatus::Voided => Ok(Vec::new()),
                    PaymentStatus::Completed => {
                        if refund.0 <= 0 {
                            return Ok(Vec::new());
                        }
                        let left = state.kept().0 - state.pending_refund.map_or(0, |w| w.0);
                        if refund.0 > left {
                            return Err(PaymentError::RefundTooLarge);
                        }
                        Ok(vec![PaymentEvent::RefundRequested {
                            amount: refund,
                            reason,
                            at,
                        }])
                    }
                }
            }
            PaymentAction::CompleteRefund {
                amount,
                transaction_key,
            } => {
                let state = self.state.as_ref().ok_or(PaymentError::NotFound)?;
                match state.pending_refund {
                    Some(pending) if pending == amount => Ok(vec![PaymentEvent::PaymentRefunded {
                        amount,
                        transaction_key,
                        at,
                    }]),
                    Some(_) => Err(PaymentError::RefundTooLarge),
                    None => Err(PaymentError::NoPendingRefund),
                }
            }
            PaymentAction::FailRefund { code, message } => {
                let state = self.state.as_ref().ok_or(PaymentError::NotFound)?;
                if state.pending_refund.is_none() {
                    return Err(PaymentError::NoPendingRefund);
                }
                Ok(vec![PaymentEvent::RefundFailed { code, message, at }])
            }
            PaymentAction::Settle { settlement_id } => {
                if actor.is_some() {
                    return Err(PaymentError::SystemOnly);
                }
                let state = self.state.as_ref().ok_or(PaymentError::NotFound)?;
                // Settled once; only completed payments with no refund in flight.
                if state.settlement_id.is_some()
                    || state.status != PaymentStatus::Completed
                    || state.pending_refund.is_some()
                {
                    return Ok(Vec::new());
                }
                let split = crate::money::FeeSplit::of(state.kept());
                Ok(vec![PaymentEvent::PaymentSettled {
                    settlement_id,
                    kept: split.total,
                    platform_fee: split.platform_fee,
                    host_share: split.host_share,
                    at,
                }])
            }
            PaymentAction::RecordFailure {
                payment_key,
                code,
                message,
            } => {
                let state = self.state.as_ref().ok_or(PaymentError::NotFound)?;
                if state.status == PaymentStatus::Completed {
                    return Err(PaymentError::AlreadyPaid);
                }
                Ok(vec![PaymentEvent::PaymentFailed {
                    payment_key,
                    code,
                    message,
                    at,
                }])
            }
        }
    }

    /// Checks an attempt to pay before anyone calls Toss: the guest, the right order and amount,
    /// in time. Returns the state. An already completed payment passes (the caller decides
    /// whether it is the same payment).
    pub fn payable_by(
        &self,
        actor: Option<Actor>,
        order_id: &str,
        amount: Won,
        at: DateTime<Utc>,
    ) -> Result<&PaymentState, PaymentError> {
        let state = self.state.as_ref().ok_or(PaymentError::NotFound)?;
        // `None` is the platform reconciling what Toss reports (the webhook).
        if let Some(actor) = actor {
            if actor.user_id != state.guest_id {
                return Err(PaymentError::NotGuest);
            }
        }
        if order_id != state.order_id {
            return Err(PaymentError::OrderMismatch);
        }
        if amount != state.amount {
            return Err(PaymentError::AmountMismatch);
        }
        if state.status == PaymentStatus::Voided {
            return Err(PaymentError::Voided);
        }
        if state.status != PaymentStatus::Completed && at >= state.due_at {
            return Err(PaymentError::Overdue);
        }
        Ok(state)
    }
}

pub mod settlement;

#[cfg(test)]
mod tests;

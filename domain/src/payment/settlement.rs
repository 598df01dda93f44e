//! The Settlement aggregate: one payout statement to one host, listing the payments it covers.

use crate::money::Won;
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One payment in a settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementLine {
    /// The booking (and payment).
    pub booking_id: Uuid,
    /// Paid by the guest.
    pub paid: Won,
    /// Refunded to the guest.
    pub refunded: Won,
    /// Kept: paid − refunded.
    pub kept: Won,
    /// The platform's fee on it.
    pub platform_fee: Won,
    /// The host's share of it.
    pub host_share: Won,
}

/// What may be asked of a settlement.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueSettlement {
    /// Its id.
    pub settlement_id: Uuid,
    /// The host paid.
    pub host_id: Uuid,
    /// Trips that ended before this instant are included.
    pub cutoff: DateTime<Utc>,
    /// The lines (never empty).
    pub lines: Vec<SettlementLine>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The settlement's one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SettlementEvent {
    /// A statement was issued to a host.
    SettlementIssued {
        /// Its id.
        settlement_id: Uuid,
        /// The host.
        host_id: Uuid,
        /// The cut-off.
        cutoff: DateTime<Utc>,
        /// The lines.
        lines: Vec<SettlementLine>,
        /// Sum paid.
        gross: Won,
        /// Sum refunded.
        refunds: Won,
        /// Sum of fees.
        platform_fee: Won,
        /// Sum of host shares: what the host receives.
        host_amount: Won,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for SettlementEvent {
    fn event_type(&self) -> String {
        "SettlementIssued".into()
    }

    fn event_version(&self) -> String {
        "1.0".into()
    }
}

/// Why a settlement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// Issued already.
    #[error("settlement already issued")]
    AlreadyIssued,
    /// Nothing to settle.
    #[error("a settlement needs at least one line")]
    Empty,
    /// A line whose figures do not add up.
    #[error("line for booking {0} does not add up")]
    Inconsistent(Uuid),
}

/// A settlement; `None` until issued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    /// The issued statement.
    pub issued: Option<SettlementEvent>,
}

impl Aggregate for Settlement {
    const TYPE: &'static str = "Settlement";
    type Command = IssueSettlement;
    type Event = SettlementEvent;
    type Error = SettlementError;
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
        self.issued = Some(event);
    }
}

impl Settlement {
    /// The statement's event, with totals computed from the lines. Pure.
    pub fn decide(&self, c: IssueSettlement) -> Result<Vec<SettlementEvent>, SettlementError> {
        if self.issued.is_some() {
            return Err(SettlementError::AlreadyIssued);
        }
        if c.lines.is_empty() {
            return Err(SettlementError::Empty);
        }
        let sum = |f: fn(&SettlementLine) -> Won| Won(c.lines.iter().map(|l| f(l).0).sum());
        for l in &c.lines {
            if l.paid.0 - l.refunded.0 != l.kept.0 || l.platform_fee.0 + l.host_share.0 != l.kept.0
            {
                return Err(SettlementError::Inconsistent(l.booking_id));
            }
        }
        Ok(vec![SettlementEvent::SettlementIssued {
            settlement_id: c.settlement_id,
            host_id: c.host_id,
            cutoff: c.cutoff,
            gross: sum(|l| l.paid),
            refunds: sum(|l| l.refunded),
            platform_fee: sum(|l| l.platform_fee),
            host_amount: sum(|l| l.host_share),
            lines: c.lines,
            at: c.at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u128, paid: i64, refunded: i64) -> SettlementLine {
        let kept = Won(paid - refunded);
        let split = crate::money::FeeSplit::of(kept);
        SettlementLine {
            booking_id: Uuid::from_u128(id),
            paid: Won(paid),
            refunded: Won(refunded),
            kept,
            platform_fee: split.platform_fee,
            host_share: split.host_share,
        }
    }

    #[test]
    fn totals_add_up_and_inconsistent_lines_are_refused() {
        let at: DateTime<Utc> = "2026-12-10T00:00:00Z".parse().unwrap();
        let issue = |lines| IssueSettlement {
            settlement_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            cutoff: at,
            lines,
            at,
        };
        let events = Settlement::default()
            .decide(issue(vec![line(10, 54_000, 0), line(11, 40_000, 20_000)]))
            .unwrap();
        let SettlementEvent::SettlementIssued {
            gross,
            refunds,
            platform_fee,
            host_amount,
            ..
        } = &events[0];
        assert_eq!(*gross, Won(94_000));
        assert_eq!(*refunds, Won(20_000));
        assert_eq!(*platform_fee, Won(8_100 + 3_000));
        assert_eq!(*host_amount, Won(45_900 + 17_000));
        assert_eq!(platform_fee.0 + host_amount.0, gross.0 - refunds.0);
        let mut bad = line(12, 10_000, 0);
        bad.host_share = Won(9_999);
        assert_eq!(
            Settlement::default().decide(issue(vec![bad])),
            Err(SettlementError::Inconsistent(Uuid::from_u128(12)))
        );
        assert_eq!(
            Settlement::default().decide(issue(vec![])),
            Err(SettlementError::Empty)
        );
    }

    #[test]
    fn a_settlement_is_issued_once() {
        use cqrs_es::test::TestFramework;
        use cqrs_es::DomainEvent;
        let at: DateTime<Utc> = "2026-12-10T00:00:00Z".parse().unwrap();
        let issue = IssueSettlement {
            settlement_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            cutoff: at,
            lines: vec![line(10, 54_000, 0)],
            at,
        };
        let issued = Settlement::default().decide(issue.clone()).unwrap();
        assert_eq!(issued[0].event_type(), "SettlementIssued");
        assert_eq!(issued[0].event_version(), "1.0");
        TestFramework::<Settlement>::with(())
            .given_no_previous_events()
            .when(issue.clone())
            .then_expect_events(issued.clone());
        TestFramework::<Settlement>::with(())
            .given(issued)
            .when(issue)
            .then_expect_error(SettlementError::AlreadyIssued);
    }
}

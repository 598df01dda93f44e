//! The finance audit: every settlement figure recomputed from the event log alone, compared
//! with the statements as issued, with the payments' own settlement events, with the amounts
//! Toss confirmed (as recorded in the log), and with the settlement read table.

use carshare_domain::money::FeeSplit;
use carshare_domain::payment::settlement::{SettlementEvent, SettlementLine};
use carshare_domain::payment::PaymentEvent;
use carshare_domain::Won;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

/// What to audit: settlements issued in `[from, to)`, of one host or all.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditScope {
    /// Issued at or after.
    pub from: Option<DateTime<Utc>>,
    /// Issued before.
    pub to: Option<DateTime<Utc>>,
    /// Only this host.
    pub host_id: Option<Uuid>,
}

/// One disagreement, with the events behind it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Discrepancy {
    /// The settlement concerned.
    pub settlement_id: Uuid,
    /// The booking (payment) concerned, when it is about one line.
    pub booking_id: Option<Uuid>,
    /// What disagrees, e.g. `line`, `totals`, `payment_settled`, `read_model`.
    pub kind: &'static str,
    /// What the log says it should be.
    pub expected: serde_json::Value,
    /// What was found.
    pub found: serde_json::Value,
    /// Global positions of the events behind the expected figure.
    pub events: Vec<i64>,
}

/// The audit's result.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditReport {
    /// Events replayed.
    pub events_read: u64,
    /// Settlements checked.
    pub settlements_checked: usize,
    /// Won paid to hosts by the checked settlements, as recomputed.
    pub host_amount: i64,
    /// Fees kept by the platform, as recomputed.
    pub platform_fee: i64,
    /// Recomputed totals per host, by host id.
    pub hosts: Vec<HostTotals>,
    /// Disagreements; empty when everything agrees.
    pub discrepancies: Vec<Discrepancy>,
}

/// One host's recomputed figures over the checked settlements.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct HostTotals {
    /// The host.
    pub host_id: Uuid,
    /// Settlements checked.
    pub settlements: usize,
    /// Won paid by guests.
    pub gross: i64,
    /// Won refunded before settlement.
    pub refunds: i64,
    /// The platform's fees.
    pub platform_fee: i64,
    /// Won paid to the host.
    pub host_amount: i64,
}

/// What one payment's events say; `(amount, sequence, position)` so the facts can be read in
/// any order and still tell which refunds came before the settlement.
#[derive(Default)]
struct PaymentFacts {
    confirmed: Option<(Won, i64)>,
    refunds: Vec<(Won, i64, i64)>,
    settled: Option<(Uuid, Won, Won, Won, i64, i64)>,
}

struct Issued {
    host_id: Uuid,
    at: DateTime<Utc>,
    lines: Vec<SettlementLine>,
    totals: (Won, Won, Won, Won),
    position: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    global_position: i64,
    payload: String,
}

/// Replays the payment and settlement events (streamed) and checks every
/// settlement in `scope`. `progress` is called with the number of events read so far.
pub async fn audit_settlements(
    pool: &PgPool,
    scope: AuditScope,
    mut progress: impl FnMut(u64),
) -> Result<AuditReport, sqlx::Error> {
    let mut payments: HashMap<Uuid, PaymentFacts> = HashMap::new();
    let mut settlements: HashMap<Uuid, Issued> = HashMap::new();
    let mut report = AuditReport::default();
    let mut rows = sqlx::query_as::<_, Row>(
        // No ORDER BY: a sequential scan without a sort; each payment's facts carry their
        // sequence, which is all the checks need to know about order.
        "SELECT aggregate_type, aggregate_id, sequence, global_position, payload::text AS payload \
         FROM events WHERE aggregate_type IN ('Payment', 'Settlement')",
    )
    .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        report.events_read += 1;
        if report.events_read % 10_000 == 0 {
            progress(report.events_read);
        }
        let Ok(id) = Uuid::parse_str(&row.aggregate_id) else {
            continue;
        };
        let position = row.global_position;
        if row.aggregate_type == "Settlement" {
            if let Ok(SettlementEvent::SettlementIssued {
                host_id,
                lines,
                gross,
                refunds,
                platform_fee,
                host_amount,
                at,
                ..
            }) = serde_json::from_str::<SettlementEvent>(&row.payload)
            {
                settlements.insert(
                    id,
                    Issued {
                        host_id,
                        at,
                        lines,
                        totals: (gross, refunds, platform_fee, host_amount),
                        position,
                    },
                );
            }
            continue;
        }
        let facts = payments.entry(id).or_default();
        match serde_json::from_str::<PaymentEvent>(&row.payload) {
            Ok(PaymentEvent::PaymentConfirmed { amount, .. }) => {
                facts.confirmed = Some((amount, position))
            }
            Ok(PaymentEvent::PaymentRefunded { amount, .. }) => {
                facts.refunds.push((amount, row.sequence, position))
            }
            Ok(PaymentEvent::PaymentSettled {
                settlement_id,
                kept,
                platform_fee,
                host_share,
                ..
            }) => {
                facts.settled = Some((
                    settlement_id,
                    kept,
                    platform_fee,
                    host_share,
                    row.sequence,
                    position,
                ))
            }
            _ => {}
        }
    }
    progress(report.events_read);

    let stored: HashMap<Uuid, (i64, i64, i64, i64)> =
        sqlx::query_as::<_, (Uuid, i64, i64, i64, i64)>(
            "SELECT id, gross, refunds, platform_fee, host_amount FROM read.settlements",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, g, r, f, h)| (id, (g, r, f, h)))
        .collect();

    let mut ids: Vec<&Uuid> = settlements.keys().collect();
    ids.sort();
    let mut per_host: std::collections::BTreeMap<Uuid, HostTotals> = Default::default();
    for settlement_id in ids {
        let issued = &settlements[settlement_id];
        if scope.host_id.is_some_and(|h| h != issued.host_id)
            || scope.from.is_some_and(|f| issued.at < f)
            || scope.to.is_some_and(|t| issued.at >= t)
        {
            continue;
        }
        report.settlements_checked += 1;
        let (mut gross, mut refunds, mut fees, mut host) = (0i64, 0i64, 0i64, 0i64);
        for line in &issued.lines {
            let facts = payments.get(&line.booking_id);
            let mut behind = vec![issued.position];
            let paid = facts.and_then(|f| f.confirmed).map_or(Won::ZERO, |(w, p)| {
                behind.push(p);
                w
            });
            // Refunds count toward a settlement only if Toss carried them out before it.
            let settled_at = facts.and_then(|f| f.settled).map_or(i64::MAX, |s| s.4);
            let refunded = Won(facts.map_or(0, |f| {
                f.refunds
                    .iter()
                    .filter(|(_, seq, _)| *seq < settled_at)
                    .map(|(w, _, p)| {
                        behind.push(*p);
                        w.0
                    })
                    .sum()
            }));
            let split = FeeSplit::of(Won(paid.0 - refunded.0));
            let expected = SettlementLine {
                booking_id: line.booking_id,
                paid,
                refunded,
                kept: split.total,
                platform_fee: split.platform_fee,
                host_share: split.host_share,
            };
            if &expected != line {
                report.discrepancies.push(Discrepancy {
                    settlement_id: *settlement_id,
                    booking_id: Some(line.booking_id),
                    kind: "line",
                    expected: serde_json::to_value(&expected).unwrap_or_default(),
                    found: serde_json::to_value(line).unwrap_or_default(),
                    events: behind.clone(),
                });
            }
            match facts.and_then(|f| f.settled) {
                Some((sid, kept, fee, share, _, _))
                    if sid == *settlement_id
                        && kept == split.total
                        && fee == split.platform_fee
                        && share == split.host_share => {}
                other => report.discrepancies.push(Discrepancy {
                    settlement_id: *settlement_id,
                    booking_id: Some(line.booking_id),
                    kind: "payment_settled",
                    expected: serde_json::json!({"settlement_id": settlement_id, "kept": split.total,
                        "platform_fee": split.platform_fee, "host_share": split.host_share}),
                    found: serde_json::to_value(other.map(|(sid, kept, fee, share, _, _)| {
                        serde_json::json!({"settlement_id": sid, "kept": kept, "platform_fee": fee, "host_share": share})
                    }))
                    .unwrap_or_default(),
                    events: behind,
                }),
            }
            gross += paid.0;
            refunds += refunded.0;
            fees += split.platform_fee.0;
            host += split.host_share.0;
        }
        report.host_amount += host;
        report.platform_fee += fees;
        let totals = per_host
            .entry(issued.host_id)
            .or_insert_with(|| HostTotals {
                host_id: issued.host_id,
                ..HostTotals::default()
            });
        totals.settlements += 1;
        totals.gross += gross;
        totals.refunds += refunds;
        totals.platform_fee += fees;
        totals.host_amount += host;
        let expected = (gross, refunds, fees, host);
        let issued_totals = (
            issued.totals.0 .0,
            issued.totals.1 .0,
            issued.totals.2 .0,
            issued.totals.3 .0,
        );
        let as_json = |t: (i64, i64, i64, i64)| serde_json::json!({"gross": t.0, "refunds": t.1, "platform_fee": t.2, "host_amount": t.3});
        if issued_totals != expected {
            report.discrepancies.push(Discrepancy {
                settlement_id: *settlement_id,
                booking_id: None,
                kind: "totals",
                expected: as_json(expected),
                found: as_json(issued_totals),
                events: vec![issued.position],
            });
        }
        if stored.get(settlement_id) != Some(&expected) {
            report.discrepancies.push(Discrepancy {
                settlement_id: *settlement_id,
                booking_id: None,
                kind: "read_model",
                expected: as_json(expected),
                found: stored
                    .get(settlement_id)
                    .map(|t| as_json(*t))
                    .unwrap_or(serde_json::Value::Null),
                events: vec![issued.position],
            });
        }
    }
    report.hosts = per_host.into_values().collect();
    Ok(report)
}

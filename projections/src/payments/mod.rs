//! The `payments` projection: table `read.payments`, one row per booking payment. It serves the
//! payment history of guests and hosts.

use crate::fold::{apply_json_rows, decode, row_sequence, AggregateRow, JsonRow, JsonTable};
use crate::projection::{Poisoned, Projection, Target};
use async_trait::async_trait;
use carshare_domain::payment::settlement::{Settlement, SettlementEvent};
use carshare_domain::payment::{Payment, PaymentEvent, PaymentStatus};
use carshare_event_store::{StoredEvent, StreamReader};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Name of the projection.
pub const NAME: &str = "payments";

/// Columns, in table order.
const COLUMNS: &str = "id, guest_id, host_id, order_id, amount, status, due_at, payment_key, \
    method, approved_at, refunded_amount, pending_refund, last_failure, settlement_id, \
    settled_at, created_at, updated_at, last_sequence, last_position";

/// A payment as the read side knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct PaymentRow {
    /// The booking's id.
    pub id: Uuid,
    /// Who pays.
    pub guest_id: Uuid,
    /// Whose car.
    pub host_id: Uuid,
    /// Toss order id.
    pub order_id: String,
    /// Amount due.
    pub amount: i64,
    /// `pending`, `completed`, `failed`, `voided`.
    pub status: String,
    /// Deadline.
    pub due_at: DateTime<Utc>,
    /// Toss's key of the confirmed payment.
    pub payment_key: Option<String>,
    /// Method.
    pub method: Option<String>,
    /// Toss's approval time.
    pub approved_at: Option<DateTime<Utc>>,
    /// Won refunded.
    pub refunded_amount: i64,
    /// Refund decided, not yet carried out.
    pub pending_refund: Option<i64>,
    /// The last refusal's Toss code.
    pub last_failure: Option<String>,
    /// The settlement that paid the host.
    pub settlement_id: Option<Uuid>,
    /// When it was settled.
    pub settled_at: Option<DateTime<Utc>>,
    /// When it became due.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last event applied.
    pub last_sequence: i64,
    /// Its position.
    pub last_position: i64,
}

impl JsonRow for PaymentRow {
    fn id(&self) -> Uuid {
        self.id
    }
}

impl AggregateRow for PaymentRow {
    fn last_sequence(&self) -> i64 {
        self.last_sequence
    }

    fn create(id: Uuid, stored: &StoredEvent) -> Result<Self, String> {
        match decode::<PaymentEvent>(stored)? {
            PaymentEvent::PaymentDue {
                guest_id,
                host_id,
                order_id,
                amount,
                due_at,
                at,
                ..
            } => Ok(PaymentRow {
                id,
                guest_id,
                host_id,
                order_id,
                amount: amount.amount(),
                status: PaymentStatus::Pending.as_str().into(),
                due_at,
                payment_key: None,
                method: None,
                approved_at: None,
                refunded_amount: 0,
                pending_refund: None,
                last_failure: None,
                settlement_id: None,
                settled_at: None,
                created_at: at,
                updated_at: at,
                last_sequence: stored.sequence,
                last_position: stored.position,
            }),
            other => Err(format!(
                "{} before PaymentDue (sequence {})",
                other.name(),
                stored.sequence
            )),
        }
    }

    fn apply(&mut self, stored: &StoredEvent) -> Result<(), String> {
        let event: PaymentEvent = decode(stored)?;
        self.updated_at = event.at();
        match event {
            PaymentEvent::PaymentDue { .. } => return Err("PaymentDue twice".into()),
            PaymentEvent::PaymentConfirmed {
                payment_key,
                method,
                approved_at,
                ..
            } => {
                self.status = PaymentStatus::Completed.as_str().into();
                self.payment_key = Some(payment_key);
                self.method = method;
                self.approved_at = approved_at;
            }
            PaymentEvent::PaymentFailed { code, .. } => {
                self.status = PaymentStatus::Failed.as_str().into();
                self.last_failure = Some(code);
            }
            PaymentEvent::PaymentVoided { .. } => {
                self.status = PaymentStatus::Voided.as_str().into();
            }
            PaymentEvent::RefundRequested { amount, .. } => {
                self.pending_refund = Some(amount.amount())
            }
            PaymentEvent::PaymentRefunded { amount, .. } => {
                self.refunded_amount += amount.amount();
                self.pending_refund = None;
            }
            PaymentEvent::RefundFailed { code, .. } => {
                self.pending_refund = None;
                self.last_failure = Some(code);
            }
            PaymentEvent::PaymentSettled {
                settlement_id, at, ..
            } => {
                self.settlement_id = Some(settlement_id);
                self.settled_at = Some(at);
            }
        }
        self.last_sequence = stored.sequence;
        self.last_position = stored.position;
        Ok(())
    }
}

/// Builds `read.payments`.
pub struct PaymentProjection;

#[async_trait]
impl Projection for PaymentProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["payments"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Payment::TYPE]
    }

    fn needs_metadata(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: Target,
        reader: &StreamReader,
        events: &[StoredEvent],
    ) -> Result<Vec<Poisoned>, sqlx::Error> {
        let table = target.table("payments");
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| self.handles(&e.aggregate_type))
            .collect();
        apply_json_rows::<PaymentRow>(
            conn,
            reader,
            &events,
            JsonTable {
                table: &table,
                columns: COLUMNS,
                on_conflict: "DO UPDATE SET status = EXCLUDED.status, \
                   payment_key = EXCLUDED.payment_key, method = EXCLUDED.method, \
                   approved_at = EXCLUDED.approved_at, refunded_amount = EXCLUDED.refunded_amount, \
                   pending_refund = EXCLUDED.pending_refund, last_failure = EXCLUDED.last_failure, \
                   settlement_id = EXCLUDED.settlement_id, settled_at = EXCLUDED.settled_at, \
                   updated_at = EXCLUDED.updated_at, last_sequence = EXCLUDED.last_sequence, \
                   last_position = EXCLUDED.last_position \
                 WHERE cur.last_sequence < EXCLUDED.last_sequence",
                noun: "payment",
            },
        )
        .await
    }

    async fn applied_sequence(
        &self,
        pool: &PgPool,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<i64, sqlx::Error> {
        if !self.handles(aggregate_type) {
            return Ok(0);
        }
        row_sequence(pool, "read.payments", aggregate_id).await
    }
}

/// A page of one user's payments (as guest or as host), newest first, and the next cursor.
pub async fn history(
    pool: &PgPool,
    user_id: Uuid,
    as_host: bool,
    after: Option<crate::vehicles::OwnerCursor>,
    limit: i64,
) -> Result<(Vec<PaymentRow>, Option<crate::vehicles::OwnerCursor>), sqlx::Error> {
    let column = if as_host { "host_id" } else { "guest_id" };
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM read.payments WHERE {column} = "
    ));
    sql.push_bind(user_id);
    crate::paging::finish_query(&mut sql, after, limit);
    let rows: Vec<PaymentRow> = sql.build_query_as().fetch_all(pool).await?;
    Ok(crate::paging::split_page(rows, limit, |r| {
        crate::vehicles::OwnerCursor {
            created_at: r.created_at,
            id: r.id,
        }
    }))
}

/// Name of the settlements projection.
pub const SETTLEMENTS: &str = "settlements";

/// A settlement statement as the read side knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct SettlementRow {
    /// Id.
    pub id: Uuid,
    /// The host.
    pub host_id: Uuid,
    /// Trips ended before this were included.
    pub cutoff: DateTime<Utc>,
    /// Sum paid.
    pub gross: i64,
    /// Sum refunded.
    pub refunds: i64,
    /// Sum of fees.
    pub platform_fee: i64,
    /// What the host receives.
    pub host_amount: i64,
    /// The lines as issued.
    pub lines: Json<serde_json::Value>,
    /// Issued at.
    pub created_at: DateTime<Utc>,
    /// Same as created (statements do not change).
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last event applied.
    pub last_sequence: i64,
    /// Its position.
    pub last_position: i64,
}

const SETTLEMENT_COLUMNS: &str = "id, host_id, cutoff, gross, refunds, platform_fee, \
    host_amount, lines, created_at, updated_at, last_sequence, last_position";

impl JsonRow for SettlementRow {
    fn id(&self) -> Uuid {
        self.id
    }
}

impl AggregateRow for SettlementRow {
    fn last_sequence(&self) -> i64 {
        self.last_sequence
    }

    fn create(id: Uuid, stored: &StoredEvent) -> Result<Self, String> {
        let SettlementEvent::SettlementIssued {
            host_id,
            cutoff,
            lines,
            gross,
            refunds,
            platform_fee,
            host_amount,
            at,
            ..
        } = decode::<SettlementEvent>(stored)?;
        Ok(SettlementRow {
            id,
            host_id,
            cutoff,
            gross: gross.amount(),
            refunds: refunds.amount(),
            platform_fee: platform_fee.amount(),
            host_amount: host_amount.amount(),
            lines: Json(serde_json::to_value(lines).map_err(|e| e.to_string())?),
            created_at: at,
            updated_at: at,
            last_sequence: stored.sequence,
            last_position: stored.position,
        })
    }

    fn apply(&mut self, stored: &StoredEvent) -> Result<(), String> {
        Err(format!(
            "a settlement is issued once; unexpected {} at sequence {}",
            stored.event_type, stored.sequence
        ))
    }
}

/// Builds `read.settlements`.
pub struct SettlementProjection;

#[async_trait]
impl Projection for SettlementProjection {
    fn name(&self) -> &'static str {
        SETTLEMENTS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["settlements"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Settlement::TYPE]
    }

    fn needs_metadata(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: Target,
        reader: &StreamReader,
        events: &[StoredEvent],
    ) -> Result<Vec<Poisoned>, sqlx::Error> {
        let table = target.table("settlements");
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| self.handles(&e.aggregate_type))
            .collect();
        apply_json_rows::<SettlementRow>(
            conn,
            reader,
            &events,
            JsonTable {
                table: &table,
                columns: SETTLEMENT_COLUMNS,
                on_conflict: "DO NOTHING",
                noun: "settlement",
            },
        )
        .await
    }

    async fn applied_sequence(
        &self,
        pool: &PgPool,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<i64, sqlx::Error> {
        if !self.handles(aggregate_type) {
            return Ok(0);
        }
        row_sequence(pool, "read.settlements", aggregate_id).await
    }
}

/// Settlements, newest first: one host's, or everyone's (`host_id` `None`), issued in
/// `[from, to)` when given.
pub async fn settlements(
    pool: &PgPool,
    host_id: Option<Uuid>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<SettlementRow>, sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {SETTLEMENT_COLUMNS} FROM read.settlements WHERE true"
    ));
    if let Some(host) = host_id {
        sql.push(" AND host_id = ").push_bind(host);
    }
    if let Some(from) = from {
        sql.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = to {
        sql.push(" AND created_at < ").push_bind(to);
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    sql.build_query_as().fetch_all(pool).await
}

/// The payments of these bookings (those that have one).
pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<PaymentRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM read.payments WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

//! The `notifications` projection: turns events into inbox entries (`read.notifications`) for
//! the people they concern, with Korean titles and bodies:
//!
//! | event | to |
//! |---|---|
//! | `BookingRequested` | host |
//! | `BookingApproved`, `BookingRejected`, `BookingExpired` | guest |
//! | `BookingCancelled` | guest and host, except whoever cancelled |
//! | `PaymentConfirmed` | guest and host |
//! | `PaymentRefunded` | guest |
//! | `SettlementIssued` | host |
//! | `ReviewSubmitted` | the reviewee |
//! | `AnnouncementSent` | the user, or every user of the role |
//!
//! An entry's id is a UUID v5 of the event (type, aggregate, sequence) and the recipient, so a
//! redelivered event inserts nothing. On the live tables each new entry also gets one row per
//! channel in `notification_deliveries` (WebSocket and push) in the same transaction; the
//! dispatcher sends those, so each notification leaves at most once per channel. A rebuild
//! writes entries only: it never sends anything again.

use crate::fold::decode;
use crate::projection::{Poisoned, Projection, Target};
use async_trait::async_trait;
use carshare_domain::announcement::{Announcement, AnnouncementEvent, Audience};
use carshare_domain::booking::{Booking, BookingEvent, CancelledBy, ReviewerRole};
use carshare_domain::payment::settlement::{Settlement, SettlementEvent};
use carshare_domain::payment::{Payment, PaymentEvent};
use carshare_domain::SEOUL;
use carshare_event_store::{StoredEvent, StreamReader};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::{json, Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use std::collections::HashMap;
use uuid::Uuid;

/// Name of the projection.
pub const NAME: &str = "notifications";

/// How long the live inbox worker lets events gather before a batch.
pub const INBOX_LINGER: std::time::Duration = std::time::Duration::from_millis(25);

/// Namespace of notification ids (UUID v5 of event and recipient).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_2d4e_93a0_4c55_8e2f_0c7d_1a9b_3e61);

const COLUMNS: &str = "id, user_id, kind, title, body, data, booking_id, source_type, source_id, \
    source_sequence, position, created_at";

/// An inbox entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct NotificationRow {
    /// Stable id (derived from the event and the recipient).
    pub id: Uuid,
    /// Recipient.
    pub user_id: Uuid,
    /// e.g. `booking.requested`, `payment.completed`, `announcement`.
    pub kind: String,
    /// Korean title.
    pub title: String,
    /// Korean body.
    pub body: String,
    /// String-to-string data for the apps (also the FCM data payload).
    pub data: Json<Map<String, Value>>,
    /// The booking concerned, if any.
    pub booking_id: Option<Uuid>,
    /// Aggregate type of the source event.
    pub source_type: String,
    /// Aggregate id of the source event.
    pub source_id: String,
    /// Its sequence.
    pub source_sequence: i64,
    /// Its stream position.
    pub position: i64,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
}

/// The guest and host of a booking (or of its payment, which has the booking's id).
#[derive(Debug, Clone, Copy)]
struct Parties {
    guest_id: Uuid,
    host_id: Uuid,
}

/// What one event says to one person, before ids are assigned.
struct Message {
    to: Uuid,
    kind: &'static str,
    title: String,
    body: String,
}

/// `54000` → `54,000원`.
pub fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{out}원", if amount < 0 { "-" } else { "" })
}

/// An instant as a Seoul wall-clock time, e.g. `12월 3일 10:00`.
pub fn seoul(at: DateTime<Utc>) -> String {
    at.with_timezone(&SEOUL)
        .format("%-m월 %-d일 %H:%M")
        .to_string()
}

fn booking_messages(event: &BookingEvent, parties: Parties) -> Vec<Message> {
    let Parties { guest_id, host_id } = parties;
    match event {
        BookingEvent::BookingRequested {
            start,
            end,
            total_amount,
            respond_by,
            ..
        } => vec![Message {
            to: host_id,
            kind: "booking.requested",
            title: "새 예약 요청".into(),
            body: format!(
                "{} ~ {} 예약 요청이 도착했습니다 ({}). {}까지 승인 또는 거절해 주세요.",
                seoul(*start),
                seoul(*end),
                won(total_amount.amount()),
                seoul(*respond_by)
            ),
        }],
        BookingEvent::BookingApproved { .. } => vec![Message {
            to: guest_id,
            kind: "booking.approved",
            title: "예약이 승인되었습니다".into(),
            body: "호스트가 예약을 승인했습니다. 결제를 마치면 예약이 확정됩니다.".into(),
        }],
        BookingEvent::BookingRejected { host_response, .. } => vec![Message {
            to: guest_id,
            kind: "booking.rejected",
            title: "예약이 거절되었습니다".into(),
            body: match host_response {
                Some(note) => format!("호스트가 예약 요청을 거절했습니다: {note}"),
                None => "호스트가 예약 요청을 거절했습니다.".into(),
            },
        }],
        BookingEvent::BookingExpired { .. } => vec![Message {
            to: guest_id,
            kind: "booking.expired",
            title: "예약 요청이 만료되었습니다".into(),
            body: "호스트가 응답 시간 안에 답하지 않아 예약 요청이 만료되었습니다.".into(),
        }],
        BookingEvent::BookingCancelled {
            by, refund_amount, ..
        } => {
            let who = match by {
                CancelledBy::Guest => "게스트가 예약을 취소했습니다.",
                CancelledBy::Host => "호스트가 예약을 취소했습니다.",
                CancelledBy::Admin => "관리자가 예약을 취소했습니다.",
                CancelledBy::Platform => "결제 기한이 지나 예약이 자동으로 취소되었습니다.",
            };
            let mut out = Vec::new();
            if *by != CancelledBy::Guest {
                let refund = if refund_amount.amount() > 0 {
                    format!(" 환불 예정 금액: {}.", won(refund_amount.amount()))
                } else {
                    String::new()
                };
                out.push(Message {
                    to: guest_id,
                    kind: "booking.cancelled",
                    title: "예약이 취소되었습니다".into(),
                    body: format!("{who}{refund}"),
                });
            }
            if *by != CancelledBy::Host {
                out.push(Message {
                    to: host_id,
                    kind: "booking.cancelled",
                    title: "예약이 취소되었습니다".into(),
                    body: who.into(),
                });
            }
            out
        }
        BookingEvent::ReviewSubmitted {
            reviewee_id,
            reviewer_role,
            rating,
            ..
        } => vec![Message {
            to: *reviewee_id,
            kind: "review.received",
            title: "새 리뷰가 등록되었습니다".into(),
            body: format!(
                "{}가 {rating}점 리뷰를 남겼습니다.",
                match reviewer_role {
                    ReviewerRole::Guest => "게스트",
                    ReviewerRole::Host => "호스트",
                }
            ),
        }],
        BookingEvent::BookingStarted { .. }
        | BookingEvent::BookingCompleted { .. }
        | BookingEvent::BookingPhotosAdded { .. } => Vec::new(),
    }
}

fn payment_messages(event: &PaymentEvent, parties: Parties) -> Vec<Message> {
    match event {
        PaymentEvent::PaymentConfirmed { amount, .. } => vec![
            Message {
                to: parties.guest_id,
                kind: "payment.completed",
                title: "결제가 완료되었습니다".into(),
                body: format!(
                    "{} 결제가 완료되어 예약이 확정되었습니다.",
                    won(amount.amount())
                ),
            },
            Message {
                to: parties.host_id,
                kind: "payment.completed",
                title: "예약이 확정되었습니다".into(),
                body: format!(
                    "게스트가 {}을 결제해 예약이 확정되었습니다.",
                    won(amount.amount())
                ),
            },
        ],
        PaymentEvent::PaymentRefunded { amount, .. } => vec![Message {
            to: parties.guest_id,
            kind: "payment.refunded",
            title: "환불이 완료되었습니다".into(),
            body: format!("{}이 환불되었습니다.", won(amount.amount())),
        }],
        _ => Vec::new(),
    }
}

/// Builds `read.notifications` (and, live, the deliveries).
pub struct NotificationProjection;

/// Entries of a batch, and the events that could not be turned into any.
struct Batch {
    rows: Vec<NotificationRow>,
    poisoned: Vec<Poisoned>,
}

impl NotificationProjection {
    /// The guest and host of the booking (or payment) `aggregate_id`, from the aggregate's first
    /// event in the log, cached for the batch.
    async fn parties(
        reader: &StreamReader,
        cache: &mut HashMap<(String, String), Option<Parties>>,
        event: &StoredEvent,
    ) -> Result<Option<Parties>, sqlx::Error> {
        let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
        if let Some(found) = cache.get(&key) {
            return Ok(*found);
        }
        let first = reader
            .aggregate_events_between(&event.aggregate_type, &event.aggregate_id, 0, 2)
            .await?;
        let found = first.first().and_then(|e| {
            if e.aggregate_type == Booking::TYPE {
                match decode::<BookingEvent>(e).ok()? {
                    BookingEvent::BookingRequested {
                        guest_id, host_id, ..
                    } => Some(Parties { guest_id, host_id }),
                    _ => None,
                }
            } else {
                match decode::<PaymentEvent>(e).ok()? {
                    PaymentEvent::PaymentDue {
                        guest_id, host_id, ..
                    } => Some(Parties { guest_id, host_id }),
                    _ => None,
                }
            }
        });
        cache.insert(key, found);
        Ok(found)
    }

    async fn role_members(conn: &mut PgConnection, role: &str) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM users WHERE role = $1 AND erased_at IS NULL")
            .bind(role)
            .fetch_all(&mut *conn)
            .await
    }

    async fn messages(
        &self,
        conn: &mut PgConnection,
        reader: &StreamReader,
        events: &[StoredEvent],
    ) -> Result<Batch, sqlx::Error> {
        let mut cache = HashMap::new();
        let mut batch = Batch {
            rows: Vec::new(),
            poisoned: Vec::new(),
        };
        for event in events.iter().filter(|e| self.handles(&e.aggregate_type)) {
            let booking_id = Uuid::parse_str(&event.aggregate_id).ok();
            let mut data = Map::new();
            let messages: Result<Vec<Message>, String> = match event.aggregate_type.as_str() {
                t if t == Booking::TYPE => match decode::<BookingEvent>(event) {
                    Err(e) => Err(e),
                    Ok(decoded) => {
                        if matches!(
                            decoded,
                            BookingEvent::BookingStarted { .. }
                                | BookingEvent::BookingCompleted { .. }
                                | BookingEvent::BookingPhotosAdded { .. }
                        ) {
                            continue;
                        }
                        let parties = match &decoded {
                            BookingEvent::BookingRequested {
                                guest_id, host_id, ..
                            } => Some(Parties {
                                guest_id: *guest_id,
                                host_id: *host_id,
                            }),
                            _ => Self::parties(reader, &mut cache, event).await?,
                        };
                        if let BookingEvent::ReviewSubmitted { review_id, .. } = &decoded {
                            data.insert("review_id".into(), json!(review_id.to_string()));
                        }
                        parties
                            .map(|p| booking_messages(&decoded, p))
                            .ok_or_else(|| "the booking's request is not in the log".to_string())
                    }
                },
                t if t == Payment::TYPE => match decode::<PaymentEvent>(event) {
                    Err(e) => Err(e),
                    Ok(decoded) => {
                        if !matches!(
                            decoded,
                            PaymentEvent::PaymentConfirmed { .. }
                                | PaymentEvent::PaymentRefunded { .. }
                        ) {
                            continue;
                        }
                        Self::parties(reader, &mut cache, event)
                            .await?
                            .map(|p| payment_messages(&decoded, p))
                            .ok_or_else(|| "the payment's PaymentDue is not in the log".to_string())
                    }
                },
                t if t == Settlement::TYPE => match decode::<SettlementEvent>(event) {
                    Err(e) => Err(e),
                    Ok(SettlementEvent::SettlementIssued {
                        settlement_id,
                        host_id,
                        lines,
                        host_amount,
                        ..
                    }) => {
                        data.insert("settlement_id".into(), json!(settlement_id.to_string()));
                        Ok(vec![Message {
                            to: host_id,
                            kind: "settlement.issued",
                            title: "정산이 완료되었습니다".into(),
                            body: format!(
                                "예약 {}건의 정산 금액 {}이 확정되었습니다.",
                                lines.len(),
                                won(host_amount.amount())
                            ),
                        }])
                    }
                },
                t if t == Announcement::TYPE => match decode::<AnnouncementEvent>(event) {
                    Err(e) => Err(e),
                    Ok(AnnouncementEvent::AnnouncementSent {
                        announcement_id,
                        audience,
                        title,
                        body,
                        data: extra,
                        ..
                    }) => {
                        for (k, v) in extra {
                            data.insert(k, Value::String(v));
                        }
                        data.insert("announcement_id".into(), json!(announcement_id.to_string()));
                        let to = match audience {
                            Audience::User { user_id } => vec![user_id],
                            Audience::Role { role } => {
                                Self::role_members(conn, role.as_str()).await?
                            }
                        };
                        Ok(to
                            .into_iter()
                            .map(|to| Message {
                                to,
                                kind: "announcement",
                                title: title.clone(),
                                body: body.clone(),
                            })
                            .collect())
                    }
                },
                _ => continue,
            };
            let messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    batch.poisoned.push(Poisoned {
                        position: event.position,
                        error,
                    });
                    continue;
                }
            };
            let booking_id = booking_id.filter(|_| {
                event.aggregate_type == Booking::TYPE || event.aggregate_type == Payment::TYPE
            });
            for m in messages {
                let id = Uuid::new_v5(
                    &ID_NAMESPACE,
                    format!(
                        "{}/{}/{}/{}",
                        event.aggregate_type, event.aggregate_id, event.sequence, m.to
                    )
                    .as_bytes(),
                );
                let mut data = data.clone();
                data.insert("kind".into(), json!(m.kind));
                data.insert("notification_id".into(), json!(id.to_string()));
                if let Some(b) = booking_id {
                    data.insert("booking_id".into(), json!(b.to_string()));
                }
                batch.rows.push(NotificationRow {
                    id,
                    user_id: m.to,
                    kind: m.kind.into(),
                    title: m.title,
                    body: m.body,
                    data: Json(data),
                    booking_id,
                    source_type: event.aggregate_type.clone(),
                    source_id: event.aggregate_id.clone(),
                    source_sequence: event.sequence,
                    position: event.position,
                    created_at: event.recorded_at,
                });
            }
        }
        Ok(batch)
    }
}

#[async_trait]
impl Projection for NotificationProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notifications"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[
            Booking::TYPE,
            Payment::TYPE,
            Settlement::TYPE,
            Announcement::TYPE,
        ]
    }

    fn needs_metadata(&self) -> bool {
        false
    }

    /// No command waits for the inbox (only reads with `min_position` do), and a push is not
    /// hurried by a few milliseconds: batches gather for 25 ms, so a steady stream of bookings
    /// costs this worker about forty transactions a second rather than one per few bookings.
    fn min_linger(&self) -> std::time::Duration {
        INBOX_LINGER
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: Target,
        reader: &StreamReader,
        events: &[StoredEvent],
    ) -> Result<Vec<Poisoned>, sqlx::Error> {
        let Batch { rows, poisoned } = self.messages(conn, reader, events).await?;
        if rows.is_empty() {
            return Ok(poisoned);
        }
        let table = target.table("notifications");
        let json = serde_json::to_value(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let insert = format!(
            "INSERT INTO {table} ({COLUMNS}) \
             SELECT {COLUMNS} FROM jsonb_populate_recordset(NULL::{table}, $1) \
             ON CONFLICT (id) DO NOTHING"
        );
        let sql = match target {
            Target::Rebuild => insert,
            // Only entries inserted now get deliveries: a redelivered event sends nothing. A
            // push is queued only for a recipient with a registered device (without one it
            // could only be skipped).
            Target::Live => format!(
                "WITH inserted AS ({insert} RETURNING id, user_id) \
                 INSERT INTO notification_deliveries (notification_id, channel, user_id) \
                 SELECT i.id, c.channel, i.user_id FROM inserted i \
                 CROSS JOIN (VALUES ('websocket'), ('push')) AS c (channel) \
                 WHERE c.channel = 'websocket' \
                    OR EXISTS (SELECT 1 FROM notification_devices d WHERE d.user_id = i.user_id) \
                 ON CONFLICT DO NOTHING"
            ),
        };
        sqlx::query(&sql)
            .bind(Json(json))
            .execute(&mut *conn)
            .await?;
        Ok(poisoned)
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
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT max(source_sequence) FROM read.notifications \
             WHERE source_type = $1 AND source_id = $2",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_one(pool)
        .await?;
        Ok(last.unwrap_or(0))
    }
}

/// An inbox entry with its read mark.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct InboxEntry {
    /// The entry.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub notification: NotificationRow,
    /// When the user marked it read (`None`: unread).
    pub read_at: Option<DateTime<Utc>>,
}

/// Position in an inbox (unread first, then newest first): the last entry seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    /// Whether it was read.
    pub read: bool,
    /// Its time.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

impl InboxCursor {
    /// The opaque token.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}|{}",
            if self.read { "r" } else { "u" },
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// Reads a token; `None` if it is not one of ours.
    pub fn decode(token: &str) -> Option<InboxCursor> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(3, '|');
        let read = match parts.next()? {
            "r" => true,
            "u" => false,
            _ => return None,
        };
        Some(InboxCursor {
            read,
            created_at: DateTime::from_timestamp_micros(parts.next()?.parse().ok()?)?,
            id: Uuid::parse_str(parts.next()?).ok()?,
        })
    }
}

/// A page of a user's inbox.
#[derive(Debug, Clone, Copy)]
pub struct InboxQuery {
    /// The user.
    pub user_id: Uuid,
    /// Only unread entries.
    pub unread_only: bool,
    /// Entries after this cursor.
    pub after: Option<InboxCursor>,
    /// Page size.
    pub limit: i64,
}

const INBOX_SELECT: &str = "SELECT n.id, n.user_id, n.kind, n.title, n.body, n.data, \
    n.booking_id, n.source_type, n.source_id, n.source_sequence, n.position, n.created_at, \
    r.read_at FROM read.notifications n \
    LEFT JOIN notification_reads r ON r.notification_id = n.id";

/// The user's entries, unread first and newest first within each group, and the next page's
/// cursor. (Marking entries read between two pages moves them to the other group.)
pub async fn inbox(
    pool: &PgPool,
    q: InboxQuery,
) -> Result<(Vec<InboxEntry>, Option<InboxCursor>), sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT * FROM ({INBOX_SELECT} WHERE n.user_id = "));
    sql.push_bind(q.user_id);
    if q.unread_only {
        sql.push(" AND r.read_at IS NULL");
    }
    sql.push(") AS inbox");
    if let Some(after) = q.after {
        // Rows after the cursor in (read, created_at DESC, id DESC) order.
        sql.push(" WHERE ((read_at IS NOT NULL) > ")
            .push_bind(after.read)
            .push(" OR ((read_at IS NOT NULL) = ")
            .push_bind(after.read)
            .push(" AND (created_at, id) < (")
            .push_bind(after.created_at)
            .push(", ")
            .push_bind(after.id)
            .push(")))");
    }
    sql.push(" ORDER BY (read_at IS NOT NULL), created_at DESC, id DESC LIMIT ")
        .push_bind(q.limit + 1);
    let mut rows: Vec<InboxEntry> = sql.build_query_as().fetch_all(pool).await?;
    let next = if rows.len() as i64 > q.limit {
        rows.truncate(usize::try_from(q.limit).unwrap_or(0));
        rows.last().map(|r| InboxCursor {
            read: r.read_at.is_some(),
            created_at: r.notification.created_at,
            id: r.notification.id,
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// Number of unread entries of a user.
pub async fn unread_count(pool: &PgPool, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM read.notifications n \
         WHERE n.user_id = $1 \
           AND NOT EXISTS (SELECT 1 FROM notification_reads r WHERE r.notification_id = n.id)",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
}

/// One entry by id.
pub async fn entry(pool: &PgPool, id: Uuid) -> Result<Option<InboxEntry>, sqlx::Error> {
    sqlx::query_as(&format!("{INBOX_SELECT} WHERE n.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Entries by id (the dispatcher's view of what it sends).
pub async fn entries(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM read.notifications WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn won_amounts_have_thousands_separators() {
        assert_eq!(won(0), "0원");
        assert_eq!(won(999), "999원");
        assert_eq!(won(54_000), "54,000원");
        assert_eq!(won(1_234_567), "1,234,567원");
        assert_eq!(won(-8_100), "-8,100원");
    }

    #[test]
    fn times_are_shown_in_seoul() {
        let at: DateTime<Utc> = "2026-12-03T01:00:00Z".parse().unwrap();
        assert_eq!(seoul(at), "12월 3일 10:00");
    }

    #[test]
    fn a_cancellation_tells_the_other_side() {
        let parties = Parties {
            guest_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
        };
        let cancelled = |by| BookingEvent::BookingCancelled {
            by,
            reason: None,
            refund_rule: carshare_domain::booking::RefundRule::NotPaid,
            refund_amount: carshare_domain::Won(10_000),
            at: Utc::now(),
        };
        let to = |by| -> Vec<Uuid> {
            booking_messages(&cancelled(by), parties)
                .into_iter()
                .map(|m| m.to)
                .collect()
        };
        assert_eq!(to(CancelledBy::Guest), vec![parties.host_id]);
        assert_eq!(to(CancelledBy::Host), vec![parties.guest_id]);
        assert_eq!(
            to(CancelledBy::Platform),
            vec![parties.guest_id, parties.host_id]
        );
        let guest_note = &booking_messages(&cancelled(CancelledBy::Host), parties)[0].body;
        assert!(guest_note.contains("10,000원"), "{guest_note}");
    }
}

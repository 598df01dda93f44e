//! The `bookings` projection: table `read.bookings`, one row per booking. It serves a booking's
//! details, the guest's and the host's lists, and the expiry sweeper.

mod queries;
mod row;

pub use queries::{get, list, BookingCursor, BookingListQuery, ListRole};
pub use row::BookingRow;

use crate::fold::{apply_json_rows, row_sequence, JsonTable};
use crate::projection::{Poisoned, Projection, Target};
use async_trait::async_trait;
use carshare_domain::booking::Booking;
use carshare_event_store::{StoredEvent, StreamReader};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool};

/// Name of the projection.
pub const NAME: &str = "bookings";

/// Builds `read.bookings`.
pub struct BookingProjection;

#[async_trait]
impl Projection for BookingProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["bookings"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Booking::TYPE]
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
        let table = target.table("bookings");
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| self.handles(&e.aggregate_type))
            .collect();
        apply_json_rows::<BookingRow>(
            conn,
            reader,
            &events,
            JsonTable {
                table: &table,
                columns: row::COLUMNS,
                on_conflict: "DO UPDATE SET status = EXCLUDED.status, \
                   guest_message = EXCLUDED.guest_message, host_response = EXCLUDED.host_response, \
                   pickup_photos = EXCLUDED.pickup_photos, return_photos = EXCLUDED.return_photos, \
                   cancelled_by = EXCLUDED.cancelled_by, cancel_reason = EXCLUDED.cancel_reason, \
                   refund_rule = EXCLUDED.refund_rule, refund_amount = EXCLUDED.refund_amount, \
                   expiry_reason = EXCLUDED.expiry_reason, started_at = EXCLUDED.started_at, \
                   completed_at = EXCLUDED.completed_at, late_minutes = EXCLUDED.late_minutes, \
                   guest_reviewed_at = EXCLUDED.guest_reviewed_at, \
                   host_reviewed_at = EXCLUDED.host_reviewed_at, \
                   updated_at = EXCLUDED.updated_at, last_sequence = EXCLUDED.last_sequence, \
                   last_position = EXCLUDED.last_position \
                 WHERE cur.last_sequence < EXCLUDED.last_sequence",
                noun: "booking",
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
        row_sequence(pool, "read.bookings", aggregate_id).await
    }
}

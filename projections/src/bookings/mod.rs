//! The `bookings` projection: table `read.bookings`, one row per booking. It serves a booking's
//! details, the guest's and the host's lists, and the expiry sweeper.

mod queries;
mod row;

pub use queries::{get, list, BookingCursor, BookingListQuery, ListRole};
pub use row::BookingRow;

use crate::fold::{aggregate_ids, fold, row_sequence, Folded};
use crate::projection::{Poisoned, Projection, Target};
use async_trait::async_trait;
use carshare_domain::booking::Booking;
use carshare_event_store::{StoredEvent, StreamReader};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

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
        let ids = aggregate_ids(&events);
        let mut rows: HashMap<Uuid, BookingRow> = row::load(conn, &table, &ids).await?;
        let Folded { changed, poisoned } = fold(reader, &mut rows, &events, "booking").await?;
        let changed: Vec<&BookingRow> = changed.iter().filter_map(|id| rows.get(id)).collect();
        row::upsert(conn, &table, &changed).await?;
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
        row_sequence(pool, "read.bookings", aggregate_id).await
    }
}

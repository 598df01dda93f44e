//! The `vehicles` projection: table `read.vehicles`, one row per vehicle ever registered, and
//! `read.vehicle_holds`, one row per window a booking holds on a vehicle. They serve vehicle
//! details, the host's list and the availability search.

mod queries;
mod row;

pub use queries::{
    get, list_by_owner, search, OwnerCursor, OwnerListQuery, Rating, SearchCursor, SearchHit,
    SearchQuery, SearchSort,
};
pub use row::VehicleRow;

use crate::fold::{aggregate_ids, decode, fold, row_sequence, AggregateRow, Folded};
use crate::projection::{Poisoned, Projection, Target};
use async_trait::async_trait;
use carshare_domain::vehicle::{Vehicle, VehicleEvent};
use carshare_event_store::{StoredEvent, StreamReader};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Name of the projection.
pub const NAME: &str = "vehicles";

/// Builds `read.vehicles`.
pub struct VehicleProjection;

#[async_trait]
impl Projection for VehicleProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["vehicles", "vehicle_holds"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Vehicle::TYPE]
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
        let (table, holds) = (target.table("vehicles"), target.table("vehicle_holds"));
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| self.handles(&e.aggregate_type))
            .collect();
        let ids = aggregate_ids(&events);
        let mut rows: HashMap<Uuid, VehicleRow> = row::load(conn, &table, &ids).await?;
        let existed: HashSet<Uuid> = rows.keys().copied().collect();
        let Folded { changed, poisoned } = fold(reader, &mut rows, &events, "vehicle").await?;

        // Rows that did not exist when loaded are inserted plainly: the live worker's lock on
        // its checkpoint row, or the rebuild owning its shadow, rules out a concurrent insert.
        // Kafka consumers share their checkpoint; of two inserting the same new car, the second
        // fails on the key, and its retry loads the row, locked, as any other.
        let (new, existing): (Vec<&VehicleRow>, Vec<&VehicleRow>) = changed
            .iter()
            .filter_map(|id| rows.get(id))
            .partition(|r| !existed.contains(&r.id));
        row::write(conn, (&table, &holds), &new, row::Write::Insert).await?;
        row::write(conn, (&table, &holds), &existing, row::Write::Upsert).await?;
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
        row_sequence(pool, "read.vehicles", aggregate_id).await
    }
}

impl AggregateRow for VehicleRow {
    fn last_sequence(&self) -> i64 {
        self.last_sequence
    }

    fn create(id: Uuid, event: &StoredEvent) -> Result<Self, String> {
        VehicleRow::from_registration(id, decode(event)?, event)
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), String> {
        VehicleRow::apply(self, decode::<VehicleEvent>(event)?, event)
    }
}

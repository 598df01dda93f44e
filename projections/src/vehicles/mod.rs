//! The `vehicles` projection: table `read.vehicles`, one row per vehicle ever registered.
//! It serves vehicle details, the host's list and the availability search.

mod queries;
mod row;

pub use queries::{
    get, list_by_owner, search, OwnerCursor, OwnerListQuery, SearchCursor, SearchHit, SearchQuery,
};
pub use row::VehicleRow;

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
        &["vehicles"]
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
        let table = target.table("vehicles");
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| self.handles(&e.aggregate_type))
            .collect();
        let ids: Vec<Uuid> = events
            .iter()
            .filter_map(|e| Uuid::parse_str(&e.aggregate_id).ok())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut rows: HashMap<Uuid, VehicleRow> = row::load(conn, &table, &ids).await?;
        let existed: HashSet<Uuid> = rows.keys().copied().collect();
        let mut changed: HashSet<Uuid> = HashSet::new();
        let mut blocked: HashSet<Uuid> = HashSet::new();
        let mut poisoned = Vec::new();

        for &event in &events {
            let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                poisoned.push(Poisoned {
                    position: event.position,
                    error: format!("aggregate id `{}` is not a UUID", event.aggregate_id),
                });
                continue;
            };
            if blocked.contains(&id) {
                poisoned.push(Poisoned {
                    position: event.position,
                    error:
                        "waiting behind an earlier event of this vehicle that could not be applied"
                            .into(),
                });
                continue;
            }
            let last = rows.get(&id).map_or(0, |r| r.last_sequence);
            if event.sequence <= last {
                continue; // redelivered: already applied
            }
            // A gap: events of this vehicle are missing before this one. Fetch them from the
            // log and apply them first; never skip.
            let mut missing: Vec<StoredEvent> = Vec::new();
            if event.sequence > last + 1 {
                missing = reader
                    .aggregate_events_between(
                        &event.aggregate_type,
                        &event.aggregate_id,
                        last,
                        event.sequence,
                    )
                    .await?;
                let expected = event.sequence - last - 1;
                if i64::try_from(missing.len()).unwrap_or(i64::MAX) != expected {
                    poisoned.push(Poisoned {
                        position: event.position,
                        error: format!(
                            "sequence gap: expected {expected} earlier events after {last}, the log has {}",
                            missing.len()
                        ),
                    });
                    blocked.insert(id);
                    continue;
                }
            }
            for e in missing.iter().chain(std::iter::once(event)) {
                if let Err(error) = apply_one(&mut rows, id, e) {
                    let error = if e.position == event.position {
                        error
                    } else {
                        format!("waiting behind event at sequence {}: {error}", e.sequence)
                    };
                    poisoned.push(Poisoned {
                        position: event.position,
                        error,
                    });
                    blocked.insert(id);
                    break;
                }
                changed.insert(id);
            }
        }

        // Rows that did not exist when loaded are inserted plainly: the projection's lock (the
        // checkpoint row, or the rebuild owning its shadow) rules out a concurrent insert.
        let (new, existing): (Vec<&VehicleRow>, Vec<&VehicleRow>) = changed
            .iter()
            .filter_map(|id| rows.get(id))
            .partition(|r| !existed.contains(&r.id));
        row::write(conn, &table, &new, row::Write::Insert).await?;
        row::write(conn, &table, &existing, row::Write::Upsert).await?;
        Ok(poisoned)
    }

    async fn applied_sequence(
        &self,
        pool: &PgPool,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<i64, sqlx::Error> {
        let Ok(id) = Uuid::parse_str(aggregate_id) else {
            return Ok(0);
        };
        if !self.handles(aggregate_type) {
            return Ok(0);
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_sequence FROM read.vehicles WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
        Ok(last.unwrap_or(0))
    }
}

fn apply_one(
    rows: &mut HashMap<Uuid, VehicleRow>,
    id: Uuid,
    event: &StoredEvent,
) -> Result<(), String> {
    let payload: VehicleEvent = event.decode().map_err(|e| {
        format!(
            "cannot decode {} v{}: {e}",
            event.event_type, event.event_version
        )
    })?;
    match rows.get_mut(&id) {
        Some(row) => row.apply(payload, event),
        None => {
            let row = VehicleRow::from_registration(id, payload, event)?;
            rows.insert(id, row);
            Ok(())
        }
    }
}

//! Appending the events of several aggregates in one transaction.
//!
//! cqrs-es commits one aggregate at a time. A booking request must record the booking and the
//! vehicle's hold together or not at all, and a booking that ends must release the hold in the
//! same breath, so those commands decide on each aggregate with its own `handle` logic and then
//! append every event here: one `INSERT`, one commit. Each aggregate's events take the
//! sequences after the one it was loaded at; the primary key `(aggregate_type, aggregate_id,
//! sequence)` turns a concurrent writer into a conflict, and the caller retries from a fresh
//! load. Rows have the exact shape postgres-es writes, so cqrs-es loads them as its own.

use crate::error::InfraError;
use carshare_event_store::{EventMetadata, StreamCursor};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::PgPool;

/// New events of one aggregate.
#[derive(Debug, Clone)]
pub struct Batch {
    aggregate_type: &'static str,
    aggregate_id: String,
    after_sequence: usize,
    events: Vec<(String, String, Value)>,
    snapshot: Option<(usize, Value)>,
}

impl Batch {
    /// `events` for `aggregate` (its state after them) loaded at `after_sequence`; a snapshot of
    /// the new state is written when the batch crosses a multiple of `snapshot_every`
    /// (0 = never).
    pub fn new<A: Aggregate>(
        aggregate_id: &str,
        after_sequence: usize,
        events: &[A::Event],
        aggregate: &A,
        snapshot_every: usize,
    ) -> Result<Batch, InfraError> {
        let encoded = events
            .iter()
            .map(|e| {
                serde_json::to_value(e)
                    .map(|payload| (e.event_type(), e.event_version(), payload))
                    .map_err(|err| InfraError::Internal(Box::new(err)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let last = after_sequence + events.len();
        let crosses = snapshot_every > 0
            && !events.is_empty()
            && last / snapshot_every > after_sequence / snapshot_every;
        let snapshot = if crosses {
            Some((
                last,
                serde_json::to_value(aggregate)
                    .map_err(|err| InfraError::Internal(Box::new(err)))?,
            ))
        } else {
            None
        };
        Ok(Batch {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_string(),
            after_sequence,
            events: encoded,
            snapshot,
        })
    }

    /// Whether it holds no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Appends every batch in one transaction, with `metadata` on each event. Returns the stream
/// cursor of the last event written (`None` when there was nothing to write), or
/// `InfraError::Conflict` when another writer appended to one of the aggregates first.
pub async fn append(
    pool: &PgPool,
    batches: &[Batch],
    metadata: &EventMetadata,
) -> Result<Option<StreamCursor>, InfraError> {
    let total: usize = batches.iter().map(|b| b.events.len()).sum();
    if total == 0 {
        return Ok(None);
    }
    let meta = serde_json::to_value(metadata.to_map())
        .map_err(|err| InfraError::Internal(Box::new(err)))?;
    let mut types = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut sequences = Vec::with_capacity(total);
    let mut event_types = Vec::with_capacity(total);
    let mut versions = Vec::with_capacity(total);
    let mut payloads = Vec::with_capacity(total);
    for batch in batches {
        for (i, (event_type, version, payload)) in batch.events.iter().enumerate() {
            types.push(batch.aggregate_type);
            ids.push(batch.aggregate_id.as_str());
            sequences.push(i64::try_from(batch.after_sequence + i + 1).unwrap_or(i64::MAX));
            event_types.push(event_type.as_str());
            versions.push(version.as_str());
            payloads.push(payload.clone());
        }
    }
    let insert = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
           payload, metadata) \
         SELECT t, i, s, e, v, p, $7 \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::jsonb[]) \
           AS u(t, i, s, e, v, p) \
         RETURNING transaction_id::text, global_position",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&meta);
    let conflict = |e: sqlx::Error| match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => InfraError::Conflict,
        e => e.into(),
    };
    // One statement is atomic on its own: without a snapshot to write alongside, the insert
    // commits by itself (no BEGIN and COMMIT round trips).
    let written: Vec<(String, i64)> = if batches.iter().all(|b| b.snapshot.is_none()) {
        insert.fetch_all(pool).await.map_err(conflict)?
    } else {
        let mut tx = pool.begin().await?;
        let written = insert.fetch_all(&mut *tx).await.map_err(conflict)?;
        for batch in batches {
            if let Some((sequence, payload)) = &batch.snapshot {
                write_snapshot(&mut tx, batch, *sequence, payload).await?;
            }
        }
        tx.commit().await?;
        written
    };
    Ok(written
        .into_iter()
        .filter_map(|(tx, position)| {
            tx.parse().ok().map(|transaction_id| StreamCursor {
                transaction_id,
                position,
            })
        })
        .max())
}

/// Replaces the aggregate's snapshot the way postgres-es does (one row per aggregate, its
/// version counter bumped), or creates it.
async fn write_snapshot(
    tx: &mut sqlx::PgConnection,
    batch: &Batch,
    sequence: usize,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
    let updated = sqlx::query(
        "UPDATE snapshots SET last_sequence = $3, payload = $4, \
           current_snapshot = current_snapshot + 1 \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND last_sequence < $3",
    )
    .bind(batch.aggregate_type)
    .bind(&batch.aggregate_id)
    .bind(sequence)
    .bind(payload)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
             SELECT $1, $2, $3, 1, $4 \
             WHERE NOT EXISTS (SELECT 1 FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2)",
        )
        .bind(batch.aggregate_type)
        .bind(&batch.aggregate_id)
        .bind(sequence)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carshare_domain::booking::{Booking, BookingEvent};

    fn approved(minute: u32) -> BookingEvent {
        BookingEvent::BookingApproved {
            host_response: None,
            at: format!("2026-12-01T01:{minute:02}:00Z").parse().unwrap(),
        }
    }

    #[test]
    fn events_are_encoded_as_postgres_es_stores_them() {
        let events = vec![approved(0), approved(1)];
        let batch = Batch::new::<Booking>("b-1", 3, &events, &Booking::default(), 0).unwrap();
        assert!(!batch.is_empty());
        assert_eq!(batch.aggregate_type, "Booking");
        assert_eq!(batch.aggregate_id, "b-1");
        assert_eq!(batch.after_sequence, 3);
        assert_eq!(batch.events.len(), 2);
        let (event_type, version, payload) = &batch.events[0];
        assert_eq!(event_type, "BookingApproved");
        assert_eq!(version, "1.0");
        assert_eq!(payload, &serde_json::to_value(&events[0]).unwrap());
        assert_eq!(batch.snapshot, None);
    }

    #[test]
    fn a_snapshot_is_taken_when_the_batch_crosses_a_multiple() {
        let mut booking = Booking::default();
        booking.apply(approved(0)); // ignored without a request: the state stays empty
        let two = vec![approved(0), approved(1)];
        // 9 → 11 crosses 10.
        let crossing = Batch::new::<Booking>("b-1", 9, &two, &booking, 10).unwrap();
        assert_eq!(
            crossing.snapshot,
            Some((11, serde_json::to_value(&booking).unwrap()))
        );
        // 10 → 12 does not reach 20; 7 → 9 does not reach 10.
        for after in [10, 7] {
            let batch = Batch::new::<Booking>("b-1", after, &two, &booking, 10).unwrap();
            assert_eq!(batch.snapshot, None, "after {after}");
        }
        // Landing exactly on the multiple counts.
        let landing = Batch::new::<Booking>("b-1", 8, &two, &booking, 10).unwrap();
        assert_eq!(landing.snapshot.map(|(s, _)| s), Some(10));
        // No events, no snapshot (and nothing to append).
        let empty = Batch::new::<Booking>("b-1", 9, &[], &booking, 1).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.snapshot, None);
    }
}

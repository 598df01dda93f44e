//! Folding a batch of events into rows keyed by aggregate id, the part every row-per-aggregate
//! projection shares: redelivered events are skipped by sequence, sequence gaps are filled from
//! the log, and an event that cannot be applied holds back the later events of its aggregate.

use crate::projection::Poisoned;
use carshare_event_store::{StoredEvent, StreamReader};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A read row built from one aggregate's events.
pub(crate) trait AggregateRow: Sized {
    /// Sequence of the last event applied to it.
    fn last_sequence(&self) -> i64;
    /// The row created by the aggregate's first event.
    fn create(id: Uuid, event: &StoredEvent) -> Result<Self, String>;
    /// Applies a later event.
    fn apply(&mut self, event: &StoredEvent) -> Result<(), String>;
}

/// What a batch changed.
pub(crate) struct Folded {
    /// Ids of the rows that changed.
    pub changed: HashSet<Uuid>,
    /// Events that could not be applied.
    pub poisoned: Vec<Poisoned>,
}

/// Applies `events` (already filtered to the projection's aggregate types, in stream order) to
/// `rows`, which holds the existing rows of their aggregates. `noun` names the aggregate in
/// dead-letter messages.
pub(crate) async fn fold<R: AggregateRow>(
    reader: &StreamReader,
    rows: &mut HashMap<Uuid, R>,
    events: &[&StoredEvent],
    noun: &str,
) -> Result<Folded, sqlx::Error> {
    let mut changed: HashSet<Uuid> = HashSet::new();
    let mut blocked: HashSet<Uuid> = HashSet::new();
    let mut poisoned = Vec::new();
    for &event in events {
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
                error: format!(
                    "waiting behind an earlier event of this {noun} that could not be applied"
                ),
            });
            continue;
        }
        let last = rows.get(&id).map_or(0, AggregateRow::last_sequence);
        if event.sequence <= last {
            continue; // redelivered: already applied
        }
        // A gap: events of this aggregate are missing before this one. Fetch them from the log
        // and apply them first; never skip.
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
            let applied = match rows.get_mut(&id) {
                Some(row) => row.apply(e),
                None => R::create(id, e).map(|row| {
                    rows.insert(id, row);
                }),
            };
            if let Err(error) = applied {
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
    Ok(Folded { changed, poisoned })
}

/// Decodes an event's payload, with an error naming its type and version.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<T, String> {
    event.decode().map_err(|e| {
        format!(
            "cannot decode {} v{}: {e}",
            event.event_type, event.event_version
        )
    })
}

/// The distinct aggregate ids (as UUIDs) of `events`.
pub(crate) fn aggregate_ids(events: &[&StoredEvent]) -> Vec<Uuid> {
    events
        .iter()
        .filter_map(|e| Uuid::parse_str(&e.aggregate_id).ok())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// `last_sequence` of the row `aggregate_id` in `table` (0 when absent or not a UUID): how far
/// a row-per-aggregate read model has applied one aggregate.
pub(crate) async fn row_sequence(
    pool: &sqlx::PgPool,
    table: &str,
    aggregate_id: &str,
) -> Result<i64, sqlx::Error> {
    let Ok(id) = Uuid::parse_str(aggregate_id) else {
        return Ok(0);
    };
    let last: Option<i64> =
        sqlx::query_scalar(&format!("SELECT last_sequence FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(last.unwrap_or(0))
}

/// A row-per-aggregate read row stored through JSON: loaded with `SELECT`, written with one
/// `INSERT … SELECT … FROM jsonb_populate_recordset` per batch.
pub(crate) trait JsonRow:
    AggregateRow + serde::Serialize + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin
{
    /// The aggregate id.
    fn id(&self) -> Uuid;
}

/// How a [`JsonRow`] table is read and written.
pub(crate) struct JsonTable<'a> {
    /// Qualified table name (live or shadow).
    pub table: &'a str,
    /// Its columns, in order (also the JSON keys).
    pub columns: &'a str,
    /// What follows `ON CONFLICT (id)`, e.g. `DO NOTHING` or `DO UPDATE SET … WHERE …`.
    pub on_conflict: &'a str,
    /// The aggregate's name in dead-letter messages.
    pub noun: &'a str,
}

/// The distinct aggregate ids (as UUIDs) of `events` whose stored row the fold needs: those
/// whose first event here comes after the aggregate's first. An aggregate whose events start
/// at sequence 1 is folded from its beginning, so its row is rebuilt whole whether or not one
/// is stored (a stored row further on is kept by the write's `last_sequence` guard). Under a
/// stream of new aggregates (a booking is requested, its row appears) this saves a lookup
/// that finds nothing.
pub(crate) fn ids_to_load(events: &[&StoredEvent]) -> Vec<Uuid> {
    let mut first: HashMap<Uuid, i64> = HashMap::new();
    for e in events {
        if let Ok(id) = Uuid::parse_str(&e.aggregate_id) {
            first.entry(id).or_insert(e.sequence);
        }
    }
    first
        .into_iter()
        .filter(|&(_, sequence)| sequence > 1)
        .map(|(id, _)| id)
        .collect()
}

/// Applies the already filtered `events` to the rows of `spec.table`: loads the rows of their
/// aggregates (those not folded from their first event, [`ids_to_load`]), folds the events in
/// ([`fold`]), writes the changed rows in one statement.
pub(crate) async fn apply_json_rows<R: JsonRow>(
    conn: &mut sqlx::PgConnection,
    reader: &StreamReader,
    events: &[&StoredEvent],
    spec: JsonTable<'_>,
) -> Result<Vec<crate::projection::Poisoned>, sqlx::Error> {
    let ids = ids_to_load(events);
    let mut rows: HashMap<Uuid, R> = if ids.is_empty() {
        HashMap::new()
    } else {
        let loaded: Vec<R> = sqlx::query_as(&format!(
            "SELECT {} FROM {} WHERE id = ANY($1)",
            spec.columns, spec.table
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        loaded.into_iter().map(|r| (r.id(), r)).collect()
    };
    let Folded { changed, poisoned } = fold(reader, &mut rows, events, spec.noun).await?;
    let changed: Vec<&R> = changed.iter().filter_map(|id| rows.get(id)).collect();
    if !changed.is_empty() {
        let json = serde_json::to_value(&changed).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(&format!(
            "INSERT INTO {table} AS cur ({columns}) \
             SELECT {columns} FROM jsonb_populate_recordset(NULL::{table}, $1) \
             ON CONFLICT (id) {on_conflict}",
            table = spec.table,
            columns = spec.columns,
            on_conflict = spec.on_conflict,
        ))
        .bind(sqlx::types::Json(json))
        .execute(&mut *conn)
        .await?;
    }
    Ok(poisoned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn event(id: Uuid, sequence: i64) -> StoredEvent {
        StoredEvent {
            position: sequence,
            transaction_id: 1,
            aggregate_type: "Booking".into(),
            aggregate_id: id.to_string(),
            sequence,
            event_type: "BookingRequested".into(),
            event_version: "1.0".into(),
            payload: RawValue::NULL.to_owned(),
            metadata: RawValue::NULL.to_owned(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_aggregates_not_folded_from_their_first_event_are_loaded() {
        let (new, later, both) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let events = [
            event(new, 1),
            event(later, 3),
            event(new, 2),
            event(both, 1),
            event(later, 4),
            event(both, 2),
        ];
        let refs: Vec<&StoredEvent> = events.iter().collect();
        assert_eq!(ids_to_load(&refs), vec![later]);
        // The next batch holds only later events of the new aggregate: its row is loaded.
        let next = [event(new, 3)];
        let refs: Vec<&StoredEvent> = next.iter().collect();
        assert_eq!(ids_to_load(&refs), vec![new]);
    }
}

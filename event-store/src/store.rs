//! The cqrs-es event store over Postgres.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

/// The event store of aggregate `A`.
pub type EventStore<A> = PersistedEventStore<PostgresEventRepository, A>;

/// An event store for `A` that snapshots the aggregate every `snapshot_every` events (0 = never)
/// and upcasts old event shapes on load.
pub fn event_store<A: Aggregate>(pool: PgPool, snapshot_every: usize) -> EventStore<A> {
    let repo = PostgresEventRepository::new(pool);
    let store = if snapshot_every == 0 {
        PersistedEventStore::new_event_store(repo)
    } else {
        PersistedEventStore::new_snapshot_store(repo, snapshot_every)
    };
    store.with_upcasters(crate::upcasters::all())
}

//! What a projection is.

use async_trait::async_trait;
use carshare_event_store::{StoredEvent, StreamReader};
use sqlx::{PgConnection, PgPool};

/// Which copy of a projection's tables to write: the live ones, or the shadow copies a rebuild
/// fills before swapping them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `read.<table>`.
    Live,
    /// `read.<table>__rebuild`.
    Rebuild,
}

/// Suffix of the shadow tables of a rebuild.
pub const REBUILD_SUFFIX: &str = "__rebuild";

impl Target {
    /// The qualified name of `table` for this target.
    pub fn table(self, table: &str) -> String {
        match self {
            Target::Live => format!("read.{table}"),
            Target::Rebuild => format!("read.{table}{REBUILD_SUFFIX}"),
        }
    }
}

/// An event the projection cannot apply, and why. It is dead-lettered and the worker moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poisoned {
    /// The event's global position.
    pub position: i64,
    /// Why it could not be applied.
    pub error: String,
}

/// A read model.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name, used for checkpoints, dead letters, metrics and `carshare rebuild <name>`.
    fn name(&self) -> &'static str;

    /// Its tables in schema `read`, rebuilt and swapped together.
    fn tables(&self) -> &'static [&'static str];

    /// The aggregate types whose events concern it (in Kafka mode, their topics are the ones
    /// it consumes).
    fn aggregate_types(&self) -> &'static [&'static str];

    /// Whether events of this aggregate type concern it.
    fn handles(&self, aggregate_type: &str) -> bool {
        self.aggregate_types().contains(&aggregate_type)
    }

    /// The event types it reads, when it reads only some of its aggregates' events (`None`:
    /// all of them). A batch holding none of them is passed over like one of foreign events.
    fn event_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Whether `event` can change its tables.
    fn concerns(&self, event: &StoredEvent) -> bool {
        self.handles(&event.aggregate_type)
            && self
                .event_types()
                .is_none_or(|types| types.contains(&event.event_type.as_str()))
    }

    /// The least time its live worker lets events gather before a batch (the worker's linger
    /// when longer). A read model that no command waits for can take larger, fewer batches.
    fn min_linger(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Whether it reads event metadata (actor, correlation id); when not, the stream is read
    /// without it.
    fn needs_metadata(&self) -> bool {
        true
    }

    /// Applies `events` (in stream order; events of types it does not handle are skipped) inside
    /// the caller's transaction.
    /// Redelivered events must be no-ops; an event that cannot be applied is returned as
    /// poisoned, and later events of its aggregate must wait behind it (be poisoned too).
    /// `reader` serves to repair gaps: events of an aggregate missing before the one received.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: Target,
        reader: &StreamReader,
        events: &[StoredEvent],
    ) -> Result<Vec<Poisoned>, sqlx::Error>;

    /// The sequence of the last event of one aggregate applied to the live tables (0 when
    /// none): how read-your-writes waits when the events arrive through Kafka, where no single
    /// stream position describes a projection's progress.
    async fn applied_sequence(
        &self,
        pool: &PgPool,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<i64, sqlx::Error>;
}

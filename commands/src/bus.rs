//! Runs commands against event-sourced aggregates: load, decide, append, with bounded retries
//! when another writer appended to the same aggregate first.
//!
//! This is cqrs-es's `CqrsFramework::execute` loop, kept here because the API needs what the
//! framework discards: the aggregate's new state (to answer the request) and the stream
//! position of the new events (so the client can read its own write). Aggregates load through
//! cqrs-es' `PersistedEventStore` (postgres-es); their new events are written by
//! [`crate::append`], in the rows postgres-es writes, as one autocommit `INSERT` that also
//! returns the events' stream position (cqrs-es' commit takes `BEGIN`, an `INSERT` per event
//! and `COMMIT`, and the position would need one more query). In-process queries are not
//! used: read models are built from the ordered stream, which survives a crash.

use crate::append::{append, Batch};
use crate::error::{BoxError, InfraError};
use crate::metrics;
use carshare_event_store::{event_store, CommitSignal, EventMetadata, EventStore, StreamCursor};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore as _};
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// Attempts before a conflict is reported (1 try + retries).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The outcome of an accepted command.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    /// The aggregate after the command.
    pub aggregate: A,
    /// The events appended (empty when the command changed nothing).
    pub events: Vec<EventEnvelope<A>>,
    /// The stream position of the last appended event, when there was one.
    pub cursor: Option<StreamCursor>,
}

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused it.
    #[error(transparent)]
    Rejected(E),
    /// An infrastructure failure.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Executes commands of aggregate `A`.
pub struct CommandBus<A: Aggregate> {
    pool: PgPool,
    store: EventStore<A>,
    services: A::Services,
    signal: CommitSignal,
    snapshot_every: usize,
    max_attempts: u32,
}

impl<A> CommandBus<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
{
    /// A bus over `pool`, snapshotting every `snapshot_every` events (0 = never).
    pub fn new(
        pool: PgPool,
        services: A::Services,
        signal: CommitSignal,
        snapshot_every: usize,
    ) -> Self {
        CommandBus {
            store: event_store::<A>(pool.clone(), snapshot_every),
            pool,
            services,
            signal,
            snapshot_every,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Loads the current state of an aggregate.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>> {
        Ok(self.load_versioned(aggregate_id).await?.0)
    }

    /// Loads an aggregate with the sequence of its last event (0 when it has none), for
    /// callers that append its events themselves (see [`crate::append`]).
    pub async fn load_versioned(
        &self,
        aggregate_id: &str,
    ) -> Result<(A, usize), CommandError<A::Error>> {
        let mut context: EventStoreAggregateContext<A> = self
            .store
            .load_aggregate(aggregate_id)
            .await
            .map_err(infra::<A>)?;
        let sequence = context.current_sequence;
        Ok((std::mem::take(context.aggregate()), sequence))
    }

    /// Handles `command` on aggregate `aggregate_id` and appends its events, retrying on
    /// concurrent appends up to the bound.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        self.execute_from(aggregate_id, None, command, metadata)
            .await
    }

    /// [`Self::execute`] on a state the caller has just loaded (with [`Self::load_versioned`])
    /// or knows (a new aggregate: its default state at sequence 0), so the first attempt does
    /// not load it again. A state that is no longer current conflicts on append like any
    /// concurrent write, and the retry starts from a fresh load.
    pub async fn execute_loaded(
        &self,
        aggregate_id: &str,
        loaded: (A, usize),
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        self.execute_from(aggregate_id, Some(loaded), command, metadata)
            .await
    }

    #[tracing::instrument(
        name = "command",
        skip(self, loaded, command, metadata),
        fields(aggregate = A::TYPE, command = %metadata.command, aggregate_id = %aggregate_id)
    )]
    async fn execute_from(
        &self,
        aggregate_id: &str,
        loaded: Option<(A, usize)>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let started = Instant::now();
        let result = self
            .execute_with_retries(aggregate_id, loaded, command, metadata)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Infra(InfraError::Conflict)) => "conflict",
            Err(CommandError::Infra(InfraError::Unavailable(_))) => "unavailable",
            Err(CommandError::Infra(InfraError::Internal(_))) => "error",
        };
        metrics::COMMANDS
            .with_label_values(&[A::TYPE, metadata.command.as_str(), outcome])
            .inc();
        metrics::COMMAND_SECONDS
            .with_label_values(&[A::TYPE, metadata.command.as_str()])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn execute_with_retries(
        &self,
        aggregate_id: &str,
        mut loaded: Option<(A, usize)>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .try_once(aggregate_id, loaded.take(), command.clone(), metadata)
                .await
            {
                Err(CommandError::Infra(InfraError::Conflict)) if attempt < self.max_attempts => {
                    metrics::CONFLICTS.with_label_values(&[A::TYPE]).inc();
                    // A short, growing, jittered pause lets the other writer finish.
                    let jitter = rand::random::<u64>() % 5;
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2 + jitter))
                        .await;
                }
                Err(CommandError::Infra(InfraError::Conflict)) => {
                    metrics::CONFLICTS.with_label_values(&[A::TYPE]).inc();
                    tracing::warn!(attempts = attempt, "conflict retries exhausted");
                    return Err(InfraError::Conflict.into());
                }
                other => return other,
            }
        }
    }

    async fn try_once(
        &self,
        aggregate_id: &str,
        loaded: Option<(A, usize)>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let (mut aggregate, sequence) = match loaded {
            Some(loaded) => loaded,
            None => self.load_versioned(aggregate_id).await?,
        };
        let sink: EventSink<A> = EventSink::default();
        // The sink applies each event to the aggregate as the handler writes it.
        aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(CommandError::Rejected)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(Committed {
                aggregate,
                events: Vec::new(),
                cursor: None,
            });
        }
        let batch = Batch::new::<A>(
            aggregate_id,
            sequence,
            &events,
            &aggregate,
            self.snapshot_every,
        )?;
        let cursor = append(&self.pool, &[batch], metadata).await?;
        self.signal.committed();
        let recorded = metadata.to_map();
        let events = events
            .into_iter()
            .zip(sequence + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: aggregate_id.to_string(),
                sequence,
                payload,
                metadata: recorded.clone(),
            })
            .collect();
        Ok(Committed {
            aggregate,
            events,
            cursor,
        })
    }
}

/// Maps cqrs-es infrastructure errors; a domain error here would be a bug in the caller.
fn infra<A: Aggregate>(err: AggregateError<A::Error>) -> CommandError<A::Error> {
    let infra = match err {
        AggregateError::UserError(e) => return CommandError::Rejected(e),
        AggregateError::AggregateConflict => InfraError::Conflict,
        AggregateError::DatabaseConnectionError(e) => InfraError::Unavailable(e),
        AggregateError::DeserializationError(e) => InfraError::Internal(e),
        AggregateError::UnexpectedError(e) => classify(e),
    };
    CommandError::Infra(infra)
}

fn classify(err: BoxError) -> InfraError {
    match err.downcast::<sqlx::Error>() {
        Ok(sqlx_err) => InfraError::from(*sqlx_err),
        Err(other) => InfraError::Internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carshare_domain::booking::{Booking, BookingError};

    type Mapped = CommandError<BookingError>;
    type Check = fn(&Mapped) -> bool;

    fn boxed(msg: &str) -> BoxError {
        Box::new(std::io::Error::other(msg.to_string()))
    }

    #[test]
    fn store_errors_map_to_refusals_or_infrastructure_failures() {
        let cases: Vec<(AggregateError<BookingError>, Check)> = vec![
            (AggregateError::UserError(BookingError::NotFound), |m| {
                matches!(m, CommandError::Rejected(BookingError::NotFound))
            }),
            (AggregateError::AggregateConflict, |m| {
                matches!(m, CommandError::Infra(InfraError::Conflict))
            }),
            (
                AggregateError::DatabaseConnectionError(boxed("down")),
                |m| matches!(m, CommandError::Infra(InfraError::Unavailable(_))),
            ),
            (
                AggregateError::DeserializationError(boxed("bad json")),
                |m| matches!(m, CommandError::Infra(InfraError::Internal(_))),
            ),
            // An unexpected sqlx error is classified like any other sqlx error...
            (
                AggregateError::UnexpectedError(Box::new(sqlx::Error::PoolTimedOut)),
                |m| matches!(m, CommandError::Infra(InfraError::Unavailable(_))),
            ),
            (
                AggregateError::UnexpectedError(Box::new(sqlx::Error::RowNotFound)),
                |m| matches!(m, CommandError::Infra(InfraError::Internal(_))),
            ),
            // ...and anything else is a bug.
            (AggregateError::UnexpectedError(boxed("?")), |m| {
                matches!(m, CommandError::Infra(InfraError::Internal(_)))
            }),
        ];
        for (err, expected) in cases {
            let shown = format!("{err:?}");
            let mapped = infra::<Booking>(err);
            assert!(expected(&mapped), "{shown} became {mapped:?}");
        }
    }

    #[test]
    fn a_refusal_reads_as_the_domain_error() {
        let refused: Mapped = CommandError::Rejected(BookingError::NotHost);
        assert_eq!(refused.to_string(), "only the vehicle's host may do this");
        let conflict: Mapped = InfraError::Conflict.into();
        assert_eq!(
            conflict.to_string(),
            "the aggregate kept changing under concurrent writers"
        );
    }
}

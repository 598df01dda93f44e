-- Bookkeeping of the projection workers.

-- Where each projection stands in the ordered stream. The row is updated in the same
-- transaction as the read tables, so a crash never applies a batch twice or loses one.
CREATE TABLE projection_checkpoints (
    projection      text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    events_seen     bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Events a projection could not apply (a "poison" event), with the error. The worker records
-- them and carries on; later events of the same aggregate wait behind them (they are recorded
-- here too) so the read row never skips a change.
CREATE TABLE projection_dead_letters (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection      text        NOT NULL,
    global_position bigint      NOT NULL,
    transaction_id  xid8        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL,
    event_type      text        NOT NULL,
    error           text        NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection, global_position)
);

CREATE INDEX projection_dead_letters_aggregate_idx
    ON projection_dead_letters (projection, aggregate_type, aggregate_id, sequence);

-- Rebuilds from the log, with their progress (read by operators and the console).
CREATE TABLE projection_rebuilds (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection     text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    events_total   bigint      NOT NULL DEFAULT 0,
    events_applied bigint      NOT NULL DEFAULT 0,
    error          text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);

-- Only one rebuild of a projection at a time.
CREATE UNIQUE INDEX projection_rebuilds_one_running
    ON projection_rebuilds (projection) WHERE status = 'running';

-- The read models live in their own schema, documented in docs/read-models.md.
CREATE SCHEMA read;
COMMENT ON SCHEMA read IS 'Read models built by projections from the event log; safe to query, rebuilt on demand.';

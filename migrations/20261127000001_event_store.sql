-- The event store: the source of truth. The base columns are the ones postgres-es 0.5 reads and
-- writes (it inserts with an explicit column list); the columns after them are filled in by
-- Postgres and give the log a global order that readers can follow without losing events.
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    -- Order of insertion across the whole log (gaps are normal: rolled-back inserts burn values).
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction. Readers only read below the oldest still-running transaction,
    -- so an event committed late by a long transaction is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position_key ON events (global_position);
-- The stream reader's cursor: (transaction_id, global_position).
CREATE INDEX events_stream_order_idx ON events (transaction_id, global_position);

COMMENT ON TABLE events IS 'Append-only event log of every aggregate (source of truth).';
COMMENT ON COLUMN events.global_position IS 'Global insertion order; unique, not gap-free.';
COMMENT ON COLUMN events.transaction_id IS 'Writer transaction (xid8); the stream is read in (transaction_id, global_position) order below pg_snapshot_xmin.';

-- History is never rewritten: personal data lives outside the log, so nothing ever needs to.
CREATE FUNCTION events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Aggregate snapshots (postgres-es), an optimisation only: they can be deleted at any time.
CREATE TABLE snapshots (
    aggregate_type   text        NOT NULL,
    aggregate_id     text        NOT NULL,
    last_sequence    bigint      NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint      NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb       NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

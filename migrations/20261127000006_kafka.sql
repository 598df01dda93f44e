-- The Kafka relay and the projection workers that consume Kafka.

-- Where the relay stands, one row per topic prefix (a relay publishing under another prefix
-- starts from the beginning of the stream). Written only by the relay holding the advisory
-- lock, on the lock's own connection; `heartbeat_at` tells readers whether one is alive.
CREATE TABLE relay_checkpoints (
    topic_prefix     text        PRIMARY KEY,
    transaction_id   xid8        NOT NULL DEFAULT '0',
    global_position  bigint      NOT NULL DEFAULT 0,
    events_published bigint      NOT NULL DEFAULT 0,
    owner            text,
    heartbeat_at     timestamptz NOT NULL DEFAULT now(),
    -- The broker failure the relay is retrying, if any, and since when.
    last_error       text,
    error_since      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Consumer progress of the projection workers in Kafka mode, written in the same
-- transaction as the read tables: the next offset to apply per partition, and the
-- partition's end as last seen, for lag reporting. Offsets are also committed to the
-- broker (the consumer group restarts from there); this row is what a worker compares the
-- first offset it receives with, to notice messages it was never given.
CREATE TABLE projection_offsets (
    projection      text        NOT NULL,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    high_watermark  bigint,
    last_recorded_at timestamptz,
    -- Stream cursor of the newest event applied from the partition: where to start filling
    -- a gap in its offsets from the event store.
    last_position   bigint,
    last_transaction_id xid8,
    member          text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

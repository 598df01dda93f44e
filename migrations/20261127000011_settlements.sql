-- Settlements: which payments were paid out to hosts, and the statements themselves.
ALTER TABLE read.payments ADD COLUMN settlement_id uuid;
ALTER TABLE read.payments ADD COLUMN settled_at timestamptz;

CREATE TABLE read.settlements (
    id             uuid        NOT NULL,
    host_id        uuid        NOT NULL,
    cutoff         timestamptz NOT NULL,
    gross          bigint      NOT NULL,
    refunds        bigint      NOT NULL,
    platform_fee   bigint      NOT NULL,
    host_amount    bigint      NOT NULL,
    lines          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    last_sequence  bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    CONSTRAINT settlements_pkey PRIMARY KEY (id)
);
CREATE INDEX settlements_host_idx ON read.settlements (host_id, created_at DESC, id DESC);
COMMENT ON TABLE read.settlements IS 'One row per settlement statement issued to a host. Built by the "settlements" projection.';

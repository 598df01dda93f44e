-- Payments: the read model of the Payment aggregate (one per booking), for the payment history.
CREATE TABLE read.payments (
    id               uuid        NOT NULL,  -- the booking's id
    guest_id         uuid        NOT NULL,
    host_id          uuid        NOT NULL,
    order_id         text        NOT NULL,
    amount           bigint      NOT NULL,
    status           text        NOT NULL,
    due_at           timestamptz NOT NULL,
    payment_key      text,
    method           text,
    approved_at      timestamptz,
    refunded_amount  bigint      NOT NULL DEFAULT 0,
    pending_refund   bigint,
    last_failure     text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_sequence    bigint      NOT NULL,
    last_position    bigint      NOT NULL,
    CONSTRAINT payments_pkey PRIMARY KEY (id)
);

CREATE INDEX payments_guest_idx ON read.payments (guest_id, created_at DESC, id DESC);
CREATE INDEX payments_host_idx ON read.payments (host_id, created_at DESC, id DESC);

COMMENT ON TABLE read.payments IS 'One row per booking payment. Built by the "payments" projection.';

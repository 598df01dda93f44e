-- Bookings: the read model of the Booking aggregate, and the windows bookings hold on vehicles.

-- The holds behind read.vehicles.reserved, as the Vehicle aggregate records them
-- ([{"booking_id", "window": {"start", "end"}}]).
ALTER TABLE read.vehicles ADD COLUMN holds jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN read.vehicles.reserved IS 'Windows held by pending, approved and active bookings (search widens the requested window by the buffer between trips).';

CREATE TABLE read.bookings (
    id               uuid        NOT NULL,
    vehicle_id       uuid        NOT NULL,
    guest_id         uuid        NOT NULL,
    host_id          uuid        NOT NULL,
    start_datetime   timestamptz NOT NULL,
    end_datetime     timestamptz NOT NULL,
    hourly_rate      bigint      NOT NULL,
    total_amount     bigint      NOT NULL,
    platform_fee     bigint      NOT NULL,
    host_share       bigint      NOT NULL,
    status           text        NOT NULL,
    guest_message    text,
    host_response    text,
    respond_by       timestamptz NOT NULL,
    pickup_photos    jsonb       NOT NULL DEFAULT '[]',
    return_photos    jsonb       NOT NULL DEFAULT '[]',
    cancelled_by     text,
    cancel_reason    text,
    refund_rule      text,
    refund_amount    bigint,
    expiry_reason    text,
    started_at       timestamptz,
    completed_at     timestamptz,
    late_minutes     bigint,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_sequence    bigint      NOT NULL,
    last_position    bigint      NOT NULL,
    CONSTRAINT bookings_pkey PRIMARY KEY (id)
);

-- A guest's and a host's lists, newest first.
CREATE INDEX bookings_guest_idx ON read.bookings (guest_id, created_at DESC, id DESC);
CREATE INDEX bookings_host_idx ON read.bookings (host_id, created_at DESC, id DESC);
-- A vehicle's bookings in time order.
CREATE INDEX bookings_vehicle_idx ON read.bookings (vehicle_id, start_datetime);
-- Requests waiting for an answer, by deadline (the expiry sweeper).
CREATE INDEX bookings_pending_idx ON read.bookings (respond_by) WHERE status = 'pending';

COMMENT ON TABLE read.bookings IS 'One row per booking. Built by the "bookings" projection.';

-- Reviews and notifications.

-- One row per review (event `ReviewSubmitted` of a booking). Built by the "reviews" projection.
CREATE TABLE read.reviews (
    id               uuid        NOT NULL,
    booking_id       uuid        NOT NULL,
    vehicle_id       uuid        NOT NULL,
    reviewer_id      uuid        NOT NULL,
    reviewer_role    text        NOT NULL,
    reviewee_id      uuid        NOT NULL,
    rating           integer     NOT NULL,
    category_ratings jsonb       NOT NULL DEFAULT '{}',
    comment          text,
    is_recommended   boolean     NOT NULL,
    created_at       timestamptz NOT NULL,
    sequence         bigint      NOT NULL,
    position         bigint      NOT NULL,
    CONSTRAINT reviews_pkey PRIMARY KEY (id),
    CONSTRAINT reviews_one_per_side UNIQUE (booking_id, reviewer_role)
);

-- A user's received reviews, newest first; a vehicle's reviews.
CREATE INDEX reviews_reviewee_idx ON read.reviews (reviewee_id, created_at DESC, id DESC);
CREATE INDEX reviews_vehicle_idx ON read.reviews (vehicle_id, created_at DESC, id DESC);

COMMENT ON TABLE read.reviews IS 'One row per review (guest of host, host of guest). Built by the "reviews" projection.';

-- Whether each side of a booking reviewed the other.
ALTER TABLE read.bookings
    ADD COLUMN guest_reviewed_at timestamptz,
    ADD COLUMN host_reviewed_at  timestamptz;

-- Running totals per reviewed vehicle and per reviewed user: average = rating_sum / review_count.
-- A guest's review counts for the host and for the car; a host's review counts for the guest.
CREATE TABLE read.rating_summaries (
    subject_kind      text   NOT NULL CHECK (subject_kind IN ('vehicle', 'user')),
    subject_id        uuid   NOT NULL,
    review_count      bigint NOT NULL,
    rating_sum        bigint NOT NULL,
    recommended_count bigint NOT NULL,
    CONSTRAINT rating_summaries_pkey PRIMARY KEY (subject_kind, subject_id)
);

COMMENT ON TABLE read.rating_summaries IS 'Review count and rating sum per vehicle and per reviewed user. Built by the "reviews" projection.';

-- Inbox entries, one per event and person concerned. Ids are derived from the event and the
-- recipient (UUID v5), so a redelivered event or a rebuild yields the same ids.
CREATE TABLE read.notifications (
    id              uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    kind            text        NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    booking_id      uuid,
    source_type     text        NOT NULL,
    source_id       text        NOT NULL,
    source_sequence bigint      NOT NULL,
    position        bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT notifications_pkey PRIMARY KEY (id)
);

CREATE INDEX notifications_user_idx ON read.notifications (user_id, created_at DESC, id DESC);

COMMENT ON TABLE read.notifications IS 'Inbox entries (Korean title and body) derived from events. Built by the "notifications" projection; read marks live in notification_reads.';

-- Read marks: the user's own state, not derived from events, so they survive rebuilds of
-- read.notifications (whose ids are stable).
CREATE TABLE notification_reads (
    notification_id uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    read_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notification_reads_user_idx ON notification_reads (user_id);

-- Devices registered for push (FCM registration tokens).
CREATE TABLE notification_devices (
    token      text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform   text        NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notification_devices_user_idx ON notification_devices (user_id);

-- One delivery per notification and channel, written with the inbox entry by the live
-- projection (never by a rebuild). The primary key is what makes delivery at most once per
-- channel: a redelivered event finds the row already there.
CREATE TABLE notification_deliveries (
    notification_id uuid        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('websocket', 'push')),
    user_id         uuid        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    finished_at     timestamptz,
    PRIMARY KEY (notification_id, channel)
);

CREATE INDEX notification_deliveries_due_idx
    ON notification_deliveries (next_attempt_at) WHERE status = 'pending';

-- The holds of bookings on vehicles move out of read.vehicles (a jsonb list on every row) into
-- a narrow table of their own, one row per hold. The vehicle row keeps only the `reserved`
-- multirange search tests, so rows are narrower (more per page for the scans of search), and a
-- booking updates the row's unindexed columns only (a heap-only update: no index entries).
CREATE TABLE read.vehicle_holds (
    vehicle_id uuid        NOT NULL,
    booking_id uuid        NOT NULL,
    start_at   timestamptz NOT NULL,
    end_at     timestamptz NOT NULL,
    CONSTRAINT vehicle_holds_pkey PRIMARY KEY (vehicle_id, booking_id) INCLUDE (start_at, end_at)
);

COMMENT ON TABLE read.vehicle_holds IS 'Windows [start_at, end_at) held on a vehicle by pending, approved and active bookings. Built by the "vehicles" projection with read.vehicles, whose reserved multirange is their union.';

INSERT INTO read.vehicle_holds (vehicle_id, booking_id, start_at, end_at)
SELECT v.id, (h->>'booking_id')::uuid, (h->'window'->>'start')::timestamptz, (h->'window'->>'end')::timestamptz
FROM read.vehicles v, jsonb_array_elements(v.holds) AS h;

ALTER TABLE read.vehicles DROP COLUMN holds;

-- Room on each page for the updates a booking makes (reserved, last sequence and position),
-- so they stay heap-only (HOT) and add no index entries.
ALTER TABLE read.vehicles SET (fillfactor = 80);

GRANT SELECT ON read.vehicle_holds TO carshare_analyst;

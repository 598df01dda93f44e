-- The windows bookings hold on vehicles move out of read.vehicles into a narrow table of their
-- own, one row per hold. A booking then adds a ~60-byte row instead of rewriting the whole
-- vehicle row (and its GiST, GIN and B-tree entries), and search rejects a held car by probing
-- this table's primary key (an index-only scan: the window is in the index) instead of reading
-- a wide jsonb and multirange from every candidate's heap row.
CREATE TABLE read.vehicle_holds (
    vehicle_id uuid        NOT NULL,
    booking_id uuid        NOT NULL,
    start_at   timestamptz NOT NULL,
    end_at     timestamptz NOT NULL,
    CONSTRAINT vehicle_holds_pkey PRIMARY KEY (vehicle_id, booking_id) INCLUDE (start_at, end_at)
);

COMMENT ON TABLE read.vehicle_holds IS 'Windows [start_at, end_at) held on a vehicle by pending, approved and active bookings. Built by the "vehicles" projection with read.vehicles; search widens the requested window by the buffer between trips.';

INSERT INTO read.vehicle_holds (vehicle_id, booking_id, start_at, end_at)
SELECT v.id, (h->>'booking_id')::uuid, (h->'window'->>'start')::timestamptz, (h->'window'->>'end')::timestamptz
FROM read.vehicles v, jsonb_array_elements(v.holds) AS h;

ALTER TABLE read.vehicles DROP COLUMN holds, DROP COLUMN reserved;

-- Room on each page for the narrow updates a booking still makes (the row's last sequence and
-- position), so they stay heap-only (HOT) and add no index entries.
ALTER TABLE read.vehicles SET (fillfactor = 80);

GRANT SELECT ON read.vehicle_holds TO carshare_analyst;

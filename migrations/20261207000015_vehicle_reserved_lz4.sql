-- `read.vehicles.reserved` holds one range per booking holding the car and is rewritten by
-- every booking of it. Once a car holds a few dozen bookings the row passes Postgres's TOAST
-- threshold (about 2 kB) and every rewrite compresses the value: with the default pglz about
-- 200 µs a row at 100 holds, with lz4 about a quarter of that (measured on a copy of the
-- table; docs/benchmarks.md, fourth booking entry of 2026-12-07). Values already stored keep
-- pglz until their next rewrite. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE read.vehicles ALTER COLUMN reserved SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server: read.vehicles.reserved stays with pglz';
END $$;

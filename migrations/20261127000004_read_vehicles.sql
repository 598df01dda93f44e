-- Vehicle read model: details, search (spatial + availability + text) and the host's list.
-- PostGIS (Debian: postgresql-15-postgis-3) for the spatial index, pg_trgm for text search.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE read.vehicles (
    id                  uuid             NOT NULL,
    owner_id            uuid             NOT NULL,
    license_plate       text             NOT NULL,
    make                text             NOT NULL,
    model               text             NOT NULL,
    year                integer          NOT NULL,
    color               text,
    fuel_type           text,
    transmission        text,
    hourly_rate         bigint           NOT NULL,
    location_address    text             NOT NULL,
    location_lat        double precision NOT NULL,
    location_lng        double precision NOT NULL,
    -- The pickup point in EPSG:5179 (Korea 2000 / Unified CS, metres): planar distances there
    -- are within 0.2% of the true ones anywhere in Korea, and its GiST index builds by sorting.
    location            geometry(Point, 5179) GENERATED ALWAYS AS
                            (ST_Transform(ST_SetSRID(ST_MakePoint(location_lng, location_lat), 4326), 5179)) STORED,
    status              text             NOT NULL,
    images              jsonb            NOT NULL DEFAULT '[]',
    description         text,
    -- The availability rules as set by the host (seed shape), for display.
    availability        jsonb            NOT NULL DEFAULT '[]',
    -- The same rules, precomputed for search (see docs/read-models.md):
    has_available_rules boolean          NOT NULL DEFAULT false,
    weekly_available    int4multirange   NOT NULL DEFAULT '{}',
    weekly_blocked      int4multirange   NOT NULL DEFAULT '{}',
    dated_available     tstzmultirange   NOT NULL DEFAULT '{}',
    dated_blocked       tstzmultirange   NOT NULL DEFAULT '{}',
    -- Windows held by bookings (filled in by the bookings feature); search excludes overlaps.
    reserved            tstzmultirange   NOT NULL DEFAULT '{}',
    search_text         text             NOT NULL DEFAULT '',
    removed_at          timestamptz,
    created_at          timestamptz      NOT NULL,
    updated_at          timestamptz      NOT NULL,
    last_sequence       bigint           NOT NULL,
    last_position       bigint           NOT NULL,
    CONSTRAINT vehicles_pkey PRIMARY KEY (id)
);

-- Nearest-first search over bookable vehicles (GiST KNN).
CREATE INDEX vehicles_location_idx ON read.vehicles
    USING gist (location)
    WHERE status = 'active' AND removed_at IS NULL;
-- Text filter over make/model/description; trigrams work for Hangul as for Latin script.
CREATE INDEX vehicles_search_text_idx ON read.vehicles USING gin (search_text gin_trgm_ops);
-- The host's own list, newest first.
CREATE INDEX vehicles_owner_idx ON read.vehicles (owner_id, created_at DESC, id DESC);

COMMENT ON TABLE read.vehicles IS 'One row per vehicle ever registered (removed ones have removed_at). Built by the "vehicles" projection.';

-- The minute-of-week pieces ([0, 10080), 0 = Sunday 00:00 in Asia/Seoul) covered by [s, e):
-- one piece, or two when the window wraps past Saturday midnight, or the whole week.
-- Start rounds down and end rounds up to the minute, as in the domain.
CREATE FUNCTION read.week_pieces(s timestamptz, e timestamptz, OUT first int4range, OUT second int4range)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    local_start timestamp := date_trunc('minute', s AT TIME ZONE 'Asia/Seoul');
    local_end   timestamp := e AT TIME ZONE 'Asia/Seoul';
    start_min   int;
    len         int;
BEGIN
    IF local_end > date_trunc('minute', local_end) THEN
        local_end := date_trunc('minute', local_end) + interval '1 minute';
    END IF;
    start_min := extract(dow FROM local_start)::int * 1440
               + extract(hour FROM local_start)::int * 60
               + extract(minute FROM local_start)::int;
    len := (extract(epoch FROM local_end - local_start) / 60)::int;
    IF len >= 10080 THEN
        first := int4range(0, 10080);
        second := 'empty';
    ELSIF start_min + len <= 10080 THEN
        first := int4range(start_min, start_min + len);
        second := 'empty';
    ELSE
        first := int4range(start_min, 10080);
        second := int4range(0, start_min + len - 10080);
    END IF;
END
$$;

-- Whether weekly rules cover what dated rules leave of [s, e). Used only when a vehicle has
-- dated available windows and neither kind covers the window alone.
CREATE FUNCTION read.rules_cover(weekly int4multirange, dated tstzmultirange, s timestamptz, e timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(bool_and(weekly @> p.first AND weekly @> p.second), true)
    FROM unnest(tstzmultirange(tstzrange(s, e)) - dated) AS rest(r)
    CROSS JOIN LATERAL read.week_pieces(lower(rest.r), upper(rest.r)) AS p
$$;

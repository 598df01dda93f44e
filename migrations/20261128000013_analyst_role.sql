-- A read-only role for analysts: it reads the documented read models (schema `read`) and
-- nothing else — not the event log, not the accounts with their personal data. Grant it to a
-- login role: `CREATE ROLE alice LOGIN PASSWORD '…' IN ROLE carshare_analyst;`.
-- Roles are cluster-wide; several databases (or concurrent migrations) may create it at once.
DO $$
BEGIN
    CREATE ROLE carshare_analyst NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA read TO carshare_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA read TO carshare_analyst;
-- Tables created later in `read` (new read models, and the tables a rebuild swaps in) are
-- readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA read GRANT SELECT ON TABLES TO carshare_analyst;

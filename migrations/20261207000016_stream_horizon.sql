-- The stream's horizon: events are read in (transaction_id, global_position) order, only below
-- the oldest writing transaction still running, so that nothing can appear behind a reader.
-- `pg_snapshot_xmin` alone is that horizon for the whole cluster: a write left open in another
-- database of the same server (a migration, a batch job, another application) would hold back
-- every projection and the relay here. A transaction seen running in a backend connected to
-- another database cannot write to this database's `events` (a backend never changes
-- database), so it is left out. Every other transaction of the snapshot counts: those of this
-- database, prepared ones, and those that ended between the snapshot and the look at the
-- backends (their database is no longer known). Rows of transactions below the result are
-- therefore committed or rolled back for good in the caller's snapshot.
--
-- STABLE: it runs in the calling statement's snapshot (`pg_current_snapshot()` is that snapshot
-- and its query takes no new one), so the horizon and the rows read agree. PL/pgSQL keeps the
-- query's plan for the session (a SQL function's body would be planned again on every call).
-- Callers write `transaction_id < (SELECT stream_horizon())` to have it evaluated once.
-- Backends of other databases are only looked at when the snapshot has running transactions.
CREATE FUNCTION stream_horizon() RETURNS xid8
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    snap pg_snapshot := pg_current_snapshot();
    oldest xid8;
BEGIN
    SELECT min(x) INTO oldest
      FROM pg_snapshot_xip(snap) AS x
     WHERE x::xid NOT IN (
           SELECT a.backend_xid
             FROM pg_stat_get_activity(NULL) AS a
            WHERE a.backend_xid IS NOT NULL
              AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()));
    RETURN coalesce(oldest, pg_snapshot_xmax(snap));
END
$$;

COMMENT ON FUNCTION stream_horizon() IS
    'The oldest transaction that may still write to this database''s events, in the caller''s snapshot: the stream is read below it.';

-- A source row of the rollup now counts the protocol, version and interaction in its cells, so
-- reports that group or filter by campaign and by version or fidelity read the rollup instead of
-- the detailed aggregates. The rows are rebuilt from the aggregates when the service next starts.
-- Through EXECUTE: report_rollup may be distributed (see migration 0011).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    EXECUTE 'TRUNCATE report_rollup';
    EXECUTE 'UPDATE report_rollup_state SET built = FALSE WHERE id = 1';
END
$$;

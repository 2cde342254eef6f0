-- The rollup's blocks become 1, 7 and 56 days starting on Mondays (they were 1, 8 and 64 days
-- aligned on day numbers), so a report by week reads one block per week. The rows are rebuilt
-- from the aggregates when the service next starts. Through EXECUTE: report_rollup may be
-- distributed (see migration 0011).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    EXECUTE 'TRUNCATE report_rollup';
    EXECUTE 'UPDATE report_rollup_state SET built = FALSE WHERE id = 1';
END
$$;

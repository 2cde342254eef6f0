-- The rollup's blocks become 1, 7 and 56 days starting on Mondays (they were 1, 8 and 64 days
-- aligned on day numbers), so a report by week reads one block per week. The rows are rebuilt
-- from the aggregates when the service next starts.
DELETE FROM report_rollup;
UPDATE report_rollup_state SET built = FALSE WHERE id = 1;

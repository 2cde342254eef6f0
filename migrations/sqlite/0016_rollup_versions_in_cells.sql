-- A source row of the rollup now counts the protocol, version and interaction in its cells, so
-- reports that group or filter by campaign and by version or fidelity read the rollup instead of
-- the detailed aggregates. The rows are rebuilt from the aggregates when the service next starts.
DELETE FROM report_rollup;
UPDATE report_rollup_state SET built = FALSE WHERE id = 1;

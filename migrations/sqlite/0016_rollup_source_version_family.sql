-- The rollup gains a third family of rows keeping the source identifier, campaign, protocol,
-- version and interaction together, for reports that group or filter by campaign and by version
-- or fidelity (they read the detailed aggregates before). The rows of every family are rebuilt
-- from the aggregates when the service next starts.
DELETE FROM report_rollup;
UPDATE report_rollup_state SET built = FALSE WHERE id = 1;

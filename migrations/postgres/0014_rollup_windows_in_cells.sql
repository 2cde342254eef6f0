-- The rollup keeps the window inside its cells instead of in the key: a campaign report reads
-- every campaign's row in every block, and a SKAdNetwork 4 campaign's three windows now share
-- one row. `compacted_bytes` is a row's blob length when it was
-- last merged into one run: a row is merged again once appends double it. The rows are rebuilt
-- from the aggregates when the service next starts. Through EXECUTE: report_rollup may be
-- distributed (see migration 0011).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    EXECUTE 'TRUNCATE report_rollup';
    EXECUTE 'ALTER TABLE report_rollup DROP CONSTRAINT report_rollup_pkey';
    EXECUTE 'ALTER TABLE report_rollup DROP COLUMN conversion_window';
    EXECUTE 'ALTER TABLE report_rollup ADD COLUMN compacted_bytes BIGINT NOT NULL DEFAULT 0';
    EXECUTE 'ALTER TABLE report_rollup ADD PRIMARY KEY (app_id, date_kind, span, day, '
        'ad_network_id, family, source_identifier, campaign_id, protocol, version, interaction, '
        'development, period_day)';
    EXECUTE 'UPDATE report_rollup_state SET built = FALSE WHERE id = 1';
END
$$;

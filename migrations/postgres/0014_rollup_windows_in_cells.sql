-- The rollup keeps the window inside its cells instead of in the key: a campaign report reads
-- every campaign's row in every block, and one row per campaign instead of one per campaign and
-- window is a third of the rows to group. `compacted_bytes` is a row's blob length when it was
-- last merged into one run: a row is merged again once appends double it. The rows are rebuilt
-- from the aggregates when the service next starts.
TRUNCATE report_rollup;
ALTER TABLE report_rollup DROP CONSTRAINT report_rollup_pkey;
ALTER TABLE report_rollup DROP COLUMN conversion_window;
ALTER TABLE report_rollup ADD COLUMN compacted_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_rollup ADD PRIMARY KEY (app_id, date_kind, span, day, ad_network_id, family,
    source_identifier, campaign_id, protocol, version, interaction, development, period_day);
UPDATE report_rollup_state SET built = FALSE WHERE id = 1;

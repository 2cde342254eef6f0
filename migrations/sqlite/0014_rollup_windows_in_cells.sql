-- The rollup keeps the window inside its cells instead of in the key: a campaign report reads
-- every campaign's row in every block, and a SKAdNetwork 4 campaign's three windows now share
-- one row. `compacted_bytes` is a row's blob length when it was
-- last merged into one run: a row is merged again once appends double it. The rows are rebuilt
-- from the aggregates when the service next starts.
DROP TABLE report_rollup;
CREATE TABLE report_rollup (
    app_id             INTEGER NOT NULL,
    date_kind          TEXT NOT NULL,
    span               INTEGER NOT NULL,
    day                INTEGER NOT NULL,
    ad_network_id      TEXT NOT NULL,
    family             TEXT NOT NULL,
    source_identifier  TEXT NOT NULL,
    campaign_id        INTEGER NOT NULL,
    protocol           TEXT NOT NULL,
    version            TEXT NOT NULL,
    interaction        TEXT NOT NULL,
    development        BOOLEAN NOT NULL,
    period_day         INTEGER NOT NULL,
    counts             BLOB NOT NULL,
    compacted_bytes    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, date_kind, span, day, ad_network_id, family, source_identifier,
                 campaign_id, protocol, version, interaction, development, period_day)
) WITHOUT ROWID;
UPDATE report_rollup_state SET built = FALSE WHERE id = 1;

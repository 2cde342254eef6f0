-- The report rollup: per block of 1, 8 or 64 days, ad network, window, development flag and
-- decoding period (the first day of the schema version in effect at the install day, -1 before
-- the first), the counts down to the value as sparse cells in one blob. Two families of rows:
-- 'source' rows keep the source identifier and campaign, 'version' rows the protocol, version
-- and interaction (the other family's columns are '' and -1). Reports grouped or filtered by
-- campaign, version or fidelity read a few blocks of one family. The service fills it
-- from the aggregates when it starts and finds `report_rollup_state.built` false.
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
    conversion_window  INTEGER NOT NULL,
    development        BOOLEAN NOT NULL,
    period_day         INTEGER NOT NULL,
    counts             BLOB NOT NULL,
    PRIMARY KEY (app_id, date_kind, span, day, ad_network_id, family, source_identifier,
                 campaign_id, protocol, version, interaction, conversion_window, development,
                 period_day)
) WITHOUT ROWID;

CREATE TABLE report_rollup_state (
    id     INTEGER PRIMARY KEY,
    built  BOOLEAN NOT NULL
);
INSERT INTO report_rollup_state (id, built) VALUES (1, FALSE);

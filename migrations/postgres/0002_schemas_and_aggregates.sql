-- Conversion-value schema versions, estimated install times, and the aggregates reports read.

-- Estimated install interval (unix ms) and days since 1970-01-01 (UTC) of the first arrival and
-- of the interval's midpoint; see src/skan/timing.rs for the rule.
ALTER TABLE postbacks ADD COLUMN arrival_day BIGINT NOT NULL DEFAULT 0;
ALTER TABLE postbacks ADD COLUMN install_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE postbacks ADD COLUMN install_to BIGINT NOT NULL DEFAULT 0;
ALTER TABLE postbacks ADD COLUMN install_day BIGINT NOT NULL DEFAULT 0;

CREATE TABLE schema_versions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    effective_from  BIGINT NOT NULL,
    author          TEXT    NOT NULL,
    note            TEXT,
    document        TEXT    NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (app_id, version)
);

-- Counts keyed by what Apple sent, not by what it meant: decoding happens at read time against
-- the schema in effect, so a schema edit re-decodes all history. Absent values are stored as ''
-- or -1 so that they take part in the key.
CREATE TABLE aggregates (
    app_id              BIGINT NOT NULL,
    arrival_day         BIGINT NOT NULL,
    install_day         BIGINT NOT NULL,
    ad_network_id       TEXT    NOT NULL,
    source_identifier   TEXT    NOT NULL,
    campaign_id         BIGINT NOT NULL,
    protocol            TEXT    NOT NULL,
    version             TEXT    NOT NULL,
    conversion_window   BIGINT NOT NULL,
    interaction         TEXT    NOT NULL,
    conversion_type     TEXT    NOT NULL,
    did_win             BOOLEAN NOT NULL,
    development         BOOLEAN NOT NULL,
    fine_value          BIGINT NOT NULL,
    coarse_value        TEXT    NOT NULL,
    tier_hint           BIGINT NOT NULL,
    outcome             TEXT    NOT NULL,
    postbacks           BIGINT NOT NULL,
    unsigned_mismatch   BIGINT NOT NULL,
    PRIMARY KEY (app_id, arrival_day, install_day, ad_network_id, source_identifier, campaign_id,
                 protocol, version, conversion_window, interaction, conversion_type, did_win,
                 development, fine_value, coarse_value, tier_hint, outcome)
);
CREATE INDEX aggregates_install_day ON aggregates (app_id, install_day);

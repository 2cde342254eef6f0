-- Postbacks, their receipts (every arrival, verbatim), and API keys.
-- Times are unix milliseconds (INTEGER): portable, sortable, and set from the application clock.

CREATE TABLE postbacks (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Valid postbacks: the protocol dedup key. Quarantined ones: dedup key, outcome and a digest
    -- of the bytes, so a forged copy can never occupy the genuine postback's key.
    identity_key        TEXT    NOT NULL UNIQUE,
    dedup_key           TEXT    NOT NULL,
    protocol            TEXT    NOT NULL,
    version             TEXT,
    ad_network_id       TEXT    NOT NULL,
    app_id              INTEGER NOT NULL,
    transaction_id      TEXT    NOT NULL,
    source_identifier   TEXT,
    campaign_id         INTEGER,
    source_app_id       INTEGER,
    source_domain       TEXT,
    conversion_window   INTEGER NOT NULL,
    did_win             BOOLEAN NOT NULL,
    conversion_type     TEXT,
    fidelity_type       INTEGER,
    interaction         TEXT,
    fine_value          INTEGER,
    coarse_value        TEXT,
    tier_hint           INTEGER,
    country_code        TEXT,
    outcome             TEXT    NOT NULL,
    reason_code         TEXT,
    reason_message      TEXT,
    development         BOOLEAN NOT NULL,
    key_name            TEXT,
    values_channel      TEXT    NOT NULL,
    unsigned_mismatch   BOOLEAN NOT NULL DEFAULT FALSE,
    first_received_at   INTEGER NOT NULL,
    receipt_count       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX postbacks_dedup_key ON postbacks (dedup_key);
CREATE INDEX postbacks_transaction_id ON postbacks (transaction_id);
CREATE INDEX postbacks_outcome ON postbacks (outcome, id);
CREATE INDEX postbacks_first_received_at ON postbacks (first_received_at, id);

CREATE TABLE receipts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    postback_id     INTEGER REFERENCES postbacks (id),
    received_at     INTEGER NOT NULL,
    channel         TEXT    NOT NULL,
    source_name     TEXT,
    result          TEXT    NOT NULL,
    error_code      TEXT,
    error_field     TEXT,
    error_message   TEXT,
    raw             BLOB    NOT NULL
);
CREATE INDEX receipts_postback_id ON receipts (postback_id);
CREATE INDEX receipts_received_at ON receipts (received_at);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    role        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    key_prefix  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- The columns the PostgreSQL schema needs to distribute its tables (see its migration 0011),
-- kept in step here so both backends run the same statements: receipts and deliveries carry
-- their app, attempts their destination, and the hot per-destination state has a table of its
-- own.
ALTER TABLE receipts ADD COLUMN app_id INTEGER NOT NULL DEFAULT 0;
UPDATE receipts SET app_id = COALESCE(
    (SELECT p.app_id FROM postbacks p WHERE p.id = receipts.postback_id), 0);

ALTER TABLE deliveries ADD COLUMN app_id INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET app_id = COALESCE(
    (SELECT p.app_id FROM postbacks p WHERE p.id = deliveries.postback_id), 0);

ALTER TABLE delivery_attempts ADD COLUMN destination_id INTEGER NOT NULL DEFAULT 0;
UPDATE delivery_attempts SET destination_id = COALESCE(
    (SELECT d.destination_id FROM deliveries d WHERE d.id = delivery_attempts.delivery_id), 0);

CREATE UNIQUE INDEX postbacks_app_identity ON postbacks (app_id, identity_key);

CREATE TABLE destination_state (
    destination_id  INTEGER PRIMARY KEY REFERENCES destinations (id),
    tokens_milli    INTEGER NOT NULL,
    tokens_at       INTEGER NOT NULL,
    failing_since   INTEGER
);
INSERT INTO destination_state (destination_id, tokens_milli, tokens_at, failing_since)
    SELECT id, tokens_milli, tokens_at, failing_since FROM destinations;
ALTER TABLE destinations DROP COLUMN tokens_milli;
ALTER TABLE destinations DROP COLUMN tokens_at;
ALTER TABLE destinations DROP COLUMN failing_since;

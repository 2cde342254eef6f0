-- no-transaction
-- Anomaly alerts go through the outbox like postbacks: a delivery now carries either a postback
-- or an anomaly. SQLite cannot drop NOT NULL from a column, so the table is rebuilt with the same
-- ids (so the attempts' references hold), the way SQLite's documentation prescribes: with foreign
-- keys off, a pragma that cannot change inside a transaction, hence the transaction of its own
-- here. Run again after a crash before it was recorded, it rebuilds the table once more.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
DROP TABLE IF EXISTS deliveries_new;

CREATE TABLE deliveries_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id      INTEGER NOT NULL REFERENCES destinations (id),
    postback_id         INTEGER REFERENCES postbacks (id),
    anomaly_id          INTEGER,
    app_id              INTEGER NOT NULL DEFAULT 0,
    state               TEXT    NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    manual              BOOLEAN NOT NULL DEFAULT FALSE,
    next_attempt_at     INTEGER NOT NULL,
    lease_owner         TEXT,
    lease_expires_at    INTEGER,
    last_status         INTEGER,
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    delivered_at        INTEGER,
    UNIQUE (destination_id, postback_id),
    UNIQUE (destination_id, anomaly_id),
    CHECK ((postback_id IS NULL) <> (anomaly_id IS NULL))
);
INSERT INTO deliveries_new (id, destination_id, postback_id, app_id, state, attempts, manual,
        next_attempt_at, lease_owner, lease_expires_at, last_status, last_error, created_at,
        updated_at, delivered_at)
    SELECT id, destination_id, postback_id, app_id, state, attempts, manual, next_attempt_at,
        lease_owner, lease_expires_at, last_status, last_error, created_at, updated_at,
        delivered_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (destination_id, state, next_attempt_at);
CREATE INDEX deliveries_by_state ON deliveries (state, created_at);
CREATE INDEX deliveries_by_postback ON deliveries (postback_id);
COMMIT;
PRAGMA foreign_keys = ON;

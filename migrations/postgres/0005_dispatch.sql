-- The postback dispatcher: destinations, the delivery outbox, and every attempt.

CREATE TABLE destinations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    enabled         BOOLEAN NOT NULL,
    -- The destination document (JSON), as written by its owner.
    config          TEXT    NOT NULL,
    disabled_reason TEXT,
    disabled_at     BIGINT,
    -- Start of the current run of failures (cleared by a success).
    failing_since   BIGINT,
    -- Token bucket of the rate limit (thousandths of a request), shared by every receiver on
    -- this database.
    tokens_milli    BIGINT NOT NULL DEFAULT 0,
    tokens_at       BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- One row per (destination, postback), written in the postback's transaction. A worker claims a
-- row by taking a lease, sends outside any transaction, and finishes only if it still holds the
-- lease; an expired lease (a crashed worker) makes the row claimable again.
CREATE TABLE deliveries (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id      BIGINT NOT NULL REFERENCES destinations (id),
    postback_id         BIGINT NOT NULL REFERENCES postbacks (id),
    state               TEXT    NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    manual              BOOLEAN NOT NULL DEFAULT FALSE,
    next_attempt_at     BIGINT NOT NULL,
    -- The claim holding the row: an opaque token; completion is fenced on it.
    lease_owner         TEXT,
    lease_expires_at    BIGINT,
    last_status         BIGINT,
    last_error          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    delivered_at        BIGINT,
    UNIQUE (destination_id, postback_id)
);
CREATE INDEX deliveries_due ON deliveries (destination_id, state, next_attempt_at);
CREATE INDEX deliveries_by_state ON deliveries (state, created_at);

CREATE TABLE delivery_attempts (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id         BIGINT NOT NULL REFERENCES deliveries (id),
    attempt             BIGINT NOT NULL,
    trigger             TEXT    NOT NULL,
    started_at          BIGINT NOT NULL,
    duration_ms         BIGINT NOT NULL,
    url                 TEXT    NOT NULL,
    status              BIGINT,
    error               TEXT,
    response_excerpt    TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);

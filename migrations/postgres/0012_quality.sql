-- Data quality: postbacks by app and arrival day (what the quality report and the anomaly
-- detection read), the anomalies found (one per app, network, metric and day, so receivers that
-- evaluate together store and alert once), mutes, and the leases that take turns at scheduled
-- work. Anomalies and mutes are distributed by app on Citus; leases are a reference table.
-- Through EXECUTE: postbacks may be distributed already (see migration 0011). On Citus the whole
-- migration runs in sequential mode, which distributing tables below requires of everything
-- before it in the transaction.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    EXECUTE 'CREATE INDEX postbacks_app_arrival ON postbacks (app_id, arrival_day)';
END
$$;

CREATE TABLE anomalies (
    id               BIGINT GENERATED ALWAYS AS IDENTITY,
    app_id           BIGINT NOT NULL,
    ad_network_id    TEXT    NOT NULL,
    metric           TEXT    NOT NULL,
    day              BIGINT  NOT NULL,
    expected         DOUBLE PRECISION NOT NULL,
    expected_low     DOUBLE PRECISION NOT NULL,
    expected_high    DOUBLE PRECISION NOT NULL,
    observed         DOUBLE PRECISION NOT NULL,
    score            DOUBLE PRECISION NOT NULL,
    baseline_from    BIGINT  NOT NULL,
    baseline_to      BIGINT  NOT NULL,
    baseline_days    BIGINT  NOT NULL,
    partial_day      BOOLEAN NOT NULL,
    detected_at      BIGINT  NOT NULL,
    acknowledged_at  BIGINT,
    acknowledged_by  TEXT,
    PRIMARY KEY (app_id, id),
    UNIQUE (app_id, ad_network_id, metric, day)
);

CREATE TABLE anomaly_mutes (
    app_id         BIGINT NOT NULL,
    ad_network_id  TEXT   NOT NULL,
    metric         TEXT   NOT NULL,
    muted_at       BIGINT NOT NULL,
    muted_by       TEXT   NOT NULL,
    PRIMARY KEY (app_id, ad_network_id, metric)
);

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('anomalies', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('anomaly_mutes', 'app_id', colocate_with => 'postbacks');
        PERFORM create_reference_table('leases');
    END IF;
END
$$;

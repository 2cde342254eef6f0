-- Data quality: postbacks by app and arrival day (what the quality report and the anomaly
-- detection read), the anomalies found (one per app, network, metric and day, so receivers that
-- evaluate together store and alert once), mutes, and the leases that take turns at scheduled
-- work.
CREATE INDEX postbacks_app_arrival ON postbacks (app_id, arrival_day);

CREATE TABLE anomalies (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id           INTEGER NOT NULL,
    ad_network_id    TEXT    NOT NULL,
    metric           TEXT    NOT NULL,
    day              INTEGER NOT NULL,
    expected         REAL    NOT NULL,
    expected_low     REAL    NOT NULL,
    expected_high    REAL    NOT NULL,
    observed         REAL    NOT NULL,
    score            REAL    NOT NULL,
    baseline_from    INTEGER NOT NULL,
    baseline_to      INTEGER NOT NULL,
    baseline_days    INTEGER NOT NULL,
    partial_day      BOOLEAN NOT NULL,
    detected_at      INTEGER NOT NULL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    UNIQUE (app_id, ad_network_id, metric, day)
);

-- '' as the network mutes the metric for every network of the app.
CREATE TABLE anomaly_mutes (
    app_id         INTEGER NOT NULL,
    ad_network_id  TEXT    NOT NULL,
    metric         TEXT    NOT NULL,
    muted_at       INTEGER NOT NULL,
    muted_by       TEXT    NOT NULL,
    PRIMARY KEY (app_id, ad_network_id, metric)
);

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);

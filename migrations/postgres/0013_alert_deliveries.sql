-- Anomaly alerts go through the outbox like postbacks: a delivery now carries either a postback
-- or an anomaly. Through EXECUTE: deliveries may be distributed (see migration 0011).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    EXECUTE 'ALTER TABLE deliveries ALTER COLUMN postback_id DROP NOT NULL';
    EXECUTE 'ALTER TABLE deliveries ADD COLUMN anomaly_id BIGINT';
    EXECUTE 'ALTER TABLE deliveries ADD CONSTRAINT deliveries_destination_anomaly '
        'UNIQUE (destination_id, anomaly_id)';
    EXECUTE 'ALTER TABLE deliveries ADD CONSTRAINT deliveries_postback_or_anomaly '
        'CHECK ((postback_id IS NULL) <> (anomaly_id IS NULL))';
END
$$;

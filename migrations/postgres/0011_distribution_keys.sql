-- Every primary, unique and foreign key carries its table's distribution column, so the same
-- schema runs on plain PostgreSQL and on Citus: `app_id` for what a postback writes (postbacks,
-- receipts, schema versions, aggregates and report tables, co-located), `destination_id` for the
-- outbox (deliveries and attempts, with the hot per-destination state moved out of
-- `destinations` into `destination_state`). `destinations`, `api_keys` and the one-row state
-- tables are reference tables on Citus. When the `citus` extension is present, the last step
-- distributes the tables; on plain PostgreSQL it does nothing.

ALTER TABLE receipts ADD COLUMN app_id BIGINT;
UPDATE receipts r SET app_id = p.app_id FROM postbacks p WHERE p.id = r.postback_id;
-- A rejected item has no app: its receipt is kept under app 0.
UPDATE receipts SET app_id = 0 WHERE app_id IS NULL;
ALTER TABLE receipts ALTER COLUMN app_id SET NOT NULL;
ALTER TABLE receipts DROP CONSTRAINT receipts_postback_id_fkey;

ALTER TABLE deliveries ADD COLUMN app_id BIGINT;
UPDATE deliveries d SET app_id = p.app_id FROM postbacks p WHERE p.id = d.postback_id;
UPDATE deliveries SET app_id = 0 WHERE app_id IS NULL;
ALTER TABLE deliveries ALTER COLUMN app_id SET NOT NULL;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_postback_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_destination_id_fkey;

ALTER TABLE delivery_attempts ADD COLUMN destination_id BIGINT;
UPDATE delivery_attempts a SET destination_id = d.destination_id
    FROM deliveries d WHERE d.id = a.delivery_id;
ALTER TABLE delivery_attempts ALTER COLUMN destination_id SET NOT NULL;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;

ALTER TABLE postbacks DROP CONSTRAINT postbacks_pkey, ADD PRIMARY KEY (app_id, id);
ALTER TABLE postbacks DROP CONSTRAINT postbacks_identity_key_key,
    ADD CONSTRAINT postbacks_app_identity UNIQUE (app_id, identity_key);
-- Look-ups without the app: an operator searching by identity, the console by postback id.
CREATE INDEX postbacks_identity_key ON postbacks (identity_key);
CREATE INDEX postbacks_id ON postbacks (id);

ALTER TABLE receipts DROP CONSTRAINT receipts_pkey, ADD PRIMARY KEY (app_id, id);
ALTER TABLE receipts ADD CONSTRAINT receipts_postback
    FOREIGN KEY (app_id, postback_id) REFERENCES postbacks (app_id, id);

ALTER TABLE schema_versions DROP CONSTRAINT schema_versions_pkey, ADD PRIMARY KEY (app_id, id);

ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD PRIMARY KEY (destination_id, id);
CREATE INDEX deliveries_id ON deliveries (id);

ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_pkey,
    ADD PRIMARY KEY (destination_id, id);
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_delivery
    FOREIGN KEY (destination_id, delivery_id) REFERENCES deliveries (destination_id, id);

-- What every claim and completion writes: per destination, not in the reference table (on
-- Citus a write to a reference table locks it on every node, so claims for two destinations
-- would wait for each other).
CREATE TABLE destination_state (
    destination_id  BIGINT PRIMARY KEY,
    tokens_milli    BIGINT NOT NULL,
    tokens_at       BIGINT NOT NULL,
    failing_since   BIGINT
);
INSERT INTO destination_state (destination_id, tokens_milli, tokens_at, failing_since)
    SELECT id, tokens_milli, tokens_at, failing_since FROM destinations;
ALTER TABLE destinations DROP COLUMN tokens_milli, DROP COLUMN tokens_at, DROP COLUMN failing_since;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        -- One connection per worker for the steps below: the foreign keys added after a
        -- parallel step in the same transaction would otherwise be refused.
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
        PERFORM create_distributed_table('postbacks', 'app_id');
        PERFORM create_distributed_table('receipts', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('schema_versions', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('aggregates', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('report_cube', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('report_totals', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('report_rollup', 'app_id', colocate_with => 'postbacks');
        PERFORM create_distributed_table('destination_state', 'destination_id', colocate_with => 'none');
        PERFORM create_distributed_table('deliveries', 'destination_id', colocate_with => 'destination_state');
        PERFORM create_distributed_table('delivery_attempts', 'destination_id', colocate_with => 'destination_state');
        -- Reference tables last: made earlier, the tables pointing at them would become Citus
        -- local tables, which cannot be distributed any more.
        PERFORM create_reference_table('destinations');
        PERFORM create_reference_table('api_keys');
        PERFORM create_reference_table('report_rollup_state');
        PERFORM create_reference_table('storage_probe');
    END IF;
END
$$;

-- DDL on tables that may be distributed goes through EXECUTE: Citus passes a DDL statement on to
-- the workers as the text of the command it came in, and a migration file is sent as one
-- multi-statement command, which the workers refuse. (Later migrations must do the same.)
DO $$
BEGIN
    EXECUTE 'ALTER TABLE deliveries ADD CONSTRAINT deliveries_destination '
        'FOREIGN KEY (destination_id) REFERENCES destinations (id)';
    EXECUTE 'ALTER TABLE destination_state ADD CONSTRAINT destination_state_destination '
        'FOREIGN KEY (destination_id) REFERENCES destinations (id)';
END
$$;

-- Each rollup row keeps its key packed as reports read it (`head`: day, campaign and period as
-- decimals ended by ';', then the network, source identifier, protocol, version and interaction
-- as netstrings), written once when the row is made. A report then packs a row by joining its
-- head and counts instead of formatting eight fields.
-- Through EXECUTE: report_rollup may be distributed (see migration 0011). Citus refuses the
-- update below (`convert_to` is not immutable), so there the rollup is emptied and the service
-- refills it from the aggregates when it next starts, as after migration 0016.
DO $$
DECLARE
    citus BOOLEAN := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus');
BEGIN
    IF citus THEN
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;
    EXECUTE 'ALTER TABLE report_rollup ADD COLUMN head BYTEA NOT NULL DEFAULT ''''::bytea';
    IF citus THEN
        EXECUTE 'TRUNCATE report_rollup';
        EXECUTE 'UPDATE report_rollup_state SET built = FALSE WHERE id = 1';
    ELSE
        EXECUTE 'UPDATE report_rollup SET head = convert_to('
            'day || '';'' || campaign_id || '';'' || period_day || '';'' '
            '|| octet_length(ad_network_id) || '':'' || ad_network_id '
            '|| octet_length(source_identifier) || '':'' || source_identifier '
            '|| octet_length(protocol) || '':'' || protocol '
            '|| octet_length(version) || '':'' || version '
            '|| octet_length(interaction) || '':'' || interaction, ''UTF8'')';
    END IF;
END
$$;

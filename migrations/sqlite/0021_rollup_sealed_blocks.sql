-- Sealed rollup blocks: once a block has ended, its rollup rows of one network, family and
-- development flag are folded into a few values here (packed as reports read them), one per
-- chunk of source identifiers (a hash of the identifier, modulo 16), and deleted from
-- `report_rollup`. A report of a campaign shape then reads a few values per block instead of a
-- row per campaign. Rows written to a sealed block later go to `report_rollup` as before, and are
-- folded in again once they are a quarter as many as the block's values hold (`packed_rows`). Reports sum
-- both tables; counts are added, so a row is counted whichever table holds it. A value keeps each
-- source identifier's rows together, and `source_index` gives their byte range, so a report of a
-- few campaigns reads only their chunks, and only their rows in them.
CREATE TABLE report_rollup_sealed (
    app_id         INTEGER NOT NULL,
    date_kind      TEXT NOT NULL,
    span           INTEGER NOT NULL,
    day            INTEGER NOT NULL,
    ad_network_id  TEXT NOT NULL,
    family         TEXT NOT NULL,
    development    BOOLEAN NOT NULL,
    chunk          INTEGER NOT NULL,
    packed_rows    INTEGER NOT NULL,
    packed         BLOB NOT NULL,
    source_index   BLOB NOT NULL,
    PRIMARY KEY (app_id, date_kind, span, day, ad_network_id, family, development, chunk)
);

-- The rollup rows whose appended blobs have grown long enough to compact (longer than 1024 bytes
-- and than twice their length when last compacted), so that a write finds them with one query
-- instead of having every row it writes returned. The condition is repeated word for word in
-- the query (`LONG_ROLLUP_CONDITION`), which is what lets SQLite use this index.
CREATE INDEX report_rollup_long ON report_rollup (app_id)
    WHERE length(counts) > 1024 AND length(counts) > 2 * compacted_bytes;

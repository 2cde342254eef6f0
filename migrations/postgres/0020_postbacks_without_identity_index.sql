-- No query looks postbacks up by identity key without the app: a copy is found through the
-- unique (app_id, identity_key) index. The plain index on identity_key alone (from 0011) only
-- cost every insert one more entry keyed by a random text. SQLite has no such index (its
-- identity key is a column constraint there), so this number has no SQLite migration.
DROP INDEX IF EXISTS postbacks_identity_key;

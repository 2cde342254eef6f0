-- One row rewritten by the readiness check after a failed write (a full disk, a read-only file):
-- a write that succeeds shows the store can take postbacks again.
CREATE TABLE storage_probe (
    id  INTEGER PRIMARY KEY,
    at  BIGINT NOT NULL
);
INSERT INTO storage_probe (id, at) VALUES (1, 0);

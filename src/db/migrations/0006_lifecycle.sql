-- Version 6: the account lifecycle. Deletion (soft delete now, purge of the personal fields
-- after `deletion_cooldown`), the processing restriction, and the account holders' requests
-- the admin sees (restriction switched on or off, deletion).

-- `deleted_at`: when the holder deleted the account (state 'deleted'); the address cannot sign
-- up again until `deleted_at + deletion_cooldown`. `purged_at`: when the `accounts` job
-- replaced the address with a placeholder and cleared the password hash and the name.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
ALTER TABLE users ADD COLUMN purged_at INTEGER;
-- Set while the holder asks that no optional processing (anomaly scoring beyond fraud
-- prevention, marketing) is done on their data.
ALTER TABLE users ADD COLUMN processing_restricted_at INTEGER;
CREATE INDEX users_deleted ON users(deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;

-- What account holders asked for, for the admin's list (/admin/requests). `kind` is
-- 'restrict', 'unrestrict' or 'delete'; `handled_at`/`handled_by` when an admin marked it seen.
CREATE TABLE account_requests (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    kind       TEXT NOT NULL CHECK (kind IN ('restrict', 'unrestrict', 'delete')),
    detail     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    handled_at INTEGER,
    handled_by INTEGER REFERENCES users(id)
);
CREATE INDEX account_requests_open ON account_requests(handled_at, id);
CREATE INDEX account_requests_user ON account_requests(user_id, id);

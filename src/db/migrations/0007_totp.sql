-- Version 6: the TOTP second factor (RFC 6238) and its recovery codes, and the half-signed-in
-- state between the password and the code at login.

-- One row per account that started or finished enrolment. The TOTP secret itself is not
-- stored: it is derived from `secret_salt` and the install key (domain::second_factor), so
-- the database alone cannot produce codes. `enabled_at` NULL = enrolment started but not yet
-- confirmed with a code. `last_step` is the last 30-second step whose code was accepted: a
-- code of that step or an earlier one is refused (no replay).
CREATE TABLE totp (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id),
    secret_salt TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    enabled_at  INTEGER,
    last_step   INTEGER NOT NULL DEFAULT -1
);

-- Ten single-use recovery codes per enrolled account; only keyed hashes are stored.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    code_hash  BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- A session whose visitor gave the right password of an account with a second factor, but
-- not yet the code: still anonymous (user_id NULL), so no page treats it as signed in.
ALTER TABLE sessions ADD COLUMN pending_user_id INTEGER REFERENCES users(id);
ALTER TABLE sessions ADD COLUMN pending_until INTEGER;
ALTER TABLE sessions ADD COLUMN pending_attempts INTEGER NOT NULL DEFAULT 0;

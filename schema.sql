-- otpbox schema, version 1: accounts, sessions, mail, audit and scheduler.
-- Applied once to a new database; later changes are forward migrations in src/db/migrations.
-- Times are Unix seconds (UTC). Money is INTEGER minor units.

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name     TEXT NOT NULL DEFAULT '',
    password_hash    TEXT,                         -- argon2id PHC string; NULL = no password login
    role             TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'operator', 'admin')),
    state            TEXT NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'suspended', 'terminated', 'deleted')),
    state_reason     TEXT NOT NULL DEFAULT '',
    email_verified_at INTEGER,
    age_confirmed_at INTEGER,
    aup_accepted_at  INTEGER,
    balance_minor    INTEGER NOT NULL DEFAULT 0,   -- cache of SUM(ledger.amount_minor)
    created_at       INTEGER NOT NULL,
    state_changed_at INTEGER
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,             -- keyed hash of the cookie value
    user_id      INTEGER REFERENCES users(id),     -- NULL = anonymous (carries CSRF for forms)
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,                 -- absolute end
    ip_hash      TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Single-use, expiring tokens behind e-mailed links (verify, reset, admin setup).
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    INTEGER REFERENCES users(id),
    token_hash BLOB NOT NULL UNIQUE,
    data       TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id, purpose);

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    to_addr    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox(sent_at, id);

-- Security log: logins, failures, key and second-factor changes (kept 12 months).
CREATE TABLE security_events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    user_id INTEGER REFERENCES users(id),
    kind    TEXT NOT NULL,
    ip_hash TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX security_events_user ON security_events(user_id, kind, at);
CREATE INDEX security_events_ip ON security_events(ip_hash, kind, at);
CREATE INDEX security_events_at ON security_events(at);

-- Admin actions on someone else's data.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor_id  INTEGER REFERENCES users(id),        -- NULL = command line
    target_id INTEGER REFERENCES users(id),
    action    TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    ip_hash   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_target ON audit_log(target_id, at);

CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job         TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    message     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_job ON job_runs(job, started_at);

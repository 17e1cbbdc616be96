-- Version 3: customer webhooks. Registered URLs, the outbox of deliveries (written in the same
-- transaction as the state change that causes them, sent by the `webhooks` job) and the log
-- of every attempt.

-- `native` webhooks get signed JSON envelopes for the events they chose; the one
-- `sms_activate` webhook of an account gets the SMS-Activate activation body (protocols §1.5).
-- The signing secret is not stored: it is derived from `secret_salt` and the install key.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL DEFAULT 'native' CHECK (kind IN ('native', 'sms_activate')),
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,                   -- space-separated event names
    secret_salt TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhooks_user ON webhooks(user_id, kind);
CREATE UNIQUE INDEX webhooks_one_sms_activate ON webhooks(user_id) WHERE kind = 'sms_activate';

-- One row per event and receiver. `uuid` is the X-Otpbox-Delivery header: the same on every
-- attempt, so a receiver recognises a replay. `webhook_id` is NULL for a rental's own URL
-- (getRentNumber `url`), which has no secret. `payload` is cleared once the delivery is final
-- (it may carry SMS text).
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    webhook_id      INTEGER REFERENCES webhooks(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT,
    ref_type        TEXT NOT NULL DEFAULT '',    -- 'activation' or 'rental' for SMS events
    ref_id          INTEGER,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    last_status     INTEGER,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries(finished_at) WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);

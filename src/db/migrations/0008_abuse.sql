-- Abuse and enforcement: public abuse reports and appeals with the admin's notes, anomaly
-- flags, chargebacks, blocked services and countries, and the register of law-enforcement
-- requests behind the public transparency page.

-- A public abuse report (kind 'report') or a terminated person's appeal (kind 'appeal').
-- The reporter's address is kept only as a keyed hash, for the hourly limit; the abuse job
-- clears it after a week.
CREATE TABLE abuse_reports (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL DEFAULT 'report' CHECK (kind IN ('report', 'appeal')),
    phone         TEXT NOT NULL DEFAULT '',        -- digits only, as numbers.phone
    service       TEXT NOT NULL DEFAULT '',        -- free text: the destination service
    description   TEXT NOT NULL,
    contact       TEXT NOT NULL DEFAULT '',        -- optional e-mail of the reporter
    user_id       INTEGER REFERENCES users(id),    -- the appealing account
    ip_hash       TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'new'
                  CHECK (state IN ('new', 'investigating', 'actioned', 'dismissed')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX abuse_reports_state ON abuse_reports(state, id);
CREATE INDEX abuse_reports_ip ON abuse_reports(ip_hash, created_at);
CREATE INDEX abuse_reports_user ON abuse_reports(user_id, kind);

-- The admin's notes on a report: append-only.
CREATE TABLE abuse_notes (
    id        INTEGER PRIMARY KEY,
    report_id INTEGER NOT NULL REFERENCES abuse_reports(id),
    author_id INTEGER REFERENCES users(id),
    at        INTEGER NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX abuse_notes_report ON abuse_notes(report_id, id);
CREATE TRIGGER abuse_notes_append_only BEFORE UPDATE ON abuse_notes
BEGIN
    SELECT RAISE(ABORT, 'abuse notes are append-only');
END;

-- An anomaly signal about an account, for the admin to review. Never acted on by itself.
-- At most one open flag per (account, kind).
CREATE TABLE flags (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'reviewed')),
    created_at  INTEGER NOT NULL,
    reviewed_by INTEGER REFERENCES users(id),
    reviewed_at INTEGER
);
CREATE UNIQUE INDEX flags_one_open ON flags(user_id, kind) WHERE state = 'open';
CREATE INDEX flags_state ON flags(state, id);
CREATE INDEX flags_user ON flags(user_id, id);

-- A chargeback the admin recorded from the payment provider's notice. `ledger_id` is the
-- adjustment row when the admin chose to debit the balance.
CREATE TABLE chargebacks (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    reference    TEXT NOT NULL,
    recorded_by  INTEGER REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    ledger_id    INTEGER REFERENCES ledger(id) ON DELETE SET NULL  -- ledger rows age out
);
CREATE INDEX chargebacks_user ON chargebacks(user_id, id);

-- Services and countries nobody may order: a service everywhere (country_id NULL), a
-- country for every service (service NULL), or one pair.
CREATE TABLE blocked (
    id         INTEGER PRIMARY KEY,
    country_id INTEGER,
    service    TEXT,
    reason     TEXT NOT NULL DEFAULT '',
    created_by INTEGER REFERENCES users(id),
    created_at INTEGER NOT NULL,
    CHECK (country_id IS NOT NULL OR service IS NOT NULL)
);
CREATE UNIQUE INDEX blocked_one ON blocked(IFNULL(country_id, -1), IFNULL(service, ''));

-- Requests from law enforcement and other authorities, and what we did. The yearly counts
-- per outcome are public (/transparency).
CREATE TABLE legal_requests (
    id          INTEGER PRIMARY KEY,
    received_on TEXT NOT NULL,                     -- YYYY-MM-DD
    agency      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('pending', 'disclosed', 'partially',
                'rejected', 'no_data')),
    notes       TEXT NOT NULL DEFAULT '',
    created_by  INTEGER REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX legal_requests_received ON legal_requests(received_on);

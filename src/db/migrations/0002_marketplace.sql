-- Version 2: the marketplace core. Catalogue, inventory, wallet ledger, activations, rentals,
-- messages, vouchers, API keys and runtime settings.

CREATE TABLE countries (
    id           INTEGER PRIMARY KEY,             -- SMS-Activate numeric id
    iso          TEXT NOT NULL,                   -- ISO 3166 alpha-2, lower case
    prefix       TEXT NOT NULL,                   -- dialing code, digits only
    name         TEXT NOT NULL,
    fivesim_name TEXT NOT NULL UNIQUE,
    enabled      INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE services (
    code          TEXT PRIMARY KEY,               -- SMS-Activate short code
    name          TEXT NOT NULL,
    fivesim_name  TEXT NOT NULL UNIQUE,
    lifetime_secs INTEGER,                        -- NULL = the install's activation_ttl
    enabled       INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE operators (
    country_id INTEGER NOT NULL REFERENCES countries(id),
    code       TEXT NOT NULL,
    name       TEXT NOT NULL,
    PRIMARY KEY (country_id, code)
);

-- Price per (country, service) and optionally per operator ('' = any operator).
CREATE TABLE prices (
    country_id      INTEGER NOT NULL REFERENCES countries(id),
    service         TEXT NOT NULL REFERENCES services(code),
    operator        TEXT NOT NULL DEFAULT '',
    price_minor     INTEGER NOT NULL CHECK (price_minor >= 0),
    rent_hour_minor INTEGER NOT NULL CHECK (rent_hour_minor >= 0),
    PRIMARY KEY (country_id, service, operator)
);

-- Phone numbers we can hand out. `phone` is digits with country code, no '+'.
CREATE TABLE numbers (
    id           INTEGER PRIMARY KEY,
    phone        TEXT NOT NULL UNIQUE,
    country_id   INTEGER NOT NULL REFERENCES countries(id),
    operator     TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL,                   -- 'simulator', 'sim', 'manual', 'upstream'
    owner_id     INTEGER REFERENCES users(id),    -- operator account that supplies it
    state        TEXT NOT NULL DEFAULT 'free' CHECK (state IN ('free', 'busy', 'disabled')),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX numbers_pick ON numbers(country_id, state, last_used_at);

-- Which services a number was used for, and quarantines ("number already used").
CREATE TABLE number_usage (
    number_id    INTEGER NOT NULL REFERENCES numbers(id),
    service      TEXT NOT NULL,
    last_used_at INTEGER NOT NULL,
    blocked      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (number_id, service)
);

-- Every balance movement. users.balance_minor caches SUM(amount_minor) per user.
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    amount_minor  INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'voucher',
                  'adjustment', 'forfeit', 'earning', 'payout')),
    ref_type      TEXT NOT NULL DEFAULT '',
    ref_id        INTEGER,
    note          TEXT NOT NULL DEFAULT '',
    balance_after INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX ledger_user ON ledger(user_id, id);
-- A refund for one order can exist only once, whatever races happen.
CREATE UNIQUE INDEX ledger_one_refund ON ledger(ref_type, ref_id) WHERE kind = 'refund';

CREATE TABLE activations (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    number_id       INTEGER REFERENCES numbers(id),
    phone           TEXT NOT NULL,
    country_id      INTEGER NOT NULL,
    service         TEXT NOT NULL,
    operator        TEXT NOT NULL DEFAULT '',
    price_minor     INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'received', 'retry',
                    'completed', 'canceled', 'expired')),
    client_order_id TEXT,
    source          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    code_at         INTEGER,                      -- first code received
    ended_at        INTEGER,
    ready_at        INTEGER,                      -- client said "SMS sent" (setStatus 1)
    UNIQUE (user_id, client_order_id)
);
CREATE INDEX activations_user ON activations(user_id, id);
CREATE INDEX activations_live ON activations(status, expires_at);
CREATE INDEX activations_number ON activations(number_id, status);

CREATE TABLE rentals (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    number_id   INTEGER REFERENCES numbers(id),
    phone       TEXT NOT NULL,
    country_id  INTEGER NOT NULL,
    service     TEXT NOT NULL,
    hours       INTEGER NOT NULL,
    hour_minor  INTEGER NOT NULL,
    paid_minor  INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'finished', 'canceled', 'expired')),
    auto_renew  INTEGER NOT NULL DEFAULT 0,
    webhook_url TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
CREATE INDEX rentals_user ON rentals(user_id, id);
CREATE INDEX rentals_live ON rentals(status, expires_at);
CREATE INDEX rentals_number ON rentals(number_id, status);

-- SMS delivered to an order. Rows are deleted by the retention job (privacy promise).
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    activation_id INTEGER REFERENCES activations(id),
    rental_id     INTEGER REFERENCES rentals(id),
    sender        TEXT NOT NULL,
    text          TEXT NOT NULL,
    code          TEXT,
    received_at   INTEGER NOT NULL
);
CREATE INDEX messages_activation ON messages(activation_id, id);
CREATE INDEX messages_rental ON messages(rental_id, id);

-- Source message ids already taken in, so a redelivered SMS is stored once.
CREATE TABLE inbound_seen (
    dedup_key TEXT PRIMARY KEY,
    seen_at   INTEGER NOT NULL
);
CREATE INDEX inbound_seen_at ON inbound_seen(seen_at);

CREATE TABLE vouchers (
    id           INTEGER PRIMARY KEY,
    code_hash    BLOB NOT NULL UNIQUE,
    hint         TEXT NOT NULL,                   -- last characters, for the admin list
    batch        TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    created_by   INTEGER REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    redeemed_by  INTEGER REFERENCES users(id),
    redeemed_at  INTEGER
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_user ON api_keys(user_id);

-- Settings the admin changes at run time (e.g. the simulator switch).
CREATE TABLE runtime_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Simulated SMS waiting to be delivered.
CREATE TABLE sim_outbox (
    id            INTEGER PRIMARY KEY,
    activation_id INTEGER REFERENCES activations(id),
    rental_id     INTEGER REFERENCES rentals(id),
    deliver_at    INTEGER NOT NULL,
    sender        TEXT NOT NULL,
    text          TEXT NOT NULL,
    dedup_key     TEXT NOT NULL
);
CREATE INDEX sim_outbox_due ON sim_outbox(deliver_at);

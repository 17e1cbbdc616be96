-- Version 4: number supply. Operators' devices and the SIMs in them, upstream providers and
-- what they offer, orders bought upstream, operator payouts.

-- A phone or modem running gateway software. `public_id` is the {device_id} of
-- /ingest/{kind}/{device_id}. Its secret (the gateway's signing key) is not stored: it is
-- derived from `secret_salt` and the install key (see domain::devices::secret).
CREATE TABLE devices (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    owner_id        INTEGER NOT NULL REFERENCES users(id),
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('capcom6', 'httpsms', 'textbee', 'generic')),
    secret_salt     TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,              -- registration or last authenticated request
    last_message_at INTEGER,
    online          INTEGER NOT NULL DEFAULT 1,    -- cleared by the `devices` job when silent
    revoked_at      INTEGER
);
CREATE INDEX devices_owner ON devices(owner_id);
CREATE INDEX devices_seen ON devices(online, last_seen_at);

-- SMS taken in per device and day, for the health page (messages today).
CREATE TABLE device_days (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    day       INTEGER NOT NULL,                    -- Unix day number (UTC)
    messages  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, day)
);

-- A provider we resell. Its key is kept sealed with the install key (never shown back).
-- Prices upstream are in the provider's currency; `unit_minor` converts one of its units to
-- our minor units, `markup_bp` (basis points) is added on top.
CREATE TABLE providers (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('sms-activate', '5sim')),
    base_url       TEXT NOT NULL,
    key_sealed     TEXT NOT NULL,
    markup_bp      INTEGER NOT NULL DEFAULT 2000 CHECK (markup_bp >= 0),
    priority       INTEGER NOT NULL DEFAULT 0,
    unit_minor     INTEGER NOT NULL DEFAULT 100 CHECK (unit_minor > 0),
    enabled        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    synced_at      INTEGER,
    balance_minor  INTEGER,                        -- last balance seen, converted
    failures       INTEGER NOT NULL DEFAULT 0,     -- consecutive failed calls
    paused_until   INTEGER,                        -- circuit breaker
    last_error     TEXT NOT NULL DEFAULT '',
    last_error_at  INTEGER
);

-- What a provider sells, as of its last sync: cost in our minor units, our price with markup.
CREATE TABLE provider_offers (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    country_id  INTEGER NOT NULL,
    service     TEXT NOT NULL,
    cost_minor  INTEGER NOT NULL,
    price_minor INTEGER NOT NULL,
    stock       INTEGER NOT NULL,
    synced_at   INTEGER NOT NULL,
    PRIMARY KEY (provider_id, country_id, service)
);
CREATE INDEX provider_offers_pair ON provider_offers(country_id, service);

-- Every call made to a provider, for its health page (latency, success rate); pruned.
CREATE TABLE provider_calls (
    id          INTEGER PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    action      TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX provider_calls_provider ON provider_calls(provider_id, at);

-- An activation bought from a provider. `upstream_id` is NULL until the provider answered;
-- `pending` is our final state still to be told upstream ('cancel', 'finish', 'used').
CREATE TABLE upstream_orders (
    activation_id INTEGER PRIMARY KEY REFERENCES activations(id),
    provider_id   INTEGER NOT NULL REFERENCES providers(id),
    upstream_id   TEXT,
    cost_minor    INTEGER NOT NULL,
    state         TEXT NOT NULL DEFAULT 'buying'
                  CHECK (state IN ('buying', 'live', 'closing', 'closed')),
    pending       TEXT NOT NULL DEFAULT '',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_poll_at  INTEGER NOT NULL,
    last_code     TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX upstream_orders_due ON upstream_orders(state, next_poll_at);

-- Numbers now know where they live: the device and SIM slot of an operator's SIM, or the
-- provider of a number bought upstream. `on_sale` = 0 keeps a number out of our own stock:
-- its device is offline, or it is an upstream number (sold only through its provider).
ALTER TABLE numbers ADD COLUMN device_id INTEGER REFERENCES devices(id);
ALTER TABLE numbers ADD COLUMN slot INTEGER;
ALTER TABLE numbers ADD COLUMN provider_id INTEGER REFERENCES providers(id);
ALTER TABLE numbers ADD COLUMN on_sale INTEGER NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX numbers_device_slot ON numbers(device_id, slot)
    WHERE device_id IS NOT NULL AND slot IS NOT NULL;
CREATE INDEX numbers_owner ON numbers(owner_id);

-- An operator asks to be paid out; the admin marks it paid (the ledger row is written then).
CREATE TABLE payouts (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    destination  TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL DEFAULT 'requested'
                 CHECK (state IN ('requested', 'paid', 'rejected', 'withdrawn')),
    created_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   INTEGER REFERENCES users(id),
    note         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX payouts_user ON payouts(user_id, id);
CREATE INDEX payouts_state ON payouts(state, id);

-- An operator's share of an order is credited once, whatever races happen.
CREATE UNIQUE INDEX ledger_one_earning ON ledger(ref_type, ref_id) WHERE kind = 'earning';

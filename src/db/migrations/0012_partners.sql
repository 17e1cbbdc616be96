-- Partner hubs (SMSHub, SMSBower, Grizzly and their clones) that buy our own SIMs' numbers
-- through the agent protocol (protocols.md §3): the hub calls POST /partner/{id}, we push
-- every SMS of a number it holds to `push_url`.
CREATE TABLE partners (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    push_url        TEXT NOT NULL,
    key_sealed      TEXT NOT NULL,
    currency        INTEGER NOT NULL CHECK (currency IN (643, 840)),  -- ISO 4217 numeric
    rate_micro      INTEGER NOT NULL CHECK (rate_micro > 0),          -- our minor units per unit of it, x10000
    floor_micro     INTEGER NOT NULL DEFAULT 0 CHECK (floor_micro >= 0), -- lowest `sum`, 1/10000 units
    account_id      INTEGER NOT NULL REFERENCES users(id),            -- its sales are charged here
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    last_call_at    INTEGER,
    push_failures   INTEGER NOT NULL DEFAULT 0,                       -- failed pushes in a row
    last_push_error TEXT NOT NULL DEFAULT '',
    last_push_error_at INTEGER
);

-- The hub's names for our catalogue: a country by name ("russia"), a service by short code,
-- an operator by name. Without rows of a kind, our own names are used (countries: the
-- 5sim name; services: the short code; operators: the number's operator in lower case).
CREATE TABLE partner_names (
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('country', 'service', 'operator')),
    theirs     TEXT NOT NULL,
    ours       TEXT NOT NULL,
    PRIMARY KEY (partner_id, kind, theirs)
);
CREATE UNIQUE INDEX partner_names_ours ON partner_names(partner_id, kind, ours);

-- How GET_SERVICES reports a country to a partner (by operator, or all as `any`): chosen at
-- the first report and then kept, as the hubs demand.
CREATE TABLE partner_countries (
    partner_id  INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    country_id  INTEGER NOT NULL,
    by_operator INTEGER NOT NULL,
    PRIMARY KEY (partner_id, country_id)
);

-- A number handed to a hub (GET_NUMBER). Its id is the `activationId` the hub sees.
CREATE TABLE partner_orders (
    id           INTEGER PRIMARY KEY,
    partner_id   INTEGER NOT NULL REFERENCES partners(id),
    number_id    INTEGER NOT NULL REFERENCES numbers(id),
    phone        TEXT NOT NULL,
    country_id   INTEGER NOT NULL,
    operator     TEXT NOT NULL,
    service      TEXT NOT NULL,
    sum_micro    INTEGER NOT NULL,          -- what the hub pays, 1/10000 of its currency
    price_minor  INTEGER NOT NULL,          -- the same in our minor units
    state        TEXT NOT NULL DEFAULT 'live'
                 CHECK (state IN ('live', 'used', 'sold', 'canceled', 'refunded')),
    held         INTEGER NOT NULL DEFAULT 1, -- the number is busy for it
    usage_before INTEGER,                   -- number_usage.last_used_at before it (a cancel restores it)
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    late_status  INTEGER                    -- a later FINISH with another status (answered, ignored)
);
CREATE INDEX partner_orders_held ON partner_orders(number_id) WHERE held = 1;
CREATE INDEX partner_orders_hold_age ON partner_orders(created_at) WHERE held = 1;
CREATE INDEX partner_orders_partner ON partner_orders(partner_id, id);

-- How often each hub cancelled each number for each service: at MAX_OFFERS the number is no
-- longer offered to that hub for that service.
CREATE TABLE partner_offers (
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    number_id  INTEGER NOT NULL REFERENCES numbers(id),
    service    TEXT NOT NULL,
    canceled   INTEGER NOT NULL,
    PRIMARY KEY (partner_id, number_id, service)
) WITHOUT ROWID;
CREATE INDEX partner_offers_retired ON partner_offers(partner_id) WHERE canceled >= 4;

-- PUSH_SMS to the hub: every SMS reaching a number it holds, retried until it answers
-- SUCCESS. The id is the `smsId`. The text is cleared once delivered or given up.
CREATE TABLE partner_pushes (
    id           INTEGER PRIMARY KEY,
    partner_id   INTEGER NOT NULL REFERENCES partners(id),
    order_id     INTEGER NOT NULL REFERENCES partner_orders(id),
    phone        TEXT NOT NULL,
    sender       TEXT NOT NULL,
    text         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX partner_pushes_due ON partner_pushes(next_at) WHERE state = 'pending';
CREATE INDEX partner_pushes_partner ON partner_pushes(partner_id, id);
CREATE INDEX partner_pushes_age ON partner_pushes(created_at);

-- Own SIM numbers free for a hub, least recently used first (only real SIMs are sold to hubs:
-- never the simulator's numbers nor numbers bought upstream).
CREATE INDEX numbers_partner_pick ON numbers(country_id, last_used_at)
    WHERE state = 'free' AND source IN ('sim', 'manual');
-- The usable numbers that are not real SIMs (the simulator's pool): GET_SERVICES takes them
-- out of the stock counters.
CREATE INDEX numbers_not_sim ON numbers(country_id, operator)
    WHERE state = 'free' AND on_sale = 1 AND source NOT IN ('sim', 'manual');

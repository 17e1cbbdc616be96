-- Order statistics (domain::supply::stats): daily rollups kept by the `stats` job from
-- orders as they end and ledger rows as they are written, never from a walk of history.

-- Orders that ended, per day (UTC, of the end), kind, country, service and source
-- (`sim`, `manual`, `simulator` or `upstream:NAME`). `coded`: got at least one code.
CREATE TABLE order_stats (
    day        INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('activation', 'rental')),
    country_id INTEGER NOT NULL,
    service    TEXT NOT NULL,
    source     TEXT NOT NULL,
    orders     INTEGER NOT NULL DEFAULT 0,
    coded      INTEGER NOT NULL DEFAULT 0,
    completed  INTEGER NOT NULL DEFAULT 0,
    canceled   INTEGER NOT NULL DEFAULT 0,
    expired    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind, country_id, service, source)
) WITHOUT ROWID;

-- Money moved, per day (UTC, of the ledger row), ledger kind and what it is about (an
-- adjustment of an order is revenue given back, of a payment a top-up taken back).
CREATE TABLE money_stats (
    day          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    ref_type     TEXT NOT NULL,
    amount_minor INTEGER NOT NULL DEFAULT 0,
    rows         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind, ref_type)
) WITHOUT ROWID;

-- The success rate of the last 7 days per country, service and source ('' = all sources),
-- refreshed from order_stats by every run of the job: what customers see before buying.
CREATE TABLE success_rates (
    country_id INTEGER NOT NULL,
    service    TEXT NOT NULL,
    source     TEXT NOT NULL,
    orders     INTEGER NOT NULL,
    coded      INTEGER NOT NULL,
    PRIMARY KEY (country_id, service, source)
) WITHOUT ROWID;

-- How far each sweep got: ended activations and rentals by (ended_at, id), ledger by id.
CREATE TABLE stats_marks (
    name TEXT PRIMARY KEY,
    at   INTEGER NOT NULL,
    id   INTEGER NOT NULL
);

-- The ledger retention's mark: the newest ledger id older than its last cutoff, so each run
-- reads an account's old rows through ledger_user (domain::trust::retention).
ALTER TABLE retention_runs ADD COLUMN swept_id INTEGER;
-- Accounts with old ledger rows kept for a recent row of their group: looked at on every run.
CREATE TABLE ledger_kept (user_id INTEGER PRIMARY KEY);

-- Order picking walks numbers_pick, now (country, state, on sale, last used), so the numbers
-- bought upstream (never on sale) are not walked; the partial index of free numbers on sale
-- it replaces cost every order two more index writes (domain::query_plans).
DROP INDEX numbers_free;
DROP INDEX numbers_pick;
CREATE INDEX numbers_pick ON numbers(country_id, state, on_sale, last_used_at);

-- Where the Telegram bot's webhook is registered, with a fingerprint of its secret token
-- ('' = updates are polled with getUpdates).
ALTER TABLE telegram_offset ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';

-- E-mail notifications that carry a code or an SMS text (sent only through SMTP): the same
-- news without it, which is all the admin's outbox shows and all that is kept once the mail
-- is sent or private_until (the SMS retention) has passed.
ALTER TABLE notifications ADD COLUMN public_body TEXT;
ALTER TABLE outbox ADD COLUMN public_body TEXT;
ALTER TABLE outbox ADD COLUMN private_until INTEGER;
CREATE INDEX outbox_private ON outbox(private_until) WHERE private_until IS NOT NULL;

-- Request paths that stay as fast with millions of past orders as with none.

-- An account's live orders (the live-order limit, the dashboard, getActiveActivations),
-- without reading its past ones. Queries name the statuses exactly as here
-- (`activations::LIVE`), which is what lets SQLite use a partial index.
CREATE INDEX activations_live_user ON activations(user_id, id)
    WHERE status IN ('waiting','received','retry');
CREATE INDEX rentals_live_user ON rentals(user_id, id) WHERE status = 'active';

-- Picking a number: the free numbers on sale of a country, least recently used first.
CREATE INDEX numbers_free ON numbers(country_id, last_used_at, id)
    WHERE state = 'free' AND on_sale = 1;

-- The simulator's pool of each country (it recycles its least recently used number).
CREATE INDEX numbers_source ON numbers(source, country_id, state, last_used_at);

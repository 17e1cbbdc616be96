-- Version 5: retention bookkeeping. What each retention rule did last, and the totals of
-- anonymised orders and rentals (kept for accounting once the rows themselves are gone).

CREATE TABLE retention_runs (
    rule          TEXT PRIMARY KEY,
    last_run_at   INTEGER NOT NULL,
    last_removed  INTEGER NOT NULL,
    total_removed INTEGER NOT NULL DEFAULT 0
);

-- Anonymised orders summed per month of creation, kind, country, service, source and final
-- status: no number, no account.
CREATE TABLE order_totals (
    month          TEXT NOT NULL,                  -- YYYY-MM (UTC) of creation
    kind           TEXT NOT NULL CHECK (kind IN ('activation', 'rental')),
    country_id     INTEGER NOT NULL,
    service        TEXT NOT NULL,
    source         TEXT NOT NULL,
    status         TEXT NOT NULL,
    orders         INTEGER NOT NULL,
    charged_minor  INTEGER NOT NULL,
    refunded_minor INTEGER NOT NULL,
    PRIMARY KEY (month, kind, country_id, service, source, status)
);

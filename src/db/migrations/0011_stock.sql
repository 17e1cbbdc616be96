-- Stock counts kept as counters, so the catalogue reads them instead of walking the free
-- numbers (issue 12). Triggers keep them in the transaction of every change to a number or
-- its usage, whoever makes it; ARCHITECTURE.md "stock counters" states the invariant and
-- `catalogue::recount` checks it.
--
-- A number is usable when it is free and on sale. Its stock for a service is withheld while
-- the service is blocked on it or it served the service within the reuse cooldown. That
-- second rule depends on the time, so the counter of withheld numbers counts usage newer
-- than a mark (`stock_mark.held_after`) instead of "within the cooldown": the expiry job
-- moves the mark up to the cooldown's cutoff every few seconds, and a reader corrects the
-- counter by the few usage rows between the mark and its own cutoff
-- (`number_usage_used`).

-- Usable numbers per country and operator.
CREATE TABLE stock_free (
    country_id INTEGER NOT NULL,
    operator   TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (country_id, operator)
) WITHOUT ROWID;

-- Usable numbers per country, operator and service whose usage for that service is blocked
-- or newer than the mark.
CREATE TABLE stock_held (
    country_id INTEGER NOT NULL,
    operator   TEXT NOT NULL,
    service    TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (country_id, operator, service)
) WITHOUT ROWID;

CREATE TABLE stock_mark (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    held_after INTEGER NOT NULL
);
-- The mark starts at the migration's time: the expiry job's first move brings it back to the
-- cooldown's cutoff, reading only the usage within the cooldown.
INSERT INTO stock_mark (id, held_after) VALUES (1, CAST(strftime('%s', 'now') AS INTEGER));

CREATE INDEX number_usage_used ON number_usage(last_used_at);

INSERT INTO stock_free (country_id, operator, n)
    SELECT country_id, operator, COUNT(*) FROM numbers
    WHERE state = 'free' AND on_sale = 1 GROUP BY country_id, operator;
INSERT INTO stock_held (country_id, operator, service, n)
    SELECT n.country_id, n.operator, u.service, COUNT(*) FROM number_usage u
    JOIN numbers n ON n.id = u.number_id
    WHERE n.state = 'free' AND n.on_sale = 1
      AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark))
    GROUP BY n.country_id, n.operator, u.service;

-- A number enters or leaves the stock.
CREATE TRIGGER stock_number_in AFTER INSERT ON numbers
WHEN NEW.state = 'free' AND NEW.on_sale = 1
BEGIN
    INSERT INTO stock_free (country_id, operator, n) VALUES (NEW.country_id, NEW.operator, 1)
        ON CONFLICT (country_id, operator) DO UPDATE SET n = n + 1;
    INSERT INTO stock_held (country_id, operator, service, n)
        SELECT NEW.country_id, NEW.operator, u.service, 1 FROM number_usage u
        WHERE u.number_id = NEW.id
          AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark))
        ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER stock_number_out AFTER DELETE ON numbers
WHEN OLD.state = 'free' AND OLD.on_sale = 1
BEGIN
    UPDATE stock_free SET n = n - 1
        WHERE country_id = OLD.country_id AND operator = OLD.operator;
    UPDATE stock_held SET n = n - 1
        WHERE country_id = OLD.country_id AND operator = OLD.operator
          AND service IN (SELECT u.service FROM number_usage u WHERE u.number_id = OLD.id
              AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark)));
END;

CREATE TRIGGER stock_number_leaves AFTER UPDATE OF state, on_sale, country_id, operator ON numbers
WHEN OLD.state = 'free' AND OLD.on_sale = 1
     AND NOT (NEW.state = 'free' AND NEW.on_sale = 1
              AND NEW.country_id = OLD.country_id AND NEW.operator = OLD.operator)
BEGIN
    UPDATE stock_free SET n = n - 1
        WHERE country_id = OLD.country_id AND operator = OLD.operator;
    UPDATE stock_held SET n = n - 1
        WHERE country_id = OLD.country_id AND operator = OLD.operator
          AND service IN (SELECT u.service FROM number_usage u WHERE u.number_id = OLD.id
              AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark)));
END;

CREATE TRIGGER stock_number_enters AFTER UPDATE OF state, on_sale, country_id, operator ON numbers
WHEN NEW.state = 'free' AND NEW.on_sale = 1
     AND NOT (OLD.state = 'free' AND OLD.on_sale = 1
              AND NEW.country_id = OLD.country_id AND NEW.operator = OLD.operator)
BEGIN
    INSERT INTO stock_free (country_id, operator, n) VALUES (NEW.country_id, NEW.operator, 1)
        ON CONFLICT (country_id, operator) DO UPDATE SET n = n + 1;
    INSERT INTO stock_held (country_id, operator, service, n)
        SELECT NEW.country_id, NEW.operator, u.service, 1 FROM number_usage u
        WHERE u.number_id = NEW.id
          AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark))
        ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n + 1;
END;

-- A usable number's usage for a service starts or stops withholding it.
CREATE TRIGGER stock_usage_in AFTER INSERT ON number_usage
WHEN (NEW.blocked = 1 OR NEW.last_used_at > (SELECT held_after FROM stock_mark))
     AND EXISTS (SELECT 1 FROM numbers WHERE id = NEW.number_id AND state = 'free' AND on_sale = 1)
BEGIN
    INSERT INTO stock_held (country_id, operator, service, n)
        SELECT country_id, operator, NEW.service, 1 FROM numbers WHERE id = NEW.number_id
        ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER stock_usage_out AFTER DELETE ON number_usage
WHEN (OLD.blocked = 1 OR OLD.last_used_at > (SELECT held_after FROM stock_mark))
     AND EXISTS (SELECT 1 FROM numbers WHERE id = OLD.number_id AND state = 'free' AND on_sale = 1)
BEGIN
    UPDATE stock_held SET n = n - 1
        WHERE (country_id, operator) = (SELECT country_id, operator FROM numbers WHERE id = OLD.number_id)
          AND service = OLD.service;
END;

CREATE TRIGGER stock_usage_changes AFTER UPDATE OF number_id, service, last_used_at, blocked ON number_usage
BEGIN
    UPDATE stock_held SET n = n - 1
        WHERE (OLD.blocked = 1 OR OLD.last_used_at > (SELECT held_after FROM stock_mark))
          AND (country_id, operator) = (SELECT country_id, operator FROM numbers
                                        WHERE id = OLD.number_id AND state = 'free' AND on_sale = 1)
          AND service = OLD.service;
    INSERT INTO stock_held (country_id, operator, service, n)
        SELECT country_id, operator, NEW.service, 1 FROM numbers
        WHERE id = NEW.number_id AND state = 'free' AND on_sale = 1
          AND (NEW.blocked = 1 OR NEW.last_used_at > (SELECT held_after FROM stock_mark))
        ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n + 1;
END;

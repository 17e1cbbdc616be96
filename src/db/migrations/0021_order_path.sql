-- Orders pick from the operator's own numbers through an index that holds only the numbers
-- that can be handed out (free, on sale, not the simulator's), least recently used first.
-- An order no longer walks the simulator's pool when every number of it is in a service's
-- cooldown (the simulator picks from its pool separately, a few numbers at most), and
-- handing out or freeing a simulator number no longer writes this index.
CREATE INDEX numbers_own_pick ON numbers(country_id, last_used_at)
    WHERE state = 'free' AND on_sale = 1 AND source <> 'simulator';
DROP INDEX numbers_pick;

-- A number leaving the stock takes its withheld services out of their counters by walking
-- its usage (an upsert from it, like the triggers that put them in) rather than through
-- `service IN (SELECT …)`, which built a temporary B-tree each time an order took a number.
-- The counters' rows exist while they count the number, so the upsert only ever updates.
DROP TRIGGER stock_number_out;
CREATE TRIGGER stock_number_out AFTER DELETE ON numbers
WHEN OLD.state = 'free' AND OLD.on_sale = 1
BEGIN
    UPDATE stock_free SET n = n - 1
        WHERE country_id = OLD.country_id AND operator = OLD.operator;
    INSERT INTO stock_held (country_id, operator, service, n)
        SELECT OLD.country_id, OLD.operator, u.service, -1 FROM number_usage u
        WHERE u.number_id = OLD.id
          AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark))
        ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n - 1;
END;

DROP TRIGGER stock_number_leaves;
CREATE TRIGGER stock_number_leaves AFTER UPDATE OF state, on_sale, country_id, operator ON numbers
WHEN OLD.state = 'free' AND OLD.on_sale = 1
     AND NOT (NEW.state = 'free' AND NEW.on_sale = 1
              AND NEW.country_id = OLD.country_id AND NEW.operator = OLD.operator)
BEGIN
    UPDATE stock_free SET n = n - 1
        WHERE country_id = OLD.country_id AND operator = OLD.operator;
    INSERT INTO stock_held (country_id, operator, service, n)
        SELECT OLD.country_id, OLD.operator, u.service, -1 FROM number_usage u
        WHERE u.number_id = OLD.id
          AND (u.blocked = 1 OR u.last_used_at > (SELECT held_after FROM stock_mark))
        ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n - 1;
END;

-- Hub orders and offers by number, for the foreign-key checks of a number added (the
-- simulator makes some) or deleted, which otherwise read both tables whole.
CREATE INDEX partner_orders_number ON partner_orders(number_id);
CREATE INDEX partner_offers_number ON partner_offers(number_id);

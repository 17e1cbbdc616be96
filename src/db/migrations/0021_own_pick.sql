-- Orders pick from the operator's own numbers through an index that holds only the numbers
-- that can be handed out (free, on sale, not the simulator's), least recently used first.
-- An order no longer walks the simulator's pool when every number of it is in a service's
-- cooldown (the simulator picks from its pool separately, a few numbers at most), and
-- handing out or freeing a simulator number no longer writes this index.
CREATE INDEX numbers_own_pick ON numbers(country_id, last_used_at)
    WHERE state = 'free' AND on_sale = 1 AND source <> 'simulator';
DROP INDEX numbers_pick;

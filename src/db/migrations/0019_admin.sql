-- The admin's catalogue: countries, services and operators are retired, never deleted, so
-- the orders that used them keep their names. A retired entry is off sale for good (its
-- `enabled` switch stays off); its id or code is never given to another entry.
ALTER TABLE countries ADD COLUMN retired_at INTEGER;
ALTER TABLE services ADD COLUMN retired_at INTEGER;
ALTER TABLE operators ADD COLUMN retired_at INTEGER;

-- Customers' price caps per service (5sim's /user/max-prices), applied to their purchases.
CREATE TABLE price_caps (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    service     TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, service)
);

-- The last order on a number (5sim's reuse: the same customer buys the number again).
CREATE INDEX activations_number_last ON activations(number_id, id);

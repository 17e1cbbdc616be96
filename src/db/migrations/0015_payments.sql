-- Version 15: money in through payment gateways (Stripe Checkout, BTCPay Server).
--
-- One row per top-up. It is written `creating` before the gateway is called, becomes
-- `pending` once the gateway gave its checkout (gateway_ref and checkout_url), `paid` when
-- the gateway's signed notice confirms the money (credited_minor is what the gateway
-- confirmed, and the `topup` ledger row is written in that same transaction), `expired` or
-- `failed` when it closes without money, and `refunded` / `disputed` when the money went back.
-- Nothing about the card or the wallet address is stored: only the gateway's own ids.
CREATE TABLE payments (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    gateway        TEXT NOT NULL,                 -- 'stripe', 'btcpay' (a module of src/payments)
    gateway_ref    TEXT,                          -- checkout session / invoice id; NULL until known
    -- Stripe's payment intent (refunds and disputes name it); NULL for gateways without one.
    gateway_charge TEXT,
    status         TEXT NOT NULL CHECK (status IN ('creating', 'pending', 'paid', 'expired',
                                                   'failed', 'refunded', 'disputed')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),   -- asked for
    credited_minor INTEGER NOT NULL DEFAULT 0,                  -- confirmed by the gateway
    reversed_minor INTEGER NOT NULL DEFAULT 0,                  -- taken back (refund, dispute)
    currency       TEXT NOT NULL,
    checkout_url   TEXT NOT NULL DEFAULT '',
    -- What the gateway said last (its status word or the error of the checkout call).
    gateway_status TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    paid_at        INTEGER
);
-- One row per gateway payment: the webhook finds its row by it, and a second row (so a
-- second credit) for the same checkout cannot exist.
CREATE UNIQUE INDEX payments_gateway_ref ON payments(gateway, gateway_ref)
    WHERE gateway_ref IS NOT NULL;
CREATE UNIQUE INDEX payments_gateway_charge ON payments(gateway, gateway_charge)
    WHERE gateway_charge IS NOT NULL;
CREATE INDEX payments_user ON payments(user_id, id);
-- The reconciliation job (open rows by their last look) and retention (closed rows by their
-- last change).
CREATE INDEX payments_open ON payments(status, updated_at) WHERE status IN ('creating', 'pending');
CREATE INDEX payments_updated ON payments(updated_at);
-- A payment is credited at most once, whatever races or replays happen.
CREATE UNIQUE INDEX ledger_one_topup ON ledger(ref_type, ref_id) WHERE kind = 'topup';

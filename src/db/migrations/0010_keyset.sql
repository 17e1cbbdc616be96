-- Lists paged by keyset, totals kept as counters, and jobs that touch only what is due: no
-- list, page or job costs more as history grows (issue 12, after migration 9).

-- The admin's audit log newest first, on one account or of one action, and the account's
-- own security log newest first (security_events_user serves the login throttle).
DROP INDEX audit_log_target;
CREATE INDEX audit_log_target ON audit_log(target_id, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
CREATE INDEX security_events_user_id ON security_events(user_id, id);

-- An account's orders of one status newest first: the live ones (the live-order limit, the
-- dashboard, getActiveActivations) and the native API's status filter, one status per range.
-- Replaces migration 9's partial index of live orders, which it covers.
DROP INDEX activations_live_user;
CREATE INDEX activations_user_status ON activations(user_id, status, id);

-- getHistory's time range.
CREATE INDEX activations_user_created ON activations(user_id, created_at);
-- Orders by when they were placed: the anomaly signals' window and the retention job's
-- oldest orders.
CREATE INDEX activations_created ON activations(created_at);
CREATE INDEX rentals_created ON rentals(created_at);

-- sms_retention: the orders that ended within the last sweep's window.
CREATE INDEX activations_ended ON activations(ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX rentals_ended ON rentals(ended_at) WHERE ended_at IS NOT NULL;
-- The daily retention job: old ledger rows by time, and an old order's ledger rows and
-- webhook deliveries by their reference (it unlinks or deletes them one order at a time).
CREATE INDEX ledger_created ON ledger(created_at);
CREATE INDEX ledger_ref ON ledger(ref_type, ref_id) WHERE ref_id IS NOT NULL;
CREATE INDEX webhook_deliveries_ref ON webhook_deliveries(ref_type, ref_id) WHERE ref_id IS NOT NULL;
-- How far a rule has swept (the cutoff of its last run), so the next run starts there.
ALTER TABLE retention_runs ADD COLUMN swept_to INTEGER;

-- The operator who owned the number when the order was placed (numbers never change
-- owner): the operator's sales page reads its own orders through one index.
ALTER TABLE activations ADD COLUMN owner_id INTEGER;
ALTER TABLE rentals ADD COLUMN owner_id INTEGER;
UPDATE activations SET owner_id = (SELECT n.owner_id FROM numbers n WHERE n.id = activations.number_id)
    WHERE number_id IN (SELECT id FROM numbers WHERE owner_id IS NOT NULL);
UPDATE rentals SET owner_id = (SELECT n.owner_id FROM numbers n WHERE n.id = rentals.number_id)
    WHERE number_id IN (SELECT id FROM numbers WHERE owner_id IS NOT NULL);
CREATE INDEX activations_owner ON activations(owner_id, created_at) WHERE owner_id IS NOT NULL;
CREATE INDEX rentals_owner ON rentals(owner_id, created_at) WHERE owner_id IS NOT NULL;

-- An operator's earnings page newest first, and what it earned this month.
CREATE INDEX ledger_operator ON ledger(user_id, id) WHERE kind IN ('earning', 'payout');
CREATE INDEX ledger_earned_at ON ledger(user_id, created_at) WHERE kind = 'earning';
-- Everything an account ever earned and was paid out, kept by the wallet with each earning
-- and payout row (they survive the ledger's retention, which folds old rows).
ALTER TABLE users ADD COLUMN earned_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN paid_out_minor INTEGER NOT NULL DEFAULT 0;
UPDATE users SET
    earned_minor = (SELECT COALESCE(SUM(amount_minor), 0) FROM ledger
                    WHERE user_id = users.id AND kind = 'earning'),
    paid_out_minor = (SELECT COALESCE(-SUM(amount_minor), 0) FROM ledger
                      WHERE user_id = users.id AND kind = 'payout')
    WHERE id IN (SELECT user_id FROM ledger WHERE kind IN ('earning', 'payout'));

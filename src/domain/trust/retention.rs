//! Retention: deleting what the privacy page promises to delete, when it promises. Each rule
//! has a period (a setting), is enforced by a scheduled job, and records its last run and how
//! many rows it removed in `retention_runs` (shown on the admin's retention page).
//!
//! - `sms`: SMS texts and codes, a few minutes after their order ended.
//! - `orders`: orders and rentals older than the period are anonymised: their totals go to
//!   `order_totals` (month, country, service, source, status), the rows are deleted, and the
//!   ledger rows that pointed at them lose the reference and the service note.
//! - `ledger`: ledger rows (and payouts, redeemed or expired vouchers, closed top-ups) older
//!   than the period are deleted; each account keeps one carried-over row with their sum, so
//!   its balance still equals its ledger.
//! - `logs`: operational logs in the database (job runs, provider calls, sent mail, device
//!   message counters).
//! - `security`: the security log and the audit log.
//! - `accounts`: deleted accounts are purged once `deletion_cooldown` has passed (the work is
//!   `lifecycle::purge_deleted`; the `accounts` job records it here).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::market::payments;
use crate::domain::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    Sms,
    Orders,
    Ledger,
    Logs,
    Security,
    Accounts,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::Sms,
        Rule::Orders,
        Rule::Ledger,
        Rule::Logs,
        Rule::Security,
        Rule::Accounts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Sms => "sms",
            Rule::Orders => "orders",
            Rule::Ledger => "ledger",
            Rule::Logs => "logs",
            Rule::Security => "security",
            Rule::Accounts => "accounts",
        }
    }

    /// What the rule removes, as the privacy page and the admin page say it.
    pub fn what(self) -> &'static str {
        match self {
            Rule::Sms => "Texts and codes of the SMS your numbers receive, after the order ends",
            Rule::Orders => {
                "Your orders and rentals (number, service, times): then anonymised, with no \
                 number and no link to your account; only totals are kept for accounting"
            }
            Rule::Ledger => "Ledger and payment records (top-ups, charges, refunds, payouts)",
            Rule::Logs => {
                "Operational logs (scheduled job runs, calls to upstream providers, e-mail sent)"
            }
            Rule::Security => {
                "Security logs: logins, failed logins, API key and second-factor changes, \
                 administrators' actions on accounts"
            }
            Rule::Accounts => {
                "A deleted account's e-mail address, password hash, name and sign-in secrets, \
                 after its deletion (until then the address cannot sign up again; the account \
                 itself is closed at once)"
            }
        }
    }

    /// The setting that holds the rule's period.
    pub fn setting(self) -> &'static str {
        match self {
            Rule::Sms => "sms_retention",
            Rule::Orders => "order_retention",
            Rule::Ledger => "ledger_retention",
            Rule::Logs => "log_retention",
            Rule::Security => "security_log_retention",
            Rule::Accounts => "deletion_cooldown",
        }
    }
}

/// How far before the last sweep's cutoff a sweep starts again: an order whose end was
/// committed late (its transaction waited for the write lock) still falls in a window.
const SWEEP_OVERLAP: i64 = 60;

/// Deletes the SMS of activations and rentals that ended more than `retention` seconds
/// ago. Returns how many messages were deleted. Each run reads only the orders that ended
/// since the previous run's cutoff (`retention_runs.swept_to`, through the `*_ended`
/// indexes), not every order that ever ended.
pub fn purge_messages(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    let swept_to: Option<i64> = conn
        .prepare_cached("SELECT swept_to FROM retention_runs WHERE rule = ?1")?
        .query_row([Rule::Sms.as_str()], |r| r.get(0))
        .optional()?
        .flatten();
    let from = swept_to.map_or(i64::MIN, |s| s - SWEEP_OVERLAP);
    let a = conn
        .prepare_cached(
            "DELETE FROM messages WHERE activation_id IN \
             (SELECT id FROM activations WHERE ended_at > ?1 AND ended_at <= ?2)",
        )?
        .execute(params![from, cutoff])?;
    let r = conn
        .prepare_cached(
            "DELETE FROM messages WHERE rental_id IN \
             (SELECT id FROM rentals WHERE ended_at > ?1 AND ended_at <= ?2)",
        )?
        .execute(params![from, cutoff])?;
    // A clock moved back (or a longer retention) never moves the mark back: what was swept
    // stays swept.
    conn.prepare_cached(
        "INSERT INTO retention_runs (rule, last_run_at, last_removed, swept_to) \
         VALUES (?1, ?2, 0, ?3) ON CONFLICT (rule) DO UPDATE SET \
         swept_to = MAX(COALESCE(swept_to, excluded.swept_to), excluded.swept_to)",
    )?
    .execute(params![Rule::Sms.as_str(), now, cutoff])?;
    // De-duplication memory is only needed while a gateway may redeliver.
    conn.execute(
        "DELETE FROM inbound_seen WHERE seen_at <= ?1",
        params![now - 7 * 86_400],
    )?;
    Ok(a + r)
}

/// Rows anonymised per call; the job calls again while a batch comes back full.
pub const BATCH: usize = 500;

fn month_of(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m").to_string())
        .unwrap_or_else(|| "0000-00".into())
}

fn refunded(conn: &Connection, ref_type: &str, id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger WHERE ref_type = ?1 AND ref_id = ?2 \
             AND kind = 'refund'",
        )?
        .query_row(params![ref_type, id], |r| r.get(0))?)
}

/// An ended order as the monthly totals count it.
struct EndedOrder {
    id: i64,
    created_at: Timestamp,
    country: i64,
    service: String,
    source: String,
    status: String,
    /// What the customer was charged (an activation's price, a rental's paid amount).
    charged: i64,
}

/// The ended orders `select` lists (columns: id, created_at, country, service, source, status,
/// charged; parameters: the cutoff and the limit).
fn ended_orders(
    conn: &Connection,
    select: &str,
    cutoff: Timestamp,
    limit: usize,
    ended_before: Timestamp,
) -> Result<Vec<EndedOrder>> {
    let mut stmt = conn.prepare_cached(select)?;
    let rows = stmt.query_map(params![cutoff, limit as i64, ended_before], |r| {
        Ok(EndedOrder {
            id: r.get(0)?,
            created_at: r.get(1)?,
            country: r.get(2)?,
            service: r.get(3)?,
            source: r.get(4)?,
            status: r.get(5)?,
            charged: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts an ended order of `kind` (`activation` or `rental`, also its ledger `ref_type`) in
/// the monthly totals, unlinks its ledger rows and runs `deletes` (each takes the order id).
fn anonymise(conn: &Connection, kind: &str, o: &EndedOrder, deletes: &[&str]) -> Result<()> {
    let refunded = refunded(conn, kind, o.id)?;
    conn.prepare_cached(
        "INSERT INTO order_totals (month, kind, country_id, service, source, status, orders, \
         charged_minor, refunded_minor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8) \
         ON CONFLICT (month, kind, country_id, service, source, status) DO UPDATE SET \
         orders = orders + 1, charged_minor = charged_minor + excluded.charged_minor, \
         refunded_minor = refunded_minor + excluded.refunded_minor",
    )?
    .execute(params![
        month_of(o.created_at),
        kind,
        o.country,
        o.service,
        o.source,
        o.status,
        o.charged,
        refunded
    ])?;
    unlink_ledger(conn, kind, o.id)?;
    for sql in deletes {
        conn.prepare_cached(sql)?.execute([o.id])?;
    }
    Ok(())
}

/// The ledger keeps the amounts but no longer says which order (or service) they were for.
fn unlink_ledger(conn: &Connection, ref_type: &str, id: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE ledger SET ref_id = NULL, note = '' WHERE ref_type = ?1 AND ref_id = ?2",
    )?
    .execute(params![ref_type, id])?;
    Ok(())
}

/// How long after its end an order is left to the order statistics before anonymisation may
/// take it (the `stats` job folds ended orders every minute, two minutes behind the clock).
const STATS_GRACE: i64 = 86_400;

/// Anonymises up to [`BATCH`] ended activations and rentals created more than `retention`
/// seconds ago (and ended a day ago at least). Returns how many orders were anonymised.
pub fn anonymise_orders(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    let ended_before = now - STATS_GRACE;
    let activations = ended_orders(
        conn,
        "SELECT id, created_at, country_id, service, source, status, price_minor \
         FROM activations WHERE created_at < ?1 AND ended_at < ?3 \
         ORDER BY created_at LIMIT ?2",
        cutoff,
        BATCH,
        ended_before,
    )?;
    for o in &activations {
        anonymise(
            conn,
            "activation",
            o,
            &[
                "DELETE FROM messages WHERE activation_id = ?1",
                "DELETE FROM sim_outbox WHERE activation_id = ?1",
                "DELETE FROM upstream_orders WHERE activation_id = ?1",
                "DELETE FROM webhook_deliveries WHERE ref_type = 'activation' AND ref_id = ?1",
                "DELETE FROM activations WHERE id = ?1",
            ],
        )?;
    }
    let rentals = ended_orders(
        conn,
        "SELECT r.id, r.created_at, r.country_id, r.service, COALESCE(n.source, ''), r.status, \
         r.paid_minor FROM rentals r LEFT JOIN numbers n ON n.id = r.number_id \
         WHERE r.created_at < ?1 AND r.ended_at < ?3 ORDER BY r.created_at LIMIT ?2",
        cutoff,
        BATCH - activations.len(),
        ended_before,
    )?;
    for o in &rentals {
        anonymise(
            conn,
            "rental",
            o,
            &[
                "DELETE FROM messages WHERE rental_id = ?1",
                "DELETE FROM sim_outbox WHERE rental_id = ?1",
                "DELETE FROM webhook_deliveries WHERE ref_type = 'rental' AND ref_id = ?1",
                "DELETE FROM rentals WHERE id = ?1",
            ],
        )?;
    }
    Ok(activations.len() + rentals.len())
}

/// The note of the row that replaces an account's deleted old ledger rows.
pub const CARRIED_NOTE: &str = "carried over: older ledger rows deleted";

/// Deletes ledger rows older than `retention` seconds (a group of rows about one order is
/// deleted only when all of it is old), replacing each account's deleted rows by one row with
/// their sum, in their place (the id and time of the newest deleted row). Also deletes decided
/// payouts, redeemed or expired vouchers and closed top-ups (`payments`) that old. Returns the
/// rows deleted.
///
/// Each run looks only at the accounts with a row that became old since the previous run's
/// cutoff (`retention_runs.swept_to`, through `ledger_created`), or that share an order with
/// such a row (a row kept because its order had a recent row); per account it reads only its
/// rows up to the newest old id (`swept_id`, through `ledger_user`; ids grow with time, and a
/// carried row keeps the id of a row it replaced): after a run, the carried row and the rows
/// kept for a recent row of their order.
pub fn purge_ledger(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    let (swept_to, swept_id): (Option<i64>, Option<i64>) = conn
        .prepare_cached("SELECT swept_to, swept_id FROM retention_runs WHERE rule = ?1")?
        .query_row([Rule::Ledger.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, None));
    let from = swept_to.map_or(i64::MIN, |s| s - SWEEP_OVERLAP);
    // The newest id older than the cutoff: the previous run's, or one that became old since.
    let newest_old: i64 = conn
        .prepare_cached("SELECT MAX(id) FROM ledger WHERE created_at >= ?1 AND created_at < ?2")?
        .query_row([from, cutoff], |r| r.get::<_, Option<i64>>(0))?
        .max(swept_id)
        .unwrap_or(0);
    let users: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT user_id FROM ledger WHERE created_at >= ?1 AND created_at < ?2 \
             UNION SELECT m.user_id FROM ledger l JOIN ledger m \
             ON m.ref_type = l.ref_type AND m.ref_id = l.ref_id \
             WHERE l.created_at >= ?1 AND l.created_at < ?2 AND l.ref_id IS NOT NULL \
             AND l.ref_type <> 'admin' \
             UNION SELECT user_id FROM ledger_kept",
        )?;
        let rows = stmt.query_map([from, cutoff], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // A group is the rows about one order, payment or voucher; an administrator's
    // adjustments name the administrator (`admin`, their id), which groups nothing.
    let old = "FROM ledger l WHERE l.user_id = ?2 AND l.id <= ?3 AND l.created_at < ?1 \
               AND NOT (l.ref_id IS NOT NULL AND l.ref_type <> 'admin' \
               AND EXISTS (SELECT 1 FROM ledger m WHERE m.ref_type = l.ref_type \
               AND m.ref_id = l.ref_id AND m.created_at >= ?1))";
    let mut groups: Vec<(i64, i64, i64, i64)> = Vec::new();
    for user in users {
        let (count, sum, last_id): (i64, Option<i64>, Option<i64>) = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), SUM(l.amount_minor), MAX(l.id) {old}"
            ))?
            .query_row(params![cutoff, user, newest_old], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        // Old rows kept for a recent row of their group: the account is looked at again on
        // every run until they go (the group's other rows may belong to another account,
        // or lose their link when the order is anonymised).
        let all_old: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM ledger WHERE user_id = ?2 AND id <= ?3 AND created_at < ?1",
            )?
            .query_row(params![cutoff, user, newest_old], |r| r.get(0))?;
        let kept_sql = if all_old > count {
            "INSERT OR IGNORE INTO ledger_kept (user_id) VALUES (?1)"
        } else {
            "DELETE FROM ledger_kept WHERE user_id = ?1"
        };
        conn.prepare_cached(kept_sql)?.execute([user])?;
        // One carried row alone is already folded.
        if let (Some(sum), Some(last_id), true) = (sum, last_id, count > 0) {
            let carried_alone = count == 1
                && conn
                    .prepare_cached(
                        "SELECT note = ?2 AND kind = 'adjustment' AND ref_type = '' \
                         FROM ledger WHERE id = ?1",
                    )?
                    .query_row(params![last_id, CARRIED_NOTE], |r| r.get::<_, bool>(0))?;
            if !carried_alone {
                groups.push((user, count, sum, last_id));
            }
        }
    }
    conn.prepare_cached(
        "INSERT INTO retention_runs (rule, last_run_at, last_removed, swept_to, swept_id) \
         VALUES (?1, ?2, 0, ?3, ?4) ON CONFLICT (rule) DO UPDATE SET \
         swept_to = MAX(COALESCE(swept_to, excluded.swept_to), excluded.swept_to), \
         swept_id = MAX(COALESCE(swept_id, excluded.swept_id), excluded.swept_id)",
    )?
    .execute(params![Rule::Ledger.as_str(), now, cutoff, newest_old])?;
    let mut deleted = 0;
    for (user, count, sum, last_id) in groups {
        let (balance_after, at): (i64, Timestamp) = conn
            .prepare_cached("SELECT balance_after, created_at FROM ledger WHERE id = ?1")?
            .query_row([last_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let n = conn
            .prepare_cached(&format!(
                "DELETE FROM ledger WHERE id IN (SELECT l.id {old})"
            ))?
            .execute(params![cutoff, user, newest_old])?;
        debug_assert_eq!(n as i64, count);
        deleted += n;
        if sum != 0 {
            conn.prepare_cached(
                "INSERT INTO ledger (id, user_id, amount_minor, kind, note, balance_after, created_at) \
                 VALUES (?1, ?2, ?3, 'adjustment', ?4, ?5, ?6)",
            )?
            .execute(params![last_id, user, sum, CARRIED_NOTE, balance_after, at])?;
            // The carried row replaces some of the deleted ones; count only the net removal.
            deleted -= 1;
        }
    }
    deleted += conn.execute(
        "DELETE FROM payouts WHERE state <> 'requested' AND COALESCE(decided_at, created_at) < ?1",
        [cutoff],
    )?;
    deleted += conn.execute(
        "DELETE FROM vouchers WHERE COALESCE(redeemed_at, expires_at) < ?1",
        [cutoff],
    )?;
    deleted += payments::purge(conn, cutoff)?;
    Ok(deleted)
}

/// Deletes operational log rows older than `retention` seconds.
pub fn purge_logs(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    let mut n = conn.execute("DELETE FROM job_runs WHERE started_at < ?1", [cutoff])?;
    n += conn.execute("DELETE FROM provider_calls WHERE at < ?1", [cutoff])?;
    n += conn.execute(
        "DELETE FROM outbox WHERE COALESCE(sent_at, created_at) < ?1",
        [cutoff],
    )?;
    n += conn.execute(
        "DELETE FROM device_days WHERE day < ?1",
        [cutoff.div_euclid(86_400)],
    )?;
    Ok(n)
}

/// Deletes security-log and audit-log rows older than `retention` seconds.
pub fn purge_security(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    let n = conn.execute("DELETE FROM security_events WHERE at < ?1", [cutoff])?;
    Ok(n + conn.execute("DELETE FROM audit_log WHERE at < ?1", [cutoff])?)
}

/// Records a run of `rule` that removed `removed` rows.
pub fn record(conn: &Connection, rule: Rule, removed: usize, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO retention_runs (rule, last_run_at, last_removed, total_removed) \
         VALUES (?1, ?2, ?3, ?3) ON CONFLICT (rule) DO UPDATE SET last_run_at = excluded.last_run_at, \
         last_removed = excluded.last_removed, total_removed = total_removed + excluded.last_removed",
    )?
    .execute(params![rule.as_str(), now, removed as i64])?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub last_run_at: Timestamp,
    pub last_removed: i64,
    pub total_removed: i64,
}

/// The last run of a rule, if it ran.
pub fn last_run(conn: &Connection, rule: Rule) -> Result<Option<Run>> {
    Ok(conn
        .prepare_cached(
            "SELECT last_run_at, last_removed, total_removed FROM retention_runs WHERE rule = ?1",
        )?
        .query_row([rule.as_str()], |r| {
            Ok(Run {
                last_run_at: r.get(0)?,
                last_removed: r.get(1)?,
                total_removed: r.get(2)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};
    use crate::domain::market::wallet::{self, Kind};

    fn user(conn: &Connection, email: &str) -> i64 {
        accounts::create(
            conn,
            &NewUser {
                email,
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap()
        .id
    }

    const YEAR: i64 = 365 * 86_400;

    /// The notes of an account's ledger rows, oldest first.
    fn notes(conn: &Connection, user: i64) -> Vec<String> {
        conn.prepare("SELECT note FROM ledger WHERE user_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([user], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn old_ledger_rows_fold_into_one_carried_row() {
        let conn = db::memory();
        let u = user(&conn, "a@example.com");
        let v = user(&conn, "b@example.com");
        wallet::post(&conn, u, 1000, Kind::Topup, ("", None), "", 10).unwrap();
        wallet::post(
            &conn,
            u,
            -300,
            Kind::Charge,
            ("activation", Some(1)),
            "tg",
            20,
        )
        .unwrap();
        // A charge just before the cutoff with its refund after it: the pair stays.
        wallet::post(
            &conn,
            u,
            -100,
            Kind::Charge,
            ("activation", Some(2)),
            "tg",
            7 * YEAR - 5,
        )
        .unwrap();
        wallet::post(
            &conn,
            u,
            100,
            Kind::Refund,
            ("activation", Some(2)),
            "",
            7 * YEAR + 5,
        )
        .unwrap();
        wallet::post(&conn, v, 50, Kind::Topup, ("", None), "", 10).unwrap();
        wallet::post(&conn, v, -50, Kind::Charge, ("activation", Some(3)), "", 11).unwrap();
        let removed = purge_ledger(&conn, 7 * YEAR as u64, 14 * YEAR).unwrap();
        // u: 2 rows became 1 carried row; v: 2 rows with sum 0 simply went.
        assert_eq!(removed, 3);
        assert!(wallet::check(&conn).unwrap().is_empty());
        assert_eq!(wallet::balance(&conn, u).unwrap(), 700);
        assert_eq!(notes(&conn, u), [CARRIED_NOTE, "tg", ""]);
        let v_rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM ledger WHERE user_id = ?1", [v], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v_rows, 0);
        // Idempotent: a second run changes nothing.
        assert_eq!(purge_ledger(&conn, 7 * YEAR as u64, 14 * YEAR).unwrap(), 0);
        // Once the refund is old too, the kept charge goes with it, although the charge is
        // older than what the previous run swept.
        assert_eq!(
            purge_ledger(&conn, 7 * YEAR as u64, 14 * YEAR + 6).unwrap(),
            2
        );
        assert!(wallet::check(&conn).unwrap().is_empty());
        assert_eq!(wallet::balance(&conn, u).unwrap(), 700);
        assert_eq!(notes(&conn, u), [CARRIED_NOTE]);
    }

    #[test]
    fn a_row_kept_for_another_accounts_recent_row_goes_when_that_one_is_old() {
        let conn = db::memory();
        let customer = user(&conn, "c@example.com");
        let operator = user(&conn, "o@example.com");
        wallet::post(&conn, customer, 1000, Kind::Topup, ("", None), "", 10).unwrap();
        let order = ("activation", Some(7));
        wallet::post(&conn, customer, -100, Kind::Charge, order, "", 100).unwrap();
        // The operator's share of the same order, booked much later.
        wallet::post(&conn, operator, 70, Kind::Earning, order, "", 5_000).unwrap();
        // Cutoff 1,000: the charge stays (its order has a recent row), the top-up goes.
        assert_eq!(purge_ledger(&conn, 1_000, 2_000).unwrap(), 0);
        let customer_rows = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT COUNT(*) FROM ledger WHERE user_id = ?1",
                [customer],
                |r| r.get(0),
            )
            .unwrap()
        };
        // The top-up became a carried row (same count), the charge is still there.
        assert_eq!(customer_rows(&conn), 2);
        // Cutoff 6,000: the earning is old, so the customer's charge is folded too.
        purge_ledger(&conn, 1_000, 7_000).unwrap();
        assert_eq!(customer_rows(&conn), 1);
        assert!(wallet::check(&conn).unwrap().is_empty());
        assert_eq!(wallet::balance(&conn, customer).unwrap(), 900);
    }

    #[test]
    fn a_kept_row_goes_once_old_even_after_its_group_lost_its_link() {
        let conn = db::memory();
        let customer = user(&conn, "c@example.com");
        let operator = user(&conn, "o@example.com");
        wallet::post(&conn, customer, 1000, Kind::Topup, ("", None), "", 10).unwrap();
        let order = ("rental", Some(9));
        wallet::post(&conn, customer, -100, Kind::Charge, order, "", 100).unwrap();
        wallet::post(&conn, operator, 70, Kind::Earning, order, "", 5_000).unwrap();
        // The charge is kept for the operator's recent earning.
        purge_ledger(&conn, 1_000, 2_000).unwrap();
        let rows = |u: i64| -> i64 {
            conn.query_row("SELECT COUNT(*) FROM ledger WHERE user_id = ?1", [u], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(rows(customer), 2);
        // The group loses its link (as an anonymised order's rows may), then the earning ages:
        // the customer has no new row, and is still looked at.
        conn.execute(
            "UPDATE ledger SET ref_id = NULL WHERE ref_type = 'rental'",
            [],
        )
        .unwrap();
        purge_ledger(&conn, 1_000, 7_000).unwrap();
        assert_eq!(rows(customer), 1);
        assert_eq!(notes(&conn, customer), [CARRIED_NOTE]);
        assert!(wallet::check(&conn).unwrap().is_empty());
        let kept: i64 = conn
            .query_row("SELECT COUNT(*) FROM ledger_kept", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 0, "nothing is kept any more");
    }

    #[test]
    fn an_administrators_adjustments_are_not_one_group() {
        let conn = db::memory();
        let a = user(&conn, "a@example.com");
        let b = user(&conn, "b@example.com");
        let by_admin = ("admin", Some(77));
        wallet::post(&conn, a, 500, Kind::Adjustment, by_admin, "goodwill", 10).unwrap();
        // The same administrator credits someone else years later.
        wallet::post(&conn, b, 300, Kind::Adjustment, by_admin, "goodwill", 9_000).unwrap();
        // A note that looks like a carried row's is still an adjustment to fold.
        wallet::post(&conn, b, 5, Kind::Adjustment, by_admin, CARRIED_NOTE, 20).unwrap();
        purge_ledger(&conn, 1_000, 2_000).unwrap();
        assert_eq!(notes(&conn, a), [CARRIED_NOTE]);
        assert_eq!(notes(&conn, b), ["goodwill", CARRIED_NOTE]);
        let carried_b: i64 = conn
            .query_row(
                "SELECT ref_type = '' FROM ledger WHERE user_id = ?1 AND note = ?2",
                params![b, CARRIED_NOTE],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            carried_b, 1,
            "b's old look-alike was folded into a real carried row"
        );
        assert!(wallet::check(&conn).unwrap().is_empty());
    }

    #[test]
    fn runs_are_recorded() {
        let conn = db::memory();
        assert!(last_run(&conn, Rule::Logs).unwrap().is_none());
        record(&conn, Rule::Logs, 3, 100).unwrap();
        record(&conn, Rule::Logs, 2, 200).unwrap();
        let r = last_run(&conn, Rule::Logs).unwrap().unwrap();
        assert_eq!(
            (r.last_run_at, r.last_removed, r.total_removed),
            (200, 2, 5)
        );
    }

    #[test]
    fn months_are_utc() {
        assert_eq!(month_of(0), "1970-01");
        assert_eq!(month_of(1_700_000_000), "2023-11");
    }
}

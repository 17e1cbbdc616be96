//! The admin's actions on accounts, money and the catalogue, shared by the admin pages
//! (`http/web/admin*.rs`) and the admin API (`http/api/admin.rs`). Each one checks its rules,
//! makes the change and writes its audit row, all in the caller's transaction, so both edges
//! behave and audit exactly alike.

use rusqlite::Connection;

use crate::clock::Timestamp;
use crate::domain::accounts::{self, Role, State, User};
use crate::domain::base::audit::{Actor, NOTE_MAX};
use crate::domain::base::crypto::Keys;
use crate::domain::base::money::Money;
use crate::domain::market::activations::Policy;
use crate::domain::market::catalogue::{self, Price};
use crate::domain::trust::enforcement::{self, Closed};
use crate::domain::{
    accounts::second_factor, accounts::sessions, base::audit, base::mail, market::blocklist,
    market::payments, market::vouchers, market::wallet, Error, Result,
};

fn cut(text: &str) -> String {
    text.chars().take(NOTE_MAX).collect()
}

/// Gives an account a role. The last active administrator cannot lose the role.
pub fn set_role(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    role: Role,
    now: Timestamp,
) -> Result<User> {
    let target = accounts::get(conn, target_id)?;
    if target.role == Role::Admin && role != Role::Admin && accounts::count_admins(conn)? <= 1 {
        return Err(Error::Conflict(
            "The last administrator cannot lose the role.".into(),
        ));
    }
    accounts::set_role(conn, target_id, role)?;
    let detail = format!("{} → {}", target.role.as_str(), role.as_str());
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        "role_change",
        &detail,
        actor.ip_hash,
        now,
    )?;
    accounts::get(conn, target_id)
}

/// Suspends or re-activates an account (not one's own, not a closed one). Suspending signs
/// the account out everywhere. The reason is cut to [`NOTE_MAX`] characters.
pub fn set_state(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    state: State,
    reason: &str,
    now: Timestamp,
) -> Result<User> {
    if !matches!(state, State::Active | State::Suspended) {
        return Err(Error::invalid("Choose active or suspended."));
    }
    let reason = cut(reason);
    let target = accounts::get(conn, target_id)?;
    if target.id == actor.id {
        return Err(Error::Conflict(
            "You cannot change the state of your own account.".into(),
        ));
    }
    if matches!(target.state, State::Terminated | State::Deleted) {
        return Err(Error::Conflict("This account is closed.".into()));
    }
    accounts::set_state(conn, target_id, state, &reason, now)?;
    if state == State::Suspended {
        sessions::revoke_all_for_user(conn, target_id, None)?;
    }
    let detail = format!("{} → {}: {reason}", target.state.as_str(), state.as_str());
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        "state_change",
        &detail,
        actor.ip_hash,
        now,
    )?;
    accounts::get(conn, target_id)
}

/// Terminates an account for `reason` (required): live orders are ended and refunded, the
/// balance left is forfeited (one `forfeit` ledger row), and every session, API key, webhook
/// and device is revoked, all in the caller's transaction; audited. Never one's own account.
/// The person is told by mail with a link to appeal ([`crate::domain::trust::abuse::queue_termination_mail`]).
#[allow(clippy::too_many_arguments)]
pub fn terminate(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    reason: &str,
    policy: &Policy,
    digits: u32,
    now: Timestamp,
) -> Result<(User, Closed)> {
    let reason = cut(reason.trim());
    if reason.is_empty() {
        return Err(Error::invalid(
            "Give the reason: it is recorded and sent to the person.",
        ));
    }
    let target = accounts::get(conn, target_id)?;
    if target.id == actor.id {
        return Err(Error::Conflict(
            "You cannot terminate your own account.".into(),
        ));
    }
    if matches!(target.state, State::Terminated | State::Deleted) {
        return Err(Error::Conflict("This account is closed already.".into()));
    }
    let closed = enforcement::close_account(conn, target_id, policy, "terminated", now)?;
    accounts::set_state(conn, target_id, State::Terminated, &reason, now)?;
    let detail = format!(
        "{} → terminated: {reason} (orders ended {}, refunded {}, forfeited {})",
        target.state.as_str(),
        closed.orders_ended,
        Money(closed.refunded_minor).decimal(digits),
        Money(closed.forfeited_minor).decimal(digits)
    );
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        "terminate",
        &detail,
        actor.ip_hash,
        now,
    )?;
    Ok((accounts::get(conn, target_id)?, closed))
}

/// Lifts a termination (an appeal that succeeded): the account is active again. What was
/// forfeited and revoked stays so; the admin can credit the balance back. Audited.
pub fn reinstate(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    reason: &str,
    now: Timestamp,
) -> Result<User> {
    let reason = cut(reason.trim());
    let target = accounts::get(conn, target_id)?;
    if target.state != State::Terminated {
        return Err(Error::Conflict(
            "Only a terminated account can be reinstated.".into(),
        ));
    }
    accounts::set_state(conn, target_id, State::Active, &reason, now)?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        "reinstate",
        &format!("terminated → active: {reason}"),
        actor.ip_hash,
        now,
    )?;
    accounts::get(conn, target_id)
}

/// Blocks a service (everywhere), a country (for every service) or one pair; audited.
pub fn block(
    conn: &Connection,
    actor: Actor<'_>,
    country: Option<i64>,
    service: Option<&str>,
    reason: &str,
    now: Timestamp,
) -> Result<blocklist::Entry> {
    let e = blocklist::add(conn, country, service, &cut(reason), Some(actor.id), now)?;
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "block_added",
        &format!("{}: {}", e.describe(), e.reason),
        actor.ip_hash,
        now,
    )?;
    Ok(e)
}

/// Removes a block; audited.
pub fn unblock(conn: &Connection, actor: Actor<'_>, id: i64, now: Timestamp) -> Result<()> {
    let e = blocklist::remove(conn, id)?;
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "block_removed",
        &e.describe(),
        actor.ip_hash,
        now,
    )
}

/// Credits (or, with a negative amount, debits) an account by hand: one `adjustment` ledger
/// row referring to the admin. The balance never goes below zero. Returns the ledger entry.
pub fn credit(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    amount_minor: i64,
    note: &str,
    digits: u32,
    now: Timestamp,
) -> Result<wallet::Entry> {
    if amount_minor == 0 {
        return Err(Error::invalid(
            "Enter a non-zero amount such as 12.50 or -3.00.",
        ));
    }
    accounts::get(conn, target_id)?;
    let note = cut(note);
    wallet::post(
        conn,
        target_id,
        amount_minor,
        wallet::Kind::Adjustment,
        ("admin", Some(actor.id)),
        &note,
        now,
    )
    .map_err(|e| match e {
        Error::NoBalance => Error::Conflict("The balance cannot go below zero.".into()),
        e => e,
    })?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        "credit",
        &format!("{} {note}", Money(amount_minor).decimal(digits)),
        actor.ip_hash,
        now,
    )?;
    wallet::entries(conn, target_id, 1, None)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("the ledger row just written is missing".into()))
}

/// Turns off the second factor of an account whose owner lost both the phone and the
/// recovery codes (after the admin has checked who is asking). Written to the audit log and
/// to the owner's security log; the caller mails the owner. Refused when it is off.
pub fn reset_second_factor(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    now: Timestamp,
) -> Result<User> {
    let target = accounts::get(conn, target_id)?;
    if !second_factor::enabled(conn, target_id)? {
        return Err(Error::Conflict(
            "Two-factor sign-in is not on for this account.".into(),
        ));
    }
    second_factor::disable(conn, target_id)?;
    audit::security(
        conn,
        Some(target_id),
        audit::TOTP_DISABLED,
        "",
        "by an administrator",
        now,
    )?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        audit::SECOND_FACTOR_RESET,
        "",
        actor.ip_hash,
        now,
    )?;
    Ok(target)
}

/// Reads an account's latest `limit` ledger entries for an admin, and audits the reading:
/// money movements are the account's private data.
pub fn view_ledger(
    conn: &Connection,
    actor: Actor<'_>,
    target_id: i64,
    limit: i64,
    now: Timestamp,
) -> Result<(User, Vec<wallet::Entry>)> {
    let target = accounts::get(conn, target_id)?;
    let entries = wallet::entries(conn, target_id, limit, None)?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(target_id),
        audit::LEDGER_VIEWED,
        &format!("{} latest entries", entries.len()),
        actor.ip_hash,
        now,
    )?;
    Ok((target, entries))
}

/// Reads the outbox for an admin, and audits the reading: the mails are other people's (with
/// their links and notices).
pub fn view_outbox(
    conn: &Connection,
    actor: Actor<'_>,
    limit: i64,
    now: Timestamp,
) -> Result<Vec<mail::OutboxRow>> {
    let rows = mail::recent(conn, limit)?;
    audit::audit(
        conn,
        Some(actor.id),
        None,
        audit::OUTBOX_VIEWED,
        &format!("{} latest mails", rows.len()),
        actor.ip_hash,
        now,
    )?;
    Ok(rows)
}

/// A page of every account's top-ups for an admin (newest first, before id `before`), with
/// each account's e-mail; the reading is audited: payments are the accounts' private data.
pub fn view_payments(
    conn: &Connection,
    actor: Actor<'_>,
    before: Option<i64>,
    limit: i64,
    now: Timestamp,
) -> Result<Vec<(payments::Payment, String)>> {
    let rows = payments::list(conn, before, limit)?;
    let mut out = Vec::with_capacity(rows.len());
    for p in rows {
        let email = accounts::get(conn, p.user_id)
            .map(|u| u.email)
            .unwrap_or_default();
        out.push((p, email));
    }
    audit::audit(
        conn,
        Some(actor.id),
        None,
        audit::PAYMENTS_VIEWED,
        &format!(
            "{} top-ups{}",
            out.len(),
            before.map(|b| format!(" before #{b}")).unwrap_or_default()
        ),
        actor.ip_hash,
        now,
    )?;
    Ok(out)
}

/// Records that an admin asked a top-up's gateway for its state (the answer is stored on
/// the payment by the caller, after the call).
pub fn check_payment(
    conn: &Connection,
    actor: Actor<'_>,
    id: i64,
    now: Timestamp,
) -> Result<payments::Payment> {
    let p = payments::get(conn, id)?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(p.user_id),
        audit::PAYMENT_CHECKED,
        &format!("top-up #{id} at {}", p.gateway),
        actor.ip_hash,
        now,
    )?;
    Ok(p)
}

/// A batch of vouchers made by an admin.
#[derive(Debug, Clone)]
pub struct Batch {
    pub batch: String,
    /// The codes in clear: shown once, only their keyed hashes are stored.
    pub codes: Vec<String>,
    pub amount_minor: i64,
    pub expires_at: Timestamp,
}

/// Creates `count` vouchers worth `amount_minor`, valid for `valid_days`.
#[allow(clippy::too_many_arguments)]
pub fn create_vouchers(
    conn: &Connection,
    keys: &Keys,
    actor: Actor<'_>,
    count: u32,
    amount_minor: i64,
    valid_days: u32,
    digits: u32,
    now: Timestamp,
) -> Result<Batch> {
    let (batch, codes) = vouchers::create_batch(
        conn,
        keys,
        Some(actor.id),
        count,
        amount_minor,
        valid_days,
        now,
    )?;
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "vouchers_created",
        &format!(
            "batch {batch}: {count} × {}",
            Money(amount_minor).decimal(digits)
        ),
        actor.ip_hash,
        now,
    )?;
    Ok(Batch {
        batch,
        codes,
        amount_minor,
        expires_at: now + valid_days as i64 * 86_400,
    })
}

/// Sets the price of a (country, service) pair, or of one operator of it (`operator`
/// non-empty: that operator must exist in the country).
#[allow(clippy::too_many_arguments)]
pub fn set_price(
    conn: &Connection,
    actor: Actor<'_>,
    country: i64,
    service: &str,
    operator: &str,
    price: Price,
    digits: u32,
    now: Timestamp,
) -> Result<()> {
    if !operator.is_empty() && !catalogue::operator_exists(conn, country, operator)? {
        return Err(Error::WrongOperator);
    }
    catalogue::set_price(conn, country, service, operator, price)?;
    let pair = if operator.is_empty() {
        format!("{country}/{service}")
    } else {
        format!("{country}/{service}/{operator}")
    };
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "price_change",
        &format!(
            "{pair}: {} (rent {} per hour)",
            Money(price.price_minor).decimal(digits),
            Money(price.rent_hour_minor).decimal(digits)
        ),
        actor.ip_hash,
        now,
    )
}

/// Switches a catalogue entry on or off: `table` is `countries` (key: the id) or `services`
/// (key: the code).
pub fn set_enabled(
    conn: &Connection,
    actor: Actor<'_>,
    table: &str,
    key: &str,
    on: bool,
    now: Timestamp,
) -> Result<()> {
    catalogue::set_enabled(conn, table, key, on)?;
    let what = if on { "enabled" } else { "disabled" };
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "catalogue_change",
        &format!("{table} {key} {what}"),
        actor.ip_hash,
        now,
    )
}

/// What waits for the admin, each counted through an index of its state (the overview's
/// queues).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queues {
    /// Abuse reports and appeals not yet decided.
    pub abuse_open: i64,
    pub payouts_pending: i64,
    pub flags_open: i64,
    /// Job runs that failed in the last 24 hours.
    pub jobs_failed: i64,
    /// Devices not revoked that are offline or never called.
    pub devices_offline: i64,
    /// Upstream providers switched off, paused by their circuit breaker, or failing.
    pub providers_unhealthy: i64,
}

impl Queues {
    pub fn total(&self) -> i64 {
        self.abuse_open
            + self.payouts_pending
            + self.flags_open
            + self.jobs_failed
            + self.devices_offline
            + self.providers_unhealthy
    }
}

pub fn queues(conn: &Connection, now: Timestamp) -> Result<Queues> {
    let count = |sql: &str, p: i64| -> Result<i64> {
        Ok(conn.prepare_cached(sql)?.query_row([p], |r| r.get(0))?)
    };
    Ok(Queues {
        abuse_open: count(
            "SELECT COUNT(*) FROM abuse_reports WHERE state IN ('new', 'investigating') AND id > ?1",
            0,
        )?,
        payouts_pending: count(
            "SELECT COUNT(*) FROM payouts WHERE state = 'requested' AND id > ?1",
            0,
        )?,
        flags_open: count(
            "SELECT COUNT(*) FROM flags WHERE state = 'open' AND id > ?1",
            0,
        )?,
        // Through the failures alone (`job_runs_failed`).
        jobs_failed: count(
            "SELECT COUNT(*) FROM job_runs WHERE ok = 0 AND started_at > ?1",
            now - 86_400,
        )?,
        // Devices are bounded (an operator's phones and SIM banks, never history): the
        // count reads them all.
        devices_offline: conn
            .prepare_cached(
                "SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL \
                 AND (online = 0 OR first_seen_at IS NULL)",
            )?
            .query_row([], |r| r.get(0))?,
        providers_unhealthy: count(
            "SELECT COUNT(*) FROM providers WHERE enabled = 0 OR failures > 0 \
             OR paused_until > ?1",
            now,
        )?,
    })
}

/// A device the overview lists as needing attention.
#[derive(Debug, Clone)]
pub struct QuietDevice {
    pub name: String,
    pub kind: String,
    pub owner_id: i64,
    pub owner: String,
    /// `None`: it never called.
    pub last_seen_at: Option<Timestamp>,
}

/// The devices counted in [`Queues::devices_offline`], most recently seen first.
pub fn quiet_devices(conn: &Connection, limit: i64) -> Result<Vec<QuietDevice>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.name, d.kind, d.owner_id, COALESCE(u.email, ''), \
         CASE WHEN d.first_seen_at IS NULL THEN NULL ELSE d.last_seen_at END \
         FROM devices d LEFT JOIN users u ON u.id = d.owner_id \
         WHERE d.revoked_at IS NULL AND (d.online = 0 OR d.first_seen_at IS NULL) \
         ORDER BY d.last_seen_at DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(QuietDevice {
            name: r.get(0)?,
            kind: r.get(1)?,
            owner_id: r.get(2)?,
            owner: r.get(3)?,
            last_seen_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;

    fn audit_rows(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare("SELECT action, detail FROM audit_log ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn the_last_admin_keeps_the_role_and_refusals_write_nothing() {
        let conn = db::memory();
        let root = account(&conn, "root@example.com", Role::Admin);
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        assert!(matches!(
            set_role(&conn, me, root, Role::User, 5),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            set_state(&conn, me, root, State::Suspended, "", 5),
            Err(Error::Conflict(_))
        ));
        assert!(audit_rows(&conn).is_empty());
        let ann = account(&conn, "ann@example.com", Role::User);
        assert!(matches!(
            set_state(&conn, me, ann, State::Terminated, "", 5),
            Err(Error::Invalid(_))
        ));
        let u = set_state(&conn, me, ann, State::Suspended, &"x".repeat(300), 6).unwrap();
        assert_eq!(u.state, State::Suspended);
        assert_eq!(u.state_reason.len(), NOTE_MAX);
        assert_eq!(audit_rows(&conn)[0].0, "state_change");
    }

    #[test]
    fn credit_writes_one_ledger_row_and_never_goes_negative() {
        let conn = db::memory();
        let root = account(&conn, "root@example.com", Role::Admin);
        let ann = account(&conn, "ann@example.com", Role::User);
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        let e = credit(&conn, me, ann, 1250, "welcome", 2, 10).unwrap();
        assert_eq!((e.amount_minor, e.balance_after), (1250, 1250));
        assert_eq!((e.kind.as_str(), e.ref_id), ("adjustment", Some(root)));
        assert!(matches!(
            credit(&conn, me, ann, -5000, "", 2, 11),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            credit(&conn, me, ann, 0, "", 2, 11),
            Err(Error::Invalid(_))
        ));
        assert_eq!(wallet::balance(&conn, ann).unwrap(), 1250);
        assert_eq!(
            audit_rows(&conn),
            vec![("credit".to_string(), "12.50 welcome".to_string())]
        );
        assert!(wallet::check(&conn).unwrap().is_empty());
    }

    #[test]
    fn reading_a_ledger_or_the_outbox_is_audited() {
        let conn = db::memory();
        let root = account(&conn, "root@example.com", Role::Admin);
        let ann = account(&conn, "ann@example.com", Role::User);
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        credit(&conn, me, ann, 500, "", 2, 10).unwrap();
        let (u, entries) = view_ledger(&conn, me, ann, 20, 11).unwrap();
        assert_eq!((u.id, entries.len()), (ann, 1));
        assert!(matches!(
            view_ledger(&conn, me, 999, 20, 11),
            Err(Error::NotFound(_))
        ));
        view_outbox(&conn, me, 100, 12).unwrap();
        assert_eq!(
            audit_rows(&conn),
            vec![
                ("credit".to_string(), "5.00 ".to_string()),
                ("ledger_viewed".to_string(), "1 latest entries".to_string()),
                ("outbox_viewed".to_string(), "0 latest mails".to_string()),
            ]
        );
    }

    #[test]
    fn operator_prices_need_a_known_operator() {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let root = account(&conn, "root@example.com", Role::Admin);
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        let p = Price {
            price_minor: 77,
            rent_hour_minor: 20,
        };
        assert!(matches!(
            set_price(&conn, me, 0, "tg", "nosuch", p, 2, 1),
            Err(Error::WrongOperator)
        ));
        set_price(&conn, me, 0, "tg", "mts", p, 2, 1).unwrap();
        assert_eq!(catalogue::price(&conn, 0, "tg", "mts").unwrap(), Some(p));
        assert_eq!(
            audit_rows(&conn),
            vec![(
                "price_change".to_string(),
                "0/tg/mts: 0.77 (rent 0.20 per hour)".to_string()
            )]
        );
    }
}

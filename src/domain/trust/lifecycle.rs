//! The account lifecycle the privacy page promises (SPEC §9): deletion, correction of the
//! e-mail address, the processing restriction, and the holders' requests the admin sees. The
//! export of everything held about an account is in `export.rs`.
//!
//! **Deletion** is one transaction: live activations and rentals are ended and refunded
//! first ([`close_orders`]), then the remaining balance is forfeited as the account's final
//! ledger row, the state becomes `deleted`, and every way in is cut at once
//! ([`revoke_access`]: sessions, API keys, webhooks, devices, link tokens, payout requests).
//! The address stays on the row during `deletion_cooldown`, so it cannot sign up again
//! ([`claim_email`]); after it, [`purge_deleted`] (the `accounts` job) replaces it with a
//! placeholder and clears the password hash, the name and every personal secret. Ledger,
//! order and security-log rows stay, attached to the anonymous row, under their own retention
//! rules, so `otpbox check` keeps passing.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::{format_datetime, Timestamp};
use crate::domain::accounts::{self, Role, State, User};
use crate::domain::base::audit::Actor;
use crate::domain::base::crypto::Keys;
use crate::domain::market::wallet::{self, Kind};
use crate::domain::{
    accounts::tokens, base::audit, market::activations, market::rentals, market::webhooks,
    supply::devices, Error, Result,
};

/// Security-log kinds written here.
pub const ACCOUNT_DELETED: &str = "account_deleted";
pub const EMAIL_CHANGE_REQUESTED: &str = "email_change_requested";
pub const EMAIL_CHANGED: &str = "email_changed";
pub const PROCESSING_RESTRICTED: &str = "processing_restricted";
pub const PROCESSING_UNRESTRICTED: &str = "processing_unrestricted";

/// The ledger note of the final forfeit row.
pub const FORFEIT_NOTE: &str = "account deleted: balance forfeited";

/// Tables that hold an account's personal secrets (the second factor) and external identities
/// (OpenID Connect subjects and the sign-ins waiting for them), emptied for the account at the
/// purge. A feature that adds such a table lists it here.
const PERSONAL_TABLES: &[&str] = &[
    "totp",
    "recovery_codes",
    "identities",
    "oidc_flows",
    "notifications",
    "notify_channels",
];

/// Whether deleting this account must also ask for a second-factor code (it has one on).
pub fn second_factor_required(conn: &Connection, user: &User) -> Result<bool> {
    crate::domain::accounts::second_factor::enabled(conn, user.id)
}

/// The placeholder that replaces a purged account's address (`.invalid` never resolves).
pub fn placeholder_email(user_id: i64) -> String {
    format!("deleted-{user_id}@invalid")
}

/// Who deletes an account.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    /// The holder, from the settings page (password checked by the caller).
    Holder { ip_hash: &'a str },
    /// An administrator, from the admin's user page (audited).
    Admin(Actor<'a>),
}

/// What a deletion did, for the confirmation mail and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Closed {
    /// Orders ended with a refund (no code or no SMS had arrived).
    pub activations_refunded: Vec<i64>,
    pub rentals_refunded: Vec<i64>,
    /// Orders ended without a refund (a code or an SMS had arrived).
    pub activations_completed: Vec<i64>,
    pub rentals_finished: Vec<i64>,
    /// The sum of the refunds.
    pub refunded_minor: i64,
    /// The balance forfeited by the final ledger row (0: no row was needed).
    pub forfeited_minor: i64,
}

/// Ends the account's live activations and rentals (refunding those that got nothing) and
/// deletes the texts of every SMS its orders received: nobody can read them any more.
pub fn close_orders(
    conn: &Connection,
    user_id: i64,
    operator_share: u32,
    now: Timestamp,
) -> Result<Closed> {
    let before = wallet::balance(conn, user_id)?;
    let (activations_refunded, activations_completed) =
        activations::close_all_for(conn, user_id, operator_share, now)?;
    let (rentals_refunded, rentals_finished) =
        rentals::close_all_for(conn, user_id, operator_share, now)?;
    conn.execute(
        "DELETE FROM messages WHERE activation_id IN (SELECT id FROM activations WHERE user_id = ?1) \
         OR rental_id IN (SELECT id FROM rentals WHERE user_id = ?1)",
        [user_id],
    )?;
    Ok(Closed {
        activations_refunded,
        rentals_refunded,
        activations_completed,
        rentals_finished,
        refunded_minor: wallet::balance(conn, user_id)? - before,
        forfeited_minor: 0,
    })
}

/// Cuts every way into an account at once: sessions, API keys, webhooks (their pending
/// deliveries are given up, rentals' own URLs included), devices (their SIMs leave the stock),
/// unused e-mailed links and open payout requests.
pub fn revoke_access(conn: &Connection, user_id: i64, now: Timestamp) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 OR pending_user_id = ?1",
        [user_id],
    )?;
    // Sign-ins with a provider waiting to be linked to this account (in other browsers).
    conn.execute("DELETE FROM oidc_flows WHERE user_id = ?1", [user_id])?;
    // Nothing more goes to the account's phone.
    crate::domain::accounts::notifications::delete_all_for(conn, user_id, now)?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, now],
    )?;
    let hooks: Vec<i64> = {
        let mut stmt = conn.prepare("SELECT id FROM webhooks WHERE user_id = ?1")?;
        let rows = stmt.query_map([user_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in hooks {
        webhooks::delete(conn, user_id, id)?;
    }
    crate::domain::market::caps::clear(conn, user_id)?;
    conn.execute(
        "UPDATE webhook_deliveries SET state = 'failed', payload = NULL, finished_at = ?2, \
         last_error = 'account closed' WHERE user_id = ?1 AND state = 'pending'",
        params![user_id, now],
    )?;
    for d in devices::list_for(conn, user_id)? {
        devices::revoke(conn, &d, now)?;
    }
    conn.execute(
        "UPDATE tokens SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
        params![user_id, now],
    )?;
    conn.execute(
        "UPDATE payouts SET state = 'withdrawn', decided_at = ?2, note = 'account closed' \
         WHERE user_id = ?1 AND state = 'requested'",
        params![user_id, now],
    )?;
    Ok(())
}

/// Deletes an account now (soft delete), in the caller's transaction: orders closed and
/// refunded, then the balance forfeited as the final ledger row, state `deleted`, every access
/// revoked, the event in the security log (and the audit log when an admin does it) and a
/// request row for the admin's list. The last active administrator cannot be deleted; an
/// administrator deletes their own account from the settings page, not the admin page.
pub fn delete_account(
    conn: &Connection,
    user_id: i64,
    by: By<'_>,
    operator_share: u32,
    now: Timestamp,
) -> Result<Closed> {
    let user = accounts::get(conn, user_id)?;
    if user.state == State::Deleted {
        return Err(Error::Conflict("This account is already deleted.".into()));
    }
    if user.role == Role::Admin && user.state == State::Active && accounts::count_admins(conn)? <= 1
    {
        return Err(Error::Conflict(
            "This is the only administrator account: make another account an administrator \
             first."
                .into(),
        ));
    }
    if let By::Admin(actor) = by {
        if actor.id == user_id {
            return Err(Error::Conflict(
                "Delete your own account from your settings page.".into(),
            ));
        }
    }
    let mut closed = close_orders(conn, user_id, operator_share, now)?;
    let balance = wallet::balance(conn, user_id)?;
    if balance > 0 {
        wallet::post(
            conn,
            user_id,
            -balance,
            Kind::Forfeit,
            ("account", Some(user_id)),
            FORFEIT_NOTE,
            now,
        )?;
    }
    closed.forfeited_minor = balance;
    let reason = match by {
        By::Holder { .. } => "deleted by the account holder",
        By::Admin(_) => "deleted by an administrator",
    };
    conn.execute(
        "UPDATE users SET state = 'deleted', state_reason = ?2, state_changed_at = ?3, \
         deleted_at = ?3 WHERE id = ?1",
        params![user_id, reason, now],
    )?;
    revoke_access(conn, user_id, now)?;
    let detail = format!(
        "{} orders refunded, {} forfeited (minor units)",
        closed.activations_refunded.len() + closed.rentals_refunded.len(),
        closed.forfeited_minor
    );
    let ip = match by {
        By::Holder { ip_hash } => ip_hash,
        By::Admin(actor) => actor.ip_hash,
    };
    audit::security(conn, Some(user_id), ACCOUNT_DELETED, ip, reason, now)?;
    if let By::Admin(actor) = by {
        audit::audit(
            conn,
            Some(actor.id),
            Some(user_id),
            "account_delete",
            &detail,
            actor.ip_hash,
            now,
        )?;
    }
    add_request(conn, user_id, RequestKind::Delete, &detail, now)?;
    Ok(closed)
}

/// The day from which a deleted account's address can sign up again.
pub fn reusable_from(deleted_at: Timestamp, cooldown: u64) -> Timestamp {
    deleted_at + cooldown as i64
}

fn day(t: Timestamp) -> String {
    format_datetime(t).chars().take(10).collect()
}

/// Checks that `email` can be given to a new account or an address change now. An address
/// in use is taken; the address of a deleted account is blocked until the cooldown has passed,
/// and once it has, that account is purged on the spot (the `accounts` job may not have run
/// yet) so the address is free.
pub fn claim_email(conn: &Connection, email: &str, cooldown: u64, now: Timestamp) -> Result<()> {
    let Some(holder) = accounts::find_by_email(conn, email)? else {
        return Ok(());
    };
    match (holder.state, holder.deleted_at) {
        (State::Deleted, Some(at)) => {
            let free_at = reusable_from(at, cooldown);
            if now < free_at {
                return Err(Error::Conflict(format!(
                    "The account with this e-mail address was deleted on {}; the address can \
                     be used for a new account from {} (UTC).",
                    day(at),
                    day(free_at)
                )));
            }
            purge_one(conn, holder.id, now)
        }
        _ => Err(Error::Conflict(
            "An account with this e-mail address already exists.".into(),
        )),
    }
}

/// Purges one deleted account: the address becomes [`placeholder_email`]; the password hash,
/// the external identities, the display name, link tokens, API keys (names and prefixes), sessions, webhook logs,
/// rentals' webhook URLs, device names, mail still in the outbox for the old address and the
/// rows of [`PERSONAL_TABLES`] go. Ledger, orders and security events stay (their own
/// retention rules apply).
fn purge_one(conn: &Connection, user_id: i64, now: Timestamp) -> Result<()> {
    let old: String = conn.query_row("SELECT email FROM users WHERE id = ?1", [user_id], |r| {
        r.get(0)
    })?;
    conn.execute(
        "UPDATE users SET email = ?2, password_hash = NULL, display_name = '', purged_at = ?3 \
         WHERE id = ?1",
        params![user_id, placeholder_email(user_id), now],
    )?;
    for sql in [
        "DELETE FROM tokens WHERE user_id = ?1",
        "DELETE FROM api_keys WHERE user_id = ?1",
        "DELETE FROM sessions WHERE user_id = ?1 OR pending_user_id = ?1",
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE user_id = ?1)",
        "DELETE FROM webhook_deliveries WHERE user_id = ?1",
        "UPDATE rentals SET webhook_url = '' WHERE user_id = ?1",
        "UPDATE devices SET name = 'device ' || id WHERE owner_id = ?1",
    ] {
        conn.execute(sql, [user_id])?;
    }
    conn.execute("DELETE FROM outbox WHERE lower(to_addr) = lower(?1)", [old])?;
    for table in PERSONAL_TABLES {
        // The name comes from the constant list above, never from input.
        conn.execute(
            &format!("DELETE FROM \"{table}\" WHERE user_id = ?1"),
            [user_id],
        )?;
    }
    Ok(())
}

/// Purges every deleted account whose cooldown has passed (the `accounts` job); returns how
/// many.
pub fn purge_deleted(conn: &Connection, cooldown: u64, now: Timestamp) -> Result<usize> {
    let due: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM users WHERE state = 'deleted' AND purged_at IS NULL \
             AND deleted_at IS NOT NULL AND deleted_at <= ?1 ORDER BY id LIMIT 500",
        )?;
        let rows = stmt.query_map([now - cooldown as i64], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &due {
        purge_one(conn, *id, now)?;
    }
    Ok(due.len())
}

// ---------------------------------------------------------------------------------------
// Correction: the e-mail address

/// How long the confirmation link to a new address works.
pub const EMAIL_CHANGE_TTL: u64 = 48 * 3600;

/// Starts an address change: checks the new address (well-formed, not the current one, not
/// taken) and issues the link token for it, voiding earlier ones. Returns the normalised
/// address and the token. Nothing changes until the link is opened.
pub fn request_email_change(
    conn: &Connection,
    keys: &Keys,
    user: &User,
    new_email: &str,
    cooldown: u64,
    ip_hash: &str,
    now: Timestamp,
) -> Result<(String, String)> {
    let email = accounts::normalise_email(new_email)?;
    if email == user.email.to_lowercase() {
        return Err(Error::invalid("That is already your e-mail address."));
    }
    claim_email(conn, &email, cooldown, now)?;
    tokens::revoke_all(conn, user.id, tokens::CHANGE_EMAIL, now)?;
    let token = tokens::issue(
        conn,
        keys,
        tokens::CHANGE_EMAIL,
        Some(user.id),
        &email,
        EMAIL_CHANGE_TTL,
        now,
    )?;
    audit::security(
        conn,
        Some(user.id),
        EMAIL_CHANGE_REQUESTED,
        ip_hash,
        "",
        now,
    )?;
    Ok((email, token))
}

/// Completes an address change from its link: the address is checked again (it may have been
/// taken meanwhile), set, and counted as verified. Returns the account as it was before.
pub fn confirm_email_change(
    conn: &Connection,
    keys: &Keys,
    token: &str,
    cooldown: u64,
    ip_hash: &str,
    now: Timestamp,
) -> Result<(User, String)> {
    let redeemed = tokens::consume(conn, keys, tokens::CHANGE_EMAIL, token, now)?;
    let user_id = redeemed.user_id.ok_or(Error::NotFound("account"))?;
    let before = accounts::get(conn, user_id)?;
    if !matches!(before.state, State::Active | State::Suspended) {
        return Err(Error::Conflict("This account is closed.".into()));
    }
    let email = redeemed.data;
    claim_email(conn, &email, cooldown, now)?;
    conn.execute(
        "UPDATE users SET email = ?2, email_verified_at = ?3 WHERE id = ?1",
        params![user_id, email, now],
    )?;
    tokens::revoke_all(conn, user_id, tokens::CHANGE_EMAIL, now)?;
    audit::security(conn, Some(user_id), EMAIL_CHANGED, ip_hash, "", now)?;
    Ok((before, email))
}

// ---------------------------------------------------------------------------------------
// Restriction of processing

/// Whether the holder has restricted the processing of their data. Optional processing
/// (anomaly scoring beyond what fraud prevention needs, any marketing) must consult this and
/// skip the account when it is true.
#[allow(dead_code)] // for the anomaly scoring (abuse handling), which lands separately
pub fn processing_restricted(conn: &Connection, user_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT processing_restricted_at IS NOT NULL FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// Switches the restriction on or off. A change is written to the security log and to the
/// admin's request list; switching to the current state changes nothing and returns false.
pub fn set_restricted(
    conn: &Connection,
    user_id: i64,
    on: bool,
    ip_hash: &str,
    now: Timestamp,
) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE users SET processing_restricted_at = CASE WHEN ?2 THEN ?3 ELSE NULL END \
         WHERE id = ?1 AND (processing_restricted_at IS NOT NULL) <> ?2",
        params![user_id, on, now],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    let (kind, request) = if on {
        (PROCESSING_RESTRICTED, RequestKind::Restrict)
    } else {
        (PROCESSING_UNRESTRICTED, RequestKind::Unrestrict)
    };
    audit::security(conn, Some(user_id), kind, ip_hash, "", now)?;
    add_request(conn, user_id, request, "", now)?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// The holders' requests, as the admin sees them

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Restrict,
    Unrestrict,
    Delete,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Restrict => "restrict",
            RequestKind::Unrestrict => "unrestrict",
            RequestKind::Delete => "delete",
        }
    }
}

fn add_request(
    conn: &Connection,
    user_id: i64,
    kind: RequestKind,
    detail: &str,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO account_requests (user_id, kind, detail, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![user_id, kind.as_str(), detail, now])?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub kind: String,
    pub detail: String,
    pub created_at: Timestamp,
    pub handled_at: Option<Timestamp>,
    pub handled_by: Option<String>,
}

const REQUEST_SELECT: &str =
    "SELECT q.id, q.user_id, u.email, q.kind, q.detail, q.created_at, q.handled_at, h.email \
     FROM account_requests q JOIN users u ON u.id = q.user_id \
     LEFT JOIN users h ON h.id = q.handled_by";

fn request_rows(
    conn: &Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<RequestRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| {
        Ok(RequestRow {
            id: r.get(0)?,
            user_id: r.get(1)?,
            email: r.get(2)?,
            kind: r.get(3)?,
            detail: r.get(4)?,
            created_at: r.get(5)?,
            handled_at: r.get(6)?,
            handled_by: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The newest requests of every account, open ones first.
pub fn requests(conn: &Connection, limit: i64) -> Result<Vec<RequestRow>> {
    request_rows(
        conn,
        &format!("{REQUEST_SELECT} ORDER BY q.handled_at IS NOT NULL, q.id DESC LIMIT ?1"),
        &[&limit],
    )
}

/// One account's requests, newest first.
pub fn requests_for(conn: &Connection, user_id: i64, limit: i64) -> Result<Vec<RequestRow>> {
    request_rows(
        conn,
        &format!("{REQUEST_SELECT} WHERE q.user_id = ?1 ORDER BY q.id DESC LIMIT ?2"),
        &[&user_id, &limit],
    )
}

/// An admin marks a request seen (audited).
pub fn mark_handled(conn: &Connection, actor: Actor<'_>, id: i64, now: Timestamp) -> Result<()> {
    let target: Option<(i64, String)> = conn
        .query_row(
            "SELECT user_id, kind FROM account_requests WHERE id = ?1 AND handled_at IS NULL",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((user_id, kind)) = target else {
        return Err(Error::NotFound("open request"));
    };
    conn.execute(
        "UPDATE account_requests SET handled_at = ?2, handled_by = ?3 WHERE id = ?1",
        params![id, now, actor.id],
    )?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(user_id),
        "request_handled",
        &kind,
        actor.ip_hash,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::NewUser;

    fn user(conn: &Connection, email: &str, role: Role) -> User {
        accounts::create(
            conn,
            &NewUser {
                email,
                password_hash: Some("x"),
                role,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap()
    }

    const DAY: u64 = 86_400;

    #[test]
    fn deletion_forfeits_the_balance_and_blocks_the_address_until_the_purge() {
        let conn = db::memory();
        let u = user(&conn, "gone@example.com", Role::User);
        wallet::post(&conn, u.id, 750, Kind::Topup, ("", None), "", 10).unwrap();
        let closed = delete_account(&conn, u.id, By::Holder { ip_hash: "h" }, 70, 100).unwrap();
        assert_eq!(closed.forfeited_minor, 750);
        assert_eq!(wallet::balance(&conn, u.id).unwrap(), 0);
        assert!(wallet::check(&conn).unwrap().is_empty());
        let last = &wallet::entries(&conn, u.id, 1, None).unwrap()[0];
        assert_eq!((last.kind.as_str(), last.amount_minor), ("forfeit", -750));
        assert_eq!(accounts::get(&conn, u.id).unwrap().state, State::Deleted);

        let err = claim_email(&conn, "Gone@example.com", 30 * DAY, 100 + DAY as i64).unwrap_err();
        assert!(err.to_string().contains("from 1970-01-31"), "{err}");
        assert_eq!(
            purge_deleted(&conn, 30 * DAY, 100 + 29 * DAY as i64).unwrap(),
            0
        );
        assert_eq!(
            purge_deleted(&conn, 30 * DAY, 100 + 30 * DAY as i64).unwrap(),
            1
        );
        let after = accounts::get(&conn, u.id).unwrap();
        assert_eq!(after.email, placeholder_email(u.id));
        assert_eq!(after.password_hash, None);
        claim_email(&conn, "gone@example.com", 30 * DAY, 100 + 30 * DAY as i64).unwrap();
        assert!(wallet::check(&conn).unwrap().is_empty());
    }

    #[test]
    fn an_expired_cooldown_frees_the_address_before_the_job_runs() {
        let conn = db::memory();
        let u = user(&conn, "back@example.com", Role::User);
        delete_account(&conn, u.id, By::Holder { ip_hash: "" }, 70, 100).unwrap();
        claim_email(&conn, "back@example.com", 10, 111).unwrap();
        assert_eq!(
            accounts::get(&conn, u.id).unwrap().email,
            placeholder_email(u.id)
        );
    }

    #[test]
    fn the_last_admin_cannot_be_deleted() {
        let conn = db::memory();
        let a = user(&conn, "root@example.com", Role::Admin);
        let err = delete_account(&conn, a.id, By::Holder { ip_hash: "" }, 70, 5).unwrap_err();
        assert_eq!(err.code(), "conflict");
        let b = user(&conn, "second@example.com", Role::Admin);
        delete_account(&conn, a.id, By::Holder { ip_hash: "" }, 70, 6).unwrap();
        assert_eq!(accounts::count_admins(&conn).unwrap(), 1);
        let err = delete_account(
            &conn,
            b.id,
            By::Admin(Actor {
                id: b.id,
                ip_hash: "",
            }),
            70,
            7,
        )
        .unwrap_err();
        assert_eq!(err.code(), "conflict");
    }

    #[test]
    fn restriction_switches_once_per_change() {
        let conn = db::memory();
        let u = user(&conn, "quiet@example.com", Role::User);
        assert!(!processing_restricted(&conn, u.id).unwrap());
        assert!(set_restricted(&conn, u.id, true, "", 10).unwrap());
        assert!(!set_restricted(&conn, u.id, true, "", 11).unwrap());
        assert!(processing_restricted(&conn, u.id).unwrap());
        assert!(set_restricted(&conn, u.id, false, "", 12).unwrap());
        assert!(!processing_restricted(&conn, u.id).unwrap());
        let kinds: Vec<String> = requests_for(&conn, u.id, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["unrestrict", "restrict"]);
    }
}

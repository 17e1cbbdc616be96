//! The audit log (admin actions on someone else's data) and the security log (logins,
//! failures, key and second-factor changes), and login throttling computed from the latter.

use rusqlite::{params, Connection, Row};

use crate::clock::Timestamp;
use crate::domain::Result;

pub const LOGIN_OK: &str = "login";
pub const LOGIN_FAILED: &str = "login_failed";
pub const LOGOUT: &str = "logout";
pub const PASSWORD_CHANGED: &str = "password_changed";
pub const PASSWORD_RESET: &str = "password_reset";
/// The password was right; the second factor was asked for.
pub const SECOND_FACTOR_ASKED: &str = "second_factor_asked";
/// A wrong second-factor code (at login or before a change); throttled like a wrong password.
pub const SECOND_FACTOR_FAILED: &str = "second_factor_failed";
pub const TOTP_ENABLED: &str = "totp_enabled";
pub const TOTP_DISABLED: &str = "totp_disabled";
pub const RECOVERY_CODES_REGENERATED: &str = "recovery_codes_regenerated";
pub const RECOVERY_CODE_USED: &str = "recovery_code_used";
pub const API_KEY_CREATED: &str = "api_key_created";
pub const API_KEY_REVOKED: &str = "api_key_revoked";

/// Audit actions of an admin reading someone else's data (changes have their own actions in
/// `domain::trust::admin`).
pub const LEDGER_VIEWED: &str = "ledger_viewed";
pub const OUTBOX_VIEWED: &str = "outbox_viewed";
pub const PAYMENTS_VIEWED: &str = "payments_viewed";
pub const PAYMENT_CHECKED: &str = "payment_checked";
/// An admin turned off someone's second factor.
pub const SECOND_FACTOR_RESET: &str = "second_factor_reset";

/// Who acts: the admin's account id and the keyed hash of their IP address (for the audit
/// log).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: i64,
    pub ip_hash: &'a str,
}

/// Free text an admin attaches (state reason, credit note) is cut to this many characters.
pub const NOTE_MAX: usize = 200;

pub fn audit(
    conn: &Connection,
    actor_id: Option<i64>,
    target_id: Option<i64>,
    action: &str,
    detail: &str,
    ip_hash: &str,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor_id, target_id, action, detail, ip_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![now, actor_id, target_id, action, detail, ip_hash])?;
    Ok(())
}

pub fn security(
    conn: &Connection,
    user_id: Option<i64>,
    kind: &str,
    ip_hash: &str,
    detail: &str,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO security_events (at, user_id, kind, ip_hash, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now, user_id, kind, ip_hash, detail])?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: Timestamp,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: String,
    pub detail: String,
}

/// Which audit rows to list: all, or those on one account (`target`: an account id or a part
/// of its e-mail) and/or of one action.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub target: String,
    pub action: String,
}

/// Above this many accounts matching an e-mail fragment, the audit log is walked newest
/// first and filtered instead of read per account.
const FRAGMENT_ACCOUNTS: usize = 20;

const AUDIT_SELECT: &str = "SELECT a.id, a.at, ua.email, ut.email, a.action, a.detail \
     FROM audit_log a LEFT JOIN users ua ON ua.id = a.actor_id \
     LEFT JOIN users ut ON ut.id = a.target_id";

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        target: r.get(3)?,
        action: r.get(4)?,
        detail: r.get(5)?,
    })
}

/// Audit rows matching `filter`, newest first: `limit` of them older than row `before`
/// (keyset paging). Each filter reads through its own index: the target's rows
/// (`audit_log_target`; an e-mail fragment is first resolved to the accounts it matches),
/// an action's rows (`audit_log_action`), or the whole log by id.
pub fn audit_rows(
    conn: &Connection,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>> {
    let before = before.unwrap_or(i64::MAX);
    let target = filter.target.trim();
    let action = filter.action.trim();
    let targets: Option<Vec<i64>> = if target.is_empty() {
        None
    } else if let Ok(id) = target.parse::<i64>() {
        Some(vec![id])
    } else {
        // An e-mail fragment matches literally: LIKE's wildcards in it are escaped.
        let escaped = target
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM users WHERE email LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT ?2",
        )?;
        let ids: Vec<i64> = stmt
            .query_map(
                params![format!("%{escaped}%"), FRAGMENT_ACCOUNTS as i64 + 1],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        if ids.len() > FRAGMENT_ACCOUNTS {
            // Matches are common: walk the log and keep the rows on matching accounts.
            let mut stmt = conn.prepare_cached(&format!(
                "{AUDIT_SELECT} WHERE a.id < ?1 AND ut.email LIKE ?2 ESCAPE '\\' \
                 AND (?3 = '' OR a.action = ?3) ORDER BY a.id DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![before, format!("%{escaped}%"), action, limit],
                audit_row,
            )?;
            return Ok(rows.collect::<rusqlite::Result<_>>()?);
        }
        Some(ids)
    };
    let mut out: Vec<AuditRow> = Vec::new();
    match targets {
        Some(ids) => {
            let mut stmt = conn.prepare_cached(&format!(
                "{AUDIT_SELECT} WHERE a.target_id = ?1 AND a.id < ?2 \
                 AND (?3 = '' OR a.action = ?3) ORDER BY a.id DESC LIMIT ?4"
            ))?;
            for id in ids {
                for r in stmt.query_map(params![id, before, action, limit], audit_row)? {
                    out.push(r?);
                }
            }
            out.sort_by_key(|r| std::cmp::Reverse(r.id));
            out.truncate(limit.max(0) as usize);
        }
        None if !action.is_empty() => {
            let mut stmt = conn.prepare_cached(&format!(
                "{AUDIT_SELECT} WHERE a.action = ?1 AND a.id < ?2 ORDER BY a.id DESC LIMIT ?3"
            ))?;
            for r in stmt.query_map(params![action, before, limit], audit_row)? {
                out.push(r?);
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(&format!(
                "{AUDIT_SELECT} WHERE a.id < ?1 ORDER BY a.id DESC LIMIT ?2"
            ))?;
            for r in stmt.query_map(params![before, limit], audit_row)? {
                out.push(r?);
            }
        }
    }
    Ok(out)
}

/// Every action that occurs in the audit log, for the filter's choices: one index seek per
/// distinct action (`audit_log_action`), not a walk of the log.
pub fn audit_actions(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE act(a) AS ( \
           SELECT (SELECT MIN(action) FROM audit_log) \
           UNION ALL \
           SELECT (SELECT action FROM audit_log WHERE action > act.a ORDER BY action LIMIT 1) \
           FROM act WHERE act.a IS NOT NULL) \
         SELECT a FROM act WHERE a IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[derive(Debug, Clone)]
pub struct SecurityRow {
    pub id: i64,
    pub at: Timestamp,
    pub kind: String,
    pub detail: String,
    /// Keyed hash of the address it came from ('' when unknown, e.g. the command line).
    pub ip_hash: String,
}

/// A user's own security events, newest first: `limit` of them older than event `before`
/// (keyset paging through `security_events_user_id`).
pub fn security_events_for(
    conn: &Connection,
    user_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SecurityRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, kind, detail, ip_hash FROM security_events WHERE user_id = ?1 \
         AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![user_id, before.unwrap_or(i64::MAX), limit], |r| {
        Ok(SecurityRow {
            id: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            detail: r.get(3)?,
            ip_hash: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Seconds until another login attempt is allowed, or `None` when it is allowed now.
/// Wrong passwords and wrong second-factor codes count alike.
/// An account (or an IP) is throttled once `max` failures fall within `window`; it frees up
/// when the oldest of those leaves the window. A successful login does not reset the count,
/// so an attacker cannot interleave a known account to reset a victim's counter.
pub fn login_retry_after(
    conn: &Connection,
    user_id: Option<i64>,
    ip_hash: &str,
    max_account: u32,
    max_ip: u32,
    window: u64,
    now: Timestamp,
) -> Result<Option<u64>> {
    let since = now - window as i64;
    let nth_recent = |sql: &str, key: &dyn rusqlite::ToSql, n: u32| -> Result<Option<i64>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params![
            key,
            LOGIN_FAILED,
            SECOND_FACTOR_FAILED,
            since,
            n as i64 - 1
        ])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    };
    let mut until: Option<i64> = None;
    if let Some(uid) = user_id {
        if let Some(t) = nth_recent(
            "SELECT at FROM security_events WHERE user_id = ?1 AND kind IN (?2, ?3) \
             AND at > ?4 ORDER BY at DESC LIMIT 1 OFFSET ?5",
            &uid,
            max_account,
        )? {
            until = Some(t + window as i64);
        }
    }
    if !ip_hash.is_empty() {
        if let Some(t) = nth_recent(
            "SELECT at FROM security_events WHERE ip_hash = ?1 AND kind IN (?2, ?3) \
             AND at > ?4 ORDER BY at DESC LIMIT 1 OFFSET ?5",
            &ip_hash,
            max_ip,
        )? {
            until = Some(until.map_or(t + window as i64, |u| u.max(t + window as i64)));
        }
    }
    Ok(until.map(|u| (u - now).max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[test]
    fn throttle_after_max_failures_then_release() {
        let conn = db::memory();
        for t in 0..3 {
            security(&conn, None, LOGIN_FAILED, "ip1", "", 1000 + t).unwrap();
        }
        assert_eq!(
            login_retry_after(&conn, None, "ip1", 5, 4, 60, 1003).unwrap(),
            None
        );
        security(&conn, None, LOGIN_FAILED, "ip1", "", 1003).unwrap();
        // Four failures, the oldest at 1000: free again at 1060.
        assert_eq!(
            login_retry_after(&conn, None, "ip1", 5, 4, 60, 1010).unwrap(),
            Some(50)
        );
        assert_eq!(
            login_retry_after(&conn, None, "ip1", 5, 4, 60, 1061).unwrap(),
            None
        );
        assert_eq!(
            login_retry_after(&conn, None, "ip2", 5, 4, 60, 1010).unwrap(),
            None
        );
    }

    #[test]
    fn wrong_second_factor_codes_count_with_wrong_passwords() {
        let conn = db::memory();
        for (t, kind) in [(1000, LOGIN_FAILED), (1001, SECOND_FACTOR_FAILED)] {
            security(&conn, None, kind, "ip1", "", t).unwrap();
        }
        security(&conn, None, TOTP_ENABLED, "ip1", "", 1002).unwrap();
        assert_eq!(
            login_retry_after(&conn, None, "ip1", 5, 3, 60, 1003).unwrap(),
            None
        );
        security(&conn, None, SECOND_FACTOR_FAILED, "ip1", "", 1003).unwrap();
        assert_eq!(
            login_retry_after(&conn, None, "ip1", 5, 3, 60, 1003).unwrap(),
            Some(57)
        );
    }
}

//! `--history N`: a past the size of a busy install, written in bulk with recursive CTEs
//! (as the query-plan test does) into a stopped server's database, so every workload can be
//! measured with it. Half of the N past activations belong to the demo account (the one the
//! workloads order with), the other half to 1,000 other customers; each has its charge, a
//! refund unless it was completed, and a message if it was. One adjustment per account pays
//! for its completed orders, so every balance still equals its ledger (`otpbox check`).

use std::path::Path;

use rusqlite::params;

use crate::config::DEMO_EMAIL;
use crate::domain::Error;

/// Other customers that own the other half of the history.
const OTHER_ACCOUNTS: i64 = 1000;
/// The history spreads over this many past days (inside the 24-month order retention).
const DAYS: i64 = 600;

/// Adds `n` past activations to the database in `data` (the server stopped; the demo
/// account must exist). Returns the rows written.
pub fn fill(data: &Path, n: u64) -> Result<u64, Error> {
    let mut conn = crate::db::open(data, crate::db::Synchronous::Normal)?;
    // A bulk load: the data directory is thrown away if it is interrupted.
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let demo: i64 = conn
        .query_row("SELECT id FROM users WHERE email = ?1", [DEMO_EMAIL], |r| {
            r.get(0)
        })
        .map_err(|_| Error::Internal("--history: no demo account to fill".into()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let start = now - DAYS * 86_400;
    let span = (DAYS - 10) * 86_400;
    let n = n as i64;
    let numbers = (n / 20).clamp(1, 50_000);
    let tx = conn.transaction()?;
    tx.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1)
         INSERT INTO users (email, role, state, created_at, email_verified_at, age_confirmed_at,
                            aup_accepted_at, balance_minor)
         SELECT 'history-' || x || '@example.com', 'user', 'active', ?2, ?2, ?2, ?2, 0 FROM c",
        params![OTHER_ACCOUNTS, start],
    )?;
    let first_user = tx.last_insert_rowid() - OTHER_ACCOUNTS + 1;
    // Numbers the history was served from; disabled now, so they are never picked.
    tx.execute(
        "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ?1 - 1)
         INSERT INTO numbers (phone, country_id, operator, source, state, created_at,
                              last_used_at)
         SELECT '62877' || (1000000 + x), 6, '', 'manual', 'disabled', ?2, ?2 FROM c",
        params![numbers, start],
    )?;
    let first_number = tx.last_insert_rowid() - numbers + 1;
    let first_activation: i64 = tx.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM activations",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ?1 - 1)
         INSERT INTO activations (user_id, number_id, phone, country_id, service, price_minor,
                                  status, source, created_at, expires_at, ended_at, code_at)
         SELECT CASE WHEN x % 2 = 0 THEN ?2 ELSE ?3 + x % ?4 END, ?5 + x % ?6,
                '62877' || (1000000 + x % ?6), 6, 'tg', 60,
                CASE x % 3 WHEN 0 THEN 'completed' WHEN 1 THEN 'canceled' ELSE 'expired' END,
                'manual', t, t + 1200, t + 600, CASE WHEN x % 3 = 0 THEN t + 60 END
         FROM (SELECT x, ?7 + x * ?8 / ?1 AS t FROM c)",
        params![
            n,
            demo,
            first_user,
            OTHER_ACCOUNTS,
            first_number,
            numbers,
            start,
            span
        ],
    )?;
    let mut rows = n as u64 + OTHER_ACCOUNTS as u64 + numbers as u64;
    rows += tx.execute(
        "INSERT INTO messages (activation_id, sender, text, code, received_at)
         SELECT id, 'Telegram', 'Telegram code: 12345', '12345', code_at FROM activations
         WHERE id >= ?1 AND status = 'completed'",
        [first_activation],
    )? as u64;
    rows += crate::domain::market::wallet::post_past_activations(&tx, first_activation, start)?;
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(rows)
}

//! Voucher codes: the admin creates a batch (amount, expiry); a user redeems a code once,
//! even when several attempts race. Only a keyed hash of each code is stored.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::base::crypto::{random_bytes, Keys};
use crate::domain::market::wallet::{self, Kind};
use crate::domain::{Error, Result};

const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `XXXX-XXXX-XXXX-XXXX` from an alphabet without look-alikes (80 bits).
fn new_code() -> String {
    let bytes: [u8; 16] = random_bytes();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Upper-cases and drops spaces and dashes, so people can type codes loosely.
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Creates `count` vouchers of `amount_minor` valid for `valid_days`; returns the codes (shown
/// once, never stored in clear).
pub fn create_batch(
    conn: &Connection,
    keys: &Keys,
    admin_id: Option<i64>,
    count: u32,
    amount_minor: i64,
    valid_days: u32,
    now: Timestamp,
) -> Result<(String, Vec<String>)> {
    if !(1..=1000).contains(&count) {
        return Err(Error::invalid(
            "Create between 1 and 1000 vouchers at once.",
        ));
    }
    if amount_minor <= 0 {
        return Err(Error::invalid("A voucher must be worth more than zero."));
    }
    if !(1..=3650).contains(&valid_days) {
        return Err(Error::invalid("Validity must be 1 to 3650 days."));
    }
    let batch = format!(
        "B{}",
        crate::domain::base::crypto::random_token(4).to_uppercase()
    );
    let mut codes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let code = new_code();
        let n = normalise(&code);
        conn.execute(
            "INSERT INTO vouchers (code_hash, hint, batch, amount_minor, created_by, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                keys.token_hash(&n),
                &n[n.len() - 4..],
                batch,
                amount_minor,
                admin_id,
                now,
                now + valid_days as i64 * 86_400
            ],
        )?;
        codes.push(code);
    }
    Ok((batch, codes))
}

/// Redeems a code for `user_id`; returns the amount credited.
pub fn redeem(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    code: &str,
    now: Timestamp,
) -> Result<i64> {
    let n = normalise(code);
    // A code of the wrong shape and an unknown one are the same answer: no such voucher.
    if n.len() != 16 {
        return Err(Error::NotFound("voucher"));
    }
    let row: Option<(i64, i64, i64, Option<i64>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, amount_minor, expires_at, redeemed_by FROM vouchers WHERE code_hash = ?1",
        )?;
        let mut rows = stmt.query([keys.token_hash(&n)])?;
        match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            None => None,
        }
    };
    let Some((id, amount, expires_at, redeemed_by)) = row else {
        return Err(Error::NotFound("voucher"));
    };
    if redeemed_by.is_some() {
        return Err(Error::Conflict(
            "This voucher has already been redeemed.".into(),
        ));
    }
    if expires_at <= now {
        return Err(Error::invalid("This voucher has expired."));
    }
    let claimed = conn.execute(
        "UPDATE vouchers SET redeemed_by = ?2, redeemed_at = ?3 WHERE id = ?1 AND redeemed_by IS NULL",
        params![id, user_id, now],
    )?;
    if claimed != 1 {
        return Err(Error::Conflict(
            "This voucher has already been redeemed.".into(),
        ));
    }
    wallet::post(
        conn,
        user_id,
        amount,
        Kind::Voucher,
        ("voucher", Some(id)),
        "",
        now,
    )?;
    Ok(amount)
}

#[derive(Debug, Clone, Serialize)]
pub struct VoucherRow {
    pub id: i64,
    pub hint: String,
    pub batch: String,
    pub amount_minor: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub redeemed_by: Option<String>,
    pub redeemed_at: Option<Timestamp>,
}

pub fn recent(conn: &Connection, limit: i64) -> Result<Vec<VoucherRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.id, v.hint, v.batch, v.amount_minor, v.created_at, v.expires_at, u.email, v.redeemed_at \
         FROM vouchers v LEFT JOIN users u ON u.id = v.redeemed_by ORDER BY v.id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(VoucherRow {
            id: r.get(0)?,
            hint: r.get(1)?,
            batch: r.get(2)?,
            amount_minor: r.get(3)?,
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
            redeemed_by: r.get(6)?,
            redeemed_at: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};

    #[test]
    fn a_voucher_pays_once_and_expires() {
        let conn = db::memory();
        let keys = Keys::from_bytes([5; 32]);
        let u = accounts::create(
            &conn,
            &NewUser {
                email: "v@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap();
        let (_, codes) = create_batch(&conn, &keys, None, 2, 500, 1, 100).unwrap();
        assert_eq!(codes[0].len(), 19);
        assert_eq!(
            redeem(&conn, &keys, u.id, &codes[0].to_lowercase(), 200).unwrap(),
            500
        );
        assert!(matches!(
            redeem(&conn, &keys, u.id, &codes[0], 201),
            Err(Error::Conflict(_))
        ));
        assert!(redeem(&conn, &keys, u.id, &codes[1], 100 + 86_400).is_err());
        assert!(redeem(&conn, &keys, u.id, "AAAA-BBBB-CCCC-DDDD", 200).is_err());
        assert_eq!(wallet::balance(&conn, u.id).unwrap(), 500);
        assert!(wallet::check(&conn).unwrap().is_empty());
    }
}

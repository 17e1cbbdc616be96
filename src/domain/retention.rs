//! Retention: deleting what the privacy page promises to delete, when it promises.

use rusqlite::{params, Connection};

use super::Result;
use crate::clock::Timestamp;

/// Deletes the SMS of activations and rentals that ended more than `retention` seconds
/// ago. Returns how many messages were deleted.
pub fn purge_messages(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    let a = conn.execute(
        "DELETE FROM messages WHERE activation_id IN \
         (SELECT id FROM activations WHERE ended_at IS NOT NULL AND ended_at <= ?1)",
        params![cutoff],
    )?;
    let r = conn.execute(
        "DELETE FROM messages WHERE rental_id IN \
         (SELECT id FROM rentals WHERE ended_at IS NOT NULL AND ended_at <= ?1)",
        params![cutoff],
    )?;
    // De-duplication memory is only needed while a gateway may redeliver.
    conn.execute(
        "DELETE FROM inbound_seen WHERE seen_at <= ?1",
        params![now - 7 * 86_400],
    )?;
    Ok(a + r)
}

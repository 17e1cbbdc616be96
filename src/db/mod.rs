//! Opening SQLite, pragmas, migrations and the write-transaction helper.
//!
//! Every thread that touches the database owns its own [`Connection`] (they are `Send`, not
//! `Sync`). Writes go through [`write`], a short `BEGIN IMMEDIATE` transaction, so a writer
//! never fails half-way with SQLITE_BUSY after reading.

mod shared;
mod vfs;

use std::cell::Cell;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::domain::Error;

pub use shared::{group_commits, share_writes};

/// Forward migrations in order; index + 1 is the schema version they produce.
/// Version 1 is `schema.sql`. A migration is applied in one transaction with its version bump.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema.sql"),
    include_str!("migrations/0002_marketplace.sql"),
    include_str!("migrations/0003_webhooks.sql"),
    include_str!("migrations/0004_supply.sql"),
    include_str!("migrations/0005_retention.sql"),
    include_str!("migrations/0006_lifecycle.sql"),
    include_str!("migrations/0007_totp.sql"),
    include_str!("migrations/0008_abuse.sql"),
    include_str!("migrations/0009_scale.sql"),
    include_str!("migrations/0010_keyset.sql"),
    include_str!("migrations/0011_stock.sql"),
    include_str!("migrations/0012_partners.sql"),
    include_str!("migrations/0013_simbanks.sql"),
    include_str!("migrations/0014_caps.sql"),
    include_str!("migrations/0015_payments.sql"),
    include_str!("migrations/0016_identity.sql"),
    include_str!("migrations/0017_stats.sql"),
    include_str!("migrations/0018_history.sql"),
    include_str!("migrations/0019_admin.sql"),
    include_str!("migrations/0020_job_runs.sql"),
    include_str!("migrations/0021_order_path.sql"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQLite's `synchronous` setting in WAL mode (the `synchronous` setting; README
/// "Durability"). `Normal`: commits are not synced, the WAL is at checkpoints; a power loss
/// may undo the last commits but never corrupts the database. `Full`: every commit is synced
/// before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

impl Synchronous {
    pub fn parse(text: &str) -> Option<Synchronous> {
        match text.trim().to_ascii_lowercase().as_str() {
            "normal" => Some(Synchronous::Normal),
            "full" => Some(Synchronous::Full),
            _ => None,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Opens (creating if needed) the database in `data` and brings its schema up to date.
/// Creates the directory with private permissions.
pub fn open(data: &Path, sync: Synchronous) -> Result<Connection, Error> {
    ensure_private_dir(data)?;
    let conn = connect(&data.join("otpbox.sqlite3"), sync)?;
    migrate(&conn)?;
    Ok(conn)
}

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes `conn` wait up to [`BUSY_TIMEOUT`] for another connection's lock, as SQLite's
/// `busy_timeout` does (the same back-off), except that the thread gives its CPU slot up
/// before it sleeps (`crate::cpu`): a worker or a combiner whose write waits on a backup or
/// a command-line write would otherwise keep a core's worth of requests waiting too.
fn wait_when_busy(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy))
}

/// SQLite's busy-timeout schedule (`sqliteDefaultBusyCallback`): 1, 2, 5, 10, 15, 20, 25, 25,
/// 25, 50, 50 ms, then 100 ms, until the timeout.
fn busy(tries: i32) -> bool {
    let Some(ms) = busy_delay(tries) else {
        return false;
    };
    crate::cpu::give_up();
    std::thread::sleep(Duration::from_millis(ms));
    true
}

/// The sleep before try `tries` + 1, in ms; `None` once [`BUSY_TIMEOUT`] is spent.
fn busy_delay(tries: i32) -> Option<u64> {
    const DELAYS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    let n = usize::try_from(tries).unwrap_or(0);
    let waited: u64 = DELAYS.iter().take(n).sum::<u64>()
        + n.saturating_sub(DELAYS.len()) as u64 * DELAYS[DELAYS.len() - 1];
    let limit = BUSY_TIMEOUT.as_millis() as u64;
    (waited < limit).then(|| DELAYS.get(n).copied().unwrap_or(100).min(limit - waited))
}

/// Opens another connection to an already migrated database (one per worker thread).
pub fn connect(path: &Path, sync: Synchronous) -> Result<Connection, Error> {
    vfs::register();
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    wait_when_busy(&mut conn)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("SQLite refused WAL mode (got {mode}); concurrent access will be slower");
    }
    conn.pragma_update(None, "synchronous", sync.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(128);
    stable_plans(&conn)?;
    Ok(conn)
}

/// The query planner's stability guarantee: a statement's plan never depends on the values
/// bound to it. Without it SQLite re-prepares a cached statement whenever a value its plan
/// looked at changes (`?2 = ''`, a LIKE pattern): measured, every order re-prepared four of
/// its statements, 14 % of the server's time. It also makes the plans the query-plan test
/// sees (`EXPLAIN QUERY PLAN` of the statement text) the plans that run.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// An in-memory database with the full schema (unit tests).
#[cfg(test)]
pub fn memory() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory database");
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    stable_plans(&conn).unwrap();
    migrate(&conn).expect("schema applies");
    conn
}

pub fn migrate(conn: &Connection) -> Result<(), Error> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::Internal(format!(
            "database schema version {current} is newer than this otpbox ({SCHEMA_VERSION}); \
             refusing to downgrade"
        )));
    }
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    // A migration may rebuild a table (SQLite cannot change a CHECK in place): foreign keys
    // are off while they run, as SQLite's own procedure for that says, and are checked before
    // each commit. The pragma has no effect inside a transaction, so it is set around them.
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = run_migrations(conn, current);
    conn.pragma_update(None, "foreign_keys", if fk { "ON" } else { "OFF" })?;
    result
}

fn run_migrations(conn: &Connection, current: i64) -> Result<(), Error> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = (|| -> Result<(), String> {
            conn.execute_batch(sql).map_err(|e| e.to_string())?;
            let broken: i64 = conn
                .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .map_err(|e| e.to_string())?;
            if broken > 0 {
                return Err(format!("{broken} rows break a foreign key"));
            }
            conn.execute_batch(&format!("PRAGMA user_version = {version}"))
                .map_err(|e| e.to_string())
        })();
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::Internal(format!(
                    "migration to version {version}: {e}"
                )));
            }
        }
        log::info!("database schema at version {version}");
    }
    Ok(())
}

/// The writers of this process take turns here before SQLite's write lock when they write
/// through their own connections (command-line commands, tests). SQLite's busy handler waits
/// by sleeping (1, 2, 5, 10, … ms) and polling, so two workers contending for the lock spent
/// much of their time asleep with the lock free; a mutex hands it over the moment it is
/// released. Other processes (the command line) still meet the busy timeout.
static WRITER: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread is inside a write already (a nested `write` must not wait for itself: it
    /// runs in a savepoint, [`nested`]).
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` in a write transaction; its changes are committed when it returns `Ok` and taken
/// back when it returns `Err` or panics (the panic then continues in the caller).
///
/// In a server (after [`share_writes`]) every write goes through the one shared connection
/// and may share a transaction with the writes queued beside it ([`Shared`]); `conn` is then
/// only used to find it. Elsewhere `f` runs in a `BEGIN IMMEDIATE` transaction of `conn`,
/// after the writers of this process that came first.
pub fn write<T: Send>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    if WRITING.with(Cell::get) {
        return nested(conn, f);
    }
    if let Some(shared) = shared::shared_for(conn) {
        return shared.write(f);
    }
    let _turn = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let _writing = Writing::start();
    write_locked(conn, f)
}

/// [`write`] for a write that makes every check before its first change: it fails (returns
/// `Err` or panics) only before changing anything, and may run again. In a server such a
/// write shares a transaction without a savepoint, which otherwise copies every page it
/// touches; should it break the promise and fail after a change, the shared transaction is
/// taken back, it gets its own error, and the prechecked writes before it run again (so `f`
/// may run more than once; only its last run counts). Everything else is as for [`write`].
pub fn write_prechecked<T: Send>(
    conn: &Connection,
    f: impl Fn(&Connection) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    if !WRITING.with(Cell::get) {
        if let Some(shared) = shared::shared_for(conn) {
            return shared.write_prechecked(f);
        }
    }
    write(conn, f)
}

/// Sets [`WRITING`] for a write and clears it when the write ends, even by a panic.
struct Writing;

impl Writing {
    fn start() -> Writing {
        WRITING.with(|w| w.set(true));
        Writing
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

/// A write inside a write of the same thread: a savepoint of `conn`, which joins the outer
/// transaction when `conn` is its connection.
fn nested<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    conn.execute_batch("SAVEPOINT nested")?;
    let outcome = f(conn).and_then(|value| {
        conn.execute_batch("RELEASE nested")?;
        Ok(value)
    });
    if outcome.is_err() {
        // Whatever failed, the nested write's changes go (the outer write may go on).
        let _ = conn.execute_batch("ROLLBACK TO nested");
        let _ = conn.execute_batch("RELEASE nested");
    }
    outcome
}

fn write_locked<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Creates `dir` (and its parents) with mode 0700, or tightens an existing one to it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
    } else if let Ok(meta) = std::fs::metadata(dir) {
        if meta.permissions().mode() & 0o077 != 0 {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    Ok(())
}

/// `PRAGMA integrity_check` and `foreign_key_check`; returns the problems found.
pub fn integrity_problems(conn: &Connection) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(format!("integrity: {row}"));
        }
    }
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "foreign key: table {} row {:?} refers to missing {}",
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, String>(2)?
        ))
    })?;
    for row in rows {
        problems.push(row?);
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_backs_off_like_sqlite_for_the_whole_timeout() {
        let delays: Vec<u64> = (0..).map_while(busy_delay).collect();
        assert_eq!(delays[..4], [1, 2, 5, 10]);
        assert_eq!(delays.iter().sum::<u64>(), BUSY_TIMEOUT.as_millis() as u64);
        assert_eq!(busy_delay(i32::MAX), None);
        assert_eq!(busy_delay(-1), Some(1));
    }

    #[test]
    fn a_write_waits_for_another_connections_lock_and_then_goes_through() {
        let dir = std::env::temp_dir().join(format!("otpbox-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busy.sqlite3");
        let a = connect(&path, Synchronous::Normal).unwrap();
        a.execute_batch(
            "CREATE TABLE IF NOT EXISTS t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)",
        )
        .unwrap();
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || {
                let b = connect(&path, Synchronous::Normal).unwrap();
                b.execute("INSERT INTO t VALUES (2)", []).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        a.execute_batch("COMMIT").unwrap();
        waiter.join().unwrap();
        let n: i64 = a
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        drop(a);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn schema_applies_and_records_version() {
        let conn = memory();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert!(integrity_problems(&conn).unwrap().is_empty());
    }

    #[test]
    fn newer_database_is_refused() {
        let conn = memory();
        conn.execute_batch("PRAGMA user_version = 999").unwrap();
        assert!(migrate(&conn).is_err());
    }

    #[test]
    fn write_rolls_back_on_error() {
        let conn = memory();
        let r: Result<(), Error> = write(&conn, |tx| {
            tx.execute(
                "INSERT INTO outbox (to_addr, subject, body, created_at) VALUES ('a','b','c',1)",
                [],
            )?;
            Err(Error::Internal("boom".into()))
        });
        assert!(r.is_err());
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// A write inside a write joins it: its failure takes back only its own changes.
    #[test]
    fn a_nested_write_is_a_savepoint_of_the_outer_one() {
        let conn = memory();
        let insert = |tx: &Connection, subject: &str| {
            tx.execute(
                "INSERT INTO outbox (to_addr, subject, body, created_at) VALUES ('a', ?1, '', 1)",
                [subject],
            )
        };
        write(&conn, |tx| {
            insert(tx, "outer")?;
            let inner: Result<(), Error> = write(tx, |tx| {
                insert(tx, "taken back")?;
                Err(Error::Internal("inner".into()))
            });
            assert!(inner.is_err());
            write(tx, |tx| Ok(insert(tx, "kept")?))?;
            Ok(())
        })
        .unwrap();
        let subjects: Vec<String> = conn
            .prepare("SELECT subject FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(subjects, ["outer", "kept"]);
    }
}

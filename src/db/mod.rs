//! Opening SQLite, pragmas, migrations and the write-transaction helper.
//!
//! Every thread that touches the database owns its own [`Connection`] (they are `Send`, not
//! `Sync`). Writes go through [`write`], a short `BEGIN IMMEDIATE` transaction, so a writer
//! never fails half-way with SQLITE_BUSY after reading.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::domain::Error;

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

/// Opens another connection to an already migrated database (one per worker thread).
pub fn connect(path: &Path, sync: Synchronous) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
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
    /// This thread is inside a write already (a nested `write` must not wait for itself).
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` in a write transaction; its changes are committed when it returns `Ok` and taken
/// back when it returns `Err` or panics (the panic then continues in the caller).
///
/// In a server (after [`share_writes`]) every write goes through the one shared connection
/// and may share a transaction with the writes queued beside it ([`Shared`]); `conn` is then
/// only used to find it. Elsewhere `f` runs in a `BEGIN IMMEDIATE` transaction of `conn`,
/// after the writers of this process that came first.
pub fn write<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    if WRITING.with(Cell::get) {
        return write_locked(conn, f);
    }
    if let Some(shared) = shared_for(conn) {
        return shared.write(f);
    }
    let _turn = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let _writing = Writing::start();
    write_locked(conn, f)
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

fn write_locked<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// The shared write connections of this process, one per database a server serves.
static SHARED: RwLock<Vec<Arc<Shared>>> = RwLock::new(Vec::new());

/// Makes `conn` the connection every [`write`] to its database goes through from now on
/// (`otpbox serve`, once its database is migrated).
pub fn share_writes(conn: Connection) -> Result<(), Error> {
    let path = conn
        .path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::Internal("only a database file can share its writes".into()))?
        .to_owned();
    let shared = Arc::new(Shared {
        path,
        state: Mutex::new(Batch {
            conn,
            open: false,
            members: 0,
            started: Instant::now(),
            end: Arc::new(OnceLock::new()),
        }),
        ended: Condvar::new(),
        queued: AtomicUsize::new(0),
        commits: AtomicU64::new(0),
        writes: AtomicU64::new(0),
    });
    let mut list = SHARED.write().unwrap_or_else(|p| p.into_inner());
    list.retain(|s| s.path != shared.path);
    list.push(shared);
    Ok(())
}

/// Transactions committed through the shared connection of `conn`'s database and the writes
/// they held (`None` when its writes are not shared).
pub fn group_commits(conn: &Connection) -> Option<(u64, u64)> {
    shared_for(conn).map(|s| {
        (
            s.commits.load(Ordering::Relaxed),
            s.writes.load(Ordering::Relaxed),
        )
    })
}

fn shared_for(conn: &Connection) -> Option<Arc<Shared>> {
    let list = SHARED.read().unwrap_or_else(|p| p.into_inner());
    if list.is_empty() {
        return None;
    }
    let path = conn.path()?;
    list.iter().find(|s| s.path == path).cloned()
}

/// How many writes one transaction may hold, and for how long the first of them may wait for
/// its commit while later ones join: the bounds on the latency group commit adds.
const BATCH_MAX: usize = 64;
const BATCH_HOLD: Duration = Duration::from_millis(4);

/// One write connection shared by every thread of the server, with group commit.
///
/// A writer that finds a transaction open joins it instead of waiting for a transaction of
/// its own: it runs its write in a savepoint (so a write that fails takes back only its own
/// changes), and then either commits for everyone in the transaction, when no other writer is
/// queued (or the batch reached [`BATCH_MAX`] or [`BATCH_HOLD`]), or leaves the transaction
/// open to the next writer in line and waits for its commit. Nobody's write is acknowledged
/// before the commit that holds it. What it saves, measured on order→cancel: one commit
/// writes each page a batch touched once (an order's rows share most of their index pages
/// with the orders beside it), and the connection's page cache stays warm, where a
/// connection whose database another connection has changed drops its whole cache.
pub struct Shared {
    path: String,
    state: Mutex<Batch>,
    /// Signalled when a batch ends.
    ended: Condvar,
    /// Writers waiting for `state`; while one is, the transaction stays open for it.
    queued: AtomicUsize,
    /// Transactions committed, and the writes they held.
    commits: AtomicU64,
    writes: AtomicU64,
}

/// The shared connection and the transaction it is filling.
struct Batch {
    conn: Connection,
    open: bool,
    /// Writes that ran in the open transaction.
    members: usize,
    started: Instant,
    /// How the open transaction ended: `Ok` committed, `Err` SQLite's message.
    end: Arc<OnceLock<Result<(), String>>>,
}

impl Batch {
    fn run(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Ends the open transaction for everyone in it.
    fn commit(&mut self) {
        let outcome = self.run("COMMIT").map_err(|e| e.to_string());
        if outcome.is_err() {
            let _ = self.run("ROLLBACK");
        }
        self.open = false;
        let _ = self.end.set(outcome);
    }
}

impl Shared {
    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if !b.open {
            b.run("BEGIN IMMEDIATE")?;
            b.open = true;
            b.members = 0;
            b.started = Instant::now();
            b.end = Arc::new(OnceLock::new());
        }
        // The first write of a transaction needs no savepoint: if it fails, the whole
        // transaction is taken back, with nothing else in it.
        let first = b.members == 0;
        if !first {
            if let Err(e) = b.run("SAVEPOINT write") {
                let _ = self.leave(b, false);
                return Err(e.into());
            }
        }
        let outcome = {
            let _writing = Writing::start();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&b.conn)))
        };
        let ok = matches!(outcome, Ok(Ok(_)));
        let committed = if first && !ok {
            let _ = b.run("ROLLBACK");
            b.open = false;
            Ok(())
        } else {
            let kept = if first || (ok && b.run("RELEASE write").is_ok()) {
                true
            } else {
                let _ = b.run("ROLLBACK TO write");
                let _ = b.run("RELEASE write");
                false
            };
            b.members += 1;
            let committed = self.leave(b, kept);
            if ok && !kept {
                Err(Error::Internal("a write could not be released".into()))
            } else {
                committed
            }
        };
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(Err(e)) => Err(e),
            Ok(Ok(value)) => committed.map(|()| value),
        }
    }

    /// After a write ran in the open transaction: commits it when nobody else is in line (or
    /// it is big or old enough), else leaves it to the next writer. A write that was kept
    /// waits for the commit and fails with it.
    fn leave(&self, mut b: MutexGuard<'_, Batch>, kept: bool) -> Result<(), Error> {
        let end = b.end.clone();
        if self.queued.load(Ordering::SeqCst) == 0
            || b.members >= BATCH_MAX
            || b.started.elapsed() >= BATCH_HOLD
        {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(b.members as u64, Ordering::Relaxed);
            b.commit();
            drop(b);
            self.ended.notify_all();
        } else if kept {
            while end.get().is_none() {
                b = self.ended.wait(b).unwrap_or_else(|p| p.into_inner());
            }
        }
        match end.get() {
            Some(Err(e)) if kept => Err(Error::Internal(format!("commit failed: {e}"))),
            _ => Ok(()),
        }
    }
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
        let mut conn = memory();
        let r: Result<(), Error> = write(&mut conn, |tx| {
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

    /// Writes through the shared connection from many threads at once: every write that
    /// returned `Ok` is committed (another connection sees it at once), a write that fails or
    /// panics takes back only its own changes (the panic continues in its caller), and writes
    /// did share transactions.
    #[test]
    fn shared_writes_commit_together_and_fail_alone() {
        let dir = std::env::temp_dir().join(format!(
            "otpbox-group-commit-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let path = dir.join("otpbox.sqlite3");
        open(&dir, Synchronous::Normal).unwrap();
        share_writes(connect(&path, Synchronous::Normal).unwrap()).unwrap();
        let insert = |tx: &Connection, subject: &str| {
            tx.execute(
                "INSERT INTO outbox (to_addr, subject, body, created_at) VALUES ('a', ?1, '', 1)",
                [subject],
            )
        };
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut conn = connect(&path, Synchronous::Normal).unwrap();
                    let mut kept = 0;
                    for i in 0..300 {
                        let subject = format!("{t}-{i}");
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            write(&mut conn, |tx| {
                                insert(tx, &subject)?;
                                match i % 10 {
                                    3 => Err(Error::Internal("refused".into())),
                                    7 => panic!("a write panics"),
                                    _ => Ok(()),
                                }
                            })
                        }));
                        let seen: i64 = conn
                            .query_row(
                                "SELECT COUNT(*) FROM outbox WHERE subject = ?1",
                                [&subject],
                                |r| r.get(0),
                            )
                            .unwrap();
                        match i % 10 {
                            3 => assert!(matches!(r, Ok(Err(Error::Internal(_))))),
                            7 => assert!(r.is_err(), "the panic reaches its caller"),
                            _ => {
                                assert!(matches!(r, Ok(Ok(()))));
                                kept += 1;
                            }
                        }
                        assert_eq!(seen, i64::from(!matches!(i % 10, 3 | 7)), "{subject}");
                    }
                    kept
                })
            })
            .collect();
        let kept: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let conn = connect(&path, Synchronous::Normal).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!((rows, kept), (8 * 240, 8 * 240));
        let (commits, writes) = group_commits(&conn).unwrap();
        // A failed write counts when it ran inside a transaction others committed.
        assert!((8 * 240..=8 * 300).contains(&writes), "{writes} writes");
        assert!(commits < writes, "{commits} commits for {writes} writes");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

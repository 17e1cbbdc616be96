//! Backups and restore: an online copy of the database with SQLite's backup API while the
//! server keeps serving, together with `secret.key`, verified before it counts; and the
//! restore that puts such a set in place of a stopped server's data.
//!
//! A backup set is one directory `otpbox-YYYYmmddTHHMMSSZ` (mode 0700) holding
//! `otpbox.sqlite3` and `secret.key` (mode 0600). It counts only once the copy passed
//! SQLite's integrity check and the ledger checks of `otpbox check`; a set that fails them is
//! removed and reported as an error. The scheduled `backup` job and `otpbox backup` record
//! each attempt as a run of the job (`/admin/jobs` shows its time, size and verdict).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::config::Config;
use crate::domain::{market::catalogue, market::wallet, supply::payouts, Error};

/// The database file's name inside a data directory and inside a backup set.
pub const DB_FILE: &str = "otpbox.sqlite3";
pub const KEY_FILE: &str = "secret.key";
const SET_PREFIX: &str = "otpbox-";
/// The lock a serving process holds (shared) on its data directory; restore takes it
/// exclusively, so it never replaces a database under a running server.
const LOCK_FILE: &str = "otpbox.lock";

/// A verified backup set.
#[derive(Debug)]
pub struct Made {
    pub dir: PathBuf,
    /// Database and key, in bytes.
    pub bytes: u64,
    /// Older sets removed to keep `backup_keep`.
    pub pruned: usize,
}

impl Made {
    pub fn summary(&self) -> String {
        format!(
            "{} ({} bytes), verified: integrity and ledger checks passed{}",
            self.dir.display(),
            self.bytes,
            if self.pruned > 0 {
                format!("; {} older set(s) removed", self.pruned)
            } else {
                String::new()
            }
        )
    }
}

/// Where backups go: `backup_dir`, or `DATA/backups`.
pub fn dir_of(config: &Config) -> PathBuf {
    if config.backup_dir.as_os_str().is_empty() {
        config.data.join("backups")
    } else {
        config.backup_dir.clone()
    }
}

/// Takes a backup of `config`'s database into a new set under `to`, verifies it, and keeps
/// the newest `keep` sets there (0 = keep all). `now` names the set.
pub fn make(config: &Config, to: &Path, keep: usize, now: i64) -> Result<Made, Error> {
    let source = config.db_path();
    if !source.exists() {
        return Err(Error::invalid(format!(
            "no database in {} (wrong --data?)",
            config.data.display()
        )));
    }
    private_dir(to)?;
    let stamp = stamp(now);
    let mut dir = to.join(format!("{SET_PREFIX}{stamp}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = to.join(format!("{SET_PREFIX}{stamp}-{n}"));
    }
    // Built under a name no listing counts, and named only once verified: a set cut short
    // (a crash, a stop) is never taken for a backup, nor makes pruning drop a good one.
    let partial = to.join(format!(
        ".partial-{}",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_dir_all(&partial);
    private_dir(&partial)?;
    let made = copy_and_verify(config, &source, &partial);
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&partial);
        return Err(e);
    }
    let bytes = made?;
    fs::rename(&partial, &dir).map_err(|e| io_error(&dir, e))?;
    let pruned = prune(to, keep)?;
    Ok(Made { dir, bytes, pruned })
}

fn copy_and_verify(config: &Config, source: &Path, dir: &Path) -> Result<u64, Error> {
    let db_copy = dir.join(DB_FILE);
    {
        let src = Connection::open_with_flags(
            source,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        src.busy_timeout(crate::db::BUSY_TIMEOUT)?;
        let mut dst = Connection::open(&db_copy)?;
        set_mode(&db_copy, 0o600)?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // All pages in one step: one read transaction, so the copy is one consistent moment
        // however busy the server is (a step-by-step copy restarts whenever it writes).
        let deadline = std::time::Instant::now() + crate::db::BUSY_TIMEOUT;
        loop {
            use rusqlite::backup::StepResult;
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if std::time::Instant::now() > deadline => {
                    return Err(Error::Internal(
                        "the database stayed locked; no backup taken".into(),
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    let key = config.data.join(KEY_FILE);
    let key_copy = dir.join(KEY_FILE);
    fs::copy(&key, &key_copy).map_err(|e| io_error(&key, e))?;
    set_mode(&key_copy, 0o600)?;
    let problems = verify(&db_copy, config.reuse_cooldown)?;
    if !problems.is_empty() {
        return Err(Error::Internal(format!(
            "the copy failed its checks: {}",
            problems.join("; ")
        )));
    }
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(size(&db_copy) + size(&key_copy))
}

/// The problems `otpbox check` looks for, in the database at `path`: SQLite's integrity and
/// foreign-key checks, every balance against its ledger, payouts, stock counters.
pub fn verify(path: &Path, reuse_cooldown: u64) -> Result<Vec<String>, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    problems(&conn, reuse_cooldown)
}

/// See [`verify`].
pub fn problems(conn: &Connection, reuse_cooldown: u64) -> Result<Vec<String>, Error> {
    let mut problems = crate::db::integrity_problems(conn)?;
    if problems.iter().any(|p| p.starts_with("integrity: ")) {
        return Ok(problems);
    }
    problems.extend(wallet::check(conn)?);
    problems.extend(crate::domain::market::payments::check(conn)?);
    problems.extend(payouts::check(conn)?);
    let now = crate::clock::Clock::system().now();
    problems.extend(catalogue::check_stock(conn, reuse_cooldown, now)?);
    Ok(problems)
}

/// Removes the oldest sets beyond `keep` (0 = keep all); returns how many went.
fn prune(to: &Path, keep: usize) -> Result<usize, Error> {
    if keep == 0 {
        return Ok(0);
    }
    let mut sets: Vec<PathBuf> = fs::read_dir(to)
        .map_err(|e| io_error(to, e))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(SET_PREFIX))
        .filter(|e| e.path().join(DB_FILE).exists())
        .map(|e| e.path())
        .collect();
    // The names sort by time.
    sets.sort();
    let extra = sets.len().saturating_sub(keep);
    for old in &sets[..extra] {
        fs::remove_dir_all(old).map_err(|e| io_error(old, e))?;
    }
    Ok(extra)
}

/// Takes the data directory's lock, shared: any number of servers, no restore meanwhile.
/// The returned file holds it until dropped (the server keeps it for its lifetime).
pub fn hold_data_dir(data: &Path) -> Result<fs::File, Error> {
    lock(data, libc::LOCK_SH)?.ok_or_else(|| {
        Error::invalid(format!(
            "a restore is in progress on {}; try again when it is done",
            data.display()
        ))
    })
}

fn lock(data: &Path, how: libc::c_int) -> Result<Option<fs::File>, Error> {
    use std::os::unix::io::AsRawFd;
    let path = data.join(LOCK_FILE);
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    // SAFETY: flock on a descriptor we own; the lock goes with the file.
    let rc = unsafe { libc::flock(f.as_raw_fd(), how | libc::LOCK_NB) };
    Ok((rc == 0).then_some(f))
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the database and key that were in place went (none on an empty directory).
    pub kept_aside: Vec<PathBuf>,
}

/// Puts the backup set `from` (its directory, or its database file with `secret.key`
/// beside it) in place in `data`: refuses while a server holds `data`, verifies the backup
/// first, renames what is there (never deletes it), then copies the set in.
pub fn restore(from: &Path, data: &Path, reuse_cooldown: u64, now: i64) -> Result<Restored, Error> {
    let set = if from.is_dir() {
        from.to_path_buf()
    } else {
        from.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let db = if from.is_dir() {
        from.join(DB_FILE)
    } else {
        from.to_path_buf()
    };
    let key = set.join(KEY_FILE);
    for f in [&db, &key] {
        if !f.is_file() {
            return Err(Error::invalid(format!(
                "{} is not there: a backup set holds {DB_FILE} and {KEY_FILE}",
                f.display()
            )));
        }
    }
    let problems = verify(&db, reuse_cooldown)?;
    if !problems.is_empty() {
        return Err(Error::invalid(format!(
            "the backup fails its checks, nothing was changed: {}",
            problems.join("; ")
        )));
    }
    private_dir(data)?;
    let _lock = lock(data, libc::LOCK_EX)?.ok_or_else(|| {
        Error::invalid(format!(
            "an otpbox server is running on {}: stop it first, nothing was changed",
            data.display()
        ))
    })?;
    let stamp = stamp(now);
    // 1. The set goes in beside the live files under temporary names, synced to disk: a
    //    failure here (a full disk) changes nothing in place.
    let staged = [
        (
            db.clone(),
            data.join(format!("{DB_FILE}.restoring")),
            DB_FILE,
        ),
        (
            key.clone(),
            data.join(format!("{KEY_FILE}.restoring")),
            KEY_FILE,
        ),
    ];
    let staging = staged.iter().try_for_each(|(from, tmp, _)| {
        fs::copy(from, tmp).map_err(|e| io_error(from, e))?;
        set_mode(tmp, 0o600)?;
        fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(tmp, e))
    });
    if let Err(e) = staging {
        for (_, tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(e);
    }
    // 2. What is in place moves, whole (the database with its WAL), into its own directory,
    //    never over an earlier one.
    let mut aside = data.join(format!("replaced-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = data.join(format!("replaced-{stamp}-{n}"));
    }
    let mut kept_aside = Vec::new();
    for name in [
        DB_FILE.to_string(),
        format!("{DB_FILE}-wal"),
        format!("{DB_FILE}-shm"),
        KEY_FILE.to_string(),
    ] {
        let here = data.join(&name);
        if here.exists() {
            if kept_aside.is_empty() {
                private_dir(&aside)?;
            }
            let to = aside.join(&name);
            fs::rename(&here, &to).map_err(|e| io_error(&here, e))?;
            kept_aside.push(to);
        }
    }
    // 3. The staged files take their names (renames within one directory).
    for (_, tmp, name) in &staged {
        let to = data.join(name);
        fs::rename(tmp, &to).map_err(|e| {
            io_error(
                tmp,
                std::io::Error::other(format!("{e}; what was in place is in {}", aside.display())),
            )
        })?;
    }
    Ok(Restored { kept_aside })
}

/// `now` as the name part of a set or of what a restore put aside: `20261207T023000Z`.
fn stamp(now: i64) -> String {
    chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

fn private_dir(dir: &Path) -> Result<(), Error> {
    crate::db::ensure_private_dir(dir)?;
    set_mode(dir, 0o700)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{}: {e}", path.display()))
}

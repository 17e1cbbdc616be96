//! The SQLite VFS otpbox opens every database through: the platform's own, except that a
//! write-ahead log's writes are gathered and reach the file in a few `pwrite`s per commit (64 KiB each).
//!
//! SQLite writes each WAL frame as two system calls, its 24-byte header and then its page,
//! and an order writes 20 to 30 frames: in the bench those ~100 `pwrite`s per order were a
//! sixth of the server's CPU, most of it the kernel's cost per call (and per partly written
//! page of the file's cache) rather than per byte, all of it while the single writer held
//! the database.
//!
//! Invariant (what keeps this invisible to SQLite and to readers): the bytes gathered always
//! reach the file before anything could look for them, and never after the transaction
//! that wrote them. They are written out
//! - right after the page of a commit frame (its header's "database size after commit"
//!   field, bytes 4..8, is not zero: the WAL file format), which SQLite writes before it
//!   publishes the commit in the wal-index, where readers (other connections, other
//!   processes) learn of the frames; so a commit is in the file before any reader can see
//!   it and before COMMIT returns, exactly as without gathering;
//! - when a write does not continue them (a new WAL header, a frame rewritten in place); a
//!   frame header rewritten in place (`walRewriteChecksums`, which ends a commit with one)
//!   goes straight to the file;
//! - before the same file is read, sized, truncated, synced, mapped, locked or closed, or
//!   receives a file control;
//! - before the database file releases the WAL's write lock (a transaction that spilled
//!   frames and rolled back leaves them gathered; the next writer, maybe another process,
//!   writes over that part of the file), or takes or releases a lock of its own (leaving
//!   `locking_mode=EXCLUSIVE`, where the write lock is never released);
//! - when they pass [`GATHER_MAX`] (a transaction too big for the page cache).
//!
//! Nothing is gathered for a WAL whose database file does not report powersafe overwrites (SQLite then
//! pads commits to a sector with a sync inside a frame) or whose database file is not open
//! through this VFS. A failed write-out is SQLite's I/O write error from the call that caused
//! it, so SQLite abandons the whole transaction, whose frames no reader will ever see. Every
//! other file (the database, journals, temporary files) passes straight through; the
//! database file's shared-memory locking is watched for the write lock only.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, Once};

use rusqlite::ffi;

/// The VFS's name (`sqlite3_vfs_find`).
pub const NAME: &std::ffi::CStr = c"otpbox";

/// Gathered bytes written out at once past this size.
const GATHER_MAX: usize = 1 << 20;
/// The most one call writes: the unix VFS writes at most 128 KiB - 1 per call (it masks the
/// length with 0x1ffff, SQLite itself never asking for more), and reports a shorter write as
/// a full disk.
const CHUNK: usize = 64 << 10;
/// Capacity a WAL file keeps between commits; a bigger buffer is given back once written.
const KEEP: usize = 256 << 10;

/// Registers the VFS as SQLite's default, once per process.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the built-in default VFS, which lives for
        // the process; the copy and its name are leaked, so they outlive every connection.
        unsafe {
            let real = ffi::sqlite3_vfs_find(std::ptr::null());
            if real.is_null() {
                log::error!("SQLite has no default VFS; writes go through it ungathered");
                return;
            }
            REAL.store(real, Ordering::Release);
            let mut vfs: ffi::sqlite3_vfs = *real;
            vfs.zName = NAME.as_ptr();
            vfs.pNext = std::ptr::null_mut();
            vfs.szOsFile = c_int::try_from(real_offset()).unwrap_or(0) + (*real).szOsFile;
            vfs.xOpen = Some(open);
            let vfs = Box::leak(Box::new(vfs));
            let rc = ffi::sqlite3_vfs_register(vfs, 1);
            if rc != ffi::SQLITE_OK {
                log::error!("cannot register the otpbox VFS (SQLite error {rc})");
            }
        }
    });
}

/// The platform's VFS, set once by [`register`] before any file is opened through ours.
static REAL: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

/// The open main database files, by the name pointer SQLite opened them with, so a WAL file
/// finds its database's (`sqlite3_filename_database` gives the same pointer).
static MAINS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Our file: SQLite's header (our methods), then the platform's file at [`real_offset`].
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// Gathered WAL bytes; null for any other file.
    gather: *mut Gather,
    /// A main database file: its WAL file while both are open and the WAL gathers. A WAL
    /// file: its main database file. Both belong to one connection, so one thread at a time.
    peer: *mut File,
}

struct Gather {
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: i64,
    /// File offset just past the last write (-1: unknown, after a failed write-out).
    end: i64,
    /// The last write was a commit frame's header: write out after its page.
    commit_next: bool,
}

fn real_offset() -> usize {
    std::mem::size_of::<File>().next_multiple_of(16)
}

/// The platform's file inside ours.
unsafe fn real(f: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: SQLite allocated szOsFile bytes for `f`: ours, then the platform's.
    unsafe { (f as *mut u8).add(real_offset()) as *mut ffi::sqlite3_file }
}

unsafe fn methods(r: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an open platform file has its methods, which live for the process.
    unsafe { &*(*r).pMethods }
}

fn mains() -> std::sync::MutexGuard<'static, Vec<(usize, usize)>> {
    MAINS.lock().unwrap_or_else(|p| p.into_inner())
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: REAL was set before our VFS was registered; `f` has room for both files; a
    // WAL's name is one SQLite gives its VFS, as sqlite3_filename_database requires.
    unsafe {
        let this = f as *mut File;
        (*this).base.pMethods = std::ptr::null();
        (*this).gather = std::ptr::null_mut();
        (*this).peer = std::ptr::null_mut();
        let r = real(f);
        let vfs = REAL.load(Ordering::Acquire);
        let Some(open) = (*vfs).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = open(vfs, name, r, flags, out_flags);
        if (*r).pMethods.is_null() {
            return rc;
        }
        let m = methods(r);
        let shared_memory = m.iVersion >= 3 && m.xShmMap.is_some();
        (*this).base.pMethods = if shared_memory { &METHODS } else { &PLAIN };
        if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 && !name.is_null() {
            mains().push((name as usize, this as usize));
        }
        // Gathered only where SQLite never pads a commit out to a sector (it does so, with
        // a sync in the middle of a frame, when overwrites are not "powersafe"), and only
        // while the database's file (which has the shared memory; a WAL file has none) can
        // write it out when the write lock goes.
        if flags & ffi::SQLITE_OPEN_WAL != 0 && !name.is_null() {
            let db = ffi::sqlite3_filename_database(name) as usize;
            let main = mains().iter().find(|(n, _)| *n == db).map(|(_, f)| *f);
            // SQLite asks the database file (a `psow=0` URI reaches only it).
            let powersafe = |main: *mut File| {
                let rm = real(main as *mut ffi::sqlite3_file);
                methods(rm)
                    .xDeviceCharacteristics
                    .is_some_and(|dc| dc(rm) & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0)
            };
            if let Some(main) = main.map(|m| m as *mut File).filter(|m| powersafe(*m)) {
                (*this).gather = Box::into_raw(Box::new(Gather {
                    buf: Vec::new(),
                    at: 0,
                    end: -1,
                    commit_next: false,
                }));
                (*this).peer = main;
                (*main).peer = this;
            }
        }
        rc
    }
}

/// Writes out what `f` gathered. SQLITE_OK, or SQLITE_IOERR_WRITE: never "disk full",
/// which SQLite may answer by undoing only the statement, when the bytes lost may be frames
/// an earlier statement of the transaction spilled.
unsafe fn write_out(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `f` is one of our open files.
    unsafe {
        let g = (*(f as *mut File)).gather;
        if g.is_null() || (*g).buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let g = &mut *g;
        let r = real(f);
        let Some(write) = methods(r).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut done = 0;
        while done < g.buf.len() && rc == ffi::SQLITE_OK {
            let n = (g.buf.len() - done).min(CHUNK);
            rc = write(
                r,
                g.buf[done..].as_ptr() as *const c_void,
                n as c_int,
                g.at + done as i64,
            );
            done += n;
        }
        g.buf.clear();
        g.commit_next = false;
        if g.buf.capacity() > KEEP {
            g.buf.shrink_to(KEEP);
        }
        if rc != ffi::SQLITE_OK {
            g.end = -1;
            return ffi::SQLITE_IOERR_WRITE;
        }
        WRITE_OUTS.fetch_add(1, Ordering::Relaxed);
        rc
    }
}

/// Write-outs so far, in this process (for the tests).
static WRITE_OUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amt: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: `f` is one of our open files; `data` holds `amt` bytes (SQLite's contract).
    unsafe {
        let r = real(f);
        let Some(real_write) = methods(r).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let g = (*(f as *mut File)).gather;
        if g.is_null() {
            return real_write(r, data, amt, offset);
        }
        let bytes = std::slice::from_raw_parts(data as *const u8, amt.max(0) as usize);
        // Bytes 4..8 of a frame header: the database size after a commit, else 0.
        let commit_header = bytes.len() == HEADER && bytes[4..8] != [0, 0, 0, 0];
        let mut after_commit_header = (*g).commit_next;
        if offset != (*g).end {
            after_commit_header = false;
            let rc = write_out(f);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            // Not the next frame: a frame header rewritten in place (walRewriteChecksums,
            // the commit frame's last, with nothing written after it) goes straight out.
            if bytes.len() == HEADER {
                (*g).end = offset + HEADER as i64;
                (*g).commit_next = commit_header;
                return match real_write(r, data, amt, offset) {
                    ffi::SQLITE_OK => ffi::SQLITE_OK,
                    _ => {
                        (*g).end = -1;
                        ffi::SQLITE_IOERR_WRITE
                    }
                };
            }
        }
        let g = &mut *g;
        if g.buf.is_empty() {
            g.at = offset;
        }
        g.buf.extend_from_slice(bytes);
        g.end = offset + bytes.len() as i64;
        g.commit_next = commit_header;
        // (Never between a commit header and its page: the write-out forgets the header.)
        if after_commit_header || (!commit_header && g.buf.len() >= GATHER_MAX) {
            return write_out(f);
        }
        ffi::SQLITE_OK
    }
}

/// A WAL frame header's size (the WAL file format).
const HEADER: usize = 24;

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `f` is one of our open files; SQLite never uses it after xClose.
    unsafe {
        let written = write_out(f);
        let r = real(f);
        let rc = methods(r).xClose.map_or(ffi::SQLITE_OK, |close| close(r));
        let this = f as *mut File;
        if !(*this).peer.is_null() {
            (*(*this).peer).peer = std::ptr::null_mut();
            (*this).peer = std::ptr::null_mut();
        }
        mains().retain(|(_, file)| *file != this as usize);
        if !(*this).gather.is_null() {
            drop(Box::from_raw((*this).gather));
            (*this).gather = std::ptr::null_mut();
        }
        if written != ffi::SQLITE_OK {
            written
        } else {
            rc
        }
    }
}

/// The WAL's write lock (`WAL_WRITE_LOCK`, slot 0 of the wal-index's locks).
const WAL_WRITE_LOCK: c_int = 0;

/// The main database file's shared-memory locks: before the WAL's write lock is released,
/// its WAL file writes out what it gathered, so no bytes of a transaction (a rolled-back one
/// whose spilled frames are in no reader's view, or the tail of a commit) outlive the lock
/// and land on frames the next writer writes.
unsafe extern "C" fn shm_lock(
    f: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: `f` is one of our open files, its peer the WAL file of the same connection.
    unsafe {
        let releases_write_lock = flags == ffi::SQLITE_SHM_UNLOCK | ffi::SQLITE_SHM_EXCLUSIVE
            && offset <= WAL_WRITE_LOCK
            && WAL_WRITE_LOCK < offset + n;
        let wal = (*(f as *mut File)).peer;
        if releases_write_lock && !wal.is_null() {
            // A failure here loses only bytes no reader may see (see `write_out`); the
            // lock must go regardless.
            let rc = write_out(wal as *mut ffi::sqlite3_file);
            if rc != ffi::SQLITE_OK {
                log::error!("could not write a WAL's last bytes out (SQLite error {rc})");
            }
        }
        let r = real(f);
        match methods(r).xShmLock {
            Some(lock) => lock(r, offset, n, flags),
            None => ffi::SQLITE_IOERR,
        }
    }
}

/// Defines a method that writes out what was gathered, then calls the platform's.
macro_rules! after_write_out {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            // SAFETY: `f` is one of our open files.
            unsafe {
                let rc = write_out(f);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let r = real(f);
                match methods(r).$field {
                    Some(m) => m(r, $($arg),*),
                    None => ffi::SQLITE_IOERR,
                }
            }
        }
    };
}

/// Defines a method that only calls the platform's (`$none` when it has none).
macro_rules! pass {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $none:expr) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file, $($arg: $ty),*) -> $ret {
            // SAFETY: `f` is one of our open files.
            unsafe {
                let r = real(f);
                match methods(r).$field {
                    Some(m) => m(r, $($arg),*),
                    None => $none,
                }
            }
        }
    };
}

after_write_out!(read, xRead, (buf: *mut c_void, amt: c_int, offset: i64));
after_write_out!(truncate, xTruncate, (size: i64));
after_write_out!(sync, xSync, (flags: c_int));
after_write_out!(file_size, xFileSize, (size: *mut i64));

/// The database file's locks: its WAL writes out first (leaving `locking_mode=EXCLUSIVE`
/// gives up the database without the WAL's write lock ever being released).
macro_rules! locking {
    ($name:ident, $field:ident) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
            // SAFETY: `f` is one of our open files, its peer the other file of its connection.
            unsafe {
                let peer = (*(f as *mut File)).peer;
                for file in [f, peer as *mut ffi::sqlite3_file] {
                    if !file.is_null() {
                        let rc = write_out(file);
                        if rc != ffi::SQLITE_OK {
                            return rc;
                        }
                    }
                }
                let r = real(f);
                match methods(r).$field {
                    Some(m) => m(r, level),
                    None => ffi::SQLITE_IOERR,
                }
            }
        }
    };
}
locking!(lock, xLock);
locking!(unlock, xUnlock);
after_write_out!(file_control, xFileControl, (op: c_int, arg: *mut c_void));
after_write_out!(fetch, xFetch, (offset: i64, amt: c_int, pp: *mut *mut c_void));
const IOERR: c_int = ffi::SQLITE_IOERR;
pass!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int) -> c_int, IOERR);
pass!(sector_size, xSectorSize, () -> c_int, 4096);
pass!(device_characteristics, xDeviceCharacteristics, () -> c_int, 0);
pass!(shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, pp: *mut *mut c_void) -> c_int, IOERR);
pass!(shm_barrier, xShmBarrier, () -> (), ());
pass!(shm_unmap, xShmUnmap, (delete: c_int) -> c_int, IOERR);
pass!(unfetch, xUnfetch, (offset: i64, p: *mut c_void) -> c_int, IOERR);

/// For the platform's files with shared memory (unix's: version 3, memory mapping too).
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// For files without (unix's `nolock`): SQLite then knows it has no WAL mode.
static PLAIN: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
    ..METHODS
};

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use crate::db::{connect, Synchronous};

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*), SUM(length(v)) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// Commits reach readers at once, a transaction far bigger than the page cache (frames
    /// written, rewritten and read back before its commit) and one rolled back leave the
    /// database whole, and a new connection after the writer closed sees everything.
    #[test]
    fn gathered_wal_writes_are_seen_by_readers_and_survive_spills_and_rollbacks() {
        let dir = std::env::temp_dir().join(format!(
            "otpbox-vfs-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite3");
        let w = connect(&path, Synchronous::Normal).unwrap();
        // SAFETY: reads the default VFS's name, a static C string.
        let default = unsafe {
            std::ffi::CStr::from_ptr((*rusqlite::ffi::sqlite3_vfs_find(std::ptr::null())).zName)
        };
        assert_eq!(default, super::NAME);
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let r = connect(&path, Synchronous::Normal).unwrap();
        let before = super::WRITE_OUTS.load(std::sync::atomic::Ordering::Relaxed);
        for i in 0..50 {
            w.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])
                .unwrap();
            assert_eq!(count(&r), i + 1);
        }
        // Gathered: each commit was written out (other tests' writes may add to the count).
        let after = super::WRITE_OUTS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(after - before >= 50, "{} write-outs", after - before);
        w.pragma_update(None, "cache_size", 10).unwrap();
        w.execute_batch(
            "BEGIN;
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
             INSERT INTO t (v) SELECT printf('%.200c', 'x') || x FROM c;
             UPDATE t SET v = v || 'y' WHERE id % 7 = 0;
             COMMIT;",
        )
        .unwrap();
        assert_eq!(count(&r), 20_050);
        // What a crash would leave now: the file as written so far, without the wal-index.
        // Recovery reads the frames' checksums, which that commit rewrote in place.
        let copy = dir.join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["t.sqlite3", "t.sqlite3-wal"] {
            std::fs::copy(dir.join(f), copy.join(f)).unwrap();
        }
        let crashed = connect(&copy.join("t.sqlite3"), Synchronous::Normal).unwrap();
        assert_eq!(count(&crashed), 20_050);
        drop(crashed);
        w.execute_batch("BEGIN; DELETE FROM t WHERE id > 10; UPDATE t SET v = 'z'; ROLLBACK;")
            .unwrap();
        assert_eq!(count(&r), 20_050);
        // Another writer after a rolled-back transaction that spilled frames: they must not
        // land on its commit later.
        w.execute_batch(
            "BEGIN;
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
             INSERT INTO t (v) SELECT printf('%.200c', 'w') FROM c;
             ROLLBACK;",
        )
        .unwrap();
        let other = connect(&path, Synchronous::Normal).unwrap();
        other
            .execute_batch(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50)
                 INSERT INTO t (v) SELECT 'other' FROM c;",
            )
            .unwrap();
        drop(other);
        assert_eq!(count(&w), 20_100);
        drop(w);
        let fresh = connect(&path, Synchronous::Normal).unwrap();
        assert_eq!(count(&fresh), 20_100);
        let ok: String = fresh
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let y: i64 = fresh
            .query_row("SELECT COUNT(*) FROM t WHERE v LIKE '%y'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(y, (1..=20_050).filter(|id| id % 7 == 0).count() as i64);
        drop((r, fresh));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

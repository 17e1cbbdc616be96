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
//! reach the file before anything could look for them. They are written out
//! - when a write does not continue them (a frame rewritten in place, a new WAL header),
//! - before the same file is read, sized, truncated, synced, mapped, locked or closed, or
//!   receives a file control,
//! - right after the page of a commit frame (its header's "database size after commit"
//!   field, bytes 4..8, is not zero: the WAL file format), which SQLite writes before it
//!   publishes the commit in the wal-index, where readers (other connections, other
//!   processes) learn of the frames; so a commit is in the file before any reader can see
//!   it and before COMMIT returns, exactly as without gathering,
//! - when they pass [`GATHER_MAX`] (a transaction too big for the page cache).
//!
//! A failed write-out returns SQLite's write error from the call that caused it and drops
//! what was gathered; SQLite then abandons the transaction, whose frames no reader will
//! ever see. Every other file (the database, its shared memory, journals) passes straight
//! through.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

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

/// Our file: SQLite's header (our methods), then the platform's file at [`real_offset`].
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// Gathered WAL bytes; null for any other file.
    gather: *mut Gather,
}

struct Gather {
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: i64,
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

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: REAL was set before our VFS was registered; `f` has room for both files.
    unsafe {
        let this = f as *mut File;
        (*this).base.pMethods = std::ptr::null();
        (*this).gather = std::ptr::null_mut();
        let r = real(f);
        let vfs = REAL.load(Ordering::Acquire);
        let Some(open) = (*vfs).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = open(vfs, name, r, flags, out_flags);
        if (*r).pMethods.is_null() {
            return rc;
        }
        if flags & ffi::SQLITE_OPEN_WAL != 0 {
            (*this).gather = Box::into_raw(Box::new(Gather {
                buf: Vec::new(),
                at: 0,
                commit_next: false,
            }));
        }
        (*this).base.pMethods = &METHODS;
        rc
    }
}

/// Writes out what `f` gathered. SQLITE_OK, or the platform's write error.
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
        rc
    }
}

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amt: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: `f` is one of our open files; `data` holds `amt` bytes (SQLite's contract).
    unsafe {
        let g = (*(f as *mut File)).gather;
        if g.is_null() {
            let r = real(f);
            return match methods(r).xWrite {
                Some(write) => write(r, data, amt, offset),
                None => ffi::SQLITE_IOERR_WRITE,
            };
        }
        let bytes = std::slice::from_raw_parts(data as *const u8, amt.max(0) as usize);
        let continues = {
            let g = &*g;
            !g.buf.is_empty() && g.at + g.buf.len() as i64 == offset
        };
        if !continues {
            let rc = write_out(f);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            (*g).at = offset;
        }
        let g = &mut *g;
        g.buf.extend_from_slice(bytes);
        let last_was_commit_header = g.commit_next;
        // A frame header is 24 bytes; bytes 4..8 are the database size after a commit.
        g.commit_next = bytes.len() == 24 && bytes[4..8] != [0, 0, 0, 0];
        if last_was_commit_header || g.buf.len() >= GATHER_MAX {
            return write_out(f);
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `f` is one of our open files; SQLite never uses it after xClose.
    unsafe {
        let written = write_out(f);
        let r = real(f);
        let rc = methods(r).xClose.map_or(ffi::SQLITE_OK, |close| close(r));
        let this = f as *mut File;
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
after_write_out!(lock, xLock, (level: c_int));
after_write_out!(unlock, xUnlock, (level: c_int));
after_write_out!(file_control, xFileControl, (op: c_int, arg: *mut c_void));
after_write_out!(fetch, xFetch, (offset: i64, amt: c_int, pp: *mut *mut c_void));
const IOERR: c_int = ffi::SQLITE_IOERR;
pass!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int) -> c_int, IOERR);
pass!(sector_size, xSectorSize, () -> c_int, 4096);
pass!(device_characteristics, xDeviceCharacteristics, () -> c_int, 0);
pass!(shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, pp: *mut *mut c_void) -> c_int, IOERR);
pass!(shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int, IOERR);
pass!(shm_barrier, xShmBarrier, () -> (), ());
pass!(shm_unmap, xShmUnmap, (delete: c_int) -> c_int, IOERR);
pass!(unfetch, xUnfetch, (offset: i64, p: *mut c_void) -> c_int, IOERR);

/// The platform's (unix) files are version 3: shared memory and memory mapping.
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
        for i in 0..50 {
            w.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])
                .unwrap();
            assert_eq!(count(&r), i + 1);
        }
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
        w.execute_batch("BEGIN; DELETE FROM t WHERE id > 10; UPDATE t SET v = 'z'; ROLLBACK;")
            .unwrap();
        assert_eq!(count(&r), 20_050);
        drop(w);
        let fresh = connect(&path, Synchronous::Normal).unwrap();
        assert_eq!(count(&fresh), 20_050);
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

//! The one write connection of a server, shared by all its threads, with group commit and
//! checkpoints off the writers' path.
//!
//! Writes are combined: a writer queues its closure; if no thread is combining, it becomes
//! the combiner and runs, in one transaction, its own write and then every write queued
//! meanwhile (each after the first in a savepoint, so a write that fails takes back only its
//! own changes; a prechecked write, which fails only before its first change and may run
//! again, goes without one behind other prechecked writes: should it fail after a change,
//! the transaction is taken back and those before it run again), until the queue is empty
//! or the batch reached [`BATCH_MAX`] writes or [`BATCH_HOLD`]; it commits, tells each writer how its transaction ended, and hands the
//! role to the oldest writer still waiting. The others sleep until told. Nobody's write is
//! acknowledged before the commit that holds it. What it saves, measured on order→cancel
//! (README, Performance): one commit writes each page a batch touched once (an order's rows
//! share most of their index pages with the orders beside it); the connection's page cache
//! stays warm, where a connection whose database another connection changed drops its whole
//! cache; and the writes of a batch follow each other on one thread, where taking turns on a
//! lock woke a sleeping thread between every two writes (the lock sat idle a quarter of the
//! time under load, while the woken thread got a core).
//!
//! Checkpoints (copying the WAL back into the database) used to run inside the commit that
//! crossed `wal_autocheckpoint`, so every writer queued behind a commit that took tens of
//! milliseconds: the order path's p99 was 42 ms, 10 ms without them. The shared connection's
//! WAL hook only tells a checkpointer thread, with its own connection, that the WAL crossed
//! the limit; it checkpoints (`PASSIVE`: it never waits for, nor blocks, a writer) beside the
//! writers. What the writers appended meanwhile is copied by the next writer that opens a
//! transaction, before it does: the WAL is then wholly copied (unless a reader still needs
//! older frames), and that writer's first frame starts it from its beginning again. (When the checkpointer waited for a gap between two transactions
//! instead, a busy server seldom left one, and its WAL grew by 170 MB a second under
//! order→cancel, every frame written to a new part of the file.)

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rusqlite::{ffi, Connection};

use super::{connect, Synchronous, Writing};
use crate::domain::Error;

/// The shared write connections of this process, one per database a server serves.
static SHARED: RwLock<Vec<Arc<Shared>>> = RwLock::new(Vec::new());

/// Makes `conn` the connection every [`write`](super::write) to its database goes through
/// from now on (`otpbox serve`, once its database is migrated). With `checkpoint_pages` > 0 a
/// checkpointer thread with its own connection copies the WAL back into the database each
/// time it has grown past that many pages; 0 leaves checkpoints to someone else (Litestream).
pub fn share_writes(
    conn: Connection,
    sync: Synchronous,
    checkpoint_pages: u32,
) -> Result<(), Error> {
    let path = conn
        .path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::Internal("only a database file can share its writes".into()))?
        .to_owned();
    // The writers never checkpoint: with a limit the checkpointer does, without one nobody.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // Its cache stays warm between transactions (no other connection writes). SQLite's
    // default, 2,000 KiB, kept 1.4 MiB more resident with no speed to show for it in the bench.
    conn.pragma_update(None, "cache_size", -1024)?;
    let checkpoints: Option<&'static Checkpoints> = (checkpoint_pages > 0).then(|| {
        &*Box::leak(Box::new(Checkpoints {
            limit: c_int::try_from(checkpoint_pages).unwrap_or(c_int::MAX),
            due: Mutex::new(false),
            wake: Condvar::new(),
            runs: AtomicU64::new(0),
        }))
    });
    let shared = Arc::new(Shared {
        path,
        state: Mutex::new(Batch {
            conn,
            catch_up: false,
        }),
        queue: Mutex::new(Queue {
            jobs: VecDeque::new(),
            combining: false,
        }),
        hold_us: AtomicU64::new(BATCH_HOLD.as_micros() as u64),
        commits: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        busy_ns: AtomicU64::new(0),
        busy_cpu_ns: AtomicU64::new(0),
        checkpoints,
        commit_syncs: matches!(sync, Synchronous::Full),
    });
    if let Some(cp) = checkpoints {
        let own = connect(Path::new(&shared.path), sync)?;
        own.pragma_update(None, "wal_autocheckpoint", 0)?;
        let beside = shared.clone();
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || checkpointer(own, cp, &beside))
            .map_err(|e| Error::Internal(format!("cannot start the checkpointer: {e}")))?;
        let b = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the handle is this open connection's; `cp` lives as long as the process, and
        // `wal_grew` only reads it. The hook replaces SQLite's own autocheckpoint hook.
        unsafe {
            ffi::sqlite3_wal_hook(
                b.conn.handle(),
                Some(wal_grew),
                cp as *const Checkpoints as *mut c_void,
            );
        }
    }
    let mut list = SHARED.write().unwrap_or_else(|p| p.into_inner());
    list.retain(|s| s.path != shared.path);
    list.push(shared);
    Ok(())
}

/// What the shared connection's WAL hook tells the checkpointer.
struct Checkpoints {
    /// WAL pages past which a checkpoint is due (`wal_autocheckpoint`).
    limit: c_int,
    due: Mutex<bool>,
    wake: Condvar,
    /// Checkpoints run.
    runs: AtomicU64,
}

impl Checkpoints {
    /// A passive checkpoint on `conn`: the WAL's size in frames when it ran and the frames
    /// it has copied (`None` if it could not run).
    fn run(&self, conn: &Connection) -> Option<(i64, i64)> {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)? == 0).then_some((r.get(1)?, r.get(2)?)))
        }) {
            Ok(frames) => {
                self.runs.fetch_add(1, Ordering::Relaxed);
                frames
            }
            Err(e) => {
                log::warn!("checkpoint failed: {e}");
                None
            }
        }
    }
}

/// SQLite calls this after each commit of the shared connection with the WAL's size in pages.
unsafe extern "C" fn wal_grew(
    arg: *mut c_void,
    _db: *mut ffi::sqlite3,
    _name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: `arg` is the leaked `&'static Checkpoints` given to sqlite3_wal_hook.
    let cp = unsafe { &*(arg as *const Checkpoints) };
    if pages >= cp.limit {
        *cp.due.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cp.wake.notify_one();
    }
    ffi::SQLITE_OK
}

/// The shortest time between two checkpoints.
const CHECKPOINT_GAP: Duration = Duration::from_millis(50);

/// The checkpointer thread. When a checkpoint is due it runs a passive one beside the
/// writers (it copies what no reader still needs and never waits for a lock a writer holds);
/// then the next writer to open a transaction copies what was appended meanwhile (see
/// [`Shared::write`]), which holds the writers for its two syncs (the WAL's, the
/// database's).
fn checkpointer(conn: Connection, cp: &'static Checkpoints, shared: &Shared) {
    loop {
        {
            let mut due = cp.due.lock().unwrap_or_else(|p| p.into_inner());
            while !*due {
                due = cp.wake.wait(due).unwrap_or_else(|p| p.into_inner());
            }
            *due = false;
        }
        // Again while the writers appended much during the last pass, so the writer that
        // copies the rest has little left to copy.
        let mut ran = false;
        let mut last_size = 0;
        for _ in 0..4 {
            let Some((size, _)) = cp.run(&conn) else {
                break;
            };
            ran = true;
            if size - last_size <= CATCH_UP_LEFT {
                break;
            }
            last_size = size;
        }
        // A checkpoint that cannot run (a persistent I/O error) is not repeated on the
        // writers' path.
        if ran {
            shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .catch_up = true;
        }
        // A reader that keeps the WAL from restarting makes every commit call for another
        // checkpoint: at most one cycle per CHECKPOINT_GAP.
        std::thread::sleep(CHECKPOINT_GAP);
    }
}

/// The checkpointer passes again while the last pass let the writers append more than this
/// many WAL frames, the most it wants the writer that finishes its work to copy.
const CATCH_UP_LEFT: i64 = 100;

/// What the shared connection of `conn`'s database has done (`None` when its writes are not
/// shared).
pub struct GroupCommits {
    pub commits: u64,
    /// Writes those commits held.
    pub writes: u64,
    /// Checkpoints run (the checkpointer's and the writers' that finish them).
    pub checkpoints: u64,
    /// Seconds a writer held the connection: near the time elapsed, writes queue behind it.
    pub busy_seconds: f64,
    /// Of those, the CPU time of the threads that held it (the rest they waited for a core
    /// or for the system).
    pub busy_cpu_seconds: f64,
}

pub fn group_commits(conn: &Connection) -> Option<GroupCommits> {
    shared_for(conn).map(|s| GroupCommits {
        commits: s.commits.load(Ordering::Relaxed),
        writes: s.writes.load(Ordering::Relaxed),
        checkpoints: s.checkpoints.map_or(0, |c| c.runs.load(Ordering::Relaxed)),
        busy_seconds: s.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
        busy_cpu_seconds: s.busy_cpu_ns.load(Ordering::Relaxed) as f64 / 1e9,
    })
}

pub(super) fn shared_for(conn: &Connection) -> Option<Arc<Shared>> {
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

/// One write connection shared by every thread of the server, with group commit (module doc).
pub struct Shared {
    path: String,
    /// The connection; held by the combiner while it runs a batch (and by the checkpointer
    /// for a moment to set `catch_up`).
    state: Mutex<Batch>,
    /// Writes waiting for the combiner.
    queue: Mutex<Queue>,
    /// [`BATCH_HOLD`] (a test lengthens it to see a batch whatever the machine's speed).
    hold_us: AtomicU64,
    /// Transactions committed, and the writes they held.
    commits: AtomicU64,
    writes: AtomicU64,
    /// Nanoseconds a combiner held the connection (its batch's writes, savepoints, commit),
    /// and its thread's CPU time meanwhile.
    busy_ns: AtomicU64,
    busy_cpu_ns: AtomicU64,
    checkpoints: Option<&'static Checkpoints>,
    /// `synchronous = full`: a commit waits for the disk, and its combiner gives its CPU
    /// slot up first (`crate::cpu`).
    commit_syncs: bool,
}

/// The shared connection.
struct Batch {
    conn: Connection,
    /// The checkpointer has copied the WAL beside the writers: the next writer to open a
    /// transaction first copies what was appended meanwhile.
    catch_up: bool,
}

impl Batch {
    fn run(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }
}

/// The writes waiting, oldest first, and whether a thread is combining (then it, or the
/// waiter it hands over to, will run them).
struct Queue {
    jobs: VecDeque<Job>,
    combining: bool,
}

/// A write a thread waits on: its closure and where it is told how it ended. Both live on
/// that thread's stack ([`Shared::submit`]).
struct Job {
    work: *mut Work<'static>,
    slot: *const Slot,
    /// A prechecked write ([`crate::db::write_prechecked`]): it may run again, and runs
    /// without a savepoint when every write before it in the transaction may too.
    again: bool,
}

/// Runs a caller's write on the shared connection (once, or again for a prechecked write
/// whose transaction was taken back), keeps its outcome for the caller and says whether it
/// succeeded.
type Work<'a> = dyn FnMut(&Connection) -> bool + Send + 'a;

// SAFETY: a job points into the stack of a thread that is blocked in `submit` until its slot
// says the job ended, and the closure it points to is `Send`. The slot is only read and
// written under the queue's lock.
unsafe impl Send for Job {}

/// How a waiting write learns its fate, read and written under the queue's lock.
struct Slot {
    end: Cell<End>,
    thread: Thread,
}

enum End {
    Waiting,
    /// The last combiner handed over: this thread runs the next batch (its own write first).
    Combine,
    /// The write ran and its transaction ended (`Err`: nothing of it was kept).
    Done(Result<(), String>),
    /// No transaction could begin for the write: it did not run.
    NotRun(rusqlite::Error),
}

impl Job {
    /// Runs the write.
    fn run(&self, conn: &Connection) -> bool {
        // SAFETY: see `impl Send for Job`: the closure outlives the job, and only the
        // combiner calls it.
        unsafe { (*self.work)(conn) }
    }

    /// Tells the job's thread how it ended; under the queue's lock.
    fn tell(self, end: End) {
        // SAFETY: see `impl Send for Job`; the slot is read under the same lock.
        let slot = unsafe { &*self.slot };
        slot.end.set(end);
        slot.thread.unpark();
    }
}

impl Shared {
    pub(super) fn write<T: Send>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let mut f = Some(f);
        self.write_job(false, move |conn| f.take().map(|f| f(conn)))
    }

    /// A prechecked write (see [`crate::db::write_prechecked`]).
    pub(super) fn write_prechecked<T: Send>(
        &self,
        f: impl Fn(&Connection) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        self.write_job(true, move |conn| Some(f(conn)))
    }

    /// Queues a write and returns its outcome; `call` gives `None` when it cannot run again.
    fn write_job<T: Send>(
        &self,
        again: bool,
        mut call: impl FnMut(&Connection) -> Option<Result<T, Error>> + Send,
    ) -> Result<T, Error> {
        let mut out: Option<std::thread::Result<Result<T, Error>>> = None;
        let end = {
            let mut work = |conn: &Connection| -> bool {
                let outcome = {
                    let _writing = Writing::start();
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(conn)))
                };
                let (ok, outcome) = match outcome {
                    Ok(None) => return false,
                    Ok(Some(r)) => (r.is_ok(), Ok(r)),
                    Err(panic) => (false, Err(panic)),
                };
                out = Some(outcome);
                ok
            };
            self.submit(&mut work, again)
        };
        match out {
            None => Err(end
                .err()
                .unwrap_or_else(|| Error::Internal("the write did not run".to_string()))),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            Some(Ok(Err(e))) => Err(e),
            Some(Ok(Ok(value))) => end.map(|()| value),
        }
    }

    /// Queues `work` and returns once it ran and its transaction ended. A thread that finds
    /// nobody combining (or is handed the role) runs the queue itself ([`Shared::combine`]);
    /// the others sleep meanwhile.
    fn submit(&self, work: &mut Work<'_>, again: bool) -> Result<(), Error> {
        let slot = Slot {
            end: Cell::new(End::Waiting),
            thread: std::thread::current(),
        };
        // SAFETY: only the lifetime is erased. This function returns only after the job's
        // slot says it ended, and a combiner never touches a job after saying so.
        let work: *mut Work<'static> = unsafe {
            std::mem::transmute::<*mut Work<'_>, *mut Work<'static>>(work as *mut Work<'_>)
        };
        let mut q = self.lock_queue();
        q.jobs.push_back(Job {
            work,
            slot: &slot,
            again,
        });
        if q.combining {
            loop {
                match slot.end.replace(End::Waiting) {
                    End::Waiting => {
                        drop(q);
                        // While it sleeps, its CPU slot serves another request (`crate::cpu`).
                        crate::cpu::give_up();
                        std::thread::park();
                        q = self.lock_queue();
                    }
                    End::Combine => break,
                    end => return ended(end),
                }
            }
        } else {
            q.combining = true;
        }
        drop(q);
        self.combine();
        let _q = self.lock_queue();
        ended(slot.end.replace(End::Waiting))
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The combiner's turn: transactions holding the writes queued from the oldest (its own)
    /// on, each after the first in a savepoint unless prechecked behind prechecked ones (a
    /// write that fails or panics takes back only its own changes), until the queue is empty or the batch is big or old enough
    /// ([`BATCH_MAX`], [`BATCH_HOLD`]); then the commit, every write told how it ended, and
    /// the role handed to the oldest write still waiting. The writes that queue meanwhile
    /// run without any thread waking in between.
    fn combine(&self) {
        let mut turn = Turn {
            shared: self,
            // The combiner's own write, at the front of the queue.
            current: self.lock_queue().jobs.pop_front(),
            kept: Vec::new(),
            again: VecDeque::new(),
            over: false,
        };
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let held = (Instant::now(), thread_cpu_ns());
        if !b.conn.is_autocommit() {
            // What a failed rollback may have left: nobody's write is in it.
            let _ = b.run("ROLLBACK");
        }
        if b.catch_up {
            b.catch_up = false;
            if let Some(cp) = self.checkpoints {
                // It copies pages and syncs the database file: not with a CPU slot.
                crate::cpu::give_up();
                if let Some((size, copied)) = cp.run(&b.conn) {
                    if size == copied {
                        // What called for this checkpoint is copied now.
                        *cp.due.lock().unwrap_or_else(|p| p.into_inner()) = false;
                    }
                }
            }
        }
        let outcome = self.run_batch(&b, &mut turn);
        self.count_busy(held);
        drop(b);
        if let Some(r) = outcome {
            turn.end(r);
        }
    }

    /// The writes of a turn and their commit; how the batch ended for the writes kept for
    /// the commit, or `None` when the turn was ended already (a transaction that could not
    /// begin, or was lost).
    fn run_batch(&self, b: &Batch, turn: &mut Turn<'_>) -> Option<Result<(), String>> {
        let hold = Duration::from_micros(self.hold_us.load(Ordering::Relaxed));
        let mut begun: Option<Instant> = None;
        let mut members = 0;
        // Writes taken in this turn, those that failed alone in a transaction included.
        let mut taken = 0;
        loop {
            if turn.current.is_none() {
                turn.current = turn
                    .again
                    .pop_front()
                    .or_else(|| self.lock_queue().jobs.pop_front());
            }
            let Some(job) = turn.current.as_ref() else {
                break;
            };
            let started = match begun {
                Some(t) => t,
                None => {
                    if let Err(e) = b.run("BEGIN IMMEDIATE") {
                        log::error!("cannot begin a shared write transaction: {e}");
                        turn.refuse(e);
                        return None;
                    }
                    members = 0;
                    *begun.insert(Instant::now())
                }
            };
            let first = members == 0;
            // No savepoint for the transaction's first write (the transaction is its own),
            // nor for a prechecked write behind prechecked ones only: should it fail after
            // changing something, the transaction is taken back and they run again. A
            // savepoint copies every page the write touches, a tenth of the writer's time.
            let bare = first || (job.again && turn.kept.iter().all(|j| j.again));
            if !bare {
                if let Err(e) = b.run("SAVEPOINT write") {
                    turn.abort(b, format!("cannot open a savepoint: {e}"));
                    return None;
                }
            }
            let changes = b.conn.total_changes();
            let ok = job.run(&b.conn);
            taken += 1;
            if first && !ok {
                // Nothing else is in the transaction: it is taken back whole, and the next
                // write waiting (if any) begins another.
                let _ = b.run("ROLLBACK");
                begun = None;
                turn.tell_current(Ok(()));
                if taken >= BATCH_MAX && turn.again.is_empty() {
                    break;
                }
                continue;
            }
            // The write's changes must now be kept exactly when it succeeded. If SQLite rolled
            // the whole transaction back by itself (disk full, I/O error, out of memory), or
            // the savepoint cannot be released or rolled back, nobody's write in it can be
            // trusted: the batch ends with an error for all of them.
            let gone = || {
                if b.conn.is_autocommit() {
                    Err("SQLite rolled the transaction back".to_string())
                } else {
                    Ok(())
                }
            };
            let sealed = gone().and_then(|()| {
                if bare {
                    Ok(())
                } else if ok {
                    b.run("RELEASE write").map_err(|e| e.to_string())
                } else {
                    b.run("ROLLBACK TO write")
                        .and_then(|()| b.run("RELEASE write"))
                        .map_err(|e| e.to_string())
                }
            });
            if let Err(e) = sealed.and_then(|()| gone()) {
                turn.abort(b, format!("write failed: {e}"));
                return None;
            }
            if bare && !ok && b.conn.total_changes() != changes {
                // A prechecked write failed after changing something (a bug): the
                // transaction is taken back, it is told its own error, and the writes before
                // it begin another.
                log::error!(
                    "a prechecked write failed after changing the database; its transaction \
                     is taken back and {} write(s) before it run again",
                    turn.kept.len()
                );
                if let Err(e) = b.run("ROLLBACK") {
                    turn.abort(b, format!("cannot roll back: {e}"));
                    return None;
                }
                begun = None;
                turn.tell_current(Ok(()));
                turn.run_kept_again();
                continue;
            }
            members += 1;
            if ok {
                turn.keep_current();
            } else {
                // Its changes are gone already: its caller need not wait for the commit.
                turn.tell_current(Ok(()));
            }
            // Writes to run again are in no transaction yet: they never wait for the next.
            if turn.again.is_empty() && (taken >= BATCH_MAX || started.elapsed() >= hold) {
                break;
            }
        }
        if begun.is_none() {
            return Some(Ok(()));
        }
        if self.commit_syncs {
            crate::cpu::give_up();
        }
        let outcome = b.run("COMMIT").map_err(|e| e.to_string());
        match &outcome {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.writes.fetch_add(members as u64, Ordering::Relaxed);
            }
            Err(e) => {
                log::error!("a shared write transaction could not commit: {e}");
                if !b.conn.is_autocommit() {
                    let _ = b.run("ROLLBACK");
                }
            }
        }
        Some(outcome.map_err(|e| format!("commit failed: {e}")))
    }

    fn count_busy(&self, (since, cpu): (Instant, u64)) {
        self.busy_ns
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.busy_cpu_ns
            .fetch_add(thread_cpu_ns().saturating_sub(cpu), Ordering::Relaxed);
    }

    /// Writes waiting in the queue (for tests that arrange a batch).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock_queue().jobs.len()
    }
}

/// The calling thread's CPU time in nanoseconds (0 if the clock cannot be read).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0;
    }
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// What a waiting write's thread gets back from its slot.
fn ended(end: End) -> Result<(), Error> {
    match end {
        End::Done(r) => r.map_err(Error::Internal),
        End::NotRun(e) => Err(Error::Db(e)),
        End::Waiting | End::Combine => {
            Err(Error::Internal("the write was left behind".to_string()))
        }
    }
}

/// A combiner's turn in progress. However it ends (by a panic too), every write it took from
/// the queue is told, and the combiner's role passes to the oldest write waiting, or lapses.
struct Turn<'a> {
    shared: &'a Shared,
    /// The write taken from the queue and not yet told or kept.
    current: Option<Job>,
    /// Writes that ran and wait for the commit.
    kept: Vec<Job>,
    /// Prechecked writes whose transaction was taken back, to run again before the queue.
    again: VecDeque<Job>,
    over: bool,
}

impl Turn<'_> {
    /// Tells the current write how it ended (the turn goes on).
    fn tell_current(&mut self, r: Result<(), String>) {
        if let Some(job) = self.current.take() {
            let _q = self.shared.lock_queue();
            job.tell(End::Done(r));
        }
    }

    /// The current write ran and waits for the commit.
    fn keep_current(&mut self) {
        self.kept.extend(self.current.take());
    }

    /// The transaction was taken back: the writes kept for it run again first, in order.
    fn run_kept_again(&mut self) {
        let mut again: VecDeque<Job> = self.kept.drain(..).collect();
        again.append(&mut self.again);
        self.again = again;
    }

    /// No transaction could begin: the current write is told so, and the turn ends.
    fn refuse(&mut self, e: rusqlite::Error) {
        let mut q = self.shared.lock_queue();
        if let Some(job) = self.current.take() {
            job.tell(End::NotRun(e));
        }
        self.end_locked(&mut q, Err("no write transaction could begin".to_string()));
    }

    /// Ends the turn: the current write (if any) and every write kept for the commit are
    /// told `r`, and the role is handed over.
    fn end(&mut self, r: Result<(), String>) {
        let mut q = self.shared.lock_queue();
        self.end_locked(&mut q, r);
    }

    fn end_locked(&mut self, q: &mut Queue, r: Result<(), String>) {
        let jobs = self.current.take().into_iter().chain(self.kept.drain(..));
        for job in jobs.chain(self.again.drain(..)) {
            job.tell(End::Done(r.clone()));
        }
        self.hand_over(q);
    }

    /// Ends the open transaction with nothing kept: every write in it gets `why`.
    fn abort(&mut self, b: &Batch, why: String) {
        log::error!("a shared write transaction failed: {why}");
        if !b.conn.is_autocommit() {
            let _ = b.run("ROLLBACK");
        }
        self.end(Err(why));
    }

    /// The oldest waiting write's thread combines next; with none, nobody does until a
    /// write comes.
    fn hand_over(&mut self, q: &mut Queue) {
        if self.over {
            return;
        }
        self.over = true;
        match q.jobs.front() {
            Some(next) => {
                // SAFETY: as in `Job::tell`.
                let slot = unsafe { &*next.slot };
                slot.end.set(End::Combine);
                slot.thread.unpark();
            }
            None => q.combining = false,
        }
    }
}

impl Drop for Turn<'_> {
    /// A combiner that unwinds (a bug outside the writes, which are caught) must not leave
    /// the writes it took, or the queue, waiting for ever.
    fn drop(&mut self) {
        if !self.over {
            self.end(Err("the writer failed".to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{open, write, write_prechecked};
    use std::sync::atomic::AtomicUsize;

    /// A database in a fresh directory whose writes are shared (checkpoints every
    /// `checkpoint_pages`, 0 = none): its directory and file.
    fn shared_db(name: &str, checkpoint_pages: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "otpbox-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let path = dir.join("otpbox.sqlite3");
        open(&dir, Synchronous::Normal).unwrap();
        share_writes(
            connect(&path, Synchronous::Normal).unwrap(),
            Synchronous::Normal,
            checkpoint_pages,
        )
        .unwrap();
        (dir, path)
    }

    /// Adds one outbox row.
    fn insert(tx: &Connection, subject: &str) -> rusqlite::Result<usize> {
        tx.execute(
            "INSERT INTO outbox (to_addr, subject, body, created_at) VALUES ('a', ?1, '', 1)",
            [subject],
        )
    }

    /// Writes through the shared connection from many threads at once: every write that
    /// returned `Ok` is committed (another connection sees it at once), a write that fails or
    /// panics takes back only its own changes (the panic continues in its caller), writes did
    /// share transactions, and the checkpointer ran.
    #[test]
    fn shared_writes_commit_together_and_fail_alone() {
        // A small checkpoint limit: the WAL passes it many times during the run.
        let (dir, path) = shared_db("group-commit", 50);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let conn = connect(&path, Synchronous::Normal).unwrap();
                    let mut kept = 0;
                    for i in 0..300 {
                        let subject = format!("{t}-{i}");
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            write(&conn, |tx| {
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
        let GroupCommits {
            commits, writes, ..
        } = group_commits(&conn).unwrap();
        // A failed write counts when it ran inside a transaction others committed.
        assert!((8 * 240..=8 * 300).contains(&writes), "{writes} writes");
        assert!(commits < writes, "{commits} commits for {writes} writes");
        // The checkpointer ran beside the writers (it is told after the commits, so it may
        // still be on its way).
        let waited = Instant::now();
        while group_commits(&conn).unwrap().checkpoints == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(20),
                "no checkpoint ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Under writes that never pause, with reads beside them, the WAL still starts over
    /// from its beginning after checkpoints instead of growing without end (it grew by
    /// 170 MB a second under the bench's order→cancel when the checkpointer waited for a gap
    /// between transactions that never came).
    #[test]
    fn the_wal_starts_over_under_writes_that_never_pause() {
        let (dir, path) = shared_db("wal-bounded", 100);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = connect(&path, Synchronous::Normal).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    // A request's read: short, one after the other.
                    let _: Option<i64> = conn
                        .query_row("SELECT MAX(id) FROM outbox", [], |r| r.get(0))
                        .unwrap();
                }
            })
        };
        let body = "x".repeat(3000);
        // The WAL header's checkpoint sequence number (bytes 12..16, big-endian) counts the
        // times the WAL started over.
        let wal_path = path.with_extension("sqlite3-wal");
        let restarts = || {
            std::fs::read(&wal_path)
                .ok()
                .and_then(|w| Some(u32::from_be_bytes(w.get(12..16)?.try_into().ok()?)))
                .unwrap_or(0)
        };
        // Rows of 3 KB written; the writers stop at LIMIT (the code before the catch-up
        // started the WAL over 0 or 1 times in 12,000 rows with 8 writers; now 5 times in
        // about that many, however fast the machine is).
        const LIMIT: u64 = 40_000;
        let rows = Arc::new(AtomicU64::new(0));
        // Eight writers, so one is nearly always queued and a transaction nearly always open.
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let (path, body, stop, rows) =
                    (path.clone(), body.clone(), stop.clone(), rows.clone());
                std::thread::spawn(move || {
                    let conn = connect(&path, Synchronous::Normal).unwrap();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed)
                        && rows.fetch_add(1, Ordering::Relaxed) < LIMIT
                    {
                        i += 1;
                        write(&conn, |tx| {
                            tx.execute(
                                "INSERT INTO outbox (to_addr, subject, body, created_at) \
                                 VALUES ('a', ?1, ?2, 1)",
                                rusqlite::params![format!("{t}-{i}"), body],
                            )?;
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        let began = Instant::now();
        while restarts() < 5
            && rows.load(Ordering::Relaxed) < LIMIT
            && began.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        reader.join().unwrap();
        let (restarts, rows) = (restarts(), rows.load(Ordering::Relaxed).min(LIMIT));
        assert!(
            restarts >= 5,
            "the WAL started over {restarts} times in {rows} rows"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// [`shared_db`] without checkpoints, whose batches stay open a minute for writes that
    /// queue (tests that arrange a batch): its directory and file, a connection, its
    /// [`Shared`].
    fn holding_db(
        name: &str,
    ) -> (
        std::path::PathBuf,
        std::path::PathBuf,
        Connection,
        Arc<Shared>,
    ) {
        let (dir, path) = shared_db(name, 0);
        let conn = connect(&path, Synchronous::Normal).unwrap();
        let shared = shared_for(&conn).unwrap();
        shared.hold_us.store(60_000_000, Ordering::Relaxed);
        (dir, path, conn, shared)
    }

    /// A thread that writes one outbox row through the shared connection.
    fn start_queued_plain(
        path: &std::path::Path,
        subject: &'static str,
    ) -> std::thread::JoinHandle<Result<(), Error>> {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let conn = connect(&path, Synchronous::Normal).unwrap();
            write(&conn, |tx| {
                insert(tx, subject)?;
                Ok(())
            })
        })
    }

    /// When SQLite rolls a shared transaction back by itself (here a write does it, as a full
    /// disk would), every write that was in it fails, the one already waiting for the commit
    /// included, and nothing of them is kept; the next write works.
    #[test]
    fn a_transaction_sqlite_rolled_back_fails_everyone_in_it() {
        let (dir, path, conn, shared) = holding_db("rolled-back");
        // Each writer's closure starts the next one and waits until it queues, so the three
        // meet in one transaction: the first waits for the commit, the second has SQLite's
        // rollback happen to it, the third was queued behind it.
        let start_queued = |subject: &'static str, rollback: bool| {
            let path = path.clone();
            let queued = shared.queued();
            let inside = shared.clone();
            let writer = std::thread::spawn(move || {
                let shared = inside;
                let conn = connect(&path, Synchronous::Normal).unwrap();
                let mut next = None;
                let r = write(&conn, |tx| {
                    insert(tx, subject)?;
                    if rollback {
                        next = Some(start_queued_plain(&path, "third"));
                        while shared.queued() == 0 {
                            std::thread::yield_now();
                        }
                        tx.execute_batch("ROLLBACK")?;
                    }
                    Ok(())
                });
                (r, next.map(|t| t.join().unwrap()))
            });
            while shared.queued() == queued {
                std::thread::yield_now();
            }
            writer
        };
        let mut second = None;
        let first = write(&conn, |tx| {
            insert(tx, "first")?;
            second = Some(start_queued("second", true));
            Ok(())
        });
        let (second, third) = second.unwrap().join().unwrap();
        assert!(first.is_err(), "{first:?}");
        assert!(second.is_err(), "{second:?}");
        // The third write started a transaction of its own, and says so truly.
        assert!(matches!(third, Some(Ok(()))), "{third:?}");
        assert_eq!(subjects(&conn), ["third"]);
        write(&conn, |tx| Ok(insert(tx, "fourth")?)).unwrap();
        assert_eq!(subjects(&conn), ["third", "fourth"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The subjects of the outbox rows, oldest first.
    fn subjects(c: &Connection) -> Vec<String> {
        c.prepare("SELECT subject FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// A thread that writes one outbox row through the shared connection and sends what its
    /// write returned (or that it panicked) down a channel, so that a write left waiting
    /// fails the test instead of hanging it.
    fn start_reporting(
        path: &std::path::Path,
        subject: &'static str,
        then: impl FnOnce() + Send + 'static,
    ) -> std::sync::mpsc::Receiver<std::thread::Result<Result<(), Error>>> {
        let (tx_done, done) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let conn = connect(&path, Synchronous::Normal).unwrap();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                write(&conn, |tx| {
                    insert(tx, subject)?;
                    then();
                    Ok(())
                })
            }));
            let _ = tx_done.send(r);
        });
        done
    }

    /// Waits until `n` writes are queued.
    fn until_queued(shared: &Shared, n: usize) {
        let waited = Instant::now();
        while shared.queued() < n {
            assert!(waited.elapsed() < Duration::from_secs(20), "nobody queued");
            std::thread::yield_now();
        }
    }

    /// The combiner's own write fails alone (its transaction is taken back whole): the
    /// write queued behind it still runs, in a transaction of its own, and says so; then a
    /// write that panics while the combiner runs it reaches its own caller, not the
    /// combiner, and takes back only its own row.
    #[test]
    fn a_combiner_whose_write_fails_or_runs_a_panicking_one_goes_on() {
        let (dir, path, conn, shared) = holding_db("combiner");
        let wait = Duration::from_secs(20);

        let mut queued = None;
        let first = write(&conn, |tx| {
            insert(tx, "refused")?;
            queued = Some(start_reporting(&path, "after the refused", || {}));
            until_queued(&shared, 1);
            Err::<(), _>(Error::Internal("refused".into()))
        });
        assert!(matches!(first, Err(Error::Internal(_))), "{first:?}");
        let after = queued
            .unwrap()
            .recv_timeout(wait)
            .expect("the queued write ran");
        assert!(matches!(after, Ok(Ok(()))), "{after:?}");
        assert_eq!(subjects(&conn), ["after the refused"]);

        let mut panicking = None;
        let mut last = None;
        let kept = write(&conn, |tx| {
            insert(tx, "kept")?;
            let path2 = path.clone();
            let inner = shared.clone();
            let (tx_last, rx_last) = std::sync::mpsc::channel();
            panicking = Some(start_reporting(&path, "panicked", move || {
                // Runs on the combiner's thread, inside its transaction.
                let _ = tx_last.send(start_reporting(&path2, "last", || {}));
                until_queued(&inner, 1);
                panic!("a queued write panics");
            }));
            until_queued(&shared, 1);
            last = Some(rx_last);
            Ok(())
        });
        assert!(matches!(kept, Ok(())), "{kept:?}");
        let panicked = panicking
            .unwrap()
            .recv_timeout(wait)
            .expect("the panicking write ended");
        assert!(
            panicked.is_err(),
            "the panic reaches its own caller: {panicked:?}"
        );
        let last = last
            .unwrap()
            .recv_timeout(wait)
            .expect("the last write was started")
            .recv_timeout(wait)
            .expect("the last write ran");
        assert!(matches!(last, Ok(Ok(()))), "{last:?}");
        assert_eq!(subjects(&conn), ["after the refused", "kept", "last"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A thread whose prechecked write inserts one outbox row, then fails when `fail`,
    /// counting its runs; it sends what the write returned down a channel.
    fn start_prechecked(
        path: &std::path::Path,
        subject: &'static str,
        fail: bool,
        runs: Arc<AtomicUsize>,
    ) -> std::sync::mpsc::Receiver<Result<(), Error>> {
        let (tx_done, done) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let conn = connect(&path, Synchronous::Normal).unwrap();
            let r = write_prechecked(&conn, |tx| {
                runs.fetch_add(1, Ordering::SeqCst);
                insert(tx, subject)?;
                match fail {
                    true => Err(Error::Internal("failed after a change".into())),
                    false => Ok(()),
                }
            });
            let _ = tx_done.send(r);
        });
        done
    }

    /// Prechecked writes share a transaction without savepoints. One that fails after a
    /// change takes the transaction back: it gets its own error, and the prechecked writes
    /// before it run again and are committed. Behind a write that cannot run again, a
    /// prechecked write gets a savepoint, and its failure takes back only its own change.
    #[test]
    fn a_prechecked_write_that_fails_after_a_change_makes_those_before_it_run_again() {
        let (dir, path, conn, shared) = holding_db("prechecked");
        let wait = Duration::from_secs(20);
        let counter = || Arc::new(AtomicUsize::new(0));
        let (own_runs, b_runs, c_runs) = (counter(), counter(), counter());
        let queued = Mutex::new(None);
        let own = write_prechecked(&conn, |tx| {
            own_runs.fetch_add(1, Ordering::SeqCst);
            insert(tx, "own")?;
            let mut queued = queued.lock().unwrap();
            if queued.is_none() {
                let b = start_prechecked(&path, "b", false, b_runs.clone());
                until_queued(&shared, 1);
                let c = start_prechecked(&path, "c", true, c_runs.clone());
                until_queued(&shared, 2);
                *queued = Some((b, c));
            }
            Ok(())
        });
        assert!(matches!(own, Ok(())), "{own:?}");
        let (b, c) = queued.into_inner().unwrap().unwrap();
        let b = b.recv_timeout(wait).expect("b ended");
        let c = c.recv_timeout(wait).expect("c ended");
        assert!(matches!(b, Ok(())), "{b:?}");
        assert!(
            matches!(&c, Err(Error::Internal(m)) if m == "failed after a change"),
            "c gets its own error: {c:?}"
        );
        assert_eq!(subjects(&conn), ["own", "b"]);
        let runs = |r: &AtomicUsize| r.load(Ordering::SeqCst);
        assert_eq!(
            (runs(&own_runs), runs(&b_runs), runs(&c_runs)),
            (2, 2, 1),
            "the two before c ran again, c once"
        );

        let d_runs = counter();
        let mut queued = None;
        let plain = write(&conn, |tx| {
            insert(tx, "plain")?;
            queued = Some(start_prechecked(&path, "d", true, d_runs.clone()));
            until_queued(&shared, 1);
            Ok(())
        });
        assert!(matches!(plain, Ok(())), "{plain:?}");
        let d = queued.unwrap().recv_timeout(wait).expect("d ended");
        assert!(matches!(d, Err(Error::Internal(_))), "{d:?}");
        assert_eq!(runs(&d_runs), 1);
        assert_eq!(subjects(&conn), ["own", "b", "plain"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The process's life: what `/healthz` reports, and the stop on SIGTERM/SIGINT.
//!
//! Health is the truth about the two things a server needs to keep its promises: the
//! database answers (a read on the asking worker's connection, and a write lock the scheduler
//! takes once a tick), and the scheduler runs (expiries, refunds, webhooks and retention all
//! depend on it). The scheduler reports after every tick; [`Lifecycle::health`] turns that
//! into one line.
//!
//! The stop: SIGTERM and SIGINT are blocked in every thread (before any is started) and
//! waited for by one thread, which runs the HTTP server's graceful stop
//! (`http::server::stop_gracefully`): stop accepting, answer long-polls, let requests in
//! progress finish (bounded), close kept-alive connections, let the scheduler finish its
//! tick, then exit.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

/// How long the scheduler may go without completing a tick before the server reports itself
/// unhealthy. A tick checks every second; a long job (a large backup, retention on a big
/// database) may hold one for a while.
pub const SCHEDULER_STALE: i64 = 120;
/// How long the scheduler's write probe waits for the write lock.
const PROBE_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Lifecycle {
    stopping: AtomicBool,
    /// App-clock second of the scheduler's last completed tick; 0 before the first.
    beat: AtomicI64,
    /// Why the scheduler's last write probe failed, if it did.
    write_error: Mutex<Option<String>>,
    /// Test hook (dev routes only): the scheduler skips its ticks, as if stuck.
    paused: AtomicBool,
    /// The scheduler is inside a tick.
    ticking: AtomicBool,
}

impl Lifecycle {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn pause_scheduler(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn scheduler_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn scheduler_ticking(&self) -> bool {
        self.ticking.load(Ordering::SeqCst)
    }

    pub fn set_ticking(&self, on: bool) {
        self.ticking.store(on, Ordering::SeqCst);
    }

    /// The scheduler started at `now`: its first period counts from here.
    pub fn scheduler_started(&self, now: i64) {
        let _ = self
            .beat
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// At the start of a tick: checks on the scheduler's connection that the database takes
    /// writes (the write lock, then nothing written), before jobs that may wait on it.
    pub fn probe(&self, conn: &Connection) {
        let verdict = probe_write(conn);
        *self.write_error.lock().unwrap_or_else(|p| p.into_inner()) = verdict.err();
    }

    /// The scheduler completed a tick at `now`.
    pub fn beat(&self, now: i64) {
        self.beat.store(now, Ordering::SeqCst);
    }

    /// `Ok` when healthy, else the reason in one line. `db` is the asking worker's connection.
    pub fn health(&self, db: &Connection, now: i64) -> Result<(), String> {
        if self.stopping() {
            return Err("stopping".into());
        }
        db.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1)",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| format!("database does not answer: {e}"))?;
        if let Some(e) = &*self.write_error.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(format!("database does not take writes: {e}"));
        }
        let beat = self.beat.load(Ordering::SeqCst);
        if beat == 0 {
            return Err("scheduler has not started".into());
        }
        let age = now - beat;
        if age > SCHEDULER_STALE {
            return Err(format!("scheduler has not run for {age} s"));
        }
        Ok(())
    }
}

fn probe_write(conn: &Connection) -> Result<(), String> {
    let _ = conn.busy_timeout(PROBE_WAIT);
    let took = conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK");
    let _ = conn.busy_timeout(crate::db::BUSY_TIMEOUT);
    took.map_err(|e| e.to_string())
}

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts afterwards, so
/// only [`wait_for_stop_signal`] receives them. Call before starting any thread.
pub fn block_stop_signals() {
    // SAFETY: a zeroed sigset_t is valid input to sigemptyset; pthread_sigmask only changes
    // this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits until SIGTERM or SIGINT arrives (they must be blocked, see [`block_stop_signals`]);
/// returns its name.
pub fn wait_for_stop_signal() -> &'static str {
    // SAFETY: as above; sigwait stores the received signal's number in `sig`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let mut sig: libc::c_int = 0;
        loop {
            if libc::sigwait(&set, &mut sig) == 0 {
                return if sig == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY)")
            .unwrap();
        c
    }

    #[test]
    fn healthy_only_after_a_recent_tick_and_not_while_stopping() {
        let life = Lifecycle::default();
        let c = db();
        assert_eq!(
            life.health(&c, 1000).unwrap_err(),
            "scheduler has not started"
        );
        life.scheduler_started(900);
        assert_eq!(life.health(&c, 900 + SCHEDULER_STALE), Ok(()));
        life.beat(1000);
        assert_eq!(life.health(&c, 1000 + SCHEDULER_STALE), Ok(()));
        assert!(life
            .health(&c, 1001 + SCHEDULER_STALE)
            .unwrap_err()
            .starts_with("scheduler has not run for"));
        life.beat(2000);
        life.begin_stop();
        assert_eq!(life.health(&c, 2000).unwrap_err(), "stopping");
    }

    #[test]
    fn a_database_without_its_tables_is_unhealthy() {
        let life = Lifecycle::default();
        let c = Connection::open_in_memory().unwrap();
        life.beat(5);
        assert!(life
            .health(&c, 5)
            .unwrap_err()
            .starts_with("database does not answer"));
    }
}

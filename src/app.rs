//! The application's shared, read-mostly state: settings, clock, keys, password hasher and
//! the long-poll notifier. One `Arc<App>` is shared by every thread; each thread owns
//! its own database connection.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::accounts::passwords::Hasher;
use crate::domain::base::crypto::Keys;
use crate::domain::{accounts::sessions, Error};

/// Wakes long-polling readers when an order changes (SMS arrived, expiry). A counter and a
/// condition variable: waiters remember the counter and sleep until it moves. While its one
/// waiter (the parking thread) has no request parked it sleeps in [`Notifier::idle`], and a
/// change only moves the counter: waking it for every order cost the writer preemptions in
/// the middle of its commits.
#[derive(Default)]
pub struct Notifier {
    state: std::sync::Mutex<NotifierState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct NotifierState {
    version: u64,
    /// A waiter waits for the counter to move ([`Notifier::wait`]).
    listening: bool,
    /// A request was parked since the idle waiter last looked ([`Notifier::poke`]).
    poked: bool,
}

impl Notifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, NotifierState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn notify(&self) {
        let mut s = self.lock();
        s.version += 1;
        if s.listening {
            self.changed.notify_all();
        }
    }

    /// Waits until the version differs from `seen`, [`Notifier::poke`] or `timeout`;
    /// returns the version.
    pub fn wait(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let mut s = self.lock();
        s.listening = true;
        let (mut s, _) = self
            .changed
            .wait_timeout_while(s, timeout, |s| s.version == seen && !s.poked)
            .unwrap_or_else(|p| p.into_inner());
        s.poked = false;
        s.version
    }

    /// Waits, deaf to changes, until [`Notifier::poke`] or `timeout`; returns the version.
    pub fn idle(&self, timeout: std::time::Duration) -> u64 {
        let mut s = self.lock();
        s.listening = false;
        let (mut s, _) = self
            .changed
            .wait_timeout_while(s, timeout, |s| !s.poked)
            .unwrap_or_else(|p| p.into_inner());
        s.poked = false;
        s.version
    }

    /// Wakes the waiter, idle or not (a request was parked: it may have missed a change).
    pub fn poke(&self) {
        self.lock().poked = true;
        self.changed.notify_all();
    }
}

pub struct App {
    pub config: Config,
    pub notifier: Notifier,
    pub clock: Clock,
    pub keys: Keys,
    pub hasher: Hasher,
    /// Health and the stop (see [`crate::lifecycle`]).
    pub life: crate::lifecycle::Lifecycle,
    /// Counters for `/metrics` (see [`crate::metrics`]).
    pub metrics: crate::metrics::Metrics,
}

/// glibc keeps a cache of freed blocks in every thread (its tcache). A server has a thread per
/// client connection, and 32 more parked for new ones (`http::server::handoff`): in the bench
/// those caches held 1.5 MiB of the idle server's 8.9 MiB of heap (8.9 → 7.4 MiB without
/// them, at the same speed). glibc reads that setting from the environment only, when a
/// process starts, so `serve` and `demo` execute themselves again once with
/// `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` (the same process id) and
/// `OTPBOX_RESTARTED=1`, never twice. A setting of the caches already in `GLIBC_TUNABLES`
/// is kept; a process in glibc's secure mode is not started again. If the new start fails,
/// this one goes on.
pub fn without_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const TUNABLE: &str = "glibc.malloc.tcache_count";
        // Set on the new start, so there is never a second one, whatever glibc made of the
        // setting: in secure mode (a setuid binary, or one given capabilities with `setcap`
        // to listen on port 80) glibc drops it, which is also why such a process is left as
        // it is.
        const RESTARTED: &str = "OTPBOX_RESTARTED";
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        // SAFETY: getauxval only reads the process's auxiliary vector.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        if current.contains(TUNABLE) || std::env::var_os(RESTARTED).is_some() || secure {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let value = match current.is_empty() {
            true => format!("{TUNABLE}=0"),
            false => format!("{current}:{TUNABLE}=0"),
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", value)
            .env(RESTARTED, "1")
            .exec();
        eprintln!("otpbox: note: could not start again without glibc's thread caches: {err}");
    }
}

/// Makes glibc's malloc give large blocks back to the system. Each argon2 hash takes 12 MiB;
/// with glibc's default (a dynamic mmap threshold that rises to the size of the last large
/// block freed) every block after the first comes from a thread's arena and stays resident
/// when freed, about 12 MiB per worker that ever hashed. A fixed threshold keeps every large
/// block in its own mapping, unmapped the moment it is freed.
///
/// Arenas: four per core, at least 8 (glibc's own default is eight per core). Without the
/// thread caches (see [`without_thread_caches`]) every `malloc` and `free` locks the arena
/// its block belongs to, and a block is often freed by another thread than the one that
/// made it (a connection thread's request, a worker's response). Threads are given arenas
/// in turn as they start, so with two arenas the two workers running on a 2-core machine
/// shared one at every other start of the server: measured, the dashboard then cost
/// 1,050–1,530 µs of CPU per page instead of 510–560 (a quarter of it in the arena's
/// lock), at random from one start to the next. With 8 the pages cost 510–700 µs at every
/// start, for 0.3–0.4 MiB more resident after a burst of sign-ins.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = i32::try_from((4 * crate::cpu::cores()).max(8)).unwrap_or(i32::MAX);
        // SAFETY: mallopt only changes allocator parameters; it is called before the
        // threads that allocate start, and glibc makes it thread-safe anyway.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

impl App {
    /// Opens (and migrates) the database and loads the keys.
    pub fn new(config: Config) -> Result<Arc<App>, Error> {
        tune_allocator();
        let clock = if config.dev_clock {
            Clock::movable()
        } else {
            Clock::system()
        };
        let conn = crate::db::open(&config.data, config.synchronous)?;
        if crate::domain::market::catalogue::seed_if_empty(&conn)? {
            log::info!("catalogue seeded with the default countries, services and prices");
        }
        // The stock counters' mark to this install's cooldown before any reader: a reader
        // corrects the counters by the usage between the mark and its cutoff.
        let (cooldown, now) = (config.reuse_cooldown, clock.now());
        crate::db::write(&conn, |tx| {
            crate::domain::market::catalogue::advance_stock_mark(tx, cooldown, now)
        })?;
        drop(conn);
        let keys = Keys::load_or_create(&config.data)
            .map_err(|e| Error::Internal(format!("secret key: {e}")))?;
        let hasher = Hasher::new(config.max_hashes);
        Ok(Arc::new(App {
            config,
            notifier: Notifier::default(),
            life: Default::default(),
            metrics: Default::default(),
            clock,
            keys,
            hasher,
        }))
    }

    /// Something about orders changed: wake long-poll waiters.
    pub fn notify(&self) {
        self.notifier.notify();
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The ordering rules in force.
    pub fn policy(&self) -> crate::domain::market::activations::Policy {
        crate::domain::market::activations::Policy {
            early_cancel: self.config.early_cancel,
            default_ttl: self.config.activation_ttl,
            max_live: self.config.max_active_activations,
            cooldown: self.config.reuse_cooldown,
            sim_delay: self.config.sim_delay,
            sim_odds: self.config.sim_odds,
            operator_share: self.config.operator_share,
            allow_private_urls: self.config.webhook_allow_private,
        }
    }

    pub fn session_limits(&self) -> sessions::Limits {
        sessions::Limits {
            idle: self.config.session_idle,
            max: self.config.session_max,
        }
    }

    /// A fresh connection for a thread that has none (CLI commands, jobs).
    pub fn connect(&self) -> Result<rusqlite::Connection, Error> {
        let conn = crate::db::connect(&self.config.db_path(), self.config.synchronous)?;
        // 0 leaves checkpoints to Litestream (README, Off-site replication).
        conn.pragma_update(None, "wal_autocheckpoint", self.config.wal_autocheckpoint)?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::Notifier;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// The idle waiter sleeps through changes and wakes when a request is parked; a waiter
    /// listening for changes wakes on the next one, and one that missed it returns at once.
    #[test]
    fn changes_wake_a_listening_waiter_and_a_park_wakes_the_idle_one() {
        let n = Arc::new(Notifier::default());
        let start = Instant::now();
        n.notify();
        assert_eq!(n.idle(Duration::from_millis(50)), 1);
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "a change woke it"
        );

        let poker = Arc::clone(&n);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            poker.poke();
        });
        let start = Instant::now();
        n.idle(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();

        // Missed while idle: seen at once by the next wait.
        n.notify();
        assert_eq!(n.wait(1, Duration::from_secs(10)), 2);

        let notifier = Arc::clone(&n);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            notifier.notify();
        });
        let start = Instant::now();
        assert_eq!(n.wait(2, Duration::from_secs(10)), 3);
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();

        // A request parked while the waiter listens wakes it too.
        let poker = Arc::clone(&n);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            poker.poke();
        });
        let start = Instant::now();
        assert_eq!(n.wait(3, Duration::from_secs(10)), 3);
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }
}

//! The process's CPU slots, one per core (at least two): a request worker takes a request
//! only while it holds one, and gives it up when the request starts to wait (for the shared
//! write connection's commit, for another server, for a password hash), so that another
//! worker takes the next request meanwhile. Having waited, it finishes its request without
//! a slot and then waits for one before it takes another.
//!
//! Why: writes are committed together (`db::shared`), so the more requests wait for one
//! commit, the more share it, and a server with more workers than cores writes faster
//! (order→cancel, README "Performance"). But where all those workers take requests, pages
//! share the cores by time slices and each takes as long as several: the signed-in
//! dashboard's p99 went from 4 to 7 ms with 4 workers on 2 cores. Handing every request
//! to whichever thread got a slot was no better: each ran on a cold core. With slots, as
//! many workers as there are cores take requests (the kernel tends to keep each on a core of
//! its own; nothing pins them); the others stand in for one that waits. (Go's scheduler hands
//! a processor on in the same way when a goroutine enters a blocking system call.) What runs
//! without a slot: the rest of a request after its wait (usually its answer; it may write or
//! call out again), the combiner a waiting writer became, a hash (bounded by `max_hashes`),
//! and an answer that may wait to be written (`http::server::finish`).
//!
//! Threads other than the request workers (upload readers, the scheduler, the long-poll
//! thread, tiny_http's readers) take no slot.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A set of slots: the process's ([`Worker::default`]), or a test's own.
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

thread_local! {
    /// The slots this thread holds one of, if any.
    static HELD: Cell<Option<&'static Slots>> = const { Cell::new(None) };
}

/// The cores this process may run on (2 when the system cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The process's slots: one per core, at least two (with one, a request that waits holding
/// its slot, as a slow client reading its answer does, would stop every other).
fn process_slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots::new(cores().max(2)))
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// Takes a free slot, waiting for one at most `within` (for ever with `None`); false
    /// when none came free in time.
    fn take(&self, within: Option<Duration>) -> bool {
        let deadline = within.map(|d| Instant::now() + d);
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = match deadline {
                None => self.freed.wait(free).unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.freed
                        .wait_timeout(free, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        *free -= 1;
        true
    }

    fn put(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.freed.notify_one();
    }
}

/// A request worker's hold on the slots: [`Worker::hold`] before taking a request; the slot
/// goes back when the request gives it up ([`give_up`]) or the worker ends, even by a
/// panic. Bound to its thread (not `Send`).
pub struct Worker {
    slots: &'static Slots,
    thread_bound: PhantomData<*const ()>,
}

impl Default for Worker {
    /// A worker on the process's slots.
    fn default() -> Worker {
        Worker::on(process_slots())
    }
}

impl Worker {
    pub fn on(slots: &'static Slots) -> Worker {
        Worker {
            slots,
            thread_bound: PhantomData,
        }
    }

    /// Takes a slot unless this thread holds one, waiting for one if every slot is held.
    pub fn hold(&self) {
        self.hold_for(None);
    }

    /// [`Worker::hold`], waiting at most `within`; false when no slot came free in time.
    pub fn hold_within(&self, within: Duration) -> bool {
        self.hold_for(Some(within))
    }

    fn hold_for(&self, within: Option<Duration>) -> bool {
        if HELD.get().is_none() {
            if !self.slots.take(within) {
                return false;
            }
            HELD.set(Some(self.slots));
        }
        true
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        give_up();
    }
}

/// Gives this thread's slot up, if it holds one, before the request waits: another worker
/// takes the next request meanwhile. The thread takes none back until its worker asks
/// ([`Worker::hold`]).
pub fn give_up() {
    if let Some(slots) = HELD.take() {
        slots.put();
    }
}

/// A ureq middleware for the agents request workers call other servers with (upstream
/// providers, payment gateways, OpenID providers): the calling thread gives its slot up
/// before the call waits on the network.
pub fn calling_out(
    request: ureq::http::Request<ureq::SendBody>,
    next: ureq::middleware::MiddlewareNext,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    give_up();
    next.handle(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Slots of a test's own, so tests running at once do not share them.
    fn slots(n: usize) -> &'static Slots {
        Box::leak(Box::new(Slots::new(n)))
    }

    fn free(slots: &Slots) -> usize {
        *slots.free.lock().unwrap()
    }

    #[test]
    fn no_more_workers_compute_at_once_than_there_are_slots_and_waiting_ones_do_not_count() {
        let slots = slots(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        let most_waiting = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                let (waiting, most_waiting) = (waiting.clone(), most_waiting.clone());
                std::thread::spawn(move || {
                    let worker = Worker::on(slots);
                    for _ in 0..20 {
                        worker.hold();
                        worker.hold(); // holding one already: takes no second
                        let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(300));
                        running.fetch_sub(1, Ordering::SeqCst);
                        give_up();
                        assert!(HELD.get().is_none());
                        let n = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                        most_waiting.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        waiting.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        // While some waited, others computed: the waiting ones held no slot.
        assert!(most_waiting.load(Ordering::SeqCst) > 0);
        assert_eq!(free(slots), 2, "every slot came back");
    }

    #[test]
    fn a_worker_that_ends_by_a_panic_gives_its_slot_back() {
        let slots = slots(2);
        for _ in 0..3 {
            let r = std::thread::spawn(move || {
                let worker = Worker::on(slots);
                worker.hold();
                panic!("boom");
            })
            .join();
            assert!(r.is_err());
            assert_eq!(free(slots), 2);
        }
    }

    #[test]
    fn a_worker_waits_for_a_slot_no_longer_than_it_asked() {
        let slots = slots(1);
        let (held, is_held) = std::sync::mpsc::channel();
        let (go, gone) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let worker = Worker::on(slots);
            worker.hold();
            held.send(()).unwrap();
            let _ = gone.recv();
        });
        is_held.recv().unwrap();
        let worker = Worker::on(slots);
        assert!(!worker.hold_within(Duration::from_millis(50)));
        assert!(HELD.get().is_none());
        go.send(()).unwrap();
        assert!(worker.hold_within(Duration::from_secs(20)));
        assert!(HELD.get().is_some());
        assert!(worker.hold_within(Duration::ZERO), "held already");
        assert_eq!(free(slots), 0);
        drop(worker);
        assert!(HELD.get().is_none());
        assert_eq!(free(slots), 1);
        holder.join().unwrap();
    }

    #[test]
    fn giving_up_without_a_slot_does_nothing() {
        let slots = slots(1);
        give_up();
        assert_eq!(free(slots), 1);
        let worker = Worker::on(slots);
        worker.hold();
        give_up();
        give_up();
        assert_eq!(free(slots), 1, "given back once");
        assert!(HELD.get().is_none());
    }
}

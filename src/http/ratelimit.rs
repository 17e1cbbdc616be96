//! Rate limits for the customer APIs (`/api/`, `/v1/`, `/stubs/handler_api.php`): token
//! buckets per API key and per client IP, in memory, checked in [`super::route`] before any
//! handler runs. Over the limit the caller gets its protocol's own error with `Retry-After`:
//! the native API a 429 JSON error, 5sim a 429 plain-text body, handler_api an HTTP 200
//! `TOO_MANY_REQUESTS` token (its clients treat any status ≥ 400 as a network failure).
//!
//! Buckets are keyed without touching the database: a key by a keyed hash of the string the
//! client presented (valid or not), an IP by its address (IPv6 by its /64, which one client
//! usually holds whole). Token amounts are integers in thousandths of a request, refilled from
//! the App clock's milliseconds, so the arithmetic is exact and a test can inject the time.
//!
//! Memory is bounded: each table holds at most [`MAX_BUCKETS`] buckets. A bucket that has
//! refilled to its burst is the same as no bucket, so sweeps drop those; when a table is full
//! of busy buckets, new clients are let through untracked (and a warning is logged) rather than
//! evicting the clients being limited.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;

use super::{Request, Response};
use crate::config::Limit;
use crate::domain::Error;

/// Buckets per table (keys, IPs) at most.
pub const MAX_BUCKETS: usize = 65_536;
/// A table is swept for idle buckets at most this often (milliseconds).
const SWEEP_EVERY_MS: i64 = 60_000;
/// After a sweep of a full table, the next one waits at least this long, so a flood of new
/// identities cannot make every request pay for a sweep.
const FULL_SWEEP_PAUSE_MS: i64 = 1_000;
/// Thousandths of a request: the unit of bucket contents.
const MILLI: u64 = 1_000;

/// Tokens in a full bucket, in thousandths of a request.
fn capacity(limit: Limit) -> u64 {
    limit.burst.saturating_mul(MILLI)
}

/// One token bucket: its contents (thousandths of a request) as of `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    tokens: u64,
    at_ms: i64,
}

impl Bucket {
    /// A new client's bucket: full.
    pub fn full(limit: Limit, now_ms: i64) -> Bucket {
        Bucket {
            tokens: capacity(limit),
            at_ms: now_ms,
        }
    }

    /// The contents at `now_ms` (a clock that went backwards refills nothing).
    fn level(&self, limit: Limit, now_ms: i64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.at_ms).max(0) as u64;
        // `rate` requests per second = `rate` thousandths per millisecond.
        self.tokens
            .saturating_add(elapsed.saturating_mul(limit.rate))
            .min(capacity(limit))
    }

    /// Takes one request. `Err(seconds)` when the bucket is empty: when the next request will
    /// be allowed, rounded up to a whole second (at least 1).
    pub fn take(&mut self, limit: Limit, now_ms: i64) -> Result<(), u64> {
        self.tokens = self.level(limit, now_ms);
        self.at_ms = self.at_ms.max(now_ms);
        if self.tokens >= MILLI {
            self.tokens -= MILLI;
            return Ok(());
        }
        let missing = MILLI - self.tokens;
        let wait_ms = missing.div_ceil(limit.rate.max(1));
        Err(wait_ms.div_ceil(1000).max(1))
    }

    /// True when the bucket has refilled to its burst: forgetting it changes nothing.
    fn is_idle(&self, limit: Limit, now_ms: i64) -> bool {
        self.level(limit, now_ms) >= capacity(limit)
    }
}

/// Buckets of one kind (keys or IPs) under one lock.
struct Table<K> {
    limit: Limit,
    inner: Mutex<TableInner<K>>,
}

struct TableInner<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep_ms: i64,
    warned_full: bool,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new(limit: Limit) -> Table<K> {
        Table {
            limit,
            inner: Mutex::new(TableInner {
                buckets: HashMap::new(),
                last_sweep_ms: i64::MIN,
                warned_full: false,
            }),
        }
    }

    fn take(&self, key: K, now_ms: i64, max: usize) -> Result<(), u64> {
        if self.limit.is_off() {
            return Ok(());
        }
        let limit = self.limit;
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = t.buckets.get_mut(&key) {
            return b.take(limit, now_ms);
        }
        let since = now_ms.saturating_sub(t.last_sweep_ms);
        let full = t.buckets.len() >= max;
        if since >= SWEEP_EVERY_MS || (full && since >= FULL_SWEEP_PAUSE_MS) {
            t.buckets.retain(|_, b| !b.is_idle(limit, now_ms));
            t.last_sweep_ms = now_ms;
        }
        if t.buckets.len() >= max {
            if !t.warned_full {
                t.warned_full = true;
                log::warn!(
                    "rate limiter: {max} clients are being limited at once; \
                     further new clients pass untracked until some go quiet"
                );
            }
            return Ok(());
        }
        t.warned_full = false;
        let mut b = Bucket::full(limit, now_ms);
        let verdict = b.take(limit, now_ms);
        t.buckets.insert(key, b);
        verdict
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buckets
            .len()
    }
}

/// The limiter of the whole server, shared through `App`.
pub struct RateLimiter {
    keys: Table<u64>,
    ips: Table<IpAddr>,
    hasher: RandomState,
    max: usize,
}

impl RateLimiter {
    pub fn new(per_key: Limit, per_ip: Limit) -> RateLimiter {
        RateLimiter {
            keys: Table::new(per_key),
            ips: Table::new(per_ip),
            hasher: RandomState::new(),
            max: MAX_BUCKETS,
        }
    }

    #[cfg(test)]
    fn with_max(mut self, max: usize) -> RateLimiter {
        self.max = max;
        self
    }

    /// One request from `ip`, presenting `key` (if any). `Err(seconds)` when over a limit.
    /// The IP bucket is charged first; a request refused by it does not touch the key's.
    pub fn check(&self, ip: IpAddr, key: Option<&str>, now_ms: i64) -> Result<(), u64> {
        self.ips.take(ip_bucket(ip), now_ms, self.max)?;
        match key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => self.keys.take(self.hasher.hash_one(k), now_ms, self.max),
            None => Ok(()),
        }
    }

    /// Buckets held now (keys, IPs).
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (self.keys.len(), self.ips.len())
    }
}

/// IPv4 as is (also when mapped into IPv6); IPv6 by its /64.
fn ip_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
    }
}

/// The customer-API protocols, each with its own way of saying "too many requests".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `/api/…`: JSON errors.
    Native,
    /// `/v1/…`: 5sim, plain-text errors.
    FiveSim,
    /// `/stubs/handler_api.php` (and its flavours, `/herosms/…`, `/grizzly/…`): SMS-Activate
    /// text tokens, always HTTP 200.
    HandlerApi,
}

impl Protocol {
    /// The protocol of a path, or None for paths that are not rate limited.
    pub fn of(path: &str) -> Option<Protocol> {
        if path.starts_with("/api/") {
            Some(Protocol::Native)
        } else if path.starts_with("/v1/") {
            Some(Protocol::FiveSim)
        } else if path.ends_with("/stubs/handler_api.php") {
            Some(Protocol::HandlerApi)
        } else {
            None
        }
    }

    /// The API key the request presents, as the protocol carries it.
    pub fn key(self, req: &Request) -> Option<String> {
        match self {
            Protocol::Native | Protocol::FiveSim => req.bearer().map(str::to_string),
            Protocol::HandlerApi => req.api_param("api_key").map(str::to_string),
        }
    }

    /// The protocol's "too many requests" answer.
    pub fn refusal(self, retry_after: u64) -> Response {
        let resp = match self {
            Protocol::Native => {
                return super::api::error(&Error::Throttled { retry_after });
            }
            Protocol::FiveSim => Response::text(429, "too many requests"),
            Protocol::HandlerApi => Response::text(200, "TOO_MANY_REQUESTS"),
        };
        resp.with_header("Retry-After", &retry_after.to_string())
    }
}

/// The central guard: None when the request may go on, else the refusal to send.
pub fn guard(limiter: &RateLimiter, req: &Request, now_ms: i64) -> Option<Response> {
    let protocol = Protocol::of(&req.path)?;
    let key = protocol.key(req);
    match limiter.check(req.remote_ip, key.as_deref(), now_ms) {
        Ok(()) => None,
        Err(retry_after) => Some(protocol.refusal(retry_after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    const L: Limit = Limit { rate: 2, burst: 3 };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let t0 = 1_000_000;
        let mut b = Bucket::full(L, t0);
        for _ in 0..3 {
            assert_eq!(b.take(L, t0), Ok(()));
        }
        // Empty: 2 per second means the next one in 500 ms, rounded up to 1 s.
        assert_eq!(b.take(L, t0), Err(1));
        assert_eq!(b.take(L, t0 + 499), Err(1));
        assert_eq!(b.take(L, t0 + 500), Ok(()));
        assert_eq!(b.take(L, t0 + 500), Err(1));
        // A long pause refills to the burst, never beyond.
        let later = t0 + 60_000;
        for _ in 0..3 {
            assert_eq!(b.take(L, later), Ok(()));
        }
        assert!(b.take(L, later).is_err());
    }

    #[test]
    fn retry_after_is_the_whole_seconds_until_the_next_token() {
        let slow = Limit { rate: 1, burst: 1 };
        let mut b = Bucket::full(slow, 0);
        assert_eq!(b.take(slow, 0), Ok(()));
        assert_eq!(b.take(slow, 0), Err(1));
        assert_eq!(b.take(slow, 999), Err(1));
        assert_eq!(b.take(slow, 1000), Ok(()));
        // Refusals cost nothing: the bucket keeps refilling while a client is refused.
        let mut b = Bucket::full(slow, 0);
        b.take(slow, 0).unwrap();
        for t in [100, 200, 300] {
            assert!(b.take(slow, t).is_err());
        }
        assert_eq!(b.take(slow, 1000), Ok(()));
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let mut b = Bucket::full(L, 10_000);
        for _ in 0..3 {
            b.take(L, 10_000).unwrap();
        }
        assert!(b.take(L, 5_000).is_err());
        assert!(b.take(L, 10_000).is_err());
        assert_eq!(b.take(L, 10_500), Ok(()));
    }

    #[test]
    fn keys_and_ips_have_separate_buckets() {
        let lim = RateLimiter::new(Limit { rate: 1, burst: 2 }, Limit { rate: 1, burst: 5 });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = 0;
        assert!(lim.check(ip, Some("otp_a"), t).is_ok());
        assert!(lim.check(ip, Some("otp_a"), t).is_ok());
        assert_eq!(lim.check(ip, Some("otp_a"), t), Err(1));
        // Another key from the same address has its own bucket...
        assert!(lim.check(ip, Some("otp_b"), t).is_ok());
        // ...until the address's own bucket (5) is empty.
        assert!(lim.check(ip, Some("otp_b"), t).is_ok());
        assert_eq!(lim.check(ip, Some("otp_c"), t), Err(1));
        assert_eq!(lim.check(ip, None, t), Err(1));
        // The exhausted key is refused from another address too.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(lim.check(other, Some("otp_a"), t), Err(1));
        assert!(lim.check(other, Some("otp_d"), t).is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let lim = RateLimiter::new(Limit { rate: 0, burst: 0 }, Limit { rate: 1, burst: 1 });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(lim.check(a, None, 0).is_ok());
        assert!(lim.check(b, None, 0).is_err());
        assert!(lim.check(c, None, 0).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(lim.check(mapped, None, 0).is_ok());
        assert!(lim.check(v4, None, 0).is_err());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let lim = RateLimiter::new(Limit { rate: 0, burst: 10 }, Limit { rate: 10, burst: 0 });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(lim.check(ip, Some("k"), 0).is_ok());
        }
        assert_eq!(lim.sizes(), (0, 0));
    }

    #[test]
    fn memory_stays_bounded_and_idle_buckets_are_forgotten() {
        let lim = RateLimiter::new(Limit { rate: 1, burst: 1 }, Limit { rate: 0, burst: 0 })
            .with_max(100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..500 {
            assert!(lim.check(ip, Some(&format!("key{i}")), 0).is_ok());
        }
        assert_eq!(lim.sizes().0, 100, "the table stops growing at its bound");
        // Full of busy buckets: a new client passes untracked; an old one is still limited.
        assert!(lim.check(ip, Some("key0"), 0).is_err());
        // Once the buckets have refilled, the next new client sweeps them away.
        assert!(lim.check(ip, Some("fresh"), 5_000).is_ok());
        assert_eq!(lim.sizes().0, 1);
    }

    #[test]
    fn each_protocol_refuses_in_its_own_form() {
        let native = Protocol::of("/api/v1/balance").unwrap().refusal(3);
        assert_eq!(native.status, 429);
        assert_eq!(native.header("Retry-After"), Some("3"));
        assert_eq!(native.header("Content-Type"), Some("application/json"));
        let five = Protocol::of("/v1/user/profile").unwrap().refusal(2);
        assert_eq!(
            (five.status, five.body.as_slice()),
            (429, &b"too many requests"[..])
        );
        assert_eq!(five.header("Retry-After"), Some("2"));
        let sa = Protocol::of("/stubs/handler_api.php").unwrap().refusal(1);
        assert_eq!(
            (sa.status, sa.body.as_slice()),
            (200, &b"TOO_MANY_REQUESTS"[..])
        );
        assert_eq!(sa.header("Retry-After"), Some("1"));
        assert_eq!(Protocol::of("/dashboard"), None);
        assert_eq!(Protocol::of("/v1"), None);
    }

    #[test]
    fn keys_are_found_where_each_protocol_carries_them() {
        let bearer = Request::fake(Method::Get, "/v1/user/profile", b"")
            .with_header("Authorization", "Bearer otp_abc ");
        assert_eq!(Protocol::FiveSim.key(&bearer).as_deref(), Some("otp_abc"));
        let query = Request::fake(
            Method::Get,
            "/stubs/handler_api.php?api_key=k1&action=getBalance",
            b"",
        );
        assert_eq!(Protocol::HandlerApi.key(&query).as_deref(), Some("k1"));
        let form = Request::fake(
            Method::Post,
            "/stubs/handler_api.php",
            b"action=getBalance&api_key=k2",
        )
        .with_header("Content-Type", "application/x-www-form-urlencoded");
        assert_eq!(Protocol::HandlerApi.key(&form).as_deref(), Some("k2"));
        let none = Request::fake(Method::Get, "/api/v1/balance", b"");
        assert_eq!(Protocol::Native.key(&none), None);
    }
}

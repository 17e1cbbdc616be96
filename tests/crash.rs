//! Money survives `kill -9`: a randomized concurrent money workload over the three customer
//! protocols (handler_api.php, the native API, 5sim: orders with idempotency ids, cancels,
//! finishes, vouchers, rentals, extensions) runs against the real server, which is killed
//! with SIGKILL at random moments and restarted on the same data directory. After every
//! restart `otpbox check` must pass (integrity, foreign keys, every balance equal to its
//! ledger) and each account's ledger must hold everything its client was told: an
//! acknowledged charge, refund or voucher credit is there; an unacknowledged one may or may
//! not be; an idempotency id never made two orders; nothing was bought that no client asked
//! for.
//!
//! Each account is driven by one client thread, so what it was told is a plain sequence. The
//! default run (CI) does 12 kills; a long run is configured by the environment:
//!
//! ```sh
//! OTPBOX_CRASH_KILLS=120 OTPBOX_CRASH_OPS=1000000 OTPBOX_CRASH_ROUND_MS=8000 \
//!     cargo test --release --test crash -- --nocapture
//! ```
//!
//! `OTPBOX_CRASH_SEED` repeats a run's random choices (the seed is printed); the moments of
//! the kills still depend on timing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const ACCOUNTS: usize = 4;
const COUNTRY: i64 = 6;
const FIVESIM_COUNTRY: &str = "indonesia";
const SERVICE: &str = "tg";
const FIVESIM_PRODUCT: &str = "telegram";
/// Live orders a client keeps before it prefers closing ones.
const LIVE_TARGET: usize = 30;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: enough randomness for choosing operations, and repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One HTTP/1.1 exchange on a fresh connection. `Err` is a transport failure: the server may
/// or may not have acted on the request.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let length: Option<usize> = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    if length.is_some_and(|n| rest.len() < n) {
        return Err(std::io::Error::other("truncated body"));
    }
    Ok((status, rest.to_string()))
}

/// What one client was told, and what it sent without hearing back.
#[derive(Default)]
struct Book {
    user_id: i64,
    key: String,
    /// Idempotency ids of orders whose number the client was given.
    acked_keys: BTreeSet<String>,
    /// Idempotency ids sent without an answer: retried later with the same id.
    pending_keys: BTreeSet<String>,
    /// Orders placed through 5sim (no idempotency id), by activation id.
    acked_fivesim: BTreeSet<i64>,
    /// 5sim purchases sent without an answer.
    unknown_fivesim: u64,
    /// Activations the client holds open: (id, protocol).
    live: Vec<i64>,
    /// Activations whose cancel the client saw succeed: each must have its refund.
    acked_refunds: BTreeSet<i64>,
    acked_rentals: BTreeSet<i64>,
    unknown_rentals: u64,
    live_rentals: Vec<i64>,
    /// Rentals whose cancel succeeded: refunded.
    acked_rental_refunds: BTreeSet<i64>,
    /// Extensions the client saw succeed, per rental: each is one more charge.
    acked_extensions: BTreeMap<i64, u64>,
    vouchers: Vec<String>,
    acked_vouchers: u64,
    unknown_vouchers: u64,
    next_key: u64,
}

/// One random operation of `book`'s client against `addr`. Returns false when the server did
/// not answer (it is down: the round is over).
fn step(addr: SocketAddr, book: &mut Book, rng: &mut Rng) -> bool {
    let key = book.key.clone();
    let handler = |q: &str| format!("/stubs/handler_api.php?api_key={key}&{q}");
    // Retry an order whose answer was lost, with its idempotency id.
    if let Some(k) = book.pending_keys.iter().next().cloned() {
        let body = json!({"country": COUNTRY, "service": SERVICE, "order_id": k});
        return match call(addr, "POST", "/api/v1/activations", &key, Some(&body)) {
            Ok((200 | 201, text)) => {
                let a: Value = serde_json::from_str(&text).unwrap();
                book.pending_keys.remove(&k);
                book.acked_keys.insert(k);
                book.live.push(a["id"].as_i64().unwrap());
                true
            }
            // Refused now (no numbers, too many orders): it may or may not exist from before.
            Ok(_) => true,
            Err(_) => false,
        };
    }
    let closing = book.live.len() > LIVE_TARGET;
    let choice = if closing { rng.below(4) } else { rng.below(15) };
    match choice {
        // Cancel a live activation, through one of the three protocols.
        0..=2 if !book.live.is_empty() => {
            let i = rng.below(book.live.len() as u64) as usize;
            let id = book.live[i];
            let answered = match choice {
                0 => call(
                    addr,
                    "POST",
                    &format!("/api/v1/activations/{id}/cancel"),
                    &key,
                    None,
                )
                .map(|(s, _)| s == 200),
                1 => call(
                    addr,
                    "GET",
                    &handler(&format!("action=setStatus&id={id}&status=8")),
                    &key,
                    None,
                )
                .map(|(_, t)| t == "ACCESS_CANCEL"),
                _ => call(addr, "GET", &format!("/v1/user/cancel/{id}"), &key, None)
                    .map(|(s, _)| s == 200),
            };
            match answered {
                Ok(true) => {
                    book.live.swap_remove(i);
                    book.acked_refunds.insert(id);
                    true
                }
                Ok(false) => {
                    book.live.swap_remove(i);
                    true
                }
                Err(_) => false,
            }
        }
        // Finish one (no money moves; refused while no code came).
        3 if !book.live.is_empty() => {
            let id = book.live[rng.below(book.live.len() as u64) as usize];
            let r = if rng.below(2) == 0 {
                call(
                    addr,
                    "POST",
                    &format!("/api/v1/activations/{id}/complete"),
                    &key,
                    None,
                )
            } else {
                call(
                    addr,
                    "GET",
                    &handler(&format!("action=setStatus&id={id}&status=6")),
                    &key,
                    None,
                )
            };
            r.is_ok()
        }
        // Order with an idempotency id: native API or handler_api.
        4..=7 => {
            book.next_key += 1;
            let k = format!("crash-{}-{}", book.user_id, book.next_key);
            book.pending_keys.insert(k.clone());
            let id = if choice < 6 {
                let body = json!({"country": COUNTRY, "service": SERVICE, "order_id": k});
                match call(addr, "POST", "/api/v1/activations", &key, Some(&body)) {
                    Ok((201, text)) => serde_json::from_str::<Value>(&text).unwrap()["id"].as_i64(),
                    Ok(_) => None,
                    Err(_) => return false,
                }
            } else {
                let q = format!("action=getNumber&service={SERVICE}&country={COUNTRY}&orderId={k}");
                match call(addr, "GET", &handler(&q), &key, None) {
                    Ok((_, t)) => t
                        .strip_prefix("ACCESS_NUMBER:")
                        .and_then(|r| r.split(':').next()?.parse().ok()),
                    Err(_) => return false,
                }
            };
            book.pending_keys.remove(&k);
            if let Some(id) = id {
                book.acked_keys.insert(k);
                book.live.push(id);
            }
            true
        }
        // 5sim purchase (5sim has no idempotency id).
        8 => {
            let path = format!("/v1/user/buy/activation/{FIVESIM_COUNTRY}/any/{FIVESIM_PRODUCT}");
            match call(addr, "GET", &path, &key, None) {
                Ok((200, text)) => {
                    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
                        .as_i64()
                        .unwrap();
                    book.acked_fivesim.insert(id);
                    book.live.push(id);
                    true
                }
                Ok(_) => true,
                Err(_) => {
                    book.unknown_fivesim += 1;
                    false
                }
            }
        }
        // Rent, through the native API or handler_api.
        9 | 10 => {
            let id = if choice == 9 {
                let body = json!({"country": COUNTRY, "service": SERVICE, "hours": 4});
                match call(addr, "POST", "/api/v1/rentals", &key, Some(&body)) {
                    Ok((201, t)) => serde_json::from_str::<Value>(&t).unwrap()["id"].as_i64(),
                    Ok(_) => None,
                    Err(_) => {
                        book.unknown_rentals += 1;
                        return false;
                    }
                }
            } else {
                let q =
                    format!("action=getRentNumber&service={SERVICE}&country={COUNTRY}&rent_time=4");
                match call(addr, "GET", &handler(&q), &key, None) {
                    Ok((_, t)) => serde_json::from_str::<Value>(&t)
                        .ok()
                        .and_then(|v| v["phone"]["id"].as_i64()),
                    Err(_) => {
                        book.unknown_rentals += 1;
                        return false;
                    }
                }
            };
            if let Some(id) = id {
                book.acked_rentals.insert(id);
                book.live_rentals.push(id);
            }
            true
        }
        // Cancel a rental (refunded) or extend it by an hour (charged).
        11 | 12 if !book.live_rentals.is_empty() => {
            let i = rng.below(book.live_rentals.len() as u64) as usize;
            let id = book.live_rentals[i];
            if choice == 11 {
                let r = if rng.below(2) == 0 {
                    call(
                        addr,
                        "POST",
                        &format!("/api/v1/rentals/{id}/cancel"),
                        &key,
                        None,
                    )
                    .map(|(s, _)| s == 200)
                } else {
                    call(
                        addr,
                        "GET",
                        &handler(&format!("action=setRentStatus&id={id}&status=2")),
                        &key,
                        None,
                    )
                    .map(|(_, t)| t.contains("\"success\""))
                };
                match r {
                    Ok(ok) => {
                        book.live_rentals.swap_remove(i);
                        if ok {
                            book.acked_rental_refunds.insert(id);
                        }
                        true
                    }
                    Err(_) => false,
                }
            } else {
                let body = json!({"hours": 1});
                match call(
                    addr,
                    "POST",
                    &format!("/api/v1/rentals/{id}/extend"),
                    &key,
                    Some(&body),
                ) {
                    Ok((200, _)) => {
                        *book.acked_extensions.entry(id).or_default() += 1;
                        true
                    }
                    Ok(_) => true,
                    Err(_) => false,
                }
            }
        }
        // Redeem a voucher.
        13 if !book.vouchers.is_empty() => {
            let code = book.vouchers.pop().unwrap();
            let body = json!({"code": code});
            match call(addr, "POST", "/api/v1/vouchers/redeem", &key, Some(&body)) {
                Ok((200, _)) => {
                    book.acked_vouchers += 1;
                    true
                }
                Ok(_) => true,
                Err(_) => {
                    book.unknown_vouchers += 1;
                    false
                }
            }
        }
        // A read: the balance, in the protocol the dice chose.
        _ => call(addr, "GET", &handler("action=getBalance"), &key, None).is_ok(),
    }
}

/// Everything the database must show for what `book`'s client was told.
fn verify(db: &rusqlite::Connection, book: &Book, problems: &mut Vec<String>) {
    let u = book.user_id;
    let count = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> i64 {
        db.query_row(sql, params, |r| r.get(0)).unwrap()
    };
    let charged = |ref_type: &str, id: i64| -> i64 {
        count(
            "SELECT COUNT(*) FROM ledger WHERE user_id = ?1 AND kind = 'charge' \
             AND ref_type = ?2 AND ref_id = ?3",
            &[&u, &ref_type, &id],
        )
    };
    let refunded = |ref_type: &str, id: i64| -> i64 {
        count(
            "SELECT COUNT(*) FROM ledger WHERE user_id = ?1 AND kind = 'refund' \
             AND ref_type = ?2 AND ref_id = ?3",
            &[&u, &ref_type, &id],
        )
    };
    for k in &book.acked_keys {
        let id: Option<i64> = db
            .query_row(
                "SELECT id FROM activations WHERE user_id = ?1 AND client_order_id = ?2",
                rusqlite::params![u, k],
                |r| r.get(0),
            )
            .ok();
        match id {
            None => problems.push(format!("user {u}: acknowledged order {k} is gone")),
            Some(id) if charged("activation", id) != 1 => problems.push(format!(
                "user {u}: acknowledged order {k} (#{id}) has no charge"
            )),
            _ => {}
        }
    }
    for &id in &book.acked_fivesim {
        if charged("activation", id) != 1 {
            problems.push(format!(
                "user {u}: acknowledged 5sim order #{id} has no charge"
            ));
        }
    }
    for &id in &book.acked_refunds {
        if refunded("activation", id) != 1 {
            problems.push(format!(
                "user {u}: acknowledged cancel of #{id} has no refund"
            ));
        }
    }
    for &id in &book.acked_rentals {
        let want = 1 + book.acked_extensions.get(&id).copied().unwrap_or(0) as i64;
        let got = charged("rental", id);
        // An extension sent without an answer may or may not have been charged too.
        if got < want {
            problems.push(format!(
                "user {u}: rental #{id}: {got} charges, told {want}"
            ));
        }
    }
    for &id in &book.acked_rental_refunds {
        if refunded("rental", id) != 1 {
            problems.push(format!(
                "user {u}: acknowledged cancel of rental #{id} has no refund"
            ));
        }
    }
    // Nothing bought that no client asked for: orders without an idempotency id are the
    // 5sim ones, at most those acknowledged plus those sent without an answer.
    let keyless = count(
        "SELECT COUNT(*) FROM activations WHERE user_id = ?1 AND client_order_id IS NULL",
        &[&u],
    );
    let told = book.acked_fivesim.len() as i64;
    if keyless < told || keyless > told + book.unknown_fivesim as i64 {
        problems.push(format!(
            "user {u}: {keyless} 5sim orders, told {told} with {} unanswered",
            book.unknown_fivesim
        ));
    }
    let keyed = count(
        "SELECT COUNT(*) FROM activations WHERE user_id = ?1 AND client_order_id IS NOT NULL",
        &[&u],
    );
    let sent = (book.acked_keys.len() + book.pending_keys.len()) as i64;
    if keyed < book.acked_keys.len() as i64 || keyed > sent {
        problems.push(format!(
            "user {u}: {keyed} keyed orders, {} acknowledged and {} unanswered",
            book.acked_keys.len(),
            book.pending_keys.len()
        ));
    }
    let rentals = count("SELECT COUNT(*) FROM rentals WHERE user_id = ?1", &[&u]);
    let told = book.acked_rentals.len() as i64;
    if rentals < told || rentals > told + book.unknown_rentals as i64 {
        problems.push(format!(
            "user {u}: {rentals} rentals, told {told} with {} unanswered",
            book.unknown_rentals
        ));
    }
    let vouchers = count(
        "SELECT COUNT(*) FROM ledger WHERE user_id = ?1 AND kind = 'voucher'",
        &[&u],
    );
    let told = book.acked_vouchers as i64;
    if vouchers < told || vouchers > told + book.unknown_vouchers as i64 {
        problems.push(format!(
            "user {u}: {vouchers} voucher credits, told {told} with {} unanswered",
            book.unknown_vouchers
        ));
    }
    // The balance is the ledger's sum (otpbox check proves the cached one equals it).
    let (balance, sum): (i64, i64) = db
        .query_row(
            "SELECT (SELECT balance_minor FROM users WHERE id = ?1), \
                    (SELECT COALESCE(SUM(amount_minor), 0) FROM ledger WHERE user_id = ?1)",
            [u],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    if balance != sum {
        problems.push(format!("user {u}: balance {balance} but ledger sum {sum}"));
    }
}

fn start(data: Option<PathBuf>) -> TestServer {
    let mut b = TestServer::builder().demo().envs(&[
        ("OTPBOX_DEV_CLOCK", "true"),
        ("OTPBOX_LOG", "warn"),
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_API_BURST", "0"),
        ("OTPBOX_API_IP_RATE", "0"),
        ("OTPBOX_API_IP_BURST", "0"),
        ("OTPBOX_FLAG_ORDERS_PER_MINUTE", "0"),
        ("OTPBOX_EARLY_CANCEL", "0s"),
        ("OTPBOX_SIM_DELAY", "1h"),
        ("OTPBOX_MAX_ACTIVE_ACTIVATIONS", "1000"),
        ("OTPBOX_WORKERS", "4"),
    ]);
    if let Some(d) = data {
        b = b.data_dir(d);
    }
    b.start()
}

fn check_ok(server: &TestServer, after: &str) {
    let out = server.cli(&["check"]);
    assert!(
        out.status.success(),
        "otpbox check after {after}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A batch of voucher codes from the admin API.
fn vouchers(addr: SocketAddr, admin_key: &str, count: usize) -> Vec<String> {
    let body = json!({"amount_minor": 100, "count": count, "valid_days": 30});
    let (status, text) = call(
        addr,
        "POST",
        "/api/v1/admin/vouchers",
        admin_key,
        Some(&body),
    )
    .expect("create vouchers");
    assert_eq!(status, 201, "create vouchers: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["codes"]
        .as_array()
        .or_else(|| v["vouchers"].as_array())
        .expect("codes")
        .iter()
        .map(|c| {
            c.as_str()
                .or_else(|| c["code"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

fn db_of(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("otpbox.sqlite3")).unwrap()
}

#[test]
fn money_survives_kill_9_at_random_moments() {
    let kills = env_num("OTPBOX_CRASH_KILLS", 12);
    let min_ops = env_num("OTPBOX_CRASH_OPS", 0);
    let round_ms = env_num("OTPBOX_CRASH_ROUND_MS", 900);
    let seed = env_num(
        "OTPBOX_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    eprintln!("crash test: seed {seed}, at least {kills} kills and {min_ops} operations");
    let mut rng = Rng(seed);

    let mut server = start(None);
    server.cli_ok(&["admin", "create", "--email", "admin@example.com"]);
    let admin_key = server.api_key("admin@example.com");
    let mut books: Vec<Arc<Mutex<Book>>> = Vec::new();
    for i in 0..ACCOUNTS {
        let email = format!("crash{i}@example.com");
        let id = server.create_user(&email, "user", common::PASSWORD);
        server.cli_ok(&["user", "credit", "--email", &email, "--amount", "100000"]);
        books.push(Arc::new(Mutex::new(Book {
            user_id: id,
            key: server.api_key(&email),
            ..Book::default()
        })));
    }

    let started = Instant::now();
    let total_ops = Arc::new(AtomicU64::new(0));
    let mut killed = 0;
    while killed < kills || total_ops.load(Ordering::SeqCst) < min_ops {
        let addr = server.addr();
        for book in &books {
            let mut b = book.lock().unwrap();
            if b.vouchers.len() < 20 {
                b.vouchers = vouchers(addr, &admin_key, 100);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = books
            .iter()
            .map(|book| {
                let (book, stop, ops) = (book.clone(), stop.clone(), total_ops.clone());
                let mut rng = Rng(rng.next() | 1);
                std::thread::spawn(move || {
                    let mut b = book.lock().unwrap();
                    while !stop.load(Ordering::SeqCst) {
                        let answered = step(addr, &mut b, &mut rng);
                        ops.fetch_add(1, Ordering::Relaxed);
                        if !answered {
                            break;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(round_ms)));
        let data = server.kill9();
        killed += 1;
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().expect("a client thread panicked");
        }
        server = start(Some(data));
        check_ok(&server, &format!("kill {killed}"));
        let db = db_of(server.data_dir());
        let mut problems = Vec::new();
        for book in &books {
            verify(&db, &book.lock().unwrap(), &mut problems);
        }
        assert!(
            problems.is_empty(),
            "after kill {killed} (seed {seed}):\n{}",
            problems.join("\n")
        );
        // A long run says how far it got, so it can be stopped and still be reported.
        if killed % 10 == 0 {
            eprintln!(
                "crash test: {killed} kills, {} operations, 0 discrepancies in {:.0?}",
                total_ops.load(Ordering::SeqCst),
                started.elapsed()
            );
        }
    }
    let ops = total_ops.load(Ordering::SeqCst);
    // Every kind of money movement was acknowledged at least once, or the run proved little.
    let mut kinds = [0u64; 7];
    for b in &books {
        let b = b.lock().unwrap();
        let counts = [
            b.acked_keys.len() as u64,
            b.acked_fivesim.len() as u64,
            b.acked_refunds.len() as u64,
            b.acked_rentals.len() as u64,
            b.acked_rental_refunds.len() as u64,
            b.acked_extensions.values().sum(),
            b.acked_vouchers,
        ];
        for (k, c) in kinds.iter_mut().zip(counts) {
            *k += c;
        }
    }
    let names = [
        "keyed orders",
        "5sim orders",
        "refunded cancels",
        "rentals",
        "refunded rental cancels",
        "extensions",
        "vouchers",
    ];
    let summary: Vec<String> = names
        .iter()
        .zip(kinds)
        .map(|(n, k)| format!("{k} {n}"))
        .collect();
    eprintln!(
        "crash test: {killed} kills, {ops} operations, acknowledged: {}; 0 discrepancies in {:.0?}",
        summary.join(", "),
        started.elapsed()
    );
    for (n, k) in names.iter().zip(kinds) {
        assert!(
            k > 0,
            "the workload acknowledged no {n}: it tests nothing there"
        );
    }
}

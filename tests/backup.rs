//! Backups and restore (src/backup.rs): an online, verified backup set of a running server,
//! restored elsewhere with the same balances; the restore's refusals.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{market::COUNTRY, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_otpbox");

fn otpbox(data: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("OTPBOX_DATA")
        .output()
        .expect("run otpbox");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn temp_dir(name: &str) -> PathBuf {
    common::scratch_dir(&format!("backup-{name}"))
}

/// The entries of `dir` whose name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

/// The one backup set under `dir`.
fn only_set(dir: &Path) -> PathBuf {
    let sets = named(dir, "otpbox-");
    assert_eq!(sets.len(), 1, "{sets:?}");
    sets[0].clone()
}

#[test]
fn a_backup_of_a_running_server_restores_elsewhere_with_the_same_balances() {
    let server = TestServer::start_with(&[
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_METRICS_TOKEN", "m-token"),
    ]);
    server.add_numbers(COUNTRY, &["6281100000001", "6281100000002"]);
    let mut api = server.customer("kept@example.com", "10.00");
    let id = common::market::id_of(&api.order_ok("tg"));
    let balance = api.balance();
    assert!(balance < 1000, "the order was charged");
    let key = server
        .cli_ok(&["key", "create", "--email", "kept@example.com"])
        .trim()
        .to_string();

    let to = temp_dir("sets");
    let (ok, said) = otpbox(server.data_dir(), &["backup", "--to", to.to_str().unwrap()]);
    assert!(ok, "{said}");
    assert!(
        said.contains("verified: integrity and ledger checks passed"),
        "{said}"
    );
    let set = only_set(&to);
    assert_eq!(mode(&to), 0o700);
    assert_eq!(mode(&set), 0o700);
    assert_eq!(mode(&set.join("otpbox.sqlite3")), 0o600);
    assert_eq!(mode(&set.join("secret.key")), 0o600);
    // Recorded as a run of the backup job, which /admin/jobs shows.
    assert_eq!(
        server.count("SELECT COUNT(*) FROM job_runs WHERE job = 'backup' AND ok = 1"),
        1
    );
    let (mut admin, _) = server.signed_in("admin@example.com", "admin");
    let jobs = admin.get("/admin/jobs").text();
    assert!(jobs.contains("otpbox backup: "), "{jobs}");
    // And /metrics: the verdict, the size, the age.
    let mut scraper = server.client();
    scraper.always_send("Authorization", "Bearer m-token");
    let metrics = scraper.get("/metrics").text();
    assert!(
        metrics.contains("\notpbox_last_backup_success 1\n"),
        "{metrics}"
    );
    let size = std::fs::metadata(set.join("otpbox.sqlite3")).unwrap().len()
        + std::fs::metadata(set.join("secret.key")).unwrap().len();
    assert!(
        metrics.contains(&format!("\notpbox_last_backup_bytes {size}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains("\notpbox_last_backup_age_seconds "),
        "{metrics}"
    );

    // Restored into a fresh directory, a server there knows the same key and balance.
    let elsewhere = temp_dir("restored");
    let (ok, said) = otpbox(&elsewhere, &["restore", set.to_str().unwrap()]);
    assert!(ok, "{said}");
    let (ok, said) = otpbox(&elsewhere, &["check"]);
    assert!(ok, "{said}");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&elsewhere)
        .env_remove("OTPBOX_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("a line").unwrap();
        if let Some(a) = line.strip_prefix("otpbox listening on http://") {
            break a.trim().to_string();
        }
    };
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::Write;
    write!(
        stream,
        "GET /api/v1/activations/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let r = common::read_response(&mut stream, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    write!(
        stream,
        "GET /api/v1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let r = common::read_response(&mut stream, false).unwrap();
    assert_eq!(r.json()["balance_minor"].as_i64(), Some(balance));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&to);
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn restore_refuses_a_running_server_and_a_damaged_set_and_keeps_what_it_replaces() {
    let server = TestServer::start();
    server.customer("a@example.com", "5.00");
    let to = temp_dir("sets2");
    let (ok, said) = otpbox(server.data_dir(), &["backup", "--to", to.to_str().unwrap()]);
    assert!(ok, "{said}");
    let set = only_set(&to);

    // Not under a running server.
    let before = std::fs::read(server.data_dir().join("secret.key")).unwrap();
    let (ok, said) = otpbox(server.data_dir(), &["restore", set.to_str().unwrap()]);
    assert!(!ok && said.contains("server is running"), "{said}");
    assert_eq!(
        std::fs::read(server.data_dir().join("secret.key")).unwrap(),
        before
    );

    // Into a directory that has a database: that one is kept aside, not deleted.
    let elsewhere = temp_dir("restored2");
    assert!(otpbox(&elsewhere, &["restore", set.to_str().unwrap()]).0);
    let (ok, said) = otpbox(
        &elsewhere,
        &["restore", set.join("otpbox.sqlite3").to_str().unwrap()],
    );
    assert!(ok, "{said}");
    assert!(said.contains("kept aside: "), "{said}");
    let aside = named(&elsewhere, "replaced-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("otpbox.sqlite3").is_file(), "{aside:?}");
    assert!(aside[0].join("secret.key").is_file(), "{aside:?}");
    assert_eq!(mode(&aside[0]), 0o700);
    // Nothing staged is left behind.
    assert!(!elsewhere.join("otpbox.sqlite3.restoring").exists());

    // A damaged set is refused before anything moves.
    let damaged = temp_dir("damaged");
    std::fs::copy(set.join("secret.key"), damaged.join("secret.key")).unwrap();
    let mut bytes = std::fs::read(set.join("otpbox.sqlite3")).unwrap();
    for b in bytes.iter_mut().skip(4096).take(8192) {
        *b = 0x5a;
    }
    std::fs::write(damaged.join("otpbox.sqlite3"), &bytes).unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let files_before = listing(&elsewhere);
    let (ok, said) = otpbox(&elsewhere, &["restore", damaged.to_str().unwrap()]);
    assert!(!ok, "{said}");
    assert_eq!(listing(&elsewhere), files_before, "{said}");
    for d in [&to, &elsewhere, &damaged] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn the_backup_job_keeps_the_newest_sets() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1"), ("OTPBOX_BACKUP_KEEP", "2")]);
    let mut c = server.client();
    assert_eq!(c.post("/__dev/scheduler?paused=1", b"").status, 200);
    for _ in 0..3 {
        server.run_jobs();
        server.advance_clock(2);
    }
    let dir = server.data_dir().join("backups");
    let sets: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(
        sets.len(),
        2,
        "{:?}",
        sets.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM job_runs WHERE job = 'backup' AND ok = 1"),
        3
    );
}

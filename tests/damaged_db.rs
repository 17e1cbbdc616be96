//! A damaged database on the command line (issue 17, item 5): `otpbox check`, `serve` and
//! `demo` name SQLite's own message and say what to do (restore a backup, with where the
//! README explains it), never the bare "internal error" that HTTP replies give.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::BIN;

/// What the advice must name: the README section that explains a restore.
const ADVICE: &str = "restore a backup";
const SECTION: &str = "\"Backups and restore\"";

/// A fresh data directory, removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        DataDir(common::scratch_dir(&format!("damaged-{name}")))
    }

    fn db(&self) -> PathBuf {
        self.0.join("otpbox.sqlite3")
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn otpbox(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTPBOX_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .arg("--data")
        .arg(data)
        .env("OTPBOX_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run otpbox")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails unless `out` is a refusal that names SQLite's `sqlite_message` and the restore
/// advice, without the bare "internal error".
fn assert_damaged(what: &str, out: &Output, sqlite_message: &str) {
    let all = text(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit status; output:\n{all}"
    );
    assert!(
        !all.contains("internal error"),
        "{what}: the bare internal error:\n{all}"
    );
    assert!(
        all.contains("the database file is damaged"),
        "{what}: says what is wrong:\n{all}"
    );
    assert!(
        all.contains(sqlite_message),
        "{what}: SQLite's message {sqlite_message:?}:\n{all}"
    );
    assert!(
        all.contains(ADVICE) && all.contains(SECTION),
        "{what}: the advice:\n{all}"
    );
}

#[test]
fn the_readme_has_the_section_the_advice_names() {
    let readme = include_str!("../README.md");
    assert!(readme.contains("### Backups and restore\n"));
}

#[test]
fn garbage_in_place_of_the_database_is_named_with_sqlites_message_and_the_advice() {
    let dir = DataDir::new("garbage");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.db(), &garbage).unwrap();

    assert_damaged(
        "check",
        &otpbox(&dir.0, &["check"]),
        "SQLite: file is not a database",
    );
    assert_damaged(
        "demo",
        &otpbox(&dir.0, &["demo", "--listen", "127.0.0.1:0"]),
        "SQLite: file is not a database",
    );
    assert_damaged(
        "serve",
        &otpbox(&dir.0, &["serve", "--listen", "127.0.0.1:0"]),
        "SQLite: file is not a database",
    );
    // The garbage is left as it was (nothing "repairs" the evidence).
    assert_eq!(std::fs::read(dir.db()).unwrap(), garbage);
}

#[test]
fn a_truncated_database_is_named_with_sqlites_message_and_the_advice() {
    let dir = DataDir::new("truncated");
    // A real database: accounts, keys and the seeded catalogue.
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        let out = otpbox(&dir.0, &["user", "create", "--email", email]);
        assert!(out.status.success(), "{}", text(&out));
        let out = otpbox(&dir.0, &["key", "create", "--email", email]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let ok = otpbox(&dir.0, &["check"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        !dir.0.join("otpbox.sqlite3-wal").exists() || {
            // A WAL left behind would hide the truncation; fold it in first.
            let conn = rusqlite::Connection::open(dir.db()).unwrap();
            conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
                .unwrap();
            true
        }
    );

    let full = std::fs::metadata(dir.db()).unwrap().len();
    assert!(
        full > 16 * 4096,
        "a database of {full} bytes is too small to truncate"
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.db())
        .unwrap();
    file.set_len(full / 2).unwrap();
    drop(file);

    assert_damaged(
        "check",
        &otpbox(&dir.0, &["check"]),
        "SQLite: database disk image is malformed",
    );
}

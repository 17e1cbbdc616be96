//! The architecture invariants of ARCHITECTURE.md, checked on the source tree so that they
//! stay true: which room may import which (no import circles), the domain's areas in one
//! direction, who knows tiny_http, HTML and ureq, who writes ledger rows, and folders that
//! say what they own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level rooms of `src/`, lowest first: a room may import only rooms below it.
const ROOMS: [&str; 28] = [
    "clock",
    "cpu",
    "qr",
    "url",
    "outbound",
    "cli",
    "db",
    "lifecycle",
    "domain",
    "assets",
    "config",
    "backup",
    "metrics",
    "smtp",
    "app",
    "upstream",
    "payments",
    "oidc",
    "notify",
    "jobs",
    "goip",
    "views",
    "http",
    "bench",
    "commands",
    "fuzz",
    "lib",
    "main",
];

/// Imports that go upward on purpose, each with its reason.
const ALLOWED_UPWARD: [(&str, &str, &str); 1] = [(
    "db",
    "domain",
    "db's transaction helper returns the domain's one error type",
)];

/// The domain's areas, lowest first: an area may use only areas below it.
const AREAS: [&str; 5] = ["base", "accounts", "market", "supply", "trust"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its unit tests and comments (tests may reach anywhere).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The path of `file` below `src/`, with `/` separators.
fn rel(file: &Path) -> String {
    file.strip_prefix(src())
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

fn room_of(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

/// The names following `prefix` in `code`: `prefix::name` and each top-level name of
/// `prefix::{a, b::c}` groups.
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            names.insert(name);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Every file's path and code, without the files that are test modules as a whole
/// (`#[cfg(test)] mod name;` in their parent).
fn all_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut test_only = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let dir = f.parent().unwrap();
        for decl in text.split("#[cfg(test)]\n").skip(1) {
            let decl = decl.trim_start_matches("pub ");
            if let Some(name) = decl.strip_prefix("mod ").and_then(|d| d.split(';').next()) {
                if !name.contains(' ') && !name.contains('{') {
                    test_only.insert(dir.join(format!("{name}.rs")));
                }
            }
        }
    }
    files
        .iter()
        .filter(|f| !test_only.contains(*f))
        .map(|f| (rel(f), code_of(f)))
        .collect()
}

#[test]
fn rooms_import_only_rooms_below_them() {
    let rank = |r: &str| ROOMS.iter().position(|x| *x == r);
    let mut wrong = Vec::new();
    for (rel, code) in all_files() {
        let room = room_of(&rel);
        let Some(mine) = rank(&room) else {
            wrong.push(format!("{rel}: room `{room}` is not in ROOMS"));
            continue;
        };
        for name in names_after(&code, "crate::") {
            let Some(theirs) = rank(&name) else { continue };
            let allowed = ALLOWED_UPWARD
                .iter()
                .any(|(from, to, _)| *from == room && *to == name);
            if theirs > mine && !allowed {
                wrong.push(format!(
                    "{rel}: `{room}` imports `{name}`, which sits above it"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn domain_areas_depend_one_way() {
    let mut wrong = Vec::new();
    for (rel, code) in all_files() {
        let Some(inside) = rel.strip_prefix("domain/") else {
            continue;
        };
        let Some((area, _)) = inside.split_once('/') else {
            continue; // domain/mod.rs declares the areas
        };
        let mine = AREAS.iter().position(|a| *a == area).unwrap_or_else(|| {
            panic!("{rel}: area `{area}` is not in AREAS");
        });
        for name in names_after(&code, "crate::domain::") {
            if let Some(theirs) = AREAS.iter().position(|a| *a == name) {
                if theirs > mine {
                    wrong.push(format!(
                        "{rel}: `{area}` uses `{name}`, which sits above it"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn only_http_knows_tiny_http_only_views_write_html_and_the_domain_makes_no_calls() {
    let mut wrong = Vec::new();
    for (rel, code) in all_files() {
        if code.contains("tiny_http::") && !rel.starts_with("http/") {
            wrong.push(format!("{rel} uses tiny_http"));
        }
        if code.contains("html!") && !rel.starts_with("views/") {
            wrong.push(format!("{rel} writes HTML (templates live in views/)"));
        }
        if rel.starts_with("domain/") {
            for outside in [
                "maud",
                "tiny_http",
                "ureq",
                "crate::http",
                "crate::upstream",
            ] {
                if code.contains(outside) {
                    wrong.push(format!("{rel} uses {outside}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn only_the_wallet_writes_ledger_rows() {
    // Retention folds rows older than the ledger period into one carried-over row per
    // account (same sum, so balances still equal ledgers); nothing else writes the ledger.
    let writers: Vec<String> = all_files()
        .into_iter()
        .filter(|(_, code)| {
            ["INSERT INTO ledger", "UPDATE ledger", "DELETE FROM ledger"]
                .iter()
                .any(|w| code.contains(w))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(
        writers,
        ["domain/market/wallet.rs", "domain/trust/retention.rs"],
        "ledger rows are written only through domain::market::wallet"
    );
}

#[test]
fn every_folder_says_what_it_owns_and_stays_small() {
    let mut dirs = vec![src()];
    let mut wrong = Vec::new();
    while let Some(dir) = dirs.pop() {
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
            }
        }
        if dir == src() || files == 0 {
            continue;
        }
        let module = dir.join("mod.rs");
        let doc = std::fs::read_to_string(&module).unwrap_or_default();
        if !doc.starts_with("//!") {
            wrong.push(format!(
                "{}: mod.rs must open with a //! doc comment",
                rel(&dir)
            ));
        }
        if files > 13 {
            wrong.push(format!("{}: {files} files; split it by area", rel(&dir)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

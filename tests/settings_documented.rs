//! The settings table in src/config.rs is the truth; README.md and
//! packaging/otpbox.conf.example must document every setting with its exact default, and
//! nothing else.

use std::path::Path;

struct Setting {
    key: String,
    default: String,
    secret: bool,
}

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The next string literal in `text` from `*pos`, moving `*pos` past it.
fn next_literal(text: &str, pos: &mut usize) -> String {
    let start = *pos + text[*pos..].find('"').expect("a string literal") + 1;
    let len = text[start..].find('"').expect("a closing quote");
    *pos = start + len + 1;
    text[start..start + len].to_string()
}

/// The rows of `SETTINGS`: `s(key, default, help)` and `secret(key, help)` calls.
fn settings() -> Vec<Setting> {
    let src = read("src/config.rs");
    let start = src
        .find("pub const SETTINGS: &[Setting] = &[")
        .expect("SETTINGS in src/config.rs");
    let end = start + src[start..].find("\n];").expect("end of SETTINGS");
    let block = &src[start..end];
    let mut out = Vec::new();
    let mut pos = block.find("&[").unwrap() + 2;
    loop {
        let s_call = block[pos..].find("s(").map(|i| (i, false));
        let secret_call = block[pos..].find("secret(").map(|i| (i, true));
        let next = match (s_call, secret_call) {
            (Some(a), Some(b)) => Some(if b.0 <= a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        let Some((offset, secret)) = next else { break };
        pos += offset;
        let key = next_literal(block, &mut pos);
        let default = if secret {
            String::new()
        } else {
            next_literal(block, &mut pos)
        };
        next_literal(block, &mut pos); // help text
        out.push(Setting {
            key,
            default,
            secret,
        });
    }
    assert!(out.len() > 10, "parsed only {} settings", out.len());
    out
}

#[test]
fn readme_table_lists_every_setting_with_its_env_name_and_default() {
    let readme = read("README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("`OTPBOX_"))
        .collect();
    let all = settings();
    for s in &all {
        let env = format!("OTPBOX_{}", s.key.to_ascii_uppercase());
        let prefix = format!("| `{}` | `{env}`", s.key);
        let row = rows
            .iter()
            .find(|r| r.starts_with(&prefix))
            .unwrap_or_else(|| panic!("README.md has no table row starting `{prefix}`"));
        let cells: Vec<&str> = row.split(" | ").collect();
        let expected = if s.default.is_empty() {
            "*(empty)*".to_string()
        } else {
            format!("`{}`", s.default)
        };
        assert_eq!(cells[2], expected, "default of `{}` in README.md", s.key);
        if s.secret {
            assert!(
                row.contains(&format!("`{env}_FILE`")),
                "README.md must name {env}_FILE"
            );
        }
    }
    assert_eq!(
        rows.len(),
        all.len(),
        "README.md settings table has rows for settings that do not exist"
    );
}

#[test]
fn example_config_lists_every_setting_with_its_default() {
    let example = read("packaging/otpbox.conf.example");
    let lines: Vec<&str> = example
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once(" =").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
        })
        .collect();
    let all = settings();
    for s in &all {
        let expected = format!("{} = {}", s.key, s.default);
        assert!(
            lines.iter().any(|l| l.trim_end() == expected.trim_end()),
            "packaging/otpbox.conf.example lacks `# {expected}`"
        );
    }
    assert_eq!(
        lines.len(),
        all.len(),
        "packaging/otpbox.conf.example has settings that do not exist"
    );
}

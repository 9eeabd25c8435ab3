//! `maildns check`'s messages: values quoted the one way every message escapes
//! control characters (`\027`, as `cli::output::terminal_safe` does), a bare
//! reload program looked up in PATH at load, and configuration errors in the
//! order of the file's lines.

use std::path::PathBuf;

use crate::cmd;

/// `text` as maildns.toml in a fresh temp dir.
fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(&cfg, text).unwrap();
    (dir, cfg)
}

/// An ESC and a BEL in configuration values come out as `\027` and `\007`
/// in the lint findings (stdout) and the configuration errors (stderr),
/// never as Rust's `\u{1b}` nor raw.
#[test]
fn values_with_control_characters_are_quoted_with_byte_escapes() {
    let (_dir, cfg) = config(
        r#"state_dir = "state"
[accounts.pdns]
provider = "powerdns"
base_url = "http://127.0.0.1:1/api/v1"
token_env = "A=\u001b[2J\u0007"

[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."example.com"]
account = "local"
dmarc = "v=DMARC1; p=quarantine; rua=mailto:d\u001b[31m@example.com\u0007"
"#,
    );
    let file = cfg.display().to_string();
    let out = cmd().args(["-c", &file, "check"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    let (stdout, stderr) = (out.stdout_text(), out.stderr_text());
    assert!(
        stdout.contains(&format!(
            "{file}:13: domains.\"example.com\".dmarc: error: DMARC \"v=DMARC1; p=quarantine; rua=mailto:d\\027[31m@example.com\\007\": "
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:5: accounts.pdns.token_env: 'A=\\027[2J\\007' is not an environment variable name"
        )),
        "{stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains("\\u{"), "Rust escapes in {text}");
        assert!(
            !text.contains(['\u{1b}', '\u{7}']),
            "raw control bytes in {text}"
        );
    }
}

/// `reload_command = ["opendkim-reload-x"]` (a bare name not in PATH) is a
/// configuration error at its line, like a missing absolute program; a bare
/// name in PATH loads.
#[test]
fn a_bare_reload_program_is_looked_up_in_path() {
    let text = |program: &str| {
        format!(
            r#"state_dir = "state"
[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."example.com"]
account = "local"
spf = "v=spf1 ip4:192.0.2.10/32 -all"

[signer]
confirm = "tables-only"
key_dir = "keys"
key_table = "key.table"
signing_table = "signing.table"
reload_command = ["{program}", "reload"]
"#
        )
    };
    let (_dir, cfg) = config(&text("opendkim-reload-x"));
    let file = cfg.display().to_string();
    let out = cmd()
        .args(["-c", &file, "check"])
        .env("PATH", "/usr/bin:/bin")
        .run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    assert!(
        out.stderr_text().contains(&format!(
            "{file}:15: signer.reload_command: the program 'opendkim-reload-x' is not found in PATH (/usr/bin:/bin)"
        )),
        "{}",
        out.text()
    );

    let (_dir, cfg) = config(&text("sh"));
    let file = cfg.display().to_string();
    let out = cmd()
        .args(["-c", &file, "check"])
        .env("PATH", "/usr/bin:/bin")
        .run();
    assert!(
        !out.stderr_text().contains("reload_command"),
        "{}",
        out.text()
    );
}

/// Two errors the validator finds in the opposite order of their lines (a
/// signer's empty `key_table` before its empty `config` two lines above)
/// are reported in line order, as text and as JSON.
#[test]
fn configuration_errors_come_in_line_order() {
    let (_dir, cfg) = config(
        r#"state_dir = "state"
[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."example.com"]
account = "local"
spf = "v=spf1 ip4:192.0.2.10/32 -all"

[signer]
config = ""
key_dir = "keys"
key_table = ""
signing_table = "signing.table"
"#,
    );
    let file = cfg.display().to_string();
    let out = cmd().args(["-c", &file, "check"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    let stderr = out.stderr_text();
    let at = |key: &str| {
        stderr
            .find(&format!("{file}:{key}"))
            .unwrap_or_else(|| panic!("{key} missing: {stderr}"))
    };
    assert!(
        at("11: signer.config") < at("13: signer.key_table"),
        "{stderr}"
    );

    let out = cmd().args(["-c", &file, "--json", "check"]).run();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<u64> = v["config_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [11, 13], "{v}");
}

/// A wrongly typed value holding an ESC (`ttl = "\u001b[31mred"`, serde's
/// "invalid type" message) and a domain name holding one both show it as
/// `\027`, never as Rust's `\u{1b}`.
#[test]
fn type_and_name_errors_quote_control_characters_with_byte_escapes() {
    let (_dir, cfg) = config(
        r#"state_dir = "state"
[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."a.test"]
account = "local"
ttl = "\u001b[31mred"

[domains."b\u001b.test"]
account = "local"
"#,
    );
    let file = cfg.display().to_string();
    let out = cmd().args(["-c", &file, "check"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    let stderr = out.stderr_text();
    assert!(
        stderr.contains(&format!(
            "{file}:8: domains.\"a.test\".ttl: invalid type: string \"\\027[31mred\", expected i64"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("'b\\027.test' contains '\\027' at byte 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("\\u{"), "Rust escapes in {stderr}");
    assert!(!stderr.contains('\u{1b}'), "raw ESC in {stderr}");
}

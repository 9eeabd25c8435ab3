//! TTL changes in `plan` (text and `--json`), and the TTL an RRset keeps when
//! values maildns does not own share it (RFC 2181 §5.2: one TTL per RRset).

use std::path::Path;
use std::process::{Command, Output};

fn maildns(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maildns"))
        .arg("-c")
        .arg(cfg)
        .args(args)
        .env_remove("MAILDNS_CONFIG")
        .output()
        .expect("maildns runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SPF: &str = "v=spf1 ip4:192.0.2.10/32 -all";

/// `example.com` with `ttl = 3600` and an SPF record, its zone file holding `apex`.
fn setup(apex: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"zone.db\"\n\n[domains.\"example.com\"]\naccount = \"local\"\nttl = 3600\nspf = \"{SPF}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("zone.db"),
        format!(
            "$ORIGIN example.com.\n$TTL 3600\n@ IN SOA ns1 hostmaster 2024010101 3600 900 604800 300\n  IN NS ns1\n{apex}"
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// The example: a foreign value at the apex at TTL 300. The SPF value
/// joins the RRset at 300 (the foreign value's TTL is not maildns's to change),
/// and the plan says so, before and after publishing, in text and JSON.
#[test]
fn a_foreign_value_keeps_the_rrsets_ttl_and_plan_says_which_and_why() {
    let (dir, cfg) = setup("@ 300 IN TXT \"google-site-verification=abc\"\n");
    let note = "  note: example.com TXT SPF: TTL 300 kept, not the configured 3600: 1 value(s) maildns does not own share the RRset, which has one TTL (RFC 2181 §5.2)";
    let plan = maildns(&cfg, &["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
    let out = stdout(&plan);
    assert!(
        out.contains(&format!("  CREATE example.com TXT SPF \"{SPF}\"\n")),
        "{out}"
    );
    assert!(out.contains(note), "{out}");
    let json = maildns(&cfg, &["--json", "plan"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let plan_json = &v["domains"][0]["plan"];
    assert_eq!(plan_json["ttl_kept"][0]["ttl"], 300, "{v}");
    assert_eq!(plan_json["ttl_kept"][0]["configured"], 3600, "{v}");
    assert_eq!(plan_json["changes"][0]["write"]["ttl"], 300, "{v}");

    let publish = maildns(&cfg, &["publish"]);
    assert_eq!(publish.status.code(), Some(0), "{}", stdout(&publish));
    let zone = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    let spf_line = zone
        .lines()
        .find(|l| l.contains("v=spf1"))
        .unwrap_or_else(|| panic!("{zone}"));
    assert!(spf_line.contains("300"), "{zone}");
    assert!(
        zone.contains("google-site-verification=abc"),
        "foreign value kept: {zone}"
    );

    let again = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let out = stdout(&again);
    assert!(out.contains("  in sync (1 name(s))"), "{out}");
    assert!(out.contains(note), "in sync, still explained: {out}");
}

/// A TTL-only change is an UPDATE showing the TTLs, not `"x" -> "x"`.
#[test]
fn a_ttl_only_update_shows_the_ttls() {
    let (dir, cfg) = setup(&format!("@ 300 IN TXT \"{SPF}\"\n"));
    let plan = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stdout(&plan));
    let out = stdout(&plan);
    assert!(
        out.contains(&format!(
            "  UPDATE example.com TXT SPF TTL 300 -> 3600 (value unchanged: \"{SPF}\")\n"
        )),
        "{out}"
    );
    assert!(!out.contains(&format!("\"{SPF}\" -> \"{SPF}\"")), "{out}");
    assert!(!out.contains("note:"), "{out}");
    let json = maildns(&cfg, &["--json", "plan"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let change = &v["domains"][0]["plan"]["changes"][0];
    assert_eq!(change["action"], "UPDATE", "{v}");
    assert_eq!(change["old_ttl"], 300, "{v}");
    assert_eq!(change["write"]["ttl"], 3600, "{v}");

    let publish = maildns(&cfg, &["publish"]);
    assert_eq!(publish.status.code(), Some(0), "{}", stdout(&publish));
    let again = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let zone = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    let spf_line = zone.lines().find(|l| l.contains("v=spf1")).unwrap();
    assert!(!spf_line.contains(" 300 "), "{zone}");
}

/// Values and TTL both change: the value diff, then the TTL change.
#[test]
fn a_value_and_ttl_update_shows_both() {
    let (_dir, cfg) = setup("@ 300 IN TXT \"v=spf1 a -all\"\n");
    let out = stdout(&maildns(&cfg, &["plan"]));
    assert!(
        out.contains(&format!(
            "  UPDATE example.com TXT SPF \"v=spf1 a -all\" -> \"{SPF}\" (TTL 300 -> 3600)\n"
        )),
        "{out}"
    );
}

//! The `maildns` binary end to end on the zone-file target.

use std::path::{Path, PathBuf};

use crate::cmd;

/// A config in a fresh temp dir, publishing into `zone.db` there.
fn setup(extra_domain: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "state"
[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."example.com"]
account = "local"
spf = "v=spf1 ip4:192.0.2.10/32 -all"
dmarc = "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"
{extra_domain}
"#
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn zone(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("zone.db")).unwrap()
}

#[test]
fn publish_is_idempotent_and_keeps_foreign_lines() {
    let (dir, cfg) = setup("");
    let cfg = cfg.to_str().unwrap();
    std::fs::write(
        dir.path().join("zone.db"),
        "$ORIGIN example.com.\n$TTL 3600\n@ IN SOA ns1 hostmaster 2024010101 3600 900 604800 300\n  IN NS ns1\n; keep me\n@ IN TXT \"google-site-verification=abc\"\n@ IN TXT \"v=spf1 a -all\"\nwww IN A 192.0.2.1\n",
    )
    .unwrap();
    let plan = cmd().args(["-c", cfg, "plan", "--exit-code"]).run();
    assert_eq!(plan.status.code(), Some(2), "{}", plan.stdout_text());
    assert!(
        plan.stdout_text().contains(
            "UPDATE example.com TXT SPF \"v=spf1 a -all\" -> \"v=spf1 ip4:192.0.2.10/32 -all\""
        ),
        "{}",
        plan.stdout_text()
    );
    assert!(
        plan.stdout_text()
            .contains("CREATE _dmarc.example.com TXT DMARC")
    );
    assert!(
        zone(dir.path()).contains("\"v=spf1 a -all\""),
        "plan must not write"
    );

    let first = cmd().args(["-c", cfg, "publish"]).run();
    assert_eq!(first.status.code(), Some(0), "{}", first.stdout_text());
    let z = zone(dir.path());
    assert!(
        z.contains("; keep me\n@ IN TXT \"google-site-verification=abc\"\n"),
        "{z}"
    );
    assert!(z.contains("www IN A 192.0.2.1\n"));
    assert!(z.contains("\"v=spf1 ip4:192.0.2.10/32 -all\""));
    assert!(!z.contains("v=spf1 a -all"));
    assert!(!z.contains("2024010101"), "serial bumped: {z}");

    let again = cmd().args(["-c", cfg, "publish"]).run();
    assert_eq!(again.status.code(), Some(0));
    assert!(
        again.stdout_text().contains("0 change(s) applied"),
        "{}",
        again.stdout_text()
    );
    assert_eq!(zone(dir.path()), z, "second run changes nothing");
    let plan = cmd().args(["-c", cfg, "plan", "--exit-code"]).run();
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stdout_text());
}

#[test]
fn json_output_is_machine_readable() {
    let (_dir, cfg) = setup("");
    let out = cmd()
        .args(["-c", cfg.to_str().unwrap(), "--json", "plan"])
        .run();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["summary"]["create"], 2);
    assert_eq!(v["domains"][0]["domain"], "example.com");
    assert_eq!(v["domains"][0]["plan"]["changes"][0]["action"], "CREATE");
}

#[test]
fn bad_config_exits_65_naming_file_line_and_key_and_writes_nothing() {
    let (dir, cfg) = setup("ttl = 0");
    let out = cmd().args(["-c", cfg.to_str().unwrap(), "publish"]).run();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("maildns.toml:10: domains.\"example.com\".ttl: 0 is out of range"),
        "{err}"
    );
    assert!(!dir.path().join("zone.db").exists());
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(cmd().args(["frobnicate"]).run().status.code(), Some(64));
    assert_eq!(cmd().args(["--help"]).run().status.code(), Some(0));
}

#[test]
fn records_prints_zone_file_lines() {
    let (_dir, cfg) = setup("");
    let out = cmd().args(["-c", cfg.to_str().unwrap(), "records"]).run();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout_text()
            .contains("example.com.\t3600\tIN\tTXT\t\"v=spf1 ip4:192.0.2.10/32 -all\""),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn keygen_prints_a_record_that_reads_back_as_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd()
        .args([
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "202611",
            "--bits",
            "2048",
            "-D",
            dir.path().to_str().unwrap(),
        ])
        .run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = out.stdout_text();
    // The zone-file form, as opendkim-genkey's .txt, parsed by our reader.
    let parsed = maildns::records::dkim::parse_opendkim_txt(&text).expect("record parses");
    assert_eq!(parsed.selector, "202611");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(parsed.record.key_bits(), Some(2048));
    assert!(parsed.original.strings().iter().all(|s| s.len() <= 255));
    let key = maildns::keys::load_private_key(&dir.path().join("202611.private")).unwrap();
    assert_eq!(parsed.record.public_key, key.public_key_der().unwrap());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("202611.private"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // never overwrites
    let again = cmd()
        .args([
            "keygen",
            "-d",
            "example.com",
            "-s",
            "202611",
            "-D",
            dir.path().to_str().unwrap(),
        ])
        .run();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        key.public_key_der().unwrap(),
        maildns::keys::load_private_key(&dir.path().join("202611.private"))
            .unwrap()
            .public_key_der()
            .unwrap()
    );
}

#[test]
fn publish_creates_the_first_dkim_key_once() {
    let (dir, cfg) =
        setup("[domains.\"example.com\".dkim]\nbits = 1024\nselector_format = \"s%Y%m\"");
    let cfg = cfg.to_str().unwrap();
    let plan = cmd().args(["-c", cfg, "plan"]).run();
    assert!(
        plan.stdout_text().contains("has no DKIM key yet"),
        "{}",
        plan.stdout_text()
    );
    let out = cmd().args(["-c", cfg, "publish"]).run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        out.stdout_text(),
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<_> = std::fs::read_dir(dir.path().join("state/keys/example.com"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(keys.len(), 1);
    let selector = keys[0]
        .file_name()
        .to_string_lossy()
        .trim_end_matches(".private")
        .to_string();
    assert!(selector.starts_with('s'), "{selector}");
    let z = zone(dir.path());
    assert!(
        z.contains(&format!(
            "{selector}._domainkey\t3600\tIN\tTXT\t\"v=DKIM1; h=sha256; k=rsa; \" \"p="
        )),
        "{z}"
    );
    // The published key is the key on disk.
    let key = maildns::keys::load_private_key(&keys[0].path()).unwrap();
    assert!(z.contains(&key.p_value().unwrap()[..100]));
    // Idempotent: no new key, nothing to change.
    let again = cmd().args(["-c", cfg, "publish"]).run();
    assert!(
        again.stdout_text().contains("0 change(s) applied"),
        "{}",
        again.stdout_text()
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("state/keys/example.com"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(zone(dir.path()), z);
}

#[test]
fn rotate_unblock_clears_a_failed_switch() {
    use maildns::rotation::{Algorithm, KeyStatus, Selector, SqliteStore, Store, adopt};
    let (dir, cfg) = setup("[domains.\"example.com\".dkim]\nbits = 1024");
    let cfg = cfg.to_str().unwrap();
    // A key whose signer switch failed (as after a broken reload command).
    let domain = maildns_providers::Fqdn::parse("example.com").unwrap();
    {
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let store = SqliteStore::open_locked(&state_dir).unwrap();
        let mut state = store.load(&domain).unwrap();
        let now = chrono::Utc::now() - chrono::TimeDelta::days(1);
        let ev = adopt(
            &mut state,
            Selector::parse("s1").unwrap(),
            Algorithm::Rsa,
            1024,
            "/nonexistent/s1.private",
            now,
        )
        .unwrap()
        .unwrap();
        state.keys[0].status = KeyStatus::SwitchFailed;
        state.keys[0].failure = Some("reload command failed".into());
        store.save(&state, &[ev]).unwrap();
    }
    let blocked = cmd().args(["-c", cfg, "rotate"]).run();
    assert_eq!(blocked.status.code(), Some(1), "{}", blocked.stdout_text());
    assert!(
        blocked.stdout_text().contains("BLOCKED"),
        "{}",
        blocked.stdout_text()
    );
    let o = cmd().args(["-c", cfg, "rotate", "--unblock"]).run();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unblocked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    let state = store.load(&domain).unwrap();
    assert_ne!(
        state.keys[0].status,
        KeyStatus::SwitchFailed,
        "{:?}",
        state.keys[0]
    );
    assert!(
        store
            .events(None, 0, 100)
            .unwrap()
            .iter()
            .any(|e| e.event.what == "unblocked")
    );
}

#[test]
fn unknown_domain_selection_is_a_data_error_listing_the_configured_ones() {
    let (_dir, cfg) = setup("");
    let out = cmd()
        .args([
            "-c",
            cfg.to_str().unwrap(),
            "plan",
            "-d",
            "example.com",
            "-d",
            "nosuch.example",
        ])
        .run();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("domain 'nosuch.example' is not configured")
            && err.contains("configured: example.com"),
        "{err}"
    );
}

/// The first DKIM key `publish` makes is the signer's, as a rotation's would be:
/// written in the signer's key directory, 0600, owned by the signer's user
/// (when maildns runs as root) so OpenDKIM can read it at the first switch.
#[test]
fn publish_makes_the_first_key_through_the_signer() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (dir, cfg) =
        setup("[domains.\"example.com\".dkim]\nbits = 1024\nselector_format = \"s%Y%m\"");
    let d = dir.path();
    // The signer's key directory exists, as a packaged OpenDKIM's does, and its
    // user can walk down to it.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(d.join("opendkim/keys")).unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[signer]\nkey_dir = \"{d}/opendkim/keys\"\nkey_table = \"{d}/opendkim/key.table\"\nsigning_table = \"{d}/opendkim/signing.table\"\nuser = \"opendkim\"\nconfirm = \"tables-only\"\n",
        d = d.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let out = cmd().config(&cfg).args(["publish"]).run();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    assert!(
        !d.join("state/keys").exists(),
        "no key outside the signer's"
    );
    let keys: Vec<_> = std::fs::read_dir(d.join("opendkim/keys/example.com"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let meta = std::fs::metadata(&keys[0]).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    let signer = maildns::signer::unix::SignerUser::lookup("opendkim").expect("opendkim user");
    let me = maildns::signer::unix::SignerUser::current().unwrap();
    // Root gives the file to the signer; anyone else can only write it as itself.
    let owner = if me.uid == 0 { &signer } else { &me };
    assert_eq!((meta.uid(), meta.gid()), (owner.uid, owner.gid));
    if me.uid == 0 {
        assert!(maildns::signer::unix::readable_by(
            &keys[0], signer.uid, signer.gid
        ));
        let dir_meta = std::fs::metadata(d.join("opendkim/keys/example.com")).unwrap();
        assert_eq!(dir_meta.uid(), signer.uid);
    }
    // The record published is this key's.
    let key = maildns::keys::load_private_key(&keys[0]).unwrap();
    assert!(zone(d).contains(&key.p_value().unwrap()[..100]));
}

/// From a user trial: a file with three mistakes (a wrongly typed value, an
/// unknown key, a value out of range) in three places, and a domain whose
/// SPF fails the lint gate, gets all of it in one `check`: each
/// configuration error as file:line:key on stderr, the lint finding of the
/// domain that loaded on stdout (with --json: both, as JSON), exit 65.
#[test]
fn check_reports_every_config_error_and_the_lint_errors_of_what_loaded() {
    let eleven = "v=spf1 a mx include:_s1.example.net include:_s2.example.net include:_s3.example.net include:_s4.example.net include:_s5.example.net include:_s6.example.net exists:%{i}.x.example.org a:mail.example.org mx:example.org ~all";
    let (_dir, cfg) = setup(&format!(
        "ttl = \"1h\"\n\n[domains.\"example.org\"]\naccount = \"local\"\nspff = \"v=spf1 -all\"\n\n[domains.\"example.net\"]\naccount = \"local\"\nttl = 0\n\n[domains.\"example.info\"]\naccount = \"local\"\nspf = \"{eleven}\"\n"
    ));
    let file = cfg.display().to_string();
    let out = cmd().args(["-c", &file, "check"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    let stderr = out.stderr_text();
    for want in [
        format!(
            "{file}:10: domains.\"example.com\".ttl: invalid type: string \"1h\", expected i64"
        ),
        format!(
            "{file}:14: domains.\"example.org\".spff: unknown field `spff`, expected one of `account`"
        ),
        format!("{file}:18: domains.\"example.net\".ttl: 0 is out of range"),
    ] {
        assert!(stderr.contains(&want), "{want}\n{stderr}");
    }
    let stdout = out.stdout_text();
    assert!(
        stdout.contains(&format!(
            "{file}:22: domains.\"example.info\".spf: error: SPF"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 configuration error(s) (on stderr); the records of the 1 domain(s) without one: 1 error(s)"),
        "{stdout}"
    );

    let out = cmd().args(["-c", &file, "--json", "check"]).run();
    assert_eq!(out.code(), Some(65), "{}", out.text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v["config_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "domains.\"example.com\".ttl",
            "domains.\"example.org\".spff",
            "domains.\"example.net\".ttl"
        ]
    );
    assert_eq!(v["config_errors"][0]["line"], 10);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["findings"][0]["domain"], "example.info");
}

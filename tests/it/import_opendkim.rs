//! `maildns import opendkim` on a copy of the seed's OpenDKIM layout: the key
//! made by hand with `opendkim-genkey` becomes the active key, a second import
//! changes nothing, and `maildns status` shows it.

use std::path::Path;
use std::process::Command;

use maildns::rotation::{Algorithm, KeyStatus, Selector, SqliteStore, Store};
use maildns_providers::Fqdn;
use maildns_testkit::cmd::Output;

use crate::cmd;

/// The seed's layout (opendkim.conf, key.table, signing.table, keys/prueba.private
/// made by opendkim-genkey) in `dir`, and a maildns.toml pointing at it.
fn seed_layout(dir: &Path, keytable_domain: &str) -> std::path::PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let genkey = Command::new("opendkim-genkey")
        .args([
            "-b",
            "1024",
            "-r",
            "-s",
            "201908",
            "-d",
            "example.com",
            "-D",
        ])
        .arg(&keys)
        .output()
        .map(Output)
        .expect("opendkim-genkey runs (package opendkim-tools)");
    assert!(genkey.status.success(), "{}", genkey.text());
    std::fs::rename(keys.join("201908.private"), keys.join("prueba.private")).unwrap();
    let d = dir.display();
    // As in the seed (shared/seed), with the paths moved into the temp dir.
    std::fs::write(
        dir.join("opendkim.conf"),
        format!(
            "# This is a basic configuration\nSyslog                  yes\nUMask                   002\n#Domain                 example.com\n#KeyFile                /etc/dkimkeys/dkim.key\n#Selector               2007\nSocket                    local:{d}/opendkim.sock\nPidFile               {d}/opendkim.pid\nOversignHeaders         From\nTrustAnchorFile       /usr/share/dns/root.key\nUserID                opendkim\n\n# Map domains in From addresses to keys used to sign messages\nKeyTable        {d}/key.table\nSigningTable        refile:{d}/signing.table\nExternalIgnoreList  {d}/trusted.hosts\nInternalHosts       {d}/trusted.hosts\nCanonicalization    relaxed/simple\nMode            sv\nSubDomains      no\nAutoRestart     yes\nBackground      yes\nDNSTimeout      5\nSignatureAlgorithm  rsa-sha256\nMinimumKeyBits 1024\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("key.table"),
        format!("prueba {keytable_domain}:201908:{d}/keys/prueba.private\n"),
    )
    .unwrap();
    std::fs::write(dir.join("signing.table"), "*@example.com prueba\n").unwrap();
    let cfg = dir.join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "{d}/state"

[accounts.dns]
provider = "zonefile"
path = "{d}/zone.db"

[domains."example.com"]
account = "dns"
spf = "v=spf1 ip4:192.0.2.10/32 -all"

[domains."example.com".dkim]
algorithms = ["rsa"]
bits = 2048
rotation_interval = "30d"
overlap = "14d"

[signer]
kind = "opendkim"
config = "{d}/opendkim.conf"
key_dir = "{d}/keys"
key_table = "{d}/key.table"
signing_table = "{d}/signing.table"
user = "opendkim"
"#
        ),
    )
    .unwrap();
    cfg
}

fn example() -> Fqdn {
    Fqdn::parse("example.com").unwrap()
}

#[test]
fn seed_key_is_adopted_once_and_shown_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");

    let first = cmd().config(&cfg).args(["import", "opendkim"]).run();
    assert_eq!(first.status.code(), Some(0), "{}", first.text());
    assert!(
        first
            .text()
            .contains("example.com: adopted selector 201908 (rsa 1024 bits)")
    );

    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    let state = store.load(&example()).unwrap();
    assert_eq!(state.keys.len(), 1);
    let k = state.active(Algorithm::Rsa).expect("an active RSA key");
    assert_eq!(k.selector, Selector::parse("201908").unwrap());
    assert_eq!(k.status, KeyStatus::Active);
    assert_eq!(k.bits, 1024);
    let key_path = dir.path().join("keys/prueba.private");
    assert_eq!(k.key_path.as_deref(), Some(key_path.to_str().unwrap()));
    let events = store.events(Some(&example()), 0, 100).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.what, "adopted");

    // Second import: nothing changes (same state, no new event).
    let second = cmd()
        .config(&cfg)
        .args(["--json", "import", "opendkim"])
        .run();
    assert_eq!(second.status.code(), Some(0), "{}", second.text());
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "already_adopted");
    assert_eq!(v["results"][0]["bits"], 1024);
    assert_eq!(store.load(&example()).unwrap(), state);
    assert_eq!(store.events(Some(&example()), 0, 100).unwrap().len(), 1);

    let status = cmd().config(&cfg).args(["status"]).run();
    assert_eq!(status.status.code(), Some(0), "{}", status.text());
    let out = status.text();
    assert!(out.contains("active   201908"), "{out}");
    assert!(out.contains("rsa 1024 bits"), "{out}");
    assert!(
        out.contains("rotate: generate and publish a new rsa key"),
        "{out}"
    );
    assert!(out.contains("adopted"), "{out}");
}

#[test]
fn missing_entry_and_unreadable_key_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    // The key table names another domain: example.com is not found.
    let cfg = seed_layout(dir.path(), "example.org");
    let o = cmd()
        .config(&cfg)
        .args(["import", "opendkim", "--domain", "example.com"])
        .run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(o.text().contains("NOT FOUND"), "{}", o.text());
    assert!(
        o.text().contains("add `NAME example.com:SELECTOR:"),
        "{}",
        o.text()
    );

    // The entry is there but the key file is not a key.
    std::fs::write(
        dir.path().join("key.table"),
        format!(
            "prueba example.com:201908:{}/keys/broken.private\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("keys/broken.private"), "not a key\n").unwrap();
    let o = cmd()
        .config(&cfg)
        .args(["--json", "import", "opendkim"])
        .run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "unreadable");
    assert!(
        v["results"][0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("PKCS#1 or PKCS#8")),
        "{v}"
    );
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert!(store.load(&example()).unwrap().keys.is_empty());

    // Unknown domain: a data error.
    let o = cmd()
        .config(&cfg)
        .args(["import", "opendkim", "--domain", "nope.example"])
        .run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    // Missing opendkim.conf: a data error naming it.
    let o = cmd()
        .config(&cfg)
        .args(["import", "opendkim", "--conf", "/nonexistent/opendkim.conf"])
        .run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    assert!(
        o.text().contains("/nonexistent/opendkim.conf"),
        "{}",
        o.text()
    );
}

#[test]
fn single_key_mode_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("single.conf"),
        format!(
            "Domain example.org, example.com\nKeyFile {d}/keys/prueba.private\nSelector 201908\n"
        ),
    )
    .unwrap();
    let conf = dir.path().join("single.conf");
    let o = cmd()
        .config(&cfg)
        .args([
            "--json",
            "import",
            "opendkim",
            "--conf",
            conf.to_str().unwrap(),
        ])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "adopted");
    assert_eq!(v["results"][0]["selector"], "201908");
    // The conf names no tables, unlike maildns.toml's [signer]: warned.
    assert!(
        v["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|x| x.as_str().unwrap_or("").contains("KeyTable"))),
        "{v}"
    );
}

#[test]
fn import_exits_75_while_the_lock_is_held_and_status_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");
    let _daemon = SqliteStore::open_locked(&dir.path().join("state")).unwrap();
    let o = cmd().config(&cfg).args(["import", "opendkim"]).run();
    assert_eq!(o.status.code(), Some(75), "{}", o.text());
    assert!(o.text().contains("holds the state lock"), "{}", o.text());
    // status reads without the lock.
    let o = cmd().config(&cfg).args(["status"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
}

/// base64 of the DER public key OpenSSL derives from `key` (its `p=` value).
fn p_value_of(key: &Path) -> String {
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(key)
        .output()
        .expect("openssl runs");
    assert!(out.status.success());
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// The issue's example: OpenDKIM signs with a 512-bit key made by
/// `openssl genrsa -traditional 512`. Import refuses it (a problem, exit 1, the
/// size and the file named), nothing is recorded, and `publish` never publishes
/// it (it makes a new key of the configured size instead).
#[test]
fn a_512_bit_key_is_refused_and_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");
    let key = dir.path().join("keys/prueba.private");
    std::fs::remove_file(&key).unwrap();
    let made = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("512")
        .output()
        .map(Output)
        .expect("openssl runs");
    assert!(made.status.success(), "{}", made.text());
    let weak_p = p_value_of(&key);

    let o = cmd().config(&cfg).args(["import", "opendkim"]).run();
    let out = o.text();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("example.com: REFUSED selector 201908 (rsa 512 bits)"),
        "{out}"
    );
    assert!(
        out.contains("a 512-bit RSA key: RSA keys must have at least 1024 bits"),
        "{out}"
    );
    assert!(out.contains(key.to_str().unwrap()), "{out}");
    assert!(out.contains("0 key(s) adopted, 1 problem(s)"), "{out}");
    let o = cmd()
        .config(&cfg)
        .args(["--json", "import", "opendkim"])
        .run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "refused", "{v}");
    assert_eq!(v["results"][0]["bits"], 512, "{v}");
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    assert!(store.load(&example()).unwrap().keys.is_empty());

    let o = cmd().config(&cfg).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let zone = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
    assert!(!zone.contains(&weak_p[..60]), "{zone}");
    let state = store.load(&example()).unwrap();
    assert!(state.keys.iter().all(|k| k.bits == 2048), "{state:?}");
}

/// A recorded key whose file now holds an RSA key under 1024 bits (a state
/// from before the floor, or a file replaced by hand) is refused on load:
/// publish fails naming the file, and writes no DKIM record.
#[test]
fn a_weak_key_file_behind_a_recorded_key_is_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");
    let o = cmd().config(&cfg).args(["import", "opendkim"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let key = dir.path().join("keys/prueba.private");
    std::fs::remove_file(&key).unwrap();
    let made = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("768")
        .output()
        .map(Output)
        .expect("openssl runs");
    assert!(made.status.success(), "{}", made.text());
    let o = cmd().config(&cfg).args(["publish"]).run();
    let out = o.text();
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("a 768-bit RSA key"), "{out}");
    assert!(out.contains(key.to_str().unwrap()), "{out}");
    let zone = std::fs::read_to_string(dir.path().join("zone.db")).unwrap_or_default();
    assert!(!zone.contains("_domainkey"), "{zone}");
}

/// 1024 bits is allowed (RFC 8301: MUST at least 1024) with a warning on every
/// run (SHOULD at least 2048): import, status and publish each say it.
#[test]
fn a_1024_bit_key_is_adopted_with_a_warning_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");
    for run in 0..2 {
        let o = cmd().config(&cfg).args(["import", "opendkim"]).run();
        assert_eq!(o.status.code(), Some(0), "{}", o.text());
        assert!(
            o.text().contains("warning: a 1024-bit RSA key: RFC 8301 (section 3.2) says signers SHOULD use at least 2048 bits"),
            "run {run}: {}",
            o.text()
        );
    }
    for run in 0..2 {
        let o = cmd().config(&cfg).args(["status"]).run();
        assert_eq!(o.status.code(), Some(0), "{}", o.text());
        assert!(
            o.text()
                .contains("WARNING  example.com: key 201908 (active): a 1024-bit RSA key"),
            "run {run}: {}",
            o.text()
        );
        let o = cmd().config(&cfg).args(["--json", "status"]).run();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let s = v.to_string();
        assert!(s.contains("\"code\":\"rsa_weak\""), "{s}");
        let o = cmd().config(&cfg).args(["publish"]).run();
        assert_eq!(o.status.code(), Some(0), "{}", o.text());
        assert!(
            o.text()
                .contains("warning: example.com: key 201908 (active): a 1024-bit RSA key"),
            "run {run}: {}",
            o.text()
        );
    }
}

/// From a user trial: a KeyTable line no SigningTable line names (an old key
/// kept, its file already deleted) made `import opendkim` exit 1. OpenDKIM
/// never signs with such an entry: it is a warning naming file:line and the
/// entry, the key the SigningTable names is adopted, exit 0.
#[test]
fn an_unused_key_table_entry_is_a_warning_and_the_rest_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seed_layout(dir.path(), "example.com");
    let d = dir.path().display();
    let key_table = dir.path().join("key.table");
    std::fs::write(
        &key_table,
        format!(
            "old example.com:201801:{d}/keys/old.private\nprueba example.com:201908:{d}/keys/prueba.private\n"
        ),
    )
    .unwrap();

    let o = cmd().config(&cfg).args(["import", "opendkim"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let text = o.text();
    assert!(
        text.contains(&format!(
            "warning: {}:1: KeyTable entry \"old\" is named by no SigningTable line (OpenDKIM does not sign with it): not imported",
            key_table.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("example.com: adopted selector 201908 (rsa 1024 bits)"),
        "{text}"
    );
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    let state = store.load(&example()).unwrap();
    assert_eq!(state.keys.len(), 1, "{state:?}");
    assert_eq!(
        state.active(Algorithm::Rsa).map(|k| k.selector.to_string()),
        Some("201908".into())
    );

    // --json: the entry is reported as unused, and not as a problem.
    let o = cmd()
        .config(&cfg)
        .args(["--json", "import", "opendkim"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let outcomes: Vec<(&str, &str)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [("old", "unused"), ("prueba", "already_adopted")],
        "{v}"
    );
}

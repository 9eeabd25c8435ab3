//! `maildns publish` on zone files as BIND reads them (issue #11 item 4), checked
//! with `named-checkzone`: a zone with wildcard owners is published, and values a
//! zone `$INCLUDE`s count as present (no second SPF value, no second DKIM record).

use std::path::Path;
use std::process::{Command, Output};

fn maildns(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maildns"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("MAILDNS_CONFIG")
        .output()
        .expect("maildns runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The zone as BIND loads it (`named-checkzone -D`, run in the zone's directory),
/// one record per line, comments dropped.
fn as_bind_loads(file: &Path) -> String {
    let out = Command::new("named-checkzone")
        .args(["-q", "-D", "-o", "-", "example.com"])
        .arg(file)
        .current_dir(file.parent().unwrap())
        .output()
        .expect("named-checkzone runs (package bind9)");
    assert!(out.status.success(), "named-checkzone: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

const SOA: &str = "$ORIGIN example.com.\n$TTL 3600\n@ IN SOA ns1 hostmaster 2024010101 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n";

fn config(dir: &Path, domain: &str) -> std::path::PathBuf {
    let cfg = dir.join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{d}/state\"\n\n[accounts.dns]\nprovider = \"zonefile\"\npath = \"{d}/zone.db\"\n\n{domain}",
            d = dir.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn zone_with_wildcard_owners_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone.db");
    let wild = "* IN A 192.0.2.1\n*._domainkey IN TXT \"v=DKIM1; p=\"\n";
    std::fs::write(&zone, format!("{SOA}{wild}")).unwrap();
    let cfg = config(
        dir.path(),
        "[domains.\"example.com\"]\naccount = \"dns\"\nspf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=reject\"\n",
    );
    let out = maildns(&cfg, &["publish"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = std::fs::read_to_string(&zone).unwrap();
    assert!(written.contains(wild), "{written}");
    let loaded = as_bind_loads(&zone);
    assert!(
        loaded.contains("example.com. 3600 IN TXT \"v=spf1 mx -all\"\n"),
        "{loaded}"
    );
    assert!(
        loaded.contains("_dmarc.example.com. 3600 IN TXT \"v=DMARC1; p=reject\"\n"),
        "{loaded}"
    );
    assert!(
        loaded.contains("*._domainkey.example.com. 3600 IN TXT \"v=DKIM1; p=\"\n"),
        "{loaded}"
    );
    assert!(
        loaded.contains("*.example.com. 3600 IN A 192.0.2.1\n"),
        "{loaded}"
    );
    let again = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(again.status.code(), Some(0), "in sync: {}", text(&again));
}

/// The zone `$INCLUDE`s a file holding the SPF and the key's `mail.txt` (as
/// `opendkim-genkey` wrote it); the key is imported; `publish` finds both present.
#[test]
fn values_in_included_files_are_not_published_twice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let genkey = Command::new("opendkim-genkey")
        .args(["-b", "2048", "-s", "mail", "-d", "example.com", "-D"])
        .arg(&keys)
        .output()
        .expect("opendkim-genkey runs (package opendkim-tools)");
    assert!(genkey.status.success(), "{}", text(&genkey));
    std::fs::write(d.join("spf.inc"), "@ IN TXT \"v=spf1 mx -all\"\n").unwrap();
    let zone = d.join("zone.db");
    std::fs::write(
        &zone,
        format!("{SOA}$INCLUDE spf.inc\n$INCLUDE keys/mail.txt\nwww IN A 192.0.2.1\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("key.table"),
        format!("mail example.com:mail:{}/mail.private\n", keys.display()),
    )
    .unwrap();
    std::fs::write(d.join("signing.table"), "*@example.com mail\n").unwrap();
    std::fs::write(
        d.join("opendkim.conf"),
        format!(
            "KeyTable {k}\nSigningTable refile:{s}\nSocket local:{d}/opendkim.sock\n",
            k = d.join("key.table").display(),
            s = d.join("signing.table").display(),
            d = d.display()
        ),
    )
    .unwrap();
    let cfg = config(
        d,
        &format!(
            "[domains.\"example.com\"]\naccount = \"dns\"\nspf = \"v=spf1 mx -all\"\n\n[domains.\"example.com\".dkim]\nalgorithms = [\"rsa\"]\nbits = 2048\n\n[signer]\nkind = \"opendkim\"\nconfig = \"{d}/opendkim.conf\"\nkey_dir = \"{k}\"\nkey_table = \"{d}/key.table\"\nsigning_table = \"{d}/signing.table\"\nuser = \"opendkim\"\n",
            d = d.display(),
            k = keys.display()
        ),
    );
    let import = maildns(&cfg, &["import", "opendkim"]);
    assert_eq!(import.status.code(), Some(0), "{}", text(&import));
    let before = std::fs::read(&zone).unwrap();
    let plan = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(plan.status.code(), Some(0), "in sync: {}", text(&plan));
    let json = maildns(&cfg, &["--json", "records"]);
    let records = String::from_utf8_lossy(&json.stdout);
    assert!(
        records.contains("mail._domainkey.example.com"),
        "the key is one of the records: {records}"
    );
    let publish = maildns(&cfg, &["publish"]);
    assert_eq!(publish.status.code(), Some(0), "{}", text(&publish));
    assert_eq!(std::fs::read(&zone).unwrap(), before, "nothing appended");
    let loaded = as_bind_loads(&zone);
    assert_eq!(loaded.matches("v=spf1").count(), 1, "{loaded}");
    assert_eq!(
        loaded.matches("mail._domainkey.example.com.").count(),
        1,
        "{loaded}"
    );

    // A new SPF would have to change the value in spf.inc: refused, naming it.
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace(
            "spf = \"v=spf1 mx -all\"",
            "spf = \"v=spf1 ip4:192.0.2.10/32 -all\"",
        ),
    )
    .unwrap();
    let publish = maildns(&cfg, &["publish"]);
    let out = text(&publish);
    assert_eq!(publish.status.code(), Some(1), "a domain failed: {out}");
    assert!(
        !out.contains("rejected by the host"),
        "the zone file is not a host: {out}"
    );
    let place = format!(
        "{}:1: the TXT record at example.com that must change is in this included file",
        d.join("spf.inc").display()
    );
    assert!(out.contains(&place), "{out}");
    assert_eq!(std::fs::read(&zone).unwrap(), before, "nothing written");
}

//! `maildns import opendkim` with `[signer] kind = "opendkim-sql"`: the keys
//! the OpenDKIMs sign with today, read from the KeyTable/SigningTable rows an
//! operator wrote (any key id, key data inline or a key file path), become
//! the domains' active keys; maildns keeps a 0600 copy, writes nothing to
//! the tables, and a second import changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use maildns::rotation::{KeyStatus, Selector, SqliteStore, Store};
use maildns_providers::Fqdn;
use maildns_testkit::Postgres;

use crate::cmd;

/// A private key made as an operator makes one (`openssl genrsa
/// -traditional`: PKCS#1 PEM), written to `path`.
fn genrsa(path: &Path, bits: u32) -> String {
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(path)
        .arg(bits.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::read_to_string(path).unwrap()
}

fn public_key(path: &Path) -> Vec<u8> {
    maildns::keys::load_private_key(path)
        .unwrap()
        .public_key_der()
        .unwrap()
}

#[test]
fn import_adopts_the_keys_opendkim_reads_from_sql_rows_inline_and_by_file() {
    let pg = Postgres::start();
    let url = pg.create_database("dkim");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = d.join("signer.pw");
    std::fs::write(&pw, format!("{}\n", pg.password)).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The operator's rows: example.com's key inline (PEM as openssl wrote
    // it), example.net's in a file the row names, example.org none.
    let inline = genrsa(&d.join("com.pem"), 2048);
    let mta_keys = d.join("mta-keys");
    std::fs::create_dir(&mta_keys).unwrap();
    genrsa(&mta_keys.join("net.private"), 1024);
    let sql = |q: &str| pg.psql("dkim", q).unwrap_or_else(|e| panic!("{e}"));
    sql(
        "CREATE TABLE dkim_keys (id text PRIMARY KEY, domain text NOT NULL, selector text NOT NULL, private_key text NOT NULL);
         CREATE TABLE dkim_signing (pattern text PRIMARY KEY, key_id text NOT NULL);",
    );
    sql(&format!(
        "INSERT INTO dkim_keys VALUES ('com-key', 'example.com', 'mail', $${inline}$$),
             ('net-key', 'example.net', 'mx2019', '{}');
         INSERT INTO dkim_signing VALUES ('example.com', 'com-key'), ('example.net', 'net-key');",
        mta_keys.join("net.private").display()
    ));
    let tables_before =
        sql("SELECT * FROM dkim_keys ORDER BY id; SELECT * FROM dkim_signing ORDER BY pattern");

    let mut toml = format!(
        r#"state_dir = "{d}/state"

[accounts.dns]
provider = "powerdns"
base_url = "http://127.0.0.1:9"

[signer]
kind = "opendkim-sql"
url = "{url}"
password_file = "{pw}"
key_dir = "{d}/keys"
confirm = "tables-only"
"#,
        d = d.display(),
        pw = pw.display(),
    );
    for name in ["example.com", "example.net", "example.org"] {
        toml.push_str(&format!(
            "\n[domains.\"{name}\"]\naccount = \"dns\"\n\n[domains.\"{name}\".dkim]\nalgorithms = [\"rsa\"]\nbits = 2048\n"
        ));
    }
    let cfg = d.join("maildns.toml");
    std::fs::write(&cfg, toml).unwrap();
    let import = |args: &[&str]| {
        let out = cmd()
            .config(&cfg)
            .args(["import", "opendkim", "--json"])
            .args(args)
            .env("MAILDNS_DNS_TOKEN", "unused")
            .run();
        assert!(!out.text().contains(&pg.password), "password shown");
        assert!(!out.text().contains("PRIVATE KEY"), "key data shown");
        let v: serde_json::Value = serde_json::from_str(&out.stdout_text())
            .unwrap_or_else(|e| panic!("{e}: {}", out.text()));
        (out, v)
    };
    let outcome = |v: &serde_json::Value, domain: &str| -> (String, String) {
        let r = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == domain)
            .unwrap_or_else(|| panic!("{domain} in {v}"));
        (
            r["outcome"].as_str().unwrap().to_string(),
            r["selector"].as_str().unwrap_or("").to_string(),
        )
    };

    let (out, v) = import(&[]);
    assert_eq!(
        out.code(),
        Some(1),
        "example.org has no row: {}",
        out.text()
    );
    assert_eq!(
        outcome(&v, "example.com"),
        ("adopted".into(), "mail".into())
    );
    assert_eq!(
        outcome(&v, "example.net"),
        ("adopted".into(), "mx2019".into())
    );
    assert_eq!(outcome(&v, "example.org").0, "not_found");
    assert!(v.to_string().contains("dkim_signing"), "{v}");
    assert!(!v.to_string().contains(&pg.password));

    // The state records each as the active key, with maildns's 0600 copy
    // holding the same key as the row (or the row's file).
    let store = SqliteStore::open(&d.join("state")).unwrap();
    for (domain, selector, source) in [
        ("example.com", "mail", d.join("com.pem")),
        ("example.net", "mx2019", mta_keys.join("net.private")),
    ] {
        let state = store.load(&Fqdn::parse(domain).unwrap()).unwrap();
        let k = state
            .key(&Selector::parse(selector).unwrap())
            .unwrap_or_else(|| panic!("{domain}: {state:?}"));
        assert_eq!(k.status, KeyStatus::Active, "{domain}");
        let copy = Path::new(k.key_path.as_deref().unwrap()).to_path_buf();
        assert_eq!(copy, d.join(format!("keys/{domain}/{selector}.private")));
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(public_key(&copy), public_key(&source), "{domain}");
    }
    assert!(
        store
            .load(&Fqdn::parse("example.org").unwrap())
            .unwrap()
            .keys
            .is_empty()
    );
    drop(store);

    // Again: nothing changes, and the tables were never written.
    let (out, v) = import(&["-d", "example.com", "-d", "example.net"]);
    assert_eq!(out.code(), Some(0), "{}", out.text());
    assert_eq!(outcome(&v, "example.com").0, "already_adopted");
    assert_eq!(outcome(&v, "example.net").0, "already_adopted");
    assert_eq!(
        sql("SELECT * FROM dkim_keys ORDER BY id; SELECT * FROM dkim_signing ORDER BY pattern"),
        tables_before
    );
}

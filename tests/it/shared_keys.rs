//! `publish` and `records` find keys where the rotation finds them: with a
//! database-backed signer, a key one machine's `publish` makes goes into the
//! engine's shared store at once, and another machine (its own state dir
//! and empty key directory, the same PostgreSQL) publishes and prints the
//! same record from the store, without a key file and without a second key.

use std::path::{Path, PathBuf};

use maildns_testkit::{Postgres, PowerDns};

use crate::cmd;
use crate::support::cli::shared_state;
use crate::support::rig::{rotation_toml, secret_file};

/// Machine `name`'s configuration: its own state dir and key directory, the
/// shared state database and the signer database `dkim`.
fn machine(dir: &Path, name: &str, pdns: &PowerDns, state_url: &str, dkim_url: &str) -> PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(home.join("keys")).unwrap();
    let signer = format!(
        r#"{state}
[signer]
kind = "opendkim-sql"
url = "{dkim_url}"
password_file = "{pw}"
key_dir = "{keys}"
confirm = "tables-only"
"#,
        state = shared_state(state_url, name),
        pw = dir.join("signer.pw").display(),
        keys = home.join("keys").display(),
    );
    let toml = rotation_toml(
        &home.join("state"),
        &pdns.api_url,
        pdns.dns,
        1024,
        "",
        &signer,
    );
    let path = home.join("maildns.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// The DKIM lines `maildns records --json` prints (name, value).
fn dkim_records(out: &maildns_testkit::cmd::Output) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout_text()).unwrap_or_else(|e| panic!("{e}: {}", out.text()));
    v.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "DKIM")
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_published_on_one_machine_is_published_and_printed_by_another_from_the_keytable() {
    let pg = Postgres::start();
    let state_url = pg.create_database("state");
    let dkim_url = pg.create_database("dkim");
    let pdns = PowerDns::start();
    pdns.create_zone_with("example.com", 3600, 60).await;
    let dir = tempfile::tempdir().unwrap();
    secret_file(dir.path(), "signer.pw", &format!("{}\n", pg.password));
    let a = machine(dir.path(), "a", &pdns, &state_url, &dkim_url);
    let b = machine(dir.path(), "b", &pdns, &state_url, &dkim_url);
    let run = |cfg: &Path, args: &[&str]| {
        let out = cmd()
            .config(cfg)
            .args(args)
            .env("MAILDNS_DNS_TOKEN", &pdns.api_key)
            .env("MAILDNS_STATE_PASSWORD", &pg.password)
            .run();
        assert!(!out.text().contains(&pg.password), "password shown");
        out
    };
    let sql = |q: &str| pg.psql("dkim", q).unwrap().trim().to_string();

    // Machine A's publish makes the first key: its KeyTable row is written
    // at once (no SigningTable row: OpenDKIM does not use it yet).
    let out = run(&a, &["publish"]);
    assert!(out.success(), "{}", out.text());
    assert_eq!(files(&dir.path().join("a/keys")), 1);
    let printed_a = dkim_records(&run(&a, &["records", "--json"]));
    assert_eq!(printed_a.len(), 1, "{printed_a:?}");
    let name = printed_a[0].0.trim_end_matches('.').to_string();
    let selector = name.split('.').next().unwrap().to_string();
    assert_eq!(
        sql("SELECT id || ' ' || domain || ' ' || selector FROM dkim_keys"),
        format!("{name} example.com {selector}"),
    );
    assert_eq!(sql("SELECT count(*) FROM dkim_signing"), "0");
    let row = sql("SELECT private_key FROM dkim_keys");

    // Machine B has no key file (A's key directory is out of reach, as on
    // another machine): records and publish take the key from the KeyTable
    // row; B writes no file and makes no second key.
    std::fs::rename(dir.path().join("a/keys"), dir.path().join("a-keys-away")).unwrap();
    let out = run(&b, &["records", "--json"]);
    assert!(out.success(), "{}", out.text());
    assert_eq!(dkim_records(&out), printed_a);
    let out = run(&b, &["publish"]);
    assert!(out.success(), "{}", out.text());
    let out = run(&b, &["plan", "--exit-code"]);
    assert_eq!(
        out.code(),
        Some(0),
        "B sees A's record in sync: {}",
        out.text()
    );
    assert_eq!(files(&dir.path().join("b/keys")), 0);
    assert_eq!(sql("SELECT count(*) FROM dkim_keys"), "1");
    assert_eq!(sql("SELECT private_key FROM dkim_keys"), row);

    // A key in neither place: B's records refuses, naming the selector.
    sql("DELETE FROM dkim_keys");
    let out = run(&b, &["records"]);
    assert!(!out.success(), "{}", out.text());
    assert!(
        out.stderr_text().contains("missing") && out.stderr_text().contains("selector"),
        "{}",
        out.text()
    );
}

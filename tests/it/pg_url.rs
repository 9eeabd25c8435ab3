//! Percent-encoding in a PostgreSQL URL, with libpq's meaning: a database
//! name, user (or query value) that needs encoding (`mail%2Ddns`,
//! `mail%20dns`, `dns%20ops`) is decoded, and maildns connects to the real
//! database of that name, as that role.

use std::time::Duration;

use maildns::rotation::{PgOptions, PgStore, Request, Store};
use maildns_providers::{Fqdn, Secret};
use maildns_testkit::Postgres;

use crate::cmd;

fn connect(url: &str, password: &str) -> Result<PgStore, String> {
    PgStore::connect(PgOptions {
        url: url.to_string(),
        password: Some(Secret::new(password.to_string())),
        replica: "pct".into(),
        lease: Duration::from_secs(30),
        max_connections: 1,
    })
    .map_err(|e| e.to_string())
}

/// The port of the harness's PostgreSQL (its URL is `postgres://maildns@127.0.0.1:PORT/db`).
fn base(pg: &Postgres) -> String {
    format!("postgres://maildns@127.0.0.1:{}", pg.addr.port())
}

#[test]
fn a_percent_encoded_database_name_and_user_are_decoded_as_libpq_does() {
    let pg = Postgres::start();
    pg.create_database("mail-dns");
    pg.create_database("mail dns");
    let a = Fqdn::parse("a.example").unwrap();

    // %2D and %20 in the database name: maildns's tables land in the
    // database of the decoded name (and nowhere else).
    for (encoded, name) in [("mail%2Ddns", "mail-dns"), ("mail%20dns", "mail dns")] {
        let url = format!("{}/{encoded}", base(&pg));
        let store = connect(&url, &pg.password).unwrap_or_else(|e| panic!("{url}: {e}"));
        store.lock_exclusive().unwrap();
        let id = store
            .add_request(&a, Request::ROTATE_NOW, chrono::Utc::now())
            .unwrap();
        drop(store);
        let found = pg
            .psql(name, "SELECT id FROM requests")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(found.trim(), id.to_string(), "{name}");
    }
    assert!(
        pg.psql("maildns", "SELECT 1 FROM requests").is_err(),
        "no table in the default database"
    );

    // A user whose name needs encoding, with its own password, in a database
    // it owns.
    let role_password = "Pct-0wner-pw";
    pg.psql(
        "postgres",
        &format!("CREATE ROLE \"dns ops\" LOGIN PASSWORD '{role_password}'"),
    )
    .unwrap();
    pg.psql("postgres", "CREATE DATABASE \"ops db\" OWNER \"dns ops\"")
        .unwrap();
    let url = format!("postgres://dns%20ops@127.0.0.1:{}/ops%20db", pg.addr.port());
    let store = connect(&url, role_password).unwrap_or_else(|e| panic!("{e}"));
    drop(store);
    let owner = pg
        .psql(
            "ops db",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'requests'",
        )
        .unwrap();
    assert_eq!(owner.trim(), "dns ops");

    // The same URL in the configuration: `check` accepts it and `status`
    // reads that database (the request queued above).
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[state]\nurl = \"{}/mail%2Ddns\"\n[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"http://127.0.0.1:9\"\n[domains.\"a.example\"]\naccount = \"dns\"\n[domains.\"a.example\".dkim]\nbits = 2048\n",
            base(&pg)
        ),
    )
    .unwrap();
    let o = cmd().config(&cfg).args(["check"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let o = cmd()
        .config(&cfg)
        .args(["--json", "status"])
        .env("MAILDNS_STATE_PASSWORD", &pg.password)
        .run();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.text()));
    assert!(
        v.to_string().contains("rotate_now"),
        "the queued request of mail-dns: {v}"
    );
    assert!(!o.text().contains(&pg.password));

    // A malformed escape (or %00) is refused before connecting, as libpq
    // refuses it, not taken literally as a database name; `check` says
    // where (file:line:key).
    for bad in ["mail%ZZdns", "mail%2", "mail%00dns"] {
        let err = connect(&format!("{}/{bad}", base(&pg)), &pg.password)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            err.contains("state store") && err.contains("percent-encod"),
            "{err}"
        );
        assert!(
            !err.contains("does not exist"),
            "not sent to the server: {err}"
        );
    }
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("mail%2Ddns", "mail%ZZdns"),
    )
    .unwrap();
    let o = cmd().config(&cfg).args(["check"]).run();
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains("maildns.toml:3") && o.text().contains("state.url"),
        "{}",
        o.text()
    );
    assert!(o.text().contains("percent-encod"), "{}", o.text());
}

//! OpenDKIM with SQL data sets end to end: a real PostgreSQL (testkit), TWO
//! real OpenDKIM processes whose `KeyTable` and `SigningTable` are `dsn:pgsql://`
//! data sets, a real PowerDNS, and the runner with simulated time. maildns
//! writes the rows (key data inline); a switch counts only when a probe through
//! EVERY milter socket comes back signed with the new selector and verified
//! against PowerDNS, and a retirement waits until no socket signs with the old
//! one. The database password comes from a 0600 file and is never shown.
#![allow(clippy::disallowed_macros)] // prints for its reader; clippy.toml bans printing in the crate

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use chrono::TimeDelta;
use maildns::accounts::connect_all;
use maildns::config::Config;
use maildns::propagation::{Clock, Querier, QueryOptions};
use maildns::rotation::{
    BlockKind, DomainState, KeyStatus, RunOutcome, Runner, Selector, SqliteStore, Store,
};
use maildns_providers::Fqdn;
use maildns_providers::http::RetryPolicy;
use maildns_testkit::opendkim::{OpenDkim, signature_tag};
use maildns_testkit::{Postgres, PowerDns};

use crate::rotation::{Creds, FakeClock, VERIFY, maildns_cmd, t0};

const MESSAGE: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: scaling out\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <sql@example.com>\r\n\r\nHello.\r\n";

const DB: &str = "dkim";

struct Env {
    pdns: PowerDns,
    pg: Postgres,
    /// Two MTAs' OpenDKIMs: [0] reads maildns's tables, [1] the tables of
    /// `tables_b` (the same ones, or a stale copy).
    mtas: Vec<OpenDkim>,
    dir: tempfile::TempDir,
}

fn domain() -> Fqdn {
    Fqdn::parse("example.com").unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn status(state: &DomainState, s: &str) -> Option<KeyStatus> {
    state.key(&sel(s)).map(|k| k.status)
}

impl Env {
    /// PowerDNS serving example.com (SOA minimum 60 s), PostgreSQL with
    /// database `dkim`, and two OpenDKIMs: the first on maildns's default
    /// tables `dkim_keys`/`dkim_signing`, the second on `b_keys`/`b_signing`.
    /// The (empty) tables exist before OpenDKIM starts, as the README says:
    /// OpenDKIM walks the SigningTable when it loads its configuration, and
    /// a missing table leaves it hanging on every later message.
    async fn start(b_keys: &str, b_signing: &str) -> Env {
        let pdns = PowerDns::start();
        pdns.create_zone_with("example.com", 3600, 60).await;
        let pg = Postgres::start();
        pg.create_database(DB);
        for (keys, signing) in [("dkim_keys", "dkim_signing"), (b_keys, b_signing)] {
            pg.psql(
                DB,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {keys} (id text PRIMARY KEY, domain text NOT NULL, selector text NOT NULL, private_key text NOT NULL);\
                     CREATE TABLE IF NOT EXISTS {signing} (pattern text PRIMARY KEY, key_id text NOT NULL)"
                ),
            )
            .unwrap();
        }
        let mut mtas = Vec::new();
        for (keys, signing) in [("dkim_keys", "dkim_signing"), (b_keys, b_signing)] {
            let (kt, st) = OpenDkim::pgsql_tables(&pg, DB, keys, signing);
            mtas.push(OpenDkim::start_with_tables(&kt, &st));
        }
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("signer.pw");
        std::fs::write(&pw, format!("{}\n", pg.password)).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        Env {
            pdns,
            pg,
            mtas,
            dir,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn socket(&self, i: usize) -> String {
        format!("local:{}", self.mtas[i].socket.display())
    }

    fn config(&self) -> Config {
        let toml = format!(
            r#"state_dir = "{state}"
[accounts.dns]
provider = "powerdns"
base_url = "{api}"

[domains."example.com"]
account = "dns"
ttl = 300
nameservers = ["{ns}"]

[domains."example.com".dkim]
algorithms = ["rsa"]
bits = 1024
selector_format = "%Y%m"
rotation_interval = "30d"
overlap = "14d"
retire = "remove"

[signer]
kind = "opendkim-sql"
url = "{url}"
password_env = "MAILDNS_TEST_SIGNER_PASSWORD_NOT_SET"
password_file = "{pw}"
sockets = ["{a}", "{b}"]
probe_timeout = "3s"
"#,
            state = self.state_dir().display(),
            api = self.pdns.api_url,
            ns = self.pdns.dns,
            url = self.pg.url(DB),
            pw = self.dir.path().join("signer.pw").display(),
            a = self.socket(0),
            b = self.socket(1),
        );
        let path = self.dir.path().join("maildns.toml");
        std::fs::write(&path, toml).unwrap();
        maildns::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn run(&self, config: &Config, clock: &Arc<FakeClock>) -> RunOutcome {
        let out = self
            .runner(config, clock)
            .run_once(&domain())
            .await
            .unwrap();
        let shown = format!("{out:?}");
        assert!(
            !shown.contains(&self.pg.password),
            "password shown: {shown}"
        );
        out
    }

    fn runner(&self, config: &Config, clock: &Arc<FakeClock>) -> Runner {
        let quick = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let (providers, failed) = connect_all(config, &Creds(self.pdns.api_key.clone()), quick);
        assert!(failed.is_empty(), "{failed:?}");
        std::fs::create_dir_all(&config.state_dir).unwrap();
        let clock: Arc<dyn Clock> = clock.clone();
        let store = Arc::new(
            SqliteStore::open_locked(&config.state_dir)
                .unwrap()
                .with_clock(clock.clone()),
        );
        Runner::new(config.clone(), store, providers, clock).unwrap()
    }

    fn state(&self) -> DomainState {
        SqliteStore::open(&self.state_dir())
            .unwrap()
            .load(&domain())
            .unwrap()
    }

    async fn served(&self, selector: &str) -> usize {
        let name = Fqdn::parse(&format!("{selector}._domainkey.example.com")).unwrap();
        Querier::new(QueryOptions::default())
            .txt(self.pdns.dns, &name, false)
            .await
            .unwrap()
            .records
            .len()
    }

    fn sql(&self, q: &str) -> String {
        self.pg
            .psql(DB, q)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    }

    /// `config` as another machine's replica has it: the same shared state
    /// and database, its own (empty) key directory. The first machine's key
    /// directory is moved out of reach, as it is on another machine.
    fn on_another_machine(&self, config: &Config) -> Config {
        let mut other = config.clone();
        let b = self.dir.path().join("machine-b-keys");
        std::fs::create_dir_all(&b).unwrap();
        other.signer.as_mut().unwrap().key_dir = b;
        std::fs::rename(
            self.state_dir().join("keys"),
            self.dir.path().join("machine-a"),
        )
        .unwrap();
        other
    }

    /// How many files machine B's key directory holds (recursively).
    fn machine_b_files(&self) -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        }
        walk(&self.dir.path().join("machine-b-keys"))
    }

    /// MTA `i`'s OpenDKIM signs MESSAGE with `selector`, and dkimpy verifies
    /// it against what PowerDNS serves.
    fn assert_signs_with(&self, i: usize, selector: &str) {
        let o = &self.mtas[i];
        let sig = o
            .sign(MESSAGE)
            .unwrap_or_else(|e| panic!("MTA {i}: {e}\nlog:\n{}", o.log()));
        assert_eq!(
            signature_tag(&sig, "s").as_deref(),
            Some(selector),
            "MTA {i}: {sig}"
        );
        let file = self.dir.path().join(format!("signed-{i}.eml"));
        std::fs::write(&file, format!("DKIM-Signature: {sig}\r\n{MESSAGE}")).unwrap();
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(VERIFY)
            .arg(&file)
            .arg(self.pdns.dns.port().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dkimpy did not verify MTA {i}'s s={selector}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `maildns status --json`, checked to hold no password.
    fn status_json(&self) -> serde_json::Value {
        let cfg = self.dir.path().join("maildns.toml");
        let out = maildns_cmd(&cfg, &self.pdns.api_key)
            .args(["status", "--json"])
            .run();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!text.contains(&self.pg.password), "password in status");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(&self.pg.password),
            "password in status stderr"
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opendkims_on_one_database_switch_together_and_both_are_proven() {
    let env = Env::start("dkim_keys", "dkim_signing").await;
    let config = env.config();
    let clock = FakeClock::at(t0());

    // Day 0: published. The KeyTable row is written at generation (where
    // every replica finds the key); no SigningTable row names it before the
    // negative-caching window has passed, so OpenDKIM does not use it.
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    assert_eq!(env.sql("SELECT count(*) FROM dkim_keys"), "1");
    assert_eq!(
        env.sql("SELECT count(*) FROM dkim_signing"),
        "0",
        "no SigningTable row before the switch"
    );
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    let confirm = out
        .performed
        .iter()
        .find(|p| p.action == "confirm_signer")
        .expect("confirmed by probes");
    assert_eq!(confirm.result, "ok", "{confirm:?}");
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    // One KeyTable row with the key inline (no file path), one SigningTable row.
    assert_eq!(
        env.sql("SELECT id || ' ' || domain || ' ' || selector FROM dkim_keys"),
        "202401._domainkey.example.com example.com 202401"
    );
    let data = env.sql("SELECT private_key FROM dkim_keys");
    // Not a path (OpenDKIM reads a value starting with '/', './' or '../' as a
    // file name): one line of base64 DER.
    assert!(
        data.starts_with("MII") && !data.contains(['\n', '-', ' ']),
        "inline base64 DER"
    );
    assert_eq!(
        env.sql("SELECT pattern || ' ' || key_id FROM dkim_signing"),
        "example.com 202401._domainkey.example.com"
    );
    env.assert_signs_with(0, "202401");
    env.assert_signs_with(1, "202401");
    for o in &env.mtas {
        assert_eq!(
            std::fs::read_dir(&o.key_dir).unwrap().count(),
            0,
            "no key file on the MTAs"
        );
    }

    // Day 30: the next key; the switch is one transaction, used by both
    // OpenDKIMs at the next message (no reload), proven on both sockets.
    clock.advance(TimeDelta::days(30));
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Propagated));
    env.assert_signs_with(0, "202401");
    env.assert_signs_with(1, "202401");
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    env.assert_signs_with(0, "202402");
    env.assert_signs_with(1, "202402");
    assert_eq!(env.sql("SELECT count(*) FROM dkim_keys"), "2");

    // End of the overlap: the old record and the old row go.
    clock.advance(TimeDelta::days(14));
    let out = env.run(&config, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Destroyed));
    assert_eq!(env.served("202401").await, 0);
    assert_eq!(
        env.sql("SELECT string_agg(selector, ',') FROM dkim_keys"),
        "202402"
    );
    env.assert_signs_with(0, "202402");
    env.assert_signs_with(1, "202402");
    let v = env.status_json();
    assert!(
        v["domains"][0]["blocked"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{v}"
    );
    // `verify` reads the rows and probes both sockets: the selector both use
    // is served.
    let out = maildns_cmd(&env.dir.path().join("maildns.toml"), &env.pdns.api_key)
        .args(["verify", "--json"])
        .run();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains(&env.pg.password), "password in verify");
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let found = v.to_string();
    assert!(
        found.contains("\"check\":\"signer 202402\"")
            && found.contains("the signer tables and a probe signature"),
        "{found}"
    );
    assert!(!found.contains("signer 202401"), "{found}");
}

/// The backend on its own: tables created when missing, both rows written in
/// one transaction, the entry OpenDKIM would find, a retired key's rows
/// removed; a wrong password is an error naming the URL, never a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_backend_writes_reads_and_removes_rows_and_hides_the_password() {
    use maildns::keys::{KeySpec, PrivateKey};
    use maildns::signer::{KeyRef, OpenDkimSql, SignerError};
    use maildns_providers::Secret;

    let pg = Postgres::start();
    let url = pg.create_database("fresh");
    let dir = tempfile::tempdir().unwrap();
    let s = OpenDkimSql::new(
        &url,
        Some(Secret::new(pg.password.clone())),
        dir.path().join("keys"),
        vec![],
    );
    let key = PrivateKey::generate(KeySpec::ed25519()).unwrap();
    let path = s.install_key("Example.COM", &sel("s1"), &key).unwrap();
    assert!(path.ends_with("example.com/s1.private"));
    // Another domain's rows are never touched.
    pg.psql(
        "fresh",
        "CREATE TABLE dkim_keys (id text PRIMARY KEY, domain text NOT NULL, selector text NOT NULL, private_key text NOT NULL);\
         INSERT INTO dkim_keys VALUES ('x._domainkey.other.org', 'other.org', 'x', 'MIIB')",
    )
    .unwrap();
    assert_eq!(
        s.switch("Example.COM", &sel("s1"), &path).await.unwrap(),
        None
    );
    let entry = s.entry("example.com").await.unwrap().unwrap();
    assert_eq!(entry.selector, "s1");
    assert_eq!(
        entry.key,
        KeyRef::Inline {
            table: "dkim_keys".into(),
            id: "s1._domainkey.example.com".into()
        }
    );
    // A subdomain is not signed by the domain's row (OpenDKIM asks
    // `.example.com` for it, not `example.com`).
    assert_eq!(s.entry("sub.example.com").await.unwrap(), None);
    let key2 = PrivateKey::generate(KeySpec::ed25519()).unwrap();
    let path2 = s.install_key("example.com", &sel("s2"), &key2).unwrap();
    assert_eq!(
        s.switch("example.com", &sel("s2"), &path2)
            .await
            .unwrap()
            .as_deref(),
        Some("s1._domainkey.example.com")
    );
    assert_eq!(
        pg.psql("fresh", "SELECT pattern || ' ' || key_id FROM dkim_signing")
            .unwrap()
            .trim(),
        "example.com s2._domainkey.example.com"
    );
    // A new key's row goes in at generation, without a SigningTable row;
    // any replica reads it back; the same key again is no error, another key
    // under the selector is refused (stored or switched to), naming the row.
    let key3 = PrivateKey::generate(KeySpec::ed25519()).unwrap();
    s.store_key("example.com", &sel("s3"), &key3).await.unwrap();
    s.store_key("example.com", &sel("s3"), &key3).await.unwrap();
    let back = s
        .stored_key("example.com", &sel("s3"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.p_value().unwrap(), key3.p_value().unwrap());
    assert!(
        s.stored_key("example.com", &sel("none"))
            .await
            .unwrap()
            .is_none()
    );
    let other = PrivateKey::generate(KeySpec::ed25519()).unwrap();
    for e in [
        s.store_key("example.com", &sel("s3"), &other)
            .await
            .unwrap_err(),
        s.switch_key("example.com", &sel("s3"), &other)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, SignerError::KeyConflict { .. }), "{e}");
        assert!(e.to_string().contains("s3._domainkey.example.com"), "{e}");
    }
    assert_eq!(
        s.stored_key("example.com", &sel("s3"))
            .await
            .unwrap()
            .unwrap()
            .p_value()
            .unwrap(),
        key3.p_value().unwrap()
    );
    assert_eq!(
        pg.psql("fresh", "SELECT pattern || ' ' || key_id FROM dkim_signing")
            .unwrap()
            .trim(),
        "example.com s2._domainkey.example.com",
        "nothing switched"
    );
    assert_eq!(s.remove_key("example.com", &sel("s3")).await.unwrap(), 1);
    s.check_and_reload().await.unwrap();
    assert_eq!(s.remove_key("example.com", &sel("s1")).await.unwrap(), 1);
    assert_eq!(
        pg.psql(
            "fresh",
            "SELECT string_agg(id, ',' ORDER BY id) FROM dkim_keys"
        )
        .unwrap()
        .trim(),
        "s2._domainkey.example.com,x._domainkey.other.org"
    );

    let mut wrong = s.clone();
    wrong.password = Some(Secret::new("not-the-password-1234"));
    let e = wrong.entry("example.com").await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SignerError::Sql { .. }), "{text}");
    assert!(text.contains(&url) && text.contains("password"), "{text}");
    assert!(!text.contains("not-the-password-1234") && !text.contains(&pg.password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opendkim_that_cannot_see_the_new_key_holds_the_switch_and_the_retirement() {
    // The second MTA's OpenDKIM reads a stale copy of the tables.
    let env = Env::start("stale_keys", "stale_signing").await;
    let copy = || {
        env.sql(
            "DELETE FROM stale_keys; DELETE FROM stale_signing;\
             INSERT INTO stale_keys SELECT * FROM dkim_keys;\
             INSERT INTO stale_signing SELECT * FROM dkim_signing",
        )
    };
    let config = env.config();
    let clock = FakeClock::at(t0());
    let (a, b) = (env.socket(0), env.socket(1));
    let held = |out: &RunOutcome, kind: BlockKind, selector: &str| -> String {
        let found = out
            .blocked
            .iter()
            .find(|x| x.kind == kind && x.selector.as_str() == selector)
            .unwrap_or_else(|| panic!("{selector} not held as {kind:?}: {out:?}"));
        found.reason.clone()
    };

    // The first switch: the second OpenDKIM sees no key and does not sign,
    // so the key is not active; the reason names its socket only.
    env.run(&config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    let reason = held(&out, BlockKind::NotSigning, "202401");
    assert!(reason.contains(&b) && !reason.contains(&a), "{reason}");
    assert!(reason.contains("no DKIM-Signature"), "{reason}");
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Switched));
    // Once it sees the rows, the next attempt proves it on both.
    copy();
    clock.advance(TimeDelta::hours(2));
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    env.assert_signs_with(1, "202401");

    // Day 30: the second OpenDKIM keeps the old key: the switch is held,
    // naming its socket and what it signs with; the old key stays active.
    clock.advance(TimeDelta::days(30));
    env.run(&config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    let reason = held(&out, BlockKind::NotSigning, "202402");
    assert!(reason.contains(&b) && !reason.contains(&a), "{reason}");
    assert!(reason.contains("s=202401"), "{reason}");
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Switched));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Active));
    env.assert_signs_with(0, "202402");
    env.assert_signs_with(1, "202401");
    let v = env.status_json();
    assert_eq!(v["domains"][0]["blocked"][0]["selector"], "202402", "{v}");

    // Stopped: the probe fails on its socket (retried with backoff).
    env.mtas[1].stop();
    clock.advance(TimeDelta::hours(2));
    let out = env.run(&config, &clock).await;
    let confirm = out
        .performed
        .iter()
        .find(|p| p.action == "confirm_signer")
        .expect("a probe was tried");
    assert_eq!(confirm.result, "failed", "{confirm:?}");
    assert!(
        confirm.detail.contains(&b) && confirm.detail.contains("cannot connect"),
        "{}",
        confirm.detail
    );
    assert!(!confirm.detail.contains(&env.pg.password));
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Switched));

    // Back, reading the current rows: proven on both.
    copy();
    env.mtas[1].restart();
    clock.advance(TimeDelta::hours(2));
    env.run(&config, &clock).await;
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    env.assert_signs_with(1, "202402");

    // The second OpenDKIM goes back to the old key: at the end of the overlap
    // the retirement of 202401 is held, naming its socket; record and row stay.
    env.sql("UPDATE stale_signing SET key_id = '202401._domainkey.example.com'");
    // The daemon's periodic probe shows it as drift, naming its socket.
    let blocked = env
        .runner(&config, &clock)
        .probe_signers(&domain())
        .await
        .unwrap();
    let drift = blocked
        .iter()
        .find(|x| x.kind == BlockKind::Drift && x.selector.as_str() == "202402")
        .unwrap_or_else(|| panic!("no drift: {blocked:?}"));
    assert!(
        drift.reason.contains(&b) && !drift.reason.contains(&a),
        "{}",
        drift.reason
    );
    clock.advance(TimeDelta::days(15));
    let out = env.run(&config, &clock).await;
    let reason = held(&out, BlockKind::StillSigning, "202401");
    assert!(reason.contains(&b) && !reason.contains(&a), "{reason}");
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Retiring));
    assert_eq!(env.served("202401").await, 1);
    assert_eq!(
        env.sql("SELECT count(*) FROM dkim_keys WHERE selector = '202401'"),
        "1"
    );
    // Put right: the retirement goes ahead and the old row goes.
    env.sql("UPDATE stale_signing SET key_id = '202402._domainkey.example.com'");
    clock.advance(TimeDelta::hours(2));
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Destroyed));
    assert_eq!(env.served("202401").await, 0);
    assert_eq!(
        env.sql("SELECT count(*) FROM dkim_keys WHERE selector = '202401'"),
        "0"
    );
    env.assert_signs_with(0, "202402");
    env.assert_signs_with(1, "202402");
}

/// Replicas on two machines: machine A's runner generates and publishes the
/// key (its KeyTable row written at generation); machine B's runner, on the
/// same shared state with an EMPTY key directory and without A's files,
/// switches both OpenDKIMs to it from the row (only the SigningTable row is
/// new), proven by probes on both sockets and by dkimpy. B writes no key file
/// and the row keeps the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_the_key_file_switches_both_opendkims_from_the_keytable_row() {
    let env = Env::start("dkim_keys", "dkim_signing").await;
    let config_a = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config_a, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    let row = env.sql("SELECT private_key FROM dkim_keys");
    assert_eq!(env.sql("SELECT count(*) FROM dkim_signing"), "0");

    let config_b = env.on_another_machine(&config_a);
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config_b, &clock).await;
    let confirm = out
        .performed
        .iter()
        .find(|p| p.action == "confirm_signer")
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(confirm.result, "ok", "{confirm:?}");
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    assert_eq!(
        env.sql("SELECT pattern || ' ' || key_id FROM dkim_signing"),
        "example.com 202401._domainkey.example.com"
    );
    assert_eq!(env.sql("SELECT private_key FROM dkim_keys"), row);
    env.assert_signs_with(0, "202401");
    env.assert_signs_with(1, "202401");
    assert_eq!(env.machine_b_files(), 0);
}

/// The key is neither on this machine nor in the KeyTable (the row was
/// lost): the switch is refused, naming the selector; no SigningTable row is
/// written and no other key is made for the selector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lost_from_the_keytable_and_not_on_this_machine_is_never_switched_to() {
    let env = Env::start("dkim_keys", "dkim_signing").await;
    let config_a = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config_a, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    let config_b = env.on_another_machine(&config_a);
    env.sql("DELETE FROM dkim_keys");
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config_b, &clock).await;
    let blocked = out
        .blocked
        .iter()
        .find(|b| b.selector.as_str() == "202401")
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        blocked.reason.contains("selector 202401") && blocked.reason.contains("missing"),
        "{blocked:?}"
    );
    assert!(!blocked.reason.contains(&env.pg.password));
    assert_ne!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    assert_eq!(env.sql("SELECT count(*) FROM dkim_signing"), "0");
    assert_eq!(env.sql("SELECT count(*) FROM dkim_keys"), "0");
    assert_eq!(env.machine_b_files(), 0);
}

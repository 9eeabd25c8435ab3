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
        let out = Runner::new(config.clone(), store, providers, clock)
            .unwrap()
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

    // Day 0: published; no row before the negative-caching window has passed.
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    assert_eq!(
        env.sql("SELECT count(*) FROM dkim_keys"),
        "0",
        "no row written before the switch"
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

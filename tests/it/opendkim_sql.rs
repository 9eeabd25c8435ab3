//! OpenDKIM with SQL data sets end to end: a real PostgreSQL (testkit), TWO
//! real OpenDKIM processes whose `KeyTable` and `SigningTable` are `dsn:pgsql://`
//! data sets, a real PowerDNS, and the runner with simulated time. maildns
//! writes the rows (key data inline); a switch counts only when a probe through
//! EVERY milter socket comes back signed with the new selector and verified
//! against PowerDNS, and a retirement waits until no socket signs with the old
//! one. The database password comes from a 0600 file and is never shown.
#![allow(clippy::disallowed_macros)] // prints for its reader; clippy.toml bans printing in the crate

use std::path::Path;

use chrono::TimeDelta;
use maildns::config::Config;
use maildns::rotation::{BlockKind, KeyStatus, RunOutcome};
use maildns_testkit::Postgres;
use maildns_testkit::opendkim::{OpenDkim, signature_tag};

use crate::support::rig::{self, SignerKind, domain, secret_file};
use crate::support::{FakeClock, confirm_step, dkimpy_verifies_file, maildns_cmd, sel, status, t0};

const MESSAGE: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: scaling out\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <sql@example.com>\r\n\r\nHello.\r\n";

const DB: &str = "dkim";

/// PostgreSQL with database `dkim` and two MTAs' OpenDKIMs on it: [0] reads
/// maildns's tables, [1] the tables given to [`Env::with_sql`] (the same
/// ones, or a stale copy).
struct Sql {
    pg: Postgres,
    mtas: Vec<OpenDkim>,
}

impl Sql {
    fn socket(&self, i: usize) -> String {
        format!("local:{}", self.mtas[i].socket.display())
    }
}

impl SignerKind for Sql {
    /// OpenDKIM on SQL data sets, probed through both milter sockets; the
    /// database password in the 0600 file `dir/signer.pw`.
    fn section(&self, dir: &Path) -> String {
        let pw = secret_file(dir, "signer.pw", &format!("{}\n", self.pg.password));
        format!(
            r#"
[signer]
kind = "opendkim-sql"
url = "{url}"
password_env = "MAILDNS_TEST_SIGNER_PASSWORD_NOT_SET"
password_file = "{pw}"
sockets = ["{a}", "{b}"]
probe_timeout = "3s"
"#,
            url = self.pg.url(DB),
            pw = pw.display(),
            a = self.socket(0),
            b = self.socket(1),
        )
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.pg.password.clone()]
    }
}

type Env = rig::Env<Sql>;

impl Env {
    /// PowerDNS serving example.com (SOA minimum 60 s), PostgreSQL with
    /// database `dkim`, and two OpenDKIMs: the first on maildns's default
    /// tables `dkim_keys`/`dkim_signing`, the second on `b_keys`/`b_signing`.
    /// The (empty) tables exist before OpenDKIM starts, as the README says:
    /// OpenDKIM walks the SigningTable when it loads its configuration, and
    /// a missing table leaves it hanging on every later message.
    async fn with_sql(b_keys: &str, b_signing: &str) -> Env {
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
        Env::start(Sql { pg, mtas }, 60).await
    }

    fn socket(&self, i: usize) -> String {
        self.signer.socket(i)
    }

    /// The domain (no SPF or DMARC) with a 1024-bit key, signed by both
    /// OpenDKIMs from the database.
    fn config(&self) -> Config {
        self.load(&self.toml(&self.pdns.api_url, 1024, ""))
    }

    fn sql(&self, q: &str) -> String {
        self.signer
            .pg
            .psql(DB, q)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    }

    /// MTA `i`'s OpenDKIM signs MESSAGE with `selector`, and dkimpy verifies
    /// it against what PowerDNS serves.
    fn assert_signs_with(&self, i: usize, selector: &str) {
        let o = &self.signer.mtas[i];
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
        dkimpy_verifies_file(&file, self.pdns.dns.port())
            .unwrap_or_else(|e| panic!("dkimpy did not verify MTA {i}'s s={selector}: {e}"));
    }

    /// `maildns status --json`, checked to hold no password.
    fn status_json(&self) -> serde_json::Value {
        let out = maildns_cmd(&self.config_path(), &self.pdns.api_key)
            .args(["status", "--json"])
            .run();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !text.contains(&self.signer.pg.password),
            "password in status"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(&self.signer.pg.password),
            "password in status stderr"
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opendkims_on_one_database_switch_together_and_both_are_proven() {
    let env = Env::with_sql("dkim_keys", "dkim_signing").await;
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
    let confirm = confirm_step(&out);
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
    for o in &env.signer.mtas {
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
    assert_eq!(env.served("202401").await.len(), 0);
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
    let out = maildns_cmd(&env.config_path(), &env.pdns.api_key)
        .args(["verify", "--json"])
        .run();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains(&env.signer.pg.password),
        "password in verify"
    );
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
    let env = Env::with_sql("stale_keys", "stale_signing").await;
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
    env.signer.mtas[1].stop();
    clock.advance(TimeDelta::hours(2));
    let out = env.run(&config, &clock).await;
    let confirm = confirm_step(&out);
    assert_eq!(confirm.result, "failed", "{confirm:?}");
    assert!(
        confirm.detail.contains(&b) && confirm.detail.contains("cannot connect"),
        "{}",
        confirm.detail
    );
    assert!(!confirm.detail.contains(&env.signer.pg.password));
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Switched));

    // Back, reading the current rows: proven on both.
    copy();
    env.signer.mtas[1].restart();
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
        .runner(config.clone(), &clock)
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
    assert_eq!(env.served("202401").await.len(), 1);
    assert_eq!(
        env.sql("SELECT count(*) FROM dkim_keys WHERE selector = '202401'"),
        "1"
    );
    // Put right: the retirement goes ahead and the old row goes.
    env.sql("UPDATE stale_signing SET key_id = '202402._domainkey.example.com'");
    clock.advance(TimeDelta::hours(2));
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Destroyed));
    assert_eq!(env.served("202401").await.len(), 0);
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
    let env = Env::with_sql("dkim_keys", "dkim_signing").await;
    let config_a = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config_a, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    let row = env.sql("SELECT private_key FROM dkim_keys");
    assert_eq!(env.sql("SELECT count(*) FROM dkim_signing"), "0");

    let config_b = env.on_another_machine(&config_a);
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config_b, &clock).await;
    let confirm = confirm_step(&out);
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
    assert_eq!(env.machine_b_files().len(), 0);
}

/// The key is neither on this machine nor in the KeyTable (the row was
/// lost): the switch is refused, naming the selector; no SigningTable row is
/// written and no other key is made for the selector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lost_from_the_keytable_and_not_on_this_machine_is_never_switched_to() {
    let env = Env::with_sql("dkim_keys", "dkim_signing").await;
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
    assert!(!blocked.reason.contains(&env.signer.pg.password));
    assert_ne!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    assert_eq!(env.sql("SELECT count(*) FROM dkim_signing"), "0");
    assert_eq!(env.sql("SELECT count(*) FROM dkim_keys"), "0");
    assert_eq!(env.machine_b_files().len(), 0);
}

//! DKIM rotation with `[signer] kind = "rspamd"` end to end: the runner against a
//! real PowerDNS, a real Redis and a real rspamd reading its keys from that
//! Redis, with simulated time; each switch proven by a probe through rspamd's
//! controller, each signature checked by dkimpy against the record PowerDNS
//! serves; a rspamd still signing with the old key holds the retirement;
//! `maildns import rspamd` adopts the key rspamd signs with today.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::{TimeDelta, Utc};
use maildns::config::Config;
use maildns::rotation::{BlockKind, KeyStatus, SqliteStore, Store};
use maildns_testkit::opendkim::signature_tag;
use maildns_testkit::rspamd::{KEY_HASH, SELECTOR_HASH};
use maildns_testkit::{Redis, Rspamd};

use crate::cmd;
use crate::support::rig::{self, SignerKind, domain, secret_file};
use crate::support::{FakeClock, MESSAGE, confirm_step, dkimpy_verifies, sel, status, t0};

/// Redis and an rspamd reading its DKIM keys from it.
struct RedisRspamd {
    redis: Redis,
    rspamd: Rspamd,
}

impl RedisRspamd {
    /// The `[signer]` table: rspamd from Redis, probed through this rspamd's
    /// controller and `more_controllers`; the passwords in 0600 files in `dir`.
    fn section_with(&self, dir: &Path, more_controllers: &[String]) -> String {
        let mut controllers = vec![self.rspamd.controller_url()];
        controllers.extend(more_controllers.iter().cloned());
        format!(
            r#"
[signer]
kind = "rspamd"
url = "{redis}"
controllers = {controllers:?}
password_file = "{redis_pw}"
controller_password_file = "{controller_pw}"
probe_timeout = "3s"
"#,
            redis = self.redis.url(),
            redis_pw = secret_file(dir, "redis.pw", &self.redis.password).display(),
            controller_pw = secret_file(dir, "controller.pw", &self.rspamd.password).display(),
        )
    }
}

impl SignerKind for RedisRspamd {
    fn section(&self, dir: &Path) -> String {
        self.section_with(dir, &[])
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.redis.password.clone(), self.rspamd.password.clone()]
    }
}

type Env = rig::Env<RedisRspamd>;

/// SPF and DMARC beside the DKIM key.
const RECORDS: &str = r#"spf = "v=spf1 ip4:192.0.2.10/32 -all"
dmarc = "v=DMARC1; p=quarantine"
"#;

impl Env {
    /// PowerDNS (SOA minimum 60 s), Redis and rspamd.
    async fn with_rspamd() -> Env {
        let redis = Redis::start();
        let rspamd = Rspamd::start(&redis);
        Env::start(RedisRspamd { redis, rspamd }, 60).await
    }

    /// The seed's domain (RSA, %Y%m, 30d, overlap 14d, retire remove) signed by
    /// rspamd from Redis.
    fn config(&self) -> Config {
        self.config_with(&[])
    }

    /// [`Env::config`] with more controllers after this env's rspamd.
    fn config_with(&self, more_controllers: &[String]) -> Config {
        let signer = self.signer.section_with(self.dir.path(), more_controllers);
        self.load(&self.toml_with(&self.pdns.api_url, 2048, RECORDS, &signer))
    }

    /// rspamd signs MESSAGE (as the authenticated alice@example.com) with
    /// `selector`, and dkimpy verifies it against PowerDNS.
    async fn assert_signs_with(&self, selector: &str) {
        let sigs = self
            .signer
            .rspamd
            .sign(MESSAGE, "alice@example.com", "alice@example.com")
            .await
            .unwrap();
        assert_eq!(sigs.len(), 1, "{sigs:?}\n{}", self.signer.rspamd.log());
        assert_eq!(signature_tag(&sigs[0], "s").as_deref(), Some(selector));
        let signed = format!("DKIM-Signature: {}\r\n{MESSAGE}", sigs[0]);
        dkimpy_verifies(&signed, self.dir.path(), self.pdns.dns.port())
            .unwrap_or_else(|e| panic!("dkimpy did not verify s={selector}: {e}"));
    }

    fn redis_has(&self, field: &str) -> bool {
        self.signer
            .redis
            .cli(&["HEXISTS", KEY_HASH, field])
            .unwrap()
            .trim()
            == "1"
    }

    /// The selector the selector hash names for example.com (`""`: none).
    fn selector_in_redis(&self) -> String {
        self.signer
            .redis
            .cli(&["HGET", SELECTOR_HASH, "example.com"])
            .unwrap()
            .trim()
            .to_string()
    }

    fn set_selector(&self, selector: &str) {
        self.signer
            .redis
            .cli(&["HSET", SELECTOR_HASH, "example.com", selector])
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rspamd_signs_with_each_rotated_key_proven_by_probe_and_dkimpy() {
    let env = Env::with_rspamd().await;
    let config = env.config();
    let clock = FakeClock::at(t0());

    // Day 0: the first key is published. Its key is in Redis from its
    // generation on (where every replica finds it), but the selector hash
    // names it only at the switch, after the negative-caching window: rspamd
    // signs nothing yet.
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    assert!(env.key_dir().join("example.com/202401.private").exists());
    assert!(env.redis_has("202401.example.com"));
    assert_eq!(env.selector_in_redis(), "");
    assert!(
        env.signer
            .rspamd
            .sign(MESSAGE, "alice@example.com", "alice@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    let confirm = confirm_step(&out);
    assert_eq!(confirm.result, "ok", "{confirm:?}");
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    env.assert_signs_with("202401").await;

    // Day 30: the next key; rspamd keeps signing with the old one until the
    // new one is served everywhere and safe.
    clock.advance(TimeDelta::days(30));
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Propagated));
    assert!(env.redis_has("202402.example.com"));
    assert_eq!(env.selector_in_redis(), "202401");
    env.assert_signs_with("202401").await;
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    env.assert_signs_with("202402").await;
    // The old key stays in Redis (and published) for the overlap.
    assert!(env.redis_has("202401.example.com"));

    clock.advance(TimeDelta::days(14));
    let out = env.run(&config, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Destroyed));
    assert_eq!(env.served("202401").await.len(), 0, "old record removed");
    assert!(
        !env.redis_has("202401.example.com"),
        "old key removed from Redis"
    );
    assert!(!env.key_dir().join("example.com/202401.private").exists());
    assert!(env.redis_has("202402.example.com"));
    env.assert_signs_with("202402").await;

    // `verify` reads the selector from Redis and probes the controller: the
    // one rspamd signs with is served, unrevoked.
    let out = cmd().config(env.config_path()).args(["verify"]).run();
    // (SPF and DMARC are not published here: the runner only rotates DKIM.)
    let text = out.text();
    assert!(
        text.lines().any(|l| l.starts_with("  signer 202402")
            && l.contains(" ok ")
            && l.contains("per the signer tables and a probe signature")),
        "{text}"
    );
    assert!(
        !text.contains(&env.signer.rspamd.password) && !text.contains(&env.signer.redis.password)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rspamd_still_signing_with_the_old_key_holds_its_retirement() {
    let env = Env::with_rspamd().await;
    let config = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    env.run(&config, &clock).await;
    clock.advance(TimeDelta::days(30));
    env.run(&config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    env.run(&config, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Active));

    // Someone points the domain back at the old selector in Redis.
    env.set_selector("202401");
    env.assert_signs_with("202401").await;
    // The daemon's periodic probe reports drift.
    let runner = env.runner(config.clone(), &clock);
    let blocked = runner.probe_signers(&domain()).await.unwrap();
    drop(runner);
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(
        (blocked[0].kind, blocked[0].selector.as_str()),
        (BlockKind::Drift, "202402")
    );
    // Redis names the old selector (the signer's data, read first).
    assert!(blocked[0].reason.contains("selector 202401"), "{blocked:?}");
    // At the end of the overlap the removal of 202401 is held: its record,
    // its key file and its key in Redis stay.
    clock.advance(TimeDelta::days(15));
    let out = env.run(&config, &clock).await;
    assert!(
        out.blocked
            .iter()
            .any(|b| b.kind == BlockKind::StillSigning && b.selector.as_str() == "202401"),
        "{out:?}"
    );
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    assert_eq!(env.served("202401").await.len(), 1);
    assert!(env.key_dir().join("example.com/202401.private").exists());
    assert!(env.redis_has("202401.example.com"));
    env.assert_signs_with("202401").await;

    // Put right: the retirement goes ahead.
    env.set_selector("202402");
    clock.advance(TimeDelta::hours(2));
    env.run(&config, &clock).await;
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Destroyed));
    assert_eq!(env.served("202401").await.len(), 0);
    assert!(!env.redis_has("202401.example.com"));
    env.assert_signs_with("202402").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adopts_the_key_rspamd_signs_with_today() {
    let env = Env::with_rspamd().await;
    let config = env.config();
    // The operator's setup before maildns: a key made by hand, in Redis.
    let pem = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .unwrap()
        .stdout;
    let pem = String::from_utf8(pem).unwrap();
    env.signer
        .redis
        .cli(&["HSET", KEY_HASH, "legacy.example.com", &pem])
        .unwrap();
    env.set_selector("legacy");
    let key = maildns::keys::PrivateKey::from_pem(&pem).unwrap();
    crate::support::publish_key(&env.pdns, "legacy", &key).await;
    env.assert_signs_with("legacy").await;

    let cfg = env.config_path();
    let out = cmd()
        .config(&cfg)
        .env("MAILDNS_DNS_TOKEN", &env.pdns.api_key)
        .args(["import", "rspamd"])
        .run();
    assert_eq!(out.code(), Some(0), "{}", out.text());
    let text = out.stdout_text();
    assert!(
        text.contains("example.com: adopted selector legacy (rsa 2048 bits)"),
        "{text}"
    );
    assert!(!text.contains(&env.signer.redis.password), "{text}");
    let st = env.state();
    assert_eq!(status(&st, "legacy"), Some(KeyStatus::Active));
    let copy = env.key_dir().join("example.com/legacy.private");
    assert_eq!(
        maildns::keys::load_private_key(&copy)
            .unwrap()
            .p_value()
            .unwrap(),
        key.p_value().unwrap()
    );
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Idempotent; nothing in Redis changed.
    let out = cmd()
        .config(&cfg)
        .env("MAILDNS_DNS_TOKEN", &env.pdns.api_key)
        .args(["--json", "import", "rspamd"])
        .run();
    assert_eq!(out.code(), Some(0), "{}", out.text());
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v["results"][0]["outcome"], "already_adopted", "{v}");
    assert_eq!(
        env.signer
            .redis
            .cli(&["HGET", SELECTOR_HASH, "example.com"])
            .unwrap()
            .trim(),
        "legacy"
    );
    // The next rotation starts from the adopted key: the drift probe finds
    // rspamd signing with it, verified.
    let clock = FakeClock::at(Utc::now());
    let runner = env.runner(config.clone(), &clock);
    let blocked = runner.probe_signers(&domain()).await.unwrap();
    assert!(blocked.is_empty(), "{blocked:?}");

    // Without the Redis password, import fails naming Redis, not the password.
    std::fs::write(env.dir.path().join("redis.pw"), "wrong-password").unwrap();
    let out = cmd()
        .config(&cfg)
        .env("MAILDNS_DNS_TOKEN", &env.pdns.api_key)
        .args(["import", "rspamd"])
        .run();
    assert_eq!(out.code(), Some(1), "{}", out.text());
    assert!(
        out.text().contains(&env.signer.redis.url()),
        "{}",
        out.text()
    );
    assert!(!out.text().contains("wrong-password"), "{}", out.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rspamd_that_does_not_see_the_new_selector_holds_the_switch() {
    let env = Env::with_rspamd().await;
    // A second MTA's rspamd on the same Redis, but still configured with an
    // old selector hash: it does not see the selectors maildns writes.
    let stale_conf = maildns_testkit::rspamd::dkim_signing_conf(
        env.signer.redis.addr,
        &env.signer.redis.password,
    )
    .replace(SELECTOR_HASH, "OLD_SELECTORS");
    let mx2 = Rspamd::start_with_password(&stale_conf, &env.signer.rspamd.password);
    let config = env.config_with(&[mx2.controller_url()]);
    let clock = FakeClock::at(t0());
    env.run(&config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config, &clock).await;
    // mx1 signs with 202401, mx2 signs nothing: not active, held, naming mx2.
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Switched), "{out:?}");
    let held = out
        .blocked
        .iter()
        .find(|b| b.kind == BlockKind::NotSigning)
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(held.reason.contains(&mx2.controller_url()), "{held:?}");
    assert!(
        !held.reason.contains(&env.signer.rspamd.controller_url()),
        "{held:?}"
    );
    env.assert_signs_with("202401").await;
    // The second MTA is put right (its hash gets the selector): proven on both.
    env.signer
        .redis
        .cli(&["HSET", "OLD_SELECTORS", "example.com", "202401"])
        .unwrap();
    clock.advance(TimeDelta::hours(2));
    let out = env.run(&config, &clock).await;
    assert!(out.blocked.is_empty(), "{out:?}");
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
}

/// Replicas on two machines: the runner of machine A (key directory A)
/// generates and publishes the key; the runner of machine B, on the same
/// shared state with an EMPTY key directory and without A's files, switches
/// rspamd to it from the key in Redis, proven by the controller probe and by
/// dkimpy. B writes no key file and no second key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_the_key_file_switches_rspamd_from_the_key_in_redis() {
    let env = Env::with_rspamd().await;
    let config_a = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config_a, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    let in_redis = env
        .signer
        .redis
        .cli(&["HGET", KEY_HASH, "202401.example.com"])
        .unwrap();

    let config_b = env.on_another_machine(&config_a);
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config_b, &clock).await;
    let confirm = confirm_step(&out);
    assert_eq!(confirm.result, "ok", "{confirm:?}");
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    assert_eq!(env.selector_in_redis(), "202401");
    env.assert_signs_with("202401").await;
    assert!(
        env.machine_b_files().is_empty(),
        "{:?}",
        env.machine_b_files()
    );
    assert_eq!(
        env.signer
            .redis
            .cli(&["HGET", KEY_HASH, "202401.example.com"])
            .unwrap(),
        in_redis,
        "the same key, not a second one"
    );
    // `verify` on machine B checks the served record against the key in
    // Redis (B has no key file).
    let toml = std::fs::read_to_string(env.config_path()).unwrap();
    let cfg_b = env.dir.path().join("maildns-b.toml");
    std::fs::write(
        &cfg_b,
        toml.replace(
            "kind = \"rspamd\"",
            &format!(
                "kind = \"rspamd\"\nkey_dir = \"{}\"",
                env.dir.path().join("machine-b-keys").display()
            ),
        ),
    )
    .unwrap();
    let text = cmd().config(&cfg_b).args(["verify"]).run().text();
    assert!(
        text.lines().any(|l| l.contains("202401 key")
            && l.contains(" ok ")
            && l.contains("the served public key matches redis hash DKIM_KEYS")),
        "{text}"
    );
    assert!(!text.contains(&env.signer.redis.password), "{text}");

    // The next rotation runs on B alone: its key goes to Redis at generation
    // (B's own 0600 copy beside it) and B checks, switches and retires with
    // the record of the key in Redis.
    clock.advance(TimeDelta::days(30));
    env.run(&config_b, &clock).await;
    assert!(env.redis_has("202402.example.com"));
    assert_eq!(env.machine_b_files().len(), 1);
    clock.advance(TimeDelta::seconds(61));
    let out = env.run(&config_b, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    env.assert_signs_with("202402").await;
    clock.advance(TimeDelta::days(14));
    let out = env.run(&config_b, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Destroyed));
    assert!(!env.redis_has("202401.example.com"));
    assert_eq!(env.served("202401").await.len(), 0);
}

/// The key is neither on this machine nor in Redis (Redis lost it): the
/// switch is refused, naming the selector; the selector hash is not written,
/// no other key is made for the selector, rspamd keeps signing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lost_from_redis_and_not_on_this_machine_is_never_switched_to() {
    let env = Env::with_rspamd().await;
    let config_a = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config_a, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    let config_b = env.on_another_machine(&config_a);
    env.signer
        .redis
        .cli(&["HDEL", KEY_HASH, "202401.example.com"])
        .unwrap();
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
    assert_ne!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    assert_eq!(env.selector_in_redis(), "");
    assert!(!env.redis_has("202401.example.com"));
    assert!(env.machine_b_files().is_empty());
    assert!(
        env.signer
            .rspamd
            .sign(MESSAGE, "alice@example.com", "alice@example.com")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A replica that generates for a selector whose key another replica already
/// put into Redis (it stopped before saving the state: here, a second state
/// store that does not know the key) adopts that key: its copy, the record it
/// publishes and Redis all hold the same key, never a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_adopts_the_key_redis_holds_for_its_selector_never_a_second_one() {
    let env = Env::with_rspamd().await;
    let config_a = env.config();
    let clock = FakeClock::at(t0());
    env.run(&config_a, &clock).await;
    let in_redis = env
        .signer
        .redis
        .cli(&["HGET", KEY_HASH, "202401.example.com"])
        .unwrap();
    let mut config_b = env.on_another_machine(&config_a);
    config_b.state_dir = env.dir.path().join("state-b");
    env.runner(config_b.clone(), &clock)
        .run_once(&domain())
        .await
        .unwrap();
    let st = SqliteStore::open(&config_b.state_dir)
        .unwrap()
        .load(&domain())
        .unwrap();
    assert!(st.key(&sel("202401")).is_some(), "{st:?}");
    let files = env.machine_b_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let copy = maildns::keys::load_private_key(&files[0]).unwrap();
    let stored = maildns::signer::rspamd::parse_key_value(&in_redis).unwrap();
    assert_eq!(copy.p_value().unwrap(), stored.p_value().unwrap());
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        env.signer
            .redis
            .cli(&["HGET", KEY_HASH, "202401.example.com"])
            .unwrap(),
        in_redis
    );
    assert_eq!(env.served("202401").await.len(), 1);
}

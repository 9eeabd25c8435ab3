//! DKIM rotation end to end: the runner against a real PowerDNS and a real
//! OpenDKIM, with simulated time (an injected clock); every switch proven by a
//! probe signature through OpenDKIM's milter socket, verified against PowerDNS;
//! crash injection at every step boundary; reloads OpenDKIM refuses (a table
//! unreadable to its user, a configuration error, the process gone); a signer
//! still signing with a retiring key; drift; provider failures; the daemon
//! binary.
#![allow(clippy::disallowed_macros)] // prints for its reader; clippy.toml bans printing in the crate

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use maildns::config::Config;
use maildns::propagation::Clock;
use maildns::rotation::runner::CrashHook;
use maildns::rotation::{
    BlockKind, Diagnosis, DomainState, KeyStatus, RunOutcome, RunnerError, SqliteStore, Store,
};
use maildns_testkit::opendkim::{OpenDkim, signature_tag};

use crate::support::rig::{self, SignerKind, domain};
use crate::support::{
    FakeClock, MESSAGE, confirm_step, dkimpy_verifies, maildns_cmd, sel, status, t0,
};

/// The seed's SPF and DMARC records.
const SEED_RECORDS: &str = r#"spf = "v=spf1 ip4:192.0.2.10/32 -all"
dmarc = "v=DMARC1;p=quarantine;sp=quarantine;adkim=r;aspf=r;fo=1;rf=afrf;rua=mailto:user@example.com"
"#;

/// OpenDKIM on key files and tables (`None`: no signer configured).
struct Files(Option<Arc<OpenDkim>>);

impl Files {
    /// The `[signer]` table for this OpenDKIM, reloaded by `reload` (its own
    /// reload command when `None`).
    fn section_with(&self, reload: Option<&[String]>) -> String {
        let Some(o) = &self.0 else {
            return String::new();
        };
        let reload: Vec<String> = match reload {
            Some(r) => r.to_vec(),
            None => o.reload_command(),
        };
        format!(
            "\n[signer]\nconfig = \"{}\"\nkey_dir = \"{}\"\nkey_table = \"{}\"\nsigning_table = \"{}\"\nuser = \"{}\"\nreload_command = {:?}\nprobe_timeout = \"3s\"\n",
            o.conf.display(),
            o.key_dir.display(),
            o.key_table.display(),
            o.signing_table.display(),
            o.user,
            reload
        )
    }
}

impl SignerKind for Files {
    fn section(&self, _: &Path) -> String {
        self.section_with(None)
    }
}

type Env = rig::Env<Files>;

impl Env {
    /// PowerDNS (SOA minimum `soa_minimum`) and, when `signer`, OpenDKIM.
    async fn with(signer: bool, soa_minimum: u32) -> Env {
        Env::start(
            Files(signer.then(|| Arc::new(OpenDkim::start()))),
            soa_minimum,
        )
        .await
    }

    /// The running OpenDKIM, when there is one.
    fn odk(&self) -> Option<&Arc<OpenDkim>> {
        self.signer.0.as_ref()
    }

    /// The seed's domain (SPF, DMARC, DKIM %Y%m, 30d, overlap 14d, retire remove).
    fn seed_toml(&self, api_url: &str, bits: u32, reload: Option<&[String]>) -> String {
        self.toml_with(
            api_url,
            bits,
            SEED_RECORDS,
            &self.signer.section_with(reload),
        )
    }

    fn config(&self, api_url: &str, bits: u32, reload: Option<&[String]>) -> Config {
        self.load(&self.seed_toml(api_url, bits, reload))
    }

    /// Signs MESSAGE with OpenDKIM; asserts the selector and that dkimpy
    /// verifies it against what PowerDNS serves.
    fn assert_signs_with(&self, selector: &str) {
        let o = self.odk().unwrap();
        let sig = o
            .sign(MESSAGE)
            .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", o.log()));
        assert_eq!(signature_tag(&sig, "s").as_deref(), Some(selector), "{sig}");
        let signed = format!("DKIM-Signature: {sig}\r\n{MESSAGE}");
        dkimpy_verifies(&signed, self.dir.path(), self.pdns.dns.port())
            .unwrap_or_else(|e| panic!("dkimpy did not verify s={selector}: {e}"));
    }

    /// The selector the signer tables point example.com at.
    fn table_selector(&self) -> Option<String> {
        let o = self.odk()?;
        let kt = std::fs::read_to_string(&o.key_table).unwrap();
        kt.lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .find_map(|v| v.strip_prefix("example.com:"))
            .and_then(|v| v.split(':').next())
            .map(str::to_string)
    }
}

fn key_file(state: &DomainState, s: &str) -> PathBuf {
    PathBuf::from(state.key(&sel(s)).unwrap().key_path.clone().unwrap())
}

fn events(env: &Env, what: &str) -> Vec<maildns::rotation::Event> {
    env.events(what)
}

async fn run(env: &Env, config: &Config, clock: &Arc<FakeClock>) -> RunOutcome {
    env.run(config, clock).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_with_real_powerdns_and_opendkim() {
    let env = Env::with(true, 60).await;
    let config = env.config(&env.pdns.api_url, 1024, None);
    let clock = FakeClock::at(t0());

    // Day 0: the first key is generated and published; the signer is not
    // switched before the negative-caching window (60 s) has passed.
    let out = run(&env, &config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    assert!(!out.performed.iter().any(|p| p.action == "switch_signer"));
    assert_eq!(env.served("202401").await.len(), 1);
    assert!(env.odk().unwrap().sign(MESSAGE).is_err(), "no key yet");
    clock.advance(TimeDelta::seconds(61));
    run(&env, &config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    env.assert_signs_with("202401");

    // Day 30: a new key, published beside the old one; the old one signs
    // until the new one is served everywhere and safe.
    clock.advance(TimeDelta::days(30));
    run(&env, &config, &clock).await;
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Propagated));
    assert_eq!(env.served("202401").await.len(), 1);
    assert_eq!(env.served("202402").await.len(), 1);
    env.assert_signs_with("202401");
    clock.advance(TimeDelta::seconds(61));
    let out = run(&env, &config, &clock).await;
    // The switch is proven by a probe through the milter socket, verified
    // against PowerDNS; only then is the key active.
    let confirm = confirm_step(&out);
    assert_eq!(confirm.result, "ok", "{confirm:?}");
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    let retired_at = st.key(&sel("202401")).unwrap().retired_at.unwrap();
    env.assert_signs_with("202402");

    // The old record stays for exactly the overlap.
    clock.advance(TimeDelta::days(14) - TimeDelta::seconds(1));
    let out = run(&env, &config, &clock).await;
    assert!(out.performed.is_empty(), "{:?}", out.performed);
    assert_eq!(env.served("202401").await.len(), 1);
    assert!(key_file(&env.state(), "202401").exists());
    env.assert_signs_with("202402");
    clock.advance(TimeDelta::seconds(1));
    let out = run(&env, &config, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Destroyed));
    assert!(env.served("202401").await.is_empty(), "old record removed");
    assert!(key_file(&st, "202402").exists());
    let old_path = env
        .odk()
        .unwrap()
        .key_dir
        .join("example.com/202401.private");
    assert!(!old_path.exists(), "old private key deleted");
    let withdrawing = events(&env, "withdrawing");
    assert_eq!(withdrawing.len(), 1);
    assert_eq!(withdrawing[0].at - retired_at, TimeDelta::days(14));
    env.assert_signs_with("202402");
    assert_eq!(events(&env, "active").len(), 2);
}

/// Crashes once at every distinct step boundary of a whole lifecycle, and
/// restarts each time with a fresh runner and store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_step_boundary_resumes_safely() {
    let env = Env::with(true, 60).await;
    let config = env.config(&env.pdns.api_url, 1024, None);
    let clock = FakeClock::at(t0());
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let hook: CrashHook = {
        let seen = seen.clone();
        Arc::new(move |b: &str| seen.lock().unwrap().insert(b.to_string()))
    };
    let mut crashes = 0;
    let phase = |advance: TimeDelta| {
        clock.advance(advance);
    };
    for advance in [
        TimeDelta::zero(),
        TimeDelta::seconds(61),
        TimeDelta::days(30),
        TimeDelta::seconds(61),
        TimeDelta::days(14),
    ] {
        phase(advance);
        loop {
            let runner = env
                .runner(config.clone(), &clock)
                .with_crash_hook(hook.clone());
            match runner.run_once(&domain()).await {
                Ok(_) => break,
                Err(RunnerError::Crashed { boundary }) => {
                    crashes += 1;
                    drop(runner);
                    check_after_crash(&env, &boundary).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(crashes >= 14, "only {crashes} boundaries hit");
    let st = env.state();
    let selectors: Vec<&str> = st.keys.iter().map(|k| k.selector.as_str()).collect();
    assert_eq!(selectors, ["202401", "202402"], "one new selector");
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Destroyed));
    assert_eq!(
        events(&env, "switched").len(),
        2,
        "bootstrap + one rotation"
    );
    assert_eq!(events(&env, "active").len(), 2);
    assert_eq!(events(&env, "destroyed").len(), 1);
    env.assert_signs_with("202402");
}

async fn check_after_crash(env: &Env, boundary: &str) {
    let st = env.state();
    // Whatever the signer tables name is served by every authoritative server.
    if let Some(s) = env.table_selector() {
        assert_eq!(
            env.served(&s).await.len(),
            1,
            "after crash at {boundary}: signer uses {s}, not served"
        );
        let k = st.key(&sel(&s)).unwrap();
        assert!(
            k.status >= KeyStatus::Propagated,
            "{boundary}: {s} is {}",
            k.status
        );
    }
    // No private key lost before it was retired and withdrawn.
    for k in &st.keys {
        if k.status >= KeyStatus::Generated && k.status < KeyStatus::Withdrawn {
            let p = k.key_path.as_ref().unwrap();
            assert!(
                Path::new(p).exists(),
                "{boundary}: key of {} lost",
                k.selector
            );
        }
    }
    maildns::rotation::check_invariants(&st).unwrap();
}

/// The first key active (proven by a probe); 202402 then due for a switch at
/// the next run (published, propagated, safe).
async fn bootstrap_then_publish_the_next_key(env: &Env, clock: &Arc<FakeClock>) -> Config {
    let good = env.config(&env.pdns.api_url, 1024, None);
    run(env, &good, clock).await;
    clock.advance(TimeDelta::seconds(61));
    run(env, &good, clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    env.assert_signs_with("202401");
    clock.advance(TimeDelta::days(30));
    run(env, &good, clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Propagated));
    clock.advance(TimeDelta::seconds(61));
    good
}

/// `maildns status --json` for the env's config.
fn status_json(env: &Env) -> serde_json::Value {
    let cfg = env.config_path();
    let out = maildns_cmd(&cfg, &env.pdns.api_key)
        .args(["status", "--json"])
        .run();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// While the new key is not proven, nothing old is touched, for weeks: the old
/// key stays active, its record served, its private key on disk, and OpenDKIM
/// goes on signing with it (dkimpy verifies against PowerDNS).
async fn assert_nothing_old_touched(env: &Env, config: &Config, clock: &Arc<FakeClock>) {
    for _ in 0..3 {
        clock.advance(TimeDelta::days(20));
        run(env, config, clock).await;
        let st = env.state();
        assert_eq!(status(&st, "202401"), Some(KeyStatus::Active));
        assert_eq!(status(&st, "202402"), Some(KeyStatus::Switched));
        assert_eq!(env.served("202401").await.len(), 1);
        assert!(!env.served("202401").await[0].contains("p=;"));
        assert!(key_file(&st, "202401").exists());
        assert!(events(env, "retiring").is_empty());
        assert!(events(env, "withdrawing").is_empty());
        env.assert_signs_with("202401");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refused_for_an_unreadable_key_table_keeps_the_old_key() {
    let env = Env::with(true, 60).await;
    let clock = FakeClock::at(t0());
    let good = bootstrap_then_publish_the_next_key(&env, &clock).await;
    let o = env.odk().unwrap();
    // At reload time key.table is unreadable to OpenDKIM's user (after
    // maildns's own checks passed): OpenDKIM keeps its old configuration.
    let kt = o.key_table.display().to_string();
    let bad = env.config(
        &env.pdns.api_url,
        1024,
        Some(&o.reload_command_after(&format!("chmod 000 {kt}"))),
    );
    let out = run(&env, &bad, &clock).await;
    assert_eq!(out.blocked.len(), 1, "{out:?}");
    let b = &out.blocked[0];
    assert_eq!(
        (b.kind, b.selector.as_str()),
        (BlockKind::NotSigning, "202402")
    );
    assert!(b.reason.contains("s=202401"), "{}", b.reason);
    // The second check before re-sending the reload names the unreadable table.
    assert!(b.reason.contains("not readable by"), "{}", b.reason);
    assert_eq!(
        env.table_selector().as_deref(),
        Some("202402"),
        "no rollback"
    );
    env.assert_signs_with("202401");
    let v = status_json(&env);
    let blocked = &v["domains"][0]["blocked"][0];
    assert_eq!(blocked["kind"], "not_signing", "{v}");
    // `status` is a monitoring check: it exits 4 while the switch is unproven.
    let cfg = env.config_path();
    let st = maildns_cmd(&cfg, &env.pdns.api_key).arg("status").run();
    assert_eq!(
        st.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    assert!(String::from_utf8_lossy(&st.stdout).contains("switch not proven"));
    assert_eq!(blocked["selector"], "202402", "{v}");
    assert_eq!(events(&env, "not_signing").len(), 1);

    assert_nothing_old_touched(&env, &bad, &clock).await;

    // Fixed: the next attempt re-checks, reloads and proves the switch.
    std::fs::set_permissions(
        &o.key_table,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    clock.advance(TimeDelta::hours(2));
    let out = run(&env, &good, &clock).await;
    assert!(out.blocked.is_empty(), "{out:?}");
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    env.assert_signs_with("202402");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refused_for_a_configuration_error_keeps_the_old_key() {
    let env = Env::with(true, 60).await;
    let clock = FakeClock::at(t0());
    let good = bootstrap_then_publish_the_next_key(&env, &clock).await;
    let o = env.odk().unwrap();
    let conf = o.conf.display().to_string();
    let original = std::fs::read_to_string(&o.conf).unwrap();
    // A parameter OpenDKIM does not know: its reload fails at the next connection.
    let bad = env.config(
        &env.pdns.api_url,
        1024,
        Some(&o.reload_command_after(&format!(
            "grep -q NoSuchSetting {conf} || echo 'NoSuchSetting yes' >> {conf}"
        ))),
    );
    let out = run(&env, &bad, &clock).await;
    assert_eq!(out.blocked.len(), 1, "{out:?}");
    assert_eq!(out.blocked[0].kind, BlockKind::NotSigning);
    assert!(
        out.blocked[0].reason.contains("s=202401"),
        "{}",
        out.blocked[0].reason
    );
    assert_nothing_old_touched(&env, &bad, &clock).await;
    // The daemon's drift probe meanwhile: the old key signs as the state says
    // (no drift); only the unproven switch is blocked.
    let runner = env.runner(good.clone(), &clock);
    let blocked = runner.probe_signers(&domain()).await.unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0].kind, BlockKind::NotSigning);
    drop(runner);
    // Fixed by hand and OpenDKIM restarted: the next drift probe sees the new
    // key signing and proves the switch, before any retry of the confirm step.
    std::fs::write(&o.conf, original).unwrap();
    o.restart();
    let runner = env.runner(good.clone(), &clock);
    assert!(runner.probe_signers(&domain()).await.unwrap().is_empty());
    drop(runner);
    let st = env.state();
    assert_eq!(status(&st, "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    env.assert_signs_with("202402");
    clock.advance(TimeDelta::hours(2));
    let out = run(&env, &good, &clock).await;
    assert!(out.blocked.is_empty(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_gone_is_retried_without_rollback_and_proven_once_back() {
    let env = Env::with(true, 60).await;
    let clock = FakeClock::at(t0());
    let good = bootstrap_then_publish_the_next_key(&env, &clock).await;
    let o = env.odk().unwrap();
    o.stop();
    let out = run(&env, &good, &clock).await;
    let confirm = confirm_step(&out);
    assert_eq!(confirm.result, "failed", "{confirm:?}");
    assert!(
        confirm.detail.contains("cannot connect"),
        "{}",
        confirm.detail
    );
    let st = env.state();
    let new = st.key(&sel("202402")).unwrap();
    assert_eq!(new.status, KeyStatus::Switched);
    assert!(new.not_before.unwrap() > clock.now(), "backoff");
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Active));
    // status says why.
    let v = status_json(&env);
    let errors = v["domains"][0]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["selector"] == "202402"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("cannot connect")),
        "{v}"
    );
    // Weeks of OpenDKIM being down: nothing old is revoked or deleted.
    for _ in 0..3 {
        clock.advance(TimeDelta::days(20));
        run(&env, &good, &clock).await;
        let st = env.state();
        assert_eq!(status(&st, "202401"), Some(KeyStatus::Active));
        assert_eq!(env.served("202401").await.len(), 1);
        assert!(key_file(&st, "202401").exists());
    }
    assert_eq!(
        env.table_selector().as_deref(),
        Some("202402"),
        "no rollback"
    );
    // Back up: it reads the new tables at start; the next attempt proves it.
    o.restart();
    clock.advance(TimeDelta::hours(2));
    run(&env, &good, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Active));
    env.assert_signs_with("202402");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_still_signing_with_the_old_key_holds_its_retirement_and_drift_shows() {
    let env = Env::with(true, 60).await;
    let clock = FakeClock::at(t0());
    let good = bootstrap_then_publish_the_next_key(&env, &clock).await;
    run(&env, &good, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Active));
    let o = env.odk().unwrap();
    let switched = std::fs::read_to_string(&o.key_table).unwrap();
    // Someone puts the old tables back and restarts OpenDKIM.
    std::fs::write(
        &o.key_table,
        switched
            .replace(":202402:", ":202401:")
            .replace("202402.private", "202401.private"),
    )
    .unwrap();
    o.restart();
    env.assert_signs_with("202401");
    // The daemon's periodic probe reports drift.
    let runner = env.runner(good.clone(), &clock);
    let blocked = runner.probe_signers(&domain()).await.unwrap();
    drop(runner);
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(
        (blocked[0].kind, blocked[0].selector.as_str()),
        (BlockKind::Drift, "202402")
    );
    let v = status_json(&env);
    assert_eq!(v["domains"][0]["blocked"][0]["kind"], "drift", "{v}");
    let attention = v["domains"][0]["attention"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(attention.iter().any(|a| a["kind"] == "drift"), "{v}");
    assert_eq!(events(&env, "drift").len(), 1);
    // At the end of the overlap the revocation of 202401 is held: record and key stay.
    clock.advance(TimeDelta::days(15));
    let out = run(&env, &good, &clock).await;
    assert!(
        out.blocked
            .iter()
            .any(|b| b.kind == BlockKind::StillSigning && b.selector.as_str() == "202401"),
        "{out:?}"
    );
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Retiring));
    assert_eq!(env.served("202401").await.len(), 1);
    assert!(key_file(&st, "202401").exists());
    env.assert_signs_with("202401");
    // Put right: the drift clears, and the retirement goes ahead.
    std::fs::write(&o.key_table, &switched).unwrap();
    o.reload().unwrap();
    let runner = env.runner(good.clone(), &clock);
    let blocked = runner.probe_signers(&domain()).await.unwrap();
    drop(runner);
    assert!(
        blocked.iter().all(|b| b.kind != BlockKind::Drift),
        "{blocked:?}"
    );
    clock.advance(TimeDelta::hours(2));
    run(&env, &good, &clock).await;
    let st = env.state();
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Destroyed));
    assert!(env.served("202401").await.is_empty());
    env.assert_signs_with("202402");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_is_retried_and_the_old_key_stays() {
    let env = Env::with(true, 60).await;
    let good = env.config(&env.pdns.api_url, 1024, None);
    let clock = FakeClock::at(t0());
    run(&env, &good, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    run(&env, &good, &clock).await;

    let dead_url = format!("http://127.0.0.1:{}/api/v1", maildns_testkit::free_port());
    let dead = env.config(&dead_url, 1024, None);
    clock.advance(TimeDelta::days(30));
    let out = run(&env, &dead, &clock).await;
    let publish = out
        .performed
        .iter()
        .find(|p| p.action == "publish_key")
        .expect("publish attempted");
    assert_eq!(publish.result, "failed", "{publish:?}");
    let st = env.state();
    let pending = st.key(&sel("202402")).unwrap();
    assert_eq!(pending.status, KeyStatus::Generated);
    assert_eq!(pending.attempts, 1);
    let retry_at = pending.not_before.unwrap();
    assert!(retry_at > clock.now());
    assert_eq!(status(&st, "202401"), Some(KeyStatus::Active));
    assert!(env.served("202402").await.is_empty());
    env.assert_signs_with("202401");
    // Not retried before the backoff; retried after it, once the host is back.
    let out = run(&env, &dead, &clock).await;
    assert!(out.performed.is_empty());
    assert_eq!(out.next_due, Some(retry_at));
    clock.advance(retry_at - clock.now());
    run(&env, &good, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Propagated));
    clock.advance(TimeDelta::seconds(61));
    run(&env, &good, &clock).await;
    env.assert_signs_with("202402");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_that_cannot_hold_2048_bits_gets_1024_with_a_recorded_reason() {
    let env = Env::with(false, 60).await;
    let config = env.config(&env.pdns.api_url, 2048, None);
    std::fs::create_dir_all(env.state_dir()).unwrap();
    SqliteStore::open(&env.state_dir())
        .unwrap()
        .save_diagnosis(&Diagnosis {
            account: "dns".into(),
            zone: "example.com".into(),
            at: t0(),
            result: serde_json::json!({"longest_txt": 255}),
            recommended_max_bits: Some(1024),
        })
        .unwrap();
    let clock = FakeClock::at(t0());
    let out = run(&env, &config, &clock).await;
    assert!(
        out.warnings.iter().any(|w| w.code == "bits_fallback"),
        "{out:?}"
    );
    let st = env.state();
    assert_eq!(st.key(&sel("202401")).unwrap().bits, 1024);
    let key = maildns::keys::load_private_key(&key_file(&st, "202401")).unwrap();
    assert_eq!(key.bits(), 1024);
    let why = events(&env, "bits_fallback");
    assert_eq!(why.len(), 1);
    assert!(why[0].detail.contains("2048"), "{}", why[0].detail);
    // Warned again on a later run while it applies.
    clock.advance(TimeDelta::seconds(61));
    let out = run(&env, &config, &clock).await;
    assert!(out.warnings.iter().any(|w| w.code == "bits_fallback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_rotates_reloads_on_hup_stops_on_term_and_holds_the_lock() {
    // SOA minimum 1 s: the first key is safe one second after it propagates.
    let env = Env::with(false, 1).await;
    let config = env.config(&env.pdns.api_url, 1024, None);
    let cfg = env.config_path();
    let log = env.dir.path().join("daemon.log");
    let mut daemon = maildns_cmd(&cfg, &env.pdns.api_key)
        .arg("daemon")
        .command()
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Wait (bounded) until the daemon has made the first key active.
    let mut active = false;
    for _ in 0..300 {
        if config.state_dir.join("maildns.sqlite3").exists()
            && env
                .state()
                .keys
                .iter()
                .any(|k| k.status == KeyStatus::Active)
        {
            active = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(active, "no active key; daemon log:\n{}", log_text());
    assert_eq!(
        env.served(&env.state().keys[0].selector.to_string())
            .await
            .len(),
        1
    );

    // A second daemon (and a rotate) on the same store refuse with 75.
    for args in [&["daemon"][..], &["rotate"][..]] {
        let second = maildns_cmd(&cfg, &env.pdns.api_key).args(args).run();
        assert_eq!(second.status.code(), Some(75), "{args:?}");
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(err.contains("holds the state lock"), "{err}");
    }

    let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        if log_text().contains("configuration reloaded") {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reloaded, "{}", log_text());
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "SIGHUP must not stop it"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log_text());
    assert!(log_text().contains("daemon stopped"), "{}", log_text());

    // With the daemon gone, `rotate` takes the lock and finds nothing to do.
    let out = maildns_cmd(&cfg, &env.pdns.api_key)
        .arg("rotate")
        .arg("--json")
        .run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["domain"], "example.com");
    assert_eq!(v[0]["performed"].as_array().map(Vec::len), Some(0), "{v}");
    // `rotate --now` starts a rotation at once.
    let out = maildns_cmd(&cfg, &env.pdns.api_key)
        .args(["rotate", "--now"])
        .run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("generate_key") && text.contains("publish_key"),
        "{text}"
    );
    assert_eq!(
        env.state()
            .keys
            .iter()
            .filter(|k| k.status.is_pending())
            .count(),
        1,
        "{text}"
    );
}

/// The `maildns rotate` process is killed (abort: no destructors, no flush, like
/// kill -9) at its k-th step boundary, for every k until a run completes without
/// reaching k: every boundary of a first pass (generate, publish, propagation
/// check) is hit once, each in a fresh setup; the in-process test above covers the
/// boundaries of the whole lifecycle. After each kill the saved state is consistent and no key file named
/// by it is lost; a restarted `rotate` then completes, with exactly one key, active,
/// served by the nameserver, its private key on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_rotate_processes_resume_from_the_saved_step() {
    let mut boundaries = 0;
    for k in 1..=40u32 {
        let env = Env::with(false, 1).await;
        let _config = env.config(&env.pdns.api_url, 1024, None);
        let cfg = env.config_path();
        let o = maildns_cmd(&cfg, &env.pdns.api_key)
            .arg("rotate")
            .env("MAILDNS_TEST_CRASH_AFTER", k.to_string())
            .run();
        if o.status.code().is_some() {
            // This run finished its pass before reaching boundary k: all were hit.
            break;
        }
        boundaries = k;
        let state = env.state();
        maildns::rotation::check_invariants(&state).unwrap();
        for key in &state.keys {
            if let Some(p) = &key.key_path {
                assert!(
                    Path::new(p).exists(),
                    "boundary {k}: {p} lost after the kill"
                );
            }
        }
        // Restart (no crash) until the first key is active.
        let mut active = false;
        for _ in 0..20 {
            let o = maildns_cmd(&cfg, &env.pdns.api_key).arg("rotate").run();
            assert_eq!(
                o.status.code(),
                Some(0),
                "boundary {k}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            if env
                .state()
                .keys
                .iter()
                .any(|key| key.status == KeyStatus::Active)
            {
                active = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
        assert!(
            active,
            "boundary {k}: the rotation did not complete after the restart"
        );
        let state = env.state();
        assert_eq!(
            state.keys.len(),
            1,
            "boundary {k}: exactly one key: {:?}",
            state.keys
        );
        let key = &state.keys[0];
        assert_eq!(
            env.served(key.selector.as_str()).await.len(),
            1,
            "boundary {k}: served"
        );
        assert!(Path::new(key.key_path.as_ref().unwrap()).exists());
    }
    eprintln!("killed at each of {boundaries} step boundaries");
    assert!(boundaries >= 6, "only {boundaries} boundaries were reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_signer_selector_absent_or_revoked_in_dns() {
    let env = Env::with(true, 60).await;
    let config = env.config(&env.pdns.api_url, 1024, None);
    let clock = FakeClock::at(t0());
    run(&env, &config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    run(&env, &config, &clock).await;
    env.assert_signs_with("202401");
    let cfg = env.config_path();
    let verify = || {
        let out = maildns_cmd(&cfg, &env.pdns.api_key)
            .args(["verify", "--json"])
            .run();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["domains"][0]["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f["check"].as_str().unwrap_or("").starts_with("signer"))
            .collect::<Vec<_>>()
    };
    let f = verify();
    assert!(
        f.iter()
            .any(|x| x["check"] == "signer 202401" && x["status"] == "ok"),
        "{f:?}"
    );
    // The tables name a selector DNS does not have (edited by hand).
    let o = env.odk().unwrap();
    let kt = std::fs::read_to_string(&o.key_table).unwrap();
    std::fs::write(&o.key_table, kt.replace(":202401:", ":ghost:")).unwrap();
    o.reload().unwrap();
    let f = verify();
    let ghost = f
        .iter()
        .find(|x| x["check"] == "signer ghost")
        .unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!(ghost["status"], "error", "{ghost}");
    let reason = ghost["reason"].as_str().unwrap();
    assert!(reason.contains("serves no key"), "{reason}");
    assert!(reason.contains("probe"), "seen by the probe too: {reason}");
    // Back to 202401, whose record is then revoked at the host.
    std::fs::write(&o.key_table, &kt).unwrap();
    o.reload().unwrap();
    let body = serde_json::json!({"rrsets": [{
        "name": "202401._domainkey.example.com.",
        "type": "TXT",
        "ttl": 300,
        "changetype": "REPLACE",
        "records": [{"content": "\"v=DKIM1; k=rsa; p=\"", "disabled": false}],
    }]});
    let r = reqwest::Client::new()
        .patch(format!(
            "{}/servers/localhost/zones/example.com.",
            env.pdns.api_url
        ))
        .header("X-API-Key", &env.pdns.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let f = verify();
    let revoked = f
        .iter()
        .find(|x| x["check"] == "signer 202401")
        .unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!(revoked["status"], "error", "{revoked}");
    assert!(
        revoked["reason"].as_str().unwrap().contains("revoked"),
        "{revoked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_cannot_be_probed_needs_tables_only_and_is_warned_every_run() {
    let env = Env::with(true, 60).await;
    let o = env.odk().unwrap();
    // An opendkim.conf without Socket (e.g. the socket is given on the command line).
    let conf = std::fs::read_to_string(&o.conf).unwrap();
    let no_socket = env.dir.path().join("opendkim-nosocket.conf");
    std::fs::write(
        &no_socket,
        conf.lines()
            .filter(|l| !l.starts_with("Socket"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let text = env.seed_toml(&env.pdns.api_url, 1024, None).replace(
        &o.conf.display().to_string(),
        &no_socket.display().to_string(),
    );
    let cfg = env.config_path();
    std::fs::write(&cfg, &text).unwrap();
    let line = text.lines().position(|l| l == "[signer]").unwrap() + 1;
    // Every command agrees, before anything is written: no state store, no key.
    for command in ["check", "plan", "publish", "rotate"] {
        let out = maildns_cmd(&cfg, &env.pdns.api_key).arg(command).run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{command}: {err}");
        assert!(
            err.contains(&format!("{}:{line}: signer.config", cfg.display())),
            "{command}: {err}"
        );
        assert!(err.contains("no Socket"), "{command}: {err}");
        assert!(
            !env.state_dir().join("maildns.sqlite3").exists(),
            "{command} wrote no state store"
        );
    }
    assert!(env.served("202401").await.is_empty(), "nothing done");

    // Explicitly tables-only: it runs, with a warning on every run.
    std::fs::write(
        &cfg,
        text.replace("[signer]\n", "[signer]\nconfirm = \"tables-only\"\n"),
    )
    .unwrap();
    for command in ["check", "status"] {
        let out = maildns_cmd(&cfg, &env.pdns.api_key).arg(command).run();
        assert!(
            out.stderr_text().contains("confirm = \"tables-only\""),
            "{command} warns: {}",
            out.text()
        );
    }
    for _ in 0..2 {
        let out = maildns_cmd(&cfg, &env.pdns.api_key)
            .args(["rotate", "--json"])
            .run();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let warnings = v[0]["warnings"].as_array().cloned().unwrap_or_default();
        assert!(
            warnings.iter().any(|w| w["code"] == "signer_unproven"
                && w["message"].as_str().unwrap_or("").contains("tables-only")),
            "{v}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("tables-only"),
            "logged too"
        );
    }
    let st = env.state();
    assert_eq!(st.keys.len(), 1, "the rotation ran (real clock)");
    assert_eq!(env.served(st.keys[0].selector.as_str()).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_probes_the_signer_periodically_and_records_drift() {
    // Real clock; SOA minimum 1 s so the first key is safe a second after it
    // propagates; probes every second.
    let env = Env::with(true, 1).await;
    let text = env.seed_toml(&env.pdns.api_url, 1024, None).replace(
        "probe_timeout = \"3s\"",
        "probe_timeout = \"2s\"\nprobe_interval = \"1s\"",
    );
    let cfg = env.config_path();
    std::fs::write(&cfg, text).unwrap();
    let log = env.dir.path().join("daemon.log");
    let mut daemon = maildns_cmd(&cfg, &env.pdns.api_key)
        .arg("daemon")
        .command()
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |what: &str, f: &dyn Fn(&DomainState) -> bool| {
        for _ in 0..300 {
            if env.state_dir().join("maildns.sqlite3").exists() && f(&env.state()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what}; daemon log:\n{}", log_text());
    };
    wait_for("no active key", &|st| {
        st.keys.iter().any(|k| k.status == KeyStatus::Active)
    });
    let active = env.state().keys[0].selector.clone();
    // The tables are edited by hand to a selector DNS does not have.
    let o = env.odk().unwrap();
    let kt = std::fs::read_to_string(&o.key_table).unwrap();
    std::fs::write(
        &o.key_table,
        kt.replace(&format!(":{active}:"), ":handmade:"),
    )
    .unwrap();
    o.reload().unwrap();
    wait_for("no drift recorded", &|st| {
        st.blocked()
            .iter()
            .any(|b| b.kind == BlockKind::Drift && b.selector == active)
    });
    assert!(log_text().contains("signer drift"), "{}", log_text());
    // Put back: the next probe clears it.
    std::fs::write(&o.key_table, &kt).unwrap();
    o.reload().unwrap();
    wait_for("drift not cleared", &|st| st.blocked().is_empty());
    let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(daemon.wait().unwrap().code(), Some(0), "{}", log_text());
}

/// The operator of a `manual` account: applies every ADD and REMOVE line the
/// notify command received since the last call to what PowerDNS (standing in
/// for a web form) holds. Returns how many lines it applied.
async fn operator(env: &Env, notified: &Path, done: &mut usize) -> usize {
    let text = std::fs::read_to_string(notified).unwrap_or_default();
    let lines: Vec<&str> = text.lines().skip(*done).collect();
    *done += lines.len();
    let client = reqwest::Client::new();
    let zone_url = format!("{}/servers/localhost/zones/example.com.", env.pdns.api_url);
    let mut applied = 0;
    for line in lines {
        let t = line.trim();
        let (add, rest) = match (t.strip_prefix("ADD"), t.strip_prefix("REMOVE")) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => continue,
        };
        let name = rest.split('(').nth(1).unwrap().split(')').next().unwrap();
        let value = rest.split("  value ").nth(1).unwrap();
        let ttl: u32 = rest
            .split("TTL ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        let zone: serde_json::Value = client
            .get(&zone_url)
            .header("X-API-Key", &env.pdns.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut values: Vec<String> = zone["rrsets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"] == format!("{name}.") && r["type"] == "TXT")
            .flat_map(|r| r["records"].as_array().unwrap().clone())
            .map(|r| {
                let c = r["content"].as_str().unwrap();
                maildns_providers::TxtRecord::parse_presentation(c)
                    .unwrap()
                    .value_lossy()
            })
            .collect();
        if add {
            values.push(value.to_string());
        } else {
            values.retain(|v| v != value);
        }
        let records: Vec<serde_json::Value> = values
            .iter()
            .map(|v| {
                serde_json::json!({"content": maildns_providers::TxtRecord::split_max(v.as_bytes(), 255).to_presentation(), "disabled": false})
            })
            .collect();
        let change = if records.is_empty() {
            serde_json::json!({"name": format!("{name}."), "type": "TXT", "changetype": "DELETE"})
        } else {
            serde_json::json!({"name": format!("{name}."), "type": "TXT", "ttl": ttl, "changetype": "REPLACE", "records": records})
        };
        let r = client
            .patch(&zone_url)
            .header("X-API-Key", &env.pdns.api_key)
            .json(&serde_json::json!({ "rrsets": [change] }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        applied += 1;
    }
    applied
}

/// Rotation through a `manual` account: each publish and removal is handed to
/// the operator (the notify command gets the instructions) and the rotation
/// waits until DNS shows the change, then goes on; nothing old is touched
/// while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_through_a_manual_account_waits_for_the_operator_at_each_step() {
    let env = Env::with(true, 60).await;
    let notified = env.dir.path().join("notified.txt");
    let notify = env.dir.path().join("notify.sh");
    std::fs::write(
        &notify,
        format!("#!/bin/sh\ncat >> {}\n", notified.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &notify,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let text = env.seed_toml(&env.pdns.api_url, 1024, None).replace(
        &format!(
            "provider = \"powerdns\"\nbase_url = \"{}\"",
            env.pdns.api_url
        ),
        &format!("provider = \"manual\"\nnotify = [\"{}\"]", notify.display()),
    );
    assert!(text.contains("provider = \"manual\""));
    let path = env.config_path();
    std::fs::write(&path, text).unwrap();
    let config = maildns::config::load(&path).unwrap();
    let clock = FakeClock::at(t0());
    let mut done = 0;

    // Day 0: the first key is handed over; nothing is served, so it waits.
    let out = run(&env, &config, &clock).await;
    assert!(out.blocked.is_empty(), "{:?}", out.blocked);
    assert_ne!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    assert!(env.served("202401").await.is_empty());
    let told = std::fs::read_to_string(&notified).unwrap();
    assert!(
        told.contains("ADD     name 202401._domainkey (202401._domainkey.example.com)"),
        "{told}"
    );
    // Waiting asks again without telling the operator twice.
    run(&env, &config, &clock).await;
    assert_eq!(std::fs::read_to_string(&notified).unwrap(), told);
    assert_eq!(operator(&env, &notified, &mut done).await, 1);
    // The daemon's next propagation round, some minutes later.
    clock.advance(TimeDelta::minutes(10));
    run(&env, &config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Propagated));
    clock.advance(TimeDelta::seconds(61));
    run(&env, &config, &clock).await;
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Active));
    env.assert_signs_with("202401");

    // Day 30: the next key, handed over; the old one signs meanwhile.
    clock.advance(TimeDelta::days(30));
    run(&env, &config, &clock).await;
    assert!(env.served("202402").await.is_empty());
    env.assert_signs_with("202401");
    assert_eq!(operator(&env, &notified, &mut done).await, 1);
    clock.advance(TimeDelta::minutes(10));
    run(&env, &config, &clock).await;
    clock.advance(TimeDelta::seconds(61));
    run(&env, &config, &clock).await;
    assert_eq!(status(&env.state(), "202402"), Some(KeyStatus::Active));
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Retiring));
    env.assert_signs_with("202402");

    // Day 44: the removal of the old record is handed over; the key stays
    // until DNS shows it gone.
    clock.advance(TimeDelta::days(14));
    run(&env, &config, &clock).await;
    assert_eq!(
        env.served("202401").await.len(),
        1,
        "not removed by maildns"
    );
    assert_ne!(status(&env.state(), "202401"), Some(KeyStatus::Destroyed));
    let told = std::fs::read_to_string(&notified).unwrap();
    assert!(
        told.contains("REMOVE  name 202401._domainkey (202401._domainkey.example.com)"),
        "{told}"
    );
    assert_eq!(operator(&env, &notified, &mut done).await, 1);
    clock.advance(TimeDelta::minutes(10));
    run(&env, &config, &clock).await;
    run(&env, &config, &clock).await;
    assert!(env.served("202401").await.is_empty());
    assert_eq!(status(&env.state(), "202401"), Some(KeyStatus::Destroyed));
    env.assert_signs_with("202402");
}

//! Operating maildns: exit codes of `rotate` when the DNS host fails, left-over
//! key material removed at start-up, `rotate --now` handed to a running daemon,
//! the daemon's systemd `STATUS=` progress, and when a retired private key is
//! disclosed.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use maildns::rotation::{Algorithm, KeyStatus, Selector, SqliteStore, Store, adopt};
use maildns_providers::Fqdn;
use maildns_testkit::cmd::{Maildns, Output};

use crate::cmd;

/// `maildns --config <cfg>` with the fixture's DNS account token.
fn with_token(cfg: &Path) -> Maildns {
    cmd().config(cfg).env("MAILDNS_DNS_TOKEN", "test-token")
}

/// A config in a fresh temp dir: example.com with a 1024-bit DKIM key through
/// `account` (TOML lines of `[accounts.dns]`), its authoritative server a closed
/// port on loopback.
fn setup(account: &str, dkim_extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "state"
[accounts.dns]
{account}

[domains."example.com"]
account = "dns"
nameservers = ["127.0.0.1:{closed}"]
[domains."example.com".dkim]
bits = 1024
{dkim_extra}
"#,
            closed = closed_port()
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn powerdns_at(base: &str) -> String {
    format!("provider = \"powerdns\"\nbase_url = \"{base}\"")
}

/// Serves `router` on loopback from a thread of its own; returns the base URL.
fn serve(router: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (addr, _task) = maildns_testkit::fakes::kit::serve(router).await;
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let addr = rx.recv().unwrap();
    format!("http://{addr}/api/v1")
}

fn rotate_fails_with(account: &str, expect_in_output: &[&str]) {
    let (dir, cfg) = setup(account, "");
    let o = with_token(&cfg).args(["rotate"]).run();
    let out = o.text();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    for e in expect_in_output {
        assert!(out.contains(e), "missing {e:?} in {out}");
    }
    assert!(!out.contains("test-token"), "the token leaked: {out}");
    // --json says the same, per domain.
    let o = with_token(&cfg).args(["--json", "rotate"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["domain"], "example.com");
    assert_eq!(v[0]["failed"], true, "{v}");
    // And status, the monitoring check, says it is failing.
    let o = with_token(&cfg).args(["status"]).run();
    assert_eq!(o.status.code(), Some(4), "{}", o.text());
    assert!(o.text().contains("ATTENTION failing"), "{}", o.text());
    drop(dir);
}

#[test]
fn rotate_exits_1_when_the_provider_is_unreachable() {
    let base = format!("http://127.0.0.1:{}/api/v1", closed_port());
    rotate_fails_with(&powerdns_at(&base), &["publish_key"]);
}

#[test]
fn rotate_exits_1_when_the_provider_answers_401() {
    let router = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"error": "Unauthorized"}"#,
        )
    });
    rotate_fails_with(&powerdns_at(&serve(router)), &["publish_key", "401"]);
}

#[test]
fn rotate_exits_1_when_the_provider_returns_html() {
    let router = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::OK,
            [("content-type", "text/html")],
            "<html><body><h1>Welcome to nginx!</h1></body></html>",
        )
    });
    rotate_fails_with(&powerdns_at(&serve(router)), &["publish_key"]);
}

// ---------------------------------------------------------------------------
// No key left behind.

/// Plants what a killed run leaves: a complete key under a temporary name.
fn plant_temp_key(dir: &Path, selector: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = maildns::keys::PrivateKey::generate(maildns::keys::KeySpec::rsa(1024)).unwrap();
    let p = dir.join(format!(".{selector}.private.{:016x}.tmp", 0x5eed_u64));
    std::fs::write(&p, key.to_pem().unwrap().as_bytes()).unwrap();
    p
}

fn zonefile_account() -> &'static str {
    "provider = \"zonefile\"\npath = \"zone.db\""
}

#[test]
fn rotate_removes_temp_key_files_and_the_key_of_a_destroyed_selector() {
    let (dir, cfg) = setup(zonefile_account(), "");
    let state_dir = dir.path().join("state");
    let keys = state_dir.join("keys/example.com");
    let stale = plant_temp_key(&keys, "202611");
    // A destroyed selector whose key file is back (crash between the delete and
    // the save, or a restore) and its own temporary file.
    let old_file = keys.join("201901.private");
    std::fs::write(&old_file, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let old_tmp = plant_temp_key(&keys, "201901");
    {
        let store = SqliteStore::open_locked(&state_dir).unwrap();
        let mut state = store.load(&Fqdn::parse("example.com").unwrap()).unwrap();
        let then = chrono::Utc::now() - chrono::TimeDelta::days(400);
        adopt(
            &mut state,
            Selector::parse("201901").unwrap(),
            Algorithm::Rsa,
            1024,
            old_file.to_str().unwrap(),
            then,
        )
        .unwrap();
        state.keys[0].status = KeyStatus::Destroyed;
        state.keys[0].retired_at = Some(then);
        state.keys[0].destroyed_at = Some(then);
        store.save(&state, &[]).unwrap();
    }
    let o = with_token(&cfg).args(["rotate"]).run();
    assert!(!stale.exists(), "temp key left: {}", o.text());
    assert!(!old_tmp.exists(), "temp key of a destroyed selector left");
    assert!(!old_file.exists(), "key of a destroyed selector left");
    assert!(
        o.text().contains("removed left-over private key material"),
        "{}",
        o.text()
    );
    // The rotation itself went on: a new key, written whole.
    let left: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{left:?}");
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn keygen_and_publish_remove_temp_key_files_at_start() {
    let (dir, cfg) = setup(zonefile_account(), "");
    let out = dir.path().join("out");
    let stale = plant_temp_key(&out, "dkim");
    let o = with_token(&cfg)
        .args([
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "s1",
            "--bits",
            "1024",
            "--directory",
            out.to_str().unwrap(),
        ])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!stale.exists(), "keygen left the stale temp key");
    assert!(out.join("s1.private").exists());

    let keys = dir.path().join("state/keys/example.com");
    let stale = plant_temp_key(&keys, "202611");
    let o = with_token(&cfg).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!stale.exists(), "publish left the stale temp key");
}

// ---------------------------------------------------------------------------
// The daemon: --once exit codes, STATUS= progress, rotate --now handed over.

/// A NOTIFY_SOCKET bound in `dir`, reading datagrams with a timeout.
struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
    pos: usize,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notify {
            sock,
            path,
            seen: Vec::new(),
            pos: 0,
        }
    }

    /// Waits up to `within` for a message containing `needle`, after the one
    /// the previous call matched; returns it.
    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen[self.pos..]
                .iter()
                .position(|m| m.contains(needle))
            {
                self.pos += i + 1;
                return self.seen[self.pos - 1].clone();
            }
            if Instant::now() >= end {
                break;
            }
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        panic!(
            "no notification with {needle:?} in {within:?}; got {:?}",
            self.seen
        );
    }
}

fn spawn_daemon(cfg: &Path, notify: &Notify) -> Child {
    with_token(cfg)
        .arg("daemon")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("MAILDNS_LOG", "info")
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) -> Output {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    Output(child.wait_with_output().unwrap())
}

#[test]
fn daemon_once_exits_1_when_a_step_failed_and_0_when_all_is_well() {
    let base = format!("http://127.0.0.1:{}/api/v1", closed_port());
    let (_dir, cfg) = setup(&powerdns_at(&base), "");
    let o = with_token(&cfg).args(["daemon", "--once"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(
        o.text().contains("example.com: FAILED: publish_key"),
        "{}",
        o.text()
    );
    // The zone-file host works: the key is published and awaits propagation
    // (waiting is not failing).
    let (_dir, cfg) = setup(zonefile_account(), "");
    let o = with_token(&cfg).args(["daemon", "--once"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
}

#[test]
fn daemon_reports_progress_with_sd_notify_status() {
    let base = format!("http://127.0.0.1:{}/api/v1", closed_port());
    let (dir, cfg) = setup(&powerdns_at(&base), "");
    let mut notify = Notify::bind(dir.path());
    let child = spawn_daemon(&cfg, &notify);
    notify.wait_for("READY=1", Duration::from_secs(30));
    let m = notify.wait_for("STATUS=rotating example.com (1/1)", Duration::from_secs(30));
    assert!(m.starts_with("STATUS="), "{m}");
    let m = notify.wait_for("STATUS=idle", Duration::from_secs(60));
    assert!(
        m.contains("1 domain(s), 1 failing: example.com; next action "),
        "{m}"
    );
    let out = stop(child);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    notify.wait_for("STOPPING=1", Duration::from_secs(5));
}

#[test]
fn rotate_now_while_the_daemon_runs_asks_the_daemon() {
    let (dir, cfg) = setup(zonefile_account(), "");
    let state_dir = dir.path().join("state");
    let domain = Fqdn::parse("example.com").unwrap();
    {
        // A key that signs since yesterday: no rotation due for 29 days.
        let s1 = maildns::keys::PrivateKey::generate(maildns::keys::KeySpec::rsa(1024)).unwrap();
        maildns::keys::write_private_key(
            &dir.path().join("s1.private"),
            &s1,
            maildns::keys::WriteOptions::default(),
        )
        .unwrap();
        let store = SqliteStore::open_locked(&state_dir).unwrap();
        let mut state = store.load(&domain).unwrap();
        let ev = adopt(
            &mut state,
            Selector::parse("s1").unwrap(),
            Algorithm::Rsa,
            1024,
            dir.path().join("s1.private").to_str().unwrap(),
            chrono::Utc::now() - chrono::TimeDelta::days(1),
        )
        .unwrap();
        store
            .save(&state, &ev.into_iter().collect::<Vec<_>>())
            .unwrap();
    }
    let mut notify = Notify::bind(dir.path());
    let child = spawn_daemon(&cfg, &notify);
    notify.wait_for("READY=1", Duration::from_secs(30));
    notify.wait_for(
        "STATUS=idle: 1 domain(s), all fine",
        Duration::from_secs(30),
    );

    // Without --now, rotate still refuses while the daemon holds the lock.
    let o = with_token(&cfg).args(["rotate"]).run();
    assert_eq!(o.status.code(), Some(75), "{}", o.text());

    let o = with_token(&cfg).args(["rotate", "--now"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text()
            .contains("it took the rotation request for 1 domain(s)"),
        "{}",
        o.text()
    );
    notify.wait_for(
        "STATUS=rotating example.com (1/1), requested",
        Duration::from_secs(30),
    );
    notify.wait_for("STATUS=idle", Duration::from_secs(60));
    let store = SqliteStore::open(&state_dir).unwrap();
    let state = store.load(&domain).unwrap();
    let new: Vec<_> = state
        .keys
        .iter()
        .filter(|k| k.selector.as_str() != "s1")
        .collect();
    assert_eq!(new.len(), 1, "{:?}", state.keys);
    assert!(new[0].status >= KeyStatus::Published, "{:?}", new[0]);
    assert!(store.requests().unwrap().is_empty());
    let out = stop(child);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
}

// ---------------------------------------------------------------------------
// Disclosure of a retired private key only when safe (real PowerDNS, simulated time).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_private_key_is_disclosed_only_after_its_revocation_is_safe() {
    use crate::support::{Creds, FakeClock, t0};
    use chrono::TimeDelta;
    use maildns::propagation::Clock as _;
    use maildns::rotation::Runner;
    use std::sync::Arc;

    let pdns = maildns_testkit::PowerDns::start();
    pdns.create_zone_with("example.com", 3600, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let path = dir.path().join("maildns.toml");
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "{state}"
[accounts.dns]
provider = "powerdns"
base_url = "{api}"

[domains."example.com"]
account = "dns"
ttl = 300
nameservers = ["{ns}"]

[domains."example.com".dkim]
bits = 1024
rotation_interval = "30d"
overlap = "14d"
retire = "revoke"
publish_retired_private_keys = true
"#,
            state = state_dir.display(),
            api = pdns.api_url,
            ns = pdns.dns,
        ),
    )
    .unwrap();
    let config = maildns::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let quick = maildns_providers::http::RetryPolicy {
        max_attempts: 1,
        ..maildns_providers::http::RetryPolicy::default()
    };
    let (providers, failed) =
        maildns::accounts::connect_all(&config, &Creds::token(pdns.api_key.clone()), quick);
    assert!(failed.is_empty(), "{failed:?}");
    std::fs::create_dir_all(&state_dir).unwrap();
    let store = Arc::new(SqliteStore::open_locked(&state_dir).unwrap());
    let clock = FakeClock::at(t0());
    let runner = Runner::new(config, store.clone(), providers, clock.clone()).unwrap();
    let domain = Fqdn::parse("example.com").unwrap();
    let run = || async { runner.run_once(&domain).await.unwrap() };
    let status = |s: &str| {
        store
            .load(&domain)
            .unwrap()
            .key(&Selector::parse(s).unwrap())
            .map(|k| k.status)
    };
    let disclosed = state_dir.join("disclosed/example.com/202401.private");

    // First key, then the second one; 202401 retires.
    run().await;
    clock.advance(TimeDelta::seconds(61));
    run().await;
    assert_eq!(status("202401"), Some(KeyStatus::Active));
    clock.advance(TimeDelta::days(30));
    run().await;
    clock.advance(TimeDelta::seconds(61));
    run().await;
    assert_eq!(status("202402"), Some(KeyStatus::Active));
    assert_eq!(status("202401"), Some(KeyStatus::Retiring));

    // Overlap over: revoked, and every authoritative server serves the
    // revocation at once — but resolvers may hold the full record for the
    // previous TTL (300 s): nothing is disclosed in this pass.
    clock.advance(TimeDelta::days(14));
    let revoked_at = clock.now();
    let out = run().await;
    assert_eq!(status("202401"), Some(KeyStatus::Withdrawn), "{out:?}");
    let k = store
        .load(&domain)
        .unwrap()
        .key(&Selector::parse("202401").unwrap())
        .cloned()
        .unwrap();
    assert_eq!(
        k.withdrawal_safe_after,
        Some(revoked_at + TimeDelta::seconds(300))
    );
    assert!(!disclosed.exists(), "disclosed before the TTL passed");
    assert!(
        !out.performed
            .iter()
            .any(|p| p.action == "publish_private_key"),
        "{:?}",
        out.performed
    );
    assert_eq!(out.next_due, Some(revoked_at + TimeDelta::seconds(300)));
    let key_file = PathBuf::from(k.key_path.unwrap());
    assert!(key_file.exists());

    // One second before: still not.
    clock.advance(TimeDelta::seconds(299));
    run().await;
    assert!(!disclosed.exists(), "disclosed one second early");
    assert_eq!(status("202401"), Some(KeyStatus::Withdrawn));

    // At the safe-after time: disclosed, then the private key deleted.
    clock.advance(TimeDelta::seconds(1));
    let out = run().await;
    assert!(disclosed.exists(), "{:?}", out.performed);
    assert_eq!(status("202401"), Some(KeyStatus::Destroyed));
    assert!(!key_file.exists(), "the private key stays after disclosure");
}

//! Operating maildns: exit codes of `rotate` when the DNS host fails, left-over
//! key material removed at start-up, `rotate --now` handed to a running daemon,
//! the daemon's systemd `STATUS=` progress, and when a retired private key is
//! disclosed.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use maildns::rotation::{Algorithm, KeyStatus, Selector, SqliteStore, Store, adopt};
use maildns_providers::Fqdn;

fn cmd(cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maildns"));
    c.arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("MAILDNS_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("MAILDNS_DNS_TOKEN", "test-token");
    c
}

fn maildns(cfg: &Path, args: &[&str]) -> Output {
    cmd(cfg, args).output().expect("maildns runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
    let o = maildns(&cfg, &["rotate"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    for e in expect_in_output {
        assert!(out.contains(e), "missing {e:?} in {out}");
    }
    assert!(!out.contains("test-token"), "the token leaked: {out}");
    // --json says the same, per domain.
    let o = maildns(&cfg, &["--json", "rotate"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["domain"], "example.com");
    assert_eq!(v[0]["failed"], true, "{v}");
    // And status, the monitoring check, says it is failing.
    let o = maildns(&cfg, &["status"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("ATTENTION failing"), "{}", text(&o));
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

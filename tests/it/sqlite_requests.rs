//! A `rotate --now` request on the embedded (SQLite) store is leased while it
//! is done, not deleted when taken: a daemon killed (SIGKILL) after taking
//! one leaves it in the store, the next daemon start takes it over (an event
//! names the dead process) and does it, and a done request is not done again.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use maildns::rotation::{Algorithm, KeyStatus, Request, Selector, SqliteStore, Store, adopt};
use maildns_providers::Fqdn;
use maildns_testkit::cmd::Maildns;

use crate::cmd;

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

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn with_tokens(cfg: &Path) -> Maildns {
    cmd()
        .config(cfg)
        .env("MAILDNS_HANG_TOKEN", "test-token")
        .env("MAILDNS_ZONE_TOKEN", "test-token")
}

fn events_of(store: &SqliteStore, domain: &Fqdn, what: &str) -> usize {
    store
        .events(Some(domain), 0, 1000)
        .unwrap()
        .iter()
        .filter(|e| e.event.what == what)
        .count()
}

#[test]
fn a_request_taken_by_a_killed_daemon_is_done_at_the_next_start_and_only_once() {
    // a.example's DNS host hangs on its first request (the daemon is killed
    // while it waits) and refuses every later one; b.example publishes to a
    // zone file.
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let router = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            (
                axum::http::StatusCode::UNAUTHORIZED,
                [("content-type", "application/json")],
                r#"{"error": "Unauthorized"}"#,
            )
        }
    });
    let base = serve(router);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    let closed = closed_port();
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "state"
[accounts.hang]
provider = "powerdns"
base_url = "{base}"
[accounts.zone]
provider = "zonefile"
path = "zone.db"

[domains."a.example"]
account = "hang"
nameservers = ["127.0.0.1:{closed}"]
[domains."a.example".dkim]
bits = 1024

[domains."b.example"]
account = "zone"
nameservers = ["127.0.0.1:{closed}"]
[domains."b.example".dkim]
bits = 1024
"#
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    let b = Fqdn::parse("b.example").unwrap();
    {
        // b.example signs with a key made yesterday: no rotation due for 29 days.
        let s1 = maildns::keys::PrivateKey::generate(maildns::keys::KeySpec::rsa(1024)).unwrap();
        let key = dir.path().join("s1.private");
        maildns::keys::write_private_key(&key, &s1, maildns::keys::WriteOptions::default())
            .unwrap();
        let store = SqliteStore::open_locked(&state_dir).unwrap();
        let mut state = store.load(&b).unwrap();
        let ev = adopt(
            &mut state,
            Selector::parse("s1").unwrap(),
            Algorithm::Rsa,
            1024,
            key.to_str().unwrap(),
            chrono::Utc::now() - chrono::TimeDelta::days(1),
        )
        .unwrap();
        store
            .save(&state, &ev.into_iter().collect::<Vec<_>>())
            .unwrap();
    }
    // `rotate --now b.example` asked while a daemon held the lock.
    let reader = SqliteStore::open(&state_dir).unwrap();
    let id = reader
        .add_request(&b, Request::ROTATE_NOW, chrono::Utc::now())
        .unwrap();

    // The daemon takes the request at the start of its pass, then waits on
    // a.example's host: killed there, before reaching b.example.
    let mut daemon: Child = with_tokens(&cfg)
        .arg("daemon")
        .env("MAILDNS_LOG", "info")
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let end = Instant::now() + Duration::from_secs(60);
    while hits.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < end,
            "the daemon never reached a.example's host"
        );
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        reader.requests().unwrap().is_empty(),
        "taken by the daemon, not waiting"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let keys = |s: &SqliteStore| s.load(&b).unwrap().keys;
    assert_eq!(
        keys(&reader).len(),
        1,
        "b.example untouched by the killed daemon"
    );

    // The next daemon start takes the request over and rotates b.example now,
    // though nothing is due (a.example fails: exit 1).
    let o = with_tokens(&cfg).args(["daemon", "--once"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(!o.text().contains("test-token"), "{}", o.text());
    let after = keys(&reader);
    let new: Vec<_> = after
        .iter()
        .filter(|k| k.selector.as_str() != "s1")
        .collect();
    assert_eq!(new.len(), 1, "one new key: {after:?}\n{}", o.text());
    assert!(new[0].status >= KeyStatus::Published, "{:?}", new[0]);
    assert!(reader.requests().unwrap().is_empty(), "done, removed");
    let over: Vec<_> = reader
        .events(Some(&b), 0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.what == "request_taken_over")
        .collect();
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(
        over[0].event.detail.contains(&format!("request {id} "))
            && over[0]
                .event
                .detail
                .contains(&format!("maildns pid {pid},")),
        "{over:?}"
    );
    assert_eq!(events_of(&reader, &b, "planned"), 1);

    // Done once: a later start finds nothing to take and plans nothing more.
    let o = with_tokens(&cfg).args(["daemon", "--once"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert_eq!(keys(&reader).len(), 2, "{:?}", keys(&reader));
    assert_eq!(events_of(&reader, &b, "planned"), 1);
    assert_eq!(events_of(&reader, &b, "request_taken_over"), 1);
    let holder = SqliteStore::open_locked(&state_dir).unwrap();
    assert!(holder.take_requests().unwrap().is_empty());
}

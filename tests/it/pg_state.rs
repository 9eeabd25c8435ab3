//! The shared state store on a real PostgreSQL (testkit/src/postgres.rs):
//! the store's operations, leases between replicas, the password kept out of
//! files and messages, `migrate-state` both ways, `status` reading the
//! shared state, the publish ledger saved per entry by machines writing at
//! once (and its migration from one JSON document), and the `rotate --now`
//! queue keeping the requests a run does not do.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use maildns::publish::Ledger;
use maildns::publish::ledger::Change;
use maildns::rotation::{
    Diagnosis, DomainState, Event, KeyRecord, KeyStatus, LedgerEntry, PgOptions, PgStore, Selector,
    SqliteStore, Store, StoreError,
};
use maildns_providers::{Fqdn, Secret};
use maildns_testkit::Postgres;

use crate::cmd;
use crate::support::cli::{UNREACHED_POWERDNS, shared_state, write_config};
use crate::support::key_at;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, day, 10, 0, 0).unwrap()
}

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

pub(crate) fn connect(pg: &Postgres, url: &str, replica: &str, lease: Duration) -> PgStore {
    PgStore::connect(PgOptions {
        url: url.to_string(),
        password: Some(Secret::new(pg.password.clone())),
        replica: replica.to_string(),
        lease,
        max_connections: 2,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A PostgreSQL with the database `state` and two replicas of it, `a:1` and
/// `b:2`, each admitted as a writer, with leases of `lease`.
fn two_replicas(lease: Duration) -> (Postgres, String, PgStore, PgStore) {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let a = connect(&pg, &url, "a:1", lease);
    let b = connect(&pg, &url, "b:2", lease);
    a.lock_exclusive().unwrap();
    b.lock_exclusive().unwrap();
    (pg, url, a, b)
}

fn key(selector: &str, status: KeyStatus) -> KeyRecord {
    let path = format!("/var/lib/maildns/keys/example.com/{selector}.pem");
    KeyRecord {
        published_at: Some(t(2)),
        propagated_at: Some(t(3)),
        safe_after: Some(t(4)),
        active_at: (status == KeyStatus::Active).then(|| t(5)),
        ..key_at(selector, status, t(1), Some(path))
    }
}

fn event(domain: &str, what: &str, day: u32) -> Event {
    Event {
        at: t(day),
        domain: fqdn(domain),
        selector: Some(Selector::parse("202401").unwrap()),
        what: what.into(),
        outcome: "ok".into(),
        detail: format!("{what} detail"),
    }
}

fn sample_state(domain: &str) -> DomainState {
    let mut s = DomainState::new(fqdn(domain));
    s.keys.push(key("202401", KeyStatus::Active));
    let mut next = key("202402", KeyStatus::Published);
    next.failure = Some("not yet served by 127.0.0.1:53".into());
    next.attempts = 2;
    next.not_before = Some(t(6));
    s.keys.push(next);
    s
}

#[test]
fn the_shared_store_saves_loads_and_logs_like_the_embedded_one() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let store = connect(&pg, &url, "mx1:100", Duration::from_secs(30));
    let d = fqdn("example.com");
    assert_eq!(store.load(&d).unwrap(), DomainState::new(d.clone()));
    // Saving needs admission as a writer and the domain's lease.
    let state = sample_state("example.com");
    assert!(matches!(
        store.save(&state, &[]),
        Err(StoreError::NotLocked { .. })
    ));
    store.lock_exclusive().unwrap();
    assert!(matches!(
        store.save(&state, &[]),
        Err(StoreError::LeaseLost { .. })
    ));
    store.lease(&d).unwrap();
    store
        .save(&state, &[event("example.com", "generated", 1)])
        .unwrap();
    assert_eq!(store.load(&d).unwrap(), state);
    assert_eq!(store.domains().unwrap(), vec![d.clone()]);
    store.release(&d).unwrap();

    // A second connection (another process's view) reads the same.
    let reader = connect(&pg, &url, "mx2:200", Duration::from_secs(30));
    assert_eq!(reader.load(&d).unwrap(), state);
    let events = reader.events(Some(&d), 0, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, event("example.com", "generated", 1));
    assert_eq!(events[0].replica.as_deref(), Some("mx1:100"));
    assert_eq!(events[0].lease, Some(1));
    assert!(events[0].recorded_at.is_some());

    // Events without a state change, diagnoses, requests.
    reader
        .append_events(&[event("example.org", "published", 2)])
        .unwrap();
    let all = reader.events(None, 0, 10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].replica.as_deref(), Some("mx2:200"));
    assert_eq!(all[1].lease, None);
    assert_eq!(reader.events(None, all[0].id, 10).unwrap().len(), 1);
    let diag = Diagnosis {
        account: "dns".into(),
        zone: "example.com".into(),
        at: t(3),
        result: serde_json::json!({"max_txt": 4096}),
        recommended_max_bits: Some(2048),
    };
    reader.save_diagnosis(&diag).unwrap();
    assert_eq!(reader.latest_diagnosis("dns").unwrap(), Some(diag.clone()));
    assert_eq!(reader.latest_diagnosis("other").unwrap(), None);
    assert_eq!(store.diagnoses().unwrap(), vec![diag]);
    reader.add_request(&d, "rotate_now", t(4)).unwrap();
    assert_eq!(reader.requests().unwrap().len(), 1);
    assert!(matches!(
        reader.take_requests(),
        Err(StoreError::NotLocked { .. })
    ));
    let taken = store.take_requests().unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].domain, d);
    assert!(reader.requests().unwrap().is_empty());

    // The key floor holds here too.
    let mut weak = state.clone();
    weak.keys.push(KeyRecord {
        bits: 512,
        ..key("202403", KeyStatus::Planned)
    });
    store.lease(&d).unwrap();
    assert!(matches!(
        store.save(&weak, &[]),
        Err(StoreError::WeakKey { bits: 512, .. })
    ));
    store.release(&d).unwrap();

    // Migrations are applied once: connecting again changes nothing.
    drop(connect(&pg, &url, "mx3:300", Duration::from_secs(30)));
    assert_eq!(
        pg.psql(
            "state",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM maildns_schema"
        )
        .unwrap()
        .trim(),
        "1,2,3,4"
    );
}

#[test]
fn one_replica_at_a_time_per_domain_and_an_expired_lease_is_taken_over() {
    let lease = Duration::from_millis(600);
    let (_pg, _url, a, b) = two_replicas(lease);
    let d = fqdn("example.com");
    let other = fqdn("example.org");
    let state = sample_state("example.com");

    a.lease(&d).unwrap();
    match b.lease(&d) {
        Err(StoreError::Leased { holder, domain, .. }) => {
            assert_eq!(holder, "a:1");
            assert_eq!(domain, "example.com");
        }
        other => panic!("{other:?}"),
    }
    // Another domain is free for b meanwhile.
    b.lease(&other).unwrap();
    b.release(&other).unwrap();
    // b cannot save a domain it does not hold.
    assert!(matches!(
        b.save(&state, &[]),
        Err(StoreError::LeaseLost { .. })
    ));
    a.save(&state, &[event("example.com", "generated", 1)])
        .unwrap();
    a.renew(&d).unwrap();
    // Released: b takes it at once, with no takeover.
    a.release(&d).unwrap();
    b.lease(&d).unwrap();
    b.save(&state, &[event("example.com", "published", 2)])
        .unwrap();
    // a's old epoch is over.
    assert!(matches!(a.renew(&d), Err(StoreError::LeaseLost { .. })));
    // b "dies" holding the lease: a gets it only after the expiry.
    assert!(matches!(a.lease(&d), Err(StoreError::Leased { .. })));
    std::thread::sleep(lease + Duration::from_millis(200));
    a.lease(&d).unwrap();
    // b, come back, finds its lease gone and saves nothing.
    assert!(matches!(
        b.save(
            &sample_state("example.com"),
            &[event("example.com", "stale", 3)]
        ),
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(b.renew(&d), Err(StoreError::LeaseLost { .. })));
    let events = a.events(Some(&d), 0, 10).unwrap();
    let summary: Vec<(String, Option<String>, Option<i64>)> = events
        .iter()
        .map(|e| (e.event.what.clone(), e.replica.clone(), e.lease))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("generated".into(), Some("a:1".into()), Some(1)),
            ("published".into(), Some("b:2".into()), Some(2)),
            ("lease_taken_over".into(), Some("a:1".into()), Some(3)),
        ]
    );
    assert!(
        events[2].event.detail.contains("from replica b:2"),
        "{}",
        events[2].event.detail
    );
}

#[test]
fn the_password_stays_out_of_urls_and_messages() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    // A password in the URL is refused, and not repeated.
    let with_password = url.replace("maildns@", &format!("maildns:{}@", pg.password));
    let err = PgStore::connect(PgOptions {
        url: with_password,
        password: None,
        replica: "x".into(),
        lease: Duration::from_secs(5),
        max_connections: 1,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("holds a password"), "{err}");
    assert!(!err.contains(&pg.password), "{err}");
    // A wrong password: the server's message, never the password.
    let err = PgStore::connect(PgOptions {
        url: url.clone(),
        password: Some(Secret::new("wrong-password-xyz")),
        replica: "x".into(),
        lease: Duration::from_secs(5),
        max_connections: 1,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-password-xyz"), "{err}");
    assert!(err.contains(&url), "{err}");

    // In the configuration file: refused at file:line:key.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[accounts.dns]\nprovider = \"zonefile\"\npath = \"z\"\n[domains.\"example.com\"]\naccount = \"dns\"\nspf = \"v=spf1 -all\"\n[state]\nurl = \"postgres://maildns:{}@127.0.0.1:1/state\"\npassword = \"{}\"\n",
            dir.path().join("state").display(),
            pg.password,
            pg.password
        ),
    )
    .unwrap();
    let out = cmd().config(&cfg).arg("check").run();
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    let text = out.text();
    assert!(
        text.contains(":9: state.url: the URL holds a password"),
        "{text}"
    );
    assert!(text.contains(":10: state.password: "), "{text}");
    assert!(!text.contains(&pg.password), "{text}");
}

fn config_with_state(dir: &std::path::Path, url: Option<&str>) -> std::path::PathBuf {
    let cfg = dir.join("maildns.toml");
    let mut text = format!(
        "state_dir = \"{}\"\n[accounts.dns]\nprovider = \"zonefile\"\npath = \"z\"\n[domains.\"example.com\"]\naccount = \"dns\"\nspf = \"v=spf1 -all\"\n[domains.\"example.com\".dkim]\nalgorithms = [\"rsa\"]\n",
        dir.join("state").display()
    );
    if let Some(url) = url {
        text.push_str(&format!("[state]\nurl = \"{url}\"\nreplica_id = \"cli\"\n"));
    }
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn migrate_state_copies_sqlite_into_postgres_and_back() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    {
        let s = SqliteStore::open_locked(&first).unwrap();
        s.save(
            &sample_state("example.com"),
            &[
                event("example.com", "generated", 1),
                event("example.com", "published", 2),
            ],
        )
        .unwrap();
        let mut other = DomainState::new(fqdn("example.org"));
        other.keys.push(key("202401", KeyStatus::Destroyed));
        s.save(&other, &[event("example.org", "destroyed", 3)])
            .unwrap();
        s.save_diagnosis(&Diagnosis {
            account: "dns".into(),
            zone: "example.com".into(),
            at: t(4),
            result: serde_json::json!({"limit": 255}),
            recommended_max_bits: None,
        })
        .unwrap();
        s.add_request(&fqdn("example.com"), "rotate_now", t(5))
            .unwrap();
    }
    // What publish published (the embedded store's ledger file).
    let ledger = r#"{"version":1,"records":[{"domain":"example.com","kind":"spf","name":"example.com","value":"v=spf1 -all"}]}"#;
    std::fs::write(first.join("published.json"), ledger).unwrap();
    let migrate = |from: &str, to: &str| {
        let out = cmd()
            .args(["migrate-state", "--from", from, "--to", to, "--json"])
            .env("MAILDNS_STATE_PASSWORD", &pg.password)
            .run();
        assert_eq!(out.status.code(), Some(0), "{}", out.text());
        assert!(!out.text().contains(&pg.password));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let copied = migrate(first.to_str().unwrap(), &url);
    assert_eq!(
        copied,
        serde_json::json!({"domains": 2, "events": 3, "diagnoses": 1, "requests": 1, "ledger_entries": 1})
    );
    // Into a store that already holds state: refused, nothing written.
    let out = cmd()
        .args([
            "migrate-state",
            "--from",
            first.to_str().unwrap(),
            "--to",
            &url,
        ])
        .env("MAILDNS_STATE_PASSWORD", &pg.password)
        .run();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("already holds state"), "{}", out.text());

    // The replicas' view of the copy.
    let shared = connect(&pg, &url, "check", Duration::from_secs(5));
    let original = SqliteStore::open(&first).unwrap();
    for d in ["example.com", "example.org"] {
        assert_eq!(
            shared.load(&fqdn(d)).unwrap(),
            original.load(&fqdn(d)).unwrap()
        );
    }
    // Back from PostgreSQL into a new state directory.
    let second = dir.path().join("second");
    let copied_back = migrate(&url, second.to_str().unwrap());
    assert_eq!(copied_back, copied);
    let back = SqliteStore::open(&second).unwrap();
    assert_eq!(back.domains().unwrap(), original.domains().unwrap());
    for d in original.domains().unwrap() {
        assert_eq!(back.load(&d).unwrap(), original.load(&d).unwrap());
    }
    let events = |s: &dyn Store| -> Vec<Event> {
        s.events(None, 0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
    };
    assert_eq!(events(&back), events(&original));
    assert_eq!(events(&shared), events(&original));
    assert_eq!(back.diagnoses().unwrap(), original.diagnoses().unwrap());
    let reqs = |s: &dyn Store| -> Vec<(Fqdn, String, DateTime<Utc>)> {
        s.requests()
            .unwrap()
            .into_iter()
            .map(|r| (r.domain, r.what, r.at))
            .collect()
    };
    assert_eq!(reqs(&back), reqs(&original));
    assert_eq!(reqs(&shared), reqs(&original));
    let entries = |v: serde_json::Value| v["records"].clone();
    assert_eq!(
        serde_json::to_value(shared.load_ledger().unwrap()).unwrap(),
        entries(serde_json::from_str(ledger).unwrap())
    );
    let back_ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(second.join("published.json")).unwrap()).unwrap();
    assert_eq!(
        entries(back_ledger),
        entries(serde_json::from_str(ledger).unwrap())
    );

    // status reads the shared store from any machine (here: a config naming it).
    let cfg = config_with_state(dir.path(), Some(&url));
    let out = cmd()
        .config(&cfg)
        .args(["status", "--json"])
        .env("MAILDNS_STATE_PASSWORD", &pg.password)
        .run();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.text()));
    let com = &v["domains"][0];
    assert_eq!(com["domain"], "example.com", "{v}");
    assert!(com.to_string().contains("202402"), "{v}");
    assert!(!out.text().contains(&pg.password));
}

#[test]
fn status_shows_which_replica_did_what() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let store = Arc::new(connect(
        &pg,
        &url,
        "mx7.example.net:4242",
        Duration::from_secs(30),
    ));
    store.lock_exclusive().unwrap();
    let d = fqdn("example.com");
    store.lease(&d).unwrap();
    store
        .save(
            &sample_state("example.com"),
            &[event("example.com", "generated", 1)],
        )
        .unwrap();
    store.release(&d).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_state(dir.path(), Some(&url));
    let out = cmd()
        .config(&cfg)
        .arg("status")
        .env("MAILDNS_STATE_PASSWORD", &pg.password)
        .run();
    assert!(
        out.stdout_text()
            .contains("generated ok: generated detail [replica mx7.example.net:4242]"),
        "{}",
        out.text()
    );
    // Without the password the server refuses, and says so.
    let out = cmd().config(&cfg).arg("status").run();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("password"), "{}", out.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_records_use_the_shared_store_and_ledger_and_respect_leases() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let pdns = maildns_testkit::PowerDns::start();
    pdns.create_zone_with("example.com", 3600, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{state}\"\n[state]\nurl = \"{url}\"\nreplica_id = \"admin\"\n[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{api}\"\n[domains.\"example.com\"]\naccount = \"dns\"\nnameservers = [\"{ns}\"]\nspf = \"v=spf1 -all\"\n[domains.\"example.com\".dkim]\nalgorithms = [\"rsa\"]\nbits = 1024\n",
            state = dir.path().join("state").display(),
            api = pdns.api_url,
            ns = pdns.dns,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        cmd()
            .config(&cfg)
            .args(args)
            .env("MAILDNS_DNS_TOKEN", &pdns.api_key)
            .env("MAILDNS_STATE_PASSWORD", &pg.password)
            .run()
    };
    // A replica works the domain: publish waits for nobody and changes nothing.
    let replica = connect(&pg, &url, "mx1", Duration::from_secs(30));
    replica.lock_exclusive().unwrap();
    let d = fqdn("example.com");
    replica.lease(&d).unwrap();
    let out = run(&["publish"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(
        out.text().contains("being worked by replica mx1"),
        "{}",
        out.text()
    );
    assert!(replica.load(&d).unwrap().keys.is_empty());
    replica.release(&d).unwrap();

    // Free: the first key goes into the shared store, not a local SQLite file.
    let out = run(&["publish"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    let state = replica.load(&d).unwrap();
    assert_eq!(state.keys.len(), 1, "{state:?}");
    assert!(!dir.path().join("state").join("maildns.sqlite3").exists());
    // The publish ledger too is shared: what publish wrote (the SPF value).
    assert!(!dir.path().join("state").join("published.json").exists());
    let ledger = replica.load_ledger().unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0].kind, "spf", "{ledger:?}");
    assert_eq!(ledger[0].value, "v=spf1 -all", "{ledger:?}");
    let events = replica.events(Some(&d), 0, 100).unwrap();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.replica.as_deref() == Some("admin")),
        "{events:?}"
    );
    // `records` reads the key from the shared store.
    let out = run(&["records"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    let selector = state.keys[0].selector.to_string();
    assert!(
        out.stdout_text()
            .contains(&format!("{selector}._domainkey.example.com")),
        "{}",
        out.text()
    );
}

fn ledger_entry(domain: &str, kind: &str, value: &str) -> LedgerEntry {
    let name = match kind {
        "dmarc" => format!("_dmarc.{domain}"),
        "adsp" => format!("_adsp._domainkey.{domain}"),
        _ => domain.to_string(),
    };
    LedgerEntry {
        domain: fqdn(domain),
        kind: kind.into(),
        name: fqdn(&name),
        value: value.into(),
    }
}

/// Every entry of the shared ledger as (domain, kind, value).
fn ledger_rows(store: &dyn Store) -> Vec<(String, String, String)> {
    store
        .load_ledger()
        .unwrap()
        .into_iter()
        .map(|e| (e.domain.to_string(), e.kind, e.value))
        .collect()
}

fn rows(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(d, k, v)| (d.to_string(), k.to_string(), v.to_string()))
        .collect()
}

/// Two "machines" (two store handles) each read the shared ledger, change
/// their own entries and save at the same moment, many times over: on
/// different domains and on different entries of one domain, nothing either
/// saved is lost (a whole-ledger save would drop the other's entries).
#[test]
fn concurrent_ledger_updates_from_two_machines_lose_nothing() {
    let (pg, _url, a, b) = two_replicas(Duration::from_secs(30));
    let (a, b) = (Arc::new(a), Arc::new(b));
    // What an earlier run published; neither machine touches it.
    Ledger::update_in(
        a.as_ref(),
        &[Change::Put(ledger_entry(
            "kept.example",
            "spf",
            "v=spf1 -all",
        ))],
    )
    .unwrap();

    const ROUNDS: usize = 25;
    // Machine a works a.example and shared.example's SPF; machine b works
    // b.example and shared.example's DMARC. Each round: both read the
    // ledger, wait for each other, then save their changes together.
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let machine = |store: Arc<PgStore>, own: &'static str, kind: &'static str| {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            for round in 0..ROUNDS {
                let read = Ledger::load_from(store.as_ref()).unwrap();
                let mut updated = read.clone();
                let value = |v: &str| format!("{v} round {round}");
                let mut changes = vec![
                    Change::Put(ledger_entry(own, "spf", &value("v=spf1 mx -all"))),
                    Change::Put(ledger_entry("shared.example", kind, &value(kind))),
                ];
                // Every other round, the run drops its domain's DMARC entry
                // (a line removed from its configuration), else publishes it.
                changes.push(if round % 2 == 0 {
                    Change::Put(ledger_entry(own, "dmarc", "v=DMARC1; p=none"))
                } else {
                    Change::Remove(ledger_entry(own, "dmarc", "v=DMARC1; p=none"))
                });
                updated.apply(&changes);
                let delta = read.changes_to(&updated);
                barrier.wait();
                Ledger::update_in(store.as_ref(), &delta).unwrap();
                barrier.wait();
                // Right after both saved: each sees its own changes and the
                // other's of this very round (a whole-ledger save would
                // bring back the other's values of the round before).
                let spf = format!("v=spf1 mx -all round {round}");
                let dmarc = "v=DMARC1; p=none";
                let mut want = vec![];
                if round % 2 == 0 {
                    want.push(("a.example", "dmarc", dmarc));
                }
                want.push(("a.example", "spf", &spf));
                if round % 2 == 0 {
                    want.push(("b.example", "dmarc", dmarc));
                }
                want.push(("b.example", "spf", &spf));
                want.push(("kept.example", "spf", "v=spf1 -all"));
                let (sd, ss) = (format!("dmarc round {round}"), format!("spf round {round}"));
                want.push(("shared.example", "dmarc", &sd));
                want.push(("shared.example", "spf", &ss));
                assert_eq!(ledger_rows(store.as_ref()), rows(&want), "round {round}");
                barrier.wait();
            }
        })
    };
    let ta = machine(a.clone(), "a.example", "spf");
    let tb = machine(b.clone(), "b.example", "dmarc");
    ta.join().unwrap();
    tb.join().unwrap();
    // The last round (even) published each domain's DMARC entry again.
    let last = ROUNDS - 1;
    assert_eq!(last % 2, 0);
    assert_eq!(
        ledger_rows(a.as_ref()),
        rows(&[
            ("a.example", "dmarc", "v=DMARC1; p=none"),
            ("a.example", "spf", &format!("v=spf1 mx -all round {last}")),
            ("b.example", "dmarc", "v=DMARC1; p=none"),
            ("b.example", "spf", &format!("v=spf1 mx -all round {last}")),
            ("kept.example", "spf", "v=spf1 -all"),
            ("shared.example", "dmarc", &format!("dmarc round {last}")),
            ("shared.example", "spf", &format!("spf round {last}")),
        ])
    );
    // Who wrote each entry last is on its row.
    let writers = pg
        .psql(
            "state",
            "SELECT domain || ' ' || kind || ' ' || coalesce(replica, '-') FROM ledger_entries ORDER BY domain, kind",
        )
        .unwrap();
    assert_eq!(
        writers.lines().collect::<Vec<_>>(),
        vec![
            "a.example dmarc a:1",
            "a.example spf a:1",
            "b.example dmarc b:2",
            "b.example spf b:2",
            "kept.example spf a:1",
            "shared.example dmarc b:2",
            "shared.example spf a:1",
        ]
    );

    // Two runs writing the same entry: the later write wins, and nothing
    // else changes.
    let read_a = Ledger::load_from(a.as_ref()).unwrap();
    let read_b = Ledger::load_from(b.as_ref()).unwrap();
    let mut by_a = read_a.clone();
    by_a.apply(&[Change::Put(ledger_entry(
        "kept.example",
        "spf",
        "v=spf1 a -all",
    ))]);
    let mut by_b = read_b.clone();
    by_b.apply(&[Change::Put(ledger_entry(
        "kept.example",
        "spf",
        "v=spf1 ip4:192.0.2.1 -all",
    ))]);
    Ledger::update_in(a.as_ref(), &read_a.changes_to(&by_a)).unwrap();
    Ledger::update_in(b.as_ref(), &read_b.changes_to(&by_b)).unwrap();
    let seen = ledger_rows(a.as_ref());
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(
        seen.contains(&(
            "kept.example".into(),
            "spf".into(),
            "v=spf1 ip4:192.0.2.1 -all".into()
        )),
        "{seen:?}"
    );

    // A run that read an entry and removes it (its line left the
    // configuration) does not delete the value another run wrote since.
    let read = Ledger::load_from(a.as_ref()).unwrap();
    let mut dropped = read.clone();
    dropped.apply(&[Change::Remove(ledger_entry(
        "kept.example",
        "spf",
        "v=spf1 ip4:192.0.2.1 -all",
    ))]);
    assert_ne!(dropped, read);
    let newer = ledger_entry(
        "kept.example",
        "spf",
        "v=spf1 include:_spf.example.net -all",
    );
    b.update_ledger(&[Change::Put(newer.clone())]).unwrap();
    Ledger::update_in(a.as_ref(), &read.changes_to(&dropped)).unwrap();
    let kept: Vec<_> = a
        .load_ledger()
        .unwrap()
        .into_iter()
        .filter(|e| e.domain.as_str() == "kept.example")
        .collect();
    assert_eq!(kept, vec![newer.clone()]);
    // Removing the value it holds deletes it.
    a.update_ledger(&[Change::Remove(newer)]).unwrap();
    assert_eq!(ledger_rows(a.as_ref()).len(), 6);
}

/// A ledger change to a domain this process leased counts only under that
/// lease, in the same transaction as the rest of the run's changes: a
/// replica that lost the lease saves none of them.
#[test]
fn a_ledger_update_under_a_lost_lease_saves_nothing() {
    let lease = Duration::from_millis(500);
    let (_pg, _url, a, b) = two_replicas(lease);
    let d = fqdn("leased.example");
    a.lease(&d).unwrap();
    // Under its lease, a saves.
    Ledger::update_in(
        &a,
        &[Change::Put(ledger_entry(
            "leased.example",
            "spf",
            "v=spf1 -all",
        ))],
    )
    .unwrap();
    // a stalls past the expiry; b takes the domain over.
    std::thread::sleep(lease + Duration::from_millis(200));
    b.lease(&d).unwrap();
    let stale = [
        Change::Put(ledger_entry("free.example", "spf", "v=spf1 mx -all")),
        Change::Remove(ledger_entry("leased.example", "spf", "v=spf1 -all")),
    ];
    match a.update_ledger(&stale) {
        Err(StoreError::LeaseLost { domain, replica }) => {
            assert_eq!(domain, "leased.example");
            assert_eq!(replica, "a:1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ledger_rows(&b),
        rows(&[("leased.example", "spf", "v=spf1 -all")])
    );
    // b, holding the lease, saves; an unleased domain needs none.
    b.update_ledger(&stale).unwrap();
    assert_eq!(
        ledger_rows(&b),
        rows(&[("free.example", "spf", "v=spf1 mx -all")])
    );
}

/// A database at schema version 2 (the ledger as one JSON document) is
/// migrated on connect: every entry becomes its own row, with the document's
/// save time, and the old table goes.
#[test]
fn the_migration_carries_a_whole_ledger_over_into_entries() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let v2 = format!(
        "{}\n{}\nCREATE TABLE maildns_schema (version INTEGER NOT NULL);\nINSERT INTO maildns_schema VALUES (1), (2);",
        include_str!("../../src/rotation/store/postgres/0001_init.sql"),
        include_str!("../../src/rotation/store/postgres/0002_ledger.sql"),
    );
    pg.psql("state", &v2).unwrap();
    let body = r#"{"version":1,"records":[
        {"domain":"example.com","kind":"spf","name":"example.com","value":"v=spf1 -all"},
        {"domain":"example.com","kind":"dmarc","name":"_dmarc.example.com","value":"v=DMARC1; p=reject"},
        {"domain":"example.org","kind":"adsp","name":"_adsp._domainkey.example.org","value":"dkim=all"}]}"#;
    pg.psql(
        "state",
        &format!(
            "INSERT INTO ledger (id, body, saved_at) VALUES (1, '{body}', '2024-01-02T03:04:05Z')"
        ),
    )
    .unwrap();

    let store = connect(&pg, &url, "a:1", Duration::from_secs(30));
    assert_eq!(
        store.load_ledger().unwrap(),
        vec![
            ledger_entry("example.com", "dmarc", "v=DMARC1; p=reject"),
            ledger_entry("example.com", "spf", "v=spf1 -all"),
            ledger_entry("example.org", "adsp", "dkim=all"),
        ]
    );
    let out = pg
        .psql(
            "state",
            "SELECT (SELECT max(version) FROM maildns_schema) || ' ' || (to_regclass('ledger') IS NULL) || ' ' || (SELECT count(*) FROM ledger_entries WHERE saved_at = '2024-01-02T03:04:05Z')",
        )
        .unwrap();
    assert_eq!(out.trim(), "4 true 3");
    // A second connect migrates nothing more and keeps the entries.
    let again = connect(&pg, &url, "b:2", Duration::from_secs(30));
    assert_eq!(again.load_ledger().unwrap().len(), 3);
}

/// `maildns rotate` by hand on a shared store takes the queued `rotate --now`
/// requests; those it does not do (a domain another replica works now, a
/// domain outside its `--domain` selection) stay queued, with their time.
#[test]
fn rotate_by_hand_leaves_the_requests_it_does_not_do_queued() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let dir = tempfile::tempdir().unwrap();
    // The DNS host is never reached: both runs stop at the lease.
    let cfg = write_config(
        dir.path(),
        "dns",
        UNREACHED_POWERDNS,
        &format!(
            "{}[domains.\"a.example\"]\naccount = \"dns\"\n[domains.\"a.example\".dkim]\nalgorithms = [\"rsa\"]\n[domains.\"b.example\"]\naccount = \"dns\"\n[domains.\"b.example\".dkim]\nalgorithms = [\"rsa\"]\n",
            shared_state(&url, "admin"),
        ),
    );
    let replica = connect(&pg, &url, "mx1", Duration::from_secs(30));
    replica.lock_exclusive().unwrap();
    replica
        .add_request(&fqdn("a.example"), "rotate_now", t(1))
        .unwrap();
    replica
        .add_request(&fqdn("b.example"), "rotate_now", t(2))
        .unwrap();
    replica.lease(&fqdn("a.example")).unwrap();
    let out = cmd()
        .config(&cfg)
        .args(["rotate", "--domain", "a.example"])
        .env("MAILDNS_DNS_TOKEN", "token")
        .env("MAILDNS_STATE_PASSWORD", &pg.password)
        .run();
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(
        out.text().contains("being worked by replica mx1"),
        "{}",
        out.text()
    );
    let mut queued: Vec<(String, DateTime<Utc>)> = replica
        .requests()
        .unwrap()
        .into_iter()
        .map(|r| (r.domain.to_string(), r.at))
        .collect();
    queued.sort();
    assert_eq!(
        queued,
        vec![("a.example".into(), t(1)), ("b.example".into(), t(2))]
    );
}

/// From a user's trial: a `--to`/`--from` that is neither a postgres:// URL
/// nor a plain path (a URL missing a slash, a libpq connection string) was
/// taken for a directory name: a SQLite store was made under it and the
/// password printed. Refused with exit 64, nothing made, nothing repeated.
#[test]
fn migrate_state_refuses_a_store_name_that_is_neither_url_nor_path() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("state");
    SqliteStore::open_locked(&from)
        .unwrap()
        .save(&sample_state("example.com"), &[])
        .unwrap();
    for to in [
        "postgres:/maildns:StatePw99@127.0.0.1/x",
        "host=127.0.0.1 password=StatePw99 dbname=x",
        "mysql://maildns:StatePw99@127.0.0.1/x",
    ] {
        let out = cmd()
            .current_dir(dir.path())
            .args([
                "migrate-state",
                "--from",
                from.to_str().unwrap(),
                "--to",
                to,
            ])
            .run();
        assert_eq!(out.status.code(), Some(64), "{to}: {}", out.text());
        assert!(out.text().contains("--to"), "{}", out.text());
        assert!(!out.text().contains("StatePw99"), "{}", out.text());
        let made: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(made, [std::ffi::OsString::from("state")], "{to}");
    }
}

/// From a user trial: a malformed postgres:// URL in `--to` exited 1 (a
/// failed connection), while a non-URL exited 64 and a malformed `[state]
/// url` 65. A malformed URL on the command line is a usage error: exit 64,
/// for `--to` and `--from`, before anything connects or is made, the
/// password not repeated. No server is needed (port 1 is never reached).
#[test]
fn migrate_state_refuses_a_malformed_postgres_url_as_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    SqliteStore::open_locked(&state)
        .unwrap()
        .save(&sample_state("example.com"), &[])
        .unwrap();
    let state = state.to_str().unwrap();
    for url in [
        "postgres://u@127.0.0.1:1/mail%ZZdns",
        "postgres://u:StatePw99@127.0.0.1:1/maildns%00",
        "postgresql://u@127.0.0.1:1/maildns?sslmode=sometimes",
        "postgres://u:StatePw99@127.0.0.1:notaport/maildns",
    ] {
        for (from, to, flag) in [(state, url, "--to"), (url, state, "--from")] {
            let out = cmd()
                .current_dir(dir.path())
                .args(["migrate-state", "--from", from, "--to", to])
                .run();
            let text = out.text();
            assert_eq!(out.status.code(), Some(64), "{flag} {url}: {text}");
            assert!(
                text.contains(&format!("{flag}: not a valid PostgreSQL URL: ")),
                "{flag} {url}: {text}"
            );
            assert!(!text.contains("StatePw99"), "{text}");
            let made: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(made, [std::ffi::OsString::from("state")], "{url}");
        }
    }
}

/// From a user trial: `migrate-state --from D --to D` blamed "another
/// maildns" holding the lock (its own pid). The same store, by the same or
/// another spelling of its path, is a usage error (exit 64) and the store is
/// left as it was.
#[test]
fn migrate_state_refuses_the_same_store_as_source_and_destination() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("state");
    SqliteStore::open_locked(&from)
        .unwrap()
        .save(&sample_state("example.com"), &[])
        .unwrap();
    let before = std::fs::read(from.join(maildns::rotation::store::DB_FILE)).unwrap();
    for to in [
        from.to_str().unwrap().to_string(),
        format!("{}/", from.display()),
        "./state".to_string(),
        format!("{}/../state", from.display()),
    ] {
        let out = cmd()
            .current_dir(dir.path())
            .args([
                "migrate-state",
                "--from",
                from.to_str().unwrap(),
                "--to",
                &to,
            ])
            .run();
        assert_eq!(out.status.code(), Some(64), "{to}: {}", out.text());
        assert!(out.text().contains("name the same store"), "{}", out.text());
        assert!(!out.text().contains("another maildns"), "{}", out.text());
    }
    assert_eq!(
        std::fs::read(from.join(maildns::rotation::store::DB_FILE)).unwrap(),
        before
    );
}

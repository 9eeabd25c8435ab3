//! Tests of the SQLite store: round trips, the event log, the state lock
//! (threads and a child process), atomicity and crash safety.

use std::io::{BufRead, BufReader};

use std::process::{Command, Stdio};

use chrono::{TimeDelta, TimeZone};

use super::schema::{MIGRATE_2, SCHEMA};
use super::*;
use crate::rotation::machine::{KeyStatus, Policy, Selector, step};

fn name(s: &str) -> Fqdn {
    Fqdn::parse(s).expect("valid test name")
}

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_736_000_000 + secs, nanos)
        .single()
        .expect("valid test time")
}

fn ev(domain: &str, what: &str, secs: i64) -> Event {
    Event {
        at: at(secs, 0),
        domain: name(domain),
        selector: Selector::parse("202501").ok(),
        what: what.into(),
        outcome: "ok".into(),
        detail: format!("{what} detail"),
    }
}

/// A state with keys in several statuses and every optional field set somewhere.
fn sample_state(domain: &str) -> DomainState {
    let policy = Policy::default();
    let mut state = step(&DomainState::new(name(domain)), &[], at(0, 0), &policy).state;
    let mut full = state.keys[0].clone();
    full.selector = Selector::parse("202412").expect("selector");
    full.status = KeyStatus::Retiring;
    full.key_path = Some("/var/lib/maildns/keys/example.com/202412.private".into());
    full.published_at = Some(at(1, 123_456_789));
    full.propagated_at = Some(at(2, 1));
    full.safe_after = Some(at(3, 0));
    full.active_at = Some(at(4, 999_999_999));
    full.retired_at = Some(at(5, 0));
    full.not_before = Some(at(6, 0));
    full.attempts = 3;
    full.failure = Some("ns2 'quoted' answer".into());
    state.keys.insert(0, full);
    let mut ed = state.keys[1].clone();
    ed.selector = Selector::parse("202501a").expect("selector");
    ed.algorithm = Algorithm::Ed25519;
    ed.bits = 256;
    ed.status = KeyStatus::SwitchFailed;
    ed.failure = Some("reload failed".into());
    state.keys.push(ed);
    state
}

#[test]
fn states_round_trip_and_domains_are_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_locked(dir.path()).expect("open");
    let unknown = store.load(&name("nothing.example")).expect("load");
    assert!(unknown.keys.is_empty());
    let a = sample_state("b.example");
    let b = sample_state("a.example");
    store.save(&a, &[]).expect("save a");
    store.save(&b, &[]).expect("save b");
    assert_eq!(store.load(&name("b.example")).expect("load"), a);
    assert_eq!(
        store.domains().expect("domains"),
        vec![name("a.example"), name("b.example")]
    );
    // Saving again replaces (keys removed from the state disappear).
    let mut a2 = a.clone();
    a2.keys.truncate(1);
    store.save(&a2, &[]).expect("save a2");
    drop(store);
    let reopened = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(reopened.load(&name("b.example")).expect("load"), a2);
    assert_eq!(reopened.load(&name("a.example")).expect("load"), b);
    assert!(dir.path().join(DB_FILE).exists());
}

/// A clock stopped at one instant.
struct Stopped(DateTime<Utc>);

impl Clock for Stopped {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

#[test]
fn save_stamps_with_the_injected_clock() {
    let when = at(42, 0);
    let store = SqliteStore::in_memory()
        .expect("open")
        .with_clock(Arc::new(Stopped(when)));
    store.save(&sample_state("example.com"), &[]).expect("save");
    let saved: String = store
        .conn()
        .query_row(
            "SELECT saved_at FROM domains WHERE domain = 'example.com'",
            [],
            |r| r.get(0),
        )
        .expect("saved_at");
    assert_eq!(saved, ts(when));
}

#[test]
fn event_log_keeps_order_and_filters() {
    let store = SqliteStore::in_memory().expect("open");
    let state = sample_state("example.com");
    store
        .save(
            &state,
            &[
                ev("example.com", "planned", 10),
                ev("example.com", "generated", 5),
            ],
        )
        .expect("save");
    store
        .append_events(&[ev("other.example", "published", 1)])
        .expect("append");
    store
        .save(&state, &[ev("example.com", "published", 20)])
        .expect("save");
    let all = store.events(None, 0, 100).expect("events");
    let whats: Vec<&str> = all.iter().map(|e| e.event.what.as_str()).collect();
    // Append order, not timestamp order.
    assert_eq!(
        whats,
        vec!["planned", "generated", "published", "published"]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[0].event, ev("example.com", "planned", 10));
    let mine = store
        .events(Some(&name("example.com")), 0, 100)
        .expect("events");
    assert_eq!(mine.len(), 3);
    let page = store
        .events(Some(&name("example.com")), mine[0].id, 1)
        .expect("events");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].event.what, "generated");
}

#[test]
fn second_store_on_the_same_dir_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = SqliteStore::open_locked(dir.path()).expect("first");
    let path = dir.path().to_path_buf();
    let err = std::thread::spawn(move || SqliteStore::open_locked(&path).err())
        .join()
        .expect("thread")
        .expect("second store must be refused");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "another maildns (pid {}) holds the state lock",
            std::process::id()
        )),
        "{msg}"
    );
    // A reader can still open it and read, but not change key states.
    let reader = SqliteStore::open(dir.path()).expect("reader");
    assert!(!reader.is_locked());
    assert!(matches!(
        reader.save(&sample_state("example.com"), &[]),
        Err(StoreError::NotLocked { .. })
    ));
    first
        .save(&sample_state("example.com"), &[])
        .expect("first saves");
    assert_eq!(
        reader.domains().expect("domains"),
        vec![name("example.com")]
    );
    drop(first);
    reader
        .lock_exclusive()
        .expect("lock free after the first store is dropped");
    reader.lock_exclusive().expect("idempotent");
    reader
        .save(&sample_state("example.com"), &[])
        .expect("now it may save");
}

const CHILD_ENV: &str = "MAILDNS_STORE_TEST_CHILD";

/// Not a test by itself: the body of the child process of the tests below,
/// selected by an environment variable.
#[test]
#[allow(clippy::disallowed_macros)] // talks to the parent process over stdout
fn child_process_body() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let dir = Path::new(dir);
    match mode {
        "lock" => {
            let _store = SqliteStore::open_locked(dir).expect("child locks");
            println!("LOCKED");
            // Hold the lock until the parent closes our stdin.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "crash" => {
            // Start changing the state like a save would, then die before COMMIT.
            let mut conn = Connection::open(dir.join(DB_FILE)).expect("open");
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .expect("begin");
            tx.execute("DELETE FROM keys", []).expect("delete");
            tx.execute(
                "INSERT INTO events (at, domain, what, outcome, detail) VALUES ('x', 'example.com', 'half', 'ok', '')",
                [],
            )
            .expect("insert");
            println!("MIDWAY");
            std::process::abort();
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_child(mode: &str, dir: &Path) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args([
            "rotation::store::tests::child_process_body",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// Reads the child's output up to a line containing `want`; returns the
/// reader, to be drained later (the child must not hit a closed pipe).
fn wait_for_line(
    child: &mut std::process::Child,
    want: &str,
) -> BufReader<std::process::ChildStdout> {
    let out = child.stdout.take().expect("child stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line.contains(want) => return reader,
            Ok(n) if n > 0 => continue,
            _ => panic!("child ended before printing {want}"),
        }
    }
}

#[test]
fn a_second_process_gets_a_clear_error_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_child("lock", dir.path());
    let mut out = wait_for_line(&mut child, "LOCKED");
    let err = SqliteStore::open_locked(dir.path()).expect_err("locked by the child");
    assert_eq!(
        err.to_string(),
        format!(
            "another maildns (pid {}) holds the state lock {}; stop it or use another state directory",
            child.id(),
            dir.path().join(LOCK_FILE).display()
        )
    );
    drop(child.stdin.take());
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain child output");
    let status = child.wait().expect("child exits");
    assert!(status.success());
    SqliteStore::open_locked(dir.path()).expect("lock is free once the child exited");
}

#[test]
fn a_process_killed_mid_transaction_leaves_the_old_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = sample_state("example.com");
    {
        let store = SqliteStore::open_locked(dir.path()).expect("open");
        store
            .save(&state, &[ev("example.com", "planned", 0)])
            .expect("save");
    }
    let mut child = spawn_child("crash", dir.path());
    let _out = wait_for_line(&mut child, "MIDWAY");
    let status = child.wait().expect("child dies");
    assert!(!status.success(), "the child aborted");
    let store = SqliteStore::open_locked(dir.path()).expect("reopen after the crash");
    assert_eq!(store.load(&name("example.com")).expect("load"), state);
    let events = store.events(None, 0, 10).expect("events");
    assert_eq!(events.len(), 1, "the half-written event is gone");
}

#[test]
fn a_failed_save_changes_neither_state_nor_log() {
    let store = SqliteStore::in_memory().expect("open");
    let old = sample_state("example.com");
    store
        .save(&old, &[ev("example.com", "planned", 0)])
        .expect("save");
    let mut new = old.clone();
    new.keys.clear();
    // The second event violates a constraint after the keys were rewritten.
    let bad = [ev("example.com", "fine", 1), ev("example.com", "", 2)];
    let err = store.save(&new, &bad).expect_err("constraint");
    assert!(
        matches!(
            err,
            StoreError::Sqlite {
                operation: "append events",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.load(&name("example.com")).expect("load"), old);
    assert_eq!(store.events(None, 0, 10).expect("events").len(), 1);
}

#[test]
fn diagnoses_latest_per_account() {
    let store = SqliteStore::in_memory().expect("open");
    assert_eq!(store.latest_diagnosis("gandi").expect("read"), None);
    let d = |secs, bits| Diagnosis {
        account: "gandi".into(),
        zone: "example.com".into(),
        at: at(secs, 0),
        result: serde_json::json!({"max_string": 255, "multi_string": bits == Some(2048)}),
        recommended_max_bits: bits,
    };
    store.save_diagnosis(&d(10, Some(2048))).expect("save");
    store.save_diagnosis(&d(20, Some(1024))).expect("save");
    store.save_diagnosis(&d(5, None)).expect("save");
    let mut other = d(30, None);
    other.account = "route53".into();
    store.save_diagnosis(&other).expect("save");
    assert_eq!(
        store.latest_diagnosis("gandi").expect("read"),
        Some(d(20, Some(1024)))
    );
    assert_eq!(
        store.latest_diagnosis("route53").expect("read"),
        Some(other)
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(SqliteStore::open(dir.path()).expect("create"));
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = SqliteStore::open(dir.path()).expect_err("too new");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn runner_loop_shape_persists_each_step() {
    // The loop the runner will run: load, step, save with events.
    let store = SqliteStore::in_memory().expect("open");
    let policy = Policy::default();
    let domain = name("example.com");
    let now = at(0, 0);
    let state = store.load(&domain).expect("load");
    let d = step(&state, &[], now, &policy);
    store.save(&d.state, &d.events).expect("save");
    let again = store.load(&domain).expect("load");
    assert_eq!(again, d.state);
    let d2 = step(&again, &[], now + TimeDelta::seconds(1), &policy);
    assert_eq!(
        d2.actions, d.actions,
        "a restarted runner asks for the same work"
    );
    assert_eq!(
        store.events(None, 0, 10).expect("events").len(),
        d.events.len()
    );
}

#[test]
fn a_version_1_store_is_migrated_and_keeps_its_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
        conn.execute_batch(SCHEMA).expect("v1 schema");
        conn.pragma_update(None, "user_version", 1).expect("v1");
        conn.execute_batch(
            "INSERT INTO domains VALUES ('example.com', '2026-01-01T00:00:00.000000000Z', NULL);
             INSERT INTO keys (domain, algorithm, selector, seq, status, bits, created_at,
                key_path, safe_after, active_at, retired_at, withdrawn_at, attempts)
             VALUES ('example.com', 'rsa', 's1', 0, 'withdrawn', 2048,
                '2026-01-01T00:00:00.000000000Z', '/k/s1.private',
                '2026-01-01T00:00:00.000000000Z', '2026-01-01T00:00:00.000000000Z',
                '2026-02-01T00:00:00.000000000Z', '2026-02-20T00:00:00.000000000Z', 0);",
        )
        .expect("v1 rows");
    }
    let store = SqliteStore::open_locked(dir.path()).expect("migrates");
    let state = store
        .load(&Fqdn::parse("example.com").expect("name"))
        .expect("load");
    assert_eq!(state.keys.len(), 1);
    assert_eq!(state.keys[0].status, KeyStatus::Withdrawn);
    assert_eq!(state.keys[0].withdrawal_safe_after, None);
    let mut k = state.clone();
    let at = Utc
        .with_ymd_and_hms(2026, 2, 20, 0, 5, 0)
        .single()
        .expect("t");
    k.keys[0].withdrawal_safe_after = Some(at);
    store.save(&k, &[]).expect("save");
    assert_eq!(
        store.load(&k.domain).expect("load").keys[0].withdrawal_safe_after,
        Some(at)
    );
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn requests_queue_without_the_lock_and_are_taken_once_by_the_lock_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let holder = SqliteStore::open_locked(dir.path()).expect("locked");
    let reader = SqliteStore::open(dir.path()).expect("reader");
    let a = Fqdn::parse("a.example").expect("name");
    let b = Fqdn::parse("b.example").expect("name");
    let now = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("t");
    reader
        .add_request(&a, Request::ROTATE_NOW, now)
        .expect("queued");
    reader
        .add_request(&b, Request::ROTATE_NOW, now)
        .expect("queued");
    assert!(matches!(
        reader.take_requests(),
        Err(StoreError::NotLocked { .. })
    ));
    assert_eq!(reader.requests().expect("read").len(), 2);
    let taken = holder.take_requests().expect("taken");
    let domains: Vec<&str> = taken.iter().map(|r| r.domain.as_str()).collect();
    assert_eq!(domains, vec!["a.example", "b.example"]);
    assert!(taken.iter().all(|r| r.what == "rotate_now" && r.at == now));
    assert!(holder.take_requests().expect("none left").is_empty());
    assert!(reader.requests().expect("read").is_empty());
}

/// The ids of `requests`.
fn ids(requests: &[Request]) -> Vec<i64> {
    requests.iter().map(|r| r.id).collect()
}

#[test]
fn a_request_taken_by_a_process_that_died_is_taken_over_by_the_next_lock_holder_and_done_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = name("a.example");
    let asked = at(5, 0);
    let id = SqliteStore::open(dir.path())
        .expect("reader")
        .add_request(&a, Request::ROTATE_NOW, asked)
        .expect("queued");

    // The first daemon takes it and dies (its store dropped: the lock is
    // released as the kernel releases it on a kill; nothing done, nothing
    // given back).
    {
        let first = SqliteStore::open_locked(dir.path()).expect("locked");
        assert_eq!(ids(&first.take_requests().expect("taken")), [id]);
        assert!(
            first.requests().expect("read").is_empty(),
            "taken, not waiting"
        );
        assert!(first.take_requests().expect("again").is_empty(), "once");
    }
    // A reader sees it still taken (the take lasts REQUEST_LEASE) ...
    let reader = SqliteStore::open(dir.path()).expect("reader");
    assert!(reader.requests().expect("read").is_empty());
    // ... but the next lock holder sees it waiting and takes it over at
    // once: the taker no longer holds the lock, so it died before doing it.
    let second = SqliteStore::open_locked(dir.path()).expect("locked");
    assert_eq!(ids(&second.requests().expect("read")), [id]);
    let taken = second.take_requests().expect("taken over");
    assert_eq!(ids(&taken), [id]);
    assert_eq!(
        (taken[0].domain.as_str(), taken[0].at),
        ("a.example", asked)
    );
    let events = second.events(Some(&a), 0, 10).expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event.what, "request_taken_over");
    assert_eq!(events[0].event.outcome, "warning");
    assert!(
        events[0].event.detail.contains(&format!(
            "taken over from maildns pid {}",
            std::process::id()
        )),
        "{events:?}"
    );
    assert!(
        second.keep_request(&taken[0]).expect("kept"),
        "still its own"
    );
    second.done_requests(&[id]).expect("done");
    assert!(!second.keep_request(&taken[0]).expect("gone"), "done: gone");
    assert!(second.take_requests().expect("none").is_empty());
    drop(second);

    // Done: no later process does it again.
    let third = SqliteStore::open_locked(dir.path()).expect("locked");
    assert!(third.take_requests().expect("none").is_empty());
    assert!(third.requests().expect("none").is_empty());
    assert_eq!(third.events(Some(&a), 0, 10).expect("events").len(), 1);
}

#[test]
fn a_take_its_holder_neither_did_nor_gave_back_is_taken_again_after_the_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lease = std::time::Duration::from_millis(300);
    let store = SqliteStore::open_locked(dir.path())
        .expect("locked")
        .with_request_lease(lease);
    let a = name("a.example");
    let id = store
        .add_request(&a, Request::ROTATE_NOW, at(0, 0))
        .expect("queued");
    let taken = store.take_requests().expect("taken");
    assert_eq!(ids(&taken), [id]);
    assert!(store.take_requests().expect("held").is_empty());
    std::thread::sleep(lease / 2);
    // Kept: the lease starts again.
    assert!(store.keep_request(&taken[0]).expect("kept"));
    std::thread::sleep(lease / 2 + lease / 4);
    assert!(store.take_requests().expect("still held").is_empty());
    assert!(store.requests().expect("read").is_empty());
    std::thread::sleep(lease);
    assert_eq!(ids(&store.requests().expect("waiting again")), [id]);
    assert_eq!(ids(&store.take_requests().expect("taken again")), [id]);
    // Its own take again: no take-over event.
    assert!(store.events(Some(&a), 0, 10).expect("events").is_empty());
}

#[test]
fn a_request_given_back_waits_again_with_its_id_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_locked(dir.path()).expect("locked");
    let reader = SqliteStore::open(dir.path()).expect("reader");
    let (a, b) = (name("a.example"), name("b.example"));
    let ia = reader
        .add_request(&a, Request::ROTATE_NOW, at(1, 0))
        .expect("queued");
    let ib = reader
        .add_request(&b, Request::ROTATE_NOW, at(2, 0))
        .expect("queued");
    let taken = store.take_requests().expect("taken");
    assert_eq!(ids(&taken), [ia, ib]);
    assert!(matches!(
        reader.done_requests(&[ia]),
        Err(StoreError::NotLocked { .. })
    ));
    store.done_requests(&[ia]).expect("a done");
    requeue(&store, taken.iter().filter(|r| r.id == ib)).expect("b given back");
    let waiting = reader.requests().expect("read");
    assert_eq!(waiting, vec![taken[1].clone()]);
    assert_eq!(
        store.take_requests().expect("b again"),
        vec![taken[1].clone()]
    );
}

#[test]
fn a_version_4_store_keeps_its_queued_requests_as_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(dir.path()).expect("v5");
        drop(store);
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
        // Back to version 4's requests table, with one request queued.
        conn.execute_batch(
            "DROP TABLE requests;
             CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL,
                 what TEXT NOT NULL, at TEXT NOT NULL);
             INSERT INTO requests (domain, what, at)
             VALUES ('a.example', 'rotate_now', '2026-01-01T00:00:00.000000000Z');",
        )
        .expect("v4 requests");
        conn.pragma_update(None, "user_version", 4)
            .expect("version");
    }
    let store = SqliteStore::open_locked(dir.path()).expect("migrates");
    let waiting = store.requests().expect("read");
    assert_eq!(waiting.len(), 1);
    assert_eq!(ids(&store.take_requests().expect("taken")), ids(&waiting));
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(v, 5);
}

#[test]
fn a_version_2_store_gets_the_held_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
        conn.execute_batch(SCHEMA).expect("v1 schema");
        conn.execute_batch(MIGRATE_2).expect("v2");
        conn.pragma_update(None, "user_version", 2)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO domains VALUES ('example.com', '2025-01-01T00:00:00.000000000Z', NULL);
             INSERT INTO keys (domain, algorithm, selector, seq, status, bits, created_at, attempts)
             VALUES ('example.com', 'rsa', '202501', 0, 'planned', 2048, '2025-01-01T00:00:00.000000000Z', 0);",
        )
        .expect("v2 rows");
    }
    let store = SqliteStore::open_locked(dir.path()).expect("migrates");
    let mut state = store.load(&name("example.com")).expect("loads");
    assert_eq!(state.keys.len(), 1);
    assert_eq!(state.keys[0].held, None);
    state.keys[0].held = Some("OpenDKIM still signs with it".into());
    store.save(&state, &[]).expect("saves");
    let again = store.load(&name("example.com")).expect("loads");
    assert_eq!(
        again.keys[0].held.as_deref(),
        Some("OpenDKIM still signs with it")
    );
}

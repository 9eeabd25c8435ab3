//! Three `maildns daemon` replicas on one real PostgreSQL drive 200 domains
//! (one real PowerDNS zone) through a full DKIM rotation in simulated time
//! (the test-hooks clock file), while one replica is killed with SIGKILL in
//! the middle of its work. Every domain rotates exactly once; the event log,
//! with its replica ids, lease epochs and database timestamps, shows that no
//! domain was ever worked by two replicas at once.
#![allow(clippy::disallowed_macros)] // prints progress for its reader

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use maildns::propagation::{Querier, QueryOptions};
use maildns::rotation::{KeyStatus, Store};
use maildns_providers::Fqdn;
use maildns_testkit::{Postgres, PowerDns};

use crate::cmd;

const DOMAINS: usize = 200;
const LEASE: &str = "5s";

fn domain(i: usize) -> String {
    format!("d{i:03}.example.com")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// The simulated clock the daemons read (MAILDNS_TEST_CLOCK_FILE).
struct SimClock {
    path: PathBuf,
    now: DateTime<Utc>,
}

impl SimClock {
    fn new(dir: &Path) -> SimClock {
        let mut c = SimClock {
            path: dir.join("clock"),
            now: t0(),
        };
        c.set(t0());
        c
    }
    fn set(&mut self, t: DateTime<Utc>) {
        self.now = t;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, t.to_rfc3339()).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
    fn advance(&mut self, d: TimeDelta) {
        let t = self.now + d;
        self.set(t);
    }
}

fn config(dir: &Path, pdns: &PowerDns, url: &str, replica: &str) -> PathBuf {
    let mut s = format!(
        "state_dir = \"{state}\"\n\n[state]\nurl = \"{url}\"\nreplica_id = \"{replica}\"\nlease = \"{LEASE}\"\n\n[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{api}\"\n",
        state = dir.join("state").display(),
        api = pdns.api_url,
    );
    for i in 0..DOMAINS {
        s.push_str(&format!(
            "\n[domains.\"{d}\"]\naccount = \"dns\"\nzone = \"example.com\"\nttl = 300\nnameservers = [\"{ns}\"]\n\n[domains.\"{d}\".dkim]\nalgorithms = [\"rsa\"]\nbits = 1024\nselector_format = \"%Y%m\"\nrotation_interval = \"30d\"\noverlap = \"14d\"\nretire = \"remove\"\n",
            d = domain(i),
            ns = pdns.dns,
        ));
    }
    let path = dir.join(format!("{replica}.toml"));
    std::fs::write(&path, s).unwrap();
    path
}

/// The test's own connection to the state database (cheaper than a psql
/// process per look).
struct Sql {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Sql {
    fn connect(pg: &Postgres, url: &str) -> Sql {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.password(&pg.password);
        let (client, conn) = rt.block_on(config.connect(tokio_postgres::NoTls)).unwrap();
        rt.spawn(conn);
        Sql { rt, client }
    }

    fn count(&self, sql: &str) -> usize {
        let n: i64 = self
            .rt
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0);
        usize::try_from(n).unwrap()
    }

    fn strings(&self, sql: &str) -> Vec<String> {
        self.rt
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

struct Replica {
    id: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The state as the test sees it: each domain's keys (status, created_at).
fn keys(reader: &dyn Store) -> BTreeMap<String, Vec<(String, KeyStatus, DateTime<Utc>)>> {
    let mut out = BTreeMap::new();
    for i in 0..DOMAINS {
        let d = Fqdn::parse(&domain(i)).unwrap();
        let state = reader.load(&d).unwrap();
        out.insert(
            domain(i),
            state
                .keys
                .iter()
                .map(|k| (k.selector.to_string(), k.status, k.created_at))
                .collect(),
        );
    }
    out
}

/// Lets simulated time flow (a minute per 100 ms) and advances it by
/// `quiet_jump` whenever the event log has not grown for a while, until
/// `done` holds (bounded in real time).
fn drive(
    sql: &Sql,
    clock: &mut SimClock,
    replicas: &[Replica],
    what: &str,
    quiet_jump: TimeDelta,
    mut on_tick: impl FnMut(),
    done: impl Fn() -> bool,
) {
    let start = Instant::now();
    let mut last_id = 0;
    let mut quiet_since = Instant::now();
    loop {
        on_tick();
        if done() {
            println!("{what}: done after {:?}", start.elapsed());
            return;
        }
        if start.elapsed() > Duration::from_secs(150) {
            let logs: Vec<String> = replicas
                .iter()
                .map(|r| format!("== {}\n{}", r.id, tail(&r.log(), 40)))
                .collect();
            panic!("{what}: not done after 150 s\n{}", logs.join("\n"));
        }
        let id = sql.count("SELECT coalesce(max(id), 0) FROM events");
        if id != last_id {
            last_id = id;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_millis(1200) {
            println!("{what}: quiet at {:?}: +{quiet_jump}", start.elapsed());
            clock.advance(quiet_jump);
            quiet_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
        clock.advance(TimeDelta::minutes(1));
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn three_replicas_rotate_200_domains_exactly_once_while_one_is_killed() {
    let pg = Postgres::start();
    let url = pg.create_database("state");
    let pdns = PowerDns::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(pdns.create_zone_with("example.com", 3600, 1));
    let dir = tempfile::tempdir().unwrap();
    let mut clock = SimClock::new(dir.path());
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| {
            let cfg = config(dir.path(), &pdns, &url, id);
            let log = dir.path().join(format!("{id}.log"));
            let child = cmd()
                .config(&cfg)
                .arg("daemon")
                .env("MAILDNS_DNS_TOKEN", &pdns.api_key)
                .env("MAILDNS_STATE_PASSWORD", &pg.password)
                .env("MAILDNS_TEST_CLOCK_FILE", &clock.path)
                .env("MAILDNS_LOG", "info")
                .command()
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            Replica {
                id: id.to_string(),
                child,
                log,
            }
        })
        .collect();
    let reader = crate::pg_state::connect(&pg, &url, "test-reader", Duration::from_secs(5));
    let sql = Sql::connect(&pg, &url);
    let count = |q: &str| -> usize { sql.count(q) };

    // 1. Every domain gets its first key, active.
    drive(
        &sql,
        &mut clock,
        &replicas,
        "first keys",
        TimeDelta::hours(1),
        || {},
        || count("SELECT count(*) FROM keys WHERE status = 'active'") == DOMAINS,
    );
    let first = keys(&reader);
    for (d, ks) in &first {
        assert_eq!(ks.len(), 1, "{d}: {ks:?}");
    }

    // 2. A month later every domain rotates; r2 is killed with SIGKILL in
    //    the middle of its work (while it holds a domain's lease).
    clock.advance(TimeDelta::days(30));
    let rotation_start = clock.now;
    let killed: std::cell::RefCell<Option<(DateTime<Utc>, Vec<String>)>> = Default::default();
    let victim_pid = nix::unistd::Pid::from_raw(replicas[1].child.id() as i32);
    drive(
        &sql,
        &mut clock,
        &replicas,
        "rotation",
        TimeDelta::hours(1),
        || {
            if killed.borrow().is_some() {
                return;
            }
            let started = count(&format!(
                "SELECT count(*) FROM keys WHERE created_at >= '{}'",
                rotation_start.to_rfc3339()
            ));
            if started < DOMAINS / 5 {
                return;
            }
            // Freeze r2, and kill it only while it holds a domain's lease
            // (else let it go on and try again).
            use nix::sys::signal::{Signal, kill};
            kill(victim_pid, Signal::SIGSTOP).unwrap();
            let held =
                sql.strings("SELECT domain FROM leases WHERE holder = 'r2' AND NOT released");
            if held.is_empty() {
                kill(victim_pid, Signal::SIGCONT).unwrap();
                return;
            }
            kill(victim_pid, Signal::SIGKILL).unwrap();
            let at = Utc::now();
            println!("killed r2 at {at} holding {held:?}");
            *killed.borrow_mut() = Some((at, held));
        },
        || {
            killed.borrow().is_some()
                && count("SELECT count(*) FROM keys WHERE status = 'retiring'") == DOMAINS
                && count("SELECT count(*) FROM keys WHERE status = 'active'") == DOMAINS
        },
    );
    let (killed_at, held) = killed.into_inner().expect("r2 was killed");
    let status = replicas[1].child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // 3. After the overlap the old keys are withdrawn and destroyed.
    clock.advance(TimeDelta::days(15));
    drive(
        &sql,
        &mut clock,
        &replicas,
        "retirement",
        TimeDelta::hours(1),
        || {},
        || count("SELECT count(*) FROM keys WHERE status = 'destroyed'") == DOMAINS,
    );
    for i in [0, 2] {
        let pid = nix::unistd::Pid::from_raw(replicas[i].child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    for i in [0, 2] {
        let r = &mut replicas[i];
        let status = r.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}", tail(&r.log(), 40));
    }

    // Every domain rotated exactly once: its first key destroyed, one new key
    // active, generated once.
    let last = keys(&reader);
    for (d, ks) in &last {
        assert_eq!(ks.len(), 2, "{d}: {ks:?}");
        assert_eq!(ks[0].0, first[d][0].0, "{d}");
        assert_eq!(ks[0].1, KeyStatus::Destroyed, "{d}: {ks:?}");
        assert_eq!(ks[1].1, KeyStatus::Active, "{d}: {ks:?}");
        assert!(ks[1].2 >= rotation_start, "{d}: {ks:?}");
        assert_ne!(ks[0].0, ks[1].0, "{d}");
    }
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = reader.events(None, after, 5000).unwrap();
        let Some(l) = page.last() else { break };
        after = l.id;
        events.extend(page);
    }
    let mut by_domain: BTreeMap<String, Vec<&maildns::rotation::StoredEvent>> = BTreeMap::new();
    for e in &events {
        by_domain
            .entry(e.event.domain.to_string())
            .or_default()
            .push(e);
    }
    assert_eq!(by_domain.len(), DOMAINS);
    let mut replicas_seen = BTreeSet::new();
    let mut takeovers = Vec::new();
    for (d, evs) in &by_domain {
        let generated = evs.iter().filter(|e| e.event.what == "generated").count();
        assert_eq!(generated, 2, "{d}: {:#?}", evs);
        // Who did what: every event names its replica and lease epoch.
        let mut epochs: BTreeMap<i64, (String, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        let mut last_epoch = 0;
        for e in evs {
            let replica = e.replica.clone().unwrap_or_else(|| panic!("{d}: {e:?}"));
            let epoch = e.lease.unwrap_or_else(|| panic!("{d}: no lease: {e:?}"));
            let at = e.recorded_at.unwrap();
            replicas_seen.insert(replica.clone());
            assert!(epoch >= last_epoch, "{d}: epochs go back: {evs:#?}");
            last_epoch = epoch;
            let entry = epochs.entry(epoch).or_insert((replica.clone(), at, at));
            assert_eq!(
                entry.0, replica,
                "{d}: two replicas under one lease: {evs:#?}"
            );
            entry.1 = entry.1.min(at);
            entry.2 = entry.2.max(at);
            if e.event.what == "lease_taken_over" {
                takeovers.push((d.clone(), e.event.detail.clone()));
            }
            if replica == "r2" {
                assert!(
                    at <= killed_at + TimeDelta::milliseconds(500),
                    "{d}: r2 after its death: {e:?}"
                );
            }
        }
        // No step on two replicas at once: each lease's events end before the
        // next lease's begin.
        let spans: Vec<_> = epochs.values().collect();
        for w in spans.windows(2) {
            assert!(
                w[0].2 <= w[1].1,
                "{d}: overlapping work of {} and {}: {evs:#?}",
                w[0].0,
                w[1].0
            );
        }
    }
    assert_eq!(
        replicas_seen,
        ["r1", "r2", "r3"].iter().map(|s| s.to_string()).collect(),
    );
    // The work r2 held when it died was taken over after its lease expired.
    for d in &held {
        assert!(
            takeovers
                .iter()
                .any(|(td, detail)| td == d && detail.contains("from replica r2")),
            "{d} held by r2 was not taken over: {takeovers:?}"
        );
    }
    assert!(
        takeovers
            .iter()
            .all(|(_, detail)| detail.contains("from replica r2")),
        "{takeovers:?}"
    );

    // The DNS serves the new keys and no longer the old ones.
    rt.block_on(async {
        let q = Querier::new(QueryOptions::default());
        for i in [0, 57, 123, DOMAINS - 1] {
            let d = domain(i);
            let (old, new) = (&last[&d][0].0, &last[&d][1].0);
            for (sel, want) in [(old, 0), (new, 1)] {
                let name = Fqdn::parse(&format!("{sel}._domainkey.{d}")).unwrap();
                let answer = q.txt(pdns.dns, &name, false).await.unwrap();
                assert_eq!(answer.records.len(), want, "{name}");
            }
        }
    });
    println!(
        "{} events; takeovers: {takeovers:?}; victim log tail:\n{}",
        events.len(),
        tail(&replicas[1].log(), 5)
    );
}

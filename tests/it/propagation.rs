//! The propagation watcher against real PowerDNS and BIND servers on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use maildns::propagation::{
    Backoff, Check, Clock, DiscoveryOptions, Nameserver, Progress, Querier, QueryError,
    QueryOptions, RecursiveCheck, ServerError, ServerStatus, Upstream, WatchOptions, Watcher,
    discover,
};
use maildns_providers::{Fqdn, Split, TxtRecord};
use maildns_testkit::bind::BindOptions;
use maildns_testkit::{Bind, PowerDns, random_label};

struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn fast(timeout_ms: u64) -> WatchOptions {
    WatchOptions {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        timeout: Duration::from_millis(timeout_ms),
        recursive: None,
    }
}

fn querier() -> Querier {
    Querier::new(QueryOptions {
        timeout: Duration::from_millis(500),
        ..QueryOptions::default()
    })
}

fn watcher(timeout_ms: u64) -> Watcher {
    Watcher::new(querier(), fast(timeout_ms)).with_clock(Arc::new(FixedClock(t0())))
}

fn zone() -> String {
    format!("z{}.test", random_label(10))
}

fn name(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

fn servers(list: &[&PowerDns]) -> Vec<Nameserver> {
    list.iter().map(|p| Nameserver::from_addr(p.dns)).collect()
}

/// Replaces the TXT set at `owner` through the PowerDNS API (empty = delete).
async fn set_txt(pdns: &PowerDns, zone: &str, owner: &str, ttl: u32, records: &[TxtRecord]) {
    let changetype = if records.is_empty() {
        "DELETE"
    } else {
        "REPLACE"
    };
    let body = serde_json::json!({"rrsets": [{
        "name": format!("{owner}."), "type": "TXT", "ttl": ttl, "changetype": changetype,
        "records": records.iter().map(|r| serde_json::json!({"content": r.to_presentation(), "disabled": false})).collect::<Vec<_>>(),
    }]});
    let resp = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "PATCH {owner}: {status} {}",
        resp.text().await.unwrap_or_default()
    );
}

/// A DKIM-like value the size of a 4096-bit key record (736-char p=).
fn dkim_value(fill: char) -> String {
    format!("v=DKIM1; k=rsa; p={}", fill.to_string().repeat(736))
}

fn dkim(fill: char) -> TxtRecord {
    TxtRecord::split(dkim_value(fill).as_bytes(), Split::Before(b"p="))
}

#[tokio::test]
async fn reports_the_laggard_then_passes_when_both_serve() {
    let (a, b) = (PowerDns::start(), PowerDns::start());
    let z = zone();
    a.create_zone(&z).await;
    b.create_zone(&z).await;
    let owner = format!("_dmarc.{z}");
    let want = TxtRecord::from_value("v=DMARC1; p=quarantine");
    let foreign = TxtRecord::from_value("something-else=1");
    set_txt(&a, &z, &owner, 300, &[foreign.clone(), want.clone()]).await;
    set_txt(&b, &z, &owner, 300, std::slice::from_ref(&foreign)).await;

    let checks = [Check::present(name(&owner), want.clone())];
    let w = watcher(300);
    let report = w.watch(&checks, &servers(&[&a, &b])).await;
    assert!(!report.propagated);
    assert!(report.rounds >= 2, "it kept polling until the timeout");
    assert_eq!(report.safe_after, None);
    let per = &report.per_check[0].per_server;
    assert_eq!(per[0].server.addr, a.dns);
    assert!(per[0].passed, "{:?}", per[0]);
    assert_eq!(per[0].same_split, Some(true));
    assert_eq!(per[1].server.addr, b.dns);
    assert!(!per[1].passed);
    assert_eq!(
        per[1].serving,
        Ok(vec![foreign.clone()]),
        "what the laggard serves"
    );

    set_txt(&b, &z, &owner, 300, &[want.clone(), foreign]).await;
    let report = w.watch(&checks, &servers(&[&a, &b])).await;
    assert!(report.propagated, "{report:?}");
    assert!(report.per_check[0].per_server.iter().all(|s| s.passed));
}

#[tokio::test]
async fn a_dead_server_is_reported_and_the_watch_times_out() {
    let a = PowerDns::start();
    let mut b = PowerDns::start();
    let z = zone();
    a.create_zone(&z).await;
    b.create_zone(&z).await;
    let owner = z.clone();
    let spf = TxtRecord::from_value("v=spf1 -all");
    set_txt(&a, &z, &owner, 300, std::slice::from_ref(&spf)).await;
    set_txt(&b, &z, &owner, 300, std::slice::from_ref(&spf)).await;
    b.kill();

    let checks = [Check::present(name(&owner), spf)];
    let report = watcher(400).watch(&checks, &servers(&[&a, &b])).await;
    assert!(!report.propagated);
    let per = &report.per_check[0].per_server;
    assert!(per[0].passed);
    assert!(!per[1].passed);
    match &per[1].serving {
        Err(ServerError::Query(QueryError::Timeout { server, .. }))
        | Err(ServerError::Query(QueryError::Failed { server, .. })) => {
            assert_eq!(*server, b.dns)
        }
        other => panic!("expected a query error naming {}, got {other:?}", b.dns),
    }
    let text = per[1].serving.as_ref().unwrap_err().to_string();
    assert!(text.contains(&b.dns.to_string()), "{text}");
}

#[tokio::test]
async fn a_large_answer_uses_tcp_and_long_keys_compare_exactly() {
    let (a, b) = (PowerDns::start(), PowerDns::start());
    let z = zone();
    a.create_zone(&z).await;
    b.create_zone(&z).await;
    let owner = format!("202611._domainkey.{z}");
    // Two 4096-bit-size records: about 1,560 bytes of answer, over 1232.
    let records = [dkim('A'), dkim('B')];
    set_txt(&a, &z, &owner, 300, &records).await;
    set_txt(&b, &z, &owner, 300, &records).await;

    let w = watcher(1000);
    let checks = [Check::present(name(&owner), dkim('B'))];
    let report = w.check(&checks, &servers(&[&a, &b]), true).await;
    for s in &report[0].per_server {
        assert!(s.tcp, "answer over 1232 bytes must come over TCP: {s:?}");
        assert!(s.passed);
        assert_eq!(s.same_split, Some(true));
        assert_eq!(s.serving.as_ref().unwrap().len(), 2);
    }

    // Same joined value, another split: passes, split reported as different.
    let greedy = TxtRecord::from_value(dkim_value('B'));
    assert_ne!(greedy, dkim('B'));
    let report = w
        .check(
            &[Check::present(name(&owner), greedy)],
            &servers(&[&a]),
            true,
        )
        .await;
    assert!(report[0].passed);
    assert_eq!(report[0].per_server[0].same_split, Some(false));

    // One byte different at the end of the key: fails.
    let mut off = dkim_value('B');
    off.pop();
    off.push('C');
    let report = w
        .check(
            &[Check::present(name(&owner), TxtRecord::from_value(off))],
            &servers(&[&a]),
            true,
        )
        .await;
    assert!(!report[0].passed);
}

/// Sends each finished round number to the test.
struct Rounds(Mutex<tokio::sync::mpsc::UnboundedSender<u32>>);

impl Progress for Rounds {
    fn update(&self, _: &Check, _: &Nameserver, _: &ServerStatus) {}
    fn round(&self, round: u32, _: usize, _: usize, _: Option<Duration>) {
        let _ = self.0.lock().unwrap().send(round);
    }
}

#[tokio::test]
async fn a_removal_waits_until_gone_and_holds_for_the_old_ttl() {
    let (a, b) = (PowerDns::start(), PowerDns::start());
    let z = zone();
    a.create_zone(&z).await;
    b.create_zone(&z).await;
    let owner = format!("old._domainkey.{z}");
    let old = dkim('O');
    set_txt(&a, &z, &owner, 600, std::slice::from_ref(&old)).await;
    set_txt(&b, &z, &owner, 600, std::slice::from_ref(&old)).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let w = watcher(10_000).with_progress(Arc::new(Rounds(Mutex::new(tx))));
    let checks = vec![Check::absent(name(&owner), old)];
    let list = servers(&[&a, &b]);
    let watch = tokio::spawn({
        let w = w.clone();
        let checks = checks.clone();
        async move { w.watch(&checks, &list).await }
    });
    assert_eq!(
        rx.recv().await,
        Some(1),
        "first round done, value still served"
    );
    set_txt(&a, &z, &owner, 600, &[]).await;
    set_txt(&b, &z, &owner, 600, &[]).await;
    let report = watch.await.unwrap();
    assert!(report.propagated, "{report:?}");
    assert!(report.rounds >= 2);
    // No previous TTL given: the TTL observed while the value was served.
    assert_eq!(report.per_check[0].hold_secs, Some(600));
    assert_eq!(report.passed_at, Some(t0()));
    assert_eq!(
        report.safe_after,
        Some(t0() + chrono::Duration::seconds(600))
    );
}

#[tokio::test]
async fn safe_after_uses_the_served_soa_for_new_names_and_the_previous_ttl_for_updates() {
    for (soa_ttl, soa_minimum) in [(3600u32, 120u32), (90, 600)] {
        let (a, b) = (PowerDns::start(), PowerDns::start());
        let z = zone();
        a.create_zone_with(&z, soa_ttl, soa_minimum).await;
        b.create_zone_with(&z, soa_ttl, soa_minimum).await;
        let owner = format!("new._domainkey.{z}");
        let rec = dkim('N');
        set_txt(&a, &z, &owner, 300, std::slice::from_ref(&rec)).await;
        set_txt(&b, &z, &owner, 300, std::slice::from_ref(&rec)).await;
        let list = servers(&[&a, &b]);
        let w = watcher(2000);

        let report = w.watch(&[Check::present(name(&owner), rec)], &list).await;
        assert!(report.propagated);
        let negative = soa_ttl.min(soa_minimum);
        assert_eq!(report.per_check[0].hold_secs, Some(negative));
        assert_eq!(
            report.safe_after,
            Some(t0() + chrono::Duration::seconds(i64::from(negative)))
        );

        // An update of an existing record: the previous TTL counts.
        let spf_old = TxtRecord::from_value("v=spf1 mx -all");
        let spf_new = TxtRecord::from_value("v=spf1 mx a -all");
        set_txt(&a, &z, &z, 1800, std::slice::from_ref(&spf_old)).await;
        set_txt(&b, &z, &z, 1800, &[spf_old]).await;
        set_txt(&a, &z, &z, 60, std::slice::from_ref(&spf_new)).await;
        set_txt(&b, &z, &z, 60, std::slice::from_ref(&spf_new)).await;
        let check = Check::present(name(&z), spf_new).with_previous_ttl(1800);
        let report = w.watch(&[check], &list).await;
        assert!(report.propagated);
        assert_eq!(
            report.safe_after,
            Some(t0() + chrono::Duration::seconds(1800))
        );
    }
}

#[tokio::test]
async fn a_gating_resolver_must_pass_too() {
    let (a, b) = (PowerDns::start(), PowerDns::start());
    let z = zone();
    a.create_zone(&z).await;
    b.create_zone(&z).await;
    let owner = format!("_dmarc.{z}");
    let want = TxtRecord::from_value("v=DMARC1; p=reject");
    set_txt(&a, &z, &owner, 300, std::slice::from_ref(&want)).await;
    let checks = [Check::present(name(&owner), want)];

    let mut options = fast(200);
    options.recursive = Some(RecursiveCheck {
        resolvers: vec![b.dns],
        gate: false,
    });
    let w = Watcher::new(querier(), options.clone());
    let report = w.watch(&checks, &servers(&[&a])).await;
    assert!(report.propagated, "a reporting-only resolver does not gate");
    assert!(!report.recursive[0].passed);
    assert_eq!(report.recursive[0].per_server[0].server.addr, b.dns);

    options.recursive = Some(RecursiveCheck {
        resolvers: vec![b.dns],
        gate: true,
    });
    let w = Watcher::new(querier(), options);
    let report = w.watch(&checks, &servers(&[&a])).await;
    assert!(!report.propagated);
}

#[tokio::test]
async fn discovery_walks_soa_ns_and_addresses_and_follows_cnames() {
    let pdns = PowerDns::start();
    let z = zone();
    pdns.create_zone(&z).await;
    let body = serde_json::json!({"rrsets": [{
        "name": format!("alias.{z}."), "type": "CNAME", "ttl": 300, "changetype": "REPLACE",
        "records": [{"content": format!("s1._domainkey.{z}."), "disabled": false}],
    }]});
    let resp = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{z}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let q = querier();
    let options = DiscoveryOptions {
        upstream: Upstream::Servers(vec![pdns.dns]),
        nameserver_port: pdns.dns.port(),
        ..DiscoveryOptions::default()
    };
    let found = discover(&q, &options, &name(&format!("_dmarc.{z}")))
        .await
        .unwrap();
    assert_eq!(found.zone, name(&z));
    assert_eq!(found.target, name(&format!("_dmarc.{z}")));
    assert_eq!(found.ns_names, vec![format!("ns1.{z}")]);
    assert_eq!(
        found.nameservers,
        vec![Nameserver {
            name: Some(format!("ns1.{z}")),
            addr: pdns.dns
        }]
    );

    let found = discover(&q, &options, &name(&format!("alias.{z}")))
        .await
        .unwrap();
    assert_eq!(found.target, name(&format!("s1._domainkey.{z}")));
    assert_eq!(found.zone, name(&z));

    let outside = discover(&q, &options, &name("elsewhere.invalid")).await;
    assert!(outside.is_err(), "{outside:?}");
}

#[tokio::test]
async fn bind_serves_a_split_key_that_passes_exactly() {
    let z = zone();
    let rec = dkim('K');
    let mut opts = BindOptions::new(&z);
    opts.extra_records = vec![format!("sel._domainkey IN TXT {}", rec.to_presentation())];
    let bind = Bind::start_with(opts);
    let w = watcher(1000);
    let list = vec![Nameserver::from_addr(bind.dns)];
    let report = w
        .watch(
            &[Check::present(name(&format!("sel._domainkey.{z}")), rec)],
            &list,
        )
        .await;
    assert!(report.propagated, "{report:?}");
    let s = &report.per_check[0].per_server[0];
    assert_eq!(s.same_split, Some(true));
    assert!(!s.tcp, "one 4096-bit record fits 1232 bytes");
    // New name, no previous TTL: BIND's SOA (TTL 3600, minimum 300) gives 300.
    assert_eq!(report.per_check[0].hold_secs, Some(300));

    let report = w
        .check(
            &[Check::absent(
                name(&format!("gone.{z}")),
                TxtRecord::from_value("x"),
            )],
            &list,
            true,
        )
        .await;
    assert!(report[0].passed, "NXDOMAIN satisfies Absent");
}

/// Entries in PowerDNS's packet cache, from `pdns_control` on its socket.
fn packet_cache_entries(pdns: &PowerDns) -> u64 {
    let dir = pdns.dir();
    let out = std::process::Command::new("pdns_control")
        .arg(format!("--socket-dir={}", dir.display()))
        .arg(format!("--config-dir={}", dir.display()))
        .args(["show", "packetcache-size"])
        .output()
        .expect("pdns_control (package pdns-server)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The check publish makes right after a write (`txt_once`) gets the served
/// set and leaves nothing in the server's packet cache (every later write to
/// the zone purges the zone from it); an ordinary query is cached there.
#[tokio::test]
async fn a_check_after_a_write_is_answered_and_not_cached() {
    let pdns = PowerDns::start_caching();
    let z = zone();
    pdns.create_zone(&z).await;
    let spf = TxtRecord::from_value("v=spf1 -all");
    set_txt(&pdns, &z, &z, 300, std::slice::from_ref(&spf)).await;
    let q = querier();

    let once = q.txt_once(pdns.dns, &name(&z)).await.unwrap();
    assert!(once.authoritative);
    assert_eq!(once.records, vec![spf.clone()]);
    assert_eq!(packet_cache_entries(&pdns), 0);

    let cached = q.txt(pdns.dns, &name(&z), false).await.unwrap();
    assert_eq!(cached.records, vec![spf]);
    assert_eq!(packet_cache_entries(&pdns), 1);
}

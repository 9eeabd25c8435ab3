//! The PowerDNS adapter against a real PowerDNS Authoritative on loopback:
//! the conformance suite (API and DNS), error mapping, and retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use maildns_providers::hosts::powerdns::{Config, PowerDns as Adapter};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Fqdn, Provider, Secret, TxtChange, TxtRecord, TxtSet, Zone};
use maildns_testkit::conformance::{self, Options};
use maildns_testkit::faultproxy::{FaultProxy, Rewrite};
use maildns_testkit::{PowerDns, random_label};

fn adapter(pdns: &PowerDns, key: &str, policy: RetryPolicy) -> Adapter {
    Adapter::new(
        Config {
            base_url: pdns.api_url.clone(),
            server_id: "localhost".into(),
            api_key: Secret::new(key),
        },
        policy,
    )
    .expect("valid config")
}

async fn with_zone(pdns: &PowerDns) -> (Fqdn, String) {
    let zone = format!("{}.test", random_label(10));
    pdns.create_zone(&zone).await;
    (Fqdn::parse(&zone).unwrap(), zone)
}

fn name(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

#[tokio::test]
async fn conformance_suite_passes_over_api_and_dns() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let zone = p.find_zone(&zone_name).await.expect("zone found");
    assert_eq!(zone.name, zone_name);
    assert_eq!(zone.id, zone_name.to_dotted());
    assert_eq!(p.zone_for(&zone_name), Some(zone.clone()));
    let opts = Options {
        dns: Some(pdns.dns),
        refused_name: Some(cname_at(&pdns, &zone_name, "refused").await),
        // PowerDNS's API has no precondition: the apply is atomic, not CAS.
        unguarded_apply: true,
        ..Options::default()
    };
    conformance::run_with(&p, &zone, &opts).await;
    // The same zone can be used again (unique names per run).
    conformance::run_with(&p, &zone, &Options { dns: None, ..opts }).await;
}

/// Puts a CNAME at `label.<zone>` through the API: PowerDNS then refuses a TXT
/// set there (422 "Conflicts with pre-existing RRset").
async fn cname_at(pdns: &PowerDns, zone: &Fqdn, label: &str) -> Fqdn {
    let owner = zone.child(label).unwrap();
    let resp = reqwest::Client::new()
        .patch(format!(
            "{}/servers/localhost/zones/{}",
            pdns.api_url,
            zone.to_dotted()
        ))
        .header("X-API-Key", &pdns.api_key)
        .json(
            &serde_json::json!({"rrsets": [{"name": owner.to_dotted(), "type": "CNAME",
            "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": format!("target.{}", zone.to_dotted()), "disabled": false}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    owner
}

/// The methods and paths of the requests a proxy passed to PowerDNS.
fn counting_proxy(pdns: &PowerDns) -> (FaultProxy, String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let rewrite: Rewrite = Arc::new(move |method: &str, path: &str, body: &[u8]| {
        log.lock().unwrap().push(format!("{method} {path}"));
        body.to_vec()
    });
    let (proxy, url) = FaultProxy::rewriting_url(&pdns.api_url, rewrite);
    (proxy, url, seen)
}

#[tokio::test]
async fn a_change_set_of_three_names_is_one_get_and_one_patch() {
    let pdns = PowerDns::start();
    let (zone_name, zone_text) = with_zone(&pdns).await;
    let (proxy, url, seen) = counting_proxy(&pdns);
    let p = Adapter::new(
        Config {
            base_url: url,
            server_id: "localhost".into(),
            api_key: Secret::new(&pdns.api_key),
        },
        RetryPolicy::fast(),
    )
    .unwrap();
    // The zone is named without a request.
    let zone = p.zone_for(&zone_name).unwrap();
    let names = [
        zone_name.clone(),
        name(&format!("_dmarc.{zone_text}")),
        name(&format!("s1._domainkey.{zone_text}")),
    ];
    let values = [
        "v=spf1 ip4:192.0.2.1 -all",
        "v=DMARC1; p=reject",
        "v=DKIM1; k=rsa; p=AAAA",
    ];
    let read = p.read_sets(&zone, &names).await.unwrap();
    assert_eq!(read.len(), 3);
    assert!(read.values().all(|o| o.set.is_none()), "{read:?}");
    let changes: Vec<TxtChange> = names
        .iter()
        .zip(values)
        .map(|(n, v)| TxtChange {
            name: n.clone(),
            old: read[n].clone(),
            new: Some(TxtSet {
                ttl: 300,
                records: vec![TxtRecord::from_value(v)],
            }),
        })
        .collect();
    p.apply(&zone, &changes).await.unwrap();
    let path = format!("/api/v1/servers/localhost/zones/{zone_text}.");
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("GET {path}"), format!("PATCH {path}")]
    );
    assert_eq!(proxy.stats().requests, 2);
    for (n, v) in names.iter().zip(values) {
        let served = conformance::dig_txt(pdns.dns, n).await.unwrap();
        assert_eq!(served, [TxtRecord::from_value(v)], "{n}");
    }
    // A change run: one read, one PATCH replacing one set and deleting another.
    seen.lock().unwrap().clear();
    let read = p.read_sets(&zone, &names).await.unwrap();
    let changes = vec![
        TxtChange {
            name: names[0].clone(),
            old: read[&names[0]].clone(),
            new: Some(TxtSet {
                ttl: 600,
                records: vec![TxtRecord::from_value("v=spf1 -all")],
            }),
        },
        TxtChange {
            name: names[1].clone(),
            old: read[&names[1]].clone(),
            new: None,
        },
    ];
    p.apply(&zone, &changes).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("GET {path}"), format!("PATCH {path}")]
    );
    let now = p.read_sets(&zone, &names).await.unwrap();
    assert_eq!(
        now[&names[0]]
            .set
            .as_ref()
            .map(|s| (s.ttl, s.records[0].value())),
        Some((600, b"v=spf1 -all".to_vec()))
    );
    assert_eq!(now[&names[1]].set, None);
    assert_eq!(now[&names[2]], read[&names[2]]);
    // Nothing to change: the read is the only request.
    seen.lock().unwrap().clear();
    p.apply(&zone, &[]).await.unwrap();
    assert!(seen.lock().unwrap().is_empty());
    // One name only: the read asks the server to filter (4.8+), still one GET.
    seen.lock().unwrap().clear();
    let one = p.read_sets(&zone, &names[2..]).await.unwrap();
    assert_eq!(one[&names[2]], read[&names[2]]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("GET {path}?rrset_name=")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_refused_rrset_fails_the_whole_patch_and_is_named() {
    let pdns = PowerDns::start();
    let (zone_name, zone_text) = with_zone(&pdns).await;
    let refused = cname_at(&pdns, &zone_name, "alias").await;
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let zone = p.zone_for(&zone_name).unwrap();
    let good = name(&format!("_dmarc.{zone_text}"));
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("v=DMARC1; p=none")],
    };
    let changes: Vec<TxtChange> = [&good, &refused]
        .into_iter()
        .map(|n| TxtChange {
            name: n.clone(),
            old: Default::default(),
            new: Some(set.clone()),
        })
        .collect();
    let e = p.apply(&zone, &changes).await.unwrap_err();
    assert!(e.written.is_empty(), "{e:?}");
    assert_eq!(e.error.kind, ErrorKind::Invalid, "{e}");
    assert_eq!(e.error.name.as_deref(), Some(refused.as_str()), "{e}");
    assert_eq!(p.read_txt(&zone, &good).await.unwrap(), None);
    // Two changes at one name are refused before sending.
    let twice = [changes[0].clone(), changes[0].clone()];
    let e = p.apply(&zone, &twice).await.unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Invalid);
    assert!(e.error.message.contains("twice"), "{e}");
}

/// A provider that drops the last string of every record it reads: the suite must notice.
struct Truncating(Adapter);

#[async_trait::async_trait]
impl Provider for Truncating {
    fn kind(&self) -> &'static str {
        "truncating"
    }
    fn profile(&self) -> &maildns_providers::Profile {
        self.0.profile()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, maildns_providers::Error> {
        self.0.find_zone(name).await
    }
    async fn read_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
    ) -> Result<Option<TxtSet>, maildns_providers::Error> {
        Ok(self.0.read_txt(zone, name).await?.map(|mut s| {
            s.records = s
                .records
                .into_iter()
                .map(|r| {
                    let mut v = r.strings().to_vec();
                    if v.len() > 1 {
                        v.pop();
                    }
                    TxtRecord::from_strings(v).unwrap_or(r)
                })
                .collect();
            s
        }))
    }
    async fn replace_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
    ) -> Result<(), maildns_providers::Error> {
        self.0.replace_txt(zone, name, set).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), maildns_providers::Error> {
        self.0.delete_txt(zone, name).await
    }
}

#[tokio::test]
async fn conformance_suite_reports_a_broken_provider() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let p = Truncating(adapter(&pdns, &pdns.api_key, RetryPolicy::fast()));
    let zone = p.find_zone(&zone_name).await.unwrap();
    let failures = conformance::check(&p, &zone, &Options::default()).await;
    let cases: Vec<&str> = failures.iter().map(|f| f.case.as_str()).collect();
    assert!(cases.contains(&"matrix 256 bytes"), "{cases:?}");
    assert!(!cases.contains(&"matrix 255 bytes"), "{cases:?}");
    let f = failures
        .iter()
        .find(|f| f.case == "matrix 256 bytes")
        .unwrap();
    assert!(
        f.detail
            .contains("expected 2 string(s) of 255+1 bytes, got 1 string(s) of 255 bytes"),
        "{f}"
    );
}

#[tokio::test]
async fn long_unsplit_string_from_another_tool_reads_as_served() {
    let pdns = PowerDns::start();
    let (zone_name, zone) = with_zone(&pdns).await;
    let value = "k".repeat(600);
    // Another tool writes one long quoted string; PowerDNS stores it unsplit.
    let resp = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(
            &serde_json::json!({"rrsets": [{"name": format!("long.{zone}."), "type": "TXT",
            "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": format!("\"{value}\""), "disabled": false}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let zone = p.find_zone(&zone_name).await.unwrap();
    let n = name(&format!("long.{zone_name}"));
    let set = p.read_txt(&zone, &n).await.unwrap().expect("set present");
    let served = conformance::dig_txt(pdns.dns, &n).await.unwrap();
    assert_eq!(set.records, served);
    let lens: Vec<usize> = set.records[0].strings().iter().map(|s| s.len()).collect();
    assert_eq!(lens, [255, 255, 90]);
    assert_eq!(set.records[0].value(), value.as_bytes());
}

#[tokio::test]
async fn wrong_api_key_is_an_auth_error_without_the_key() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let wrong = format!("wrong-{}", random_label(20));
    let p = adapter(&pdns, &wrong, RetryPolicy::fast());
    let e = p.find_zone(&zone_name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert_eq!(e.status, Some(401));
    let text = e.to_string();
    assert!(text.starts_with("powerdns: find zone"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(
        !text.contains(&wrong) && !text.contains(&pdns.api_key),
        "{text}"
    );
    assert!(!format!("{e:?}").contains(&wrong));
    // Writes too.
    let zone = Zone {
        name: zone_name.clone(),
        id: zone_name.to_dotted(),
    };
    let e = p
        .replace_txt(
            &zone,
            &zone_name,
            &TxtSet {
                ttl: 300,
                records: vec![TxtRecord::from_value(b"x")],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains(&wrong));
}

#[tokio::test]
async fn unknown_zone_is_zone_not_found() {
    let pdns = PowerDns::start();
    let (_, _) = with_zone(&pdns).await;
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let e = p
        .find_zone(&name("_dmarc.nowhere.invalid"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
    assert!(e.message.contains("_dmarc.nowhere.invalid."), "{e}");
    assert!(e.message.contains("nowhere.invalid."), "{e}");
    // A zone id the server does not know, on read and write.
    let ghost = Zone {
        name: name("ghost.test"),
        id: "ghost.test.".into(),
    };
    let e = p.read_txt(&ghost, &name("ghost.test")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
    let e = p
        .replace_txt(
            &ghost,
            &name("ghost.test"),
            &TxtSet {
                ttl: 300,
                records: vec![TxtRecord::from_value(b"x")],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
}

#[tokio::test]
async fn name_outside_the_zone_is_refused_before_sending() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let zone = p.find_zone(&zone_name).await.unwrap();
    let e = p.delete_txt(&zone, &name("example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.status, None, "nothing was sent");
}

#[tokio::test]
async fn killed_server_is_a_network_error_after_retries() {
    let mut pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let zone = p.find_zone(&zone_name).await.unwrap();
    pdns.kill();
    let e = p.read_txt(&zone, &zone_name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
    assert!(e.kind.is_transient());
    assert!(!e.to_string().contains(&pdns.api_key));
}

#[tokio::test]
async fn concurrent_writes_survive_database_is_locked() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    // Many quick attempts: gsqlite3 answers 500 "database is locked" under
    // concurrent writes, which must be retried until it goes through.
    let policy = RetryPolicy {
        max_attempts: 30,
        max_elapsed: Duration::from_secs(60),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        request_timeout: Duration::from_secs(10),
        pace: false,
    };
    let p = Arc::new(adapter(&pdns, &pdns.api_key, policy));
    let zone = p.find_zone(&zone_name).await.unwrap();
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (p, zone) = (p.clone(), zone.clone());
            let n = zone_name.child(&format!("w{i}")).unwrap();
            tasks.push(tokio::spawn(async move {
                let set = TxtSet {
                    ttl: 300,
                    records: vec![TxtRecord::from_value(format!("round {round} writer {i}"))],
                };
                p.replace_txt(&zone, &n, &set).await.map(|_| (n, set))
            }));
        }
        for t in tasks {
            let (n, set) = t
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("write failed: {e}"));
            assert_eq!(p.read_txt(&zone, &n).await.unwrap(), Some(set));
        }
    }
}

/// Eight zones' change sets (three names each) for `round`, one per zone.
fn round_changes(zones: &[Fqdn], round: usize) -> Vec<(Zone, Vec<TxtChange>)> {
    zones
        .iter()
        .map(|z| {
            let zone = Zone {
                name: z.clone(),
                id: z.to_dotted(),
            };
            let changes = [
                z.clone(),
                z.child("_dmarc").unwrap(),
                z.child("s._domainkey").unwrap(),
            ]
            .into_iter()
            .map(|n| TxtChange {
                name: n,
                old: Default::default(),
                new: Some(TxtSet {
                    ttl: 300,
                    records: vec![TxtRecord::from_value(format!("round {round}"))],
                }),
            })
            .collect();
            (zone, changes)
        })
        .collect()
}

/// The values at a zone's three names, as read back.
async fn round_values(p: &Adapter, zone: &Zone, changes: &[TxtChange]) -> Vec<Option<Vec<u8>>> {
    let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
    let read = p.read_sets(zone, &names).await.unwrap();
    names
        .iter()
        .map(|n| read[n].set.as_ref().map(|s| s.records[0].value()))
        .collect()
}

#[tokio::test]
async fn a_change_set_refused_as_database_is_locked_writes_none_of_its_names() {
    let pdns = PowerDns::start();
    let mut zones = Vec::new();
    for _ in 0..8 {
        zones.push(with_zone(&pdns).await.0);
    }
    // One adapter per writer (as separate processes: no shared window) and
    // no retries, so gsqlite3's 500 "database is locked" reaches the caller.
    let once = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::fast()
    };
    let adapters: Vec<Arc<Adapter>> = (0..8)
        .map(|_| Arc::new(adapter(&pdns, &pdns.api_key, once)))
        .collect();
    let reader = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    let mut before: Vec<Vec<Option<Vec<u8>>>> = vec![vec![None; 3]; 8];
    let mut refused = 0;
    for round in 0..40 {
        let work = round_changes(&zones, round);
        let mut tasks = Vec::new();
        for (p, (zone, changes)) in adapters.iter().cloned().zip(work.clone()) {
            tasks.push(tokio::spawn(async move { p.apply(&zone, &changes).await }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        for (i, result) in results.into_iter().enumerate() {
            let (zone, changes) = &work[i];
            let now = round_values(&reader, zone, changes).await;
            match result {
                Ok(()) => {
                    let wanted = Some(format!("round {round}").into_bytes());
                    assert_eq!(now, vec![wanted; 3], "{}", zone.name);
                }
                Err(e) => {
                    assert_eq!(e.error.kind, ErrorKind::Server, "{e}");
                    assert!(e.written.is_empty(), "{e:?}");
                    assert_eq!(now, before[i], "{}: nothing of a refused PATCH", zone.name);
                    refused += 1;
                }
            }
            before[i] = now;
        }
        if refused >= 3 {
            break;
        }
    }
    assert!(
        refused >= 3,
        "PowerDNS refused {refused} concurrent PATCHes in 40 rounds"
    );
}

#[tokio::test]
async fn one_adapter_keeps_its_writes_in_flight_to_what_sqlite_sustains() {
    let pdns = PowerDns::start();
    let mut zones = Vec::new();
    for _ in 0..8 {
        zones.push(with_zone(&pdns).await.0);
    }
    let (_proxy, url, seen) = counting_proxy(&pdns);
    let p = Arc::new(
        Adapter::new(
            Config {
                base_url: url,
                server_id: "localhost".into(),
                api_key: Secret::new(&pdns.api_key),
            },
            RetryPolicy {
                max_attempts: 30,
                max_elapsed: Duration::from_secs(60),
                ..RetryPolicy::fast()
            },
        )
        .unwrap(),
    );
    // 8 tasks at once, 5 rounds: 40 change sets. The adapter's window starts
    // at one write in flight and halves on every 500, so at most a few PATCHes
    // are refused (8 adapters of their own get about half refused).
    for round in 0..5 {
        let mut tasks = Vec::new();
        for (zone, changes) in round_changes(&zones, round) {
            let p = p.clone();
            tasks.push(tokio::spawn(async move { p.apply(&zone, &changes).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    let patches = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("PATCH "))
        .count();
    assert!(
        (40..=48).contains(&patches),
        "{patches} PATCHes for 40 change sets"
    );
}

/// A provider whose reads return what was asked for while it writes something
/// else (the last string of each record dropped): only the DNS check can see it.
struct LyingWrites {
    inner: Adapter,
    asked: std::sync::Mutex<std::collections::HashMap<Fqdn, TxtSet>>,
}

#[async_trait::async_trait]
impl Provider for LyingWrites {
    fn kind(&self) -> &'static str {
        "lying"
    }
    fn profile(&self) -> &maildns_providers::Profile {
        self.inner.profile()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, maildns_providers::Error> {
        self.inner.find_zone(name).await
    }
    async fn read_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
    ) -> Result<Option<TxtSet>, maildns_providers::Error> {
        let asked = self.asked.lock().unwrap().get(name).cloned();
        match asked {
            Some(s) => Ok(Some(s)),
            None => self.inner.read_txt(zone, name).await,
        }
    }
    async fn replace_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
    ) -> Result<(), maildns_providers::Error> {
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        self.asked.lock().unwrap().insert(name.clone(), set.clone());
        let mut written = set.clone();
        for r in &mut written.records {
            let mut v = r.strings().to_vec();
            if v.len() > 1 {
                v.pop();
            }
            *r = TxtRecord::from_strings(v).unwrap_or(r.clone());
        }
        self.inner.replace_txt(zone, name, &written).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), maildns_providers::Error> {
        self.asked.lock().unwrap().remove(name);
        self.inner.delete_txt(zone, name).await
    }
}

#[tokio::test]
async fn conformance_suite_checks_what_dns_serves() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let p = LyingWrites {
        inner: adapter(&pdns, &pdns.api_key, RetryPolicy::fast()),
        asked: Default::default(),
    };
    let zone = p.find_zone(&zone_name).await.unwrap();
    let opts = Options {
        dns: Some(pdns.dns),
        dns_attempts: 1,
        ..Options::default()
    };
    let failures = conformance::check(&p, &zone, &opts).await;
    let f = failures
        .iter()
        .find(|f| f.case == "matrix 511 bytes")
        .unwrap_or_else(|| panic!("511 bytes not reported: {failures:?}"));
    assert!(f.detail.starts_with("served over DNS differs"), "{f}");
    assert!(
        f.detail
            .contains("255+255+1 bytes, got 2 string(s) of 255+255 bytes"),
        "{f}"
    );
    assert!(
        !failures.iter().any(|f| f.case == "matrix 255 bytes"),
        "{failures:?}"
    );
    assert!(
        !failures.iter().any(|f| f.detail.contains("API read back")),
        "{failures:?}"
    );
}

/// The adapter behind a stricter profile (printable ASCII only), either enforcing it
/// as the contract requires or forgetting to.
struct Strict {
    inner: Adapter,
    profile: maildns_providers::Profile,
    enforce: bool,
}

#[async_trait::async_trait]
impl Provider for Strict {
    fn kind(&self) -> &'static str {
        "strict"
    }
    fn profile(&self) -> &maildns_providers::Profile {
        &self.profile
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, maildns_providers::Error> {
        self.inner.find_zone(name).await
    }
    async fn read_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
    ) -> Result<Option<TxtSet>, maildns_providers::Error> {
        self.inner.read_txt(zone, name).await
    }
    async fn replace_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
    ) -> Result<(), maildns_providers::Error> {
        if self.enforce {
            for r in &set.records {
                self.profile.check(r).map_err(|l| {
                    maildns_providers::Error::new(
                        "strict",
                        maildns_providers::Operation::Replace,
                        Some(name),
                        ErrorKind::Limit(l),
                        "",
                    )
                })?;
            }
        }
        self.inner.replace_txt(zone, name, set).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), maildns_providers::Error> {
        self.inner.delete_txt(zone, name).await
    }
}

#[tokio::test]
async fn conformance_suite_expects_refusal_of_what_the_profile_excludes() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let profile = maildns_providers::Profile {
        printable_ascii_only: true,
        ..maildns_providers::hosts::powerdns::HOST.profile().unwrap()
    };
    let strict = |enforce| Strict {
        inner: adapter(&pdns, &pdns.api_key, RetryPolicy::fast()),
        profile: profile.clone(),
        enforce,
    };
    let zone = strict(true).find_zone(&zone_name).await.unwrap();
    let opts = Options {
        dns: Some(pdns.dns),
        ..Options::default()
    };
    let good = conformance::check(&strict(true), &zone, &opts).await;
    assert!(good.is_empty(), "{good:?}");
    let bad = conformance::check(&strict(false), &zone, &opts).await;
    let cases: Vec<&str> = bad.iter().map(|f| f.case.as_str()).collect();
    for c in [
        "awkward value 'utf8'",
        "awkward value 'control'",
        "awkward value 'high-bytes'",
    ] {
        assert!(cases.contains(&c), "{c} not reported: {cases:?}");
    }
    let f = bad
        .iter()
        .find(|f| f.case == "awkward value 'high-bytes'")
        .unwrap();
    assert!(
        f.detail.contains("profile refuses this value") && f.detail.contains("accepted it"),
        "{f}"
    );
    assert!(
        cases.contains(&"awkward value 'high-bytes' (refused: nothing written)"),
        "{cases:?}"
    );
    assert!(!cases.iter().any(|c| c.starts_with("matrix")), "{cases:?}");
}

/// Ways of getting change sets wrong, for checking that the suite notices.
#[derive(Clone, Copy, PartialEq)]
enum Broken {
    /// Writes one name at a time (re-reading each) but claims an atomic,
    /// compare-and-swap apply.
    ClaimsAtomic,
    /// Writes every set without looking at what is there now.
    Blind,
    /// Writes one name at a time but reports nothing written on failure.
    HidesWritten,
}

struct BrokenApply {
    inner: Adapter,
    broken: Broken,
}

#[async_trait::async_trait]
impl Provider for BrokenApply {
    fn kind(&self) -> &'static str {
        "broken-apply"
    }
    fn profile(&self) -> &maildns_providers::Profile {
        self.inner.profile()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, maildns_providers::Error> {
        self.inner.find_zone(name).await
    }
    async fn read_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
    ) -> Result<Option<TxtSet>, maildns_providers::Error> {
        self.inner.read_txt(zone, name).await
    }
    async fn replace_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
    ) -> Result<(), maildns_providers::Error> {
        self.inner.replace_txt(zone, name, set).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), maildns_providers::Error> {
        self.inner.delete_txt(zone, name).await
    }
    fn apply_traits(&self) -> maildns_providers::ApplyTraits {
        maildns_providers::ApplyTraits {
            atomic: self.broken == Broken::ClaimsAtomic,
            compare_and_swap: self.broken == Broken::ClaimsAtomic,
            deferred: false,
        }
    }
    async fn apply(
        &self,
        zone: &Zone,
        changes: &[TxtChange],
    ) -> Result<(), maildns_providers::ApplyError> {
        let mut written = Vec::new();
        for c in changes {
            let r = match (self.broken, c.wanted()) {
                (Broken::Blind, Some(set)) => self.replace_txt(zone, &c.name, set).await,
                (Broken::Blind, None) => self.delete_txt(zone, &c.name).await,
                _ => self.replace_if_unchanged(zone, c).await,
            };
            if let Err(error) = r {
                if self.broken == Broken::HidesWritten {
                    written.clear();
                }
                return Err(maildns_providers::ApplyError { written, error });
            }
            written.push(c.name.clone());
        }
        Ok(())
    }
}

#[tokio::test]
async fn conformance_suite_reports_broken_change_sets() {
    let pdns = PowerDns::start();
    let (zone_name, _) = with_zone(&pdns).await;
    let zone = adapter(&pdns, &pdns.api_key, RetryPolicy::fast())
        .zone_for(&zone_name)
        .unwrap();
    let failures = |broken| {
        let p = BrokenApply {
            inner: adapter(&pdns, &pdns.api_key, RetryPolicy::fast()),
            broken,
        };
        let zone = zone.clone();
        async move { conformance::check(&p, &zone, &Options::default()).await }
    };
    let has = |f: &[conformance::CaseFailure], case: &str, detail: &str| {
        f.iter()
            .any(|f| f.case.starts_with(case) && f.detail.contains(detail))
    };
    let f = failures(Broken::ClaimsAtomic).await;
    assert!(
        has(
            &f,
            "change set: stale read",
            "an atomic apply failed but reports written"
        ),
        "{f:?}"
    );
    let f = failures(Broken::Blind).await;
    assert!(
        has(
            &f,
            "change set: stale read",
            "applied a change whose RRset was not as read"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "change set: concurrent foreign edit of a set",
            "was lost"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "change set: concurrent foreign edit of an absent set",
            "was lost"
        ),
        "{f:?}"
    );
    let f = failures(Broken::HidesWritten).await;
    assert!(
        has(
            &f,
            "change set: stale read",
            "not reported written, yet the set changed"
        ),
        "{f:?}"
    );
    // Nothing else fails: the per-name cases still pass.
    assert!(f.iter().all(|f| f.case.starts_with("change set:")), "{f:?}");
}

/// PowerDNS's API has no precondition: a value another tool writes between
/// `read_sets` and `apply` is overwritten (the documented window; the adapter
/// says `compare_and_swap: false`).
#[tokio::test]
async fn the_apply_is_atomic_but_not_compare_and_swap() {
    let pdns = PowerDns::start();
    let (zone_name, zone_text) = with_zone(&pdns).await;
    let p = adapter(&pdns, &pdns.api_key, RetryPolicy::fast());
    assert_eq!(
        p.apply_traits(),
        maildns_providers::ApplyTraits {
            atomic: true,
            compare_and_swap: false,
            deferred: false,
        }
    );
    let zone = p.zone_for(&zone_name).unwrap();
    let n = name(&format!("window.{zone_text}"));
    let read = p.read_sets(&zone, std::slice::from_ref(&n)).await.unwrap();
    let foreign = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("foreign=1")],
    };
    p.replace_txt(&zone, &n, &foreign).await.unwrap();
    let ours = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("v=spf1 -all")],
    };
    let change = TxtChange {
        name: n.clone(),
        old: read[&n].clone(),
        new: Some(ours.clone()),
    };
    p.apply(&zone, &[change]).await.unwrap();
    assert_eq!(p.read_txt(&zone, &n).await.unwrap(), Some(ours));
}

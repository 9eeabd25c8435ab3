//! Benchmark: `maildns publish` for many domains (SPF, 2048-bit DKIM, DMARC; new
//! zones) against a real PowerDNS on loopback, through the same code the command
//! uses (`publish::run`: read, plan, write with the provider's concurrency cap),
//! then the same run again with nothing to change.
//!
//! Run: `cargo run --release --example publish_bench [DOMAINS]` (default 1000).
//! Prints figures; asserts nothing about speed.
#![allow(clippy::disallowed_macros)] // prints for its reader; clippy.toml bans printing in the crate

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maildns::publish::{self, Desired, DomainJob, Options};
use maildns::records::RecordKind;
use maildns_providers::hosts::powerdns::{Config, PowerDns as Adapter};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{Error, Fqdn, Profile, Provider, Secret, Split, TxtRecord, TxtSet, Zone};
use maildns_testkit::{PowerDns, conformance::dkim_like};

/// Counts the requests a provider receives.
struct Counting {
    inner: Adapter,
    requests: AtomicU64,
    writes: AtomicU64,
}

#[async_trait::async_trait]
impl Provider for Counting {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn profile(&self) -> &Profile {
        self.inner.profile()
    }
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.find_zone(name).await
    }
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.read_txt(zone, name).await
    }
    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.replace_txt(zone, name, set).await
    }
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_txt(zone, name).await
    }
}

fn jobs(domains: &[Fqdn]) -> Vec<DomainJob> {
    let dkim = TxtRecord::split(&dkim_like(392, 2048), Split::Before(b"p="));
    domains
        .iter()
        .map(|d| {
            let want = |name: Fqdn, kind, value: TxtRecord| Desired {
                name,
                kind,
                records: vec![value],
                ttl: 3600,
                in_use: false,
                only_remove: None,
            };
            DomainJob {
                domain: d.clone(),
                account: "pdns".into(),
                zone: Some(d.clone()),
                desired: vec![
                    want(
                        d.clone(),
                        RecordKind::Spf,
                        TxtRecord::from_value("v=spf1 mx ip4:192.0.2.25 -all"),
                    ),
                    want(
                        d.child("202611._domainkey").expect("name"),
                        RecordKind::Dkim,
                        dkim.clone(),
                    ),
                    want(
                        d.child("_dmarc").expect("name"),
                        RecordKind::Dmarc,
                        TxtRecord::from_value(format!("v=DMARC1; p=reject; rua=mailto:dmarc@{d}")),
                    ),
                ],
            }
        })
        .collect()
}

async fn pass(
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    counting: &Counting,
    domains: &[Fqdn],
    label: &str,
) {
    let r0 = counting.requests.load(Ordering::Relaxed);
    let w0 = counting.writes.load(Ordering::Relaxed);
    let start = Instant::now();
    let outcomes = publish::run_jobs(
        jobs(domains),
        providers,
        Options {
            mode: publish::Mode::Apply,
            force: false,
            max_delete_share: 0.5,
        },
    )
    .await;
    let secs = start.elapsed().as_secs_f64();
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let req = counting.requests.load(Ordering::Relaxed) - r0;
    let writes = counting.writes.load(Ordering::Relaxed) - w0;
    println!(
        "{label}: {} domains in {secs:.2} s = {:.0} domains/s; {req} API requests ({writes} writes) = {:.0} requests/s; concurrency {}; {failed} failed",
        domains.len(),
        domains.len() as f64 / secs,
        req as f64 / secs,
        counting.profile().concurrency,
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let pdns = PowerDns::start();
    let start = Instant::now();
    let mut domains = Vec::with_capacity(n);
    for i in 0..n {
        let z = format!("bench{i:05}.test");
        pdns.create_zone(&z).await;
        domains.push(Fqdn::parse(&z).expect("valid name"));
    }
    println!(
        "setup: created {n} zones in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    // gsqlite3 answers 500 "database is locked" under concurrent writes: retry patiently.
    let policy = RetryPolicy {
        max_attempts: 50,
        max_elapsed: Duration::from_secs(120),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
    };
    let adapter = Adapter::new(
        Config {
            base_url: pdns.api_url.clone(),
            server_id: "localhost".into(),
            api_key: Secret::new(pdns.api_key.clone()),
        },
        policy,
    )
    .expect("valid config");
    let counting = Arc::new(Counting {
        inner: adapter,
        requests: AtomicU64::new(0),
        writes: AtomicU64::new(0),
    });
    let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    providers.insert("pdns".into(), counting.clone());
    pass(
        &providers,
        &counting,
        &domains,
        "publish (3 TXT sets written per domain)",
    )
    .await;
    pass(
        &providers,
        &counting,
        &domains,
        "re-run (nothing to change: read + plan only)",
    )
    .await;
}

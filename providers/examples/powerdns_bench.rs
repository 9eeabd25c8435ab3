//! Benchmark: publishing SPF, DKIM (2048-bit size) and DMARC for many domains
//! through the PowerDNS adapter, against a real PowerDNS started on loopback.
//!
//! Run: `cargo run -p maildns-providers --release --example powerdns_bench [DOMAINS]`
//! (default 1000 domains). Prints figures; asserts nothing about speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maildns_providers::hosts::powerdns::{Config, PowerDns as Adapter};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{Fqdn, Provider, Secret, Split, TxtRecord, TxtSet};
use maildns_testkit::{PowerDns, conformance::dkim_like};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    writes: AtomicU64,
}

/// Publishes the three records of one domain the way `publish` does: find the zone,
/// read each set, write only the ones that differ.
async fn publish_domain(
    p: &Adapter,
    domain: &Fqdn,
    counts: &Counts,
) -> Result<(), maildns_providers::Error> {
    let zone = p.find_zone(domain).await?;
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let wanted = [
        (
            domain.clone(),
            TxtRecord::from_value(b"v=spf1 mx ip4:192.0.2.25 -all"),
        ),
        (
            domain.child("202611._domainkey").unwrap_or(domain.clone()),
            TxtRecord::split(&dkim_like(392, 2048), Split::Before(b"p=")),
        ),
        (
            domain.child("_dmarc").unwrap_or(domain.clone()),
            TxtRecord::from_value(format!("v=DMARC1; p=reject; rua=mailto:dmarc@{domain}")),
        ),
    ];
    for (name, record) in wanted {
        let current = p.read_txt(&zone, &name).await?;
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let set = TxtSet {
            ttl: 3600,
            records: vec![record],
        };
        if current.as_ref() != Some(&set) {
            p.replace_txt(&zone, &name, &set).await?;
            counts.requests.fetch_add(1, Ordering::Relaxed);
            counts.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn pass(p: &Arc<Adapter>, domains: &[Fqdn], label: &str) {
    let counts = Arc::new(Counts::default());
    let limit = Arc::new(Semaphore::new(p.profile().concurrency));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for d in domains {
        let (p, d, counts, limit) = (p.clone(), d.clone(), counts.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            publish_domain(&p, &d, &counts).await
        });
    }
    let mut failed = 0usize;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("  failed: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("  task failed: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let req = counts.requests.load(Ordering::Relaxed);
    let writes = counts.writes.load(Ordering::Relaxed);
    println!(
        "{label}: {} domains in {secs:.2} s = {:.0} domains/s; {req} API requests ({writes} writes) = {:.0} requests/s; concurrency {}; {failed} failed",
        domains.len(),
        domains.len() as f64 / secs,
        req as f64 / secs,
        p.profile().concurrency,
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
    let adapter = Arc::new(adapter);
    pass(
        &adapter,
        &domains,
        "publish (3 TXT sets written per domain)",
    )
    .await;
    pass(
        &adapter,
        &domains,
        "re-check (nothing to change: read + compare only)",
    )
    .await;
}

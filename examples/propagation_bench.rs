//! Benchmark of the watcher's query path: N names (default 10,000) on two
//! PowerDNS servers, all checked in one round at the concurrency cap; then
//! dnsperf against one server with the same names, for comparison.
//!
//! `cargo run --release --example propagation_bench [-- NAMES [DNSPERF_SECONDS]]`
#![allow(clippy::disallowed_macros)] // prints for its reader; clippy.toml bans printing in the crate

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use maildns::propagation::{Check, Nameserver, Querier, QueryOptions, WatchOptions, Watcher};
use maildns_providers::{Fqdn, TxtRecord};
use maildns_testkit::PowerDns;

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn publish_bulk(pdns: &PowerDns, zone: &str, names: &[Fqdn]) -> anyhow::Result<()> {
    let rrsets: Vec<_> = names
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n.to_dotted(), "type": "TXT", "ttl": 300, "changetype": "REPLACE",
                "records": [{"content": value_for(n).to_presentation(), "disabled": false}],
            })
        })
        .collect();
    let resp = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(&serde_json::json!({ "rrsets": rrsets }))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "bulk PATCH: {}", resp.status());
    Ok(())
}

fn value_for(n: &Fqdn) -> TxtRecord {
    TxtRecord::from_value(format!("v=DKIM1; k=rsa; p=bench-{}", n.as_str()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let perf_secs: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let zone = "bench.test";
    let servers = [PowerDns::start(), PowerDns::start()];
    let names: Vec<Fqdn> = (0..count)
        .map(|i| Fqdn::parse(&format!("s{i}._domainkey.{zone}")))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for s in &servers {
        s.create_zone(zone).await;
        publish_bulk(s, zone, &names).await?;
    }
    println!(
        "created {count} TXT records on 2 PowerDNS servers in {:.2?} (one PATCH each)",
        t.elapsed()
    );

    let options = QueryOptions {
        timeout: Duration::from_secs(5),
        ..QueryOptions::default()
    };
    let cap = options.concurrency;
    let watcher = Watcher::new(Querier::new(options), WatchOptions::cli());
    let list: Vec<Nameserver> = servers
        .iter()
        .map(|s| Nameserver::from_addr(s.dns))
        .collect();
    let checks: Vec<Check> = names
        .iter()
        .map(|n| Check::present(n.clone(), value_for(n)))
        .collect();
    // Warm up (sockets, caches), then measure.
    let _ = watcher.check(&checks[..count.min(500)], &list, true).await;
    let t = Instant::now();
    let reports = watcher.check(&checks, &list, true).await;
    let elapsed = t.elapsed();
    let passed = reports.iter().filter(|r| r.passed).count();
    let queries = count * list.len();
    let rate = queries as f64 / elapsed.as_secs_f64();
    println!(
        "watcher: {queries} queries ({passed}/{count} checks passed on both servers) in {elapsed:.2?} at concurrency {cap}: {rate:.0} queries/s"
    );
    println!(
        "peak memory (VmHWM): {} KiB",
        vm_hwm_kib().map_or("?".into(), |k| k.to_string())
    );
    drop(reports);
    drop(checks);

    // dnsperf against the first server, same names.
    let mut file = tempfile::NamedTempFile::new()?;
    for n in &names {
        writeln!(file, "{} TXT", n.as_str())?;
    }
    file.flush()?;
    let target = servers[0].dns;
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &target.ip().to_string(),
            "-p",
            &target.port().to_string(),
            "-d",
            &file.path().display().to_string(),
            "-l",
            &perf_secs.to_string(),
            "-c",
            "1",
            "-q",
            &cap.to_string(),
        ])
        .output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.contains("Queries per second"))
                .map(str::trim)
                .unwrap_or("(no rate in dnsperf output)");
            println!("dnsperf ({perf_secs} s, {cap} outstanding): {line}");
            if let Some(dp) = line
                .split(':')
                .nth(1)
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                println!("watcher / dnsperf = {:.2}", rate / dp);
            }
        }
        Err(e) => println!("dnsperf not run: {e}"),
    }
    Ok(())
}

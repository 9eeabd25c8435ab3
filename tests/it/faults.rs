//! Faults survived: `maildns publish` of 100 domains through a proxy that breaks
//! about 30 % of PowerDNS API requests (answers cut mid-body, connections reset
//! before and after the request is applied, 503 after applying) converges in one
//! run, keeps every foreign value and writes no value twice. And a PowerDNS-like
//! server answering out of its documented format (unquoted TXT content) is a
//! protocol error with no write.

use std::path::Path;
use std::sync::Arc;

use maildns_testkit::PowerDns;
use maildns_testkit::cmd::Output;
use maildns_testkit::faultproxy::{Fault, FaultProxy};

use crate::cmd;

fn maildns(cfg: &Path, token: &str, args: &[&str]) -> Output {
    cmd()
        .config(cfg)
        .args(args)
        .env("MAILDNS_DNS_TOKEN", token)
        .run()
}

fn out(o: &Output) -> String {
    o.text()
}

/// A config for `domains`, every `dkim_every`-th of them with a DKIM key (key
/// generation in a debug build is what costs time, not the requests).
fn write_config(
    dir: &Path,
    base_url: &str,
    domains: &[String],
    dkim_every: usize,
) -> std::path::PathBuf {
    let mut text = format!(
        "state_dir = \"state\"\n[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{base_url}\"\n"
    );
    for (i, d) in domains.iter().enumerate() {
        text.push_str(&format!(
            "[domains.\"{d}\"]\naccount = \"dns\"\nspf = \"v=spf1 ip4:192.0.2.10/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@{d}\"\n"
        ));
        if dkim_every > 0 && i % dkim_every == 0 {
            text.push_str(&format!("[domains.\"{d}\".dkim]\nbits = 2048\n"));
        }
    }
    let p = dir.join("maildns.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Every TXT RRset of `zone` straight from the API: `(name, [content])`.
async fn txt_sets(pdns: &PowerDns, zone: &str) -> Vec<(String, Vec<String>)> {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["rrsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "TXT")
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["content"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

async fn put_txt(pdns: &PowerDns, zone: &str, name: &str, contents: &[&str]) {
    let records: Vec<_> = contents
        .iter()
        .map(|c| serde_json::json!({"content": c, "disabled": false}))
        .collect();
    let r = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(
            &serde_json::json!({"rrsets": [{"name": name, "type": "TXT", "ttl": 600,
            "changetype": "REPLACE", "records": records}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn api_addr(pdns: &PowerDns) -> std::net::SocketAddr {
    let rest = pdns.api_url.strip_prefix("http://").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_100_domains_through_30_percent_faults_converges_in_one_run() {
    let pdns = PowerDns::start();
    let domains: Vec<String> = (0..100).map(|i| format!("d{i:03}.faults.test")).collect();
    for d in &domains {
        pdns.create_zone(d).await;
    }
    // 30 domains hold a foreign value at the apex, 10 of them beside an SPF record
    // maildns replaces.
    for (i, d) in domains.iter().enumerate().take(30) {
        let foreign = format!("\"site-verification={i}\"");
        if i < 10 {
            put_txt(&pdns, d, &format!("{d}."), &[&foreign, "\"v=spf1 a -all\""]).await;
        } else {
            put_txt(&pdns, d, &format!("{d}."), &[&foreign]).await;
        }
    }
    let proxy = FaultProxy::start(api_addr(&pdns), 30, &Fault::ALL, 0x5eed_fa17);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &proxy.url("/api/v1"), &domains, 10);
    let o = maildns(&cfg, &pdns.api_key, &["--json", "publish"]);
    let stats = proxy.stats();
    assert_eq!(o.status.code(), Some(0), "{stats:?}\n{}", out(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(report["summary"]["failed"], 0, "{}", out(&o));
    assert_eq!(report["summary"]["domains"], 100);
    // The faults really happened, in every kind, at about the intended rate.
    for f in Fault::ALL {
        assert!(
            stats.of(f) >= 5,
            "{f:?} injected only {} times: {stats:?}",
            stats.of(f)
        );
    }
    assert!(
        stats.faulted() * 100 >= stats.requests * 20,
        "too few faults: {stats:?}"
    );

    // What the server holds: every foreign value, each value once, exactly the
    // records maildns owns.
    for (i, d) in domains.iter().enumerate() {
        let sets = txt_sets(&pdns, d).await;
        for (name, contents) in &sets {
            let mut unique = contents.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                contents.len(),
                "duplicate value at {name}: {contents:?}"
            );
        }
        let at = |n: String| {
            sets.iter()
                .find(|(name, _)| *name == n)
                .map(|(_, c)| c.clone())
                .unwrap_or_default()
        };
        let mut apex = at(format!("{d}."));
        apex.sort();
        let mut want = vec!["\"v=spf1 ip4:192.0.2.10/32 -all\"".to_string()];
        if i < 30 {
            want.push(format!("\"site-verification={i}\""));
        }
        want.sort();
        assert_eq!(apex, want, "{d}");
        assert_eq!(
            at(format!("_dmarc.{d}.")),
            vec![format!("\"v=DMARC1; p=quarantine; rua=mailto:dmarc@{d}\"")],
            "{d}"
        );
        let dkim: Vec<_> = sets
            .iter()
            .filter(|(n, _)| n.ends_with(&format!("._domainkey.{d}.")))
            .collect();
        if i % 10 != 0 {
            assert!(dkim.is_empty(), "{d}: {dkim:?}");
            continue;
        }
        assert_eq!(dkim.len(), 1, "{d}: {dkim:?}");
        assert_eq!(dkim[0].1.len(), 1, "{d}: {dkim:?}");
        assert!(dkim[0].1[0].starts_with("\"v=DKIM1;"), "{d}: {dkim:?}");
    }
    // Straight to the server: nothing left to do.
    let direct = write_config(dir.path(), &pdns.api_url, &domains, 10);
    let o = maildns(&direct, &pdns.api_key, &["plan", "--exit-code"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}

/// Drops the quotes of every TXT `content` in an API answer, as a PowerDNS-like
/// server out of its documented format would.
fn unquote_contents(_method: &str, _path: &str, body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    if let Some(sets) = v.get_mut("rrsets").and_then(|s| s.as_array_mut()) {
        for set in sets.iter_mut().filter(|s| s["type"] == "TXT") {
            for r in set["records"].as_array_mut().into_iter().flatten() {
                if let Some(c) = r["content"].as_str() {
                    r["content"] = serde_json::Value::String(c.replace('"', ""));
                }
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unquoted_txt_content_from_powerdns_is_a_protocol_error_and_nothing_is_written() {
    let pdns = PowerDns::start();
    pdns.create_zone("unquoted.test").await;
    put_txt(
        &pdns,
        "unquoted.test",
        "unquoted.test.",
        &["\"google-site-verification=abc def\"", "\"v=spf1 a -all\""],
    )
    .await;
    let before = txt_sets(&pdns, "unquoted.test").await;
    let proxy = FaultProxy::rewriting(api_addr(&pdns), Arc::new(unquote_contents));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &proxy.url("/api/v1"),
        &["unquoted.test".to_string()],
        0,
    );
    let o = maildns(&cfg, &pdns.api_key, &["publish"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let text = out(&o);
    assert!(
        text.contains("powerdns: read TXT unquoted.test: unexpected answer"),
        "{text}"
    );
    assert!(text.contains("not a quoted string"), "{text}");
    assert_eq!(txt_sets(&pdns, "unquoted.test").await, before);
}

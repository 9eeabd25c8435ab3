//! `publish --wait`, `watch` and `verify` end to end against real PowerDNS
//! servers on loopback (the binary as a child process; the PowerDNS API key
//! reaches it the documented way, as `MAILDNS_PDNS_TOKEN`).
#![allow(clippy::disallowed_macros)] // prints for its reader; clippy.toml bans printing in the crate

use std::path::{Path, PathBuf};

use maildns::propagation::{Querier, QueryOptions};
use maildns_providers::{Fqdn, TxtRecord};
use maildns_testkit::cmd::Output;
use maildns_testkit::{PowerDns, random_label};

use crate::cmd;

fn zone(prefix: &str) -> String {
    format!("{prefix}{}.test", random_label(8))
}

/// Replaces the TXT set at `owner` through the PowerDNS API (empty = delete).
async fn set_txt(pdns: &PowerDns, zone: &str, owner: &str, values: &[&str]) {
    let changetype = if values.is_empty() {
        "DELETE"
    } else {
        "REPLACE"
    };
    let body = serde_json::json!({"rrsets": [{
        "name": format!("{owner}."), "type": "TXT", "ttl": 60, "changetype": changetype,
        "records": values.iter().map(|v| serde_json::json!({"content": TxtRecord::from_value(v).to_presentation(), "disabled": false})).collect::<Vec<_>>(),
    }]});
    let resp = reqwest::Client::new()
        .patch(format!("{}/servers/localhost/zones/{zone}.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "PATCH {owner}: {}",
        resp.status()
    );
}

/// What `server` serves at `name` (joined values).
async fn served(server: std::net::SocketAddr, name: &str) -> Vec<String> {
    let q = Querier::new(QueryOptions::default());
    q.txt(server, &Fqdn::parse(name).unwrap(), false)
        .await
        .unwrap()
        .records
        .iter()
        .map(TxtRecord::value_lossy)
        .collect()
}

/// A config publishing `domain` through `pdns`, checked on `nameservers`, with
/// `pdns` as the resolver for foreign names.
fn config(
    dir: &Path,
    pdns: &PowerDns,
    domain: &str,
    nameservers: &[&PowerDns],
    extra: &str,
) -> PathBuf {
    let ns: Vec<String> = nameservers
        .iter()
        .map(|p| format!("\"{}\"", p.dns))
        .collect();
    let path = dir.join("maildns.toml");
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "state"

[accounts.pdns]
provider = "powerdns"
base_url = "{api}"

[propagation]
timeout = "30s"
resolvers = ["{dns}"]

[domains."{domain}"]
account = "pdns"
nameservers = [{ns}]
{extra}
"#,
            api = pdns.api_url,
            dns = pdns.dns,
            ns = ns.join(", "),
        ),
    )
    .unwrap();
    path
}

const BASIC: &str = r#"spf = "v=spf1 ip4:192.0.2.10/32 -all"
dmarc = "v=DMARC1; p=quarantine""#;

#[tokio::test]
async fn publish_wait_returns_once_every_server_serves_the_records() {
    let pdns = PowerDns::start();
    let z = zone("w");
    pdns.create_zone(&z).await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &pdns, &z, &[&pdns], BASIC);
    let out = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", &pdns.api_key)
        .args(["publish", "--wait"])
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    let s = out.stdout_text();
    assert!(
        s.contains(&format!("{z}: propagated to every server")),
        "{s}"
    );
    assert!(s.contains("safe after"), "{s}");
    // Not a terminal: plain log lines, one per round and per state change.
    assert!(s.contains(&format!("{z}: round 1: 2/2 passed")), "{s}");
    assert!(
        s.contains(&format!(
            "_dmarc.{z} present \"v=DMARC1; p=quarantine\" on {}: ok",
            pdns.dns
        )),
        "{s}"
    );
    // And it is really served.
    assert_eq!(
        served(pdns.dns, &z).await,
        vec!["v=spf1 ip4:192.0.2.10/32 -all"]
    );
    assert_eq!(
        served(pdns.dns, &format!("_dmarc.{z}")).await,
        vec!["v=DMARC1; p=quarantine"]
    );

    // An update waits for the new value and for the old one to be gone; --json
    // carries the watch report.
    config(
        dir.path(),
        &pdns,
        &z,
        &[&pdns],
        "spf = \"v=spf1 ip4:192.0.2.11/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine\"",
    );
    let out = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", &pdns.api_key)
        .args(["--json", "publish", "--wait"])
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let report = &v["watch"][0]["report"];
    assert_eq!(report["propagated"], true, "{v}");
    let kinds: Vec<String> = report["per_check"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["expectation"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(kinds, vec!["present", "absent"]);
    assert!(report["safe_after"].is_string());
}

#[tokio::test]
async fn publish_wait_exits_3_naming_the_server_that_lags() {
    let (a, b) = (PowerDns::start(), PowerDns::start());
    let z = zone("l");
    a.create_zone(&z).await;
    b.create_zone(&z).await; // the zone, never the change
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &a, &z, &[&a, &b], BASIC);
    let out = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", &a.api_key)
        .args(["publish", "--wait", "--timeout", "3s"])
        .run();
    assert_eq!(out.status.code(), Some(3), "{}", out.text());
    let s = out.stdout_text();
    assert!(s.contains(&format!("{z}: NOT propagated")), "{s}");
    assert!(
        s.contains(&format!(
            "  {z} (present \"v=spf1 ip4:192.0.2.10/32 -all\") on {}: waiting: serves nothing",
            b.dns
        )),
        "{s}"
    );
    // The server that has the change is not named as lagging.
    assert!(!s.contains(&format!("on {}: waiting", a.dns)), "{s}");
    // The change itself was applied.
    assert_eq!(
        served(a.dns, &z).await,
        vec!["v=spf1 ip4:192.0.2.10/32 -all"]
    );
}

#[tokio::test]
async fn watch_exits_0_when_served_and_3_on_timeout() {
    let pdns = PowerDns::start();
    let z = zone("x");
    pdns.create_zone(&z).await;
    let owner = format!("_dmarc.{z}");
    set_txt(&pdns, &z, &owner, &["v=DMARC1; p=none", "foreign=1"]).await;
    let dir = tempfile::tempdir().unwrap(); // no config here: watch needs none
    let server = pdns.dns.to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["watch", owner.as_str(), "--server", server.as_str()];
        all.extend_from_slice(args);
        cmd()
            .current_dir(dir.path())
            .env("MAILDNS_PDNS_TOKEN", "")
            .args(all)
            .run()
    };
    let ok = run(&["--expect", "v=DMARC1; p=none", "--timeout", "5s"]);
    assert_eq!(ok.status.code(), Some(0), "{}", ok.text());
    assert!(ok.stdout_text().contains("safe after"), "{}", ok.text());
    let missing = run(&["--expect", "v=DMARC1; p=reject", "--timeout", "1s"]);
    assert_eq!(missing.status.code(), Some(3), "{}", missing.text());
    // The lagging server is named with what it serves (in the server's order).
    let lagging = missing
        .stdout_text()
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "  {owner} (present \"v=DMARC1; p=reject\") on {server}: waiting: serves "
            ))
        })
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", missing.text()));
    assert!(lagging.contains("\"v=DMARC1; p=none\""), "{lagging}");
    assert!(lagging.contains("\"foreign=1\""), "{lagging}");
    let still = run(&["--absent", "v=DMARC1; p=none", "--timeout", "1s"]);
    assert_eq!(still.status.code(), Some(3), "{}", still.text());
    let gone = run(&["--absent", "v=DMARC1; p=reject", "--timeout", "1s"]);
    assert_eq!(gone.status.code(), Some(0), "{}", gone.text());
    let json = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", "")
        .args([
            "--json",
            "watch",
            &owner,
            "--server",
            &server,
            "--expect",
            "foreign=1",
        ])
        .run();
    assert_eq!(json.status.code(), Some(0), "{}", json.text());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(v["report"]["propagated"], true);
    assert_eq!(v["servers"][0]["addr"], server);
    // Neither --expect nor --absent: a usage error.
    assert_eq!(
        cmd()
            .current_dir(dir.path())
            .env("MAILDNS_PDNS_TOKEN", "")
            .args(["watch", &owner])
            .run()
            .status
            .code(),
        Some(64)
    );
}

#[tokio::test]
async fn verify_passes_on_a_good_setup_and_catches_each_problem() {
    let pdns = PowerDns::start();
    let (z, f) = (zone("v"), zone("f"));
    pdns.create_zone(&z).await;
    pdns.create_zone(&f).await;
    let spf_f = format!("spf.{f}");
    let auth = format!("{z}._report._dmarc.{f}");
    set_txt(&pdns, &f, &spf_f, &["v=spf1 ip4:198.51.100.0/24 -all"]).await;
    set_txt(&pdns, &f, &auth, &["v=DMARC1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let maildns = |args: &[&str]| {
        cmd()
            .current_dir(dir.path())
            .env("MAILDNS_PDNS_TOKEN", "")
            .args(args)
            .run()
    };
    let extra = format!(
        r#"spf = "v=spf1 ip4:192.0.2.10/32 include:{spf_f} -all"
dmarc = "v=DMARC1; p=quarantine; rua=mailto:reports@{f}"

[domains."{z}".dkim]
bits = 1024
selector_format = "s%Y%m"
"#
    );
    config(dir.path(), &pdns, &z, &[&pdns], &extra);
    let out = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", &pdns.api_key)
        .args(["publish"])
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", out.text());

    // Good: exit 0, and the report says what it checked. No credential needed.
    let good = maildns(&["verify"]);
    assert_eq!(good.status.code(), Some(0), "{}", good.text());
    let s = good.stdout_text();
    println!("{s}");
    assert!(s.contains("the served public key matches"), "{s}");
    assert!(
        s.contains("1024-bit RSA: accepted, but 2048 bits is advised"),
        "{s}"
    );
    assert!(
        s.contains("SPF lookups") && s.contains("1 of at most 10"),
        "{s}"
    );
    assert!(s.contains(&format!("authorised by {auth}")), "{s}");
    assert!(s.contains("0 error(s)"), "{s}");

    // A missing authorisation record for the external report destination.
    set_txt(&pdns, &f, &auth, &[]).await;
    let out = maildns(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    assert!(
        out.stdout_text()
            .contains(&format!("{auth} has no v=DMARC1 record")),
        "{}",
        out.text()
    );
    set_txt(&pdns, &f, &auth, &["v=DMARC1"]).await;

    // A 12-lookup include chain: spf.f -> c1 -> ... -> c11.
    for i in 1..=11 {
        let next = if i == 11 {
            "v=spf1 ip4:198.51.100.1 -all".to_string()
        } else {
            format!("v=spf1 include:c{}.{f} -all", i + 1)
        };
        set_txt(&pdns, &f, &format!("c{i}.{f}"), &[&next]).await;
    }
    set_txt(&pdns, &f, &spf_f, &[&format!("v=spf1 include:c1.{f} -all")]).await;
    let out = maildns(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let findings = v["domains"][0]["findings"].as_array().unwrap();
    let lookups = findings
        .iter()
        .find(|x| x["check"] == "SPF lookups")
        .expect("a lookups finding");
    assert_eq!(lookups["status"], "error", "{lookups}");
    assert!(
        lookups["reason"]
            .as_str()
            .unwrap()
            .starts_with("12 DNS lookups"),
        "{lookups}"
    );
    // Every lookup is listed with the record it sits in, in full (none cut).
    let mut want = vec![
        format!("in {z}: include:{spf_f}"),
        format!("in {spf_f}: include:c1.{f}"),
    ];
    for i in 1..=10 {
        want.push(format!("in c{i}.{f}: include:c{}.{f}", i + 1));
    }
    assert_eq!(lookups["details"], serde_json::json!(want), "{lookups}");
    let terms = v["domains"][0]["spf_lookups"]["terms"].as_array().unwrap();
    assert_eq!(terms.len(), 12, "{terms:?}");
    assert_eq!(terms[11]["term"], format!("include:c11.{f}"));
    assert_eq!(terms[11]["record"], format!("c10.{f}"));
    // The table wraps the list but keeps every lookup and its record.
    let out = maildns(&["verify"]);
    let table = out.stdout_text();
    for w in &want {
        let (record, term) = w.split_once(": ").unwrap();
        let at = table
            .find(&format!("{record}:"))
            .unwrap_or_else(|| panic!("{w}\n{table}"));
        assert!(table[at..].contains(term), "{w}\n{table}");
    }
    assert!(
        table
            .lines()
            .filter(|l| l.trim_start().starts_with("in "))
            .all(|l| l.chars().count() <= 100),
        "{table}"
    );

    // A loop.
    set_txt(
        &pdns,
        &f,
        &spf_f,
        &[&format!("v=spf1 include:{spf_f} -all")],
    )
    .await;
    let out = maildns(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    assert!(
        out.stdout_text()
            .contains(&format!("loops: {z} -> {spf_f} -> {spf_f}")),
        "{}",
        out.text()
    );
    set_txt(&pdns, &f, &spf_f, &["v=spf1 ip4:198.51.100.0/24 -all"]).await;
    assert_eq!(maildns(&["verify"]).status.code(), Some(0));

    // From a user trial: a served DMARC record with a lint error was shown
    // both "ok" and "ERROR". It is one error line naming the record now (and
    // its control bytes escaped), with no ok line for it.
    let dmarc_name = format!("_dmarc.{z}");
    set_txt(&pdns, &z, &dmarc_name, &["v=DMARC1; p=\u{1b}[31mreject"]).await;
    let out = maildns(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let dmarc: Vec<&serde_json::Value> = v["domains"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["check"] == "DMARC")
        .collect();
    assert!(
        dmarc.iter().all(|x| x["status"] != "ok"),
        "no ok line for a record in error: {dmarc:?}"
    );
    assert!(
        dmarc.iter().any(|x| x["status"] == "error"
            && x["reason"]
                .as_str()
                .unwrap()
                .starts_with("\"v=DMARC1; p=\\027[31mreject\": dmarc-invalid-p")),
        "{dmarc:?}"
    );
    let text = maildns(&["verify"]).stdout_text();
    assert!(!text.contains('\u{1b}'), "{text}");
    set_txt(
        &pdns,
        &z,
        &dmarc_name,
        &[&format!("v=DMARC1; p=quarantine; rua=mailto:reports@{f}")],
    )
    .await;
    assert_eq!(maildns(&["verify"]).status.code(), Some(0));

    // Two SPF values at the domain, two DMARC values at _dmarc: each is named,
    // by verify and by plan (which refuses to touch the name).
    let ours = format!("v=spf1 ip4:192.0.2.10/32 include:{spf_f} -all");
    set_txt(&pdns, &z, &z, &[&ours, "v=spf1 mx -all"]).await;
    let dmarc_name = format!("_dmarc.{z}");
    let dmarc = format!("v=DMARC1; p=quarantine; rua=mailto:reports@{f}");
    set_txt(&pdns, &z, &dmarc_name, &[&dmarc, "v=DMARC1; p=none"]).await;
    let out = maildns(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    // Each value quoted, in the order the servers give them.
    let either = |head: &str, a: &str, b: &str, tail: &str| {
        [
            format!("{head}\"{a}\", \"{b}\"{tail}"),
            format!("{head}\"{b}\", \"{a}\"{tail}"),
        ]
    };
    let has = |out: &Output, wants: [String; 2]| {
        let s = out.stdout_text();
        assert!(
            wants.iter().any(|w| s.contains(w)),
            "{wants:?}\n{}",
            out.text()
        );
    };
    has(
        &out,
        either(
            "2 TXT values at this name start with v=spf1 (",
            &ours,
            "v=spf1 mx -all",
            ")",
        ),
    );
    has(
        &out,
        either(
            &format!("2 v=DMARC1 records at {dmarc_name} ("),
            &dmarc,
            "v=DMARC1; p=none",
            ")",
        ),
    );
    let out = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", &pdns.api_key)
        .args(["plan"])
        .run();
    has(
        &out,
        either(
            &format!("{z} holds 2 SPF values: "),
            &ours,
            "v=spf1 mx -all",
            "; only one is allowed",
        ),
    );
    let out = cmd()
        .current_dir(dir.path())
        .env("MAILDNS_PDNS_TOKEN", &pdns.api_key)
        .args(["--json", "plan"])
        .run();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let v = v.to_string();
    assert!(
        v.contains(&serde_json::json!([ours, "v=spf1 mx -all"]).to_string())
            || v.contains(&serde_json::json!(["v=spf1 mx -all", ours]).to_string()),
        "{v}"
    );
    set_txt(&pdns, &z, &z, &[&ours]).await;
    set_txt(&pdns, &z, &dmarc_name, &[&dmarc]).await;
    // The same kind one include down.
    set_txt(
        &pdns,
        &f,
        &spf_f,
        &["v=spf1 ip4:198.51.100.0/24 -all", "v=spf1 -all"],
    )
    .await;
    let out = maildns(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    has(
        &out,
        either(
            &format!("include:{spf_f} in {z}: {spf_f} has 2 SPF records ("),
            "v=spf1 ip4:198.51.100.0/24 -all",
            "v=spf1 -all",
            ")",
        ),
    );
    set_txt(&pdns, &f, &spf_f, &["v=spf1 ip4:198.51.100.0/24 -all"]).await;
    assert_eq!(maildns(&["verify"]).status.code(), Some(0));

    // The key on disk no longer matches the published record.
    let key_dir = dir.path().join("state/keys").join(&z);
    let key_file = std::fs::read_dir(&key_dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::remove_file(&key_file).unwrap();
    let other = maildns::keys::PrivateKey::generate(maildns::keys::KeySpec::rsa(1024)).unwrap();
    maildns::keys::write_private_key(&key_file, &other, Default::default()).unwrap();
    let out = maildns(&["verify"]);
    println!("{}", out.stdout_text());
    assert_eq!(out.status.code(), Some(65), "{}", out.text());
    assert!(
        out.stdout_text()
            .contains("the served public key is NOT the public half of"),
        "{}",
        out.text()
    );
}

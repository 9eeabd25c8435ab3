//! `maildns diagnose` against real PowerDNS and BIND, and against a configurable
//! fake that mimics specific host behaviours.

use std::collections::BTreeMap;
use std::time::Duration;

use maildns::diagnose::{self, DiagnoseError, Options, Report, Servers, Verdict};
use maildns::propagation::{Nameserver, Querier, QueryOptions};
use maildns::rotation::{SqliteStore, Store};
use maildns_providers::hosts::{powerdns, rfc2136};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{Fqdn, Profile, Provider, Secret, TxtRecord, TxtSet};
use maildns_testkit::fakes::quirky::{Quirks, QuirkyFake, QuirkyProvider};
use maildns_testkit::{Bind, PowerDns, random_label};

use crate::cmd;

const TOKEN: &str = "quirky-token";

fn zone() -> String {
    format!("z{}.test", random_label(10))
}

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

fn options() -> Options {
    Options {
        ttl: 60,
        serve_wait: Duration::from_secs(5),
        poll_interval: Duration::from_millis(50),
    }
}

fn no_servers() -> Servers {
    Servers {
        querier: Querier::new(QueryOptions::default()),
        list: Vec::new(),
        note: Some("a fake serves no DNS".into()),
    }
}

fn servers(list: &[std::net::SocketAddr]) -> Servers {
    Servers {
        querier: Querier::new(QueryOptions {
            timeout: Duration::from_millis(500),
            ..QueryOptions::default()
        }),
        list: list.iter().copied().map(Nameserver::from_addr).collect(),
        note: None,
    }
}

fn verdicts(r: &Report) -> BTreeMap<&'static str, Verdict> {
    r.probes.iter().map(|p| (p.id, p.verdict.clone())).collect()
}

async fn quirky(
    quirks: Quirks,
    profile: Profile,
    join: bool,
) -> (QuirkyFake, QuirkyProvider, String) {
    let z = zone();
    let fake = QuirkyFake::start(TOKEN, &z, quirks).await;
    let p = QuirkyProvider::new(fake.base_url(), TOKEN, profile, join);
    (fake, p, z)
}

async fn diagnose_ok(p: &QuirkyProvider, z: &str) -> Report {
    diagnose::run(
        p,
        &fqdn(z),
        &no_servers(),
        &options(),
        std::future::pending(),
    )
    .await
    .expect("diagnosis completes")
}

fn assert_all_stored_as_sent(r: &Report) {
    for p in &r.probes {
        assert_eq!(p.api, Verdict::StoredAsSent, "{} api", p.id);
        assert_eq!(p.verdict, Verdict::StoredAsSent, "{}: {:?}", p.id, p.served);
    }
}

// ---- real servers ----

#[tokio::test]
async fn powerdns_through_the_cli_stores_everything_as_sent_and_leaves_nothing() {
    let pdns = PowerDns::start();
    let z = zone();
    pdns.create_zone(&z).await;
    let adapter = powerdns::PowerDns::new(
        powerdns::Config {
            base_url: pdns.api_url.clone(),
            server_id: "localhost".into(),
            api_key: Secret::new(pdns.api_key.clone()),
        },
        RetryPolicy::fast(),
    )
    .unwrap();
    let zone_h = adapter.find_zone(&fqdn(&z)).await.unwrap();
    // A leftover of an interrupted earlier run.
    let leftover = fqdn(&format!("p512._maildns-probe.{z}"));
    adapter
        .replace_txt(
            &zone_h,
            &leftover,
            &TxtSet {
                ttl: 60,
                records: vec![TxtRecord::from_value("old probe")],
            },
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "state"
[accounts.pdns]
provider = "powerdns"
base_url = "{}"

[domains."{z}"]
account = "pdns"
nameservers = ["{}"]
spf = "v=spf1 -all"
"#,
            pdns.api_url, pdns.dns
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let env = [("MAILDNS_PDNS_TOKEN", pdns.api_key.as_str())];

    let dry = cmd()
        .args([
            "-c",
            cfg,
            "--json",
            "diagnose",
            "--account",
            "pdns",
            "--dry-run",
        ])
        .envs(&env)
        .run();
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(v["probes"].as_array().unwrap().len(), 8);
    assert!(
        adapter
            .read_txt(&zone_h, &leftover)
            .await
            .unwrap()
            .is_some(),
        "a dry run writes and removes nothing"
    );

    let out = cmd()
        .args(["-c", cfg, "--json", "diagnose", "--account", "pdns"])
        .envs(&env)
        .run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["leftovers_removed"][0], leftover.as_str());
    for p in r["probes"].as_array().unwrap() {
        assert_eq!(p["api"]["verdict"], "stored_as_sent", "{p}");
        assert_eq!(p["verdict"]["verdict"], "stored_as_sent", "{p}");
        assert_eq!(p["served"].as_array().unwrap().len(), 1, "{p}");
    }
    assert_eq!(r["recommendation"]["largest_intact_bits"], 4096);
    assert!(r["recommendation"]["recommended_max_bits"].is_null());
    assert_eq!(r["dkim_transport"], "edns0");
    assert!(r["profile_differences"].as_array().unwrap().is_empty());

    for name in diagnose::probe_names(&fqdn(&z)).unwrap() {
        assert!(
            adapter.read_txt(&zone_h, &name).await.unwrap().is_none(),
            "{name} left behind"
        );
    }
    let store = SqliteStore::open(&dir.path().join("state")).unwrap();
    let saved = store.latest_diagnosis("pdns").unwrap().expect("saved");
    assert_eq!(saved.recommended_max_bits, None);
    assert_eq!(saved.zone, z);

    let human = cmd()
        .args(["-c", cfg, "diagnose", "--account", "pdns"])
        .envs(&env)
        .run();
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(0), "{text}");
    assert!(text.contains("dkim4096"), "{text}");
    assert!(
        text.contains("Recommendation: 4096-bit, split into 255-byte strings"),
        "{text}"
    );
}

#[tokio::test]
async fn bind_through_rfc2136_stores_and_serves_everything_as_sent() {
    let z = zone();
    let bind = Bind::start(&z);
    let adapter = rfc2136::Rfc2136::new(rfc2136::Config::new(
        bind.dns,
        bind.key_name.clone(),
        bind.algorithm.parse().unwrap(),
        Secret::new(bind.secret.clone()),
    ))
    .unwrap();
    let r = diagnose::run(
        &adapter,
        &fqdn(&z),
        &servers(&[bind.dns]),
        &options(),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_all_stored_as_sent(&r);
    assert!(r.probes.iter().all(|p| p.served.len() == 1));
    assert_eq!(r.recommendation.largest_intact_bits, Some(4096));
    assert_eq!(r.recommendation.recommended_max_bits, None);
    let zone_h = adapter.find_zone(&fqdn(&z)).await.unwrap();
    for name in diagnose::probe_names(&fqdn(&z)).unwrap() {
        assert!(adapter.read_txt(&zone_h, &name).await.unwrap().is_none());
    }
}

// ---- quirky hosts ----

#[tokio::test]
async fn a_faithful_fake_stores_everything_and_reports_rate_limit_headers() {
    let (fake, p, z) = quirky(Quirks::default(), Profile::default(), false).await;
    let r = diagnose_ok(&p, &z).await;
    assert_all_stored_as_sent(&r);
    assert!(
        r.rate_limits_seen
            .iter()
            .any(|(k, v)| k == "x-ratelimit-limit" && v == "100"),
        "{:?}",
        r.rate_limits_seen
    );
    assert!(fake.sets().is_empty());
}

#[tokio::test]
async fn a_512_byte_limit_truncates_the_4096_bit_record() {
    let quirks = Quirks {
        truncate_value_at: Some(512),
        ..Quirks::default()
    };
    let (fake, p, z) = quirky(quirks, Profile::default(), false).await;
    let r = diagnose_ok(&p, &z).await;
    let v = verdicts(&r);
    assert_eq!(v["p512"], Verdict::StoredAsSent);
    assert_eq!(v["dkim2048"], Verdict::StoredAsSent);
    assert_eq!(
        v["dkim4096"],
        Verdict::Truncated {
            kept: 512,
            sent: 754
        }
    );
    assert_eq!(r.recommendation.recommended_max_bits, Some(2048));
    assert!(
        r.recommendation
            .text
            .starts_with("2048-bit: the host truncates records over 512 bytes"),
        "{}",
        r.recommendation.text
    );
    assert_eq!(r.dkim_transport, Some("udp"));
    assert!(
        r.profile_differences
            .iter()
            .any(|d| d.starts_with("dkim4096")),
        "{:?}",
        r.profile_differences
    );
    assert!(fake.sets().is_empty());
}

#[tokio::test]
async fn a_single_string_host_keeps_only_the_first_string() {
    let quirks = Quirks {
        single_string: true,
        ..Quirks::default()
    };
    let (fake, p, z) = quirky(quirks, Profile::default(), false).await;
    let r = diagnose_ok(&p, &z).await;
    let v = verdicts(&r);
    assert_eq!(v["p255"], Verdict::StoredAsSent);
    assert_eq!(v["chars"], Verdict::StoredAsSent);
    assert_eq!(
        v["p256"],
        Verdict::Truncated {
            kept: 255,
            sent: 256
        }
    );
    assert_eq!(
        v["dkim1024"],
        Verdict::Truncated {
            kept: 16,
            sent: 234
        }
    );
    assert_eq!(
        v["many"],
        Verdict::Truncated {
            kept: 10,
            sent: 200
        }
    );
    assert_eq!(r.recommendation.largest_intact_bits, None);
    assert_eq!(r.recommendation.recommended_max_bits, Some(1024));
    assert!(
        r.recommendation
            .text
            .starts_with("no DKIM record round-trips intact")
    );
    assert!(fake.sets().is_empty());
}

#[tokio::test]
async fn a_merging_host_and_a_profile_refusal() {
    let quirks = Quirks {
        merge_strings: true,
        ..Quirks::default()
    };
    let profile = Profile {
        max_value_bytes: Some(512),
        ..Profile::default()
    };
    let (fake, p, z) = quirky(quirks, profile, false).await;
    let r = diagnose_ok(&p, &z).await;
    let v = verdicts(&r);
    assert_eq!(v["many"], Verdict::StringsMerged);
    assert_eq!(v["dkim1024"], Verdict::StringsMerged);
    assert_eq!(v["dkim2048"], Verdict::AutoSplit);
    assert!(
        matches!(&v["dkim4096"], Verdict::RefusedByProfile { reason } if reason.contains("754 bytes")),
        "{:?}",
        v["dkim4096"]
    );
    assert_eq!(r.recommendation.recommended_max_bits, Some(2048));
    assert!(
        r.recommendation
            .text
            .contains("declared profile refuses the 4096-bit record")
    );
    assert!(r.profile_differences.iter().any(|d| d.starts_with("many:")));
    assert!(fake.sets().is_empty());
}

#[tokio::test]
async fn a_host_rejecting_long_strings_caps_keys_at_1024() {
    let (fake, p, z) = rejecting().await;
    let r = diagnose_ok(&p, &z).await;
    let v = verdicts(&r);
    assert_eq!(v["p255"], Verdict::StoredAsSent);
    assert_eq!(v["dkim1024"], Verdict::StringsMerged);
    for id in ["p256", "p512", "dkim2048", "dkim4096"] {
        assert!(
            matches!(&v[id], Verdict::Rejected { message } if message == "HTTP 422: TXT record strings may not be longer than 255 characters"),
            "{id}: {:?}",
            v[id]
        );
    }
    assert_eq!(r.recommendation.recommended_max_bits, Some(1024));
    assert!(
        r.recommendation
            .text
            .starts_with("1024-bit: the host rejects the 2048-bit record")
    );
    assert!(r.profile_differences.iter().any(|d| d.starts_with("p256:")));
    assert!(fake.sets().is_empty());
}

async fn rejecting() -> (QuirkyFake, QuirkyProvider, String) {
    let quirks = Quirks {
        reject_long_strings: true,
        ..Quirks::default()
    };
    // Declared like a host that takes whole values and splits them itself.
    let profile = Profile {
        multi_string: false,
        auto_split: true,
        ..Profile::default()
    };
    quirky(quirks, profile, true).await
}

#[tokio::test]
async fn a_host_making_several_records_of_one_value() {
    let quirks = Quirks {
        split_records: true,
        ..Quirks::default()
    };
    let (fake, p, z) = quirky(quirks, Profile::default(), false).await;
    let r = diagnose_ok(&p, &z).await;
    let v = verdicts(&r);
    assert_eq!(v["p255"], Verdict::StoredAsSent);
    assert_eq!(v["p256"], Verdict::SeveralRecords { records: 2 });
    assert_eq!(v["dkim1024"], Verdict::SeveralRecords { records: 2 });
    assert_eq!(v["many"], Verdict::SeveralRecords { records: 20 });
    assert_eq!(r.recommendation.recommended_max_bits, Some(1024));
    assert!(fake.sets().is_empty());
}

#[tokio::test]
async fn an_error_mid_run_still_removes_every_probe_and_leftovers() {
    let quirks = Quirks {
        fail_writes_after: Some(3),
        ..Quirks::default()
    };
    let (fake, p, z) = quirky(quirks, Profile::default(), false).await;
    fake.put(
        &format!("many._maildns-probe.{z}"),
        60,
        vec![vec!["old".into()]],
    );
    let err = diagnose::run(
        &p,
        &fqdn(&z),
        &no_servers(),
        &options(),
        std::future::pending(),
    )
    .await
    .expect_err("the fourth write fails");
    match &err {
        DiagnoseError::Provider { source, leftovers } => {
            assert_eq!(source.status, Some(500), "{source}");
            assert!(leftovers.is_empty());
        }
        other => panic!("{other}"),
    }
    assert!(fake.writes() > 3);
    assert!(fake.sets().is_empty(), "{:?}", fake.sets());
}

#[tokio::test]
async fn an_interrupted_run_removes_its_probes() {
    // The third write hangs, so the interruption comes mid-run on any machine.
    let quirks = Quirks {
        hold_writes_after: Some(2),
        ..Quirks::default()
    };
    let (fake, p, z) = quirky(quirks, Profile::default(), false).await;
    let shutdown = async {
        while fake.writes() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let err = diagnose::run(&p, &fqdn(&z), &no_servers(), &options(), shutdown)
        .await
        .expect_err("interrupted");
    assert!(
        matches!(err, DiagnoseError::Interrupted { ref leftovers } if leftovers.is_empty()),
        "{err}"
    );
    assert!(fake.writes() >= 2);
    assert!(fake.sets().is_empty(), "{:?}", fake.sets());
}

#[tokio::test]
async fn a_1024_recommendation_makes_the_next_publish_generate_a_1024_bit_key() {
    let (_fake, p, z) = rejecting().await;
    let r = diagnose_ok(&p, &z).await;
    assert_eq!(r.recommendation.recommended_max_bits, Some(1024));

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    {
        let store = SqliteStore::open(&dir.path().join("state")).unwrap();
        diagnose::save(&store, "local", &r, chrono::Utc::now()).unwrap();
    }
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        r#"state_dir = "state"
[accounts.local]
provider = "zonefile"
path = "zone.db"

[domains."example.com"]
account = "local"
spf = "v=spf1 -all"
[domains."example.com".dkim]
bits = 2048
"#,
    )
    .unwrap();
    let out = cmd()
        .args(["-c", cfg.to_str().unwrap(), "publish"])
        .envs(&[])
        .run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<_> = std::fs::read_dir(dir.path().join("state/keys/example.com"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(keys.len(), 1);
    let key = maildns::keys::load_private_key(&keys[0].path()).unwrap();
    assert_eq!(
        key.bits(),
        1024,
        "capped by the diagnosis, not the configured 2048"
    );
}

//! Hetzner Cloud DNS adapter against the local fake (zones, rrsets, actions).

use std::time::Duration;

use maildns_providers::hosts::hetzner::{Config, Hetzner};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, Split, TxtRecord, TxtSet};
use maildns_testkit::fakes::hetzner::FakeHetzner;

use crate::{change, n, set};

const TOKEN: &str = "hcloud-test-token-77";

fn adapter(fake: &FakeHetzner, token: &str, policy: RetryPolicy) -> Hetzner {
    let mut c = Config::new(Secret::new(token));
    c.base_url = fake.base_url().to_string();
    c.action_poll_interval = Duration::from_millis(5);
    Hetzner::new(c, policy).unwrap()
}

async fn setup() -> (FakeHetzner, Hetzner, u64) {
    let fake = FakeHetzner::start(TOKEN).await;
    let id = fake.add_zone("example.com");
    let h = adapter(&fake, TOKEN, RetryPolicy::fast());
    (fake, h, id)
}

#[tokio::test]
async fn conformance_publish_read_back_and_actions() {
    let (fake, h, zid) = setup().await;
    fake.set_running_polls(3);
    let zone = h.find_zone(&n("_dmarc.example.com")).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.clone()),
        ("example.com", zid.to_string())
    );
    maildns_testkit::conformance::run(&h, &zone, None).await;
    let name = n("_dmarc.example.com");
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("v=DMARC1; p=none")],
    };
    let action_polls = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.starts_with("/v1/actions/"))
            .count()
    };
    // The conformance suite polled actions too: count only ours.
    let before = action_polls();
    h.replace_txt(&zone, &name, &set).await.unwrap();
    assert_eq!(h.read_txt(&zone, &name).await.unwrap(), Some(set.clone()));
    let raw = fake.rrset(zid, "_dmarc").unwrap();
    assert_eq!(raw.values, vec!["\"v=DMARC1; p=none\"".to_string()]);
    assert_eq!(raw.ttl, Some(300));
    assert_eq!(
        action_polls() - before,
        3,
        "the create action was polled until success"
    );
    // New TTL and values: change_ttl then set_records.
    let set2 = TxtSet {
        ttl: 600,
        records: vec![TxtRecord::from_value("v=DMARC1; p=reject")],
    };
    h.replace_txt(&zone, &name, &set2).await.unwrap();
    assert_eq!(h.read_txt(&zone, &name).await.unwrap(), Some(set2));
    h.delete_txt(&zone, &name).await.unwrap();
    assert_eq!(h.read_txt(&zone, &name).await.unwrap(), None);
    h.delete_txt(&zone, &name).await.unwrap();
}

#[tokio::test]
async fn merge_keeps_foreign_value() {
    let (fake, h, zid) = setup().await;
    fake.add_rrset(zid, "@", Some(3600), &["\"google-site-verification=abc\""]);
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    let name = n("example.com");
    let cur = h.read_txt(&zone, &name).await.unwrap().unwrap();
    let mut records = cur.records.clone();
    records.push(TxtRecord::from_value("v=spf1 -all"));
    h.replace_txt(&zone, &name, &TxtSet { ttl: 3600, records })
        .await
        .unwrap();
    let raw = fake.rrset(zid, "@").unwrap();
    assert_eq!(
        raw.values,
        vec![
            "\"google-site-verification=abc\"".to_string(),
            "\"v=spf1 -all\"".to_string()
        ]
    );
}

#[tokio::test]
async fn dkim_2048_sent_pre_split() {
    let (fake, h, zid) = setup().await;
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    let name = n("202611._domainkey.example.com");
    let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    let rec = TxtRecord::split(v.as_bytes(), Split::Before(b"p="));
    let set = TxtSet {
        ttl: 300,
        records: vec![rec.clone()],
    };
    h.replace_txt(&zone, &name, &set).await.unwrap();
    let post = fake
        .writes()
        .into_iter()
        .find(|w| w.path.ends_with("/rrsets"))
        .unwrap();
    let body = post.json();
    let expected = format!(
        "\"v=DKIM1; k=rsa; \" \"p={}\" \"{}\"",
        "A".repeat(253),
        "A".repeat(139)
    );
    assert_eq!(body["records"][0]["value"], expected.as_str());
    assert_eq!(body["name"], "202611._domainkey");
    assert_eq!(
        fake.rrset(zid, "202611._domainkey").unwrap().values,
        vec![expected]
    );
    assert_eq!(h.read_txt(&zone, &name).await.unwrap(), Some(set));
}

#[tokio::test]
async fn string_over_255_is_422_invalid_with_hosts_message() {
    let (fake, h, zid) = setup().await;
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/zones/{zid}/rrsets", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"name":"x","type":"TXT","ttl":300,"records":[{"value":format!("\"{}\"", "a".repeat(300)),"comment":""}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    fake.fail_next(422, 1);
    let e = h
        .replace_txt(
            &zone,
            &n("y.example.com"),
            &TxtSet {
                ttl: 300,
                records: vec![TxtRecord::from_value("z")],
            },
        )
        .await
        .unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Invalid, Some(422)));
    assert!(e.message.contains("invalid_input"), "{e}");
}

#[tokio::test]
async fn failed_action_is_reported() {
    let (fake, h, _) = setup().await;
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    fake.fail_next_action("zone is being migrated");
    let e = h
        .replace_txt(
            &zone,
            &n("a.example.com"),
            &TxtSet {
                ttl: 300,
                records: vec![TxtRecord::from_value("z")],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.operation, maildns_providers::Operation::WaitForChange);
    assert!(e.message.contains("zone is being migrated"), "{e}");
}

#[tokio::test]
async fn bad_token_is_auth_with_hosts_message_and_no_token() {
    let (fake, _, _) = setup().await;
    let h = adapter(&fake, "hcloud-wrong", RetryPolicy::fast());
    let e = h.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(e.message.contains("unable to authenticate"), "{e}");
    let text = format!("{e} {e:?} {h:?}");
    assert!(!text.contains("hcloud-wrong") && !text.contains(TOKEN));
}

#[tokio::test]
async fn unknown_zone_is_zone_not_found() {
    let (_fake, h, _) = setup().await;
    let e = h.find_zone(&n("x.example.net")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn rate_limit_and_server_error_then_success() {
    let (fake, _, _) = setup().await;
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let h = adapter(&fake, TOKEN, policy);
    fake.rate_limit_next(1);
    fake.fail_next(500, 1);
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn large_set_round_trips() {
    // RRsets are read in one GET (no pagination exists for one set): 60 values.
    let (_fake, h, _) = setup().await;
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    let records: Vec<TxtRecord> = (0..60)
        .map(|i| TxtRecord::from_value(format!("v{i}")))
        .collect();
    let set = TxtSet { ttl: 300, records };
    h.replace_txt(&zone, &n("many.example.com"), &set)
        .await
        .unwrap();
    assert_eq!(
        h.read_txt(&zone, &n("many.example.com")).await.unwrap(),
        Some(set)
    );
}

/// The lookup asks for `example.com`, never for `_dmarc.example.com` (Hetzner
/// answers a name that cannot be a zone with a validation error, which used
/// to end the walk); an error other than "not found" still ends it.
#[tokio::test]
async fn zone_lookup_skips_names_that_cannot_be_zones_and_stops_on_real_errors() {
    let (fake, h, _) = setup().await;
    let zone = h.find_zone(&n("s1._domainkey.example.com")).await.unwrap();
    assert_eq!(zone.name, n("example.com"));
    let asked: Vec<String> = fake.requests().iter().map(|r| r.query.clone()).collect();
    assert_eq!(asked, ["name=example.com"], "{asked:?}");
    fake.fail_next(403, 1);
    let e = h.find_zone(&n("_dmarc.example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission, "{e}");
}

/// "Another action is running" (423 `locked`) is waited out with backoff and
/// the write then goes through; it is not reported.
#[tokio::test]
async fn locked_zone_is_retried_not_reported() {
    let (fake, h, zid) = setup().await;
    let zone = h.zone_for(&n("example.com")).unwrap();
    fake.busy_next_writes(2);
    h.replace_txt(&zone, &n("example.com"), &set(300, &["v=spf1 -all"]))
        .await
        .unwrap();
    assert_eq!(fake.rrset(zid, "@").unwrap().values, ["\"v=spf1 -all\""]);
    assert_eq!(fake.writes().len(), 3, "two refused, one applied");
}

#[tokio::test]
async fn read_sets_is_one_listing_and_writes_check_the_read() {
    let (fake, h, zid) = setup().await;
    fake.add_rrset(
        zid,
        "@",
        Some(300),
        &["\"site-verification=x\"", "\"v=spf1 -all\""],
    );
    fake.add_rrset(zid, "_dmarc", Some(300), &["\"v=DMARC1; p=none\""]);
    let zone = h.zone_for(&n("example.com")).unwrap();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
    ];
    let sets = h.read_sets(&zone, &names).await.unwrap();
    assert_eq!(fake.requests().len(), 1, "one listing, no zone lookup");
    assert_eq!(
        sets[&n("example.com")].set,
        Some(set(300, &["site-verification=x", "v=spf1 -all"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    // Someone changes _dmarc after the read: the apply writes the apex, then
    // stops at _dmarc with a conflict, naming what it wrote.
    fake.add_rrset(zid, "_dmarc", Some(300), &["\"v=DMARC1; p=quarantine\""]);
    let e = h
        .apply(
            &zone,
            &[
                change(
                    &sets,
                    "example.com",
                    Some(set(300, &["site-verification=x", "v=spf1 mx -all"])),
                ),
                change(
                    &sets,
                    "_dmarc.example.com",
                    Some(set(300, &["v=DMARC1; p=reject"])),
                ),
            ],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.written, [n("example.com")]);
    assert_eq!(
        fake.rrset(zid, "_dmarc").unwrap().values,
        ["\"v=DMARC1; p=quarantine\""],
        "the foreign edit is kept"
    );
    assert_eq!(
        fake.rrset(zid, "@").unwrap().values,
        ["\"site-verification=x\"", "\"v=spf1 mx -all\""]
    );
    // Paged listing: at most two requests a name.
    fake.set_max_per_page(1);
    let before = fake.requests().len();
    let again = h.read_sets(&zone, &names).await.unwrap();
    assert!(fake.requests().len() - before <= 2 * names.len());
    assert_eq!(
        again[&n("_dmarc.example.com")].set,
        Some(set(300, &["v=DMARC1; p=quarantine"]))
    );
}

/// Hetzner takes RRset TTLs from 60 and answers 422 `invalid_input` naming
/// the field otherwise: the fake does too, and the adapter refuses such a TTL
/// before sending.
#[tokio::test]
async fn a_ttl_under_60_is_refused_by_host_and_before_sending() {
    let (fake, h, id) = setup().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/zones/{id}/rrsets", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"name":"t","type":"TXT","ttl":30,"records":[{"value":"\"x\""}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("invalid input in field 'ttl'")
    );
    let zone = h.find_zone(&n("example.com")).await.unwrap();
    let before = fake.requests().len();
    crate::expect_ttl_too_low(&h, &zone, "u.example.com", 30, 60).await;
    assert_eq!(fake.requests().len(), before, "nothing sent");
}

//! Vultr adapter against the local fake of API v2.

use std::time::Duration;

use maildns_providers::hosts::vultr::{Config, Vultr};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtChange, TxtRecord, Zone};
use maildns_testkit::fakes::vultr::FakeVultr;

use crate::{n, set};

const KEY: &str = "VULTRKEY0123456789ABCDEFGHIJ";

fn adapter(fake: &FakeVultr, key: &str, policy: RetryPolicy) -> Vultr {
    let mut c = Config::new(Secret::new(key));
    c.base_url = fake.base_url().to_string();
    Vultr::new(c, policy).unwrap()
}

async fn setup() -> (FakeVultr, Vultr, Zone) {
    let fake = FakeVultr::start(KEY).await;
    fake.add_domain("example.com");
    fake.add_record("example.com", "", "A", "192.0.2.1", 300);
    let v = adapter(&fake, KEY, RetryPolicy::fast());
    let zone = v.find_zone(&n("sel._domainkey.example.com")).await.unwrap();
    (fake, v, zone)
}

#[tokio::test]
async fn conformance_and_data_sent_quoted() {
    let (fake, _, zone) = setup().await;
    assert_eq!(zone.name.as_str(), "example.com");
    // The suite sends more than Vultr's 30 requests per second: the fake answers
    // 429, and retries that wait out the second carry the run through.
    let v = adapter(
        &fake,
        KEY,
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::fast()
        },
    );
    maildns_testkit::conformance::run(&v, &zone, None).await;
    let name = n("_dmarc.example.com");
    v.replace_txt(&zone, &name, &set(300, &["v=DMARC1; p=none"]))
        .await
        .unwrap();
    let raw = fake.records("example.com", "_dmarc");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].data, "\"v=DMARC1; p=none\"");
    assert_eq!(
        v.read_txt(&zone, &name).await.unwrap(),
        Some(set(300, &["v=DMARC1; p=none"]))
    );
    // The A record at the apex is never touched.
    assert_eq!(fake.records("example.com", "")[0].data, "192.0.2.1");
}

/// Vultr returns TXT data quoted: compared unquoted, a second run is in sync.
#[tokio::test]
async fn publish_then_a_second_run_is_in_sync() {
    let (fake, v, zone) = setup().await;
    let foreign = fake.add_record(
        "example.com",
        "",
        "TXT",
        "\"google-site-verification=abc\"",
        3600,
    );
    let apex = n("example.com");
    let dkim = n("202611._domainkey.example.com");
    let key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    let sets = v
        .read_sets(&zone, &[apex.clone(), dkim.clone()])
        .await
        .unwrap();
    let mut with_spf = sets[&apex].set.clone().unwrap();
    assert_eq!(
        with_spf.records[0].value_lossy(),
        "google-site-verification=abc"
    );
    with_spf
        .records
        .push(TxtRecord::from_value("v=spf1 mx -all"));
    let changes = vec![
        TxtChange {
            name: apex.clone(),
            old: sets[&apex].clone(),
            new: Some(with_spf.clone()),
        },
        TxtChange {
            name: dkim.clone(),
            old: sets[&dkim].clone(),
            new: Some(set(3600, &[&key])),
        },
    ];
    v.apply(&zone, &changes).await.unwrap();
    let writes = fake.writes().len();
    let before = fake.requests().len();
    let again = v
        .read_sets(&zone, &[apex.clone(), dkim.clone()])
        .await
        .unwrap();
    assert_eq!(
        fake.requests().len(),
        before + 1,
        "one request for all names"
    );
    assert!(again[&apex].unchanged_in(Some(&with_spf)));
    assert!(again[&dkim].unchanged_in(Some(&set(3600, &[&key]))));
    v.apply(&zone, &changes).await.unwrap();
    assert_eq!(
        fake.writes().len(),
        writes,
        "nothing written on the second run"
    );
    let raw = fake.records("example.com", "");
    assert_eq!(raw.iter().filter(|r| r.kind == "TXT").count(), 2);
    assert!(raw.iter().any(|r| r.id == foreign));
    assert!(raw.iter().any(|r| r.data == "\"v=spf1 mx -all\""));
}

#[tokio::test]
async fn a_ttl_change_keeps_one_ttl_per_name_before_any_create() {
    let (fake, v, zone) = setup().await;
    let foreign = fake.add_record("example.com", "x", "TXT", "\"foreign=1\"", 300);
    fake.add_record("example.com", "x", "TXT", "\"other=1\"", 300);
    // The foreign value stays, other=1 goes, new=2 comes, all at TTL 600.
    v.replace_txt(
        &zone,
        &n("x.example.com"),
        &set(600, &["foreign=1", "new=2"]),
    )
    .await
    .unwrap();
    let raw = fake.records("example.com", "x");
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert!(raw.iter().all(|r| r.ttl == 600), "{raw:?}");
    assert_eq!(raw[0].id, foreign);
    assert_eq!(raw[1].data, "\"new=2\"");
    // A changed SPF is rewritten in place: same id.
    let spf = fake.add_record("example.com", "y", "TXT", "\"v=spf1 a -all\"", 300);
    v.replace_txt(&zone, &n("y.example.com"), &set(300, &["v=spf1 mx -all"]))
        .await
        .unwrap();
    let raw = fake.records("example.com", "y");
    assert_eq!((raw.len(), raw[0].id.as_str()), (1, spf.as_str()));
    assert_eq!(raw[0].data, "\"v=spf1 mx -all\"");
}

#[tokio::test]
async fn the_fake_refuses_unquoted_or_inner_quoted_data_and_values_with_quotes_are_refused_first() {
    let (fake, v, zone) = setup().await;
    let client = reqwest::Client::new();
    for data in ["v=spf1 -all", "\"a\"b\""] {
        let resp = client
            .post(format!("{}/domains/example.com/records", fake.base_url()))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"name":"q","type":"TXT","data":data,"ttl":300}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{data}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 400);
    }
    let writes = fake.writes().len();
    let e = v
        .replace_txt(&zone, &n("q.example.com"), &set(300, &["a\"b"]))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e}");
    assert_eq!(fake.writes().len(), writes, "nothing sent");
    // Unquoted TXT data on read is not guessed at.
    fake.add_record("example.com", "u", "TXT", "unquoted", 300);
    let e = v.read_txt(&zone, &n("u.example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol);
}

#[tokio::test]
async fn wrong_key_and_address_outside_the_acl() {
    let (fake, _, _) = setup().await;
    let v = adapter(&fake, "VULTR-WRONG", RetryPolicy::fast());
    let e = v.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(e.message.contains("Invalid API token."), "{e}");
    let text = format!("{e} {e:?} {v:?}");
    assert!(!text.contains("VULTR-WRONG") && !text.contains(KEY));
    fake.deny_by_acl(true);
    let ok = adapter(&fake, KEY, RetryPolicy::fast());
    let e = ok.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(
        (e.kind.clone(), e.status),
        (ErrorKind::Permission, Some(403))
    );
    assert!(e.message.contains("Unauthorized IP address"), "{e}");
    fake.deny_by_acl(false);
    assert_eq!(
        ok.find_zone(&n("a.example.net")).await.unwrap_err().kind,
        ErrorKind::ZoneNotFound
    );
}

#[tokio::test]
async fn over_the_per_second_limit_is_429_and_retried() {
    let (fake, _, zone) = setup().await;
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(300),
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let v = adapter(&fake, KEY, policy);
    fake.set_requests_per_second(2);
    for _ in 0..4 {
        v.read_txt(&zone, &n("example.com")).await.unwrap();
    }
    fake.set_requests_per_second(30);
    fake.rate_limit_next(1);
    fake.fail_next(500, 1);
    assert_eq!(v.find_zone(&n("example.com")).await.unwrap(), zone);
    fake.fail_next(500, 4);
    let e = adapter(&fake, KEY, RetryPolicy::fast())
        .read_txt(&zone, &n("example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Server, "Internal server error")
    );
}

#[tokio::test]
async fn cursor_pagination_reads_every_page() {
    let (fake, v, zone) = setup().await;
    fake.set_max_per_page(2);
    for i in 0..5 {
        fake.add_record("example.com", "p", "TXT", &format!("\"value-{i}\""), 300);
    }
    let got = v
        .read_txt(&zone, &n("p.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 5);
    assert_eq!(got.records[4].value_lossy(), "value-4");
    v.replace_txt(&zone, &n("p.example.com"), &set(300, &["value-4"]))
        .await
        .unwrap();
    let raw = fake.records("example.com", "p");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].data, "\"value-4\"");
}

#[tokio::test]
#[should_panic(expected = "domain-wide endpoint was called")]
async fn the_fake_fails_the_test_when_a_domain_is_deleted() {
    let fake = FakeVultr::start(KEY).await;
    fake.add_domain("example.com");
    let resp = reqwest::Client::new()
        .delete(format!("{}/domains/example.com", fake.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    drop(fake);
}

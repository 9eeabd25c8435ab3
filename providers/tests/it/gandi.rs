//! Gandi LiveDNS adapter against the local fake.

use maildns_providers::hosts::gandi::{Config, Gandi};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtRecord, TxtSet};
use maildns_testkit::fakes::gandi::FakeGandi;

use crate::{change, n};

const PAT: &str = "pat-fake-0123456789abcdef";

async fn setup() -> (FakeGandi, Gandi) {
    let fake = FakeGandi::start(PAT).await;
    fake.add_domain("example.com");
    let mut cfg = Config::new(Secret::new(PAT));
    cfg.base_url = fake.url.clone();
    (fake, Gandi::new(cfg, RetryPolicy::fast()).unwrap())
}

fn set(ttl: u32, values: &[&[u8]]) -> TxtSet {
    TxtSet {
        ttl,
        records: values.iter().map(TxtRecord::from_value).collect(),
    }
}

#[tokio::test]
async fn conformance_stub_runs() {
    let (_fake, a) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    maildns_testkit::conformance::run(&a, &zone, None).await;
}

#[tokio::test]
async fn find_zone_walks_up_and_publish_reads_back() {
    let (fake, a) = setup().await;
    let name = n("_dmarc.mail.example.com");
    let zone = a.find_zone(&name).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", "example.com")
    );
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v5/livedns/domains/mail.example.com",
            "/v5/livedns/domains/example.com"
        ],
        "never asks for _dmarc.mail.example.com (Gandi answers 400, not 404)"
    );
    // An error other than 404 ends the walk: it is the answer.
    fake.fail_next(403, 1);
    let e = a.find_zone(&name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission, "{e}");
    assert_eq!(a.read_txt(&zone, &name).await.unwrap(), None);
    let s = set(300, &[b"v=DMARC1; p=none; x=\"q\\"]);
    a.replace_txt(&zone, &name, &s).await.unwrap();
    assert_eq!(a.read_txt(&zone, &name).await.unwrap(), Some(s));
    let put = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(
        put.path,
        "/v5/livedns/domains/example.com/records/_dmarc.mail/TXT"
    );
    assert_eq!(
        put.header("authorization"),
        Some(format!("Bearer {PAT}").as_str())
    );
    // apex is "@"
    a.replace_txt(&zone, &n("example.com"), &set(300, &[b"v=spf1 -all"]))
        .await
        .unwrap();
    assert!(fake.txt("example.com", "@").is_some());
}

#[tokio::test]
async fn merge_beside_a_foreign_value_then_delete() {
    let (fake, a) = setup().await;
    fake.put_txt(
        "example.com",
        "@",
        1800,
        &["\"google-site-verification=abc\""],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let mut cur = a.read_txt(&zone, &n("example.com")).await.unwrap().unwrap();
    assert_eq!(cur.ttl, 1800);
    cur.records.push(TxtRecord::from_value(b"v=spf1 mx -all"));
    a.replace_txt(&zone, &n("example.com"), &cur).await.unwrap();
    assert_eq!(
        fake.txt("example.com", "@").unwrap(),
        (
            1800,
            vec![
                "\"google-site-verification=abc\"".to_string(),
                "\"v=spf1 mx -all\"".to_string()
            ]
        )
    );
    a.delete_txt(&zone, &n("example.com")).await.unwrap();
    assert!(fake.txt("example.com", "@").is_none());
    a.delete_txt(&zone, &n("example.com")).await.unwrap();
}

#[tokio::test]
async fn dkim_2048_sent_as_quoted_255_byte_chunks() {
    let (fake, a) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let name = n("sel._domainkey.example.com");
    let value = format!("v=DKIM1; k=rsa; p={}", "B".repeat(392));
    let rec = TxtRecord::from_value(value.as_bytes());
    a.replace_txt(
        &zone,
        &name,
        &TxtSet {
            ttl: 3600,
            records: vec![rec.clone()],
        },
    )
    .await
    .unwrap();
    let put = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let (x, y) = value.split_at(255);
    let expected =
        serde_json::json!({"rrset_ttl": 3600, "rrset_values": [format!("\"{x}\" \"{y}\"")]});
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&put.body).unwrap(),
        expected
    );
    assert_eq!(
        a.read_txt(&zone, &name).await.unwrap().unwrap().records,
        vec![rec]
    );
}

#[tokio::test]
async fn auth_failure_has_the_host_message_and_no_token() {
    let fake = FakeGandi::start(PAT).await;
    fake.add_domain("example.com");
    let mut cfg = Config::new(Secret::new("pat-wrong-secret-value"));
    cfg.base_url = fake.url.clone();
    let a = Gandi::new(cfg, RetryPolicy::fast()).unwrap();
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message
            .contains("could not verify that you are authorized"),
        "{e}"
    );
    let all = format!("{e} {e:?} {a:?}");
    assert!(!all.contains("pat-wrong-secret-value") && !all.contains(PAT));
}

#[tokio::test]
async fn zone_not_found() {
    let (_fake, a) = setup().await;
    let e = a.find_zone(&n("www.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn validation_error_lists_the_field() {
    let (fake, a) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    // The host refuses a TTL of 60 (400 naming the field) ...
    let resp = reqwest::Client::new()
        .put(format!("{}/domains/example.com/records/x/TXT", fake.url))
        .bearer_auth(PAT)
        .json(&serde_json::json!({"rrset_ttl":60,"rrset_values":["\"a\""]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("rrset_ttl must be between 300")
    );
    // ... so the adapter refuses it before sending (Gandi's documented 300).
    crate::expect_ttl_too_low(&a, &zone, "x.example.com", 60, 300).await;
    assert_eq!(a.read_txt(&zone, &n("x.example.com")).await.unwrap(), None);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let (fake, a) = setup().await;
    fake.throttle_next(1, 0);
    fake.fail_next(500, 1);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.id, "example.com");
    assert_eq!(fake.requests().len(), 3);
    fake.throttle_next(10, 0);
    let e = a.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.contains("Too many requests"), "{e}");
}

#[tokio::test]
async fn read_sets_is_one_listing_and_apply_reads_once_then_writes_each_name() {
    let (fake, a) = setup().await;
    fake.put_txt(
        "example.com",
        "@",
        300,
        &["\"site-verification=x\"", "\"v=spf1 -all\""],
    );
    fake.put_txt("example.com", "_dmarc", 300, &["\"v=DMARC1; p=none\""]);
    let zone = a.zone_for(&n("example.com")).unwrap();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
    ];
    let sets = a.read_sets(&zone, &names).await.unwrap();
    assert_eq!(fake.requests().len(), 1, "one listing, no zone lookup");
    assert_eq!(
        sets[&n("example.com")].set,
        Some(set(300, &[b"site-verification=x", b"v=spf1 -all"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    a.apply(
        &zone,
        &[
            change(
                &sets,
                "example.com",
                Some(set(300, &[b"site-verification=x", b"v=spf1 mx -all"])),
            ),
            change(&sets, "_dmarc.example.com", None),
            change(
                &sets,
                "s1._domainkey.example.com",
                Some(set(300, &[b"v=DKIM1; p=AA"])),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        fake.requests().len(),
        1 + 1 + 3,
        "one read again, one write a name"
    );
    assert_eq!(fake.txt("example.com", "_dmarc"), None);
    assert_eq!(
        fake.txt("example.com", "s1._domainkey"),
        Some((300, vec!["\"v=DKIM1; p=AA\"".to_string()]))
    );
    // A foreign edit since the read: nothing is written.
    let sets = a.read_sets(&zone, &names).await.unwrap();
    fake.put_txt(
        "example.com",
        "_dmarc",
        300,
        &["\"v=DMARC1; p=quarantine\""],
    );
    let before = fake.requests().len();
    let e = a
        .apply(
            &zone,
            &[
                change(&sets, "example.com", None),
                change(&sets, "_dmarc.example.com", None),
            ],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert!(fake.requests()[before..].iter().all(|r| r.method == "GET"));
    // Paged listing: at most two requests a name.
    fake.set_per_page(1);
    let before = fake.requests().len();
    let again = a.read_sets(&zone, &names).await.unwrap();
    assert!(fake.requests().len() - before <= 2 * names.len());
    assert_eq!(
        again[&n("_dmarc.example.com")].set,
        Some(set(300, &[b"v=DMARC1; p=quarantine"]))
    );
    assert_eq!(
        again[&n("s1._domainkey.example.com")].set,
        Some(set(300, &[b"v=DKIM1; p=AA"]))
    );
}

/// LiveDNS takes TTLs up to 30 days: a longer one is refused before sending.
#[tokio::test]
async fn a_ttl_over_30_days_is_refused_before_sending() {
    let (fake, a) = setup().await;
    let zone = a.zone_for(&n("example.com")).unwrap();
    let e = a
        .replace_txt(&zone, &n("example.com"), &set(2_592_001, &[b"v=spf1 -all"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Limit(maildns_providers::LimitError::TtlTooHigh {
                ttl: 2_592_001,
                max: 2_592_000
            })
        ),
        "{e}"
    );
    assert!(fake.requests().is_empty());
    a.replace_txt(&zone, &n("example.com"), &set(2_592_000, &[b"v=spf1 -all"]))
        .await
        .unwrap();
}

//! DigitalOcean adapter against the local fake of API v2.

use std::time::Duration;

use maildns_providers::hosts::digitalocean::{Config, DigitalOcean};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, LimitError, Provider, Secret, Split, TxtRecord, TxtSet};
use maildns_testkit::fakes::digitalocean::FakeDigitalOcean;

use crate::{change, n, set};

const TOKEN: &str = "dop_v1_testtoken0123";

fn adapter(fake: &FakeDigitalOcean, token: &str, policy: RetryPolicy) -> DigitalOcean {
    let mut c = Config::new(Secret::new(token));
    c.base_url = fake.base_url().to_string();
    DigitalOcean::new(c, policy).unwrap()
}

async fn setup() -> (FakeDigitalOcean, DigitalOcean) {
    let fake = FakeDigitalOcean::start(TOKEN).await;
    fake.add_domain("example.com");
    let a = adapter(&fake, TOKEN, RetryPolicy::fast());
    (fake, a)
}

fn dkim(p_len: usize) -> TxtRecord {
    let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(p_len));
    TxtRecord::split(v.as_bytes(), Split::Before(b"p="))
}

#[tokio::test]
async fn conformance_and_publish_read_back() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("_dmarc.example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    maildns_testkit::conformance::run(&d, &zone, None).await;
    let name = n("_dmarc.example.com");
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("v=DMARC1; p=none")],
    };
    d.replace_txt(&zone, &name, &set).await.unwrap();
    assert_eq!(d.read_txt(&zone, &name).await.unwrap(), Some(set));
    let raw = fake.records("example.com", "_dmarc");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].data, "v=DMARC1; p=none");
    d.delete_txt(&zone, &name).await.unwrap();
    assert_eq!(d.read_txt(&zone, &name).await.unwrap(), None);
}

#[tokio::test]
async fn merge_keeps_foreign_record_and_its_id() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let foreign = fake.add_record("example.com", "@", "google-site-verification=xyz", 1800);
    let name = n("example.com");
    let current = d.read_txt(&zone, &name).await.unwrap().unwrap();
    let mut records = current.records.clone();
    records.push(TxtRecord::from_value("v=spf1 -all"));
    d.replace_txt(&zone, &name, &TxtSet { ttl: 1800, records })
        .await
        .unwrap();
    let raw = fake.records("example.com", "@");
    assert_eq!(raw.len(), 2);
    assert_eq!(
        (raw[0].id, raw[0].data.as_str()),
        (foreign, "google-site-verification=xyz")
    );
    d.replace_txt(&zone, &name, &current).await.unwrap();
    let raw = fake.records("example.com", "@");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].id, foreign);
    let fid = foreign.to_string();
    assert!(fake.writes().iter().all(|w| !w.path.ends_with(&fid)));
}

#[tokio::test]
async fn dkim_2048_sent_as_one_unquoted_string() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let name = n("202611._domainkey.example.com");
    let rec = dkim(392);
    d.replace_txt(
        &zone,
        &name,
        &TxtSet {
            ttl: 300,
            records: vec![rec.clone()],
        },
    )
    .await
    .unwrap();
    let post = fake
        .writes()
        .into_iter()
        .find(|w| w.method == "POST")
        .unwrap();
    let body = post.json();
    let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    assert_eq!(body["data"], value.as_str());
    assert_eq!(body["name"], "202611._domainkey");
    assert_eq!(body["type"], "TXT");
    // Read back: the joined value (DigitalOcean keeps no string boundaries).
    let got = d.read_txt(&zone, &name).await.unwrap().unwrap();
    assert_eq!(got.records[0].value(), rec.value());
}

#[tokio::test]
async fn over_the_encoded_limit_is_refused_before_any_write() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    // 4096-bit DKIM: p= of 736 characters.
    let rec = dkim(736);
    let e = d
        .replace_txt(
            &zone,
            &n("big._domainkey.example.com"),
            &TxtSet {
                ttl: 300,
                records: vec![rec],
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Limit(LimitError::EncodedTooLong { max: 509, .. })
        ),
        "{e:?}"
    );
    // The providers crate speaks no mail: the key-size advice ("1024-bit", `maildns
    // diagnose`) is added by maildns's accounts layer (see accounts::tests).
    let hint = e.hint().unwrap();
    assert!(
        !hint.contains("DKIM") && !hint.contains("maildns") && !hint.contains("bits"),
        "{hint}"
    );
    assert!(fake.writes().is_empty(), "nothing may be written");
    assert!(
        fake.requests().iter().all(|r| !r.path.contains("big")),
        "nothing may be sent"
    );
    // The fake enforces the same limit with DigitalOcean's 422 body.
    let resp = reqwest::Client::new()
        .post(format!("{}/domains/example.com/records", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"type":"TXT","name":"x","data":"a".repeat(600),"ttl":300}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["id"], "unprocessable_entity");
}

#[tokio::test]
async fn bad_token_is_auth_with_hosts_message_and_no_token() {
    let (fake, _) = setup().await;
    let d = adapter(&fake, "dop_v1_wrong", RetryPolicy::fast());
    let e = d.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(e.message.contains("Unable to authenticate you."), "{e}");
    let text = format!("{e} {e:?} {d:?}");
    assert!(!text.contains("dop_v1_wrong") && !text.contains(TOKEN));
}

#[tokio::test]
async fn unknown_zone_is_zone_not_found() {
    let (_fake, d) = setup().await;
    let e = d.find_zone(&n("a.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn unprocessable_is_invalid_with_hosts_message() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    // The host refuses a TTL of 10 with 422 (the fake as strict as the host) ...
    let resp = reqwest::Client::new()
        .post(format!("{}/domains/example.com/records", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"type":"TXT","name":"t","data":"x","ttl":10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("record ttl must be greater than 30")
    );
    // ... so the adapter refuses it before sending (the descriptor's
    // documented minimum, 30).
    let posts = |f: &FakeDigitalOcean| f.requests().iter().filter(|r| r.method == "POST").count();
    let before = posts(&fake);
    crate::expect_ttl_too_low(&d, &zone, "t.example.com", 10, 30).await;
    assert_eq!(posts(&fake), before, "nothing sent");
}

#[tokio::test]
async fn rate_limit_then_server_error_then_success() {
    let (fake, _) = setup().await;
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let d = adapter(&fake, TOKEN, policy);
    fake.rate_limit_next(1);
    fake.fail_next(500, 1);
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    assert_eq!(fake.requests().len(), 3);
    fake.fail_next(500, 10);
    let e = d.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
    assert!(e.message.contains("Unexpected server-side error"), "{e}");
}

#[tokio::test]
async fn pagination_reads_every_page() {
    let (fake, d) = setup().await;
    fake.set_max_per_page(2);
    for i in 0..5 {
        fake.add_record("example.com", "p", &format!("value-{i}"), 300);
    }
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let got = d
        .read_txt(&zone, &n("p.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 5);
    assert_eq!(got.records[4].value_lossy(), "value-4");
    d.replace_txt(
        &zone,
        &n("p.example.com"),
        &TxtSet {
            ttl: 300,
            records: vec![TxtRecord::from_value("value-4")],
        },
    )
    .await
    .unwrap();
    let raw = fake.records("example.com", "p");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].data, "value-4");
}

#[tokio::test]
async fn read_sets_is_one_listing_and_writes_check_the_read() {
    let (fake, d) = setup().await;
    fake.add_record("example.com", "@", "site-verification=x", 300);
    fake.add_record("example.com", "@", "v=spf1 -all", 300);
    fake.add_record("example.com", "_dmarc", "v=DMARC1; p=none", 300);
    let zone = d.zone_for(&n("example.com")).unwrap();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
    ];
    let sets = d.read_sets(&zone, &names).await.unwrap();
    assert_eq!(fake.requests().len(), 1, "one listing, no zone lookup");
    assert_eq!(
        sets[&n("example.com")].set,
        Some(set(300, &["site-verification=x", "v=spf1 -all"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    // Someone edits _dmarc after the read: the apex is written, _dmarc is a
    // conflict (the foreign value stays), s1 is not reached.
    fake.add_record("example.com", "_dmarc", "v=DMARC1; p=quarantine", 300);
    let e = d
        .apply(
            &zone,
            &[
                change(
                    &sets,
                    "example.com",
                    Some(set(300, &["site-verification=x", "v=spf1 mx -all"])),
                ),
                change(&sets, "_dmarc.example.com", None),
                change(
                    &sets,
                    "s1._domainkey.example.com",
                    Some(set(300, &["v=DKIM1; p=AA"])),
                ),
            ],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.written, [n("example.com")]);
    assert_eq!(fake.records("example.com", "_dmarc").len(), 2);
    assert!(fake.records("example.com", "s1._domainkey").is_empty());
    let apex: Vec<String> = fake
        .records("example.com", "@")
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_eq!(apex, ["site-verification=x", "v=spf1 mx -all"]);
    // Paged listing: at most two requests a name.
    fake.set_max_per_page(1);
    let before = fake.requests().len();
    let again = d.read_sets(&zone, &names).await.unwrap();
    assert!(fake.requests().len() - before <= 2 * names.len());
    assert_eq!(
        again[&n("_dmarc.example.com")]
            .set
            .as_ref()
            .unwrap()
            .records
            .len(),
        2
    );
}

//! DNSimple adapter against the local fake of API v2.

use maildns_providers::changeset::{Observed, TxtChange};
use maildns_providers::hosts::dnsimple::{Config, Dnsimple, content_value};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtRecord, TxtSet, Zone};
use maildns_testkit::fakes::dnsimple::FakeDnsimple;

use crate::{n, set};

const TOKEN: &str = "dnsimple_a_testtoken0123";
const ACCOUNT: u64 = 1010;

fn adapter(fake: &FakeDnsimple, token: &str, account: Option<u64>) -> Dnsimple {
    let mut c = Config::new(Secret::new(token));
    c.base_url = fake.base_url().to_string();
    c.account_id = account;
    Dnsimple::new(c, RetryPolicy::fast()).unwrap()
}

async fn setup() -> (FakeDnsimple, Dnsimple, Zone) {
    let fake = FakeDnsimple::start(TOKEN, ACCOUNT).await;
    fake.add_zone("example.com");
    let d = adapter(&fake, TOKEN, None);
    let zone = d.find_zone(&n("_dmarc.example.com")).await.unwrap();
    (fake, d, zone)
}

fn values(fake: &FakeDnsimple, name: &str) -> Vec<String> {
    let mut v: Vec<String> = fake
        .txt("example.com", name)
        .iter()
        .map(|r| String::from_utf8(content_value(&r.content).unwrap()).unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn conformance_and_account_from_whoami() {
    let (fake, d, zone) = setup().await;
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", "example.com")
    );
    assert_eq!(d.zone_for(&n("example.com")), Some(zone.clone()));
    maildns_testkit::conformance::run(&d, &zone, None).await;
    // The account id was asked once, and every path carries it.
    let reqs = fake.requests();
    assert_eq!(reqs.iter().filter(|r| r.path == "/v2/whoami").count(), 1);
    assert!(
        reqs.iter()
            .filter(|r| r.path != "/v2/whoami")
            .all(|r| r.path.starts_with("/v2/1010/zones/"))
    );
}

#[tokio::test]
async fn content_is_sent_quoted_and_a_second_run_is_in_sync() {
    let (fake, d, zone) = setup().await;
    // A foreign value written unquoted long ago (stored as given) and one DNSimple quoted.
    let old = fake.add_record(
        "example.com",
        "",
        "TXT",
        "google-site-verification=abc",
        3600,
    );
    fake.add_record("example.com", "", "MX", "mail.example.com", 3600);
    let name = n("example.com");
    let now = d.read_txt(&zone, &name).await.unwrap().unwrap();
    let mut records = now.records.clone();
    records.push(TxtRecord::from_value("v=spf1 mx -all \"quoted\""));
    let wanted = TxtSet { ttl: 3600, records };
    d.replace_txt(&zone, &name, &wanted).await.unwrap();
    let stored = fake.txt("example.com", "");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, old, "the foreign record keeps its id");
    assert_eq!(stored[0].content, "google-site-verification=abc");
    assert_eq!(stored[1].content, r#""v=spf1 mx -all \"quoted\"""#);
    // Read back equal to what was asked, so a second run writes nothing.
    let writes = fake.writes().len();
    assert!(maildns_providers::changeset::same_content(
        d.read_txt(&zone, &name).await.unwrap().as_ref(),
        Some(&wanted)
    ));
    d.replace_txt(&zone, &name, &wanted).await.unwrap();
    assert_eq!(fake.writes().len(), writes, "in sync: nothing written");
    assert_eq!(
        fake.zone_records("example.com").len(),
        3,
        "the MX is untouched"
    );
}

#[tokio::test]
async fn a_4096_bit_key_fits_in_1000_characters_and_longer_is_refused_before_sending() {
    let (fake, d, zone) = setup().await;
    let key = maildns_testkit::conformance::dkim_like(736, 1);
    let name = n("sel._domainkey.example.com");
    d.replace_txt(
        &zone,
        &name,
        &TxtSet {
            ttl: 3600,
            records: vec![TxtRecord::from_value(&key)],
        },
    )
    .await
    .unwrap();
    let stored = fake.txt("example.com", "sel._domainkey");
    assert_eq!(content_value(&stored[0].content).unwrap(), key);
    assert!(stored[0].content.len() <= 1000);
    let long = TxtRecord::from_value(vec![b'a'; 995]);
    let before = fake.requests().len();
    let e = d
        .replace_txt(
            &zone,
            &n("big.example.com"),
            &TxtSet {
                ttl: 3600,
                records: vec![long],
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e}");
    assert_eq!(fake.requests().len(), before, "nothing sent");
}

fn change(name: &str, old: Option<TxtSet>, new: Option<TxtSet>) -> TxtChange {
    TxtChange {
        name: n(name),
        old: Observed::of(old),
        new,
    }
}

#[tokio::test]
async fn a_change_set_is_one_batch_request_after_one_read() {
    let (fake, d, zone) = setup().await;
    fake.add_record(
        "example.com",
        "",
        "TXT",
        "\"google-site-verification=abc\"",
        3600,
    );
    fake.add_record(
        "example.com",
        "old._domainkey",
        "TXT",
        "\"v=DKIM1; p=OLD\"",
        3600,
    );
    fake.add_record("example.com", "_dmarc", "TXT", "\"v=DMARC1; p=none\"", 3600);
    let names = [
        n("example.com"),
        n("old._domainkey.example.com"),
        n("new._domainkey.example.com"),
        n("_dmarc.example.com"),
    ];
    let before = fake.requests().len();
    let read = d.read_sets(&zone, &names).await.unwrap();
    assert_eq!(
        fake.requests().len() - before,
        1,
        "one listing reads every name"
    );
    assert_eq!(read[&names[2]].set, None);
    let apex = read[&names[0]].set.clone().unwrap();
    let mut spf = apex.clone();
    spf.records.push(TxtRecord::from_value("v=spf1 mx -all"));
    let changes = vec![
        TxtChange {
            name: names[0].clone(),
            old: read[&names[0]].clone(),
            new: Some(spf),
        },
        TxtChange {
            name: names[1].clone(),
            old: read[&names[1]].clone(),
            new: None,
        },
        TxtChange {
            name: names[2].clone(),
            old: read[&names[2]].clone(),
            new: Some(set(3600, &["v=DKIM1; p=NEW"])),
        },
        TxtChange {
            name: names[3].clone(),
            old: read[&names[3]].clone(),
            new: Some(set(600, &["v=DMARC1; p=none"])),
        },
    ];
    assert!(d.apply_traits().atomic);
    let before = fake.requests().len();
    d.apply(&zone, &changes).await.unwrap();
    let sent: Vec<_> = fake.requests().split_off(before);
    let writes: Vec<_> = sent.iter().filter(|r| r.is_write()).collect();
    assert_eq!(writes.len(), 1, "{sent:?}");
    assert_eq!(writes[0].path, "/v2/1010/zones/example.com/batch");
    assert_eq!(sent.len(), 2, "one re-read and one batch");
    let b = writes[0].json();
    assert_eq!(b["deletes"].as_array().unwrap().len(), 1);
    assert_eq!(b["updates"].as_array().unwrap().len(), 1, "the DMARC TTL");
    assert_eq!(b["creates"].as_array().unwrap().len(), 2);
    assert_eq!(d.batch_available(), Some(true));
    assert_eq!(
        values(&fake, ""),
        ["google-site-verification=abc", "v=spf1 mx -all"]
    );
    assert!(values(&fake, "old._domainkey").is_empty());
    assert_eq!(values(&fake, "new._domainkey"), ["v=DKIM1; p=NEW"]);
    assert_eq!(fake.txt("example.com", "_dmarc")[0].ttl, 600);
    // Applying it again changes nothing and sends no batch.
    let now = d.read_sets(&zone, &names).await.unwrap();
    let again: Vec<TxtChange> = changes
        .iter()
        .map(|c| TxtChange {
            old: now[&c.name].clone(),
            ..c.clone()
        })
        .collect();
    let w = fake.writes().len();
    d.apply(&zone, &again).await.unwrap();
    assert_eq!(fake.writes().len(), w);
}

#[tokio::test]
async fn a_failed_batch_writes_nothing() {
    let (fake, d, zone) = setup().await;
    fake.add_record(
        "example.com",
        "old._domainkey",
        "TXT",
        "\"v=DKIM1; p=OLD\"",
        3600,
    );
    let before_records = fake.zone_records("example.com");
    let changes = vec![
        change(
            "old._domainkey.example.com",
            Some(set(3600, &["v=DKIM1; p=OLD"])),
            None,
        ),
        change("a.example.com", None, Some(set(3600, &["one"]))),
        change("b.example.com", None, Some(set(3600, &["two"]))),
    ];
    // The third operation (the second create) fails DNSimple's validation.
    fake.fail_batch_at(2);
    let e = d.apply(&zone, &changes).await.unwrap_err();
    assert!(e.written.is_empty(), "atomic: nothing reported written");
    assert_eq!(
        (e.error.kind.clone(), e.error.status),
        (ErrorKind::Invalid, Some(400))
    );
    assert!(e.error.message.contains("Validation failed"), "{}", e.error);
    assert!(e.error.message.contains("\"index\":1"), "{}", e.error);
    assert_eq!(
        fake.zone_records("example.com"),
        before_records,
        "nothing written"
    );
    assert_eq!(fake.writes().len(), 1);
}

#[tokio::test]
async fn a_set_changed_since_it_was_read_is_a_conflict_and_nothing_is_sent() {
    let (fake, d, zone) = setup().await;
    let changes = vec![
        change("a.example.com", None, Some(set(3600, &["one"]))),
        change(
            "_dmarc.example.com",
            None,
            Some(set(3600, &["v=DMARC1; p=none"])),
        ),
    ];
    // Another tool writes a DMARC value after maildns read none.
    fake.add_record(
        "example.com",
        "_dmarc",
        "TXT",
        "\"v=DMARC1; p=reject\"",
        3600,
    );
    let e = d.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{}", e.error);
    assert!(e.written.is_empty());
    assert_eq!(e.error.name.as_deref(), Some("_dmarc.example.com"));
    assert!(fake.writes().is_empty());
    assert_eq!(values(&fake, "_dmarc"), ["v=DMARC1; p=reject"]);
}

#[tokio::test]
async fn without_the_plan_it_falls_back_to_per_name_writes() {
    let (fake, d, zone) = setup().await;
    fake.set_batch_plan(false);
    let changes = vec![
        change("a.example.com", None, Some(set(3600, &["one"]))),
        change("b.example.com", None, Some(set(3600, &["two"]))),
    ];
    d.apply(&zone, &changes).await.unwrap();
    assert_eq!(d.batch_available(), Some(false));
    assert!(!d.apply_traits().atomic);
    assert_eq!(values(&fake, "a"), ["one"]);
    assert_eq!(values(&fake, "b"), ["two"]);
    let batches = |f: &FakeDnsimple| {
        f.writes()
            .iter()
            .filter(|w| w.path.ends_with("/batch"))
            .count()
    };
    assert_eq!(batches(&fake), 1, "one 412, then per-name writes");
    d.apply(
        &zone,
        &[change("c.example.com", None, Some(set(3600, &["3"])))],
    )
    .await
    .unwrap();
    assert_eq!(batches(&fake), 1, "the 412 is remembered");
}

#[tokio::test]
async fn errors_carry_the_hosts_message_and_never_the_token() {
    let fake = FakeDnsimple::start(TOKEN, ACCOUNT).await;
    fake.add_zone("example.com");
    let d = adapter(&fake, "wrong-token-xyz", None);
    let e = d.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(e.message.contains("Authentication failed"), "{e}");
    let text = format!("{e} {e:?} {d:?}");
    assert!(!text.contains("wrong-token-xyz") && !text.contains(TOKEN));
    // Another account's id in the path: not found.
    let d = adapter(&fake, TOKEN, Some(999));
    let e = d.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    let d = adapter(&fake, TOKEN, Some(ACCOUNT));
    let e = d.find_zone(&n("x.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn quota_exceeded_is_retried_and_pages_are_followed() {
    let (fake, d, zone) = setup().await;
    fake.set_max_per_page(2);
    for i in 0..5 {
        fake.add_record("example.com", "p", "TXT", &format!("\"value-{i}\""), 3600);
    }
    fake.set_remaining(1);
    let got = d
        .read_txt(&zone, &n("p.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 5);
    assert!(fake.requests().iter().any(|r| r.query.contains("page=3")));
    let seen = d.rate_limits_seen();
    assert!(
        seen.iter().any(|(k, _)| k == "x-ratelimit-remaining"),
        "{seen:?}"
    );
    fake.fail_next(500, 10);
    let e = d.read_txt(&zone, &n("p.example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
}

/// The fake's drop check runs on the test's thread, so a broad endpoint the
/// test did not take fails it.
#[tokio::test]
async fn dropping_the_fake_after_a_broad_call_fails_the_test() {
    let (fake, _, _) = setup().await;
    let r = reqwest::Client::new()
        .delete(format!("{}/{ACCOUNT}/domains/example.com", fake.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let why = crate::drop_fails(fake);
    assert!(why.contains("deletes the domain"), "{why}");
}

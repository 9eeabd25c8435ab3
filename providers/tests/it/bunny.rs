//! Bunny DNS adapter against the local fake: Bunny's verbs (create PUT, update
//! POST, delete DELETE), per-record writes behind the change-set interface.

use maildns_providers::hosts::bunny::{Bunny, Config};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{
    ErrorKind, LimitError, Observed, Provider, Secret, TxtChange, TxtRecord, Zone,
};
use maildns_testkit::fakes::bunny::FakeBunny;

use crate::{n, set};

const KEY: &str = "bunny-access-key-1234";

fn adapter(fake: &FakeBunny, key: &str) -> Bunny {
    let mut c = Config::new(Secret::new(key));
    c.base_url = fake.base_url().to_string();
    Bunny::new(c, RetryPolicy::fast()).unwrap()
}

async fn setup() -> (FakeBunny, Bunny, Zone, u64) {
    let fake = FakeBunny::start(KEY).await;
    let id = fake.add_zone("example.com");
    let a = adapter(&fake, KEY);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    (fake, a, zone, id)
}

#[tokio::test]
async fn conformance() {
    let (_fake, a, zone, id) = setup().await;
    assert_eq!(zone.id, id.to_string());
    maildns_testkit::conformance::run(&a, &zone, None).await;
}

#[tokio::test]
async fn bunnys_verbs_and_foreign_records_kept() {
    let (fake, a, zone, id) = setup().await;
    let foreign = fake.add_record(id, 3, "", "google-site-verification=abc", 300, false);
    let off = fake.add_record(id, 3, "", "v=spf1 -all", 300, true);
    let www = fake.add_record(id, 0, "www", "192.0.2.1", 300, false);
    let apex = n("example.com");
    let read = a.read_txt(&zone, &apex).await.unwrap().unwrap();
    assert_eq!(
        read,
        set(300, &["google-site-verification=abc"]),
        "disabled records are not read"
    );
    let mut wanted = read.clone();
    wanted.records.push(TxtRecord::from_value("v=spf1 mx -all"));
    a.replace_txt(&zone, &apex, &wanted).await.unwrap();
    let writes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("PUT", format!("/dnszone/{id}/records").as_str())
    );
    assert_eq!(
        writes[0].json(),
        serde_json::json!({"Type": 3, "Name": "", "Value": "v=spf1 mx -all", "Ttl": 300})
    );
    // A TTL change updates each kept record in place (POST), keeping its id.
    wanted.ttl = 600;
    a.replace_txt(&zone, &apex, &wanted).await.unwrap();
    let posts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(
        posts
            .iter()
            .any(|p| p.path == format!("/dnszone/{id}/records/{foreign}"))
    );
    // Removing our value: one DELETE of its id; everything else stays.
    a.replace_txt(&zone, &apex, &set(600, &["google-site-verification=abc"]))
        .await
        .unwrap();
    let del = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect::<Vec<_>>();
    assert_eq!(del.len(), 1);
    let ids: Vec<u64> = fake.records(id).iter().map(|r| r.id).collect();
    assert_eq!(ids, [foreign, off, www]);
    assert_eq!(fake.records(id)[0].ttl, 600);
}

#[tokio::test]
async fn read_sets_is_one_request_and_a_foreign_edit_is_a_conflict() {
    let (fake, a, zone, id) = setup().await;
    fake.add_record(id, 3, "_dmarc", "v=DMARC1; p=none", 300, false);
    let names = [
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
        n("example.com"),
    ];
    let before = fake.requests().len();
    let read = a.read_sets(&zone, &names).await.unwrap();
    assert_eq!(fake.requests().len(), before + 1, "one GET for every name");
    assert_eq!(read[&names[0]].set, Some(set(300, &["v=DMARC1; p=none"])));
    assert_eq!(read[&names[1]], Observed::of(None));
    // Another writer adds a value after our read.
    fake.add_record(id, 3, "_dmarc", "foreign=1", 300, false);
    let changes = vec![
        TxtChange {
            name: names[1].clone(),
            old: read[&names[1]].clone(),
            new: Some(set(300, &["v=DKIM1; k=ed25519; p=abc"])),
        },
        TxtChange {
            name: names[0].clone(),
            old: read[&names[0]].clone(),
            new: Some(set(300, &["v=DMARC1; p=reject"])),
        },
    ];
    let e = a.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(
        e.written,
        vec![names[1].clone()],
        "the first name was written"
    );
    assert_eq!(fake.txt(id, "_dmarc"), ["v=DMARC1; p=none", "foreign=1"]);
    // Read again and apply: the foreign value stays.
    let read = a.read_sets(&zone, &names[..1]).await.unwrap();
    let mut wanted = read[&names[0]].set.clone().unwrap();
    wanted.records.retain(|r| r.value() != b"v=DMARC1; p=none");
    wanted
        .records
        .push(TxtRecord::from_value("v=DMARC1; p=reject"));
    a.apply(
        &zone,
        &[TxtChange {
            name: names[0].clone(),
            old: read[&names[0]].clone(),
            new: Some(wanted),
        }],
    )
    .await
    .unwrap();
    assert_eq!(fake.txt(id, "_dmarc"), ["foreign=1", "v=DMARC1; p=reject"]);
}

#[tokio::test]
async fn an_empty_value_is_refused_before_sending() {
    let (fake, a, zone, _) = setup().await;
    let e = a
        .replace_txt(&zone, &n("e.example.com"), &set(300, &[""]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Limit(LimitError::Empty));
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn zones_are_paged_and_the_longest_wins() {
    let fake = FakeBunny::start(KEY).await;
    fake.add_zone("example.org");
    fake.add_zone("example.com");
    let sub = fake.add_zone("sub.example.com");
    fake.set_page_size(1);
    let a = adapter(&fake, KEY);
    let z = a.find_zone(&n("x.sub.example.com")).await.unwrap();
    assert_eq!(
        (z.name.as_str(), z.id),
        ("sub.example.com", sub.to_string())
    );
    assert!(fake.requests().iter().any(|r| r.query.contains("page=3")));
    let e = a.find_zone(&n("example.net")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn wrong_key_is_one_line_and_429_is_retried() {
    let fake = FakeBunny::start(KEY).await;
    fake.add_zone("example.com");
    let a = adapter(&fake, "wrong-key-9");
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(
        e.to_string(),
        "bunny: find zone example.com: authentication failed (HTTP 401): unauthorized: The request authorization failed. Check the AccessKey header. (field AccessKey) — check the account's credential"
    );
    assert!(!format!("{e:?}{a:?}").contains("wrong-key-9"));
    let a = adapter(&fake, KEY);
    fake.rate_limit_next(0);
    fake.fail_next(503, 1);
    assert!(a.find_zone(&n("example.com")).await.is_ok());
}

/// The fake's drop check runs on the test's thread, so a broad endpoint the
/// test did not take fails it.
#[tokio::test]
async fn dropping_the_fake_after_a_broad_call_fails_the_test() {
    let (fake, _, _, id) = setup().await;
    reqwest::Client::new()
        .delete(format!("{}/dnszone/{id}", fake.base_url()))
        .header("AccessKey", KEY)
        .send()
        .await
        .unwrap();
    let why = crate::drop_fails(fake);
    assert!(why.contains(&format!("DELETE /dnszone/{id}")), "{why}");
}

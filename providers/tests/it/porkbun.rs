//! Porkbun adapter against the local fake of API v3.

use std::time::Duration;

use maildns_providers::hosts::porkbun::{Config, Porkbun};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{
    ErrorKind, Observed, Operation, Provider, Secret, TxtChange, TxtRecord, TxtSet,
};
use maildns_testkit::fakes::porkbun::FakePorkbun;

use crate::{n, set};

const KEY: &str = "pk1_0123456789abcdef";
const SECRET: &str = "sk1_fedcba9876543210";

fn adapter(fake: &FakePorkbun, secret: &str, policy: RetryPolicy) -> Porkbun {
    let mut c = Config::from_secret(&Secret::new(secret)).unwrap();
    c.base_url = fake.url.clone();
    Porkbun::new(c, policy).unwrap()
}

async fn setup() -> (FakePorkbun, Porkbun) {
    let fake = FakePorkbun::start(KEY, SECRET).await;
    fake.add_domain("example.com", true);
    let a = adapter(&fake, &format!("{KEY}:{SECRET}"), RetryPolicy::fast());
    (fake, a)
}

#[tokio::test]
async fn conformance() {
    let (_fake, p) = setup().await;
    let zone = p.find_zone(&n("_dmarc.example.com")).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", "example.com")
    );
    maildns_testkit::conformance::run(&p, &zone, None).await;
}

#[tokio::test]
async fn writes_by_id_keep_foreign_values_and_never_touch_a_whole_name() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    let foreign = fake.add_txt(
        "example.com",
        "example.com",
        "google-site-verification=xyz",
        600,
    );
    let apex = n("example.com");
    let now = p.read_txt(&zone, &apex).await.unwrap().unwrap();
    assert_eq!(now, set(600, &["google-site-verification=xyz"]));
    let mut records = now.records.clone();
    records.push(TxtRecord::from_value("v=spf1 mx -all"));
    p.replace_txt(&zone, &apex, &TxtSet { ttl: 600, records })
        .await
        .unwrap();
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/dns/create/example.com"))
        .expect("a create");
    let body = create.json();
    // Relative name (empty at the apex), the value as one string, TTL as a string.
    assert_eq!(body["name"], "");
    assert_eq!(body["content"], "v=spf1 mx -all");
    assert_eq!(body["ttl"], "600");
    assert_eq!(
        (body["apikey"].as_str(), body["secretapikey"].as_str()),
        (Some(KEY), Some(SECRET))
    );
    // Replace SPF: the foreign record keeps its id; only our value is deleted by id.
    p.replace_txt(
        &zone,
        &apex,
        &set(600, &["google-site-verification=xyz", "v=spf1 a mx -all"]),
    )
    .await
    .unwrap();
    let held = fake.txt("example.com");
    assert_eq!(held.len(), 2);
    assert_eq!(
        (held[0].id, held[0].content.as_str()),
        (foreign, "google-site-verification=xyz")
    );
    assert_eq!(held[1].content, "v=spf1 a mx -all");
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains("ByNameType/example.com/TXT")
                || r.path.contains("retrieveByNameType"))
    );
    assert!(fake.take_broad_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broad_endpoints_are_real_and_fail_the_test_when_called() {
    let (fake, _p) = setup().await;
    fake.add_txt(
        "example.com",
        "example.com",
        "google-site-verification=xyz",
        600,
    );
    fake.add_txt("example.com", "example.com", "v=spf1 -all", 600);
    let r = reqwest::Client::new()
        .post(format!("{}/dns/deleteByNameType/example.com/TXT", fake.url))
        .json(&serde_json::json!({"apikey": KEY, "secretapikey": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Every TXT value at the apex is gone: what an adapter must never do.
    assert!(fake.txt("example.com").is_empty());
    assert_eq!(
        fake.take_broad_calls(),
        ["deleteByNameType example.com TXT"]
    );
    let other = FakePorkbun::start(KEY, SECRET).await;
    other.add_domain("example.org", true);
    reqwest::Client::new()
        .post(format!("{}/dns/editByNameType/example.org/TXT/x", other.url))
        .json(&serde_json::json!({"apikey": KEY, "secretapikey": SECRET, "content": "y", "ttl": "600"}))
        .send()
        .await
        .unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(other)));
    let why = dropped.expect_err("a fake on which a broad endpoint was called fails the test");
    let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(why.contains("editByNameType x.example.org TXT"), "{why}");
}

#[tokio::test]
async fn read_sets_is_one_request_and_replace_if_unchanged_folds_the_compare() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    fake.add_txt("example.com", "_dmarc.example.com", "v=DMARC1; p=none", 600);
    fake.add_txt("example.com", "example.com", "v=spf1 -all", 900);
    let before = fake.requests().len();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("sel._domainkey.example.com"),
    ];
    let sets = p.read_sets(&zone, &names).await.unwrap();
    assert_eq!(
        fake.requests().len(),
        before + 1,
        "one retrieve for the zone"
    );
    assert_eq!(sets[&names[0]].set, Some(set(900, &["v=spf1 -all"])));
    assert_eq!(sets[&names[1]].set, Some(set(600, &["v=DMARC1; p=none"])));
    assert_eq!(sets[&names[2]].set, None);
    // Unchanged: one list (the compare) and one write.
    let change = TxtChange {
        name: names[1].clone(),
        old: sets[&names[1]].clone(),
        new: Some(set(600, &["v=DMARC1; p=reject"])),
    };
    let before = fake.requests().len();
    p.replace_if_unchanged(&zone, &change).await.unwrap();
    assert_eq!(fake.requests().len(), before + 3, "list, create, delete");
    // Changed under us: a conflict, nothing written.
    fake.add_txt("example.com", "example.com", "foreign=1", 900);
    let change = TxtChange {
        name: names[0].clone(),
        old: sets[&names[0]].clone(),
        new: Some(set(900, &["v=spf1 mx -all"])),
    };
    let before = fake.requests().len();
    let e = p.replace_if_unchanged(&zone, &change).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(fake.requests().len(), before + 1, "only the list");
    assert_eq!(fake.txt("example.com").len(), 2);
    // A deletion of an unchanged set removes it by id.
    let change = TxtChange {
        name: names[1].clone(),
        old: Observed::of(Some(set(600, &["v=DMARC1; p=reject"]))),
        new: None,
    };
    p.replace_if_unchanged(&zone, &change).await.unwrap();
    assert!(fake.txt("_dmarc.example.com").is_empty());
}

#[tokio::test]
async fn html_503_throttling_is_retried_then_succeeds() {
    let (fake, p) = setup().await;
    fake.throttle_next(2);
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    assert_eq!(
        fake.requests().len(),
        3,
        "two throttled answers, then the real one"
    );
    // The fake's own limiter (Porkbun's 1 request per second, here 1 per 100 ms):
    // every request of a replace gets through after its 503s.
    fake.set_rate_limit(1, Duration::from_millis(100));
    let policy = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(60),
        ..RetryPolicy::fast()
    };
    let p = adapter(&fake, &format!("{KEY}:{SECRET}"), policy);
    let name = n("_dmarc.example.com");
    p.replace_txt(&zone, &name, &set(600, &["v=DMARC1; p=none", "other"]))
        .await
        .unwrap();
    assert_eq!(fake.txt("_dmarc.example.com").len(), 2);
    assert!(
        fake.requests().len() > 3 + 3,
        "the limiter throttled some requests"
    );
}

#[tokio::test]
async fn persistent_throttling_is_rate_limited_naming_provider_and_operation() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    fake.throttle_next(50);
    let e = p
        .read_txt(&zone, &n("_dmarc.example.com"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "{e}");
    assert_eq!(
        (e.provider, e.operation, e.status),
        ("porkbun", Operation::Read, Some(503))
    );
    let text = e.to_string();
    assert!(
        text.starts_with("porkbun: read TXT _dmarc.example.com: rate limited (HTTP 503)"),
        "{text}"
    );
    assert!(!text.contains("<html>"), "{text}");
}

#[tokio::test]
async fn wrong_key_and_domain_not_opted_in_are_told_apart() {
    let (fake, _) = setup().await;
    fake.add_domain("example.org", false);
    let p = adapter(&fake, "pk1_wrong:sk1_wrong", RetryPolicy::fast());
    let e = p.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(400)));
    assert!(e.message.contains("Invalid API key"), "{e}");
    let text = format!("{e} {e:?} {p:?}");
    assert!(!text.contains("sk1_wrong") && !text.contains("pk1_wrong") && !text.contains(SECRET));
    let p = adapter(&fake, &format!("{KEY}:{SECRET}"), RetryPolicy::fast());
    let e = p.find_zone(&n("_dmarc.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission, "{e}");
    assert!(e.message.contains("not opted in to API access"), "{e}");
    let e = p.find_zone(&n("a.example.net")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
}

/// Porkbun does not refuse a TTL under the account's minimum (600, "typically",
/// in its OpenAPI spec): it stores the minimum instead (pkb_client's README,
/// certbot_dns_porkbun#50), and the fake does as the host. A silent change of
/// TTL is what maildns must not let happen, so the adapter refuses it first.
#[tokio::test]
async fn a_ttl_under_600_is_refused_before_sending_as_the_host_would_raise_it() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    // The host takes 300 and 0 and stores 600 ...
    for (name, ttl) in [("t", "300"), ("z", "0")] {
        let resp = reqwest::Client::new()
            .post(format!("{}/dns/create/example.com", fake.url))
            .json(&serde_json::json!({"apikey":KEY,"secretapikey":SECRET,"name":name,"type":"TXT","content":"x","ttl":ttl}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.text().await.unwrap().contains("SUCCESS"));
        let stored = fake.txt(&format!("{name}.example.com"));
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].ttl, 600, "{name}: raised to the minimum");
    }
    // ... so the adapter refuses it before sending.
    let creates = |f: &FakePorkbun| {
        f.requests()
            .iter()
            .filter(|r| r.path.contains("/dns/create/"))
            .count()
    };
    let before = creates(&fake);
    crate::expect_ttl_too_low(&p, &zone, "t.example.com", 300, 600).await;
    assert_eq!(creates(&fake), before, "nothing sent");
}

//! IONOS adapter against the local fake of the Hosting DNS API.

use std::time::Duration;

use maildns_providers::hosts::ionos::{Config, Ionos};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtChange};
use maildns_testkit::fakes::ionos::FakeIonos;

use crate::{n, set};

const KEY: &str = "0123456789abcdef.SeCrEtPaRt-xyz_0123456789";

fn adapter(fake: &FakeIonos, key: &str, policy: RetryPolicy) -> Ionos {
    let mut c = Config::new(Secret::new(key));
    c.base_url = fake.url.clone();
    Ionos::new(c, policy).unwrap()
}

async fn setup() -> (FakeIonos, Ionos) {
    let fake = FakeIonos::start(KEY).await;
    fake.add_zone("example.com");
    fake.add_zone("sub.example.com");
    let a = adapter(&fake, KEY, RetryPolicy::fast());
    (fake, a)
}

#[tokio::test]
async fn conformance() {
    let (_fake, p) = setup().await;
    let zone = p.find_zone(&n("_dmarc.example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    maildns_testkit::conformance::run(&p, &zone, None).await;
    // The longest zone wins.
    let sub = p
        .find_zone(&n("x._domainkey.sub.example.com"))
        .await
        .unwrap();
    assert_eq!(sub.name.as_str(), "sub.example.com");
    let e = p.find_zone(&n("example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

/// IONOS returns content quoted and escaped; compared after undoing that, the
/// same set written twice writes nothing the second time, and a value with
/// quotes and a backslash reads back as written.
#[tokio::test]
async fn quoted_answers_compare_equal_so_a_second_run_writes_nothing() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    let name = n("_dmarc.example.com");
    let wanted = set(3600, &["v=DMARC1; p=none", "say \"hi\" \\o/"]);
    p.replace_txt(&zone, &name, &wanted).await.unwrap();
    let post = fake
        .writes()
        .into_iter()
        .find(|w| w.method == "POST")
        .unwrap();
    // One POST creating both values, sent unquoted with FQDN names.
    assert_eq!(
        post.json(),
        serde_json::json!([
            {"name":"_dmarc.example.com","type":"TXT","content":"v=DMARC1; p=none","ttl":3600,"prio":0,"disabled":false},
            {"name":"_dmarc.example.com","type":"TXT","content":"say \"hi\" \\o/","ttl":3600,"prio":0,"disabled":false}
        ])
    );
    // Served quoted...
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/v1/zones/{}?recordName=_dmarc.example.com&recordType=TXT",
            fake.url, zone.id
        ))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(raw["records"][0]["content"], "\"v=DMARC1; p=none\"");
    assert_eq!(raw["records"][1]["content"], "\"say \\\"hi\\\" \\\\o/\"");
    // ...read back as written, and a second identical replace writes nothing.
    assert_eq!(
        p.read_txt(&zone, &name).await.unwrap(),
        Some(wanted.clone())
    );
    let writes = fake.writes().len();
    p.replace_txt(&zone, &name, &wanted).await.unwrap();
    assert_eq!(fake.writes().len(), writes, "in sync: no write");
    let sets = p
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    let change = TxtChange {
        name: name.clone(),
        old: sets[&name].clone(),
        new: Some(wanted.clone()),
    };
    p.replace_if_unchanged(&zone, &change).await.unwrap();
    assert_eq!(fake.writes().len(), writes, "the compare sees the same set");
    assert!(fake.take_broad_calls().is_empty());
}

#[tokio::test]
async fn merge_keeps_foreign_records_by_id_and_changes_ttl_in_place() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    let foreign = fake.add_record(
        "example.com",
        "example.com",
        "TXT",
        "google-site-verification=xyz",
    );
    let apex = n("example.com");
    p.replace_txt(
        &zone,
        &apex,
        &set(3600, &["google-site-verification=xyz", "v=spf1 -all"]),
    )
    .await
    .unwrap();
    p.replace_txt(
        &zone,
        &apex,
        &set(7200, &["google-site-verification=xyz", "v=spf1 mx -all"]),
    )
    .await
    .unwrap();
    let held = fake.txt("example.com");
    assert_eq!(held.len(), 2);
    assert_eq!((held[0].id.as_str(), held[0].ttl), (foreign.as_str(), 7200));
    assert_eq!(held[1].content, "v=spf1 mx -all");
    // Only per-record writes: POST records, PUT/DELETE one record.
    for w in fake.writes() {
        assert!(w.path.contains("/records"), "{} {}", w.method, w.path);
    }
    let foreign_path = format!("/records/{foreign}");
    assert!(
        fake.writes()
            .iter()
            .filter(|w| w.path.ends_with(&foreign_path))
            .all(|w| w.method == "PUT"),
        "the foreign record is only given the set's TTL"
    );
}

#[tokio::test]
async fn read_sets_is_one_request_and_a_changed_set_is_a_conflict() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    fake.add_record(
        "example.com",
        "_dmarc.example.com",
        "TXT",
        "v=DMARC1; p=none",
    );
    fake.add_record("example.com", "example.com", "TXT", "v=spf1 -all");
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s._domainkey.example.com"),
    ];
    let before = fake.requests().len();
    let sets = p.read_sets(&zone, &names).await.unwrap();
    assert_eq!(fake.requests().len(), before + 1);
    assert_eq!(sets[&names[0]].set, Some(set(3600, &["v=spf1 -all"])));
    assert_eq!(sets[&names[1]].set, Some(set(3600, &["v=DMARC1; p=none"])));
    assert_eq!(sets[&names[2]].set, None);
    fake.add_record("example.com", "example.com", "TXT", "foreign=1");
    let change = TxtChange {
        name: names[0].clone(),
        old: sets[&names[0]].clone(),
        new: Some(set(3600, &["v=spf1 mx -all"])),
    };
    let writes = fake.writes().len();
    let e = p.replace_if_unchanged(&zone, &change).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(fake.writes().len(), writes);
}

#[tokio::test]
async fn accepted_changes_are_served_after_the_publication_delay() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    fake.set_publish_delay(Duration::from_millis(300));
    let name = n("_dmarc.example.com");
    p.replace_txt(&zone, &name, &set(3600, &["v=DMARC1; p=none"]))
        .await
        .unwrap();
    // The API has it at once; the name servers not yet.
    assert!(p.read_txt(&zone, &name).await.unwrap().is_some());
    assert!(fake.served("_dmarc.example.com").is_empty());
    // Served once the delay has passed (polled, not slept: a busy machine may
    // take longer).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.served("_dmarc.example.com").is_empty() {
        assert!(std::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.served("_dmarc.example.com"), ["v=DMARC1; p=none"]);
    let profile = maildns_providers::registry::host("ionos")
        .unwrap()
        .profile()
        .unwrap();
    assert_eq!(profile.publish_delay, Some(Duration::from_secs(900)));
}

#[tokio::test]
async fn errors_carry_the_hosts_array_and_no_key() {
    let (fake, _) = setup().await;
    let p = adapter(&fake, "0123456789abcdef.wrong", RetryPolicy::fast());
    let e = p.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(
        e.message
            .contains("The customer is not authorized to do this operation. (UNAUTHORIZED)"),
        "{e}"
    );
    let text = format!("{e} {e:?} {p:?}");
    assert!(
        !text.contains("wrong") && !text.contains("SeCrEt"),
        "{text}"
    );
    let p = adapter(&fake, KEY, RetryPolicy::fast());
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    let e = p
        .replace_txt(&zone, &n("t.example.com"), &set(60, &["x"]))
        .await
        .unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Invalid, Some(400)));
    assert!(
        e.message.contains("INVALID_RECORD") && e.message.contains("invalidFields"),
        "{e}"
    );
    fake.fail_next(500, 10);
    let e = p.read_txt(&zone, &n("t.example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_wide_writes_are_real_and_fail_the_test_when_called() {
    let (fake, p) = setup().await;
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    fake.add_record(
        "example.com",
        "example.com",
        "TXT",
        "google-site-verification=xyz",
    );
    fake.add_record("example.com", "example.com", "TXT", "v=spf1 -all");
    // PATCH replaces the whole apex TXT group with what is sent.
    reqwest::Client::new()
        .patch(format!("{}/v1/zones/{}", fake.url, zone.id))
        .header("X-API-Key", KEY)
        .json(&serde_json::json!([{"name":"example.com","type":"TXT","content":"v=spf1 mx -all","ttl":3600}]))
        .send()
        .await
        .unwrap();
    let held: Vec<String> = fake
        .txt("example.com")
        .into_iter()
        .map(|r| r.content)
        .collect();
    assert_eq!(held, ["v=spf1 mx -all"], "the verification value is gone");
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fake)));
    let why = dropped.expect_err("a fake on which PATCH zone was called fails the test");
    let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(why.contains("PATCH /v1/zones/"), "{why}");
}

//! OVHcloud adapter against the local fake of API v1 (signed requests, typed
//! SPF/DKIM/DMARC records, staged writes published by a refresh).

use std::time::Duration;

use maildns_providers::hosts::ovh::{self, Config, Ovh};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Observed, Provider, Secret, TxtChange, TxtSet, Zone};
use maildns_testkit::fakes::ovh::FakeOvh;

use crate::{n, set};

const AK: &str = "7kbG7Bk7S9Nt7ZSV";
const AS: &str = "EXEgWIz07P0HYwtQDs7cNIqCiQaWSuHF";
const CK: &str = "MtSwSrPpNjqfVSmJhLbPyr2i45lSDTLC";

fn adapter(fake: &FakeOvh, secret: &str) -> Ovh {
    let mut c = Config::new(AK.to_string(), &Secret::new(secret)).unwrap();
    c.base_url = fake.base_url().to_string();
    Ovh::new(c, RetryPolicy::fast()).unwrap()
}

async fn setup() -> (FakeOvh, Ovh, Zone) {
    let fake = FakeOvh::start(AK, AS, CK).await;
    fake.add_zone("example.com");
    fake.add_zone("example.org");
    let a = adapter(&fake, &format!("{AS}:{CK}"));
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    (fake, a, zone)
}

fn values(s: &TxtSet) -> Vec<String> {
    let mut v: Vec<String> = s.records.iter().map(|r| r.value_lossy()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn conformance_and_every_write_is_published_by_a_refresh() {
    let (fake, o, zone) = setup().await;
    assert_eq!(zone.name.as_str(), "example.com");
    let sub = o.find_zone(&n("a.b.example.com")).await.unwrap();
    assert_eq!(sub, zone);
    maildns_testkit::conformance::run(&o, &zone, None).await;
    let before = fake.refreshes();
    let name = n("_dmarc.example.com");
    o.replace_txt(&zone, &name, &set(300, &["v=DMARC1; p=none"]))
        .await
        .unwrap();
    assert_eq!(fake.refreshes(), before + 1);
    assert_eq!(
        fake.published("example.com", "_dmarc"),
        fake.records("example.com", "_dmarc")
    );
    let raw = fake.records("example.com", "_dmarc");
    assert_eq!(raw.len(), 1);
    assert_eq!(
        (raw[0].field_type.as_str(), raw[0].target.as_str()),
        ("TXT", "\"v=DMARC1; p=none\"")
    );
    // Writing what is there already writes nothing and refreshes nothing.
    o.replace_txt(&zone, &name, &set(300, &["v=DMARC1; p=none"]))
        .await
        .unwrap();
    assert_eq!(fake.refreshes(), before + 1);
    o.delete_txt(&zone, &name).await.unwrap();
    assert!(fake.published("example.com", "_dmarc").is_empty());
    // Only narrow endpoints were used.
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.ends_with("/import") && !r.path.ends_with("/reset"))
    );
}

/// The issue's case: OVH's SPF field type, served as TXT, must be found; the
/// plan's update goes into that record (same id, type kept), never a second v=spf1.
#[tokio::test]
async fn an_existing_spf_typed_record_is_found_and_updated_in_place_keeping_its_type() {
    let (fake, o, zone) = setup().await;
    let spf = fake.add_record(
        "example.com",
        "",
        "SPF",
        "\"v=spf1 include:mx.ovh.com ~all\"",
        3600,
    );
    let site = fake.add_record(
        "example.com",
        "",
        "TXT",
        "\"google-site-verification=abc\"",
        3600,
    );
    // Records elsewhere in the zone are not counted at the apex.
    fake.add_record("example.com", "www", "TXT", "\"elsewhere\"", 3600);
    let apex = n("example.com");
    let read = o.read_txt(&zone, &apex).await.unwrap().unwrap();
    assert_eq!(
        values(&read),
        [
            "google-site-verification=abc",
            "v=spf1 include:mx.ovh.com ~all"
        ]
    );
    // In sync: writing the same set sends nothing.
    o.replace_txt(&zone, &apex, &read).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    // Update: the SPF-typed record takes the new value.
    let wanted = set(
        3600,
        &[
            "google-site-verification=abc",
            "v=spf1 include:mx.ovh.com -all",
        ],
    );
    o.replace_txt(&zone, &apex, &wanted).await.unwrap();
    let raw = fake.published("example.com", "");
    assert_eq!(raw.len(), 2, "{raw:?}");
    let spf_now = raw.iter().find(|r| r.id == spf).unwrap();
    assert_eq!(
        (spf_now.field_type.as_str(), spf_now.target.as_str()),
        ("SPF", "\"v=spf1 include:mx.ovh.com -all\"")
    );
    assert!(raw.iter().any(|r| r.id == site));
    let spf_count = raw.iter().filter(|r| r.target.contains("v=spf1")).count();
    assert_eq!(spf_count, 1, "never a second v=spf1: {raw:?}");
    for w in fake.writes() {
        assert!(
            w.method != "POST" || w.path.ends_with("/refresh"),
            "no create: {w:?}"
        );
        assert!(
            w.json().get("fieldType").is_none(),
            "type never sent on PUT: {w:?}"
        );
    }
    assert_eq!(
        values(&o.read_txt(&zone, &apex).await.unwrap().unwrap()),
        values(&wanted)
    );
}

#[tokio::test]
async fn dkim_and_dmarc_typed_records_keep_their_type_and_unquoted_target() {
    let (fake, o, zone) = setup().await;
    let dkim = fake.add_record(
        "example.com",
        "sel._domainkey",
        "DKIM",
        "v=DKIM1; k=rsa; p=OLD",
        0,
    );
    let dmarc = fake.add_record("example.com", "_dmarc", "DMARC", "v=DMARC1; p=none", 0);
    let got = o
        .read_txt(&zone, &n("sel._domainkey.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.ttl, 0, "ttl 0: the zone default, kept as read");
    let long = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    o.replace_txt(&zone, &n("sel._domainkey.example.com"), &set(0, &[&long]))
        .await
        .unwrap();
    o.replace_txt(
        &zone,
        &n("_dmarc.example.com"),
        &set(0, &["v=DMARC1; p=reject"]),
    )
    .await
    .unwrap();
    let k = &fake.published("example.com", "sel._domainkey")[0];
    assert_eq!(
        (k.id, k.field_type.as_str(), k.target.as_str()),
        (dkim, "DKIM", long.as_str())
    );
    let d = &fake.published("example.com", "_dmarc")[0];
    assert_eq!(
        (d.id, d.field_type.as_str(), d.target.as_str()),
        (dmarc, "DMARC", "v=DMARC1; p=reject")
    );
    // A DKIM value does not go into the old record of another kind: an unrelated
    // TXT value is replaced by a new TXT record.
    let other = fake.add_record("example.com", "x", "TXT", "\"other=1\"", 300);
    o.replace_txt(&zone, &n("x.example.com"), &set(300, &["v=spf1 -all"]))
        .await
        .unwrap();
    let x = fake.published("example.com", "x");
    assert_eq!(x.len(), 1);
    assert_ne!(x[0].id, other);
    assert_eq!(x[0].field_type, "TXT");
}

#[tokio::test]
async fn a_change_set_refreshes_once_and_refuses_a_set_changed_since_it_was_read() {
    let (fake, o, zone) = setup().await;
    let a = n("_dmarc.example.com");
    let b = n("sel._domainkey.example.com");
    let sets = o.read_sets(&zone, &[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(sets.len(), 2);
    let changes = vec![
        TxtChange {
            name: a.clone(),
            old: sets[&a].clone(),
            new: Some(set(300, &["v=DMARC1; p=none"])),
        },
        TxtChange {
            name: b.clone(),
            old: sets[&b].clone(),
            new: Some(set(300, &["v=DKIM1; k=rsa; p=AAAA"])),
        },
    ];
    let before = fake.refreshes();
    o.apply(&zone, &changes).await.unwrap();
    assert_eq!(
        fake.refreshes(),
        before + 1,
        "one refresh for the change set"
    );
    assert_eq!(fake.published("example.com", "_dmarc").len(), 1);
    assert_eq!(fake.published("example.com", "sel._domainkey").len(), 1);
    // Another writer changes _dmarc after our read: conflict, nothing written.
    let stale = TxtChange {
        name: a.clone(),
        old: Observed::of(Some(set(300, &["v=DMARC1; p=none"]))),
        new: Some(set(300, &["v=DMARC1; p=reject"])),
    };
    fake.add_record("example.com", "_dmarc", "TXT", "\"foreign=1\"", 300);
    let writes = fake.writes().len();
    let e = o.apply(&zone, &[stale]).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert_eq!(
        fake.writes().len(),
        writes,
        "nothing written after a conflict"
    );
    // Re-applying what is in place is harmless.
    o.apply(&zone, &changes[1..]).await.unwrap();
    assert_eq!(fake.published("example.com", "sel._domainkey").len(), 1);
}

#[tokio::test]
async fn wrong_keys_are_auth_errors_with_hosts_message_and_no_secret() {
    let (fake, _, _) = setup().await;
    let cases = [
        (format!("wrong-secret:{CK}"), 400, "Invalid signature"),
        (
            format!("{AS}:wrong-consumer"),
            403,
            "This credential is not valid",
        ),
    ];
    for (secret, status, message) in cases {
        let o = adapter(&fake, &secret);
        let e = o.find_zone(&n("example.com")).await.unwrap_err();
        assert_eq!(
            (e.kind.clone(), e.status),
            (ErrorKind::Auth, Some(status)),
            "{e}"
        );
        assert!(e.message.contains(message), "{e}");
        assert!(e.message.contains("query id"), "{e}");
        let text = format!("{e} {e:?} {o:?}");
        for s in ["wrong-secret", "wrong-consumer", AS, CK] {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
    }
    let mut c = Config::new("other-app".into(), &Secret::new(format!("{AS}:{CK}"))).unwrap();
    c.base_url = fake.base_url().to_string();
    let e = Ovh::new(c, RetryPolicy::fast())
        .unwrap()
        .find_zone(&n("example.com"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Auth, Some(403)));
    assert!(
        e.message
            .contains("This application key is invalid (INVALID_KEY"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_apis_clock_is_used_and_a_stale_timestamp_is_refused() {
    let fake = FakeOvh::start(AK, AS, CK).await;
    fake.add_zone("example.com");
    fake.set_clock_skew(3600);
    let o = adapter(&fake, &format!("{AS}:{CK}"));
    o.find_zone(&n("example.com")).await.unwrap();
    o.read_txt(
        &Zone {
            name: n("example.com"),
            id: "example.com".into(),
        },
        &n("example.com"),
    )
    .await
    .unwrap();
    let times = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/1.0/auth/time")
        .count();
    assert_eq!(times, 1, "the clock is asked once");
    // Signed with the machine's clock, an hour behind the API's: refused.
    let url = format!("{}/domain/zone", fake.base_url());
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let resp = reqwest::Client::new()
        .get(&url)
        .header("X-Ovh-Application", AK)
        .header("X-Ovh-Consumer", CK)
        .header("X-Ovh-Timestamp", ts.to_string())
        .header(
            "X-Ovh-Signature",
            ovh::signature(AS, CK, "GET", &url, "", ts),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["errorCode"], "QUERY_TIME_OUT");
}

/// Signs and sends a request to the fake as OVH's own examples do.
async fn signed_post(fake: &FakeOvh, path: &str, body: &str) -> u16 {
    let url = format!("{}{path}", fake.base_url());
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    reqwest::Client::new()
        .post(&url)
        .header("X-Ovh-Application", AK)
        .header("X-Ovh-Consumer", CK)
        .header("X-Ovh-Timestamp", ts.to_string())
        .header(
            "X-Ovh-Signature",
            ovh::signature(AS, CK, "POST", &url, body, ts),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_fake_enforces_typed_record_rules_and_reports_broad_calls() {
    let fake = FakeOvh::start(AK, AS, CK).await;
    fake.add_zone("example.com");
    let quoted =
        r#"{"fieldType":"DKIM","subDomain":"s._domainkey","target":"\"v=DKIM1; p=x\"","ttl":0}"#;
    assert_eq!(
        signed_post(&fake, "/domain/zone/example.com/record", quoted).await,
        400
    );
    let misplaced = r#"{"fieldType":"DMARC","subDomain":"x","target":"v=DMARC1; p=none","ttl":0}"#;
    assert_eq!(
        signed_post(&fake, "/domain/zone/example.com/record", misplaced).await,
        400
    );
    assert!(fake.take_broad_calls().is_empty());
    assert_eq!(
        signed_post(&fake, "/domain/zone/example.com/import", "{}").await,
        200
    );
    assert_eq!(
        fake.take_broad_calls(),
        ["POST /domain/zone/example.com/import"]
    );
}

#[tokio::test]
#[should_panic(expected = "zone-wide endpoints were called")]
async fn the_fake_fails_the_test_when_the_zone_is_reset() {
    let fake = FakeOvh::start(AK, AS, CK).await;
    fake.add_zone("example.com");
    assert_eq!(
        signed_post(&fake, "/domain/zone/example.com/reset", "").await,
        200
    );
    drop(fake);
}

#[tokio::test]
async fn unknown_zone_throttling_and_server_errors() {
    let (fake, o, zone) = setup().await;
    let e = o.find_zone(&n("a.example.net")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let mut c = Config::new(AK.into(), &Secret::new(format!("{AS}:{CK}"))).unwrap();
    c.base_url = fake.base_url().to_string();
    let o2 = Ovh::new(c, policy).unwrap();
    // First /auth/time (throttled, then a server error, then served).
    fake.rate_limit_next(1);
    fake.fail_next(500, 1);
    assert_eq!(o2.find_zone(&n("example.com")).await.unwrap(), zone);
    fake.fail_next(500, 4);
    let e = o.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
    assert!(e.message.contains("Internal server error"), "{e}");
    // Values OVH's escaping is not known for are refused before sending.
    let writes = fake.writes().len();
    let e = o
        .replace_txt(&zone, &n("q.example.com"), &set(300, &["a\"b"]))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e}");
    assert_eq!(fake.writes().len(), writes);
}

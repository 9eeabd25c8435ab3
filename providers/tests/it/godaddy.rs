//! GoDaddy adapter against the local fake of the Domains API v1: a write replaces
//! every value at a name, so foreign values there must be sent back.

use std::time::Duration;

use maildns_providers::changeset::{Observed, TxtChange};
use maildns_providers::hosts::godaddy::{Config, GoDaddy};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, LimitError, Provider, Secret, TxtRecord, TxtSet, Zone};
use maildns_testkit::fakes::godaddy::{FakeGoDaddy, GdRecord};

use crate::{n, set};

const KEY: &str = "dKy7testkey";
const SECRET: &str = "Sx9testsecret";

fn adapter(fake: &FakeGoDaddy, credential: &str, policy: RetryPolicy) -> GoDaddy {
    let mut c = Config::new(Secret::new(credential));
    c.base_url = fake.base_url().to_string();
    GoDaddy::new(c, policy).unwrap()
}

async fn setup() -> (FakeGoDaddy, GoDaddy, Zone) {
    let fake = FakeGoDaddy::start(KEY, SECRET).await;
    fake.add_domain("example.com");
    let d = adapter(&fake, &format!("{KEY}:{SECRET}"), RetryPolicy::fast());
    let zone = d.find_zone(&n("_dmarc.example.com")).await.unwrap();
    (fake, d, zone)
}

fn txt_at(fake: &FakeGoDaddy, name: &str) -> Vec<String> {
    let mut v: Vec<String> = fake
        .records("example.com")
        .into_iter()
        .filter(|r| r.kind == "TXT" && r.name == name)
        .map(|r| r.data)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn conformance_and_absent_names_either_way() {
    let (fake, d, zone) = setup().await;
    assert_eq!(zone.name.as_str(), "example.com");
    // The suite reads one name far more than 60 times a minute (maildns paces
    // real accounts by the descriptor's rate limit).
    fake.set_rate_limit(100_000, Duration::from_secs(60));
    maildns_testkit::conformance::run(&d, &zone, None).await;
    fake.absent_is_404(true);
    maildns_testkit::conformance::run(&d, &zone, None).await;
}

#[tokio::test]
async fn foreign_values_at_the_name_are_sent_back_and_kept() {
    let (fake, d, zone) = setup().await;
    fake.add_record("example.com", "@", "A", "192.0.2.1", 600);
    fake.add_record(
        "example.com",
        "@",
        "TXT",
        "google-site-verification=abc",
        3600,
    );
    fake.add_record("example.com", "@", "TXT", "v=spf1 a -all", 3600);
    fake.add_record("example.com", "@", "MX", "mail.example.com", 3600);
    let name = n("example.com");
    let change = {
        let read = d
            .read_sets(&zone, std::slice::from_ref(&name))
            .await
            .unwrap();
        let old = read[&name].clone();
        let mut records: Vec<TxtRecord> = old
            .set
            .clone()
            .unwrap()
            .records
            .into_iter()
            .filter(|r| !r.value_starts_with_ignore_case("v=spf1"))
            .collect();
        records.push(TxtRecord::from_value("v=spf1 mx -all"));
        TxtChange {
            name: name.clone(),
            old,
            new: Some(TxtSet { ttl: 3600, records }),
        }
    };
    d.apply(&zone, std::slice::from_ref(&change)).await.unwrap();
    let puts: Vec<_> = fake.writes();
    assert_eq!(puts.len(), 1);
    assert_eq!(
        (puts[0].method.as_str(), puts[0].path.as_str()),
        ("PUT", "/v1/domains/example.com/records/TXT/@")
    );
    let body = puts[0].json();
    let sent: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["data"].as_str().unwrap())
        .collect();
    assert_eq!(sent, ["google-site-verification=abc", "v=spf1 mx -all"]);
    assert_eq!(
        txt_at(&fake, "@"),
        ["google-site-verification=abc", "v=spf1 mx -all"]
    );
    let others: Vec<GdRecord> = fake
        .records("example.com")
        .into_iter()
        .filter(|r| r.kind != "TXT")
        .collect();
    assert_eq!(others.len(), 2, "A and MX untouched");
    // In sync: the same change again writes nothing.
    let read = d
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    d.apply(
        &zone,
        &[TxtChange {
            old: read[&name].clone(),
            ..change
        }],
    )
    .await
    .unwrap();
    assert_eq!(fake.writes().len(), 1);
}

#[tokio::test]
async fn a_name_changed_since_it_was_read_is_a_conflict_and_nothing_is_written() {
    let (fake, d, zone) = setup().await;
    let name = n("_dmarc.example.com");
    let read = d
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    fake.add_record("example.com", "_dmarc", "TXT", "v=DMARC1; p=reject", 3600);
    let e = d
        .apply(
            &zone,
            &[TxtChange {
                name: name.clone(),
                old: read[&name].clone(),
                new: Some(set(3600, &["v=DMARC1; p=none"])),
            }],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", e.error);
    assert!(e.written.is_empty());
    assert!(fake.writes().is_empty());
    assert_eq!(txt_at(&fake, "_dmarc"), ["v=DMARC1; p=reject"]);
}

#[tokio::test]
async fn a_change_between_the_write_and_the_read_back_is_reported() {
    let (fake, d, zone) = setup().await;
    fake.after_next_put(|recs| {
        recs.push(GdRecord {
            name: "_dmarc".into(),
            kind: "TXT".into(),
            data: "v=DMARC1; p=quarantine".into(),
            ttl: 3600,
        })
    });
    let e = d
        .replace_txt(
            &zone,
            &n("_dmarc.example.com"),
            &set(3600, &["v=DMARC1; p=none"]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("p=quarantine") && e.message.contains("wrote TTL 3600"),
        "{e}"
    );
}

#[tokio::test]
async fn access_gate_and_bad_credentials_say_what_godaddy_asks() {
    let (fake, _, _) = setup().await;
    let d = adapter(&fake, "wrongkey:wrongsecret", RetryPolicy::fast());
    let e = d.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(
        e.message.contains("UNABLE_TO_AUTHENTICATE") && e.message.contains("10 or more domains"),
        "{e}"
    );
    assert!(!format!("{e} {e:?} {d:?}").contains("wrongsecret"));
    fake.deny_access(true);
    let d = adapter(&fake, &format!("{KEY}:{SECRET}"), RetryPolicy::fast());
    let e = d.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(
        (e.kind.clone(), e.status),
        (ErrorKind::Permission, Some(403))
    );
    assert!(
        e.message.contains("ACCESS_DENIED")
            && e.message
                .contains("10 or more domains or a Discount Domain Club Premier membership"),
        "{e}"
    );
    assert!(!format!("{e} {e:?} {d:?}").contains(SECRET));
    // The credential is KEY:SECRET.
    let mut c = Config::new(Secret::new("just-a-key"));
    c.base_url = fake.base_url().to_string();
    let e = GoDaddy::new(c, RetryPolicy::fast()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(
        e.message.contains("KEY:SECRET") && !e.message.contains("just-a-key"),
        "{e}"
    );
}

#[tokio::test]
async fn limits_are_enforced_before_sending_and_by_the_fake() {
    let (fake, d, zone) = setup().await;
    // 4096-bit DKIM: over 512 characters of data.
    let big = TxtRecord::from_value(maildns_testkit::conformance::dkim_like(736, 3));
    let e = d
        .replace_txt(
            &zone,
            &n("big._domainkey.example.com"),
            &TxtSet {
                ttl: 3600,
                records: vec![big],
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Limit(LimitError::ValueTooLong { max: 512, .. })
        ),
        "{e}"
    );
    assert!(fake.requests().iter().all(|r| !r.path.contains("big")));
    // 2048-bit fits.
    let key = maildns_testkit::conformance::dkim_like(392, 3);
    d.replace_txt(
        &zone,
        &n("sel._domainkey.example.com"),
        &TxtSet {
            ttl: 3600,
            records: vec![TxtRecord::from_value(&key)],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        txt_at(&fake, "sel._domainkey"),
        [String::from_utf8(key).unwrap()]
    );
    // A TTL under 600: the host's 422 names the field, in GoDaddy's words
    // (win-acme#1947; the fake as strict as the host) ...
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/v1/domains/example.com/records/TXT/t",
            fake.base_url()
        ))
        .header("authorization", format!("sso-key {KEY}:{SECRET}"))
        .json(&serde_json::json!([{"data":"x","ttl":300}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body = resp.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "INVALID_BODY", "{body}");
    assert_eq!(
        v["fields"][0],
        serde_json::json!({"code": "UNKNOWN_RESTRICTION", "message": "must have a minimum value of 600", "path": "records[0].ttl"}),
        "{body}"
    );
    // ... so the adapter refuses it before sending.
    let before = fake.writes().len();
    crate::expect_ttl_too_low(&d, &zone, "t.example.com", 300, 600).await;
    assert_eq!(fake.writes().len(), before, "nothing sent");
}

#[tokio::test]
async fn per_endpoint_rate_limit_is_retried() {
    let (fake, _, zone) = setup().await;
    let policy = RetryPolicy {
        max_attempts: 12,
        max_delay: Duration::from_millis(150),
        ..RetryPolicy::fast()
    };
    let d = adapter(&fake, &format!("{KEY}:{SECRET}"), policy);
    fake.set_rate_limit(2, Duration::from_millis(300));
    for _ in 0..4 {
        d.read_txt(&zone, &n("a.example.com")).await.unwrap();
    }
    let throttled = fake.requests().len() - 4 - 1;
    assert!(throttled >= 1, "at least one 429 answered and retried");
    fake.set_rate_limit(60, Duration::from_secs(60));
    fake.fail_next(500, 12);
    let e = d.read_txt(&zone, &n("a.example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
}

#[tokio::test]
async fn the_fake_trips_on_broad_endpoints() {
    let (fake, _, _) = setup().await;
    let c = reqwest::Client::new();
    let auth = format!("sso-key {KEY}:{SECRET}");
    for (m, p) in [
        (reqwest::Method::PUT, "/v1/domains/example.com/records"),
        (reqwest::Method::PUT, "/v1/domains/example.com/records/TXT"),
        (reqwest::Method::PATCH, "/v1/domains/example.com/records"),
    ] {
        c.request(m, format!("{}{p}", fake.base_url()))
            .header("authorization", &auth)
            .json(&serde_json::json!([{"data": "x", "name": "@", "type": "TXT", "ttl": 600}]))
            .send()
            .await
            .unwrap();
    }
    let hits = fake.tripwire().take();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(hits[0].contains("whole zone"));
}

#[tokio::test]
async fn delete_removes_every_value_and_twice_is_harmless() {
    let (fake, d, zone) = setup().await;
    fake.add_record(
        "example.com",
        "old._domainkey",
        "TXT",
        "v=DKIM1; p=OLD",
        3600,
    );
    let change = TxtChange {
        name: n("old._domainkey.example.com"),
        old: Observed::of(Some(set(3600, &["v=DKIM1; p=OLD"]))),
        new: None,
    };
    d.apply(&zone, std::slice::from_ref(&change)).await.unwrap();
    assert!(txt_at(&fake, "old._domainkey").is_empty());
    assert_eq!(fake.writes()[0].method, "DELETE");
    d.delete_txt(&zone, &n("old._domainkey.example.com"))
        .await
        .unwrap();
}

/// The fake's drop check runs on the test's thread, so a broad endpoint the
/// test did not take fails it.
#[tokio::test]
async fn dropping_the_fake_after_a_broad_call_fails_the_test() {
    let (fake, _, _) = setup().await;
    reqwest::Client::new()
        .put(format!(
            "{}/v1/domains/example.com/records/TXT",
            fake.base_url()
        ))
        .header("authorization", format!("sso-key {KEY}:{SECRET}"))
        .json(&serde_json::json!([{"data": "x", "name": "@", "type": "TXT", "ttl": 600}]))
        .send()
        .await
        .unwrap();
    let why = crate::drop_fails(fake);
    assert!(
        why.contains("PUT /v1/domains/example.com/records/TXT"),
        "{why}"
    );
}

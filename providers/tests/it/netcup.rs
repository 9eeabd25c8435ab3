//! netcup adapter against the local fake of the CCP web service (JSON).

use maildns_providers::hosts::netcup::{Config, Netcup};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, LimitError, Operation, Provider, Secret, TxtChange};
use maildns_testkit::conformance::{self, Options};
use maildns_testkit::fakes::netcup::FakeNetcup;

use crate::{n, set};

const CUSTOMER: &str = "123456";
const KEY: &str = "apikey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";
const PASSWORD: &str = "apiPassw0rd-xyz";
const ZONE_TTL: u32 = 600;

fn adapter(fake: &FakeNetcup, secret: &str, policy: RetryPolicy) -> Netcup {
    let mut c = Config::from_secret(CUSTOMER.into(), &Secret::new(secret)).unwrap();
    c.endpoint = fake.url.clone();
    Netcup::new(c, policy).unwrap()
}

async fn setup() -> (FakeNetcup, Netcup) {
    let fake = FakeNetcup::start(CUSTOMER, KEY, PASSWORD).await;
    fake.add_zone("example.com", ZONE_TTL);
    let a = adapter(&fake, &format!("{KEY}:{PASSWORD}"), RetryPolicy::fast());
    (fake, a)
}

/// The whole suite at the zone's TTL. netcup keeps one TTL per zone, so the
/// cases that write another TTL (replace and the change set's replace, at twice
/// the TTL) are refused, naming the zone's TTL, and are the only failures.
#[tokio::test]
async fn conformance_at_the_zones_ttl() {
    let (fake, p) = setup().await;
    fake.set_per_minute(None);
    let zone = p.find_zone(&n("_dmarc.example.com")).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", "example.com")
    );
    let failures = conformance::check(
        &p,
        &zone,
        &Options {
            ttl: ZONE_TTL,
            ..Options::default()
        },
    )
    .await;
    // Every failure is that refusal, and the plain replace case is one of them.
    let refusal =
        "netcup keeps one TTL per zone (600 s in example.com) and this set asks for 1200 s";
    assert!(
        failures.iter().all(|f| f.detail.contains(refusal)),
        "{failures:#?}"
    );
    assert!(
        failures.iter().any(|f| f.case == "replace a set"),
        "{failures:#?}"
    );
    assert!(failures.len() <= 2, "{failures:#?}");
    // Every operation logged in and out again; the A and MX records are untouched.
    let (logins, logouts, open) = fake.sessions();
    assert!(
        logins > 50 && logins == logouts && open == 0,
        "{logins} {logouts} {open}"
    );
    let kinds: Vec<String> = fake
        .records("example.com")
        .iter()
        .map(|r| r.kind.clone())
        .collect();
    assert_eq!(kinds, ["A", "MX"], "the suite cleans up after itself");
}

#[tokio::test]
async fn one_session_per_operation_with_relative_names_and_one_update() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    let foreign = fake.add_record("example.com", "@", "TXT", "google-site-verification=xyz");
    let apex = n("example.com");
    let before = fake.requests().len();
    p.replace_txt(
        &zone,
        &apex,
        &set(
            ZONE_TTL,
            &["google-site-verification=xyz", "v=spf1 mx -all"],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.actions()[before..],
        [
            "login",
            "infoDnsZone",
            "infoDnsRecords",
            "updateDnsRecords",
            "logout"
        ]
    );
    let update = fake.requests()[before + 3].json();
    let param = &update["param"];
    assert_eq!(param["customernumber"], CUSTOMER);
    assert_eq!(param["apikey"], KEY);
    assert!(
        param.get("apipassword").is_none(),
        "the password goes to login only"
    );
    assert_eq!(
        param["dnsrecordset"]["dnsrecords"],
        serde_json::json!([{"hostname":"@","type":"TXT","priority":"","destination":"v=spf1 mx -all","deleterecord":false}])
    );
    // Replace our value: one update creating the new one and deleting ours by id.
    p.replace_txt(
        &zone,
        &apex,
        &set(
            ZONE_TTL,
            &["google-site-verification=xyz", "v=spf1 a mx -all"],
        ),
    )
    .await
    .unwrap();
    let held = fake.txt("example.com", "@");
    assert_eq!(held.len(), 2);
    assert_eq!(
        (held[0].id, held[0].destination.as_str()),
        (foreign, "google-site-verification=xyz")
    );
    assert_eq!(held[1].destination, "v=spf1 a mx -all");
    assert_eq!(fake.sessions().2, 0, "no session left open");
    assert!(fake.take_broad_calls().is_empty());
}

#[tokio::test]
async fn read_sets_is_one_listing_and_replace_if_unchanged_compares_in_the_same_session() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    fake.add_record("example.com", "_dmarc", "TXT", "v=DMARC1; p=none");
    fake.add_record("example.com", "@", "TXT", "v=spf1 -all");
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("x._domainkey.example.com"),
    ];
    let before = fake.requests().len();
    let sets = p.read_sets(&zone, &names).await.unwrap();
    assert_eq!(
        fake.actions()[before..],
        ["login", "infoDnsZone", "infoDnsRecords", "logout"]
    );
    assert_eq!(sets[&names[0]].set, Some(set(ZONE_TTL, &["v=spf1 -all"])));
    assert_eq!(
        sets[&names[1]].set,
        Some(set(ZONE_TTL, &["v=DMARC1; p=none"]))
    );
    assert_eq!(sets[&names[2]].set, None);
    fake.add_record("example.com", "@", "TXT", "foreign=1");
    let change = TxtChange {
        name: names[0].clone(),
        old: sets[&names[0]].clone(),
        new: Some(set(ZONE_TTL, &["v=spf1 mx -all"])),
    };
    let e = p.replace_if_unchanged(&zone, &change).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(!fake.actions().contains(&"updateDnsRecords".to_string()));
    let change = TxtChange {
        name: names[1].clone(),
        old: sets[&names[1]].clone(),
        new: None,
    };
    let before = fake.requests().len();
    p.replace_if_unchanged(&zone, &change).await.unwrap();
    assert_eq!(
        fake.actions()[before..],
        [
            "login",
            "infoDnsZone",
            "infoDnsRecords",
            "updateDnsRecords",
            "logout"
        ]
    );
    assert!(fake.txt("example.com", "_dmarc").is_empty());
}

#[tokio::test]
async fn throttling_inside_http_200_is_retried_then_succeeds() {
    let (fake, p) = setup().await;
    fake.throttle_next(2);
    let zone = p.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    assert_eq!(fake.actions()[2..], ["login", "infoDnsZone", "logout"]);
    assert_eq!(
        fake.requests().len(),
        5,
        "two throttled answers, then the login"
    );
}

#[tokio::test]
async fn persistent_throttling_is_rate_limited_naming_provider_and_operation() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    // The fake's own limit, as netcup's 180 a minute: here 2.
    fake.set_per_minute(Some(2));
    let e = p
        .read_txt(&zone, &n("_dmarc.example.com"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "{e}");
    assert_eq!(
        (e.provider, e.operation, e.status),
        ("netcup", Operation::Read, Some(200))
    );
    let text = e.to_string();
    assert!(
        text.starts_with("netcup: read TXT _dmarc.example.com: rate limited (HTTP 200): Validation Error. More than 180 requests per minute"),
        "{text}"
    );
}

#[tokio::test]
async fn an_invalid_session_gets_one_fresh_login() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    fake.add_record("example.com", "_dmarc", "TXT", "v=DMARC1; p=none");
    fake.refuse_sessions_next(1);
    let got = p.read_txt(&zone, &n("_dmarc.example.com")).await.unwrap();
    assert_eq!(got, Some(set(ZONE_TTL, &["v=DMARC1; p=none"])));
    assert_eq!(
        fake.actions(),
        [
            "login",
            "infoDnsZone",
            "login",
            "infoDnsZone",
            "infoDnsRecords",
            "logout"
        ]
    );
    // Twice in a row: an authentication error, not a loop.
    fake.refuse_sessions_next(2);
    let e = p
        .read_txt(&zone, &n("_dmarc.example.com"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.message
            .contains("The session id is not in a valid format."),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_one_line_naming_the_customer_and_no_secret() {
    let (fake, _) = setup().await;
    let p = adapter(&fake, "wrongkey:wrong-pass", RetryPolicy::fast());
    let e = p.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(
        (e.kind.clone(), e.operation),
        (ErrorKind::Auth, Operation::FindZone)
    );
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.starts_with("netcup: find zone example.com: authentication failed (HTTP 200): login refused for customer number 123456: Validation Error. The login data is wrong"),
        "{text}"
    );
    let all = format!("{text} {e:?} {p:?}");
    for secret in ["wrongkey", "wrong-pass", KEY, PASSWORD] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[tokio::test]
async fn backslashes_are_refused_before_sending_as_netcup_refuses_them() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    let before = fake.requests().len();
    let e = p
        .replace_txt(&zone, &n("bs.example.com"), &set(ZONE_TTL, &["a\\b"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Limit(LimitError::ForbiddenByte { byte: b'\\', at: 1 })
        ),
        "{e:?}"
    );
    assert_eq!(fake.requests().len(), before, "nothing sent");
    // The fake refuses it as netcup does: 4013 inside an HTTP 200.
    let login = reqwest::Client::new()
        .post(&fake.url)
        .json(&serde_json::json!({"action":"login","param":{"customernumber":CUSTOMER,"apikey":KEY,"apipassword":PASSWORD}}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let sid = login["responsedata"]["apisessionid"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(&fake.url)
        .json(&serde_json::json!({"action":"updateDnsRecords","param":{"customernumber":CUSTOMER,"apikey":KEY,"apisessionid":sid,"domainname":"example.com",
            "dnsrecordset":{"dnsrecords":[{"hostname":"bs","type":"TXT","priority":"","destination":"a\\b","deleterecord":false}]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["statuscode"].as_u64()),
        (Some("error"), Some(4013))
    );
    assert!(fake.txt("example.com", "bs").is_empty());
}

#[tokio::test]
async fn another_ttl_than_the_zones_is_refused_before_any_write() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    let e = p
        .replace_txt(
            &zone,
            &n("_dmarc.example.com"),
            &set(3600, &["v=DMARC1; p=none"]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    assert!(e.message.contains("set the domain's ttl to 600"), "{e}");
    assert!(!fake.actions().contains(&"updateDnsRecords".to_string()));
    assert!(!fake.actions().contains(&"updateDnsZone".to_string()));
    assert_eq!(fake.sessions().2, 0);
}

#[tokio::test]
async fn a_clouddns_zone_is_not_found_saying_why() {
    let (fake, p) = setup().await;
    fake.add_clouddns_zone("example.org");
    let e = p.find_zone(&n("_dmarc.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
    assert!(e.message.contains("CloudDNS"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_wide_update_is_real_and_fails_the_test_when_called() {
    let fake = FakeNetcup::start(CUSTOMER, KEY, PASSWORD).await;
    fake.add_zone("example.com", ZONE_TTL);
    let c = reqwest::Client::new();
    let login: serde_json::Value = c
        .post(&fake.url)
        .json(&serde_json::json!({"action":"login","param":{"customernumber":CUSTOMER,"apikey":KEY,"apipassword":PASSWORD}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = login["responsedata"]["apisessionid"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(&fake.url)
        .json(&serde_json::json!({"action":"updateDnsZone","param":{"customernumber":CUSTOMER,"apikey":KEY,"apisessionid":sid,"domainname":"example.com","dnszone":{"ttl":"60"}}}))
        .send()
        .await
        .unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fake)));
    let why = dropped.expect_err("a fake on which updateDnsZone was called fails the test");
    let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(why.contains("updateDnsZone example.com"), "{why}");
}

#[tokio::test]
async fn a_change_set_is_one_session_one_listing_and_one_update() {
    let (fake, p) = setup().await;
    let zone = p.zone_for(&n("example.com")).unwrap();
    fake.add_record("example.com", "@", "TXT", "google-site-verification=xyz");
    fake.add_record("example.com", "@", "TXT", "v=spf1 -all");
    fake.add_record("example.com", "old._domainkey", "TXT", "v=DKIM1; p=OLD");
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("old._domainkey.example.com"),
    ];
    let sets = p.read_sets(&zone, &names).await.unwrap();
    let changes = [
        TxtChange {
            name: names[0].clone(),
            old: sets[&names[0]].clone(),
            new: Some(set(
                ZONE_TTL,
                &["google-site-verification=xyz", "v=spf1 mx -all"],
            )),
        },
        TxtChange {
            name: names[1].clone(),
            old: sets[&names[1]].clone(),
            new: Some(set(ZONE_TTL, &["v=DMARC1; p=none"])),
        },
        TxtChange {
            name: names[2].clone(),
            old: sets[&names[2]].clone(),
            new: None,
        },
    ];
    let before = fake.requests().len();
    p.apply(&zone, &changes).await.unwrap();
    assert_eq!(
        fake.actions()[before..],
        [
            "login",
            "infoDnsZone",
            "infoDnsRecords",
            "updateDnsRecords",
            "logout"
        ]
    );
    let apex: Vec<String> = fake
        .txt("example.com", "@")
        .into_iter()
        .map(|r| r.destination)
        .collect();
    assert_eq!(apex, ["google-site-verification=xyz", "v=spf1 mx -all"]);
    assert_eq!(
        fake.txt("example.com", "_dmarc")[0].destination,
        "v=DMARC1; p=none"
    );
    assert!(fake.txt("example.com", "old._domainkey").is_empty());
    // Applied again on what is there now: harmless, nothing to send.
    let sets = p.read_sets(&zone, &names).await.unwrap();
    let again: Vec<TxtChange> = changes
        .iter()
        .map(|c| TxtChange {
            old: sets[&c.name].clone(),
            ..c.clone()
        })
        .collect();
    let before = fake.requests().len();
    p.apply(&zone, &again).await.unwrap();
    assert!(!fake.actions()[before..].contains(&"updateDnsRecords".to_string()));
    // A set changed since it was read: a conflict, nothing sent for any name.
    fake.add_record("example.com", "_dmarc", "TXT", "foreign=1");
    let before = fake.requests().len();
    let e = p.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict() && e.written.is_empty(), "{e}");
    assert!(!fake.actions()[before..].contains(&"updateDnsRecords".to_string()));
    assert_eq!(fake.sessions().2, 0);
}

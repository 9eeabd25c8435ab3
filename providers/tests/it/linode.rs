//! Linode adapter against the local fake of API v4.

use std::time::Duration;

use maildns_providers::hosts::linode::{Config, Linode};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtChange, TxtRecord, Zone};
use maildns_testkit::fakes::linode::FakeLinode;

use crate::{n, set};

const TOKEN: &str = "linode-pat-0123456789abcdef";

fn adapter(fake: &FakeLinode, token: &str, policy: RetryPolicy) -> Linode {
    let mut c = Config::new(Secret::new(token));
    c.base_url = fake.base_url().to_string();
    Linode::new(c, policy).unwrap()
}

async fn setup() -> (FakeLinode, u64, Linode, Zone) {
    let fake = FakeLinode::start(TOKEN).await;
    fake.add_domain("example.org");
    let id = fake.add_domain("example.com");
    let a = adapter(&fake, TOKEN, RetryPolicy::fast());
    let zone = a.find_zone(&n("_dmarc.example.com")).await.unwrap();
    (fake, id, a, zone)
}

#[tokio::test]
async fn conformance_and_publish_read_back() {
    let (fake, id, l, zone) = setup().await;
    assert_eq!(
        (zone.name.as_str(), zone.id.clone()),
        ("example.com", id.to_string())
    );
    // 3600, and twice that for the replace case: TTLs Linode keeps as given.
    maildns_testkit::conformance::run_with(
        &l,
        &zone,
        &maildns_testkit::conformance::Options {
            ttl: 3600,
            ..Default::default()
        },
    )
    .await;
    let name = n("_dmarc.example.com");
    let s = set(3600, &["v=DMARC1; p=none"]);
    l.replace_txt(&zone, &name, &s).await.unwrap();
    assert_eq!(l.read_txt(&zone, &name).await.unwrap(), Some(s));
    let raw = fake.records(id, "_dmarc");
    assert_eq!(
        (raw.len(), raw[0].target.as_str(), raw[0].ttl_sec),
        (1, "v=DMARC1; p=none", 3600)
    );
    let post = fake
        .writes()
        .into_iter()
        .rfind(|w| w.method == "POST")
        .unwrap();
    assert_eq!(
        post.json(),
        serde_json::json!({"type":"TXT","name":"_dmarc","target":"v=DMARC1; p=none","ttl_sec":3600})
    );
}

/// Publish, then the next run's read finds everything in sync: nothing written.
#[tokio::test]
async fn publish_then_a_second_run_is_in_sync() {
    let (fake, id, l, zone) = setup().await;
    fake.add_record(id, "", "TXT", "google-site-verification=abc", 0);
    let apex = n("example.com");
    let dkim = n("202611._domainkey.example.com");
    let key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    let sets = l
        .read_sets(&zone, &[apex.clone(), dkim.clone()])
        .await
        .unwrap();
    let foreign = sets[&apex].set.clone().unwrap();
    assert_eq!(foreign.ttl, 0, "the domain default, kept as read");
    let mut with_spf = foreign.clone();
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
    l.apply(&zone, &changes).await.unwrap();
    let writes = fake.writes().len();
    // Second run: one request reads the zone's TXT records; all in sync.
    let before = fake.requests().len();
    let again = l
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
    // Re-applying the same change set writes nothing.
    l.apply(&zone, &changes).await.unwrap();
    assert_eq!(fake.writes().len(), writes);
    assert_eq!(fake.records(id, "202611._domainkey")[0].target, key);
}

#[tokio::test]
async fn a_changed_spf_is_rewritten_in_place_and_foreign_values_keep_their_ids() {
    let (fake, id, l, zone) = setup().await;
    let foreign = fake.add_record(id, "", "TXT", "google-site-verification=abc", 3600);
    let spf = fake.add_record(id, "", "TXT", "v=spf1 a -all", 3600);
    l.replace_txt(
        &zone,
        &n("example.com"),
        &set(3600, &["google-site-verification=abc", "v=spf1 mx -all"]),
    )
    .await
    .unwrap();
    let raw = fake.records(id, "");
    assert_eq!(raw.len(), 2);
    assert_eq!((raw[0].id, raw[1].id), (foreign, spf));
    assert_eq!(raw[1].target, "v=spf1 mx -all");
    assert!(
        fake.writes().iter().all(|w| w.method == "PUT"),
        "{:?}",
        fake.writes()
    );
    assert!(
        !fake
            .writes()
            .iter()
            .any(|w| w.path.ends_with(&foreign.to_string()))
    );
}

#[tokio::test]
async fn a_ttl_linode_would_round_is_refused_before_sending() {
    let (fake, _, l, zone) = setup().await;
    let e = l
        .replace_txt(&zone, &n("t.example.com"), &set(600, &["x"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("would round 600 to 300"), "{e}");
    assert!(fake.writes().is_empty());
    // The fake rounds as Linode does, for writes made elsewhere.
    assert_eq!(maildns_testkit::fakes::linode::round_ttl(600), 300);
    assert_eq!(maildns_testkit::fakes::linode::round_ttl(2000), 3600);
}

#[tokio::test]
async fn a_ttl_dropped_on_create_is_set_again() {
    let (fake, id, l, zone) = setup().await;
    fake.drop_ttl_on_create(true);
    l.replace_txt(
        &zone,
        &n("_dmarc.example.com"),
        &set(7200, &["v=DMARC1; p=none"]),
    )
    .await
    .unwrap();
    assert_eq!(fake.records(id, "_dmarc")[0].ttl_sec, 7200);
    let methods: Vec<String> = fake.writes().iter().map(|w| w.method.clone()).collect();
    assert_eq!(methods, ["POST", "PUT"]);
}

#[tokio::test]
async fn changes_are_published_on_linodes_cycle() {
    let (fake, id, l, zone) = setup().await;
    fake.set_publish_lag(Duration::from_millis(300));
    l.replace_txt(
        &zone,
        &n("_dmarc.example.com"),
        &set(3600, &["v=DMARC1; p=none"]),
    )
    .await
    .unwrap();
    assert!(
        fake.published(id, "_dmarc").is_empty(),
        "not yet on the name servers"
    );
    assert_eq!(fake.records(id, "_dmarc").len(), 1, "but the API has it");
    // Published on the next cycle (polled, not slept: a busy machine may take
    // longer).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.published(id, "_dmarc").is_empty() {
        assert!(std::time::Instant::now() < deadline, "never published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.published(id, "_dmarc").len(), 1);
    let d = maildns_providers::registry::host("linode")
        .unwrap()
        .descriptor()
        .unwrap();
    assert_eq!(d.limits.publish_delay_seconds, Some(900));
}

#[tokio::test]
async fn bad_token_is_auth_with_hosts_message_and_no_token() {
    let (fake, _, _, _) = setup().await;
    let l = adapter(&fake, "linode-wrong", RetryPolicy::fast());
    let e = l.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert!(e.message.contains("Invalid Token"), "{e}");
    let text = format!("{e} {e:?} {l:?}");
    assert!(!text.contains("linode-wrong") && !text.contains(TOKEN));
    let e = l.find_zone(&n("a.example.net")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    let ok = adapter(&fake, TOKEN, RetryPolicy::fast());
    assert_eq!(
        ok.find_zone(&n("a.example.net")).await.unwrap_err().kind,
        ErrorKind::ZoneNotFound
    );
}

#[tokio::test]
async fn rate_limit_then_server_error_then_success_and_pagination() {
    let (fake, id, _, zone) = setup().await;
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let l = adapter(&fake, TOKEN, policy);
    fake.rate_limit_next(1);
    fake.fail_next(500, 1);
    assert_eq!(l.find_zone(&n("example.com")).await.unwrap(), zone);
    assert!(
        l.rate_limits_seen()
            .iter()
            .any(|(k, _)| k == "x-ratelimit-limit"),
        "{:?}",
        l.rate_limits_seen()
    );
    // As many failures as the policy's attempts (RetryPolicy::fast: 4).
    fake.fail_next(500, 4);
    let e = l.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
    assert!(e.message.contains("Please try again later"), "{e}");
    fake.set_max_per_page(2);
    for i in 0..5 {
        fake.add_record(id, "p", "TXT", &format!("value-{i}"), 300);
    }
    let got = l
        .read_txt(&zone, &n("p.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 5);
    l.replace_txt(&zone, &n("p.example.com"), &set(300, &["value-4"]))
        .await
        .unwrap();
    let raw = fake.records(id, "p");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].target, "value-4");
    let sets = l.read_sets(&zone, &[n("p.example.com")]).await.unwrap();
    assert_eq!(
        sets[&n("p.example.com")]
            .set
            .as_ref()
            .unwrap()
            .records
            .len(),
        1
    );
}

//! deSEC adapter against the local fake.

use std::time::Duration;

use maildns_providers::hosts::desec::{Config, Desec};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, Split, TxtRecord, TxtSet};
use maildns_testkit::fakes::desec::FakeDesec;

use crate::{change, n, set};

const TOKEN: &str = "desec-test-token-5150";

fn adapter(fake: &FakeDesec, token: &str, policy: RetryPolicy) -> Desec {
    let mut c = Config::new(Secret::new(token));
    c.base_url = fake.base_url().to_string();
    Desec::new(c, policy).unwrap()
}

async fn setup() -> (FakeDesec, Desec) {
    let fake = FakeDesec::start(TOKEN).await;
    fake.add_domain("example.com");
    fake.add_domain("sub.example.com");
    let d = adapter(&fake, TOKEN, RetryPolicy::fast());
    (fake, d)
}

#[tokio::test]
async fn conformance_and_publish_read_back() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("_dmarc.mail.example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    assert_eq!(
        d.find_zone(&n("a.sub.example.com"))
            .await
            .unwrap()
            .name
            .as_str(),
        "sub.example.com"
    );
    maildns_testkit::conformance::run(&d, &zone, None).await;
    let name = n("example.com");
    let set = TxtSet {
        ttl: 3600,
        records: vec![TxtRecord::from_value("v=spf1 -all")],
    };
    d.replace_txt(&zone, &name, &set).await.unwrap();
    assert_eq!(d.read_txt(&zone, &name).await.unwrap(), Some(set.clone()));
    assert_eq!(
        fake.rrset("example.com", "").unwrap().records,
        vec!["\"v=spf1 -all\"".to_string()]
    );
    // The last create is ours (the conformance suite wrote before).
    let post = fake
        .writes()
        .into_iter()
        .rev()
        .find(|w| w.method == "POST")
        .unwrap();
    assert_eq!(post.json()["subname"], "");
    // Same set again: no write.
    let before = fake.writes().len();
    d.replace_txt(&zone, &name, &set).await.unwrap();
    assert_eq!(fake.writes().len(), before);
    d.delete_txt(&zone, &name).await.unwrap();
    assert_eq!(d.read_txt(&zone, &name).await.unwrap(), None);
    // Absent set: deSEC answers 204.
    d.delete_txt(&zone, &name).await.unwrap();
}

#[tokio::test]
async fn merge_keeps_foreign_value_and_sends_full_set() {
    let (fake, d) = setup().await;
    fake.add_rrset(
        "example.com",
        "",
        3600,
        &["\"google-site-verification=abc\""],
    );
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let name = n("example.com");
    let cur = d.read_txt(&zone, &name).await.unwrap().unwrap();
    let mut records = cur.records.clone();
    records.push(TxtRecord::from_value("v=spf1 -all"));
    d.replace_txt(&zone, &name, &TxtSet { ttl: 3600, records })
        .await
        .unwrap();
    let patch = fake
        .writes()
        .into_iter()
        .find(|w| w.method == "PATCH")
        .unwrap();
    assert_eq!(patch.path, "/api/v1/domains/example.com/rrsets/@/TXT/");
    assert_eq!(
        patch.json()["records"],
        serde_json::json!(["\"google-site-verification=abc\"", "\"v=spf1 -all\""])
    );
    assert_eq!(fake.rrset("example.com", "").unwrap().records.len(), 2);
}

#[tokio::test]
async fn dkim_2048_sent_as_quoted_strings() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let name = n("202611._domainkey.example.com");
    let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    let rec = TxtRecord::split(v.as_bytes(), Split::Before(b"p="));
    let set = TxtSet {
        ttl: 3600,
        records: vec![rec],
    };
    d.replace_txt(&zone, &name, &set).await.unwrap();
    // The last create is ours (the conformance suite wrote before).
    let post = fake
        .writes()
        .into_iter()
        .rev()
        .find(|w| w.method == "POST")
        .unwrap();
    let expected = format!(
        "\"v=DKIM1; k=rsa; \" \"p={}\" \"{}\"",
        "A".repeat(253),
        "A".repeat(139)
    );
    assert_eq!(post.json()["records"][0], expected.as_str());
    assert_eq!(post.json()["subname"], "202611._domainkey");
    assert_eq!(d.read_txt(&zone, &name).await.unwrap(), Some(set));
}

#[tokio::test]
async fn low_ttl_refused_before_sending_and_host_400_is_invalid() {
    let (fake, d) = setup().await;
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("x")],
    };
    let e = d
        .replace_txt(&zone, &n("t.example.com"), &set)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Limit(maildns_providers::LimitError::TtlTooLow {
            ttl: 300,
            min: 3600
        }),
        "{e}"
    );
    assert!(fake.writes().is_empty());
    // Create behind the adapter's back between its read and its write: the host's 400.
    let resp = reqwest::Client::new()
        .post(format!("{}/domains/example.com/rrsets/", fake.base_url()))
        .header("authorization", format!("Token {TOKEN}"))
        .json(&serde_json::json!({"subname":"u","type":"TXT","ttl":60,"records":["\"a\""]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    fake.fail_next(400, 1);
    let ok = TxtSet {
        ttl: 3600,
        records: vec![TxtRecord::from_value("x")],
    };
    let e = d
        .replace_txt(&zone, &n("t.example.com"), &ok)
        .await
        .unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Invalid, Some(400)));
    assert!(e.message.contains("HTTP 400"), "{e}");
}

#[tokio::test]
async fn fake_canonicalizes_and_refuses_duplicates() {
    let (fake, _) = setup().await;
    let c = reqwest::Client::new();
    let url = format!("{}/domains/example.com/rrsets/", fake.base_url());
    let body = serde_json::json!({"subname":"c","type":"TXT","ttl":3600,"records":[format!("\"{}\"", "q".repeat(300))]});
    let r = c
        .post(&url)
        .header("authorization", format!("Token {TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        fake.rrset("example.com", "c").unwrap().records,
        vec![format!("\"{}\" \"{}\"", "q".repeat(255), "q".repeat(45))]
    );
    let r = c
        .post(&url)
        .header("authorization", format!("Token {TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("Another RRset")
    );
}

#[tokio::test]
async fn bad_token_is_auth_with_hosts_message_and_no_token() {
    let (fake, _) = setup().await;
    let d = adapter(&fake, "desec-wrong", RetryPolicy::fast());
    let e = d.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(401)));
    assert_eq!(e.message, "Invalid token.");
    let text = format!("{e} {e:?} {d:?}");
    assert!(!text.contains("desec-wrong") && !text.contains(TOKEN));
}

#[tokio::test]
async fn unknown_zone_is_zone_not_found() {
    let (_fake, d) = setup().await;
    let e = d.find_zone(&n("x.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn throttled_write_retried_after_retry_after() {
    let (fake, _) = setup().await;
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let d = adapter(&fake, TOKEN, policy);
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let set = TxtSet {
        ttl: 3600,
        records: vec![TxtRecord::from_value("v=spf1 -all")],
    };
    // The read (GET) passes; the write gets 429 Retry-After: 1, then 500, then succeeds.
    fake.fail_next(404, 1);
    fake.rate_limit_next(1);
    fake.fail_next(500, 1);
    d.replace_txt(&zone, &n("example.com"), &set).await.unwrap();
    assert_eq!(fake.rrset("example.com", "").unwrap().records.len(), 1);
    let posts = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 3);
    // A Retry-After past the bound (5 minutes: an hourly or daily window is
    // spent) is not waited out: RateLimited with deSEC's words and the wait.
    let d = adapter(&fake, TOKEN, RetryPolicy::fast());
    fake.rate_limit_next(3601);
    let e = d.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.contains("Request was throttled"), "{e}");
    assert!(e.message.contains("asks to wait 3601s"), "{e}");
}

/// A Retry-After longer than the retry policy's longest backoff step (here
/// 200 ms) but within deSEC's bound is waited out, not reported: deSEC's
/// windows are a second, a minute, an hour.
#[tokio::test]
async fn a_retry_after_within_the_bound_is_waited_out() {
    let (fake, d) = setup().await;
    assert!(RetryPolicy::fast().max_delay < Duration::from_secs(1));
    assert_eq!(
        maildns_providers::hosts::desec::MAX_RETRY_AFTER,
        Duration::from_secs(300)
    );
    let zone = d.zone_for(&n("example.com")).unwrap();
    fake.rate_limit_next(1);
    let started = std::time::Instant::now();
    assert_eq!(d.read_txt(&zone, &n("example.com")).await.unwrap(), None);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(fake.requests().len(), 2);
}

/// deSEC's minimum TTL is the domain's `minimum_ttl` (900 here), not a fixed
/// 3600: 900 is written, 600 refused before sending, naming the domain's minimum.
#[tokio::test]
async fn the_domains_own_minimum_ttl_decides() {
    let (fake, d) = setup().await;
    fake.set_minimum_ttl("example.com", 900);
    let zone = d.zone_for(&n("example.com")).unwrap();
    d.replace_txt(&zone, &n("example.com"), &set(900, &["v=spf1 -all"]))
        .await
        .unwrap();
    assert_eq!(fake.rrset("example.com", "").unwrap().ttl, 900);
    let writes = fake.writes().len();
    let e = d
        .replace_txt(
            &zone,
            &n("_dmarc.example.com"),
            &set(600, &["v=DMARC1; p=none"]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Limit(maildns_providers::LimitError::TtlTooLow { ttl: 600, min: 900 }),
        "{e}"
    );
    assert_eq!(e.name.as_deref(), Some("_dmarc.example.com"));
    assert!(e.message.contains("minimum_ttl of 900"), "{e}");
    assert!(e.message.contains("domain example.com"), "{e}");
    assert_eq!(fake.writes().len(), writes, "refused before sending");
    let domain_reads = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/domains/example.com/"))
        .count();
    assert_eq!(domain_reads, 1, "the domain's minimum is read once");
    // Over deSEC's maximum of 86,400: refused before sending too.
    let e = d
        .replace_txt(&zone, &n("example.com"), &set(86_401, &["v=spf1 -all"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Limit(maildns_providers::LimitError::TtlTooHigh {
                ttl: 86_401,
                max: 86_400
            })
        ),
        "{e}"
    );
    assert_eq!(fake.writes().len(), writes);
}

#[tokio::test]
async fn read_sets_is_one_listing_and_apply_one_bulk_patch() {
    let (fake, d) = setup().await;
    fake.add_rrset(
        "example.com",
        "",
        3600,
        &["\"site-verification=x\"", "\"v=spf1 -all\""],
    );
    fake.add_rrset("example.com", "_dmarc", 3600, &["\"v=DMARC1; p=none\""]);
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
        Some(set(3600, &["site-verification=x", "v=spf1 -all"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    let t = d.apply_traits();
    assert!(t.atomic && !t.compare_and_swap);
    d.apply(
        &zone,
        &[
            change(
                &sets,
                "example.com",
                Some(set(3600, &["site-verification=x", "v=spf1 mx -all"])),
            ),
            change(&sets, "_dmarc.example.com", None),
            change(
                &sets,
                "s1._domainkey.example.com",
                Some(set(3600, &["v=DKIM1; p=AA"])),
            ),
        ],
    )
    .await
    .unwrap();
    let reqs = fake.requests();
    assert_eq!(
        reqs.len(),
        3,
        "one listing again and one bulk PATCH: {reqs:?}"
    );
    assert_eq!(reqs[2].method, "PATCH");
    assert!(reqs[2].path.ends_with("/domains/example.com/rrsets/"));
    assert_eq!(reqs[2].json().as_array().unwrap().len(), 3);
    assert_eq!(fake.rrset("example.com", "_dmarc"), None);
    assert_eq!(
        fake.rrset("example.com", "s1._domainkey").unwrap().records,
        ["\"v=DKIM1; p=AA\""]
    );
    assert_eq!(fake.rrset("example.com", "").unwrap().records.len(), 2);
    // Past one page (deSEC pages at 500 with a cursor), at most two requests a name.
    fake.set_page_size(1);
    let before = fake.requests().len();
    let again = d.read_sets(&zone, &names).await.unwrap();
    assert!(fake.requests().len() - before <= 2 * names.len());
    assert_eq!(
        again[&n("s1._domainkey.example.com")].set,
        Some(set(3600, &["v=DKIM1; p=AA"]))
    );
    assert_eq!(again[&n("_dmarc.example.com")].set, None);
}

#[tokio::test]
async fn a_set_changed_since_the_read_is_a_conflict_and_nothing_is_written() {
    let (fake, d) = setup().await;
    fake.add_rrset("example.com", "_dmarc", 3600, &["\"v=DMARC1; p=none\""]);
    let zone = d.zone_for(&n("example.com")).unwrap();
    let names = [n("example.com"), n("_dmarc.example.com")];
    let sets = d.read_sets(&zone, &names).await.unwrap();
    fake.add_rrset("example.com", "", 3600, &["\"theirs\""]);
    let e = d
        .apply(
            &zone,
            &[
                change(
                    &sets,
                    "_dmarc.example.com",
                    Some(set(3600, &["v=DMARC1; p=reject"])),
                ),
                change(&sets, "example.com", Some(set(3600, &["v=spf1 -all"]))),
            ],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(fake.writes().is_empty());
    assert_eq!(
        fake.rrset("example.com", "").unwrap().records,
        ["\"theirs\""]
    );
}

/// The bulk PATCH is all or nothing: one RRset deSEC refuses leaves the others unwritten.
#[tokio::test]
async fn a_refused_rrset_in_the_bulk_patch_writes_nothing() {
    let (fake, d) = setup().await;
    fake.set_minimum_ttl("example.com", 60);
    let zone = d.find_zone(&n("example.com")).await.unwrap();
    let names = [n("example.com"), n("_dmarc.example.com")];
    let sets = d.read_sets(&zone, &names).await.unwrap();
    // The adapter believes 60 is allowed; the domain's minimum rises meanwhile.
    fake.set_minimum_ttl("example.com", 3600);
    let e = d
        .apply(
            &zone,
            &[
                change(&sets, "example.com", Some(set(3600, &["v=spf1 -all"]))),
                change(
                    &sets,
                    "_dmarc.example.com",
                    Some(set(60, &["v=DMARC1; p=none"])),
                ),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Invalid, "{e}");
    assert!(e.written.is_empty());
    assert_eq!(fake.rrset("example.com", ""), None, "atomic");
}

/// With deSEC's per-domain write limit (2/s), a third bulk write within a
/// second gets 429 and `Retry-After`; the adapter waits it out and the write
/// goes through (one refused PATCH, nothing reported).
#[tokio::test]
async fn the_per_domain_write_limit_is_waited_out() {
    let (fake, d) = setup().await;
    fake.limit_writes();
    let zone = d.zone_for(&n("example.com")).unwrap();
    for (i, v) in ["v=spf1 -all", "v=spf1 mx -all", "v=spf1 a mx -all"]
        .iter()
        .enumerate()
    {
        let sets = d.read_sets(&zone, &[n("example.com")]).await.unwrap();
        d.apply(
            &zone,
            &[change(&sets, "example.com", Some(set(3600, &[v])))],
        )
        .await
        .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    assert_eq!(
        fake.rrset("example.com", "").unwrap().records,
        ["\"v=spf1 a mx -all\""]
    );
    let patches = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 4, "one write refused with 429, then sent again");
}

//! Cloudflare adapter against the local fake of API v4.

use std::time::Duration;

use maildns_providers::hosts::cloudflare::{Cloudflare, Config};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, Split, TxtRecord, TxtSet};
use maildns_testkit::fakes::cloudflare::FakeCloudflare;

use crate::{change, n};

const TOKEN: &str = "cf-test-token-4f2a9c";

fn dkim_2048() -> TxtRecord {
    let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    TxtRecord::split(v.as_bytes(), Split::Before(b"p="))
}

fn adapter(fake: &FakeCloudflare, token: &str, policy: RetryPolicy) -> Cloudflare {
    let mut c = Config::new(Secret::new(token));
    c.base_url = fake.base_url().to_string();
    Cloudflare::new(c, policy).unwrap()
}

async fn setup() -> (FakeCloudflare, Cloudflare, String) {
    let fake = FakeCloudflare::start(TOKEN).await;
    let id = fake.add_zone("example.com");
    let cf = adapter(&fake, TOKEN, RetryPolicy::fast());
    (fake, cf, id)
}

#[tokio::test]
async fn conformance_and_publish_read_back() {
    let (fake, cf, id) = setup().await;
    let zone = cf.find_zone(&n("_dmarc.mail.example.com")).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", id.as_str())
    );
    maildns_testkit::conformance::run(&cf, &zone, None).await;

    let name = n("example.com");
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("v=spf1 mx -all")],
    };
    cf.replace_txt(&zone, &name, &set).await.unwrap();
    assert_eq!(cf.read_txt(&zone, &name).await.unwrap(), Some(set.clone()));
    let raw = fake.records("example.com");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].content, "\"v=spf1 mx -all\"");
    // Writing the same set again sends nothing.
    let before = fake.writes().len();
    cf.replace_txt(&zone, &name, &set).await.unwrap();
    assert_eq!(fake.writes().len(), before);

    cf.delete_txt(&zone, &name).await.unwrap();
    assert_eq!(cf.read_txt(&zone, &name).await.unwrap(), None);
    cf.delete_txt(&zone, &name).await.unwrap();
}

#[tokio::test]
async fn merge_keeps_foreign_record_and_its_id() {
    let (fake, cf, zid) = setup().await;
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let foreign = fake.add_record(
        &zid,
        "example.com",
        "\"google-site-verification=abc123\"",
        3600,
    );
    let name = n("example.com");
    let current = cf.read_txt(&zone, &name).await.unwrap().unwrap();
    let ours = TxtRecord::from_value("v=spf1 -all");
    let mut records = current.records.clone();
    records.push(ours.clone());
    cf.replace_txt(&zone, &name, &TxtSet { ttl: 3600, records })
        .await
        .unwrap();
    let raw = fake.records("example.com");
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0].id, foreign);
    assert_eq!(raw[0].content, "\"google-site-verification=abc123\"");
    // Now drop ours again: only its record goes.
    cf.replace_txt(&zone, &name, &current).await.unwrap();
    let raw = fake.records("example.com");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].id, foreign);
    assert!(
        fake.writes()
            .iter()
            .all(|w| !w.path.contains(&foreign) && !w.body.contains(&foreign)),
        "foreign record touched"
    );
}

#[tokio::test]
async fn dkim_2048_sent_as_quoted_strings() {
    let (fake, cf, _) = setup().await;
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let name = n("202611._domainkey.example.com");
    let rec = dkim_2048();
    let set = TxtSet {
        ttl: 300,
        records: vec![rec.clone()],
    };
    cf.replace_txt(&zone, &name, &set).await.unwrap();
    let post = fake
        .writes()
        .into_iter()
        .find(|w| w.method == "POST")
        .unwrap();
    assert!(post.path.ends_with("/dns_records/batch"), "{}", post.path);
    let body = post.json()["posts"][0].clone();
    let expected = format!(
        "\"v=DKIM1; k=rsa; \" \"p={}\" \"{}\"",
        "A".repeat(253),
        "A".repeat(139)
    );
    assert_eq!(body["content"], expected.as_str());
    assert_eq!(
        fake.records("202611._domainkey.example.com")[0].content,
        expected
    );
    assert_eq!(body["type"], "TXT");
    assert_eq!(body["name"], "202611._domainkey.example.com");
    assert_eq!(cf.read_txt(&zone, &name).await.unwrap(), Some(set));
}

#[tokio::test]
async fn fake_splits_long_quoted_strings_like_cloudflare() {
    let (fake, cf, zid) = setup().await;
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    fake.add_record(&zid, "x.example.com", "\"keep\"", 300);
    // A client that sends one 300-byte quoted string: Cloudflare splits it.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/zones/{zid}/dns_records", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"type":"TXT","name":"long.example.com","content":format!("\"{}\"", "b".repeat(300)),"ttl":300}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let raw = fake.records("long.example.com");
    assert_eq!(
        raw[0].content,
        format!("\"{}\" \"{}\"", "b".repeat(255), "b".repeat(45))
    );
    let got = cf
        .read_txt(&zone, &n("long.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.records[0].value(), vec![b'b'; 300]);
}

#[tokio::test]
async fn bad_token_is_auth_with_hosts_message_and_no_token() {
    let (fake, _, _) = setup().await;
    let bad = "cf-wrong-token-99";
    let cf = adapter(&fake, bad, RetryPolicy::fast());
    let e = cf.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.status, Some(403));
    assert!(e.message.contains("Authentication error"), "{e}");
    let text = format!("{e} {e:?}");
    assert!(!text.contains(bad) && !text.contains(TOKEN), "{text}");
    assert!(!format!("{cf:?}").contains(bad));
}

#[tokio::test]
async fn unknown_zone_is_zone_not_found() {
    let (_fake, cf, _) = setup().await;
    let e = cf.find_zone(&n("mail.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    let stale = maildns_providers::Zone {
        name: n("example.com"),
        id: "f".repeat(32),
    };
    let e = cf.read_txt(&stale, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    assert!(e.message.contains("Could not route"), "{e}");
}

#[tokio::test]
async fn validation_error_is_invalid_with_hosts_message() {
    let (fake, cf, zid) = setup().await;
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    // The fake's own validation: non-printable content is 400 1004/9051.
    let resp = reqwest::Client::new()
        .post(format!("{}/zones/{zid}/dns_records", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"type":"TXT","name":"v.example.com","content":"\"caf\u{e9}\"","ttl":300}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Through the adapter (the host answers its validation error): Invalid, host's words.
    fake.fail_next(400, 1);
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("ok")],
    };
    let e = cf
        .replace_txt(&zone, &n("w.example.com"), &set)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.status, Some(400));
    assert!(
        e.message.contains("DNS Validation Error (code 1004)"),
        "{e}"
    );
    assert!(e.message.contains("printable ASCII"), "{e}");
    assert!(fake.records("w.example.com").is_empty());
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let (fake, _, _) = setup().await;
    let policy = RetryPolicy {
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::fast()
    };
    let cf = adapter(&fake, TOKEN, policy);
    fake.rate_limit_next(1);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    assert_eq!(fake.requests().len(), 2, "one 429, then the retry");

    // A Retry-After longer than the policy allows: give up with the host's message.
    let cf = adapter(&fake, TOKEN, RetryPolicy::fast());
    fake.rate_limit_next(300);
    let e = cf.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.contains("More than 1200 requests"), "{e}");
    assert!(e.message.contains("300s"), "{e}");
}

#[tokio::test]
async fn server_error_then_success() {
    let (fake, cf, _) = setup().await;
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    fake.fail_next(500, 2);
    let set = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("v=spf1 -all")],
    };
    cf.replace_txt(&zone, &n("example.com"), &set)
        .await
        .unwrap();
    assert_eq!(fake.records("example.com").len(), 1);
    fake.fail_next(503, 10);
    let e = cf.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
}

#[tokio::test]
async fn pagination_reads_every_page() {
    let (fake, cf, zid) = setup().await;
    fake.set_max_per_page(2);
    for i in 0..5 {
        fake.add_record(&zid, "p.example.com", &format!("\"value-{i}\""), 300);
    }
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let got = cf
        .read_txt(&zone, &n("p.example.com"))
        .await
        .unwrap()
        .unwrap();
    let values: Vec<String> = got.records.iter().map(TxtRecord::value_lossy).collect();
    assert_eq!(
        values,
        (0..5).map(|i| format!("value-{i}")).collect::<Vec<_>>()
    );
    // Replace down to one value: the four others (on later pages too) are deleted.
    let keep = TxtSet {
        ttl: 300,
        records: vec![TxtRecord::from_value("value-3")],
    };
    cf.replace_txt(&zone, &n("p.example.com"), &keep)
        .await
        .unwrap();
    assert_eq!(fake.records("p.example.com").len(), 1);
    assert_eq!(fake.records("p.example.com")[0].content, "\"value-3\"");
}

#[test]
fn plain_http_refused_except_loopback() {
    let mut c = Config::new(Secret::new("t"));
    c.base_url = "http://api.example.com/client/v4".into();
    let e = Cloudflare::new(c, RetryPolicy::fast()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
}

fn set(ttl: u32, values: &[&[u8]]) -> TxtSet {
    TxtSet {
        ttl,
        records: values.iter().map(TxtRecord::from_value).collect(),
    }
}

fn gets(fake: &FakeCloudflare) -> usize {
    fake.requests().iter().filter(|r| r.method == "GET").count()
}

#[tokio::test]
async fn read_sets_is_one_listing_and_apply_one_batch() {
    let (fake, cf, zid) = setup().await;
    let foreign = fake.add_record(&zid, "example.com", "\"site-verification=x\"", 300);
    fake.add_record(&zid, "example.com", "\"v=spf1 -all\"", 300);
    fake.add_record(&zid, "_dmarc.example.com", "\"v=DMARC1; p=none\"", 300);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
    ];
    let before = gets(&fake);
    let sets = cf.read_sets(&zone, &names).await.unwrap();
    assert_eq!(
        gets(&fake) - before,
        1,
        "one listing of the zone's TXT records"
    );
    assert_eq!(
        sets[&n("example.com")].set,
        Some(set(300, &[b"site-verification=x", b"v=spf1 -all"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    let t = cf.apply_traits();
    assert!(t.atomic && !t.compare_and_swap);
    let before = fake.requests().len();
    cf.apply(
        &zone,
        &[
            change(
                &sets,
                "example.com",
                Some(set(300, &[b"site-verification=x", b"v=spf1 mx -all"])),
            ),
            change(&sets, "_dmarc.example.com", None),
            change(
                &sets,
                "s1._domainkey.example.com",
                Some(set(300, &[b"v=DKIM1; p=AA"])),
            ),
        ],
    )
    .await
    .unwrap();
    let reqs = &fake.requests()[before..];
    assert_eq!(
        reqs.len(),
        1,
        "one batch, from the ids of the read: {reqs:?}"
    );
    assert!(reqs[0].path.ends_with("/dns_records/batch"));
    let body = reqs[0].json();
    assert_eq!(body["deletes"].as_array().unwrap().len(), 2);
    assert_eq!(body["posts"].as_array().unwrap().len(), 2);
    assert_eq!(fake.records("example.com")[0].id, foreign);
    assert!(fake.records("_dmarc.example.com").is_empty());
    assert_eq!(
        fake.records("s1._domainkey.example.com")[0].content,
        "\"v=DKIM1; p=AA\""
    );
}

/// Cloudflare has no precondition: a value another tool adds at a name between
/// the read and the batch is not ours to delete, so it stays next to ours.
#[tokio::test]
async fn a_value_added_since_the_read_is_kept_next_to_ours() {
    let (fake, cf, zid) = setup().await;
    fake.add_record(&zid, "_dmarc.example.com", "\"v=DMARC1; p=none\"", 300);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let names = [n("example.com"), n("_dmarc.example.com")];
    let sets = cf.read_sets(&zone, &names).await.unwrap();
    let theirs = fake.add_record(&zid, "example.com", "\"theirs\"", 300);
    cf.apply(
        &zone,
        &[
            change(
                &sets,
                "_dmarc.example.com",
                Some(set(300, &[b"v=DMARC1; p=reject"])),
            ),
            change(&sets, "example.com", Some(set(300, &[b"v=spf1 -all"]))),
        ],
    )
    .await
    .unwrap();
    let apex = fake.records("example.com");
    assert_eq!(apex.len(), 2, "{apex:?}");
    assert!(
        apex.iter()
            .any(|r| r.id == theirs && r.content == "\"theirs\"")
    );
    assert!(apex.iter().any(|r| r.content == "\"v=spf1 -all\""));
}

/// A record the change deletes that another tool deleted (or replaced) since
/// the read fails the whole batch (81044, nothing kept); the apply reads again,
/// finds the set changed and reports a conflict with nothing written, so the
/// caller re-plans with the other tool's edit in view.
#[tokio::test]
async fn a_record_deleted_since_the_read_is_a_conflict_and_nothing_is_written() {
    let (fake, cf, zid) = setup().await;
    let old = fake.add_record(&zid, "_dmarc.example.com", "\"v=DMARC1; p=none\"", 300);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let names = [n("example.com"), n("_dmarc.example.com")];
    let sets = cf.read_sets(&zone, &names).await.unwrap();
    fake.delete_record(&old);
    fake.add_record(
        &zid,
        "_dmarc.example.com",
        "\"v=DMARC1; p=quarantine\"",
        300,
    );
    let e = cf
        .apply(
            &zone,
            &[
                change(&sets, "example.com", Some(set(300, &[b"v=spf1 -all"]))),
                change(
                    &sets,
                    "_dmarc.example.com",
                    Some(set(300, &[b"v=DMARC1; p=reject"])),
                ),
            ],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert!(
        fake.records("example.com").is_empty(),
        "nothing kept of the failed batch"
    );
    let dmarc = fake.records("_dmarc.example.com");
    assert_eq!(dmarc.len(), 1);
    assert_eq!(dmarc[0].content, "\"v=DMARC1; p=quarantine\"");
}

/// The same change set applied twice (stale ids the second time) succeeds and
/// changes nothing more.
#[tokio::test]
async fn a_change_set_applied_twice_is_in_place_once() {
    let (fake, cf, zid) = setup().await;
    fake.add_record(&zid, "example.com", "\"v=spf1 -all\"", 300);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let names = [n("example.com"), n("_dmarc.example.com")];
    let sets = cf.read_sets(&zone, &names).await.unwrap();
    let changes = [
        change(&sets, "example.com", Some(set(300, &[b"v=spf1 mx -all"]))),
        change(
            &sets,
            "_dmarc.example.com",
            Some(set(300, &[b"v=DMARC1; p=none"])),
        ),
    ];
    cf.apply(&zone, &changes).await.unwrap();
    cf.apply(&zone, &changes).await.unwrap();
    let apex = fake.records("example.com");
    assert_eq!(apex.len(), 1, "{apex:?}");
    assert_eq!(apex[0].content, "\"v=spf1 mx -all\"");
    assert_eq!(fake.records("_dmarc.example.com").len(), 1);
}

/// Cloudflare holds at most 8,192 characters of content for one name and type.
/// Replacing one of two ~3,950-character values deletes before it posts (one
/// batch), so the total never passes the limit on the way; a set over it is
/// refused before sending.
#[tokio::test]
async fn two_large_values_are_replaced_without_crossing_8192_characters() {
    let (fake, cf, _) = setup().await;
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let name = n("big.example.com");
    let big = |c: u8| vec![c; 3900];
    let (a, b, c) = (big(b'a'), big(b'b'), big(b'c'));
    cf.replace_txt(&zone, &name, &set(300, &[&a, &b]))
        .await
        .unwrap();
    let total: usize = fake
        .records("big.example.com")
        .iter()
        .map(|r| r.content.len())
        .sum();
    assert!(total > 4096 * 2 - 8192 / 2 && total <= 8192, "{total}");
    cf.replace_txt(&zone, &name, &set(300, &[&a, &c]))
        .await
        .unwrap();
    assert_eq!(
        cf.read_txt(&zone, &name).await.unwrap(),
        Some(set(300, &[&a, &c]))
    );
    let sets = cf
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    cf.apply(
        &zone,
        &[change(&sets, "big.example.com", Some(set(300, &[&b, &c])))],
    )
    .await
    .unwrap();
    assert_eq!(
        cf.read_txt(&zone, &name).await.unwrap(),
        Some(set(300, &[&c, &b]))
    );
    let writes = fake.writes().len();
    let e = cf
        .replace_txt(&zone, &name, &set(300, &[&a, &b, &c]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::Limit(maildns_providers::LimitError::SetTooLong { max: 8192, .. })
        ),
        "{e}"
    );
    assert_eq!(fake.writes().len(), writes, "refused before sending");
}

#[tokio::test]
async fn a_ttl_only_change_patches_only_the_ttl() {
    let (fake, cf, zid) = setup().await;
    let id = fake.add_record(&zid, "example.com", "\"v=spf1 -all\"", 300);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let sets = cf.read_sets(&zone, &[n("example.com")]).await.unwrap();
    cf.apply(
        &zone,
        &[change(
            &sets,
            "example.com",
            Some(set(3600, &[b"v=spf1 -all"])),
        )],
    )
    .await
    .unwrap();
    let batch = fake.writes().pop().unwrap().json();
    assert_eq!(
        batch,
        serde_json::json!({"patches": [{"id": id, "ttl": 3600}]})
    );
    assert_eq!(fake.records("example.com")[0].ttl, 3600);
}

/// Cloudflare takes a TTL of 1 (automatic) or 60..=86400 and answers 400
/// (code 9021 in a 1004 chain) otherwise: the fake does too, and the adapter
/// refuses such a TTL before sending.
#[tokio::test]
async fn a_ttl_outside_60_to_86400_is_refused_by_host_and_before_sending() {
    let (fake, cf, id) = setup().await;
    let post = |ttl: u64| {
        reqwest::Client::new()
            .post(format!("{}/zones/{id}/dns_records", fake.base_url()))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"type":"TXT","name":"t.example.com","content":"\"x\"","ttl":ttl}))
            .send()
    };
    for ttl in [30, 86_401] {
        let resp = post(ttl).await.unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("9021") && body.contains("Invalid TTL"),
            "{body}"
        );
    }
    assert_eq!(post(60).await.unwrap().status().as_u16(), 200);
    let zone = cf.find_zone(&n("example.com")).await.unwrap();
    let before = fake.requests().len();
    crate::expect_ttl_too_low(&cf, &zone, "u.example.com", 30, 60).await;
    assert_eq!(fake.requests().len(), before, "nothing sent");
}

//! Google Cloud DNS adapter against the local fake (token endpoint included).

use std::sync::OnceLock;
use std::time::Duration;

use maildns_providers::hosts::google::{Config, Google};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtRecord, TxtSet};
use maildns_testkit::fakes::google::{FakeGoogle, TestServiceAccount};

use crate::{change, n};

const PROJECT: &str = "maildns-test";

/// One key pair per test binary (generated at run time, never committed).
fn account() -> &'static TestServiceAccount {
    static A: OnceLock<TestServiceAccount> = OnceLock::new();
    A.get_or_init(|| TestServiceAccount::generate("dns@maildns-test.iam.gserviceaccount.com", 2048))
}

fn adapter(fake: &FakeGoogle, sa: &TestServiceAccount) -> Google {
    let mut cfg = Config::new(Secret::new(sa.json(PROJECT, &fake.token_url)));
    cfg.base_url = fake.url.clone();
    cfg.poll_interval = Duration::from_millis(1);
    Google::new(cfg, RetryPolicy::fast()).unwrap()
}

async fn setup() -> (FakeGoogle, Google, String) {
    let fake = FakeGoogle::start(PROJECT, account()).await;
    let z = fake.add_zone("example.com", false);
    let a = adapter(&fake, account());
    (fake, a, z)
}

fn set(ttl: u32, values: &[&[u8]]) -> TxtSet {
    TxtSet {
        ttl,
        records: values.iter().map(TxtRecord::from_value).collect(),
    }
}

#[tokio::test]
async fn conformance_stub_runs() {
    let (_fake, a, _) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    maildns_testkit::conformance::run(&a, &zone, None).await;
}

#[tokio::test]
async fn publish_read_back_and_token_is_cached() {
    let (fake, a, zid) = setup().await;
    fake.set_done_after(3);
    let name = n("_dmarc.example.com");
    let zone = a.find_zone(&name).await.unwrap();
    assert_eq!(zone.id, zid);
    assert_eq!(a.read_txt(&zone, &name).await.unwrap(), None);
    let s = set(300, &[b"v=DMARC1; p=reject"]);
    a.replace_txt(&zone, &name, &s).await.unwrap();
    assert_eq!(a.read_txt(&zone, &name).await.unwrap(), Some(s));
    assert_eq!(fake.tokens_issued(), 1, "one token for all requests");
    let polls = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/changes/"))
        .count();
    assert_eq!(polls, 3, "polled until done");
    let tok = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        tok.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(tok.body.starts_with(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
    ));
}

#[tokio::test]
async fn merge_beside_foreign_value_uses_exact_deletion() {
    let (fake, a, zid) = setup().await;
    fake.put_txt(
        &zid,
        "example.com",
        600,
        &["\"google-site-verification=abc\""],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let mut cur = a.read_txt(&zone, &n("example.com")).await.unwrap().unwrap();
    cur.records.push(TxtRecord::from_value(b"v=spf1 -all"));
    a.replace_txt(&zone, &n("example.com"), &cur).await.unwrap();
    let post = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/changes"))
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        body["deletions"],
        serde_json::json!([{"name": "example.com.", "type": "TXT", "ttl": 600, "rrdatas": ["\"google-site-verification=abc\""]}])
    );
    assert_eq!(
        fake.txt(&zid, "example.com").unwrap(),
        (
            600,
            vec![
                "\"google-site-verification=abc\"".to_string(),
                "\"v=spf1 -all\"".to_string()
            ]
        )
    );
    a.delete_txt(&zone, &n("example.com")).await.unwrap();
    assert!(fake.txt(&zid, "example.com").is_none());
    a.delete_txt(&zone, &n("example.com")).await.unwrap();
}

#[tokio::test]
async fn dkim_2048_as_quoted_pieces() {
    let (fake, a, zid) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let name = n("s1._domainkey.example.com");
    let value = format!("v=DKIM1; k=rsa; p={}", "C".repeat(392));
    let rec = TxtRecord::from_value(value.as_bytes());
    a.replace_txt(
        &zone,
        &name,
        &TxtSet {
            ttl: 3600,
            records: vec![rec.clone()],
        },
    )
    .await
    .unwrap();
    let (x, y) = value.split_at(255);
    let post = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/changes"))
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        body["additions"],
        serde_json::json!([{"name": "s1._domainkey.example.com.", "type": "TXT", "ttl": 3600, "rrdatas": [format!("\"{x}\" \"{y}\"")]}])
    );
    assert_eq!(body["deletions"], serde_json::json!([]));
    assert!(fake.txt(&zid, "s1._domainkey.example.com").is_some());
    assert_eq!(
        a.read_txt(&zone, &name).await.unwrap().unwrap().records,
        vec![rec]
    );
}

#[tokio::test]
async fn stale_read_412_is_retried_once_with_a_fresh_read() {
    let (fake, a, zid) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    fake.put_txt(&zid, "x.example.com", 300, &["\"old\""]);
    fake.interfere_before_next_change(&zid, "x.example.com", 300, &["\"other-writer\""]);
    a.replace_txt(&zone, &n("x.example.com"), &set(300, &[b"new"]))
        .await
        .unwrap();
    let reads = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/rrsets"))
        .count();
    assert_eq!(reads, 2, "read again after the 412");
    let posts: Vec<serde_json::Value> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/changes"))
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[1]["deletions"][0]["rrdatas"],
        serde_json::json!(["\"other-writer\""])
    );
    assert_eq!(
        fake.txt(&zid, "x.example.com").unwrap().1,
        vec!["\"new\"".to_string()]
    );
}

#[tokio::test]
async fn auth_failure_on_wrong_key() {
    let fake = FakeGoogle::start(PROJECT, account()).await;
    fake.add_zone("example.com", false);
    let other = TestServiceAccount::generate("dns@maildns-test.iam.gserviceaccount.com", 1024);
    let a = adapter(&fake, &other);
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("invalid_grant: Invalid JWT Signature."),
        "{e}"
    );
    let all = format!("{e} {e:?} {a:?}");
    assert!(!all.contains("PRIVATE KEY") && !all.contains(&other.private_key_pem[40..80]));
}

#[tokio::test]
async fn zone_not_found_and_validation() {
    let (fake, a, _) = setup().await;
    let e = a.find_zone(&n("www.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    // A TTL over RFC 2181's 2^31 - 1 is refused before sending.
    let before = fake.requests().len();
    let e = a
        .replace_txt(&zone, &n("v.example.com"), &set(u32::MAX, &[b"a"]))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Limit(maildns_providers::LimitError::TtlTooHigh {
            ttl: u32::MAX,
            max: 2_147_483_647
        })
    );
    assert_eq!(fake.requests().len(), before);
    // One Google refuses: Invalid, with its reason and message.
    fake.fail_next(400, 1);
    let e = a
        .replace_txt(&zone, &n("v.example.com"), &set(300, &[b"a"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
}

#[tokio::test]
async fn throttling_and_500_are_retried() {
    let (fake, a, _) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    fake.throttle_next(1, 0);
    fake.fail_next(500, 1);
    assert_eq!(a.read_txt(&zone, &n("example.com")).await.unwrap(), None);
    let reads = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/rrsets"))
        .count();
    assert_eq!(reads, 3);
    fake.throttle_next(10, 0);
    let e = a.read_txt(&zone, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.contains("rateLimitExceeded"), "{e}");
}

#[tokio::test]
async fn pagination_of_zones_prefers_public() {
    let fake = FakeGoogle::start(PROJECT, account()).await;
    let _private = fake.add_zone("example.com", true);
    let public = fake.add_zone("example.com", false);
    fake.set_page_size(1);
    let a = adapter(&fake, account());
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.id, public);
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.query.contains("pageToken=1"))
    );
}

fn count(fake: &FakeGoogle, method: &str, path_end: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(path_end))
        .count()
}

#[tokio::test]
async fn read_sets_is_one_listing_and_apply_one_atomic_change() {
    let (fake, a, z) = setup().await;
    fake.put_txt(&z, "example.com", 300, &["\"v=spf1 -all\""]);
    fake.put_txt(&z, "_dmarc.example.com", 300, &["\"v=DMARC1; p=none\""]);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
    ];
    let sets = a.read_sets(&zone, &names).await.unwrap();
    assert_eq!(count(&fake, "GET", "/rrsets"), 1, "one rrsets list");
    assert_eq!(
        sets[&n("_dmarc.example.com")].set,
        Some(set(300, &[b"v=DMARC1; p=none"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    assert!(a.apply_traits().atomic && a.apply_traits().compare_and_swap);
    let changes = [
        change(&sets, "example.com", Some(set(300, &[b"v=spf1 mx -all"]))),
        change(&sets, "_dmarc.example.com", None),
        change(
            &sets,
            "s1._domainkey.example.com",
            Some(set(300, &[b"v=DKIM1; p=AA"])),
        ),
    ];
    a.apply(&zone, &changes).await.unwrap();
    assert_eq!(count(&fake, "POST", "/changes"), 1, "one Change");
    assert_eq!(fake.txt(&z, "_dmarc.example.com"), None);
    assert_eq!(
        fake.txt(&z, "s1._domainkey.example.com"),
        Some((300, vec!["\"v=DKIM1; p=AA\"".to_string()]))
    );
    // With a page size of 1 the listing is cut at one page a name, then per name.
    fake.set_page_size(1);
    let before = fake.requests().len();
    let again = a.read_sets(&zone, &names).await.unwrap();
    assert!(fake.requests().len() - before <= 2 * names.len());
    assert_eq!(
        again[&n("example.com")].set,
        Some(set(300, &[b"v=spf1 mx -all"]))
    );
    assert_eq!(
        again[&n("s1._domainkey.example.com")].set,
        Some(set(300, &[b"v=DKIM1; p=AA"]))
    );
    assert_eq!(again[&n("_dmarc.example.com")].set, None);
}

/// Deletions echo the rrdatas exactly as stored: a set another tool wrote in a
/// non-canonical form is replaced, not refused with 412 forever.
#[tokio::test]
async fn a_non_canonical_set_written_elsewhere_is_replaced_by_echoing_it() {
    let (fake, a, z) = setup().await;
    fake.put_txt(
        &z,
        "example.com",
        600,
        &[
            r#""google-site-"   "verification=abc""#,
            r#""v=spf1 \045all""#,
        ],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let sets = a.read_sets(&zone, &[n("example.com")]).await.unwrap();
    let mut new = sets[&n("example.com")].set.clone().unwrap();
    new.records[1] = TxtRecord::from_value(b"v=spf1 mx -all");
    a.apply(&zone, &[change(&sets, "example.com", Some(new))])
        .await
        .unwrap();
    let (ttl, held) = fake.txt(&z, "example.com").unwrap();
    assert_eq!(ttl, 600);
    assert_eq!(
        held,
        [
            "\"google-site-\" \"verification=abc\"",
            "\"v=spf1 mx -all\""
        ]
    );
    let post = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/changes"))
        .unwrap();
    assert!(post.body.contains(r#"v=spf1 \\045all"#), "{}", post.body);
}

/// A deletion whose RRset another writer removed since the read gets 404
/// `notFound` on `entity.change.deletions[0]`: a conflict (read again), not a
/// missing zone. An addition that finds a new set (409) is a conflict too.
#[tokio::test]
async fn lost_races_are_conflicts_not_missing_zones() {
    let (fake, a, z) = setup().await;
    fake.put_txt(&z, "_dmarc.example.com", 300, &["\"v=DMARC1; p=none\""]);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let names = [n("_dmarc.example.com"), n("example.com")];
    let sets = a.read_sets(&zone, &names).await.unwrap();
    fake.remove_txt(&z, "_dmarc.example.com");
    let e = a
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
    assert_eq!(e.error.kind, ErrorKind::Conflict, "{e}");
    assert!(
        e.error.message.contains("entity.change.deletions[0]"),
        "{e}"
    );
    assert!(e.written.is_empty());
    assert_eq!(fake.txt(&z, "example.com"), None, "atomic: nothing applied");
    fake.put_txt(&z, "example.com", 300, &["\"theirs\""]);
    let e = a
        .apply(
            &zone,
            &[change(&sets, "example.com", Some(set(300, &[b"ours"])))],
        )
        .await
        .unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Conflict, "{e}");
    assert_eq!(fake.txt(&z, "example.com").unwrap().1, ["\"theirs\""]);
}

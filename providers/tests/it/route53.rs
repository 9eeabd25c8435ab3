//! Route 53 adapter against the local fake.

use std::time::Duration;

use maildns_providers::hosts::route53::{AwsCredentials, Config, Route53};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtRecord, TxtSet};
use maildns_testkit::fakes::route53::FakeRoute53;

use crate::{change, n};

const AKID: &str = "AKIDFAKEEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI-fake-secret-value";

fn config(url: &str, akid: &str) -> Config {
    let mut c = Config::new(AwsCredentials {
        access_key_id: akid.to_string(),
        secret_access_key: Secret::new(SECRET),
        session_token: None,
    });
    c.base_url = url.to_string();
    c.poll_interval = Duration::from_millis(1);
    c
}

async fn setup() -> (FakeRoute53, Route53, String) {
    let fake = FakeRoute53::start(AKID, SECRET).await;
    let id = fake.add_zone("example.com");
    let adapter = Route53::new(config(&fake.url, AKID), RetryPolicy::fast()).unwrap();
    (fake, adapter, id)
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
async fn publish_and_read_back_exactly_with_insync_wait() {
    let fake = FakeRoute53::start(AKID, SECRET).await;
    let id = fake.add_zone("example.com");
    fake.set_insync_after(3);
    let mut cfg = config(&fake.url, AKID);
    cfg.wait_insync = true;
    let a = Route53::new(cfg, RetryPolicy::fast()).unwrap();
    let zone = a.find_zone(&n("_dmarc.example.com")).await.unwrap();
    assert_eq!(zone.id, id);
    assert_eq!(zone.name, n("example.com"));
    let name = n("_dmarc.example.com");
    assert_eq!(a.read_txt(&zone, &name).await.unwrap(), None);
    let s = set(
        300,
        &[b"v=DMARC1; p=reject; rua=\"mailto:d@example.com\"\\x"],
    );
    a.replace_txt(&zone, &name, &s).await.unwrap();
    assert_eq!(a.read_txt(&zone, &name).await.unwrap(), Some(s));
    assert_eq!(fake.get_change_count(), 3, "polled GetChange until INSYNC");
    // Signed requests carry the SigV4 headers.
    let r = fake.requests().into_iter().last().unwrap();
    assert!(
        r.header("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDFAKEEXAMPLE/")
    );
    assert!(r.header("x-amz-date").is_some());
}

#[tokio::test]
async fn merge_beside_a_foreign_value_and_delete_exactly() {
    let (fake, a, id) = setup().await;
    fake.put_txt(
        &id,
        "example.com",
        600,
        vec![vec![b"google-site-verification=abc".to_vec()]],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let mut current = a.read_txt(&zone, &n("example.com")).await.unwrap().unwrap();
    assert_eq!(current.records.len(), 1);
    current
        .records
        .push(TxtRecord::from_value(b"v=spf1 mx -all"));
    a.replace_txt(&zone, &n("example.com"), &current)
        .await
        .unwrap();
    let held = fake.txt(&id, "example.com").unwrap();
    assert_eq!(held.ttl, 600);
    assert_eq!(
        held.records,
        vec![
            vec![b"google-site-verification=abc".to_vec()],
            vec![b"v=spf1 mx -all".to_vec()]
        ]
    );
    // delete repeats the set exactly; the fake refuses anything else.
    a.delete_txt(&zone, &n("example.com")).await.unwrap();
    assert!(fake.txt(&id, "example.com").is_none());
    let del = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST")
        .unwrap();
    assert!(del.body.contains("<Action>DELETE</Action>"));
    assert!(del.body.contains("<TTL>600</TTL>"));
    // deleting an absent set succeeds without a write
    let posts = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    a.delete_txt(&zone, &n("example.com")).await.unwrap();
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        posts
    );
}

#[tokio::test]
async fn dkim_2048_is_sent_as_quoted_255_byte_strings() {
    let (fake, a, id) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let name = n("202601._domainkey.example.com");
    let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
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
    let post = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST")
        .unwrap();
    let (first, second) = value.split_at(255);
    let expected = format!(
        "<ResourceRecordSet><Name>202601._domainkey.example.com.</Name><Type>TXT</Type><TTL>3600</TTL><ResourceRecords><ResourceRecord><Value>&quot;{first}&quot; &quot;{second}&quot;</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>"
    );
    assert!(post.body.contains(&expected), "{}", post.body);
    assert!(post.body.contains("<Action>UPSERT</Action>"));
    assert_eq!(
        fake.txt(&id, "202601._domainkey.example.com")
            .unwrap()
            .records[0]
            .len(),
        2
    );
    assert_eq!(
        a.read_txt(&zone, &name).await.unwrap().unwrap().records,
        vec![rec]
    );
}

#[tokio::test]
async fn auth_failure_names_the_host_message_and_hides_the_secret() {
    let fake = FakeRoute53::start(AKID, SECRET).await;
    fake.add_zone("example.com");
    let a = Route53::new(config(&fake.url, "AKIDWRONG"), RetryPolicy::fast()).unwrap();
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.status, Some(403));
    assert!(
        e.message
            .contains("The security token included in the request is invalid."),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains(SECRET));
    assert!(!format!("{a:?}").contains(SECRET));
}

#[tokio::test]
async fn zone_not_found_and_no_such_hosted_zone() {
    let (_fake, a, _) = setup().await;
    let e = a.find_zone(&n("other.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    let bogus = maildns_providers::Zone {
        name: n("example.com"),
        id: "ZNOPE".into(),
    };
    let e = a.read_txt(&bogus, &n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    assert!(
        e.message.contains("No hosted zone found with ID: ZNOPE"),
        "{e}"
    );
}

#[tokio::test]
async fn validation_error_carries_the_host_message() {
    let (fake, a, _) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    // A TTL over the API's range (2^31 - 1) is refused before sending.
    let before = fake.requests().len();
    let e = a
        .replace_txt(&zone, &n("x.example.com"), &set(u32::MAX, &[b"a"]))
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
    // A batch Route 53 refuses for its content: Invalid, with its message.
    let e = a
        .replace_txt(&zone, &n("x.example.org"), &set(300, &[b"a"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(
        e.message
            .starts_with("InvalidChangeBatch: RRSet with DNS name x.example.org. is not permitted"),
        "{e}"
    );
}

#[tokio::test]
async fn too_long_for_4000_characters_is_refused_before_sending() {
    let (fake, a, _) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let before = fake.requests().len();
    let e = a
        .replace_txt(&zone, &n("x.example.com"), &set(300, &[&[b'a'; 3990]]))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e}");
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let (fake, a, _) = setup().await;
    fake.throttle_next(2, 0);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    assert_eq!(zone.name, n("example.com"));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn server_error_is_retried_then_succeeds() {
    let (fake, a, _) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    fake.fail_next(500, 1);
    a.replace_txt(&zone, &n("example.com"), &set(300, &[b"v=spf1 -all"]))
        .await
        .unwrap();
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        2
    );
}

#[tokio::test]
async fn throttling_that_never_ends_is_rate_limited() {
    let (fake, a, _) = setup().await;
    fake.throttle_next(10, 0);
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.contains("Throttling: Rate exceeded"), "{e}");
}

#[tokio::test]
async fn pages_past_a_private_zone_of_the_same_name() {
    let fake = FakeRoute53::start(AKID, SECRET).await;
    let _private = fake.add_private_zone("example.com");
    let public = fake.add_zone("example.com");
    fake.add_zone("example.net");
    let mut cfg = config(&fake.url, AKID);
    cfg.page_size = 1;
    let a = Route53::new(cfg, RetryPolicy::fast()).unwrap();
    let zone = a.find_zone(&n("www.example.com")).await.unwrap();
    assert_eq!(zone.id, public);
    let zone_queries: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("hostedzonesbyname"))
        .map(|r| r.query.clone())
        .collect();
    assert!(
        zone_queries.iter().any(|q| q.contains("hostedzoneid=")),
        "{zone_queries:?}"
    );
    // starts-at listing of records: with one item per page the adapter still finds its set
    fake.put_txt(&public, "a.example.com", 300, vec![vec![b"x".to_vec()]]);
    fake.put_txt(&public, "b.example.com", 300, vec![vec![b"y".to_vec()]]);
    assert_eq!(
        a.read_txt(&zone, &n("a.example.com")).await.unwrap(),
        Some(set(300, &[b"x"]))
    );
    assert_eq!(a.read_txt(&zone, &n("ab.example.com")).await.unwrap(), None);
}

fn posts(fake: &FakeRoute53) -> Vec<maildns_testkit::fakes::Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

fn gets(fake: &FakeRoute53) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/rrset"))
        .count()
}

#[tokio::test]
async fn a_wrong_secret_fails_the_signature_check() {
    let fake = FakeRoute53::start(AKID, SECRET).await;
    fake.add_zone("example.com");
    let mut cfg = config(&fake.url, AKID);
    cfg.secret_access_key = Secret::new("not-the-secret");
    let a = Route53::new(cfg, RetryPolicy::fast()).unwrap();
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.starts_with("SignatureDoesNotMatch:"), "{e}");
    assert!(!format!("{e} {e:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn read_sets_is_one_listing_and_apply_one_atomic_batch() {
    let (fake, a, id) = setup().await;
    fake.put_txt(&id, "example.com", 300, vec![vec![b"v=spf1 -all".to_vec()]]);
    fake.put_txt(
        &id,
        "_dmarc.example.com",
        300,
        vec![vec![b"v=DMARC1; p=none".to_vec()]],
    );
    fake.put_txt(
        &id,
        "www.example.com",
        300,
        vec![vec![b"unrelated".to_vec()]],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let names = [
        n("example.com"),
        n("_dmarc.example.com"),
        n("s1._domainkey.example.com"),
    ];
    let before = gets(&fake);
    let sets = a.read_sets(&zone, &names).await.unwrap();
    assert_eq!(
        gets(&fake) - before,
        1,
        "one ListResourceRecordSets request"
    );
    assert_eq!(
        sets[&n("example.com")].set,
        Some(set(300, &[b"v=spf1 -all"]))
    );
    assert_eq!(sets[&n("s1._domainkey.example.com")].set, None);
    assert!(a.apply_traits().atomic && a.apply_traits().compare_and_swap);
    let changes = [
        change(&sets, "example.com", Some(set(300, &[b"v=spf1 mx -all"]))),
        change(
            &sets,
            "_dmarc.example.com",
            Some(set(300, &[b"v=DMARC1; p=reject"])),
        ),
        change(
            &sets,
            "s1._domainkey.example.com",
            Some(set(300, &[b"v=DKIM1; p=AAAA"])),
        ),
    ];
    a.apply(&zone, &changes).await.unwrap();
    let p = posts(&fake);
    assert_eq!(p.len(), 1, "one ChangeResourceRecordSets request");
    assert_eq!(p[0].body.matches("<Action>DELETE</Action>").count(), 2);
    assert_eq!(p[0].body.matches("<Action>CREATE</Action>").count(), 3);
    assert_eq!(
        fake.txt(&id, "_dmarc.example.com").unwrap().records,
        vec![vec![b"v=DMARC1; p=reject".to_vec()]]
    );
    assert_eq!(
        fake.txt(&id, "www.example.com").unwrap().raw,
        ["\"unrelated\""]
    );
    // Re-reading with a small page size still finds everything, within 2 requests a name.
    let mut cfg = config(&fake.url, AKID);
    cfg.page_size = 1;
    let small = Route53::new(cfg, RetryPolicy::fast()).unwrap();
    let before = gets(&fake);
    let again = small.read_sets(&zone, &names).await.unwrap();
    assert!(gets(&fake) - before <= 2 * names.len());
    assert_eq!(
        again[&n("s1._domainkey.example.com")].set,
        Some(set(300, &[b"v=DKIM1; p=AAAA"]))
    );
    assert_eq!(
        again[&n("example.com")].set,
        Some(set(300, &[b"v=spf1 mx -all"]))
    );
}

/// Route 53 answers a DELETE of values it no longer holds with
/// `<ErrorResponse><Error><Code>InvalidChangeBatch</Code>`: that is a conflict
/// (read again), and nothing of the batch is applied.
#[tokio::test]
async fn a_set_changed_since_the_read_is_a_conflict_and_nothing_is_written() {
    let (fake, a, id) = setup().await;
    fake.put_txt(&id, "example.com", 300, vec![vec![b"v=spf1 -all".to_vec()]]);
    fake.put_txt(
        &id,
        "_dmarc.example.com",
        300,
        vec![vec![b"v=DMARC1; p=none".to_vec()]],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let names = [n("example.com"), n("_dmarc.example.com")];
    let sets = a.read_sets(&zone, &names).await.unwrap();
    // Another tool adds a value at the apex between the read and the apply.
    fake.put_txt(
        &id,
        "example.com",
        300,
        vec![
            vec![b"v=spf1 -all".to_vec()],
            vec![b"site-verification=x".to_vec()],
        ],
    );
    let changes = [
        change(
            &sets,
            "_dmarc.example.com",
            Some(set(300, &[b"v=DMARC1; p=reject"])),
        ),
        change(&sets, "example.com", Some(set(300, &[b"v=spf1 mx -all"]))),
    ];
    let e = a.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert!(e.error.message.contains("do not match"), "{e}");
    assert_eq!(
        fake.txt(&id, "_dmarc.example.com").unwrap().records,
        vec![vec![b"v=DMARC1; p=none".to_vec()]],
        "atomic: the first change was not applied"
    );
    assert_eq!(fake.txt(&id, "example.com").unwrap().records.len(), 2);
    // A set that appeared since the read: the CREATE finds it, also a conflict.
    let sets = a.read_sets(&zone, &[n("new.example.com")]).await.unwrap();
    fake.put_txt(&id, "new.example.com", 300, vec![vec![b"theirs".to_vec()]]);
    let e = a
        .apply(
            &zone,
            &[change(&sets, "new.example.com", Some(set(300, &[b"ours"])))],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    // A set deleted since the read, to be replaced: the DELETE finds nothing,
    // a conflict too.
    let sets = a.read_sets(&zone, &[n("new.example.com")]).await.unwrap();
    fake.remove_txt(&id, "new.example.com");
    let e = a
        .apply(
            &zone,
            &[change(&sets, "new.example.com", Some(set(300, &[b"ours"])))],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.error.message.contains("but it was not found"), "{e}");
    // The same deletion when the set is already gone: in place, nothing to do.
    fake.put_txt(&id, "new.example.com", 300, vec![vec![b"theirs".to_vec()]]);
    let sets = a.read_sets(&zone, &[n("new.example.com")]).await.unwrap();
    fake.remove_txt(&id, "new.example.com");
    a.apply(&zone, &[change(&sets, "new.example.com", None)])
        .await
        .unwrap();
}

/// A set another tool wrote in a non-canonical form (`"a"  "b"`, an octal
/// escape for a printable byte) is deleted by echoing its values exactly as
/// read, so the replacement goes through instead of conflicting forever.
#[tokio::test]
async fn a_non_canonical_set_written_elsewhere_is_replaced_by_echoing_it() {
    let (fake, a, id) = setup().await;
    fake.put_txt_raw(
        &id,
        "example.com",
        600,
        &[
            r#""google-site-"   "verification=abc""#,
            r#""v=spf1 \055all""#,
        ],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let sets = a.read_sets(&zone, &[n("example.com")]).await.unwrap();
    let old = sets[&n("example.com")].set.clone().unwrap();
    assert_eq!(old.records[1], TxtRecord::from_value(b"v=spf1 -all"));
    let mut new = old.clone();
    new.records[1] = TxtRecord::from_value(b"v=spf1 mx -all");
    a.apply(&zone, &[change(&sets, "example.com", Some(new))])
        .await
        .unwrap();
    let held = fake.txt(&id, "example.com").unwrap();
    assert_eq!(
        held.records,
        vec![
            vec![b"google-site-".to_vec(), b"verification=abc".to_vec()],
            vec![b"v=spf1 mx -all".to_vec()]
        ]
    );
    let del = &posts(&fake)[0].body;
    assert!(
        del.contains(r#"<Value>&quot;v=spf1 \055all&quot;</Value>"#),
        "the DELETE echoes the value as read: {del}"
    );
}

/// The per-name delete echoes the values as read too.
#[tokio::test]
async fn a_non_canonical_set_is_deleted_by_echoing_it() {
    let (fake, a, id) = setup().await;
    fake.put_txt_raw(
        &id,
        "_dmarc.example.com",
        300,
        &[r#""v=DMARC1;"  "p=none""#],
    );
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    a.delete_txt(&zone, &n("_dmarc.example.com")).await.unwrap();
    assert!(fake.txt(&id, "_dmarc.example.com").is_none());
}

fn many(prefix: &str, count: usize) -> Vec<Vec<Vec<u8>>> {
    (0..count)
        .map(|i| vec![format!("{prefix}-{i:04}").into_bytes()])
        .collect()
}

fn many_set(prefix: &str, count: usize) -> TxtSet {
    TxtSet {
        ttl: 300,
        records: many(prefix, count)
            .iter()
            .map(|r| TxtRecord::from_value(&r[0]))
            .collect(),
    }
}

/// A change set over one request's limits (here 1,200 `ResourceRecord`
/// elements: three names each deleting 200 values and creating 200) is cut
/// into batches the host takes, in order, each name's `DELETE` and `CREATE` in
/// the same batch; that apply is declared not atomic. A batch refused later
/// reports exactly the names of the batches before it as written.
#[tokio::test]
async fn a_change_set_over_the_batch_limits_is_cut_and_reported_per_name() {
    let (fake, a, id) = setup().await;
    let names = [n("a.example.com"), n("b.example.com"), n("c.example.com")];
    for name in &names {
        fake.put_txt(&id, name.as_str(), 300, many("old", 200));
    }
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let sets = a.read_sets(&zone, &names).await.unwrap();
    let changes: Vec<_> = names
        .iter()
        .map(|name| change(&sets, name.as_str(), Some(many_set("new", 200))))
        .collect();
    assert!(!a.apply_traits_for(&changes).atomic, "cut: not atomic");
    assert!(
        a.apply_traits_for(&changes[..2]).atomic,
        "800 values: one batch"
    );
    assert!(a.apply_traits_for(&changes).compare_and_swap);
    a.apply(&zone, &changes).await.unwrap();
    let p = posts(&fake);
    assert_eq!(p.len(), 2, "two ChangeResourceRecordSets requests");
    let has = |body: &str, action: &str, name: &str| {
        body.contains(&format!(
            "<Action>{action}</Action><ResourceRecordSet><Name>{name}.</Name>"
        ))
    };
    for (body, inside) in [(&p[0].body, ["a", "b"].as_slice()), (&p[1].body, &["c"])] {
        for x in ["a", "b", "c"] {
            let name = format!("{x}.example.com");
            let here = inside.contains(&x);
            assert_eq!(has(body, "DELETE", &name), here, "{name}");
            assert_eq!(has(body, "CREATE", &name), here, "{name}");
        }
    }
    for name in &names {
        assert_eq!(
            fake.txt(&id, name.as_str()).unwrap().records,
            many("new", 200)
        );
    }
    // Back again, while another tool changes c between the read and the apply:
    // the first batch (a, b) lands, the second is refused as a conflict.
    let sets = a.read_sets(&zone, &names).await.unwrap();
    fake.put_txt(&id, "c.example.com", 300, many("theirs", 3));
    let changes: Vec<_> = names
        .iter()
        .map(|name| change(&sets, name.as_str(), Some(many_set("old", 200))))
        .collect();
    let e = a.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.written, vec![n("a.example.com"), n("b.example.com")]);
    assert_eq!(
        fake.txt(&id, "a.example.com").unwrap().records,
        many("old", 200)
    );
    assert_eq!(
        fake.txt(&id, "b.example.com").unwrap().records,
        many("old", 200)
    );
    assert_eq!(
        fake.txt(&id, "c.example.com").unwrap().records,
        many("theirs", 3)
    );
}

/// One name whose changes alone are over the limits (11 values of 3,200
/// bytes, over 35,000 characters as quoted 255-byte strings, where a request
/// takes 32,000) refuses the whole change set before anything is sent.
#[tokio::test]
async fn one_name_over_the_batch_limits_alone_is_refused_before_sending() {
    let (fake, a, _id) = setup().await;
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    let names = [n("small.example.com"), n("big.example.com")];
    let sets = a.read_sets(&zone, &names).await.unwrap();
    let long = |i: usize| format!("{i:02}{}", "x".repeat(3_198));
    let big = TxtSet {
        ttl: 300,
        records: (0..11).map(|i| TxtRecord::from_value(long(i))).collect(),
    };
    let changes = [
        change(
            &sets,
            "small.example.com",
            Some(set(300, &[b"v=spf1 -all"])),
        ),
        change(&sets, "big.example.com", Some(big)),
    ];
    let e = a.apply(&zone, &changes).await.unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Invalid, "{e}");
    assert_eq!(e.error.name.as_deref(), Some("big.example.com"));
    assert!(e.error.message.contains("32000"), "{e}");
    assert!(e.written.is_empty());
    assert!(posts(&fake).is_empty(), "nothing sent");
}

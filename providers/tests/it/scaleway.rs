//! Scaleway adapter against the local fake: a change set is one PATCH, values
//! compare after Scaleway's quoting so a second run is in sync, no broad writes.

use maildns_providers::changeset::same_content;
use maildns_providers::hosts::scaleway::{Config, Scaleway};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{
    ErrorKind, LimitError, Provider, Secret, TxtChange, TxtRecord, TxtSet, Zone,
};
use maildns_testkit::fakes::scaleway::FakeScaleway;

use crate::n;

const KEY: &str = "scw-secret-key-0000-1111";

fn set(ttl: u32, values: &[&[u8]]) -> TxtSet {
    TxtSet {
        ttl,
        records: values.iter().map(TxtRecord::from_value).collect(),
    }
}

fn adapter(fake: &FakeScaleway, key: &str) -> Scaleway {
    let mut c = Config::new(Secret::new(key));
    c.base_url = fake.base_url().to_string();
    Scaleway::new(c, RetryPolicy::fast()).unwrap()
}

async fn setup() -> (FakeScaleway, Scaleway, Zone) {
    let fake = FakeScaleway::start(KEY).await;
    fake.add_zone("example.com");
    let a = adapter(&fake, KEY);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    (fake, a, zone)
}

#[tokio::test]
async fn conformance() {
    let (fake, a, _) = setup().await;
    let zone = a.find_zone(&n("x.y.example.com")).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", "example.com")
    );
    maildns_testkit::conformance::run(&a, &zone, None).await;
    for r in fake.requests().iter().filter(|r| r.method == "PATCH") {
        assert_eq!(r.json()["disallow_new_zone_creation"], true, "{}", r.body);
    }
}

/// The issue's example: SPF beside a site verification at the apex, a new
/// DMARC record, and an old DKIM selector removed — one PATCH for all three;
/// read back, every name holds what was wanted, so a second run is in sync.
#[tokio::test]
async fn a_change_set_is_one_patch_and_a_second_run_is_in_sync() {
    let (fake, a, zone) = setup().await;
    fake.add_txt("example.com", "", 3600, "google-site-verification=abc");
    fake.add_txt(
        "example.com",
        "old._domainkey",
        3600,
        "v=DKIM1; k=rsa; p=OLD",
    );
    let (apex, dmarc, old) = (
        n("example.com"),
        n("_dmarc.example.com"),
        n("old._domainkey.example.com"),
    );
    let names = [apex.clone(), dmarc.clone(), old.clone()];
    let read = a.read_sets(&zone, &names).await.unwrap();
    let mut apex_set = read[&apex].set.clone().unwrap();
    // A value Scaleway quotes and escapes differently on read.
    apex_set
        .records
        .push(TxtRecord::from_value(br#"v=spf1 include:"odd\name" -all"#));
    let dmarc_set = set(3600, &[b"v=DMARC1; p=quarantine; rua=mailto:d@example.com"]);
    let changes = vec![
        TxtChange {
            name: apex.clone(),
            old: read[&apex].clone(),
            new: Some(apex_set.clone()),
        },
        TxtChange {
            name: dmarc.clone(),
            old: read[&dmarc].clone(),
            new: Some(dmarc_set.clone()),
        },
        TxtChange {
            name: old.clone(),
            old: read[&old].clone(),
            new: None,
        },
    ];
    a.apply(&zone, &changes).await.unwrap();
    assert_eq!(fake.patches(), 1, "the whole change set in one PATCH");
    let patch = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let body = patch.json();
    assert_eq!(body["disallow_new_zone_creation"], true);
    let changes_sent = body["changes"].as_array().unwrap();
    assert_eq!(changes_sent.len(), 3);
    // Only the new value is added at the apex: the record already there
    // (a value maildns does not own) is neither deleted nor re-created, as a
    // `set` by name and type would do.
    assert!(changes_sent[0].get("set").is_none(), "{}", changes_sent[0]);
    let added = changes_sent[0]["add"]["records"].as_array().unwrap();
    assert_eq!(added.len(), 1, "{}", changes_sent[0]);
    assert_eq!(added[0]["data"], r#""v=spf1 include:\"odd\\name\" -all""#);
    assert!(changes_sent[1]["add"].is_object());
    assert_eq!(
        changes_sent[2],
        serde_json::json!({"delete": {"id_fields": {"name": "old._domainkey", "type": "TXT"}}})
    );
    // Stored unescaped; answered with only `"` escaped; read back as written.
    assert_eq!(
        fake.txt("example.com", "")[1].1,
        r#"v=spf1 include:"odd\name" -all"#
    );
    assert!(fake.txt("example.com", "old._domainkey").is_empty());
    let again = a.read_sets(&zone, &names).await.unwrap();
    assert!(same_content(Some(&apex_set), again[&apex].set.as_ref()));
    assert!(same_content(Some(&dmarc_set), again[&dmarc].set.as_ref()));
    assert_eq!(again[&old].set, None);
    // The values read back are the ones written, byte for byte: nothing to plan.
    assert_eq!(
        again[&apex].set.as_ref().unwrap().records[1].value(),
        br#"v=spf1 include:"odd\name" -all"#
    );
    // replace_txt of the set already there sends nothing.
    a.replace_txt(&zone, &apex, &apex_set).await.unwrap();
    assert_eq!(fake.patches(), 1);
}

#[tokio::test]
async fn a_foreign_edit_between_read_and_apply_is_a_conflict_with_nothing_sent() {
    let (fake, a, zone) = setup().await;
    let name = n("_dmarc.example.com");
    fake.add_txt("example.com", "_dmarc", 300, "v=DMARC1; p=none");
    let read = a
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    fake.add_txt("example.com", "_dmarc", 300, "foreign=1");
    let change = TxtChange {
        name: name.clone(),
        old: read[&name].clone(),
        new: Some(set(300, &[b"v=DMARC1; p=reject"])),
    };
    let e = a
        .apply(&zone, std::slice::from_ref(&change))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert_eq!(fake.patches(), 0);
    assert_eq!(fake.txt("example.com", "_dmarc").len(), 2);
    // Read again, keep the foreign value, apply.
    let read = a
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    let mut wanted = read[&name].set.clone().unwrap();
    wanted.records.retain(|r| r.value() != b"v=DMARC1; p=none");
    wanted
        .records
        .push(TxtRecord::from_value("v=DMARC1; p=reject"));
    a.apply(
        &zone,
        &[TxtChange {
            name,
            old: read.into_values().next().unwrap(),
            new: Some(wanted),
        }],
    )
    .await
    .unwrap();
    let values: Vec<String> = fake
        .txt("example.com", "_dmarc")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["foreign=1", "v=DMARC1; p=reject"]);
}

#[tokio::test]
async fn a_refused_patch_writes_nothing_and_says_so() {
    let (fake, a, zone) = setup().await;
    let changes = vec![
        TxtChange {
            name: n("a.example.com"),
            old: Default::default(),
            new: Some(set(300, &[b"one"])),
        },
        TxtChange {
            name: n("b.example.com"),
            old: Default::default(),
            new: Some(set(300, &[b"two"])),
        },
    ];
    // A TTL under Scaleway's minimum: the host refuses the whole PATCH.
    let bad = vec![
        changes[0].clone(),
        TxtChange {
            new: Some(set(30, &[b"two"])),
            ..changes[1].clone()
        },
    ];
    let e = a.apply(&zone, &bad).await.unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Invalid, "{e}");
    assert!(
        e.error
            .message
            .contains("changes[1].add.records[0].ttl: ttl must be at least 60"),
        "{e}"
    );
    assert!(e.written.is_empty(), "{:?}", e.written);
    assert!(fake.txt("example.com", "a").is_empty());
    a.apply(&zone, &changes).await.unwrap();
    assert_eq!(fake.patches(), 1);
}

#[tokio::test]
async fn values_scaleway_would_trim_are_refused_before_sending() {
    let (fake, a, zone) = setup().await;
    let e = a
        .replace_txt(&zone, &n("t.example.com"), &set(300, &[b"trailing "]))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Limit(LimitError::EdgeByte { byte: b' ', at: 8 })
    );
    assert!(fake.requests().iter().all(|r| r.method != "PATCH"));
}

#[tokio::test]
async fn long_values_and_pages() {
    let (fake, a, zone) = setup().await;
    fake.set_page_size(1);
    let name = n("s._domainkey.example.com");
    let key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    let s = TxtSet {
        ttl: 3600,
        records: vec![
            TxtRecord::from_value(key.as_bytes()),
            TxtRecord::from_value("second"),
            TxtRecord::from_value("third"),
        ],
    };
    a.replace_txt(&zone, &name, &s).await.unwrap();
    assert_eq!(fake.txt("example.com", "s._domainkey")[0].1, key);
    let back = a.read_txt(&zone, &name).await.unwrap().unwrap();
    assert!(same_content(Some(&s), Some(&back)));
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/records") && r.query.contains("page=3"))
        .count();
    assert_eq!(pages, 1, "followed total_count to page 3");
}

#[tokio::test]
async fn wrong_key_and_missing_zone() {
    let fake = FakeScaleway::start(KEY).await;
    fake.add_zone("example.com");
    let a = adapter(&fake, "wrong-key-42");
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    let line = e.to_string();
    assert_eq!(
        line,
        "scaleway: find zone example.com: authentication failed (HTTP 401): denied_authentication: authentication is denied — check the account's credential"
    );
    assert!(!format!("{e:?}{a:?}").contains("wrong-key-42"));
    let a = adapter(&fake, KEY);
    let e = a.find_zone(&n("www.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    // A known apex needs no lookup; a zone that does not exist fails the read.
    let known = a.zone_for(&n("example.com")).unwrap();
    assert_eq!(known, a.find_zone(&n("example.com")).await.unwrap());
    let missing = a.zone_for(&n("example.org")).unwrap();
    let e = a.read_txt(&missing, &n("example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
    fake.rate_limit_next(0);
    assert!(a.find_zone(&n("example.com")).await.is_ok(), "429 retried");
}

/// The fake's drop check runs on the test's thread, so a broad endpoint the
/// test did not take fails it.
#[tokio::test]
async fn dropping_the_fake_after_a_broad_call_fails_the_test() {
    let (fake, _, _) = setup().await;
    reqwest::Client::new()
        .delete(format!("{}/dns-zones/example.com/records", fake.base_url()))
        .header("X-Auth-Token", KEY)
        .send()
        .await
        .unwrap();
    let why = crate::drop_fails(fake);
    assert!(why.contains("clears the zone"), "{why}");
}

//! Namecheap adapter against the local fake of the XML API: writes only with the
//! account's opt-in, and then every other record of the domain survives byte for byte.

use maildns_providers::changeset::{Observed, TxtChange};
use maildns_providers::hosts::namecheap::{Config, Namecheap, OPT_IN_SETTING};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{ErrorKind, Provider, Secret, TxtRecord, TxtSet, Zone};
use maildns_testkit::fakes::namecheap::{FakeNamecheap, NcHost, params};

use crate::{n, set};

const USER: &str = "alice";
const KEY: &str = "nc0123456789abcdefkey";
const IP: &str = "203.0.113.7";

fn adapter(fake: &FakeNamecheap, key: &str, ip: &str, opt_in: bool) -> Namecheap {
    let mut c = Config::new(USER.into(), ip.parse().unwrap(), Secret::new(key));
    c.base_url = fake.base_url().to_string();
    c.replace_whole_host_list = opt_in;
    Namecheap::new(c, RetryPolicy::fast()).unwrap()
}

/// A domain with everything a mail domain's host list may hold besides maildns's
/// records: MX with preferences, A, CNAME, a URL redirect, other TXT values.
fn seed(fake: &FakeNamecheap) {
    fake.add_domain("example.co.uk", "MX");
    for (name, kind, address, pref, ttl) in [
        ("@", "A", "192.0.2.10", 10, 1800),
        ("@", "MX", "mx1.example.co.uk.", 10, 1800),
        ("@", "MX", "mx2.example.co.uk.", 20, 3600),
        ("www", "CNAME", "example.co.uk.", 10, 1799),
        (
            "shop",
            "URL301",
            "https://shop.example.net/?a=1&b=2",
            10,
            60,
        ),
        ("@", "TXT", "google-site-verification=abc123", 10, 1800),
        ("_github", "TXT", "x <y> & 'z'", 10, 300),
        ("mail", "AAAA", "2001:db8::25", 10, 1800),
    ] {
        fake.add_host("example.co.uk", name, kind, address, pref, ttl);
    }
}

fn contents(hosts: &[NcHost]) -> Vec<(String, String, String, String, String)> {
    hosts.iter().map(NcHost::content).collect()
}

async fn setup(opt_in: bool) -> (FakeNamecheap, Namecheap, Zone) {
    let fake = FakeNamecheap::start(USER, KEY, IP).await;
    fake.add_domain("example.com", "MX");
    seed(&fake);
    let d = adapter(&fake, KEY, IP, opt_in);
    let zone = d.find_zone(&n("_dmarc.example.co.uk")).await.unwrap();
    (fake, d, zone)
}

#[tokio::test]
async fn conformance_with_the_opt_in() {
    let (fake, d, _) = setup(true).await;
    let zone = d.find_zone(&n("x.example.com")).await.unwrap();
    assert_eq!(zone.name.as_str(), "example.com");
    maildns_testkit::conformance::run(&d, &zone, None).await;
    let commands = fake.commands();
    assert!(commands.iter().all(|c| {
        [
            "namecheap.domains.getList",
            "namecheap.domains.dns.getHosts",
            "namecheap.domains.dns.setHosts",
        ]
        .contains(&c.as_str())
    }));
    // Every request is a POST with the key in the form body, never in the URL.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.method == "POST" && !r.query.contains(KEY))
    );
}

#[tokio::test]
async fn without_the_opt_in_every_write_is_refused_before_any_request() {
    let (fake, d, zone) = setup(false).await;
    let before = fake.requests().len();
    let name = n("example.co.uk");
    let e = d
        .replace_txt(&zone, &name, &set(1800, &["v=spf1 mx -all"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(
        e.message.contains(OPT_IN_SETTING) && e.message.contains("whole host list"),
        "{e}"
    );
    assert_eq!(e.name.as_deref(), Some("example.co.uk"));
    assert!(
        d.delete_txt(&zone, &n("_dmarc.example.co.uk"))
            .await
            .is_err()
    );
    let change = TxtChange {
        name: n("_dmarc.example.co.uk"),
        old: Observed::of(None),
        new: Some(set(1800, &["v=DMARC1; p=none"])),
    };
    let e = d
        .apply(&zone, std::slice::from_ref(&change))
        .await
        .unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Config);
    assert!(e.written.is_empty());
    let e = d.replace_if_unchanged(&zone, &change).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert_eq!(fake.requests().len(), before, "nothing sent");
    // Reads work without it.
    assert_eq!(
        d.read_txt(&zone, &name).await.unwrap(),
        Some(set(1800, &["google-site-verification=abc123"]))
    );
}

#[tokio::test]
async fn publishing_keeps_every_other_record_and_the_mail_setting_byte_for_byte() {
    let (fake, d, zone) = setup(true).await;
    let before = contents(&fake.hosts("example.co.uk"));
    let names = [
        n("example.co.uk"),
        n("202611._domainkey.example.co.uk"),
        n("_dmarc.example.co.uk"),
    ];
    let read = d.read_sets(&zone, &names).await.unwrap();
    let mut apex = read[&names[0]].set.clone().unwrap();
    apex.records.push(TxtRecord::from_value("v=spf1 mx -all"));
    let dkim = TxtRecord::from_value(maildns_testkit::conformance::dkim_like(392, 7));
    let changes = vec![
        TxtChange {
            name: names[0].clone(),
            old: read[&names[0]].clone(),
            new: Some(apex),
        },
        TxtChange {
            name: names[1].clone(),
            old: read[&names[1]].clone(),
            new: Some(TxtSet {
                ttl: 1800,
                records: vec![dkim.clone()],
            }),
        },
        TxtChange {
            name: names[2].clone(),
            old: read[&names[2]].clone(),
            new: Some(set(1800, &["v=DMARC1; p=none"])),
        },
    ];
    let sets_before = fake
        .commands()
        .iter()
        .filter(|c| c.ends_with("setHosts"))
        .count();
    d.apply(&zone, &changes).await.unwrap();
    let commands = fake.commands();
    assert_eq!(
        commands.iter().filter(|c| c.ends_with("setHosts")).count() - sets_before,
        1,
        "one setHosts for the whole change set"
    );
    let after = fake.hosts("example.co.uk");
    let after_c = contents(&after);
    for h in &before {
        assert!(
            after_c.contains(h),
            "{h:?} was lost or altered: {after_c:?}"
        );
    }
    assert_eq!(after.len(), before.len() + 3);
    assert_eq!(fake.email_type("example.co.uk").as_deref(), Some("MX"));
    // The setHosts form carried EmailType=MX and the MX preferences as read.
    let set_req = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| {
            params(r)
                .iter()
                .any(|(k, v)| k == "Command" && v.ends_with("setHosts"))
        })
        .unwrap();
    let p = params(&set_req);
    assert!(p.contains(&("EmailType".into(), "MX".into())));
    assert!(
        p.contains(&("SLD".into(), "example".into()))
            && p.contains(&("TLD".into(), "co.uk".into()))
    );
    // Read back: the values as published, the DKIM key as one value.
    let got = d.read_txt(&zone, &names[1]).await.unwrap().unwrap();
    assert_eq!(got.records[0].value(), dkim.value());
    // A second run of the same change set writes nothing.
    let now = d.read_sets(&zone, &names).await.unwrap();
    let again: Vec<TxtChange> = changes
        .iter()
        .map(|c| TxtChange {
            old: now[&c.name].clone(),
            ..c.clone()
        })
        .collect();
    d.apply(&zone, &again).await.unwrap();
    assert_eq!(
        fake.commands()
            .iter()
            .filter(|c| c.ends_with("setHosts"))
            .count()
            - sets_before,
        1
    );
    // Removing our values again restores the list exactly.
    let now = d.read_sets(&zone, &names).await.unwrap();
    let undo = vec![
        TxtChange {
            name: names[0].clone(),
            old: now[&names[0]].clone(),
            new: Some(set(1800, &["google-site-verification=abc123"])),
        },
        TxtChange {
            name: names[1].clone(),
            old: now[&names[1]].clone(),
            new: None,
        },
        TxtChange {
            name: names[2].clone(),
            old: now[&names[2]].clone(),
            new: None,
        },
    ];
    d.apply(&zone, &undo).await.unwrap();
    assert_eq!(contents(&fake.hosts("example.co.uk")), before);
}

#[tokio::test]
async fn a_record_changed_under_maildns_between_write_and_read_back_is_reported() {
    let (fake, d, zone) = setup(true).await;
    fake.after_next_set_hosts(|hosts| {
        if let Some(a) = hosts.iter_mut().find(|h| h.kind == "A") {
            a.address = "198.51.100.99".into();
        }
    });
    let e = d
        .apply(
            &zone,
            &[TxtChange {
                name: n("_dmarc.example.co.uk"),
                old: Observed::of(None),
                new: Some(set(1800, &["v=DMARC1; p=none"])),
            }],
        )
        .await
        .unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Conflict);
    assert_eq!(e.written, [n("_dmarc.example.co.uk")]);
    assert!(
        e.error
            .message
            .contains("written but not found: @ A \"192.0.2.10\"")
            && e.error
                .message
                .contains("found but not written: @ A \"198.51.100.99\""),
        "{}",
        e.error
    );
}

#[tokio::test]
async fn an_rrset_changed_since_it_was_read_is_a_conflict_and_nothing_is_written() {
    let (fake, d, zone) = setup(true).await;
    let name = n("example.co.uk");
    let read = d
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    fake.edit_hosts("example.co.uk", |h| {
        h.push(NcHost {
            host_id: 999,
            name: "@".into(),
            kind: "TXT".into(),
            address: "v=spf1 include:_spf.example.net -all".into(),
            mx_pref: "10".into(),
            ttl: "1800".into(),
        })
    });
    let mut wanted = read[&name].set.clone().unwrap();
    wanted.records.push(TxtRecord::from_value("v=spf1 mx -all"));
    let before = fake.hosts("example.co.uk");
    let e = d
        .apply(
            &zone,
            &[TxtChange {
                name: name.clone(),
                old: read[&name].clone(),
                new: Some(wanted),
            }],
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{}", e.error);
    assert!(e.written.is_empty());
    assert_eq!(fake.hosts("example.co.uk"), before);
    assert!(!fake.commands().iter().any(|c| c.ends_with("setHosts")));
}

#[tokio::test]
async fn errors_inside_http_200_bodies_and_405_throttling() {
    let (fake, _, zone) = setup(true).await;
    let d = adapter(&fake, "wrong-key-123", IP, true);
    let e = d.read_txt(&zone, &n("example.co.uk")).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.status), (ErrorKind::Auth, Some(200)));
    assert!(
        e.message.contains("API Key is invalid") && e.message.contains("1011102"),
        "{e}"
    );
    assert!(!format!("{e} {e:?} {d:?}").contains("wrong-key-123"));
    let d = adapter(&fake, KEY, "198.51.100.1", true);
    let e = d.read_txt(&zone, &n("example.co.uk")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(e.message.contains("1011150"), "{e}");
    // Throttled twice (HTTP 405), then served.
    let d = adapter(&fake, KEY, IP, true);
    fake.throttle_next(2);
    let before = fake.requests().len();
    assert!(
        d.read_txt(&zone, &n("example.co.uk"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(fake.requests().len() - before, 3);
    fake.throttle_next(RetryPolicy::fast().max_attempts as usize);
    let e = d.read_txt(&zone, &n("example.co.uk")).await.unwrap_err();
    assert_eq!(
        (e.kind.clone(), e.status),
        (ErrorKind::RateLimited, Some(405))
    );
    // A domain on other name servers cannot be managed.
    fake.add_foreign_dns_domain("elsewhere.org");
    let z = d.find_zone(&n("elsewhere.org")).await.unwrap();
    let e = d.read_txt(&z, &n("elsewhere.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission);
    let e = d.find_zone(&n("a.example.net")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
}

#[tokio::test]
async fn find_zone_pages_through_the_domain_list() {
    let fake = FakeNamecheap::start(USER, KEY, IP).await;
    for i in 0..5 {
        fake.add_domain(&format!("d{i}.example"), "MX");
    }
    fake.add_domain("example.org", "MX");
    fake.set_list_page_cap(2);
    let d = adapter(&fake, KEY, IP, false);
    let z = d.find_zone(&n("_dmarc.example.org")).await.unwrap();
    assert_eq!(z.name.as_str(), "example.org");
    assert_eq!(fake.requests().len(), 3);
}

/// The fake's drop check runs on the test's thread, so a broad endpoint the
/// test did not take fails it.
#[tokio::test]
async fn dropping_the_fake_after_a_broad_call_fails_the_test() {
    let (fake, _, _) = setup(true).await;
    reqwest::Client::new()
        .get(format!("{}/xml.response", fake.base_url()))
        .query(&[
            ("ApiUser", USER),
            ("ApiKey", KEY),
            ("UserName", USER),
            ("ClientIp", IP),
            ("Command", "namecheap.domains.dns.setDefault"),
            ("SLD", "example"),
            ("TLD", "com"),
        ])
        .send()
        .await
        .unwrap();
    let why = crate::drop_fails(fake);
    assert!(
        why.contains("Command=namecheap.domains.dns.setDefault"),
        "{why}"
    );
}

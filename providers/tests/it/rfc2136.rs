//! The RFC 2136 adapter against a real BIND 9 on loopback (started per test).

use std::process::Command;
use std::time::Duration;

use maildns_providers::hosts::rfc2136::{Config, Rfc2136, TsigAlgorithm};
use maildns_providers::{
    ErrorKind, Fqdn, Provider, Secret, Split, TxtChange, TxtRecord, TxtSet, Zone,
};
use maildns_testkit::Bind;
use maildns_testkit::bind::BindOptions;

fn zone_name() -> String {
    format!("z{}.test", maildns_testkit::random_label(8))
}

fn config(bind: &Bind) -> Config {
    Config {
        server: bind.dns,
        key_name: bind.key_name.clone(),
        algorithm: bind.algorithm.parse().expect("testkit algorithm parses"),
        secret: Secret::new(bind.secret.clone()),
        zone: None,
        timeout: Duration::from_secs(5),
    }
}

fn adapter(bind: &Bind) -> Rfc2136 {
    Rfc2136::new(config(bind)).expect("valid config")
}

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).expect("valid name")
}

fn rec(strings: &[&[u8]]) -> TxtRecord {
    TxtRecord::from_parts(strings).expect("short strings")
}

fn sorted(mut v: Vec<TxtRecord>) -> Vec<TxtRecord> {
    v.sort();
    v
}

/// What BIND serves at `name`, as `dig +norec +tcp` prints it, parsed back.
fn dig_txt(bind: &Bind, name: &Fqdn) -> Vec<TxtRecord> {
    let out = Command::new("dig")
        .args(["+norec", "+tcp", "+short", "+time=5", "+tries=1"])
        .arg(format!("@{}", bind.dns.ip()))
        .arg("-p")
        .arg(bind.dns.port().to_string())
        .arg(name.to_dotted())
        .arg("TXT")
        .output()
        .expect("run dig (bind9-dnsutils)");
    assert!(out.status.success(), "dig failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("dig prints UTF-8");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| TxtRecord::parse_presentation(l).unwrap_or_else(|e| panic!("dig line {l:?}: {e}")))
        .collect()
}

async fn zone_of(p: &Rfc2136, bind: &Bind) -> Zone {
    let z = p.find_zone(&fqdn(&bind.zone)).await.expect("find zone");
    assert_eq!(z.name, fqdn(&bind.zone));
    z
}

#[tokio::test]
async fn publishes_and_reads_back_string_by_string() {
    let bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    assert_eq!(p.kind(), "rfc2136");
    let name = fqdn(&format!("sel1._domainkey.{}", bind.zone));
    // find_zone walks up from a name two labels below the apex
    let zone = p.find_zone(&name).await.expect("find zone");
    assert_eq!(zone.name, fqdn(&bind.zone));

    let set = TxtSet {
        ttl: 600,
        records: vec![
            rec(&[b"v=spf1 -all"]),
            rec(&[
                b"first \"quoted\"; ",
                b"back\\slash",
                b"",
                b" trailing space ",
            ]),
            rec(&[b"non-ascii \x00\xff\x7f bytes"]),
        ],
    };
    p.replace_txt(&zone, &name, &set).await.expect("replace");

    let got = p
        .read_txt(&zone, &name)
        .await
        .expect("read")
        .expect("a set");
    assert_eq!(got.ttl, 600);
    assert_eq!(sorted(got.records), sorted(set.records.clone()));
    assert_eq!(sorted(dig_txt(&bind, &name)), sorted(set.records.clone()));

    // writing the same set again is harmless
    p.replace_txt(&zone, &name, &set)
        .await
        .expect("replace again");
    let again = p
        .read_txt(&zone, &name)
        .await
        .expect("read")
        .expect("a set");
    assert_eq!(sorted(again.records), sorted(set.records));

    // absent name -> None (NXDOMAIN); present name without TXT -> None (NODATA)
    let absent = fqdn(&format!("nothing-here.{}", bind.zone));
    assert_eq!(p.read_txt(&zone, &absent).await.expect("read"), None);
    let ns1 = fqdn(&format!("ns1.{}", bind.zone));
    assert_eq!(p.read_txt(&zone, &ns1).await.expect("read"), None);
}

#[tokio::test]
async fn every_supported_algorithm_signs_updates() {
    for alg in ["hmac-sha256", "hmac-sha384", "hmac-sha512"] {
        let mut opts = BindOptions::new(&zone_name());
        opts.algorithm = alg.to_string();
        let bind = Bind::start_with(opts);
        let p = adapter(&bind);
        let zone = zone_of(&p, &bind).await;
        let name = fqdn(&format!("_dmarc.{}", bind.zone));
        let set = TxtSet {
            ttl: 300,
            records: vec![rec(&[format!("v=DMARC1; p=none; alg={alg}").as_bytes()])],
        };
        p.replace_txt(&zone, &name, &set)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(dig_txt(&bind, &name), set.records, "{alg}");
    }
}

#[tokio::test]
async fn a_4096_bit_dkim_record_in_four_strings_round_trips() {
    let bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    let zone = zone_of(&p, &bind).await;
    let name = fqdn(&format!("202611._domainkey.{}", bind.zone));
    // 736 base64 characters: the size of a 4096-bit RSA public key.
    let key: String = (0..736)
        .map(|i| {
            let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            table[(i * 7 + 3) % 64] as char
        })
        .collect();
    let value = format!("v=DKIM1; h=sha256; k=rsa; s=email; p={key}");
    let record = TxtRecord::split(value.as_bytes(), Split::Before(b"p="));
    assert_eq!(record.strings().len(), 4);
    assert!(value.len() > 770);
    let set = TxtSet {
        ttl: 3600,
        records: vec![record.clone()],
    };
    p.replace_txt(&zone, &name, &set).await.expect("replace");

    let got = p
        .read_txt(&zone, &name)
        .await
        .expect("read")
        .expect("a set");
    assert_eq!(got.records, vec![record.clone()]);
    assert_eq!(got.records[0].value(), value.as_bytes());
    let served = dig_txt(&bind, &name);
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].strings(), record.strings());
}

#[tokio::test]
async fn a_foreign_value_kept_in_the_set_survives_the_replace() {
    let mut opts = BindOptions::new(&zone_name());
    opts.extra_records = vec![
        "@ 300 IN TXT \"google-site-verification=Zx9 \\\"q\\\" ;x\"".to_string(),
        "@ 300 IN TXT \"v=spf1 mx -all\"".to_string(),
    ];
    let bind = Bind::start_with(opts);
    let p = adapter(&bind);
    let zone = zone_of(&p, &bind).await;
    let apex = zone.name.clone();

    let before = p.read_txt(&zone, &apex).await.expect("read").expect("set");
    assert_eq!(before.records.len(), 2);
    let foreign: Vec<TxtRecord> = before
        .records
        .iter()
        .filter(|r| !r.value_starts_with_ignore_case("v=spf1"))
        .cloned()
        .collect();
    assert_eq!(
        foreign,
        vec![rec(&[b"google-site-verification=Zx9 \"q\" ;x"])]
    );

    let mut records = foreign.clone();
    records.push(rec(&[b"v=spf1 ip4:192.0.2.1 -all"]));
    let set = TxtSet {
        ttl: before.ttl,
        records,
    };
    p.replace_txt(&zone, &apex, &set).await.expect("replace");

    let after = p.read_txt(&zone, &apex).await.expect("read").expect("set");
    assert_eq!(sorted(after.records), sorted(set.records.clone()));
    assert_eq!(sorted(dig_txt(&bind, &apex)), sorted(set.records));
}

#[tokio::test]
async fn delete_removes_the_set_and_deleting_nothing_succeeds() {
    let bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    let zone = zone_of(&p, &bind).await;
    let name = fqdn(&format!("_adsp._domainkey.{}", bind.zone));
    let set = TxtSet {
        ttl: 300,
        records: vec![rec(&[b"dkim=unknown"]), rec(&[b"other"])],
    };
    p.replace_txt(&zone, &name, &set).await.expect("replace");
    assert_eq!(dig_txt(&bind, &name).len(), 2);

    p.delete_txt(&zone, &name).await.expect("delete");
    assert_eq!(p.read_txt(&zone, &name).await.expect("read"), None);
    assert!(dig_txt(&bind, &name).is_empty());
    p.delete_txt(&zone, &name).await.expect("delete absent");

    // an empty set deletes too
    p.replace_txt(&zone, &name, &set).await.expect("replace");
    let empty = TxtSet {
        ttl: 300,
        records: vec![],
    };
    p.replace_txt(&zone, &name, &empty)
        .await
        .expect("replace empty");
    assert_eq!(p.read_txt(&zone, &name).await.expect("read"), None);
}

fn one_line_without(e: &maildns_providers::Error, secret: &str) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(!text.contains(secret), "secret leaked: {text}");
    assert!(!format!("{e:?}").contains(secret), "secret leaked in Debug");
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_does_not_show_the_secret() {
    let bind = Bind::start(&zone_name());
    let zone = zone_of(&adapter(&bind), &bind).await;
    let wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";
    let mut c = config(&bind);
    c.secret = Secret::new(wrong);
    let p = Rfc2136::new(c).expect("config");
    let name = fqdn(&format!("x.{}", bind.zone));
    let set = TxtSet {
        ttl: 300,
        records: vec![rec(&[b"v=spf1 -all"])],
    };
    let e = p.replace_txt(&zone, &name, &set).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("BADSIG"), "{e}");
    one_line_without(&e, wrong);
    one_line_without(&e, &bind.secret);
    let e = p.delete_txt(&zone, &name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    // nothing was written
    assert!(dig_txt(&bind, &name).is_empty());
}

#[tokio::test]
async fn an_unknown_key_name_is_an_auth_error() {
    let bind = Bind::start(&zone_name());
    let zone = zone_of(&adapter(&bind), &bind).await;
    let mut c = config(&bind);
    c.key_name = "no-such-key".into();
    let p = Rfc2136::new(c).expect("config");
    let name = fqdn(&format!("x.{}", bind.zone));
    let e = p.delete_txt(&zone, &name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("BADKEY"), "{e}");
    one_line_without(&e, &bind.secret);
}

#[tokio::test]
async fn the_wrong_algorithm_is_an_auth_error() {
    let bind = Bind::start(&zone_name());
    let zone = zone_of(&adapter(&bind), &bind).await;
    let mut c = config(&bind);
    assert_eq!(c.algorithm, TsigAlgorithm::HmacSha256);
    c.algorithm = TsigAlgorithm::HmacSha512;
    let p = Rfc2136::new(c).expect("config");
    let e = p
        .delete_txt(&zone, &fqdn(&format!("x.{}", bind.zone)))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    one_line_without(&e, &bind.secret);
}

#[tokio::test]
async fn a_key_outside_the_update_policy_is_a_permission_error() {
    let bind = Bind::start(&zone_name());
    let zone = zone_of(&adapter(&bind), &bind).await;
    let mut c = config(&bind);
    c.key_name = bind.readonly_key_name.clone();
    c.secret = Secret::new(bind.readonly_secret.clone());
    let p = Rfc2136::new(c).expect("config");
    let name = fqdn(&format!("x.{}", bind.zone));
    let set = TxtSet {
        ttl: 300,
        records: vec![rec(&[b"v=spf1 -all"])],
    };
    let e = p.replace_txt(&zone, &name, &set).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission, "{e}");
    assert!(e.message.contains(&bind.readonly_key_name), "{e}");
    one_line_without(&e, &bind.readonly_secret);
    assert!(dig_txt(&bind, &name).is_empty());
}

#[tokio::test]
async fn an_unknown_zone_is_zone_not_found() {
    let bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    // find_zone walks up and finds nothing the server serves
    let e = p
        .find_zone(&fqdn("mail.elsewhere.example"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");

    // an update for a zone the server does not serve (NOTAUTH, correctly signed)
    let other = Zone {
        name: fqdn("elsewhere.example"),
        id: "elsewhere.example.".into(),
    };
    let e = p
        .delete_txt(&other, &fqdn("mail.elsewhere.example"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");

    // a configured zone is returned as is, and names outside it are refused
    let mut c = config(&bind);
    c.zone = Some(fqdn(&bind.zone));
    let p = Rfc2136::new(c).expect("config");
    let z = p
        .find_zone(&fqdn(&format!("a.b.{}", bind.zone)))
        .await
        .expect("configured zone");
    assert_eq!(z.name, fqdn(&bind.zone));
    let e = p.find_zone(&fqdn("a.other.example")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound, "{e}");
}

#[tokio::test]
async fn a_stopped_server_is_a_network_error() {
    let mut bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    let zone = zone_of(&p, &bind).await;
    bind.kill();
    let name = fqdn(&format!("x.{}", bind.zone));
    let e = p.read_txt(&zone, &name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
    assert!(e.kind.is_transient());
    let set = TxtSet {
        ttl: 300,
        records: vec![rec(&[b"v=spf1 -all"])],
    };
    let e = p.replace_txt(&zone, &name, &set).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
    let e = p.find_zone(&name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_network_error() {
    // Accepts TCP connections (the kernel's backlog) but never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let c = Config {
        server: silent.local_addr().expect("addr"),
        key_name: "k".into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: Secret::new("c2VjcmV0"),
        zone: Some(fqdn("example.test")),
        timeout: Duration::from_millis(300),
    };
    let p = Rfc2136::new(c).expect("config");
    let zone = p
        .find_zone(&fqdn("example.test"))
        .await
        .expect("configured");
    let e = p.read_txt(&zone, &fqdn("example.test")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
    assert!(e.message.contains("no answer"), "{e}");
    let e = p
        .delete_txt(&zone, &fqdn("example.test"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{e}");
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    let zone = zone_of(&p, &bind).await;
    maildns_testkit::conformance::run(&p, &zone, Some(bind.dns)).await;
}

#[test]
fn algorithm_names_match_the_testkit_and_bind() {
    for (s, a) in [
        ("hmac-sha256", TsigAlgorithm::HmacSha256),
        ("hmac-sha384", TsigAlgorithm::HmacSha384),
        ("hmac-sha512", TsigAlgorithm::HmacSha512),
    ] {
        assert_eq!(s.parse::<TsigAlgorithm>().expect("parses"), a);
        assert_eq!(a.as_str(), s);
    }
}

/// The zone's SOA serial as BIND serves it: BIND adds one per update message
/// that changed the zone, so it counts the updates.
fn soa_serial(bind: &Bind) -> u32 {
    let out = Command::new("dig")
        .args(["+norec", "+tcp", "+short", "+time=5", "+tries=1"])
        .arg(format!("@{}", bind.dns.ip()))
        .arg("-p")
        .arg(bind.dns.port().to_string())
        .arg(&bind.zone)
        .arg("SOA")
        .output()
        .expect("run dig (bind9-dnsutils)");
    let text = String::from_utf8(out.stdout).expect("dig prints UTF-8");
    text.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SOA serial in {text:?}"))
}

fn one(values: &[&str]) -> TxtSet {
    TxtSet {
        ttl: 300,
        records: values.iter().map(TxtRecord::from_value).collect(),
    }
}

#[tokio::test]
async fn a_change_set_is_one_update_message_with_prerequisites() {
    let bind = Bind::start(&zone_name());
    let p = adapter(&bind);
    assert_eq!(
        p.apply_traits(),
        maildns_providers::ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            deferred: false,
        }
    );
    // The zone is named without a query.
    let zone = p.zone_for(&fqdn(&bind.zone)).unwrap();
    assert_eq!(zone, zone_of(&p, &bind).await);
    let names = [
        fqdn(&bind.zone),
        fqdn(&format!("_dmarc.{}", bind.zone)),
        fqdn(&format!("s1._domainkey.{}", bind.zone)),
    ];
    p.replace_txt(&zone, &names[2], &one(&["old key"]))
        .await
        .unwrap();
    let read = p.read_sets(&zone, &names).await.unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[&names[2]].set, Some(one(&["old key"])));
    let wanted = [
        Some(one(&["v=spf1 -all"])),
        Some(one(&["v=DMARC1; p=none", "foreign=1"])),
        None,
    ];
    let changes: Vec<TxtChange> = names
        .iter()
        .zip(wanted)
        .map(|(n, new)| TxtChange {
            name: n.clone(),
            old: read[n].clone(),
            new,
        })
        .collect();
    let before = soa_serial(&bind);
    p.apply(&zone, &changes).await.unwrap();
    assert_eq!(soa_serial(&bind), before + 1, "one update message");
    assert_eq!(
        dig_txt(&bind, &names[0]),
        [TxtRecord::from_value("v=spf1 -all")]
    );
    assert_eq!(dig_txt(&bind, &names[1]).len(), 2);
    assert!(dig_txt(&bind, &names[2]).is_empty());
    // The same change set again: already in place, no update needed to succeed.
    p.apply(&zone, &changes).await.unwrap();
    assert_eq!(soa_serial(&bind), before + 1);

    // Another tool edits one name after our read: the prerequisite fails, and
    // nothing of the change set is applied.
    let read = p.read_sets(&zone, &names).await.unwrap();
    p.replace_txt(&zone, &names[1], &one(&["v=DMARC1; p=none", "foreign=2"]))
        .await
        .unwrap();
    let serial = soa_serial(&bind);
    let changes = vec![
        TxtChange {
            name: names[0].clone(),
            old: read[&names[0]].clone(),
            new: Some(one(&["v=spf1 ip4:192.0.2.1 -all"])),
        },
        TxtChange {
            name: names[1].clone(),
            old: read[&names[1]].clone(),
            new: Some(one(&["v=DMARC1; p=reject", "foreign=1"])),
        },
    ];
    let e = p.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert!(e.error.message.contains("NXRRSET"), "{e}");
    assert_eq!(e.error.name.as_deref(), Some(names[1].as_str()), "{e}");
    assert_eq!(soa_serial(&bind), serial, "nothing applied");
    assert_eq!(
        dig_txt(&bind, &names[0]),
        [TxtRecord::from_value("v=spf1 -all")]
    );

    // A set read as absent that another tool created: YXRRSET, a conflict too.
    let fresh = fqdn(&format!("fresh.{}", bind.zone));
    let read = p
        .read_sets(&zone, std::slice::from_ref(&fresh))
        .await
        .unwrap();
    p.replace_txt(&zone, &fresh, &one(&["theirs"]))
        .await
        .unwrap();
    let change = TxtChange {
        name: fresh.clone(),
        old: read[&fresh].clone(),
        new: Some(one(&["ours"])),
    };
    let e = p.apply(&zone, &[change]).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.error.message.contains("YXRRSET"), "{e}");
    assert_eq!(dig_txt(&bind, &fresh), [TxtRecord::from_value("theirs")]);
}

#[tokio::test]
async fn zone_for_names_the_configured_zone_only() {
    let bind = Bind::start(&zone_name());
    let mut c = config(&bind);
    assert!(
        Rfc2136::new(c.clone())
            .unwrap()
            .zone_for(&fqdn("other.test"))
            .is_some()
    );
    c.zone = Some(fqdn(&bind.zone));
    let p = Rfc2136::new(c).unwrap();
    assert_eq!(p.zone_for(&fqdn("other.test")), None);
    let z = p.zone_for(&fqdn(&bind.zone)).unwrap();
    assert_eq!(z.id, fqdn(&bind.zone).to_dotted());
}

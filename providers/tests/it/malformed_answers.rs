//! Every adapter's read path validates the host's answer against that host's
//! documented format before anything is planned on it: each fake is put behind a
//! loopback proxy that rewrites its answers out of format (unquoted or unterminated
//! TXT values, a missing list), and the adapter must report a protocol error naming
//! the provider and the operation, and write nothing — the foreign values stay.

use std::sync::Arc;
use std::time::Duration;

use maildns_providers::http::RetryPolicy;
use maildns_providers::{Error, ErrorKind, Operation, Provider, TxtRecord, TxtSet};
use maildns_testkit::faultproxy::{FaultProxy, Rewrite};
use serde_json::Value;

use crate::n;

/// The foreign values seeded at the name: one with a space (which an unquoted
/// reading would split and so rewrite) and an SPF record.
fn foreign(ttl: u32) -> TxtSet {
    TxtSet {
        ttl,
        records: vec![
            TxtRecord::from_value("google-site-verification=abc def"),
            TxtRecord::from_value("v=spf1 a -all"),
        ],
    }
}

/// A JSON rewrite applied to every success body.
fn json_rewrite(f: impl Fn(&mut Value) + Send + Sync + 'static) -> Rewrite {
    Arc::new(move |_m: &str, _p: &str, body: &[u8]| {
        let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
            return body.to_vec();
        };
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    })
}

/// Applies `f` to every string under `key` (a string or an array of strings), at any depth.
fn each_string(v: &mut Value, key: &str, f: &dyn Fn(&str) -> String) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if k == key {
                    match val {
                        Value::String(s) => *s = f(s),
                        Value::Array(items) => {
                            for i in items.iter_mut() {
                                if let Value::String(s) = i {
                                    *s = f(s);
                                }
                            }
                        }
                        _ => {}
                    }
                } else {
                    each_string(val, key, f);
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                each_string(i, key, f);
            }
        }
        _ => {}
    }
}

fn unquote(s: &str) -> String {
    s.replace('"', "")
}

/// Every string under `key` with its quotes dropped.
fn unquoted(key: &'static str) -> Rewrite {
    json_rewrite(move |v| each_string(v, key, &unquote))
}

/// Every string under `key` without its closing quote: quoted strings that
/// never end.
fn unterminated(key: &'static str) -> Rewrite {
    json_rewrite(move |v| each_string(v, key, &|s| s.strip_suffix('"').unwrap_or(s).to_string()))
}

/// The member `from` of the object at `path` (keys from the top) renamed
/// `to`: read as "no records", it would lead to writes beside them.
fn renamed(path: &'static [&'static str], from: &'static str, to: &'static str) -> Rewrite {
    json_rewrite(move |v| {
        let at = path.iter().try_fold(v, |v, k| v.get_mut(*k));
        if let Some(m) = at.and_then(Value::as_object_mut)
            && let Some(list) = m.remove(from)
        {
            m.insert(to.into(), list);
        }
    })
}

/// The top-level member `key` removed.
fn removed(key: &'static str) -> Rewrite {
    json_rewrite(move |v| {
        if let Some(m) = v.as_object_mut() {
            m.remove(key);
        }
    })
}

fn assert_protocol(r: Result<Option<TxtSet>, Error>, kind: &str, what: &str) {
    let e = r.expect_err("a malformed answer must not be read as a set");
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert_eq!(e.provider, kind, "{e}");
    assert_eq!(e.operation, Operation::Read, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{kind}: read TXT ")),
        "names provider and operation: {text}"
    );
    assert!(text.contains(what), "{text}");
}

/// Whether a write through the rewriting proxy is tried too: record-level hosts
/// read before they write, so their write must fail like the read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ThroughProxy {
    ReadOnly,
    ReadAndWrite,
}

/// The shared check: seeds [`foreign`] values (at `ttl`) at the apex through an
/// adapter on `base_url`; then, behind a proxy applying each rewrite, the read must be
/// a protocol error saying its text; no write may reach the host (`writes` counts
/// them) and the foreign values stay.
async fn assert_malformed_refused<P: Provider>(
    make: impl Fn(&str) -> P,
    base_url: &str,
    writes: impl Fn() -> usize,
    ttl: u32,
    malformed: Vec<(Rewrite, &str)>,
    through: ThroughProxy,
) {
    let direct = make(base_url);
    let kind = direct.kind();
    let zone = direct.find_zone(&n("example.com")).await.unwrap();
    let name = n("example.com");
    direct
        .replace_txt(&zone, &name, &foreign(ttl))
        .await
        .unwrap();
    let before = writes();
    for (rewrite, says) in malformed {
        let (_proxy, url) = FaultProxy::rewriting_url(base_url, rewrite);
        let bad = make(&url);
        assert_protocol(bad.read_txt(&zone, &name).await, kind, says);
        if through == ThroughProxy::ReadAndWrite {
            let set = TxtSet {
                ttl,
                records: vec![TxtRecord::from_value("v=spf1 mx -all")],
            };
            let e = bad.replace_txt(&zone, &name, &set).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
        }
    }
    assert_eq!(writes(), before, "nothing written");
    assert_eq!(
        direct.read_txt(&zone, &name).await.unwrap(),
        Some(foreign(ttl))
    );
}

#[tokio::test]
async fn cloudflare_unterminated_quoted_content_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::cloudflare::{Cloudflare, Config};
    use maildns_testkit::fakes::cloudflare::FakeCloudflare;
    let fake = FakeCloudflare::start("t").await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("t"));
        c.base_url = url.to_string();
        Cloudflare::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.writes().len(),
        300,
        // Content that starts as quoted strings but never closes its quote.
        vec![(unterminated("content"), "unterminated quoted string")],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn digitalocean_answer_without_domain_records_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::digitalocean::{Config, DigitalOcean};
    use maildns_testkit::fakes::digitalocean::FakeDigitalOcean;
    let fake = FakeDigitalOcean::start("t").await;
    fake.add_domain("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("t"));
        c.base_url = url.to_string();
        DigitalOcean::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.writes().len(),
        300,
        vec![(
            renamed(&[], "domain_records", "records"),
            "missing field `domain_records`",
        )],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn hetzner_unquoted_values_are_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::hetzner::{Config, Hetzner};
    use maildns_testkit::fakes::hetzner::FakeHetzner;
    let fake = FakeHetzner::start("t").await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("t"));
        c.base_url = url.to_string();
        c.action_poll_interval = Duration::from_millis(5);
        Hetzner::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.writes().len(),
        300,
        vec![(unquoted("value"), "not a quoted string")],
        ThroughProxy::ReadOnly,
    )
    .await;
}

#[tokio::test]
async fn gandi_unquoted_values_are_a_protocol_error() {
    use maildns_providers::hosts::gandi::{Config, Gandi};
    use maildns_testkit::fakes::gandi::FakeGandi;
    let fake = FakeGandi::start("pat-0123456789").await;
    fake.add_domain("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("pat-0123456789"));
        c.base_url = url.to_string();
        Gandi::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        &fake.url,
        || fake.requests().iter().filter(|r| r.is_write()).count(),
        300,
        vec![(unquoted("rrset_values"), "not a quoted string")],
        ThroughProxy::ReadOnly,
    )
    .await;
}

#[tokio::test]
async fn desec_unquoted_records_and_a_missing_list_are_protocol_errors() {
    use maildns_providers::hosts::desec::{Config, Desec};
    use maildns_testkit::fakes::desec::FakeDesec;
    let fake = FakeDesec::start("t").await;
    fake.add_domain("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("t"));
        c.base_url = url.to_string();
        Desec::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.writes().len(),
        3600,
        vec![
            (unquoted("records"), "not a quoted string"),
            // Without `records`, the set would read as empty and a write replace it whole.
            (removed("records"), "missing field `records`"),
        ],
        ThroughProxy::ReadOnly,
    )
    .await;
}

#[tokio::test]
async fn google_unquoted_rrdatas_are_a_protocol_error() {
    use maildns_providers::hosts::google::{Config, Google};
    use maildns_testkit::fakes::google::{FakeGoogle, TestServiceAccount};
    let sa = TestServiceAccount::generate("dns@maildns-test.iam.gserviceaccount.com", 2048);
    let fake = FakeGoogle::start("maildns-test", &sa).await;
    fake.add_zone("example.com", false);
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new(
            sa.json("maildns-test", &fake.token_url),
        ));
        c.base_url = url.to_string();
        c.poll_interval = Duration::from_millis(1);
        Google::new(c, RetryPolicy::fast()).unwrap()
    };
    let writes = || {
        fake.requests()
            .iter()
            .filter(|r| r.is_write() && !r.path.contains("token"))
            .count()
    };
    assert_malformed_refused(
        make,
        &fake.url,
        writes,
        300,
        vec![(unquoted("rrdatas"), "not a quoted string")],
        ThroughProxy::ReadOnly,
    )
    .await;
}

#[tokio::test]
async fn route53_unquoted_values_are_a_protocol_error() {
    use maildns_providers::hosts::route53::{AwsCredentials, Config, Route53};
    use maildns_testkit::fakes::route53::FakeRoute53;
    let fake = FakeRoute53::start("AKIDFAKEEXAMPLE", "fake-secret").await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(AwsCredentials {
            access_key_id: "AKIDFAKEEXAMPLE".into(),
            secret_access_key: maildns_providers::Secret::new("fake-secret"),
            session_token: None,
        });
        c.base_url = url.to_string();
        c.poll_interval = Duration::from_millis(1);
        Route53::new(c, RetryPolicy::fast()).unwrap()
    };
    // Drop the quotes inside every <Value> (however the XML escapes them).
    let strip: Rewrite = Arc::new(|_m: &str, _p: &str, body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        let mut out = String::new();
        let mut rest: &str = &text;
        while let Some(start) = rest.find("<Value>") {
            let (head, tail) = rest.split_at(start + "<Value>".len());
            out.push_str(head);
            let end = tail.find("</Value>").unwrap_or(tail.len());
            let value = tail[..end]
                .replace("&quot;", "")
                .replace("&#34;", "")
                .replace('"', "");
            out.push_str(&value);
            rest = &tail[end..];
        }
        out.push_str(rest);
        out.into_bytes()
    });
    assert_malformed_refused(
        make,
        &fake.url,
        || fake.requests().iter().filter(|r| r.is_write()).count(),
        300,
        vec![(strip, "is not a quoted string")],
        ThroughProxy::ReadOnly,
    )
    .await;
}

/// A DNS server on loopback (TCP) that answers every query with its question and
/// one TXT record `"hi"`, with the header flags given (AA clear: not authoritative).
async fn dns_server(flags: u16) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while s.read_exact(&mut len).await.is_ok() {
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).await.is_err() || q.len() < 12 {
                        return;
                    }
                    // Header: same id, the given flags, 1 question, 1 answer.
                    let mut a = q[..2].to_vec();
                    a.extend_from_slice(&flags.to_be_bytes());
                    a.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
                    // The question as asked (name, type, class), then the answer.
                    let qend = 12 + q[12..].iter().position(|&b| b == 0).unwrap() + 5;
                    a.extend_from_slice(&q[12..qend]);
                    a.extend_from_slice(&[
                        0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 1, 44, 0, 3, 2, b'h', b'i',
                    ]);
                    let mut out = (a.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&a);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn rfc2136_answer_without_the_aa_flag_is_a_protocol_error() {
    use maildns_providers::hosts::rfc2136::{Config, Rfc2136, TsigAlgorithm};
    use maildns_providers::{Secret, Zone};
    let make = |addr| {
        Rfc2136::new(Config::new(
            addr,
            "maildns-key",
            TsigAlgorithm::HmacSha256,
            Secret::new("c2VjcmV0LXNlY3JldC1zZWNyZXQ="),
        ))
        .unwrap()
    };
    let zone = Zone {
        name: n("example.com"),
        id: "example.com".into(),
    };
    // The same server with AA set is read normally: the fake itself is sound.
    let good = make(dns_server(0x8400).await);
    let set = good
        .read_txt(&zone, &n("example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.records, vec![TxtRecord::from_value("hi")]);
    let bad = make(dns_server(0x8000).await);
    assert_protocol(
        bad.read_txt(&zone, &n("example.com")).await,
        "rfc2136",
        "without the AA flag",
    );
}

#[tokio::test]
async fn azure_record_set_without_etag_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::azure::{Azure, Config};
    use maildns_testkit::fakes::azure::{FakeAzure, Principal};
    let p = Principal {
        tenant: "t".into(),
        client_id: "c".into(),
        client_secret: "s".into(),
        subscription: "sub".into(),
        resource_group: "rg".into(),
    };
    let fake = FakeAzure::start(&p).await;
    fake.add_zone("example.com");
    let token_url = fake.token_url.clone();
    let make = |url: &str| {
        let mut c = Config::new(
            "t".into(),
            "c".into(),
            maildns_providers::Secret::new("s"),
            "sub".into(),
            "rg".into(),
        );
        c.base_url = url.to_string();
        c.token_url = Some(token_url.clone());
        Azure::new(c, RetryPolicy::fast()).unwrap()
    };
    // One string instead of the array of strings: the split would be guessed.
    let flat = json_rewrite(|v| {
        if let Some(recs) = v["properties"]["TXTRecords"].as_array_mut() {
            for r in recs {
                let joined = r["value"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<String>())
                    .unwrap_or_default();
                r["value"] = Value::String(joined);
            }
        }
    });
    assert_malformed_refused(
        make,
        &fake.url,
        || fake.writes().len(),
        300,
        vec![
            // Without its ETag a set cannot be written compare-and-swap: never guessed.
            (removed("etag"), "missing field `etag`"),
            (flat, "invalid type: string"),
        ],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn scaleway_unquoted_data_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::scaleway::{Config, Scaleway};
    use maildns_testkit::fakes::scaleway::FakeScaleway;
    let fake = FakeScaleway::start("k").await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("k"));
        c.base_url = url.to_string();
        Scaleway::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || {
            fake.requests()
                .iter()
                .filter(|r| r.method == "PATCH")
                .count()
        },
        300,
        vec![(unquoted("data"), "is not in the host's documented format")],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn bunny_zone_without_records_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::bunny::{Bunny, Config};
    use maildns_testkit::fakes::bunny::FakeBunny;
    let fake = FakeBunny::start("k").await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("k"));
        c.base_url = url.to_string();
        Bunny::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.requests().iter().filter(|r| r.method != "GET").count(),
        300,
        vec![(
            renamed(&[], "Records", "Entries"),
            "missing field `Records`",
        )],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn ionos_unquoted_content_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::ionos::{Config, Ionos};
    use maildns_testkit::fakes::ionos::FakeIonos;
    let fake = FakeIonos::start("p.s").await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("p.s"));
        c.base_url = url.to_string();
        Ionos::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        &fake.url,
        || fake.writes().len(),
        300,
        // IONOS always answers TXT content quoted: unquoted content is not its format.
        vec![(unquoted("content"), "is not quoted as IONOS quotes it")],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn porkbun_answer_without_records_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::porkbun::{Config, Porkbun};
    use maildns_testkit::fakes::porkbun::FakePorkbun;
    let fake = FakePorkbun::start("pk1_t", "sk1_t").await;
    fake.add_domain("example.com", true);
    let make = |url: &str| {
        let mut c = Config::from_secret(&maildns_providers::Secret::new("pk1_t:sk1_t")).unwrap();
        c.base_url = url.to_string();
        Porkbun::new(c, RetryPolicy::fast()).unwrap()
    };
    let writes = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("/dns/create/") || r.path.contains("/dns/delete/"))
            .count()
    };
    assert_malformed_refused(
        make,
        &fake.url,
        writes,
        600,
        vec![(renamed(&[], "records", "dnsRecords"), "no records list")],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn netcup_answer_without_dnsrecords_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::netcup::{Config, Netcup};
    use maildns_testkit::fakes::netcup::FakeNetcup;
    let fake = FakeNetcup::start("123456", "k", "p").await;
    fake.add_zone("example.com", 300);
    let make = |url: &str| {
        let mut c =
            Config::from_secret("123456".into(), &maildns_providers::Secret::new("k:p")).unwrap();
        c.endpoint = url.to_string();
        Netcup::new(c, RetryPolicy::fast()).unwrap()
    };
    let writes = || {
        fake.actions()
            .iter()
            .filter(|a| *a == "updateDnsRecords")
            .count()
    };
    assert_malformed_refused(
        make,
        &fake.url,
        writes,
        300,
        vec![(
            renamed(&["responsedata"], "dnsrecords", "records"),
            "missing field `dnsrecords`",
        )],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn dnsimple_unterminated_content_and_a_missing_list_are_protocol_errors() {
    use maildns_providers::hosts::dnsimple::{Config, Dnsimple};
    use maildns_testkit::fakes::dnsimple::FakeDnsimple;
    let fake = FakeDnsimple::start("t", 1010).await;
    fake.add_zone("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("t"));
        c.base_url = url.to_string();
        c.account_id = Some(1010);
        Dnsimple::new(c, RetryPolicy::fast()).unwrap()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.writes().len(),
        3600,
        vec![
            // Quoted content that never closes its quote: read as plain text it
            // would be sent back with a stray quote.
            (unterminated("content"), "neither plain nor quoted strings"),
            (renamed(&[], "data", "records"), "missing field `data`"),
        ],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

#[tokio::test]
async fn namecheap_answer_without_its_hosts_result_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::namecheap::{Config, Namecheap};
    use maildns_testkit::fakes::namecheap::FakeNamecheap;
    let fake = FakeNamecheap::start("alice", "k", "203.0.113.7").await;
    fake.add_domain("example.com", "MX");
    fake.add_host("example.com", "@", "MX", "mail.example.com.", 10, 1800);
    let make = |url: &str| {
        let mut c = Config::new(
            "alice".into(),
            "203.0.113.7".parse().unwrap(),
            maildns_providers::Secret::new("k"),
        );
        c.base_url = url.to_string();
        c.replace_whole_host_list = true;
        Namecheap::new(c, RetryPolicy::fast()).unwrap()
    };
    // The result renamed: read as an empty list, a write would delete every record.
    let renamed: Rewrite = Arc::new(|_m: &str, _p: &str, body: &[u8]| {
        String::from_utf8_lossy(body)
            .replace("DomainDNSGetHostsResult", "DomainDNSGetHostResult")
            .into_bytes()
    });
    let sets = || {
        fake.commands()
            .iter()
            .filter(|c| c.ends_with("setHosts"))
            .count()
    };
    assert_malformed_refused(
        make,
        fake.base_url(),
        sets,
        1800,
        vec![(renamed, "no DomainDNSGetHostsResult")],
        ThroughProxy::ReadAndWrite,
    )
    .await;
    assert_eq!(
        fake.hosts("example.com").len(),
        3,
        "the MX and both TXT stay"
    );
}

#[tokio::test]
async fn godaddy_answer_that_is_not_a_record_array_is_a_protocol_error_and_nothing_is_written() {
    use maildns_providers::hosts::godaddy::{Config, GoDaddy};
    use maildns_testkit::fakes::godaddy::FakeGoDaddy;
    let fake = FakeGoDaddy::start("k", "s").await;
    fake.add_domain("example.com");
    let make = |url: &str| {
        let mut c = Config::new(maildns_providers::Secret::new("k:s"));
        c.base_url = url.to_string();
        GoDaddy::new(c, RetryPolicy::fast()).unwrap()
    };
    // The array wrapped in an object: read as nothing, a PUT would drop the values.
    let wrapped = json_rewrite(|v| {
        if v.is_array() {
            *v = serde_json::json!({ "records": v.clone() });
        }
    });
    assert_malformed_refused(
        make,
        fake.base_url(),
        || fake.writes().len(),
        3600,
        vec![(wrapped, "expected a sequence")],
        ThroughProxy::ReadAndWrite,
    )
    .await;
}

//! Azure DNS adapter against the local fake (Entra ID token endpoint included):
//! ETag compare-and-swap, the change-set contract, limits, errors.

use maildns_providers::hosts::azure::{Azure, Config};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{
    ErrorKind, Observed, Provider, Secret, TxtChange, TxtRecord, TxtSet, Zone,
};
use maildns_testkit::fakes::azure::{FakeAzure, Principal};

use crate::{n, set};

const SECRET: &str = "azure-client-secret~0123";

fn principal() -> Principal {
    Principal {
        tenant: "11111111-2222-3333-4444-555555555555".into(),
        client_id: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into(),
        client_secret: SECRET.into(),
        subscription: "99999999-8888-7777-6666-555555555555".into(),
        resource_group: "dns-rg".into(),
    }
}

fn adapter(fake: &FakeAzure, secret: &str) -> Azure {
    let p = principal();
    let mut cfg = Config::new(
        p.tenant,
        p.client_id,
        Secret::new(secret),
        p.subscription,
        p.resource_group,
    );
    cfg.base_url = fake.url.clone();
    cfg.token_url = Some(fake.token_url.clone());
    Azure::new(cfg, RetryPolicy::fast()).unwrap()
}

async fn setup() -> (FakeAzure, Azure, Zone) {
    let fake = FakeAzure::start(&principal()).await;
    fake.add_zone("example.com");
    let a = adapter(&fake, SECRET);
    let zone = a.find_zone(&n("example.com")).await.unwrap();
    (fake, a, zone)
}

#[tokio::test]
async fn conformance() {
    let (fake, a, _) = setup().await;
    let zone = a.find_zone(&n("deep.name.example.com")).await.unwrap();
    assert_eq!(
        (zone.name.as_str(), zone.id.as_str()),
        ("example.com", "example.com")
    );
    maildns_testkit::conformance::run(&a, &zone, None).await;
    assert_eq!(fake.tokens_issued(), 1, "one token for the whole suite");
    // Every ARM request named the api-version; every write carried a precondition.
    for r in fake
        .requests()
        .iter()
        .filter(|r| !r.path.ends_with("/token"))
    {
        assert!(r.query.contains("api-version=2018-05-01"), "{r:?}");
    }
    for w in fake.writes() {
        assert!(
            w.header("if-match").is_some() || w.header("if-none-match") == Some("*"),
            "{} {} without a precondition",
            w.method,
            w.path
        );
    }
}

#[tokio::test]
async fn writes_are_conditional_on_the_etag_and_the_token_is_cached() {
    let (fake, a, zone) = setup().await;
    let name = n("_dmarc.example.com");
    a.replace_txt(&zone, &name, &set(300, &["v=DMARC1; p=none"]))
        .await
        .unwrap();
    let first = fake.set("example.com", "_dmarc").unwrap();
    a.replace_txt(&zone, &name, &set(600, &["v=DMARC1; p=reject"]))
        .await
        .unwrap();
    let second = fake.set("example.com", "_dmarc").unwrap();
    assert_ne!(first.etag, second.etag, "a new ETag on every write");
    assert_eq!(
        (second.ttl, second.records.clone()),
        (600, vec![vec!["v=DMARC1; p=reject".to_string()]])
    );
    let puts: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| w.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].header("if-none-match"), Some("*"));
    assert_eq!(puts[0].header("if-match"), None);
    assert_eq!(puts[1].header("if-match"), Some(first.etag.as_str()));
    assert_eq!(
        puts[1].json(),
        serde_json::json!({"properties": {"TTL": 600, "TXTRecords": [{"value": ["v=DMARC1; p=reject"]}]}})
    );
    // Same set again: read, nothing written.
    a.replace_txt(&zone, &name, &set(600, &["v=DMARC1; p=reject"]))
        .await
        .unwrap();
    assert_eq!(fake.writes().len(), 2);
    a.delete_txt(&zone, &name).await.unwrap();
    let del = fake.writes().pop().unwrap();
    assert_eq!(
        (del.method.as_str(), del.header("if-match")),
        ("DELETE", Some(second.etag.as_str()))
    );
    assert!(fake.set("example.com", "_dmarc").is_none());
    a.delete_txt(&zone, &name).await.unwrap();
    assert_eq!(
        fake.writes().len(),
        3,
        "deleting an absent set sends nothing"
    );
    // The token endpoint got the client-credentials form, once.
    assert_eq!(fake.tokens_issued(), 1);
    let tok = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .unwrap();
    assert_eq!(
        tok.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        tok.body,
        format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
            principal().client_id,
            "azure-client-secret%7E0123"
        )
    );
}

#[tokio::test]
async fn dkim_2048_is_one_record_of_255_character_strings() {
    let (fake, a, zone) = setup().await;
    let value = format!("v=DKIM1; k=rsa; p={}", "Q".repeat(392));
    let name = n("s1._domainkey.example.com");
    a.replace_txt(
        &zone,
        &name,
        &TxtSet {
            ttl: 3600,
            records: vec![TxtRecord::from_value(value.as_bytes())],
        },
    )
    .await
    .unwrap();
    let (x, y) = value.split_at(255);
    assert_eq!(
        fake.set("example.com", "s1._domainkey").unwrap().records,
        vec![vec![x.to_string(), y.to_string()]]
    );
    let back = a.read_txt(&zone, &name).await.unwrap().unwrap();
    assert_eq!(back.records[0].value(), value.as_bytes());
}

/// The change-set contract on a compare-and-swap host: another writer's edit
/// between the read and the apply makes the apply fail with Conflict and write
/// nothing; the caller reads again, plans again, and the foreign value survives.
#[tokio::test]
async fn a_foreign_edit_between_read_and_apply_is_a_conflict_and_nothing_is_lost() {
    let (fake, a, zone) = setup().await;
    let traits = a.apply_traits();
    assert!(traits.compare_and_swap && !traits.atomic);
    let apex = n("example.com");
    let dmarc = n("_dmarc.example.com");
    fake.foreign_put(
        "example.com",
        "@",
        3600,
        &[&["google-site-verification=abc"]],
    );
    let read = a
        .read_sets(&zone, &[apex.clone(), dmarc.clone()])
        .await
        .unwrap();
    let apex_etag = fake.set("example.com", "@").unwrap().etag;
    assert_eq!(read[&apex].version.as_deref(), Some(apex_etag.as_str()));
    assert_eq!(read[&dmarc], Observed::of(None));
    // Plan: add our SPF beside the verification value; publish DMARC.
    let plan = |read: &maildns_providers::ZoneSets| {
        let mut apex_set = read[&apex].set.clone().unwrap();
        apex_set
            .records
            .push(TxtRecord::from_value("v=spf1 mx -all"));
        vec![
            TxtChange {
                name: apex.clone(),
                old: read[&apex].clone(),
                new: Some(apex_set),
            },
            TxtChange {
                name: dmarc.clone(),
                old: read[&dmarc].clone(),
                new: Some(set(3600, &["v=DMARC1; p=none"])),
            },
        ]
    };
    let changes = plan(&read);
    // Another tool adds a value at the apex after our read.
    fake.foreign_put(
        "example.com",
        "@",
        3600,
        &[&["google-site-verification=abc"], &["MS=ms12345"]],
    );
    let writes_before = fake.writes().len();
    let e = a.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.written.is_empty());
    assert_eq!(e.error.status, Some(412));
    assert_eq!(e.error.name.as_deref(), Some("example.com"));
    assert_eq!(
        fake.writes().len(),
        writes_before + 1,
        "one refused PUT, then stop"
    );
    assert!(
        fake.set("example.com", "_dmarc").is_none(),
        "nothing after the conflict"
    );
    // Read again, plan again, apply: every value is there.
    let read = a
        .read_sets(&zone, &[apex.clone(), dmarc.clone()])
        .await
        .unwrap();
    a.apply(&zone, &plan(&read)).await.unwrap();
    let mut apex_now: Vec<String> = fake
        .set("example.com", "@")
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.concat())
        .collect();
    apex_now.sort();
    assert_eq!(
        apex_now,
        [
            "MS=ms12345",
            "google-site-verification=abc",
            "v=spf1 mx -all"
        ]
    );
    assert_eq!(
        fake.set("example.com", "_dmarc").unwrap().records,
        vec![vec!["v=DMARC1; p=none".to_string()]]
    );
    // Re-applying the change set already in place succeeds and writes nothing
    // (its 412s are resolved by reading: the sets hold what is wanted).
    let puts = fake.writes().len();
    a.apply(&zone, &plan(&read)).await.unwrap();
    assert_eq!(
        fake.writes().len(),
        puts + 2,
        "one refused PUT per name, then done"
    );
    assert_eq!(fake.set("example.com", "@").unwrap().records.len(), 3);
}

#[tokio::test]
async fn a_set_created_by_another_writer_after_an_absent_read_is_a_conflict() {
    let (fake, a, zone) = setup().await;
    let name = n("sel._domainkey.example.com");
    let read = a
        .read_sets(&zone, std::slice::from_ref(&name))
        .await
        .unwrap();
    fake.foreign_put(
        "example.com",
        "sel._domainkey",
        300,
        &[&["v=DKIM1; p=theirs"]],
    );
    let change = TxtChange {
        name: name.clone(),
        old: read[&name].clone(),
        new: Some(set(300, &["v=DKIM1; p=ours"])),
    };
    let e = a.apply(&zone, &[change]).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let put = fake.writes().pop().unwrap();
    assert_eq!(put.header("if-none-match"), Some("*"));
    assert_eq!(
        fake.set("example.com", "sel._domainkey").unwrap().records,
        vec![vec!["v=DKIM1; p=theirs".to_string()]]
    );
}

#[tokio::test]
async fn apply_reports_the_names_written_before_a_conflict() {
    let (fake, a, zone) = setup().await;
    let (x, y) = (n("x.example.com"), n("y.example.com"));
    fake.foreign_put("example.com", "y", 300, &[&["old"]]);
    let read = a.read_sets(&zone, &[x.clone(), y.clone()]).await.unwrap();
    fake.foreign_put("example.com", "y", 300, &[&["changed"]]);
    let changes = vec![
        TxtChange {
            name: x.clone(),
            old: read[&x].clone(),
            new: Some(set(300, &["new-x"])),
        },
        TxtChange {
            name: y.clone(),
            old: read[&y].clone(),
            new: None,
        },
    ];
    let e = a.apply(&zone, &changes).await.unwrap_err();
    assert!(e.is_conflict());
    assert_eq!(e.written, vec![x]);
    assert_eq!(
        fake.set("example.com", "y").unwrap().records,
        vec![vec!["changed".to_string()]],
        "the conditional DELETE kept the other writer's set"
    );
}

#[tokio::test]
async fn a_set_over_4096_characters_is_refused_before_sending() {
    let (fake, a, zone) = setup().await;
    let big = TxtRecord::from_value(vec![b'k'; 2100]);
    let s = TxtSet {
        ttl: 300,
        records: vec![big.clone(), TxtRecord::from_value(vec![b'm'; 2000])],
    };
    let e = a
        .replace_txt(&zone, &n("big.example.com"), &s)
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e}");
    assert!(e.message.contains("4100 characters"), "{e}");
    let change = TxtChange {
        name: n("big.example.com"),
        old: Observed::of(None),
        new: Some(s),
    };
    let e = a.apply(&zone, &[change]).await.unwrap_err();
    assert!(matches!(e.error.kind, ErrorKind::Limit(_)), "{e}");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn wrong_secret_is_one_line_with_the_hosts_message_and_no_secret() {
    let fake = FakeAzure::start(&principal()).await;
    fake.add_zone("example.com");
    let a = adapter(&fake, "wrong-secret-987");
    let e = a.find_zone(&n("example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.status, Some(401));
    let line = e.to_string();
    assert!(
        line.starts_with("azure: authenticate: authentication failed (HTTP 401): invalid_client: AADSTS7000215: Invalid client secret provided."),
        "{line}"
    );
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    let all = format!("{e} {e:?} {a:?}");
    assert!(
        !all.contains("wrong-secret-987") && !all.contains(SECRET),
        "{all}"
    );
}

#[tokio::test]
async fn the_fake_checks_api_version_and_token_audience() {
    let fake = FakeAzure::start(&principal()).await;
    fake.add_zone("example.com");
    let p = principal();
    let http = reqwest::Client::new();
    let token_for = |scope: &'static str| {
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &p.client_id)
            .append_pair("client_secret", SECRET)
            .append_pair("scope", scope)
            .finish();
        http.post(&fake.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let graph: serde_json::Value = token_for("https://graph.microsoft.com/.default")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let zone_url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones/example.com",
        fake.url, p.subscription, p.resource_group
    );
    let r = http
        .get(format!("{zone_url}?api-version=2018-05-01"))
        .bearer_auth(graph["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationTokenAudience");
    let arm: serde_json::Value = token_for("https://management.azure.com/.default")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = arm["access_token"].as_str().unwrap();
    let r = http.get(&zone_url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let r = http
        .get(format!("{zone_url}?api-version=2018-05-01"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An unconditional PUT is served as Azure would, but trips the fake.
    let r = http
        .put(format!("{zone_url}/TXT/x?api-version=2018-05-01"))
        .bearer_auth(token)
        .json(&serde_json::json!({"properties": {"TTL": 60, "TXTRecords": [{"value": ["a"]}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        fake.take_broad_calls(),
        ["PUT TXT/x without If-Match or If-None-Match (unconditional overwrite)"]
    );
    // One not taken fails the test when the fake is dropped, on this thread.
    http.put(format!("{zone_url}/TXT/y?api-version=2018-05-01"))
        .bearer_auth(token)
        .json(&serde_json::json!({"properties": {"TTL": 60, "TXTRecords": [{"value": ["b"]}]}}))
        .send()
        .await
        .unwrap();
    let why = crate::drop_fails(fake);
    assert!(why.contains("PUT TXT/y without If-Match"), "{why}");
}

#[tokio::test]
async fn throttling_and_pending_operations_are_retried_then_reported() {
    let (fake, a, zone) = setup().await;
    fake.throttle_next(1, 0);
    fake.fail_next(409, 1);
    a.replace_txt(&zone, &n("t.example.com"), &set(60, &["x"]))
        .await
        .unwrap();
    assert!(fake.set("example.com", "t").is_some());
    fake.throttle_next(10, 0);
    let e = a.read_txt(&zone, &n("t.example.com")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.message.starts_with("TooManyRequests: "), "{e}");
}

#[tokio::test]
async fn zone_not_found_walks_up_to_the_root() {
    let (_fake, a, _) = setup().await;
    let e = a.find_zone(&n("www.example.org")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZoneNotFound);
    assert_eq!(e.name.as_deref(), Some("www.example.org"));
}

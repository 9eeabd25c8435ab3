//! `maildns publish` and `plan` end to end against the local fakes of the
//! Azure DNS, Scaleway and Bunny DNS APIs: a first publish writes beside the
//! foreign values, a second run is in sync (exit 0 from `plan --exit-code`), and a
//! refused credential is one line naming the account and where its secret is read.

use std::path::{Path, PathBuf};

use maildns_testkit::cmd::Output;

use crate::cmd;
use crate::support::cli::{assert_in_sync, assert_refused, write_config};

const DOMAIN: &str = "[domains.\"example.com\"]\naccount = \"corp-dns\"\nspf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=quarantine\"\n";

fn config(dir: &Path, account: &str) -> PathBuf {
    write_config(dir, "corp-dns", account, DOMAIN)
}

/// Publishes, then checks `plan --exit-code` finds nothing to change.
fn publish_then_in_sync(cfg: &Path, env: &[(&str, &str)]) {
    let o = cmd().config(cfg).envs(env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert_in_sync(cfg, env);
}

/// A refused credential: exit 1, one FAILED line naming the account, the
/// authentication failure and where maildns reads the secret; the secret never shows.
fn refused(o: &Output, wrong: &str, host_says: &str) {
    let line = assert_refused(o, "corp-dns", &[host_says], &[wrong]);
    assert!(line.contains("`maildns secret set corp-dns`"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_publish_in_sync_and_a_wrong_secret() {
    use maildns_testkit::fakes::azure::{FakeAzure, Principal};
    let p = Principal {
        tenant: "tenant-1".into(),
        client_id: "client-1".into(),
        client_secret: "right-secret-1".into(),
        subscription: "sub-1".into(),
        resource_group: "rg-1".into(),
    };
    let fake = FakeAzure::start(&p).await;
    fake.add_zone("example.com");
    fake.foreign_put(
        "example.com",
        "@",
        3600,
        &[&["google-site-verification=abc"]],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "provider = \"azure\"\ntenant_id = \"tenant-1\"\nclient_id = \"client-1\"\nsubscription_id = \"sub-1\"\nresource_group = \"rg-1\"\nbase_url = \"{}\"\ntoken_url = \"{}\"",
            fake.url, fake.token_url
        ),
    );
    publish_then_in_sync(&cfg, &[("MAILDNS_CORP_DNS_TOKEN", "right-secret-1")]);
    let apex = fake.set("example.com", "@").unwrap();
    let mut values: Vec<String> = apex.records.iter().map(|r| r.concat()).collect();
    values.sort();
    assert_eq!(values, ["google-site-verification=abc", "v=spf1 mx -all"]);
    assert!(fake.set("example.com", "_dmarc").is_some());
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_CORP_DNS_TOKEN", "wrong-secret-2")])
        .args(["plan"])
        .run();
    refused(&o, "wrong-secret-2", "AADSTS7000215");
}

#[test]
fn azure_settings_left_out_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "provider = \"azure\"\ntenant_id = \"t\"");
    let o = cmd().config(&cfg).args(["check"]).run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    for key in ["client_id", "subscription_id", "resource_group"] {
        assert!(
            o.text().contains(&format!(
                "accounts.corp-dns.{key}: provider 'azure' needs {key}"
            )),
            "{}",
            o.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaleway_publish_in_sync_and_a_wrong_key() {
    use maildns_testkit::fakes::scaleway::FakeScaleway;
    let fake = FakeScaleway::start("right-key-1").await;
    fake.add_zone("example.com");
    fake.add_txt("example.com", "", 3600, "google-site-verification=abc");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "provider = \"scaleway\"\nbase_url = \"{}\"",
            fake.base_url()
        ),
    );
    publish_then_in_sync(&cfg, &[("MAILDNS_CORP_DNS_TOKEN", "right-key-1")]);
    let mut apex: Vec<String> = fake
        .txt("example.com", "")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    apex.sort();
    assert_eq!(apex, ["google-site-verification=abc", "v=spf1 mx -all"]);
    assert_eq!(
        fake.txt("example.com", "_dmarc"),
        [(3600, "v=DMARC1; p=quarantine".to_string())]
    );
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_CORP_DNS_TOKEN", "wrong-key-2")])
        .args(["plan"])
        .run();
    refused(
        &o,
        "wrong-key-2",
        "denied_authentication: authentication is denied",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bunny_publish_in_sync_and_a_wrong_key() {
    use maildns_testkit::fakes::bunny::FakeBunny;
    let fake = FakeBunny::start("right-key-1").await;
    let zone = fake.add_zone("example.com");
    fake.add_record(zone, 3, "", "google-site-verification=abc", 3600, false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!("provider = \"bunny\"\nbase_url = \"{}\"", fake.base_url()),
    );
    publish_then_in_sync(&cfg, &[("MAILDNS_CORP_DNS_TOKEN", "right-key-1")]);
    assert_eq!(
        fake.txt(zone, ""),
        ["google-site-verification=abc", "v=spf1 mx -all"]
    );
    assert_eq!(fake.txt(zone, "_dmarc"), ["v=DMARC1; p=quarantine"]);
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_CORP_DNS_TOKEN", "wrong-key-2")])
        .args(["plan"])
        .run();
    refused(
        &o,
        "wrong-key-2",
        "unauthorized: The request authorization failed",
    );
}

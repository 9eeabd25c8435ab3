//! `maildns publish` then `plan` end to end against the local fakes of DNSimple,
//! Namecheap and GoDaddy: one change set per domain, in sync afterwards, every
//! record maildns does not own kept, and Namecheap refused without its opt-in.
//! (Multi-threaded: the fake must answer while this thread waits for the child.)

use std::path::Path;

use crate::cmd;
use crate::support::cli::assert_in_sync;

fn config(dir: &Path, account: &str) -> std::path::PathBuf {
    let text = format!(
        "state_dir = \"state\"\n{account}\n[domains.\"example.test\"]\naccount = \"dns\"\nttl = 3600\nspf = \"v=spf1 ip4:192.0.2.10/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test\"\n[domains.\"example.test\".dkim]\nbits = 2048\n"
    );
    let p = dir.join("maildns.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsimple_publish_is_one_batch_then_in_sync() {
    let token = "dnsimple-account-token-77";
    let fake = maildns_testkit::fakes::dnsimple::FakeDnsimple::start(token, 1010).await;
    fake.add_zone("example.test");
    fake.add_record(
        "example.test",
        "",
        "TXT",
        "\"google-site-verification=xyz\"",
        3600,
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"dnsimple\"\naccount_id = 1010\nbase_url = \"{}\"\n",
            fake.base_url()
        ),
    );
    let env = [("MAILDNS_DNS_TOKEN", token)];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(token));
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].path, "/v2/1010/zones/example.test/batch");
    let apex: Vec<String> = fake
        .txt("example.test", "")
        .into_iter()
        .map(|r| r.content)
        .collect();
    assert_eq!(
        apex,
        [
            "\"google-site-verification=xyz\"",
            "\"v=spf1 ip4:192.0.2.10/32 -all\""
        ]
    );
    assert_eq!(fake.txt("example.test", "_dmarc").len(), 1);
    assert_in_sync(&cfg, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namecheap_publish_needs_the_opt_in_and_keeps_every_other_record() {
    let key = "namecheap-api-key-0042";
    let fake =
        maildns_testkit::fakes::namecheap::FakeNamecheap::start("alice", key, "203.0.113.7").await;
    fake.add_domain("example.test", "MX");
    fake.add_host("example.test", "@", "MX", "mx.example.test.", 10, 1800);
    fake.add_host("example.test", "@", "A", "192.0.2.10", 10, 1800);
    fake.add_host(
        "example.test",
        "www",
        "URL301",
        "https://example.net/",
        10,
        1800,
    );
    fake.add_host(
        "example.test",
        "@",
        "TXT",
        "google-site-verification=xyz",
        10,
        1800,
    );
    let before: Vec<_> = fake
        .hosts("example.test")
        .iter()
        .map(|h| h.content())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let account = format!(
        "[accounts.dns]\nprovider = \"namecheap\"\napi_user = \"alice\"\nclient_ip = \"203.0.113.7\"\nbase_url = \"{}\"\n",
        fake.base_url()
    );
    let cfg = config(dir.path(), &account);
    let env = [("MAILDNS_DNS_TOKEN", key)];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(
        o.text()
            .contains("replace_whole_host_list = true to [accounts.dns]"),
        "{}",
        o.text()
    );
    assert!(
        !fake.commands().iter().any(|c| c.ends_with("setHosts")),
        "nothing written"
    );
    let cfg = config(
        dir.path(),
        &format!("{account}replace_whole_host_list = true\n"),
    );
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(key));
    assert_eq!(
        fake.commands()
            .iter()
            .filter(|c| c.ends_with("setHosts"))
            .count(),
        1,
        "one setHosts for the domain"
    );
    let after: Vec<_> = fake
        .hosts("example.test")
        .iter()
        .map(|h| h.content())
        .collect();
    for h in &before {
        assert!(after.contains(h), "{h:?} lost: {after:?}");
    }
    assert_eq!(after.len(), before.len() + 3, "SPF, DMARC, DKIM added");
    assert_eq!(fake.email_type("example.test").as_deref(), Some("MX"));
    assert_in_sync(&cfg, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn godaddy_publish_keeps_foreign_values_then_in_sync() {
    let fake = maildns_testkit::fakes::godaddy::FakeGoDaddy::start("gdkey", "gdsecret").await;
    fake.add_domain("example.test");
    fake.add_record(
        "example.test",
        "@",
        "TXT",
        "google-site-verification=xyz",
        3600,
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"godaddy\"\nbase_url = \"{}\"\n",
            fake.base_url()
        ),
    );
    let env = [("MAILDNS_DNS_TOKEN", "gdkey:gdsecret")];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains("gdsecret"));
    let mut apex: Vec<String> = fake
        .records("example.test")
        .into_iter()
        .filter(|r| r.name == "@")
        .map(|r| r.data)
        .collect();
    apex.sort();
    assert_eq!(
        apex,
        [
            "google-site-verification=xyz",
            "v=spf1 ip4:192.0.2.10/32 -all"
        ]
    );
    assert_in_sync(&cfg, &env);
    // An account under GoDaddy's API threshold: the error says so.
    fake.deny_access(true);
    let o = cmd().config(&cfg).envs(&env).args(["plan"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(o.text().contains("10 or more domains"), "{}", o.text());
}

//! Each host's TTL range, checked before anything is sent: a documented floor
//! or ceiling (GoDaddy and Porkbun 600, Gandi 300, Hetzner 60, Cloudflare
//! 60..86400) is a lint-gate error at `check` and `plan` naming file:line:key,
//! the domain, its owner names, the TTL and the host's limit; `publish` writes
//! nothing. deSEC's floor is each domain's own `minimum_ttl`, read from the
//! host: refused by the adapter before its write, naming where the TTL comes
//! from. (Multi-threaded: the fakes answer while this thread waits for the child.)

use std::path::{Path, PathBuf};

use crate::cmd;

/// The 1-based line of `ttl = ` in the configuration file `cfg`.
fn ttl_line(cfg: &Path) -> usize {
    let text = std::fs::read_to_string(cfg).unwrap();
    text.lines().position(|l| l.starts_with("ttl = ")).unwrap() + 1
}

/// A configuration with one account and one domain (and its `ttl` when given).
fn config(dir: &Path, account: &str, ttl: Option<u32>, extra: &str) -> PathBuf {
    let ttl = ttl.map(|t| format!("ttl = {t}")).unwrap_or_default();
    let text = format!(
        "state_dir = \"state\"\n[accounts.dns]\n{account}\n\n[domains.\"example.test\"]\naccount = \"dns\"\n{ttl}\nspf = \"v=spf1 ip4:192.0.2.10/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test\"\n{extra}"
    );
    let p = dir.join("maildns.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn godaddy_ttl_under_600_is_refused_at_check_plan_and_publish_before_any_request() {
    let fake = maildns_testkit::fakes::godaddy::FakeGoDaddy::start("gdkey", "gdsecret").await;
    fake.add_domain("example.test");
    let dir = tempfile::tempdir().unwrap();
    let account = format!("provider = \"godaddy\"\nbase_url = \"{}\"", fake.base_url());
    let cfg = config(dir.path(), &account, Some(300), "");
    let env = [("MAILDNS_DNS_TOKEN", "gdkey:gdsecret")];
    let o = cmd().config(&cfg).envs(&env).args(["check"]).run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    let want = format!(
        "{}:{}: domains.\"example.test\".ttl: error: TTL \"300\": a TTL of 300 s (set here) for example.test, _dmarc.example.test is under godaddy's minimum of 600 s (account \"dns\")",
        cfg.display(),
        ttl_line(&cfg)
    );
    assert!(o.text().contains(&want), "{}\nwanted: {want}", o.text());
    assert!(
        o.text().contains("[rule ttl-below-host-minimum]"),
        "{}",
        o.text()
    );
    for args in [["plan"].as_slice(), &["publish"]] {
        let o = cmd().config(&cfg).envs(&env).args(args).run();
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", o.text());
        assert!(o.text().contains(&want), "{args:?}: {}", o.text());
    }
    assert!(
        fake.requests().is_empty(),
        "nothing sent: {:?}",
        fake.requests()
    );
    // At the minimum: no finding, and the host takes it.
    let cfg = config(dir.path(), &account, Some(600), "");
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains("ttl-below"), "{}", o.text());
    assert!(fake.records("example.test").iter().all(|r| r.ttl == 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn porkbun_ttl_under_600_is_refused_before_any_request() {
    let fake = maildns_testkit::fakes::porkbun::FakePorkbun::start("pk1_t", "sk1_t").await;
    fake.add_domain("example.test", true);
    let dir = tempfile::tempdir().unwrap();
    let account = format!("provider = \"porkbun\"\nbase_url = \"{}\"", fake.url);
    let cfg = config(dir.path(), &account, Some(300), "");
    let env = [("MAILDNS_DNS_TOKEN", "pk1_t:sk1_t")];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(65), "{}", o.text());
    assert!(
        o.text().contains("a TTL of 300 s (set here) for example.test, _dmarc.example.test is under porkbun's minimum of 600 s"),
        "{}",
        o.text()
    );
    assert!(fake.requests().is_empty(), "nothing sent");
}

/// The static ranges of other hosts, at `check` (no credential needed): under
/// Gandi's 300 and Hetzner's 60, over Cloudflare's 86,400; a waiver with a
/// reason unblocks it; deSEC has no static floor (it is per domain); the
/// default TTL (3600) is within every range.
#[test]
fn check_reports_each_hosts_static_ttl_range() {
    let dir = tempfile::tempdir().unwrap();
    for (account, ttl, finding) in [
        (
            "provider = \"gandi\"",
            Some(120),
            Some("under gandi's minimum of 300 s"),
        ),
        (
            "provider = \"hetzner\"",
            Some(30),
            Some("under hetzner's minimum of 60 s"),
        ),
        (
            "provider = \"cloudflare\"",
            Some(172_800),
            Some("over cloudflare's maximum of 86400 s"),
        ),
        ("provider = \"desec\"", Some(60), None),
        ("provider = \"godaddy\"", None, None),
        ("provider = \"porkbun\"", Some(600), None),
    ] {
        let cfg = config(dir.path(), account, ttl, "");
        let o = cmd().config(&cfg).args(["check"]).run();
        match finding {
            Some(f) => {
                assert_eq!(o.status.code(), Some(65), "{account}: {}", o.text());
                assert!(o.text().contains(f), "{account}: {}", o.text());
                let at = format!(
                    "{}:{}: domains.\"example.test\".ttl",
                    cfg.display(),
                    ttl_line(&cfg)
                );
                assert!(o.text().contains(&at), "{}", o.text());
            }
            None => {
                assert_eq!(o.status.code(), Some(0), "{account}: {}", o.text());
                assert!(!o.text().contains("rule ttl-"), "{account}: {}", o.text());
            }
        }
    }
    let waiver = "[domains.\"example.test\".lint]\nallow = [\"ttl-above-host-maximum\"]\nreason = \"our plan takes longer TTLs\"\n";
    let cfg = config(
        dir.path(),
        "provider = \"cloudflare\"",
        Some(172_800),
        waiver,
    );
    let o = cmd().config(&cfg).args(["check"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains("(waived: our plan takes longer TTLs)"),
        "{}",
        o.text()
    );
}

/// deSEC: 900 is under this domain's `minimum_ttl` (3600, read from the
/// host): the adapter refuses before writing, naming the domain's minimum and
/// where the TTL comes from; at 3600 it publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desec_ttl_under_the_domains_minimum_is_refused_naming_its_source() {
    let token = "desec-token-ttl";
    let fake = maildns_testkit::fakes::desec::FakeDesec::start(token).await;
    fake.add_domain("example.test");
    let dir = tempfile::tempdir().unwrap();
    let account = format!("provider = \"desec\"\nbase_url = \"{}\"", fake.base_url());
    let cfg = config(dir.path(), &account, Some(900), "");
    let env = [("MAILDNS_DNS_TOKEN", token)];
    let o = cmd().config(&cfg).envs(&env).args(["check"]).run();
    assert_eq!(o.status.code(), Some(0), "no static floor: {}", o.text());
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_ne!(o.status.code(), Some(0), "{}", o.text());
    let text = o.text();
    assert!(
        text.contains(
            "TTL 900 is below the minimum_ttl of 3600 deSEC sets for domain example.test"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "the TTL comes from {}:{}: domains.\"example.test\".ttl",
            cfg.display(),
            ttl_line(&cfg)
        )),
        "{text}"
    );
    assert!(
        fake.writes().is_empty(),
        "nothing written: {:?}",
        fake.writes()
    );
    let cfg = config(dir.path(), &account, Some(3600), "");
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
}

/// From a user trial: Linode keeps only a fixed list of TTLs and rounds any
/// other (so the set would never read back as written), and the adapter refused
/// `ttl = 301` only when writing: `check` said 0 errors. The gate now refuses
/// it at `check`, `plan` and `publish`, listing the TTLs the host keeps, and
/// nothing is sent; a TTL on the list passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linode_ttl_off_its_list_is_refused_at_check_before_any_request() {
    let fake = maildns_testkit::fakes::linode::FakeLinode::start("linode-pat-ttl").await;
    fake.add_domain("example.test");
    let dir = tempfile::tempdir().unwrap();
    let account = format!("provider = \"linode\"\nbase_url = \"{}\"", fake.base_url());
    let env = [("MAILDNS_DNS_TOKEN", "linode-pat-ttl")];
    let cfg = config(dir.path(), &account, Some(301), "");
    let want = format!(
        "{}:{}: domains.\"example.test\".ttl: error: TTL \"301\": a TTL of 301 s (set here) for example.test, _dmarc.example.test is not one linode keeps (account \"dns\"): it keeps only 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200 s",
        cfg.display(),
        ttl_line(&cfg)
    );
    for args in [["check"].as_slice(), &["plan"], &["publish"]] {
        let o = cmd().config(&cfg).envs(&env).args(args).run();
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", o.text());
        assert!(
            o.text().contains(&want),
            "{args:?}: {}\nwanted: {want}",
            o.text()
        );
        assert!(
            o.text().contains("[rule ttl-not-kept-by-host]"),
            "{}",
            o.text()
        );
    }
    assert!(
        fake.requests().is_empty(),
        "nothing sent: {:?}",
        fake.requests()
    );
    // A TTL the host keeps: no finding.
    let cfg = config(dir.path(), &account, Some(7200), "");
    let o = cmd().config(&cfg).envs(&env).args(["check"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains("ttl-not-kept"), "{}", o.text());
}

//! `maildns publish` and `plan` end to end through the Porkbun, netcup and IONOS
//! adapters, each against its host's local fake: a publish, then a plan in sync
//! (values compared after each host's own normalisation), and credential
//! failures as one line naming the account.

use std::path::{Path, PathBuf};

use maildns_testkit::fakes::ionos::FakeIonos;
use maildns_testkit::fakes::netcup::FakeNetcup;
use maildns_testkit::fakes::porkbun::FakePorkbun;

use crate::cmd;
use crate::support::cli::{assert_in_sync, assert_refused, write_config};

/// A config with one account (`account`'s TOML body) named `name` and one domain
/// `example.test` publishing SPF, DMARC and a 2048-bit DKIM key at `ttl`.
fn config(dir: &Path, name: &str, account: &str, ttl: u32) -> PathBuf {
    write_config(
        dir,
        name,
        account,
        &format!(
            "[domains.\"example.test\"]\naccount = \"{name}\"\nttl = {ttl}\nspf = \"v=spf1 ip4:192.0.2.10/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test\"\n[domains.\"example.test\".dkim]\nbits = 2048\n"
        ),
    )
}

/// publish (exit 0), then `plan --exit-code` (exit 0: in sync); the secret never shows.
fn publish_then_in_sync(cfg: &Path, env: &[(&str, &str)], secret: &str) {
    let o = cmd().config(cfg).envs(env).args(["-vv", "publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(secret));
    assert_in_sync(cfg, env);
}

/// IONOS answers TXT content quoted; compared after undoing that, the second run
/// is in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ionos_publish_then_plan_in_sync_despite_quoted_answers() {
    let key = "0123456789abcdef.SeCrEt-ionos-0123";
    let fake = FakeIonos::start(key).await;
    fake.add_zone("example.test");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "dns",
        &format!("provider = \"ionos\"\nbase_url = \"{}\"", fake.url),
        3600,
    );
    publish_then_in_sync(&cfg, &[("MAILDNS_DNS_TOKEN", key)], key);
    // Stored unquoted as sent; served quoted (the fake's raw answer).
    let spf = fake.txt("example.test");
    assert_eq!(spf.len(), 1);
    assert_eq!(spf[0].content, "v=spf1 ip4:192.0.2.10/32 -all");
    assert_eq!(
        maildns_testkit::fakes::ionos::quote(&spf[0].content),
        "\"v=spf1 ip4:192.0.2.10/32 -all\""
    );
    assert!(fake.take_broad_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn porkbun_publish_then_plan_in_sync() {
    let fake = FakePorkbun::start("pk1_e2e", "sk1_e2e_secret").await;
    fake.add_domain("example.test", true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "dns",
        &format!("provider = \"porkbun\"\nbase_url = \"{}\"", fake.url),
        600,
    );
    publish_then_in_sync(
        &cfg,
        &[("MAILDNS_DNS_TOKEN", "pk1_e2e:sk1_e2e_secret")],
        "sk1_e2e_secret",
    );
    assert_eq!(fake.txt("_dmarc.example.test").len(), 1);
    assert!(fake.take_broad_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netcup_publish_then_plan_in_sync_at_the_zones_ttl() {
    let fake = FakeNetcup::start("123456", "ncapikey", "ncpassword").await;
    fake.add_zone("example.test", 3600);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "dns",
        &format!(
            "provider = \"netcup\"\ncustomer_number = \"123456\"\nbase_url = \"{}\"",
            fake.url
        ),
        3600,
    );
    publish_then_in_sync(
        &cfg,
        &[("MAILDNS_DNS_TOKEN", "ncapikey:ncpassword")],
        "ncpassword",
    );
    assert_eq!(
        fake.txt("example.test", "@")[0].destination,
        "v=spf1 ip4:192.0.2.10/32 -all"
    );
    let (logins, logouts, open) = fake.sessions();
    assert!(logins > 0 && logins == logouts && open == 0);
}

/// Wrong netcup credentials: the domain fails with one line naming the maildns
/// account, the netcup customer number and where the credential is read from;
/// neither secret part shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netcup_wrong_credentials_are_one_line_naming_the_account() {
    let fake = FakeNetcup::start("123456", "ncapikey", "ncpassword").await;
    fake.add_zone("example.test", 3600);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "shop-mail",
        &format!(
            "provider = \"netcup\"\ncustomer_number = \"123456\"\nbase_url = \"{}\"",
            fake.url
        ),
        3600,
    );
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_SHOP_MAIL_TOKEN", "wrongkey:wrong-password")])
        .args(["plan"])
        .run();
    assert_refused(
        &o,
        "shop-mail",
        &["login refused for customer number 123456"],
        &["wrongkey", "wrong-password", "ncpassword"],
    );
}

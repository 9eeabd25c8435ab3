//! Vultr through the `maildns` binary against the local fake: publish, then the
//! next plan is in sync (Vultr returns TXT data quoted; values are compared
//! unquoted); a refused key is one line naming the account.

use maildns_testkit::fakes::vultr::FakeVultr;

use crate::cmd;
use crate::support::cli::{assert_in_sync, assert_refused, write_config};

const KEY: &str = "VULTRCLIKEY0123456789";

fn config(dir: &std::path::Path, fake: &FakeVultr) -> std::path::PathBuf {
    write_config(
        dir,
        "cloud",
        &format!("provider = \"vultr\"\nbase_url = \"{}\"", fake.base_url()),
        "[domains.\"example.com\"]\naccount = \"cloud\"\nspf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\"\n[domains.\"example.com\".dkim]\nbits = 2048\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vultr_publish_then_plan_is_in_sync() {
    let fake = FakeVultr::start(KEY).await;
    fake.add_domain("example.com");
    let foreign = fake.add_record(
        "example.com",
        "",
        "TXT",
        "\"google-site-verification=abc\"",
        3600,
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake);
    let env = [("MAILDNS_CLOUD_TOKEN", KEY)];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let apex = fake.records("example.com", "");
    assert_eq!(apex.len(), 2, "{apex:?}");
    assert_eq!(apex[0].id, foreign);
    assert_eq!(apex[1].data, "\"v=spf1 mx -all\"");
    assert_eq!(
        fake.records("example.com", "_dmarc")[0].data,
        "\"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\""
    );
    let o = assert_in_sync(&cfg, &env);
    assert!(!o.text().contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vultr_wrong_key_is_one_line_naming_the_account() {
    let fake = FakeVultr::start(KEY).await;
    fake.add_domain("example.com");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake);
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_CLOUD_TOKEN", "VULTR-WRONG-KEY")])
        .args(["plan"])
        .run();
    assert_refused(&o, "cloud", &["Invalid API token."], &["VULTR-WRONG-KEY"]);
}

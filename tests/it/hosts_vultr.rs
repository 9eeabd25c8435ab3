//! Vultr through the `maildns` binary against the local fake: publish, then the
//! next plan is in sync (Vultr returns TXT data quoted; values are compared
//! unquoted); a refused key is one line naming the account.

use maildns_testkit::fakes::vultr::FakeVultr;

use crate::cmd;

const KEY: &str = "VULTRCLIKEY0123456789";

fn config(dir: &std::path::Path, fake: &FakeVultr) -> std::path::PathBuf {
    let p = dir.join("maildns.toml");
    std::fs::write(
        &p,
        format!(
            "state_dir = \"state\"\n[accounts.cloud]\nprovider = \"vultr\"\nbase_url = \"{}\"\n[domains.\"example.com\"]\naccount = \"cloud\"\nspf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\"\n[domains.\"example.com\".dkim]\nbits = 2048\n",
            fake.base_url()
        ),
    )
    .unwrap();
    p
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
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["plan", "--exit-code"])
        .run();
    assert_eq!(o.status.code(), Some(0), "second run in sync: {}", o.text());
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
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let text = o.text();
    let line = text
        .lines()
        .find(|l| l.contains("FAILED"))
        .expect("a FAILED line");
    assert!(
        line.contains("account 'cloud'")
            && line.contains("authentication failed")
            && line.contains("Invalid API token.")
            && line.contains("$MAILDNS_CLOUD_TOKEN"),
        "{line}"
    );
    assert!(!text.contains("VULTR-WRONG-KEY"), "{text}");
}

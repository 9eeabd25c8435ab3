//! Linode through the `maildns` binary against the local fake: publish, then the
//! next plan is in sync (values compared as Linode stores them); a refused token
//! is one line naming the account.

use maildns_testkit::fakes::linode::FakeLinode;

use crate::cmd;
use crate::support::cli::{assert_in_sync, assert_refused, write_config};

const TOKEN: &str = "linode-pat-cli-0123";

fn config(dir: &std::path::Path, fake: &FakeLinode) -> std::path::PathBuf {
    write_config(
        dir,
        "vps",
        &format!("provider = \"linode\"\nbase_url = \"{}\"", fake.base_url()),
        "[domains.\"example.com\"]\naccount = \"vps\"\nspf = \"v=spf1 mx -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\"\n[domains.\"example.com\".dkim]\nbits = 2048\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linode_publish_then_plan_is_in_sync() {
    let fake = FakeLinode::start(TOKEN).await;
    let id = fake.add_domain("example.com");
    let foreign = fake.add_record(id, "", "TXT", "google-site-verification=abc", 0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake);
    let env = [("MAILDNS_VPS_TOKEN", TOKEN)];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let apex = fake.records(id, "");
    assert_eq!(apex.len(), 2, "{apex:?}");
    assert_eq!(apex[0].id, foreign);
    assert_eq!(apex[1].target, "v=spf1 mx -all");
    assert_eq!(fake.records(id, "_dmarc").len(), 1);
    let o = assert_in_sync(&cfg, &env);
    assert!(!o.text().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linode_wrong_token_is_one_line_naming_the_account() {
    let fake = FakeLinode::start(TOKEN).await;
    fake.add_domain("example.com");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake);
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_VPS_TOKEN", "linode-wrong-token")])
        .args(["plan"])
        .run();
    assert_refused(&o, "vps", &["Invalid Token"], &["linode-wrong-token"]);
}

/// `publish --wait` says how long Linode's publishing cycle is expected to take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linode_publish_wait_shows_the_hosts_publishing_delay() {
    let fake = FakeLinode::start(TOKEN).await;
    fake.add_domain("example.com");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake);
    // The authoritative server: a loopback port nothing answers on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "account = \"vps\"\n",
        &format!("account = \"vps\"\nnameservers = [\"127.0.0.1:{closed}\"]\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_VPS_TOKEN", TOKEN)])
        .args(["publish", "--wait", "--timeout", "1s"])
        .run();
    assert!(
        o.text().contains(
            "account 'vps' (linode): the host publishes changes on its own schedule; expect about 15 min"
        ),
        "{}",
        o.text()
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "not served within 1 s: {}",
        o.text()
    );
}

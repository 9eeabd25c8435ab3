//! OVHcloud through the `maildns` binary against the local fake: an SPF record
//! made with OVH's assistant (field type `SPF`) is found, updated in place and
//! never duplicated; a second run is in sync; a refused key is one line naming
//! the account.

use maildns_testkit::fakes::ovh::FakeOvh;

use crate::cmd;
use crate::support::cli::{assert_in_sync, assert_refused, write_config};

const AK: &str = "app-key-123";
const AS: &str = "app-secret-456";
const CK: &str = "consumer-key-789";

fn config(dir: &std::path::Path, fake: &FakeOvh, spf: &str) -> std::path::PathBuf {
    write_config(
        dir,
        "shop",
        &format!(
            "provider = \"ovh\"\napplication_key = \"{AK}\"\nbase_url = \"{}\"",
            fake.base_url()
        ),
        &format!(
            "[domains.\"example.com\"]\naccount = \"shop\"\nspf = \"{spf}\"\ndmarc = \"v=DMARC1; p=none\"\n"
        ),
    )
}

/// Every planned change in `plan --json` output, as (name, action).
fn changes(stdout: &[u8]) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                if let (Some(n), Some(a)) = (m.get("name"), m.get("action"))
                    && let (Some(n), Some(a)) = (n.as_str(), a.as_str())
                {
                    out.push((n.to_string(), a.to_string()));
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("plan --json is JSON");
    let mut out = Vec::new();
    walk(&v, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovh_typed_spf_is_updated_in_place_and_a_second_run_is_in_sync() {
    let fake = FakeOvh::start(AK, AS, CK).await;
    fake.add_zone("example.com");
    let spf = fake.add_record("example.com", "", "SPF", "\"v=spf1 mx ~all\"", 3600);
    fake.add_record(
        "example.com",
        "",
        "TXT",
        "\"google-site-verification=abc\"",
        3600,
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILDNS_SHOP_TOKEN", format!("{AS}:{CK}"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The configured SPF is the one OVH holds: in sync at the apex.
    let cfg = config(dir.path(), &fake, "v=spf1 mx ~all");
    let o = cmd().config(&cfg).envs(&env).args(["--json", "plan"]).run();
    let planned = changes(&o.stdout);
    assert!(
        planned
            .iter()
            .any(|(n, a)| n == "_dmarc.example.com" && a == "CREATE"),
        "{}",
        o.text()
    );
    assert!(
        planned.iter().all(|(n, _)| n != "example.com"),
        "the typed SPF is found: nothing planned at the apex: {planned:?}"
    );
    // A changed SPF: an update of that record, never a second v=spf1.
    let cfg = config(dir.path(), &fake, "v=spf1 mx -all");
    let o = cmd().config(&cfg).envs(&env).args(["--json", "plan"]).run();
    let apex: Vec<_> = changes(&o.stdout)
        .into_iter()
        .filter(|(n, _)| n == "example.com")
        .collect();
    assert_eq!(
        apex,
        [("example.com".to_string(), "UPDATE".to_string())],
        "{}",
        o.text()
    );
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let apex = fake.published("example.com", "");
    let spfs: Vec<_> = apex
        .iter()
        .filter(|r| r.target.contains("v=spf1"))
        .collect();
    assert_eq!(spfs.len(), 1, "{apex:?}");
    assert_eq!(
        (
            spfs[0].id,
            spfs[0].field_type.as_str(),
            spfs[0].target.as_str()
        ),
        (spf, "SPF", "\"v=spf1 mx -all\"")
    );
    assert!(
        apex.iter()
            .any(|r| r.target.contains("google-site-verification=abc"))
    );
    assert_eq!(fake.published("example.com", "_dmarc").len(), 1);
    let o = assert_in_sync(&cfg, &env);
    assert!(!o.text().contains(AS) && !o.text().contains(CK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovh_wrong_secret_is_one_line_naming_the_account() {
    let fake = FakeOvh::start(AK, AS, CK).await;
    fake.add_zone("example.com");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake, "v=spf1 mx -all");
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_SHOP_TOKEN", "wrong-secret:wrong-consumer")])
        .args(["plan"])
        .run();
    assert_refused(&o, "shop", &[], &["wrong-secret", "wrong-consumer"]);
    // A secret without its two parts is a configuration error, never echoed.
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_SHOP_TOKEN", "just-one-part")])
        .args(["plan"])
        .run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(
        o.text().contains("APPLICATION_SECRET:CONSUMER_KEY"),
        "{}",
        o.text()
    );
    assert!(!o.text().contains("just-one-part"), "{}", o.text());
}

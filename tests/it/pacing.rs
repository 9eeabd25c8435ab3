//! Pacing under a host's documented rate limit: a publish over many zones on
//! Route 53 (its local fake, throttling beyond 5 requests per second as the host
//! does) provokes no throttling, and says beforehand how long pacing makes it.

use std::time::Duration;

use maildns_testkit::fakes::route53::FakeRoute53;

use crate::cmd;

const KEY_ID: &str = "AKIAPACINGTEST000001";
const SECRET: &str = "pacing-test-secret";

/// Multi-threaded: the fake must answer while this thread waits for the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_publish_of_many_zones_is_paced_under_5_per_second_and_says_how_long() {
    let fake = FakeRoute53::start(KEY_ID, SECRET).await;
    fake.enforce_rate(5, Duration::from_secs(1));
    let zones: Vec<String> = (0..8).map(|i| format!("pace{i}.example")).collect();
    let mut text = format!(
        "state_dir = \"state\"\n[accounts.dns]\nprovider = \"route53\"\nbase_url = \"{}\"\n",
        fake.url
    );
    let mut ids = Vec::new();
    for z in &zones {
        ids.push(fake.add_zone(z));
        text.push_str(&format!(
            "[domains.\"{z}\"]\naccount = \"dns\"\nspf = \"v=spf1 -all\"\ndmarc = \"v=DMARC1; p=reject\"\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(&cfg, text).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];

    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .current_dir(dir.path())
        .args(["publish"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("account dns: 8 zones at 5 requests/s: about "),
        "{stderr}"
    );
    assert_eq!(fake.throttled(), 0, "requests throttled by the fake");
    // Every request counted, and more of them than one second allows: the
    // limit was really in play.
    assert!(fake.requests().len() > 10, "{}", fake.requests().len());
    for (z, id) in zones.iter().zip(&ids) {
        assert!(fake.txt(id, z).is_some(), "{z} has no SPF");
    }

    // plan reads only: fewer requests, still none throttled. (Pacing is per
    // process: the host's window of the run before must pass first.)
    std::thread::sleep(Duration::from_millis(1100));
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .current_dir(dir.path())
        .args(["plan", "--exit-code"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert_eq!(fake.throttled(), 0);
}

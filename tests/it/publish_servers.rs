//! `maildns publish` and `plan` end to end against a real PowerDNS (HTTP API) and a
//! real BIND (RFC 2136 + TSIG) started on loopback by the test harness.

use std::path::Path;
use std::process::Command;

use maildns_testkit::bind::BindOptions;
use maildns_testkit::cmd::Output;
use maildns_testkit::{Bind, PowerDns};

use crate::cmd;

fn dig(addr: std::net::SocketAddr, name: &str) -> Vec<maildns_providers::TxtRecord> {
    let o = Command::new("dig")
        .args([
            "+norec",
            "+tcp",
            "+short",
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            name,
            "TXT",
        ])
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| maildns_providers::TxtRecord::parse_presentation(l).expect("dig output parses"))
        .collect()
}

/// A run that failed a domain (exit 1): all its text and its `FAILED` line.
fn failed_run(o: &maildns_testkit::cmd::Output) -> (String, String) {
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let text = o.text();
    let line = text
        .lines()
        .find(|l| l.contains("FAILED"))
        .expect("a FAILED line")
        .to_string();
    (text, line)
}

fn config(dir: &Path, account: &str, domains: &[&str]) -> std::path::PathBuf {
    let mut text = format!("state_dir = \"state\"\n{account}\n");
    for d in domains {
        text.push_str(&format!(
            "[domains.\"{d}\"]\naccount = \"dns\"\nspf = \"v=spf1 ip4:192.0.2.10/32 -all\"\ndmarc = \"v=DMARC1; p=quarantine; rua=mailto:dmarc@{d}\"\n[domains.\"{d}\".dkim]\nbits = 2048\n"
        ));
    }
    let p = dir.join("maildns.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn powerdns_publish_plan_in_sync_foreign_values_kept_and_bad_key() {
    let pdns = PowerDns::start();
    pdns.create_zone("example.test").await;
    // A foreign value at the apex, put there by someone else.
    let client = reqwest::Client::new();
    let r = client
        .patch(format!("{}/servers/localhost/zones/example.test.", pdns.api_url))
        .header("X-API-Key", &pdns.api_key)
        .json(&serde_json::json!({"rrsets": [{"name": "example.test.", "type": "TXT", "ttl": 600, "changetype": "REPLACE",
            "records": [{"content": "\"google-site-verification=xyz\"", "disabled": false}, {"content": "\"v=spf1 a -all\"", "disabled": false}]}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{}\"\n",
            pdns.api_url
        ),
        &["example.test"],
    );
    let env = [("MAILDNS_DNS_TOKEN", pdns.api_key.as_str())];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(
        o.text().contains(
            "UPDATE example.test TXT SPF \"v=spf1 a -all\" -> \"v=spf1 ip4:192.0.2.10/32 -all\""
        ),
        "{}",
        o.text()
    );
    let apex = dig(pdns.dns, "example.test");
    let values: Vec<String> = apex.iter().map(|r| r.value_lossy()).collect();
    assert!(
        values.contains(&"google-site-verification=xyz".to_string()),
        "{values:?}"
    );
    assert!(
        values.contains(&"v=spf1 ip4:192.0.2.10/32 -all".to_string()),
        "{values:?}"
    );
    assert_eq!(values.len(), 2);
    // The DKIM key is served split into <=255-byte strings, and is the key on disk.
    let key_dir = dir.path().join("state/keys/example.test");
    let key_file = std::fs::read_dir(&key_dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let selector = key_file.file_stem().unwrap().to_string_lossy().to_string();
    let served = dig(pdns.dns, &format!("{selector}._domainkey.example.test"));
    assert_eq!(served.len(), 1);
    assert!(served[0].strings().iter().all(|s| s.len() <= 255));
    let key = maildns::keys::load_private_key(&key_file).unwrap();
    assert!(served[0].value_lossy().ends_with(&key.p_value().unwrap()));
    // plan after publish: nothing to change.
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["plan", "--exit-code"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    // A wrong API key: one line naming the account and what to check; no key echoed.
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_DNS_TOKEN", "wrong-key-123")])
        .args(["plan"])
        .run();
    let (text, line) = failed_run(&o);
    assert!(
        line.contains("account 'dns'")
            && line.contains("authentication failed")
            && line.contains("check the account's credential"),
        "{line}"
    );
    assert!(!text.contains("wrong-key-123") && !text.contains(&pdns.api_key));
}

#[tokio::test]
async fn one_failing_domain_does_not_stop_the_others() {
    let pdns = PowerDns::start();
    pdns.create_zone("good.test").await;
    let dir = tempfile::tempdir().unwrap();
    // bad.test is not a zone on this server.
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{}\"\n",
            pdns.api_url
        ),
        &["good.test", "bad.test"],
    );
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_DNS_TOKEN", pdns.api_key.as_str())])
        .args(["--json", "publish"])
        .run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["failed"], 1);
    let bad = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "bad.test")
        .unwrap();
    assert_eq!(bad["error"]["type"], "provider");
    assert_eq!(
        dig(pdns.dns, "good.test")[0].value_lossy(),
        "v=spf1 ip4:192.0.2.10/32 -all"
    );
}

#[test]
fn bind_rfc2136_publish_then_in_sync_and_wrong_tsig_key() {
    let mut opts = BindOptions::new("example.test");
    opts.extra_records.push("@ IN TXT \"MS=ms12345\"".into());
    let bind = Bind::start_with(opts);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"rfc2136\"\nserver = \"{}\"\nkey_name = \"{}\"\nalgorithm = \"{}\"\n",
            bind.dns, bind.key_name, bind.algorithm
        ),
        &["example.test"],
    );
    let env = [("MAILDNS_DNS_TOKEN", bind.secret.as_str())];
    let o = cmd().config(&cfg).envs(&env).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let values: Vec<String> = dig(bind.dns, "example.test")
        .iter()
        .map(|r| r.value_lossy())
        .collect();
    assert!(values.contains(&"MS=ms12345".to_string()), "{values:?}");
    assert!(
        values.contains(&"v=spf1 ip4:192.0.2.10/32 -all".to_string()),
        "{values:?}"
    );
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["plan", "--exit-code"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    // A wrong TSIG secret (valid base64): an authentication error naming the account.
    let wrong = "c2VjcmV0LXRoYXQtaXMtd3Jvbmc=";
    let cfg2 = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"rfc2136\"\nserver = \"{}\"\nkey_name = \"{}\"\nalgorithm = \"{}\"\n",
            bind.dns, bind.key_name, bind.algorithm
        ),
        &["example.test"],
    );
    std::fs::write(
        &cfg2,
        std::fs::read_to_string(&cfg2)
            .unwrap()
            .replace("ip4:192.0.2.10/32", "ip4:192.0.2.11/32"),
    )
    .unwrap();
    let o = cmd()
        .config(&cfg2)
        .envs(&[("MAILDNS_DNS_TOKEN", wrong)])
        .args(["publish"])
        .run();
    let (text, line) = failed_run(&o);
    assert!(
        line.contains("account 'dns'") && line.contains("authentication failed"),
        "{line}"
    );
    assert!(!text.contains(wrong) && !text.contains(&bind.secret));
}

/// A full publish with a known, valid token, with debug logs and --json: the token
/// is in no log line, error or JSON output.
#[tokio::test]
async fn tokens_never_reach_logs_errors_or_json() {
    let pdns = PowerDns::start();
    pdns.create_zone("example.test").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"powerdns\"\nbase_url = \"{}\"\n",
            pdns.api_url
        ),
        &["example.test", "missing.test"],
    );
    let env = [
        ("MAILDNS_DNS_TOKEN", pdns.api_key.as_str()),
        ("MAILDNS_LOG", "trace"),
    ];
    for args in [
        &["-vv", "--json", "publish"][..],
        &["-vv", "plan"],
        &["-vv", "--json", "publish", "--wait"],
    ] {
        let o = cmd().config(&cfg).envs(&env).args(args).run();
        let text = o.text();
        assert!(text.len() > 100, "produced output: {text}");
        assert!(!text.contains(&pdns.api_key), "{args:?} leaked the API key");
    }
    let key_file = std::fs::read_dir(dir.path().join("state/keys/example.test"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let pem = std::fs::read_to_string(key_file).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["-vv", "--json", "status"])
        .run();
    assert!(
        !o.text().contains(&body[..40]),
        "status leaked private key material"
    );
}

/// A cloud host (Cloudflare's API, as a local fake): publish with the token from
/// the environment, then plan is in sync; the token never shows. (Multi-threaded:
/// the fake must answer while this thread waits for the child process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_publish_then_in_sync_without_token_in_config() {
    let token = "cf-test-token-0123456789";
    let fake = maildns_testkit::fakes::cloudflare::FakeCloudflare::start(token).await;
    fake.add_zone("example.test");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"cloudflare\"\nbase_url = \"{}\"\n",
            fake.base_url()
        ),
        &["example.test"],
    );
    let env = [("MAILDNS_DNS_TOKEN", token), ("MAILDNS_LOG", "debug")];
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["-vv", "--json", "publish"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    assert!(!o.text().contains(token));
    let spf = fake.records("example.test");
    assert_eq!(spf.len(), 1);
    assert_eq!(spf[0].content, "\"v=spf1 ip4:192.0.2.10/32 -all\"");
    let o = cmd()
        .config(&cfg)
        .envs(&env)
        .args(["plan", "--exit-code"])
        .run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    // Without the token: a clear error naming every place looked at.
    let o = cmd().config(&cfg).envs(&[]).args(["plan"]).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    assert!(o.text().contains("MAILDNS_DNS_TOKEN"), "{}", o.text());
}

/// `maildns secret set` then `publish`, with no token in the config or the
/// environment: the token comes from the OS keyring (kernel keyutils, in a session
/// keyring made by `keyctl session`, which scripts/test installs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_set_then_publish_uses_the_keyring() {
    let token = "cf-keyring-token-4242";
    let fake = maildns_testkit::fakes::cloudflare::FakeCloudflare::start(token).await;
    fake.add_zone("example.test");
    let dir = tempfile::tempdir().unwrap();
    let account = format!("kr{}", std::process::id());
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.{account}]\nprovider = \"cloudflare\"\nbase_url = \"{}\"\n[domains.\"example.test\"]\naccount = \"{account}\"\nspf = \"v=spf1 mx -all\"\n",
            fake.base_url()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_maildns");
    let script = format!(
        "printf '%s\\n' \"$TOKEN\" | {bin} -c {cfg} secret set {account} && {bin} -c {cfg} publish; rc=$?; {bin} -c {cfg} secret delete {account}; exit $rc",
        cfg = cfg.display()
    );
    let o = Command::new("keyctl")
        .args(["session", "-", "bash", "-c", &script])
        .env("TOKEN", token)
        .env_remove(format!("MAILDNS_{}_TOKEN", account.to_uppercase()))
        .output()
        .map(Output)
        .expect("keyctl runs (package keyutils)");
    let text = o.text();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("token stored in the OS keyring"), "{text}");
    assert!(!text.contains(token));
    assert_eq!(
        fake.records("example.test")[0].content,
        "\"v=spf1 mx -all\""
    );
}

/// An adapter's authentication failure names the account's own credential
/// variable (`MAILDNS_<ACCOUNT>_TOKEN`, from the account's name, not the host's)
/// and the maildns command that stores it; the refused token is never echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_names_the_accounts_own_token_variable() {
    let fake = maildns_testkit::fakes::gandi::FakeGandi::start("right-token-456").await;
    fake.add_domain("example.com");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"state\"\n[accounts.shop-mail]\nprovider = \"gandi\"\nbase_url = \"{}\"\n[domains.\"example.com\"]\naccount = \"shop-mail\"\nspf = \"v=spf1 mx -all\"\n",
            fake.url
        ),
    )
    .unwrap();
    let o = cmd()
        .config(&cfg)
        .envs(&[("MAILDNS_SHOP_MAIL_TOKEN", "wrong-token-123")])
        .args(["plan"])
        .run();
    let (text, line) = failed_run(&o);
    assert!(
        line.contains("account 'shop-mail'")
            && line.contains("authentication failed")
            && line.contains("check the account's credential")
            && line.contains("$MAILDNS_SHOP_MAIL_TOKEN")
            && line.contains("`maildns secret set shop-mail`"),
        "{line}"
    );
    assert!(!text.contains("MAILDNS_GANDI_TOKEN"), "{text}");
    assert!(!text.contains("wrong-token-123") && !text.contains("right-token-456"));
}

/// The `exec` host end to end: `contrib/exec/knot-knotc` writing to a real
/// Knot DNS; the foreign value at the apex survives, a second run is in sync.
#[test]
fn exec_host_publishes_through_the_knot_example_then_in_sync() {
    let knot = maildns_testkit::Knot::start("example.test", &["@ TXT \"MS=ms12345\""]);
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/exec/knot-knotc");
    let cfg = config(
        dir.path(),
        &format!(
            "[accounts.dns]\nprovider = \"exec\"\ncommand = [\"{}\", \"--socket\", \"{}\"]\ntimeout = \"30s\"\natomic = true\ncompare_and_swap = true\n",
            script.display(),
            knot.socket().display()
        ),
        &["example.test"],
    );
    let o = cmd().config(&cfg).args(["publish"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
    let values: Vec<String> = dig(knot.dns, "example.test")
        .iter()
        .map(|r| r.value_lossy())
        .collect();
    assert!(values.contains(&"MS=ms12345".to_string()), "{values:?}");
    assert!(
        values.contains(&"v=spf1 ip4:192.0.2.10/32 -all".to_string()),
        "{values:?}"
    );
    let dmarc = dig(knot.dns, "_dmarc.example.test");
    assert_eq!(
        dmarc.iter().map(|r| r.value_lossy()).collect::<Vec<_>>(),
        ["v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test"]
    );
    let o = cmd().config(&cfg).args(["plan", "--exit-code"]).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.text());
}

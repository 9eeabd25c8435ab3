//! What the host stored: every write is read back. Behind a host that cuts TXT
//! values over 300 bytes, `publish` of a 2048-bit key fails naming the cut, the
//! limit is saved as a diagnosis, and the next `publish` run (or the next
//! rotation step) publishes an intact 1024-bit key without a manual
//! `maildns diagnose` — checked with dkimpy against what the host holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use maildns::accounts::connect_all;
use maildns::diagnose::Verdict;
use maildns::propagation::{Clock, Querier, QueryOptions};
use maildns::publish::{self, DomainError, DomainJob, Options};
use maildns::records::RecordKind;
use maildns::rotation::{DomainState, KeyStatus, Runner, SqliteStore, Store};
use maildns_providers::http::RetryPolicy;
use maildns_providers::{Fqdn, Profile, Provider, Secret, TxtRecord};
use maildns_testkit::PowerDns;
use maildns_testkit::fakes::gandi::FakeGandi;
use maildns_testkit::fakes::quirky::{Quirks, QuirkyFake, QuirkyProvider};

use crate::cmd;
use crate::support::{Creds, FakeClock, t0};

const TOKEN: &str = "gandi-pat";

/// The record of a revoked RSA key (RFC 6376 §3.6.1: empty `p=`).
const REVOKED: &str = "v=DKIM1; h=sha256; k=rsa; p=";

fn fqdn(s: &str) -> Fqdn {
    Fqdn::parse(s).unwrap()
}

/// A Gandi LiveDNS fake holding example.com that keeps 300 bytes of each value.
async fn cutting_host() -> FakeGandi {
    let fake = FakeGandi::start(TOKEN).await;
    fake.add_domain("example.com");
    fake.truncate_values_at(300);
    fake
}

fn write_config(dir: &Path, url: &str, bits: u32) -> PathBuf {
    let cfg = dir.join("maildns.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"state_dir = "{state}"
[accounts.gandi]
provider = "gandi"
base_url = "{url}"

[domains."example.com"]
account = "gandi"
ttl = 300
nameservers = ["127.0.0.1:9"]
spf = "v=spf1 mx -all"

[domains."example.com".dkim]
algorithms = ["rsa"]
bits = {bits}
selector_format = "%Y%m"
"#,
            state = dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
}

fn state(dir: &Path) -> DomainState {
    SqliteStore::open(&dir.join("state"))
        .unwrap()
        .load(&fqdn("example.com"))
        .unwrap()
}

fn events(dir: &Path, what: &str) -> Vec<maildns::rotation::Event> {
    SqliteStore::open(&dir.join("state"))
        .unwrap()
        .events(Some(&fqdn("example.com")), 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.what == what)
        .collect()
}

/// The joined value Gandi holds at `<selector>._domainkey` (one value expected).
fn held(fake: &FakeGandi, selector: &str) -> Option<String> {
    let (_, values) = fake.txt("example.com", &format!("{selector}._domainkey"))?;
    assert_eq!(values.len(), 1, "{values:?}");
    // Values are quoted strings; DKIM records carry no escapes.
    Some(
        values[0]
            .split('"')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect(),
    )
}

const SIGN_AND_VERIFY: &str = r#"
import sys, dkim
key = open(sys.argv[1], 'rb').read()
record = sys.argv[2].encode()
selector = sys.argv[3].encode()
msg = b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: readback\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nHello.\r\n"
sig = dkim.sign(msg, selector, b"example.com", key, include_headers=[b"from", b"to", b"subject", b"date"])
def dnsfunc(name, timeout=5):
    want = selector + b"._domainkey.example.com."
    n = name if isinstance(name, bytes) else name.encode()
    return record if n.rstrip(b".") == want.rstrip(b".") else None
ok = dkim.verify(sig + msg, dnsfunc=dnsfunc)
print(ok)
sys.exit(0 if ok else 1)
"#;

/// Signs a message with the private key; true when dkimpy verifies it against `record`.
fn verifies(key: &Path, record: &str, selector: &str) -> Output {
    Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SIGN_AND_VERIFY)
        .arg(key)
        .arg(record)
        .arg(selector)
        .output()
        .unwrap()
}

/// Signs a message with the private key and has dkimpy verify it against `record`.
fn assert_verifies(key: &Path, record: &str, selector: &str) {
    let out = verifies(key, record, selector);
    assert!(
        out.status.success(),
        "dkimpy did not verify s={selector} against {record:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `maildns <args>` on `cfg` with the Gandi token: exit code, stdout, stderr.
fn maildns(cfg: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = cmd()
        .config(cfg)
        .env("MAILDNS_GANDI_TOKEN", TOKEN)
        .args(args)
        .run();
    (out.code(), out.stdout_text(), out.stderr_text())
}

fn only(st: &DomainState, status: KeyStatus) -> &maildns::rotation::KeyRecord {
    let ks: Vec<_> = st.keys.iter().filter(|k| k.status == status).collect();
    assert_eq!(ks.len(), 1, "{:?}", st.keys);
    ks[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_names_the_cut_then_the_next_run_publishes_an_intact_1024_bit_key() {
    let fake = cutting_host().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &fake.url, 2048);

    // Run 1: the 2048-bit record (410 bytes) comes back cut to 300.
    let (code, stdout, stderr) = maildns(&cfg, &["publish"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let first = state(dir.path());
    let big = only(&first, KeyStatus::Generated).clone();
    assert_eq!(big.bits, 2048);
    let msg = format!(
        "the host truncated the DKIM record at {}._domainkey.example.com to 300 of 420 bytes",
        big.selector
    );
    assert!(stdout.contains(&msg), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(
        stdout.contains("account 'gandi' holds DKIM keys of at most 1024 bits"),
        "{stdout}"
    );
    let saved = SqliteStore::open(&dir.path().join("state"))
        .unwrap()
        .latest_diagnosis("gandi")
        .unwrap()
        .expect("the read-back is saved as a diagnosis");
    assert_eq!(saved.recommended_max_bits, Some(1024));
    assert_eq!(saved.zone, "example.com");
    assert_eq!(saved.result["source"], "readback");
    assert_eq!(saved.result["found"]["verdict"]["verdict"], "truncated");
    // `status` shows it on the key, as needing attention (exit 4).
    let (code, stdout, stderr) = maildns(&cfg, &["status"]);
    assert!(stdout.contains(&msg), "{stdout}{stderr}");
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    // What the host holds is useless: signatures with the key fail against it.
    let cut = held(&fake, big.selector.as_str()).unwrap();
    assert_eq!(cut.len(), 300);
    let key = PathBuf::from(big.key_path.clone().unwrap());
    assert!(!verifies(&key, &cut, big.selector.as_str()).status.success());

    // Run 2: no manual diagnose; the unused 2048-bit key is replaced.
    let (code, stdout, stderr) = maildns(&cfg, &["publish"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("cannot hold a 2048-bit RSA key (limit 1024 bits): new keys get 1024 bits"),
        "{stderr}"
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
    let second = state(dir.path());
    let old = second.key(&big.selector).unwrap();
    assert_eq!(old.status, KeyStatus::Destroyed);
    assert!(old.active_at.is_none());
    assert!(
        !Path::new(big.key_path.as_deref().unwrap()).exists(),
        "the discarded key file is removed"
    );
    let small = only(&second, KeyStatus::Published).clone();
    assert_eq!(small.bits, 1024);
    assert_ne!(small.selector, big.selector, "a new selector");
    let key_path = PathBuf::from(small.key_path.clone().unwrap());
    assert_eq!(
        maildns::keys::load_private_key(&key_path).unwrap().bits(),
        1024
    );
    let record = held(&fake, small.selector.as_str()).expect("published");
    assert!(record.len() < 300, "{}", record.len());
    assert_verifies(&key_path, &record, small.selector.as_str());
    // The cut record at the old selector is revoked.
    assert_eq!(held(&fake, big.selector.as_str()).as_deref(), Some(REVOKED));
    let why = events(dir.path(), "bits_fallback");
    assert!(
        why.iter()
            .any(|e| e.selector.as_ref() == Some(&big.selector)
                && e.detail.contains("discarded before use")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|e| e.selector.as_ref() == Some(&small.selector)),
        "{why:?}"
    );

    // Run 3: nothing to change; the warning is given again.
    let (code, stdout, stderr) = maildns(&cfg, &["publish"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 to create, 0 to update, 0 to delete"),
        "{stdout}"
    );
    assert!(stderr.contains("new keys get 1024 bits"), "{stderr}");
    let (code, stdout, stderr) = maildns(&cfg, &["plan", "--exit-code"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 to create, 0 to update, 0 to delete"),
        "{stdout}{stderr}"
    );
    assert_eq!(state(dir.path()), second);
    // Nothing is failing any more.
    let (code, stdout, stderr) = maildns(&cfg, &["status"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("truncated"), "{stdout}");
}

fn runner(dir: &Path, url: &str) -> Runner {
    let cfg = write_config(dir, url, 2048);
    let config = maildns::config::load(&cfg).unwrap();
    let quick = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let (providers, failed) = connect_all(&config, &Creds::token(TOKEN), quick);
    assert!(failed.is_empty());
    std::fs::create_dir_all(&config.state_dir).unwrap();
    let store = Arc::new(SqliteStore::open_locked(&config.state_dir).unwrap());
    let clock: Arc<dyn Clock> = FakeClock::at(t0());
    Runner::new(config, store, providers, clock).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_too_small_even_for_1024_bits_fails_with_backoff_never_below_1024() {
    let fake = FakeGandi::start(TOKEN).await;
    fake.add_domain("example.com");
    fake.truncate_values_at(200);
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path(), &fake.url);
    let out = runner.run_once(&fqdn("example.com")).await.unwrap();
    let steps: Vec<(&str, &str)> = out.performed.iter().map(|p| (p.action, p.result)).collect();
    assert_eq!(
        steps,
        [
            ("generate_key", "ok"),
            ("publish_key", "failed"),
            ("generate_key", "ok"),
            ("publish_key", "failed"),
        ],
        "{:#?}",
        out.performed
    );
    assert!(
        out.performed[3].detail.contains(
            "to 200 of 244 bytes; saved as the host's limit: new keys get at most 1024 bits"
        ),
        "{}",
        out.performed[3].detail
    );
    let st = state(dir.path());
    let pending = only(&st, KeyStatus::Generated);
    assert_eq!(pending.bits, 1024, "never below 1024");
    assert!(pending.not_before.is_some(), "retried after a backoff");
    let saved = SqliteStore::open(&dir.path().join("state"))
        .unwrap()
        .latest_diagnosis("gandi")
        .unwrap()
        .unwrap();
    assert!(
        saved.result["recommendation"]["text"]
            .as_str()
            .unwrap()
            .starts_with("no DKIM key fits"),
        "{}",
        saved.result
    );
    // The next run waits for the backoff: no new key, no loop.
    let out = runner.run_once(&fqdn("example.com")).await.unwrap();
    assert!(out.performed.is_empty(), "{:#?}", out.performed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_rotation_publish_falls_back_in_the_same_run_instead_of_rechecking() {
    let fake = cutting_host().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path(), &fake.url);

    let out = runner.run_once(&fqdn("example.com")).await.unwrap();
    let steps: Vec<(&str, &str, Option<&str>)> = out
        .performed
        .iter()
        .map(|p| (p.action, p.result, p.selector.as_ref().map(|s| s.as_str())))
        .collect();
    assert_eq!(
        &steps[..4],
        &[
            ("generate_key", "ok", Some("202401")),
            ("publish_key", "failed", Some("202401")),
            ("generate_key", "ok", Some("202401a")),
            ("publish_key", "ok", Some("202401a")),
        ],
        "{:#?}",
        out.performed
    );
    assert!(
        out.performed[1].detail.starts_with(
            "the host truncated the DKIM record at 202401._domainkey.example.com to 300 of 420 bytes; saved as the host's limit: new keys get at most 1024 bits"
        ),
        "{}",
        out.performed[1].detail
    );
    assert!(
        out.warnings.iter().any(|w| w.code == "bits_fallback"),
        "{:?}",
        out.warnings
    );
    let st = state(dir.path());
    assert_eq!(
        st.key(&maildns::rotation::Selector::parse("202401").unwrap())
            .unwrap()
            .status,
        KeyStatus::Destroyed
    );
    let small = only(&st, KeyStatus::Published).clone();
    assert_eq!((small.selector.as_str(), small.bits), ("202401a", 1024));
    let key_path = PathBuf::from(small.key_path.clone().unwrap());
    assert_verifies(
        &key_path,
        &held(&fake, "202401a").expect("published"),
        "202401a",
    );
    assert_eq!(held(&fake, "202401").as_deref(), Some(REVOKED));
    // Not an endless recheck of the cut key: the next run only waits for the
    // new key to propagate (its server is unreachable here).
    let out = runner.run_once(&fqdn("example.com")).await.unwrap();
    assert!(
        out.performed.iter().all(|p| p.action == "await_propagation"
            && p.selector.as_ref().map(|s| s.as_str()) == Some("202401a")),
        "{:#?}",
        out.performed
    );
    assert!(out.warnings.iter().any(|w| w.code == "bits_fallback"));
}

#[tokio::test]
async fn publish_run_reports_each_kind_of_loss_through_the_quirky_host() {
    let cases: [(Quirks, Verdict); 2] = [
        (
            Quirks {
                truncate_value_at: Some(300),
                ..Quirks::default()
            },
            Verdict::Truncated {
                kept: 300,
                sent: 420,
            },
        ),
        (
            Quirks {
                split_records: true,
                ..Quirks::default()
            },
            // One record per string sent: `v=DKIM1; ...; ` and p= in 255 + 139.
            Verdict::SeveralRecords { records: 3 },
        ),
    ];
    for (quirks, want) in cases {
        let fake = QuirkyFake::start(TOKEN, "example.com", quirks).await;
        let p: Arc<dyn Provider> = Arc::new(QuirkyProvider::new(
            fake.base_url(),
            TOKEN,
            Profile::default(),
            false,
        ));
        let providers: BTreeMap<String, Arc<dyn Provider>> =
            [("q".to_string(), p)].into_iter().collect();
        let value = format!("v=DKIM1; h=sha256; k=rsa; p={}", "A".repeat(392));
        let job = DomainJob {
            domain: fqdn("example.com"),
            account: "q".into(),
            zone: None,
            desired: vec![publish::Desired {
                name: fqdn("sel._domainkey.example.com"),
                kind: RecordKind::Dkim,
                records: vec![TxtRecord::split(
                    value.as_bytes(),
                    maildns_providers::Split::Before(b"p="),
                )],
                ttl: 300,
                in_use: false,
                only_remove: None,
            }],
        };
        let out = publish::run_jobs(
            vec![job],
            &providers,
            Options {
                mode: publish::Mode::Apply,
                force: false,
                max_delete_share: 0.5,
            },
        )
        .await;
        match &out[0].error {
            Some(DomainError::NotStored(e)) => {
                assert_eq!(e.verdict, want);
                assert_eq!(e.name, fqdn("sel._domainkey.example.com"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out[0].applied, 1, "the write itself went through");
    }
}

// ---- what a real authoritative server serves ----

/// A PowerDNS adapter whose host "cuts" values to `keep` bytes behind an API
/// that answers with what was sent: only what the server serves shows the cut.
struct CutBehindTheApi {
    inner: maildns_providers::hosts::powerdns::PowerDns,
    keep: usize,
    sent: Mutex<BTreeMap<Fqdn, maildns_providers::TxtSet>>,
}

#[async_trait::async_trait]
impl Provider for CutBehindTheApi {
    fn kind(&self) -> &'static str {
        "powerdns"
    }
    fn profile(&self) -> &Profile {
        self.inner.profile()
    }
    async fn find_zone(
        &self,
        name: &Fqdn,
    ) -> Result<maildns_providers::Zone, maildns_providers::Error> {
        self.inner.find_zone(name).await
    }
    async fn read_txt(
        &self,
        zone: &maildns_providers::Zone,
        name: &Fqdn,
    ) -> Result<Option<maildns_providers::TxtSet>, maildns_providers::Error> {
        let _ = zone;
        Ok(self.sent.lock().unwrap().get(name).cloned())
    }
    async fn replace_txt(
        &self,
        zone: &maildns_providers::Zone,
        name: &Fqdn,
        set: &maildns_providers::TxtSet,
    ) -> Result<(), maildns_providers::Error> {
        self.sent.lock().unwrap().insert(name.clone(), set.clone());
        let cut = maildns_providers::TxtSet {
            ttl: set.ttl,
            records: set
                .records
                .iter()
                .map(|r| {
                    let v = r.value();
                    TxtRecord::from_value(&v[..v.len().min(self.keep)])
                })
                .collect(),
        };
        self.inner.replace_txt(zone, name, &cut).await
    }
    async fn delete_txt(
        &self,
        zone: &maildns_providers::Zone,
        name: &Fqdn,
    ) -> Result<(), maildns_providers::Error> {
        self.sent.lock().unwrap().remove(name);
        self.inner.delete_txt(zone, name).await
    }
}

fn pdns_adapter(pdns: &PowerDns) -> maildns_providers::hosts::powerdns::PowerDns {
    maildns_providers::hosts::powerdns::PowerDns::new(
        maildns_providers::hosts::powerdns::Config {
            base_url: pdns.api_url.clone(),
            server_id: "localhost".into(),
            api_key: Secret::new(pdns.api_key.clone()),
        },
        RetryPolicy::fast(),
    )
    .unwrap()
}

fn dkim_job(domain: &str, selector: &str, p_len: usize) -> DomainJob {
    let value = format!("v=DKIM1; h=sha256; k=rsa; p={}", "A".repeat(p_len));
    DomainJob {
        domain: fqdn(domain),
        account: "dns".into(),
        zone: None,
        desired: vec![publish::Desired {
            name: fqdn(&format!("{selector}._domainkey.{domain}")),
            kind: RecordKind::Dkim,
            records: vec![TxtRecord::split(
                value.as_bytes(),
                maildns_providers::Split::Before(b"p="),
            )],
            ttl: 300,
            in_use: false,
            only_remove: None,
        }],
    }
}

fn served_check(domain: &str, server: std::net::SocketAddr) -> publish::ServedCheck {
    publish::ServedCheck {
        querier: Querier::new(QueryOptions::default()),
        servers: [(fqdn(domain), vec![server].into())].into_iter().collect(),
        wait: std::time::Duration::from_secs(2),
    }
}

const APPLY: Options = Options {
    mode: publish::Mode::Apply,
    force: false,
    max_delete_share: 0.5,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_powerdns_serving_a_cut_value_is_caught_and_a_whole_one_passes() {
    let pdns = PowerDns::start();
    let z = format!("z{}.test", maildns_testkit::random_label(8));
    pdns.create_zone(&z).await;

    // The real adapter: stored unsplit, served in 255-byte strings: intact.
    let real: Arc<dyn Provider> = Arc::new(pdns_adapter(&pdns));
    let providers: BTreeMap<String, Arc<dyn Provider>> =
        [("dns".to_string(), real)].into_iter().collect();
    let out = publish::run_checked(
        vec![dkim_job(&z, "whole", 392)],
        &providers,
        APPLY,
        Some(served_check(&z, pdns.dns)),
    )
    .await;
    assert!(out[0].error.is_none(), "{:?}", out[0].error);
    assert_eq!(out[0].applied, 1);

    // An API that answers with what was sent while the server serves 300 bytes.
    let cut: Arc<dyn Provider> = Arc::new(CutBehindTheApi {
        inner: pdns_adapter(&pdns),
        keep: 300,
        sent: Mutex::new(BTreeMap::new()),
    });
    let providers: BTreeMap<String, Arc<dyn Provider>> =
        [("dns".to_string(), cut)].into_iter().collect();
    let out = publish::run_checked(
        vec![dkim_job(&z, "cut", 392)],
        &providers,
        APPLY,
        Some(served_check(&z, pdns.dns)),
    )
    .await;
    match &out[0].error {
        Some(DomainError::NotStored(e)) => {
            assert_eq!(
                e.verdict,
                Verdict::Truncated {
                    kept: 300,
                    sent: 420
                }
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "the authoritative server {} serves the DKIM record at cut._domainkey.{z} truncated to 300 of 420 bytes",
                    pdns.dns
                )
            );
        }
        other => panic!("{other:?}"),
    }
    // Without a server to ask, only the API is read (and it looks right).
    let out = publish::run_jobs(vec![dkim_job(&z, "cut2", 392)], &providers, APPLY).await;
    assert!(out[0].error.is_none(), "{:?}", out[0].error);
}

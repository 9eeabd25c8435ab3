//! Scaffolding the integration tests share: a settable clock, credentials
//! handed to the runner, the seed's first rotation instant, dkimpy's
//! verification of a signature against a real server, and ([`rig`]) one
//! rotation environment (PowerDNS, a state directory, a config file, the
//! runner) parameterised by the kind of signer beside it.

pub(crate) mod cli;
pub(crate) mod rig;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use maildns::accounts::Credentials;
use maildns::config::Account;
use maildns::keys::PrivateKey;
use maildns::propagation::Clock;
use maildns::rotation::{
    Algorithm, DomainState, KeyRecord, KeyStatus, Performed, RunOutcome, Selector,
};
use maildns_providers::Secret;
use maildns_providers::hosts::route53::AwsCredentials;
use maildns_testkit::PowerDns;
use maildns_testkit::cmd::Maildns;

use crate::cmd;

/// The message the signers sign in the rotation tests.
pub(crate) const MESSAGE: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: rotation\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <rotation@example.com>\r\n\r\nHello.\r\n";

/// A clock the test sets: the runner's "now" moves only by [`FakeClock::advance`].
pub(crate) struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    /// A clock standing at `t`.
    pub(crate) fn at(t: DateTime<Utc>) -> Arc<FakeClock> {
        Arc::new(FakeClock(Mutex::new(t)))
    }

    /// Moves the clock on by `d`.
    pub(crate) fn advance(&self, d: TimeDelta) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// The one credential of every account (AWS keys for Route 53 when given).
pub(crate) struct Creds {
    pub(crate) secret: String,
    pub(crate) aws: Option<(String, String)>,
}

impl Creds {
    /// Every account's credential is `secret`; there are no AWS keys.
    pub(crate) fn token(secret: impl Into<String>) -> Creds {
        Creds {
            secret: secret.into(),
            aws: None,
        }
    }
}

impl Credentials for Creds {
    fn credential(&self, _: &Account) -> Result<Secret, maildns::secrets::SecretError> {
        Ok(Secret::new(self.secret.clone()))
    }
    fn aws(&self, _: &Account) -> Result<AwsCredentials, maildns::secrets::SecretError> {
        match &self.aws {
            Some((id, secret)) => Ok(AwsCredentials {
                access_key_id: id.clone(),
                secret_access_key: Secret::new(secret.clone()),
                session_token: None,
            }),
            None => Err(maildns::secrets::SecretError::NoAwsCredentials {
                looked: vec!["no AWS here".into()],
            }),
        }
    }
}

/// The instant the rotation tests start at (selector `202401`).
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 0, 0, 0).unwrap()
}

/// A selector the test knows to be valid.
pub(crate) fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// An RSA-2048 key record `selector` in `status`, made at `at`, with its key
/// file at `key_path`: published, propagated and safe at `at` too, and active
/// at `at` when `status` is active; nothing else has happened to it.
pub(crate) fn key_at(
    selector: &str,
    status: KeyStatus,
    at: DateTime<Utc>,
    key_path: Option<String>,
) -> KeyRecord {
    KeyRecord {
        selector: sel(selector),
        algorithm: Algorithm::Rsa,
        bits: 2048,
        status,
        created_at: at,
        key_path,
        published_at: Some(at),
        propagated_at: Some(at),
        safe_after: Some(at),
        active_at: (status == KeyStatus::Active).then_some(at),
        retired_at: None,
        withdrawn_at: None,
        destroyed_at: None,
        not_before: None,
        failure: None,
        held: None,
        attempts: 0,
        withdrawal_safe_after: None,
    }
}

/// The status of key `s` in `state` (`None`: no such key).
pub(crate) fn status(state: &DomainState, s: &str) -> Option<KeyStatus> {
    state.key(&sel(s)).map(|k| k.status)
}

/// `maildns --config <cfg>` with `token` as the `dns` account's credential
/// (`MAILDNS_DNS_TOKEN`), logging at info.
pub(crate) fn maildns_cmd(cfg: &Path, token: &str) -> Maildns {
    cmd()
        .config(cfg)
        .env("MAILDNS_DNS_TOKEN", token)
        .env("MAILDNS_LOG", "info")
}

/// dkimpy verifies the signed message in `file` against the TXT records the
/// DNS server on 127.0.0.1:`port` serves (over TCP). `Err`: what dkimpy said.
pub(crate) fn dkimpy_verifies_file(file: &Path, port: u16) -> Result<(), String> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(VERIFY)
        .arg(file)
        .arg(port.to_string())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// [`dkimpy_verifies_file`] on `signed`, written to `dir/signed.eml`.
pub(crate) fn dkimpy_verifies(signed: &str, dir: &Path, port: u16) -> Result<(), String> {
    let file = dir.join("signed.eml");
    std::fs::write(&file, signed).unwrap();
    dkimpy_verifies_file(&file, port)
}

/// dkimpy's check: exit 0 only when the first signature verifies.
const VERIFY: &str = r#"
import sys, dkim, dns.message, dns.query
port = int(sys.argv[2])
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    r = dns.query.tcp(dns.message.make_query(name, 'TXT'), '127.0.0.1', port=port, timeout=timeout)
    for rrset in r.answer:
        for rd in rrset:
            return b''.join(rd.strings)
    return None
d = dkim.DKIM(open(sys.argv[1], 'rb').read())
ok = d.verify(dnsfunc=dnsfunc)
print(ok, d.signature_fields.get(b's'))
sys.exit(0 if ok else 1)
"#;

/// Publishes `key`'s record at `<selector>._domainkey.example.com` in PowerDNS.
pub(crate) async fn publish_key(pdns: &PowerDns, selector: &str, key: &PrivateKey) {
    let value = format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm(),
        key.p_value().unwrap()
    );
    let content: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let body = serde_json::json!({"rrsets": [{
        "name": format!("{selector}._domainkey.example.com."),
        "type": "TXT",
        "ttl": 300,
        "changetype": "REPLACE",
        "records": [{"content": content.join(" "), "disabled": false}],
    }]});
    let r = reqwest::Client::new()
        .patch(format!(
            "{}/servers/localhost/zones/example.com.",
            pdns.api_url
        ))
        .header("X-API-Key", &pdns.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// The `confirm_signer` step of a run (the probe of a switch); fails showing
/// the run when there was none.
pub(crate) fn confirm_step(out: &RunOutcome) -> &Performed {
    out.performed
        .iter()
        .find(|p| p.action == "confirm_signer")
        .unwrap_or_else(|| panic!("no confirm_signer step: {out:?}"))
}

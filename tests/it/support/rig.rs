//! One rotation environment for every signer kind: a real PowerDNS serving
//! `example.com`, a temporary directory holding the state directory and the
//! config file `maildns.toml`, and the runner built on them with an injected
//! clock. The signer beside it (`S`: OpenDKIM on files, rspamd on Redis,
//! OpenDKIM on SQL data sets, or none) is the test module's own type; it
//! writes the config's `[signer]` table and names the secrets that must never
//! show in a run's outcome ([`SignerKind`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use maildns::accounts::connect_all;
use maildns::config::Config;
use maildns::propagation::{Clock, Querier, QueryOptions};
use maildns::rotation::{DomainState, Event, RunOutcome, Runner, SqliteStore, Store};
use maildns_providers::Fqdn;
use maildns_providers::http::RetryPolicy;
use maildns_testkit::PowerDns;

use super::{Creds, FakeClock};

/// What a signer kind gives the shared environment.
pub(crate) trait SignerKind {
    /// The config's `[signer]` table (with its header), or `""` for none;
    /// `dir` is the environment's temporary directory, for files it needs
    /// (0600 password files).
    fn section(&self, dir: &Path) -> String;

    /// Secrets no run outcome may show (checked by [`Env::run`]).
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

/// No signer: rotation publishes and retires records only.
impl SignerKind for () {
    fn section(&self, _: &Path) -> String {
        String::new()
    }
}

/// The domain every rotation test rotates.
pub(crate) fn domain() -> Fqdn {
    Fqdn::parse("example.com").unwrap()
}

/// PowerDNS, a temporary directory and the signer `S`.
pub(crate) struct Env<S> {
    pub(crate) pdns: PowerDns,
    pub(crate) signer: S,
    pub(crate) dir: tempfile::TempDir,
}

impl<S: SignerKind> Env<S> {
    /// Starts PowerDNS serving `example.com` (SOA minimum `soa_minimum`
    /// seconds, the negative-caching window) beside `signer`.
    pub(crate) async fn start(signer: S, soa_minimum: u32) -> Env<S> {
        let pdns = PowerDns::start();
        pdns.create_zone_with("example.com", 3600, soa_minimum)
            .await;
        Env {
            pdns,
            signer,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The state directory (`<dir>/state`).
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The key directory maildns defaults to (`<state>/keys`).
    pub(crate) fn key_dir(&self) -> PathBuf {
        self.state_dir().join("keys")
    }

    /// The config file (`<dir>/maildns.toml`).
    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.path().join("maildns.toml")
    }

    /// The config text of [`rotation_toml`] with this env's state directory
    /// and PowerDNS name server.
    pub(crate) fn toml_with(
        &self,
        api_url: &str,
        bits: u32,
        records: &str,
        signer: &str,
    ) -> String {
        rotation_toml(
            &self.state_dir(),
            api_url,
            self.pdns.dns,
            bits,
            records,
            signer,
        )
    }

    /// [`Env::toml_with`] with this env's signer's table.
    pub(crate) fn toml(&self, api_url: &str, bits: u32, records: &str) -> String {
        self.toml_with(
            api_url,
            bits,
            records,
            &self.signer.section(self.dir.path()),
        )
    }

    /// Writes `toml` to the config file and loads it (a load error panics
    /// with its message).
    pub(crate) fn load(&self, toml: &str) -> Config {
        let path = self.config_path();
        std::fs::write(&path, toml).unwrap();
        maildns::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A runner on `config` with one attempt per request, its own locked
    /// state store and `clock`; switches are proven by maildns's own probes
    /// through the real signers.
    pub(crate) fn runner(&self, config: Config, clock: &Arc<FakeClock>) -> Runner {
        let quick = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let (providers, failed) =
            connect_all(&config, &Creds::token(self.pdns.api_key.clone()), quick);
        assert!(failed.is_empty(), "{failed:?}");
        std::fs::create_dir_all(&config.state_dir).unwrap();
        let clock: Arc<dyn Clock> = clock.clone();
        let store = Arc::new(
            SqliteStore::open_locked(&config.state_dir)
                .unwrap()
                .with_clock(clock.clone()),
        );
        Runner::new(config, store, providers, clock).unwrap()
    }

    /// One runner pass over example.com; its outcome shows none of the
    /// signer's secrets.
    pub(crate) async fn run(&self, config: &Config, clock: &Arc<FakeClock>) -> RunOutcome {
        let out = self
            .runner(config.clone(), clock)
            .run_once(&domain())
            .await
            .unwrap();
        let shown = format!("{out:?}");
        for secret in self.signer.secrets() {
            assert!(!shown.contains(&secret), "secret shown: {shown}");
        }
        out
    }

    /// example.com's state as saved.
    pub(crate) fn state(&self) -> DomainState {
        SqliteStore::open(&self.state_dir())
            .unwrap()
            .load(&domain())
            .unwrap()
    }

    /// example.com's saved events named `what`.
    pub(crate) fn events(&self, what: &str) -> Vec<Event> {
        SqliteStore::open(&self.state_dir())
            .unwrap()
            .events(Some(&domain()), 0, 10_000)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .filter(|e| e.what == what)
            .collect()
    }

    /// The TXT values PowerDNS serves at `<selector>._domainkey.example.com`.
    pub(crate) async fn served(&self, selector: &str) -> Vec<String> {
        let name = Fqdn::parse(&format!("{selector}._domainkey.example.com")).unwrap();
        let answer = Querier::new(QueryOptions::default())
            .txt(self.pdns.dns, &name, false)
            .await
            .unwrap();
        answer
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value()).into_owned())
            .collect()
    }

    /// `config` as another machine's replica has it: the same shared state
    /// and signer data, its own (empty) key directory `<dir>/machine-b-keys`.
    /// The first machine's key directory is moved out of reach
    /// (`<dir>/machine-a`), as it is on another machine.
    pub(crate) fn on_another_machine(&self, config: &Config) -> Config {
        let mut other = config.clone();
        let b = self.machine_b_key_dir();
        std::fs::create_dir_all(&b).unwrap();
        other.signer.as_mut().unwrap().key_dir = b;
        std::fs::rename(self.key_dir(), self.dir.path().join("machine-a")).unwrap();
        other
    }

    /// Machine B's key directory (see [`Env::on_another_machine`]).
    pub(crate) fn machine_b_key_dir(&self) -> PathBuf {
        self.dir.path().join("machine-b-keys")
    }

    /// The files under machine B's key directory, recursively.
    pub(crate) fn machine_b_files(&self) -> Vec<PathBuf> {
        walk(&self.machine_b_key_dir())
    }
}

/// The config text of a rotation test: state in `state_dir`, account `dns`
/// on the PowerDNS API at `api_url`, `example.com` (TTL 300, name server
/// `ns`) with `records` (TOML lines: `spf`, `dmarc`) and a DKIM key of `bits`
/// (RSA, `%Y%m`, 30 d, overlap 14 d, retire remove), then `signer` (a
/// `[signer]` table or `""`).
pub(crate) fn rotation_toml(
    state_dir: &Path,
    api_url: &str,
    ns: std::net::SocketAddr,
    bits: u32,
    records: &str,
    signer: &str,
) -> String {
    format!(
        r#"state_dir = "{state}"
[accounts.dns]
provider = "powerdns"
base_url = "{api_url}"

[domains."example.com"]
account = "dns"
ttl = 300
nameservers = ["{ns}"]
{records}
[domains."example.com".dkim]
algorithms = ["rsa"]
bits = {bits}
selector_format = "%Y%m"
rotation_interval = "30d"
overlap = "14d"
retire = "remove"
{signer}"#,
        state = state_dir.display(),
    )
}

/// A 0600 file `dir/name` holding `secret` (how tests hand maildns its
/// passwords: tests never change the process environment).
pub(crate) fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, secret).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The files under `dir`, recursively (none when `dir` does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

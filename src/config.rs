//! TOML configuration -> validated types, in one place.
//!
//! Nothing downstream re-validates strings: names are [`Fqdn`]s, SPF and DMARC
//! policies are parsed records, durations are durations. Every error names the
//! file, the line and the key, and suggests the fix; all errors of a file are
//! reported at once. Configuration files never need to hold a secret: accounts
//! name where their credential comes from (see [`crate::secrets`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::TimeDelta;

use maildns_providers::Fqdn;
use maildns_providers::registry::{self, CredentialKind, Host, Settings};
use serde::Deserialize;
use toml::Spanned;

use crate::keys::{Algorithm, KeySpec};
use crate::records::{adsp::Adsp, dmarc::Dmarc, spf::Spf};
use crate::rotation::policy::{Disposal, Policy, PolicyError, PolicySettings, Withdrawal};

/// Where `--config` looks when not given: these, in order.
pub const DEFAULT_PATHS: [&str; 2] = ["maildns.toml", "/etc/maildns/maildns.toml"];

/// One configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `domains."example.com".dkim.bits`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// All problems found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Where keys and the state store live.
    pub state_dir: PathBuf,
    /// Provider accounts by name.
    pub accounts: BTreeMap<String, Account>,
    /// Domains, in file order.
    pub domains: Vec<Domain>,
    /// The DKIM signer, when maildns drives one.
    pub signer: Option<Signer>,
    /// Safety settings for `publish`.
    pub publish: PublishPolicy,
    /// Propagation watching.
    pub propagation: Propagation,
}

/// Safety settings for `publish`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishPolicy {
    /// Refuse (without `--force`) a run that deletes more than this share of managed records.
    pub max_delete_share: f64,
}

/// Propagation watching settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// Timeout for the CLI (`publish --wait`, `watch`).
    pub timeout: Duration,
    /// Timeout for the daemon.
    pub daemon_timeout: Duration,
    /// Recursive resolvers for discovery (empty: the system's).
    pub resolvers: Vec<SocketAddr>,
    /// Recursive resolvers also checked and reported.
    pub check_resolvers: Vec<SocketAddr>,
    /// Whether the recursive check gates success.
    pub require_resolvers: bool,
}

/// Where an account's credential comes from (never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Environment variable to read first.
    pub env: String,
    /// A token file, refused unless mode 0600 or stricter.
    pub token_file: Option<PathBuf>,
}

/// A named provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name in the config.
    pub name: String,
    /// The host and how to reach it.
    pub provider: ProviderConfig,
    /// Where its credential comes from.
    pub credential: Credential,
}

/// An account's host and its settings: the host comes from the providers crate's
/// registry (the one list of hosts), the settings are read here, typed and located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The registered host (`provider = "..."`).
    pub host: &'static Host,
    /// Its settings; the zones are filled in when the account is connected.
    pub settings: Settings,
}

impl ProviderConfig {
    /// The provider's code as written in the config.
    pub fn code(&self) -> &'static str {
        self.host.kind
    }

    /// Whether the account needs a credential.
    pub fn needs_credential(&self) -> bool {
        self.host.credential != CredentialKind::None
    }
}

/// DKIM settings of a domain: the rotation [`Policy`], validated once when the
/// configuration loads (with file:line:key on every problem), and the record's
/// testing flag. Nothing downstream re-validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimPolicy {
    /// Keys, selector format, intervals, withdrawal and disposal of old keys.
    /// Its `max_bits_for_host` is unset here: the account's limit is applied
    /// where the account is known ([`Policy::for_host`]).
    pub policy: Policy,
    /// `t=y`: the domain is testing DKIM.
    pub testing: bool,
}

/// A domain maildns manages.
#[derive(Debug, Clone)]
pub struct Domain {
    /// The mail domain.
    pub name: Fqdn,
    /// The zone that holds it, when not found through the provider.
    pub zone: Option<Fqdn>,
    /// The account that publishes its records.
    pub account: String,
    /// TTL of the records maildns writes.
    pub ttl: u32,
    /// Authoritative servers to check instead of discovering them.
    pub nameservers: Vec<SocketAddr>,
    /// SPF policy at the domain.
    pub spf: Option<Spf>,
    /// DKIM keys and rotation.
    pub dkim: Option<DkimPolicy>,
    /// DMARC policy at `_dmarc`.
    pub dmarc: Option<Dmarc>,
    /// ADSP at `_adsp._domainkey` (historic; only when configured).
    pub adsp: Option<Adsp>,
    /// Lint rules waived for this domain (`[domains."x".lint]`).
    pub lint: LintWaiver,
    /// Where this domain's settings are written, for messages naming file:line:key.
    pub source: DomainSource,
}

/// Lint rules an operator waived for one domain, with the reason they gave
/// (`[domains."example.com".lint] allow = ["spf-too-many-lookups"], reason = "..."`).
/// A waived error no longer blocks writes; it is still reported, with the reason.
/// There is no global switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintWaiver {
    /// Rule codes waived (each one of [`crate::records::RULES`]).
    pub allow: Vec<String>,
    /// Why (required when `allow` is not empty).
    pub reason: String,
}

impl LintWaiver {
    /// True when the rule `code` is waived.
    pub fn waives(&self, code: &str) -> bool {
        self.allow.iter().any(|a| a == code)
    }
}

/// Where a domain's record settings are in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainSource {
    /// The domain's dotted key, e.g. `domains."example.com"`.
    pub key: String,
    /// 1-based line of the domain's table.
    pub line: Option<usize>,
    /// Line of `spf = ...`.
    pub spf: Option<usize>,
    /// Line of `dmarc = ...`.
    pub dmarc: Option<usize>,
    /// Line of `adsp = ...`.
    pub adsp: Option<usize>,
}

/// The OpenDKIM signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// opendkim.conf, when maildns should read it.
    pub config: Option<PathBuf>,
    /// Directory for new key files.
    pub key_dir: PathBuf,
    /// KeyTable file.
    pub key_table: PathBuf,
    /// SigningTable file.
    pub signing_table: PathBuf,
    /// The user OpenDKIM runs as.
    pub user: String,
    /// Command that makes OpenDKIM reload (SIGUSR1, never SIGHUP).
    pub reload_command: Vec<String>,
    /// How a switch is proven (default: a probe signature through the milter
    /// socket named by opendkim.conf's `Socket`).
    pub confirm: SignerConfirm,
    /// How often the daemon probes each active signer for drift (default 1 hour).
    pub probe_interval: Duration,
    /// How long one probe keeps retrying (with backoff) for the expected
    /// signature before reporting what it saw (default 30 s).
    pub probe_timeout: Duration,
    /// Line of the `[signer]` table in the configuration file (for errors found
    /// later, e.g. an opendkim.conf without `Socket`).
    pub line: Option<usize>,
}

/// How a signer switch is proven (`[signer] confirm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignerConfirm {
    /// `"probe"`: a message sent through the running signer's milter socket comes
    /// back signed with the new selector and verifies against the authoritative
    /// servers (the default).
    #[default]
    Probe,
    /// `"tables-only"`: the signer cannot be probed; only its tables are checked
    /// (a warning on every run: a refused reload goes unnoticed).
    TablesOnly,
}

// ---- raw (as written) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    state_dir: Option<Spanned<String>>,
    #[serde(default)]
    accounts: BTreeMap<String, Spanned<RawAccount>>,
    #[serde(default)]
    domains: BTreeMap<Spanned<String>, Spanned<RawDomain>>,
    signer: Option<Spanned<RawSigner>>,
    publish: Option<RawPublish>,
    propagation: Option<RawPropagation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    max_delete_share: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPropagation {
    timeout: Option<Spanned<String>>,
    daemon_timeout: Option<Spanned<String>>,
    #[serde(default)]
    resolvers: Vec<Spanned<String>>,
    #[serde(default)]
    check_resolvers: Vec<Spanned<String>>,
    #[serde(default)]
    require_resolvers: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    provider: Spanned<String>,
    path: Option<Spanned<String>>,
    bump_serial: Option<bool>,
    base_url: Option<Spanned<String>>,
    server_id: Option<String>,
    server: Option<Spanned<String>>,
    key_name: Option<Spanned<String>>,
    algorithm: Option<Spanned<String>>,
    project: Option<String>,
    wait_insync: Option<bool>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    // A secret in the config is refused with a pointer to the right place.
    token: Option<Spanned<toml::Value>>,
    secret: Option<Spanned<toml::Value>>,
    api_key: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    account: Spanned<String>,
    zone: Option<Spanned<String>>,
    ttl: Option<Spanned<i64>>,
    #[serde(default)]
    nameservers: Vec<Spanned<String>>,
    spf: Option<Spanned<String>>,
    dmarc: Option<Spanned<String>>,
    adsp: Option<Spanned<String>>,
    dkim: Option<Spanned<RawDkim>>,
    lint: Option<Spanned<RawLint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLint {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    algorithms: Option<Spanned<Vec<String>>>,
    bits: Option<Spanned<i64>>,
    selector_format: Option<Spanned<String>>,
    rotation_interval: Option<Spanned<String>>,
    overlap: Option<Spanned<String>>,
    min_overlap: Option<Spanned<String>>,
    retire: Option<Spanned<String>>,
    #[serde(default)]
    publish_retired_private_keys: bool,
    #[serde(default)]
    testing: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigner {
    kind: Option<Spanned<String>>,
    config: Option<Spanned<String>>,
    key_dir: Spanned<String>,
    key_table: Spanned<String>,
    signing_table: Spanned<String>,
    user: Option<String>,
    reload_command: Option<Spanned<Vec<String>>>,
    confirm: Option<Spanned<String>>,
    probe_interval: Option<Spanned<String>>,
    probe_timeout: Option<Spanned<String>>,
}

/// Finds the config file: `explicit`, else the first of [`DEFAULT_PATHS`] that exists.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigErrors> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    for p in DEFAULT_PATHS {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(ConfigErrors(vec![ConfigError {
        path: PathBuf::from(DEFAULT_PATHS[0]),
        line: None,
        key: String::new(),
        message: format!(
            "no configuration file found (looked for {})",
            DEFAULT_PATHS.join(" and ")
        ),
        hint: Some("pass --config FILE; fixtures/quickstart/maildns.toml is an example".into()),
    }]))
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
            hint: None,
        }])
    })?;
    let text = decode_utf8(bytes).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: Some(e.line),
            key: String::new(),
            message: e.to_string(),
            hint: Some(
                "TOML files are UTF-8: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
                    .into(),
            ),
        }])
    })?;
    parse(&text, path)
}

/// Where a file's bytes stop being UTF-8 (TOML, and every text file maildns
/// reads, must be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not UTF-8: byte 0x{byte:02x} at line {line}, column {column}")]
pub struct NotUtf8 {
    /// 1-based line of the first bad byte.
    pub line: usize,
    /// 1-based column of the first bad byte, in characters.
    pub column: usize,
    /// The first bad byte.
    pub byte: u8,
}

/// Decodes `bytes` as UTF-8, naming the line and column of the first bad byte.
///
/// # Errors
/// [`NotUtf8`] when `bytes` is not UTF-8.
pub fn decode_utf8(bytes: Vec<u8>) -> Result<String, NotUtf8> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let (good, rest) = bytes.split_at(at);
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        NotUtf8 {
            line: good.iter().filter(|b| **b == b'\n').count() + 1,
            // `good` is valid UTF-8 up to `at`, so its last line is too.
            column: String::from_utf8_lossy(&good[line_start..]).chars().count() + 1,
            byte: rest.first().copied().unwrap_or_default(),
        }
    })
}

/// Validates configuration `text` as if read from `path` (relative paths resolve against its directory).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line,
            key: String::new(),
            message: e.message().trim().to_string(),
            hint: Some(
                "see fixtures/quickstart/maildns.toml and the README's configuration section"
                    .into(),
            ),
        }])
    })?;
    let mut v = Validator {
        text,
        path,
        base: path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        errors: Vec::new(),
    };
    let cfg = v.config(raw);
    if v.errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(v.errors))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parses `30d`, `14 days`, `1h`, `90s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("'{s}' is not a duration: {e}"))
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
    base: PathBuf,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        msg: String,
        hint: Option<&str>,
    ) {
        self.errors.push(ConfigError {
            path: self.path.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            key: key.to_string(),
            message: msg,
            hint: hint.map(str::to_string),
        });
    }

    fn path_of(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) => d,
                Err(m) => {
                    self.err(
                        Some(s.span()),
                        key,
                        m,
                        Some("write e.g. \"30d\", \"14d\", \"12h\""),
                    );
                    default
                }
            },
        }
    }

    fn positive_duration(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let d = self.duration(v, key, default);
        if d.is_zero()
            && let Some(s) = v
        {
            self.err(
                Some(s.span()),
                key,
                "must be longer than 0s".into(),
                Some("write e.g. \"5m\""),
            );
            return default;
        }
        d
    }

    fn addr(&mut self, s: &Spanned<String>, key: &str, default_port: u16) -> Option<SocketAddr> {
        let t = s.get_ref();
        if let Ok(a) = t.parse::<SocketAddr>() {
            return Some(a);
        }
        if let Ok(ip) = t.parse::<std::net::IpAddr>() {
            return Some(SocketAddr::new(ip, default_port));
        }
        self.err(
            Some(s.span()),
            key,
            format!("'{t}' is not an IP address with optional port"),
            Some("write e.g. \"127.0.0.1:5300\" or \"[::1]:53\""),
        );
        None
    }

    fn config(&mut self, raw: Raw) -> Config {
        let state_dir = raw
            .state_dir
            .as_ref()
            .map(|s| self.path_of(s.get_ref()))
            .unwrap_or_else(|| PathBuf::from("/var/lib/maildns"));
        let mut accounts = BTreeMap::new();
        for (name, acc) in &raw.accounts {
            if let Some(a) = self.account(name, acc) {
                accounts.insert(name.clone(), a);
            }
        }
        let mut domains = Vec::new();
        for (name, d) in &raw.domains {
            if let Some(dom) = self.domain(name, d, &accounts) {
                domains.push(dom);
            }
        }
        if raw.domains.is_empty() {
            self.err(
                None,
                "domains",
                "no domains configured".into(),
                Some("add a [domains.\"example.com\"] table"),
            );
        }
        let signer = raw.signer.as_ref().map(|s| self.signer(s));
        let publish = PublishPolicy {
            max_delete_share: match raw
                .publish
                .as_ref()
                .and_then(|p| p.max_delete_share.as_ref())
            {
                None => 0.5,
                Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
                Some(v) => {
                    self.err(Some(v.span()), "publish.max_delete_share", format!("{} is not a share between 0 and 1", v.get_ref()), Some("e.g. 0.5 refuses runs that delete more than half of the managed records"));
                    0.5
                }
            },
        };
        let propagation = match &raw.propagation {
            None => Propagation {
                timeout: Duration::from_secs(300),
                daemon_timeout: Duration::from_secs(3600),
                resolvers: Vec::new(),
                check_resolvers: Vec::new(),
                require_resolvers: false,
            },
            Some(p) => Propagation {
                timeout: self.positive_duration(
                    &p.timeout,
                    "propagation.timeout",
                    Duration::from_secs(300),
                ),
                daemon_timeout: self.positive_duration(
                    &p.daemon_timeout,
                    "propagation.daemon_timeout",
                    Duration::from_secs(3600),
                ),
                resolvers: p
                    .resolvers
                    .iter()
                    .filter_map(|r| self.addr(r, "propagation.resolvers", 53))
                    .collect(),
                check_resolvers: p
                    .check_resolvers
                    .iter()
                    .filter_map(|r| self.addr(r, "propagation.check_resolvers", 53))
                    .collect(),
                require_resolvers: p.require_resolvers,
            },
        };
        Config {
            path: self.path.to_path_buf(),
            state_dir,
            accounts,
            domains,
            signer,
            publish,
            propagation,
        }
    }

    fn account(&mut self, name: &str, acc: &Spanned<RawAccount>) -> Option<Account> {
        let key = format!("accounts.{name}");
        let a = acc.get_ref();
        for (field, v) in [
            ("token", &a.token),
            ("secret", &a.secret),
            ("api_key", &a.api_key),
        ] {
            if let Some(v) = v {
                self.err(
                    Some(v.span()),
                    &format!("{key}.{field}"),
                    "credentials do not belong in the configuration file".into(),
                    Some(&format!(
                        "remove it and use `maildns secret set {name}`, the environment variable {}, $CREDENTIALS_DIRECTORY/{name}, or token_file (mode 0600)",
                        default_env(name)
                    )),
                );
            }
        }
        let credential = Credential {
            env: a
                .token_env
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| default_env(name)),
            token_file: a.token_file.as_ref().map(|s| self.path_of(s.get_ref())),
        };
        let code = a.provider.get_ref().as_str();
        let Some(host) = registry::host(code) else {
            self.err(
                Some(a.provider.span()),
                &format!("{key}.provider"),
                format!("unknown provider '{code}'"),
                Some(&format!(
                    "one of {}",
                    registry::kinds().collect::<Vec<_>>().join(", ")
                )),
            );
            return None;
        };
        let mut complete = true;
        let algorithm = match &a.algorithm {
            None => None,
            Some(s) => match s.get_ref().parse() {
                Ok(alg) => Some(alg),
                Err(_) => {
                    self.err(
                        Some(s.span()),
                        &format!("{key}.algorithm"),
                        format!("'{}' is not supported", s.get_ref()),
                        Some("use hmac-sha256, hmac-sha384 or hmac-sha512"),
                    );
                    complete = false;
                    None
                }
            },
        };
        let settings = Settings {
            zones: Vec::new(),
            path: a.path.as_ref().map(|p| self.path_of(p.get_ref())),
            bump_serial: a.bump_serial,
            base_url: a.base_url.as_ref().map(|s| s.get_ref().clone()),
            server_id: a.server_id.clone(),
            server: a
                .server
                .as_ref()
                .and_then(|s| self.addr(s, &format!("{key}.server"), 53)),
            key_name: a.key_name.as_ref().map(|s| s.get_ref().clone()),
            algorithm,
            project: a.project.clone(),
            wait_insync: a.wait_insync,
        };
        complete &= settings.server.is_some() || a.server.is_none();
        for r in host.required {
            // A server that did not parse has been reported already.
            let given = settings.is_set(r.key) || (r.key == "server" && a.server.is_some());
            if !given {
                self.err(
                    Some(acc.span()),
                    &format!("{key}.{}", r.key),
                    format!("provider '{code}' needs {}", r.key),
                    Some(&format!("add {} = {}", r.key, r.example)),
                );
                complete = false;
            }
        }
        if !complete {
            return None;
        }
        let provider = ProviderConfig { host, settings };
        Some(Account {
            name: name.to_string(),
            provider,
            credential,
        })
    }

    fn domain(
        &mut self,
        name: &Spanned<String>,
        d: &Spanned<RawDomain>,
        accounts: &BTreeMap<String, Account>,
    ) -> Option<Domain> {
        let key = format!("domains.\"{}\"", name.get_ref());
        let raw = d.get_ref();
        let fqdn = match Fqdn::parse(name.get_ref()) {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(Some(name.span()), &key, e.to_string(), None);
                None
            }
        };
        let account = raw.account.get_ref().clone();
        if !accounts.contains_key(&account) {
            let known: Vec<&str> = accounts.keys().map(String::as_str).collect();
            self.err(
                Some(raw.account.span()),
                &format!("{key}.account"),
                format!("no account named '{account}'"),
                Some(&if known.is_empty() {
                    "define it under [accounts.NAME]".to_string()
                } else {
                    format!("known accounts: {}", known.join(", "))
                }),
            );
        }
        let zone = raw
            .zone
            .as_ref()
            .and_then(|z| match Fqdn::parse(z.get_ref()) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.err(Some(z.span()), &format!("{key}.zone"), e.to_string(), None);
                    None
                }
            });
        if let (Some(z), Some(f)) = (&zone, &fqdn)
            && !f.is_within(z)
        {
            let span = raw.zone.as_ref().map(Spanned::span);
            self.err(
                span,
                &format!("{key}.zone"),
                format!("{f} is not within zone {z}"),
                Some("the zone must be the domain or one of its parents"),
            );
        }
        let ttl = match &raw.ttl {
            None => 3600,
            Some(t) if (1..=604_800).contains(t.get_ref()) => *t.get_ref() as u32,
            Some(t) => {
                self.err(
                    Some(t.span()),
                    &format!("{key}.ttl"),
                    format!("{} is out of range", t.get_ref()),
                    Some("a TTL between 1 and 604800 seconds"),
                );
                3600
            }
        };
        let nameservers = raw
            .nameservers
            .iter()
            .filter_map(|n| self.addr(n, &format!("{key}.nameservers"), 53))
            .collect();
        let spf = raw
            .spf
            .as_ref()
            .and_then(|s| match Spf::parse(s.get_ref()) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(
                        Some(s.span()),
                        &format!("{key}.spf"),
                        format!("not a valid SPF record: {e}"),
                        Some("e.g. \"v=spf1 ip4:192.0.2.10/32 -all\""),
                    );
                    None
                }
            });
        let dmarc = raw
            .dmarc
            .as_ref()
            .and_then(|s| match Dmarc::parse(s.get_ref()) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(
                        Some(s.span()),
                        &format!("{key}.dmarc"),
                        format!("not a valid DMARC record: {e}"),
                        Some("e.g. \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\""),
                    );
                    None
                }
            });
        let adsp = raw.adsp.as_ref().and_then(|s| {
            let text = if s.get_ref().starts_with("dkim=") {
                s.get_ref().clone()
            } else {
                format!("dkim={}", s.get_ref())
            };
            match Adsp::parse(&text) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(
                        Some(s.span()),
                        &format!("{key}.adsp"),
                        format!("not a valid ADSP policy: {e}"),
                        Some("one of \"unknown\", \"all\", \"discardable\""),
                    );
                    None
                }
            }
        });
        let dkim = raw.dkim.as_ref().and_then(|k| self.dkim(&key, k));
        let lint = raw
            .lint
            .as_ref()
            .map(|l| self.lint_waiver(&key, l))
            .unwrap_or_default();
        let line =
            |s: &Option<Spanned<String>>| s.as_ref().map(|s| line_of(self.text, s.span().start));
        let source = DomainSource {
            key: key.clone(),
            line: Some(line_of(self.text, name.span().start)),
            spf: line(&raw.spf),
            dmarc: line(&raw.dmarc),
            adsp: line(&raw.adsp),
        };
        Some(Domain {
            name: fqdn?,
            zone,
            account,
            ttl,
            nameservers,
            spf,
            dkim,
            dmarc,
            adsp,
            lint,
            source,
        })
    }

    fn lint_waiver(&mut self, key: &str, l: &Spanned<RawLint>) -> LintWaiver {
        let key = format!("{key}.lint");
        let r = l.get_ref();
        let mut allow = Vec::new();
        for a in &r.allow {
            let code = a.get_ref().trim();
            if crate::records::rule(code).is_some() {
                allow.push(code.to_string());
            } else {
                let known: Vec<&str> = crate::records::RULES.iter().map(|r| r.code).collect();
                self.err(
                    Some(a.span()),
                    &format!("{key}.allow"),
                    format!("'{code}' is not a lint rule"),
                    Some(&format!("one of: {}", known.join(", "))),
                );
            }
        }
        let reason = r
            .reason
            .as_ref()
            .map(|s| s.get_ref().trim().to_string())
            .unwrap_or_default();
        if !r.allow.is_empty() && reason.is_empty() {
            let span = r.reason.as_ref().map_or(l.span(), Spanned::span);
            self.err(
                Some(span),
                &format!("{key}.reason"),
                "a waiver needs a reason".into(),
                Some("say why the rule does not apply here, e.g. reason = \"receivers we care about were tested with 11 lookups\""),
            );
        }
        LintWaiver { allow, reason }
    }

    /// The domain's DKIM policy; `None` when it has problems (each reported).
    fn dkim(&mut self, key: &str, k: &Spanned<RawDkim>) -> Option<DkimPolicy> {
        let key = format!("{key}.dkim");
        let r = k.get_ref();
        let bits = match &r.bits {
            None => 2048,
            Some(b) if matches!(*b.get_ref(), 1024 | 2048 | 3072 | 4096) => *b.get_ref() as u32,
            Some(b) => {
                self.err(Some(b.span()), &format!("{key}.bits"), format!("{} bits is not supported", b.get_ref()), Some("use 2048 (recommended, RFC 8301), 1024 (minimum, for hosts with short records), 3072 or 4096"));
                2048
            }
        };
        let mut keys = Vec::new();
        match &r.algorithms {
            None => keys.push(KeySpec {
                algorithm: Algorithm::Rsa,
                bits,
            }),
            Some(list) => {
                for a in list.get_ref() {
                    match a.as_str() {
                        "rsa" => keys.push(KeySpec { algorithm: Algorithm::Rsa, bits }),
                        "ed25519" => keys.push(KeySpec { algorithm: Algorithm::Ed25519, bits: 256 }),
                        other => self.err(Some(list.span()), &format!("{key}.algorithms"), format!("unknown algorithm '{other}'"), Some("use [\"rsa\"] or [\"rsa\", \"ed25519\"] (ed25519 alone is not verified by many receivers)")),
                    }
                }
                if keys.is_empty() {
                    self.err(
                        Some(list.span()),
                        &format!("{key}.algorithms"),
                        "no algorithm".into(),
                        Some("use [\"rsa\"]"),
                    );
                }
            }
        }
        let selector_format = r
            .selector_format
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "%Y%m".into());
        let rotation_interval = self.duration(
            &r.rotation_interval,
            &format!("{key}.rotation_interval"),
            Duration::from_secs(30 * 86_400),
        );
        let min_overlap = self.duration(
            &r.min_overlap,
            &format!("{key}.min_overlap"),
            Duration::from_secs(5 * 86_400),
        );
        let overlap = self.duration(
            &r.overlap,
            &format!("{key}.overlap"),
            Duration::from_secs(14 * 86_400),
        );
        let withdrawal = match &r.retire {
            None => Withdrawal::Revoke,
            Some(s) => match s.get_ref().as_str() {
                "revoke" => Withdrawal::Revoke,
                "remove" => Withdrawal::Remove,
                other => {
                    self.err(
                        Some(s.span()),
                        &format!("{key}.retire"),
                        format!("'{other}' is not revoke or remove"),
                        Some("\"revoke\" publishes an empty p=, \"remove\" deletes the record"),
                    );
                    Withdrawal::Revoke
                }
            },
        };
        if let Some(b) = &r.bits
            && !keys.is_empty()
            && !keys.iter().any(|k| k.algorithm == Algorithm::Rsa)
        {
            self.err(
                Some(b.span()),
                &format!("{key}.bits"),
                "bits applies to RSA keys, and no RSA key is configured".into(),
                Some("remove bits, or add \"rsa\" to algorithms (Ed25519 keys have a fixed size)"),
            );
        }
        // A duration chrono cannot hold is refused as too long by the policy.
        let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        let settings = PolicySettings {
            keys,
            selector_format,
            rotation_interval: delta(rotation_interval),
            overlap: delta(overlap),
            min_overlap: delta(min_overlap),
            withdrawal,
            disposal: if r.publish_retired_private_keys {
                Disposal::Disclose
            } else {
                Disposal::Delete
            },
            ..PolicySettings::default()
        };
        // One validator, the rotation policy's own, run once here: every problem
        // is reported with file:line:key, and what loads is the policy `rotate`,
        // the daemon and `publish` use.
        for problem in Policy::problems(&settings) {
            use PolicyError as P;
            let (field, span, hint): (&str, Option<std::ops::Range<usize>>, &str) = match &problem {
                P::SelectorFormat { .. } => (
                    "selector_format",
                    r.selector_format.as_ref().map(Spanned::span),
                    "strftime fields with letters, digits, '-' or '_' (a selector is one DNS label, no '.'), e.g. \"%Y%m\" or \"mail-%Y%m%d\"",
                ),
                P::NotPositive { what } | P::TooLong { what, .. } => {
                    let raw = match *what {
                        "rotation_interval" => &r.rotation_interval,
                        "min_overlap" => &r.min_overlap,
                        _ => &r.overlap,
                    };
                    (
                        what,
                        raw.as_ref().map(Spanned::span),
                        "write e.g. \"30d\", \"14d\", \"12h\"",
                    )
                }
                P::OverlapTooShort { .. } => (
                    "overlap",
                    r.overlap
                        .as_ref()
                        .or(r.min_overlap.as_ref())
                        .map(Spanned::span),
                    "mail still queued when the signer switches is verified against the old key: keep it published at least min_overlap (default 5d)",
                ),
                P::RsaBits { .. } => (
                    "bits",
                    r.bits.as_ref().map(Spanned::span),
                    "use 2048 (recommended, RFC 8301)",
                ),
                _ => (
                    "algorithms",
                    r.algorithms.as_ref().map(Spanned::span),
                    "use [\"rsa\"] or [\"rsa\", \"ed25519\"], each once",
                ),
            };
            let span = span.or_else(|| Some(k.span()));
            self.err(
                span,
                &format!("{key}.{field}"),
                problem.to_string(),
                Some(hint),
            );
        }
        Policy::new(settings).ok().map(|policy| DkimPolicy {
            policy,
            testing: r.testing,
        })
    }

    fn signer(&mut self, s: &Spanned<RawSigner>) -> Signer {
        let r = s.get_ref();
        if let Some(k) = &r.kind
            && k.get_ref() != "opendkim"
        {
            self.err(
                Some(k.span()),
                "signer.kind",
                format!("unknown signer '{}'", k.get_ref()),
                Some("only \"opendkim\" is supported"),
            );
        }
        let reload_command = r
            .reload_command
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_else(|| vec!["systemctl".into(), "reload".into(), "opendkim".into()]);
        if let Some(c) = &r.reload_command {
            if c.get_ref().is_empty() {
                self.err(
                    Some(c.span()),
                    "signer.reload_command",
                    "empty command".into(),
                    Some("e.g. [\"systemctl\", \"reload\", \"opendkim\"]"),
                );
            }
            if c.get_ref().iter().any(|a| a.contains("HUP")) {
                self.err(
                    Some(c.span()),
                    "signer.reload_command",
                    "SIGHUP stops OpenDKIM (libmilter treats it like SIGTERM)".into(),
                    Some("reload with SIGUSR1: systemctl reload opendkim, or kill -USR1"),
                );
            }
        }
        let confirm = match r.confirm.as_ref().map(|c| (c.get_ref().as_str(), c.span())) {
            None | Some(("probe", _)) => SignerConfirm::Probe,
            Some(("tables-only", _)) => SignerConfirm::TablesOnly,
            Some((other, span)) => {
                self.err(
                    Some(span),
                    "signer.confirm",
                    format!("unknown confirmation '{other}'"),
                    Some("\"probe\" (default) or \"tables-only\""),
                );
                SignerConfirm::Probe
            }
        };
        if confirm == SignerConfirm::Probe && r.config.is_none() {
            self.err(
                Some(s.span()),
                "signer.config",
                "a switch is proven by a probe through OpenDKIM's milter socket, read from opendkim.conf: config is not set".into(),
                Some("set config = \"/etc/opendkim.conf\" (its Socket is probed), or confirm = \"tables-only\" if the signer cannot be probed"),
            );
        }
        let probe_interval = self.duration(
            &r.probe_interval,
            "signer.probe_interval",
            Duration::from_secs(3600),
        );
        let probe_timeout = self.duration(
            &r.probe_timeout,
            "signer.probe_timeout",
            Duration::from_secs(30),
        );
        for (key, v, d) in [
            ("signer.probe_interval", &r.probe_interval, probe_interval),
            ("signer.probe_timeout", &r.probe_timeout, probe_timeout),
        ] {
            if d.is_zero() {
                self.err(
                    v.as_ref().map(Spanned::span),
                    key,
                    "must be positive".into(),
                    Some("e.g. \"1h\" or \"30s\""),
                );
            }
        }
        Signer {
            confirm,
            probe_interval,
            probe_timeout,
            line: Some(line_of(self.text, s.span().start)),
            config: r.config.as_ref().map(|c| self.path_of(c.get_ref())),
            key_dir: self.path_of(r.key_dir.get_ref()),
            key_table: self.path_of(r.key_table.get_ref()),
            signing_table: self.path_of(r.signing_table.get_ref()),
            user: r.user.clone().unwrap_or_else(|| "opendkim".into()),
            reload_command,
        }
    }
}

/// `MAILDNS_<ACCOUNT>_TOKEN`, the account name uppercased with non-alphanumerics as `_`.
pub fn default_env(account: &str) -> String {
    let up: String = account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MAILDNS_{up}_TOKEN")
}

/// Formats a selector from a strftime `format` at `at`; `None` if the result is not a valid label.
pub fn format_selector(format: &str, at: chrono::DateTime<chrono::Utc>) -> Option<String> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", at.format(format)).ok()?;
    // The selector type's own rule (one validator).
    crate::rotation::Selector::parse(&out)
        .ok()
        .map(|s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigErrors> {
        parse(text, Path::new("/etc/maildns/maildns.toml"))
    }

    const GOOD: &str = r#"
state_dir = "state"

[accounts.local]
provider = "zonefile"
path = "zones/example.com.zone"

[domains."example.com"]
account = "local"
spf = "v=spf1 ip4:192.0.2.10/32 -all"
dmarc = "v=DMARC1; p=quarantine"

[domains."example.com".dkim]
bits = 2048
"#;

    #[test]
    fn good_config_resolves_paths_and_defaults() {
        let c = p(GOOD).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/etc/maildns/state"));
        let d = &c.domains[0];
        assert_eq!(d.name.as_str(), "example.com");
        let k = d.dkim.as_ref().unwrap();
        let k = k.policy.settings();
        assert_eq!(k.selector_format, "%Y%m");
        assert_eq!(k.rotation_interval, TimeDelta::seconds(30 * 86_400));
        assert_eq!(k.overlap, TimeDelta::seconds(14 * 86_400));
        assert_eq!(
            k.keys,
            vec![KeySpec {
                algorithm: Algorithm::Rsa,
                bits: 2048
            }]
        );
        let local = &c.accounts["local"].provider;
        assert_eq!(local.code(), "zonefile");
        assert_eq!(
            local.settings.path,
            Some(PathBuf::from("/etc/maildns/zones/example.com.zone"))
        );
        assert_ne!(local.settings.bump_serial, Some(false), "bump_serial");
        assert_eq!(c.accounts["local"].credential.env, "MAILDNS_LOCAL_TOKEN");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = GOOD.replace("bits = 2048", "bits = 512");
        let e = p(&text).unwrap_err();
        assert_eq!(e.0.len(), 1);
        let s = e.to_string();
        assert!(s.starts_with("/etc/maildns/maildns.toml:14: domains.\"example.com\".dkim.bits: 512 bits is not supported"), "{s}");
        assert!(s.contains("hint:"));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_have_lines() {
        let e = p(&GOOD.replace("account = \"local\"", "acount = \"local\"")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("maildns.toml:9: unknown field `acount`"), "{s}");
        assert!(s.contains("acount"), "{s}");
        let e = p("[accounts.x\nprovider = 1").unwrap_err();
        assert!(e.to_string().contains(":1"), "{e}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = r#"
[accounts.a]
provider = "nosuch"

[domains."exa mple.com"]
account = "b"

[domains."example.org"]
account = "b"
[domains."example.org".dkim]
overlap = "2d"
retire = "shred"
"#;
        let e = p(text).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"accounts.a.provider"), "{keys:?}");
        assert!(keys.contains(&"domains.\"exa mple.com\""), "{keys:?}");
        assert!(
            keys.contains(&"domains.\"example.org\".account"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"domains.\"example.org\".dkim.overlap"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"domains.\"example.org\".dkim.retire"),
            "{keys:?}"
        );
    }

    #[test]
    fn secrets_in_config_are_refused_without_echoing_them() {
        let text = GOOD.replace(
            "provider = \"zonefile\"",
            "provider = \"zonefile\"\ntoken = \"hunter2-secret\"",
        );
        let e = p(&text).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("accounts.local.token: credentials do not belong"),
            "{s}"
        );
        assert!(!s.contains("hunter2-secret"));
    }

    #[test]
    fn hup_reload_is_refused() {
        let text = format!(
            "{GOOD}\n[signer]\nconfirm = \"tables-only\"\nkey_dir = \"/k\"\nkey_table = \"/kt\"\nsigning_table = \"/st\"\nreload_command = [\"pkill\", \"-HUP\", \"opendkim\"]\n"
        );
        let e = p(&text).unwrap_err();
        assert!(e.to_string().contains("SIGHUP stops OpenDKIM"), "{e}");
    }

    #[test]
    fn signer_needs_a_probe_or_an_explicit_tables_only() {
        let base = "[signer]\nkey_dir = \"/k\"\nkey_table = \"/kt\"\nsigning_table = \"/st\"\n";
        let e = p(&format!("{GOOD}\n{base}")).unwrap_err();
        let line = GOOD.lines().count() + 2;
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "signer.config");
        assert_eq!(e.0[0].line, Some(line), "{e}");
        assert!(e.to_string().contains("tables-only"), "{e}");
        let c = p(&format!("{GOOD}\n{base}confirm = \"tables-only\"\n")).unwrap();
        let s = c.signer.unwrap();
        assert_eq!(s.confirm, SignerConfirm::TablesOnly);
        assert_eq!(s.probe_interval, Duration::from_secs(3600));
        let c = p(&format!(
            "{GOOD}\n{base}config = \"/etc/opendkim.conf\"\nprobe_interval = \"10m\"\nprobe_timeout = \"5s\"\n"
        ))
        .unwrap();
        let s = c.signer.unwrap();
        assert_eq!(s.confirm, SignerConfirm::Probe);
        assert_eq!(s.probe_interval, Duration::from_secs(600));
        assert_eq!(s.probe_timeout, Duration::from_secs(5));
        assert_eq!(s.line, Some(line));
        let e = p(&format!(
            "{GOOD}\n{base}confirm = \"maybe\"\nprobe_interval = \"0s\"\n"
        ))
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|x| x.key.as_str()).collect();
        assert!(
            keys.contains(&"signer.confirm") && keys.contains(&"signer.probe_interval"),
            "{e}"
        );
    }

    #[test]
    fn selector_format() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(format_selector("%Y%m", at).as_deref(), Some("202611"));
        assert_eq!(
            format_selector("mail-%Y%m%d", at).as_deref(),
            Some("mail-20261128")
        );
        assert_eq!(format_selector("%Y %m", at), None);
    }

    /// Issue #11: rules the rotation policy enforces are enforced at load, by
    /// the policy's own validator, with file:line:key.
    #[test]
    fn rotation_rules_are_checked_once_at_load() {
        let cases = [
            (
                "selector_format = \"%Y.%m\"",
                "dkim.selector_format",
                "selector format '%Y.%m' does not give a selector",
            ),
            (
                "selector_format = \"%e\"",
                "dkim.selector_format",
                "selector format '%e'",
            ),
            (
                "rotation_interval = \"0s\"",
                "dkim.rotation_interval",
                "rotation_interval must be positive",
            ),
            (
                "overlap = \"0s\"\nmin_overlap = \"0s\"",
                "dkim.overlap",
                "overlap must be positive",
            ),
            (
                "rotation_interval = \"20000y\"",
                "dkim.rotation_interval",
                "rotation_interval must be at most 3653 days",
            ),
            (
                "algorithms = [\"rsa\", \"rsa\"]",
                "dkim.algorithms",
                "algorithm rsa is listed twice",
            ),
            (
                "bits = 2048\nalgorithms = [\"ed25519\"]",
                "dkim.bits",
                "bits applies to RSA keys",
            ),
            (
                "min_overlap = \"20d\"",
                "dkim.overlap",
                "overlap of 336 h is shorter than the minimum of 480 h",
            ),
        ];
        for (line, key, msg) in cases {
            let text = GOOD.replace("bits = 2048", line);
            let e = p(&text).unwrap_err();
            let s = e.to_string();
            let want =
                format!("/etc/maildns/maildns.toml:14: domains.\"example.com\".{key}: {msg}");
            assert!(s.starts_with(&want), "{line}: {s}\nwanted {want}");
        }
        // What loads makes a policy.
        let c = p(&GOOD.replace("bits = 2048", "selector_format = \"mail-%Y%m%d\"")).unwrap();
        let dkim = c.domains[0].dkim.as_ref().unwrap();
        assert!(Policy::new(dkim.policy.settings().clone()).is_ok());
    }

    #[test]
    fn lint_waivers_need_a_known_rule_and_a_reason() {
        let waiver = |body: &str| format!("{GOOD}\n[domains.\"example.com\".lint]\n{body}\n");
        let c = p(&waiver(
            "allow = [\"spf-too-many-lookups\"]\nreason = \"tested\"",
        ))
        .unwrap();
        assert!(c.domains[0].lint.waives("spf-too-many-lookups"));
        assert!(!c.domains[0].lint.waives("dmarc-bad-value"));
        let e = p(&waiver("allow = [\"spf-too-many-lookups\"]")).unwrap_err();
        assert!(
            e.to_string()
                .contains("domains.\"example.com\".lint.reason: a waiver needs a reason"),
            "{e}"
        );
        let e = p(&waiver("allow = [\"spf-lookups\"]\nreason = \"x\"")).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains(":17: domains.\"example.com\".lint.allow: 'spf-lookups' is not a lint rule"),
            "{s}"
        );
        assert!(s.contains("spf-too-many-lookups"), "{s}");
        // No global switch.
        let e = p(&format!(
            "[lint]\nallow = [\"spf-too-many-lookups\"]\n{GOOD}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `lint`"), "{e}");
    }

    #[test]
    fn propagation_timeouts_must_be_positive() {
        let e = p(&format!("{GOOD}\n[propagation]\ntimeout = \"0s\"\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("propagation.timeout: must be longer than 0s"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_duration("14 days").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert!(parse_duration("soon").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "[ -~\n\\[\\]\"=.]{0,300}") {
            let _ = p(&text);
        }

        #[test]
        fn mutated_good_config_never_panics(cut in 0usize..400, insert in "[ -~\n]{0,20}") {
            let cut = cut.min(GOOD.len());
            let text = format!("{}{}{}", &GOOD[..cut], insert, &GOOD[cut..]);
            let _ = p(&text);
        }
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::*;

    /// A Latin-1 byte in the config names its line and column (in characters,
    /// so multi-byte UTF-8 before it counts once).
    #[test]
    fn first_bad_byte_is_located() {
        let text = b"state_dir = \"s\"\n# caf\xc3\xa9 ok\nspf = \"v=spf1 caf\xe9 -all\"\n".to_vec();
        let e = decode_utf8(text).unwrap_err();
        assert_eq!(
            e,
            NotUtf8 {
                line: 3,
                column: 18,
                byte: 0xe9
            }
        );
        let e = decode_utf8(b"\xff".to_vec()).unwrap_err();
        assert_eq!((e.line, e.column, e.byte), (1, 1, 0xff));
        // A truncated multi-byte sequence: its first byte is the bad one.
        let e = decode_utf8(b"a = \"\xc3\"".to_vec()).unwrap_err();
        assert_eq!((e.line, e.column, e.byte), (1, 6, 0xc3));
        assert_eq!(decode_utf8(b"ok\n".to_vec()).unwrap(), "ok\n");
    }

    #[test]
    fn load_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maildns.toml");
        std::fs::write(
            &path,
            b"state_dir = \"s\"\n\n[domains.\"b\xfccher.example\"]\n",
        )
        .unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(
            e.to_string().starts_with(&format!(
                "{}:3: not UTF-8: byte 0xfc at line 3, column 12 (hint: TOML files are UTF-8",
                path.display()
            )),
            "{e}"
        );
    }
}

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

use maildns_providers::Fqdn;
use maildns_providers::registry::{CredentialKind, Host, Settings};

use crate::records::{adsp::Adsp, dmarc::Dmarc, spf::Spf};
use crate::rotation::policy::Policy;
mod locate;
mod pieces;
mod schema;
mod validate;

pub use locate::{DEFAULT_PATHS, locate};
use validate::Validator;
pub use validate::{DurationError, parse_duration};

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
    /// The shared state store (`[state] url`); `None`: the embedded SQLite
    /// store in `state_dir`.
    pub state: Option<SharedState>,
}

/// The shared state store on PostgreSQL (`[state]`), for several daemon
/// replicas. Never holds the password: only where to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedState {
    /// `postgres://user@host:port/database` (refused with a password in it).
    pub url: String,
    /// Environment variable holding the password (default
    /// `MAILDNS_STATE_PASSWORD`); then `$CREDENTIALS_DIRECTORY/state-password`,
    /// the OS keyring entry `state-password`, and `password_file`.
    pub password_env: String,
    /// A password file, refused unless mode 0600 or stricter.
    pub password_file: Option<PathBuf>,
    /// This replica's name in the event log (default `hostname:pid`).
    pub replica_id: Option<String>,
    /// How long a domain lease lasts without renewal (default 60 s).
    pub lease: Duration,
}

/// The credential name of the state store's password (systemd credential
/// file name, OS keyring entry).
pub const STATE_PASSWORD_CREDENTIAL: &str = "state-password";

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
    /// Authoritative servers to check instead of discovering them (shared
    /// by the domains that list the same servers: a configuration of
    /// thousands of domains on one server pair holds the list once).
    pub nameservers: std::sync::Arc<[SocketAddr]>,
    /// SPF policy at the domain.
    pub spf: Option<Spf>,
    /// DKIM keys and rotation (boxed: a configuration of many domains
    /// without DKIM settings does not hold room for them in each domain).
    pub dkim: Option<Box<DkimPolicy>>,
    /// DMARC policy at `_dmarc`.
    pub dmarc: Option<Dmarc>,
    /// ADSP at `_adsp._domainkey` (historic; only when configured).
    pub adsp: Option<Adsp>,
    /// Lint rules waived for this domain (`[domains."x".lint]`; `None`:
    /// none, as for nearly every domain, which then holds no room for it).
    pub lint: Option<Box<LintWaiver>>,
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
    pub line: Option<u32>,
    /// Line of `spf = ...`.
    pub spf: Option<u32>,
    /// Line of `dmarc = ...`.
    pub dmarc: Option<u32>,
    /// Line of `adsp = ...`.
    pub adsp: Option<u32>,
    /// Line of `ttl = ...` (`None`: the TTL is maildns's default, 3600).
    pub ttl: Option<u32>,
}

impl DomainSource {
    /// A line as the other positions in messages are given (1-based).
    pub fn at(line: Option<u32>) -> Option<usize> {
        line.map(|l| l as usize)
    }
}

/// The OpenDKIM signer (`[signer]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// OpenDKIM with `dsn:` tables on PostgreSQL (`kind = "opendkim-sql"`);
    /// `None`: OpenDKIM with file tables on this host (`kind = "opendkim"`,
    /// the default).
    pub sql: Option<SqlSigner>,
    /// opendkim.conf, when maildns should read it (file tables only).
    pub config: Option<PathBuf>,
    /// Directory for new key files (with `opendkim-sql`: maildns's own copies,
    /// default `<state_dir>/keys`).
    pub key_dir: PathBuf,
    /// KeyTable file (file tables only; empty with `opendkim-sql`).
    pub key_table: PathBuf,
    /// SigningTable file (file tables only; empty with `opendkim-sql`).
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
    /// `kind = "rspamd"`: rspamd reading keys and selectors from Redis
    /// (`None`: OpenDKIM with file tables, `kind = "opendkim"`, the default).
    /// Then `key_dir` holds maildns's own copies of the keys and the
    /// OpenDKIM settings are unused.
    pub rspamd: Option<RspamdSigner>,
}

/// `[signer] kind = "rspamd"`: every MTA's rspamd reads DKIM keys and
/// selectors from one Redis. Never holds a password: only where to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RspamdSigner {
    /// `redis://[user@]host:port/db` (`url`; refused with a password in it).
    pub url: String,
    /// Environment variable holding the Redis password (default
    /// `MAILDNS_SIGNER_PASSWORD`); then `$CREDENTIALS_DIRECTORY/signer-password`,
    /// the OS keyring entry `signer-password`, and `password_file`.
    pub password_env: String,
    /// A Redis password file (mode 0600).
    pub password_file: Option<PathBuf>,
    /// rspamd's `key_prefix` (default `DKIM_KEYS`).
    pub key_hash: String,
    /// rspamd's `selector_prefix` (default `DKIM_SELECTORS`).
    pub selector_hash: String,
    /// Every rspamd controller (`http://mx1.example.net:11334`), one per MTA:
    /// a switch counts only when every one signs with the new key.
    pub controllers: Vec<String>,
    /// Environment variable holding the controllers' password (default
    /// `MAILDNS_RSPAMD_CONTROLLER_PASSWORD`); then
    /// `$CREDENTIALS_DIRECTORY/rspamd-controller-password`, the OS keyring
    /// entry `rspamd-controller-password`, and `controller_password_file`.
    pub controller_password_env: String,
    /// A controller password file (mode 0600).
    pub controller_password_file: Option<PathBuf>,
}

/// The credential name of the signer database's password (Redis for
/// rspamd): systemd credential file name, OS keyring entry.
pub const SIGNER_PASSWORD_CREDENTIAL: &str = "signer-password";

/// The credential name of the rspamd controllers' password.
pub const RSPAMD_CONTROLLER_PASSWORD_CREDENTIAL: &str = "rspamd-controller-password";

/// The credential names that are not accounts' (see `maildns secret`): no
/// account may take one of them.
pub const RESERVED_CREDENTIALS: [&str; 3] = [
    STATE_PASSWORD_CREDENTIAL,
    SIGNER_PASSWORD_CREDENTIAL,
    RSPAMD_CONTROLLER_PASSWORD_CREDENTIAL,
];

/// `[signer] kind = "opendkim-sql"`: every MTA's OpenDKIM reads its KeyTable
/// and SigningTable from one PostgreSQL database. Never holds the password:
/// only where to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSigner {
    /// `postgres://user@host:port/database` (refused with a password in it).
    pub url: String,
    /// Environment variable holding the password (default
    /// `MAILDNS_SIGNER_PASSWORD`); then `$CREDENTIALS_DIRECTORY/signer-password`,
    /// the OS keyring entry `signer-password`, and `password_file`.
    pub password_env: String,
    /// A password file, refused unless mode 0600 or stricter.
    pub password_file: Option<PathBuf>,
    /// Every OpenDKIM's milter socket (`inet:PORT@HOST`, `local:/path`), one
    /// per MTA: a switch counts only when every one signs with the new key.
    pub sockets: Vec<crate::signer::MilterSocket>,
    /// Table and column names.
    pub tables: crate::signer::SqlTables,
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

/// Reads and validates a configuration file.
///
/// # Errors
/// The file cannot be read, is not UTF-8, or has problems (every one, each
/// with file:line:key).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_text(path)?;
    parse(&text, path)
}

/// The file's text, or the error naming why it cannot be had.
fn read_text(path: &Path) -> Result<String, ConfigErrors> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
            hint: None,
        }])
    })?;
    decode_utf8(bytes).map_err(|e| {
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
    })
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
///
/// # Errors
/// Every problem of the file, each with file:line:key.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    match parse_partial(text, path) {
        (Some(cfg), errors) if errors.is_empty() => Ok(cfg),
        (_, errors) => Err(ConfigErrors(errors)),
    }
}

/// What of `text` validates, with every problem found: the configuration
/// holds the accounts and domains that had no problem of their own (for
/// `check`, which lints those records too when the file has errors); `None`
/// when the text is not TOML. Nothing may act on a configuration that came
/// with errors.
pub fn parse_partial(text: &str, path: &Path) -> (Option<Config>, Vec<ConfigError>) {
    // A file of many domains is read in pieces (its memory follows a piece);
    // any problem is reported by reading it whole, section by section.
    if let Some(config) = pieces::parse(text, path, pieces::PER_PIECE) {
        return (Some(config), Vec::new());
    }
    whole_partial(text, path)
}

/// [`parse_partial`] reading the whole document at once (section by section).
fn whole_partial(text: &str, path: &Path) -> (Option<Config>, Vec<ConfigError>) {
    let mut v = Validator::new(text, path);
    let cfg = v.read(text).map(|raw| v.config(raw));
    let mut errors = v.errors;
    validate::in_file_order(&mut errors);
    (cfg, errors)
}

/// [`parse`] reading the whole document at once.
#[cfg(test)]
fn parse_whole(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    match whole_partial(text, path) {
        (Some(cfg), errors) if errors.is_empty() => Ok(cfg),
        (_, errors) => Err(ConfigErrors(errors)),
    }
}

/// [`load`], keeping what validates ([`parse_partial`]).
///
/// # Errors
/// The file cannot be read or is not UTF-8 (nothing of it validates).
pub fn load_partial(path: &Path) -> Result<(Option<Config>, Vec<ConfigError>), ConfigErrors> {
    let text = read_text(path)?;
    Ok(parse_partial(&text, path))
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
    // The rotation's own formatter and selector rule (one validator).
    crate::rotation::selector::format_selector(format, at).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::keys::{Algorithm, KeySpec};

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
        assert!(
            s.contains("maildns.toml:9: domains.\"example.com\".acount: unknown field `acount`"),
            "{s}"
        );
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
    fn program_settings_must_name_an_absolute_program() {
        let base = "[accounts.x]\nprovider = \"exec\"\n[domains.\"example.org\"]\naccount = \"x\"\nspf = \"v=spf1 -all\"\n";
        for (command, said) in [
            (
                "[\"./host.py\"]",
                "the program './host.py' must be an absolute path",
            ),
            ("[]", "is empty"),
        ] {
            let text = base.replace(
                "provider = \"exec\"\n",
                &format!("provider = \"exec\"\ncommand = {command}\n"),
            );
            let e = p(&text).unwrap_err();
            assert_eq!(e.0.len(), 1, "only the one error: {e}");
            assert_eq!(e.0[0].key, "accounts.x.command");
            assert_eq!(e.0[0].line, Some(3), "{e}");
            assert!(e.to_string().contains(said), "{e}");
        }
        let manual = "[accounts.w]\nprovider = \"manual\"\nnotify = [\"mail-me\"]\n";
        let e = p(manual).unwrap_err();
        assert_eq!(e.0[0].key, "accounts.w.notify", "{e}");
    }

    /// From a user's trial: a password in a URL's query, or in a value that
    /// is not a URL at all, is refused and never repeated.
    #[test]
    fn signer_urls_never_echo_a_password() {
        for (body, key) in [
            (
                "url = \"redis://127.0.0.1:16379/0?password=hunter2-secret\"\ncontrollers = [\"http://127.0.0.1:11334\"]",
                "signer.url",
            ),
            (
                "url = \"hunter2-secret@127.0.0.1:6379\"\ncontrollers = [\"http://127.0.0.1:11334\"]",
                "signer.url",
            ),
            (
                "url = \"redis://127.0.0.1:6379/0\"\ncontrollers = [\"http://127.0.0.1:11334/?password=hunter2-secret\"]",
                "signer.controllers",
            ),
            (
                "url = \"redis://127.0.0.1:6379/0\"\ncontrollers = [\"hunter2-secret at 127.0.0.1\"]",
                "signer.controllers",
            ),
        ] {
            let e = p(&format!("{GOOD}\n[signer]\nkind = \"rspamd\"\n{body}\n")).unwrap_err();
            assert!(e.0.iter().any(|x| x.key == key), "{body}: {e}");
            assert!(!e.to_string().contains("hunter2-secret"), "{e}");
        }
        let e = p(&format!(
            "{GOOD}\n[signer]\nkind = \"opendkim-sql\"\nurl = \"host=db password=hunter2-secret\"\nsockets = [\"inet:8891@127.0.0.1\"]\n"
        ))
        .unwrap_err();
        assert!(e.0.iter().any(|x| x.key == "signer.url"), "{e}");
        assert!(!e.to_string().contains("hunter2-secret"), "{e}");
    }

    #[test]
    fn rspamd_signer_settings() {
        let base = "[signer]\nkind = \"rspamd\"\nurl = \"redis://127.0.0.1:6379/0\"\n";
        let c = p(&format!(
            "{GOOD}\n{base}controllers = [\"http://mx1.example.net:11334\", \"http://mx2.example.net:11334\"]\n"
        ))
        .unwrap();
        let s = c.signer.unwrap();
        let r = s.rspamd.unwrap();
        assert_eq!(r.url, "redis://127.0.0.1:6379/0");
        assert_eq!(r.controllers.len(), 2);
        assert_eq!(
            (r.key_hash.as_str(), r.selector_hash.as_str()),
            ("DKIM_KEYS", "DKIM_SELECTORS")
        );
        assert_eq!(r.password_env, "MAILDNS_SIGNER_PASSWORD");
        assert_eq!(
            r.controller_password_env,
            "MAILDNS_RSPAMD_CONTROLLER_PASSWORD"
        );
        assert!(s.key_dir.ends_with("state/keys"), "{}", s.key_dir.display());
        assert_eq!(s.confirm, SignerConfirm::Probe);

        // Probes need controllers; passwords never in the file, never echoed.
        let line = GOOD.lines().count() + 2;
        let e = p(&format!("{GOOD}\n{base}")).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "signer.controllers");
        assert_eq!(e.0[0].line, Some(line), "{e}");
        let e = p(&format!(
            "{GOOD}\n[signer]\nkind = \"rspamd\"\nurl = \"redis://:s3cret@127.0.0.1:6379/\"\ncontrollers = [\"http://admin:s3cret2@127.0.0.1:11334\"]\ncontroller_password = \"s3cret3\"\nkey_table = \"/kt\"\nkey_hash = \"\"\n"
        ))
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "signer.url",
            "signer.controllers",
            "signer.controller_password",
            "signer.key_table",
        ] {
            assert!(keys.contains(&k), "{k}: {e}");
        }
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = p(&format!(
            "{GOOD}\n[signer]\nkind = \"rspamd\"\nurl = \"http://x\"\nconfirm = \"tables-only\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.0[0].key, "signer.url", "{e}");
        // rspamd keys with OpenDKIM, and unknown kinds, are refused.
        let e = p(&format!(
            "{GOOD}\n[signer]\nkey_dir = \"/k\"\nkey_table = \"/kt\"\nsigning_table = \"/st\"\nconfirm = \"tables-only\"\ncontrollers = []\n"
        ))
        .unwrap_err();
        assert_eq!(e.0[0].key, "signer.controllers", "{e}");
        let e = p(&format!(
            "{GOOD}\n[signer]\nkind = \"postfix\"\nconfirm = \"tables-only\"\n"
        ))
        .unwrap_err();
        assert!(e.0.iter().any(|x| x.key == "signer.kind"), "{e}");
        assert!(e.to_string().contains("\"rspamd\""), "{e}");
    }

    #[test]
    fn sql_signer_reads_its_tables_sockets_and_never_a_password() {
        let c = p(&format!(
            "{GOOD}\n[signer]\nkind = \"opendkim-sql\"\nurl = \"postgres://od@db.example.net:5432/dkim\"\nsockets = [\"inet:8891@mx1.example.net\", \"local:/run/opendkim/opendkim.sock\"]\nsigning_table = \"mail.signing\"\ncolumns = {{ private_key = \"pem\" }}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = c.signer.unwrap();
        let sql = s.sql.unwrap();
        assert_eq!(sql.url, "postgres://od@db.example.net:5432/dkim");
        assert_eq!(sql.password_env, "MAILDNS_SIGNER_PASSWORD");
        assert_eq!(sql.sockets.len(), 2);
        assert_eq!(sql.sockets[0].to_string(), "inet:8891@mx1.example.net");
        assert_eq!(sql.tables.key_table, "dkim_keys");
        assert_eq!(sql.tables.signing_table, "mail.signing");
        assert_eq!(sql.tables.private_key, "pem");
        assert_eq!(sql.tables.key_id, "id");
        // maildns's own copies of the keys default to <state_dir>/keys.
        assert_eq!(s.key_dir, Path::new("/etc/maildns/state/keys"));

        let base = GOOD.lines().count() + 2;
        for (body, key, line, said) in [
            (
                "url = \"postgres://od:hunter2-secret@db/dkim\"\nsockets = [\"inet:1@h\"]",
                "signer.url",
                base + 2,
                "holds a password",
            ),
            (
                "sockets = [\"inet:1@h\"]",
                "signer.url",
                base,
                "needs the url",
            ),
            (
                "url = \"mysql://db/dkim\"\nsockets = [\"inet:1@h\"]",
                "signer.url",
                base + 2,
                "not a postgres:// URL",
            ),
            (
                "url = \"postgres://db/dkim\"\npassword = \"hunter2-secret\"\nsockets = [\"inet:1@h\"]",
                "signer.password",
                base + 3,
                "does not belong",
            ),
            (
                "url = \"postgres://db/dkim\"",
                "signer.sockets",
                base,
                "no milter socket",
            ),
            (
                "url = \"postgres://db/dkim\"\nsockets = [\"inet:1@h\", \"ftp:x\"]",
                "signer.sockets",
                base + 3,
                "ftp:x",
            ),
            (
                "url = \"postgres://db/dkim\"\nsockets = [\"inet:1@h\"]\nkey_table = \"Keys\"",
                "signer.key_table",
                base + 4,
                "lower-case",
            ),
            (
                "url = \"postgres://db/dkim\"\nsockets = [\"inet:1@h\"]\ncolumns = {{ domain = \"d=x\" }}",
                "signer.columns.domain",
                base + 4,
                "lower-case",
            ),
            (
                "url = \"postgres://db/dkim\"\nsockets = [\"inet:1@h\"]\nreload_command = [\"true\"]",
                "signer.reload_command",
                base + 4,
                "no reload",
            ),
        ] {
            let text = format!(
                "{GOOD}\n[signer]\nkind = \"opendkim-sql\"\n{}\n",
                body.replace("{{", "{").replace("}}", "}")
            );
            let e = p(&text).unwrap_err();
            assert_eq!(e.0.len(), 1, "{body}: {e}");
            assert_eq!(e.0[0].key, key, "{body}: {e}");
            assert_eq!(e.0[0].line, Some(line), "{body}: {e}");
            assert!(e.to_string().contains(said), "{body}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        // Keys of the SQL kind on the file kind are named.
        let e = p(&format!(
            "{GOOD}\n[signer]\nconfirm = \"tables-only\"\nkey_dir = \"/k\"\nkey_table = \"/kt\"\nsigning_table = \"/st\"\nsockets = [\"inet:1@h\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.0[0].key, "signer.sockets", "{e}");
        assert_eq!(e.0[0].line, Some(base + 5), "{e}");
        let e = p(&format!(
            "{GOOD}\n[signer]\nconfirm = \"tables-only\"\nkey_dir = \"/k\"\n"
        ))
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["signer.key_table", "signer.signing_table"], "{e}");
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
        let lint = c.domains[0].lint.as_deref().expect("a waiver");
        assert!(lint.waives("spf-too-many-lookups"));
        assert!(!lint.waives("dmarc-bad-value"));
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
    fn shared_state_is_optional_and_never_holds_a_password() {
        // Without [state]: the embedded store, unchanged.
        assert_eq!(p(GOOD).unwrap().state, None);
        let c = p(&format!(
            "{GOOD}\n[state]\nurl = \"postgres://maildns@db.example.net:5432/maildns\"\nreplica_id = \"mx1\"\nlease = \"30s\"\npassword_file = \"state.pw\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.state,
            Some(SharedState {
                url: "postgres://maildns@db.example.net:5432/maildns".into(),
                password_env: "MAILDNS_STATE_PASSWORD".into(),
                password_file: Some(PathBuf::from("/etc/maildns/state.pw")),
                replica_id: Some("mx1".into()),
                lease: Duration::from_secs(30),
            })
        );
        let d = p(&format!(
            "{GOOD}\n[state]\nurl = \"postgresql://maildns@/maildns?host=/run/postgresql\"\n"
        ))
        .unwrap();
        let d = d.state.unwrap();
        assert_eq!(d.lease, Duration::from_secs(60));
        assert_eq!(d.replica_id, None);
        for (body, want) in [
            (
                "url = \"postgres://maildns:hunter2-secret@db/maildns\"",
                "state.url: the URL holds a password",
            ),
            (
                "url = \"mysql://root:hunter2-secret@db/x\"",
                "state.url: not a postgres:// URL (the value is not repeated: it may hold a password)",
            ),
            // A libpq connection string and a URL with a typo: not echoed.
            (
                "url = \"host=127.0.0.1 password=hunter2-secret dbname=x\"",
                "state.url: not a postgres:// URL",
            ),
            (
                "url = \"postgres:/maildns:hunter2-secret@127.0.0.1/x\"",
                "state.url: not a postgres:// URL",
            ),
            (
                "url = \"postgres://db/x\"\npassword = \"hunter2-secret\"",
                "state.password: the state store's password does not belong",
            ),
            ("replica_id = \"x\"", "state.url: [state] needs a url"),
            (
                "url = \"postgres://db/x\"\nlease = \"0s\"",
                "state.lease: must be longer than 0s",
            ),
            (
                "url = \"postgres://db/x\"\nreplica_id = \"  \"",
                "state.replica_id: a replica id is 1 to 200 printable characters",
            ),
        ] {
            let e = p(&format!("{GOOD}\n[state]\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
            assert!(!e.contains("hunter2-secret"), "{e}");
        }
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

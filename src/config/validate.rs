//! Raw TOML shapes ([`super::schema`]) -> validated types ([`crate::config`]),
//! in one place: every problem of a file is collected with its file:line:key
//! and a hint. The DKIM policy is validated here by the rotation policy's own
//! validator ([`crate::rotation::Policy::problems`]) and handed on as a
//! [`crate::rotation::Policy`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::TimeDelta;

use maildns_providers::Fqdn;
use maildns_providers::registry::{self, CredentialKind, Settings};
use toml::Spanned;

use super::schema::*;
use super::*;
use crate::keys::{Algorithm, KeySpec};
use crate::records::{adsp::Adsp, dmarc::Dmarc, spf::Spf};
use crate::rotation::policy::{Disposal, Policy, PolicyError, PolicySettings, Withdrawal};

#[cfg(test)]
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Whether a URL carries a password in its query (`?password=…`, as
/// redis-rs and libpq read it): refused like one in the user part.
fn query_password(u: &reqwest::Url) -> bool {
    u.query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass"))
}

/// A key as written in a dotted key: bare when it can be, else quoted.
fn dotted_part(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

/// Where each line of a text starts, to name the line of an offset without
/// counting from the start each time (every domain records the lines of its
/// keys: counting from the start made loading 10,000 domains take seconds).
#[derive(Debug, Clone, Default)]
pub(super) struct Lines(Vec<usize>);

impl Lines {
    pub(super) fn of(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The 1-based line of `offset`, as [`line_of`] counts it.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// Puts `errors` in the order of the file: by file, then line (problems of
/// the whole file, without a line, after the others of that file); errors of
/// one line keep the order they were found in. The validator finds them
/// section by section and check by check (an account's missing setting is
/// found after the unknown key below it), so its reading order is not the
/// file's.
pub(super) fn in_file_order(errors: &mut [ConfigError]) {
    errors.sort_by(|a, b| {
        (&a.path, a.line.is_none(), a.line).cmp(&(&b.path, b.line.is_none(), b.line))
    });
}

/// A text that is not a duration ([`parse_duration`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("'{text}' is not a duration: {source}")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What humantime said about it.
    #[source]
    pub source: humantime::DurationError,
}

/// Parses `30d`, `14 days`, `1h`, `90s`.
///
/// # Errors
/// [`DurationError`] when `s` is not a duration.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(s.trim()).map_err(|source| DurationError {
        text: s.to_string(),
        source,
    })
}

/// Whether `program` can be run: an existing regular file (after symbolic
/// links) with an execute bit; otherwise why not.
fn runnable(program: &Path) -> Result<(), String> {
    match std::fs::metadata(program) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".into()),
        Err(e) => Err(format!("cannot be read: {e}")),
        Ok(m) if !m.is_file() => Err("is not a file".into()),
        Ok(m) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if m.permissions().mode() & 0o111 == 0 {
                    return Err("is not executable".into());
                }
            }
            #[cfg(not(unix))]
            let _ = m;
            Ok(())
        }
    }
}

/// How a configured command's program is found when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Only by its absolute path (an account's `command` and `notify`).
    AbsolutePath,
    /// By its absolute path, or a bare name (no `/`) looked up in `PATH`, as
    /// the reload command runs (`systemctl`).
    AlsoPath,
}

/// Why `program` (a command's first word) cannot run when found as `lookup`
/// says, as a message naming it; `None` when it can. A bare name is looked up
/// in this process's `PATH` (the daemon that runs it reads the same
/// configuration with its own environment), each directory in turn, the way
/// `execvp` (and so `std::process::Command`) does; the first runnable file
/// wins. Written here rather than with a crate: it is [`runnable`] applied to
/// each directory of `PATH`.
fn program_problem(program: &str, lookup: Lookup) -> Option<String> {
    let shown = crate::quote::escaped(program);
    let path = Path::new(program);
    if path.is_absolute() {
        return runnable(path)
            .err()
            .map(|why| format!("the program '{shown}' {why}"));
    }
    if lookup == Lookup::AbsolutePath {
        return Some(format!("the program '{shown}' must be an absolute path"));
    }
    if program.is_empty() || program.contains('/') {
        return Some(format!(
            "the program '{shown}' must be an absolute path or a program name found in PATH"
        ));
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&dirs)
        .filter(|d| !d.as_os_str().is_empty())
        .any(|d| runnable(&d.join(program)).is_ok())
    {
        return None;
    }
    Some(format!(
        "the program '{shown}' is not found in PATH ({})",
        crate::quote::escaped(&dirs.to_string_lossy())
    ))
}

/// Keys accepted only to be refused with a pointer to the right place
/// (secrets never belong in the file): never offered as expected keys.
const REFUSED: &[&str] = &[
    "token",
    "secret",
    "api_key",
    "password",
    "controller_password",
];

/// The top-level keys, in the order the README documents them.
const TOP_LEVEL: &[&str] = &[
    "state_dir",
    "state",
    "accounts",
    "domains",
    "publish",
    "propagation",
    "signer",
];

/// serde's "unknown field `x`, expected one of `a`, `b`" with the expected
/// keys replaced by `expected` (when given) and the refused ones left out:
/// the list names only keys a user should write.
fn unknown_field_message(message: &str, expected: Option<&[&str]>) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some(end) = rest.find('`') else {
        return message.to_string();
    };
    let field = &rest[..end];
    let listed: Vec<&str> = match expected {
        Some(e) => e.to_vec(),
        None => rest[end + 1..].split('`').skip(1).step_by(2).collect(),
    };
    let listed: Vec<String> = listed
        .into_iter()
        .filter(|k| !REFUSED.contains(k))
        .map(|k| format!("`{k}`"))
        .collect();
    match listed.len() {
        0 => format!("unknown field `{field}`, there are no fields"),
        1 => format!("unknown field `{field}`, expected {}", listed[0]),
        _ => format!(
            "unknown field `{field}`, expected one of {}",
            listed.join(", ")
        ),
    }
}

/// Removes from `value` (a table) the key whose key or value is written at
/// byte `offset`, searching nested tables first; its path as dotted-key parts.
fn remove_at(value: &mut toml::de::DeValue<'_>, offset: usize) -> Option<Vec<String>> {
    let toml::de::DeValue::Table(table) = value else {
        return None;
    };
    let mut hit = None;
    for (k, v) in table.iter_mut() {
        if matches!(v.get_ref(), toml::de::DeValue::Table(_))
            && let Some(mut inner) = remove_at(v.get_mut(), offset)
        {
            inner.insert(0, dotted_part(k.get_ref()));
            return Some(inner);
        }
        if k.span().contains(&offset) || v.span().contains(&offset) {
            hit = Some(k.get_ref().to_string());
            break;
        }
    }
    let hit = hit?;
    table.remove(hit.as_str());
    Some(vec![dotted_part(&hit)])
}

pub(super) struct Validator<'a> {
    /// The lines of the configuration's text.
    pub(super) lines: Lines,
    pub(super) path: &'a Path,
    pub(super) base: PathBuf,
    pub(super) errors: Vec<ConfigError>,
    /// Accounts written in the file that did not read (their errors are
    /// reported): a domain naming one is not told the account is missing.
    pub(super) unread_accounts: std::collections::BTreeSet<String>,
    /// Whether some `[domains."x"]` was written, even if it did not read.
    pub(super) domains_written: bool,
    /// Keys whose value did not read (reported with the reason): the
    /// validator's errors about the same key would only follow from it.
    pub(super) unread_keys: std::collections::BTreeSet<String>,
    /// Each distinct `nameservers` list read so far, shared by the domains
    /// that list it.
    nameserver_lists: std::collections::HashSet<std::sync::Arc<[SocketAddr]>>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(text: &str, path: &'a Path) -> Validator<'a> {
        Validator {
            lines: Lines::of(text),
            path,
            base: path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            errors: Vec::new(),
            unread_accounts: Default::default(),
            domains_written: false,
            unread_keys: Default::default(),
            nameserver_lists: Default::default(),
        }
    }

    /// Records a TOML or type error under `key`, with the line of its span.
    fn toml_error(&mut self, e: &toml::de::Error, key: String, expected: Option<&[&str]>) {
        self.errors.push(ConfigError {
            path: self.path.to_path_buf(),
            line: e.span().map(|s| self.lines.line(s.start)),
            key,
            message: crate::quote::debug_escapes_to_ddd(&unknown_field_message(
                e.message().trim(),
                expected,
            )),
            hint: Some(
                "see fixtures/quickstart/maildns.toml and the README's configuration section"
                    .into(),
            ),
        });
    }

    /// Reads `text` into its raw shapes, section by section and entry by
    /// entry (each `[accounts.X]`, each `[domains."X"]` on its own), so that
    /// every unknown key and every wrongly typed value of the file is
    /// reported, not only the first serde meets. The document is parsed once
    /// and consumed entry by entry. `None` when the text is not TOML (every
    /// syntax error is reported).
    pub(super) fn read(&mut self, text: &str) -> Option<Raw> {
        let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            for e in &syntax {
                self.toml_error(e, String::new(), None);
            }
            return None;
        }
        let mut raw = Raw {
            state_dir: None,
            accounts: BTreeMap::new(),
            domains: BTreeMap::new(),
            signer: None,
            publish: None,
            propagation: None,
            state: None,
        };
        for (k, v) in doc.into_inner() {
            match k.get_ref().as_ref() {
                "state_dir" => raw.state_dir = self.read_part(v, "state_dir", None),
                "state" => raw.state = self.read_part(v, "state", None),
                "signer" => raw.signer = self.read_part(v, "signer", None),
                "publish" => raw.publish = self.read_part(v, "publish", None),
                "propagation" => raw.propagation = self.read_part(v, "propagation", None),
                "accounts" => {
                    for (name, v) in self.read_entries(v, "accounts") {
                        let key = format!("accounts.{}", dotted_part(name.get_ref()));
                        // Offer the keys this account's provider reads.
                        let host = v
                            .get_ref()
                            .as_table()
                            .and_then(|t| t.get("provider"))
                            .and_then(|p| p.get_ref().as_str())
                            .and_then(registry::host);
                        let expected: Option<Vec<&str>> = host.map(|h| {
                            let mut e = vec!["provider"];
                            e.extend(h.required.iter().map(|r| r.key));
                            e.extend(h.optional.iter().copied());
                            if h.credential == CredentialKind::Secret {
                                e.extend(["token_env", "token_file"]);
                            }
                            e
                        });
                        match self.read_part(v, &key, expected.as_deref()) {
                            Some(a) => {
                                raw.accounts.insert(name.into_inner(), a);
                            }
                            None => {
                                self.unread_accounts.insert(name.into_inner());
                            }
                        }
                    }
                }
                "domains" => {
                    for (name, v) in self.read_entries(v, "domains") {
                        self.domains_written = true;
                        let key = format!("domains.\"{}\"", name.get_ref());
                        if let Some(d) = self.read_part(v, &key, None) {
                            raw.domains.insert(name, d);
                        }
                    }
                }
                other => {
                    let key = dotted_part(other);
                    let list: Vec<String> = TOP_LEVEL.iter().map(|k| format!("`{k}`")).collect();
                    self.err(
                        Some(k.span()),
                        &key,
                        format!("unknown field `{other}`, expected one of {}", list.join(", ")),
                        Some("see fixtures/quickstart/maildns.toml and the README's configuration section"),
                    );
                }
            }
        }
        Some(raw)
    }

    /// The entries of the table `value` (`[accounts]`, `[domains]`), each
    /// still to be read; a value that is not a table is reported under `key`.
    fn read_entries<'i>(
        &mut self,
        value: Spanned<toml::de::DeValue<'i>>,
        key: &str,
    ) -> Vec<(Spanned<String>, Spanned<toml::de::DeValue<'i>>)> {
        let span = value.span();
        match value.into_inner() {
            toml::de::DeValue::Table(t) => t
                .into_iter()
                .map(|(k, v)| {
                    let span = k.span();
                    (Spanned::new(span, k.into_inner().into_owned()), v)
                })
                .collect(),
            other => {
                self.err(
                    Some(span),
                    key,
                    format!("invalid type: {}, expected a table", other.type_str()),
                    Some(&format!("write [{key}.NAME] tables")),
                );
                Vec::new()
            }
        }
    }

    /// Deserializes one part of the file. On an error, the key it is about
    /// is reported (file:line:key), removed, and the rest read again, so
    /// every unknown key and wrongly typed value of the part is reported;
    /// what remains is returned (the validator then reports its other
    /// problems). `None` when a required key is missing or the part itself
    /// has the wrong type. `expected` replaces serde's list of expected keys
    /// in unknown-field messages.
    fn read_part<T: serde::de::DeserializeOwned>(
        &mut self,
        mut value: Spanned<toml::de::DeValue<'_>>,
        key: &str,
        expected: Option<&[&str]>,
    ) -> Option<T> {
        let mut removed_keys: Vec<String> = Vec::new();
        // Each round removes one key, so this ends; the bound is a guard.
        for _ in 0..1000 {
            let e = match T::deserialize(toml::de::ValueDeserializer::from(value.clone())) {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            if let Some(field) = e.message().strip_prefix("missing field `") {
                // A required key removed for its own error is not missing again.
                let field = field.trim_end().trim_end_matches('`');
                if !removed_keys.iter().any(|k| k == field) {
                    self.toml_error(&e, key.to_string(), expected);
                }
                return None;
            }
            let removed = e.span().and_then(|s| remove_at(value.get_mut(), s.start));
            if let Some(last) = removed.as_ref().and_then(|p| p.last()) {
                removed_keys.push(last.clone());
            }
            let at = match &removed {
                Some(parts) => format!("{key}.{}", parts.join(".")),
                None => key.to_string(),
            };
            self.toml_error(&e, at.clone(), expected);
            removed.as_ref()?;
            self.unread_keys.insert(at);
        }
        None
    }

    fn err(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        msg: String,
        hint: Option<&str>,
    ) {
        if self.unread_keys.contains(key) {
            return;
        }
        self.errors.push(ConfigError {
            path: self.path.to_path_buf(),
            line: span.map(|s| self.lines.line(s.start)),
            key: key.to_string(),
            message: msg,
            hint: hint.map(str::to_string),
        });
    }

    /// Settings that name something (a path, an environment variable) and so
    /// cannot be empty: each empty one given is an error at its file:line:key
    /// (not a silent default, nor the configuration's directory). An
    /// environment variable name also cannot hold `=` or NUL.
    fn named(&mut self, fields: &[(&str, &Option<Spanned<String>>)]) {
        for (key, v) in fields {
            let Some(v) = v else { continue };
            let text = v.get_ref();
            let env = key.ends_with("_env");
            if text.trim().is_empty() {
                self.err(
                    Some(v.span()),
                    key,
                    if env {
                        "is empty: give the name of an environment variable".into()
                    } else {
                        "is empty: give a path".into()
                    },
                    Some("write a value, or remove the key for the default"),
                );
            } else if env && text.contains(['=', '\0']) {
                self.err(
                    Some(v.span()),
                    key,
                    format!(
                        "'{}' is not an environment variable name (it holds '=' or NUL)",
                        crate::quote::escaped(text)
                    ),
                    Some("e.g. \"MAILDNS_PDNS_TOKEN\""),
                );
            }
        }
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
                        m.to_string(),
                        Some("write e.g. \"30d\", \"14d\", \"12h\""),
                    );
                    default
                }
            },
        }
    }

    /// A program and its arguments (no shell): not empty, the program an
    /// absolute path (a relative one would depend on the working directory)
    /// that can run ([`program_problem`]).
    fn program(&mut self, v: &Option<Spanned<Vec<String>>>, key: &str) -> Option<Vec<String>> {
        let v = v.as_ref()?;
        match v.get_ref().first() {
            Some(p) => match program_problem(p, Lookup::AbsolutePath) {
                None => Some(v.get_ref().clone()),
                Some(problem) => {
                    self.err(
                        Some(v.span()),
                        key,
                        problem,
                        Some(if Path::new(p).is_absolute() {
                            "give the absolute path of an executable file (chmod +x)"
                        } else {
                            "write e.g. [\"/usr/local/lib/maildns/my-dns-host\", \"--flag\"]"
                        }),
                    );
                    None
                }
            },
            None => {
                self.err(
                    Some(v.span()),
                    key,
                    "is empty: give the program and its arguments".into(),
                    None,
                );
                None
            }
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

    pub(super) fn config(&mut self, raw: Raw) -> Config {
        self.config_with(raw, None)
    }

    /// [`Self::config`] with `given`: the domains validated already, in
    /// order (read in pieces, [`super::pieces`]; `raw` then has none).
    pub(super) fn config_with(&mut self, raw: Raw, given: Option<Vec<Domain>>) -> Config {
        self.named(&[("state_dir", &raw.state_dir)]);
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
        let mut domains = given.unwrap_or_default();
        for (name, d) in &raw.domains {
            if let Some(dom) = self.domain(name, d, &raw.accounts) {
                domains.push(dom);
            }
        }
        if raw.domains.is_empty() && domains.is_empty() && !self.domains_written {
            self.err(
                None,
                "domains",
                "no domains configured".into(),
                Some("add a [domains.\"example.com\"] table"),
            );
        }
        let signer = raw.signer.as_ref().and_then(|s| self.signer(s, &state_dir));
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
        let state = raw.state.as_ref().and_then(|s| self.shared_state(s));
        Config {
            path: self.path.to_path_buf(),
            state_dir,
            accounts,
            domains,
            signer,
            publish,
            propagation,
            state,
        }
    }

    fn shared_state(&mut self, raw: &Spanned<RawState>) -> Option<SharedState> {
        let st = raw.get_ref();
        if let Some(v) = &st.password {
            self.err(
                Some(v.span()),
                "state.password",
                "the state store's password does not belong in the configuration file".into(),
                Some("remove it and use the environment variable MAILDNS_STATE_PASSWORD, $CREDENTIALS_DIRECTORY/state-password, `maildns secret set state-password`, or state.password_file (mode 0600)"),
            );
        }
        let Some(url) = &st.url else {
            self.err(
                Some(raw.span()),
                "state.url",
                "[state] needs a url".into(),
                Some("e.g. url = \"postgres://maildns@db.example.net:5432/maildns\"; without [state] the state stays in the embedded SQLite store in state_dir"),
            );
            return None;
        };
        let text = url.get_ref();
        if !self.postgres_url(
            url,
            "state.url",
            "\"postgres://maildns@db.example.net:5432/maildns\"",
            "remove it from the URL and use the environment variable MAILDNS_STATE_PASSWORD, $CREDENTIALS_DIRECTORY/state-password, `maildns secret set state-password`, or state.password_file (mode 0600)",
        ) {
            return None;
        }
        self.named(&[
            ("state.password_env", &st.password_env),
            ("state.password_file", &st.password_file),
        ]);
        let replica_id = st.replica_id.as_ref().and_then(|r| {
            let t = r.get_ref().trim();
            if t.is_empty() || t.len() > 200 || t.chars().any(char::is_control) {
                self.err(
                    Some(r.span()),
                    "state.replica_id",
                    "a replica id is 1 to 200 printable characters".into(),
                    Some("leave it out to use hostname:pid"),
                );
                None
            } else {
                Some(t.to_string())
            }
        });
        Some(SharedState {
            url: text.clone(),
            password_env: st
                .password_env
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| "MAILDNS_STATE_PASSWORD".into()),
            password_file: st.password_file.as_ref().map(|s| self.path_of(s.get_ref())),
            replica_id,
            lease: self.positive_duration(&st.lease, "state.lease", Duration::from_secs(60)),
        })
    }

    /// Whether `url` is a `postgres://` URL PostgreSQL's driver accepts, without
    /// a password; otherwise records the error under `key` (never echoing a
    /// password: a URL holding one is not shown).
    fn postgres_url(
        &mut self,
        url: &Spanned<String>,
        key: &str,
        example: &str,
        password_hint: &str,
    ) -> bool {
        let text = url.get_ref();
        let problem = if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            Some((
                "not a postgres:// URL (the value is not repeated: it may hold a password)".into(),
                format!("e.g. {example}"),
            ))
        } else {
            // sslmode/sslrootcert with libpq's values (the driver knows fewer).
            match crate::rotation::store::tls::PgTls::split_url(text)
                .map_err(|e| e.to_string())
                .and_then(|(rest, _)| {
                    rest.parse::<tokio_postgres::Config>()
                        .map_err(|e| e.to_string())
                }) {
                Err(e) => Some((
                    format!(
                        "not a valid PostgreSQL URL: {}",
                        crate::quote::debug_escapes_to_ddd(&e)
                    ),
                    format!("e.g. {example}"),
                )),
                Ok(c) if c.get_password().is_some() => Some((
                    "the URL holds a password; passwords do not belong in the configuration file"
                        .into(),
                    password_hint.to_string(),
                )),
                Ok(_) => None,
            }
        };
        match problem {
            Some((message, hint)) => {
                self.err(Some(url.span()), key, message, Some(&hint));
                false
            }
            None => true,
        }
    }

    /// The `kind = "opendkim-sql"` settings of `[signer]` (`None` after an
    /// error, recorded with its file:line:key).
    fn sql_signer(&mut self, s: &Spanned<RawSigner>) -> Option<SqlSigner> {
        const PASSWORD_HINT: &str = "use the environment variable MAILDNS_SIGNER_PASSWORD, $CREDENTIALS_DIRECTORY/signer-password, `maildns secret set signer-password`, or signer.password_file (mode 0600)";
        let r = s.get_ref();
        if let Some(v) = &r.password {
            self.err(
                Some(v.span()),
                "signer.password",
                "the signer database's password does not belong in the configuration file".into(),
                Some(PASSWORD_HINT),
            );
        }
        for (key, v) in [
            ("signer.config", r.config.as_ref().map(Spanned::span)),
            (
                "signer.reload_command",
                r.reload_command.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = v {
                self.err(
                    Some(span),
                    key,
                    "not used with kind = \"opendkim-sql\": OpenDKIM reads dsn: tables at every message, no reload is needed".into(),
                    Some("remove it"),
                );
            }
        }
        let Some(url) = &r.url else {
            self.err(
                Some(s.span()),
                "signer.url",
                "kind = \"opendkim-sql\" needs the url of the database OpenDKIM reads".into(),
                Some("e.g. url = \"postgres://maildns@db.example.net:5432/dkim\""),
            );
            return None;
        };
        let text = url.get_ref();
        if !self.postgres_url(
            url,
            "signer.url",
            "\"postgres://maildns@db.example.net:5432/dkim\"",
            PASSWORD_HINT,
        ) {
            return None;
        }
        self.named(&[
            ("signer.password_env", &r.password_env),
            ("signer.password_file", &r.password_file),
        ]);
        let mut tables = crate::signer::SqlTables::default();
        let mut name = |v: &Option<Spanned<String>>, key: &str, slot: &mut String| {
            if let Some(v) = v {
                if crate::signer::SqlTables::valid_name(v.get_ref()) {
                    *slot = v.get_ref().clone();
                } else {
                    self.err(
                        Some(v.span()),
                        key,
                        format!("'{}' is not a plain lower-case SQL name", v.get_ref()),
                        Some("letters a-z, digits and '_' (optionally schema.table): OpenDKIM's dsn: syntax allows no ':', '/', '@', '+', '?' or '=', and PostgreSQL folds unquoted names to lower case"),
                    );
                }
            }
        };
        name(&r.key_table, "signer.key_table", &mut tables.key_table);
        name(
            &r.signing_table,
            "signer.signing_table",
            &mut tables.signing_table,
        );
        if let Some(c) = &r.columns {
            let c = c.get_ref();
            name(&c.key_id, "signer.columns.key_id", &mut tables.key_id);
            name(&c.domain, "signer.columns.domain", &mut tables.domain);
            name(&c.selector, "signer.columns.selector", &mut tables.selector);
            name(
                &c.private_key,
                "signer.columns.private_key",
                &mut tables.private_key,
            );
            name(&c.pattern, "signer.columns.pattern", &mut tables.pattern);
            name(
                &c.signing_key,
                "signer.columns.signing_key",
                &mut tables.signing_key,
            );
        }
        let mut sockets = Vec::new();
        for spec in r.sockets.iter().flat_map(|v| v.get_ref()) {
            match crate::signer::MilterSocket::parse(spec.get_ref()) {
                Ok(sock) => sockets.push(sock),
                Err(e) => self.err(
                    Some(spec.span()),
                    "signer.sockets",
                    format!("'{}': {e}", spec.get_ref()),
                    Some("OpenDKIM's Socket syntax: inet:PORT@HOST or local:/path"),
                ),
            }
        }
        Some(SqlSigner {
            url: text.clone(),
            password_env: r
                .password_env
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| "MAILDNS_SIGNER_PASSWORD".into()),
            password_file: r.password_file.as_ref().map(|p| self.path_of(p.get_ref())),
            sockets,
            tables,
        })
    }

    fn account(&mut self, name: &str, acc: &Spanned<RawAccount>) -> Option<Account> {
        let key = format!("accounts.{name}");
        let a = acc.get_ref();
        // The keyring and $CREDENTIALS_DIRECTORY name an account's token by the
        // account's name: these names are the shared store's and signer's
        // passwords, so an account of that name would share their entry.
        if super::RESERVED_CREDENTIALS.contains(&name) {
            self.err(
                Some(acc.span()),
                &key,
                format!("'{name}' is the name of a password maildns reads, not an account name"),
                Some("rename the account"),
            );
        }
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
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.get_ref().clone());
        let flag = |v: &Option<Spanned<bool>>| v.as_ref().map(|v| *v.get_ref());
        let settings = Settings {
            zones: Vec::new(),
            path: a.path.as_ref().map(|p| self.path_of(p.get_ref())),
            bump_serial: flag(&a.bump_serial),
            base_url: text(&a.base_url),
            server_id: text(&a.server_id),
            server: a
                .server
                .as_ref()
                .and_then(|s| self.addr(s, &format!("{key}.server"), 53)),
            key_name: text(&a.key_name),
            algorithm,
            project: text(&a.project),
            wait_insync: flag(&a.wait_insync),
            command: self.program(&a.command, &format!("{key}.command")),
            timeout: a.timeout.as_ref().map(|_| {
                self.positive_duration(
                    &a.timeout,
                    &format!("{key}.timeout"),
                    maildns_providers::hosts::exec::DEFAULT_TIMEOUT,
                )
            }),
            atomic: flag(&a.atomic),
            compare_and_swap: flag(&a.compare_and_swap),
            value_form: a
                .value_form
                .as_ref()
                .and_then(|v| match v.get_ref().parse() {
                    Ok(f) => Some(f),
                    Err(m) => {
                        self.err(Some(v.span()), &format!("{key}.value_form"), m, None);
                        None
                    }
                }),
            notify: self.program(&a.notify, &format!("{key}.notify")),
            tenant_id: text(&a.tenant_id),
            client_id: text(&a.client_id),
            subscription_id: text(&a.subscription_id),
            resource_group: text(&a.resource_group),
            token_url: text(&a.token_url),
            application_key: text(&a.application_key),
            endpoint: text(&a.endpoint),
            customer_number: text(&a.customer_number),
            account_id: a.account_id.as_ref().map(|v| match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            api_user: text(&a.api_user),
            username: text(&a.username),
            client_ip: text(&a.client_ip),
            replace_whole_host_list: flag(&a.replace_whole_host_list),
        };
        if host.accepts("path") {
            let before = self.errors.len();
            self.named(&[(&format!("{key}.path"), &a.path)]);
            complete &= self.errors.len() == before;
        }
        let given = a.given();
        // A setting this host does not read would be silently ignored: say whose it is.
        for (field, span) in &given {
            if !host.accepts(field) {
                let owners: Vec<&str> = registry::accepting(field).collect();
                self.err(
                    Some(span.clone()),
                    &format!("{key}.{field}"),
                    format!("provider '{code}' does not use {field}"),
                    Some(&format!(
                        "{field} is a setting of {}; remove it, or check provider",
                        owners.join(", ")
                    )),
                );
                complete = false;
            }
        }
        if host.credential == CredentialKind::Secret {
            let before = self.errors.len();
            self.named(&[
                (&format!("{key}.token_env"), &a.token_env),
                (&format!("{key}.token_file"), &a.token_file),
            ]);
            complete &= self.errors.len() == before;
        } else {
            for (field, v) in [("token_env", &a.token_env), ("token_file", &a.token_file)] {
                if let Some(v) = v {
                    self.err(
                        Some(v.span()),
                        &format!("{key}.{field}"),
                        format!("provider '{code}' takes no secret credential, so {field} is not used"),
                        Some(match host.credential {
                            CredentialKind::Aws => "remove it: route53 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials (AWS_PROFILE)",
                            _ => "remove it",
                        }),
                    );
                    complete = false;
                }
            }
        }
        // Values the host would refuse when connecting, reported now with their place.
        for problem in host.problems(&settings) {
            let span = given
                .iter()
                .find(|(f, _)| *f == problem.key)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| acc.span());
            self.err(
                Some(span),
                &format!("{key}.{}", problem.key),
                problem.message,
                None,
            );
            complete = false;
        }
        complete &= settings.server.is_some() || a.server.is_none();
        for r in host.required {
            // A server that did not parse has been reported already.
            let given = settings.is_set(r.key)
                || (r.key == "server" && a.server.is_some())
                || (r.key == "command" && a.command.is_some());
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

    pub(super) fn domain(
        &mut self,
        name: &Spanned<String>,
        d: &Spanned<RawDomain>,
        written: &BTreeMap<String, Spanned<RawAccount>>,
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
        // An account that is written but invalid has had its own errors reported.
        if !written.contains_key(&account) && !self.unread_accounts.contains(&account) {
            let known: Vec<&str> = written.keys().map(String::as_str).collect();
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
        let nameservers: Vec<SocketAddr> = raw
            .nameservers
            .iter()
            .filter_map(|n| self.addr(n, &format!("{key}.nameservers"), 53))
            .collect();
        let nameservers = match self.nameserver_lists.get(&nameservers[..]) {
            Some(list) => list.clone(),
            None => {
                let list: std::sync::Arc<[SocketAddr]> = nameservers.into();
                self.nameserver_lists.insert(list.clone());
                list
            }
        };
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
        let dkim = raw
            .dkim
            .as_ref()
            .and_then(|k| self.dkim(&key, k))
            .map(Box::new);
        let lint = raw
            .lint
            .as_ref()
            .map(|l| Box::new(self.lint_waiver(&key, l)));
        // (A file of more than 4 billion lines gives no line.)
        let at = |offset: usize| u32::try_from(self.lines.line(offset)).ok();
        let line = |s: &Option<Spanned<String>>| s.as_ref().and_then(|s| at(s.span().start));
        let source = DomainSource {
            key: key.clone(),
            line: at(name.span().start),
            spf: line(&raw.spf),
            dmarc: line(&raw.dmarc),
            adsp: line(&raw.adsp),
            ttl: raw.ttl.as_ref().and_then(|t| at(t.span().start)),
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

    /// The `kind = "rspamd"` settings of `[signer]` (`None` after an error,
    /// recorded with its file:line:key).
    fn rspamd_signer(&mut self, s: &Spanned<RawSigner>) -> Option<RspamdSigner> {
        const PASSWORD_HINT: &str = "use the environment variable MAILDNS_SIGNER_PASSWORD, $CREDENTIALS_DIRECTORY/signer-password, the OS keyring entry signer-password, or signer.password_file (mode 0600)";
        const CONTROLLER_HINT: &str = "use the environment variable MAILDNS_RSPAMD_CONTROLLER_PASSWORD, $CREDENTIALS_DIRECTORY/rspamd-controller-password, the OS keyring entry rspamd-controller-password, or signer.controller_password_file (mode 0600)";
        let r = s.get_ref();
        for (key, v, hint) in [
            ("signer.password", &r.password, PASSWORD_HINT),
            (
                "signer.controller_password",
                &r.controller_password,
                CONTROLLER_HINT,
            ),
        ] {
            if let Some(v) = v {
                self.err(
                    Some(v.span()),
                    key,
                    "passwords do not belong in the configuration file".into(),
                    Some(hint),
                );
            }
        }
        for (key, span) in [
            ("signer.config", r.config.as_ref().map(Spanned::span)),
            ("signer.sockets", r.sockets.as_ref().map(Spanned::span)),
            ("signer.columns", r.columns.as_ref().map(Spanned::span)),
            ("signer.key_table", r.key_table.as_ref().map(Spanned::span)),
            (
                "signer.signing_table",
                r.signing_table.as_ref().map(Spanned::span),
            ),
            (
                "signer.reload_command",
                r.reload_command.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = span {
                self.err(
                    Some(span),
                    key,
                    "not used with kind = \"rspamd\": rspamd reads keys and selectors from Redis at every message, there are no tables to edit and nothing to reload".into(),
                    Some("remove it"),
                );
            }
        }
        let url = match &r.url {
            None => {
                self.err(
                    Some(s.span()),
                    "signer.url",
                    "kind = \"rspamd\" needs the url of the Redis rspamd reads its DKIM keys from"
                        .into(),
                    Some("e.g. url = \"redis://127.0.0.1:6379/0\""),
                );
                None
            }
            Some(url) => match reqwest::Url::parse(url.get_ref()) {
                Ok(u) if u.password().is_some() || query_password(&u) => {
                    // Never echo the URL: it holds the password.
                    self.err(
                        Some(url.span()),
                        "signer.url",
                        "the URL holds a password; passwords do not belong in the configuration file".into(),
                        Some(PASSWORD_HINT),
                    );
                    None
                }
                Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {
                    Some(url.get_ref().clone())
                }
                _ => {
                    self.err(
                        Some(url.span()),
                        "signer.url",
                        "not a redis:// URL (the value is not repeated: it may hold a password)"
                            .into(),
                        Some("e.g. \"redis://127.0.0.1:6379/0\""),
                    );
                    None
                }
            },
        };
        self.named(&[
            ("signer.password_env", &r.password_env),
            ("signer.password_file", &r.password_file),
            ("signer.controller_password_env", &r.controller_password_env),
            (
                "signer.controller_password_file",
                &r.controller_password_file,
            ),
        ]);
        let mut controllers = Vec::new();
        for c in r.controllers.iter().flat_map(|c| c.get_ref()) {
            match reqwest::Url::parse(c.get_ref()) {
                Ok(u) if u.password().is_some() || !u.username().is_empty() || query_password(&u) => self.err(
                    Some(c.span()),
                    "signer.controllers",
                    "a controller URL holds credentials; passwords do not belong in the configuration file".into(),
                    Some(CONTROLLER_HINT),
                ),
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    controllers.push(c.get_ref().clone());
                }
                _ => self.err(
                    Some(c.span()),
                    "signer.controllers",
                    "not an http:// or https:// URL (the value is not repeated: it may hold a password)".into(),
                    Some("rspamd's controller worker, e.g. \"http://127.0.0.1:11334\""),
                ),
            }
        }
        let name = |v: &Option<Spanned<String>>,
                    key: &'static str,
                    default: &str,
                    me: &mut Self| {
            match v {
                Some(n) if n.get_ref().trim().is_empty() => {
                    me.err(Some(n.span()), key, "empty hash name".into(), Some(default));
                    default.to_string()
                }
                Some(n) => n.get_ref().clone(),
                None => default.to_string(),
            }
        };
        let key_hash = name(&r.key_hash, "signer.key_hash", "DKIM_KEYS", self);
        let selector_hash = name(
            &r.selector_hash,
            "signer.selector_hash",
            "DKIM_SELECTORS",
            self,
        );
        let env = |v: &Option<Spanned<String>>, default: &str| {
            v.as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| default.into())
        };
        Some(RspamdSigner {
            url: url?,
            password_env: env(&r.password_env, "MAILDNS_SIGNER_PASSWORD"),
            password_file: r.password_file.as_ref().map(|p| self.path_of(p.get_ref())),
            key_hash,
            selector_hash,
            controllers,
            controller_password_env: env(
                &r.controller_password_env,
                "MAILDNS_RSPAMD_CONTROLLER_PASSWORD",
            ),
            controller_password_file: r
                .controller_password_file
                .as_ref()
                .map(|p| self.path_of(p.get_ref())),
        })
    }

    /// `[signer]`; `None` when its kind is unknown (that one error is
    /// reported: the settings of a kind not known are not checked).
    fn signer(&mut self, s: &Spanned<RawSigner>, state_dir: &Path) -> Option<Signer> {
        let r = s.get_ref();
        let kind = match r.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None | Some(("opendkim", _)) => "opendkim",
            Some(("opendkim-sql", _)) => "opendkim-sql",
            Some(("rspamd", _)) => "rspamd",
            Some((other, span)) => {
                self.err(
                    Some(span),
                    "signer.kind",
                    format!("unknown signer '{other}'"),
                    Some("\"opendkim\" (file tables, the default), \"opendkim-sql\" (dsn: tables on PostgreSQL) or \"rspamd\" (keys and selectors in Redis)"),
                );
                return None;
            }
        };
        let (sql_kind, rspamd_kind) = (kind == "opendkim-sql", kind == "rspamd");
        let rspamd = if rspamd_kind {
            self.rspamd_signer(s)
        } else {
            for (key, span) in [
                (
                    "signer.controllers",
                    r.controllers.as_ref().map(Spanned::span),
                ),
                ("signer.key_hash", r.key_hash.as_ref().map(Spanned::span)),
                (
                    "signer.selector_hash",
                    r.selector_hash.as_ref().map(Spanned::span),
                ),
                (
                    "signer.controller_password_env",
                    r.controller_password_env.as_ref().map(Spanned::span),
                ),
                (
                    "signer.controller_password_file",
                    r.controller_password_file.as_ref().map(Spanned::span),
                ),
                (
                    "signer.controller_password",
                    r.controller_password.as_ref().map(Spanned::span),
                ),
            ] {
                if let Some(span) = span {
                    self.err(
                        Some(span),
                        key,
                        "only for kind = \"rspamd\"".into(),
                        Some("set kind = \"rspamd\" for keys and selectors in Redis, or remove it"),
                    );
                }
            }
            None
        };
        let sql = if sql_kind {
            self.sql_signer(s)
        } else if rspamd_kind {
            None
        } else {
            for (key, v) in [
                ("signer.url", r.url.as_ref().map(Spanned::span)),
                (
                    "signer.password_env",
                    r.password_env.as_ref().map(Spanned::span),
                ),
                (
                    "signer.password_file",
                    r.password_file.as_ref().map(Spanned::span),
                ),
                ("signer.sockets", r.sockets.as_ref().map(Spanned::span)),
                ("signer.columns", r.columns.as_ref().map(Spanned::span)),
                ("signer.password", r.password.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = v {
                    self.err(
                        Some(span),
                        key,
                        "only for kind = \"opendkim-sql\"".into(),
                        Some("set kind = \"opendkim-sql\" for dsn: tables on PostgreSQL, or remove it"),
                    );
                }
            }
            for (key, v) in [
                ("signer.key_dir", &r.key_dir),
                ("signer.key_table", &r.key_table),
                ("signer.signing_table", &r.signing_table),
            ] {
                self.named(&[(key, v)]);
                if v.is_none() {
                    self.err(
                        Some(s.span()),
                        key,
                        "missing: OpenDKIM's file tables need key_dir, key_table and signing_table".into(),
                        Some("e.g. key_dir = \"/etc/opendkim/keys\", key_table = \"/etc/opendkim/key.table\", signing_table = \"/etc/opendkim/signing.table\""),
                    );
                }
            }
            None
        };
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
            // The program must be there to run: by its path, or a bare name
            // in PATH (as the reload will look it up), checked as the
            // programs of accounts are.
            if let Some(p) = c.get_ref().first()
                && let Some(problem) = program_problem(p, Lookup::AlsoPath)
            {
                self.err(
                    Some(c.span()),
                    "signer.reload_command",
                    problem,
                    Some("give the absolute path of an executable file, or a program in PATH"),
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
        if confirm == SignerConfirm::Probe
            && rspamd.as_ref().is_some_and(|c| c.controllers.is_empty())
            && r.controllers
                .as_ref()
                .is_none_or(|c| c.get_ref().is_empty())
        {
            self.err(
                Some(r.controllers.as_ref().map_or(s.span(), Spanned::span)),
                "signer.controllers",
                "a switch is proven by a probe through every rspamd's controller: no controller is listed".into(),
                Some("set controllers = [\"http://127.0.0.1:11334\"] (one per MTA), or confirm = \"tables-only\" if rspamd cannot be probed"),
            );
        }
        if confirm == SignerConfirm::Probe && r.config.is_none() && kind == "opendkim" {
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
        if let Some(sql) = &sql
            && confirm == SignerConfirm::Probe
            && sql.sockets.is_empty()
        {
            self.err(
                Some(r.sockets.as_ref().map_or(s.span(), Spanned::span)),
                "signer.sockets",
                "a switch is proven by a probe through every MTA's OpenDKIM: no milter socket is listed".into(),
                Some("list each OpenDKIM's Socket, e.g. sockets = [\"inet:8891@mx1.example.net\", \"inet:8891@mx2.example.net\"], or set confirm = \"tables-only\""),
            );
        }
        if kind == "opendkim" {
            self.named(&[("signer.config", &r.config)]);
        } else {
            self.named(&[("signer.key_dir", &r.key_dir)]);
        }
        let path = |v: &Option<Spanned<String>>| {
            v.as_ref()
                .map(|p| self.path_of(p.get_ref()))
                .unwrap_or_default()
        };
        let key_dir = match (&r.key_dir, sql.is_some() || rspamd_kind) {
            (None, true) => state_dir.join("keys"),
            _ => path(&r.key_dir),
        };
        let (key_table, signing_table) = if sql.is_some() || rspamd_kind {
            (PathBuf::new(), PathBuf::new())
        } else {
            (path(&r.key_table), path(&r.signing_table))
        };
        Some(Signer {
            sql,
            rspamd,
            confirm,
            probe_interval,
            probe_timeout,
            line: Some(self.lines.line(s.span().start)),
            config: r.config.as_ref().map(|c| self.path_of(c.get_ref())),
            key_dir,
            key_table,
            signing_table,
            user: r.user.clone().unwrap_or_else(|| "opendkim".into()),
            reload_command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Lines, line_of};
    use crate::config::{ConfigErrors, parse};
    use std::path::Path;

    fn errors(text: &str) -> ConfigErrors {
        match parse(text, Path::new("/etc/maildns/maildns.toml")) {
            Ok(_) => panic!("loaded: {text}"),
            Err(e) => e,
        }
    }

    fn located(e: &ConfigErrors) -> Vec<(Option<usize>, &str)> {
        e.0.iter().map(|e| (e.line, e.key.as_str())).collect()
    }

    /// From a user trial: three mistakes (a type error, an unknown key, a
    /// second unknown key in the same table) in three places are all
    /// reported in one run, each with its line and key, and the rest of the
    /// file is still validated (the bad SPF of a domain that read).
    #[test]
    fn every_type_error_and_unknown_key_is_reported_at_once() {
        let text = r#"state_dir = "state"

[accounts.pdns]
provider = "powerdns"
base_url = "http://127.0.0.1:8081/api/v1"
server_id = 5

[domains."example.com"]
acount = "pdns"
account = "pdns"
ttll = 300
spf = "v=spf1 -all"

[domains."example.org"]
account = "pdns"
spf = "v=spf1 bogus -all"

[domains."example.net"]
account = "pdns"
ttl = "1h"

[publish]
max_delete_share = "half"
"#;
        let e = errors(text);
        assert_eq!(
            located(&e),
            [
                (Some(6), "accounts.pdns.server_id"),
                (Some(9), "domains.\"example.com\".acount"),
                (Some(11), "domains.\"example.com\".ttll"),
                (Some(16), "domains.\"example.org\".spf"),
                (Some(20), "domains.\"example.net\".ttl"),
                (Some(23), "publish.max_delete_share"),
            ],
            "{e}"
        );
        let s = e.to_string();
        assert!(
            s.contains("/etc/maildns/maildns.toml:6: accounts.pdns.server_id: invalid type: integer `5`, expected a string"),
            "{s}"
        );
        assert!(
            s.contains("maildns.toml:11: domains.\"example.com\".ttll: unknown field `ttll`, expected one of `account`"),
            "{s}"
        );
    }

    /// An account that did not read is not reported missing by the domains
    /// naming it; a domain that did not read does not make "no domains".
    #[test]
    fn no_follow_on_errors_from_parts_that_did_not_read() {
        let e = errors(
            "[accounts.a]\nprovider = 7\n[domains.\"example.com\"]\naccount = \"a\"\n[domains.\"example.org\"]\naccount = []\n",
        );
        assert_eq!(
            located(&e),
            [
                (Some(2), "accounts.a.provider"),
                (Some(6), "domains.\"example.org\".account"),
            ],
            "{e}"
        );
    }

    const DOMAIN: &str = "[accounts.z]\nprovider = \"zonefile\"\npath = \"z.zone\"\n[domains.\"example.com\"]\naccount = \"z\"\nspf = \"v=spf1 -all\"\n";

    /// From a user trial: an unknown signer kind is one error naming the
    /// accepted kinds, without follow-on errors about another kind's keys.
    #[test]
    fn an_unknown_signer_kind_is_one_error() {
        let e = errors(&format!(
            "{DOMAIN}[signer]\nkind = \"postfix\"\nurl = \"postgres://db/x\"\nprobe_interval = \"0s\"\n"
        ));
        assert_eq!(located(&e), [(Some(8), "signer.kind")], "{e}");
        let s = e.to_string();
        assert!(s.contains("unknown signer 'postfix'"), "{s}");
        for kind in ["\"opendkim\"", "\"opendkim-sql\"", "\"rspamd\""] {
            assert!(s.contains(kind), "{kind}: {s}");
        }
    }

    /// Every environment variable name and path of the state store and the
    /// signers: empty is an error at its file:line:key.
    #[test]
    fn empty_names_and_paths_are_errors() {
        let e = errors(&format!(
            "state_dir = \"\"\n{DOMAIN}[state]\nurl = \"postgres://db/x\"\npassword_env = \"\"\npassword_file = \"\"\n[signer]\nkind = \"rspamd\"\nurl = \"redis://127.0.0.1/0\"\nconfirm = \"tables-only\"\ncontroller_password_env = \" \"\ncontroller_password_file = \"\"\nkey_dir = \"\"\n"
        ));
        let mut got = located(&e);
        got.sort();
        assert_eq!(
            got,
            [
                (Some(1), "state_dir"),
                (Some(10), "state.password_env"),
                (Some(11), "state.password_file"),
                (Some(16), "signer.controller_password_env"),
                (Some(17), "signer.controller_password_file"),
                (Some(18), "signer.key_dir"),
            ],
            "{e}"
        );
        let e = errors(&format!(
            "{DOMAIN}[signer]\nconfig = \"\"\nkey_dir = \"/k\"\nkey_table = \"\"\nsigning_table = \"/st\"\n"
        ));
        assert_eq!(
            located(&e),
            [(Some(8), "signer.config"), (Some(10), "signer.key_table")],
            "{e}"
        );
        let e = errors(&format!(
            "{DOMAIN}[signer]\nkind = \"opendkim-sql\"\nurl = \"postgres://db/x\"\nsockets = [\"inet:1@h\"]\npassword_env = \"\"\n"
        ));
        assert_eq!(located(&e), [(Some(11), "signer.password_env")], "{e}");
    }

    /// A reload program must be runnable: named by its absolute path, an
    /// executable file there; a bare name, an executable file in PATH.
    #[test]
    fn a_reload_program_must_be_runnable() {
        let signer = |cmd: &str| {
            format!(
                "{DOMAIN}[signer]\nconfirm = \"tables-only\"\nkey_dir = \"/k\"\nkey_table = \"/kt\"\nsigning_table = \"/st\"\nreload_command = {cmd}\n"
            )
        };
        let e = errors(&signer("[\"/nonexistent/reload-opendkim\"]"));
        assert_eq!(located(&e), [(Some(12), "signer.reload_command")], "{e}");
        assert!(
            e.to_string()
                .contains("the program '/nonexistent/reload-opendkim' does not exist"),
            "{e}"
        );
        let e = errors(&signer("[\"opendkim-reload-x\"]"));
        assert_eq!(located(&e), [(Some(12), "signer.reload_command")], "{e}");
        assert!(
            e.to_string()
                .contains("the program 'opendkim-reload-x' is not found in PATH ("),
            "{e}"
        );
        let e = errors(&signer("[\"bin/reload\"]"));
        assert!(
            e.to_string().contains(
                "the program 'bin/reload' must be an absolute path or a program name found in PATH"
            ),
            "{e}"
        );
        for ok in [
            "[\"/bin/sh\", \"-c\", \"true\"]",
            "[\"sh\", \"-c\", \"true\"]",
        ] {
            assert!(
                parse(&signer(ok), Path::new("/etc/maildns/maildns.toml")).is_ok(),
                "{ok}"
            );
        }
    }

    /// Every syntax error is reported, not only the first.
    #[test]
    fn syntax_errors_are_all_reported() {
        let e = errors("a = \n[domains.\"x\"]\naccount = \"a\"\nb = = 1\n");
        let lines: Vec<Option<usize>> = e.0.iter().map(|e| e.line).collect();
        assert!(lines.contains(&Some(1)) && lines.contains(&Some(4)), "{e}");
    }

    /// The expected keys of an unknown-field message name only keys a user
    /// should write: never a refused secret key, and for an account only
    /// the keys its provider reads.
    #[test]
    fn expected_keys_name_only_keys_to_write() {
        let e = errors(
            "[accounts.nc]\nprovider = \"namecheap\"\nusername = \"u\"\nuser = \"u\"\n[domains.\"example.com\"]\naccount = \"nc\"\n",
        );
        // Line 1's missing settings, then line 4's unknown key.
        let s = e.0[2].to_string();
        assert_eq!(e.0[2].key, "accounts.nc.user", "{e}");
        assert!(s.contains("unknown field `user`, expected one of `provider`, `api_user`, `client_ip`, `username`, `replace_whole_host_list`, `base_url`, `token_env`, `token_file`"), "{s}");
        for refused in ["`token`", "`secret`", "`api_key`", "`path`", "`server_id`"] {
            assert!(!s.contains(refused), "{refused} offered: {s}");
        }
        let e = errors(
            "[accounts.p]\nprovider = \"powerdns\"\nbase_url = \"http://127.0.0.1:1/api/v1\"\n[domains.\"example.com\"]\naccount = \"p\"\n[state]\nurl = \"postgres://db/x\"\npasword = \"x\"\n[signer]\nkind = \"rspamd\"\ncontroler_password = 1\n",
        );
        let s = e.to_string();
        assert!(s.contains("state.pasword: unknown field `pasword`, expected one of `url`, `password_env`, `password_file`, `replica_id`, `lease`"), "{s}");
        assert!(
            s.contains("signer.controler_password: unknown field"),
            "{s}"
        );
        assert!(
            !s.contains("`password`") && !s.contains("`controller_password`"),
            "{s}"
        );
    }

    #[test]
    fn line_index_names_the_same_line_as_counting_from_the_start() {
        let text = "a = 1\n\n[domains.\"x\"]\nspf = \"v=spf1 -all\"\nlast";
        let lines = Lines::of(text);
        for offset in 0..=text.len() + 3 {
            assert_eq!(lines.line(offset), line_of(text, offset), "offset {offset}");
        }
        assert_eq!(lines.line(text.find("spf").unwrap()), 4);
        assert_eq!(Lines::of("").line(0), 1);
    }
}

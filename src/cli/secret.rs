//! `maildns secret set|get|delete ACCOUNT`: an account's credential in the OS
//! keyring, and where the lookup finds it.
//!
//! `set` reads the token from stdin, never from the command line (arguments show
//! in `ps` and shell history); on a terminal it prompts with echo off. `get` says
//! whether and where the credential is found, and prints it only with `--show`.

use std::io::{BufRead, IsTerminal, Read, Write};

use serde::Serialize;
use zeroize::Zeroizing;

use super::Cli;
use super::common::{Coded, Exit, load_config, print_json};
use std::path::PathBuf;

use crate::config::{
    Account, Config, RESERVED_CREDENTIALS, RSPAMD_CONTROLLER_PASSWORD_CREDENTIAL,
    SIGNER_PASSWORD_CREDENTIAL, STATE_PASSWORD_CREDENTIAL,
};
use crate::secrets::{self, SecretError, SecretSpec, Source};
use maildns_providers::Secret;

/// What to do with the credential.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Op {
    /// Store ACCOUNT's token (or a password maildns reads) in the OS keyring;
    /// it is read from stdin
    Set {
        /// The account, as named in maildns.toml, or `state-password`,
        /// `signer-password`, `rspamd-controller-password`
        account: String,
    },
    /// Say whether and where ACCOUNT's credential is found (not the value)
    Get {
        /// The account, as named in maildns.toml, or `state-password`,
        /// `signer-password`, `rspamd-controller-password`
        account: String,
        /// Also print the credential itself
        #[arg(long)]
        show: bool,
    },
    /// Remove ACCOUNT's token (or a password maildns reads) from the OS keyring
    Delete {
        /// The account, as named in maildns.toml, or `state-password`,
        /// `signer-password`, `rspamd-controller-password`
        account: String,
    },
}

/// Whose credential a `secret` command handles: an account's token (by the
/// account's name), or one of the passwords maildns reads under a fixed
/// credential name (`state-password`, `signer-password`,
/// `rspamd-controller-password`; see [`RESERVED_CREDENTIALS`]).
struct Target {
    /// The keyring entry and `$CREDENTIALS_DIRECTORY` file name.
    name: String,
    /// "account" or "credential", for messages.
    what: &'static str,
    /// "token" or "password", for messages.
    noun: &'static str,
    /// The environment variable read first.
    env: String,
    /// The file read last, when configured.
    file: Option<PathBuf>,
    /// The configuration key that names such a file, for hints.
    file_key: String,
}

impl Target {
    fn account(a: &Account) -> Target {
        Target {
            name: a.name.clone(),
            what: "account",
            noun: "token",
            env: a.credential.env.clone(),
            file: a.credential.token_file.clone(),
            file_key: format!("token_file = \"/path\" in [accounts.{}]", a.name),
        }
    }

    fn password(name: &str, env: &str, file: Option<&PathBuf>, file_key: &str) -> Target {
        Target {
            name: name.to_string(),
            what: "credential",
            noun: "password",
            env: env.to_string(),
            file: file.cloned(),
            file_key: file_key.to_string(),
        }
    }
}

fn target(config: &Config, name: &str) -> anyhow::Result<Target> {
    if let Some(a) = config.accounts.get(name) {
        return Ok(Target::account(a));
    }
    let signer = config.signer.as_ref();
    let sql = signer.and_then(|s| s.sql.as_ref());
    let rspamd = signer.and_then(|s| s.rspamd.as_ref());
    // Without the section that reads it, the password still has its default
    // variable: it may be stored before the section is written.
    match name {
        STATE_PASSWORD_CREDENTIAL => {
            let state = config.state.as_ref();
            return Ok(Target::password(
                name,
                state.map_or("MAILDNS_STATE_PASSWORD", |s| s.password_env.as_str()),
                state.and_then(|s| s.password_file.as_ref()),
                "password_file = \"/path\" in [state]",
            ));
        }
        SIGNER_PASSWORD_CREDENTIAL => {
            let (env, file) = match (sql, rspamd) {
                (Some(s), _) => (s.password_env.as_str(), s.password_file.as_ref()),
                (None, Some(r)) => (r.password_env.as_str(), r.password_file.as_ref()),
                (None, None) => ("MAILDNS_SIGNER_PASSWORD", None),
            };
            return Ok(Target::password(
                name,
                env,
                file,
                "password_file = \"/path\" in [signer]",
            ));
        }
        RSPAMD_CONTROLLER_PASSWORD_CREDENTIAL => {
            return Ok(Target::password(
                name,
                rspamd.map_or("MAILDNS_RSPAMD_CONTROLLER_PASSWORD", |r| {
                    r.controller_password_env.as_str()
                }),
                rspamd.and_then(|r| r.controller_password_file.as_ref()),
                "controller_password_file = \"/path\" in [signer]",
            ));
        }
        _ => {}
    }
    let known: Vec<&str> = config.accounts.keys().map(String::as_str).collect();
    Err(Coded {
        code: Exit::DataErr,
        message: format!(
            "unknown account '{name}'; accounts in {}: {}; passwords: {}",
            config.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
            RESERVED_CREDENTIALS.join(", ")
        ),
    }
    .into())
}

fn failure(message: String) -> anyhow::Error {
    Coded {
        code: Exit::Failure,
        message,
    }
    .into()
}

/// Alternatives to the keyring, for error messages.
fn alternatives(t: &Target) -> String {
    format!(
        "alternatives: the environment variable {}, a file $CREDENTIALS_DIRECTORY/{} (systemd LoadCredential=, best for the daemon), or {} (mode 0600)",
        t.env, t.name, t.file_key
    )
}

pub(super) async fn run(cli: &Cli, op: &Op) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    match op {
        Op::Set { account: name } => set(cli, &target(&config, name)?),
        Op::Get {
            account: name,
            show,
        } => get(cli, &target(&config, name)?, *show),
        Op::Delete { account: name } => delete(cli, &target(&config, name)?),
    }
}

/// Restores the terminal's echo when dropped.
struct EchoOff {
    saved: nix::sys::termios::Termios,
}

impl EchoOff {
    fn new() -> nix::Result<EchoOff> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Reads the token: one line from a terminal with echo off, or all of stdin
/// otherwise; one trailing newline is stripped.
fn read_token(t: &Target) -> anyhow::Result<Zeroizing<String>> {
    let account = &t.name;
    let mut text = Zeroizing::new(String::new());
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let noun = if t.noun == "token" {
            "Token"
        } else {
            "Password"
        };
        eout!("{noun} for {} '{account}' (input hidden): ", t.what);
        let _ = super::output::Stderr.flush();
        let guard = EchoOff::new().map_err(|e| {
            failure(format!(
                "cannot turn off the terminal's echo ({e}); pipe the token instead: `maildns secret set {account} < file`"
            ))
        })?;
        stdin
            .lock()
            .read_line(&mut text)
            .map_err(|e| failure(format!("reading the token from the terminal: {e}")))?;
        drop(guard);
    } else {
        stdin
            .lock()
            .read_to_string(&mut text)
            .map_err(|e| failure(format!("reading the token from stdin: {e}")))?;
    }
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if trimmed.is_empty() {
        return Err(Coded {
            code: Exit::DataErr,
            message: format!(
                "no token on stdin; pipe it in, e.g. `maildns secret set {account} < token.txt`, or type it at the prompt"
            ),
        }
        .into());
    }
    if trimmed.contains(['\n', '\r']) {
        return Err(Coded {
            code: Exit::DataErr,
            message: "the token on stdin spans several lines; a token is one line".into(),
        }
        .into());
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

#[derive(Serialize)]
struct SetReport<'a> {
    account: &'a str,
    stored: bool,
    store: String,
    /// `secret-service` or `kernel-keyring`.
    keyring: &'static str,
    overridden_by: Option<&'a str>,
}

fn set(cli: &Cli, a: &Target) -> anyhow::Result<Exit> {
    let token = read_token(a)?;
    let secret = Secret::new(token.as_str());
    match secrets::set(&a.name, &secret) {
        Ok(()) => {}
        Err(e @ SecretError::NoSessionKeyring { .. }) => {
            return Err(failure(format!(
                "{e}\nhint: start a shell with a session keyring (`keyctl session`, package keyutils) and run this again there; {}",
                alternatives(a)
            )));
        }
        Err(e) => return Err(failure(format!("{e}\nhint: {}", alternatives(a)))),
    }
    let overridden = std::env::var_os(&a.env)
        .filter(|v| !v.is_empty())
        .map(|_| a.env.as_str());
    if cli.json {
        print_json(&SetReport {
            account: &a.name,
            stored: true,
            store: Source::Keyring.to_string(),
            keyring: secrets::store().name(),
            overridden_by: overridden,
        })?;
    } else {
        outln!(
            "{} '{}': {} stored in the {}",
            a.what,
            a.name,
            a.noun,
            Source::Keyring
        );
        if let Some(v) = overridden {
            outln!("note: {v} is set here and is used before the keyring");
        }
    }
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct GetReport<'a> {
    account: &'a str,
    found: bool,
    /// `env`, `credentials_directory`, `keyring` or `token_file`.
    source: Option<&'static str>,
    /// The variable, file or keyring service.
    location: Option<String>,
    /// With `source` = `keyring`: `secret-service` or `kernel-keyring`.
    #[serde(skip_serializing_if = "Option::is_none")]
    keyring: Option<&'static str>,
    /// Only with --show.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    looked: Vec<String>,
}

fn describe(source: &Source) -> (&'static str, String) {
    match source {
        Source::Env(v) => ("env", v.clone()),
        Source::CredentialsDirectory(p) => ("credentials_directory", p.display().to_string()),
        Source::Keyring => (
            "keyring",
            format!(
                "{}, service \"{}\"",
                secrets::store(),
                secrets::KEYRING_SERVICE
            ),
        ),
        Source::TokenFile(p) => ("token_file", p.display().to_string()),
    }
}

fn get(cli: &Cli, a: &Target, show: bool) -> anyhow::Result<Exit> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let spec = SecretSpec {
        env_var: Some(a.env.clone()),
        token_file: a.file.clone(),
    };
    match secrets::lookup(&a.name, &spec, &env) {
        Ok(found) => {
            let (kind, location) = describe(&found.source);
            if cli.json {
                print_json(&GetReport {
                    account: &a.name,
                    found: true,
                    source: Some(kind),
                    location: Some(location),
                    keyring: (found.source == Source::Keyring).then(|| secrets::store().name()),
                    value: show.then(|| found.secret.expose()),
                    looked: Vec::new(),
                })?;
            } else if show {
                eoutln!("{} '{}': found in the {}", a.what, a.name, found.source);
                outln!("{}", found.secret.expose());
            } else {
                outln!(
                    "{} '{}': credential found in the {} (value hidden; --show prints it)",
                    a.what,
                    a.name,
                    found.source
                );
            }
            Ok(Exit::Ok)
        }
        Err(SecretError::NotFound { looked, .. }) => {
            if cli.json {
                print_json(&GetReport {
                    account: &a.name,
                    found: false,
                    source: None,
                    location: None,
                    keyring: None,
                    value: None,
                    looked,
                })?;
            } else {
                outln!("{} '{}': no credential found; looked at:", a.what, a.name);
                for l in &looked {
                    outln!("  {l}");
                }
                outln!(
                    "fix: `maildns secret set {}` (token on stdin); {}",
                    a.name,
                    alternatives(a)
                );
            }
            Ok(Exit::Failure)
        }
        Err(e) => Err(failure(e.to_string())),
    }
}

#[derive(Serialize)]
struct DeleteReport<'a> {
    account: &'a str,
    deleted: bool,
    /// `secret-service` or `kernel-keyring`.
    keyring: &'static str,
}

fn delete(cli: &Cli, a: &Target) -> anyhow::Result<Exit> {
    let deleted = secrets::delete(&a.name).map_err(|e| failure(e.to_string()))?;
    if cli.json {
        print_json(&DeleteReport {
            account: &a.name,
            deleted,
            keyring: secrets::store().name(),
        })?;
    } else if deleted {
        outln!(
            "{} '{}': {} removed from the {}",
            a.what,
            a.name,
            a.noun,
            Source::Keyring
        );
    } else {
        outln!(
            "{} '{}': there was no {} in the {}",
            a.what,
            a.name,
            a.noun,
            Source::Keyring
        );
    }
    Ok(Exit::Ok)
}

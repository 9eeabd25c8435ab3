//! Shared pieces of the face: exit codes, logging, loading the config, printing.

use std::io::Write;

use anyhow::Context;

use crate::command::publish::PublishError;
use crate::config::{self, Config, ConfigErrors, Domain};
use crate::rotation::keyring::KeyringError;
use crate::rotation::{RunnerError, StoreError};

/// Process exit codes scripts can rely on (also listed in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Success; for `plan`, in sync.
    Ok = 0,
    /// A failure: provider error, some domain failed.
    Failure = 1,
    /// `plan --exit-code`: changes are pending.
    Changes = 2,
    /// Propagation did not complete before the timeout.
    Timeout = 3,
    /// `status`: something needs an operator (a blocked rotation, a failing step).
    Attention = 4,
    /// Bad command-line usage.
    Usage = 64,
    /// Invalid configuration, or records with lint errors.
    DataErr = 65,
    /// The state lock is held by another maildns.
    TempFail = 75,
}

/// Marks an error with the exit code it should produce.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Coded {
    /// Exit code.
    pub code: Exit,
    /// Message.
    pub message: String,
}

/// The exit code for an error that reached the face.
pub fn exit_for(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if cause.downcast_ref::<ConfigErrors>().is_some() {
            return Exit::DataErr;
        }
        if cause.downcast_ref::<crate::gate::GateError>().is_some() {
            return Exit::DataErr;
        }
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(StoreError::Locked { .. }) = cause.downcast_ref() {
            return Exit::TempFail;
        }
        if let Some(RunnerError::Store(StoreError::Locked { .. })) = cause.downcast_ref() {
            return Exit::TempFail;
        }
        match cause.downcast_ref() {
            Some(PublishError::Gate(_)) => return Exit::DataErr,
            Some(PublishError::Store(StoreError::Locked { .. })) => return Exit::TempFail,
            _ => {}
        }
        if let Some(RunnerError::Config(_)) = cause.downcast_ref() {
            return Exit::DataErr;
        }
        // A key error wraps these transparently: the inner error is not a
        // cause of its own in the chain.
        match cause.downcast_ref() {
            Some(KeyringError::Gate(_) | KeyringError::Runner(RunnerError::Config(_))) => {
                return Exit::DataErr;
            }
            Some(
                KeyringError::Store(StoreError::Locked { .. })
                | KeyringError::Runner(RunnerError::Store(StoreError::Locked { .. })),
            ) => return Exit::TempFail,
            _ => {}
        }
    }
    Exit::Failure
}

/// Logs go to stderr (journald-friendly: no colours when not a terminal); stdout is for data.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILDNS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| super::output::LogStderr)
        .log_internal_errors(false)
        // Control characters are escaped in the log (it may quote a host's
        // answer), so it carries no colour codes either.
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Loads the configuration named by `--config` (or the default places).
///
/// # Errors
/// No configuration file found, or one that cannot be read or is invalid
/// (file:line:key).
pub fn load_config(cli: &super::Cli) -> anyhow::Result<Config> {
    let path = config::locate(cli.config.as_deref())?;
    Ok(config::load(&path)?)
}

/// Loads the configuration and runs the lint gate on it (before anything is
/// written or shown): warnings and waived errors go to stderr; errors are a
/// [`crate::gate::GateError`] (exit 65).
///
/// # Errors
/// As [`load_config`], and the gate's error when a lint error is not waived.
pub fn load_gated(cli: &super::Cli) -> anyhow::Result<Config> {
    let config = load_config(cli)?;
    let report = crate::gate::gate(&config)?;
    for n in report.notices() {
        eoutln!("{n}");
    }
    check_signer(&config)?;
    Ok(config)
}

/// Checks, before anything is written, that the `[signer]` can prove a switch:
/// with probes (the default) its opendkim.conf must be readable and name a
/// `Socket` (a [`RunnerError::Config`], exit 65, naming file:line:key); with
/// `confirm = "tables-only"` it warns, on every run.
///
/// # Errors
/// The signer's configuration error; an unknown signer user is left to the
/// commands that use the signer.
pub fn check_signer(config: &Config) -> anyhow::Result<()> {
    let Some(signer) = &config.signer else {
        return Ok(());
    };
    if warn_tables_only(config) {
        return Ok(());
    }
    match crate::rotation::runner::signer_from_config(signer, &config.path) {
        Err(e @ RunnerError::Config(_)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints the warning for a signer whose switches are not proven by a probe
/// (`confirm = "tables-only"`); true when it did.
pub fn warn_tables_only(config: &Config) -> bool {
    let warning = crate::rotation::runner::tables_only_warning(config);
    if let Some(w) = &warning {
        eoutln!("warning: {}", w.message);
    }
    warning.is_some()
}

/// Prints `value` as pretty JSON on stdout.
///
/// # Errors
/// Serialization or writing to stdout failed (a closed pipe is handled by the
/// caller as a normal end of output).
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = super::output::Stdout;
    serde_json::to_writer_pretty(&mut out, value).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

/// The configured domains named by `--domain` (all when none is named); a name
/// that is not configured is a data error listing the configured ones.
///
/// # Errors
/// A name that is not a configured domain (the error lists the configured ones).
pub fn select_domains<'a>(config: &'a Config, names: &[String]) -> anyhow::Result<Vec<&'a Domain>> {
    if names.is_empty() {
        return Ok(config.domains.iter().collect());
    }
    let mut out = Vec::new();
    for n in names {
        let wanted = n.trim_end_matches('.');
        match config
            .domains
            .iter()
            .find(|d| d.name.as_str().eq_ignore_ascii_case(wanted))
        {
            Some(d) => out.push(d),
            None => {
                return Err(Coded {
                    code: Exit::DataErr,
                    message: format!(
                        "domain '{n}' is not configured in {}; configured: {}",
                        config.path.display(),
                        config
                            .domains
                            .iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
                .into());
            }
        }
    }
    Ok(out)
}

/// Which domains a command works on (`plan`, `publish`, `rotate`, `verify`).
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Only these domains (repeatable)
    #[arg(long = "domain", short = 'd')]
    pub domains: Vec<String>,
}

/// Which configured domains the selection names (all when none; an unknown name
/// is an error listing the configured ones).
///
/// # Errors
/// As [`select_domains`].
pub fn selected<'a>(config: &'a Config, selection: &Selection) -> anyhow::Result<Vec<&'a Domain>> {
    select_domains(config, &selection.domains)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked() -> StoreError {
        StoreError::Locked {
            holder: "pid 1".into(),
            path: "/state/maildns.lock".into(),
        }
    }

    /// The same exit code whether the store's error comes bare or wrapped in
    /// a key error (whose `#[error(transparent)]` hides it from the chain).
    #[test]
    fn key_errors_keep_the_exit_codes_of_what_they_wrap() {
        let bare = anyhow::Error::from(locked());
        let wrapped = anyhow::Error::from(KeyringError::Store(locked()));
        assert_eq!(exit_for(&bare), Exit::TempFail);
        assert_eq!(exit_for(&wrapped), Exit::TempFail);
        let other = anyhow::Error::from(KeyringError::NoKeyFile {
            selector: "s1".into(),
        });
        assert_eq!(exit_for(&other), Exit::Failure);
    }
}

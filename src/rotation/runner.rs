//! The runner: performs what the rotation machine asks, one domain at a time.
//!
//! [`Runner::run_once`] loops: load the domain's state, [`step`] it with the
//! observations of the previous round and the injected clock's "now", SAVE the
//! decision (state and events, one transaction), and only then perform its
//! actions, each idempotently, turning what happened into [`Observation`]s for
//! the next round. It returns when the machine has nothing to do but wait.
//!
//! # Crash recovery
//!
//! Nothing is performed before the decision asking for it is saved, and an
//! action's result reaches the store only through the next step. So a crash
//! (or a kill, or a power cut) at any point leaves a saved state that asks for
//! the same action again, and performing it again is harmless:
//!
//! - `GenerateKey`: the key goes to a NEW file per selector; an existing file
//!   (written before the crash) is adopted, never overwritten.
//! - `PublishKey`, `RevokeKey`, `UnpublishKey`: the desired DKIM record set is
//!   rebuilt from the state and applied through `publish` (plan against what
//!   the host holds now: a second apply finds it in sync and writes nothing).
//! - `AwaitPropagation`: a read-only check round.
//! - `SwitchSigner`: rewriting the same table entries and reloading again.
//! - `ConfirmSigner`: a probe message through the signer's milter socket
//!   (re-sending the reload when the probe shows the old key).
//! - `DeletePrivateKey`: a missing file counts as deleted.
//!
//! Provider, DNS and file errors become [`Observation::ActionFailed`]: the
//! machine backs off and asks again later; the key in use stays in use. A
//! signer that fails the pre-reload checks becomes
//! [`Observation::SignerFailed`]: nothing was written, the rotation of that
//! algorithm is blocked until an operator unblocks it.
//!
//! # Probes
//!
//! A switch counts only when a probe message sent through the running
//! signer's own milter socket comes back signed with the new selector and the
//! signature verifies against every authoritative server
//! ([`crate::signer::probe`]). Until then the key stays switched: a signer that
//! is down is retried with backoff ([`Observation::ActionFailed`]); a signer that
//! answers with the old selector (a refused reload) holds the key
//! ([`Observation::SignerHeld`], shown as blocked) and is retried too — the
//! tables stay on the new key (which is served and safe), so there is no rollback
//! and a restarted OpenDKIM picks the new key up. Nothing old is touched
//! meanwhile: the old key stays active. Before every retirement step (revoke or
//! remove the old record, disclose or delete the old private key) the signer is
//! probed again; a signer still signing with the old selector holds the step.
//! [`Runner::probe_signers`] (the daemon, periodically) reports drift of
//! active keys ([`Observation::SignerDrift`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use serde::Serialize;

use super::keyring;
use super::machine::{
    Action, Blocked, Observation, Policy, Selector, Warning, next_due, rotate_now, step,
};
use super::store::{Store, StoreError};
use crate::accounts::Providers;
use crate::config::{self, Config, ConfigError, ConfigErrors, Domain, SignerConfirm};
use crate::keys::WriteOptions;
use crate::propagation::{Clock, Querier, QueryOptions, WatchOptions, Watcher};
use crate::signer::unix::SignerUser;
use crate::signer::{OpenDkimFiles, OpenDkimSql, Signer, SignerError};

/// Most step/perform rounds in one [`Runner::run_once`] (a guard; a lifecycle
/// needs about a dozen).
const MAX_ROUNDS: usize = 64;

/// A crash-injection hook for tests: called at every step boundary with its
/// name (`saved:<actions>` after a save, `performed:<action>:<selector>` after
/// an action, before its result is saved); `true` makes `run_once` stop there
/// at once with [`RunnerError::Crashed`], as if the process had been killed.
#[cfg(feature = "test-hooks")]
pub type CrashHook = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Why a run could not proceed (action failures are not errors: they are
/// observations the machine retries).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The domain is not in the configuration.
    #[error("{domain} is not a configured domain")]
    UnknownDomain {
        /// The domain.
        domain: String,
    },
    /// The configuration fails the lint gate (nothing was done).
    #[error("{0}")]
    Gate(#[from] crate::gate::GateError),
    /// The state store failed (e.g. [`StoreError::Locked`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The domain's DKIM settings do not make a valid rotation policy.
    #[error("{domain}: {message}")]
    Policy {
        /// The domain.
        domain: String,
        /// Why.
        message: String,
    },
    /// The signer user does not exist.
    #[error("signer user '{user}' does not exist on this host")]
    SignerUser {
        /// The user.
        user: String,
    },
    /// The signer database's (or controller's) password could not be read.
    #[error("reading the signer database's password: {0}")]
    SignerPassword(#[source] crate::secrets::SecretError),
    /// The signer could not be set up.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The `[signer]` section cannot work (e.g. no milter socket to probe).
    #[error("{0}")]
    Config(ConfigErrors),
    /// The machine kept asking for work (a bug guard).
    #[error("{domain}: still busy after {MAX_ROUNDS} rounds; stopping this run")]
    TooManyRounds {
        /// The domain.
        domain: String,
    },
    /// A test crash hook stopped the run at `boundary` (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    #[error("crash injected at {boundary}")]
    Crashed {
        /// The boundary.
        boundary: String,
    },
}

/// One action performed, and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct Performed {
    /// [`Action::name`].
    pub action: &'static str,
    /// The key.
    pub selector: Option<Selector>,
    /// `ok`, `not_yet`, `failed` or `blocked`.
    pub result: &'static str,
    /// Detail (never a secret).
    pub detail: String,
}

/// One key's state after the run.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    /// Selector.
    pub selector: Selector,
    /// Algorithm.
    pub algorithm: crate::keys::Algorithm,
    /// Size in bits.
    pub bits: u32,
    /// Status.
    pub status: super::KeyStatus,
}

/// What [`Runner::run_once`] did for one domain, and what is next.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// The domain.
    pub domain: Fqdn,
    /// Actions performed, in order.
    pub performed: Vec<Performed>,
    /// Warnings (e.g. `bits_fallback`, repeated on every run while it applies).
    pub warnings: Vec<Warning>,
    /// Blocked algorithms (a failed signer switch).
    pub blocked: Vec<Blocked>,
    /// Keys that are not destroyed yet.
    pub keys: Vec<KeySummary>,
    /// When the next action is due (`None`: never without an operator, or no DKIM).
    pub next_due: Option<DateTime<Utc>>,
    /// Keys whose current step failed and waits for its retry (this run or an
    /// earlier one): `<selector>: <reason>`.
    pub retrying: Vec<String>,
    /// Keys that have waited for propagation longer than
    /// `propagation.daemon_timeout` (the watcher keeps checking):
    /// `<selector>: <what waits, how long, what the servers answered>`.
    pub overdue: Vec<String>,
}

impl RunOutcome {
    /// Why this run did not go as it should, in words: every action that
    /// failed or was blocked, every key still waiting to retry a failed step,
    /// every propagation wait longer than `propagation.daemon_timeout`, and
    /// every blocked rotation. Empty when all went well or only waits. `rotate` and each
    /// daemon pass count a domain with any as failed (exit 1).
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .performed
            .iter()
            .filter(|p| matches!(p.result, "failed" | "blocked"))
            .map(|p| {
                format!(
                    "{} {} {}: {}",
                    p.action,
                    p.selector.as_ref().map(Selector::as_str).unwrap_or("-"),
                    p.result,
                    p.detail
                )
            })
            .collect();
        out.extend(self.retrying.iter().cloned());
        out.extend(
            self.overdue
                .iter()
                .map(|o| format!("ATTENTION propagation {o}")),
        );
        out.extend(self.blocked.iter().map(|b| {
            format!(
                "{} rotation blocked at {}: {}",
                b.algorithm, b.selector, b.reason
            )
        }));
        out
    }
}

/// When [`Runner::run`] starts a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only when one is due (the schedule).
    WhenDue,
    /// Now, even if none is due (`rotate --now`).
    Now,
}

/// Performs rotations: the configuration, the store, connected providers, the
/// propagation watcher and the signer, all driven by one injected clock.
pub struct Runner {
    pub(super) config: Config,
    pub(super) store: Arc<dyn Store>,
    pub(super) providers: Providers,
    pub(super) watcher: Watcher,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) signer: Option<Signer>,
    #[cfg(feature = "test-hooks")]
    crash: Option<CrashHook>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config.path)
            .field("accounts", &self.providers.keys().collect::<Vec<_>>())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// The warning every command and every run repeats while the `[signer]` cannot be
/// probed (`confirm = "tables-only"`); `None` otherwise.
pub fn tables_only_warning(config: &Config) -> Option<Warning> {
    let cfg = config.signer.as_ref()?;
    (cfg.confirm == SignerConfirm::TablesOnly).then(|| Warning {
        code: "signer_unproven",
        message: format!(
            "{}: [signer] confirm = \"tables-only\": switches are checked in the signer's tables only; a reload OpenDKIM refuses goes unnoticed and an old key may be retired while it still signs",
            config.path.display()
        ),
    })
}

/// The OpenDKIM signer of a `[signer]` section of the configuration file
/// `config_path`. When running as root, new key files are given to the signer's
/// user (mode 0600). With `confirm = "probe"` (the default) the milter socket is
/// read from opendkim.conf's `Socket`.
///
/// # Errors
/// [`RunnerError::SignerUser`] for an unknown user; [`RunnerError::Config`]
/// (naming the file, the `[signer]` line and `signer.config`) when opendkim.conf
/// cannot be read or names no usable `Socket` while probes are asked for.
pub fn signer_from_config(
    cfg: &config::Signer,
    config_path: &std::path::Path,
) -> Result<Signer, RunnerError> {
    if let Some(r) = &cfg.rspamd {
        return rspamd_signer_from_config(cfg, r);
    }
    if let Some(sql) = &cfg.sql {
        return sql_signer_from_config(cfg, sql);
    }
    let user = SignerUser::lookup(&cfg.user).ok_or_else(|| RunnerError::SignerUser {
        user: cfg.user.clone(),
    })?;
    let mut s = OpenDkimFiles::new(
        &cfg.key_dir,
        &cfg.key_table,
        &cfg.signing_table,
        user.clone(),
    );
    s.conf = cfg.config.clone();
    s.reload_command = cfg.reload_command.clone();
    if cfg.confirm == SignerConfirm::Probe {
        let bad = |message: String| {
            RunnerError::Config(ConfigErrors(vec![ConfigError {
                path: config_path.to_path_buf(),
                line: cfg.line,
                key: "signer.config".into(),
                message,
                hint: Some(
                    "give OpenDKIM a Socket (local:/path or inet:PORT@HOST) that maildns can reach, or set confirm = \"tables-only\" if the signer cannot be probed".into(),
                ),
            }]))
        };
        let conf = cfg
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        s.socket = match s.conf_socket() {
            Ok(Some(sock)) => Some(sock),
            Ok(None) => {
                return Err(bad(format!(
                    "{conf} has no Socket setting: the signer cannot be probed, so a switch could not be proven"
                )));
            }
            Err(e) => return Err(bad(e.to_string())),
        };
    }
    if nix::unistd::geteuid().is_root() {
        s.key_write = WriteOptions {
            mode: 0o600,
            owner: Some((user.uid, user.gid)),
        };
    }
    Ok(Signer::OpenDkimFiles(s))
}

/// A credential of the signer, looked up like any credential (environment
/// variable `env_var`, `$CREDENTIALS_DIRECTORY/<name>`, the OS keyring entry
/// `<name>`, `file`), from the environment as it is now; none found means
/// connecting without one.
fn signer_secret(
    name: &str,
    env_var: &str,
    file: Option<&std::path::Path>,
) -> Result<Option<zeroize::Zeroizing<String>>, RunnerError> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let spec = crate::secrets::SecretSpec {
        env_var: Some(env_var.to_string()),
        token_file: file.map(std::path::Path::to_path_buf),
    };
    match crate::secrets::lookup(name, &spec, &env) {
        Ok(found) => {
            tracing::debug!("{name} from {}", found.source);
            Ok(Some(zeroize::Zeroizing::new(
                found.secret.expose().to_string(),
            )))
        }
        Err(crate::secrets::SecretError::NotFound { looked, .. }) => {
            tracing::debug!(
                "no {name} found (looked at: {}); connecting without one",
                looked.join("; ")
            );
            Ok(None)
        }
        Err(e) => Err(RunnerError::SignerPassword(e)),
    }
}

/// The `kind = "rspamd"` signer: Redis and controller passwords looked up
/// like any credential ([`config::SIGNER_PASSWORD_CREDENTIAL`],
/// [`config::RSPAMD_CONTROLLER_PASSWORD_CREDENTIAL`]).
fn rspamd_signer_from_config(
    cfg: &config::Signer,
    r: &config::RspamdSigner,
) -> Result<Signer, RunnerError> {
    let redis_password = signer_secret(
        config::SIGNER_PASSWORD_CREDENTIAL,
        &r.password_env,
        r.password_file.as_deref(),
    )?;
    let controller_password = signer_secret(
        config::RSPAMD_CONTROLLER_PASSWORD_CREDENTIAL,
        &r.controller_password_env,
        r.controller_password_file.as_deref(),
    )?;
    let settings = crate::signer::rspamd::RspamdSettings {
        redis_url: r.url.clone(),
        redis_password,
        key_hash: r.key_hash.clone(),
        selector_hash: r.selector_hash.clone(),
        controller_urls: r.controllers.clone(),
        key_dir: cfg.key_dir.clone(),
        controller_password,
        timeout: cfg.probe_timeout.min(std::time::Duration::from_secs(10)),
    };
    let signer = crate::signer::RspamdSigner::new(settings).map_err(SignerError::from)?;
    Ok(Signer::Rspamd(signer))
}

/// The `kind = "opendkim-sql"` signer: its database password is looked up
/// like any credential (`password_env`, default `MAILDNS_SIGNER_PASSWORD`;
/// `$CREDENTIALS_DIRECTORY/signer-password`; the OS keyring entry
/// `signer-password`; `password_file`), from the environment as it is now;
/// none found means connecting without one (e.g. a trusted local server).
fn sql_signer_from_config(
    cfg: &config::Signer,
    sql: &config::SqlSigner,
) -> Result<Signer, RunnerError> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let spec = crate::secrets::SecretSpec {
        env_var: Some(sql.password_env.clone()),
        token_file: sql.password_file.clone(),
    };
    let password = match crate::secrets::lookup(config::SIGNER_PASSWORD_CREDENTIAL, &spec, &env) {
        Ok(found) => {
            tracing::debug!("signer database password from {}", found.source);
            Some(found.secret)
        }
        Err(crate::secrets::SecretError::NotFound { looked, .. }) => {
            tracing::debug!(
                "no signer database password found (looked at: {}); connecting without one",
                looked.join("; ")
            );
            None
        }
        Err(e) => return Err(RunnerError::SignerPassword(e)),
    };
    let mut s = OpenDkimSql::new(&sql.url, password, &cfg.key_dir, sql.sockets.clone());
    s.tables = sql.tables.clone();
    Ok(Signer::OpenDkimSql(s))
}

impl Runner {
    /// A runner over `store` (which must hold the lock to save), with the
    /// connected `providers`, the signer of `config.signer` (see
    /// [`signer_from_config`]) and a watcher on `clock` (the same clock gives
    /// `step` its "now").
    ///
    /// # Errors
    /// See [`signer_from_config`].
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        providers: Providers,
        clock: Arc<dyn Clock>,
    ) -> Result<Runner, RunnerError> {
        crate::gate::gate(&config)?;
        let signer = config
            .signer
            .as_ref()
            .map(|s| signer_from_config(s, &config.path))
            .transpose()?;
        let watcher = Watcher::new(
            Querier::new(QueryOptions::default()),
            WatchOptions::daemon(),
        )
        .with_clock(clock.clone());
        Ok(Runner {
            config,
            store,
            providers,
            watcher,
            clock,
            signer,
            #[cfg(feature = "test-hooks")]
            crash: None,
        })
    }

    /// Uses `watcher` (its clock should be this runner's clock).
    pub fn with_watcher(mut self, watcher: Watcher) -> Runner {
        self.watcher = watcher;
        self
    }

    /// Installs a crash-injection hook (tests only, feature `test-hooks`; see
    /// [`CrashHook`]).
    #[cfg(feature = "test-hooks")]
    pub fn with_crash_hook(mut self, hook: CrashHook) -> Runner {
        self.crash = Some(hook);
        self
    }

    /// Replaces the configuration, providers and signer (the daemon on SIGHUP).
    pub fn reconfigure(&mut self, config: Config, providers: Providers) -> Result<(), RunnerError> {
        crate::gate::gate(&config)?;
        self.signer = config
            .signer
            .as_ref()
            .map(|s| signer_from_config(s, &config.path))
            .transpose()?;
        self.config = config;
        self.providers = providers;
        Ok(())
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The signer, when configured.
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    pub(super) fn domain(&self, name: &Fqdn) -> Result<&Domain, RunnerError> {
        self.config
            .domains
            .iter()
            .find(|d| &d.name == name)
            .ok_or_else(|| RunnerError::UnknownDomain {
                domain: name.to_string(),
            })
    }

    /// The largest RSA key the account's host can hold: the provider profile's
    /// limit and the latest diagnosis's recommendation, whichever is lower.
    ///
    /// # Errors
    /// The store cannot read the latest diagnosis.
    pub fn max_bits_for(&self, account: &str) -> Result<Option<u32>, RunnerError> {
        Ok(keyring::max_bits_for(
            account,
            &self.providers,
            Some(self.store.as_ref()),
        )?)
    }

    /// The rotation policy of `domain` (`None` when it has no DKIM section).
    pub fn policy(&self, domain: &Domain) -> Result<Option<Policy>, RunnerError> {
        let Some(dkim) = &domain.dkim else {
            return Ok(None);
        };
        Ok(Some(
            dkim.policy.for_host(self.max_bits_for(&domain.account)?),
        ))
    }

    /// When `domain` next has something to do (`None`: no DKIM, or blocked).
    pub fn next_due(&self, domain: &Fqdn) -> Result<Option<DateTime<Utc>>, RunnerError> {
        let d = self.domain(domain)?;
        let Some(policy) = self.policy(d)? else {
            return Ok(None);
        };
        Ok(next_due(&self.store.load(domain)?, &policy))
    }

    /// [`Runner::next_due`] from an already loaded `state`, with the hosts'
    /// key-size limits looked up once per account in `limits` (the daemon's
    /// pass over many domains: one store read per pass instead of two per
    /// domain).
    pub fn next_due_of(
        &self,
        state: &super::DomainState,
        limits: &mut std::collections::HashMap<String, Option<u32>>,
    ) -> Result<Option<DateTime<Utc>>, RunnerError> {
        let d = self.domain(&state.domain)?;
        let Some(dkim) = &d.dkim else {
            return Ok(None);
        };
        let max = match limits.get(&d.account) {
            Some(m) => *m,
            None => {
                let m = self.max_bits_for(&d.account)?;
                limits.insert(d.account.clone(), m);
                m
            }
        };
        Ok(next_due(state, &dkim.policy.for_host(max)))
    }

    /// Runs `domain` until the machine only waits (see the module docs).
    pub async fn run_once(&self, domain: &Fqdn) -> Result<RunOutcome, RunnerError> {
        self.run(domain, Start::WhenDue).await
    }

    /// Like [`Runner::run_once`]; with [`Start::Now`], first plans a new key
    /// even if no rotation is due ([`rotate_now`]).
    ///
    /// On a shared store the run holds the domain's lease (see
    /// [`Store::lease`]): it fails with [`StoreError::Leased`] at once when
    /// another replica works the domain, renews the lease before each action,
    /// and gives it back at the end.
    pub async fn run(&self, domain: &Fqdn, start: Start) -> Result<RunOutcome, RunnerError> {
        self.domain(domain)?;
        self.store.lease(domain)?;
        let result = self.run_leased(domain, start).await;
        if let Err(e) = self.store.release(domain) {
            tracing::warn!(domain = %domain, "cannot release the lease (it expires by itself): {e}");
        }
        result
    }

    async fn run_leased(&self, domain: &Fqdn, start: Start) -> Result<RunOutcome, RunnerError> {
        let d = self.domain(domain)?;
        let mut out = RunOutcome {
            domain: domain.clone(),
            performed: Vec::new(),
            warnings: Vec::new(),
            blocked: Vec::new(),
            keys: Vec::new(),
            next_due: None,
            retrying: Vec::new(),
            overdue: Vec::new(),
        };
        let (Some(dkim), Some(mut policy)) = (&d.dkim, self.policy(d)?) else {
            return Ok(out);
        };
        // A signer that cannot be probed: warned on every run.
        if let Some(w) = self.tables_only_warning() {
            tracing::warn!("{}", w.message);
            out.warnings.push(w);
        }
        // The fallback warning, on every run while it applies.
        self.warn_fallback(d, &policy, &mut out);
        let mut observations: Vec<Observation> = Vec::new();
        let mut force = start == Start::Now;
        for _ in 0..MAX_ROUNDS {
            // A publish read-back may have lowered the host's limit last round.
            if let Some(p) = self.policy(d)?
                && p.settings().max_bits_for_host != policy.settings().max_bits_for_host
            {
                policy = p;
                self.warn_fallback(d, &policy, &mut out);
            }
            let state = self.store.load(domain)?;
            let now = self.clock.now();
            let decision = if force {
                rotate_now(&state, &observations, now, &policy)
            } else {
                step(&state, &observations, now, &policy)
            };
            force = false;
            if decision.changed(&state) {
                self.store.save(&decision.state, &decision.events)?;
            }
            for e in &decision.events {
                tracing::info!(
                    domain = %e.domain,
                    selector = e.selector.as_ref().map(Selector::as_str).unwrap_or("-"),
                    "{} {}: {}",
                    e.what,
                    e.outcome,
                    e.detail
                );
            }
            for w in &decision.warnings {
                if !out.warnings.contains(w) {
                    out.warnings.push(w.clone());
                }
            }
            // A pending key the host cannot hold is replaced before anything
            // else is done with it (the next round plans its successor).
            let mut after = decision.state.clone();
            let fallback = keyring::fall_back(&self.config, &mut after, &policy, now);
            for w in &fallback.warnings {
                if !out.warnings.iter().any(|x| x.message == w.message) {
                    tracing::warn!("{}", w.message);
                    out.warnings.push(w.clone());
                }
            }
            if fallback.changed() {
                self.store.save(&after, &fallback.events)?;
                out.warnings.extend(fallback.remove_files());
                // The discarded keys' records (cut short at the host) are
                // revoked or removed now, as a retired key's would be.
                for k in after.keys.iter().filter(|k| {
                    k.status == super::KeyStatus::Destroyed
                        && decision.state.key(&k.selector).map(|o| o.status)
                            != Some(super::KeyStatus::Destroyed)
                }) {
                    // Its key left the engine's shared store too (put there
                    // at generation; never named by a selector or
                    // SigningTable row: it was never switched to).
                    if let Some(signer) = self.signer.as_ref().filter(|s| s.shares_keys())
                        && let Err(e) = signer.remove_key(d.name.as_str(), &k.selector).await
                    {
                        let message = format!(
                            "removing the discarded key {} from {}: {e}",
                            k.selector,
                            signer.store_name()
                        );
                        tracing::warn!("{message}");
                        out.warnings.push(Warning {
                            code: "key_not_removed",
                            message,
                        });
                    }
                    if let Err(e) = self
                        .apply(
                            d,
                            dkim,
                            &after,
                            &k.selector,
                            super::KeyStatus::Destroyed,
                            now,
                        )
                        .await
                    {
                        let message = format!(
                            "{}: withdrawing the discarded key {}: {e}",
                            d.name, k.selector
                        );
                        tracing::warn!("{message}");
                        out.warnings.push(Warning {
                            code: "discarded_record",
                            message,
                        });
                    }
                }
                observations.clear();
                continue;
            }
            let work: Vec<Action> = decision.work().cloned().collect();
            if work.is_empty() {
                out.blocked = decision.state.blocked();
                out.next_due = next_due(&decision.state, &policy);
                out.retrying = decision
                    .state
                    .keys
                    .iter()
                    .filter(|k| {
                        !matches!(
                            k.status,
                            super::KeyStatus::SwitchFailed | super::KeyStatus::Destroyed
                        )
                    })
                    .filter_map(|k| {
                        let f = k.failed_attempt()?;
                        Some(format!(
                            "{}: attempt {} failed: {f}{}",
                            k.selector,
                            k.attempts,
                            k.not_before
                                .map(|t| format!("; retried after {t}"))
                                .unwrap_or_default()
                        ))
                    })
                    .collect();
                out.overdue = super::status::propagation_waits(
                    &decision.state,
                    Some(policy.settings().overlap),
                    super::status::propagation_bound(&self.config.propagation),
                    now,
                )
                .into_iter()
                .filter_map(|w| Some(format!("{}: {}", w.selector, w.overdue?)))
                .collect();
                out.keys = decision
                    .state
                    .keys
                    .iter()
                    .filter(|k| k.status != super::KeyStatus::Destroyed)
                    .map(|k| KeySummary {
                        selector: k.selector.clone(),
                        algorithm: k.algorithm,
                        bits: k.bits,
                        status: k.status,
                    })
                    .collect();
                return Ok(out);
            }
            let names: Vec<&str> = work.iter().map(Action::name).collect();
            self.boundary(&format!("saved:{}", names.join(",")))?;
            observations.clear();
            for action in &work {
                // Still ours? (A replica paused past its lease stops here.)
                self.store.renew(domain)?;
                let Some(obs) = self.perform(d, dkim, &decision.state, action, now).await else {
                    continue;
                };
                let performed = describe(action, &obs);
                tracing::info!(
                    domain = %d.name,
                    "{} {}: {} {}",
                    performed.action,
                    performed.selector.as_ref().map(Selector::as_str).unwrap_or("-"),
                    performed.result,
                    performed.detail
                );
                out.performed.push(performed);
                self.boundary(&format!(
                    "performed:{}:{}",
                    action.name(),
                    action.selector().map(Selector::as_str).unwrap_or("-")
                ))?;
                observations.push(obs);
            }
        }
        Err(RunnerError::TooManyRounds {
            domain: domain.to_string(),
        })
    }

    /// Adds (once per code) the warnings of a configured RSA size the host
    /// cannot hold.
    fn warn_fallback(&self, d: &Domain, policy: &Policy, out: &mut RunOutcome) {
        for w in keyring::fallback_warnings(d, policy) {
            if !out.warnings.iter().any(|x| x.message == w.message) {
                tracing::warn!("{}", w.message);
                out.warnings.push(w);
            }
        }
    }

    #[cfg(feature = "test-hooks")]
    fn boundary(&self, name: &str) -> Result<(), RunnerError> {
        match &self.crash {
            Some(hook) if hook(name) => Err(RunnerError::Crashed {
                boundary: name.to_string(),
            }),
            _ => Ok(()),
        }
    }

    #[cfg(not(feature = "test-hooks"))]
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    fn boundary(&self, _name: &str) -> Result<(), RunnerError> {
        Ok(())
    }
}

fn describe(action: &Action, obs: &Observation) -> Performed {
    let (result, detail) = match obs {
        Observation::ActionFailed { reason, .. } => ("failed", reason.clone()),
        Observation::SignerFailed { reason, .. }
        | Observation::SignerHeld { reason, .. }
        | Observation::SignerDrift { reason, .. } => ("blocked", reason.clone()),
        Observation::Propagation {
            verdict: super::Verdict::NotYet { detail },
            ..
        } => ("not_yet", detail.clone()),
        Observation::Propagation {
            verdict: super::Verdict::Passed { safe_after },
            ..
        } => ("ok", format!("served everywhere; safe after {safe_after}")),
        Observation::KeyGenerated { key_path, .. } => ("ok", key_path.clone()),
        _ => ("ok", String::new()),
    };
    Performed {
        action: action.name(),
        selector: action.selector().cloned(),
        result,
        detail,
    }
}

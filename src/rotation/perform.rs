//! How the runner performs each action (idempotently), turning the result into
//! an observation. Errors never escape: they become `ActionFailed` (retried by
//! the machine with backoff) or, for the signer, `SignerFailed` (blocked),
//! `SignerHeld` (a probe holds the key; retried) or `SignerDrift`.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use maildns_providers::{Fqdn, NameError, TxtRecord};

use super::keyring::{self, KeyringError};
use super::machine::{
    Action, DomainState, Expect, KeyRecord, KeyStatus, Observation, Selector, Verdict,
};
use super::runner::Runner;
use crate::config::{DkimPolicy, Domain};
use crate::keys::{self, KeyError, PrivateKey};
use crate::propagation::discover::DiscoveryError;
use crate::propagation::{Check, DiscoveryOptions, Nameserver, Upstream, discover};
use crate::publish::{self, DomainJob, Options, selector_name};
use crate::records::RecordKind;
use crate::signer::SignerError;

mod signer;

/// Why an action could not be performed: its text is the `reason` of the
/// [`Observation::ActionFailed`] the machine retries with backoff.
#[derive(Debug, thiserror::Error)]
pub(super) enum ActionError {
    /// A key file could not be made, removed or disclosed.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// A DKIM record could not be published or checked.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// `Wait` and `Failed` are never performed.
    #[error("not an action to perform")]
    NotPerformable,
}

/// Why a private key file could not be made, removed or disclosed.
#[derive(Debug, thiserror::Error)]
pub(super) enum KeyFileError {
    /// The state has no key with the selector.
    #[error("no key {0}")]
    NoKey(Selector),
    /// The state names no key file for the selector.
    #[error("key {0} has no key file recorded")]
    NoKeyFile(Selector),
    /// The key is not retired and withdrawn.
    #[error("refusing to delete the key of {selector}: it is {status}")]
    NotDeletable {
        /// The key.
        selector: Selector,
        /// Its status.
        status: KeyStatus,
    },
    /// The key is not withdrawn.
    #[error("refusing to disclose {selector}: it is {status}")]
    NotDisclosable {
        /// The key.
        selector: Selector,
        /// Its status.
        status: KeyStatus,
    },
    /// The generate step was asked for another action.
    #[error("not a generate action")]
    NotGenerate,
    /// Generating (or adopting) the key failed; the text is its whole chain.
    #[error("{}", crate::error::chain(.0))]
    Generate(KeyringError),
    /// The signer could not remove the key.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The key could not be read or encoded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A file or directory could not be written, created or removed.
    #[error("{}{}: {error}", .action, .path.display())]
    Io {
        /// `""` (writing, creating) or `"removing "`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause (part of the text, which is all the machine keeps).
        error: std::io::Error,
    },
}

/// Why a DKIM record could not be published, or its propagation checked.
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordError {
    /// The state has no key with the selector.
    #[error("no key {0}")]
    NoKey(Selector),
    /// The key may still sign: its record stays.
    #[error("refusing to withdraw {selector}: it may be signing ({status})")]
    InUse {
        /// The key.
        selector: Selector,
        /// Its status.
        status: KeyStatus,
    },
    /// A private key could not be found or read (boxed: recursive type).
    #[error(transparent)]
    Key(Box<KeyFileError>),
    /// The records the state wants could not be formed; the text is the
    /// whole chain.
    #[error("{}", crate::error::chain(.0))]
    Entries(KeyringError),
    /// The record name cannot be formed.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The domain's records want nothing at the selector's name.
    #[error("no DKIM record wanted at {0}")]
    NothingWanted(Fqdn),
    /// The state wants no (revoked) record for the selector.
    #[error("no {what}record for {selector}")]
    NoRecord {
        /// `""` or `"revoked "`.
        what: &'static str,
        /// The key.
        selector: Selector,
    },
    /// The host did not keep the record; the text says what was saved.
    #[error("{0}")]
    NotStored(String),
    /// Publishing failed (boxed: the error is large).
    #[error(transparent)]
    Publish(Box<publish::DomainError>),
    /// The domain's account is not connected.
    #[error("account '{0}' is not connected")]
    NotConnected(String),
    /// The authoritative servers are not known.
    #[error(transparent)]
    Servers(#[from] ServersError),
}

/// Why the authoritative servers of a domain are not known.
#[derive(Debug, thiserror::Error)]
pub(super) enum ServersError {
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// Discovery found none.
    #[error("no authoritative server found for {0}")]
    NoneFound(Fqdn),
}

impl Runner {
    /// Performs `action` for domain `d` whose saved state is `state`.
    pub(super) async fn perform(
        &self,
        d: &Domain,
        dkim: &DkimPolicy,
        state: &DomainState,
        action: &Action,
        now: DateTime<Utc>,
    ) -> Option<Observation> {
        // Wait has no selector; it and Failed are never performed
        // (Decision::work filters them out).
        let selector = action.selector()?.clone();
        let result: Result<Observation, ActionError> = match action {
            Action::GenerateKey { .. } => self.generate(d, action).await.map_err(ActionError::from),
            Action::PublishKey { .. } => self
                .apply(d, dkim, state, &selector, KeyStatus::Published, now)
                .await
                .map(|()| Observation::KeyPublished {
                    selector: selector.clone(),
                })
                .map_err(ActionError::from),
            Action::RevokeKey { .. } | Action::UnpublishKey { .. } => {
                match self.retirement_check(d, &selector).await {
                    Err(held) => return Some(held),
                    Ok(()) => self
                        .apply(d, dkim, state, &selector, KeyStatus::Withdrawing, now)
                        .await
                        .map(|()| Observation::KeyWithdrawn {
                            selector: selector.clone(),
                        })
                        .map_err(ActionError::from),
                }
            }
            Action::AwaitPropagation { expect, .. } => self
                .propagation(d, dkim, state, &selector, *expect, now)
                .await
                .map_err(ActionError::from),
            Action::SwitchSigner { .. } => Ok(self.switch(d, state, &selector).await),
            Action::ConfirmSigner { .. } => Ok(self.confirm_switch(d, state, &selector).await),
            Action::DeletePrivateKey { .. } | Action::PublishPrivateKey { .. } => {
                match self.retirement_check(d, &selector).await {
                    Err(held) => return Some(held),
                    Ok(()) if matches!(action, Action::DeletePrivateKey { .. }) => self
                        .delete_key(d, state, &selector)
                        .await
                        .map_err(ActionError::from),
                    Ok(()) => self
                        .disclose(d, state, &selector)
                        .await
                        .map_err(ActionError::from),
                }
            }
            Action::Wait { .. } | Action::Failed { .. } => Err(ActionError::NotPerformable),
        };
        Some(result.unwrap_or_else(|e| Observation::ActionFailed {
            selector,
            action: action.name().to_string(),
            reason: e.to_string(),
        }))
    }

    /// A NEW key file for the selector (adopted if it already exists); with a
    /// signer, written by it (its key directory, owner and mode); with a
    /// database-backed signer also put into the engine's shared store at once,
    /// or adopted from it. The same step makes a domain's first key in
    /// `publish`: [`keyring::generate_shared`].
    async fn generate(&self, d: &Domain, action: &Action) -> Result<Observation, KeyFileError> {
        keyring::generate_shared(&self.config, self.signer.as_ref(), &d.name, action)
            .map_err(KeyFileError::Generate)?
            .ok_or(KeyFileError::NotGenerate)
    }

    /// The private key of `k`: its key file, or, with a database-backed
    /// signer, the engine's shared store when no file is on this machine
    /// ([`Signer::load_key`]). A key not yet switched to that was read from a
    /// file is (re)put into the shared store on the way ([`Signer::share_key`],
    /// a no-op when it is there): a key made where the store was not written
    /// (`maildns publish`'s first key, a maildns before this step) reaches it
    /// before any replica needs it.
    ///
    /// [`Signer::load_key`]: crate::signer::Signer::load_key
    /// [`Signer::share_key`]: crate::signer::Signer::share_key
    pub(super) async fn private_key(
        &self,
        d: &Domain,
        k: &KeyRecord,
    ) -> Result<PrivateKey, KeyFileError> {
        let recorded = k.key_path.as_deref().map(std::path::Path::new);
        let Some(signer) = &self.signer else {
            let path = recorded.ok_or_else(|| KeyFileError::NoKeyFile(k.selector.clone()))?;
            return Ok(keys::load_private_key(path)?);
        };
        let key = signer
            .load_key(d.name.as_str(), &k.selector, recorded)
            .await?;
        if signer.shares_keys()
            && matches!(
                k.status,
                KeyStatus::Generated | KeyStatus::Published | KeyStatus::Propagated
            )
        {
            signer.share_key(d.name.as_str(), &k.selector, &key).await?;
        }
        Ok(key)
    }

    /// What each key of `state` wants published ([`keyring::dkim_entries`]),
    /// each private key read by [`Runner::private_key`]: a key found nowhere
    /// fails the step, naming its selector (nothing is published).
    async fn dkim_entries(
        &self,
        d: &Domain,
        state: &DomainState,
        dkim: &DkimPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<publish::DkimEntry>, RecordError> {
        let mut loaded = std::collections::BTreeMap::new();
        // Collected first: a `Filter` with a closure held across the `.await`
        // makes the future not `Send` for every lifetime (rustc #102211), and
        // the daemon's tasks must be `Send`.
        let wanted: Vec<&KeyRecord> = state
            .keys
            .iter()
            .filter(|k| keyring::wants_full_record(k.status))
            .collect();
        for k in wanted {
            let key = self
                .private_key(d, k)
                .await
                .map_err(|e| RecordError::Key(Box::new(e)))?;
            loaded.insert(k.selector.clone(), key);
        }
        keyring::dkim_entries_with(state, dkim, now, &|k: &KeyRecord| {
            loaded
                .get(&k.selector)
                .cloned()
                .ok_or_else(|| KeyringError::NoKeyFile {
                    selector: k.selector.to_string(),
                })
        })
        .map_err(RecordError::Entries)
    }

    /// Applies the DKIM record of `selector` as it is wanted once the key has
    /// `status` (Published: the full record; Withdrawing: revoked or removed),
    /// through `publish` so foreign values stay and an in-use key is protected.
    pub(super) async fn apply(
        &self,
        d: &Domain,
        dkim: &DkimPolicy,
        state: &DomainState,
        selector: &Selector,
        status: KeyStatus,
        now: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        let key = state
            .key(selector)
            .ok_or_else(|| RecordError::NoKey(selector.clone()))?;
        if status == KeyStatus::Withdrawing && key.status.may_be_signing() {
            return Err(RecordError::InUse {
                selector: selector.clone(),
                status: key.status,
            });
        }
        let entries = self
            .dkim_entries(d, &as_if(state, selector, status), dkim, now)
            .await?;
        let name = selector_name(&d.name, selector)?;
        let desired: Vec<_> = publish::for_domain(d, &entries)?
            .into_iter()
            .filter(|x| x.kind == RecordKind::Dkim && x.name == name)
            .collect();
        if desired.is_empty() {
            return Err(RecordError::NothingWanted(name));
        }
        let served = publish::ServedCheck {
            querier: self.watcher.querier().clone(),
            servers: [(d.name.clone(), d.nameservers.clone())]
                .into_iter()
                .collect(),
            wait: std::time::Duration::from_secs(3),
        };
        let outcomes = publish::run_checked(
            vec![DomainJob {
                domain: d.name.clone(),
                account: d.account.clone(),
                zone: d.zone.clone(),
                desired,
            }],
            &self.providers,
            Options {
                mode: publish::Mode::Apply,
                // The machine decided this withdrawal; KeyInUse still protects.
                force: true,
                max_delete_share: self.config.publish.max_delete_share,
            },
            Some(served),
        )
        .await;
        match outcomes.into_iter().next() {
            Some(o) => match o.error {
                None => Ok(()),
                Some(publish::DomainError::NotStored(found)) => Err(RecordError::NotStored(
                    self.save_readback(d, o.zone.as_deref(), &found, now),
                )),
                Some(e) => Err(RecordError::Publish(Box::new(e))),
            },
            None => Err(RecordError::NotConnected(d.account.clone())),
        }
    }

    /// Saves a failed read-back as the account's latest diagnosis (so the next
    /// round falls back to a size the host holds); returns the failure to report.
    fn save_readback(
        &self,
        d: &Domain,
        zone: Option<&str>,
        found: &publish::NotStored,
        now: DateTime<Utc>,
    ) -> String {
        let kind = self
            .providers
            .get(&d.account)
            .map(|p| p.kind())
            .unwrap_or("unknown");
        let zone = zone.unwrap_or(d.name.as_str());
        match crate::diagnose::save_readback(
            self.store.as_ref(),
            &d.account,
            kind,
            zone,
            found,
            now,
        ) {
            Ok(r) => match r.recommended_max_bits {
                Some(bits) => {
                    format!("{found}; saved as the host's limit: new keys get at most {bits} bits")
                }
                None => found.to_string(),
            },
            Err(e) => format!("{found}; saving the diagnosis failed: {e}"),
        }
    }

    /// One check round on every authoritative server (not a blocking watch).
    async fn propagation(
        &self,
        d: &Domain,
        dkim: &DkimPolicy,
        state: &DomainState,
        selector: &Selector,
        expect: Expect,
        now: DateTime<Utc>,
    ) -> Result<Observation, RecordError> {
        let name = selector_name(&d.name, selector)?;
        let find = |entries: Vec<publish::DkimEntry>| -> Option<TxtRecord> {
            entries
                .into_iter()
                .find(|e| &e.selector == selector)
                .and_then(|e| e.record)
        };
        let full = find(
            self.dkim_entries(d, &as_if(state, selector, KeyStatus::Retiring), dkim, now)
                .await?,
        )
        .ok_or_else(|| RecordError::NoRecord {
            what: "",
            selector: selector.clone(),
        })?;
        let checks = match expect {
            Expect::Present => vec![Check::present(name.clone(), full)],
            Expect::Revoked => {
                let withdrawing = as_if(state, selector, KeyStatus::Withdrawing);
                let revoked = find(self.dkim_entries(d, &withdrawing, dkim, now).await?)
                    .ok_or_else(|| RecordError::NoRecord {
                        what: "revoked ",
                        selector: selector.clone(),
                    })?;
                vec![
                    Check::present(name.clone(), revoked).with_previous_ttl(d.ttl),
                    Check::absent(name.clone(), full).with_previous_ttl(d.ttl),
                ]
            }
            Expect::Absent => vec![Check::absent(name.clone(), full).with_previous_ttl(d.ttl)],
        };
        let servers = self.servers(d).await?;
        let reports = self.watcher.check(&checks, &servers, true).await;
        let verdict = if !servers.is_empty() && reports.iter().all(|r| r.passed) {
            let hold = match expect {
                // A resolver may hold "no such name" for the negative-caching TTL.
                Expect::Present => self
                    .watcher
                    .negative_ttl(&name, &servers)
                    .await
                    .unwrap_or(d.ttl),
                Expect::Revoked | Expect::Absent => d.ttl,
            };
            Verdict::Passed {
                safe_after: self.clock.now() + TimeDelta::seconds(i64::from(hold)),
            }
        } else {
            let mut parts = Vec::new();
            for r in reports.iter().filter(|r| !r.passed) {
                for s in r.per_server.iter().filter(|s| !s.passed) {
                    let server = s.server.to_string();
                    let what = match &s.serving {
                        Ok(v) if v.is_empty() => "nothing".to_string(),
                        Ok(v) => format!("{} other value(s)", v.len()),
                        // The query errors name the server themselves
                        // ("127.0.0.1:53 answered REFUSED for ...").
                        Err(e) => {
                            let text = e.to_string();
                            if text.contains(&server) {
                                parts.push(text);
                                continue;
                            }
                            text
                        }
                    };
                    parts.push(format!("{server}: {what}"));
                }
            }
            Verdict::NotYet {
                detail: format!("{name}: {}", parts.join("; ")),
            }
        };
        Ok(Observation::Propagation {
            selector: selector.clone(),
            expect,
            verdict,
        })
    }

    /// The domain's `nameservers` override, or its discovered authoritative servers.
    async fn servers(&self, d: &Domain) -> Result<Vec<Nameserver>, ServersError> {
        if !d.nameservers.is_empty() {
            return Ok(d
                .nameservers
                .iter()
                .copied()
                .map(Nameserver::from_addr)
                .collect());
        }
        let resolvers = &self.config.propagation.resolvers;
        let options = DiscoveryOptions {
            upstream: if resolvers.is_empty() {
                Upstream::System
            } else {
                Upstream::Servers(resolvers.clone())
            },
            ..DiscoveryOptions::default()
        };
        let found = discover(self.watcher.querier(), &options, &d.name).await?;
        if found.nameservers.is_empty() {
            return Err(ServersError::NoneFound(d.name.clone()));
        }
        Ok(found.nameservers)
    }

    /// Deletes the private key (only keys the machine retired and withdrew).
    async fn delete_key(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
    ) -> Result<Observation, KeyFileError> {
        let key = state
            .key(selector)
            .ok_or_else(|| KeyFileError::NoKey(selector.clone()))?;
        if !matches!(key.status, KeyStatus::Withdrawn | KeyStatus::Disclosed) {
            return Err(KeyFileError::NotDeletable {
                selector: selector.clone(),
                status: key.status,
            });
        }
        if let Some(signer) = &self.signer {
            signer.remove_key(d.name.as_str(), selector).await?;
        }
        let path = key_path(state, selector)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(KeyFileError::Io {
                    action: "removing ",
                    path,
                    error: source,
                });
            }
        }
        Ok(Observation::PrivateKeyDeleted {
            selector: selector.clone(),
        })
    }

    /// Publishes a retired private key for deniability: writes it, world-readable,
    /// to `<state_dir>/disclosed/<domain>/<selector>.private`, for the operator to
    /// serve (e.g. from a web server), as dkim-rotate does.
    async fn disclose(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
    ) -> Result<Observation, KeyFileError> {
        let key = state
            .key(selector)
            .ok_or_else(|| KeyFileError::NoKey(selector.clone()))?;
        if key.status != KeyStatus::Withdrawn {
            return Err(KeyFileError::NotDisclosable {
                selector: selector.clone(),
                status: key.status,
            });
        }
        // The key file, or the shared store of a database-backed signer
        // (still there: a key is removed from it only at its deletion).
        let pem = self.private_key(d, key).await?.to_pem()?;
        let dir = self
            .config
            .state_dir
            .join("disclosed")
            .join(d.name.as_str());
        std::fs::create_dir_all(&dir).map_err(|error| KeyFileError::Io {
            action: "",
            path: dir.clone(),
            error,
        })?;
        let out = dir.join(format!("{selector}.private"));
        std::fs::write(&out, pem.as_bytes()).map_err(|error| KeyFileError::Io {
            action: "",
            path: out.clone(),
            error,
        })?;
        Ok(Observation::PrivateKeyPublished {
            selector: selector.clone(),
        })
    }
}

/// The state with `selector`'s key at `status` (what the records would be once
/// the action succeeded).
fn as_if(state: &DomainState, selector: &Selector, status: KeyStatus) -> DomainState {
    let mut s = state.clone();
    if let Some(k) = s.keys.iter_mut().find(|k| &k.selector == selector) {
        k.status = status;
    }
    s
}

fn key_path(state: &DomainState, selector: &Selector) -> Result<PathBuf, KeyFileError> {
    state
        .key(selector)
        .and_then(|k| k.key_path.as_ref())
        .map(PathBuf::from)
        .ok_or_else(|| KeyFileError::NoKeyFile(selector.clone()))
}

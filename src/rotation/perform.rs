//! How the runner performs each action (idempotently), turning the result into
//! an observation. Errors never escape: they become `ActionFailed` (retried by
//! the machine with backoff) or, for the signer, `SignerFailed` (blocked).

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use maildns_providers::TxtRecord;

use super::keyring;
use super::machine::{Action, DomainState, Expect, KeyStatus, Observation, Selector, Verdict};
use super::runner::{Confirm, Runner};
use crate::config::{DkimPolicy, Domain};
use crate::keys;
use crate::propagation::{Check, DiscoveryOptions, Nameserver, Upstream, discover};
use crate::publish::{self, DomainJob, Options, selector_name};
use crate::records::RecordKind;

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
        let result: Result<Observation, String> = match action {
            Action::GenerateKey { .. } => self.generate(d, action),
            Action::PublishKey { .. } => self
                .apply(d, dkim, state, &selector, KeyStatus::Published, now)
                .await
                .map(|()| Observation::KeyPublished {
                    selector: selector.clone(),
                }),
            Action::RevokeKey { .. } | Action::UnpublishKey { .. } => self
                .apply(d, dkim, state, &selector, KeyStatus::Withdrawing, now)
                .await
                .map(|()| Observation::KeyWithdrawn {
                    selector: selector.clone(),
                }),
            Action::AwaitPropagation { expect, .. } => {
                self.propagation(d, dkim, state, &selector, *expect, now)
                    .await
            }
            Action::SwitchSigner { .. } => Ok(self.switch(d, state, &selector)),
            Action::ConfirmSigner { .. } => Ok(self.confirm_switch(d, state, &selector)),
            Action::DeletePrivateKey { .. } => self.delete_key(d, state, &selector),
            Action::PublishPrivateKey { .. } => self.disclose(d, state, &selector),
            Action::Wait { .. } | Action::Failed { .. } => {
                Err("not an action to perform".to_string())
            }
        };
        Some(result.unwrap_or_else(|reason| Observation::ActionFailed {
            selector,
            action: action.name().to_string(),
            reason,
        }))
    }

    /// A NEW key file for the selector (adopted if it already exists); with a
    /// signer, written by it (its key directory, owner and mode). The same
    /// step makes a domain's first key in `publish` ([`keyring::generate_key`]).
    fn generate(&self, d: &Domain, action: &Action) -> Result<Observation, String> {
        keyring::generate_key(&self.config, self.signer.as_ref(), &d.name, action)
            .map_err(|e| format!("{e:#}"))?
            .ok_or_else(|| "not a generate action".to_string())
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
    ) -> Result<(), String> {
        let key = state
            .key(selector)
            .ok_or_else(|| format!("no key {selector}"))?;
        if status == KeyStatus::Withdrawing && key.status.may_be_signing() {
            return Err(format!(
                "refusing to withdraw {selector}: it may be signing ({})",
                key.status
            ));
        }
        let entries = keyring::dkim_entries(&as_if(state, selector, status), dkim, now)
            .map_err(|e| format!("{e:#}"))?;
        let name = selector_name(&d.name, selector.as_str()).map_err(|e| e.to_string())?;
        let desired: Vec<_> = publish::for_domain(d, &entries)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|x| x.kind == RecordKind::Dkim && x.name == name)
            .collect();
        if desired.is_empty() {
            return Err(format!("no DKIM record wanted at {name}"));
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
                Some(publish::DomainError::NotStored(found)) => {
                    Err(self.save_readback(d, o.zone.as_deref(), &found, now))
                }
                Some(e) => Err(e.to_string()),
            },
            None => Err(format!("account '{}' is not connected", d.account)),
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
    ) -> Result<Observation, String> {
        let name = selector_name(&d.name, selector.as_str()).map_err(|e| e.to_string())?;
        let record_as = |status| -> Result<Option<TxtRecord>, String> {
            let entries = keyring::dkim_entries(&as_if(state, selector, status), dkim, now)
                .map_err(|e| format!("{e:#}"))?;
            Ok(entries
                .into_iter()
                .find(|e| e.selector == selector.as_str())
                .and_then(|e| e.record))
        };
        let full =
            record_as(KeyStatus::Retiring)?.ok_or_else(|| format!("no record for {selector}"))?;
        let checks = match expect {
            Expect::Present => vec![Check::present(name.clone(), full)],
            Expect::Revoked => {
                let revoked = record_as(KeyStatus::Withdrawing)?
                    .ok_or_else(|| format!("no revoked record for {selector}"))?;
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
                    let what = match &s.serving {
                        Ok(v) if v.is_empty() => "nothing".to_string(),
                        Ok(v) => format!("{} other value(s)", v.len()),
                        Err(e) => e.to_string(),
                    };
                    parts.push(format!("{}: {what}", s.server));
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
    async fn servers(&self, d: &Domain) -> Result<Vec<Nameserver>, String> {
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
        let found = discover(self.watcher.querier(), &options, &d.name)
            .await
            .map_err(|e| e.to_string())?;
        if found.nameservers.is_empty() {
            return Err(format!("no authoritative server found for {}", d.name));
        }
        Ok(found.nameservers)
    }

    /// Points the signer at the key; on failure puts the tables back to the key
    /// that signed before and reports `SignerFailed` (blocks the rotation).
    fn switch(&self, d: &Domain, state: &DomainState, selector: &Selector) -> Observation {
        let Some(signer) = &self.signer else {
            // No signer configured: maildns only publishes; the operator's
            // signer reads the key from key_path.
            return Observation::SignerSwitched {
                selector: selector.clone(),
            };
        };
        let result = key_path(state, selector).and_then(|path| {
            signer
                .switch(d.name.as_str(), selector.as_str(), &path)
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(_) => Observation::SignerSwitched {
                selector: selector.clone(),
            },
            Err(reason) => {
                let reason = self.roll_back(d, state, selector, reason);
                Observation::SignerFailed {
                    selector: selector.clone(),
                    reason,
                }
            }
        }
    }

    /// Puts the signer tables back to the active key of the selector's
    /// algorithm (if any); returns `reason` with what the rollback did.
    fn roll_back(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
        reason: String,
    ) -> String {
        let (Some(signer), Some(key)) = (&self.signer, state.key(selector)) else {
            return reason;
        };
        let Some(active) = state.active(key.algorithm) else {
            return reason;
        };
        let Some(path) = &active.key_path else {
            return reason;
        };
        // Reloading may fail again; the tables are what matters for a restart.
        match signer.switch(d.name.as_str(), active.selector.as_str(), Path::new(path)) {
            Ok(_) => format!("{reason}; signer tables put back to {}", active.selector),
            Err(e) => format!(
                "{reason}; signer tables put back to {} ({e})",
                active.selector
            ),
        }
    }

    /// Confirms the signer signs with the key: the tables name it, then the
    /// configured [`Confirm`] strategy.
    fn confirm_switch(&self, d: &Domain, state: &DomainState, selector: &Selector) -> Observation {
        let Some(signer) = &self.signer else {
            return Observation::SignerConfirmed {
                selector: selector.clone(),
            };
        };
        let check = || -> Result<(), String> {
            let path = key_path(state, selector)?;
            let (kt, st) = signer.read_tables().map_err(|e| e.to_string())?;
            let probe = format!("postmaster@{}", d.name);
            let entry = st
                .lookup(&probe)
                .and_then(|n| kt.get(n))
                .ok_or_else(|| format!("the signing table has no key for {probe}"))?;
            if entry.selector != selector.as_str() || Path::new(&entry.key) != path {
                return Err(format!(
                    "the signer tables name selector {} ({}), not {selector}",
                    entry.selector, entry.key
                ));
            }
            let subst = |a: &str| {
                a.replace("{domain}", d.name.as_str())
                    .replace("{selector}", selector.as_str())
                    .replace("{key}", &path.display().to_string())
            };
            match &self.confirm {
                Confirm::Tables => Ok(()),
                Confirm::Hook(hook) => hook(&d.name, selector, &path),
                Confirm::TestKey { program } => {
                    let mut cmd = std::process::Command::new(program);
                    if let Some(conf) = &signer.conf {
                        cmd.arg("-x").arg(conf);
                    }
                    cmd.arg("-d")
                        .arg(d.name.as_str())
                        .arg("-s")
                        .arg(selector.as_str())
                        .arg("-k")
                        .arg(&path);
                    run(cmd, &program.display().to_string())
                }
                Confirm::Command(argv) => {
                    let (program, args) = argv
                        .split_first()
                        .ok_or_else(|| "empty confirm command".to_string())?;
                    let mut cmd = std::process::Command::new(subst(program));
                    cmd.args(args.iter().map(|a| subst(a)));
                    run(cmd, program)
                }
            }
        };
        match check() {
            Ok(()) => Observation::SignerConfirmed {
                selector: selector.clone(),
            },
            Err(reason) => {
                let reason = format!("switch not confirmed: {reason}");
                Observation::SignerFailed {
                    selector: selector.clone(),
                    reason: self.roll_back(d, state, selector, reason),
                }
            }
        }
    }

    /// Deletes the private key (only keys the machine retired and withdrew).
    fn delete_key(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
    ) -> Result<Observation, String> {
        let key = state
            .key(selector)
            .ok_or_else(|| format!("no key {selector}"))?;
        if !matches!(key.status, KeyStatus::Withdrawn | KeyStatus::Disclosed) {
            return Err(format!(
                "refusing to delete the key of {selector}: it is {}",
                key.status
            ));
        }
        if let Some(signer) = &self.signer {
            signer
                .remove_key(d.name.as_str(), selector.as_str())
                .map_err(|e| e.to_string())?;
        }
        let path = key_path(state, selector)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", path.display())),
        }
        Ok(Observation::PrivateKeyDeleted {
            selector: selector.clone(),
        })
    }

    /// Publishes a retired private key for deniability: writes it, world-readable,
    /// to `<state_dir>/disclosed/<domain>/<selector>.private`, for the operator to
    /// serve (e.g. from a web server), as dkim-rotate does.
    fn disclose(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
    ) -> Result<Observation, String> {
        let key = state
            .key(selector)
            .ok_or_else(|| format!("no key {selector}"))?;
        if key.status != KeyStatus::Withdrawn {
            return Err(format!(
                "refusing to disclose {selector}: it is {}",
                key.status
            ));
        }
        let path = key_path(state, selector)?;
        let pem = keys::load_private_key(&path)
            .and_then(|k| k.to_pem())
            .map_err(|e| e.to_string())?;
        let dir = self
            .config
            .state_dir
            .join("disclosed")
            .join(d.name.as_str());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = dir.join(format!("{selector}.private"));
        std::fs::write(&out, pem.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
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

fn key_path(state: &DomainState, selector: &Selector) -> Result<PathBuf, String> {
    state
        .key(selector)
        .and_then(|k| k.key_path.as_ref())
        .map(PathBuf::from)
        .ok_or_else(|| format!("key {selector} has no key file recorded"))
}

fn run(mut cmd: std::process::Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

//! How the runner performs each action (idempotently), turning the result into
//! an observation. Errors never escape: they become `ActionFailed` (retried by
//! the machine with backoff) or, for the signer, `SignerFailed` (blocked),
//! `SignerHeld` (a probe holds the key; retried) or `SignerDrift`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use maildns_providers::TxtRecord;

use super::keyring;
use super::machine::{
    Action, Blocked, DomainState, Expect, KeyStatus, Observation, Selector, Verdict, Warning, step,
};
use super::runner::{Runner, RunnerError};
use crate::config::{DkimPolicy, Domain, SignerConfirm};
use crate::keys;
use crate::propagation::{Check, DiscoveryOptions, Nameserver, Upstream, discover};
use crate::publish::{self, DomainJob, Options, selector_name};
use crate::records::RecordKind;
use crate::signer::Signer;
use crate::signer::probe::{self, ProbeError, ProbeReport};

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
            Action::RevokeKey { .. } | Action::UnpublishKey { .. } => {
                match self.retirement_check(d, &selector).await {
                    Err(held) => return Some(held),
                    Ok(()) => self
                        .apply(d, dkim, state, &selector, KeyStatus::Withdrawing, now)
                        .await
                        .map(|()| Observation::KeyWithdrawn {
                            selector: selector.clone(),
                        }),
                }
            }
            Action::AwaitPropagation { expect, .. } => {
                self.propagation(d, dkim, state, &selector, *expect, now)
                    .await
            }
            Action::SwitchSigner { .. } => Ok(self.switch(d, state, &selector)),
            Action::ConfirmSigner { .. } => Ok(self.confirm_switch(d, state, &selector).await),
            Action::DeletePrivateKey { .. } | Action::PublishPrivateKey { .. } => {
                match self.retirement_check(d, &selector).await {
                    Err(held) => return Some(held),
                    Ok(()) if matches!(action, Action::DeletePrivateKey { .. }) => {
                        self.delete_key(d, state, &selector)
                    }
                    Ok(()) => self.disclose(d, state, &selector),
                }
            }
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
        let name = selector_name(&d.name, selector).map_err(|e| e.to_string())?;
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
        let name = selector_name(&d.name, selector).map_err(|e| e.to_string())?;
        let record_as = |status| -> Result<Option<TxtRecord>, String> {
            let entries = keyring::dkim_entries(&as_if(state, selector, status), dkim, now)
                .map_err(|e| format!("{e:#}"))?;
            Ok(entries
                .into_iter()
                .find(|e| &e.selector == selector)
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

    /// Points the signer at the key (pre-reload checks, tables, reload). A
    /// failed check writes nothing and reports `SignerFailed` (blocked). A failed
    /// reload command is only logged: the tables name the new key (served and
    /// safe), and the probe of the confirm step tells what is live. No rollback.
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
                .switch(d.name.as_str(), selector, &path)
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(sw) => {
                if let Some(e) = sw.reload_error {
                    tracing::warn!(domain = %d.name, "switch to {selector}: {e}; the probe will tell what OpenDKIM signs with");
                }
                Observation::SignerSwitched {
                    selector: selector.clone(),
                }
            }
            Err(reason) => Observation::SignerFailed {
                selector: selector.clone(),
                reason: format!("{reason} (nothing was changed; OpenDKIM keeps its current key)"),
            },
        }
    }

    /// The warning every run repeats while the signer cannot be probed.
    pub(super) fn tables_only_warning(&self) -> Option<Warning> {
        let cfg = self.config.signer.as_ref()?;
        (cfg.confirm == SignerConfirm::TablesOnly).then(|| Warning {
            code: "signer_unproven",
            message: format!(
                "{}: [signer] confirm = \"tables-only\": switches are checked in the signer's tables only; a reload OpenDKIM refuses goes unnoticed and an old key may be retired while it still signs",
                self.config.path.display()
            ),
        })
    }

    fn probe_mode(&self) -> bool {
        self.config
            .signer
            .as_ref()
            .is_some_and(|c| c.confirm == SignerConfirm::Probe)
    }

    fn probe_timeout(&self) -> Duration {
        self.config
            .signer
            .as_ref()
            .map_or(Duration::from_secs(30), |c| c.probe_timeout)
    }

    /// The entry the signer tables use for mail From `postmaster@domain`.
    fn table_entry(
        signer: &Signer,
        d: &Domain,
    ) -> Result<crate::signer::opendkim::KeyEntry, String> {
        let (kt, st) = signer.read_tables().map_err(|e| e.to_string())?;
        let from = format!("postmaster@{}", d.name);
        st.lookup(&from)
            .and_then(|n| kt.get(n))
            .cloned()
            .ok_or_else(|| format!("the signing table has no key for {from}"))
    }

    /// Probes the signer for `d` until `done` holds or the probe timeout ends,
    /// with backoff (100 ms doubling, at most 5 s). `between` runs once, after
    /// the first probe that does not satisfy `done` (e.g. re-send the reload).
    async fn probe_until(
        &self,
        signer: &Signer,
        d: &Domain,
        servers: &[SocketAddr],
        done: impl Fn(&ProbeReport) -> bool,
        mut between: impl FnMut() -> Option<String>,
    ) -> (Result<ProbeReport, ProbeError>, Option<String>) {
        let Some(socket) = &signer.socket else {
            return (
                Err(ProbeError::Task("no milter socket configured".into())),
                None,
            );
        };
        let timeout = self.probe_timeout();
        let io_timeout = timeout.min(Duration::from_secs(10));
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        let mut note = None;
        let mut first = true;
        loop {
            let r = probe::probe(socket, d.name.as_str(), servers, io_timeout).await;
            if r.as_ref().is_ok_and(&done) || Instant::now() + delay > deadline {
                return (r, note);
            }
            if first {
                first = false;
                note = between();
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn server_addrs(&self, d: &Domain) -> Result<Vec<SocketAddr>, String> {
        Ok(self.servers(d).await?.into_iter().map(|n| n.addr).collect())
    }

    /// Proves the switch: the tables name the key (re-switched if not), then
    /// (probe mode) a probe comes back signed with the new selector and verifies
    /// against every authoritative server. When the probe shows another key, the
    /// pre-reload checks run again and the reload is re-sent once, then probes
    /// continue until the probe timeout.
    async fn confirm_switch(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
    ) -> Observation {
        let held = |reason: String| Observation::SignerHeld {
            selector: selector.clone(),
            reason,
        };
        let Some(signer) = &self.signer else {
            return Observation::SignerConfirmed {
                selector: selector.clone(),
            };
        };
        let path = match key_path(state, selector) {
            Ok(p) => p,
            Err(reason) => return held(reason),
        };
        let names_it = |e: &crate::signer::opendkim::KeyEntry| {
            e.selector == selector.as_str() && Path::new(&e.key) == path
        };
        match Self::table_entry(signer, d) {
            Ok(e) if names_it(&e) => {}
            other => {
                // Tables edited since the switch (or half-written): switch again.
                let was = match other {
                    Ok(e) => format!("the signer tables name selector {}", e.selector),
                    Err(e) => e,
                };
                if let Err(e) = signer.switch(d.name.as_str(), selector, &path) {
                    return held(format!("{was}; switching again failed: {e}"));
                }
            }
        }
        if !self.probe_mode() {
            return Observation::SignerConfirmed {
                selector: selector.clone(),
            };
        }
        let servers = match self.server_addrs(d).await {
            Ok(s) => s,
            Err(reason) => {
                return Observation::ActionFailed {
                    selector: selector.clone(),
                    action: "confirm_signer".into(),
                    reason: format!("signer probe: {reason}"),
                };
            }
        };
        let (result, note) = self
            .probe_until(
                signer,
                d,
                &servers,
                |r| r.verified_with(d.name.as_str(), selector),
                || {
                    // The reload may have been refused (or never sent): check
                    // again what OpenDKIM checks, and re-send it.
                    match signer.check_reload().and_then(|()| signer.reload()) {
                        Ok(()) => None,
                        Err(e) => Some(e.to_string()),
                    }
                },
            )
            .await;
        match result {
            Ok(r) if r.verified_with(d.name.as_str(), selector) => Observation::SignerConfirmed {
                selector: selector.clone(),
            },
            Ok(r) => held(format!(
                "{selector} is not active yet: {}{}; the previous key keeps signing and stays published",
                r.describe(),
                note.map(|n| format!(" ({n})")).unwrap_or_default()
            )),
            Err(e) => Observation::ActionFailed {
                selector: selector.clone(),
                action: "confirm_signer".into(),
                reason: format!(
                    "signer probe: {e}{}; {selector} is not active until a probe proves it",
                    note.map(|n| format!(" ({n})")).unwrap_or_default()
                ),
            },
        }
    }

    /// Before a retirement step of `selector`: the signer tables must not name
    /// it, and (probe mode) a probe must come back verified with another
    /// selector and not signed with this one. `Err` is the observation to report
    /// instead of performing the step.
    async fn retirement_check(&self, d: &Domain, selector: &Selector) -> Result<(), Observation> {
        let held = |reason: String| Observation::SignerHeld {
            selector: selector.clone(),
            reason,
        };
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        match Self::table_entry(signer, d) {
            Ok(e) if e.selector == selector.as_str() => {
                return Err(held(format!(
                    "the signer tables still name selector {selector} ({}); its record and key stay",
                    e.key
                )));
            }
            _ => {}
        }
        if !self.probe_mode() {
            return Ok(());
        }
        let failed = |reason: String| Observation::ActionFailed {
            selector: selector.clone(),
            action: "signer_probe".into(),
            reason,
        };
        let servers = self
            .server_addrs(d)
            .await
            .map_err(|e| failed(format!("signer probe before retiring {selector}: {e}")))?;
        let domain = d.name.as_str();
        let other_verified = |r: &ProbeReport| {
            !r.signs_with(domain, selector)
                && r.signatures.iter().any(|s| {
                    s.domain.eq_ignore_ascii_case(domain)
                        && !s.selector.eq_ignore_ascii_case(selector.as_str())
                        && s.verified.is_ok()
                })
        };
        let (result, _) = self
            .probe_until(signer, d, &servers, other_verified, || None)
            .await;
        match result {
            Ok(r) if other_verified(&r) => Ok(()),
            Ok(r) if r.signs_with(domain, selector) => Err(held(format!(
                "{}: OpenDKIM still signs with {selector}, so its record and private key stay",
                r.describe()
            ))),
            Ok(r) => Err(held(format!(
                "{}: no proof that OpenDKIM has stopped signing with {selector}, so its record and private key stay",
                r.describe()
            ))),
            Err(e) => Err(failed(format!(
                "signer probe before retiring {selector}: {e}"
            ))),
        }
    }

    /// Probes the signer of `domain` (the daemon's periodic drift check). An
    /// active key the probe does not show signing (verified against the
    /// authoritative servers), or that the tables no longer name, is reported as
    /// drift ([`Observation::SignerDrift`], shown as blocked); a good probe clears
    /// it. A switched key the probe shows signing (verified) is confirmed (e.g.
    /// OpenDKIM was restarted since the refused reload). Saves the result and
    /// returns what is blocked afterwards. Does nothing without a probe-able
    /// signer or an active key.
    ///
    /// # Errors
    /// The domain is unknown, or the store fails.
    pub async fn probe_signers(
        &self,
        domain: &maildns_providers::Fqdn,
    ) -> Result<Vec<Blocked>, RunnerError> {
        let d = self.domain(domain)?;
        let state = self.store.load(domain)?;
        let (Some(signer), Some(policy)) = (&self.signer, self.policy(d)?) else {
            return Ok(state.blocked());
        };
        let of = |status: KeyStatus| -> Vec<Selector> {
            state
                .keys
                .iter()
                .filter(|k| k.status == status)
                .map(|k| k.selector.clone())
                .collect()
        };
        let (active, switched) = (of(KeyStatus::Active), of(KeyStatus::Switched));
        if !self.probe_mode() || active.is_empty() {
            return Ok(state.blocked());
        }
        let name = d.name.as_str();
        let tables = Self::table_entry(signer, d);
        let mut probed: Option<Result<ProbeReport, String>> = None;
        if let Ok(servers) = self.server_addrs(d).await.as_ref() {
            let wanted = |r: &ProbeReport| {
                active
                    .iter()
                    .chain(&switched)
                    .any(|s| r.verified_with(name, s))
            };
            let (r, _) = self.probe_until(signer, d, servers, wanted, || None).await;
            probed = Some(r.map_err(|e| format!("signer probe: {e}")));
        }
        let mut observations = Vec::new();
        let proven_switch = match &probed {
            Some(Ok(r)) => switched.iter().find(|s| r.verified_with(name, s)).cloned(),
            _ => None,
        };
        if let Some(sel) = proven_switch {
            observations.push(Observation::SignerConfirmed { selector: sel });
        } else {
            for sel in &active {
                let drift = |reason: String| Observation::SignerDrift {
                    selector: sel.clone(),
                    reason,
                };
                let table_ok = |e: &crate::signer::opendkim::KeyEntry| {
                    e.selector == sel.as_str() || switched.iter().any(|s| e.selector == s.as_str())
                };
                observations.push(match (&tables, &probed) {
                    (Ok(e), _) if !table_ok(e) => drift(format!(
                        "the signer tables name selector {} for {name}, not the active {sel} (edited by hand?)",
                        e.selector
                    )),
                    (Err(e), _) => drift(format!("the signer tables: {e}")),
                    (_, None) => drift(format!(
                        "no authoritative server to verify a probe signature of {name} against"
                    )),
                    (_, Some(Err(e))) => drift(e.clone()),
                    (_, Some(Ok(r))) if r.verified_with(name, sel) => {
                        Observation::SignerConfirmed {
                            selector: sel.clone(),
                        }
                    }
                    (_, Some(Ok(r))) => {
                        drift(format!("{} instead of the active {sel}", r.describe()))
                    }
                });
            }
        }
        let decision = step(&state, &observations, self.clock.now(), &policy);
        if decision.changed(&state) {
            self.store.save(&decision.state, &decision.events)?;
        }
        for e in &decision.events {
            tracing::info!(domain = %e.domain, "{} {}: {}", e.what, e.outcome, e.detail);
        }
        Ok(decision.state.blocked())
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
                .remove_key(d.name.as_str(), selector)
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

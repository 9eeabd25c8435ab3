//! The runner's signer steps: pointing the signer at a key, proving the switch
//! with probe signatures on EVERY signer endpoint, checking before a retirement
//! that no endpoint signs with the old key any more, and the daemon's periodic
//! drift probe. Backend-neutral: every engine is reached through
//! [`Signer`](crate::signer::Signer)'s operations.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{KeyFileError, ServersError, key_path};
use crate::config::{Domain, SignerConfirm};
use crate::rotation::machine::{
    Blocked, DomainState, KeyStatus, Observation, Selector, Warning, step,
};
use crate::rotation::runner::{Runner, RunnerError};
use crate::signer::probe::ProbeReport;
use crate::signer::{EndpointProbe, Signer, SignerEntry, SignerError};

/// Why the signer's data names no key for a domain.
#[derive(Debug, thiserror::Error)]
enum TableError {
    /// The data cannot be read.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The signing table has no entry for the address.
    #[error("the signing table has no key for {0}")]
    NoEntry(String),
}

impl Runner {
    /// Points the signer at the key (pre-reload checks, tables, reload). A
    /// failed check writes nothing and reports `SignerFailed` (blocked). A failed
    /// reload command is only logged: the tables name the new key (served and
    /// safe), and the probe of the confirm step tells what is live. No rollback.
    pub(super) async fn switch(
        &self,
        d: &Domain,
        state: &DomainState,
        selector: &Selector,
    ) -> Observation {
        let Some(signer) = &self.signer else {
            // No signer configured: maildns only publishes; the operator's
            // signer reads the key from key_path.
            return Observation::SignerSwitched {
                selector: selector.clone(),
            };
        };
        let result = match key_path(state, selector) {
            Ok(path) => signer
                .switch(d.name.as_str(), selector, &path)
                .await
                .map_err(KeyFileError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(sw) => {
                if let Some(e) = sw.reload_error {
                    tracing::warn!(domain = %d.name, "switch to {selector}: {e}; the probe will tell what {} signs with", signer.engine());
                }
                Observation::SignerSwitched {
                    selector: selector.clone(),
                }
            }
            Err(reason) => Observation::SignerFailed {
                selector: selector.clone(),
                reason: format!(
                    "{reason} (nothing was changed; {} keeps its current key)",
                    signer.engine()
                ),
            },
        }
    }

    /// The warning every run repeats while the signer cannot be probed.
    pub(in crate::rotation) fn tables_only_warning(&self) -> Option<Warning> {
        super::super::runner::tables_only_warning(&self.config)
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

    /// The entry the signer's data uses for mail From `postmaster@domain`.
    async fn table_entry(signer: &Signer, d: &Domain) -> Result<SignerEntry, TableError> {
        signer
            .entry(d.name.as_str())
            .await?
            .ok_or_else(|| TableError::NoEntry(format!("postmaster@{}", d.name)))
    }

    /// Probes every endpoint of the signer for `d` until `done` holds on all
    /// of them or the probe timeout ends, with backoff (100 ms doubling, at
    /// most 5 s). With `reload_between`, the pre-reload checks and the reload
    /// are sent again once, after the first round that does not satisfy
    /// `done`. Returns the last round (one report per endpoint; empty when the
    /// signer has no endpoint).
    async fn probe_until(
        &self,
        signer: &Signer,
        d: &Domain,
        servers: &[SocketAddr],
        done: impl Fn(&ProbeReport) -> bool,
        reload_between: bool,
    ) -> (Vec<EndpointProbe>, Option<String>) {
        // A flag, not an async closure: an `AsyncFnMut` capturing borrows makes
        // this future not `Send` for every lifetime (rustc #102211), and the
        // runner's futures run on spawned tasks.
        let timeout = self.probe_timeout();
        let io_timeout = timeout.min(Duration::from_secs(10));
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        let mut note = None;
        let mut first = true;
        loop {
            let now = self.clock.now();
            let round = signer
                .probe(d.name.as_str(), servers, io_timeout, now)
                .await;
            if round.is_empty()
                || EndpointProbe::all(&round, &done)
                || Instant::now() + delay > deadline
            {
                return (round, note);
            }
            if first && reload_between {
                // The reload may have been refused (or never sent): check
                // again what the signer checks, and re-send it.
                note = signer.check_and_reload().await.err().map(|e| e.to_string());
            }
            first = false;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn server_addrs(&self, d: &Domain) -> Result<Vec<SocketAddr>, ServersError> {
        Ok(self.servers(d).await?.into_iter().map(|n| n.addr).collect())
    }

    /// Proves the switch: the signer's data names the key (re-switched if
    /// not), then (probe mode) a probe through EVERY endpoint comes back signed
    /// with the new selector and verifies against every authoritative server.
    /// When a round shows another key, the pre-reload checks run again and the
    /// reload is re-sent once, then probes continue until the probe timeout.
    /// An endpoint that cannot be probed fails the step (retried with
    /// backoff); one that signs otherwise holds it; both name the endpoint.
    pub(super) async fn confirm_switch(
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
            Err(reason) => return held(reason.to_string()),
        };
        // The key itself (its file, or the engine's shared store): what the
        // signer's entry must hold. Found nowhere: nothing to prove.
        let public_key = match state.key(selector) {
            Some(k) => match self
                .private_key(d, k)
                .await
                .and_then(|k| Ok(k.public_key_der()?))
            {
                Ok(p) => p,
                Err(reason) => return held(reason.to_string()),
            },
            None => return held(format!("no key {selector}")),
        };
        match Self::table_entry(signer, d).await {
            Ok(e) if e.is(selector, &path, &public_key) => {}
            other => {
                // Data edited since the switch (or half-written): switch again.
                let was = match other {
                    Ok(e) => format!("the signer tables name selector {}", e.selector),
                    Err(e) => e.to_string(),
                };
                if let Err(e) = signer.switch(d.name.as_str(), selector, &path).await {
                    return held(format!("{was}; switching again failed: {e}"));
                }
            }
        }
        if !self.probe_mode() {
            return Observation::SignerConfirmed {
                selector: selector.clone(),
            };
        }
        let failed = |reason: String| Observation::ActionFailed {
            selector: selector.clone(),
            action: "confirm_signer".into(),
            reason,
        };
        let servers = match self.server_addrs(d).await {
            Ok(s) => s,
            Err(reason) => return failed(format!("signer probe: {reason}")),
        };
        let name = d.name.as_str();
        let verified = |r: &ProbeReport| r.verified_with(name, selector);
        let (round, note) = self.probe_until(signer, d, &servers, verified, true).await;
        let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
        if EndpointProbe::all(&round, verified) {
            return Observation::SignerConfirmed {
                selector: selector.clone(),
            };
        }
        if round.is_empty() {
            return failed(format!(
                "signer probe: {} has no endpoint to probe; {selector} is not active until a probe proves it",
                signer.engine()
            ));
        }
        if EndpointProbe::first_error(&round).is_some() {
            return failed(format!(
                "signer probe: {}{note}; {selector} is not active until a probe on every signer proves it",
                EndpointProbe::describe_failing(&round, verified)
            ));
        }
        held(format!(
            "{selector} is not active yet: {}{note}; the previous key keeps signing and stays published",
            EndpointProbe::describe_failing(&round, verified)
        ))
    }

    /// Before a retirement step of `selector`: the signer's data must not name
    /// it, and (probe mode) a probe through EVERY endpoint must come back
    /// verified with another selector and not signed with this one. `Err` is
    /// the observation to report instead of performing the step (naming the
    /// endpoints that hold it).
    pub(super) async fn retirement_check(
        &self,
        d: &Domain,
        selector: &Selector,
    ) -> Result<(), Observation> {
        let held = |reason: String| Observation::SignerHeld {
            selector: selector.clone(),
            reason,
        };
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        if let Ok(e) = Self::table_entry(signer, d).await
            && e.selector == selector.as_str()
        {
            return Err(held(format!(
                "the signer tables still name selector {selector} ({}); its record and key stay",
                e.location()
            )));
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
        let (round, _) = self
            .probe_until(signer, d, &servers, other_verified, false)
            .await;
        if EndpointProbe::all(&round, other_verified) {
            return Ok(());
        }
        if round.is_empty() || EndpointProbe::first_error(&round).is_some() {
            return Err(failed(format!(
                "signer probe before retiring {selector}: {}",
                if round.is_empty() {
                    format!("{} has no endpoint to probe", signer.engine())
                } else {
                    EndpointProbe::describe_failing(&round, other_verified)
                }
            )));
        }
        let still = round.iter().any(|e| {
            e.result
                .as_ref()
                .is_ok_and(|r| r.signs_with(domain, selector))
        });
        let failing = EndpointProbe::describe_failing(&round, other_verified);
        Err(held(if still {
            format!(
                "{failing}: {} still signs with {selector}, so its record and private key stay",
                signer.engine()
            )
        } else {
            format!(
                "{failing}: no proof that {} has stopped signing with {selector}, so its record and private key stay",
                signer.engine()
            )
        }))
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
    ///
    /// On a shared store the probe holds the domain's lease, as a run does
    /// ([`StoreError::Leased`](crate::rotation::StoreError::Leased) when another
    /// replica works the domain).
    pub async fn probe_signers(
        &self,
        domain: &maildns_providers::Fqdn,
    ) -> Result<Vec<Blocked>, RunnerError> {
        self.domain(domain)?;
        self.store.lease(domain)?;
        let result = self.probe_signers_leased(domain).await;
        if let Err(e) = self.store.release(domain) {
            tracing::warn!(domain = %domain, "cannot release the lease (it expires by itself): {e}");
        }
        result
    }

    async fn probe_signers_leased(
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
        let tables = Self::table_entry(signer, d).await;
        // `None`: no authoritative server to verify against.
        let mut probed: Option<Vec<EndpointProbe>> = None;
        if let Ok(servers) = self.server_addrs(d).await.as_ref() {
            let wanted = |r: &ProbeReport| {
                active
                    .iter()
                    .chain(&switched)
                    .any(|s| r.verified_with(name, s))
            };
            let (round, _) = self.probe_until(signer, d, servers, wanted, false).await;
            probed = Some(round);
        }
        let mut observations = Vec::new();
        let proven_switch = probed.as_ref().and_then(|round| {
            switched
                .iter()
                .find(|s| EndpointProbe::all(round, |r| r.verified_with(name, s)))
                .cloned()
        });
        if let Some(sel) = proven_switch {
            observations.push(Observation::SignerConfirmed { selector: sel });
        } else {
            for sel in &active {
                let drift = |reason: String| Observation::SignerDrift {
                    selector: sel.clone(),
                    reason,
                };
                let table_ok = |e: &SignerEntry| {
                    e.selector == sel.as_str() || switched.iter().any(|s| e.selector == s.as_str())
                };
                let verified = |r: &ProbeReport| r.verified_with(name, sel);
                observations.push(match (&tables, &probed) {
                    (Ok(e), _) if !table_ok(e) => drift(format!(
                        "the signer tables name selector {} for {name}, not the active {sel} (edited by hand?)",
                        e.selector
                    )),
                    (Err(e), _) => drift(format!("the signer tables: {e}")),
                    (_, None) => drift(format!(
                        "no authoritative server to verify a probe signature of {name} against"
                    )),
                    (_, Some(round)) if round.is_empty() => drift(format!(
                        "signer probe: {} has no endpoint to probe",
                        signer.engine()
                    )),
                    (_, Some(round)) if EndpointProbe::all(round, verified) => {
                        Observation::SignerConfirmed {
                            selector: sel.clone(),
                        }
                    }
                    (_, Some(round)) if EndpointProbe::first_error(round).is_some() => drift(
                        format!(
                            "signer probe: {}",
                            EndpointProbe::describe_failing(round, verified)
                        ),
                    ),
                    (_, Some(round)) => drift(format!(
                        "{} instead of the active {sel}",
                        EndpointProbe::describe_failing(round, verified)
                    )),
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
}

//! The DKIM rotation state machine: a pure function of (persisted state,
//! observations, now, policy) to (next state, actions, events).
//!
//! Nothing here reads a clock, a file or the network. The runner gathers
//! [`Observation`]s (what its last actions achieved), calls [`step`], saves
//! [`Decision::state`] together with [`Decision::events`] in one transaction,
//! then performs [`Decision::actions`]. Every action is an idempotent
//! description, so a crash anywhere only means some action is performed twice.
//!
//! See the module documentation of [`crate::rotation`] for the lifecycle and
//! the invariants this module guarantees.

use std::collections::BTreeSet;

pub use super::actions::{Action, Decision, Event, Expect, Observation, Verdict, Warning};
pub use super::policy::{
    Disposal, MAX_POLICY_DAYS, Policy, PolicyError, PolicySettings, Withdrawal,
};
pub use super::schedule::{Scheduled, ScheduledAction, schedule};
pub use super::selector::{Selector, SelectorError};
pub use super::state::{
    BlockKind, Blocked, DomainState, InvariantError, KeyRecord, KeyStatus, check_invariants,
};
pub use crate::keys::{Algorithm, KeySpec};
use chrono::{DateTime, TimeDelta, Utc};

use super::selector::format_selector;

/// Advances one domain: folds `observations` into `state`, plans a new key
/// when one is due, and returns the next actions. Pure and deterministic.
pub fn step(
    state: &DomainState,
    observations: &[Observation],
    now: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    let mut next = state.clone();
    let mut events = Vec::new();
    for obs in observations {
        fold(&mut next, obs, now, policy, &mut events);
    }
    let mut warnings = Vec::new();
    let actions = decide(&mut next, now, policy, &mut events, &mut warnings);
    warnings.extend(super::strength::key_strength_warnings(&next));
    Decision {
        state: next,
        actions,
        events,
        warnings,
    }
}

/// The earliest time at which [`step`] has something to do for this domain
/// (a time at or before now means "now"); `None` when nothing will ever be
/// due without an operator (every algorithm blocked).
pub fn next_due(state: &DomainState, policy: &Policy) -> Option<DateTime<Utc>> {
    let mut due: Option<DateTime<Utc>> = None;
    let mut consider = |t: Option<DateTime<Utc>>| {
        if let Some(t) = t {
            due = Some(due.map_or(t, |d| d.min(t)));
        }
    };
    let blocked: BTreeSet<Algorithm> = state.halted().iter().map(|b| b.algorithm).collect();
    for k in &state.keys {
        if !blocked.contains(&k.algorithm) {
            consider(key_due(k, policy));
        }
    }
    for spec in &policy.s.keys {
        if !blocked.contains(&spec.algorithm) {
            consider(rotation_due(state, spec.algorithm, policy));
        }
    }
    due
}

/// Like [`step`], but plans a new key now for every algorithm that has none
/// pending, even if its rotation is not due yet (`maildns rotate --now`). The
/// rest of the lifecycle is unchanged: the new key still waits for propagation
/// and the old one keeps its full overlap.
pub fn rotate_now(
    state: &DomainState,
    observations: &[Observation],
    now: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    let mut forced = policy.clone();
    // A rotation interval of one nanosecond makes every active key due (a zero
    // interval is refused by Policy::new, so this only exists here).
    forced.s.rotation_interval = TimeDelta::nanoseconds(1);
    let mut d = step(state, observations, now, &forced);
    for e in &mut d.events {
        if e.what == "planned" && e.detail.starts_with("rotation due") {
            e.detail = e
                .detail
                .replacen("rotation due", "rotation requested now", 1);
        }
    }
    d
}

/// Clears a failed switch so rotation of `algorithm` resumes: the key goes
/// back to [`KeyStatus::Propagated`] and the switch is tried again. For an
/// operator, after fixing the signer. Returns the event to log.
pub fn unblock(state: &mut DomainState, algorithm: Algorithm, now: DateTime<Utc>) -> Option<Event> {
    let domain = state.domain.clone();
    let key = state
        .keys
        .iter_mut()
        .find(|k| k.algorithm == algorithm && k.status == KeyStatus::SwitchFailed)?;
    key.progressed(KeyStatus::Propagated);
    Some(Event {
        at: now,
        domain,
        selector: Some(key.selector.clone()),
        what: "unblocked".into(),
        outcome: "ok".into(),
        detail: "operator cleared the failed switch; the switch will be retried".into(),
    })
}

/// Makes every key a signer probe holds ([`KeyRecord::held`], not drift) due
/// now instead of after its backoff, so the held step is retried (with its
/// probe) at once: for an operator who fixed the signer (`rotate --unblock`).
/// The hold itself stays until a probe clears it. Returns the events to log.
pub fn retry_held(state: &mut DomainState, now: DateTime<Utc>) -> Vec<Event> {
    let domain = state.domain.clone();
    let mut events = Vec::new();
    for k in &mut state.keys {
        if k.held.is_some()
            && k.status != KeyStatus::Active
            && k.not_before.is_some_and(|t| t > now)
        {
            k.not_before = None;
            events.push(Event {
                at: now,
                domain: domain.clone(),
                selector: Some(k.selector.clone()),
                what: "retry".into(),
                outcome: "ok".into(),
                detail: "operator asked to retry the held step now".into(),
            });
        }
    }
    events
}

/// Why an existing key could not be adopted (see [`adopt`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    /// An RSA key under 1024 bits (RFC 8301 §3.2): never recorded.
    #[error(
        "{domain}: a {bits}-bit RSA key: RSA keys must have at least 1024 bits (RFC 8301, section 3.2)"
    )]
    TooSmall {
        /// The domain.
        domain: String,
        /// The key's size.
        bits: u32,
    },
    /// Another key is already active for this algorithm.
    #[error(
        "{domain} already has an active {algorithm} key (selector {active}); maildns rotates it, so there is nothing to import"
    )]
    AlreadyActive {
        /// The domain.
        domain: String,
        /// The algorithm.
        algorithm: Algorithm,
        /// The active key's selector.
        active: Selector,
    },
    /// The selector is already known with other properties or in another status.
    #[error(
        "{domain}: selector {selector} is already recorded ({status}, {algorithm} {bits} bits, key {key_path}); a selector is never reused"
    )]
    SelectorTaken {
        /// The domain.
        domain: String,
        /// The selector.
        selector: Selector,
        /// Its recorded status.
        status: KeyStatus,
        /// Its recorded algorithm.
        algorithm: Algorithm,
        /// Its recorded size.
        bits: u32,
        /// Its recorded key path (or `none`).
        key_path: String,
    },
}

/// Records a key the signer already uses (set up before maildns, e.g. by hand
/// with `opendkim-genkey`) as the domain's [`KeyStatus::Active`] key, active
/// since `now`, so rotation starts from it instead of re-keying. Its record is
/// taken to be published already (`safe_after` = `now`).
///
/// Idempotent: adopting the same key again (same selector, algorithm, size and
/// key path, still active) returns `Ok(None)` and changes nothing. Refused when
/// another key is active for the algorithm, or the selector is known otherwise.
/// Returns the event to log with the saved state.
pub fn adopt(
    state: &mut DomainState,
    selector: Selector,
    algorithm: Algorithm,
    bits: u32,
    key_path: &str,
    now: DateTime<Utc>,
) -> Result<Option<Event>, AdoptError> {
    let domain = state.domain.to_string();
    if algorithm == Algorithm::Rsa && bits < crate::keys::RSA_MIN_BITS {
        return Err(AdoptError::TooSmall { domain, bits });
    }
    if let Some(k) = state.key(&selector) {
        if k.status == KeyStatus::Active
            && k.algorithm == algorithm
            && k.bits == bits
            && k.key_path.as_deref() == Some(key_path)
        {
            return Ok(None);
        }
        return Err(AdoptError::SelectorTaken {
            domain,
            selector,
            status: k.status,
            algorithm: k.algorithm,
            bits: k.bits,
            key_path: k.key_path.clone().unwrap_or_else(|| "none".into()),
        });
    }
    if let Some(active) = state.active(algorithm) {
        return Err(AdoptError::AlreadyActive {
            domain,
            algorithm,
            active: active.selector.clone(),
        });
    }
    let mut key = KeyRecord::planned(selector.clone(), algorithm, bits, now);
    key.status = KeyStatus::Active;
    key.key_path = Some(key_path.to_string());
    key.safe_after = Some(now);
    key.active_at = Some(now);
    state.keys.push(key);
    Ok(Some(event(
        state,
        now,
        &selector,
        "adopted",
        "ok",
        format!("existing {algorithm} {bits}-bit key {key_path} adopted as the active key"),
    )))
}

fn event(
    state: &DomainState,
    now: DateTime<Utc>,
    selector: &Selector,
    what: &str,
    outcome: &str,
    detail: String,
) -> Event {
    Event {
        at: now,
        domain: state.domain.clone(),
        selector: Some(selector.clone()),
        what: what.into(),
        outcome: outcome.into(),
        detail,
    }
}

/// Applies one observation. Observations that do not match the key's current
/// status (stale, repeated, out of order) change nothing.
fn fold(
    state: &mut DomainState,
    obs: &Observation,
    now: DateTime<Utc>,
    policy: &Policy,
    events: &mut Vec<Event>,
) {
    let sel = obs.selector().clone();
    let Some(key) = state.key_mut(&sel) else {
        return;
    };
    let status = key.status;
    let mut ev: Option<(&str, &str, String)> = None;
    let mut confirmed: Option<Algorithm> = None;
    match obs {
        Observation::KeyGenerated { key_path, .. } if status == KeyStatus::Planned => {
            key.progressed(KeyStatus::Generated);
            key.key_path = Some(key_path.clone());
            ev = Some((
                "generated",
                "ok",
                format!("{} {} bits", key.algorithm, key.bits),
            ));
        }
        Observation::KeyPublished { .. } if status == KeyStatus::Generated => {
            key.progressed(KeyStatus::Published);
            key.published_at = Some(now);
            ev = Some((
                "published",
                "ok",
                "record published beside the current one".into(),
            ));
        }
        Observation::Propagation {
            expect, verdict, ..
        } => {
            let waiting = (status == KeyStatus::Published && *expect == Expect::Present)
                || (status == KeyStatus::Withdrawing && *expect == policy.withdrawn_expect());
            if waiting {
                match verdict {
                    Verdict::Passed { safe_after } => {
                        if status == KeyStatus::Published {
                            key.progressed(KeyStatus::Propagated);
                            key.propagated_at = Some(now);
                            key.safe_after = Some(*safe_after);
                            ev = Some((
                                "propagated",
                                "ok",
                                format!(
                                    "every authoritative server serves it; safe after {safe_after}"
                                ),
                            ));
                        } else {
                            key.progressed(KeyStatus::Withdrawn);
                            key.withdrawn_at = Some(now);
                            key.withdrawal_safe_after = Some(*safe_after);
                            ev = Some((
                                "withdrawn",
                                "ok",
                                format!(
                                    "withdrawal seen on every authoritative server; safe after {safe_after}"
                                ),
                            ));
                        }
                    }
                    Verdict::NotYet { detail } => {
                        key.attempts = key.attempts.saturating_add(1);
                        key.not_before = Some(now + policy.s.recheck_interval);
                        // What was seen, for `status` and the daemon to name
                        // the servers if the wait lasts too long.
                        key.failure = Some(format!("{}{detail}", super::state::NOT_YET_PREFIX));
                        if key.attempts == 1 {
                            ev = Some(("propagation", "pending", detail.clone()));
                        }
                    }
                }
            }
        }
        Observation::SignerSwitched { .. } if status == KeyStatus::Propagated => {
            key.progressed(KeyStatus::Switched);
            ev = Some(("switched", "ok", "signer pointed at the new key".into()));
        }
        Observation::SignerConfirmed { .. }
            if status == KeyStatus::Active && key.held.is_some() =>
        {
            key.held = None;
            ev = Some((
                "drift",
                "ok",
                "a probe shows the signer signing with it again".into(),
            ));
        }
        Observation::SignerHeld { reason, .. }
            if matches!(
                status,
                KeyStatus::Switched
                    | KeyStatus::Retiring
                    | KeyStatus::Withdrawn
                    | KeyStatus::Disclosed
            ) =>
        {
            key.attempts = key.attempts.saturating_add(1);
            key.not_before = Some(now + policy.backoff(key.attempts));
            key.failure = Some(reason.clone());
            if key.held.as_ref() != Some(reason) {
                let what = if status == KeyStatus::Switched {
                    "not_signing"
                } else {
                    "still_signing"
                };
                ev = Some((what, "blocked", reason.clone()));
            }
            key.held = Some(reason.clone());
        }
        Observation::SignerDrift { reason, .. } if status == KeyStatus::Active => {
            if key.held.as_ref() != Some(reason) {
                ev = Some(("drift", "blocked", reason.clone()));
            }
            key.held = Some(reason.clone());
        }
        Observation::SignerConfirmed { .. } if status == KeyStatus::Switched => {
            key.progressed(KeyStatus::Active);
            key.active_at = Some(now);
            confirmed = Some(key.algorithm);
            ev = Some(("active", "ok", "signer confirmed signing with it".into()));
        }
        Observation::SignerFailed { reason, .. }
            if matches!(status, KeyStatus::Propagated | KeyStatus::Switched) =>
        {
            key.status = KeyStatus::SwitchFailed;
            key.failure = Some(reason.clone());
            key.not_before = None;
            ev = Some(("switch_failed", "blocked", reason.clone()));
        }
        Observation::KeyWithdrawn { .. } if status == KeyStatus::Retiring => {
            key.progressed(KeyStatus::Withdrawing);
            ev = Some((
                "withdrawing",
                "ok",
                format!("{:?} requested at the host", policy.s.withdrawal).to_lowercase(),
            ));
        }
        Observation::PrivateKeyPublished { .. } if status == KeyStatus::Withdrawn => {
            key.progressed(KeyStatus::Disclosed);
            ev = Some((
                "disclosed",
                "ok",
                "private key published for deniability".into(),
            ));
        }
        Observation::PrivateKeyDeleted { .. }
            if matches!(status, KeyStatus::Withdrawn | KeyStatus::Disclosed) =>
        {
            key.progressed(KeyStatus::Destroyed);
            key.destroyed_at = Some(now);
            ev = Some(("destroyed", "ok", "private key deleted".into()));
        }
        Observation::ActionFailed { action, reason, .. }
            if !matches!(status, KeyStatus::SwitchFailed | KeyStatus::Destroyed) =>
        {
            key.attempts = key.attempts.saturating_add(1);
            key.not_before = Some(now + policy.backoff(key.attempts));
            key.failure = Some(reason.clone());
            ev = Some((
                action.as_str(),
                "error",
                format!("attempt {}: {reason}", key.attempts),
            ));
        }
        _ => {}
    }
    if let Some((what, outcome, detail)) = ev {
        let e = event(state, now, &sel, what, outcome, detail);
        events.push(e);
    }
    if let Some(alg) = confirmed {
        // The previously signing key stops signing now.
        let retiring: Vec<Selector> = state
            .keys
            .iter()
            .filter(|k| k.algorithm == alg && k.status == KeyStatus::Active && k.selector != sel)
            .map(|k| k.selector.clone())
            .collect();
        for old in retiring {
            if let Some(k) = state.key_mut(&old) {
                k.progressed(KeyStatus::Retiring);
                k.retired_at = Some(now);
            }
            let e = event(
                state,
                now,
                &old,
                "retiring",
                "ok",
                format!(
                    "no longer signs; record kept for {} days",
                    policy.s.overlap.num_days()
                ),
            );
            events.push(e);
        }
    }
}

/// When this key's next action becomes possible; `None` if it has none
/// (active, blocked, destroyed, or missing a timestamp it needs).
pub(super) fn key_due(key: &KeyRecord, policy: &Policy) -> Option<DateTime<Utc>> {
    let base = match key.status {
        KeyStatus::Planned
        | KeyStatus::Generated
        | KeyStatus::Published
        | KeyStatus::Switched
        | KeyStatus::Withdrawing
        | KeyStatus::Disclosed => DateTime::<Utc>::UNIX_EPOCH,
        KeyStatus::Withdrawn => match policy.s.disposal {
            Disposal::Delete => DateTime::<Utc>::UNIX_EPOCH,
            // Disclosed only once no resolver may still serve the full record.
            // A state saved before this time was kept waits one overlap.
            Disposal::Disclose => match key.withdrawal_safe_after {
                Some(t) => t,
                None => key.withdrawn_at? + policy.s.overlap,
            },
        },
        KeyStatus::Propagated => key.safe_after?,
        KeyStatus::Retiring => key.retired_at? + policy.s.overlap,
        KeyStatus::Active | KeyStatus::SwitchFailed | KeyStatus::Destroyed => return None,
    };
    Some(key.not_before.map_or(base, |nb| nb.max(base)))
}

/// When a new key for `algorithm` is due; `None` while one is pending or blocked.
pub(super) fn rotation_due(
    state: &DomainState,
    algorithm: Algorithm,
    policy: &Policy,
) -> Option<DateTime<Utc>> {
    if state.pending(algorithm).is_some() {
        return None;
    }
    match state.active(algorithm) {
        Some(active) => Some(active.active_at? + policy.s.rotation_interval),
        None => Some(DateTime::<Utc>::UNIX_EPOCH),
    }
}

/// The action for a key whose due time has come.
pub(super) fn key_action(key: &KeyRecord, policy: &Policy) -> Option<Action> {
    let selector = key.selector.clone();
    Some(match key.status {
        KeyStatus::Planned => Action::GenerateKey {
            selector,
            algorithm: key.algorithm,
            bits: key.bits,
        },
        KeyStatus::Generated => Action::PublishKey { selector },
        KeyStatus::Published => Action::AwaitPropagation {
            selector,
            expect: Expect::Present,
        },
        KeyStatus::Propagated => Action::SwitchSigner { selector },
        KeyStatus::Switched => Action::ConfirmSigner { selector },
        KeyStatus::Retiring => match policy.s.withdrawal {
            Withdrawal::Revoke => Action::RevokeKey { selector },
            Withdrawal::Remove => Action::UnpublishKey { selector },
        },
        KeyStatus::Withdrawing => Action::AwaitPropagation {
            selector,
            expect: policy.withdrawn_expect(),
        },
        KeyStatus::Withdrawn => match policy.s.disposal {
            Disposal::Delete => Action::DeletePrivateKey { selector },
            Disposal::Disclose => Action::PublishPrivateKey { selector },
        },
        KeyStatus::Disclosed => Action::DeletePrivateKey { selector },
        KeyStatus::Active | KeyStatus::SwitchFailed | KeyStatus::Destroyed => return None,
    })
}

/// Chooses a selector for a key planned at `now`: the formatted date, then
/// with suffixes `a`..`z`, `aa`..`zz`, skipping any selector the domain used
/// within the reuse window (or still holds).
pub(super) fn choose_selector(
    state: &DomainState,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Option<Selector> {
    let base = format_selector(&policy.s.selector_format, now).ok()?;
    let letters: Vec<char> = ('a'..='z').collect();
    let mut suffixes = vec![String::new()];
    suffixes.extend(letters.iter().map(|c| c.to_string()));
    for a in &letters {
        for b in &letters {
            suffixes.push(format!("{a}{b}"));
        }
    }
    let horizon = now - policy.s.selector_reuse_window;
    suffixes.into_iter().find_map(|suffix| {
        let candidate = Selector::parse(&format!("{base}{suffix}")).ok()?;
        let taken = state.keys.iter().any(|k| {
            k.selector == candidate && (k.status != KeyStatus::Destroyed || k.last_used() > horizon)
        });
        (!taken).then_some(candidate)
    })
}

fn decide(
    state: &mut DomainState,
    now: DateTime<Utc>,
    policy: &Policy,
    events: &mut Vec<Event>,
    warnings: &mut Vec<Warning>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut wait: Option<DateTime<Utc>> = None;
    let mut wait_for = |t: DateTime<Utc>| wait = Some(wait.map_or(t, |w: DateTime<Utc>| w.min(t)));

    let blocked = state.halted();
    for b in &blocked {
        actions.push(Action::Failed {
            algorithm: b.algorithm,
            selector: b.selector.clone(),
            reason: b.reason.clone(),
        });
    }
    let is_blocked = |alg: Algorithm| blocked.iter().any(|b| b.algorithm == alg);

    for key in &state.keys {
        if is_blocked(key.algorithm) {
            continue;
        }
        if let Some(due) = key_due(key, policy) {
            if due <= now {
                actions.extend(key_action(key, policy));
            } else {
                wait_for(due);
            }
        }
    }

    for spec in policy.s.keys.clone() {
        if is_blocked(spec.algorithm) {
            continue;
        }
        let Some(due) = rotation_due(state, spec.algorithm, policy) else {
            continue;
        };
        if due > now {
            wait_for(due);
            continue;
        }
        let Some(selector) = choose_selector(state, now, policy) else {
            let reason = format!(
                "no free selector for format '{}' at {now}",
                policy.s.selector_format
            );
            warnings.push(Warning {
                code: "no_selector",
                message: reason.clone(),
            });
            events.push(Event {
                at: now,
                domain: state.domain.clone(),
                selector: None,
                what: "planned".into(),
                outcome: "error".into(),
                detail: reason,
            });
            wait_for(now + policy.s.max_backoff);
            continue;
        };
        let (bits, fallback) = policy.effective_bits(&spec);
        if fallback {
            let message = format!(
                "{} cannot hold a {}-bit RSA key (host limit {} bits): generating {bits} bits instead",
                state.domain,
                spec.bits,
                policy.s.max_bits_for_host.unwrap_or_default()
            );
            warnings.push(Warning {
                code: "bits_fallback",
                message: message.clone(),
            });
            events.push(event(
                state,
                now,
                &selector,
                "bits_fallback",
                "warning",
                message,
            ));
        }
        let reason = if state.active(spec.algorithm).is_some() {
            "rotation due"
        } else {
            "first key for this domain"
        };
        events.push(event(
            state,
            now,
            &selector,
            "planned",
            "ok",
            format!("{reason}: {} {bits} bits", spec.algorithm),
        ));
        actions.push(Action::GenerateKey {
            selector: selector.clone(),
            algorithm: spec.algorithm,
            bits,
        });
        state
            .keys
            .push(KeyRecord::planned(selector, spec.algorithm, bits, now));
    }
    if let Some(until) = wait {
        actions.push(Action::Wait { until });
    }
    actions
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

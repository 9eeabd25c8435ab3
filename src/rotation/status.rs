//! What `maildns status` shows about a domain's keys: a pure summary of its
//! state, its policy and its recent events at a given time.
//!
//! Why this module exists: the state machine knows what it will do next, but in
//! its own terms ([`Action`]s at due times). Operators need it in words — which
//! selector signs, how old it is, what happens next and when, which old
//! selectors go when, and what is blocked and why — the same for the table and
//! `--json`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::machine::{
    Action, Algorithm, BlockKind, Blocked, DomainState, Expect, KeyStatus, Policy, ScheduledAction,
    schedule,
};
use super::store::StoredEvent;

/// A key that signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveKey {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Selector.
    pub selector: String,
    /// Size in bits.
    pub bits: u32,
    /// Since when it signs.
    pub active_at: Option<DateTime<Utc>>,
    /// Whole days since then.
    pub age_days: Option<i64>,
    /// Its private key file.
    pub key_path: Option<String>,
}

/// A key on its way to signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingKey {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Selector.
    pub selector: String,
    /// Size in bits.
    pub bits: u32,
    /// Where it is.
    pub status: KeyStatus,
    /// When it was planned.
    pub created_at: DateTime<Utc>,
    /// When the signer may switch to it (after propagation).
    pub safe_after: Option<DateTime<Utc>>,
}

/// An old key whose record is still (or was recently) published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldKey {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Selector.
    pub selector: String,
    /// Where it is.
    pub status: KeyStatus,
    /// When it stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// When its record is revoked or removed (retired_at + overlap).
    pub removal_at: Option<DateTime<Utc>>,
}

/// The last failure of a key's current step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyFailure {
    /// Selector.
    pub selector: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why (never a secret).
    pub reason: String,
    /// The next attempt, not before.
    pub retry_at: Option<DateTime<Utc>>,
}

/// A key waiting for every authoritative server to serve its record (or its
/// withdrawal), from the last negative check ([`propagation_waits`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropagationWait {
    /// Selector.
    pub selector: String,
    /// `published` (its record) or `withdrawing` (its withdrawal).
    pub status: KeyStatus,
    /// Since when it waits: when the record was published, or when its
    /// withdrawal was due (retired + overlap).
    pub since: DateTime<Utc>,
    /// Negative checks so far.
    pub checks: u32,
    /// What the last check saw: each server that does not serve it yet and
    /// what it answered (`127.0.0.1:5300: REFUSED`, `... nothing`).
    pub detail: String,
    /// Set when it has waited longer than the bound
    /// (`propagation.daemon_timeout`): why it needs an operator (a server
    /// that refuses, fails, times out or never gets the zone), in words.
    pub overdue: Option<String>,
}

/// The keys of `state` waiting for propagation at `now`; each `overdue` when
/// it has waited longer than `bound` with at least two negative checks (one
/// check of a record published a moment ago after a long pause is not
/// enough). `overlap` dates a withdrawal's start (retired + overlap).
pub fn propagation_waits(
    state: &DomainState,
    overlap: Option<TimeDelta>,
    bound: TimeDelta,
    now: DateTime<Utc>,
) -> Vec<PropagationWait> {
    state
        .keys
        .iter()
        .filter_map(|k| {
            let detail = k.propagation_wait()?;
            let since = match k.status {
                KeyStatus::Published => k.published_at,
                _ => k.retired_at.map(|t| t + overlap.unwrap_or_default()),
            }?;
            let mut w = PropagationWait {
                selector: k.selector.to_string(),
                status: k.status,
                since,
                checks: k.attempts,
                detail: detail.to_string(),
                overdue: None,
            };
            if k.attempts >= 2 && now - since > bound {
                w.overdue = Some(w.reason(bound, now));
            }
            Some(w)
        })
        .collect()
}

/// How long a propagation wait may last before it needs attention: the
/// daemon's propagation timeout (`[propagation] daemon_timeout`, default 1 h).
pub fn propagation_bound(p: &crate::config::Propagation) -> TimeDelta {
    TimeDelta::from_std(p.daemon_timeout).unwrap_or(TimeDelta::MAX)
}

/// `d` in words, to the minute (`1h 30m`).
pub fn minutes(d: TimeDelta) -> String {
    let whole = std::time::Duration::from_secs(
        u64::try_from(d.num_minutes().max(0)).unwrap_or_default() * 60,
    );
    if whole.is_zero() {
        return "under a minute".into();
    }
    humantime::format_duration(whole).to_string()
}

/// How long a wait has lasted, in words: to the minute (`1h 1m`), or to
/// the second under a minute (`30s`), so a short bound reads sensibly.
fn elapsed(d: TimeDelta) -> String {
    if d >= TimeDelta::minutes(1) {
        return minutes(d);
    }
    let secs = u64::try_from(d.num_seconds().max(0)).unwrap_or_default();
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// A configured duration as written in the configuration (humantime's
/// form, to the millisecond: `4s`, `1h 30m`, `500ms`).
fn configured(d: TimeDelta) -> String {
    let ms = u64::try_from(d.num_milliseconds().max(0)).unwrap_or(u64::MAX);
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

impl PropagationWait {
    /// The attention line of an overdue wait, as `status` and the daemon
    /// say it: what waits, since when, how long against `bound`, and what
    /// the servers answered.
    fn reason(&self, bound: TimeDelta, now: DateTime<Utc>) -> String {
        format!(
            "{} not served by every authoritative server after {} (since {}; more than propagation.daemon_timeout ({})): {}",
            if self.status == KeyStatus::Published {
                "record"
            } else {
                "withdrawal"
            },
            elapsed(now - self.since),
            self.since.format("%Y-%m-%d %H:%M UTC"),
            configured(bound),
            self.detail
        )
    }
}

/// One upcoming step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextAction {
    /// When it is due.
    pub at: DateTime<Utc>,
    /// True when it is due already (the daemon or `maildns rotate` does it now).
    pub due_now: bool,
    /// Algorithm concerned.
    pub algorithm: Algorithm,
    /// Selector concerned (for a new key, the one it would get).
    pub selector: Option<String>,
    /// Stable name: `new_key`, `first_key` or an action name (`revoke_key`, ...).
    pub action: String,
    /// In words.
    pub description: String,
}

/// Everything `status` shows for one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainStatus {
    /// The domain.
    pub domain: String,
    /// False when maildns.toml has no DKIM settings for it.
    pub dkim_configured: bool,
    /// Keys that sign, one per algorithm.
    pub active: Vec<ActiveKey>,
    /// Keys on their way to signing.
    pub pending: Vec<PendingKey>,
    /// Retired keys not yet destroyed, with their removal dates.
    pub old: Vec<OldKey>,
    /// The next step, if any.
    pub next: Option<NextAction>,
    /// Every scheduled step, earliest first.
    pub upcoming: Vec<NextAction>,
    /// Algorithms whose rotation is blocked, and why.
    pub blocked: Vec<Blocked>,
    /// Failures of current steps (retried with backoff).
    pub errors: Vec<KeyFailure>,
    /// Keys waiting for propagation ([`propagation_waits`]).
    pub waiting: Vec<PropagationWait>,
    /// The most recent events, oldest first.
    pub events: Vec<StoredEvent>,
    /// A remark for the operator (no key yet, nothing configured, blocked).
    pub note: Option<String>,
    /// Weak keys that sign or will sign (RFC 8301: RSA under 2048 bits), see
    /// [`super::strength::key_strength_warnings`].
    pub warnings: Vec<super::machine::Warning>,
    /// What needs an operator ([`needs_attention`]); empty when all is well.
    pub attention: Vec<Attention>,
}

/// Why a domain needs an operator: one reason, for `status` (its exit code 4
/// and its text) and monitoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// `blocked` (a rotation stopped until an operator unblocks it),
    /// `failing` (a step failed and is being retried), `propagation` (a
    /// record or withdrawal not served everywhere after
    /// `propagation.daemon_timeout`), `weak_key` (an RSA key
    /// under 1024 bits, never published), or `drift` (the signer does not
    /// sign with what the state says).
    pub kind: &'static str,
    /// The selector concerned, when there is one.
    pub selector: Option<String>,
    /// Why, in words (never a secret).
    pub reason: String,
}

/// Everything about `s` an operator must look at; empty when all is well.
/// `status` exits 4 when any domain has one. One function, so each new
/// condition (e.g. a signer drift found by a probe) is one more branch here.
pub fn needs_attention(s: &DomainStatus) -> Vec<Attention> {
    let mut out: Vec<Attention> = s
        .blocked
        .iter()
        .map(|b| match b.kind {
            BlockKind::Drift => Attention {
                kind: "drift",
                selector: Some(b.selector.to_string()),
                reason: format!(
                    "the signer does not sign with active {}: {}",
                    b.selector, b.reason
                ),
            },
            kind => Attention {
                kind: "blocked",
                selector: Some(b.selector.to_string()),
                reason: format!(
                    "{} {}: {}",
                    b.algorithm,
                    match kind {
                        BlockKind::NotSigning => "switch not proven by a probe",
                        BlockKind::StillSigning =>
                            "retirement held (the signer still signs with it)",
                        _ => "rotation blocked",
                    },
                    b.reason
                ),
            },
        })
        .collect();
    out.extend(s.errors.iter().map(|e| Attention {
        kind: "failing",
        selector: Some(e.selector.clone()),
        reason: format!(
            "last attempt failed ({} so far): {}{}",
            e.attempts,
            e.reason,
            e.retry_at
                .map(|t| format!("; retried after {t}"))
                .unwrap_or_default()
        ),
    }));
    // A wait for propagation that lasts too long: a server refuses, fails,
    // times out or never gets the zone, and nothing would move without it.
    out.extend(s.waiting.iter().filter_map(|w| {
        Some(Attention {
            kind: "propagation",
            selector: Some(w.selector.clone()),
            reason: w.overdue.clone()?,
        })
    }));
    // An RSA key under 1024 bits is never published (RFC 8301 §3.2): it must
    // be replaced. (A 1024-bit key is only a warning.)
    out.extend(
        s.warnings
            .iter()
            .filter(|w| w.code == "rsa_too_small")
            .map(|w| Attention {
                kind: "weak_key",
                selector: None,
                reason: w.message.clone(),
            }),
    );
    out
}

/// Summarises `state` at `now`. `policy` is `None` when the domain has no DKIM
/// settings (then nothing is scheduled); a propagation wait longer than
/// `propagation_bound` needs attention ([`propagation_waits`]).
pub fn domain_status(
    state: &DomainState,
    policy: Option<&Policy>,
    events: Vec<StoredEvent>,
    propagation_bound: TimeDelta,
    now: DateTime<Utc>,
) -> DomainStatus {
    let active = state
        .keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .map(|k| ActiveKey {
            algorithm: k.algorithm,
            selector: k.selector.to_string(),
            bits: k.bits,
            active_at: k.active_at,
            age_days: k.active_at.map(|t| (now - t).num_days()),
            key_path: k.key_path.clone(),
        })
        .collect::<Vec<_>>();
    let pending = state
        .keys
        .iter()
        .filter(|k| k.status.is_pending())
        .map(|k| PendingKey {
            algorithm: k.algorithm,
            selector: k.selector.to_string(),
            bits: k.bits,
            status: k.status,
            created_at: k.created_at,
            safe_after: k.safe_after,
        })
        .collect();
    let overlap = policy.map(|p| p.settings().overlap);
    let old = state
        .keys
        .iter()
        .filter(|k| k.status.is_retired() && k.status != KeyStatus::Destroyed)
        .map(|k| OldKey {
            algorithm: k.algorithm,
            selector: k.selector.to_string(),
            status: k.status,
            retired_at: k.retired_at,
            removal_at: k.retired_at.zip(overlap).map(|(t, o)| t + o),
        })
        .collect();
    let errors = state
        .keys
        .iter()
        .filter(|k| k.status != KeyStatus::SwitchFailed && k.held.is_none())
        .filter_map(|k| {
            k.failed_attempt().map(|f| KeyFailure {
                selector: k.selector.to_string(),
                attempts: k.attempts,
                reason: f.to_string(),
                retry_at: k.not_before,
            })
        })
        .collect();
    let waiting = propagation_waits(state, overlap, propagation_bound, now);
    let upcoming: Vec<NextAction> = policy
        .map(|p| {
            schedule(state, p, now)
                .into_iter()
                .map(|s| describe(s.at, s.algorithm, &s.what, now, p))
                .collect()
        })
        .unwrap_or_default();
    let blocked = state.blocked();
    let note = if policy.is_none() {
        Some("no DKIM settings in maildns.toml: maildns does not manage this domain's keys".into())
    } else if state.keys.is_empty() {
        Some(
            "no DKIM key yet: `maildns publish` or `maildns rotate` will create the first one (or `maildns import opendkim` adopts the key OpenDKIM uses now)"
                .into(),
        )
    } else if !state.halted().is_empty() {
        Some("rotation is blocked: OpenDKIM keeps signing with its previous key; fix the signer (see the reason), then unblock".into())
    } else if !blocked.is_empty() {
        Some("a signer probe holds a key (see blocked): no key counts as active and nothing old is retired until a probe signature proves what OpenDKIM signs with; retried automatically".into())
    } else {
        None
    };
    let mut status = DomainStatus {
        domain: state.domain.to_string(),
        dkim_configured: policy.is_some(),
        active,
        pending,
        old,
        next: upcoming.first().cloned(),
        upcoming,
        blocked,
        errors,
        waiting,
        events,
        note,
        warnings: super::strength::key_strength_warnings(state),
        attention: Vec::new(),
    };
    status.attention = needs_attention(&status);
    status
}

fn describe(
    at: DateTime<Utc>,
    algorithm: Algorithm,
    what: &ScheduledAction,
    now: DateTime<Utc>,
    policy: &Policy,
) -> NextAction {
    let (action, selector, description) = match what {
        ScheduledAction::NewKey {
            first,
            selector,
            bits,
        } => {
            let sel = selector
                .as_ref()
                .map(|s| format!(" (selector {s})"))
                .unwrap_or_default();
            if *first {
                (
                    "first_key",
                    selector.as_ref().map(|s| s.to_string()),
                    format!(
                        "first key: generate and publish the first {algorithm} key, {bits} bits{sel}"
                    ),
                )
            } else {
                (
                    "new_key",
                    selector.as_ref().map(|s| s.to_string()),
                    format!("rotate: generate and publish a new {algorithm} key, {bits} bits{sel}"),
                )
            }
        }
        ScheduledAction::Step { action } => {
            let s = action.selector().map(|s| s.to_string()).unwrap_or_default();
            let text = match action {
                Action::GenerateKey { .. } => format!("generate the private key of {s}"),
                Action::PublishKey { .. } => {
                    format!("publish selector {s}'s record beside the current one")
                }
                Action::AwaitPropagation {
                    expect: Expect::Present,
                    ..
                } => format!("check that every authoritative server serves selector {s}"),
                Action::AwaitPropagation { .. } => {
                    format!(
                        "check that the withdrawal of selector {s} reached every authoritative server"
                    )
                }
                Action::SwitchSigner { .. } => {
                    format!("switch OpenDKIM to selector {s} (its record has propagated)")
                }
                Action::ConfirmSigner { .. } => {
                    format!("confirm that OpenDKIM signs with selector {s}")
                }
                Action::RevokeKey { .. } => format!(
                    "revoke old selector {s} (overlap of {} days ends): publish it with an empty p=",
                    policy.settings().overlap.num_days()
                ),
                Action::UnpublishKey { .. } => format!(
                    "remove old selector {s} (overlap of {} days ends)",
                    policy.settings().overlap.num_days()
                ),
                Action::PublishPrivateKey { .. } => format!(
                    "publish the retired private key of {s} (deniability), once no resolver can still serve its record"
                ),
                Action::DeletePrivateKey { .. } => {
                    format!("delete the private key of old selector {s}")
                }
                Action::Wait { .. } | Action::Failed { .. } => action.name().to_string(),
            };
            (
                action.name(),
                action.selector().map(|s| s.to_string()),
                text,
            )
        }
    };
    NextAction {
        at,
        due_now: at <= now,
        algorithm,
        selector,
        action: action.to_string(),
        description,
    }
}

/// How long ago or ahead `t` is, roughly, for tables ("in 3 days", "2 hours ago").
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (abs, future) = if d >= TimeDelta::zero() {
        (d, true)
    } else {
        (-d, false)
    };
    let text = if abs.num_days() >= 2 {
        format!("{} days", abs.num_days())
    } else if abs.num_hours() >= 2 {
        format!("{} hours", abs.num_hours())
    } else if abs.num_minutes() >= 1 {
        format!("{} min", abs.num_minutes())
    } else {
        return "now".into();
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::machine::{PolicySettings, Selector, adopt};
    use chrono::TimeZone;
    use maildns_providers::Fqdn;

    fn t(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, d, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn empty_domain_says_how_to_get_a_first_key() {
        let state = DomainState::new(Fqdn::parse("example.com").expect("name"));
        let p = Policy::default();
        let s = domain_status(&state, Some(&p), vec![], TimeDelta::hours(1), t(1));
        assert!(
            s.note
                .as_deref()
                .is_some_and(|n| n.contains("maildns publish"))
        );
        let next = s.next.expect("a first key is due");
        assert!(next.due_now);
        assert_eq!(next.action, "first_key");
        assert_eq!(next.selector.as_deref(), Some("202610"));
        let none = domain_status(&state, None, vec![], TimeDelta::hours(1), t(1));
        assert!(none.next.is_none() && !none.dkim_configured);
    }

    /// A record some server does not serve: a wait (no error, no
    /// attention) until it lasts longer than the bound, then attention
    /// naming the server and its answer.
    #[test]
    fn a_propagation_wait_needs_attention_only_past_the_bound() {
        let mut state = DomainState::new(Fqdn::parse("example.com").expect("name"));
        let mut k = super::super::state::KeyRecord::planned(
            Selector::parse("202610").expect("selector"),
            Algorithm::Rsa,
            2048,
            t(1),
        );
        k.status = KeyStatus::Published;
        k.published_at = Some(t(1));
        k.attempts = 30;
        k.failure = Some(format!(
            "{}202610._domainkey.example.com: 127.0.0.1:5300: REFUSED",
            super::super::state::NOT_YET_PREFIX
        ));
        state.keys.push(k);
        let p = Policy::default();
        let bound = TimeDelta::hours(1);
        let early = domain_status(
            &state,
            Some(&p),
            vec![],
            bound,
            t(1) + TimeDelta::minutes(30),
        );
        assert_eq!(early.waiting.len(), 1, "{early:?}");
        assert!(early.waiting[0].overdue.is_none());
        assert!(early.errors.is_empty(), "{:?}", early.errors);
        assert!(early.attention.is_empty(), "{:?}", early.attention);

        let late = t(1) + TimeDelta::minutes(150);
        let s = domain_status(&state, Some(&p), vec![], bound, late);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.attention.len(), 1, "{:?}", s.attention);
        assert_eq!(s.attention[0].kind, "propagation");
        assert_eq!(s.attention[0].selector.as_deref(), Some("202610"));
        assert_eq!(
            s.attention[0].reason,
            "record not served by every authoritative server after 2h 30m (since 2026-10-01 12:00 UTC; more than propagation.daemon_timeout (1h)): 202610._domainkey.example.com: 127.0.0.1:5300: REFUSED"
        );
        // A longer bound: still only a wait.
        let s = domain_status(&state, Some(&p), vec![], TimeDelta::hours(3), late);
        assert!(s.attention.is_empty(), "{:?}", s.attention);
        // One check only (after a long pause): not yet.
        state.keys[0].attempts = 1;
        let s = domain_status(&state, Some(&p), vec![], bound, late);
        assert!(s.attention.is_empty(), "{:?}", s.attention);
    }

    #[test]
    fn durations_in_the_attention_line_read_as_configured() {
        assert_eq!(configured(TimeDelta::seconds(4)), "4s");
        assert_eq!(configured(TimeDelta::minutes(90)), "1h 30m");
        assert_eq!(configured(TimeDelta::milliseconds(500)), "500ms");
        assert_eq!(elapsed(TimeDelta::seconds(30)), "30s");
        assert_eq!(elapsed(TimeDelta::seconds(61)), "1m");
        assert_eq!(elapsed(TimeDelta::minutes(61)), "1h 1m");
    }

    #[test]
    fn attention_for_blocked_and_failing_keys_not_for_waiting_ones() {
        let mut state = DomainState::new(Fqdn::parse("example.com").expect("name"));
        adopt(
            &mut state,
            Selector::parse("201908").expect("selector"),
            Algorithm::Rsa,
            1024,
            "/k/prueba.private",
            t(1),
        )
        .expect("adopts");
        let p = Policy::new(PolicySettings::default()).expect("policy");
        let fine = domain_status(&state, Some(&p), vec![], TimeDelta::hours(1), t(4));
        assert!(fine.attention.is_empty(), "{:?}", fine.attention);
        assert!(needs_attention(&fine).is_empty());
        // A step that failed and is being retried.
        let mut failing = state.clone();
        failing.keys[0].failure = Some("powerdns: 401 Unauthorized".into());
        failing.keys[0].attempts = 3;
        failing.keys[0].not_before = Some(t(5));
        let s = domain_status(&failing, Some(&p), vec![], TimeDelta::hours(1), t(4));
        assert_eq!(s.attention.len(), 1);
        assert_eq!(s.attention[0].kind, "failing");
        assert_eq!(s.attention[0].selector.as_deref(), Some("201908"));
        assert!(
            s.attention[0].reason.contains("3 so far")
                && s.attention[0].reason.contains("401 Unauthorized"),
            "{}",
            s.attention[0].reason
        );
        // A blocked rotation.
        let mut blocked = state.clone();
        blocked.keys[0].status = KeyStatus::SwitchFailed;
        blocked.keys[0].failure = Some("opendkim kept signing with 201907".into());
        let s = domain_status(&blocked, Some(&p), vec![], TimeDelta::hours(1), t(4));
        assert_eq!(
            s.attention.iter().map(|a| a.kind).collect::<Vec<_>>(),
            vec!["blocked"]
        );
        assert!(
            s.attention[0]
                .reason
                .contains("opendkim kept signing with 201907")
        );
    }

    #[test]
    fn adopted_key_rotates_after_the_interval() {
        let mut state = DomainState::new(Fqdn::parse("example.com").expect("name"));
        adopt(
            &mut state,
            Selector::parse("201908").expect("selector"),
            Algorithm::Rsa,
            1024,
            "/k/prueba.private",
            t(1),
        )
        .expect("adopts");
        let p = Policy::new(PolicySettings::default()).expect("policy");
        let s = domain_status(&state, Some(&p), vec![], TimeDelta::hours(1), t(4));
        assert_eq!(s.active.len(), 1);
        assert_eq!(s.active[0].age_days, Some(3));
        let next = s.next.expect("rotation is scheduled");
        assert_eq!(next.at, t(31));
        assert!(!next.due_now);
        assert!(
            next.description.starts_with("rotate:"),
            "{}",
            next.description
        );
        assert_eq!(relative(next.at, t(4)), "in 27 days");
    }
}

//! Tests of the rotation machine: a simulated world that performs actions the
//! way the runner will, a full rotation on a simulated clock, and property
//! tests over random outcomes and crashes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use maildns_providers::Fqdn;
use proptest::prelude::*;

use super::*;

fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid test date")
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid test selector")
}

fn domain() -> DomainState {
    DomainState::new(Fqdn::parse("example.com").expect("valid name"))
}

fn policy_with(f: impl FnOnce(&mut PolicySettings)) -> Policy {
    let mut s = PolicySettings::default();
    f(&mut s);
    Policy::new(s).expect("valid test policy")
}

/// What the DNS serves for a selector, as the simulated world knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Key,
    Revoked,
}

/// A simulated world: DNS host, watcher, signer and key directory, performing
/// actions as the runner will and checking that no action is unsafe.
#[derive(Debug, Default)]
struct World {
    dns: BTreeMap<Selector, Served>,
    /// safe_after reported by the watcher for present keys.
    watched: BTreeMap<Selector, DateTime<Utc>>,
    /// Withdrawals the watcher confirmed, with the safe-after time it reported.
    withdrawn: BTreeMap<Selector, DateTime<Utc>>,
    signer: BTreeMap<Algorithm, Selector>,
    private_keys: BTreeSet<Selector>,
    disclosed: BTreeSet<Selector>,
    log: Vec<(DateTime<Utc>, String)>,
}

/// How the world answers one action (the property tests pick these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    Ok,
    Error,
    NotYet,
    SignerBroken,
}

impl World {
    fn perform(
        &mut self,
        action: &Action,
        state: &DomainState,
        now: DateTime<Utc>,
        resp: Response,
    ) -> Option<Observation> {
        let s = action.selector()?.clone();
        self.log.push((now, format!("{} {s}", action.name())));
        if resp == Response::Error {
            return Some(Observation::ActionFailed {
                selector: s,
                action: action.name().into(),
                reason: "simulated failure".into(),
            });
        }
        let alg = state.key(&s).map(|k| k.algorithm);
        Some(match action {
            Action::GenerateKey { .. } => {
                self.private_keys.insert(s.clone());
                Observation::KeyGenerated {
                    selector: s.clone(),
                    key_path: format!("/keys/{s}.private"),
                }
            }
            Action::PublishKey { .. } => {
                assert!(
                    self.private_keys.contains(&s),
                    "published {s} without a private key"
                );
                self.dns.insert(s.clone(), Served::Key);
                Observation::KeyPublished { selector: s }
            }
            Action::AwaitPropagation { expect, .. } => {
                let ok = match expect {
                    Expect::Present => self.dns.get(&s) == Some(&Served::Key),
                    Expect::Revoked => self.dns.get(&s) == Some(&Served::Revoked),
                    Expect::Absent => !self.dns.contains_key(&s),
                };
                assert!(
                    ok,
                    "watching {s} for {expect:?} but the host does not have it"
                );
                let verdict = if resp == Response::NotYet {
                    Verdict::NotYet {
                        detail: "ns2 still serves the old data".into(),
                    }
                } else {
                    let safe_after = now + TimeDelta::hours(1);
                    if *expect == Expect::Present {
                        self.watched.insert(s.clone(), safe_after);
                    } else {
                        self.withdrawn.insert(s.clone(), safe_after);
                    }
                    Verdict::Passed { safe_after }
                };
                Observation::Propagation {
                    selector: s,
                    expect: *expect,
                    verdict,
                }
            }
            Action::SwitchSigner { .. } => {
                let safe = self.watched.get(&s).copied();
                assert!(
                    safe.is_some_and(|sa| sa <= now),
                    "switch to {s} at {now}: watcher said {safe:?}"
                );
                assert_eq!(
                    self.dns.get(&s),
                    Some(&Served::Key),
                    "switch to {s}, not served"
                );
                if resp == Response::SignerBroken {
                    // Like a failed OpenDKIM reload: keeps the old key.
                    return Some(Observation::SignerFailed {
                        selector: s,
                        reason: "configuration error at line 3".into(),
                    });
                }
                if let Some(a) = alg {
                    self.signer.insert(a, s.clone());
                }
                Observation::SignerSwitched { selector: s }
            }
            Action::ConfirmSigner { .. } => {
                let signing = alg.and_then(|a| self.signer.get(&a)) == Some(&s);
                if resp == Response::SignerBroken || !signing {
                    Observation::SignerFailed {
                        selector: s,
                        reason: "test message still signed with the old selector".into(),
                    }
                } else {
                    Observation::SignerConfirmed { selector: s }
                }
            }
            Action::RevokeKey { .. } | Action::UnpublishKey { .. } => {
                assert!(
                    !self.signer.values().any(|v| v == &s),
                    "withdrawing {s}, which the signer uses"
                );
                if matches!(action, Action::RevokeKey { .. }) {
                    self.dns.insert(s.clone(), Served::Revoked);
                } else {
                    self.dns.remove(&s);
                }
                Observation::KeyWithdrawn { selector: s }
            }
            Action::PublishPrivateKey { .. } | Action::DeletePrivateKey { .. } => {
                assert!(
                    !self.signer.values().any(|v| v == &s),
                    "disposing of {s}, in use"
                );
                let safe = self.withdrawn.get(&s).copied();
                assert!(
                    safe.is_some(),
                    "disposing of {s} before its withdrawal propagated"
                );
                if matches!(action, Action::PublishPrivateKey { .. }) {
                    assert!(
                        safe.is_some_and(|t| t <= now),
                        "disclosing {s} at {now}, before the withdrawal is safe ({safe:?}): resolvers may still serve the full record"
                    );
                }
                assert_ne!(
                    self.dns.get(&s),
                    Some(&Served::Key),
                    "disposing of {s}, still served"
                );
                if matches!(action, Action::PublishPrivateKey { .. }) {
                    self.disclosed.insert(s.clone());
                    Observation::PrivateKeyPublished { selector: s }
                } else {
                    self.private_keys.remove(&s);
                    Observation::PrivateKeyDeleted { selector: s }
                }
            }
            Action::Wait { .. } | Action::Failed { .. } => return None,
        })
    }
}

/// Checks a decision against the invariants, given the time it was made.
fn check_decision(d: &Decision, now: DateTime<Utc>, policy: &Policy) {
    check_invariants(&d.state).expect("state keeps its invariants");
    let blocked: BTreeSet<Algorithm> = d.state.halted().iter().map(|b| b.algorithm).collect();
    let waits = d
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Wait { .. }))
        .count();
    assert!(waits <= 1, "more than one wait: {:?}", d.actions);
    if waits == 1 {
        assert!(
            matches!(d.actions.last(), Some(Action::Wait { .. })),
            "wait not last"
        );
    }
    for a in &d.actions {
        let key = a.selector().and_then(|s| d.state.key(s));
        match a {
            Action::SwitchSigner { selector } => {
                let k = key.expect("switch to a known key");
                assert_eq!(k.status, KeyStatus::Propagated, "switch {selector}");
                assert!(k.propagated_at.is_some());
                assert!(
                    k.safe_after.is_some_and(|sa| sa <= now),
                    "switch before safe_after"
                );
            }
            Action::RevokeKey { .. } | Action::UnpublishKey { .. } => {
                let k = key.expect("withdraw a known key");
                assert_eq!(k.status, KeyStatus::Retiring);
                assert!(!k.status.may_be_signing());
                assert!(!blocked.contains(&k.algorithm), "removal while blocked");
                let until = k.retired_at.map(|r| r + policy.settings().overlap);
                assert!(
                    until.is_some_and(|u| u <= now),
                    "withdraw before the overlap ended"
                );
            }
            Action::DeletePrivateKey { .. } | Action::PublishPrivateKey { .. } => {
                let k = key.expect("dispose of a known key");
                assert!(matches!(
                    k.status,
                    KeyStatus::Withdrawn | KeyStatus::Disclosed
                ));
                assert!(k.status.is_retired() && k.withdrawn_at.is_some());
                assert!(!blocked.contains(&k.algorithm), "removal while blocked");
                if matches!(a, Action::PublishPrivateKey { .. }) {
                    assert!(
                        k.withdrawal_safe_after.is_some_and(|t| t <= now),
                        "disclosure before the withdrawal's safe-after time"
                    );
                }
            }
            Action::Wait { until } => assert!(*until > now, "wait for the past"),
            _ => {}
        }
    }
    // Idempotence: stepping the saved state again, without new observations,
    // asks for the same actions and changes nothing.
    let again = step(&d.state, &[], now, policy);
    assert_eq!(again.actions, d.actions, "re-step gave other actions");
    assert_eq!(again.state, d.state, "re-step changed the state");
    assert!(
        again.events.is_empty(),
        "re-step logged events: {:?}",
        again.events
    );
    // next_due agrees with the decision.
    let due = next_due(&d.state, policy);
    if d.work().next().is_some() {
        assert!(
            due.is_some_and(|t| t <= now),
            "work now but next_due is {due:?}"
        );
    } else if let Some(until) = d.wait_until() {
        assert_eq!(due, Some(until));
    }
}

/// Drives the machine like the runner until `end`, answering every action
/// with `respond`; returns the final state. `crash(i)` drops the i-th
/// decision before it is saved (the runner died after performing).
#[allow(clippy::too_many_arguments)]
fn drive(
    world: &mut World,
    state: DomainState,
    policy: &Policy,
    now: DateTime<Utc>,
    end: DateTime<Utc>,
    mut respond: impl FnMut(&Action) -> Response,
    mut crash: impl FnMut(usize) -> bool,
    mut advance: impl FnMut() -> TimeDelta,
) -> DomainState {
    drive_with_operator(
        world,
        state,
        policy,
        now,
        end,
        &mut respond,
        &mut crash,
        &mut advance,
        &mut || false,
    )
}

/// [`drive`], with an operator who may unblock a failed switch (`unblock()`
/// returning true) instead of leaving the domain blocked until `end`.
#[allow(clippy::too_many_arguments)]
fn drive_with_operator(
    world: &mut World,
    mut state: DomainState,
    policy: &Policy,
    mut now: DateTime<Utc>,
    end: DateTime<Utc>,
    respond: &mut impl FnMut(&Action) -> Response,
    crash: &mut impl FnMut(usize) -> bool,
    advance: &mut impl FnMut() -> TimeDelta,
    operator: &mut impl FnMut() -> bool,
) -> DomainState {
    let mut obs = Vec::new();
    let mut i = 0usize;
    while now < end && i < 10_000 {
        i += 1;
        let d = step(&state, &obs, now, policy);
        check_decision(&d, now, policy);
        let saved = !crash(i);
        // A crash either loses the decision entirely (harsher than the runner,
        // which saves first) or happens after saving, while performing.
        if saved || i.is_multiple_of(2) {
            state = d.state.clone();
        }
        obs.clear();
        for a in d.work() {
            let r = respond(a);
            obs.extend(world.perform(a, &d.state, now, r));
        }
        if !saved {
            // Observations of a crashed run are lost with it.
            obs.clear();
        }
        let blocked = state.halted();
        if !blocked.is_empty() && saved && operator() {
            for b in blocked {
                unblock(&mut state, b.algorithm, now);
            }
            continue;
        }
        if obs.is_empty() {
            let extra = advance();
            now = match d.wait_until() {
                Some(until) => until.max(now + extra),
                None if d.actions.iter().any(|a| matches!(a, Action::Failed { .. })) => end,
                None => now + extra,
            };
        }
    }
    state
}

#[test]
fn full_bootstrap_then_rotation_with_overlap() {
    let policy = Policy::default();
    let mut world = World::default();
    let start = t(2025, 1, 15, 9);
    let end = start + TimeDelta::days(70);
    let state = drive(
        &mut world,
        domain(),
        &policy,
        start,
        end,
        |_| Response::Ok,
        |_| false,
        TimeDelta::zero,
    );
    let steps: Vec<String> = world
        .log
        .iter()
        .map(|(at, s)| format!("{} {s}", at.format("%m-%d %H")))
        .collect();
    assert_eq!(
        steps,
        vec![
            // Bootstrap: generate, publish, propagate, switch after safe_after.
            "01-15 09 generate_key 202501",
            "01-15 09 publish_key 202501",
            "01-15 09 await_propagation 202501",
            "01-15 10 switch_signer 202501",
            "01-15 10 confirm_signer 202501",
            // 30 days after activation: the next key, published beside the old one.
            "02-14 10 generate_key 202502",
            "02-14 10 publish_key 202502",
            "02-14 10 await_propagation 202502",
            "02-14 11 switch_signer 202502",
            "02-14 11 confirm_signer 202502",
            // 14 days of overlap, then revoke, watch, delete.
            "02-28 11 revoke_key 202501",
            "02-28 11 await_propagation 202501",
            "02-28 11 delete_private_key 202501",
            "03-16 11 generate_key 202503",
            "03-16 11 publish_key 202503",
            "03-16 11 await_propagation 202503",
            "03-16 12 switch_signer 202503",
            "03-16 12 confirm_signer 202503",
        ]
    );
    let statuses: Vec<(&str, KeyStatus)> = state
        .keys
        .iter()
        .map(|k| (k.selector.as_str(), k.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("202501", KeyStatus::Destroyed),
            ("202502", KeyStatus::Retiring),
            ("202503", KeyStatus::Active),
        ]
    );
    assert_eq!(
        world.dns.get(&sel("202502")),
        Some(&Served::Key),
        "still in its overlap"
    );
    assert_eq!(world.signer.get(&Algorithm::Rsa), Some(&sel("202503")));
    assert_eq!(world.dns.get(&sel("202501")), Some(&Served::Revoked));
    assert!(!world.private_keys.contains(&sel("202501")));
    let k2 = state.key(&sel("202502")).expect("202502 exists");
    assert_eq!(k2.active_at, Some(t(2025, 2, 14, 11)));
    assert_eq!(k2.retired_at, Some(t(2025, 3, 16, 12)));
    assert_eq!(next_due(&state, &policy), Some(t(2025, 3, 30, 12)));
}

#[test]
fn remove_and_disclose_when_configured() {
    let policy = policy_with(|s| {
        s.withdrawal = Withdrawal::Remove;
        s.disposal = Disposal::Disclose;
    });
    let mut world = World::default();
    let start = t(2025, 5, 1, 0);
    let state = drive(
        &mut world,
        domain(),
        &policy,
        start,
        start + TimeDelta::days(46),
        |_| Response::Ok,
        |_| false,
        TimeDelta::zero,
    );
    let tail: Vec<&str> = world.log.iter().map(|(_, s)| s.as_str()).skip(10).collect();
    assert_eq!(
        tail,
        vec![
            "unpublish_key 202505",
            "await_propagation 202505",
            "publish_private_key 202505",
            "delete_private_key 202505",
        ]
    );
    assert!(!world.dns.contains_key(&sel("202505")));
    assert!(world.disclosed.contains(&sel("202505")));
    assert_eq!(
        state.key(&sel("202505")).map(|k| k.status),
        Some(KeyStatus::Destroyed)
    );
}

#[test]
fn disclosure_waits_for_the_withdrawal_safe_after_time_deletion_does_not() {
    let s = sel("202505");
    for disposal in [Disposal::Disclose, Disposal::Delete] {
        let policy = policy_with(|p| p.disposal = disposal);
        let now = t(2025, 7, 1, 0);
        let mut state = domain();
        let mut k = KeyRecord::planned(s.clone(), Algorithm::Rsa, 2048, t(2025, 5, 1, 0));
        k.status = KeyStatus::Withdrawing;
        k.key_path = Some("/keys/202505.private".into());
        k.safe_after = Some(t(2025, 5, 1, 2));
        k.active_at = Some(t(2025, 5, 1, 3));
        k.retired_at = Some(t(2025, 6, 1, 0));
        state.keys.push(k);
        let mut signing = KeyRecord::planned(sel("202506"), Algorithm::Rsa, 2048, t(2025, 6, 1, 0));
        signing.status = KeyStatus::Active;
        signing.key_path = Some("/keys/202506.private".into());
        signing.safe_after = Some(t(2025, 6, 1, 0));
        signing.active_at = Some(t(2025, 6, 20, 0));
        state.keys.push(signing);
        // Revocation seen everywhere now; the full record had a 300 s TTL.
        let safe_after = now + TimeDelta::seconds(300);
        let seen = Observation::Propagation {
            selector: s.clone(),
            expect: Expect::Revoked,
            verdict: Verdict::Passed { safe_after },
        };
        let d = step(&state, &[seen], now, &policy);
        let key = d.state.key(&s).expect("key");
        assert_eq!(key.status, KeyStatus::Withdrawn);
        assert_eq!(key.withdrawal_safe_after, Some(safe_after));
        match disposal {
            Disposal::Disclose => {
                // Not in the same pass, not one second early, but at safe_after.
                assert!(
                    !d.actions
                        .iter()
                        .any(|a| matches!(a, Action::PublishPrivateKey { .. })),
                    "{:?}",
                    d.actions
                );
                assert_eq!(d.wait_until(), Some(safe_after));
                assert_eq!(next_due(&d.state, &policy), Some(safe_after));
                let early = step(&d.state, &[], safe_after - TimeDelta::seconds(1), &policy);
                assert!(early.work().next().is_none(), "{:?}", early.actions);
                let due = step(&d.state, &[], safe_after, &policy);
                assert_eq!(
                    due.work().cloned().collect::<Vec<_>>(),
                    vec![Action::PublishPrivateKey {
                        selector: s.clone()
                    }]
                );
            }
            Disposal::Delete => {
                // Deleting discloses nothing: at once.
                assert!(
                    d.actions
                        .iter()
                        .any(|a| matches!(a, Action::DeletePrivateKey { .. })),
                    "{:?}",
                    d.actions
                );
            }
        }
        // A state saved without the time (older maildns) waits one overlap.
        let mut legacy = d.state.clone();
        legacy.keys[0].withdrawal_safe_after = None;
        if disposal == Disposal::Disclose {
            assert_eq!(
                next_due(&legacy, &policy),
                Some(now + policy.settings().overlap)
            );
        }
    }
}

#[test]
fn failed_switch_blocks_and_removes_nothing_until_unblocked() {
    let policy = Policy::default();
    let mut world = World::default();
    let start = t(2025, 1, 1, 0);
    // Bootstrap normally.
    let state = drive(
        &mut world,
        domain(),
        &policy,
        start,
        start + TimeDelta::days(1),
        |_| Response::Ok,
        |_| false,
        TimeDelta::zero,
    );
    // The next switch fails (reload broke); keep driving for 60 days.
    let mut state = drive(
        &mut world,
        state,
        &policy,
        start + TimeDelta::days(1),
        start + TimeDelta::days(60),
        |a| {
            if matches!(a, Action::SwitchSigner { .. }) {
                Response::SignerBroken
            } else {
                Response::Ok
            }
        },
        |_| false,
        TimeDelta::zero,
    );
    let blocked = state.blocked();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].selector, sel("202501a"));
    assert_eq!(blocked[0].reason, "configuration error at line 3");
    // Old key still active and published; the signer still uses it.
    let old = state
        .active(Algorithm::Rsa)
        .expect("old key still active")
        .selector
        .clone();
    assert_eq!(world.dns.get(&old), Some(&Served::Key));
    assert_eq!(world.signer.get(&Algorithm::Rsa), Some(&old));
    let now = start + TimeDelta::days(60);
    let d = step(&state, &[], now, &policy);
    assert!(
        matches!(d.actions.as_slice(), [Action::Failed { .. }]),
        "{:?}",
        d.actions
    );
    assert_eq!(next_due(&state, &policy), None);
    // The operator fixes the signer and unblocks: the switch is retried.
    let ev = unblock(&mut state, Algorithm::Rsa, now).expect("something was blocked");
    assert_eq!(ev.what, "unblocked");
    let d = step(&state, &[], now, &policy);
    assert!(
        matches!(d.actions.as_slice(), [Action::SwitchSigner { .. }]),
        "{:?}",
        d.actions
    );
}

#[test]
fn a_failed_confirmation_also_blocks() {
    let policy = Policy::default();
    let mut world = World::default();
    let start = t(2025, 1, 1, 0);
    let state = drive(
        &mut world,
        domain(),
        &policy,
        start,
        start + TimeDelta::days(3),
        |a| {
            if matches!(a, Action::ConfirmSigner { .. }) {
                Response::SignerBroken
            } else {
                Response::Ok
            }
        },
        |_| false,
        TimeDelta::zero,
    );
    assert_eq!(state.keys[0].status, KeyStatus::SwitchFailed);
    assert_eq!(state.blocked().len(), 1);
}

#[test]
fn selector_suffix_on_collision_and_no_reuse_within_a_year() {
    let policy = Policy::default();
    let now = t(2025, 3, 10, 0);
    let mut state = domain();
    let mut old = KeyRecord::planned(sel("202503"), Algorithm::Rsa, 2048, t(2025, 3, 1, 0));
    old.status = KeyStatus::Destroyed;
    old.destroyed_at = Some(t(2025, 3, 2, 0));
    state.keys.push(old.clone());
    let mut b = old.clone();
    b.selector = sel("202503a");
    state.keys.push(b);
    assert_eq!(choose_selector(&state, now, &policy), Some(sel("202503b")));
    // A selector last used more than 12 months ago may be reused.
    let later = t(2026, 3, 10, 0) + TimeDelta::days(5);
    let mut st = domain();
    let mut k = old;
    k.selector = sel("202603");
    k.destroyed_at = Some(t(2025, 3, 1, 0));
    st.keys.push(k.clone());
    assert_eq!(choose_selector(&st, later, &policy), Some(sel("202603")));
    // ... but not one used 11 months ago, nor one still held.
    st.keys[0].destroyed_at = Some(t(2025, 4, 20, 0));
    assert_eq!(choose_selector(&st, later, &policy), Some(sel("202603a")));
    st.keys[0].destroyed_at = None;
    st.keys[0].status = KeyStatus::Retiring;
    st.keys[0].created_at = t(2020, 1, 1, 0);
    st.keys[0].retired_at = Some(t(2020, 2, 1, 0));
    assert_eq!(choose_selector(&st, later, &policy), Some(sel("202603a")));
}

#[test]
fn dual_algorithms_get_distinct_selectors() {
    let policy = policy_with(|s| {
        s.keys.push(KeySpec {
            algorithm: Algorithm::Ed25519,
            bits: 0,
        });
    });
    let d = step(&domain(), &[], t(2025, 7, 1, 0), &policy);
    assert_eq!(
        d.actions,
        vec![
            Action::GenerateKey {
                selector: sel("202507"),
                algorithm: Algorithm::Rsa,
                bits: 2048
            },
            Action::GenerateKey {
                selector: sel("202507a"),
                algorithm: Algorithm::Ed25519,
                bits: 256
            },
        ]
    );
}

#[test]
fn rsa_falls_back_to_a_size_the_host_holds_never_below_1024() {
    for (max, want) in [
        (Some(1500), 1024),
        (Some(800), 1024),
        (Some(2048), 2048),
        (None, 2048),
    ] {
        let policy = policy_with(|s| s.max_bits_for_host = max);
        let d = step(&domain(), &[], t(2025, 7, 1, 0), &policy);
        assert_eq!(
            d.actions.first(),
            Some(&Action::GenerateKey {
                selector: sel("202507"),
                algorithm: Algorithm::Rsa,
                bits: want
            }),
            "max {max:?}"
        );
        let fallback = want < 2048 || max.is_some_and(|m| m < 2048);
        assert_eq!(
            d.warnings.iter().any(|w| w.code == "bits_fallback"),
            fallback
        );
        assert_eq!(d.events.iter().any(|e| e.what == "bits_fallback"), fallback);
        assert_eq!(d.state.keys[0].bits, want);
    }
    // 4096 configured, host holds 3500: the largest standard size that fits.
    let policy = policy_with(|s| {
        s.keys[0].bits = 4096;
        s.max_bits_for_host = Some(3500);
    });
    assert_eq!(
        policy.effective_bits(&policy.settings().keys[0]),
        (3072, true)
    );
}

#[test]
fn policy_refuses_short_overlap_and_bad_settings() {
    let refused = |f: fn(&mut PolicySettings)| {
        let mut s = PolicySettings::default();
        f(&mut s);
        Policy::new(s).err()
    };
    assert!(matches!(
        refused(|s| s.overlap = TimeDelta::days(4)),
        Some(PolicyError::OverlapTooShort {
            overlap_hours: 96,
            min_hours: 120
        })
    ));
    assert!(refused(|s| s.overlap = TimeDelta::days(5)).is_none());
    assert!(matches!(
        refused(|s| s.keys[0].bits = 512),
        Some(PolicyError::RsaBits { bits: 512 })
    ));
    assert!(matches!(
        refused(|s| s.keys.clear()),
        Some(PolicyError::Keys(_))
    ));
    assert!(matches!(
        refused(|s| s.selector_format = "%Y/%m".into()),
        Some(PolicyError::SelectorFormat { .. })
    ));
    assert!(matches!(
        refused(|s| s.selector_format = "%Q".into()),
        Some(PolicyError::SelectorFormat { .. })
    ));
    assert!(matches!(
        refused(|s| s.rotation_interval = TimeDelta::zero()),
        Some(PolicyError::NotPositive { .. })
    ));
    let p = policy_with(|s| s.selector_format = "mail%Y%m%d".into());
    let d = step(&domain(), &[], t(2025, 7, 1, 0), &p);
    assert_eq!(
        d.actions.first().and_then(Action::selector),
        Some(&sel("mail20250701"))
    );
}

#[test]
fn stale_and_unknown_observations_change_nothing() {
    let policy = Policy::default();
    let now = t(2025, 1, 1, 0);
    let d = step(&domain(), &[], now, &policy);
    let s = sel("202501");
    let stale = [
        Observation::KeyPublished {
            selector: s.clone(),
        },
        Observation::SignerConfirmed {
            selector: s.clone(),
        },
        Observation::PrivateKeyDeleted {
            selector: s.clone(),
        },
        Observation::KeyWithdrawn {
            selector: s.clone(),
        },
        Observation::Propagation {
            selector: s.clone(),
            expect: Expect::Present,
            verdict: Verdict::Passed { safe_after: now },
        },
        Observation::KeyGenerated {
            selector: sel("other"),
            key_path: "/x".into(),
        },
    ];
    let d2 = step(&d.state, &stale, now, &policy);
    assert_eq!(d2.state, d.state);
    assert!(d2.events.is_empty());
    assert_eq!(d2.actions, d.actions);
}

#[test]
fn failures_back_off_and_propagation_is_rechecked() {
    let policy = Policy::default();
    let now = t(2025, 1, 1, 0);
    let d = step(&domain(), &[], now, &policy);
    let s = sel("202501");
    let fail = Observation::ActionFailed {
        selector: s.clone(),
        action: "generate_key".into(),
        reason: "disk full".into(),
    };
    let d1 = step(&d.state, std::slice::from_ref(&fail), now, &policy);
    assert_eq!(
        d1.actions,
        vec![Action::Wait {
            until: now + TimeDelta::minutes(1)
        }]
    );
    assert_eq!(d1.events[0].outcome, "error");
    let now2 = now + TimeDelta::minutes(1);
    let d2 = step(&d1.state, std::slice::from_ref(&fail), now2, &policy);
    assert_eq!(d2.wait_until(), Some(now2 + TimeDelta::minutes(2)));
    // After the backoff the same action is asked again.
    let d3 = step(&d2.state, &[], now2 + TimeDelta::minutes(2), &policy);
    assert!(matches!(
        d3.actions.as_slice(),
        [Action::GenerateKey { .. }]
    ));
    // A not-yet verdict waits for the recheck interval and logs once.
    let mut st = d3.state.clone();
    if let Some(k) = st.keys.first_mut() {
        k.progressed(KeyStatus::Published);
        k.key_path = Some("/k".into());
    }
    let notyet = Observation::Propagation {
        selector: s,
        expect: Expect::Present,
        verdict: Verdict::NotYet {
            detail: "ns2 lags".into(),
        },
    };
    let a = step(&st, std::slice::from_ref(&notyet), now, &policy);
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.wait_until(), Some(now + TimeDelta::minutes(1)));
    let b = step(&a.state, std::slice::from_ref(&notyet), now, &policy);
    assert!(b.events.is_empty());
}

#[test]
fn selector_parsing() {
    assert_eq!(sel("May2025").as_str(), "may2025");
    assert!(Selector::parse("").is_err());
    assert!(Selector::parse("-a").is_err());
    assert!(Selector::parse("a.b").is_err());
    assert!(Selector::parse(&"a".repeat(64)).is_err());
    for s in KeyStatus::ALL {
        assert_eq!(KeyStatus::parse(s.as_str()), Some(s));
    }
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        6 => Just(Response::Ok),
        1 => Just(Response::Error),
        1 => Just(Response::NotYet),
        1 => Just(Response::SignerBroken),
        3 => Just(Response::Ok),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random outcomes, random crashes (a decision performed but never saved),
    /// random clock jumps, two algorithms, every withdrawal/disposal mode:
    /// every decision keeps the invariants (checked in `check_decision` and by
    /// the simulated world's assertions) and re-stepping is idempotent.
    #[test]
    fn invariants_hold_under_random_outcomes_and_crashes(
        responses in prop::collection::vec(response(), 1..200),
        crashes in prop::collection::vec(any::<bool>(), 1..50),
        jumps in prop::collection::vec(0i64..(20 * 24 * 60), 1..50),
        remove in any::<bool>(),
        disclose in any::<bool>(),
        dual in any::<bool>(),
        bits_cap in prop::option::of(900u32..4000),
    ) {
        let policy = policy_with(|s| {
            if remove { s.withdrawal = Withdrawal::Remove; }
            if disclose { s.disposal = Disposal::Disclose; }
            if dual { s.keys.push(KeySpec { algorithm: Algorithm::Ed25519, bits: 256 }); }
            s.max_bits_for_host = bits_cap;
        });
        let mut world = World::default();
        let start = t(2025, 1, 1, 0);
        let (mut r, mut c, mut j, mut o) = (0usize, 0usize, 0usize, 0usize);
        let state = drive_with_operator(
            &mut world,
            domain(),
            &policy,
            start,
            start + TimeDelta::days(120),
            &mut |_| { r += 1; responses[r % responses.len()] },
            &mut |_| { c += 1; crashes[c % crashes.len()] && c.is_multiple_of(3) },
            &mut || { j += 1; TimeDelta::minutes(jumps[j % jumps.len()]) },
            &mut || { o += 1; !o.is_multiple_of(4) },
        );
        check_invariants(&state).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for k in &state.keys {
            prop_assert!(k.bits >= 256);
            if k.algorithm == Algorithm::Rsa { prop_assert!(k.bits >= 1024); }
        }
    }

    /// The same state, observations and time always give the same decision.
    #[test]
    fn step_is_deterministic(days in 0i64..400, cap in prop::option::of(500u32..5000)) {
        let policy = policy_with(|s| s.max_bits_for_host = cap);
        let now = t(2025, 1, 1, 0) + TimeDelta::days(days);
        let a = step(&domain(), &[], now, &policy);
        let b = step(&domain(), &[], now, &policy);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn adopt_records_an_active_key_idempotently_and_rotation_starts_from_it() {
    let policy = Policy::default();
    let now = t(2025, 5, 1, 8);
    let mut state = domain();
    let ev = adopt(
        &mut state,
        sel("201908"),
        Algorithm::Rsa,
        1024,
        "/etc/opendkim/keys/prueba.private",
        now,
    )
    .expect("adopts")
    .expect("an event");
    assert_eq!(ev.what, "adopted");
    assert_eq!(ev.selector, Some(sel("201908")));
    let k = state.active(Algorithm::Rsa).expect("active");
    assert_eq!((k.bits, k.active_at), (1024, Some(now)));
    check_invariants(&state).expect("invariants hold");
    // Same key again: nothing changes.
    let before = state.clone();
    let again = adopt(
        &mut state,
        sel("201908"),
        Algorithm::Rsa,
        1024,
        "/etc/opendkim/keys/prueba.private",
        now + TimeDelta::days(3),
    );
    assert_eq!(again, Ok(None));
    assert_eq!(state, before);
    // Another key for the same algorithm, or the same selector otherwise: refused.
    assert!(matches!(
        adopt(&mut state, sel("202001"), Algorithm::Rsa, 2048, "/k", now),
        Err(AdoptError::AlreadyActive { .. })
    ));
    assert!(matches!(
        adopt(&mut state, sel("201908"), Algorithm::Rsa, 2048, "/k", now),
        Err(AdoptError::SelectorTaken { .. })
    ));
    assert_eq!(state, before);
    // An Ed25519 key beside it is fine.
    assert!(
        adopt(&mut state, sel("ed1"), Algorithm::Ed25519, 256, "/e", now)
            .expect("adopts")
            .is_some()
    );
    // Nothing to do until the rotation interval has passed; then a new key.
    let d = step(&before, &[], now + TimeDelta::days(1), &policy);
    assert!(d.work().next().is_none(), "{:?}", d.actions);
    assert_eq!(d.wait_until(), Some(now + TimeDelta::days(30)));
    let d = step(&before, &[], now + TimeDelta::days(30), &policy);
    assert!(matches!(
        d.work().next(),
        Some(Action::GenerateKey { selector, .. }) if selector.as_str() == "202505"
    ));
}

#[test]
fn schedule_names_what_next_due_is_for() {
    let policy = Policy::default();
    let start = t(2025, 1, 15, 9);
    // Empty domain: a first key, due at once.
    let s = schedule(&domain(), &policy, start);
    assert_eq!(s.len(), 1);
    assert!(matches!(
        &s[0].what,
        ScheduledAction::NewKey { first: true, selector: Some(x), bits: 2048 } if x.as_str() == "202501"
    ));
    // After one full rotation: the old key's withdrawal comes before the next key.
    let mut world = World::default();
    let state = drive(
        &mut world,
        domain(),
        &policy,
        start,
        start + TimeDelta::days(40),
        |_| Response::Ok,
        |_| false,
        TimeDelta::zero,
    );
    let s = schedule(&state, &policy, start + TimeDelta::days(40));
    assert_eq!(s.first().map(|x| x.at), next_due(&state, &policy));
    assert!(matches!(
        &s[0].what,
        ScheduledAction::Step { action: Action::RevokeKey { selector } } if selector.as_str() == "202501"
    ));
    assert!(matches!(
        &s[1].what,
        ScheduledAction::NewKey { first: false, .. }
    ));
    assert!(s[0].at < s[1].at);
}

/// A domain with `old` active since `t0` and `new` in `status`.
fn two_keys(old_status: KeyStatus, new_status: KeyStatus, t0: DateTime<Utc>) -> DomainState {
    let mut state = domain();
    let mut old = KeyRecord::planned(sel("202501"), Algorithm::Rsa, 2048, t0);
    old.status = old_status;
    old.key_path = Some("/k/202501.private".into());
    old.safe_after = Some(t0);
    old.active_at = Some(t0);
    if old_status.is_retired() {
        old.retired_at = Some(t0 + TimeDelta::days(30));
    }
    state.keys.push(old);
    let mut new = KeyRecord::planned(
        sel("202502"),
        Algorithm::Rsa,
        2048,
        t0 + TimeDelta::days(29),
    );
    new.status = new_status;
    new.key_path = Some("/k/202502.private".into());
    new.safe_after = Some(t0 + TimeDelta::days(29));
    if new_status >= KeyStatus::Active {
        new.active_at = Some(t0 + TimeDelta::days(30));
    }
    state.keys.push(new);
    state
}

#[test]
fn a_switch_not_yet_live_keeps_switching_retries_and_touches_nothing_old() {
    let policy = Policy::default();
    let t0 = t(2025, 1, 1, 0);
    let now = t0 + TimeDelta::days(30);
    let state = two_keys(KeyStatus::Active, KeyStatus::Switched, t0);
    let reason = "OpenDKIM at local:/s signs the probe with s=202501".to_string();
    let held = Observation::SignerHeld {
        selector: sel("202502"),
        reason: reason.clone(),
    };
    let d = step(&state, std::slice::from_ref(&held), now, &policy);
    let new = d.state.key(&sel("202502")).expect("new key");
    assert_eq!(new.status, KeyStatus::Switched, "not active until proven");
    assert_eq!(new.held.as_deref(), Some(reason.as_str()));
    assert_eq!(
        d.state.key(&sel("202501")).map(|k| k.status),
        Some(KeyStatus::Active),
        "the old key keeps signing"
    );
    let blocked = d.state.blocked();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].kind, BlockKind::NotSigning);
    assert_eq!(blocked[0].reason, reason);
    assert!(d.state.halted().is_empty(), "retried, not halted");
    assert_eq!(d.events.len(), 1);
    assert_eq!(
        (d.events[0].what.as_str(), d.events[0].outcome.as_str()),
        ("not_signing", "blocked")
    );
    // Retried after the backoff (the same reason logs no new event).
    let retry = new.not_before.expect("backoff");
    assert!(retry > now);
    assert!(d.work().next().is_none());
    assert_eq!(next_due(&d.state, &policy), Some(retry));
    let d2 = step(&d.state, &[], retry, &policy);
    assert!(matches!(
        d2.work().collect::<Vec<_>>().as_slice(),
        [Action::ConfirmSigner { .. }]
    ));
    let d3 = step(&d2.state, std::slice::from_ref(&held), retry, &policy);
    assert!(d3.events.is_empty());
    assert!(d3.state.key(&sel("202502")).unwrap().not_before.unwrap() > retry);
    // Proven at last: active, the old key retires, nothing blocked.
    let ok = Observation::SignerConfirmed {
        selector: sel("202502"),
    };
    let d4 = step(&d3.state, &[ok], retry, &policy);
    assert_eq!(
        d4.state.key(&sel("202502")).unwrap().status,
        KeyStatus::Active
    );
    assert_eq!(d4.state.key(&sel("202502")).unwrap().held, None);
    assert_eq!(
        d4.state.key(&sel("202501")).unwrap().status,
        KeyStatus::Retiring
    );
    assert!(d4.state.blocked().is_empty());
}

#[test]
fn a_retiring_key_the_signer_still_uses_is_held_not_withdrawn() {
    let policy = Policy::default();
    let t0 = t(2025, 1, 1, 0);
    let state = two_keys(KeyStatus::Retiring, KeyStatus::Active, t0);
    let due = t0 + TimeDelta::days(44);
    let d = step(&state, &[], due, &policy);
    assert!(matches!(
        d.work().collect::<Vec<_>>().as_slice(),
        [Action::RevokeKey { .. }]
    ));
    let reason = "OpenDKIM still signs with s=202501".to_string();
    let d = step(
        &d.state,
        &[Observation::SignerHeld {
            selector: sel("202501"),
            reason: reason.clone(),
        }],
        due,
        &policy,
    );
    let old = d.state.key(&sel("202501")).unwrap();
    assert_eq!(old.status, KeyStatus::Retiring);
    assert_eq!(d.state.blocked()[0].kind, BlockKind::StillSigning);
    assert_eq!(d.events[0].what, "still_signing");
    // Once the probe no longer sees it, the revocation goes ahead and clears the hold.
    let later = old.not_before.unwrap();
    let d = step(
        &d.state,
        &[Observation::KeyWithdrawn {
            selector: sel("202501"),
        }],
        later,
        &policy,
    );
    let old = d.state.key(&sel("202501")).unwrap();
    assert_eq!(old.status, KeyStatus::Withdrawing);
    assert_eq!(old.held, None);
    assert!(d.state.blocked().is_empty());
}

#[test]
fn drift_of_an_active_key_is_shown_and_cleared() {
    let policy = Policy::default();
    let t0 = t(2025, 1, 1, 0);
    let state = two_keys(KeyStatus::Retiring, KeyStatus::Active, t0);
    let now = t0 + TimeDelta::days(31);
    let drift = Observation::SignerDrift {
        selector: sel("202502"),
        reason: "OpenDKIM signs the probe with s=202501".into(),
    };
    let d = step(&state, std::slice::from_ref(&drift), now, &policy);
    let b = d.state.blocked();
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].kind, b[0].selector.as_str()),
        (BlockKind::Drift, "202502")
    );
    assert_eq!(d.events[0].what, "drift");
    assert_eq!(d.events[0].outcome, "blocked");
    assert_eq!(
        d.state.key(&sel("202502")).unwrap().status,
        KeyStatus::Active
    );
    // Seen again: no new event. Then a good probe clears it.
    let d = step(&d.state, std::slice::from_ref(&drift), now, &policy);
    assert!(d.events.is_empty());
    let d = step(
        &d.state,
        &[Observation::SignerConfirmed {
            selector: sel("202502"),
        }],
        now,
        &policy,
    );
    assert!(d.state.blocked().is_empty());
    assert_eq!(
        (d.events[0].what.as_str(), d.events[0].outcome.as_str()),
        ("drift", "ok")
    );
}

#[test]
fn retry_held_makes_a_held_step_due_now() {
    let policy = Policy::default();
    let t0 = t(2025, 1, 1, 0);
    let now = t0 + TimeDelta::days(30);
    let state = two_keys(KeyStatus::Active, KeyStatus::Switched, t0);
    let held = Observation::SignerHeld {
        selector: sel("202502"),
        reason: "OpenDKIM signs with s=202501".into(),
    };
    let mut state = step(&state, &[held], now, &policy).state;
    assert!(step(&state, &[], now, &policy).work().next().is_none());
    let events = retry_held(&mut state, now);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].what, "retry");
    assert!(matches!(
        step(&state, &[], now, &policy)
            .work()
            .collect::<Vec<_>>()
            .as_slice(),
        [Action::ConfirmSigner { .. }]
    ));
    assert!(
        state.key(&sel("202502")).unwrap().held.is_some(),
        "until a probe clears it"
    );
    assert!(retry_held(&mut state, now).is_empty());
}

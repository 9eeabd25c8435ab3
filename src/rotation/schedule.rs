//! What the rotation machine will do next for a domain, and when, without new
//! observations (for `status` and the daemon's sleep).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::actions::Action;
use super::machine::{choose_selector, key_action, key_due, rotation_due};
use super::policy::Policy;
use super::selector::Selector;
use super::state::DomainState;
use crate::keys::Algorithm;

/// What will happen next for a domain, and when: one entry per key with a
/// pending step and per algorithm whose next key is not yet planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scheduled {
    /// When it becomes due (at or before now: due now).
    pub at: DateTime<Utc>,
    /// The algorithm concerned.
    pub algorithm: Algorithm,
    /// What will be done.
    #[serde(flatten)]
    pub what: ScheduledAction,
}

/// The kind of a [`Scheduled`] entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduledAction {
    /// A new key will be planned, generated and published.
    NewKey {
        /// True when the domain has no active key of this algorithm (bootstrap).
        first: bool,
        /// The selector it would get if planned at `at` (or now, if later).
        selector: Option<Selector>,
        /// Its size.
        bits: u32,
    },
    /// The next step of an existing key.
    Step {
        /// The action [`step`] will ask for.
        action: Action,
    },
}

/// Everything [`step`] will do for this domain without new observations,
/// earliest first (the first entry's time is [`next_due`]). Blocked algorithms
/// have no entries. `now` only serves to predict new selectors.
pub fn schedule(state: &DomainState, policy: &Policy, now: DateTime<Utc>) -> Vec<Scheduled> {
    let blocked: BTreeSet<Algorithm> = state.halted().iter().map(|b| b.algorithm).collect();
    let mut out = Vec::new();
    for k in &state.keys {
        if blocked.contains(&k.algorithm) {
            continue;
        }
        if let (Some(at), Some(action)) = (key_due(k, policy), key_action(k, policy)) {
            out.push(Scheduled {
                at,
                algorithm: k.algorithm,
                what: ScheduledAction::Step { action },
            });
        }
    }
    for spec in &policy.s.keys {
        if blocked.contains(&spec.algorithm) {
            continue;
        }
        if let Some(at) = rotation_due(state, spec.algorithm, policy) {
            out.push(Scheduled {
                at,
                algorithm: spec.algorithm,
                what: ScheduledAction::NewKey {
                    first: state.active(spec.algorithm).is_none(),
                    selector: choose_selector(state, at.max(now), policy),
                    bits: policy.effective_bits(spec).0,
                },
            });
        }
    }
    out.sort_by_key(|s| s.at);
    out
}

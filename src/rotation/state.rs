//! The persisted rotation state of a domain (its keys and their lifecycle) and
//! the invariants every state must keep.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use serde::{Deserialize, Serialize};

use super::selector::Selector;
use crate::keys::Algorithm;

/// Where one key is in its lifecycle. The order of the variants is the order
/// of the lifecycle (except [`KeyStatus::SwitchFailed`], a blocked side state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Selector and size chosen; the private key is not known to exist yet.
    Planned,
    /// The private key exists (`key_path`); its record is not published yet.
    Generated,
    /// The record was published at the DNS host; waiting for propagation.
    Published,
    /// Every authoritative server serves it; `safe_after` says when the
    /// signer may use it.
    Propagated,
    /// The signer's tables name it and a reload was asked for; not active until
    /// a probe signature proves the signer signs with it (a probe showing
    /// another key holds it here: [`KeyRecord::held`]).
    Switched,
    /// The signer could not be switched (its pre-reload checks failed; nothing
    /// was written). Rotation of this algorithm is blocked until an operator
    /// calls [`unblock`]; nothing is removed meanwhile.
    SwitchFailed,
    /// The signer signs with it (proven by a probe, or by the tables with
    /// `confirm = "tables-only"`).
    Active,
    /// It no longer signs (since `retired_at`); the record stays published for
    /// the overlap so mail in flight still verifies.
    Retiring,
    /// Revoked (`p=` empty) or removed at the host; waiting for propagation.
    Withdrawing,
    /// No authoritative server offers the public key any more.
    Withdrawn,
    /// The private key was published for deniability (opt-in); it is still to
    /// be deleted.
    Disclosed,
    /// The private key was deleted. Kept as history (selector reuse).
    Destroyed,
}

impl KeyStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [KeyStatus; 12] = [
        KeyStatus::Planned,
        KeyStatus::Generated,
        KeyStatus::Published,
        KeyStatus::Propagated,
        KeyStatus::Switched,
        KeyStatus::SwitchFailed,
        KeyStatus::Active,
        KeyStatus::Retiring,
        KeyStatus::Withdrawing,
        KeyStatus::Withdrawn,
        KeyStatus::Disclosed,
        KeyStatus::Destroyed,
    ];

    /// Stable lowercase name, used by the store and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Planned => "planned",
            KeyStatus::Generated => "generated",
            KeyStatus::Published => "published",
            KeyStatus::Propagated => "propagated",
            KeyStatus::Switched => "switched",
            KeyStatus::SwitchFailed => "switch_failed",
            KeyStatus::Active => "active",
            KeyStatus::Retiring => "retiring",
            KeyStatus::Withdrawing => "withdrawing",
            KeyStatus::Withdrawn => "withdrawn",
            KeyStatus::Disclosed => "disclosed",
            KeyStatus::Destroyed => "destroyed",
        }
    }

    /// Parses [`KeyStatus::as_str`]'s output.
    pub fn parse(s: &str) -> Option<KeyStatus> {
        KeyStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A key on its way to signing (at most one per domain and algorithm).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            KeyStatus::Planned
                | KeyStatus::Generated
                | KeyStatus::Published
                | KeyStatus::Propagated
                | KeyStatus::Switched
                | KeyStatus::SwitchFailed
        )
    }

    /// The signer may be using this key right now: its record must stay.
    /// (`Switched` and `SwitchFailed`: the signer may have picked it up.)
    pub fn may_be_signing(self) -> bool {
        matches!(
            self,
            KeyStatus::Active | KeyStatus::Switched | KeyStatus::SwitchFailed
        )
    }

    /// The key has stopped signing for good (its private key may go once
    /// the record is withdrawn).
    pub fn is_retired(self) -> bool {
        matches!(
            self,
            KeyStatus::Retiring
                | KeyStatus::Withdrawing
                | KeyStatus::Withdrawn
                | KeyStatus::Disclosed
                | KeyStatus::Destroyed
        )
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of a domain: its selector, size, status and the history of its
/// lifecycle. Contains no key material, only where the runner stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Its selector (unique within the domain).
    pub selector: Selector,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Key size in bits (256 for Ed25519).
    pub bits: u32,
    /// Where it is in its lifecycle.
    pub status: KeyStatus,
    /// When the machine chose the selector.
    pub created_at: DateTime<Utc>,
    /// Where the runner stored the private key (set once generated).
    pub key_path: Option<String>,
    /// When the record was published.
    pub published_at: Option<DateTime<Utc>>,
    /// When the watcher saw every authoritative server serve it.
    pub propagated_at: Option<DateTime<Utc>>,
    /// The watcher's "safe after" time (negative caching window passed).
    pub safe_after: Option<DateTime<Utc>>,
    /// When the signer was confirmed to use it.
    pub active_at: Option<DateTime<Utc>>,
    /// When it stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// When its withdrawal (revocation or removal) was seen everywhere.
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// The watcher's "safe after" time of the withdrawal: when no resolver can
    /// still hold the full record (seen everywhere + the previous TTL). A
    /// retired private key is disclosed only after it.
    #[serde(default)]
    pub withdrawal_safe_after: Option<DateTime<Utc>>,
    /// When its private key was deleted.
    pub destroyed_at: Option<DateTime<Utc>>,
    /// Do not retry the current step before this time (backoff, rechecks).
    pub not_before: Option<DateTime<Utc>>,
    /// Failed attempts (or negative checks) of the current step.
    pub attempts: u32,
    /// Why the last attempt failed, or why the switch failed; while the key
    /// waits for propagation, [`NOT_YET_PREFIX`] and what the last negative
    /// check saw ([`KeyRecord::propagation_wait`]).
    pub failure: Option<String>,
    /// Why a signer probe holds this key (shown as blocked): the signer does not
    /// sign with it yet although it was switched to it, still signs with it
    /// although it is retiring (its record and private key stay), or no longer
    /// signs with it although it is active (drift). Cleared when a probe proves
    /// otherwise or the key moves on.
    pub held: Option<String>,
}

impl KeyRecord {
    pub(super) fn planned(
        selector: Selector,
        algorithm: Algorithm,
        bits: u32,
        now: DateTime<Utc>,
    ) -> Self {
        KeyRecord {
            selector,
            algorithm,
            bits,
            status: KeyStatus::Planned,
            created_at: now,
            key_path: None,
            published_at: None,
            propagated_at: None,
            safe_after: None,
            active_at: None,
            retired_at: None,
            withdrawn_at: None,
            withdrawal_safe_after: None,
            destroyed_at: None,
            not_before: None,
            attempts: 0,
            failure: None,
            held: None,
        }
    }

    /// The last time anything happened to this key (selector reuse window).
    pub fn last_used(&self) -> DateTime<Utc> {
        [
            Some(self.created_at),
            self.published_at,
            self.active_at,
            self.retired_at,
            self.withdrawn_at,
            self.destroyed_at,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(self.created_at)
    }

    /// Why the current step's last attempt failed (what [`KeyRecord::failure`]
    /// holds), unless that is what a negative propagation check saw (a wait,
    /// not a failure: [`KeyRecord::propagation_wait`]).
    pub fn failed_attempt(&self) -> Option<&str> {
        self.failure
            .as_deref()
            .filter(|f| !f.starts_with(NOT_YET_PREFIX))
    }

    /// While the key waits for its record (or its withdrawal) to be served
    /// by every authoritative server: what the last negative check saw
    /// (which servers, what each answered), as the watcher said it.
    pub fn propagation_wait(&self) -> Option<&str> {
        if !matches!(self.status, KeyStatus::Published | KeyStatus::Withdrawing) {
            return None;
        }
        self.failure.as_deref()?.strip_prefix(NOT_YET_PREFIX)
    }

    pub(super) fn progressed(&mut self, status: KeyStatus) {
        self.status = status;
        self.not_before = None;
        self.attempts = 0;
        self.failure = None;
        self.held = None;
    }
}

/// How [`KeyRecord::failure`] starts while the key waits for propagation: the
/// rest is what the last negative check saw. (The failure's column holds it,
/// so the state stores need no new column; [`KeyRecord::failed_attempt`]
/// leaves it out of the failures.)
pub const NOT_YET_PREFIX: &str = "not yet: ";

/// The persisted rotation state of one domain: every key it ever had
/// (destroyed keys stay as history so selectors are not reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    /// The domain (`d=`).
    pub domain: Fqdn,
    /// Its keys, in creation order.
    pub keys: Vec<KeyRecord>,
}

/// A blocked key, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// The algorithm concerned.
    pub algorithm: Algorithm,
    /// The key concerned.
    pub selector: Selector,
    /// What is blocked.
    pub kind: BlockKind,
    /// Why.
    pub reason: String,
}

/// What a [`Blocked`] entry blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// The signer could not be switched: rotation of the algorithm stops until
    /// an operator unblocks it ([`KeyStatus::SwitchFailed`]).
    SwitchFailed,
    /// The signer was switched but a probe does not show it signing with the
    /// new key (e.g. OpenDKIM refused the reload): the key is not active, the
    /// old one keeps signing and nothing old is touched; retried with backoff.
    NotSigning,
    /// A probe shows the signer still signing with a retiring key: its
    /// withdrawal or key deletion waits; retried with backoff.
    StillSigning,
    /// A probe shows the signer no longer signing with the active key
    /// (restarted with old tables, tables edited by hand).
    Drift,
}

impl BlockKind {
    /// What is blocked, in a few words for people (`status`, `rotate`).
    pub fn describe(self) -> &'static str {
        match self {
            BlockKind::SwitchFailed => "rotation stopped",
            BlockKind::NotSigning => "switch not proven",
            BlockKind::StillSigning => "retirement held",
            BlockKind::Drift => "signer drift",
        }
    }
}

impl DomainState {
    /// A domain with no keys yet (bootstrap).
    pub fn new(domain: Fqdn) -> Self {
        DomainState {
            domain,
            keys: Vec::new(),
        }
    }

    /// The key with this selector.
    pub fn key(&self, selector: &Selector) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| &k.selector == selector)
    }

    pub(super) fn key_mut(&mut self, selector: &Selector) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| &k.selector == selector)
    }

    /// The key the signer uses for `algorithm` (confirmed).
    pub fn active(&self, algorithm: Algorithm) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| k.algorithm == algorithm && k.status == KeyStatus::Active)
    }

    /// The key on its way to signing for `algorithm`.
    pub fn pending(&self, algorithm: Algorithm) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| k.algorithm == algorithm && k.status.is_pending())
    }

    /// Everything blocked: failed switches (the algorithm stops) and keys a
    /// signer probe holds ([`KeyRecord::held`]).
    pub fn blocked(&self) -> Vec<Blocked> {
        self.keys
            .iter()
            .filter_map(|k| {
                let kind = if k.status == KeyStatus::SwitchFailed {
                    BlockKind::SwitchFailed
                } else if k.held.is_some() {
                    match k.status {
                        KeyStatus::Switched => BlockKind::NotSigning,
                        KeyStatus::Active => BlockKind::Drift,
                        _ => BlockKind::StillSigning,
                    }
                } else {
                    return None;
                };
                Some(Blocked {
                    algorithm: k.algorithm,
                    selector: k.selector.clone(),
                    kind,
                    reason: k
                        .held
                        .clone()
                        .or_else(|| k.failure.clone())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Failed switches only: the algorithms whose rotation stops until an
    /// operator unblocks them.
    pub fn halted(&self) -> Vec<Blocked> {
        self.blocked()
            .into_iter()
            .filter(|b| b.kind == BlockKind::SwitchFailed)
            .collect()
    }

    pub(super) fn algorithms(&self) -> BTreeSet<Algorithm> {
        self.keys.iter().map(|k| k.algorithm).collect()
    }
}

/// A broken rule of the lifecycle, found in a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{domain}: {what}")]
pub struct InvariantError {
    /// The domain.
    pub domain: String,
    /// What is wrong.
    pub what: String,
}

/// Checks the invariants a state must keep: unique selectors; at most one
/// pending and one signing key per algorithm; timestamps each status needs.
pub fn check_invariants(state: &DomainState) -> Result<(), InvariantError> {
    let err = |what: String| InvariantError {
        domain: state.domain.to_string(),
        what,
    };
    let mut selectors = BTreeSet::new();
    for k in &state.keys {
        if !selectors.insert(&k.selector) {
            return Err(err(format!("selector {} appears twice", k.selector)));
        }
        let needs = |field: &str, v: Option<DateTime<Utc>>| {
            if v.is_none() {
                Err(err(format!(
                    "key {} is {} but has no {field}",
                    k.selector, k.status
                )))
            } else {
                Ok(())
            }
        };
        if k.status >= KeyStatus::Generated
            && k.status != KeyStatus::Destroyed
            && k.key_path.is_none()
        {
            return Err(err(format!(
                "key {} is {} but has no key path",
                k.selector, k.status
            )));
        }
        // A key discarded before it ever signed (keyring::fall_back: the host
        // could not hold it) is destroyed without having been active.
        let discarded = k.status == KeyStatus::Destroyed
            && k.active_at.is_none()
            && k.retired_at.is_none()
            && k.safe_after.is_none();
        if discarded {
            needs("destroyed_at", k.destroyed_at)?;
            continue;
        }
        if k.status >= KeyStatus::Propagated {
            needs("safe_after", k.safe_after)?;
        }
        if k.status == KeyStatus::Active || k.status.is_retired() {
            needs("active_at", k.active_at)?;
        }
        if k.status.is_retired() {
            needs("retired_at", k.retired_at)?;
        }
    }
    for alg in state.algorithms() {
        let of = |f: fn(KeyStatus) -> bool| {
            state
                .keys
                .iter()
                .filter(|k| k.algorithm == alg && f(k.status))
                .count()
        };
        if of(KeyStatus::is_pending) > 1 {
            return Err(err(format!("more than one pending {alg} key")));
        }
        if of(|s| s == KeyStatus::Active) > 1 {
            return Err(err(format!("more than one active {alg} key")));
        }
    }
    Ok(())
}

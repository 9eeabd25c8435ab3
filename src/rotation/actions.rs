//! What the rotation machine asks the runner to do ([`Action`]), what the
//! runner tells it back ([`Observation`]), and the result of one step.

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use serde::{Deserialize, Serialize};

use super::selector::Selector;
use super::state::DomainState;
use crate::keys::Algorithm;

/// What the watcher must see at every authoritative server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The key's record, exactly as published.
    Present,
    /// The revoked record (`p=` empty).
    Revoked,
    /// No record of ours at the selector.
    Absent,
}

/// One idempotent thing for the runner to do. Performing an action twice has
/// the same effect as performing it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Generate a private key into a NEW file for this selector (if the file
    /// already exists, keep it) -> [`Observation::KeyGenerated`].
    GenerateKey {
        /// Selector chosen by the machine.
        selector: Selector,
        /// Algorithm.
        algorithm: Algorithm,
        /// Size (256 for Ed25519).
        bits: u32,
    },
    /// Publish the key's record beside the current one -> [`Observation::KeyPublished`].
    PublishKey {
        /// Which key.
        selector: Selector,
    },
    /// Ask the watcher -> [`Observation::Propagation`].
    AwaitPropagation {
        /// Which record.
        selector: Selector,
        /// What every authoritative server must serve.
        expect: Expect,
    },
    /// Point the signer at this key (new key file already written; tables;
    /// reload) -> [`Observation::SignerSwitched`].
    SwitchSigner {
        /// Which key.
        selector: Selector,
    },
    /// Check the signer really signs with it -> [`Observation::SignerConfirmed`]
    /// or [`Observation::SignerFailed`].
    ConfirmSigner {
        /// Which key.
        selector: Selector,
    },
    /// Publish the record with an empty `p=` -> [`Observation::KeyWithdrawn`].
    RevokeKey {
        /// Which key.
        selector: Selector,
    },
    /// Remove the record -> [`Observation::KeyWithdrawn`].
    UnpublishKey {
        /// Which key.
        selector: Selector,
    },
    /// Publish the private key for deniability -> [`Observation::PrivateKeyPublished`].
    PublishPrivateKey {
        /// Which key.
        selector: Selector,
    },
    /// Delete the private key file -> [`Observation::PrivateKeyDeleted`].
    DeletePrivateKey {
        /// Which key.
        selector: Selector,
    },
    /// Nothing to do before `until` (always the last action, at most one).
    Wait {
        /// When to step again.
        until: DateTime<Utc>,
    },
    /// Rotation of `algorithm` is blocked; an operator must look (see
    /// [`unblock`]). Nothing of it is removed meanwhile.
    Failed {
        /// The blocked algorithm.
        algorithm: Algorithm,
        /// The key the signer could not be switched to.
        selector: Selector,
        /// Why.
        reason: String,
    },
}

impl Action {
    /// The selector the action is about (`None` for [`Action::Wait`]).
    pub fn selector(&self) -> Option<&Selector> {
        match self {
            Action::GenerateKey { selector, .. }
            | Action::PublishKey { selector }
            | Action::AwaitPropagation { selector, .. }
            | Action::SwitchSigner { selector }
            | Action::ConfirmSigner { selector }
            | Action::RevokeKey { selector }
            | Action::UnpublishKey { selector }
            | Action::PublishPrivateKey { selector }
            | Action::DeletePrivateKey { selector }
            | Action::Failed { selector, .. } => Some(selector),
            Action::Wait { .. } => None,
        }
    }

    /// Short stable name (events, logs).
    pub fn name(&self) -> &'static str {
        match self {
            Action::GenerateKey { .. } => "generate_key",
            Action::PublishKey { .. } => "publish_key",
            Action::AwaitPropagation { .. } => "await_propagation",
            Action::SwitchSigner { .. } => "switch_signer",
            Action::ConfirmSigner { .. } => "confirm_signer",
            Action::RevokeKey { .. } => "revoke_key",
            Action::UnpublishKey { .. } => "unpublish_key",
            Action::PublishPrivateKey { .. } => "publish_private_key",
            Action::DeletePrivateKey { .. } => "delete_private_key",
            Action::Wait { .. } => "wait",
            Action::Failed { .. } => "failed",
        }
    }
}

/// The watcher's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every authoritative server serves what was expected; relying parties'
    /// caches are safe after `safe_after` (negative caching window).
    Passed {
        /// When the record can be relied on.
        safe_after: DateTime<Utc>,
    },
    /// Not yet everywhere (which servers, what they serve).
    NotYet {
        /// The watcher's explanation.
        detail: String,
    },
}

/// What the runner learned by performing an action (or by looking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "observation", rename_all = "snake_case")]
pub enum Observation {
    /// The private key exists at `key_path`.
    KeyGenerated {
        /// Which key.
        selector: Selector,
        /// Where (a path; never the key itself).
        key_path: String,
    },
    /// The record was accepted by the DNS host.
    KeyPublished {
        /// Which key.
        selector: Selector,
    },
    /// The watcher's verdict.
    Propagation {
        /// Which record.
        selector: Selector,
        /// What was checked.
        expect: Expect,
        /// The verdict.
        verdict: Verdict,
    },
    /// The signer was switched (tables written, reload sent).
    SignerSwitched {
        /// Which key.
        selector: Selector,
    },
    /// A probe showed the signer signing with this key (verified against the
    /// authoritative servers).
    SignerConfirmed {
        /// Which key.
        selector: Selector,
    },
    /// The signer could not be switched to this key (its pre-reload checks
    /// failed; nothing was written).
    SignerFailed {
        /// Which key.
        selector: Selector,
        /// Why.
        reason: String,
    },
    /// The record was revoked or removed at the DNS host.
    KeyWithdrawn {
        /// Which key.
        selector: Selector,
    },
    /// A signer probe holds the key: a switched key the signer does not sign
    /// with yet, or a retiring key it still signs with (the retirement step was
    /// not performed). Retried with backoff.
    SignerHeld {
        /// Which key.
        selector: Selector,
        /// What the probe saw.
        reason: String,
    },
    /// A periodic probe found the signer not signing with this active key.
    SignerDrift {
        /// Which key.
        selector: Selector,
        /// What the probe saw.
        reason: String,
    },
    /// The private key was published for deniability.
    PrivateKeyPublished {
        /// Which key.
        selector: Selector,
    },
    /// The private key file is gone.
    PrivateKeyDeleted {
        /// Which key.
        selector: Selector,
    },
    /// Performing an action failed (transiently, as far as the runner knows).
    /// The machine backs off and asks again.
    ActionFailed {
        /// Which key.
        selector: Selector,
        /// [`Action::name`] of the failed action.
        action: String,
        /// The error, without secrets.
        reason: String,
    },
}

impl Observation {
    /// The selector it is about.
    pub fn selector(&self) -> &Selector {
        match self {
            Observation::KeyGenerated { selector, .. }
            | Observation::KeyPublished { selector }
            | Observation::Propagation { selector, .. }
            | Observation::SignerSwitched { selector }
            | Observation::SignerConfirmed { selector }
            | Observation::SignerFailed { selector, .. }
            | Observation::SignerHeld { selector, .. }
            | Observation::SignerDrift { selector, .. }
            | Observation::KeyWithdrawn { selector }
            | Observation::PrivateKeyPublished { selector }
            | Observation::PrivateKeyDeleted { selector }
            | Observation::ActionFailed { selector, .. } => selector,
        }
    }
}

/// One line of the append-only event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// Which domain.
    pub domain: Fqdn,
    /// Which key, if any.
    pub selector: Option<Selector>,
    /// What happened (`planned`, `generated`, `published`, `propagated`,
    /// `switched`, `active`, `retiring`, `withdrawing`, `withdrawn`,
    /// `disclosed`, `destroyed`, `switch_failed`, `bits_fallback`, the name of
    /// a failed action, `unblocked`, ...).
    pub what: String,
    /// `ok`, `pending`, `warning`, `error` or `blocked`.
    pub outcome: String,
    /// Human-readable detail (never a secret).
    pub detail: String,
}

/// Something the operator should know (printed, and logged as an event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable code, e.g. `bits_fallback`.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
}

/// The result of one [`step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The state after folding in the observations (and any newly planned
    /// key). Save it, with `events`, before performing `actions`.
    pub state: DomainState,
    /// What to do, in order. [`Action::Wait`], if present, is last.
    pub actions: Vec<Action>,
    /// What to append to the event log (with `state`, atomically).
    pub events: Vec<Event>,
    /// Warnings for the operator.
    pub warnings: Vec<Warning>,
}

impl Decision {
    /// Actions the runner performs now (not waits, not blocked markers).
    pub fn work(&self) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(|a| !matches!(a, Action::Wait { .. } | Action::Failed { .. }))
    }

    /// When to step again if there is no work now.
    pub fn wait_until(&self) -> Option<DateTime<Utc>> {
        self.actions.iter().find_map(|a| match a {
            Action::Wait { until } => Some(*until),
            _ => None,
        })
    }

    /// True when the state changed (something to save).
    pub fn changed(&self, before: &DomainState) -> bool {
        &self.state != before || !self.events.is_empty()
    }
}

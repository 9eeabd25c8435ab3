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
use std::fmt;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, TimeDelta, Utc};
use maildns_providers::Fqdn;
use serde::{Deserialize, Serialize};

/// Why a string is not a usable DKIM selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// Empty selector.
    #[error("the selector is empty")]
    Empty,
    /// Longer than one DNS label.
    #[error("selector '{selector}' is {len} bytes long; a selector label holds at most 63")]
    TooLong {
        /// The selector as given.
        selector: String,
        /// Its length.
        len: usize,
    },
    /// A character outside `a-z 0-9 - _`, or a leading/trailing hyphen.
    #[error(
        "selector '{selector}' must be letters, digits, '-' or '_' and not start or end with '-'"
    )]
    BadCharacter {
        /// The selector as given.
        selector: String,
    },
}

/// A validated DKIM selector: one DNS label, lowercase (RFC 6376 §3.1).
///
/// The record lives at `<selector>._domainkey.<domain>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Selector(String);

impl Selector {
    /// Validates and lowercases `s`.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        if s.is_empty() {
            return Err(SelectorError::Empty);
        }
        if s.len() > 63 {
            return Err(SelectorError::TooLong {
                selector: s.to_string(),
                len: s.len(),
            });
        }
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_chars || s.starts_with('-') || s.ends_with('-') {
            return Err(SelectorError::BadCharacter {
                selector: s.to_string(),
            });
        }
        Ok(Selector(s.to_ascii_lowercase()))
    }

    /// The selector text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Selector {
    type Error = SelectorError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Selector::parse(&s)
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.0
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({})", self.0)
    }
}

pub use crate::keys::Algorithm;

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
    /// The signer was told to use it; waiting for confirmation.
    Switched,
    /// The signer switch could not be confirmed. Rotation of this algorithm is
    /// blocked until an operator calls [`unblock`]; nothing is removed meanwhile.
    SwitchFailed,
    /// The signer signs with it (confirmed).
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
    /// Why the last attempt failed, or why the switch failed.
    pub failure: Option<String>,
}

impl KeyRecord {
    fn planned(selector: Selector, algorithm: Algorithm, bits: u32, now: DateTime<Utc>) -> Self {
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

    fn progressed(&mut self, status: KeyStatus) {
        self.status = status;
        self.not_before = None;
        self.attempts = 0;
        self.failure = None;
    }
}

/// The persisted rotation state of one domain: every key it ever had
/// (destroyed keys stay as history so selectors are not reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    /// The domain (`d=`).
    pub domain: Fqdn,
    /// Its keys, in creation order.
    pub keys: Vec<KeyRecord>,
}

/// A blocked algorithm, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// The algorithm whose rotation is stopped.
    pub algorithm: Algorithm,
    /// The key the signer could not be switched to.
    pub selector: Selector,
    /// Why.
    pub reason: String,
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

    fn key_mut(&mut self, selector: &Selector) -> Option<&mut KeyRecord> {
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

    /// Algorithms whose rotation is blocked by a failed signer switch.
    pub fn blocked(&self) -> Vec<Blocked> {
        self.keys
            .iter()
            .filter(|k| k.status == KeyStatus::SwitchFailed)
            .map(|k| Blocked {
                algorithm: k.algorithm,
                selector: k.selector.clone(),
                reason: k.failure.clone().unwrap_or_default(),
            })
            .collect()
    }

    fn algorithms(&self) -> BTreeSet<Algorithm> {
        self.keys.iter().map(|k| k.algorithm).collect()
    }
}

/// What to do with an old key's record once the overlap has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Withdrawal {
    /// Publish it with an empty `p=` (RFC 6376 §3.6.1: the key is revoked).
    #[default]
    Revoke,
    /// Remove the record.
    Remove,
}

/// What to do with an old private key once its record is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Disposal {
    /// Delete it.
    #[default]
    Delete,
    /// Publish it (for deniability, as dkim-rotate does), then delete it.
    Disclose,
}

pub use crate::keys::KeySpec;

/// Rotation settings as configured, before validation. Build a [`Policy`]
/// with [`Policy::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// Keys to maintain, one per algorithm (default: RSA 2048).
    pub keys: Vec<KeySpec>,
    /// strftime format of new selectors (default `%Y%m`, as in the seed).
    pub selector_format: String,
    /// Rotate this long after a key became active (default 30 days).
    pub rotation_interval: TimeDelta,
    /// Keep an old key's record published this long after it stopped
    /// signing (default 14 days).
    pub overlap: TimeDelta,
    /// Refuse an overlap shorter than this (default 5 days).
    pub min_overlap: TimeDelta,
    /// Never reuse a selector used within this window (default 365 days).
    pub selector_reuse_window: TimeDelta,
    /// Revoke or remove old records (default revoke).
    pub withdrawal: Withdrawal,
    /// Delete or disclose old private keys (default delete).
    pub disposal: Disposal,
    /// Largest RSA key the DNS host can hold, from the provider profile or the
    /// last diagnosis. Above it, keys fall back to a size that fits (at least 1024).
    pub max_bits_for_host: Option<u32>,
    /// Wait this long before asking the watcher again after "not yet" (default 1 min).
    pub recheck_interval: TimeDelta,
    /// First retry delay after a failed action; doubles per attempt (default 1 min).
    pub retry_backoff: TimeDelta,
    /// Longest retry delay (default 1 hour).
    pub max_backoff: TimeDelta,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            keys: vec![KeySpec {
                algorithm: Algorithm::Rsa,
                bits: 2048,
            }],
            selector_format: "%Y%m".to_string(),
            rotation_interval: TimeDelta::days(30),
            overlap: TimeDelta::days(14),
            min_overlap: TimeDelta::days(5),
            selector_reuse_window: TimeDelta::days(365),
            withdrawal: Withdrawal::Revoke,
            disposal: Disposal::Delete,
            max_bits_for_host: None,
            recheck_interval: TimeDelta::minutes(1),
            retry_backoff: TimeDelta::minutes(1),
            max_backoff: TimeDelta::hours(1),
        }
    }
}

/// Why rotation settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Overlap below the minimum.
    #[error(
        "overlap of {overlap_hours} h is shorter than the minimum of {min_hours} h: mail in flight signed with the old key would fail"
    )]
    OverlapTooShort {
        /// Configured overlap, in hours.
        overlap_hours: i64,
        /// Minimum, in hours.
        min_hours: i64,
    },
    /// A duration longer than dates can safely be computed with.
    #[error("{what} must be at most {max_days} days")]
    TooLong {
        /// Which setting.
        what: &'static str,
        /// The limit, in days.
        max_days: i64,
    },
    /// A duration that must be positive is not.
    #[error("{what} must be positive")]
    NotPositive {
        /// Which setting.
        what: &'static str,
    },
    /// No key to maintain, or an algorithm listed twice.
    #[error("{0}")]
    Keys(String),
    /// RSA size out of range.
    #[error(
        "RSA keys must be 1024 to 4096 bits (RFC 8301: at least 1024, 2048 recommended); {bits} given"
    )]
    RsaBits {
        /// Configured size.
        bits: u32,
    },
    /// The selector format is not a valid strftime format or does not give a selector.
    #[error("selector format '{format}' {why}")]
    SelectorFormat {
        /// The format.
        format: String,
        /// What is wrong.
        why: String,
    },
}

/// Longest rotation interval, overlap or minimum overlap (about 10 years).
pub const MAX_POLICY_DAYS: i64 = 3653;

/// Validated rotation settings (the default is [`PolicySettings::default`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    s: PolicySettings,
}

impl Policy {
    /// Validates `settings`: overlap at least the minimum, positive durations,
    /// one spec per algorithm, RSA 1024-4096, a selector format that yields a label.
    ///
    /// # Errors
    /// The first of [`Policy::problems`].
    pub fn new(settings: PolicySettings) -> Result<Policy, PolicyError> {
        match Policy::problems(&settings).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(Policy { s: settings }),
        }
    }

    /// Every rule `settings` breaks (empty: [`Policy::new`] accepts them). This is
    /// THE validator of rotation settings: the configuration loader calls it, so
    /// a configuration that loads always makes a policy.
    pub fn problems(settings: &PolicySettings) -> Vec<PolicyError> {
        let s = settings;
        let mut out = Vec::new();
        for (what, d) in [
            ("rotation_interval", s.rotation_interval),
            ("overlap", s.overlap),
            ("recheck_interval", s.recheck_interval),
            ("retry_backoff", s.retry_backoff),
            ("max_backoff", s.max_backoff),
        ] {
            if d <= TimeDelta::zero() {
                out.push(PolicyError::NotPositive { what });
            }
        }
        for (what, d) in [
            ("rotation_interval", s.rotation_interval),
            ("overlap", s.overlap),
            ("min_overlap", s.min_overlap),
        ] {
            if d > TimeDelta::days(MAX_POLICY_DAYS) {
                out.push(PolicyError::TooLong {
                    what,
                    max_days: MAX_POLICY_DAYS,
                });
            }
        }
        if s.overlap < s.min_overlap {
            out.push(PolicyError::OverlapTooShort {
                overlap_hours: s.overlap.num_hours(),
                min_hours: s.min_overlap.num_hours(),
            });
        }
        if s.keys.is_empty() {
            out.push(PolicyError::Keys("no DKIM key to maintain".into()));
        }
        let mut seen = BTreeSet::new();
        for k in &s.keys {
            if !seen.insert(k.algorithm) {
                out.push(PolicyError::Keys(format!(
                    "algorithm {} is listed twice",
                    k.algorithm
                )));
            }
            if k.algorithm == Algorithm::Rsa && !(1024..=4096).contains(&k.bits) {
                out.push(PolicyError::RsaBits { bits: k.bits });
            }
        }
        // The format must give a selector at every date, not just today's:
        // samples with one- and two-digit days, months and hours.
        let samples = [
            DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000),
            DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_454),
            DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_818) + TimeDelta::seconds(86_399),
            DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(21_070) + TimeDelta::seconds(32_949),
        ];
        for sample in samples {
            match format_selector(&s.selector_format, sample) {
                Err(why) => {
                    out.push(PolicyError::SelectorFormat {
                        format: s.selector_format.clone(),
                        why,
                    });
                    break;
                }
                // Leave room for a collision suffix.
                Ok(formatted) if formatted.len() > 60 => {
                    out.push(PolicyError::SelectorFormat {
                        format: s.selector_format.clone(),
                        why: "gives selectors longer than 60 characters".into(),
                    });
                    break;
                }
                Ok(_) => {}
            }
        }
        out
    }

    /// The validated settings.
    pub fn settings(&self) -> &PolicySettings {
        &self.s
    }

    /// The size a new key of `spec` gets, and whether that is a fallback
    /// because the host cannot hold the configured size. RSA falls back to
    /// the largest of 4096/3072/2048/1024 that fits, never below 1024.
    pub fn effective_bits(&self, spec: &KeySpec) -> (u32, bool) {
        match spec.algorithm {
            Algorithm::Ed25519 => (256, false),
            Algorithm::Rsa => match self.s.max_bits_for_host {
                Some(max) if spec.bits > max => {
                    let fit = [4096, 3072, 2048, 1024]
                        .into_iter()
                        .find(|b| *b <= max && *b <= spec.bits)
                        .unwrap_or(1024);
                    (fit, true)
                }
                _ => (spec.bits, false),
            },
        }
    }

    fn backoff(&self, attempts: u32) -> TimeDelta {
        let factor = 1i32 << attempts.saturating_sub(1).min(16);
        let d = self.s.retry_backoff * factor;
        if d > self.s.max_backoff {
            self.s.max_backoff
        } else {
            d
        }
    }

    fn withdrawn_expect(&self) -> Expect {
        match self.s.withdrawal {
            Withdrawal::Revoke => Expect::Revoked,
            Withdrawal::Remove => Expect::Absent,
        }
    }
}

/// Formats `now` with the strftime `format` into a selector, refusing formats
/// chrono cannot render and results that are not a selector label.
fn format_selector(format: &str, now: DateTime<Utc>) -> Result<String, String> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err("is not a valid strftime format".into());
    }
    let mut out = String::new();
    write!(out, "{}", now.format_with_items(items.into_iter()))
        .map_err(|_| "cannot be rendered".to_string())?;
    Selector::parse(&out)
        .map(|s| s.0)
        .map_err(|e| format!("does not give a selector: {e}"))
}

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
    /// The signer was seen signing with this key.
    SignerConfirmed {
        /// Which key.
        selector: Selector,
    },
    /// The signer could not be switched to this key, or the switch did not take.
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
    let blocked: BTreeSet<Algorithm> = state.blocked().iter().map(|b| b.algorithm).collect();
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
    let blocked: BTreeSet<Algorithm> = state.blocked().iter().map(|b| b.algorithm).collect();
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
fn key_due(key: &KeyRecord, policy: &Policy) -> Option<DateTime<Utc>> {
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
fn rotation_due(
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
fn key_action(key: &KeyRecord, policy: &Policy) -> Option<Action> {
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
fn choose_selector(state: &DomainState, now: DateTime<Utc>, policy: &Policy) -> Option<Selector> {
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

    let blocked = state.blocked();
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

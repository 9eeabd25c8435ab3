//! The one DKIM rotation policy: settings as configured, validated once by
//! [`Policy::new`] (the configuration loader builds it; nothing downstream
//! re-validates).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::actions::Expect;
use super::selector::format_selector;
use crate::keys::{Algorithm, KeySpec};

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
    /// Only the machine reads it directly (within `rotation`).
    pub(super) s: PolicySettings,
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
                        why: why.to_string(),
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

    /// This policy for a DNS host that holds RSA keys of at most
    /// `max_bits_for_host` bits (from the account's profile or its latest
    /// diagnosis; `None`: no known limit). Above it, new keys fall back to a
    /// size that fits ([`Policy::effective_bits`]). The limit is not part of
    /// validation, so the result stays valid.
    #[must_use]
    pub fn for_host(&self, max_bits_for_host: Option<u32>) -> Policy {
        let mut s = self.s.clone();
        s.max_bits_for_host = max_bits_for_host;
        Policy { s }
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

    pub(super) fn backoff(&self, attempts: u32) -> TimeDelta {
        let factor = 1i32 << attempts.saturating_sub(1).min(16);
        let d = self.s.retry_backoff * factor;
        if d > self.s.max_backoff {
            self.s.max_backoff
        } else {
            d
        }
    }

    pub(super) fn withdrawn_expect(&self) -> Expect {
        match self.s.withdrawal {
            Withdrawal::Revoke => Expect::Revoked,
            Withdrawal::Remove => Expect::Absent,
        }
    }
}

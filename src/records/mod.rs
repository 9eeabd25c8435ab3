//! The mail-authentication records maildns manages, each with the same shape:
//! build from configuration, parse from a TXT value, lint. No I/O here.

pub mod adsp;
pub mod dkim;
pub mod dmarc;
pub mod spf;
pub mod tags;

use maildns_providers::TxtRecord;
use serde::Serialize;

/// The kinds of record maildns manages; each owns the TXT values that start with
/// its marker at its name (every other value there is left alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// `v=spf1` at the domain.
    Spf,
    /// `v=DKIM1` at `<selector>._domainkey.<domain>`.
    Dkim,
    /// `v=DMARC1` at `_dmarc.<domain>`.
    Dmarc,
    /// `dkim=` at `_adsp._domainkey.<domain>` (historic).
    Adsp,
}

impl RecordKind {
    /// True when this kind owns `record` (decided on its joined value).
    pub fn owns(&self, record: &TxtRecord) -> bool {
        let value = record.value();
        match self {
            RecordKind::Spf => spf::is_spf(&value),
            RecordKind::Dkim => dkim::is_dkim(&value),
            RecordKind::Dmarc => dmarc::is_dmarc(&value),
            RecordKind::Adsp => adsp::is_adsp(&value),
        }
    }

    /// The kind's upper-case name for messages: `SPF`, `DKIM`, `DMARC`, `ADSP`
    /// (JSON output uses the lower-case serde names `spf`, `dkim`, `dmarc`, `adsp`).
    pub fn label(&self) -> &'static str {
        match self {
            RecordKind::Spf => "SPF",
            RecordKind::Dkim => "DKIM",
            RecordKind::Dmarc => "DMARC",
            RecordKind::Adsp => "ADSP",
        }
    }
}

/// How serious a lint finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Works, but is risky or outdated.
    Warning,
    /// Receivers will reject or ignore the record.
    Error,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Severity.
    pub severity: Severity,
    /// Stable short code, e.g. `spf-too-many-lookups`.
    pub code: &'static str,
    /// A sentence for humans, saying what and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// An error finding.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
        }
    }
    /// A warning finding.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            code,
            message: message.into(),
        }
    }
    /// An informational finding.
    pub fn info(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Info,
            code,
            message: message.into(),
        }
    }
}

/// A lint rule: its stable code, the record kind it checks, and how serious it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable code, e.g. `spf-too-many-lookups` (what `[domains."x".lint] allow` names).
    pub code: &'static str,
    /// The record kind it checks (`None`: every kind).
    pub kind: Option<RecordKind>,
    /// Its severity.
    pub severity: Severity,
}

const fn r(code: &'static str, kind: RecordKind, severity: Severity) -> Rule {
    Rule {
        code,
        kind: Some(kind),
        severity,
    }
}

/// Every rule the lint gate applies to configured records (see
/// [`crate::gate`]); the README's list of rule names is this list.
pub const RULES: &[Rule] = &[
    r("spf-too-many-lookups", RecordKind::Spf, Severity::Error),
    r("spf-glued-all", RecordKind::Spf, Severity::Error),
    r("spf-ptr", RecordKind::Spf, Severity::Warning),
    r("spf-pass-all", RecordKind::Spf, Severity::Warning),
    r("spf-redirect-ignored", RecordKind::Spf, Severity::Warning),
    r("spf-terms-after-all", RecordKind::Spf, Severity::Warning),
    r("spf-too-long", RecordKind::Spf, Severity::Warning),
    r("spf-no-all", RecordKind::Spf, Severity::Info),
    r("dmarc-missing-p", RecordKind::Dmarc, Severity::Error),
    r("dmarc-invalid-p", RecordKind::Dmarc, Severity::Error),
    r("dmarc-bad-value", RecordKind::Dmarc, Severity::Error),
    r("dmarc-non-mailto-uri", RecordKind::Dmarc, Severity::Error),
    r("dmarc-bad-mailto", RecordKind::Dmarc, Severity::Error),
    r("dmarc-unknown-tag", RecordKind::Dmarc, Severity::Warning),
    r("dmarc-dropped-tag", RecordKind::Dmarc, Severity::Warning),
    r("dmarc-size-limit", RecordKind::Dmarc, Severity::Warning),
    r("dmarc-p-none", RecordKind::Dmarc, Severity::Info),
    r("dmarc-testing", RecordKind::Dmarc, Severity::Info),
    r("adsp-historic", RecordKind::Adsp, Severity::Warning),
    r("adsp-discardable", RecordKind::Adsp, Severity::Warning),
    Rule {
        code: "txt-non-ascii",
        kind: None,
        severity: Severity::Error,
    },
    Rule {
        code: "ttl-below-host-minimum",
        kind: None,
        severity: Severity::Error,
    },
    Rule {
        code: "ttl-above-host-maximum",
        kind: None,
        severity: Severity::Error,
    },
    Rule {
        code: "ttl-not-kept-by-host",
        kind: None,
        severity: Severity::Error,
    },
];

/// The rule with this code.
pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code)
}

/// Checks that a value is printable ASCII (RFC 7208 §3 and RFC 7489 §6.4 define
/// their records in ASCII; other bytes reach DNS as `\DDD` escapes and receivers
/// cannot read them). Code: `txt-non-ascii` (error).
pub fn lint_ascii(value: &str) -> Vec<Diagnostic> {
    match value.char_indices().find(|(_, c)| !(' '..='~').contains(c)) {
        None => Vec::new(),
        Some((at, c)) => vec![Diagnostic::error(
            "txt-non-ascii",
            format!(
                "the value holds '{c}' (U+{:04X}) at byte {at}; records are ASCII and other \
                 bytes are published as \\DDD escapes receivers cannot read: write domain \
                 names as A-labels (xn--...), e.g. with `idn2`",
                c as u32
            ),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_own_their_values_only() {
        let values = [
            ("v=spf1 -all", RecordKind::Spf),
            ("v=DKIM1; k=rsa; p=", RecordKind::Dkim),
            ("v=DMARC1; p=none", RecordKind::Dmarc),
            ("dkim=all", RecordKind::Adsp),
        ];
        let kinds = [
            RecordKind::Spf,
            RecordKind::Dkim,
            RecordKind::Dmarc,
            RecordKind::Adsp,
        ];
        for (value, owner) in values {
            let r = TxtRecord::from_value(value);
            for k in kinds {
                assert_eq!(k.owns(&r), k == owner, "{} owning {value:?}", k.label());
            }
        }
        let foreign = TxtRecord::from_value("google-site-verification=abc");
        assert!(kinds.iter().all(|k| !k.owns(&foreign)));
        // Ownership looks at the joined value, whatever the split.
        let split = TxtRecord::split_max(b"v=DKIM1; p=abc", 3);
        assert!(RecordKind::Dkim.owns(&split));
        assert_eq!(RecordKind::Dmarc.label(), "DMARC");
    }
}

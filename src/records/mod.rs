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

    /// A short lowercase name: `spf`, `dkim`, `dmarc`, `adsp`.
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

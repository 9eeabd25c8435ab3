//! The mail-authentication records maildns manages, each with the same shape:
//! build from configuration, parse from a TXT value, lint. No I/O here.

pub mod adsp;
pub mod dkim;
pub mod dmarc;
pub mod spf;
pub mod tags;

use serde::Serialize;

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

//! The one error type every adapter returns.

use std::fmt;

use crate::{Fqdn, LimitError};

/// What the adapter was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Finding the zone that holds a name.
    FindZone,
    /// Reading a TXT set.
    Read,
    /// Replacing a TXT set.
    Replace,
    /// Deleting a TXT set.
    Delete,
    /// Obtaining credentials or an access token.
    Authenticate,
    /// Waiting for the host to apply a change.
    WaitForChange,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::FindZone => "find zone",
            Operation::Read => "read TXT",
            Operation::Replace => "replace TXT",
            Operation::Delete => "delete TXT",
            Operation::Authenticate => "authenticate",
            Operation::WaitForChange => "wait for change",
        })
    }
}

/// The kind of failure, for callers that decide what to do next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential was refused (HTTP 401, TSIG BADSIG/BADKEY).
    Auth,
    /// The credential is valid but may not do this (HTTP 403, DNS REFUSED/NOTAUTH).
    Permission,
    /// No zone on this host holds the name.
    ZoneNotFound,
    /// The host rejected the request's content (HTTP 400/422, DNS FORMERR).
    Invalid,
    /// The host asked us to slow down and retries ran out.
    RateLimited,
    /// The host failed (5xx, SERVFAIL) and retries ran out.
    Server,
    /// The host could not be reached or did not answer in time.
    Network,
    /// The record cannot be held by this host as it is; nothing was sent.
    Limit(LimitError),
    /// Another writer changed the set first (precondition failed, conflict).
    Conflict,
    /// The answer could not be understood.
    Protocol,
    /// The host's answer was cut short (the connection closed mid-body) on every
    /// attempt; the message says after how many bytes.
    TruncatedAnswer,
    /// The account's configuration is wrong (missing credential, bad URL).
    Config,
}

impl ErrorKind {
    /// Whether trying the same request again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Network
                | ErrorKind::Conflict
                | ErrorKind::TruncatedAnswer
        )
    }
}

/// A failed provider operation: which host, doing what, on which name, and what the host said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[non_exhaustive]
pub struct Error {
    /// Host kind, e.g. `cloudflare`.
    pub provider: &'static str,
    /// What was being done.
    pub operation: Operation,
    /// The name concerned, when there is one.
    pub name: Option<String>,
    /// The kind of failure.
    pub kind: ErrorKind,
    /// HTTP status, when the host answered over HTTP.
    pub status: Option<u16>,
    /// The host's own message (or the transport error), never containing a credential.
    pub message: String,
    /// What the user should check, set by the caller that knows the account
    /// (its credential's real source, its commands); shown instead of [`Error::hint`].
    #[serde(skip)]
    pub help: Option<String>,
}

impl Error {
    /// A new error.
    pub fn new(
        provider: &'static str,
        operation: Operation,
        name: Option<&Fqdn>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Error {
            provider,
            operation,
            name: name.map(|n| n.to_string()),
            kind,
            status: None,
            message: message.into(),
            help: None,
        }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the name.
    pub fn with_name(mut self, name: &Fqdn) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Sets what the user should check, replacing the generic [`Error::hint`].
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// A short, generic hint of what the user should check, by kind. It names no
    /// configuration key or command: callers that know the account add those with
    /// [`Error::with_help`].
    pub fn hint(&self) -> Option<&'static str> {
        match &self.kind {
            ErrorKind::Auth => Some("check the account's credential"),
            ErrorKind::Permission => Some(
                "the credential is valid but lacks permission for this zone or name (token scope, update-policy)",
            ),
            ErrorKind::ZoneNotFound => {
                Some("check the domain's zone and that the account serves it")
            }
            ErrorKind::Limit(_) => Some("shorten the record, or measure what the host holds"),
            ErrorKind::RateLimited => {
                Some("the host is rate limiting; try again later or lower the concurrency")
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.provider, self.operation)?;
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        let kind = match &self.kind {
            ErrorKind::Auth => "authentication failed".to_string(),
            ErrorKind::Permission => "permission denied".to_string(),
            ErrorKind::ZoneNotFound => "zone not found".to_string(),
            ErrorKind::Invalid => "rejected by the host".to_string(),
            ErrorKind::RateLimited => "rate limited".to_string(),
            ErrorKind::Server => "server error".to_string(),
            ErrorKind::Network => "unreachable".to_string(),
            ErrorKind::Limit(l) => format!("record does not fit this host: {l}"),
            ErrorKind::Conflict => "conflict".to_string(),
            ErrorKind::Protocol => "unexpected answer".to_string(),
            ErrorKind::TruncatedAnswer => "answer cut short".to_string(),
            ErrorKind::Config => "configuration error".to_string(),
        };
        write!(f, ": {kind}")?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(h) = self.help.as_deref().or(self.hint()) {
            write!(f, " — {h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_everything() {
        let n = Fqdn::parse("example.com").unwrap();
        let e = Error::new(
            "cloudflare",
            Operation::Replace,
            Some(&n),
            ErrorKind::Auth,
            "Authentication error",
        )
        .with_status(403);
        assert_eq!(
            e.to_string(),
            "cloudflare: replace TXT example.com: authentication failed (HTTP 403): Authentication error — check the account's credential"
        );
        assert_eq!(
            e.with_help("set MAILDNS_CF_TOKEN").to_string(),
            "cloudflare: replace TXT example.com: authentication failed (HTTP 403): Authentication error — set MAILDNS_CF_TOKEN"
        );
    }
}

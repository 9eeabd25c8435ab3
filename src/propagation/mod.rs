//! The propagation watcher: is a TXT value served by every authoritative server?
//!
//! A provider API accepting a change says nothing about what resolvers will see.
//! This module checks the servers themselves, the way lego (the ACME client) does:
//!
//! 1. [`discover`]: find the zone apex of a name by walking up SOA queries through
//!    a recursive resolver (following CNAMEs), then its NS set and every A/AAAA of
//!    every NS name. A fixed list of addresses can replace discovery (hidden
//!    primaries, split horizon, tests).
//! 2. [`query`]: ask each address directly, recursion desired off, UDP with EDNS0
//!    first and TCP when the answer is truncated, with a per-query timeout and a
//!    bound on queries in flight.
//! 3. [`evaluate`]: compare exactly — a record's character-strings joined with
//!    nothing between them must equal the expected value; whether the split into
//!    strings is also identical is reported separately. Foreign values at the name
//!    are ignored.
//! 4. [`watch`]: poll every server with backoff until every check passes on every
//!    server or the time runs out, and compute when it is *safe* to rely on the
//!    change: the moment all passed plus the longest time a resolver may still hold
//!    the old answer (the previous TTL, or the negative-caching TTL of RFC 2308 §5
//!    for a name that did not exist).
//!
//! The library never prints: progress goes through the [`Progress`] trait, time
//! comes from the [`Clock`] trait.

pub mod discover;
pub mod query;
pub mod servers;
pub mod watch;

use std::net::SocketAddr;

use maildns_providers::{Fqdn, TxtRecord};
use serde::Serialize;

pub use discover::{Discovery, DiscoveryError, DiscoveryOptions, Upstream, discover};
pub use query::{Querier, QueryError, QueryOptions, Rcode, SoaInfo, TxtAnswer};
pub use servers::{authoritative_servers, upstream};
pub use watch::{
    Backoff, CheckReport, Clock, NoProgress, Progress, RecursiveCheck, ServerStatus, SystemClock,
    WatchOptions, WatchReport, Watcher,
};

/// One server to ask: an address, and the NS name it came from when discovered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Nameserver {
    /// The NS name (no trailing dot), `None` when the address was configured directly.
    pub name: Option<String>,
    /// Address and port to query.
    pub addr: SocketAddr,
}

impl Nameserver {
    /// A server given by address only (an override, a test server, a resolver).
    pub fn from_addr(addr: SocketAddr) -> Nameserver {
        Nameserver { name: None, addr }
    }
}

impl std::fmt::Display for Nameserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} ({})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// What must be true of the TXT records at a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// Some record's joined value equals this record's joined value.
    Present(TxtRecord),
    /// No record's joined value equals this record's joined value (the name may
    /// not exist, have no TXT, or carry only other values).
    Absent(TxtRecord),
}

impl Expectation {
    /// The record whose joined value is compared.
    pub fn record(&self) -> &TxtRecord {
        match self {
            Expectation::Present(r) | Expectation::Absent(r) => r,
        }
    }
}

/// One thing to watch: a name and what must be served there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The name queried (when discovery followed a CNAME, the CNAME's target).
    pub name: Fqdn,
    /// What must be served.
    pub expectation: Expectation,
    /// TTL of the answer resolvers may have cached before the change (the old
    /// record set's TTL), when known. Without it, a `Present` check is treated as a
    /// new name (negative-caching TTL) and an `Absent` check uses only the TTLs
    /// observed while the value was still served.
    pub previous_ttl: Option<u32>,
}

impl Check {
    /// A check that `record` is served at `name`.
    pub fn present(name: Fqdn, record: TxtRecord) -> Check {
        Check {
            name,
            expectation: Expectation::Present(record),
            previous_ttl: None,
        }
    }

    /// A check that no record with `record`'s joined value is served at `name`.
    pub fn absent(name: Fqdn, record: TxtRecord) -> Check {
        Check {
            name,
            expectation: Expectation::Absent(record),
            previous_ttl: None,
        }
    }

    /// Sets the TTL resolvers may have cached the previous answer for.
    pub fn with_previous_ttl(mut self, ttl: u32) -> Check {
        self.previous_ttl = Some(ttl);
        self
    }
}

/// Why an answer does not count, even before values are compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerError {
    /// The query itself failed (timeout, network, malformed answer).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("{server} answered {rcode} for {name}")]
    Rcode {
        /// The server.
        server: SocketAddr,
        /// The name asked.
        name: String,
        /// The response code.
        rcode: Rcode,
    },
    /// The server answered without the authoritative flag: it does not serve the zone.
    #[error("{server} is not authoritative for {name} (AA flag not set)")]
    NotAuthoritative {
        /// The server.
        server: SocketAddr,
        /// The name asked.
        name: String,
    },
}

/// The outcome of comparing one server's answer with an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The expectation holds on this server.
    pub passed: bool,
    /// For `Present`: whether a matching record also has the identical split into
    /// character-strings. `None` for `Absent` or when nothing matched.
    pub same_split: Option<bool>,
}

/// Checks that an answer is usable: NOERROR or NXDOMAIN, and authoritative when
/// `require_authoritative` (direct queries to the zone's servers).
///
/// # Errors
/// [`ServerError::Rcode`] for any rcode but NOERROR and NXDOMAIN;
/// [`ServerError::NotAuthoritative`] when the AA bit is required and clear.
pub fn usable(
    server: SocketAddr,
    name: &Fqdn,
    answer: &TxtAnswer,
    require_authoritative: bool,
) -> Result<(), ServerError> {
    match answer.rcode {
        Rcode::NoError | Rcode::NxDomain => {}
        rcode => {
            return Err(ServerError::Rcode {
                server,
                name: name.to_string(),
                rcode,
            });
        }
    }
    if require_authoritative && !answer.authoritative {
        return Err(ServerError::NotAuthoritative {
            server,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Compares the records a server serves with an expectation, exactly.
///
/// `Present(r)` passes when some record's joined value equals `r`'s joined value;
/// `Absent(r)` passes when none does. Values belonging to others are ignored.
pub fn evaluate(expectation: &Expectation, serving: &[TxtRecord]) -> Verdict {
    let want = expectation.record().value();
    let mut matching = serving.iter().filter(|r| r.value() == want).peekable();
    match expectation {
        Expectation::Present(expected) => {
            if matching.peek().is_none() {
                Verdict {
                    passed: false,
                    same_split: None,
                }
            } else {
                let same = matching.any(|r| r == expected);
                Verdict {
                    passed: true,
                    same_split: Some(same),
                }
            }
        }
        Expectation::Absent(_) => Verdict {
            passed: matching.peek().is_none(),
            same_split: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(parts: &[&str]) -> TxtRecord {
        TxtRecord::from_parts(parts).unwrap()
    }

    #[test]
    fn present_matches_joined_value_and_reports_split() {
        let want = Expectation::Present(rec(&["v=DKIM1; ", "p=abc"]));
        let same = evaluate(&want, &[rec(&["v=DKIM1; ", "p=abc"])]);
        assert_eq!(
            same,
            Verdict {
                passed: true,
                same_split: Some(true)
            }
        );
        let other_split = evaluate(&want, &[rec(&["v=DKIM1; p=", "abc"])]);
        assert_eq!(
            other_split,
            Verdict {
                passed: true,
                same_split: Some(false)
            }
        );
        // one match with the identical split among several is enough
        let both = evaluate(
            &want,
            &[rec(&["v=DKIM1; p=abc"]), rec(&["v=DKIM1; ", "p=abc"])],
        );
        assert_eq!(both.same_split, Some(true));
    }

    #[test]
    fn present_fails_on_near_misses_and_ignores_foreign_values() {
        let want = Expectation::Present(rec(&["v=spf1 -all"]));
        assert!(!evaluate(&want, &[]).passed);
        assert!(!evaluate(&want, &[rec(&["v=spf1 -all "])]).passed);
        assert!(!evaluate(&want, &[rec(&["v=spf1 ", "~all"])]).passed);
        // two records are two values, not one joined value
        assert!(!evaluate(&want, &[rec(&["v=spf1 "]), rec(&["-all"])]).passed);
        let v = evaluate(
            &want,
            &[rec(&["google-site-verification=x"]), rec(&["v=spf1 -all"])],
        );
        assert!(v.passed);
    }

    #[test]
    fn absent_passes_when_the_value_is_gone() {
        let gone = Expectation::Absent(rec(&["v=DKIM1; p=old"]));
        assert!(evaluate(&gone, &[]).passed);
        assert!(evaluate(&gone, &[rec(&["v=DKIM1; p=new"])]).passed);
        assert!(!evaluate(&gone, &[rec(&["v=DKIM1; ", "p=old"])]).passed);
        assert_eq!(evaluate(&gone, &[]).same_split, None);
    }

    #[test]
    fn usable_rejects_error_codes_and_non_authoritative_answers() {
        let addr: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let name = Fqdn::parse("example.test").unwrap();
        let mut a = TxtAnswer {
            rcode: Rcode::NxDomain,
            authoritative: true,
            records: vec![],
            ttl: None,
            soa: None,
            cname: None,
            tcp: false,
        };
        assert!(usable(addr, &name, &a, true).is_ok());
        a.authoritative = false;
        assert!(matches!(
            usable(addr, &name, &a, true),
            Err(ServerError::NotAuthoritative { .. })
        ));
        assert!(usable(addr, &name, &a, false).is_ok());
        a.rcode = Rcode::Refused;
        let e = usable(addr, &name, &a, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "127.0.0.1:53 answered REFUSED for example.test"
        );
    }
}

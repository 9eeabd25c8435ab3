//! ADSP records (RFC 5617) at `_adsp._domainkey.<domain>`: `dkim=unknown|all|discardable`.
//!
//! RFC 5617 was moved to Historic in 2013 and receivers ignore it; maildns publishes
//! it only when asked, and [`Adsp::lint`] always says so.

use std::fmt;

use maildns_providers::{Fqdn, NameError, TxtRecord};

use super::Diagnostic;
use super::tags::{TagListError, parse_tag_list};

/// The `dkim=` practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdspPolicy {
    /// `unknown`: the domain may sign some or all mail.
    Unknown,
    /// `all`: all mail is signed.
    All,
    /// `discardable`: all mail is signed; unsigned mail may be discarded.
    Discardable,
}

impl AdspPolicy {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            AdspPolicy::Unknown => "unknown",
            AdspPolicy::All => "all",
            AdspPolicy::Discardable => "discardable",
        }
    }
}

/// An ADSP record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Adsp {
    /// `dkim=`.
    pub policy: AdspPolicy,
    /// Other tags, in order (RFC 5617 §4.2.1: ignored by receivers).
    pub unknown: Vec<(String, String)>,
}

/// Why a value is not an ADSP record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdspError {
    /// The `tag=value` list is malformed.
    #[error("{0}")]
    TagList(#[from] TagListError),
    /// No `dkim=` tag.
    #[error("an ADSP record needs a dkim= tag (unknown, all or discardable)")]
    MissingDkim,
    /// `dkim=` with another value.
    #[error("dkim={value} at byte {at}: use unknown, all or discardable")]
    BadValue {
        /// The value.
        value: String,
        /// Its offset.
        at: usize,
    },
}

/// True when `value` is an ADSP record by the ownership rule: it starts with `dkim=`
/// (any case).
pub fn is_adsp(value: &[u8]) -> bool {
    value.len() >= 5 && value[..5].eq_ignore_ascii_case(b"dkim=")
}

/// The owner name: `_adsp._domainkey.<domain>`.
///
/// # Errors
/// [`NameError`] when `_adsp._domainkey.<domain>` is over 255 bytes in wire form.
pub fn record_name(domain: &Fqdn) -> Result<Fqdn, NameError> {
    domain.child("_adsp._domainkey")
}

impl Adsp {
    /// A record with this practice.
    pub fn new(policy: AdspPolicy) -> Self {
        Adsp {
            policy,
            unknown: Vec::new(),
        }
    }

    /// Parses an ADSP value. Keywords are case-insensitive and printed in lowercase.
    ///
    /// # Errors
    /// [`AdspError`]: a value that is not a tag-list, has no `dkim=` tag, or a `dkim=`
    /// value other than `unknown`, `all` or `discardable` (RFC 5617 §4.2.1).
    pub fn parse(value: &str) -> Result<Self, AdspError> {
        let mut policy = None;
        let mut unknown = Vec::new();
        for tag in parse_tag_list(value, false)? {
            if tag.name == "dkim" {
                policy = Some(match tag.value.to_ascii_lowercase().as_str() {
                    "unknown" => AdspPolicy::Unknown,
                    "all" => AdspPolicy::All,
                    "discardable" => AdspPolicy::Discardable,
                    _ => {
                        return Err(AdspError::BadValue {
                            value: tag.value.to_string(),
                            at: tag.value_at,
                        });
                    }
                });
            } else {
                unknown.push((tag.name.to_string(), tag.value.to_string()));
            }
        }
        let policy = policy.ok_or(AdspError::MissingDkim)?;
        Ok(Adsp { policy, unknown })
    }

    /// The canonical value, same as `Display`.
    pub fn to_value(&self) -> String {
        self.to_string()
    }

    /// The value as one TXT record.
    pub fn to_txt(&self) -> TxtRecord {
        TxtRecord::from_value(self.to_string())
    }

    /// Always `adsp-historic` (warning); `adsp-discardable` (warning) for `dkim=discardable`.
    pub fn lint(&self) -> Vec<Diagnostic> {
        let mut out = vec![Diagnostic::warning(
            "adsp-historic",
            "ADSP is historic (RFC 5617 moved to Historic in 2013); receivers ignore it",
        )];
        if self.policy == AdspPolicy::Discardable {
            out.push(Diagnostic::warning(
                "adsp-discardable",
                "dkim=discardable asks receivers to drop unsigned mail, including mail broken \
                 by mailing lists; publish a DMARC policy instead",
            ));
        }
        out
    }
}

impl fmt::Display for Adsp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dkim={}", self.policy.as_str())?;
        for (name, value) in &self.unknown {
            write!(f, "; {name}={value}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Adsp {
    type Err = AdspError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Adsp::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Severity;
    use proptest::prelude::*;

    #[test]
    fn parses_every_value() {
        for (v, p) in [
            ("dkim=unknown", AdspPolicy::Unknown),
            ("dkim=all", AdspPolicy::All),
            ("dkim = Discardable ;", AdspPolicy::Discardable),
        ] {
            let a = Adsp::parse(v).unwrap();
            assert_eq!(a.policy, p);
            assert_eq!(a.to_string(), format!("dkim={}", p.as_str()));
            assert!(is_adsp(a.to_txt().value().as_slice()));
        }
        let a = Adsp::parse("dkim=all; x=y").unwrap();
        assert_eq!(a.unknown, vec![("x".to_string(), "y".to_string())]);
        assert_eq!(a.to_string(), "dkim=all; x=y");
    }

    #[test]
    fn lint_always_warns_historic() {
        let l = Adsp::new(AdspPolicy::All).lint();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].code, "adsp-historic");
        assert_eq!(l[0].severity, Severity::Warning);
        assert!(l[0].message.contains("RFC 5617"));
        let codes: Vec<_> = Adsp::new(AdspPolicy::Discardable)
            .lint()
            .iter()
            .map(|d| d.code)
            .collect();
        assert_eq!(codes, vec!["adsp-historic", "adsp-discardable"]);
    }

    #[test]
    fn errors() {
        assert_eq!(Adsp::parse("x=y"), Err(AdspError::MissingDkim));
        assert_eq!(
            Adsp::parse("dkim=sometimes"),
            Err(AdspError::BadValue {
                value: "sometimes".into(),
                at: 5
            })
        );
        assert_eq!(
            Adsp::parse("dkim=all; dkim=all"),
            Err(AdspError::TagList(TagListError::Duplicate {
                name: "dkim".into(),
                at: 10
            }))
        );
        assert!(is_adsp(b"DKIM=all"));
        assert!(!is_adsp(b"v=DKIM1; p="));
        assert_eq!(
            record_name(&Fqdn::parse("example.com").unwrap())
                .unwrap()
                .as_str(),
            "_adsp._domainkey.example.com"
        );
    }

    proptest! {
        #[test]
        fn round_trips(p in prop_oneof![Just(AdspPolicy::Unknown), Just(AdspPolicy::All), Just(AdspPolicy::Discardable)],
                       unknown in proptest::collection::vec(("x[a-z0-9]{0,4}", "[a-z0-9]{0,4}"), 0..2)) {
            let mut a = Adsp::new(p);
            for (n, v) in unknown {
                if !a.unknown.iter().any(|(m, _)| *m == n) {
                    a.unknown.push((n, v));
                }
            }
            prop_assert_eq!(Adsp::parse(&a.to_string()), Ok(a.clone()));
        }

        #[test]
        fn parse_never_panics(s in ".{0,100}") {
            let _ = Adsp::parse(&s);
        }
    }
}

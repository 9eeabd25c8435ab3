//! SPF records (RFC 7208): `v=spf1` followed by mechanisms and modifiers.
//!
//! [`Spf::parse`] keeps every term in order (unknown modifiers included, RFC 7208
//! §6) so a record round-trips; [`Spf::lint`] checks the limits a receiver
//! enforces (§4.6.4: at most 10 DNS-querying terms) and common mistakes;
//! [`lint_name`] checks the one-record-per-name rule (§4.5). Names of mechanisms
//! and modifiers are case-insensitive (§4.6.1) and printed in lowercase.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use maildns_providers::TxtRecord;

use super::Diagnostic;

mod lint;
pub use lint::lint_name;

/// Most DNS-querying terms a receiver evaluates (RFC 7208 §4.6.4).
pub const MAX_LOOKUPS: usize = 10;
/// Value length above which the DNS answer may no longer fit 512 bytes (RFC 7208 §3.4).
pub const ADVISED_MAX_LEN: usize = 450;

/// A mechanism's qualifier (RFC 7208 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `+`: pass (also the meaning of no qualifier).
    Pass,
    /// `-`: fail.
    Fail,
    /// `~`: softfail.
    SoftFail,
    /// `?`: neutral.
    Neutral,
}

impl Qualifier {
    fn from_char(c: u8) -> Option<Self> {
        match c {
            b'+' => Some(Qualifier::Pass),
            b'-' => Some(Qualifier::Fail),
            b'~' => Some(Qualifier::SoftFail),
            b'?' => Some(Qualifier::Neutral),
            _ => None,
        }
    }

    /// The qualifier character.
    pub fn as_char(self) -> char {
        match self {
            Qualifier::Pass => '+',
            Qualifier::Fail => '-',
            Qualifier::SoftFail => '~',
            Qualifier::Neutral => '?',
        }
    }
}

/// The optional `/ip4-cidr` and `//ip6-cidr` lengths of `a` and `mx` (RFC 7208 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DualCidr {
    /// IPv4 prefix length (0..=32).
    pub v4: Option<u8>,
    /// IPv6 prefix length (0..=128).
    pub v6: Option<u8>,
}

/// A mechanism (RFC 7208 §5). Domain-specs are kept as written (they may hold macros).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `all`.
    All,
    /// `include:<domain-spec>`.
    Include(String),
    /// `a[:<domain-spec>][/v4][//v6]`.
    A {
        /// Target; `None` means the current domain.
        domain: Option<String>,
        /// Prefix lengths.
        cidr: DualCidr,
    },
    /// `mx[:<domain-spec>][/v4][//v6]`.
    Mx {
        /// Target; `None` means the current domain.
        domain: Option<String>,
        /// Prefix lengths.
        cidr: DualCidr,
    },
    /// `ptr[:<domain-spec>]` (do not use: RFC 7208 §5.5).
    Ptr(Option<String>),
    /// `ip4:<address>[/len]`.
    Ip4 {
        /// Network address.
        addr: Ipv4Addr,
        /// Prefix length, when written.
        prefix: Option<u8>,
    },
    /// `ip6:<address>[/len]`.
    Ip6 {
        /// Network address.
        addr: Ipv6Addr,
        /// Prefix length, when written.
        prefix: Option<u8>,
    },
    /// `exists:<domain-spec>`.
    Exists(String),
}

/// A mechanism with its qualifier; `None` is an implicit `+` (kept for round-trips).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Directive {
    /// The qualifier as written.
    pub qualifier: Option<Qualifier>,
    /// The mechanism.
    pub mechanism: Mechanism,
}

impl Directive {
    /// A directive with an explicit qualifier.
    pub fn new(qualifier: Qualifier, mechanism: Mechanism) -> Self {
        Directive {
            qualifier: Some(qualifier),
            mechanism,
        }
    }

    /// The effective qualifier (`+` when none is written).
    pub fn effective_qualifier(&self) -> Qualifier {
        self.qualifier.unwrap_or(Qualifier::Pass)
    }
}

/// One term of an SPF record, in record order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    /// A mechanism with its qualifier.
    Directive(Directive),
    /// `redirect=<domain-spec>`.
    Redirect(String),
    /// `exp=<domain-spec>`.
    Exp(String),
    /// Any other modifier (kept; receivers ignore it).
    Unknown {
        /// Modifier name as written.
        name: String,
        /// Its value (a macro-string).
        value: String,
    },
}

/// A parsed SPF record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Spf {
    /// The terms after `v=spf1`, in order.
    pub terms: Vec<Term>,
}

/// Why a value is not a valid SPF record. Positions are byte offsets into the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpfError {
    /// The value does not start with `v=spf1` followed by a space or the end.
    #[error("not an SPF record: it must start with 'v=spf1'")]
    NotSpf,
    /// A byte that has no place in an SPF record (only visible ASCII and spaces).
    #[error("byte 0x{byte:02x} at byte {at} is not allowed in an SPF record")]
    BadCharacter {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// A mechanism name that RFC 7208 does not define.
    #[error("unknown mechanism '{name}' at byte {at}")]
    UnknownMechanism {
        /// The name as written.
        name: String,
        /// Offset of the term.
        at: usize,
    },
    /// A mechanism that needs a domain-spec was given none.
    #[error("'{mechanism}' at byte {at} needs a domain, as in '{mechanism}:example.com'")]
    MissingDomain {
        /// Mechanism name.
        mechanism: &'static str,
        /// Offset of the term.
        at: usize,
    },
    /// Text after a mechanism that takes no argument, or a malformed argument.
    #[error("unexpected '{text}' after '{mechanism}' at byte {at}")]
    UnexpectedArgument {
        /// Mechanism name.
        mechanism: &'static str,
        /// The unexpected text.
        text: String,
        /// Its offset.
        at: usize,
    },
    /// A domain-spec that breaks the macro-string grammar (RFC 7208 §7.1).
    #[error("bad domain-spec '{value}' at byte {at}: {reason}")]
    BadDomainSpec {
        /// The domain-spec.
        value: String,
        /// Its offset.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A domain-spec that does not end in `.` and a valid top label, or in a
    /// macro (RFC 7208 §7.1: `domain-end = ( "." toplabel [ "." ] ) / macro-expand`).
    /// `at` is the offset of the bad ending (the top label when there is one).
    #[error("bad domain-spec '{value}' in term '{term}' at byte {at}: {reason}")]
    BadDomainEnd {
        /// The whole term, e.g. `include:_spf.example.net~all`.
        term: String,
        /// The domain-spec.
        value: String,
        /// Offset of the bad ending.
        at: usize,
        /// What is wrong.
        reason: String,
    },
    /// `ip4:` with something that is not a dotted-quad address.
    #[error("'{value}' at byte {at} is not an IPv4 address")]
    BadIp4 {
        /// The text.
        value: String,
        /// Its offset.
        at: usize,
    },
    /// `ip6:` with something that is not an IPv6 address.
    #[error("'{value}' at byte {at} is not an IPv6 address")]
    BadIp6 {
        /// The text.
        value: String,
        /// Its offset.
        at: usize,
    },
    /// A prefix length that is not a number in range (0..=32 for IPv4, 0..=128 for IPv6).
    #[error("bad prefix length '{value}' at byte {at} (IPv4 0-32, IPv6 0-128, no leading zeros)")]
    BadCidr {
        /// The text.
        value: String,
        /// Its offset.
        at: usize,
    },
    /// A qualifier in front of a modifier, as in `-redirect=...`.
    #[error("a modifier cannot have a qualifier (byte {at})")]
    QualifiedModifier {
        /// Offset of the term.
        at: usize,
    },
    /// `redirect=` or `exp=` twice (RFC 7208 §6).
    #[error("modifier '{name}' appears twice (again at byte {at})")]
    DuplicateModifier {
        /// `redirect` or `exp`.
        name: &'static str,
        /// Offset of the second occurrence.
        at: usize,
    },
}

/// True when `value` is an SPF record by the ownership rule: it starts with `v=spf1`
/// (any case) followed by a space or the end (RFC 7208 §4.5).
pub fn is_spf(value: &[u8]) -> bool {
    value.len() >= 6
        && value[..6].eq_ignore_ascii_case(b"v=spf1")
        && value.get(6).is_none_or(|&b| b == b' ')
}

/// Which kind of term causes a DNS lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// `include:` — evaluate another record.
    Include,
    /// `a` — address lookup.
    A,
    /// `mx` — MX lookup, then addresses.
    Mx,
    /// `ptr` — reverse lookup.
    Ptr,
    /// `exists:` — address lookup.
    Exists,
    /// `redirect=` — evaluate another record instead.
    Redirect,
}

/// A DNS-querying term, for a resolver that walks includes and redirects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lookup {
    /// What kind of term.
    pub kind: LookupKind,
    /// The domain-spec as written (may hold macros); `None` = the current domain.
    pub domain: Option<String>,
}

impl Spf {
    /// A record with these terms.
    pub fn new(terms: Vec<Term>) -> Self {
        Spf { terms }
    }

    /// Parses an SPF value (the joined TXT strings).
    ///
    /// # Errors
    /// [`SpfError`] with the byte offset: a value that does not start with `v=spf1`,
    /// a byte outside the record's grammar, an unknown mechanism, or a bad
    /// domain-spec or argument (RFC 7208 §4.6, §5, §7).
    pub fn parse(value: &str) -> Result<Self, SpfError> {
        if !is_spf(value.as_bytes()) {
            return Err(SpfError::NotSpf);
        }
        if let Some((at, &byte)) = value
            .as_bytes()
            .iter()
            .enumerate()
            .find(|&(_, &b)| !(0x20..=0x7e).contains(&b))
        {
            return Err(SpfError::BadCharacter { byte, at });
        }
        let mut terms = Vec::new();
        let mut at = 6usize;
        for word in value.get(6..).unwrap_or("").split(' ') {
            if !word.is_empty() {
                let term = parse_term(word, at)?;
                check_domain_end(&term, word, at)?;
                let dup = match &term {
                    Term::Redirect(_) => Some("redirect"),
                    Term::Exp(_) => Some("exp"),
                    _ => None,
                };
                if let Some(name) = dup
                    && terms
                        .iter()
                        .any(|t| std::mem::discriminant(t) == std::mem::discriminant(&term))
                {
                    return Err(SpfError::DuplicateModifier { name, at });
                }
                terms.push(term);
            }
            at += word.len() + 1;
        }
        // A configuration holds one per domain: no room to grow kept.
        terms.shrink_to_fit();
        Ok(Spf { terms })
    }

    /// The canonical value, same as `Display`.
    pub fn to_value(&self) -> String {
        self.to_string()
    }

    /// The value as one TXT record, split greedily into 255-byte strings.
    pub fn to_txt(&self) -> TxtRecord {
        TxtRecord::from_value(self.to_string())
    }

    /// Every DNS-querying term in order (include, a, mx, ptr, exists, redirect).
    pub fn lookup_targets(&self) -> Vec<Lookup> {
        self.terms
            .iter()
            .filter_map(|t| {
                let (kind, domain) = match t {
                    Term::Directive(d) => match &d.mechanism {
                        Mechanism::Include(d) => (LookupKind::Include, Some(d.clone())),
                        Mechanism::A { domain, .. } => (LookupKind::A, domain.clone()),
                        Mechanism::Mx { domain, .. } => (LookupKind::Mx, domain.clone()),
                        Mechanism::Ptr(domain) => (LookupKind::Ptr, domain.clone()),
                        Mechanism::Exists(d) => (LookupKind::Exists, Some(d.clone())),
                        _ => return None,
                    },
                    Term::Redirect(d) => (LookupKind::Redirect, Some(d.clone())),
                    _ => return None,
                };
                Some(Lookup { kind, domain })
            })
            .collect()
    }

    /// The `redirect=` target, if any.
    pub fn redirect(&self) -> Option<&str> {
        self.terms.iter().find_map(|t| match t {
            Term::Redirect(d) => Some(d.as_str()),
            _ => None,
        })
    }

    /// The `all` directive, if any.
    pub fn all(&self) -> Option<&Directive> {
        self.terms.iter().find_map(|t| match t {
            Term::Directive(d) if d.mechanism == Mechanism::All => Some(d),
            _ => None,
        })
    }
}

fn is_modifier_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_term(word: &str, at: usize) -> Result<Term, SpfError> {
    // A modifier is `name=value` where name has no qualifier (RFC 7208 §4.6.1).
    let name_end = word
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        .unwrap_or(word.len());
    if word.as_bytes().get(name_end) == Some(&b'=') {
        let name = &word[..name_end];
        let value = &word[name_end + 1..];
        if name.bytes().next().and_then(Qualifier::from_char).is_some()
            && is_modifier_name(&name[1..])
        {
            return Err(SpfError::QualifiedModifier { at });
        }
        if !is_modifier_name(name) {
            return Err(SpfError::UnknownMechanism {
                name: word.to_string(),
                at,
            });
        }
        let vat = at + name_end + 1;
        return Ok(if name.eq_ignore_ascii_case("redirect") {
            Term::Redirect(domain_spec(value, vat)?)
        } else if name.eq_ignore_ascii_case("exp") {
            Term::Exp(domain_spec(value, vat)?)
        } else {
            check_macro_string(value, vat)?;
            Term::Unknown {
                name: name.to_string(),
                value: value.to_string(),
            }
        });
    }
    let (qualifier, body, bat) = match word.bytes().next().and_then(Qualifier::from_char) {
        Some(q) => (Some(q), &word[1..], at + 1),
        None => (None, word, at),
    };
    let name_end = body
        .bytes()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    let name = body[..name_end].to_ascii_lowercase();
    let rest = &body[name_end..];
    let rat = bat + name_end;
    if qualifier.is_some() && rest.starts_with('=') {
        return Err(SpfError::QualifiedModifier { at });
    }
    let mechanism = match name.as_str() {
        "all" => {
            no_argument("all", rest, rat)?;
            Mechanism::All
        }
        "include" => Mechanism::Include(required_domain("include", rest, rat)?),
        "exists" => Mechanism::Exists(required_domain("exists", rest, rat)?),
        "ptr" => Mechanism::Ptr(optional_domain("ptr", rest, rat)?),
        "a" | "mx" => {
            let (spec, cidr) = split_dual_cidr(rest, rat)?;
            let mech: &'static str = if name == "a" { "a" } else { "mx" };
            let domain = optional_domain(mech, spec, rat)?;
            if name == "a" {
                Mechanism::A { domain, cidr }
            } else {
                Mechanism::Mx { domain, cidr }
            }
        }
        "ip4" => {
            let text = argument("ip4", rest, rat)?;
            let (addr, prefix) = split_prefix(text, rat + 1, 32)?;
            let addr = addr.parse().map_err(|_| SpfError::BadIp4 {
                value: addr.to_string(),
                at: rat + 1,
            })?;
            Mechanism::Ip4 { addr, prefix }
        }
        "ip6" => {
            let text = argument("ip6", rest, rat)?;
            let (addr, prefix) = split_prefix(text, rat + 1, 128)?;
            let addr = addr.parse().map_err(|_| SpfError::BadIp6 {
                value: addr.to_string(),
                at: rat + 1,
            })?;
            Mechanism::Ip6 { addr, prefix }
        }
        _ => {
            return Err(SpfError::UnknownMechanism {
                name: body.to_string(),
                at,
            });
        }
    };
    Ok(Term::Directive(Directive {
        qualifier,
        mechanism,
    }))
}

fn no_argument(mechanism: &'static str, rest: &str, at: usize) -> Result<(), SpfError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(SpfError::UnexpectedArgument {
            mechanism,
            text: rest.to_string(),
            at,
        })
    }
}

/// The text after `:`; an error when `rest` does not start with `:`.
fn argument<'a>(mechanism: &'static str, rest: &'a str, at: usize) -> Result<&'a str, SpfError> {
    match rest.strip_prefix(':') {
        Some(arg) if !arg.is_empty() => Ok(arg),
        Some(_) => Err(SpfError::MissingDomain { mechanism, at }),
        None if rest.is_empty() => Err(SpfError::MissingDomain { mechanism, at }),
        None => Err(SpfError::UnexpectedArgument {
            mechanism,
            text: rest.to_string(),
            at,
        }),
    }
}

fn required_domain(mechanism: &'static str, rest: &str, at: usize) -> Result<String, SpfError> {
    domain_spec(argument(mechanism, rest, at)?, at + 1)
}

fn optional_domain(
    mechanism: &'static str,
    rest: &str,
    at: usize,
) -> Result<Option<String>, SpfError> {
    if rest.is_empty() {
        return Ok(None);
    }
    required_domain(mechanism, rest, at).map(Some)
}

/// Splits `text` at its last `/` into (address, prefix length).
fn split_prefix(text: &str, at: usize, max: u8) -> Result<(&str, Option<u8>), SpfError> {
    match text.rsplit_once('/') {
        None => Ok((text, None)),
        Some((addr, len)) => {
            let p = cidr_len(len, at + addr.len() + 1, max)?;
            Ok((addr, Some(p)))
        }
    }
}

fn cidr_len(text: &str, at: usize, max: u8) -> Result<u8, SpfError> {
    let bad = || SpfError::BadCidr {
        value: text.to_string(),
        at,
    };
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(bad());
    }
    match text.parse::<u8>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(bad()),
    }
}

/// Takes `[/v4][//v6]` off the end of an `a`/`mx` argument.
fn split_dual_cidr(rest: &str, at: usize) -> Result<(&str, DualCidr), SpfError> {
    let mut cidr = DualCidr::default();
    let mut spec = rest;
    let digits = |s: &str| s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let n = digits(spec);
    if n > 0 && spec[..spec.len() - n].ends_with("//") {
        let len = &spec[spec.len() - n..];
        cidr.v6 = Some(cidr_len(len, at + spec.len() - n, 128)?);
        spec = &spec[..spec.len() - n - 2];
    }
    let n = digits(spec);
    if n > 0 && spec[..spec.len() - n].ends_with('/') {
        let len = &spec[spec.len() - n..];
        cidr.v4 = Some(cidr_len(len, at + spec.len() - n, 32)?);
        spec = &spec[..spec.len() - n - 1];
    }
    Ok((spec, cidr))
}

/// Checks a macro-string (RFC 7208 §7.1): `%{letter[digits][r][delims]}`, `%%`, `%_`,
/// `%-`, and literals %x21-24 / %x26-7E.
fn check_macro_string(value: &str, at: usize) -> Result<(), SpfError> {
    let b = value.as_bytes();
    let bad = |reason| SpfError::BadDomainSpec {
        value: value.to_string(),
        at,
        reason,
    };
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'%' {
            if !(0x21..=0x7e).contains(&c) {
                return Err(bad("only visible ASCII is allowed"));
            }
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'%' | b'_' | b'-') => i += 2,
            Some(b'{') => {
                let Some(close) = b[i..].iter().position(|&c| c == b'}') else {
                    return Err(bad("'%{' without '}'"));
                };
                let inner = &b[i + 2..i + close];
                let Some((&letter, mut tail)) = inner.split_first() else {
                    return Err(bad("empty macro '%{}'"));
                };
                if !b"slodiphcrtvSLODIPHCRTV".contains(&letter) {
                    return Err(bad("unknown macro letter (use s l o d i p h c r t v)"));
                }
                while tail.first().is_some_and(u8::is_ascii_digit) {
                    tail = &tail[1..];
                }
                if matches!(tail.first(), Some(b'r' | b'R')) {
                    tail = &tail[1..];
                }
                if !tail.iter().all(|c| b".-+,/_=".contains(c)) {
                    return Err(bad("bad macro transformer or delimiter"));
                }
                i += close + 1;
            }
            _ => return Err(bad("'%' must be followed by '{', '%', '_' or '-'")),
        }
    }
    Ok(())
}

/// The domain-spec of a term, if it has one.
fn term_domain_spec(term: &Term) -> Option<&str> {
    match term {
        Term::Directive(d) => match &d.mechanism {
            Mechanism::Include(s) | Mechanism::Exists(s) => Some(s),
            Mechanism::A { domain, .. } | Mechanism::Mx { domain, .. } | Mechanism::Ptr(domain) => {
                domain.as_deref()
            }
            _ => None,
        },
        Term::Redirect(s) | Term::Exp(s) => Some(s),
        Term::Unknown { .. } => None,
    }
}

/// Checks the `domain-end` of a parsed term's domain-spec (RFC 7208 §7.1);
/// `word` is the term as written, starting at byte `at` of the record.
fn check_domain_end(term: &Term, word: &str, at: usize) -> Result<(), SpfError> {
    let Some(spec) = term_domain_spec(term) else {
        return Ok(());
    };
    // The domain-spec follows the first ':' (mechanisms) or '=' (modifiers).
    let start = word.find([':', '=']).map_or(0, |i| i + 1);
    domain_end(spec).map_err(|(off, reason)| SpfError::BadDomainEnd {
        term: word.to_string(),
        value: spec.to_string(),
        at: at + start + off,
        reason,
    })
}

/// Checks that a macro-string (already checked by [`check_macro_string`]) ends
/// in `"." toplabel [ "." ]` or a macro-expand. On error: the offset within
/// `spec` of the bad ending, and why.
///
/// `toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )`:
/// letters, digits and inner hyphens, not all digits.
pub(crate) fn domain_end(spec: &str) -> Result<(), (usize, String)> {
    let b = spec.as_bytes();
    // End of the last macro-expand (`%{...}`, `%%`, `%_`, `%-`).
    let mut last_macro_end = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if b.get(i + 1) == Some(&b'{') {
                let close = b[i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .map_or(b.len(), |c| i + c + 1);
                i = close;
            } else {
                i = (i + 2).min(b.len());
            }
            last_macro_end = i;
        } else {
            i += 1;
        }
    }
    if last_macro_end == b.len() && !b.is_empty() {
        return Ok(());
    }
    if spec.parse::<std::net::IpAddr>().is_ok() {
        return Err((
            0,
            format!(
                "'{spec}' is an IP address, not a domain: write it as ip4:{spec} or ip6:{spec}"
            ),
        ));
    }
    let literal = &spec[last_macro_end..];
    let trimmed = literal.strip_suffix('.').unwrap_or(literal);
    let Some(dot) = trimmed.rfind('.') else {
        return Err((
            last_macro_end,
            format!(
                "'{literal}' does not end in '.' and a top label (as in 'example.com') or in a macro"
            ),
        ));
    };
    let label = &trimmed[dot + 1..];
    let lb = label.as_bytes();
    let ok = !lb.is_empty()
        && lb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && lb.first().is_some_and(u8::is_ascii_alphanumeric)
        && lb.last().is_some_and(u8::is_ascii_alphanumeric)
        && !lb.iter().all(u8::is_ascii_digit);
    if ok {
        Ok(())
    } else {
        Err((
            last_macro_end + dot + 1,
            format!(
                "top label '{label}' must be letters, digits and inner hyphens, and not all digits (RFC 7208 §7.1)"
            ),
        ))
    }
}

/// A domain-spec: a non-empty macro-string.
fn domain_spec(value: &str, at: usize) -> Result<String, SpfError> {
    if value.is_empty() {
        return Err(SpfError::BadDomainSpec {
            value: String::new(),
            at,
            reason: "empty domain",
        });
    }
    check_macro_string(value, at)?;
    if value.starts_with('.') || value.contains("..") {
        return Err(SpfError::BadDomainSpec {
            value: value.to_string(),
            at,
            reason: "empty label",
        });
    }
    Ok(value.to_string())
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn cidr(f: &mut fmt::Formatter<'_>, c: &DualCidr) -> fmt::Result {
            if let Some(v4) = c.v4 {
                write!(f, "/{v4}")?;
            }
            if let Some(v6) = c.v6 {
                write!(f, "//{v6}")?;
            }
            Ok(())
        }
        fn dom(f: &mut fmt::Formatter<'_>, d: &Option<String>) -> fmt::Result {
            match d {
                Some(d) => write!(f, ":{d}"),
                None => Ok(()),
            }
        }
        match self {
            Mechanism::All => f.write_str("all"),
            Mechanism::Include(d) => write!(f, "include:{d}"),
            Mechanism::Exists(d) => write!(f, "exists:{d}"),
            Mechanism::Ptr(d) => {
                f.write_str("ptr")?;
                dom(f, d)
            }
            Mechanism::A { domain, cidr: c } => {
                f.write_str("a")?;
                dom(f, domain)?;
                cidr(f, c)
            }
            Mechanism::Mx { domain, cidr: c } => {
                f.write_str("mx")?;
                dom(f, domain)?;
                cidr(f, c)
            }
            Mechanism::Ip4 { addr, prefix } => {
                write!(f, "ip4:{addr}")?;
                prefix.map_or(Ok(()), |p| write!(f, "/{p}"))
            }
            Mechanism::Ip6 { addr, prefix } => {
                write!(f, "ip6:{addr}")?;
                prefix.map_or(Ok(()), |p| write!(f, "/{p}"))
            }
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Directive(d) => {
                if let Some(q) = d.qualifier {
                    write!(f, "{}", q.as_char())?;
                }
                write!(f, "{}", d.mechanism)
            }
            Term::Redirect(d) => write!(f, "redirect={d}"),
            Term::Exp(d) => write!(f, "exp={d}"),
            Term::Unknown { name, value } => write!(f, "{name}={value}"),
        }
    }
}

impl fmt::Display for Spf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=spf1")?;
        for t in &self.terms {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Spf {
    type Err = SpfError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Spf::parse(s)
    }
}

#[cfg(test)]
mod tests;

//! DMARC policy records (RFC 7489; DMARCbis, RFCs 9989-9991) at `_dmarc.<domain>`.
//!
//! Parsing is tolerant the way receivers are: white space around `;` and `=`, a
//! trailing `;`, tag names and keywords in any case. Only a record that does not
//! start with `v=DMARC1` or whose tag list is malformed is refused; a tag with a bad
//! value is kept in [`Dmarc::invalid`] and reported by [`Dmarc::lint`], because
//! receivers ignore such a tag rather than the record (RFC 7489 §6.6.3).
//! [`Dmarc::external_destinations`] names the authorisation records that report
//! destinations in other domains must publish (RFC 7489 §7.1).

use std::fmt;

use maildns_providers::{Fqdn, NameError, TxtRecord};

use super::Diagnostic;
use super::tags::{TagListError, parse_tag_list};

/// The value an external report destination publishes to accept reports (RFC 7489 §7.1).
pub const AUTHORIZATION_VALUE: &str = "v=DMARC1";

/// Requested handling of failing mail (`p=`, `sp=`, `np=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `none`: monitor only.
    None,
    /// `quarantine`: treat as suspicious.
    Quarantine,
    /// `reject`: refuse.
    Reject,
}

/// Identifier alignment mode (`adkim=`, `aspf=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alignment {
    /// `r`: organisational domains match (the default).
    Relaxed,
    /// `s`: exact match.
    Strict,
}

/// Failure reporting option in `fo=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureOption {
    /// `0`: report when all mechanisms fail.
    All,
    /// `1`: report when any mechanism fails.
    Any,
    /// `d`: report DKIM failures.
    Dkim,
    /// `s`: report SPF failures.
    Spf,
}

/// Failure report format in `rf=` (RFC 7489; dropped by DMARCbis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    /// `afrf` (RFC 6591), the only one defined.
    Afrf,
}

/// `psd=` (DMARCbis): whether the domain is a public suffix domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Psd {
    /// `y`.
    Yes,
    /// `n`.
    No,
    /// `u` (the default).
    Unknown,
}

/// A report destination in `rua=` / `ruf=`: a URI and an optional `!size` limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportUri {
    /// The URI, e.g. `mailto:dmarc@example.com`.
    pub uri: String,
    /// The size limit after `!`, as written (e.g. `10m`).
    pub size_limit: Option<String>,
}

impl ReportUri {
    /// A `mailto:` destination.
    pub fn mailto(address: &str) -> Self {
        ReportUri {
            uri: format!("mailto:{address}"),
            size_limit: None,
        }
    }

    /// True for a `mailto:` URI (the only scheme receivers use).
    pub fn is_mailto(&self) -> bool {
        self.uri
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
    }

    /// The domain of a `mailto:` address; `None` for other schemes or a bad address.
    pub fn mailto_domain(&self) -> Option<Fqdn> {
        if !self.is_mailto() {
            return None;
        }
        let addr = self.uri.get(7..)?;
        let addr = addr.split('?').next()?;
        let (local, domain) = addr.rsplit_once('@')?;
        if local.is_empty() {
            return None;
        }
        Fqdn::parse(domain).ok()
    }
}

/// A tag whose value receivers cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvalidTag {
    /// Tag name as written.
    pub name: String,
    /// Value as written.
    pub value: String,
    /// What a valid value looks like.
    pub expected: &'static str,
}

/// A DMARC record. `None` / empty fields are absent tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Dmarc {
    /// `p=`.
    pub policy: Option<Policy>,
    /// `sp=`: policy for subdomains.
    pub subdomain_policy: Option<Policy>,
    /// `np=` (DMARCbis): policy for non-existent subdomains.
    pub nonexistent_policy: Option<Policy>,
    /// `adkim=`.
    pub adkim: Option<Alignment>,
    /// `aspf=`.
    pub aspf: Option<Alignment>,
    /// `pct=` (0-100; dropped by DMARCbis).
    pub pct: Option<u8>,
    /// `fo=`.
    pub fo: Vec<FailureOption>,
    /// `rf=` (dropped by DMARCbis).
    pub rf: Vec<ReportFormat>,
    /// `ri=` seconds (dropped by DMARCbis).
    pub ri: Option<u32>,
    /// `rua=`: aggregate report destinations.
    pub rua: Vec<ReportUri>,
    /// `ruf=`: failure report destinations.
    pub ruf: Vec<ReportUri>,
    /// `psd=` (DMARCbis).
    pub psd: Option<Psd>,
    /// `t=` (DMARCbis): `Some(true)` for `t=y` (testing).
    pub testing: Option<bool>,
    /// Tags neither RFC defines, in order (name as written, value).
    pub unknown: Vec<(String, String)>,
    /// Known tags with unusable values, in order.
    pub invalid: Vec<InvalidTag>,
}

/// Why a value is not a DMARC record. Positions are byte offsets into the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DmarcError {
    /// The `tag=value` list is malformed.
    #[error("{0}")]
    TagList(#[from] TagListError),
    /// The first tag is not `v` (RFC 7489 §6.4: `v=DMARC1` comes first).
    #[error("a DMARC record starts with v=DMARC1 (byte {at})")]
    MissingVersion {
        /// Offset of the first tag.
        at: usize,
    },
    /// `v=` with a value other than `DMARC1`.
    #[error("v={value} at byte {at}: the version must be DMARC1")]
    BadVersion {
        /// The value.
        value: String,
        /// Its offset.
        at: usize,
    },
}

/// True when `value` is a DMARC record by the ownership rule: it starts with
/// `v=DMARC1` (any case) followed by `;`, white space or the end.
pub fn is_dmarc(value: &[u8]) -> bool {
    value.len() >= 8
        && value[..8].eq_ignore_ascii_case(b"v=DMARC1")
        && value
            .get(8)
            .is_none_or(|&b| b == b';' || b.is_ascii_whitespace())
}

/// The owner name of a domain's policy: `_dmarc.<domain>`.
///
/// # Errors
/// [`NameError`] when `_dmarc.<domain>` is over 255 bytes in wire form.
pub fn record_name(domain: &Fqdn) -> Result<Fqdn, NameError> {
    domain.child("_dmarc")
}

/// A report destination outside the policy domain, and the record it must publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalDestination {
    /// The domain of the mailto addresses.
    pub report_domain: Fqdn,
    /// The `rua=`/`ruf=` URIs that point there, in record order.
    pub uris: Vec<String>,
    /// `<policy-domain>._report._dmarc.<report-domain>`, which must hold `v=DMARC1`;
    /// an error when that name would be over 255 bytes.
    pub authorization_name: Result<Fqdn, NameError>,
}

impl ExternalDestination {
    /// The TXT record to publish at [`ExternalDestination::authorization_name`].
    pub fn authorization_record(&self) -> TxtRecord {
        TxtRecord::from_value(AUTHORIZATION_VALUE)
    }
}

fn policy(v: &str) -> Option<Policy> {
    match v.to_ascii_lowercase().as_str() {
        "none" => Some(Policy::None),
        "quarantine" => Some(Policy::Quarantine),
        "reject" => Some(Policy::Reject),
        _ => None,
    }
}

fn alignment(v: &str) -> Option<Alignment> {
    match v.to_ascii_lowercase().as_str() {
        "r" => Some(Alignment::Relaxed),
        "s" => Some(Alignment::Strict),
        _ => None,
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Option<T> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn colon_list<T>(v: &str, item: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    v.split(':').map(|i| item(i.trim())).collect()
}

/// `v` without its spare capacity.
fn shrunk<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

fn uri_list(v: &str) -> Option<Vec<ReportUri>> {
    v.split(',')
        .map(|item| {
            let item = item.trim();
            let (uri, size_limit) = match item.rsplit_once('!') {
                Some((u, s))
                    if s.trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T'])
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        && s.bytes().next().is_some_and(|b| b.is_ascii_digit()) =>
                {
                    (u, Some(s.to_string()))
                }
                _ => (item, None),
            };
            let (scheme, rest) = uri.split_once(':')?;
            let scheme_ok = scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            let rest_ok = !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b',' && b != b'!');
            (scheme_ok && rest_ok).then(|| ReportUri {
                uri: uri.to_string(),
                size_limit,
            })
        })
        .collect()
}

impl Dmarc {
    /// A record `v=DMARC1; p=<policy>`.
    pub fn new(policy: Policy) -> Self {
        Dmarc {
            policy: Some(policy),
            ..Dmarc::default()
        }
    }

    /// Parses a DMARC value.
    ///
    /// # Errors
    /// [`DmarcError`] with the byte offset: a value that is not a tag-list (RFC 7489
    /// §6.4) or does not start with `v=DMARC1`. Tag values are not refused here:
    /// [`Dmarc::lint`] reports them.
    pub fn parse(value: &str) -> Result<Self, DmarcError> {
        let tags = parse_tag_list(value, true)?;
        let Some((first, rest)) = tags.split_first() else {
            return Err(DmarcError::MissingVersion { at: 0 });
        };
        if !first.name.eq_ignore_ascii_case("v") {
            return Err(DmarcError::MissingVersion { at: first.name_at });
        }
        if first.value != "DMARC1" {
            return Err(DmarcError::BadVersion {
                value: first.value.to_string(),
                at: first.value_at,
            });
        }
        let mut d = Dmarc::default();
        for tag in rest {
            let v = tag.value;
            let lname = tag.name.to_ascii_lowercase();
            let ok = match lname.as_str() {
                "p" => policy(v).map(|p| d.policy = Some(p)),
                "sp" => policy(v).map(|p| d.subdomain_policy = Some(p)),
                "np" => policy(v).map(|p| d.nonexistent_policy = Some(p)),
                "adkim" => alignment(v).map(|a| d.adkim = Some(a)),
                "aspf" => alignment(v).map(|a| d.aspf = Some(a)),
                "pct" => number::<u8>(v)
                    .filter(|&n| n <= 100)
                    .map(|n| d.pct = Some(n)),
                "ri" => number::<u32>(v).map(|n| d.ri = Some(n)),
                "fo" => colon_list(v, |i| match i.to_ascii_lowercase().as_str() {
                    "0" => Some(FailureOption::All),
                    "1" => Some(FailureOption::Any),
                    "d" => Some(FailureOption::Dkim),
                    "s" => Some(FailureOption::Spf),
                    _ => None,
                })
                .map(|l| d.fo = l),
                "rf" => colon_list(v, |i| {
                    i.eq_ignore_ascii_case("afrf").then_some(ReportFormat::Afrf)
                })
                .map(|l| d.rf = l),
                // A configuration holds one per domain: no room to grow kept.
                "rua" => uri_list(v).map(|l| d.rua = shrunk(l)),
                "ruf" => uri_list(v).map(|l| d.ruf = shrunk(l)),
                "psd" => match v.to_ascii_lowercase().as_str() {
                    "y" => Some(Psd::Yes),
                    "n" => Some(Psd::No),
                    "u" => Some(Psd::Unknown),
                    _ => None,
                }
                .map(|p| d.psd = Some(p)),
                "t" => match v.to_ascii_lowercase().as_str() {
                    "y" => Some(true),
                    "n" => Some(false),
                    _ => None,
                }
                .map(|t| d.testing = Some(t)),
                _ => {
                    d.unknown.push((tag.name.to_string(), v.to_string()));
                    Some(())
                }
            };
            if ok.is_none() {
                d.invalid.push(InvalidTag {
                    name: tag.name.to_string(),
                    value: v.to_string(),
                    expected: expected(&lname),
                });
            }
        }
        Ok(d)
    }

    /// The canonical value, same as `Display`.
    pub fn to_value(&self) -> String {
        self.to_string()
    }

    /// The value as one TXT record.
    pub fn to_txt(&self) -> TxtRecord {
        TxtRecord::from_value(self.to_string())
    }

    /// The policy receivers apply: `p=`, or `none` when `p=` is missing or invalid
    /// but `rua=` is present (RFC 7489 §6.6.3); `None` when the record is unusable.
    pub fn effective_policy(&self) -> Option<Policy> {
        self.policy
            .or_else(|| (!self.rua.is_empty()).then_some(Policy::None))
    }

    /// Report destinations (rua and ruf, mailto only) whose domain is neither the
    /// policy domain nor below it, grouped by domain in first-seen order. Without a
    /// public suffix list this is stricter than RFC 7489 §7.1's "different
    /// organizational domain": a parent domain counts as external (an extra
    /// authorisation record is harmless).
    pub fn external_destinations(&self, policy_domain: &Fqdn) -> Vec<ExternalDestination> {
        let mut out: Vec<ExternalDestination> = Vec::new();
        for uri in self.rua.iter().chain(&self.ruf) {
            let Some(domain) = uri.mailto_domain() else {
                continue;
            };
            if domain.is_within(policy_domain) {
                continue;
            }
            if let Some(e) = out.iter_mut().find(|e| e.report_domain == domain) {
                if !e.uris.contains(&uri.uri) {
                    e.uris.push(uri.uri.clone());
                }
                continue;
            }
            let authorization_name =
                domain.child(&format!("{}._report._dmarc", policy_domain.as_str()));
            out.push(ExternalDestination {
                report_domain: domain,
                uris: vec![uri.uri.clone()],
                authorization_name,
            });
        }
        out
    }

    /// Checks the record. Codes: `dmarc-missing-p`, `dmarc-invalid-p`, `dmarc-bad-value`,
    /// `dmarc-non-mailto-uri`, `dmarc-bad-mailto` (errors); `dmarc-unknown-tag`,
    /// `dmarc-dropped-tag`, `dmarc-size-limit` (warnings); `dmarc-p-none`, `dmarc-testing` (info).
    pub fn lint(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let p_invalid = self
            .invalid
            .iter()
            .any(|t| t.name.eq_ignore_ascii_case("p"));
        if self.policy.is_none() {
            let then = if self.rua.is_empty() {
                "RFC 7489 receivers ignore the whole record (RFC 9989 ones read it as p=none)"
            } else {
                "receivers treat it as p=none because rua= is present (RFC 7489 §6.6.3)"
            };
            let (code, what) = if p_invalid {
                ("dmarc-invalid-p", "p= is not none, quarantine or reject")
            } else {
                ("dmarc-missing-p", "the record has no p= tag")
            };
            out.push(Diagnostic::error(
                code,
                format!("{what}; {then}: write p=none, p=quarantine or p=reject"),
            ));
        }
        for t in &self.invalid {
            if !t.name.eq_ignore_ascii_case("p") {
                out.push(Diagnostic::error(
                    "dmarc-bad-value",
                    format!(
                        "{}={} is not valid ({}); receivers ignore the tag",
                        t.name, t.value, t.expected
                    ),
                ));
            }
        }
        for (name, _) in &self.unknown {
            out.push(Diagnostic::warning(
                "dmarc-unknown-tag",
                format!(
                    "tag '{name}=' is not defined by RFC 7489 or DMARCbis; receivers ignore it"
                ),
            ));
        }
        for (tag, uri) in self
            .rua
            .iter()
            .map(|u| ("rua", u))
            .chain(self.ruf.iter().map(|u| ("ruf", u)))
        {
            if !uri.is_mailto() {
                out.push(Diagnostic::error(
                    "dmarc-non-mailto-uri",
                    format!(
                        "{tag}={} is not a mailto: URI; receivers only send reports by mail",
                        uri.uri
                    ),
                ));
            } else if uri.mailto_domain().is_none() {
                out.push(Diagnostic::error(
                    "dmarc-bad-mailto",
                    format!("{tag}={} is not a valid mail address", uri.uri),
                ));
            }
        }
        if self
            .rua
            .iter()
            .chain(&self.ruf)
            .any(|u| u.size_limit.is_some())
        {
            out.push(Diagnostic::warning(
                "dmarc-size-limit",
                "the '!size' suffix on report URIs is dropped by DMARCbis (RFC 9989); \
                 receivers following it ignore the limit",
            ));
        }
        for (present, tag) in [
            (self.pct.is_some(), "pct"),
            (!self.rf.is_empty(), "rf"),
            (self.ri.is_some(), "ri"),
        ] {
            if present {
                out.push(Diagnostic::warning(
                    "dmarc-dropped-tag",
                    format!(
                        "{tag}= is dropped by DMARCbis (RFC 9989); receivers following it \
                         ignore the tag: remove it"
                    ),
                ));
            }
        }
        if self.policy == Some(Policy::None) {
            out.push(Diagnostic::info(
                "dmarc-p-none",
                "p=none only monitors: failing mail is delivered as usual; move to quarantine \
                 or reject once reports look clean",
            ));
        }
        if self.testing == Some(true) {
            out.push(Diagnostic::info(
                "dmarc-testing",
                "t=y: the policy is in testing mode and receivers apply the next milder one",
            ));
        }
        out
    }
}

fn expected(tag: &str) -> &'static str {
    match tag {
        "p" | "sp" | "np" => "none, quarantine or reject",
        "adkim" | "aspf" => "r or s",
        "pct" => "a number 0-100",
        "ri" => "a number of seconds",
        "fo" => "0, 1, d or s, separated by ':'",
        "rf" => "afrf",
        "rua" | "ruf" => "comma-separated URIs such as mailto:dmarc@example.com",
        "psd" => "y, n or u",
        "t" => "y or n",
        _ => "",
    }
}

impl Policy {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }
}

impl Alignment {
    /// `r` or `s`.
    pub fn as_str(self) -> &'static str {
        match self {
            Alignment::Relaxed => "r",
            Alignment::Strict => "s",
        }
    }
}

impl FailureOption {
    /// `0`, `1`, `d` or `s`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureOption::All => "0",
            FailureOption::Any => "1",
            FailureOption::Dkim => "d",
            FailureOption::Spf => "s",
        }
    }
}

impl fmt::Display for ReportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)?;
        if let Some(s) = &self.size_limit {
            write!(f, "!{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Dmarc {
    /// `v=DMARC1; p=...; sp; np; adkim; aspf; pct; fo; rf; ri; rua; ruf; psd; t`,
    /// then unknown and invalid tags as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = vec!["v=DMARC1".into()];
        let list = |v: &[ReportUri]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(p) = self.policy {
            parts.push(format!("p={}", p.as_str()));
        }
        if let Some(p) = self.subdomain_policy {
            parts.push(format!("sp={}", p.as_str()));
        }
        if let Some(p) = self.nonexistent_policy {
            parts.push(format!("np={}", p.as_str()));
        }
        if let Some(a) = self.adkim {
            parts.push(format!("adkim={}", a.as_str()));
        }
        if let Some(a) = self.aspf {
            parts.push(format!("aspf={}", a.as_str()));
        }
        if let Some(n) = self.pct {
            parts.push(format!("pct={n}"));
        }
        if !self.fo.is_empty() {
            let fo: Vec<_> = self.fo.iter().map(|o| o.as_str()).collect();
            parts.push(format!("fo={}", fo.join(":")));
        }
        if !self.rf.is_empty() {
            let rf: Vec<_> = self.rf.iter().map(|_| "afrf").collect();
            parts.push(format!("rf={}", rf.join(":")));
        }
        if let Some(n) = self.ri {
            parts.push(format!("ri={n}"));
        }
        if !self.rua.is_empty() {
            parts.push(format!("rua={}", list(&self.rua)));
        }
        if !self.ruf.is_empty() {
            parts.push(format!("ruf={}", list(&self.ruf)));
        }
        if let Some(p) = self.psd {
            let v = match p {
                Psd::Yes => "y",
                Psd::No => "n",
                Psd::Unknown => "u",
            };
            parts.push(format!("psd={v}"));
        }
        if let Some(t) = self.testing {
            parts.push(format!("t={}", if t { "y" } else { "n" }));
        }
        for (name, value) in &self.unknown {
            parts.push(format!("{name}={value}"));
        }
        for t in &self.invalid {
            parts.push(format!("{}={}", t.name, t.value));
        }
        f.write_str(&parts.join("; "))
    }
}

impl std::str::FromStr for Dmarc {
    type Err = DmarcError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dmarc::parse(s)
    }
}

#[cfg(test)]
mod tests;

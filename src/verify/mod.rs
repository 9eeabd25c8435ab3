//! `maildns verify`: what DNS actually serves, checked against the local keys —
//! `opendkim-testkey` and more, with no provider credential.
//!
//! For each domain: its DKIM selectors (from the state store, else the key
//! directory) are asked of every authoritative server, must parse and carry the
//! public half of the private key on disk, at a sound size; SPF and DMARC as
//! served are parsed and linted; the SPF lookup count is computed by really
//! walking includes and redirects ([`spf_tree`]); every external DMARC report
//! destination must publish its authorisation record. Names outside the domain
//! go through the configured resolvers. With a `[signer]`, the selectors the
//! signer uses (per its tables, and per a probe signature through its milter
//! socket) must be served, unrevoked, by every authoritative server
//! ([`check_signer`]).
//!
//! One file per record kind, as in `records/`: [`dkim`] (the selectors' keys
//! and the signer's selectors), [`spf`] (the record and its lookup tree),
//! [`dmarc`] (the record and its report destinations); this file holds the
//! findings, the resolver and what the three share.

mod dkim;
mod dmarc;
mod spf;
pub mod spf_tree;

use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::op::DnsResponse;
use hickory_proto::rr::RecordType;
use maildns_providers::{Fqdn, TxtRecord};
use serde::Serialize;

use crate::config::{Config, Domain};
use crate::propagation::{
    Nameserver, Querier, QueryError, Rcode, ServerError, authoritative_servers, usable,
};
use crate::publish::plan::shorten;
use crate::records::{Diagnostic, Severity};
use crate::rotation::{KeyStatus, Selector, Store, StoreError};

pub use dkim::check_signer;
pub use spf_tree::{SpfLookups, count_lookups};

/// Why `maildns verify` could not list a domain's selectors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The state store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth fixing.
    Warning,
    /// Receivers will fail or ignore it.
    Error,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked, e.g. `DKIM 202611 key`.
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// One line saying why.
    pub reason: String,
    /// Lines that back the reason in full (e.g. every SPF lookup, grouped by
    /// the record it sits in); the table wraps them, `--json` keeps them whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Finding {
    fn new(check: impl Into<String>, status: Status, reason: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status,
            reason: reason.into(),
            details: Vec::new(),
        }
    }
}

/// Everything found for one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainReport {
    /// The domain.
    pub domain: Fqdn,
    /// The authoritative servers asked.
    pub servers: Vec<Nameserver>,
    /// The checks, in order.
    pub findings: Vec<Finding>,
    /// Why the domain could not be verified at all (no servers found, state unreadable).
    pub failure: Option<String>,
    /// The SPF record's lookups, walked through its includes (when it was served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spf_lookups: Option<SpfLookups>,
}

impl DomainReport {
    /// The worst status among the findings.
    pub fn worst(&self) -> Status {
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}

/// Why a [`Resolver`] got no usable answer (the last resolver's reason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// There is no resolver to ask.
    #[error("no resolver to ask {qtype}? {name}")]
    NoResolver {
        /// The name asked about.
        name: Fqdn,
        /// The record type asked for.
        qtype: RecordType,
    },
    /// The resolver answered with an rcode other than NOERROR or NXDOMAIN.
    #[error("{server} answered {rcode} for {qtype}? {name}")]
    Rcode {
        /// The resolver.
        server: SocketAddr,
        /// Its answer's rcode.
        rcode: Rcode,
        /// The record type asked for.
        qtype: RecordType,
        /// The name asked about.
        name: Fqdn,
    },
    /// The query itself failed (time-out, network, malformed answer).
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Asks recursive resolvers (recursion desired), first usable answer wins.
#[derive(Debug, Clone)]
pub struct Resolver {
    querier: Querier,
    servers: Vec<SocketAddr>,
}

impl Resolver {
    /// Queries through `servers`.
    pub fn new(querier: Querier, servers: Vec<SocketAddr>) -> Resolver {
        Resolver { querier, servers }
    }

    async fn ask(&self, name: &Fqdn, qtype: RecordType) -> Result<DnsResponse, ResolveError> {
        let mut last = ResolveError::NoResolver {
            name: name.clone(),
            qtype,
        };
        for &server in &self.servers {
            match self.querier.query(server, name, qtype, true).await {
                Ok((r, _)) => {
                    let rcode = Rcode::from(r.metadata.response_code);
                    if matches!(rcode, Rcode::NoError | Rcode::NxDomain) {
                        return Ok(r);
                    }
                    last = ResolveError::Rcode {
                        server,
                        rcode,
                        qtype,
                        name: name.clone(),
                    };
                }
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    /// The TXT records at `name`; `None` for NXDOMAIN.
    ///
    /// # Errors
    /// [`ResolveError`] when no resolver gives a usable answer.
    pub async fn txt(&self, name: &Fqdn) -> Result<Option<Vec<TxtRecord>>, ResolveError> {
        let r = self.ask(name, RecordType::TXT).await?;
        let answer = crate::propagation::query::txt_answer(&r, false);
        Ok(match answer.rcode {
            Rcode::NxDomain => None,
            _ => Some(answer.records),
        })
    }

    /// How many records of `qtype` (A, AAAA or MX) `name` has (0 for NXDOMAIN).
    ///
    /// # Errors
    /// [`ResolveError`] when no resolver gives a usable answer.
    pub async fn count(&self, name: &Fqdn, qtype: RecordType) -> Result<usize, ResolveError> {
        let r = self.ask(name, qtype).await?;
        Ok(spf_tree::count_in(&r.answers, qtype))
    }
}

/// A selector to check and its private key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectorKey {
    /// The selector.
    pub selector: Selector,
    /// The private key file.
    pub key_path: PathBuf,
    /// When this machine has no such file: where the key was found instead
    /// (the engine's shared store of a database-backed signer) and its public
    /// key (DER), filled by [`shared_keys`].
    #[serde(skip)]
    pub stored: Option<(String, Vec<u8>)>,
}

/// Fills [`SelectorKey::stored`] for each selector whose key file is not on
/// this machine, from the shared store of a database-backed signer
/// (`opendkim-sql`, `rspamd`), where every replica puts its new keys. Does
/// nothing for file-based OpenDKIM or without a signer; a store that cannot
/// be read leaves the selectors as they are (the key check then reports the
/// missing file).
pub async fn shared_keys(config: &Config, domain: &Domain, selectors: &mut [SelectorKey]) {
    let Some(cfg) = &config.signer else {
        return;
    };
    let Ok(signer) = crate::rotation::runner::signer_from_config(cfg, &config.path) else {
        return;
    };
    if !signer.shares_keys() {
        return;
    }
    // Collected first: a `Filter` closure held across the `.await` makes the
    // future not `Send` for every lifetime (rustc #102211).
    let missing: Vec<_> = selectors
        .iter_mut()
        .filter(|s| !s.key_path.exists())
        .collect();
    for sel in missing {
        match signer.stored_key(domain.name.as_str(), &sel.selector).await {
            Ok(Some(key)) => {
                if let Ok(der) = key.public_key_der() {
                    sel.stored = Some((signer.store_name(), der));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(domain = %domain.name, "reading the key of {} from the signer's store: {e}", sel.selector)
            }
        }
    }
}

/// The selectors whose records should be served now: from the state store (keys
/// published and not withdrawn) when it knows the domain, else every
/// `<selector>.private` in the domain's key directory (a file whose stem is
/// not a valid selector names no key maildns made, and is passed over).
///
/// # Errors
///
/// [`VerifyError::Store`] when the state store cannot be read.
pub fn selectors(
    config: &Config,
    domain: &Domain,
    store: Option<&dyn Store>,
) -> Result<Vec<SelectorKey>, VerifyError> {
    if let Some(st) = store {
        let state = st.load(&domain.name)?;
        if !state.keys.is_empty() {
            return Ok(state
                .keys
                .iter()
                .filter(|k| {
                    matches!(
                        k.status,
                        KeyStatus::Published
                            | KeyStatus::Propagated
                            | KeyStatus::Switched
                            | KeyStatus::SwitchFailed
                            | KeyStatus::Active
                            | KeyStatus::Retiring
                    )
                })
                .map(|k| SelectorKey {
                    stored: None,
                    selector: k.selector.clone(),
                    key_path: k.key_path.as_ref().map_or_else(
                        || {
                            crate::rotation::keyring::key_path(
                                config,
                                &domain.name,
                                k.selector.as_str(),
                            )
                        },
                        PathBuf::from,
                    ),
                })
                .collect());
        }
    }
    let probe = crate::rotation::keyring::key_path(config, &domain.name, "x");
    let Some(dir) = probe.parent() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if let Some(sel) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".private"))
                .and_then(|n| Selector::parse(n).ok())
            {
                out.push(SelectorKey {
                    stored: None,
                    selector: sel,
                    key_path: path.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.selector.cmp(&b.selector));
    Ok(out)
}

/// Checks one domain: its authoritative servers, then DKIM, SPF and DMARC as
/// they serve them. Failures are findings (or [`DomainReport::failure`]), not
/// errors.
pub async fn verify_domain(
    querier: &Querier,
    resolver: &Resolver,
    resolvers: &[SocketAddr],
    domain: &Domain,
    selectors: &[SelectorKey],
) -> DomainReport {
    let mut report = DomainReport {
        domain: domain.name.clone(),
        servers: Vec::new(),
        findings: Vec::new(),
        failure: None,
        spf_lookups: None,
    };
    let zone = domain.zone.clone().unwrap_or_else(|| domain.name.clone());
    match authoritative_servers(querier, &zone, &domain.nameservers, resolvers).await {
        Ok(s) => report.servers = s,
        Err(e) => {
            report.failure = Some(format!("finding the authoritative servers of {zone}: {e}"));
            return report;
        }
    }
    let servers = report.servers.clone();
    let f = &mut report.findings;
    f.push(Finding::new(
        "nameservers",
        Status::Ok,
        format!(
            "{} authoritative: {}",
            servers.len(),
            servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    dkim::check_dkim(querier, domain, selectors, &servers, f).await;
    let spf_lookups = spf::check_spf(querier, resolver, domain, &servers, f).await;
    dmarc::check_dmarc(querier, resolver, domain, &servers, f).await;
    report.spf_lookups = spf_lookups;
    report
}

/// Every server's TXT records at `name`.
async fn served(
    querier: &Querier,
    servers: &[Nameserver],
    name: &Fqdn,
) -> Vec<(Nameserver, Result<Vec<TxtRecord>, ServerError>)> {
    let mut out = Vec::new();
    for s in servers {
        let r = match querier.txt(s.addr, name, false).await {
            Err(e) => Err(ServerError::Query(e)),
            Ok(a) => usable(s.addr, name, &a, true).map(|()| a.records),
        };
        out.push((s.clone(), r));
    }
    out
}

/// A TXT value quoted for a finding, shortened to 64 characters.
fn quoted(r: &TxtRecord) -> String {
    format!("\"{}\"", shorten(&r.value_escaped(), 64))
}

/// The values of the kind `owns` selects that every server agrees on; findings
/// for servers that fail or disagree.
async fn agreed(
    querier: &Querier,
    servers: &[Nameserver],
    name: &Fqdn,
    check: &str,
    owns: fn(&[u8]) -> bool,
    f: &mut Vec<Finding>,
) -> Option<Vec<TxtRecord>> {
    let mut first: Option<Vec<TxtRecord>> = None;
    let mut ok = true;
    for (server, r) in served(querier, servers, name).await {
        match r {
            Err(e) => {
                ok = false;
                f.push(Finding::new(check, Status::Error, format!("{server}: {e}")));
            }
            Ok(records) => {
                let mine: Vec<TxtRecord> =
                    records.into_iter().filter(|r| owns(&r.value())).collect();
                match &first {
                    None => first = Some(mine),
                    Some(seen) => {
                        let values = |v: &[TxtRecord]| {
                            let mut x: Vec<Vec<u8>> = v.iter().map(TxtRecord::value).collect();
                            x.sort();
                            x
                        };
                        if values(seen) != values(&mine) {
                            ok = false;
                            let show = |v: &[TxtRecord]| {
                                if v.is_empty() {
                                    "nothing".to_string()
                                } else {
                                    v.iter().map(quoted).collect::<Vec<_>>().join(", ")
                                }
                            };
                            f.push(Finding::new(
                                check,
                                Status::Error,
                                format!(
                                    "servers disagree at {name}: {} serves {}, {} serves {}",
                                    servers.first().map(ToString::to_string).unwrap_or_default(),
                                    show(seen),
                                    server,
                                    show(&mine)
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    if ok { first } else { None }
}

/// The warnings and errors of `diags` as findings of `check`, except the codes in
/// `skip` (checked by a finding of their own).
/// The served record `shown` (quoted) under `check` with its lint findings:
/// an `ok` line for the record only when none of `diags` (but `skip`) is an
/// error, so one record is never shown both ok and in error; otherwise each
/// error names the record.
fn served_record(
    check: &str,
    shown: String,
    diags: &[Diagnostic],
    skip: &[&str],
    f: &mut Vec<Finding>,
) {
    let errors = diags
        .iter()
        .any(|d| d.severity == Severity::Error && !skip.contains(&d.code));
    if !errors {
        f.push(Finding::new(check, Status::Ok, shown));
        lint_findings(check, diags, skip, f);
        return;
    }
    for d in diags {
        if skip.contains(&d.code) || d.severity == Severity::Info {
            continue;
        }
        let (status, message) = match d.severity {
            Severity::Error => (Status::Error, format!("{shown}: {}: {}", d.code, d.message)),
            _ => (Status::Warning, format!("{}: {}", d.code, d.message)),
        };
        f.push(Finding::new(check, status, message));
    }
}

fn lint_findings(check: &str, diags: &[Diagnostic], skip: &[&str], f: &mut Vec<Finding>) {
    for d in diags {
        if skip.contains(&d.code) {
            continue;
        }
        let status = match d.severity {
            Severity::Error => Status::Error,
            Severity::Warning => Status::Warning,
            Severity::Info => continue,
        };
        f.push(Finding::new(
            check,
            status,
            format!("{}: {}", d.code, d.message),
        ));
    }
}

//! `maildns verify`: what DNS actually serves, checked against the local keys —
//! `opendkim-testkey` and more, with no provider credential.
//!
//! For each domain: its DKIM selectors (from the state store, else the key
//! directory) are asked of every authoritative server, must parse and carry the
//! public half of the private key on disk, at a sound size; SPF and DMARC as
//! served are parsed and linted; the SPF lookup count is computed by really
//! walking includes and redirects ([`spf_tree`]); every external DMARC report
//! destination must publish its authorisation record. Names outside the domain
//! go through the configured resolvers.

pub mod spf_tree;

use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::op::DnsResponse;
use hickory_proto::rr::RecordType;
use maildns_providers::{Fqdn, TxtRecord};
use serde::Serialize;

use crate::config::{Config, Domain};
use crate::keys;
use crate::propagation::{Nameserver, Querier, Rcode, ServerError, authoritative_servers, usable};
use crate::publish::plan::shorten;
use crate::records::dkim::{self, DkimKey, KeyType};
use crate::records::{Diagnostic, Severity, dmarc, spf};
use crate::rotation::machine::KeyStatus;
use crate::rotation::{SqliteStore, Store};

pub use spf_tree::{SpfLookups, count_lookups};

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

    async fn ask(&self, name: &Fqdn, qtype: RecordType) -> Result<DnsResponse, String> {
        let mut last = format!("no resolver to ask {qtype}? {name}");
        for &server in &self.servers {
            match self.querier.query(server, name, qtype, true).await {
                Ok((r, _)) => {
                    let rcode = Rcode::from(r.metadata.response_code);
                    if matches!(rcode, Rcode::NoError | Rcode::NxDomain) {
                        return Ok(r);
                    }
                    last = format!("{server} answered {rcode} for {qtype}? {name}");
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// The TXT records at `name`; `None` for NXDOMAIN.
    pub async fn txt(&self, name: &Fqdn) -> Result<Option<Vec<TxtRecord>>, String> {
        let r = self.ask(name, RecordType::TXT).await?;
        let answer = crate::propagation::query::txt_answer(&r, false);
        Ok(match answer.rcode {
            Rcode::NxDomain => None,
            _ => Some(answer.records),
        })
    }

    /// How many records of `qtype` (A, AAAA or MX) `name` has (0 for NXDOMAIN).
    pub async fn count(&self, name: &Fqdn, qtype: RecordType) -> Result<usize, String> {
        let r = self.ask(name, qtype).await?;
        Ok(spf_tree::count_in(&r.answers, qtype))
    }
}

/// A selector to check and its private key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectorKey {
    /// The selector.
    pub selector: String,
    /// The private key file.
    pub key_path: PathBuf,
}

/// The selectors whose records should be served now: from the state store (keys
/// published and not withdrawn) when it knows the domain, else every
/// `<selector>.private` in the domain's key directory.
pub fn selectors(
    config: &Config,
    domain: &Domain,
    store: Option<&SqliteStore>,
) -> anyhow::Result<Vec<SelectorKey>> {
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
                    selector: k.selector.as_str().to_string(),
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
            {
                out.push(SelectorKey {
                    selector: sel.to_string(),
                    key_path: path.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.selector.cmp(&b.selector));
    Ok(out)
}

/// Checks one domain.
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
    check_dkim(querier, domain, selectors, &servers, f).await;
    let spf_lookups = check_spf(querier, resolver, domain, &servers, f).await;
    check_dmarc(querier, resolver, domain, &servers, f).await;
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

fn quoted(r: &TxtRecord) -> String {
    format!("\"{}\"", shorten(&r.value_lossy(), 64))
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

async fn check_dkim(
    querier: &Querier,
    domain: &Domain,
    selectors: &[SelectorKey],
    servers: &[Nameserver],
    f: &mut Vec<Finding>,
) {
    if selectors.is_empty() {
        if domain.dkim.is_some() {
            f.push(Finding::new(
                "DKIM",
                Status::Warning,
                "no published key in the state store or the key directory: run `maildns publish`",
            ));
        }
        return;
    }
    for sel in selectors {
        let check = format!("DKIM {}", sel.selector);
        let name = match dkim::record_name(&sel.selector, &domain.name) {
            Ok(n) => n,
            Err(e) => {
                f.push(Finding::new(&check, Status::Error, e.to_string()));
                continue;
            }
        };
        let mut parsed: Option<(DkimKey, Vec<Diagnostic>)> = None;
        let mut record_ok = true;
        for (server, r) in served(querier, servers, &name).await {
            let records = match r {
                Ok(r) => r,
                Err(e) => {
                    record_ok = false;
                    f.push(Finding::new(
                        format!("{check} record"),
                        Status::Error,
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let dkims: Vec<&TxtRecord> = records
                .iter()
                .filter(|r| dkim::is_dkim(&r.value()))
                .collect();
            let Some(first) = dkims.first() else {
                record_ok = false;
                f.push(Finding::new(
                    format!("{check} record"),
                    Status::Error,
                    format!("{server} serves no v=DKIM1 record at {name}"),
                ));
                continue;
            };
            match DkimKey::parse_lenient(&first.value_lossy()) {
                Ok(p) => {
                    if let Some((seen, _)) = &parsed
                        && seen.public_key != p.0.public_key
                    {
                        record_ok = false;
                        f.push(Finding::new(
                            format!("{check} record"),
                            Status::Error,
                            format!(
                                "{server} serves a different key at {name} than the first server"
                            ),
                        ));
                    }
                    parsed.get_or_insert(p);
                }
                Err(e) => {
                    record_ok = false;
                    f.push(Finding::new(
                        format!("{check} record"),
                        Status::Error,
                        format!("{server}: the record at {name} does not parse: {e}"),
                    ));
                }
            }
        }
        let Some((key, warnings)) = parsed else {
            continue;
        };
        if record_ok {
            f.push(Finding::new(
                format!("{check} record"),
                Status::Ok,
                format!("{name} served by all {} server(s), parses", servers.len()),
            ));
        }
        lint_findings(&format!("{check} record"), &warnings, &[], f);
        // The key on disk.
        let key_check = format!("{check} key");
        match keys::load_private_key(&sel.key_path).and_then(|k| k.public_key_der()) {
            Err(e) => f.push(Finding::new(
                &key_check,
                Status::Error,
                format!("cannot read the private key: {e}"),
            )),
            Ok(_) if key.is_revoked() => f.push(Finding::new(
                &key_check,
                Status::Error,
                "the served record is revoked (empty p=) but the key is still meant to be published",
            )),
            Ok(der) if der == key.public_key => f.push(Finding::new(
                &key_check,
                Status::Ok,
                format!("the served public key matches {}", sel.key_path.display()),
            )),
            Ok(_) => f.push(Finding::new(
                &key_check,
                Status::Error,
                format!(
                    "the served public key is NOT the public half of {}: mail signed with it fails verification",
                    sel.key_path.display()
                ),
            )),
        }
        // Size.
        let size = match (key.key_type(), key.key_bits()) {
            (KeyType::Rsa, Some(bits)) if bits < 1024 => Finding::new(
                format!("{check} size"),
                Status::Error,
                format!("{bits}-bit RSA: receivers must reject keys under 1024 bits (RFC 8301)"),
            ),
            (KeyType::Rsa, Some(bits)) if bits < 2048 => Finding::new(
                format!("{check} size"),
                Status::Warning,
                format!("{bits}-bit RSA: accepted, but 2048 bits is advised (RFC 8301)"),
            ),
            (KeyType::Rsa, Some(bits)) => Finding::new(
                format!("{check} size"),
                Status::Ok,
                format!("{bits}-bit RSA"),
            ),
            (KeyType::Ed25519, Some(_)) => {
                Finding::new(format!("{check} size"), Status::Ok, "Ed25519")
            }
            _ => Finding::new(
                format!("{check} size"),
                Status::Error,
                "the public key cannot be read",
            ),
        };
        f.push(size);
        lint_findings(
            &format!("{check} record"),
            &key.lint(),
            &[
                "dkim-rsa-too-short",
                "dkim-rsa-short",
                "dkim-bad-key",
                "dkim-revoked",
            ],
            f,
        );
    }
}

async fn check_spf(
    querier: &Querier,
    resolver: &Resolver,
    domain: &Domain,
    servers: &[Nameserver],
    f: &mut Vec<Finding>,
) -> Option<SpfLookups> {
    let name = &domain.name;
    let values = agreed(querier, servers, name, "SPF", spf::is_spf, f).await?;
    lint_findings("SPF", &spf::lint_name(&values), &[], f);
    let Some(first) = values.first() else {
        let (status, reason) = if domain.spf.is_some() {
            (
                Status::Error,
                format!("no v=spf1 record served at {name} (configured; run `maildns publish`)"),
            )
        } else {
            (
                Status::Warning,
                format!("no SPF record at {name}: receivers cannot tell which hosts may send"),
            )
        };
        f.push(Finding::new("SPF", status, reason));
        return None;
    };
    if values.len() > 1 {
        return None;
    }
    let value = first.value_lossy();
    let record = match spf::Spf::parse(&value) {
        Ok(r) => r,
        Err(e) => {
            f.push(Finding::new(
                "SPF",
                Status::Error,
                format!("{} does not parse: {e}", quoted(first)),
            ));
            return None;
        }
    };
    f.push(Finding::new("SPF", Status::Ok, quoted(first)));
    if let Some(want) = &domain.spf
        && want.to_value() != value
    {
        f.push(Finding::new(
            "SPF",
            Status::Warning,
            "the served value differs from the configuration: run `maildns publish`",
        ));
    }
    lint_findings("SPF", &record.lint(), &["spf-too-many-lookups"], f);
    let tree = count_lookups(resolver, name, &record).await;
    let macros = if tree.macros > 0 {
        format!(
            "; {} term(s) with macros counted, not resolved",
            tree.macros
        )
    } else {
        String::new()
    };
    // Every lookup, with the record it sits in: whole in --json, wrapped by
    // the table (never cut).
    let details = tree.lines();
    let listed = if details.is_empty() { "" } else { ":" };
    if tree.lookups > spf_tree::MAX_LOOKUPS {
        f.push(Finding {
            details,
            ..Finding::new(
                "SPF lookups",
                Status::Error,
                format!(
                    "{} DNS lookups across includes, receivers stop at {} with a permanent error (RFC 7208 §4.6.4){macros}{listed}",
                    tree.lookups,
                    spf_tree::MAX_LOOKUPS
                ),
            )
        });
    } else {
        f.push(Finding {
            details,
            ..Finding::new(
                "SPF lookups",
                Status::Ok,
                format!(
                    "{} of at most {}{macros}{listed}",
                    tree.lookups,
                    spf_tree::MAX_LOOKUPS
                ),
            )
        });
    }
    if tree.void_lookups.len() > spf_tree::MAX_VOID_LOOKUPS {
        f.push(Finding::new(
            "SPF void lookups",
            Status::Error,
            format!(
                "{} lookups return nothing ({}); receivers stop at {} (RFC 7208 §4.6.4)",
                tree.void_lookups.len(),
                tree.void_lookups.join(", "),
                spf_tree::MAX_VOID_LOOKUPS
            ),
        ));
    } else if !tree.void_lookups.is_empty() {
        f.push(Finding::new(
            "SPF void lookups",
            Status::Warning,
            format!("{} return nothing", tree.void_lookups.join(", ")),
        ));
    }
    lint_findings("SPF lookups", &tree.problems, &[], f);
    Some(tree)
}

async fn check_dmarc(
    querier: &Querier,
    resolver: &Resolver,
    domain: &Domain,
    servers: &[Nameserver],
    f: &mut Vec<Finding>,
) {
    let Ok(name) = dmarc::record_name(&domain.name) else {
        return;
    };
    let Some(values) = agreed(querier, servers, &name, "DMARC", dmarc::is_dmarc, f).await else {
        return;
    };
    let Some(first) = values.first() else {
        let status = if domain.dmarc.is_some() {
            Status::Error
        } else {
            Status::Warning
        };
        f.push(Finding::new(
            "DMARC",
            status,
            format!("no v=DMARC1 record served at {name}"),
        ));
        return;
    };
    if values.len() > 1 {
        f.push(Finding::new(
            "DMARC",
            Status::Error,
            format!(
                "{} v=DMARC1 records at {name} ({}): receivers ignore them all (RFC 7489 §6.6.3)",
                values.len(),
                crate::publish::plan::quote_all(
                    &values
                        .iter()
                        .map(TxtRecord::value_lossy)
                        .collect::<Vec<_>>()
                )
            ),
        ));
        return;
    }
    let value = first.value_lossy();
    let record = match dmarc::Dmarc::parse(&value) {
        Ok(r) => r,
        Err(e) => {
            f.push(Finding::new(
                "DMARC",
                Status::Error,
                format!("{} does not parse: {e}", quoted(first)),
            ));
            return;
        }
    };
    f.push(Finding::new("DMARC", Status::Ok, quoted(first)));
    lint_findings("DMARC", &record.lint(), &[], f);
    for dest in record.external_destinations(&domain.name) {
        let check = format!("DMARC reports to {}", dest.report_domain);
        let auth = match &dest.authorization_name {
            Ok(n) => n,
            Err(e) => {
                f.push(Finding::new(
                    &check,
                    Status::Error,
                    format!("authorisation name: {e}"),
                ));
                continue;
            }
        };
        match resolver.txt(auth).await {
            Err(e) => f.push(Finding::new(&check, Status::Error, format!("cannot check {auth}: {e}"))),
            Ok(v) if v.iter().flatten().any(|r| dmarc::is_dmarc(&r.value())) => f.push(
                Finding::new(&check, Status::Ok, format!("authorised by {auth}")),
            ),
            Ok(_) => f.push(Finding::new(
                &check,
                Status::Error,
                format!(
                    "{auth} has no v=DMARC1 record: {} will not accept reports for {} (RFC 7489 §7.1)",
                    dest.report_domain, domain.name
                ),
            )),
        }
    }
}

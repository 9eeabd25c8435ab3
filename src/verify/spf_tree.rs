//! The SPF DNS-lookup count as a receiver would reach it: every `include:` and
//! `redirect=` target's record is really fetched and walked, and every term that
//! queries DNS is counted across the tree (RFC 7208 §4.6.4: more than 10 is a
//! permanent error; more than 2 "void" lookups — NXDOMAIN or an empty answer —
//! too). Loops are reported instead of followed.

use std::future::Future;
use std::pin::Pin;

use hickory_proto::rr::{RData, RecordType};
use maildns_providers::Fqdn;
use serde::Serialize;

use super::{ResolveError, Resolver};
use crate::records::Diagnostic;
use crate::records::spf::{self, LookupKind, Spf};

/// Receivers stop after this many DNS-querying terms.
pub const MAX_LOOKUPS: usize = 10;
/// Receivers stop after this many lookups with an empty or NXDOMAIN answer.
pub const MAX_VOID_LOOKUPS: usize = 2;
/// Most MX records an `mx` mechanism may return.
pub const MAX_MX: usize = 10;
/// Deepest include chain followed.
const MAX_DEPTH: usize = 16;

/// What walking a record's include/redirect tree found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpfLookups {
    /// DNS-querying terms counted across the tree.
    pub lookups: usize,
    /// Every counted term with the name of the SPF record it sits in, in
    /// evaluation order.
    pub terms: Vec<LookupTerm>,
    /// Names whose lookup came back empty or NXDOMAIN.
    pub void_lookups: Vec<String>,
    /// Terms whose domain holds a macro (counted, not resolved).
    pub macros: usize,
    /// Loops, missing or broken included records, too many MX records, failed queries.
    pub problems: Vec<Diagnostic>,
}

/// One DNS-querying term and where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupTerm {
    /// The term as written, e.g. `include:_spf.example.net`, `mx`, `redirect=x`.
    pub term: String,
    /// The owner name of the SPF record holding it (the domain itself, or an
    /// included or redirected-to name).
    pub record: Fqdn,
}

impl SpfLookups {
    /// The counted terms grouped by the record they sit in, in evaluation
    /// order: one line per record, `in example.com: a mx include:_spf.example.net`
    /// (a record met again after an include gets another line).
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<(&Fqdn, Vec<&str>)> = Vec::new();
        for t in &self.terms {
            match out.last_mut() {
                Some((r, terms)) if *r == &t.record => terms.push(&t.term),
                _ => out.push((&t.record, vec![&t.term])),
            }
        }
        out.into_iter()
            .map(|(r, terms)| format!("in {r}: {}", terms.join(" ")))
            .collect()
    }
}

/// Walks `record` (served at `domain`) through `resolver`.
pub async fn count_lookups(resolver: &Resolver, domain: &Fqdn, record: &Spf) -> SpfLookups {
    let mut out = SpfLookups::default();
    let mut stack = vec![domain.clone()];
    walk(resolver, domain, record, &mut stack, &mut out).await;
    out
}

fn walk<'a>(
    resolver: &'a Resolver,
    current: &'a Fqdn,
    record: &'a Spf,
    stack: &'a mut Vec<Fqdn>,
    out: &'a mut SpfLookups,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let has_all = record.all().is_some();
        for lookup in record.lookup_targets() {
            // redirect= is ignored when the record has `all` (RFC 7208 §6.1).
            if lookup.kind == LookupKind::Redirect && has_all {
                continue;
            }
            out.lookups += 1;
            let spec = lookup.domain.clone();
            let label = term_label(lookup.kind, spec.as_deref());
            out.terms.push(LookupTerm {
                term: label.clone(),
                record: current.clone(),
            });
            if spec.as_deref().is_some_and(|s| s.contains('%')) {
                out.macros += 1;
                continue;
            }
            let target = match &spec {
                None => current.clone(),
                Some(s) => match Fqdn::parse(s) {
                    Ok(t) => t,
                    Err(e) => {
                        out.problems.push(Diagnostic::error(
                            "spf-bad-target",
                            format!("{label} in {current}: not a domain name: {e}"),
                        ));
                        continue;
                    }
                },
            };
            if out.lookups > MAX_LOOKUPS * 3 {
                // Far past the limit: stop asking.
                continue;
            }
            match lookup.kind {
                LookupKind::Include | LookupKind::Redirect => {
                    include(resolver, current, &label, target, stack, out).await;
                }
                LookupKind::A => {
                    let a = resolver.count(&target, RecordType::A).await;
                    let aaaa = resolver.count(&target, RecordType::AAAA).await;
                    match (a, aaaa) {
                        (Ok(0), Ok(0)) => out.void_lookups.push(target.to_string()),
                        (Err(e), _) | (_, Err(e)) => query_failed(out, &label, current, e),
                        _ => {}
                    }
                }
                LookupKind::Exists => match resolver.count(&target, RecordType::A).await {
                    Ok(0) => out.void_lookups.push(target.to_string()),
                    Ok(_) => {}
                    Err(e) => query_failed(out, &label, current, e),
                },
                LookupKind::Mx => match resolver.count(&target, RecordType::MX).await {
                    Ok(0) => out.void_lookups.push(target.to_string()),
                    Ok(n) if n > MAX_MX => out.problems.push(Diagnostic::error(
                        "spf-too-many-mx",
                        format!(
                            "{label} in {current}: {target} has {n} MX records; receivers return \
                             a permanent error above {MAX_MX} (RFC 7208 §4.6.4)"
                        ),
                    )),
                    Ok(_) => {}
                    Err(e) => query_failed(out, &label, current, e),
                },
                // Needs the client's address: counted, not resolved.
                LookupKind::Ptr => {}
            }
        }
    })
}

async fn include(
    resolver: &Resolver,
    current: &Fqdn,
    label: &str,
    target: Fqdn,
    stack: &mut Vec<Fqdn>,
    out: &mut SpfLookups,
) {
    if stack.contains(&target) {
        let chain: Vec<&str> = stack
            .iter()
            .map(Fqdn::as_str)
            .chain([target.as_str()])
            .collect();
        out.problems.push(Diagnostic::error(
            "spf-loop",
            format!(
                "{label} in {current} loops: {} (receivers give up with a permanent error)",
                chain.join(" -> ")
            ),
        ));
        return;
    }
    if stack.len() >= MAX_DEPTH {
        return;
    }
    let values = match resolver.txt(&target).await {
        Ok(v) => v,
        Err(e) => return query_failed(out, label, current, e),
    };
    let spfs: Vec<_> = values
        .iter()
        .flatten()
        .filter(|r| spf::is_spf(&r.value()))
        .collect();
    if values.as_ref().is_none_or(Vec::is_empty) {
        out.void_lookups.push(target.to_string());
    }
    let Some(first) = spfs.first() else {
        out.problems.push(Diagnostic::error(
            "spf-include-missing",
            format!(
                "{label} in {current}: {target} has no SPF record; receivers return a permanent \
                 error (RFC 7208 §5.2)"
            ),
        ));
        return;
    };
    if spfs.len() > 1 {
        out.problems.push(Diagnostic::error(
            "spf-multiple-records",
            format!(
                "{label} in {current}: {target} has {} SPF records ({}); receivers return a \
                 permanent error (RFC 7208 §4.5)",
                spfs.len(),
                crate::publish::plan::quote_all(
                    &spfs.iter().map(|r| r.value_escaped()).collect::<Vec<_>>()
                )
            ),
        ));
        return;
    }
    match Spf::parse(&first.value_lossy()) {
        Ok(child) => {
            stack.push(target.clone());
            walk(resolver, &target, &child, stack, out).await;
            stack.pop();
        }
        Err(e) => out.problems.push(Diagnostic::error(
            "spf-include-invalid",
            format!("{label} in {current}: the record at {target} is invalid: {e}"),
        )),
    }
}

fn query_failed(out: &mut SpfLookups, label: &str, current: &Fqdn, e: ResolveError) {
    out.problems.push(Diagnostic::error(
        "spf-lookup-failed",
        format!("{label} in {current}: {e}"),
    ));
}

fn term_label(kind: LookupKind, spec: Option<&str>) -> String {
    let name = match kind {
        LookupKind::Include => "include",
        LookupKind::A => "a",
        LookupKind::Mx => "mx",
        LookupKind::Ptr => "ptr",
        LookupKind::Exists => "exists",
        LookupKind::Redirect => "redirect",
    };
    let sep = if kind == LookupKind::Redirect {
        '='
    } else {
        ':'
    };
    match spec {
        Some(s) => format!("{name}{sep}{s}"),
        None => name.to_string(),
    }
}

/// Records of `qtype` in an answer (the owner may be the end of a CNAME chain).
pub(super) fn count_in(answers: &[hickory_proto::rr::Record], qtype: RecordType) -> usize {
    answers
        .iter()
        .filter(|r| {
            matches!(
                (&r.data, qtype),
                (RData::A(_), RecordType::A)
                    | (RData::AAAA(_), RecordType::AAAA)
                    | (RData::MX(_), RecordType::MX)
            )
        })
        .count()
}

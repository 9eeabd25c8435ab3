//! The lint gate: one check of every configured record, run before anything is
//! written.
//!
//! `check` reports it; `records` and `plan` refuse to show a plan for a
//! configuration it blocks (exit 65), and every command that writes — `publish`,
//! `rotate`, `daemon`, `import opendkim` — runs it before it creates a key, a
//! state store or a zone line. So `check`, `records`, `plan` and `publish`
//! always agree: what `check` calls an error is never published.
//!
//! The domain's TTL is checked too, against the TTLs its account's host takes
//! whatever the zone (`ttl-below-host-minimum`, `ttl-above-host-maximum`).
//!
//! Errors block and name file:line:key, the value and the rule; warnings are
//! printed and do not block. An operator who knows better waives a rule for one
//! domain, with a reason (`[domains."example.com".lint] allow = [...]`,
//! [`crate::config::LintWaiver`]); there is no global switch. The gate covers the
//! whole configuration, whatever `--domain` selects: a configuration is either
//! fit to publish or not.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{Config, Domain, DomainSource};
use crate::records::{Diagnostic, RecordKind, Severity, lint_ascii};

/// One finding of the gate, located in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The mail domain.
    pub domain: String,
    /// `SPF`, `DMARC` or `ADSP`.
    pub record: &'static str,
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the setting, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `domains."example.com".spf`.
    pub key: String,
    /// The value as maildns would publish it.
    pub value: String,
    /// The rule's finding (severity, rule code, message).
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
    /// The operator's reason, when the rule is waived for this domain.
    pub waived: Option<String>,
}

impl Finding {
    /// True for an error that is not waived: it blocks every write.
    pub fn blocks(&self) -> bool {
        self.diagnostic.severity == Severity::Error && self.waived.is_none()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        let sev = match self.diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(
            f,
            ": {}: {sev}: {} {}: {} [rule {}]",
            self.key,
            self.record,
            crate::quote::quoted(&self.value),
            self.diagnostic.message,
            self.diagnostic.code
        )?;
        if let Some(r) = &self.waived {
            write!(f, " (waived: {r})")?;
        }
        Ok(())
    }
}

/// Everything the gate found, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The findings that block writes.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.blocks())
    }

    /// True when some finding blocks writes.
    pub fn is_blocked(&self) -> bool {
        self.blocking().next().is_some()
    }

    /// Warnings, and errors waived for their domain: printed, never blocking.
    pub fn notices(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| {
            f.diagnostic.severity == Severity::Warning
                || (f.diagnostic.severity == Severity::Error && f.waived.is_some())
        })
    }
}

/// The configuration fails the gate: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct GateError(pub Report);

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocking: Vec<&Finding> = self.0.blocking().collect();
        for b in &blocking {
            writeln!(f, "{b}")?;
        }
        write!(
            f,
            "{} lint error(s): nothing was written. Fix the record, or, if you know better, \
             waive the rule for that domain with a reason: [domains.\"DOMAIN\".lint] \
             allow = [\"RULE\"], reason = \"...\"",
            blocking.len()
        )
    }
}

/// Lints every configured record of `config` (SPF, DMARC, ADSP), applying each
/// domain's waivers.
pub fn lint(config: &Config) -> Report {
    let mut findings = Vec::new();
    for d in &config.domains {
        let mut add = |kind: RecordKind,
                       field: &str,
                       line: Option<usize>,
                       value: String,
                       diags: Vec<Diagnostic>| {
            for diagnostic in diags {
                findings.push(finding(config, d, kind, field, line, &value, diagnostic));
            }
        };
        if let Some(s) = &d.spf {
            let value = s.to_value();
            let mut diags = lint_ascii(&value);
            diags.extend(s.lint());
            add(
                RecordKind::Spf,
                "spf",
                DomainSource::at(d.source.spf),
                value,
                diags,
            );
        }
        if let Some(s) = &d.dmarc {
            let value = s.to_value();
            let mut diags = lint_ascii(&value);
            diags.extend(s.lint());
            add(
                RecordKind::Dmarc,
                "dmarc",
                DomainSource::at(d.source.dmarc),
                value,
                diags,
            );
        }
        if let Some(s) = &d.adsp {
            let value = s.to_value();
            let mut diags = lint_ascii(&value);
            diags.extend(s.lint());
            add(
                RecordKind::Adsp,
                "adsp",
                DomainSource::at(d.source.adsp),
                value,
                diags,
            );
        }
        if let Some(diagnostic) = ttl_diagnostic(config, d) {
            let waived = waiver(d, diagnostic.code);
            findings.push(Finding {
                domain: d.name.to_string(),
                record: "TTL",
                file: config.path.clone(),
                line: DomainSource::at(d.source.ttl.or(d.source.line)),
                key: format!("{}.ttl", d.source.key),
                value: d.ttl.to_string(),
                diagnostic,
                waived,
            });
        }
    }
    Report { findings }
}

/// The domain's TTL against the TTLs its account's host takes whatever the
/// zone (its descriptor's documented minimum and maximum,
/// [`maildns_providers::Profile::static_ttl_range`]): the host would refuse
/// every write of the domain's records, so the gate refuses first. A minimum
/// the host sets per zone (deSEC's `minimum_ttl`) is checked by the adapter
/// after reading it, before writing.
fn ttl_diagnostic(config: &Config, d: &Domain) -> Option<Diagnostic> {
    let account = config.accounts.get(&d.account)?;
    let host = account.provider.host;
    let profile = host.profile().ok()?;
    let from = match d.source.ttl {
        Some(_) => "set here".to_string(),
        None => "maildns's default, no `ttl` set".to_string(),
    };
    if !profile.ttl_values.is_empty() && !profile.ttl_values.contains(&d.ttl) {
        let kept: Vec<String> = profile.ttl_values.iter().map(u32::to_string).collect();
        return Some(Diagnostic::error(
            "ttl-not-kept-by-host",
            format!(
                "a TTL of {} s ({from}) for {} is not one {} keeps (account \"{}\"): it keeps only {} s and would change any other, so the records would never read back as written; set `ttl` to one of them",
                d.ttl,
                owner_names(d).join(", "),
                host.kind,
                d.account,
                kept.join(", ")
            ),
        ));
    }
    let limit = profile.ttl_within(d.ttl).err()?;
    let (code, what, fix) = match limit {
        maildns_providers::LimitError::TtlTooLow { min, .. } => (
            "ttl-below-host-minimum",
            format!("under {}'s minimum of {min} s", host.kind),
            format!("at least {min}"),
        ),
        maildns_providers::LimitError::TtlTooHigh { max, .. } => (
            "ttl-above-host-maximum",
            format!("over {}'s maximum of {max} s", host.kind),
            format!("at most {max}"),
        ),
        _ => return None,
    };
    Some(Diagnostic::error(
        code,
        format!(
            "a TTL of {} s ({from}) for {} is {what} (account \"{}\"): the host refuses the write; set `ttl` to {fix}",
            d.ttl,
            owner_names(d).join(", "),
            d.account
        ),
    ))
}

/// The reason `d` gives for waiving rule `code`, when it waives it.
fn waiver(d: &Domain, code: &str) -> Option<String> {
    d.lint
        .as_deref()
        .filter(|l| l.waives(code))
        .map(|l| l.reason.clone())
}

/// Where domain `d`'s TTL comes from, for messages: `file:line: key` of its
/// `ttl`, or maildns's default when it sets none.
pub fn ttl_source(config: &Config, d: &Domain) -> String {
    match d.source.ttl {
        Some(line) => format!("{}:{line}: {}.ttl", config.path.display(), d.source.key),
        None => format!(
            "maildns's default of 3600 s (no `ttl` in {} of {})",
            d.source.key,
            config.path.display()
        ),
    }
}

/// The owner names maildns writes for `d`, as configured: the domain (SPF),
/// `_dmarc`, `_adsp._domainkey`, and the DKIM selectors under `_domainkey`.
fn owner_names(d: &Domain) -> Vec<String> {
    let mut out = Vec::new();
    if d.spf.is_some() {
        out.push(d.name.to_string());
    }
    if d.dkim.is_some() {
        out.push(format!("<selector>._domainkey.{}", d.name));
    }
    if d.dmarc.is_some() {
        out.push(format!("_dmarc.{}", d.name));
    }
    if d.adsp.is_some() {
        out.push(format!("_adsp._domainkey.{}", d.name));
    }
    if out.is_empty() {
        out.push(d.name.to_string());
    }
    out
}

fn finding(
    config: &Config,
    d: &Domain,
    kind: RecordKind,
    field: &str,
    line: Option<usize>,
    value: &str,
    diagnostic: Diagnostic,
) -> Finding {
    let waived = waiver(d, diagnostic.code);
    Finding {
        domain: d.name.to_string(),
        record: kind.label(),
        file: config.path.clone(),
        line: line.or(DomainSource::at(d.source.line)),
        key: format!("{}.{field}", d.source.key),
        value: value.to_string(),
        diagnostic,
        waived,
    }
}

/// The gate: the report when nothing blocks (its warnings are for the caller to
/// print).
///
/// # Errors
/// [`GateError`] when some record has an error its domain does not waive.
pub fn gate(config: &Config) -> Result<Report, GateError> {
    let report = lint(config);
    if report.is_blocked() {
        Err(GateError(report))
    } else {
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(domain_body: &str) -> Config {
        let text = format!(
            "state_dir = \"state\"\n[accounts.local]\nprovider = \"zonefile\"\npath = \"zone.db\"\n\n[domains.\"example.com\"]\naccount = \"local\"\n{domain_body}\n"
        );
        crate::config::parse(&text, Path::new("/etc/maildns/maildns.toml")).unwrap()
    }

    const ELEVEN: &str = "v=spf1 a mx include:_s1.example.net include:_s2.example.net include:_s3.example.net include:_s4.example.net include:_s5.example.net include:_s6.example.net exists:%{i}.x.example.org a:mail.example.org mx:example.org ~all";

    #[test]
    fn eleven_lookups_block_naming_file_line_key_value_and_rule() {
        let c = config(&format!("spf = \"{ELEVEN}\""));
        let e = gate(&c).unwrap_err();
        let b: Vec<&Finding> = e.0.blocking().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].diagnostic.code, "spf-too-many-lookups");
        assert_eq!(b[0].line, Some(8));
        assert_eq!(b[0].key, "domains.\"example.com\".spf");
        assert_eq!(b[0].value, ELEVEN);
        let s = e.to_string();
        assert!(
            s.starts_with("/etc/maildns/maildns.toml:8: domains.\"example.com\".spf: error: SPF \"v=spf1 a mx include:_s1"),
            "{s}"
        );
        assert!(s.contains("the record has 11 terms that query DNS"), "{s}");
        assert!(s.contains("[rule spf-too-many-lookups]"), "{s}");
    }

    #[test]
    fn a_waiver_with_a_reason_unblocks_one_rule_of_one_domain() {
        let c = config(&format!(
            "spf = \"{ELEVEN}\"\n[domains.\"example.com\".lint]\nallow = [\"spf-too-many-lookups\"]\nreason = \"our receivers allow 20\""
        ));
        let r = gate(&c).unwrap();
        let n: Vec<&Finding> = r.notices().collect();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].waived.as_deref(), Some("our receivers allow 20"));
        assert!(
            n[0].to_string()
                .ends_with("(waived: our receivers allow 20)")
        );
        // Another rule of the same domain still blocks.
        let c = config(&format!(
            "spf = \"{ELEVEN}\"\ndmarc = \"v=DMARC1; p=reject; sp=rejct\"\n[domains.\"example.com\".lint]\nallow = [\"spf-too-many-lookups\"]\nreason = \"tested\""
        ));
        let e = gate(&c).unwrap_err();
        let codes: Vec<&str> = e.0.blocking().map(|f| f.diagnostic.code).collect();
        assert_eq!(codes, vec!["dmarc-bad-value"]);
    }

    #[test]
    fn dmarc_typo_blocks() {
        let c = config("dmarc = \"v=DMARC1; p=reject; sp=rejct; rua=mailto:d@example.com\"");
        let e = gate(&c).unwrap_err();
        let f: Vec<&Finding> = e.0.blocking().collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].diagnostic.code, "dmarc-bad-value");
        assert_eq!(f[0].key, "domains.\"example.com\".dmarc");
        assert!(f[0].diagnostic.message.contains("sp=rejct"));
    }

    #[test]
    fn non_ascii_report_address_blocks() {
        let c = config("dmarc = \"v=DMARC1; p=reject; rua=mailto:d@exämple.com\"");
        let e = gate(&c).unwrap_err();
        let codes: Vec<&str> = e.0.blocking().map(|f| f.diagnostic.code).collect();
        assert!(codes.contains(&"txt-non-ascii"), "{codes:?}");
        assert!(e.to_string().contains("U+00E4"), "{e}");
    }

    #[test]
    fn warnings_do_not_block() {
        let c = config("spf = \"v=spf1 ptr -all\"\nadsp = \"all\"");
        let r = gate(&c).unwrap();
        let codes: Vec<&str> = r.notices().map(|f| f.diagnostic.code).collect();
        assert_eq!(codes, vec!["spf-ptr", "adsp-historic"]);
    }

    #[test]
    fn every_code_the_lints_emit_is_a_registered_rule() {
        let spf = [
            ELEVEN,
            "v=spf1 ptr +all mx",
            "v=spf1 all redirect=x.example.com",
            "v=spf1 mx",
        ];
        let dmarc = [
            "v=DMARC1",
            "v=DMARC1; p=x; sp=y; rua=https://x.example,mailto:x; ruf=mailto:a@b.example!10m; pct=5; rf=afrf; ri=5; zz=1; t=y",
            "v=DMARC1; p=none",
        ];
        let mut codes = Vec::new();
        for s in spf {
            let mut v = crate::records::spf::Spf::parse(s).unwrap().lint();
            v.extend(lint_ascii("ü"));
            codes.extend(v.into_iter().map(|d| d.code));
        }
        for s in dmarc {
            codes.extend(
                crate::records::dmarc::Dmarc::parse(s)
                    .unwrap()
                    .lint()
                    .into_iter()
                    .map(|d| d.code),
            );
        }
        let a = crate::records::adsp::Adsp::parse("dkim=discardable").unwrap();
        codes.extend(a.lint().into_iter().map(|d| d.code));
        for c in codes {
            let rule = crate::records::rule(c);
            assert!(rule.is_some(), "{c} is not in records::RULES");
        }
    }
}

//! `maildns verify`: what DNS serves, checked against the local keys and state.
//! Needs no provider credential: it only reads DNS, the key files and the state.

use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_config, print_json};
use super::common::{Selection, selected};
use crate::propagation::upstream;
use crate::verify::{self, DomainReport, Resolver, Status};

/// Arguments of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Which domains
    #[command(flatten)]
    pub selection: Selection,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    errors: usize,
    warnings: usize,
    domains: &'a [DomainReport],
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    let domains = selected(&config, &args.selection)?;
    let store = super::state::open(&config, super::state::Access::Read)?;
    let querier = super::watch::querier();
    let resolvers = upstream(&config.propagation.resolvers).addrs()?;
    let resolver = Resolver::new(querier.clone(), resolvers);
    let mut reports = Vec::new();
    for d in domains {
        let mut selectors = verify::selectors(&config, d, store.as_deref())?;
        verify::shared_keys(&config, d, &mut selectors).await;
        let mut report = verify::verify_domain(
            &querier,
            &resolver,
            &config.propagation.resolvers,
            d,
            &selectors,
        )
        .await;
        if let Some(s) = &config.signer
            && report.failure.is_none()
            && d.dkim.is_some()
        {
            let found = verify::check_signer(&querier, s, d, &report.servers).await;
            report.findings.extend(found);
        }
        reports.push(report);
    }
    let count = |s: Status| {
        reports
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.status == s)
            .count()
    };
    let (errors, warnings) = (count(Status::Error), count(Status::Warning));
    let failed = reports.iter().any(|r| r.failure.is_some());
    if cli.json {
        print_json(&Report {
            ok: errors == 0 && !failed,
            errors,
            warnings,
            domains: &reports,
        })?;
    } else {
        print_table(&reports);
        outln!(
            "Summary: {} domain(s), {errors} error(s), {warnings} warning(s){}",
            reports.len(),
            if failed {
                ", some domains could not be checked"
            } else {
                ""
            }
        );
    }
    Ok(if errors > 0 {
        Exit::DataErr
    } else if failed {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

fn print_table(reports: &[DomainReport]) {
    for r in reports {
        outln!("{}", r.domain);
        if let Some(e) = &r.failure {
            outln!("  FAILED  {e}");
            continue;
        }
        let width = r
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0)
            .max(5);
        for f in &r.findings {
            let status = match f.status {
                Status::Ok => "ok",
                Status::Warning => "warning",
                Status::Error => "ERROR",
            };
            outln!("  {:<width$}  {status:<7}  {}", f.check, f.reason);
            let indent = " ".repeat(2 + width + 2 + 7 + 2 + 2);
            for d in &f.details {
                for line in wrap(d, DETAIL_COLUMNS.saturating_sub(indent.len())) {
                    outln!("{indent}{line}");
                }
            }
        }
    }
}

/// Width the table wraps detail lines at (whole lines stay in `--json`).
const DETAIL_COLUMNS: usize = 100;

/// Splits `text` at spaces into lines of at most `width` characters; a word
/// longer than `width` gets a line of its own (never cut). Continuation lines
/// start with two spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
            line.push_str("  ");
        } else if len > 0 {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_every_word_and_the_width() {
        let text = "in example.com: a mx include:_s1.example.net include:_s2.example.net include:_s3.example.net exists:%{i}.x.example.org";
        let lines = wrap(text, 40);
        assert!(lines.len() > 2, "{lines:?}");
        for l in &lines {
            assert!(l.chars().count() <= 40, "{l:?}");
        }
        let joined: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(joined, text.split(' ').collect::<Vec<_>>());
        assert!(lines[1].starts_with("  "));
        // A word longer than the width is kept whole.
        let long = format!("in x: include:{}.example", "a".repeat(60));
        assert_eq!(
            wrap(&long, 40),
            vec![
                "in x:".to_string(),
                format!("  include:{}.example", "a".repeat(60))
            ]
        );
    }
}

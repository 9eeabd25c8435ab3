//! `maildns watch NAME --expect VALUE`: wait until every authoritative server
//! serves (or no longer serves) a TXT value; and the watch step shared with
//! `publish --wait`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use maildns_providers::{Fqdn, TxtRecord};
use serde::Serialize;

use super::Cli;
use super::common::{Exit, print_json};
use super::progress::{Bars, Lines, lagging, outcome_line};
use crate::command::publish::{DomainWatch, WaitDisplay};
use crate::config::{self, Config};
use crate::propagation::{
    Check, Nameserver, Progress, Querier, QueryOptions, RecursiveCheck, WatchOptions, WatchReport,
    Watcher, authoritative_servers,
};

/// Arguments of `watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The name whose TXT records to watch, e.g. 202611._domainkey.example.com
    pub name: String,
    /// Wait until this TXT value is served (strings joined)
    #[arg(long, conflicts_with = "absent", required_unless_present = "absent")]
    pub expect: Option<String>,
    /// Wait until this TXT value is no longer served
    #[arg(long)]
    pub absent: Option<String>,
    /// Ask these servers (ADDR or ADDR:PORT; repeatable) instead of the zone's NS
    #[arg(long = "server")]
    pub servers: Vec<String>,
    /// Give up after this long, e.g. 90s, 10m [default: propagation.timeout, 5m]
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
}

/// Parses `--timeout`.
///
/// # Errors
/// [`config::DurationError`] (shown by clap) when `s` is not a duration such as
/// `90s`, `10m` or `1h`.
pub fn parse_timeout(s: &str) -> Result<Duration, config::DurationError> {
    config::parse_duration(s)
}

/// `ADDR` (port 53) or `ADDR:PORT`.
fn parse_server(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .with_context(|| format!("--server {s}: not an IP address or ADDR:PORT"))?;
    Ok(SocketAddr::new(ip, 53))
}

/// The configuration when one is named or found at a default place; `None` when
/// there is none (watch works without one).
fn optional_config(cli: &Cli) -> anyhow::Result<Option<Config>> {
    match config::locate(cli.config.as_deref()) {
        Ok(path) => Ok(Some(config::load(&path)?)),
        Err(_) if cli.config.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The querier every watch uses.
pub(super) fn querier() -> Querier {
    Querier::new(QueryOptions::default())
}

/// Watch options from the configuration, with `timeout` overriding.
pub(super) fn watch_options(config: Option<&Config>, timeout: Option<Duration>) -> WatchOptions {
    let mut options = WatchOptions::cli();
    if let Some(c) = config {
        options.timeout = c.propagation.timeout;
        if !c.propagation.check_resolvers.is_empty() {
            options.recursive = Some(RecursiveCheck {
                resolvers: c.propagation.check_resolvers.clone(),
                gate: c.propagation.require_resolvers,
            });
        }
    }
    if let Some(t) = timeout {
        options.timeout = t;
    }
    options
}

/// The display that fits a watch: bars on a terminal, log lines otherwise (on
/// stderr under `--json`, so stdout stays JSON). Call [`Shown::finish`] after.
pub(super) struct Shown {
    pub(super) progress: Arc<dyn Progress>,
    bars: Option<Arc<Bars>>,
}

impl Shown {
    pub(super) fn new(json: bool, title: &str, checks: &[Check], servers: &[Nameserver]) -> Shown {
        if !json && std::io::stdout().is_terminal() {
            let bars = Arc::new(Bars::new(title, checks, servers));
            Shown {
                progress: bars.clone(),
                bars: Some(bars),
            }
        } else {
            let out: Box<dyn std::io::Write + Send> = if json {
                Box::new(super::output::Stderr)
            } else {
                Box::new(super::output::Stdout)
            };
            Shown {
                progress: Arc::new(Lines::new(title, out)),
                bars: None,
            }
        }
    }

    /// Ends the bars, if any.
    pub(super) fn finish(&self) {
        if let Some(b) = &self.bars {
            b.finish();
        }
    }
}

/// Runs one watch with the display that fits ([`Shown`]).
async fn watch_shown(
    json: bool,
    title: &str,
    querier: Querier,
    options: WatchOptions,
    checks: &[Check],
    servers: &[Nameserver],
) -> WatchReport {
    let shown = Shown::new(json, title, checks, servers);
    let report = Watcher::new(querier, options)
        .with_progress(shown.progress.clone())
        .watch(checks, servers)
        .await;
    shown.finish();
    report
}

/// Prints the end of a watch: "safe after", or the lagging servers.
pub(super) fn print_outcome(title: &str, report: &WatchReport) {
    outln!("{title}: {}", outcome_line(report));
    if !report.propagated {
        for line in lagging(report) {
            outln!("  {line}");
        }
    }
}

/// `publish --wait` shown as bars or lines, with a line per domain at its end.
pub(super) struct WaitShown {
    json: bool,
    shown: Option<Shown>,
}

impl WaitShown {
    pub(super) fn new(json: bool) -> WaitShown {
        WaitShown { json, shown: None }
    }
}

impl WaitDisplay for WaitShown {
    fn in_sync(&mut self, domain: &Fqdn) {
        if !self.json {
            outln!("{domain}: in sync, nothing to wait for");
        }
    }

    fn start(
        &mut self,
        domain: &Fqdn,
        checks: &[Check],
        servers: &[Nameserver],
    ) -> Arc<dyn Progress> {
        let shown = Shown::new(self.json, domain.as_str(), checks, servers);
        let progress = shown.progress.clone();
        self.shown = Some(shown);
        progress
    }

    fn finish(&mut self, domain: &Fqdn, watch: &DomainWatch) {
        if let Some(s) = self.shown.take() {
            s.finish();
        }
        match (&watch.error, &watch.report) {
            _ if self.json => {}
            (Some(e), _) => outln!("{domain}: cannot watch: {e}"),
            (None, Some(r)) => print_outcome(domain.as_str(), r),
            (None, None) => {}
        }
    }
}

#[derive(Serialize)]
struct WatchJson<'a> {
    name: &'a Fqdn,
    servers: &'a [Nameserver],
    report: &'a WatchReport,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let name = Fqdn::parse(&args.name).with_context(|| format!("'{}'", args.name))?;
    let config = optional_config(cli)?;
    let check = match (&args.expect, &args.absent) {
        (Some(v), _) => Check::present(name.clone(), TxtRecord::from_value(v)),
        (None, Some(v)) => Check::absent(name.clone(), TxtRecord::from_value(v)),
        (None, None) => anyhow::bail!("give --expect VALUE or --absent VALUE"),
    };
    let mut overrides = args
        .servers
        .iter()
        .map(|s| parse_server(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // A configured domain's nameserver override applies to names within it.
    if overrides.is_empty()
        && let Some(d) = config.as_ref().and_then(|c| {
            c.domains
                .iter()
                .filter(|d| name.is_within(&d.name))
                .max_by_key(|d| d.name.as_str().len())
        })
    {
        overrides = d.nameservers.to_vec();
    }
    let resolvers = config
        .as_ref()
        .map(|c| c.propagation.resolvers.clone())
        .unwrap_or_default();
    let querier = querier();
    let servers = authoritative_servers(&querier, &name, &overrides, &resolvers)
        .await
        .with_context(|| format!("finding the authoritative servers of {name}"))?;
    let options = watch_options(config.as_ref(), args.timeout);
    let checks = [check];
    let report = watch_shown(cli.json, name.as_str(), querier, options, &checks, &servers).await;
    if cli.json {
        print_json(&WatchJson {
            name: &name,
            servers: &servers,
            report: &report,
        })?;
    } else {
        print_outcome(name.as_str(), &report);
    }
    Ok(if report.propagated {
        Exit::Ok
    } else {
        Exit::Timeout
    })
}

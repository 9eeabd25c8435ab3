//! `maildns status`: each domain's keys, what happens next and when, what is
//! blocked, and the latest events. Reads the store without its lock, so it works
//! while the daemon runs. Exits 4 ([`Exit::Attention`]) when any domain needs
//! an operator ([`needs_attention`]), so it serves as a monitoring check.
//! `--json` prints the schema documented in `docs/status-json.md`.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_config, print_json, select_domains};
use crate::rotation::status::{DomainStatus, domain_status, needs_attention, relative};
use crate::rotation::{DomainState, Request, Store, StoredEvent};

/// Version of the `status --json` schema (docs/status-json.md). Raised when a
/// field is removed or changes meaning; new fields may appear within a version.
pub const JSON_VERSION: u32 = 1;

/// How many recent events to show per domain.
const EVENTS: usize = 5;

#[derive(Serialize)]
struct Report<'a> {
    version: u32,
    now: DateTime<Utc>,
    state_dir: &'a std::path::Path,
    attention: bool,
    requests: &'a [Request],
    domains: &'a [DomainStatus],
}

fn last_events(store: &dyn Store, domain: &Fqdn) -> anyhow::Result<Vec<StoredEvent>> {
    let mut tail = VecDeque::with_capacity(EVENTS);
    let mut after = 0;
    loop {
        let page = store.events(Some(domain), after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in page {
            if tail.len() == EVENTS {
                tail.pop_front();
            }
            tail.push_back(e);
        }
    }
    Ok(tail.into())
}

pub(super) async fn run(cli: &Cli, domains: &[String]) -> anyhow::Result<Exit> {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(e) => return Err(json_error(cli, "configuration", None, e)),
    };
    super::common::warn_tables_only(&config);
    let selected = match select_domains(&config, domains) {
        Ok(s) => s,
        Err(e) => return Err(json_error(cli, "domain selection", None, e)),
    };
    match report(cli, &config, selected) {
        Ok(code) => Ok(code),
        Err(e) => Err(json_error(cli, "state store", Some(store_name(&config)), e)),
    }
}

/// The state store as it may be shown: the shared store's URL without any
/// password (the configuration refuses one, this makes sure), or the
/// embedded store's directory.
fn store_name(config: &crate::config::Config) -> String {
    match &config.state {
        Some(shared) => match reqwest::Url::parse(&shared.url) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(None);
                }
                u.to_string()
            }
            Err(_) => "the [state] url".into(),
        },
        None => config.state_dir.display().to_string(),
    }
}

/// With `--json`, prints `e` as the one JSON object on stdout
/// (`{"version", "now", "error": {"what", "store", "message"}}`, see
/// docs/status-json.md) before it goes on, as in text mode, to stderr and
/// the exit code.
fn json_error(cli: &Cli, what: &str, store: Option<String>, e: anyhow::Error) -> anyhow::Error {
    if cli.json {
        let _ = print_json(&serde_json::json!({
            "version": JSON_VERSION,
            "now": Utc::now(),
            "error": {
                "what": what,
                "store": store,
                "message": format!("{e:#}"),
                "exit_code": super::common::exit_for(&e) as i32,
            },
        }));
    }
    match store {
        Some(store) => e.context(format!("reading the {what} {store}")),
        None => e,
    }
}

fn report(
    cli: &Cli,
    config: &crate::config::Config,
    selected: Vec<&crate::config::Domain>,
) -> anyhow::Result<Exit> {
    // Read-only: no store yet means no keys yet (and nothing is created).
    let store = super::state::open(config, super::state::Access::Read)?;
    let now = Utc::now();
    let mut out = Vec::new();
    for d in selected {
        let (state, events) = match &store {
            Some(s) => (s.load(&d.name)?, last_events(s.as_ref(), &d.name)?),
            None => (DomainState::new(d.name.clone()), Vec::new()),
        };
        let policy = d.dkim.as_ref().map(|k| k.policy.clone());
        out.push(domain_status(
            &state,
            policy.as_ref(),
            events,
            crate::rotation::status::propagation_bound(&config.propagation),
            now,
        ));
    }
    let requests = match &store {
        Some(s) => s.requests()?,
        None => Vec::new(),
    };
    let attention = out.iter().any(|s| !needs_attention(s).is_empty());
    if cli.json {
        print_json(&Report {
            version: JSON_VERSION,
            now,
            state_dir: &config.state_dir,
            attention,
            requests: &requests,
            domains: &out,
        })?;
    } else {
        for s in &out {
            print_human(s, now);
            for r in requests.iter().filter(|r| r.domain.as_str() == s.domain) {
                outln!(
                    "  request  {} asked {} ({}), waiting for the daemon",
                    r.what,
                    date(r.at),
                    relative(r.at, now)
                );
            }
        }
        if attention {
            let n = out
                .iter()
                .filter(|s| !needs_attention(s).is_empty())
                .count();
            outln!("{n} domain(s) need attention (exit 4)");
        }
    }
    Ok(if attention { Exit::Attention } else { Exit::Ok })
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn print_human(s: &DomainStatus, now: DateTime<Utc>) {
    outln!("{}", s.domain);
    for a in &s.active {
        let since = a
            .active_at
            .map(|t| {
                format!(
                    ", active since {} ({} days)",
                    date(t),
                    a.age_days.unwrap_or(0)
                )
            })
            .unwrap_or_default();
        outln!(
            "  active   {:<12} {} {} bits{since}",
            a.selector,
            a.algorithm,
            a.bits
        );
    }
    for p in &s.pending {
        let safe = p
            .safe_after
            .map(|t| format!(", safe after {}", date(t)))
            .unwrap_or_default();
        outln!(
            "  pending  {:<12} {} {} bits, {}{safe}",
            p.selector,
            p.algorithm,
            p.bits,
            p.status
        );
    }
    for o in &s.old {
        let when = match (o.status, o.removal_at) {
            (crate::rotation::KeyStatus::Retiring, Some(t)) => {
                format!(", record withdrawn {} ({})", date(t), relative(t, now))
            }
            _ => String::new(),
        };
        outln!(
            "  old      {:<12} {} {}{when}",
            o.selector,
            o.algorithm,
            o.status
        );
    }
    for b in &s.blocked {
        let what = b.kind.describe();
        outln!(
            "  BLOCKED  {:<12} {} {what}: {}",
            b.selector.as_str(),
            b.algorithm,
            b.reason
        );
    }
    for e in &s.errors {
        let retry = e
            .retry_at
            .map(|t| format!("; retry {}", relative(t, now)))
            .unwrap_or_default();
        outln!(
            "  error    {:<12} attempt {}: {}{retry}",
            e.selector,
            e.attempts,
            e.reason
        );
    }
    for a in &s.attention {
        outln!(
            "  ATTENTION {} {}: {}",
            a.kind,
            a.selector.as_deref().unwrap_or("-"),
            a.reason
        );
    }
    match &s.next {
        Some(n) => {
            let when = if n.due_now {
                "now".to_string()
            } else {
                format!("{} ({})", date(n.at), relative(n.at, now))
            };
            outln!("  next     {when}: {}", n.description);
        }
        None if s.dkim_configured => outln!("  next     nothing scheduled"),
        None => {}
    }
    for w in &s.warnings {
        outln!("  WARNING  {}", w.message);
    }
    if let Some(note) = &s.note {
        outln!("  note     {note}");
    }
    if !s.events.is_empty() {
        outln!("  recent events:");
        for e in &s.events {
            let ev = &e.event;
            outln!(
                "    {} {} {} {}: {}{}",
                date(ev.at),
                ev.selector.as_ref().map(|s| s.as_str()).unwrap_or("-"),
                ev.what,
                ev.outcome,
                ev.detail,
                e.replica
                    .as_ref()
                    .map(|r| format!(" [replica {r}]"))
                    .unwrap_or_default()
            );
        }
    }
}

//! Showing a propagation watch: live bars on a terminal, one log line per round
//! and per state change otherwise, and the summary lines both share ("safe
//! after", the lagging servers and what each serves).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use maildns_providers::TxtRecord;

use crate::propagation::{
    Check, CheckReport, Expectation, Nameserver, Progress, ServerStatus, WatchReport,
};
use crate::publish::plan::shorten;

/// `"v=spf1 -all"`, shortened for a line.
fn quoted(r: &TxtRecord) -> String {
    format!("\"{}\"", shorten(&r.value_escaped(), 60))
}

/// What a check waits for: `present "v=…"` / `absent "v=…"`.
pub fn expectation_label(e: &Expectation) -> String {
    match e {
        Expectation::Present(r) => format!("present {}", quoted(r)),
        Expectation::Absent(r) => format!("absent {}", quoted(r)),
    }
}

/// One server's state in a few words: `ok`, `waiting: serves X`, `error: ...`.
pub fn describe(status: &ServerStatus) -> String {
    if status.passed {
        return "ok".into();
    }
    match &status.serving {
        // The resolver's error may quote what a server sent.
        Err(e) => format!("error: {}", super::output::terminal_safe(&e.to_string())),
        Ok(records) if records.is_empty() => "waiting: serves nothing".into(),
        Ok(records) => format!(
            "waiting: serves {}",
            records.iter().map(quoted).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn server_label(s: &Nameserver) -> String {
    s.to_string()
}

/// A live display: one spinner per check, its message the state of each server.
pub struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    rows: Vec<Row>,
}

struct Row {
    check: Check,
    bar: ProgressBar,
    states: Mutex<Vec<(SocketAddr, String)>>,
}

impl Bars {
    /// Bars for `checks` on `servers`, drawn on stdout.
    pub fn new(title: &str, checks: &[Check], servers: &[Nameserver]) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(style.clone());
        header.set_prefix(title.to_string());
        header.set_message("asking the authoritative servers…");
        header.enable_steady_tick(Duration::from_millis(120));
        let rows = checks
            .iter()
            .map(|c| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{} {}", c.name, expectation_label(&c.expectation)));
                bar.enable_steady_tick(Duration::from_millis(120));
                Row {
                    check: c.clone(),
                    bar,
                    states: Mutex::new(
                        servers
                            .iter()
                            .map(|s| (s.addr, format!("{}: waiting", server_label(s))))
                            .collect(),
                    ),
                }
            })
            .collect();
        Bars {
            multi,
            header,
            rows,
        }
    }

    /// Stops the spinners, leaving the last state on screen.
    pub fn finish(&self) {
        for row in &self.rows {
            row.bar.finish();
        }
        self.header.finish();
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    fn update(&self, check: &Check, server: &Nameserver, status: &ServerStatus) {
        let Some(row) = self.rows.iter().find(|r| &r.check == check) else {
            return;
        };
        let mut states = row
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = format!("{}: {}", server_label(server), describe(status));
        match states.iter_mut().find(|(a, _)| *a == server.addr) {
            Some(slot) => slot.1 = text,
            None => states.push((server.addr, text)),
        }
        row.bar.set_message(
            states
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }

    fn round(&self, round: u32, passed: usize, total: usize, next_in: Option<Duration>) {
        let next = next_in
            .map(|d| format!(", next round in {}s", d.as_secs().max(1)))
            .unwrap_or_default();
        self.header
            .set_message(format!("round {round}: {passed}/{total} passed{next}"));
    }
}

/// Plain lines: one per round and one per state change of a (check, server).
pub struct Lines {
    prefix: String,
    out: Mutex<Box<dyn Write + Send>>,
    last: Mutex<HashMap<(String, String, SocketAddr), String>>,
}

impl Lines {
    /// Lines prefixed with `prefix` (the domain), written to `out`.
    pub fn new(prefix: &str, out: Box<dyn Write + Send>) -> Lines {
        Lines {
            prefix: prefix.to_string(),
            out: Mutex::new(out),
            last: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = format!("{}: {text}", self.prefix);
        let _ = writeln!(out, "{}", super::output::terminal_safe(&line));
        let _ = out.flush();
    }
}

impl Progress for Lines {
    fn update(&self, check: &Check, server: &Nameserver, status: &ServerStatus) {
        let key = (
            check.name.to_string(),
            expectation_label(&check.expectation),
            server.addr,
        );
        let text = describe(status);
        let changed = {
            let mut last = self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            last.insert(key.clone(), text.clone()).as_ref() != Some(&text)
        };
        if changed {
            self.line(&format!("{} {} on {}: {text}", key.0, key.1, server));
        }
    }

    fn round(&self, round: u32, passed: usize, total: usize, next_in: Option<Duration>) {
        let next = next_in
            .map(|d| format!(", next round in {}s", d.as_secs().max(1)))
            .unwrap_or_default();
        self.line(&format!("round {round}: {passed}/{total} passed{next}"));
    }
}

/// The lines naming every server that does not pass yet and what it serves.
pub fn lagging(report: &WatchReport) -> Vec<String> {
    let mut out = Vec::new();
    for check in report.per_check.iter().filter(|c| !c.passed) {
        out.extend(lagging_in(check));
    }
    out
}

fn lagging_in(check: &CheckReport) -> Vec<String> {
    check
        .per_server
        .iter()
        .filter(|s| !s.passed)
        .map(|s| {
            format!(
                "{} ({}) on {}: {}",
                check.name,
                expectation_label(&check.expectation),
                s.server,
                describe(s)
            )
        })
        .collect()
}

/// One line for the end of a watch: "safe after …" or "not propagated after N rounds".
pub fn outcome_line(report: &WatchReport) -> String {
    match (report.propagated, report.safe_after) {
        (true, Some(at)) => format!(
            "propagated to every server after {} round(s); safe after {} (resolvers may hold the old answer until then)",
            report.rounds,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        (true, None) => format!("propagated after {} round(s)", report.rounds),
        (false, _) => format!(
            "NOT propagated after {} round(s): timed out waiting for",
            report.rounds
        ),
    }
}

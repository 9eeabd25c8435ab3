//! How long a host's rate limits make a run take, said before the run starts
//! ("1,000 zones at 5 requests/s: about 7 minutes"), so that a long paced run is
//! not mistaken for a hung one. The requests themselves are paced in the
//! providers crate ([`maildns_providers::pace`]); this only counts them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use maildns_providers::pace::{Estimate, estimate};
use maildns_providers::{RateMethods, RateScope};

use crate::accounts::Providers;
use crate::config::Domain;

use super::Mode;

/// Pacing is said to dominate a run when it alone takes at least this long...
const AT_LEAST: Duration = Duration::from_secs(2);
/// ...and the binding limit is slower than the account's requests in flight
/// would go at this many requests per second each (a cloud API answers in
/// about 100 ms).
const UNPACED_PER_REQUEST_IN_FLIGHT: f64 = 10.0;

/// One account's expected duration under its host's rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    /// The account.
    pub account: String,
    /// Zones the run works in on that account.
    pub zones: usize,
    /// What the binding limit makes the run take.
    pub estimate: Estimate,
}

impl fmt::Display for Pacing {
    /// `1,000 zones at 5 requests/s: about 7 minutes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.estimate.limit;
        let what = match l.methods {
            RateMethods::All => "requests",
            RateMethods::Writes => "writes",
            RateMethods::Reads => "reads",
        };
        let per = match l.per.as_secs() {
            1 => format!("{} {what}/s", thousands(l.requests as usize)),
            s => format!(
                "{} {what} per {}",
                thousands(l.requests as usize),
                window(s)
            ),
        };
        let scope = match l.scope {
            RateScope::Account => "",
            RateScope::Zone => " per zone",
        };
        write!(
            f,
            "{} zones at {per}{scope}: about {}",
            thousands(self.zones),
            about(self.estimate.duration)
        )
    }
}

/// The accounts whose rate limits dominate a run of `domains` in `mode` (plan:
/// reads only; apply: taken as a change in every zone), with what each makes
/// the run take. Accounts missing from `providers` are left out.
pub fn expected(domains: &[&Domain], providers: &Providers, mode: Mode) -> Vec<Pacing> {
    // Per account, per zone: (reads, writes).
    let mut by_account: BTreeMap<&str, BTreeMap<String, (usize, usize)>> = BTreeMap::new();
    for d in domains {
        let Some(p) = providers.get(&d.account) else {
            continue;
        };
        let names = usize::from(d.spf.is_some())
            + usize::from(d.dmarc.is_some())
            + usize::from(d.dkim.is_some())
            + usize::from(d.adsp.is_some());
        let names = names.max(1);
        let changed = if mode == Mode::Apply { names } else { 0 };
        let mut r = p.requests_per_zone(names, changed);
        let zone = d.zone.as_ref().unwrap_or(&d.name);
        if d.zone.is_none() && p.zone_for(zone).is_none() {
            r.reads += 1; // finding the zone
        }
        let e = by_account
            .entry(d.account.as_str())
            .or_default()
            .entry(zone.to_string())
            .or_default();
        e.0 += r.reads;
        e.1 += r.writes;
    }
    let mut out = Vec::new();
    for (account, zones) in by_account {
        let Some(p) = providers.get(account) else {
            continue;
        };
        let n = zones.len();
        let reads = zones.values().map(|z| z.0).sum::<usize>().div_ceil(n);
        let writes = zones.values().map(|z| z.1).sum::<usize>().div_ceil(n);
        let profile = p.profile();
        let Some(estimate) = estimate(&profile.rate_limits, n, reads, writes) else {
            continue;
        };
        let unpaced = profile.concurrency.max(1) as f64 * UNPACED_PER_REQUEST_IN_FLIGHT;
        if estimate.duration >= AT_LEAST && estimate.limit.per_second() < unpaced {
            out.push(Pacing {
                account: account.to_string(),
                zones: n,
                estimate,
            });
        }
    }
    out
}

/// `1234567` -> `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A window in words: `minute`, `5 minutes`, `hour`, `day`, `90 seconds`.
fn window(secs: u64) -> String {
    let unit = |n: u64, one: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("{n} {one}s")
        }
    };
    match secs {
        s if s % 86_400 == 0 => unit(s / 86_400, "day"),
        s if s % 3_600 == 0 => unit(s / 3_600, "hour"),
        s if s % 60 == 0 => unit(s / 60, "minute"),
        s => unit(s, "second"),
    }
}

/// A duration rounded for a person: seconds under 90 s, minutes under 90
/// minutes, then hours.
fn about(d: Duration) -> String {
    let s = d.as_secs_f64();
    let (n, unit) = if s < 90.0 {
        (s.round(), "second")
    } else if s < 90.0 * 60.0 {
        ((s / 60.0).round(), "minute")
    } else {
        ((s / 3600.0).round(), "hour")
    };
    let n = n.max(1.0) as u64;
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maildns_providers::RateLimit;

    fn line(zones: usize, limit: RateLimit, secs: u64) -> String {
        Pacing {
            account: "a".into(),
            zones,
            estimate: Estimate {
                duration: Duration::from_secs(secs),
                limit,
                requests: 0,
            },
        }
        .to_string()
    }

    #[test]
    fn the_line_reads_like_the_issue_says() {
        let r53 = RateLimit::account(5, Duration::from_secs(1));
        let e = estimate(&[r53], 1000, 1, 1).unwrap();
        assert_eq!(
            line(1000, r53, e.duration.as_secs()),
            "1,000 zones at 5 requests/s: about 7 minutes"
        );
        let cf = RateLimit::account(1200, Duration::from_secs(300));
        assert_eq!(
            line(12_345, cf, 3 * 3600 + 100),
            "12,345 zones at 1,200 requests per 5 minutes: about 3 hours"
        );
        let desec = RateLimit {
            requests: 15,
            per: Duration::from_secs(60),
            scope: RateScope::Zone,
            methods: RateMethods::Writes,
        };
        assert_eq!(
            line(3, desec, 45),
            "3 zones at 15 writes per minute per zone: about 45 seconds"
        );
    }
}

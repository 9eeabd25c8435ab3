//! Pure rules: what came back compared with what was sent, and what key size to use.

use maildns_providers::{Profile, TxtRecord};
use serde::Serialize;

use super::probes::{Probe, ProbeKind};

/// How one observation (the API's readback, or one server's answer) compares with
/// the record sent. The rules, in order, are in [`classify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Same character-strings, same order.
    StoredAsSent,
    /// Same value, several strings sent, one string back.
    StringsMerged,
    /// Same value, re-split into 255-byte strings (not the split sent).
    AutoSplit,
    /// Same value, split into strings some other way.
    SplitDifferently,
    /// The value came back as several TXT records instead of one.
    SeveralRecords {
        /// How many records.
        records: usize,
    },
    /// Only the beginning of the value came back.
    Truncated {
        /// Bytes kept.
        kept: usize,
        /// Bytes sent.
        sent: usize,
    },
    /// Different bytes came back.
    Altered {
        /// Offset of the first differing byte of the value.
        at: usize,
    },
    /// The write was accepted but nothing is there.
    Missing,
    /// The host refused the write.
    Rejected {
        /// The host's own message.
        message: String,
    },
    /// maildns's declared profile of the host refuses the record; nothing was sent.
    RefusedByProfile {
        /// Why.
        reason: String,
    },
    /// Not looked at (no server to ask, or the query failed).
    NotChecked {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// True when the value survived in one record (the split may differ, which
    /// verifiers do not see: they join the strings).
    pub fn intact(&self) -> bool {
        matches!(
            self,
            Verdict::StoredAsSent
                | Verdict::StringsMerged
                | Verdict::AutoSplit
                | Verdict::SplitDifferently
        )
    }

    /// A short human label.
    pub fn label(&self) -> String {
        match self {
            Verdict::StoredAsSent => "stored as sent".into(),
            Verdict::StringsMerged => "strings merged".into(),
            Verdict::AutoSplit => "auto-split (255)".into(),
            Verdict::SplitDifferently => "split differently".into(),
            Verdict::SeveralRecords { records } => format!("{records} records instead of one"),
            Verdict::Truncated { kept, sent } => format!("truncated ({kept} of {sent} bytes)"),
            Verdict::Altered { at } => format!("altered characters (from byte {at})"),
            Verdict::Missing => "missing".into(),
            Verdict::Rejected { message } => format!("rejected: {message}"),
            Verdict::RefusedByProfile { reason } => {
                format!("refused by maildns's declared profile: {reason}")
            }
            Verdict::NotChecked { reason } => format!("not checked: {reason}"),
        }
    }
}

/// Compares the records found at a probe's name with the one record sent:
///
/// 1. no record: [`Verdict::Missing`];
/// 2. more than one record: [`Verdict::SeveralRecords`];
/// 3. one record with the same strings: [`Verdict::StoredAsSent`];
/// 4. same joined value: one string where several were sent is
///    [`Verdict::StringsMerged`]; the greedy 255-byte split of the value is
///    [`Verdict::AutoSplit`]; any other split is [`Verdict::SplitDifferently`];
/// 5. a shorter value that is a prefix of the sent one: [`Verdict::Truncated`];
/// 6. anything else: [`Verdict::Altered`] at the first differing byte.
pub fn classify(sent: &TxtRecord, found: &[TxtRecord]) -> Verdict {
    let [one] = found else {
        return if found.is_empty() {
            Verdict::Missing
        } else {
            Verdict::SeveralRecords {
                records: found.len(),
            }
        };
    };
    if one == sent {
        return Verdict::StoredAsSent;
    }
    let (want, got) = (sent.value(), one.value());
    if want == got {
        return if one.strings().len() == 1 && sent.strings().len() > 1 {
            Verdict::StringsMerged
        } else if *one == TxtRecord::from_value(&want) {
            Verdict::AutoSplit
        } else {
            Verdict::SplitDifferently
        };
    }
    if got.len() < want.len() && want.starts_with(&got) {
        return Verdict::Truncated {
            kept: got.len(),
            sent: want.len(),
        };
    }
    let at = want
        .iter()
        .zip(got.iter())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.len().min(got.len()));
    Verdict::Altered { at }
}

/// The verdict of a probe as a whole: the API's when that is not intact, else the
/// first server verdict that is not intact (a server not checked does not count),
/// else the API's.
pub fn overall(api: &Verdict, served: &[Verdict]) -> Verdict {
    if !api.intact() {
        return api.clone();
    }
    served
        .iter()
        .find(|v| !v.intact() && !matches!(v, Verdict::NotChecked { .. }))
        .cloned()
        .unwrap_or_else(|| api.clone())
}

/// Where the declared profile and the observed behaviour disagree:
///
/// - a probe the profile accepted that did not come back intact (the profile
///   should have refused it);
/// - a probe whose strings came back re-split or merged by the API although the
///   profile declares `multi_string` without `auto_split`.
pub fn profile_differences(
    profile: &Profile,
    results: &[(&Probe, &Verdict, &Verdict)],
) -> Vec<String> {
    let mut out = Vec::new();
    for (probe, api, overall) in results {
        if matches!(overall, Verdict::RefusedByProfile { .. }) {
            continue;
        }
        if !overall.intact() {
            out.push(format!(
                "{}: the declared profile accepts it, but the host gave: {}",
                probe.id,
                overall.label()
            ));
        } else if profile.multi_string
            && !profile.auto_split
            && matches!(
                api,
                Verdict::StringsMerged | Verdict::AutoSplit | Verdict::SplitDifferently
            )
        {
            out.push(format!(
                "{}: the declared profile says strings are kept as sent, but the API gave: {}",
                probe.id,
                api.label()
            ));
        }
    }
    out
}

/// The advice drawn from the DKIM probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    /// Largest RSA size in bits whose record round-tripped intact (API and every server).
    pub largest_intact_bits: Option<u32>,
    /// What to store for `publish`: `None` when 4096 bits round-trips (no limit
    /// found), else the largest intact size, never below 1024 (RFC 8301).
    pub recommended_max_bits: Option<u32>,
    /// In words.
    pub text: String,
}

/// Chooses the key size: the largest DKIM probe whose overall verdict is intact,
/// scanning 1024, 2048, 4096 and stopping at the first that is not (a larger key
/// is never recommended past a failed smaller one). The text names the failure
/// that set the limit, and how the host keeps the split.
pub fn recommend(results: &[(&Probe, &Verdict)]) -> Recommendation {
    let mut dkim: Vec<(u32, &Verdict)> = results
        .iter()
        .filter_map(|(p, v)| match p.kind {
            ProbeKind::Dkim { bits } => Some((bits, *v)),
            _ => None,
        })
        .collect();
    dkim.sort_by_key(|(b, _)| *b);
    let mut largest: Option<(u32, &Verdict)> = None;
    let mut limit: Option<(u32, &Verdict)> = None;
    for (bits, v) in &dkim {
        if v.intact() {
            largest = Some((*bits, v));
        } else {
            limit = Some((*bits, v));
            break;
        }
    }
    let why = limit.map(|(bits, v)| match v {
        Verdict::Truncated { kept, sent } => {
            format!("the host truncates records over {kept} bytes ({sent}-byte {bits}-bit record)")
        }
        Verdict::Rejected { message } => {
            format!("the host rejects the {bits}-bit record ({message})")
        }
        Verdict::RefusedByProfile { reason } => {
            format!("maildns's declared profile refuses the {bits}-bit record ({reason})")
        }
        other => format!("the {bits}-bit record came back {}", other.label()),
    });
    let split = |v: &Verdict| match v {
        Verdict::StoredAsSent => "split into 255-byte strings (kept as sent)",
        Verdict::StringsMerged | Verdict::AutoSplit | Verdict::SplitDifferently => {
            "the host re-splits the value itself"
        }
        _ => "",
    };
    match largest {
        Some((bits, v)) => {
            let mut text = format!("{bits}-bit, {}", split(v));
            if let Some(w) = why {
                text = format!("{bits}-bit: {w}; {}", split(v));
            }
            Recommendation {
                largest_intact_bits: Some(bits),
                recommended_max_bits: if bits >= 4096 { None } else { Some(bits) },
                text,
            }
        }
        None => Recommendation {
            largest_intact_bits: None,
            recommended_max_bits: Some(1024),
            text: format!(
                "no DKIM record round-trips intact{}; keys are capped at 1024 bits, the smallest allowed, but this host cannot hold them as published",
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(parts: &[&str]) -> TxtRecord {
        TxtRecord::from_parts(parts).unwrap()
    }

    #[test]
    fn each_rule() {
        let sent = rec(&["abc", "def"]);
        assert_eq!(classify(&sent, &[]), Verdict::Missing);
        assert_eq!(
            classify(&sent, &[rec(&["abc"]), rec(&["def"])]),
            Verdict::SeveralRecords { records: 2 }
        );
        assert_eq!(
            classify(&sent, std::slice::from_ref(&sent)),
            Verdict::StoredAsSent
        );
        assert_eq!(classify(&sent, &[rec(&["abcdef"])]), Verdict::StringsMerged);
        assert_eq!(
            classify(&sent, &[rec(&["ab", "cdef"])]),
            Verdict::SplitDifferently
        );
        let long = TxtRecord::split(
            format!("v=1; p={}", "x".repeat(300)).as_bytes(),
            maildns_providers::Split::Before(b"p="),
        );
        let greedy = TxtRecord::from_value(long.value());
        assert_eq!(classify(&long, &[greedy]), Verdict::AutoSplit);
        assert_eq!(
            classify(&sent, &[rec(&["abc"])]),
            Verdict::Truncated { kept: 3, sent: 6 }
        );
        assert_eq!(
            classify(&sent, &[rec(&["abX", "def"])]),
            Verdict::Altered { at: 2 }
        );
        assert_eq!(
            classify(&sent, &[rec(&["abc", "def", "g"])]),
            Verdict::Altered { at: 6 }
        );
    }

    #[test]
    fn overall_prefers_the_first_failure() {
        let bad = Verdict::Truncated { kept: 1, sent: 2 };
        let skip = Verdict::NotChecked { reason: "x".into() };
        assert_eq!(
            overall(&Verdict::StoredAsSent, &[skip.clone(), bad.clone()]),
            bad
        );
        assert_eq!(
            overall(&Verdict::StoredAsSent, &[skip]),
            Verdict::StoredAsSent
        );
        assert_eq!(overall(&Verdict::Missing, &[]), Verdict::Missing);
    }

    #[test]
    fn recommendation_stops_at_the_first_failure() {
        let zone = maildns_providers::Fqdn::parse("example.com").unwrap();
        let probes = super::super::probes::probes(&zone).unwrap();
        let dkim: Vec<&Probe> = probes
            .iter()
            .filter(|p| matches!(p.kind, ProbeKind::Dkim { .. }))
            .collect();
        let ok = Verdict::StoredAsSent;
        let trunc = Verdict::Truncated {
            kept: 512,
            sent: 754,
        };
        let r = recommend(&[(dkim[0], &ok), (dkim[1], &ok), (dkim[2], &ok)]);
        assert_eq!(r.largest_intact_bits, Some(4096));
        assert_eq!(r.recommended_max_bits, None);
        let r = recommend(&[(dkim[0], &ok), (dkim[1], &ok), (dkim[2], &trunc)]);
        assert_eq!(r.recommended_max_bits, Some(2048));
        assert!(
            r.text.contains("truncates records over 512 bytes"),
            "{}",
            r.text
        );
        let r = recommend(&[(dkim[0], &trunc), (dkim[1], &ok), (dkim[2], &ok)]);
        assert_eq!(r.largest_intact_bits, None);
        assert_eq!(r.recommended_max_bits, Some(1024));
    }
}

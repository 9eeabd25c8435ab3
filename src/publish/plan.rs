//! The plan: a pure diff of what should be published against what a host holds.
//!
//! maildns owns only its own values at a name (v=spf1 at the domain, v=DMARC1 at
//! `_dmarc`, v=DKIM1 at its selectors, dkim= at `_adsp._domainkey`); every other
//! value at the same name is carried into the new set byte for byte, in order.
//! Values are compared joined (what verifiers read), so a host that re-splits a
//! long value does not show as a change.

use std::collections::BTreeMap;

use maildns_providers::{Fqdn, TxtRecord, TxtSet};
use serde::Serialize;

use crate::records::RecordKind;

/// What should be at one name: the values maildns owns there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The name.
    pub name: Fqdn,
    /// Which kind of value maildns owns here.
    pub kind: RecordKind,
    /// The owned values wanted (empty: remove maildns's values from this name).
    pub records: Vec<TxtRecord>,
    /// TTL in seconds to use when maildns's values are alone at the name.
    pub ttl: u32,
    /// For DKIM: this selector's key signs mail now, so its record must never be removed.
    pub in_use: bool,
    /// A retraction (with empty `records`): remove only these values, the ones
    /// maildns published (see [`super::ledger`]); other values of the kind at
    /// the name are kept like foreign ones. `None`: maildns owns every value of
    /// the kind at the name.
    pub only_remove: Option<Vec<TxtRecord>>,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// maildns's value is not there yet.
    Create,
    /// maildns's value is there, different.
    Update,
    /// maildns's value is there and should go.
    Delete,
}

/// One change at one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The name.
    pub name: Fqdn,
    /// Kind of value.
    pub kind: RecordKind,
    /// What happens.
    pub action: Action,
    /// maildns's values there now.
    pub old: Vec<TxtRecord>,
    /// maildns's values afterwards.
    pub new: Vec<TxtRecord>,
    /// Values maildns does not own, kept as they are.
    pub foreign: Vec<TxtRecord>,
    /// The whole set to write (empty records: delete the set).
    pub write: TxtSet,
    /// The set's TTL in seconds at the host now (`None`: nothing at the name). With
    /// `write.ttl` it shows a TTL change, also one that changes no value.
    pub old_ttl: Option<u32>,
}

impl Change {
    /// The TTL change `(old, new)` of a set that is written (not deleted), when
    /// the TTL changes (RFC 2181 §5.2: the TTL belongs to the whole RRset).
    pub fn ttl_change(&self) -> Option<(u32, u32)> {
        match self.old_ttl {
            Some(old) if old != self.write.ttl && !self.write.records.is_empty() => {
                Some((old, self.write.ttl))
            }
            _ => None,
        }
    }

    /// True when maildns's values stay the same (in any order): an update
    /// that only changes the TTL.
    pub fn same_values(&self) -> bool {
        let mut a: Vec<Vec<u8>> = self.old.iter().map(|r| r.value()).collect();
        let mut b: Vec<Vec<u8>> = self.new.iter().map(|r| r.value()).collect();
        a.sort();
        b.sort();
        a == b
    }
}

/// A name whose RRset keeps a TTL other than the configured one because values
/// maildns does not own share the set: an RRset has one TTL (RFC 2181 §5.2),
/// and maildns never changes what it does not own, so its values take the
/// set's TTL. The configured TTL applies once maildns's values are alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TtlKept {
    /// The name.
    pub name: Fqdn,
    /// Kind of maildns's value there.
    pub kind: RecordKind,
    /// The set's TTL, kept (seconds).
    pub ttl: u32,
    /// The configured TTL (seconds).
    pub configured: u32,
    /// How many values maildns does not own share the set.
    pub foreign: usize,
}

impl std::fmt::Display for TtlKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} TXT {}: TTL {} kept, not the configured {}: {} value(s) maildns does not own share the RRset, which has one TTL (RFC 2181 §5.2)",
            self.name,
            self.kind.label(),
            self.ttl,
            self.configured,
            self.foreign
        )
    }
}

/// A problem that stops a domain's plan before any write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Several values of a kind that must be unique (RFC 7208 §4.5: two SPF records is a permerror).
    #[error(
        "{name} holds {count} {kind} values: {}; only one is allowed — remove the extra ones at the DNS host first",
        quote_all(values)
    )]
    Duplicate {
        /// The name.
        name: String,
        /// Which kind.
        kind: &'static str,
        /// How many.
        count: usize,
        /// Each value, in full (the message shortens long ones in the middle).
        values: Vec<String>,
    },
    /// A change would remove the record of the key that signs mail.
    #[error("refusing to remove {name}: its key is the one in use for signing")]
    KeyInUse {
        /// The selector name.
        name: String,
    },
}

/// Changes for one domain, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The changes; names already in sync have none.
    pub changes: Vec<Change>,
    /// Names already in sync.
    pub in_sync: usize,
    /// Names (changed or in sync) whose set keeps a TTL other than the
    /// configured one, and why.
    pub ttl_kept: Vec<TtlKept>,
}

impl Plan {
    /// True when nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Number of changes that delete maildns values.
    pub fn deletions(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .count()
    }
}

fn unique(kind: RecordKind) -> bool {
    matches!(kind, RecordKind::Spf | RecordKind::Dmarc | RecordKind::Adsp)
}

/// Diffs `desired` against `current` (what the host holds at each name; a name
/// missing from the map holds nothing).
///
/// # Errors
/// [`PlanError::Duplicate`] when a name holds several values of a kind that must be
/// unique (SPF, DMARC, ADSP); [`PlanError::KeyInUse`] when the plan would remove
/// the record of a key in use for signing. Nothing is written in either case.
pub fn plan(
    desired: &[Desired],
    current: &BTreeMap<Fqdn, Option<TxtSet>>,
) -> Result<Plan, PlanError> {
    let mut out = Plan::default();
    for d in desired {
        let cur = current.get(&d.name).cloned().flatten();
        let (owned, foreign): (Vec<TxtRecord>, Vec<TxtRecord>) = cur
            .as_ref()
            .map(|s| {
                s.records.iter().cloned().partition(|r| {
                    d.kind.owns(r)
                        && d.only_remove
                            .as_ref()
                            .is_none_or(|only| only.iter().any(|o| o.value() == r.value()))
                })
            })
            .unwrap_or_default();
        for values in [&owned, &d.records] {
            if unique(d.kind) && values.len() > 1 {
                return Err(PlanError::Duplicate {
                    name: d.name.to_string(),
                    kind: d.kind.label(),
                    count: values.len(),
                    values: values.iter().map(TxtRecord::value_escaped).collect(),
                });
            }
        }
        let same_values = {
            let mut a: Vec<Vec<u8>> = owned.iter().map(TxtRecord::value).collect();
            let mut b: Vec<Vec<u8>> = d.records.iter().map(TxtRecord::value).collect();
            a.sort();
            b.sort();
            a == b
        };
        // With foreign values the set keeps its TTL (see `TtlKept`).
        let ttl = match &cur {
            Some(s) if !foreign.is_empty() => s.ttl,
            _ => d.ttl,
        };
        if ttl != d.ttl && !d.records.is_empty() {
            out.ttl_kept.push(TtlKept {
                name: d.name.clone(),
                kind: d.kind,
                ttl,
                configured: d.ttl,
                foreign: foreign.len(),
            });
        }
        let ttl_changes = matches!(&cur, Some(s) if foreign.is_empty() && !owned.is_empty() && !d.records.is_empty() && s.ttl != d.ttl);
        if same_values && !ttl_changes {
            out.in_sync += 1;
            continue;
        }
        let action = if d.records.is_empty() {
            Action::Delete
        } else if owned.is_empty() {
            Action::Create
        } else {
            Action::Update
        };
        if action == Action::Delete && d.in_use {
            return Err(PlanError::KeyInUse {
                name: d.name.to_string(),
            });
        }
        let mut records = foreign.clone();
        records.extend(d.records.iter().cloned());
        out.changes.push(Change {
            name: d.name.clone(),
            kind: d.kind,
            action,
            old: owned,
            new: d.records.clone(),
            foreign,
            write: TxtSet { ttl, records },
            old_ttl: cur.as_ref().map(|s| s.ttl),
        });
    }
    Ok(out)
}

/// Each value in double quotes, shortened in the middle when long, comma-separated.
pub fn quote_all(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("\"{}\"", shorten(v, 80)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shortens a long value in the middle for display: `v=DKIM1; k=rsa; p=MIIBIj…IDAQAB`.
pub fn shorten(value: &str, max: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= max || max < 5 {
        return value.to_string();
    }
    let keep = max - 1;
    let head = keep * 2 / 3;
    let tail = keep - head;
    let mut s: String = chars[..head].iter().collect();
    s.push('…');
    s.extend(&chars[chars.len() - tail..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Fqdn {
        Fqdn::parse(s).unwrap()
    }
    fn r(s: &str) -> TxtRecord {
        TxtRecord::from_value(s)
    }
    fn desired(name: &str, kind: RecordKind, values: &[&str]) -> Desired {
        Desired {
            name: f(name),
            kind,
            records: values.iter().map(|v| r(v)).collect(),
            ttl: 3600,
            in_use: false,
            only_remove: None,
        }
    }
    fn current(entries: &[(&str, &[&str])]) -> BTreeMap<Fqdn, Option<TxtSet>> {
        entries
            .iter()
            .map(|(n, vs)| {
                (
                    f(n),
                    Some(TxtSet {
                        ttl: 300,
                        records: vs.iter().map(|v| r(v)).collect(),
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn create_beside_foreign_values_keeps_them_first_and_intact() {
        let cur = current(&[("example.com", &["google-site-verification=x", "MS=ms123"])]);
        let p = plan(
            &[desired("example.com", RecordKind::Spf, &["v=spf1 -all"])],
            &cur,
        )
        .unwrap();
        let c = &p.changes[0];
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.foreign.len(), 2);
        assert_eq!(
            c.write.records,
            vec![
                r("google-site-verification=x"),
                r("MS=ms123"),
                r("v=spf1 -all")
            ]
        );
        assert_eq!(c.write.ttl, 300, "foreign values keep the set's TTL");
    }

    #[test]
    fn in_sync_when_values_equal_even_if_split_differs() {
        let long = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(392);
        let resplit = TxtRecord::split_max(long.as_bytes(), 100);
        let mut cur = BTreeMap::new();
        cur.insert(
            f("s._domainkey.example.com"),
            Some(TxtSet {
                ttl: 3600,
                records: vec![resplit],
            }),
        );
        let p = plan(
            &[desired(
                "s._domainkey.example.com",
                RecordKind::Dkim,
                &[&long],
            )],
            &cur,
        )
        .unwrap();
        assert!(p.is_empty());
        assert_eq!(p.in_sync, 1);
    }

    #[test]
    fn update_replaces_only_ours() {
        let cur = current(&[("example.com", &["v=spf1 a -all", "foreign"])]);
        let p = plan(
            &[desired("example.com", RecordKind::Spf, &["v=spf1 mx -all"])],
            &cur,
        )
        .unwrap();
        let c = &p.changes[0];
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.old, vec![r("v=spf1 a -all")]);
        assert_eq!(c.write.records, vec![r("foreign"), r("v=spf1 mx -all")]);
    }

    #[test]
    fn two_spf_values_is_an_error_before_any_write() {
        let cur = current(&[("example.com", &["v=spf1 a -all", "V=SPF1 mx -all"])]);
        let e = plan(
            &[desired("example.com", RecordKind::Spf, &["v=spf1 -all"])],
            &cur,
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::Duplicate { count: 2, .. }));
        assert_eq!(
            e.to_string(),
            "example.com holds 2 SPF values: \"v=spf1 a -all\", \"V=SPF1 mx -all\"; only one is allowed — remove the extra ones at the DNS host first"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["Duplicate"]["values"],
            serde_json::json!(["v=spf1 a -all", "V=SPF1 mx -all"])
        );
    }

    /// The same kind for DMARC, and long values: each is quoted, shortened in
    /// the middle in the message, in full in the JSON.
    #[test]
    fn duplicate_dmarc_values_are_named_long_ones_shortened() {
        let long = format!(
            "v=DMARC1; p=reject; rua=mailto:{}@example.com; fo=1",
            "r".repeat(120)
        );
        let cur = current(&[("_dmarc.example.com", &["v=DMARC1; p=none", &long, "other"])]);
        let e = plan(
            &[desired(
                "_dmarc.example.com",
                RecordKind::Dmarc,
                &["v=DMARC1; p=none"],
            )],
            &cur,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("_dmarc.example.com holds 2 DMARC values: \"v=DMARC1; p=none\", \"v=DMARC1; p=reject; rua=mailto:rrr"),
            "{msg}"
        );
        assert!(
            msg.contains("…rrrrrrrrr@example.com; fo=1\"; only one"),
            "{msg}"
        );
        assert!(!msg.contains(&long), "{msg}");
        assert!(!msg.contains("other"), "{msg}");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["Duplicate"]["values"][1], long.as_str());
    }

    #[test]
    fn delete_leaves_foreign_and_refuses_key_in_use() {
        let cur = current(&[("old._domainkey.example.com", &["v=DKIM1; p=abc", "note"])]);
        let mut d = desired("old._domainkey.example.com", RecordKind::Dkim, &[]);
        let p = plan(std::slice::from_ref(&d), &cur).unwrap();
        assert_eq!(p.changes[0].action, Action::Delete);
        assert_eq!(p.changes[0].write.records, vec![r("note")]);
        assert_eq!(p.deletions(), 1);
        d.in_use = true;
        assert!(matches!(plan(&[d], &cur), Err(PlanError::KeyInUse { .. })));
    }

    #[test]
    fn delete_of_absent_value_is_no_change() {
        let p = plan(
            &[desired(
                "_adsp._domainkey.example.com",
                RecordKind::Adsp,
                &[],
            )],
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn ttl_change_on_our_own_set_is_an_update() {
        let cur = current(&[("_dmarc.example.com", &["v=DMARC1; p=none"])]);
        let p = plan(
            &[desired(
                "_dmarc.example.com",
                RecordKind::Dmarc,
                &["v=DMARC1; p=none"],
            )],
            &cur,
        )
        .unwrap();
        assert_eq!(p.changes[0].action, Action::Update);
        assert_eq!(p.changes[0].write.ttl, 3600);
        assert_eq!(p.changes[0].old_ttl, Some(300));
        assert!(p.ttl_kept.is_empty());
    }

    /// The issue's example: a foreign value at the apex at TTL 300, `ttl = 3600`
    /// configured. The RRset keeps 300 (it has one TTL, RFC 2181 §5.2, and the
    /// foreign value is not maildns's), and the plan says so — before the
    /// write and once in sync.
    #[test]
    fn foreign_values_keep_the_sets_ttl_and_the_plan_says_so() {
        let cur = current(&[("example.com", &["google-site-verification=x"])]);
        let want = desired("example.com", RecordKind::Spf, &["v=spf1 -all"]);
        let p = plan(std::slice::from_ref(&want), &cur).unwrap();
        assert_eq!(p.changes[0].action, Action::Create);
        assert_eq!(p.changes[0].write.ttl, 300);
        let kept = TtlKept {
            name: f("example.com"),
            kind: RecordKind::Spf,
            ttl: 300,
            configured: 3600,
            foreign: 1,
        };
        assert_eq!(p.ttl_kept, vec![kept.clone()]);
        assert_eq!(
            kept.to_string(),
            "example.com TXT SPF: TTL 300 kept, not the configured 3600: 1 value(s) maildns does not own share the RRset, which has one TTL (RFC 2181 §5.2)"
        );
        // After publishing: in sync, and still explained.
        let cur = current(&[(
            "example.com",
            &["google-site-verification=x", "v=spf1 -all"],
        )]);
        let p = plan(std::slice::from_ref(&want), &cur).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.in_sync, 1);
        assert_eq!(p.ttl_kept, vec![kept]);
        // At the configured TTL already: nothing to say.
        let mut cur = cur;
        if let Some(Some(s)) = cur.get_mut(&f("example.com")) {
            s.ttl = 3600;
        }
        assert!(plan(&[want], &cur).unwrap().ttl_kept.is_empty());
    }

    #[test]
    fn shorten_keeps_both_ends() {
        let s = shorten(&format!("v=DKIM1; p={}END", "A".repeat(300)), 40);
        assert_eq!(s.chars().count(), 40);
        assert!(s.starts_with("v=DKIM1; p=AAA"));
        assert!(s.ends_with("END"));
        assert_eq!(shorten("short", 40), "short");
    }
}

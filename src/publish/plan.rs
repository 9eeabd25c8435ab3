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
    /// TTL to use when maildns's values are alone at the name.
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
}

/// A problem that stops a domain's plan before any write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Several values of a kind that must be unique (RFC 7208 §4.5: two SPF records is a permerror).
    #[error(
        "{name} holds {count} {kind} values; only one is allowed — remove the extra one at the DNS host first"
    )]
    Duplicate {
        /// The name.
        name: String,
        /// Which kind.
        kind: &'static str,
        /// How many.
        count: usize,
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
        if unique(d.kind) && owned.len() > 1 {
            return Err(PlanError::Duplicate {
                name: d.name.to_string(),
                kind: d.kind.label(),
                count: owned.len(),
            });
        }
        if unique(d.kind) && d.records.len() > 1 {
            return Err(PlanError::Duplicate {
                name: d.name.to_string(),
                kind: d.kind.label(),
                count: d.records.len(),
            });
        }
        let same_values = {
            let mut a: Vec<Vec<u8>> = owned.iter().map(TxtRecord::value).collect();
            let mut b: Vec<Vec<u8>> = d.records.iter().map(TxtRecord::value).collect();
            a.sort();
            b.sort();
            a == b
        };
        let ttl = match &cur {
            Some(s) if !foreign.is_empty() => s.ttl,
            _ => d.ttl,
        };
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
        });
    }
    Ok(out)
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
        assert!(e.to_string().contains("example.com holds 2 SPF values"));
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

//! What `publish --wait` watches: for every change of a plan, the values that must
//! now be served (creates, updates) and the old values that must be gone (updates
//! that replace a value, deletes). Kept here rather than in `propagation` so the
//! dependency points down (publish -> propagation).

use crate::propagation::Check;

use super::plan::{Action, Plan};

/// The propagation checks that show `plan`'s changes are served.
///
/// For each change: `Present(v)` for every new value, `Absent(v)` for every old
/// value not among the new ones (compared joined, as verifiers read them). An
/// update's checks carry the set's TTL as the previous TTL (hosts keep a set's
/// TTL when its values change); a create has none (the negative-caching TTL
/// applies) and a delete uses the TTLs observed while the value was served.
pub fn checks_for_plan(plan: &Plan) -> Vec<Check> {
    let mut out = Vec::new();
    for change in &plan.changes {
        let previous_ttl = match change.action {
            Action::Update => Some(change.write.ttl),
            Action::Create | Action::Delete => None,
        };
        let with_ttl = |c: Check| match previous_ttl {
            Some(t) => c.with_previous_ttl(t),
            None => c,
        };
        for new in &change.new {
            out.push(with_ttl(Check::present(change.name.clone(), new.clone())));
        }
        for old in &change.old {
            let value = old.value();
            if !change.new.iter().any(|n| n.value() == value) {
                out.push(with_ttl(Check::absent(change.name.clone(), old.clone())));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::Expectation;
    use crate::publish::plan::Change;
    use crate::records::RecordKind;
    use maildns_providers::{Fqdn, TxtRecord, TxtSet};

    fn change(action: Action, old: &[&str], new: &[&str]) -> Change {
        let recs = |v: &[&str]| v.iter().map(TxtRecord::from_value).collect::<Vec<_>>();
        Change {
            name: Fqdn::parse("example.test").unwrap(),
            kind: RecordKind::Spf,
            action,
            old: recs(old),
            new: recs(new),
            foreign: vec![],
            write: TxtSet {
                ttl: 600,
                records: recs(new),
            },
            old_ttl: None,
        }
    }

    #[test]
    fn creates_updates_and_deletes_become_present_and_absent_checks() {
        let plan = Plan {
            changes: vec![
                change(Action::Create, &[], &["v=spf1 -all"]),
                change(Action::Update, &["v=spf1 a -all"], &["v=spf1 mx -all"]),
                change(Action::Delete, &["dkim=all"], &[]),
            ],
            in_sync: 0,
            ttl_kept: Vec::new(),
        };
        let checks = checks_for_plan(&plan);
        let got: Vec<(bool, String, Option<u32>)> = checks
            .iter()
            .map(|c| {
                (
                    matches!(c.expectation, Expectation::Present(_)),
                    c.expectation.record().value_lossy(),
                    c.previous_ttl,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (true, "v=spf1 -all".to_string(), None),
                (true, "v=spf1 mx -all".to_string(), Some(600)),
                (false, "v=spf1 a -all".to_string(), Some(600)),
                (false, "dkim=all".to_string(), None),
            ]
        );
    }

    #[test]
    fn an_update_that_only_resplits_keeps_no_absent_check() {
        let plan = Plan {
            changes: vec![change(Action::Update, &["v=spf1 -all"], &["v=spf1 -all"])],
            in_sync: 0,
            ttl_kept: Vec::new(),
        };
        let checks = checks_for_plan(&plan);
        assert_eq!(checks.len(), 1);
        assert!(matches!(checks[0].expectation, Expectation::Present(_)));
    }
}

//! The change-set cases of the conformance suite
//! ([`maildns_providers::Provider::read_sets`],
//! [`maildns_providers::Provider::apply`]), written against the trait only so
//! they hold for every adapter, whatever its [`ApplyTraits`]:
//!
//! - `read_sets` returns one entry per name asked (duplicates once), present and
//!   absent sets alike, as `read_txt` would;
//! - a change set of creations, a multi-record set and a deletion lands whole;
//!   **applying the same change set again** succeeds and leaves the same state;
//! - **a concurrent foreign edit** between `read_sets` and `apply` (another tool
//!   adding a value at the same name, played here with the adapter's own
//!   `replace_txt`) is never lost: a compare-and-swap adapter refuses with
//!   [`ErrorKind::Conflict`]; any other adapter refuses likewise or keeps the
//!   value; after the caller's re-read, re-plan and retry both the foreign value
//!   and ours are there. (An adapter that documents an unguarded apply,
//!   [`super::Options::unguarded_apply`], may overwrite it; the case then checks
//!   that the retry loop still ends with our value written.)
//! - **atomicity and partial failure**: a change set whose second change must
//!   fail (an RRset that is not as the change claims it was read, and the
//!   caller's [`super::Options::refused_name`] when given) writes nothing when
//!   the adapter declares `atomic`, and otherwise reports in
//!   [`ApplyError::written`] exactly the names it wrote, checked by reading each
//!   name back.

use maildns_providers::changeset::same_content;
use maildns_providers::{
    ApplyError, ApplyTraits, Fqdn, Observed, TxtChange, TxtRecord, TxtSet, ZoneSets,
};

use super::{Suite, diff_records, list, served_form, strings};

/// How many times the concurrent-edit case re-reads, re-plans and retries.
const RETRIES: usize = 3;

impl Suite<'_> {
    /// Every change-set case.
    pub(super) async fn change_sets(&mut self) {
        self.read_sets_case().await;
        self.apply_case().await;
        self.concurrent_edit_case(true).await;
        self.concurrent_edit_case(false).await;
        self.failing_change_cases().await;
    }

    fn traits(&self) -> ApplyTraits {
        self.p.apply_traits()
    }

    async fn read_sets_of(&mut self, case: &str, names: &[Fqdn]) -> Option<ZoneSets> {
        match self.p.read_sets(self.zone, names).await {
            Ok(s) => Some(s),
            Err(e) => {
                let at = names.first().map(Fqdn::to_string).unwrap_or_default();
                self.fail(case, &at, format!("read_sets failed: {e}"));
                None
            }
        }
    }

    /// The set at `name` now, through `read_txt`.
    async fn now(&mut self, case: &str, name: &Fqdn) -> Option<Option<TxtSet>> {
        match self.p.read_txt(self.zone, name).await {
            Ok(s) => Some(s),
            Err(e) => {
                self.fail(case, name.as_str(), format!("read_txt failed: {e}"));
                None
            }
        }
    }

    /// Checks the API holds `want` at `name` (nothing for `None`), as the host
    /// serves it (records compared as served, and the TTL).
    async fn expect_state(&mut self, case: &str, name: &Fqdn, want: Option<&TxtSet>) {
        match want.filter(|s| !s.records.is_empty()) {
            Some(set) => {
                self.verify(case, name, set).await;
            }
            None => self.expect_absent(case, name).await,
        }
    }

    async fn cleanup_all(&mut self, case: &str, names: &[Fqdn]) {
        for n in names {
            self.cleanup(case, n).await;
        }
    }

    async fn read_sets_case(&mut self) {
        let case = "change set: read_sets";
        let (Some(present), Some(absent)) =
            (self.name(case, "rs-present"), self.name(case, "rs-absent"))
        else {
            return;
        };
        let set = self.set(vec![
            TxtRecord::from_value(b"v=spf1 -all"),
            strings(&[b"google-site-verification=", b"abc"]),
        ]);
        if self.write_and_verify(case, &present, &set).await {
            let asked = [present.clone(), absent.clone(), present.clone()];
            if let Some(sets) = self.read_sets_of(case, &asked).await {
                if sets.len() != 2 {
                    self.fail(
                        case,
                        present.as_str(),
                        format!(
                            "asked 2 distinct names, got {} entries: {:?}",
                            sets.len(),
                            sets.keys().map(Fqdn::as_str).collect::<Vec<_>>()
                        ),
                    );
                }
                let expected: Vec<TxtRecord> = set
                    .records
                    .iter()
                    .map(|r| served_form(&self.profile, r))
                    .collect();
                match sets.get(&present).map(|o| o.set.as_ref()) {
                    Some(Some(got)) => {
                        if let Some(d) = diff_records(&expected, &got.records) {
                            self.fail(case, present.as_str(), format!("read_sets differs: {d}"));
                        }
                        if got.ttl != set.ttl {
                            self.fail(
                                case,
                                present.as_str(),
                                format!("read_sets TTL {}, wrote {}", got.ttl, set.ttl),
                            );
                        }
                    }
                    other => self.fail(
                        case,
                        present.as_str(),
                        format!("read_sets gave {other:?} for a name holding a set"),
                    ),
                }
                match sets.get(&absent) {
                    Some(o) if o.set.as_ref().is_none_or(|s| s.records.is_empty()) => {}
                    other => self.fail(
                        case,
                        absent.as_str(),
                        format!("read_sets gave {other:?} for a name without a set"),
                    ),
                }
            }
        }
        self.cleanup(case, &present).await;
        match self.read_sets_of(case, &[]).await {
            Some(s) if s.is_empty() => {}
            Some(s) => self.fail(
                case,
                self.base.to_string().as_str(),
                format!("read_sets of no name gave {} entries", s.len()),
            ),
            None => {}
        }
    }

    /// Changes `(name, wanted)` planned from one `read_sets`.
    async fn plan(
        &mut self,
        case: &str,
        wanted: &[(Fqdn, Option<TxtSet>)],
    ) -> Option<Vec<TxtChange>> {
        let names: Vec<Fqdn> = wanted.iter().map(|(n, _)| n.clone()).collect();
        let read = self.read_sets_of(case, &names).await?;
        Some(
            wanted
                .iter()
                .map(|(name, new)| TxtChange {
                    name: name.clone(),
                    old: read.get(name).cloned().unwrap_or_default(),
                    new: new.clone(),
                })
                .collect(),
        )
    }

    async fn apply_ok(&mut self, case: &str, changes: &[TxtChange]) -> bool {
        match self.p.apply(self.zone, changes).await {
            Ok(()) => true,
            Err(e) => {
                let at = changes
                    .first()
                    .map(|c| c.name.to_string())
                    .unwrap_or_default();
                self.fail(
                    case,
                    &at,
                    format!(
                        "apply failed: {} (written: {:?})",
                        e.error,
                        names(&e.written)
                    ),
                );
                false
            }
        }
    }

    async fn expect_changes(&mut self, case: &str, changes: &[TxtChange]) {
        for c in changes {
            self.expect_state(case, &c.name, c.new.as_ref()).await;
        }
    }

    async fn apply_case(&mut self) {
        let case = "change set: apply";
        let (Some(a1), Some(a2), Some(a3)) = (
            self.name(case, "cs-1"),
            self.name(case, "cs-2"),
            self.name(case, "cs-3"),
        ) else {
            return;
        };
        let all = [a1.clone(), a2.clone(), a3.clone()];
        let doomed = self.set(vec![TxtRecord::from_value(
            b"to be deleted by a change set",
        )]);
        if !self.write_and_verify(case, &a3, &doomed).await {
            self.cleanup_all(case, &all).await;
            return;
        }
        let s1 = self.set(vec![TxtRecord::from_value(b"v=spf1 ip4:192.0.2.1 -all")]);
        let s2 = self.set(vec![
            TxtRecord::from_value(b"v=DMARC1; p=none"),
            strings(&[b"v=DKIM1; k=rsa; ", b"p=AAAA"]),
        ]);
        let wanted = [
            (a1.clone(), Some(s1)),
            (a2.clone(), Some(s2)),
            (a3.clone(), None),
        ];
        let Some(changes) = self.plan(case, &wanted).await else {
            self.cleanup_all(case, &all).await;
            return;
        };
        if self.apply_ok(case, &changes).await {
            self.expect_changes(case, &changes).await;
            // The same change set again: harmless, same state.
            let again = format!("{case} (same change set again)");
            if self.apply_ok(&again, &changes).await {
                self.expect_changes(&again, &changes).await;
            }
            // A second change set from a new read: replace (new TTL), delete, create.
            let next = format!("{case} (replace, delete, create)");
            let s1b = TxtSet {
                ttl: self.ttl().saturating_mul(2),
                records: vec![TxtRecord::from_value(b"v=spf1 ip4:192.0.2.2 -all")],
            };
            let s3 = self.set(vec![TxtRecord::from_value(b"back again")]);
            let wanted = [
                (a1.clone(), Some(s1b)),
                (a2.clone(), Some(self.set(Vec::new()))),
                (a3.clone(), Some(s3)),
            ];
            if let Some(changes) = self.plan(&next, &wanted).await
                && self.apply_ok(&next, &changes).await
            {
                self.expect_changes(&next, &changes).await;
            }
        }
        let empty = "change set: apply of no change";
        if let Err(e) = self.p.apply(self.zone, &[]).await {
            self.fail(
                empty,
                self.base.to_string().as_str(),
                format!("apply failed: {}", e.error),
            );
        }
        self.cleanup_all(case, &all).await;
    }

    /// Another tool adds a value at a name between our read and our apply.
    /// `existing`: the name held our set when read; else it held nothing.
    async fn concurrent_edit_case(&mut self, existing: bool) {
        let (case, label) = if existing {
            ("change set: concurrent foreign edit of a set", "ce-set")
        } else {
            (
                "change set: concurrent foreign edit of an absent set",
                "ce-new",
            )
        };
        let Some(name) = self.name(case, label) else {
            return;
        };
        if existing {
            let ours_v1 = self.set(vec![TxtRecord::from_value(b"v=spf1 -all")]);
            if !self.write_and_verify(case, &name, &ours_v1).await {
                self.cleanup(case, &name).await;
                return;
            }
        }
        let foreign = TxtRecord::from_value(b"foreign-tool-verification=7f3a");
        let ours = TxtRecord::from_value(b"v=spf1 ip4:192.0.2.9 -all");
        let Some(read) = self.read_sets_of(case, std::slice::from_ref(&name)).await else {
            self.cleanup(case, &name).await;
            return;
        };
        let old = read.get(&name).cloned().unwrap_or_default();
        // The foreign edit, after our read.
        let mut theirs = old.set.clone().unwrap_or_else(|| self.set(Vec::new()));
        theirs.records.push(foreign.clone());
        if let Err(e) = self.p.replace_txt(self.zone, &name, &theirs).await {
            self.fail(
                case,
                name.as_str(),
                format!("the foreign write (replace_txt) failed: {e}"),
            );
            self.cleanup(case, &name).await;
            return;
        }
        let change = plan_ours(&name, old, &ours, self.ttl());
        let traits = self.traits();
        let first = self.p.apply(self.zone, std::slice::from_ref(&change)).await;
        let mut done = false;
        match first {
            Ok(()) if traits.compare_and_swap => self.fail(
                case,
                name.as_str(),
                "the adapter declares compare-and-swap but applied over an RRset changed since it was read",
            ),
            Ok(()) => done = true,
            Err(e) if e.is_conflict() => {
                if !e.written.is_empty() {
                    let wrote = format!("a conflict that wrote {:?}", names(&e.written));
                    self.fail(case, name.as_str(), wrote);
                }
                // Nothing of ours was written: the foreign value is there, untouched.
                let theirs = served_form(&self.profile, &foreign);
                match self.now(case, &name).await {
                    Some(Some(s)) if s.records.contains(&theirs) => {}
                    Some(other) => {
                        let now = show(other.as_ref());
                        let gone = format!("after the conflict the foreign value is gone: {now}");
                        self.fail(case, name.as_str(), gone)
                    }
                    None => {}
                }
            }
            Err(e) => self.fail(
                case,
                name.as_str(),
                format!("expected success or a conflict, got: {}", e.error),
            ),
        }
        // The caller's loop: re-read, re-plan, retry.
        let mut tries = 0;
        while !done && tries < RETRIES {
            tries += 1;
            let Some(read) = self.read_sets_of(case, std::slice::from_ref(&name)).await else {
                break;
            };
            let old = read.get(&name).cloned().unwrap_or_default();
            let change = plan_ours(&name, old, &ours, self.ttl());
            match self.p.apply(self.zone, std::slice::from_ref(&change)).await {
                Ok(()) => done = true,
                Err(e) if e.is_conflict() => {}
                Err(e) => {
                    self.fail(
                        case,
                        name.as_str(),
                        format!("retry after the conflict failed: {}", e.error),
                    );
                    break;
                }
            }
        }
        if !done {
            self.fail(
                case,
                name.as_str(),
                format!("still not applied after {RETRIES} re-reads"),
            );
        } else if let Some(now) = self.now(case, &name).await {
            let records = now.as_ref().map(|s| s.records.clone()).unwrap_or_default();
            if !records.contains(&served_form(&self.profile, &ours)) {
                self.fail(
                    case,
                    name.as_str(),
                    format!("our value is missing: {}", list(&records)),
                );
            }
            let kept = records.contains(&served_form(&self.profile, &foreign));
            if !kept && !self.opts.unguarded_apply {
                self.fail(
                    case,
                    name.as_str(),
                    format!(
                        "the foreign value written between read_sets and apply was lost: {}",
                        list(&records)
                    ),
                );
            }
        }
        self.cleanup(case, &name).await;
    }

    /// A change set whose second change must fail: nothing written when atomic,
    /// else exactly the names reported written.
    async fn failing_change_cases(&mut self) {
        let traits = self.traits();
        let mut checked = false;
        if !self.opts.unguarded_apply {
            let case = "change set: stale read fails the whole set";
            let (Some(fresh), Some(stale)) =
                (self.name(case, "at-fresh"), self.name(case, "at-stale"))
            else {
                return;
            };
            let value = self.set(vec![TxtRecord::from_value(b"v=spf1 -all")]);
            let stale_old = self.set(vec![TxtRecord::from_value(b"a value that was never there")]);
            let changes = vec![
                TxtChange {
                    name: fresh.clone(),
                    old: Observed::of(None),
                    new: Some(value.clone()),
                },
                TxtChange {
                    name: stale.clone(),
                    old: Observed::of(Some(stale_old)),
                    new: Some(value),
                },
            ];
            match self.p.apply(self.zone, &changes).await {
                Ok(()) => self.fail(
                    case,
                    stale.as_str(),
                    "applied a change whose RRset was not as read (absent, claimed present)",
                ),
                Err(e) => {
                    if !e.is_conflict() {
                        self.fail(
                            case,
                            stale.as_str(),
                            format!("expected a conflict, got: {}", e.error),
                        );
                    }
                    self.check_written(case, &changes, &[None, None], &e, traits)
                        .await;
                }
            }
            self.cleanup_all(case, &[fresh, stale]).await;
            checked = true;
        }
        if let Some(refused) = self.opts.refused_name.clone() {
            let case = "change set: a change the host refuses";
            let Some(fresh) = self.name(case, "at-fresh-2") else {
                return;
            };
            let value = self.set(vec![TxtRecord::from_value(b"v=spf1 -all")]);
            let wanted = [
                (fresh.clone(), Some(value.clone())),
                (refused.clone(), Some(value)),
            ];
            if let Some(changes) = self.plan(case, &wanted).await {
                match self.p.apply(self.zone, &changes).await {
                    Ok(()) => self.fail(
                        case,
                        refused.as_str(),
                        "the host accepted the change it should refuse",
                    ),
                    Err(e) => {
                        let before: Vec<Option<TxtSet>> =
                            changes.iter().map(|c| c.old.set.clone()).collect();
                        self.check_written(case, &changes, &before, &e, traits)
                            .await
                    }
                }
            }
            self.cleanup(case, &fresh).await;
            checked = true;
        }
        if !checked && traits.atomic {
            self.fail(
                "change set: atomicity",
                self.base.to_string().as_str(),
                "the adapter declares an atomic apply, but no change can be made to fail: set Options::refused_name",
            );
        }
    }

    /// After a failed apply: when atomic nothing was written; in any case each
    /// name holds its wanted set exactly when [`ApplyError::written`] lists it,
    /// and what it held `before` the apply otherwise.
    async fn check_written(
        &mut self,
        case: &str,
        changes: &[TxtChange],
        before: &[Option<TxtSet>],
        e: &ApplyError,
        traits: ApplyTraits,
    ) {
        // What the host declares for this very change set (Route 53 cuts one
        // over its batch limits into several requests, then not atomic).
        let traits = ApplyTraits {
            atomic: traits.atomic && self.p.apply_traits_for(changes).atomic,
            ..traits
        };
        if traits.atomic && !e.written.is_empty() {
            self.fail(
                case,
                changes[0].name.as_str(),
                format!(
                    "an atomic apply failed but reports written {:?}",
                    names(&e.written)
                ),
            );
        }
        for (i, w) in e.written.iter().enumerate() {
            if !changes.iter().any(|c| c.name == *w) || e.written[..i].contains(w) {
                self.fail(
                    case,
                    w.as_str(),
                    format!(
                        "reported written but not in the change set once: {:?}",
                        names(&e.written)
                    ),
                );
            }
        }
        for (c, before) in changes.iter().zip(before) {
            let Some(now) = self.now(case, &c.name).await else {
                continue;
            };
            let reported = e.written.contains(&c.name);
            let as_wanted = same_content(c.wanted(), now.as_ref());
            let as_old = same_content(before.as_ref(), now.as_ref());
            if reported && !as_wanted {
                self.fail(
                    case,
                    c.name.as_str(),
                    format!("reported written, but holds {}", show(now.as_ref())),
                );
            }
            if !reported && !as_old {
                let what = if traits.atomic {
                    "an atomic apply failed, yet"
                } else {
                    "not reported written, yet"
                };
                self.fail(
                    case,
                    c.name.as_str(),
                    format!("{what} the set changed: it holds {}", show(now.as_ref())),
                );
            }
        }
    }
}

/// Our plan for `name`: every value read except an SPF record, plus `ours`.
fn plan_ours(name: &Fqdn, old: Observed, ours: &TxtRecord, ttl: u32) -> TxtChange {
    let mut records: Vec<TxtRecord> = old
        .set
        .as_ref()
        .map(|s| {
            s.records
                .iter()
                .filter(|r| !r.value_starts_with_ignore_case("v=spf1"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    records.push(ours.clone());
    let ttl = old.set.as_ref().map_or(ttl, |s| s.ttl);
    TxtChange {
        name: name.clone(),
        old,
        new: Some(TxtSet { ttl, records }),
    }
}

fn names(list: &[Fqdn]) -> Vec<&str> {
    list.iter().map(Fqdn::as_str).collect()
}

fn show(set: Option<&TxtSet>) -> String {
    match set {
        None => "no set".into(),
        Some(s) => format!("TTL {} {}", s.ttl, list(&s.records)),
    }
}

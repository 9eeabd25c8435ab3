//! What `publish` published: the SPF, DMARC and ADSP value maildns holds at each
//! name (written by it, or found already equal to the configured value).
//!
//! When the configuration stops asking for one of them (its `spf`, `dmarc` or
//! `adsp` line is deleted), the ledger is how maildns knows the value at that
//! name is its own: `plan` shows a DELETE of exactly that value, `publish`
//! applies it (within `publish.max_delete_share`), and every other value at the
//! name stays — another tool's, or one changed by hand since maildns wrote it.
//! DKIM records are not here: the rotation state store knows those.
//!
//! Kept as a small JSON file, `<state_dir>/published.json`, written atomically
//! (temporary file + rename) only after a `publish` that applied or confirmed
//! something; with a shared state store ([`Store::keeps_ledger`]), as the same
//! JSON in the store, so every machine sees it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use maildns_providers::{Fqdn, TxtRecord};
use serde::{Deserialize, Serialize};

use super::apply::DomainOutcome;
use super::plan::{Action, Desired};
use crate::config::Domain;
use crate::records::RecordKind;
use crate::rotation::Store;

/// The file name inside `state_dir`.
pub const FILE: &str = "published.json";

/// Reading or writing the ledger failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The shared state store failed.
    #[error(transparent)]
    Store(#[from] crate::rotation::StoreError),
    /// The file is not a ledger.
    #[error("{path}: not a maildns ledger: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// One published value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The mail domain.
    pub domain: Fqdn,
    /// `spf`, `dmarc` or `adsp`.
    pub kind: String,
    /// The owner name the value is at.
    pub name: Fqdn,
    /// The value (joined character-strings).
    pub value: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    records: Vec<Entry>,
}

/// The values `publish` published, by (domain, kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: BTreeMap<(Fqdn, String), Entry>,
}

fn kind_key(kind: RecordKind) -> Option<&'static str> {
    match kind {
        RecordKind::Spf => Some("spf"),
        RecordKind::Dmarc => Some("dmarc"),
        RecordKind::Adsp => Some("adsp"),
        RecordKind::Dkim => None,
    }
}

fn kind_of(key: &str) -> Option<RecordKind> {
    match key {
        "spf" => Some(RecordKind::Spf),
        "dmarc" => Some(RecordKind::Dmarc),
        "adsp" => Some(RecordKind::Adsp),
        _ => None,
    }
}

impl Ledger {
    /// Reads `<state_dir>/published.json` (empty when it does not exist).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(state_dir: &Path) -> Result<Ledger, LedgerError> {
        let path = state_dir.join(FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::default()),
            Err(source) => return Err(LedgerError::Io { path, source }),
        };
        let file: File =
            serde_json::from_slice(&text).map_err(|source| LedgerError::Format { path, source })?;
        Ok(Ledger {
            entries: file
                .records
                .into_iter()
                .map(|e| ((e.domain.clone(), e.kind.clone()), e))
                .collect(),
        })
    }

    fn from_file(file: File) -> Ledger {
        Ledger {
            entries: file
                .records
                .into_iter()
                .map(|e| ((e.domain.clone(), e.kind.clone()), e))
                .collect(),
        }
    }

    fn to_file(&self) -> File {
        File {
            version: 1,
            records: self.entries.values().cloned().collect(),
        }
    }

    /// Reads the ledger kept in a shared `store` (empty when none was saved).
    ///
    /// # Errors
    /// The store fails, or holds something that is not a ledger.
    pub fn load_from(store: &dyn Store) -> Result<Ledger, LedgerError> {
        match store.load_ledger()? {
            None => Ok(Ledger::default()),
            Some(body) => serde_json::from_value(body)
                .map(Ledger::from_file)
                .map_err(|source| LedgerError::Format {
                    path: PathBuf::from("the state store's ledger"),
                    source,
                }),
        }
    }

    /// Saves the ledger into a shared `store`.
    ///
    /// # Errors
    /// The store fails.
    pub fn save_to(&self, store: &dyn Store) -> Result<(), LedgerError> {
        let body = serde_json::to_value(self.to_file()).map_err(|source| LedgerError::Format {
            path: PathBuf::from("the state store's ledger"),
            source,
        })?;
        Ok(store.save_ledger(&body)?)
    }

    /// Writes the ledger to `<state_dir>/published.json` atomically (creating
    /// `state_dir` when needed).
    ///
    /// # Errors
    /// The directory or file cannot be written.
    pub fn save(&self, state_dir: &Path) -> Result<(), LedgerError> {
        let path = state_dir.join(FILE);
        let io = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = File {
            version: 1,
            records: self.entries.values().cloned().collect(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|source| LedgerError::Format {
            path: path.clone(),
            source,
        })?;
        let tmp = state_dir.join(format!(".{FILE}.tmp"));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// The entries, in (domain, kind) order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// For each kind `domain`'s configuration no longer asks for but the ledger
    /// holds: a [`Desired`] that removes exactly the published value.
    pub fn retractions(&self, domain: &Domain) -> Vec<Desired> {
        let configured = |k: RecordKind| match k {
            RecordKind::Spf => domain.spf.is_some(),
            RecordKind::Dmarc => domain.dmarc.is_some(),
            RecordKind::Adsp => domain.adsp.is_some(),
            RecordKind::Dkim => true,
        };
        self.entries
            .values()
            .filter(|e| e.domain == domain.name)
            .filter_map(|e| {
                let kind = kind_of(&e.kind)?;
                (!configured(kind)).then(|| Desired {
                    name: e.name.clone(),
                    kind,
                    records: Vec::new(),
                    ttl: domain.ttl,
                    in_use: false,
                    only_remove: Some(vec![TxtRecord::from_value(e.value.as_bytes())]),
                })
            })
            .collect()
    }

    /// Records the result of one domain's publish: for a domain that succeeded,
    /// every value of `desired` is now published and every retraction done; for
    /// one that failed, only the changes applied before the failure count.
    pub fn record(&mut self, desired: &[Desired], outcome: &DomainOutcome) {
        let domain = &outcome.domain;
        let mut set = |kind: RecordKind, name: &Fqdn, value: Option<&TxtRecord>| {
            let Some(k) = kind_key(kind) else { return };
            let key = (domain.clone(), k.to_string());
            match value {
                Some(v) => {
                    self.entries.insert(
                        key,
                        Entry {
                            domain: domain.clone(),
                            kind: k.to_string(),
                            name: name.clone(),
                            value: v.value_lossy(),
                        },
                    );
                }
                None => {
                    self.entries.remove(&key);
                }
            }
        };
        if outcome.error.is_none() && outcome.plan.is_some() {
            for d in desired {
                set(d.kind, &d.name, d.records.first());
            }
        } else if let Some(plan) = &outcome.plan {
            for c in plan.changes.iter().take(outcome.applied) {
                match c.action {
                    Action::Create | Action::Update => set(c.kind, &c.name, c.new.first()),
                    Action::Delete => set(c.kind, &c.name, None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::plan::{Plan, plan};
    use maildns_providers::TxtSet;

    fn f(s: &str) -> Fqdn {
        Fqdn::parse(s).unwrap()
    }

    fn domain(spf: Option<&str>) -> Domain {
        let text = format!(
            "[accounts.l]\nprovider = \"zonefile\"\npath = \"z\"\n[domains.\"example.com\"]\naccount = \"l\"\n{}",
            spf.map(|s| format!("spf = \"{s}\"")).unwrap_or_default()
        );
        crate::config::parse(&text, Path::new("/x/maildns.toml"))
            .unwrap()
            .domains
            .remove(0)
    }

    fn ok_outcome(p: Plan) -> DomainOutcome {
        DomainOutcome {
            pending: false,
            domain: f("example.com"),
            account: "l".into(),
            zone: None,
            applied: p.changes.len(),
            plan: Some(p),
            error: None,
        }
    }

    #[test]
    fn a_removed_spf_line_deletes_only_the_value_maildns_published() {
        let mut ledger = Ledger::default();
        let with = domain(Some("v=spf1 mx -all"));
        let desired = crate::publish::for_domain(&with, &[]).unwrap();
        let p = plan(&desired, &BTreeMap::new()).unwrap();
        ledger.record(&desired, &ok_outcome(p));
        assert_eq!(ledger.entries().count(), 1);

        let without = domain(None);
        let r = ledger.retractions(&without);
        assert_eq!(r.len(), 1);
        let mut cur = BTreeMap::new();
        cur.insert(
            f("example.com"),
            Some(TxtSet {
                ttl: 3600,
                records: vec![
                    TxtRecord::from_value("google-site-verification=x"),
                    TxtRecord::from_value("v=spf1 mx -all"),
                ],
            }),
        );
        let p = plan(&r, &cur).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].action, Action::Delete);
        assert_eq!(
            p.changes[0].write.records,
            vec![TxtRecord::from_value("google-site-verification=x")]
        );
        ledger.record(&r, &ok_outcome(p));
        assert_eq!(ledger.entries().count(), 0);

        // An SPF value maildns did not publish (changed by hand) stays.
        let mut ledger = Ledger::default();
        let desired = crate::publish::for_domain(&with, &[]).unwrap();
        ledger.record(&desired, &ok_outcome(Plan::default()));
        cur.insert(
            f("example.com"),
            Some(TxtSet {
                ttl: 3600,
                records: vec![TxtRecord::from_value("v=spf1 a mx -all")],
            }),
        );
        let p = plan(&ledger.retractions(&without), &cur).unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(Ledger::load(&state).unwrap(), Ledger::default());
        let mut ledger = Ledger::default();
        let d = domain(Some("v=spf1 -all"));
        let desired = crate::publish::for_domain(&d, &[]).unwrap();
        ledger.record(&desired, &ok_outcome(Plan::default()));
        ledger.save(&state).unwrap();
        assert_eq!(Ledger::load(&state).unwrap(), ledger);
        std::fs::write(state.join(FILE), "nonsense").unwrap();
        assert!(Ledger::load(&state).is_err());
    }
}

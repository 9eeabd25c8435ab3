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
//! Kept as a small JSON file, `<state_dir>/published.json`; with a shared state
//! store ([`Store::keeps_ledger`]), as one row per entry in the store, so every
//! machine sees it.
//!
//! A run never saves the whole ledger it read: it saves only the entries it
//! changed ([`Ledger::changes_to`] -> [`Change`]s), so two runs at the same
//! time (on two machines sharing a store, or two on one machine) lose nothing
//! of each other's; for one entry, the later write wins. The shared store
//! upserts and deletes those rows in one transaction
//! ([`Store::update_ledger`]); the file is re-read, changed and replaced
//! (temporary file + rename) under an exclusive `flock` on the state
//! directory, so concurrent runs on one machine queue there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use maildns_providers::{Fqdn, TxtRecord};
use nix::fcntl::{Flock, FlockArg};

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
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The shared state store failed.
    #[error(transparent)]
    Store(#[from] crate::rotation::StoreError),
    /// The file is not a ledger (nothing was written).
    #[error(
        "{path}: not a maildns ledger: {error} (restore it from a backup; moved away, maildns no longer knows which SPF, DMARC and ADSP values it published and removes none of them)"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        error: serde_json::Error,
    },
}

/// One published value (the type the stores keep).
pub use crate::rotation::LedgerEntry as Entry;

/// One change of the ledger, saved as such (the type the stores take).
pub use crate::rotation::LedgerChange as Change;

/// Reads a ledger file, `{"version": 1, "records": [entry, ...]}`, handing
/// each entry to `each` as it is parsed: neither the text nor a list of the
/// entries is held. False when there is no file. An error `each` returns
/// stops the reading and is returned as it is.
fn read_file(
    path: &Path,
    each: &mut dyn FnMut(Entry) -> Result<(), LedgerError>,
) -> Result<bool, LedgerError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(LedgerError::Io {
                path: path.to_path_buf(),
                error: source,
            });
        }
    };
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    let read = serde::Deserializer::deserialize_map(
        &mut de,
        FileIn {
            each,
            stopped: &mut stopped,
        },
    )
    .and_then(|()| de.end());
    if let Some(e) = stopped {
        return Err(e);
    }
    read.map_err(|source| {
        if source.is_io() {
            LedgerError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::from(source),
            }
        } else {
            LedgerError::Format {
                path: path.to_path_buf(),
                error: source,
            }
        }
    })?;
    Ok(true)
}

/// The file's top level for [`read_file`]: `version` (required, 1) and
/// `records` (each of kind `spf`, `dmarc` or `adsp`); other keys are
/// skipped.
struct FileIn<'f> {
    each: &'f mut dyn FnMut(Entry) -> Result<(), LedgerError>,
    stopped: &'f mut Option<LedgerError>,
}

impl<'de> serde::de::Visitor<'de> for FileIn<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a maildns ledger (an object with version and records)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let (mut version, mut records) = (false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "version" => {
                    let v = map.next_value::<u32>()?;
                    if v != 1 {
                        return Err(A::Error::custom(format!(
                            "version {v}, where this maildns reads version 1"
                        )));
                    }
                    version = true;
                }
                "records" => {
                    map.next_value_seed(RecordsIn {
                        each: &mut *self.each,
                        stopped: &mut *self.stopped,
                    })?;
                    records = true;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        match (version, records) {
            (false, _) => Err(A::Error::missing_field("version")),
            (_, false) => Err(A::Error::missing_field("records")),
            _ => Ok(()),
        }
    }
}

/// The file's `records`, each handed on as it is parsed.
struct RecordsIn<'f> {
    each: &'f mut dyn FnMut(Entry) -> Result<(), LedgerError>,
    stopped: &'f mut Option<LedgerError>,
}

impl<'de> serde::de::DeserializeSeed<'de> for RecordsIn<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordsIn<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of ledger entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(e) = seq.next_element::<Entry>()? {
            if !matches!(e.kind.as_str(), "spf" | "dmarc" | "adsp") {
                return Err(serde::de::Error::custom(format!(
                    "the entry of {} has the kind {}, where a ledger holds spf, dmarc and adsp",
                    e.domain,
                    crate::quote::quoted(&e.kind)
                )));
            }
            if let Err(e) = (self.each)(e) {
                *self.stopped = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// A ledger file being written (to a temporary file, renamed over the
/// ledger when complete, removed when not): one entry per line, each as it
/// comes.
struct FileOut {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    entries: usize,
    renamed: bool,
}

impl Drop for FileOut {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl FileOut {
    fn create(path: PathBuf) -> Result<FileOut, LedgerError> {
        let mut out = FileOut {
            out: std::io::BufWriter::new(std::fs::File::create(&path).map_err(|error| {
                LedgerError::Io {
                    path: path.clone(),
                    error,
                }
            })?),
            path,
            entries: 0,
            renamed: false,
        };
        out.write(b"{\"version\": 1, \"records\": [")?;
        Ok(out)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), LedgerError> {
        std::io::Write::write_all(&mut self.out, bytes).map_err(|error| LedgerError::Io {
            path: self.path.clone(),
            error,
        })
    }

    fn entry(&mut self, e: &Entry) -> Result<(), LedgerError> {
        self.write(if self.entries == 0 { b"\n  " } else { b",\n  " })?;
        self.entries += 1;
        serde_json::to_writer(&mut self.out, e).map_err(|error| LedgerError::Io {
            path: self.path.clone(),
            error: std::io::Error::from(error),
        })
    }

    /// Ends the file and renames it to `to`.
    fn finish(mut self, to: &Path) -> Result<(), LedgerError> {
        self.write(b"\n]}\n")?;
        let io = |error| LedgerError::Io {
            path: to.to_path_buf(),
            error,
        };
        std::io::Write::flush(&mut self.out).map_err(io)?;
        std::fs::rename(&self.path, to).map_err(io)?;
        self.renamed = true;
        Ok(())
    }
}

/// Where `changes` leave an entry that was `start`, in their order (what
/// [`Ledger::apply`] does to one key): a put sets it, a removal removes it
/// while it still holds the value removed.
fn settle<'c>(
    mut entry: Option<Entry>,
    changes: impl Iterator<Item = &'c Change>,
) -> Option<Entry> {
    for c in changes {
        match c {
            Change::Put(e) => entry = Some(e.clone()),
            Change::Remove(e) => {
                if entry
                    .as_ref()
                    .is_some_and(|now| now.name == e.name && now.value == e.value)
                {
                    entry = None;
                }
            }
        }
    }
    entry
}

fn change_key(c: &Change) -> (&Fqdn, &str) {
    match c {
        Change::Put(e) | Change::Remove(e) => (&e.domain, e.kind.as_str()),
    }
}

/// The kind of a ledger entry, as the file spells it (`spf`, `dmarc`,
/// `adsp`; any other spelling, from a later maildns, is kept as read).
/// Ordered as its spelling is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Spf,
    Dmarc,
    Adsp,
    Other(Box<str>),
}

impl Kind {
    fn of(kind: RecordKind) -> Option<Kind> {
        match kind {
            RecordKind::Spf => Some(Kind::Spf),
            RecordKind::Dmarc => Some(Kind::Dmarc),
            RecordKind::Adsp => Some(Kind::Adsp),
            RecordKind::Dkim => None,
        }
    }

    fn parse(key: String) -> Kind {
        match key.as_str() {
            "spf" => Kind::Spf,
            "dmarc" => Kind::Dmarc,
            "adsp" => Kind::Adsp,
            _ => Kind::Other(key.into_boxed_str()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Kind::Spf => "spf",
            Kind::Dmarc => "dmarc",
            Kind::Adsp => "adsp",
            Kind::Other(k) => k,
        }
    }

    fn record_kind(&self) -> Option<RecordKind> {
        match self {
            Kind::Spf => Some(RecordKind::Spf),
            Kind::Dmarc => Some(RecordKind::Dmarc),
            Kind::Adsp => Some(RecordKind::Adsp),
            Kind::Other(_) => None,
        }
    }
}

impl Ord for Kind {
    fn cmp(&self, other: &Kind) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Kind) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// An entry's key: (domain, kind).
type Key = (Fqdn, Kind);

/// What an entry holds besides its key: the owner name and the value. An
/// [`Entry`] repeats its domain and kind, which the map's key already has,
/// and its strings' spare capacity: the ledger of a large run is read into
/// well under half the memory so.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    /// `None`: the kind's own owner name under the domain ([`usual_name`]),
    /// as nearly always.
    name: Option<Fqdn>,
    value: Box<str>,
}

/// Where `kind`'s record of `domain` is: the domain itself (SPF), `_dmarc`
/// (RFC 7489 §6.1) or `_adsp._domainkey` (RFC 5617 §4.1) under it.
fn usual_name(domain: &Fqdn, kind: &Kind) -> Option<Fqdn> {
    match kind {
        Kind::Spf => Some(domain.clone()),
        Kind::Dmarc => domain.child("_dmarc").ok(),
        Kind::Adsp => domain.child("_adsp._domainkey").ok(),
        Kind::Other(_) => None,
    }
}

impl Held {
    /// What `key` holds: `value` at `name`.
    fn new(key: &Key, name: Fqdn, value: Box<str>) -> Held {
        let usual = usual_name(&key.0, &key.1).is_some_and(|u| u == name);
        Held {
            name: (!usual).then_some(name),
            value,
        }
    }

    fn split(e: Entry) -> (Key, Held) {
        let key = (e.domain, Kind::parse(e.kind));
        let held = Held::new(&key, e.name, e.value.into_boxed_str());
        (key, held)
    }

    /// The owner name the value is at.
    fn name(&self, (domain, kind): &Key) -> Fqdn {
        match &self.name {
            Some(n) => n.clone(),
            // (`new` keeps the name whenever there is no usual one.)
            None => usual_name(domain, kind).unwrap_or_else(|| domain.clone()),
        }
    }

    fn entry(&self, key: &Key) -> Entry {
        Entry {
            domain: key.0.clone(),
            kind: key.1.as_str().to_string(),
            name: self.name(key),
            value: self.value.to_string(),
        }
    }

    fn is(&self, key: &Key, e: &Entry) -> bool {
        *self.value == *e.value && self.name(key) == e.name
    }
}

type Entries = BTreeMap<Key, Held>;

/// The values `publish` published, by (domain, kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Entries,
}

impl Ledger {
    /// Reads `<state_dir>/published.json` (empty when it does not exist).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(state_dir: &Path) -> Result<Ledger, LedgerError> {
        let mut entries = Vec::new();
        read_file(&state_dir.join(FILE), &mut |e| {
            entries.push(Held::split(e));
            Ok(())
        })?;
        // A key written twice (only by hand): the first entry counts, as
        // for `update_file`, which keeps only the first when it changes it.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, first| later.0 == first.0);
        // Made from the sorted list at once: full nodes (inserted one by one,
        // in order, the map's nodes stay half empty: twice the memory).
        Ok(Ledger {
            entries: entries.into_iter().collect(),
        })
    }

    fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Ledger {
        Ledger {
            entries: entries.into_iter().map(Held::split).collect(),
        }
    }

    /// Reads the ledger kept in a shared `store` (empty when none was saved).
    ///
    /// # Errors
    /// The store fails, or holds something that is not a ledger.
    pub fn load_from(store: &dyn Store) -> Result<Ledger, LedgerError> {
        Ok(Ledger::from_entries(store.load_ledger()?))
    }

    /// The changes that turn `self` (the ledger as a run read it) into
    /// `updated` (as the run left it): an entry added or altered is a
    /// [`Change::Put`], one dropped a [`Change::Remove`] (of the entry as
    /// read); entries equal in
    /// both are not changes. In (domain, kind) order.
    pub fn changes_to(&self, updated: &Ledger) -> Vec<Change> {
        let mut changes = Vec::new();
        for (key, e) in &updated.entries {
            if self.entries.get(key) != Some(e) {
                changes.push((key, Change::Put(e.entry(key))));
            }
        }
        for (key, e) in &self.entries {
            if !updated.entries.contains_key(key) {
                changes.push((key, Change::Remove(e.entry(key))));
            }
        }
        changes.sort_by(|a, b| a.0.cmp(b.0));
        changes.into_iter().map(|(_, c)| c).collect()
    }

    /// Applies `changes` to this ledger (what a store does with them): a
    /// removal only while the entry is still the one removed.
    pub fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Put(e) => {
                    let (key, held) = Held::split(e.clone());
                    self.entries.insert(key, held);
                }
                Change::Remove(e) => {
                    let key = (e.domain.clone(), Kind::parse(e.kind.clone()));
                    if self.entries.get(&key).is_some_and(|h| h.is(&key, e)) {
                        self.entries.remove(&key);
                    }
                }
            }
        }
    }

    /// Saves `changes` (and nothing else) into a shared `store`, in one
    /// transaction (see [`Store::update_ledger`]).
    ///
    /// # Errors
    /// The store fails, or a lease this process held on a changed domain was
    /// lost (then nothing is saved).
    pub fn update_in(store: &dyn Store, changes: &[Change]) -> Result<(), LedgerError> {
        Ok(store.update_ledger(changes)?)
    }

    /// Saves `changes` (and nothing else) into `<state_dir>/published.json`:
    /// under an exclusive `flock` on `state_dir` (taken through `nix`, as the
    /// state store's own lock; the kernel drops it if the process dies), the
    /// file is read again, changed, and replaced atomically, so entries
    /// another run saved meanwhile stay. Creates `state_dir` when needed.
    ///
    /// # Errors
    /// The directory or file cannot be locked, read or written, or the file
    /// is not a ledger.
    pub fn update_file(state_dir: &Path, changes: &[Change]) -> Result<(), LedgerError> {
        if changes.is_empty() {
            return Ok(());
        }
        let io = |error| LedgerError::Io {
            path: state_dir.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let dir = std::fs::File::open(state_dir).map_err(io)?;
        let _lock = Flock::lock(dir, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io(std::io::Error::from(errno)))?;
        // The file is copied entry by entry, each key's changes applied as
        // it passes, then the keys it did not have: neither the ledger nor
        // its text is held (a ledger of 10,000 domains is several MB).
        // The changes' indices in key order (a key's changes in their own
        // order), and whether the key was met in the file.
        let mut order: Vec<usize> = (0..changes.len()).collect();
        order.sort_by(|&a, &b| change_key(&changes[a]).cmp(&change_key(&changes[b])));
        let mut met = vec![false; order.len()];
        let group = |key: (&Fqdn, &str)| {
            let start = order.partition_point(|&k| change_key(&changes[k]) < key);
            let len = order[start..]
                .iter()
                .take_while(|&&k| change_key(&changes[k]) == key)
                .count();
            start..start + len
        };
        let path = state_dir.join(FILE);
        let mut out = FileOut::create(state_dir.join(format!(".{FILE}.tmp")))?;
        read_file(&path, &mut |e| {
            let at = group((&e.domain, e.kind.as_str()));
            if at.is_empty() {
                return out.entry(&e);
            }
            if met[at.start] {
                // The same key again: settled where it was first met.
                return Ok(());
            }
            met[at.start] = true;
            match settle(Some(e), order[at].iter().map(|&k| &changes[k])) {
                Some(e) => out.entry(&e),
                None => Ok(()),
            }
        })?;
        let mut k = 0;
        while k < order.len() {
            let at = group(change_key(&changes[order[k]]));
            if !met[at.start]
                && let Some(e) = settle(None, order[at.clone()].iter().map(|&k| &changes[k]))
            {
                out.entry(&e)?;
            }
            k = at.end;
        }
        out.finish(&path)
    }

    /// The entries, in (domain, kind) order (each made as it is taken).
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.entries.iter().map(|(key, held)| held.entry(key))
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
        // This domain's entries only (keys are in (domain, kind) order): a
        // run of many domains does not scan the whole ledger for each one.
        // ("" is the first kind in the keys' order.)
        self.entries
            .range((domain.name.clone(), Kind::Other(Box::default()))..)
            .take_while(|((d, _), _)| *d == domain.name)
            .filter_map(|(key, e)| {
                let kind = key.1.record_kind()?;
                (!configured(kind)).then(|| Desired {
                    name: e.name(key),
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
        record_into(desired, outcome, |key, entry| match entry {
            Some(e) => {
                self.entries.insert(key, e);
            }
            None => {
                self.entries.remove(&key);
            }
        });
    }

    /// The ledger as a run updates it, kept as the entries it changed over
    /// this one (a run of many domains does not copy the whole ledger).
    pub fn updates(&self) -> Updates<'_> {
        Updates {
            read: self,
            changed: Vec::new(),
        }
    }
}

/// A ledger as read and what a run changed in it ([`Ledger::updates`]).
#[derive(Debug)]
pub struct Updates<'a> {
    read: &'a Ledger,
    /// Entries set (`None`: removed) by the run, in the order recorded (a
    /// list, not a map: a first publish of 10,000 domains records 20,000).
    changed: Vec<(Key, Option<Held>)>,
}

impl Updates<'_> {
    /// [`Ledger::record`] on the ledger as updated so far, for a domain not
    /// recorded before in this run (a run has one outcome per domain;
    /// recording a domain again adds to what was recorded for it, the later
    /// value of a key counting).
    pub fn record(&mut self, desired: &[Desired], outcome: &DomainOutcome) {
        let read = self.read;
        record_into(desired, outcome, |key, entry| {
            // An entry set to what was read is no change (a run that changes
            // nothing keeps nothing here).
            if entry.as_ref() != read.entries.get(&key) {
                self.changed.push((key, entry));
            }
        });
    }

    /// The changes from the ledger as read to the ledger as updated, as
    /// [`Ledger::changes_to`] gives them (in (domain, kind) order).
    pub fn changes(&self) -> Vec<Change> {
        let mut order: Vec<usize> = (0..self.changed.len()).collect();
        order.sort_by(|&a, &b| self.changed[a].0.cmp(&self.changed[b].0));
        order
            .iter()
            .enumerate()
            // A key recorded twice: the later value.
            .filter(|&(k, &i)| {
                order
                    .get(k + 1)
                    .is_none_or(|&next| self.changed[next].0 != self.changed[i].0)
            })
            .filter_map(|(_, &i)| {
                let (key, entry) = &self.changed[i];
                match (entry, self.read.entries.get(key)) {
                    (Some(e), read) if read != Some(e) => Some(Change::Put(e.entry(key))),
                    (None, Some(read)) => Some(Change::Remove(read.entry(key))),
                    _ => None,
                }
            })
            .collect()
    }

    /// [`Self::changes`], moving the entries out instead of copying them.
    pub fn into_changes(mut self) -> Vec<Change> {
        let read = self.read;
        // (Stable: a key recorded twice keeps its order; the later counts.)
        self.changed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut changed = self.changed.into_iter().peekable();
        std::iter::from_fn(|| {
            let mut this = changed.next()?;
            while let Some(later) = changed.next_if(|next| next.0 == this.0) {
                this = later;
            }
            Some(this)
        })
        .filter_map(|(key, entry)| match (entry, read.entries.get(&key)) {
            (Some(e), read) if read != Some(&e) => Some(Change::Put(Entry {
                name: e.name(&key),
                domain: key.0,
                kind: key.1.as_str().to_string(),
                value: e.value.into_string(),
            })),
            (None, Some(read)) => Some(Change::Remove(read.entry(&key))),
            _ => None,
        })
        .collect()
    }
}

/// What [`Ledger::record`] sets: each (domain, kind) key to its new entry
/// (`None`: removed), given to `put`.
fn record_into(
    desired: &[Desired],
    outcome: &DomainOutcome,
    mut put: impl FnMut(Key, Option<Held>),
) {
    {
        let domain = &outcome.domain;
        let mut set = |kind: RecordKind, name: &Fqdn, value: Option<&TxtRecord>| {
            let Some(k) = Kind::of(kind) else { return };
            let key = (domain.clone(), k);
            let entry =
                value.map(|v| Held::new(&key, name.clone(), v.value_lossy().into_boxed_str()));
            put(key, entry);
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
        Ledger::update_file(&state, &Ledger::default().changes_to(&ledger)).unwrap();
        assert_eq!(Ledger::load(&state).unwrap(), ledger);
        std::fs::write(state.join(FILE), "nonsense").unwrap();
        assert!(Ledger::load(&state).is_err());
    }

    fn entry(domain: &str, kind: &str, value: &str) -> Entry {
        Entry {
            domain: f(domain),
            kind: kind.into(),
            name: f(domain),
            value: value.into(),
        }
    }

    #[test]
    fn changes_are_exactly_the_entries_added_altered_or_dropped() {
        let before = Ledger::from_entries([
            entry("a.example", "spf", "v=spf1 -all"),
            entry("b.example", "spf", "v=spf1 mx -all"),
            entry("c.example", "dmarc", "v=DMARC1; p=none"),
        ]);
        let after = Ledger::from_entries([
            entry("a.example", "spf", "v=spf1 -all"),
            entry("b.example", "spf", "v=spf1 a -all"),
            entry("d.example", "adsp", "dkim=all"),
        ]);
        let changes = before.changes_to(&after);
        assert_eq!(
            changes,
            vec![
                Change::Put(entry("b.example", "spf", "v=spf1 a -all")),
                Change::Remove(entry("c.example", "dmarc", "v=DMARC1; p=none")),
                Change::Put(entry("d.example", "adsp", "dkim=all")),
            ]
        );
        let mut applied = before.clone();
        applied.apply(&changes);
        assert_eq!(applied, after);
        assert!(after.changes_to(&after).is_empty());
        // A removal of a value the entry no longer holds removes nothing.
        applied.apply(&[Change::Remove(entry("b.example", "spf", "v=spf1 mx -all"))]);
        assert_eq!(applied, after);
    }

    #[test]
    fn updates_give_the_changes_of_a_copy_recorded_alike() {
        // As read: an SPF that stays, one that the run removes (the domain no
        // longer configures it) and another domain's entry the run leaves.
        let with = domain(Some("v=spf1 -all"));
        let without = domain(None);
        let read = Ledger::from_entries([
            entry("example.com", "spf", "v=spf1 mx -all"),
            entry("other.example", "spf", "v=spf1 -all"),
        ]);
        for d in [&with, &without] {
            let outcome = ok_outcome(Plan::default());
            let mut desired = crate::publish::for_domain(d, &[]).unwrap();
            desired.extend(read.retractions(d));
            let mut copy = read.clone();
            copy.record(&desired, &outcome);
            let mut updates = read.updates();
            updates.record(&desired, &outcome);
            assert_eq!(updates.changes(), read.changes_to(&copy));
            assert!(!updates.changes().is_empty());
            assert_eq!(updates.into_changes(), read.changes_to(&copy));
        }
        // Recording what is already there changes nothing.
        let same = Ledger::from_entries([entry("example.com", "spf", "v=spf1 -all")]);
        let mut updates = same.updates();
        let desired = crate::publish::for_domain(&with, &[]).unwrap();
        updates.record(&desired, &ok_outcome(Plan::default()));
        assert!(updates.changes().is_empty());
    }

    #[test]
    fn a_domain_recorded_again_counts_its_later_values() {
        let read = Ledger::default();
        let mut updates = read.updates();
        for spf in ["v=spf1 -all", "v=spf1 mx -all"] {
            let d = domain(Some(spf));
            let desired = crate::publish::for_domain(&d, &[]).unwrap();
            updates.record(&desired, &ok_outcome(Plan::default()));
        }
        let want = vec![Change::Put(entry("example.com", "spf", "v=spf1 mx -all"))];
        assert_eq!(updates.changes(), want);
        assert_eq!(updates.into_changes(), want);
    }

    #[test]
    fn two_runs_saving_their_changes_to_the_file_lose_nothing_of_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let start = Ledger::from_entries([
            entry("a.example", "spf", "v=spf1 -all"),
            entry("b.example", "spf", "v=spf1 -all"),
        ]);
        Ledger::update_file(&state, &Ledger::default().changes_to(&start)).unwrap();
        // Both runs read the same ledger; one removes a.example's entry and
        // adds c.example's, the other alters b.example's.
        let read = Ledger::load(&state).unwrap();
        let mut first = read.clone();
        first.apply(&[
            Change::Remove(entry("a.example", "spf", "v=spf1 -all")),
            Change::Put(entry("c.example", "dmarc", "v=DMARC1; p=none")),
        ]);
        let mut second = read.clone();
        second.apply(&[Change::Put(entry("b.example", "spf", "v=spf1 mx -all"))]);
        let threads: Vec<_> = [read.changes_to(&first), read.changes_to(&second)]
            .into_iter()
            .map(|changes| {
                let state = state.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        Ledger::update_file(&state, &changes).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            Ledger::load(&state).unwrap(),
            Ledger::from_entries([
                entry("b.example", "spf", "v=spf1 mx -all"),
                entry("c.example", "dmarc", "v=DMARC1; p=none"),
            ])
        );
    }

    #[test]
    fn a_file_is_updated_entry_by_entry_keeping_what_the_changes_do_not_touch() {
        let dir = tempfile::tempdir().unwrap();
        // Written by hand (or by an older maildns, pretty-printed): an
        // unknown top-level key, an unknown key in an entry, and a key
        // written twice (the first one is the entry).
        let text = r#"{
  "version": 1,
  "written_by": "someone",
  "records": [
    {"domain": "a.example", "kind": "spf", "name": "a.example", "value": "v=spf1 -all"},
    {"domain": "a.example", "kind": "dmarc", "name": "_dmarc.a.example", "value": "v=DMARC1; p=none", "note": "x"},
    {"domain": "b.example", "kind": "spf", "name": "b.example", "value": "v=spf1 mx -all"},
    {"domain": "b.example", "kind": "spf", "name": "b.example", "value": "later"},
    {"domain": "c.example", "kind": "dmarc", "name": "_dmarc.c.example", "value": "v=DMARC1; p=none"}
  ]
}"#;
        std::fs::write(dir.path().join(FILE), text).unwrap();
        let read = Ledger::load(dir.path()).unwrap();
        assert_eq!(read.entries().count(), 4);
        let changes = [
            Change::Put(entry("d.example", "spf", "v=spf1 a -all")),
            // Removes what is there: gone.
            Change::Remove(entry("a.example", "spf", "v=spf1 -all")),
            // Removes a value no longer there: stays.
            Change::Remove(entry("b.example", "spf", "v=spf1 -all")),
            Change::Put(Entry {
                name: f("_dmarc.c.example"),
                ..entry("c.example", "dmarc", "v=DMARC1; p=reject")
            }),
        ];
        Ledger::update_file(dir.path(), &changes).unwrap();
        let mut expected = read.clone();
        expected.apply(&changes);
        let saved = Ledger::load(dir.path()).unwrap();
        assert_eq!(saved, expected);
        let kinds: Vec<_> = saved
            .entries()
            .map(|e| (e.domain.to_string(), e.kind))
            .collect();
        assert!(
            kinds.contains(&("a.example".into(), "dmarc".into())),
            "{kinds:?}"
        );
        assert!(
            !kinds.contains(&("a.example".into(), "spf".into())),
            "{kinds:?}"
        );
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
    }

    #[test]
    fn a_file_that_is_not_a_ledger_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "nonsense",
            r#"{"records": []}"#,
            r#"{"version": 1}"#,
            r#"{"version": 1, "records": [{"domain": "a.example"}]}"#,
            r#"{"version": 1, "records": []} trailing"#,
            r#"{"version": 99, "records": []}"#,
            r#"{"version": 1, "records": [{"domain": "a.example", "kind": "spf\u001b[31m", "name": "a.example", "value": "x"}]}"#,
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let e = Ledger::update_file(dir.path(), &[Change::Put(entry("a.example", "spf", "x"))])
                .unwrap_err();
            assert!(matches!(e, LedgerError::Format { .. }), "{text}: {e}");
            assert!(!e.to_string().contains("\u{1b}"), "{e}");
            // The cause is said once.
            assert!(std::error::Error::source(&e).is_none(), "{e}");
            assert!(Ledger::load(dir.path()).is_err(), "{text}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
                text
            );
            // Nothing else is left in the directory (no half-written copy).
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from(FILE)], "{text}");
        }
    }

    proptest::proptest! {
        /// Saving changes to the file leaves what applying them to the
        /// ledger as read leaves, whatever the file and the changes.
        #[test]
        fn updating_the_file_is_applying_the_changes(
            file in proptest::collection::vec((0..6u8, 0..3u8, 0..3u8), 0..12),
            changes in proptest::collection::vec((proptest::bool::ANY, 0..6u8, 0..3u8, 0..3u8), 0..12),
        ) {
            let kinds = ["spf", "dmarc", "adsp"];
            let make = |d: u8, k: u8, v: u8| Entry {
                domain: f(&format!("d{d}.example")),
                kind: kinds[k as usize].to_string(),
                name: f(&format!("d{d}.example")),
                value: format!("value {v}"),
            };
            let dir = tempfile::tempdir().unwrap();
            let records: Vec<Entry> = file.iter().map(|&(d, k, v)| make(d, k, v)).collect();
            let text = serde_json::json!({"version": 1, "records": records}).to_string();
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let changes: Vec<Change> = changes
                .iter()
                .map(|&(put, d, k, v)| if put { Change::Put(make(d, k, v)) } else { Change::Remove(make(d, k, v)) })
                .collect();
            let mut expected = Ledger::load(dir.path()).unwrap();
            expected.apply(&changes);
            Ledger::update_file(dir.path(), &changes).unwrap();
            proptest::prop_assert_eq!(Ledger::load(dir.path()).unwrap(), expected);
        }
    }
}

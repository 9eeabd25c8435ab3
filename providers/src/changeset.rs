//! Zone change sets: the unit of work is a zone.
//!
//! A caller reads the TXT RRsets of every owner name it cares about in one zone
//! ([`crate::Provider::read_sets`]), plans, and hands the adapter one change set
//! ([`crate::Provider::apply`]): for each owner name, the RRset as read
//! ([`Observed`]) and the RRset wanted. Each adapter does that in as few requests
//! as its host allows and declares what its apply guarantees ([`ApplyTraits`]):
//!
//! - **atomic**: all the changes are applied or none is (PowerDNS PATCH, one
//!   RFC 2136 UPDATE message, one Route 53 change batch, one Google change);
//! - **compare-and-swap**: the apply fails with [`ErrorKind::Conflict`] and
//!   writes nothing more when an RRset is no longer what was read (RFC 2136
//!   prerequisites, Route 53 DELETE of the exact values, Google deletions, Azure
//!   `If-Match`). Hosts without a precondition get the adapter's best effort:
//!   the RRset is read again just before it is written and a difference is
//!   reported as the same conflict, which narrows the window to one round trip.
//!   An adapter may instead document an unguarded window between the caller's
//!   read and its write when a re-read would cost a request per zone (PowerDNS:
//!   one `GET` and one `PATCH` per zone, no precondition in its API).
//!
//! On [`ErrorKind::Conflict`] the caller reads again, plans again and retries a
//! bounded number of times, so another tool's edit between the read and the
//! write is never lost. A failed apply reports the owner names it did write
//! ([`ApplyError::written`]); an atomic apply never reports any.

use std::collections::BTreeMap;

use crate::{Error, ErrorKind, Fqdn, Operation, TxtSet};

/// What a read found at one owner name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The TXT RRset, or `None` when the name holds no TXT records.
    pub set: Option<TxtSet>,
    /// The host's own form of what was read, kept for a compare-and-swap write
    /// that must echo it byte for byte (Route 53 and Google require the exact
    /// stored values in a deletion; Azure's ETag; record ids). Opaque to callers;
    /// `None` when the adapter needs nothing of the kind.
    pub version: Option<String>,
}

impl Observed {
    /// An observation without a host token.
    pub fn of(set: Option<TxtSet>) -> Observed {
        Observed { set, version: None }
    }

    /// Whether `now` (a later read) holds the same RRset: the same TTL and the
    /// same values, whatever the order and the split into character-strings.
    pub fn unchanged_in(&self, now: Option<&TxtSet>) -> bool {
        same_content(self.set.as_ref(), now)
    }
}

/// Whether two RRsets hold the same values (joined character-strings, as a
/// multiset) with the same TTL; two absent sets are the same.
pub fn same_content(a: Option<&TxtSet>, b: Option<&TxtSet>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            if a.ttl != b.ttl || a.records.len() != b.records.len() {
                return false;
            }
            let mut va: Vec<Vec<u8>> = a.records.iter().map(|r| r.value()).collect();
            let mut vb: Vec<Vec<u8>> = b.records.iter().map(|r| r.value()).collect();
            va.sort();
            vb.sort();
            va == vb
        }
        // An empty set read as "present" is the same as no set.
        (Some(s), None) | (None, Some(s)) => s.records.is_empty(),
    }
}

/// What [`crate::Provider::read_sets`] returns: one [`Observed`] per owner name
/// asked for (absent sets included).
pub type ZoneSets = BTreeMap<Fqdn, Observed>;

/// One owner name's change: the RRset as read, and the RRset wanted (`None` or
/// an empty set deletes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtChange {
    /// The owner name (inside the zone).
    pub name: Fqdn,
    /// The RRset as the caller read it; a compare-and-swap host applies the
    /// change only while it still holds exactly this.
    pub old: Observed,
    /// The RRset wanted; `None` (or no records) deletes the RRset.
    pub new: Option<TxtSet>,
}

impl TxtChange {
    /// The set to write, or `None` for a deletion.
    pub fn wanted(&self) -> Option<&TxtSet> {
        self.new.as_ref().filter(|s| !s.records.is_empty())
    }

    /// For a host that cannot refuse a write itself: given `now`, the RRset
    /// it holds at the name, read just before writing, whether the change is
    /// still to be written. `false` when the host already holds what is wanted
    /// (the same change applied before: nothing to write, no request spent);
    /// `true` when it still holds what was read.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] (for `provider`) when the RRset is neither what
    /// was read nor what is wanted: someone else changed it; read again.
    pub fn still_to_write(
        &self,
        provider: &'static str,
        now: Option<&TxtSet>,
    ) -> Result<bool, Error> {
        if same_content(self.wanted(), now) {
            return Ok(false);
        }
        if self.old.unchanged_in(now) {
            return Ok(true);
        }
        Err(conflict(
            provider,
            self.operation(),
            &self.name,
            "the TXT RRset changed since it was read",
        ))
    }

    /// The operation this change is, for errors.
    pub fn operation(&self) -> Operation {
        if self.wanted().is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        }
    }
}

/// What an adapter's [`crate::Provider::apply`] guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ApplyTraits {
    /// All the changes of one apply land, or none does.
    pub atomic: bool,
    /// The host itself refuses the write when an RRset is no longer what was read.
    pub compare_and_swap: bool,
    /// The change lands later, made by someone else (the `manual` host's
    /// operator): nothing can be read back at once; the caller waits for the
    /// authoritative servers to serve it.
    pub deferred: bool,
}

/// A failed [`crate::Provider::apply`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct ApplyError {
    /// Owner names whose change was applied before the failure (always empty
    /// for an atomic apply), in the order written.
    pub written: Vec<Fqdn>,
    /// The failure; [`ErrorKind::Conflict`] when a precondition failed (the
    /// RRset changed since it was read): read again, plan again, retry.
    pub error: Error,
}

impl ApplyError {
    /// A failure before anything was written.
    pub fn nothing_written(error: Error) -> ApplyError {
        ApplyError {
            written: Vec::new(),
            error,
        }
    }

    /// Whether the failure is a failed precondition (retry after a new read).
    pub fn is_conflict(&self) -> bool {
        self.error.kind == ErrorKind::Conflict
    }
}

/// The conflict error adapters return when an RRset is not what was read.
pub fn conflict(kind: &'static str, op: Operation, name: &Fqdn, message: &str) -> Error {
    Error::new(
        kind,
        op,
        Some(name),
        ErrorKind::Conflict,
        message.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TxtRecord;

    fn set(ttl: u32, values: &[&str]) -> TxtSet {
        TxtSet {
            ttl,
            records: values.iter().map(TxtRecord::from_value).collect(),
        }
    }

    /// Written while the host holds what was read; nothing to write when it
    /// already holds what is wanted (even if that is not what was read); a
    /// conflict naming the name and operation otherwise.
    #[test]
    fn still_to_write_follows_what_the_host_holds_now() {
        let name = Fqdn::parse("_dmarc.example.com").unwrap();
        let change = TxtChange {
            name: name.clone(),
            old: Observed::of(Some(set(300, &["v=DMARC1; p=none"]))),
            new: Some(set(300, &["v=DMARC1; p=reject"])),
        };
        assert_eq!(
            change.still_to_write("t", change.old.set.as_ref()),
            Ok(true)
        );
        assert_eq!(change.still_to_write("t", change.new.as_ref()), Ok(false));
        let e = change
            .still_to_write("t", Some(&set(300, &["v=DMARC1; p=quarantine"])))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(
            (e.operation, e.name),
            (Operation::Replace, Some(name.to_string()))
        );
        let delete = TxtChange {
            new: None,
            ..change
        };
        assert_eq!(delete.still_to_write("t", None), Ok(false));
        assert_eq!(
            delete.still_to_write("t", delete.old.set.as_ref()),
            Ok(true)
        );
        let e = delete.still_to_write("t", Some(&set(60, &["v=DMARC1; p=none"])));
        assert_eq!(e.unwrap_err().operation, Operation::Delete);
    }

    #[test]
    fn same_content_ignores_order_and_split_but_not_ttl_or_values() {
        let a = set(300, &["one", "two"]);
        let mut b = set(300, &["two", "one"]);
        assert!(same_content(Some(&a), Some(&b)));
        b.records[0] = TxtRecord::from_parts(&["tw", "o"]).unwrap();
        assert!(same_content(Some(&a), Some(&b)));
        assert!(!same_content(Some(&a), Some(&set(600, &["one", "two"]))));
        assert!(!same_content(
            Some(&a),
            Some(&set(300, &["one", "two", "x"]))
        ));
        assert!(!same_content(Some(&a), None));
        assert!(same_content(Some(&set(300, &[])), None));
        assert!(same_content(None, None));
    }

    #[test]
    fn a_change_without_records_is_a_deletion() {
        let name = Fqdn::parse("_dmarc.example.com").unwrap();
        let c = TxtChange {
            name: name.clone(),
            old: Observed::of(Some(set(300, &["v=DMARC1; p=none"]))),
            new: Some(set(300, &[])),
        };
        assert_eq!(c.wanted(), None);
        assert_eq!(c.operation(), Operation::Delete);
        let c = TxtChange {
            new: Some(set(300, &["v=DMARC1; p=reject"])),
            ..c
        };
        assert_eq!(c.operation(), Operation::Replace);
    }
}

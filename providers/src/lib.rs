//! How maildns talks to DNS hosts.
//!
//! This crate moves TXT record sets to and from DNS hosts. It knows nothing of
//! SPF, DKIM or DMARC: callers hand it names and [`TxtRecord`]s, and every adapter
//! (one module per host under [`hosts`]) implements the same small [`Provider`]
//! trait, whose contract is written below and checked by one conformance suite.

#![deny(missing_docs)]

pub mod changeset;
pub mod descriptor;
pub mod error;
pub mod hosts;
pub mod http;
pub mod name;
pub mod pace;
pub mod registry;
pub mod secret;
pub mod txt;
pub mod window;

use std::time::Duration;

pub use changeset::{ApplyError, ApplyTraits, Observed, TxtChange, ZoneSets};
pub use error::{Error, ErrorKind, Operation};
pub use name::{Fqdn, NameError};
pub use secret::Secret;
pub use txt::{CharacterString, Split, Transport, TxtRecord};

/// A zone as a host knows it: its apex name and the host's own identifier for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone apex.
    pub name: Fqdn,
    /// The host's identifier (Cloudflare zone id, Route 53 hosted zone id, `example.com.` for PowerDNS).
    pub id: String,
}

/// All TXT records at one name, with the set's TTL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TxtSet {
    /// Time to live of the set, in seconds.
    pub ttl: u32,
    /// The records, each an ordered list of character-strings, in the host's order.
    pub records: Vec<TxtRecord>,
}

/// A request-rate limit a host documents: at most `requests` requests in any
/// window of length `per` (a sliding window), counted over the whole account or
/// per zone, for all requests or only reads or writes. maildns keeps to every
/// limit of a host at once ([`pace::Pacer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub per: Duration,
    /// What the requests are counted over.
    pub scope: RateScope,
    /// Which requests count.
    pub methods: RateMethods,
}

impl RateLimit {
    /// A limit on every request of the account.
    pub fn account(requests: u32, per: Duration) -> RateLimit {
        RateLimit {
            requests,
            per,
            scope: RateScope::Account,
            methods: RateMethods::All,
        }
    }

    /// Requests per second this limit sustains over its window.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64().max(1e-9)
    }
}

/// What a [`RateLimit`] counts requests over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    /// Every request made with the account's credential.
    #[default]
    Account,
    /// Each zone apart (deSEC counts RRset writes per domain).
    Zone,
}

/// Which requests a [`RateLimit`] counts, by HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateMethods {
    /// Every request.
    #[default]
    All,
    /// Requests that change something: POST, PUT, PATCH, DELETE.
    Writes,
    /// Requests that do not: GET, HEAD (and OPTIONS).
    Reads,
}

impl RateMethods {
    /// Whether a request with this method counts (`write`: POST, PUT, PATCH or DELETE).
    pub fn counts(self, write: bool) -> bool {
        match self {
            RateMethods::All => true,
            RateMethods::Writes => write,
            RateMethods::Reads => !write,
        }
    }
}

/// What a host can hold and how it may be driven, built from its descriptor
/// ([`descriptor::Descriptor::profile`], through [`registry::Host::profile`]).
///
/// Each adapter's `replace_txt` checks every record of the set against it
/// ([`Profile::check_set`]) before its first request for that set; sets that an
/// earlier call wrote stay written. Callers may compare it with what the host
/// really does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Most bytes in one character-string the host accepts (255 for all known hosts).
    pub max_string_bytes: usize,
    /// Most bytes in one record's joined value, when the host has a limit.
    pub max_value_bytes: Option<usize>,
    /// Most bytes of the record as the host counts it in its encoded form
    /// (quotes, escapes and separating spaces included), when it has such a limit.
    pub max_encoded_bytes: Option<usize>,
    /// Whether one record keeps several character-strings as sent. When false,
    /// the host holds the joined value: as one string, or (with `auto_split`)
    /// split by the host itself on the wire, so the split is not preserved.
    pub multi_string: bool,
    /// Whether the host splits one long string into 255-byte strings itself.
    pub auto_split: bool,
    /// Only printable ASCII (0x20..=0x7e) is accepted.
    pub printable_ascii_only: bool,
    /// Bytes the host refuses or mangles inside TXT data.
    pub forbidden_bytes: Vec<u8>,
    /// Lowest TTL the host accepts, in seconds; how it is known (and whether a
    /// lower TTL is refused before sending) is [`Profile::min_ttl_source`].
    pub min_ttl: u32,
    /// Whether [`Profile::min_ttl`] is the host's documented floor (enforced),
    /// a per-zone value the adapter reads (deSEC), or only a hint.
    pub min_ttl_source: MinTtlSource,
    /// The documented request-rate limits, all kept at once (empty: none).
    pub rate_limits: Vec<RateLimit>,
    /// Highest TTL the host accepts, in seconds, when it documents one
    /// (Cloudflare and deSEC 86,400; Gandi 2,592,000; RFC 2181 §8's 2^31 - 1
    /// for hosts that take any TTL). A larger TTL is refused before sending
    /// ([`LimitError::TtlTooHigh`], [`Profile::check_ttl`]).
    pub max_ttl: Option<u32>,
    /// The only TTLs the host keeps as given, in seconds, when it keeps only
    /// some (Linode's `ttl_sec` list; it rounds any other, so the set would
    /// never read back as written); empty: any TTL within the range.
    pub ttl_values: Vec<u32>,
    /// How many requests maildns may have in flight against the host at once.
    pub concurrency: usize,
    /// The host's own authoritative servers serve a write at once (self-hosted
    /// PowerDNS, an RFC 2136 primary): what they serve is worth asking right
    /// after a write. Cloud hosts propagate later; a zone file is served once the
    /// operator's server reloads it.
    pub serves_at_once: bool,
    /// Bytes the host drops from the start and the end of a value (Scaleway
    /// trims spaces and edge `"`): a value starting or ending with one cannot be
    /// held as it is.
    pub edge_bytes_dropped: Vec<u8>,
    /// The host refuses an empty value (Bunny DNS, Porkbun, DNSimple).
    pub empty_refused: bool,
    /// How long the host documents (or is known) to take before its name
    /// servers serve a change the API accepted (netcup, IONOS, Linode publish on
    /// a schedule); `None` when it publishes at once or says nothing.
    pub publish_delay: Option<std::time::Duration>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            max_string_bytes: txt::MAX_STRING,
            max_value_bytes: None,
            max_encoded_bytes: None,
            multi_string: true,
            auto_split: false,
            printable_ascii_only: false,
            forbidden_bytes: Vec::new(),
            min_ttl: 1,
            min_ttl_source: MinTtlSource::Hint,
            rate_limits: Vec::new(),
            max_ttl: None,
            ttl_values: Vec::new(),
            concurrency: 8,
            serves_at_once: false,
            edge_bytes_dropped: Vec::new(),
            empty_refused: false,
            publish_delay: None,
        }
    }
}

/// How a host's lowest TTL ([`Profile::min_ttl`]) is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MinTtlSource {
    /// Not documented: `min_ttl` is what other tools use, a hint for choosing
    /// a TTL (diagnostics, tests), never a reason to refuse one.
    #[default]
    Hint,
    /// The host documents it, or refuses lower TTLs with an error: a lower TTL
    /// is refused before sending ([`Profile::check_ttl`]), and `maildns check`
    /// and `plan` report it from the configuration.
    Host,
    /// Each zone has its own, which the adapter reads from the host (deSEC's
    /// `minimum_ttl` per domain) and checks before writing; `min_ttl` is the
    /// usual value.
    PerZone,
}

/// A record a host cannot hold as it is, found before the set holding it is sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "limit", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitError {
    /// A string is longer than the host takes.
    #[error("a character-string of {len} bytes is over the host's limit of {max}")]
    StringTooLong {
        /// Length of the string.
        len: usize,
        /// The host's limit.
        max: usize,
    },
    /// The joined value is longer than the host takes.
    #[error("the value is {len} bytes, over the host's limit of {max}")]
    ValueTooLong {
        /// Length of the value.
        len: usize,
        /// The host's limit.
        max: usize,
    },
    /// The encoded record is longer than the host takes.
    #[error(
        "the record is {len} bytes as the host counts it (quotes and escapes included), over its limit of {max}"
    )]
    EncodedTooLong {
        /// Encoded length.
        len: usize,
        /// The host's limit.
        max: usize,
    },
    /// The host keeps one string per record and this value needs several.
    #[error("the host stores a single character-string per record and this value needs {strings}")]
    SingleStringOnly {
        /// Strings needed.
        strings: usize,
    },
    /// A byte the host refuses or alters.
    #[error("byte 0x{byte:02x} at offset {at} is not accepted by the host")]
    ForbiddenByte {
        /// The byte.
        byte: u8,
        /// Offset in the joined value.
        at: usize,
    },
    /// The value starts or ends with a byte the host drops there.
    #[error(
        "byte 0x{byte:02x} at offset {at} is at the edge of the value, where the host drops it"
    )]
    EdgeByte {
        /// The byte.
        byte: u8,
        /// Offset in the joined value (0 or its last byte).
        at: usize,
    },
    /// The host refuses an empty value.
    #[error("the value is empty, which the host refuses")]
    Empty,
    /// The records of one RRset together are longer than the host takes
    /// (Cloudflare: 8,192 characters of content for one name and type).
    #[error("the RRset's records hold {len} characters together, over the host's limit of {max}")]
    SetTooLong {
        /// Characters of the whole set, as the host counts them.
        len: usize,
        /// The host's limit.
        max: usize,
    },
    /// The TTL is above the host's maximum.
    #[error("a TTL of {ttl} s is over the host's maximum of {max} s")]
    TtlTooHigh {
        /// The TTL asked for, in seconds.
        ttl: u32,
        /// The host's maximum, in seconds.
        max: u32,
    },
    /// The TTL is below the host's minimum (the host's documented floor, or
    /// the zone's own as read from the host).
    #[error("a TTL of {ttl} s is under the host's minimum of {min} s")]
    TtlTooLow {
        /// The TTL asked for, in seconds.
        ttl: u32,
        /// The host's (or the zone's) minimum, in seconds.
        min: u32,
    },
}

impl Profile {
    /// Checks that the host can hold `record` unchanged.
    ///
    /// # Errors
    /// The first [`LimitError`] found: a string, value or encoded form over the
    /// host's limit (bytes), or a byte the host refuses.
    pub fn check(&self, record: &TxtRecord) -> Result<(), LimitError> {
        for s in record.strings() {
            if s.len() > self.max_string_bytes {
                return Err(LimitError::StringTooLong {
                    len: s.len(),
                    max: self.max_string_bytes,
                });
            }
        }
        // A host that keeps one string but splits on the wire itself (auto_split)
        // gets the joined value from its adapter.
        if !self.multi_string && !self.auto_split && record.strings().len() > 1 {
            return Err(LimitError::SingleStringOnly {
                strings: record.strings().len(),
            });
        }
        if let Some(max) = self.max_value_bytes
            && record.value_len() > max
        {
            return Err(LimitError::ValueTooLong {
                len: record.value_len(),
                max,
            });
        }
        if let Some(max) = self.max_encoded_bytes {
            let len = record.to_presentation().len();
            if len > max {
                return Err(LimitError::EncodedTooLong { len, max });
            }
        }
        for (at, &byte) in record.value().iter().enumerate() {
            if (self.printable_ascii_only && !(0x20..=0x7e).contains(&byte))
                || self.forbidden_bytes.contains(&byte)
            {
                return Err(LimitError::ForbiddenByte { byte, at });
            }
        }
        let value = record.value();
        if self.empty_refused && value.is_empty() {
            return Err(LimitError::Empty);
        }
        let edges = [
            (0, value.first()),
            (value.len().saturating_sub(1), value.last()),
        ];
        for (at, byte) in edges {
            if let Some(&byte) = byte
                && self.edge_bytes_dropped.contains(&byte)
            {
                return Err(LimitError::EdgeByte { byte, at });
            }
        }
        Ok(())
    }

    /// Checks every record of a set (adapters call it before their first request
    /// for that set): the first one the host cannot hold unchanged gives an
    /// [`ErrorKind::Limit`] error for `kind`, `op`, `name`.
    ///
    /// # Errors
    /// [`ErrorKind::Limit`] for the first record [`Profile::check`] refuses; the
    /// message quotes that record (cut at 80 characters).
    pub fn check_set(
        &self,
        kind: &'static str,
        op: Operation,
        name: &Fqdn,
        records: &[TxtRecord],
    ) -> Result<(), Error> {
        for r in records {
            self.check(r).map_err(|l| {
                let shown = r.to_presentation();
                let shown = if shown.chars().count() <= 80 {
                    shown
                } else {
                    format!("{}...", shown.chars().take(77).collect::<String>())
                };
                Error::new(
                    kind,
                    op,
                    Some(name),
                    ErrorKind::Limit(l),
                    format!("refused before sending: {shown}"),
                )
            })?;
        }
        Ok(())
    }

    /// The TTLs the host takes whatever the zone, as its descriptor documents
    /// them: the lowest when [`MinTtlSource::Host`], and the highest.
    pub fn static_ttl_range(&self) -> (Option<u32>, Option<u32>) {
        let min = (self.min_ttl_source == MinTtlSource::Host).then_some(self.min_ttl);
        (min, self.max_ttl)
    }

    /// Checks a TTL against [`Profile::static_ttl_range`].
    ///
    /// # Errors
    /// The [`LimitError::TtlTooLow`] or [`LimitError::TtlTooHigh`] found.
    pub fn ttl_within(&self, ttl: u32) -> Result<(), LimitError> {
        match self.static_ttl_range() {
            (Some(min), _) if ttl < min => Err(LimitError::TtlTooLow { ttl, min }),
            (_, Some(max)) if ttl > max => Err(LimitError::TtlTooHigh { ttl, max }),
            _ => Ok(()),
        }
    }

    /// Checks a set's TTL against the host's documented minimum (when
    /// [`MinTtlSource::Host`]) and maximum ([`Profile::max_ttl`]).
    ///
    /// # Errors
    /// [`ErrorKind::Limit`] with [`LimitError::TtlTooLow`] or
    /// [`LimitError::TtlTooHigh`] naming `kind`, `op`, `name`.
    pub fn check_ttl(
        &self,
        kind: &'static str,
        op: Operation,
        name: &Fqdn,
        ttl: u32,
    ) -> Result<(), Error> {
        self.ttl_within(ttl).map_err(|l| {
            Error::new(
                kind,
                op,
                Some(name),
                ErrorKind::Limit(l),
                "refused before sending",
            )
        })
    }

    /// Re-splits a value so it suits this host: strings of at most `max_string_bytes`.
    pub fn shape(&self, record: &TxtRecord) -> TxtRecord {
        if record
            .strings()
            .iter()
            .all(|s| s.len() <= self.max_string_bytes)
        {
            record.clone()
        } else {
            TxtRecord::split_max(&record.value(), self.max_string_bytes)
        }
    }
}

/// A DNS host that holds TXT record sets.
///
/// # Contract
/// - Names are always within the zone passed in; adapters never touch other names.
/// - [`Provider::read_txt`] returns the set exactly as the host holds it, each
///   record's character-strings in order, or `None` when there is no TXT set.
/// - [`Provider::replace_txt`] makes the set at `name` exactly `set` (all records,
///   that TTL). Writing the set the host already holds is harmless. An empty
///   `set.records` deletes the set.
/// - [`Provider::delete_txt`] removes the whole TXT set at `name`; deleting a set
///   that does not exist succeeds.
/// - [`Provider::replace_txt`] checks every record of the set against
///   [`Provider::profile`] before its first request for that set (hosts that do not
///   keep string boundaries re-split each record to the host's string size first):
///   a record the host would mangle is refused with [`ErrorKind::Limit`] and
///   nothing of that set is sent. The check is per call: a caller writing several
///   names has already written the earlier ones.
/// - Change sets ([`changeset`]): [`Provider::read_sets`] reads the RRsets of
///   several owner names of one zone and [`Provider::apply`] writes a change set
///   to it, each in as few requests as the host allows. [`Provider::apply_traits`]
///   declares whether an apply is atomic and whether the host itself enforces
///   that each RRset is still the one read (compare-and-swap); without it the
///   adapter re-reads each RRset just before writing it, or documents the
///   window it leaves (PowerDNS). A failed precondition
///   is [`ErrorKind::Conflict`] and nothing more is written; a failed apply
///   names the owner names it did write ([`ApplyError::written`]), none when
///   atomic. Re-applying a change set that is already in place is harmless.
/// - Errors carry the provider, operation, name, HTTP status or DNS rcode, and the
///   host's own message — never a credential.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Short code of the host kind, e.g. `powerdns`.
    fn kind(&self) -> &'static str;

    /// What the host can hold and how hard it may be driven.
    fn profile(&self) -> &Profile;

    /// The zone that holds `name`: the longest matching zone the host serves.
    ///
    /// # Errors
    /// [`ErrorKind::ZoneNotFound`] when the host serves no zone at or above `name`;
    /// otherwise the host's failure ([`ErrorKind::Auth`], [`ErrorKind::Protocol`], ...).
    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error>;

    /// The TXT set at `name`, as the host holds it.
    ///
    /// # Errors
    /// The host's failure; [`ErrorKind::Protocol`] when its answer is not in the
    /// host's documented format (nothing is guessed from it).
    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error>;

    /// Makes the TXT set at `name` exactly `set`.
    ///
    /// # Errors
    /// [`ErrorKind::Limit`] for a record the host cannot hold (nothing of the set
    /// is sent), or the host's failure.
    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error>;

    /// Removes the TXT set at `name` (succeeds when absent).
    ///
    /// # Errors
    /// The host's failure.
    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error>;

    /// The zone with apex `apex` when the adapter can name it without asking the
    /// host (PowerDNS, RFC 2136 and zone files identify a zone by its name), so a
    /// caller that knows the apex (configured, or found earlier in the run) skips
    /// [`Provider::find_zone`]. `None` (the default) when the host's identifier
    /// must be looked up.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        let _ = apex;
        None
    }

    /// What [`Provider::apply`] guarantees on this host (see [`changeset`]).
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits::default()
    }

    /// What [`Provider::apply`] guarantees for this change set. The default is
    /// [`Provider::apply_traits`]; a host whose requests have size limits cuts
    /// a change set over them into several requests and declares that apply
    /// not atomic (Route 53: 1,000 values or 32,000 value characters a batch).
    fn apply_traits_for(&self, changes: &[TxtChange]) -> ApplyTraits {
        let _ = changes;
        self.apply_traits()
    }

    /// The TXT RRsets at `names` (all inside `zone`), in as few requests as the
    /// host allows; one entry per name asked for, absent sets included.
    ///
    /// The default reads each name with [`Provider::read_txt`].
    ///
    /// # Errors
    /// The host's failure, as for [`Provider::read_txt`].
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let mut out = ZoneSets::new();
        for name in names {
            if out.contains_key(name) {
                continue;
            }
            let set = self.read_txt(zone, name).await?;
            out.insert(name.clone(), Observed::of(set));
        }
        Ok(out)
    }

    /// Applies a change set to `zone`, in as few requests as the host allows.
    ///
    /// Every wanted RRset is checked against [`Provider::profile`] before the
    /// first request: a record the host cannot hold refuses the whole change set
    /// with nothing sent. Changes whose RRset already equals the wanted one are
    /// still sent (harmless); callers leave them out.
    ///
    /// The default writes one owner name at a time with
    /// [`Provider::replace_if_unchanged`], in order, and stops at the first
    /// failure, reporting the names written before it.
    ///
    /// # Errors
    /// [`ApplyError`]: the names written before the failure and the failure;
    /// [`ErrorKind::Conflict`] when an RRset was no longer what was read.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        for c in changes {
            if let Some(set) = c.wanted() {
                hosts::check_all(self.kind(), self.profile(), &c.name, set)
                    .map_err(ApplyError::nothing_written)?;
            }
        }
        let mut written = Vec::new();
        for c in changes {
            if let Err(error) = self.replace_if_unchanged(zone, c).await {
                return Err(ApplyError { written, error });
            }
            written.push(c.name.clone());
        }
        Ok(())
    }

    /// Writes one owner name's change unless its RRset changed since it was
    /// read. The default reads the RRset again just before writing
    /// ([`Provider::read_txt`]) and refuses with [`ErrorKind::Conflict`] when it
    /// differs from [`TxtChange::old`] (a set already as wanted is left as it
    /// is, so re-applying a change is harmless); adapters whose write already reads the
    /// records (per-record hosts) fold the check into that read.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`], or the host's failure.
    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let now = self.read_txt(zone, &change.name).await?;
        // Already as wanted (the same change applied before): nothing to write.
        if changeset::same_content(change.wanted(), now.as_ref()) {
            return Ok(());
        }
        if !change.old.unchanged_in(now.as_ref()) {
            return Err(changeset::conflict(
                self.kind(),
                change.operation(),
                &change.name,
                "the TXT RRset changed since it was read",
            ));
        }
        match change.wanted() {
            Some(set) => self.replace_txt(zone, &change.name, set).await,
            None => self.delete_txt(zone, &change.name).await,
        }
    }

    /// Rate-limit headers (`name`, `value`) seen on the host's latest answer that
    /// carried any, for diagnostics; empty for hosts without HTTP headers.
    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The requests [`Provider::read_sets`] of `names` owner names and
    /// [`Provider::apply`] of `changed` changes take on this host, for estimating
    /// how long pacing ([`pace`]) makes a run. The default follows
    /// [`Provider::apply_traits`]: an atomic apply is taken as one read of the zone
    /// and one write (the hosts with batch endpoints); otherwise each name is read,
    /// and each change is read again and written (the per-name defaults).
    fn requests_per_zone(&self, names: usize, changed: usize) -> ZoneRequests {
        if self.apply_traits().atomic {
            ZoneRequests {
                reads: usize::from(names > 0),
                writes: usize::from(changed > 0),
            }
        } else {
            ZoneRequests {
                reads: names + changed,
                writes: changed,
            }
        }
    }
}

/// Requests one zone's read and write take ([`Provider::requests_per_zone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZoneRequests {
    /// Requests that read (GET, or DNS queries).
    pub reads: usize,
    /// Requests that write.
    pub writes: usize,
}

/// Walks up from `name` through its parents, yielding candidate zone apexes
/// (longest first). Hosts without a "which zone holds this name" query use it.
pub fn zone_candidates(name: &Fqdn) -> Vec<Fqdn> {
    let mut out = vec![name.clone()];
    let mut cur = name.clone();
    while let Some(p) = cur.parent() {
        out.push(p.clone());
        cur = p;
    }
    out
}

/// [`zone_candidates`] without the one-label name at the end (a top-level
/// domain): for hosts whose zones are domains registered with them, or below.
pub fn domain_candidates(name: &Fqdn) -> Vec<Fqdn> {
    let mut out = zone_candidates(name);
    out.retain(|c| c.as_str().contains('.'));
    out
}

/// [`domain_candidates`] without names that have a label starting with `_`
/// (`_dmarc`, `_domainkey`): for hosts that cannot hold a zone by such a name
/// and answer a question about one with a validation error, not "not found".
pub fn hostname_candidates(name: &Fqdn) -> Vec<Fqdn> {
    let mut out = domain_candidates(name);
    out.retain(|c| !c.as_str().split('.').any(|l| l.starts_with('_')));
    out
}

/// What asking a host about one candidate apex found ([`walk_zones`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneProbe {
    /// The account holds a zone by that name; the host's id for it.
    Found(String),
    /// No zone of the account by that name, with the host's words when it said any.
    Absent(Option<String>),
}

impl ZoneProbe {
    /// `Found(id)` for `Ok(id)`; `Absent` with the host's message for an error
    /// that `absent` says means "not a zone of this account" (a 404, the host's
    /// own code for it); any other error as it is.
    ///
    /// # Errors
    /// The error of `r` when `absent` does not accept it.
    pub fn found_unless(
        r: Result<String, Error>,
        absent: impl FnOnce(&Error) -> bool,
    ) -> Result<ZoneProbe, Error> {
        match r {
            Ok(id) => Ok(ZoneProbe::Found(id)),
            Err(e) if absent(&e) => Ok(ZoneProbe::Absent(Some(e.message))),
            Err(e) => Err(e),
        }
    }
}

/// The zone that holds `name`, for hosts that can only be asked about one apex
/// at a time: asks `probe` about each of `candidates` in order (normally
/// [`zone_candidates`], longest first) and answers with the first it finds.
///
/// # Errors
/// The first error `probe` returns (the walk stops there: only "absent" means
/// "try the parent"); [`ErrorKind::ZoneNotFound`] with `not_found` and the
/// host's last words, in parentheses, when no candidate is a zone.
pub async fn walk_zones<F, Fut>(
    provider: &'static str,
    name: &Fqdn,
    candidates: Vec<Fqdn>,
    not_found: &str,
    mut probe: F,
) -> Result<Zone, Error>
where
    F: FnMut(Fqdn) -> Fut,
    Fut: std::future::Future<Output = Result<ZoneProbe, Error>>,
{
    let mut last = None;
    for cand in candidates {
        match probe(cand.clone()).await? {
            ZoneProbe::Found(id) => return Ok(Zone { id, name: cand }),
            ZoneProbe::Absent(words) => last = words.or(last),
        }
    }
    Err(Error::new(
        provider,
        Operation::FindZone,
        Some(name),
        ErrorKind::ZoneNotFound,
        match last {
            Some(m) => format!("{not_found} ({m})"),
            None => not_found.to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_check_reports_each_limit() {
        let p = Profile {
            max_encoded_bytes: Some(20),
            ..Profile::default()
        };
        let r = TxtRecord::from_value(b"0123456789012345678");
        assert_eq!(
            p.check(&r),
            Err(LimitError::EncodedTooLong { len: 21, max: 20 })
        );
        let p = Profile {
            multi_string: false,
            ..Profile::default()
        };
        let r = TxtRecord::from_value(vec![b'a'; 300]);
        assert_eq!(
            p.check(&r),
            Err(LimitError::SingleStringOnly { strings: 2 })
        );
        let p = Profile {
            printable_ascii_only: true,
            ..Profile::default()
        };
        assert_eq!(
            p.check(&TxtRecord::from_value(b"ab\xffc")),
            Err(LimitError::ForbiddenByte { byte: 0xff, at: 2 })
        );
        assert!(Profile::default().check(&r).is_ok());
        let p = Profile {
            edge_bytes_dropped: vec![b' ', b'"'],
            empty_refused: true,
            ..Profile::default()
        };
        assert_eq!(
            p.check(&TxtRecord::from_value(b"ab ")),
            Err(LimitError::EdgeByte { byte: b' ', at: 2 })
        );
        assert_eq!(
            p.check(&TxtRecord::from_value(b"\"ab")),
            Err(LimitError::EdgeByte { byte: b'"', at: 0 })
        );
        assert!(p.check(&TxtRecord::from_value(b"a \"b")).is_ok());
        assert_eq!(p.check(&TxtRecord::from_value(b"")), Err(LimitError::Empty));
        assert!(
            Profile::default()
                .check(&TxtRecord::from_value(b""))
                .is_ok()
        );
    }

    #[test]
    fn check_set_refuses_the_first_record_that_does_not_fit() {
        let p = Profile {
            max_encoded_bytes: Some(100),
            ..Profile::default()
        };
        let name = Fqdn::parse("x.example.com").unwrap();
        let ok = TxtRecord::from_value(b"short");
        let long = TxtRecord::from_value(vec![b'a'; 200]);
        assert!(
            p.check_set("t", Operation::Replace, &name, std::slice::from_ref(&ok))
                .is_ok()
        );
        let e = p
            .check_set("t", Operation::Replace, &name, &[ok, long])
            .unwrap_err();
        assert!(matches!(
            e.kind,
            ErrorKind::Limit(LimitError::EncodedTooLong { max: 100, .. })
        ));
        assert_eq!(e.name.as_deref(), Some("x.example.com"));
        assert!(
            e.message.starts_with("refused before sending: \"aaa") && e.message.ends_with("..."),
            "{}",
            e.message
        );
    }

    #[test]
    fn candidates_without_the_tld_or_underscore_labels() {
        let n = Fqdn::parse("a._domainkey.example.com").unwrap();
        let strings = |v: Vec<Fqdn>| v.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        assert_eq!(
            strings(domain_candidates(&n)),
            [
                "a._domainkey.example.com",
                "_domainkey.example.com",
                "example.com"
            ]
        );
        assert_eq!(strings(hostname_candidates(&n)), ["example.com"]);
        assert!(domain_candidates(&Fqdn::parse("com").unwrap()).is_empty());
    }

    /// The walk stops at the first zone found, goes on past "absent", stops
    /// at any other error, and says what the host last said when none is found.
    #[tokio::test]
    async fn walk_zones_takes_the_first_found_and_stops_at_errors() {
        let n = Fqdn::parse("_dmarc.mail.example.com").unwrap();
        let asked = std::sync::Mutex::new(Vec::new());
        let z = walk_zones("t", &n, zone_candidates(&n), "none", |c| {
            asked.lock().unwrap().push(c.to_string());
            let found = c.as_str() == "example.com";
            async move {
                Ok(if found {
                    ZoneProbe::Found("id-1".into())
                } else {
                    ZoneProbe::Absent(Some(format!("no {c}")))
                })
            }
        })
        .await
        .unwrap();
        assert_eq!((z.name.as_str(), z.id.as_str()), ("example.com", "id-1"));
        assert_eq!(
            *asked.lock().unwrap(),
            ["_dmarc.mail.example.com", "mail.example.com", "example.com"]
        );
        let e = walk_zones("t", &n, zone_candidates(&n), "none here", |c| async move {
            Ok(ZoneProbe::Absent(
                (c.as_str() == "example.com").then(|| "404".to_string()),
            ))
        })
        .await
        .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::ZoneNotFound, "none here (404)")
        );
        let e = walk_zones("t", &n, zone_candidates(&n), "none", |_| async {
            ZoneProbe::found_unless(
                Err(Error::new(
                    "t",
                    Operation::FindZone,
                    None,
                    ErrorKind::Auth,
                    "denied",
                )),
                |e| e.kind == ErrorKind::ZoneNotFound,
            )
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
    }

    #[test]
    fn zone_candidates_walk_up() {
        let n = Fqdn::parse("a._domainkey.example.com").unwrap();
        let c: Vec<String> = zone_candidates(&n).iter().map(|f| f.to_string()).collect();
        assert_eq!(
            c,
            [
                "a._domainkey.example.com",
                "_domainkey.example.com",
                "example.com",
                "com"
            ]
        );
    }
}

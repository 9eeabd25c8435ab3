//! `plan` and `publish` as one library call: [`run`] prepares each domain's
//! DKIM keys (the first key made by the rotation runner's own generate step),
//! builds the desired records, reads, plans and writes them through
//! [`crate::publish`], saves what the hosts did not keep, the ledger and the
//! keys' new status, and returns a [`Report`]. [`wait`] then watches the
//! changes reach every authoritative server (`publish --wait`).
//!
//! A domain goes down the layers from here: configuration -> DKIM entries
//! ([`crate::rotation::keyring::prepare_publish`]) -> desired records
//! ([`crate::publish::for_domain`]) -> plan and write
//! ([`crate::publish::run_checked`]) -> the provider's HTTP requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use maildns_providers::{Fqdn, NameError};
use serde::Serialize;

use crate::accounts::Providers;
use crate::config::{Config, Domain};
use crate::gate::GateError;
use crate::propagation::{
    Check, Nameserver, Progress, Querier, WatchOptions, WatchReport, Watcher, authoritative_servers,
};
use crate::publish::{
    self, Action, DomainError, DomainJob, DomainOutcome, Ledger, ServedCheck, for_domain,
    ledger::{Change as LedgerChange, LedgerError, Updates},
};
use crate::rotation::keyring::{
    KeyringError, after_publish, max_bits_for, needs_first_key, prepare_publish,
    record_publish_failure, sweep,
};
use crate::rotation::{SqliteStore, Store, StoreError};

pub use crate::publish::Mode;

/// What one `plan` or `publish` run does.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Plan only, or write.
    pub mode: Mode,
    /// Only these configured domains (empty: every configured domain).
    pub domains: Vec<Fqdn>,
    /// Allow deleting more than `publish.max_delete_share` of the managed
    /// records in one run.
    pub force: bool,
    /// Asks the configured `nameservers` of hosts that serve writes at once
    /// ([`maildns_providers::Profile::serves_at_once`]) after each write.
    pub querier: Querier,
    /// The time of the run (key creation, events, saved diagnoses).
    pub now: DateTime<Utc>,
}

/// Why a run stopped before it had a report (a domain's own failure is not an
/// error here: it is in its [`DomainOutcome`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The configuration fails the lint gate (nothing was done).
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The state store failed ([`StoreError::Locked`]: another maildns holds it).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state directory cannot be created.
    #[error("creating state_dir {path}: {error}")]
    StateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The ledger of earlier runs cannot be read or saved.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A record name cannot be formed (selector and domain too long).
    #[error(transparent)]
    Name(#[from] NameError),
    /// A DKIM key cannot be prepared, generated, swept or its state advanced.
    #[error("{message}")]
    Keys {
        /// What failed, with its causes.
        message: String,
    },
    /// A value a host did not keep could not be saved as its diagnosis.
    #[error("saving the read-back diagnosis: {0}")]
    Diagnosis(StoreError),
}

/// Keeps the gate's and the store's errors typed (exit codes depend on them);
/// any other key error becomes [`PublishError::Keys`] with its whole chain.
fn keys_error(e: impl Into<KeyringError>) -> PublishError {
    match e.into() {
        KeyringError::Gate(g) => PublishError::Gate(g),
        KeyringError::Store(s) => PublishError::Store(s),
        e => PublishError::Keys {
            message: crate::error::chain(&e),
        },
    }
}

/// Counts over every domain of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Domains in the run.
    pub domains: usize,
    /// Domains that failed (or were refused).
    pub failed: usize,
    /// Names planned to be created.
    pub create: usize,
    /// Names planned to be updated.
    pub update: usize,
    /// Names planned to be deleted.
    pub delete: usize,
    /// Names already in sync.
    pub in_sync: usize,
    /// Changes written.
    pub applied: usize,
    /// Changes handed to an operator to make (`manual` accounts), not yet made.
    pub handed_over: usize,
}

/// A warning about one domain's DKIM keys (e.g. a key size the host cannot hold).
#[derive(Debug, Clone)]
pub struct DomainWarning {
    /// The domain.
    pub domain: Fqdn,
    /// The warning, without the domain.
    pub message: String,
}

/// One domain's watch after publishing.
#[derive(Debug, Clone, Serialize)]
pub struct DomainWatch {
    /// The domain.
    pub domain: String,
    /// The authoritative servers watched.
    pub servers: Vec<Nameserver>,
    /// Why the watch could not run (no servers found).
    pub error: Option<String>,
    /// The watch, when it ran.
    pub report: Option<WatchReport>,
}

/// What a run did (the `--json` document of `plan` and `publish`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether changes were written ([`Mode::Apply`]).
    pub applied: bool,
    /// Counts.
    pub summary: Summary,
    /// Each domain, in configuration order.
    pub domains: Vec<DomainOutcome>,
    /// The watches of [`wait`], when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<DomainWatch>>,
    /// Warnings about DKIM keys.
    #[serde(skip)]
    pub warnings: Vec<DomainWarning>,
    /// Accounts whose host held less than sent: the largest RSA size in bits
    /// it holds intact, saved for the next run or rotation step.
    #[serde(skip)]
    pub saved_limits: Vec<(String, u32)>,
    /// Domains with DKIM settings that have no key yet (plan).
    #[serde(skip)]
    pub without_key: Vec<Fqdn>,
}

impl Report {
    /// Changes planned (or written) in the run.
    pub fn pending(&self) -> usize {
        self.summary.create + self.summary.update + self.summary.delete
    }

    /// True when a domain failed or a watch could not run.
    pub fn failed(&self) -> bool {
        self.summary.failed > 0 || self.watch.iter().flatten().any(|w| w.error.is_some())
    }

    /// True when a watch ended before every server served the changes.
    pub fn timed_out(&self) -> bool {
        self.watch
            .iter()
            .flatten()
            .any(|w| w.report.as_ref().is_some_and(|r| !r.propagated))
    }
}

/// The configured domains `opts` names, in configuration order.
fn selected<'a>(config: &'a Config, opts: &PublishOptions) -> Vec<&'a Domain> {
    config
        .domains
        .iter()
        .filter(|d| opts.domains.is_empty() || opts.domains.contains(&d.name))
        .collect()
}

/// Opens the state store a run of `opts` needs: none when no selected domain
/// has DKIM settings; for [`Mode::Apply`], created and locked; for
/// [`Mode::Plan`], read-only and only when it exists (no store: no keys yet).
///
/// # Errors
/// The state directory cannot be created; the store cannot be opened, or is
/// locked by another maildns ([`StoreError::Locked`]).
pub fn open_store(
    config: &Config,
    opts: &PublishOptions,
) -> Result<Option<SqliteStore>, PublishError> {
    if !selected(config, opts).iter().any(|d| d.dkim.is_some()) {
        return Ok(None);
    }
    match opts.mode {
        Mode::Apply => {
            std::fs::create_dir_all(&config.state_dir).map_err(|error| PublishError::StateDir {
                path: config.state_dir.clone(),
                error,
            })?;
            Ok(Some(SqliteStore::open_locked(&config.state_dir)?))
        }
        Mode::Plan => Ok(SqliteStore::open_existing(&config.state_dir)?),
    }
}

/// Domain leases held by a run, given back when it ends (see
/// [`Store::lease`]; nothing on the embedded store).
struct Leases<'a> {
    store: &'a dyn Store,
    held: Vec<Fqdn>,
}

impl<'a> Leases<'a> {
    fn take<'d>(
        store: &'a dyn Store,
        domains: impl Iterator<Item = &'d Fqdn>,
    ) -> Result<Leases<'a>, StoreError> {
        let mut leases = Leases {
            store,
            held: Vec::new(),
        };
        for d in domains {
            store.lease(d)?;
            leases.held.push(d.clone());
        }
        Ok(leases)
    }
}

impl Drop for Leases<'_> {
    fn drop(&mut self) {
        for d in &self.held {
            if let Err(e) = self.store.release(d) {
                tracing::warn!(domain = %d, "cannot release the lease (it expires by itself): {e}");
            }
        }
    }
}

/// Runs `plan` or `publish` over the selected domains with the connected
/// `providers` (an account missing from them fails its domains) and `store`
/// (from [`open_store`]).
///
/// With [`Mode::Apply`]: left-over key material is swept first; a domain with
/// DKIM settings and no key gets its first key(s), made and saved before
/// anything is published; after the writes, a value a host did not keep is
/// saved as its diagnosis (the next run sizes the key for it), the ledger of
/// published SPF/DMARC/ADSP values is updated, and freshly published keys move
/// on to propagation.
///
/// # Errors
/// See [`PublishError`]; each domain's own failure is in the report instead.
pub async fn run(
    config: &Config,
    providers: &Providers,
    store: Option<&dyn Store>,
    opts: &PublishOptions,
) -> Result<Report, PublishError> {
    run_inner(config, providers, store, opts, None).await
}

/// Like [`run`], handing each domain's outcome to `each`, in configuration
/// order, as soon as it is known, instead of keeping it in the report (whose
/// `domains` is then empty; its summary, warnings and notes are complete). A
/// run of many domains then holds the outcomes of the domains in flight, not
/// of every domain (`plan` and `publish` print each domain's lines as it
/// ends). Nothing is handed on when the run fails.
///
/// # Errors
/// See [`run`].
pub async fn run_each(
    config: &Config,
    providers: &Providers,
    store: Option<&dyn Store>,
    opts: &PublishOptions,
    each: &mut (dyn FnMut(DomainOutcome) + Send),
) -> Result<Report, PublishError> {
    run_inner(config, providers, store, opts, Some(each)).await
}

async fn run_inner(
    config: &Config,
    providers: &Providers,
    store: Option<&dyn Store>,
    opts: &PublishOptions,
    mut each: Option<&mut (dyn FnMut(DomainOutcome) + Send)>,
) -> Result<Report, PublishError> {
    crate::gate::gate(config)?;
    let apply = opts.mode == Mode::Apply;
    let domains = selected(config, opts);
    let now = opts.now;
    if apply {
        // Publish writes first keys: no key material left by a killed run stays.
        sweep(config, store).map_err(keys_error)?;
    }
    // On a shared store, the DKIM domains are held for the whole run, as a
    // daemon replica holds a domain it works (released on every return).
    let _leases = match (apply, store) {
        (true, Some(st)) => Some(Leases::take(
            st,
            domains.iter().filter(|d| d.dkim.is_some()).map(|d| &d.name),
        )?),
        _ => None,
    };
    let mut report = Report {
        applied: apply,
        summary: Summary::default(),
        domains: Vec::new(),
        watch: None,
        warnings: Vec::new(),
        saved_limits: Vec::new(),
        without_key: Vec::new(),
    };
    // What earlier runs published: SPF/DMARC/ADSP lines removed from the
    // configuration since are planned as DELETEs of exactly those values.
    // Kept in the shared store when there is one (every machine sees it).
    let shared_ledger = store.filter(|s| s.keeps_ledger());
    let ledger = match shared_ledger {
        Some(st) => Ledger::load_from(st)?,
        None => Ledger::load(&config.state_dir)?,
    };
    // Domains whose first DKIM key must be made wait for it; the others'
    // requests start at once, while the keys are made on every core.
    let mut ready = Vec::new();
    let mut waiting = Vec::new();
    let mut max_bits = Vec::with_capacity(domains.len());
    for (i, d) in domains.iter().enumerate() {
        max_bits.push(max_bits_for(&d.account, providers, store)?);
        match store {
            Some(st) if apply && needs_first_key(st, d).map_err(keys_error)? => waiting.push(i),
            _ => ready.push(i),
        }
    }
    let mut prepared = BTreeMap::new();
    for &i in &ready {
        let d = domains[i];
        let keys = match store {
            Some(st) => {
                prepare_publish(st, config, d, max_bits[i], now, opts.mode).map_err(keys_error)?
            }
            None => (Vec::new(), Vec::new()),
        };
        // (jobs_for takes a missing entry as an empty one: no entry is kept
        // for each of thousands of domains without DKIM.)
        if !keys.0.is_empty() || !keys.1.is_empty() {
            prepared.insert(i, keys);
        }
    }
    // Servers of hosts that serve writes at once are asked too (configured
    // `nameservers` only: no discovery here).
    let served = ServedCheck {
        querier: opts.querier.clone(),
        servers: domains
            .iter()
            .filter(|d| !d.nameservers.is_empty())
            .map(|d| (d.name.clone(), d.nameservers.clone()))
            .collect(),
        wait: std::time::Duration::from_secs(3),
    };
    let job_options = publish::Options {
        mode: opts.mode,
        force: opts.force,
        max_delete_share: config.publish.max_delete_share,
    };
    let mut sink = Sink::new(
        &ledger,
        apply.then_some(&domains[..]),
        apply && store.is_some(),
    );
    let mut kept = Vec::new();
    // Hands an outcome on (or keeps it for the report) once counted.
    let mut hand_on = |sink: &mut Sink, o: DomainOutcome| {
        sink.take(&o);
        match &mut each {
            Some(f) => f(o),
            None => kept.push(o),
        }
    };
    if waiting.is_empty() {
        // The jobs are every domain in configuration order: each outcome is
        // handed on as soon as it is known.
        let jobs = lazy_jobs(&domains, &prepared, &ledger, &mut report)?;
        publish::run_each(jobs, providers, job_options, Some(served), &mut |o| {
            hand_on(&mut sink, o)
        })
        .await;
    } else {
        let jobs = jobs_for(&domains, &ready, &mut prepared, &ledger, &mut report)?;
        let first = {
            let providers = providers.clone();
            let served = served.clone();
            tokio::spawn(async move {
                publish::run_checked(jobs, &providers, job_options, Some(served)).await
            })
        };
        let made = on_every_core(|| {
            prepare_in_parallel(store, config, &domains, &waiting, &max_bits, now, opts.mode)
        });
        let mut outcomes = match first.await {
            Ok(o) => o,
            // run_checked reports a domain's panic as its failure; a panic
            // escaping it is a bug worth its own panic.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match made {
            Ok(keys) => {
                prepared.extend(keys);
                let jobs = jobs_for(&domains, &waiting, &mut prepared, &ledger, &mut report)?;
                outcomes
                    .extend(publish::run_checked(jobs, providers, job_options, Some(served)).await);
            }
            Err(e) => {
                // What was published is recorded before the run stops.
                for o in &outcomes {
                    sink.take(o);
                }
                let (changes, taken) = sink.into_parts();
                drop(ledger);
                finish(
                    config,
                    providers,
                    store,
                    &domains,
                    changes,
                    taken,
                    &mut report,
                    now,
                )?;
                return Err(keys_error(e));
            }
        }
        // In configuration order.
        let order: BTreeMap<&Fqdn, usize> = domains
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.name, i))
            .collect();
        outcomes.sort_by_key(|o| order.get(&o.domain).copied().unwrap_or(usize::MAX));
        for o in outcomes {
            hand_on(&mut sink, o);
        }
    }
    report.domains = kept;
    // The ledger as read goes before the changes are saved (its memory is
    // free for the saving, which copies the file entry by entry).
    let (changes, taken) = sink.into_parts();
    drop(ledger);
    finish(
        config,
        providers,
        store,
        &domains,
        changes,
        taken,
        &mut report,
        now,
    )?;
    Ok(report)
}

/// What a run keeps of each domain's outcome once it is handed on: the
/// counts, the ledger's updates, the failures whose diagnosis is saved, and
/// the domains whose keys move on.
struct Sink<'a> {
    summary: Summary,
    /// The ledger as the run updates it, and the domains by name (publish
    /// only).
    updates: Option<(Updates<'a>, HashMap<&'a Fqdn, &'a Domain>)>,
    ledger: &'a Ledger,
    /// Outcomes whose host did not keep a value.
    not_stored: Vec<DomainOutcome>,
    /// Domains that succeeded, when their keys move on (publish with a store).
    succeeded: Option<Vec<Fqdn>>,
}

impl<'a> Sink<'a> {
    /// `publishing`: the run's domains, when it publishes (the ledger is
    /// then updated).
    fn new(ledger: &'a Ledger, publishing: Option<&[&'a Domain]>, keys: bool) -> Sink<'a> {
        Sink {
            summary: Summary::default(),
            updates: publishing.map(|domains| {
                let by_name = domains.iter().map(|d| (&d.name, *d)).collect();
                (ledger.updates(), by_name)
            }),
            ledger,
            not_stored: Vec::new(),
            succeeded: keys.then(Vec::new),
        }
    }

    /// Counts `o` and records it in the ledger.
    fn take(&mut self, o: &DomainOutcome) {
        count(&mut self.summary, o);
        if let Some((updates, by_name)) = &mut self.updates
            && let Some(d) = by_name.get(&o.domain)
        {
            // The domain's records as its job had them, made again rather
            // than kept for every domain: the ledger holds SPF, DMARC and
            // ADSP, which do not depend on the DKIM entries.
            let mut desired = for_domain(d, &[]).unwrap_or_default();
            desired.extend(self.ledger.retractions(d));
            updates.record(&desired, o);
        }
        if matches!(o.error, Some(DomainError::NotStored(_))) {
            self.not_stored.push(o.clone());
        }
        if let Some(s) = &mut self.succeeded
            && o.error.is_none()
        {
            s.push(o.domain.clone());
        }
    }
}

/// What [`finish`] needs of a [`Sink`] besides the ledger's changes (not
/// tied to the ledger as read, so that it can go first).
struct Taken {
    summary: Summary,
    not_stored: Vec<DomainOutcome>,
    succeeded: Option<Vec<Fqdn>>,
}

impl Sink<'_> {
    /// The ledger's changes (none when planning) and the rest.
    fn into_parts(self) -> (Vec<LedgerChange>, Taken) {
        let changes = match self.updates {
            Some((updates, _)) => updates.into_changes(),
            None => Vec::new(),
        };
        let taken = Taken {
            summary: self.summary,
            not_stored: self.not_stored,
            succeeded: self.succeeded,
        };
        (changes, taken)
    }
}

/// One domain's DKIM entries to publish and the warnings about its keys.
type Prepared = (
    Vec<crate::publish::DkimEntry>,
    Vec<crate::rotation::Warning>,
);

/// The jobs of the domains at `indices` (their DKIM entries taken from
/// `prepared`), with their warnings and "no key yet" notes added to `report`.
fn jobs_for(
    domains: &[&Domain],
    indices: &[usize],
    prepared: &mut BTreeMap<usize, Prepared>,
    ledger: &Ledger,
    report: &mut Report,
) -> Result<Vec<DomainJob>, PublishError> {
    let mut jobs = Vec::with_capacity(indices.len());
    for &i in indices {
        let d = domains[i];
        let (entries, warnings) = prepared.remove(&i).unwrap_or_default();
        note_keys(d, &entries, &warnings, report);
        jobs.push(domain_job(d, &entries, ledger)?);
    }
    Ok(jobs)
}

/// Domain `d`'s job: its desired records with `entries` (its DKIM entries)
/// and the retractions the ledger asks for.
///
/// # Errors
/// A record name cannot be formed.
fn domain_job(
    d: &Domain,
    entries: &[crate::publish::DkimEntry],
    ledger: &Ledger,
) -> Result<DomainJob, NameError> {
    let mut desired = for_domain(d, entries)?;
    desired.extend(ledger.retractions(d));
    Ok(DomainJob {
        domain: d.name.clone(),
        account: d.account.clone(),
        zone: d.zone.clone(),
        desired,
    })
}

/// The jobs of every domain of `domains` (all ready: their DKIM entries in
/// `prepared`), each made when its turn comes ([`publish::Jobs`]); their
/// warnings and "no key yet" notes added to `report` now.
///
/// # Errors
/// A domain's record name cannot be formed (checked for every domain before
/// any job runs).
fn lazy_jobs<'a>(
    domains: &'a [&'a Domain],
    prepared: &'a BTreeMap<usize, Prepared>,
    ledger: &'a Ledger,
    report: &mut Report,
) -> Result<publish::Jobs<'a>, PublishError> {
    let entries = |i: usize| prepared.get(&i).map(|p| &p.0[..]).unwrap_or(&[]);
    let job = move |i: usize| domain_job(domains[i], entries(i), ledger);
    let (mut managed, mut removals) = (0, 0);
    for (i, d) in domains.iter().enumerate() {
        let warnings = prepared.get(&i).map(|p| &p.1[..]).unwrap_or(&[]);
        note_keys(d, entries(i), warnings, report);
        let (m, r) = publish::Jobs::count(&job(i)?);
        managed += m;
        removals += r;
    }
    let accounts: Vec<&str> = domains.iter().map(|d| d.account.as_str()).collect();
    Ok(publish::Jobs::new(&accounts, managed, removals, move |i| {
        // (Made above already without an error: the same inputs give the
        // same job.)
        job(i).unwrap_or_else(|_| DomainJob {
            domain: domains[i].name.clone(),
            account: domains[i].account.clone(),
            zone: domains[i].zone.clone(),
            desired: Vec::new(),
        })
    }))
}

/// Adds domain `d`'s key warnings and, when it has DKIM settings and no
/// entry, its "no key yet" note to `report`.
fn note_keys(
    d: &Domain,
    entries: &[crate::publish::DkimEntry],
    warnings: &[crate::rotation::Warning],
    report: &mut Report,
) {
    let prefix = format!("{}: ", d.name);
    report.warnings.extend(warnings.iter().map(|w| {
        DomainWarning {
            domain: d.name.clone(),
            message: w
                .message
                .strip_prefix(&prefix)
                .unwrap_or(&w.message)
                .to_string(),
        }
    }));
    if d.dkim.is_some() && entries.is_empty() {
        report.without_key.push(d.name.clone());
    }
}

/// Runs `f`, which blocks for long (key generation), without stalling the
/// runtime's other tasks: on a multi-threaded runtime this worker hands its
/// tasks to another first.
fn on_every_core<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// [`prepare_publish`] for the domains at `indices` (each making its first
/// key), on as many threads as the machine runs at once. Scoped threads rather
/// than `spawn_blocking`: the store and configuration are borrowed, and each
/// key is written to disk (0600, atomically) and saved in the store by the
/// same step as before, only several at a time.
///
/// # Errors
/// The first failure in configuration order.
#[allow(clippy::too_many_arguments)]
fn prepare_in_parallel(
    store: Option<&dyn Store>,
    config: &Config,
    domains: &[&Domain],
    indices: &[usize],
    max_bits: &[Option<u32>],
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<BTreeMap<usize, Prepared>, KeyringError> {
    let Some(st) = store else {
        return Ok(BTreeMap::new());
    };
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(indices.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = indices.get(k) else {
                        break;
                    };
                    let r = prepare_publish(st, config, domains[i], max_bits[i], now, mode);
                    if let Ok(mut m) = results.lock() {
                        m.insert(i, r);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut out = BTreeMap::new();
    for (i, r) in results {
        out.insert(i, r?);
    }
    Ok(out)
}

/// After the writes: saves what hosts did not keep, the ledger, and moves
/// freshly published keys on; then the summary.
#[allow(clippy::too_many_arguments)]
fn finish(
    config: &Config,
    providers: &Providers,
    store: Option<&dyn Store>,
    domains: &[&Domain],
    changes: Vec<LedgerChange>,
    sink: Taken,
    report: &mut Report,
    now: DateTime<Utc>,
) -> Result<(), PublishError> {
    let apply = report.applied;
    if let Some(st) = store {
        report.saved_limits = save_readbacks(st, providers, &sink.not_stored, now)?;
    }
    // Only the entries this run changed are saved: runs at the same time
    // elsewhere keep theirs.
    if !changes.is_empty() {
        match store.filter(|s| s.keeps_ledger()) {
            Some(st) => Ledger::update_in(st, &changes)?,
            None => Ledger::update_file(&config.state_dir, &changes)?,
        }
    }
    if apply && let (Some(st), Some(succeeded)) = (store, &sink.succeeded) {
        let by_name: BTreeMap<&Fqdn, &Domain> = domains.iter().map(|d| (&d.name, *d)).collect();
        for name in succeeded {
            if let Some(d) = by_name.get(name) {
                let max_bits = max_bits_for(&d.account, providers, Some(st))?;
                after_publish(st, d, max_bits, now).map_err(keys_error)?;
            }
        }
    }
    report.summary = sink.summary;
    Ok(())
}

/// Saves each value a host did not keep as its account's diagnosis (so the
/// next run or rotation step sizes the key for it without a manual `maildns
/// diagnose`) and on the key; returns each account's new limit once.
fn save_readbacks(
    store: &dyn Store,
    providers: &Providers,
    outcomes: &[DomainOutcome],
    now: DateTime<Utc>,
) -> Result<Vec<(String, u32)>, PublishError> {
    let mut limits = Vec::new();
    let mut noted = BTreeSet::new();
    for o in outcomes {
        let Some(DomainError::NotStored(found)) = &o.error else {
            continue;
        };
        let kind = providers
            .get(&o.account)
            .map(|p| p.kind())
            .unwrap_or("unknown");
        let zone = o.zone.as_deref().unwrap_or(o.domain.as_str());
        let r = crate::diagnose::save_readback(store, &o.account, kind, zone, found, now)
            .map_err(PublishError::Diagnosis)?;
        record_publish_failure(store, &o.domain, &found.name, &found.to_string(), now)
            .map_err(keys_error)?;
        if let Some(bits) = r.recommended_max_bits
            && noted.insert(o.account.clone())
        {
            limits.push((o.account.clone(), bits));
        }
    }
    Ok(limits)
}

/// Adds one domain's outcome to the counts.
fn count(s: &mut Summary, o: &DomainOutcome) {
    s.domains += 1;
    if o.error.is_some() {
        s.failed += 1;
    }
    s.applied += o.applied;
    if o.pending && o.error.is_none() {
        s.handed_over += o.plan.as_ref().map_or(0, |p| p.changes.len());
    }
    if let Some(p) = &o.plan {
        s.in_sync += p.in_sync;
        for c in &p.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
            }
        }
    }
}

/// How [`wait`] is shown while it runs (the face's bars or log lines).
pub trait WaitDisplay {
    /// `domain` changed nothing: nothing to wait for.
    fn in_sync(&mut self, domain: &Fqdn);
    /// The watch of `domain` starts: where its progress goes.
    fn start(
        &mut self,
        domain: &Fqdn,
        checks: &[Check],
        servers: &[Nameserver],
    ) -> Arc<dyn Progress>;
    /// The watch of `domain` ended, or could not run (`watch.error`).
    fn finish(&mut self, domain: &Fqdn, watch: &DomainWatch);
}

/// `publish --wait`: for every domain of `report` that succeeded and changed,
/// watches its changes on every authoritative server of its zone (the
/// configured `nameservers`, else found through `config.propagation.resolvers`)
/// until each serves them or `options.timeout` passes. Domains one by one, in
/// report order.
pub async fn wait(
    config: &Config,
    report: &Report,
    querier: &Querier,
    options: &WatchOptions,
    display: &mut dyn WaitDisplay,
) -> Vec<DomainWatch> {
    let mut out = Vec::new();
    for o in report.domains.iter().filter(|o| o.error.is_none()) {
        let (Some(plan), Some(d)) = (&o.plan, config.domains.iter().find(|d| d.name == o.domain))
        else {
            continue;
        };
        let checks = publish::checks_for_plan(plan);
        if checks.is_empty() {
            display.in_sync(&o.domain);
            continue;
        }
        let zone = d.zone.clone().unwrap_or_else(|| d.name.clone());
        let found = authoritative_servers(
            querier,
            &zone,
            &d.nameservers,
            &config.propagation.resolvers,
        )
        .await;
        let watch = match found {
            Ok(servers) => {
                let progress = display.start(&o.domain, &checks, &servers);
                let report = Watcher::new(querier.clone(), options.clone())
                    .with_progress(progress)
                    .watch(&checks, &servers)
                    .await;
                DomainWatch {
                    domain: o.domain.to_string(),
                    servers,
                    error: None,
                    report: Some(report),
                }
            }
            Err(e) => DomainWatch {
                domain: o.domain.to_string(),
                servers: Vec::new(),
                error: Some(format!("finding the authoritative servers of {zone}: {e}")),
                report: None,
            },
        };
        display.finish(&o.domain, &watch);
        out.push(watch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::QueryOptions;
    use maildns_providers::hosts::zonefile::ZoneFiles;

    fn options(mode: Mode) -> PublishOptions {
        PublishOptions {
            mode,
            domains: Vec::new(),
            force: false,
            querier: Querier::new(QueryOptions::default()),
            now: Utc::now(),
        }
    }

    /// `run_each` hands each domain's outcome on in configuration order as
    /// soon as it is known, and keeps none of them: when the first domain's
    /// outcome arrives, the last domain is not written yet (the zone-file
    /// host takes one domain at a time), and the report has no domains.
    #[tokio::test]
    async fn each_outcome_is_handed_on_in_order_as_soon_as_it_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut text = format!(
            "state_dir = \"{d}/state\"\n[accounts.z]\nprovider = \"zonefile\"\npath = \"{d}/zone.db\"\n"
        );
        // Listed out of name order: configuration order is by name.
        for i in [3, 0, 5, 1, 4, 2] {
            text.push_str(&format!(
                "[domains.\"d{i}.example.com\"]\naccount = \"z\"\nspf = \"v=spf1 ip4:192.0.2.{i} -all\"\n"
            ));
        }
        let config = crate::config::parse(&text, &dir.path().join("maildns.toml")).unwrap();
        let zone = Fqdn::parse("example.com").unwrap();
        let mut providers = Providers::new();
        providers.insert(
            "z".into(),
            Arc::new(ZoneFiles::new(&dir.path().join("zone.db"), &[zone], true).unwrap()),
        );
        let zone_file = dir.path().join("zone.db");
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let mut seen = Vec::new();
        let mut each = |o: DomainOutcome| {
            if seen.is_empty() {
                let held = std::fs::read_to_string(&zone_file).unwrap_or_default();
                assert!(!held.contains("192.0.2.5"), "{held}");
            }
            assert!(o.error.is_none(), "{:?}", o.error);
            seen.push((o.domain.to_string(), o.applied));
        };
        let apply = options(Mode::Apply);
        let report = run_each(&config, &providers, None, &apply, &mut each)
            .await
            .unwrap();
        let want: Vec<(String, usize)> = (0..6).map(|i| (format!("d{i}.example.com"), 1)).collect();
        assert_eq!(seen, want);
        assert!(report.domains.is_empty());
        let s = &report.summary;
        assert_eq!((s.domains, s.create, s.applied, s.failed), (6, 6, 6, 0));
        let zone_text = std::fs::read_to_string(&zone_file).unwrap();
        assert!(zone_text.contains("192.0.2.5"), "{zone_text}");
        // Nothing left to do; `run` keeps every outcome, in the same order.
        let again = run(&config, &providers, None, &apply).await.unwrap();
        let names: Vec<String> = again.domains.iter().map(|o| o.domain.to_string()).collect();
        let want: Vec<String> = want.into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, want);
        assert_eq!((again.summary.in_sync, again.pending()), (6, 0));
    }

    /// `plan` and `publish` called as a library: no face, no environment.
    #[tokio::test]
    async fn plan_then_publish_as_a_library_call() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let text = format!(
            "state_dir = \"{d}/state\"\n[accounts.z]\nprovider = \"zonefile\"\npath = \"{d}/zone.db\"\n\n[domains.\"example.com\"]\naccount = \"z\"\nspf = \"v=spf1 -all\"\n[domains.\"example.com\".dkim]\nbits = 1024\n"
        );
        let config = crate::config::parse(&text, &dir.path().join("maildns.toml")).unwrap();
        let zone = Fqdn::parse("example.com").unwrap();
        let mut providers = Providers::new();
        providers.insert(
            "z".into(),
            Arc::new(ZoneFiles::new(&dir.path().join("zone.db"), &[zone], true).unwrap()),
        );

        let plan = options(Mode::Plan);
        assert!(
            open_store(&config, &plan).unwrap().is_none(),
            "no state yet"
        );
        let report = run(&config, &providers, None, &plan).await.unwrap();
        assert!(!report.applied);
        assert_eq!(report.without_key.len(), 1, "no key yet");
        assert_eq!((report.pending(), report.summary.create), (1, 1));
        assert!(!dir.path().join("state").exists(), "plan writes nothing");

        let apply = options(Mode::Apply);
        let store = open_store(&config, &apply).unwrap().unwrap();
        let report = run(&config, &providers, Some(&store), &apply)
            .await
            .unwrap();
        assert!(!report.failed(), "{:?}", report.domains);
        // SPF and the first key's record.
        assert_eq!((report.summary.create, report.summary.applied), (2, 2));
        assert!(report.without_key.is_empty());
        let zone_text = std::fs::read_to_string(dir.path().join("zone.db")).unwrap();
        assert!(zone_text.contains("v=DKIM1"), "{zone_text}");
        let keys = store.load(&config.domains[0].name).unwrap().keys;
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].status, crate::rotation::KeyStatus::Published);
        // The JSON document keeps its shape.
        let json = serde_json::to_value(&report).unwrap();
        let fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["applied", "domains", "summary"]);

        let again = run(&config, &providers, Some(&store), &apply)
            .await
            .unwrap();
        assert_eq!((again.pending(), again.summary.applied), (0, 0));
    }
}

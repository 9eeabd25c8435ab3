//! Reads what each host holds, plans, checks the safety threshold, then writes.
//!
//! No deletion is written before the run's deletions are known to stay within
//! the safety threshold (`publish.max_delete_share`): domains are read and
//! planned first, and one is written right after its own read only once no
//! plan still to come can cross the threshold (see [`DeletionBudget`]; with
//! `--force`, or after enough domains were read, reads and writes overlap);
//! the ones read before are written from then on, or, when the run crosses
//! the threshold, not at all. Domains run
//! concurrently, up to each account's declared concurrency cap; one domain's
//! failure does not stop the others. Every write is idempotent: a second run
//! finds everything in sync and writes nothing. Every set written is read back
//! at once; a value the host did not keep as sent (cut short, altered) fails the
//! domain with [`DomainError::NotStored`].

use std::collections::BTreeMap;
use std::sync::Arc;

use maildns_providers::{
    Error as ProviderError, Fqdn, Provider, TxtChange, TxtSet, Zone, ZoneSets,
};
use serde::Serialize;

use super::plan::{Desired, Plan, PlanError, plan};
use super::readback::{NotStored, Served, ServedCheck, compare_set};

/// One domain's work: where it lives and what should be there.
#[derive(Debug, Clone)]
pub struct DomainJob {
    /// The mail domain.
    pub domain: Fqdn,
    /// The account (key into the providers map).
    pub account: String,
    /// The zone, when configured (otherwise the provider finds it).
    pub zone: Option<Fqdn>,
    /// What maildns wants at each of its names.
    pub desired: Vec<Desired>,
}

/// Why a domain failed.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainError {
    /// The host failed.
    #[error("{0}")]
    Provider(ProviderError),
    /// The plan is unsafe (nothing was written).
    #[error("{0}")]
    Plan(PlanError),
    /// The host accepted a write but holds something else (read back at once).
    #[error("{0}")]
    NotStored(NotStored),
    /// The account is not configured or could not be set up.
    #[error("account '{account}': {message}")]
    Account {
        /// Account name.
        account: String,
        /// What is wrong.
        message: String,
    },
    /// The domain's task ended without an outcome (it panicked or was
    /// cancelled); what it wrote before is unknown: plan again.
    #[error("the domain's task failed: {message}")]
    Task {
        /// What the runtime said.
        message: String,
    },
    /// The run's deletions exceed the safety threshold.
    #[error(
        "refusing to delete {deletions} of {managed} managed records in one run (over the {share:.0}% threshold); check the plan and re-run with --force"
    )]
    Threshold {
        /// Deletions planned in the run.
        deletions: usize,
        /// Managed names in the run.
        managed: usize,
        /// The threshold, in percent.
        share: f64,
    },
}

/// The outcome for one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainOutcome {
    /// The domain.
    pub domain: Fqdn,
    /// The account.
    pub account: String,
    /// The zone used.
    pub zone: Option<String>,
    /// The plan (absent when reading failed).
    pub plan: Option<Plan>,
    /// Changes written.
    pub applied: usize,
    /// The changes were handed to someone else to make (the `manual` host's
    /// operator, [`maildns_providers::ApplyTraits::deferred`]): nothing was
    /// read back; the authoritative servers show when they are made.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The failure, if any.
    pub error: Option<DomainError>,
}

/// Whether a run only plans (`maildns plan`) or also writes (`maildns publish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read and plan; write nothing (`command::publish` generates no key and
    /// saves no state either).
    Plan,
    /// Plan, then write the changes (`command::publish` first makes each domain's
    /// first DKIM key).
    Apply,
}

/// How to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Plan only, or write the changes.
    pub mode: Mode,
    /// Ignore the deletion threshold.
    pub force: bool,
    /// Largest share (0..=1) of managed records one run may delete without `force`.
    pub max_delete_share: f64,
}

/// Reads, plans and (with [`Mode::Apply`]) writes every job, reading each written
/// set back from the host's API. Results are in job order, one per job (a job
/// whose task failed gets [`DomainError::Task`]).
pub async fn run_jobs(
    jobs: Vec<DomainJob>,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    opts: Options,
) -> Vec<DomainOutcome> {
    run_checked(jobs, providers, opts, None).await
}

/// Like [`run_jobs`]; with `served`, also asks the domains' authoritative servers
/// what they serve after each write, for hosts that serve writes at once
/// ([`maildns_providers::Profile::serves_at_once`]).
pub async fn run_checked(
    jobs: Vec<DomainJob>,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    opts: Options,
    served: Option<ServedCheck>,
) -> Vec<DomainOutcome> {
    let mut out = Vec::with_capacity(jobs.len());
    run_each(Jobs::of(jobs), providers, opts, served, &mut |o| {
        out.push(o)
    })
    .await;
    out
}

/// The jobs of a run, each made when its account has room for it: a run of
/// 10,000 domains then holds the records of the domains in flight, not of
/// every domain (they were a third of its peak memory).
pub struct Jobs<'a> {
    /// Each account's job indices, in job order.
    by_account: BTreeMap<String, Vec<usize>>,
    /// Makes job `i`.
    make: Box<dyn Fn(usize) -> DomainJob + Send + Sync + 'a>,
    /// Records maildns manages over all the jobs (their desired sets).
    managed: usize,
    /// Of them, the ones the jobs remove whatever they find ([`removals`]).
    removals: usize,
}

impl<'a> Jobs<'a> {
    /// Jobs made by `make`, job `i` being of account `accounts[i]`. `make`
    /// must give the same job each time for the same `i`: `managed` and
    /// `removals` count its desired sets and [`removals`] over every job
    /// (see [`Jobs::count`]).
    pub fn new(
        accounts: &[&str],
        managed: usize,
        removals: usize,
        make: impl Fn(usize) -> DomainJob + Send + Sync + 'a,
    ) -> Jobs<'a> {
        let mut by_account: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, a) in accounts.iter().enumerate() {
            match by_account.get_mut(*a) {
                Some(v) => v.push(i),
                None => {
                    by_account.insert((*a).to_string(), vec![i]);
                }
            }
        }
        Jobs {
            by_account,
            make: Box::new(make),
            managed,
            removals,
        }
    }

    /// What a job adds to [`Jobs::new`]'s `managed` and `removals`.
    pub fn count(job: &DomainJob) -> (usize, usize) {
        (job.desired.len(), removals(job))
    }

    /// Jobs made already.
    pub fn of(jobs: Vec<DomainJob>) -> Jobs<'static> {
        let (managed, removals) = jobs
            .iter()
            .map(Jobs::count)
            .fold((0, 0), |(m, r), (a, b)| (m + a, r + b));
        let accounts: Vec<String> = jobs.iter().map(|j| j.account.clone()).collect();
        let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
        Jobs::new(&accounts, managed, removals, move |i| jobs[i].clone())
    }
}

/// Like [`run_checked`], handing each outcome to `each` as soon as it and
/// those of every job before it are known (in job order), instead of
/// keeping them all: a run's memory then follows the domains in flight, not
/// the number of domains. (A domain kept for the second phase, see the
/// module's documentation, holds back the ones after it until it is written.)
pub async fn run_each(
    jobs: Jobs<'_>,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    opts: Options,
    served: Option<ServedCheck>,
    each: &mut (dyn FnMut(DomainOutcome) + Send),
) {
    let served = served.map(Arc::new);
    let mut ordered = InOrder::new(each);
    let caps: BTreeMap<String, usize> = providers
        .iter()
        .map(|(name, p)| (name.clone(), p.profile().concurrency.max(1)))
        .collect();

    let zones = ZoneCache::default();
    let (managed, removals) = (jobs.managed, jobs.removals);
    let budget = Arc::new(DeletionBudget::new(managed, removals, opts));
    // The domains read and planned while the run could still cross the
    // deletion threshold, with their place in the job order.
    // (Boxed: a plan with its RRsets is large, and only some are held.)
    let mut held: Vec<(usize, Box<Planned>)> = Vec::new();

    // Phase 1: read and plan every domain (one read of the zone's RRsets per
    // domain); write it at once when no plan still to come can cross the
    // deletion threshold, else hold it. The domains held are written (or,
    // planning only, reported) as soon as the threshold can no longer be
    // crossed, so that neither they nor the outcomes after them wait for the
    // end of the reads; the ones still held then go to phase 2.
    let make = &jobs.make;
    let items = Lazy {
        by_account: jobs
            .by_account
            .into_iter()
            .map(|(account, indices)| {
                let items = indices.into_iter().map(move |i| (i, Work::Read(make(i))));
                (
                    account,
                    Box::new(items) as Box<dyn Iterator<Item = _> + Send>,
                )
            })
            .collect(),
    };
    for_each(
        items,
        providers,
        &caps,
        |work, provider| {
            let zones = zones.clone();
            let budget = budget.clone();
            let served = served.clone();
            async move {
                let job = match work {
                    Work::Read(job) => job,
                    Work::Write(planned) => {
                        let (job, zone, result) = *planned;
                        let mut outcome = DomainOutcome::new(&job, zone.as_ref());
                        match (result, &zone) {
                            (Ok(read), Some(zone)) => {
                                let check = served
                                    .as_deref()
                                    .filter(|_| provider.profile().serves_at_once);
                                write_domain(
                                    provider.as_ref(),
                                    zone,
                                    &job,
                                    read,
                                    check,
                                    &mut outcome,
                                )
                                .await;
                            }
                            (Ok(read), None) => outcome.plan = Some(read.plan),
                            (Err(e), _) => outcome.error = Some(e),
                        }
                        return First::Done(outcome);
                    }
                };
                let zone = match zones.resolve(provider.as_ref(), &job).await {
                    Ok(z) => z,
                    Err(e) => {
                        budget.read(&job, None);
                        return First::Planned((job, None, Err(DomainError::Provider(e))));
                    }
                };
                let result = read_and_plan(provider.as_ref(), &zone, &job).await;
                let safe = budget.read(&job, result.as_ref().ok().map(|r| r.plan.deletions()));
                match result {
                    Ok(read) if safe && opts.mode == Mode::Apply => {
                        // Its own task, so that a panic while writing still
                        // reports the plan (as phase 2 does).
                        let plan = read.plan.clone();
                        let served = served.filter(|_| provider.profile().serves_at_once);
                        let (job2, zone2) = (job.clone(), zone.clone());
                        let task = tokio::spawn(async move {
                            let mut outcome = DomainOutcome::new(&job2, Some(&zone2));
                            let check = served.as_deref();
                            write_domain(
                                provider.as_ref(),
                                &zone2,
                                &job2,
                                read,
                                check,
                                &mut outcome,
                            )
                            .await;
                            outcome
                        });
                        First::Done(match task.await {
                            Ok(outcome) => outcome,
                            Err(e) => {
                                let message = if e.is_panic() {
                                    "it panicked".to_string()
                                } else {
                                    e.to_string()
                                };
                                tracing::error!("{}: a domain task failed: {message}", job.account);
                                let mut outcome = DomainOutcome::new(&job, Some(&zone));
                                outcome.plan = Some(plan);
                                outcome.error = Some(DomainError::Task { message });
                                outcome
                            }
                        })
                    }
                    Ok(mut read) => {
                        let mut job = job;
                        if opts.mode == Mode::Plan || read.plan.changes.is_empty() {
                            // Held until the threshold is settled: only a
                            // change to write needs the sets as read (its
                            // compare-and-swap) and the desired records (to
                            // plan again after a conflict); the outcome
                            // takes the domain and account alone.
                            read.observed = ZoneSets::default();
                            job.desired = Vec::new();
                        } else {
                            read.observed.retain(|name, _| {
                                read.plan.changes.iter().any(|c| &c.name == name)
                            });
                        }
                        read.plan.changes.shrink_to_fit();
                        read.plan.ttl_kept.shrink_to_fit();
                        First::Planned((job, Some(zone), Ok(read)))
                    }
                    result => First::Planned((job, Some(zone), result)),
                }
            }
        },
        |i, f| {
            match f {
                First::Done(o) => ordered.done(i, o),
                // A failure is reported as it is, whatever the threshold.
                First::Planned((job, zone, Err(e))) => {
                    let mut outcome = DomainOutcome::new(&job, zone.as_ref());
                    outcome.error = Some(e);
                    ordered.done(i, outcome);
                }
                First::Planned(p) => held.push((i, Box::new(p))),
            }
            if held.is_empty() || !budget.safe() {
                return Vec::new();
            }
            held.sort_by_key(|(i, _)| *i);
            match opts.mode {
                Mode::Apply => held.drain(..).map(|(i, p)| (i, Work::Write(p))).collect(),
                Mode::Plan => {
                    for (i, planned) in held.drain(..) {
                        let (job, zone, result) = *planned;
                        let mut outcome = DomainOutcome::new(&job, zone.as_ref());
                        outcome.plan = result.ok().map(|r| r.plan);
                        ordered.done(i, outcome);
                    }
                    Vec::new()
                }
            }
        },
    )
    .await;
    let planned = held;

    let deletions = budget.deletions();
    let over = budget.over();

    // Phase 2: the domains not written yet, each as one change set (none when
    // the run is over the threshold: each domain then reports its plan, the
    // ones with deletions the refusal).
    let write = opts.mode == Mode::Apply && !over;
    let mut planned = planned;
    // In job order (phase 1 gives them in the order they were read).
    planned.sort_by_key(|(i, _)| *i);
    let (slots, planned): (Vec<usize>, Vec<Planned>) =
        planned.into_iter().map(|(i, p)| (i, *p)).unzip();
    for_each(
        Lazy::of(planned),
        providers,
        &caps,
        |(job, zone, result), provider| {
            let served = served.clone();
            async move {
                let mut outcome = DomainOutcome::new(&job, zone.as_ref());
                match result {
                    Err(e) => outcome.error = Some(e),
                    Ok(read) => {
                        if over && read.plan.deletions() > 0 {
                            outcome.error = Some(DomainError::Threshold {
                                deletions,
                                managed,
                                share: opts.max_delete_share * 100.0,
                            });
                            outcome.plan = Some(read.plan);
                        } else if write && let Some(zone) = &zone {
                            let check = served
                                .as_deref()
                                .filter(|_| provider.profile().serves_at_once);
                            write_domain(provider.as_ref(), zone, &job, read, check, &mut outcome)
                                .await;
                        } else {
                            outcome.plan = Some(read.plan);
                        }
                    }
                }
                outcome
            }
        },
        |k, o| {
            ordered.done(slots[k], o);
            Vec::new()
        },
    )
    .await;
}

/// Hands outcomes on in job order: each one as soon as those before it are
/// handed on; the ones that finish early wait here.
struct InOrder<'a> {
    each: &'a mut (dyn FnMut(DomainOutcome) + Send),
    next: usize,
    ready: BTreeMap<usize, DomainOutcome>,
}

impl<'a> InOrder<'a> {
    fn new(each: &'a mut (dyn FnMut(DomainOutcome) + Send)) -> Self {
        InOrder {
            each,
            next: 0,
            ready: BTreeMap::new(),
        }
    }

    /// Job `i` has its outcome.
    fn done(&mut self, i: usize, o: DomainOutcome) {
        self.ready.insert(i, o);
        while let Some(o) = self.ready.remove(&self.next) {
            (self.each)(o);
            self.next += 1;
        }
    }
}

/// What phase 1 of [`run_checked`] did with a domain.
enum First {
    /// Read, planned and written (or failed).
    Done(DomainOutcome),
    /// Read and planned (or failed to), for phase 2.
    Planned(Planned),
}

/// What phase 1 of [`run_checked`] does with a domain: read and plan it, or
/// write a domain read and planned while the threshold could still be crossed.
/// (Boxed: the queue of every domain's work is as long as the run, and a plan
/// with its RRsets is several times the size of a job.)
#[derive(Clone)]
enum Work {
    Read(DomainJob),
    Write(Box<Planned>),
}

impl HasAccount for Work {
    fn account(&self) -> &str {
        match self {
            Work::Read(job) => &job.account,
            Work::Write(p) => &p.0.account,
        }
    }
}

impl From<Unrun<Work>> for First {
    fn from(u: Unrun<Work>) -> Self {
        match u {
            Unrun::Missing(Work::Read(job)) => First::Planned(Planned::from(Unrun::Missing(job))),
            Unrun::Failed(Work::Read(job), m) => {
                First::Planned(Planned::from(Unrun::Failed(job, m)))
            }
            // A write task that failed: its plan, and how much it wrote is unknown.
            Unrun::Missing(Work::Write(p)) => First::Done(DomainOutcome::from(Unrun::Missing(*p))),
            Unrun::Failed(Work::Write(p), m) => {
                First::Done(DomainOutcome::from(Unrun::Failed(*p, m)))
            }
        }
    }
}

impl DomainOutcome {
    /// Nothing planned, written or failed yet.
    fn new(job: &DomainJob, zone: Option<&Zone>) -> DomainOutcome {
        DomainOutcome {
            domain: job.domain.clone(),
            account: job.account.clone(),
            zone: zone.map(|z| z.name.to_string()),
            plan: None,
            applied: 0,
            pending: false,
            error: None,
        }
    }
}

/// The names of `job` where its plan can delete: a plan deletes only where
/// no value is wanted (a removal or retraction, see [`plan`]), at most one
/// value per name.
fn removals(job: &DomainJob) -> usize {
    job.desired.iter().filter(|d| d.records.is_empty()).count()
}

/// The run's deletion threshold while domains are still being read: whether
/// the run can still cross it, and, once all are read, whether it did.
///
/// Each domain's plan deletes at most one value per name where it wants no
/// value ([`removals`]), so while some domains are unread the run's
/// deletions are at most those planned so far plus those names of the
/// unread domains (a run that removes nothing is never held). When even that stays within
/// `max_delete_share` of the managed names (or `force` is given), no plan still
/// to come can make the run refuse its deletions: a domain read then is written
/// at once, exactly as phase 2 would write it, and reads and writes overlap.
#[derive(Debug)]
struct DeletionBudget {
    managed: usize,
    share: f64,
    force: bool,
    /// (deletions planned so far, names of the domains not read yet where
    /// their plans can delete)
    state: std::sync::Mutex<(usize, usize)>,
}

impl DeletionBudget {
    fn new(managed: usize, removals: usize, opts: Options) -> DeletionBudget {
        DeletionBudget {
            managed,
            share: opts.max_delete_share,
            force: opts.force,
            state: std::sync::Mutex::new((0, removals)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, usize)> {
        // Two counters, consistent after every statement.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `deletions` crosses the threshold.
    fn crosses(&self, deletions: usize) -> bool {
        self.managed > 0
            && deletions > 0
            && (deletions as f64) > self.share * self.managed as f64
            && !self.force
    }

    /// Counts `job` as read, with its plan's deletions (`None`: it has no plan,
    /// so it deletes nothing); true when the run can no longer cross the threshold.
    fn read(&self, job: &DomainJob, deletions: Option<usize>) -> bool {
        let mut s = self.lock();
        s.0 += deletions.unwrap_or(0);
        s.1 = s.1.saturating_sub(removals(job));
        !self.crosses(s.0 + s.1)
    }

    /// True when no plan still to come can make the run cross the threshold
    /// (once true, it stays true: what is planned and what is unread only
    /// shrink together).
    fn safe(&self) -> bool {
        let s = self.lock();
        !self.crosses(s.0 + s.1)
    }

    /// Deletions planned by the domains read.
    fn deletions(&self) -> usize {
        self.lock().0
    }

    /// Whether the run's deletions cross the threshold (once every domain is read).
    fn over(&self) -> bool {
        self.crosses(self.deletions())
    }
}

/// How many times a change set is read, planned and applied again after the
/// host refused it because an RRset changed since it was read.
const CONFLICT_RETRIES: usize = 3;

/// A domain's plan and the RRsets it was made from.
#[derive(Debug, Clone)]
struct Read {
    plan: Plan,
    observed: ZoneSets,
}

/// Reads the RRsets at every name of `job` in one [`Provider::read_sets`] and plans.
async fn read_and_plan(
    provider: &dyn Provider,
    zone: &Zone,
    job: &DomainJob,
) -> Result<Read, DomainError> {
    let names: Vec<Fqdn> = job.desired.iter().map(|d| d.name.clone()).collect();
    let observed = provider
        .read_sets(zone, &names)
        .await
        .map_err(DomainError::Provider)?;
    let current: BTreeMap<Fqdn, Option<TxtSet>> = observed
        .iter()
        .map(|(n, o)| (n.clone(), o.set.clone()))
        .collect();
    let plan = plan(&job.desired, &current).map_err(DomainError::Plan)?;
    Ok(Read { plan, observed })
}

/// The change set for a plan: each change's RRset as read and the one wanted.
fn change_set(plan: &Plan, observed: &ZoneSets) -> Vec<TxtChange> {
    plan.changes
        .iter()
        .map(|c| TxtChange {
            name: c.name.clone(),
            old: observed.get(&c.name).cloned().unwrap_or_default(),
            new: (!c.write.records.is_empty()).then(|| c.write.clone()),
        })
        .collect()
}

/// Applies one domain's plan as one change set. When the host refuses it because
/// an RRset changed since it was read (another tool's edit), reads and plans
/// again and retries, up to [`CONFLICT_RETRIES`] times, so that edit is kept; a
/// new plan that deletes more than the one checked against the deletion
/// threshold is not applied. Then reads back what was written.
async fn write_domain(
    provider: &dyn Provider,
    zone: &Zone,
    job: &DomainJob,
    mut read: Read,
    served: Option<&ServedCheck>,
    outcome: &mut DomainOutcome,
) {
    let checked_deletions = read.plan.deletions();
    let mut attempt = 0;
    loop {
        if read.plan.changes.is_empty() {
            outcome.plan = Some(read.plan);
            return;
        }
        let changes = change_set(&read.plan, &read.observed);
        match provider.apply(zone, &changes).await {
            Ok(()) => {
                outcome.applied = changes.len();
                break;
            }
            Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                tracing::info!(
                    "{}: {} changed since it was read; reading again ({attempt} of {CONFLICT_RETRIES})",
                    job.domain,
                    e.error.name.as_deref().unwrap_or("an RRset"),
                );
                match read_and_plan(provider, zone, job).await {
                    Ok(again) if again.plan.deletions() <= checked_deletions => read = again,
                    Ok(again) => {
                        outcome.plan = Some(again.plan);
                        outcome.error = Some(DomainError::Provider(e.error));
                        return;
                    }
                    Err(err) => {
                        outcome.plan = Some(read.plan);
                        outcome.error = Some(err);
                        return;
                    }
                }
            }
            Err(e) => {
                // Changes are applied in plan order: what was written is a prefix.
                outcome.applied = changes
                    .iter()
                    .take_while(|c| e.written.contains(&c.name))
                    .count();
                outcome.plan = Some(read.plan);
                outcome.error = Some(DomainError::Provider(e.error));
                return;
            }
        }
    }
    if provider.apply_traits().deferred {
        // Handed over, not written: nothing counts as applied yet.
        outcome.applied = 0;
        outcome.pending = true;
        outcome.plan = Some(read.plan);
        return;
    }
    let result = read_back(provider, zone, &job.domain, &read.plan, served).await;
    outcome.plan = Some(read.plan);
    if let Err(e) = result {
        outcome.error = Some(e);
    }
}

/// Checks that what was written is what the host holds: for hosts whose
/// authoritative servers serve writes at once, by asking them (no API request);
/// otherwise, or when a server has not confirmed every set, by one
/// [`Provider::read_sets`] of the written names. Deletions are not read back.
async fn read_back(
    provider: &dyn Provider,
    zone: &Zone,
    domain: &Fqdn,
    plan: &Plan,
    served: Option<&ServedCheck>,
) -> Result<(), DomainError> {
    let written: Vec<&super::plan::Change> = plan
        .changes
        .iter()
        .filter(|c| !c.write.records.is_empty())
        .collect();
    if written.is_empty() {
        return Ok(());
    }
    let mut confirmed = served.is_some();
    if let Some(check) = served {
        // Every name at once (each waits on its own answers).
        // Collected first: a `Map` over borrowed changes handed to `join_all`
        // makes the future not `Send` for every lifetime (rustc #102211).
        let checks: Vec<_> = written
            .iter()
            .map(|c| check.check(domain, &c.name, c.kind, &c.write.records, &c.old))
            .collect();
        let answers = futures_util::future::join_all(checks).await;
        for answer in answers {
            match answer {
                Served::Confirmed => {}
                Served::Unconfirmed => confirmed = false,
                Served::Wrong(e) => return Err(DomainError::NotStored(e)),
            }
        }
    }
    if confirmed {
        return Ok(());
    }
    let names: Vec<Fqdn> = written.iter().map(|c| c.name.clone()).collect();
    let stored = provider
        .read_sets(zone, &names)
        .await
        .map_err(DomainError::Provider)?;
    for c in written {
        let set = stored.get(&c.name).and_then(|o| o.set.as_ref());
        if let Some(e) = compare_set(&c.name, c.kind, &c.write, set) {
            return Err(DomainError::NotStored(e));
        }
    }
    Ok(())
}

/// Zones found during one run, per account and apex, so a zone is looked up at
/// most once ([`Provider::zone_for`] needs no request at all).
#[derive(Debug, Clone, Default)]
struct ZoneCache(Arc<std::sync::Mutex<BTreeMap<(String, Fqdn), Zone>>>);

impl ZoneCache {
    async fn resolve(
        &self,
        provider: &dyn Provider,
        job: &DomainJob,
    ) -> Result<Zone, ProviderError> {
        let Some(apex) = &job.zone else {
            return provider.find_zone(&job.domain).await;
        };
        if let Some(z) = provider.zone_for(apex) {
            return Ok(z);
        }
        let key = (job.account.clone(), apex.clone());
        if let Some(z) = self.get(&key) {
            return Ok(z);
        }
        let z = provider.find_zone(apex).await?;
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, z.clone());
        }
        Ok(z)
    }

    fn get(&self, key: &(String, Fqdn)) -> Option<Zone> {
        self.0.lock().ok().and_then(|m| m.get(key).cloned())
    }
}

/// Something that names its account.
trait HasAccount {
    fn account(&self) -> &str;
}

impl HasAccount for DomainJob {
    fn account(&self) -> &str {
        &self.account
    }
}

impl<A, B> HasAccount for (DomainJob, A, B) {
    fn account(&self) -> &str {
        &self.0.account
    }
}

/// Runs `f` on every item concurrently, at most its account's cap at a time,
/// handing each item's output to `done` with the item's index as soon as it
/// is known; the items `done` returns (each with its index) are run next. An item whose account has no provider, or whose task panics or
/// is cancelled, still gets an output ([`Unrun`]): one per item.
///
/// An item's task is spawned only when its account has room (the next one
/// when one of the account's tasks ends), so memory follows the caps, not the
/// number of domains: a spawned future holds all the state of a domain's
/// requests (kilobytes), and 10,000 of them spawned at once were most of a
/// run's peak RSS.
async fn for_each<I, O, F, Fut>(
    items: Lazy<'_, I>,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    caps: &BTreeMap<String, usize>,
    f: F,
    mut done: impl FnMut(usize, O) -> Vec<(usize, I)>,
) where
    I: HasAccount + Clone + Send + 'static,
    O: Send + 'static + From<Unrun<I>>,
    F: Fn(I, Arc<dyn Provider>) -> Fut,
    Fut: std::future::Future<Output = O> + Send + 'static,
{
    // Per account: the items not started yet (with their index), in order,
    // and how many of its tasks run.
    let mut queued: BTreeMap<String, (Queue<'_, I>, usize)> = BTreeMap::new();
    for (account, rest) in items.by_account {
        if providers.contains_key(&account) {
            let queue = Queue {
                front: Default::default(),
                rest,
            };
            queued.insert(account, (queue, 0));
        } else {
            // (A missing account's item never brings more items.)
            for (i, item) in rest {
                let _ = done(i, O::from(Unrun::Missing(item)));
            }
        }
    }
    let mut run = Running {
        set: tokio::task::JoinSet::new(),
        spawned: std::collections::HashMap::new(),
    };
    for (acct, (queue, running)) in &mut queued {
        let cap = caps.get(acct).copied().unwrap_or(1).max(1);
        while *running < cap && run.start(acct, queue, providers, &f) {
            *running += 1;
        }
    }
    while let Some(r) = run.set.join_next_with_id().await {
        let id = match &r {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((i, item)) = run.spawned.remove(&id) else {
            continue;
        };
        let account = item.account().to_string();
        let more = match r {
            Ok((_, o)) => done(i, o),
            Err(e) => {
                let message = if e.is_panic() {
                    "it panicked".to_string()
                } else {
                    e.to_string()
                };
                tracing::error!("{account}: a domain task failed: {message}");
                done(i, O::from(Unrun::Failed(item, message)))
            }
        };
        if let Some((_, running)) = queued.get_mut(&account) {
            *running -= 1;
        }
        // Items brought by an output run before the ones still queued.
        let mut touched = BTreeMap::new();
        for (i, item) in more.into_iter().rev() {
            let acct = item.account().to_string();
            match queued.get_mut(&acct) {
                Some((queue, _)) => queue.front.push_front((i, item)),
                None => {
                    let mut front = std::collections::VecDeque::new();
                    front.push_front((i, item));
                    let rest = Box::new(std::iter::empty());
                    queued.insert(acct.clone(), (Queue { front, rest }, 0));
                }
            }
            touched.insert(acct, ());
        }
        touched.insert(account, ());
        for acct in touched.keys() {
            let cap = caps.get(acct).copied().unwrap_or(1).max(1);
            if let Some((queue, running)) = queued.get_mut(acct) {
                while *running < cap && run.start(acct, queue, providers, &f) {
                    *running += 1;
                }
            }
        }
    }
}

/// What [`for_each`] runs: each account's items, in order, each made when
/// its turn comes.
struct Lazy<'a, I> {
    by_account: BTreeMap<String, Box<dyn Iterator<Item = (usize, I)> + Send + 'a>>,
}

impl<I: HasAccount + Send + 'static> Lazy<'static, I> {
    /// The items, made already (item `k` has index `k`).
    fn of(items: Vec<I>) -> Self {
        let mut by_account: BTreeMap<String, Vec<(usize, I)>> = BTreeMap::new();
        for (i, item) in items.into_iter().enumerate() {
            by_account
                .entry(item.account().to_string())
                .or_default()
                .push((i, item));
        }
        Lazy {
            by_account: by_account
                .into_iter()
                .map(|(a, items)| {
                    (
                        a,
                        Box::new(items.into_iter()) as Box<dyn Iterator<Item = _> + Send>,
                    )
                })
                .collect(),
        }
    }
}

/// One account's items not started yet: the ones brought by outputs first,
/// then the rest, made as they are taken.
struct Queue<'a, I> {
    front: std::collections::VecDeque<(usize, I)>,
    rest: Box<dyn Iterator<Item = (usize, I)> + Send + 'a>,
}

impl<I> Queue<'_, I> {
    fn next(&mut self) -> Option<(usize, I)> {
        self.front.pop_front().or_else(|| self.rest.next())
    }
}

/// The tasks [`for_each`] runs, and a copy of each one's item (with its
/// index) to report its failure.
struct Running<I, O> {
    set: tokio::task::JoinSet<O>,
    spawned: std::collections::HashMap<tokio::task::Id, (usize, I)>,
}

impl<I: HasAccount + Clone + Send + 'static, O: Send + 'static> Running<I, O> {
    /// Spawns the task of the next item in `queue`; false when there is none.
    fn start<F, Fut>(
        &mut self,
        account: &str,
        queue: &mut Queue<'_, I>,
        providers: &BTreeMap<String, Arc<dyn Provider>>,
        f: &F,
    ) -> bool
    where
        F: Fn(I, Arc<dyn Provider>) -> Fut,
        Fut: std::future::Future<Output = O> + Send + 'static,
    {
        // (Only accounts that have a provider are queued.)
        let Some(p) = providers.get(account) else {
            return false;
        };
        let Some((i, item)) = queue.next() else {
            return false;
        };
        let copy = item.clone();
        let task = self.set.spawn(f(item, p.clone()));
        self.spawned.insert(task.id(), (i, copy));
        true
    }
}

/// An item that did not run to its outcome.
enum Unrun<I> {
    /// Its account has no provider.
    Missing(I),
    /// Its task panicked or was cancelled (the runtime's words).
    Failed(I, String),
}

type Planned = (DomainJob, Option<Zone>, Result<Read, DomainError>);

impl From<Unrun<DomainJob>> for Planned {
    fn from(u: Unrun<DomainJob>) -> Self {
        match u {
            Unrun::Missing(job) => {
                let account = job.account.clone();
                let message = "no such account, or it could not be set up".into();
                (job, None, Err(DomainError::Account { account, message }))
            }
            Unrun::Failed(job, message) => (job, None, Err(DomainError::Task { message })),
        }
    }
}

impl From<Unrun<Planned>> for DomainOutcome {
    fn from(u: Unrun<Planned>) -> Self {
        let ((job, zone, result), failed) = match u {
            Unrun::Missing(p) => (p, None),
            Unrun::Failed(p, message) => (p, Some(DomainError::Task { message })),
        };
        let (plan, error) = match (result, failed) {
            // A write task that failed: its plan, and how much it wrote is unknown.
            (Ok(r), Some(e)) => (Some(r.plan), Some(e)),
            (Err(e), _) => (None, Some(e)),
            (Ok(_), None) => (None, None),
        };
        DomainOutcome {
            domain: job.domain,
            account: job.account,
            zone: zone.map(|z| z.name.to_string()),
            plan,
            applied: 0,
            pending: false,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maildns_providers::{Profile, TxtRecord, TxtSet};

    /// A host whose read panics for names under `bad.example` and whose write
    /// panics under `badwrite.example` (bugs in an adapter); it holds what is
    /// written elsewhere.
    struct Panicky(Profile, std::sync::Mutex<BTreeMap<Fqdn, TxtSet>>);

    #[async_trait::async_trait]
    impl Provider for Panicky {
        fn kind(&self) -> &'static str {
            "panicky"
        }
        fn profile(&self) -> &Profile {
            &self.0
        }
        async fn find_zone(&self, name: &Fqdn) -> Result<Zone, ProviderError> {
            Ok(Zone {
                name: name.clone(),
                id: name.to_string(),
            })
        }
        async fn read_txt(&self, _: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, ProviderError> {
            assert!(!name.as_str().ends_with("bad.example"), "adapter bug");
            Ok(self.1.lock().unwrap().get(name).cloned())
        }
        async fn replace_txt(
            &self,
            _: &Zone,
            name: &Fqdn,
            set: &TxtSet,
        ) -> Result<(), ProviderError> {
            assert!(!name.as_str().ends_with("badwrite.example"), "adapter bug");
            self.1.lock().unwrap().insert(name.clone(), set.clone());
            Ok(())
        }
        async fn delete_txt(&self, _: &Zone, _: &Fqdn) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    fn job(domain: &str) -> DomainJob {
        let name = Fqdn::parse(domain).unwrap();
        DomainJob {
            domain: name.clone(),
            account: "a".into(),
            zone: None,
            desired: vec![Desired {
                name,
                kind: crate::records::RecordKind::Spf,
                records: vec![TxtRecord::from_value("v=spf1 -all")],
                ttl: 3600,
                in_use: false,
                only_remove: None,
            }],
        }
    }

    #[tokio::test]
    async fn a_domain_whose_task_panics_is_reported_as_failed() {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        providers.insert(
            "a".into(),
            Arc::new(Panicky(Profile::default(), Default::default())),
        );
        let jobs = vec![
            job("one.example"),
            job("bad.example"),
            job("two.example"),
            job("badwrite.example"),
        ];
        let opts = Options {
            mode: Mode::Apply,
            force: false,
            max_delete_share: 0.5,
        };
        let out = run_jobs(jobs, &providers, opts).await;
        let domains: Vec<&str> = out.iter().map(|o| o.domain.as_str()).collect();
        assert_eq!(
            domains,
            [
                "one.example",
                "bad.example",
                "two.example",
                "badwrite.example"
            ]
        );
        assert!(matches!(
            &out[1].error,
            Some(DomainError::Task { message }) if message == "it panicked"
        ));
        assert_eq!(
            out[1].error.as_ref().map(ToString::to_string).as_deref(),
            Some("the domain's task failed: it panicked")
        );
        // Failed while writing: its plan is kept, the failure named.
        assert!(matches!(&out[3].error, Some(DomainError::Task { .. })));
        assert_eq!(out[3].plan.as_ref().map(|p| p.changes.len()), Some(1));
        for o in [&out[0], &out[2]] {
            assert!(o.error.is_none(), "{:?}", o.error);
            assert_eq!(o.applied, 1);
        }
    }

    /// An in-memory host counting its calls. `foreign` is added to the set at
    /// its name once, by "another tool", just before the first write (after
    /// maildns read the zone); `fail_at` refuses the write of that name.
    #[derive(Default)]
    struct Counting {
        profile: Profile,
        sets: std::sync::Mutex<BTreeMap<Fqdn, TxtSet>>,
        foreign: std::sync::Mutex<Option<(Fqdn, TxtRecord)>>,
        fail_at: Option<Fqdn>,
        finds: std::sync::atomic::AtomicUsize,
        reads: std::sync::atomic::AtomicUsize,
        writes: std::sync::atomic::AtomicUsize,
        /// "read NAME" and "write NAME", in the order the host saw them.
        events: std::sync::Mutex<Vec<String>>,
    }

    impl Counting {
        fn count(c: &std::sync::atomic::AtomicUsize) -> usize {
            c.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl Provider for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn profile(&self) -> &Profile {
            &self.profile
        }
        async fn find_zone(&self, name: &Fqdn) -> Result<Zone, ProviderError> {
            self.finds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Zone {
                name: name.clone(),
                id: format!("id-{name}"),
            })
        }
        async fn read_txt(&self, _: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, ProviderError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.events.lock().unwrap().push(format!("read {name}"));
            Ok(self.sets.lock().unwrap().get(name).cloned())
        }
        async fn replace_if_unchanged(
            &self,
            zone: &Zone,
            change: &TxtChange,
        ) -> Result<(), ProviderError> {
            if let Some((name, value)) = self.foreign.lock().unwrap().take() {
                let mut sets = self.sets.lock().unwrap();
                let set = sets.entry(name).or_insert(TxtSet {
                    ttl: 3600,
                    records: vec![],
                });
                set.records.push(value);
            }
            if self.fail_at.as_ref() == Some(&change.name) {
                return Err(ProviderError::new(
                    "counting",
                    change.operation(),
                    Some(&change.name),
                    maildns_providers::ErrorKind::Server,
                    "HTTP 500",
                ));
            }
            // The default: read again, compare, write.
            let now = self.read_txt(zone, &change.name).await?;
            if !change.old.unchanged_in(now.as_ref()) {
                return Err(maildns_providers::changeset::conflict(
                    "counting",
                    change.operation(),
                    &change.name,
                    "changed",
                ));
            }
            match change.wanted() {
                Some(set) => self.replace_txt(zone, &change.name, set).await,
                None => self.delete_txt(zone, &change.name).await,
            }
        }
        async fn replace_txt(
            &self,
            _: &Zone,
            name: &Fqdn,
            set: &TxtSet,
        ) -> Result<(), ProviderError> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.events.lock().unwrap().push(format!("write {name}"));
            self.sets.lock().unwrap().insert(name.clone(), set.clone());
            Ok(())
        }
        async fn delete_txt(&self, _: &Zone, name: &Fqdn) -> Result<(), ProviderError> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.events.lock().unwrap().push(format!("write {name}"));
            self.sets.lock().unwrap().remove(name);
            Ok(())
        }
    }

    fn spf_and_dmarc(domain: &str) -> DomainJob {
        let mut j = job(domain);
        j.zone = Some(Fqdn::parse(domain).unwrap());
        j.desired.push(Desired {
            name: Fqdn::parse(&format!("_dmarc.{domain}")).unwrap(),
            kind: crate::records::RecordKind::Dmarc,
            records: vec![TxtRecord::from_value("v=DMARC1; p=reject")],
            ttl: 3600,
            in_use: false,
            only_remove: None,
        });
        j
    }

    const APPLY: Options = Options {
        mode: Mode::Apply,
        force: false,
        max_delete_share: 0.5,
    };

    async fn run_on(host: Arc<Counting>, jobs: Vec<DomainJob>) -> Vec<DomainOutcome> {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        providers.insert("a".into(), host);
        run_jobs(jobs, &providers, APPLY).await
    }

    #[tokio::test]
    async fn a_value_another_tool_adds_between_read_and_write_is_kept() {
        let host = Arc::new(Counting::default());
        let apex = Fqdn::parse("example.com").unwrap();
        let theirs = TxtRecord::from_value("google-site-verification=abc");
        *host.foreign.lock().unwrap() = Some((apex.clone(), theirs.clone()));
        let out = run_on(host.clone(), vec![spf_and_dmarc("example.com")]).await;
        assert!(out[0].error.is_none(), "{:?}", out[0].error);
        assert_eq!(out[0].applied, 2);
        let sets = host.sets.lock().unwrap();
        let values: Vec<String> = sets[&apex]
            .records
            .iter()
            .map(|r| r.value_lossy())
            .collect();
        assert_eq!(values, ["google-site-verification=abc", "v=spf1 -all"]);
        // The plan reported is the one applied: the foreign value is in it.
        let p = out[0].plan.as_ref().unwrap();
        assert_eq!(p.changes[0].foreign, vec![theirs]);
    }

    #[tokio::test]
    async fn a_configured_zone_is_found_once_per_run_and_read_once_per_domain() {
        // One domain at a time, so the second finds the zone the first looked up.
        let host = Arc::new(Counting {
            profile: Profile {
                concurrency: 1,
                ..Profile::default()
            },
            ..Counting::default()
        });
        let mut a = spf_and_dmarc("example.com");
        let mut b = spf_and_dmarc("mail.example.com");
        a.zone = Some(Fqdn::parse("example.com").unwrap());
        b.zone = a.zone.clone();
        let out = run_on(host.clone(), vec![a.clone(), b.clone()]).await;
        assert!(out.iter().all(|o| o.error.is_none()), "{out:?}");
        assert_eq!(out[0].zone.as_deref(), Some("example.com"));
        assert_eq!(Counting::count(&host.finds), 1, "one find for the zone");
        // Per domain (two names, the per-name defaults): the read (2), the
        // re-read before each write (2), the read-back (2).
        assert_eq!(Counting::count(&host.reads), 2 * 2 + 2 * 2 + 2 * 2);
        // A second run: in sync, the zone found again once, nothing written.
        let writes = Counting::count(&host.writes);
        let out = run_on(host.clone(), vec![a, b]).await;
        assert!(out.iter().all(|o| o.applied == 0 && o.error.is_none()));
        assert_eq!(Counting::count(&host.writes), writes);
        assert_eq!(Counting::count(&host.finds), 2, "one find per run");
    }

    #[tokio::test]
    async fn a_failed_write_reports_what_was_written_before_it() {
        let dmarc = Fqdn::parse("_dmarc.example.com").unwrap();
        let host = Arc::new(Counting {
            fail_at: Some(dmarc.clone()),
            ..Counting::default()
        });
        let out = run_on(host.clone(), vec![spf_and_dmarc("example.com")]).await;
        assert_eq!(out[0].applied, 1, "the SPF was written, the DMARC was not");
        let e = out[0].error.as_ref().unwrap().to_string();
        assert!(
            e.contains("_dmarc.example.com") && e.contains("HTTP 500"),
            "{e}"
        );
        assert!(!host.sets.lock().unwrap().contains_key(&dmarc));
    }

    /// A host of one domain at a time holding `v=spf1 old` and `v=DMARC1; p=none`
    /// in each of `domains`.
    fn holding(domains: &[&str]) -> Arc<Counting> {
        let host = Arc::new(Counting {
            profile: Profile {
                concurrency: 1,
                ..Profile::default()
            },
            ..Counting::default()
        });
        let mut sets = host.sets.lock().unwrap();
        for d in domains {
            for (name, value) in [
                (d.to_string(), "v=spf1 old"),
                (format!("_dmarc.{d}"), "v=DMARC1; p=none"),
            ] {
                sets.insert(
                    Fqdn::parse(&name).unwrap(),
                    TxtSet {
                        ttl: 3600,
                        records: vec![TxtRecord::from_value(value)],
                    },
                );
            }
        }
        drop(sets);
        host
    }

    /// `spf_and_dmarc`, with both values removed instead.
    fn removing(domain: &str) -> DomainJob {
        let mut j = spf_and_dmarc(domain);
        for d in &mut j.desired {
            d.records.clear();
        }
        j
    }

    #[tokio::test]
    async fn nothing_is_written_when_a_later_plan_crosses_the_deletion_threshold() {
        // a.example only updates; b and c delete both of their values: 4 of
        // the 6 managed names, over half. a is read first (one domain at a
        // time) while the deletions are still unknown: it must not be written.
        let host = holding(&["a.example", "b.example", "c.example"]);
        let jobs = vec![
            spf_and_dmarc("a.example"),
            removing("b.example"),
            removing("c.example"),
        ];
        let out = run_on(host.clone(), jobs).await;
        assert_eq!(Counting::count(&host.writes), 0, "{out:?}");
        assert!(out[0].error.is_none(), "{:?}", out[0].error);
        assert_eq!(out[0].applied, 0);
        assert_eq!(out[0].plan.as_ref().map(|p| p.changes.len()), Some(2));
        for o in &out[1..] {
            assert!(
                matches!(
                    o.error,
                    Some(DomainError::Threshold {
                        deletions: 4,
                        managed: 6,
                        ..
                    })
                ),
                "{:?}",
                o.error
            );
        }
    }

    #[tokio::test]
    async fn a_domain_is_written_after_its_read_once_the_threshold_cannot_be_crossed() {
        // a and b update; c, d and e remove both of their values, which the
        // host does not hold (so their plans delete nothing).
        let host = holding(&["a.example", "b.example"]);
        let jobs = vec![
            spf_and_dmarc("a.example"),
            spf_and_dmarc("b.example"),
            removing("c.example"),
            removing("d.example"),
            removing("e.example"),
        ];
        let out = run_on(host.clone(), jobs).await;
        assert!(out.iter().all(|o| o.error.is_none()), "{out:?}");
        assert!(out[..2].iter().all(|o| o.applied == 2), "{out:?}");
        let events = host.events.lock().unwrap().clone();
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        // 10 managed names, at most 5 deletions: until c is read, c, d and e
        // could delete 6, so a and b wait; after c's read (no deletion), d and
        // e can delete 4 at most: a and b are written then, before d is read
        // (not held until the end of the reads).
        for w in ["write a.example", "write b.example"] {
            assert!(at(w) > at("read c.example"), "{events:?}");
            assert!(at(w) < at("read d.example"), "{events:?}");
        }
        assert!(at("write a.example") < at("write b.example"), "{events:?}");
    }

    #[tokio::test]
    async fn a_run_that_removes_nothing_writes_each_domain_right_after_its_read() {
        // No plan can delete where a value is wanted: nothing is held.
        let domains = ["a.example", "b.example", "c.example", "d.example"];
        let host = holding(&domains);
        let jobs: Vec<DomainJob> = domains.iter().map(|d| spf_and_dmarc(d)).collect();
        let out = run_on(host.clone(), jobs).await;
        assert!(
            out.iter().all(|o| o.error.is_none() && o.applied == 2),
            "{out:?}"
        );
        let events = host.events.lock().unwrap().clone();
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        for pair in domains.windows(2) {
            assert!(
                at(&format!("write {}", pair[0])) < at(&format!("read {}", pair[1])),
                "{events:?}"
            );
        }
        // With --force every domain is written right after its own read,
        // deletions too.
        let host = holding(&domains);
        let jobs: Vec<DomainJob> = domains.iter().map(|d| removing(d)).collect();
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        providers.insert("a".into(), host.clone());
        let force = Options {
            force: true,
            ..APPLY
        };
        let out = run_jobs(jobs, &providers, force).await;
        assert!(out.iter().all(|o| o.applied == 2), "{out:?}");
        let events = host.events.lock().unwrap().clone();
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        assert!(at("write a.example") < at("read b.example"), "{events:?}");
    }

    #[tokio::test]
    async fn a_job_is_made_only_when_its_account_has_room() {
        // One request at a time: each domain's job is made after the one
        // before it is written, not all before the first request.
        let domains = ["a.example", "b.example", "c.example"];
        let host = holding(&domains);
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        providers.insert("a".into(), host.clone());
        let made = host.clone();
        let jobs = Jobs::new(&["a"; 3], 6, 0, move |i| {
            made.events
                .lock()
                .unwrap()
                .push(format!("make {}", domains[i]));
            spf_and_dmarc(domains[i])
        });
        let mut out = Vec::new();
        run_each(jobs, &providers, APPLY, None, &mut |o| out.push(o)).await;
        assert!(
            out.iter().all(|o| o.error.is_none() && o.applied == 2),
            "{out:?}"
        );
        let events = host.events.lock().unwrap().clone();
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        for pair in domains.windows(2) {
            assert!(
                at(&format!("write _dmarc.{}", pair[0])) < at(&format!("make {}", pair[1])),
                "{events:?}"
            );
        }
        assert_eq!(
            events.iter().filter(|e| e.starts_with("make ")).count(),
            3,
            "{events:?}"
        );
    }
}

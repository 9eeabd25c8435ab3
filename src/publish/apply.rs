//! Reads what each host holds, plans, checks the safety threshold, then writes.
//!
//! All domains are planned before anything is written (plan before apply). Domains
//! run concurrently, up to each account's declared concurrency cap; one domain's
//! failure does not stop the others. Every write is idempotent: a second run
//! finds everything in sync and writes nothing. Every set written is read back
//! at once; a value the host did not keep as sent (cut short, altered) fails the
//! domain with [`DomainError::NotStored`].

use std::collections::BTreeMap;
use std::sync::Arc;

use maildns_providers::{Error as ProviderError, Fqdn, Provider, Zone};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::plan::{Desired, Plan, PlanError, plan};
use super::readback::{NotStored, ServedCheck, compare_set};

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
    let served = served.map(Arc::new);
    let caps: BTreeMap<String, Arc<Semaphore>> = providers
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                Arc::new(Semaphore::new(p.profile().concurrency.max(1))),
            )
        })
        .collect();

    // Phase 1: read and plan everything.
    let planned = for_each(jobs, providers, &caps, |job, provider| async move {
        let zone = match find_zone(provider.as_ref(), &job).await {
            Ok(z) => z,
            Err(e) => return (job, None, Err(DomainError::Provider(e))),
        };
        let mut current = BTreeMap::new();
        for d in &job.desired {
            match provider.read_txt(&zone, &d.name).await {
                Ok(set) => {
                    current.insert(d.name.clone(), set);
                }
                Err(e) => return (job, Some(zone), Err(DomainError::Provider(e))),
            }
        }
        let result = plan(&job.desired, &current).map_err(DomainError::Plan);
        (job, Some(zone), result)
    })
    .await;

    let managed: usize = planned.iter().map(|(job, _, _)| job.desired.len()).sum();
    let deletions: usize = planned
        .iter()
        .filter_map(|(_, _, p)| p.as_ref().ok())
        .map(Plan::deletions)
        .sum();
    let over = managed > 0
        && deletions > 0
        && (deletions as f64) > opts.max_delete_share * managed as f64
        && !opts.force;

    // Phase 2: write.
    let write = opts.mode == Mode::Apply && !over;
    for_each(
        planned,
        providers,
        &caps,
        |(job, zone, result), provider| {
            let served = served.clone();
            async move {
                let mut outcome = DomainOutcome {
                    domain: job.domain.clone(),
                    account: job.account.clone(),
                    zone: zone.as_ref().map(|z| z.name.to_string()),
                    plan: None,
                    applied: 0,
                    error: None,
                };
                match result {
                    Err(e) => outcome.error = Some(e),
                    Ok(p) => {
                        if over && p.deletions() > 0 {
                            outcome.error = Some(DomainError::Threshold {
                                deletions,
                                managed,
                                share: opts.max_delete_share * 100.0,
                            });
                        } else if write && let Some(zone) = &zone {
                            for c in &p.changes {
                                let r = if c.write.records.is_empty() {
                                    provider.delete_txt(zone, &c.name).await
                                } else {
                                    provider.replace_txt(zone, &c.name, &c.write).await
                                };
                                if let Err(e) = r {
                                    outcome.error = Some(DomainError::Provider(e));
                                    break;
                                }
                                outcome.applied += 1;
                                let check = served
                                    .as_deref()
                                    .filter(|_| provider.profile().serves_at_once);
                                if let Err(e) =
                                    read_back(provider.as_ref(), zone, &job.domain, c, check).await
                                {
                                    outcome.error = Some(e);
                                    break;
                                }
                            }
                        }
                        outcome.plan = Some(p);
                    }
                }
                outcome
            }
        },
    )
    .await
}

/// Reads the set `c` wrote back and compares it with what was sent (a delete is
/// not read back).
async fn read_back(
    provider: &dyn Provider,
    zone: &Zone,
    domain: &Fqdn,
    c: &super::plan::Change,
    served: Option<&ServedCheck>,
) -> Result<(), DomainError> {
    if c.write.records.is_empty() {
        return Ok(());
    }
    let stored = provider
        .read_txt(zone, &c.name)
        .await
        .map_err(DomainError::Provider)?;
    if let Some(e) = compare_set(&c.name, c.kind, &c.write, stored.as_ref()) {
        return Err(DomainError::NotStored(e));
    }
    if let Some(check) = served
        && let Some(e) = check
            .check(domain, &c.name, c.kind, &c.write.records, &c.old)
            .await
    {
        return Err(DomainError::NotStored(e));
    }
    Ok(())
}

async fn find_zone(provider: &dyn Provider, job: &DomainJob) -> Result<Zone, ProviderError> {
    provider
        .find_zone(job.zone.as_ref().unwrap_or(&job.domain))
        .await
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

/// Runs `f` on every item concurrently, each holding a permit of its account's
/// cap. An item whose account has no provider, or whose task panics or is
/// cancelled, still gets an outcome ([`Unrun`]): one out per item, in order.
async fn for_each<I, O, F, Fut>(
    items: Vec<I>,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    caps: &BTreeMap<String, Arc<Semaphore>>,
    f: F,
) -> Vec<O>
where
    I: HasAccount + Clone + Send + 'static,
    O: Send + 'static + From<Unrun<I>>,
    F: Fn(I, Arc<dyn Provider>) -> Fut,
    Fut: std::future::Future<Output = O> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut out: Vec<Option<O>> = Vec::with_capacity(items.len());
    // A copy of each spawned item, to report its task's failure.
    let mut spawned = BTreeMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let acct = item.account().to_string();
        match (providers.get(&acct), caps.get(&acct)) {
            (Some(p), Some(cap)) => {
                let copy = item.clone();
                let fut = f(item, p.clone());
                let cap = cap.clone();
                let task = set.spawn(async move {
                    let _permit = cap.acquire_owned().await;
                    (i, fut.await)
                });
                spawned.insert(task.id(), (i, copy));
                out.push(None);
            }
            _ => out.push(Some(O::from(Unrun::Missing(item)))),
        }
    }
    while let Some(r) = set.join_next_with_id().await {
        match r {
            Ok((id, (i, o))) => {
                spawned.remove(&id);
                out[i] = Some(o);
            }
            Err(e) => {
                if let Some((i, item)) = spawned.remove(&e.id()) {
                    let message = if e.is_panic() {
                        "it panicked".to_string()
                    } else {
                        e.to_string()
                    };
                    tracing::error!("{}: a domain task failed: {message}", item.account());
                    out[i] = Some(O::from(Unrun::Failed(item, message)));
                }
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// An item that did not run to its outcome.
enum Unrun<I> {
    /// Its account has no provider.
    Missing(I),
    /// Its task panicked or was cancelled (the runtime's words).
    Failed(I, String),
}

type Planned = (DomainJob, Option<Zone>, Result<Plan, DomainError>);

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
            (Ok(p), Some(e)) => (Some(p), Some(e)),
            (Err(e), _) => (None, Some(e)),
            (Ok(_), None) => (None, None),
        };
        DomainOutcome {
            domain: job.domain,
            account: job.account,
            zone: zone.map(|z| z.name.to_string()),
            plan,
            applied: 0,
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
}

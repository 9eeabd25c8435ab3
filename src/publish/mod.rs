//! Publishing: [`plan`] diffs desired against current (pure); [`apply`] reads the
//! current state from each account, plans and writes, domain by domain, then
//! reads each written set back ([`readback`]).

pub mod apply;
pub mod checks;
pub mod desired;
pub mod ledger;
pub mod pacing;
pub mod plan;
pub mod readback;

pub use apply::{
    DomainError, DomainJob, DomainOutcome, Jobs, Mode, Options, run_checked, run_each, run_jobs,
};
pub use checks::checks_for_plan;
pub use desired::{DkimEntry, for_domain, selector_name};
pub use ledger::Ledger;
pub use plan::{Action, Change, Desired, Plan, PlanError, plan};
pub use readback::{NotStored, ServedCheck};

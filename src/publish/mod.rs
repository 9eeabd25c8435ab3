//! Publishing: [`plan`] diffs desired against current (pure); [`apply`] reads the
//! current state from each account, plans and writes, domain by domain.

pub mod apply;
pub mod checks;
pub mod desired;
pub mod ledger;
pub mod plan;

pub use apply::{DomainError, DomainJob, DomainOutcome, Options, run};
pub use checks::checks_for_plan;
pub use desired::{DkimEntry, for_domain, selector_name};
pub use ledger::Ledger;
pub use plan::{Action, Change, Desired, Plan, PlanError, plan};

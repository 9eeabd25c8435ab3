//! Publishing: [`plan`] diffs desired against current (pure); [`apply`] reads the
//! current state from each account, plans and writes, domain by domain.

pub mod plan;

pub use plan::{Action, Change, Desired, Plan, PlanError, plan};

//! Whole commands as library calls. Each takes the validated configuration,
//! the connected accounts and the state store, does the work down the layers
//! ([`crate::publish`], [`crate::rotation`], the providers crate) and returns a
//! report; the face (`cli/`) only parses arguments, gathers credentials (it owns
//! the environment) and prints. These modules sit above `publish` and
//! `rotation`, which both use, so no layer calls back up.

pub mod publish;

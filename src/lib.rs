//! maildns: publishes the DNS records that authenticate a domain's mail (SPF, DKIM,
//! DMARC and, on request, the historic ADSP) through the DNS host's API, watches
//! them propagate to every authoritative server, and rotates DKIM keys.
//!
//! The binary (`src/main.rs`, `cli/`) is thin; the work lives in these modules.
//! Dependencies point down: cli -> command/daemon -> rotation/publish/diagnose ->
//! propagation/signer/records/keys/config -> the `maildns-providers` crate.

#![deny(missing_docs)]

pub mod accounts;
pub mod cli;
pub mod command;
pub mod config;
pub mod daemon;
pub mod diagnose;
mod error;
pub mod gate;
pub mod keys;
pub mod manual;
pub mod propagation;
pub mod publish;
pub mod quote;
pub mod records;
pub mod rotation;
pub mod secrets;
pub mod signer;
pub mod verify;

//! Local, stateful HTTP fakes of cloud DNS APIs, bound to 127.0.0.1 at a free port.
//! Each follows its host's documented request and response shapes, TXT quirks and
//! error bodies (see shared/notes/provider-apis.md and fixtures/providers/<host>/).

pub mod azure;
pub mod bunny;
pub mod cloudflare;
mod common;
pub mod desec;
pub mod digitalocean;
pub mod dnsimple;
pub mod fault;
pub mod gandi;
pub mod godaddy;
pub mod google;
pub mod hetzner;
pub mod ionos;
pub mod kit;
pub mod linode;
pub mod namecheap;
pub mod netcup;
pub mod ovh;
pub mod porkbun;
pub mod quirky;
pub mod route53;
pub mod scaleway;
pub mod served;
pub mod tripwire;
pub mod vultr;

pub use common::Recorded;

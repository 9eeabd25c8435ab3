//! One module per DNS host, all the same shape: a `Config` (typed, validated,
//! credentials passed in, never read from the environment here), a constructor
//! that validates it, and the [`crate::Provider`] implementation.

pub mod cloudflare;
pub mod desec;
pub mod digitalocean;
pub mod gandi;
pub mod google;
pub mod hetzner;
pub mod powerdns;
pub mod rfc2136;
pub mod route53;
pub mod zonefile;

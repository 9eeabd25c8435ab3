//! The providers crate's integration tests: one test binary, one module per
//! adapter (against a real server or the host's local fake) plus the descriptor
//! checks. Filter by module: `cargo test -p maildns-providers --test it route53::`.

mod cloudflare;
mod descriptors;
mod desec;
mod digitalocean;
mod exec;
mod gandi;
mod google;
mod hetzner;
mod malformed_answers;
mod powerdns;
mod rfc2136;
mod route53;
mod zonefile;

//! The providers crate's integration tests: one test binary, one module per
//! adapter (against a real server or the host's local fake) plus the descriptor
//! checks. Filter by module: `cargo test -p maildns-providers --test it route53::`.

mod answer_parsers;
mod azure;
mod bunny;
mod cloudflare;
mod descriptors;
mod desec;
mod digitalocean;
mod dnsimple;
mod exec;
mod gandi;
mod godaddy;
mod google;
mod hetzner;
mod ionos;
mod linode;
mod malformed_answers;
mod namecheap;
mod netcup;
mod ovh;
mod porkbun;
mod powerdns;
mod rfc2136;
mod route53;
mod scaleway;
mod vultr;
mod zonefile;

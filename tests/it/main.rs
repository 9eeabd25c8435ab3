//! The root crate's integration tests: one test binary (one link, one process),
//! one module per area. Filter by module: `cargo test --test it rotation::`.
//!
//! Every module runs the `maildns` binary through [`cmd`], the testkit's command
//! builder. Tests share this process, so none changes process-wide state: environment variables go to the
//! children (`Maildns::env`), never `std::env::set_var`; no test changes the
//! current directory (`Maildns::current_dir` sets the child's); each `#[tokio::test]`
//! has its own runtime.

mod account_settings;
mod check_messages;
mod cli;
mod cloud_hosts;
mod diagnose;
mod faults;
mod first_keys;
mod gate;
mod host_cycle;
mod host_ttl_limits;
mod hosts_linode;
mod hosts_ovh;
mod hosts_porkbun_netcup_ionos;
mod hosts_vultr;
mod import_opendkim;
mod import_opendkim_sql;
mod key_floor;
mod manual_conformance;
mod manual_host;
mod opendkim_signer;
mod opendkim_sql;
mod operations;
mod output;
mod pacing;
mod pg_state;
mod pg_tls;
mod pg_url;
mod plan_ttl;
mod propagation;
mod propagation_wait;
mod publish_dnsimple_namecheap_godaddy;
mod publish_servers;
mod readback;
mod replicas;
mod request_takes;
mod rotation;
mod rspamd_rotation;
mod rspamd_signer;
mod secret;
mod shared_keys;
mod sqlite_requests;
mod status;
mod support;
mod watch_verify;
mod zonefile_bind;

use maildns_testkit::cmd::Maildns;

/// The `maildns` binary built for these tests, as the testkit's command builder
/// (with `MAILDNS_CONFIG`, `NOTIFY_SOCKET` and `CREDENTIALS_DIRECTORY` removed
/// from its environment).
fn cmd() -> Maildns {
    Maildns::new(env!("CARGO_BIN_EXE_maildns"))
}

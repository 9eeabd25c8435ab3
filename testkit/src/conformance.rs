//! The provider conformance suite every adapter runs (to be written).

use std::net::SocketAddr;

use maildns_providers::{Provider, Zone};

/// Runs every conformance check against `provider` in `zone`; when `dns` is given,
/// also checks what that server serves. Panics with a clear message on failure.
pub async fn run(provider: &dyn Provider, zone: &Zone, dns: Option<SocketAddr>) {
    let _ = (provider, zone, dns);
}

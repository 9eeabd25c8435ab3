//! Which servers to watch for a domain: the configured override (hidden
//! primaries, split horizon, tests), else the zone's authoritative servers found
//! by [`discover`] through the configured resolvers or the system's.

use std::net::SocketAddr;

use maildns_providers::Fqdn;

use super::{DiscoveryError, DiscoveryOptions, Nameserver, Querier, Upstream, discover};

/// The resolvers to ask: `resolvers` when any are configured, else the system's.
pub fn upstream(resolvers: &[SocketAddr]) -> Upstream {
    if resolvers.is_empty() {
        Upstream::System
    } else {
        Upstream::Servers(resolvers.to_vec())
    }
}

/// The authoritative servers for `name`: `overrides` when given (in that order),
/// else every address of every NS of the zone holding `name`.
///
/// # Errors
/// [`DiscoveryError`] when no override is given and discovery fails (see
/// [`discover`]).
pub async fn authoritative_servers(
    querier: &Querier,
    name: &Fqdn,
    overrides: &[SocketAddr],
    resolvers: &[SocketAddr],
) -> Result<Vec<Nameserver>, DiscoveryError> {
    if !overrides.is_empty() {
        return Ok(overrides
            .iter()
            .copied()
            .map(Nameserver::from_addr)
            .collect());
    }
    let options = DiscoveryOptions {
        upstream: upstream(resolvers),
        ..DiscoveryOptions::default()
    };
    Ok(discover(querier, &options, name).await?.nameservers)
}

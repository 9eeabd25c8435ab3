//! What the `manual` host reads: the TXT RRsets the zone's authoritative
//! servers serve, asked directly (no recursion), found like the propagation
//! watcher finds them (a domain's `nameservers` override, else NS discovery
//! through the configured resolvers).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use maildns_providers::hosts::manual::ServedSets;
use maildns_providers::{Fqdn, TxtSet};

use crate::config::Config;
use crate::propagation::{
    DiscoveryOptions, Querier, QueryOptions, Rcode, authoritative_servers, discover, upstream,
};

/// Reads what a manual account's zones serve.
#[derive(Debug)]
pub struct AuthoritativeReader {
    querier: Querier,
    /// Configured servers per zone apex (from the domains' `nameservers`).
    overrides: BTreeMap<Fqdn, Vec<SocketAddr>>,
    /// Configured zone apex per domain.
    zones: BTreeMap<Fqdn, Fqdn>,
    resolvers: Vec<SocketAddr>,
}

impl AuthoritativeReader {
    /// A reader for the domains of `account` in `config`.
    pub fn new(config: &Config, account: &str) -> AuthoritativeReader {
        let mut overrides = BTreeMap::new();
        let mut zones = BTreeMap::new();
        for d in config.domains.iter().filter(|d| d.account == account) {
            let apex = d.zone.clone().unwrap_or_else(|| d.name.clone());
            if !d.nameservers.is_empty() {
                overrides.insert(apex.clone(), d.nameservers.to_vec());
            }
            zones.insert(d.name.clone(), apex);
        }
        AuthoritativeReader {
            querier: Querier::new(QueryOptions::default()),
            overrides,
            zones,
            resolvers: config.propagation.resolvers.clone(),
        }
    }
}

#[async_trait::async_trait]
impl ServedSets for AuthoritativeReader {
    async fn zone_of(&self, name: &Fqdn) -> Result<Fqdn, String> {
        if let Some(z) = self.zones.get(name) {
            return Ok(z.clone());
        }
        let options = DiscoveryOptions {
            upstream: upstream(&self.resolvers),
            ..DiscoveryOptions::default()
        };
        discover(&self.querier, &options, name)
            .await
            .map(|d| d.zone)
            .map_err(|e| e.to_string())
    }

    /// Each name is asked of the zone's servers in turn; the first
    /// authoritative answer counts (while a change propagates, servers differ:
    /// the plan then follows the first, and the watcher waits for all).
    async fn served(
        &self,
        zone: &Fqdn,
        names: &[Fqdn],
    ) -> Result<BTreeMap<Fqdn, Option<TxtSet>>, String> {
        let overrides = self.overrides.get(zone).map(Vec::as_slice).unwrap_or(&[]);
        let servers = authoritative_servers(&self.querier, zone, overrides, &self.resolvers)
            .await
            .map_err(|e| format!("finding the servers of {zone}: {e}"))?;
        let mut out = BTreeMap::new();
        for name in names {
            let mut last = format!("no authoritative server of {zone} is known");
            let mut found = None;
            for s in &servers {
                match self.querier.txt(s.addr, name, false).await {
                    Ok(a)
                        if a.authoritative
                            && matches!(a.rcode, Rcode::NoError | Rcode::NxDomain) =>
                    {
                        found = Some((!a.records.is_empty()).then(|| TxtSet {
                            ttl: a.ttl.unwrap_or(0),
                            records: a.records,
                        }));
                        break;
                    }
                    Ok(a) => {
                        last = format!(
                            "{} answered {:?}{} for {name}",
                            s.addr,
                            a.rcode,
                            if a.authoritative {
                                ""
                            } else {
                                " without authority"
                            }
                        );
                    }
                    Err(e) => last = format!("{}: {e}", s.addr),
                }
            }
            match found {
                Some(set) => {
                    out.insert(name.clone(), set);
                }
                None => return Err(last),
            }
        }
        Ok(out)
    }
}

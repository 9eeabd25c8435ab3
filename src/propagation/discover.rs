//! Authoritative server discovery, as lego does it: follow CNAMEs from the name,
//! walk up SOA queries until a name has its own SOA (the zone apex), read the
//! apex's NS set, and resolve every A and AAAA of every NS name.
//!
//! Questions go through a recursive resolver: the system's (`/etc/resolv.conf`,
//! read by hickory) or addresses given explicitly. Any server that answers these
//! questions will do — tests use an authoritative PowerDNS for its own zone.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::DnsResponse;
use hickory_proto::rr::{RData, RecordType};
use maildns_providers::Fqdn;

use super::Nameserver;
use super::query::{Querier, QueryError, Rcode, trim_dot};

/// Where discovery asks its questions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Upstream {
    /// The resolvers in the system configuration (`/etc/resolv.conf`).
    #[default]
    System,
    /// These resolvers, tried in order.
    Servers(Vec<SocketAddr>),
}

impl Upstream {
    /// The resolver addresses to ask.
    ///
    /// # Errors
    /// [`DiscoveryError::NoUpstream`] when the list is empty, or the system resolver
    /// configuration (`/etc/resolv.conf`) cannot be read or names no server.
    pub fn addrs(&self) -> Result<Vec<SocketAddr>, DiscoveryError> {
        match self {
            Upstream::Servers(a) if a.is_empty() => Err(DiscoveryError::NoUpstream {
                message: "no resolver address given".into(),
            }),
            Upstream::Servers(a) => Ok(a.clone()),
            Upstream::System => {
                let (config, _) =
                    hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                        DiscoveryError::NoUpstream {
                            message: format!("reading the system resolver configuration: {e}"),
                        }
                    })?;
                let mut addrs = Vec::new();
                for ns in config.name_servers() {
                    let port = ns.connections.first().map_or(53, |c| c.port);
                    let addr = SocketAddr::new(ns.ip, port);
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                if addrs.is_empty() {
                    return Err(DiscoveryError::NoUpstream {
                        message: "the system configuration lists no nameserver".into(),
                    });
                }
                Ok(addrs)
            }
        }
    }
}

/// How discovery runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// The resolvers to ask.
    pub upstream: Upstream,
    /// Port of the discovered authoritative servers (53; tests use others).
    pub nameserver_port: u16,
    /// Most CNAMEs followed from the name.
    pub max_cname_hops: u8,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            upstream: Upstream::System,
            nameserver_port: 53,
            max_cname_hops: 8,
        }
    }
}

/// What discovery found for a name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discovery {
    /// The name asked about.
    pub name: Fqdn,
    /// Where the records live: `name`, or the end of its CNAME chain.
    pub target: Fqdn,
    /// The zone apex holding `target`.
    pub zone: Fqdn,
    /// The zone's NS names (no trailing dot), in the order served.
    pub ns_names: Vec<String>,
    /// Every address of every NS name.
    pub nameservers: Vec<Nameserver>,
    /// NS names for which no address was found (reported, not fatal when others resolve).
    pub unresolved: Vec<String>,
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No resolver to ask.
    #[error("no recursive resolver to ask: {message}")]
    NoUpstream {
        /// Details.
        message: String,
    },
    /// Every resolver failed to answer a question.
    #[error("no resolver answered {qtype}? {name}: {last}")]
    Unanswered {
        /// The name asked.
        name: String,
        /// The type asked.
        qtype: String,
        /// The last failure.
        last: Box<QueryError>,
    },
    /// Walking up from the name found no SOA.
    #[error("no zone apex (SOA) found at or above {name}")]
    NoZone {
        /// The name.
        name: String,
    },
    /// More CNAMEs than allowed, or a loop.
    #[error("CNAME chain from {name} is longer than {max} or loops")]
    CnameChain {
        /// The name.
        name: String,
        /// The limit.
        max: u8,
    },
    /// A CNAME pointed at something that is not a valid name.
    #[error("{name} is a CNAME to '{target}', which is not a valid name")]
    BadTarget {
        /// The name.
        name: String,
        /// The target as served.
        target: String,
    },
    /// The zone has no NS records.
    #[error("zone {zone} has no NS records")]
    NoNameservers {
        /// The zone.
        zone: String,
    },
    /// No NS name has an address.
    #[error("none of the NS names of {zone} ({}) has an A or AAAA record", names.join(", "))]
    NoAddresses {
        /// The zone.
        zone: String,
        /// The NS names tried.
        names: Vec<String>,
    },
}

/// Finds the zone of `name` and the addresses of its authoritative servers.
///
/// # Errors
/// [`DiscoveryError`]: no resolver to ask or none answered, no zone apex (SOA) at
/// or above `name`, a CNAME chain that loops or is too long, or a zone whose NS
/// names have no address.
pub async fn discover(
    querier: &Querier,
    options: &DiscoveryOptions,
    name: &Fqdn,
) -> Result<Discovery, DiscoveryError> {
    let upstream = options.upstream.addrs()?;
    let ask = |n: Fqdn, t: RecordType| {
        let upstream = upstream.clone();
        async move { ask(querier, &upstream, &n, t).await }
    };

    // 1. Follow CNAMEs.
    let mut target = name.clone();
    let mut seen = vec![target.clone()];
    loop {
        let response = ask(target.clone(), RecordType::CNAME).await?;
        let Some(next) = records_at(&response, &target, |d| match d {
            RData::CNAME(c) => Some(trim_dot(&c.0.to_ascii())),
            _ => None,
        })
        .into_iter()
        .next() else {
            break;
        };
        let next = Fqdn::parse(&next).map_err(|_| DiscoveryError::BadTarget {
            name: target.to_string(),
            target: next.clone(),
        })?;
        if seen.contains(&next) || seen.len() > usize::from(options.max_cname_hops) {
            return Err(DiscoveryError::CnameChain {
                name: name.to_string(),
                max: options.max_cname_hops,
            });
        }
        seen.push(next.clone());
        target = next;
    }

    // 2. Walk up to the apex: the first name that owns a SOA.
    let mut candidate = Some(target.clone());
    let zone = loop {
        let Some(c) = candidate else {
            return Err(DiscoveryError::NoZone {
                name: target.to_string(),
            });
        };
        let response = ask(c.clone(), RecordType::SOA).await?;
        let owns_soa = !records_at(&response, &c, |d| match d {
            RData::SOA(_) => Some(()),
            _ => None,
        })
        .is_empty();
        if owns_soa {
            break c;
        }
        candidate = c.parent();
    };

    // 3. The NS set, 4. every address of every NS name.
    let response = ask(zone.clone(), RecordType::NS).await?;
    let ns_names = records_at(&response, &zone, |d| match d {
        RData::NS(ns) => Some(trim_dot(&ns.0.to_ascii()).to_ascii_lowercase()),
        _ => None,
    });
    if ns_names.is_empty() {
        return Err(DiscoveryError::NoNameservers {
            zone: zone.to_string(),
        });
    }
    let mut nameservers = Vec::new();
    let mut unresolved = Vec::new();
    for ns in &ns_names {
        let Ok(ns_fqdn) = Fqdn::parse(ns) else {
            unresolved.push(ns.clone());
            continue;
        };
        let mut found = false;
        for qtype in [RecordType::A, RecordType::AAAA] {
            let response = ask(ns_fqdn.clone(), qtype).await?;
            for ip in addresses_of(&response) {
                let addr = SocketAddr::new(ip, options.nameserver_port);
                let server = Nameserver {
                    name: Some(ns.clone()),
                    addr,
                };
                if !nameservers.contains(&server) {
                    nameservers.push(server);
                }
                found = true;
            }
        }
        if !found {
            unresolved.push(ns.clone());
        }
    }
    if nameservers.is_empty() {
        return Err(DiscoveryError::NoAddresses {
            zone: zone.to_string(),
            names: ns_names,
        });
    }
    Ok(Discovery {
        name: name.clone(),
        target,
        zone,
        ns_names,
        nameservers,
        unresolved,
    })
}

/// Asks each upstream in turn (recursion desired) until one gives a usable answer
/// (NOERROR or NXDOMAIN).
async fn ask(
    querier: &Querier,
    upstream: &[SocketAddr],
    name: &Fqdn,
    qtype: RecordType,
) -> Result<DnsResponse, DiscoveryError> {
    let mut last = None;
    for &server in upstream {
        match querier.query(server, name, qtype, true).await {
            Ok((response, _)) => {
                let rcode = Rcode::from(response.metadata.response_code);
                if matches!(rcode, Rcode::NoError | Rcode::NxDomain) {
                    return Ok(response);
                }
                last = Some(QueryError::Failed {
                    server,
                    name: name.to_string(),
                    qtype: qtype.to_string(),
                    tcp: false,
                    message: format!("answered {rcode}"),
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(DiscoveryError::Unanswered {
        name: name.to_string(),
        qtype: qtype.to_string(),
        last: Box::new(last.unwrap_or(QueryError::BadName {
            name: name.to_string(),
            message: "no resolver".into(),
        })),
    })
}

/// The data of answer records owned by `owner`, picked by `pick`.
fn records_at<T>(
    response: &DnsResponse,
    owner: &Fqdn,
    pick: impl Fn(&RData) -> Option<T>,
) -> Vec<T> {
    response
        .answers
        .iter()
        .filter(|r| trim_dot(&r.name.to_ascii()).eq_ignore_ascii_case(owner.as_str()))
        .filter_map(|r| pick(&r.data))
        .collect()
}

/// Addresses in the answer (the owner may be `name` or the end of its CNAME chain).
fn addresses_of(response: &DnsResponse) -> Vec<IpAddr> {
    response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_upstream_must_not_be_empty() {
        assert!(matches!(
            Upstream::Servers(vec![]).addrs(),
            Err(DiscoveryError::NoUpstream { .. })
        ));
        let a: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert_eq!(Upstream::Servers(vec![a]).addrs().unwrap(), vec![a]);
    }
}

//! Direct queries: one question to one server, UDP with EDNS0 first, TCP when
//! the answer comes back truncated, a timeout per query, and a cap on queries in
//! flight shared by every caller of one [`Querier`].
//!
//! Transport and message encoding are hickory's (`hickory-net` exchanges,
//! `hickory-proto` messages); this module only picks the options (recursion
//! desired off for authoritative servers), falls back to TCP, and turns the
//! response into the facts the watcher compares: TXT records as ordered
//! character-strings, their TTL, the SOA of a negative answer, the response code,
//! the authoritative flag and whether TCP was needed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_net::runtime::{RuntimeProvider, TokioRuntimeProvider};
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsExchange, DnsHandle, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use hickory_proto::rr::{Name, RData, RecordType};
use maildns_providers::{CharacterString, Fqdn, TxtRecord};
use serde::Serialize;
use tokio::sync::Semaphore;

/// How queries are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// Time allowed for one query (UDP attempts and the TCP retry each get this long).
    pub timeout: Duration,
    /// Most queries in flight at once through one [`Querier`].
    pub concurrency: usize,
    /// EDNS0 UDP payload size advertised (1232, the DNS flag day 2020 value).
    pub edns_payload: u16,
    /// UDP sends per query before giving up (lost datagrams are retried).
    pub udp_attempts: u8,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            timeout: Duration::from_secs(3),
            concurrency: 64,
            edns_payload: 1232,
            udp_attempts: 2,
        }
    }
}

/// A DNS response code, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rcode {
    /// NOERROR (0): the name exists (the answer may still be empty: NODATA).
    NoError,
    /// NXDOMAIN (3): the name does not exist.
    NxDomain,
    /// SERVFAIL (2).
    ServFail,
    /// REFUSED (5), typically: the server does not serve this zone.
    Refused,
    /// Any other code, by number.
    Other(u16),
}

impl From<ResponseCode> for Rcode {
    fn from(code: ResponseCode) -> Self {
        match code {
            ResponseCode::NoError => Rcode::NoError,
            ResponseCode::NXDomain => Rcode::NxDomain,
            ResponseCode::ServFail => Rcode::ServFail,
            ResponseCode::Refused => Rcode::Refused,
            other => Rcode::Other(u16::from(other)),
        }
    }
}

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rcode::NoError => f.write_str("NOERROR"),
            Rcode::NxDomain => f.write_str("NXDOMAIN"),
            Rcode::ServFail => f.write_str("SERVFAIL"),
            Rcode::Refused => f.write_str("REFUSED"),
            Rcode::Other(n) => write!(f, "RCODE {n}"),
        }
    }
}

/// The SOA record of a zone as one server serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoaInfo {
    /// The zone apex (owner of the SOA), without the trailing dot.
    pub zone: String,
    /// TTL of the SOA record as served, in seconds.
    pub ttl: u32,
    /// The SOA MINIMUM field.
    pub minimum: u32,
    /// The zone serial.
    pub serial: u32,
}

impl SoaInfo {
    /// How long a resolver may cache a negative answer: `min(SOA TTL, MINIMUM)`
    /// (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        self.ttl.min(self.minimum)
    }
}

/// What one server answered to `TXT? name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxtAnswer {
    /// The response code.
    pub rcode: Rcode,
    /// The AA flag: the server answered from a zone it serves.
    pub authoritative: bool,
    /// The TXT records in the answer section, each with its character-strings in order.
    pub records: Vec<TxtRecord>,
    /// Smallest TTL among those records in seconds, when there are any.
    pub ttl: Option<u32>,
    /// The SOA in the authority section (negative answers: NXDOMAIN or NODATA).
    pub soa: Option<SoaInfo>,
    /// Target of a CNAME at the name, when the server answered with one.
    pub cname: Option<String>,
    /// The UDP answer was truncated and the query was repeated over TCP.
    pub tcp: bool,
}

/// Why a query got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum QueryError {
    /// No answer within the timeout.
    #[error("{server} did not answer {qtype}? {name} within {timeout_ms} ms{}", if *.tcp { " (TCP)" } else { "" })]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The name asked.
        name: String,
        /// The record type asked.
        qtype: String,
        /// The timeout that expired, in milliseconds.
        timeout_ms: u64,
        /// Whether this was the TCP retry.
        tcp: bool,
    },
    /// The exchange failed (connection refused, malformed answer, ...).
    #[error("{qtype}? {name} to {server}{}: {message}", if *.tcp { " over TCP" } else { "" })]
    Failed {
        /// The server.
        server: SocketAddr,
        /// The name asked.
        name: String,
        /// The record type asked.
        qtype: String,
        /// Whether this was the TCP retry.
        tcp: bool,
        /// hickory's description of the failure.
        message: String,
    },
    /// The name cannot be put in a query.
    #[error("'{name}' is not a valid query name: {message}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
}

/// Sends queries; cheap to clone, all clones share one concurrency cap and one
/// UDP exchange per server.
#[derive(Clone)]
pub struct Querier {
    inner: Arc<Inner>,
}

struct Inner {
    options: QueryOptions,
    permits: Semaphore,
    provider: TokioRuntimeProvider,
    udp: Mutex<HashMap<SocketAddr, DnsExchange<TokioRuntimeProvider>>>,
}

impl std::fmt::Debug for Querier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Querier")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Querier {
    /// A querier with `options` (a concurrency of 0 is treated as 1).
    /// Must be used inside a tokio runtime.
    pub fn new(options: QueryOptions) -> Querier {
        let permits = Semaphore::new(options.concurrency.max(1));
        Querier {
            inner: Arc::new(Inner {
                options,
                permits,
                provider: TokioRuntimeProvider::default(),
                udp: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &QueryOptions {
        &self.inner.options
    }

    /// Asks `server` for the TXT records at `name`; `recursion` sets the RD flag
    /// (off for authoritative servers, on for resolvers).
    ///
    /// # Errors
    /// As [`Querier::query`].
    pub async fn txt(
        &self,
        server: SocketAddr,
        name: &Fqdn,
        recursion: bool,
    ) -> Result<TxtAnswer, QueryError> {
        let (response, tcp) = self.query(server, name, RecordType::TXT, recursion).await?;
        Ok(txt_answer(&response, tcp))
    }

    /// [`Querier::txt`] for a check made once, right after a write, to an
    /// authoritative server (recursion desired off): the query also asks for the
    /// server's NSID (RFC 5001 §2.1: an empty NSID option), and servers keep
    /// answers to such queries out of their packet cache (PowerDNS:
    /// `DNSPacket::couldBeCached`). The answer is of no use to anyone after the
    /// check, and every later write to the zone makes the server purge the
    /// zone's entries from that cache: with one entry left per zone checked, a
    /// run of 1,000 writes to PowerDNS spent about a tenth of the server's CPU
    /// time walking its cache in those purges. A server that does not know the
    /// option ignores it (RFC 6891 §6.1.2).
    ///
    /// # Errors
    /// As [`Querier::query`].
    pub async fn txt_once(&self, server: SocketAddr, name: &Fqdn) -> Result<TxtAnswer, QueryError> {
        let (response, tcp) = self
            .query_with(server, name, RecordType::TXT, false, true)
            .await?;
        Ok(txt_answer(&response, tcp))
    }

    /// Sends one question and returns hickory's response and whether TCP was used.
    ///
    /// # Errors
    /// [`QueryError`]: `name` is not a valid query name, the server did not answer
    /// within the timeout (milliseconds in the error), or the exchange failed.
    pub async fn query(
        &self,
        server: SocketAddr,
        name: &Fqdn,
        qtype: RecordType,
        recursion: bool,
    ) -> Result<(DnsResponse, bool), QueryError> {
        self.query_with(server, name, qtype, recursion, false).await
    }

    /// [`Querier::query`], with an empty NSID option when `nsid`.
    async fn query_with(
        &self,
        server: SocketAddr,
        name: &Fqdn,
        qtype: RecordType,
        recursion: bool,
        nsid: bool,
    ) -> Result<(DnsResponse, bool), QueryError> {
        let qname = Name::from_ascii(name.to_dotted()).map_err(|e| QueryError::BadName {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = recursion;
        options.use_edns = true;
        options.edns_payload_len = self.inner.options.edns_payload;
        let mut request = DnsRequest::from_query(Query::query(qname, qtype), options);
        if nsid
            && let (Some(edns), Ok(empty)) = (request.edns.as_mut(), NSIDPayload::new(Vec::new()))
        {
            edns.options_mut().insert(EdnsOption::NSID(empty));
        }

        let _permit = self.inner.permits.acquire().await;
        let timeout = self.inner.options.timeout;
        let fail = |tcp: bool, message: String| QueryError::Failed {
            server,
            name: name.to_string(),
            qtype: qtype.to_string(),
            tcp,
            message,
        };
        let timed_out = |tcp: bool| QueryError::Timeout {
            server,
            name: name.to_string(),
            qtype: qtype.to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            tcp,
        };

        let udp = self.udp_exchange(server);
        let response =
            match tokio::time::timeout(timeout, udp.send(request.clone()).first_answer()).await {
                Err(_) => return Err(timed_out(false)),
                Ok(Err(e)) => {
                    // A dead exchange is rebuilt on the next query.
                    self.forget_udp(server);
                    return Err(fail(false, e.to_string()));
                }
                Ok(Ok(r)) => r,
            };
        if !response.metadata.truncation {
            return Ok((response, false));
        }

        let tcp = async {
            let exchange =
                TcpClientStream::<<TokioRuntimeProvider as RuntimeProvider>::Tcp>::exchange(
                    server,
                    None,
                    timeout,
                    Some(1),
                    self.inner.provider.clone(),
                )
                .await
                .map_err(|e| fail(true, e.to_string()))?;
            exchange
                .send(request)
                .first_answer()
                .await
                .map_err(|e| fail(true, e.to_string()))
        };
        match tokio::time::timeout(timeout, tcp).await {
            Err(_) => Err(timed_out(true)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(r)) => Ok((r, true)),
        }
    }

    fn udp_exchange(&self, server: SocketAddr) -> DnsExchange<TokioRuntimeProvider> {
        let mut map = self
            .inner
            .udp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(server)
            .or_insert_with(|| {
                UdpClientStream::builder(server, self.inner.provider.clone())
                    .with_timeout(Some(self.inner.options.timeout))
                    .with_max_retries(self.inner.options.udp_attempts.saturating_sub(1))
                    .with_os_port_selection(true)
                    .exchange()
            })
            .clone()
    }

    fn forget_udp(&self, server: SocketAddr) {
        let mut map = self
            .inner
            .udp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&server);
    }
}

/// Reads the facts the watcher needs out of a response to `TXT? name`.
pub fn txt_answer(response: &DnsResponse, tcp: bool) -> TxtAnswer {
    let mut records = Vec::new();
    let mut ttl: Option<u32> = None;
    let mut cname = None;
    for record in &response.answers {
        match &record.data {
            RData::TXT(txt) => {
                let strings: Vec<CharacterString> = txt
                    .txt_data
                    .iter()
                    .filter_map(|s| CharacterString::new(s.to_vec()).ok())
                    .collect();
                // A string over 255 bytes cannot come off the wire; an empty
                // TXT RDATA reads as one empty string.
                let record_value =
                    TxtRecord::from_strings(strings).unwrap_or_else(|| TxtRecord::from_value(b""));
                records.push(record_value);
                ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
            }
            RData::CNAME(target) if cname.is_none() => {
                cname = Some(trim_dot(&target.0.to_ascii()));
            }
            _ => {}
        }
    }
    TxtAnswer {
        rcode: response.metadata.response_code.into(),
        authoritative: response.metadata.authoritative,
        records,
        ttl,
        soa: soa_in(&response.authorities),
        cname,
        tcp,
    }
}

/// The first SOA among `records`, as [`SoaInfo`].
pub fn soa_in(records: &[hickory_proto::rr::Record]) -> Option<SoaInfo> {
    records.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(SoaInfo {
            zone: trim_dot(&r.name.to_ascii()).to_ascii_lowercase(),
            ttl: r.ttl,
            minimum: soa.minimum,
            serial: soa.serial,
        }),
        _ => None,
    })
}

/// `example.com.` -> `example.com`.
pub(crate) fn trim_dot(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_ttl_is_the_smaller_of_ttl_and_minimum() {
        let soa = |ttl, minimum| SoaInfo {
            zone: "example.test".into(),
            ttl,
            minimum,
            serial: 1,
        };
        assert_eq!(soa(3600, 300).negative_ttl(), 300);
        assert_eq!(soa(60, 300).negative_ttl(), 60);
    }

    #[test]
    fn rcodes_map_and_display() {
        assert_eq!(Rcode::from(ResponseCode::NXDomain), Rcode::NxDomain);
        assert_eq!(Rcode::from(ResponseCode::NotAuth), Rcode::Other(9));
        assert_eq!(Rcode::Other(9).to_string(), "RCODE 9");
    }
}

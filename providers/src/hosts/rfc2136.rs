//! RFC 2136 dynamic update signed with TSIG (RFC 8945): BIND, Knot and any other
//! primary server that accepts updates.
//!
//! Reads are plain non-recursive queries to the configured server; every write is
//! ONE update message (so the server applies it atomically): delete the TXT RRset
//! at the name, then add every record of the new set, each record keeping its
//! character-strings exactly as given. Everything goes over TCP, because the
//! answers and updates for 4096-bit DKIM keys do not fit a UDP datagram.
//!
//! Change sets: [`Provider::read_sets`] asks one TXT query per owner name, all
//! pipelined over ONE TCP connection (a zone transfer would read everything in
//! one exchange, but needs `allow-transfer` for the key, which an update key
//! seldom has). [`Provider::apply`] is ONE update message for the whole change
//! set, which the primary applies atomically (RFC 2136 §3.4: all or nothing),
//! and it is compare-and-swap: its prerequisite section requires each RRset to
//! be exactly as read, "RRset exists (value dependent)" (§2.4.2: every record,
//! TTL ignored) for a set that existed and "RRset does not exist" (§2.4.3) for
//! an absent one. A failed prerequisite (NXRRSET, YXRRSET) is
//! [`ErrorKind::Conflict`], unless a read right after shows every set already as
//! wanted (the same change applied before, e.g. an answer lost on the way
//! back), which is success. A TTL changed by another tool is not seen by the
//! prerequisites (§2.4.2 ignores TTLs).
//!
//! hickory builds, signs and parses the messages. The update is signed here
//! rather than by hickory's stream signer so that a refusal can be reported
//! precisely: when the server rejects the signature it answers NOTAUTH with an
//! *unsigned* TSIG record carrying BADSIG, BADKEY or BADTIME, which hickory's
//! stream signer would only report as a failed verification ("truncated HMACs").

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::StreamExt;
use hickory_net::proto::op::update_message::UpdateMessage;
use hickory_net::proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_net::proto::rr::rdata::TXT;
use hickory_net::proto::rr::rdata::tsig::{TsigAlgorithm as HickoryAlgorithm, TsigError};
use hickory_net::proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigVerifier, TSigner};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::{DnsExchange, DnsHandle};
use hickory_net::{DnsError, NetError};

use crate::registry::{Credential, CredentialKind, Host, Required, Settings};
use crate::txt::CharacterString;
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    Secret, TxtChange, TxtRecord, TxtSet, Zone, ZoneSets, zone_candidates,
};

/// Host kind code.
pub const KIND: &str = "rfc2136";

/// The registry entry: the TSIG secret as credential; `server` and `key_name`
/// required, `algorithm` defaults to `hmac-sha256`.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/rfc2136.toml"),
    credential: CredentialKind::Secret,
    required: &[
        Required {
            key: "key_name",
            example: "\"maildns\"",
        },
        Required {
            key: "server",
            example: "\"192.0.2.53:53\"",
        },
    ],
    optional: &["algorithm"],
    check: crate::registry::no_check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    _policy: crate::http::RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let server = settings
        .server
        .ok_or_else(|| crate::registry::missing(KIND, "server"))?;
    let key_name = settings
        .key_name
        .clone()
        .ok_or_else(|| crate::registry::missing(KIND, "key_name"))?;
    let algorithm = settings.algorithm.unwrap_or(TsigAlgorithm::HmacSha256);
    let cfg = Config::new(server, key_name, algorithm, credential.secret(KIND)?);
    Ok(std::sync::Arc::new(Rfc2136::new(cfg)?))
}

/// Seconds of clock difference the server may allow between its clock and ours
/// (the TSIG "fudge"; BIND and Knot use 300).
const FUDGE: u16 = 300;

/// A TSIG MAC algorithm this adapter can sign with (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TsigAlgorithm {
    /// `hmac-sha256` (what `tsig-keygen` makes by default).
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// `hmac-sha384`.
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    /// `hmac-sha512`.
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl TsigAlgorithm {
    /// The name BIND and Knot use in their configuration, e.g. `hmac-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn to_hickory(self) -> HickoryAlgorithm {
        match self {
            TsigAlgorithm::HmacSha256 => HickoryAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => HickoryAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => HickoryAlgorithm::HmacSha512,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TsigAlgorithm {
    type Err = Error;

    /// Parses `hmac-sha256`, `hmac-sha384` or `hmac-sha512` (any case, trailing dot
    /// allowed, as in `HMAC-SHA256.`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let norm = s.trim().trim_end_matches('.').to_ascii_lowercase();
        match norm.as_str() {
            "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
            "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
            _ => Err(Error::new(
                KIND,
                Operation::Authenticate,
                None,
                ErrorKind::Config,
                format!(
                    "unsupported TSIG algorithm '{}': use hmac-sha256, hmac-sha384 or hmac-sha512",
                    s.trim()
                ),
            )),
        }
    }
}

/// How to reach the primary server and sign updates for it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The primary server's address (TCP is used for everything).
    pub server: SocketAddr,
    /// The TSIG key's name, as the server knows it (e.g. `maildns-key`).
    pub key_name: String,
    /// The TSIG algorithm of the key.
    pub algorithm: TsigAlgorithm,
    /// The TSIG secret, base64 as `tsig-keygen` prints it.
    pub secret: Secret,
    /// The zone to update. When unset, [`Provider::find_zone`] asks the server for
    /// the SOA of each parent of the name until one is its zone apex.
    pub zone: Option<Fqdn>,
    /// How long to wait for a connection and for each answer.
    pub timeout: Duration,
}

impl Config {
    /// A config with a 10-second timeout and no fixed zone.
    pub fn new(
        server: SocketAddr,
        key_name: impl Into<String>,
        algorithm: TsigAlgorithm,
        secret: Secret,
    ) -> Self {
        Config {
            server,
            key_name: key_name.into(),
            algorithm,
            secret,
            zone: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The RFC 2136 adapter.
#[derive(Clone)]
pub struct Rfc2136 {
    server: SocketAddr,
    key_name: Name,
    zone: Option<Fqdn>,
    timeout: Duration,
    signer: TSigner,
    profile: Profile,
}

impl fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136")
            .field("server", &self.server)
            .field("key_name", &self.key_name.to_ascii())
            .field("algorithm", self.signer.algorithm())
            .field("zone", &self.zone)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(
        KIND,
        Operation::Authenticate,
        None,
        ErrorKind::Config,
        message,
    )
}

impl Rfc2136 {
    /// Validates `config`: the key name is a domain name, the secret is non-empty
    /// base64, the timeout is not zero. Errors never contain the secret.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the key name is not a domain name, the secret is
    /// empty or not base64 (RFC 8945 §4: a MAC key), the timeout is zero, or the
    /// algorithm is not supported by this build.
    pub fn new(config: Config) -> Result<Self, Error> {
        let key_name = Name::from_ascii(config.key_name.trim()).map_err(|_| {
            config_error(format!(
                "TSIG key name '{}' is not a valid domain name",
                config.key_name
            ))
        })?;
        if key_name.is_root() {
            return Err(config_error("the TSIG key name is empty"));
        }
        let secret = config.secret.expose().trim();
        if secret.is_empty() {
            return Err(config_error("the TSIG secret is empty"));
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .map_err(|_| {
                config_error(format!(
                    "the TSIG secret for key '{}' is not valid base64 (copy the `secret` value that tsig-keygen printed)",
                    config.key_name
                ))
            })?;
        if key.is_empty() {
            return Err(config_error("the TSIG secret decodes to no bytes"));
        }
        if config.timeout.is_zero() {
            return Err(config_error("the timeout must be more than zero"));
        }
        let signer = TSigner::new(key, config.algorithm.to_hickory(), key_name.clone(), FUDGE)
            .map_err(|_| {
                config_error(format!(
                    "TSIG algorithm {} is not supported by this build",
                    config.algorithm
                ))
            })?;
        Ok(Rfc2136 {
            server: config.server,
            key_name,
            zone: config.zone,
            timeout: config.timeout,
            signer,
            profile: crate::registry::profile(KIND)?,
        })
    }

    /// The server this adapter talks to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    fn error(
        &self,
        operation: Operation,
        name: Option<&Fqdn>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Error {
        Error::new(KIND, operation, name, kind, message)
    }

    fn dns_name(&self, operation: Operation, name: &Fqdn) -> Result<Name, Error> {
        Name::from_ascii(name.to_dotted()).map_err(|e| {
            self.error(
                operation,
                Some(name),
                ErrorKind::Invalid,
                format!("cannot encode the name: {e}"),
            )
        })
    }

    /// Opens one TCP connection carrying up to `in_flight` requests at a time.
    /// `runtime` owns the connection's background task: keep it alive while the
    /// connection is used (dropping it closes the connection).
    async fn connect(
        &self,
        runtime: &TokioRuntimeProvider,
        in_flight: usize,
    ) -> Result<DnsExchange<TokioRuntimeProvider>, NetError> {
        TcpClientStream::exchange(
            self.server,
            None,
            self.timeout,
            Some(in_flight.max(1)),
            runtime.clone(),
        )
        .await
    }

    /// The TXT sets at `names`, one query each, pipelined over one connection.
    async fn query_sets(&self, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut queries = Vec::with_capacity(names.len());
        for name in names {
            queries.push((name, self.dns_name(op, name)?));
        }
        let Some(first) = names.first() else {
            return Ok(ZoneSets::new());
        };
        let runtime = TokioRuntimeProvider::new();
        let work = async {
            let exchange = self
                .connect(&runtime, names.len().min(16))
                .await
                .map_err(|e| self.net_error(op, first, e))?;
            let answers = futures_util::future::join_all(queries.iter().map(|(name, qname)| {
                let exchange = &exchange;
                async move {
                    let request = DnsRequest::new(
                        self.query(qname.clone(), RecordType::TXT),
                        DnsRequestOptions::default(),
                    );
                    let answer = exchange
                        .send(request)
                        .next()
                        .await
                        .unwrap_or(Err(NetError::Timeout))
                        .map_err(|e| self.net_error(op, name, e))?;
                    answer_to_set(&answer, name, qname, &self.server.to_string())
                }
            }))
            .await;
            let mut out = ZoneSets::new();
            for ((name, _), set) in queries.iter().zip(answers) {
                out.insert((*name).clone(), Observed::of(set?));
            }
            Ok(out)
        };
        // Each answer has `timeout`; bound the whole read too.
        let budget = self
            .timeout
            .saturating_mul(2 + u32::try_from(names.len() / 16).unwrap_or(u32::MAX));
        tokio::time::timeout(budget, work)
            .await
            .unwrap_or_else(|_| Err(self.net_error(op, first, NetError::Timeout)))
    }

    /// Sends one message over a fresh TCP connection and returns the first answer.
    async fn exchange(
        &self,
        operation: Operation,
        name: &Fqdn,
        message: Message,
    ) -> Result<DnsResponse, Error> {
        let timeout = self.timeout;
        // The provider owns the connection's background task: it lives as long as
        // this call, and dropping it closes the connection.
        let runtime = TokioRuntimeProvider::new();
        let send = async {
            let exchange = self.connect(&runtime, 1).await?;
            let mut answers = exchange.send(DnsRequest::new(message, DnsRequestOptions::default()));
            answers.next().await.unwrap_or(Err(NetError::Timeout))
        };
        // Connecting and answering each have `timeout`; bound the whole exchange too.
        let result = tokio::time::timeout(timeout.saturating_mul(2), send)
            .await
            .unwrap_or(Err(NetError::Timeout));
        result.map_err(|e| self.net_error(operation, name, e))
    }

    fn net_error(&self, operation: Operation, name: &Fqdn, e: NetError) -> Error {
        let (kind, message) = match &e {
            NetError::Timeout => (
                ErrorKind::Network,
                format!("no answer from {} within {:?}", self.server, self.timeout),
            ),
            NetError::Io(io) => (
                ErrorKind::Network,
                format!("cannot talk to {} over TCP: {io}", self.server),
            ),
            NetError::Proto(p) => (
                ErrorKind::Protocol,
                format!("unreadable answer from {}: {p}", self.server),
            ),
            NetError::Dns(DnsError::ResponseCode(code)) => (
                ErrorKind::Protocol,
                format!("{} answered {}", self.server, mnemonic(*code)),
            ),
            other => (ErrorKind::Network, format!("{}: {other}", self.server)),
        };
        self.error(operation, Some(name), kind, message)
    }

    /// A non-recursive query (no EDNS needed: the answer comes over TCP).
    fn query(&self, name: Name, rtype: RecordType) -> Message {
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        let mut query = Query::query(name, rtype);
        query.set_query_class(DNSClass::IN);
        message.add_query(query);
        message
    }

    /// Builds, signs, sends an update making the set at `name` exactly `set`
    /// (deleting it for `None`), without prerequisites, and maps the answer.
    async fn update(
        &self,
        operation: Operation,
        zone: &Zone,
        name: &Fqdn,
        set: Option<&TxtSet>,
    ) -> Result<(), Error> {
        let change = TxtChange {
            name: name.clone(),
            old: Observed::default(),
            new: set.cloned(),
        };
        self.send_update(operation, zone, name, std::slice::from_ref(&change), false)
            .await
    }

    /// Builds, signs and sends ONE update message for `changes` and maps the
    /// answer; with `prerequisites`, each RRset must still be as read
    /// ([`TxtChange::old`], RFC 2136 §2.4.2/§2.4.3). `name` names errors.
    async fn send_update(
        &self,
        operation: Operation,
        zone: &Zone,
        name: &Fqdn,
        changes: &[TxtChange],
        prerequisites: bool,
    ) -> Result<(), Error> {
        let mut message = self.update_message(operation, zone, changes, prerequisites)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let verifier = message.finalize(&self.signer, now).map_err(|e| {
            self.error(
                operation,
                Some(name),
                ErrorKind::Protocol,
                format!("cannot sign the update: {e}"),
            )
        })?;
        let response = self.exchange(operation, name, message).await?;
        self.check_update_answer(operation, zone, name, response, verifier)
    }

    /// The update message for `changes` (unsigned): the zone section, with
    /// `prerequisites` each RRset as read (§2.4.2 value dependent, or §2.4.3
    /// does not exist), then for each name the RRset deleted (§2.5.2) and the
    /// wanted records added (§2.5.1), strings as given.
    fn update_message(
        &self,
        operation: Operation,
        zone: &Zone,
        changes: &[TxtChange],
        prerequisites: bool,
    ) -> Result<Message, Error> {
        for c in changes {
            let op = c.operation();
            if !c.name.is_within(&zone.name) {
                return Err(self.error(
                    op,
                    Some(&c.name),
                    ErrorKind::Invalid,
                    format!("the name is outside zone {}", zone.name),
                ));
            }
            if let Some(set) = c.wanted() {
                for record in &set.records {
                    self.profile
                        .check(record)
                        .map_err(|l| self.error(op, Some(&c.name), ErrorKind::Limit(l), ""))?;
                }
            }
        }
        let zone_name = self.dns_name(operation, &zone.name)?;

        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone_query = Query::query(zone_name, RecordType::SOA);
        zone_query.set_query_class(DNSClass::IN);
        message.add_zone(zone_query);
        for c in changes {
            let owner = self.dns_name(c.operation(), &c.name)?;
            if prerequisites {
                match c.old.set.as_ref().filter(|s| !s.records.is_empty()) {
                    // §2.4.2 RRset exists (value dependent): the whole RRset,
                    // class of the zone, TTL 0.
                    Some(old) => {
                        for record in &old.records {
                            message.add_pre_requisite(txt_record(&owner, 0, record));
                        }
                    }
                    // §2.4.3 RRset does not exist: class NONE, TTL 0, no RDATA.
                    None => {
                        let mut absent = Record::update0(owner.clone(), 0, RecordType::TXT);
                        absent.dns_class = DNSClass::NONE;
                        message.add_pre_requisite(absent);
                    }
                }
            }
            // RFC 2136 §2.5.2: delete an RRset (class ANY, TTL 0, no RDATA).
            let mut delete = Record::update0(owner.clone(), 0, RecordType::TXT);
            delete.dns_class = DNSClass::ANY;
            message.add_update(delete);
            // §2.5.1: add to an RRset, one RR per record, strings kept as given.
            if let Some(set) = c.wanted() {
                for record in &set.records {
                    message.add_update(txt_record(&owner, set.ttl, record));
                }
            }
        }
        Ok(message)
    }

    fn check_update_answer(
        &self,
        operation: Operation,
        zone: &Zone,
        name: &Fqdn,
        response: DnsResponse,
        verifier: Option<TSigVerifier>,
    ) -> Result<(), Error> {
        let rcode = response.metadata.response_code;
        let code = mnemonic(rcode);
        let key = self.key_name.to_ascii();
        let key = key.trim_end_matches('.');
        let auth = |what: &str| {
            self.error(
                operation,
                Some(name),
                ErrorKind::Auth,
                format!("the server {what} of key {key} (rcode {code}): check key name, algorithm and secret"),
            )
        };
        // A TSIG error (RFC 8945 §5.2) comes in an unsigned TSIG record.
        if let Some(tsig) = response.signature.as_deref()
            && let Some(err) = &tsig.data.error
        {
            return Err(match err {
                TsigError::BadSig => auth("rejected the TSIG signature (BADSIG)"),
                TsigError::BadKey => {
                    auth("does not know the TSIG key name or algorithm (BADKEY)")
                }
                TsigError::BadTime => self.error(
                    operation,
                    Some(name),
                    ErrorKind::Auth,
                    format!(
                        "the server rejected the time of the TSIG signature of key {key} (BADTIME, rcode {code}): check this machine's clock"
                    ),
                ),
                TsigError::BadTrunc => auth("rejected the truncated TSIG signature (BADTRUNC)"),
                TsigError::Unknown(n) => {
                    auth(&format!("rejected the TSIG signature (TSIG error {n})"))
                }
            });
        }
        let verified = match (&response.signature, verifier) {
            (Some(_), Some(mut v)) => v.verify(response.as_buffer()).is_ok(),
            _ => false,
        };
        let zone_name = &zone.name;
        match rcode {
            ResponseCode::NoError if verified => Ok(()),
            ResponseCode::NoError => Err(auth(
                "answered without a valid TSIG signature, so the update cannot be trusted,",
            )),
            ResponseCode::NotAuth if !verified => Err(auth("rejected the TSIG signature")),
            // RFC 2136 §2.2: NOTAUTH = not authoritative for the zone named.
            ResponseCode::NotAuth => Err(self.error(
                operation,
                Some(name),
                ErrorKind::ZoneNotFound,
                format!("the server is not authoritative for zone {zone_name} (NOTAUTH)"),
            )),
            ResponseCode::NotZone => Err(self.error(
                operation,
                Some(name),
                ErrorKind::ZoneNotFound,
                format!("the name is not within zone {zone_name} on the server (NOTZONE)"),
            )),
            ResponseCode::Refused => Err(self.error(
                operation,
                Some(name),
                ErrorKind::Permission,
                format!(
                    "the server refused the update (REFUSED): check update-policy / allow-update for key {key} in zone {zone_name}"
                ),
            )),
            ResponseCode::FormErr => Err(self.error(
                operation,
                Some(name),
                ErrorKind::Invalid,
                "the server could not parse the update (FORMERR)",
            )),
            ResponseCode::NotImp => Err(self.error(
                operation,
                Some(name),
                ErrorKind::Invalid,
                "the server does not implement dynamic update (NOTIMP)",
            )),
            ResponseCode::ServFail => Err(self.error(
                operation,
                Some(name),
                ErrorKind::Server,
                "the server failed to apply the update (SERVFAIL)",
            )),
            ResponseCode::YXDomain | ResponseCode::YXRRSet | ResponseCode::NXRRSet => {
                Err(self.error(
                    operation,
                    Some(name),
                    ErrorKind::Conflict,
                    format!("an update prerequisite failed ({code})"),
                ))
            }
            other => Err(self.error(
                operation,
                Some(name),
                ErrorKind::Protocol,
                format!("unexpected answer {} to the update", mnemonic(other)),
            )),
        }
    }
}

/// One TXT resource record of class IN at `owner`, its character-strings as given.
fn txt_record(owner: &Name, ttl: u32, record: &TxtRecord) -> Record {
    let strings: Vec<&[u8]> = record
        .strings()
        .iter()
        .map(CharacterString::as_bytes)
        .collect();
    Record::from_rdata(owner.clone(), ttl, RData::TXT(TXT::from_bytes(strings)))
}

/// The RFC mnemonic of a response code, e.g. `NOTAUTH`.
fn mnemonic(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => format!("RCODE {}", u16::from(other)),
    }
}

#[async_trait::async_trait]
impl Provider for Rfc2136 {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The zone is named by its apex (the update's zone section): no query is
    /// needed. `None` for another apex than the configured zone, if one is set.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        match &self.zone {
            Some(z) if z != apex => None,
            _ => Some(Zone {
                name: apex.clone(),
                id: apex.to_dotted(),
            }),
        }
    }

    /// One update message with prerequisites: atomic and compare-and-swap.
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            deferred: false,
        }
    }

    /// One TXT query per name, pipelined over one TCP connection.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let mut uniq: Vec<Fqdn> = Vec::with_capacity(names.len());
        for name in names {
            if !name.is_within(&zone.name) {
                return Err(self.error(
                    Operation::Read,
                    Some(name),
                    ErrorKind::Invalid,
                    format!("the name is outside zone {}", zone.name),
                ));
            }
            if !uniq.contains(name) {
                uniq.push(name.clone());
            }
        }
        self.query_sets(&uniq).await
    }

    /// One update message: the prerequisites require every RRset as read, the
    /// update section replaces each; the server applies all of it or nothing.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        for (i, c) in changes.iter().enumerate() {
            if changes[..i].iter().any(|p| p.name == c.name) {
                return Err(ApplyError::nothing_written(self.error(
                    c.operation(),
                    Some(&c.name),
                    ErrorKind::Invalid,
                    "the change set changes this name twice",
                )));
            }
        }
        let (op, name) = match changes {
            [one] => (one.operation(), &one.name),
            _ => (first.operation(), &zone.name),
        };
        match self.send_update(op, zone, name, changes, true).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::Conflict => {
                // Already as wanted (the same change set applied before)?
                let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
                let now = self
                    .query_sets(&names)
                    .await
                    .map_err(ApplyError::nothing_written)?;
                let in_place = changes.iter().all(|c| {
                    crate::changeset::same_content(
                        c.wanted(),
                        now.get(&c.name).and_then(|o| o.set.as_ref()),
                    )
                });
                if in_place {
                    return Ok(());
                }
                // Name the first owner whose RRset is no longer as read.
                let changed = changes.iter().find(|c| {
                    !c.old
                        .unchanged_in(now.get(&c.name).and_then(|o| o.set.as_ref()))
                });
                let e = match changed {
                    Some(c) => Error {
                        message: format!("{}: the TXT RRset changed since it was read", e.message),
                        ..e
                    }
                    .with_name(&c.name),
                    None => e,
                };
                Err(ApplyError::nothing_written(e))
            }
            Err(e) => Err(ApplyError::nothing_written(e)),
        }
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        if let Some(zone) = &self.zone {
            if !name.is_within(zone) {
                return Err(self.error(
                    op,
                    Some(name),
                    ErrorKind::ZoneNotFound,
                    format!("the name is outside the configured zone {zone}"),
                ));
            }
            return Ok(Zone {
                name: zone.clone(),
                id: zone.to_dotted(),
            });
        }
        for candidate in zone_candidates(name) {
            let qname = self.dns_name(op, &candidate)?;
            let response = self
                .exchange(op, name, self.query(qname.clone(), RecordType::SOA))
                .await?;
            let apex = response.metadata.response_code == ResponseCode::NoError
                && response.metadata.authoritative
                && response
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::SOA && r.name.eq_ignore_root(&qname));
            if apex {
                return Ok(Zone {
                    id: candidate.to_dotted(),
                    name: candidate,
                });
            }
        }
        Err(self.error(
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            format!("{} serves no zone that holds this name", self.server),
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        if !name.is_within(&zone.name) {
            return Err(self.error(
                op,
                Some(name),
                ErrorKind::Invalid,
                format!("the name is outside zone {}", zone.name),
            ));
        }
        let qname = self.dns_name(op, name)?;
        let response = self
            .exchange(op, name, self.query(qname.clone(), RecordType::TXT))
            .await?;
        answer_to_set(&response, name, &qname, &self.server.to_string())
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.update(Operation::Replace, zone, name, Some(set)).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.update(Operation::Delete, zone, name, None).await
    }
}

/// Parses a DNS answer (wire format) to a TXT query for `name`: the TXT set it
/// holds, `None` for NXDOMAIN or no TXT record. Pure, for the fuzz target; the read
/// path uses the same checks on the message hickory decoded.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `rfc2136` and `read TXT` for a message that does not
/// decode, is not a response, is not authoritative, or holds a malformed TXT record
/// (RFC 1035 §4.1, §3.3.14); other response codes as in the read path.
pub fn parse_answer(wire: &[u8], name: &Fqdn) -> Result<Option<TxtSet>, Error> {
    let op = Operation::Read;
    let message = Message::from_vec(wire).map_err(|e| {
        Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Protocol,
            format!("unreadable answer: {e}"),
        )
    })?;
    let qname = Name::from_ascii(name.to_dotted())
        .map_err(|e| Error::new(KIND, op, Some(name), ErrorKind::Invalid, e.to_string()))?;
    answer_to_set(&message, name, &qname, "the server")
}

/// The TXT set at `qname` in `response`, after checking it is an authoritative
/// answer. `server` names the server in messages.
fn answer_to_set(
    response: &Message,
    name: &Fqdn,
    qname: &Name,
    server: &str,
) -> Result<Option<TxtSet>, Error> {
    let op = Operation::Read;
    if response.metadata.message_type != MessageType::Response {
        return Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Protocol,
            format!("{server} sent a query, not a response"),
        ));
    }
    let code = response.metadata.response_code;
    match code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        ResponseCode::Refused | ResponseCode::NotAuth => {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::ZoneNotFound,
                format!(
                    "{} refused the query: it does not serve this name (or allow-query excludes us)",
                    server
                ),
            ));
        }
        ResponseCode::ServFail => {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Server,
                format!("{} answered SERVFAIL", server),
            ));
        }
        other => {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Protocol,
                format!("{} answered {}", server, mnemonic(other)),
            ));
        }
    }
    // The configured server is the zone's primary: its answers are authoritative
    // (RFC 1035 §4.1.1 AA). Anything else is some other server's view.
    if !response.metadata.authoritative {
        return Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Protocol,
            format!("{server} answered without the AA flag: it is not authoritative for {name}"),
        ));
    }
    if code == ResponseCode::NXDomain {
        return Ok(None);
    }
    let mut ttl = None::<u32>;
    let mut records = Vec::new();
    for record in &response.answers {
        let RData::TXT(txt) = &record.data else {
            continue;
        };
        if !record.name.eq_ignore_root(qname) {
            continue;
        }
        let strings = txt
            .txt_data
            .iter()
            .map(|s| CharacterString::new(s.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::new(KIND, op, Some(name), ErrorKind::Protocol, e.to_string()))?;
        // RDATA with no string at all is malformed (RFC 1035 §3.3.14: one or
        // more character-strings): refuse it rather than drop a record.
        let Some(r) = TxtRecord::from_strings(strings) else {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Protocol,
                format!("{server} answered a TXT record with no character-string"),
            ));
        };
        records.push(r);
        ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
    }
    Ok(ttl.map(|ttl| TxtSet { ttl, records }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> Config {
        Config::new(
            "127.0.0.1:53".parse().unwrap(),
            "maildns-key",
            TsigAlgorithm::HmacSha256,
            Secret::new(secret),
        )
    }

    #[test]
    fn parses_algorithm_names() {
        assert_eq!(
            "hmac-sha256".parse::<TsigAlgorithm>().unwrap(),
            TsigAlgorithm::HmacSha256
        );
        assert_eq!(
            "HMAC-SHA384.".parse::<TsigAlgorithm>().unwrap(),
            TsigAlgorithm::HmacSha384
        );
        assert_eq!(
            "hmac-sha512".parse::<TsigAlgorithm>().unwrap().to_string(),
            "hmac-sha512"
        );
        let e = "hmac-md5".parse::<TsigAlgorithm>().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("hmac-md5"), "{e}");
    }

    #[test]
    fn refuses_bad_secret_without_echoing_it() {
        let e = Rfc2136::new(config("not*base64*S3CR3T")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(!e.to_string().contains("S3CR3T"), "{e}");
        assert_eq!(
            Rfc2136::new(config("")).unwrap_err().kind,
            ErrorKind::Config
        );
        let ok = Rfc2136::new(config("c2VjcmV0LWtleS1ieXRlcw==")).unwrap();
        assert!(!format!("{ok:?}").contains("c2VjcmV0"));
        assert_eq!(ok.profile().concurrency, 4);
    }

    #[test]
    fn a_change_set_is_one_message_with_prerequisites_on_the_old_rrsets() {
        let p = Rfc2136::new(config("c2VjcmV0LWtleS1ieXRlcw==")).unwrap();
        let zone = p.zone_for(&Fqdn::parse("example.com").unwrap()).unwrap();
        let set = |ttl, values: &[&str]| TxtSet {
            ttl,
            records: values.iter().map(TxtRecord::from_value).collect(),
        };
        let changes = [
            TxtChange {
                name: Fqdn::parse("example.com").unwrap(),
                old: Observed::of(Some(set(300, &["v=spf1 -all", "foreign"]))),
                new: Some(set(600, &["v=spf1 mx -all"])),
            },
            TxtChange {
                name: Fqdn::parse("_dmarc.example.com").unwrap(),
                old: Observed::of(None),
                new: Some(set(300, &["v=DMARC1; p=none"])),
            },
            TxtChange {
                name: Fqdn::parse("old._domainkey.example.com").unwrap(),
                old: Observed::of(Some(set(300, &["v=DKIM1; p="]))),
                new: None,
            },
        ];
        let m = p
            .update_message(Operation::Replace, &zone, &changes, true)
            .unwrap();
        assert_eq!(m.metadata.op_code, OpCode::Update);
        let shape = |r: &Record| {
            (
                r.name.to_ascii(),
                r.dns_class,
                r.record_type(),
                r.ttl,
                match &r.data {
                    RData::TXT(t) => t.txt_data.iter().map(|s| s.to_vec()).collect(),
                    _ => Vec::new(),
                },
            )
        };
        let pre: Vec<_> = m.prerequisites().iter().map(shape).collect();
        let txt = |v: &str| vec![v.as_bytes().to_vec()];
        assert_eq!(
            pre,
            [
                // §2.4.2: the whole RRset as read, class IN, TTL 0.
                (
                    "example.com.".into(),
                    DNSClass::IN,
                    RecordType::TXT,
                    0,
                    txt("v=spf1 -all")
                ),
                (
                    "example.com.".into(),
                    DNSClass::IN,
                    RecordType::TXT,
                    0,
                    txt("foreign")
                ),
                // §2.4.3: no RRset, class NONE, no RDATA.
                (
                    "_dmarc.example.com.".into(),
                    DNSClass::NONE,
                    RecordType::TXT,
                    0,
                    vec![]
                ),
                (
                    "old._domainkey.example.com.".into(),
                    DNSClass::IN,
                    RecordType::TXT,
                    0,
                    txt("v=DKIM1; p=")
                ),
            ]
        );
        let upd: Vec<_> = m.updates().iter().map(shape).collect();
        assert_eq!(
            upd,
            [
                (
                    "example.com.".into(),
                    DNSClass::ANY,
                    RecordType::TXT,
                    0,
                    vec![]
                ),
                (
                    "example.com.".into(),
                    DNSClass::IN,
                    RecordType::TXT,
                    600,
                    txt("v=spf1 mx -all")
                ),
                (
                    "_dmarc.example.com.".into(),
                    DNSClass::ANY,
                    RecordType::TXT,
                    0,
                    vec![]
                ),
                (
                    "_dmarc.example.com.".into(),
                    DNSClass::IN,
                    RecordType::TXT,
                    300,
                    txt("v=DMARC1; p=none")
                ),
                (
                    "old._domainkey.example.com.".into(),
                    DNSClass::ANY,
                    RecordType::TXT,
                    0,
                    vec![]
                ),
            ]
        );
        // Without prerequisites (the per-name writes): none.
        let m = p
            .update_message(Operation::Replace, &zone, &changes[..1], false)
            .unwrap();
        assert!(m.prerequisites().is_empty());
        // A name outside the zone is refused before anything is built.
        let outside = TxtChange {
            name: Fqdn::parse("example.net").unwrap(),
            ..changes[0].clone()
        };
        let e = p
            .update_message(Operation::Replace, &zone, &[outside], true)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
    }

    #[test]
    fn refuses_bad_key_name() {
        let mut c = config("c2VjcmV0");
        c.key_name = "bad..name".into();
        assert_eq!(Rfc2136::new(c).unwrap_err().kind, ErrorKind::Config);
    }

    /// A response to `example.com TXT` with `flags` and answer RDATA `rdata`.
    fn answer(flags: u16, rdata: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
        m.extend_from_slice(b"\x07example\x03com\x00\x00\x10\x00\x01");
        m.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 1, 44]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
        m
    }

    #[test]
    fn parse_answer_reads_an_authoritative_answer() {
        let name = Fqdn::parse("example.com").unwrap();
        let set = parse_answer(&answer(0x8400, b"\x02hi\x05there"), &name)
            .unwrap()
            .unwrap();
        assert_eq!(set.ttl, 300);
        assert_eq!(set.records.len(), 1);
        assert_eq!(set.records[0].strings().len(), 2);
        assert_eq!(set.records[0].value(), b"hithere");
    }

    #[test]
    fn parse_answer_refuses_malformed_answers() {
        let name = Fqdn::parse("example.com").unwrap();
        for (wire, what) in [
            // AA clear: not the zone's own answer.
            (answer(0x8000, b"\x02hi"), "without the AA flag"),
            // QR clear: a query, not a response.
            (answer(0x0400, b"\x02hi"), "not a response"),
            // TXT RDATA without any character-string (hickory refuses it already).
            (answer(0x8400, b""), "unreadable answer"),
            // A length byte past the end of the RDATA.
            (answer(0x8400, b"\x09hi"), "unreadable answer"),
            (b"\x00\x01garbage".to_vec(), "unreadable answer"),
        ] {
            let e = parse_answer(&wire, &name).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{what}: {e}");
            assert!(
                e.to_string()
                    .starts_with("rfc2136: read TXT example.com: unexpected answer"),
                "{e}"
            );
            assert!(e.message.contains(what), "{what}: {e}");
        }
    }
}

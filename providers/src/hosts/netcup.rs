//! Netcup (CCP DNS API, JSON): record-level, one `id` per value, changes sent as a
//! list per zone.
//!
//! - One endpoint, `POST https://ccp.netcup.net/run/webservice/servers/endpoint.php?JSON`,
//!   body `{"action":"…","param":{…}}`. A session: `login` (customer number, API key,
//!   API password) gives an `apisessionid` that every later call carries beside the
//!   customer number and API key; `logout` ends it. maildns logs in for each
//!   operation and logs out after it (as lego does); a session the host calls
//!   invalid mid-run (status code 4001) gets one fresh login and the call again.
//! - The credential is one secret, `APIKEY:APIPASSWORD`; the customer number is
//!   the account setting `customer_number`.
//! - Zones are found with `infoDnsZone` walking up the labels (netcup names zones
//!   by their domain); records with `infoDnsRecords` (the zone's every record in one
//!   answer); writes with `updateDnsRecords`: entries without `id` are created,
//!   entries with `id` and `"deleterecord":true` deleted, records not listed left
//!   alone. Names are relative, `@` for the apex; `destination` is one plain string.
//! - Netcup keeps ONE TTL per zone (`updateDnsZone`, which maildns never calls: it
//!   would change every record's TTL): a set asking for another TTL is refused
//!   before anything is sent, naming the zone's TTL.
//! - Every answer is HTTP 200; failures are `"status":"error"` with a
//!   `statuscode`, `shortmessage` and `longmessage`. "More than 180 requests per
//!   minute" is throttling: retried like a 429, then [`ErrorKind::RateLimited`].
//! - Netcup refuses backslashes in values (status code 4013): the descriptor's
//!   forbidden bytes refuse them before sending.
//! - Domains moved to netcup's 2026 "CloudDNS" are not reachable through this API
//!   (5028 "zone … could not be found"): reported as zone not found, saying so.
//!
//! Host documentation: <https://ccp.netcup.net/run/webservice/servers/endpoint.php>
//! and <https://helpcenter.netcup.com/en/wiki/general/our-api/>.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::check_all;
use crate::changeset::{self, ApplyError, Observed, TxtChange, ZoneSets};
use crate::http::{HttpClient, Idempotency, RetryPolicy};
use crate::registry::{Credential, CredentialKind, Host, Required, SettingProblem, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
    domain_candidates,
};

const KIND: &str = "netcup";

/// The registry entry: a secret credential `APIKEY:APIPASSWORD` and the
/// `customer_number` setting; `base_url` overrides the endpoint.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/netcup.toml"),
    credential: CredentialKind::Secret,
    required: &[Required {
        key: "customer_number",
        example: "\"123456\"",
    }],
    optional: &["base_url"],
    check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let customer = settings
        .customer_number
        .clone()
        .ok_or_else(|| crate::registry::missing(KIND, "customer_number"))?;
    let mut cfg = Config::from_secret(customer, &credential.secret(KIND)?)?;
    if let Some(url) = &settings.base_url {
        cfg.endpoint = url.clone();
    }
    Ok(std::sync::Arc::new(Netcup::new(cfg, policy)?))
}

/// Whether `n` is a customer number: digits.
fn customer_number(n: &str) -> Result<(), &'static str> {
    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("customer_number must be the customer number's digits")
    }
}

/// The registry's [`crate::registry::Check`]: the customer number.
fn check(settings: &Settings) -> Vec<SettingProblem> {
    match settings.customer_number.as_deref().map(customer_number) {
        Some(Err(m)) => vec![SettingProblem::new("customer_number", m)],
        _ => Vec::new(),
    }
}

/// The real endpoint (JSON flavour of the CCP web service).
pub const DEFAULT_ENDPOINT: &str =
    "https://ccp.netcup.net/run/webservice/servers/endpoint.php?JSON";

/// Account settings for netcup.
#[derive(Debug, Clone)]
pub struct Config {
    /// The customer number (digits; not a secret).
    pub customer_number: String,
    /// The API key made in the customer control panel.
    pub api_key: Secret,
    /// The account's API password.
    pub api_password: Secret,
    /// The endpoint URL; [`DEFAULT_ENDPOINT`] unless testing.
    pub endpoint: String,
}

impl Config {
    /// A config from the customer number and the one secret maildns stores,
    /// `APIKEY:APIPASSWORD`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the secret is not two non-empty parts joined by
    /// `:` (the message never quotes it).
    pub fn from_secret(customer_number: String, secret: &Secret) -> Result<Self, Error> {
        let (api_key, api_password) = super::split_secret(KIND, secret, ':', "APIKEY:APIPASSWORD")?;
        Ok(Config {
            customer_number,
            api_key,
            api_password,
            endpoint: DEFAULT_ENDPOINT.to_string(),
        })
    }
}

/// The netcup adapter.
#[derive(Debug)]
pub struct Netcup {
    http: HttpClient,
    endpoint: Url,
    customer_number: String,
    api_key: Secret,
    api_password: Secret,
    profile: Profile,
}

/// Netcup's answer envelope.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    /// `success`, `error` (or `pending`).
    pub status: String,
    /// 2000 on success; 4xxx, 5xxx on errors.
    pub statuscode: u32,
    /// Short message.
    #[serde(default)]
    pub shortmessage: String,
    /// Long message.
    #[serde(default)]
    pub longmessage: String,
    /// The call's data (an object), or `""` when there is none.
    #[serde(default)]
    pub responsedata: Value,
}

impl Envelope {
    fn message(&self) -> String {
        let long = self.longmessage.trim();
        let short = self.shortmessage.trim();
        let text = match (short.is_empty(), long.is_empty()) {
            (_, true) => short.to_string(),
            (true, false) => long.to_string(),
            (false, false) => format!("{short} {long}"),
        };
        // One line: the host's text may carry line breaks.
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("{text} (netcup status code {})", self.statuscode)
    }

    fn is_throttle(&self) -> bool {
        self.status == "error"
            && (self
                .longmessage
                .contains("More than 180 requests per minute")
                || self
                    .shortmessage
                    .contains("More than 180 requests per minute"))
    }
}

/// Parses netcup's envelope, the same for every action.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `netcup`, `op` and `name` when the body is not
/// `{"status","statuscode",…,"responsedata"}` with a known status
/// (<https://ccp.netcup.net/run/webservice/servers/endpoint.php>, Responsemessage).
pub fn parse_envelope(body: &[u8], name: &Fqdn, op: Operation) -> Result<Envelope, Error> {
    let e: Envelope =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    if !matches!(e.status.as_str(), "success" | "error" | "pending") {
        return Err(super::bad_body(
            KIND,
            op,
            name,
            format!("status {:?} in the envelope", e.status),
        ));
    }
    Ok(e)
}

/// The throttling netcup reports inside an HTTP 200 ("More than 180 requests per
/// minute"), for the shared client's retry ([`crate::http::AnswerCheck`]).
fn throttled(body: &[u8]) -> Option<(ErrorKind, String)> {
    let e: Envelope = serde_json::from_slice(body).ok()?;
    e.is_throttle().then(|| {
        (
            ErrorKind::RateLimited,
            format!("{} in an HTTP 200 answer", e.message()),
        )
    })
}

/// One record as `infoDnsRecords` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// Netcup's record id.
    pub id: String,
    /// Host name relative to the zone, `@` for the apex.
    pub hostname: String,
    /// Record type.
    pub kind: String,
    /// Priority, as netcup sends it (a string).
    pub priority: String,
    /// The value.
    pub destination: String,
}

#[derive(Deserialize)]
struct RawRecord {
    id: String,
    hostname: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    priority: String,
    destination: String,
    #[serde(default)]
    deleterecord: bool,
}

/// Parses the `responsedata` of `infoDnsRecords` (or of `updateDnsRecords`,
/// which lists the zone after the change): every record, all fields strings.
///
/// # Errors
/// [`ErrorKind::Protocol`] when it is not `{"dnsrecords":[{id,hostname,type,
/// priority,destination,deleterecord,state}]}`.
pub fn parse_records(data: &Value, name: &Fqdn, op: Operation) -> Result<Vec<ListedRecord>, Error> {
    #[derive(Deserialize)]
    struct Data {
        dnsrecords: Vec<RawRecord>,
    }
    let d: Data =
        serde_json::from_value(data.clone()).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::with_capacity(d.dnsrecords.len());
    for r in d.dnsrecords {
        if r.id.is_empty() || r.hostname.is_empty() || r.deleterecord {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!(
                    "record {:?} at {:?} is not a stored record",
                    r.id, r.hostname
                ),
            ));
        }
        out.push(ListedRecord {
            id: r.id,
            hostname: r.hostname.to_ascii_lowercase(),
            kind: r.kind.to_ascii_uppercase(),
            priority: r.priority,
            destination: r.destination,
        });
    }
    Ok(out)
}

/// Parses the `responsedata` of `infoDnsZone`: the zone's TTL.
///
/// # Errors
/// [`ErrorKind::Protocol`] when `ttl` is missing or not a number.
pub fn parse_zone_ttl(data: &Value, name: &Fqdn) -> Result<u32, Error> {
    let ttl = match &data["ttl"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|t| u32::try_from(t).ok()),
        _ => None,
    };
    ttl.ok_or_else(|| {
        super::bad_body(
            KIND,
            Operation::FindZone,
            name,
            format!("zone ttl {} is not a number", data["ttl"]),
        )
    })
}

/// A session id, sent in each call and never shown.
struct Session(Secret);

impl Netcup {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the customer number is not digits, a secret part
    /// is empty, or the endpoint is not https (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let cfg = |m: &str| {
            Error::new(
                KIND,
                Operation::Authenticate,
                None,
                ErrorKind::Config,
                m.to_string(),
            )
        };
        if let Err(m) = customer_number(&config.customer_number) {
            return Err(cfg(m));
        }
        if config.api_key.is_empty() || config.api_password.is_empty() {
            return Err(cfg("the API key or the API password is empty"));
        }
        let endpoint = Url::parse(&config.endpoint)
            .map_err(|e| cfg(&format!("bad endpoint URL '{}': {e}", config.endpoint)))?;
        Ok(Netcup {
            http: HttpClient::new(KIND, &config.endpoint, policy, crate::http::default_mapper)?
                .with_answer_check(throttled),
            endpoint,
            customer_number: config.customer_number,
            api_key: config.api_key,
            api_password: config.api_password,
            profile: crate::registry::profile(KIND)?,
        })
    }

    async fn send(
        &self,
        op: Operation,
        name: &Fqdn,
        idempotency: Idempotency,
        body: &Value,
    ) -> Result<Envelope, Error> {
        let resp = self
            .http
            .send(op, Some(name), idempotency, |c| {
                c.post(self.endpoint.clone()).json(body)
            })
            .await?;
        parse_envelope(&resp.body, name, op)
    }

    async fn login(&self, op: Operation, name: &Fqdn) -> Result<Session, Error> {
        let body = json!({"action": "login", "param": {
            "customernumber": self.customer_number,
            "apikey": self.api_key.expose(),
            "apipassword": self.api_password.expose(),
        }});
        let env = self.send(op, name, Idempotency::Idempotent, &body).await?;
        if env.status != "success" {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Auth,
                format!(
                    "login refused for customer number {}: {}",
                    self.customer_number,
                    env.message()
                ),
            )
            .with_status(200));
        }
        match env.responsedata["apisessionid"].as_str() {
            Some(id) if !id.is_empty() => Ok(Session(Secret::new(id))),
            _ => Err(super::bad_body(
                KIND,
                op,
                name,
                "a login answer without apisessionid",
            )),
        }
    }

    async fn logout(&self, session: Session, name: &Fqdn) {
        let body = json!({"action": "logout", "param": {
            "customernumber": self.customer_number,
            "apikey": self.api_key.expose(),
            "apisessionid": session.0.expose(),
        }});
        // The session ends by itself later; a failed logout changes nothing written.
        if let Err(e) = self
            .send(
                Operation::Authenticate,
                name,
                Idempotency::Idempotent,
                &body,
            )
            .await
        {
            tracing::debug!(provider = KIND, "logout failed: {e}");
        }
    }

    /// Calls `action` in `session`; a session netcup calls invalid (4001) gets one
    /// fresh login and the call again. Returns `responsedata` on success.
    async fn call(
        &self,
        session: &mut Session,
        op: Operation,
        name: &Fqdn,
        idempotency: Idempotency,
        action: &str,
        params: Value,
    ) -> Result<Value, Error> {
        let mut relogged = false;
        loop {
            let mut param = json!({
                "customernumber": self.customer_number,
                "apikey": self.api_key.expose(),
                "apisessionid": session.0.expose(),
            });
            if let (Value::Object(p), Value::Object(extra)) = (&mut param, &params) {
                p.extend(extra.clone());
            }
            let body = json!({"action": action, "param": param});
            let env = self.send(op, name, idempotency, &body).await?;
            if env.status == "success" {
                return Ok(env.responsedata);
            }
            if env.statuscode == 4001 && !relogged {
                relogged = true;
                *session = self.login(op, name).await?;
                continue;
            }
            let kind = match env.statuscode {
                4001 => ErrorKind::Auth,
                5028 => ErrorKind::ZoneNotFound,
                _ if env.longmessage.contains("could not be found") => ErrorKind::ZoneNotFound,
                5000.. => ErrorKind::Server,
                _ => ErrorKind::Invalid,
            };
            let mut message = format!("{action}: {}", env.message());
            if kind == ErrorKind::ZoneNotFound {
                message.push_str(
                    "; a domain moved to netcup's CloudDNS is not reachable through the CCP API",
                );
            }
            return Err(Error::new(KIND, op, Some(name), kind, message).with_status(200));
        }
    }

    /// The zone's TTL (errors name `name`, the name the caller works on).
    async fn zone_ttl(
        &self,
        s: &mut Session,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<u32, Error> {
        let data = self
            .call(
                s,
                op,
                name,
                Idempotency::Idempotent,
                "infoDnsZone",
                json!({"domainname": zone.id}),
            )
            .await?;
        parse_zone_ttl(&data, name)
    }

    /// The zone's TTL and its TXT records.
    async fn zone_txt(
        &self,
        s: &mut Session,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<(u32, Vec<ListedRecord>), Error> {
        let ttl = self.zone_ttl(s, zone, name, op).await?;
        let data = self
            .call(
                s,
                op,
                name,
                Idempotency::Idempotent,
                "infoDnsRecords",
                json!({"domainname": zone.id}),
            )
            .await?;
        let recs = parse_records(&data, name, op)?
            .into_iter()
            .filter(|r| r.kind == "TXT")
            .collect();
        Ok((ttl, recs))
    }

    fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
        super::relative_name(KIND, zone, name, op, super::Apex::At)
    }

    async fn at_name(
        &self,
        s: &mut Session,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<(u32, Vec<ListedRecord>), Error> {
        let rel = Self::relative(zone, name, op)?;
        let (ttl, recs) = self.zone_txt(s, zone, name, op).await?;
        Ok((
            ttl,
            recs.into_iter().filter(|r| r.hostname == rel).collect(),
        ))
    }

    /// Makes the TXT records at `name` exactly `wanted` (none: delete them all) in
    /// one `updateDnsRecords`, given the zone's TTL and the records there now.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        s: &mut Session,
        zone: &Zone,
        name: &Fqdn,
        wanted: Option<&TxtSet>,
        zone_ttl: u32,
        current: Vec<ListedRecord>,
        op: Operation,
    ) -> Result<(), Error> {
        let entries = self.entries(zone, name, wanted, zone_ttl, current, op)?;
        self.update(s, zone, name, entries, op).await
    }

    /// The `updateDnsRecords` entries that make the TXT records at `name` exactly
    /// `wanted` (`None`: none), given the zone's TTL and the records there now.
    fn entries(
        &self,
        zone: &Zone,
        name: &Fqdn,
        wanted: Option<&TxtSet>,
        zone_ttl: u32,
        current: Vec<ListedRecord>,
        op: Operation,
    ) -> Result<Vec<Value>, Error> {
        let rel = Self::relative(zone, name, op)?;
        let desired: Vec<Vec<u8>> = match wanted {
            None => Vec::new(),
            Some(set) => {
                let shaped = check_all(KIND, &self.profile, name, set)?;
                if set.ttl != zone_ttl {
                    return Err(Error::new(
                        KIND,
                        op,
                        Some(name),
                        ErrorKind::Invalid,
                        format!(
                            "netcup keeps one TTL per zone ({zone_ttl} s in {}) and this set asks for {} s: set the domain's ttl to {zone_ttl}; nothing was sent",
                            zone.name, set.ttl
                        ),
                    ));
                }
                shaped
                    .iter()
                    .map(TxtRecord::value)
                    .fold(Vec::new(), |mut v, x| {
                        if !v.contains(&x) {
                            v.push(x);
                        }
                        v
                    })
            }
        };
        let diff = super::diff_records(&desired, current, |rec, d| {
            d.as_slice() == rec.destination.as_bytes()
        });
        let mut entries: Vec<Value> = diff
            .create
            .iter()
            .map(|d| {
                // printable_ascii_only was checked, so this is the value as sent.
                json!({"hostname": rel, "type": "TXT", "priority": "",
                    "destination": String::from_utf8_lossy(d), "deleterecord": false})
            })
            .collect();
        entries.extend(diff.delete.iter().map(|r| {
            json!({"id": r.id, "hostname": r.hostname, "type": r.kind, "priority": r.priority,
                "destination": r.destination, "deleterecord": true})
        }));
        Ok(entries)
    }

    /// Sends `entries` in one `updateDnsRecords` (nothing when there are none).
    async fn update(
        &self,
        s: &mut Session,
        zone: &Zone,
        name: &Fqdn,
        entries: Vec<Value>,
        op: Operation,
    ) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let data = self
            .call(
                s,
                op,
                name,
                Idempotency::NotIdempotent,
                "updateDnsRecords",
                json!({"domainname": zone.id, "dnsrecordset": {"dnsrecords": entries}}),
            )
            .await?;
        // The answer lists the zone after the change: check it is that shape.
        parse_records(&data, name, op).map(|_| ())
    }
}

impl Netcup {
    async fn find_zone_in(&self, s: &mut Session, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        let mut last = None;
        // A session cannot be lent to walk_zones' probes (a probe may renew
        // it), so the walk is written out; a TLD is never a customer's zone.
        for cand in domain_candidates(name) {
            let zone = Zone {
                id: cand.to_string(),
                name: cand.clone(),
            };
            match self.zone_ttl(s, &zone, name, op).await {
                Ok(_) => return Ok(zone),
                Err(e) if matches!(e.kind, ErrorKind::ZoneNotFound | ErrorKind::Invalid) => {
                    last = Some(e.message)
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            match last {
                Some(m) => format!("no netcup zone of this customer holds the name ({m})"),
                None => "no netcup zone of this customer holds the name".to_string(),
            },
        ))
    }

    /// [`Provider::apply`]'s work inside a session.
    async fn apply_in(
        &self,
        s: &mut Session,
        zone: &Zone,
        changes: &[TxtChange],
    ) -> Result<(), Error> {
        let (ttl, recs) = self.zone_txt(s, zone, &zone.name, Operation::Read).await?;
        let mut entries = Vec::new();
        for c in changes {
            let op = c.operation();
            let rel = Self::relative(zone, &c.name, op)?;
            let current: Vec<ListedRecord> =
                recs.iter().filter(|r| r.hostname == rel).cloned().collect();
            // Nothing to send when the change was applied before; a conflict
            // when the set is neither what was read nor what is wanted.
            if !c.still_to_write(KIND, set_of(ttl, &current).as_ref())? {
                continue;
            }
            entries.extend(self.entries(zone, &c.name, c.wanted(), ttl, current, op)?);
        }
        let Some(first) = changes.first() else {
            return Ok(());
        };
        // One change is named by its owner name; several by the zone.
        let name = if changes.len() == 1 {
            &first.name
        } else {
            &zone.name
        };
        self.update(s, zone, name, entries, first.operation())
            .await
            .map_err(|mut e| {
                if changes.len() > 1 {
                    e.message.push_str(
                        " (one updateDnsRecords for the whole change set: some of its records may have been written; the next read shows them)",
                    );
                }
                e
            })
    }

    /// Lists the records at `name`, checks them against `old` when given
    /// (a conflict otherwise), and writes `wanted` (`None`: delete them all).
    async fn replace_in(
        &self,
        s: &mut Session,
        zone: &Zone,
        name: &Fqdn,
        old: Option<&Observed>,
        wanted: Option<&TxtSet>,
        op: Operation,
    ) -> Result<(), Error> {
        let (ttl, current) = self.at_name(s, zone, name, op).await?;
        // Already as wanted (the same change applied before): nothing to write.
        if old.is_some() && changeset::same_content(wanted, set_of(ttl, &current).as_ref()) {
            return Ok(());
        }
        if let Some(old) = old
            && !old.unchanged_in(set_of(ttl, &current).as_ref())
        {
            return Err(changeset::conflict(
                KIND,
                op,
                name,
                "the TXT RRset changed since it was read",
            ));
        }
        self.write(s, zone, name, wanted, ttl, current, op).await
    }
}

fn set_of(ttl: u32, records: &[ListedRecord]) -> Option<TxtSet> {
    (!records.is_empty()).then(|| TxtSet {
        ttl,
        records: records
            .iter()
            .map(|r| TxtRecord::from_value(r.destination.as_bytes()))
            .collect(),
    })
}

#[async_trait::async_trait]
impl Provider for Netcup {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Netcup names a zone by its domain.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        let mut s = self.login(op, name).await?;
        let out = self.find_zone_in(&mut s, name).await;
        self.logout(s, name).await;
        out
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        let mut s = self.login(op, name).await?;
        let out = self.at_name(&mut s, zone, name, op).await;
        self.logout(s, name).await;
        let (ttl, recs) = out?;
        Ok(set_of(ttl, &recs))
    }

    /// One `infoDnsRecords` lists the zone's every record.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut s = self.login(op, &zone.name).await?;
        let out = self.zone_txt(&mut s, zone, &zone.name, op).await;
        self.logout(s, &zone.name).await;
        let (ttl, recs) = out?;
        let mut by_name: BTreeMap<String, Vec<ListedRecord>> = BTreeMap::new();
        for r in recs {
            by_name.entry(r.hostname.clone()).or_default().push(r);
        }
        let mut sets = ZoneSets::new();
        for n in names {
            let rel = Self::relative(zone, n, op)?;
            let set = by_name.get(&rel).and_then(|r| set_of(ttl, r));
            sets.insert(n.clone(), Observed::of(set));
        }
        Ok(sets)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        let wanted = (!check_all(KIND, &self.profile, name, set)?.is_empty()).then_some(set);
        let mut s = self.login(op, name).await?;
        let out = self.replace_in(&mut s, zone, name, None, wanted, op).await;
        self.logout(s, name).await;
        out
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let mut s = self.login(op, name).await?;
        let out = self.replace_in(&mut s, zone, name, None, None, op).await;
        self.logout(s, name).await;
        out
    }

    /// A whole change set in one session: one listing of the zone (each RRset
    /// compared with what was read: a difference is a conflict and nothing is
    /// sent) and one `updateDnsRecords` holding every name's entries. Whether
    /// netcup applies that call all or nothing is not documented, so the apply is
    /// not declared atomic; a failed call reports no name as written, and says
    /// that some records of it may have been.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        for c in changes {
            if let Some(set) = c.wanted() {
                check_all(KIND, &self.profile, &c.name, set)
                    .map_err(ApplyError::nothing_written)?;
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let op = Operation::Replace;
        let mut s = self
            .login(op, &zone.name)
            .await
            .map_err(ApplyError::nothing_written)?;
        let out = self.apply_in(&mut s, zone, changes).await;
        self.logout(s, &zone.name).await;
        out.map_err(ApplyError::nothing_written)
    }

    /// The write lists the zone's records anyway: the compare with what was read
    /// is made on that list, in the same session.
    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let op = change.operation();
        if let Some(set) = change.wanted() {
            check_all(KIND, &self.profile, &change.name, set)?;
        }
        let mut s = self.login(op, &change.name).await?;
        let out = self
            .replace_in(
                &mut s,
                zone,
                &change.name,
                Some(&change.old),
                change.wanted(),
                op,
            )
            .await;
        self.logout(s, &change.name).await;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Fqdn {
        Fqdn::parse(s).unwrap()
    }

    #[test]
    fn envelope_and_records_parse_the_documented_shape() {
        let body = br#"{"serverrequestid":"srv-1","clientrequestid":"","action":"infoDnsRecords","status":"success","statuscode":2000,"shortmessage":"DNS records found","longmessage":"","responsedata":{"dnsrecords":[{"id":"5852472","hostname":"@","type":"TXT","priority":"0","destination":"v=spf1 mx -all","deleterecord":false,"state":"yes"}]}}"#;
        let e = parse_envelope(body, &n("example.com"), Operation::Read).unwrap();
        assert_eq!((e.status.as_str(), e.statuscode), ("success", 2000));
        let recs = parse_records(&e.responsedata, &n("example.com"), Operation::Read).unwrap();
        assert_eq!(
            recs,
            [ListedRecord {
                id: "5852472".into(),
                hostname: "@".into(),
                kind: "TXT".into(),
                priority: "0".into(),
                destination: "v=spf1 mx -all".into()
            }]
        );
        for bad in [
            &br#"{"status":"maybe","statuscode":1}"#[..],
            br#"<html></html>"#,
            br#"{"statuscode":2000}"#,
        ] {
            let e = parse_envelope(bad, &n("example.com"), Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol);
        }
        for data in [
            json!(""),
            json!({"dnsrecords":[{"id":5,"hostname":"@","type":"TXT","destination":"x"}]}),
            json!({"dnsrecords":[{"id":"5","hostname":"","type":"TXT","destination":"x"}]}),
        ] {
            let e = parse_records(&data, &n("example.com"), Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{data}");
        }
        assert_eq!(
            parse_zone_ttl(
                &json!({"name":"example.com","ttl":"86400"}),
                &n("example.com")
            ),
            Ok(86400)
        );
    }

    #[test]
    fn throttling_inside_a_200_is_rate_limited() {
        let body = br#"{"serverrequestid":"x","clientrequestid":"","action":"infoDnsRecords","status":"error","statuscode":4013,"shortmessage":"Validation Error.","longmessage":"More than 180 requests per minute. Please wait and retry later.","responsedata":""}"#;
        let (kind, msg) = throttled(body).unwrap();
        assert_eq!(kind, ErrorKind::RateLimited);
        assert!(msg.contains("More than 180 requests per minute"), "{msg}");
        assert!(msg.contains("status code 4013"), "{msg}");
        let ok = br#"{"status":"error","statuscode":4013,"shortmessage":"Validation Error.","longmessage":"Value in field destination is not allowed.","responsedata":""}"#;
        assert_eq!(throttled(ok), None);
    }

    #[test]
    fn the_secret_is_two_parts_and_the_customer_number_digits() {
        let c = Config::from_secret("123456".into(), &Secret::new("key:pass")).unwrap();
        assert_eq!(
            (c.api_key.expose(), c.api_password.expose()),
            ("key", "pass")
        );
        let e = Config::from_secret("1".into(), &Secret::new("keyonly")).unwrap_err();
        assert!(e.message.contains("APIKEY:APIPASSWORD") && !e.message.contains("keyonly"));
        let c = Config::from_secret("12a".into(), &Secret::new("k:p")).unwrap();
        let e = Netcup::new(c, RetryPolicy::fast()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
    }
}

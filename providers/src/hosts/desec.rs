//! deSEC (`desec.io/api/v1`): RRsets, values in zone-file syntax with quotes.
//!
//! - Zone: `GET /domains/?owns_qname=<fqdn>` returns the one domain that holds the
//!   name, or `[]` (no label walk needed).
//! - Set: `GET /domains/{d}/rrsets/{subname}/TXT/` (`@` for the apex), 404 when absent.
//! - Writes: the full set. Create `POST /domains/{d}/rrsets/` (400 when it already
//!   exists), replace `PATCH …/rrsets/{subname}/TXT/` with `{"ttl","records"}`,
//!   delete `DELETE …/rrsets/{subname}/TXT/` (204 even when absent).
//! - deSEC canonicalizes values and splits strings over 255 bytes; the adapter
//!   sends pre-split quoted strings so what is read back equals what was sent.
//! - The domain's minimum TTL is usually 3600; lower TTLs are refused before sending.
//! - Set writes are limited per domain to 2/s, 15/min, 100/h, 300/day: 429 with
//!   `Retry-After`, which the HTTP client honours.
//! - Errors are Django REST Framework bodies: `{"detail":"Invalid token."}` or
//!   `{"field":["message", …]}`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_all;
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
};

const KIND: &str = "desec";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/desec.toml"),
    credential: CredentialKind::Secret,
    required: &[],
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let mut cfg = Config::new(credential.secret(KIND)?);
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    Ok(std::sync::Arc::new(Desec::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://desec.io/api/v1";

/// The usual minimum TTL of a deSEC domain.
pub const MIN_TTL: u32 = 3600;

/// Account settings for deSEC.
#[derive(Debug, Clone)]
pub struct Config {
    /// API token (sent as `Authorization: Token <token>`).
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
}

impl Config {
    /// A config for the real API.
    pub fn new(token: Secret) -> Self {
        Config {
            token,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }
}

/// The deSEC adapter.
#[derive(Debug)]
pub struct Desec {
    http: HttpClient,
    token: Secret,
    profile: Profile,
}

/// Flattens a DRF error body into one message.
fn drf_message(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(drf_message)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let m = drf_message(v);
                if k == "detail" || k == "non_field_errors" {
                    m
                } else {
                    format!("{k}: {m}")
                }
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Extracts deSEC's DRF error message.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    match serde_json::from_slice::<Value>(f.body) {
        Ok(v) => {
            let msg = drf_message(&v);
            (kind_for_status(f.status), msg.chars().take(500).collect())
        }
        Err(_) => crate::http::default_mapper(f),
    }
}

#[derive(Deserialize)]
struct Domain {
    name: String,
}

#[derive(Deserialize)]
struct Rrset {
    ttl: u32,
    records: Vec<String>,
}

/// The TXT set in an RRset answer (`{"ttl":…,"records":[…],…}`; `None` when it holds
/// no record). Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `desec` and `read TXT` when the body is not the
/// documented shape or a record is not quoted strings (deSEC: TXT values "must be
/// enclosed in double quotes", <https://desec.readthedocs.io/en/latest/dns/rrsets.html>).
pub fn parse_rrset(body: &[u8], name: &Fqdn) -> Result<Option<TxtSet>, Error> {
    let op = Operation::Read;
    let set: Rrset =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    txt_set(&set, name, op)
}

fn txt_set(set: &Rrset, name: &Fqdn, op: Operation) -> Result<Option<TxtSet>, Error> {
    if set.records.is_empty() {
        return Ok(None);
    }
    let mut records = Vec::with_capacity(set.records.len());
    for r in &set.records {
        records.push(super::parse_quoted(KIND, op, name, r)?);
    }
    Ok(Some(TxtSet {
        ttl: set.ttl,
        records,
    }))
}

impl Desec {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        if config.token.is_empty() {
            return Err(Error::new(
                KIND,
                Operation::Authenticate,
                None,
                ErrorKind::Config,
                "the API token is empty",
            ));
        }
        Ok(Desec {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            token: config.token,
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(c, m, path).header(
            reqwest::header::AUTHORIZATION,
            format!("Token {}", self.token.expose()),
        )
    }

    fn subname(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
        name.relative_to(&zone.name).ok_or_else(|| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Config,
                format!("the name is outside zone {}", zone.name),
            )
        })
    }

    async fn get(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<Rrset>, Error> {
        let path = format!(
            "domains/{}/rrsets/{}/TXT/",
            zone.id,
            Self::subname(zone, name, op)?
        );
        match self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, &path)
            })
            .await
        {
            Ok(r) => Ok(Some(r.json(KIND, op).map_err(|e| e.with_name(name))?)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl Provider for Desec {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        let q = [("owns_qname", name.to_string())];
        let resp = self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, "domains/").query(&q)
            })
            .await?;
        let domains: Vec<Domain> = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
        domains
            .into_iter()
            .filter_map(|d| Fqdn::parse(&d.name).ok())
            .filter(|z| name.is_within(z))
            .max_by_key(|z| z.as_str().len())
            .map(|z| Zone {
                id: z.to_string(),
                name: z,
            })
            .ok_or_else(|| {
                Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::ZoneNotFound,
                    "no domain in this account holds the name",
                )
            })
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        let Some(set) = self.get(zone, name, op).await? else {
            return Ok(None);
        };
        txt_set(&set, name, op)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        let desired = check_all(KIND, &self.profile, name, set)?;
        if desired.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        if set.ttl < self.profile.min_ttl {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Invalid,
                format!(
                    "TTL {} is below deSEC's minimum of {} (refused before sending)",
                    set.ttl, self.profile.min_ttl
                ),
            ));
        }
        let sub = Self::subname(zone, name, op)?;
        let records: Vec<String> = desired.iter().map(TxtRecord::to_presentation).collect();
        match self.get(zone, name, op).await? {
            Some(cur) if cur.ttl == set.ttl && cur.records == records => Ok(()),
            Some(_) => {
                let path = format!("domains/{}/rrsets/{sub}/TXT/", zone.id);
                let body = json!({ "ttl": set.ttl, "records": records });
                self.http
                    .send(op, Some(name), Idempotency::Idempotent, |c| {
                        self.req(c, Method::PATCH, &path).json(&body)
                    })
                    .await
                    .map(|_| ())
            }
            None => {
                let path = format!("domains/{}/rrsets/", zone.id);
                let subname = if sub == "@" { String::new() } else { sub };
                let body = json!({
                    "subname": subname,
                    "type": "TXT",
                    "ttl": set.ttl,
                    "records": records,
                });
                self.http
                    .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                        self.req(c, Method::POST, &path).json(&body)
                    })
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let path = format!(
            "domains/{}/rrsets/{}/TXT/",
            zone.id,
            Self::subname(zone, name, op)?
        );
        match self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::DELETE, &path)
            })
            .await
        {
            Err(e) if e.status == Some(404) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

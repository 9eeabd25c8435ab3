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
//! - Change sets: `read_sets` is one `GET …/rrsets/?type=TXT` (cursor-paged past
//!   500 RRsets); `apply` reads them again (deSEC has no precondition) and writes
//!   every name in ONE bulk `PATCH …/rrsets/`, which deSEC applies atomically and
//!   counts as one write. The zone of a configured apex needs no lookup
//!   (`zone_for`): deSEC names a domain by its name.
//! - The minimum TTL is the domain's own `minimum_ttl` (usually 3600, 900 or lower
//!   on some deployments), read from the domain object (cached for the run) when a
//!   TTL under 3600 is asked; a TTL under it, or over 86,400, is refused before sending.
//! - Set writes are limited per domain to 2/s, 15/min, 100/h, 300/day and reads to
//!   10/s, 50/min (all declared in the descriptor's `rates`): 429 with `Retry-After`,
//!   which the HTTP client honours up to [`MAX_RETRY_AFTER`] (5 minutes: the
//!   per-minute window with room to spare); a longer wait (the hourly or daily
//!   window is spent) is reported at once, naming the wait deSEC asks for.
//! - Errors are Django REST Framework bodies: `{"detail":"Invalid token."}` or
//!   `{"field":["message", …]}`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_all;
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    Secret, TxtChange, TxtRecord, TxtSet, Zone, ZoneSets,
};

const KIND: &str = "desec";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/desec.toml"),
    credential: CredentialKind::Secret,
    required: &[],
    optional: &["base_url"],
    check: crate::registry::no_check,
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

/// The usual minimum TTL of a deSEC domain (its `minimum_ttl` decides).
pub const MIN_TTL: u32 = 3600;

/// Longest `Retry-After` waited out by default (see [`Config::max_retry_after`]).
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// Account settings for deSEC.
#[derive(Debug, Clone)]
pub struct Config {
    /// API token (sent as `Authorization: Token <token>`).
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Longest `Retry-After` on a 429 that is waited out ([`MAX_RETRY_AFTER`]).
    pub max_retry_after: std::time::Duration,
}

impl Config {
    /// A config for the real API.
    pub fn new(token: Secret) -> Self {
        Config {
            token,
            base_url: DEFAULT_BASE_URL.to_string(),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

/// The deSEC adapter.
#[derive(Debug)]
pub struct Desec {
    http: HttpClient,
    token: Secret,
    profile: Profile,
    /// Each domain's `minimum_ttl`, as read.
    minimum_ttl: std::sync::Mutex<std::collections::HashMap<String, u32>>,
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
    #[serde(default)]
    minimum_ttl: Option<u32>,
}

#[derive(Deserialize)]
struct Rrset {
    ttl: u32,
    records: Vec<String>,
}

#[derive(Deserialize)]
struct ListedRrset {
    subname: String,
    #[serde(rename = "type")]
    kind: String,
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
        super::require_nonempty(KIND, config.token.is_empty(), "API token")?;
        Ok(Desec {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?
                .with_retry_after_cap(config.max_retry_after),
            token: config.token,
            profile: crate::registry::profile(KIND)?,
            minimum_ttl: Default::default(),
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

impl Desec {
    fn remember_minimum_ttl(&self, domain: &str, ttl: u32) {
        if let Ok(mut m) = self.minimum_ttl.lock() {
            m.insert(domain.to_string(), ttl);
        }
    }

    /// The domain's `minimum_ttl`: as read before in this run, or from
    /// `GET /domains/{name}/`.
    async fn minimum_ttl(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<u32, Error> {
        if let Some(t) = self
            .minimum_ttl
            .lock()
            .ok()
            .and_then(|m| m.get(&zone.id).copied())
        {
            return Ok(t);
        }
        let path = format!("domains/{}/", zone.id);
        let resp = self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, &path)
            })
            .await?;
        let d: Domain = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
        let t = d.minimum_ttl.unwrap_or(MIN_TTL);
        self.remember_minimum_ttl(&zone.id, t);
        Ok(t)
    }

    /// Refuses a TTL under the domain's `minimum_ttl` before sending (looked up
    /// only for a TTL under the usual 3600).
    async fn check_min_ttl(
        &self,
        zone: &Zone,
        name: &Fqdn,
        ttl: u32,
        op: Operation,
    ) -> Result<(), Error> {
        if ttl >= MIN_TTL {
            return Ok(());
        }
        let min = self.minimum_ttl(zone, name, op).await?;
        if ttl < min {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Limit(crate::LimitError::TtlTooLow { ttl, min }),
                format!(
                    "TTL {ttl} is below the minimum_ttl of {min} deSEC sets for domain {} (read from the domain; refused before sending)",
                    zone.id
                ),
            ));
        }
        Ok(())
    }

    /// Every TXT RRset of the domain: `GET …/rrsets/?type=TXT&cursor=`, following
    /// `Link: <…>; rel="next"` for at most `max_pages` pages. The flag says
    /// whether the listing was read to its end.
    async fn list_txt(
        &self,
        zone: &Zone,
        op: Operation,
        max_pages: usize,
    ) -> Result<(Vec<ListedRrset>, bool), Error> {
        let mut url = self.http.url(&format!("domains/{}/rrsets/", zone.id));
        url.query_pairs_mut()
            .append_pair("type", "TXT")
            .append_pair("cursor", "");
        let mut out = Vec::new();
        for _ in 0..max_pages.max(1) {
            let resp = self
                .http
                .send(op, Some(&zone.name), Idempotency::Idempotent, |c| {
                    c.request(Method::GET, url.clone()).header(
                        reqwest::header::AUTHORIZATION,
                        format!("Token {}", self.token.expose()),
                    )
                })
                .await?;
            let page: Vec<ListedRrset> =
                resp.json(KIND, op).map_err(|e| e.with_name(&zone.name))?;
            out.extend(page.into_iter().filter(|r| r.kind == "TXT"));
            match super::next_link(&resp.headers).and_then(|n| url::Url::parse(&n).ok()) {
                // Only links to the same API (a host does not send us elsewhere).
                Some(next) if next.origin() == url.origin() => url = next,
                _ => return Ok((out, true)),
            }
        }
        Ok((out, false))
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
        for d in &domains {
            if let Some(t) = d.minimum_ttl {
                self.remember_minimum_ttl(&d.name, t);
            }
        }
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
        self.check_min_ttl(zone, name, set.ttl, op).await?;
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
        self.http
            .delete(op, name, |c| self.req(c, Method::DELETE, &path))
            .await
    }

    /// deSEC names a domain by its name: no lookup needed.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    /// One bulk PATCH, applied by deSEC in one transaction; no precondition,
    /// so the apply reads the RRsets again just before it.
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: false,
            ..ApplyTraits::default()
        }
    }

    /// One name: its RRset. Several: one listing of the domain's TXT RRsets (at
    /// most one page a name, then the names not seen one by one).
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut out = ZoneSets::new();
        if let [one] = names {
            out.insert(one.clone(), Observed::of(self.read_txt(zone, one).await?));
            return Ok(out);
        }
        if names.is_empty() {
            return Ok(out);
        }
        let (listed, complete) = self.list_txt(zone, op, names.len()).await?;
        for n in names {
            let sub = Self::subname(zone, n, op)?;
            let sub = if sub == "@" { String::new() } else { sub };
            let found = listed.iter().find(|r| r.subname == sub);
            let set = match found {
                Some(r) => txt_set(
                    &Rrset {
                        ttl: r.ttl,
                        records: r.records.clone(),
                    },
                    n,
                    op,
                )?,
                None if complete => None,
                None => self.read_txt(zone, n).await?,
            };
            out.insert(n.clone(), Observed::of(set));
        }
        Ok(out)
    }

    /// Two requests: the RRsets read again (as `read_sets`; refused with
    /// [`ErrorKind::Conflict`] when one changed since the caller's read), then
    /// ONE bulk `PATCH …/rrsets/` holding every name (`records: []` deletes).
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let op = Operation::Replace;
        let mut items = Vec::with_capacity(changes.len());
        for c in changes {
            let sub = Self::subname(zone, &c.name, op).map_err(ApplyError::nothing_written)?;
            let subname = if sub == "@" { String::new() } else { sub };
            match c.wanted() {
                Some(set) => {
                    let desired = check_all(KIND, &self.profile, &c.name, set)
                        .map_err(ApplyError::nothing_written)?;
                    self.check_min_ttl(zone, &c.name, set.ttl, op)
                        .await
                        .map_err(ApplyError::nothing_written)?;
                    let records: Vec<String> =
                        desired.iter().map(TxtRecord::to_presentation).collect();
                    items.push(json!({"subname": subname, "type": "TXT", "ttl": set.ttl, "records": records}));
                }
                None => items.push(json!({"subname": subname, "type": "TXT", "records": []})),
            }
        }
        let Some(first) = changes.first() else {
            return Ok(());
        };
        let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
        let now = self
            .read_sets(zone, &names)
            .await
            .map_err(ApplyError::nothing_written)?;
        let mut in_place = Vec::new();
        for c in changes {
            let current = now.get(&c.name).and_then(|o| o.set.as_ref());
            // Nothing to write when the change was applied before; a conflict
            // when the set is neither what was read nor what is wanted.
            if !c
                .still_to_write(KIND, current)
                .map_err(ApplyError::nothing_written)?
            {
                in_place.push(c.name.clone());
                continue;
            }
        }
        let items: Vec<Value> = changes
            .iter()
            .zip(items)
            .filter(|(c, _)| !in_place.contains(&c.name))
            .map(|(_, item)| item)
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        let path = format!("domains/{}/rrsets/", zone.id);
        let body = Value::Array(items);
        self.http
            .send(op, Some(&first.name), Idempotency::Idempotent, |c| {
                self.req(c, Method::PATCH, &path).json(&body)
            })
            .await
            .map(|_| ())
            .map_err(ApplyError::nothing_written)
    }
}

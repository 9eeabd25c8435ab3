//! Hetzner DNS through the current Hetzner Cloud API (`api.hetzner.cloud/v1`): RRsets.
//!
//! - Zone: `GET /zones?name=<candidate>` walking up the labels.
//! - Set: `GET /zones/{zone}/rrsets/{relative name}/TXT` (404 when absent); names are
//!   relative, `@` for the apex. One set has one TTL; `null` means the zone default.
//! - Values: each one or more quoted strings of at most 255 bytes (Hetzner rejects a
//!   longer string with 422), so the adapter always sends pre-split quoted strings.
//! - Writes: create `POST /zones/{zone}/rrsets`, replace all values
//!   `POST …/rrsets/{name}/TXT/actions/set_records`, TTL `…/actions/change_ttl`,
//!   delete `DELETE …/rrsets/{name}/TXT`. Each returns an Action, polled through
//!   `GET /actions/{id}` until `success` or `error`.
//! - Errors: `{"error":{"code":"invalid_input","message":"…","details":{…}}}`.
//!   `locked` ("another action is running") and `conflict` are retried with
//!   backoff, also when a write's Action ends with them.
//! - Change sets: `read_sets` is one `GET /zones/{zone}/rrsets?type=TXT` listing;
//!   writes stay per name (the API has no batch), each checked against the read
//!   by the GET the write does anyway (`replace_if_unchanged`). The `{zone}` path
//!   segment takes the zone's name, so a configured apex needs no lookup.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::check_all;
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider, Secret, TxtChange, TxtRecord,
    TxtSet, Zone, ZoneProbe, ZoneSets, hostname_candidates, walk_zones,
};

const KIND: &str = "hetzner";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/hetzner.toml"),
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
    Ok(std::sync::Arc::new(Hetzner::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1";

/// TTL assumed when a set's `ttl` is `null` (the zone default; Hetzner's default is 3600).
pub const DEFAULT_ZONE_TTL: u32 = 3600;

/// Account settings for Hetzner DNS (Cloud API).
#[derive(Debug, Clone)]
pub struct Config {
    /// Cloud API token of the project holding the zones (read & write).
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Pause between two polls of a running Action.
    pub action_poll_interval: Duration,
    /// Give up waiting for an Action after this long.
    pub action_timeout: Duration,
}

impl Config {
    /// A config for the real API.
    pub fn new(token: Secret) -> Self {
        Config {
            token,
            base_url: DEFAULT_BASE_URL.to_string(),
            action_poll_interval: Duration::from_millis(500),
            action_timeout: Duration::from_secs(120),
        }
    }
}

/// The Hetzner Cloud DNS adapter.
#[derive(Debug)]
pub struct Hetzner {
    http: HttpClient,
    token: Secret,
    poll: Duration,
    timeout: Duration,
    profile: Profile,
}

#[derive(Deserialize)]
struct ErrEnvelope {
    error: HzError,
}

#[derive(Deserialize, Debug, Clone)]
struct HzError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn kind_for_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "unauthorized" => ErrorKind::Auth,
        "forbidden" | "token_readonly" => ErrorKind::Permission,
        "not_found" => ErrorKind::ZoneNotFound,
        "invalid_input" | "json_error" | "protected" => ErrorKind::Invalid,
        // Someone created the RRset since it was read: a stale read.
        "uniqueness_error" => ErrorKind::Conflict,
        // "Another action is running" on the zone (`locked`), or the resource
        // changed during the request (`conflict`): busy, not refused. Mapped to
        // a transient kind so the HTTP client retries them with backoff.
        "conflict" | "locked" => ErrorKind::Server,
        "rate_limit_exceeded" => ErrorKind::RateLimited,
        "server_error" | "service_error" | "maintenance" | "resource_unavailable" => {
            ErrorKind::Server
        }
        _ => return None,
    })
}

/// Extracts Hetzner's `{"error":{"code","message"}}`.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    match serde_json::from_slice::<ErrEnvelope>(f.body) {
        Ok(e) => (
            kind_for_code(&e.error.code).unwrap_or_else(|| kind_for_status(f.status)),
            format!("{} ({})", e.error.message, e.error.code),
        ),
        Err(_) => crate::http::default_mapper(f),
    }
}

#[derive(Deserialize)]
struct ZoneList {
    #[serde(default)]
    zones: Vec<HzZone>,
}

#[derive(Deserialize)]
struct HzZone {
    id: serde_json::Value,
    name: String,
}

#[derive(Deserialize)]
struct RrsetBody {
    rrset: Rrset,
}

#[derive(Deserialize)]
struct Rrset {
    #[serde(default)]
    ttl: Option<u32>,
    records: Vec<HzRecord>,
}

#[derive(Deserialize)]
struct HzRecord {
    value: String,
}

#[derive(Deserialize)]
struct ActionBody {
    action: Action,
}

#[derive(Deserialize)]
struct Action {
    id: u64,
    status: String,
    #[serde(default)]
    error: Option<HzError>,
}

/// The TXT set in a `{"rrset":{...}}` answer (`None` when it holds no record).
/// Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `hetzner` and `read TXT` when the body is not the
/// documented shape or a value is not quoted strings (the Cloud DNS API stores TXT
/// values as quoted 255-byte strings, <https://docs.hetzner.cloud/reference/cloud#zone-rrsets>).
pub fn parse_rrset(body: &[u8], name: &Fqdn) -> Result<Option<TxtSet>, Error> {
    let op = Operation::Read;
    let set = serde_json::from_slice::<RrsetBody>(body)
        .map_err(|e| super::bad_body(KIND, op, name, e))?
        .rrset;
    if set.records.is_empty() {
        return Ok(None);
    }
    txt_set(&set, name, op).map(Some)
}

fn txt_set(set: &Rrset, name: &Fqdn, op: Operation) -> Result<TxtSet, Error> {
    let mut records = Vec::with_capacity(set.records.len());
    for r in &set.records {
        records.push(super::parse_quoted(KIND, op, name, &r.value)?);
    }
    Ok(TxtSet {
        ttl: set.ttl.unwrap_or(DEFAULT_ZONE_TTL),
        records,
    })
}

impl Hetzner {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::require_nonempty(KIND, config.token.is_empty(), "API token")?;
        Ok(Hetzner {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            token: config.token,
            poll: config.action_poll_interval,
            timeout: config.action_timeout,
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .bearer_auth(self.token.expose())
    }

    fn rrset_path(zone: &Zone, name: &Fqdn) -> Result<String, Error> {
        let rel = name.relative_to(&zone.name).ok_or_else(|| {
            Error::new(
                KIND,
                Operation::Replace,
                Some(name),
                ErrorKind::Config,
                format!("the name is outside zone {}", zone.name),
            )
        })?;
        Ok(format!("zones/{}/rrsets/{rel}/TXT", zone.id))
    }

    async fn get(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<Rrset>, Error> {
        let path = Self::rrset_path(zone, name)?;
        match self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, &path)
            })
            .await
        {
            Ok(r) => Ok(Some(
                r.json::<RrsetBody>(KIND, op)
                    .map_err(|e| e.with_name(name))?
                    .rrset,
            )),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a write and waits for the Action it returns.
    async fn write(
        &self,
        op: Operation,
        name: &Fqdn,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(), Error> {
        let resp = self
            .http
            .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                let r = self.req(c, method.clone(), path);
                match &body {
                    Some(b) => r.json(b),
                    None => r,
                }
            })
            .await?;
        let action: ActionBody = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
        self.wait(name, action.action).await
    }

    /// [`Hetzner::write`], sent again (with backoff, at most [`BUSY_ATTEMPTS`]
    /// times) while its Action ends `locked` or `conflict`: another action was
    /// running on the zone, nothing was applied.
    async fn write_when_free(
        &self,
        op: Operation,
        name: &Fqdn,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .write(op, name, method.clone(), path, body.clone())
                .await
            {
                Err(e) if attempt < BUSY_ATTEMPTS && busy(&e) => {
                    tokio::time::sleep(self.poll.saturating_mul(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Makes the set at `name` `desired` with `ttl`, given what is there now:
    /// create, or `change_ttl` and/or `set_records` (nothing when equal).
    async fn write_set(
        &self,
        zone: &Zone,
        name: &Fqdn,
        ttl: u32,
        desired: &[TxtRecord],
        current: Option<Rrset>,
    ) -> Result<(), Error> {
        let op = Operation::Replace;
        let path = Self::rrset_path(zone, name)?;
        match current.filter(|c| !c.records.is_empty()) {
            None => {
                let rel = name.relative_to(&zone.name).unwrap_or_else(|| "@".into());
                let body = json!({
                    "name": rel,
                    "type": "TXT",
                    "ttl": ttl,
                    "records": records_json(desired),
                });
                let p = format!("zones/{}/rrsets", zone.id);
                self.write_when_free(op, name, Method::POST, &p, Some(body))
                    .await
            }
            Some(cur) => {
                let values: Vec<&str> = cur.records.iter().map(|r| r.value.as_str()).collect();
                let want: Vec<String> = desired.iter().map(TxtRecord::to_presentation).collect();
                if cur.ttl != Some(ttl) {
                    let p = format!("{path}/actions/change_ttl");
                    self.write_when_free(op, name, Method::POST, &p, Some(json!({ "ttl": ttl })))
                        .await?;
                }
                if values != want {
                    let p = format!("{path}/actions/set_records");
                    let body = json!({ "records": records_json(desired) });
                    self.write_when_free(op, name, Method::POST, &p, Some(body))
                        .await?;
                }
                Ok(())
            }
        }
    }

    async fn wait(&self, name: &Fqdn, mut action: Action) -> Result<(), Error> {
        let op = Operation::WaitForChange;
        let start = Instant::now();
        loop {
            match action.status.as_str() {
                "success" => return Ok(()),
                "error" => {
                    let e = action.error.unwrap_or(HzError {
                        code: String::new(),
                        message: "the action failed without a message".into(),
                    });
                    return Err(Error::new(
                        KIND,
                        op,
                        Some(name),
                        kind_for_code(&e.code).unwrap_or(ErrorKind::Server),
                        format!("action {} failed: {} ({})", action.id, e.message, e.code),
                    ));
                }
                _ => {}
            }
            if start.elapsed() >= self.timeout {
                return Err(Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::Server,
                    format!(
                        "action {} still '{}' after {}s",
                        action.id,
                        action.status,
                        self.timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.poll).await;
            let path = format!("actions/{}", action.id);
            let resp = self
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, &path)
                })
                .await?;
            action = resp.json::<ActionBody>(KIND, op)?.action;
        }
    }
}

/// Times a write whose Action ended `locked`/`conflict` is sent in all.
pub const BUSY_ATTEMPTS: u32 = 5;

/// Whether a failed Action says the zone was busy (nothing applied).
fn busy(e: &Error) -> bool {
    e.operation == Operation::WaitForChange
        && (e.message.ends_with("(locked)") || e.message.ends_with("(conflict)"))
}

#[derive(Deserialize)]
struct RrsetList {
    #[serde(default)]
    rrsets: Vec<ListedRrset>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct ListedRrset {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: Option<u32>,
    records: Vec<HzRecord>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page: Option<u32>,
}

fn records_json(records: &[TxtRecord]) -> serde_json::Value {
    records
        .iter()
        .map(|r| json!({ "value": r.to_presentation(), "comment": "" }))
        .collect()
}

#[async_trait::async_trait]
impl Provider for Hetzner {
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
        walk_zones(
            KIND,
            name,
            hostname_candidates(name),
            "no zone in this project holds the name",
            |cand| async move {
                let q = [("name", cand.to_string())];
                let resp = match self
                    .http
                    .send(op, Some(name), Idempotency::Idempotent, |c| {
                        self.req(c, Method::GET, "zones").query(&q)
                    })
                    .await
                {
                    Ok(r) => r,
                    // Only "not found" means: try the parent. Anything else is the answer.
                    Err(e) if e.status == Some(404) => return Ok(ZoneProbe::Absent(None)),
                    Err(e) => return Err(e),
                };
                let list: ZoneList = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
                Ok(list
                    .zones
                    .into_iter()
                    .find(|z| Fqdn::parse(&z.name).is_ok_and(|n| n == cand))
                    .map_or(ZoneProbe::Absent(None), |z| {
                        ZoneProbe::Found(match z.id {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                    }))
            },
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        let Some(set) = self.get(zone, name, op).await? else {
            return Ok(None);
        };
        if set.records.is_empty() {
            return Ok(None);
        }
        txt_set(&set, name, op).map(Some)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let desired = check_all(KIND, &self.profile, name, set)?;
        if desired.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        let current = self.get(zone, name, Operation::Replace).await?;
        self.write_set(zone, name, set.ttl, &desired, current).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let path = Self::rrset_path(zone, name)?;
        crate::http::gone_is_done(
            self.write_when_free(op, name, Method::DELETE, &path, None)
                .await,
        )
    }

    /// The `{zone}` path segment takes the zone's name: no lookup needed.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    /// One name: its RRset. Several: one `GET /zones/{zone}/rrsets?type=TXT`
    /// listing (at most one page a name, then the names not seen one by one).
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut out = ZoneSets::new();
        if names.len() <= 1 {
            for n in names {
                out.insert(n.clone(), Observed::of(self.read_txt(zone, n).await?));
            }
            return Ok(out);
        }
        let path = format!("zones/{}/rrsets", zone.id);
        let mut listed: Vec<ListedRrset> = Vec::new();
        let mut page = 1u32;
        let complete = loop {
            let q = [
                ("type", "TXT".to_string()),
                ("page", page.to_string()),
                ("per_page", "50".to_string()),
            ];
            let resp = self
                .http
                .send(op, Some(&zone.name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, &path).query(&q)
                })
                .await?;
            let list: RrsetList = resp.json(KIND, op).map_err(|e| e.with_name(&zone.name))?;
            listed.extend(list.rrsets.into_iter().filter(|r| r.kind == "TXT"));
            let next = list
                .meta
                .and_then(|m| m.pagination)
                .and_then(|p| p.next_page);
            match next {
                None => break true,
                Some(_) if page as usize >= names.len() => break false,
                Some(n) => page = n,
            }
        };
        for n in names {
            let rel = n.relative_to(&zone.name).unwrap_or_else(|| "@".into());
            let set = match listed.iter().find(|r| r.name == rel) {
                Some(r) if r.records.is_empty() => None,
                Some(r) => {
                    let rr = Rrset {
                        ttl: r.ttl,
                        records: r
                            .records
                            .iter()
                            .map(|x| HzRecord {
                                value: x.value.clone(),
                            })
                            .collect(),
                    };
                    Some(txt_set(&rr, n, op)?)
                }
                None if complete => None,
                None => self.read_txt(zone, n).await?,
            };
            out.insert(n.clone(), Observed::of(set));
        }
        Ok(out)
    }

    /// The GET the write does anyway is the check: a set that is no longer
    /// the one read is [`ErrorKind::Conflict`] and nothing is written.
    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let op = change.operation();
        let desired = match change.wanted() {
            Some(set) => Some((set.ttl, check_all(KIND, &self.profile, &change.name, set)?)),
            None => None,
        };
        let current = self.get(zone, &change.name, op).await?;
        let now = match &current {
            Some(c) if !c.records.is_empty() => Some(txt_set(c, &change.name, op)?),
            _ => None,
        };
        // Nothing to write when the change was applied before; a conflict
        // when the set is neither what was read nor what is wanted.
        if !change.still_to_write(KIND, now.as_ref())? {
            return Ok(());
        }
        match desired {
            Some((ttl, records)) => {
                self.write_set(zone, &change.name, ttl, &records, current)
                    .await
            }
            None if now.is_none() => Ok(()),
            None => self.delete_txt(zone, &change.name).await,
        }
    }
}

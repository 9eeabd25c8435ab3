//! DigitalOcean (API v2): record-level, one `id` per TXT value.
//!
//! - Zone: `GET /domains/<candidate>` walking up the labels (404 `not_found` when absent).
//! - Values: `GET /domains/{d}/records?type=TXT&name=<fqdn>&page=&per_page=`, paged
//!   while `links.pages.next` is present.
//! - `data` is ONE unquoted string: the record's joined value. The API documents no
//!   multi-string form; DigitalOcean splits for the wire itself, so a value read
//!   back is split greedily into 255-byte strings.
//! - Limit: DigitalOcean checks the length of the record's *encoded* form (quotes,
//!   escapes, spaces between strings) against about 512 bytes; dnscontrol, the only
//!   public measurement, refuses more than 509, and so does this adapter — before
//!   any request for that set. Backslashes are refused too (dnscontrol: DigitalOcean mangles them).
//! - replace: values already present are kept (same id; the TTL is patched when it
//!   differs); missing values are created first, then unwanted values deleted.
//! - Change sets: `read_sets` is one `GET /domains/{d}/records?type=TXT` listing;
//!   writes stay per name (the API has no batch), each checked against the read
//!   by the listing the write does anyway (`replace_if_unchanged`). A domain is
//!   addressed by its name, so a configured apex needs no lookup.
//! - Errors: `{"id":"unauthorized","message":"Unable to authenticate you."}`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::paged::{self, Listed};
use crate::http::{Failure, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider, Secret, TxtChange, TxtSet,
    Zone, ZoneSets,
};

const KIND: &str = "digitalocean";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/digitalocean.toml"),
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
    Ok(std::sync::Arc::new(DigitalOcean::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com/v2";

/// Records per page (the API's maximum is 200).
pub const DEFAULT_PAGE_SIZE: u32 = 200;

/// Most bytes of a record's encoded (presentation) form DigitalOcean accepts.
pub const MAX_ENCODED_BYTES: usize = 509;

/// Account settings for DigitalOcean.
#[derive(Debug, Clone)]
pub struct Config {
    /// Personal access token with `domain:read`, `domain:create`, `domain:update`, `domain:delete`.
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Records per page when listing (1..=200).
    pub page_size: u32,
}

impl Config {
    /// A config for the real API.
    pub fn new(token: Secret) -> Self {
        Config {
            token,
            base_url: DEFAULT_BASE_URL.to_string(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The DigitalOcean adapter.
#[derive(Debug)]
pub struct DigitalOcean {
    api: paged::Api,
}

#[derive(Deserialize)]
struct ErrBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// Extracts DigitalOcean's `{"id","message"}` error.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if !b.message.is_empty() => {
            let kind = match b.id.as_str() {
                "unauthorized" => ErrorKind::Auth,
                "forbidden" => ErrorKind::Permission,
                "not_found" => ErrorKind::ZoneNotFound,
                "too_many_requests" => ErrorKind::RateLimited,
                "unprocessable_entity" | "bad_request" => ErrorKind::Invalid,
                _ => kind_for_status(f.status),
            };
            (kind, format!("{} ({})", b.message, b.id))
        }
        _ => crate::http::default_mapper(f),
    }
}

#[derive(Deserialize)]
struct RecordList {
    domain_records: Vec<DoRecord>,
    #[serde(default)]
    links: Links,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    pages: Option<Pages>,
}

#[derive(Deserialize, Default)]
struct Pages {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize, Clone)]
struct DoRecord {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: String,
    data: String,
    ttl: u32,
}

/// One stored TXT record as listed: its id, joined value (`data`) and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// DigitalOcean's record id.
    pub id: u64,
    /// The value (DigitalOcean keeps no string boundaries).
    pub data: String,
    /// TTL in seconds.
    pub ttl: u32,
}

impl Listed for ListedRecord {
    fn value(&self) -> &[u8] {
        self.data.as_bytes()
    }
    fn ttl(&self) -> u32 {
        self.ttl
    }
}

/// Parses one page of a `domain_records` list: the TXT records and whether a next
/// page is linked. Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `digitalocean` and `op` when the body is not the
/// documented shape (`domain_records` with `id`, `type`, `data`, `ttl`) or a record
/// is not TXT (<https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domain-Records>).
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<ListedRecord>, bool), Error> {
    let list: RecordList =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::with_capacity(list.domain_records.len());
    for r in list.domain_records {
        if r.kind != "TXT" {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("a {} record in the answer to a TXT query", r.kind),
            ));
        }
        out.push(ListedRecord {
            id: r.id,
            data: r.data,
            ttl: r.ttl,
        });
    }
    let more = list.links.pages.and_then(|p| p.next).is_some();
    Ok((out, more))
}

impl DigitalOcean {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let api = paged::Api::new(
            KIND,
            "API token",
            config.token,
            &config.base_url,
            config.page_size.clamp(1, 200),
            policy,
            map_error,
        )?;
        Ok(DigitalOcean { api })
    }

    async fn list(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<ListedRecord>, Error> {
        let path = &format!("domains/{}/records", zone.id);
        paged::every_number(|page| async move {
            let q = [
                ("type", "TXT".to_string()),
                ("name", name.to_string()),
                ("page", page.to_string()),
                ("per_page", self.api.page_size.to_string()),
            ];
            let resp = self
                .api
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.api.req(c, Method::GET, path).query(&q)
                })
                .await?;
            parse_records(&resp.body, name, op)
        })
        .await
    }

    /// Every TXT record of the domain, each with its name relative to the zone
    /// (`@` for the apex), at most `max_pages` pages; the flag says whether the
    /// listing was read to its end.
    async fn list_all(
        &self,
        zone: &Zone,
        op: Operation,
        max_pages: u32,
    ) -> Result<(Vec<(String, ListedRecord)>, bool), Error> {
        let path = &format!("domains/{}/records", zone.id);
        paged::by_number(max_pages, |page| async move {
            let q = [
                ("type", "TXT".to_string()),
                ("page", page.to_string()),
                ("per_page", self.api.page_size.to_string()),
            ];
            let resp = self
                .api
                .http
                .send(op, Some(&zone.name), Idempotency::Idempotent, |c| {
                    self.api.req(c, Method::GET, path).query(&q)
                })
                .await?;
            let (got, more) = parse_records(&resp.body, &zone.name, op)?;
            let list: RecordList = serde_json::from_slice(&resp.body)
                .map_err(|e| super::bad_body(KIND, op, &zone.name, e))?;
            let named = list.domain_records.into_iter().map(|r| r.name).zip(got);
            Ok((named.collect(), more))
        })
        .await
    }

    /// Makes the records at `name` hold `desired` (joined values) with `ttl`,
    /// given the records there now: creates first, then TTL-only PATCHes,
    /// then deletes.
    async fn write_records(
        &self,
        zone: &Zone,
        name: &Fqdn,
        ttl: u32,
        desired: &[Vec<u8>],
        current: &[ListedRecord],
        op: Operation,
    ) -> Result<(), Error> {
        let rel = name.relative_to(&zone.name).ok_or_else(|| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Config,
                format!("the name is outside zone {}", zone.name),
            )
        })?;
        let diff = super::diff_records(desired, current, |rec, d| d.as_slice() == rec.value());
        let path = format!("domains/{}/records", zone.id);
        for d in diff.create {
            // printable_ascii_only was checked by the caller, so this is valid UTF-8.
            let data = String::from_utf8_lossy(d);
            let body = json!({ "type": "TXT", "name": rel, "data": data, "ttl": ttl });
            self.api.create(op, name, &path, &body).await?;
        }
        for rec in diff.keep.iter().filter(|rec| rec.ttl != ttl) {
            let p = format!("{path}/{}", rec.id);
            let body = json!({ "type": "TXT", "ttl": ttl });
            self.api
                .json(op, name, Idempotency::Idempotent, Method::PATCH, &p, &body)
                .await?;
        }
        for rec in diff.delete {
            self.delete_id(zone, name, rec.id, op).await?;
        }
        Ok(())
    }

    async fn delete_id(
        &self,
        zone: &Zone,
        name: &Fqdn,
        id: u64,
        op: Operation,
    ) -> Result<(), Error> {
        let path = format!("domains/{}/records/{id}", zone.id);
        self.api.delete(op, name, &path).await
    }
}

#[async_trait::async_trait]
impl Provider for DigitalOcean {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.api.http.rate_limits_seen().headers
    }

    fn profile(&self) -> &Profile {
        &self.api.profile
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.api.find_domain(KIND, name).await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(paged::set_of(
            &self.list(zone, name, Operation::Read).await?,
        ))
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        // Values are compared joined: DigitalOcean keeps no string boundaries.
        let desired = paged::desired_values(KIND, &self.api.profile, name, Some(set))?;
        if desired.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        let current = self.list(zone, name, op).await?;
        self.write_records(zone, name, set.ttl, &desired, &current, op)
            .await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        for rec in self.list(zone, name, op).await? {
            self.delete_id(zone, name, rec.id, op).await?;
        }
        Ok(())
    }

    /// A domain is addressed by its name: no lookup needed.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    /// One name: its filtered listing. Several: one listing of the domain's
    /// TXT records (at most one page a name, then the names not seen one by one).
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut out = ZoneSets::new();
        if names.len() <= 1 {
            for n in names {
                out.insert(n.clone(), Observed::of(self.read_txt(zone, n).await?));
            }
            return Ok(out);
        }
        let budget = u32::try_from(names.len()).unwrap_or(u32::MAX);
        let (all, complete) = self.list_all(zone, op, budget).await?;
        for n in names {
            let rel = n.relative_to(&zone.name).unwrap_or_else(|| "@".into());
            let here = all.iter().filter(|(name, _)| *name == rel).map(|(_, r)| r);
            let set = match paged::set_of(here) {
                None if !complete => self.read_txt(zone, n).await?,
                set => set,
            };
            out.insert(n.clone(), Observed::of(set));
        }
        Ok(out)
    }

    /// The listing the write does anyway is the check: records that are no
    /// longer the set read give [`ErrorKind::Conflict`] and nothing is written.
    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let op = change.operation();
        let desired =
            paged::desired_values(KIND, &self.api.profile, &change.name, change.wanted())?;
        let current = self.list(zone, &change.name, op).await?;
        let held = paged::set_of(&current);
        // Nothing to write when the change was applied before; a conflict
        // when the set is neither what was read nor what is wanted.
        if !change.still_to_write(KIND, held.as_ref())? {
            return Ok(());
        }
        let ttl = change.wanted().map(|s| s.ttl).unwrap_or(0);
        self.write_records(zone, &change.name, ttl, &desired, &current, op)
            .await
    }
}

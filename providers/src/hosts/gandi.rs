//! Gandi LiveDNS v5 (`https://api.gandi.net/v5/livedns`), personal access token.
//!
//! LiveDNS works on record sets: `PUT /domains/{zone}/records/{name}/TXT` with the
//! full list of values replaces the set; each value is one record in zone-file
//! syntax (quoted strings of at most 255 bytes). A missing set or domain is a 404
//! with the envelope `{"cause","code","message","object"}`.
//!
//! Change sets: `read_sets` is one `GET /domains/{zone}/records?rrset_type=TXT`;
//! `apply` reads them again in one such request (LiveDNS has no precondition),
//! then writes each name (`PUT` or `DELETE`; the API has no batch). The domain is
//! addressed by its name, so a configured apex needs no lookup; the lookup walks
//! up only through names that can be domains (never `_dmarc.example.com`) and
//! stops on any error other than 404.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::http::{self, Failure, HttpClient, Idempotency, RetryPolicy};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    ApplyError, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider, Secret, TxtChange,
    TxtRecord, TxtSet, Zone, ZoneProbe, ZoneSets, hostname_candidates, walk_zones,
};

const KIND: &str = "gandi";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/gandi.toml"),
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
    Ok(std::sync::Arc::new(Gandi::new(cfg, policy)?))
}

/// The real API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.gandi.net/v5/livedns";

/// How to reach one Gandi account.
#[derive(Debug, Clone)]
pub struct Config {
    /// Personal access token (sent as `Authorization: Bearer`).
    pub token: Secret,
    /// API base URL.
    pub base_url: String,
}

impl Config {
    /// A configuration for the real API.
    pub fn new(token: Secret) -> Self {
        Config {
            token,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }
}

/// The Gandi LiveDNS adapter.
#[derive(Debug)]
pub struct Gandi {
    http: HttpClient,
    token: Secret,
    profile: Profile,
    write_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RrSet {
    rrset_ttl: u32,
    rrset_values: Vec<String>,
}

/// The TXT set in an RRset answer (`{"rrset_ttl":…,"rrset_values":[…],…}`; `None`
/// when it holds no value). Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `gandi` and `read TXT` when the body is not the
/// documented shape or a value is not quoted strings (each `rrset_values` element is
/// one record in zone-file syntax, <https://api.gandi.net/docs/livedns/>).
pub fn parse_rrset(body: &[u8], name: &Fqdn) -> Result<Option<TxtSet>, Error> {
    let op = Operation::Read;
    let set: RrSet =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    if set.rrset_values.is_empty() {
        return Ok(None);
    }
    let mut records = Vec::new();
    for v in &set.rrset_values {
        records.push(super::parse_quoted(KIND, op, name, v)?);
    }
    Ok(Some(TxtSet {
        ttl: set.rrset_ttl,
        records,
    }))
}

impl Gandi {
    /// Validates `cfg` and builds the adapter; no request is sent.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(cfg: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::require_nonempty(KIND, cfg.token.is_empty(), "personal access token")?;
        Ok(Gandi {
            http: HttpClient::new(KIND, &cfg.base_url, policy, map_error)?,
            token: cfg.token,
            profile: crate::registry::profile(KIND)?,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    async fn call(
        &self,
        op: Operation,
        name: &Fqdn,
        method: Method,
        path: &str,
        body: Option<&RrSet>,
    ) -> Result<http::Response, Error> {
        let idempotent = if method == Method::POST {
            Idempotency::NotIdempotent
        } else {
            Idempotency::Idempotent
        };
        self.http
            .send(op, Some(name), idempotent, |c| {
                let mut req = self
                    .http
                    .request(c, method.clone(), path)
                    .bearer_auth(self.token.expose());
                if let Some(b) = body {
                    req = req.json(b);
                }
                req
            })
            .await
    }

    fn set_path(zone: &Zone, name: &Fqdn) -> Result<String, Error> {
        let rel = name.relative_to(&zone.name).ok_or_else(|| {
            Error::new(
                KIND,
                Operation::Read,
                Some(name),
                ErrorKind::Config,
                format!("{name} is not within the zone {}", zone.name),
            )
        })?;
        Ok(format!("domains/{}/records/{rel}/TXT", zone.id))
    }
}

#[async_trait::async_trait]
impl Provider for Gandi {
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
        walk_zones(
            KIND,
            name,
            // Gandi answers 400, not 404, for a name it cannot hold as a domain.
            hostname_candidates(name),
            &format!("no LiveDNS domain holds {name}"),
            |cand| async move {
                let path = format!("domains/{}", cand.as_str());
                let r = self
                    .call(Operation::FindZone, name, Method::GET, &path, None)
                    .await;
                ZoneProbe::found_unless(r.map(|_| cand.to_string()), |e| e.status == Some(404))
            },
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        let path = Self::set_path(zone, name)?;
        let resp = match self.call(op, name, Method::GET, &path, None).await {
            Ok(r) => r,
            Err(e) if e.status == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        parse_rrset(&resp.body, name)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        self.profile.check_set(KIND, op, name, &set.records)?;
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        self.profile.check_ttl(KIND, op, name, set.ttl)?;
        let path = Self::set_path(zone, name)?;
        let body = RrSet {
            rrset_ttl: set.ttl,
            rrset_values: set.records.iter().map(TxtRecord::to_presentation).collect(),
        };
        let _guard = self.write_lock.lock().await;
        self.call(op, name, Method::PUT, &path, Some(&body))
            .await
            .map(|_| ())
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let path = Self::set_path(zone, name)?;
        let _guard = self.write_lock.lock().await;
        http::gone_is_done(
            self.call(Operation::Delete, name, Method::DELETE, &path, None)
                .await,
        )
    }

    /// LiveDNS addresses a domain by its name: no lookup needed.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    /// One name: its RRset. Several: one listing of the domain's TXT RRsets
    /// (at most one page a name, then the names not seen one by one).
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut out = ZoneSets::new();
        if names.len() <= 1 {
            for n in names {
                out.insert(n.clone(), Observed::of(self.read_txt(zone, n).await?));
            }
            return Ok(out);
        }
        let (listed, complete) = self.list_txt(zone, op, names.len()).await?;
        for n in names {
            let rel = n.relative_to(&zone.name).unwrap_or_else(|| "@".into());
            let set = match listed.iter().find(|r| r.rrset_name == rel) {
                Some(r) if r.rrset_values.is_empty() => None,
                Some(r) => {
                    let mut records = Vec::new();
                    for v in &r.rrset_values {
                        records.push(super::parse_quoted(KIND, op, n, v)?);
                    }
                    Some(TxtSet {
                        ttl: r.rrset_ttl,
                        records,
                    })
                }
                None if complete => None,
                None => self.read_txt(zone, n).await?,
            };
            out.insert(n.clone(), Observed::of(set));
        }
        Ok(out)
    }

    /// The RRsets read again in one request (as `read_sets`; any changed since
    /// the caller's read refuses the whole change set with
    /// [`ErrorKind::Conflict`], nothing written), then one `PUT` or `DELETE` a
    /// name, in order; a failure names the names already written.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        for c in changes {
            if let Some(set) = c.wanted() {
                super::check_all(KIND, &self.profile, &c.name, set)
                    .map_err(ApplyError::nothing_written)?;
            }
        }
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
        let mut written = Vec::new();
        for c in changes.iter().filter(|c| !in_place.contains(&c.name)) {
            let result = match c.wanted() {
                Some(set) => self.replace_txt(zone, &c.name, set).await,
                None => self.delete_txt(zone, &c.name).await,
            };
            if let Err(error) = result {
                return Err(ApplyError { written, error });
            }
            written.push(c.name.clone());
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct ListedRrSet {
    rrset_name: String,
    rrset_type: String,
    rrset_ttl: u32,
    rrset_values: Vec<String>,
}

impl Gandi {
    /// Every TXT RRset of the domain (`GET /domains/{zone}/records?rrset_type=TXT`),
    /// following `Link: <…>; rel="next"` for at most `max_pages` pages; the flag
    /// says whether the listing was read to its end.
    async fn list_txt(
        &self,
        zone: &Zone,
        op: Operation,
        max_pages: usize,
    ) -> Result<(Vec<ListedRrSet>, bool), Error> {
        let mut url = self.http.url(&format!("domains/{}/records", zone.id));
        url.query_pairs_mut().append_pair("rrset_type", "TXT");
        let mut out = Vec::new();
        for _ in 0..max_pages.max(1) {
            let resp = self
                .http
                .send(op, Some(&zone.name), Idempotency::Idempotent, |c| {
                    c.get(url.clone()).bearer_auth(self.token.expose())
                })
                .await?;
            let page: Vec<ListedRrSet> =
                resp.json(KIND, op).map_err(|e| e.with_name(&zone.name))?;
            out.extend(page.into_iter().filter(|r| r.rrset_type == "TXT"));
            match super::next_link(&resp.headers).and_then(|n| url::Url::parse(&n).ok()) {
                Some(next) if next.origin() == url.origin() => url = next,
                _ => return Ok((out, true)),
            }
        }
        Ok((out, false))
    }
}

#[derive(Debug, Deserialize)]
struct GandiError {
    #[serde(default)]
    cause: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<GandiFieldError>,
}

#[derive(Debug, Deserialize)]
struct GandiFieldError {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Maps Gandi's error envelope `{"cause","code","message","object","errors"}`.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let kind = http::kind_for_status(f.status);
    match serde_json::from_slice::<GandiError>(f.body) {
        Ok(e) => {
            let mut parts = Vec::new();
            if let Some(c) = e.cause.filter(|c| !c.is_empty()) {
                parts.push(c);
            }
            if let Some(m) = e.message.filter(|m| !m.is_empty()) {
                parts.push(m);
            }
            let mut msg = parts.join(": ");
            for fe in e.errors {
                msg.push_str(&format!(
                    "; {}: {}",
                    fe.name.unwrap_or_default(),
                    fe.description.unwrap_or_default()
                ));
            }
            (kind, msg)
        }
        Err(_) => http::default_mapper(f),
    }
}

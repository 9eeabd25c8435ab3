//! Cloudflare (API v4): record-level, one `id` per TXT value.
//!
//! - Zone: `GET /zones?name=<candidate>` walking up the labels (an unknown name is
//!   200 with `"result":[]`).
//! - Values: `GET /zones/{id}/dns_records?type=TXT&name.exact=<fqdn>&page=&per_page=`
//!   (paged by `result_info.total_pages`).
//! - `content` is sent in presentation form (quoted character-strings). Cloudflare
//!   stores `content` as sent and splits quoted strings over 255 bytes itself.
//!   Records of one name and type are at most 4,096 bytes each on the wire.
//! - replace: values already present are kept (same id; only the TTL is patched when
//!   it differs); missing values are created first, then unwanted values deleted.
//! - Errors: `{"success":false,"errors":[{"code","message","error_chain"}]}`. A bad
//!   token is 403 with code 10000 "Authentication error": mapped to `Auth`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
    zone_candidates,
};

const KIND: &str = "cloudflare";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/cloudflare.toml"),
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
    Ok(std::sync::Arc::new(Cloudflare::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// Records per page when listing (Cloudflare's default for DNS records is 100).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Most bytes of a joined value: 4,096 bytes of wire RDATA hold 16 strings of 255
/// bytes plus their 16 length bytes.
pub const MAX_VALUE_BYTES: usize = 4080;

/// Account settings for Cloudflare.
#[derive(Debug, Clone)]
pub struct Config {
    /// API token with Zone.DNS edit permission.
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing or using a compatible host.
    pub base_url: String,
    /// Records per page when listing.
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

/// The Cloudflare adapter.
#[derive(Debug)]
pub struct Cloudflare {
    http: HttpClient,
    token: Secret,
    page_size: u32,
    profile: Profile,
}

#[derive(Deserialize)]
struct Envelope<T> {
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

#[derive(Deserialize)]
struct CfZone {
    id: String,
    name: String,
}

#[derive(Deserialize, Clone)]
struct CfRecord {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    content: String,
    ttl: u32,
}

/// One stored TXT record as listed: its id, value and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// Cloudflare's record id.
    pub id: String,
    /// The value, parsed from `content`.
    pub value: TxtRecord,
    /// TTL in seconds.
    pub ttl: u32,
}

/// Parses one page of a `dns_records` list (`{"success":true,"result":[…],
/// "result_info":{…}}`): the TXT records and the number of pages. Pure, for the read
/// path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `cloudflare` and `op` when the body is not the
/// documented envelope (a success without `result`), a record is not TXT, or its
/// `content` starts like quoted strings but is not valid quoted text
/// (<https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/list/>).
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<ListedRecord>, u32), Error> {
    let env: Envelope<Vec<CfRecord>> =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let Some(records) = env.result else {
        return Err(super::bad_body(
            KIND,
            op,
            name,
            "no `result` in a success answer",
        ));
    };
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if r.kind != "TXT" {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("a {} record in the answer to a TXT query", r.kind),
            ));
        }
        out.push(ListedRecord {
            value: parse_content(&r.content, name, op)?,
            id: r.id,
            ttl: r.ttl,
        });
    }
    let pages = env.result_info.and_then(|i| i.total_pages).unwrap_or(1);
    Ok((out, pages))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<CfError>,
}

#[derive(Deserialize)]
struct CfError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_chain: Vec<CfError>,
}

/// Codes Cloudflare uses for a refused or missing credential.
const AUTH_CODES: [i64; 5] = [10000, 9106, 9109, 6003, 6103];

/// Extracts Cloudflare's own message(s) from its error envelope.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(f.body) else {
        return crate::http::default_mapper(f);
    };
    let mut parts = Vec::new();
    let mut auth = false;
    for e in &env.errors {
        auth |= AUTH_CODES.contains(&e.code);
        let mut s = format!("{} (code {})", e.message, e.code);
        for c in &e.error_chain {
            auth |= AUTH_CODES.contains(&c.code);
            s.push_str(&format!("; {} (code {})", c.message, c.code));
        }
        parts.push(s);
    }
    let kind = if auth {
        ErrorKind::Auth
    } else if env.errors.iter().any(|e| e.code == 7003 || e.code == 7000) {
        ErrorKind::ZoneNotFound
    } else {
        kind_for_status(f.status)
    };
    let msg = if parts.is_empty() {
        String::from_utf8_lossy(f.body).chars().take(500).collect()
    } else {
        parts.join("; ")
    };
    (kind, msg)
}

impl Cloudflare {
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
        Ok(Cloudflare {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            token: config.token,
            page_size: config.page_size.max(1),
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .bearer_auth(self.token.expose())
    }

    async fn list(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<ListedRecord>, Error> {
        let path = format!("zones/{}/dns_records", zone.id);
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let q = [
                ("type", "TXT".to_string()),
                ("name.exact", name.to_string()),
                ("page", page.to_string()),
                ("per_page", self.page_size.to_string()),
            ];
            let resp = self
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, &path).query(&q)
                })
                .await?;
            let (got, total) = parse_records(&resp.body, name, op)?;
            let n = got.len();
            out.extend(got);
            if page >= total || n == 0 {
                return Ok(out);
            }
            page += 1;
        }
    }

    async fn delete_id(
        &self,
        zone: &Zone,
        name: &Fqdn,
        id: &str,
        op: Operation,
    ) -> Result<(), Error> {
        let path = format!("zones/{}/dns_records/{id}", zone.id);
        match self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::DELETE, &path)
            })
            .await
        {
            Ok(_) => Ok(()),
            // Already gone (81044 "Record does not exist."): the goal is reached.
            Err(e) if e.status == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Parses stored `content`: quoted presentation form, or (as Cloudflare accepts)
/// unquoted text, which it treats as one value. Content that starts with a quote
/// but is not valid quoted strings is refused, not taken literally.
fn parse_content(content: &str, name: &Fqdn, op: Operation) -> Result<TxtRecord, Error> {
    if content.trim_start().starts_with('"') {
        super::parse_quoted(KIND, op, name, content)
    } else {
        Ok(TxtRecord::from_value(content.as_bytes()))
    }
}

#[async_trait::async_trait]
impl Provider for Cloudflare {
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
        for cand in zone_candidates(name) {
            let q = [("name", cand.to_string()), ("per_page", "50".to_string())];
            let resp = self
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, "zones").query(&q)
                })
                .await?;
            let env: Envelope<Vec<CfZone>> = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
            if let Some(z) = env
                .result
                .unwrap_or_default()
                .into_iter()
                .find(|z| Fqdn::parse(&z.name).is_ok_and(|n| n == cand))
            {
                return Ok(Zone {
                    name: cand,
                    id: z.id,
                });
            }
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            "no zone in this account holds the name",
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let recs = self.list(zone, name, Operation::Read).await?;
        let Some(first) = recs.first() else {
            return Ok(None);
        };
        Ok(Some(TxtSet {
            ttl: first.ttl,
            records: recs.iter().map(|r| r.value.clone()).collect(),
        }))
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        let desired = super::check_all(KIND, &self.profile, name, set)?;
        if desired.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        let current = self.list(zone, name, op).await?;
        let diff = super::diff_records(&desired, current.iter(), |rec, d| rec.value == *d);
        let path = format!("zones/{}/dns_records", zone.id);
        for d in diff.create {
            let body = json!({
                "type": "TXT",
                "name": name.to_string(),
                "content": d.to_presentation(),
                "ttl": set.ttl,
            });
            self.http
                .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                    self.req(c, Method::POST, &path).json(&body)
                })
                .await?;
        }
        for rec in diff.keep.iter().filter(|rec| rec.ttl != set.ttl) {
            let p = format!("{path}/{}", rec.id);
            let body = json!({ "ttl": set.ttl });
            self.http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::PATCH, &p).json(&body)
                })
                .await?;
        }
        for rec in diff.delete {
            self.delete_id(zone, name, &rec.id, op).await?;
        }
        Ok(())
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        for rec in self.list(zone, name, op).await? {
            self.delete_id(zone, name, &rec.id, op).await?;
        }
        Ok(())
    }
}

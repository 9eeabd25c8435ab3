//! Azure DNS (public zones, `Microsoft.Network/dnsZones`, api-version 2018-05-01),
//! authenticated as an Entra ID service principal.
//!
//! - Token: `POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`,
//!   form `grant_type=client_credentials`, `client_id`, `client_secret`,
//!   `scope=https://management.azure.com/.default`; the access token is cached
//!   until a minute before it expires
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//! - Every ARM request carries `?api-version=2018-05-01` and `Authorization: Bearer`.
//!   Paths: `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/dnsZones/{zone}`
//!   (zone without a trailing dot); one record set per name and type,
//!   `…/TXT/{relative name}` with `@` for the apex.
//! - Zone: `GET …/dnsZones/{candidate}` walking up the labels (404: try the parent).
//! - Set: `GET …/TXT/{name}` → `{"etag","properties":{"TTL","TXTRecords":[{"value":[…]}]}}`
//!   or 404. Each record's `value` is its character-strings, each at most 255
//!   characters; the REST API does not split, so the adapter sends pre-split strings.
//! - Writes are compare-and-swap on the set's ETag: `PUT …/TXT/{name}` with
//!   `If-Match: <etag>` (or `If-None-Match: *` when the set was absent) and
//!   `DELETE` with `If-Match`; a stale ETag is 412, mapped to
//!   [`ErrorKind::Conflict`]. The adapter never writes without a precondition
//!   (<https://learn.microsoft.com/en-us/azure/dns/dns-zones-records#etags>).
//! - Limits: all strings of a set together at most 4,096 characters, at most 20
//!   records per set (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/azure-subscription-service-limits>);
//!   checked before anything is sent. 429 with `Retry-After` is retried by the
//!   HTTP layer; 409 "another operation is pending" is retried as a server error.
//! - Errors: ARM's `{"error":{"code","message"}}`, the DNS resource provider's
//!   top-level `{"code","message"}`, and the token endpoint's
//!   `{"error","error_description"}`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::changeset::{self, ApplyError, ApplyTraits, Observed, TxtChange, ZoneSets};
use crate::http::{self, Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Required, SettingProblem, Settings};
use crate::{
    Error, ErrorKind, Fqdn, LimitError, Operation, Profile, Provider, Secret, TxtRecord, TxtSet,
    Zone, ZoneProbe, walk_zones, zone_candidates,
};

const KIND: &str = "azure";

/// The registry entry: the client secret is the credential; tenant, client id,
/// subscription and resource group are settings; `base_url` and `token_url`
/// override the endpoints.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/azure.toml"),
    credential: CredentialKind::Secret,
    required: &[
        Required {
            key: "tenant_id",
            example: "\"00000000-0000-0000-0000-000000000000\"",
        },
        Required {
            key: "client_id",
            example: "\"00000000-0000-0000-0000-000000000000\"",
        },
        Required {
            key: "subscription_id",
            example: "\"00000000-0000-0000-0000-000000000000\"",
        },
        Required {
            key: "resource_group",
            example: "\"dns-rg\"",
        },
    ],
    optional: &["base_url", "token_url"],
    check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let need = |v: &Option<String>, key: &str| {
        v.clone().ok_or_else(|| crate::registry::missing(KIND, key))
    };
    let mut cfg = Config::new(
        need(&settings.tenant_id, "tenant_id")?,
        need(&settings.client_id, "client_id")?,
        credential.secret(KIND)?,
        need(&settings.subscription_id, "subscription_id")?,
        need(&settings.resource_group, "resource_group")?,
    );
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    if let Some(url) = &settings.token_url {
        cfg.token_url = Some(url.clone());
    }
    Ok(std::sync::Arc::new(Azure::new(cfg, policy)?))
}

/// Azure Resource Manager in the public cloud.
pub const DEFAULT_BASE_URL: &str = "https://management.azure.com";

/// The API version every request names.
pub const API_VERSION: &str = "2018-05-01";

/// The scope asked for: Azure Resource Manager's `.default`.
pub const SCOPE: &str = "https://management.azure.com/.default";

/// Most characters of all strings of one record set together (public cloud).
pub const MAX_SET_CHARS: usize = 4096;

/// Most records in one record set.
pub const MAX_SET_RECORDS: usize = 20;

/// How to reach one resource group's Azure DNS zones.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory (tenant) id of the service principal.
    pub tenant_id: String,
    /// Application (client) id of the service principal.
    pub client_id: String,
    /// The service principal's client secret.
    pub client_secret: Secret,
    /// Subscription holding the resource group.
    pub subscription_id: String,
    /// Resource group holding the zones.
    pub resource_group: String,
    /// ARM base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Token endpoint; `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token` when `None`.
    pub token_url: Option<String>,
}

impl Config {
    /// A configuration for the public cloud.
    pub fn new(
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
        subscription_id: String,
        resource_group: String,
    ) -> Self {
        Config {
            tenant_id,
            client_id,
            client_secret,
            subscription_id,
            resource_group,
            base_url: DEFAULT_BASE_URL.to_string(),
            token_url: None,
        }
    }
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// The Azure DNS adapter.
pub struct Azure {
    http: HttpClient,
    client_id: String,
    client_secret: Secret,
    zones_path: String,
    token_url: url::Url,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    profile: Profile,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("client_id", &self.client_id)
            .field("zones", &self.zones_path)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

fn config_err(m: impl Into<String>) -> Error {
    Error::new(KIND, Operation::Authenticate, None, ErrorKind::Config, m)
}

/// An Azure resource name segment: letters, digits and `-_.()`, as ARM allows
/// for ids and resource groups; anything else would change the request path.
/// Whether `v` is an identifier Azure accepts in a resource path (`what` names it).
fn identifier(what: &str, v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 90
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{v}' is not an Azure identifier (letters, digits, - _ . ( ), at most 90)"
        ))
    }
}

fn path_segment(what: &str, v: &str) -> Result<(), Error> {
    identifier(what, v).map_err(config_err)
}

/// The token endpoint: `token_url`, else Entra ID's for `tenant_id`; https
/// (plain http only to loopback).
fn token_endpoint(token_url: Option<&str>, tenant_id: &str) -> Result<url::Url, String> {
    let text = token_url.map(str::to_string).unwrap_or_else(|| {
        format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
    });
    let url = url::Url::parse(&text).map_err(|e| format!("bad token URL '{text}': {e}"))?;
    if http::url_allowed(&url) {
        Ok(url)
    } else {
        Err(format!(
            "token URL '{text}' must use https (plain http only to loopback)"
        ))
    }
}

/// The registry's [`crate::registry::Check`]: the identifiers and the token URL.
fn check(settings: &Settings) -> Vec<SettingProblem> {
    let mut out = Vec::new();
    for (key, v) in [
        ("tenant_id", &settings.tenant_id),
        ("client_id", &settings.client_id),
        ("subscription_id", &settings.subscription_id),
        ("resource_group", &settings.resource_group),
    ] {
        if let Some(v) = v
            && let Err(m) = identifier(key, v)
        {
            out.push(SettingProblem::new(key, m));
        }
    }
    if let Some(u) = &settings.token_url
        && let Err(m) = token_endpoint(Some(u), "")
    {
        out.push(SettingProblem::new("token_url", m));
    }
    out
}

impl Azure {
    /// Validates `cfg` and builds the adapter; no request is sent.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the secret is empty, an identifier is not one
    /// Azure accepts, or a URL is not https (plain http only to loopback).
    pub fn new(cfg: Config, policy: RetryPolicy) -> Result<Self, Error> {
        if cfg.client_secret.is_empty() {
            return Err(config_err("the client secret is empty"));
        }
        path_segment("tenant_id", &cfg.tenant_id)?;
        path_segment("client_id", &cfg.client_id)?;
        path_segment("subscription_id", &cfg.subscription_id)?;
        path_segment("resource_group", &cfg.resource_group)?;
        let token_url =
            token_endpoint(cfg.token_url.as_deref(), &cfg.tenant_id).map_err(config_err)?;
        Ok(Azure {
            http: HttpClient::new(KIND, &cfg.base_url, policy, map_error)?,
            client_id: cfg.client_id,
            client_secret: cfg.client_secret,
            zones_path: format!(
                "subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones",
                cfg.subscription_id, cfg.resource_group
            ),
            token_url,
            token: tokio::sync::Mutex::new(None),
            profile: crate::registry::profile(KIND)?,
        })
    }

    /// A valid access token, fetched when none is cached or it expires within a minute.
    async fn access_token(&self) -> Result<Secret, Error> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.token.clone());
        }
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("scope", SCOPE)
            .finish();
        let op = Operation::Authenticate;
        let resp = self
            .http
            .send(op, None, Idempotency::Idempotent, |c| {
                c.post(self.token_url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.clone())
            })
            .await?;
        let t = parse_token(&resp.body)?;
        let lifetime = Duration::from_secs(t.expires_in);
        let token = Secret::new(t.access_token);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(Duration::from_secs(60)),
        });
        Ok(token)
    }

    /// One ARM request under the resource group's `dnsZones`, with the
    /// api-version and the bearer token; `headers` are the preconditions.
    async fn call(
        &self,
        op: Operation,
        name: &Fqdn,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<http::Response, Error> {
        let token = self.access_token().await?;
        let path = format!("{}/{path}", self.zones_path);
        // PUT and DELETE of one whole set are idempotent (RFC 9110 §9.2.2); with a
        // precondition a repeat after a lost answer fails with 412, which the
        // caller resolves by reading again.
        self.http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                let mut req = self
                    .http
                    .request(c, method.clone(), &path)
                    .query(&[("api-version", API_VERSION)])
                    .bearer_auth(token.expose());
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                req
            })
            .await
    }

    fn set_path(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
        let rel = name.relative_to(&zone.name).ok_or_else(|| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Config,
                format!("the name is outside zone {}", zone.name),
            )
        })?;
        Ok(format!("{}/TXT/{rel}", zone.id))
    }

    /// The set at `name` and its ETag, or `None` (404).
    async fn get(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Option<(TxtSet, String)>, Error> {
        let path = Self::set_path(zone, name, op)?;
        match self.call(op, name, Method::GET, &path, &[], None).await {
            Ok(r) => parse_record_set(&r.body, name, op).map(Some),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks a wanted set against the host's limits (every record, the set's
    /// total characters and record count) and returns its records shaped to
    /// 255-character strings.
    fn check(&self, name: &Fqdn, set: &TxtSet) -> Result<Vec<TxtRecord>, Error> {
        let records = super::check_all(KIND, &self.profile, name, set)?;
        check_set_limits(name, &records)?;
        Ok(records)
    }

    /// Writes one change with the precondition its observation gives:
    /// `If-Match: <etag>` when the set was read present, `If-None-Match: *` when
    /// it was read absent. 412 is [`ErrorKind::Conflict`].
    async fn write_conditional(
        &self,
        zone: &Zone,
        name: &Fqdn,
        etag: Option<&str>,
        wanted: Option<(u32, &[TxtRecord])>,
    ) -> Result<(), Error> {
        let op = if wanted.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        let path = Self::set_path(zone, name, op)?;
        let pre: [(&str, &str); 1] = match etag {
            Some(e) => [("if-match", e)],
            None => [("if-none-match", "*")],
        };
        match wanted {
            Some((ttl, records)) => {
                let body = record_set_body(ttl, records);
                self.call(op, name, Method::PUT, &path, &pre, Some(&body))
                    .await
                    .map(drop)
            }
            // Absent as read and absent wanted: nothing to delete.
            None if etag.is_none() => Ok(()),
            None => self
                .call(op, name, Method::DELETE, &path, &pre, None)
                .await
                .map(drop),
        }
    }

    /// Makes the set at `name` `wanted` (deleting it when `None`): reads it with
    /// its ETag, writes conditionally, and on a 412 reads again and retries once.
    async fn put_latest(
        &self,
        zone: &Zone,
        name: &Fqdn,
        wanted: Option<(u32, &[TxtRecord])>,
        op: Operation,
    ) -> Result<(), Error> {
        let mut retried = false;
        loop {
            let current = self.get(zone, name, op).await?;
            if let (Some((cur, _)), Some((ttl, records))) = (&current, wanted)
                && cur.ttl == ttl
                && cur.records == records
            {
                return Ok(());
            }
            if current.is_none() && wanted.is_none() {
                return Ok(());
            }
            let etag = current.as_ref().map(|(_, e)| e.as_str());
            match self.write_conditional(zone, name, etag, wanted).await {
                Err(e) if e.kind == ErrorKind::Conflict && !retried => {
                    tracing::debug!(provider = KIND, %name, "set changed since read ({e}); reading again");
                    retried = true;
                }
                other => return other,
            }
        }
    }
}

/// The body of a record-set PUT: the TTL and each record's strings.
fn record_set_body(ttl: u32, records: &[TxtRecord]) -> serde_json::Value {
    let txt: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let strings: Vec<String> = r
                .strings()
                .iter()
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                .collect();
            json!({ "value": strings })
        })
        .collect();
    json!({"properties": {"TTL": ttl, "TXTRecords": txt}})
}

/// Refuses a set Azure would refuse: more than [`MAX_SET_RECORDS`] records, or
/// more than [`MAX_SET_CHARS`] characters in all its strings together.
fn check_set_limits(name: &Fqdn, records: &[TxtRecord]) -> Result<(), Error> {
    let total: usize = records.iter().map(TxtRecord::value_len).sum();
    let limit = |l: LimitError, m: String| {
        Error::new(KIND, Operation::Replace, Some(name), ErrorKind::Limit(l), m)
    };
    if total > MAX_SET_CHARS {
        return Err(limit(
            LimitError::ValueTooLong {
                len: total,
                max: MAX_SET_CHARS,
            },
            format!(
                "refused before sending: the TXT record set holds {total} characters in all; Azure DNS takes at most {MAX_SET_CHARS} per record set"
            ),
        ));
    }
    if records.len() > MAX_SET_RECORDS {
        return Err(Error::new(
            KIND,
            Operation::Replace,
            Some(name),
            ErrorKind::Invalid,
            format!(
                "refused before sending: {} TXT records at one name; Azure DNS takes at most {MAX_SET_RECORDS} per record set",
                records.len()
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: u64,
}

/// Parses the token endpoint's answer `{"token_type":"Bearer","expires_in":3599,"access_token":"…"}`.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not that shape or the token is not a
/// bearer token; the message never quotes the body (it holds the token).
fn parse_token(body: &[u8]) -> Result<TokenResponse, Error> {
    let proto = |m: &str| {
        Error::new(
            KIND,
            Operation::Authenticate,
            None,
            ErrorKind::Protocol,
            format!("unexpected token endpoint answer: {m}"),
        )
    };
    let t: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        // serde_json names line, column and the expected shape; its "invalid
        // type"/"invalid value" messages also quote the value found (a token
        // where a number was expected, say), so those are told without it.
        let m = e.to_string();
        if m.starts_with("invalid type") || m.starts_with("invalid value") {
            proto(&format!(
                "a value of the wrong type or form at line {} column {}",
                e.line(),
                e.column()
            ))
        } else {
            proto(&m)
        }
    })?;
    if t.access_token.is_empty() {
        return Err(proto("empty access_token"));
    }
    if t.token_type
        .as_deref()
        .is_some_and(|k| !k.eq_ignore_ascii_case("bearer"))
    {
        return Err(proto("token_type is not Bearer"));
    }
    Ok(t)
}

/// The module's private parsers, for the fuzz target `host_azure_token` and
/// the answer-parser property tests only: hidden from the documentation and
/// not part of the API (they may change without notice).
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a token endpoint answer exactly as the adapter does; on success
    /// the token's `expires_in`, in seconds (the token itself never leaves the
    /// parser).
    ///
    /// # Errors
    /// As the adapter's parser: [`crate::ErrorKind::Protocol`] for an answer
    /// that is not the documented shape, an empty token or a token type other
    /// than Bearer; the message never quotes the body.
    pub fn parse_token(body: &[u8]) -> Result<u64, crate::Error> {
        super::parse_token(body).map(|t| t.expires_in)
    }
}

#[derive(Deserialize)]
struct RecordSet {
    etag: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    properties: RecordSetProperties,
}

#[derive(Deserialize)]
struct RecordSetProperties {
    #[serde(rename = "TTL")]
    ttl: u32,
    #[serde(rename = "TXTRecords", default)]
    txt_records: Option<Vec<TxtRecordBody>>,
}

#[derive(Deserialize)]
struct TxtRecordBody {
    value: Vec<String>,
}

/// Parses one TXT record set (`GET …/TXT/{name}` or a PUT's answer): its TTL,
/// records (each `value` array is one record's character-strings, kept as
/// split) and ETag. Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `azure`, `op` and `name` when the body is not
/// the documented shape: no `etag`, no `properties.TTL`, a `type` other than TXT,
/// a record without `value`, or a string over 255 bytes
/// (<https://learn.microsoft.com/en-us/rest/api/dns/record-sets/get>).
pub fn parse_record_set(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(TxtSet, String), Error> {
    let rs: RecordSet =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    if let Some(k) = &rs.kind
        && !k.eq_ignore_ascii_case("Microsoft.Network/dnszones/TXT")
    {
        return Err(super::bad_body(
            KIND,
            op,
            name,
            format!("record set type {k:?} is not TXT"),
        ));
    }
    if rs.etag.is_empty() {
        return Err(super::bad_body(KIND, op, name, "empty etag"));
    }
    let mut records = Vec::new();
    for r in rs.properties.txt_records.unwrap_or_default() {
        let record = TxtRecord::from_parts(&r.value).map_err(|e| {
            super::bad_body(KIND, op, name, format!("a TXT string is too long: {e}"))
        })?;
        records.push(record);
    }
    Ok((
        TxtSet {
            ttl: rs.properties.ttl,
            records,
        },
        rs.etag,
    ))
}

#[async_trait::async_trait]
impl Provider for Azure {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: false,
            compare_and_swap: true,
            ..ApplyTraits::default()
        }
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        walk_zones(
            KIND,
            name,
            zone_candidates(name),
            "no DNS zone in this subscription's resource group holds the name",
            |cand| async move {
                let r = self
                    .call(op, name, Method::GET, cand.as_str(), &[], None)
                    .await
                    .and_then(|r| {
                        let z: ZoneBody = r.json(KIND, op).map_err(|e| e.with_name(name))?;
                        if !z
                            .name
                            .trim_end_matches('.')
                            .eq_ignore_ascii_case(cand.as_str())
                        {
                            return Err(super::bad_body(
                                KIND,
                                op,
                                name,
                                format!("asked for zone {cand}, the answer names {}", z.name),
                            ));
                        }
                        Ok(cand.to_string())
                    });
                ZoneProbe::found_unless(r, |e| e.status == Some(404))
            },
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(self
            .get(zone, name, Operation::Read)
            .await?
            .map(|(set, _)| set)
            .filter(|s| !s.records.is_empty()))
    }

    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        // One GET per set (2,000 gets/min per zone) rather than the TXT listing
        // (60 lists/min): each answer carries the set's own ETag.
        let mut out = ZoneSets::new();
        for name in names {
            if out.contains_key(name) {
                continue;
            }
            let obs = match self.get(zone, name, Operation::Read).await? {
                Some((set, etag)) => Observed {
                    set: (!set.records.is_empty()).then_some(set),
                    version: Some(etag),
                },
                None => Observed::of(None),
            };
            out.insert(name.clone(), obs);
        }
        Ok(out)
    }

    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let mut shaped = Vec::with_capacity(changes.len());
        for c in changes {
            let records = match c.wanted() {
                Some(set) => Some(
                    self.check(&c.name, set)
                        .map_err(ApplyError::nothing_written)?,
                ),
                None => None,
            };
            shaped.push(records);
        }
        let mut written = Vec::new();
        for (c, records) in changes.iter().zip(&shaped) {
            let wanted = c.wanted().zip(records.as_deref()).map(|(s, r)| (s.ttl, r));
            if let Err(error) = self.apply_one(zone, c, wanted).await {
                return Err(ApplyError { written, error });
            }
            written.push(c.name.clone());
        }
        Ok(())
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let records = match change.wanted() {
            Some(set) => Some(self.check(&change.name, set)?),
            None => None,
        };
        let wanted = change
            .wanted()
            .zip(records.as_deref())
            .map(|(s, r)| (s.ttl, r));
        self.apply_one(zone, change, wanted).await
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        let records = self.check(name, set)?;
        if records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        self.put_latest(zone, name, Some((set.ttl, &records)), op)
            .await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.put_latest(zone, name, None, Operation::Delete).await
    }
}

impl Azure {
    /// One change under its observation's precondition. An observation without
    /// an ETag (a caller that read with [`Provider::read_txt`]) is checked by
    /// reading the set again: a different content is a conflict, the same gives
    /// the ETag to write under.
    async fn apply_one(
        &self,
        zone: &Zone,
        change: &TxtChange,
        wanted: Option<(u32, &[TxtRecord])>,
    ) -> Result<(), Error> {
        let etag = match (&change.old.version, &change.old.set) {
            (Some(e), _) => Some(e.clone()),
            (None, None) => None,
            (None, Some(_)) => match self.current_etag(zone, change).await? {
                Some(Current::Etag(e)) => Some(e),
                Some(Current::AlreadyWanted) => return Ok(()),
                None => None,
            },
        };
        match self
            .write_conditional(zone, &change.name, etag.as_deref(), wanted)
            .await
        {
            // The set is no longer what was read: already what is wanted (this
            // change set applied before) is success, anything else the conflict.
            Err(e) if e.kind == ErrorKind::Conflict => {
                let now = self.get(zone, &change.name, change.operation()).await?;
                let now = now.map(|(s, _)| s).filter(|s| !s.records.is_empty());
                if changeset::same_content(change.wanted(), now.as_ref()) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// The ETag of the set now at the change's name when it still holds what
    /// the change read ([`Current::AlreadyWanted`] when it already holds what
    /// the change wants); [`ErrorKind::Conflict`] otherwise.
    async fn current_etag(
        &self,
        zone: &Zone,
        change: &TxtChange,
    ) -> Result<Option<Current>, Error> {
        let op = change.operation();
        let now = self.get(zone, &change.name, op).await?;
        let set = now
            .as_ref()
            .map(|(s, _)| s)
            .filter(|s| !s.records.is_empty());
        if !change.old.unchanged_in(set) {
            if changeset::same_content(change.wanted(), set) {
                return Ok(Some(Current::AlreadyWanted));
            }
            return Err(changeset::conflict(
                KIND,
                op,
                &change.name,
                "the TXT record set changed since it was read",
            ));
        }
        Ok(now.map(|(_, e)| Current::Etag(e)))
    }
}

/// What a fresh read of a change's set found.
enum Current {
    /// Still what was read: write under this ETag.
    Etag(String),
    /// Already what the change wants: nothing to write.
    AlreadyWanted,
}

#[derive(Deserialize)]
struct ZoneBody {
    name: String,
}

#[derive(Deserialize)]
struct ArmError {
    #[serde(default)]
    error: Option<ArmErrorField>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ArmErrorField {
    Arm {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    },
    OAuth(String),
}

fn kind_for_code(code: &str, status: u16) -> Option<ErrorKind> {
    Some(match code {
        "InvalidAuthenticationToken"
        | "InvalidAuthenticationTokenAudience"
        | "InvalidAuthenticationTokenTenant"
        | "ExpiredAuthenticationToken"
        | "AuthenticationFailed"
        | "invalid_client"
        | "unauthorized_client"
        | "invalid_grant" => ErrorKind::Auth,
        "AuthorizationFailed" | "LinkedAuthorizationFailed" => ErrorKind::Permission,
        "PreconditionFailed" => ErrorKind::Conflict,
        // "Another operation is pending for requested object": retried.
        "Conflict" if status == 409 => ErrorKind::Server,
        "TooManyRequests" | "SubscriptionRequestsThrottled" => ErrorKind::RateLimited,
        "ResourceGroupNotFound"
        | "SubscriptionNotFound"
        | "NotFound"
        | "ResourceNotFound"
        | "ParentResourceNotFound" => ErrorKind::ZoneNotFound,
        "BadRequest"
        | "InvalidApiVersionParameter"
        | "InvalidRequestContent"
        | "InvalidResourceName" => ErrorKind::Invalid,
        _ => return None,
    })
}

/// Maps Azure's three error envelopes: ARM's `{"error":{"code","message"}}`, the
/// DNS resource provider's `{"code","message"}`, and the token endpoint's
/// `{"error":"invalid_client","error_description":"AADSTS…"}`.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let status = f.status.as_u16();
    let Ok(e) = serde_json::from_slice::<ArmError>(f.body) else {
        return http::default_mapper(f);
    };
    let (code, message) = match (e.error, e.code) {
        (Some(ArmErrorField::Arm { code, message }), _) => (code, message),
        (Some(ArmErrorField::OAuth(code)), _) => {
            // The description's first line: "AADSTS7000215: Invalid client secret provided. …".
            let desc = e.error_description.unwrap_or_default();
            let first = desc.split(['\r', '\n']).next().unwrap_or("").to_string();
            (code, first)
        }
        (None, Some(code)) => (code, e.message.unwrap_or_default()),
        (None, None) => return http::default_mapper(f),
    };
    let kind = kind_for_code(&code, status).unwrap_or_else(|| match status {
        // 409 without a known code: still "operation pending", retried.
        409 => ErrorKind::Server,
        _ => kind_for_status(f.status),
    });
    (kind, format!("{code}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Fqdn {
        Fqdn::parse(s).unwrap()
    }

    #[test]
    fn record_set_keeps_strings_and_etag() {
        let body = br#"{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/dnszones/example.com/TXT/_dmarc",
            "name":"_dmarc","type":"Microsoft.Network/dnszones/TXT","etag":"7f3c1e7a-0000-0000-0000-000000000000",
            "properties":{"TTL":3600,"fqdn":"_dmarc.example.com.","provisioningState":"Succeeded",
            "TXTRecords":[{"value":["part-one","part-two"]},{"value":["v=spf1 mx -all"]}]}}"#;
        let (set, etag) =
            parse_record_set(body, &n("_dmarc.example.com"), Operation::Read).unwrap();
        assert_eq!(etag, "7f3c1e7a-0000-0000-0000-000000000000");
        assert_eq!(set.ttl, 3600);
        assert_eq!(
            set.records,
            vec![
                TxtRecord::from_parts(&["part-one", "part-two"]).unwrap(),
                TxtRecord::from_value("v=spf1 mx -all")
            ]
        );
    }

    #[test]
    fn record_set_out_of_shape_is_a_protocol_error() {
        let name = n("x.example.com");
        for body in [
            &br#"{"properties":{"TTL":1,"TXTRecords":[]}}"#[..],
            br#"{"etag":"e","properties":{"TXTRecords":[]}}"#,
            br#"{"etag":"e","type":"Microsoft.Network/dnszones/A","properties":{"TTL":1}}"#,
            br#"{"etag":"e","properties":{"TTL":1,"TXTRecords":[{"val":["a"]}]}}"#,
            br#"[]"#,
        ] {
            let e = parse_record_set(body, &name, Operation::Read).unwrap_err();
            assert_eq!(
                e.kind,
                ErrorKind::Protocol,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!((e.provider, e.operation), (KIND, Operation::Read));
        }
        let long = format!(
            r#"{{"etag":"e","properties":{{"TTL":1,"TXTRecords":[{{"value":["{}"]}}]}}}}"#,
            "a".repeat(256)
        );
        let e = parse_record_set(long.as_bytes(), &name, Operation::Read).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
    }

    #[test]
    fn set_limits_count_every_string_of_every_record() {
        let name = n("x.example.com");
        let r = TxtRecord::from_value(vec![b'a'; 2000]);
        assert!(check_set_limits(&name, &[r.clone(), r.clone()]).is_ok());
        let e = check_set_limits(
            &name,
            &[r.clone(), r.clone(), TxtRecord::from_value(vec![b'b'; 97])],
        )
        .unwrap_err();
        assert!(matches!(
            e.kind,
            ErrorKind::Limit(LimitError::ValueTooLong {
                len: 4097,
                max: 4096
            })
        ));
        let many: Vec<TxtRecord> = (0..21)
            .map(|i| TxtRecord::from_value(format!("v{i}")))
            .collect();
        assert_eq!(
            check_set_limits(&name, &many).unwrap_err().kind,
            ErrorKind::Invalid
        );
    }

    fn failure(status: u16, body: &str) -> (ErrorKind, String) {
        let headers = reqwest::header::HeaderMap::new();
        map_error(&Failure {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: &headers,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn errors_in_each_envelope() {
        assert_eq!(
            failure(412, r#"{"code":"PreconditionFailed","message":"The condition '7f3c' in the If-Match header was not satisfied."}"#),
            (
                ErrorKind::Conflict,
                "PreconditionFailed: The condition '7f3c' in the If-Match header was not satisfied.".into()
            )
        );
        assert_eq!(
            failure(401, r#"{"error":{"code":"InvalidAuthenticationTokenAudience","message":"The access token has been obtained for wrong audience or resource."}}"#).0,
            ErrorKind::Auth
        );
        assert_eq!(
            failure(
                403,
                r#"{"error":{"code":"AuthorizationFailed","message":"no"}}"#
            )
            .0,
            ErrorKind::Permission
        );
        let (k, m) = failure(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1","error_codes":[7000215]}"#,
        );
        assert_eq!(k, ErrorKind::Auth);
        assert_eq!(
            m,
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            failure(409, r#"{"code":"Conflict","message":"Another operation is pending for requested object"}"#).0,
            ErrorKind::Server
        );
        assert_eq!(failure(429, "{}").0, ErrorKind::RateLimited);
    }
}

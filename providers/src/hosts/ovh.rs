//! OVHcloud (API v1, `/domain/zone`): record-level, one id per value; writes are
//! staged until the zone is refreshed.
//!
//! - Auth: every request is signed: `X-Ovh-Application` (application key),
//!   `X-Ovh-Consumer` (consumer key), `X-Ovh-Timestamp` (the API's clock, from the
//!   unauthenticated `GET /auth/time`, kept as a delta) and `X-Ovh-Signature`:
//!   `$1$` + hex SHA-1 of `AS+CK+METHOD+URL+BODY+TIMESTAMP`, where URL is the full
//!   URL with its query string and BODY the exact bytes sent
//!   (<https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api>).
//! - Zone: `GET /domain/zone` (all zone names of the account), longest suffix.
//! - Values: OVH stores SPF, DKIM and DMARC records made with its control panel's
//!   assistants as their own field types (`SPF`, `DKIM`, `DMARC`), served as TXT.
//!   Reading only `TXT` misses an existing SPF record and publishes a second one,
//!   so every read lists all four (`GET …/record?fieldType=&subDomain=` → ids, then
//!   `GET …/record/{id}` per id) and treats them as one TXT RRset.
//! - A record keeps its field type: a changed value of a typed record is written
//!   in place (`PUT …/record/{id}` without `fieldType`, which OVH refuses to alter);
//!   new values are created as plain `TXT` (`POST …/record`).
//! - `target` is one string: quoted for TXT and SPF, unquoted for DKIM and DMARC
//!   (OVH answers 400 "Invalid subfield found in DMARC" to a quoted one). On read a
//!   quoted target is unquoted; the value's string boundaries are OVH's (it splits
//!   long values itself), so `"` and `\` are refused before sending: how OVH
//!   escapes them is not documented.
//! - Writes end with `POST /domain/zone/{zone}/refresh`, which publishes the
//!   staged changes. The zone-wide `import` and `reset` endpoints are never used.
//! - Errors: `{"errorCode":"INVALID_SIGNATURE","httpCode":"400 Bad Request","message":"…"}`
//!   or `{"class":"Client::NotFound","message":"…"}`, with an `X-Ovh-Queryid` header.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use sha1::{Digest, Sha1};

use super::check_all;
use crate::changeset::{ApplyError, TxtChange};
use crate::http::{Failure, HttpClient, Idempotency, Response, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Required, SettingProblem, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
    zone_candidates,
};

const KIND: &str = "ovh";

/// The registry entry: the secret is `APPLICATION_SECRET:CONSUMER_KEY`; the
/// application key and the endpoint (`ovh-eu`, `ovh-ca`, `ovh-us`) are settings;
/// `base_url` overrides the endpoint.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/ovh.toml"),
    credential: CredentialKind::Secret,
    required: &[Required {
        key: "application_key",
        example: "\"your-application-key\"",
    }],
    optional: &["endpoint", "base_url"],
    check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let key = settings
        .application_key
        .clone()
        .ok_or_else(|| crate::registry::missing(KIND, "application_key"))?;
    let mut cfg = Config::new(key, &credential.secret(KIND)?)?;
    if let Some(ep) = &settings.endpoint {
        cfg.base_url = endpoint_url(ep)?.to_string();
    }
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    Ok(std::sync::Arc::new(Ovh::new(cfg, policy)?))
}

/// The European endpoint (`ovh-eu`), the default.
pub const DEFAULT_BASE_URL: &str = "https://eu.api.ovh.com/1.0";

/// The API base URL of an endpoint name (`ovh-eu`, `ovh-ca`, `ovh-us`, as the
/// OVH SDKs name them).
///
/// # Errors
/// [`ErrorKind::Config`] for another name.
pub fn endpoint_url(name: &str) -> Result<&'static str, Error> {
    endpoint_base(name).map_err(config_error)
}

fn endpoint_base(name: &str) -> Result<&'static str, String> {
    match name {
        "ovh-eu" => Ok(DEFAULT_BASE_URL),
        "ovh-ca" => Ok("https://ca.api.ovh.com/1.0"),
        "ovh-us" => Ok("https://api.us.ovhcloud.com/1.0"),
        other => Err(format!(
            "unknown endpoint '{other}': use ovh-eu, ovh-ca or ovh-us (or base_url)"
        )),
    }
}

/// The registry's [`crate::registry::Check`]: the application key and the endpoint name.
fn check(settings: &Settings) -> Vec<SettingProblem> {
    let mut out = Vec::new();
    if let Some(k) = &settings.application_key
        && k.trim().is_empty()
    {
        out.push(SettingProblem::new("application_key", "is empty"));
    }
    if let Some(e) = &settings.endpoint
        && let Err(m) = endpoint_base(e)
    {
        out.push(SettingProblem::new("endpoint", m));
    }
    out
}

fn config_error(message: String) -> Error {
    Error::new(
        KIND,
        Operation::Authenticate,
        None,
        ErrorKind::Config,
        message,
    )
}

/// Account settings for OVHcloud.
#[derive(Debug, Clone)]
pub struct Config {
    /// Application key (AK), not secret.
    pub application_key: String,
    /// Application secret (AS).
    pub application_secret: Secret,
    /// Consumer key (CK) validated for `GET/POST/PUT/DELETE /domain/zone/*`.
    pub consumer_key: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless another endpoint or testing.
    pub base_url: String,
}

impl Config {
    /// A config for the European endpoint from the application key and the
    /// account's secret `APPLICATION_SECRET:CONSUMER_KEY`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the secret is not two non-empty parts joined by
    /// `:` (the message never quotes it) or the application key is empty.
    pub fn new(application_key: String, secret: &Secret) -> Result<Config, Error> {
        let (as_, ck) = secret
            .expose()
            .trim()
            .split_once(':')
            .filter(|(a, c)| !a.is_empty() && !c.is_empty())
            .ok_or_else(|| {
                config_error(
                    "the secret must be APPLICATION_SECRET:CONSUMER_KEY (two parts joined by ':')"
                        .to_string(),
                )
            })?;
        if application_key.trim().is_empty() {
            return Err(config_error("the application_key is empty".to_string()));
        }
        Ok(Config {
            application_key: application_key.trim().to_string(),
            application_secret: Secret::new(as_),
            consumer_key: Secret::new(ck),
            base_url: DEFAULT_BASE_URL.to_string(),
        })
    }
}

/// The OVHcloud adapter.
#[derive(Debug)]
pub struct Ovh {
    http: HttpClient,
    application_key: String,
    application_secret: Secret,
    consumer_key: Secret,
    /// The API clock minus ours, in seconds, once asked.
    delta: Mutex<Option<i64>>,
    profile: Profile,
}

/// The field types OVH serves as TXT, all read as one RRset.
pub const FIELD_TYPES: [FieldType; 4] = [
    FieldType::Txt,
    FieldType::Spf,
    FieldType::Dkim,
    FieldType::Dmarc,
];

/// An OVH field type served as TXT (`zone.NamedResolutionFieldTypeEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Plain TXT.
    Txt,
    /// OVH's SPF type.
    Spf,
    /// OVH's DKIM type.
    Dkim,
    /// OVH's DMARC type.
    Dmarc,
}

impl FieldType {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Txt => "TXT",
            FieldType::Spf => "SPF",
            FieldType::Dkim => "DKIM",
            FieldType::Dmarc => "DMARC",
        }
    }

    fn parse(s: &str) -> Option<FieldType> {
        FIELD_TYPES.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether a record of this type may hold `value` (a typed record only holds
    /// its own kind of value; TXT holds anything).
    fn holds(self, value: &[u8]) -> bool {
        let starts = |p: &[u8]| value.len() >= p.len() && value[..p.len()].eq_ignore_ascii_case(p);
        match self {
            FieldType::Txt => true,
            FieldType::Spf => starts(b"v=spf1"),
            FieldType::Dkim => starts(b"v=DKIM1"),
            FieldType::Dmarc => starts(b"v=DMARC1"),
        }
    }

    /// `target` for `value`: quoted for TXT and SPF, bare for DKIM and DMARC.
    /// (`"` and `\` never reach here: the profile refuses them.)
    pub fn target(self, value: &[u8]) -> String {
        let v = String::from_utf8_lossy(value);
        match self {
            FieldType::Txt | FieldType::Spf => format!("\"{v}\""),
            FieldType::Dkim | FieldType::Dmarc => v.into_owned(),
        }
    }
}

/// One record as `GET /domain/zone/{zone}/record/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvhRecord {
    /// OVH's record id.
    pub id: u64,
    /// Its field type.
    pub field_type: FieldType,
    /// Name relative to the zone (`""` for the apex).
    pub sub_domain: String,
    /// The value, unquoted and joined.
    pub value: Vec<u8>,
    /// TTL in seconds (`0`: the zone's default).
    pub ttl: u32,
}

#[derive(Deserialize)]
struct ErrBody {
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    message: String,
}

/// Extracts OVH's error (`errorCode` or `class`, and `message`) and its query id.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let qid = f
        .headers
        .get("x-ovh-queryid")
        .and_then(|v| v.to_str().ok())
        .map(|q| format!(", query id {q}"))
        .unwrap_or_default();
    match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if !b.message.is_empty() => {
            let kind = match (b.error_code.as_deref(), b.class.as_deref()) {
                (
                    Some(
                        "INVALID_SIGNATURE" | "INVALID_CREDENTIAL" | "INVALID_KEY"
                        | "NOT_CREDENTIAL",
                    ),
                    _,
                ) => ErrorKind::Auth,
                (Some("NOT_GRANTED_CALL"), _) => ErrorKind::Permission,
                (Some("QUERY_TIME_OUT"), _) => ErrorKind::Auth,
                (_, Some("Client::Unauthorized")) => ErrorKind::Auth,
                (_, Some("Client::Forbidden")) => ErrorKind::Permission,
                (_, Some("Client::NotFound")) => ErrorKind::ZoneNotFound,
                (_, Some("Client::BadRequest")) => ErrorKind::Invalid,
                (_, Some("Client::TooManyRequests")) => ErrorKind::RateLimited,
                (_, Some(c)) if c.starts_with("Server::") => ErrorKind::Server,
                _ => kind_for_status(f.status),
            };
            let code = b.error_code.or(b.class).unwrap_or_default();
            let code = if code.is_empty() {
                String::new()
            } else {
                format!(" ({code}{qid})")
            };
            (kind, format!("{}{code}", b.message))
        }
        _ => crate::http::default_mapper(f),
    }
}

/// The signature OVH checks: `$1$` + hex SHA-1 of
/// `secret+consumer+METHOD+url+body+timestamp`.
pub fn signature(
    application_secret: &str,
    consumer_key: &str,
    method: &str,
    url: &str,
    body: &str,
    timestamp: i64,
) -> String {
    let mut h = Sha1::new();
    h.update(format!(
        "{application_secret}+{consumer_key}+{method}+{url}+{body}+{timestamp}"
    ));
    let digest = h.finalize();
    let mut out = String::with_capacity(43);
    out.push_str("$1$");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Parses `GET /auth/time`: the API's clock, in Unix seconds.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not one integer.
pub fn parse_time(body: &[u8], op: Operation) -> Result<i64, Error> {
    serde_json::from_slice::<i64>(body).map_err(|e| {
        Error::new(
            KIND,
            op,
            None,
            ErrorKind::Protocol,
            format!("unexpected /auth/time answer: {e}"),
        )
    })
}

/// Parses `GET /domain/zone`: the account's zone names.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `name` when the body is not an array of strings.
pub fn parse_zones(body: &[u8], name: &Fqdn, op: Operation) -> Result<Vec<String>, Error> {
    serde_json::from_slice::<Vec<String>>(body).map_err(|e| super::bad_body(KIND, op, name, e))
}

/// Parses a record list (`GET …/record?…`): the ids.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not an array of integers.
pub fn parse_ids(body: &[u8], name: &Fqdn, op: Operation) -> Result<Vec<u64>, Error> {
    serde_json::from_slice::<Vec<u64>>(body).map_err(|e| super::bad_body(KIND, op, name, e))
}

#[derive(Deserialize)]
struct RawRecord {
    id: u64,
    zone: String,
    #[serde(rename = "subDomain")]
    sub_domain: String,
    #[serde(rename = "fieldType")]
    field_type: String,
    target: String,
    ttl: u32,
}

/// Parses one record (`GET …/record/{id}`) of zone `zone`, asked for as one of
/// the TXT-like field types.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body lacks `id`, `zone`, `subDomain`,
/// `fieldType`, `target` or `ttl`, names another zone, has a field type other than
/// TXT/SPF/DKIM/DMARC, or a quoted target that does not parse.
pub fn parse_record(
    body: &[u8],
    zone: &Fqdn,
    name: &Fqdn,
    op: Operation,
) -> Result<OvhRecord, Error> {
    let r: RawRecord =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    if !r
        .zone
        .trim_end_matches('.')
        .eq_ignore_ascii_case(zone.as_str())
    {
        return Err(super::bad_body(
            KIND,
            op,
            name,
            format!("record {} belongs to zone '{}', not {zone}", r.id, r.zone),
        ));
    }
    let field_type = FieldType::parse(&r.field_type).ok_or_else(|| {
        super::bad_body(
            KIND,
            op,
            name,
            format!("a {} record in the answer to a TXT query", r.field_type),
        )
    })?;
    let value = target_value(&r.target).map_err(|e| {
        Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Protocol,
            format!("target {:?} of record {}: {e}", r.target, r.id),
        )
    })?;
    Ok(OvhRecord {
        id: r.id,
        field_type,
        sub_domain: r.sub_domain,
        value,
        ttl: r.ttl,
    })
}

/// The value a `target` holds: a quoted target (`"a" "b"`, as OVH's control panel
/// stores TXT and SPF) is unquoted and its strings joined; an unquoted one (DKIM,
/// DMARC, or TXT written unquoted by other tools) is the value itself.
///
/// # Errors
/// A quoted target with an unterminated string, a dangling escape, or text
/// between its strings.
pub fn target_value(target: &str) -> Result<Vec<u8>, String> {
    let b = target.as_bytes();
    if b.first() != Some(&b'"') {
        return Ok(b.to_vec());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                i += 1;
                loop {
                    let c = *b.get(i).ok_or("unterminated quoted string")?;
                    match c {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let n = *b.get(i + 1).ok_or("dangling backslash")?;
                            if n.is_ascii_digit() {
                                let d = b
                                    .get(i + 1..i + 4)
                                    .and_then(|d| std::str::from_utf8(d).ok())
                                    .and_then(|d| d.parse::<u8>().ok())
                                    .ok_or("bad \\DDD escape")?;
                                out.push(d);
                                i += 4;
                            } else {
                                out.push(n);
                                i += 2;
                            }
                        }
                        _ => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
            }
            c => return Err(format!("byte {:?} outside the quoted strings", c as char)),
        }
    }
    Ok(out)
}

/// One request of the API, before signing.
struct Call<'a> {
    method: Method,
    /// Path relative to the base URL.
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a serde_json::Value>,
    idempotency: Idempotency,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The name relative to the zone, as OVH writes it (`""` for the apex).
fn sub_domain(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    match name.relative_to(&zone.name) {
        Some(r) if r == "@" => Ok(String::new()),
        Some(r) => Ok(r),
        None => Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Config,
            format!("the name is outside zone {}", zone.name),
        )),
    }
}

fn set_of(records: &[OvhRecord]) -> Option<TxtSet> {
    let first = records.first()?;
    Some(TxtSet {
        ttl: first.ttl,
        records: records
            .iter()
            .map(|r| TxtRecord::from_value(&r.value))
            .collect(),
    })
}

impl Ovh {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the base URL is not https (plain http only to
    /// loopback) or a credential part is empty.
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        if config.application_secret.is_empty() || config.consumer_key.is_empty() {
            return Err(config_error(
                "the application secret or consumer key is empty".to_string(),
            ));
        }
        Ok(Ovh {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            application_key: config.application_key,
            application_secret: config.application_secret,
            consumer_key: config.consumer_key,
            delta: Mutex::new(None),
            profile: crate::registry::profile(KIND)?,
        })
    }

    /// The API clock minus ours, asked once (`GET /auth/time`, unauthenticated).
    async fn delta(&self, op: Operation, name: Option<&Fqdn>) -> Result<i64, Error> {
        if let Some(d) = self.delta.lock().ok().and_then(|g| *g) {
            return Ok(d);
        }
        let resp = self
            .http
            .send(op, name, Idempotency::Idempotent, |c| {
                self.http.request(c, Method::GET, "auth/time")
            })
            .await?;
        let d = parse_time(&resp.body, op)? - now_secs();
        if let Ok(mut g) = self.delta.lock() {
            *g = Some(d);
        }
        Ok(d)
    }

    /// One signed request; `body` is serialized once and those exact bytes are
    /// both signed and sent.
    async fn call(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        req: Call<'_>,
    ) -> Result<Response, Error> {
        let Call {
            method,
            path,
            query,
            body,
            idempotency,
        } = req;
        let delta = self.delta(op, name).await?;
        let mut url = self.http.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        self.http
            .send(op, name, idempotency, |c| {
                let ts = now_secs() + delta;
                let sig = signature(
                    self.application_secret.expose(),
                    self.consumer_key.expose(),
                    method.as_str(),
                    url.as_str(),
                    &text,
                    ts,
                );
                let rb = c
                    .request(method.clone(), url.clone())
                    .header("X-Ovh-Application", &self.application_key)
                    .header("X-Ovh-Consumer", self.consumer_key.expose())
                    .header("X-Ovh-Timestamp", ts.to_string())
                    .header("X-Ovh-Signature", sig);
                if body.is_some() {
                    rb.header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(text.clone())
                } else {
                    rb
                }
            })
            .await
    }

    /// Every TXT-like record (all four field types) at `name`.
    async fn list(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Vec<OvhRecord>, Error> {
        let sub = sub_domain(zone, name, op)?;
        let path = format!("domain/zone/{}/record", zone.id);
        let mut out = Vec::new();
        for ft in FIELD_TYPES {
            let resp = self
                .call(
                    op,
                    Some(name),
                    Call {
                        method: Method::GET,
                        path: &path,
                        query: &[("fieldType", ft.as_str()), ("subDomain", &sub)],
                        body: None,
                        idempotency: Idempotency::Idempotent,
                    },
                )
                .await?;
            for id in parse_ids(&resp.body, name, op)? {
                let got = self
                    .call(
                        op,
                        Some(name),
                        Call {
                            method: Method::GET,
                            path: &format!("{path}/{id}"),
                            query: &[],
                            body: None,
                            idempotency: Idempotency::Idempotent,
                        },
                    )
                    .await;
                let resp = match got {
                    Ok(r) => r,
                    // Deleted since it was listed.
                    Err(e) if e.status == Some(404) => continue,
                    Err(e) => return Err(e),
                };
                let rec = parse_record(&resp.body, &zone.name, name, op)?;
                if rec.field_type != ft {
                    return Err(super::bad_body(
                        KIND,
                        op,
                        name,
                        format!(
                            "record {id} is {}, listed as {}",
                            rec.field_type.as_str(),
                            ft.as_str()
                        ),
                    ));
                }
                // The filter is OVH's; a record at another name is not ours to count.
                if rec.sub_domain.eq_ignore_ascii_case(&sub) {
                    out.push(rec);
                }
            }
        }
        Ok(out)
    }

    /// Makes the records at `name` (as listed in `current`) hold exactly `set`;
    /// sets `*wrote` once any write request was sent. No refresh.
    async fn write(
        &self,
        zone: &Zone,
        name: &Fqdn,
        current: Vec<OvhRecord>,
        set: Option<&TxtSet>,
        wrote: &mut bool,
    ) -> Result<(), Error> {
        let op = if set.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        let mut desired: Vec<Vec<u8>> = Vec::new();
        if let Some(set) = set {
            for r in check_all(KIND, &self.profile, name, set)? {
                let v = r.value();
                if !desired.contains(&v) {
                    desired.push(v);
                }
            }
        }
        let ttl = set.map_or(0, |s| s.ttl);
        let sub = sub_domain(zone, name, op)?;
        let path = format!("domain/zone/{}/record", zone.id);
        let diff = super::diff_records(&desired, current, |rec, d| rec.value == *d);
        // A value replacing an old one of the same version goes into that old
        // record (its type and id kept); others are new TXT records.
        let w = super::pair_rewrites(
            diff.create,
            diff.delete,
            |r: &OvhRecord| &r.value,
            |r, d| r.field_type.holds(d),
        );
        let (rewrite, create, leftover) = (w.rewrite, w.create, w.delete);
        for rec in diff.keep.iter().filter(|r| r.ttl != ttl) {
            let body = json!({ "ttl": ttl });
            *wrote = true;
            self.call(
                op,
                Some(name),
                Call {
                    method: Method::PUT,
                    path: &format!("{path}/{}", rec.id),
                    query: &[],
                    body: Some(&body),
                    idempotency: Idempotency::Idempotent,
                },
            )
            .await?;
        }
        for (rec, d) in rewrite {
            // No fieldType: OVH refuses to alter it, and the record keeps its own.
            let body = json!({
                "subDomain": sub,
                "target": rec.field_type.target(d),
                "ttl": ttl,
            });
            *wrote = true;
            self.call(
                op,
                Some(name),
                Call {
                    method: Method::PUT,
                    path: &format!("{path}/{}", rec.id),
                    query: &[],
                    body: Some(&body),
                    idempotency: Idempotency::Idempotent,
                },
            )
            .await?;
        }
        for d in create {
            let body = json!({
                "fieldType": "TXT",
                "subDomain": sub,
                "target": FieldType::Txt.target(d),
                "ttl": ttl,
            });
            *wrote = true;
            self.call(
                op,
                Some(name),
                Call {
                    method: Method::POST,
                    path: &path,
                    query: &[],
                    body: Some(&body),
                    idempotency: Idempotency::NotIdempotent,
                },
            )
            .await?;
        }
        for rec in leftover {
            *wrote = true;
            crate::http::gone_is_done(
                self.call(
                    op,
                    Some(name),
                    Call {
                        method: Method::DELETE,
                        path: &format!("{path}/{}", rec.id),
                        query: &[],
                        body: None,
                        idempotency: Idempotency::Idempotent,
                    },
                )
                .await,
            )?;
        }
        Ok(())
    }

    /// Publishes the zone's staged changes (`POST /domain/zone/{zone}/refresh`).
    async fn refresh(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<(), Error> {
        self.call(op, Some(name), Call { method: Method::POST, path: &format!("domain/zone/{}/refresh", zone.id), query: &[], body: None, idempotency: Idempotency::Idempotent })
        .await
        .map(|_| ())
        .map_err(|mut e| {
            e.message = format!(
                "{} (the records are written but staged: OVH publishes them at the zone's next refresh)",
                e.message
            );
            e
        })
    }

    /// Writes one change after checking that the records still hold what was read;
    /// no refresh.
    async fn write_if_unchanged(
        &self,
        zone: &Zone,
        change: &TxtChange,
        wrote: &mut bool,
    ) -> Result<(), Error> {
        let op = change.operation();
        let current = self.list(zone, &change.name, op).await?;
        let now = set_of(&current);
        // Nothing to write when the change was applied before; a conflict
        // when the set is neither what was read nor what is wanted.
        if !change.still_to_write(KIND, now.as_ref())? {
            return Ok(());
        }
        self.write(zone, &change.name, current, change.wanted(), wrote)
            .await
    }
}

#[async_trait::async_trait]
impl Provider for Ovh {
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
        let resp = self
            .call(
                op,
                Some(name),
                Call {
                    method: Method::GET,
                    path: "domain/zone",
                    query: &[],
                    body: None,
                    idempotency: Idempotency::Idempotent,
                },
            )
            .await?;
        let zones = parse_zones(&resp.body, name, op)?;
        for cand in zone_candidates(name) {
            if zones
                .iter()
                .any(|z| z.trim_end_matches('.').eq_ignore_ascii_case(cand.as_str()))
            {
                return Ok(Zone {
                    id: cand.to_string(),
                    name: cand,
                });
            }
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            "no DNS zone of this account holds the name",
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(set_of(&self.list(zone, name, Operation::Read).await?))
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        check_all(KIND, &self.profile, name, set)?;
        let current = self.list(zone, name, op).await?;
        let mut wrote = false;
        let r = self.write(zone, name, current, Some(set), &mut wrote).await;
        if wrote {
            self.refresh(zone, name, op).await?;
        }
        r
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let current = self.list(zone, name, op).await?;
        let mut wrote = false;
        let r = self.write(zone, name, current, None, &mut wrote).await;
        if wrote {
            self.refresh(zone, name, op).await?;
        }
        r
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let mut wrote = false;
        let r = self.write_if_unchanged(zone, change, &mut wrote).await;
        if wrote {
            self.refresh(zone, &change.name, change.operation()).await?;
        }
        r
    }

    /// Writes every name, then refreshes the zone once (also after a failure,
    /// so nothing written stays staged for another writer's refresh).
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        for c in changes {
            if let Some(set) = c.wanted() {
                check_all(KIND, &self.profile, &c.name, set)
                    .map_err(ApplyError::nothing_written)?;
            }
        }
        let mut written = Vec::new();
        let mut wrote = false;
        let mut failed = None;
        for c in changes {
            let before = wrote;
            let mut this = false;
            match self.write_if_unchanged(zone, c, &mut this).await {
                Ok(()) => {
                    wrote = before || this;
                    written.push(c.name.clone());
                }
                Err(e) => {
                    wrote = before || this;
                    failed = Some(e);
                    break;
                }
            }
        }
        if wrote && let Some(c) = changes.first() {
            let refreshed = self.refresh(zone, &c.name, c.operation()).await;
            if let (Err(e), None) = (refreshed, &failed) {
                return Err(ApplyError { written, error: e });
            }
        }
        match failed {
            Some(error) => Err(ApplyError { written, error }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::version_tag;

    #[test]
    fn signature_is_sha1_of_the_documented_line() {
        // printf '%s' 'AS+CK+GET+https://eu.api.ovh.com/1.0/domain/zone++1767225600' | sha1sum
        let s = signature(
            "AS",
            "CK",
            "GET",
            "https://eu.api.ovh.com/1.0/domain/zone",
            "",
            1_767_225_600,
        );
        assert_eq!(s, "$1$de3f7facc8ff1b602628358bb857a8e191cd6bf0");
    }

    #[test]
    fn targets_are_unquoted_and_joined() {
        assert_eq!(
            target_value("v=DMARC1; p=none").unwrap(),
            b"v=DMARC1; p=none"
        );
        assert_eq!(
            target_value("\"v=spf1 a\" \" -all\"").unwrap(),
            b"v=spf1 a -all"
        );
        assert_eq!(target_value("\"a\\\"b\\059\"").unwrap(), b"a\"b;");
        assert!(target_value("\"open").is_err());
        assert!(target_value("\"a\" junk").is_err());
    }

    #[test]
    fn typed_records_hold_only_their_own_values() {
        assert!(FieldType::Spf.holds(b"V=SPF1 -all"));
        assert!(!FieldType::Spf.holds(b"google-site-verification=x"));
        assert!(FieldType::Txt.holds(b"anything"));
        assert_eq!(FieldType::Dkim.target(b"v=DKIM1; p=x"), "v=DKIM1; p=x");
        assert_eq!(FieldType::Spf.target(b"v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(version_tag(b"v=spf1 mx -all"), Some(b"v=spf1".to_vec()));
        assert_eq!(version_tag(b"V=DMARC1;p=none"), Some(b"v=dmarc1".to_vec()));
        assert_eq!(version_tag(b"other=1"), None);
    }

    #[test]
    fn parse_record_validates_shape_zone_and_type() {
        let zone = Fqdn::parse("example.com").unwrap();
        let name = Fqdn::parse("example.com").unwrap();
        let ok = br#"{"id":5,"zone":"example.com","subDomain":"","fieldType":"SPF","target":"\"v=spf1 -all\"","ttl":0}"#;
        let r = parse_record(ok, &zone, &name, Operation::Read).unwrap();
        assert_eq!(
            (r.field_type, r.value.as_slice(), r.ttl),
            (FieldType::Spf, &b"v=spf1 -all"[..], 0)
        );
        let other = br#"{"id":5,"zone":"example.org","subDomain":"","fieldType":"TXT","target":"x","ttl":0}"#;
        let a = br#"{"id":5,"zone":"example.com","subDomain":"","fieldType":"A","target":"192.0.2.1","ttl":0}"#;
        let missing = br#"{"id":5,"zone":"example.com","fieldType":"TXT","target":"x","ttl":0}"#;
        for bad in [&other[..], &a[..], &missing[..], b"<html>"] {
            let e = parse_record(bad, &zone, &name, Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
        }
        assert!(parse_ids(b"[1,2]", &name, Operation::Read).is_ok());
        assert!(parse_ids(b"{\"ids\":[]}", &name, Operation::Read).is_err());
        assert_eq!(
            parse_time(b"1767225600", Operation::Read).unwrap(),
            1_767_225_600
        );
    }

    #[test]
    fn the_secret_needs_both_parts_and_is_never_quoted() {
        let e = Config::new("ak".into(), &Secret::new("only-one-part")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(!e.to_string().contains("only-one-part"), "{e}");
        let c = Config::new("ak".into(), &Secret::new("as-1:ck-2")).unwrap();
        assert_eq!(
            (c.application_secret.expose(), c.consumer_key.expose()),
            ("as-1", "ck-2")
        );
        assert!(endpoint_url("ovh-ca").unwrap().starts_with("https://ca."));
        assert_eq!(endpoint_url("kimsufi").unwrap_err().kind, ErrorKind::Config);
    }
}

//! GoDaddy (Domains API v1, records): the write unit is every value of one
//! name and type.
//!
//! - Auth: `Authorization: sso-key KEY:SECRET`; the credential is the one string
//!   `KEY:SECRET`. Since 2024 GoDaddy gives production API access to DNS only to
//!   accounts with 10 or more domains or a paid "Discount Domain Club – Premier"
//!   membership; others get 403 `ACCESS_DENIED`, reported as that account limit.
//!   The OTE test environment (`https://api.ote-godaddy.com`) is not gated.
//! - Zone: the registered domain: `GET /v1/domains/{candidate}` walking up the
//!   labels (404 when the account does not hold it).
//! - Read: `GET /v1/domains/{domain}/records/TXT/{name}` → `[{"data","name","ttl","type"}]`
//!   (names relative, apex `@`; `data` one plain string, the record's joined value;
//!   placeholder records whose `data` is a single space are left out); an absent
//!   name is `[]` (a 404 is read as absent too).
//! - Write: `PUT /v1/domains/{domain}/records/TXT/{name}` replaces **every** TXT value
//!   at the name with the array sent, with no precondition; `DELETE` on the same path
//!   removes them all. So the adapter takes one in-process lock per domain, reads the
//!   name again just before writing (a set no longer as the caller read it is a
//!   conflict), sends every value of the name (foreign ones included, as the caller's
//!   set holds them), and reads it back: a set that differs from what was written is
//!   reported. It never calls the whole-zone `PUT …/records`, the whole-type
//!   `PUT …/records/{type}` or `PATCH …/records`.
//! - Errors: `{"code","message","fields":[{"code","message","path"}]}`; limits: 60
//!   requests per minute per endpoint (GoDaddy API Terms of Use), TTL at least 600
//!   (not in GoDaddy's swagger, whose `ttl` has no minimum; the host's own 422,
//!   `UNKNOWN_RESTRICTION` "must have a minimum value of 600", as quoted in
//!   <https://github.com/win-acme/win-acme/issues/1947>), `data` at most 512
//!   characters.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::check_all;
use crate::changeset::{Observed, TxtChange, conflict, same_content};
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
};

const KIND: &str = "godaddy";

/// What GoDaddy's API gate asks of an account, added to authentication and
/// permission errors.
pub const ACCESS_NOTE: &str = "GoDaddy gives production API access to DNS only to accounts with 10 or more domains or a Discount Domain Club Premier membership; the credential is KEY:SECRET of a production key (OTE keys work only with api.ote-godaddy.com)";

/// The registry entry: the secret is `KEY:SECRET`; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/godaddy.toml"),
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
) -> Result<Arc<dyn Provider>, Error> {
    let mut cfg = Config::new(credential.secret(KIND)?);
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    Ok(Arc::new(GoDaddy::new(cfg, policy)?))
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

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.godaddy.com";

/// Account settings for GoDaddy.
#[derive(Debug, Clone)]
pub struct Config {
    /// `KEY:SECRET` of a production API key.
    pub credential: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing (OTE: `https://api.ote-godaddy.com`).
    pub base_url: String,
}

impl Config {
    /// A config for the real API.
    pub fn new(credential: Secret) -> Self {
        Config {
            credential,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }
}

/// The GoDaddy adapter.
#[derive(Debug)]
pub struct GoDaddy {
    http: HttpClient,
    /// `sso-key KEY:SECRET`.
    authorization: Secret,
    profile: Profile,
}

#[derive(Deserialize)]
struct ErrBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<ErrField>,
}

#[derive(Deserialize)]
struct ErrField {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    path: String,
}

/// Extracts GoDaddy's `{"code","message","fields"}` error; authentication and
/// access errors say what GoDaddy's API gate asks of an account ([`ACCESS_NOTE`]).
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let status = f.status.as_u16();
    let (code, mut message) = match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if !b.message.is_empty() || !b.code.is_empty() => {
            let mut m = format!("{} ({})", b.message, b.code);
            for fl in &b.fields {
                m.push_str(&format!("; {}: {} ({})", fl.path, fl.message, fl.code));
            }
            (b.code, m)
        }
        _ => (String::new(), crate::http::default_mapper(f).1),
    };
    let kind = match (status, code.as_str()) {
        (_, "ACCESS_DENIED") | (403, _) => ErrorKind::Permission,
        (_, "UNABLE_TO_AUTHENTICATE") | (401, _) => ErrorKind::Auth,
        (_, "TOO_MANY_REQUESTS") | (429, _) => ErrorKind::RateLimited,
        (_, "NOT_FOUND") | (404, _) => ErrorKind::ZoneNotFound,
        (400 | 422, _) => ErrorKind::Invalid,
        _ => kind_for_status(f.status),
    };
    if matches!(kind, ErrorKind::Auth | ErrorKind::Permission) {
        message.push_str(" — ");
        message.push_str(ACCESS_NOTE);
    }
    (kind, message)
}

#[derive(Deserialize)]
struct GdRecord {
    data: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// One TXT value as listed: its data and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// `data`: the record's joined value.
    pub data: String,
    /// TTL in seconds (GoDaddy's default 3600 when absent).
    pub ttl: u32,
}

/// Parses the answer to `GET …/records/TXT/{name}` for relative `rel`. Pure, for
/// the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `godaddy` and `op` when the body is not an array
/// of records with `data`, or holds a record of another type or name
/// (<https://developer.godaddy.com/doc/endpoint/domains#/v1/recordGet>).
pub fn parse_records(
    body: &[u8],
    rel: &str,
    name: &Fqdn,
    op: Operation,
) -> Result<Vec<ListedRecord>, Error> {
    let list: Vec<GdRecord> =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        if r.kind
            .as_deref()
            .is_some_and(|k| !k.eq_ignore_ascii_case("TXT"))
            || r.name
                .as_deref()
                .is_some_and(|n| !n.eq_ignore_ascii_case(rel))
        {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!(
                    "a {} record at '{}' in the answer for TXT at '{rel}'",
                    r.kind.as_deref().unwrap_or("?"),
                    r.name.as_deref().unwrap_or("?")
                ),
            ));
        }
        // Placeholder records GoDaddy shows with a single space.
        if r.data == " " {
            continue;
        }
        out.push(ListedRecord {
            data: r.data,
            ttl: r.ttl.unwrap_or(3600),
        });
    }
    Ok(out)
}

/// The in-process lock of one domain, shared by every adapter instance.
fn domain_lock(zone: &Fqdn) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let mut g = map.lock().unwrap_or_else(|e| e.into_inner());
    g.entry(zone.to_string())
        .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
        .clone()
}

fn set_of(recs: &[ListedRecord]) -> Option<TxtSet> {
    let first = recs.first()?;
    Some(TxtSet {
        ttl: first.ttl,
        records: recs
            .iter()
            .map(|r| TxtRecord::from_value(r.data.as_bytes()))
            .collect(),
    })
}

fn shown(set: Option<&TxtSet>) -> String {
    match set {
        None => "nothing".into(),
        Some(s) => format!(
            "TTL {} [{}]",
            s.ttl,
            s.records
                .iter()
                .map(TxtRecord::to_presentation)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl GoDaddy {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the credential is not `KEY:SECRET` (both parts
    /// non-empty) or the base URL is not https (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        match config.credential.expose().split_once(':') {
            Some((k, s)) if !k.trim().is_empty() && !s.trim().is_empty() => {}
            _ => {
                return Err(config_error(
                    "the credential must be the API key and its secret as one string KEY:SECRET",
                ));
            }
        }
        Ok(GoDaddy {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            authorization: Secret::new(format!("sso-key {}", config.credential.expose().trim())),
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .header("authorization", self.authorization.expose())
            .header("accept", "application/json")
    }

    fn path(zone: &Zone, rel: &str) -> String {
        format!("v1/domains/{}/records/TXT/{rel}", zone.id)
    }

    fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
        super::relative_name(KIND, zone, name, op, super::Apex::At)
    }

    async fn read(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<TxtSet>, Error> {
        let rel = Self::relative(zone, name, op)?;
        let path = Self::path(zone, &rel);
        match self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, &path)
            })
            .await
        {
            Ok(resp) => Ok(set_of(&parse_records(&resp.body, &rel, name, op)?)),
            // The domain was found: a 404 here is a name without records.
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Locks the domain, reads the name again (refusing with a conflict when it is
    /// no longer `old`), writes `set` (all of the name's values; none deletes) unless
    /// the name already holds it, and reads it back.
    async fn write(
        &self,
        zone: &Zone,
        name: &Fqdn,
        old: Option<&Observed>,
        set: Option<&TxtSet>,
    ) -> Result<(), Error> {
        let op = if set.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        let records = match set {
            Some(s) => check_all(KIND, &self.profile, name, s)?,
            None => Vec::new(),
        };
        let wanted = set.filter(|_| !records.is_empty()).map(|s| TxtSet {
            ttl: s.ttl,
            records: records
                .iter()
                .map(|r| TxtRecord::from_value(r.value()))
                .collect(),
        });
        let rel = Self::relative(zone, name, op)?;
        let lock = domain_lock(&zone.name);
        let _guard = lock.lock().await;
        let now = self.read(zone, name, Operation::Read).await?;
        // Already as wanted (the same change applied before): nothing to write.
        if same_content(now.as_ref(), wanted.as_ref()) {
            return Ok(());
        }
        if let Some(old) = old
            && !old.unchanged_in(now.as_ref())
        {
            return Err(conflict(
                KIND,
                op,
                name,
                "the TXT RRset changed since it was read",
            ));
        }
        let path = Self::path(zone, &rel);
        match &wanted {
            Some(s) => {
                let body: Vec<serde_json::Value> = s
                    .records
                    .iter()
                    // printable_ascii_only was checked: the value is ASCII.
                    .map(|r| json!({ "data": r.value_lossy(), "ttl": s.ttl }))
                    .collect();
                let body = serde_json::Value::Array(body);
                self.http
                    .send(op, Some(name), Idempotency::Idempotent, |c| {
                        self.req(c, Method::PUT, &path).json(&body)
                    })
                    .await?;
            }
            None => {
                self.http
                    .delete(op, name, |c| self.req(c, Method::DELETE, &path))
                    .await?;
            }
        }
        let after = self.read(zone, name, Operation::WaitForChange).await?;
        if !same_content(after.as_ref(), wanted.as_ref()) {
            tracing::warn!(provider = KIND, %name, "TXT set changed under maildns after its write");
            return Err(Error::new(
                KIND,
                Operation::WaitForChange,
                Some(name),
                ErrorKind::Conflict,
                format!(
                    "the TXT set read back after the write differs from what maildns wrote (another writer changed it): wrote {}, read {}",
                    shown(wanted.as_ref()),
                    shown(after.as_ref())
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for GoDaddy {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        super::walk_zones_by_get(
            &self.http,
            KIND,
            name,
            "no domain in this GoDaddy account holds the name",
            |cand| format!("v1/domains/{cand}"),
            |c, m, p| self.req(c, m, p),
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.read(zone, name, Operation::Read).await
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.write(zone, name, None, Some(set)).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.write(zone, name, None, None).await
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        self.write(zone, &change.name, Some(&change.old), change.wanted())
            .await
    }
}

//! Google Cloud DNS v1, authenticated as a service account.
//!
//! The adapter signs an RS256 JWT with the service account's private key, trades it
//! at the token endpoint for an access token (cached until shortly before it
//! expires), and writes with atomic Changes: one Change deletes the exact current
//! set and adds the new one (a change set: one Change for every name, its
//! deletions echoing the rrdatas exactly as read). A stale deletion fails with 412 `conditionNotMet`,
//! and the adapter then reads again and retries once. Each `rrdatas` element is one
//! record as quoted strings of at most 255 bytes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use rsa::PrivateKey;
use rsa::sha2::Sha256;
use serde::{Deserialize, Serialize};

use super::RawSet;
use crate::http::{self, Failure, HttpClient, Idempotency, RetryPolicy};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    Secret, TxtChange, TxtRecord, TxtSet, Zone, ZoneSets, zone_candidates,
};

const KIND: &str = "google";

/// The registry entry: a secret credential; `base_url` overrides the API's and `project` the service account's project.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/google.toml"),
    credential: CredentialKind::Secret,
    required: &[],
    optional: &["base_url", "project"],
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
    cfg.project = settings.project.clone();
    Ok(std::sync::Arc::new(Google::new(cfg, policy)?))
}

/// The real API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://dns.googleapis.com/dns/v1";

/// The OAuth scope asked for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";

/// How to reach one Google Cloud project's DNS.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service account's JSON key file, as text.
    pub service_account_json: Secret,
    /// Project id; defaults to the key file's `project_id`.
    pub project: Option<String>,
    /// API base URL (`…/dns/v1`).
    pub base_url: String,
    /// Token endpoint; defaults to the key file's `token_uri`.
    pub token_url: Option<String>,
    /// Delay between polls of a pending Change.
    pub poll_interval: Duration,
    /// Give up waiting for a Change after this long.
    pub wait_timeout: Duration,
}

impl Config {
    /// A configuration for the real API with this key file.
    pub fn new(service_account_json: Secret) -> Self {
        Config {
            service_account_json,
            project: None,
            base_url: DEFAULT_BASE_URL.to_string(),
            token_url: None,
            poll_interval: Duration::from_secs(2),
            wait_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// The Google Cloud DNS adapter.
pub struct Google {
    http: HttpClient,
    project: String,
    client_email: String,
    key_id: Option<String>,
    key: PrivateKey,
    token_url: url::Url,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    poll_interval: Duration,
    wait_timeout: Duration,
    profile: Profile,
    write_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google")
            .field("project", &self.project)
            .field("client_email", &self.client_email)
            .field("base", &self.http.base().as_str())
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

fn config_err(m: impl Into<String>) -> Error {
    Error::new(KIND, Operation::Authenticate, None, ErrorKind::Config, m)
}

impl Google {
    /// Parses the key file, validates `cfg` and builds the adapter; no request is sent.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the key file is not JSON of a service account key or
    /// its private key does not parse, no project is known (neither `project` nor the
    /// key file's `project_id`), or the token or base URL is not https (plain http
    /// only to loopback). The message never holds the key.
    pub fn new(cfg: Config, policy: RetryPolicy) -> Result<Self, Error> {
        // serde_json's error names line and column only, never the content.
        let key_file: KeyFile = serde_json::from_str(cfg.service_account_json.expose())
            .map_err(|e| config_err(format!("the service account key file is not valid: {e}")))?;
        let key = parse_private_key(&key_file.private_key)?;
        let project = cfg
            .project
            .or(key_file.project_id)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                config_err("no project: set it in the account or use a key file with project_id")
            })?;
        let token_url = cfg
            .token_url
            .or(key_file.token_uri)
            .unwrap_or_else(|| "https://oauth2.googleapis.com/token".to_string());
        let token_url = url::Url::parse(&token_url)
            .map_err(|e| config_err(format!("bad token URL '{token_url}': {e}")))?;
        if !http::url_allowed(&token_url) {
            return Err(config_err(format!(
                "token URL '{token_url}' must use https (plain http only to loopback)"
            )));
        }
        Ok(Google {
            http: HttpClient::new(KIND, &cfg.base_url, policy, map_error)?,
            project,
            client_email: key_file.client_email,
            key_id: key_file.private_key_id,
            key,
            token_url,
            token: tokio::sync::Mutex::new(None),
            poll_interval: cfg.poll_interval,
            wait_timeout: cfg.wait_timeout,
            profile: crate::registry::profile(KIND)?,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The signed JWT assertion for the token endpoint.
    fn assertion(&self, now: u64) -> Result<String, Error> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_url.as_str(),
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .pkcs1v15_sign::<Sha256>(signing_input.as_bytes())
            .map_err(|e| config_err(format!("cannot sign the token request: {e}")))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// A valid access token, fetched when none is cached or it expires within a minute.
    async fn access_token(&self) -> Result<Secret, Error> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.token.clone());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let assertion = self.assertion(now)?;
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let resp = self
            .http
            .send(
                Operation::Authenticate,
                None,
                Idempotency::Idempotent,
                |c| {
                    c.post(self.token_url.clone())
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form.clone())
                },
            )
            .await?;
        let t: TokenResponse = resp.json(KIND, Operation::Authenticate)?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        let token = Secret::new(t.access_token);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(Duration::from_secs(60)),
        });
        Ok(token)
    }

    async fn call(
        &self,
        op: Operation,
        name: &Fqdn,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<http::Response, Error> {
        let token = self.access_token().await?;
        let path = format!("projects/{}/{path}", self.project);
        let idempotent = if method == Method::GET {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        };
        self.http
            .send(op, Some(name), idempotent, |c| {
                let mut req = self
                    .http
                    .request(c, method.clone(), &path)
                    .bearer_auth(token.expose());
                if !query.is_empty() {
                    req = req.query(query);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                req
            })
            .await
    }

    async fn read(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<TxtSet>, Error> {
        Ok(self.read_one(zone, name, op).await?.set)
    }

    /// The TXT set at `name` with its rrdatas exactly as answered (in
    /// [`Observed::version`]).
    async fn read_one(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Observed, Error> {
        let want = name.to_dotted();
        let mut page: Option<String> = None;
        loop {
            let mut q = vec![("name", want.as_str()), ("type", "TXT")];
            if let Some(p) = &page {
                q.push(("pageToken", p.as_str()));
            }
            let path = format!("managedZones/{}/rrsets", zone.id);
            let resp = self.call(op, name, Method::GET, &path, &q, None).await?;
            let (sets, next) = parse_txt_sets(&resp.body, name, op)?;
            if let Some((_, o)) = sets
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&want))
            {
                return Ok(o);
            }
            match next.filter(|t| !t.is_empty()) {
                Some(t) => page = Some(t),
                None => return Ok(Observed::of(None)),
            }
        }
    }

    /// The TXT sets at several names from one listing of the zone's RRsets, at
    /// most one page per name; when that budget is spent before the listing
    /// ends, the names not yet seen are read one by one (never more than two
    /// requests a name).
    async fn list_zone(
        &self,
        zone: &Zone,
        names: &[Fqdn],
        op: Operation,
    ) -> Result<ZoneSets, Error> {
        let mut out = ZoneSets::new();
        let mut page: Option<String> = None;
        let mut pages = 0;
        let path = format!("managedZones/{}/rrsets", zone.id);
        let complete = loop {
            pages += 1;
            let q: Vec<(&str, &str)> = page.iter().map(|p| ("pageToken", p.as_str())).collect();
            let resp = self
                .call(op, &zone.name, Method::GET, &path, &q, None)
                .await?;
            let (sets, next) = parse_txt_sets(&resp.body, &zone.name, op)?;
            for (n, o) in sets {
                if let Some(want) = names
                    .iter()
                    .find(|w| w.to_dotted().eq_ignore_ascii_case(&n))
                {
                    out.insert(want.clone(), o);
                }
            }
            match next.filter(|t| !t.is_empty()) {
                None => break true,
                Some(_) if pages >= names.len() => break false,
                Some(t) => page = Some(t),
            }
        };
        for n in names {
            if !out.contains_key(n) {
                let o = if complete {
                    Observed::of(None)
                } else {
                    self.read_one(zone, n, op).await?
                };
                out.insert(n.clone(), o);
            }
        }
        Ok(out)
    }

    /// Deletes the current set (if any) and adds `set` (if any) in one Change, then
    /// waits for it. Retries once after a 412 with a fresh read.
    async fn write_one(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: Option<&TxtSet>,
        op: Operation,
    ) -> Result<(), Error> {
        let _guard = self.write_lock.lock().await;
        let mut retried = false;
        loop {
            let current = self.read_one(zone, name, op).await?;
            if current.set.as_ref() == set || (current.set.is_none() && set.is_none()) {
                return Ok(());
            }
            let change = TxtChange {
                name: name.clone(),
                old: current,
                new: set.cloned(),
            };
            match self
                .send_change(zone, std::slice::from_ref(&change), op)
                .await
            {
                Err(e) if e.kind == ErrorKind::Conflict && !retried => {
                    tracing::debug!(provider = KIND, %name, "stale read ({e}); reading again");
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// One Change for `changes`: each RRset as read in `deletions` (its rrdatas
    /// echoed exactly as answered), each wanted one in `additions`; then waits
    /// until it is done.
    async fn send_change(
        &self,
        zone: &Zone,
        changes: &[TxtChange],
        op: Operation,
    ) -> Result<(), Error> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        let mut deletions = Vec::new();
        let mut additions = Vec::new();
        for c in changes {
            if let Some(old) = c.old.set.as_ref().filter(|s| !s.records.is_empty()) {
                let raw = RawSet::of(&c.old).unwrap_or_else(|| RawSet {
                    ttl: old.ttl,
                    values: old.records.iter().map(TxtRecord::to_presentation).collect(),
                });
                deletions.push(RrSet {
                    name: c.name.to_dotted(),
                    kind: "TXT".to_string(),
                    ttl: raw.ttl,
                    rrdatas: raw.values,
                });
            }
            if let Some(set) = c.wanted() {
                additions.push(RrSet {
                    name: c.name.to_dotted(),
                    kind: "TXT".to_string(),
                    ttl: set.ttl,
                    rrdatas: set.records.iter().map(TxtRecord::to_presentation).collect(),
                });
            }
        }
        if deletions.is_empty() && additions.is_empty() {
            return Ok(());
        }
        let change = serde_json::json!({
            "kind": "dns#change",
            "deletions": deletions,
            "additions": additions,
        });
        let path = format!("managedZones/{}/changes", zone.id);
        let resp = self
            .call(op, &first.name, Method::POST, &path, &[], Some(&change))
            .await?;
        let c: Change = resp.json(KIND, op).map_err(|e| e.with_name(&first.name))?;
        self.wait_done(zone, &first.name, c).await
    }

    async fn wait_done(&self, zone: &Zone, name: &Fqdn, mut c: Change) -> Result<(), Error> {
        let op = Operation::WaitForChange;
        let start = Instant::now();
        while c.status != "done" {
            if start.elapsed() >= self.wait_timeout {
                return Err(Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::Server,
                    format!(
                        "change {} still {} after {}s",
                        c.id,
                        c.status,
                        self.wait_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.poll_interval).await;
            let path = format!("managedZones/{}/changes/{}", zone.id, c.id);
            let resp = self.call(op, name, Method::GET, &path, &[], None).await?;
            c = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
        }
        Ok(())
    }
}

/// Parses one page of an `rrsets` list (`{"rrsets":[…],"nextPageToken":…}`) for the
/// TXT set at `name`; also returns the next page token. Pure, for the read path and
/// the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `google` and `op` when the body is not the
/// documented shape or an rrdata is not quoted strings (Cloud DNS answers TXT
/// rrdatas in zone-file syntax, <https://cloud.google.com/dns/docs/reference/rest/v1/resourceRecordSets>).
pub fn parse_rrsets(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Option<TxtSet>, Option<String>), Error> {
    let want = name.to_dotted();
    let list: RrSetList =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut found = None;
    for s in list.rrsets {
        if s.kind != "TXT" || !s.name.eq_ignore_ascii_case(&want) {
            continue;
        }
        let mut records = Vec::new();
        for d in &s.rrdatas {
            records.push(super::parse_quoted(KIND, op, name, d)?);
        }
        found = Some(TxtSet {
            ttl: s.ttl,
            records,
        });
    }
    Ok((found, list.next_page_token))
}

/// A TXT set with its owner name as answered.
type NamedSet = (String, Observed);

/// Every TXT set on one page of an `rrsets` list, each with its owner name (as
/// answered, with the trailing dot) and its rrdatas exactly as answered; also
/// the next page token.
///
/// # Errors
/// As [`parse_rrsets`].
fn parse_txt_sets(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<NamedSet>, Option<String>), Error> {
    let list: RrSetList =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::new();
    for s in list.rrsets {
        if s.kind != "TXT" {
            continue;
        }
        let mut records = Vec::new();
        for d in &s.rrdatas {
            records.push(super::parse_quoted(KIND, op, name, d)?);
        }
        let version = RawSet {
            ttl: s.ttl,
            values: s.rrdatas,
        }
        .encode();
        out.push((
            s.name,
            Observed {
                set: Some(TxtSet {
                    ttl: s.ttl,
                    records,
                }),
                version,
            },
        ));
    }
    Ok((out, list.next_page_token))
}

fn parse_private_key(pem: &str) -> Result<PrivateKey, Error> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    PrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| PrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| {
            config_err(
                "the service account's private_key is not an RSA key in PEM (PKCS#8 or PKCS#1)",
            )
        })
}

#[async_trait::async_trait]
impl Provider for Google {
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
        for candidate in zone_candidates(name) {
            let want = candidate.to_dotted();
            let mut page: Option<String> = None;
            let mut private = None;
            loop {
                let mut q = vec![("dnsName", want.as_str())];
                if let Some(p) = &page {
                    q.push(("pageToken", p.as_str()));
                }
                let resp = self
                    .call(op, name, Method::GET, "managedZones", &q, None)
                    .await?;
                let list: ZoneList = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
                for z in list.managed_zones {
                    if !z.dns_name.eq_ignore_ascii_case(&want) {
                        continue;
                    }
                    if z.visibility.as_deref() == Some("private") {
                        private.get_or_insert(z.name);
                    } else {
                        return Ok(Zone {
                            name: candidate.clone(),
                            id: z.name,
                        });
                    }
                }
                match list.next_page_token.filter(|t| !t.is_empty()) {
                    Some(t) => page = Some(t),
                    None => break,
                }
            }
            if let Some(id) = private {
                return Ok(Zone {
                    name: candidate,
                    id,
                });
            }
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            format!("no managed zone in project {} holds {name}", self.project),
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.read(zone, name, Operation::Read).await
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        self.profile.check_set(KIND, op, name, &set.records)?;
        if !set.records.is_empty() {
            self.profile.check_ttl(KIND, op, name, set.ttl)?;
        }
        let target = (!set.records.is_empty()).then_some(set);
        self.write_one(zone, name, target, op).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.write_one(zone, name, None, Operation::Delete).await
    }

    /// One Change: atomic, and conditional on every RRset read (deletions must
    /// match the stored rrdatas exactly; an addition fails on a set that appeared).
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            ..ApplyTraits::default()
        }
    }

    /// One name: a filtered `rrsets` read. Several: one listing of the zone's
    /// RRsets (see `list_zone`). Each [`Observed::version`] keeps the rrdatas
    /// exactly as answered.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        match names {
            [] => Ok(ZoneSets::new()),
            [one] => {
                let mut out = ZoneSets::new();
                out.insert(one.clone(), self.read_one(zone, one, op).await?);
                Ok(out)
            }
            _ => self.list_zone(zone, names, op).await,
        }
    }

    /// ONE Change for the whole change set: `deletions` echo each RRset exactly
    /// as read, `additions` hold the wanted ones. Google applies it all or
    /// nothing and refuses it when a deletion no longer matches (412
    /// `conditionNotMet`), is gone (404 on `entity.change.deletions`) or an
    /// addition exists (409): all [`ErrorKind::Conflict`].
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let mut shaped = Vec::with_capacity(changes.len());
        for c in changes {
            let mut c = c.clone();
            if let Some(set) = c.wanted() {
                let records = super::check_all(KIND, &self.profile, &c.name, set)
                    .map_err(ApplyError::nothing_written)?;
                c.new = Some(TxtSet {
                    ttl: set.ttl,
                    records,
                });
            }
            shaped.push(c);
        }
        match self.send_change(zone, &shaped, Operation::Replace).await {
            Err(e) if e.kind == ErrorKind::Conflict => {
                match super::unless_in_place(self, zone, changes, e).await {
                    None => Ok(()),
                    Some(refused) => Err(refused),
                }
            }
            other => other.map_err(ApplyError::nothing_written),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZoneList {
    #[serde(default)]
    managed_zones: Vec<ManagedZone>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManagedZone {
    name: String,
    dns_name: String,
    #[serde(default)]
    visibility: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RrSetList {
    #[serde(default)]
    rrsets: Vec<RrSet>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    rrdatas: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Change {
    id: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct GoogleError {
    error: GoogleErrorField,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GoogleErrorField {
    Api {
        #[serde(default)]
        message: String,
        #[serde(default)]
        errors: Vec<GoogleErrorItem>,
    },
    OAuth(String),
}

#[derive(Deserialize)]
struct GoogleErrorItem {
    #[serde(default)]
    reason: String,
}

/// Maps Google's error envelope `{"error":{"code","message","errors":[{"reason"}]}}`
/// and the token endpoint's OAuth form `{"error","error_description"}`.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let status = http::kind_for_status(f.status);
    let Ok(e) = serde_json::from_slice::<GoogleError>(f.body) else {
        return http::default_mapper(f);
    };
    match e.error {
        GoogleErrorField::OAuth(code) => {
            let kind = match code.as_str() {
                "invalid_grant" | "invalid_client" | "unauthorized_client" => ErrorKind::Auth,
                _ => status,
            };
            let desc = e.error_description.unwrap_or_default();
            (kind, format!("{code}: {desc}"))
        }
        GoogleErrorField::Api { message, errors } => {
            let reason = errors.first().map(|i| i.reason.as_str()).unwrap_or("");
            let kind = match reason {
                "conditionNotMet" => ErrorKind::Conflict,
                "rateLimitExceeded" | "userRateLimitExceeded" => ErrorKind::RateLimited,
                // A deletion whose RRset is gone lost a race with another
                // writer: read again. Any other 404 names a zone or project.
                "notFound" if message.contains("entity.change.deletions") => ErrorKind::Conflict,
                "alreadyExists" => ErrorKind::Conflict,
                "notFound" if f.status.as_u16() == 404 => ErrorKind::ZoneNotFound,
                "authError" => ErrorKind::Auth,
                _ => status,
            };
            let msg = if reason.is_empty() {
                message
            } else {
                format!("{reason}: {message}")
            };
            (kind, msg)
        }
    }
}

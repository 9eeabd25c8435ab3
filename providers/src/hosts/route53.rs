//! Amazon Route 53 (REST-XML API 2013-04-01), requests signed with AWS SigV4.
//!
//! Route 53 works on whole record sets: a write is a `ChangeBatch` that UPSERTs the
//! full set, and a DELETE must repeat the existing set exactly (TTL and every value),
//! so deletes read first. Listings (`hostedzonesbyname`, `rrset`) *start at* the
//! name asked for, so every answer is filtered for an exact match. TXT values are
//! quoted strings of at most 255 characters, `"` and `\` escaped, other bytes
//! outside printable ASCII as `\ooo` octal; one value holds at most 4,000 characters.
//! Throttling comes back as HTTP 400 `<Code>Throttling</Code>` and is retried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::Method;
use serde::Deserialize;

use crate::http::{self, Failure, HttpClient, Idempotency, RetryPolicy};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    CharacterString, Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord,
    TxtSet, Zone, zone_candidates,
};

const KIND: &str = "route53";

/// The registry entry: an AWS access key; `base_url` overrides the API's and
/// `wait_insync` waits for each change to reach INSYNC.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/route53.toml"),
    credential: CredentialKind::Aws,
    required: &[],
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let Credential::Aws(aws) = credential else {
        return Err(Error::new(
            KIND,
            Operation::Authenticate,
            None,
            ErrorKind::Config,
            "this host needs an AWS access key",
        ));
    };
    let mut cfg = Config::new(aws);
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    cfg.wait_insync = settings.wait_insync.unwrap_or(false);
    Ok(std::sync::Arc::new(Route53::new(cfg, policy)?))
}

/// The real API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://route53.amazonaws.com/2013-04-01";

/// Most characters in one `<Value>` (the `RData` limit).
pub const MAX_VALUE_CHARS: usize = 4000;

/// How to reach one AWS account's Route 53.
#[derive(Debug, Clone)]
pub struct Config {
    /// Access key id (not secret, but never logged with the key).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// API base URL, ending in the API version (`…/2013-04-01`).
    pub base_url: String,
    /// Wait after each write until `GetChange` reports `INSYNC`.
    pub wait_insync: bool,
    /// Delay between `GetChange` polls.
    pub poll_interval: Duration,
    /// Give up waiting for `INSYNC` after this long.
    pub wait_timeout: Duration,
    /// `maxitems` sent with listings.
    pub page_size: u32,
}

impl Config {
    /// A configuration for the real API with these credentials.
    pub fn new(credentials: AwsCredentials) -> Self {
        Config {
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
            base_url: DEFAULT_BASE_URL.to_string(),
            wait_insync: false,
            poll_interval: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(300),
            page_size: 100,
        }
    }
}

/// AWS credentials found in the environment or the shared credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token, for temporary credentials.
    pub session_token: Option<Secret>,
}

impl AwsCredentials {
    /// Looks up credentials the way the AWS tools do, from a passed-in environment:
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the
    /// profile `AWS_PROFILE` (default `default`) of the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `<home>/.aws/credentials`).
    /// The error lists every place looked at.
    pub fn from_env_and_files(
        env: &HashMap<String, String>,
        home: Option<&Path>,
    ) -> Result<Self, Error> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut looked = Vec::new();
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(key)) => {
                return Ok(AwsCredentials {
                    access_key_id: id.to_string(),
                    secret_access_key: Secret::new(key),
                    session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
                });
            }
            (Some(_), None) => looked.push(
                "environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
            ),
            (None, Some(_)) => looked.push(
                "environment: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
            ),
            (None, None) => looked
                .push("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set".into()),
        }
        let profile = get("AWS_PROFILE").unwrap_or("default");
        let file: Option<PathBuf> = get("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join("credentials")));
        match file {
            None => looked.push("shared credentials file: no home directory known".into()),
            Some(path) => match std::fs::read_to_string(&path) {
                Err(e) => looked.push(format!("{}: {e}", path.display())),
                Ok(text) => {
                    let section = ini_section(&text, profile);
                    let id = section.get("aws_access_key_id");
                    let key = section.get("aws_secret_access_key");
                    if let (Some(id), Some(key)) = (id, key) {
                        return Ok(AwsCredentials {
                            access_key_id: id.clone(),
                            secret_access_key: Secret::new(key.clone()),
                            session_token: section
                                .get("aws_session_token")
                                .map(|t| Secret::new(t.clone())),
                        });
                    }
                    looked.push(format!(
                        "{}: profile [{profile}] lacks aws_access_key_id and/or aws_secret_access_key",
                        path.display()
                    ));
                }
            },
        }
        Err(Error::new(
            KIND,
            Operation::Authenticate,
            None,
            ErrorKind::Config,
            format!("no AWS credentials found; looked at: {}", looked.join("; ")),
        ))
    }
}

/// The `key = value` pairs of `[profile]` in a tiny INI file (keys lowercased).
fn ini_section(text: &str, profile: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside =
                name == profile || name.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// The Route 53 adapter.
#[derive(Debug)]
pub struct Route53 {
    http: HttpClient,
    credentials: Credentials,
    cfg: Config,
    profile: Profile,
    write_lock: tokio::sync::Mutex<()>,
}

impl Route53 {
    /// Validates `cfg` and builds the adapter; no request is sent.
    pub fn new(cfg: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let config_err =
            |m: &str| Error::new(KIND, Operation::Authenticate, None, ErrorKind::Config, m);
        if cfg.access_key_id.trim().is_empty() {
            return Err(config_err("the access key id is empty"));
        }
        if cfg.secret_access_key.is_empty() {
            return Err(config_err("the secret access key is empty"));
        }
        if cfg.page_size == 0 {
            return Err(config_err("page_size must be at least 1"));
        }
        let http = HttpClient::new(KIND, &cfg.base_url, policy, map_error)?;
        let credentials = Credentials::new(
            cfg.access_key_id.clone(),
            cfg.secret_access_key.expose().to_string(),
            cfg.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "maildns",
        );
        Ok(Route53 {
            http,
            credentials,
            cfg,
            profile: crate::registry::profile(KIND)?,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Sends a signed request (signed afresh for every attempt).
    async fn call(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        method: Method,
        url: url::Url,
        body: Option<String>,
    ) -> Result<http::Response, Error> {
        let idempotent = if method == Method::GET {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        };
        self.http
            .send(op, name, idempotent, |client| {
                let mut req = client.request(method.clone(), url.clone());
                let body_bytes = body.as_deref().unwrap_or("").as_bytes();
                let mut headers: Vec<(&str, &str)> = Vec::new();
                if body.is_some() {
                    headers.push(("content-type", "application/xml"));
                }
                match self.sign_headers(method.as_str(), url.as_str(), &headers, body_bytes) {
                    Ok(signed) => {
                        for (k, v) in signed {
                            req = req.header(k, v);
                        }
                    }
                    // Unsigned requests are refused by the host with its own auth error.
                    Err(e) => tracing::warn!(provider = KIND, "SigV4 signing failed: {e}"),
                }
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                if let Some(b) = &body {
                    req = req.body(b.clone());
                }
                req
            })
            .await
    }

    fn sign_headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("route53")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> url::Url {
        let mut u = self.http.url(path);
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// Every TXT set at exactly `name` (record sets without a routing policy only).
    async fn read(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<TxtSet>, Error> {
        let want = name.to_dotted();
        let page = self.cfg.page_size.to_string();
        let mut start_name = want.clone();
        let mut start_type = "TXT".to_string();
        let mut start_id: Option<String> = None;
        let mut found: Option<TxtSet> = None;
        loop {
            let mut q = vec![
                ("name", start_name.as_str()),
                ("type", start_type.as_str()),
                ("maxitems", page.as_str()),
            ];
            if let Some(id) = &start_id {
                q.push(("identifier", id.as_str()));
            }
            let url = self.url(&format!("hostedzone/{}/rrset", zone.id), &q);
            let resp = self.call(op, Some(name), Method::GET, url, None).await?;
            let page = parse_rrsets(&resp.body, name, op)?;
            let list = page.list;
            let past = page.past;
            if page.set.is_some() {
                found = page.set;
            }
            let next_same = list
                .next_record_name
                .as_deref()
                .is_some_and(|n| decode_name(n).eq_ignore_ascii_case(&want))
                && list.next_record_type.as_deref() == Some("TXT");
            if past || !list.is_truncated || !next_same || found.is_some() {
                return Ok(found);
            }
            start_name = list.next_record_name.unwrap_or_default();
            start_type = list.next_record_type.unwrap_or_default();
            start_id = list.next_record_identifier;
        }
    }

    async fn change(
        &self,
        zone: &Zone,
        name: &Fqdn,
        action: &str,
        set: &TxtSet,
        op: Operation,
    ) -> Result<(), Error> {
        let body = change_batch_xml(action, name, set);
        let url = self.url(&format!("hostedzone/{}/rrset/", zone.id), &[]);
        let resp = self
            .call(op, Some(name), Method::POST, url, Some(body))
            .await?;
        let info: ChangeResponse = parse_xml(&resp.body, op, name)?;
        if self.cfg.wait_insync {
            self.wait_insync(&info.change_info, name).await?;
        }
        Ok(())
    }

    async fn wait_insync(&self, info: &ChangeInfo, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::WaitForChange;
        let id = info.id.trim_start_matches("/change/").to_string();
        let start = Instant::now();
        let mut status = info.status.clone();
        while status != "INSYNC" {
            if start.elapsed() >= self.cfg.wait_timeout {
                return Err(Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::Server,
                    format!(
                        "change {id} still {status} after {}s",
                        self.cfg.wait_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
            let url = self.url(&format!("change/{id}"), &[]);
            let resp = self.call(op, Some(name), Method::GET, url, None).await?;
            let r: ChangeResponse = parse_xml(&resp.body, op, name)?;
            status = r.change_info.status;
        }
        Ok(())
    }

    async fn delete_locked(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let mut retried = false;
        loop {
            let Some(current) = self.read(zone, name, op).await? else {
                return Ok(());
            };
            match self.change(zone, name, "DELETE", &current, op).await {
                // Someone changed the set between our read and our delete: read again, once.
                Err(e) if e.kind == ErrorKind::Conflict && !retried => retried = true,
                other => return other,
            }
        }
    }
}

#[async_trait::async_trait]
impl Provider for Route53 {
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
        let page = self.cfg.page_size.to_string();
        for candidate in zone_candidates(name) {
            let want = candidate.to_dotted();
            let mut start_name = candidate.as_str().to_string();
            let mut start_id: Option<String> = None;
            let mut private: Option<String> = None;
            loop {
                let mut q = vec![
                    ("dnsname", start_name.as_str()),
                    ("maxitems", page.as_str()),
                ];
                if let Some(id) = &start_id {
                    q.push(("hostedzoneid", id.as_str()));
                }
                let url = self.url("hostedzonesbyname", &q);
                let resp = self.call(op, Some(name), Method::GET, url, None).await?;
                let list: ListHostedZonesByNameResponse = parse_xml(&resp.body, op, name)?;
                let mut past = false;
                for z in list.hosted_zones.items {
                    if !decode_name(&z.name).eq_ignore_ascii_case(&want) {
                        past = true;
                        break;
                    }
                    let id = z.id.trim_start_matches("/hostedzone/").to_string();
                    if z.config.is_some_and(|c| c.private_zone) {
                        private.get_or_insert(id);
                    } else {
                        return Ok(Zone {
                            name: candidate.clone(),
                            id,
                        });
                    }
                }
                let next_same = list
                    .next_dns_name
                    .as_deref()
                    .is_some_and(|n| decode_name(n).trim_end_matches('.') == candidate.as_str());
                if past || !list.is_truncated || !next_same {
                    break;
                }
                start_name = list.next_dns_name.unwrap_or_default();
                start_id = list.next_hosted_zone_id;
            }
            if let Some(id) = private {
                tracing::debug!(provider = KIND, zone = %candidate, "only a private hosted zone matches");
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
            format!("no hosted zone holds {name}"),
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.read(zone, name, Operation::Read).await
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        self.profile.check_set(KIND, op, name, &set.records)?;
        let _guard = self.write_lock.lock().await;
        if set.records.is_empty() {
            return self.delete_locked(zone, name).await;
        }
        self.change(zone, name, "UPSERT", set, op).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let _guard = self.write_lock.lock().await;
        self.delete_locked(zone, name).await
    }
}

/// One page of a `ListResourceRecordSets` answer, read for the TXT set at a name.
#[derive(Debug)]
pub struct RrsetPage {
    /// The TXT set at the name on this page (without a routing policy), if any.
    pub set: Option<TxtSet>,
    /// True when the page went past the name (another name or type came next).
    pub past: bool,
    list: ListResourceRecordSetsResponse,
}

/// Parses one `ListResourceRecordSetsResponse` page (XML) for the TXT set at `name`.
/// Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `route53` and `op` when the XML is not the documented
/// shape or a `Value` is not quoted strings (Route 53 returns every TXT value as
/// double-quoted strings, see
/// <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat>).
pub fn parse_rrsets(body: &[u8], name: &Fqdn, op: Operation) -> Result<RrsetPage, Error> {
    let want = name.to_dotted();
    let list: ListResourceRecordSetsResponse = parse_xml(body, op, name)?;
    let mut past = false;
    let mut found = None;
    for set in &list.resource_record_sets.items {
        let same_name = decode_name(&set.name).eq_ignore_ascii_case(&want);
        if !same_name || set.kind != "TXT" {
            past = true;
            break;
        }
        if set.set_identifier.is_some() {
            continue;
        }
        let mut records = Vec::new();
        for rr in &set.resource_records.items {
            records.push(
                parse_value(&rr.value)
                    .map_err(|m| Error::new(KIND, op, Some(name), ErrorKind::Protocol, m))?,
            );
        }
        found = Some(TxtSet {
            ttl: set.ttl.unwrap_or(0),
            records,
        });
    }
    Ok(RrsetPage {
        set: found,
        past,
        list,
    })
}

/// The `ChangeResourceRecordSetsRequest` document for one change.
pub fn change_batch_xml(action: &str, name: &Fqdn, set: &TxtSet) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes><Change>",
    );
    out.push_str(&format!(
        "<Action>{}</Action><ResourceRecordSet><Name>{}</Name><Type>TXT</Type><TTL>{}</TTL><ResourceRecords>",
        xml_escape(action),
        xml_escape(&name.to_dotted()),
        set.ttl
    ));
    for r in &set.records {
        out.push_str("<ResourceRecord><Value>");
        out.push_str(&xml_escape(&format_value(r)));
        out.push_str("</Value></ResourceRecord>");
    }
    out.push_str("</ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One record as a Route 53 `Value`: quoted strings separated by spaces, `"` and `\`
/// backslash-escaped, bytes outside printable ASCII as `\ooo` octal.
pub fn format_value(record: &TxtRecord) -> String {
    let mut out = String::new();
    for (i, s) in record.strings().iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in s.as_bytes() {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03o}")),
            }
        }
        out.push('"');
    }
    out
}

/// Parses a Route 53 `Value` (quoted strings separated by white space; `\ooo` octal
/// and `\x` escapes).
///
/// # Errors
/// A message for text outside quotes, an unterminated quote, a bad escape, a string
/// over 255 bytes, or an empty value.
pub fn parse_value(value: &str) -> Result<TxtRecord, String> {
    let b = value.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'"') => {
                i += 1;
                let mut buf = Vec::new();
                loop {
                    match b.get(i) {
                        None => return Err(format!("unterminated quote in TXT value {value:?}")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let (byte, used) = unescape_octal(b, i)
                                .ok_or_else(|| format!("bad escape in TXT value {value:?}"))?;
                            buf.push(byte);
                            i += used;
                        }
                        Some(&c) => {
                            buf.push(c);
                            i += 1;
                        }
                    }
                }
                strings.push(
                    CharacterString::new(buf).map_err(|e| format!("{e} in TXT value {value:?}"))?,
                );
            }
            Some(_) => {
                // Route 53 answers every TXT value as quoted strings: anything else is
                // not its format, and guessing where the strings end could rewrite a
                // value we do not own.
                return Err(format!(
                    "TXT value {value:?} is not a quoted string at byte {i}"
                ));
            }
            None => break,
        }
    }
    TxtRecord::from_strings(strings).ok_or_else(|| format!("empty TXT value {value:?}"))
}

fn unescape_octal(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = *b.get(i + 1)?;
    if c.is_ascii_digit() {
        let d = b.get(i + 1..i + 4)?;
        if !d.iter().all(|x| (b'0'..=b'7').contains(x)) {
            return None;
        }
        let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
        Some((u8::try_from(v).ok()?, 4))
    } else {
        Some((c, 2))
    }
}

/// A name as Route 53 returns it, with `\ooo` escapes decoded.
pub fn decode_name(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\'
            && let Some((byte, used)) = unescape_octal(b, i)
        {
            out.push(byte);
            i += used;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_xml<T: serde::de::DeserializeOwned>(
    body: &[u8],
    op: Operation,
    name: &Fqdn,
) -> Result<T, Error> {
    let text = String::from_utf8_lossy(body);
    quick_xml::de::from_str(&text).map_err(|e| {
        Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Protocol,
            format!("unexpected response body: {e}"),
        )
    })
}

/// Maps Route 53's XML error bodies (`ErrorResponse`, `InvalidChangeBatch`).
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let text = String::from_utf8_lossy(f.body);
    if let Ok(e) = quick_xml::de::from_str::<ErrorResponse>(&text) {
        let kind = match e.error.code.as_str() {
            "Throttling"
            | "ThrottlingException"
            | "PriorRequestNotComplete"
            | "RequestLimitExceeded"
            | "TooManyRequestsException" => ErrorKind::RateLimited,
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "InvalidSignatureException"
            | "UnrecognizedClientException"
            | "AuthFailure" => ErrorKind::Auth,
            "AccessDenied" | "AccessDeniedException" => ErrorKind::Permission,
            "NoSuchHostedZone" => ErrorKind::ZoneNotFound,
            _ => http::kind_for_status(f.status),
        };
        return (kind, format!("{}: {}", e.error.code, e.error.message));
    }
    if let Ok(e) = quick_xml::de::from_str::<InvalidChangeBatch>(&text) {
        let msgs = e.messages.items.join("; ");
        let kind = if msgs.contains("but it was not found") || msgs.contains("do not match") {
            ErrorKind::Conflict
        } else {
            ErrorKind::Invalid
        };
        return (kind, format!("InvalidChangeBatch: {msgs}"));
    }
    http::default_mapper(f)
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    #[serde(rename = "Error")]
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct InvalidChangeBatch {
    #[serde(rename = "Messages")]
    messages: Messages,
}

#[derive(Debug, Deserialize)]
struct Messages {
    #[serde(rename = "Message", default)]
    items: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ListHostedZonesByNameResponse {
    #[serde(rename = "HostedZones", default)]
    hosted_zones: HostedZones,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextDNSName")]
    next_dns_name: Option<String>,
    #[serde(rename = "NextHostedZoneId")]
    next_hosted_zone_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct HostedZones {
    #[serde(rename = "HostedZone", default)]
    items: Vec<HostedZone>,
}

#[derive(Debug, Deserialize)]
struct HostedZone {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Config")]
    config: Option<HostedZoneConfig>,
}

#[derive(Debug, Deserialize)]
struct HostedZoneConfig {
    #[serde(rename = "PrivateZone", default)]
    private_zone: bool,
}

#[derive(Debug, Deserialize)]
struct ListResourceRecordSetsResponse {
    #[serde(rename = "ResourceRecordSets", default)]
    resource_record_sets: ResourceRecordSets,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextRecordName")]
    next_record_name: Option<String>,
    #[serde(rename = "NextRecordType")]
    next_record_type: Option<String>,
    #[serde(rename = "NextRecordIdentifier")]
    next_record_identifier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourceRecordSets {
    #[serde(rename = "ResourceRecordSet", default)]
    items: Vec<ResourceRecordSet>,
}

#[derive(Debug, Deserialize)]
struct ResourceRecordSet {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "SetIdentifier")]
    set_identifier: Option<String>,
    #[serde(rename = "TTL")]
    ttl: Option<u32>,
    #[serde(rename = "ResourceRecords", default)]
    resource_records: ResourceRecords,
}

#[derive(Debug, Default, Deserialize)]
struct ResourceRecords {
    #[serde(rename = "ResourceRecord", default)]
    items: Vec<ResourceRecord>,
}

#[derive(Debug, Deserialize)]
struct ResourceRecord {
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Debug, Deserialize)]
struct ChangeResponse {
    #[serde(rename = "ChangeInfo")]
    change_info: ChangeInfo,
}

#[derive(Debug, Deserialize)]
struct ChangeInfo {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Status")]
    status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_with_octal_escapes() {
        let r = TxtRecord::from_strings(vec![
            CharacterString::new(b"a\"b\\c".to_vec()).unwrap(),
            CharacterString::new(b"x\x00\xff y".to_vec()).unwrap(),
        ])
        .unwrap();
        let v = format_value(&r);
        assert_eq!(v, r#""a\"b\\c" "x\000\377 y""#);
        assert_eq!(parse_value(&v).unwrap(), r);
    }

    #[test]
    fn names_decode_octal() {
        assert_eq!(decode_name("\\052.example.com."), "*.example.com.");
        assert_eq!(decode_name("_dmarc.example.com."), "_dmarc.example.com.");
    }

    #[test]
    fn credentials_from_env_then_file() {
        let mut env = HashMap::new();
        env.insert("AWS_ACCESS_KEY_ID".to_string(), "AKIDENV".to_string());
        env.insert(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "s3cr3t-env".to_string(),
        );
        let c = AwsCredentials::from_env_and_files(&env, None).unwrap();
        assert_eq!(c.access_key_id, "AKIDENV");
        assert_eq!(c.secret_access_key.expose(), "s3cr3t-env");

        let dir = std::env::temp_dir().join(format!("maildns-r53-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = def-secret\n\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=work-secret\naws_session_token=tok\n",
        )
        .unwrap();
        let mut env = HashMap::new();
        env.insert("AWS_PROFILE".to_string(), "work".to_string());
        let c = AwsCredentials::from_env_and_files(&env, Some(&dir)).unwrap();
        assert_eq!(c.access_key_id, "AKIDWORK");
        assert_eq!(c.session_token.unwrap().expose(), "tok");
        env.insert("AWS_PROFILE".to_string(), "missing".to_string());
        let e = AwsCredentials::from_env_and_files(&env, Some(&dir)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(e.message.contains("profile [missing]"), "{e}");
        assert!(
            !e.to_string().contains("def-secret") && !e.to_string().contains("work-secret"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn throttling_is_rate_limited() {
        let body = br#"<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let h = reqwest::header::HeaderMap::new();
        let f = Failure {
            status: reqwest::StatusCode::BAD_REQUEST,
            headers: &h,
            body,
        };
        assert_eq!(
            map_error(&f),
            (
                ErrorKind::RateLimited,
                "Throttling: Rate exceeded".to_string()
            )
        );
    }
}

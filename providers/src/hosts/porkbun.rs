//! Porkbun (JSON API v3): record-level, one `id` per TXT value.
//!
//! - Every call is a `POST` whose JSON body carries `apikey` and `secretapikey`
//!   beside the call's own fields; the credential is one secret,
//!   `APIKEY:SECRETAPIKEY`.
//! - Zones are the account's registered domains: `POST
//!   /dns/retrieveByNameType/{candidate}/TXT` walking up the labels (an error for a name that is not a domain of the
//!   account; "not opted in to API access" is reported as such and ends the walk).
//! - Values at a name: `POST /dns/retrieveByNameType/{domain}/TXT/{subdomain}`
//!   (no subdomain for the apex); a zone's every record: `POST /dns/retrieve/{domain}`.
//!   Answers give `name` as the FQDN and `ttl` as a string.
//! - `content` is ONE plain string (the record's joined value).
//! - Writes by id only: `POST /dns/create/{domain}`, `/dns/edit/{domain}/{id}` (TTL),
//!   `/dns/delete/{domain}/{id}`. The by-name-and-type forms (`editByNameType`,
//!   `deleteByNameType`) rewrite or remove every TXT value at the name — SPF and
//!   site verifications alike — and are never used.
//! - Errors: `{"status":"ERROR","message":"…"}` (HTTP 400). Throttling is not a
//!   429: Porkbun's proxy answers HTTP 503 with an HTML page, mapped to
//!   [`ErrorKind::RateLimited`] and retried like a 429.
//!
//! Host documentation: <https://porkbun.com/api/json/v3/documentation>.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_all;
use crate::changeset::{Observed, TxtChange, ZoneSets};
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
    ZoneProbe, domain_candidates, walk_zones,
};

const KIND: &str = "porkbun";

/// The registry entry: a secret credential `APIKEY:SECRETAPIKEY`; `base_url`
/// overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/porkbun.toml"),
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
    let mut cfg = Config::from_secret(&credential.secret(KIND)?)?;
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    Ok(std::sync::Arc::new(Porkbun::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.porkbun.com/api/json/v3";

/// Account settings for Porkbun.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API key (`pk1_…`).
    pub api_key: Secret,
    /// The secret API key (`sk1_…`).
    pub secret_api_key: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
}

impl Config {
    /// A config for the real API.
    pub fn new(api_key: Secret, secret_api_key: Secret) -> Self {
        Config {
            api_key,
            secret_api_key,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }

    /// A config from the one secret maildns stores: `APIKEY:SECRETAPIKEY`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the secret is not two non-empty parts joined by
    /// `:` (the message never quotes it).
    pub fn from_secret(secret: &Secret) -> Result<Self, Error> {
        let (key, secret_key) = super::split_secret(KIND, secret, ':', "APIKEY:SECRETAPIKEY")?;
        Ok(Config::new(key, secret_key))
    }
}

/// The Porkbun adapter.
#[derive(Debug)]
pub struct Porkbun {
    http: HttpClient,
    api_key: Secret,
    secret_api_key: Secret,
    profile: Profile,
}

#[derive(Deserialize)]
struct ErrBody {
    status: String,
    #[serde(default)]
    message: String,
}

/// The message Porkbun gives for a domain whose "API access" switch is off.
const NOT_OPTED_IN: &str = "not opted in to api access";

/// Maps Porkbun's failures: the proxy's HTML 503 is throttling (retried, then
/// [`ErrorKind::RateLimited`]); `{"status":"ERROR","message":…}` by its message.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let html = f
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if f.status.as_u16() == 503 && (html || serde_json::from_slice::<Value>(f.body).is_err()) {
        return (
            ErrorKind::RateLimited,
            "HTTP 503 with an HTML page: Porkbun's throttling (about 1 request per second per API key)"
                .to_string(),
        );
    }
    match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if b.status == "ERROR" && !b.message.is_empty() => {
            let lower = b.message.to_ascii_lowercase();
            let kind = if lower.contains("api key") {
                ErrorKind::Auth
            } else if lower.contains(NOT_OPTED_IN) {
                ErrorKind::Permission
            } else {
                match f.status.as_u16() {
                    400 => ErrorKind::Invalid,
                    _ => kind_for_status(f.status),
                }
            };
            (kind, b.message)
        }
        _ => crate::http::default_mapper(f),
    }
}

#[derive(Deserialize)]
struct RecordList {
    status: String,
    #[serde(default)]
    records: Option<Vec<PbRecord>>,
}

#[derive(Deserialize)]
struct PbRecord {
    id: Value,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    content: String,
    ttl: Value,
}

/// One stored TXT record as listed: its id, owner name, value and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// Porkbun's record id.
    pub id: String,
    /// Owner name, fully qualified, lowercased.
    pub name: String,
    /// The value (`content`: Porkbun keeps no string boundaries).
    pub content: String,
    /// TTL in seconds.
    pub ttl: u32,
}

/// A number Porkbun may send as a JSON string (`"600"`) or number.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Parses a `retrieve` or `retrieveByNameType` answer: its TXT records (other
/// types are skipped when `txt_only` is false, refused otherwise). Pure, for the
/// read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `porkbun`, `op` and `name` when the body is not
/// `{"status":"SUCCESS","records":[{id,name,type,content,ttl}]}` with ids and TTLs
/// as numbers or numeric strings (<https://porkbun.com/api/json/v3/documentation>).
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
    txt_only: bool,
) -> Result<Vec<ListedRecord>, Error> {
    let bad = |m: String| super::bad_body(KIND, op, name, m);
    let list: RecordList = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if list.status != "SUCCESS" {
        return Err(bad(format!("status {:?}, expected SUCCESS", list.status)));
    }
    let records = list.records.ok_or_else(|| bad("no records list".into()))?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if r.kind != "TXT" {
            if txt_only {
                return Err(bad(format!(
                    "a {} record in the answer to a TXT query",
                    r.kind
                )));
            }
            continue;
        }
        let id = match &r.id {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(bad(format!("record id {other} is not an id"))),
        };
        let ttl = number(&r.ttl)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad(format!("record {id}: ttl {} is not a number", r.ttl)))?;
        out.push(ListedRecord {
            id,
            name: r.name.trim_end_matches('.').to_ascii_lowercase(),
            content: r.content,
            ttl,
        });
    }
    Ok(out)
}

/// Parses a `create` answer: `{"status":"SUCCESS","id":…}`.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the answer is not that shape.
pub fn parse_created(body: &[u8], name: &Fqdn) -> Result<String, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| super::bad_body(KIND, Operation::Replace, name, e))?;
    match (&v["status"], &v["id"]) {
        (Value::String(s), Value::Number(id)) if s == "SUCCESS" => Ok(id.to_string()),
        (Value::String(s), Value::String(id)) if s == "SUCCESS" && !id.is_empty() => Ok(id.clone()),
        _ => Err(super::bad_body(
            KIND,
            Operation::Replace,
            name,
            "a create answer without status SUCCESS and an id",
        )),
    }
}

fn set_of(records: &[ListedRecord]) -> Option<TxtSet> {
    let first = records.first()?;
    Some(TxtSet {
        ttl: first.ttl,
        records: records
            .iter()
            .map(|r| TxtRecord::from_value(r.content.as_bytes()))
            .collect(),
    })
}

impl Porkbun {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a key is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::require_nonempty(
            KIND,
            config.api_key.is_empty() || config.secret_api_key.is_empty(),
            "API key or the secret API key",
        )?;
        Ok(Porkbun {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            api_key: config.api_key,
            secret_api_key: config.secret_api_key,
            profile: crate::registry::profile(KIND)?,
        })
    }

    /// `fields` with the credential added, as Porkbun wants it in every body.
    fn body(&self, mut fields: Value) -> Value {
        if let Value::Object(m) = &mut fields {
            m.insert("apikey".into(), Value::String(self.api_key.expose().into()));
            m.insert(
                "secretapikey".into(),
                Value::String(self.secret_api_key.expose().into()),
            );
        }
        fields
    }

    async fn post(
        &self,
        op: Operation,
        name: &Fqdn,
        idempotency: Idempotency,
        path: &str,
        fields: Value,
    ) -> Result<Vec<u8>, Error> {
        let body = self.body(fields);
        let resp = self
            .http
            .send(op, Some(name), idempotency, |c| {
                self.http.request(c, Method::POST, path).json(&body)
            })
            .await?;
        Ok(resp.body)
    }

    fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
        super::relative_name(KIND, zone, name, op, super::Apex::Empty)
    }

    async fn list(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<ListedRecord>, Error> {
        let sub = Self::relative(zone, name, op)?;
        let path = if sub.is_empty() {
            format!("dns/retrieveByNameType/{}/TXT", zone.id)
        } else {
            format!("dns/retrieveByNameType/{}/TXT/{sub}", zone.id)
        };
        let body = self
            .post(op, name, Idempotency::Idempotent, &path, json!({}))
            .await?;
        let recs = parse_records(&body, name, op, true)?;
        if let Some(r) = recs.iter().find(|r| r.name != name.as_str()) {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("record {} at {} in the answer for this name", r.id, r.name),
            ));
        }
        Ok(recs)
    }

    /// Makes the records at `name` hold exactly `set`, given the records there now.
    async fn write(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: &TxtSet,
        current: Vec<ListedRecord>,
        op: Operation,
    ) -> Result<(), Error> {
        let desired: Vec<Vec<u8>> = check_all(KIND, &self.profile, name, set)?
            .iter()
            .map(TxtRecord::value)
            .fold(Vec::new(), |mut v, x| {
                if !v.contains(&x) {
                    v.push(x);
                }
                v
            });
        let sub = Self::relative(zone, name, op)?;
        let diff = super::diff_records(&desired, current, |rec, d| {
            d.as_slice() == rec.content.as_bytes()
        });
        let ttl = set.ttl.to_string();
        for d in diff.create {
            // printable_ascii_only was checked above, so this is the value as sent.
            let content = String::from_utf8_lossy(d);
            let fields = json!({"name": sub, "type": "TXT", "content": content, "ttl": ttl});
            let body = self
                .post(
                    op,
                    name,
                    Idempotency::NotIdempotent,
                    &format!("dns/create/{}", zone.id),
                    fields,
                )
                .await?;
            parse_created(&body, name)?;
        }
        for rec in diff.keep.iter().filter(|r| r.ttl != set.ttl) {
            let fields = json!({"name": sub, "type": "TXT", "content": rec.content, "ttl": ttl});
            self.post(
                op,
                name,
                Idempotency::Idempotent,
                &format!("dns/edit/{}/{}", zone.id, rec.id),
                fields,
            )
            .await?;
        }
        for rec in diff.delete {
            self.delete_id(zone, name, &rec.id, op).await?;
        }
        Ok(())
    }

    async fn delete_id(
        &self,
        zone: &Zone,
        name: &Fqdn,
        id: &str,
        op: Operation,
    ) -> Result<(), Error> {
        self.post(
            op,
            name,
            Idempotency::Idempotent,
            &format!("dns/delete/{}/{id}", zone.id),
            json!({}),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait::async_trait]
impl Provider for Porkbun {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        walk_zones(
            KIND,
            name,
            domain_candidates(name),
            "no domain of this account holds the name",
            |cand| async move {
                let path = format!("dns/retrieveByNameType/{cand}/TXT");
                let r = self
                    .post(
                        Operation::FindZone,
                        name,
                        Idempotency::Idempotent,
                        &path,
                        json!({}),
                    )
                    .await;
                // "Invalid domain." and the like: not a domain of this account.
                match ZoneProbe::found_unless(r.map(|_| cand.to_string()), |e| {
                    e.kind == ErrorKind::Invalid
                })? {
                    ZoneProbe::Absent(Some(m)) => {
                        Ok(ZoneProbe::Absent(Some(format!("Porkbun: {m}"))))
                    }
                    found => Ok(found),
                }
            },
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(set_of(&self.list(zone, name, Operation::Read).await?))
    }

    /// One `POST /dns/retrieve/{domain}` lists every record of the domain.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let body = self
            .post(
                op,
                &zone.name,
                Idempotency::Idempotent,
                &format!("dns/retrieve/{}", zone.id),
                json!({}),
            )
            .await?;
        let mut by_name: BTreeMap<String, Vec<ListedRecord>> = BTreeMap::new();
        for r in parse_records(&body, &zone.name, op, false)? {
            by_name.entry(r.name.clone()).or_default().push(r);
        }
        Ok(names
            .iter()
            .map(|n| {
                let set = by_name.get(n.as_str()).and_then(|r| set_of(r));
                (n.clone(), Observed::of(set))
            })
            .collect())
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        if check_all(KIND, &self.profile, name, set)?.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        let current = self.list(zone, name, op).await?;
        self.write(zone, name, set, current, op).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        for rec in self.list(zone, name, op).await? {
            self.delete_id(zone, name, &rec.id, op).await?;
        }
        Ok(())
    }

    /// The write lists the records at the name anyway: the compare with what was
    /// read is made on that same list, so no extra request is spent.
    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let op = change.operation();
        if let Some(set) = change.wanted() {
            check_all(KIND, &self.profile, &change.name, set)?;
        }
        let current = self.list(zone, &change.name, op).await?;
        // Nothing to write when the change was applied before; a conflict
        // when the set is neither what was read nor what is wanted.
        if !change.still_to_write(KIND, set_of(&current).as_ref())? {
            return Ok(());
        }
        match change.wanted() {
            Some(set) => self.write(zone, &change.name, set, current, op).await,
            None => {
                for rec in current {
                    self.delete_id(zone, &change.name, &rec.id, op).await?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Fqdn {
        Fqdn::parse(s).unwrap()
    }

    #[test]
    fn parse_records_reads_string_ttls_and_fqdn_names() {
        let body = br#"{"status":"SUCCESS","records":[{"id":"106926659","name":"_dmarc.Example.com","type":"TXT","content":"v=DMARC1; p=none","ttl":"600","prio":"0","notes":""}]}"#;
        let got = parse_records(body, &n("_dmarc.example.com"), Operation::Read, true).unwrap();
        assert_eq!(
            got,
            [ListedRecord {
                id: "106926659".into(),
                name: "_dmarc.example.com".into(),
                content: "v=DMARC1; p=none".into(),
                ttl: 600
            }]
        );
    }

    #[test]
    fn parse_records_refuses_other_shapes() {
        let name = n("example.com");
        for body in [
            &br#"{"status":"ERROR","message":"x"}"#[..],
            br#"{"status":"SUCCESS"}"#,
            br#"{"status":"SUCCESS","records":[{"id":"1","name":"example.com","type":"A","content":"192.0.2.1","ttl":"600"}]}"#,
            br#"{"status":"SUCCESS","records":[{"id":"1","name":"example.com","type":"TXT","content":"x","ttl":"soon"}]}"#,
            br#"<html>busy</html>"#,
        ] {
            let e = parse_records(body, &name, Operation::Read, true).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
        }
        // A whole-domain listing skips other types.
        let body = br#"{"status":"SUCCESS","records":[{"id":1,"name":"example.com","type":"A","content":"192.0.2.1","ttl":600}]}"#;
        assert!(
            parse_records(body, &name, Operation::Read, false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_secret_is_two_parts_and_never_quoted() {
        let c = Config::from_secret(&Secret::new("pk1_abc:sk1_def")).unwrap();
        assert_eq!(
            (c.api_key.expose(), c.secret_api_key.expose()),
            ("pk1_abc", "sk1_def")
        );
        for bad in ["pk1_abc", "pk1_abc:", ":sk1_def", ""] {
            let e = Config::from_secret(&Secret::new(bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config);
            assert!(e.message.contains("APIKEY:SECRETAPIKEY"), "{e}");
            assert!(bad.is_empty() || !e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn html_503_is_throttling() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("content-type", "text/html; charset=UTF-8".parse().unwrap());
        let f = Failure {
            status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            headers: &h,
            body: b"<html><body>503 Service Temporarily Unavailable</body></html>",
        };
        assert_eq!(map_error(&f).0, ErrorKind::RateLimited);
        let h = reqwest::header::HeaderMap::new();
        let f = Failure {
            status: reqwest::StatusCode::BAD_REQUEST,
            headers: &h,
            body: br#"{"status":"ERROR","message":"Domain is not opted in to API access."}"#,
        };
        assert_eq!(map_error(&f).0, ErrorKind::Permission);
        let f = Failure {
            status: reqwest::StatusCode::BAD_REQUEST,
            headers: &h,
            body: br#"{"status":"ERROR","message":"Invalid API key. (002)"}"#,
        };
        assert_eq!(map_error(&f).0, ErrorKind::Auth);
    }
}

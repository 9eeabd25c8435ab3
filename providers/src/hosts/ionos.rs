//! IONOS (Hosting DNS API, `/dns/v1`): record-level, one UUID per value.
//!
//! - Header `X-API-Key: <public prefix>.<secret>`: one secret, both parts joined
//!   by a dot as IONOS issues them. (Not the IONOS *Cloud* API, a different product.)
//! - Zone: `GET /v1/zones`, the longest zone name that holds the name.
//! - Values at a name: `GET /v1/zones/{id}?suffix=&recordName=&recordType=TXT`;
//!   a zone's every TXT record: `GET /v1/zones/{id}?recordType=TXT`. Names are
//!   fully qualified, in requests and answers.
//! - IONOS takes `content` unquoted but stores and returns it quoted (`"v=DMARC1;
//!   p=none"`, inner `"` and `\` escaped): maildns compares values after undoing
//!   that quoting, so a second run finds the set in sync. An unquoted answer is a
//!   protocol error (nothing is guessed from it).
//! - Writes by id only: `POST /v1/zones/{id}/records` (an array: every value to
//!   create in one request), `PUT …/records/{record}` (TTL), `DELETE
//!   …/records/{record}`. `PATCH /v1/zones/{id}` (replaces every record of each
//!   name and type sent) and `PUT /v1/zones/{id}` (replaces the whole zone) are
//!   never used.
//! - Errors: an array of `{"code","message"}` (`UNAUTHORIZED`, `RECORD_NOT_FOUND`,
//!   `INVALID_RECORD`, …), optionally with `parameters`.
//!
//! Host documentation: <https://developer.hosting.ionos.com/docs/dns>.

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
};

const KIND: &str = "ionos";

/// The registry entry: a secret credential `prefix.secret`; `base_url` overrides
/// the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/ionos.toml"),
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
    Ok(std::sync::Arc::new(Ionos::new(cfg, policy)?))
}

/// The real API (the adapter adds `v1/…`).
pub const DEFAULT_BASE_URL: &str = "https://api.hosting.ionos.com/dns";

/// Account settings for IONOS.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API key as IONOS issues it: `<public prefix>.<secret>`.
    pub api_key: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
}

impl Config {
    /// A config for the real API.
    pub fn new(api_key: Secret) -> Self {
        Config {
            api_key,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }
}

/// The IONOS adapter.
#[derive(Debug)]
pub struct Ionos {
    http: HttpClient,
    api_key: Secret,
    profile: Profile,
}

#[derive(Deserialize)]
struct ErrItem {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    parameters: Option<Value>,
}

/// Maps IONOS's error array (`[{"code","message","parameters"}]`) by its first code.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    match serde_json::from_slice::<Vec<ErrItem>>(f.body) {
        Ok(items) if !items.is_empty() => {
            let kind = match items[0].code.as_str() {
                "UNAUTHORIZED" => ErrorKind::Auth,
                "FORBIDDEN" | "ACCESS_DENIED" => ErrorKind::Permission,
                "ZONE_NOT_FOUND" | "NOT_FOUND" => ErrorKind::ZoneNotFound,
                "INVALID_RECORD" | "BAD_REQUEST" | "INVALID_REQUEST" => ErrorKind::Invalid,
                "TOO_MANY_REQUESTS" => ErrorKind::RateLimited,
                "INTERNAL_SERVER_ERROR" => ErrorKind::Server,
                _ => kind_for_status(f.status),
            };
            let text: Vec<String> = items
                .iter()
                .map(|i| match i.parameters.as_ref().filter(|p| !p.is_null()) {
                    Some(p) => format!("{} ({}; {p})", i.message, i.code),
                    None => format!("{} ({})", i.message, i.code),
                })
                .collect();
            (kind, text.join("; "))
        }
        _ => crate::http::default_mapper(f),
    }
}

/// Undoes IONOS's quoting of TXT content: one or more `"…"` strings separated by
/// single spaces, with `\"` and `\\` escapes; returns the joined value.
///
/// # Errors
/// A message saying what is not that shape (unquoted text, another escape, an
/// unterminated quote).
pub fn unquote(content: &str) -> Result<Vec<u8>, String> {
    let b = content.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(format!("byte {i} is not an opening quote"));
        }
        i += 1;
        loop {
            match b.get(i) {
                None => return Err("unterminated quote".into()),
                Some(b'"') => break,
                Some(b'\\') => match b.get(i + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        out.push(c);
                        i += 2;
                    }
                    _ => return Err(format!("escape at byte {i} is not \\\" or \\\\")),
                },
                Some(&c) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        i += 1;
        match b.get(i) {
            None => return Ok(out),
            Some(b' ') => i += 1,
            Some(_) => return Err(format!("byte {i} follows a closing quote")),
        }
    }
}

/// One stored TXT record as read: its id, owner name, raw and unquoted value, TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// IONOS's record id (a UUID).
    pub id: String,
    /// Owner name, fully qualified, lowercased.
    pub name: String,
    /// The value as stored, IONOS's quoting undone.
    pub value: Vec<u8>,
    /// TTL in seconds.
    pub ttl: u32,
}

#[derive(Deserialize)]
struct ZoneItem {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct ZoneWithRecords {
    #[serde(default)]
    records: Vec<RawRecord>,
}

#[derive(Deserialize)]
struct RawRecord {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    content: String,
    ttl: u32,
}

/// Parses `GET /v1/zones`: `(id, name)` of every zone.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not an array of `{id,name,type}`.
pub fn parse_zones(body: &[u8], name: &Fqdn) -> Result<Vec<(String, String)>, Error> {
    let zones: Vec<ZoneItem> = serde_json::from_slice(body)
        .map_err(|e| super::bad_body(KIND, Operation::FindZone, name, e))?;
    Ok(zones
        .into_iter()
        .map(|z| (z.id, z.name.trim_end_matches('.').to_ascii_lowercase()))
        .collect())
}

/// Parses `GET /v1/zones/{id}?…recordType=TXT`: its TXT records, IONOS's quoting
/// undone. Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `ionos`, `op` and `name` when the body is not a
/// zone with `records` of `{id,name,type,content,ttl}`, a record is not TXT, or its
/// content is not quoted as IONOS quotes it.
pub fn parse_records(body: &[u8], name: &Fqdn, op: Operation) -> Result<Vec<ListedRecord>, Error> {
    let z: ZoneWithRecords =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::with_capacity(z.records.len());
    for r in z.records {
        if r.kind != "TXT" {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("a {} record in the answer to a TXT query", r.kind),
            ));
        }
        let value = unquote(&r.content).map_err(|e| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Protocol,
                format!(
                    "TXT content {:?} of record {} is not quoted as IONOS quotes it: {e}",
                    r.content, r.id
                ),
            )
        })?;
        out.push(ListedRecord {
            id: r.id,
            name: r.name.trim_end_matches('.').to_ascii_lowercase(),
            value,
            ttl: r.ttl,
        });
    }
    Ok(out)
}

fn set_of(records: &[ListedRecord]) -> Option<TxtSet> {
    let first = records.first()?;
    Some(TxtSet {
        ttl: first.ttl,
        records: records
            .iter()
            .map(|r| TxtRecord::from_value(&r.value))
            .collect(),
    })
}

impl Ionos {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the key is not `prefix.secret` (two non-empty
    /// parts joined by a dot; the message never quotes it) or the base URL is not
    /// https (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::split_secret(KIND, &config.api_key, '.', "PREFIX.SECRET")?;
        Ok(Ionos {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            api_key: Secret::new(config.api_key.expose().trim()),
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .header("X-API-Key", self.api_key.expose())
    }

    async fn get(
        &self,
        op: Operation,
        name: &Fqdn,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, Error> {
        let resp = self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, path).query(query)
            })
            .await?;
        Ok(resp.body)
    }

    async fn list(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<ListedRecord>, Error> {
        if !name.is_within(&zone.name) {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Config,
                format!("the name is outside zone {}", zone.name),
            ));
        }
        let path = format!("v1/zones/{}", zone.id);
        let q = [
            ("suffix", name.as_str()),
            ("recordName", name.as_str()),
            ("recordType", "TXT"),
        ];
        let body = self.get(op, name, &path, &q).await?;
        // `suffix` matches names below too: keep the name asked for.
        Ok(parse_records(&body, name, op)?
            .into_iter()
            .filter(|r| r.name == name.as_str())
            .collect())
    }

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
        let diff = super::diff_records(&desired, current, |rec, d| *d == rec.value);
        let records = format!("v1/zones/{}/records", zone.id);
        if !diff.create.is_empty() {
            // printable_ascii_only was checked, so each value is sent as it is.
            let body: Vec<Value> = diff
                .create
                .iter()
                .map(|d| {
                    json!({"name": name.as_str(), "type": "TXT",
                        "content": String::from_utf8_lossy(d), "ttl": set.ttl,
                        "prio": 0, "disabled": false})
                })
                .collect();
            self.http
                .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                    self.req(c, Method::POST, &records).json(&body)
                })
                .await?;
        }
        for rec in diff.keep.iter().filter(|r| r.ttl != set.ttl) {
            let path = format!("{records}/{}", rec.id);
            let body = json!({"content": String::from_utf8_lossy(&rec.value), "ttl": set.ttl,
                "prio": 0, "disabled": false});
            self.http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::PUT, &path).json(&body)
                })
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
        let path = format!("v1/zones/{}/records/{id}", zone.id);
        self.http
            .delete(op, name, |c| self.req(c, Method::DELETE, &path))
            .await
    }
}

#[async_trait::async_trait]
impl Provider for Ionos {
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
        let op = Operation::FindZone;
        let body = self.get(op, name, "v1/zones", &[]).await?;
        let mut best: Option<Zone> = None;
        for (id, zname) in parse_zones(&body, name)? {
            let Ok(apex) = Fqdn::parse(&zname) else {
                continue;
            };
            if name.is_within(&apex)
                && best
                    .as_ref()
                    .is_none_or(|b| apex.as_str().len() > b.name.as_str().len())
            {
                best = Some(Zone { name: apex, id });
            }
        }
        best.ok_or_else(|| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::ZoneNotFound,
                "no zone of this account holds the name",
            )
        })
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(set_of(&self.list(zone, name, Operation::Read).await?))
    }

    /// One `GET /v1/zones/{id}?recordType=TXT` lists the zone's TXT records.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let path = format!("v1/zones/{}", zone.id);
        let body = self
            .get(op, &zone.name, &path, &[("recordType", "TXT")])
            .await?;
        let mut by_name: BTreeMap<String, Vec<ListedRecord>> = BTreeMap::new();
        for r in parse_records(&body, &zone.name, op)? {
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
    /// read is made on that list, after IONOS's quoting is undone.
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
    fn unquote_undoes_ionos_quoting_only() {
        assert_eq!(
            unquote("\"v=DMARC1; p=none\"").unwrap(),
            b"v=DMARC1; p=none"
        );
        assert_eq!(unquote(r#""a\"b\\c""#).unwrap(), b"a\"b\\c");
        assert_eq!(
            unquote(r#""part-one" "part-two""#).unwrap(),
            b"part-onepart-two"
        );
        assert_eq!(unquote("\"\"").unwrap(), b"");
        for bad in [
            "v=spf1 -all",
            "\"open",
            "\"a\"b",
            r#""\065""#,
            "",
            "\"a\"  \"b\"",
        ] {
            assert!(unquote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_records_reads_fqdn_names_and_refuses_unquoted_content() {
        let body = br#"{"id":"z1","name":"example.com","type":"NATIVE","records":[{"id":"r1","name":"_dmarc.example.com","rootName":"example.com","type":"TXT","content":"\"v=DMARC1; p=none\"","changeDate":"2026-11-30T10:00:00.000Z","ttl":3600,"prio":0,"disabled":false}]}"#;
        let got = parse_records(body, &n("_dmarc.example.com"), Operation::Read).unwrap();
        assert_eq!(
            got,
            [ListedRecord {
                id: "r1".into(),
                name: "_dmarc.example.com".into(),
                value: b"v=DMARC1; p=none".to_vec(),
                ttl: 3600
            }]
        );
        let unquoted = br#"{"records":[{"id":"r1","name":"x.example.com","type":"TXT","content":"v=spf1 -all","ttl":3600}]}"#;
        let e = parse_records(unquoted, &n("x.example.com"), Operation::Read).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("not quoted as IONOS quotes it"), "{e}");
        let a = br#"{"records":[{"id":"r1","name":"x.example.com","type":"A","content":"192.0.2.1","ttl":3600}]}"#;
        assert!(parse_records(a, &n("x.example.com"), Operation::Read).is_err());
    }

    #[test]
    fn errors_are_arrays_and_the_key_is_prefix_dot_secret() {
        let h = reqwest::header::HeaderMap::new();
        let f = Failure {
            status: reqwest::StatusCode::UNAUTHORIZED,
            headers: &h,
            body: br#"[{"code":"UNAUTHORIZED","message":"The customer is not authorized to do this operation."}]"#,
        };
        assert_eq!(
            map_error(&f),
            (
                ErrorKind::Auth,
                "The customer is not authorized to do this operation. (UNAUTHORIZED)".into()
            )
        );
        for bad in ["nodot", ".secret", "prefix.", ""] {
            let e = Ionos::new(Config::new(Secret::new(bad)), RetryPolicy::fast()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config);
            assert!(e.message.contains("PREFIX.SECRET"), "{e}");
        }
    }
}

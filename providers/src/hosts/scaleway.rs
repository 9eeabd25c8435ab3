//! Scaleway Domains and DNS (`domain/v2beta1`): a whole change set in one PATCH.
//!
//! - Auth: `X-Auth-Token: <IAM API secret key>`.
//! - Zone: `GET /dns-zones?dns_zone=<candidate>` walking up the labels; a zone's
//!   full name is `subdomain.domain` (`domain` when `subdomain` is empty).
//! - Set: `GET /dns-zones/{zone}/records?name=<relative>&type=TXT&page=&page_size=`
//!   (`name` is required; the apex is `""`), paged by `total_count`.
//! - Writes: one `PATCH /dns-zones/{zone}/records` carrying every owner name's
//!   changes, each record named exactly by `id_fields` {name, type TXT, data as
//!   read}: `delete` for a value to drop, `add` for a value to add, `set` of
//!   that one record only for a new TTL; the other records at the name (values
//!   maildns does not own) are left alone (a `set` by name and type would
//!   delete and re-create them); `delete` by {name, type TXT} only when the
//!   whole set goes; always `disallow_new_zone_creation: true` (a PATCH on a missing
//!   zone would otherwise create it). Never `clear` nor `DELETE …/records` (the
//!   whole zone).
//! - Values: `data` is sent as one zone-file quoted string (`\` and `"` escaped),
//!   which Scaleway unescapes; it answers the stored bytes in quotes with only `"`
//!   escaped (backslashes raw), trims spaces and drops `"` at the value's edges.
//!   Reads decode that form, so a value reads back as written and a second run is
//!   in sync; values with edge spaces or quotes are refused before sending.
//! - Scaleway has no precondition: before the PATCH every name is read again and
//!   a difference from the caller's read is a conflict (nothing sent). Whether
//!   one PATCH is all-or-nothing is not documented: after a failed PATCH the
//!   names are read again and those now holding the wanted set are reported
//!   written.
//! - Errors: `{"type","message",…}` (`invalid_arguments` with `details`,
//!   `denied_authentication`, `permissions_denied`, `not_found`,
//!   `too_many_requests`, …).

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::changeset::{self, ApplyError, ApplyTraits, TxtChange};
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
    zone_candidates,
};

const KIND: &str = "scaleway";

/// The registry entry: the IAM API secret key is the credential; `base_url`
/// overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/scaleway.toml"),
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
    Ok(std::sync::Arc::new(Scaleway::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.scaleway.com/domain/v2beta1";

/// Items asked per page when listing.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Account settings for Scaleway.
#[derive(Debug, Clone)]
pub struct Config {
    /// IAM API secret key with DNS write permission on the zones' project.
    pub secret_key: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Items asked per page when listing.
    pub page_size: u32,
}

impl Config {
    /// A config for the real API.
    pub fn new(secret_key: Secret) -> Self {
        Config {
            secret_key,
            base_url: DEFAULT_BASE_URL.to_string(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The Scaleway Domains and DNS adapter.
#[derive(Debug)]
pub struct Scaleway {
    http: HttpClient,
    secret_key: Secret,
    page_size: u32,
    profile: Profile,
}

/// The relative name Scaleway uses: `""` for the apex.
fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    super::relative_name(KIND, zone, name, op, super::Apex::Empty)
}

/// A value as `data` to write: one zone-file quoted string, `\` and `"` escaped.
pub fn encode_data(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for &b in value {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            _ => out.push(char::from(b)),
        }
    }
    out.push('"');
    out
}

/// Decodes `data` as Scaleway answers it: the stored bytes between `"`, with only
/// `"` escaped (`\"`) and backslashes raw. `None` when it is not that form (not
/// quoted, or an unescaped `"` inside).
pub fn decode_data(data: &str) -> Option<Vec<u8>> {
    let inner = data.strip_prefix('"')?.strip_suffix('"')?;
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' if b.get(i + 1) == Some(&b'"') => {
                out.push(b'"');
                i += 2;
            }
            b'"' => return None,
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[derive(Deserialize)]
struct RecordList {
    records: Vec<ScwRecord>,
    total_count: u64,
}

#[derive(Deserialize)]
struct ScwRecord {
    // Required by the documented shape; deletions go by id_fields.
    #[serde(rename = "id")]
    _id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    data: String,
    ttl: u32,
}

/// Parses one page of `GET …/records?name=&type=TXT`: the TXT records at
/// relative name `rel` (each one value, decoded from Scaleway's quoted form, as
/// `(ttl, value)`), how many records the page held, and `total_count`. Pure, for
/// the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `scaleway`, `op` and `name` when the body is
/// not the documented shape (`records[]` with `id`, `name`, `type`, `data`,
/// `ttl`; `total_count`) or a TXT `data` is not Scaleway's quoted form
/// (<https://www.scaleway.com/en/developers/api/domains-and-dns/#path-records-list-records-within-a-dns-zone>).
pub fn parse_records(
    body: &[u8],
    rel: &str,
    name: &Fqdn,
    op: Operation,
) -> Result<RecordPage, Error> {
    let list: RecordList =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let on_page = list.records.len() as u64;
    let mut out = Vec::new();
    let mut raw = Vec::new();
    for r in list.records {
        if r.kind != "TXT" || !r.name.eq_ignore_ascii_case(rel) {
            continue;
        }
        let value = decode_data(&r.data).ok_or_else(|| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Protocol,
                format!(
                    "TXT data {:?} is not in the host's documented format (one quoted string, inner quotes escaped)",
                    r.data
                ),
            )
        })?;
        out.push((r.ttl, value));
        raw.push(r.data);
    }
    Ok(RecordPage {
        values: out,
        raw,
        on_page,
        total: list.total_count,
    })
}

/// One page of a record listing, as [`parse_records`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPage {
    /// The TXT values at the name asked for: `(ttl, value)`, decoded.
    pub values: Vec<(u32, Vec<u8>)>,
    /// The `data` of each of [`RecordPage::values`], as the host answered it
    /// (what a `delete` or `set` of exactly that record names).
    pub raw: Vec<String>,
    /// Records on the page (of any type or name).
    pub on_page: u64,
    /// `total_count`: records matching the query on all pages.
    pub total: u64,
}

#[derive(Deserialize)]
struct ZoneList {
    dns_zones: Vec<ScwZone>,
    total_count: u64,
}

#[derive(Deserialize)]
struct ScwZone {
    domain: String,
    #[serde(default)]
    subdomain: String,
}

impl ScwZone {
    fn full_name(&self) -> String {
        if self.subdomain.is_empty() {
            self.domain.clone()
        } else {
            format!("{}.{}", self.subdomain, self.domain)
        }
    }
}

/// One owner name's part of a PATCH, and what it should hold afterwards.
struct Planned {
    name: Fqdn,
    changes: Vec<serde_json::Value>,
    wanted: Option<TxtSet>,
}

/// One TXT record at a name as read: TTL, decoded value, `data` as answered.
type Held = (u32, Vec<u8>, String);

/// The set of `held` records (the TTL of the first; `None` when empty).
fn set_of(held: &[Held]) -> Option<TxtSet> {
    let ttl = held.first()?.0;
    Some(TxtSet {
        ttl,
        records: held
            .iter()
            .map(|(_, v, _)| TxtRecord::from_value(v))
            .collect(),
    })
}

impl Scaleway {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the secret key is empty or the base URL is not
    /// https (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::require_nonempty(KIND, config.secret_key.is_empty(), "secret key")?;
        Ok(Scaleway {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            secret_key: config.secret_key,
            page_size: config.page_size.max(1),
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .header("x-auth-token", self.secret_key.expose())
    }

    async fn get(
        &self,
        op: Operation,
        name: &Fqdn,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<crate::http::Response, Error> {
        self.http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, path).query(query)
            })
            .await
    }

    /// The TXT set at `name`, every page read.
    async fn read(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<TxtSet>, Error> {
        Ok(set_of(&self.read_held(zone, name, op).await?))
    }

    /// Each TXT record at `name`, every page read.
    async fn read_held(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Vec<Held>, Error> {
        let rel = relative(zone, name, op)?;
        let path = format!("dns-zones/{}/records", zone.id);
        let mut values = Vec::new();
        let mut page = 1u64;
        let mut seen = 0u64;
        loop {
            let q = [
                ("name", rel.clone()),
                ("type", "TXT".to_string()),
                ("page", page.to_string()),
                ("page_size", self.page_size.to_string()),
            ];
            let resp = self.get(op, name, &path, &q).await?;
            let p = parse_records(&resp.body, &rel, name, op)?;
            values.extend(
                p.values
                    .into_iter()
                    .zip(p.raw)
                    .map(|((ttl, v), raw)| (ttl, v, raw)),
            );
            seen += p.on_page;
            if p.on_page == 0 || seen >= p.total {
                break;
            }
            page += 1;
        }
        Ok(values)
    }

    /// Checks a wanted set and returns each record's joined value, duplicates dropped.
    fn check(&self, name: &Fqdn, set: &TxtSet) -> Result<Vec<Vec<u8>>, Error> {
        Ok(super::check_all(KIND, &self.profile, name, set)?
            .iter()
            .map(TxtRecord::value)
            .collect())
    }

    /// The PATCH entries making the TXT records at `name` `wanted`, given
    /// what it holds now (`None` when nothing needs sending). Each record is
    /// named by its `data`: a value to drop is deleted, a value to add is
    /// added, a kept value is rewritten only for a new TTL; the other records
    /// at the name (values maildns does not own) are not touched. (A `set` by
    /// name and type would delete and re-create them.)
    fn plan(
        zone: &Zone,
        name: &Fqdn,
        held: &[Held],
        wanted: Option<(&TxtSet, &[Vec<u8>])>,
    ) -> Result<Option<Planned>, Error> {
        let now = set_of(held);
        let now = now.as_ref();
        let op = if wanted.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        let rel = relative(zone, name, op)?;
        let id_fields = json!({"name": rel, "type": "TXT"});
        let exactly = |raw: &str| json!({"name": rel, "type": "TXT", "data": raw});
        let changes = match (wanted, now) {
            (None, None) => return Ok(None),
            (None, Some(_)) => vec![json!({"delete": {"id_fields": id_fields}})],
            (Some((set, values)), now) => {
                let record = |v: &Vec<u8>| json!({"name": rel, "type": "TXT", "data": encode_data(v), "ttl": set.ttl});
                let mut changes = Vec::new();
                for (_, _, raw) in held.iter().filter(|(_, v, _)| !values.contains(v)) {
                    changes.push(json!({"delete": {"id_fields": exactly(raw)}}));
                }
                if now.is_some_and(|n| n.ttl != set.ttl) {
                    for (_, v, raw) in held.iter().filter(|(_, v, _)| values.contains(v)) {
                        changes.push(
                            json!({"set": {"id_fields": exactly(raw), "records": [record(v)]}}),
                        );
                    }
                }
                let added: Vec<serde_json::Value> = values
                    .iter()
                    .filter(|v| !held.iter().any(|(_, h, _)| h == *v))
                    .map(record)
                    .collect();
                if !added.is_empty() {
                    changes.push(json!({"add": {"records": added}}));
                }
                if changes.is_empty() {
                    return Ok(None);
                }
                changes
            }
        };
        Ok(Some(Planned {
            name: name.clone(),
            changes,
            wanted: wanted.map(|(s, _)| s.clone()),
        }))
    }

    /// Sends the planned changes in one PATCH. On failure, reads each name again
    /// and reports those now holding their wanted set as written.
    async fn patch(&self, zone: &Zone, planned: Vec<Planned>) -> Result<(), ApplyError> {
        let Some(first) = planned.first() else {
            return Ok(());
        };
        let op = if first.wanted.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        let body = json!({
            "changes": planned.iter().flat_map(|p| p.changes.iter().cloned()).collect::<Vec<_>>(),
            "return_all_records": false,
            "disallow_new_zone_creation": true,
        });
        let path = format!("dns-zones/{}/records", zone.id);
        let name = first.name.clone();
        let sent = self
            .http
            .send(op, Some(&name), Idempotency::NotIdempotent, |c| {
                self.req(c, Method::PATCH, &path).json(&body)
            })
            .await;
        let error = match sent {
            Ok(resp) => {
                // The answer lists the records changed: check its shape only.
                return match serde_json::from_slice::<serde_json::Value>(&resp.body) {
                    Ok(v) if v.get("records").is_some_and(serde_json::Value::is_array) => Ok(()),
                    _ => Err(ApplyError::nothing_written(super::bad_body(
                        KIND,
                        op,
                        &name,
                        "the PATCH answer has no records list",
                    ))),
                };
            }
            Err(e) => e,
        };
        let mut written = Vec::new();
        for p in &planned {
            let now = self.read(zone, &p.name, Operation::Read).await;
            let Ok(now) = now else {
                break;
            };
            let done = match &p.wanted {
                Some(w) => changeset::same_content(Some(w), now.as_ref()),
                None => now.is_none(),
            };
            if done {
                written.push(p.name.clone());
            }
        }
        Err(ApplyError { written, error })
    }
}

#[async_trait::async_trait]
impl Provider for Scaleway {
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
        // One PATCH carries the whole change set, but neither its atomicity nor
        // a precondition is documented.
        ApplyTraits {
            atomic: false,
            compare_and_swap: false,
            ..ApplyTraits::default()
        }
    }

    /// Scaleway names a zone by its full name in every path: a known apex
    /// needs no lookup (a zone that does not exist is `not_found` at the read).
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        for cand in zone_candidates(name) {
            let mut page = 1u64;
            let mut seen = 0u64;
            loop {
                let q = [
                    ("dns_zone", cand.to_string()),
                    ("page", page.to_string()),
                    ("page_size", self.page_size.to_string()),
                ];
                let resp = self.get(op, name, "dns-zones", &q).await?;
                let list: ZoneList = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
                let n = list.dns_zones.len() as u64;
                if list
                    .dns_zones
                    .iter()
                    .any(|z| Fqdn::parse(&z.full_name()).is_ok_and(|f| f == cand))
                {
                    return Ok(Zone {
                        id: cand.to_string(),
                        name: cand,
                    });
                }
                seen += n;
                if n == 0 || seen >= list.total_count {
                    break;
                }
                page += 1;
            }
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            "no DNS zone of this API key's projects holds the name",
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.read(zone, name, Operation::Read).await
    }

    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let mut values = Vec::with_capacity(changes.len());
        for c in changes {
            values.push(match c.wanted() {
                Some(set) => Some(
                    self.check(&c.name, set)
                        .map_err(ApplyError::nothing_written)?,
                ),
                None => None,
            });
        }
        // No precondition at Scaleway: read every name again, refuse on a difference.
        let mut planned = Vec::new();
        for (c, v) in changes.iter().zip(&values) {
            let held = self
                .read_held(zone, &c.name, c.operation())
                .await
                .map_err(ApplyError::nothing_written)?;
            let now = set_of(&held);
            if !c.old.unchanged_in(now.as_ref()) {
                // Already what is wanted (this change set applied before): done.
                if changeset::same_content(c.wanted(), now.as_ref()) {
                    continue;
                }
                return Err(ApplyError::nothing_written(changeset::conflict(
                    KIND,
                    c.operation(),
                    &c.name,
                    "the TXT records changed since they were read",
                )));
            }
            let wanted = c.wanted().zip(v.as_deref());
            if let Some(p) =
                Self::plan(zone, &c.name, &held, wanted).map_err(ApplyError::nothing_written)?
            {
                planned.push(p);
            }
        }
        self.patch(zone, planned).await
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        self.apply(zone, std::slice::from_ref(change))
            .await
            .map_err(|e| e.error)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        let values = self.check(name, set)?;
        if values.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        let held = self.read_held(zone, name, op).await?;
        let now = set_of(&held);
        let same = now.as_ref().is_some_and(|n| {
            n.ttl == set.ttl
                && n.records
                    .iter()
                    .map(TxtRecord::value)
                    .eq(values.iter().cloned())
        });
        if same {
            return Ok(());
        }
        let planned = Self::plan(zone, name, &held, Some((set, &values)))?;
        self.patch(zone, planned.into_iter().collect())
            .await
            .map_err(|e| e.error)
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let held = self.read_held(zone, name, Operation::Delete).await?;
        let planned = Self::plan(zone, name, &held, None)?;
        self.patch(zone, planned.into_iter().collect())
            .await
            .map_err(|e| e.error)
    }
}

#[derive(Deserialize)]
struct ScwError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<ScwDetail>,
}

#[derive(Deserialize)]
struct ScwDetail {
    #[serde(default)]
    argument_name: String,
    #[serde(default)]
    help_message: String,
}

/// Maps Scaleway's `{"type","message"}` errors (with `details` for
/// `invalid_arguments`).
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let Ok(e) = serde_json::from_slice::<ScwError>(f.body) else {
        return crate::http::default_mapper(f);
    };
    if e.kind.is_empty() && e.message.is_empty() {
        return crate::http::default_mapper(f);
    }
    let kind = match e.kind.as_str() {
        "denied_authentication" | "authentication_denied" => ErrorKind::Auth,
        "permissions_denied" => ErrorKind::Permission,
        "not_found" => ErrorKind::ZoneNotFound,
        "invalid_arguments" | "out_of_stock" | "quotas_exceeded" => ErrorKind::Invalid,
        "too_many_requests" => ErrorKind::RateLimited,
        "precondition_failed" => ErrorKind::Conflict,
        // A locked resource is being changed by someone else: retried.
        "resource_locked" | "transient_state" => ErrorKind::Server,
        _ => kind_for_status(f.status),
    };
    let mut msg = if e.kind.is_empty() {
        e.message
    } else {
        format!("{}: {}", e.kind, e.message)
    };
    for d in &e.details {
        msg.push_str(&format!("; {}: {}", d.argument_name, d.help_message));
    }
    (kind, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_through_scaleways_read_form() {
        // What Scaleway answers for a stored value: quotes, only `"` escaped.
        let answer = |v: &[u8]| {
            let mut s = String::from("\"");
            for &b in v {
                if b == b'"' {
                    s.push('\\');
                }
                s.push(char::from(b));
            }
            s.push('"');
            s
        };
        for v in [
            &b"v=DKIM1; k=rsa; p=abc"[..],
            b"a\"b",
            b"a\\b",
            b"ab\\",
            b"\\\"",
            b"a\\\\\"\\b",
            b"",
        ] {
            assert_eq!(decode_data(&answer(v)).as_deref(), Some(v), "{v:?}");
        }
        assert_eq!(encode_data(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(decode_data("unquoted"), None);
        assert_eq!(decode_data("\"a\" \"b\""), None);
    }

    #[test]
    fn records_out_of_shape_are_protocol_errors() {
        let name = Fqdn::parse("_dmarc.example.com").unwrap();
        let ok = br#"{"records":[{"id":"1","name":"_dmarc","type":"TXT","data":"\"v=DMARC1; p=none\"","ttl":3600,"priority":0,"comment":null},
            {"id":"2","name":"_dmarc","type":"CNAME","data":"x.","ttl":60}],"total_count":2}"#;
        let p = parse_records(ok, "_dmarc", &name, Operation::Read).unwrap();
        assert_eq!(p.values, vec![(3600, b"v=DMARC1; p=none".to_vec())]);
        assert_eq!((p.on_page, p.total), (2, 2));
        for bad in [
            &br#"{"records":[{"id":"1","name":"_dmarc","type":"TXT","data":"v=DMARC1","ttl":1}],"total_count":1}"#[..],
            br#"{"records":[{"name":"_dmarc","type":"TXT","data":"\"a\"","ttl":1}],"total_count":1}"#,
            br#"{"total_count":0}"#,
        ] {
            let e = parse_records(bad, "_dmarc", &name, Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn errors_name_type_message_and_arguments() {
        let headers = reqwest::header::HeaderMap::new();
        let f = |status: u16, body: &str| {
            map_error(&Failure {
                status: reqwest::StatusCode::from_u16(status).unwrap(),
                headers: &headers,
                body: body.as_bytes(),
            })
        };
        assert_eq!(
            f(
                401,
                r#"{"message":"authentication is denied","method":"api_key","reason":"invalid_argument","type":"denied_authentication"}"#
            ),
            (
                ErrorKind::Auth,
                "denied_authentication: authentication is denied".into()
            )
        );
        assert_eq!(
            f(400, r#"{"type":"invalid_arguments","message":"invalid argument(s)","details":[{"argument_name":"changes[0].add.records[0].data","reason":"constraint","help_message":"TXT data must be quoted"}]}"#),
            (ErrorKind::Invalid, "invalid_arguments: invalid argument(s); changes[0].add.records[0].data: TXT data must be quoted".into())
        );
        assert_eq!(
            f(429, r#"{"type":"too_many_requests","message":"slow down"}"#).0,
            ErrorKind::RateLimited
        );
    }
}

//! Vultr (API v2, domains): record-level, one id per value.
//!
//! - Auth: `Authorization: Bearer <API key>`; a key may be limited to client
//!   addresses (ACL), and requests from others are refused
//!   (<https://www.vultr.com/api/#tag/dns>).
//! - Zone: `GET /domains/{candidate}` walking up the labels (404 when absent).
//! - Values: `GET /domains/{d}/records?per_page=&cursor=`: every record of the
//!   domain, paged by cursor (`meta.links.next`), TXT records picked by the
//!   client; so a change set's read is one (paged) request for all names.
//! - `data` of a TXT record is ONE string wrapped in `"`, with no `"` inside (Vultr
//!   has no escape for it); it comes back quoted. Values are compared after that
//!   normalisation (quotes removed), so a second run is in sync. `"` and `\` are
//!   refused before sending.
//! - One TTL per name and type: Vultr refused a create beside records of another
//!   TTL, so on a TTL change the records that stay, and those about to go, get the
//!   new TTL (`PATCH`) before any create.
//! - replace: values kept, a changed versioned value rewritten in place
//!   (`PATCH`), others created (`POST`), the rest deleted (`DELETE`).
//! - Errors: `{"error":"…","status":400}`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::check_all;
use super::paged::{self, Listed};
use crate::changeset::{TxtChange, ZoneSets};
use crate::http::{Failure, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtSet, Zone};

const KIND: &str = "vultr";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/vultr.toml"),
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
    Ok(std::sync::Arc::new(Vultr::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.vultr.com/v2";

/// Records per page asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Account settings for Vultr.
#[derive(Debug, Clone)]
pub struct Config {
    /// API key (the account's, or a sub-account's), sent as a bearer token.
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
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

/// The Vultr adapter.
#[derive(Debug)]
pub struct Vultr {
    api: paged::Api,
}

#[derive(Deserialize)]
struct ErrBody {
    error: String,
}

/// Extracts Vultr's `{"error","status"}` (a plain-text body, e.g. an ACL refusal,
/// is the message as it is).
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if !b.error.is_empty() => (kind_for_status(f.status), b.error),
        _ => crate::http::default_mapper(f),
    }
}

#[derive(Deserialize)]
struct RecordPage {
    records: Vec<RawRecord>,
    meta: Meta,
}

#[derive(Deserialize)]
struct Meta {
    #[allow(dead_code)]
    total: u64,
    links: Links,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct RawRecord {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    data: String,
    ttl: u32,
}

/// One stored TXT record as listed, its value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VultrRecord {
    /// Vultr's record id.
    pub id: String,
    /// Name relative to the domain (`""` for the apex).
    pub name: String,
    /// The value, without Vultr's quotes.
    pub value: String,
    /// TTL in seconds.
    pub ttl: u32,
}

impl Listed for VultrRecord {
    fn value(&self) -> &[u8] {
        self.value.as_bytes()
    }
    fn ttl(&self) -> u32 {
        self.ttl
    }
}

/// The value inside a TXT record's `data` as Vultr returns it: wrapped in `"`,
/// no `"` inside.
///
/// # Errors
/// The data is not one quoted string.
pub fn unquote(data: &str) -> Result<&str, String> {
    data.strip_prefix('"')
        .and_then(|d| d.strip_suffix('"'))
        .filter(|inner| !inner.contains('"'))
        .ok_or_else(|| format!("TXT data {data:?} is not one quoted string"))
}

/// Parses one page of `GET /domains/{d}/records`: its TXT records (other types
/// skipped: the list holds every record of the domain) and the next cursor.
/// Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not the documented page (`records`
/// with `id`, `type`, `name`, `data`, `ttl`; `meta.links`) or a TXT record's data
/// is not quoted.
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<VultrRecord>, Option<String>), Error> {
    let p: RecordPage =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::new();
    for r in p.records.into_iter().filter(|r| r.kind == "TXT") {
        let value = unquote(&r.data)
            .map_err(|e| {
                Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::Protocol,
                    format!("record {}: {e}", r.id),
                )
            })?
            .to_string();
        out.push(VultrRecord {
            id: r.id,
            name: r.name,
            value,
            ttl: r.ttl,
        });
    }
    let next = Some(p.meta.links.next).filter(|c| !c.is_empty());
    Ok((out, next))
}

fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    super::relative_name(KIND, zone, name, op, super::Apex::Empty)
}

fn name_of(r: &VultrRecord) -> &str {
    &r.name
}

impl Vultr {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the key is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let api = paged::Api::new(
            KIND,
            "API key",
            config.token,
            &config.base_url,
            config.page_size.clamp(1, 500),
            policy,
            map_error,
        )?;
        Ok(Vultr { api })
    }

    /// Every TXT record of the zone, every page.
    async fn list_all(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<VultrRecord>, Error> {
        let path = &format!("domains/{}/records", zone.id);
        paged::every_cursor(|cursor| async move {
            let mut q = vec![("per_page", self.api.page_size.to_string())];
            if let Some(c) = cursor {
                q.push(("cursor", c));
            }
            let resp = self
                .api
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.api.req(c, Method::GET, path).query(&q)
                })
                .await?;
            parse_records(&resp.body, name, op)
        })
        .await
    }

    async fn list(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<VultrRecord>, Error> {
        let rel = relative(zone, name, op)?;
        let all = self.list_all(zone, name, op).await?;
        Ok(paged::named(&all, &rel, name_of).cloned().collect())
    }

    async fn patch(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
        id: &str,
        body: serde_json::Value,
    ) -> Result<(), Error> {
        let p = format!("domains/{}/records/{id}", zone.id);
        self.api
            .json(op, name, Idempotency::Idempotent, Method::PATCH, &p, &body)
            .await
            .map(|_| ())
    }

    /// Makes the records at `name` (as listed in `current`) hold exactly `set`.
    async fn write(
        &self,
        zone: &Zone,
        name: &Fqdn,
        current: Vec<VultrRecord>,
        set: Option<&TxtSet>,
    ) -> Result<(), Error> {
        let op = if set.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        let desired = paged::desired_values(KIND, &self.api.profile, name, set)?;
        let ttl = set.map_or(0, |s| s.ttl);
        let rel = relative(zone, name, op)?;
        let paged::Plan { keep, writes: w } = paged::plan(&desired, current);
        // printable_ascii_only was checked: valid UTF-8, and no '"' to escape.
        let quoted = |d: &[u8]| format!("\"{}\"", String::from_utf8_lossy(d));
        for rec in keep.iter().filter(|r| r.ttl != ttl) {
            self.patch(zone, name, op, &rec.id, json!({ "ttl": ttl }))
                .await?;
        }
        for (rec, d) in &w.rewrite {
            self.patch(
                zone,
                name,
                op,
                &rec.id,
                json!({ "data": quoted(d), "ttl": ttl }),
            )
            .await?;
        }
        if !w.create.is_empty() {
            // One TTL per name and type before any create.
            for rec in w.delete.iter().filter(|r| r.ttl != ttl) {
                self.patch(zone, name, op, &rec.id, json!({ "ttl": ttl }))
                    .await?;
            }
        }
        let path = format!("domains/{}/records", zone.id);
        for d in w.create {
            let body =
                json!({ "name": rel, "type": "TXT", "data": quoted(d), "ttl": ttl, "priority": 0 });
            self.api.create(op, name, &path, &body).await?;
        }
        for rec in w.delete {
            let p = format!("{path}/{}", rec.id);
            self.api.delete(op, name, &p).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for Vultr {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.api.http.rate_limits_seen().headers
    }

    fn profile(&self) -> &Profile {
        &self.api.profile
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.api.find_domain(KIND, name).await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(paged::set_of(
            &self.list(zone, name, Operation::Read).await?,
        ))
    }

    /// Every TXT record of the zone in one (paged) request.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        if names.is_empty() {
            return Ok(ZoneSets::new());
        }
        let all = self.list_all(zone, &zone.name, Operation::Read).await?;
        paged::sets_by_name(KIND, zone, names, &all, name_of)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        check_all(KIND, &self.api.profile, name, set)?;
        let current = self.list(zone, name, Operation::Replace).await?;
        self.write(zone, name, current, Some(set)).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let current = self.list(zone, name, Operation::Delete).await?;
        self.write(zone, name, current, None).await
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let op = change.operation();
        let current = self.list(zone, &change.name, op).await?;
        let now = paged::set_of(&current);
        // Nothing to write when the change was applied before; a conflict
        // when the set is neither what was read nor what is wanted.
        if !change.still_to_write(KIND, now.as_ref())? {
            return Ok(());
        }
        self.write(zone, &change.name, current, change.wanted())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_data_is_unquoted_and_must_be_one_quoted_string() {
        assert_eq!(unquote("\"v=DMARC1; p=none\""), Ok("v=DMARC1; p=none"));
        assert_eq!(unquote("\"\""), Ok(""));
        for bad in ["v=DMARC1", "\"open", "\"a\"b\"", "\"", "\"a\" \"b\""] {
            assert!(unquote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_records_keeps_txt_and_validates_the_page() {
        let name = Fqdn::parse("example.com").unwrap();
        let ok = br#"{"records":[{"id":"a1","type":"TXT","name":"_dmarc","data":"\"v=DMARC1; p=none\"","priority":0,"ttl":300},{"id":"b2","type":"A","name":"","data":"192.0.2.1","priority":0,"ttl":300}],"meta":{"total":2,"links":{"next":"bmV4dA==","prev":""}}}"#;
        let (recs, next) = parse_records(ok, &name, Operation::Read).unwrap();
        assert_eq!(next.as_deref(), Some("bmV4dA=="));
        assert_eq!(
            recs,
            [VultrRecord {
                id: "a1".into(),
                name: "_dmarc".into(),
                value: "v=DMARC1; p=none".into(),
                ttl: 300
            }]
        );
        let unquoted = br#"{"records":[{"id":"a1","type":"TXT","name":"","data":"v=spf1 -all","priority":0,"ttl":300}],"meta":{"total":1,"links":{"next":"","prev":""}}}"#;
        let no_meta = br#"{"records":[]}"#;
        for bad in [&unquoted[..], &no_meta[..], b"<html>"] {
            let e = parse_records(bad, &name, Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol);
        }
    }
}

//! Linode / Akamai Cloud (API v4, domains): record-level, one numeric id per value.
//!
//! - Auth: `Authorization: Bearer <personal access token>` with scope
//!   `domains:read_write` (<https://techdocs.akamai.com/linode-api/reference/post-domain-record>).
//! - Zone: `GET /domains` with `X-Filter: {"domain":"<candidate>"}`, walking up the
//!   labels; the zone's id is the Domain's numeric `id`.
//! - Values: `GET /domains/{id}/records` with `X-Filter: {"name":"<relative>","type":"TXT"}`
//!   (apex `""`), paged with `page`/`page_size` while `page < pages`. A change set's
//!   read lists every TXT record of the zone in one (paged) request.
//! - `target` is ONE unquoted string, the record's joined value; Linode splits it
//!   for the wire. `"` and `\` are refused before sending (how Linode escapes them
//!   is not documented).
//! - `ttl_sec` takes only 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800,
//!   345600, 604800, 1209600 or 2419200 (0: the domain's default); Linode rounds
//!   any other value to the nearest, which would never read back as written, so
//!   another TTL is refused before sending. A create whose answer shows another
//!   TTL than asked is followed by a PUT of the TTL (dnscontrol saw Linode drop it).
//! - replace: values kept (TTL corrected with `PUT`), a changed versioned value
//!   (`v=spf1`, `v=DKIM1`, `v=DMARC1`) rewritten in place with `PUT`, others created
//!   with `POST`, the rest deleted.
//! - Linode's name servers load zone changes on a cycle of about 15 minutes
//!   (the descriptor's `publish_delay_seconds`).
//! - Errors: `{"errors":[{"reason":"…","field":"…"}]}`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::check_all;
use super::paged::{self, Listed};
use crate::changeset::{TxtChange, ZoneSets};
use crate::http::{Failure, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtSet, Zone, ZoneProbe,
    walk_zones, zone_candidates,
};

const KIND: &str = "linode";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/linode.toml"),
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
    Ok(std::sync::Arc::new(Linode::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.linode.com/v4";

/// Records per page asked for (the API's documented range is 25..=500).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// The TTLs Linode keeps as given (`ttl_sec`); 0 means the domain's default.
pub const VALID_TTLS: [u32; 13] = [
    0, 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200,
];

/// Account settings for Linode.
#[derive(Debug, Clone)]
pub struct Config {
    /// Personal access token with `domains:read_write`.
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

/// The Linode adapter.
#[derive(Debug)]
pub struct Linode {
    api: paged::Api,
}

#[derive(Deserialize)]
struct ErrBody {
    errors: Vec<ErrItem>,
}

#[derive(Deserialize)]
struct ErrItem {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    reason: String,
}

/// Extracts Linode's `{"errors":[{"field","reason"}]}`.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if !b.errors.is_empty() => {
            let msg: Vec<String> = b
                .errors
                .iter()
                .map(|e| match &e.field {
                    Some(field) => format!("{field}: {}", e.reason),
                    None => e.reason.clone(),
                })
                .collect();
            (kind_for_status(f.status), msg.join("; "))
        }
        _ => crate::http::default_mapper(f),
    }
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    page: u32,
    pages: u32,
    #[allow(dead_code)]
    results: u64,
}

#[derive(Deserialize)]
struct RawDomain {
    id: u64,
    domain: String,
}

#[derive(Deserialize)]
struct RawRecord {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: String,
    ttl_sec: u32,
}

/// One stored TXT record as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinodeRecord {
    /// Linode's record id.
    pub id: u64,
    /// Name relative to the domain (`""` for the apex).
    pub name: String,
    /// The value (`target`, one string).
    pub target: String,
    /// `ttl_sec` (0: the domain's default).
    pub ttl: u32,
}

impl Listed for LinodeRecord {
    fn value(&self) -> &[u8] {
        self.target.as_bytes()
    }
    fn ttl(&self) -> u32 {
        self.ttl
    }
}

/// Parses one page of `GET /domains`: `(id, domain)` pairs and whether more pages follow.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not the documented page
/// (`data`, `page`, `pages`, `results`; each Domain with `id` and `domain`).
pub fn parse_domains(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<(u64, String)>, bool), Error> {
    let p: Page<RawDomain> =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    Ok((
        p.data.into_iter().map(|d| (d.id, d.domain)).collect(),
        p.page < p.pages,
    ))
}

/// Parses one page of `GET /domains/{id}/records`: the TXT records and whether
/// more pages follow. Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not the documented page or a record
/// lacks `id`, `type`, `name`, `target` or `ttl_sec`, or is not TXT
/// (<https://techdocs.akamai.com/linode-api/reference/get-domain-records>).
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<LinodeRecord>, bool), Error> {
    let p: Page<RawRecord> =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::with_capacity(p.data.len());
    for r in p.data {
        if r.kind != "TXT" {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("a {} record in the answer to a TXT query", r.kind),
            ));
        }
        out.push(LinodeRecord {
            id: r.id,
            name: r.name,
            target: r.target,
            ttl: r.ttl_sec,
        });
    }
    Ok((out, p.page < p.pages))
}

fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    super::relative_name(KIND, zone, name, op, super::Apex::Empty)
}

fn name_of(r: &LinodeRecord) -> &str {
    &r.name
}

/// Refuses a TTL Linode would round: it would never read back as written.
fn check_ttl(name: &Fqdn, ttl: u32) -> Result<(), Error> {
    if VALID_TTLS.contains(&ttl) {
        return Ok(());
    }
    let nearest = VALID_TTLS[1..]
        .iter()
        .min_by_key(|v| v.abs_diff(ttl))
        .copied()
        .unwrap_or(300);
    Err(Error::new(
        KIND,
        Operation::Replace,
        Some(name),
        ErrorKind::Config,
        format!(
            "Linode keeps only the TTLs 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600 and 2419200 seconds and would round {ttl} to {nearest}; set the domain's ttl to one of them"
        ),
    ))
}

impl Linode {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let api = paged::Api::new(
            KIND,
            "API token",
            config.token,
            &config.base_url,
            config.page_size.clamp(25, 500),
            policy,
            map_error,
        )?;
        Ok(Linode { api })
    }

    /// The TXT records of the zone matching `filter` (Linode's `X-Filter`), every page.
    async fn list_filtered(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
        filter: &serde_json::Value,
    ) -> Result<Vec<LinodeRecord>, Error> {
        let path = &format!("domains/{}/records", zone.id);
        let filter = &filter.to_string();
        paged::every_number(|page| async move {
            let q = [
                ("page", page.to_string()),
                ("page_size", self.api.page_size.to_string()),
            ];
            let resp = self
                .api
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.api
                        .req(c, Method::GET, path)
                        .header("X-Filter", filter)
                        .query(&q)
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
    ) -> Result<Vec<LinodeRecord>, Error> {
        let rel = relative(zone, name, op)?;
        let recs = self
            .list_filtered(zone, name, op, &json!({"name": rel, "type": "TXT"}))
            .await?;
        // The filter is Linode's; a record at another name is not counted here.
        Ok(paged::named(&recs, &rel, name_of).cloned().collect())
    }

    /// Makes the records at `name` (as listed in `current`) hold exactly `set`.
    async fn write(
        &self,
        zone: &Zone,
        name: &Fqdn,
        current: Vec<LinodeRecord>,
        set: Option<&TxtSet>,
    ) -> Result<(), Error> {
        let op = if set.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        if let Some(set) = set {
            check_ttl(name, set.ttl)?;
        }
        let desired = paged::desired_values(KIND, &self.api.profile, name, set)?;
        let ttl = set.map_or(0, |s| s.ttl);
        let rel = relative(zone, name, op)?;
        let path = format!("domains/{}/records", zone.id);
        let paged::Plan { keep, writes: w } = paged::plan(&desired, current);
        let put = |id: u64, body: serde_json::Value| {
            let p = format!("{path}/{id}");
            async move {
                self.api
                    .json(op, name, Idempotency::Idempotent, Method::PUT, &p, &body)
                    .await
                    .map(|_| ())
            }
        };
        for rec in keep.iter().filter(|r| r.ttl != ttl) {
            put(rec.id, json!({ "ttl_sec": ttl })).await?;
        }
        for (rec, d) in &w.rewrite {
            let target = String::from_utf8_lossy(d);
            put(rec.id, json!({ "target": target, "ttl_sec": ttl })).await?;
        }
        for d in w.create {
            // printable_ascii_only was checked above: valid UTF-8.
            let target = String::from_utf8_lossy(d);
            let body = json!({ "type": "TXT", "name": rel, "target": target, "ttl_sec": ttl });
            let resp = self.api.create(op, name, &path, &body).await?;
            // dnscontrol saw Linode drop the TTL given on create: set it again.
            let created: RawRecord = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
            if created.ttl_sec != ttl {
                put(created.id, json!({ "ttl_sec": ttl })).await?;
            }
        }
        for rec in w.delete {
            let p = format!("{path}/{}", rec.id);
            self.api.delete(op, name, &p).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for Linode {
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
        let op = Operation::FindZone;
        walk_zones(
            KIND,
            name,
            zone_candidates(name),
            "no domain in this account holds the name",
            |cand| async move {
                let filter = json!({ "domain": cand.as_str() }).to_string();
                let resp = self
                    .api
                    .http
                    .send(op, Some(name), Idempotency::Idempotent, |c| {
                        self.api
                            .req(c, Method::GET, "domains")
                            .header("X-Filter", &filter)
                    })
                    .await?;
                let (domains, _) = parse_domains(&resp.body, name, op)?;
                Ok(domains
                    .iter()
                    .find(|(_, d)| d.trim_end_matches('.').eq_ignore_ascii_case(cand.as_str()))
                    .map_or(ZoneProbe::Absent(None), |(id, _)| {
                        ZoneProbe::Found(id.to_string())
                    }))
            },
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(paged::set_of(
            &self.list(zone, name, Operation::Read).await?,
        ))
    }

    /// Every TXT record of the zone in one (paged) request, sorted by name.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        if names.is_empty() {
            return Ok(ZoneSets::new());
        }
        let all = self
            .list_filtered(zone, &zone.name, Operation::Read, &json!({"type": "TXT"}))
            .await?;
        paged::sets_by_name(KIND, zone, names, &all, name_of)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        check_ttl(name, set.ttl)?;
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
        if let Some(set) = change.wanted() {
            check_ttl(&change.name, set.ttl)?;
        }
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
    fn the_descriptor_lists_the_ttls_the_adapter_keeps() {
        let profile = crate::registry::host(KIND).unwrap().profile().unwrap();
        assert_eq!(profile.ttl_values, VALID_TTLS[1..]);
    }

    #[test]
    fn parse_records_validates_the_page() {
        let name = Fqdn::parse("example.com").unwrap();
        let ok = br#"{"data":[{"id":98765,"type":"TXT","name":"_dmarc","target":"v=DMARC1; p=none","priority":0,"weight":0,"port":0,"service":null,"protocol":null,"tag":null,"ttl_sec":300}],"page":1,"pages":2,"results":2}"#;
        let (recs, more) = parse_records(ok, &name, Operation::Read).unwrap();
        assert!(more);
        assert_eq!(
            recs,
            [LinodeRecord {
                id: 98765,
                name: "_dmarc".into(),
                target: "v=DMARC1; p=none".into(),
                ttl: 300
            }]
        );
        let a = br#"{"data":[{"id":1,"type":"A","name":"","target":"192.0.2.1","ttl_sec":300}],"page":1,"pages":1,"results":1}"#;
        let no_pages = br#"{"data":[]}"#;
        let no_target = br#"{"data":[{"id":1,"type":"TXT","name":"","ttl_sec":300}],"page":1,"pages":1,"results":1}"#;
        for bad in [&a[..], &no_pages[..], &no_target[..], b"<html>"] {
            let e = parse_records(bad, &name, Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol);
        }
    }

    #[test]
    fn only_the_ttls_linode_keeps_are_accepted() {
        let name = Fqdn::parse("example.com").unwrap();
        assert!(check_ttl(&name, 3600).is_ok() && check_ttl(&name, 0).is_ok());
        let e = check_ttl(&name, 600).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(
            e.message.contains("would round 600 to 300"),
            "{}",
            e.message
        );
    }
}

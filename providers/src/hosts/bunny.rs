//! Bunny DNS (bunny.net core API, `dnszone`): record-level, one `Id` per TXT value.
//!
//! - Auth: `AccessKey: <account API key>`.
//! - Zone: `GET /dnszone?page=&perPage=` (paged by `HasMoreItems`), the longest
//!   `Domain` the name is at or below.
//! - Records: `GET /dnszone/{id}` answers the zone with all its `Records`
//!   (`Type` numeric, 3 = TXT; `Name` relative, `""` for the apex; `Value` one
//!   plain string; `Ttl`; `Disabled`). One GET reads every owner name of a
//!   change set. Disabled records are not served: they are neither read nor
//!   touched.
//! - Writes per record, with Bunny's verbs: create `PUT /dnszone/{id}/records`
//!   (201), update `POST /dnszone/{id}/records/{recordId}` (204, used for a TTL
//!   change), delete `DELETE /dnszone/{id}/records/{recordId}` (204). Values
//!   already present are kept; missing ones are created first, then the others
//!   deleted. No batch, no precondition: each owner name is read again just
//!   before it is written and a difference from the caller's read is a conflict.
//! - Errors: `{"ErrorKey","Field","Message"}`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::changeset::{self, TxtChange};
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
    ZoneSets, zone_candidates,
};

const KIND: &str = "bunny";

/// The registry entry: the account API key is the credential; `base_url`
/// overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/bunny.toml"),
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
    Ok(std::sync::Arc::new(Bunny::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.bunny.net";

/// Bunny's numeric record type for TXT.
pub const TYPE_TXT: u64 = 3;

/// Zones asked per page when listing.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// Account settings for Bunny DNS.
#[derive(Debug, Clone)]
pub struct Config {
    /// The account's API key.
    pub access_key: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Zones asked per page.
    pub page_size: u32,
}

impl Config {
    /// A config for the real API.
    pub fn new(access_key: Secret) -> Self {
        Config {
            access_key,
            base_url: DEFAULT_BASE_URL.to_string(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The Bunny DNS adapter.
#[derive(Debug)]
pub struct Bunny {
    http: HttpClient,
    access_key: Secret,
    page_size: u32,
    profile: Profile,
}

/// One TXT record as Bunny holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BunnyTxt {
    /// Bunny's record id.
    pub id: u64,
    /// Relative name (`""` for the apex).
    pub name: String,
    /// The value.
    pub value: String,
    /// TTL in seconds.
    pub ttl: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ZoneBody {
    #[serde(rename = "Id")]
    _id: u64,
    #[serde(rename = "Domain")]
    _domain: String,
    records: Vec<RecordBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordBody {
    id: u64,
    #[serde(rename = "Type")]
    kind: serde_json::Value,
    name: String,
    value: String,
    ttl: u32,
    #[serde(default)]
    disabled: bool,
}

/// Parses `GET /dnszone/{id}`: the zone's enabled TXT records (`Type` 3, or
/// `"TXT"`). Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `bunny`, `op` and `name` when the body is not
/// the documented shape (`Id`, `Domain`, `Records[]` each with `Id`, `Type`,
/// `Name`, `Value`, `Ttl`; <https://docs.bunny.net/api-reference/core/dns-zone/list-dns-zone-records>).
pub fn parse_zone_records(body: &[u8], name: &Fqdn, op: Operation) -> Result<Vec<BunnyTxt>, Error> {
    let z: ZoneBody =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::new();
    for r in z.records {
        let txt = match &r.kind {
            serde_json::Value::Number(n) => n.as_u64() == Some(TYPE_TXT),
            serde_json::Value::String(s) => s.eq_ignore_ascii_case("TXT"),
            other => {
                return Err(super::bad_body(
                    KIND,
                    op,
                    name,
                    format!("record {} has Type {other}", r.id),
                ));
            }
        };
        if txt && !r.disabled {
            out.push(BunnyTxt {
                id: r.id,
                name: r.name,
                value: r.value,
                ttl: r.ttl,
            });
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ZoneList {
    items: Vec<ListedZone>,
    has_more_items: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedZone {
    id: u64,
    domain: String,
}

/// The relative name Bunny uses: `""` for the apex.
fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    super::relative_name(KIND, zone, name, op, super::Apex::Empty)
}

fn txt_set(records: &[&BunnyTxt]) -> Option<TxtSet> {
    let ttl = records.first()?.ttl;
    Some(TxtSet {
        ttl,
        records: records
            .iter()
            .map(|r| TxtRecord::from_value(r.value.as_bytes()))
            .collect(),
    })
}

impl Bunny {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the key is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::require_nonempty(KIND, config.access_key.is_empty(), "API key")?;
        Ok(Bunny {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            access_key: config.access_key,
            page_size: config.page_size.max(1),
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .header("accesskey", self.access_key.expose())
    }

    /// Every enabled TXT record of the zone (one GET).
    async fn zone_txt(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<BunnyTxt>, Error> {
        let path = format!("dnszone/{}", zone.id);
        let resp = self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, &path)
            })
            .await?;
        parse_zone_records(&resp.body, name, op)
    }

    /// The TXT records at `name` among `all`.
    fn at<'a>(
        zone: &Zone,
        name: &Fqdn,
        all: &'a [BunnyTxt],
        op: Operation,
    ) -> Result<Vec<&'a BunnyTxt>, Error> {
        let rel = relative(zone, name, op)?;
        Ok(all
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case(&rel))
            .collect())
    }

    /// Makes the records at `name` hold `desired` (values, one record each) with
    /// `ttl`, given the records there now: creates first, then TTL updates, then
    /// deletions.
    async fn write(
        &self,
        zone: &Zone,
        name: &Fqdn,
        current: &[&BunnyTxt],
        desired: &[Vec<u8>],
        ttl: u32,
        op: Operation,
    ) -> Result<(), Error> {
        let rel = relative(zone, name, op)?;
        let diff = super::diff_records(desired, current.iter().copied(), |r, d| {
            r.value.as_bytes() == d.as_slice()
        });
        let path = format!("dnszone/{}/records", zone.id);
        for d in diff.create {
            let body = json!({
                "Type": TYPE_TXT,
                "Name": rel,
                "Value": String::from_utf8_lossy(d),
                "Ttl": ttl,
            });
            // A create is not idempotent: a retry after a lost answer would add
            // a second record, so it is sent again only when never delivered.
            self.http
                .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                    self.req(c, Method::PUT, &path).json(&body)
                })
                .await?;
        }
        for r in diff.keep.iter().filter(|r| r.ttl != ttl) {
            let p = format!("{path}/{}", r.id);
            let body = json!({
                "Id": r.id,
                "Type": TYPE_TXT,
                "Name": rel,
                "Value": r.value,
                "Ttl": ttl,
            });
            self.http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::POST, &p).json(&body)
                })
                .await?;
        }
        for r in diff.delete {
            let p = format!("{path}/{}", r.id);
            self.http
                .delete(op, name, |c| self.req(c, Method::DELETE, &p))
                .await?;
        }
        Ok(())
    }

    fn check(&self, name: &Fqdn, set: &TxtSet) -> Result<Vec<Vec<u8>>, Error> {
        Ok(super::check_all(KIND, &self.profile, name, set)?
            .iter()
            .map(TxtRecord::value)
            .collect())
    }
}

#[async_trait::async_trait]
impl Provider for Bunny {
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
        let candidates = zone_candidates(name);
        let mut best: Option<(usize, Zone)> = None;
        let mut page = 1u32;
        loop {
            let q = [
                ("page", page.to_string()),
                ("perPage", self.page_size.to_string()),
            ];
            let resp = self
                .http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, "dnszone").query(&q)
                })
                .await?;
            let list: ZoneList = resp.json(KIND, op).map_err(|e| e.with_name(name))?;
            for z in &list.items {
                let Ok(domain) = Fqdn::parse(&z.domain) else {
                    continue;
                };
                if let Some(rank) = candidates.iter().position(|c| *c == domain)
                    && best.as_ref().is_none_or(|(b, _)| rank < *b)
                {
                    best = Some((
                        rank,
                        Zone {
                            name: domain,
                            id: z.id.to_string(),
                        },
                    ));
                }
            }
            if !list.has_more_items || list.items.is_empty() {
                break;
            }
            page += 1;
        }
        best.map(|(_, z)| z).ok_or_else(|| {
            Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::ZoneNotFound,
                "no DNS zone of this account holds the name",
            )
        })
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        let all = self.zone_txt(zone, name, op).await?;
        Ok(txt_set(&Self::at(zone, name, &all, op)?))
    }

    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        let mut out = ZoneSets::new();
        let Some(first) = names.first() else {
            return Ok(out);
        };
        // One GET answers every owner name of the zone.
        let all = self.zone_txt(zone, first, op).await?;
        for name in names {
            let set = txt_set(&Self::at(zone, name, &all, op)?);
            out.insert(name.clone(), changeset::Observed::of(set));
        }
        Ok(out)
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        let name = &change.name;
        let op = change.operation();
        let desired = match change.wanted() {
            Some(set) => self.check(name, set)?,
            None => Vec::new(),
        };
        let all = self.zone_txt(zone, name, op).await?;
        let current = Self::at(zone, name, &all, op)?;
        let now = txt_set(&current);
        if !change.old.unchanged_in(now.as_ref()) {
            // Already what is wanted (this change applied before): done.
            if changeset::same_content(change.wanted(), now.as_ref()) {
                return Ok(());
            }
            return Err(changeset::conflict(
                KIND,
                op,
                name,
                "the TXT records changed since they were read",
            ));
        }
        let ttl = change.wanted().map(|s| s.ttl).unwrap_or(0);
        self.write(zone, name, &current, &desired, ttl, op).await
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        let desired = self.check(name, set)?;
        let all = self.zone_txt(zone, name, op).await?;
        let current = Self::at(zone, name, &all, op)?;
        self.write(zone, name, &current, &desired, set.ttl, op)
            .await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let all = self.zone_txt(zone, name, op).await?;
        let current = Self::at(zone, name, &all, op)?;
        self.write(zone, name, &current, &[], 0, op).await
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BunnyError {
    #[serde(default)]
    error_key: String,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: String,
}

/// Maps Bunny's `{"ErrorKey","Field","Message"}` errors.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let Ok(e) = serde_json::from_slice::<BunnyError>(f.body) else {
        return crate::http::default_mapper(f);
    };
    if e.error_key.is_empty() && e.message.is_empty() {
        return crate::http::default_mapper(f);
    }
    let mut msg = if e.error_key.is_empty() {
        e.message
    } else {
        format!("{}: {}", e.error_key, e.message)
    };
    if let Some(field) = e.field.filter(|x| !x.is_empty()) {
        msg.push_str(&format!(" (field {field})"));
    }
    (kind_for_status(f.status), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_records_keep_enabled_txt_of_either_type_form() {
        let name = Fqdn::parse("example.com").unwrap();
        let body = br#"{"Id":7,"Domain":"example.com","Records":[
            {"Id":1,"Type":3,"Ttl":300,"Value":"v=spf1 -all","Name":"","Disabled":false},
            {"Id":2,"Type":"TXT","Ttl":300,"Value":"x","Name":"_dmarc"},
            {"Id":3,"Type":3,"Ttl":300,"Value":"off","Name":"","Disabled":true},
            {"Id":4,"Type":0,"Ttl":300,"Value":"192.0.2.1","Name":"www"}]}"#;
        let r = parse_zone_records(body, &name, Operation::Read).unwrap();
        assert_eq!(
            r.iter().map(|x| x.id).collect::<Vec<_>>(),
            [1, 2],
            "disabled and non-TXT records left out"
        );
        for bad in [
            &br#"{"Id":7,"Domain":"example.com"}"#[..],
            br#"{"Id":7,"Domain":"example.com","Records":[{"Id":1,"Type":3,"Ttl":300,"Name":""}]}"#,
            br#"{"Id":7,"Domain":"example.com","Records":[{"Id":1,"Type":null,"Ttl":1,"Value":"a","Name":""}]}"#,
        ] {
            let e = parse_zone_records(bad, &name, Operation::Read).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn errors_name_key_field_and_message() {
        let headers = reqwest::header::HeaderMap::new();
        let (k, m) = map_error(&Failure {
            status: reqwest::StatusCode::BAD_REQUEST,
            headers: &headers,
            body: br#"{"ErrorKey":"validation_error","Field":"Value","Message":"The record value is invalid."}"#,
        });
        assert_eq!(k, ErrorKind::Invalid);
        assert_eq!(
            m,
            "validation_error: The record value is invalid. (field Value)"
        );
    }
}

//! Cloudflare (API v4): record-level, one `id` per TXT value.
//!
//! - Zone: `GET /zones?name=<candidate>` walking up the labels (an unknown name is
//!   200 with `"result":[]`).
//! - Values: `GET /zones/{id}/dns_records?type=TXT&name.exact=<fqdn>&page=&per_page=`
//!   (paged by `result_info.total_pages`).
//! - `content` is sent in presentation form (quoted character-strings). Cloudflare
//!   stores `content` as sent and splits quoted strings over 255 bytes itself.
//!   Records of one name and type are at most 4,096 bytes each on the wire.
//! - Writes go through the batch endpoint (`POST /zones/{id}/dns_records/batch`),
//!   one request per change set (or per replaced name), run by Cloudflare in one
//!   database transaction: values already present are kept (same id; a TTL-only
//!   PATCH sends only `ttl`), unwanted ones deleted, missing ones posted. Deletes
//!   run before posts, so replacing two large values never crosses the 8,192
//!   characters of content one name and type may hold.
//! - Errors: `{"success":false,"errors":[{"code","message","error_chain"}]}`. A bad
//!   token is 403 with code 10000 "Authentication error": mapped to `Auth`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    Secret, TxtChange, TxtRecord, TxtSet, Zone, ZoneProbe, ZoneSets, walk_zones, zone_candidates,
};

const KIND: &str = "cloudflare";

/// The registry entry: a secret credential; `base_url` overrides the API's.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/cloudflare.toml"),
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
    Ok(std::sync::Arc::new(Cloudflare::new(cfg, policy)?))
}

/// The real API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// Records per page when listing (Cloudflare's default for DNS records is 100).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Most bytes of a joined value: 4,096 bytes of wire RDATA hold 16 strings of 255
/// bytes plus their 16 length bytes.
pub const MAX_VALUE_BYTES: usize = 4080;

/// Account settings for Cloudflare.
#[derive(Debug, Clone)]
pub struct Config {
    /// API token with Zone.DNS edit permission.
    pub token: Secret,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing or using a compatible host.
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

/// The Cloudflare adapter.
#[derive(Debug)]
pub struct Cloudflare {
    http: HttpClient,
    token: Secret,
    page_size: u32,
    profile: Profile,
}

#[derive(Deserialize)]
struct Envelope<T> {
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

#[derive(Deserialize)]
struct CfZone {
    id: String,
    name: String,
}

#[derive(Deserialize, Clone)]
struct CfRecord {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    content: String,
    ttl: u32,
}

/// One stored TXT record as listed: its id, value and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// Cloudflare's record id.
    pub id: String,
    /// The value, parsed from `content`.
    pub value: TxtRecord,
    /// TTL in seconds.
    pub ttl: u32,
}

/// Parses one page of a `dns_records` list (`{"success":true,"result":[…],
/// "result_info":{…}}`): the TXT records and the number of pages. Pure, for the read
/// path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `cloudflare` and `op` when the body is not the
/// documented envelope (a success without `result`), a record is not TXT, or its
/// `content` starts like quoted strings but is not valid quoted text
/// (<https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/list/>).
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<ListedRecord>, u32), Error> {
    let env: Envelope<Vec<CfRecord>> =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let Some(records) = env.result else {
        return Err(super::bad_body(
            KIND,
            op,
            name,
            "no `result` in a success answer",
        ));
    };
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if r.kind != "TXT" {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("a {} record in the answer to a TXT query", r.kind),
            ));
        }
        out.push(ListedRecord {
            value: parse_content(&r.content, name, op)?,
            id: r.id,
            ttl: r.ttl,
        });
    }
    let pages = env.result_info.and_then(|i| i.total_pages).unwrap_or(1);
    Ok((out, pages))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<CfError>,
}

#[derive(Deserialize)]
struct CfError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_chain: Vec<CfError>,
}

/// Codes Cloudflare uses for a refused or missing credential.
const AUTH_CODES: [i64; 5] = [10000, 9106, 9109, 6003, 6103];

/// Extracts Cloudflare's own message(s) from its error envelope.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(f.body) else {
        return crate::http::default_mapper(f);
    };
    let mut parts = Vec::new();
    let mut auth = false;
    for e in &env.errors {
        auth |= AUTH_CODES.contains(&e.code);
        let mut s = format!("{} (code {})", e.message, e.code);
        for c in &e.error_chain {
            auth |= AUTH_CODES.contains(&c.code);
            s.push_str(&format!("; {} (code {})", c.message, c.code));
        }
        parts.push(s);
    }
    let kind = if auth {
        ErrorKind::Auth
    } else if env.errors.iter().any(|e| e.code == 7003 || e.code == 7000) {
        ErrorKind::ZoneNotFound
    } else if env
        .errors
        .iter()
        .any(|e| e.code == 81044 || e.code == 81058)
    {
        // A record deleted since the read ("Record does not exist."), or a
        // value someone else created since ("An identical record already
        // exists."): the batch was planned on a stale read.
        ErrorKind::Conflict
    } else {
        kind_for_status(f.status)
    };
    let msg = if parts.is_empty() {
        String::from_utf8_lossy(f.body).chars().take(500).collect()
    } else {
        parts.join("; ")
    };
    (kind, msg)
}

impl Cloudflare {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        super::require_nonempty(KIND, config.token.is_empty(), "API token")?;
        Ok(Cloudflare {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            token: config.token,
            page_size: config.page_size.max(1),
            profile: crate::registry::profile(KIND)?,
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .bearer_auth(self.token.expose())
    }

    async fn list(
        &self,
        zone: &Zone,
        name: &Fqdn,
        op: Operation,
    ) -> Result<Vec<ListedRecord>, Error> {
        let (out, _) = self.list_pages(zone, Some(name), op, u32::MAX).await?;
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// The TXT records at `name`, or in the whole zone when `name` is `None`,
    /// each with its owner name; at most `max_pages` pages. The flag says
    /// whether the listing was read to its end.
    async fn list_pages(
        &self,
        zone: &Zone,
        name: Option<&Fqdn>,
        op: Operation,
        max_pages: u32,
    ) -> Result<(Vec<(String, ListedRecord)>, bool), Error> {
        let path = format!("zones/{}/dns_records", zone.id);
        let err_name = name.unwrap_or(&zone.name);
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = vec![
                ("type", "TXT".to_string()),
                ("page", page.to_string()),
                ("per_page", self.page_size.to_string()),
            ];
            if let Some(n) = name {
                q.push(("name.exact", n.to_string()));
            }
            let resp = self
                .http
                .send(op, Some(err_name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, &path).query(&q)
                })
                .await?;
            let (got, total) = parse_named_records(&resp.body, err_name, op)?;
            let n = got.len();
            out.extend(got);
            if page >= total || n == 0 {
                return Ok((out, true));
            }
            if page >= max_pages {
                return Ok((out, false));
            }
            page += 1;
        }
    }

    /// The TXT records at each of `names`: one name, one filtered listing;
    /// several, one listing of the zone's TXT records (at most one page a name,
    /// then the names not yet seen one by one).
    async fn records_at(
        &self,
        zone: &Zone,
        names: &[Fqdn],
        op: Operation,
    ) -> Result<std::collections::BTreeMap<Fqdn, Vec<ListedRecord>>, Error> {
        let mut out: std::collections::BTreeMap<Fqdn, Vec<ListedRecord>> = Default::default();
        if let [one] = names {
            out.insert(one.clone(), self.list(zone, one, op).await?);
            return Ok(out);
        }
        let budget = u32::try_from(names.len()).unwrap_or(u32::MAX);
        let (all, complete) = self.list_pages(zone, None, op, budget).await?;
        for n in names {
            out.insert(n.clone(), Vec::new());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (owner, rec) in all {
            if let Some(n) = names
                .iter()
                .find(|n| n.as_str().eq_ignore_ascii_case(owner.trim_end_matches('.')))
            {
                seen.insert(n.clone());
                out.entry(n.clone()).or_default().push(rec);
            }
        }
        if !complete {
            for n in names {
                if !seen.contains(n) {
                    out.insert(n.clone(), self.list(zone, n, op).await?);
                }
            }
        }
        Ok(out)
    }

    /// The batch operations that turn `current` into `desired` at `name`:
    /// records already holding a desired value are kept (a TTL-only PATCH when
    /// the TTL differs, sending only `ttl`), the others deleted, missing values
    /// posted. Cloudflare runs a batch's deletes before its posts, so the
    /// 8,192-character total of one name is never crossed on the way.
    fn plan_batch(
        name: &Fqdn,
        ttl: u32,
        desired: &[TxtRecord],
        current: &[ListedRecord],
        ops: &mut BatchOps,
    ) {
        let diff = super::diff_records(desired, current.iter(), |rec, d| rec.value == *d);
        for d in diff.create {
            ops.posts.push(json!({
                "type": "TXT",
                "name": name.to_string(),
                "content": d.to_presentation(),
                "ttl": ttl,
            }));
        }
        for rec in diff.keep.iter().filter(|rec| rec.ttl != ttl) {
            ops.patches.push(json!({ "id": rec.id, "ttl": ttl }));
        }
        for rec in diff.delete {
            ops.deletes.push(json!({ "id": rec.id }));
        }
    }

    /// Makes the records at `name` exactly `desired`: one listing and one
    /// batch; when the batch meets a record changed since the listing, once more.
    async fn write_name(
        &self,
        zone: &Zone,
        name: &Fqdn,
        ttl: u32,
        desired: &[TxtRecord],
        op: Operation,
    ) -> Result<(), Error> {
        let mut retried = false;
        loop {
            let current = self.list(zone, name, op).await?;
            let mut ops = BatchOps::default();
            Self::plan_batch(name, ttl, desired, &current, &mut ops);
            match self.send_batch(zone, name, ops, op).await {
                Err(e) if e.kind == ErrorKind::Conflict && !retried => retried = true,
                other => return other,
            }
        }
    }

    /// Sends one batch (nothing when it is empty).
    async fn send_batch(
        &self,
        zone: &Zone,
        name: &Fqdn,
        ops: BatchOps,
        op: Operation,
    ) -> Result<(), Error> {
        let count = ops.deletes.len() + ops.patches.len() + ops.posts.len();
        if count == 0 {
            return Ok(());
        }
        if count > MAX_BATCH_OPERATIONS {
            return Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Invalid,
                format!(
                    "refused before sending: the change needs {count} record operations in one batch; Cloudflare takes {MAX_BATCH_OPERATIONS} on every plan"
                ),
            ));
        }
        let mut body = serde_json::Map::new();
        for (k, v) in [
            ("deletes", ops.deletes),
            ("patches", ops.patches),
            ("posts", ops.posts),
        ] {
            if !v.is_empty() {
                body.insert(k.to_string(), serde_json::Value::Array(v));
            }
        }
        let body = serde_json::Value::Object(body);
        let path = format!("zones/{}/dns_records/batch", zone.id);
        self.http
            .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                self.req(c, Method::POST, &path).json(&body)
            })
            .await?;
        Ok(())
    }

    /// Shapes and checks a wanted set: each record against the profile, and
    /// the whole set against the 8,192 characters one name may hold.
    fn desired(&self, name: &Fqdn, set: &TxtSet) -> Result<Vec<TxtRecord>, Error> {
        let desired = super::check_all(KIND, &self.profile, name, set)?;
        let len: usize = desired
            .iter()
            .map(|r| r.to_presentation().chars().count())
            .sum();
        if len > MAX_CONTENT_PER_NAME {
            return Err(Error::new(
                KIND,
                Operation::Replace,
                Some(name),
                ErrorKind::Limit(crate::LimitError::SetTooLong {
                    len,
                    max: MAX_CONTENT_PER_NAME,
                }),
                "refused before sending: Cloudflare holds at most 8,192 characters of content for one name and type",
            ));
        }
        Ok(desired)
    }
}

/// The operations of one `POST /zones/{id}/dns_records/batch`.
#[derive(Debug, Default)]
struct BatchOps {
    deletes: Vec<serde_json::Value>,
    patches: Vec<serde_json::Value>,
    posts: Vec<serde_json::Value>,
}

/// Most record operations in one batch on every plan (Free: 200; Pro and up:
/// 3,500), <https://developers.cloudflare.com/dns/manage-dns-records/how-to/batch-record-changes/>.
pub const MAX_BATCH_OPERATIONS: usize = 200;

/// Most characters of `content` the TXT records of one name hold together
/// (<https://developers.cloudflare.com/dns/manage-dns-records/reference/dns-record-types/>).
pub const MAX_CONTENT_PER_NAME: usize = 8192;

#[derive(Deserialize)]
struct NamedRecord {
    name: String,
}

/// [`parse_records`], each record with its owner name.
fn parse_named_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<(String, ListedRecord)>, u32), Error> {
    let (records, pages) = parse_records(body, name, op)?;
    let env: Envelope<Vec<NamedRecord>> =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let names = env.result.unwrap_or_default();
    if names.len() != records.len() {
        return Err(super::bad_body(KIND, op, name, "records without a name"));
    }
    Ok((
        names.into_iter().map(|n| n.name).zip(records).collect(),
        pages,
    ))
}

/// Parses stored `content`: quoted presentation form, or (as Cloudflare accepts)
/// unquoted text, which it treats as one value. Content that starts with a quote
/// but is not valid quoted strings is refused, not taken literally.
fn parse_content(content: &str, name: &Fqdn, op: Operation) -> Result<TxtRecord, Error> {
    if content.trim_start().starts_with('"') {
        super::parse_quoted(KIND, op, name, content)
    } else {
        Ok(TxtRecord::from_value(content.as_bytes()))
    }
}

#[async_trait::async_trait]
impl Provider for Cloudflare {
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
        walk_zones(
            KIND,
            name,
            zone_candidates(name),
            "no zone in this account holds the name",
            |cand| async move {
                let q = [("name", cand.to_string()), ("per_page", "50".to_string())];
                let resp = self
                    .http
                    .send(op, Some(name), Idempotency::Idempotent, |c| {
                        self.req(c, Method::GET, "zones").query(&q)
                    })
                    .await?;
                let env: Envelope<Vec<CfZone>> =
                    resp.json(KIND, op).map_err(|e| e.with_name(name))?;
                Ok(env
                    .result
                    .unwrap_or_default()
                    .into_iter()
                    .find(|z| Fqdn::parse(&z.name).is_ok_and(|n| n == cand))
                    .map_or(ZoneProbe::Absent(None), |z| ZoneProbe::Found(z.id)))
            },
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        Ok(to_set(&self.list(zone, name, Operation::Read).await?))
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let desired = self.desired(name, set)?;
        self.write_name(zone, name, set.ttl, &desired, Operation::Replace)
            .await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.write_name(zone, name, 0, &[], Operation::Delete).await
    }

    /// One batch request, which Cloudflare runs in one database transaction
    /// (all or nothing; propagation to its edge is not atomic). Cloudflare has
    /// no precondition, so the apply reads the RRsets again just before it.
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: false,
            ..ApplyTraits::default()
        }
    }

    /// One name: a filtered listing; several: one listing of the zone's TXT
    /// records. Each observation keeps the records' ids and TTLs (in
    /// `version`), so [`apply`](Self::apply) needs no second listing.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let recs = self.records_at(zone, names, Operation::Read).await?;
        Ok(recs
            .into_iter()
            .map(|(n, r)| {
                let observed = Observed {
                    set: to_set(&r),
                    version: Some(ids_version(&r)),
                };
                (n, observed)
            })
            .collect())
    }

    /// ONE batch (`deletes`, TTL-only `patches`, `posts`) for every name, built
    /// from the record ids the caller's `read_sets` kept. A record deleted since
    /// that read fails the whole batch (code 81044, [`ErrorKind::Conflict`], nothing
    /// written); the apply then reads the RRsets again (one listing), refuses
    /// with a conflict any set that changed since the caller's read, skips sets
    /// already as wanted (a re-apply) and sends the batch once more. A change
    /// without kept ids (an observation not made by `read_sets`) takes that
    /// second path at once.
    ///
    /// Cloudflare has no precondition: a value another tool edits IN PLACE
    /// (same record id) between the read and the batch, at a record the change
    /// deletes, is lost; values another tool adds are never touched.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let op = Operation::Replace;
        let mut desired = Vec::with_capacity(changes.len());
        for c in changes {
            desired.push(match c.wanted() {
                Some(set) => (
                    set.ttl,
                    self.desired(&c.name, set)
                        .map_err(ApplyError::nothing_written)?,
                ),
                None => (0, Vec::new()),
            });
        }
        let Some(first) = changes.first() else {
            return Ok(());
        };
        let kept: Option<Vec<Vec<ListedRecord>>> =
            changes.iter().map(|c| listed_from(&c.old)).collect();
        if let Some(kept) = kept {
            let mut ops = BatchOps::default();
            for ((c, (ttl, want)), current) in changes.iter().zip(&desired).zip(&kept) {
                Self::plan_batch(&c.name, *ttl, want, current, &mut ops);
            }
            match self.send_batch(zone, &first.name, ops, op).await {
                Err(e) if e.kind == ErrorKind::Conflict => {}
                other => return other.map_err(ApplyError::nothing_written),
            }
        }
        let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
        let now = self
            .records_at(zone, &names, op)
            .await
            .map_err(ApplyError::nothing_written)?;
        let mut ops = BatchOps::default();
        for (c, (ttl, want)) in changes.iter().zip(&desired) {
            let current = now.get(&c.name).map(Vec::as_slice).unwrap_or_default();
            let held = to_set(current);
            // Nothing to write when the change was applied before; a conflict
            // when the set is neither what was read nor what is wanted.
            if !c
                .still_to_write(KIND, held.as_ref())
                .map_err(ApplyError::nothing_written)?
            {
                continue;
            }
            Self::plan_batch(&c.name, *ttl, want, current, &mut ops);
        }
        self.send_batch(zone, &first.name, ops, op)
            .await
            .map_err(ApplyError::nothing_written)
    }
}

/// The `version` of an observation: each record's id and TTL, in the order
/// of the set's records (`id/ttl` separated by spaces; ids are hex).
fn ids_version(recs: &[ListedRecord]) -> String {
    recs.iter()
        .map(|r| format!("{}/{}", r.id, r.ttl))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The listed records an observation made by `read_sets` stands for, or
/// `None` when it carries no (or a malformed) `version`.
fn listed_from(old: &Observed) -> Option<Vec<ListedRecord>> {
    let version = old.version.as_deref()?;
    let records = old
        .set
        .as_ref()
        .map(|s| s.records.as_slice())
        .unwrap_or_default();
    let ids: Vec<&str> = version.split(' ').filter(|s| !s.is_empty()).collect();
    if ids.len() != records.len() {
        return None;
    }
    ids.iter()
        .zip(records)
        .map(|(id, value)| {
            let (id, ttl) = id.split_once('/')?;
            Some(ListedRecord {
                id: id.to_string(),
                value: value.clone(),
                ttl: ttl.parse().ok()?,
            })
        })
        .collect()
}

/// The RRset the listed records make (the first record's TTL), `None` when empty.
fn to_set(recs: &[ListedRecord]) -> Option<TxtSet> {
    let first = recs.first()?;
    Some(TxtSet {
        ttl: first.ttl,
        records: recs.iter().map(|r| r.value.clone()).collect(),
    })
}

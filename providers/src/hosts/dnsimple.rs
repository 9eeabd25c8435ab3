//! DNSimple (API v2): record-level, one `id` per TXT value, plus one atomic batch
//! request per change set where the account's plan has it.
//!
//! - Account: every path carries the numeric account id: the `account_id` setting,
//!   or `GET /whoami` (`data.account.id`; `null` for user tokens, which cannot be used).
//! - Zone: `GET /{account}/zones/{candidate}` walking up the labels (404 when absent);
//!   the zone's identifier is its name.
//! - Values: `GET /{account}/zones/{zone}/records?type=TXT&name=<relative>&page=&per_page=`
//!   (names relative, apex `""`), paged by `pagination.total_pages`.
//! - TXT content: DNSimple wraps unquoted content in quotes (escaping inner `"`) and
//!   keeps content given already quoted verbatim; the serialized form may not exceed
//!   1000 characters (<https://support.dnsimple.com/articles/txt-record-format/>).
//!   The adapter sends the quoted form itself (the joined value cut into 255-byte
//!   strings, escaped), so what it reads back is what it sent, and compares values
//!   after unquoting (older records may still be unquoted), so a second run is in sync.
//! - Writes per name: create `POST …/records`, TTL `PATCH …/records/{id}`, delete
//!   `DELETE …/records/{id}`; values already present keep their record.
//! - Change sets: `POST /{account}/zones/{zone}/batch` with `deletes`, `updates`,
//!   `creates`, applied by DNSimple in that order as one atomic operation
//!   (<https://developer.dnsimple.com/v2/zones/batch-change-zone-records/>). Only the
//!   Enterprise plan has it: the documented HTTP 412 makes the adapter fall back to
//!   per-name writes for the rest of the process. Not compare-and-swap: every RRset is
//!   read again (one list of the zone's TXT records) just before the batch is sent.
//! - Errors: `{"message":"…","errors":{…}}`; 401 bad token, 402 account not in good
//!   standing, 404 not found, 412 plan feature missing, 429 `quota exceeded`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::check_all;
use crate::changeset::{ApplyError, ApplyTraits, Observed, TxtChange, ZoneSets};
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, SettingProblem, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
};

const KIND: &str = "dnsimple";

/// The registry entry: a secret credential (account token); optional `account_id`
/// and `base_url`.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/dnsimple.toml"),
    credential: CredentialKind::Secret,
    required: &[],
    optional: &["account_id", "base_url"],
    check,
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
    if let Some(id) = &settings.account_id {
        cfg.account_id = Some(account_id(id).map_err(config_error)?);
    }
    Ok(std::sync::Arc::new(Dnsimple::new(cfg, policy)?))
}

/// The numeric account id of the `account_id` setting.
fn account_id(id: &str) -> Result<u64, String> {
    id.trim().parse().map_err(|_| {
        format!(
            "account_id '{id}' is not a DNSimple account id (a number, as in https://dnsimple.com/a/1010/...)"
        )
    })
}

/// The registry's [`crate::registry::Check`]: the account id.
fn check(settings: &Settings) -> Vec<SettingProblem> {
    match settings.account_id.as_deref().map(account_id) {
        Some(Err(m)) => vec![SettingProblem::new("account_id", m)],
        _ => Vec::new(),
    }
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
pub const DEFAULT_BASE_URL: &str = "https://api.dnsimple.com/v2";

/// Records per page (DNSimple's documented default is 30; 100 is the usual maximum).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Account settings for DNSimple.
#[derive(Debug, Clone)]
pub struct Config {
    /// Account API token (`Authorization: Bearer`).
    pub token: Secret,
    /// The numeric account id; looked up with `GET /whoami` when `None`.
    pub account_id: Option<u64>,
    /// API base URL; [`DEFAULT_BASE_URL`] unless testing (sandbox:
    /// `https://api.sandbox.dnsimple.com/v2`).
    pub base_url: String,
    /// Records per page when listing (1..=100).
    pub page_size: u32,
}

impl Config {
    /// A config for the real API.
    pub fn new(token: Secret) -> Self {
        Config {
            token,
            account_id: None,
            base_url: DEFAULT_BASE_URL.to_string(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// Whether the account has the batch endpoint: not known yet, yes, or no (412).
const BATCH_UNKNOWN: u8 = 0;
const BATCH_YES: u8 = 1;
const BATCH_NO: u8 = 2;

/// The DNSimple adapter.
#[derive(Debug)]
pub struct Dnsimple {
    http: HttpClient,
    token: Secret,
    account_id: Option<u64>,
    whoami: tokio::sync::OnceCell<u64>,
    page_size: u32,
    profile: Profile,
    batch: AtomicU8,
    write_lock: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct ErrBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Option<Value>,
}

/// Extracts DNSimple's `{"message","errors"}` error. 412 (a feature the plan lacks)
/// and 402 (account not in good standing) are permission errors, not conflicts.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let kind = match f.status.as_u16() {
        401 => ErrorKind::Auth,
        402 | 403 | 412 => ErrorKind::Permission,
        404 => ErrorKind::ZoneNotFound,
        400 | 422 => ErrorKind::Invalid,
        429 => ErrorKind::RateLimited,
        _ => kind_for_status(f.status),
    };
    match serde_json::from_slice::<ErrBody>(f.body) {
        Ok(b) if !b.message.is_empty() => {
            let mut m = b.message;
            if let Some(e) = b.errors.filter(|e| !e.is_null()) {
                m.push_str(&format!(": {e}"));
            }
            if f.status.as_u16() == 401
                && f.headers
                    .get("x-dnsimple-otp")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"required"))
            {
                m.push_str(" (the user has two-factor authentication: use an account token)");
            }
            (kind, m)
        }
        _ => (kind, crate::http::default_mapper(f).1),
    }
}

#[derive(Deserialize)]
struct RecordList {
    data: Vec<DsRecord>,
    pagination: Pagination,
}

#[derive(Deserialize)]
struct Pagination {
    current_page: u32,
    total_pages: u32,
}

#[derive(Deserialize)]
struct DsRecord {
    id: u64,
    name: String,
    content: String,
    ttl: u32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    system_record: bool,
}

/// One stored TXT record as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// DNSimple's record id.
    pub id: u64,
    /// Name relative to the zone (`""` for the apex).
    pub name: String,
    /// The value: `content` unquoted and unescaped (DNSimple keeps no string boundaries).
    pub value: Vec<u8>,
    /// TTL in seconds.
    pub ttl: u32,
}

/// The value of a TXT record's `content`: unquoted when DNSimple gives the quoted
/// form (always since late 2023), as is otherwise (older records). `None` when it
/// starts with a quote but is not quoted strings.
pub fn content_value(content: &str) -> Option<Vec<u8>> {
    if content.starts_with('"') {
        super::joined_quoted(content)
    } else {
        Some(content.as_bytes().to_vec())
    }
}

/// The `content` the adapter sends for `record`: its joined value cut into 255-byte
/// strings, each quoted and escaped (DNSimple stores quoted content verbatim).
pub fn content_of(record: &TxtRecord) -> String {
    TxtRecord::from_value(record.value()).to_presentation()
}

/// Parses one page of a zone-records list: the TXT records (DNSimple's system
/// records and its `ALIAS for` mirrors left out) and whether a later page exists.
/// Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `dnsimple` and `op` when the body is not the
/// documented shape (`data` of records with `id`, `name`, `content`, `ttl`, `type`;
/// `pagination`), a record is not TXT, or a quoted content does not parse
/// (<https://developer.dnsimple.com/v2/zones/records/#listZoneRecords>).
pub fn parse_records(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<ListedRecord>, bool), Error> {
    let list: RecordList =
        serde_json::from_slice(body).map_err(|e| super::bad_body(KIND, op, name, e))?;
    let mut out = Vec::with_capacity(list.data.len());
    for r in list.data {
        if r.kind != "TXT" {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("a {} record in the answer to a TXT query", r.kind),
            ));
        }
        let value = content_value(&r.content).ok_or_else(|| {
            super::bad_body(
                KIND,
                op,
                name,
                format!(
                    "TXT content {:?} is neither plain nor quoted strings",
                    r.content
                ),
            )
        })?;
        if r.system_record || value.starts_with(b"ALIAS for ") {
            continue;
        }
        out.push(ListedRecord {
            id: r.id,
            name: r.name,
            value,
            ttl: r.ttl,
        });
    }
    let more = list.pagination.current_page < list.pagination.total_pages;
    Ok((out, more))
}

#[derive(Deserialize)]
struct Whoami {
    data: WhoamiData,
}

#[derive(Deserialize)]
struct WhoamiData {
    account: Option<WhoamiAccount>,
}

#[derive(Deserialize)]
struct WhoamiAccount {
    id: u64,
}

/// Parses `GET /whoami`: the account id of an account token.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not `{"data":{"account":…}}`;
/// [`ErrorKind::Config`] when `account` is `null` (a user token).
pub fn parse_whoami(body: &[u8]) -> Result<u64, Error> {
    let w: Whoami = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            KIND,
            Operation::Authenticate,
            None,
            ErrorKind::Protocol,
            format!("unexpected response body: {e}"),
        )
    })?;
    w.data.account.map(|a| a.id).ok_or_else(|| {
        config_error(
            "the token is a user token (whoami names no account): use an account token, or set account_id",
        )
    })
}

/// What to send for one owner name: records to create (content), records to keep
/// whose TTL differs, records to delete.
struct NamePlan {
    creates: Vec<String>,
    rettl: Vec<u64>,
    deletes: Vec<u64>,
}

fn plan_name(current: &[ListedRecord], set: Option<&TxtSet>, records: &[TxtRecord]) -> NamePlan {
    let desired: Vec<Vec<u8>> = records.iter().map(TxtRecord::value).collect();
    let diff = super::diff_records(&desired, current.iter(), |rec, d| rec.value == *d);
    let ttl = set.map_or(0, |s| s.ttl);
    NamePlan {
        creates: diff
            .create
            .into_iter()
            .map(|v| content_of(&TxtRecord::from_value(v)))
            .collect(),
        rettl: diff
            .keep
            .iter()
            .filter(|r| r.ttl != ttl)
            .map(|r| r.id)
            .collect(),
        deletes: diff.delete.iter().map(|r| r.id).collect(),
    }
}

impl Dnsimple {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token is empty or the base URL is not https
    /// (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        if config.token.is_empty() {
            return Err(config_error("the API token is empty"));
        }
        Ok(Dnsimple {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            token: config.token,
            account_id: config.account_id,
            whoami: tokio::sync::OnceCell::new(),
            page_size: config.page_size.clamp(1, 100),
            profile: crate::registry::profile(KIND)?,
            batch: AtomicU8::new(BATCH_UNKNOWN),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .bearer_auth(self.token.expose())
            .header("accept", "application/json")
    }

    async fn account(&self) -> Result<u64, Error> {
        if let Some(id) = self.account_id {
            return Ok(id);
        }
        self.whoami
            .get_or_try_init(|| async {
                let resp = self
                    .http
                    .send(
                        Operation::Authenticate,
                        None,
                        Idempotency::Idempotent,
                        |c| self.req(c, Method::GET, "whoami"),
                    )
                    .await?;
                parse_whoami(&resp.body)
            })
            .await
            .copied()
    }

    async fn records_path(&self, zone: &Zone) -> Result<String, Error> {
        Ok(format!(
            "{}/zones/{}/records",
            self.account().await?,
            zone.id
        ))
    }

    /// The zone's TXT records, all of them (`name` = `None`) or at one name.
    async fn list(
        &self,
        zone: &Zone,
        name: Option<&Fqdn>,
        op: Operation,
    ) -> Result<Vec<ListedRecord>, Error> {
        let path = self.records_path(zone).await?;
        let about = name.unwrap_or(&zone.name);
        let rel = match name {
            Some(n) => Some(relative(zone, n, op)?),
            None => None,
        };
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let mut q = vec![
                ("type", "TXT".to_string()),
                ("page", page.to_string()),
                ("per_page", self.page_size.to_string()),
            ];
            if let Some(r) = &rel {
                q.push(("name", r.clone()));
            }
            let resp = self
                .http
                .send(op, Some(about), Idempotency::Idempotent, |c| {
                    self.req(c, Method::GET, &path).query(&q)
                })
                .await?;
            let (got, more) = parse_records(&resp.body, about, op)?;
            let n = got.len();
            // The `name` filter is exact on DNSimple; filter again so that a host
            // answering more never makes the adapter touch another name.
            out.extend(
                got.into_iter()
                    .filter(|r| rel.as_ref().is_none_or(|want| &r.name == want)),
            );
            if !more || n == 0 {
                return Ok(out);
            }
            page += 1;
        }
    }

    async fn delete_id(
        &self,
        path: &str,
        name: &Fqdn,
        id: u64,
        op: Operation,
    ) -> Result<(), Error> {
        let p = format!("{path}/{id}");
        self.http
            .delete(op, name, |c| self.req(c, Method::DELETE, &p))
            .await
    }

    /// Makes the records at `name` hold exactly `records` (checked) with `ttl`, one
    /// request per record changed. The caller holds the write lock.
    async fn write_name(
        &self,
        zone: &Zone,
        name: &Fqdn,
        set: Option<&TxtSet>,
        records: &[TxtRecord],
        op: Operation,
    ) -> Result<(), Error> {
        let rel = relative(zone, name, op)?;
        let path = self.records_path(zone).await?;
        let current = self.list(zone, Some(name), op).await?;
        let plan = plan_name(&current, set, records);
        let ttl = set.map_or(0, |s| s.ttl);
        for content in plan.creates {
            let body = json!({ "name": rel, "type": "TXT", "content": content, "ttl": ttl });
            self.http
                .send(op, Some(name), Idempotency::NotIdempotent, |c| {
                    self.req(c, Method::POST, &path).json(&body)
                })
                .await?;
        }
        for id in plan.rettl {
            let p = format!("{path}/{id}");
            let body = json!({ "ttl": ttl });
            self.http
                .send(op, Some(name), Idempotency::Idempotent, |c| {
                    self.req(c, Method::PATCH, &p).json(&body)
                })
                .await?;
        }
        for id in plan.deletes {
            self.delete_id(&path, name, id, op).await?;
        }
        Ok(())
    }

    /// The per-name path of [`Provider::apply`] (accounts without the batch endpoint).
    async fn apply_per_name(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let mut written = Vec::new();
        for c in changes {
            if let Err(error) = self.replace_if_unchanged(zone, c).await {
                return Err(ApplyError { written, error });
            }
            written.push(c.name.clone());
        }
        Ok(())
    }

    /// Whether the account has shown it has the batch endpoint (`Some(true)`), has
    /// shown it has not (`Some(false)`, HTTP 412), or has not been asked yet.
    pub fn batch_available(&self) -> Option<bool> {
        match self.batch.load(Ordering::Relaxed) {
            BATCH_YES => Some(true),
            BATCH_NO => Some(false),
            _ => None,
        }
    }
}

fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    super::relative_name(KIND, zone, name, op, super::Apex::Empty)
}

fn set_of(records: &[&ListedRecord]) -> Option<TxtSet> {
    let first = records.first()?;
    Some(TxtSet {
        ttl: first.ttl,
        records: records
            .iter()
            .map(|r| TxtRecord::from_value(&r.value))
            .collect(),
    })
}

#[async_trait::async_trait]
impl Provider for Dnsimple {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: self.batch.load(Ordering::Relaxed) != BATCH_NO,
            compare_and_swap: false,
            deferred: false,
        }
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let account = self.account().await.map_err(|e| e.with_name(name))?;
        super::walk_zones_by_get(
            &self.http,
            KIND,
            name,
            "no zone in this account holds the name",
            |cand| format!("{account}/zones/{cand}"),
            |c, m, p| self.req(c, m, p),
        )
        .await
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let recs = self.list(zone, Some(name), Operation::Read).await?;
        Ok(set_of(&recs.iter().collect::<Vec<_>>()))
    }

    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        // One listing of the zone's TXT records serves every name.
        let all = self.list(zone, None, Operation::Read).await?;
        let mut out = ZoneSets::new();
        for name in names {
            let rel = relative(zone, name, Operation::Read)?;
            let at: Vec<&ListedRecord> = all.iter().filter(|r| r.name == rel).collect();
            out.insert(name.clone(), Observed::of(set_of(&at)));
        }
        Ok(out)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let records = check_all(KIND, &self.profile, name, set)?;
        let _guard = self.write_lock.lock().await;
        self.write_name(zone, name, Some(set), &records, Operation::Replace)
            .await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let _guard = self.write_lock.lock().await;
        self.write_name(zone, name, None, &[], Operation::Delete)
            .await
    }

    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let mut wanted = Vec::with_capacity(changes.len());
        for c in changes {
            wanted.push(match c.wanted() {
                Some(set) => check_all(KIND, &self.profile, &c.name, set)
                    .map_err(ApplyError::nothing_written)?,
                None => Vec::new(),
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        if self.batch.load(Ordering::Relaxed) == BATCH_NO {
            return self.apply_per_name(zone, changes).await;
        }
        let guard = self.write_lock.lock().await;
        let op = changes[0].operation();
        // Read every RRset again, in one listing, just before the batch.
        let all = self
            .list(zone, None, Operation::Read)
            .await
            .map_err(ApplyError::nothing_written)?;
        let mut by_name: BTreeMap<String, Vec<ListedRecord>> = BTreeMap::new();
        for r in all {
            by_name.entry(r.name.clone()).or_default().push(r);
        }
        let (mut creates, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (c, records) in changes.iter().zip(&wanted) {
            let rel =
                relative(zone, &c.name, c.operation()).map_err(ApplyError::nothing_written)?;
            let now = by_name.get(&rel).map(Vec::as_slice).unwrap_or_default();
            let now_set = set_of(&now.iter().collect::<Vec<_>>());
            // Nothing to write when the change was applied before; a conflict
            // when the set is neither what was read nor what is wanted.
            if !c
                .still_to_write(KIND, now_set.as_ref())
                .map_err(ApplyError::nothing_written)?
            {
                continue;
            }
            let set = c.wanted();
            let plan = plan_name(now, set, records);
            let ttl = set.map_or(0, |s| s.ttl);
            creates.extend(plan.creates.into_iter().map(
                |content| json!({"name": rel, "type": "TXT", "content": content, "ttl": ttl}),
            ));
            updates.extend(
                plan.rettl
                    .into_iter()
                    .map(|id| json!({"id": id, "ttl": ttl})),
            );
            deletes.extend(plan.deletes.into_iter().map(|id| json!({"id": id})));
        }
        if creates.is_empty() && updates.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let mut body = serde_json::Map::new();
        for (k, v) in [
            ("deletes", deletes),
            ("updates", updates),
            ("creates", creates),
        ] {
            if !v.is_empty() {
                body.insert(k.to_string(), Value::Array(v));
            }
        }
        let body = Value::Object(body);
        let account = self.account().await.map_err(ApplyError::nothing_written)?;
        let path = format!("{account}/zones/{}/batch", zone.id);
        // A batch that creates records is not sent again after a timeout: DNSimple
        // may have applied it.
        let sent = self
            .http
            .send(op, Some(&zone.name), Idempotency::NotIdempotent, |c| {
                self.req(c, Method::POST, &path).json(&body)
            })
            .await;
        match sent {
            Ok(_) => {
                self.batch.store(BATCH_YES, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.status == Some(412) => {
                tracing::info!(
                    provider = KIND,
                    zone = %zone.name,
                    "the batch endpoint is not on this account's plan ({}); writing one name at a time",
                    e.message
                );
                self.batch.store(BATCH_NO, Ordering::Relaxed);
                drop(guard);
                self.apply_per_name(zone, changes).await
            }
            // Atomic: nothing of the batch was applied.
            Err(e) => Err(ApplyError::nothing_written(e)),
        }
    }
}

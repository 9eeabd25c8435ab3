//! A fake of Linode's API v4 (domains and domain records), stateful, on loopback.
//!
//! Quirks reproduced (shared/notes/provider-apis-2.md §5): lists filtered by the
//! JSON `X-Filter` header (`domain`; `name`, `type`, `target`) and paged with
//! `page`/`page_size`, bodies carrying `page`, `pages`, `results`; `ttl_sec`
//! rounded to the nearest allowed value (0 kept: the domain default); optionally
//! the TTL given on create dropped (as dnscontrol saw); `errors[]` bodies with
//! `field`/`reason`; `X-RateLimit-*` headers and 429 with `Retry-After`; a
//! "published" view that lags writes by a configurable interval (Linode's name
//! servers load changes on a cycle). Deleting a whole domain or importing one
//! (`DELETE /domains/{id}`, `POST /domains/import`) works, and fails the test
//! when the fake is dropped unless taken with [`FakeLinode::take_broad_calls`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use super::common::{self, Common, Server, json, lock, param};
use super::tripwire::Tripwire;

/// The TTLs Linode keeps; others are rounded to the nearest.
pub const VALID_TTLS: [u64; 12] = [
    300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800, 1209600, 2419200,
];

/// One stored domain record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: u64,
    /// Domain id.
    pub domain_id: u64,
    /// Name relative to the domain (`""` for the apex).
    pub name: String,
    /// Record type.
    pub kind: String,
    /// `target` as stored.
    pub target: String,
    /// `ttl_sec` as stored.
    pub ttl_sec: u32,
}

#[derive(Default)]
struct Data {
    domains: Vec<(u64, String)>,
    records: Vec<StoredRecord>,
    /// Every state after a write, with its time, for the lagging published view.
    history: Vec<(Instant, Vec<StoredRecord>)>,
    lag: Duration,
    next_id: u64,
    max_per_page: Option<usize>,
    drop_ttl_on_create: bool,
}

impl Data {
    fn snapshot(&mut self) {
        let now = self.records.clone();
        self.history.push((Instant::now(), now));
    }
}

struct Inner {
    common: Arc<Common>,
    tripwire: Tripwire,
    data: Mutex<Data>,
}

/// A running fake Linode API; stops when dropped.
pub struct FakeLinode {
    inner: Arc<Inner>,
    server: Server,
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (401, json!({"errors":[{"reason":"Invalid Token"}]}))
}

fn error_body(status: u16) -> Value {
    match status {
        429 => json!({"errors":[{"reason":"Too Many Requests"}]}),
        404 => json!({"errors":[{"reason":"Not found"}]}),
        500..=599 => json!({"errors":[{"reason":"Please try again later"}]}),
        s => json!({"errors":[{"reason":format!("HTTP {s} (injected)")}]}),
    }
}

fn errors(status: u16, field: Option<&str>, reason: &str) -> Response {
    let item = match field {
        Some(f) => json!({"field":f,"reason":reason}),
        None => json!({"reason":reason}),
    };
    json(status, json!({ "errors": [item] }))
}

fn not_found() -> Response {
    errors(404, None, "Not found")
}

/// Linode's rate-limit headers on every served answer (figures of the 2026 page).
async fn limited(mut r: Response) -> Response {
    for (k, v) in [
        ("x-ratelimit-limit", "1600"),
        ("x-ratelimit-remaining", "1599"),
        ("x-ratelimit-reset", "1767225660"),
    ] {
        r.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    r
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id":r.id,"type":r.kind,"name":r.name,"target":r.target,"priority":0,"weight":0,
        "port":0,"service":null,"protocol":null,"tag":null,"ttl_sec":r.ttl_sec,
        "created":"2026-11-01T10:00:00","updated":"2026-11-01T10:00:00"})
}

/// `ttl_sec` as Linode stores it: 0 kept, others rounded to the nearest valid value.
pub fn round_ttl(ttl: u64) -> u32 {
    if ttl == 0 {
        return 0;
    }
    VALID_TTLS
        .iter()
        .min_by_key(|v| v.abs_diff(ttl))
        .map_or(300, |&v| v as u32)
}

/// The `X-Filter` header, parsed (an absent header filters nothing).
fn filter(h: &HeaderMap) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    match h.get("x-filter").and_then(|v| v.to_str().ok()) {
        None => Ok(serde_json::Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Box::new(errors(
                400,
                Some("X-Filter"),
                "Cannot filter on this value",
            ))),
        },
    }
}

fn page_of(
    items: &[Value],
    q: &[(String, String)],
    cap: Option<usize>,
) -> Result<Value, Box<Response>> {
    let page: usize = param(q, "page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let size: usize = param(q, "page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if !(25..=500).contains(&size) {
        return Err(Box::new(errors(400, Some("page_size"), "Must be 25-500")));
    }
    let size = cap.map_or(size, |c| size.min(c));
    let (data, pages) = common::paginate(items, page, size);
    Ok(json!({"data":data,"page":page,"pages":pages,"results":items.len()}))
}

impl FakeLinode {
    /// Starts the fake; requests must carry `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> FakeLinode {
        let common = Common::bearer(token, auth_error, error_body);
        let inner = Arc::new(Inner {
            common: common.clone(),
            tripwire: Tripwire::saying("the Linode fake's domain-wide endpoints were called"),
            data: Mutex::new(Data::default()),
        });
        let router = Router::new()
            .route("/v4/domains", get(list_domains))
            .route("/v4/domains/import", post(import_domain))
            .route("/v4/domains/{id}", delete(delete_domain))
            .route(
                "/v4/domains/{id}/records",
                get(list_records).post(create_record),
            )
            .route(
                "/v4/domains/{id}/records/{rid}",
                put(put_record).delete(delete_record),
            )
            .layer(axum::middleware::map_response(limited))
            .with_state(inner.clone());
        let server = common::serve(router, common, "/v4").await;
        FakeLinode { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/v4`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a domain (zone); returns its id.
    pub fn add_domain(&self, name: &str) -> u64 {
        let mut d = lock(&self.inner.data);
        let id = 1000 + d.domains.len() as u64;
        d.domains.push((id, name.to_string()));
        id
    }

    /// Stores a record directly (`name` relative, `""` for the apex); returns its id.
    pub fn add_record(
        &self,
        domain_id: u64,
        name: &str,
        kind: &str,
        target: &str,
        ttl_sec: u32,
    ) -> u64 {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = 98_000 + d.next_id;
        d.records.push(StoredRecord {
            id,
            domain_id,
            name: name.to_string(),
            kind: kind.to_string(),
            target: target.to_string(),
            ttl_sec,
        });
        d.snapshot();
        id
    }

    /// The records of `domain_id` at relative `name`, in creation order.
    pub fn records(&self, domain_id: u64, name: &str) -> Vec<StoredRecord> {
        lock(&self.inner.data)
            .records
            .iter()
            .filter(|r| r.domain_id == domain_id && r.name == name)
            .cloned()
            .collect()
    }

    /// What Linode's name servers serve now: the records as they were the lag ago.
    pub fn published(&self, domain_id: u64, name: &str) -> Vec<StoredRecord> {
        let d = lock(&self.inner.data);
        let now = Instant::now();
        d.history
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= d.lag)
            .map(|(_, recs)| {
                recs.iter()
                    .filter(|r| r.domain_id == domain_id && r.name == name)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How long after a write the published view shows it.
    pub fn set_publish_lag(&self, lag: Duration) {
        lock(&self.inner.data).lag = lag;
    }

    /// Caps the page size (to exercise pagination with few records).
    pub fn set_max_per_page(&self, n: usize) {
        lock(&self.inner.data).max_per_page = Some(n.max(1));
    }

    /// Stores the domain default (ttl 0) instead of the TTL given on create.
    pub fn drop_ttl_on_create(&self, on: bool) {
        lock(&self.inner.data).drop_ttl_on_create = on;
    }

    /// Calls of the domain-wide endpoints, taken: the fake no longer fails the test.
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.inner.tripwire.take()
    }

    common::recording!(fails: "in Linode's error body");
}

impl Drop for FakeLinode {
    fn drop(&mut self) {
        self.inner.tripwire.check_on_drop();
    }
}

type Q = Query<Vec<(String, String)>>;

async fn list_domains(State(s): State<Arc<Inner>>, h: HeaderMap, Query(q): Q) -> Response {
    let f = match filter(&h) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let d = lock(&s.data);
    let items: Vec<Value> = d
        .domains
        .iter()
        .filter(|(_, n)| f.get("domain").is_none_or(|v| v.as_str() == Some(n)))
        .map(|(id, n)| json!({"id":id,"domain":n,"type":"master","status":"active","ttl_sec":0}))
        .collect();
    match page_of(&items, &q, d.max_per_page) {
        Ok(v) => json(200, v),
        Err(r) => *r,
    }
}

async fn list_records(
    State(s): State<Arc<Inner>>,
    Path(id): Path<u64>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    let f = match filter(&h) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let d = lock(&s.data);
    if !d.domains.iter().any(|(i, _)| *i == id) {
        return not_found();
    }
    let is = |k: &str, v: &str| f.get(k).is_none_or(|want| want.as_str() == Some(v));
    let items: Vec<Value> = d
        .records
        .iter()
        .filter(|r| r.domain_id == id)
        .filter(|r| is("name", &r.name) && is("type", &r.kind) && is("target", &r.target))
        .map(record_json)
        .collect();
    match page_of(&items, &q, d.max_per_page) {
        Ok(v) => json(200, v),
        Err(r) => *r,
    }
}

fn check_target(kind: &str, target: &str) -> Option<Response> {
    // The length bound is the sheet's shape-only example; an empty TXT target is
    // stored (not known to be refused).
    if kind == "TXT" && target.len() > 65535 {
        return Some(errors(
            400,
            Some("target"),
            "TXT target must be 1-65535 characters",
        ));
    }
    None
}

async fn create_record(
    State(s): State<Arc<Inner>>,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return errors(400, None, "Invalid JSON");
    };
    let Some(kind) = v["type"].as_str() else {
        return errors(400, Some("type"), "type is required");
    };
    let Some(target) = v["target"].as_str() else {
        return errors(400, Some("target"), "target is required");
    };
    if let Some(r) = check_target(kind, target) {
        return r;
    }
    let mut d = lock(&s.data);
    if !d.domains.iter().any(|(i, _)| *i == id) {
        return not_found();
    }
    let ttl = if d.drop_ttl_on_create {
        0
    } else {
        round_ttl(v["ttl_sec"].as_u64().unwrap_or(0))
    };
    d.next_id += 1;
    let rec = StoredRecord {
        id: 98_000 + d.next_id,
        domain_id: id,
        name: v["name"].as_str().unwrap_or("").to_string(),
        kind: kind.to_string(),
        target: target.to_string(),
        ttl_sec: ttl,
    };
    d.records.push(rec.clone());
    d.snapshot();
    json(200, record_json(&rec))
}

async fn put_record(
    State(s): State<Arc<Inner>>,
    Path((id, rid)): Path<(u64, u64)>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return errors(400, None, "Invalid JSON");
    };
    let mut d = lock(&s.data);
    let Some(rec) = d
        .records
        .iter_mut()
        .find(|r| r.id == rid && r.domain_id == id)
    else {
        return not_found();
    };
    if let Some(t) = v["target"].as_str() {
        if let Some(r) = check_target(&rec.kind, t) {
            return r;
        }
        rec.target = t.to_string();
    }
    if let Some(n) = v["name"].as_str() {
        rec.name = n.to_string();
    }
    if let Some(t) = v["ttl_sec"].as_u64() {
        rec.ttl_sec = round_ttl(t);
    }
    let out = record_json(rec);
    d.snapshot();
    json(200, out)
}

async fn delete_record(State(s): State<Arc<Inner>>, Path((id, rid)): Path<(u64, u64)>) -> Response {
    let mut d = lock(&s.data);
    let before = d.records.len();
    d.records.retain(|r| !(r.id == rid && r.domain_id == id));
    if d.records.len() == before {
        return not_found();
    }
    d.snapshot();
    json(200, json!({}))
}

/// `DELETE /domains/{id}`: removes the domain and all its records. Never to be used.
async fn delete_domain(State(s): State<Arc<Inner>>, Path(id): Path<u64>) -> Response {
    s.tripwire.hit(format!("DELETE /domains/{id}"));
    let mut d = lock(&s.data);
    d.records.retain(|r| r.domain_id != id);
    d.domains.retain(|(i, _)| *i != id);
    d.snapshot();
    json(200, json!({}))
}

/// `POST /domains/import`: replaces a domain by a zone transfer. Never to be used.
async fn import_domain(State(s): State<Arc<Inner>>) -> Response {
    s.tripwire.hit("POST /domains/import");
    json(200, json!({}))
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeLinode {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        let d = lock(&self.inner.data);
        d.records
            .iter()
            .filter(|r| {
                r.kind == "TXT"
                    && d.domains
                        .iter()
                        .any(|(id, n)| *id == r.domain_id && n == zone)
            })
            .map(|r| format!("{} {} {}", r.name, r.ttl_sec, r.target))
            .collect()
    }

    /// The records as they were the publishing lag ago.
    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        let Some(&(id, _)) = d.domains.iter().find(|(_, n)| n == zone) else {
            return out;
        };
        let now = Instant::now();
        let published = d
            .history
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= d.lag)
            .map(|(_, recs)| recs.clone())
            .unwrap_or_default();
        for r in published
            .iter()
            .filter(|r| r.domain_id == id && r.kind == "TXT")
        {
            let ttl = if r.ttl_sec == 0 { 86400 } else { r.ttl_sec };
            super::served::add(
                &mut out,
                zone,
                &r.name,
                ttl,
                super::served::wire_value(&r.target),
            );
        }
        out
    }
}

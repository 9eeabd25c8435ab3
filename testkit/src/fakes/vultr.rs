//! A fake of Vultr's API v2 (domains and records), stateful, on loopback.
//!
//! Quirks reproduced (shared/notes/provider-apis-2.md §6): TXT `data` must be
//! wrapped in `"` with no `"` inside (400 otherwise) and is returned quoted; a
//! create whose TTL differs from existing records at the same name and type is 400
//! (switchable); lists hold every record type, paged by cursor (`meta.links.next`);
//! create answers 201 with a `record` wrapper, PATCH and DELETE 204 without a
//! body; more than the allowed requests in one second (30 by default) is 429; an
//! optional IP access list refuses every request with a plain-text 403; errors as
//! `{"error","status"}`. Deleting a whole domain (`DELETE /domains/{d}`) works and
//! fails the test when the fake is dropped, unless taken with
//! [`FakeVultr::take_broad_calls`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::common::{self, Common, Server, json, lock, param};
use super::tripwire::Tripwire;

/// One stored record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id (a UUID-like string).
    pub id: String,
    /// Domain name.
    pub domain: String,
    /// Name relative to the domain (`""` for the apex).
    pub name: String,
    /// Record type.
    pub kind: String,
    /// `data` as stored (TXT: quoted).
    pub data: String,
    /// TTL.
    pub ttl: u32,
}

struct Data {
    domains: Vec<String>,
    records: Vec<StoredRecord>,
    next_id: u64,
    max_per_page: Option<usize>,
    same_ttl_rule: bool,
    per_second: usize,
    window: (Instant, usize),
    acl_denied: bool,
}

struct Inner {
    common: Arc<Common>,
    tripwire: Tripwire,
    data: Mutex<Data>,
}

/// A running fake Vultr API; stops when dropped.
pub struct FakeVultr {
    inner: Arc<Inner>,
    server: Server,
}

fn err(status: u16, message: &str) -> Response {
    json(status, json!({"error":message,"status":status}))
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (401, json!({"error":"Invalid API token.","status":401}))
}

fn error_body(status: u16) -> Value {
    match status {
        429 => json!({"error":"Rate limit exceeded","status":429}),
        404 => json!({"error":"Not found","status":404}),
        500..=599 => json!({"error":"Internal server error","status":status}),
        s => json!({"error":format!("HTTP {s} (injected)"),"status":s}),
    }
}

fn empty(status: u16) -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or_default();
    r
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id":r.id,"type":r.kind,"name":r.name,"data":r.data,"priority":0,"ttl":r.ttl})
}

/// The rule Vultr applies to TXT data.
fn check_txt(data: &str) -> Option<Response> {
    let inner = data.strip_prefix('"').and_then(|d| d.strip_suffix('"'));
    match inner {
        None => Some(err(
            400,
            "Unable to create record: data must be quoted for TXT",
        )),
        Some(i) if i.contains('"') => Some(err(
            400,
            "Unable to create record: TXT data may not contain double quotes",
        )),
        Some(_) => None,
    }
}

/// Per-second request count (Vultr: 30 per second per IP) and the IP access list.
async fn throttle(State(s): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    {
        let mut d = lock(&s.data);
        if d.acl_denied {
            return super::kit::respond(
                403,
                "text/plain",
                "Unauthorized IP address: 127.0.0.1".to_string(),
                &[],
            );
        }
        let now = Instant::now();
        if now.duration_since(d.window.0).as_secs() >= 1 {
            d.window = (now, 0);
        }
        d.window.1 += 1;
        if d.window.1 > d.per_second {
            return err(429, "Rate limit exceeded");
        }
    }
    next.run(req).await
}

impl FakeVultr {
    /// Starts the fake; requests must carry `Authorization: Bearer <key>`.
    pub async fn start(key: &str) -> FakeVultr {
        let common = Common::bearer(key, auth_error, error_body);
        let inner = Arc::new(Inner {
            common: common.clone(),
            tripwire: Tripwire::saying("the Vultr fake's domain-wide endpoint was called"),
            data: Mutex::new(Data {
                domains: Vec::new(),
                records: Vec::new(),
                next_id: 0,
                max_per_page: None,
                same_ttl_rule: true,
                per_second: 30,
                window: (Instant::now(), 0),
                acl_denied: false,
            }),
        });
        let router = Router::new()
            .route(
                "/v2/domains/{domain}",
                get(get_domain).delete(delete_domain),
            )
            .route(
                "/v2/domains/{domain}/records",
                get(list_records).post(create_record),
            )
            .route(
                "/v2/domains/{domain}/records/{id}",
                get(get_record).patch(patch_record).delete(delete_record),
            )
            .with_state(inner.clone())
            .layer(middleware::from_fn_with_state(inner.clone(), throttle));
        let server = common::serve(router, common, "/v2").await;
        FakeVultr { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/v2`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a domain (zone).
    pub fn add_domain(&self, name: &str) {
        lock(&self.inner.data).domains.push(name.to_string());
    }

    /// Stores a record directly (`name` relative, `data` as Vultr stores it); returns its id.
    pub fn add_record(&self, domain: &str, name: &str, kind: &str, data: &str, ttl: u32) -> String {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = format!("cb676a46-66fd-4dfb-b839-{:012x}", d.next_id);
        d.records.push(StoredRecord {
            id: id.clone(),
            domain: domain.to_string(),
            name: name.to_string(),
            kind: kind.to_string(),
            data: data.to_string(),
            ttl,
        });
        id
    }

    /// The records of `domain` at relative `name`, in creation order.
    pub fn records(&self, domain: &str, name: &str) -> Vec<StoredRecord> {
        lock(&self.inner.data)
            .records
            .iter()
            .filter(|r| r.domain == domain && r.name == name)
            .cloned()
            .collect()
    }

    /// Caps `per_page` (to exercise pagination with few records).
    pub fn set_max_per_page(&self, n: usize) {
        lock(&self.inner.data).max_per_page = Some(n.max(1));
    }

    /// Whether a create beside records of another TTL is refused (default: yes).
    pub fn set_same_ttl_rule(&self, on: bool) {
        lock(&self.inner.data).same_ttl_rule = on;
    }

    /// Requests allowed per second before 429 (default 30).
    pub fn set_requests_per_second(&self, n: usize) {
        lock(&self.inner.data).per_second = n;
    }

    /// Refuses every request as from an address outside the key's access list.
    pub fn deny_by_acl(&self, on: bool) {
        lock(&self.inner.data).acl_denied = on;
    }

    /// Calls of the domain-wide endpoint, taken: the fake no longer fails the test.
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.inner.tripwire.take()
    }

    common::recording!(fails: "in Vultr's error body");
}

impl Drop for FakeVultr {
    fn drop(&mut self) {
        self.inner.tripwire.check_on_drop();
    }
}

type Q = Query<Vec<(String, String)>>;

async fn get_domain(State(s): State<Arc<Inner>>, Path(domain): Path<String>) -> Response {
    if lock(&s.data).domains.contains(&domain) {
        json(
            200,
            json!({"domain":{"domain":domain,"date_created":"2026-11-01T10:00:00+00:00","dns_sec":"disabled"}}),
        )
    } else {
        err(404, "Domain not found")
    }
}

async fn list_records(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    Query(q): Q,
) -> Response {
    let d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return err(404, "Domain not found");
    }
    let all: Vec<Value> = d
        .records
        .iter()
        .filter(|r| r.domain == domain)
        .map(record_json)
        .collect();
    let per: usize = param(&q, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let per = d.max_per_page.map_or(per, |c| per.min(c));
    // The cursor is an opaque offset, as Vultr's are opaque strings.
    let start: usize = match param(&q, "cursor") {
        None | Some("") => 0,
        Some(c) => match c.strip_prefix("off-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return err(400, "Invalid cursor"),
        },
    };
    let items: Vec<Value> = all.iter().skip(start).take(per).cloned().collect();
    let next = if start + per < all.len() {
        format!("off-{}", start + per)
    } else {
        String::new()
    };
    let prev = if start > 0 {
        format!("off-{}", start.saturating_sub(per))
    } else {
        String::new()
    };
    json(
        200,
        json!({"records":items,"meta":{"total":all.len(),"links":{"next":next,"prev":prev}}}),
    )
}

async fn get_record(
    State(s): State<Arc<Inner>>,
    Path((domain, id)): Path<(String, String)>,
) -> Response {
    let d = lock(&s.data);
    match d.records.iter().find(|r| r.domain == domain && r.id == id) {
        Some(r) => json(200, json!({ "record": record_json(r) })),
        None => err(404, "Record not found"),
    }
}

async fn create_record(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(400, "Invalid JSON");
    };
    let (Some(kind), Some(data)) = (v["type"].as_str(), v["data"].as_str()) else {
        return err(400, "Unable to create record: type and data are required");
    };
    let name = v["name"].as_str().unwrap_or("");
    if kind == "TXT"
        && let Some(r) = check_txt(data)
    {
        return r;
    }
    let ttl = v["ttl"].as_u64().unwrap_or(300) as u32;
    let mut d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return err(404, "Domain not found");
    }
    if d.same_ttl_rule
        && d.records
            .iter()
            .any(|r| r.domain == domain && r.name == name && r.kind == kind && r.ttl != ttl)
    {
        return err(
            400,
            "Unable to create record: TTL must match the other records of this name and type",
        );
    }
    d.next_id += 1;
    let rec = StoredRecord {
        id: format!("cb676a46-66fd-4dfb-b839-{:012x}", d.next_id),
        domain,
        name: name.to_string(),
        kind: kind.to_string(),
        data: data.to_string(),
        ttl,
    };
    d.records.push(rec.clone());
    json(201, json!({ "record": record_json(&rec) }))
}

async fn patch_record(
    State(s): State<Arc<Inner>>,
    Path((domain, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(400, "Invalid JSON");
    };
    let mut d = lock(&s.data);
    let Some(rec) = d
        .records
        .iter_mut()
        .find(|r| r.domain == domain && r.id == id)
    else {
        return err(404, "Record not found");
    };
    if let Some(data) = v["data"].as_str() {
        if rec.kind == "TXT"
            && let Some(r) = check_txt(data)
        {
            return r;
        }
        rec.data = data.to_string();
    }
    if let Some(n) = v["name"].as_str() {
        rec.name = n.to_string();
    }
    if let Some(t) = v["ttl"].as_u64() {
        rec.ttl = t as u32;
    }
    empty(204)
}

async fn delete_record(
    State(s): State<Arc<Inner>>,
    Path((domain, id)): Path<(String, String)>,
) -> Response {
    let mut d = lock(&s.data);
    let before = d.records.len();
    d.records.retain(|r| !(r.domain == domain && r.id == id));
    if d.records.len() == before {
        return err(404, "Record not found");
    }
    empty(204)
}

/// `DELETE /domains/{d}`: removes the domain and every record. Never to be used.
async fn delete_domain(State(s): State<Arc<Inner>>, Path(domain): Path<String>) -> Response {
    s.tripwire.hit(format!("DELETE /domains/{domain}"));
    let mut d = lock(&s.data);
    d.records.retain(|r| r.domain != domain);
    d.domains.retain(|x| *x != domain);
    empty(204)
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeVultr {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.inner.data)
            .records
            .iter()
            .filter(|r| r.domain == zone && r.kind == "TXT")
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for r in d
            .records
            .iter()
            .filter(|r| r.domain == zone && r.kind == "TXT")
        {
            super::served::add(
                &mut out,
                zone,
                &r.name,
                r.ttl,
                super::served::wire_value(&r.data),
            );
        }
        out
    }
}

//! A stateful fake of DNSimple's API v2 (zones, zone records, batch) on 127.0.0.1.
//!
//! Follows developer.dnsimple.com and support.dnsimple.com: `Authorization: Bearer`
//! checked (401 `{"message":"Authentication failed"}`); `GET /v2/whoami` names the
//! token's account, other account ids in paths are 404; records are listed with
//! exact `name`/`type` filters, `page`/`per_page` and a `pagination` object; TXT
//! content given unquoted is wrapped in quotes with inner `"` escaped, content given
//! quoted is kept verbatim, and the stored form may not exceed 1000 characters (400
//! `Validation failed`); `POST …/batch` applies deletes, updates, creates in that
//! order, all or nothing, and answers 412 when the account's plan lacks it; every
//! answer carries `X-RateLimit-Limit/Remaining/Reset`, and an exhausted quota is 429
//! `{"message":"quota exceeded"}`. Endpoints maildns must never use (deleting the
//! domain, anything the fake does not serve) trip [`Tripwire`].

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

/// Most characters of stored TXT content.
pub const MAX_CONTENT: usize = 1000;

/// One stored zone record, as DNSimple holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: u64,
    /// Zone name.
    pub zone: String,
    /// Name relative to the zone (`""` for the apex).
    pub name: String,
    /// Record type.
    pub kind: String,
    /// Content as stored (TXT: quoted).
    pub content: String,
    /// TTL.
    pub ttl: u32,
}

#[derive(Debug)]
struct St {
    token: String,
    account: u64,
    zones: Vec<String>,
    records: Vec<StoredRecord>,
    next_id: u64,
    batch_plan: bool,
    max_per_page: usize,
    fail_batch_op: Option<usize>,
    quota: u32,
    remaining: u32,
}

type Shared = kit::Shared<St>;

/// A running fake DNSimple API; stops when dropped (and fails the test if a broad
/// endpoint was called).
pub struct FakeDnsimple {
    url: String,
    shared: Shared,
    _task: ServerTask,
}

/// Checks the tripwire on the test's thread (the server task, holding the
/// other reference, is dropped on a runtime thread where a panic is lost).
impl Drop for FakeDnsimple {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

impl FakeDnsimple {
    /// Starts the fake for account `account` with token `token`; the batch endpoint
    /// is on (an Enterprise plan) until [`FakeDnsimple::set_batch_plan`] says otherwise.
    pub async fn start(token: &str, account: u64) -> FakeDnsimple {
        let state = Arc::new(Mutex::new(St {
            token: token.to_string(),
            account,
            zones: Vec::new(),
            records: Vec::new(),
            next_id: 0,
            batch_plan: true,
            max_per_page: 100,
            fail_batch_op: None,
            quota: 2400,
            remaining: 2400,
        }));
        let shared = Shared::new(state.clone(), Tripwire::new("DNSimple"));
        let (addr, task) = shared.serve(handle).await;
        FakeDnsimple {
            url: format!("http://{addr}/v2"),
            shared,
            _task: task,
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/v2`.
    pub fn base_url(&self) -> &str {
        &self.url
    }

    /// Adds a zone.
    pub fn add_zone(&self, zone: &str) {
        lock(&self.shared.state).zones.push(zone.to_string());
    }

    /// Stores a record directly (`name` relative, `""` apex; `content` as stored); its id.
    pub fn add_record(&self, zone: &str, name: &str, kind: &str, content: &str, ttl: u32) -> u64 {
        let mut st = lock(&self.shared.state);
        st.next_id += 1;
        let id = 60_000_000 + st.next_id;
        st.records.push(StoredRecord {
            id,
            zone: zone.to_string(),
            name: name.to_string(),
            kind: kind.to_string(),
            content: content.to_string(),
            ttl,
        });
        id
    }

    /// Every record of `zone`, as stored, in creation order.
    pub fn zone_records(&self, zone: &str) -> Vec<StoredRecord> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.zone == zone)
            .cloned()
            .collect()
    }

    /// The TXT records at relative `name` in `zone`, as stored.
    pub fn txt(&self, zone: &str, name: &str) -> Vec<StoredRecord> {
        self.zone_records(zone)
            .into_iter()
            .filter(|r| r.name == name && r.kind == "TXT")
            .collect()
    }

    /// Whether the account's plan has the batch endpoint (412 when not).
    pub fn set_batch_plan(&self, on: bool) {
        lock(&self.shared.state).batch_plan = on;
    }

    /// Caps `per_page` (to exercise pagination).
    pub fn set_max_per_page(&self, n: usize) {
        lock(&self.shared.state).max_per_page = n.max(1);
    }

    /// The next batch fails validation at its operation number `index` (counted
    /// over deletes, then updates, then creates): 400 naming that operation, and
    /// nothing of the batch is applied.
    pub fn fail_batch_at(&self, index: usize) {
        lock(&self.shared.state).fail_batch_op = Some(index);
    }

    /// Leaves `n` requests in the hourly quota; the request after them gets 429
    /// `quota exceeded` (and the quota is then refilled).
    pub fn set_remaining(&self, n: u32) {
        lock(&self.shared.state).remaining = n;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// Every request but GET.
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_write)
            .collect()
    }

    /// The broad-endpoint tripwire (dropping the fake checks it).
    pub fn tripwire(&self) -> &Tripwire {
        &self.shared.tripwire
    }

    /// The next `n` requests fail with `status` and DNSimple's body.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }
}

fn msg(status: u16, message: &str) -> Response {
    kit::respond(
        status,
        "application/json; charset=utf-8",
        json!({ "message": message }).to_string(),
        &[],
    )
}

fn body(status: u16, v: Value) -> Response {
    kit::respond(
        status,
        "application/json; charset=utf-8",
        v.to_string(),
        &[],
    )
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id": r.id, "zone_id": r.zone, "parent_id": null, "name": r.name,
        "content": r.content, "ttl": r.ttl, "priority": null, "type": r.kind,
        "regions": ["global"], "system_record": false,
        "created_at": "2026-11-30T09:00:00Z", "updated_at": "2026-11-30T09:00:00Z"})
}

/// DNSimple's stored form of TXT `content`: kept when quoted, else wrapped in
/// quotes with inner `"` escaped; `Err` with the validation message.
pub fn stored_content(content: &str) -> Result<String, String> {
    if content.is_empty() {
        return Err("can't be blank".into());
    }
    let stored = if content.starts_with('"') {
        if super::common::lenient_strings(content).is_none() || !content.ends_with('"') {
            return Err("contains unpaired quotes".into());
        }
        content.to_string()
    } else {
        format!("\"{}\"", content.replace('"', "\\\""))
    };
    if stored.chars().count() > MAX_CONTENT {
        return Err(format!("is too long (maximum is {MAX_CONTENT} characters)"));
    }
    Ok(stored)
}

fn validation(field: &str, problem: &str) -> Value {
    json!({"message": "Validation failed", "errors": { field: [problem] }})
}

/// A record to create, validated: (name, type, stored content, ttl).
fn new_record(v: &Value) -> Result<(String, String, String, u32), Value> {
    let (Some(name), Some(kind), Some(content)) = (
        v["name"].as_str(),
        v["type"].as_str(),
        v["content"].as_str(),
    ) else {
        return Err(validation("content", "can't be blank"));
    };
    let ttl = v["ttl"].as_u64().unwrap_or(3600);
    if ttl < 60 {
        return Err(validation("ttl", "must be greater than or equal to 60"));
    }
    let content = if kind == "TXT" {
        stored_content(content).map_err(|e| validation("content", &e))?
    } else {
        content.to_string()
    };
    Ok((name.to_string(), kind.to_string(), content, ttl as u32))
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut resp = {
        let mut st = lock(&s.state);
        s.record(&method, &uri, &headers, &bytes);
        let token_ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", st.token));
        if !token_ok {
            msg(401, "Authentication failed")
        } else if st.remaining == 0 {
            st.remaining = st.quota;
            msg(429, "quota exceeded")
        } else {
            st.remaining -= 1;
            match s.faults.take() {
                Some(f) => fault(f),
                None => route(&mut st, &s.tripwire, &method, &path, &query, &bytes),
            }
        }
    };
    let st = lock(&s.state);
    for (k, v) in [
        ("x-ratelimit-limit", st.quota.to_string()),
        ("x-ratelimit-remaining", st.remaining.to_string()),
        ("x-ratelimit-reset", "1790000000".to_string()),
    ] {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn fault(f: Fault) -> Response {
    match f.status() {
        429 => msg(429, "quota exceeded"),
        412 => msg(412, "Your plan does not include this feature"),
        s if s >= 500 => msg(s, "Internal server error"),
        s => msg(s, &format!("HTTP {s} (injected)")),
    }
}

fn route(
    st: &mut St,
    tripwire: &Tripwire,
    method: &Method,
    path: &str,
    query: &str,
    bytes: &[u8],
) -> Response {
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let q = kit::query_pairs(query);
    let account = st.account.to_string();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["v2", "whoami"]) => body(
            200,
            json!({"data": {"user": null, "account": {"id": st.account,
                "email": "ops@example.com", "plan_identifier": "enterprise-v1_monthly",
                "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z"}}}),
        ),
        (_, ["v2", acc, ..]) if *acc != account => msg(404, "Account not found"),
        ("DELETE", ["v2", _, "domains", d]) => {
            tripwire.hit(format!("DELETE {path} (deletes the domain and its zone)"));
            st.zones.retain(|z| z != d);
            let mut r = body(204, Value::Null);
            *r.body_mut() = axum::body::Body::empty();
            r
        }
        (_, ["v2", _, "zones", zone, ..]) if !st.zones.iter().any(|z| z == zone) => {
            msg(404, &format!("Zone `{zone}` not found"))
        }
        ("GET", ["v2", _, "zones", zone]) => body(
            200,
            json!({"data": {"id": 1, "account_id": st.account, "name": zone,
                "reverse": false, "active": true}}),
        ),
        ("GET", ["v2", _, "zones", zone, "records"]) => list(st, zone, &q),
        ("POST", ["v2", _, "zones", zone, "records"]) => {
            let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            match new_record(&v) {
                Err(e) => body(400, e),
                Ok((name, kind, content, ttl)) => {
                    st.next_id += 1;
                    let r = StoredRecord {
                        id: 60_000_000 + st.next_id,
                        zone: zone.to_string(),
                        name,
                        kind,
                        content,
                        ttl,
                    };
                    st.records.push(r.clone());
                    body(201, json!({ "data": record_json(&r) }))
                }
            }
        }
        ("PATCH", ["v2", _, "zones", zone, "records", id]) => {
            let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let id: u64 = id.parse().unwrap_or(0);
            match update(&mut st.records, zone, id, &v) {
                Ok(r) => body(200, json!({ "data": record_json(&r) })),
                Err((status, v)) => body(status, v),
            }
        }
        ("DELETE", ["v2", _, "zones", zone, "records", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let before = st.records.len();
            st.records.retain(|r| !(r.id == id && r.zone == *zone));
            if st.records.len() == before {
                return msg(404, "Record not found");
            }
            let mut r = body(204, Value::Null);
            *r.body_mut() = axum::body::Body::empty();
            r
        }
        ("POST", ["v2", _, "zones", zone, "batch"]) => batch(st, zone, bytes),
        _ => {
            tripwire.hit(format!("{method} {path} (not an endpoint maildns uses)"));
            msg(404, "Not found")
        }
    }
}

fn list(st: &St, zone: &str, q: &[(String, String)]) -> Response {
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let recs: Vec<Value> = st
        .records
        .iter()
        .filter(|r| r.zone == zone)
        .filter(|r| param("name").is_none_or(|n| n == r.name))
        .filter(|r| param("type").is_none_or(|t| t == r.kind))
        .map(record_json)
        .collect();
    let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per: usize = param("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .min(st.max_per_page)
        .max(1);
    let total_pages = recs.len().div_ceil(per).max(1);
    let items: Vec<Value> = recs
        .iter()
        .skip(page.saturating_sub(1) * per)
        .take(per)
        .cloned()
        .collect();
    body(
        200,
        json!({"data": items, "pagination": {"current_page": page, "per_page": per,
            "total_entries": recs.len(), "total_pages": total_pages}}),
    )
}

fn update(
    records: &mut [StoredRecord],
    zone: &str,
    id: u64,
    v: &Value,
) -> Result<StoredRecord, (u16, Value)> {
    let Some(rec) = records.iter_mut().find(|r| r.id == id && r.zone == zone) else {
        return Err((404, json!({"message": "Record not found"})));
    };
    if let Some(ttl) = v["ttl"].as_u64() {
        if ttl < 60 {
            return Err((
                400,
                validation("ttl", "must be greater than or equal to 60"),
            ));
        }
        rec.ttl = ttl as u32;
    }
    if let Some(c) = v["content"].as_str() {
        rec.content = if rec.kind == "TXT" {
            stored_content(c).map_err(|e| (400, validation("content", &e)))?
        } else {
            c.to_string()
        };
    }
    if let Some(n) = v["name"].as_str() {
        rec.name = n.to_string();
    }
    Ok(rec.clone())
}

/// Deletes, then updates, then creates, on a copy of the records; committed only
/// when every operation succeeded.
fn batch(st: &mut St, zone: &str, bytes: &[u8]) -> Response {
    if !st.batch_plan {
        return msg(
            412,
            "Your current plan does not support batch changes. Upgrade to the Enterprise plan.",
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return msg(400, "Invalid JSON");
    };
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let (deletes, updates, creates) = (list("deletes"), list("updates"), list("creates"));
    let mut records = st.records.clone();
    let mut next_id = st.next_id;
    let fail_at = st.fail_batch_op.take();
    let failed = |kind: &str, index: usize, errors: Value| {
        body(
            400,
            json!({"message": "Validation failed", "errors": { kind: [
                {"index": index, "message": "Validation failed", "errors": errors}]}}),
        )
    };
    let mut op = 0usize;
    let (mut done_d, mut done_u, mut done_c) = (Vec::new(), Vec::new(), Vec::new());
    for (i, d) in deletes.iter().enumerate() {
        let id = d["id"].as_u64().unwrap_or(0);
        let before = records.len();
        records.retain(|r| !(r.id == id && r.zone == zone));
        if records.len() == before || fail_at == Some(op) {
            return failed("deletes", i, json!({"id": ["not found"]}));
        }
        done_d.push(json!({ "id": id }));
        op += 1;
    }
    for (i, u) in updates.iter().enumerate() {
        let id = u["id"].as_u64().unwrap_or(0);
        if fail_at == Some(op) {
            return failed("updates", i, json!({"content": ["is invalid"]}));
        }
        match update(&mut records, zone, id, u) {
            Ok(r) => done_u.push(record_json(&r)),
            Err(_) => return failed("updates", i, json!({"id": ["not found"]})),
        }
        op += 1;
    }
    for (i, c) in creates.iter().enumerate() {
        let (name, kind, content, ttl) = match new_record(c) {
            Ok(x) if fail_at != Some(op) => x,
            Ok(_) => return failed("creates", i, json!({"content": ["is invalid"]})),
            Err(e) => return failed("creates", i, e["errors"].clone()),
        };
        next_id += 1;
        let r = StoredRecord {
            id: 60_000_000 + next_id,
            zone: zone.to_string(),
            name,
            kind,
            content,
            ttl,
        };
        done_c.push(record_json(&r));
        records.push(r);
        op += 1;
    }
    st.records = records;
    st.next_id = next_id;
    body(
        200,
        json!({"data": {"creates": done_c, "updates": done_u, "deletes": done_d}}),
    )
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeDnsimple {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.zone == zone && r.kind == "TXT")
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.content))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for r in st
            .records
            .iter()
            .filter(|r| r.zone == zone && r.kind == "TXT")
        {
            super::served::add(
                &mut out,
                zone,
                &r.name,
                r.ttl,
                super::served::wire_value(&r.content),
            );
        }
        out
    }
}

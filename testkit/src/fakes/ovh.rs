//! A fake of OVHcloud's API v1 (`/1.0/domain/zone`, `/1.0/auth/time`), stateful, on loopback.
//!
//! Quirks reproduced (shared/notes/provider-apis-2.md §2):
//! - every request but `/auth/time` is checked the way OVH does: application key
//!   (403 `INVALID_KEY`), consumer key (403 `INVALID_CREDENTIAL`), timestamp within
//!   a few seconds of the fake's clock (which can be skewed; 400 `QUERY_TIME_OUT`,
//!   shape only) and the `$1$` SHA-1 signature over secret, consumer key, method,
//!   full URL with query, raw body and timestamp (400 `INVALID_SIGNATURE`);
//! - the list call returns ids only (an empty `subDomain` filters nothing, the
//!   worst case of an undocumented detail), the item call the object;
//! - records carry `fieldType` TXT, SPF, DKIM or DMARC; a PUT that changes
//!   `fieldType` is 400 "Try to alter read-only properties: fieldType"; DKIM and
//!   DMARC targets must be unquoted ("Invalid subfield found in DMARC") and a DMARC
//!   record must live under `_dmarc`;
//! - writes are staged: [`FakeOvh::published`] changes only on
//!   `POST /domain/zone/{zone}/refresh`;
//! - the zone-wide `import` and `reset` endpoints work, and the fake fails the test
//!   (panics when dropped) if either was called, unless the test took the calls
//!   with [`FakeOvh::take_broad_calls`];
//! - errors in both of OVH's envelopes (`errorCode`/`httpCode`/`message` and
//!   `class`/`message`) with an `X-Ovh-Queryid` header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::common::{self, Common, Recorded, Style, json, lock};
use super::tripwire::Tripwire;

/// Seconds a request's timestamp may be off the fake's clock.
pub const TIME_TOLERANCE: i64 = 5;

/// One stored record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: u64,
    /// Zone name.
    pub zone: String,
    /// Name relative to the zone (`""` for the apex).
    pub sub_domain: String,
    /// `TXT`, `SPF`, `DKIM` or `DMARC` (or any other type a test stores).
    pub field_type: String,
    /// `target` as stored.
    pub target: String,
    /// TTL (`0`: the zone default).
    pub ttl: u32,
}

#[derive(Default)]
struct Data {
    zones: Vec<String>,
    staged: Vec<StoredRecord>,
    published: BTreeMap<String, Vec<StoredRecord>>,
    next_id: u64,
    refreshes: usize,
    skew: i64,
}

struct Inner {
    common: Arc<Common>,
    tripwire: Tripwire,
    application_key: String,
    application_secret: String,
    consumer_key: String,
    data: Mutex<Data>,
}

/// A running fake OVHcloud API; stops when dropped.
pub struct FakeOvh {
    inner: Arc<Inner>,
    base_url: String,
    _task: super::kit::ServerTask,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// OVH's first error envelope (`errorCode`, `httpCode`, `message`).
fn coded(status: u16, code: &str, http: &str, message: &str) -> Response {
    with_query_id(json(
        status,
        json!({"errorCode":code,"httpCode":http,"message":message}),
    ))
}

/// OVH's second error envelope (`class`, `message`).
fn classed(status: u16, class: &str, message: &str) -> Response {
    with_query_id(json(status, json!({"class":class,"message":message})))
}

fn with_query_id(mut r: Response) -> Response {
    r.headers_mut().insert(
        "x-ovh-queryid",
        HeaderValue::from_static("EU.ext-1.6790c1a2.12345.0123456789abcdef"),
    );
    r
}

fn not_found() -> Response {
    classed(404, "Client::NotFound", "This service does not exist")
}

fn bad_request(message: &str) -> Response {
    classed(400, "Client::BadRequest", message)
}

fn error_body(status: u16) -> Value {
    match status {
        404 => json!({"class":"Client::NotFound","message":"This service does not exist"}),
        429 => json!({"class":"Client::TooManyRequests","message":"Too many requests"}),
        500..=599 => {
            json!({"class":"Server::InternalServerError","message":"Internal server error"})
        }
        s => json!({"class":"Client::BadRequest","message":format!("HTTP {s} (injected)")}),
    }
}

fn unused_auth_ok(_: &HeaderMap, _: &str) -> bool {
    true
}

fn unused_auth_error(_: &HeaderMap) -> (u16, Value) {
    (403, json!({}))
}

/// The signature OVH expects, computed here independently of the adapter.
fn expected_signature(inner: &Inner, method: &str, url: &str, body: &[u8], ts: &str) -> String {
    let mut h = Sha1::new();
    h.update(inner.application_secret.as_bytes());
    h.update(b"+");
    h.update(inner.consumer_key.as_bytes());
    h.update(b"+");
    h.update(method.as_bytes());
    h.update(b"+");
    h.update(url.as_bytes());
    h.update(b"+");
    h.update(body);
    h.update(b"+");
    h.update(ts.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("$1${hex}")
}

fn header<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

async fn gate(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    lock(&inner.common.requests).push(Recorded::new(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        &bytes,
    ));
    if parts.uri.path() != "/1.0/auth/time" {
        let h = &parts.headers;
        if header(h, "x-ovh-application") != Some(inner.application_key.as_str()) {
            return coded(
                403,
                "INVALID_KEY",
                "403 Forbidden",
                "This application key is invalid",
            );
        }
        if header(h, "x-ovh-consumer") != Some(inner.consumer_key.as_str()) {
            return coded(
                403,
                "INVALID_CREDENTIAL",
                "403 Forbidden",
                "This credential is not valid",
            );
        }
        let ts = header(h, "x-ovh-timestamp").unwrap_or("");
        let server_now = now() + lock(&inner.data).skew;
        match ts.parse::<i64>() {
            Ok(t) if (t - server_now).abs() <= TIME_TOLERANCE => {}
            _ => {
                return coded(
                    400,
                    "QUERY_TIME_OUT",
                    "400 Bad Request",
                    "Query out of time",
                );
            }
        }
        let host = header(h, "host").unwrap_or("");
        let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        let url = format!("http://{host}{pq}");
        let want = expected_signature(&inner, parts.method.as_str(), &url, &bytes, ts);
        if header(h, "x-ovh-signature") != Some(want.as_str()) {
            return coded(
                400,
                "INVALID_SIGNATURE",
                "400 Bad Request",
                "Invalid signature",
            );
        }
    }
    if let Some(f) = inner.common.faults.take() {
        let mut resp = with_query_id(json(f.status(), error_body(f.status())));
        if let Some(s) = f.retry_after()
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id":r.id,"zone":r.zone,"subDomain":r.sub_domain,"fieldType":r.field_type,
        "target":r.target,"ttl":r.ttl})
}

const TYPES: [&str; 12] = [
    "A", "AAAA", "CAA", "CNAME", "DKIM", "DMARC", "MX", "NS", "SPF", "SRV", "TXT", "TLSA",
];

/// The checks OVH makes on a typed record's target and name.
fn check_typed(field_type: &str, sub: &str, target: &str) -> Option<Response> {
    if matches!(field_type, "DKIM" | "DMARC") && target.starts_with('"') {
        return Some(bad_request(&format!(
            "Invalid subfield found in {field_type}"
        )));
    }
    if field_type == "DMARC" && !sub.starts_with("_dmarc") {
        return Some(bad_request("Invalid subdomain for a DMARC record"));
    }
    None
}

impl FakeOvh {
    /// Starts the fake; requests must be signed with these keys.
    pub async fn start(
        application_key: &str,
        application_secret: &str,
        consumer_key: &str,
    ) -> FakeOvh {
        let common = Common::new(
            consumer_key,
            Style {
                auth_ok: unused_auth_ok,
                auth_error: unused_auth_error,
                error_body,
            },
        );
        let inner = Arc::new(Inner {
            common,
            tripwire: Tripwire::saying("the OVH fake's zone-wide endpoints were called"),
            application_key: application_key.to_string(),
            application_secret: application_secret.to_string(),
            consumer_key: consumer_key.to_string(),
            data: Mutex::new(Data::default()),
        });
        let router = Router::new()
            .route("/1.0/auth/time", get(auth_time))
            .route("/1.0/domain/zone", get(list_zones))
            .route("/1.0/domain/zone/{zone}", get(get_zone))
            .route(
                "/1.0/domain/zone/{zone}/record",
                get(list_records).post(create_record),
            )
            .route(
                "/1.0/domain/zone/{zone}/record/{id}",
                get(get_record).put(put_record).delete(delete_record),
            )
            .route("/1.0/domain/zone/{zone}/refresh", post(refresh))
            .route("/1.0/domain/zone/{zone}/import", post(import))
            .route("/1.0/domain/zone/{zone}/reset", post(reset))
            .with_state(inner.clone())
            .layer(middleware::from_fn_with_state(inner.clone(), gate));
        let (addr, task) = super::kit::serve(router).await;
        FakeOvh {
            inner,
            base_url: format!("http://{addr}/1.0"),
            _task: task,
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/1.0`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Adds a zone.
    pub fn add_zone(&self, name: &str) {
        lock(&self.inner.data).zones.push(name.to_string());
    }

    /// Stores a record as live (staged and published), as OVH's control panel
    /// would leave it; returns its id.
    pub fn add_record(
        &self,
        zone: &str,
        sub: &str,
        field_type: &str,
        target: &str,
        ttl: u32,
    ) -> u64 {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let rec = StoredRecord {
            id: 5_226_000_000 + d.next_id,
            zone: zone.to_string(),
            sub_domain: sub.to_string(),
            field_type: field_type.to_string(),
            target: target.to_string(),
            ttl,
        };
        d.staged.push(rec.clone());
        d.published
            .entry(zone.to_string())
            .or_default()
            .push(rec.clone());
        rec.id
    }

    /// The staged records of `zone` at `sub`, in creation order.
    pub fn records(&self, zone: &str, sub: &str) -> Vec<StoredRecord> {
        lock(&self.inner.data)
            .staged
            .iter()
            .filter(|r| r.zone == zone && r.sub_domain == sub)
            .cloned()
            .collect()
    }

    /// The published records of `zone` at `sub` (as of the last refresh).
    pub fn published(&self, zone: &str, sub: &str) -> Vec<StoredRecord> {
        lock(&self.inner.data)
            .published
            .get(zone)
            .map(|v| v.iter().filter(|r| r.sub_domain == sub).cloned().collect())
            .unwrap_or_default()
    }

    /// How many refreshes were asked for.
    pub fn refreshes(&self) -> usize {
        lock(&self.inner.data).refreshes
    }

    /// Sets the fake's clock `secs` ahead of the machine's (negative: behind).
    pub fn set_clock_skew(&self, secs: i64) {
        lock(&self.inner.data).skew = secs;
    }

    /// Calls of the zone-wide endpoints (`import`, `reset`), taken: the fake no
    /// longer fails the test for them.
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.inner.tripwire.take()
    }

    common::recording!(fails: "in OVH's error body");
}

impl Drop for FakeOvh {
    fn drop(&mut self) {
        self.inner.tripwire.check_on_drop();
    }
}

type Q = Query<Vec<(String, String)>>;

async fn auth_time(State(s): State<Arc<Inner>>) -> Response {
    let skew = lock(&s.data).skew;
    json(200, json!(now() + skew))
}

async fn list_zones(State(s): State<Arc<Inner>>) -> Response {
    json(200, json!(lock(&s.data).zones))
}

async fn get_zone(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    if lock(&s.data).zones.contains(&zone) {
        json(
            200,
            json!({"name":zone,"dnssecSupported":true,"hasDnsAnycast":false,
                "nameServers":["dns10.ovh.net","ns10.ovh.net"],"lastUpdate":"2026-11-01T10:00:00+01:00"}),
        )
    } else {
        not_found()
    }
}

async fn list_records(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    Query(q): Q,
) -> Response {
    let d = lock(&s.data);
    if !d.zones.contains(&zone) {
        return not_found();
    }
    let ft = common::param(&q, "fieldType");
    if let Some(t) = ft
        && !TYPES.contains(&t)
    {
        return bad_request(&format!("Invalid value for parameter fieldType: {t}"));
    }
    let sub = common::param(&q, "subDomain").filter(|s| !s.is_empty());
    let ids: Vec<u64> = d
        .staged
        .iter()
        .filter(|r| r.zone == zone)
        .filter(|r| ft.is_none_or(|t| r.field_type == t))
        .filter(|r| sub.is_none_or(|n| r.sub_domain == n))
        .map(|r| r.id)
        .collect();
    json(200, json!(ids))
}

async fn get_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, u64)>,
) -> Response {
    let d = lock(&s.data);
    match d.staged.iter().find(|r| r.zone == zone && r.id == id) {
        Some(r) => json(200, record_json(r)),
        None => not_found(),
    }
}

async fn create_record(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON received");
    };
    let (Some(ft), Some(target)) = (v["fieldType"].as_str(), v["target"].as_str()) else {
        return bad_request("Missing parameter(s): fieldType, target");
    };
    if !TYPES.contains(&ft) {
        return bad_request(&format!("Invalid value for parameter fieldType: {ft}"));
    }
    let sub = v["subDomain"].as_str().unwrap_or("");
    if let Some(r) = check_typed(ft, sub, target) {
        return r;
    }
    let ttl = v["ttl"].as_u64().unwrap_or(0) as u32;
    let mut d = lock(&s.data);
    if !d.zones.contains(&zone) {
        return not_found();
    }
    d.next_id += 1;
    let rec = StoredRecord {
        id: 5_226_000_000 + d.next_id,
        zone,
        sub_domain: sub.to_string(),
        field_type: ft.to_string(),
        target: target.to_string(),
        ttl,
    };
    d.staged.push(rec.clone());
    json(200, record_json(&rec))
}

async fn put_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, u64)>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON received");
    };
    let mut d = lock(&s.data);
    let Some(rec) = d.staged.iter_mut().find(|r| r.zone == zone && r.id == id) else {
        return not_found();
    };
    if let Some(ft) = v["fieldType"].as_str()
        && ft != rec.field_type
    {
        return bad_request("Try to alter read-only properties: fieldType");
    }
    let sub = v["subDomain"]
        .as_str()
        .unwrap_or(&rec.sub_domain)
        .to_string();
    let target = v["target"].as_str().unwrap_or(&rec.target).to_string();
    if let Some(r) = check_typed(&rec.field_type, &sub, &target) {
        return r;
    }
    rec.sub_domain = sub;
    rec.target = target;
    if let Some(t) = v["ttl"].as_u64() {
        rec.ttl = t as u32;
    }
    json(200, Value::Null)
}

async fn delete_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, u64)>,
) -> Response {
    let mut d = lock(&s.data);
    let before = d.staged.len();
    d.staged.retain(|r| !(r.zone == zone && r.id == id));
    if d.staged.len() == before {
        return not_found();
    }
    json(200, Value::Null)
}

async fn refresh(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    let mut d = lock(&s.data);
    if !d.zones.contains(&zone) {
        return not_found();
    }
    let now: Vec<StoredRecord> = d
        .staged
        .iter()
        .filter(|r| r.zone == zone)
        .cloned()
        .collect();
    d.published.insert(zone, now);
    d.refreshes += 1;
    json(200, Value::Null)
}

/// `POST …/import`: replaces the whole zone from a zone file. Never to be used.
async fn import(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    s.tripwire.hit(format!("POST /domain/zone/{zone}/import"));
    let mut d = lock(&s.data);
    d.staged.retain(|r| r.zone != zone);
    json(
        200,
        json!({"id":1,"function":"DnsZoneImport","status":"todo"}),
    )
}

/// `POST …/reset`: empties the zone. Never to be used.
async fn reset(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    s.tripwire.hit(format!("POST /domain/zone/{zone}/reset"));
    let mut d = lock(&s.data);
    d.staged.retain(|r| r.zone != zone);
    json(200, Value::Null)
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeOvh {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.inner.data)
            .staged
            .iter()
            .filter(|r| r.zone == zone)
            .map(|r| format!("{} {} {} {}", r.sub_domain, r.field_type, r.ttl, r.target))
            .collect()
    }

    /// The records of the last refresh, every TXT-served field type.
    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for r in d.published.get(zone).into_iter().flatten() {
            if ["TXT", "SPF", "DKIM", "DMARC"].contains(&r.field_type.as_str()) {
                let ttl = if r.ttl == 0 { 3600 } else { r.ttl };
                super::served::add(
                    &mut out,
                    zone,
                    &r.sub_domain,
                    ttl,
                    super::served::wire_value(&r.target),
                );
            }
        }
        out
    }
}

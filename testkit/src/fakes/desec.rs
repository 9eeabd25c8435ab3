//! A fake of deSEC's API (`/api/v1/domains/…/rrsets/…/`), stateful, on loopback.
//!
//! Quirks reproduced: `Authorization: Token <t>` (401 `{"detail":"Invalid token."}`);
//! `owns_qname` zone lookup; values canonicalized on the way in (re-quoted, strings
//! over 255 bytes split); unquoted TXT refused with 400; TTL below 3600 is 400;
//! creating an existing set is 400; deleting an absent set is 204.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::common::{self, Common, Server, Style, fixture, json, lock};

/// One stored RRset, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRrset {
    /// TTL.
    pub ttl: u32,
    /// Canonicalized record values.
    pub records: Vec<String>,
}

#[derive(Default, Clone)]
struct Data {
    domains: Vec<String>,
    /// Each domain's `minimum_ttl` (3600 unless set).
    minimum_ttl: BTreeMap<String, u32>,
    /// Items per page of an RRset list (deSEC: 500).
    page_size: Option<usize>,
    /// Whether RRset writes are limited per domain as deSEC does.
    limit_writes: bool,
    /// When each domain's recent RRset writes were accepted.
    writes_at: BTreeMap<String, Vec<std::time::Instant>>,
    rrsets: BTreeMap<(String, String), StoredRrset>,
}

struct Inner {
    common: Arc<Common>,
    data: Mutex<Data>,
}

/// A running fake deSEC API; stops when dropped.
pub struct FakeDesec {
    inner: Arc<Inner>,
    server: Server,
}

fn token_ok(h: &HeaderMap, token: &str) -> bool {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Token {token}"))
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (401, fixture!("desec/error_auth.json"))
}

fn error_body(status: u16) -> Value {
    match status {
        429 => fixture!("desec/error_throttled.json"),
        500..=599 => json!({"detail":"A server error occurred."}),
        s => json!({"detail": format!("HTTP {s} (injected)")}),
    }
}

fn not_found() -> Response {
    json(404, json!({"detail":"Not found."}))
}

/// Canonical form of one TXT value, or the 400 body.
fn canonical(v: &str) -> Result<String, String> {
    if !v.trim_start().starts_with('"') {
        return Err(format!(
            "Record content malformed: TXT data must be quoted: {v}"
        ));
    }
    let strings =
        common::lenient_strings(v).ok_or_else(|| format!("Record content malformed: {v}"))?;
    Ok(common::render_split(&strings))
}

fn rrset_json(domain: &str, sub: &str, r: &StoredRrset) -> Value {
    let name = if sub.is_empty() {
        format!("{domain}.")
    } else {
        format!("{sub}.{domain}.")
    };
    json!({"created":"2026-01-01T00:00:00.000000Z","domain":domain,"subname":sub,"name":name,
        "type":"TXT","records":r.records,"ttl":r.ttl,"touched":"2026-01-01T00:00:00.000000Z"})
}

impl FakeDesec {
    /// Starts the fake; requests must carry `Authorization: Token <token>`.
    pub async fn start(token: &str) -> FakeDesec {
        let common = Common::new(
            token,
            Style {
                auth_ok: token_ok,
                auth_error,
                error_body,
            },
        );
        let inner = Arc::new(Inner {
            common: common.clone(),
            data: Mutex::new(Data::default()),
        });
        let router = Router::new()
            .route("/api/v1/domains/", get(list_domains))
            .route("/api/v1/domains/{domain}/", get(get_domain))
            .route(
                "/api/v1/domains/{domain}/rrsets/",
                get(list_rrsets).post(create_rrset).patch(bulk_patch),
            )
            .route(
                "/api/v1/domains/{domain}/rrsets/{sub}/{kind}/",
                get(get_rrset)
                    .patch(patch_rrset)
                    .put(patch_rrset)
                    .delete(delete_rrset),
            )
            .with_state(inner.clone());
        let server = common::serve(router, common, "/api/v1").await;
        FakeDesec { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/api/v1`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a domain.
    pub fn add_domain(&self, name: &str) {
        lock(&self.inner.data).domains.push(name.to_string());
    }

    /// Sets a domain's `minimum_ttl` (deSEC lowers it to 900 or 60 on some
    /// deployments and domains; 3600 otherwise).
    pub fn set_minimum_ttl(&self, domain: &str, ttl: u32) {
        lock(&self.inner.data)
            .minimum_ttl
            .insert(domain.to_string(), ttl);
    }

    /// Limits RRset writes per domain as deSEC does (2/s, 15/min; sliding
    /// windows): one over is 429 with `Retry-After` and deSEC's message.
    pub fn limit_writes(&self) {
        lock(&self.inner.data).limit_writes = true;
    }

    /// Items per page of an RRset list (deSEC: 500); over it, a list without
    /// `cursor` is refused with 400 and a `Link: <…>; rel="first"` header.
    pub fn set_page_size(&self, n: usize) {
        lock(&self.inner.data).page_size = Some(n.max(1));
    }

    /// Stores a TXT set directly (`subname` empty for the apex), values as given.
    pub fn add_rrset(&self, domain: &str, subname: &str, ttl: u32, records: &[&str]) {
        lock(&self.inner.data).rrsets.insert(
            (domain.to_string(), subname.to_string()),
            StoredRrset {
                ttl,
                records: records.iter().map(|r| r.to_string()).collect(),
            },
        );
    }

    /// The TXT set at `subname` (empty for the apex), raw.
    pub fn rrset(&self, domain: &str, subname: &str) -> Option<StoredRrset> {
        lock(&self.inner.data)
            .rrsets
            .get(&(domain.to_string(), subname.to_string()))
            .cloned()
    }

    common::recording!(
        fails: "in deSEC's body",
        throttle: "The next request gets 429 with `Retry-After: <secs>` (deSEC's throttling)."
    );
}

async fn list_domains(
    State(s): State<Arc<Inner>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let d = lock(&s.data);
    let qname = q
        .iter()
        .find(|(k, _)| k == "owns_qname")
        .map(|(_, v)| v.trim_end_matches('.').to_string());
    let mut matching: Vec<&String> = d
        .domains
        .iter()
        .filter(|dom| {
            qname
                .as_ref()
                .is_none_or(|n| n == *dom || n.ends_with(&format!(".{dom}")))
        })
        .collect();
    if qname.is_some() {
        // owns_qname: only the most specific domain.
        matching.sort_by_key(|d| std::cmp::Reverse(d.len()));
        matching.truncate(1);
    }
    let out: Vec<Value> = matching.iter().map(|n| domain_json(&d, n)).collect();
    json(200, Value::Array(out))
}

fn sub_key(sub: &str) -> String {
    if sub == "@" {
        String::new()
    } else {
        sub.to_string()
    }
}

/// Most TTL deSEC accepts (its `MAXIMUM_TTL` setting).
pub const MAXIMUM_TTL: u64 = 86_400;

fn domain_json(d: &Data, name: &str) -> Value {
    let min = d.minimum_ttl.get(name).copied().unwrap_or(3600);
    json!({"name":name,"minimum_ttl":min,"created":"2026-01-01T00:00:00Z","published":"2026-01-01T00:00:00Z","touched":"2026-01-01T00:00:00Z"})
}

async fn get_domain(State(s): State<Arc<Inner>>, Path(domain): Path<String>) -> Response {
    let d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    json(200, domain_json(&d, &domain))
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn validate(d: &Data, domain: &str, v: &Value) -> Result<(u32, Vec<String>), Response> {
    let ttl = v["ttl"].as_u64().unwrap_or(0);
    let min = u64::from(d.minimum_ttl.get(domain).copied().unwrap_or(3600));
    if ttl < min {
        return Err(json(
            400,
            json!({"ttl":[format!("Ensure this value is greater than or equal to {min}.")]}),
        ));
    }
    if ttl > MAXIMUM_TTL {
        return Err(json(
            400,
            json!({"ttl":[format!("Ensure this value is less than or equal to {MAXIMUM_TTL}.")]}),
        ));
    }
    let Some(arr) = v["records"].as_array() else {
        return Err(json(400, json!({"records":["This field is required."]})));
    };
    let mut out = Vec::new();
    for r in arr {
        let Some(s) = r.as_str() else {
            return Err(json(400, json!({"records":["Not a valid string."]})));
        };
        match canonical(s) {
            Ok(c) => out.push(c),
            Err(m) => return Err(json(400, json!({ "records": [m] }))),
        }
    }
    Ok((ttl as u32, out))
}

async fn create_rrset(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return json(400, json!({"detail":"JSON parse error"}));
    };
    let mut d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    if let Some(r) = throttled(&mut d, &domain) {
        return r;
    }
    if v["type"].as_str() != Some("TXT") {
        return json(400, json!({"type":["This field is required."]}));
    }
    let sub = v["subname"].as_str().unwrap_or("").to_string();
    let (ttl, records) = match validate(&d, &domain, &v) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = (domain.clone(), sub.clone());
    if d.rrsets.contains_key(&key) {
        return json(400, fixture!("desec/error_exists.json"));
    }
    let set = StoredRrset { ttl, records };
    let out = rrset_json(&domain, &sub, &set);
    d.rrsets.insert(key, set);
    json(201, out)
}

async fn get_rrset(
    State(s): State<Arc<Inner>>,
    Path((domain, sub, kind)): Path<(String, String, String)>,
) -> Response {
    let d = lock(&s.data);
    if !d.domains.contains(&domain) || kind != "TXT" {
        return not_found();
    }
    let sub = sub_key(&sub);
    match d.rrsets.get(&(domain.clone(), sub.clone())) {
        Some(set) => json(200, rrset_json(&domain, &sub, set)),
        None => not_found(),
    }
}

async fn patch_rrset(
    State(s): State<Arc<Inner>>,
    Path((domain, sub, _kind)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    if let Some(r) = throttled(&mut d, &domain) {
        return r;
    }
    let sub = sub_key(&sub);
    let key = (domain.clone(), sub.clone());
    let Some(cur) = d.rrsets.get(&key).cloned() else {
        return not_found();
    };
    let mut merged = json!({"ttl": cur.ttl, "records": cur.records});
    if let Some(t) = v.get("ttl") {
        merged["ttl"] = t.clone();
    }
    if let Some(r) = v.get("records") {
        merged["records"] = r.clone();
    }
    let (ttl, records) = match validate(&d, &domain, &merged) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if records.is_empty() {
        d.rrsets.remove(&key);
        return empty(204);
    }
    let set = StoredRrset { ttl, records };
    let out = rrset_json(&domain, &sub, &set);
    d.rrsets.insert(key, set);
    json(200, out)
}

fn empty(status: u16) -> Response {
    let mut r = json(status, Value::Null);
    *r.body_mut() = axum::body::Body::empty();
    r
}

async fn delete_rrset(
    State(s): State<Arc<Inner>>,
    Path((domain, sub, _kind)): Path<(String, String, String)>,
) -> Response {
    let mut d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    if let Some(r) = throttled(&mut d, &domain) {
        return r;
    }
    d.rrsets.remove(&(domain, sub_key(&sub)));
    empty(204)
}

/// `GET /domains/{d}/rrsets/?type=TXT[&subname=…][&cursor=…]`: an array of
/// RRsets. Over the page size, a request without `cursor` is 400 with a
/// `Link` to the first page; pages link onward with `rel="next"`.
async fn list_rrsets(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if param("type").is_some_and(|t| t != "TXT") {
        return json(200, json!([]));
    }
    let sub = param("subname");
    let all: Vec<Value> = d
        .rrsets
        .iter()
        .filter(|((dom, s), _)| *dom == domain && sub.as_ref().is_none_or(|x| x == s))
        .map(|((_, s), r)| rrset_json(&domain, s, r))
        .collect();
    let size = d.page_size.unwrap_or(500);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let link = |cursor: usize, rel: &str| {
        format!(
            "<http://{host}/api/v1/domains/{domain}/rrsets/?type=TXT&cursor={cursor}>; rel=\"{rel}\""
        )
    };
    let cursor = param("cursor");
    if all.len() <= size && cursor.is_none() {
        return json(200, Value::Array(all));
    }
    let Some(cursor) = cursor else {
        let mut r = json(
            400,
            json!({"detail":"Pagination required. You can query up to 500 items at a time ({} total). Please use the `first` page link (see Link header)."}),
        );
        if let Ok(v) = link(0, "first").parse() {
            r.headers_mut().insert("link", v);
        }
        return r;
    };
    let start: usize = cursor.parse().unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(start).take(size).cloned().collect();
    let mut r = json(200, Value::Array(page));
    let mut links = vec![link(0, "first")];
    if start + size < all.len() {
        links.push(link(start + size, "next"));
    }
    if let Ok(v) = links.join(", ").parse() {
        r.headers_mut().insert("link", v);
    }
    r
}

/// `PATCH /domains/{d}/rrsets/` with an array: every RRset changed, created
/// (with `ttl` and `records`) or deleted (`records: []`) in one transaction;
/// errors come back as an array aligned with the request, `{}` for the parts
/// that passed, and nothing is applied.
async fn bulk_patch(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
        return json(
            400,
            json!({"non_field_errors":["Expected a list of items."]}),
        );
    };
    let mut d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    if let Some(r) = throttled(&mut d, &domain) {
        return r;
    }
    let mut work = d.clone();
    let mut errors = Vec::new();
    let mut failed = false;
    let mut out = Vec::new();
    for v in &items {
        if v["type"].as_str() != Some("TXT") {
            errors.push(json!({"type":["This field is required."]}));
            failed = true;
            continue;
        }
        let sub = v["subname"].as_str().unwrap_or("").to_string();
        let key = (domain.clone(), sub.clone());
        let cur = work.rrsets.get(&key).cloned();
        let mut merged = json!({"ttl": cur.as_ref().map(|c| c.ttl), "records": cur.as_ref().map(|c| c.records.clone()).unwrap_or_default()});
        if let Some(t) = v.get("ttl") {
            merged["ttl"] = t.clone();
        }
        if let Some(r) = v.get("records") {
            merged["records"] = r.clone();
        }
        if merged["records"].as_array().is_some_and(Vec::is_empty) {
            work.rrsets.remove(&key);
            errors.push(json!({}));
            continue;
        }
        match validate(&work, &domain, &merged) {
            Ok((ttl, records)) => {
                let set = StoredRrset { ttl, records };
                out.push(rrset_json(&domain, &sub, &set));
                work.rrsets.insert(key, set);
                errors.push(json!({}));
            }
            Err(_) => {
                let ttl = merged["ttl"].as_u64().unwrap_or(0);
                errors.push(json!({"ttl": [format!("Invalid TTL {ttl} or records for {sub:?}.")]}));
                failed = true;
            }
        }
    }
    if failed {
        return json(400, Value::Array(errors));
    }
    *d = work;
    json(200, Value::Array(out))
}

/// deSEC's `dns_api_per_domain_expensive` windows (the hour and day ones are
/// not reached by tests).
const WRITE_WINDOWS: [(usize, u64); 2] = [(2, 1), (15, 60)];

/// When writes are limited and `domain` has used a window up: deSEC's 429.
fn throttled(d: &mut Data, domain: &str) -> Option<Response> {
    if !d.limit_writes {
        return None;
    }
    let now = std::time::Instant::now();
    let times = d.writes_at.entry(domain.to_string()).or_default();
    times.retain(|t| now.duration_since(*t).as_secs() < 60);
    for (max, secs) in WRITE_WINDOWS {
        let window = std::time::Duration::from_secs(secs);
        let inside: Vec<&std::time::Instant> = times
            .iter()
            .filter(|t| now.duration_since(**t) < window)
            .collect();
        if inside.len() >= max {
            let oldest = inside.iter().map(|t| **t).min().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut r = json(
                429,
                json!({"detail": format!("Request was throttled. Expected available in {secs} seconds.")}),
            );
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            return Some(r);
        }
    }
    times.push(now);
    None
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeDesec {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.inner.data)
            .rrsets
            .iter()
            .filter(|((d, _), _)| d == zone)
            .flat_map(|((_, sub), set)| {
                set.records
                    .iter()
                    .map(move |v| format!("{sub} {} {v}", set.ttl))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for ((domain, sub), set) in &d.rrsets {
            if domain == zone {
                for v in &set.records {
                    super::served::add(&mut out, zone, sub, set.ttl, super::served::wire_value(v));
                }
            }
        }
        out
    }
}

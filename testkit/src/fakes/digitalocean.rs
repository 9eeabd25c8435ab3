//! A fake of DigitalOcean's API v2 (domains and domain records), stateful, on loopback.
//!
//! Quirks reproduced: record names stored relative (`@` for the apex), the `name`
//! filter takes the FQDN; `data` stored as one unquoted string; a record whose
//! encoded form (quoted 255-byte strings, escapes, spaces) is over 509 bytes is 422
//! `unprocessable_entity`; TTL under 30 is 422; pages via `links.pages.next`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, patch};
use serde_json::{Value, json};

use super::common::{self, Common, Server, fixture, json, lock, page_args, param};

/// Most bytes of the encoded form the fake accepts (dnscontrol's measurement).
pub const MAX_ENCODED: usize = 509;

/// One stored domain record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: u64,
    /// Domain (zone) name.
    pub domain: String,
    /// Name relative to the domain (`@` for the apex).
    pub name: String,
    /// `data` as stored.
    pub data: String,
    /// TTL.
    pub ttl: u32,
}

#[derive(Default)]
struct Data {
    domains: Vec<String>,
    records: Vec<StoredRecord>,
    next_id: u64,
    max_per_page: Option<usize>,
}

struct Inner {
    common: Arc<Common>,
    data: Mutex<Data>,
}

/// A running fake DigitalOcean API; stops when dropped.
pub struct FakeDigitalOcean {
    inner: Arc<Inner>,
    server: Server,
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (401, fixture!("digitalocean/error_unauthorized.json"))
}

fn error_body(status: u16) -> Value {
    match status {
        429 => fixture!("digitalocean/error_rate_limit.json"),
        500..=599 => fixture!("digitalocean/error_server.json"),
        404 => fixture!("digitalocean/error_not_found.json"),
        s => json!({"id":"unprocessable_entity","message":format!("HTTP {s} (injected)")}),
    }
}

fn unprocessable(msg: &str) -> Response {
    json(422, json!({"id":"unprocessable_entity","message":msg}))
}

fn not_found() -> Response {
    json(404, fixture!("digitalocean/error_not_found.json"))
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id":r.id,"type":"TXT","name":r.name,"data":r.data,"priority":null,"port":null,
        "ttl":r.ttl,"weight":null,"flags":null,"tag":null})
}

/// The length DigitalOcean checks: the value as quoted 255-byte strings.
pub fn encoded_len(data: &str) -> usize {
    common::render_split(&[data.as_bytes().to_vec()]).len()
}

impl FakeDigitalOcean {
    /// Starts the fake; requests must carry `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> FakeDigitalOcean {
        let common = Common::bearer(token, auth_error, error_body);
        let inner = Arc::new(Inner {
            common: common.clone(),
            data: Mutex::new(Data::default()),
        });
        let router = Router::new()
            .route("/v2/domains/{domain}", get(get_domain))
            .route(
                "/v2/domains/{domain}/records",
                get(list_records).post(create_record),
            )
            .route(
                "/v2/domains/{domain}/records/{id}",
                patch(patch_record).put(patch_record).delete(delete_record),
            )
            .with_state(inner.clone());
        let server = common::serve(router, common, "/v2").await;
        FakeDigitalOcean { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/v2`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a domain (zone).
    pub fn add_domain(&self, name: &str) {
        lock(&self.inner.data).domains.push(name.to_string());
    }

    /// Stores a record directly (`name` relative); returns its id.
    pub fn add_record(&self, domain: &str, name: &str, data: &str, ttl: u32) -> u64 {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = 1_000_000 + d.next_id;
        d.records.push(StoredRecord {
            id,
            domain: domain.to_string(),
            name: name.to_string(),
            data: data.to_string(),
            ttl,
        });
        id
    }

    /// The records of `domain` at relative `name`, raw, in creation order.
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

    common::recording!(fails: "in DigitalOcean's error body");
}

type Q = Query<Vec<(String, String)>>;

async fn get_domain(State(s): State<Arc<Inner>>, Path(domain): Path<String>) -> Response {
    if lock(&s.data).domains.contains(&domain) {
        json(
            200,
            json!({"domain":{"name":domain,"ttl":1800,"zone_file":""}}),
        )
    } else {
        not_found()
    }
}

fn fqdn(r: &StoredRecord) -> String {
    if r.name == "@" {
        r.domain.clone()
    } else {
        format!("{}.{}", r.name, r.domain)
    }
}

async fn list_records(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    Query(q): Q,
) -> Response {
    let d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    let recs: Vec<Value> = d
        .records
        .iter()
        .filter(|r| r.domain == domain)
        .filter(|_| param(&q, "type").is_none_or(|t| t == "TXT"))
        .filter(|r| param(&q, "name").is_none_or(|n| n == fqdn(r)))
        .map(record_json)
        .collect();
    // DigitalOcean's default page is 20 records, its maximum 200.
    let cap = d.max_per_page.map_or(200, |c| c.min(200));
    let (page, per) = page_args(&q, 20, Some(cap));
    let (items, pages) = common::paginate(&recs, page, per);
    let mut links = json!({});
    if pages > 1 {
        let url = |p: usize| {
            format!(
                "https://api.digitalocean.com/v2/domains/{domain}/records?page={p}&per_page={per}"
            )
        };
        let mut p = serde_json::Map::new();
        if page > 1 {
            p.insert("first".into(), json!(url(1)));
            p.insert("prev".into(), json!(url(page - 1)));
        }
        if page < pages {
            p.insert("next".into(), json!(url(page + 1)));
            p.insert("last".into(), json!(url(pages)));
        }
        links = json!({ "pages": p });
    }
    json(
        200,
        json!({"domain_records":items,"links":links,"meta":{"total":recs.len()}}),
    )
}

fn validate(data: &str, ttl: u64) -> Option<Response> {
    if ttl < 30 {
        return Some(unprocessable("record ttl must be greater than 30"));
    }
    if encoded_len(data) > MAX_ENCODED {
        return Some(unprocessable(
            "Data needs to be less than 512 characters in length",
        ));
    }
    None
}

async fn create_record(
    State(s): State<Arc<Inner>>,
    Path(domain): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return json(400, json!({"id":"bad_request","message":"malformed JSON"}));
    };
    let (Some("TXT"), Some(name), Some(data)) =
        (v["type"].as_str(), v["name"].as_str(), v["data"].as_str())
    else {
        return unprocessable("type, name and data are required");
    };
    let ttl = v["ttl"].as_u64().unwrap_or(1800);
    if let Some(r) = validate(data, ttl) {
        return r;
    }
    let mut d = lock(&s.data);
    if !d.domains.contains(&domain) {
        return not_found();
    }
    // lego sends the FQDN with a dot; DigitalOcean stores it relative.
    let full = name.trim_end_matches('.');
    let rel = if full == domain {
        "@".to_string()
    } else {
        full.strip_suffix(&format!(".{domain}"))
            .unwrap_or(full)
            .to_string()
    };
    d.next_id += 1;
    let rec = StoredRecord {
        id: 1_000_000 + d.next_id,
        domain,
        name: rel,
        data: data.to_string(),
        ttl: ttl as u32,
    };
    d.records.push(rec.clone());
    json(201, json!({ "domain_record": record_json(&rec) }))
}

async fn patch_record(
    State(s): State<Arc<Inner>>,
    Path((domain, id)): Path<(String, u64)>,
    body: axum::body::Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut d = lock(&s.data);
    let Some(rec) = d
        .records
        .iter_mut()
        .find(|r| r.id == id && r.domain == domain)
    else {
        return not_found();
    };
    let ttl = v["ttl"].as_u64().unwrap_or(u64::from(rec.ttl));
    let data = v["data"].as_str().unwrap_or(&rec.data).to_string();
    if let Some(r) = validate(&data, ttl) {
        return r;
    }
    rec.ttl = ttl as u32;
    rec.data = data;
    let out = record_json(rec);
    json(200, json!({ "domain_record": out }))
}

async fn delete_record(
    State(s): State<Arc<Inner>>,
    Path((domain, id)): Path<(String, u64)>,
) -> Response {
    let mut d = lock(&s.data);
    let before = d.records.len();
    d.records.retain(|r| !(r.id == id && r.domain == domain));
    if d.records.len() == before {
        return not_found();
    }
    let mut r = json(204, Value::Null);
    *r.body_mut() = axum::body::Body::empty();
    r
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeDigitalOcean {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.inner.data)
            .records
            .iter()
            .filter(|r| r.domain == zone)
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for r in d.records.iter().filter(|r| r.domain == zone) {
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

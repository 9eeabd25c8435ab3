//! A fake of Cloudflare's API v4 (zones and DNS records), stateful, on loopback.
//!
//! Quirks reproduced: `content` is stored as sent, except that quoted strings over
//! 255 bytes are split into 255-byte quoted strings; an unknown zone name lists as
//! 200 with `"result":[]`; a wrong token is 403 code 10000, a missing one 400 code
//! 9106; non-printable content is 400 code 1004/9051; an identical value at the
//! same name is 400 code 81058; a record over 4,096 wire bytes is refused; the
//! TXT records of one name hold at most 8,192 characters of `content` in all
//! (400 code 1004; Cloudflare's exact error code for it is not documented); the
//! batch endpoint runs deletes, patches, puts, posts in that order, all or nothing.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, patch};
use serde_json::{Value, json};

use super::common::{self, Common, Server, fixture, json, lock, page_args, param};

/// One stored DNS record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: String,
    /// Zone id.
    pub zone_id: String,
    /// Fully qualified name, no trailing dot.
    pub name: String,
    /// Record type.
    pub kind: String,
    /// `content` as stored.
    pub content: String,
    /// TTL.
    pub ttl: u32,
}

#[derive(Default, Clone)]
struct Data {
    zones: Vec<(String, String)>,
    records: Vec<StoredRecord>,
    next_id: u64,
    max_per_page: Option<usize>,
}

struct Inner {
    common: Arc<Common>,
    data: Mutex<Data>,
}

/// A running fake Cloudflare API; stops when dropped.
pub struct FakeCloudflare {
    inner: Arc<Inner>,
    server: Server,
}

fn auth_error(h: &HeaderMap) -> (u16, Value) {
    if h.get("authorization").is_none() {
        (400, fixture!("cloudflare/error_missing_auth.json"))
    } else {
        (403, fixture!("cloudflare/error_auth.json"))
    }
}

fn error_body(status: u16) -> Value {
    match status {
        429 => fixture!("cloudflare/error_rate_limit.json"),
        400 => fixture!("cloudflare/error_validation.json"),
        s => {
            json!({"success":false,"errors":[{"code":s,"message":format!("HTTP {s} (injected)")}],"messages":[],"result":null})
        }
    }
}

fn envelope_error(status: u16, code: u32, message: &str, chain: Value) -> Response {
    json(
        status,
        json!({"success":false,"errors":[{"code":code,"message":message,"error_chain":chain}],"messages":[],"result":null}),
    )
}

fn record_json(r: &StoredRecord, zone_name: &str) -> Value {
    json!({
        "id": r.id, "zone_id": r.zone_id, "zone_name": zone_name, "name": r.name,
        "type": r.kind, "content": r.content, "ttl": r.ttl,
        "proxiable": false, "proxied": false, "comment": null, "tags": [],
        "created_on": "2026-01-01T00:00:00Z", "modified_on": "2026-01-01T00:00:00Z",
    })
}

impl FakeCloudflare {
    /// Starts the fake; requests must carry `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> FakeCloudflare {
        let common = Common::bearer(token, auth_error, error_body);
        let inner = Arc::new(Inner {
            common: common.clone(),
            data: Mutex::new(Data::default()),
        });
        let router = Router::new()
            .route("/client/v4/zones", get(list_zones))
            .route(
                "/client/v4/zones/{zone}/dns_records",
                get(list_records).post(create_record),
            )
            .route(
                "/client/v4/zones/{zone}/dns_records/batch",
                axum::routing::post(batch),
            )
            .route(
                "/client/v4/zones/{zone}/dns_records/{id}",
                patch(patch_record).delete(delete_record),
            )
            .with_state(inner.clone());
        let server = common::serve(router, common, "/client/v4").await;
        FakeCloudflare { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/client/v4`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a zone and returns its id.
    pub fn add_zone(&self, name: &str) -> String {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = format!("{:032x}", 0x2000_0000u64 + d.next_id);
        d.zones.push((id.clone(), name.to_string()));
        id
    }

    /// Stores a record directly (as another tool would have made it); returns its id.
    pub fn add_record(&self, zone_id: &str, name: &str, content: &str, ttl: u32) -> String {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = format!("{:032x}", d.next_id);
        d.records.push(StoredRecord {
            id: id.clone(),
            zone_id: zone_id.to_string(),
            name: name.to_string(),
            kind: "TXT".into(),
            content: content.to_string(),
            ttl,
        });
        id
    }

    /// Deletes the record with id `id` directly (as another tool would).
    pub fn delete_record(&self, id: &str) {
        lock(&self.inner.data).records.retain(|r| r.id != id);
    }

    /// The TXT records stored at `name`, raw, in creation order.
    pub fn records(&self, name: &str) -> Vec<StoredRecord> {
        lock(&self.inner.data)
            .records
            .iter()
            .filter(|r| r.name == name)
            .cloned()
            .collect()
    }

    /// Caps `per_page` (to exercise pagination with few records).
    pub fn set_max_per_page(&self, n: usize) {
        lock(&self.inner.data).max_per_page = Some(n.max(1));
    }

    common::recording!(fails: "in Cloudflare's envelope");
}

type Q = Query<Vec<(String, String)>>;

async fn list_zones(State(s): State<Arc<Inner>>, Query(q): Q) -> Response {
    let d = lock(&s.data);
    let zones: Vec<Value> = d
        .zones
        .iter()
        .filter(|(_, n)| param(&q, "name").is_none_or(|want| want == n))
        .map(|(id, n)| json!({"id": id, "name": n, "status": "active"}))
        .collect();
    let (page, per) = page_args(&q, 20, Some(50));
    let (items, pages) = common::paginate(&zones, page, per);
    json(
        200,
        json!({"success":true,"errors":[],"messages":[],"result":items,
            "result_info":{"page":page,"per_page":per,"count":items.len(),"total_count":zones.len(),"total_pages":pages}}),
    )
}

fn zone_name(d: &Data, zone: &str) -> Option<String> {
    d.zones
        .iter()
        .find(|(id, _)| id == zone)
        .map(|(_, n)| n.clone())
}

fn no_route(zone: &str) -> Response {
    json(
        404,
        json!({"success":false,"errors":[
            {"code":7003,"message":format!("Could not route to /zones/{zone}/dns_records, perhaps your object identifier is invalid?")},
            {"code":7000,"message":"No route for that URI"}],"messages":[],"result":null}),
    )
}

async fn list_records(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    Query(q): Q,
) -> Response {
    let d = lock(&s.data);
    let Some(zn) = zone_name(&d, &zone) else {
        return no_route(&zone);
    };
    let recs: Vec<Value> = d
        .records
        .iter()
        .filter(|r| r.zone_id == zone)
        .filter(|r| param(&q, "type").is_none_or(|t| t == r.kind))
        .filter(|r| {
            param(&q, "name.exact")
                .or(param(&q, "name"))
                .is_none_or(|n| n == r.name)
        })
        .map(|r| record_json(r, &zn))
        .collect();
    let (page, per) = page_args(&q, 100, d.max_per_page);
    let (items, pages) = common::paginate(&recs, page, per);
    json(
        200,
        json!({"success":true,"errors":[],"messages":[],"result":items,
            "result_info":{"page":page,"per_page":per,"count":items.len(),"total_count":recs.len(),"total_pages":pages}}),
    )
}

/// Validates and normalizes `content` the way Cloudflare does; `Err` is the response.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn store_form(content: &str) -> Result<String, Response> {
    if !content.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(json(400, fixture!("cloudflare/error_validation.json")));
    }
    let strings = if content.trim_start().starts_with('"') {
        common::lenient_strings(content).ok_or_else(|| {
            envelope_error(
                400,
                1004,
                "DNS Validation Error",
                json!([{"code":9100,"message":"content is not valid quoted character-strings"}]),
            )
        })?
    } else {
        vec![content.as_bytes().to_vec()]
    };
    let wire: usize = strings
        .iter()
        .map(|s| s.len() + s.len().div_ceil(255).max(1))
        .sum();
    if wire > 4096 {
        return Err(envelope_error(
            400,
            1004,
            "DNS Validation Error",
            json!([{"code":9101,"message":"TXT record content exceeds 4096 bytes"}]),
        ));
    }
    if content.trim_start().starts_with('"') && strings.iter().any(|s| s.len() > 255) {
        Ok(common::render_split(&strings))
    } else {
        Ok(content.to_string())
    }
}

/// Most characters of `content` the TXT records of one name hold together
/// (developers.cloudflare.com/dns/manage-dns-records/reference/dns-record-types/).
pub const MAX_CONTENT_PER_NAME: usize = 8192;

/// The 8,192-character rule over what `d` would hold at `name` (TXT).
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn check_total(d: &Data, zone: &str, name: &str) -> Result<(), Response> {
    let total: usize = d
        .records
        .iter()
        .filter(|r| r.zone_id == zone && r.name == name && r.kind == "TXT")
        .map(|r| r.content.chars().count())
        .sum();
    if total > MAX_CONTENT_PER_NAME {
        return Err(envelope_error(
            400,
            1004,
            "DNS Validation Error",
            json!([{"code":9102,"message":format!("TXT records with the same name may hold at most {MAX_CONTENT_PER_NAME} characters of content in total ({total} requested)")}]),
        ));
    }
    Ok(())
}

/// Cloudflare's TTL range (API schema `dns-records_ttl`): 1 (automatic) or
/// 60..=86400; anything else is the host's validation error, code 9021 in the
/// chain of a 1004 "DNS Validation Error".
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn check_ttl(v: &Value) -> Result<(), Response> {
    match v.get("ttl").map(Value::as_u64) {
        None => Ok(()),
        Some(Some(t)) if t == 1 || (60..=86_400).contains(&t) => Ok(()),
        Some(_) => Err(envelope_error(
            400,
            1004,
            "DNS Validation Error",
            json!([{"code":9021,"message":"Invalid TTL. Must be between 60 and 86400 seconds, or 1 for automatic"}]),
        )),
    }
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn do_create(d: &mut Data, zone: &str, v: &Value) -> Result<Value, Response> {
    let (Some(kind), Some(name), Some(content)) = (
        v["type"].as_str(),
        v["name"].as_str(),
        v["content"].as_str(),
    ) else {
        return Err(envelope_error(
            400,
            9000,
            "DNS name, type and content are required",
            json!([]),
        ));
    };
    check_ttl(v)?;
    let ttl = v["ttl"].as_u64().unwrap_or(1) as u32;
    let content = store_form(content)?;
    let Some(zn) = zone_name(d, zone) else {
        return Err(no_route(zone));
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if d.records
        .iter()
        .any(|r| r.zone_id == zone && r.name == name && r.kind == kind && r.content == content)
    {
        return Err(envelope_error(
            400,
            81058,
            "An identical record already exists.",
            json!([]),
        ));
    }
    d.next_id += 1;
    let rec = StoredRecord {
        id: format!("{:032x}", d.next_id),
        zone_id: zone.to_string(),
        name: name.clone(),
        kind: kind.to_string(),
        content,
        ttl,
    };
    d.records.push(rec.clone());
    check_total(d, zone, &name)?;
    Ok(record_json(&rec, &zn))
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn do_patch(d: &mut Data, zone: &str, id: &str, v: &Value) -> Result<Value, Response> {
    let Some(zn) = zone_name(d, zone) else {
        return Err(no_route(zone));
    };
    let Some(rec) = d
        .records
        .iter_mut()
        .find(|r| r.id == id && r.zone_id == zone)
    else {
        return Err(envelope_error(
            404,
            81044,
            "Record does not exist.",
            json!([]),
        ));
    };
    check_ttl(v)?;
    if let Some(t) = v["ttl"].as_u64() {
        rec.ttl = t as u32;
    }
    if let Some(c) = v["content"].as_str() {
        rec.content = store_form(c)?;
    }
    let out = record_json(rec, &zn);
    let name = rec.name.clone();
    check_total(d, zone, &name)?;
    Ok(out)
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn do_delete(d: &mut Data, zone: &str, id: &str) -> Result<Value, Response> {
    if zone_name(d, zone).is_none() {
        return Err(no_route(zone));
    }
    let before = d.records.len();
    d.records.retain(|r| !(r.id == id && r.zone_id == zone));
    if d.records.len() == before {
        return Err(envelope_error(
            404,
            81044,
            "Record does not exist.",
            json!([]),
        ));
    }
    Ok(json!({"id": id}))
}

fn done(r: Result<Value, Response>) -> Response {
    match r {
        Ok(out) => json(
            200,
            json!({"success":true,"errors":[],"messages":[],"result":out}),
        ),
        Err(r) => r,
    }
}

async fn create_record(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return envelope_error(400, 9207, "Request body is invalid.", json!([]));
    };
    let mut d = lock(&s.data);
    let mut work = d.clone();
    let r = do_create(&mut work, &zone, &v);
    if r.is_ok() {
        *d = work;
    }
    done(r)
}

async fn patch_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut d = lock(&s.data);
    let mut work = d.clone();
    let r = do_patch(&mut work, &zone, &id, &v);
    if r.is_ok() {
        *d = work;
    }
    done(r)
}

async fn delete_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, String)>,
) -> Response {
    let mut d = lock(&s.data);
    done(do_delete(&mut d, &zone, &id))
}

/// `POST /zones/{zone}/dns_records/batch`: deletes, then patches, then puts,
/// then posts, in one transaction: the first failure answers for the whole
/// batch and nothing of it is kept.
async fn batch(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return envelope_error(400, 9207, "Request body is invalid.", json!([]));
    };
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let mut d = lock(&s.data);
    let mut work = d.clone();
    let mut out = json!({"deletes": [], "patches": [], "puts": [], "posts": []});
    #[allow(clippy::result_large_err)] // the error is the HTTP answer itself
    let mut run = || -> Result<(), Response> {
        for x in list("deletes") {
            let id = x["id"].as_str().unwrap_or("").to_string();
            let r = do_delete(&mut work, &zone, &id)?;
            push(&mut out, "deletes", r);
        }
        for x in list("patches") {
            let id = x["id"].as_str().unwrap_or("").to_string();
            let r = do_patch(&mut work, &zone, &id, &x)?;
            push(&mut out, "patches", r);
        }
        for x in list("puts") {
            let id = x["id"].as_str().unwrap_or("").to_string();
            do_delete(&mut work, &zone, &id)?;
            let r = do_create(&mut work, &zone, &x)?;
            push(&mut out, "puts", r);
        }
        for x in list("posts") {
            let r = do_create(&mut work, &zone, &x)?;
            push(&mut out, "posts", r);
        }
        Ok(())
    };
    if let Err(r) = run() {
        return r;
    }
    *d = work;
    json(
        200,
        json!({"success":true,"errors":[],"messages":[],"result":out}),
    )
}

fn push(out: &mut Value, key: &str, v: Value) {
    if let Some(a) = out[key].as_array_mut() {
        a.push(v);
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeCloudflare {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        let d = lock(&self.inner.data);
        d.records
            .iter()
            .filter(|r| {
                r.kind == "TXT" && d.zones.iter().any(|(id, n)| *id == r.zone_id && n == zone)
            })
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.content))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for r in d.records.iter().filter(|r| r.kind == "TXT") {
            if d.zones.iter().any(|(id, n)| *id == r.zone_id && n == zone) {
                super::served::add(
                    &mut out,
                    zone,
                    &r.name,
                    r.ttl,
                    super::served::wire_value(&r.content),
                );
            }
        }
        out
    }
}

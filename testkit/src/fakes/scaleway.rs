//! A stateful fake of Scaleway's Domains and DNS API (`/domain/v2beta1`), on loopback.
//!
//! - `X-Auth-Token` checked (401 `denied_authentication` otherwise).
//! - `GET /dns-zones?dns_zone=&page=&page_size=` (`total_count`);
//!   `GET /dns-zones/{zone}/records?name=&type=&page=&page_size=` (`name` required,
//!   `""` for the apex; 400 `invalid_arguments` without it).
//! - `PATCH /dns-zones/{zone}/records`: `changes` applied in order (`add`, `set`,
//!   `delete` by `id` or `id_fields`, `clear`) on a copy, all rolled back when one
//!   fails; a missing zone is created unless `disallow_new_zone_creation` is true.
//!   Each PATCH is counted ([`FakeScaleway::patches`]).
//! - TXT values as Scaleway keeps them: `data` must be one zone-file quoted
//!   string, which is unescaped; spaces and `"` at the value's edges are dropped;
//!   reads answer the stored bytes in quotes with only `"` escaped. `id_fields.data`
//!   must match that read form exactly.
//! - Broad endpoints trip the [`Tripwire`] (the test fails): a `clear` change,
//!   `DELETE /dns-zones/{zone}/records` (clears the zone), `DELETE /dns-zones/{zone}`,
//!   a `set`/`delete` whose `id_fields` lack the name or the type, and a PATCH
//!   without `disallow_new_zone_creation: true`.
//! - Errors `{"type","message",…}`; faults through the shared kit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::common::{self, Common, Server, Style, json, lock};
use super::tripwire::Tripwire;

/// One stored record, as Scaleway keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id (UUID-like).
    pub id: String,
    /// Relative name (`""` for the apex).
    pub name: String,
    /// Type, e.g. `TXT`.
    pub kind: String,
    /// The stored value (for TXT: the unescaped, trimmed bytes).
    pub value: String,
    /// TTL.
    pub ttl: u64,
}

#[derive(Default)]
struct Data {
    /// zone full name -> records
    zones: BTreeMap<String, Vec<StoredRecord>>,
    next_id: u64,
    patches: usize,
    page_size: usize,
}

struct Inner {
    common: Arc<Common>,
    data: Mutex<Data>,
    tripwire: Tripwire,
}

/// A running fake Scaleway API; stops when dropped, failing the test when a
/// broad endpoint was called.
pub struct FakeScaleway {
    inner: Arc<Inner>,
    server: Server,
}

/// Checks the tripwire on the test's thread (the server task, holding the
/// other reference, is dropped on a runtime thread where a panic is lost).
impl Drop for FakeScaleway {
    fn drop(&mut self) {
        self.inner.tripwire.check_on_drop();
    }
}

fn err(status: u16, kind: &str, message: &str) -> Response {
    json(status, json!({"type": kind, "message": message}))
}

fn invalid(argument: &str, help: &str) -> Response {
    json(
        400,
        json!({"type": "invalid_arguments", "message": "invalid argument(s)",
               "details": [{"argument_name": argument, "reason": "constraint", "help_message": help}]}),
    )
}

fn auth_ok(h: &HeaderMap, token: &str) -> bool {
    h.get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == token)
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (
        401,
        json!({"message": "authentication is denied", "method": "api_key", "reason": "invalid_argument", "type": "denied_authentication"}),
    )
}

fn error_body(status: u16) -> Value {
    match status {
        429 => json!({"type": "too_many_requests", "message": "too many requests"}),
        403 => json!({"type": "permissions_denied", "message": "insufficient permissions",
                      "details": [{"resource": "dns_zone", "action": "write"}]}),
        409 => {
            json!({"type": "resource_locked", "message": "resource is locked", "resource": "dns_zone"})
        }
        500..=599 => json!({"type": "internal_error", "message": "internal error"}),
        _ => json!({"type": "invalid_arguments", "message": "injected error", "details": []}),
    }
}

/// Scaleway's write rule for TXT `data`: one zone-file quoted string, unescaped,
/// then spaces and quotes dropped at the edges. `None` when not quoted.
fn txt_store(data: &str) -> Option<String> {
    let strings = common::lenient_strings(data)?;
    if !data.trim().starts_with('"') || !data.trim().ends_with('"') || strings.len() != 1 {
        return None;
    }
    let v = String::from_utf8_lossy(&strings[0]).into_owned();
    Some(v.trim_matches(|c| c == ' ' || c == '"').to_string())
}

/// Scaleway's read form: the stored bytes in quotes, only `"` escaped.
fn txt_read(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\\\""))
}

fn data_of(r: &StoredRecord) -> String {
    if r.kind == "TXT" {
        txt_read(&r.value)
    } else {
        r.value.clone()
    }
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id": r.id, "name": r.name, "type": r.kind, "data": data_of(r), "ttl": r.ttl,
           "priority": 0, "comment": null})
}

impl FakeScaleway {
    /// Starts the fake; requests must carry `X-Auth-Token: <secret_key>`.
    pub async fn start(secret_key: &str) -> FakeScaleway {
        let common = Common::new(
            secret_key,
            Style {
                auth_ok,
                auth_error,
                error_body,
            },
        );
        let inner = Arc::new(Inner {
            common: common.clone(),
            data: Mutex::new(Data {
                page_size: 100,
                ..Data::default()
            }),
            tripwire: Tripwire::new("Scaleway"),
        });
        let router = Router::new()
            .route("/domain/v2beta1/dns-zones", get(list_zones))
            .route(
                "/domain/v2beta1/dns-zones/{zone}",
                axum::routing::delete(delete_zone),
            )
            .route(
                "/domain/v2beta1/dns-zones/{zone}/records",
                get(list_records).patch(patch_records).delete(clear_records),
            )
            .with_state(inner.clone());
        let server = common::serve(router, common, "/domain/v2beta1").await;
        FakeScaleway { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/domain/v2beta1`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds an empty zone (its full name).
    pub fn add_zone(&self, zone: &str) {
        lock(&self.inner.data)
            .zones
            .entry(zone.to_string())
            .or_default();
    }

    /// Whether a zone of that full name exists.
    pub fn has_zone(&self, zone: &str) -> bool {
        lock(&self.inner.data).zones.contains_key(zone)
    }

    /// Another writer adds a TXT record at relative `name` (value as stored).
    pub fn add_txt(&self, zone: &str, name: &str, ttl: u64, value: &str) {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = format!("00000000-0000-4000-8000-{:012x}", d.next_id);
        d.zones
            .entry(zone.to_string())
            .or_default()
            .push(StoredRecord {
                id,
                name: name.to_string(),
                kind: "TXT".into(),
                value: value.to_string(),
                ttl,
            });
    }

    /// The stored TXT values at relative `name`, in order, with their TTLs.
    pub fn txt(&self, zone: &str, name: &str) -> Vec<(u64, String)> {
        lock(&self.inner.data)
            .zones
            .get(zone)
            .map(|rs| {
                rs.iter()
                    .filter(|r| r.kind == "TXT" && r.name == name)
                    .map(|r| (r.ttl, r.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many PATCH requests were answered with success.
    pub fn patches(&self) -> usize {
        lock(&self.inner.data).patches
    }

    /// Listings return at most `n` items per page.
    pub fn set_page_size(&self, n: usize) {
        lock(&self.inner.data).page_size = n.max(1);
    }

    common::recording!(
        fails: "in Scaleway's error body",
        throttle: "The next request gets 429 `too_many_requests` with `Retry-After`."
    );

    /// The broad endpoints called so far (taken: the test called them on purpose).
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.inner.tripwire.take()
    }
}

type Q = Query<Vec<(String, String)>>;

fn page_of<T: Clone>(items: &[T], q: &[(String, String)], cap: usize) -> Vec<T> {
    let page: usize = common::param(q, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let size = common::param(q, "page_size")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(cap)
        .clamp(1, cap);
    common::paginate(items, page, size).0
}

async fn list_zones(State(s): State<Arc<Inner>>, Query(q): Q) -> Response {
    let d = lock(&s.data);
    let want = common::param(&q, "dns_zone");
    let zones: Vec<Value> = d
        .zones
        .keys()
        .filter(|z| want.is_none_or(|w| w == *z))
        .map(|z| {
            let (sub, domain) = match z.split_once('.') {
                // Zones added as `sub.example.com` under a registered `example.com`.
                Some((sub, rest)) if d.zones.contains_key(rest) => (sub, rest),
                _ => ("", z.as_str()),
            };
            json!({"domain": domain, "subdomain": sub, "ns": ["ns0.dom.scw.cloud", "ns1.dom.scw.cloud"],
                   "ns_default": ["ns0.dom.scw.cloud", "ns1.dom.scw.cloud"], "ns_master": [],
                   "status": "active", "message": null, "updated_at": "2026-01-01T00:00:00Z",
                   "project_id": "00000000-0000-0000-0000-000000000001"})
        })
        .collect();
    let total = zones.len();
    let page = page_of(&zones, &q, d.page_size);
    json(200, json!({"dns_zones": page, "total_count": total}))
}

fn zone_missing(zone: &str) -> Response {
    json(
        404,
        json!({"message": "resource is not found", "resource": "dns_zone", "resource_id": zone, "type": "not_found"}),
    )
}

async fn list_records(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    Query(q): Q,
) -> Response {
    let d = lock(&s.data);
    let Some(records) = d.zones.get(&zone) else {
        return zone_missing(&zone);
    };
    let Some(name) = common::param(&q, "name") else {
        return invalid("name", "name is required");
    };
    let kind = common::param(&q, "type");
    let matching: Vec<Value> = records
        .iter()
        .filter(|r| r.name.eq_ignore_ascii_case(name) && kind.is_none_or(|k| k == r.kind))
        .map(record_json)
        .collect();
    let total = matching.len();
    let page = page_of(&matching, &q, d.page_size);
    json(200, json!({"records": page, "total_count": total}))
}

async fn clear_records(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    s.tripwire.hit(format!(
        "DELETE /dns-zones/{zone}/records (clears the zone)"
    ));
    let mut d = lock(&s.data);
    match d.zones.get_mut(&zone) {
        Some(rs) => {
            rs.clear();
            json(200, json!({}))
        }
        None => zone_missing(&zone),
    }
}

async fn delete_zone(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    s.tripwire
        .hit(format!("DELETE /dns-zones/{zone} (the whole zone)"));
    let mut d = lock(&s.data);
    match d.zones.remove(&zone) {
        Some(_) => json(200, json!({})),
        None => zone_missing(&zone),
    }
}

/// Which stored records a `set`/`delete` target names: by `id`, or by
/// `id_fields` (name, type, and when given the exact read-form data and TTL).
fn matches(r: &StoredRecord, target: &Value) -> bool {
    if let Some(id) = target.get("id").and_then(Value::as_str) {
        return r.id == id;
    }
    let f = &target["id_fields"];
    let name_ok = f["name"].as_str().is_some_and(|n| n == r.name);
    let type_ok = f["type"].as_str().is_none_or(|t| t == r.kind);
    let data_ok = f["data"].as_str().is_none_or(|x| x == data_of(r));
    let ttl_ok = f["ttl"].as_u64().is_none_or(|t| t == r.ttl);
    name_ok && type_ok && data_ok && ttl_ok
}

/// New records from `records[]`, each checked and stored as Scaleway would.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn new_records(d: &mut Data, records: &Value, at: &str) -> Result<Vec<StoredRecord>, Response> {
    let Some(arr) = records.as_array() else {
        return Err(invalid(&format!("{at}.records"), "records is required"));
    };
    let mut out = Vec::new();
    for (i, r) in arr.iter().enumerate() {
        let here = format!("{at}.records[{i}]");
        let (Some(name), Some(kind), Some(data)) =
            (r["name"].as_str(), r["type"].as_str(), r["data"].as_str())
        else {
            return Err(invalid(&here, "name, type and data are required"));
        };
        let ttl = r["ttl"].as_u64().unwrap_or(3600);
        if ttl < 60 {
            return Err(invalid(&format!("{here}.ttl"), "ttl must be at least 60"));
        }
        let value = if kind == "TXT" {
            match txt_store(data) {
                Some(v) => v,
                None => {
                    return Err(invalid(&format!("{here}.data"), "TXT data must be quoted"));
                }
            }
        } else {
            data.to_string()
        };
        d.next_id += 1;
        out.push(StoredRecord {
            id: format!("00000000-0000-4000-8000-{:012x}", d.next_id),
            name: name.to_string(),
            kind: kind.to_string(),
            value,
            ttl,
        });
    }
    Ok(out)
}

async fn patch_records(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(400, "invalid_request_error", "invalid JSON body");
    };
    let mut d = lock(&s.data);
    let disallow = v["disallow_new_zone_creation"].as_bool() == Some(true);
    if !disallow {
        s.tripwire.hit(format!(
            "PATCH /dns-zones/{zone}/records without disallow_new_zone_creation: true"
        ));
    }
    let mut records = match d.zones.get(&zone) {
        Some(rs) => rs.clone(),
        None if disallow => return zone_missing(&zone),
        None => Vec::new(),
    };
    let Some(changes) = v["changes"].as_array() else {
        return invalid("changes", "changes is required");
    };
    let mut touched = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let at = format!("changes[{i}]");
        if let Some(add) = c.get("add") {
            match new_records(&mut d, &add["records"], &format!("{at}.add")) {
                Ok(mut new) => {
                    touched.extend(new.iter().cloned());
                    records.append(&mut new);
                }
                Err(r) => return r,
            }
        } else if let Some(set) = c.get("set") {
            if !narrow(set) {
                s.tripwire
                    .hit(format!("{at}.set without id or id_fields name and type"));
            }
            let mut new = match new_records(&mut d, &set["records"], &format!("{at}.set")) {
                Ok(n) => n,
                Err(r) => return r,
            };
            // What `set` does when nothing matches is not documented: the fake adds.
            records.retain(|r| !matches(r, set));
            touched.extend(new.iter().cloned());
            records.append(&mut new);
        } else if let Some(del) = c.get("delete") {
            if !narrow(del) {
                s.tripwire
                    .hit(format!("{at}.delete without id or id_fields name and type"));
            }
            let before = records.len();
            records.retain(|r| !matches(r, del));
            if records.len() == before {
                return json(
                    404,
                    json!({"message": "resource is not found", "resource": "record", "resource_id": del.to_string(), "type": "not_found"}),
                );
            }
        } else if c.get("clear").is_some() {
            s.tripwire.hit(format!("{at}.clear (empties the zone)"));
            records.clear();
        } else {
            return invalid(&at, "one of add, set, delete, clear is required");
        }
    }
    d.zones.insert(zone, records);
    d.patches += 1;
    let out: Vec<Value> = touched.iter().map(record_json).collect();
    json(200, json!({ "records": out }))
}

/// A `set`/`delete` target scoped by record id, or by name and type.
fn narrow(target: &Value) -> bool {
    target.get("id").and_then(Value::as_str).is_some()
        || (target["id_fields"]["name"].is_string() && target["id_fields"]["type"].is_string())
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeScaleway {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.inner.data)
            .zones
            .get(zone)
            .into_iter()
            .flatten()
            .filter(|r| r.kind == "TXT")
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.value))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for r in d
            .zones
            .get(zone)
            .into_iter()
            .flatten()
            .filter(|r| r.kind == "TXT")
        {
            // Scaleway stores the value unquoted.
            super::served::add(
                &mut out,
                zone,
                &r.name,
                u32::try_from(r.ttl).unwrap_or(0),
                r.value.as_bytes().to_vec(),
            );
        }
        out
    }
}

//! A stateful fake of Bunny DNS (bunny.net core API, `/dnszone`), on loopback.
//!
//! - `AccessKey` header checked (401 otherwise).
//! - `GET /dnszone?page=&perPage=` → `{"Items","CurrentPage","TotalItems","HasMoreItems"}`;
//!   `GET /dnszone/{id}` → the zone with its `Records` (`Type` numeric in answers).
//! - Bunny's verbs: create `PUT /dnszone/{id}/records` (201, the stored record),
//!   update `POST /dnszone/{id}/records/{recordId}` (204), delete
//!   `DELETE /dnszone/{id}/records/{recordId}` (204; 404 when unknown). `Type` is
//!   accepted as a number or a name; an empty `Value` is refused (400).
//! - Errors `{"ErrorKey","Field","Message"}`; faults through the shared kit.
//! - Broad endpoints trip the [`Tripwire`] (the test fails): zone import
//!   (`POST /dnszone/{id}/import`), zone update (`POST /dnszone/{id}`) and zone
//!   deletion (`DELETE /dnszone/{id}`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::common::{self, Common, Server, Style, json, lock};
use super::tripwire::Tripwire;

/// Bunny's numeric record types, by name (`Type` in answers).
const TYPES: [(&str, u64); 13] = [
    ("A", 0),
    ("AAAA", 1),
    ("CNAME", 2),
    ("TXT", 3),
    ("MX", 4),
    ("Redirect", 5),
    ("Flatten", 6),
    ("PullZone", 7),
    ("SRV", 8),
    ("CAA", 9),
    ("PTR", 10),
    ("Script", 11),
    ("NS", 12),
];

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: u64,
    /// Numeric type (3 = TXT).
    pub kind: u64,
    /// Relative name (`""` for the apex).
    pub name: String,
    /// Value as stored.
    pub value: String,
    /// TTL.
    pub ttl: u64,
    /// Not served.
    pub disabled: bool,
}

#[derive(Default)]
struct Data {
    /// zone id -> (domain, records)
    zones: BTreeMap<u64, (String, Vec<StoredRecord>)>,
    next_id: u64,
    page_size: usize,
}

struct Inner {
    common: Arc<Common>,
    data: Mutex<Data>,
    tripwire: Tripwire,
}

/// A running fake Bunny DNS API; stops when dropped, failing the test when a
/// broad endpoint was called.
pub struct FakeBunny {
    inner: Arc<Inner>,
    server: Server,
}

/// Checks the tripwire on the test's thread (the server task, holding the
/// other reference, is dropped on a runtime thread where a panic is lost).
impl Drop for FakeBunny {
    fn drop(&mut self) {
        self.inner.tripwire.check_on_drop();
    }
}

fn err(status: u16, key: &str, field: &str, message: &str) -> Response {
    json(
        status,
        json!({"ErrorKey": key, "Field": field, "Message": message}),
    )
}

fn auth_ok(h: &HeaderMap, token: &str) -> bool {
    h.get("accesskey")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == token)
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (
        401,
        json!({"ErrorKey": "unauthorized", "Field": "AccessKey", "Message": "The request authorization failed. Check the AccessKey header."}),
    )
}

fn error_body(status: u16) -> Value {
    match status {
        429 => json!({"ErrorKey": "rate_limited", "Field": "", "Message": "Too many requests."}),
        500..=599 => {
            json!({"ErrorKey": "internal_error", "Field": "", "Message": "An internal error occurred."})
        }
        _ => json!({"ErrorKey": "validation_error", "Field": "", "Message": "Injected error."}),
    }
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"Id": r.id, "Type": r.kind, "Ttl": r.ttl, "Value": r.value, "Name": r.name,
           "Weight": 0, "Priority": 0, "Port": 0, "Flags": 0, "Tag": "", "Accelerated": false,
           "AcceleratedPullZoneId": 0, "LinkName": "", "IPGeoLocationInfo": null,
           "MonitorStatus": 0, "MonitorType": 0, "GeolocationLatitude": 0.0,
           "GeolocationLongitude": 0.0, "EnviromentalVariables": [], "LatencyZone": null,
           "SmartRoutingType": 0, "Disabled": r.disabled, "Comment": null})
}

fn zone_json(id: u64, domain: &str, records: &[StoredRecord]) -> Value {
    json!({"Id": id, "Domain": domain, "Records": records.iter().map(record_json).collect::<Vec<_>>(),
           "DateModified": "2026-01-01T00:00:00", "DateCreated": "2026-01-01T00:00:00",
           "NameserversDetected": true, "CustomNameserversEnabled": false,
           "Nameserver1": "kiki.bunny.net", "Nameserver2": "coco.bunny.net",
           "SoaEmail": "hostmaster@bunny.net", "LoggingEnabled": false})
}

impl FakeBunny {
    /// Starts the fake; requests must carry `AccessKey: <key>`.
    pub async fn start(key: &str) -> FakeBunny {
        let common = Common::new(
            key,
            Style {
                auth_ok,
                auth_error,
                error_body,
            },
        );
        let inner = Arc::new(Inner {
            common: common.clone(),
            data: Mutex::new(Data {
                page_size: 1000,
                next_id: 100,
                ..Data::default()
            }),
            tripwire: Tripwire::new("Bunny DNS"),
        });
        let router = Router::new()
            .route("/dnszone", get(list_zones))
            .route(
                "/dnszone/{zone}",
                get(get_zone).post(update_zone).delete(delete_zone),
            )
            .route("/dnszone/{zone}/import", post(import_zone))
            .route("/dnszone/{zone}/records", put(add_record))
            .route(
                "/dnszone/{zone}/records/{id}",
                post(update_record).delete(delete_record),
            )
            .with_state(inner.clone());
        let server = common::serve(router, common, "").await;
        FakeBunny { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a zone; returns its id.
    pub fn add_zone(&self, domain: &str) -> u64 {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = d.next_id;
        d.zones.insert(id, (domain.to_string(), Vec::new()));
        id
    }

    /// Another writer adds a record (`kind` numeric); returns its id.
    pub fn add_record(
        &self,
        zone: u64,
        kind: u64,
        name: &str,
        value: &str,
        ttl: u64,
        disabled: bool,
    ) -> u64 {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = d.next_id;
        if let Some((_, rs)) = d.zones.get_mut(&zone) {
            rs.push(StoredRecord {
                id,
                kind,
                name: name.to_string(),
                value: value.to_string(),
                ttl,
                disabled,
            });
        }
        id
    }

    /// Every record of the zone, as stored.
    pub fn records(&self, zone: u64) -> Vec<StoredRecord> {
        lock(&self.inner.data)
            .zones
            .get(&zone)
            .map(|(_, rs)| rs.clone())
            .unwrap_or_default()
    }

    /// The TXT values at relative `name` (enabled or not), in order.
    pub fn txt(&self, zone: u64, name: &str) -> Vec<String> {
        self.records(zone)
            .into_iter()
            .filter(|r| r.kind == 3 && r.name == name)
            .map(|r| r.value)
            .collect()
    }

    /// Zone listings return at most `n` zones per page.
    pub fn set_page_size(&self, n: usize) {
        lock(&self.inner.data).page_size = n.max(1);
    }

    common::recording!(
        fails: "in Bunny's error body",
        throttle: "The next request gets 429 with `Retry-After`."
    );

    /// The broad endpoints called so far (taken: the test called them on purpose).
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.inner.tripwire.take()
    }
}

type Q = Query<Vec<(String, String)>>;

async fn list_zones(State(s): State<Arc<Inner>>, Query(q): Q) -> Response {
    let d = lock(&s.data);
    let page: usize = common::param(&q, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per = common::param(&q, "perPage")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1000)
        .clamp(5, 1000)
        .min(d.page_size);
    let all: Vec<Value> = d
        .zones
        .iter()
        .map(|(id, (domain, rs))| zone_json(*id, domain, rs))
        .collect();
    let (items, pages) = common::paginate(&all, page, per);
    json(
        200,
        json!({"Items": items, "CurrentPage": page, "TotalItems": all.len(), "HasMoreItems": page < pages}),
    )
}

fn zone_missing() -> Response {
    err(
        404,
        "dnszone.not_found",
        "Id",
        "The requested DNS zone was not found.",
    )
}

async fn get_zone(State(s): State<Arc<Inner>>, Path(zone): Path<u64>) -> Response {
    let d = lock(&s.data);
    match d.zones.get(&zone) {
        Some((domain, rs)) => json(200, zone_json(zone, domain, rs)),
        None => zone_missing(),
    }
}

async fn update_zone(State(s): State<Arc<Inner>>, Path(zone): Path<u64>) -> Response {
    s.tripwire
        .hit(format!("POST /dnszone/{zone} (zone settings update)"));
    get_zone(State(s), Path(zone)).await
}

async fn delete_zone(State(s): State<Arc<Inner>>, Path(zone): Path<u64>) -> Response {
    s.tripwire
        .hit(format!("DELETE /dnszone/{zone} (the whole zone)"));
    lock(&s.data).zones.remove(&zone);
    axum::http::StatusCode::NO_CONTENT.into_response()
}

async fn import_zone(State(s): State<Arc<Inner>>, Path(zone): Path<u64>) -> Response {
    s.tripwire
        .hit(format!("POST /dnszone/{zone}/import (zone file import)"));
    json(
        200,
        json!({"RecordsSuccessful": 0, "RecordsFailed": 0, "RecordsSkipped": 0}),
    )
}

/// `Type` as a number or a name.
fn type_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().filter(|t| TYPES.iter().any(|(_, x)| x == t)),
        Value::String(s) => TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, x)| *x),
        _ => None,
    }
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn check_value(kind: u64, v: &Value) -> Result<String, Response> {
    let Some(value) = v.as_str() else {
        return Err(err(
            400,
            "validation_error",
            "Value",
            "The Value field is required.",
        ));
    };
    if kind == 3 && value.is_empty() {
        return Err(err(
            400,
            "validation_error",
            "Value",
            "The record value is invalid.",
        ));
    }
    Ok(value.to_string())
}

async fn add_record(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<u64>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(
            400,
            "validation_error",
            "",
            "The request body is not valid JSON.",
        );
    };
    let Some(kind) = type_of(&v["Type"]) else {
        return err(
            400,
            "validation_error",
            "Type",
            "The record type is invalid.",
        );
    };
    let value = match check_value(kind, &v["Value"]) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ttl = v["Ttl"].as_u64().unwrap_or(300);
    let mut d = lock(&s.data);
    d.next_id += 1;
    let id = d.next_id;
    let Some((_, rs)) = d.zones.get_mut(&zone) else {
        return zone_missing();
    };
    let r = StoredRecord {
        id,
        kind,
        name: v["Name"].as_str().unwrap_or("").to_string(),
        value,
        ttl,
        disabled: v["Disabled"].as_bool().unwrap_or(false),
    };
    rs.push(r.clone());
    json(201, record_json(&r))
}

async fn update_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(u64, u64)>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(
            400,
            "validation_error",
            "",
            "The request body is not valid JSON.",
        );
    };
    let mut d = lock(&s.data);
    let Some((_, rs)) = d.zones.get_mut(&zone) else {
        return zone_missing();
    };
    let Some(r) = rs.iter_mut().find(|r| r.id == id) else {
        return err(
            404,
            "dnszone.record_not_found",
            "Id",
            "The requested DNS record was not found.",
        );
    };
    if !v["Value"].is_null() {
        match check_value(r.kind, &v["Value"]) {
            Ok(x) => r.value = x,
            Err(resp) => return resp,
        }
    }
    if let Some(t) = v["Ttl"].as_u64() {
        r.ttl = t;
    }
    if let Some(n) = v["Name"].as_str() {
        r.name = n.to_string();
    }
    axum::http::StatusCode::NO_CONTENT.into_response()
}

async fn delete_record(
    State(s): State<Arc<Inner>>,
    Path((zone, id)): Path<(u64, u64)>,
) -> Response {
    let mut d = lock(&s.data);
    let Some((_, rs)) = d.zones.get_mut(&zone) else {
        return zone_missing();
    };
    let before = rs.len();
    rs.retain(|r| r.id != id);
    if rs.len() == before {
        return err(
            404,
            "dnszone.record_not_found",
            "Id",
            "The requested DNS record was not found.",
        );
    }
    axum::http::StatusCode::NO_CONTENT.into_response()
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeBunny {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.inner.data)
            .zones
            .values()
            .filter(|(d, _)| d == zone)
            .flat_map(|(_, recs)| {
                recs.iter()
                    .filter(|r| r.kind == 3)
                    .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.disabled, r.value))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for (domain, records) in d.zones.values() {
            if domain == zone {
                for r in records.iter().filter(|r| r.kind == 3 && !r.disabled) {
                    super::served::add(
                        &mut out,
                        zone,
                        &r.name,
                        u32::try_from(r.ttl).unwrap_or(0),
                        super::served::wire_value(&r.value),
                    );
                }
            }
        }
        out
    }
}

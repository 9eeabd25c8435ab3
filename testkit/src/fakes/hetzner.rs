//! A fake of the Hetzner Cloud API's DNS part (`/v1/zones`, rrsets, actions), on loopback.
//!
//! Quirks reproduced: RRsets addressed by relative name and type (`@` for the apex);
//! values must be quoted strings of at most 255 bytes each (422 `invalid_input`
//! otherwise); one TTL per set; every write returns an Action that reads `running`
//! for a configurable number of polls, then `success` (or `error` when injected).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::common::{self, Common, Server, fixture, json, lock};

/// One stored RRset, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRrset {
    /// TTL (`None` = zone default).
    pub ttl: Option<u32>,
    /// Record values as stored.
    pub values: Vec<String>,
}

#[derive(Default)]
struct ActionState {
    command: String,
    polls_left: u32,
    error: Option<String>,
}

#[derive(Default)]
struct Data {
    zones: Vec<(u64, String)>,
    rrsets: BTreeMap<(u64, String), StoredRrset>,
    actions: BTreeMap<u64, ActionState>,
    next_id: u64,
    running_polls: u32,
    fail_action: Option<String>,
    /// Writes still to refuse with 423 `locked` ("another action is running").
    busy_writes: u32,
    /// Most items per page of an RRset list.
    max_per_page: Option<usize>,
}

struct Inner {
    common: Arc<Common>,
    data: Mutex<Data>,
}

/// A running fake Hetzner Cloud API; stops when dropped.
pub struct FakeHetzner {
    inner: Arc<Inner>,
    server: Server,
}

fn err(status: u16, code: &str, message: &str) -> Response {
    json(
        status,
        json!({"error":{"code":code,"message":message,"details":{}}}),
    )
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (401, fixture!("hetzner/error_unauthorized.json"))
}

fn error_body(status: u16) -> Value {
    let (code, msg) = match status {
        429 => (
            "rate_limit_exceeded",
            "limit of 3600 requests per hour reached",
        ),
        500..=599 => ("server_error", "an internal error occurred"),
        403 => ("forbidden", "insufficient permissions for this request"),
        _ => ("invalid_input", "injected error"),
    };
    json!({"error":{"code":code,"message":msg,"details":{}}})
}

impl FakeHetzner {
    /// Starts the fake; requests must carry `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> FakeHetzner {
        let common = Common::bearer(token, auth_error, error_body);
        let inner = Arc::new(Inner {
            common: common.clone(),
            data: Mutex::new(Data {
                running_polls: 1,
                ..Data::default()
            }),
        });
        let router = Router::new()
            .route("/v1/zones", get(list_zones))
            .route(
                "/v1/zones/{zone}/rrsets",
                get(list_rrsets).post(create_rrset),
            )
            .route(
                "/v1/zones/{zone}/rrsets/{name}/{kind}",
                get(get_rrset).delete(delete_rrset),
            )
            .route(
                "/v1/zones/{zone}/rrsets/{name}/{kind}/actions/{action}",
                post(rrset_action),
            )
            .route("/v1/actions/{id}", get(get_action))
            .with_state(inner.clone());
        let server = common::serve(router, common, "/v1").await;
        FakeHetzner { inner, server }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Adds a zone; returns its numeric id.
    pub fn add_zone(&self, name: &str) -> u64 {
        let mut d = lock(&self.inner.data);
        d.next_id += 1;
        let id = 40 + d.next_id;
        d.zones.push((id, name.to_string()));
        id
    }

    /// Stores a TXT RRset directly (`name` relative, values as raw API values).
    pub fn add_rrset(&self, zone_id: u64, name: &str, ttl: Option<u32>, values: &[&str]) {
        lock(&self.inner.data).rrsets.insert(
            (zone_id, name.to_string()),
            StoredRrset {
                ttl,
                values: values.iter().map(|v| v.to_string()).collect(),
            },
        );
    }

    /// The TXT RRset at relative `name`, raw.
    pub fn rrset(&self, zone_id: u64, name: &str) -> Option<StoredRrset> {
        lock(&self.inner.data)
            .rrsets
            .get(&(zone_id, name.to_string()))
            .cloned()
    }

    /// How many polls an Action stays `running` before `success` (default 1).
    pub fn set_running_polls(&self, n: u32) {
        lock(&self.inner.data).running_polls = n;
    }

    /// The next Action ends in `error` with this message (the change is not applied).
    pub fn fail_next_action(&self, message: &str) {
        lock(&self.inner.data).fail_action = Some(message.to_string());
    }

    /// The next `n` writes are refused with 423 `locked`: another action
    /// (someone else's) is running on the zone, as Hetzner answers then.
    pub fn busy_next_writes(&self, n: u32) {
        lock(&self.inner.data).busy_writes = n;
    }

    /// Caps `per_page` of RRset lists.
    pub fn set_max_per_page(&self, n: usize) {
        lock(&self.inner.data).max_per_page = Some(n.max(1));
    }

    common::recording!(fails: "in Hetzner's error body");
}

type Q = Query<Vec<(String, String)>>;

async fn list_zones(State(s): State<Arc<Inner>>, Query(q): Q) -> Response {
    let d = lock(&s.data);
    let want = q.iter().find(|(k, _)| k == "name").map(|(_, v)| v.clone());
    // A zone name is a domain name: Hetzner validates the filter.
    if want.as_ref().is_some_and(|w| {
        !w.contains('.') || w.split('.').any(|l| l.is_empty() || l.starts_with('_'))
    }) {
        return err(
            400,
            "invalid_input",
            "invalid input in field 'name': is not a valid domain name",
        );
    }
    let zones: Vec<Value> = d
        .zones
        .iter()
        .filter(|(_, n)| want.as_ref().is_none_or(|w| w == n))
        .map(|(id, n)| json!({"id":id,"name":n,"mode":"primary","ttl":3600,"status":"ok"}))
        .collect();
    let total = zones.len();
    json(
        200,
        json!({"zones":zones,"meta":{"pagination":{"page":1,"per_page":25,"previous_page":null,"next_page":null,"last_page":1,"total_entries":total}}}),
    )
}

fn zone_id(d: &Data, zone: &str) -> Option<u64> {
    d.zones
        .iter()
        .find(|(id, n)| id.to_string() == zone || n == zone)
        .map(|(id, _)| *id)
}

fn zone_missing() -> Response {
    err(404, "not_found", "zone not found")
}

fn rrset_json(zone: u64, name: &str, r: &StoredRrset) -> Value {
    let records: Vec<Value> = r
        .values
        .iter()
        .map(|v| json!({"value":v,"comment":""}))
        .collect();
    json!({"id":format!("{name}/TXT"),"name":name,"type":"TXT","ttl":r.ttl,"labels":{},
        "protection":{"change":false},"records":records,"zone":zone})
}

/// Checks values as Hetzner does: quoted strings of at most 255 bytes.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn check_values(records: &Value) -> Result<Vec<String>, Response> {
    let Some(arr) = records.as_array() else {
        return Err(err(
            422,
            "invalid_input",
            "invalid input in field 'records': is required",
        ));
    };
    let mut out = Vec::new();
    for r in arr {
        let Some(v) = r["value"].as_str() else {
            return Err(err(
                422,
                "invalid_input",
                "invalid input in field 'records': value is required",
            ));
        };
        let Some(strings) = common::lenient_strings(v) else {
            return Err(err(
                422,
                "invalid_input",
                "invalid input in field 'records': malformed TXT value",
            ));
        };
        if !v.trim_start().starts_with('"') {
            return Err(err(
                422,
                "invalid_input",
                "invalid input in field 'records': TXT values must be quoted",
            ));
        }
        if strings.iter().any(|s| s.len() > 255) {
            return Err(json(422, fixture!("hetzner/error_invalid_input.json")));
        }
        out.push(v.to_string());
    }
    Ok(out)
}

fn new_action(d: &mut Data, command: &str) -> Value {
    d.next_id += 1;
    let id = d.next_id;
    let error = d.fail_action.take();
    d.actions.insert(
        id,
        ActionState {
            command: command.to_string(),
            polls_left: d.running_polls,
            error,
        },
    );
    action_json(id, d.actions.get(&id))
}

fn action_json(id: u64, a: Option<&ActionState>) -> Value {
    let Some(a) = a else {
        return Value::Null;
    };
    let (status, progress, error) = if a.polls_left > 0 {
        ("running", 50, Value::Null)
    } else if let Some(m) = &a.error {
        ("error", 100, json!({"code":"action_failed","message":m}))
    } else {
        ("success", 100, Value::Null)
    };
    json!({"id":id,"command":a.command,"status":status,"progress":progress,
        "started":"2026-01-01T00:00:00+00:00","finished":null,"resources":[],"error":error})
}

/// Hetzner's TTL range for an RRset (60..=2147483647): outside it the host
/// answers 422 `invalid_input` naming the field.
fn ttl_refused(v: &Value) -> Option<Response> {
    match v.get("ttl") {
        None | Some(Value::Null) => None,
        Some(t)
            if t.as_u64()
                .is_some_and(|t| (60..=2_147_483_647).contains(&t)) =>
        {
            None
        }
        Some(_) => Some(err(422, "invalid_input", "invalid input in field 'ttl'")),
    }
}

async fn create_rrset(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return err(400, "json_error", "invalid JSON input");
    };
    let mut d = lock(&s.data);
    let Some(zid) = zone_id(&d, &zone) else {
        return zone_missing();
    };
    if d.busy_writes > 0 {
        d.busy_writes -= 1;
        return err(423, "locked", "another action is running on this zone");
    }
    let (Some(name), Some("TXT")) = (v["name"].as_str(), v["type"].as_str()) else {
        return err(422, "invalid_input", "invalid input in field 'name'");
    };
    if let Some(refused) = ttl_refused(&v) {
        return refused;
    }
    let values = match check_values(&v["records"]) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = (zid, name.to_string());
    if d.rrsets.contains_key(&key) {
        return err(409, "uniqueness_error", "rrset already exists");
    }
    let set = StoredRrset {
        ttl: v["ttl"].as_u64().map(|t| t as u32),
        values,
    };
    let failing = d.fail_action.is_some();
    let action = new_action(&mut d, "create_rrset");
    let rr = rrset_json(zid, name, &set);
    if !failing {
        d.rrsets.insert(key, set);
    }
    json(201, json!({"rrset":rr,"action":action}))
}

async fn get_rrset(
    State(s): State<Arc<Inner>>,
    Path((zone, name, kind)): Path<(String, String, String)>,
) -> Response {
    let d = lock(&s.data);
    let Some(zid) = zone_id(&d, &zone) else {
        return zone_missing();
    };
    match d.rrsets.get(&(zid, name.clone())) {
        Some(set) if kind == "TXT" => json(200, json!({"rrset": rrset_json(zid, &name, set)})),
        _ => err(404, "not_found", "rrset not found"),
    }
}

async fn delete_rrset(
    State(s): State<Arc<Inner>>,
    Path((zone, name, _kind)): Path<(String, String, String)>,
) -> Response {
    let mut d = lock(&s.data);
    let Some(zid) = zone_id(&d, &zone) else {
        return zone_missing();
    };
    if d.busy_writes > 0 {
        d.busy_writes -= 1;
        return err(423, "locked", "another action is running on this zone");
    }
    if !d.rrsets.contains_key(&(zid, name.clone())) {
        return err(404, "not_found", "rrset not found");
    }
    let failing = d.fail_action.is_some();
    let action = new_action(&mut d, "delete_rrset");
    if !failing {
        d.rrsets.remove(&(zid, name));
    }
    json(201, json!({ "action": action }))
}

async fn rrset_action(
    State(s): State<Arc<Inner>>,
    Path((zone, name, _kind, action)): Path<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut d = lock(&s.data);
    let Some(zid) = zone_id(&d, &zone) else {
        return zone_missing();
    };
    if d.busy_writes > 0 {
        d.busy_writes -= 1;
        return err(423, "locked", "another action is running on this zone");
    }
    if let Some(refused) = ttl_refused(&v) {
        return refused;
    }
    let key = (zid, name);
    let failing = d.fail_action.is_some();
    match action.as_str() {
        "set_records" | "add_records" | "remove_records" => {
            let values = match check_values(&v["records"]) {
                Ok(x) => x,
                Err(r) => return r,
            };
            let exists = d.rrsets.contains_key(&key);
            if !exists && action != "add_records" {
                return err(404, "not_found", "rrset not found");
            }
            let a = new_action(&mut d, &format!("{action}_rrset"));
            if !failing {
                let set = d.rrsets.entry(key.clone()).or_insert(StoredRrset {
                    ttl: v["ttl"].as_u64().map(|t| t as u32),
                    values: Vec::new(),
                });
                match action.as_str() {
                    "set_records" => set.values = values,
                    "add_records" => {
                        for x in values {
                            if !set.values.contains(&x) {
                                set.values.push(x);
                            }
                        }
                    }
                    _ => set.values.retain(|x| !values.contains(x)),
                }
                if set.values.is_empty() {
                    d.rrsets.remove(&key);
                }
            }
            json(201, json!({ "action": a }))
        }
        "change_ttl" => {
            if !d.rrsets.contains_key(&key) {
                return err(404, "not_found", "rrset not found");
            }
            let a = new_action(&mut d, "change_rrset_ttl");
            if !failing && let Some(set) = d.rrsets.get_mut(&key) {
                set.ttl = v["ttl"].as_u64().map(|t| t as u32);
            }
            json(201, json!({ "action": a }))
        }
        _ => err(404, "not_found", "unknown action"),
    }
}

async fn get_action(State(s): State<Arc<Inner>>, Path(id): Path<u64>) -> Response {
    let mut d = lock(&s.data);
    let Some(a) = d.actions.get_mut(&id) else {
        return err(404, "not_found", "action not found");
    };
    a.polls_left = a.polls_left.saturating_sub(1);
    let out = action_json(id, d.actions.get(&id));
    json(200, json!({ "action": out }))
}

/// `GET /zones/{zone}/rrsets?type=TXT&page=&per_page=`, with `meta.pagination`.
async fn list_rrsets(
    State(s): State<Arc<Inner>>,
    Path(zone): Path<String>,
    Query(q): Q,
) -> Response {
    let d = lock(&s.data);
    let Some(zid) = zone_id(&d, &zone) else {
        return zone_missing();
    };
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let all: Vec<Value> = d
        .rrsets
        .iter()
        .filter(|((z, _), _)| *z == zid)
        .filter(|_| param("type").is_none_or(|t| t == "TXT"))
        .map(|((_, n), r)| rrset_json(zid, n, r))
        .collect();
    let page: usize = param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut per: usize = param("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(25)
        .max(1);
    if let Some(m) = d.max_per_page {
        per = per.min(m);
    }
    let last = all.len().div_ceil(per).max(1);
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect();
    let next = (page < last).then_some(page + 1);
    json(
        200,
        json!({"rrsets": items, "meta": {"pagination": {"page": page, "per_page": per, "previous_page": null, "next_page": next, "last_page": last, "total_entries": all.len()}}}),
    )
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeHetzner {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        let d = lock(&self.inner.data);
        d.rrsets
            .iter()
            .filter(|((zid, _), _)| d.zones.iter().any(|(id, n)| id == zid && n == zone))
            .flat_map(|((_, name), set)| {
                set.values
                    .iter()
                    .map(move |v| format!("{name} {:?} {v}", set.ttl))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let d = lock(&self.inner.data);
        let mut out = super::served::ServedSets::new();
        for ((zid, name), set) in &d.rrsets {
            if d.zones.iter().any(|(id, n)| id == zid && n == zone) {
                for v in &set.values {
                    super::served::add(
                        &mut out,
                        zone,
                        name,
                        set.ttl.unwrap_or(3600),
                        super::served::wire_value(v),
                    );
                }
            }
        }
        out
    }
}

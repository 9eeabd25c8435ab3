//! A stateful fake of the IONOS Hosting DNS API (`/dns/v1`) on 127.0.0.1.
//!
//! Quirks reproduced (shared/notes/provider-apis-2.md §11): `X-API-Key` must be
//! the key in `prefix.secret` form; names are fully qualified both ways; TXT
//! content is stored as sent and served QUOTED (Go's `strconv.Quote` of the value:
//! `"`, `\` escaped), as lego expects; reads filter by `suffix`, `recordName`,
//! `recordType`; TTL under 300 is refused; errors are arrays of `{"code",
//! "message"}`; every accepted change is served (see [`FakeIonos::served`]) only
//! after a configurable publication delay.
//!
//! The broad forms are implemented with their real effect and recorded: `PATCH
//! /v1/zones/{id}` (replaces every record of each name and type sent) and `PUT
//! /v1/zones/{id}` (replaces the whole zone). A fake on which one was called
//! panics when dropped, failing the test, unless the test took the calls with
//! [`FakeIonos::take_broad_calls`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

/// Lowest TTL the fake accepts (lego's minimum for IONOS).
pub const MIN_TTL: u64 = 300;

/// One stored record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id (a UUID-shaped string).
    pub id: String,
    /// Zone id.
    pub zone_id: String,
    /// Owner name, fully qualified, lowercased.
    pub name: String,
    /// Record type.
    pub kind: String,
    /// Content as sent (unquoted).
    pub content: String,
    /// TTL.
    pub ttl: u64,
    /// When the name servers serve it.
    pub published_at: Instant,
}

#[derive(Debug, Default)]
struct St {
    api_key: String,
    zones: Vec<(String, String)>,
    records: Vec<StoredRecord>,
    next_id: u64,
    delay: Duration,
}

type Shared = kit::Shared<St>;

/// The running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeIonos {
    /// Base URL to give the adapter: `http://127.0.0.1:<port>/dns`.
    pub url: String,
    shared: Shared,
    _task: ServerTask,
}

impl Drop for FakeIonos {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

/// Go's `strconv.Quote` for printable ASCII: the value in double quotes, `"` and
/// `\` escaped (how IONOS serves TXT content).
pub fn quote(content: &str) -> String {
    let mut out = String::from("\"");
    for c in content.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl FakeIonos {
    /// Starts the fake; requests must carry `X-API-Key: <api_key>` (`prefix.secret`).
    pub async fn start(api_key: &str) -> Self {
        let state = Arc::new(Mutex::new(St {
            api_key: api_key.to_string(),
            ..St::default()
        }));
        let shared = Shared::new(
            state.clone(),
            Tripwire::saying(
                "the adapter called IONOS's zone-wide writes, which replace whole name+type groups or the zone",
            ),
        );
        let (addr, task) = shared.serve(handle).await;
        FakeIonos {
            url: format!("http://{addr}/dns"),
            shared,
            _task: task,
        }
    }

    /// Adds a zone (with an NS record at its apex); returns its id.
    pub fn add_zone(&self, name: &str) -> String {
        let id = {
            let mut st = lock(&self.shared.state);
            st.next_id += 1;
            let id = format!("11af3414-ebba-11e9-8df5-{:012x}", st.next_id);
            st.zones.push((id.clone(), name.to_string()));
            id
        };
        self.add_record(name, name, "NS", "ns1045.ui-dns.com");
        id
    }

    /// Stores a record directly (`name` fully qualified, `content` unquoted).
    pub fn add_record(&self, zone: &str, name: &str, kind: &str, content: &str) -> String {
        let mut st = lock(&self.shared.state);
        let zone_id = st
            .zones
            .iter()
            .find(|(_, z)| z == zone)
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        st.next_id += 1;
        let id = format!("22af3414-abcd-11e9-8df5-{:012x}", st.next_id);
        st.records.push(StoredRecord {
            id: id.clone(),
            zone_id,
            name: name.to_ascii_lowercase(),
            kind: kind.to_string(),
            content: content.to_string(),
            ttl: 3600,
            published_at: Instant::now(),
        });
        id
    }

    /// The TXT records at `name` (fully qualified), as stored, in creation order.
    pub fn txt(&self, name: &str) -> Vec<StoredRecord> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.kind == "TXT" && r.name == name)
            .cloned()
            .collect()
    }

    /// The TXT values IONOS's name servers serve at `name` now: those whose
    /// publication delay has passed.
    pub fn served(&self, name: &str) -> Vec<String> {
        let now = Instant::now();
        self.txt(name)
            .into_iter()
            .filter(|r| r.published_at <= now)
            .map(|r| r.content)
            .collect()
    }

    /// From now on, accepted changes are served only after `delay`.
    pub fn set_publish_delay(&self, delay: Duration) {
        lock(&self.shared.state).delay = delay;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// Every request other than GET.
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_write)
            .collect()
    }

    /// The zone-wide calls seen so far (emptied, so the fake drops quietly).
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.shared.tripwire.take()
    }

    /// The next `n` requests fail with `status` in IONOS's error array.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }
}

fn errors(status: u16, code: &str, message: &str) -> Response {
    kit::respond(
        status,
        "application/json",
        json!([{ "code": code, "message": message }]).to_string(),
        &[],
    )
}

fn record_json(r: &StoredRecord, root: &str) -> Value {
    let content = if r.kind == "TXT" {
        quote(&r.content)
    } else {
        r.content.clone()
    };
    json!({"id": r.id, "name": r.name, "rootName": root, "type": r.kind, "content": content,
        "changeDate": "2026-11-30T10:00:00.000Z", "ttl": r.ttl, "prio": 0, "disabled": false})
}

/// Validates one record of a write body: `(name, type, content, ttl)`.
fn record_fields(v: &Value, zone: &str) -> Result<(String, String, String, u64), Box<Response>> {
    let (Some(name), Some(kind), Some(content)) = (
        v["name"].as_str(),
        v["type"].as_str(),
        v["content"].as_str(),
    ) else {
        return Err(Box::new(errors(
            400,
            "INVALID_RECORD",
            "Record is invalid.",
        )));
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name != zone && !name.ends_with(&format!(".{zone}")) {
        return Err(Box::new(errors(
            400,
            "INVALID_RECORD",
            "Record name is not in the zone.",
        )));
    }
    let ttl = v["ttl"].as_u64().unwrap_or(3600);
    if ttl < MIN_TTL {
        return Err(Box::new(kit::respond(
            400,
            "application/json",
            json!([{"code": "INVALID_RECORD", "message": "Record TTL is invalid.",
                "parameters": {"invalidFields": ["ttl"]}}])
            .to_string(),
            &[],
        )));
    }
    Ok((name, kind.to_string(), content.to_string(), ttl))
}

async fn handle(
    State(sh): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = kit::query_pairs(uri.query().unwrap_or(""));
    let mut st = lock(&sh.state);
    sh.record(&method, &uri, &headers, &body);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key != st.api_key || !key.contains('.') {
        return errors(
            401,
            "UNAUTHORIZED",
            "The customer is not authorized to do this operation.",
        );
    }
    if let Some(f) = sh.faults.take() {
        return match f {
            Fault::Throttle { retry_after } => kit::respond(
                429,
                "application/json",
                json!([{"code": "TOO_MANY_REQUESTS", "message": "Too many requests."}]).to_string(),
                &[("retry-after", retry_after.to_string())],
            ),
            Fault::Status(s) if s >= 500 => {
                errors(s, "INTERNAL_SERVER_ERROR", "Internal server error.")
            }
            Fault::Status(s) => errors(s, "BAD_REQUEST", &format!("HTTP {s} (injected)")),
        };
    }
    let Some(rest) = path.strip_prefix("/dns/v1/zones") else {
        return errors(404, "NOT_FOUND", "Resource does not exist.");
    };
    let parts: Vec<String> = rest
        .split('/')
        .filter(|p| !p.is_empty())
        .map(kit::percent_decode)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    if parts.is_empty() {
        if method != Method::GET {
            return errors(405, "METHOD_NOT_ALLOWED", "Method not allowed.");
        }
        let zones: Vec<Value> = st
            .zones
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name, "type": "NATIVE"}))
            .collect();
        return kit::respond(
            200,
            "application/json",
            Value::Array(zones).to_string(),
            &[],
        );
    }
    let zone_id = parts[0].to_string();
    let Some(zone) = st
        .zones
        .iter()
        .find(|(id, _)| *id == zone_id)
        .map(|(_, n)| n.clone())
    else {
        return errors(404, "ZONE_NOT_FOUND", "Zone does not exist.");
    };
    let delay = st.delay;
    let param = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    match (&method, &parts[1..]) {
        (&Method::GET, []) => {
            let suffix = param("suffix");
            let rname = param("recordName");
            let rtype = query
                .iter()
                .find(|(n, _)| n == "recordType")
                .map(|(_, v)| v.clone());
            let recs: Vec<Value> = st
                .records
                .iter()
                .filter(|r| r.zone_id == zone_id)
                .filter(|r| suffix.as_ref().is_none_or(|s| r.name.ends_with(s.as_str())))
                .filter(|r| rname.as_ref().is_none_or(|n| r.name == *n))
                .filter(|r| rtype.as_ref().is_none_or(|t| r.kind == *t))
                .map(|r| record_json(r, &zone))
                .collect();
            kit::respond(
                200,
                "application/json",
                json!({"id": zone_id, "name": zone, "type": "NATIVE", "records": recs}).to_string(),
                &[],
            )
        }
        (&Method::POST, ["records"]) => {
            let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
                return errors(
                    400,
                    "INVALID_REQUEST",
                    "The request body must be an array of records.",
                );
            };
            let mut new = Vec::new();
            for item in &items {
                match record_fields(item, &zone) {
                    Ok(f) => new.push(f),
                    Err(resp) => return *resp,
                }
            }
            let mut out = Vec::new();
            for (name, kind, content, ttl) in new {
                st.next_id += 1;
                let rec = StoredRecord {
                    id: format!("33af3414-ebba-11e9-8df5-{:012x}", st.next_id),
                    zone_id: zone_id.clone(),
                    name,
                    kind,
                    content,
                    ttl,
                    published_at: Instant::now() + delay,
                };
                out.push(record_json(&rec, &zone));
                st.records.push(rec);
            }
            kit::respond(201, "application/json", Value::Array(out).to_string(), &[])
        }
        (m, ["records", rid]) => {
            let Some(pos) = st
                .records
                .iter()
                .position(|r| r.zone_id == zone_id && r.id == *rid)
            else {
                return errors(404, "RECORD_NOT_FOUND", "Record does not exist.");
            };
            match *m {
                Method::GET => {
                    let r = record_json(&st.records[pos], &zone);
                    kit::respond(200, "application/json", r.to_string(), &[])
                }
                Method::DELETE => {
                    st.records.remove(pos);
                    kit::respond(200, "application/json", String::new(), &[])
                }
                Method::PUT => {
                    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                        return errors(400, "INVALID_REQUEST", "Invalid JSON.");
                    };
                    let ttl = v["ttl"].as_u64().unwrap_or(st.records[pos].ttl);
                    if ttl < MIN_TTL {
                        return errors(400, "INVALID_RECORD", "Record TTL is invalid.");
                    }
                    let r = &mut st.records[pos];
                    if let Some(c) = v["content"].as_str() {
                        r.content = c.to_string();
                    }
                    r.ttl = ttl;
                    r.published_at = Instant::now() + delay;
                    let out = record_json(r, &zone);
                    kit::respond(200, "application/json", out.to_string(), &[])
                }
                _ => errors(405, "METHOD_NOT_ALLOWED", "Method not allowed."),
            }
        }
        (&Method::PATCH, []) | (&Method::PUT, []) => {
            let whole = method == Method::PUT;
            sh.tripwire.hit(format!(
                "{} /v1/zones/{zone_id} ({zone})",
                if whole { "PUT" } else { "PATCH" }
            ));
            let items = match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Array(a)) => a,
                Ok(v) => v["records"].as_array().cloned().unwrap_or_default(),
                Err(_) => return errors(400, "INVALID_REQUEST", "Invalid JSON."),
            };
            let mut new = Vec::new();
            for item in &items {
                match record_fields(item, &zone) {
                    Ok(f) => new.push(f),
                    Err(resp) => return *resp,
                }
            }
            let groups: Vec<(String, String)> = new
                .iter()
                .map(|(n, k, _, _)| (n.clone(), k.clone()))
                .collect();
            st.records.retain(|r| {
                r.zone_id != zone_id
                    || (!whole && !groups.iter().any(|(n, k)| r.name == *n && r.kind == *k))
            });
            for (name, kind, content, ttl) in new {
                st.next_id += 1;
                let id = format!("44af3414-ebba-11e9-8df5-{:012x}", st.next_id);
                st.records.push(StoredRecord {
                    id,
                    zone_id: zone_id.clone(),
                    name,
                    kind,
                    content,
                    ttl,
                    published_at: Instant::now() + delay,
                });
            }
            kit::respond(200, "application/json", String::new(), &[])
        }
        _ => errors(404, "NOT_FOUND", "Resource does not exist."),
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeIonos {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        let st = lock(&self.shared.state);
        st.records
            .iter()
            .filter(|r| {
                r.kind == "TXT" && st.zones.iter().any(|(id, n)| *id == r.zone_id && n == zone)
            })
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.content))
            .collect()
    }

    /// The records whose publication delay has passed.
    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        let now = Instant::now();
        let Some((id, _)) = st.zones.iter().find(|(_, n)| n == zone) else {
            return out;
        };
        for r in st
            .records
            .iter()
            .filter(|r| r.zone_id == *id && r.kind == "TXT" && r.published_at <= now)
        {
            super::served::add(
                &mut out,
                zone,
                &r.name,
                u32::try_from(r.ttl).unwrap_or(0),
                super::served::wire_value(&r.content),
            );
        }
        out
    }
}

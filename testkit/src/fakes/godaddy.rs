//! A stateful fake of GoDaddy's Domains API v1 (domains and records) on 127.0.0.1.
//!
//! `Authorization: sso-key KEY:SECRET` is checked (401 `UNABLE_TO_AUTHENTICATE`);
//! a switch answers 403 `ACCESS_DENIED` to valid keys (an account under GoDaddy's
//! API threshold). `PUT /v1/domains/{d}/records/{type}/{name}` replaces every value
//! at that name and type; `data` over 512 characters and `ttl` under 600 are 422
//! `INVALID_BODY` with `fields[]` (for the TTL GoDaddy's real field error,
//! `UNKNOWN_RESTRICTION` "must have a minimum value of 600"); each endpoint allows a configurable number of
//! requests per window (60 per minute by default), then 429 `TOO_MANY_REQUESTS`.
//! An absent name answers `[]`, or 404 when so configured (GoDaddy's real answer is
//! not documented). The broad writes (whole-zone `PUT …/records`, whole-type
//! `PUT …/records/{type}`, `PATCH …/records`) are served faithfully and trip the
//! [`Tripwire`].

use std::collections::HashMap;
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

/// Most characters of `data`.
pub const MAX_DATA: usize = 512;
/// Lowest TTL GoDaddy takes (not in its swagger; its 422 answers say so).
pub const MIN_TTL: u64 = 600;

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdRecord {
    /// Relative name (`@` for the apex).
    pub name: String,
    /// Type.
    pub kind: String,
    /// `data`.
    pub data: String,
    /// TTL.
    pub ttl: u32,
}

type Hook = Box<dyn FnOnce(&mut Vec<GdRecord>) + Send>;

struct St {
    auth: String,
    deny_access: bool,
    absent_is_404: bool,
    domains: HashMap<String, Vec<GdRecord>>,
    limit: u32,
    window: Duration,
    counters: HashMap<String, (Instant, u32)>,
    after_put: Option<Hook>,
}

type Shared = kit::Shared<St>;

/// A running fake GoDaddy API; stops when dropped (and fails the test if a broad
/// endpoint was called).
pub struct FakeGoDaddy {
    url: String,
    shared: Shared,
    _task: ServerTask,
}

/// Checks the tripwire on the test's thread (the server task, holding the
/// other reference, is dropped on a runtime thread where a panic is lost).
impl Drop for FakeGoDaddy {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

impl FakeGoDaddy {
    /// Starts the fake accepting `sso-key {key}:{secret}`.
    pub async fn start(key: &str, secret: &str) -> FakeGoDaddy {
        let state = Arc::new(Mutex::new(St {
            auth: format!("sso-key {key}:{secret}"),
            deny_access: false,
            absent_is_404: false,
            domains: HashMap::new(),
            limit: 60,
            window: Duration::from_secs(60),
            counters: HashMap::new(),
            after_put: None,
        }));
        let shared = Shared::new(state.clone(), Tripwire::new("GoDaddy"));
        let (addr, task) = shared.serve(handle).await;
        FakeGoDaddy {
            url: format!("http://{addr}"),
            shared,
            _task: task,
        }
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        &self.url
    }

    /// Adds a domain to the account.
    pub fn add_domain(&self, domain: &str) {
        lock(&self.shared.state)
            .domains
            .insert(domain.to_string(), Vec::new());
    }

    /// Stores a record directly.
    pub fn add_record(&self, domain: &str, name: &str, kind: &str, data: &str, ttl: u32) {
        if let Some(d) = lock(&self.shared.state).domains.get_mut(domain) {
            d.push(GdRecord {
                name: name.into(),
                kind: kind.into(),
                data: data.into(),
                ttl,
            });
        }
    }

    /// Every record of `domain`, in order.
    pub fn records(&self, domain: &str) -> Vec<GdRecord> {
        lock(&self.shared.state)
            .domains
            .get(domain)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes `domain`'s records directly (another writer).
    pub fn edit(&self, domain: &str, f: impl FnOnce(&mut Vec<GdRecord>)) {
        if let Some(d) = lock(&self.shared.state).domains.get_mut(domain) {
            f(d);
        }
    }

    /// Runs `f` on the domain's records right after the next successful
    /// replacement at a name: another writer acting before maildns reads back.
    pub fn after_next_put(&self, f: impl FnOnce(&mut Vec<GdRecord>) + Send + 'static) {
        lock(&self.shared.state).after_put = Some(Box::new(f));
    }

    /// Valid keys get 403 `ACCESS_DENIED` (an account under GoDaddy's API threshold).
    pub fn deny_access(&self, on: bool) {
        lock(&self.shared.state).deny_access = on;
    }

    /// An absent name answers 404 instead of `[]`.
    pub fn absent_is_404(&self, on: bool) {
        lock(&self.shared.state).absent_is_404 = on;
    }

    /// Allows `n` requests per endpoint per `window`.
    pub fn set_rate_limit(&self, n: u32, window: Duration) {
        let mut st = lock(&self.shared.state);
        st.limit = n;
        st.window = window;
        st.counters.clear();
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

    /// The next `n` requests fail with `status` in GoDaddy's body.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }
}

fn err(status: u16, code: &str, message: &str) -> Response {
    kit::respond(
        status,
        "application/json",
        json!({"code": code, "message": message}).to_string(),
        &[],
    )
}

fn ok(status: u16, v: Value) -> Response {
    kit::respond(status, "application/json", v.to_string(), &[])
}

fn invalid(field_code: &str, message: &str, path: &str) -> Value {
    json!({"code": "INVALID_BODY", "message": "Request body doesn't fulfill schema, see details in `fields`",
        "fields": [{"code": field_code, "message": message, "path": path}]})
}

fn record_json(r: &GdRecord) -> Value {
    json!({"data": r.data, "name": r.name, "ttl": r.ttl, "type": r.kind})
}

/// Validated records from a body: an array of `{data, ttl[, name, type]}`.
fn parse_records(
    bytes: &[u8],
    name: Option<&str>,
    kind: Option<&str>,
) -> Result<Vec<GdRecord>, Value> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(invalid("UNEXPECTED_TYPE", "expected an array", "records"));
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Some(data) = it["data"].as_str() else {
            return Err(invalid(
                "MISSING",
                "data is required",
                &format!("records[{i}].data"),
            ));
        };
        if data.chars().count() > MAX_DATA {
            return Err(invalid(
                "UNEXPECTED_LENGTH",
                &format!("data is longer than {MAX_DATA}"),
                &format!("records[{i}].data"),
            ));
        }
        let ttl = it["ttl"].as_u64().unwrap_or(3600);
        if ttl < MIN_TTL {
            // GoDaddy's own words for it (its swagger declares no minimum):
            // https://github.com/win-acme/win-acme/issues/1947 (2021), the
            // same in josteink/le-godaddy-dns#1 (2016).
            return Err(invalid(
                "UNKNOWN_RESTRICTION",
                &format!("must have a minimum value of {MIN_TTL}"),
                &format!("records[{i}].ttl"),
            ));
        }
        let (Some(n), Some(k)) = (name.or(it["name"].as_str()), kind.or(it["type"].as_str()))
        else {
            return Err(invalid(
                "MISSING",
                "name and type are required",
                &format!("records[{i}]"),
            ));
        };
        out.push(GdRecord {
            name: n.to_string(),
            kind: k.to_ascii_uppercase(),
            data: data.to_string(),
            ttl: ttl as u32,
        });
    }
    Ok(out)
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut st = lock(&s.state);
    s.record(&method, &uri, &headers, &bytes);
    let auth_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == st.auth);
    if !auth_ok {
        return err(401, "UNABLE_TO_AUTHENTICATE", "Unable to authenticate");
    }
    if st.deny_access {
        return err(
            403,
            "ACCESS_DENIED",
            "Authenticated user is not allowed access",
        );
    }
    if let Some(f) = s.faults.take() {
        return match f.status() {
            429 => ok(
                429,
                json!({"code": "TOO_MANY_REQUESTS", "message": "Too many requests", "retryAfterSec": 1}),
            ),
            500..=599 => err(f.status(), "INTERNAL_SERVER_ERROR", "Internal server error"),
            st => err(st, "INJECTED", &format!("HTTP {st} (injected)")),
        };
    }
    let seg: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(kit::percent_decode)
        .collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    // Per endpoint (method and route shape) and window.
    let endpoint = format!(
        "{method} {}",
        seg.iter()
            .enumerate()
            .map(|(i, p)| if i == 2 || i >= 4 { "*" } else { p })
            .collect::<Vec<_>>()
            .join("/")
    );
    let (limit, window) = (st.limit, st.window);
    let c = st.counters.entry(endpoint).or_insert((Instant::now(), 0));
    if c.0.elapsed() >= window {
        *c = (Instant::now(), 0);
    }
    c.1 += 1;
    if c.1 > limit {
        return ok(
            429,
            json!({"code": "TOO_MANY_REQUESTS", "message": "Too many requests",
                "retryAfterSec": window.saturating_sub(c.0.elapsed()).as_secs().max(1)}),
        );
    }
    let absent_is_404 = st.absent_is_404;
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["v1", "domains", d]) => match st.domains.get(*d) {
            Some(_) => ok(
                200,
                json!({"domain": d, "domainId": 1, "status": "ACTIVE", "nameServers": ["ns1.domaincontrol.com", "ns2.domaincontrol.com"]}),
            ),
            None => err(
                404,
                "NOT_FOUND",
                "The given domain is not registered, or does not have a zone file",
            ),
        },
        (_, ["v1", "domains", d, "records", ..]) if !st.domains.contains_key(*d) => err(
            404,
            "NOT_FOUND",
            "The given domain is not registered, or does not have a zone file",
        ),
        ("GET", ["v1", "domains", d, "records", rest @ ..]) if rest.len() <= 2 => {
            let recs = &st.domains[*d];
            let found: Vec<Value> = recs
                .iter()
                .filter(|r| rest.first().is_none_or(|t| r.kind.eq_ignore_ascii_case(t)))
                .filter(|r| rest.get(1).is_none_or(|n| r.name.eq_ignore_ascii_case(n)))
                .map(record_json)
                .collect();
            if found.is_empty() && rest.len() == 2 && absent_is_404 {
                return err(404, "NOT_FOUND", "Not Found");
            }
            ok(200, Value::Array(found))
        }
        ("PUT", ["v1", "domains", d, "records", kind, name]) => {
            let new = match parse_records(&bytes, Some(name), Some(kind)) {
                Ok(n) => n,
                Err(v) => return ok(422, v),
            };
            let hook = st.after_put.take();
            let Some(recs) = st.domains.get_mut(*d) else {
                return err(404, "NOT_FOUND", "Not Found");
            };
            // Replace every value at this name and type, in place of the first.
            let at = recs
                .iter()
                .position(|r| {
                    r.kind.eq_ignore_ascii_case(kind) && r.name.eq_ignore_ascii_case(name)
                })
                .unwrap_or(recs.len());
            recs.retain(|r| {
                !(r.kind.eq_ignore_ascii_case(kind) && r.name.eq_ignore_ascii_case(name))
            });
            let at = at.min(recs.len());
            recs.splice(at..at, new);
            if let Some(h) = hook {
                h(recs);
            }
            ok(200, Value::Null)
        }
        ("DELETE", ["v1", "domains", d, "records", kind, name]) => {
            let Some(recs) = st.domains.get_mut(*d) else {
                return err(404, "NOT_FOUND", "Not Found");
            };
            let before = recs.len();
            recs.retain(|r| {
                !(r.kind.eq_ignore_ascii_case(kind) && r.name.eq_ignore_ascii_case(name))
            });
            if recs.len() == before {
                return err(404, "NOT_FOUND", "Not Found");
            }
            let mut r = ok(204, Value::Null);
            *r.body_mut() = axum::body::Body::empty();
            r
        }
        ("PUT", ["v1", "domains", d, "records"]) => {
            s.tripwire
                .hit(format!("PUT {path} (replaces the whole zone)"));
            match parse_records(&bytes, None, None) {
                Ok(new) => {
                    st.domains.insert((*d).to_string(), new);
                    ok(200, Value::Null)
                }
                Err(v) => ok(422, v),
            }
        }
        ("PUT", ["v1", "domains", d, "records", kind]) => {
            s.tripwire
                .hit(format!("PUT {path} (replaces every record of the type)"));
            match parse_records(&bytes, None, Some(kind)) {
                Ok(new) => {
                    if let Some(recs) = st.domains.get_mut(*d) {
                        recs.retain(|r| !r.kind.eq_ignore_ascii_case(kind));
                        recs.extend(new);
                    }
                    ok(200, Value::Null)
                }
                Err(v) => ok(422, v),
            }
        }
        ("PATCH", ["v1", "domains", d, "records"]) => {
            s.tripwire.hit(format!("PATCH {path} (adds records)"));
            match parse_records(&bytes, None, None) {
                Ok(new) => {
                    if let Some(recs) = st.domains.get_mut(*d) {
                        recs.extend(new);
                    }
                    ok(200, Value::Null)
                }
                Err(v) => ok(422, v),
            }
        }
        _ => {
            s.tripwire
                .hit(format!("{method} {path} (not an endpoint maildns uses)"));
            err(404, "NOT_FOUND", "Not Found")
        }
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeGoDaddy {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .domains
            .get(zone)
            .into_iter()
            .flatten()
            .filter(|r| r.kind == "TXT")
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for r in st
            .domains
            .get(zone)
            .into_iter()
            .flatten()
            .filter(|r| r.kind == "TXT")
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

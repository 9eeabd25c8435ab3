//! A stateful fake of netcup's CCP web service (JSON flavour, DNS functions) on
//! 127.0.0.1.
//!
//! Quirks reproduced (shared/notes/provider-apis-2.md §12): one endpoint,
//! `POST /run/webservice/servers/endpoint.php?JSON`, body `{"action","param"}`;
//! `login` checks customer number, API key and API password and hands out an
//! `apisessionid`, `logout` ends it, and every other call must carry a live one
//! (4001 "The session id is not in a valid format." otherwise; a test may expire
//! them all, as netcup does now and then); EVERY answer is HTTP 200, failures
//! being `"status":"error"` with a `statuscode`; `updateDnsRecords` applies
//! entries by id / without id / `deleterecord` and answers the zone's records
//! after the change; empty hostnames and backslashes are refused with 4013; no
//! record has its own TTL (the zone's is served); more than a configurable number
//! of requests per minute (180 by default) answers "More than 180 requests per
//! minute"; a "CloudDNS" zone answers 5028 to this API.
//!
//! `updateDnsZone` (the zone's TTL, serial, ... for every record) is implemented
//! and recorded: a fake on which it was called panics when dropped, failing the
//! test, unless the test took the calls with [`FakeNetcup::take_broad_calls`].

use std::collections::{BTreeSet, VecDeque};
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

/// The throttling text netcup answers (inside an HTTP 200).
pub const THROTTLE_TEXT: &str = "More than 180 requests per minute. Please wait and retry later.";

/// One stored record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id (served as a string).
    pub id: u64,
    /// The zone.
    pub zone: String,
    /// Host name relative to the zone, `@` for the apex.
    pub hostname: String,
    /// Record type.
    pub kind: String,
    /// Priority as stored.
    pub priority: String,
    /// Destination as stored.
    pub destination: String,
}

#[derive(Debug, Default)]
struct St {
    customer: String,
    api_key: String,
    password: String,
    // zone -> TTL
    zones: Vec<(String, u32)>,
    clouddns: BTreeSet<String>,
    records: Vec<StoredRecord>,
    next_id: u64,
    sessions: BTreeSet<String>,
    logins: usize,
    logouts: usize,
    next_session: u64,
    per_minute: Option<usize>,
    recent: VecDeque<Instant>,
    flaky_sessions: usize,
}

type Shared = kit::Shared<St>;

/// The running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeNetcup {
    /// The endpoint to give the adapter:
    /// `http://127.0.0.1:<port>/run/webservice/servers/endpoint.php?JSON`.
    pub url: String,
    shared: Shared,
    _task: ServerTask,
}

impl Drop for FakeNetcup {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

impl FakeNetcup {
    /// Starts the fake for one customer; throttles above 180 requests a minute.
    pub async fn start(customer: &str, api_key: &str, password: &str) -> Self {
        let state = Arc::new(Mutex::new(St {
            customer: customer.to_string(),
            api_key: api_key.to_string(),
            password: password.to_string(),
            next_id: 5_852_000,
            per_minute: Some(180),
            ..St::default()
        }));
        let shared = Shared::new(
            state.clone(),
            Tripwire::saying("the adapter called netcup's zone-wide updateDnsZone"),
        );
        let (addr, task) = shared.serve(handle).await;
        FakeNetcup {
            url: format!("http://{addr}/run/webservice/servers/endpoint.php?JSON"),
            shared,
            _task: task,
        }
    }

    /// Adds a zone with its TTL and the A and MX records a new zone has.
    pub fn add_zone(&self, zone: &str, ttl: u32) {
        lock(&self.shared.state).zones.push((zone.to_string(), ttl));
        self.add_record(zone, "@", "A", "192.0.2.80");
        self.add_record(zone, "@", "MX", "mail.example.net");
    }

    /// Adds a zone moved to CloudDNS: this API answers 5028 for it.
    pub fn add_clouddns_zone(&self, zone: &str) {
        lock(&self.shared.state).clouddns.insert(zone.to_string());
    }

    /// Stores a record directly (`hostname` relative); returns its id.
    pub fn add_record(&self, zone: &str, hostname: &str, kind: &str, destination: &str) -> u64 {
        let mut st = lock(&self.shared.state);
        st.next_id += 1;
        let id = st.next_id;
        st.records.push(StoredRecord {
            id,
            zone: zone.to_string(),
            hostname: hostname.to_string(),
            kind: kind.to_string(),
            priority: if kind == "MX" { "10" } else { "" }.to_string(),
            destination: destination.to_string(),
        });
        id
    }

    /// The TXT records of `zone` at relative `hostname`, in creation order.
    pub fn txt(&self, zone: &str, hostname: &str) -> Vec<StoredRecord> {
        self.records(zone)
            .into_iter()
            .filter(|r| r.kind == "TXT" && r.hostname == hostname)
            .collect()
    }

    /// Every record of `zone`, in creation order.
    pub fn records(&self, zone: &str) -> Vec<StoredRecord> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.zone == zone)
            .cloned()
            .collect()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// The `action` of every request so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.json()["action"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Logins and logouts served so far, and the sessions still open.
    pub fn sessions(&self) -> (usize, usize, usize) {
        let st = lock(&self.shared.state);
        (st.logins, st.logouts, st.sessions.len())
    }

    /// Invalidates every open session (netcup's sporadic 4001).
    pub fn expire_sessions(&self) {
        lock(&self.shared.state).sessions.clear();
    }

    /// The next `n` calls made in a session are answered 4001 (invalid session)
    /// even when it is live: netcup's sporadic complaint.
    pub fn refuse_sessions_next(&self, n: usize) {
        lock(&self.shared.state).flaky_sessions = n;
    }

    /// The zone-wide calls seen so far (emptied, so the fake drops quietly).
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.shared.tripwire.take()
    }

    /// Requests allowed per minute before the throttling answer (`None`: no limit).
    pub fn set_per_minute(&self, n: Option<usize>) {
        let mut st = lock(&self.shared.state);
        st.per_minute = n;
        st.recent.clear();
    }

    /// The next `n` requests get netcup's throttling answer (HTTP 200, status error).
    pub fn throttle_next(&self, n: usize) {
        self.shared
            .faults
            .push(Fault::Throttle { retry_after: 0 }, n);
    }

    /// The next `n` requests fail with HTTP `status` (a proxy's page, not JSON).
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }
}

fn envelope(
    action: &str,
    status: &str,
    code: u32,
    short: &str,
    long: &str,
    data: Value,
) -> Response {
    let body = json!({"serverrequestid": "FAKE", "clientrequestid": "", "action": action,
        "status": status, "statuscode": code, "shortmessage": short, "longmessage": long,
        "responsedata": data});
    kit::respond(200, "application/json", body.to_string(), &[])
}

fn ok(action: &str, short: &str, data: Value) -> Response {
    envelope(action, "success", 2000, short, "", data)
}

fn fail(action: &str, code: u32, short: &str, long: &str) -> Response {
    envelope(action, "error", code, short, long, json!(""))
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id": r.id.to_string(), "hostname": r.hostname, "type": r.kind,
        "priority": r.priority, "destination": r.destination, "deleterecord": false,
        "state": "yes"})
}

fn records_of(st: &St, zone: &str) -> Value {
    let recs: Vec<Value> = st
        .records
        .iter()
        .filter(|r| r.zone == zone)
        .map(record_json)
        .collect();
    json!({ "dnsrecords": recs })
}

async fn handle(
    State(sh): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&sh.state);
    sh.record(&method, &uri, &headers, &body);
    if let Some(f) = sh.faults.take() {
        return match f {
            Fault::Throttle { .. } => fail("", 4013, "Validation Error.", THROTTLE_TEXT),
            Fault::Status(s) => kit::respond(
                s,
                "text/html",
                format!("<html><body><h1>{s}</h1></body></html>"),
                &[],
            ),
        };
    }
    if let Some(n) = st.per_minute {
        let now = Instant::now();
        while st
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            st.recent.pop_front();
        }
        if st.recent.len() >= n {
            return fail("", 4013, "Validation Error.", THROTTLE_TEXT);
        }
        st.recent.push_back(now);
    }
    if method != Method::POST
        || uri.path() != "/run/webservice/servers/endpoint.php"
        || uri.query() != Some("JSON")
    {
        return kit::respond(404, "text/html", "<html>Not Found</html>".into(), &[]);
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return fail(
            "",
            4013,
            "Validation Error.",
            "The request is not valid JSON.",
        );
    };
    let action = v["action"].as_str().unwrap_or("").to_string();
    let p = &v["param"];
    let s = |k: &str| -> String {
        match &p[k] {
            Value::String(x) => x.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    };
    if action == "login" {
        if s("customernumber") != st.customer
            || s("apikey") != st.api_key
            || s("apipassword") != st.password
        {
            return fail(
                &action,
                4013,
                "Validation Error.",
                "The login data is wrong: customer number, API key or API password.",
            );
        }
        st.next_session += 1;
        let id = format!("fakeSession{:016x}", st.next_session * 7_919);
        st.sessions.insert(id.clone());
        st.logins += 1;
        return ok(&action, "Login successful", json!({ "apisessionid": id }));
    }
    let flaky = st.flaky_sessions > 0;
    st.flaky_sessions = st.flaky_sessions.saturating_sub(1);
    if s("customernumber") != st.customer
        || s("apikey") != st.api_key
        || !st.sessions.contains(&s("apisessionid"))
        || flaky
    {
        return fail(
            &action,
            4001,
            "Api session id in invalid format",
            "The session id is not in a valid format.",
        );
    }
    if action == "logout" {
        st.sessions.remove(&s("apisessionid"));
        st.logouts += 1;
        return ok(&action, "Logout successful", json!(""));
    }
    let zone = s("domainname");
    if st.clouddns.contains(&zone) || !st.zones.iter().any(|(z, _)| *z == zone) {
        return fail(
            &action,
            5028,
            "Zone not found",
            &format!("Update of DNS records failed. The zone {zone} could not be found."),
        );
    }
    let ttl = st
        .zones
        .iter()
        .find(|(z, _)| *z == zone)
        .map_or(86400, |(_, t)| *t);
    match action.as_str() {
        "infoDnsZone" => ok(
            &action,
            "DNS zone found",
            json!({"name": zone, "ttl": ttl.to_string(), "serial": "2026113001",
                "refresh": "28800", "retry": "7200", "expire": "1209600",
                "dnssecstatus": false}),
        ),
        "infoDnsRecords" => {
            let data = records_of(&st, &zone);
            ok(&action, "DNS records found", data)
        }
        "updateDnsZone" => {
            sh.tripwire.hit(format!("updateDnsZone {zone}"));
            if let Some(t) = p["dnszone"]["ttl"].as_str().and_then(|t| t.parse().ok())
                && let Some(z) = st.zones.iter_mut().find(|(z, _)| *z == zone)
            {
                z.1 = t;
            }
            ok(&action, "DNS zone was updated successfully", json!(""))
        }
        "updateDnsRecords" => {
            let Some(entries) = p["dnsrecordset"]["dnsrecords"].as_array() else {
                return fail(
                    &action,
                    4013,
                    "Validation Error.",
                    "dnsrecordset is missing.",
                );
            };
            // Validate everything first: netcup answers one error for the call.
            for e in entries {
                let host = e["hostname"].as_str().unwrap_or("");
                if host.is_empty() {
                    return fail(
                        &action,
                        4013,
                        "Validation Error.",
                        "der Host darf nicht leer sein. Bitte verwenden Sie @ für die Domain selbst.",
                    );
                }
                if e["destination"].as_str().unwrap_or("").contains('\\') {
                    return fail(
                        &action,
                        4013,
                        "Validation Error.",
                        "Please add quotation marks before the backslash; the name server quotes the value itself.",
                    );
                }
                if e["type"].as_str().unwrap_or("").is_empty() {
                    return fail(
                        &action,
                        4013,
                        "Validation Error.",
                        "Value in field type is not allowed.",
                    );
                }
                if let Some(id) = e["id"].as_str()
                    && !st
                        .records
                        .iter()
                        .any(|r| r.zone == zone && r.id.to_string() == id)
                {
                    return fail(
                        &action,
                        5030,
                        "Record not found",
                        &format!("The DNS record {id} could not be found."),
                    );
                }
            }
            for e in entries {
                let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
                match (
                    e["id"].as_str(),
                    e["deleterecord"].as_bool().unwrap_or(false),
                ) {
                    (Some(id), true) => st
                        .records
                        .retain(|r| !(r.zone == zone && r.id.to_string() == id)),
                    (Some(id), false) => {
                        if let Some(r) = st
                            .records
                            .iter_mut()
                            .find(|r| r.zone == zone && r.id.to_string() == id)
                        {
                            r.hostname = field("hostname");
                            r.kind = field("type");
                            r.priority = field("priority");
                            r.destination = field("destination");
                        }
                    }
                    (None, _) => {
                        st.next_id += 1;
                        let id = st.next_id;
                        st.records.push(StoredRecord {
                            id,
                            zone: zone.clone(),
                            hostname: field("hostname"),
                            kind: field("type"),
                            priority: field("priority"),
                            destination: field("destination"),
                        });
                    }
                }
            }
            let data = records_of(&st, &zone);
            ok(&action, "DNS records successful updated", data)
        }
        _ => fail(&action, 4013, "Validation Error.", "Unknown action."),
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeNetcup {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.zone == zone && r.kind == "TXT")
            .map(|r| format!("{} {} {}", r.hostname, r.priority, r.destination))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        let ttl = st
            .zones
            .iter()
            .find(|(z, _)| z == zone)
            .map_or(86400, |(_, t)| *t);
        for r in st
            .records
            .iter()
            .filter(|r| r.zone == zone && r.kind == "TXT")
        {
            super::served::add(
                &mut out,
                zone,
                &r.hostname,
                ttl,
                super::served::wire_value(&r.destination),
            );
        }
        out
    }
}

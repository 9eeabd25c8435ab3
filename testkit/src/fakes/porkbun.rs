//! A stateful fake of Porkbun's JSON API v3 (DNS part) on 127.0.0.1.
//!
//! Quirks reproduced (shared/notes/provider-apis-2.md §7): every call is a POST
//! whose JSON body carries `apikey` and `secretapikey` (other methods are refused);
//! a domain must be opted in to API access (`{"status":"ERROR","message":"Domain is
//! not opted in to API access."}`, HTTP 400); requests name the subdomain
//! relative, answers give `name` as the FQDN and `ttl`/`prio` as strings; a TTL
//! under the account's minimum (600, Porkbun's usual one), absent or 0 is stored
//! as that minimum, without an error (see [`MIN_TTL`]); a duplicate create gets
//! the vague "We were unable to create the
//! DNS record."; throttling (a configurable rate, or an injected
//! [`Fault::Throttle`]) is HTTP 503 with an HTML page, never 429.
//!
//! The broad forms `editByNameType` and `deleteByNameType` are implemented with
//! their real effect (every record of that name and type) and recorded: a fake
//! on which one was called panics when dropped, failing the test, unless the test
//! took them with [`FakePorkbun::take_broad_calls`].

use std::collections::VecDeque;
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

/// The HTML page Porkbun's proxy answers when a key sends too fast.
pub const THROTTLE_PAGE: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n";

/// The account's minimum TTL. Porkbun's OpenAPI spec
/// (<https://porkbun.com/api/json/v3/spec>, `CreateDnsRequest.ttl`): "Minimum
/// is determined by account settings (typically 600). Defaults to the account
/// minimum if omitted or 0." A lower TTL is not refused but raised to it
/// (infinityofspace/pkb_client's README: TTLs under 600 "are ignored by the
/// Porkbun API"; certbot_dns_porkbun#50; dnscontrol raises them itself).
pub const MIN_TTL: u64 = 600;

/// One stored record, exactly as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id (numeric, served as a string).
    pub id: u64,
    /// The domain.
    pub domain: String,
    /// Owner name, fully qualified, lowercased.
    pub name: String,
    /// Record type.
    pub kind: String,
    /// `content` as stored.
    pub content: String,
    /// TTL.
    pub ttl: u64,
}

#[derive(Debug, Default)]
struct St {
    api_key: String,
    secret_key: String,
    domains: Vec<(String, bool)>,
    records: Vec<StoredRecord>,
    next_id: u64,
    rate: Option<(usize, Duration)>,
    recent: VecDeque<Instant>,
}

type Shared = kit::Shared<St>;

/// The running fake; stops when dropped.
#[derive(Debug)]
pub struct FakePorkbun {
    /// Base URL to give the adapter: `http://127.0.0.1:<port>/api/json/v3`.
    pub url: String,
    shared: Shared,
    _task: ServerTask,
}

impl Drop for FakePorkbun {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

impl FakePorkbun {
    /// Starts the fake; calls must carry `apikey` and `secretapikey` in their body.
    pub async fn start(api_key: &str, secret_key: &str) -> Self {
        let state = Arc::new(Mutex::new(St {
            api_key: api_key.to_string(),
            secret_key: secret_key.to_string(),
            next_id: 106_926_000,
            ..St::default()
        }));
        let shared = Shared::new(
            state.clone(),
            Tripwire::saying(
                "the adapter called Porkbun's by-name-and-type endpoints, which touch every TXT value at a name",
            ),
        );
        let (addr, task) = shared.serve(handle).await;
        FakePorkbun {
            url: format!("http://{addr}/api/json/v3"),
            shared,
            _task: task,
        }
    }

    /// Adds a domain of the account, opted in to API access or not, with the
    /// NS records Porkbun puts at every apex.
    pub fn add_domain(&self, domain: &str, api_access: bool) {
        let mut st = lock(&self.shared.state);
        st.domains.push((domain.to_ascii_lowercase(), api_access));
        for ns in ["curitiba.ns.porkbun.com", "fortaleza.ns.porkbun.com"] {
            st.next_id += 1;
            let id = st.next_id;
            st.records.push(StoredRecord {
                id,
                domain: domain.to_ascii_lowercase(),
                name: domain.to_ascii_lowercase(),
                kind: "NS".into(),
                content: ns.into(),
                ttl: 86400,
            });
        }
    }

    /// Stores a TXT record directly (`name` fully qualified); returns its id.
    pub fn add_txt(&self, domain: &str, name: &str, content: &str, ttl: u64) -> u64 {
        let mut st = lock(&self.shared.state);
        st.next_id += 1;
        let id = st.next_id;
        st.records.push(StoredRecord {
            id,
            domain: domain.to_string(),
            name: name.to_ascii_lowercase(),
            kind: "TXT".into(),
            content: content.to_string(),
            ttl,
        });
        id
    }

    /// The TXT records at `name` (fully qualified), in creation order.
    pub fn txt(&self, name: &str) -> Vec<StoredRecord> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.kind == "TXT" && r.name == name)
            .cloned()
            .collect()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// The by-name-and-type calls seen so far (emptied, so the fake drops quietly).
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.shared.tripwire.take()
    }

    /// Answers HTTP 503 HTML to any request beyond `requests` within `per`
    /// (Porkbun's throttling; the real figure is about 1 per second per key).
    pub fn set_rate_limit(&self, requests: usize, per: Duration) {
        let mut st = lock(&self.shared.state);
        st.rate = Some((requests, per));
        st.recent.clear();
    }

    /// The next `n` requests fail with `status` and Porkbun's JSON error body.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }

    /// The next `n` requests get Porkbun's throttling answer: HTTP 503, HTML.
    pub fn throttle_next(&self, n: usize) {
        self.shared
            .faults
            .push(Fault::Throttle { retry_after: 0 }, n);
    }
}

fn error(status: u16, message: &str) -> Response {
    kit::respond(
        status,
        "application/json",
        json!({"status": "ERROR", "message": message}).to_string(),
        &[],
    )
}

fn success(mut body: Value) -> Response {
    if let Value::Object(m) = &mut body {
        m.insert("status".into(), json!("SUCCESS"));
    }
    kit::respond(200, "application/json", body.to_string(), &[])
}

fn throttled() -> Response {
    kit::respond(503, "text/html", THROTTLE_PAGE.to_string(), &[])
}

fn record_json(r: &StoredRecord) -> Value {
    json!({"id": r.id.to_string(), "name": r.name, "type": r.kind, "content": r.content,
        "ttl": r.ttl.to_string(), "prio": "0", "notes": ""})
}

fn fqdn(domain: &str, sub: &str) -> String {
    if sub.is_empty() {
        domain.to_string()
    } else {
        format!("{}.{domain}", sub.to_ascii_lowercase())
    }
}

/// The TTL a create or edit stores: the one sent, raised to the account's
/// minimum (absent and 0 included); `None` for one that is not a number.
fn ttl_of(v: &Value) -> Option<u64> {
    let ttl = match v {
        Value::Null => 0,
        Value::String(s) if s.is_empty() => 0,
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    Some(ttl.max(MIN_TTL))
}

async fn handle(
    State(sh): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut st = lock(&sh.state);
    sh.record(&method, &uri, &headers, &body);
    if let Some((n, per)) = st.rate {
        let now = Instant::now();
        while st
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= per)
        {
            st.recent.pop_front();
        }
        if st.recent.len() >= n {
            return throttled();
        }
        st.recent.push_back(now);
    }
    if let Some(f) = sh.faults.take() {
        return match f {
            Fault::Throttle { .. } => throttled(),
            Fault::Status(s) => error(s, &format!("HTTP {s} (injected)")),
        };
    }
    if method != Method::POST {
        return error(405, "Only POST requests are accepted.");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "Invalid JSON.");
    };
    if v["apikey"].as_str() != Some(st.api_key.as_str())
        || v["secretapikey"].as_str() != Some(st.secret_key.as_str())
    {
        return error(400, "Invalid API key. (002)");
    }
    let Some(rest) = path.strip_prefix("/api/json/v3/") else {
        return error(404, "Invalid endpoint.");
    };
    let parts: Vec<String> = rest.split('/').map(kit::percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    if parts == ["ping"] {
        return success(json!({"yourIp": "127.0.0.1"}));
    }
    let (Some(&"dns"), Some(call), Some(domain)) = (parts.first(), parts.get(1), parts.get(2))
    else {
        return error(404, "Invalid endpoint.");
    };
    let domain = domain.to_ascii_lowercase();
    match st.domains.iter().find(|(d, _)| *d == domain) {
        None => return error(400, "Invalid domain."),
        Some((_, false)) => return error(400, "Domain is not opted in to API access."),
        Some(_) => {}
    }
    let args = &parts[3..];
    match (*call, args) {
        ("retrieve", []) => {
            let recs: Vec<Value> = st
                .records
                .iter()
                .filter(|r| r.domain == domain)
                .map(record_json)
                .collect();
            success(json!({"records": recs}))
        }
        ("retrieve", [id]) => {
            let recs: Vec<Value> = st
                .records
                .iter()
                .filter(|r| r.domain == domain && r.id.to_string() == *id)
                .map(record_json)
                .collect();
            success(json!({"records": recs}))
        }
        ("retrieveByNameType", [kind, sub @ ..]) if sub.len() <= 1 => {
            let name = fqdn(&domain, sub.first().copied().unwrap_or(""));
            let recs: Vec<Value> = st
                .records
                .iter()
                .filter(|r| r.domain == domain && r.name == name && r.kind == *kind)
                .map(record_json)
                .collect();
            success(json!({"records": recs}))
        }
        ("create", []) => {
            let (Some(kind), Some(content)) = (v["type"].as_str(), v["content"].as_str()) else {
                return error(400, "Record type and content are required.");
            };
            let name = fqdn(&domain, v["name"].as_str().unwrap_or(""));
            let Some(ttl) = ttl_of(&v["ttl"]) else {
                return error(400, "Invalid TTL.");
            };
            if st
                .records
                .iter()
                .any(|r| r.name == name && r.kind == kind && r.content == content)
            {
                return error(400, "We were unable to create the DNS record.");
            }
            st.next_id += 1;
            let id = st.next_id;
            st.records.push(StoredRecord {
                id,
                domain,
                name,
                kind: kind.to_string(),
                content: content.to_string(),
                ttl,
            });
            success(json!({ "id": id }))
        }
        ("edit", [id]) => {
            let (Some(kind), Some(content)) = (v["type"].as_str(), v["content"].as_str()) else {
                return error(400, "Record type and content are required.");
            };
            let name = fqdn(&domain, v["name"].as_str().unwrap_or(""));
            let Some(ttl) = ttl_of(&v["ttl"]) else {
                return error(400, "Invalid TTL.");
            };
            let Some(r) = st
                .records
                .iter_mut()
                .find(|r| r.domain == domain && r.id.to_string() == *id)
            else {
                return error(400, "Invalid record ID.");
            };
            r.name = name;
            r.kind = kind.to_string();
            r.content = content.to_string();
            r.ttl = ttl;
            success(json!({}))
        }
        ("delete", [id]) => {
            let before = st.records.len();
            st.records
                .retain(|r| !(r.domain == domain && r.id.to_string() == *id));
            if st.records.len() == before {
                return error(400, "Invalid record ID.");
            }
            success(json!({}))
        }
        ("editByNameType", [kind, sub @ ..]) if sub.len() <= 1 => {
            let name = fqdn(&domain, sub.first().copied().unwrap_or(""));
            sh.tripwire.hit(format!("editByNameType {name} {kind}"));
            let content = v["content"].as_str().unwrap_or("").to_string();
            let ttl = ttl_of(&v["ttl"]).unwrap_or(MIN_TTL);
            for r in st
                .records
                .iter_mut()
                .filter(|r| r.domain == domain && r.name == name && r.kind == *kind)
            {
                r.content = content.clone();
                r.ttl = ttl;
            }
            success(json!({}))
        }
        ("deleteByNameType", [kind, sub @ ..]) if sub.len() <= 1 => {
            let name = fqdn(&domain, sub.first().copied().unwrap_or(""));
            sh.tripwire.hit(format!("deleteByNameType {name} {kind}"));
            st.records
                .retain(|r| !(r.domain == domain && r.name == name && r.kind == *kind));
            success(json!({}))
        }
        _ => error(404, "Invalid endpoint."),
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakePorkbun {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .records
            .iter()
            .filter(|r| r.domain == zone && r.kind == "TXT")
            .map(|r| format!("{} {} {}", r.name, r.ttl, r.content))
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for r in st
            .records
            .iter()
            .filter(|r| r.domain == zone && r.kind == "TXT")
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

//! A stateful fake of the Route 53 REST-XML API (2013-04-01) on 127.0.0.1.
//!
//! Follows the documented shapes and quirks: listings *start at* the name asked
//! for (`hostedzonesbyname`, `rrset`), names come back with a trailing dot and
//! `\ooo` escapes for characters other than `a-z0-9-_`, a change batch applies
//! as a whole, `DELETE` must repeat the existing set exactly (else
//! `InvalidChangeBatch`), TXT values must be quoted strings of at most 255
//! characters (`CharacterStringTooLong`), changes go `PENDING` -> `INSYNC`, and
//! throttling is HTTP 400 `<Code>Throttling</Code>`.
//!
//! As strict as the host where a lenient fake would hide a bug:
//! - every request's SigV4 signature is recomputed with `aws-sigv4` from the
//!   method, URL, signed headers, body and `X-Amz-Date`, and compared
//!   (`SignatureDoesNotMatch` otherwise), not only the access key id;
//! - values are stored as sent and listed as stored, and a `DELETE` must repeat
//!   them byte for byte (the TTL too): a value another tool wrote as `"a"  "b"`
//!   or `"\101"` is deleted only by echoing that text;
//! - a request over Route 53's batch limits (1,000 `ResourceRecord` elements,
//!   32,000 value characters, an `UPSERT` counted twice) is refused whole with
//!   `InvalidChangeBatch` `[Number of records limit of 1000 exceeded.]` or
//!   `[RDATA character limit of 32000 exceeded.]`, AWS's own wording;
//! - a batch that does not apply answers as the real host does,
//!   `<ErrorResponse><Error><Code>InvalidChangeBatch</Code><Message>[Tried to
//!   delete resource record set [name='…', type='TXT'] but it was not found]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

const NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// One TXT (or other) record set as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSet {
    /// TTL.
    pub ttl: i64,
    /// Records, each a list of character-strings (raw bytes).
    pub records: Vec<Vec<Vec<u8>>>,
    /// Each record's `<Value>` exactly as it was written (and as it is listed).
    pub raw: Vec<String>,
}

#[derive(Debug, Clone)]
struct FakeZone {
    id: String,
    name: String,
    private: bool,
}

type SetKey = (String, Vec<String>, String);

#[derive(Debug, Default)]
struct St {
    access_key_id: String,
    secret_access_key: String,
    zones: Vec<FakeZone>,
    // (zone id, reversed-label key, type) -> (dotted name, set)
    sets: BTreeMap<(String, Vec<String>, String), (String, FakeSet)>,
    changes: HashMap<String, u32>,
    insync_after: u32,
    next_id: u32,
    /// Route 53's per-account request rate, when enforced: at most `.0` requests
    /// in any `.1` (arrival times kept in `arrivals`).
    rate: Option<(usize, std::time::Duration)>,
    arrivals: std::collections::VecDeque<std::time::Instant>,
    throttled: usize,
}

/// The running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeRoute53 {
    /// Base URL to give the adapter: `http://127.0.0.1:<port>/2013-04-01`.
    pub url: String,
    shared: Shared,
    _task: ServerTask,
}

type Shared = kit::Shared<St>;

fn dotted(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

fn key(name: &str) -> Vec<String> {
    let mut l: Vec<String> = name
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .split('.')
        .map(str::to_string)
        .collect();
    l.reverse();
    l
}

impl FakeRoute53 {
    /// Starts the fake; requests must be signed (SigV4) with this access key.
    pub async fn start(access_key_id: &str, secret_access_key: &str) -> Self {
        let state = Arc::new(Mutex::new(St {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            insync_after: 1,
            ..St::default()
        }));
        let shared = Shared::new(state.clone(), Tripwire::default());
        let (addr, task) = shared.serve(handle).await;
        FakeRoute53 {
            url: format!("http://{addr}/2013-04-01"),
            shared,
            _task: task,
        }
    }

    /// Adds a public hosted zone (with SOA and NS sets at its apex); returns its bare id.
    pub fn add_zone(&self, name: &str) -> String {
        self.add(name, false)
    }

    /// Adds a private hosted zone of that name; returns its bare id.
    pub fn add_private_zone(&self, name: &str) -> String {
        self.add(name, true)
    }

    fn add(&self, name: &str, private: bool) -> String {
        let mut st = lock(&self.shared.state);
        st.next_id += 1;
        let id = format!("Z{:04}FAKE", st.next_id);
        let apex = dotted(name);
        st.zones.push(FakeZone {
            id: id.clone(),
            name: apex.clone(),
            private,
        });
        for (t, v) in [
            ("NS", "ns-1.awsdns-00.com."),
            (
                "SOA",
                "ns-1.awsdns-00.com. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
            ),
        ] {
            st.sets.insert(
                (id.clone(), key(&apex), t.to_string()),
                (
                    apex.clone(),
                    FakeSet {
                        ttl: 172800,
                        records: vec![vec![v.as_bytes().to_vec()]],
                        raw: vec![v.to_string()],
                    },
                ),
            );
        }
        id
    }

    /// Puts a TXT set directly (a value someone else manages, for example).
    pub fn put_txt(&self, zone_id: &str, name: &str, ttl: i64, records: Vec<Vec<Vec<u8>>>) {
        let n = dotted(name);
        let raw = records.iter().map(|r| render_value(r)).collect();
        lock(&self.shared.state).sets.insert(
            (zone_id.to_string(), key(&n), "TXT".to_string()),
            (n, FakeSet { ttl, records, raw }),
        );
    }

    /// Puts a TXT set as another tool may have written it: each value's text
    /// exactly as given (`"a"  "b"`, `"\101bc"`), stored and listed as is.
    ///
    /// # Panics
    /// When a value is not in Route 53's TXT format (the host would refuse it).
    pub fn put_txt_raw(&self, zone_id: &str, name: &str, ttl: i64, values: &[&str]) {
        let n = dotted(name);
        let records = values
            .iter()
            .map(|v| parse_value(v).expect("a value Route 53 accepts"))
            .collect();
        let raw = values.iter().map(|v| v.to_string()).collect();
        lock(&self.shared.state).sets.insert(
            (zone_id.to_string(), key(&n), "TXT".to_string()),
            (n, FakeSet { ttl, records, raw }),
        );
    }

    /// Removes the TXT set at `name` (another tool deleting it).
    pub fn remove_txt(&self, zone_id: &str, name: &str) {
        lock(&self.shared.state)
            .sets
            .remove(&(zone_id.to_string(), key(name), "TXT".to_string()));
    }

    /// The TXT set the fake holds at `name` in `zone_id`.
    pub fn txt(&self, zone_id: &str, name: &str) -> Option<FakeSet> {
        lock(&self.shared.state)
            .sets
            .get(&(zone_id.to_string(), key(name), "TXT".to_string()))
            .map(|(_, s)| s.clone())
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// The next `n` requests fail with `status` and the documented body for it.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }

    /// The next `n` requests are throttled (HTTP 400 `Throttling`).
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        self.shared.faults.push(Fault::Throttle { retry_after }, n);
    }

    /// Throttles (HTTP 400 `Throttling`, as Route 53 does) every request beyond
    /// `requests` in any window of `per`, as the host's documented per-account
    /// limit (5 requests per second).
    pub fn enforce_rate(&self, requests: usize, per: std::time::Duration) {
        lock(&self.shared.state).rate = Some((requests, per));
    }

    /// How many requests [`FakeRoute53::enforce_rate`] throttled.
    pub fn throttled(&self) -> usize {
        lock(&self.shared.state).throttled
    }

    /// A change reports `INSYNC` after this many `GetChange` polls (default 1).
    pub fn set_insync_after(&self, polls: u32) {
        lock(&self.shared.state).insync_after = polls;
    }

    /// How many `GetChange` requests were received.
    pub fn get_change_count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/change/"))
            .count()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml(status: u16, body: String) -> Response {
    kit::respond(
        status,
        "text/xml",
        format!("<?xml version=\"1.0\"?>\n{body}"),
        &[("x-amzn-requestid", "0f1e2d3c-fake".to_string())],
    )
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>0f1e2d3c-fake</RequestId></ErrorResponse>",
            xml_escape(message)
        ),
    )
}

/// A batch that does not apply, as Route 53 answers it: HTTP 400, the
/// `ErrorResponse` envelope with code `InvalidChangeBatch` and the messages in
/// brackets (the `<InvalidChangeBatch>` root is kept for validation messages,
/// which the host also sends that way).
fn invalid_change_batch(messages: &[String]) -> Response {
    let stale = messages.iter().any(|m| {
        m.contains("but it was not found")
            || m.contains("do not match")
            || m.contains("but it already exists")
    });
    if stale {
        return error(
            400,
            "Sender",
            "InvalidChangeBatch",
            &format!("[{}]", messages.join(", ")),
        );
    }
    let m: String = messages
        .iter()
        .map(|m| format!("<Message>{}</Message>", xml_escape(m)))
        .collect();
    xml(
        400,
        format!(
            "<InvalidChangeBatch xmlns=\"{NS}\"><Messages>{m}</Messages><RequestId>0f1e2d3c-fake</RequestId></InvalidChangeBatch>"
        ),
    )
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::Throttle { retry_after } => {
            let mut r = error(400, "Sender", "Throttling", "Rate exceeded");
            if retry_after > 0
                && let Ok(v) = retry_after.to_string().parse()
            {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Fault::Status(403) => error(
            403,
            "Sender",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
        Fault::Status(s) if s >= 500 => error(
            s,
            "Receiver",
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
        Fault::Status(s) => error(s, "Sender", "InvalidInput", "Injected failure"),
    }
}

/// Name escaping as Route 53 returns it: `\ooo` for anything but `a-z0-9-_.`.
fn escape_name(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

/// A TXT value in Route 53's format.
fn render_value(strings: &[Vec<u8>]) -> String {
    strings
        .iter()
        .map(|s| {
            let mut o = String::from("\"");
            for &b in s {
                match b {
                    b'"' => o.push_str("\\\""),
                    b'\\' => o.push_str("\\\\"),
                    0x20..=0x7e => o.push(b as char),
                    _ => o.push_str(&format!("\\{b:03o}")),
                }
            }
            o.push('"');
            o
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a submitted TXT value; the error is Route 53's message.
fn parse_value(v: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            i += 1;
            continue;
        }
        if c != b'"' {
            return Err(format!(
                "Invalid Resource Record: FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with '{v}'"
            ));
        }
        i += 1;
        let mut s = Vec::new();
        loop {
            match b.get(i) {
                None => {
                    return Err(format!(
                        "Invalid Resource Record: FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with '{v}'"
                    ));
                }
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => match b.get(i + 1) {
                    Some(d) if d.is_ascii_digit() => {
                        let oct = b
                            .get(i + 1..i + 4)
                            .and_then(|o| std::str::from_utf8(o).ok())
                            .and_then(|o| u8::from_str_radix(o, 8).ok())
                            .ok_or_else(|| format!("Invalid Resource Record: FATAL problem: InvalidCharacterString (bad escape) encountered with '{v}'"))?;
                        s.push(oct);
                        i += 4;
                    }
                    Some(&e) => {
                        s.push(e);
                        i += 2;
                    }
                    None => {
                        return Err(format!(
                            "Invalid Resource Record: FATAL problem: InvalidCharacterString encountered with '{v}'"
                        ));
                    }
                },
                Some(&x) => {
                    s.push(x);
                    i += 1;
                }
            }
        }
        if s.len() > 255 {
            return Err(format!(
                "Invalid Resource Record: FATAL problem: CharacterStringTooLong (Value is too long) encountered with '{v}'"
            ));
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err("Invalid Resource Record: FATAL problem: empty TXT value".to_string());
    }
    Ok(out)
}

/// A DELETE matches when it repeats the stored TTL and every stored value's
/// text exactly (in any order).
fn same_set(a: &FakeSet, b: &FakeSet) -> bool {
    let mut x = a.raw.clone();
    let mut y = b.raw.clone();
    x.sort();
    y.sort();
    a.ttl == b.ttl && x == y
}

async fn handle(
    State(sh): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut st = lock(&sh.state);
    sh.record(&method, &uri, &headers, &body);
    if let Some((n, per)) = st.rate {
        let now = std::time::Instant::now();
        while st.arrivals.front().is_some_and(|&t| t + per <= now) {
            st.arrivals.pop_front();
        }
        if st.arrivals.len() >= n {
            st.throttled += 1;
            return error(400, "Sender", "Throttling", "Rate exceeded");
        }
        st.arrivals.push_back(now);
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.is_empty() || headers.get("x-amz-date").is_none() {
        return error(
            403,
            "Sender",
            "MissingAuthenticationToken",
            "Missing Authentication Token",
        );
    }
    let expected = format!("AWS4-HMAC-SHA256 Credential={}/", st.access_key_id);
    if !auth.starts_with(&expected) {
        return error(
            403,
            "Sender",
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    if !auth.contains("/us-east-1/route53/aws4_request")
        || !auth.contains("SignedHeaders=")
        || !auth.contains("Signature=")
    {
        return error(
            403,
            "Sender",
            "IncompleteSignature",
            "Credential should be scoped to a valid region and service 'route53'.",
        );
    }
    if let Err(m) = sigv4::verify(
        &st.access_key_id,
        &st.secret_access_key,
        &method,
        &uri,
        &headers,
        &body,
    ) {
        return error(403, "Sender", "SignatureDoesNotMatch", &m);
    }
    if let Some(f) = sh.faults.take() {
        return fault_response(f);
    }
    let q: HashMap<String, String> = kit::query_pairs(&query).into_iter().collect();
    let Some(rest) = path.strip_prefix("/2013-04-01/") else {
        return error(
            404,
            "Sender",
            "UnknownOperationException",
            "Unknown operation",
        );
    };
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["hostedzonesbyname"]) => list_zones(&st, &q),
        ("GET", ["hostedzone", id, "rrset"]) => list_sets(&st, id, &q),
        ("POST", ["hostedzone", id, "rrset"]) => change(&mut st, id, &body),
        ("GET", ["change", id]) => get_change(&mut st, id),
        _ => error(
            404,
            "Sender",
            "UnknownOperationException",
            "Unknown operation",
        ),
    }
}

fn max_items(q: &HashMap<String, String>) -> usize {
    q.get("maxitems")
        .and_then(|m| m.parse().ok())
        .filter(|&m: &usize| m > 0)
        .unwrap_or(100)
}

fn list_zones(st: &St, q: &HashMap<String, String>) -> Response {
    let max = max_items(q);
    let mut zones = st.zones.clone();
    zones.sort_by(|a, b| (key(&a.name), &a.id).cmp(&(key(&b.name), &b.id)));
    let start_key = q.get("dnsname").map(|n| key(n)).unwrap_or_default();
    let start_id = q.get("hostedzoneid").cloned().unwrap_or_default();
    let rest: Vec<&FakeZone> = zones
        .iter()
        .filter(|z| (key(&z.name), z.id.clone()) >= (start_key.clone(), start_id.clone()))
        .collect();
    let page = rest.iter().take(max);
    let mut items = String::new();
    for z in page {
        items.push_str(&format!(
            "<HostedZone><Id>/hostedzone/{}</Id><Name>{}</Name><CallerReference>fake-{}</CallerReference><Config><PrivateZone>{}</PrivateZone></Config><ResourceRecordSetCount>2</ResourceRecordSetCount></HostedZone>",
            z.id,
            escape_name(&z.name),
            z.id,
            z.private
        ));
    }
    let truncated = rest.len() > max;
    let next = match rest.get(max) {
        Some(n) => format!(
            "<NextDNSName>{}</NextDNSName><NextHostedZoneId>{}</NextHostedZoneId>",
            escape_name(&n.name),
            n.id
        ),
        None => String::new(),
    };
    let dnsname = q
        .get("dnsname")
        .map(|d| format!("<DNSName>{}</DNSName>", xml_escape(d)))
        .unwrap_or_default();
    xml(
        200,
        format!(
            "<ListHostedZonesByNameResponse xmlns=\"{NS}\"><HostedZones>{items}</HostedZones>{dnsname}<IsTruncated>{truncated}</IsTruncated>{next}<MaxItems>{max}</MaxItems></ListHostedZonesByNameResponse>"
        ),
    )
}

fn no_such_zone(id: &str) -> Response {
    error(
        404,
        "Sender",
        "NoSuchHostedZone",
        &format!("No hosted zone found with ID: {id}"),
    )
}

fn list_sets(st: &St, id: &str, q: &HashMap<String, String>) -> Response {
    if !st.zones.iter().any(|z| z.id == id) {
        return no_such_zone(id);
    }
    if q.contains_key("type") && !q.contains_key("name") {
        return error(
            400,
            "Sender",
            "InvalidInput",
            "The input is not valid: type requires name",
        );
    }
    let max = max_items(q);
    let start = (
        q.get("name").map(|n| key(n)).unwrap_or_default(),
        q.get("type").cloned().unwrap_or_default(),
    );
    let rest: Vec<(&SetKey, &(String, FakeSet))> = st
        .sets
        .iter()
        .filter(|((z, k, t), _)| z == id && (k.clone(), t.clone()) >= start)
        .collect();
    let mut items = String::new();
    for ((_, _, t), (name, set)) in rest.iter().take(max) {
        let rrs: String = set
            .raw
            .iter()
            .map(|v| {
                format!(
                    "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                    xml_escape(v)
                )
            })
            .collect();
        items.push_str(&format!(
            "<ResourceRecordSet><Name>{}</Name><Type>{t}</Type><TTL>{}</TTL><ResourceRecords>{rrs}</ResourceRecords></ResourceRecordSet>",
            escape_name(name),
            set.ttl
        ));
    }
    let truncated = rest.len() > max;
    let next = match rest.get(max) {
        Some(((_, _, t), (n, _))) => format!(
            "<NextRecordName>{}</NextRecordName><NextRecordType>{t}</NextRecordType>",
            escape_name(n)
        ),
        None => String::new(),
    };
    xml(
        200,
        format!(
            "<ListResourceRecordSetsResponse xmlns=\"{NS}\"><ResourceRecordSets>{items}</ResourceRecordSets><IsTruncated>{truncated}</IsTruncated>{next}<MaxItems>{max}</MaxItems></ListResourceRecordSetsResponse>"
        ),
    )
}

#[derive(Deserialize)]
struct ChangeRequest {
    #[serde(rename = "ChangeBatch")]
    change_batch: ChangeBatch,
}
#[derive(Deserialize)]
struct ChangeBatch {
    #[serde(rename = "Changes")]
    changes: Changes,
}
#[derive(Deserialize)]
struct Changes {
    #[serde(rename = "Change", default)]
    items: Vec<ChangeItem>,
}
#[derive(Deserialize)]
struct ChangeItem {
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "ResourceRecordSet")]
    set: XmlSet,
}
#[derive(Deserialize)]
struct XmlSet {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "TTL")]
    ttl: Option<String>,
    #[serde(rename = "ResourceRecords")]
    records: Option<XmlRecords>,
}
#[derive(Deserialize)]
struct XmlRecords {
    #[serde(rename = "ResourceRecord", default)]
    items: Vec<XmlRecord>,
}
#[derive(Deserialize)]
struct XmlRecord {
    #[serde(rename = "Value")]
    value: String,
}

/// Most `ResourceRecord` elements in one request (an `UPSERT`'s count twice).
pub const MAX_BATCH_VALUES: usize = 1000;
/// Most characters across every `Value` of one request, spaces included (an
/// `UPSERT`'s count twice).
pub const MAX_BATCH_CHARS: usize = 32_000;

/// Route 53's limits on one `ChangeResourceRecordSets` request (Developer
/// Guide, "Quotas", maximums on API requests): 1,000 `ResourceRecord`
/// elements and 32,000 characters across every `Value`, each element and
/// character of an `UPSERT` counted twice. Over them the whole batch is
/// refused, nothing applied, with HTTP 400 `InvalidChangeBatch` and AWS's
/// wording as SDK users quote the real answers (AWS documents neither text):
/// `[Number of records limit of 1000 exceeded.]`
/// (<https://github.com/StackExchange/dnscontrol/issues/508>, dnscontrol#1114)
/// and `[RDATA character limit of 32000 exceeded.]`
/// (<https://github.com/StackExchange/dnscontrol/issues/908>; without the
/// brackets in kops#4495 and external-dns#515, 2018).
fn over_batch_limits(req: &ChangeRequest) -> Option<Response> {
    let (mut values, mut chars) = (0usize, 0usize);
    for c in &req.change_batch.changes.items {
        let twice = if c.action == "UPSERT" { 2 } else { 1 };
        for r in c.set.records.iter().flat_map(|r| r.items.iter()) {
            values += twice;
            chars += twice * r.value.chars().count();
        }
    }
    let message = if values > MAX_BATCH_VALUES {
        format!("[Number of records limit of {MAX_BATCH_VALUES} exceeded.]")
    } else if chars > MAX_BATCH_CHARS {
        format!("[RDATA character limit of {MAX_BATCH_CHARS} exceeded.]")
    } else {
        return None;
    };
    Some(error(400, "Sender", "InvalidChangeBatch", &message))
}

fn change(st: &mut St, id: &str, body: &[u8]) -> Response {
    let Some(zone) = st.zones.iter().find(|z| z.id == id).cloned() else {
        return no_such_zone(id);
    };
    let text = String::from_utf8_lossy(body);
    let req: ChangeRequest = match quick_xml::de::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return error(
                400,
                "Sender",
                "InvalidInput",
                &format!("Could not parse the request: {e}"),
            );
        }
    };
    if let Some(refused) = over_batch_limits(&req) {
        return refused;
    }
    let mut sets = st.sets.clone();
    let mut problems = Vec::new();
    for (i, c) in req.change_batch.changes.items.iter().enumerate() {
        let name = dotted(&c.set.name);
        let ttl: i64 = match c.set.ttl.as_deref().map(str::parse::<i64>) {
            Some(Ok(t)) if (0..=2_147_483_647).contains(&t) => t,
            Some(_) => {
                return error(
                    400,
                    "Sender",
                    "InvalidInput",
                    &format!(
                        "1 validation error detected: Value '{}' at 'changeBatch.changes.{}.member.resourceRecordSet.tTL' failed to satisfy constraint: Member must have value less than or equal to 2147483647",
                        c.set.ttl.as_deref().unwrap_or(""),
                        i + 1
                    ),
                );
            }
            None => 0,
        };
        if !(name == zone.name || name.ends_with(&format!(".{}", zone.name))) {
            problems.push(format!(
                "RRSet with DNS name {name} is not permitted in zone {}",
                zone.name
            ));
            continue;
        }
        let mut records = Vec::new();
        for r in c.set.records.iter().flat_map(|r| r.items.iter()) {
            if r.value.chars().count() > 4000 {
                return error(
                    400,
                    "Sender",
                    "InvalidInput",
                    "1 validation error detected: Value at 'changeBatch.changes.1.member.resourceRecordSet.resourceRecords.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 4000",
                );
            }
            if c.set.kind == "TXT" {
                match parse_value(&r.value) {
                    Ok(v) => records.push(v),
                    Err(m) => problems.push(m),
                }
            } else {
                records.push(vec![r.value.as_bytes().to_vec()]);
            }
        }
        let k = (id.to_string(), key(&name), c.set.kind.clone());
        let raw = c
            .set
            .records
            .iter()
            .flat_map(|r| r.items.iter())
            .map(|r| r.value.clone())
            .collect();
        let new = FakeSet { ttl, records, raw };
        let label = format!("[name='{name}', type='{}']", c.set.kind);
        match c.action.as_str() {
            "CREATE" => {
                if let std::collections::btree_map::Entry::Vacant(e) = sets.entry(k) {
                    e.insert((name, new));
                } else {
                    problems.push(format!(
                        "Tried to create resource record set {label} but it already exists"
                    ));
                }
            }
            "UPSERT" => {
                sets.insert(k, (name, new));
            }
            "DELETE" => match sets.get(&k) {
                None => problems.push(format!("Tried to delete resource record set {label} but it was not found")),
                Some((_, cur)) if !same_set(cur, &new) => problems.push(format!(
                    "Tried to delete resource record set {label} but the values provided do not match the current values"
                )),
                Some(_) => {
                    sets.remove(&k);
                }
            },
            other => {
                return error(400, "Sender", "InvalidInput", &format!("Invalid action {other}"));
            }
        }
    }
    if !problems.is_empty() {
        return invalid_change_batch(&problems);
    }
    st.sets = sets;
    st.next_id += 1;
    let cid = format!("C{:06}FAKE", st.next_id);
    let after = st.insync_after;
    st.changes.insert(cid.clone(), after);
    let status = if after == 0 { "INSYNC" } else { "PENDING" };
    xml(
        200,
        format!(
            "<ChangeResourceRecordSetsResponse xmlns=\"{NS}\"><ChangeInfo><Id>/change/{cid}</Id><Status>{status}</Status><SubmittedAt>2026-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>"
        ),
    )
}

fn get_change(st: &mut St, id: &str) -> Response {
    let Some(left) = st.changes.get_mut(id) else {
        return error(
            404,
            "Sender",
            "NoSuchChange",
            &format!("A change with the specified change ID does not exist: {id}"),
        );
    };
    *left = left.saturating_sub(1);
    let status = if *left == 0 { "INSYNC" } else { "PENDING" };
    xml(
        200,
        format!(
            "<GetChangeResponse xmlns=\"{NS}\"><ChangeInfo><Id>/change/{id}</Id><Status>{status}</Status><SubmittedAt>2026-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo></GetChangeResponse>"
        ),
    )
}

/// Recomputes a request's SigV4 signature as Route 53 does and compares it.
mod sigv4 {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use axum::http::{HeaderMap, Method, Uri};

    /// `Ok` when the `Authorization` header's signature is the one the
    /// credentials give for this method, URL, signed headers, body and
    /// `X-Amz-Date`; otherwise Route 53's message.
    pub(super) fn verify(
        akid: &str,
        secret: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
        let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        let auth = h("authorization").unwrap_or("");
        let field = |name: &str| {
            auth.split([',', ' '])
                .find_map(|p| p.trim().strip_prefix(name))
                .map(str::to_string)
        };
        let (Some(signed), Some(given)) = (field("SignedHeaders="), field("Signature=")) else {
            return Err(MISMATCH.to_string());
        };
        let date = h("x-amz-date")
            .and_then(parse_amz_date)
            .ok_or("bad X-Amz-Date")?;
        let host = h("host").unwrap_or("");
        let url = format!(
            "http://{host}{}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for name in signed.split(';') {
            if matches!(
                name,
                "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
            ) {
                continue;
            }
            pairs.push((name, h(name).unwrap_or("")));
        }
        let token = h("x-amz-security-token").map(str::to_string);
        let identity =
            aws_credential_types::Credentials::new(akid, secret, token, None, "fake").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("route53")
            .time(date)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            &url,
            pairs.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let want = instructions
            .headers()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| {
                v.split([',', ' '])
                    .find_map(|p| p.trim().strip_prefix("Signature="))
                    .map(str::to_string)
            });
        if want.as_deref() == Some(given.as_str()) {
            Ok(())
        } else {
            Err(MISMATCH.to_string())
        }
    }

    /// `YYYYMMDDTHHMMSSZ` as a time.
    fn parse_amz_date(s: &str) -> Option<SystemTime> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
        let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
        Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeRoute53 {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        let st = lock(&self.shared.state);
        st.sets
            .iter()
            .filter(|((zid, _, kind), _)| {
                kind == "TXT"
                    && st
                        .zones
                        .iter()
                        .any(|z| z.id == *zid && z.name.trim_end_matches('.') == zone)
            })
            .flat_map(|(_, (name, set))| {
                set.raw
                    .iter()
                    .map(move |v| format!("{name} {} {v}", set.ttl))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for ((zid, _, kind), (name, set)) in &st.sets {
            let ours = st
                .zones
                .iter()
                .any(|z| z.id == *zid && z.name.trim_end_matches('.') == zone);
            if ours && kind == "TXT" {
                for r in &set.records {
                    super::served::add(
                        &mut out,
                        zone,
                        name,
                        u32::try_from(set.ttl).unwrap_or(0),
                        r.concat(),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(action: &str, names: usize, values: usize, value: &str) -> String {
        let mut out = String::from("<ChangeResourceRecordSetsRequest><ChangeBatch><Changes>");
        for n in 0..names {
            out.push_str(&format!(
                "<Change><Action>{action}</Action><ResourceRecordSet><Name>n{n}.example.com</Name><Type>TXT</Type><TTL>300</TTL><ResourceRecords>"
            ));
            for v in 0..values {
                out.push_str(&format!(
                    "<ResourceRecord><Value>\"{v:04}\"{value}</Value></ResourceRecord>"
                ));
            }
            out.push_str("</ResourceRecords></ResourceRecordSet></Change>");
        }
        out.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
        out
    }

    async fn answer(action: &str, names: usize, values: usize, value: &str) -> (u16, String) {
        let mut st = St::default();
        st.zones.push(FakeZone {
            id: "Z1".to_string(),
            name: "example.com.".to_string(),
            private: false,
        });
        let r = change(
            &mut st,
            "Z1",
            batch(action, names, values, value).as_bytes(),
        );
        let status = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let stored = st.sets.len();
        let body = String::from_utf8(body.to_vec()).unwrap();
        (status, format!("{stored} {body}"))
    }

    /// 1,000 values are taken, 1,001 refused with AWS's body and nothing
    /// stored; an UPSERT's values count twice.
    #[tokio::test]
    async fn the_batch_limits_are_enforced_as_aws_does() {
        assert_eq!(answer("CREATE", 4, 250, "").await.0, 200);
        let (status, body) = answer("CREATE", 7, 143, "").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.starts_with("0 "), "nothing applied: {body}");
        assert!(
            body.contains("<Code>InvalidChangeBatch</Code><Message>[Number of records limit of 1000 exceeded.]</Message>"),
            "{body}"
        );
        assert_eq!(answer("UPSERT", 2, 250, "").await.0, 200);
        assert_eq!(answer("UPSERT", 2, 251, "").await.0, 400);
        // Characters: 10 values of 3,042 characters (quotes and spaces
        // included: "0000" then 12 strings of 250 bytes) fit, 11 do not.
        let long = format!(" \"{}\"", "x".repeat(250)).repeat(12);
        assert_eq!(answer("CREATE", 1, 10, &long).await.0, 200);
        let (status, body) = answer("CREATE", 1, 11, &long).await;
        assert_eq!(status, 400);
        assert!(
            body.contains(
                "<Code>InvalidChangeBatch</Code><Message>[RDATA character limit of 32000 exceeded.]</Message>"
            ),
            "{body}"
        );
        assert_eq!(answer("UPSERT", 1, 5, &long).await.0, 200);
        assert_eq!(answer("UPSERT", 1, 6, &long).await.0, 400);
    }
}

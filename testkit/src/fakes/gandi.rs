//! A stateful fake of Gandi LiveDNS v5 on 127.0.0.1.
//!
//! `Authorization: Bearer <PAT>` is checked; `GET /domains/{fqdn}` answers 404 for
//! names that are not LiveDNS domains; record sets live at
//! `/domains/{fqdn}/records/{name}/TXT` (GET 404 when absent, PUT replaces, DELETE);
//! errors use the envelope `{"cause","code","message","object"}` (validation errors
//! add `errors`). Values are stored as sent (each one zone-file record) and must
//! parse as quoted strings of at most 255 bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::json;

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

#[derive(Debug, Default)]
struct St {
    token: String,
    domains: BTreeSet<String>,
    // (domain, relative name) -> (ttl, values as sent)
    sets: BTreeMap<(String, String), (u32, Vec<String>)>,
    // Keep only this many bytes of each value written (a host that cuts long values).
    truncate_at: Option<usize>,
    // Items per page of a record listing (none: everything on one page).
    per_page: Option<usize>,
}

type Shared = kit::Shared<St>;

/// The running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeGandi {
    /// Base URL to give the adapter: `http://127.0.0.1:<port>/v5/livedns`.
    pub url: String,
    shared: Shared,
    _task: ServerTask,
}

impl FakeGandi {
    /// Starts the fake; requests must carry `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(Mutex::new(St {
            token: token.to_string(),
            ..St::default()
        }));
        let shared = Shared::new(state.clone(), Tripwire::default());
        let (addr, task) = shared.serve(handle).await;
        FakeGandi {
            url: format!("http://{addr}/v5/livedns"),
            shared,
            _task: task,
        }
    }

    /// Adds a LiveDNS domain.
    pub fn add_domain(&self, fqdn: &str) {
        lock(&self.shared.state)
            .domains
            .insert(fqdn.to_ascii_lowercase());
    }

    /// Puts a TXT set directly (values in zone-file form, as the API holds them).
    pub fn put_txt(&self, domain: &str, rel: &str, ttl: u32, values: &[&str]) {
        lock(&self.shared.state).sets.insert(
            (domain.to_string(), rel.to_string()),
            (ttl, values.iter().map(|v| v.to_string()).collect()),
        );
    }

    /// The TXT set held at `rel` in `domain`: TTL and values as stored.
    pub fn txt(&self, domain: &str, rel: &str) -> Option<(u32, Vec<String>)> {
        lock(&self.shared.state)
            .sets
            .get(&(domain.to_string(), rel.to_string()))
            .cloned()
    }

    /// Items per page of a record listing; more are linked with `rel="next"`.
    pub fn set_per_page(&self, n: usize) {
        lock(&self.shared.state).per_page = Some(n);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// From now on, keeps only the first `n` bytes of each TXT value written
    /// (its joined character-strings), answering success as usual: a host
    /// that silently cuts long values, as some cut 2048-bit DKIM records.
    pub fn truncate_values_at(&self, n: usize) {
        lock(&self.shared.state).truncate_at = Some(n);
    }

    /// The next `n` requests fail with `status` and Gandi's envelope.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }

    /// The next `n` requests get 429 with `Retry-After`.
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        self.shared.faults.push(Fault::Throttle { retry_after }, n);
    }
}

fn envelope(code: u16, object: &str, cause: &str, message: &str) -> Response {
    kit::respond(
        code,
        "application/json",
        json!({"code": code, "message": message, "object": object, "cause": cause}).to_string(),
        &[],
    )
}

fn not_found() -> Response {
    envelope(
        404,
        "HTTPNotFound",
        "Not Found",
        "The resource could not be found.",
    )
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::Throttle { retry_after } => {
            let mut r = envelope(
                429,
                "HTTPTooManyRequests",
                "Too Many Requests",
                "Too many requests, please slow down.",
            );
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Fault::Status(401) => unauthorized(),
        Fault::Status(s) if s >= 500 => envelope(
            s,
            "HTTPInternalServerError",
            "Internal Server Error",
            "The server encountered an unexpected error.",
        ),
        Fault::Status(s) => envelope(s, "HTTPBadRequest", "Bad Request", "Injected failure"),
    }
}

fn unauthorized() -> Response {
    envelope(
        401,
        "HTTPUnauthorized",
        "Unauthorized",
        "The server could not verify that you are authorized to access the requested URL.",
    )
}

/// Checks that `v` is zone-file quoted strings, each at most 255 bytes.
fn check_value(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let mut i = 0;
    let mut count = 0;
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            i += 1;
            continue;
        }
        if c != b'"' {
            return Err(format!("TXT value {v:?} must be quoted"));
        }
        i += 1;
        let mut len = 0usize;
        loop {
            match b.get(i) {
                None => return Err(format!("unterminated quote in {v:?}")),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    i += if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        4
                    } else {
                        2
                    };
                    len += 1;
                }
                Some(_) => {
                    i += 1;
                    len += 1;
                }
            }
        }
        if len > 255 {
            return Err(format!("a TXT string of {len} bytes exceeds 255"));
        }
        count += 1;
    }
    if count == 0 {
        return Err("empty TXT value".to_string());
    }
    Ok(())
}

/// The first `n` bytes of a checked zone-file value (quoted strings), kept in
/// its own split; an escape counts as the one byte it stands for.
fn truncate_value(v: &str, n: usize) -> String {
    let b = v.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut kept = 0usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let start = i;
        while kept < n {
            match b.get(i) {
                None | Some(b'"') => break,
                Some(b'\\') => {
                    i += if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        4
                    } else {
                        2
                    };
                }
                Some(_) => i += 1,
            }
            kept += 1;
        }
        if i > start {
            out.push(format!(
                "\"{}\"",
                String::from_utf8_lossy(&b[start..i.min(b.len())])
            ));
        }
        // Skip the rest of this string.
        while let Some(&c) = b.get(i) {
            i += if c == b'\\' { 2 } else { 1 };
            if c == b'"' {
                break;
            }
        }
        if kept >= n {
            break;
        }
    }
    out.join(" ")
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
    let want = format!("Bearer {}", st.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        return unauthorized();
    }
    if let Some(f) = sh.faults.take() {
        return fault_response(f);
    }
    let Some(rest) = path.strip_prefix("/v5/livedns/domains/") else {
        return not_found();
    };
    let parts: Vec<String> = rest.split('/').map(kit::percent_decode).collect();
    match (
        method.as_str(),
        parts
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        // A name that cannot be a domain (a label starting with `_`, one label):
        // Gandi refuses the request rather than answering "not found".
        ("GET", [domain])
            if !domain.contains('.') || domain.split('.').any(|l| l.starts_with('_')) =>
        {
            envelope(
                400,
                "HTTPBadRequest",
                "Bad Request",
                &format!("{domain} is not a valid domain name"),
            )
        }
        ("GET", [domain, "records"]) => {
            if !st.domains.contains(*domain) {
                return not_found();
            }
            let q = kit::query_pairs(uri.query().unwrap_or(""));
            let kind = q
                .iter()
                .find(|(k, _)| k == "rrset_type")
                .map(|(_, v)| v.clone());
            let all: Vec<serde_json::Value> = st
                .sets
                .iter()
                .filter(|((d, _), _)| d == domain)
                .filter(|_| kind.as_deref().is_none_or(|k| k == "TXT"))
                .map(|((_, rel), (ttl, values))| json!({"rrset_name": rel, "rrset_type": "TXT", "rrset_ttl": ttl,
                    "rrset_href": format!("/v5/livedns/domains/{domain}/records/{rel}/TXT"), "rrset_values": values}))
                .collect();
            let per = st.per_page.unwrap_or(usize::MAX).max(1);
            let page: usize = q
                .iter()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1)
                .max(1);
            let items: Vec<serde_json::Value> = all
                .iter()
                .skip((page - 1).saturating_mul(per))
                .take(per)
                .cloned()
                .collect();
            let mut extra = vec![("total-count", all.len().to_string())];
            if page.saturating_mul(per) < all.len() {
                let host = headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                extra.push(("link", format!("<http://{host}/v5/livedns/domains/{domain}/records?rrset_type=TXT&page={}>; rel=\"next\"", page + 1)));
            }
            kit::respond(
                200,
                "application/json",
                serde_json::Value::Array(items).to_string(),
                &extra,
            )
        }
        ("GET", [domain]) => {
            if st.domains.contains(*domain) {
                kit::respond(
                    200,
                    "application/json",
                    json!({"fqdn": domain, "automatic_snapshots": true, "domain_records_href": format!("/v5/livedns/domains/{domain}/records")}).to_string(),
                    &[],
                )
            } else {
                not_found()
            }
        }
        (m, [domain, "records", rel, "TXT"]) => {
            if !st.domains.contains(*domain) {
                return not_found();
            }
            let k = (domain.to_string(), rel.to_string());
            match m {
                "GET" => match st.sets.get(&k) {
                    Some((ttl, values)) => kit::respond(
                        200,
                        "application/json",
                        json!({"rrset_name": rel, "rrset_type": "TXT", "rrset_ttl": ttl,
                               "rrset_href": format!("/v5/livedns/domains/{domain}/records/{rel}/TXT"),
                               "rrset_values": values}).to_string(),
                        &[],
                    ),
                    None => not_found(),
                },
                "PUT" => {
                    let v: serde_json::Value = match serde_json::from_slice(&body) {
                        Ok(v) => v,
                        Err(e) => return envelope(400, "HTTPBadRequest", "Bad Request", &format!("invalid JSON: {e}")),
                    };
                    let ttl = v.get("rrset_ttl").and_then(|t| t.as_u64()).unwrap_or(10800);
                    let values: Vec<String> = v
                        .get("rrset_values")
                        .and_then(|a| a.as_array())
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    let mut errors = Vec::new();
                    if !(300..=2_592_000).contains(&ttl) {
                        errors.push(json!({"location": "body", "name": "rrset_ttl", "description": "rrset_ttl must be between 300 and 2592000"}));
                    }
                    for (i, val) in values.iter().enumerate() {
                        if let Err(m) = check_value(val) {
                            errors.push(json!({"location": "body", "name": format!("rrset_values.{i}"), "description": m}));
                        }
                    }
                    if !errors.is_empty() {
                        return kit::respond(
                            400,
                            "application/json",
                            json!({"code": 400, "message": "Validation error", "object": "HTTPBadRequest", "cause": "Bad Request", "errors": errors}).to_string(),
                            &[],
                        );
                    }
                    let created = !st.sets.contains_key(&k);
                    let values = match st.truncate_at {
                        Some(n) => values.iter().map(|v| truncate_value(v, n)).collect(),
                        None => values,
                    };
                    st.sets.insert(k, (ttl as u32, values));
                    kit::respond(
                        if created { 201 } else { 200 },
                        "application/json",
                        json!({"message": "DNS Record Created"}).to_string(),
                        &[],
                    )
                }
                "DELETE" => match st.sets.remove(&k) {
                    Some(_) => kit::respond(204, "application/json", String::new(), &[]),
                    None => not_found(),
                },
                _ => envelope(405, "HTTPMethodNotAllowed", "Method Not Allowed", "The method is not allowed for the requested URL."),
            }
        }
        _ => not_found(),
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeGandi {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .sets
            .iter()
            .filter(|((d, _), _)| d == zone)
            .flat_map(|((_, rel), (ttl, values))| {
                values.iter().map(move |v| format!("{rel} {ttl} {v}"))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for ((domain, rel), (ttl, values)) in &st.sets {
            if domain == zone {
                for v in values {
                    super::served::add(&mut out, zone, rel, *ttl, super::served::wire_value(v));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_value;

    #[test]
    fn truncation_keeps_the_first_bytes_in_their_strings() {
        let v = format!("\"{}\" \"{}\"", "a".repeat(255), "b".repeat(155));
        assert_eq!(
            truncate_value(&v, 300),
            format!("\"{}\" \"{}\"", "a".repeat(255), "b".repeat(45))
        );
        assert_eq!(truncate_value("\"a\\\"b\" \"c\"", 2), "\"a\\\"\"");
        assert_eq!(truncate_value("\"abc\" \"d\"", 10), "\"abc\" \"d\"");
        assert_eq!(truncate_value("\"abc\"", 3), "\"abc\"");
    }
}

//! Plumbing shared by the HTTP fakes: serving on loopback, recording every request,
//! checking the credential the host's way, and answering injected faults
//! ([`super::fault`]: errors, 429 with `Retry-After`) in the host's own error envelope.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::fault::{Fault, Faults};

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path, e.g. `/zones/abc/dns_records`.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Raw body as text (lossy).
    pub body: String,
}

impl Recorded {
    /// A record of one request.
    pub(crate) fn new(
        method: &axum::http::Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        Recorded {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for anything but GET.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How a host checks credentials and shapes its error bodies.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    /// Whether the request carries the right credential.
    pub auth_ok: fn(&HeaderMap, &str) -> bool,
    /// The host's answer to a wrong or missing credential.
    pub auth_error: fn(&HeaderMap) -> (u16, Value),
    /// The host's error body for an injected status (429, 500, ...).
    pub error_body: fn(u16) -> Value,
}

/// State every fake carries besides its zones.
pub(crate) struct Common {
    pub token: String,
    pub style: Style,
    pub requests: Mutex<Vec<Recorded>>,
    pub faults: Faults,
}

impl Common {
    pub fn new(token: &str, style: Style) -> Arc<Common> {
        Arc::new(Common {
            token: token.to_string(),
            style,
            requests: Mutex::new(Vec::new()),
            faults: Faults::default(),
        })
    }

    /// [`Common::new`] for a host that takes `Authorization: Bearer <token>`
    /// ([`bearer_ok`]), answering a wrong one with `auth_error` and injected
    /// statuses with `error_body`.
    pub fn bearer(
        token: &str,
        auth_error: fn(&HeaderMap) -> (u16, Value),
        error_body: fn(u16) -> Value,
    ) -> Arc<Common> {
        Common::new(
            token,
            Style {
                auth_ok: bearer_ok,
                auth_error,
                error_body,
            },
        )
    }

    pub fn fail_next(&self, status: u16, n: usize) {
        self.faults.push(Fault::Status(status), n);
    }

    pub fn rate_limit_next(&self, retry_after_secs: u64) {
        self.faults.push(
            Fault::Throttle {
                retry_after: retry_after_secs,
            },
            1,
        );
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }
}

/// The request log and fault injection every fake built on [`Common`] offers,
/// as inherent methods of its `Fake…` type (whose `inner.common` is the
/// [`Common`]): `requests`, `writes`, `fail_next` (the injected errors come
/// `fails`, e.g. "in Linode's error body") and `rate_limit_next` (documented
/// as `throttle` says, when the host's 429 needs saying more).
macro_rules! recording {
    (fails: $fails:literal) => {
        $crate::fakes::common::recording!(
            fails: $fails,
            throttle: "The next request gets 429 with `Retry-After: <secs>`."
        );
    };
    (fails: $fails:literal, throttle: $throttle:literal) => {
        /// Every request received, in order.
        pub fn requests(&self) -> Vec<$crate::fakes::Recorded> {
            self.inner.common.requests()
        }

        /// Every request other than GET.
        pub fn writes(&self) -> Vec<$crate::fakes::Recorded> {
            self.requests()
                .into_iter()
                .filter($crate::fakes::Recorded::is_write)
                .collect()
        }

        #[doc = concat!("The next `n` requests fail with `status` ", $fails, ".")]
        pub fn fail_next(&self, status: u16, n: usize) {
            self.inner.common.fail_next(status, n);
        }

        #[doc = $throttle]
        pub fn rate_limit_next(&self, retry_after_secs: u64) {
            self.inner.common.rate_limit_next(retry_after_secs);
        }
    };
}
pub(crate) use recording;

/// Locks a mutex, carrying on after a panic in another test thread.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A JSON response with a status.
pub(crate) fn json(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

async fn gate(State(common): State<Arc<Common>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    common_record(&common, &parts, &bytes);
    if !(common.style.auth_ok)(&parts.headers, &common.token) {
        let (status, body) = (common.style.auth_error)(&parts.headers);
        return json(status, body);
    }
    if let Some(f) = common.faults.take() {
        let mut resp = json(f.status(), (common.style.error_body)(f.status()));
        if let Some(s) = f.retry_after()
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn common_record(common: &Common, parts: &axum::http::request::Parts, bytes: &[u8]) {
    lock(&common.requests).push(Recorded::new(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &parts.headers,
        bytes,
    ));
}

/// A running fake server; stops when dropped.
pub(crate) struct Server {
    pub base_url: String,
    _task: super::kit::ServerTask,
}

/// Serves `router` (with the recording/auth/fault gate) on 127.0.0.1 at a free port;
/// `prefix` is the API path prefix (e.g. `/client/v4`) included in the base URL.
pub(crate) async fn serve(router: Router, common: Arc<Common>, prefix: &str) -> Server {
    let app = router.layer(middleware::from_fn_with_state(common, gate));
    let (addr, task) = super::kit::serve(app).await;
    Server {
        base_url: format!("http://{addr}{prefix}"),
        _task: task,
    }
}

/// Bearer token check (`Authorization: Bearer <token>`).
pub(crate) fn bearer_ok(h: &HeaderMap, token: &str) -> bool {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {token}"))
}

/// The value of query parameter `k` (the first when repeated).
pub(crate) fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The `page` (1-based, default 1) and `per_page` (default `default`, at most
/// `cap`) query parameters.
pub(crate) fn page_args(
    q: &[(String, String)],
    default: usize,
    cap: Option<usize>,
) -> (usize, usize) {
    let page = param(q, "page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut per = param(q, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    if let Some(c) = cap {
        per = per.min(c);
    }
    (page, per)
}

/// `page`/`per_page` slicing: returns the items of `page` (1-based) and the page count.
pub(crate) fn paginate<T: Clone>(items: &[T], page: usize, per_page: usize) -> (Vec<T>, usize) {
    let per_page = per_page.max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let start = page.saturating_sub(1).saturating_mul(per_page);
    let out = items.iter().skip(start).take(per_page).cloned().collect();
    (out, pages)
}

/// A TXT presentation parser that, like the hosts that auto-split, accepts quoted
/// strings longer than 255 bytes and returns them whole (the caller splits).
/// Returns `None` on unterminated quotes or a dangling escape.
pub(crate) fn lenient_strings(input: &str) -> Option<Vec<Vec<u8>>> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                i += 1;
                let mut s = Vec::new();
                loop {
                    let c = *b.get(i)?;
                    match c {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let n = *b.get(i + 1)?;
                            if n.is_ascii_digit() {
                                let d = b.get(i + 1..i + 4)?;
                                let v: u32 = std::str::from_utf8(d).ok()?.parse().ok()?;
                                s.push(u8::try_from(v).ok()?);
                                i += 4;
                            } else {
                                s.push(n);
                                i += 2;
                            }
                        }
                        _ => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(s);
            }
            _ => {
                let mut s = Vec::new();
                while let Some(&c) = b.get(i) {
                    if c == b' ' || c == b'\t' {
                        break;
                    }
                    s.push(c);
                    i += 1;
                }
                out.push(s);
            }
        }
    }
    Some(out)
}

/// Renders strings in presentation form, splitting any over 255 bytes.
pub(crate) fn render_split(strings: &[Vec<u8>]) -> String {
    let mut parts = Vec::new();
    for s in strings {
        if s.is_empty() {
            parts.push("\"\"".to_string());
        }
        for chunk in s.chunks(255) {
            let mut o = String::from("\"");
            maildns_providers::txt::escape_into(chunk, &mut o);
            o.push('"');
            parts.push(o);
        }
    }
    parts.join(" ")
}

/// A JSON body from `fixtures/providers/<path>`, the same shapes the fakes answer with.
macro_rules! fixture {
    ($p:literal) => {
        serde_json::from_str::<serde_json::Value>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/providers/",
            $p
        )))
        .expect("fixture is JSON")
    };
}
pub(crate) use fixture;

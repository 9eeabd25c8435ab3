//! Pieces shared by the HTTP fakes that route requests themselves: a request log
//! type, a loopback server, query and response helpers (faults: [`super::fault`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

pub use super::common::Recorded;
use super::fault::Faults;
use super::tripwire::Tripwire;

/// What a fake that routes requests itself shares between the test's handle
/// and its server task: the host's state, the faults to inject, and the
/// tripwire for the broad endpoints maildns must never call.
#[derive(Debug)]
pub struct Shared<S> {
    pub(crate) state: Arc<Mutex<S>>,
    pub(crate) faults: Faults,
    pub(crate) tripwire: Arc<Tripwire>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared {
            state: self.state.clone(),
            faults: self.faults.clone(),
            tripwire: self.tripwire.clone(),
            requests: self.requests.clone(),
        }
    }
}

impl<S: Send + 'static> Shared<S> {
    /// The handles on `state`, no fault queued, and `tripwire`.
    pub(crate) fn new(state: Arc<Mutex<S>>, tripwire: Tripwire) -> Self {
        Shared {
            state,
            faults: Faults::default(),
            tripwire: Arc::new(tripwire),
            requests: Arc::default(),
        }
    }

    /// Logs one request as received (handlers call it holding the state's
    /// lock, so the log keeps the order the requests were served in).
    pub(crate) fn record(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) {
        self.log(Recorded::new(
            method,
            uri.path(),
            uri.query().unwrap_or(""),
            headers,
            body,
        ));
    }

    /// Logs a request already recorded.
    pub(crate) fn log(&self, request: Recorded) {
        super::common::lock(&self.requests).push(request);
    }

    /// Every request received, in order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        super::common::lock(&self.requests).clone()
    }

    /// Serves `handle` (the fake's one handler, for every request) with these
    /// handles on 127.0.0.1 at a free port.
    pub(crate) async fn serve<H, T>(&self, handle: H) -> (SocketAddr, ServerTask)
    where
        H: axum::handler::Handler<T, Shared<S>>,
        T: 'static,
    {
        serve(
            axum::Router::new()
                .fallback(handle)
                .with_state(self.clone()),
        )
        .await
    }
}

/// A server task aborted on drop.
#[derive(Debug)]
pub struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `router` on 127.0.0.1 at a free port.
pub async fn serve(router: axum::Router) -> (SocketAddr, ServerTask) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, ServerTask(task))
}

/// Parses a query string into decoded pairs.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    url_decode_pairs(query)
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` and `+` in a URL component.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response with a status, content type and body.
pub fn respond(
    status: u16,
    content_type: &str,
    body: String,
    extra: &[(&str, String)],
) -> axum::response::Response {
    let mut r = axum::response::Response::new(axum::body::Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

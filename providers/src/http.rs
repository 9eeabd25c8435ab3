//! The one HTTP client every HTTP adapter uses.
//!
//! Timeouts, retry with exponential backoff and "equal jitter" (each delay is drawn
//! from the upper half of the exponential step, so it never collapses to zero) on
//! connection errors, 5xx and 429 (honouring `Retry-After`), bounded by attempt count
//! and total time, and errors that carry provider, operation, name, status and the
//! host's message. Credentials are added by the adapter's request builder and never
//! reach an error.
//!
//! A response whose body is cut short (the connection closed before `Content-Length`
//! bytes or the last chunk arrived) is never parsed: on an [`Idempotency::Idempotent`]
//! request it is retried like a connection error, and when retries run out it is
//! reported as [`ErrorKind::TruncatedAnswer`] ("response body cut after N bytes"),
//! not as an unreadable answer. Requests that may have been applied (timeouts, resets after
//! sending, cut responses) are sent again only when they are idempotent.
//!
//! Before each attempt the request waits until it fits the host's documented rate
//! limits ([`crate::pace::Pacer`], one per client, so one per connected account)
//! and, for a write, until the account's adaptive window of writes in flight
//! has room ([`crate::window::WriteWindow`]: halved when the host answers a
//! write with 5xx or 429, grown after runs of clean writes, never above the
//! host's declared concurrency): time spent waiting there counts neither
//! against the request timeout nor against the retry budget.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode, header::HeaderMap};
use url::Url;

use crate::pace::Pacer;
use crate::window::{WriteOutcome, WriteWindow};
use crate::{Error, ErrorKind, Fqdn, Operation, RateLimit};

/// How hard to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Give up once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// First backoff delay.
    pub base_delay: Duration,
    /// Longest single delay (also caps a `Retry-After` we are willing to honour).
    pub max_delay: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Keep to the host's documented rate limits (its descriptor's
    /// `[[limits.rates]]`); off for a local server or fake standing in for it.
    pub pace: bool,
}

impl Default for RetryPolicy {
    /// Ten attempts, the delays between them drawn from 0.1-0.2 s, 0.2-0.4 s, ... (capped
    /// at 30 s), all within two minutes. Ten is what lets a run through a host that fails
    /// about 30 % of requests converge: a request then fails ten times in a row with a
    /// probability of about 6e-6. A refused connection gets [`CONNECT_ATTEMPTS`] only.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            max_elapsed: Duration::from_secs(120),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            pace: true,
        }
    }
}

impl RetryPolicy {
    /// A fast policy for tests against local servers.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_elapsed: Duration::from_secs(10),
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
            request_timeout: Duration::from_secs(10),
            pace: false,
        }
    }

    /// Delay before attempt `n + 1` (`n`: 1-based count of failures so far):
    /// exponential (`base_delay * 2^n`, capped at `max_delay`) with equal jitter, i.e.
    /// drawn uniformly from the upper half `[step/2, step]` of that step.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_delay);
        let ms = exp.as_millis() as u64;
        let jitter = if ms == 0 {
            0
        } else {
            rand::random_range(ms / 2..=ms)
        };
        Duration::from_millis(jitter)
    }
}

/// A response that came back with a success status.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Parses the body as JSON.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`] when the body is not JSON of the shape `T`.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        provider: &'static str,
        op: Operation,
    ) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                provider,
                op,
                None,
                ErrorKind::Protocol,
                format!("unexpected response body: {e}"),
            )
        })
    }
}

/// A failed HTTP exchange as the adapter's error mapper sees it.
#[derive(Debug)]
pub struct Failure<'a> {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body.
    pub body: &'a [u8],
}

/// Turns a non-success response into the kind and the host's own message.
pub type ErrorMapper = fn(&Failure<'_>) -> (ErrorKind, String);

/// Finds a failure inside a success answer, for hosts that report errors in the
/// body of an HTTP 200 (Netcup's CCP API: `"status":"error"`). It must flag only
/// answers to requests the host did not apply (throttling, a server fault): a
/// flagged answer of a transient kind ([`ErrorKind::is_transient`]) is retried
/// like a 429 or 5xx, whatever the request's [`Idempotency`]; any other kind is
/// returned at once. `None` lets the answer through to the adapter.
pub type AnswerCheck = fn(&[u8]) -> Option<(ErrorKind, String)>;

/// Default mapping by status, with the body (trimmed) as the message.
pub fn default_mapper(f: &Failure<'_>) -> (ErrorKind, String) {
    (
        kind_for_status(f.status),
        String::from_utf8_lossy(f.body)
            .trim()
            .chars()
            .take(500)
            .collect(),
    )
}

/// The usual meaning of an HTTP status.
pub fn kind_for_status(s: StatusCode) -> ErrorKind {
    match s.as_u16() {
        401 => ErrorKind::Auth,
        403 => ErrorKind::Permission,
        404 => ErrorKind::ZoneNotFound,
        409 | 412 => ErrorKind::Conflict,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Invalid,
    }
}

/// Rate-limit headers seen on the latest response, for `maildns diagnose`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RateLimitSeen {
    /// `name: value` pairs of every `ratelimit*` / `x-ratelimit*` / `retry-after` header.
    pub headers: Vec<(String, String)>,
}

/// An HTTP client bound to one host's base URL.
#[derive(Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    provider: &'static str,
    base: Url,
    policy: RetryPolicy,
    mapper: ErrorMapper,
    check: Option<AnswerCheck>,
    rate_limits: Mutex<RateLimitSeen>,
    pacer: Arc<Pacer>,
    writes: Arc<WriteWindow>,
    retry_after_cap: Duration,
}

/// An [`HttpClient`] whose requests are for one zone ([`HttpClient::in_zone`]):
/// zone-scoped rate limits count them in that zone's window.
#[derive(Debug, Clone, Copy)]
pub struct InZone<'a> {
    http: &'a HttpClient,
    zone: &'a Fqdn,
}

impl InZone<'_> {
    /// [`HttpClient::send`], counted against the zone's rate limits.
    ///
    /// # Errors
    /// As [`HttpClient::send`].
    pub async fn send(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        idempotency: Idempotency,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        self.http
            .send_paced(Some(self.zone), op, name, idempotency, build)
            .await
    }
}

/// True when `url` is `https`, or `http` to a loopback address.
pub fn url_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

/// A delete's outcome with 404 counted as done: the record or set is already
/// gone (a retried DELETE whose first answer was lost, or another writer
/// removed it), which is what was asked. Any other error is returned as it is.
///
/// # Errors
/// The error of `r`, unless its status is 404.
pub fn gone_is_done<T>(r: Result<T, Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.status == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `base_url` parsed, when it is a URL maildns may send credentials to:
/// https, or plain http to a loopback address ([`url_allowed`]).
///
/// # Errors
/// What is wrong with it, quoting it (a base URL holds no secret).
pub fn check_base_url(base_url: &str) -> Result<Url, String> {
    let base = Url::parse(base_url).map_err(|e| format!("bad base URL '{base_url}': {e}"))?;
    if url_allowed(&base) {
        Ok(base)
    } else {
        Err(format!(
            "base URL '{base_url}' must use https (plain http is allowed only to loopback addresses)"
        ))
    }
}

impl HttpClient {
    /// A client for `base_url`; plain `http` is refused except to loopback. Its
    /// requests keep to the rate limits of the host registered as `provider`
    /// (none for a kind not registered; [`HttpClient::with_rate_limits`] sets others).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when `base_url` does not parse, is not https (plain
    /// http only to loopback addresses), or the TLS client cannot be built.
    pub fn new(
        provider: &'static str,
        base_url: &str,
        policy: RetryPolicy,
        mapper: ErrorMapper,
    ) -> Result<Self, Error> {
        let cfg = |m: String| {
            Error::new(
                provider,
                Operation::Authenticate,
                None,
                ErrorKind::Config,
                m,
            )
        };
        let mut base = check_base_url(base_url).map_err(cfg)?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let client = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("maildns/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| cfg(format!("HTTP client: {e}")))?;
        let profile = crate::registry::host(provider).and_then(|h| h.profile().ok());
        Ok(HttpClient {
            client,
            provider,
            base,
            policy,
            mapper,
            check: None,
            rate_limits: Mutex::new(RateLimitSeen::default()),
            // A caller that drives a local server or fake (RetryPolicy::fast)
            // does not keep to the real host's documented rates.
            pacer: Arc::new(Pacer::new(
                profile
                    .as_ref()
                    .filter(|_| policy.pace)
                    .map(|p| p.rate_limits.clone())
                    .unwrap_or_default(),
            )),
            // Writes in flight: up to the host's declared concurrency.
            writes: Arc::new(WriteWindow::new(
                profile.map_or(UNREGISTERED_WRITES, |p| p.concurrency),
            )),
            retry_after_cap: policy.max_delay,
        })
    }

    /// Checks every success answer with `check` ([`AnswerCheck`]).
    #[must_use]
    pub fn with_answer_check(mut self, check: AnswerCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// The same client keeping to `limits` instead of the registered host's.
    pub fn with_rate_limits(mut self, limits: Vec<RateLimit>) -> Self {
        self.pacer = Arc::new(Pacer::new(limits));
        self
    }

    /// The pacer every request of this client waits on.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The window every write of this client waits on.
    pub fn write_window(&self) -> &WriteWindow {
        &self.writes
    }

    /// This client, with requests counted against `zone`'s rate limits.
    pub fn in_zone<'a>(&'a self, zone: &'a Fqdn) -> InZone<'a> {
        InZone { http: self, zone }
    }

    /// Honours a 429's `Retry-After` of up to `cap` (instead of the policy's
    /// `max_delay`), for hosts whose documented windows are longer than a
    /// usual backoff step (deSEC's 15 writes a minute). The time waited on
    /// such answers is added to the policy's `max_elapsed`, up to `cap` in all;
    /// a longer `Retry-After` is reported at once with the wait it asks for.
    pub fn with_retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap.max(self.policy.max_delay);
        self
    }

    /// The underlying client (for adapters that need a second endpoint, e.g. an OAuth token URL).
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// The base URL, ending in `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (without a leading `/`) joined to the base URL.
    pub fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .unwrap_or_else(|_| self.base.clone())
    }

    /// Rate-limit headers seen on the latest response.
    pub fn rate_limits_seen(&self) -> RateLimitSeen {
        self.rate_limits
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Sends a request built by `build` (called again for each attempt), retrying
    /// transient failures: connection failures (at most [`CONNECT_ATTEMPTS`]), 5xx,
    /// 429 and, for
    /// [`Idempotency::Idempotent`] requests, also timeouts, connections reset after the
    /// request was sent, and responses cut mid-body. Every attempt is bounded by the
    /// policy's request timeout and the whole exchange by `max_attempts` and
    /// `max_elapsed` (time waiting for the rate limits excluded). Zone-scoped rate
    /// limits count the request in one window shared by all requests sent this way;
    /// [`HttpClient::in_zone`] names the zone.
    ///
    /// # Errors
    /// The last failure when retries run out or a failure is not transient; a success
    /// status whose body was cut short is [`ErrorKind::TruncatedAnswer`].
    pub async fn send(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        idempotency: Idempotency,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        self.send_paced(None, op, name, idempotency, build).await
    }

    /// Sends the DELETE `build` makes for `name` ([`Idempotency::Idempotent`]:
    /// retried like any idempotent request), a 404 counting as done ([`gone_is_done`]).
    ///
    /// # Errors
    /// As [`HttpClient::send`], but for a 404.
    pub async fn delete(
        &self,
        op: Operation,
        name: &Fqdn,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(), Error> {
        gone_is_done(
            self.send(op, Some(name), Idempotency::Idempotent, build)
                .await,
        )
    }

    async fn send_paced(
        &self,
        zone: Option<&Fqdn>,
        op: Operation,
        name: Option<&Fqdn>,
        idempotency: Idempotency,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let idempotent = idempotency == Idempotency::Idempotent;
        let start = Instant::now();
        let mut paced = Duration::ZERO;
        let mut attempt = 0u32;
        let mut connect_failures = 0u32;
        // Time waited on long Retry-After answers, added to max_elapsed.
        let mut extra = Duration::ZERO;
        loop {
            attempt += 1;
            let (client, request) = build(&self.client).build_split();
            let outcome = match request {
                Err(e) => Attempt::Failed(e),
                Ok(request) => {
                    let write = !matches!(
                        *request.method(),
                        Method::GET | Method::HEAD | Method::OPTIONS
                    );
                    let waited = Instant::now();
                    let slot = if write {
                        Some(self.writes.acquire().await)
                    } else {
                        None
                    };
                    let ticket = self.pacer.acquire(zone.map(Fqdn::as_str), write).await;
                    let wait = waited.elapsed();
                    paced += wait;
                    // After waiting its turn, the request is built again: one
                    // signed with the time it is made (OVH's X-Ovh-Timestamp,
                    // checked within seconds) must not carry the time before
                    // the wait.
                    let (client, request) = if wait >= REBUILD_AFTER {
                        match build(&self.client).build_split() {
                            (rebuilt, Ok(fresh)) => (rebuilt, fresh),
                            (_, Err(_)) => (client, request),
                        }
                    } else {
                        (client, request)
                    };
                    let budget = self
                        .policy
                        .max_elapsed
                        .saturating_add(extra)
                        .saturating_sub(start.elapsed().saturating_sub(paced))
                        .min(self.policy.request_timeout);
                    let outcome =
                        match tokio::time::timeout(budget, self.attempt(&client, request)).await {
                            Ok(o) => o,
                            Err(_) => Attempt::TimedOut(budget),
                        };
                    drop(ticket);
                    if let Some(slot) = slot {
                        slot.finish(match &outcome {
                            Attempt::Answer { status, .. } if status.is_success() => {
                                WriteOutcome::Clean
                            }
                            Attempt::Answer { status, .. }
                                if status.is_server_error()
                                    || *status == StatusCode::TOO_MANY_REQUESTS =>
                            {
                                WriteOutcome::Overloaded
                            }
                            _ => WriteOutcome::Neutral,
                        });
                    }
                    outcome
                }
            };
            let (err, retry_after) = match outcome {
                Attempt::Answer {
                    status,
                    headers,
                    body,
                    cut,
                } => {
                    if status.is_success() {
                        match cut {
                            None => match self.check.and_then(|check| check(&body)) {
                                None => {
                                    return Ok(Response {
                                        status,
                                        headers,
                                        body,
                                    });
                                }
                                Some((kind, message)) => {
                                    let e = Error::new(self.provider, op, name, kind, message)
                                        .with_status(status.as_u16());
                                    if !e.kind.is_transient() || e.kind == ErrorKind::Conflict {
                                        return Err(e);
                                    }
                                    (e, retry_after(&headers))
                                }
                            },
                            Some(why) => {
                                let e = Error::new(
                                    self.provider,
                                    op,
                                    name,
                                    ErrorKind::TruncatedAnswer,
                                    truncated_message(body.len(), &headers, &why),
                                )
                                .with_status(status.as_u16());
                                if !idempotent {
                                    return Err(e);
                                }
                                (e, None)
                            }
                        }
                    } else {
                        // An error answer is mapped even when its body was cut: the
                        // status alone says what happened.
                        let failure = Failure {
                            status,
                            headers: &headers,
                            body: &body,
                        };
                        let (kind, message) = (self.mapper)(&failure);
                        let mut e = Error::new(self.provider, op, name, kind, message)
                            .with_status(status.as_u16());
                        if !e.kind.is_transient() || e.kind == ErrorKind::Conflict {
                            return Err(e);
                        }
                        let ra = retry_after(&headers);
                        if e.kind == ErrorKind::RateLimited
                            && ra.is_some_and(|d| {
                                d > self.policy.max_delay
                                    && extra + d.saturating_sub(self.policy.max_delay)
                                        > self.retry_after_cap
                            })
                        {
                            e.message = format!(
                                "{} (the host asks to wait {}s)",
                                e.message,
                                ra.unwrap_or_default().as_secs()
                            );
                            return Err(e);
                        }
                        (e, ra)
                    }
                }
                Attempt::Failed(re) => {
                    // Not connected: the request never left, so any request may be sent
                    // again. Otherwise it may have been applied: only idempotent ones.
                    // A host that refuses connections is most likely down: it gets a
                    // few attempts only, so that it is reported without delay.
                    if re.is_connect() {
                        connect_failures += 1;
                    }
                    let retryable = (re.is_connect() && connect_failures < CONNECT_ATTEMPTS)
                        || (!re.is_connect()
                            && idempotent
                            && !re.is_builder()
                            && !re.is_redirect());
                    // reqwest's error text may contain the URL but never our headers.
                    let e = Error::new(self.provider, op, name, ErrorKind::Network, strip_url(&re));
                    if !retryable {
                        return Err(e);
                    }
                    (e, None)
                }
                Attempt::TimedOut(budget) => {
                    let e = Error::new(
                        self.provider,
                        op,
                        name,
                        ErrorKind::Network,
                        format!("no complete answer within {} ms", budget.as_millis()),
                    );
                    if !idempotent {
                        return Err(e);
                    }
                    (e, None)
                }
            };
            let delay = retry_after.unwrap_or_else(|| self.policy.backoff(attempt));
            if retry_after.is_some() && err.kind == ErrorKind::RateLimited {
                extra += delay.saturating_sub(self.policy.max_delay);
            }
            if attempt >= self.policy.max_attempts
                || start.elapsed().saturating_sub(paced) + delay >= self.policy.max_elapsed + extra
            {
                tracing::warn!(provider = self.provider, %op, attempts = attempt, "giving up: {err}");
                return Err(err);
            }
            tracing::debug!(provider = self.provider, %op, attempt, ?delay, "retrying: {err}");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: send, then read the whole body chunk by chunk so that a cut body
    /// is known as such (with the bytes received so far) instead of read as empty.
    async fn attempt(&self, client: &reqwest::Client, request: reqwest::Request) -> Attempt {
        let mut resp = match client.execute(request).await {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(e),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        self.note_rate_limits(&headers);
        let mut body = Vec::new();
        let cut = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break None,
                Err(e) => break Some(strip_url(&e)),
            }
        };
        // A body shorter than announced that reqwest did not flag (it normally does).
        let cut = cut.or_else(|| {
            content_length(&headers)
                .filter(|&n| (body.len() as u64) < n)
                .map(|_| "connection closed early".to_string())
        });
        Attempt::Answer {
            status,
            headers,
            body,
            cut,
        }
    }

    /// Shorthand for a request with a method and path relative to the base URL.
    pub fn request(&self, client: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        client.request(method, self.url(path))
    }

    fn note_rate_limits(&self, headers: &HeaderMap) {
        let seen: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k.starts_with("ratelimit") || k.starts_with("x-ratelimit") || k == "retry-after"
            })
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        if !seen.is_empty()
            && let Ok(mut g) = self.rate_limits.lock()
        {
            g.headers = seen;
        }
    }
}

/// Most writes in flight for a client whose kind declares no concurrency (not
/// in the registry).
const UNREGISTERED_WRITES: usize = 16;

/// Attempts at most when the connection itself cannot be made (refused, no route):
/// a host that is down is reported after about a second, not after the whole budget.
pub const CONNECT_ATTEMPTS: u32 = 4;

/// A pacing wait at least this long makes the request be built again before
/// it is sent (see `send_paced`).
const REBUILD_AFTER: Duration = Duration::from_millis(100);

/// Whether sending a request twice has the same effect as sending it once.
///
/// RFC 9110 §9.2.2: GET, PUT and DELETE are idempotent; so is a PATCH or POST that
/// replaces a whole RRset with given content (PowerDNS `REPLACE`, Route 53 `UPSERT`,
/// a Google change whose deletions must match). A POST that creates one more record
/// is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// May be sent again after a timeout, a reset after sending or a cut answer.
    Idempotent,
    /// Sent again only when the connection could not be made at all.
    NotIdempotent,
}

/// What one attempt gave.
enum Attempt {
    /// The host answered; `cut` says why the body is incomplete, if it is.
    Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
        cut: Option<String>,
    },
    /// No answer (connection refused or reset, request error).
    Failed(reqwest::Error),
    /// The attempt's time budget (this long) ran out.
    TimedOut(Duration),
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// "response body cut after N bytes (of M announced): why".
fn truncated_message(received: usize, headers: &HeaderMap, why: &str) -> String {
    let of = content_length(headers)
        .map(|n| format!(" of {n} announced"))
        .unwrap_or_default();
    format!("response body cut after {received} bytes{of}: {why}")
}

/// Parses `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        // Query strings may carry keys for some hosts (PowerDNS `api-key=`): drop them.
        let mut clean = u.clone();
        clean.set_query(None);
        s = s.replace(u.as_str(), clean.as_str());
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for (u, ok) in [
            ("https://api.example.com/v1", true),
            ("http://127.0.0.1:8081/api/v1", true),
            ("http://[::1]:80/", true),
            ("http://localhost:1/", true),
            ("http://api.example.com/v1", false),
            ("http://10.0.0.1/", false),
            ("ftp://127.0.0.1/", false),
        ] {
            assert_eq!(url_allowed(&Url::parse(u).unwrap()), ok, "{u}");
        }
        assert!(
            HttpClient::new(
                "x",
                "http://example.com",
                RetryPolicy::fast(),
                default_mapper
            )
            .is_err()
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for n in 1..20 {
            let d = p.backoff(n);
            assert!(d <= p.max_delay, "{n}: {d:?}");
        }
        assert!(p.backoff(1) <= Duration::from_millis(500));
        assert!(p.backoff(10) >= Duration::from_secs(15));
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the scripted server does with the n-th connection (one request each).
    #[derive(Clone, Copy)]
    enum Script {
        /// `200`, `Content-Length: 19`, then 7 bytes and close.
        Cut,
        /// `200` with the whole body.
        Full,
        /// Read the request, then close without answering.
        Close,
        /// Read the request, never answer.
        Hang,
    }

    const FULL: &[u8] = b"{\"rrsets\":[],\"x\":1}";

    /// A loopback server playing `script` (the last entry repeats); returns the base
    /// URL and the number of connections seen.
    async fn scripted(script: Vec<Script>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let step = script[n.min(script.len() - 1)];
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    let head = |len: usize| {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                        )
                    };
                    match step {
                        Script::Cut => {
                            let _ = s.write_all(head(FULL.len()).as_bytes()).await;
                            let _ = s.write_all(&FULL[..7]).await;
                        }
                        Script::Full => {
                            let _ = s.write_all(head(FULL.len()).as_bytes()).await;
                            let _ = s.write_all(FULL).await;
                        }
                        Script::Close => {}
                        Script::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        (format!("http://{addr}/"), count)
    }

    fn client(base: &str, policy: RetryPolicy) -> HttpClient {
        HttpClient::new("test", base, policy, default_mapper).unwrap()
    }

    async fn get(c: &HttpClient, idem: Idempotency) -> Result<Response, Error> {
        c.send(Operation::Read, None, idem, |cl| {
            c.request(cl, Method::GET, "zones")
        })
        .await
    }

    /// A request that waited for its turn is built again before it is sent,
    /// so a signature over the time (OVH's X-Ovh-Timestamp, checked within
    /// seconds) carries the time it is sent at, not the time before the wait.
    #[tokio::test]
    async fn a_request_is_built_again_after_waiting_its_turn() {
        let (base, count) = scripted(vec![Script::Full]).await;
        let c = client(&base, RetryPolicy::fast())
            .with_rate_limits(vec![crate::RateLimit::account(1, Duration::from_secs(1))]);
        let built = std::sync::Mutex::new(Vec::new());
        for _ in 0..2 {
            c.send(Operation::Read, None, Idempotency::Idempotent, |cl| {
                built.lock().unwrap().push(Instant::now());
                c.request(cl, Method::GET, "zones")
            })
            .await
            .unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 2);
        let t = built.lock().unwrap().clone();
        assert_eq!(t.len(), 3, "the paced request is built twice");
        assert!(
            t[2] - t[1] >= Duration::from_millis(800),
            "built again after the wait: {:?}",
            t[2] - t[1]
        );
    }

    #[tokio::test]
    async fn cut_body_is_retried_on_idempotent_request() {
        let (base, count) = scripted(vec![Script::Cut, Script::Cut, Script::Full]).await;
        let c = client(&base, RetryPolicy::fast());
        let r = get(&c, Idempotency::Idempotent)
            .await
            .expect("third attempt succeeds");
        assert_eq!(r.body, FULL);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn cut_body_every_time_is_reported_truncated_not_bad_json() {
        let (base, count) = scripted(vec![Script::Cut]).await;
        let policy = RetryPolicy::fast();
        let c = client(&base, policy);
        let e = get(&c, Idempotency::Idempotent).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::TruncatedAnswer, "{e}");
        assert!(
            e.message
                .starts_with("response body cut after 7 bytes of 19 announced"),
            "{e}"
        );
        assert!(e.to_string().contains("answer cut short (HTTP 200)"), "{e}");
        assert_eq!(count.load(Ordering::SeqCst), policy.max_attempts as usize);
    }

    #[tokio::test]
    async fn cut_body_on_non_idempotent_request_is_not_sent_again() {
        let (base, count) = scripted(vec![Script::Cut, Script::Full]).await;
        let c = client(&base, RetryPolicy::fast());
        let e = get(&c, Idempotency::NotIdempotent).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::TruncatedAnswer, "{e}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn closed_after_request_is_retried_only_when_idempotent() {
        let (base, count) = scripted(vec![Script::Close, Script::Full]).await;
        let c = client(&base, RetryPolicy::fast());
        let r = get(&c, Idempotency::Idempotent).await.expect("retried");
        assert_eq!(r.body, FULL);
        assert_eq!(count.load(Ordering::SeqCst), 2);

        let (base, count) = scripted(vec![Script::Close, Script::Full]).await;
        let c = client(&base, RetryPolicy::fast());
        let e = get(&c, Idempotency::NotIdempotent).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network, "{e}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refused_connections_get_a_few_attempts_only() {
        // A port nobody listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let policy = RetryPolicy {
            max_attempts: 10,
            ..RetryPolicy::fast()
        };
        let c = client(&format!("http://127.0.0.1:{port}/"), policy);
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = attempts.clone();
        let e = c
            .send(Operation::Read, None, Idempotency::Idempotent, |cl| {
                seen.fetch_add(1, Ordering::SeqCst);
                c.request(cl, Method::GET, "zones")
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network, "{e}");
        assert_eq!(attempts.load(Ordering::SeqCst), CONNECT_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn total_time_budget_bounds_a_hanging_attempt() {
        let (base, count) = scripted(vec![Script::Hang]).await;
        let policy = RetryPolicy {
            max_elapsed: Duration::from_millis(300),
            request_timeout: Duration::from_secs(30),
            ..RetryPolicy::fast()
        };
        let c = client(&base, policy);
        let e = get(&c, Idempotency::Idempotent).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network, "{e}");
        // The attempt was cut at the 300 ms left of the budget, not the 30 s timeout,
        // and no time was left for another.
        let ms: u64 = e
            .message
            .strip_prefix("no complete answer within ")
            .and_then(|m| m.strip_suffix(" ms"))
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("{e}"));
        assert!(ms <= 300, "{e}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}

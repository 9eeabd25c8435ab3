//! The one HTTP client every HTTP adapter uses.
//!
//! Timeouts, retry with exponential backoff and full jitter on connection errors,
//! 5xx and 429 (honouring `Retry-After`), bounded by attempt count and total time,
//! and errors that carry provider, operation, name, status and the host's message.
//! Credentials are added by the adapter's request builder and never reach an error.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode, header::HeaderMap};
use url::Url;

use crate::{Error, ErrorKind, Fqdn, Operation};

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
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(120),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
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
        }
    }

    /// Delay before attempt `n` (1-based count of failures so far): exponential with full jitter.
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
    rate_limits: Mutex<RateLimitSeen>,
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

impl HttpClient {
    /// A client for `base_url`; plain `http` is refused except to loopback.
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
        let mut base =
            Url::parse(base_url).map_err(|e| cfg(format!("bad base URL '{base_url}': {e}")))?;
        if !url_allowed(&base) {
            return Err(cfg(format!(
                "base URL '{base_url}' must use https (plain http is allowed only to loopback addresses)"
            )));
        }
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
        Ok(HttpClient {
            client,
            provider,
            base,
            policy,
            mapper,
            rate_limits: Mutex::new(RateLimitSeen::default()),
        })
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
    /// transient failures. `idempotent` requests are also retried after a timeout;
    /// others only when the connection could not be made.
    pub async fn send(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        idempotent: bool,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = build(&self.client).send().await;
            let (err, retry_after) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    self.note_rate_limits(&headers);
                    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    if status.is_success() {
                        return Ok(Response {
                            status,
                            headers,
                            body,
                        });
                    }
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
                        && ra.is_some_and(|d| d > self.policy.max_delay)
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
                Err(re) => {
                    let retryable = re.is_connect() || (idempotent && re.is_timeout());
                    // reqwest's error text may contain the URL but never our headers.
                    let e = Error::new(self.provider, op, name, ErrorKind::Network, strip_url(&re));
                    if !retryable {
                        return Err(e);
                    }
                    (e, None)
                }
            };
            let delay = retry_after.unwrap_or_else(|| self.policy.backoff(attempt));
            if attempt >= self.policy.max_attempts
                || start.elapsed() + delay > self.policy.max_elapsed
            {
                tracing::warn!(provider = self.provider, %op, attempts = attempt, "giving up: {err}");
                return Err(err);
            }
            tracing::debug!(provider = self.provider, %op, attempt, ?delay, "retrying: {err}");
            tokio::time::sleep(delay).await;
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

//! A minimal, configurable "generic RRset JSON API" whose TXT handling can be
//! switched to the odd behaviours some DNS hosts show ([`Quirks`]), and the tiny
//! test-only adapter that talks to it ([`QuirkyProvider`]). Used to check that
//! `maildns diagnose` tells each behaviour apart.
//!
//! API (bearer token):
//! - `GET /zones/{zone}`: 200 `{"name": zone}` or 404.
//! - `GET|PUT|DELETE /zones/{zone}/txt/{name}`: the TXT set at `name` as
//!   `{"ttl": 300, "records": [["string", "string"], ...]}`; GET 404 when absent,
//!   PUT 204 (422 `{"error": "..."}` when refused), DELETE 204 even when absent.
//! - Every answer carries `x-ratelimit-limit` and `x-ratelimit-remaining`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maildns_providers::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use maildns_providers::{
    CharacterString, Error, ErrorKind, Fqdn, Operation, Profile, Provider, TxtRecord, TxtSet, Zone,
    zone_candidates,
};
use reqwest::Method;
use serde_json::{Value, json};

use super::common::{self, Common, Server, Style, bearer_ok, lock};

/// Odd behaviours, all off by default (then the fake stores exactly what it gets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Keep only the first `n` bytes of each record's joined value (re-split at 255).
    pub truncate_value_at: Option<usize>,
    /// Keep only the first string of each record.
    pub single_string: bool,
    /// Join each record's strings into one string (may exceed 255 bytes).
    pub merge_strings: bool,
    /// Refuse any string over 255 bytes with 422.
    pub reject_long_strings: bool,
    /// Store each string of a record as a record of its own.
    pub split_records: bool,
    /// Writes (PUT) after the first `n` fail with 500.
    pub fail_writes_after: Option<usize>,
    /// Writes (PUT) after the first `n` are held for 5 seconds, then answered 503
    /// with nothing stored: a slow host, so that a test can interrupt a run in the
    /// middle whatever the machine's speed.
    pub hold_writes_after: Option<usize>,
}

/// One stored set: TTL and records, each a list of strings (no 255 limit).
pub type StoredSet = (u32, Vec<Vec<String>>);

struct Inner {
    common: Arc<Common>,
    zone: String,
    quirks: Quirks,
    sets: Mutex<BTreeMap<String, StoredSet>>,
    writes: Mutex<usize>,
}

/// The running fake; stops when dropped.
pub struct QuirkyFake {
    inner: Arc<Inner>,
    server: Server,
}

fn error_body(status: u16) -> Value {
    json!({"error": format!("HTTP {status} (injected)")})
}

fn auth_error(_: &HeaderMap) -> (u16, Value) {
    (401, json!({"error": "bad token"}))
}

fn with_limits(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "x-ratelimit-limit",
        axum::http::HeaderValue::from_static("100"),
    );
    h.insert(
        "x-ratelimit-remaining",
        axum::http::HeaderValue::from_static("99"),
    );
    r
}

impl QuirkyFake {
    /// Starts the fake serving `zone`, with `quirks`; requests need `Bearer <token>`.
    pub async fn start(token: &str, zone: &str, quirks: Quirks) -> QuirkyFake {
        let common = Common::new(
            token,
            Style {
                auth_ok: bearer_ok,
                auth_error,
                error_body,
            },
        );
        let inner = Arc::new(Inner {
            common: common.clone(),
            zone: zone.trim_end_matches('.').to_string(),
            quirks,
            sets: Mutex::new(BTreeMap::new()),
            writes: Mutex::new(0),
        });
        let router = Router::new()
            .route("/zones/{zone}", get(get_zone))
            .route(
                "/zones/{zone}/txt/{name}",
                get(get_set).put(put_set).delete(delete_set),
            )
            .with_state(inner.clone());
        let server = common::serve(router, common, "").await;
        QuirkyFake { inner, server }
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// Every stored TXT set by name.
    pub fn sets(&self) -> BTreeMap<String, StoredSet> {
        lock(&self.inner.sets).clone()
    }

    /// Stores a set directly (e.g. a leftover of an earlier run).
    pub fn put(&self, name: &str, ttl: u32, records: Vec<Vec<String>>) {
        lock(&self.inner.sets).insert(name.to_string(), (ttl, records));
    }

    /// How many PUTs were received.
    pub fn writes(&self) -> usize {
        *lock(&self.inner.writes)
    }

    /// The next `n` requests fail with `status`.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.inner.common.fail_next(status, n);
    }
}

async fn get_zone(State(s): State<Arc<Inner>>, Path(zone): Path<String>) -> Response {
    with_limits(if zone == s.zone {
        common::json(200, json!({"name": zone}))
    } else {
        common::json(404, json!({"error": "no such zone"}))
    })
}

async fn get_set(
    State(s): State<Arc<Inner>>,
    Path((zone, name)): Path<(String, String)>,
) -> Response {
    let found = (zone == s.zone)
        .then(|| lock(&s.sets).get(&name).cloned())
        .flatten();
    with_limits(match found {
        Some((ttl, records)) => common::json(200, json!({"ttl": ttl, "records": records})),
        None => common::json(404, json!({"error": "not found"})),
    })
}

async fn delete_set(
    State(s): State<Arc<Inner>>,
    Path((_zone, name)): Path<(String, String)>,
) -> Response {
    lock(&s.sets).remove(&name);
    with_limits(axum::http::StatusCode::NO_CONTENT.into_response())
}

fn resplit(value: &[u8]) -> Vec<String> {
    value
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

async fn put_set(
    State(s): State<Arc<Inner>>,
    Path((zone, name)): Path<(String, String)>,
    body: String,
) -> Response {
    let n = {
        let mut w = lock(&s.writes);
        *w += 1;
        *w
    };
    if s.quirks.fail_writes_after.is_some_and(|max| n > max) {
        return with_limits(common::json(500, json!({"error": "internal error"})));
    }
    if s.quirks.hold_writes_after.is_some_and(|max| n > max) {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        return with_limits(common::json(503, json!({"error": "busy"})));
    }
    if zone != s.zone {
        return with_limits(common::json(404, json!({"error": "no such zone"})));
    }
    let parsed: Option<(u32, Vec<Vec<String>>)> =
        serde_json::from_str::<Value>(&body).ok().and_then(|v| {
            Some((
                v["ttl"].as_u64()? as u32,
                serde_json::from_value(v["records"].clone()).ok()?,
            ))
        });
    let Some((ttl, records)) = parsed else {
        return with_limits(common::json(400, json!({"error": "malformed body"})));
    };
    let q = s.quirks;
    if q.reject_long_strings && records.iter().flatten().any(|s| s.len() > 255) {
        return with_limits(common::json(
            422,
            json!({"error": "TXT record strings may not be longer than 255 characters"}),
        ));
    }
    let mut stored: Vec<Vec<String>> = Vec::new();
    for mut r in records {
        if q.single_string {
            r.truncate(1);
        }
        if q.merge_strings {
            r = vec![r.concat()];
        }
        if let Some(max) = q.truncate_value_at {
            let v = r.concat();
            if v.len() > max {
                r = resplit(v.as_bytes().get(..max).unwrap_or_default());
            }
        }
        if q.split_records {
            stored.extend(r.into_iter().map(|s| vec![s]));
        } else {
            stored.push(r);
        }
    }
    lock(&s.sets).insert(name, (ttl, stored));
    with_limits(axum::http::StatusCode::NO_CONTENT.into_response())
}

fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let msg = serde_json::from_slice::<Value>(f.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(f.body).into_owned());
    (kind_for_status(f.status), msg)
}

const KIND: &str = "quirky";

/// The test-only adapter for [`QuirkyFake`].
#[derive(Debug)]
pub struct QuirkyProvider {
    http: HttpClient,
    token: String,
    profile: Profile,
    join_values: bool,
}

impl QuirkyProvider {
    /// An adapter declaring `profile`. With `join_values` it sends each record's
    /// joined value as one string, as adapters of hosts that split values
    /// themselves do; otherwise it sends the strings as they are.
    pub fn new(base_url: &str, token: &str, profile: Profile, join_values: bool) -> QuirkyProvider {
        QuirkyProvider {
            http: HttpClient::new(KIND, base_url, RetryPolicy::fast(), map_error)
                .expect("loopback base URL"),
            token: token.to_string(),
            profile,
            join_values,
        }
    }

    fn req(&self, c: &reqwest::Client, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(c, m, path).bearer_auth(&self.token)
    }

    fn path(zone: &Zone, name: &Fqdn) -> String {
        format!("zones/{}/txt/{}", zone.id, name.as_str())
    }
}

fn to_record(strings: &[String]) -> TxtRecord {
    let parts: Option<Vec<CharacterString>> = strings
        .iter()
        .map(|s| CharacterString::new(s.as_bytes().to_vec()).ok())
        .collect();
    match parts.and_then(TxtRecord::from_strings) {
        Some(r) => r,
        // A string the DNS cannot hold: what a server would serve, split at 255.
        None => TxtRecord::from_value(strings.concat()),
    }
}

#[async_trait::async_trait]
impl Provider for QuirkyProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        for c in zone_candidates(name) {
            let path = format!("zones/{}", c.as_str());
            match self
                .http
                .send(
                    Operation::FindZone,
                    Some(name),
                    Idempotency::Idempotent,
                    |cl| self.req(cl, Method::GET, &path),
                )
                .await
            {
                Ok(_) => {
                    return Ok(Zone {
                        id: c.to_string(),
                        name: c,
                    });
                }
                Err(e) if e.status == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            KIND,
            Operation::FindZone,
            Some(name),
            ErrorKind::ZoneNotFound,
            "no zone holds the name",
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let op = Operation::Read;
        let path = Self::path(zone, name);
        let resp = match self
            .http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::GET, &path)
            })
            .await
        {
            Ok(r) => r,
            Err(e) if e.status == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = resp.json(KIND, op)?;
        let records: Vec<Vec<String>> = serde_json::from_value(v["records"].clone())
            .map_err(|e| Error::new(KIND, op, Some(name), ErrorKind::Protocol, e.to_string()))?;
        if records.is_empty() {
            return Ok(None);
        }
        Ok(Some(TxtSet {
            ttl: v["ttl"].as_u64().unwrap_or(0) as u32,
            records: records.iter().map(|r| to_record(r)).collect(),
        }))
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        for r in &set.records {
            self.profile.check(r).map_err(|l| {
                Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::Limit(l),
                    "refused before sending",
                )
            })?;
        }
        let records: Vec<Vec<String>> = set
            .records
            .iter()
            .map(|r| {
                if self.join_values {
                    vec![r.value_lossy()]
                } else {
                    r.strings()
                        .iter()
                        .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                        .collect()
                }
            })
            .collect();
        let body = json!({"ttl": set.ttl, "records": records});
        let path = Self::path(zone, name);
        self.http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                self.req(c, Method::PUT, &path).json(&body)
            })
            .await
            .map(|_| ())
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let path = Self::path(zone, name);
        match self
            .http
            .send(
                Operation::Delete,
                Some(name),
                Idempotency::Idempotent,
                |c| self.req(c, Method::DELETE, &path),
            )
            .await
        {
            Err(e) if e.status == Some(404) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

//! A stateful fake of Azure DNS (ARM `Microsoft.Network/dnsZones`, api-version
//! 2018-05-01) and of Entra ID's v2.0 token endpoint, on 127.0.0.1.
//!
//! - Token: `POST /{tenant}/oauth2/v2.0/token` takes only the form grant
//!   `client_credentials` with the right `client_id` and `client_secret`
//!   (401 `invalid_client` AADSTS7000215 otherwise); the token's audience is the
//!   `scope` asked for minus `/.default`, and ARM refuses a token for another
//!   audience with 401 `InvalidAuthenticationTokenAudience`.
//! - ARM: every request needs `?api-version=2018-05-01` (400
//!   `MissingApiVersionParameter` / `InvalidApiVersionParameter`); a wrong
//!   subscription or resource group is 404 `ResourceGroupNotFound`.
//! - Record sets (TXT only): `GET|PUT|PATCH|DELETE …/dnsZones/{zone}/TXT/{name}`,
//!   names relative with `@` for the apex, case-insensitive; the listing
//!   `GET …/TXT?$top=` pages with `nextLink`. Every write mints a new ETag;
//!   `If-Match` / `If-None-Match: *` are enforced with 412; PUT answers 201 on
//!   create and 200 on replace, DELETE 200 (204 when absent). Strings over 255
//!   characters, more than 20 records or more than 4,096 characters per set are
//!   400 `BadRequest` in the DNS provider's top-level `{code,message}` envelope.
//! - Broad writes trip the [`Tripwire`] (the test fails): a PUT or DELETE of a
//!   record set without a precondition (an unconditional overwrite), and any PUT,
//!   PATCH or DELETE of a whole zone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

/// The API version the fake serves.
pub const API_VERSION: &str = "2018-05-01";

/// The audience ARM accepts.
const ARM_AUDIENCE: &str = "https://management.azure.com";

/// One stored TXT record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSet {
    /// TTL in seconds.
    pub ttl: u64,
    /// Records, each its strings as stored.
    pub records: Vec<Vec<String>>,
    /// The set's current ETag.
    pub etag: String,
}

#[derive(Default)]
struct St {
    tenant: String,
    client_id: String,
    client_secret: String,
    subscription: String,
    resource_group: String,
    /// token -> audience
    tokens: HashMap<String, String>,
    tokens_issued: usize,
    zones: Vec<String>,
    /// (zone, relative name lowercased) -> set
    sets: BTreeMap<(String, String), StoredSet>,
    page_size: usize,
}

type Shared = kit::Shared<St>;

/// The service principal the fake trusts.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Directory (tenant) id.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Subscription id.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
}

/// The running fake; stops when dropped, and fails the test when a broad
/// endpoint was called.
pub struct FakeAzure {
    /// ARM base URL: `http://127.0.0.1:<port>`.
    pub url: String,
    /// Token endpoint: `http://127.0.0.1:<port>/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    shared: Shared,
    _task: ServerTask,
}

/// Checks the tripwire on the test's thread (the server task, holding the
/// other reference, is dropped on a runtime thread where a panic is lost).
impl Drop for FakeAzure {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

impl std::fmt::Debug for FakeAzure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAzure")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn new_etag() -> String {
    let a: u32 = rand::random();
    let b: u16 = rand::random();
    let c: u64 = rand::random();
    format!("{a:08x}-{b:04x}-0000-0000-{:012x}", c & 0xffff_ffff_ffff)
}

impl FakeAzure {
    /// Starts the fake trusting `p`.
    pub async fn start(p: &Principal) -> FakeAzure {
        let state = Arc::new(Mutex::new(St {
            tenant: p.tenant.clone(),
            client_id: p.client_id.clone(),
            client_secret: p.client_secret.clone(),
            subscription: p.subscription.clone(),
            resource_group: p.resource_group.clone(),
            page_size: 100,
            ..St::default()
        }));
        let shared = Shared::new(state.clone(), Tripwire::new("Azure DNS"));
        let (addr, task) = shared.serve(handle).await;
        FakeAzure {
            url: format!("http://{addr}"),
            token_url: format!("http://{addr}/{}/oauth2/v2.0/token", p.tenant),
            shared,
            _task: task,
        }
    }

    /// Adds a public DNS zone (name without a trailing dot).
    pub fn add_zone(&self, zone: &str) {
        lock(&self.shared.state)
            .zones
            .push(zone.trim_end_matches('.').to_ascii_lowercase());
    }

    /// Another writer puts the TXT set at relative `name` (`@` for the apex):
    /// stored as given, with a new ETag, as the portal or another tool would.
    pub fn foreign_put(&self, zone: &str, name: &str, ttl: u64, records: &[&[&str]]) -> String {
        let etag = new_etag();
        lock(&self.shared.state).sets.insert(
            (zone.to_string(), name.to_ascii_lowercase()),
            StoredSet {
                ttl,
                records: records
                    .iter()
                    .map(|r| r.iter().map(|s| s.to_string()).collect())
                    .collect(),
                etag: etag.clone(),
            },
        );
        etag
    }

    /// The TXT set stored at relative `name`.
    pub fn set(&self, zone: &str, name: &str) -> Option<StoredSet> {
        lock(&self.shared.state)
            .sets
            .get(&(zone.to_string(), name.to_ascii_lowercase()))
            .cloned()
    }

    /// Every request received so far (token requests included).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// The write requests (PUT, PATCH, DELETE) received so far.
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "POST")
            .collect()
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.state).tokens_issued
    }

    /// Listings return at most `n` items per page.
    pub fn set_page_size(&self, n: usize) {
        lock(&self.shared.state).page_size = n.max(1);
    }

    /// The next `n` ARM requests fail with `status` in ARM's envelope.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }

    /// The next `n` ARM requests get 429 with `Retry-After: retry_after`.
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        self.shared.faults.push(Fault::Throttle { retry_after }, n);
    }

    /// The broad endpoints called so far (taken: the test called them on purpose).
    pub fn take_broad_calls(&self) -> Vec<String> {
        self.shared.tripwire.take()
    }
}

/// An ARM front-door error `{"error":{"code","message"}}`.
fn arm_error(status: u16, code: &str, message: &str) -> Response {
    kit::respond(
        status,
        "application/json; charset=utf-8",
        json!({"error": {"code": code, "message": message}}).to_string(),
        &[],
    )
}

/// A DNS resource provider error: top-level `{"code","message"}`.
fn rp_error(status: u16, code: &str, message: &str) -> Response {
    kit::respond(
        status,
        "application/json; charset=utf-8",
        json!({"code": code, "message": message}).to_string(),
        &[],
    )
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::Throttle { retry_after } => {
            let mut r = arm_error(
                429,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:01:00.",
            );
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Fault::Status(409) => rp_error(
            409,
            "Conflict",
            "Another operation is pending for requested object. Please try again later.",
        ),
        Fault::Status(s) if s >= 500 => arm_error(
            s,
            "InternalServerError",
            "Encountered internal server error. Diagnostic information: timestamp '20260101T000000Z'.",
        ),
        Fault::Status(s) => rp_error(s, "BadRequest", "Injected failure"),
    }
}

fn oauth_error(status: u16, error: &str, description: &str, code: u32) -> Response {
    kit::respond(
        status,
        "application/json; charset=utf-8",
        json!({"error": error, "error_description": format!("{description}\r\nTrace ID: 00000000-0000-0000-0000-000000000000\r\nTimestamp: 2026-01-01 00:00:00Z"),
               "error_codes": [code], "timestamp": "2026-01-01 00:00:00Z"})
        .to_string(),
        &[],
    )
}

fn token(st: &mut St, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let tenant = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .unwrap_or("");
    if tenant != st.tenant {
        return oauth_error(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
            90002,
        );
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            900144,
        );
    }
    let form: HashMap<String, String> = kit::query_pairs(&String::from_utf8_lossy(body))
        .into_iter()
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
            70003,
        );
    }
    if form.get("client_id") != Some(&st.client_id) {
        return oauth_error(
            400,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{}' was not found in the directory.",
                form.get("client_id").map(String::as_str).unwrap_or("")
            ),
            700016,
        );
    }
    if form.get("client_secret") != Some(&st.client_secret) {
        return oauth_error(
            401,
            "invalid_client",
            &format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                st.client_id
            ),
            7000215,
        );
    }
    let Some(audience) = form
        .get("scope")
        .and_then(|s| s.strip_suffix("/.default"))
        .map(str::to_string)
    else {
        return oauth_error(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            1002012,
        );
    };
    let t = format!("eyJ0eXAiOiJKV1Qi.fake-{:016x}", rand::random::<u64>());
    st.tokens.insert(t.clone(), audience);
    st.tokens_issued += 1;
    kit::respond(
        200,
        "application/json; charset=utf-8",
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": t})
            .to_string(),
        &[],
    )
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
    if method == Method::POST && path.ends_with("/oauth2/v2.0/token") {
        return token(&mut st, &path, &headers, &body);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match st.tokens.get(bearer) {
        None if bearer.is_empty() => {
            return arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            );
        }
        None => {
            return arm_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
        }
        Some(aud) if aud != ARM_AUDIENCE => {
            return arm_error(
                401,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.",
            );
        }
        Some(_) => {}
    }
    let q: Vec<(String, String)> = kit::query_pairs(&query);
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match param("api-version") {
        None => {
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if v != API_VERSION => {
            return arm_error(
                400,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{v}' is invalid. The supported versions are '2018-05-01,2017-10-01,2017-09-01,2016-04-01,2015-05-04-preview'."
                ),
            );
        }
        Some(_) => {}
    }
    if let Some(f) = sh.faults.take() {
        return fault_response(f);
    }
    let prefix = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones",
        st.subscription, st.resource_group
    );
    let Some(rest) = path.strip_prefix(&prefix) else {
        return arm_error(
            404,
            "ResourceGroupNotFound",
            "Resource group not found in this subscription.",
        );
    };
    let parts: Vec<String> = rest
        .split('/')
        .filter(|p| !p.is_empty())
        .map(kit::percent_decode)
        .collect();
    let if_match = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let if_none = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", [zone]) => get_zone(&st, zone),
        (m @ ("PUT" | "PATCH" | "DELETE"), [zone]) => {
            sh.tripwire.hit(format!("{m} zone {zone} (whole zone)"));
            get_zone(&st, zone)
        }
        ("GET", [zone, "TXT"]) => list_sets(&st, zone, param("$top"), param("$skipToken")),
        ("GET", [zone, "TXT", name]) => get_set(&st, zone, name),
        ("PUT", [zone, "TXT", name]) => {
            if if_match.is_none() && if_none.is_none() {
                sh.tripwire.hit(format!(
                    "PUT TXT/{name} without If-Match or If-None-Match (unconditional overwrite)"
                ));
            }
            put_set(&mut st, zone, name, &body, if_match, if_none, false)
        }
        ("PATCH", [zone, "TXT", name]) => {
            put_set(&mut st, zone, name, &body, if_match, if_none, true)
        }
        ("DELETE", [zone, "TXT", name]) => {
            if if_match.is_none() {
                sh.tripwire.hit(format!(
                    "DELETE TXT/{name} without If-Match (unconditional delete)"
                ));
            }
            delete_set(&mut st, zone, name, if_match)
        }
        (_, [_, kind, ..]) if *kind != "TXT" => rp_error(
            400,
            "BadRequest",
            &format!("The fake serves TXT record sets only, not {kind}."),
        ),
        _ => arm_error(
            404,
            "NotFound",
            "The requested resource does not support http method.",
        ),
    }
}

fn zone_missing(st: &St, zone: &str) -> Response {
    arm_error(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource 'Microsoft.Network/dnszones/{zone}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            st.resource_group
        ),
    )
}

fn zone_of(st: &St, zone: &str) -> Option<String> {
    let z = zone.to_ascii_lowercase();
    st.zones.iter().find(|x| **x == z).cloned()
}

fn get_zone(st: &St, zone: &str) -> Response {
    let Some(z) = zone_of(st, zone) else {
        return zone_missing(st, zone);
    };
    kit::respond(
        200,
        "application/json; charset=utf-8",
        json!({
            "id": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnszones/{z}", st.subscription, st.resource_group),
            "name": z, "type": "Microsoft.Network/dnszones", "etag": "00000002-0000-0000-76c2-f7ad90b5d101",
            "location": "global", "tags": {},
            "properties": {"maxNumberOfRecordSets": 10000, "numberOfRecordSets": 2,
                "nameServers": ["ns1-01.azure-dns.com.", "ns2-01.azure-dns.net.", "ns3-01.azure-dns.org.", "ns4-01.azure-dns.info."],
                "zoneType": "Public"}
        })
        .to_string(),
        &[],
    )
}

fn set_json(st: &St, zone: &str, name: &str, s: &StoredSet) -> Value {
    let fqdn = if name == "@" {
        format!("{zone}.")
    } else {
        format!("{name}.{zone}.")
    };
    let recs: Vec<Value> = s.records.iter().map(|r| json!({"value": r})).collect();
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnszones/{zone}/TXT/{name}", st.subscription, st.resource_group),
        "name": name, "type": "Microsoft.Network/dnszones/TXT", "etag": s.etag,
        "properties": {"metadata": {}, "TTL": s.ttl, "fqdn": fqdn, "provisioningState": "Succeeded", "TXTRecords": recs}
    })
}

fn set_missing(st: &St, name: &str) -> Response {
    rp_error(
        404,
        "NotFound",
        &format!(
            "The resource record '{name}' does not exist in resource group '{}' of subscription '{}'.",
            st.resource_group, st.subscription
        ),
    )
}

fn get_set(st: &St, zone: &str, name: &str) -> Response {
    let Some(z) = zone_of(st, zone) else {
        return zone_missing(st, zone);
    };
    let key = (z.clone(), name.to_ascii_lowercase());
    match st.sets.get(&key) {
        Some(s) => kit::respond(
            200,
            "application/json; charset=utf-8",
            set_json(st, &z, &key.1, s).to_string(),
            &[],
        ),
        None => set_missing(st, name),
    }
}

fn list_sets(st: &St, zone: &str, top: Option<&str>, skip: Option<&str>) -> Response {
    let Some(z) = zone_of(st, zone) else {
        return zone_missing(st, zone);
    };
    let size = top
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(st.page_size)
        .clamp(1, st.page_size);
    let start = skip.and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let all: Vec<(&(String, String), &StoredSet)> =
        st.sets.iter().filter(|((zz, _), _)| *zz == z).collect();
    let value: Vec<Value> = all
        .iter()
        .skip(start)
        .take(size)
        .map(|((_, n), s)| set_json(st, &z, n, s))
        .collect();
    let mut body = json!({ "value": value });
    if start + size < all.len() {
        body["nextLink"] = json!(format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones/{z}/TXT?api-version={API_VERSION}&$top={size}&$skipToken={}",
            st.subscription,
            st.resource_group,
            start + size
        ));
    }
    kit::respond(
        200,
        "application/json; charset=utf-8",
        body.to_string(),
        &[],
    )
}

fn precondition_failed(header: &str, value: &str) -> Response {
    rp_error(
        412,
        "PreconditionFailed",
        &format!("The condition '{value}' in the {header} header was not satisfied."),
    )
}

/// Checks `If-Match` / `If-None-Match` against the stored set.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn check_preconditions(
    cur: Option<&StoredSet>,
    if_match: &Option<String>,
    if_none: &Option<String>,
) -> Result<(), Response> {
    if let Some(m) = if_match {
        let ok = match cur {
            None => false,
            Some(_) if m == "*" => true,
            Some(s) => s.etag == *m,
        };
        if !ok {
            return Err(precondition_failed("If-Match", m));
        }
    }
    if let Some(n) = if_none
        && n == "*"
        && cur.is_some()
    {
        return Err(precondition_failed("If-None-Match", n));
    }
    Ok(())
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn parse_records(v: &Value) -> Result<Vec<Vec<String>>, Response> {
    let bad = |m: &str| rp_error(400, "BadRequest", m);
    let Some(arr) = v.as_array() else {
        return Err(bad("TXTRecords must be an array."));
    };
    if arr.len() > 20 {
        return Err(bad(
            "The number of records in the record set exceeds the maximum of 20.",
        ));
    }
    let mut out = Vec::new();
    let mut total = 0;
    for r in arr {
        let Some(vals) = r.get("value").and_then(Value::as_array) else {
            return Err(bad("A TXT record must have a value."));
        };
        let mut strings = Vec::new();
        for s in vals {
            let Some(s) = s.as_str() else {
                return Err(bad("TXT record values must be strings."));
            };
            if s.chars().count() > 255 {
                return Err(bad(&format!(
                    "The TXT record value '{}...' exceeds the maximum length of 255 characters.",
                    s.chars().take(20).collect::<String>()
                )));
            }
            total += s.chars().count();
            strings.push(s.to_string());
        }
        out.push(strings);
    }
    if total > 4096 {
        return Err(bad(
            "The TXT record set has a total string length of more than 4096 characters.",
        ));
    }
    Ok(out)
}

fn put_set(
    st: &mut St,
    zone: &str,
    name: &str,
    body: &[u8],
    if_match: Option<String>,
    if_none: Option<String>,
    patch: bool,
) -> Response {
    let Some(z) = zone_of(st, zone) else {
        return zone_missing(st, zone);
    };
    let key = (z.clone(), name.to_ascii_lowercase());
    let cur = st.sets.get(&key).cloned();
    if let Err(r) = check_preconditions(cur.as_ref(), &if_match, &if_none) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return rp_error(
            400,
            "BadRequest",
            "The request content was invalid and could not be deserialized.",
        );
    };
    let props = &v["properties"];
    let ttl = match (props.get("TTL").and_then(Value::as_u64), &cur, patch) {
        (Some(t), _, _) if (1..=2_147_483_647).contains(&t) => t,
        (Some(t), _, _) => {
            return rp_error(
                400,
                "BadRequest",
                &format!("The TTL value '{t}' is out of range (1 to 2147483647)."),
            );
        }
        (None, Some(c), true) => c.ttl,
        (None, _, _) => {
            return rp_error(
                400,
                "BadRequest",
                "The TTL of the record set must be specified.",
            );
        }
    };
    let records = match (props.get("TXTRecords"), &cur, patch) {
        (Some(r), _, _) => match parse_records(r) {
            Ok(r) => r,
            Err(resp) => return resp,
        },
        (None, Some(c), true) => c.records.clone(),
        (None, _, _) => Vec::new(),
    };
    if patch && cur.is_none() {
        return set_missing(st, name);
    }
    let stored = StoredSet {
        ttl,
        records,
        etag: new_etag(),
    };
    let status = if cur.is_some() { 200 } else { 201 };
    let out = set_json(st, &z, &key.1, &stored);
    st.sets.insert(key, stored);
    kit::respond(
        status,
        "application/json; charset=utf-8",
        out.to_string(),
        &[],
    )
}

fn delete_set(st: &mut St, zone: &str, name: &str, if_match: Option<String>) -> Response {
    let Some(z) = zone_of(st, zone) else {
        return zone_missing(st, zone);
    };
    let key = (z, name.to_ascii_lowercase());
    let cur = st.sets.get(&key).cloned();
    if let Err(r) = check_preconditions(cur.as_ref(), &if_match, &None) {
        return r;
    }
    match st.sets.remove(&key) {
        Some(_) => kit::respond(200, "application/json", String::new(), &[]),
        None => kit::respond(204, "application/json", String::new(), &[]),
    }
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeAzure {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .sets
            .iter()
            .filter(|((z, _), _)| z == zone)
            .flat_map(|((_, name), set)| {
                set.records
                    .iter()
                    .map(move |r| format!("{name} {} {r:?}", set.ttl))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for ((z, name), set) in &st.sets {
            if z == zone {
                for r in &set.records {
                    super::served::add(
                        &mut out,
                        zone,
                        name,
                        u32::try_from(set.ttl).unwrap_or(0),
                        r.concat().into_bytes(),
                    );
                }
            }
        }
        out
    }
}

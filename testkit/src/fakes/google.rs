//! A stateful fake of Google Cloud DNS v1 and its OAuth token endpoint on 127.0.0.1.
//!
//! The token endpoint (`/token`) takes the jwt-bearer grant and checks the JWT's
//! RS256 signature with the public key of the test service account, its `iss`,
//! `aud` and `scope`; API calls need a token it issued. Zones are found with
//! `managedZones?dnsName=`, sets listed with `rrsets?name=&type=` (paged with
//! `maxResults`/`pageToken`), and written with Changes whose deletions must match
//! the current set exactly (412 `conditionNotMet` otherwise); a Change is
//! `pending` until polled, then `done`. Errors use Google's envelope.
//!
//! [`TestServiceAccount::generate`] makes a key pair at run time: no private key is
//! ever committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::{PrivateKey, PublicKey};
use serde_json::{Value, json};

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

/// A service account made for one test.
#[derive(Clone)]
pub struct TestServiceAccount {
    /// `client_email`.
    pub client_email: String,
    /// `private_key_id`.
    pub key_id: String,
    /// Private key in PKCS#8 PEM.
    pub private_key_pem: String,
    /// The matching public key.
    pub public_key: PublicKey,
}

impl std::fmt::Debug for TestServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl TestServiceAccount {
    /// A fresh RSA key pair of `bits` bits for `client_email`.
    pub fn generate(client_email: &str, bits: usize) -> Self {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = PrivateKey::new(&mut getrandom::SysRng, bits).expect("generate an RSA key");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode PKCS#8")
            .to_string();
        TestServiceAccount {
            client_email: client_email.to_string(),
            key_id: format!("kid-{}", rand::random::<u32>()),
            private_key_pem: pem,
            public_key: key.to_public_key(),
        }
    }

    /// The JSON key file, as Google issues it.
    pub fn json(&self, project: &str, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FakeSet {
    ttl: i64,
    rrdatas: Vec<String>,
}

#[derive(Debug, Clone)]
struct FakeZone {
    name: String,
    dns_name: String,
    private: bool,
}

#[derive(Default)]
struct St {
    project: String,
    client_email: String,
    public_key: Option<PublicKey>,
    token_url: String,
    tokens: HashSet<String>,
    token_requests: usize,
    zones: Vec<FakeZone>,
    // (zone name, dotted rr name) -> set
    sets: BTreeMap<(String, String), FakeSet>,
    changes: HashMap<String, u32>,
    done_after: u32,
    next_id: u32,
    page_size: usize,
    interfere: Option<(String, String, FakeSet)>,
}

type Shared = kit::Shared<St>;

/// The running fake; stops when dropped.
pub struct FakeGoogle {
    /// API base URL: `http://127.0.0.1:<port>/dns/v1`.
    pub url: String,
    /// Token endpoint: `http://127.0.0.1:<port>/token`.
    pub token_url: String,
    shared: Shared,
    _task: ServerTask,
}

impl std::fmt::Debug for FakeGoogle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGoogle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FakeGoogle {
    /// Starts the fake for `project`, trusting `account`'s public key.
    pub async fn start(project: &str, account: &TestServiceAccount) -> Self {
        let state = Arc::new(Mutex::new(St {
            project: project.to_string(),
            client_email: account.client_email.clone(),
            public_key: Some(account.public_key.clone()),
            done_after: 1,
            page_size: 100,
            ..St::default()
        }));
        let shared = Shared::new(state.clone(), Tripwire::default());
        let (addr, task) = shared.serve(handle).await;
        let token_url = format!("http://{addr}/token");
        lock(&state).token_url = token_url.clone();
        FakeGoogle {
            url: format!("http://{addr}/dns/v1"),
            token_url,
            shared,
            _task: task,
        }
    }

    /// Adds a managed zone; returns its `name` (e.g. `example-com`).
    pub fn add_zone(&self, dns_name: &str, private: bool) -> String {
        let mut st = lock(&self.shared.state);
        st.next_id += 1;
        let name = format!(
            "{}-{}",
            dns_name.trim_end_matches('.').replace('.', "-"),
            st.next_id
        );
        st.zones.push(FakeZone {
            name: name.clone(),
            dns_name: format!("{}.", dns_name.trim_end_matches('.')),
            private,
        });
        name
    }

    /// Puts a TXT set directly (rrdatas in presentation form).
    pub fn put_txt(&self, zone: &str, name: &str, ttl: i64, rrdatas: &[&str]) {
        lock(&self.shared.state).sets.insert(
            (zone.to_string(), format!("{}.", name.trim_end_matches('.'))),
            FakeSet {
                ttl,
                rrdatas: rrdatas.iter().map(|s| s.to_string()).collect(),
            },
        );
    }

    /// Removes the TXT set at `name` (another tool deleting it).
    pub fn remove_txt(&self, zone: &str, name: &str) {
        let n = name.trim_end_matches('.').to_ascii_lowercase() + ".";
        lock(&self.shared.state).sets.remove(&(zone.to_string(), n));
    }

    /// The TXT set held at `name`: TTL and rrdatas.
    pub fn txt(&self, zone: &str, name: &str) -> Option<(i64, Vec<String>)> {
        lock(&self.shared.state)
            .sets
            .get(&(zone.to_string(), format!("{}.", name.trim_end_matches('.'))))
            .map(|s| (s.ttl, s.rrdatas.clone()))
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// How many token requests were answered with a token.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.state).token_requests
    }

    /// Listings return at most `n` items per page.
    pub fn set_page_size(&self, n: usize) {
        lock(&self.shared.state).page_size = n.max(1);
    }

    /// A Change is `done` after this many polls (default 1).
    pub fn set_done_after(&self, polls: u32) {
        lock(&self.shared.state).done_after = polls;
    }

    /// Another writer: just before the next Change is applied, the set at `name`
    /// in `zone` becomes `rrdatas`, so a deletion read earlier no longer matches.
    pub fn interfere_before_next_change(&self, zone: &str, name: &str, ttl: i64, rrdatas: &[&str]) {
        lock(&self.shared.state).interfere = Some((
            zone.to_string(),
            format!("{}.", name.trim_end_matches('.')),
            FakeSet {
                ttl,
                rrdatas: rrdatas.iter().map(|s| s.to_string()).collect(),
            },
        ));
    }

    /// The next `n` API requests fail with `status` and Google's envelope.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }

    /// The next `n` API requests get 429 `rateLimitExceeded` with `Retry-After`.
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        self.shared.faults.push(Fault::Throttle { retry_after }, n);
    }
}

fn gerror(code: u16, reason: &str, message: &str) -> Response {
    kit::respond(
        code,
        "application/json; charset=UTF-8",
        json!({"error": {"code": code, "message": message,
               "errors": [{"message": message, "domain": "global", "reason": reason}]}})
        .to_string(),
        &[],
    )
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::Throttle { retry_after } => {
            let mut r = gerror(
                429,
                "rateLimitExceeded",
                "Resource has been exhausted (e.g. check quota).",
            );
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Fault::Status(s) if s >= 500 => gerror(s, "backendError", "Internal error encountered."),
        Fault::Status(s) => gerror(s, "invalid", "Injected failure"),
    }
}

fn oauth_error(error: &str, description: &str) -> Response {
    kit::respond(
        400,
        "application/json",
        json!({"error": error, "error_description": description}).to_string(),
        &[],
    )
}

fn token(st: &mut St, body: &[u8]) -> Response {
    let form: HashMap<String, String> = kit::query_pairs(&String::from_utf8_lossy(body))
        .into_iter()
        .collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type", "Invalid grant_type: ");
    }
    let Some(jwt) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        );
    };
    let decode = |x: &str| URL_SAFE_NO_PAD.decode(x).ok();
    let header: Option<Value> = decode(h).and_then(|b| serde_json::from_slice(&b).ok());
    let claims: Option<Value> = decode(c).and_then(|b| serde_json::from_slice(&b).ok());
    let (Some(header), Some(claims), Some(sig)) = (header, claims, decode(s)) else {
        return oauth_error("invalid_grant", "Invalid JWT: malformed");
    };
    if header["alg"] != "RS256" || header["typ"] != "JWT" {
        return oauth_error("invalid_grant", "Invalid JWT: unsupported algorithm");
    }
    let Some(pk) = st.public_key.as_ref() else {
        return oauth_error("invalid_grant", "no key");
    };
    let signed = format!("{h}.{c}");
    if pk
        .pkcs1v15_verify::<rsa::sha2::Sha256>(signed.as_bytes(), &sig)
        .is_err()
    {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    if claims["iss"] != st.client_email.as_str() {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: iss does not match a service account",
        );
    }
    if claims["aud"] != st.token_url.as_str() {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: aud is not the token endpoint",
        );
    }
    let scope = claims["scope"].as_str().unwrap_or("");
    if !scope.contains("ndev.clouddns") && !scope.contains("cloud-platform") {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    if !matches!((iat, exp), (Some(i), Some(e)) if e > i && e - i <= 3600) {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let t = format!("ya29.fake-{}", rand::random::<u64>());
    st.tokens.insert(t.clone());
    st.token_requests += 1;
    kit::respond(
        200,
        "application/json",
        json!({"access_token": t, "token_type": "Bearer", "expires_in": 3599}).to_string(),
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
    if path == "/token" && method == Method::POST {
        return token(&mut st, &body);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !st.tokens.contains(bearer) {
        return kit::respond(
            401,
            "application/json; charset=UTF-8",
            json!({"error": {"code": 401,
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError", "location": "Authorization", "locationType": "header"}],
                "status": "UNAUTHENTICATED"}})
            .to_string(),
            &[],
        );
    }
    if let Some(f) = sh.faults.take() {
        return fault_response(f);
    }
    let prefix = format!("/dns/v1/projects/{}/", st.project);
    let Some(rest) = path.strip_prefix(&prefix) else {
        return gerror(404, "notFound", "The requested project was not found.");
    };
    let q: HashMap<String, String> = kit::query_pairs(&query).into_iter().collect();
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["managedZones"]) => list_zones(&st, &q),
        ("GET", ["managedZones", z, "rrsets"]) => list_sets(&st, z, &q),
        ("POST", ["managedZones", z, "changes"]) => change(&mut st, z, &body),
        ("GET", ["managedZones", z, "changes", id]) => get_change(&mut st, z, id),
        _ => gerror(404, "notFound", "Not Found"),
    }
}

fn page<T: Clone>(
    items: &[T],
    q: &HashMap<String, String>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let size = q
        .get("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .filter(|&m| m > 0)
        .unwrap_or(size)
        .min(size);
    let start = q
        .get("pageToken")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let out: Vec<T> = items.iter().skip(start).take(size).cloned().collect();
    let next = (start + size < items.len()).then(|| (start + size).to_string());
    (out, next)
}

fn list_zones(st: &St, q: &HashMap<String, String>) -> Response {
    let want = q.get("dnsName");
    let zones: Vec<FakeZone> = st
        .zones
        .iter()
        .filter(|z| want.is_none_or(|w| z.dns_name.eq_ignore_ascii_case(w)))
        .cloned()
        .collect();
    let (items, next) = page(&zones, q, st.page_size);
    let items: Vec<Value> = items
        .iter()
        .map(|z| json!({"kind": "dns#managedZone", "name": z.name, "dnsName": z.dns_name, "id": "1234567890",
                        "visibility": if z.private { "private" } else { "public" }}))
        .collect();
    let mut body = json!({"kind": "dns#managedZonesListResponse", "managedZones": items});
    if let Some(n) = next {
        body["nextPageToken"] = Value::String(n);
    }
    kit::respond(200, "application/json", body.to_string(), &[])
}

fn zone_missing(z: &str) -> Response {
    gerror(
        404,
        "notFound",
        &format!("The 'parameters.managedZone' resource named '{z}' does not exist."),
    )
}

fn list_sets(st: &St, z: &str, q: &HashMap<String, String>) -> Response {
    if !st.zones.iter().any(|x| x.name == z) {
        return zone_missing(z);
    }
    if q.contains_key("type") && !q.contains_key("name") {
        return gerror(
            400,
            "invalid",
            "Invalid value for 'parameters.type': type requires name",
        );
    }
    let want_name = q.get("name");
    let sets: Vec<(String, FakeSet)> = st
        .sets
        .iter()
        .filter(|((zz, n), _)| zz == z && want_name.is_none_or(|w| w.eq_ignore_ascii_case(n)))
        .map(|((_, n), s)| (n.clone(), s.clone()))
        .collect();
    let (items, next) = page(&sets, q, st.page_size);
    let items: Vec<Value> = items
        .iter()
        .map(|(n, s)| json!({"kind": "dns#resourceRecordSet", "name": n, "type": "TXT", "ttl": s.ttl, "rrdatas": s.rrdatas}))
        .collect();
    let mut body = json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": items});
    if let Some(n) = next {
        body["nextPageToken"] = Value::String(n);
    }
    kit::respond(200, "application/json", body.to_string(), &[])
}

/// Checks an rrdata: quoted strings of at most 255 bytes (unquoted words are accepted
/// as separate strings, as the API does).
fn check_rrdata(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            i += 1;
            continue;
        }
        let quoted = c == b'"';
        if quoted {
            i += 1;
        }
        let mut len = 0;
        loop {
            match b.get(i) {
                None if quoted => return Err("unterminated quote".into()),
                None => break,
                Some(b'"') if quoted => {
                    i += 1;
                    break;
                }
                Some(b' ') if !quoted => break,
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
            return Err(format!(
                "a character-string of {len} bytes is longer than 255"
            ));
        }
    }
    Ok(())
}

fn change(st: &mut St, z: &str, body: &[u8]) -> Response {
    if !st.zones.iter().any(|x| x.name == z) {
        return zone_missing(z);
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return gerror(400, "parseError", "Parse Error");
    };
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if let Some((zz, name, set)) = st.interfere.take() {
        st.sets.insert((zz, name), set);
    }
    let mut sets = st.sets.clone();
    for (i, d) in list("deletions").iter().enumerate() {
        let name = d["name"].as_str().unwrap_or("").to_ascii_lowercase();
        let want = FakeSet {
            ttl: d["ttl"].as_i64().unwrap_or(-1),
            rrdatas: d["rrdatas"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        match sets.get(&(z.to_string(), name.clone())) {
            Some(cur) if *cur == want => {
                sets.remove(&(z.to_string(), name));
            }
            Some(_) => {
                return gerror(
                    412,
                    "conditionNotMet",
                    &format!("Precondition not met for 'entity.change.deletions[{i}]'"),
                );
            }
            None => {
                return gerror(
                    404,
                    "notFound",
                    &format!(
                        "The 'entity.change.deletions[{i}]' resource named '{name} (TXT)' does not exist."
                    ),
                );
            }
        }
    }
    for (i, a) in list("additions").iter().enumerate() {
        let name = a["name"].as_str().unwrap_or("").to_ascii_lowercase();
        let ttl = a["ttl"].as_i64().unwrap_or(-1);
        if !(0..=2_147_483_647).contains(&ttl) {
            return gerror(
                400,
                "invalid",
                &format!("Invalid value for 'entity.change.additions[{i}].ttl': '{ttl}'"),
            );
        }
        let rrdatas: Vec<String> = a["rrdatas"]
            .as_array()
            .map(|x| {
                x.iter()
                    .filter_map(|y| y.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for (j, r) in rrdatas.iter().enumerate() {
            if let Err(m) = check_rrdata(r) {
                return gerror(
                    400,
                    "invalid",
                    &format!(
                        "Invalid value for 'entity.change.additions[{i}].rrdata[{j}]': '{r}' ({m})"
                    ),
                );
            }
        }
        let k = (z.to_string(), name.clone());
        if sets.contains_key(&k) {
            return gerror(
                409,
                "alreadyExists",
                &format!(
                    "The resource 'entity.change.additions[{i}]' named '{name} (TXT)' already exists"
                ),
            );
        }
        sets.insert(k, FakeSet { ttl, rrdatas });
    }
    st.sets = sets;
    st.next_id += 1;
    let id = st.next_id.to_string();
    let after = st.done_after;
    st.changes.insert(id.clone(), after);
    let mut out = v.clone();
    out["kind"] = json!("dns#change");
    out["id"] = json!(id);
    out["status"] = json!(if after == 0 { "done" } else { "pending" });
    out["startTime"] = json!("2026-01-01T00:00:00.000Z");
    kit::respond(200, "application/json", out.to_string(), &[])
}

fn get_change(st: &mut St, z: &str, id: &str) -> Response {
    let Some(left) = st.changes.get_mut(id) else {
        return gerror(
            404,
            "notFound",
            &format!("The 'parameters.changeId' resource named '{id}' does not exist."),
        );
    };
    *left = left.saturating_sub(1);
    let status = if *left == 0 { "done" } else { "pending" };
    let _ = z;
    kit::respond(
        200,
        "application/json",
        json!({"kind": "dns#change", "id": id, "status": status, "startTime": "2026-01-01T00:00:00.000Z"}).to_string(),
        &[],
    )
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeGoogle {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        let st = lock(&self.shared.state);
        let dns_name = format!("{zone}.");
        st.sets
            .iter()
            .filter(|((z, _), _)| {
                st.zones
                    .iter()
                    .any(|fz| fz.name == *z && fz.dns_name == dns_name)
            })
            .flat_map(|((_, name), set)| {
                set.rrdatas
                    .iter()
                    .map(move |v| format!("{name} {} {v}", set.ttl))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        let dns_name = format!("{zone}.");
        for ((z, name), set) in &st.sets {
            if st
                .zones
                .iter()
                .any(|fz| fz.name == *z && fz.dns_name == dns_name)
            {
                for v in &set.rrdatas {
                    super::served::add(
                        &mut out,
                        zone,
                        name,
                        u32::try_from(set.ttl).unwrap_or(0),
                        super::served::wire_value(v),
                    );
                }
            }
        }
        out
    }
}

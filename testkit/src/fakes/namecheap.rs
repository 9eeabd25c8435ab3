//! A stateful fake of Namecheap's XML API (`/xml.response`) on 127.0.0.1.
//!
//! Follows namecheap.com/support/api: every request carries `ApiUser`, `ApiKey`,
//! `UserName`, `ClientIp` and `Command`, as query or form parameters (GET or POST);
//! a wrong key, user or a client IP that is not whitelisted is answered with HTTP 200
//! `<ApiResponse Status="ERROR">` and the documented error number. `getHosts`
//! answers the domain's `EmailType`, `IsUsingOurDNS` and one `<host …/>` per record;
//! `setHosts` **replaces the whole host list** (every host not sent is dropped, gaps
//! in the `HostName{n}` numbering are tolerated), regenerates every `HostId`, keeps
//! the `EmailType` sent (a missing one resets it to `NONE`: mail routing breaks),
//! refuses MX hosts unless `EmailType=MX`, TTLs outside 60..=60000 and TXT addresses
//! holding `"`. Throttling is HTTP 405. Any command other than `domains.getList`,
//! `domains.dns.getHosts` and `domains.dns.setHosts` trips the [`Tripwire`].

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::common::lock;
use super::fault::Fault;
use super::kit::{self, Recorded, ServerTask};
use super::tripwire::Tripwire;

/// One record of a domain's host list, as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NcHost {
    /// `HostId` (new on every `setHosts`).
    pub host_id: u64,
    /// Relative name (`@` for the apex).
    pub name: String,
    /// Record type.
    pub kind: String,
    /// `Address`.
    pub address: String,
    /// `MXPref`.
    pub mx_pref: String,
    /// `TTL`.
    pub ttl: String,
}

impl NcHost {
    /// A host without its id: what survives a `setHosts` byte for byte.
    pub fn content(&self) -> (String, String, String, String, String) {
        (
            self.name.clone(),
            self.kind.clone(),
            self.address.clone(),
            self.mx_pref.clone(),
            self.ttl.clone(),
        )
    }
}

struct Domain {
    name: String,
    email_type: String,
    using_our_dns: bool,
    hosts: Vec<NcHost>,
}

type Hook = Box<dyn FnOnce(&mut Vec<NcHost>) + Send>;

struct St {
    api_user: String,
    api_key: String,
    whitelist: Vec<String>,
    domains: Vec<Domain>,
    next_id: u64,
    list_page_cap: usize,
    after_set: Option<Hook>,
}

type Shared = kit::Shared<St>;

/// A running fake Namecheap API; stops when dropped (and fails the test if a
/// command maildns must never use was called).
pub struct FakeNamecheap {
    url: String,
    shared: Shared,
    _task: ServerTask,
}

/// Checks the tripwire on the test's thread (the server task, holding the
/// other reference, is dropped on a runtime thread where a panic is lost).
impl Drop for FakeNamecheap {
    fn drop(&mut self) {
        self.shared.tripwire.check_on_drop();
    }
}

impl FakeNamecheap {
    /// Starts the fake for `api_user` (also the `UserName`) with `api_key`,
    /// accepting requests whose `ClientIp` is `client_ip`.
    pub async fn start(api_user: &str, api_key: &str, client_ip: &str) -> FakeNamecheap {
        let state = Arc::new(Mutex::new(St {
            api_user: api_user.to_string(),
            api_key: api_key.to_string(),
            whitelist: vec![client_ip.to_string()],
            domains: Vec::new(),
            next_id: 0,
            list_page_cap: 100,
            after_set: None,
        }));
        let shared = Shared::new(state.clone(), Tripwire::new("Namecheap"));
        let (addr, task) = shared.serve(handle).await;
        FakeNamecheap {
            url: format!("http://{addr}"),
            shared,
            _task: task,
        }
    }

    /// The API host URL (requests go to `/xml.response` below it).
    pub fn base_url(&self) -> &str {
        &self.url
    }

    /// Adds a domain on Namecheap's DNS with `email_type` (`MX`, `MXE`, `FWD`, `OX`, ...).
    pub fn add_domain(&self, domain: &str, email_type: &str) {
        lock(&self.shared.state).domains.push(Domain {
            name: domain.to_string(),
            email_type: email_type.to_string(),
            using_our_dns: true,
            hosts: Vec::new(),
        });
    }

    /// Adds a domain registered at Namecheap but served by other name servers.
    pub fn add_foreign_dns_domain(&self, domain: &str) {
        lock(&self.shared.state).domains.push(Domain {
            name: domain.to_string(),
            email_type: "NONE".into(),
            using_our_dns: false,
            hosts: Vec::new(),
        });
    }

    /// Appends a record to `domain`'s host list.
    pub fn add_host(
        &self,
        domain: &str,
        name: &str,
        kind: &str,
        address: &str,
        mx_pref: u32,
        ttl: u32,
    ) {
        let mut st = lock(&self.shared.state);
        st.next_id += 1;
        let id = st.next_id;
        if let Some(d) = st.domains.iter_mut().find(|d| d.name == domain) {
            d.hosts.push(NcHost {
                host_id: id,
                name: name.to_string(),
                kind: kind.to_string(),
                address: address.to_string(),
                mx_pref: mx_pref.to_string(),
                ttl: ttl.to_string(),
            });
        }
    }

    /// `domain`'s host list, as held.
    pub fn hosts(&self, domain: &str) -> Vec<NcHost> {
        lock(&self.shared.state)
            .domains
            .iter()
            .find(|d| d.name == domain)
            .map(|d| d.hosts.clone())
            .unwrap_or_default()
    }

    /// Changes `domain`'s host list directly (another writer, e.g. the web UI).
    pub fn edit_hosts(&self, domain: &str, f: impl FnOnce(&mut Vec<NcHost>)) {
        let mut st = lock(&self.shared.state);
        if let Some(d) = st.domains.iter_mut().find(|d| d.name == domain) {
            f(&mut d.hosts);
        }
    }

    /// Runs `f` on the host list right after the next successful `setHosts`:
    /// another writer acting between maildns's write and its read back.
    pub fn after_next_set_hosts(&self, f: impl FnOnce(&mut Vec<NcHost>) + Send + 'static) {
        lock(&self.shared.state).after_set = Some(Box::new(f));
    }

    /// `domain`'s `EmailType`.
    pub fn email_type(&self, domain: &str) -> Option<String> {
        lock(&self.shared.state)
            .domains
            .iter()
            .find(|d| d.name == domain)
            .map(|d| d.email_type.clone())
    }

    /// Caps `PageSize` of `domains.getList` (to exercise paging).
    pub fn set_list_page_cap(&self, n: usize) {
        lock(&self.shared.state).list_page_cap = n.max(1);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// The `Command` of every request so far.
    pub fn commands(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                params(r)
                    .into_iter()
                    .find(|(k, _)| k == "Command")
                    .map(|(_, v)| v)
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The broad-endpoint tripwire (dropping the fake checks it).
    pub fn tripwire(&self) -> &Tripwire {
        &self.shared.tripwire
    }

    /// The next `n` requests are throttled: HTTP 405.
    pub fn throttle_next(&self, n: usize) {
        self.shared
            .faults
            .push(Fault::Throttle { retry_after: 0 }, n);
    }

    /// The next `n` requests fail with HTTP `status`.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.shared.faults.push(Fault::Status(status), n);
    }
}

/// The parameters of a recorded request: query, then form body.
pub fn params(r: &Recorded) -> Vec<(String, String)> {
    let mut p = kit::query_pairs(&r.query);
    if r.header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        p.extend(kit::query_pairs(&r.body));
    }
    p
}

/// XML attribute escaping.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

fn envelope(command: &str, status: &str, errors: &str, response: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<ApiResponse Status=\"{status}\" xmlns=\"http://api.namecheap.com/xml.response\">\r\n  <Errors>{errors}</Errors>\r\n  <Warnings />\r\n  <RequestedCommand>{}</RequestedCommand>\r\n  {response}\r\n  <Server>PHX01SBAPIEXT05</Server>\r\n  <GMTTimeDifference>--5:00</GMTTimeDifference>\r\n  <ExecutionTime>0.012</ExecutionTime>\r\n</ApiResponse>",
        esc(&command.to_ascii_lowercase())
    );
    kit::respond(200, "text/xml; charset=utf-8", body, &[])
}

fn error(command: &str, number: u32, text: &str) -> Response {
    envelope(
        command,
        "ERROR",
        &format!("<Error Number=\"{number}\">{}</Error>", esc(text)),
        "",
    )
}

fn ok(command: &str, inner: &str) -> Response {
    envelope(
        command,
        "OK",
        "",
        &format!(
            "<CommandResponse Type=\"{}\">{inner}</CommandResponse>",
            esc(command)
        ),
    )
}

fn html(status: u16, text: &str) -> Response {
    kit::respond(
        status,
        "text/html",
        format!("<html><head><title>{status}</title></head><body>{text}</body></html>"),
        &[],
    )
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let rec = Recorded::new(
        &method,
        uri.path(),
        uri.query().unwrap_or(""),
        &headers,
        &bytes,
    );
    let p = params(&rec);
    let mut st = lock(&s.state);
    s.log(rec);
    if uri.path() != "/xml.response" {
        s.tripwire
            .hit(format!("{method} {} (not the API endpoint)", uri.path()));
        return html(404, "Not Found");
    }
    if let Some(f) = s.faults.take() {
        return match f {
            Fault::Throttle { .. } => html(405, "Method Not Allowed: too many requests"),
            Fault::Status(code) => html(code, "injected failure"),
        };
    }
    let get = |k: &str| {
        p.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let command = get("Command").unwrap_or_default();
    let Some(user) = get("ApiUser") else {
        return error(&command, 1010101, "Parameter APIUser is missing");
    };
    let Some(key) = get("ApiKey") else {
        return error(&command, 1010102, "Parameter APIKey is missing");
    };
    let Some(ip) = get("ClientIp") else {
        return error(&command, 1010105, "Parameter ClientIP is missing");
    };
    if user != st.api_user || key != st.api_key {
        return error(
            &command,
            1011102,
            "API Key is invalid or API access has not been enabled",
        );
    }
    if get("UserName").is_some_and(|u| u != st.api_user) {
        return error(&command, 1016103, "UserName is not authorized");
    }
    if !st.whitelist.contains(&ip) {
        return error(&command, 1011150, &format!("Invalid request IP: {ip}"));
    }
    let domain_name = match (get("SLD"), get("TLD")) {
        (Some(sld), Some(tld)) => Some(format!("{sld}.{tld}").to_ascii_lowercase()),
        _ => None,
    };
    match command.to_ascii_lowercase().as_str() {
        "namecheap.domains.getlist" => {
            let page: usize = get("Page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
            let size: usize = get("PageSize")
                .and_then(|v| v.parse().ok())
                .unwrap_or(20)
                .min(st.list_page_cap)
                .max(1);
            let all: Vec<&Domain> = st.domains.iter().collect();
            let items: String = all
                .iter()
                .enumerate()
                .skip((page - 1) * size)
                .take(size)
                .map(|(i, d)| {
                    format!(
                        "<Domain ID=\"{}\" Name=\"{}\" User=\"{}\" Created=\"01/01/2020\" Expires=\"01/01/2030\" IsExpired=\"false\" IsLocked=\"false\" AutoRenew=\"true\" WhoisGuard=\"ENABLED\" IsPremium=\"false\" IsOurDNS=\"{}\"/>",
                        i + 1,
                        esc(&d.name),
                        esc(&st.api_user),
                        d.using_our_dns
                    )
                })
                .collect();
            ok(
                &command,
                &format!(
                    "<DomainGetListResult>{items}</DomainGetListResult><Paging><TotalItems>{}</TotalItems><CurrentPage>{page}</CurrentPage><PageSize>{size}</PageSize></Paging>",
                    all.len()
                ),
            )
        }
        "namecheap.domains.dns.gethosts" => {
            let Some(d) = domain_name
                .as_ref()
                .and_then(|n| st.domains.iter().find(|d| &d.name == n))
            else {
                return error(&command, 2019166, "Domain not found");
            };
            let hosts: String = d
                .hosts
                .iter()
                .map(|h| {
                    format!(
                        "<host HostId=\"{}\" Name=\"{}\" Type=\"{}\" Address=\"{}\" MXPref=\"{}\" TTL=\"{}\" AssociatedAppTitle=\"\" FriendlyName=\"\" IsActive=\"true\" IsDDNSEnabled=\"false\" />",
                        h.host_id,
                        esc(&h.name),
                        esc(&h.kind),
                        esc(&h.address),
                        esc(&h.mx_pref),
                        esc(&h.ttl)
                    )
                })
                .collect();
            ok(
                &command,
                &format!(
                    "<DomainDNSGetHostsResult Domain=\"{}\" EmailType=\"{}\" IsUsingOurDNS=\"{}\">{hosts}</DomainDNSGetHostsResult>",
                    esc(&d.name),
                    esc(&d.email_type),
                    d.using_our_dns
                ),
            )
        }
        "namecheap.domains.dns.sethosts" => set_hosts(&mut st, &command, domain_name, &p),
        _ => {
            s.tripwire.hit(format!("Command={command}"));
            error(&command, 1010104, "Command not allowed for maildns's fake")
        }
    }
}

fn set_hosts(
    st: &mut St,
    command: &str,
    domain_name: Option<String>,
    p: &[(String, String)],
) -> Response {
    let get = |k: &str| {
        p.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let Some(di) = domain_name
        .as_ref()
        .and_then(|n| st.domains.iter().position(|d| &d.name == n))
    else {
        return error(command, 2019166, "Domain not found");
    };
    if !st.domains[di].using_our_dns {
        return error(
            command,
            2030288,
            "Domain is not using Namecheap DNS servers",
        );
    }
    // HostName1..n, gaps tolerated, in numeric order.
    let mut idx: Vec<u32> = p
        .iter()
        .filter_map(|(k, _)| {
            k.get(..8)
                .filter(|h| h.eq_ignore_ascii_case("HostName"))
                .and_then(|_| k[8..].parse().ok())
        })
        .collect();
    idx.sort_unstable();
    idx.dedup();
    let email_type = get("EmailType").unwrap_or_else(|| "NONE".into());
    let mut hosts = Vec::with_capacity(idx.len());
    for i in idx {
        let (Some(name), Some(kind), Some(address)) = (
            get(&format!("HostName{i}")),
            get(&format!("RecordType{i}")),
            get(&format!("Address{i}")),
        ) else {
            return error(
                command,
                2011166,
                &format!("RecordType{i} or Address{i} is missing"),
            );
        };
        let kind = kind.to_ascii_uppercase();
        let ttl = get(&format!("TTL{i}")).unwrap_or_else(|| "1800".into());
        if !ttl.parse::<u32>().is_ok_and(|t| (60..=60_000).contains(&t)) {
            return error(
                command,
                2011166,
                &format!("TTL{i} must be between 60 and 60000"),
            );
        }
        if kind == "TXT" && address.contains('"') {
            return error(command, 2011166, &format!("Address{i}: invalid characters"));
        }
        if (kind == "MX" || kind == "MXE") && email_type != kind {
            return error(
                command,
                2011166,
                &format!("{kind} records need EmailType {kind}"),
            );
        }
        st.next_id += 1;
        hosts.push(NcHost {
            host_id: st.next_id,
            name,
            kind,
            address,
            mx_pref: get(&format!("MXPref{i}")).unwrap_or_else(|| "10".into()),
            ttl,
        });
    }
    if let Some(hook) = st.after_set.take() {
        hook(&mut hosts);
    }
    let d = &mut st.domains[di];
    d.hosts = hosts;
    d.email_type = email_type;
    ok(
        command,
        &format!(
            "<DomainDNSSetHostsResult Domain=\"{}\" IsSuccess=\"true\"><Warnings /></DomainDNSSetHostsResult>",
            esc(&d.name)
        ),
    )
}

// What the host's name servers serve (the cycle test mirrors it into a real PowerDNS).
impl super::served::ServedTxt for FakeNamecheap {
    fn stored_txt(&self, zone: &str) -> Vec<String> {
        lock(&self.shared.state)
            .domains
            .iter()
            .filter(|d| d.name == zone)
            .flat_map(|d| {
                d.hosts
                    .iter()
                    .filter(|h| h.kind == "TXT")
                    .map(|h| format!("{} {} {} {}", h.name, h.ttl, h.mx_pref, h.address))
            })
            .collect()
    }

    fn served_txt(&self, zone: &str) -> super::served::ServedSets {
        let st = lock(&self.shared.state);
        let mut out = super::served::ServedSets::new();
        for d in st.domains.iter().filter(|d| d.name == zone) {
            for h in d.hosts.iter().filter(|h| h.kind == "TXT") {
                let ttl = h.ttl.parse().unwrap_or(1800);
                super::served::add(
                    &mut out,
                    zone,
                    &h.name,
                    ttl,
                    super::served::wire_value(&h.address),
                );
            }
        }
        out
    }
}

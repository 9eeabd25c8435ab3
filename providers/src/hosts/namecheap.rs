//! Namecheap (XML API, `namecheap.domains.dns.getHosts` / `setHosts`): the only
//! write replaces a domain's **whole host list**, with no precondition.
//!
//! - Every request is a form-encoded POST to `/xml.response` carrying `ApiUser`,
//!   `ApiKey`, `UserName`, `ClientIp` (IPv4, on the account's API whitelist) and
//!   `Command` (<https://www.namecheap.com/support/api/global-parameters/>).
//! - Zone: the registered domain; `namecheap.domains.getList` (paged) gives the
//!   account's domains and the longest one holding the name wins; `SLD` is its first
//!   label, `TLD` the rest.
//! - Read: `getHosts` → `<DomainDNSGetHostsResult EmailType=… IsUsingOurDNS=…>`
//!   with one `<host Name Type Address MXPref TTL/>` per record (names relative,
//!   apex `@`). TXT `Address` is one plain string (the record's joined value).
//! - Write: `setHosts` with `HostName{n}`, `RecordType{n}`, `Address{n}`, `MXPref{n}`,
//!   `TTL{n}` for **every** record of the domain and the domain's `EmailType`: any
//!   record left out is deleted and a missing `EmailType` changes mail routing
//!   (<https://www.namecheap.com/support/api/methods/domains-dns/set-hosts/>). So
//!   the adapter writes only with the account's explicit opt-in
//!   (`replace_whole_host_list = true`); without it every write is refused before
//!   any request. With it: one in-process lock per domain, the host list read again
//!   just before writing (a TXT RRset no longer as read is a conflict), every other
//!   record echoed back as read (type, address, MX preference, TTL) with the
//!   `EmailType`, then read again and compared with what was written: any record
//!   that changed under maildns is reported. A change made by another writer between
//!   that last read and `setHosts` is lost: Namecheap offers no way to prevent it.
//! - Errors come inside HTTP 200 bodies (`<ApiResponse Status="ERROR"><Errors><Error
//!   Number=…>`); throttling is HTTP 405 and is retried like a 429.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde::Deserialize;

use super::check_all;
use crate::changeset::{ApplyError, ApplyTraits, Observed, TxtChange, ZoneSets, conflict};
use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy, kind_for_status};
use crate::registry::{Credential, CredentialKind, Host, Required, SettingProblem, Settings};
use crate::{
    Error, ErrorKind, Fqdn, Operation, Profile, Provider, Secret, TxtRecord, TxtSet, Zone,
};

/// The adapter's kind.
pub const KIND: &str = "namecheap";

/// The account setting that allows whole-host-list writes.
pub const OPT_IN_SETTING: &str = "replace_whole_host_list";

/// The registry entry: the API key is the secret; `api_user` and `client_ip` are
/// required settings; `username`, `replace_whole_host_list` and `base_url` optional.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/namecheap.toml"),
    credential: CredentialKind::Secret,
    required: &[
        Required {
            key: "api_user",
            example: "\"alice\"",
        },
        Required {
            key: "client_ip",
            example: "\"203.0.113.7\"",
        },
    ],
    optional: &["username", "replace_whole_host_list", "base_url"],
    check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<Arc<dyn Provider>, Error> {
    let api_user = settings
        .api_user
        .clone()
        .ok_or_else(|| crate::registry::missing(KIND, "api_user"))?;
    let client_ip = settings
        .client_ip
        .as_deref()
        .ok_or_else(|| crate::registry::missing(KIND, "client_ip"))?;
    let client_ip = parse_client_ip(client_ip).map_err(config_error)?;
    let mut cfg = Config::new(api_user, client_ip, credential.secret(KIND)?);
    if let Some(u) = &settings.username {
        cfg.username = u.clone();
    }
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    cfg.replace_whole_host_list = settings.replace_whole_host_list.unwrap_or(false);
    Ok(Arc::new(Namecheap::new(cfg, policy)?))
}

/// The `client_ip` setting: an IPv4 address (Namecheap's whitelist takes no IPv6).
fn parse_client_ip(ip: &str) -> Result<Ipv4Addr, String> {
    ip.trim()
        .parse()
        .map_err(|_| format!("client_ip '{ip}' is not an IPv4 address (Namecheap takes IPv4 only)"))
}

/// The registry's [`crate::registry::Check`]: the API user and the client address.
fn check(settings: &Settings) -> Vec<SettingProblem> {
    let mut out = Vec::new();
    if let Some(u) = &settings.api_user
        && u.trim().is_empty()
    {
        out.push(SettingProblem::new("api_user", "api_user is empty"));
    }
    if let Some(ip) = &settings.client_ip
        && let Err(m) = parse_client_ip(ip)
    {
        out.push(SettingProblem::new("client_ip", m));
    }
    out
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(
        KIND,
        Operation::Authenticate,
        None,
        ErrorKind::Config,
        message,
    )
}

/// The real API's host (requests go to `/xml.response` below it).
pub const DEFAULT_BASE_URL: &str = "https://api.namecheap.com";

/// Domains per `getList` page (Namecheap's maximum is 100).
pub const LIST_PAGE_SIZE: u32 = 100;

/// Highest TTL `setHosts` takes, in seconds.
pub const MAX_TTL: u32 = 60_000;

/// Account settings for Namecheap.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ApiUser`.
    pub api_user: String,
    /// `UserName` (normally the same as `ApiUser`).
    pub username: String,
    /// `ClientIp`: the whitelisted IPv4 address requests come from.
    pub client_ip: Ipv4Addr,
    /// `ApiKey`.
    pub api_key: Secret,
    /// The API host; [`DEFAULT_BASE_URL`] unless testing (sandbox:
    /// `https://api.sandbox.namecheap.com`).
    pub base_url: String,
    /// The explicit opt-in: every write replaces the domain's whole host list.
    pub replace_whole_host_list: bool,
}

impl Config {
    /// A config for the real API, without the write opt-in.
    pub fn new(api_user: String, client_ip: Ipv4Addr, api_key: Secret) -> Self {
        Config {
            username: api_user.clone(),
            api_user,
            client_ip,
            api_key,
            base_url: DEFAULT_BASE_URL.to_string(),
            replace_whole_host_list: false,
        }
    }
}

/// The Namecheap adapter.
#[derive(Debug)]
pub struct Namecheap {
    http: HttpClient,
    api_user: String,
    username: String,
    client_ip: Ipv4Addr,
    api_key: Secret,
    opt_in: bool,
    profile: Profile,
}

/// Maps an HTTP-level failure: 405 is Namecheap's throttling answer.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let (_, message) = crate::http::default_mapper(f);
    let kind = match f.status.as_u16() {
        405 => ErrorKind::RateLimited,
        _ => kind_for_status(f.status),
    };
    (kind, message)
}

/// The kind of one of Namecheap's error numbers (global numbers from
/// namecheap.com/support/api/global-parameters; domain numbers as seen in clients).
pub fn kind_for_number(number: &str) -> ErrorKind {
    match number {
        // ApiKey invalid / API access not enabled; UserName not authorized.
        "1011102" | "1010102" | "1016103" | "1011101" | "1010101" => ErrorKind::Auth,
        // ClientIp not whitelisted, IP disabled or locked.
        "1011150" | "1017150" | "1017105" | "1010105" | "1011105" => ErrorKind::Permission,
        // Too many declined attempts.
        "1017411" => ErrorKind::RateLimited,
        // Domain not found / not associated with the account.
        "2019166" | "2016166" | "2030166" => ErrorKind::ZoneNotFound,
        n if n.starts_with('5') => ErrorKind::Server,
        _ => ErrorKind::Invalid,
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    #[serde(rename = "@Status")]
    status: String,
    #[serde(rename = "Errors", default)]
    errors: Option<XmlErrors>,
    #[serde(rename = "CommandResponse", default)]
    command: Option<CommandResponse>,
}

#[derive(Deserialize, Default)]
struct XmlErrors {
    #[serde(rename = "Error", default)]
    error: Vec<XmlError>,
}

#[derive(Deserialize)]
struct XmlError {
    #[serde(rename = "@Number", default)]
    number: String,
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Deserialize)]
struct CommandResponse {
    #[serde(rename = "DomainDNSGetHostsResult", default)]
    hosts: Option<HostsResult>,
    #[serde(rename = "DomainDNSSetHostsResult", default)]
    set: Option<SetResult>,
    #[serde(rename = "DomainGetListResult", default)]
    list: Option<ListResult>,
    #[serde(rename = "Paging", default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct HostsResult {
    #[serde(rename = "@EmailType", default)]
    email_type: Option<String>,
    #[serde(rename = "@IsUsingOurDNS", default)]
    using_our_dns: Option<String>,
    #[serde(rename = "host", alias = "Host", default)]
    hosts: Vec<XmlHost>,
}

#[derive(Deserialize)]
struct XmlHost {
    #[serde(rename = "@Name")]
    name: String,
    #[serde(rename = "@Type")]
    kind: String,
    #[serde(rename = "@Address")]
    address: String,
    #[serde(rename = "@MXPref", default)]
    mx_pref: Option<String>,
    #[serde(rename = "@TTL", default)]
    ttl: Option<String>,
}

#[derive(Deserialize)]
struct SetResult {
    #[serde(rename = "@IsSuccess")]
    is_success: String,
}

#[derive(Deserialize)]
struct ListResult {
    #[serde(rename = "Domain", default)]
    domains: Vec<XmlDomain>,
}

#[derive(Deserialize)]
struct XmlDomain {
    #[serde(rename = "@Name")]
    name: String,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(rename = "TotalItems")]
    total: u32,
    #[serde(rename = "CurrentPage")]
    current: u32,
    #[serde(rename = "PageSize")]
    size: u32,
}

/// One record of a domain's host list, exactly as Namecheap gave it (strings, so
/// it is echoed back byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// Relative name (`@` for the apex).
    pub name: String,
    /// Record type (`A`, `MX`, `TXT`, `URL301`, ...).
    pub kind: String,
    /// `Address` (TXT: the joined value).
    pub address: String,
    /// `MXPref`, as given.
    pub mx_pref: Option<String>,
    /// `TTL`, as given.
    pub ttl: Option<String>,
}

impl HostRecord {
    fn is_txt_at(&self, rel: &str) -> bool {
        self.kind.eq_ignore_ascii_case("TXT") && self.name.eq_ignore_ascii_case(rel)
    }

    fn ttl_secs(&self) -> u32 {
        self.ttl
            .as_deref()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1800)
    }

    /// The record as compared after a write: MX preference only for MX records
    /// (Namecheap reports one for every record), names and types case-insensitively.
    fn key(&self) -> (String, String, String, Option<String>, u32) {
        let mx = self
            .kind
            .eq_ignore_ascii_case("MX")
            .then(|| self.mx_pref.clone().unwrap_or_default());
        (
            self.name.to_ascii_lowercase(),
            self.kind.to_ascii_uppercase(),
            self.address.clone(),
            mx,
            self.ttl_secs(),
        )
    }

    fn describe(&self) -> String {
        let mx = if self.kind.eq_ignore_ascii_case("MX") {
            format!(" pref {}", self.mx_pref.as_deref().unwrap_or("?"))
        } else {
            String::new()
        };
        format!(
            "{} {} {:?}{mx} TTL {}",
            self.name,
            self.kind,
            self.address,
            self.ttl.as_deref().unwrap_or("?")
        )
    }
}

/// A domain's host list and mail setting as `getHosts` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList {
    /// `EmailType` (`MX`, `MXE`, `FWD`, `OX`, `GMAIL`, ...), echoed on every write.
    pub email_type: Option<String>,
    /// `IsUsingOurDNS`: whether Namecheap's name servers serve the domain.
    pub using_our_dns: bool,
    /// Every record, in Namecheap's order.
    pub hosts: Vec<HostRecord>,
}

fn parse_envelope(body: &[u8], name: &Fqdn, op: Operation) -> Result<ApiResponse, Error> {
    let text = String::from_utf8_lossy(body);
    let r: ApiResponse =
        quick_xml::de::from_str(&text).map_err(|e| super::bad_body(KIND, op, name, e))?;
    if !r.status.eq_ignore_ascii_case("OK") {
        let errors = r.errors.unwrap_or_default().error;
        let Some(first) = errors.first() else {
            return Err(super::bad_body(
                KIND,
                op,
                name,
                format!("Status=\"{}\" without an <Error>", r.status),
            ));
        };
        let message = errors
            .iter()
            .map(|e| format!("{} (error {})", e.text.trim(), e.number))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::new(
            KIND,
            op,
            Some(name),
            kind_for_number(&first.number),
            message,
        )
        .with_status(200));
    }
    Ok(r)
}

/// Parses a `getHosts` answer (or its error envelope). Pure, for the read path and
/// the fuzz target.
///
/// # Errors
/// The host's error inside the HTTP 200 body, mapped by [`kind_for_number`], with
/// Namecheap's message and number; [`ErrorKind::Protocol`] when the body is not
/// the documented `ApiResponse` with a `DomainDNSGetHostsResult`
/// (<https://www.namecheap.com/support/api/methods/domains-dns/get-hosts/>).
pub fn parse_get_hosts(body: &[u8], name: &Fqdn, op: Operation) -> Result<HostList, Error> {
    let r = parse_envelope(body, name, op)?;
    let hosts = r
        .command
        .and_then(|c| c.hosts)
        .ok_or_else(|| super::bad_body(KIND, op, name, "no DomainDNSGetHostsResult"))?;
    Ok(HostList {
        email_type: hosts.email_type,
        using_our_dns: hosts
            .using_our_dns
            .is_none_or(|v| v.eq_ignore_ascii_case("true")),
        hosts: hosts
            .hosts
            .into_iter()
            .map(|h| HostRecord {
                name: h.name,
                kind: h.kind,
                address: h.address,
                mx_pref: h.mx_pref,
                ttl: h.ttl,
            })
            .collect(),
    })
}

/// Parses a `setHosts` answer.
///
/// # Errors
/// As [`parse_get_hosts`]; [`ErrorKind::Server`] when `IsSuccess` is not `true`.
pub fn parse_set_hosts(body: &[u8], name: &Fqdn, op: Operation) -> Result<(), Error> {
    let r = parse_envelope(body, name, op)?;
    let set = r
        .command
        .and_then(|c| c.set)
        .ok_or_else(|| super::bad_body(KIND, op, name, "no DomainDNSSetHostsResult"))?;
    if set.is_success.eq_ignore_ascii_case("true") {
        Ok(())
    } else {
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Server,
            format!("setHosts answered IsSuccess=\"{}\"", set.is_success),
        )
        .with_status(200))
    }
}

/// Parses a `domains.getList` page: the domain names and whether more pages follow.
///
/// # Errors
/// As [`parse_get_hosts`], for a `DomainGetListResult`.
pub fn parse_get_list(
    body: &[u8],
    name: &Fqdn,
    op: Operation,
) -> Result<(Vec<String>, bool), Error> {
    let r = parse_envelope(body, name, op)?;
    let c = r
        .command
        .ok_or_else(|| super::bad_body(KIND, op, name, "no CommandResponse"))?;
    let list = c
        .list
        .ok_or_else(|| super::bad_body(KIND, op, name, "no DomainGetListResult"))?;
    let more = c
        .paging
        .is_some_and(|p| u64::from(p.current) * u64::from(p.size.max(1)) < u64::from(p.total));
    Ok((list.domains.into_iter().map(|d| d.name).collect(), more))
}

/// The in-process lock of one domain of one API user, shared by every adapter
/// instance of the process (two accounts may name the same Namecheap user).
fn domain_lock(api_user: &str, zone: &Fqdn) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let mut g = map.lock().unwrap_or_else(|e| e.into_inner());
    g.entry(format!("{api_user}/{zone}"))
        .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
        .clone()
}

fn relative(zone: &Zone, name: &Fqdn, op: Operation) -> Result<String, Error> {
    super::relative_name(KIND, zone, name, op, super::Apex::At)
}

fn txt_set(list: &HostList, rel: &str) -> Option<TxtSet> {
    let at: Vec<&HostRecord> = list.hosts.iter().filter(|h| h.is_txt_at(rel)).collect();
    let first = at.first()?;
    Some(TxtSet {
        ttl: first.ttl_secs(),
        records: at
            .iter()
            .map(|h| TxtRecord::from_value(h.address.as_bytes()))
            .collect(),
    })
}

/// One name's wanted TXT values (joined, deduplicated) and TTL; no values deletes.
struct Want {
    rel: String,
    values: Vec<String>,
    ttl: u32,
}

/// The host list with the TXT records at each wanted name made exactly the wanted
/// values; every other record, and records already holding a wanted value, stay
/// as read and in place (only their TTL follows the wanted one).
fn merged(list: &HostList, wants: &[Want]) -> Vec<HostRecord> {
    let mut out = Vec::with_capacity(list.hosts.len());
    let mut placed: Vec<Vec<bool>> = wants.iter().map(|w| vec![false; w.values.len()]).collect();
    for h in &list.hosts {
        let Some(wi) = wants.iter().position(|w| h.is_txt_at(&w.rel)) else {
            out.push(h.clone());
            continue;
        };
        let w = &wants[wi];
        if let Some(vi) = (0..w.values.len()).find(|&i| !placed[wi][i] && w.values[i] == h.address)
        {
            placed[wi][vi] = true;
            let mut kept = h.clone();
            if kept.ttl_secs() != w.ttl {
                kept.ttl = Some(w.ttl.to_string());
            }
            out.push(kept);
        }
    }
    for (wi, w) in wants.iter().enumerate() {
        for (vi, v) in w.values.iter().enumerate() {
            if !placed[wi][vi] {
                out.push(HostRecord {
                    name: w.rel.clone(),
                    kind: "TXT".into(),
                    address: v.clone(),
                    mx_pref: None,
                    ttl: Some(w.ttl.to_string()),
                });
            }
        }
    }
    out
}

/// What differs between the host list written and the one read after: each record
/// written but not found, and each found but not written.
fn differences(written: &[HostRecord], read: &[HostRecord]) -> Vec<String> {
    let mut rest: Vec<&HostRecord> = read.iter().collect();
    let mut out = Vec::new();
    for w in written {
        match rest.iter().position(|r| r.key() == w.key()) {
            Some(i) => {
                rest.remove(i);
            }
            None => out.push(format!("written but not found: {}", w.describe())),
        }
    }
    for r in rest {
        out.push(format!("found but not written: {}", r.describe()));
    }
    out
}

impl Namecheap {
    /// Validates `config` and builds the adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the API key or user is empty or the base URL is
    /// not https (plain http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        if config.api_key.is_empty() {
            return Err(config_error("the API key is empty"));
        }
        if config.api_user.trim().is_empty() {
            return Err(config_error("api_user is empty"));
        }
        Ok(Namecheap {
            http: HttpClient::new(KIND, &config.base_url, policy, map_error)?,
            username: if config.username.trim().is_empty() {
                config.api_user.clone()
            } else {
                config.username
            },
            api_user: config.api_user,
            client_ip: config.client_ip,
            api_key: config.api_key,
            opt_in: config.replace_whole_host_list,
            profile: crate::registry::profile(KIND)?,
        })
    }

    /// Sends `command` with `params` as a form-encoded POST; the answer's body.
    async fn call(
        &self,
        op: Operation,
        name: &Fqdn,
        command: &str,
        params: &[(String, String)],
        idempotency: Idempotency,
    ) -> Result<Vec<u8>, Error> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("ApiUser", &self.api_user)
                .append_pair("ApiKey", self.api_key.expose())
                .append_pair("UserName", &self.username)
                .append_pair("ClientIp", &self.client_ip.to_string())
                .append_pair("Command", command);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let resp = self
            .http
            .send(op, Some(name), idempotency, |c| {
                self.http
                    .request(c, Method::POST, "xml.response")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone())
            })
            .await?;
        Ok(resp.body)
    }

    fn sld_tld(zone: &Zone) -> Vec<(String, String)> {
        let z = zone.name.as_str();
        let (sld, tld) = z.split_once('.').unwrap_or((z, ""));
        vec![("SLD".into(), sld.into()), ("TLD".into(), tld.into())]
    }

    /// The domain's host list.
    ///
    /// # Errors
    /// The host's failure; [`ErrorKind::Permission`] when the domain is not on
    /// Namecheap's DNS (its records cannot be managed through the API).
    pub async fn get_hosts(&self, zone: &Zone, op: Operation) -> Result<HostList, Error> {
        let body = self
            .call(
                op,
                &zone.name,
                "namecheap.domains.dns.getHosts",
                &Self::sld_tld(zone),
                Idempotency::Idempotent,
            )
            .await?;
        let list = parse_get_hosts(&body, &zone.name, op)?;
        if !list.using_our_dns {
            return Err(Error::new(
                KIND,
                op,
                Some(&zone.name),
                ErrorKind::Permission,
                "the domain does not use Namecheap's name servers (IsUsingOurDNS=false): its records cannot be managed through Namecheap's API",
            ));
        }
        Ok(list)
    }

    fn refuse_without_opt_in(&self, op: Operation, name: &Fqdn) -> Result<(), Error> {
        if self.opt_in {
            return Ok(());
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Config,
            format!(
                "refused before any request: Namecheap can only replace a domain's whole host list (setHosts, no precondition), so a write rewrites every record of the domain and its mail setting; maildns does that only for an account with {OPT_IN_SETTING} = true"
            ),
        ))
    }

    /// Locks the domain, reads the host list again, checks each change's RRset is
    /// still as read (when `check` is set), writes the merged list with the domain's
    /// `EmailType`, reads it back and reports any difference.
    async fn write(
        &self,
        zone: &Zone,
        changes: &[(Fqdn, Option<&Observed>, Option<TxtSet>)],
    ) -> Result<(), ApplyError> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        let op = if first.2.is_some() {
            Operation::Replace
        } else {
            Operation::Delete
        };
        self.refuse_without_opt_in(op, &first.0)
            .map_err(ApplyError::nothing_written)?;
        let mut wants = Vec::with_capacity(changes.len());
        for (name, _, set) in changes {
            let rel = relative(zone, name, op).map_err(ApplyError::nothing_written)?;
            let (values, ttl) = match set.as_ref().filter(|s| !s.records.is_empty()) {
                Some(s) => {
                    if s.ttl > MAX_TTL {
                        return Err(ApplyError::nothing_written(Error::new(
                            KIND,
                            op,
                            Some(name),
                            ErrorKind::Invalid,
                            format!("TTL {} is over Namecheap's maximum of {MAX_TTL}", s.ttl),
                        )));
                    }
                    let mut values: Vec<String> = Vec::new();
                    for r in check_all(KIND, &self.profile, name, s)
                        .map_err(ApplyError::nothing_written)?
                    {
                        // printable_ascii_only was checked: the value is ASCII.
                        let v = String::from_utf8_lossy(&r.value()).into_owned();
                        if !values.contains(&v) {
                            values.push(v);
                        }
                    }
                    (values, s.ttl)
                }
                None => (Vec::new(), 0),
            };
            wants.push(Want { rel, values, ttl });
        }
        let lock = domain_lock(&self.api_user, &zone.name);
        let _guard = lock.lock().await;
        let list = self
            .get_hosts(zone, Operation::Read)
            .await
            .map_err(ApplyError::nothing_written)?;
        for ((name, old, set), w) in changes.iter().zip(&wants) {
            let now = txt_set(&list, &w.rel);
            // Already as wanted (the same change applied before): no conflict.
            let wanted = set.as_ref().filter(|s| !s.records.is_empty());
            if let Some(old) = old
                && !crate::changeset::same_content(wanted, now.as_ref())
                && !old.unchanged_in(now.as_ref())
            {
                return Err(ApplyError::nothing_written(conflict(
                    KIND,
                    op,
                    name,
                    "the TXT RRset changed since it was read",
                )));
            }
        }
        let new = merged(&list, &wants);
        if new == list.hosts {
            return Ok(());
        }
        let mut params = Self::sld_tld(zone);
        if let Some(t) = &list.email_type {
            params.push(("EmailType".into(), t.clone()));
        }
        for (i, h) in new.iter().enumerate() {
            let n = i + 1;
            params.push((format!("HostName{n}"), h.name.clone()));
            params.push((format!("RecordType{n}"), h.kind.clone()));
            params.push((format!("Address{n}"), h.address.clone()));
            if let Some(p) = &h.mx_pref {
                params.push((format!("MXPref{n}"), p.clone()));
            }
            if let Some(t) = &h.ttl {
                params.push((format!("TTL{n}"), t.clone()));
            }
        }
        let names: Vec<Fqdn> = changes.iter().map(|c| c.0.clone()).collect();
        // Replacing the whole list with the same list is harmless: idempotent.
        let body = self
            .call(
                op,
                &zone.name,
                "namecheap.domains.dns.setHosts",
                &params,
                Idempotency::Idempotent,
            )
            .await
            .map_err(ApplyError::nothing_written)?;
        parse_set_hosts(&body, &zone.name, op).map_err(ApplyError::nothing_written)?;
        let after = self
            .get_hosts(zone, Operation::WaitForChange)
            .await
            .map_err(|error| ApplyError {
                written: names.clone(),
                error,
            })?;
        let diff = differences(&new, &after.hosts);
        let mail_changed = after.email_type != list.email_type;
        if diff.is_empty() && !mail_changed {
            return Ok(());
        }
        let mut what = diff;
        if mail_changed {
            what.push(format!(
                "EmailType was {:?}, is now {:?}",
                list.email_type, after.email_type
            ));
        }
        tracing::warn!(provider = KIND, domain = %zone.name, "host list changed under maildns: {}", what.join("; "));
        Err(ApplyError {
            written: names,
            error: Error::new(
                KIND,
                Operation::WaitForChange,
                Some(&zone.name),
                ErrorKind::Conflict,
                format!(
                    "the host list read back after setHosts differs from what maildns wrote (another writer, or Namecheap changed it): {}",
                    what.join("; ")
                ),
            ),
        })
    }
}

#[async_trait::async_trait]
impl Provider for Namecheap {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_string(),
        })
    }

    fn apply_traits(&self) -> ApplyTraits {
        // One setHosts carries the whole domain; nothing holds the list as read.
        ApplyTraits {
            atomic: true,
            compare_and_swap: false,
            deferred: false,
        }
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let op = Operation::FindZone;
        let mut best: Option<Fqdn> = None;
        let mut page = 1u32;
        loop {
            let params = vec![
                ("Page".to_string(), page.to_string()),
                ("PageSize".to_string(), LIST_PAGE_SIZE.to_string()),
            ];
            let body = self
                .call(
                    op,
                    name,
                    "namecheap.domains.getList",
                    &params,
                    Idempotency::Idempotent,
                )
                .await?;
            let (domains, more) = parse_get_list(&body, name, op)?;
            for d in domains {
                if let Ok(d) = Fqdn::parse(&d)
                    && name.is_within(&d)
                    && best
                        .as_ref()
                        .is_none_or(|b| d.as_str().len() > b.as_str().len())
                {
                    best = Some(d);
                }
            }
            if !more {
                break;
            }
            page += 1;
        }
        match best {
            Some(z) => Ok(Zone {
                id: z.to_string(),
                name: z,
            }),
            None => Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::ZoneNotFound,
                "no domain in this Namecheap account holds the name",
            )),
        }
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        let rel = relative(zone, name, Operation::Read)?;
        let list = self
            .get_hosts(zone, Operation::Read)
            .await
            .map_err(|e| e.with_name(name))?;
        Ok(txt_set(&list, &rel))
    }

    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let list = self.get_hosts(zone, Operation::Read).await?;
        let mut out = ZoneSets::new();
        for name in names {
            let rel = relative(zone, name, Operation::Read)?;
            out.insert(name.clone(), Observed::of(txt_set(&list, &rel)));
        }
        Ok(out)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.write(zone, &[(name.clone(), None, Some(set.clone()))])
            .await
            .map_err(|e| e.error)
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.write(zone, &[(name.clone(), None, None)])
            .await
            .map_err(|e| e.error)
    }

    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let all: Vec<(Fqdn, Option<&Observed>, Option<TxtSet>)> = changes
            .iter()
            .map(|c| (c.name.clone(), Some(&c.old), c.wanted().cloned()))
            .collect();
        self.write(zone, &all).await
    }

    async fn replace_if_unchanged(&self, zone: &Zone, change: &TxtChange) -> Result<(), Error> {
        self.write(
            zone,
            &[(
                change.name.clone(),
                Some(&change.old),
                change.wanted().cloned(),
            )],
        )
        .await
        .map_err(|e| e.error)
    }
}

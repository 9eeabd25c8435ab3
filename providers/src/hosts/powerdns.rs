//! PowerDNS Authoritative, through its HTTP API (`/api/v1`).
//!
//! PowerDNS works on RRsets: the TXT set at a name is read with one `GET` of the
//! zone (filtered by `rrset_name`/`rrset_type` where the server supports it, and
//! filtered again here because older servers ignore those parameters) and written
//! whole with one `PATCH` (`changetype` `REPLACE`, or `DELETE` for an empty set).
//!
//! TXT content travels in zone-file syntax. We always send every record pre-split
//! into quoted strings of at most 255 bytes (`"part1" "part2"`), so what the API
//! holds is exactly what DNS serves. PowerDNS also accepts, and stores unsplit, a
//! single quoted string longer than 255 bytes (other tools create such records);
//! on the wire it cuts that string into 255-byte strings. [`parse_content`] does the
//! same cut when reading, so such a record reads back as the strings DNS serves.
//!
//! Under concurrent writes the gsqlite3 backend answers some `PATCH`es with HTTP 500
//! `database is locked` at once (it takes one writer at a time); that is
//! transient and retried by [`HttpClient`], whose window of writes in flight
//! ([`crate::window::WriteWindow`]) then keeps to one `PATCH` at a time, so
//! such refusals stay rare. A refused `PATCH` writes none of its RRsets (the
//! transaction is rolled back; tested against gsqlite3).
//!
//! Disabled records (`"disabled": true`) are not served, so they are left out of
//! [`Provider::read_txt`]; a later `replace_txt` at that name drops them.
//!
//! # Change sets
//! [`Provider::read_sets`] is ONE `GET /servers/{id}/zones/{zone}`: the zone with
//! its RRsets, TXT sets picked out at the names asked. (`?rrsets=false` leaves the
//! RRsets out, so it is of no use here. Newer servers filter the answer by
//! `rrset_name` and `rrset_type`, for one name only, so they are sent when one
//! name is asked; 4.7, the version the tests run, ignores them and answers the
//! whole zone. The answer is filtered here either way, so no version check, and
//! no request for it, is needed.)
//!
//! [`Provider::apply`] is ONE `PATCH` of the zone carrying every RRset (`REPLACE`,
//! or `DELETE` for a set wanted empty). PowerDNS applies a `PATCH` in one backend
//! transaction and validates every RRset first: all of it lands or none does
//! (atomic, <https://doc.powerdns.com/authoritative/http-api/zone.html#patch--servers-server_id-zones-zone_id>).
//! Its API has no precondition (no ETag, no conditional change type before
//! `EXTEND`/`PRUNE`), so the apply is **not** compare-and-swap: a value another
//! tool writes at one of the names between the caller's `read_sets` and the
//! `PATCH` is overwritten. maildns keeps that window to one round trip (the read
//! and the write are 2 requests per zone) instead of re-reading before the
//! write, which would cost a third request per zone; [`Provider::apply_traits`]
//! says `compare_and_swap: false` so callers know.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::http::{Failure, HttpClient, Idempotency, RetryPolicy};
use crate::registry::{Credential, CredentialKind, Host, Required, Settings};
use crate::txt::{ParseError, ParseErrorKind};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    Secret, TxtChange, TxtRecord, TxtSet, Zone, ZoneSets, zone_candidates,
};

const KIND: &str = "powerdns";

/// The registry entry: the API key as secret credential; `base_url` required,
/// `server_id` defaults to `localhost`.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/powerdns.toml"),
    credential: CredentialKind::Secret,
    required: &[Required {
        key: "base_url",
        example: "\"http://127.0.0.1:8081/api/v1\"",
    }],
    optional: &["server_id"],
    check: crate::registry::no_check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let cfg = Config {
        base_url: settings
            .base_url
            .clone()
            .ok_or_else(|| crate::registry::missing(KIND, "base_url"))?,
        server_id: settings
            .server_id
            .clone()
            .unwrap_or_else(|| "localhost".to_string()),
        api_key: credential.secret(KIND)?,
    };
    Ok(std::sync::Arc::new(PowerDns::new(cfg, policy)?))
}

/// How to reach one PowerDNS server's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// API base URL, e.g. `http://127.0.0.1:8081/api/v1` (https, or http to loopback).
    pub base_url: String,
    /// The server id in API paths, normally `localhost`.
    pub server_id: String,
    /// The `api-key` from `pdns.conf`, sent as `X-API-Key`.
    pub api_key: Secret,
}

/// A PowerDNS Authoritative server driven through its HTTP API.
#[derive(Debug)]
pub struct PowerDns {
    http: HttpClient,
    server_id: String,
    api_key: Secret,
    profile: Profile,
}

impl PowerDns {
    /// Validates `config` and builds the adapter (no request is sent).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the API key is empty or holds control characters,
    /// the server id is not one path segment, or the base URL is not https (plain
    /// http only to loopback).
    pub fn new(config: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let cfg = |m: &str| {
            Error::new(
                KIND,
                Operation::Authenticate,
                None,
                ErrorKind::Config,
                m.to_string(),
            )
        };
        if config.api_key.is_empty() {
            return Err(cfg("the API key is empty"));
        }
        if config.api_key.expose().chars().any(char::is_control) {
            return Err(cfg("the API key contains control characters"));
        }
        let id = config.server_id.trim();
        if id.is_empty() || id.contains('/') || id.chars().any(char::is_whitespace) {
            return Err(cfg(
                "the server id must be one non-empty path segment (normally `localhost`)",
            ));
        }
        let http = HttpClient::new(KIND, &config.base_url, policy, map_error)?;
        Ok(PowerDns {
            http,
            server_id: id.to_string(),
            api_key: config.api_key,
            profile: crate::registry::profile(KIND)?,
        })
    }

    /// `servers/{id}/zones[/{zone}]` with each segment percent-encoded.
    fn zones_url(&self, zone_id: Option<&str>) -> Url {
        let mut url = self.http.url("servers");
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.push(&self.server_id).push("zones");
            if let Some(z) = zone_id {
                segs.push(z);
            }
        }
        url
    }

    fn check_name(&self, op: Operation, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        if name.is_within(&zone.name) {
            Ok(())
        } else {
            Err(Error::new(
                KIND,
                op,
                Some(name),
                ErrorKind::Invalid,
                format!("{name} is not within zone {}", zone.name),
            ))
        }
    }

    async fn patch(
        &self,
        op: Operation,
        zone: &Zone,
        name: &Fqdn,
        rrsets: Vec<serde_json::Value>,
    ) -> Result<(), Error> {
        let url = self.zones_url(Some(&zone.id));
        let body = serde_json::json!({ "rrsets": rrsets });
        self.http
            .send(op, Some(name), Idempotency::Idempotent, |c| {
                c.request(Method::PATCH, url.clone())
                    .header("X-API-Key", self.api_key.expose())
                    .json(&body)
            })
            .await?;
        Ok(())
    }
}

impl PowerDns {
    /// The `REPLACE` RRset making the TXT set at `name` exactly `set`, after
    /// checking every record against the profile and the TTL against its minimum.
    fn replace_rrset(&self, name: &Fqdn, set: &TxtSet) -> Result<serde_json::Value, Error> {
        self.profile
            .check_set(KIND, Operation::Replace, name, &set.records)?;
        if set.ttl < self.profile.min_ttl {
            return Err(Error::new(
                KIND,
                Operation::Replace,
                Some(name),
                ErrorKind::Invalid,
                format!(
                    "TTL {} is below the minimum of {}",
                    set.ttl, self.profile.min_ttl
                ),
            ));
        }
        let records: Vec<serde_json::Value> = set
            .records
            .iter()
            .map(|r| serde_json::json!({"content": r.to_presentation(), "disabled": false}))
            .collect();
        Ok(serde_json::json!({
            "name": name.to_dotted(),
            "type": "TXT",
            "ttl": set.ttl,
            "changetype": "REPLACE",
            "records": records,
        }))
    }

    /// The `PATCH` body's RRsets for a change set, every change checked first
    /// (names inside the zone, each name once, records and TTL the host takes).
    fn change_rrsets(
        &self,
        zone: &Zone,
        changes: &[TxtChange],
    ) -> Result<Vec<serde_json::Value>, Error> {
        let mut out = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let op = c.operation();
            self.check_name(op, zone, &c.name)?;
            if changes[..i].iter().any(|p| p.name == c.name) {
                return Err(Error::new(
                    KIND,
                    op,
                    Some(&c.name),
                    ErrorKind::Invalid,
                    "the change set changes this name twice; one PATCH takes one RRset per name and type",
                ));
            }
            out.push(match c.wanted() {
                Some(set) => self.replace_rrset(&c.name, set)?,
                None => delete_rrset(&c.name),
            });
        }
        Ok(out)
    }
}

/// The `DELETE` RRset removing the TXT set at `name`.
fn delete_rrset(name: &Fqdn) -> serde_json::Value {
    serde_json::json!({
        "name": name.to_dotted(),
        "type": "TXT",
        "changetype": "DELETE",
    })
}

#[derive(Debug, Deserialize)]
struct ZoneInfo {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct ZoneDetail {
    rrsets: Vec<RrSet>,
}

#[derive(Debug, Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: u32,
    records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    content: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    errors: Vec<String>,
}

/// Maps PowerDNS error answers: `{"error":"…","errors":[…]}` bodies, `text/plain`
/// `Unauthorized`, "Could not find domain" (404, or 422 on some versions) as
/// [`ErrorKind::ZoneNotFound`], other 4xx as invalid, 5xx (`database is locked`) as
/// a transient server error.
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let text = String::from_utf8_lossy(f.body);
    let message = match serde_json::from_slice::<ErrorBody>(f.body) {
        Ok(b) if !b.error.is_empty() => {
            let mut m = b.error.clone();
            for e in b.errors.iter().filter(|e| **e != b.error) {
                m.push_str("; ");
                m.push_str(e);
            }
            m
        }
        _ => text.trim().to_string(),
    };
    // One line, bounded.
    let message: String = message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(500)
        .collect();
    let kind = match f.status {
        StatusCode::UNAUTHORIZED => ErrorKind::Auth,
        StatusCode::FORBIDDEN => ErrorKind::Permission,
        StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
            if message.contains("Could not find domain") =>
        {
            ErrorKind::ZoneNotFound
        }
        StatusCode::NOT_FOUND => ErrorKind::ZoneNotFound,
        s => crate::http::kind_for_status(s),
    };
    (kind, message)
}

/// Parses one record's `content` as PowerDNS renders it: canonical zone-file form,
/// every character-string in double quotes (PowerDNS's API refuses anything else
/// with 422, so unquoted content is an answer out of format, refused here before
/// anything is planned on it).
///
/// A quoted string longer than 255 bytes (PowerDNS stores such a string unsplit
/// when another tool sent it) is cut into 255-byte strings, as PowerDNS does when it
/// serves the record, instead of failing.
///
/// # Errors
/// [`ParseError`] when `content` is not quoted character-strings or does not parse
/// as presentation form.
pub fn parse_content(content: &str) -> Result<TxtRecord, ParseError> {
    crate::txt::require_quoted(content.as_bytes())?;
    match TxtRecord::parse_presentation(content) {
        Err(e) if e.kind == ParseErrorKind::StringTooLong => {
            TxtRecord::parse_presentation_bytes(&split_long_strings(content.as_bytes()))
        }
        other => other,
    }
}

/// Inserts `" "` into every quoted string after each 255 bytes of its (unescaped)
/// content, counting an escape (`\X` or `\DDD`) as the one byte it stands for.
fn split_long_strings(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 128);
    let mut in_quotes = false;
    let mut count = 0usize;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if !in_quotes {
            if c == b'"' {
                in_quotes = true;
                count = 0;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if c == b'"' {
            in_quotes = false;
            out.push(c);
            i += 1;
            continue;
        }
        let len = if c == b'\\' {
            match input.get(i + 1) {
                Some(d) if d.is_ascii_digit() => 4,
                _ => 2,
            }
        } else {
            1
        };
        if count == crate::txt::MAX_STRING {
            out.extend_from_slice(b"\" \"");
            count = 0;
        }
        let end = (i + len).min(input.len());
        out.extend_from_slice(&input[i..end]);
        count += 1;
        i = end;
    }
    out
}

/// Parses the answer to a zone `GET` (`{"rrsets":[...]}`) into the TXT set at `name`
/// (`None` when there is none, or only disabled records). Pure, for the read path and
/// the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `powerdns` and `read TXT` when the body is not the
/// documented shape or a record's content is not quoted zone-file text.
pub fn parse_rrsets(body: &[u8], name: &Fqdn) -> Result<Option<TxtSet>, Error> {
    let mut sets = parse_zone_sets(body, std::slice::from_ref(name), name)?;
    Ok(sets.remove(name).and_then(|o| o.set))
}

/// Parses the answer to a zone `GET` into the TXT sets at `names` (one entry per
/// name, absent sets included; disabled records left out). `context` names the
/// errors (the name asked, or the zone apex for a change set). Pure.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `powerdns`, `read TXT` and the owner name when the
/// body is not the documented shape or a record's content is not quoted zone-file
/// text.
pub fn parse_zone_sets(body: &[u8], names: &[Fqdn], context: &Fqdn) -> Result<ZoneSets, Error> {
    let protocol = |name: &Fqdn, m: String| {
        Error::new(KIND, Operation::Read, Some(name), ErrorKind::Protocol, m)
    };
    let detail: ZoneDetail = serde_json::from_slice(body)
        .map_err(|e| protocol(context, format!("unexpected response body: {e}")))?;
    let mut out = ZoneSets::new();
    for name in names {
        out.insert(name.clone(), Observed::default());
    }
    for set in detail.rrsets.iter().filter(|s| s.rtype == "TXT") {
        let Some(name) = names
            .iter()
            .find(|n| set.name.eq_ignore_ascii_case(&n.to_dotted()))
        else {
            continue;
        };
        let mut records = Vec::with_capacity(set.records.len());
        for r in set.records.iter().filter(|r| !r.disabled) {
            let rec = parse_content(&r.content).map_err(|e| {
                protocol(
                    name,
                    format!("cannot parse TXT content {:?}: {e}", r.content),
                )
            })?;
            records.push(rec);
        }
        if !records.is_empty() {
            out.insert(
                name.clone(),
                Observed::of(Some(TxtSet {
                    ttl: set.ttl,
                    records,
                })),
            );
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Provider for PowerDns {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn rate_limits_seen(&self) -> Vec<(String, String)> {
        self.http.rate_limits_seen().headers
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        let candidates = zone_candidates(name);
        let url = self.zones_url(None);
        for candidate in &candidates {
            let dotted = candidate.to_dotted();
            let resp = self
                .http
                .send(
                    Operation::FindZone,
                    Some(name),
                    Idempotency::Idempotent,
                    |c| {
                        c.request(Method::GET, url.clone())
                            .header("X-API-Key", self.api_key.expose())
                            .query(&[("zone", dotted.as_str())])
                    },
                )
                .await?;
            let zones: Vec<ZoneInfo> = resp
                .json(KIND, Operation::FindZone)
                .map_err(|e| e.with_name(name))?;
            // Older servers ignore `zone=` and list every zone: match the name here.
            if let Some(z) = zones
                .into_iter()
                .find(|z| z.name.eq_ignore_ascii_case(&dotted))
            {
                return Ok(Zone {
                    name: candidate.clone(),
                    id: z.id,
                });
            }
        }
        let tried: Vec<String> = candidates.iter().map(Fqdn::to_dotted).collect();
        Err(Error::new(
            KIND,
            Operation::FindZone,
            Some(name),
            ErrorKind::ZoneNotFound,
            format!(
                "no zone on PowerDNS server '{}' holds {name} (tried {})",
                self.server_id,
                tried.join(", ")
            ),
        ))
    }

    /// The zone is named by its apex: PowerDNS zone ids are the dotted apex
    /// (`example.com.`), so no find-zone request is needed.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        Some(Zone {
            name: apex.clone(),
            id: apex.to_dotted(),
        })
    }

    /// Atomic (one `PATCH`), not compare-and-swap (see the module docs).
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: false,
            deferred: false,
        }
    }

    /// One `GET` of the zone (filtered by a server that knows `rrset_name` when
    /// one name is asked; always filtered here).
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        for name in names {
            self.check_name(Operation::Read, zone, name)?;
        }
        if names.is_empty() {
            return Ok(ZoneSets::new());
        }
        let url = self.zones_url(Some(&zone.id));
        let one = match names {
            [n] => Some(n.to_dotted()),
            _ => None,
        };
        let resp = self
            .http
            .send(
                Operation::Read,
                Some(&zone.name),
                Idempotency::Idempotent,
                |c| {
                    let r = c
                        .request(Method::GET, url.clone())
                        .header("X-API-Key", self.api_key.expose());
                    match &one {
                        Some(n) => r.query(&[("rrset_name", n.as_str()), ("rrset_type", "TXT")]),
                        None => r,
                    }
                },
            )
            .await?;
        parse_zone_sets(&resp.body, names, &zone.name)
    }

    /// One `PATCH` with every RRset; all or nothing.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        if changes.is_empty() {
            return Ok(());
        }
        let rrsets = self
            .change_rrsets(zone, changes)
            .map_err(ApplyError::nothing_written)?;
        let op = if changes.iter().all(|c| c.wanted().is_none()) {
            Operation::Delete
        } else {
            Operation::Replace
        };
        let first = &changes[0].name;
        let single = if changes.len() == 1 {
            first
        } else {
            &zone.name
        };
        self.patch(op, zone, single, rrsets).await.map_err(|e| {
            // PowerDNS names the refused RRset in its message ("RRset x.example.com.
            // IN TXT: ..."): name that owner in the error when it is one of ours.
            let named = changes
                .iter()
                .find(|c| e.message.contains(&c.name.to_dotted()))
                .map(|c| e.clone().with_name(&c.name));
            ApplyError::nothing_written(named.unwrap_or(e))
        })
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.check_name(Operation::Read, zone, name)?;
        let url = self.zones_url(Some(&zone.id));
        let dotted = name.to_dotted();
        let resp = self
            .http
            .send(Operation::Read, Some(name), Idempotency::Idempotent, |c| {
                c.request(Method::GET, url.clone())
                    .header("X-API-Key", self.api_key.expose())
                    .query(&[("rrset_name", dotted.as_str()), ("rrset_type", "TXT")])
            })
            .await?;
        parse_rrsets(&resp.body, name)
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.check_name(Operation::Replace, zone, name)?;
        if set.records.is_empty() {
            return self.delete_txt(zone, name).await;
        }
        let rrset = self.replace_rrset(name, set)?;
        self.patch(Operation::Replace, zone, name, vec![rrset])
            .await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        self.check_name(Operation::Delete, zone, name)?;
        let rrset = delete_rrset(name);
        self.patch(Operation::Delete, zone, name, vec![rrset]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn failure(status: u16, body: &str) -> (ErrorKind, String) {
        let headers = HeaderMap::new();
        map_error(&Failure {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &headers,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn maps_powerdns_error_bodies() {
        assert_eq!(
            failure(401, "Unauthorized"),
            (ErrorKind::Auth, "Unauthorized".into())
        );
        assert_eq!(
            failure(401, r#"{"error":"Unauthorized"}"#),
            (ErrorKind::Auth, "Unauthorized".into())
        );
        assert_eq!(
            failure(404, r#"{"error":"Could not find domain 'x.test.'"}"#).0,
            ErrorKind::ZoneNotFound
        );
        assert_eq!(
            failure(422, r#"{"error":"Could not find domain 'x.test.'"}"#).0,
            ErrorKind::ZoneNotFound
        );
        assert_eq!(
            failure(
                422,
                r#"{"error":"Record x./TXT 'abc': Not in expected format (parsed as '\"abc\"')"}"#
            ),
            (
                ErrorKind::Invalid,
                "Record x./TXT 'abc': Not in expected format (parsed as '\"abc\"')".into()
            )
        );
        let (k, m) = failure(
            500,
            "{\"error\":\"GSQLBackend unable to delete RRSet a.test.|TXT: database is locked\"}",
        );
        assert_eq!(k, ErrorKind::Server);
        assert!(k.is_transient());
        assert!(m.ends_with("database is locked"), "{m}");
        assert_eq!(
            failure(400, "not json\nat all").1,
            "not json at all",
            "messages stay on one line"
        );
    }

    #[test]
    fn long_unsplit_strings_are_cut_like_the_wire() {
        let long = "a".repeat(600);
        let r = parse_content(&format!("\"{long}\"")).unwrap();
        let lens: Vec<usize> = r.strings().iter().map(|s| s.len()).collect();
        assert_eq!(lens, [255, 255, 90]);
        assert_eq!(r.value(), long.as_bytes());
        // Escapes count as one byte and are never cut in half.
        let v = format!("{}\\\"{}\\255", "b".repeat(254), "c".repeat(300));
        let r = parse_content(&format!("\"x\" \"{v}\"")).unwrap();
        let lens: Vec<usize> = r.strings().iter().map(|s| s.len()).collect();
        assert_eq!(lens, [1, 255, 255, 46]);
        assert_eq!(r.strings()[1].as_bytes()[254], b'"');
        assert_eq!(r.strings()[3].as_bytes()[45], 0xff);
        // Normal content is untouched.
        let r = parse_content("\"p1\" \"p2\"").unwrap();
        assert_eq!(r.strings().len(), 2);
    }

    #[test]
    fn config_is_validated_and_key_never_printed() {
        let ok = Config {
            base_url: "http://127.0.0.1:8081/api/v1".into(),
            server_id: "localhost".into(),
            api_key: Secret::new("sekrit-key-123"),
        };
        let p = PowerDns::new(ok.clone(), RetryPolicy::fast()).unwrap();
        assert!(!format!("{p:?}").contains("sekrit-key-123"));
        let e = PowerDns::new(
            Config {
                api_key: Secret::new(""),
                ..ok.clone()
            },
            RetryPolicy::fast(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        let e = PowerDns::new(
            Config {
                server_id: "a/b".into(),
                ..ok.clone()
            },
            RetryPolicy::fast(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        let e = PowerDns::new(
            Config {
                base_url: "http://pdns.example.com/api/v1".into(),
                ..ok
            },
            RetryPolicy::fast(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(!e.to_string().contains("sekrit"));
    }

    #[test]
    fn zone_urls_encode_segments() {
        let p = PowerDns::new(
            Config {
                base_url: "http://127.0.0.1:8081/api/v1".into(),
                server_id: "localhost".into(),
                api_key: Secret::new("k"),
            },
            RetryPolicy::fast(),
        )
        .unwrap();
        assert_eq!(
            p.zones_url(Some("example.test.")).as_str(),
            "http://127.0.0.1:8081/api/v1/servers/localhost/zones/example.test."
        );
        assert_eq!(
            p.zones_url(Some("a=2Fb.test.")).as_str(),
            "http://127.0.0.1:8081/api/v1/servers/localhost/zones/a=2Fb.test."
        );
    }

    #[test]
    fn parse_zone_sets_picks_the_txt_sets_asked_for() {
        let n = |s: &str| Fqdn::parse(s).unwrap();
        let body = serde_json::json!({"name": "example.com.", "rrsets": [
            {"name": "example.com.", "type": "TXT", "ttl": 300, "records": [
                {"content": "\"v=spf1 -all\"", "disabled": false},
                {"content": "\"off\"", "disabled": true}]},
            {"name": "example.com.", "type": "MX", "ttl": 300, "records": [
                {"content": "10 mx.example.com.", "disabled": false}]},
            {"name": "_DMARC.example.com.", "type": "TXT", "ttl": 600, "records": [
                {"content": "\"v=DMARC1; p=none\"", "disabled": false}]},
            {"name": "gone.example.com.", "type": "TXT", "ttl": 600, "records": [
                {"content": "\"x\"", "disabled": true}]},
            {"name": "other.example.com.", "type": "TXT", "ttl": 600, "records": [
                {"content": "unquoted but not asked", "disabled": false}]}
        ]})
        .to_string();
        let names = [
            n("example.com"),
            n("_dmarc.example.com"),
            n("gone.example.com"),
            n("absent.example.com"),
        ];
        let sets = parse_zone_sets(body.as_bytes(), &names, &names[0]).unwrap();
        assert_eq!(sets.len(), 4);
        let spf = sets[&names[0]].set.as_ref().unwrap();
        assert_eq!((spf.ttl, spf.records.len()), (300, 1));
        assert_eq!(spf.records[0].value(), b"v=spf1 -all");
        let dmarc = sets[&names[1]].set.as_ref().unwrap();
        assert_eq!(dmarc.ttl, 600);
        assert_eq!(sets[&names[2]].set, None, "only disabled records");
        assert_eq!(sets[&names[3]].set, None);
        // A set asked for that is not quoted zone-file text is refused, naming it.
        let e = parse_zone_sets(body.as_bytes(), &[n("other.example.com")], &names[0]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert_eq!(e.name.as_deref(), Some("other.example.com"));
    }

    #[test]
    fn parse_rrsets_refuses_unquoted_content_and_a_missing_list() {
        let name = Fqdn::parse("example.com").unwrap();
        let body = |content: &str| {
            serde_json::json!({"rrsets": [{"name": "example.com.", "type": "TXT", "ttl": 300,
                "records": [{"content": content, "disabled": false}]}]})
            .to_string()
        };
        let ok = parse_rrsets(body(r#""v=spf1 -all" "x""#).as_bytes(), &name)
            .unwrap()
            .unwrap();
        assert_eq!(ok.ttl, 300);
        assert_eq!(ok.records[0].value(), b"v=spf1 -allx");
        for bad in ["google-site-verification=abc def", r#""a" b"#, r#""open"#] {
            let e = parse_rrsets(body(bad).as_bytes(), &name).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{bad}: {e}");
            assert!(
                e.to_string()
                    .starts_with("powerdns: read TXT example.com: unexpected answer"),
                "{e}"
            );
        }
        let e = parse_rrsets(b"{}", &name).unwrap_err();
        assert!(e.message.contains("missing field `rrsets`"), "{e}");
        // Another name, or only disabled records: no set.
        assert_eq!(
            parse_rrsets(br#"{"rrsets":[{"name":"x.example.com.","type":"TXT","ttl":1,"records":[{"content":"\"a\""}]}]}"#, &name).unwrap(),
            None
        );
    }
}

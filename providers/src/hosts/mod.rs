//! One module per DNS host, all the same shape: a `HOST` entry for the
//! [`crate::registry`] (kind, descriptor, credential, required settings,
//! constructor), a `Config` (typed, validated, credentials passed in, never read
//! from the environment here), a constructor that validates it and takes the
//! [`crate::Profile`] from the host's descriptor, and the [`crate::Provider`]
//! implementation.

pub mod azure;
pub mod bunny;
pub mod cloudflare;
pub mod desec;
pub mod digitalocean;
pub mod dnsimple;
pub mod exec;
pub mod gandi;
pub mod godaddy;
pub mod google;
pub mod hetzner;
pub mod ionos;
pub mod linode;
pub mod manual;
pub mod namecheap;
pub mod netcup;
pub mod ovh;
mod paged;
pub mod porkbun;
pub mod powerdns;
pub mod rfc2136;
pub mod route53;
pub mod scaleway;
pub mod vultr;
pub mod zonefile;

use crate::{Error, Fqdn, Operation, Profile, TxtRecord, TxtSet};

/// For hosts that may re-split values: the set's TTL checked against the host's
/// maximum, each record of `set` shaped to the host's string limit and checked
/// against its profile (all of them, before the caller sends any request for
/// the set), duplicates dropped.
///
/// # Errors
/// [`crate::ErrorKind::Limit`] for a TTL over the maximum or the first shaped
/// record the profile refuses.
pub(crate) fn check_all(
    kind: &'static str,
    profile: &Profile,
    name: &Fqdn,
    set: &TxtSet,
) -> Result<Vec<TxtRecord>, Error> {
    if !set.records.is_empty() {
        profile.check_ttl(kind, Operation::Replace, name, set.ttl)?;
    }
    let mut out: Vec<TxtRecord> = Vec::new();
    for shaped in set.records.iter().map(|r| profile.shape(r)) {
        profile.check_set(
            kind,
            Operation::Replace,
            name,
            std::slice::from_ref(&shaped),
        )?;
        if !out.contains(&shaped) {
            out.push(shaped);
        }
    }
    Ok(out)
}

/// The constructors' check of a required credential: [`crate::ErrorKind::Config`]
/// saying that `what` (e.g. "API token") is empty when `empty`; the value
/// itself is never shown.
///
/// # Errors
/// That error, when `empty`.
pub(crate) fn require_nonempty(kind: &'static str, empty: bool, what: &str) -> Result<(), Error> {
    if empty {
        return Err(Error::new(
            kind,
            Operation::Authenticate,
            None,
            crate::ErrorKind::Config,
            format!("the {what} is empty"),
        ));
    }
    Ok(())
}

/// Parses one TXT record that a host documents as quoted zone-file text
/// (`"part1" "part2"`), refusing anything else: guessing where unquoted strings end
/// could rewrite a value maildns does not own.
///
/// # Errors
/// [`crate::ErrorKind::Protocol`] naming `kind`, `op` and `name`, quoting the text.
pub(crate) fn parse_quoted(
    kind: &'static str,
    op: Operation,
    name: &Fqdn,
    text: &str,
) -> Result<TxtRecord, Error> {
    crate::txt::require_quoted(text.as_bytes())
        .and_then(|()| TxtRecord::parse_presentation(text))
        .map_err(|e| {
            Error::new(
                kind,
                op,
                Some(name),
                crate::ErrorKind::Protocol,
                format!("TXT value {text:?} is not in the host's documented format: {e}"),
            )
        })
}

/// A protocol error for an answer body that is not the host's documented shape.
pub(crate) fn bad_body(
    kind: &'static str,
    op: Operation,
    name: &Fqdn,
    e: impl std::fmt::Display,
) -> Error {
    Error::new(
        kind,
        op,
        Some(name),
        crate::ErrorKind::Protocol,
        format!("unexpected response body: {e}"),
    )
}

/// A record-level plan for hosts that hold one record per TXT value, each with
/// its own id and TTL (Cloudflare, DigitalOcean, the zone-file adapter's lines):
/// which current records already hold a desired value, which hold none, and which
/// desired values no record holds yet.
#[derive(Debug)]
pub(crate) struct RecordDiff<'d, V, C> {
    /// Desired values no current record holds, in the order desired.
    pub create: Vec<&'d V>,
    /// Current records holding a desired value (each value claimed by the first
    /// record holding it, in the order of `current`).
    pub keep: Vec<C>,
    /// Current records holding no desired value, or one an earlier record
    /// already claimed (duplicates), in the order of `current`.
    pub delete: Vec<C>,
}

/// Matches `current` records against `desired` values with `holds(record, value)`:
/// each desired value is claimed by at most one record, so duplicates on the host
/// are deleted and every desired value is written exactly once.
pub(crate) fn diff_records<'d, V, C>(
    desired: &'d [V],
    current: impl IntoIterator<Item = C>,
    holds: impl Fn(&C, &V) -> bool,
) -> RecordDiff<'d, V, C> {
    let mut claimed = vec![false; desired.len()];
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for rec in current {
        let hit = desired
            .iter()
            .zip(claimed.iter_mut())
            .find(|(v, taken)| !**taken && holds(&rec, v));
        match hit {
            Some((_, taken)) => {
                *taken = true;
                keep.push(rec);
            }
            None => delete.push(rec),
        }
    }
    let create = desired
        .iter()
        .zip(&claimed)
        .filter(|(_, taken)| !**taken)
        .map(|(v, _)| v)
        .collect();
    RecordDiff {
        create,
        keep,
        delete,
    }
}

/// The host's own form of an RRset as read, kept in [`crate::Observed::version`]
/// by hosts whose deletion must repeat the stored values exactly (Route 53's
/// `DELETE`, Google's `deletions`): the TTL and each value byte for byte, as
/// the host answered it. Rebuilding the values from parsed records would turn
/// a set another tool wrote in a non-canonical form (`"a"  "b"`, `"\101"`)
/// into text the host does not hold, and the deletion would fail forever.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RawSet {
    /// The TTL as read.
    pub ttl: u32,
    /// The values as read, in the host's order.
    pub values: Vec<String>,
}

impl RawSet {
    /// The opaque token stored in [`crate::Observed::version`].
    pub(crate) fn encode(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }

    /// The raw set kept in `observed`, when it holds one that still describes
    /// its parsed set (same TTL, same number of values); `None` otherwise, and
    /// the caller falls back to formatting the parsed records.
    pub(crate) fn of(observed: &crate::Observed) -> Option<RawSet> {
        let raw: RawSet = serde_json::from_str(observed.version.as_deref()?).ok()?;
        let set = observed.set.as_ref()?;
        (raw.ttl == set.ttl && raw.values.len() == set.records.len()).then_some(raw)
    }
}

/// The `rel="next"` target of a `Link` header, if any.
pub(crate) fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            part.get(start..end).map(str::to_string)
        })
}

/// After a compare-and-swap host refused a change set as stale: `None` when
/// every name already holds the set wanted (the same change set was applied
/// before, so re-applying it is the no-op the contract promises), otherwise
/// the refusal (`conflict`) as the apply's error, nothing written.
pub(crate) async fn unless_in_place<P: crate::Provider + ?Sized>(
    provider: &P,
    zone: &crate::Zone,
    changes: &[crate::TxtChange],
    conflict: Error,
) -> Option<crate::ApplyError> {
    let names: Vec<Fqdn> = changes.iter().map(|c| c.name.clone()).collect();
    match provider.read_sets(zone, &names).await {
        Ok(now)
            if changes.iter().all(|c| {
                crate::changeset::same_content(
                    c.wanted(),
                    now.get(&c.name).and_then(|o| o.set.as_ref()),
                )
            }) =>
        {
            None
        }
        _ => Some(crate::ApplyError::nothing_written(conflict)),
    }
}

/// The start of a versioned value (`v=spf1`, `v=dkim1`, `v=dmarc1`), lowercased.
pub(crate) fn version_tag(value: &[u8]) -> Option<Vec<u8>> {
    if value.len() < 2 || !value[..2].eq_ignore_ascii_case(b"v=") {
        return None;
    }
    let end = value
        .iter()
        .position(|&c| c == b';' || c == b' ')
        .unwrap_or(value.len());
    Some(value[..end].to_ascii_lowercase())
}

/// What a record-level write does after [`diff_records`]: values rewritten into
/// a record that held an older value of the same version (same id; on OVH the
/// same field type), so the name is never without one between a delete and a
/// create; values created; records deleted.
pub(crate) struct RecordWrites<'d, C> {
    /// Records given a new value in place.
    pub rewrite: Vec<(C, &'d Vec<u8>)>,
    /// Values created as new records.
    pub create: Vec<&'d Vec<u8>>,
    /// Records deleted.
    pub delete: Vec<C>,
}

/// Pairs each value to create with a record to delete holding an older value of
/// the same version ([`version_tag`]) that `may_hold` allows.
pub(crate) fn pair_rewrites<'d, C>(
    create: Vec<&'d Vec<u8>>,
    mut delete: Vec<C>,
    value_of: impl Fn(&C) -> &[u8],
    may_hold: impl Fn(&C, &[u8]) -> bool,
) -> RecordWrites<'d, C> {
    let mut rewrite = Vec::new();
    let mut fresh = Vec::new();
    for d in create {
        let at = version_tag(d).and_then(|tag| {
            delete
                .iter()
                .position(|r| may_hold(r, d) && version_tag(value_of(r)).as_ref() == Some(&tag))
        });
        match at {
            Some(i) => rewrite.push((delete.remove(i), d)),
            None => fresh.push(d),
        }
    }
    RecordWrites {
        rewrite,
        create: fresh,
        delete,
    }
}

/// [`crate::walk_zones`] for hosts that answer `GET` of a candidate's path
/// with success for a domain of the account and an error their error mapping
/// makes [`crate::ErrorKind::ZoneNotFound`] otherwise; the zone's id is its name.
/// `req` builds the host's authenticated request for a method and path.
///
/// # Errors
/// As [`crate::walk_zones`].
pub(crate) async fn walk_zones_by_get(
    http: &crate::http::HttpClient,
    kind: &'static str,
    name: &Fqdn,
    not_found: &str,
    path: impl Fn(&Fqdn) -> String,
    req: impl Fn(&reqwest::Client, reqwest::Method, &str) -> reqwest::RequestBuilder,
) -> Result<crate::Zone, Error> {
    let req = &req;
    crate::walk_zones(
        kind,
        name,
        crate::zone_candidates(name),
        not_found,
        |cand| {
            let path = path(&cand);
            async move {
                let r = http
                    .send(
                        Operation::FindZone,
                        Some(name),
                        crate::http::Idempotency::Idempotent,
                        |c| req(c, reqwest::Method::GET, &path),
                    )
                    .await;
                crate::ZoneProbe::found_unless(r.map(|_| cand.to_string()), |e| {
                    e.kind == crate::ErrorKind::ZoneNotFound
                })
            }
        },
    )
    .await
}

/// How a host writes the apex among relative owner names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apex {
    /// `@` (as in zone files).
    At,
    /// The empty name.
    Empty,
}

/// `name` relative to `zone` as the host writes owner names (`_dmarc`,
/// `sel._domainkey`, the apex as `apex` says).
///
/// # Errors
/// [`crate::ErrorKind::Config`] for `kind` and `op` when `name` is outside the zone.
pub(crate) fn relative_name(
    kind: &'static str,
    zone: &crate::Zone,
    name: &Fqdn,
    op: Operation,
    apex: Apex,
) -> Result<String, Error> {
    match name.relative_to(&zone.name) {
        Some(r) if r == "@" && apex == Apex::Empty => Ok(String::new()),
        Some(r) => Ok(r),
        None => Err(Error::new(
            kind,
            op,
            Some(name),
            crate::ErrorKind::Config,
            format!("the name is outside zone {}", zone.name),
        )),
    }
}

/// Splits a secret made of two parts joined by `sep` (Porkbun `APIKEY:SECRETAPIKEY`,
/// Netcup `APIKEY:APIPASSWORD`, IONOS `prefix.secret`): at the first `sep`, both
/// parts non-empty.
///
/// # Errors
/// [`crate::ErrorKind::Config`] naming the expected `form`; the message never
/// quotes the secret.
pub(crate) fn split_secret(
    kind: &'static str,
    secret: &crate::Secret,
    sep: char,
    form: &str,
) -> Result<(crate::Secret, crate::Secret), Error> {
    match secret.expose().trim().split_once(sep) {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => {
            Ok((crate::Secret::new(a), crate::Secret::new(b)))
        }
        _ => Err(Error::new(
            kind,
            Operation::Authenticate,
            None,
            crate::ErrorKind::Config,
            format!("the secret must be {form}: two non-empty parts joined by '{sep}'"),
        )),
    }
}

/// The joined value of TXT content a host gives in quoted zone-file form
/// (`"part1" "part2"`, `\X` and `\DDD` escapes), accepting quoted strings longer
/// than 255 bytes (hosts that quote a long value as one string do so); `None`
/// when it is not only quoted strings separated by blanks.
pub(crate) fn joined_quoted(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut strings = 0usize;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                i += 1;
                strings += 1;
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
                                if !d.iter().all(u8::is_ascii_digit) {
                                    return None;
                                }
                                let v: u32 = std::str::from_utf8(d).ok()?.parse().ok()?;
                                out.push(u8::try_from(v).ok()?);
                                i += 4;
                            } else {
                                out.push(n);
                                i += 2;
                            }
                        }
                        _ => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                // Strings are separated by blanks.
                if b.get(i).is_some_and(|c| *c != b' ' && *c != b'\t') {
                    return None;
                }
            }
            _ => return None,
        }
    }
    (strings > 0).then_some(out)
}

#[cfg(test)]
mod joined_quoted_tests {
    use super::joined_quoted;

    #[test]
    fn joins_quoted_strings_and_refuses_anything_else() {
        assert_eq!(joined_quoted(r#""a\"b" "c\\d\065""#).unwrap(), b"a\"bc\\dA");
        let long = format!("\"{}\"", "x".repeat(300));
        assert_eq!(joined_quoted(&long).unwrap().len(), 300);
        assert_eq!(joined_quoted(r#""""#).unwrap(), b"");
        for bad in ["", "abc", r#""abc"#, r#""a"b"#, r#""a\"#, r#""\25x""#] {
            assert_eq!(joined_quoted(bad), None, "{bad}");
        }
    }
}

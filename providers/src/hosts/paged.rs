//! What the record-level hosts that list TXT records page by page share
//! (Linode, Vultr, DigitalOcean): the paging loops, the values a set asks
//! for, the RRset listed records make, and the plan of a write against the
//! records listed. Each host keeps its own requests, answer parsing, write
//! order and documented paging parameters; only the loops and the arithmetic
//! on records live here, so that a fix to one reaches all three.

use std::future::Future;

use super::{Apex, RecordWrites, check_all, diff_records, pair_rewrites, relative_name};
use crate::http::{ErrorMapper, HttpClient, Idempotency, RetryPolicy};
use crate::{Error, Fqdn, Observed, Operation, Profile, Secret, TxtRecord, TxtSet, Zone, ZoneSets};

/// What each of these adapters holds: its HTTP client, the bearer token every
/// request carries, the records per page it asks for, and the host's profile.
#[derive(Debug)]
pub(crate) struct Api {
    /// The client, with the host's error mapping and rate limits.
    pub http: HttpClient,
    token: Secret,
    /// Records per page asked for, within the host's documented range.
    pub page_size: u32,
    /// The host's limits, from its descriptor.
    pub profile: Profile,
}

impl Api {
    /// Checks the token (`what` names it in the error, e.g. "API key") and the
    /// base URL and reads the profile of `kind`; `page_size` is taken as given
    /// (the caller keeps it within the host's documented range).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Config`] when the token is empty or the base URL is
    /// not https (plain http only to loopback).
    pub(crate) fn new(
        kind: &'static str,
        what: &str,
        token: Secret,
        base_url: &str,
        page_size: u32,
        policy: RetryPolicy,
        map_error: ErrorMapper,
    ) -> Result<Self, Error> {
        super::require_nonempty(kind, token.is_empty(), what)?;
        Ok(Api {
            http: HttpClient::new(kind, base_url, policy, map_error)?,
            token,
            page_size,
            profile: crate::registry::profile(kind)?,
        })
    }

    /// A request to `path` below the base URL carrying the bearer token.
    pub(crate) fn req(
        &self,
        c: &reqwest::Client,
        m: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(c, m, path)
            .bearer_auth(self.token.expose())
    }

    /// Sends `body` as JSON with `method` to `path` for `name`.
    ///
    /// # Errors
    /// As [`HttpClient::send`].
    pub(crate) async fn json(
        &self,
        op: Operation,
        name: &Fqdn,
        idempotency: Idempotency,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<crate::http::Response, Error> {
        self.http
            .send(op, Some(name), idempotency, |c| {
                self.req(c, method.clone(), path).json(body)
            })
            .await
    }

    /// Creates a record: `POST` of `body` to `path`, never retried once sent
    /// ([`Idempotency::NotIdempotent`]: a retry could create it twice).
    ///
    /// # Errors
    /// As [`HttpClient::send`].
    pub(crate) async fn create(
        &self,
        op: Operation,
        name: &Fqdn,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<crate::http::Response, Error> {
        let post = reqwest::Method::POST;
        self.json(op, name, Idempotency::NotIdempotent, post, path, body)
            .await
    }

    /// Deletes the record at `path` (a 404 counts as done).
    ///
    /// # Errors
    /// As [`HttpClient::delete`].
    pub(crate) async fn delete(&self, op: Operation, name: &Fqdn, path: &str) -> Result<(), Error> {
        self.http
            .delete(op, name, |c| self.req(c, reqwest::Method::DELETE, path))
            .await
    }

    /// The zone holding `name` for hosts that answer `GET domains/<candidate>`
    /// for a domain of the account (its id is its name) and 404 otherwise
    /// ([`super::walk_zones_by_get`]).
    ///
    /// # Errors
    /// As [`crate::walk_zones`].
    pub(crate) async fn find_domain(&self, kind: &'static str, name: &Fqdn) -> Result<Zone, Error> {
        super::walk_zones_by_get(
            &self.http,
            kind,
            name,
            "no domain in this account holds the name",
            |cand| format!("domains/{cand}"),
            |c, m, p| self.req(c, m, p),
        )
        .await
    }
}

/// One TXT record as a record-level host lists it: the joined value the host
/// stores (no string boundaries) and its TTL.
pub(crate) trait Listed {
    /// The record's joined value.
    fn value(&self) -> &[u8];
    /// The record's TTL in seconds.
    fn ttl(&self) -> u32;
}

/// Reads a listing paged by number (`1`, `2`, …): `fetch(page)` returns one
/// page's items and whether the host announces another page. Stops when it
/// announces none, when a page comes back empty (a host announcing pages past
/// the end cannot make the loop endless), or after `max_pages` pages; the flag
/// says whether the listing was read to its end.
///
/// # Errors
/// The first error `fetch` returns.
pub(crate) async fn by_number<T, F, Fut>(
    max_pages: u32,
    mut fetch: F,
) -> Result<(Vec<T>, bool), Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, bool), Error>>,
{
    let mut out = Vec::new();
    let mut page = 1u32;
    loop {
        let (got, more) = fetch(page).await?;
        let n = got.len();
        out.extend(got);
        if !more || n == 0 {
            return Ok((out, true));
        }
        if page >= max_pages {
            return Ok((out, false));
        }
        page += 1;
    }
}

/// [`by_number`] read to the end: every page.
///
/// # Errors
/// The first error `fetch` returns.
pub(crate) async fn every_number<T, F, Fut>(fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, bool), Error>>,
{
    Ok(by_number(u32::MAX, fetch).await?.0)
}

/// Reads a listing paged by an opaque cursor: `fetch(cursor)` (`None` for the
/// first page) returns one page's items and the cursor of the next page. Stops
/// when there is no next cursor, or when the host hands back the cursor it was
/// given (it would serve the same page forever).
///
/// # Errors
/// The first error `fetch` returns.
pub(crate) async fn every_cursor<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), Error>>,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (got, next) = fetch(cursor.clone()).await?;
        out.extend(got);
        match next {
            Some(n) if cursor.as_ref() != Some(&n) => cursor = Some(n),
            _ => return Ok(out),
        }
    }
}

/// The joined values `set` asks for (`None`: none), each record shaped and
/// checked against the host's profile ([`check_all`]) before any request, in
/// the set's order without duplicates: these hosts store joined values, so two
/// records joining to the same bytes are one record there.
///
/// # Errors
/// As [`check_all`].
pub(crate) fn desired_values(
    kind: &'static str,
    profile: &Profile,
    name: &Fqdn,
    set: Option<&TxtSet>,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    if let Some(set) = set {
        for r in check_all(kind, profile, name, set)? {
            let v = r.value();
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// The RRset the listed records make (the first record's TTL, each value as one
/// record), `None` when there are none.
pub(crate) fn set_of<'r, R: Listed + 'r>(
    records: impl IntoIterator<Item = &'r R>,
) -> Option<TxtSet> {
    let mut it = records.into_iter().peekable();
    let ttl = it.peek()?.ttl();
    Some(TxtSet {
        ttl,
        records: it.map(|r| TxtRecord::from_value(r.value())).collect(),
    })
}

/// The listed records whose relative name (`name_of`) is `rel`, compared as
/// DNS compares owner names (ASCII case-insensitively).
pub(crate) fn named<'r, R: 'r>(
    records: impl IntoIterator<Item = &'r R>,
    rel: &str,
    name_of: impl Fn(&R) -> &str,
) -> impl Iterator<Item = &'r R> {
    records
        .into_iter()
        .filter(move |r| name_of(r).eq_ignore_ascii_case(rel))
}

/// A change set's read from one listing of the zone's TXT records: for each of
/// `names`, the set its records make (relative names, the apex empty).
///
/// # Errors
/// [`crate::ErrorKind::Config`] for a name outside the zone.
pub(crate) fn sets_by_name<R: Listed>(
    kind: &'static str,
    zone: &Zone,
    names: &[Fqdn],
    all: &[R],
    name_of: impl Fn(&R) -> &str + Copy,
) -> Result<ZoneSets, Error> {
    let mut out = ZoneSets::new();
    for name in names {
        let rel = relative_name(kind, zone, name, Operation::Read, Apex::Empty)?;
        let set = set_of(named(all, &rel, name_of));
        out.insert(name.clone(), Observed::of(set));
    }
    Ok(out)
}

/// The plan of a record-level write that rewrites versioned values in place:
/// the records that already hold a desired value, and what to rewrite, create
/// and delete ([`diff_records`], then [`pair_rewrites`] with any record free to
/// take any value).
pub(crate) struct Plan<'d, R> {
    /// Records that already hold a desired value (their TTL may still differ).
    pub keep: Vec<R>,
    /// Rewrites, creates and deletes.
    pub writes: RecordWrites<'d, R>,
}

/// [`Plan`] of making `current` hold exactly `desired`.
pub(crate) fn plan<'d, R: Listed>(desired: &'d [Vec<u8>], current: Vec<R>) -> Plan<'d, R> {
    let diff = diff_records(desired, current, |rec, d| rec.value() == d.as_slice());
    let writes = pair_rewrites(diff.create, diff.delete, |r: &R| r.value(), |_, _| true);
    Plan {
        keep: diff.keep,
        writes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Rec(&'static str, u32, &'static str);

    impl Listed for Rec {
        fn value(&self) -> &[u8] {
            self.0.as_bytes()
        }
        fn ttl(&self) -> u32 {
            self.1
        }
    }

    #[tokio::test]
    async fn page_numbers_stop_at_the_last_page_an_empty_page_or_the_budget() {
        // Three pages announced, read to the end.
        let mut asked = Vec::new();
        let (all, complete) = by_number(10, |p| {
            asked.push(p);
            async move { Ok((vec![p], p < 3)) }
        })
        .await
        .unwrap();
        assert_eq!((all, complete, asked), (vec![1, 2, 3], true, vec![1, 2, 3]));
        // More announced forever, but page 2 is empty: the end.
        let (all, complete) = by_number(10, |p| async move {
            Ok((if p == 1 { vec![1] } else { vec![] }, true))
        })
        .await
        .unwrap();
        assert_eq!((all, complete), (vec![1], true));
        // The budget cuts the listing short and says so.
        let (all, complete) = by_number(2, |p| async move { Ok((vec![p], true)) })
            .await
            .unwrap();
        assert_eq!((all, complete), (vec![1, 2], false));
    }

    #[tokio::test]
    async fn cursors_stop_without_a_next_cursor_or_on_the_same_cursor() {
        let mut asked = Vec::new();
        let all = every_cursor(|c| {
            asked.push(c.clone());
            async move {
                Ok(match c.as_deref() {
                    None => (vec![1], Some("a".to_string())),
                    Some("a") => (vec![2], Some("b".to_string())),
                    _ => (vec![3], None),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(asked, [None, Some("a".into()), Some("b".into())]);
        // A host handing back the cursor it was given is not asked again.
        let mut n = 0;
        let all = every_cursor(|_| {
            n += 1;
            async { Ok((vec![0], Some("same".to_string()))) }
        })
        .await
        .unwrap();
        assert_eq!((all.len(), n), (2, 2));
    }

    #[test]
    fn a_listing_makes_the_set_by_name_and_the_plan_rewrites_versions() {
        let recs = [
            Rec("v=spf1 -all", 300, ""),
            Rec("v=DMARC1; p=none", 600, "_DMARC"),
            Rec("other", 600, "_dmarc"),
        ];
        fn at(r: &Rec) -> &str {
            r.2
        }
        let set = set_of(named(&recs, "_dmarc", at)).unwrap();
        assert_eq!(set.ttl, 600);
        assert_eq!(
            set.records,
            [
                TxtRecord::from_value(b"v=DMARC1; p=none"),
                TxtRecord::from_value(b"other")
            ]
        );
        assert_eq!(set_of(named(&recs, "x", at)), None);
        let desired = vec![b"v=DMARC1; p=reject".to_vec(), b"other".to_vec()];
        let p = plan(&desired, recs[1..].to_vec());
        assert_eq!(p.keep, [recs[2].clone()]);
        assert_eq!(p.writes.rewrite, [(recs[1].clone(), &desired[0])]);
        assert!(p.writes.create.is_empty() && p.writes.delete.is_empty());
    }
}

//! Amazon Route 53 (REST-XML API 2013-04-01), requests signed with AWS SigV4.
//!
//! Route 53 works on whole record sets: a write is a `ChangeBatch` that UPSERTs the
//! full set, and a DELETE must repeat the existing set exactly (TTL and every value),
//! so deletes read first. Listings (`hostedzonesbyname`, `rrset`) *start at* the
//! name asked for, so every answer is filtered for an exact match. TXT values are
//! quoted strings of at most 255 characters, `"` and `\` escaped, other bytes
//! outside printable ASCII as `\ooo` octal; one value holds at most 4,000 characters.
//! Throttling comes back as HTTP 400 `<Code>Throttling</Code>` and is retried.
//!
//! Change sets: `read_sets` is one `ListResourceRecordSets` walk across the
//! names (one request for a domain's few names), keeping each value exactly as
//! answered; `apply` is ONE `ChangeResourceRecordSets` batch, atomic, whose
//! `DELETE`s echo those values byte for byte, so a set changed since the read
//! fails the batch (`InvalidChangeBatch`, mapped to [`ErrorKind::Conflict`]).
//! A change set over one request's limits (1,000 `ResourceRecord` elements,
//! 32,000 value characters) is cut into consecutive batches, each
//! name's `DELETE` and `CREATE` in the same one; that apply is not atomic
//! ([`plan_batches`], [`Provider::apply_traits_for`]).
//!
//! Laid out like a lego provider folder: this file holds the registry entry,
//! the [`Config`] and the adapter's operations; `xml` the documents Route 53
//! sends and receives (pure, fuzzable); `credentials` the typed AWS
//! credentials and the SigV4 signing. Where the credentials come from (the
//! environment, `~/.aws/credentials`) is the caller's business: the providers
//! crate reads no files and no environment.

mod credentials;
mod xml;

use std::time::{Duration, Instant};

use reqwest::Method;

use super::RawSet;
use crate::http::{self, HttpClient, Idempotency, RetryPolicy};
use crate::registry::{Credential, CredentialKind, Host, Settings};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    Secret, TxtChange, TxtSet, Zone, ZoneSets, zone_candidates,
};

pub use credentials::AwsCredentials;
use credentials::SigV4;
use xml::{ChangeInfo, ChangeResponse, ListHostedZonesByNameResponse, parse_xml};
pub use xml::{
    RrsetPage, change_batch_xml, decode_name, format_value, map_error, parse_rrsets, parse_value,
};

const KIND: &str = "route53";

/// The registry entry: an AWS access key; `base_url` overrides the API's and
/// `wait_insync` waits for each change to reach INSYNC.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../../hosts/route53.toml"),
    credential: CredentialKind::Aws,
    required: &[],
    optional: &["base_url", "wait_insync"],
    check: crate::registry::no_check,
    connect,
};

fn connect(
    settings: &Settings,
    credential: Credential,
    policy: RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let Credential::Aws(aws) = credential else {
        return Err(Error::new(
            KIND,
            Operation::Authenticate,
            None,
            ErrorKind::Config,
            "this host needs an AWS access key",
        ));
    };
    let mut cfg = Config::new(aws);
    if let Some(url) = &settings.base_url {
        cfg.base_url = url.clone();
    }
    cfg.wait_insync = settings.wait_insync.unwrap_or(false);
    Ok(std::sync::Arc::new(Route53::new(cfg, policy)?))
}

/// The real API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://route53.amazonaws.com/2013-04-01";

/// Most characters in one `<Value>` (the `RData` limit).
pub const MAX_VALUE_CHARS: usize = 4000;

/// How to reach one AWS account's Route 53.
#[derive(Debug, Clone)]
pub struct Config {
    /// Access key id (not secret, but never logged with the key).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// API base URL, ending in the API version (`…/2013-04-01`).
    pub base_url: String,
    /// Wait after each write until `GetChange` reports `INSYNC`.
    pub wait_insync: bool,
    /// Delay between `GetChange` polls.
    pub poll_interval: Duration,
    /// Give up waiting for `INSYNC` after this long.
    pub wait_timeout: Duration,
    /// `maxitems` sent with listings.
    pub page_size: u32,
}

impl Config {
    /// A configuration for the real API with these credentials.
    pub fn new(credentials: AwsCredentials) -> Self {
        Config {
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
            base_url: DEFAULT_BASE_URL.to_string(),
            wait_insync: false,
            poll_interval: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(300),
            page_size: 100,
        }
    }
}

/// The Route 53 adapter.
#[derive(Debug)]
pub struct Route53 {
    http: HttpClient,
    signer: SigV4,
    cfg: Config,
    profile: Profile,
    write_lock: tokio::sync::Mutex<()>,
}

impl Route53 {
    /// Validates `cfg` and builds the adapter; no request is sent.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an empty access key id or secret access key
    /// or a `page_size` of 0; the HTTP client's error for a bad `base_url`.
    pub fn new(cfg: Config, policy: RetryPolicy) -> Result<Self, Error> {
        let config_err =
            |m: &str| Error::new(KIND, Operation::Authenticate, None, ErrorKind::Config, m);
        if cfg.access_key_id.trim().is_empty() {
            return Err(config_err("the access key id is empty"));
        }
        if cfg.secret_access_key.is_empty() {
            return Err(config_err("the secret access key is empty"));
        }
        if cfg.page_size == 0 {
            return Err(config_err("page_size must be at least 1"));
        }
        let http = HttpClient::new(KIND, &cfg.base_url, policy, map_error)?;
        let signer = SigV4::new(&cfg);
        Ok(Route53 {
            http,
            signer,
            cfg,
            profile: crate::registry::profile(KIND)?,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Sends a signed request (signed afresh for every attempt).
    async fn call(
        &self,
        op: Operation,
        name: Option<&Fqdn>,
        method: Method,
        url: url::Url,
        body: Option<String>,
    ) -> Result<http::Response, Error> {
        let idempotent = if method == Method::GET {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        };
        self.http
            .send(op, name, idempotent, |client| {
                let mut req = client.request(method.clone(), url.clone());
                let body_bytes = body.as_deref().unwrap_or("").as_bytes();
                let mut headers: Vec<(&str, &str)> = Vec::new();
                if body.is_some() {
                    headers.push(("content-type", "application/xml"));
                }
                match self
                    .signer
                    .sign(method.as_str(), url.as_str(), &headers, body_bytes)
                {
                    Ok(signed) => {
                        for (k, v) in signed {
                            req = req.header(k, v);
                        }
                    }
                    // Unsigned requests are refused by the host with its own auth error.
                    Err(e) => tracing::warn!(provider = KIND, "SigV4 signing failed: {e}"),
                }
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                if let Some(b) = &body {
                    req = req.body(b.clone());
                }
                req
            })
            .await
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> url::Url {
        let mut u = self.http.url(path);
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// Every TXT set at exactly `name` (record sets without a routing policy only).
    async fn read(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Option<TxtSet>, Error> {
        Ok(self.read_one(zone, name, op).await?.set)
    }

    /// The TXT set at exactly `name`, with its values as Route 53 answered them
    /// (in [`Observed::version`]), from a listing that starts at the name.
    async fn read_one(&self, zone: &Zone, name: &Fqdn, op: Operation) -> Result<Observed, Error> {
        let want = name.to_dotted();
        let page = self.cfg.page_size.to_string();
        let mut start_name = want.clone();
        let mut start_type = "TXT".to_string();
        let mut start_id: Option<String> = None;
        loop {
            let mut q = vec![
                ("name", start_name.as_str()),
                ("type", start_type.as_str()),
                ("maxitems", page.as_str()),
            ];
            if let Some(id) = &start_id {
                q.push(("identifier", id.as_str()));
            }
            let url = self.url(&format!("hostedzone/{}/rrset", zone.id), &q);
            let resp = self.call(op, Some(name), Method::GET, url, None).await?;
            let (sets, _, list) = xml::parse_page(&resp.body, name, op)?;
            if let Some(s) = sets
                .into_iter()
                .find(|s| s.name.eq_ignore_ascii_case(&want))
            {
                return Ok(observed(s));
            }
            let next_same = list
                .next_record_name
                .as_deref()
                .is_some_and(|n| decode_name(n).eq_ignore_ascii_case(&want))
                && list.next_record_type.as_deref() == Some("TXT");
            if !list.is_truncated || !next_same {
                return Ok(Observed::of(None));
            }
            start_name = list.next_record_name.unwrap_or_default();
            start_type = list.next_record_type.unwrap_or_default();
            start_id = list.next_record_identifier;
        }
    }

    /// The TXT sets at several names: one listing walked from the first name (in
    /// Route 53's order, labels reversed) to the last, at most one page per name;
    /// names the walk has not reached when that budget is spent are read one by
    /// one, so a zone crowded between the names never costs more than two
    /// requests per name.
    async fn walk(&self, zone: &Zone, names: &[Fqdn], op: Operation) -> Result<ZoneSets, Error> {
        let mut order: Vec<(Vec<String>, &Fqdn)> = names
            .iter()
            .map(|n| (xml::order_key(&n.to_dotted()), n))
            .collect();
        order.sort();
        order.dedup_by(|a, b| a.0 == b.0);
        let mut out = ZoneSets::new();
        let (Some((_, first)), Some((max_key, _))) = (order.first(), order.last()) else {
            return Ok(out);
        };
        let page = self.cfg.page_size.to_string();
        let mut start_name = first.to_dotted();
        let mut start_type = "TXT".to_string();
        let mut start_id: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            let mut q = vec![
                ("name", start_name.as_str()),
                ("type", start_type.as_str()),
                ("maxitems", page.as_str()),
            ];
            if let Some(id) = &start_id {
                q.push(("identifier", id.as_str()));
            }
            let url = self.url(&format!("hostedzone/{}/rrset", zone.id), &q);
            let resp = self
                .call(op, Some(&zone.name), Method::GET, url, None)
                .await?;
            let (sets, last, list) = xml::parse_page(&resp.body, &zone.name, op)?;
            for s in sets {
                let k = xml::order_key(&s.name);
                if let Some((_, n)) = order.iter().find(|(key, _)| *key == k) {
                    out.insert((*n).clone(), observed(s));
                }
            }
            let past_last = last.is_some_and(|l| xml::order_key(&l) > *max_key);
            let Some(next_name) = list
                .next_record_name
                .filter(|_| list.is_truncated && !past_last)
            else {
                break;
            };
            if pages >= order.len() {
                let next_key = xml::order_key(&decode_name(&next_name));
                for (k, n) in &order {
                    if *k >= next_key && !out.contains_key(*n) {
                        let o = self.read_one(zone, n, op).await?;
                        out.insert((*n).clone(), o);
                    }
                }
                break;
            }
            start_name = next_name;
            start_type = list.next_record_type.unwrap_or_default();
            start_id = list.next_record_identifier;
        }
        for (_, n) in order {
            out.entry(n.clone()).or_insert_with(|| Observed::of(None));
        }
        Ok(out)
    }

    async fn change(
        &self,
        zone: &Zone,
        name: &Fqdn,
        action: &str,
        set: &TxtSet,
        op: Operation,
    ) -> Result<(), Error> {
        let body = change_batch_xml(action, name, set);
        self.post_batch(zone, name, body, op).await
    }

    /// Sends one change batch and, when configured, waits until it is INSYNC.
    async fn post_batch(
        &self,
        zone: &Zone,
        name: &Fqdn,
        body: String,
        op: Operation,
    ) -> Result<(), Error> {
        let url = self.url(&format!("hostedzone/{}/rrset/", zone.id), &[]);
        let resp = self
            .call(op, Some(name), Method::POST, url, Some(body))
            .await?;
        let info: ChangeResponse = parse_xml(&resp.body, op, name)?;
        if self.cfg.wait_insync {
            self.wait_insync(&info.change_info, name).await?;
        }
        Ok(())
    }

    async fn wait_insync(&self, info: &ChangeInfo, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::WaitForChange;
        let id = info.id.trim_start_matches("/change/").to_string();
        let start = Instant::now();
        let mut status = info.status.clone();
        while status != "INSYNC" {
            if start.elapsed() >= self.cfg.wait_timeout {
                return Err(Error::new(
                    KIND,
                    op,
                    Some(name),
                    ErrorKind::Server,
                    format!(
                        "change {id} still {status} after {}s",
                        self.cfg.wait_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
            let url = self.url(&format!("change/{id}"), &[]);
            let resp = self.call(op, Some(name), Method::GET, url, None).await?;
            let r: ChangeResponse = parse_xml(&resp.body, op, name)?;
            status = r.change_info.status;
        }
        Ok(())
    }

    async fn delete_locked(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let op = Operation::Delete;
        let mut retried = false;
        loop {
            let current = self.read_one(zone, name, op).await?;
            let Some(set) = current.set.as_ref().filter(|s| !s.records.is_empty()) else {
                return Ok(());
            };
            // The values exactly as read: Route 53 deletes only on an exact match.
            let raw = RawSet::of(&current).unwrap_or_else(|| RawSet {
                ttl: set.ttl,
                values: set.records.iter().map(format_value).collect(),
            });
            let body = xml::changes_xml(&[xml::BatchChange {
                action: "DELETE",
                name,
                ttl: raw.ttl,
                values: &raw.values,
            }]);
            match self.post_batch(zone, name, body, op).await {
                // Someone changed the set between our read and our delete: read again, once.
                Err(e) if e.kind == ErrorKind::Conflict && !retried => retried = true,
                other => return other,
            }
        }
    }
}

#[async_trait::async_trait]
impl Provider for Route53 {
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
        let op = Operation::FindZone;
        let page = self.cfg.page_size.to_string();
        for candidate in zone_candidates(name) {
            let want = candidate.to_dotted();
            let mut start_name = candidate.as_str().to_string();
            let mut start_id: Option<String> = None;
            let mut private: Option<String> = None;
            loop {
                let mut q = vec![
                    ("dnsname", start_name.as_str()),
                    ("maxitems", page.as_str()),
                ];
                if let Some(id) = &start_id {
                    q.push(("hostedzoneid", id.as_str()));
                }
                let url = self.url("hostedzonesbyname", &q);
                let resp = self.call(op, Some(name), Method::GET, url, None).await?;
                let list: ListHostedZonesByNameResponse = parse_xml(&resp.body, op, name)?;
                let mut past = false;
                for z in list.hosted_zones.items {
                    if !decode_name(&z.name).eq_ignore_ascii_case(&want) {
                        past = true;
                        break;
                    }
                    let id = z.id.trim_start_matches("/hostedzone/").to_string();
                    if z.config.is_some_and(|c| c.private_zone) {
                        private.get_or_insert(id);
                    } else {
                        return Ok(Zone {
                            name: candidate.clone(),
                            id,
                        });
                    }
                }
                let next_same = list
                    .next_dns_name
                    .as_deref()
                    .is_some_and(|n| decode_name(n).trim_end_matches('.') == candidate.as_str());
                if past || !list.is_truncated || !next_same {
                    break;
                }
                start_name = list.next_dns_name.unwrap_or_default();
                start_id = list.next_hosted_zone_id;
            }
            if let Some(id) = private {
                tracing::debug!(provider = KIND, zone = %candidate, "only a private hosted zone matches");
                return Ok(Zone {
                    name: candidate,
                    id,
                });
            }
        }
        Err(Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::ZoneNotFound,
            format!("no hosted zone holds {name}"),
        ))
    }

    async fn read_txt(&self, zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.read(zone, name, Operation::Read).await
    }

    async fn replace_txt(&self, zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        let op = Operation::Replace;
        self.profile.check_set(KIND, op, name, &set.records)?;
        if !set.records.is_empty() {
            self.profile.check_ttl(KIND, op, name, set.ttl)?;
        }
        let _guard = self.write_lock.lock().await;
        if set.records.is_empty() {
            return self.delete_locked(zone, name).await;
        }
        self.change(zone, name, "UPSERT", set, op).await
    }

    async fn delete_txt(&self, zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let _guard = self.write_lock.lock().await;
        self.delete_locked(zone, name).await
    }

    /// One change batch: atomic, and conditional on every RRset read (each
    /// `DELETE` repeats the values exactly as read; a `CREATE` fails when the set
    /// appeared since). A change set over one batch's limits is not atomic
    /// ([`Provider::apply_traits_for`]).
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            ..ApplyTraits::default()
        }
    }

    /// One name: a listing starting at it. Several: one listing walked across
    /// them (see `walk`). Each [`Observed::version`] holds the values exactly as
    /// Route 53 answered them.
    async fn read_sets(&self, zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        let op = Operation::Read;
        match names {
            [] => Ok(ZoneSets::new()),
            [one] => {
                let mut out = ZoneSets::new();
                out.insert(one.clone(), self.read_one(zone, one, op).await?);
                Ok(out)
            }
            _ => self.walk(zone, names, op).await,
        }
    }

    /// The change set in as few `ChangeResourceRecordSets` requests as Route
    /// 53's per-request limits allow: for each name, a `DELETE` of the RRset as
    /// read (its values echoed byte for byte from [`Observed::version`])
    /// followed by a `CREATE` of the wanted one, always in the same batch.
    /// Route 53 applies a batch all or nothing, and refuses it (mapped to
    /// [`ErrorKind::Conflict`]) when a `DELETE` no longer matches or a `CREATE`
    /// finds a set: the caller reads again.
    ///
    /// Within one batch's limits ([`BatchCost::LIMIT`]) the whole change set is
    /// one batch, atomic. Over them it is cut, in the order given, into
    /// consecutive batches that each fit ([`plan_batches`]): each name still
    /// changes in one step (never left without a set between its `DELETE` and
    /// its `CREATE`), but the apply is not atomic
    /// ([`Provider::apply_traits_for`]): a failed batch reports the names of
    /// the batches before it as written, and nothing of its own or later ones.
    /// One name whose changes alone are over the limits refuses the change set
    /// before anything is sent.
    async fn apply(&self, zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        let op = Operation::Replace;
        let mut shaped = Vec::with_capacity(changes.len());
        for c in changes {
            shaped.push(match c.wanted() {
                Some(set) => Some((
                    set.ttl,
                    super::check_all(KIND, &self.profile, &c.name, set)
                        .map_err(ApplyError::nothing_written)?
                        .iter()
                        .map(format_value)
                        .collect::<Vec<_>>(),
                )),
                None => None,
            });
        }
        let olds: Vec<Option<RawSet>> = changes.iter().map(old_raw).collect();
        // Each name's changes: the DELETE of what was read, then the CREATE.
        let groups: Vec<Vec<xml::BatchChange<'_>>> = changes
            .iter()
            .zip(&olds)
            .zip(&shaped)
            .map(|((c, old), new)| {
                let mut g = Vec::with_capacity(2);
                if let Some(old) = old {
                    g.push(xml::BatchChange {
                        action: "DELETE",
                        name: &c.name,
                        ttl: old.ttl,
                        values: &old.values,
                    });
                }
                if let Some((ttl, values)) = new {
                    g.push(xml::BatchChange {
                        action: "CREATE",
                        name: &c.name,
                        ttl: *ttl,
                        values,
                    });
                }
                g
            })
            .collect();
        let costs: Vec<BatchCost> = groups.iter().map(|g| BatchCost::of(g)).collect();
        let batches = plan_batches(&costs).map_err(|i| {
            let cost = costs[i];
            ApplyError::nothing_written(Error::new(
                KIND,
                op,
                Some(&changes[i].name),
                ErrorKind::Invalid,
                format!(
                    "refused before sending: the changes of this name alone need {} values and {} value characters in one batch; Route 53 takes at most {} and {}",
                    cost.values,
                    cost.chars,
                    BatchCost::LIMIT.values,
                    BatchCost::LIMIT.chars
                ),
            ))
        })?;
        let mut written = Vec::new();
        for range in batches {
            let batch: Vec<xml::BatchChange<'_>> =
                groups[range.clone()].iter().flatten().cloned().collect();
            let part = &changes[range];
            let names = part.iter().map(|c| c.name.clone());
            let Some(first) = part.first() else {
                continue;
            };
            if batch.is_empty() {
                written.extend(names);
                continue;
            }
            let body = xml::changes_xml(&batch);
            match self.post_batch(zone, &first.name, body, op).await {
                Ok(()) => written.extend(names),
                Err(e) if e.kind == ErrorKind::Conflict => {
                    match super::unless_in_place(self, zone, part, e).await {
                        None => written.extend(names),
                        Some(refused) => {
                            return Err(ApplyError {
                                written,
                                error: refused.error,
                            });
                        }
                    }
                }
                Err(error) => return Err(ApplyError { written, error }),
            }
        }
        Ok(())
    }

    /// Atomic and compare-and-swap when the change set fits in one batch
    /// ([`plan_batches`]); compare-and-swap only (each batch atomic on its
    /// own) when it has to be cut.
    fn apply_traits_for(&self, changes: &[TxtChange]) -> ApplyTraits {
        let costs: Vec<BatchCost> = changes
            .iter()
            .map(|c| {
                let old = old_raw(c);
                let new = c.wanted().map(|s| {
                    s.records
                        .iter()
                        .map(|r| format_value(&self.profile.shape(r)))
                        .collect::<Vec<_>>()
                });
                let mut g = Vec::with_capacity(2);
                if let Some(old) = &old {
                    g.push(xml::BatchChange {
                        action: "DELETE",
                        name: &c.name,
                        ttl: old.ttl,
                        values: &old.values,
                    });
                }
                if let (Some(set), Some(values)) = (c.wanted(), &new) {
                    g.push(xml::BatchChange {
                        action: "CREATE",
                        name: &c.name,
                        ttl: set.ttl,
                        values,
                    });
                }
                BatchCost::of(&g)
            })
            .collect();
        ApplyTraits {
            atomic: matches!(plan_batches(&costs), Ok(b) if b.len() <= 1),
            ..self.apply_traits()
        }
    }
}

/// The RRset a change read, in Route 53's own form: the values exactly as
/// answered when the read kept them, else rebuilt from the parsed records.
fn old_raw(c: &TxtChange) -> Option<RawSet> {
    let set = c.old.set.as_ref().filter(|s| !s.records.is_empty())?;
    Some(RawSet::of(&c.old).unwrap_or_else(|| RawSet {
        ttl: set.ttl,
        values: set.records.iter().map(format_value).collect(),
    }))
}

/// What some changes count against the limits of one `ChangeResourceRecordSets`
/// request (Route 53 Developer Guide, "Quotas", maximums on API requests:
/// <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html>):
/// `ResourceRecord` elements, and characters across every `Value` (spaces
/// included). An `UPSERT` counts its values and characters twice; maildns
/// sends `DELETE` and `CREATE`, which count once. The number of `Change`
/// elements has no quota of its own today (the "at most 100 `Change`
/// elements" of the 2013 API text is gone from AWS's pages): each `Change`
/// carries at least one `ResourceRecord`, so the 1,000 elements bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchCost {
    /// `ResourceRecord` elements.
    pub values: usize,
    /// Characters across every `Value`.
    pub chars: usize,
}

impl BatchCost {
    /// Route 53's limits for one request: 1,000 `ResourceRecord` elements,
    /// 32,000 value characters.
    pub const LIMIT: BatchCost = BatchCost {
        values: MAX_BATCH_VALUES,
        chars: MAX_BATCH_CHARS,
    };

    /// What `changes` count.
    fn of(changes: &[xml::BatchChange<'_>]) -> BatchCost {
        changes.iter().fold(BatchCost::default(), |acc, c| {
            let twice = if c.action == "UPSERT" { 2 } else { 1 };
            acc.plus(BatchCost {
                values: c.values.len() * twice,
                chars: c.values.iter().map(|v| v.chars().count()).sum::<usize>() * twice,
            })
        })
    }

    fn plus(self, o: BatchCost) -> BatchCost {
        BatchCost {
            values: self.values + o.values,
            chars: self.chars + o.chars,
        }
    }

    /// Whether one request may carry this much.
    pub fn fits(&self) -> bool {
        self.values <= Self::LIMIT.values && self.chars <= Self::LIMIT.chars
    }
}

/// Cuts a change set, given what each name's changes cost, into consecutive
/// batches that each fit one request, in the order given (so what a failure
/// leaves written is a prefix of the change set); one batch when everything
/// fits. Each name's changes stay whole.
///
/// # Errors
/// The index of the first name whose changes alone do not fit.
pub fn plan_batches(costs: &[BatchCost]) -> Result<Vec<std::ops::Range<usize>>, usize> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut acc = BatchCost::default();
    for (i, &cost) in costs.iter().enumerate() {
        if !cost.fits() {
            return Err(i);
        }
        let with = acc.plus(cost);
        if with.fits() {
            acc = with;
        } else {
            out.push(start..i);
            start = i;
            acc = cost;
        }
    }
    if start < costs.len() {
        out.push(start..costs.len());
    }
    Ok(out)
}

/// What one read of a TXT set gives a change set: the set and its values as answered.
fn observed(s: xml::ListedSet) -> Observed {
    let version = RawSet {
        ttl: s.set.ttl,
        values: s.raw,
    }
    .encode();
    Observed {
        set: Some(s.set),
        version,
    }
}

/// Most `<ResourceRecord>` elements in one batch (an `UPSERT`'s twice).
pub const MAX_BATCH_VALUES: usize = 1000;
/// Most characters across every `<Value>` of one batch.
pub const MAX_BATCH_CHARS: usize = 32_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(values: usize, chars: usize) -> BatchCost {
        BatchCost { values, chars }
    }

    #[test]
    fn a_change_set_within_the_limits_is_one_batch() {
        assert_eq!(plan_batches(&[]), Ok(vec![]));
        let costs = [cost(500, 16_000), cost(500, 16_000)];
        assert_eq!(plan_batches(&costs), Ok(std::iter::once(0..2).collect()));
        // 500 names of a DELETE and a CREATE of one value each: 1,000
        // changes, no cap on `Change` elements of their own.
        let many = vec![cost(2, 10); 500];
        assert_eq!(
            plan_batches(&many),
            Ok(std::iter::once(0..500).collect()),
            "1,000 changes fit"
        );
    }

    #[test]
    fn over_the_limits_it_is_cut_in_order_without_splitting_a_name() {
        // 1,001 values: the third name starts the second batch.
        let costs = [cost(400, 10), cost(400, 10), cost(201, 10)];
        assert_eq!(plan_batches(&costs), Ok(vec![0..2, 2..3]));
        // 32,001 characters.
        let costs = [cost(2, 16_000), cost(2, 16_000), cost(1, 1)];
        assert_eq!(plan_batches(&costs), Ok(vec![0..2, 2..3]));
        // 501 names of a DELETE and a CREATE of one value each: 1,002 values.
        let costs = vec![cost(2, 10); 501];
        assert_eq!(plan_batches(&costs), Ok(vec![0..500, 500..501]));
        // Order kept even when a later name would fill an earlier batch.
        let costs = [cost(600, 10), cost(600, 10), cost(100, 10)];
        assert_eq!(plan_batches(&costs), Ok(vec![0..1, 1..3]));
    }

    #[test]
    fn one_name_over_the_limits_alone_is_refused() {
        let costs = [cost(1, 1), cost(1_001, 10), cost(1, 1)];
        assert_eq!(plan_batches(&costs), Err(1));
    }

    #[test]
    fn an_upsert_counts_twice() {
        let name = Fqdn::parse("example.com").unwrap();
        let values = vec!["\"abc\"".to_string(); 3];
        let c = |action| xml::BatchChange {
            action,
            name: &name,
            ttl: 300,
            values: &values,
        };
        assert_eq!(
            BatchCost::of(&[c("UPSERT")]),
            BatchCost {
                values: 6,
                chars: 30
            }
        );
        assert_eq!(
            BatchCost::of(&[c("DELETE"), c("CREATE")]),
            BatchCost {
                values: 6,
                chars: 30
            }
        );
    }
}

//! Provider-limit diagnostics: what a DNS host really stores and serves.
//!
//! A host's documentation (and maildns's declared [`Profile`] of it) may not match
//! what it does with a long DKIM key. [`run`] writes probe TXT records under
//! `_maildns-probe.<zone>` (one name per probe, see [`probes`]), reads each back
//! through the API and from every authoritative server, classifies what came
//! back ([`classify`]), compares that with the declared profile, and recommends
//! the largest RSA key size that survives. The probes are always removed: after
//! success, after an error, and when the `shutdown` future fires (Ctrl-C); a run
//! first removes leftovers of an earlier run that could not clean up.
//!
//! The result is saved with [`save`]; `publish` and the rotation runner cap new
//! keys at its `recommended_max_bits`.

pub mod classify;
pub mod probes;

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use maildns_providers::txt::answer_size;
use maildns_providers::{ErrorKind, Fqdn, NameError, Provider, Transport, TxtRecord, TxtSet, Zone};
use serde::Serialize;

use crate::propagation::{Nameserver, Querier};
use crate::rotation::store::{Diagnosis, Store, StoreError};

pub use classify::{Recommendation, Verdict, classify};
pub use probes::{PROBE_LABEL, Probe, ProbeKind, probe_names, probes};

/// How a run behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// TTL of the probes in seconds (raised to the host's minimum).
    pub ttl: u32,
    /// How long to keep asking a server until it serves what the API holds.
    pub serve_wait: Duration,
    /// Pause between two questions to the same server.
    pub poll_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ttl: 60,
            serve_wait: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// The authoritative servers to ask, and how.
#[derive(Debug, Clone)]
pub struct Servers {
    /// Sends the queries.
    pub querier: Querier,
    /// The servers (empty: served answers are not checked).
    pub list: Vec<Nameserver>,
    /// Why the list is empty, when it is (e.g. discovery failed).
    pub note: Option<String>,
}

/// A record's shape: its joined length and each string's length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Bytes of the joined value.
    pub bytes: usize,
    /// Length of each character-string, in order.
    pub strings: Vec<usize>,
}

impl Shape {
    /// The shape of `r`.
    pub fn of(r: &TxtRecord) -> Shape {
        Shape {
            bytes: r.value_len(),
            strings: r.strings().iter().map(|s| s.len()).collect(),
        }
    }

    /// `410 B in 3 strings`.
    pub fn label(&self) -> String {
        format!(
            "{} B in {} string{}",
            self.bytes,
            self.strings.len(),
            if self.strings.len() == 1 { "" } else { "s" }
        )
    }
}

/// What one server served for a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    /// The server.
    pub server: Nameserver,
    /// Its answer compared with the record sent.
    pub verdict: Verdict,
    /// The records it served.
    pub found: Vec<Shape>,
    /// Whether the answer came over TCP (the UDP answer was truncated).
    pub tcp: bool,
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// Probe id.
    pub id: &'static str,
    /// The probe's name.
    pub name: String,
    /// What it tests.
    pub about: &'static str,
    /// Its kind.
    pub kind: ProbeKind,
    /// What was sent.
    pub sent: Shape,
    /// The API's readback compared with what was sent (or why nothing was written).
    pub api: Verdict,
    /// The records the API returned.
    pub api_found: Vec<Shape>,
    /// Each server's answer.
    pub served: Vec<Served>,
    /// The probe's verdict: the API's unless a server did worse.
    pub verdict: Verdict,
    /// Size in bytes of the DNS answer for the record as sent at this name (EDNS0 OPT included).
    pub answer_bytes: usize,
    /// What that size needs: `udp` (<= 512 bytes), `edns0` (<= 1232) or `tcp`.
    pub transport: &'static str,
}

/// A complete diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Host kind.
    pub provider: &'static str,
    /// The zone probed.
    pub zone: String,
    /// Servers asked.
    pub servers: Vec<Nameserver>,
    /// Why no server was asked, when none was.
    pub servers_note: Option<String>,
    /// Probe names of an earlier run found and removed first.
    pub leftovers_removed: Vec<String>,
    /// One entry per probe.
    pub probes: Vec<ProbeResult>,
    /// Where the declared profile and the host disagree.
    pub profile_differences: Vec<String>,
    /// The key-size advice.
    pub recommendation: Recommendation,
    /// What the largest intact DKIM record's answer needs (`udp`, `edns0`, `tcp`).
    pub dkim_transport: Option<&'static str>,
    /// Rate-limit headers the host sent.
    pub rate_limits_seen: Vec<(String, String)>,
    /// Probe names that could not be removed (with the error).
    pub cleanup_failures: Vec<String>,
}

/// Why a run failed. Cleanup was attempted before any of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiagnoseError {
    /// The zone gives no valid probe name.
    #[error("zone {zone}: no valid probe name: {source}")]
    Name {
        /// The zone.
        zone: String,
        /// Why.
        source: NameError,
    },
    /// The host failed (not a rejection of a probe's content).
    #[error("{source}{}", leftover_note(.leftovers))]
    Provider {
        /// The host's error.
        source: maildns_providers::Error,
        /// Probe names that could not be removed afterwards.
        leftovers: Vec<String>,
    },
    /// The run was interrupted; the probes were removed.
    #[error("interrupted: probes removed{}", leftover_note(.leftovers))]
    Interrupted {
        /// Probe names that could not be removed.
        leftovers: Vec<String>,
    },
}

fn leftover_note(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!(
            " (could not remove: {}; the next `maildns diagnose` removes them)",
            leftovers.join("; ")
        )
    }
}

fn transport_label(t: Transport) -> &'static str {
    match t {
        Transport::Udp512 => "udp",
        Transport::Edns1232 => "edns0",
        Transport::Tcp => "tcp",
    }
}

/// Diagnoses `zone` on `provider`. Returns when every probe was written, read
/// back and looked up on every server, or earlier with an error or when
/// `shutdown` completes; the probes are removed in every case.
///
/// # Errors
/// [`DiagnoseError::Provider`] when the host fails, [`DiagnoseError::Name`] when
/// the zone gives no valid probe name, [`DiagnoseError::Interrupted`] when
/// `shutdown` completes first; each names the probes that could not be removed.
pub async fn run(
    provider: &dyn Provider,
    zone: &Fqdn,
    servers: &Servers,
    options: &Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, DiagnoseError> {
    let provider_err = |source| DiagnoseError::Provider {
        source,
        leftovers: Vec::new(),
    };
    let found = provider.find_zone(zone).await.map_err(provider_err)?;
    let list = probes(&found.name).map_err(|source| DiagnoseError::Name {
        zone: found.name.to_string(),
        source,
    })?;
    let leftovers_removed = remove_leftovers(provider, &found, &list)
        .await
        .map_err(provider_err)?;

    let outcome = {
        let work = probe_all(provider, &found, &list, servers, options);
        tokio::pin!(work);
        tokio::pin!(shutdown);
        tokio::select! {
            r = &mut work => Some(r),
            () = &mut shutdown => None,
        }
    };
    let cleanup_failures = cleanup(provider, &found, &list).await;
    let results = match outcome {
        None => {
            return Err(DiagnoseError::Interrupted {
                leftovers: cleanup_failures,
            });
        }
        Some(Err(source)) => {
            return Err(DiagnoseError::Provider {
                source,
                leftovers: cleanup_failures,
            });
        }
        Some(Ok(r)) => r,
    };

    let pairs: Vec<(&Probe, &Verdict)> = list
        .iter()
        .zip(results.iter())
        .map(|(p, r)| (p, &r.verdict))
        .collect();
    let recommendation = classify::recommend(&pairs);
    let triples: Vec<(&Probe, &Verdict, &Verdict)> = list
        .iter()
        .zip(results.iter())
        .map(|(p, r)| (p, &r.api, &r.verdict))
        .collect();
    let profile_differences = classify::profile_differences(provider.profile(), &triples);
    let dkim_transport = recommendation.largest_intact_bits.and_then(|bits| {
        results
            .iter()
            .find(|r| r.kind == ProbeKind::Dkim { bits })
            .map(|r| r.transport)
    });
    Ok(Report {
        provider: provider.kind(),
        zone: found.name.to_string(),
        servers: servers.list.clone(),
        servers_note: servers.note.clone(),
        leftovers_removed,
        probes: results,
        profile_differences,
        recommendation,
        dkim_transport,
        rate_limits_seen: provider.rate_limits_seen(),
        cleanup_failures,
    })
}

/// Removes the probes an earlier run left behind; returns their names.
async fn remove_leftovers(
    provider: &dyn Provider,
    zone: &Zone,
    list: &[Probe],
) -> Result<Vec<String>, maildns_providers::Error> {
    let mut removed = Vec::new();
    for p in list {
        if provider.read_txt(zone, &p.name).await?.is_some() {
            provider.delete_txt(zone, &p.name).await?;
            removed.push(p.name.to_string());
        }
    }
    Ok(removed)
}

/// Deletes every probe name; returns the ones that failed, with the error.
async fn cleanup(provider: &dyn Provider, zone: &Zone, list: &[Probe]) -> Vec<String> {
    let mut failed = Vec::new();
    for p in list {
        if let Err(e) = provider.delete_txt(zone, &p.name).await {
            tracing::warn!("removing probe {}: {e}", p.name);
            failed.push(format!("{}: {e}", p.name));
        }
    }
    failed
}

async fn probe_all(
    provider: &dyn Provider,
    zone: &Zone,
    list: &[Probe],
    servers: &Servers,
    options: &Options,
) -> Result<Vec<ProbeResult>, maildns_providers::Error> {
    let ttl = options.ttl.max(provider.profile().min_ttl);
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        out.push(probe_one(provider, zone, p, ttl, servers, options).await?);
    }
    Ok(out)
}

async fn probe_one(
    provider: &dyn Provider,
    zone: &Zone,
    p: &Probe,
    ttl: u32,
    servers: &Servers,
    options: &Options,
) -> Result<ProbeResult, maildns_providers::Error> {
    let size = answer_size(p.name.wire_len(), std::slice::from_ref(&p.record), true);
    let mut result = ProbeResult {
        id: p.id,
        name: p.name.to_string(),
        about: p.about,
        kind: p.kind,
        sent: Shape::of(&p.record),
        api: Verdict::Missing,
        api_found: Vec::new(),
        served: Vec::new(),
        verdict: Verdict::Missing,
        answer_bytes: size,
        transport: transport_label(Transport::for_message_size(size)),
    };
    let set = TxtSet {
        ttl,
        records: vec![p.record.clone()],
    };
    let not_written = match provider.replace_txt(zone, &p.name, &set).await {
        Ok(()) => None,
        Err(e) => match &e.kind {
            ErrorKind::Limit(limit) => Some(Verdict::RefusedByProfile {
                reason: limit.to_string(),
            }),
            ErrorKind::Invalid => Some(Verdict::Rejected {
                message: match e.status {
                    Some(s) => format!("HTTP {s}: {}", e.message),
                    None => e.message.clone(),
                },
            }),
            _ => return Err(e),
        },
    };
    if let Some(v) = not_written {
        result.api = v.clone();
        result.verdict = v;
        return Ok(result);
    }
    let api_records = provider
        .read_txt(zone, &p.name)
        .await?
        .map(|s| s.records)
        .unwrap_or_default();
    result.api = classify(&p.record, &api_records);
    result.api_found = api_records.iter().map(Shape::of).collect();
    for ns in &servers.list {
        result
            .served
            .push(served(servers, ns, p, &api_records, options).await);
    }
    let served_verdicts: Vec<Verdict> = result.served.iter().map(|s| s.verdict.clone()).collect();
    result.verdict = classify::overall(&result.api, &served_verdicts);
    Ok(result)
}

/// Asks `ns` until it serves what the API holds (as a set) or time runs out,
/// then classifies the last answer.
async fn served(
    servers: &Servers,
    ns: &Nameserver,
    p: &Probe,
    api_records: &[TxtRecord],
    options: &Options,
) -> Served {
    let start = Instant::now();
    let mut want: Vec<TxtRecord> = api_records.to_vec();
    want.sort();
    loop {
        let answer = servers.querier.txt(ns.addr, &p.name, false).await;
        let done = start.elapsed() >= options.serve_wait;
        match answer {
            Ok(a) => {
                let mut got = a.records.clone();
                got.sort();
                if got == want || done {
                    return Served {
                        server: ns.clone(),
                        verdict: classify(&p.record, &a.records),
                        found: a.records.iter().map(Shape::of).collect(),
                        tcp: a.tcp,
                    };
                }
            }
            Err(e) if done => {
                return Served {
                    server: ns.clone(),
                    verdict: Verdict::NotChecked {
                        reason: e.to_string(),
                    },
                    found: Vec::new(),
                    tcp: false,
                };
            }
            Err(_) => {}
        }
        tokio::time::sleep(options.poll_interval).await;
    }
}

/// The diagnosis as the state store keeps it.
pub fn to_diagnosis(account: &str, report: &Report, at: DateTime<Utc>) -> Diagnosis {
    Diagnosis {
        account: account.to_string(),
        zone: report.zone.clone(),
        at,
        result: serde_json::to_value(report).unwrap_or(serde_json::Value::Null),
        recommended_max_bits: report.recommendation.recommended_max_bits,
    }
}

/// Saves `report` as the latest diagnosis of `account`; returns its id.
///
/// # Errors
/// The store's error when the diagnosis cannot be written.
pub fn save(
    store: &dyn Store,
    account: &str,
    report: &Report,
    at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    store.save_diagnosis(&to_diagnosis(account, report, at))
}

/// What a write's read-back showed, saved as a diagnosis so the next key is
/// sized for the host without a manual `maildns diagnose` (`source` is
/// `"readback"` in the saved JSON; a full run has `probes` instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadbackReport {
    /// Always `readback`.
    pub source: &'static str,
    /// Host kind.
    pub provider: &'static str,
    /// The zone written to.
    pub zone: String,
    /// The value that did not survive, and how.
    pub found: crate::publish::NotStored,
    /// The key-size advice drawn from it.
    pub recommendation: Recommendation,
}

/// The largest RSA size whose DKIM record fits in values of at most `bytes`
/// bytes (the same record model as the profile check,
/// [`crate::rotation::keyring::max_rsa_bits_for`]): `None` when 4096 bits
/// fits, never below 1024 (RFC 8301).
pub fn rsa_bits_within(bytes: usize) -> Option<u32> {
    crate::rotation::keyring::max_rsa_bits_for(&maildns_providers::Profile {
        max_value_bytes: Some(bytes),
        ..maildns_providers::Profile::default()
    })
}

/// The advice from a read-back that failed, given the account's latest saved
/// advice `previous` (a read-back never raises an earlier cap):
/// - cut to `kept` bytes: the largest RSA size whose record fits in `kept`;
/// - a long value spread over several records: what fits in the largest one;
/// - a DKIM record altered from byte `at`: what fits in `at` bytes;
/// - otherwise (missing, altered non-DKIM value): `previous`.
pub fn readback_recommendation(
    found: &crate::publish::NotStored,
    previous: Option<u32>,
) -> Recommendation {
    let intact_bytes = match &found.verdict {
        Verdict::Truncated { kept, .. } => Some(*kept),
        Verdict::SeveralRecords { .. } => found.found.iter().map(|s| s.bytes).max(),
        Verdict::Altered { at } if found.kind == crate::records::RecordKind::Dkim => Some(*at),
        _ => None,
    };
    let from_here = intact_bytes.map(rsa_bits_within);
    let recommended = match (from_here, previous) {
        (Some(Some(a)), Some(b)) => Some(a.min(b)),
        (Some(a), None) => a,
        (Some(None), b) | (None, b) => b,
    };
    let fits_1024 = |n: usize| {
        crate::rotation::keyring::rsa_record_fits(
            &maildns_providers::Profile {
                max_value_bytes: Some(n),
                ..maildns_providers::Profile::default()
            },
            1024,
        )
    };
    let text = match (intact_bytes, recommended) {
        (Some(n), Some(_)) if !fits_1024(n) => format!(
            "no DKIM key fits: {found}; the host holds values of {n} bytes intact, less than a 1024-bit record needs; keys stay at 1024 bits, the smallest allowed (RFC 8301): use another DNS host"
        ),
        (Some(n), Some(bits)) => format!(
            "{bits}-bit: {found}; the host holds values of {n} bytes intact (found on publish)"
        ),
        (_, Some(bits)) => format!("{bits}-bit (unchanged): {found}"),
        (_, None) => format!("no key-size limit learned: {found}"),
    };
    Recommendation {
        largest_intact_bits: recommended,
        recommended_max_bits: recommended,
        text,
    }
}

/// Saves what a failed read-back showed as the latest diagnosis of `account`
/// (what `maildns diagnose` saves and [`crate::rotation::keyring::max_bits_for`]
/// reads); returns the advice saved.
///
/// # Errors
/// The store's.
pub fn save_readback(
    store: &dyn Store,
    account: &str,
    provider: &'static str,
    zone: &str,
    found: &crate::publish::NotStored,
    at: DateTime<Utc>,
) -> Result<Recommendation, StoreError> {
    let previous = store
        .latest_diagnosis(account)?
        .and_then(|d| d.recommended_max_bits);
    let recommendation = readback_recommendation(found, previous);
    let report = ReadbackReport {
        source: "readback",
        provider,
        zone: zone.to_string(),
        found: found.clone(),
        recommendation: recommendation.clone(),
    };
    store.save_diagnosis(&Diagnosis {
        account: account.to_string(),
        zone: zone.to_string(),
        at,
        result: serde_json::to_value(&report).unwrap_or(serde_json::Value::Null),
        recommended_max_bits: recommendation.recommended_max_bits,
    })?;
    Ok(recommendation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::NotStored;
    use crate::publish::readback::Source;
    use crate::records::RecordKind;

    fn found(kind: RecordKind, verdict: Verdict, found: &[usize]) -> NotStored {
        NotStored {
            name: Fqdn::parse("s._domainkey.example.com").unwrap(),
            kind,
            verdict,
            sent: Shape {
                bytes: 420,
                strings: vec![26, 255, 139],
            },
            found: found
                .iter()
                .map(|b| Shape {
                    bytes: *b,
                    strings: vec![*b],
                })
                .collect(),
            observed: Source::Api,
        }
    }

    #[test]
    fn sizes_follow_the_bytes_the_host_keeps() {
        assert_eq!(rsa_bits_within(300), Some(1024));
        assert_eq!(rsa_bits_within(420), Some(2048));
        assert_eq!(rsa_bits_within(419), Some(1024));
        assert_eq!(rsa_bits_within(512), Some(2048));
        assert_eq!(rsa_bits_within(800), None);
        assert_eq!(rsa_bits_within(10), Some(1024), "never below 1024");
    }

    #[test]
    fn a_readback_recommends_what_fits_and_never_raises_a_cap() {
        let cut = |kept| {
            found(
                RecordKind::Dkim,
                Verdict::Truncated { kept, sent: 420 },
                &[kept],
            )
        };
        let r = readback_recommendation(&cut(300), None);
        assert_eq!(r.recommended_max_bits, Some(1024));
        assert!(
            r.text
                .starts_with("1024-bit: the host truncated the DKIM record"),
            "{}",
            r.text
        );
        assert_eq!(
            readback_recommendation(&cut(512), None).recommended_max_bits,
            Some(2048)
        );
        assert_eq!(
            readback_recommendation(&cut(512), Some(1024)).recommended_max_bits,
            Some(1024)
        );
        let split = found(
            RecordKind::Dkim,
            Verdict::SeveralRecords { records: 2 },
            &[255, 165],
        );
        assert_eq!(
            readback_recommendation(&split, None).recommended_max_bits,
            Some(1024)
        );
        let spf_altered = found(RecordKind::Spf, Verdict::Altered { at: 3 }, &[420]);
        assert_eq!(
            readback_recommendation(&spf_altered, Some(2048)).recommended_max_bits,
            Some(2048)
        );
        let tiny = readback_recommendation(&cut(200), None);
        assert_eq!(tiny.recommended_max_bits, Some(1024));
        assert!(tiny.text.starts_with("no DKIM key fits"), "{}", tiny.text);
        let missing = found(RecordKind::Dkim, Verdict::Missing, &[]);
        assert_eq!(
            readback_recommendation(&missing, None).recommended_max_bits,
            None
        );
    }
}

//! DKIM as served: every selector whose key should be published, checked
//! against its private key on disk ([`check_dkim`]), and the selectors the
//! signer really uses ([`check_signer`]).

use std::net::SocketAddr;

use maildns_providers::TxtRecord;

use super::{Finding, SelectorKey, Status, lint_findings, served};
use crate::config::Domain;
use crate::keys;
use crate::propagation::{Nameserver, Querier};
use crate::records::Diagnostic;
use crate::records::dkim::{self, DkimKey, KeyType};

/// The selectors the signer of `signer_cfg` uses for `domain`: the one its
/// tables name for `postmaster@domain`, and (with `confirm = "probe"`) those a
/// probe signature through its milter socket (every listed socket with
/// `kind = "opendkim-sql"`, every controller with `kind = "rspamd"`) shows; each must be served with a
/// key, not revoked, by every server in `servers`. A probe that cannot be sent is
/// a warning.
pub async fn check_signer(
    querier: &Querier,
    signer_cfg: &crate::config::Signer,
    domain: &Domain,
    servers: &[Nameserver],
) -> Vec<Finding> {
    use crate::signer::{OpenDkimFiles, unix::SignerUser};
    let mut f = Vec::new();
    // (selector, how it was learnt)
    let mut used: Vec<(String, &'static str)> = Vec::new();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let probing = signer_cfg.confirm == crate::config::SignerConfirm::Probe;
    let timeout = std::time::Duration::from_secs(10);
    // The entry the tables name, and one probe per signer endpoint.
    let (entry, reports): (Result<Option<String>, String>, Vec<_>) = if signer_cfg.sql.is_some()
        || signer_cfg.rspamd.is_some()
    {
        match crate::rotation::runner::signer_from_config(signer_cfg, std::path::Path::new("")) {
            Ok(signer) => {
                let entry = signer
                    .entry(domain.name.as_str())
                    .await
                    .map(|e| e.map(|e| e.selector))
                    .map_err(|e| e.to_string());
                let reports = if probing {
                    signer
                        .probe(domain.name.as_str(), &addrs, timeout, chrono::Utc::now())
                        .await
                        .into_iter()
                        .map(|e| e.result)
                        .collect()
                } else {
                    Vec::new()
                };
                (entry, reports)
            }
            Err(e) => (Err(e.to_string()), Vec::new()),
        }
    } else {
        let user = SignerUser::lookup(&signer_cfg.user).unwrap_or(SignerUser {
            name: signer_cfg.user.clone(),
            uid: 0,
            gid: 0,
        });
        let mut signer = OpenDkimFiles::new(
            &signer_cfg.key_dir,
            &signer_cfg.key_table,
            &signer_cfg.signing_table,
            user,
        );
        signer.conf = signer_cfg.config.clone();
        let from = format!("postmaster@{}", domain.name);
        let entry = signer
            .read_tables()
            .map(|(kt, st)| {
                st.lookup(&from)
                    .and_then(|n| kt.get(n))
                    .map(|e| e.selector.clone())
            })
            .map_err(|e| e.to_string());
        let mut reports = Vec::new();
        if probing {
            match signer.conf_socket() {
                Ok(Some(socket)) => reports.push(
                    crate::signer::probe::probe(&socket, domain.name.as_str(), &addrs, timeout)
                        .await,
                ),
                Ok(None) => {}
                Err(e) => f.push(Finding::new("signer", Status::Warning, e.to_string())),
            }
        }
        (entry, reports)
    };
    match entry {
        Ok(Some(selector)) => used.push((selector, "the signer tables")),
        Ok(None) => {}
        Err(e) => f.push(Finding::new(
            "signer",
            Status::Warning,
            format!("cannot read the signer tables: {e}"),
        )),
    }
    for report in reports {
        match report {
            Ok(r) => {
                for sig in r
                    .signatures
                    .iter()
                    .filter(|s| s.domain.eq_ignore_ascii_case(domain.name.as_str()))
                {
                    if !used
                        .iter()
                        .any(|(s, _)| s.eq_ignore_ascii_case(&sig.selector))
                    {
                        used.push((sig.selector.to_ascii_lowercase(), "a probe signature"));
                    } else if let Some(u) = used
                        .iter_mut()
                        .find(|(s, _)| s.eq_ignore_ascii_case(&sig.selector))
                    {
                        u.1 = "the signer tables and a probe signature";
                    }
                }
                if r.signatures.is_empty() {
                    f.push(Finding::new("signer", Status::Warning, r.describe()));
                }
            }
            Err(e) => f.push(Finding::new(
                "signer",
                Status::Warning,
                format!("probe not sent: {e}"),
            )),
        }
    }
    for (selector, how) in used {
        let check = format!("signer {selector}");
        let name = match dkim::record_name(&selector, &domain.name) {
            Ok(n) => n,
            Err(e) => {
                f.push(Finding::new(&check, Status::Error, e.to_string()));
                continue;
            }
        };
        let mut bad = Vec::new();
        for (server, r) in served(querier, servers, &name).await {
            match r {
                Err(e) => bad.push(format!("{server}: {e}")),
                Ok(records) => {
                    let key = records
                        .iter()
                        .find(|r| dkim::is_dkim(&r.value()))
                        .map(|r| DkimKey::parse_lenient(&r.value_lossy()));
                    match key {
                        None => bad.push(format!("{server} serves no key at {name}")),
                        Some(Err(e)) => bad.push(format!("{server}: unusable record: {e}")),
                        Some(Ok((k, _))) if k.is_revoked() => {
                            bad.push(format!("{server} serves it revoked (empty p=)"));
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
        if bad.is_empty() {
            f.push(Finding::new(&check, Status::Ok, format!("the signer uses {selector} (per {how}); every authoritative server serves its key")));
        } else {
            f.push(Finding::new(
                &check,
                Status::Error,
                format!(
                    "the signer signs with selector {selector} (per {how}) but {}: mail it signs fails DKIM",
                    bad.join("; ")
                ),
            ));
        }
    }
    f
}

/// The DKIM findings of `domain`: each of `selectors` served by every server,
/// parsing, carrying the public half of its private key, at a sound size.
pub(super) async fn check_dkim(
    querier: &Querier,
    domain: &Domain,
    selectors: &[SelectorKey],
    servers: &[Nameserver],
    f: &mut Vec<Finding>,
) {
    if selectors.is_empty() {
        if domain.dkim.is_some() {
            f.push(Finding::new(
                "DKIM",
                Status::Warning,
                "no published key in the state store or the key directory: run `maildns publish`",
            ));
        }
        return;
    }
    for sel in selectors {
        let check = format!("DKIM {}", sel.selector);
        let name = match dkim::record_name(sel.selector.as_str(), &domain.name) {
            Ok(n) => n,
            Err(e) => {
                f.push(Finding::new(&check, Status::Error, e.to_string()));
                continue;
            }
        };
        let mut parsed: Option<(DkimKey, Vec<Diagnostic>)> = None;
        let mut record_ok = true;
        for (server, r) in served(querier, servers, &name).await {
            let records = match r {
                Ok(r) => r,
                Err(e) => {
                    record_ok = false;
                    f.push(Finding::new(
                        format!("{check} record"),
                        Status::Error,
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let dkims: Vec<&TxtRecord> = records
                .iter()
                .filter(|r| dkim::is_dkim(&r.value()))
                .collect();
            let Some(first) = dkims.first() else {
                record_ok = false;
                f.push(Finding::new(
                    format!("{check} record"),
                    Status::Error,
                    format!("{server} serves no v=DKIM1 record at {name}"),
                ));
                continue;
            };
            match DkimKey::parse_lenient(&first.value_lossy()) {
                Ok(p) => {
                    if let Some((seen, _)) = &parsed
                        && seen.public_key != p.0.public_key
                    {
                        record_ok = false;
                        f.push(Finding::new(
                            format!("{check} record"),
                            Status::Error,
                            format!(
                                "{server} serves a different key at {name} than the first server"
                            ),
                        ));
                    }
                    parsed.get_or_insert(p);
                }
                Err(e) => {
                    record_ok = false;
                    f.push(Finding::new(
                        format!("{check} record"),
                        Status::Error,
                        format!("{server}: the record at {name} does not parse: {e}"),
                    ));
                }
            }
        }
        let Some((key, warnings)) = parsed else {
            continue;
        };
        if record_ok {
            f.push(Finding::new(
                format!("{check} record"),
                Status::Ok,
                format!("{name} served by all {} server(s), parses", servers.len()),
            ));
        }
        lint_findings(&format!("{check} record"), &warnings, &[], f);
        // The key on disk.
        let key_check = format!("{check} key");
        let (from, loaded) = match &sel.stored {
            Some((store, der)) => (store.clone(), Ok(der.clone())),
            None => (
                sel.key_path.display().to_string(),
                keys::load_private_key(&sel.key_path).and_then(|k| k.public_key_der()),
            ),
        };
        match loaded {
            Err(e) => f.push(Finding::new(
                &key_check,
                Status::Error,
                format!("cannot read the private key: {e}"),
            )),
            Ok(_) if key.is_revoked() => f.push(Finding::new(
                &key_check,
                Status::Error,
                "the served record is revoked (empty p=) but the key is still meant to be published",
            )),
            Ok(der) if der == key.public_key => f.push(Finding::new(
                &key_check,
                Status::Ok,
                format!("the served public key matches {from}"),
            )),
            Ok(_) => f.push(Finding::new(
                &key_check,
                Status::Error,
                format!(
                    "the served public key is NOT the public half of {from}: mail signed with it fails verification"
                ),
            )),
        }
        // Size.
        let size = match (key.key_type(), key.key_bits()) {
            (KeyType::Rsa, Some(bits)) if bits < 1024 => Finding::new(
                format!("{check} size"),
                Status::Error,
                format!("{bits}-bit RSA: receivers must reject keys under 1024 bits (RFC 8301)"),
            ),
            (KeyType::Rsa, Some(bits)) if bits < 2048 => Finding::new(
                format!("{check} size"),
                Status::Warning,
                format!("{bits}-bit RSA: accepted, but 2048 bits is advised (RFC 8301)"),
            ),
            (KeyType::Rsa, Some(bits)) => Finding::new(
                format!("{check} size"),
                Status::Ok,
                format!("{bits}-bit RSA"),
            ),
            (KeyType::Ed25519, Some(_)) => {
                Finding::new(format!("{check} size"), Status::Ok, "Ed25519")
            }
            _ => Finding::new(
                format!("{check} size"),
                Status::Error,
                "the public key cannot be read",
            ),
        };
        f.push(size);
        lint_findings(
            &format!("{check} record"),
            &key.lint(),
            &[
                "dkim-rsa-too-short",
                "dkim-rsa-short",
                "dkim-bad-key",
                "dkim-revoked",
            ],
            f,
        );
    }
}

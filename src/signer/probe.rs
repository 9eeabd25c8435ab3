//! Probe signatures: proof of what a running OpenDKIM signs with.
//!
//! Why this module exists: OpenDKIM's failures are silent (a refused reload
//! keeps the old configuration and leaves one log line), and the only proof of
//! which key it uses is a message it signed. A probe sends one message through
//! the filter's own milter socket, as an internal, authenticated client
//! (connect from 127.0.0.1, `{auth_type}`/`{auth_authen}` and `{daemon_name}`
//! macros), From the signing domain, and reads the DKIM-Signature headers it
//! adds. The probe connection is itself the connection at which OpenDKIM applies
//! a pending reload (SIGUSR1 only sets a flag).
//!
//! Each signature is verified with the `mail-auth` crate (RFC 6376 §6) against
//! the key record served by EVERY authoritative server of the domain, each
//! queried directly (no recursion, no cache): a signature counts only when every
//! authoritative server serves a record it verifies with.

use std::net::SocketAddr;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

use super::milter::{self, Envelope, MilterError, MilterSocket};
use crate::rotation::Selector;

/// One DKIM-Signature the filter added to the probe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSignature {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `a=`.
    pub algorithm: String,
    /// `Ok` when it verifies against the record of every authoritative server;
    /// otherwise which server answered what.
    pub verified: Result<(), SignatureCheckError>,
}

/// Why a probe signature does not count as verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureCheckError {
    /// No verifier could be set up to ask `server`.
    #[error("{server}: {why}")]
    Verifier {
        /// The authoritative server.
        server: SocketAddr,
        /// What the verifier library said.
        why: String,
    },
    /// `server` served a record the signature does not verify with.
    #[error("{server}: {result}")]
    NotPassed {
        /// The authoritative server.
        server: SocketAddr,
        /// The DKIM result in words (`fail (...)`, `temperror (...)`, ...).
        result: String,
    },
    /// The verifier saw no signature with this selector.
    #[error("the verifier did not find this signature")]
    NotFound,
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The signing engine probed (`OpenDKIM`, `rspamd`).
    pub engine: &'static str,
    /// The socket probed (a milter socket, or rspamd's controller URL).
    pub socket: String,
    /// The filter's verdict at the end of the message (`continue`, `accept`,
    /// `tempfail`, ...).
    pub verdict: String,
    /// The signatures it added, in order.
    pub signatures: Vec<ProbeSignature>,
}

impl ProbeReport {
    /// Whether a signature with `selector` (of `domain`) was added and verified.
    pub fn verified_with(&self, domain: &str, selector: &Selector) -> bool {
        self.signatures.iter().any(|s| {
            s.domain.eq_ignore_ascii_case(domain)
                && s.selector.eq_ignore_ascii_case(selector.as_str())
                && s.verified.is_ok()
        })
    }

    /// Whether any signature with `selector` (of `domain`) was added.
    pub fn signs_with(&self, domain: &str, selector: &Selector) -> bool {
        self.signatures.iter().any(|s| {
            s.domain.eq_ignore_ascii_case(domain)
                && s.selector.eq_ignore_ascii_case(selector.as_str())
        })
    }

    /// In words: `signed with s=202402 (d=example.com, rsa-sha256, verified)`, or
    /// why not.
    pub fn describe(&self) -> String {
        if self.signatures.is_empty() {
            return format!(
                "{} at {} added no DKIM-Signature to the probe (its verdict: {})",
                self.engine, self.socket, self.verdict
            );
        }
        let parts: Vec<String> = self
            .signatures
            .iter()
            .map(|s| {
                format!(
                    "s={} (d={}, {}, {})",
                    s.selector,
                    s.domain,
                    s.algorithm,
                    match &s.verified {
                        Ok(()) => "verified against the authoritative servers".to_string(),
                        Err(e) => format!("NOT verified: {e}"),
                    }
                )
            })
            .collect();
        format!(
            "{} at {} signs the probe with {}",
            self.engine,
            self.socket,
            parts.join(", ")
        )
    }
}

/// Why no probe report could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Nothing answers at the socket (OpenDKIM is down or restarting).
    #[error("{0}")]
    Unreachable(MilterError),
    /// The exchange broke (time-out, protocol error).
    #[error("{0}")]
    Exchange(MilterError),
    /// No authoritative server to verify against.
    #[error("no authoritative server to verify the probe signature against")]
    NoServers,
    /// The probe task could not run.
    #[error("probe task: {0}")]
    Task(String),
    /// rspamd's controller could not be reached or refused the probe (the
    /// message says which URL and what it answered; never the password).
    #[error("{0}")]
    Controller(String),
}

/// The probe message for `domain`: headers (name, value) and CRLF body.
pub fn probe_message(
    domain: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<(String, String)>, Vec<u8>) {
    let id = format!("{:016x}", rand::random::<u64>());
    let headers = vec![
        (
            "From".to_string(),
            format!("maildns signer probe <postmaster@{domain}>"),
        ),
        ("To".to_string(), format!("postmaster@{domain}")),
        (
            "Subject".to_string(),
            "maildns signer probe (never delivered)".to_string(),
        ),
        ("Date".to_string(), now.to_rfc2822()),
        (
            "Message-ID".to_string(),
            format!("<maildns-probe.{id}@{domain}>"),
        ),
    ];
    let body =
        b"This message proves which DKIM key the signer uses; it is never sent.\r\n".to_vec();
    (headers, body)
}

fn envelope(domain: &str) -> Envelope {
    let from = format!("postmaster@{domain}");
    Envelope {
        mail_from: from.clone(),
        rcpt_to: from,
        connect_macros: vec![
            ("j".into(), "localhost".into()),
            ("{daemon_name}".into(), "maildns-probe".into()),
            ("{client_addr}".into(), "127.0.0.1".into()),
        ],
        mail_macros: vec![
            ("i".into(), "maildnsprobe".into()),
            ("{auth_type}".into(), "PLAIN".into()),
            ("{auth_authen}".into(), "maildns-probe".into()),
            ("{mail_addr}".into(), format!("postmaster@{domain}")),
        ],
        ..Envelope::default()
    }
}

/// The value of `tag` in a DKIM-Signature value (folding whitespace removed).
pub fn signature_tag(value: &str, tag: &str) -> Option<String> {
    let unfolded: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    unfolded.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k == tag).then(|| v.to_string())
    })
}

/// The message as a receiver would get it: the added headers on top, then ours.
fn signed_message(
    added: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let crlf = |v: &str| v.replace("\r\n", "\n").replace('\n', "\r\n");
    let mut out = Vec::new();
    for (n, v) in added.iter().rev() {
        // An MTA writes "Name:" + (" " unless the value starts with whitespace).
        let sep = if v.starts_with([' ', '\t']) { "" } else { " " };
        out.extend_from_slice(format!("{n}:{sep}{}\r\n", crlf(v)).as_bytes());
    }
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A verifier that asks exactly `server` (no recursion, no cache).
fn authenticator(
    server: SocketAddr,
    timeout: Duration,
) -> Result<MessageAuthenticator, mail_auth::hickory_resolver::net::NetError> {
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_name_servers(vec![ns]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.recursion_desired = false;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = timeout;
    opts.attempts = 2;
    MessageAuthenticator::new(config, opts)
}

/// Verifies each signature in `raw` against every server; per signature (in
/// header order) `Ok` or why not.
async fn verify(
    raw: &[u8],
    servers: &[SocketAddr],
    timeout: Duration,
) -> Vec<(String, Result<(), SignatureCheckError>)> {
    let Some(msg) = AuthenticatedMessage::parse(raw) else {
        return vec![];
    };
    let mut per_sig: Vec<(String, Result<(), SignatureCheckError>)> = Vec::new();
    for server in servers {
        let auth = match authenticator(*server, timeout) {
            Ok(a) => a,
            Err(e) => {
                for entry in &mut per_sig {
                    entry.1 = Err(SignatureCheckError::Verifier {
                        server: *server,
                        why: e.to_string(),
                    });
                }
                continue;
            }
        };
        let outputs = auth.verify_dkim(&msg).await;
        for (i, out) in outputs.iter().enumerate() {
            let selector = out.signature().map(|s| s.s.clone()).unwrap_or_default();
            let result = match out.result() {
                DkimResult::Pass => Ok(()),
                other => Err(SignatureCheckError::NotPassed {
                    server: *server,
                    result: describe_result(other),
                }),
            };
            match per_sig.get_mut(i) {
                Some(entry) => {
                    if entry.1.is_ok() {
                        entry.1 = result;
                    }
                }
                None => per_sig.push((selector, result)),
            }
        }
    }
    per_sig
}

fn describe_result(r: &DkimResult) -> String {
    match r {
        DkimResult::Pass => "pass".into(),
        DkimResult::Neutral(e) => format!("neutral ({e})"),
        DkimResult::Fail(e) => format!("fail ({e})"),
        DkimResult::PermError(e) => format!("permerror ({e})"),
        DkimResult::TempError(e) => format!("temperror ({e})"),
        DkimResult::None => "no signature".into(),
    }
}

/// Sends one probe for `domain` through `socket` and verifies what comes back
/// against `servers` (the domain's authoritative servers). `timeout` bounds each
/// socket read/write and each DNS query.
///
/// # Errors
/// [`ProbeError::Unreachable`] when nothing listens at the socket,
/// [`ProbeError::Exchange`] when the milter exchange breaks,
/// [`ProbeError::NoServers`] when `servers` is empty.
pub async fn probe(
    socket: &MilterSocket,
    domain: &str,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<ProbeReport, ProbeError> {
    probe_at(socket, domain, servers, timeout, chrono::Utc::now()).await
}

/// [`probe`] with the probe message dated `now` (the caller's clock: the
/// runner passes its injected one).
///
/// # Errors
/// As [`probe`].
pub async fn probe_at(
    socket: &MilterSocket,
    domain: &str,
    servers: &[SocketAddr],
    timeout: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ProbeReport, ProbeError> {
    if servers.is_empty() {
        return Err(ProbeError::NoServers);
    }
    let (headers, body) = probe_message(domain, now);
    let env = envelope(domain);
    let sock = socket.clone();
    let (h, b) = (headers.clone(), body.clone());
    let reply =
        tokio::task::spawn_blocking(move || milter::send_message(&sock, &env, &h, &b, timeout))
            .await
            .map_err(|e| ProbeError::Task(e.to_string()))?
            .map_err(|e| match e {
                MilterError::Connect { .. } => ProbeError::Unreachable(e),
                other => ProbeError::Exchange(other),
            })?;
    let added: Vec<(String, String)> = reply
        .added_headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        .cloned()
        .collect();
    let signatures = verify_added(&added, &headers, &body, servers, timeout).await;
    Ok(ProbeReport {
        engine: "OpenDKIM",
        socket: socket.to_string(),
        verdict: reply.verdict,
        signatures,
    })
}

/// The DKIM-Signature headers a signer `added` (name, value; in the order
/// added) to the message `headers` + `body`, each verified against every
/// server of `servers` (see the module docs).
pub(crate) async fn verify_added(
    added: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
    servers: &[SocketAddr],
    timeout: Duration,
) -> Vec<ProbeSignature> {
    let mut signatures = Vec::new();
    if !added.is_empty() {
        let raw = signed_message(added, headers, body);
        let results = verify(&raw, servers, timeout).await;
        // Signatures appear in the message in reverse order of addition.
        for (i, (_, v)) in added.iter().rev().enumerate() {
            let selector = signature_tag(v, "s").unwrap_or_default();
            let verified = match results.get(i) {
                Some((s, r)) if s.eq_ignore_ascii_case(&selector) => r.clone(),
                _ => results
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(&selector))
                    .map(|(_, r)| r.clone())
                    .unwrap_or(Err(SignatureCheckError::NotFound)),
            };
            signatures.push(ProbeSignature {
                domain: signature_tag(v, "d").unwrap_or_default(),
                selector,
                algorithm: signature_tag(v, "a").unwrap_or_default(),
                verified,
            });
        }
    }
    signatures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_tags() {
        let (h, b) = probe_message("example.com", chrono::Utc::now());
        assert!(
            h.iter()
                .any(|(n, v)| n == "From" && v.contains("@example.com>"))
        );
        assert!(b.ends_with(b"\r\n"));
        let sig = "v=1; a=rsa-sha256; c=relaxed/simple; d=example.com;\n\ts=202402; t=1; bh=x;\n\th=From; b=abc";
        assert_eq!(signature_tag(sig, "s").as_deref(), Some("202402"));
        assert_eq!(signature_tag(sig, "d").as_deref(), Some("example.com"));
        let raw = signed_message(&[("DKIM-Signature".into(), sig.into())], &h, &b);
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example.com;\r\n\ts=202402;"
        ));
        assert!(!text.contains("\r\r") && !text.replace("\r\n", "").contains('\n'));
    }
}

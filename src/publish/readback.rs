//! After a write, what the host holds compared with what was sent.
//!
//! A host may accept a write and keep something else: cut a long value short,
//! alter bytes, or spread one value over several records (see
//! the project notes on providers: hosts that truncate 2048-bit DKIM records
//! are the common case). [`compare`] reads the set back after the host's
//! documented normalisation — values are compared joined, as verifiers read
//! them (RFC 6376 §3.6.2.2, RFC 7208 §3.3), so a host that merges strings
//! (`multi_string = false`) or re-splits them at 255 bytes (`auto_split`, e.g.
//! PowerDNS, which keeps one long string unsplit) is not a difference — and
//! names the first value that did not survive.

use maildns_providers::{Fqdn, TxtRecord, TxtSet};
use serde::Serialize;

use crate::diagnose::{Shape, Verdict, classify};
use crate::records::RecordKind;

/// Where the value was looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// The host's API (what it holds).
    Api,
    /// One of the zone's authoritative servers (what it serves).
    Server {
        /// The server, `address:port`.
        server: String,
    },
}

/// A value the host accepted but does not hold (or serve) as it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NotStored {
    /// The owner name.
    pub name: Fqdn,
    /// The kind of value maildns wrote there.
    pub kind: RecordKind,
    /// What came back compared with what was sent: [`Verdict::Truncated`],
    /// [`Verdict::Altered`], [`Verdict::SeveralRecords`] or [`Verdict::Missing`].
    pub verdict: Verdict,
    /// The shape of the value sent.
    pub sent: Shape,
    /// The shapes of the records found at the name.
    pub found: Vec<Shape>,
    /// Where it was looked at.
    pub observed: Source,
}

impl NotStored {
    fn describe(&self) -> String {
        let (who, what) = match &self.observed {
            Source::Api => ("the host".to_string(), "holds"),
            Source::Server { server } => (format!("the authoritative server {server}"), "serves"),
        };
        let kind = self.kind.label();
        let name = &self.name;
        match &self.verdict {
            Verdict::Truncated { kept, sent } => match self.observed {
                Source::Api => {
                    format!("{who} truncated the {kind} record at {name} to {kept} of {sent} bytes")
                }
                Source::Server { .. } => format!(
                    "{who} {what} the {kind} record at {name} truncated to {kept} of {sent} bytes"
                ),
            },
            Verdict::Altered { at } => format!(
                "{who} {what} the {kind} record at {name} altered from byte {at} of {}",
                self.sent.bytes
            ),
            Verdict::SeveralRecords { records } => {
                format!("{who} {what} the {kind} record at {name} as {records} separate records")
            }
            Verdict::Missing => {
                format!("{who} accepted the {kind} record at {name} but {what} no such value")
            }
            other => format!(
                "{who} {what} the {kind} record at {name}: {}",
                other.label()
            ),
        }
    }

    /// The bytes the host keeps of a value, when it cut one short.
    pub fn kept_bytes(&self) -> Option<usize> {
        match self.verdict {
            Verdict::Truncated { kept, .. } => Some(kept),
            _ => None,
        }
    }
}

/// Compares the records `sent` with the records `found` at `name` (from
/// [`Source`]): `None` when every value sent is there with the same joined
/// bytes, else the first value that is not, classified by
/// [`crate::diagnose::classify`] against the found values that match nothing sent.
pub fn compare(
    name: &Fqdn,
    kind: RecordKind,
    sent: &[TxtRecord],
    found: &[TxtRecord],
    source: Source,
) -> Option<NotStored> {
    let sent_values: Vec<Vec<u8>> = sent.iter().map(TxtRecord::value).collect();
    let unexplained: Vec<TxtRecord> = found
        .iter()
        .filter(|f| !sent_values.contains(&f.value()))
        .cloned()
        .collect();
    for record in sent {
        let value = record.value();
        if found.iter().any(|f| f.value() == value) {
            continue;
        }
        // One value spread over several records, else the leftover most like
        // it: a prefix of it (truncation), else the first leftover.
        let joined: Vec<u8> = unexplained.iter().flat_map(TxtRecord::value).collect();
        let verdict = if unexplained.len() > 1 && joined == value {
            Verdict::SeveralRecords {
                records: unexplained.len(),
            }
        } else {
            match unexplained
                .iter()
                .find(|f| f.value_len() < value.len() && value.starts_with(&f.value()))
            {
                Some(prefix) => classify(record, std::slice::from_ref(prefix)),
                None => classify(record, &unexplained[..unexplained.len().min(1)]),
            }
        };
        return Some(NotStored {
            name: name.clone(),
            kind,
            verdict,
            sent: Shape::of(record),
            found: found.iter().map(Shape::of).collect(),
            observed: source,
        });
    }
    None
}

/// [`compare`] against a set as read from the host's API (`None`: nothing there).
pub fn compare_set(
    name: &Fqdn,
    kind: RecordKind,
    sent: &TxtSet,
    stored: Option<&TxtSet>,
) -> Option<NotStored> {
    let found = stored.map(|s| s.records.as_slice()).unwrap_or_default();
    compare(name, kind, &sent.records, found, Source::Api)
}

/// Which authoritative servers to ask after a write (the domains' configured
/// `nameservers`; asking is skipped for domains without), and how long each may
/// take to serve the new set before its answer is judged.
#[derive(Clone)]
pub struct ServedCheck {
    /// Sends the queries.
    pub querier: crate::propagation::Querier,
    /// Servers per mail domain.
    pub servers: std::collections::BTreeMap<Fqdn, std::sync::Arc<[std::net::SocketAddr]>>,
    /// How long to keep asking a server that does not serve the set yet.
    pub wait: std::time::Duration,
}

impl std::fmt::Debug for ServedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedCheck")
            .field("servers", &self.servers)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl ServedCheck {
    /// Asks each of `domain`'s servers for `name` until it serves every value
    /// `sent` (joined) or `wait` passes. A server that then serves a value cut
    /// short, altered or spread over several records gives [`Served::Wrong`]. A
    /// server that does not answer, or does not serve the value yet (nothing, or
    /// the `old` values the write replaced), is not an error here (the write may
    /// still be on its way; `publish --wait` watches that): the answer is then
    /// [`Served::Unconfirmed`], as it is when no server is known for `domain`.
    pub async fn check(
        &self,
        domain: &Fqdn,
        name: &Fqdn,
        kind: RecordKind,
        sent: &[TxtRecord],
        old: &[TxtRecord],
    ) -> Served {
        let old: Vec<Vec<u8>> = old.iter().map(TxtRecord::value).collect();
        let Some(servers) = self.servers.get(domain).filter(|s| !s.is_empty()) else {
            return Served::Unconfirmed;
        };
        let mut all = true;
        for server in servers.iter() {
            let start = std::time::Instant::now();
            loop {
                let found = match self.querier.txt_once(*server, name).await {
                    Ok(a) => Some(compare(
                        name,
                        kind,
                        sent,
                        &a.records
                            .into_iter()
                            .filter(|r| !old.contains(&r.value()))
                            .collect::<Vec<_>>(),
                        Source::Server {
                            server: server.to_string(),
                        },
                    )),
                    Err(_) => None,
                };
                let done = start.elapsed() >= self.wait;
                match found {
                    Some(None) => break,
                    Some(Some(e))
                        if done
                            && matches!(
                                e.verdict,
                                Verdict::Truncated { .. }
                                    | Verdict::Altered { .. }
                                    | Verdict::SeveralRecords { .. }
                            ) =>
                    {
                        return Served::Wrong(e);
                    }
                    _ if done => {
                        all = false;
                        break;
                    }
                    _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        }
        if all {
            Served::Confirmed
        } else {
            Served::Unconfirmed
        }
    }
}

/// What the authoritative servers said about a set just written ([`ServedCheck::check`]).
#[derive(Debug, Clone)]
pub enum Served {
    /// Every server serves every value sent, intact.
    Confirmed,
    /// Some server did not answer or does not serve the values yet.
    Unconfirmed,
    /// A server serves a value cut short, altered or spread over several records.
    Wrong(NotStored),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Fqdn {
        Fqdn::parse("sel._domainkey.example.com").unwrap()
    }

    fn dkim(len: usize) -> TxtRecord {
        let mut v = b"v=DKIM1; k=rsa; p=".to_vec();
        v.resize(len, b'A');
        TxtRecord::from_value(v)
    }

    fn set(records: Vec<TxtRecord>) -> TxtSet {
        TxtSet { ttl: 300, records }
    }

    #[test]
    fn intact_values_pass_whatever_the_split_and_order() {
        let long = dkim(410);
        let foreign = TxtRecord::from_value("google-site-verification=abc");
        let resplit = TxtRecord::split_max(&long.value(), 100);
        let sent = set(vec![foreign.clone(), long.clone()]);
        let stored = set(vec![resplit, foreign]);
        assert_eq!(
            compare_set(&name(), RecordKind::Dkim, &sent, Some(&stored)),
            None
        );
    }

    #[test]
    fn a_value_cut_at_300_bytes_is_named() {
        let sent = set(vec![dkim(410)]);
        let stored = set(vec![TxtRecord::from_value(&dkim(410).value()[..300])]);
        let e = compare_set(&name(), RecordKind::Dkim, &sent, Some(&stored)).unwrap();
        assert_eq!(
            e.verdict,
            Verdict::Truncated {
                kept: 300,
                sent: 410
            }
        );
        assert_eq!(e.kept_bytes(), Some(300));
        assert_eq!(
            e.to_string(),
            "the host truncated the DKIM record at sel._domainkey.example.com to 300 of 410 bytes"
        );
    }

    #[test]
    fn the_json_form_names_the_verdict_and_where() {
        let sent = set(vec![dkim(410)]);
        let stored = set(vec![TxtRecord::from_value(&dkim(410).value()[..300])]);
        let e = compare_set(&name(), RecordKind::Dkim, &sent, Some(&stored)).unwrap();
        let v = serde_json::to_value(crate::publish::DomainError::NotStored(e)).unwrap();
        assert_eq!(v["type"], "not_stored");
        assert_eq!(v["name"], "sel._domainkey.example.com");
        assert_eq!(v["kind"], "dkim");
        assert_eq!(v["verdict"]["verdict"], "truncated");
        assert_eq!(v["verdict"]["kept"], 300);
        assert_eq!(v["sent"]["bytes"], 410);
        assert_eq!(v["found"][0]["bytes"], 300);
        assert_eq!(v["observed"]["source"], "api");
    }

    #[test]
    fn altered_missing_and_split_values_are_named() {
        let sent = set(vec![dkim(300)]);
        let mut bytes = dkim(300).value();
        bytes[100] = b'?';
        let altered = set(vec![TxtRecord::from_value(bytes)]);
        let e = compare_set(&name(), RecordKind::Dkim, &sent, Some(&altered)).unwrap();
        assert_eq!(e.verdict, Verdict::Altered { at: 100 });
        assert!(
            e.to_string().contains("altered from byte 100 of 300"),
            "{e}"
        );

        let e = compare_set(&name(), RecordKind::Dkim, &sent, None).unwrap();
        assert_eq!(e.verdict, Verdict::Missing);
        assert_eq!(
            e.to_string(),
            "the host accepted the DKIM record at sel._domainkey.example.com but holds no such value"
        );

        let v = dkim(300).value();
        let split = set(vec![
            TxtRecord::from_value(&v[..255]),
            TxtRecord::from_value(&v[255..]),
        ]);
        let e = compare_set(&name(), RecordKind::Dkim, &sent, Some(&split)).unwrap();
        assert_eq!(e.verdict, Verdict::SeveralRecords { records: 2 });
        let e = compare(
            &name(),
            RecordKind::Dkim,
            &sent.records,
            &split.records[1..],
            Source::Server {
                server: "127.0.0.1:53".into(),
            },
        )
        .unwrap();
        assert!(matches!(e.verdict, Verdict::Altered { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("the authoritative server 127.0.0.1:53 serves the DKIM record"),
            "{e}"
        );
    }
}

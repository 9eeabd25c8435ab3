//! The XML documents of the Route 53 REST API (2013-04-01): the listings
//! read, the change batch written, TXT `Value` quoting and the error bodies.
//! Pure (no I/O), so the read path's parsing can be fuzzed.
//!
//! Shapes: <https://docs.aws.amazon.com/Route53/latest/APIReference/API_Operations_Amazon_Route_53.html>.

use serde::Deserialize;

use super::KIND;
use crate::http::{self, Failure};
use crate::{CharacterString, Error, ErrorKind, Fqdn, Operation, TxtRecord, TxtSet};

/// One page of a `ListResourceRecordSets` answer, read for the TXT set at a name.
#[derive(Debug)]
pub struct RrsetPage {
    /// The TXT set at the name on this page (without a routing policy), if any.
    pub set: Option<TxtSet>,
    /// True when the page went past the name (another name or type came next).
    pub past: bool,
}

/// Parses one `ListResourceRecordSetsResponse` page (XML) for the TXT set at `name`.
/// Pure, for the read path and the fuzz target.
///
/// # Errors
/// [`ErrorKind::Protocol`] naming `route53` and `op` when the XML is not the documented
/// shape or a `Value` is not quoted strings (Route 53 returns every TXT value as
/// double-quoted strings, see
/// <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat>).
pub fn parse_rrsets(body: &[u8], name: &Fqdn, op: Operation) -> Result<RrsetPage, Error> {
    let want = name.to_dotted();
    let list: ListResourceRecordSetsResponse = parse_xml(body, op, name)?;
    let mut past = false;
    let mut found = None;
    for set in &list.resource_record_sets.items {
        let same_name = decode_name(&set.name).eq_ignore_ascii_case(&want);
        if !same_name || set.kind != "TXT" {
            past = true;
            break;
        }
        if set.set_identifier.is_some() {
            continue;
        }
        let mut records = Vec::new();
        for rr in &set.resource_records.items {
            records.push(
                parse_value(&rr.value)
                    .map_err(|m| Error::new(KIND, op, Some(name), ErrorKind::Protocol, m))?,
            );
        }
        found = Some(TxtSet {
            ttl: set.ttl.unwrap_or(0),
            records,
        });
    }
    Ok(RrsetPage { set: found, past })
}

/// The `ChangeResourceRecordSetsRequest` document for one change.
pub fn change_batch_xml(action: &str, name: &Fqdn, set: &TxtSet) -> String {
    let values: Vec<String> = set.records.iter().map(format_value).collect();
    changes_xml(&[BatchChange {
        action,
        name,
        ttl: set.ttl,
        values: &values,
    }])
}

/// One `<Change>` of a batch: the action, the owner name, the TTL and each
/// `<Value>` exactly as it is to be sent (a `DELETE` echoes the values as read).
#[derive(Debug, Clone, Copy)]
pub struct BatchChange<'a> {
    /// `CREATE`, `UPSERT` or `DELETE`.
    pub action: &'a str,
    /// The owner name.
    pub name: &'a Fqdn,
    /// The TTL, in seconds.
    pub ttl: u32,
    /// The values, in Route 53's TXT format, sent byte for byte.
    pub values: &'a [String],
}

/// The `ChangeResourceRecordSetsRequest` document for several changes, applied
/// by Route 53 as one all-or-nothing batch in the order given.
pub fn changes_xml(changes: &[BatchChange<'_>]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes>",
    );
    for c in changes {
        out.push_str(&format!(
            "<Change><Action>{}</Action><ResourceRecordSet><Name>{}</Name><Type>TXT</Type><TTL>{}</TTL><ResourceRecords>",
            xml_escape(c.action),
            xml_escape(&c.name.to_dotted()),
            c.ttl
        ));
        for v in c.values {
            out.push_str("<ResourceRecord><Value>");
            out.push_str(&xml_escape(v));
            out.push_str("</Value></ResourceRecord>");
        }
        out.push_str("</ResourceRecords></ResourceRecordSet></Change>");
    }
    out.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
    out
}

/// One TXT RRset of a `ListResourceRecordSets` page: its owner name (decoded,
/// with the trailing dot), the parsed set and the values exactly as answered.
#[derive(Debug)]
pub struct ListedSet {
    /// The owner name as Route 53 answered it, `\ooo` escapes decoded.
    pub name: String,
    /// The parsed set.
    pub set: TxtSet,
    /// The `<Value>`s as answered, for a `DELETE` that must repeat them exactly.
    pub raw: Vec<String>,
}

/// Parses one `ListResourceRecordSetsResponse` page for every TXT set without a
/// routing policy on it; also returns the page's listing state (truncation, next
/// name and type) and the decoded name of the last set on the page.
///
/// # Errors
/// As [`parse_rrsets`].
pub(super) fn parse_page(
    body: &[u8],
    zone: &Fqdn,
    op: Operation,
) -> Result<
    (
        Vec<ListedSet>,
        Option<String>,
        ListResourceRecordSetsResponse,
    ),
    Error,
> {
    let list: ListResourceRecordSetsResponse = parse_xml(body, op, zone)?;
    let mut out = Vec::new();
    let mut last = None;
    for set in &list.resource_record_sets.items {
        let name = decode_name(&set.name);
        last = Some(name.clone());
        if set.kind != "TXT" || set.set_identifier.is_some() {
            continue;
        }
        let mut records = Vec::new();
        let mut raw = Vec::new();
        for rr in &set.resource_records.items {
            records.push(
                parse_value(&rr.value)
                    .map_err(|m| Error::new(KIND, op, Some(zone), ErrorKind::Protocol, m))?,
            );
            raw.push(rr.value.clone());
        }
        out.push(ListedSet {
            name,
            set: TxtSet {
                ttl: set.ttl.unwrap_or(0),
                records,
            },
            raw,
        });
    }
    Ok((out, last, list))
}

/// The key Route 53 orders record sets by: the labels reversed, lowercased
/// (`_dmarc.example.com.` -> `["com", "example", "_dmarc"]`).
pub fn order_key(name: &str) -> Vec<String> {
    let mut labels: Vec<String> = name
        .trim_end_matches('.')
        .split('.')
        .map(str::to_ascii_lowercase)
        .collect();
    labels.reverse();
    labels
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One record as a Route 53 `Value`: quoted strings separated by spaces, `"` and `\`
/// backslash-escaped, bytes outside printable ASCII as `\ooo` octal.
pub fn format_value(record: &TxtRecord) -> String {
    let mut out = String::new();
    for (i, s) in record.strings().iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in s.as_bytes() {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03o}")),
            }
        }
        out.push('"');
    }
    out
}

/// Parses a Route 53 `Value` (quoted strings separated by white space; `\ooo` octal
/// and `\x` escapes).
///
/// # Errors
/// A message for text outside quotes, an unterminated quote, a bad escape, a string
/// over 255 bytes, or an empty value.
pub fn parse_value(value: &str) -> Result<TxtRecord, String> {
    let b = value.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'"') => {
                i += 1;
                let mut buf = Vec::new();
                loop {
                    match b.get(i) {
                        None => return Err(format!("unterminated quote in TXT value {value:?}")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let (byte, used) = unescape_octal(b, i)
                                .ok_or_else(|| format!("bad escape in TXT value {value:?}"))?;
                            buf.push(byte);
                            i += used;
                        }
                        Some(&c) => {
                            buf.push(c);
                            i += 1;
                        }
                    }
                }
                strings.push(
                    CharacterString::new(buf).map_err(|e| format!("{e} in TXT value {value:?}"))?,
                );
            }
            Some(_) => {
                // Route 53 answers every TXT value as quoted strings: anything else is
                // not its format, and guessing where the strings end could rewrite a
                // value we do not own.
                return Err(format!(
                    "TXT value {value:?} is not a quoted string at byte {i}"
                ));
            }
            None => break,
        }
    }
    TxtRecord::from_strings(strings).ok_or_else(|| format!("empty TXT value {value:?}"))
}

fn unescape_octal(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = *b.get(i + 1)?;
    if c.is_ascii_digit() {
        let d = b.get(i + 1..i + 4)?;
        if !d.iter().all(|x| (b'0'..=b'7').contains(x)) {
            return None;
        }
        let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
        Some((u8::try_from(v).ok()?, 4))
    } else {
        Some((c, 2))
    }
}

/// A name as Route 53 returns it, with `\ooo` escapes decoded.
pub fn decode_name(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\'
            && let Some((byte, used)) = unescape_octal(b, i)
        {
            out.push(byte);
            i += used;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn parse_xml<T: serde::de::DeserializeOwned>(
    body: &[u8],
    op: Operation,
    name: &Fqdn,
) -> Result<T, Error> {
    let text = String::from_utf8_lossy(body);
    quick_xml::de::from_str(&text).map_err(|e| {
        Error::new(
            KIND,
            op,
            Some(name),
            ErrorKind::Protocol,
            format!("unexpected response body: {e}"),
        )
    })
}

/// Maps Route 53's XML error bodies (`ErrorResponse`, `InvalidChangeBatch`).
pub fn map_error(f: &Failure<'_>) -> (ErrorKind, String) {
    let text = String::from_utf8_lossy(f.body);
    if let Ok(e) = quick_xml::de::from_str::<ErrorResponse>(&text) {
        let kind = match e.error.code.as_str() {
            "Throttling"
            | "ThrottlingException"
            | "PriorRequestNotComplete"
            | "RequestLimitExceeded"
            | "TooManyRequestsException" => ErrorKind::RateLimited,
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "InvalidSignatureException"
            | "UnrecognizedClientException"
            | "AuthFailure" => ErrorKind::Auth,
            "AccessDenied" | "AccessDeniedException" => ErrorKind::Permission,
            "NoSuchHostedZone" => ErrorKind::ZoneNotFound,
            // What a DELETE of values no longer stored, or a CREATE of a set that
            // appeared since the read, gets: the RRset changed under us.
            "InvalidChangeBatch" if stale_batch(&e.error.message) => ErrorKind::Conflict,
            _ => http::kind_for_status(f.status),
        };
        return (kind, format!("{}: {}", e.error.code, e.error.message));
    }
    if let Ok(e) = quick_xml::de::from_str::<InvalidChangeBatch>(&text) {
        let msgs = e.messages.items.join("; ");
        let kind = if stale_batch(&msgs) {
            ErrorKind::Conflict
        } else {
            ErrorKind::Invalid
        };
        return (kind, format!("InvalidChangeBatch: {msgs}"));
    }
    http::default_mapper(f)
}

/// Whether an `InvalidChangeBatch` message says the batch was built on a stale
/// read: a `DELETE` of a set that is gone or holds other values, or a `CREATE`
/// of a set that now exists. Route 53 sends these as
/// `<ErrorResponse><Error><Code>InvalidChangeBatch</Code><Message>[Tried to delete
/// resource record set [name='…', type='TXT'] but it was not found]</Message>`.
fn stale_batch(message: &str) -> bool {
    message.contains("but it was not found")
        || message.contains("do not match")
        || message.contains("but it already exists")
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorResponse {
    #[serde(rename = "Error")]
    pub(super) error: ErrorBody,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(rename = "Code")]
    pub(super) code: String,
    #[serde(rename = "Message", default)]
    pub(super) message: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct InvalidChangeBatch {
    #[serde(rename = "Messages")]
    pub(super) messages: Messages,
}

#[derive(Debug, Deserialize)]
pub(super) struct Messages {
    #[serde(rename = "Message", default)]
    pub(super) items: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListHostedZonesByNameResponse {
    #[serde(rename = "HostedZones", default)]
    pub(super) hosted_zones: HostedZones,
    #[serde(rename = "IsTruncated", default)]
    pub(super) is_truncated: bool,
    #[serde(rename = "NextDNSName")]
    pub(super) next_dns_name: Option<String>,
    #[serde(rename = "NextHostedZoneId")]
    pub(super) next_hosted_zone_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct HostedZones {
    #[serde(rename = "HostedZone", default)]
    pub(super) items: Vec<HostedZone>,
}

#[derive(Debug, Deserialize)]
pub(super) struct HostedZone {
    #[serde(rename = "Id")]
    pub(super) id: String,
    #[serde(rename = "Name")]
    pub(super) name: String,
    #[serde(rename = "Config")]
    pub(super) config: Option<HostedZoneConfig>,
}

#[derive(Debug, Deserialize)]
pub(super) struct HostedZoneConfig {
    #[serde(rename = "PrivateZone", default)]
    pub(super) private_zone: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListResourceRecordSetsResponse {
    #[serde(rename = "ResourceRecordSets", default)]
    pub(super) resource_record_sets: ResourceRecordSets,
    #[serde(rename = "IsTruncated", default)]
    pub(super) is_truncated: bool,
    #[serde(rename = "NextRecordName")]
    pub(super) next_record_name: Option<String>,
    #[serde(rename = "NextRecordType")]
    pub(super) next_record_type: Option<String>,
    #[serde(rename = "NextRecordIdentifier")]
    pub(super) next_record_identifier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ResourceRecordSets {
    #[serde(rename = "ResourceRecordSet", default)]
    pub(super) items: Vec<ResourceRecordSet>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ResourceRecordSet {
    #[serde(rename = "Name")]
    pub(super) name: String,
    #[serde(rename = "Type")]
    pub(super) kind: String,
    #[serde(rename = "SetIdentifier")]
    pub(super) set_identifier: Option<String>,
    #[serde(rename = "TTL")]
    pub(super) ttl: Option<u32>,
    #[serde(rename = "ResourceRecords", default)]
    pub(super) resource_records: ResourceRecords,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ResourceRecords {
    #[serde(rename = "ResourceRecord", default)]
    pub(super) items: Vec<ResourceRecord>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ResourceRecord {
    #[serde(rename = "Value")]
    pub(super) value: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChangeResponse {
    #[serde(rename = "ChangeInfo")]
    pub(super) change_info: ChangeInfo,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChangeInfo {
    #[serde(rename = "Id")]
    pub(super) id: String,
    #[serde(rename = "Status")]
    pub(super) status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_with_octal_escapes() {
        let r = TxtRecord::from_strings(vec![
            CharacterString::new(b"a\"b\\c".to_vec()).unwrap(),
            CharacterString::new(b"x\x00\xff y".to_vec()).unwrap(),
        ])
        .unwrap();
        let v = format_value(&r);
        assert_eq!(v, r#""a\"b\\c" "x\000\377 y""#);
        assert_eq!(parse_value(&v).unwrap(), r);
    }

    #[test]
    fn names_decode_octal() {
        assert_eq!(decode_name("\\052.example.com."), "*.example.com.");
        assert_eq!(decode_name("_dmarc.example.com."), "_dmarc.example.com.");
    }

    #[test]
    fn a_stale_delete_in_the_error_response_envelope_is_a_conflict() {
        let h = reqwest::header::HeaderMap::new();
        let map = |body: &[u8]| {
            map_error(&Failure {
                status: reqwest::StatusCode::BAD_REQUEST,
                headers: &h,
                body,
            })
        };
        let body = br#"<?xml version="1.0"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>[Tried to delete resource record set [name='x.example.com.', type='TXT'] but it was not found]</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        assert_eq!(map(body).0, ErrorKind::Conflict);
        let body = br#"<ErrorResponse><Error><Code>InvalidChangeBatch</Code><Message>[Tried to delete resource record set [name='x.example.com.', type='TXT'] but the values provided do not match the current values]</Message></Error></ErrorResponse>"#;
        assert_eq!(map(body).0, ErrorKind::Conflict);
        let body = br#"<ErrorResponse><Error><Code>InvalidChangeBatch</Code><Message>[RRSet with DNS name x.example.org. is not permitted in zone example.com.]</Message></Error></ErrorResponse>"#;
        assert_eq!(map(body).0, ErrorKind::Invalid);
    }

    #[test]
    fn throttling_is_rate_limited() {
        let body = br#"<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let h = reqwest::header::HeaderMap::new();
        let f = Failure {
            status: reqwest::StatusCode::BAD_REQUEST,
            headers: &h,
            body,
        };
        assert_eq!(
            map_error(&f),
            (
                ErrorKind::RateLimited,
                "Throttling: Rate exceeded".to_string()
            )
        );
    }
}

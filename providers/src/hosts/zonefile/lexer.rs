//! The master-file lexer: text into logical records of tokens.
//!
//! Kept apart from the reader because it is the one place that knows the character
//! level of RFC 1035 §5.1: quoted strings, parentheses joining lines, `;` comments
//! and backslash escapes; and the fixed vocabularies a token is recognised by (TTL
//! units, classes, type mnemonics). The reader above it sees only tokens with their
//! line and column.

/// One token of a logical record: its text as written (quotes kept) and where.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) text: String,
    /// 0-based line.
    pub(super) line: usize,
    /// Byte column in that line.
    pub(super) col: usize,
    pub(super) quoted: bool,
}

/// A logical record: first and last 0-based line, blank owner field, tokens.
pub(super) struct Logical {
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) blank_owner: bool,
    pub(super) tokens: Vec<Token>,
}

/// How a quoted string scanned from some byte of a line ends.
enum Quoted {
    /// Closed on this line; the byte after the closing quote.
    Closed(usize),
    /// The line ends with a backslash inside the string: the string goes on,
    /// the newline it escapes part of it (as BIND's lexer reads a master file).
    Continued,
    /// The line ends inside the string without a backslash before the newline.
    Open,
}

/// Scans the rest of a quoted string from `i` (just after its opening quote,
/// or at the start of a line it continues onto).
fn scan_quoted(bytes: &[u8], mut i: usize) -> Quoted {
    loop {
        match bytes.get(i) {
            None => return Quoted::Open,
            // A backslash escapes the byte after it; the last byte of the line
            // escapes the newline (a `\r` before a CRLF's newline leaves the
            // newline itself unescaped: BIND refuses that too).
            Some(b'\\') if i + 1 == bytes.len() => return Quoted::Continued,
            Some(b'\\') => i += 2,
            Some(b'"') => return Quoted::Closed(i + 1),
            Some(_) => i += 1,
        }
    }
}

const NOT_CLOSED: &str =
    "quoted string not closed on its line (it goes on to the next line only after a backslash)";

/// Splits text into logical records (parentheses joined, comments dropped).
///
/// A quoted string goes on to the next line when its line ends with a
/// backslash, the escaped newline part of the string (`"ab\` then `cd"` is the
/// three bytes `ab`, newline, `cd`), with or without parentheses, as BIND
/// reads it; a newline not escaped inside a quoted string is an error. Such a
/// token is placed at its opening quote; its record ends on the line the string
/// closes on.
pub(super) fn lex(text: &str) -> Result<Vec<Logical>, (usize, String)> {
    let mut out = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    let mut depth = 0usize;
    let mut start_line = 0usize;
    let mut open_line = 0usize;
    let mut starts_blank = false;
    // A quoted string continued from an earlier line: its text so far (escaped
    // newlines included), and its line and column.
    let mut open_string: Option<(String, usize, usize)> = None;
    let lines = text.split('\n').count();
    for (ln, line) in text.split('\n').enumerate() {
        let bytes = line.as_bytes();
        let has_next = ln + 1 < lines;
        if depth == 0 && open_string.is_none() {
            start_line = ln;
            starts_blank = bytes.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        }
        let mut i = 0;
        if let Some((mut so_far, at_line, at_col)) = open_string.take() {
            match scan_quoted(bytes, 0) {
                Quoted::Closed(end) => {
                    // The closing quote is ASCII: `end` is a character boundary.
                    so_far.push_str(&line[..end]);
                    tokens.push(Token {
                        text: so_far,
                        line: at_line,
                        col: at_col,
                        quoted: true,
                    });
                    i = end;
                }
                Quoted::Continued if has_next => {
                    so_far.push_str(line);
                    so_far.push('\n');
                    open_string = Some((so_far, at_line, at_col));
                    continue;
                }
                Quoted::Continued | Quoted::Open => return Err((ln, NOT_CLOSED.into())),
            }
        }
        while i < bytes.len() {
            match bytes[i] {
                b' ' | b'\t' | b'\r' => i += 1,
                b';' => break,
                b'(' => {
                    if depth == 0 {
                        open_line = ln;
                    }
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err((ln, "')' without '('".into()));
                    }
                    depth -= 1;
                    i += 1;
                }
                b'"' => {
                    let s = i;
                    match scan_quoted(bytes, i + 1) {
                        Quoted::Closed(end) => {
                            // The closing quote is ASCII: `end` is a character boundary.
                            tokens.push(Token {
                                text: line[s..end].to_string(),
                                line: ln,
                                col: s,
                                quoted: true,
                            });
                            i = end;
                        }
                        Quoted::Continued if has_next => {
                            open_string = Some((format!("{}\n", &line[s..]), ln, s));
                            i = bytes.len();
                        }
                        Quoted::Continued | Quoted::Open => return Err((ln, NOT_CLOSED.into())),
                    }
                }
                _ => {
                    let s = i;
                    while i < bytes.len()
                        && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b';' | b'(' | b')' | b'"')
                    {
                        if bytes[i] == b'\\' {
                            if i + 1 >= bytes.len() {
                                return Err((ln, "backslash at the end of a line".into()));
                            }
                            i += 1;
                        }
                        i += 1;
                    }
                    // Stops at an ASCII delimiter or the end of the line; an escaped
                    // multi-byte character leaves only continuation bytes, never a
                    // delimiter, so `i` is a character boundary.
                    let end = (s..=i.min(bytes.len()))
                        .rev()
                        .find(|e| line.is_char_boundary(*e))
                        .unwrap_or(s);
                    tokens.push(Token {
                        text: line[s..end].to_string(),
                        line: ln,
                        col: s,
                        quoted: false,
                    });
                }
            }
        }
        if depth == 0 && open_string.is_none() && !tokens.is_empty() {
            out.push(Logical {
                first: start_line,
                last: ln,
                blank_owner: starts_blank,
                tokens: std::mem::take(&mut tokens),
            });
        }
    }
    if depth > 0 {
        return Err((open_line, "'(' never closed".into()));
    }
    Ok(out)
}

/// Parses a TTL: seconds or BIND units (`1w2d3h4m5s`, any case).
pub(super) fn parse_ttl(s: &str) -> Option<u32> {
    if let Ok(v) = s.parse::<u32>() {
        return Some(v);
    }
    let mut total: u64 = 0;
    let mut num: u64 = 0;
    let mut any = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = num.checked_mul(10)?.checked_add(u64::from(d))?;
            any = true;
        } else {
            let mult = match c.to_ascii_lowercase() {
                'w' => 604_800,
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return None,
            };
            if !any {
                return None;
            }
            total = total.checked_add(num.checked_mul(mult)?)?;
            num = 0;
            any = false;
        }
    }
    if any {
        total = total.checked_add(num)?;
    }
    u32::try_from(total).ok()
}

pub(super) fn is_class(s: &str) -> bool {
    let u = s.to_ascii_uppercase();
    matches!(u.as_str(), "IN" | "CH" | "HS" | "CS" | "NONE" | "ANY")
        || u.strip_prefix("CLASS")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Record types BIND 9.18 reads in master files (its `rdatatype` table), plus
/// `TYPEnnn` (RFC 3597).
const TYPES: &[&str] = &[
    "A",
    "NS",
    "MD",
    "MF",
    "CNAME",
    "SOA",
    "MB",
    "MG",
    "MR",
    "NULL",
    "WKS",
    "PTR",
    "HINFO",
    "MINFO",
    "MX",
    "TXT",
    "RP",
    "AFSDB",
    "X25",
    "ISDN",
    "RT",
    "NSAP",
    "NSAP-PTR",
    "SIG",
    "KEY",
    "PX",
    "GPOS",
    "AAAA",
    "LOC",
    "NXT",
    "EID",
    "NIMLOC",
    "SRV",
    "ATMA",
    "NAPTR",
    "KX",
    "CERT",
    "A6",
    "DNAME",
    "SINK",
    "APL",
    "DS",
    "SSHFP",
    "IPSECKEY",
    "RRSIG",
    "NSEC",
    "DNSKEY",
    "DHCID",
    "NSEC3",
    "NSEC3PARAM",
    "TLSA",
    "SMIMEA",
    "HIP",
    "NINFO",
    "RKEY",
    "TALINK",
    "CDS",
    "CDNSKEY",
    "OPENPGPKEY",
    "CSYNC",
    "ZONEMD",
    "SVCB",
    "HTTPS",
    "SPF",
    "UINFO",
    "UID",
    "GID",
    "UNSPEC",
    "NID",
    "L32",
    "L64",
    "LP",
    "EUI48",
    "EUI64",
    "URI",
    "CAA",
    "AVC",
    "DOA",
    "AMTRELAY",
    "TA",
    "DLV",
    "RESINFO",
    "WALLET",
];

pub(super) fn is_type_mnemonic(s: &str) -> bool {
    let u = s.to_ascii_uppercase();
    TYPES.contains(&u.as_str())
        || u.strip_prefix("TYPE")
            .is_some_and(|n| !n.is_empty() && n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

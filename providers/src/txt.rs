//! TXT record data: character-strings, records made of them, presentation and wire size.
//!
//! RFC 1035 §3.3.14: TXT RDATA is one or more `<character-string>`s, each a length
//! byte followed by 0..=255 bytes. Verifiers of SPF (RFC 7208 §3.3) and DKIM
//! (RFC 6376 §3.6.2.2) join a record's strings with nothing between them, so a
//! long DKIM key is ONE record of several strings — never several records.
//!
//! [`CharacterString`] cannot hold more than 255 bytes; [`TxtRecord`] is a non-empty
//! ordered list of them. Splitting, joining, the zone-file presentation form
//! (RFC 1035 §5.1) and its parser live here.

use std::fmt;

/// Most bytes one character-string holds (RFC 1035 §3.3).
pub const MAX_STRING: usize = 255;

/// A DNS character-string: at most 255 arbitrary bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CharacterString(Vec<u8>);

/// A byte string did not fit in one character-string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a character-string holds at most 255 bytes, this one has {len}")]
pub struct TooLong {
    /// Length of the rejected bytes.
    pub len: usize,
}

impl CharacterString {
    /// Wraps `bytes`, refusing more than 255.
    ///
    /// # Errors
    /// [`TooLong`] when `bytes` is over 255 bytes (RFC 1035 §3.3: one length octet).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, TooLong> {
        let bytes = bytes.into();
        if bytes.len() > MAX_STRING {
            return Err(TooLong { len: bytes.len() });
        }
        Ok(CharacterString(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes (0..=255).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The quoted, escaped presentation form: `"..."`.
    pub fn to_presentation(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 2);
        out.push('"');
        escape_into(&self.0, &mut out);
        out.push('"');
        out
    }
}

impl fmt::Debug for CharacterString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_presentation())
    }
}

/// `bytes` for people to read: printable ASCII as it is, `\` as `\\`, every
/// other byte as RFC 1035 §5.1 `\DDD` (three decimal digits). The one escaping
/// maildns uses for values it shows outside the quoted presentation form.
pub fn escape_for_display(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out
}

/// Appends the escaped form of `bytes` (without quotes): `"` and `\` get a
/// backslash, bytes outside printable ASCII become `\DDD`.
pub fn escape_into(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                out.push('\\');
                out.push_str(&format!("{b:03}"));
            }
        }
    }
}

/// Where to break a value when splitting it into character-strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split<'a> {
    /// Fill every string to 255 bytes.
    #[default]
    Greedy,
    /// End the first string just before the first occurrence of this marker
    /// (e.g. `p=`, as opendkim-genkey does), then fill the rest greedily.
    /// Falls back to greedy when the marker is absent or the prefix is over 255.
    Before(&'a [u8]),
}

/// One TXT record: a non-empty, ordered list of character-strings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxtRecord(Vec<CharacterString>);

/// Why presentation text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {at}")]
pub struct ParseError {
    /// Byte offset into the input where the problem was found.
    pub at: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// The kinds of presentation-form error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A quoted string was never closed.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// Input ended right after a backslash.
    #[error("backslash at end of input")]
    DanglingEscape,
    /// `\DDD` with a value over 255 or fewer than three digits.
    #[error("bad \\DDD escape (three decimal digits, at most 255)")]
    BadDecimalEscape,
    /// A string over 255 bytes.
    #[error("character-string longer than 255 bytes")]
    StringTooLong,
    /// `(` without `)` or the reverse, or nesting.
    #[error("unbalanced parentheses")]
    Parentheses,
    /// No character-string at all.
    #[error("no character-string found")]
    Empty,
    /// Two quoted strings with nothing between them, or text glued to a quote.
    #[error("strings must be separated by white space")]
    MissingSeparator,
    /// Text outside double quotes where the format wants only quoted strings.
    #[error("not a quoted string (the format wants every character-string in double quotes)")]
    Unquoted,
}

/// Checks that `input` is only double-quoted character-strings separated by white
/// space, as hosts that render TXT content in canonical zone-file form (PowerDNS,
/// deSEC, Route 53) always answer: no bare words, parentheses or comments.
///
/// # Errors
/// [`ParseErrorKind::Unquoted`] at the first byte outside quotes that is not white
/// space; [`ParseErrorKind::UnterminatedQuote`], [`ParseErrorKind::DanglingEscape`],
/// [`ParseErrorKind::MissingSeparator`] or [`ParseErrorKind::Empty`] otherwise.
pub fn require_quoted(input: &[u8]) -> Result<(), ParseError> {
    let err = |at, kind| Err(ParseError { at, kind });
    let mut i = 0;
    let mut strings = 0usize;
    while i < input.len() {
        match input[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match input.get(i) {
                        None => return err(start, ParseErrorKind::UnterminatedQuote),
                        Some(b'"') => break,
                        Some(b'\\') if i + 1 >= input.len() => {
                            return err(i, ParseErrorKind::DanglingEscape);
                        }
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                strings += 1;
                if let Some(&next) = input.get(i)
                    && !matches!(next, b' ' | b'\t' | b'\r' | b'\n')
                {
                    return err(i, ParseErrorKind::MissingSeparator);
                }
            }
            _ => return err(i, ParseErrorKind::Unquoted),
        }
    }
    if strings == 0 {
        return err(0, ParseErrorKind::Empty);
    }
    Ok(())
}

impl TxtRecord {
    /// A record from already-made strings; `None` when `strings` is empty.
    pub fn from_strings(strings: Vec<CharacterString>) -> Option<Self> {
        if strings.is_empty() {
            None
        } else {
            Some(TxtRecord(strings))
        }
    }

    /// A record of exactly these character-strings, in order; no parts is one empty
    /// string (as [`TxtRecord::from_value`] of an empty value).
    ///
    /// # Errors
    /// [`TooLong`] for the first part over 255 bytes (RFC 1035 §3.3).
    pub fn from_parts<P: AsRef<[u8]>>(parts: &[P]) -> Result<Self, TooLong> {
        let strings = parts
            .iter()
            .map(|p| CharacterString::new(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_strings(strings).unwrap_or_else(|| Self::from_value(b"")))
    }

    /// Splits `value` into 255-byte strings (an empty value is one empty string).
    pub fn from_value(value: impl AsRef<[u8]>) -> Self {
        Self::split(value.as_ref(), Split::Greedy)
    }

    /// Splits `value` into strings of at most 255 bytes following `how`.
    pub fn split(value: &[u8], how: Split<'_>) -> Self {
        let mut strings = Vec::with_capacity(value.len() / MAX_STRING + 1);
        let mut rest = value;
        if let Split::Before(marker) = how
            && !marker.is_empty()
            && let Some(pos) = find(rest, marker)
            && pos > 0
            && pos <= MAX_STRING
        {
            strings.push(CharacterString(rest[..pos].to_vec()));
            rest = &rest[pos..];
        }
        while rest.len() > MAX_STRING {
            strings.push(CharacterString(rest[..MAX_STRING].to_vec()));
            rest = &rest[MAX_STRING..];
        }
        if !rest.is_empty() || strings.is_empty() {
            strings.push(CharacterString(rest.to_vec()));
        }
        TxtRecord(strings)
    }

    /// Splits into strings of at most `max` bytes (1..=255), for hosts with a lower limit.
    pub fn split_max(value: &[u8], max: usize) -> Self {
        let max = max.clamp(1, MAX_STRING);
        if value.is_empty() {
            return TxtRecord(vec![CharacterString::default()]);
        }
        TxtRecord(
            value
                .chunks(max)
                .map(|c| CharacterString(c.to_vec()))
                .collect(),
        )
    }

    /// The strings in order.
    pub fn strings(&self) -> &[CharacterString] {
        &self.0
    }

    /// The strings joined with nothing between them, as SPF and DKIM verifiers read them.
    pub fn value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.value_len());
        for s in &self.0 {
            v.extend_from_slice(&s.0);
        }
        v
    }

    /// The joined value as text, with invalid UTF-8 replaced.
    pub fn value_lossy(&self) -> String {
        String::from_utf8_lossy(&self.value()).into_owned()
    }

    /// The joined value for people to read (terminal output, instructions,
    /// messages): printable ASCII as it is, `\\` doubled, and every other byte
    /// (control bytes such as ESC, bytes of UTF-8 sequences) as RFC 1035 §5.1
    /// `\DDD`, so a value read from DNS cannot drive the reader's terminal.
    pub fn value_escaped(&self) -> String {
        escape_for_display(&self.value())
    }

    /// Length of the joined value in bytes.
    pub fn value_len(&self) -> usize {
        self.0.iter().map(CharacterString::len).sum()
    }

    /// True when the joined value starts with `prefix`, compared ASCII case-insensitively
    /// (so `v=spf1`, `V=SPF1` both match) — how ownership of a value is decided.
    pub fn value_starts_with_ignore_case(&self, prefix: &str) -> bool {
        let v = self.value();
        v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }

    /// Size of the RDATA on the wire: one length byte per string plus the bytes.
    pub fn rdata_len(&self) -> usize {
        self.0.iter().map(|s| 1 + s.len()).sum()
    }

    /// Presentation form: each string quoted and escaped, separated by one space.
    pub fn to_presentation(&self) -> String {
        let mut out = String::with_capacity(self.value_len() + 3 * self.0.len());
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push('"');
            escape_into(&s.0, &mut out);
            out.push('"');
        }
        out
    }

    /// Parses the presentation form: quoted or bare character-strings separated by white
    /// space, `\X` and `\DDD` escapes, an optional `( ... )` group spanning lines, and
    /// `;` comments outside quotes (as in opendkim-genkey's `.txt` output).
    ///
    /// # Errors
    /// [`ParseError`] with the byte offset: an unclosed quote or group, a bad escape,
    /// or a character-string over 255 bytes.
    pub fn parse_presentation(input: &str) -> Result<Self, ParseError> {
        Self::parse_presentation_bytes(input.as_bytes())
    }

    /// [`TxtRecord::parse_presentation`] over raw bytes.
    ///
    /// # Errors
    /// As [`TxtRecord::parse_presentation`].
    pub fn parse_presentation_bytes(input: &[u8]) -> Result<Self, ParseError> {
        let mut strings = Vec::new();
        let mut i = 0;
        let mut depth = 0u32;
        let err = |at, kind| ParseError { at, kind };
        while i < input.len() {
            let b = input[i];
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'(' => {
                    if depth > 0 {
                        return Err(err(i, ParseErrorKind::Parentheses));
                    }
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err(err(i, ParseErrorKind::Parentheses));
                    }
                    depth -= 1;
                    i += 1;
                }
                b';' => {
                    while i < input.len() && input[i] != b'\n' {
                        i += 1;
                    }
                }
                b'"' => {
                    let start = i;
                    i += 1;
                    let mut buf = Vec::new();
                    loop {
                        let Some(&c) = input.get(i) else {
                            return Err(err(start, ParseErrorKind::UnterminatedQuote));
                        };
                        match c {
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\\' => {
                                let (byte, used) = unescape(input, i)?;
                                buf.push(byte);
                                i += used;
                            }
                            _ => {
                                buf.push(c);
                                i += 1;
                            }
                        }
                    }
                    if buf.len() > MAX_STRING {
                        return Err(err(start, ParseErrorKind::StringTooLong));
                    }
                    if let Some(&next) = input.get(i)
                        && !matches!(next, b' ' | b'\t' | b'\r' | b'\n' | b')' | b';')
                    {
                        return Err(err(i, ParseErrorKind::MissingSeparator));
                    }
                    strings.push(CharacterString(buf));
                }
                _ => {
                    let start = i;
                    let mut buf = Vec::new();
                    while let Some(&c) = input.get(i) {
                        match c {
                            b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';' => break,
                            b'"' => return Err(err(i, ParseErrorKind::MissingSeparator)),
                            b'\\' => {
                                let (byte, used) = unescape(input, i)?;
                                buf.push(byte);
                                i += used;
                            }
                            _ => {
                                buf.push(c);
                                i += 1;
                            }
                        }
                    }
                    if buf.len() > MAX_STRING {
                        return Err(err(start, ParseErrorKind::StringTooLong));
                    }
                    strings.push(CharacterString(buf));
                }
            }
        }
        if depth != 0 {
            return Err(err(input.len(), ParseErrorKind::Parentheses));
        }
        TxtRecord::from_strings(strings).ok_or(err(0, ParseErrorKind::Empty))
    }
}

/// Decodes the escape starting at `input[i] == b'\\'`; returns the byte and bytes consumed.
fn unescape(input: &[u8], i: usize) -> Result<(u8, usize), ParseError> {
    let Some(&c) = input.get(i + 1) else {
        return Err(ParseError {
            at: i,
            kind: ParseErrorKind::DanglingEscape,
        });
    };
    if c.is_ascii_digit() {
        let digits = input
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        let Some(d) = digits else {
            return Err(ParseError {
                at: i,
                kind: ParseErrorKind::BadDecimalEscape,
            });
        };
        let v = u32::from(d[0] - b'0') * 100 + u32::from(d[1] - b'0') * 10 + u32::from(d[2] - b'0');
        let byte = u8::try_from(v).map_err(|_| ParseError {
            at: i,
            kind: ParseErrorKind::BadDecimalEscape,
        })?;
        Ok((byte, 4))
    } else {
        Ok((c, 2))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl fmt::Display for TxtRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_presentation())
    }
}

impl fmt::Debug for TxtRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxtRecord({})", self.to_presentation())
    }
}

impl serde::Serialize for TxtRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_presentation())
    }
}

impl<'de> serde::Deserialize<'de> for TxtRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TxtRecord::parse_presentation(&s).map_err(serde::de::Error::custom)
    }
}

/// Which transport a DNS answer needs, by its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Fits a plain 512-byte UDP answer (RFC 1035 §4.2.1).
    Udp512,
    /// Needs EDNS0, fits the common 1232-byte buffer.
    Edns1232,
    /// Larger than 1232 bytes: resolvers will retry over TCP.
    Tcp,
}

impl Transport {
    /// Classifies a whole DNS message size in bytes.
    pub fn for_message_size(size: usize) -> Transport {
        if size <= 512 {
            Transport::Udp512
        } else if size <= 1232 {
            Transport::Edns1232
        } else {
            Transport::Tcp
        }
    }
}

/// Size in bytes of a DNS response answering `TXT? owner` with `records`, the
/// answer owner names compressed to a pointer, plus an OPT record when `edns`.
pub fn answer_size(owner_wire_len: usize, records: &[TxtRecord], edns: bool) -> usize {
    let header = 12;
    let question = owner_wire_len + 4;
    let answers: usize = records
        .iter()
        .map(|r| 2 + 2 + 2 + 4 + 2 + r.rdata_len())
        .sum();
    let opt = if edns { 11 } else { 0 };
    header + question + answers + opt
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn character_string_refuses_256() {
        assert!(CharacterString::new(vec![b'a'; 255]).is_ok());
        assert_eq!(
            CharacterString::new(vec![b'a'; 256]).unwrap_err(),
            TooLong { len: 256 }
        );
    }

    #[test]
    fn splits_greedily_and_joins_back() {
        for len in [0usize, 1, 254, 255, 256, 509, 510, 511, 764, 765, 766] {
            let v = vec![b'x'; len];
            let r = TxtRecord::from_value(&v);
            assert_eq!(r.value(), v, "len {len}");
            assert_eq!(r.strings().len(), len.div_ceil(255).max(1), "len {len}");
            assert!(r.strings().iter().all(|s| s.len() <= 255));
        }
    }

    #[test]
    fn splits_before_marker() {
        let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
        let r = TxtRecord::split(v.as_bytes(), Split::Before(b"p="));
        assert_eq!(r.strings()[0].as_bytes(), b"v=DKIM1; k=rsa; ");
        assert_eq!(r.strings()[1].len(), 255);
        assert_eq!(r.value(), v.as_bytes());
        // absent marker -> greedy
        let r = TxtRecord::split(&[b'a'; 300], Split::Before(b"p="));
        assert_eq!(r.strings()[0].len(), 255);
    }

    #[test]
    fn values_for_people_escape_control_and_non_ascii_bytes() {
        let r = TxtRecord::parse_presentation(r#""\027[31mRED\027[0m" "caf\195\169 a\\b \"q\"""#)
            .unwrap();
        assert_eq!(
            r.value_escaped(),
            r#"\027[31mRED\027[0mcaf\195\169 a\\b "q""#
        );
        assert!(!r.value_escaped().contains('\x1b'));
    }

    #[test]
    fn presentation_escapes() {
        let r = TxtRecord::from_value(b"a\"b\\c\x00\xff ;");
        assert_eq!(r.to_presentation(), r#""a\"b\\c\000\255 ;""#);
    }

    #[test]
    fn parses_opendkim_genkey_output() {
        let text = "( \"v=DKIM1; h=rsa-sha256; k=rsa; s=email; \"\n          \"p=MIGfMA0\" )  ; ----- DKIM key 201908 for example.com";
        let r = TxtRecord::parse_presentation(text).unwrap();
        assert_eq!(r.strings().len(), 2);
        assert_eq!(
            r.value_lossy(),
            "v=DKIM1; h=rsa-sha256; k=rsa; s=email; p=MIGfMA0"
        );
    }

    #[test]
    fn parses_bare_words_as_strings() {
        let r = TxtRecord::parse_presentation("v=spf1 -all").unwrap();
        assert_eq!(r.strings().len(), 2);
        assert_eq!(r.strings()[1].as_bytes(), b"-all");
    }

    #[test]
    fn parse_errors_carry_position() {
        let e = TxtRecord::parse_presentation("\"abc").unwrap_err();
        assert_eq!((e.at, e.kind), (0, ParseErrorKind::UnterminatedQuote));
        let e = TxtRecord::parse_presentation("\"a\"\"b\"").unwrap_err();
        assert_eq!((e.at, e.kind), (3, ParseErrorKind::MissingSeparator));
        let e = TxtRecord::parse_presentation("\"\\256\"").unwrap_err();
        assert_eq!((e.at, e.kind), (1, ParseErrorKind::BadDecimalEscape));
        let e = TxtRecord::parse_presentation("( \"a\"").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Parentheses);
        let e = TxtRecord::parse_presentation("  ").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Empty);
        let long = format!("\"{}\"", "a".repeat(256));
        let e = TxtRecord::parse_presentation(&long).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::StringTooLong);
        let e = TxtRecord::parse_presentation("\"a\\").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::DanglingEscape);
    }

    #[test]
    fn wire_sizes() {
        // 2048-bit DKIM value: ~410 bytes -> 2 strings -> rdata 412.
        let r = TxtRecord::from_value(vec![b'a'; 410]);
        assert_eq!(r.rdata_len(), 412);
        let owner = crate::Fqdn::parse("202611._domainkey.example.com").unwrap();
        let size = answer_size(owner.wire_len(), std::slice::from_ref(&r), true);
        assert_eq!(size, 12 + 31 + 4 + 12 + 412 + 11);
        assert_eq!(Transport::for_message_size(size), Transport::Udp512);
        assert_eq!(Transport::for_message_size(513), Transport::Edns1232);
        assert_eq!(Transport::for_message_size(1233), Transport::Tcp);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn parse_of_presentation_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let r = TxtRecord::from_value(&bytes);
            let text = r.to_presentation();
            let back = TxtRecord::parse_presentation(&text).unwrap();
            prop_assert_eq!(&back, &r);
            prop_assert_eq!(back.value(), bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = TxtRecord::parse_presentation_bytes(&bytes);
        }

        #[test]
        fn split_before_keeps_value(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let r = TxtRecord::split(&bytes, Split::Before(b"p="));
            prop_assert!(r.strings().iter().all(|s| s.len() <= 255));
            prop_assert_eq!(r.value(), bytes);
        }
    }

    #[test]
    fn require_quoted_accepts_only_quoted_strings() {
        for ok in [r#""a""#, r#""a" "b""#, r#"  "x\"y"  "#, r#""" "\255""#] {
            assert_eq!(require_quoted(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, kind, at) in [
            ("abc", ParseErrorKind::Unquoted, 0),
            (r#""a" b"#, ParseErrorKind::Unquoted, 4),
            (r#"("a")"#, ParseErrorKind::Unquoted, 0),
            (r#""a" ; c"#, ParseErrorKind::Unquoted, 4),
            (r#""a"#, ParseErrorKind::UnterminatedQuote, 0),
            (r#""a\"#, ParseErrorKind::DanglingEscape, 2),
            (r#""a""b""#, ParseErrorKind::MissingSeparator, 3),
            ("  ", ParseErrorKind::Empty, 0),
        ] {
            assert_eq!(
                require_quoted(bad.as_bytes()),
                Err(ParseError { at, kind }),
                "{bad}"
            );
        }
    }
}

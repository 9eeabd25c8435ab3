//! Loading a configuration with many domains in pieces, so that its memory
//! follows one piece, not the file.
//!
//! `toml::from_str` holds the whole document three times over while it reads
//! it (every token, then the document tree, then the typed shapes): 40 MB of
//! heap for a 2 MB file of 10,000 domains, most of a `publish` run's peak RSS.
//! Here the `[domains."..."]` tables are read [`PER_PIECE`] at a time, each
//! domain validated as its piece is read, and the rest of the file once with
//! the domain tables blanked out (same byte offsets, so every line number is
//! the one of the whole file).
//!
//! It is only a faster road to the same [`Config`]: any shape it does not
//! handle exactly (a `[domains]` table, a domain's subtable away from its
//! table, `domains.x.key = ...` written elsewhere, a domain twice), any TOML
//! error and any validation problem return `None`, and [`super::parse`] then
//! reads the whole document as before, so every error and its file:line:key
//! are the ones the whole-document reading reports.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml_parser::Source;
use toml_parser::lexer::TokenKind;

use super::schema::{Raw, RawDkim, RawDomain, RawLint};
use super::validate::Validator;
use super::{Config, Domain};

/// How many domain tables one piece holds (a piece of 256 domains is about
/// 1 MB of heap while it is read).
pub(super) const PER_PIECE: usize = 256;

/// The domain tables of one piece.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Piece {
    #[serde(default)]
    domains: BTreeMap<Spanned<String>, Spanned<RawDomain>>,
}

/// A table header of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// Byte offset of its `[`.
    start: usize,
    /// `[domains.X...]`: part of a domain's tables.
    domain: bool,
    /// `[domains.X]` exactly (one dot): a domain's own table, where a piece
    /// may start.
    opens: bool,
}

/// The document's table headers, in order; `None` when a header under
/// `domains` has a shape [`parse`] leaves to the whole-document reading
/// (`[domains]`, `[[domains...]]`).
fn headers(text: &str) -> Option<Vec<Header>> {
    let mut out = Vec::new();
    // Brackets and braces open in values: a `[` first on its line inside a
    // multi-line array is a value, not a header.
    let mut depth = 0usize;
    let mut line_start = true;
    let mut tokens = Source::new(text).lex();
    while let Some(t) = tokens.next() {
        match t.kind() {
            TokenKind::Newline => {
                if depth == 0 {
                    line_start = true;
                }
            }
            TokenKind::Whitespace | TokenKind::Comment => {}
            TokenKind::Eof => break,
            TokenKind::LeftSquareBracket if depth == 0 && line_start => {
                let start = t.span().start();
                let mut array = false;
                let mut first: Option<&str> = None;
                let mut dots = 0usize;
                let mut closed = false;
                for t in tokens.by_ref() {
                    let kind = t.kind();
                    match kind {
                        TokenKind::Newline | TokenKind::Eof => break,
                        TokenKind::Whitespace | TokenKind::Comment => {}
                        _ if closed => {}
                        TokenKind::LeftSquareBracket if first.is_none() && !array => array = true,
                        TokenKind::RightSquareBracket => closed = true,
                        TokenKind::Dot => dots += 1,
                        _ => {
                            if first.is_none() {
                                let (s, e) = (t.span().start(), t.span().end());
                                first = Some(text.get(s..e).unwrap_or_default());
                            }
                        }
                    }
                }
                line_start = true;
                // A quoted `"domains"` stays in the rest of the document,
                // whose reading then finds domains in it and gives up.
                let domain = first == Some("domains");
                if domain && (array || dots == 0) {
                    return None;
                }
                out.push(Header {
                    start,
                    domain,
                    opens: domain && dots == 1,
                });
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                depth += 1;
                line_start = false;
            }
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.saturating_sub(1);
                line_start = false;
            }
            _ => line_start = false,
        }
    }
    Some(out)
}

/// The document split: the rest (domain tables blanked, same length) and
/// the byte ranges of the pieces of domain tables, in order.
struct Split {
    rest: String,
    pieces: Vec<std::ops::Range<usize>>,
    /// Domain tables (`[domains.X]`) in the pieces.
    domains: usize,
}

/// Splits `text` into pieces of at most `per_piece` domains; `None` when it
/// has fewer than two pieces' worth (read whole, as always) or a shape left
/// to the whole-document reading.
fn split(text: &str, per_piece: usize) -> Option<Split> {
    let headers = headers(text)?;
    let domains = headers.iter().filter(|h| h.opens).count();
    if domains <= per_piece {
        return None;
    }
    let mut pieces: Vec<std::ops::Range<usize>> = Vec::new();
    // Domains in the piece being built; false: the last section was not a
    // domain's (a new piece starts at the next domain table).
    let mut in_piece = 0usize;
    let mut open = false;
    for (i, h) in headers.iter().enumerate() {
        let end = headers.get(i + 1).map_or(text.len(), |n| n.start);
        if !h.domain {
            open = false;
            continue;
        }
        let new = !open || (h.opens && in_piece >= per_piece);
        match pieces.last_mut() {
            Some(p) if !new => p.end = end,
            _ => {
                pieces.push(h.start..end);
                in_piece = 0;
            }
        }
        open = true;
        if h.opens {
            in_piece += 1;
        }
    }
    // The pieces that run to the end of the file (domains usually come
    // last) are left out of the rest: no offset before them moves, and the
    // TOML reader reserves room for a token per 3.5 bytes of what it reads.
    let mut tail = text.len();
    for p in pieces.iter().rev() {
        if p.end != tail {
            break;
        }
        tail = p.start;
    }
    let mut rest = text.as_bytes()[..tail].to_vec();
    for p in pieces.iter().filter(|p| p.end <= tail) {
        blank(&mut rest[p.clone()]);
    }
    // Pieces start at a `[` and end at one or at the end: whole characters
    // are blanked, so this is UTF-8.
    let rest = String::from_utf8(rest).ok()?;
    Some(Split {
        rest,
        pieces,
        domains,
    })
}

/// Blanks out a piece, which starts at a table header's `[` (first on its
/// line) and ends at the next header's `[` or at the end of the file: the
/// same number of bytes, as one comment up to the piece's last line break,
/// which stays with the next header's indent after it (a last piece that
/// ends within a line is all comment). (Spaces and line breaks kept as they
/// were cost the reading of the rest a token per line: 17 MB of heap for
/// 10,000 domains, the peak of a whole run.)
fn blank(piece: &mut [u8]) {
    let upto = match piece.iter().rposition(|&b| b == b'\n') {
        // What follows the last line break is the next header's indent, or
        // (last in the file) part of the piece.
        Some(n) if piece[n + 1..].iter().any(|&b| b != b' ' && b != b'\t') => piece.len(),
        // A comment cannot hold the `\r` of a CRLF line break.
        Some(n) if n > 0 && piece[n - 1] == b'\r' => n - 1,
        Some(n) => n,
        None => piece.len(),
    };
    if let Some((first, rest)) = piece[..upto].split_first_mut() {
        *first = b'#';
        rest.fill(b' ');
    }
}

/// Reads and validates `text` in pieces; `None` when it has few domains, a
/// shape, a TOML error or a problem that [`super::parse`]'s whole-document
/// reading must report (it then reads it whole).
pub(super) fn parse(text: &str, path: &Path, per_piece: usize) -> Option<Config> {
    let split = split(text, per_piece)?;
    let rest: Raw = toml::from_str(&split.rest).ok()?;
    drop(split.rest);
    if !rest.domains.is_empty() {
        return None;
    }
    let mut v = Validator::new(text, path);
    // Exactly as many as there are domain tables (a `Domain` is large).
    let mut domains: Vec<Domain> = Vec::with_capacity(split.domains);
    for range in split.pieces {
        let start = range.start;
        let piece: Piece = toml::from_str(text.get(range)?).ok()?;
        for (name, d) in piece.domains {
            let (name, d) = (name.shift(start), d.shift(start));
            domains.push(v.domain(&name, &d, &rest.accounts)?);
        }
        if !v.errors.is_empty() {
            return None;
        }
    }
    // In the order of the whole-document reading (its map's: by name as
    // written). The key is `domains."NAME"`: ordered as the names are, as
    // no valid name holds a character below `"`. A name in two pieces is
    // that reading's error to report.
    domains.sort_unstable_by(|a, b| a.source.key.cmp(&b.source.key));
    if domains
        .windows(2)
        .any(|w| w[0].source.key == w[1].source.key)
    {
        return None;
    }
    let config = v.config_with(rest, Some(domains));
    v.errors.is_empty().then_some(config)
}

/// Moves every span of a piece's shapes by the piece's offset in the file.
trait Shift {
    fn shift(self, by: usize) -> Self;
}

impl<T: Shift> Shift for Spanned<T> {
    fn shift(self, by: usize) -> Self {
        let span = self.span();
        Spanned::new(span.start + by..span.end + by, self.into_inner().shift(by))
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(self, by: usize) -> Self {
        self.map(|v| v.shift(by))
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(self, by: usize) -> Self {
        self.into_iter().map(|v| v.shift(by)).collect()
    }
}

macro_rules! unspanned {
    ($($t:ty),*) => {$(
        impl Shift for $t {
            fn shift(self, _: usize) -> Self {
                self
            }
        }
    )*};
}
unspanned!(String, i64, bool);

impl Shift for RawDomain {
    fn shift(self, by: usize) -> Self {
        RawDomain {
            account: self.account.shift(by),
            zone: self.zone.shift(by),
            ttl: self.ttl.shift(by),
            nameservers: self.nameservers.shift(by),
            spf: self.spf.shift(by),
            dmarc: self.dmarc.shift(by),
            adsp: self.adsp.shift(by),
            dkim: self.dkim.shift(by),
            lint: self.lint.shift(by),
        }
    }
}

impl Shift for RawDkim {
    fn shift(self, by: usize) -> Self {
        RawDkim {
            algorithms: self.algorithms.shift(by),
            bits: self.bits.shift(by),
            selector_format: self.selector_format.shift(by),
            rotation_interval: self.rotation_interval.shift(by),
            overlap: self.overlap.shift(by),
            min_overlap: self.min_overlap.shift(by),
            retire: self.retire.shift(by),
            publish_retired_private_keys: self.publish_retired_private_keys,
            testing: self.testing,
        }
    }
}

impl Shift for RawLint {
    fn shift(self, by: usize) -> Self {
        RawLint {
            allow: self.allow.shift(by),
            reason: self.reason.shift(by),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DomainSource;

    const PATH: &str = "/etc/maildns/maildns.toml";

    /// The configuration read in pieces of `per_piece` domains, and read
    /// whole: the same, down to every line number.
    fn same(text: &str, per_piece: usize) -> Config {
        let path = Path::new(PATH);
        let pieces = parse(text, path, per_piece).expect("read in pieces");
        let whole = super::super::parse_whole(text, path).expect("read whole");
        assert_eq!(format!("{pieces:?}"), format!("{whole:?}"));
        pieces
    }

    fn domain(i: usize) -> String {
        format!(
            "[domains.\"d{i:03}.example\"]\naccount = \"a\"\nspf = \"v=spf1 -all\"\ndmarc = \"v=DMARC1; p=none\"\n"
        )
    }

    #[test]
    fn pieces_read_the_same_configuration_as_the_whole_file() {
        let mut text = String::from(
            "# comment [domains.\"x\"]\nstate_dir = \"state\"\n[accounts.a]\nprovider = \"zonefile\"\npath = \"z.db\"\n",
        );
        for i in (0..9).rev() {
            text.push_str(&domain(i));
            if i == 5 {
                // A subtable, a multi-line array whose lines start with `[`,
                // a multi-line string holding a header, then another table
                // between the domains.
                text.push_str("nameservers = [\n\"192.0.2.1\",\n\"192.0.2.2:5353\" ]\n");
                text.push_str("[domains.\"d005.example\".lint]\nallow = [\n  \"spf-ptr\",\n]\n");
                text.push_str(
                    "reason = \"\"\"\n[domains.\"evil.example\"]\naccount = \"a\"\n\"\"\"\n",
                );
                text.push_str("[propagation]\nresolvers = [\n\"192.0.2.53\",\n]\n");
            }
            if i == 3 {
                text.push_str("[domains.'d003.example'.dkim]\nbits = 1024\ntesting = true\n");
            }
        }
        text.push_str("[publish]\nmax_delete_share = 0.25\n");
        for per_piece in [1, 2, 4] {
            let split = split(&text, per_piece).expect("split");
            // A section after the last domain: the rest is the whole length.
            assert_eq!(split.rest.len(), text.len());
        }
        let c = same(&text, 2);
        assert_eq!(c.domains.len(), 9);
        assert_eq!(c.domains[0].name.as_str(), "d000.example");
        assert_eq!(c.publish.max_delete_share, 0.25);
        let d5 = &c.domains[5];
        assert_eq!(d5.nameservers.len(), 2);
        let lint = d5.lint.as_deref().expect("a waiver");
        assert_eq!(lint.allow, ["spf-ptr"]);
        assert!(lint.reason.contains("evil.example"));
        assert!(c.domains[3].dkim.is_some());
        let line = text.lines().position(|l| l == "[domains.\"d002.example\"]");
        assert_eq!(
            DomainSource::at(c.domains[2].source.line),
            line.map(|l| l + 1)
        );
        assert!(same(&text, 1).domains[3].dkim.as_ref().unwrap().testing);
    }

    #[test]
    fn a_bracket_first_on_a_line_of_a_value_is_no_header() {
        let text = "a = [\n[1],\n  [2, [3,\n[4]]],\n]\nb = { c = [\n[5]] }\n[t]\n[[u]]\n[domains.\"x\".dkim]\n";
        let starts: Vec<usize> = headers(text).unwrap().iter().map(|h| h.start).collect();
        let want: Vec<usize> = ["[t]", "[[u]]", "[domains"]
            .iter()
            .map(|h| text.find(h).unwrap())
            .collect();
        assert_eq!(starts, want);
        let h = headers(text).unwrap();
        assert_eq!((h[2].domain, h[2].opens), (true, false));
    }

    #[test]
    fn few_domains_and_other_shapes_are_read_whole() {
        let head = "[accounts.a]\nprovider = \"zonefile\"\npath = \"z.db\"\n";
        let many: String = (0..4).map(domain).collect();
        let path = Path::new(PATH);
        // No more domains than one piece holds.
        assert!(parse(&format!("{head}{many}"), path, 4).is_none());
        assert!(parse(&format!("{head}{many}"), path, 3).is_some());
        // Shapes left to the whole reading, each still read the same by `parse`.
        for text in [
            format!("{head}[domains]\n\"x.example\" = {{ account = \"a\" }}\n{many}"),
            format!("{head}{many}[[domains.list]]\nx = 1\n"),
            format!("{head}domains.\"x.example\".account = \"a\"\n{many}"),
            format!("{head}{many}[domains.\"d000.example\".dkim]\nbits = 1024\n"),
        ] {
            assert!(parse(&text, path, 1).is_none(), "{text}");
            let read = super::super::parse(&text, path).map(|c| c.domains.len());
            let whole = super::super::parse_whole(&text, path).map(|c| c.domains.len());
            assert_eq!(read, whole, "{text}");
        }
    }

    #[test]
    fn problems_are_reported_as_the_whole_reading_reports_them() {
        let head = "[accounts.a]\nprovider = \"zonefile\"\npath = \"z.db\"\n";
        let many: String = (0..4).map(domain).collect();
        let path = Path::new(PATH);
        for text in [
            // The same domain in two pieces.
            format!("{head}{many}{}", domain(0)),
            // A validation problem (line 9: the second domain's spf).
            format!("{head}{}", many.replacen("v=spf1 -all", "v=spf1 bogus", 2)),
            // A TOML error, and an unknown key.
            format!("{head}{many}[domains.\"x.example\"]\naccount = \n"),
            format!("{head}{many}[domains.\"x.example\"]\naccount = \"a\"\nspff = \"\"\n"),
            // An unknown account.
            format!("{head}{many}").replace("account = \"a\"", "account = \"b\""),
        ] {
            assert!(parse(&text, path, 1).is_none(), "{text}");
            let e = super::super::parse(&text, path).unwrap_err();
            assert_eq!(e, super::super::parse_whole(&text, path).unwrap_err());
            assert!(e.0[0].line.is_some(), "{e}");
        }
    }

    #[test]
    fn a_blanked_piece_is_one_comment_of_the_same_length() {
        for (piece, want) in [
            ("[d]\na = 1\n", "#        \n"),
            ("[d]\r\na = 1\r\n\t ", "#         \r\n\t "),
            ("[d]\na = \"\u{e9}\"", "#           "),
            ("[d]", "#  "),
        ] {
            let mut bytes = piece.as_bytes().to_vec();
            blank(&mut bytes);
            assert_eq!(String::from_utf8(bytes).unwrap(), want, "{piece:?}");
        }
    }

    #[test]
    fn crlf_indented_headers_and_no_final_line_break_read_as_the_whole_file() {
        let mut text =
            String::from("[accounts.a]\r\nprovider = \"zonefile\"\r\npath = \"z.db\"\r\n");
        for i in 0..5 {
            text.push_str(
                &domain(i)
                    .replace('\n', "\r\n")
                    .replace("[domains", "  [domains"),
            );
            if i == 2 {
                text.push_str("[publish]\r\nmax_delete_share = 0.5\r\n");
            }
        }
        text.push_str("[domains.\"last.example\"]\r\naccount = \"a\"\r\nspf = \"v=spf1 -all\"");
        // The domains after `[publish]` run to the end: left out of the rest.
        let rest = split(&text, 2).expect("split").rest;
        assert_eq!(rest.len(), text.find("[domains.\"d003").unwrap());
        let c = same(&text, 2);
        assert_eq!(c.domains.len(), 6);
        assert_eq!(c.publish.max_delete_share, 0.5);
        let line = text.lines().position(|l| l.starts_with("[domains.\"last"));
        assert_eq!(
            DomainSource::at(c.domains[5].source.line),
            line.map(|l| l + 1)
        );
    }
}

//! The master-file reader: RFC 1035 §5.1 text as BIND 9 reads it.
//!
//! Why not `hickory_proto::serialize::txt::Parser` (hickory-proto 0.26, already a
//! dependency): it returns only a map of RRsets, with no file and line per record, so
//! neither `file:line` errors nor the line-preserving edits of the writer can be built
//! on it; it refuses `$INCLUDE file origin` ("Domain name for $INCLUDE is not
//! supported"); its lexer is crate-private; and its `Name::parse` reads `\DDD` as
//! octal where RFC 1035 §5.1 (and BIND) read decimal (`\046` is `.`, hickory makes it
//! `&`). So this reader is our own. What it follows, checked against
//! `named-checkzone` 9.18:
//!
//! - owner names: `@`, relative (the current `$ORIGIN` appended) and absolute (ending
//!   in `.`), escaped labels (`\.`, `\DDD` decimal), wildcards (`*` is an ordinary
//!   label here), case-insensitive; a blank owner field (line starting with white
//!   space) repeats the previous owner;
//! - `$ORIGIN`, `$TTL`, `$INCLUDE file [origin]` (followed; the origin is restored
//!   after it, `$TTL` set inside it stays, as in BIND); `$GENERATE` and unknown
//!   directives are refused;
//! - TTL and class in either order, TTL units (`1h30m`), the RFC 1035 TTL rules BIND
//!   applies without `$TTL` (the last explicit TTL; an SOA without a TTL gives its
//!   MINIMUM as the default);
//! - parentheses across lines, `;` comments (not inside quoted strings), escapes in
//!   quoted and unquoted strings, `"a"b` as two character-strings, RFC 3597 `\#`
//!   generic data for TXT.
//!
//! Every error names the file (when there is one) and the 1-based line.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Fqdn, TxtRecord, txt::CharacterString};

pub(super) use super::lexer::parse_ttl;
use super::lexer::{Token, is_class, is_type_mnemonic, lex};
pub use super::owner::OwnerName;

/// Deepest `$INCLUDE` nesting followed.
const MAX_INCLUDE_DEPTH: usize = 16;

/// A master-file error: where (file, 1-based line) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneParseError {
    /// The file the line is in; `None` for text read without a file.
    pub file: Option<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ZoneParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}:{}: {}", p.display(), self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for ZoneParseError {}

/// One resource record as read, with where it came from.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Index into [`Read::files`] (0: the file or text read).
    pub(super) file: usize,
    /// First and last 0-based line in that file.
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) owner: OwnerName,
    pub(super) owner_explicit: bool,
    /// Upper-case type mnemonic (`TYPE16` is read as `TXT`).
    pub(super) rtype: String,
    /// The TTL BIND gives the record.
    pub(super) ttl: u32,
    pub(super) rdata: Vec<Token>,
    /// The TXT data, for TXT records.
    pub(super) txt: Option<TxtRecord>,
}

/// Everything read from a zone file and the files it includes.
#[derive(Debug, Clone)]
pub(super) struct Read {
    /// The files read: 0 is the main file (`None` path when reading text alone).
    pub(super) files: Vec<Option<PathBuf>>,
    /// Records in reading order (included files' records where the `$INCLUDE` is).
    pub(super) entries: Vec<Entry>,
    /// The origin in effect before each line of the main file.
    pub(super) origin_at: Vec<OwnerName>,
    /// The origin at the end of the main file.
    pub(super) final_origin: OwnerName,
}

struct Reader {
    files: Vec<Option<PathBuf>>,
    /// Directory relative `$INCLUDE` paths are taken from; `None`: `$INCLUDE` refused.
    base: Option<PathBuf>,
    entries: Vec<Entry>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    origin_at: Vec<OwnerName>,
    /// Canonical paths of the files being read (include loop detection).
    stack: Vec<PathBuf>,
    /// BIND's batch: the owner of the records read in a row, as written (case
    /// kept), and the TTL each type got first in it (a later record of that
    /// type in the batch gets that TTL).
    run: Option<(OwnerName, Vec<(String, u32)>)>,
}

/// Reads zone text (the main file, at `path` when it has one) for zone `zone`.
pub(super) fn read(text: &str, zone: &Fqdn, path: Option<&Path>) -> Result<Read, ZoneParseError> {
    let mut r = Reader {
        files: vec![path.map(Path::to_path_buf)],
        base: path.map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }),
        entries: Vec::new(),
        default_ttl: None,
        last_ttl: None,
        origin_at: Vec::new(),
        stack: path
            .and_then(|p| std::fs::canonicalize(p).ok())
            .into_iter()
            .collect(),
        run: None,
    };
    let origin = OwnerName::from_fqdn(zone);
    let (final_origin, _) = r.read_file(0, text, origin, None, 0)?;
    Ok(Read {
        files: r.files,
        entries: r.entries,
        origin_at: r.origin_at,
        final_origin,
    })
}

/// Text of a file, or an error naming the line of its first byte that is not UTF-8.
pub(super) fn utf8_text(bytes: Vec<u8>, file: Option<&Path>) -> Result<String, ZoneParseError> {
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ZoneParseError {
            file: file.map(Path::to_path_buf),
            line: good.iter().filter(|b| **b == b'\n').count() + 1,
            message: "not UTF-8 text (this reader takes UTF-8 zone files)".into(),
        }
    })
}

impl Reader {
    /// Reads one file; returns its final origin and its last owner.
    fn read_file(
        &mut self,
        file: usize,
        text: &str,
        mut origin: OwnerName,
        mut last_owner: Option<(OwnerName, OwnerName)>,
        depth: usize,
    ) -> Result<(OwnerName, Option<(OwnerName, OwnerName)>), ZoneParseError> {
        let path = self.files[file].clone();
        let err = |line: usize, message: String| ZoneParseError {
            file: path.clone(),
            line: line + 1,
            message,
        };
        let body = text.strip_suffix('\n').unwrap_or(text);
        let line_count = if body.is_empty() && !text.ends_with('\n') {
            0
        } else {
            body.split('\n').count()
        };
        let logicals = lex(body).map_err(|(l, m)| err(l, m))?;
        for lg in logicals {
            if file == 0 {
                while self.origin_at.len() <= lg.last {
                    self.origin_at.push(origin.clone());
                }
            }
            let toks = &lg.tokens;
            let head = &toks[0];
            if !lg.blank_owner && !head.quoted && head.text.starts_with('$') {
                let arg = |i: usize, what: &str| {
                    toks.get(i)
                        .ok_or_else(|| err(lg.first, format!("{} needs {what}", head.text)))
                };
                let at_most = |n: usize| {
                    if toks.len() > n {
                        Err(err(
                            toks[n].line,
                            format!("unexpected '{}' after {}", toks[n].text, head.text),
                        ))
                    } else {
                        Ok(())
                    }
                };
                match head.text.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let a = arg(1, "a domain name")?;
                        at_most(2)?;
                        if a.quoted {
                            return Err(err(a.line, format!("bad $ORIGIN {}", a.text)));
                        }
                        origin = OwnerName::parse(&a.text, &origin)
                            .map_err(|m| err(a.line, format!("bad $ORIGIN: {m}")))?;
                    }
                    "$TTL" => {
                        let a = arg(1, "a time value")?;
                        at_most(2)?;
                        let t = parse_ttl(&a.text)
                            .ok_or_else(|| err(a.line, format!("bad $TTL '{}'", a.text)))?;
                        self.default_ttl = Some(t);
                    }
                    "$INCLUDE" => {
                        let a = arg(1, "a file name")?;
                        at_most(3)?;
                        let inc_origin = match toks.get(2) {
                            Some(o) => OwnerName::parse(&o.text, &origin)
                                .map_err(|m| err(o.line, format!("bad $INCLUDE origin: {m}")))?,
                            None => origin.clone(),
                        };
                        let name = if a.quoted {
                            a.text[1..a.text.len() - 1].to_string()
                        } else {
                            a.text.clone()
                        };
                        // An $INCLUDE ends BIND's batch, before and after.
                        self.run = None;
                        self.include(&name, inc_origin, last_owner.clone(), depth)
                            .map_err(|m| err(a.line, m))??;
                        self.run = None;
                    }
                    "$GENERATE" => {
                        return Err(err(
                            lg.first,
                            "$GENERATE is not supported: the reader cannot tell which records it makes; write them out, or keep the managed TXT records in a file without it".into(),
                        ));
                    }
                    other => {
                        return Err(err(lg.first, format!("unknown directive {other}")));
                    }
                }
                continue;
            }
            let mut idx = 0;
            let (owner, written) = if lg.blank_owner {
                last_owner.clone().ok_or_else(|| {
                    err(
                        lg.first,
                        "record with a blank owner name and no previous owner".into(),
                    )
                })?
            } else {
                idx = 1;
                // BIND takes a quoted owner's text as written between the quotes
                // (escapes still apply; `;` and spaces are part of the label).
                let text = if head.quoted {
                    &head.text[1..head.text.len() - 1]
                } else {
                    head.text.as_str()
                };
                let bad = |m| err(lg.first, format!("bad owner name: {m}"));
                (
                    OwnerName::parse(text, &origin).map_err(bad)?,
                    OwnerName::parse_as_written(text, &origin).map_err(bad)?,
                )
            };
            let mut ttl = None;
            let mut class = None;
            while let Some(t) = toks.get(idx).filter(|t| !t.quoted) {
                if class.is_none() && is_class(&t.text) {
                    class = Some(t.text.to_ascii_uppercase());
                    idx += 1;
                } else if ttl.is_none() && t.text.as_bytes().first().is_some_and(u8::is_ascii_digit)
                {
                    ttl = Some(
                        parse_ttl(&t.text)
                            .ok_or_else(|| err(t.line, format!("bad TTL '{}'", t.text)))?,
                    );
                    idx += 1;
                } else {
                    break;
                }
            }
            if let Some(c) = class.as_deref()
                && c != "IN"
                && c != "CLASS1"
            {
                return Err(err(
                    lg.first,
                    format!("class {c} is not the zone's class IN"),
                ));
            }
            let type_tok = toks
                .get(idx)
                .ok_or_else(|| err(lg.last, "record without a type".into()))?;
            if type_tok.quoted || !is_type_mnemonic(&type_tok.text) {
                return Err(err(
                    type_tok.line,
                    format!("'{}' is not a record type", type_tok.text),
                ));
            }
            let mut rtype = type_tok.text.to_ascii_uppercase();
            if rtype == "TYPE16" {
                rtype = "TXT".into();
            }
            let rdata = toks[idx + 1..].to_vec();
            if rdata.is_empty() && rtype != "APL" {
                return Err(err(lg.last, format!("{rtype} record without data")));
            }
            let ttl = match ttl {
                Some(t) => {
                    self.last_ttl = Some(t);
                    t
                }
                None => match (self.default_ttl, self.last_ttl) {
                    (Some(t), _) | (None, Some(t)) => t,
                    (None, None) => {
                        // BIND: an SOA without a TTL takes its MINIMUM, which then
                        // serves as the default.
                        let min = (rtype == "SOA")
                            .then(|| rdata.get(6).and_then(|t| parse_ttl(&t.text)))
                            .flatten()
                            .ok_or_else(|| {
                                err(
                                    lg.first,
                                    "no TTL: the file has no $TTL and no earlier record gives one"
                                        .into(),
                                )
                            })?;
                        self.default_ttl = Some(min);
                        min
                    }
                },
            };
            // BIND reads records in batches of one owner name; within a batch, a
            // record whose TTL differs from its RRset's first one gets that TTL
            // ("TTL set to prior TTL"), which also becomes the TTL carried on.
            // Across batches the last batch's TTL wins (see `txt_set`).
            if self.run.as_ref().is_none_or(|(o, _)| *o != written) {
                self.run = Some((written.clone(), Vec::new()));
            }
            let mut ttl = ttl;
            if let Some((_, types)) = self.run.as_mut() {
                match types.iter().find(|(t, _)| *t == rtype) {
                    Some((_, prior)) if *prior != ttl => {
                        ttl = *prior;
                        self.last_ttl = Some(ttl);
                    }
                    Some(_) => {}
                    None => types.push((rtype.clone(), ttl)),
                }
            }
            let txt = if rtype == "TXT" {
                Some(txt_rdata(&rdata).map_err(|m| err(lg.first, m))?)
            } else {
                None
            };
            last_owner = Some((owner.clone(), written));
            self.entries.push(Entry {
                file,
                first: lg.first,
                last: lg.last,
                owner,
                owner_explicit: !lg.blank_owner,
                rtype,
                ttl,
                rdata,
                txt,
            });
        }
        if file == 0 {
            while self.origin_at.len() < line_count {
                self.origin_at.push(origin.clone());
            }
        }
        Ok((origin, last_owner))
    }

    /// Follows an `$INCLUDE`. The outer error is about the directive itself (bad
    /// path, loop, unreadable file); the inner one comes from the included file.
    fn include(
        &mut self,
        name: &str,
        origin: OwnerName,
        last_owner: Option<(OwnerName, OwnerName)>,
        depth: usize,
    ) -> Result<Result<(), ZoneParseError>, String> {
        let Some(base) = &self.base else {
            return Err("$INCLUDE is not followed when reading text without a file".into());
        };
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(format!(
                "$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep"
            ));
        }
        let p = Path::new(name);
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        };
        let bytes =
            std::fs::read(&path).map_err(|e| format!("$INCLUDE {}: {e}", path.display()))?;
        let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.stack.contains(&canon) {
            return Err(format!("$INCLUDE {} includes itself", path.display()));
        }
        let text = match utf8_text(bytes, Some(&path)) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        self.files.push(Some(path));
        let idx = self.files.len() - 1;
        self.stack.push(canon);
        let r = self.read_file(idx, &text, origin, last_owner, depth + 1);
        self.stack.pop();
        Ok(r.map(|_| ()))
    }
}

/// Decodes TXT rdata tokens: character-strings, or RFC 3597 `\# len hex`.
fn txt_rdata(rdata: &[Token]) -> Result<TxtRecord, String> {
    // BIND reads `\#` as generic data only when a length follows; else as text.
    if let Some(first) = rdata.first()
        && !first.quoted
        && first.text == "\\#"
        && rdata
            .get(1)
            .is_some_and(|t| !t.quoted && t.text.parse::<usize>().is_ok())
    {
        let len: usize = rdata
            .get(1)
            .and_then(|t| t.text.parse().ok())
            .ok_or("bad TXT data: \\# needs a length")?;
        let hex: String = rdata[2..].iter().map(|t| t.text.as_str()).collect();
        let wire = decode_hex(&hex).ok_or("bad TXT data: \\# data is not hex")?;
        if wire.len() != len {
            return Err(format!(
                "bad TXT data: \\# says {len} bytes, the data has {}",
                wire.len()
            ));
        }
        let mut strings = Vec::new();
        let mut rest = wire.as_slice();
        while let Some((&n, tail)) = rest.split_first() {
            let n = usize::from(n);
            let s = tail
                .get(..n)
                .ok_or("bad TXT data: a character-string runs past the end")?;
            strings.push(
                CharacterString::new(s.to_vec()).map_err(|_| "bad TXT data: string too long")?,
            );
            rest = &tail[n..];
        }
        return TxtRecord::from_strings(strings).ok_or_else(|| "bad TXT data: empty".into());
    }
    let joined: Vec<&str> = rdata.iter().map(|t| t.text.as_str()).collect();
    TxtRecord::parse_presentation(&joined.join(" ")).map_err(|e| format!("bad TXT data: {e}"))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            let hi = char::from(p[0]).to_digit(16)?;
            let lo = char::from(p[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// One resource record read from zone text: owner, TTL, type and data, and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// The owner name, absolute.
    pub owner: OwnerName,
    /// TTL in seconds, as BIND gives it (explicit, `$TTL`, or RFC 1035 rules)
    /// within its batch (the records of one owner name, as written, read in a
    /// row): a record whose TTL differs from the first of its type in the batch
    /// gets that first one's. An RRset written in several batches has ONE TTL
    /// once loaded (RFC 2181 §5.2), the last batch's; the records here keep
    /// their batch's TTL.
    pub ttl: u32,
    /// Upper-case type mnemonic, e.g. `TXT`.
    pub rtype: String,
    /// The data tokens as written, joined by one space.
    pub rdata: String,
    /// The decoded character-strings of a TXT record.
    pub txt: Option<TxtRecord>,
    /// First line of the record (1-based).
    pub line: usize,
}

/// Reads zone text for zone `origin` (the initial `$ORIGIN`) into its records.
///
/// The public parse entry point (fuzzed): never panics. `$INCLUDE` is refused here
/// (text alone has no directory to take files from); the zone-file provider follows it.
///
/// # Errors
/// The first line that BIND would not load or that this reader cannot read
/// (`$GENERATE`, unknown directives, bad names, bad TTLs, unbalanced parentheses or
/// quotes, bad TXT data), as a [`ZoneParseError`] with its 1-based line.
pub fn read_records(text: &str, origin: &Fqdn) -> Result<Vec<ZoneRecord>, ZoneParseError> {
    let r = read(text, origin, None)?;
    Ok(r.entries
        .into_iter()
        .map(|e| ZoneRecord {
            owner: e.owner,
            ttl: e.ttl,
            rtype: e.rtype,
            rdata: e
                .rdata
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            txt: e.txt,
            line: e.first + 1,
        })
        .collect())
}

//! The zone-file target: the embedded default that needs no server and no account.
//!
//! Merges maildns's TXT sets into an RFC 1035 master file (a whole zone or a
//! fragment that a zone `$INCLUDE`s) for BIND, NSD and Knot users and for DNS hosts
//! without an API. Every line maildns does not change is kept byte for byte; when
//! the file holds the zone's SOA (maildns owns the whole file), its serial is bumped.
//! Writes are atomic (temporary file, fsync, rename) and keep the file's mode.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use crate::{Error, ErrorKind, Fqdn, Operation, Profile, Provider, TxtRecord, TxtSet, Zone};

/// Where the zone file is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The zone (or fragment) file.
    pub path: PathBuf,
    /// The zone apex the file belongs to.
    pub zone: Fqdn,
    /// TTL for new records when the file has no `$TTL`.
    pub default_ttl: u32,
    /// Bump the SOA serial when the file holds the zone's SOA.
    pub bump_serial: bool,
}

/// A zone file as a [`Provider`].
#[derive(Debug)]
pub struct ZoneFile {
    config: Config,
    profile: Profile,
    lock: Mutex<()>,
}

const KIND: &str = "zonefile";

impl ZoneFile {
    /// A zone-file target; the file is created on first write if it does not exist.
    pub fn new(config: Config) -> Self {
        ZoneFile {
            config,
            profile: Profile {
                concurrency: 1,
                ..Profile::default()
            },
            lock: Mutex::new(()),
        }
    }

    /// The zone apex the file belongs to.
    pub fn zone(&self) -> &Fqdn {
        &self.config.zone
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    fn err(&self, op: Operation, name: Option<&Fqdn>, kind: ErrorKind, msg: String) -> Error {
        Error::new(KIND, op, name, kind, msg)
    }

    fn load(&self, op: Operation, name: &Fqdn) -> Result<Parsed, Error> {
        let text = match std::fs::read(&self.config.path) {
            Ok(b) => String::from_utf8(b).map_err(|_| {
                self.err(
                    op,
                    Some(name),
                    ErrorKind::Invalid,
                    format!("{} is not UTF-8 text", self.config.path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(self.err(
                    op,
                    Some(name),
                    ErrorKind::Config,
                    format!("{}: {e}", self.config.path.display()),
                ));
            }
        };
        parse(&text, &self.config.zone).map_err(|e| {
            self.err(
                op,
                Some(name),
                ErrorKind::Invalid,
                format!("{}:{}: {}", self.config.path.display(), e.line, e.message),
            )
        })
    }

    fn check_name(&self, op: Operation, name: &Fqdn) -> Result<(), Error> {
        if name.is_within(&self.config.zone) {
            Ok(())
        } else {
            Err(self.err(
                op,
                Some(name),
                ErrorKind::ZoneNotFound,
                format!(
                    "{name} is outside zone {} held in {}",
                    self.config.zone,
                    self.config.path.display()
                ),
            ))
        }
    }

    async fn write_set(&self, op: Operation, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.check_name(op, name)?;
        self.profile.check_set(KIND, op, name, &set.records)?;
        let _guard = self.lock.lock().await;
        let parsed = self.load(op, name)?;
        let current = parsed.txt_set(name);
        let wanted = if set.records.is_empty() {
            None
        } else {
            Some(set)
        };
        if current.as_ref() == wanted {
            return Ok(());
        }
        let text = parsed.render_with(name, set, self.config.default_ttl, self.config.bump_serial);
        atomic_write(&self.config.path, text.as_bytes()).map_err(|e| {
            self.err(
                op,
                Some(name),
                ErrorKind::Config,
                format!("writing {}: {e}", self.config.path.display()),
            )
        })
    }
}

#[async_trait::async_trait]
impl Provider for ZoneFile {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    async fn find_zone(&self, name: &Fqdn) -> Result<Zone, Error> {
        self.check_name(Operation::FindZone, name)?;
        Ok(Zone {
            name: self.config.zone.clone(),
            id: self.config.path.display().to_string(),
        })
    }

    async fn read_txt(&self, _zone: &Zone, name: &Fqdn) -> Result<Option<TxtSet>, Error> {
        self.check_name(Operation::Read, name)?;
        let _guard = self.lock.lock().await;
        Ok(self.load(Operation::Read, name)?.txt_set(name))
    }

    async fn replace_txt(&self, _zone: &Zone, name: &Fqdn, set: &TxtSet) -> Result<(), Error> {
        self.write_set(Operation::Replace, name, set).await
    }

    async fn delete_txt(&self, _zone: &Zone, name: &Fqdn) -> Result<(), Error> {
        let empty = TxtSet {
            ttl: self.config.default_ttl,
            records: Vec::new(),
        };
        self.write_set(Operation::Delete, name, &empty).await
    }
}

/// Writes `data` to `path` atomically: temporary file in the same directory, fsync,
/// rename over the target, fsync of the directory. An existing file's mode is kept.
pub fn atomic_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "zone".into());
    let tmp = dir.join(format!(".{file_name}.maildns-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A master-file syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A token of a logical record: its text and where it starts.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
    col: usize,
}

/// One resource record or directive spanning `first..=last` (0-based lines).
#[derive(Debug, Clone)]
struct Entry {
    first: usize,
    last: usize,
    owner: Fqdn,
    owner_explicit: bool,
    origin: Fqdn,
    rtype: String,
    ttl: Option<u32>,
    rdata: Vec<Token>,
}

/// A parsed file: its lines and the records found in it.
#[derive(Debug, Clone)]
pub struct Parsed {
    lines: Vec<String>,
    trailing_newline: bool,
    entries: Vec<Entry>,
    default_ttl: Option<u32>,
    final_origin: Fqdn,
}

fn parse_ttl(s: &str) -> Option<u32> {
    if let Ok(v) = s.parse::<u32>() {
        return Some(v);
    }
    // BIND style: 1w2d3h4m5s
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

fn is_class(s: &str) -> bool {
    matches!(s.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS" | "CS")
}

fn resolve(name: &str, origin: &Fqdn, line: usize) -> Result<Fqdn, ZoneParseError> {
    let err = |m: String| ZoneParseError {
        line: line + 1,
        message: m,
    };
    if name == "@" {
        return Ok(origin.clone());
    }
    let n = if let Some(abs) = name.strip_suffix('.') {
        Fqdn::parse(abs)
    } else {
        origin.child(name)
    };
    n.map_err(|e| err(format!("bad name '{name}': {e}")))
}

/// A logical record: first and last line, whether the owner field is blank, tokens.
type Logical = (usize, usize, bool, Vec<Token>);

/// Splits the file into logical records (parentheses joined, comments dropped).
fn logical_records(text: &str) -> Result<Vec<Logical>, ZoneParseError> {
    let mut out = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    let mut depth = 0usize;
    let mut start_line = 0usize;
    let mut starts_blank = false;
    for (ln, line) in text.split('\n').enumerate() {
        let bytes = line.as_bytes();
        if depth == 0 {
            start_line = ln;
            starts_blank = bytes.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        }
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b' ' | b'\t' | b'\r' => i += 1,
                b';' => break,
                b'(' => {
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err(ZoneParseError {
                            line: ln + 1,
                            message: "')' without '('".into(),
                        });
                    }
                    depth -= 1;
                    i += 1;
                }
                b'"' => {
                    let s = i;
                    i += 1;
                    loop {
                        match bytes.get(i) {
                            None => {
                                return Err(ZoneParseError {
                                    line: ln + 1,
                                    message: "unterminated quoted string".into(),
                                });
                            }
                            Some(b'\\') => i += 2,
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(_) => i += 1,
                        }
                    }
                    let end = i.min(bytes.len());
                    tokens.push(Token {
                        text: line[s..end].to_string(),
                        line: ln,
                        col: s,
                    });
                }
                _ => {
                    let s = i;
                    while i < bytes.len()
                        && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b';' | b'(' | b')' | b'"')
                    {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    let end = i.min(bytes.len());
                    tokens.push(Token {
                        text: line[s..end].to_string(),
                        line: ln,
                        col: s,
                    });
                }
            }
        }
        if depth == 0 && !tokens.is_empty() {
            out.push((start_line, ln, starts_blank, std::mem::take(&mut tokens)));
        }
    }
    if depth > 0 {
        return Err(ZoneParseError {
            line: start_line + 1,
            message: "'(' never closed".into(),
        });
    }
    Ok(out)
}

/// Parses a master file for zone `zone` (the initial `$ORIGIN`).
pub fn parse(text: &str, zone: &Fqdn) -> Result<Parsed, ZoneParseError> {
    let trailing_newline = text.ends_with('\n');
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<String> = if body.is_empty() && !trailing_newline {
        Vec::new()
    } else {
        body.split('\n').map(str::to_string).collect()
    };
    let mut origin = zone.clone();
    let mut default_ttl = None;
    let mut last_owner: Option<Fqdn> = None;
    let mut entries = Vec::new();
    for (first, last, blank_owner, toks) in logical_records(body)? {
        let head = toks[0].text.as_str();
        if head.starts_with('$') {
            match head.to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let arg = toks.get(1).ok_or(ZoneParseError {
                        line: first + 1,
                        message: "$ORIGIN needs a name".into(),
                    })?;
                    origin = resolve(&arg.text, &origin, first)?;
                }
                "$TTL" => {
                    let arg = toks.get(1).and_then(|t| parse_ttl(&t.text));
                    default_ttl = Some(arg.ok_or(ZoneParseError {
                        line: first + 1,
                        message: "$TTL needs a time value".into(),
                    })?);
                }
                _ => {} // $INCLUDE, $GENERATE: kept as they are
            }
            continue;
        }
        let mut idx = 0;
        let owner = if blank_owner {
            last_owner.clone().ok_or(ZoneParseError {
                line: first + 1,
                message: "record without an owner name and no previous owner".into(),
            })?
        } else {
            idx = 1;
            resolve(head, &origin, first)?
        };
        let mut ttl = None;
        while let Some(t) = toks.get(idx) {
            if is_class(&t.text) {
                idx += 1;
            } else if t.text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                ttl = Some(parse_ttl(&t.text).ok_or(ZoneParseError {
                    line: t.line + 1,
                    message: format!("bad TTL '{}'", t.text),
                })?);
                idx += 1;
            } else {
                break;
            }
        }
        let rtype = toks
            .get(idx)
            .ok_or(ZoneParseError {
                line: first + 1,
                message: "record without a type".into(),
            })?
            .text
            .to_ascii_uppercase();
        last_owner = Some(owner.clone());
        entries.push(Entry {
            first,
            last,
            owner,
            owner_explicit: !blank_owner,
            origin: origin.clone(),
            rtype,
            ttl,
            rdata: toks[idx + 1..].to_vec(),
        });
    }
    Ok(Parsed {
        lines,
        trailing_newline,
        entries,
        default_ttl,
        final_origin: origin,
    })
}

impl Parsed {
    fn txt_entries<'a>(&'a self, name: &'a Fqdn) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.rtype == "TXT" && &e.owner == name)
    }

    /// The TXT set at `name`, as the file holds it.
    pub fn txt_set(&self, name: &Fqdn) -> Option<TxtSet> {
        let mut ttl = None;
        let mut records = Vec::new();
        for e in self.txt_entries(name) {
            let text: Vec<&str> = e.rdata.iter().map(|t| t.text.as_str()).collect();
            if let Ok(r) = TxtRecord::parse_presentation(&text.join(" ")) {
                records.push(r);
            }
            ttl = ttl.or(e.ttl);
        }
        if records.is_empty() {
            None
        } else {
            Some(TxtSet {
                ttl: ttl.or(self.default_ttl).unwrap_or(3600),
                records,
            })
        }
    }

    /// The file with the TXT set at `name` replaced by `set` (removed when empty).
    /// Lines of records that stay (same value) are kept as they are.
    fn render_with(&self, name: &Fqdn, set: &TxtSet, default_ttl: u32, bump: bool) -> String {
        let mut lines: Vec<Option<String>> = self.lines.iter().cloned().map(Some).collect();
        let mut to_add: Vec<&TxtRecord> = set.records.iter().collect();
        let mut old: Vec<&Entry> = Vec::new();
        let mut last_kept: Option<usize> = None;
        for e in self.txt_entries(name) {
            let text: Vec<&str> = e.rdata.iter().map(|t| t.text.as_str()).collect();
            let parsed = TxtRecord::parse_presentation(&text.join(" ")).ok();
            let same_ttl = e.ttl.or(self.default_ttl) == Some(set.ttl);
            let keep = parsed
                .as_ref()
                .filter(|_| same_ttl)
                .and_then(|r| to_add.iter().position(|w| *w == r));
            match keep {
                Some(i) => {
                    to_add.remove(i);
                    last_kept = Some(e.last);
                }
                None => old.push(e),
            }
        }
        // Where new records go: where the first removed one was, else after the
        // last record of that owner, else at the end.
        let anchor = old
            .first()
            .map(|e| (e.first, true))
            .or_else(|| last_kept.map(|l| (l + 1, false)))
            .or_else(|| {
                self.entries
                    .iter()
                    .rev()
                    .find(|e| &e.owner == name)
                    .map(|e| (e.last + 1, false))
            });
        for e in &old {
            for l in lines.iter_mut().take(e.last + 1).skip(e.first) {
                *l = None;
            }
            // A following record that inherited this owner gets it written out.
            if e.owner_explicit
                && let Some(next) = self.entries.iter().find(|n| n.first > e.last)
                && !next.owner_explicit
                && !old.iter().any(|o| o.first == next.first)
                && let Some(Some(line)) = lines.get_mut(next.first)
            {
                *line = format!("{}{}", owner_text(name, &next.origin), line);
            }
        }
        let ttl = if set.ttl == 0 { default_ttl } else { set.ttl };
        let origin_at = |line: usize| {
            self.entries
                .iter()
                .rev()
                .find(|e| e.first < line)
                .map(|e| e.origin.clone())
                .unwrap_or_else(|| self.final_origin.clone())
        };
        let new_lines: Vec<String> = to_add
            .iter()
            .map(|r| {
                let origin = match anchor {
                    Some((l, _)) => origin_at(l + 1),
                    None => self.final_origin.clone(),
                };
                format!(
                    "{}\t{}\tIN\tTXT\t{}",
                    owner_text(name, &origin),
                    ttl,
                    r.to_presentation()
                )
            })
            .collect();
        let mut out: Vec<String> = Vec::with_capacity(lines.len() + new_lines.len());
        let insert_at = anchor.map(|(l, _)| l);
        if old.is_empty() && new_lines.is_empty() {
            return self.original_text();
        }
        let mut inserted = new_lines.is_empty();
        for (i, l) in lines.into_iter().enumerate() {
            if !inserted && insert_at == Some(i) {
                out.extend(new_lines.iter().cloned());
                inserted = true;
            }
            if let Some(l) = l {
                out.push(l);
            }
        }
        if !inserted {
            out.extend(new_lines);
        }
        if bump {
            self.bump_serial(&mut out, &self.lines);
        }
        let mut text = out.join("\n");
        if self.trailing_newline || self.lines.is_empty() {
            text.push('\n');
        }
        text
    }

    fn original_text(&self) -> String {
        let mut text = self.lines.join("\n");
        if self.trailing_newline {
            text.push('\n');
        }
        text
    }

    /// Bumps the SOA serial in `out` (found by matching the SOA's original line text).
    fn bump_serial(&self, out: &mut [String], original: &[String]) {
        let Some(soa) = self.entries.iter().find(|e| e.rtype == "SOA") else {
            return;
        };
        let Some(serial_tok) = soa.rdata.get(2) else {
            return;
        };
        let Ok(serial) = serial_tok.text.parse::<u32>() else {
            return;
        };
        let Some(orig_line) = original.get(serial_tok.line) else {
            return;
        };
        let today: u32 = chrono::Utc::now()
            .format("%Y%m%d")
            .to_string()
            .parse()
            .unwrap_or(0);
        let date_based = (1_990_000_000..=2_999_999_999u64).contains(&u64::from(serial));
        let next = if date_based {
            serial.wrapping_add(1).max(today.saturating_mul(100))
        } else {
            serial.wrapping_add(1)
        };
        if let Some(line) = out.iter_mut().find(|l| *l == orig_line) {
            let col = serial_tok.col;
            let end = col + serial_tok.text.len();
            if line.get(col..end) == Some(serial_tok.text.as_str()) {
                line.replace_range(col..end, &next.to_string());
            }
        }
    }
}

fn owner_text(name: &Fqdn, origin: &Fqdn) -> String {
    match name.relative_to(origin) {
        Some(rel) => rel,
        None => name.to_dotted(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Fqdn {
        Fqdn::parse("example.com").unwrap()
    }

    const ZONE: &str = "$ORIGIN example.com.\n$TTL 3600\n@\tIN SOA ns1 hostmaster ( 2024010101 ; serial\n\t\t3600 900 604800 300 )\n\tIN NS ns1\n; operator's comment\n@\tIN TXT \"google-site-verification=abc\"\n@ 300 IN TXT \"v=spf1 -all\"\n\tIN MX 10 mail\nwww IN A 192.0.2.1\n";

    fn set(values: &[&str]) -> TxtSet {
        TxtSet {
            ttl: 300,
            records: values.iter().map(TxtRecord::from_value).collect(),
        }
    }

    #[test]
    fn reads_txt_sets() {
        let p = parse(ZONE, &zone()).unwrap();
        let s = p.txt_set(&zone()).unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[1].value(), b"v=spf1 -all");
        assert!(p.txt_set(&zone().child("www").unwrap()).is_none());
    }

    #[test]
    fn replace_keeps_other_lines_and_inherited_owner() {
        let p = parse(ZONE, &zone()).unwrap();
        let out = p.render_with(
            &zone(),
            &set(&[
                "google-site-verification=abc",
                "v=spf1 ip4:192.0.2.10/32 -all",
            ]),
            3600,
            true,
        );
        assert!(out.contains("; operator's comment\n"));
        assert!(out.contains("www IN A 192.0.2.1\n"));
        assert!(
            out.contains("2024010102")
                || out.contains(&format!("{}00", chrono::Utc::now().format("%Y%m%d")))
        );
        // the MX line inherited '@' from the removed TXT line: it must still belong to the apex
        let again = parse(&out, &zone()).unwrap();
        let mx = again.entries.iter().find(|e| e.rtype == "MX").unwrap();
        assert_eq!(mx.owner, zone());
        let s = again.txt_set(&zone()).unwrap();
        assert_eq!(s.records[1].value(), b"v=spf1 ip4:192.0.2.10/32 -all");
        assert_eq!(s.records[0].value(), b"google-site-verification=abc");
    }

    #[test]
    fn ttl_change_rewrites_our_line() {
        let p = parse(ZONE, &zone()).unwrap();
        let mut s = set(&["google-site-verification=abc", "v=spf1 -all"]);
        s.ttl = 3600;
        let out = p.render_with(&zone(), &s, 3600, false);
        let again = parse(&out, &zone()).unwrap();
        assert_eq!(again.txt_set(&zone()).unwrap().ttl, 3600);
        assert!(
            out.contains("@\tIN TXT \"google-site-verification=abc\"\n"),
            "{out}"
        );
        assert!(out.contains("@\t3600\tIN\tTXT\t\"v=spf1 -all\""), "{out}");
    }

    #[test]
    fn long_values_are_split_and_read_back() {
        let p = parse(ZONE, &zone()).unwrap();
        let name = zone().child("202611._domainkey").unwrap();
        let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(736));
        let out = p.render_with(&name, &set(&[&v]), 3600, false);
        assert!(out.contains("202611._domainkey\t300\tIN\tTXT\t\"v=DKIM1; k=rsa; p="));
        let again = parse(&out, &zone()).unwrap();
        let s = again.txt_set(&name).unwrap();
        assert_eq!(s.records[0].value(), v.as_bytes());
        assert!(s.records[0].strings().len() >= 3);
        assert!(out.contains("2024010101"), "no bump when asked not to");
    }

    #[test]
    fn empty_file_becomes_fragment() {
        let p = parse("", &zone()).unwrap();
        let out = p.render_with(
            &zone().child("_dmarc").unwrap(),
            &set(&["v=DMARC1; p=none"]),
            3600,
            true,
        );
        assert_eq!(out, "_dmarc\t300\tIN\tTXT\t\"v=DMARC1; p=none\"\n");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("@ IN TXT \"abc\n", &zone()).unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("a IN A 1.2.3.4\n( IN TXT \"x\"\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("$TTL\n", &zone()).unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("3600"), Some(3600));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1w"), Some(604_800));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("99999999999"), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "[ -~\t\n();\"\\$@]{0,400}") {
            let _ = parse(&text, &zone());
        }

        #[test]
        fn written_sets_read_back(values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), 1..4)) {
            let p = parse(ZONE, &zone()).unwrap();
            let name = zone().child("_dmarc").unwrap();
            let s = TxtSet { ttl: 60, records: values.iter().map(TxtRecord::from_value).collect() };
            let out = p.render_with(&name, &s, 3600, true);
            let again = parse(&out, &zone()).unwrap();
            proptest::prop_assert_eq!(again.txt_set(&name), Some(s));
            proptest::prop_assert_eq!(again.txt_set(&zone()), p.txt_set(&zone()));
        }
    }
}

//! OpenDKIM's files as text: `key.table`, `signing.table` (refile) and
//! `opendkim.conf`, parsed, edited and rendered. Pure: no file I/O, so the
//! parsers can be fuzzed (`fuzz/fuzz_targets/opendkim_{tables,conf}.rs`).
//! Reading the files is [`super::reader`]; the Unix checks OpenDKIM makes when
//! it reloads (tables readable by its user, keys passing `RequireSafeKeys`) and
//! atomic table writes are [`super::unix`].
//!
//! Edits preserve every line maildns does not own (comments, blank lines, other
//! domains' entries) byte for byte: a table is a list of lines, each either kept
//! verbatim or, for the entries maildns changes, rendered anew.
//!
//! Flat-file syntax as OpenDKIM reads it: `#` starts a comment (to end of line),
//! blank lines are ignored, the key is the first whitespace-separated word and the
//! value the rest of the line.

use std::path::{Path, PathBuf};

/// A table line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a table line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A key with no value.
    #[error("entry {} has no value", crate::quote::quoted(.0))]
    MissingValue(String),
    /// A key.table value that is not `DOMAIN:SELECTOR:KEY`.
    #[error("entry {}: value must be DOMAIN:SELECTOR:/path/to/key", crate::quote::quoted(.0))]
    BadKeyValue(String),
    /// A value maildns cannot write safely (whitespace, `#`, `:` or newline in a field).
    #[error("field {} contains whitespace, '#', ':' or a newline", crate::quote::quoted(.0))]
    BadField(String),
    /// An opendkim.conf setting whose value cannot be understood.
    #[error("{name}: bad value {}", crate::quote::quoted(value))]
    BadSetting {
        /// Setting name.
        name: String,
        /// Its value.
        value: String,
    },
}

/// One line of a table: verbatim, or an entry (kept verbatim unless changed).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line<E> {
    Other(String),
    Entry { raw: Option<String>, entry: E },
}

/// Splits `text` into lines keeping their endings; the content without `#...` and
/// the line terminator, trimmed.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.split_inclusive('\n').enumerate().map(|(i, raw)| {
        let content = raw.split('#').next().unwrap_or_default().trim();
        (i + 1, raw, content)
    })
}

fn split_kv(content: &str) -> (&str, &str) {
    match content.split_once(|c: char| c.is_whitespace()) {
        Some((k, v)) => (k, v.trim()),
        None => (content, ""),
    }
}

fn check_field(s: &str) -> Result<(), ParseError> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '#' || c == ':') {
        return Err(ParseError {
            line: 0,
            kind: ParseErrorKind::BadField(s.to_string()),
        });
    }
    Ok(())
}

fn render_lines<E>(lines: &[Line<E>], fmt: impl Fn(&E) -> String) -> String {
    let mut out = String::new();
    for l in lines {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        match l {
            Line::Other(raw) | Line::Entry { raw: Some(raw), .. } => out.push_str(raw),
            Line::Entry { raw: None, entry } => {
                out.push_str(&fmt(entry));
                out.push('\n');
            }
        }
    }
    out
}

/// A key.table entry: `NAME DOMAIN:SELECTOR:KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The name the signing table refers to.
    pub name: String,
    /// Signing domain (`d=`).
    pub domain: String,
    /// Selector (`s=`).
    pub selector: String,
    /// Path of the key file (or, in files maildns did not write, inline key data).
    pub key: String,
}

/// OpenDKIM's KeyTable (`file:` flat file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyTable {
    lines: Vec<Line<KeyEntry>>,
}

impl KeyTable {
    /// Parses a key.table. Errors carry the 1-based line number.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut out = Vec::new();
        for (line, raw, content) in lines(text) {
            if content.is_empty() {
                out.push(Line::Other(raw.to_string()));
                continue;
            }
            let (name, value) = split_kv(content);
            if value.is_empty() {
                return Err(ParseError {
                    line,
                    kind: ParseErrorKind::MissingValue(name.to_string()),
                });
            }
            let mut parts = value.splitn(3, ':');
            let (Some(domain), Some(selector), Some(key)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ParseError {
                    line,
                    kind: ParseErrorKind::BadKeyValue(name.to_string()),
                });
            };
            if domain.is_empty() || selector.is_empty() || key.is_empty() {
                return Err(ParseError {
                    line,
                    kind: ParseErrorKind::BadKeyValue(name.to_string()),
                });
            }
            out.push(Line::Entry {
                raw: Some(raw.to_string()),
                entry: KeyEntry {
                    name: name.to_string(),
                    domain: domain.to_string(),
                    selector: selector.to_string(),
                    key: key.to_string(),
                },
            });
        }
        Ok(KeyTable { lines: out })
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { entry, .. } => Some(entry),
            Line::Other(_) => None,
        })
    }

    /// Every entry with its 1-based line in the file as parsed, in file
    /// order (an entry added since has no line).
    pub fn entries_with_lines(&self) -> impl Iterator<Item = (Option<usize>, &KeyEntry)> {
        self.lines.iter().enumerate().filter_map(|(i, l)| match l {
            Line::Entry {
                entry,
                raw: Some(_),
            } => Some((Some(i + 1), entry)),
            Line::Entry { entry, raw: None } => Some((None, entry)),
            Line::Other(_) => None,
        })
    }

    /// The first entry called `name` (the one OpenDKIM uses).
    pub fn get(&self, name: &str) -> Option<&KeyEntry> {
        self.entries().find(|e| e.name == name)
    }

    /// Replaces the entry called `name` in place (later duplicates of that name are
    /// removed), or appends it. Refuses fields OpenDKIM would split differently.
    pub fn upsert(&mut self, entry: KeyEntry) -> Result<(), ParseError> {
        check_field(&entry.name)?;
        check_field(&entry.domain)?;
        check_field(&entry.selector)?;
        check_field(&entry.key)?;
        let name = entry.name.clone();
        let mut slot = Some(entry);
        self.lines.retain_mut(|l| match l {
            Line::Entry { raw, entry: e } if e.name == name => match slot.take() {
                Some(new) => {
                    if *e != new {
                        *e = new;
                        *raw = None;
                    }
                    true
                }
                // A later duplicate of the same name: OpenDKIM ignores it; drop it.
                None => false,
            },
            _ => true,
        });
        if let Some(new) = slot {
            self.lines.push(Line::Entry {
                raw: None,
                entry: new,
            });
        }
        Ok(())
    }

    /// Removes every entry called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Entry { entry, .. } if entry.name == name));
        before - self.lines.len()
    }

    /// The file's text: untouched lines byte for byte, changed entries as
    /// `NAME DOMAIN:SELECTOR:KEY`.
    pub fn render(&self) -> String {
        render_lines(&self.lines, |e| {
            format!("{} {}:{}:{}", e.name, e.domain, e.selector, e.key)
        })
    }
}

/// A signing.table (`refile:`) entry: `PATTERN NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningEntry {
    /// Address pattern; `*` matches any run of characters (e.g. `*@example.com`).
    pub pattern: String,
    /// The key.table name to sign with.
    pub name: String,
}

/// OpenDKIM's SigningTable read as `refile:` (patterns tried in file order; the
/// first match signs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigningTable {
    lines: Vec<Line<SigningEntry>>,
}

/// Whether glob `pattern` (only `*` is special) matches `text`, case-insensitively.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p.get(pi) != Some(&'*') && p.get(pi) == t.get(ti) {
            pi += 1;
            ti += 1;
        } else if p.get(pi) == Some(&'*') {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    pi == p.len()
}

impl SigningTable {
    /// Parses a signing.table. Errors carry the 1-based line number.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut out = Vec::new();
        for (line, raw, content) in lines(text) {
            if content.is_empty() {
                out.push(Line::Other(raw.to_string()));
                continue;
            }
            let (pattern, name) = split_kv(content);
            if name.is_empty() {
                return Err(ParseError {
                    line,
                    kind: ParseErrorKind::MissingValue(pattern.to_string()),
                });
            }
            out.push(Line::Entry {
                raw: Some(raw.to_string()),
                entry: SigningEntry {
                    pattern: pattern.to_string(),
                    name: name.to_string(),
                },
            });
        }
        Ok(SigningTable { lines: out })
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &SigningEntry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { entry, .. } => Some(entry),
            Line::Other(_) => None,
        })
    }

    /// The name OpenDKIM signs `address` with: the first matching pattern's.
    pub fn lookup(&self, address: &str) -> Option<&str> {
        self.entries()
            .find(|e| pattern_matches(&e.pattern, address))
            .map(|e| e.name.as_str())
    }

    /// Sets `pattern`'s name: the first entry with exactly that pattern is changed
    /// in place; otherwise the entry is inserted before the first broader pattern
    /// that would otherwise catch the same addresses (e.g. `*`), else appended.
    pub fn upsert(&mut self, pattern: &str, name: &str) -> Result<(), ParseError> {
        check_field(pattern)?;
        check_field(name)?;
        let new = SigningEntry {
            pattern: pattern.to_string(),
            name: name.to_string(),
        };
        for l in &mut self.lines {
            if let Line::Entry { raw, entry } = l
                && entry.pattern == pattern
            {
                if entry.name != name {
                    *entry = new;
                    *raw = None;
                }
                return Ok(());
            }
        }
        let probe = pattern.replace('*', "x");
        let at = self.lines.iter().position(
            |l| matches!(l, Line::Entry { entry, .. } if pattern_matches(&entry.pattern, &probe)),
        );
        let line = Line::Entry {
            raw: None,
            entry: new,
        };
        match at {
            Some(i) => self.lines.insert(i, line),
            None => self.lines.push(line),
        }
        Ok(())
    }

    /// Removes every entry with exactly `pattern`; returns how many.
    pub fn remove(&mut self, pattern: &str) -> usize {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Entry { entry, .. } if entry.pattern == pattern));
        before - self.lines.len()
    }

    /// The file's text: untouched lines byte for byte, changed entries as
    /// `PATTERN NAME`.
    pub fn render(&self) -> String {
        render_lines(&self.lines, |e| format!("{} {}", e.pattern, e.name))
    }
}

/// How a table is named in opendkim.conf (`file:`, `refile:`, or another dataset
/// type maildns does not edit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRef {
    /// `file:/path` or a bare `/path`.
    File(PathBuf),
    /// `refile:/path`.
    Refile(PathBuf),
    /// Any other dataset (`csl:`, `db:`, `ldap:`, ...), kept as written.
    Other(String),
}

impl TableRef {
    fn parse(value: &str) -> TableRef {
        if let Some(p) = value.strip_prefix("file:") {
            TableRef::File(PathBuf::from(p))
        } else if let Some(p) = value.strip_prefix("refile:") {
            TableRef::Refile(PathBuf::from(p))
        } else if value.starts_with('/') {
            TableRef::File(PathBuf::from(value))
        } else {
            TableRef::Other(value.to_string())
        }
    }

    /// The file path, for `file:` and `refile:` tables.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TableRef::File(p) | TableRef::Refile(p) => Some(p),
            TableRef::Other(_) => None,
        }
    }
}

/// The opendkim.conf settings maildns cares about (names are case-insensitive; the
/// first occurrence wins, as in OpenDKIM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenDkimConf {
    /// `KeyTable`.
    pub key_table: Option<TableRef>,
    /// `SigningTable`.
    pub signing_table: Option<TableRef>,
    /// `UserID` (`user` or `user:group`).
    pub user_id: Option<String>,
    /// `RequireSafeKeys` (OpenDKIM's default is yes).
    pub require_safe_keys: Option<bool>,
    /// `Socket`.
    pub socket: Option<String>,
    /// `KeyFile` (single-key mode).
    pub key_file: Option<PathBuf>,
    /// `Selector` (single-key mode).
    pub selector: Option<String>,
    /// `Domain` (single-key mode; a list or a dataset).
    pub domain: Option<String>,
    /// `MinimumKeyBits`.
    pub minimum_key_bits: Option<u32>,
    /// Every file OpenDKIM opens when it (re)loads this configuration, as its
    /// `UserID`: the file-backed data sets (`file:`, `refile:`, `db:`, `mdb:` or
    /// a bare path) of [`DATA_SETS`] and the plain files of [`FILE_SETTINGS`],
    /// with the setting that names each (first occurrence of each setting).
    pub files: Vec<(String, PathBuf)>,
}

/// opendkim.conf(5) settings whose value is a data set (a file for `file:`,
/// `refile:`, `db:`, `mdb:` and bare paths; a list, a database or a directory
/// otherwise). On reload OpenDKIM re-opens each of them; one failure keeps the
/// old configuration.
pub const DATA_SETS: [&str; 22] = [
    "BodyLengthDBs",
    "ConditionalSignatures",
    "DontSignMailTo",
    "Domain",
    "ExemptDomains",
    "ExternalIgnoreList",
    "InternalHosts",
    "KeyTable",
    "LocalADSP",
    "MacroList",
    "MTA",
    "MustBeSigned",
    "OmitHeaders",
    "OversignHeaders",
    "PeerList",
    "RemoveARFrom",
    "ResignMailTo",
    "SenderHeaders",
    "SignHeaders",
    "SigningTable",
    "ThirdPartySignatures",
    "TrustSignaturesFrom",
];

/// opendkim.conf(5) settings naming a plain file read when the configuration is
/// loaded.
pub const FILE_SETTINGS: [&str; 3] = ["KeyFile", "TrustAnchorFile", "ResolverConfiguration"];

/// The file a data-set value names, if it is file-backed (`file:`, `refile:`,
/// `db:`, `mdb:`, or a bare absolute path).
pub fn data_set_file(value: &str) -> Option<PathBuf> {
    let value = value.trim();
    for prefix in ["file:", "refile:", "db:", "mdb:"] {
        if let Some(p) = value.strip_prefix(prefix) {
            return (!p.is_empty()).then(|| PathBuf::from(p));
        }
    }
    value.starts_with('/').then(|| PathBuf::from(value))
}

impl OpenDkimConf {
    /// Parses opendkim.conf text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut c = OpenDkimConf::default();
        for (line, _raw, content) in lines(text) {
            if content.is_empty() {
                continue;
            }
            let (name, value) = split_kv(content);
            let bad = || ParseError {
                line,
                kind: ParseErrorKind::BadSetting {
                    name: name.to_string(),
                    value: value.to_string(),
                },
            };
            let set_str = |slot: &mut Option<String>| {
                if slot.is_none() {
                    *slot = Some(value.to_string());
                }
            };
            let lower = name.to_ascii_lowercase();
            if !c.files.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                let file = if DATA_SETS.iter().any(|d| d.eq_ignore_ascii_case(name)) {
                    data_set_file(value)
                } else if FILE_SETTINGS.iter().any(|d| d.eq_ignore_ascii_case(name)) {
                    (!value.is_empty()).then(|| PathBuf::from(value))
                } else {
                    None
                };
                if let Some(f) = file {
                    c.files.push((name.to_string(), f));
                }
            }
            match lower.as_str() {
                "keytable" if c.key_table.is_none() => c.key_table = Some(TableRef::parse(value)),
                "signingtable" if c.signing_table.is_none() => {
                    c.signing_table = Some(TableRef::parse(value))
                }
                "userid" => set_str(&mut c.user_id),
                "socket" => set_str(&mut c.socket),
                "selector" => set_str(&mut c.selector),
                "domain" => set_str(&mut c.domain),
                "keyfile" if c.key_file.is_none() => c.key_file = Some(PathBuf::from(value)),
                "requiresafekeys" if c.require_safe_keys.is_none() => {
                    c.require_safe_keys = Some(parse_bool(value).ok_or_else(bad)?)
                }
                "minimumkeybits" if c.minimum_key_bits.is_none() => {
                    c.minimum_key_bits = Some(value.parse().map_err(|_| bad())?)
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// The user and group named by `UserID`.
    pub fn user_and_group(&self) -> Option<(&str, Option<&str>)> {
        let u = self.user_id.as_deref()?;
        Some(match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u, None),
        })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" | "t" | "on" => Some(true),
        "no" | "false" | "0" | "n" | "f" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KT: &str = "# keys\n\nprueba     tiraquelibras.com:201908:/etc/opendkim/keys/prueba.private\nother other.org:s1:/etc/opendkim/keys/other.private # theirs\r\n";

    #[test]
    fn key_table_roundtrip_is_byte_exact() {
        let t = KeyTable::parse(KT).unwrap();
        assert_eq!(t.render(), KT);
        assert_eq!(t.entries().count(), 2);
        let e = t.get("other").unwrap();
        assert_eq!(
            (e.domain.as_str(), e.selector.as_str(), e.key.as_str()),
            ("other.org", "s1", "/etc/opendkim/keys/other.private")
        );
    }

    #[test]
    fn key_table_upsert_and_remove_touch_only_their_line() {
        let mut t = KeyTable::parse(KT).unwrap();
        t.upsert(KeyEntry {
            name: "prueba".into(),
            domain: "tiraquelibras.com".into(),
            selector: "202001".into(),
            key: "/k/new.private".into(),
        })
        .unwrap();
        assert_eq!(
            t.render(),
            KT.replace(
                "prueba     tiraquelibras.com:201908:/etc/opendkim/keys/prueba.private",
                "prueba tiraquelibras.com:202001:/k/new.private"
            )
        );
        t.upsert(KeyEntry {
            name: "n".into(),
            domain: "n.net".into(),
            selector: "a".into(),
            key: "/k/n".into(),
        })
        .unwrap();
        assert!(t.render().ends_with("# theirs\r\nn n.net:a:/k/n\n"));
        assert_eq!(t.remove("prueba"), 1);
        assert!(!t.render().contains("prueba"));
        assert!(t.render().starts_with("# keys\n\nother other.org"));
        let bad = KeyEntry {
            name: "x y".into(),
            domain: "d".into(),
            selector: "s".into(),
            key: "/k".into(),
        };
        assert!(t.upsert(bad).is_err());
    }

    #[test]
    fn appending_to_a_file_without_final_newline() {
        let mut t = SigningTable::parse("*@a.com a").unwrap();
        t.upsert("*@b.com", "b").unwrap();
        assert_eq!(t.render(), "*@a.com a\n*@b.com b\n");
    }

    #[test]
    fn key_table_errors_have_line_numbers() {
        let e = KeyTable::parse("# c\nname\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(matches!(e.kind, ParseErrorKind::MissingValue(_)));
        let e = KeyTable::parse("\n\nname domain:selector\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, ParseErrorKind::BadKeyValue(_)));
        assert!(e.to_string().contains("line 3"));
    }

    #[test]
    fn signing_table_edit_and_lookup() {
        let text = "# sign\n*@tiraquelibras.com   prueba\n*@other.org other\n*@* fallback\n";
        let mut t = SigningTable::parse(text).unwrap();
        assert_eq!(t.render(), text);
        assert_eq!(t.lookup("info@other.org"), Some("other"));
        assert_eq!(t.lookup("x@new.com"), Some("fallback"));
        t.upsert("*@new.com", "new.com").unwrap();
        // Inserted before the catch-all so it takes effect.
        assert_eq!(t.lookup("x@new.com"), Some("new.com"));
        assert_eq!(
            t.render(),
            "# sign\n*@tiraquelibras.com   prueba\n*@other.org other\n*@new.com new.com\n*@* fallback\n"
        );
        t.upsert("*@tiraquelibras.com", "prueba").unwrap();
        assert!(t.render().contains("*@tiraquelibras.com   prueba\n"));
        assert_eq!(t.remove("*@new.com"), 1);
        assert_eq!(t.render(), text);
        let e = SigningTable::parse("a b\nlonely\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn glob() {
        assert!(pattern_matches("*@example.com", "a@example.com"));
        assert!(pattern_matches("*@EXAMPLE.com", "a@example.COM"));
        assert!(!pattern_matches("*@example.com", "a@example.org"));
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("a*b*c", "aXXbYc"));
        assert!(!pattern_matches("a*b*c", "aXXbY"));
    }

    #[test]
    fn parses_the_seed_conf() {
        let conf = "Syslog                  yes\nUMask 002\n#KeyFile /etc/dkimkeys/dkim.key\nSocket                    local:/var/spool/postfix/opendkim/opendkim.sock\nUserID                opendkim\nKeyTable        /etc/opendkim/key.table\nSigningTable        refile:/etc/opendkim/signing.table\nMinimumKeyBits 1024\nRequireSafeKeys no # testing\n";
        let c = OpenDkimConf::parse(conf).unwrap();
        assert_eq!(
            c.key_table,
            Some(TableRef::File("/etc/opendkim/key.table".into()))
        );
        assert_eq!(
            c.signing_table,
            Some(TableRef::Refile("/etc/opendkim/signing.table".into()))
        );
        assert_eq!(c.user_and_group(), Some(("opendkim", None)));
        assert_eq!(c.minimum_key_bits, Some(1024));
        assert_eq!(c.require_safe_keys, Some(false));
        assert_eq!(c.key_file, None);
        assert_eq!(
            c.socket.as_deref(),
            Some("local:/var/spool/postfix/opendkim/opendkim.sock")
        );
        let files: Vec<(&str, &str)> = c
            .files
            .iter()
            .map(|(n, p)| (n.as_str(), p.to_str().unwrap()))
            .collect();
        assert_eq!(
            files,
            [
                ("KeyTable", "/etc/opendkim/key.table"),
                ("SigningTable", "/etc/opendkim/signing.table")
            ]
        );
        let more = OpenDkimConf::parse(
            "InternalHosts refile:/etc/opendkim/hosts\nExternalIgnoreList /etc/opendkim/ignore\nMTA csl:MSA\nTrustAnchorFile /usr/share/dns/root.key\nPeerList db:/var/db/peers.db\ninternalhosts file:/second\n",
        )
        .unwrap();
        let names: Vec<&str> = more.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "InternalHosts",
                "ExternalIgnoreList",
                "TrustAnchorFile",
                "PeerList"
            ]
        );
        assert_eq!(more.files[0].1, PathBuf::from("/etc/opendkim/hosts"));
        assert_eq!(more.files[3].1, PathBuf::from("/var/db/peers.db"));
        let e = OpenDkimConf::parse("\nMinimumKeyBits lots\n").unwrap_err();
        assert_eq!(e.line, 2);
        let single = OpenDkimConf::parse(
            "Domain example.com\nKeyFile /etc/dkimkeys/dkim.key\nSelector 2007\nUserID opendkim:opendkim\n",
        )
        .unwrap();
        assert_eq!(single.selector.as_deref(), Some("2007"));
        assert_eq!(
            single.user_and_group(),
            Some(("opendkim", Some("opendkim")))
        );
    }
}

//! The zone-file target: the embedded default that needs no server and no account.
//!
//! Merges maildns's TXT sets into an RFC 1035 master file (a whole zone or a
//! fragment that a zone `$INCLUDE`s) for BIND, NSD and Knot users and for DNS hosts
//! without an API. Every line maildns does not change is kept byte for byte; when
//! the file holds the zone's SOA (maildns owns the whole file), its serial is bumped.
//! Writes are atomic (temporary file, fsync, rename) and keep the file's mode.
//!
//! The file is read as BIND reads it ([`reader`]): every legal owner name, `$ORIGIN`,
//! `$TTL`, and `$INCLUDE` followed, so values in included files count as present.
//! maildns never writes into an included file: a value it must change there is
//! refused, naming that file and line. Before writing, the result is read back and
//! must hold exactly the asked set with every other record unchanged (owner, TTL,
//! type, data), or nothing is written.
//!
//! A change set ([`Provider::apply`]) is one read of the file and ONE atomic
//! rename for all its owner names, so it is atomic; it is compare-and-swap
//! against the file as read: under the adapter's lock the file is read again
//! and every RRset must still be as the caller read it (or already as wanted),
//! else [`ErrorKind::Conflict`] and nothing is written. The lock serializes the
//! writers of this process; another program editing the file between that read
//! and the rename (a window of one render) is not detected. The SOA serial is
//! bumped once per change set.
//!
//! Every such refusal, and every file maildns cannot read, is an
//! [`ErrorKind::Config`] error whose message starts with `file:line:` (the zone
//! file is the operator's, not a host's answer).

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use crate::registry::{Credential, CredentialKind, Host, Required, Settings};
use crate::{
    ApplyError, ApplyTraits, Error, ErrorKind, Fqdn, Observed, Operation, Profile, Provider,
    TxtChange, TxtRecord, TxtSet, Zone, ZoneSets,
};

pub mod files;
mod lexer;
mod owner;
pub mod reader;

pub use files::ZoneFiles;
use reader::Entry;
pub use reader::{OwnerName, ZoneParseError, ZoneRecord, read_records};

/// Where the zone file is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The zone (or fragment) file.
    pub path: PathBuf,
    /// The zone apex the file belongs to.
    pub zone: Fqdn,
    /// TTL for new records when the file has no `$TTL`, in seconds.
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

/// The registry entry: no credential; `path` required (`{zone}` in it gives one
/// file per zone), `bump_serial` defaults to yes.
pub const HOST: Host = Host {
    kind: KIND,
    descriptor_toml: include_str!("../../hosts/zonefile.toml"),
    credential: CredentialKind::None,
    required: &[Required {
        key: "path",
        example: "\"example.com.zone\"",
    }],
    optional: &["bump_serial"],
    check: crate::registry::no_check,
    connect,
};

fn connect(
    settings: &Settings,
    _credential: Credential,
    _policy: crate::http::RetryPolicy,
) -> Result<std::sync::Arc<dyn Provider>, Error> {
    let path = settings
        .path
        .as_ref()
        .ok_or_else(|| crate::registry::missing(KIND, "path"))?;
    Ok(std::sync::Arc::new(ZoneFiles::new(
        path,
        &settings.zones,
        settings.bump_serial.unwrap_or(true),
    )?))
}

impl ZoneFile {
    /// A zone-file target; the file is created on first write if it does not exist.
    ///
    /// # Errors
    /// Only if the compiled-in descriptor of the zone-file host does not parse
    /// (the registry test makes sure it does); no file is touched here.
    pub fn new(config: Config) -> Result<Self, Error> {
        Ok(ZoneFile {
            config,
            profile: crate::registry::profile(KIND)?,
            lock: Mutex::new(()),
        })
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
        let text = self.read_text(op, name)?;
        Parsed::parse(&text, &self.config.zone, Some(&self.config.path))
            .map_err(|e| self.err(op, Some(name), ErrorKind::Config, e.to_string()))
    }

    fn read_text(&self, op: Operation, name: &Fqdn) -> Result<String, Error> {
        match std::fs::read(&self.config.path) {
            Ok(b) => reader::utf8_text(b, Some(&self.config.path))
                .map_err(|e| self.err(op, Some(name), ErrorKind::Config, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(self.err(
                op,
                Some(name),
                ErrorKind::Config,
                format!("{}: {e}", self.config.path.display()),
            )),
        }
    }

    /// The new file text with the set at `name` replaced, read back and checked:
    /// the asked set and nothing else changed. A placement that would change what
    /// another record means (e.g. its TTL under RFC 1035 TTL rules) is retried at
    /// the end of the file; if that fails too, nothing is written.
    fn render_checked(
        &self,
        parsed: &Parsed,
        name: &Fqdn,
        set: &TxtSet,
        bump: bool,
    ) -> Result<String, RenderError> {
        let before = parsed.others(name);
        let mut last = String::new();
        for at_end in [false, true] {
            let text = parsed.render_with(name, set, bump, at_end)?;
            let again = match Parsed::parse(&text, &self.config.zone, Some(&self.config.path)) {
                Ok(p) => p,
                Err(e) => {
                    last = format!("the result would not read back: {e}");
                    continue;
                }
            };
            let mut got = again.txt_set(name);
            if let Some(g) = got.as_mut() {
                g.records.sort();
            }
            let mut want = (!set.records.is_empty()).then(|| set.clone());
            if let Some(w) = want.as_mut() {
                w.records.sort();
            }
            if got != want {
                last = format!("read back, the set at {name} would be {got:?}, not {want:?}");
            } else if again.others(name) != before {
                last = "other records would change (owner, TTL or data)".into();
            } else {
                return Ok(text);
            }
        }
        Err(RenderError::Check(last))
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
        let mut set = set.clone();
        if set.ttl == 0 {
            set.ttl = self.config.default_ttl;
        }
        let current = parsed.txt_set(name);
        let wanted = (!set.records.is_empty()).then_some(&set);
        if current.as_ref() == wanted {
            return Ok(());
        }
        let text = self
            .render_checked(&parsed, name, &set, self.config.bump_serial)
            .map_err(|e| self.render_error(op, name, e))?;
        if text == parsed.original_text() {
            return Ok(());
        }
        self.write_text(op, name, &text)
    }

    fn render_error(&self, op: Operation, name: &Fqdn, e: RenderError) -> Error {
        match e {
            RenderError::Refused(z) => self.err(op, Some(name), ErrorKind::Config, z.to_string()),
            RenderError::Check(d) => self.err(
                op,
                Some(name),
                ErrorKind::Config,
                format!("{}: refusing to write: {d}", self.config.path.display()),
            ),
        }
    }

    fn write_text(&self, op: Operation, name: &Fqdn, text: &str) -> Result<(), Error> {
        atomic_write(&self.config.path, text.as_bytes()).map_err(|e| {
            self.err(
                op,
                Some(name),
                ErrorKind::Config,
                format!("writing {}: {e}", self.config.path.display()),
            )
        })
    }

    /// The TXT sets at `names`, from one read of the file.
    async fn read_names(&self, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        for name in names {
            self.check_name(Operation::Read, name)?;
        }
        let Some(first) = names.first() else {
            return Ok(ZoneSets::new());
        };
        let _guard = self.lock.lock().await;
        let parsed = self.load(Operation::Read, first)?;
        Ok(names
            .iter()
            .map(|n| (n.clone(), Observed::of(parsed.txt_set(n))))
            .collect())
    }

    /// The whole change set: one read under the lock, every RRset compared with
    /// the one read, every change rendered and checked in turn, the serial bumped
    /// once, one atomic rename.
    async fn apply_changes(&self, changes: &[TxtChange]) -> Result<(), Error> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        let mut wanted = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let op = c.operation();
            self.check_name(op, &c.name)?;
            if changes[..i].iter().any(|p| p.name == c.name) {
                return Err(self.err(
                    op,
                    Some(&c.name),
                    ErrorKind::Invalid,
                    "the change set changes this name twice".into(),
                ));
            }
            let mut set = c.wanted().cloned().unwrap_or(TxtSet {
                ttl: self.config.default_ttl,
                records: Vec::new(),
            });
            self.profile.check_set(KIND, op, &c.name, &set.records)?;
            if set.ttl == 0 {
                set.ttl = self.config.default_ttl;
            }
            wanted.push(set);
        }
        let _guard = self.lock.lock().await;
        let parsed = self.load(first.operation(), &first.name)?;
        // Compare-and-swap against the file as it is now.
        for (c, set) in changes.iter().zip(&wanted) {
            let now = parsed.txt_set(&c.name);
            let in_place = crate::changeset::same_content(Some(set), now.as_ref());
            if !in_place && !c.old.unchanged_in(now.as_ref()) {
                return Err(crate::changeset::conflict(
                    KIND,
                    c.operation(),
                    &c.name,
                    &format!(
                        "the TXT RRset in {} changed since it was read",
                        self.config.path.display()
                    ),
                ));
            }
        }
        let original = parsed.original_text();
        let mut current = parsed;
        let mut text = original.clone();
        for (c, set) in changes.iter().zip(&wanted) {
            let op = c.operation();
            let now = current.txt_set(&c.name);
            if now.as_ref() == (!set.records.is_empty()).then_some(set) {
                continue;
            }
            text = self
                .render_checked(&current, &c.name, set, false)
                .map_err(|e| self.render_error(op, &c.name, e))?;
            current = Parsed::parse(&text, &self.config.zone, Some(&self.config.path))
                .map_err(|e| self.err(op, Some(&c.name), ErrorKind::Config, e.to_string()))?;
        }
        if text == original {
            return Ok(());
        }
        if self.config.bump_serial {
            text = current
                .with_bumped_serial()
                .map_err(|e| self.render_error(first.operation(), &first.name, e))?;
        }
        self.write_text(first.operation(), &first.name, &text)
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

    /// The file's own zone, named without reading it.
    fn zone_for(&self, apex: &Fqdn) -> Option<Zone> {
        (*apex == self.config.zone).then(|| Zone {
            name: self.config.zone.clone(),
            id: self.config.path.display().to_string(),
        })
    }

    /// One rename for the whole change set, checked against the file under the lock.
    fn apply_traits(&self) -> ApplyTraits {
        ApplyTraits {
            atomic: true,
            compare_and_swap: true,
            deferred: false,
        }
    }

    /// One read of the file for every name.
    async fn read_sets(&self, _zone: &Zone, names: &[Fqdn]) -> Result<ZoneSets, Error> {
        self.read_names(names).await
    }

    /// One read and one atomic rename for the whole change set.
    async fn apply(&self, _zone: &Zone, changes: &[TxtChange]) -> Result<(), ApplyError> {
        self.apply_changes(changes)
            .await
            .map_err(ApplyError::nothing_written)
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
///
/// # Errors
/// The I/O error of creating the directory or the temporary file, writing,
/// syncing or renaming; the temporary file is removed when a step fails.
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

/// What the writer refuses or finds wrong with its own result.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RenderError {
    /// The file cannot be read or a value to change lives where maildns never writes.
    Refused(ZoneParseError),
    /// Read back, the result would not mean what was asked (detail).
    Check(String),
}

/// A parsed zone file: its own lines and every record read (included files too).
#[derive(Debug, Clone)]
struct Parsed {
    lines: Vec<String>,
    trailing_newline: bool,
    read: reader::Read,
}

impl Parsed {
    fn parse(text: &str, zone: &Fqdn, path: Option<&Path>) -> Result<Parsed, ZoneParseError> {
        let read = reader::read(text, zone, path)?;
        let trailing_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<String> = if body.is_empty() && !trailing_newline {
            Vec::new()
        } else {
            body.split('\n').map(str::to_string).collect()
        };
        Ok(Parsed {
            lines,
            trailing_newline,
            read,
        })
    }

    fn txt_entries<'a>(&'a self, name: &'a Fqdn) -> impl Iterator<Item = &'a Entry> + 'a {
        self.read
            .entries
            .iter()
            .filter(move |e| e.rtype == "TXT" && e.owner.is(name))
    }

    /// Where an entry is, as `file:line`.
    fn place(&self, e: &Entry) -> ZoneParseError {
        ZoneParseError {
            file: self.read.files.get(e.file).cloned().flatten(),
            line: e.first + 1,
            message: String::new(),
        }
    }

    /// The TXT set at `name` as BIND would load it (values from included files
    /// too). Its TTL is the last record's: BIND gives an RRset the TTL of the last
    /// batch of records that holds it, and one TTL within a batch.
    fn txt_set(&self, name: &Fqdn) -> Option<TxtSet> {
        let mut ttl = None;
        let mut records = Vec::new();
        for e in self.txt_entries(name) {
            if let Some(r) = &e.txt {
                records.push(r.clone());
                ttl = Some(e.ttl);
            }
        }
        ttl.map(|ttl| TxtSet { ttl, records })
    }

    /// Every record but the TXT set at `name`, as (file, owner, TTL, type, data);
    /// the SOA serial is left out (the writer bumps it).
    fn others(&self, name: &Fqdn) -> Vec<(usize, String, u32, String, String)> {
        self.read
            .entries
            .iter()
            .filter(|e| !(e.rtype == "TXT" && e.owner.is(name)))
            .map(|e| {
                let data: Vec<&str> = e
                    .rdata
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !(e.rtype == "SOA" && *i == 2))
                    .map(|(_, t)| t.text.as_str())
                    .collect();
                (
                    e.file,
                    e.owner.to_presentation(),
                    e.ttl,
                    e.rtype.clone(),
                    data.join(" "),
                )
            })
            .collect()
    }

    /// The file with the TXT set at `name` replaced by `set` (removed when empty).
    /// Records that stay (same value and TTL) keep their lines; new lines go where
    /// the first replaced record was, else after the name's last record in this
    /// file, else at the end (always at the end with `at_end`).
    ///
    /// Refuses when a record to change or remove lives in an included file, or when
    /// the SOA serial to bump does.
    fn render_with(
        &self,
        name: &Fqdn,
        set: &TxtSet,
        bump: bool,
        at_end: bool,
    ) -> Result<String, RenderError> {
        let mut lines: Vec<Option<String>> = self.lines.iter().cloned().map(Some).collect();
        // A line stays when it holds a wanted value at the wanted TTL.
        let diff = super::diff_records(&set.records, self.txt_entries(name), |e, w| {
            e.ttl == set.ttl && e.txt.as_ref() == Some(w)
        });
        let (to_add, old): (Vec<&TxtRecord>, Vec<&Entry>) = (diff.create, diff.delete);
        let last_kept: Option<usize> = diff.keep.iter().rev().find(|e| e.file == 0).map(|e| e.last);
        if let Some(e) = old.iter().find(|e| e.file != 0) {
            let mut err = self.place(e);
            err.message = format!(
                "the TXT record at {name} that must change is in this included file; maildns never writes into an included file: change it there or move it into {}",
                self.read.files[0]
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the zone file".into())
            );
            return Err(RenderError::Refused(err));
        }
        if old.is_empty() && to_add.is_empty() {
            return Ok(self.original_text());
        }
        let anchor = if at_end {
            None
        } else {
            old.first()
                .map(|e| e.first)
                .or_else(|| last_kept.map(|l| l + 1))
                .or_else(|| {
                    self.read
                        .entries
                        .iter()
                        .rev()
                        .find(|e| e.file == 0 && e.owner.is(name))
                        .map(|e| e.last + 1)
                })
        };
        let main: Vec<&Entry> = self.read.entries.iter().filter(|e| e.file == 0).collect();
        let owner = OwnerName::from_fqdn(name);
        for e in &old {
            for l in lines.iter_mut().take(e.last + 1).skip(e.first) {
                *l = None;
            }
        }
        // A record that inherited its owner (blank owner field) from a removed one
        // gets the owner written out, so it keeps it.
        let is_old = |n: &Entry| old.iter().any(|o| o.file == 0 && o.first == n.first);
        for pair in main.windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            if is_old(prev)
                && !is_old(next)
                && !next.owner_explicit
                && let Some(Some(line)) = lines.get_mut(next.first)
            {
                *line = format!(
                    "{}{}",
                    owner.relative_text(self.origin_at(next.first)),
                    line
                );
            }
        }
        let origin = match anchor {
            Some(l) => self.origin_at(l),
            None => &self.read.final_origin,
        };
        let new_lines: Vec<String> = to_add
            .iter()
            .map(|r| {
                format!(
                    "{}\t{}\tIN\tTXT\t{}",
                    owner.relative_text(origin),
                    set.ttl,
                    r.to_presentation()
                )
            })
            .collect();
        if bump {
            self.bump_serial(&mut lines)?;
        }
        let mut out: Vec<String> = Vec::with_capacity(lines.len() + new_lines.len());
        let mut inserted = new_lines.is_empty();
        for (i, l) in lines.into_iter().enumerate() {
            if !inserted && anchor == Some(i) {
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
        let mut text = out.join("\n");
        if self.trailing_newline || self.lines.is_empty() {
            text.push('\n');
        }
        Ok(text)
    }

    /// The origin in effect before 0-based line `line` of this file.
    fn origin_at(&self, line: usize) -> &OwnerName {
        self.read
            .origin_at
            .get(line)
            .unwrap_or(&self.read.final_origin)
    }

    fn original_text(&self) -> String {
        let mut text = self.lines.join("\n");
        if self.trailing_newline {
            text.push('\n');
        }
        text
    }

    /// The file text with its SOA serial bumped (as [`Parsed::bump_serial`]).
    fn with_bumped_serial(&self) -> Result<String, RenderError> {
        let mut lines: Vec<Option<String>> = self.lines.iter().cloned().map(Some).collect();
        self.bump_serial(&mut lines)?;
        let mut text = lines.into_iter().flatten().collect::<Vec<_>>().join("\n");
        if self.trailing_newline {
            text.push('\n');
        }
        Ok(text)
    }

    /// Bumps the serial of the file's SOA in place (date-based serials move to
    /// today's `YYYYMMDD00` at least). No SOA: nothing to bump (a fragment).
    fn bump_serial(&self, lines: &mut [Option<String>]) -> Result<(), RenderError> {
        let Some(soa) = self.read.entries.iter().find(|e| e.rtype == "SOA") else {
            return Ok(());
        };
        if soa.file != 0 {
            let mut err = self.place(soa);
            err.message = "the SOA whose serial maildns must bump is in this included file; maildns never writes into an included file: move the SOA into the zone file or set bump_serial = false".into();
            return Err(RenderError::Refused(err));
        }
        let Some(serial_tok) = soa.rdata.get(2) else {
            return Ok(());
        };
        let Ok(serial) = serial_tok.text.parse::<u32>() else {
            return Ok(());
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
        if let Some(Some(line)) = lines.get_mut(serial_tok.line) {
            let col = serial_tok.col;
            let end = col + serial_tok.text.len();
            if line.get(col..end) == Some(serial_tok.text.as_str()) {
                line.replace_range(col..end, &next.to_string());
            }
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::CharacterString;

    fn zone() -> Fqdn {
        Fqdn::parse("example.com").unwrap()
    }

    fn parse(text: &str) -> Parsed {
        Parsed::parse(text, &zone(), None).unwrap()
    }

    const ZONE: &str = "$ORIGIN example.com.\n$TTL 3600\n@\tIN SOA ns1 hostmaster ( 2024010101 ; serial\n\t\t3600 900 604800 300 )\n\tIN NS ns1\n; operator's comment\n@\tIN TXT \"google-site-verification=abc\"\n@ 300 IN TXT \"v=spf1 -all\"\n\tIN MX 10 mail\nwww IN A 192.0.2.1\n";

    fn set(values: &[&str]) -> TxtSet {
        TxtSet {
            ttl: 300,
            records: values.iter().map(TxtRecord::from_value).collect(),
        }
    }

    fn render(p: &Parsed, name: &Fqdn, s: &TxtSet, bump: bool) -> String {
        p.render_with(name, s, bump, false).unwrap()
    }

    #[test]
    fn reads_txt_sets() {
        let p = parse(ZONE);
        let s = p.txt_set(&zone()).unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[1].value(), b"v=spf1 -all");
        assert_eq!(
            s.ttl, 3600,
            "the RRset takes the first record's TTL, as BIND"
        );
        assert!(p.txt_set(&zone().child("www").unwrap()).is_none());
    }

    #[test]
    fn replace_keeps_other_lines_and_inherited_owner() {
        let p = parse(ZONE);
        let mut s = set(&[
            "google-site-verification=abc",
            "v=spf1 ip4:192.0.2.10/32 -all",
        ]);
        s.ttl = 3600;
        let out = render(&p, &zone(), &s, true);
        assert!(out.contains("; operator's comment\n"));
        assert!(out.contains("www IN A 192.0.2.1\n"));
        assert!(
            out.contains("2024010102")
                || out.contains(&format!("{}00", chrono::Utc::now().format("%Y%m%d")))
        );
        // the MX line inherited '@' from the removed TXT line: it must still belong to the apex
        let again = parse(&out);
        let mx = again.read.entries.iter().find(|e| e.rtype == "MX").unwrap();
        assert!(mx.owner.is(&zone()));
        let got = again.txt_set(&zone()).unwrap();
        assert_eq!(got.records[1].value(), b"v=spf1 ip4:192.0.2.10/32 -all");
        assert_eq!(got.records[0].value(), b"google-site-verification=abc");
        assert_eq!(again.others(&zone()), p.others(&zone()));
    }

    #[test]
    fn removing_a_chain_of_records_keeps_the_inherited_owner() {
        let text = "$ORIGIN example.com.\n$TTL 300\n_dmarc IN TXT \"a\"\n\tIN TXT \"b\"\n\tIN MX 10 mail\nwww IN A 192.0.2.1\n";
        let p = parse(text);
        let name = zone().child("_dmarc").unwrap();
        let out = render(&p, &name, &set(&["c"]), false);
        assert_eq!(
            out,
            "$ORIGIN example.com.\n$TTL 300\n_dmarc\t300\tIN\tTXT\t\"c\"\n_dmarc\tIN MX 10 mail\nwww IN A 192.0.2.1\n"
        );
        let again = parse(&out);
        assert_eq!(again.others(&name), p.others(&name));
    }

    #[test]
    fn ttl_change_rewrites_our_line() {
        let p = parse(ZONE);
        // As BIND reads ZONE: `@ 300 IN TXT` follows a TXT of the same owner in
        // the same batch, so it gets that record's 3600 ("TTL set to prior TTL").
        let mut s = set(&["google-site-verification=abc", "v=spf1 -all"]);
        s.ttl = 3600;
        assert_eq!(p.txt_set(&zone()), Some(s.clone()));
        assert_eq!(render(&p, &zone(), &s, false), ZONE, "nothing to change");
        s.ttl = 300;
        let out = render(&p, &zone(), &s, false);
        assert!(
            out.contains("\tIN NS ns1\n; operator's comment\n@\t300\tIN\tTXT\t\"google-site-verification=abc\"\n@\t300\tIN\tTXT\t\"v=spf1 -all\"\n@\tIN MX 10 mail\n"),
            "{out}"
        );
        let again = parse(&out);
        assert_eq!(again.txt_set(&zone()), Some(s));
        assert_eq!(again.others(&zone()), p.others(&zone()));
    }

    #[test]
    fn long_values_are_split_and_read_back() {
        let p = parse(ZONE);
        let name = zone().child("202611._domainkey").unwrap();
        let v = format!("v=DKIM1; k=rsa; p={}", "A".repeat(736));
        let out = render(&p, &name, &set(&[&v]), false);
        assert!(out.contains("202611._domainkey\t300\tIN\tTXT\t\"v=DKIM1; k=rsa; p="));
        let again = parse(&out);
        let s = again.txt_set(&name).unwrap();
        assert_eq!(s.records[0].value(), v.as_bytes());
        assert!(s.records[0].strings().len() >= 3);
        assert!(out.contains("2024010101"), "no bump when asked not to");
    }

    #[test]
    fn empty_file_becomes_fragment() {
        let p = parse("");
        let out = render(
            &p,
            &zone().child("_dmarc").unwrap(),
            &set(&["v=DMARC1; p=none"]),
            true,
        );
        assert_eq!(out, "_dmarc\t300\tIN\tTXT\t\"v=DMARC1; p=none\"\n");
    }

    #[test]
    fn new_lines_are_relative_to_the_origin_in_effect() {
        let text = "$ORIGIN example.com.\n$TTL 300\n@ IN NS ns1\n$ORIGIN sub.example.com.\nhost IN A 192.0.2.1\n";
        let p = parse(text);
        let name = Fqdn::parse("_dmarc.example.com").unwrap();
        let out = render(&p, &name, &set(&["v=DMARC1; p=none"]), false);
        assert!(
            out.ends_with("_dmarc.example.com.\t300\tIN\tTXT\t\"v=DMARC1; p=none\"\n"),
            "{out}"
        );
        let name = Fqdn::parse("_dmarc.sub.example.com").unwrap();
        let out = render(&p, &name, &set(&["v=DMARC1; p=none"]), false);
        assert!(
            out.ends_with("\n_dmarc\t300\tIN\tTXT\t\"v=DMARC1; p=none\"\n"),
            "{out}"
        );
        assert_eq!(parse(&out).txt_set(&name).unwrap().records.len(), 1);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = read_records("@ IN TXT \"abc\n", &zone()).unwrap_err();
        assert_eq!(e.line, 1);
        let e = read_records("a IN A 1.2.3.4\n( IN TXT \"x\"\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_records("$TTL\n", &zone()).unwrap_err();
        assert_eq!(e.line, 1);
        let e = read_records("$TTL 60\na IN TXT \"x\"\nb IN TXT \"\\999\"\n", &zone()).unwrap_err();
        assert_eq!((e.line, e.to_string().contains("bad TXT data")), (3, true));
    }

    #[test]
    fn ttl_forms() {
        use reader::parse_ttl;
        assert_eq!(parse_ttl("3600"), Some(3600));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1w"), Some(604_800));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("99999999999"), None);
    }

    /// Issue #11 item 4: a zone with wildcard owners is read and written.
    #[test]
    fn wildcard_owners_are_read_and_kept() {
        let text = "$ORIGIN example.com.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\n* IN A 192.0.2.1\n*._domainkey IN TXT \"v=DKIM1; p=\"\n";
        let recs = read_records(text, &zone()).unwrap();
        assert_eq!(recs[2].owner.to_presentation(), "*.example.com.");
        assert_eq!(recs[2].rdata, "192.0.2.1");
        assert_eq!(recs[3].owner.to_presentation(), "*._domainkey.example.com.");
        assert_eq!(recs[3].txt.as_ref().unwrap().value(), b"v=DKIM1; p=");
        let p = parse(text);
        let name = zone().child("mail._domainkey").unwrap();
        assert_eq!(p.txt_set(&name), None, "a wildcard is not the name itself");
        let out = render(&p, &name, &set(&["v=DKIM1; k=rsa; p=AAAA"]), true);
        assert!(
            out.contains("\n* IN A 192.0.2.1\n*._domainkey IN TXT \"v=DKIM1; p=\"\n"),
            "{out}"
        );
        assert_eq!(
            parse(&out).txt_set(&name),
            Some(set(&["v=DKIM1; k=rsa; p=AAAA"]))
        );
    }

    #[test]
    fn escaped_labels_at_relative_absolute_and_blank_owners() {
        let text = "$TTL 60\na\\.b IN TXT \"1\"\nb\\046c IN TXT \"2\"\n\\065BC.example.com. IN TXT \"3\"\n@ IN TXT \"4\"\n\tIN TXT \"5\"\nx.example.org. IN TXT \"6\"\n\t7 in txt \"7\"\n";
        let recs = read_records(text, &zone()).unwrap();
        let owners: Vec<String> = recs.iter().map(|r| r.owner.to_presentation()).collect();
        assert_eq!(
            owners,
            [
                "a\\.b.example.com.",
                "b\\.c.example.com.",
                "abc.example.com.",
                "example.com.",
                "example.com.",
                "x.example.org.",
                "x.example.org.",
            ]
        );
        assert_eq!(recs[0].owner.labels()[0], b"a.b");
        // ` sub 7 in txt` has a blank owner: `sub` is then not a TTL, class or type.
        assert!(read_records("$TTL 60\na IN TXT \"x\"\n sub 7 IN TXT \"y\"\n", &zone()).is_err());
        for bad in [
            "a\\256 IN TXT \"x\"",
            "a..b IN TXT \"x\"",
            ".a IN TXT \"x\"",
            "a\\2 IN TXT \"x\"",
        ] {
            let e = read_records(&format!("$TTL 60\n{bad}\n"), &zone()).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
        }
        let long = format!("$TTL 60\n{} IN TXT \"x\"\n", "a".repeat(64));
        assert!(
            read_records(&long, &zone())
                .unwrap_err()
                .message
                .contains("63")
        );
    }

    #[test]
    fn origin_ttl_and_class_in_either_order() {
        // TTLs as named-checkzone 9.18 gives them for this text.
        let text = "$ORIGIN example.com.\n@ IN SOA ns1 h 1 2 3 4 77\n@ IN NS ns1\na 500 IN TXT \"x\"\nb IN TXT \"y\"\n$TTL 900\nc IN 600 TXT \"z\"\nd TXT \"w\"\n$ORIGIN sub\ne 1h IN TXT \"v\"\n";
        let recs = read_records(text, &zone()).unwrap();
        let got: Vec<(String, u32)> = recs
            .iter()
            .map(|r| (r.owner.to_presentation(), r.ttl))
            .collect();
        let want = [
            ("example.com.", 77),
            ("example.com.", 77),
            ("a.example.com.", 500),
            ("b.example.com.", 77),
            ("c.example.com.", 600),
            ("d.example.com.", 900),
            ("e.sub.example.com.", 3600),
        ];
        assert_eq!(got, want.map(|(o, t)| (o.to_string(), t)));
        // Without $TTL and with an explicit SOA TTL, the last explicit TTL carries on.
        let text =
            "@ 100 IN SOA ns1 h 1 2 3 4 77\n@ IN NS ns1\na 500 IN TXT \"x\"\nb IN TXT \"y\"\n";
        let ttls: Vec<u32> = read_records(text, &zone())
            .unwrap()
            .iter()
            .map(|r| r.ttl)
            .collect();
        assert_eq!(ttls, [100, 100, 500, 500]);
        let e = read_records("a IN TXT \"x\"\n", &zone()).unwrap_err();
        assert!(e.message.contains("no TTL"), "{e}");
        let e = read_records("$TTL 60\na IN CH TXT \"x\"\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_records("$TTL 60\na IN IN TXT \"x\"\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
    }

    /// BIND's batches, as named-checkzone 9.18 loads these texts.
    #[test]
    fn ttls_within_a_batch_follow_the_first() {
        let ttls = |t: &str| -> Vec<u32> {
            read_records(t, &zone())
                .unwrap()
                .iter()
                .map(|r| r.ttl)
                .collect()
        };
        assert_eq!(
            ttls("$TTL 100\na 7 TXT \"x\"\na 5 TXT \"y\"\nd TXT \"w\"\n"),
            [7, 7, 100]
        );
        assert_eq!(
            ttls("@ 3600 IN SOA ns1 h 1 2 3 4 5\na TXT \"x\"\na 5 TXT \"y\"\nb TXT \"z\"\n"),
            [3600, 3600, 3600, 3600]
        );
        // A new batch of the same owner: its TTL is the set's (the last batch wins).
        let p = parse("$TTL 100\na 5 TXT \"x\"\nb TXT \"z\"\na 3600 TXT \"y\"\n");
        assert_eq!(p.txt_set(&zone().child("a").unwrap()).unwrap().ttl, 3600);
    }

    #[test]
    fn parentheses_and_comments() {
        let text = "$TTL 60\nmail._domainkey\tIN\tTXT\t( \"v=DKIM1; h=sha256; k=rsa; \" ; key\n\t  \"p=AB;C\" )  ; ----- DKIM key mail for example.com\nq IN TXT \"a;b\" ; \"not data\"\nr IN TXT \"a\"b\n";
        let recs = read_records(text, &zone()).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(
            recs[0].txt.as_ref().unwrap().value(),
            b"v=DKIM1; h=sha256; k=rsa; p=AB;C"
        );
        assert_eq!(recs[1].line, 4);
        assert_eq!(recs[1].txt.as_ref().unwrap().value(), b"a;b");
        let r = recs[2].txt.as_ref().unwrap();
        assert_eq!(
            r.strings().len(),
            2,
            "\"a\"b is two strings, as BIND reads it"
        );
        let e = read_records("$TTL 60\na IN TXT ( \"x\"\n\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn generate_and_unknown_directives_are_refused_with_their_line() {
        let e = read_records(
            "$TTL 60\na IN A 192.0.2.1\n$GENERATE 1-10 host$ A 192.0.2.$\n",
            &zone(),
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("$GENERATE"), "{e}");
        assert_eq!(e.to_string(), format!("line 3: {}", e.message));
        let e = read_records("$TTL 60\n$FOO bar\n", &zone()).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "unknown directive $FOO"));
        let e = read_records("$TTL 60\n$INCLUDE other.db\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = read_records("$TTL 60\n $ORIGIN foo.\n", &zone()).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn generic_txt_data() {
        let recs =
            read_records("$TTL 60\na IN TYPE16 \\# 9 03616263 0464656667\n", &zone()).unwrap();
        let r = recs[0].txt.as_ref().unwrap();
        assert_eq!(r.strings().len(), 2);
        assert_eq!(r.value(), b"abcdefg");
        assert!(read_records("$TTL 60\na IN TXT \\# 3 0361\n", &zone()).is_err());
    }

    /// Found by the differential test against named-checkzone: BIND batches
    /// records by the owner name AS WRITTEN (`dns_name_caseequal`), so `B` then
    /// `b` are two batches and the second keeps its own TTL, while two records
    /// of one batch take the first one's TTL.
    #[test]
    fn a_batch_ends_where_the_owner_changes_case_as_in_bind() {
        let ttls = |text: &str| -> Vec<u32> {
            read_records(text, &zone())
                .unwrap()
                .iter()
                .map(|r| r.ttl)
                .collect()
        };
        assert_eq!(ttls("B 100 TXT \"x\"\nb 50 TXT \"x\"\n"), [100, 50]);
        assert_eq!(ttls("b 100 TXT \"x\"\nb 50 TXT \"y\"\n"), [100, 100]);
        assert_eq!(ttls("b 100 TXT \"x\"\n 50 TXT \"y\"\n"), [100, 100]);
    }

    /// Found by the differential test against named-checkzone.
    #[test]
    fn quoted_owners_generic_data_fallback_and_empty_data_as_bind() {
        let recs = read_records(
            "$TTL 60\n\"a;b\" TXT x\n\"q r.example.org.\" TXT y\n",
            &zone(),
        )
        .unwrap();
        assert_eq!(recs[0].owner.to_presentation(), "a\\;b.example.com.");
        assert_eq!(recs[0].owner.labels()[0], b"a;b");
        assert_eq!(recs[1].owner.to_presentation(), "q\\032r.example.org.");
        let recs = read_records("$TTL 60\na TXT \\# TYPE16 x\n", &zone()).unwrap();
        let strings: Vec<&[u8]> = recs[0]
            .txt
            .as_ref()
            .unwrap()
            .strings()
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        assert_eq!(strings, [&b"#"[..], b"TYPE16", b"x"]);
        for bad in ["a TXT", "a IN A", "\"\" TXT x", "$ORIGIN \"a;b\""] {
            let e = read_records(&format!("$TTL 60\n{bad}\n"), &zone()).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
        }
    }

    #[test]
    fn non_utf8_names_its_line() {
        let e = reader::utf8_text(b"a\nb\n\xff\n".to_vec(), Some(Path::new("z.db"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "z.db:3: not UTF-8 text (this reader takes UTF-8 zone files)"
        );
    }

    fn label_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::prelude::any::<u8>(), 1..20)
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "[ -~\t\n();\"\\\\$@*]{0,400}") {
            let _ = read_records(&text, &zone());
        }

        #[test]
        fn parse_never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = read_records(&text, &zone());
        }

        /// Any owner name (any bytes in its labels) written in presentation form,
        /// absolute or relative, reads back as the same name.
        #[test]
        fn owner_names_round_trip(labels in proptest::collection::vec(label_bytes(), 1..5), relative in proptest::prelude::any::<bool>()) {
            let origin = OwnerName::from_fqdn(&zone());
            let mut all = labels.clone();
            for l in &mut all {
                l.make_ascii_lowercase();
            }
            all.extend(origin.labels().iter().cloned());
            let name = OwnerName::parse(&OwnerName::root().to_presentation(), &origin).unwrap();
            proptest::prop_assert_eq!(name, OwnerName::root());
            let text: String = if relative {
                let full = OwnerName::parse(&format!("{}.", all.iter().map(|l| l.iter().map(|b| format!("\\{b:03}")).collect::<String>()).collect::<Vec<_>>().join(".")), &origin).unwrap();
                full.relative_text(&origin)
            } else {
                let full = OwnerName::parse(&format!("{}.", all.iter().map(|l| l.iter().map(|b| format!("\\{b:03}")).collect::<String>()).collect::<Vec<_>>().join(".")), &origin).unwrap();
                full.to_presentation()
            };
            let recs = read_records(&format!("$TTL 60\n{text} IN TXT \"x\"\n"), &zone()).unwrap();
            proptest::prop_assert_eq!(recs[0].owner.labels(), all.as_slice());
        }

        /// Records rendered with random owners (relative/absolute/blank), TTL and
        /// class in either order, parentheses and comments read back as written.
        #[test]
        fn rendered_zones_read_back(
            recs in proptest::collection::vec((label_bytes(), 0u32..100_000, 0u8..4, proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..3)), 1..6)
        ) {
            let origin = OwnerName::from_fqdn(&zone());
            let mut text = String::from("$ORIGIN example.com.\n$TTL 60\n");
            let mut want = Vec::new();
            // BIND's batch: the owner of the records read in a row and the TTL
            // of the run's first record (all records here are TXT).
            let mut run: Option<(OwnerName, u32)> = None;
            let mut prev: Option<OwnerName> = None;
            for (label, ttl, style, strings) in &recs {
                let mut l = label.clone();
                l.make_ascii_lowercase();
                let owner = OwnerName::parse(&format!("{}.example.com.", l.iter().map(|b| format!("\\{b:03}")).collect::<String>()), &origin).unwrap();
                let r = TxtRecord::from_strings(strings.iter().map(|s| CharacterString::new(s.clone()).unwrap()).collect()).unwrap();
                let owner_field = match (style, &prev) {
                    (0, Some(p)) if *p == owner => "\t".to_string(),
                    (1, _) => owner.to_presentation(),
                    _ => owner.relative_text(&origin),
                };
                let body = if style % 2 == 0 {
                    format!("{ttl} IN TXT {}", r.to_presentation())
                } else {
                    format!("IN {ttl} TXT ( ; open\n\t{} ) ; close \"quoted\"", r.to_presentation())
                };
                text.push_str(&format!("{owner_field} {body}\n"));
                // One TTL per RRset (RFC 2181 §5.2), as BIND 9.18 loads it: within
                // a batch (one owner's records in a row) every record gets the
                // batch's first TTL ("TTL set to prior TTL"); an owner written
                // again after another owner starts a new batch with its own TTL,
                // and the last batch's TTL is the RRset's (`txt_set`, and
                // `agree_with_bind` in the integration tests). The reader reports
                // each record's batch TTL.
                let batch_ttl = match &run {
                    Some((o, t)) if *o == owner => *t,
                    _ => *ttl,
                };
                run = Some((owner.clone(), batch_ttl));
                want.push((owner.clone(), batch_ttl, r));
                prev = Some(owner);
            }
            let got: Vec<(OwnerName, u32, TxtRecord)> = read_records(&text, &zone()).unwrap().into_iter().map(|r| (r.owner, r.ttl, r.txt.unwrap())).collect();
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn written_sets_read_back(values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), 1..4)) {
            let p = parse(ZONE);
            let name = zone().child("_dmarc").unwrap();
            let s = TxtSet { ttl: 60, records: values.iter().map(TxtRecord::from_value).collect() };
            let out = render(&p, &name, &s, true);
            let again = parse(&out);
            proptest::prop_assert_eq!(again.txt_set(&name), Some(s));
            proptest::prop_assert_eq!(again.txt_set(&zone()), p.txt_set(&zone()));
            proptest::prop_assert_eq!(again.others(&name), p.others(&name));
        }
    }
}

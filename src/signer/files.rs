//! The file-based OpenDKIM backend: key files, key.table and signing.table on
//! this host, and OpenDKIM's reload.
//!
//! Why this module exists: OpenDKIM fails silently. Rewritten tables do nothing
//! until a reload; a reload (SIGUSR1) only sets a flag, and the files are re-read at
//! the next milter connection, as the opendkim user; if that fails OpenDKIM keeps
//! the OLD configuration and goes on signing with the old selector, leaving one log
//! line. So [`OpenDkimFiles::switch`] checks beforehand everything OpenDKIM will check
//! (tables parse, opendkim.conf and every file-backed data set it names readable
//! by its user, the key passes `RequireSafeKeys`), and the caller proves the
//! switch afterwards with a probe signature ([`super::probe`]) through the signer's own
//! milter socket — the exit status of the reload command proves nothing, and
//! `opendkim-testkey` never talks to the running filter.
//!
//! Reload is `systemctl reload opendkim` by default (Debian's unit sends SIGUSR1).
//! Never SIGHUP: libmilter treats HUP like TERM and OpenDKIM exits.
//!
//! Key files: OpenDKIM reads key files for every message, so replacing a key file in
//! place switches keys at once, before any reload and before DNS serves the new
//! public key. Every key therefore goes into a NEW file
//! (`<key_dir>/<domain>/<selector>.private`), never overwriting one.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::milter::MilterSocket;
use super::opendkim::{KeyEntry, KeyTable, OpenDkimConf, SigningTable};
use super::unix::{self, SignerUser, same_file};
use super::{SignerError, check_name, reader};
use crate::keys::{self, PrivateKey, WriteOptions};
use crate::rotation::Selector;

/// The result of an [`OpenDkimFiles::switch`]: the tables now name the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// The key.table entry now in place.
    pub entry: KeyEntry,
    /// The entry the domain's pattern pointed to before, if any.
    pub previous: Option<KeyEntry>,
    /// Why the reload command failed, if it did (the tables are written: a
    /// restarted OpenDKIM reads them; the probe tells what is live).
    pub reload_error: Option<String>,
}

/// OpenDKIM with file tables, as configured on this host.
#[derive(Debug, Clone)]
pub struct OpenDkimFiles {
    /// Directory of key files (`<key_dir>/<domain>/<selector>.private`).
    pub key_dir: PathBuf,
    /// The KeyTable file.
    pub key_table: PathBuf,
    /// The SigningTable file (read as `refile:`).
    pub signing_table: PathBuf,
    /// opendkim.conf, checked to name the same tables (none: not checked).
    pub conf: Option<PathBuf>,
    /// The user OpenDKIM runs as (its `UserID`).
    pub user: SignerUser,
    /// The reload command; default `systemctl reload opendkim` (SIGUSR1, never HUP).
    pub reload_command: Vec<String>,
    /// Mode and owner of new key files (default 0600, owner unchanged).
    pub key_write: WriteOptions,
    /// The milter socket probes go through (opendkim.conf's `Socket`); `None`:
    /// the signer cannot be probed.
    pub socket: Option<MilterSocket>,
}

impl OpenDkimFiles {
    /// A signer with the default reload command and 0600 key files.
    pub fn new(
        key_dir: impl Into<PathBuf>,
        key_table: impl Into<PathBuf>,
        signing_table: impl Into<PathBuf>,
        user: SignerUser,
    ) -> Self {
        OpenDkimFiles {
            key_dir: key_dir.into(),
            key_table: key_table.into(),
            signing_table: signing_table.into(),
            conf: None,
            user,
            reload_command: vec!["systemctl".into(), "reload".into(), "opendkim".into()],
            key_write: WriteOptions::default(),
            socket: None,
        }
    }

    /// The milter socket named by opendkim.conf's `Socket` (`None` without a conf
    /// or without that setting).
    ///
    /// # Errors
    /// The conf cannot be read or parsed, or its `Socket` is not a socket spec.
    pub fn conf_socket(&self) -> Result<Option<MilterSocket>, SignerError> {
        let Some(conf_path) = &self.conf else {
            return Ok(None);
        };
        let conf = self.read_conf(conf_path)?;
        conf.socket
            .as_deref()
            .map(|s| {
                MilterSocket::parse(s).map_err(|why| SignerError::BadSocket {
                    conf: conf_path.clone(),
                    why: why.to_string(),
                })
            })
            .transpose()
    }

    fn read_conf(&self, conf_path: &Path) -> Result<OpenDkimConf, SignerError> {
        Ok(reader::read_conf(conf_path)?)
    }

    /// Where the key for `domain`/`selector` lives.
    ///
    /// # Errors
    /// [`SignerError::InvalidName`] for a domain that cannot be a path.
    pub fn key_path(&self, domain: &str, selector: &Selector) -> Result<PathBuf, SignerError> {
        super::key_file(&self.key_dir, domain, selector)
    }

    /// Writes `key` to a NEW file `<key_dir>/<domain>/<selector>.private` (the
    /// domain directory is created 0700 if missing, owned like the key files) and
    /// returns its path. Never overwrites: an existing file is an error.
    ///
    /// # Errors
    /// [`SignerError::InvalidName`], [`SignerError::CreateDir`], or
    /// [`SignerError::Key`] when the file exists or cannot be written.
    pub fn install_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<PathBuf, SignerError> {
        super::write_key_file(&self.key_dir, domain, selector, key, self.key_write)
    }

    /// Makes OpenDKIM sign `*@domain` with the key at `key_path` under `selector`:
    /// checks the tables parse, opendkim.conf names them, every file is readable by
    /// the opendkim user and the key is a valid key that passes RequireSafeKeys;
    /// then updates key.table and signing.table atomically and runs the reload
    /// command. The caller must confirm afterwards that OpenDKIM signs with the new
    /// selector (OpenDKIM's failures are silent) and may switch back to
    /// [`Switched::previous`].
    ///
    /// The key.table name reused is the one `*@domain` already points to when no
    /// other pattern uses it; otherwise the domain itself.
    ///
    /// # Errors
    /// The first check that fails, naming the file; [`SignerError::Write`]
    /// when a table cannot be replaced. A failed reload is not an error but
    /// [`Switched::reload_error`].
    pub fn switch(
        &self,
        domain: &str,
        selector: &Selector,
        key_path: &Path,
    ) -> Result<Switched, SignerError> {
        check_name("domain", domain)?;
        let domain = domain.to_ascii_lowercase();
        self.check_reload()?;
        let (mut kt, mut st) = self.read_tables()?;
        keys::load_private_key(key_path)?;
        self.check_readable(key_path)?;
        unix::check_safe_key(key_path, &self.user).map_err(|problems| SignerError::UnsafeKey {
            path: key_path.to_path_buf(),
            problems,
        })?;

        let pattern = format!("*@{domain}");
        let current = st
            .entries()
            .find(|e| e.pattern == pattern)
            .map(|e| e.name.clone());
        let previous = current.as_deref().and_then(|n| kt.get(n)).cloned();
        let shared = |n: &str| st.entries().any(|e| e.name == n && e.pattern != pattern);
        let name = match current {
            Some(n) if !shared(&n) => n,
            _ if !shared(&domain) => domain.clone(),
            _ => format!("{domain}.maildns"),
        };
        let entry = KeyEntry {
            name: name.clone(),
            domain: domain.clone(),
            selector: selector.as_str().to_string(),
            key: key_path.display().to_string(),
        };
        let table_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SignerError::Parse { path, source }
        };
        kt.upsert(entry.clone())
            .map_err(table_err(&self.key_table))?;
        st.upsert(&pattern, &name)
            .map_err(table_err(&self.signing_table))?;
        // The key entry first: a signing entry must never name a missing key.
        unix::write_table_atomic(&self.key_table, &kt.render(), None, None)?;
        unix::write_table_atomic(&self.signing_table, &st.render(), None, None)?;
        let reload_error = self.reload().err().map(|e| e.to_string());
        Ok(Switched {
            entry,
            previous,
            reload_error,
        })
    }

    /// Checks what OpenDKIM checks when it reloads, as its user: opendkim.conf
    /// (when configured) readable, parsing, naming the tables this signer edits,
    /// and every file it names ([`OpenDkimConf::files`]: every file-backed data
    /// set and plain file) readable; the two tables readable and parsing.
    ///
    /// # Errors
    /// The first problem found, naming the file.
    pub fn check_reload(&self) -> Result<(), SignerError> {
        self.check_conf()?;
        self.read_tables()?;
        self.check_readable(&self.key_table)?;
        self.check_readable(&self.signing_table)
    }

    /// Removes `domain`'s key.table entries for `selector`, and the signing.table
    /// entries that then name a missing key, and reloads. The key file is left for
    /// the caller to delete. Returns how many table lines were removed.
    ///
    /// # Errors
    /// A table that cannot be read, parsed or written, or a failed reload.
    pub fn remove_key(&self, domain: &str, selector: &Selector) -> Result<usize, SignerError> {
        check_name("domain", domain)?;
        let (mut kt, mut st) = self.read_tables()?;
        let names: Vec<String> = kt
            .entries()
            .filter(|e| e.domain.eq_ignore_ascii_case(domain) && e.selector == selector.as_str())
            .map(|e| e.name.clone())
            .collect();
        if names.is_empty() {
            return Ok(0);
        }
        let mut removed = 0;
        for n in &names {
            removed += kt.remove(n);
        }
        let orphans: Vec<String> = st
            .entries()
            .filter(|e| names.contains(&e.name) && kt.get(&e.name).is_none())
            .map(|e| e.pattern.clone())
            .collect();
        for p in &orphans {
            removed += st.remove(p);
        }
        unix::write_table_atomic(&self.signing_table, &st.render(), None, None)?;
        unix::write_table_atomic(&self.key_table, &kt.render(), None, None)?;
        self.reload()?;
        Ok(removed)
    }

    /// Parses both tables.
    pub fn read_tables(&self) -> Result<(KeyTable, SigningTable), SignerError> {
        let kt = reader::read_key_table(&self.key_table)?;
        let st = reader::read_signing_table(&self.signing_table)?;
        Ok((kt, st))
    }

    /// Runs the reload command (exit status 0 only means the signal was sent).
    pub fn reload(&self) -> Result<(), SignerError> {
        let fail = |reason: String| SignerError::Reload {
            command: self.reload_command.clone(),
            reason,
        };
        let (program, args) = self
            .reload_command
            .split_first()
            .ok_or_else(|| fail("empty command".into()))?;
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            return Err(fail(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn check_readable(&self, path: &Path) -> Result<(), SignerError> {
        if unix::readable_by(path, self.user.uid, self.user.gid) {
            Ok(())
        } else {
            Err(SignerError::Unreadable {
                path: path.to_path_buf(),
                user: self.user.name.clone(),
            })
        }
    }

    fn check_conf(&self) -> Result<(), SignerError> {
        let Some(conf_path) = &self.conf else {
            return Ok(());
        };
        let conf = self.read_conf(conf_path)?;
        if let Some((user, _group)) = conf.user_and_group()
            && user != self.user.name
            && user.parse::<u32>().ok() != Some(self.user.uid)
        {
            return Err(SignerError::UserMismatch {
                conf: conf_path.clone(),
                found: user.to_string(),
                expected: self.user.name.clone(),
            });
        }
        self.check_readable(conf_path)?;
        for (_setting, file) in &conf.files {
            self.check_readable(file)?;
        }
        let pairs = [
            ("KeyTable", &conf.key_table, &self.key_table),
            ("SigningTable", &conf.signing_table, &self.signing_table),
        ];
        for (setting, found, expected) in pairs {
            let ok = found
                .as_ref()
                .and_then(|t| t.path())
                .is_some_and(|p| same_file(p, expected));
            if !ok {
                return Err(SignerError::ConfMismatch {
                    conf: conf_path.clone(),
                    setting,
                    found: match found {
                        Some(crate::signer::opendkim::TableRef::File(p)) => {
                            crate::quote::quoted(&p.display().to_string())
                        }
                        Some(crate::signer::opendkim::TableRef::Refile(p)) => {
                            crate::quote::quoted(&format!("refile:{}", p.display()))
                        }
                        Some(crate::signer::opendkim::TableRef::Other(v)) => {
                            crate::quote::quoted(v)
                        }
                        None => "not set".into(),
                    },
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyError;
    use crate::keys::KeySpec;
    use std::os::unix::fs::PermissionsExt;

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        signer: OpenDkimFiles,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("signer-")
            .tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            d.join("key.table"),
            "# mine\nother other.org:s1:/k/other.private\n",
        )
        .unwrap();
        std::fs::write(d.join("signing.table"), "*@other.org other\n").unwrap();
        let keydir = d.join("keys");
        std::fs::create_dir(&keydir).unwrap();
        std::fs::set_permissions(&keydir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut signer = OpenDkimFiles::new(
            keydir,
            d.join("key.table"),
            d.join("signing.table"),
            SignerUser::current().unwrap(),
        );
        signer.reload_command = vec!["true".into()];
        Fixture { _dir: dir, signer }
    }

    #[test]
    fn install_never_overwrites_and_switch_edits_tables() {
        let f = fixture();
        let s = &f.signer;
        let key = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let path = s.install_key("Example.com", &sel("202401"), &key).unwrap();
        assert!(path.ends_with("example.com/202401.private"));
        assert!(matches!(
            s.install_key("example.com", &sel("202401"), &key),
            Err(SignerError::Key(KeyError::Exists { .. }))
        ));
        // Parent directories of the checkout may not pass RequireSafeKeys here; the
        // switch logic is covered end to end in tests/it/opendkim_signer.rs.
        if unix::check_safe_key(&path, &s.user).is_ok() {
            let sw = s.switch("example.com", &sel("202401"), &path).unwrap();
            assert_eq!(sw.previous, None);
            assert_eq!(sw.reload_error, None);
            let kt = std::fs::read_to_string(&s.key_table).unwrap();
            assert!(kt.starts_with("# mine\nother other.org:s1:/k/other.private\n"));
            assert!(kt.contains("example.com example.com:202401:"));
            assert_eq!(
                std::fs::read_to_string(&s.signing_table).unwrap(),
                "*@other.org other\n*@example.com example.com\n"
            );
            assert_eq!(s.remove_key("example.com", &sel("202401")).unwrap(), 2);
            assert_eq!(
                std::fs::read_to_string(&s.signing_table).unwrap(),
                "*@other.org other\n"
            );
        }
    }

    #[test]
    fn switch_refuses_broken_tables_and_bad_names() {
        let f = fixture();
        let s = &f.signer;
        std::fs::write(&s.signing_table, "*@other.org other\nbroken\n").unwrap();
        let key = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let path = s.install_key("example.com", &sel("a"), &key).unwrap();
        let err = s.switch("example.com", &sel("a"), &path).unwrap_err();
        assert!(
            matches!(&err, SignerError::Parse { source, .. } if source.line == 2),
            "{err}"
        );
        assert!(matches!(
            s.install_key("../etc", &sel("a"), &key),
            Err(SignerError::InvalidName { .. })
        ));
        // A selector that is no DNS label cannot reach the signer at all.
        assert!(Selector::parse("a b").is_err());
    }

    #[test]
    fn reload_failure_is_reported() {
        let mut f = fixture();
        f.signer.reload_command = vec!["false".into()];
        assert!(matches!(f.signer.reload(), Err(SignerError::Reload { .. })));
        f.signer.reload_command = vec![];
        assert!(f.signer.reload().is_err());
    }
}

//! The one reader of OpenDKIM's files, used by the signer ([`super::Signer`])
//! and by `maildns import opendkim` (`rotation::adopt`): opendkim.conf, then the
//! tables it names, each file read as UTF-8 and parsed by [`super::opendkim`].
//! Key files named by the key table are read with
//! [`crate::keys::load_private_key`].
//!
//! Why it exists: the signer and the import read the same files; one reader
//! gives both the same decoding (UTF-8 errors naming line and column) and the
//! same errors naming the file.

use std::path::{Path, PathBuf};

use super::opendkim::{KeyTable, OpenDkimConf, ParseError, SigningTable, TableRef};

/// Why an OpenDKIM file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read, or is not UTF-8.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error (`InvalidData` naming line and column when not UTF-8).
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: ParseError,
    },
}

/// Why the tables opendkim.conf names could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TablesError {
    /// A table could not be read or parsed.
    #[error(transparent)]
    File(#[from] ReadError),
    /// A table of a data set type maildns cannot read (`db:`, `ldap:`, ...).
    #[error(
        "{}: {setting} is {}: maildns reads only file: and refile: tables; convert it to a flat file first",
        conf.display(),
        crate::quote::quoted(value)
    )]
    Unsupported {
        /// opendkim.conf.
        conf: PathBuf,
        /// `KeyTable` or `SigningTable`.
        setting: &'static str,
        /// The value as written.
        value: String,
    },
}

/// Reads `path` as UTF-8 text.
///
/// # Errors
/// [`ReadError::Read`] when the file cannot be read or is not UTF-8.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    crate::config::decode_utf8(bytes).map_err(|e| ReadError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

fn parsed<T>(path: &Path, parse: fn(&str) -> Result<T, ParseError>) -> Result<T, ReadError> {
    parse(&read_text(path)?).map_err(|source| ReadError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses opendkim.conf at `path`.
///
/// # Errors
/// [`ReadError`] naming `path`.
pub fn read_conf(path: &Path) -> Result<OpenDkimConf, ReadError> {
    parsed(path, OpenDkimConf::parse)
}

/// Reads and parses the key table at `path`.
///
/// # Errors
/// [`ReadError`] naming `path`.
pub fn read_key_table(path: &Path) -> Result<KeyTable, ReadError> {
    parsed(path, KeyTable::parse)
}

/// Reads and parses the signing table at `path`.
///
/// # Errors
/// [`ReadError`] naming `path`.
pub fn read_signing_table(path: &Path) -> Result<SigningTable, ReadError> {
    parsed(path, SigningTable::parse)
}

/// The tables an opendkim.conf names, each with its path (`None` when the
/// setting is absent).
#[derive(Debug, Clone, Default)]
pub struct NamedTables {
    /// The `KeyTable` file and its contents.
    pub key_table: Option<(PathBuf, KeyTable)>,
    /// The `SigningTable` file and its contents.
    pub signing_table: Option<(PathBuf, SigningTable)>,
}

/// Reads the tables `conf` (read from `conf_path`) names.
///
/// # Errors
/// [`TablesError::Unsupported`] for a table that is not a flat file,
/// [`TablesError::File`] when one cannot be read or parsed.
pub fn read_named_tables(
    conf_path: &Path,
    conf: &OpenDkimConf,
) -> Result<NamedTables, TablesError> {
    let path = |setting: &'static str, t: &Option<TableRef>| match t {
        None => Ok(None),
        Some(TableRef::Other(value)) => Err(TablesError::Unsupported {
            conf: conf_path.to_path_buf(),
            setting,
            value: value.clone(),
        }),
        Some(r) => Ok(r.path().map(Path::to_path_buf)),
    };
    let key_table = match path("KeyTable", &conf.key_table)? {
        Some(p) => Some((p.clone(), read_key_table(&p)?)),
        None => None,
    };
    let signing_table = match path("SigningTable", &conf.signing_table)? {
        Some(p) => Some((p.clone(), read_signing_table(&p)?)),
        None => None,
    };
    Ok(NamedTables {
        key_table,
        signing_table,
    })
}

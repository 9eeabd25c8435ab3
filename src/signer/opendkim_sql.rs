//! OpenDKIM reading its KeyTable and SigningTable from PostgreSQL (`dsn:` data
//! sets), for several MTAs that each run an OpenDKIM on the same tables.
//!
//! Why this backend exists: with a key directory per MTA, a new key must be
//! copied to every machine before any of them uses it. With SQL data sets the
//! key data lives INLINE in the KeyTable row, so maildns writes one database
//! and every OpenDKIM reads it; no key file reaches the MTAs.
//!
//! # What OpenDKIM does with `dsn:` data sets (2.11.0~beta2, Debian 12; read in
//! `opendkim/opendkim-db.c` and checked against the real binary)
//!
//! - Syntax (opendkim(8), "Data Sets"): `dsn:pgsql://USER:PASSWORD@PORT+HOST/DATABASE/table=T?keycol=K?datacol=C1,C2`.
//!   The host is required ("SQL host not defined"); the port comes BEFORE the
//!   host, joined with `+`. No value may contain `:` `/` `@` `+` `?` `=`
//!   (only the optional `filter=` value is decoded from `=XX` hex escapes), so
//!   table and column names here are plain lower-case SQL identifiers.
//! - Every lookup is one query, `SELECT C1,C2 FROM T WHERE K = 'key'`, sent at
//!   each message: there is NO cache in front of SQL data sets (only LDAP has
//!   one). A committed row change is used from the next message on, without
//!   any reload: [`OpenDkimSql::check_and_reload`] only checks the database.
//! - The SigningTable data set is asked for `user@example.com`, `example.com`,
//!   `user@.com`, `.com`, `user@*`, `*` in that order (README.SQL); maildns
//!   writes the row `example.com` (every address of the domain).
//! - The KeyTable row gives domain, selector and key. A key value that does not
//!   start with `/`, `./` or `../` is the key itself: PEM, or base64 DER on one
//!   line (PKCS#1 and PKCS#8 both sign). maildns writes base64 DER of PKCS#8,
//!   the body of its own PEM file, so the row holds no line breaks.
//! - A SigningTable row naming a KeyTable id that has no row makes OpenDKIM
//!   stop answering for that message (the MTA's milter time-out; seen with
//!   the real binary): the key row and the signing row are therefore written
//!   in ONE transaction. When it loads its configuration (start, SIGUSR1)
//!   OpenDKIM also walks the whole SigningTable (`SELECT pattern,key_id FROM
//!   ...`) and refuses a row whose KeyTable row is missing: it does not start
//!   (exit 78, `could not find valid key record "NAME" in KeyTable`; seen
//!   with the real binary), and a reload keeps the old configuration.
//! - If a table does not exist when OpenDKIM starts, that walk fails and the
//!   filter then hangs on every message, even after the table is created,
//!   until it is restarted (seen with the real binary). The tables must exist
//!   before OpenDKIM starts; maildns creates missing ones only when it
//!   writes its first row (its first generated key), which is too late for
//!   an OpenDKIM already running.
//!
//! # Where the key lives between generation and switch
//!
//! The KeyTable row of a new key is written when the key is GENERATED
//! ([`OpenDkimSql::store_key`], from the runner's generate step), with no
//! SigningTable row: OpenDKIM uses a KeyTable row only when a SigningTable
//! row names it, so the row waits unused. Every maildns replica finds the
//! key there ([`OpenDkimSql::stored_key`]): the replica that switches need
//! not be the one that generated it, nor have its key file. A row of a
//! selector is never overwritten with another key (selectors are never
//! reused); the switch then writes or repoints only the SigningTable row (and
//! rewrites the KeyTable row with the same key). maildns keeps its own 0600
//! copy in `key_dir` on the generating machine, as a backup.
//!
//! # The tables maildns writes (names configurable, defaults shown)
//!
//! ```sql
//! CREATE TABLE dkim_keys (id text PRIMARY KEY, domain text NOT NULL,
//!                         selector text NOT NULL, private_key text NOT NULL);
//! CREATE TABLE dkim_signing (pattern text PRIMARY KEY, key_id text NOT NULL);
//! ```
//!
//! (created by maildns when missing, but see above: create them before
//! starting OpenDKIM). A key's id is `<selector>._domainkey.<domain>`.
//! Rows of other domains are never touched.
//!
//! The database password is only ever handed to the driver; errors name the
//! URL without it. TLS: `sslmode`/`sslrootcert` in the URL, as for the state
//! store ([`crate::rotation::store::tls`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use maildns_providers::Secret;
use tokio_postgres::Client;
use zeroize::Zeroizing;

use super::milter::MilterSocket;
use super::{KeyRef, SignerEntry, SignerError, check_name};
use crate::keys::{self, PrivateKey, WriteOptions};
use crate::rotation::Selector;

/// Table and column names of the two data sets (plain lower-case SQL
/// identifiers, as OpenDKIM's `dsn:` syntax allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTables {
    /// The KeyTable table (default `dkim_keys`).
    pub key_table: String,
    /// Its key column, the key name (default `id`).
    pub key_id: String,
    /// Its signing-domain column, `d=` (default `domain`).
    pub domain: String,
    /// Its selector column, `s=` (default `selector`).
    pub selector: String,
    /// Its private-key column, the key data inline (default `private_key`).
    pub private_key: String,
    /// The SigningTable table (default `dkim_signing`).
    pub signing_table: String,
    /// Its key column, the signing pattern (default `pattern`).
    pub pattern: String,
    /// Its data column, the KeyTable key name (default `key_id`).
    pub signing_key: String,
}

impl Default for SqlTables {
    fn default() -> Self {
        SqlTables {
            key_table: "dkim_keys".into(),
            key_id: "id".into(),
            domain: "domain".into(),
            selector: "selector".into(),
            private_key: "private_key".into(),
            signing_table: "dkim_signing".into(),
            pattern: "pattern".into(),
            signing_key: "key_id".into(),
        }
    }
}

impl SqlTables {
    /// Whether `name` can be used as a table or column name: a plain
    /// lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes),
    /// optionally schema-qualified (`schema.table`). OpenDKIM puts the names
    /// unquoted into its queries, where PostgreSQL folds them to lower case.
    pub fn valid_name(name: &str) -> bool {
        let part = |p: &str| {
            !p.is_empty()
                && p.len() <= 63
                && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        let mut parts = name.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), None, _) => part(a),
            (Some(a), Some(b), None) => part(a) && part(b),
            _ => false,
        }
    }

    /// The `dsn:` values of opendkim.conf's `KeyTable` and `SigningTable` for
    /// a database `pgsql://...` prefix (e.g.
    /// `dsn:pgsql://opendkim:PASSWORD@5432+db.example.net/maildns`).
    pub fn dsn_lines(&self, prefix: &str) -> (String, String) {
        (
            format!(
                "{prefix}/table={}?keycol={}?datacol={},{},{}",
                self.key_table, self.key_id, self.domain, self.selector, self.private_key
            ),
            format!(
                "{prefix}/table={}?keycol={}?datacol={}",
                self.signing_table, self.pattern, self.signing_key
            ),
        )
    }
}

/// A KeyTable row as written, found through the SigningTable
/// ([`OpenDkimSql::signing_row`]).
pub struct KeyRow {
    /// The SigningTable pattern that matched (e.g. `example.com`).
    pub pattern: String,
    /// The row's key name.
    pub id: String,
    /// Its signing domain (`d=`), as written.
    pub domain: String,
    /// Its selector (`s=`), as written.
    pub selector: String,
    /// Its key value: key data inline, or a key file path (starts with `/`,
    /// `./` or `../`). Never shown.
    pub key: Zeroizing<String>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("pattern", &self.pattern)
            .field("id", &self.id)
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl KeyRow {
    /// The key file the row names, when its value is a path (OpenDKIM reads
    /// a value starting with `/`, `./` or `../` as a file).
    pub fn key_file(&self) -> Option<&Path> {
        let v = self.key.trim();
        (v.starts_with('/') || v.starts_with("./") || v.starts_with("../")).then(|| Path::new(v))
    }

    /// The private key: read from the file the row names, or parsed from
    /// the inline data (PEM, or base64 DER of PKCS#1 or PKCS#8).
    ///
    /// # Errors
    /// The file cannot be read, or the data is no usable key (never shown).
    pub fn private_key(&self) -> Result<PrivateKey, keys::KeyError> {
        match self.key_file() {
            Some(path) => keys::load_private_key(path),
            None => OpenDkimSql::parse_inline(&self.key),
        }
    }
}

/// OpenDKIM with `dsn:` KeyTable and SigningTable on PostgreSQL, and one milter
/// socket per MTA's OpenDKIM.
#[derive(Clone)]
pub struct OpenDkimSql {
    /// `postgres://user@host:port/database` (no password in it).
    pub url: String,
    /// The database password (found like any credential), if one is needed.
    pub password: Option<Secret>,
    /// Table and column names.
    pub tables: SqlTables,
    /// Where maildns keeps its own copy of each private key
    /// (`<key_dir>/<domain>/<selector>.private`, 0600): the source of the
    /// DKIM record and of the inline key data.
    pub key_dir: PathBuf,
    /// Mode and owner of new key files.
    pub key_write: WriteOptions,
    /// Every OpenDKIM's milter socket: a switch counts only when all of them
    /// sign with the new selector.
    pub sockets: Vec<MilterSocket>,
    /// How long connecting to the database may take (default 10 s).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for OpenDkimSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenDkimSql")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tables", &self.tables)
            .field("key_dir", &self.key_dir)
            .field("sockets", &self.sockets)
            .finish()
    }
}

/// The message of a PostgreSQL error, with its detail (never the password:
/// the driver's messages do not hold the configuration).
fn pg_message(e: &tokio_postgres::Error) -> String {
    crate::rotation::store::postgres::pg_message(e)
}

impl OpenDkimSql {
    /// A signer on `url` with the default tables and a 10 s connect timeout.
    pub fn new(
        url: impl Into<String>,
        password: Option<Secret>,
        key_dir: impl Into<PathBuf>,
        sockets: Vec<MilterSocket>,
    ) -> Self {
        OpenDkimSql {
            url: url.into(),
            password,
            tables: SqlTables::default(),
            key_dir: key_dir.into(),
            key_write: WriteOptions::default(),
            sockets,
            connect_timeout: Duration::from_secs(10),
        }
    }

    fn sql_err(&self, operation: &'static str) -> impl Fn(tokio_postgres::Error) -> SignerError {
        let url = crate::rotation::store::postgres::redact(&self.url);
        move |e| SignerError::Sql {
            operation,
            url: url.clone(),
            message: pg_message(&e),
        }
    }

    async fn connect(&self) -> Result<Client, SignerError> {
        let url_err = |message: String| SignerError::Sql {
            operation: "read the URL",
            url: crate::rotation::store::postgres::redact(&self.url),
            message,
        };
        let (driver_url, tls) = crate::rotation::store::tls::PgTls::split_url(&self.url)
            .map_err(|e| url_err(e.to_string()))?;
        let mut cfg: tokio_postgres::Config =
            driver_url.parse().map_err(self.sql_err("parse the URL"))?;
        cfg.ssl_mode(tls.driver_mode());
        let connector = tls.connector().map_err(|e| url_err(e.to_string()))?;
        if let Some(p) = &self.password {
            cfg.password(p.expose());
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(self.connect_timeout);
        }
        let (client, conn) = cfg
            .connect(connector)
            .await
            .map_err(self.sql_err("connect"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("signer database connection: {e}");
            }
        });
        Ok(client)
    }

    /// Runs `f` in one transaction on a new connection, committed when `f`
    /// succeeds (rolled back when it fails: nothing is changed then); errors
    /// of the connection, BEGIN and COMMIT name `operation`.
    ///
    /// # Errors
    /// The database cannot be reached, or `f`'s error.
    async fn with_tx<T>(
        &self,
        operation: &'static str,
        f: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<T, SignerError>,
    ) -> Result<T, SignerError> {
        let mut client = self.connect().await?;
        let tx = client
            .transaction()
            .await
            .map_err(self.sql_err(operation))?;
        let out = f(&tx).await?;
        tx.commit().await.map_err(self.sql_err(operation))?;
        Ok(out)
    }

    /// Where maildns keeps the private key of `domain`/`selector`.
    ///
    /// # Errors
    /// [`SignerError::InvalidName`] for a domain that cannot be a path.
    pub fn key_path(&self, domain: &str, selector: &Selector) -> Result<PathBuf, SignerError> {
        super::key_file(&self.key_dir, domain, selector)
    }

    /// Writes `key` to a NEW file at [`OpenDkimSql::key_path`] (0600; the
    /// domain directory is created 0700): maildns's own copy. The KeyTable
    /// row is written right after, in the runner's generate step
    /// ([`OpenDkimSql::store_key`]); the SigningTable row at the switch.
    ///
    /// # Errors
    /// The name is invalid, the file exists or cannot be written.
    pub fn install_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<PathBuf, SignerError> {
        super::write_key_file(&self.key_dir, domain, selector, key, self.key_write)
    }

    /// The KeyTable id of `domain`'s key `selector`: `<selector>._domainkey.<domain>`.
    pub fn key_id(domain: &str, selector: &str) -> String {
        format!("{selector}._domainkey.{}", domain.to_ascii_lowercase())
    }

    /// The key data as the KeyTable row holds it: base64 DER on one line (the
    /// body of the PEM file).
    fn inline_key(key: &PrivateKey) -> Result<Zeroizing<String>, SignerError> {
        let pem = key.to_pem()?;
        let mut out = Zeroizing::new(String::with_capacity(pem.len()));
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            out.push_str(line.trim());
        }
        Ok(out)
    }

    /// Parses the key data of a KeyTable row maildns wrote ([`Self::inline_key`]:
    /// the base64 body of the PEM, PKCS#1 for RSA, PKCS#8 for Ed25519), or a
    /// PEM value written by hand. A file path (OpenDKIM's other form) is not
    /// key data and is refused.
    fn parse_inline(value: &str) -> Result<PrivateKey, keys::KeyError> {
        let v = value.trim();
        if v.contains("-----BEGIN ") {
            return PrivateKey::from_pem(v);
        }
        if v.starts_with('/') || v.starts_with("./") || v.starts_with("../") {
            return Err(keys::KeyError::InvalidPem {
                reason: "the row names a key file, not key data".into(),
            });
        }
        let body: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        let mut wrapped = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 1));
        for chunk in body.as_bytes().chunks(64) {
            wrapped.push_str(&String::from_utf8_lossy(chunk));
            wrapped.push('\n');
        }
        let mut last = None;
        for label in ["RSA PRIVATE KEY", "PRIVATE KEY"] {
            let pem = Zeroizing::new(format!(
                "-----BEGIN {label}-----\n{}-----END {label}-----\n",
                wrapped.as_str()
            ));
            match PrivateKey::from_pem(&pem) {
                Ok(k) => return Ok(k),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| keys::KeyError::InvalidPem {
            reason: "empty key data".into(),
        }))
    }

    /// The key stored in the KeyTable row of `domain`'s `selector` (`None`:
    /// no such row, or no table yet). Rows are written at generation
    /// ([`OpenDkimSql::store_key`]), so any replica can read the key back
    /// here, whatever machine generated it.
    ///
    /// # Errors
    /// The database cannot be reached or read; [`SignerError::Key`] when the
    /// row holds no usable key (never the data itself).
    pub async fn stored_key(
        &self,
        domain: &str,
        selector: &Selector,
    ) -> Result<Option<PrivateKey>, SignerError> {
        check_name("domain", domain)?;
        let id = Self::key_id(domain, selector.as_str());
        let t = &self.tables;
        let client = self.connect().await?;
        let err = self.sql_err("read the KeyTable row");
        let present: bool = client
            .query_one(
                &format!("SELECT to_regclass('{}') IS NOT NULL", t.key_table),
                &[],
            )
            .await
            .map_err(&err)?
            .get(0);
        if !present {
            return Ok(None);
        }
        let row = client
            .query_opt(
                &format!(
                    "SELECT {} FROM {} WHERE {} = $1",
                    t.private_key, t.key_table, t.key_id
                ),
                &[&id],
            )
            .await
            .map_err(&err)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let data: Zeroizing<String> = Zeroizing::new(r.get(0));
                Ok(Some(Self::parse_inline(&data)?))
            }
        }
    }

    /// Writes the KeyTable row of `domain`'s new key `selector` (key data
    /// inline), WITHOUT any SigningTable row: OpenDKIM uses a KeyTable row
    /// only when a SigningTable row names it, so the key waits there, where
    /// every replica finds it, until the switch. A row that already holds
    /// the same key (same public key) is left as it is.
    ///
    /// # Errors
    /// [`SignerError::KeyConflict`] when the row holds another key (never
    /// overwritten: a selector is never reused for a different key); the
    /// database cannot be reached or written.
    pub async fn store_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<(), SignerError> {
        check_name("domain", domain)?;
        let domain = domain.to_ascii_lowercase();
        let data = Self::inline_key(key)?;
        let id = Self::key_id(&domain, selector.as_str());
        let t = &self.tables;
        let operation = "write the KeyTable row";
        let err = self.sql_err(operation);
        self.with_tx(operation, async |tx| {
        self.ensure_tables(tx).await?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO {} ({}, {}, {}, {}) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    t.key_table, t.key_id, t.domain, t.selector, t.private_key
                ),
                &[&id, &domain, &selector.as_str(), &data.as_str()],
            )
            .await
            .map_err(&err)?;
        if inserted == 0 {
            let existing: Option<String> = tx
                .query_opt(
                    &format!(
                        "SELECT {} FROM {} WHERE {} = $1",
                        t.private_key, t.key_table, t.key_id
                    ),
                    &[&id],
                )
                .await
                .map_err(&err)?
                .map(|r| r.get(0));
            let existing = existing.map(Zeroizing::new);
            if !existing
                .as_deref()
                .and_then(|v| Self::parse_inline(v).ok())
                .is_some_and(|k| super::same_public_key(&k, key))
            {
                return Err(SignerError::KeyConflict {
                    store: format!("KeyTable {} row {id}", t.key_table),
                    selector: selector.to_string(),
                    domain,
                });
            }
        }
        Ok(())
        })
        .await
    }

    async fn ensure_tables(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), SignerError> {
        let t = &self.tables;
        let exists = |table: &str| format!("SELECT to_regclass('{table}') IS NOT NULL");
        let err = self.sql_err("create the tables");
        let key_exists: bool = tx
            .query_one(&exists(&t.key_table), &[])
            .await
            .map_err(&err)?
            .get(0);
        if !key_exists {
            tx.batch_execute(&format!(
                "CREATE TABLE {} ({} text PRIMARY KEY, {} text NOT NULL, {} text NOT NULL, {} text NOT NULL)",
                t.key_table, t.key_id, t.domain, t.selector, t.private_key
            ))
            .await
            .map_err(&err)?;
        }
        let signing_exists: bool = tx
            .query_one(&exists(&t.signing_table), &[])
            .await
            .map_err(&err)?
            .get(0);
        if !signing_exists {
            tx.batch_execute(&format!(
                "CREATE TABLE {} ({} text PRIMARY KEY, {} text NOT NULL)",
                t.signing_table, t.pattern, t.signing_key
            ))
            .await
            .map_err(&err)?;
        }
        Ok(())
    }

    /// Makes every OpenDKIM on these tables sign `*@domain` with the key at
    /// `key_path` under `selector`: loads the key (it must parse), then in ONE
    /// transaction writes the KeyTable row (key data inline) and points the
    /// domain's SigningTable row at it. OpenDKIM reads the rows at each
    /// message: no reload. Returns the KeyTable id the domain named before.
    ///
    /// # Errors
    /// The key cannot be read; the database cannot be reached or written
    /// (nothing is changed then).
    pub async fn switch(
        &self,
        domain: &str,
        selector: &Selector,
        key_path: &Path,
    ) -> Result<Option<String>, SignerError> {
        let key = keys::load_private_key(key_path)?;
        self.switch_key(domain, selector, &key).await
    }

    /// [`OpenDkimSql::switch`] to `key` (read from maildns's file or from the
    /// KeyTable row itself, [`OpenDkimSql::stored_key`]). A KeyTable row of
    /// the selector that holds ANOTHER key is never overwritten.
    ///
    /// # Errors
    /// [`SignerError::KeyConflict`] (nothing changed); the database cannot be
    /// reached or written (nothing is changed then).
    pub async fn switch_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<Option<String>, SignerError> {
        check_name("domain", domain)?;
        let domain = domain.to_ascii_lowercase();
        let data = Self::inline_key(key)?;
        let id = Self::key_id(&domain, selector.as_str());
        let t = &self.tables;
        let operation = "write the KeyTable and SigningTable rows";
        let err = self.sql_err(operation);
        self.with_tx(operation, async |tx| {
            self.ensure_tables(tx).await?;
            let existing: Option<String> = tx
                .query_opt(
                    &format!(
                        "SELECT {} FROM {} WHERE {} = $1 FOR UPDATE",
                        t.private_key, t.key_table, t.key_id
                    ),
                    &[&id],
                )
                .await
                .map_err(&err)?
                .map(|r| r.get(0));
            if let Some(v) = existing.map(Zeroizing::new)
                && !Self::parse_inline(&v).is_ok_and(|k| super::same_public_key(&k, key))
            {
                return Err(SignerError::KeyConflict {
                    store: format!("KeyTable {} row {id}", t.key_table),
                    selector: selector.to_string(),
                    domain,
                });
            }
            let updated = tx
                .execute(
                    &format!(
                        "UPDATE {} SET {} = $2, {} = $3, {} = $4 WHERE {} = $1",
                        t.key_table, t.domain, t.selector, t.private_key, t.key_id
                    ),
                    &[&id, &domain, &selector.as_str(), &data.as_str()],
                )
                .await
                .map_err(&err)?;
            if updated == 0 {
                tx.execute(
                    &format!(
                        "INSERT INTO {} ({}, {}, {}, {}) VALUES ($1, $2, $3, $4)",
                        t.key_table, t.key_id, t.domain, t.selector, t.private_key
                    ),
                    &[&id, &domain, &selector.as_str(), &data.as_str()],
                )
                .await
                .map_err(&err)?;
            }
            let previous: Option<String> = tx
                .query_opt(
                    &format!(
                        "SELECT {} FROM {} WHERE {} = $1",
                        t.signing_key, t.signing_table, t.pattern
                    ),
                    &[&domain],
                )
                .await
                .map_err(&err)?
                .map(|r| r.get(0));
            let updated = tx
                .execute(
                    &format!(
                        "UPDATE {} SET {} = $2 WHERE {} = $1",
                        t.signing_table, t.signing_key, t.pattern
                    ),
                    &[&domain, &id],
                )
                .await
                .map_err(&err)?;
            if updated == 0 {
                tx.execute(
                    &format!(
                        "INSERT INTO {} ({}, {}) VALUES ($1, $2)",
                        t.signing_table, t.pattern, t.signing_key
                    ),
                    &[&domain, &id],
                )
                .await
                .map_err(&err)?;
            }
            Ok(previous)
        })
        .await
    }

    /// The entry OpenDKIM finds for mail From `postmaster@domain`
    /// ([`OpenDkimSql::signing_row`]).
    ///
    /// # Errors
    /// The database cannot be reached or read (missing tables are no entry).
    pub async fn entry(&self, domain: &str) -> Result<Option<SignerEntry>, SignerError> {
        Ok(self.signing_row(domain).await?.map(|row| SignerEntry {
            selector: row.selector,
            key: KeyRef::Inline {
                table: self.tables.key_table.clone(),
                id: row.id,
            },
        }))
    }

    /// The KeyTable row OpenDKIM signs mail From `postmaster@domain` with:
    /// the SigningTable is asked in OpenDKIM's order (`postmaster@domain`,
    /// `domain`, then each parent as `postmaster@.parent` and `.parent`, then
    /// `postmaster@*` and `*`); the first hit's KeyTable row, as written
    /// (maildns's rows or an operator's: any id, key data inline or a key
    /// file path).
    ///
    /// # Errors
    /// The database cannot be reached or read (missing tables are no row).
    pub async fn signing_row(&self, domain: &str) -> Result<Option<KeyRow>, SignerError> {
        let domain = domain.to_ascii_lowercase();
        let t = &self.tables;
        let client = self.connect().await?;
        let err = self.sql_err("read the SigningTable and KeyTable");
        let present: bool = client
            .query_one(
                &format!(
                    "SELECT to_regclass('{}') IS NOT NULL AND to_regclass('{}') IS NOT NULL",
                    t.key_table, t.signing_table
                ),
                &[],
            )
            .await
            .map_err(&err)?
            .get(0);
        if !present {
            return Ok(None);
        }
        let user = "postmaster";
        let mut patterns = vec![format!("{user}@{domain}"), domain.clone()];
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            patterns.push(format!("{user}@.{parent}"));
            patterns.push(format!(".{parent}"));
            rest = parent;
        }
        patterns.push(format!("{user}@*"));
        patterns.push("*".into());
        for p in &patterns {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT k.{id}, k.{d}, k.{sel}, k.{key} FROM {st} s JOIN {kt} k ON k.{id} = s.{sk} WHERE s.{pat} = $1 LIMIT 1",
                        id = t.key_id,
                        d = t.domain,
                        sel = t.selector,
                        key = t.private_key,
                        st = t.signing_table,
                        kt = t.key_table,
                        sk = t.signing_key,
                        pat = t.pattern
                    ),
                    &[p],
                )
                .await
                .map_err(&err)?;
            if let Some(row) = row {
                return Ok(Some(KeyRow {
                    pattern: p.clone(),
                    id: row.get(0),
                    domain: row.get(1),
                    selector: row.get(2),
                    key: Zeroizing::new(row.get(3)),
                }));
            }
        }
        Ok(None)
    }

    /// Nothing to reload (OpenDKIM queries SQL data sets at each message);
    /// checks that the database answers and both tables can be read.
    ///
    /// # Errors
    /// The database cannot be reached or a table read.
    pub async fn check_and_reload(&self) -> Result<(), SignerError> {
        let t = &self.tables;
        let client = self.connect().await?;
        let err = self.sql_err("read the SigningTable and KeyTable");
        for table in [&t.key_table, &t.signing_table] {
            client
                .query(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
                .await
                .map_err(&err)?;
        }
        Ok(())
    }

    /// Removes `domain`'s KeyTable rows of `selector` and the SigningTable rows
    /// that name them, in one transaction; returns how many rows went.
    ///
    /// # Errors
    /// The database cannot be reached or written (nothing is changed then).
    pub async fn remove_key(
        &self,
        domain: &str,
        selector: &Selector,
    ) -> Result<usize, SignerError> {
        let domain = domain.to_ascii_lowercase();
        let t = &self.tables;
        let operation = "remove the retired key's rows";
        let err = self.sql_err(operation);
        self.with_tx(operation, async |tx| {
        let present: bool = tx
            .query_one(
                &format!(
                    "SELECT to_regclass('{}') IS NOT NULL AND to_regclass('{}') IS NOT NULL",
                    t.key_table, t.signing_table
                ),
                &[],
            )
            .await
            .map_err(&err)?
            .get(0);
        if !present {
            return Ok(0);
        }
        let signing = tx
            .execute(
                &format!(
                    "DELETE FROM {st} WHERE {sk} IN (SELECT {id} FROM {kt} WHERE lower({d}) = $1 AND {s} = $2)",
                    st = t.signing_table,
                    sk = t.signing_key,
                    id = t.key_id,
                    kt = t.key_table,
                    d = t.domain,
                    s = t.selector
                ),
                &[&domain, &selector.as_str()],
            )
            .await
            .map_err(&err)?;
        let keys = tx
            .execute(
                &format!(
                    "DELETE FROM {} WHERE lower({}) = $1 AND {} = $2",
                    t.key_table, t.domain, t.selector
                ),
                &[&domain, &selector.as_str()],
            )
            .await
            .map_err(&err)?;
        Ok(usize::try_from(signing + keys).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_lower_case_identifiers() {
        for ok in ["dkim_keys", "_k1", "mail.dkim_keys"] {
            assert!(SqlTables::valid_name(ok), "{ok}");
        }
        for bad in [
            "", "Keys", "1k", "a-b", "a.b.c", "k;drop", "a?b", "a=b", "a/b",
        ] {
            assert!(!SqlTables::valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn dsn_lines_name_the_configured_tables() {
        let (kt, st) = SqlTables::default().dsn_lines("dsn:pgsql://od:pw@5432+db/maildns");
        assert_eq!(
            kt,
            "dsn:pgsql://od:pw@5432+db/maildns/table=dkim_keys?keycol=id?datacol=domain,selector,private_key"
        );
        assert_eq!(
            st,
            "dsn:pgsql://od:pw@5432+db/maildns/table=dkim_signing?keycol=pattern?datacol=key_id"
        );
    }

    #[test]
    fn inline_key_is_one_line_of_base64_der() {
        let key = PrivateKey::generate(keys::KeySpec::ed25519()).unwrap();
        let data = OpenDkimSql::inline_key(&key).unwrap();
        assert!(!data.contains(['\n', '-', ' ']));
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .unwrap();
        assert_eq!(der[0], 0x30, "a DER SEQUENCE");
    }

    #[test]
    fn inline_key_data_reads_back_as_the_same_key() {
        for spec in [keys::KeySpec::ed25519(), keys::KeySpec::rsa(1024)] {
            let key = PrivateKey::generate(spec).unwrap();
            let data = OpenDkimSql::inline_key(&key).unwrap();
            let back = OpenDkimSql::parse_inline(&data).unwrap();
            assert!(super::super::same_public_key(&key, &back));
            // A PEM value written by hand reads too.
            let pem = key.to_pem().unwrap();
            assert!(super::super::same_public_key(
                &key,
                &OpenDkimSql::parse_inline(&pem).unwrap()
            ));
        }
        let e = OpenDkimSql::parse_inline("/etc/opendkim/keys/a.private").unwrap_err();
        assert!(e.to_string().contains("key file"), "{e}");
        assert!(OpenDkimSql::parse_inline("MIIBnotakey").is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = OpenDkimSql::new(
            "postgres://od@127.0.0.1:5432/maildns",
            Some(Secret::new("hunter2-secret")),
            "/k",
            vec![],
        );
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

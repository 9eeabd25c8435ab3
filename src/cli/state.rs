//! Opening the state store the configuration names: the embedded SQLite store
//! in `state_dir`, or the shared PostgreSQL store of `[state] url` (its password
//! found like any credential, from the process environment snapshotted here);
//! and `maildns migrate-state`, which copies one store into another.

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, STATE_PASSWORD_CREDENTIAL, SharedState};
use crate::publish::Ledger;
use crate::rotation::{PgOptions, PgStore, SqliteStore, Store};

use super::Cli;
use super::common::{Exit, load_config};

/// How a command uses the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads only (`status`): an embedded store that does not exist yet is
    /// not created (`None`).
    Read,
    /// Changes key states (`daemon`, `rotate`): the embedded store's lock, or
    /// admission as a replica of the shared one.
    Write,
}

/// This process's name among replicas: `hostname:pid`.
pub(super) fn default_replica_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

/// The shared store's password: env, `$CREDENTIALS_DIRECTORY/state-password`,
/// keyring, `password_file` (as any credential); `None` when none is set
/// (the server may not need one).
fn password(shared: &SharedState) -> anyhow::Result<Option<maildns_providers::Secret>> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let spec = crate::secrets::SecretSpec {
        env_var: Some(shared.password_env.clone()),
        token_file: shared.password_file.clone(),
    };
    match crate::secrets::lookup(STATE_PASSWORD_CREDENTIAL, &spec, &env) {
        Ok(found) => {
            tracing::debug!("state store password from {}", found.source);
            Ok(Some(found.secret))
        }
        Err(crate::secrets::SecretError::NotFound { looked, .. }) => {
            tracing::debug!(
                "no state store password found (looked at: {}); connecting without one",
                looked.join("; ")
            );
            Ok(None)
        }
        Err(e) => Err(e).context("reading the state store's password"),
    }
}

/// Connects to the shared store `shared`.
pub(super) fn connect_shared(shared: &SharedState) -> anyhow::Result<PgStore> {
    let store = PgStore::connect(PgOptions {
        url: shared.url.clone(),
        password: password(shared)?,
        replica: shared.replica_id.clone().unwrap_or_else(default_replica_id),
        lease: shared.lease,
        max_connections: 4,
    })?;
    Ok(store)
}

/// The store `config` names, opened for `access` (see [`Access`]).
pub(super) fn open(config: &Config, access: Access) -> anyhow::Result<Option<Arc<dyn Store>>> {
    let store: Arc<dyn Store> = match (&config.state, access) {
        (Some(shared), _) => {
            let store = connect_shared(shared)?;
            if access == Access::Write {
                store.lock_exclusive()?;
            }
            Arc::new(store)
        }
        (None, Access::Read) => match SqliteStore::open_existing(&config.state_dir)? {
            Some(s) => Arc::new(s),
            None => return Ok(None),
        },
        (None, Access::Write) => {
            std::fs::create_dir_all(&config.state_dir)
                .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
            Arc::new(SqliteStore::open_locked(&config.state_dir)?)
        }
    };
    Ok(Some(store))
}

/// `migrate-state` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The store to copy from: a state directory (the embedded SQLite store) or
    /// a postgres:// URL (no password in it)
    #[arg(long)]
    pub from: String,
    /// The store to copy into (same forms); it must hold no state yet
    #[arg(long)]
    pub to: String,
}

/// Opens a store named on the command line: a postgres:// URL (the password
/// and lease settings from `[state]` of the configuration when it names the
/// same URL, else from MAILDNS_STATE_PASSWORD and the other credential places)
/// or a state directory.
fn open_named(name: &str, config: Option<&Config>, write: bool) -> anyhow::Result<Named> {
    let store = open_named_store(name, config, write)?;
    let dir = (!is_url(name)).then(|| std::path::PathBuf::from(name));
    Ok(Named { store, dir })
}

/// A store named on the command line, and its state directory when it is the
/// embedded one (which keeps the publish ledger beside it, as a file).
struct Named {
    store: Arc<dyn Store>,
    dir: Option<std::path::PathBuf>,
}

impl Named {
    fn ledger(&self) -> anyhow::Result<Ledger> {
        Ok(match &self.dir {
            Some(dir) => Ledger::load(dir)?,
            None => Ledger::load_from(self.store.as_ref())?,
        })
    }

    fn save_ledger(&self, ledger: &Ledger) -> anyhow::Result<()> {
        let changes = Ledger::default().changes_to(ledger);
        match &self.dir {
            Some(dir) => Ledger::update_file(dir, &changes)?,
            None => Ledger::update_in(self.store.as_ref(), &changes)?,
        }
        Ok(())
    }
}

fn is_url(name: &str) -> bool {
    name.starts_with("postgres://") || name.starts_with("postgresql://")
}

/// Refuses a store name that is neither a postgres:// URL nor a plain path:
/// a URL with a typo (`postgres:/…`), another scheme, or a libpq connection
/// string (`host=… password=…`) would otherwise be taken for a directory
/// name and a new SQLite store made under it. The name is not repeated: it
/// may hold a password.
fn check_store_name(flag: &str, name: &str) -> anyhow::Result<()> {
    let lower = name.to_ascii_lowercase();
    let connection_like = name.contains("://")
        || lower.starts_with("postgres:")
        || lower.starts_with("postgresql:")
        || lower.contains("password")
        || (name.contains('=') && name.contains(char::is_whitespace));
    if connection_like && !is_url(name) {
        return Err(super::common::Coded {
            code: super::common::Exit::Usage,
            message: format!(
                "{flag}: neither a postgres:// (or postgresql://) URL nor a state directory path (not repeated here: it may hold a password); write the URL as postgres://USER@HOST:PORT/DATABASE, the password in MAILDNS_STATE_PASSWORD"
            ),
        }
        .into());
    }
    if is_url(name) {
        // A malformed URL on the command line is a usage error (64), as a
        // malformed `[state] url` is a configuration error (65); checked as
        // the configuration checks it (libpq's `%` escapes and sslmode, then
        // the driver's parser), before anything connects.
        let parsed = crate::rotation::store::tls::PgTls::split_url(name)
            .map_err(|e| e.to_string())
            .and_then(|(rest, _)| {
                rest.parse::<tokio_postgres::Config>()
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = parsed {
            return Err(super::common::Coded {
                code: super::common::Exit::Usage,
                message: format!(
                    "{flag}: not a valid PostgreSQL URL: {}; write it as postgres://USER@HOST:PORT/DATABASE",
                    crate::quote::debug_escapes_to_ddd(&e)
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Whether `a` and `b` name one store: the same URL, or the same directory
/// (compared as the file system resolves them; a directory that does not exist
/// yet is compared through its parent).
fn same_store(a: &str, b: &str) -> bool {
    if is_url(a) || is_url(b) {
        return a == b;
    }
    fn resolved(name: &str) -> std::path::PathBuf {
        let p = std::path::Path::new(name);
        if let Ok(c) = p.canonicalize() {
            return c;
        }
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(file)) => {
                let parent = if parent.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    parent
                };
                parent
                    .canonicalize()
                    .map(|c| c.join(file))
                    .unwrap_or_else(|_| p.to_path_buf())
            }
            _ => p.to_path_buf(),
        }
    }
    resolved(a) == resolved(b)
}

/// A store name as it may be shown: a URL with its password masked.
fn shown(name: &str) -> String {
    if is_url(name) {
        crate::rotation::store::postgres::redact(name)
    } else {
        name.to_string()
    }
}

fn open_named_store(
    name: &str,
    config: Option<&Config>,
    write: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    if is_url(name) {
        let shared = match config.and_then(|c| c.state.as_ref()) {
            Some(s) if s.url == name => s.clone(),
            _ => SharedState {
                url: name.to_string(),
                password_env: "MAILDNS_STATE_PASSWORD".into(),
                password_file: None,
                replica_id: None,
                lease: std::time::Duration::from_secs(60),
            },
        };
        let store = connect_shared(&shared)?;
        store.lock_exclusive()?;
        return Ok(Arc::new(store));
    }
    let dir = std::path::Path::new(name);
    if write {
        Ok(Arc::new(SqliteStore::open_locked(dir)?))
    } else {
        let Some(s) = SqliteStore::open_existing(dir)? else {
            anyhow::bail!(
                "{}: no state store there ({} not found)",
                dir.display(),
                dir.join(crate::rotation::store::DB_FILE).display()
            );
        };
        // Copying from a store a daemon still drives would copy a moving state.
        s.lock_exclusive().with_context(|| {
            format!(
                "{}: stop the daemon using this state directory before copying it",
                dir.display()
            )
        })?;
        Ok(Arc::new(s))
    }
}

/// `maildns migrate-state --from A --to B`: copies every domain's state, the
/// event log (times, replicas, lease epochs kept; ids renumbered in order),
/// the diagnoses, the queued requests and the publish ledger (a state
/// directory's `published.json`, or the shared store's). The destination must be empty;
/// the source is left as it was. Stop every daemon first.
pub(super) async fn migrate(cli: &Cli, args: &MigrateArgs) -> anyhow::Result<Exit> {
    // The configuration is optional here: it only lends [state] settings.
    let config = if cli.config.is_some() {
        Some(load_config(cli)?)
    } else {
        None
    };
    check_store_name("--from", &args.from)?;
    check_store_name("--to", &args.to)?;
    if same_store(&args.from, &args.to) {
        return Err(super::common::Coded {
            code: super::common::Exit::Usage,
            message: format!(
                "--from and --to name the same store ({}); migrate-state copies one store into another, empty one",
                shown(&args.from)
            ),
        }
        .into());
    }
    let from = args.from.clone();
    let to = args.to.clone();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<Copied> {
        let source = open_named(&from, config.as_ref(), false)?;
        let dest = open_named(&to, config.as_ref(), true)?;
        let mut copied = copy(source.store.as_ref(), dest.store.as_ref())?;
        let ledger = source.ledger()?;
        copied.ledger_entries = ledger.entries().count();
        if copied.ledger_entries > 0 {
            dest.save_ledger(&ledger)?;
        }
        Ok(copied)
    })
    .await
    .context("the copy stopped")??;
    if cli.json {
        super::common::print_json(&report)?;
    } else {
        outln!(
            "copied {} domain(s), {} event(s), {} diagnosis(es), {} request(s), {} publish ledger entr(ies) from {} to {}",
            report.domains,
            report.events,
            report.diagnoses,
            report.requests,
            report.ledger_entries,
            shown(&args.from),
            shown(&args.to)
        );
    }
    Ok(Exit::Ok)
}

/// What [`copy`] copied.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct Copied {
    domains: usize,
    events: usize,
    diagnoses: usize,
    requests: usize,
    ledger_entries: usize,
}

fn copy(source: &dyn Store, dest: &dyn Store) -> anyhow::Result<Copied> {
    if !dest.domains()?.is_empty() || !dest.events(None, 0, 1)?.is_empty() {
        anyhow::bail!(
            "the destination already holds state; migrate-state only copies into an empty store"
        );
    }
    let mut copied = Copied::default();
    for domain in source.domains()? {
        let state = source.load(&domain)?;
        dest.lease(&domain)?;
        let saved = dest.save(&state, &[]);
        dest.release(&domain)?;
        saved?;
        copied.domains += 1;
    }
    let mut after = 0;
    loop {
        let page = source.events(None, after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        dest.import_events(&page)?;
        copied.events += page.len();
    }
    for d in source.diagnoses()? {
        dest.save_diagnosis(&d)?;
        copied.diagnoses += 1;
    }
    for r in source.requests()? {
        dest.add_request(&r.domain, &r.what, r.at)?;
        copied.requests += 1;
    }
    Ok(copied)
}

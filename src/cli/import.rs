//! `maildns import opendkim` / `maildns import rspamd`: adopt the keys an
//! existing OpenDKIM (its tables) or rspamd (its Redis) signs with as the
//! domains' current keys, so switching to maildns needs no re-keying.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Cli;
use super::common::{Coded, Exit, load_gated, print_json, select_domains};
use crate::rotation::SqliteStore;
use crate::rotation::adopt::{
    ImportError, ImportResult, OpenDkimSetup, Outcome, import_opendkim, import_opendkim_sql,
    import_rspamd,
};

/// Where the existing keys come from.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Source {
    /// Read opendkim.conf and its KeyTable/SigningTable (or KeyFile/Selector/Domain)
    Opendkim {
        /// opendkim.conf [default: signer.config in maildns.toml, else /etc/opendkim.conf]
        #[arg(long)]
        conf: Option<PathBuf>,
        /// Only these domains (repeatable; default: every configured domain)
        #[arg(long = "domain", short = 'd')]
        domains: Vec<String>,
    },
    /// Read the selectors and keys rspamd reads from Redis ([signer] kind = "rspamd")
    Rspamd {
        /// Only these domains (repeatable; default: every configured domain)
        #[arg(long = "domain", short = 'd')]
        domains: Vec<String>,
    },
}

#[derive(Serialize)]
struct Report<'a> {
    conf: &'a Path,
    state_dir: &'a Path,
    warnings: &'a [String],
    results: &'a [ImportResult],
}

pub(super) async fn run(cli: &Cli, source: &Source) -> anyhow::Result<Exit> {
    let (conf, domains) = match source {
        Source::Opendkim { conf, domains } => (conf, domains),
        Source::Rspamd { domains } => return run_rspamd(cli, domains).await,
    };
    let config = load_gated(cli)?;
    // OpenDKIM reading SQL tables: its rows, unless --conf names files.
    if conf.is_none()
        && let Some(cfg) = config.signer.as_ref().filter(|s| s.sql.is_some())
    {
        return run_sql(cli, &config, cfg, domains).await;
    }
    let selected = select_domains(&config, domains)?;
    let conf_path = conf
        .clone()
        .or_else(|| config.signer.as_ref().and_then(|s| s.config.clone()))
        .unwrap_or_else(|| PathBuf::from("/etc/opendkim.conf"));
    let setup = OpenDkimSetup::read(&conf_path).map_err(|e: ImportError| Coded {
        code: Exit::DataErr,
        message: format!("{e} (pass --conf to name another opendkim.conf)"),
    })?;
    let warnings = match &config.signer {
        Some(s) => setup.signer_mismatches(s),
        None => vec![
            "maildns.toml has no [signer] section: keys are recorded, but rotation will not switch OpenDKIM to new ones".to_string(),
        ],
    };
    let store = open_store(&config)?;
    let results = import_opendkim(store.as_ref(), &setup, &selected, chrono::Utc::now())?;
    drop(store);
    if cli.json {
        print_json(&Report {
            conf: &conf_path,
            state_dir: &config.state_dir,
            warnings: &warnings,
            results: &results,
        })?;
    } else {
        print_human(&conf_path, &warnings, &results);
    }
    Ok(if results.iter().any(|r| r.outcome.is_problem()) {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

#[derive(Serialize)]
struct RspamdReport<'a> {
    redis: &'a str,
    state_dir: &'a Path,
    results: &'a [ImportResult],
}

/// `maildns import rspamd`: the selectors and keys of `[signer] kind =
/// "rspamd"`'s Redis.
async fn run_rspamd(cli: &Cli, domains: &[String]) -> anyhow::Result<Exit> {
    let config = load_gated(cli)?;
    let selected = select_domains(&config, domains)?;
    let not_rspamd = || Coded {
        code: Exit::DataErr,
        message: format!(
            "{}: `import rspamd` reads the Redis of [signer] kind = \"rspamd\", and this configuration has none",
            config.path.display()
        ),
    };
    let cfg = config.signer.as_ref().ok_or_else(not_rspamd)?;
    let redis = cfg.rspamd.as_ref().ok_or_else(not_rspamd)?.url.clone();
    let signer = match crate::rotation::runner::signer_from_config(cfg, &config.path)? {
        crate::signer::Signer::Rspamd(s) => s,
        _ => return Err(not_rspamd().into()),
    };
    let entries = signer.entries().await.map_err(|e| Coded {
        code: Exit::Failure,
        message: e.to_string(),
    })?;
    let store = open_store(&config)?;
    let results = import_rspamd(
        store.as_ref(),
        &signer,
        &entries,
        &selected,
        chrono::Utc::now(),
    )?;
    drop(store);
    if cli.json {
        print_json(&RspamdReport {
            redis: &redis,
            state_dir: &config.state_dir,
            results: &results,
        })?;
    } else {
        print_human_from(&format!("rspamd's Redis at {redis}"), &[], &results);
    }
    Ok(if results.iter().any(|r| r.outcome.is_problem()) {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

/// The state store, for writing (the lock or the shared store), with the
/// files of deleted keys swept first.
fn open_store(
    config: &crate::config::Config,
) -> anyhow::Result<std::sync::Arc<dyn crate::rotation::Store>> {
    let store: std::sync::Arc<dyn crate::rotation::Store> = match &config.state {
        Some(_) => super::state::open(config, super::state::Access::Write)?
            .ok_or_else(|| anyhow::anyhow!("the shared state store could not be opened"))?,
        None => std::sync::Arc::new(SqliteStore::open_locked(&config.state_dir)?),
    };
    crate::rotation::keyring::sweep(config, Some(store.as_ref()))?;
    Ok(store)
}

#[derive(Serialize)]
struct SqlReport<'a> {
    database: &'a str,
    state_dir: &'a Path,
    results: &'a [ImportResult],
}

/// `maildns import opendkim` with `[signer] kind = "opendkim-sql"`: the
/// KeyTable row each domain's SigningTable row names.
async fn run_sql(
    cli: &Cli,
    config: &crate::config::Config,
    cfg: &crate::config::Signer,
    domains: &[String],
) -> anyhow::Result<Exit> {
    let selected = select_domains(config, domains)?;
    let signer = match crate::rotation::runner::signer_from_config(cfg, &config.path)? {
        crate::signer::Signer::OpenDkimSql(s) => s,
        _ => anyhow::bail!("[signer] kind = \"opendkim-sql\" expected"),
    };
    let database = crate::rotation::store::postgres::redact(&signer.url);
    let mut rows = Vec::with_capacity(selected.len());
    for d in &selected {
        rows.push(
            signer
                .signing_row(d.name.as_str())
                .await
                .map_err(|e| Coded {
                    code: Exit::Failure,
                    message: e.to_string(),
                })?,
        );
    }
    let store = open_store(config)?;
    let results = import_opendkim_sql(
        store.as_ref(),
        &signer,
        &rows,
        &selected,
        chrono::Utc::now(),
    )?;
    drop(store);
    if cli.json {
        print_json(&SqlReport {
            database: &database,
            state_dir: &config.state_dir,
            results: &results,
        })?;
    } else {
        print_human_from(
            &format!(
                "OpenDKIM's SQL tables {} and {} at {database}",
                signer.tables.key_table, signer.tables.signing_table
            ),
            &[],
            &results,
        );
    }
    Ok(if results.iter().any(|r| r.outcome.is_problem()) {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

fn print_human(conf: &Path, warnings: &[String], results: &[ImportResult]) {
    print_human_from(&conf.display().to_string(), warnings, results);
}

fn print_human_from(source: &str, warnings: &[String], results: &[ImportResult]) {
    outln!("Importing from {source}");
    for w in warnings {
        outln!("warning: {w}");
    }
    for r in results {
        let what = match r.outcome {
            Outcome::Adopted => "adopted",
            Outcome::AlreadyAdopted => "already adopted",
            Outcome::NotFound => "NOT FOUND",
            Outcome::Unreadable => "KEY UNREADABLE",
            Outcome::Refused => "REFUSED",
            Outcome::Skipped => "skipped",
            Outcome::Unused => "unused KeyTable entry",
        };
        let mut key = String::new();
        if let Some(s) = &r.selector {
            key.push_str(&format!(" selector {s}"));
        }
        if let (Some(a), Some(b)) = (r.algorithm, r.bits) {
            key.push_str(&format!(" ({a} {b} bits)"));
        }
        if let Some(p) = &r.key_path {
            key.push_str(&format!(" key {p}"));
        }
        outln!("{}: {what}{key}", r.domain);
        outln!("  {}", r.message);
        if let Some(h) = &r.hint {
            outln!("  fix: {h}");
        }
    }
    let adopted = results
        .iter()
        .filter(|r| r.outcome == Outcome::Adopted)
        .count();
    let problems = results.iter().filter(|r| r.outcome.is_problem()).count();
    outln!(
        "Summary: {adopted} key(s) adopted, {problems} problem(s); `maildns status` shows the keys"
    );
}

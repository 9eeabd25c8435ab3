//! The face: arguments, output (tables and `--json`), progress, exit codes.
//! One file per command; the work lives in the library modules.

#[macro_use]
mod output;

mod check;
mod common;
mod credentials;
mod daemon;
mod diagnose;
mod import;
mod keygen;
mod progress;
mod publish;
mod records;
mod rotate;
mod secret;
mod state;
mod status;
mod verify;
mod watch;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

pub use common::Exit;

const AFTER_HELP: &str = "\
Examples:
  maildns --config fixtures/quickstart/maildns.toml publish
  maildns keygen --domain example.com --selector 202611 --bits 2048
  maildns plan --exit-code          # 2 when changes are pending
  maildns records                   # every desired record as zone-file lines
  maildns check                     # config and record lint
  maildns import opendkim           # adopt the keys OpenDKIM signs with now (no re-keying)
  maildns import rspamd             # adopt the keys rspamd reads from Redis now
  maildns status                    # keys, next action and when, blocked rotations (exit 4)
  maildns rotate --now              # start a rotation (asks the daemon when it runs)
  maildns secret set dns < token    # store account dns's token in the OS keyring
  maildns publish --wait            # and wait until every nameserver serves it
  maildns watch 202611._domainkey.example.com --expect 'v=DKIM1; ...'
  maildns verify                    # what DNS serves vs. the keys on disk (no credentials)

Exit codes:
  0   success (plan: in sync)
  1   failure (a provider error; some domain failed)
  2   plan --exit-code: changes pending
  3   propagation did not complete before the timeout
  4   status: something needs an operator (a blocked rotation, a failing step)
  64  bad command-line usage
  65  invalid configuration or records with lint errors
  75  another maildns holds the state lock (try again later; rotate --now asks the daemon)";

/// Publishes and rotates SPF, DKIM, DMARC (and historic ADSP) records through your DNS host's API.
#[derive(Debug, Parser)]
#[command(name = "maildns", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file [default: ./maildns.toml, then /etc/maildns/maildns.toml]
    #[arg(long, short = 'c', global = true, env = "MAILDNS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a DKIM key (like opendkim-genkey) and print its DNS record
    Keygen(keygen::Args),
    /// Check the configuration and lint every desired record (non-zero exit on errors)
    Check,
    /// Print every desired record of every domain as zone-file lines (long values split)
    Records,
    /// Show what publish would change (read-only)
    Plan(publish::PlanArgs),
    /// Publish the records: plan, then apply (idempotent)
    Publish(publish::PublishArgs),
    /// Adopt existing DKIM keys as the domains' current keys (no re-keying)
    Import {
        /// Where from
        #[command(subcommand)]
        source: import::Source,
    },
    /// Show each domain's keys, the next rotation step and when, and recent events;
    /// exit 4 when a rotation is blocked or a step is failing
    Status {
        /// Only these domains (repeatable)
        #[arg(long = "domain", short = 'd')]
        domains: Vec<String>,
    },
    /// Manage an account's credential in the OS keyring
    Secret {
        /// What to do
        #[command(subcommand)]
        op: secret::Op,
    },
    /// Wait until every authoritative server serves (or stops serving) a TXT value
    Watch(watch::Args),
    /// Check what DNS serves against the local keys: DKIM keys, SPF (lookups resolved), DMARC
    Verify(verify::Args),
    /// Run DKIM rotation once for each domain until it only waits (cron, systemd timer);
    /// exit 1 when any domain's step failed
    Rotate(rotate::Args),
    /// Run the rotation daemon: sleep until the next due action; SIGHUP reloads, SIGTERM stops
    Daemon(daemon::Args),
    /// Probe what an account's DNS host really stores and serves; choose the key size
    Diagnose(diagnose::Args),
    /// Copy the rotation state from one store into another (a state directory's
    /// SQLite store or a postgres:// URL); the destination must be empty
    MigrateState(state::MigrateArgs),
    /// Print shell completions
    Completions {
        /// Shell
        shell: clap_complete::Shell,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code as i32;
        }
    };
    common::init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eoutln!("maildns: cannot start the async runtime: {e}");
            return Exit::Failure as i32;
        }
    };
    let result = runtime.block_on(run(cli));
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let code = common::exit_for(&e);
            eoutln!("maildns: {e:#}");
            code
        }
    };
    // A closed pipe on stdout is the normal end of the output (see `output`);
    // any other write error fails a command that otherwise succeeded.
    match output::stdout_error() {
        Some(e) if code == Exit::Ok => {
            eoutln!("maildns: writing to stdout: {e}");
            Exit::Failure as i32
        }
        _ => code as i32,
    }
}

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match &cli.command {
        Command::Check => check::run(&cli).await,
        Command::Keygen(args) => keygen::run(&cli, args).await,
        Command::Records => records::run(&cli).await,
        Command::Plan(args) => publish::plan(&cli, args).await,
        Command::Import { source } => import::run(&cli, source).await,
        Command::Status { domains } => status::run(&cli, domains).await,
        Command::Secret { op } => secret::run(&cli, op).await,
        Command::Publish(args) => publish::publish(&cli, args).await,
        Command::Watch(args) => watch::run(&cli, args).await,
        Command::Verify(args) => verify::run(&cli, args).await,
        Command::Rotate(args) => rotate::run(&cli, args).await,
        Command::Daemon(args) => daemon::run(&cli, args).await,
        Command::Diagnose(args) => diagnose::run(&cli, args).await,
        Command::MigrateState(args) => state::migrate(&cli, args).await,
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "maildns", &mut output::Stdout);
            Ok(Exit::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

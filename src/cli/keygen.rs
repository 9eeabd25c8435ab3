//! `maildns keygen`: what `opendkim-genkey` does, correctly: writes the private key
//! (0600, atomically, never overwriting) and prints the DNS record, split into
//! ≤255-byte strings, with a valid `h=sha256`.

use std::path::PathBuf;

use serde::Serialize;

use super::Cli;
use super::common::{Exit, print_json};
use crate::keys::{self, Algorithm, KeySpec, PrivateKey, WriteOptions};
use crate::records::dkim::record_name;
use crate::rotation::keyring::record_for;

/// `keygen` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The signing domain (d=)
    #[arg(long, short = 'd')]
    pub domain: String,
    /// The selector [default: the current year and month, %Y%m]
    #[arg(long, short = 's')]
    pub selector: Option<String>,
    /// RSA key size [default: 2048]
    #[arg(long, short = 'b', value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(["1024", "2048", "3072", "4096"]), |s: String| s.parse::<u32>().unwrap_or(2048)))]
    pub bits: Option<u32>,
    /// Key algorithm
    #[arg(long, short = 'a', default_value = "rsa", value_parser = ["rsa", "ed25519"])]
    pub algorithm: String,
    /// Directory for <selector>.private [default: current directory]
    #[arg(long, short = 'D', default_value = ".")]
    pub directory: PathBuf,
    /// Mark the record as testing (t=y)
    #[arg(long)]
    pub testing: bool,
}

#[derive(Serialize)]
struct Output {
    domain: String,
    selector: String,
    name: String,
    algorithm: Algorithm,
    bits: u32,
    private_key: PathBuf,
    value: String,
    strings: Vec<String>,
    zone_line: String,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let domain = maildns_providers::Fqdn::parse(&args.domain)
        .map_err(|e| anyhow::anyhow!("--domain {}: {e}", args.domain))?;
    let selector = match &args.selector {
        Some(s) => s.clone(),
        None => crate::config::format_selector("%Y%m", chrono::Utc::now())
            .unwrap_or_else(|| "dkim".into()),
    };
    // The selector type's own rule, as rotation and import use it.
    let selector = crate::rotation::Selector::parse(&selector)
        .map_err(|e| super::common::Coded {
            code: super::common::Exit::Usage,
            message: format!("--selector: {e}"),
        })?
        .as_str()
        .to_string();
    let name = record_name(&selector, &domain)
        .map_err(|e| anyhow::anyhow!("--selector {selector}: {e}"))?;
    let spec = match (args.algorithm.as_str(), args.bits) {
        ("ed25519", Some(_)) => {
            return Err(super::common::Coded {
                code: super::common::Exit::Usage,
                message: "--bits is for RSA keys; an Ed25519 key has one size (RFC 8463)".into(),
            }
            .into());
        }
        ("ed25519", None) => KeySpec::ed25519(),
        (_, bits) => KeySpec::rsa(bits.unwrap_or(2048)),
    };
    // A keygen killed while writing left a complete key under a temporary name.
    for stale in keys::remove_stale_temp_files(&args.directory)? {
        tracing::warn!("removed left-over private key material {}", stale.display());
    }
    let key = PrivateKey::generate(spec)?;
    if let Some(w) = keys::strength_warning(key.algorithm(), key.bits()) {
        eoutln!("warning: {w}");
    }
    let path = args.directory.join(format!("{selector}.private"));
    keys::write_private_key(&path, &key, WriteOptions::default())?;
    let record = record_for(&key, args.testing)?;
    let txt = record.to_txt();
    let zone_line = format!(
        "{}\tIN\tTXT\t( {} )  ; DKIM key {selector} for {domain}",
        name.to_dotted(),
        txt.strings()
            .iter()
            .map(|s| s.to_presentation())
            .collect::<Vec<_>>()
            .join("\n\t\t")
    );
    let out = Output {
        domain: domain.to_string(),
        selector: selector.clone(),
        name: name.to_dotted(),
        algorithm: key.algorithm(),
        bits: key.bits(),
        private_key: path.clone(),
        value: record.to_value(),
        strings: txt
            .strings()
            .iter()
            .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
            .collect(),
        zone_line,
    };
    if cli.json {
        print_json(&out)?;
    } else {
        eoutln!(
            "maildns: {}-bit {} key written to {} (mode 0600)",
            out.bits,
            out.algorithm,
            path.display()
        );
        outln!("{}", out.zone_line);
    }
    Ok(Exit::Ok)
}

//! `maildns records`: every desired record of every domain, as zone-file lines.

use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_gated, print_json};
use crate::publish::for_domain;

#[derive(Serialize)]
struct Line {
    name: String,
    kind: &'static str,
    ttl: u32,
    value: String,
    strings: Vec<String>,
    presentation: String,
}

pub(super) async fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let config = load_gated(cli)?;
    // The DKIM records the key store wants published (read-only; none before the
    // first `publish`).
    let store = super::state::open(&config, super::state::Access::Read)?;
    let now = chrono::Utc::now();
    // Keys a database-backed signer keeps are found in its shared store too.
    let signer = match &store {
        Some(_) => crate::rotation::keyring::shared_signer(&config)?,
        None => None,
    };
    let mut lines = Vec::new();
    for d in &config.domains {
        let dkim = match (&store, &d.dkim) {
            (Some(st), Some(policy)) => {
                let state = st.load(&d.name)?;
                crate::rotation::keyring::dkim_entries_from(
                    &state,
                    policy,
                    now,
                    signer.as_ref(),
                    false,
                )?
            }
            _ => Vec::new(),
        };
        for want in for_domain(d, &dkim)? {
            for r in &want.records {
                lines.push(Line {
                    name: want.name.to_dotted(),
                    kind: want.kind.label(),
                    ttl: want.ttl,
                    value: r.value_lossy(),
                    strings: r
                        .strings()
                        .iter()
                        .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                        .collect(),
                    presentation: r.to_presentation(),
                });
            }
        }
    }
    if cli.json {
        print_json(&lines)?;
    } else {
        for l in &lines {
            outln!(
                "{}\t{}\tIN\tTXT\t{}\t; {}",
                l.name,
                l.ttl,
                l.presentation,
                l.kind
            );
        }
    }
    Ok(Exit::Ok)
}

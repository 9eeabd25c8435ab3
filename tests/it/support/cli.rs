//! The `maildns` binary against one account: the config file, a publish
//! followed by a plan in sync, and a refused credential reported as one line.

use std::path::{Path, PathBuf};

use maildns_testkit::cmd::Output;

use crate::cmd;

/// Writes `dir/maildns.toml`: state in `state` (relative to the file), the
/// account `name` with the TOML lines `account`, then `domains` (TOML).
pub(crate) fn write_config(dir: &Path, name: &str, account: &str, domains: &str) -> PathBuf {
    let p = dir.join("maildns.toml");
    std::fs::write(
        &p,
        format!("state_dir = \"state\"\n[accounts.{name}]\n{account}\n{domains}"),
    )
    .unwrap();
    p
}

/// The TOML lines of an account on a PowerDNS that is never reached
/// (`127.0.0.1:9`, the discard port): for tests that stop before any DNS
/// request.
pub(crate) const UNREACHED_POWERDNS: &str =
    "provider = \"powerdns\"\nbase_url = \"http://127.0.0.1:9\"";

/// The `[state]` table of replica `replica` sharing the PostgreSQL state at `url`.
pub(crate) fn shared_state(url: &str, replica: &str) -> String {
    format!("[state]\nurl = \"{url}\"\nreplica_id = \"{replica}\"\n")
}

/// `maildns plan --exit-code` on `cfg` with `env` exits 0: nothing to change.
/// Returns its output.
pub(crate) fn assert_in_sync(cfg: &Path, env: &[(&str, &str)]) -> Output {
    let o = cmd()
        .config(cfg)
        .envs(env)
        .args(["plan", "--exit-code"])
        .run();
    assert_eq!(o.status.code(), Some(0), "second run in sync: {}", o.text());
    o
}

/// A refused credential of account `account`: exit 1 and exactly one FAILED
/// line, naming the account, the authentication failure, each of `says` (the
/// host's words) and the variable the secret is read from
/// (`$MAILDNS_<ACCOUNT>_TOKEN`); none of `secrets` anywhere in the output.
/// Returns that line.
pub(crate) fn assert_refused(o: &Output, account: &str, says: &[&str], secrets: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(1), "{}", o.text());
    let text = o.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(lines.len(), 1, "one FAILED line: {text}");
    let line = lines[0];
    let var = format!(
        "$MAILDNS_{}_TOKEN",
        account.to_ascii_uppercase().replace('-', "_")
    );
    assert!(
        line.contains(&format!("account '{account}'"))
            && line.contains("authentication failed")
            && says.iter().all(|s| line.contains(s))
            && line.contains(&var),
        "{line}"
    );
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    line.to_string()
}

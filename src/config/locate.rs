//! Finding the configuration file: `--config FILE` (or `$MAILDNS_CONFIG`, which
//! the command line reads into the same option), else `./maildns.toml`, else
//! `/etc/maildns/maildns.toml`.

use std::path::{Path, PathBuf};

use super::{ConfigError, ConfigErrors};

/// Where `--config` looks when not given: these, in order.
pub const DEFAULT_PATHS: [&str; 2] = ["maildns.toml", "/etc/maildns/maildns.toml"];

/// Finds the config file: `explicit` (from `--config` or `$MAILDNS_CONFIG`),
/// else the first of [`DEFAULT_PATHS`] that exists.
///
/// # Errors
/// None of them exists (one [`ConfigError`] naming the paths tried).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigErrors> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    for p in DEFAULT_PATHS {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(ConfigErrors(vec![ConfigError {
        path: PathBuf::from(DEFAULT_PATHS[0]),
        line: None,
        key: String::new(),
        message: format!(
            "no configuration file found (looked for {})",
            DEFAULT_PATHS.join(" and ")
        ),
        hint: Some("pass --config FILE; fixtures/quickstart/maildns.toml is an example".into()),
    }]))
}

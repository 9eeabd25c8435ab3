//! The configuration loader (maildns.toml from a string): never panics; errors name
//! a line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = maildns::config::parse(text, Path::new("/nonexistent/maildns.toml")) {
        let _ = errors.to_string();
    }
});

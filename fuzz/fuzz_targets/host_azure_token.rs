//! The azure adapter's token endpoint answer parser (Entra ID client
//! credentials: `{"token_type":"Bearer","expires_in":3599,"access_token":"…"}`):
//! never panics, and an error never quotes the answer (it may hold a token).
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::azure::fuzzing::parse_token;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_token(data) {
        // Only the parser's own words: a body of 24+ bytes never shows up whole.
        if data.len() >= 24 {
            let shown = e.to_string();
            assert!(!shown.as_bytes().windows(data.len()).any(|w| w == data));
        }
    }
});

//! The azure adapter's token endpoint answer parser (Entra ID client
//! credentials: `{"token_type":"Bearer","expires_in":3599,"access_token":"…"}`):
//! never panics. (That its errors never quote the token is a property test in
//! providers/tests/it/answer_parsers.rs.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::azure::fuzzing::parse_token;

fuzz_target!(|data: &[u8]| {
    let _ = parse_token(data);
});

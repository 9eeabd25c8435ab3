//! The ionos adapter's answer parsers (a zone with its records, the zone list, the
//! quoted TXT content): never panic; accepted content unquotes to no more bytes
//! than it had.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::ionos::{parse_records, parse_zones, unquote};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_records(data, &name, Operation::Read);
    let _ = parse_zones(data, &name);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(value) = unquote(text)
    {
        assert!(value.len() < text.len());
    }
});

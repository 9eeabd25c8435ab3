//! The bunny adapter's answer parser (a zone with its records): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::bunny::parse_zone_records;
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_zone_records(data, &name, Operation::Read);
});

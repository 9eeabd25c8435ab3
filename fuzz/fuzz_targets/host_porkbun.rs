//! The porkbun adapter's answer parsers (a record list, a create answer): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::porkbun::{parse_created, parse_records};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_records(data, &name, Operation::Read, true);
    let _ = parse_records(data, &name, Operation::Read, false);
    let _ = parse_created(data, &name);
});

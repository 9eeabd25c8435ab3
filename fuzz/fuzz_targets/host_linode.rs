//! The linode adapter's answer parsers (a page of records, a page of domains): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::linode::{parse_domains, parse_records};
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("example.com") else {
        return;
    };
    let _ = parse_records(data, &name, Operation::Read);
    let _ = parse_domains(data, &name, Operation::FindZone);
});

//! The azure adapter's answer parser (a TXT record set with its ETag): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maildns_providers::hosts::azure::parse_record_set;
use maildns_providers::{Fqdn, Operation};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = Fqdn::parse("_dmarc.example.com") else {
        return;
    };
    let _ = parse_record_set(data, &name, Operation::Read);
});
